//! `DATA_DIR/signer.db`: one row per profile, signing job, code signing config and
//! function association, each a JSON record under its kind and id. Every change is one
//! write, synced before it is acknowledged (`synchronous=FULL`); everything is read once,
//! at open, and kept in memory by [`crate::Signer`]. Nodes sharing a PostgreSQL store keep
//! the same records in its `signer` namespace of shared records instead.

use std::path::Path;

use rusqlite::{params, Connection};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{store, SignerError};

/// Schema; entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT, WITHOUT ROWID;
"#];

/// The kinds of record.
pub(crate) const PROFILE: &str = "profile";
pub(crate) const JOB: &str = "job";
pub(crate) const CONFIG: &str = "csc";
pub(crate) const FUNCTION: &str = "function";

/// Opens (creating if needed) the database at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection, SignerError> {
    let db = warden_sqlite::open(
        path,
        &warden_sqlite::Options {
            synchronous: warden_sqlite::Synchronous::Full,
            migrations: MIGRATIONS,
            incremental_vacuum: false,
        },
    )
    .map_err(|source| SignerError::Store {
        context: "opening the signer store",
        source,
    })?;
    drop(db.reader);
    Ok(db.writer)
}

/// The namespace of the signer's records in a shared PostgreSQL store.
pub(crate) const NAMESPACE: &str = "signer";

/// Parses one stored record of `kind`.
pub(crate) fn parse<T: DeserializeOwned>(kind: &str, text: &str) -> Result<T, SignerError> {
    serde_json::from_str(text)
        .map_err(|e| SignerError::Validation(format!("a stored {kind} record does not parse: {e}")))
}

/// Serializes one record.
pub(crate) fn text<T: Serialize>(record: &T) -> Result<String, SignerError> {
    serde_json::to_string(record)
        .map_err(|e| SignerError::Validation(format!("a record does not serialise: {e}")))
}

/// Every record of `kind`.
pub(crate) fn load<T: DeserializeOwned>(
    conn: &Connection,
    kind: &str,
) -> Result<Vec<T>, SignerError> {
    let mut stmt = conn
        .prepare("SELECT record FROM records WHERE kind = ?1 ORDER BY id")
        .map_err(store("reading the signer store"))?;
    let rows = stmt
        .query_map(params![kind], |row| row.get::<_, String>(0))
        .map_err(store("reading the signer store"))?;
    let mut out = Vec::new();
    for row in rows {
        let text = row.map_err(store("reading the signer store"))?;
        out.push(parse(kind, &text)?);
    }
    Ok(out)
}

/// Writes (or replaces) one record.
pub(crate) fn put<T: Serialize>(
    conn: &Connection,
    kind: &str,
    id: &str,
    record: &T,
) -> Result<(), SignerError> {
    let text = text(record)?;
    conn.execute(
        "INSERT INTO records (kind, id, record) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind, id) DO UPDATE SET record = excluded.record",
        params![kind, id, text],
    )
    .map_err(store("writing the signer store"))?;
    Ok(())
}

/// Removes one record.
pub(crate) fn delete(conn: &Connection, kind: &str, id: &str) -> Result<(), SignerError> {
    conn.execute(
        "DELETE FROM records WHERE kind = ?1 AND id = ?2",
        params![kind, id],
    )
    .map_err(store("writing the signer store"))?;
    Ok(())
}
