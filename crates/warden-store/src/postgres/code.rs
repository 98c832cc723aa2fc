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
                let size: i64 = blob.get(0);
                let chunks: i32 = blob.get(1);
                let rows = tx
                    .query(
                        "SELECT n, bytes FROM code_chunks WHERE sha = $1 ORDER BY n",
                        &[&sha],
                    )
                    .map_err(pg("reading shared code"))?;
                let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                for (expected, row) in rows.iter().enumerate() {
                    let n: i32 = row.get(0);
                    if usize::try_from(n).ok() != Some(expected) {
                        return Err(corrupt(&sha));
                    }
                    out.extend_from_slice(row.get::<_, &[u8]>(1));
                }
                if usize::try_from(chunks).ok() != Some(rows.len())
                    || i64::try_from(out.len()).ok() != Some(size)
                {
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
