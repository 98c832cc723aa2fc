//! `DATA_DIR/secrets.db`: one row per secret (a JSON record) and one per version (its
//! sealed value and stages). Every change is one immediate transaction.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::error::{store, SecretsError};
use crate::service::{Secret, Version};

/// Schema; entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE secrets (
    arn TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    record TEXT NOT NULL
) STRICT;

CREATE TABLE versions (
    arn TEXT NOT NULL REFERENCES secrets(arn) ON DELETE CASCADE,
    version_id TEXT NOT NULL,
    -- The value, sealed by envelope encryption under the secret's KMS key.
    sealed BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    last_accessed_ms INTEGER,
    stages TEXT NOT NULL,
    PRIMARY KEY (arn, version_id)
) STRICT, WITHOUT ROWID;
"#];

pub(crate) struct SecretsStore {
    conn: Mutex<Connection>,
}

fn parse(text: &str) -> Result<Secret, SecretsError> {
    serde_json::from_str(text)
        .map_err(|e| SecretsError::InvalidRequest(format!("a stored secret does not parse: {e}")))
}

impl SecretsStore {
    pub(crate) fn open(path: &Path) -> Result<Self, SecretsError> {
        let db = warden_sqlite::open(
            path,
            &warden_sqlite::Options {
                synchronous: warden_sqlite::Synchronous::Full,
                migrations: MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(|source| SecretsError::Store {
            context: "opening the secrets store",
            source,
        })?;
        drop(db.reader);
        Ok(Self {
            conn: Mutex::new(db.writer),
        })
    }

    /// Runs `f` in one immediate transaction.
    pub(crate) fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, SecretsError>,
    ) -> Result<T, SecretsError> {
        let mut conn = warden_sqlite::lock(&self.conn);
        warden_sqlite::rollback_abandoned(&conn).map_err(store(context))?;
        let tx = warden_sqlite::immediate(&mut conn).map_err(store(context))?;
        let out = f(&tx)?;
        tx.commit().map_err(store(context))?;
        Ok(out)
    }
}

/// The secret with this exact name or ARN.
pub(crate) fn find(
    tx: &Transaction<'_>,
    name_or_arn: &str,
) -> Result<Option<Secret>, SecretsError> {
    let ctx = "reading a secret";
    let text: Option<String> = tx
        .query_row(
            "SELECT record FROM secrets WHERE arn = ?1 OR name = ?1",
            [name_or_arn],
            |r| r.get(0),
        )
        .optional()
        .map_err(store(ctx))?;
    text.as_deref().map(parse).transpose()
}

/// Every secret, oldest first.
pub(crate) fn all(tx: &Transaction<'_>) -> Result<Vec<Secret>, SecretsError> {
    let ctx = "listing secrets";
    let mut st = tx
        .prepare("SELECT record FROM secrets ORDER BY created_ms, name")
        .map_err(store(ctx))?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(store(ctx))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(parse(&row.map_err(store(ctx))?)?);
    }
    Ok(out)
}

/// The bytes of every stored (sealed) value.
pub(crate) fn stored_bytes(tx: &Transaction<'_>) -> Result<u64, SecretsError> {
    tx.query_row(
        "SELECT coalesce(sum(length(sealed)), 0) FROM versions",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
    .map_err(store("measuring the stored values"))
}

/// The secrets whose recovery window ended by `now` (read from the records in SQL, so that
/// the check every operation makes does not parse every secret).
pub(crate) fn due_for_deletion(
    tx: &Transaction<'_>,
    now: i64,
) -> Result<Vec<String>, SecretsError> {
    let ctx = "finding secrets due for deletion";
    let mut st = tx
        .prepare_cached("SELECT arn FROM secrets WHERE json_extract(record, '$.deleted_ms') <= ?1")
        .map_err(store(ctx))?;
    let rows = st.query_map([now], |r| r.get(0)).map_err(store(ctx))?;
    rows.collect::<Result<_, _>>().map_err(store(ctx))
}

pub(crate) fn count(tx: &Transaction<'_>) -> Result<usize, SecretsError> {
    tx.query_row("SELECT count(*) FROM secrets", [], |r| r.get::<_, i64>(0))
        .map(|n| n as usize)
        .map_err(store("counting secrets"))
}

pub(crate) fn put_secret(tx: &Transaction<'_>, s: &Secret) -> Result<(), SecretsError> {
    let text = serde_json::to_string(s).map_err(|e| SecretsError::InvalidRequest(e.to_string()))?;
    tx.execute(
        "INSERT INTO secrets (arn, name, created_ms, record) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(arn) DO UPDATE SET record = excluded.record",
        params![s.arn, s.name, s.created_ms, text],
    )
    .map_err(store("writing a secret"))?;
    Ok(())
}

pub(crate) fn delete_secret(tx: &Transaction<'_>, arn: &str) -> Result<(), SecretsError> {
    tx.execute("DELETE FROM secrets WHERE arn = ?1", [arn])
        .map_err(store("deleting a secret"))?;
    Ok(())
}

/// Every version of a secret (without its sealed value), newest first.
pub(crate) fn versions(tx: &Transaction<'_>, arn: &str) -> Result<Vec<Version>, SecretsError> {
    let ctx = "reading versions";
    let mut st = tx
        .prepare(
            "SELECT version_id, created_ms, last_accessed_ms, stages FROM versions \
             WHERE arn = ?1 ORDER BY created_ms DESC, version_id",
        )
        .map_err(store(ctx))?;
    let rows = st
        .query_map([arn], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(store(ctx))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, created_ms, last_accessed_ms, stages) = row.map_err(store(ctx))?;
        out.push(Version {
            id,
            created_ms,
            last_accessed_ms,
            stages: serde_json::from_str(&stages).unwrap_or_default(),
        });
    }
    Ok(out)
}

pub(crate) fn sealed_value(
    tx: &Transaction<'_>,
    arn: &str,
    version: &str,
) -> Result<Option<Vec<u8>>, SecretsError> {
    tx.query_row(
        "SELECT sealed FROM versions WHERE arn = ?1 AND version_id = ?2",
        params![arn, version],
        |r| r.get(0),
    )
    .optional()
    .map_err(store("reading a secret value"))
}

pub(crate) fn insert_version(
    tx: &Transaction<'_>,
    arn: &str,
    version: &Version,
    sealed: &[u8],
) -> Result<(), SecretsError> {
    tx.execute(
        "INSERT INTO versions (arn, version_id, sealed, created_ms, stages) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            arn,
            version.id,
            sealed,
            version.created_ms,
            serde_json::to_string(&version.stages).unwrap_or_else(|_| "[]".into())
        ],
    )
    .map_err(store("writing a version"))?;
    Ok(())
}

pub(crate) fn set_stages(
    tx: &Transaction<'_>,
    arn: &str,
    version: &str,
    stages: &[String],
) -> Result<(), SecretsError> {
    tx.execute(
        "UPDATE versions SET stages = ?3 WHERE arn = ?1 AND version_id = ?2",
        params![
            arn,
            version,
            serde_json::to_string(stages).unwrap_or_else(|_| "[]".into())
        ],
    )
    .map_err(store("moving a version stage"))?;
    Ok(())
}

pub(crate) fn touch_version(
    tx: &Transaction<'_>,
    arn: &str,
    version: &str,
    day_ms: i64,
) -> Result<(), SecretsError> {
    tx.execute(
        "UPDATE versions SET last_accessed_ms = ?3 WHERE arn = ?1 AND version_id = ?2 \
         AND (last_accessed_ms IS NULL OR last_accessed_ms <> ?3)",
        params![arn, version, day_ms],
    )
    .map_err(store("recording access"))?;
    Ok(())
}

pub(crate) fn delete_version(
    tx: &Transaction<'_>,
    arn: &str,
    version: &str,
) -> Result<(), SecretsError> {
    tx.execute(
        "DELETE FROM versions WHERE arn = ?1 AND version_id = ?2",
        params![arn, version],
    )
    .map_err(store("pruning a version"))?;
    Ok(())
}
