//! [`crate::blobs::SharedCode`] on PostgreSQL: sealed code zips in chunks, so that no node
//! needs a shared file system or another object store.
//!
//! A blob is one `code_blobs` row and its `code_chunks` rows (at most [`CHUNK_BYTES`]
//! each), written in one transaction, so a reader sees all of a blob or none of it.
//! `touched_at` comes from the database's clock, one clock for every node, so the grace
//! period of [`crate::blobs::SharedCode::collect`] does not depend on nodes' clocks.
//!
//! An S3-compatible object store would slot in behind the same trait: `put` as a
//! conditional PUT of the sealed bytes under the sha's hex, `touch` as a metadata copy
//! (or a small marker object), `get` as a GET, and `collect` as a listing filtered by
//! last-modified time. The sealed bytes are already encrypted and bound to their sha,
//! so such a store needs no more trust than PostgreSQL does here.

use std::collections::HashSet;
use std::time::Duration;

use warden_postgres::{Migration, Pool};

use super::pg;
use crate::StoreError;

/// The largest chunk of a blob in one row.
pub const CHUNK_BYTES: usize = 1 << 20;

/// The largest sealed zip stored: the largest zip Lambda takes, plus room for the seal's
/// header and tag.
pub const MAX_SEALED_BYTES: usize = warden_types::limits::ZIP_BYTES as usize + (64 << 10);

/// The `code` track.
pub(super) const MIGRATIONS: &[Migration] = &[Migration::additive(
    "CREATE TABLE code_blobs (
        sha TEXT PRIMARY KEY,
        size BIGINT NOT NULL,
        chunks INTEGER NOT NULL,
        touched_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE code_chunks (
        sha TEXT NOT NULL REFERENCES code_blobs (sha) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        bytes BYTEA NOT NULL,
        PRIMARY KEY (sha, n)
    );
    CREATE INDEX code_blobs_touched ON code_blobs (touched_at);",
)];

/// Sealed code zips in PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresCode {
    pool: Pool,
}

impl PostgresCode {
    pub(super) fn new(pool: Pool) -> Self {
        PostgresCode { pool }
    }
}

impl crate::blobs::SharedCode for PostgresCode {
    fn put(&self, sha: &str, sealed: &[u8]) -> Result<(), StoreError> {
        let sha = sha.to_owned();
        if sealed.len() > MAX_SEALED_BYTES {
            return Err(StoreError::InvalidRecord(format!(
                "the sealed code of {sha} is {} bytes, more than the {MAX_SEALED_BYTES} a zip may seal to",
                sealed.len()
            )));
        }
        let sealed = sealed.to_vec();
        self.pool.run(move |conn| {
            conn.transaction(|tx| -> Result<(), StoreError> {
                let size = i64::try_from(sealed.len()).unwrap_or(i64::MAX);
                let chunks = i32::try_from(sealed.len().div_ceil(CHUNK_BYTES)).unwrap_or(i32::MAX);
                // The first writer of a sha inserts it with its chunks; a later one (the
                // same code, sealed again) only touches it: content addressing makes them
                // equivalent. A concurrent writer waits on the row's key until the first
                // commits, then touches.
                let inserted = tx
                    .execute(
                        "INSERT INTO code_blobs (sha, size, chunks) VALUES ($1, $2, $3)
                         ON CONFLICT (sha) DO NOTHING",
                        &[&sha, &size, &chunks],
                    )
                    .map_err(pg("storing shared code"))?;
                if inserted == 0 {
                    tx.execute(
                        "UPDATE code_blobs SET touched_at = now() WHERE sha = $1",
                        &[&sha],
                    )
                    .map_err(pg("storing shared code"))?;
                    return Ok(());
                }
                for (n, chunk) in sealed.chunks(CHUNK_BYTES).enumerate() {
                    let n = i32::try_from(n).unwrap_or(i32::MAX);
                    tx.execute(
                        "INSERT INTO code_chunks (sha, n, bytes) VALUES ($1, $2, $3)",
                        &[&sha, &n, &chunk],
                    )
                    .map_err(pg("storing shared code"))?;
                }
                Ok(())
            })
        })
    }

    fn touch(&self, sha: &str) -> Result<bool, StoreError> {
        let sha = sha.to_owned();
        self.pool.run(move |conn| {
            let statement = conn
                .prepare("UPDATE code_blobs SET touched_at = now() WHERE sha = $1")
                .map_err(pg("touching shared code"))?;
            let n = conn
                .client()
                .execute(&statement, &[&sha])
                .map_err(pg("touching shared code"))?;
            Ok(n > 0)
        })
    }

    fn get(&self, sha: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sha = sha.to_owned();
        self.pool.run(move |conn| {
            conn.transaction(|tx| -> Result<Option<Vec<u8>>, StoreError> {
                let Some(blob) = tx
                    .query_opt(
                        "SELECT size, chunks FROM code_blobs WHERE sha = $1",
                        &[&sha],
                    )
                    .map_err(pg("reading shared code"))?
                else {
                    return Ok(None);
                };
                // What the row claims is checked before anything is read on its word: a
                // damaged or forged row must not make this node allocate without bound.
                let size = usize::try_from(blob.get::<_, i64>(0)).map_err(|_| corrupt(&sha))?;
                let chunks = usize::try_from(blob.get::<_, i32>(1)).map_err(|_| corrupt(&sha))?;
                if size > MAX_SEALED_BYTES || chunks != size.div_ceil(CHUNK_BYTES) {
                    return Err(corrupt(&sha));
                }
                let limit = i64::try_from(chunks).unwrap_or(i64::MAX);
                let chunk_max = i32::try_from(CHUNK_BYTES).unwrap_or(i32::MAX);
                // An oversized chunk comes back as NULL rather than in full.
                let rows = tx
                    .query(
                        "SELECT n, CASE WHEN octet_length(bytes) <= $3 THEN bytes END
                         FROM code_chunks WHERE sha = $1 ORDER BY n LIMIT $2",
                        &[&sha, &limit, &chunk_max],
                    )
                    .map_err(pg("reading shared code"))?;
                let mut out = Vec::with_capacity(size);
                for (expected, row) in rows.iter().enumerate() {
                    let n: i32 = row.get(0);
                    let bytes: Option<&[u8]> = row.get(1);
                    match bytes {
                        Some(bytes) if usize::try_from(n).ok() == Some(expected) => {
                            out.extend_from_slice(bytes)
                        }
                        _ => return Err(corrupt(&sha)),
                    }
                }
                if rows.len() != chunks || out.len() != size {
                    return Err(corrupt(&sha));
                }
                Ok(Some(out))
            })
        })
    }

    fn collect(&self, referenced: &HashSet<String>, grace: Duration) -> Result<u64, StoreError> {
        let referenced: Vec<String> = referenced.iter().cloned().collect();
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        self.pool.run(move |conn| {
            let n = conn
                .client()
                .execute(
                    "DELETE FROM code_blobs
                     WHERE touched_at < now() - make_interval(secs => $1::BIGINT / 1000.0)
                       AND NOT (sha = ANY($2))",
                    &[&grace_ms, &referenced],
                )
                .map_err(pg("collecting shared code"))?;
            Ok(n)
        })
    }
}

fn corrupt(sha: &str) -> StoreError {
    StoreError::InvalidRecord(format!("the shared code of {sha} is incomplete"))
}
