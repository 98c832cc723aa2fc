//! [`LayerStore`] over SQLite: `layers` counts each layer's versions, `layer_versions` holds
//! their records and policies.

use rusqlite::{params, OptionalExtension};
use warden_types::layer::{LayerName, LayerVersion};

use super::{db, lock, to_i64, SqliteStore};
use crate::record::{self, decode};
use crate::{LayerStore, StoreError};

fn label(name: &LayerName, version: u64) -> String {
    format!("version {version} of layer `{name}`")
}

fn version_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

impl SqliteStore {
    fn layer_rows(
        &self,
        context: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached(sql).map_err(db(context))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(db(context))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, version, json) = row.map_err(db(context))?;
            out.push(decode(&json, || {
                format!("version {version} of layer `{name}`")
            })?);
        }
        Ok(out)
    }
}

impl LayerStore for SqliteStore {
    fn publish_layer_version(&self, draft: &LayerVersion) -> Result<LayerVersion, StoreError> {
        let draft = draft.clone();
        self.write("publishing a layer version", move |tx| {
            let name = draft.name.as_str();
            tx.execute(
                "INSERT INTO layers (name, next_version) VALUES (?1, 1)
                 ON CONFLICT (name) DO NOTHING",
                params![name],
            )
            .map_err(db("publishing a layer version"))?;
            let version: i64 = tx
                .query_row(
                    "UPDATE layers SET next_version = next_version + 1 WHERE name = ?1
                     RETURNING next_version - 1",
                    params![name],
                    |r| r.get(0),
                )
                .map_err(db("publishing a layer version"))?;
            let mut published = draft.clone();
            published.version = u64::try_from(version).unwrap_or(0);
            let json = record::encode(&published, None, "the layer version")?.json;
            tx.execute(
                "INSERT INTO layer_versions (layer, version, code_sha256, record)
                 VALUES (?1, ?2, ?3, ?4)",
                params![name, version, published.code_sha256, json],
            )
            .map_err(db("publishing a layer version"))?;
            Ok(published)
        })
    }

    fn get_layer_version(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<Option<LayerVersion>, StoreError> {
        let conn = lock(&self.reader);
        let json: Option<String> = conn
            .prepare_cached("SELECT record FROM layer_versions WHERE layer = ?1 AND version = ?2")
            .and_then(|mut s| {
                s.query_row(params![name.as_str(), version_i64(version)], |r| r.get(0))
                    .optional()
            })
            .map_err(db("reading a layer version"))?;
        json.map(|j| decode(&j, || label(name, version)))
            .transpose()
    }

    fn list_layer_versions(
        &self,
        name: &LayerName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        self.layer_rows(
            "listing layer versions",
            "SELECT layer, version, record FROM layer_versions
             WHERE layer = ?1 AND version < ?2 ORDER BY version DESC LIMIT ?3",
            params![
                name.as_str(),
                before.map_or(i64::MAX, version_i64),
                to_i64(limit)
            ],
        )
    }

    fn list_layers(
        &self,
        after: Option<&LayerName>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        self.layer_rows(
            "listing layers",
            "SELECT layer, MAX(version), record FROM layer_versions
             WHERE layer > ?1 GROUP BY layer ORDER BY layer LIMIT ?2",
            params![after.map_or("", LayerName::as_str), to_i64(limit)],
        )
    }

    fn delete_layer_version(&self, name: &LayerName, version: u64) -> Result<bool, StoreError> {
        let name = name.as_str().to_owned();
        self.write("deleting a layer version", move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM layer_versions WHERE layer = ?1 AND version = ?2",
                    params![name, version_i64(version)],
                )
                .map_err(db("deleting a layer version"))?;
            Ok(n > 0)
        })
    }

    fn get_layer_policy(
        &self,
        name: &LayerName,
        version: u64,
    ) -> Result<Option<String>, StoreError> {
        let conn = lock(&self.reader);
        let policy: Option<Option<String>> = conn
            .prepare_cached("SELECT policy FROM layer_versions WHERE layer = ?1 AND version = ?2")
            .and_then(|mut s| {
                s.query_row(params![name.as_str(), version_i64(version)], |r| r.get(0))
                    .optional()
            })
            .map_err(db("reading a layer version policy"))?;
        Ok(policy.flatten())
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
        self.write("writing a layer version policy", move |tx| {
            let n = tx
                .execute(
                    "UPDATE layer_versions SET policy = ?3 WHERE layer = ?1 AND version = ?2",
                    params![name, version_i64(version), document],
                )
                .map_err(db("writing a layer version policy"))?;
            if n == 0 {
                return Err(StoreError::NotFound(label));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FunctionStore;

    fn draft(name: &str, sha: &str) -> LayerVersion {
        LayerVersion {
            name: LayerName::new(name).unwrap(),
            version: 0,
            description: "d".into(),
            compatible_runtimes: vec!["python3.12".into()],
            compatible_architectures: vec![],
            license_info: None,
            code_sha256: sha.into(),
            code_size: 10,
            created_ms: 1,
        }
    }

    #[test]
    fn versions_count_on_after_a_delete_and_policies_go_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        let deps = LayerName::new("deps").unwrap();
        assert_eq!(
            store
                .publish_layer_version(&draft("deps", "a"))
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            store
                .publish_layer_version(&draft("deps", "b"))
                .unwrap()
                .version,
            2
        );
        assert_eq!(
            store
                .publish_layer_version(&draft("other", "c"))
                .unwrap()
                .version,
            1
        );
        assert!(store.delete_layer_version(&deps, 2).unwrap());
        assert!(!store.delete_layer_version(&deps, 2).unwrap());
        assert_eq!(
            store
                .publish_layer_version(&draft("deps", "d"))
                .unwrap()
                .version,
            3
        );
        let versions: Vec<u64> = store
            .list_layer_versions(&deps, None, 10)
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(versions, [3, 1]);
        let page: Vec<u64> = store
            .list_layer_versions(&deps, Some(3), 10)
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(page, [1]);
        let layers: Vec<(String, u64)> = store
            .list_layers(None, 10)
            .unwrap()
            .into_iter()
            .map(|v| (v.name.to_string(), v.version))
            .collect();
        assert_eq!(layers, [("deps".into(), 3), ("other".into(), 1)]);

        store.put_layer_policy(&deps, 1, Some("{}")).unwrap();
        assert_eq!(
            store.get_layer_policy(&deps, 1).unwrap().as_deref(),
            Some("{}")
        );
        assert!(matches!(
            store.put_layer_policy(&deps, 2, Some("{}")),
            Err(StoreError::NotFound(_))
        ));
        // Layer code is referenced while a version holds it.
        let referenced = store.referenced_code().unwrap();
        assert!(referenced.contains(&"a".to_owned()) && !referenced.contains(&"b".to_owned()));
    }
}
