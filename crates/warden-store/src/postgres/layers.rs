//! [`crate::LayerStore`] on PostgreSQL (its tables are in the `functions` track). A
//! layer's row numbers its versions: publishing locks it, so versions published at once
//! from several nodes get distinct numbers, never reused.

use warden_types::layer::{LayerName, LayerVersion};

use super::functions::to_i64;
use super::{pg, PostgresStore};
use crate::record::{self, decode};
use crate::{LayerStore, StoreError};

fn label(name: &LayerName, version: u64) -> String {
    format!("version {version} of layer `{name}`")
}

fn version_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn versions(rows: &[postgres::Row]) -> Result<Vec<LayerVersion>, StoreError> {
    rows.iter()
        .map(|r| {
            let name: &str = r.get(0);
            let version: i64 = r.get(1);
            decode(r.get::<_, &str>(2), || {
                format!("version {version} of layer `{name}`")
            })
        })
        .collect()
}

impl LayerStore for PostgresStore {
    fn publish_layer_version(&self, draft: &LayerVersion) -> Result<LayerVersion, StoreError> {
        let draft = draft.clone();
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                let name = draft.name.as_str();
                // The layer's row, made or moved on, locked until the version is stored.
                let version: i64 = tx
                    .query_one(
                        "INSERT INTO layers (name, next_version) VALUES ($1, 2)
                         ON CONFLICT (name) DO UPDATE SET next_version = layers.next_version + 1
                         RETURNING next_version - 1",
                        &[&name],
                    )
                    .map_err(pg("publishing a layer version"))?
                    .get(0);
                let mut published = draft.clone();
                published.version = u64::try_from(version).unwrap_or(0);
                let json = record::encode(&published, None, "the layer version")?.json;
                tx.execute(
                    "INSERT INTO layer_versions (layer, version, code_sha256, record)
                     VALUES ($1, $2, $3, $4)",
                    &[&name, &version, &published.code_sha256, &json],
                )
                .map_err(pg("publishing a layer version"))?;
                Ok(published)
            })
        })
    }

    fn get_layer_version(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<Option<LayerVersion>, StoreError> {
        let name = name.clone();
        self.pool.run(move |conn| {
            let row = conn
                .client()
                .query_opt(
                    "SELECT record FROM layer_versions WHERE layer = $1 AND version = $2",
                    &[&name.as_str(), &version_i64(version)],
                )
                .map_err(pg("reading a layer version"))?;
            row.map(|r| decode(r.get::<_, &str>(0), || label(&name, version)))
                .transpose()
        })
    }

    fn list_layer_versions(
        &self,
        name: &LayerName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        let name = name.as_str().to_owned();
        let before = before.map_or(i64::MAX, version_i64);
        let limit = to_i64(limit);
        self.pool.run(move |conn| {
            let rows = conn
                .client()
                .query(
                    "SELECT layer, version, record FROM layer_versions
                     WHERE layer = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
                    &[&name, &before, &limit],
                )
                .map_err(pg("listing layer versions"))?;
            versions(&rows)
        })
    }

    fn list_layers(
        &self,
        after: Option<&LayerName>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        let after = after.map_or(String::new(), |a| a.as_str().to_owned());
        let limit = to_i64(limit);
        self.pool.run(move |conn| {
            let rows = conn
                .client()
                .query(
                    "SELECT DISTINCT ON (layer) layer, version, record FROM layer_versions
                     WHERE layer > $1 ORDER BY layer, version DESC LIMIT $2",
                    &[&after, &limit],
                )
                .map_err(pg("listing layers"))?;
            versions(&rows)
        })
    }

    fn delete_layer_version(&self, name: &LayerName, version: u64) -> Result<bool, StoreError> {
        let name = name.as_str().to_owned();
        self.pool.run(move |conn| {
            let n = conn
                .client()
                .execute(
                    "DELETE FROM layer_versions WHERE layer = $1 AND version = $2",
                    &[&name, &version_i64(version)],
                )
                .map_err(pg("deleting a layer version"))?;
            Ok(n > 0)
        })
    }

    fn get_layer_policy(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<Option<String>, StoreError> {
        let name = name.as_str().to_owned();
        self.pool.run(move |conn| {
            let row = conn
                .client()
                .query_opt(
                    "SELECT policy FROM layer_versions WHERE layer = $1 AND version = $2",
                    &[&name, &version_i64(version)],
                )
                .map_err(pg("reading a layer version policy"))?;
            Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
        })
    }

    fn put_layer_policy(
        &self,
        name: &LayerName,
        version: u64,
        document: Option<&str>,
    ) -> Result<(), StoreError> {
        let label = label(name, version);
        let name = name.as_str().to_owned();
        let document = document.map(str::to_owned);
        self.pool.run(move |conn| {
            let n = conn
                .client()
                .execute(
                    "UPDATE layer_versions SET policy = $3 WHERE layer = $1 AND version = $2",
                    &[&name, &version_i64(version), &document],
                )
                .map_err(pg("writing a layer version policy"))?;
            if n == 0 {
                return Err(StoreError::NotFound(label));
            }
            Ok(())
        })
    }
}
