//! [`crate::FunctionStore`] on PostgreSQL, and the `functions` schema track (which also
//! holds the layers' and the async queue's tables).
//!
//! The tables mirror SQLite's, and rows hold the same versioned JSON records
//! ([`crate::record`]), byte for byte, so that nodes of two Warden versions can share
//! them. Names are compared and sorted bytewise (`COLLATE "C"`), as SQLite does, whatever
//! the database's own collation.
//!
//! Every write is one transaction; the compare-and-set writes (revisions, numbering) lock
//! the rows they read, so two nodes racing on one function serialise on it: one
//! `create_function` of a name wins and the other gets `AlreadyExists`, racing publishes
//! get distinct numbers, and a stale revision is refused. Row locks on `functions`:
//!
//! - writes that number versions or change what versions and aliases point at (publish,
//!   alias writes, deleting a version) take `FOR NO KEY UPDATE`, so they run one at a time
//!   per function: an alias can never come to point at a version being deleted;
//! - writes that only need the function to exist until they commit (queueing an event,
//!   reservations, policies, tags) take `FOR KEY SHARE`, which waits only for a deletion
//!   of the function;
//! - deleting the function takes the row itself and cascades to everything of it.
//!
//! Reads take no lock: a read that needs the function to exist as well as its rows (listing
//! versions, aliases, tags) is one statement, and so one snapshot.

use std::collections::BTreeMap;

use postgres::GenericClient;
use warden_postgres::Migration;
use warden_types::{FunctionName, FunctionVersion, LATEST};

use super::{pg, PostgresStore};
use crate::record::{self, decode};
use crate::rules::{
    alias_label, check_revision, function_label, latest_record, published_copy, read_alias,
    sealed_copy, stored_name, version_label, version_num,
};
use crate::{Alias, FunctionStore, StoreError};

/// The `functions` track.
pub(super) const MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
CREATE TABLE functions (
    name TEXT COLLATE "C" PRIMARY KEY,
    -- Next published version number; only ever grows, so numbers are never reused.
    next_version BIGINT NOT NULL
);

CREATE TABLE versions (
    function TEXT COLLATE "C" NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    -- 0 is $LATEST, published versions are 1, 2, ...
    version_num BIGINT NOT NULL,
    code_sha256 TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    -- Digest of the $LATEST configuration this row was copied from (publish dedup).
    source_digest TEXT NOT NULL,
    -- The versioned JSON record, byte for byte as SQLite keeps it.
    record TEXT NOT NULL,
    PRIMARY KEY (function, version_num)
);
CREATE INDEX versions_by_code ON versions (code_sha256);

CREATE TABLE aliases (
    function TEXT COLLATE "C" NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    function_version TEXT NOT NULL,
    routing_version TEXT,
    revision_id TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (function, name)
);

CREATE TABLE reserved_concurrency (
    function TEXT COLLATE "C" PRIMARY KEY REFERENCES functions (name) ON DELETE CASCADE,
    reserved BIGINT NOT NULL
);

CREATE TABLE function_policies (
    function TEXT COLLATE "C" PRIMARY KEY REFERENCES functions (name) ON DELETE CASCADE,
    document TEXT NOT NULL
);

CREATE TABLE function_tags (
    function TEXT COLLATE "C" NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (function, key)
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    function TEXT COLLATE "C" NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    qualifier TEXT NOT NULL,
    payload BYTEA NOT NULL,
    attempts BIGINT NOT NULL,
    not_before_ms BIGINT NOT NULL,
    enqueued_ms BIGINT NOT NULL,
    -- NULL when not leased; a lease at or before `now` has expired.
    leased_until_ms BIGINT,
    leased_by TEXT,
    lease_token BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_due ON events (not_before_ms, seq);
CREATE INDEX events_by_function ON events (function);
CREATE INDEX events_by_holder ON events (leased_by) WHERE leased_by IS NOT NULL;

-- `next_version` only grows, so a deleted layer version's number is never reused.
CREATE TABLE layers (
    name TEXT COLLATE "C" PRIMARY KEY,
    next_version BIGINT NOT NULL
);

CREATE TABLE layer_versions (
    layer TEXT COLLATE "C" NOT NULL REFERENCES layers (name),
    version BIGINT NOT NULL,
    code_sha256 TEXT NOT NULL,
    record TEXT NOT NULL,
    policy TEXT,
    PRIMARY KEY (layer, version)
);
"#,
)];

pub(super) fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Whether `function` exists, locking its row (`FOR KEY SHARE`) so that it cannot be
/// deleted before the transaction ends.
pub(super) fn function_exists(tx: &mut impl GenericClient, name: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM functions WHERE name = $1 FOR KEY SHARE",
            &[&name],
        )
        .map_err(pg("looking up a function"))?
        .is_some())
}

pub(super) fn require_function(
    tx: &mut impl GenericClient,
    name: &FunctionName,
) -> Result<(), StoreError> {
    if function_exists(tx, name.as_str())? {
        Ok(())
    } else {
        Err(StoreError::NotFound(function_label(name)))
    }
}

fn require_version(
    tx: &mut impl GenericClient,
    function: &FunctionName,
    version: &str,
) -> Result<(), StoreError> {
    let exists = match version_num(version) {
        None => false,
        Some(n) => tx
            .query_opt(
                "SELECT 1 FROM versions WHERE function = $1 AND version_num = $2",
                &[&function.as_str(), &n],
            )
            .map_err(pg("looking up a version"))?
            .is_some(),
    };
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound(version_label(function, version)))
    }
}

fn insert_version(
    tx: &mut impl GenericClient,
    record: &FunctionVersion,
    json: &str,
    num: i64,
    source_digest: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO versions (function, version_num, code_sha256, revision_id, source_digest, record)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (function, version_num) DO UPDATE SET
           code_sha256 = EXCLUDED.code_sha256, revision_id = EXCLUDED.revision_id,
           source_digest = EXCLUDED.source_digest, record = EXCLUDED.record",
        &[
            &record.name.as_str(),
            &num,
            &record.code_sha256,
            &record.revision_id,
            &source_digest,
            &json,
        ],
    )
    .map_err(pg("writing a version"))?;
    Ok(())
}

fn write_tags(
    tx: &mut impl GenericClient,
    function: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM function_tags WHERE function = $1",
        &[&function],
    )
    .map_err(pg("writing tags"))?;
    let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
    let values: Vec<&str> = tags.values().map(String::as_str).collect();
    tx.execute(
        "INSERT INTO function_tags (function, key, value)
         SELECT $1, k, v FROM unnest($2::TEXT[], $3::TEXT[]) AS t (k, v)",
        &[&function, &keys, &values],
    )
    .map_err(pg("writing tags"))?;
    Ok(())
}

fn version_string(num: i64) -> String {
    if num == 0 {
        LATEST.to_owned()
    } else {
        num.to_string()
    }
}

impl FunctionStore for PostgresStore {
    fn create_function(&self, latest: &FunctionVersion) -> Result<(), StoreError> {
        self.create_tagged_function(latest, &BTreeMap::new())
    }

    fn get_version(
        &self,
        name: &FunctionName,
        version: &str,
    ) -> Result<Option<FunctionVersion>, StoreError> {
        let Some(num) = version_num(version) else {
            return Ok(None);
        };
        let name = name.clone();
        let version = version.to_owned();
        self.pool.run(move |conn| {
            let statement = conn
                .prepare("SELECT record FROM versions WHERE function = $1 AND version_num = $2")
                .map_err(pg("reading a version"))?;
            let row = conn
                .client()
                .query_opt(&statement, &[&name.as_str(), &num])
                .map_err(pg("reading a version"))?;
            row.map(|r| decode(r.get::<_, &str>(0), || version_label(&name, &version)))
                .transpose()
        })
    }

    fn update_latest(
        &self,
        latest: &FunctionVersion,
        expected_revision: Option<&str>,
    ) -> Result<(), StoreError> {
        if !latest.is_latest() {
            return Err(StoreError::InvalidRecord(format!(
                "only `{LATEST}` can be updated, not version `{}`",
                latest.version
            )));
        }
        let latest = latest.clone();
        let expected = expected_revision.map(str::to_owned);
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                let current = tx
                    .query_opt(
                        "SELECT revision_id, record FROM versions
                         WHERE function = $1 AND version_num = 0 FOR UPDATE",
                        &[&latest.name.as_str()],
                    )
                    .map_err(pg("updating a function"))?
                    .ok_or_else(|| StoreError::NotFound(function_label(&latest.name)))?;
                let revision: &str = current.get(0);
                let stored: &str = current.get(1);
                check_revision(expected.as_deref(), revision)?;
                let (record, digest) = latest_record(&latest, Some(stored))?;
                insert_version(tx, &latest, &record.json, 0, &digest)
            })
        })
    }

    fn publish_version(
        &self,
        name: &FunctionName,
        description: Option<&str>,
        expected_revision: Option<&str>,
        new_revision_id: &str,
        now_ms: i64,
    ) -> Result<FunctionVersion, StoreError> {
        let name = name.clone();
        let description = description.map(str::to_owned);
        let expected = expected_revision.map(str::to_owned);
        let new_revision_id = new_revision_id.to_owned();
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                // The function's row first: publishes of one function serialise on it.
                let next: Option<i64> = tx
                    .query_opt(
                        "SELECT next_version FROM functions WHERE name = $1 FOR NO KEY UPDATE",
                        &[&name.as_str()],
                    )
                    .map_err(pg("publishing a version"))?
                    .map(|r| r.get(0));
                let Some(num) = next else {
                    return Err(StoreError::NotFound(function_label(&name)));
                };
                let latest = tx
                    .query_opt(
                        "SELECT record, source_digest FROM versions
                         WHERE function = $1 AND version_num = 0",
                        &[&name.as_str()],
                    )
                    .map_err(pg("publishing a version"))?
                    .ok_or_else(|| StoreError::NotFound(function_label(&name)))?;
                let latest_json: String = latest.get(0);
                let latest_digest: String = latest.get(1);
                let latest: FunctionVersion =
                    decode(&latest_json, || version_label(&name, LATEST))?;
                check_revision(expected.as_deref(), &latest.revision_id)?;
                let newest = tx
                    .query_opt(
                        "SELECT record, source_digest FROM versions
                         WHERE function = $1 AND version_num > 0
                         ORDER BY version_num DESC LIMIT 1",
                        &[&name.as_str()],
                    )
                    .map_err(pg("publishing a version"))?;
                if let Some(row) = newest {
                    if row.get::<_, &str>(1) == latest_digest {
                        return decode(row.get::<_, &str>(0), || {
                            format!("the newest published version of function `{name}`")
                        });
                    }
                }
                tx.execute(
                    "UPDATE functions SET next_version = next_version + 1 WHERE name = $1",
                    &[&name.as_str()],
                )
                .map_err(pg("numbering a new version"))?;
                let (published, json) = published_copy(
                    latest,
                    &latest_json,
                    num,
                    &new_revision_id,
                    now_ms,
                    description.as_deref(),
                )?;
                insert_version(tx, &published, &json, num, &latest_digest)?;
                Ok(published)
            })
        })
    }

    fn list_functions(
        &self,
        after: Option<&FunctionName>,
        limit: usize,
    ) -> Result<Vec<FunctionVersion>, StoreError> {
        let after = after.map_or(String::new(), |a| a.as_str().to_owned());
        let limit = to_i64(limit);
        self.pool.run(move |conn| {
            let statement = conn
                .prepare(
                    "SELECT function, record FROM versions WHERE version_num = 0 AND function > $1
                     ORDER BY function LIMIT $2",
                )
                .map_err(pg("listing functions"))?;
            let rows = conn
                .client()
                .query(&statement, &[&after, &limit])
                .map_err(pg("listing functions"))?;
            rows.iter()
                .map(|r| {
                    let function: &str = r.get(0);
                    decode(r.get::<_, &str>(1), || {
                        format!("version `{LATEST}` of function `{function}`")
                    })
                })
                .collect()
        })
    }

    fn list_versions(
        &self,
        name: &FunctionName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FunctionVersion>, StoreError> {
        let after_num = match after {
            None => -1,
            Some(marker) => match version_num(marker) {
                Some(n) => n,
                // A marker that names no version cannot have come from a previous page.
                None => return Ok(Vec::new()),
            },
        };
        let name = name.clone();
        let limit = to_i64(limit);
        self.pool.run(move |conn| {
            let rows = function_rows(
                conn,
                "listing versions",
                "SELECT v.version_num, v.record FROM functions f
                 LEFT JOIN LATERAL (
                     SELECT version_num, record FROM versions
                     WHERE function = f.name AND version_num > $2
                     ORDER BY version_num LIMIT $3
                 ) v ON TRUE
                 WHERE f.name = $1
                 ORDER BY v.version_num",
                &[&name.as_str(), &after_num, &limit],
            )?
            .ok_or_else(|| StoreError::NotFound(function_label(&name)))?;
            rows.iter()
                .map(|r| {
                    let num: i64 = r.get(0);
                    decode(r.get::<_, &str>(1), || {
                        version_label(&name, &version_string(num))
                    })
                })
                .collect()
        })
    }

    fn delete_function(
        &self,
        name: &FunctionName,
        version: Option<&str>,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        let Some(version) = version else {
            return self.pool.run(move |conn| {
                conn.transaction(|tx| {
                    // The foreign keys cascade to versions, aliases, reservations,
                    // policies, tags and queued events.
                    let n = tx
                        .execute("DELETE FROM functions WHERE name = $1", &[&name.as_str()])
                        .map_err(pg("deleting a function"))?;
                    Ok(n > 0)
                })
            });
        };
        let num = match version_num(version) {
            Some(0) => {
                return Err(StoreError::Conflict(format!(
                    "version `{LATEST}` of function `{name}` cannot be deleted without deleting the function"
                )))
            }
            Some(n) => n,
            None => return Ok(false),
        };
        let version = version.to_owned();
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                // Lock the function: an alias cannot come to point at the version while
                // it is being deleted (alias writes lock the function too).
                match lock_function(tx, &name) {
                    Ok(()) => {}
                    Err(StoreError::NotFound(_)) => return Ok(false),
                    Err(e) => return Err(e),
                }
                let alias = tx
                    .query_opt(
                        "SELECT name FROM aliases
                         WHERE function = $1 AND (function_version = $2 OR routing_version = $2)
                         ORDER BY name LIMIT 1",
                        &[&name.as_str(), &version],
                    )
                    .map_err(pg("deleting a version"))?;
                if let Some(alias) = alias {
                    let alias: &str = alias.get(0);
                    return Err(StoreError::Conflict(format!(
                        "{} cannot be deleted because alias `{alias}` points to it",
                        version_label(&name, &version)
                    )));
                }
                let n = tx
                    .execute(
                        "DELETE FROM versions WHERE function = $1 AND version_num = $2",
                        &[&name.as_str(), &num],
                    )
                    .map_err(pg("deleting a version"))?;
                Ok(n > 0)
            })
        })
    }

    fn referenced_code(&self) -> Result<Vec<String>, StoreError> {
        self.pool.run(move |conn| {
            // The references inside records (the merged tree, the layers) are read here,
            // not with PostgreSQL's JSON functions: those refuse a whole record that holds
            // a `\u0000` anywhere (in a description, say), which serde reads.
            let rows = conn
                .client()
                .query(
                    "SELECT sha, NULL::TEXT FROM (
                         SELECT code_sha256 FROM versions
                         UNION SELECT code_sha256 FROM layer_versions
                     ) AS code (sha)
                     UNION ALL
                     SELECT NULL, record FROM versions
                     WHERE strpos(record, '\"opt_sha256\"') > 0 OR strpos(record, '\"layers\"') > 0",
                    &[],
                )
                .map_err(pg("listing referenced code"))?;
            let mut code = std::collections::BTreeSet::new();
            for row in &rows {
                if let Some(sha) = row.get::<_, Option<String>>(0) {
                    code.insert(sha);
                }
                if let Some(json) = row.get::<_, Option<&str>>(1) {
                    record_references(json, &mut code)?;
                }
            }
            // A `BTreeSet` of strings is in bytewise order, as SQLite sorts them.
            Ok(code.into_iter().collect())
        })
    }

    fn create_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        let json = record::encode(alias, None, "the alias")?.json;
        let alias = alias.clone();
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                lock_function(tx, &alias.function)?;
                require_version(tx, &alias.function, &alias.function_version)?;
                if let Some((routed, _)) = &alias.routing {
                    require_version(tx, &alias.function, routed)?;
                }
                let n = tx
                    .execute(
                        "INSERT INTO aliases (function, name, function_version, routing_version, revision_id, record)
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                        &[
                            &alias.function.as_str(),
                            &alias.name,
                            &alias.function_version,
                            &alias.routing.as_ref().map(|(v, _)| v.as_str()),
                            &alias.revision_id,
                            &json,
                        ],
                    )
                    .map_err(pg("creating an alias"))?;
                if n == 0 {
                    return Err(StoreError::AlreadyExists(alias_label(
                        &alias.function,
                        &alias.name,
                    )));
                }
                Ok(())
            })
        })
    }

    fn get_alias(&self, function: &FunctionName, name: &str) -> Result<Option<Alias>, StoreError> {
        let function = function.clone();
        let name = name.to_owned();
        self.pool.run(move |conn| {
            let row = conn
                .client()
                .query_opt(
                    "SELECT record FROM aliases WHERE function = $1 AND name = $2",
                    &[&function.as_str(), &name],
                )
                .map_err(pg("reading an alias"))?;
            row.map(|r| read_alias(r.get::<_, &str>(0), &function, &name))
                .transpose()
        })
    }

    fn update_alias(
        &self,
        alias: &Alias,
        expected_revision: Option<&str>,
    ) -> Result<(), StoreError> {
        let alias = alias.clone();
        let expected = expected_revision.map(str::to_owned);
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                match lock_function(tx, &alias.function) {
                    Ok(()) => {}
                    Err(StoreError::NotFound(_)) => {
                        return Err(StoreError::NotFound(alias_label(
                            &alias.function,
                            &alias.name,
                        )))
                    }
                    Err(e) => return Err(e),
                }
                let current = tx
                    .query_opt(
                        "SELECT revision_id, record FROM aliases
                         WHERE function = $1 AND name = $2 FOR UPDATE",
                        &[&alias.function.as_str(), &alias.name],
                    )
                    .map_err(pg("updating an alias"))?
                    .ok_or_else(|| {
                        StoreError::NotFound(alias_label(&alias.function, &alias.name))
                    })?;
                check_revision(expected.as_deref(), current.get::<_, &str>(0))?;
                let json =
                    record::encode(&alias, Some(current.get::<_, &str>(1)), "the alias")?.json;
                require_version(tx, &alias.function, &alias.function_version)?;
                if let Some((routed, _)) = &alias.routing {
                    require_version(tx, &alias.function, routed)?;
                }
                tx.execute(
                    "UPDATE aliases SET function_version = $3, routing_version = $4,
                         revision_id = $5, record = $6
                     WHERE function = $1 AND name = $2",
                    &[
                        &alias.function.as_str(),
                        &alias.name,
                        &alias.function_version,
                        &alias.routing.as_ref().map(|(v, _)| v.as_str()),
                        &alias.revision_id,
                        &json,
                    ],
                )
                .map_err(pg("updating an alias"))?;
                Ok(())
            })
        })
    }

    fn delete_alias(&self, function: &FunctionName, name: &str) -> Result<bool, StoreError> {
        let function = function.as_str().to_owned();
        let name = name.to_owned();
        self.pool.run(move |conn| {
            let n = conn
                .client()
                .execute(
                    "DELETE FROM aliases WHERE function = $1 AND name = $2",
                    &[&function, &name],
                )
                .map_err(pg("deleting an alias"))?;
            Ok(n > 0)
        })
    }

    fn list_aliases(
        &self,
        function: &FunctionName,
        version: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Alias>, StoreError> {
        let function = function.clone();
        let version = version.map(str::to_owned);
        let after = after.unwrap_or("").to_owned();
        let limit = to_i64(limit);
        self.pool.run(move |conn| {
            let rows = function_rows(
                conn,
                "listing aliases",
                "SELECT a.name, a.record FROM functions f
                 LEFT JOIN LATERAL (
                     SELECT name, record FROM aliases
                     WHERE function = f.name AND name > $2
                       AND ($3::TEXT IS NULL OR function_version = $3 OR routing_version = $3)
                     ORDER BY name LIMIT $4
                 ) a ON TRUE
                 WHERE f.name = $1
                 ORDER BY a.name",
                &[&function.as_str(), &after, &version, &limit],
            )?
            .ok_or_else(|| StoreError::NotFound(function_label(&function)))?;
            rows.iter()
                .map(|r| read_alias(r.get::<_, &str>(1), &function, r.get::<_, &str>(0)))
                .collect()
        })
    }

    fn put_reserved_concurrency(
        &self,
        function: &FunctionName,
        reserved: Option<u32>,
    ) -> Result<(), StoreError> {
        let function = function.clone();
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                require_function(tx, &function)?;
                match reserved {
                    Some(n) => tx.execute(
                        "INSERT INTO reserved_concurrency (function, reserved) VALUES ($1, $2)
                         ON CONFLICT (function) DO UPDATE SET reserved = EXCLUDED.reserved",
                        &[&function.as_str(), &i64::from(n)],
                    ),
                    None => tx.execute(
                        "DELETE FROM reserved_concurrency WHERE function = $1",
                        &[&function.as_str()],
                    ),
                }
                .map_err(pg("setting reserved concurrency"))?;
                Ok(())
            })
        })
    }

    fn get_reserved_concurrency(&self, function: &FunctionName) -> Result<Option<u32>, StoreError> {
        let function = function.as_str().to_owned();
        self.pool.run(move |conn| {
            let row = conn
                .client()
                .query_opt(
                    "SELECT reserved FROM reserved_concurrency WHERE function = $1",
                    &[&function],
                )
                .map_err(pg("reading reserved concurrency"))?;
            Ok(row.map(|r| u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX)))
        })
    }

    fn all_reserved_concurrency(&self) -> Result<Vec<(FunctionName, u32)>, StoreError> {
        self.pool.run(move |conn| {
            let rows = conn
                .client()
                .query(
                    "SELECT function, reserved FROM reserved_concurrency ORDER BY function",
                    &[],
                )
                .map_err(pg("listing reserved concurrency"))?;
            rows.iter()
                .map(|r| {
                    Ok((
                        stored_name(r.get(0))?,
                        u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
                    ))
                })
                .collect()
        })
    }

    fn get_function_policy(&self, function: &FunctionName) -> Result<Option<String>, StoreError> {
        let function = function.as_str().to_owned();
        self.pool.run(move |conn| {
            let row = conn
                .client()
                .query_opt(
                    "SELECT document FROM function_policies WHERE function = $1",
                    &[&function],
                )
                .map_err(pg("reading a function policy"))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn put_function_policy(
        &self,
        function: &FunctionName,
        document: Option<&str>,
    ) -> Result<(), StoreError> {
        let name = function.as_str().to_owned();
        let document = document.map(str::to_owned);
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                if !function_exists(tx, &name)? {
                    return Err(StoreError::NotFound(format!("function `{name}`")));
                }
                match &document {
                    Some(doc) => tx.execute(
                        "INSERT INTO function_policies (function, document) VALUES ($1, $2)
                         ON CONFLICT (function) DO UPDATE SET document = EXCLUDED.document",
                        &[&name, doc],
                    ),
                    None => tx.execute(
                        "DELETE FROM function_policies WHERE function = $1",
                        &[&name],
                    ),
                }
                .map_err(pg("writing a function policy"))?;
                Ok(())
            })
        })
    }

    fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.pool.run(move |conn| {
            let row = conn
                .client()
                .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
                .map_err(pg("reading a setting"))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn seal_plaintext_environments(
        &self,
        seal: crate::SealPlaintext<'_>,
    ) -> Result<usize, StoreError> {
        // The sealing callback borrows the caller's state, so it cannot travel to the
        // pool's threads: rows are read there, sealed here, and written back there.
        let ctx = "sealing plain environments";
        let names: Vec<String> = self.pool.run(move |conn| {
            let rows = conn
                .client()
                .query(
                    "SELECT DISTINCT function FROM versions WHERE record LIKE '%\"environment\":{%'",
                    &[],
                )
                .map_err(pg(ctx))?;
            Ok::<_, StoreError>(rows.iter().map(|r| r.get(0)).collect())
        })?;
        let mut sealed = 0;
        for name in names {
            let name_read = name.clone();
            let rows: Vec<(i64, String, String)> = self.pool.run(move |conn| {
                let rows = conn
                    .client()
                    .query(
                        "SELECT version_num, record, source_digest FROM versions
                         WHERE function = $1 ORDER BY version_num",
                        &[&name_read],
                    )
                    .map_err(pg(ctx))?;
                Ok::<_, StoreError>(
                    rows.iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect(),
                )
            })?;
            let mut writes = Vec::new();
            for (num, json, source_digest) in rows {
                if let Some(row) = sealed_copy(&name, num, &json, source_digest, seal)? {
                    writes.push((num, json, row));
                }
            }
            if writes.is_empty() {
                continue;
            }
            let name_write = name.clone();
            sealed += self.pool.run(move |conn| {
                conn.transaction(|tx| {
                    let mut written = 0;
                    let mut follows = Vec::new();
                    for (num, old_json, row) in &writes {
                        // Only a row still as it was read: a node that changed it since
                        // wrote a newer record, which it sealed itself.
                        let current = tx
                            .query_opt(
                                "SELECT record FROM versions
                                 WHERE function = $1 AND version_num = $2 FOR UPDATE",
                                &[&name_write, num],
                            )
                            .map_err(pg(ctx))?;
                        if current.is_none_or(|r| r.get::<_, &str>(0) != old_json) {
                            continue;
                        }
                        insert_version(tx, &row.version, &row.json, *num, &row.digest)?;
                        written += 1;
                        follows.extend(row.follow.as_ref());
                    }
                    // After every row is written, as the sealed published rows were
                    // written with the digests they had.
                    for (before, after) in follows {
                        tx.execute(
                            "UPDATE versions SET source_digest = $3
                             WHERE function = $1 AND version_num > 0 AND source_digest = $2",
                            &[&name_write, before, after],
                        )
                        .map_err(pg(ctx))?;
                    }
                    Ok::<_, StoreError>(written)
                })
            })?;
        }
        Ok(sealed)
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        let value = value.to_owned();
        self.pool.run(move |conn| {
            conn.client()
                .execute(
                    "INSERT INTO settings (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&key, &value],
                )
                .map_err(pg("writing a setting"))?;
            Ok(())
        })
    }

    fn create_tagged_function(
        &self,
        latest: &FunctionVersion,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        if !latest.is_latest() {
            return Err(StoreError::InvalidRecord(format!(
                "a new function must be created as `{LATEST}`, not version `{}`",
                latest.version
            )));
        }
        let (record, digest) = latest_record(latest, None)?;
        let latest = latest.clone();
        let tags = tags.clone();
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                // Two nodes creating one name: the second waits on the first's key, then
                // inserts nothing.
                let inserted = tx
                    .execute(
                        "INSERT INTO functions (name, next_version) VALUES ($1, 1)
                         ON CONFLICT (name) DO NOTHING",
                        &[&latest.name.as_str()],
                    )
                    .map_err(pg("creating a function"))?;
                if inserted == 0 {
                    return Err(StoreError::AlreadyExists(function_label(&latest.name)));
                }
                insert_version(tx, &latest, &record.json, 0, &digest)?;
                write_tags(tx, latest.name.as_str(), &tags)
            })
        })
    }

    fn get_tags(
        &self,
        function: &FunctionName,
    ) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let function = function.as_str().to_owned();
        self.pool.run(move |conn| {
            let rows = function_rows(
                conn,
                "reading tags",
                "SELECT t.key, t.value FROM functions f
                 LEFT JOIN function_tags t ON t.function = f.name
                 WHERE f.name = $1",
                &[&function],
            )?;
            Ok(rows.map(|rows| {
                rows.iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                    .collect()
            }))
        })
    }

    fn replace_tags(
        &self,
        function: &FunctionName,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let function = function.clone();
        let tags = tags.clone();
        self.pool.run(move |conn| {
            conn.transaction(|tx| {
                require_function(tx, &function)?;
                write_tags(tx, function.as_str(), &tags)
            })
        })
    }
}

/// Adds the code a stored function version record refers to besides its own zip (its
/// merged layer tree and its layers' zips) to `code`. Read as plain JSON, not as a
/// [`FunctionVersion`], so that a record only a newer build may read still keeps its code.
fn record_references(
    json: &str,
    code: &mut std::collections::BTreeSet<String>,
) -> Result<(), StoreError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
            what: "a stored function version".to_owned(),
            source,
        })?;
    if let Some(sha) = value.get("opt_sha256").and_then(|v| v.as_str()) {
        code.insert(sha.to_owned());
    }
    if let Some(layers) = value.get("layers").and_then(|v| v.as_array()) {
        for layer in layers {
            if let Some(sha) = layer.get("code_sha256").and_then(|v| v.as_str()) {
                code.insert(sha.to_owned());
            }
        }
    }
    Ok(())
}

/// The rows of `sql`, a query of the function `$1` left-joined to rows of it, or `None` if
/// the function does not exist. The join's one row of NULLs (a function without such rows)
/// is dropped. One statement, so the function and its rows are read in one snapshot.
fn function_rows(
    conn: &mut warden_postgres::Conn,
    context: &'static str,
    sql: &'static str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Option<Vec<postgres::Row>>, StoreError> {
    let statement = conn.prepare(sql).map_err(pg(context))?;
    let rows = conn
        .client()
        .query(&statement, params)
        .map_err(pg(context))?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .filter(|r| r.try_get::<_, Option<&str>>(1).is_ok_and(|v| v.is_some()))
            .collect(),
    ))
}

/// Locks `function`'s row for the transaction (`NotFound` if it does not exist), so that
/// writes of its aliases, publishes and deletions of its versions serialise.
fn lock_function(tx: &mut impl GenericClient, function: &FunctionName) -> Result<(), StoreError> {
    let found = tx
        .query_opt(
            "SELECT 1 FROM functions WHERE name = $1 FOR NO KEY UPDATE",
            &[&function.as_str()],
        )
        .map_err(pg("locking a function"))?;
    if found.is_some() {
        Ok(())
    } else {
        Err(StoreError::NotFound(function_label(function)))
    }
}
