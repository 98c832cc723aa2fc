//! [`crate::Store`] on embedded SQLite: the default backend. It implements
//! [`FunctionStore`], [`crate::EventQueue`] (in `queue`) and [`LogStore`].
//!
//! Two database files: metadata (functions, versions, aliases, concurrency, the async
//! queue, settings) with `synchronous=FULL`, and logs beside it with `synchronous=NORMAL`.
//! Each file has one write connection and one read connection, each behind a mutex; WAL
//! mode lets the reader run while the writer commits, and the writer mutex serialises
//! writers inside the process (`BEGIN IMMEDIATE` plus `busy_timeout` covers other
//! processes, such as `warden doctor`). Opening, file modes and migrations are
//! `warden-sqlite`'s; no `rusqlite` type leaves this module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use warden_sqlite::Synchronous;
use warden_types::{FunctionName, FunctionVersion, LATEST};

use crate::record::{self, decode};
use crate::rules::{
    alias_label, check_revision, function_label, latest_record, published_copy, read_alias,
    sealed_copy, stored_name, version_label, version_num,
};
use crate::{
    Alias, Cursor, EventRange, EventRef, FunctionStore, LogGroup, LogGroupInfo, LogRecord,
    LogRetention, LogSource, LogStore, LogStreamInfo, PruneReport, Scan, StoreError, StreamQuery,
    FUNCTION_GROUP_PREFIX,
};

mod layers;
mod queue;

/// Metadata schema; entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const META_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE functions (
    name TEXT PRIMARY KEY NOT NULL,
    -- Next published version number; only ever grows, so numbers are never reused.
    next_version INTEGER NOT NULL
) STRICT;

CREATE TABLE versions (
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    -- 0 is $LATEST, published versions are 1, 2, ...
    version_num INTEGER NOT NULL,
    code_sha256 TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    -- Digest of the $LATEST configuration this row was copied from (publish dedup).
    source_digest TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (function, version_num)
) STRICT, WITHOUT ROWID;
CREATE INDEX versions_by_code ON versions(code_sha256);

CREATE TABLE aliases (
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    function_version TEXT NOT NULL,
    routing_version TEXT,
    revision_id TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (function, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE reserved_concurrency (
    function TEXT PRIMARY KEY NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    reserved INTEGER NOT NULL
) STRICT;

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    qualifier TEXT NOT NULL,
    payload BLOB NOT NULL,
    attempts INTEGER NOT NULL,
    not_before_ms INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    -- NULL when not leased; a lease at or before `now` has expired.
    leased_until_ms INTEGER
) STRICT;
CREATE INDEX events_due ON events(not_before_ms, seq);
CREATE INDEX events_by_function ON events(function);

CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
"#,
    r#"
-- A function's resource-based policy (AddPermission / RemovePermission).
CREATE TABLE function_policies (
    function TEXT PRIMARY KEY NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    document TEXT NOT NULL
) STRICT;
"#,
    r#"
-- Leases belong to a node: `leased_by` names it (NULL when not leased) and `lease_token`
-- grows with every lease of an event, so that two leases of it are never confused. Leases
-- taken before nodes existed belonged to the one process that used this file, which is not
-- running now that a newer build is upgrading it: they end, and their events are due.
ALTER TABLE events ADD COLUMN leased_by TEXT;
ALTER TABLE events ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
UPDATE events SET leased_until_ms = NULL WHERE leased_until_ms IS NOT NULL;
CREATE INDEX events_by_holder ON events(leased_by) WHERE leased_by IS NOT NULL;
"#,
    r#"
-- A function's tags (TagResource, UntagResource, Tags on CreateFunction): they belong to
-- the function, not to a version, and go with it.
CREATE TABLE function_tags (
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (function, key)
) STRICT, WITHOUT ROWID;
"#,
    r#"
-- Layers. `next_version` only grows, so a deleted version's number is never reused.
CREATE TABLE layers (
    name TEXT PRIMARY KEY NOT NULL,
    next_version INTEGER NOT NULL
) STRICT;

CREATE TABLE layer_versions (
    layer TEXT NOT NULL REFERENCES layers(name),
    version INTEGER NOT NULL,
    code_sha256 TEXT NOT NULL,
    record TEXT NOT NULL,
    -- Its permission policy (AddLayerVersionPermission), if any.
    policy TEXT,
    PRIMARY KEY (layer, version)
) STRICT, WITHOUT ROWID;
"#,
];

/// Logs schema, migrated like [`META_MIGRATIONS`].
const LOG_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    function TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    request_id TEXT,
    message TEXT NOT NULL
) STRICT;
CREATE INDEX logs_by_function ON logs(function, seq);
CREATE INDEX logs_by_time ON logs(timestamp_ms);
"#,
    r#"
-- Who wrote each line. Lines written before this column existed cannot be told apart, so
-- they count as the function's: a forged `REPORT` among them must never pass for Warden's.
ALTER TABLE logs ADD COLUMN source TEXT NOT NULL DEFAULT 'function'
    CHECK (source IN ('platform', 'function'));
"#,
    r#"
-- CloudWatch Logs' model. `function` is now a log group's key: a function's name for its
-- group `/aws/lambda/NAME`, or ':' and the name of any other group (no function name holds
-- a colon). A line's stream (`log_streams.id`) is the instance that wrote it, or the
-- stream PutLogEvents named; lines written before have none. `ingestion_ms` is when a
-- line was stored, if not its timestamp.
ALTER TABLE logs ADD COLUMN stream_id INTEGER;
ALTER TABLE logs ADD COLUMN ingestion_ms INTEGER;
CREATE INDEX logs_by_stream ON logs(stream_id, seq);
CREATE TABLE log_groups (
    name TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    retention_days INTEGER CHECK (retention_days IS NULL OR retention_days > 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE log_streams (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    first_event_ms INTEGER,
    last_event_ms INTEGER,
    last_ingestion_ms INTEGER,
    UNIQUE (key, name)
) STRICT;
INSERT INTO log_groups (name, key, created_ms)
    SELECT '/aws/lambda/' || function, function, min(timestamp_ms) FROM logs GROUP BY function;
"#,
];

/// Lines deleted per transaction while pruning, so appends never wait long.
const PRUNE_BATCH_ROWS: i64 = 2000;
/// Free pages given back per `incremental_vacuum` step (4 MiB with 2 KiB-4 KiB pages).
const VACUUM_BATCH_PAGES: i64 = 1024;
/// Size the logs write-ahead log is cut back to after a checkpoint.
const LOG_WAL_LIMIT_BYTES: i64 = 4 * 1024 * 1024;
/// The columns one log line binds in an insert.
const LOG_INSERT_COLUMNS: usize = 6;
/// The rows per insert statement, largest first: a batch goes in by as many of the largest
/// as fit, then smaller ones, so that a handful of statements (each cached once) cover any
/// batch size. The last is 1, so some size always fits.
const LOG_INSERT_CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// The insert statement of each of [`LOG_INSERT_CHUNKS`], with its row count, built once.
fn log_insert_statements() -> &'static [(usize, String)] {
    static SQL: std::sync::OnceLock<Vec<(usize, String)>> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        LOG_INSERT_CHUNKS
            .iter()
            .map(|&n| {
                let values = (0..n)
                    .map(|i| {
                        let p = i * LOG_INSERT_COLUMNS;
                        format!(
                            "(?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                            p + 1,
                            p + 2,
                            p + 3,
                            p + 4,
                            p + 5,
                            p + 6
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT OR FAIL INTO logs (function, timestamp_ms, request_id, message, source, stream_id) \
                     VALUES {values}"
                );
                (n, sql)
            })
            .collect()
    })
}

/// The metadata schema version this build writes.
pub const SCHEMA_VERSION: i64 = META_MIGRATIONS.len() as i64;

/// The embedded [`crate::Store`]. Cheap to share behind an `Arc`; every method blocks.
pub struct SqliteStore {
    meta_path: PathBuf,
    writer: Mutex<Connection>,
    /// Queue writes waiting for the next group commit (see [`SqliteStore::write_grouped`]).
    pending: Mutex<Vec<Box<dyn GroupedWrite>>>,
    reader: Mutex<Connection>,
    log_writer: Mutex<Connection>,
    log_reader: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("meta_path", &self.meta_path)
            .finish_non_exhaustive()
    }
}

/// A backend failure, its SQLite cause kept only as an opaque source.
fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Backend {
        context,
        source: Box::new(source),
    }
}

/// The store's error for a failure of the shared plumbing (opening, migrating).
fn plumbing(e: warden_sqlite::Error) -> StoreError {
    use warden_sqlite::Error as E;
    match e {
        E::Sqlite { context, source } => StoreError::Backend {
            context,
            source: Box::new(source),
        },
        E::Io {
            context,
            path,
            source,
        } => StoreError::DatabaseIo {
            context,
            path,
            source,
        },
        E::SchemaTooNew { found, supported } => StoreError::SchemaTooNew { found, supported },
        E::WalUnavailable { path, mode } => StoreError::WalUnavailable { path, mode },
        other @ E::DanglingForeignKeys { .. } => StoreError::Backend {
            context: "migrating the schema",
            source: Box::new(other),
        },
    }
}

/// A panic while holding a connection leaves no open transaction behind (rusqlite rolls
/// back on drop), so a poisoned lock is still safe to use.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    warden_sqlite::lock(m)
}

fn immediate<'c>(
    conn: &'c mut Connection,
    context: &'static str,
) -> Result<Transaction<'c>, StoreError> {
    warden_sqlite::immediate(conn).map_err(db(context))
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn lock_pending(
    m: &Mutex<Vec<Box<dyn GroupedWrite>>>,
) -> MutexGuard<'_, Vec<Box<dyn GroupedWrite>>> {
    warden_sqlite::lock(m)
}

/// One write waiting in a group commit, type-erased so writes of different result
/// types share a batch.
trait GroupedWrite: Send {
    /// Runs the write inside the batch's transaction; false if it failed (and so its
    /// savepoint must be rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Reports the outcome to the waiting caller: the batch's error if the batch failed,
    /// else the write's own result.
    fn finish(self: Box<Self>, batch: Result<(), &Arc<rusqlite::Error>>);
}

struct Grouped<T, F> {
    context: &'static str,
    write: Option<F>,
    out: Option<Result<T, StoreError>>,
    done: mpsc::SyncSender<Result<T, StoreError>>,
}

impl<T, F> GroupedWrite for Grouped<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let out = self.write.take().map(|f| f(conn));
        let ok = matches!(out, Some(Ok(_)));
        self.out = out;
        ok
    }

    fn finish(self: Box<Self>, batch: Result<(), &Arc<rusqlite::Error>>) {
        let result = match (batch, self.out) {
            (_, Some(Err(own))) => Err(own),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Ok(()), None) => Err(StoreError::WriteAbandoned),
            // Every write of a failed batch reports the one error that failed it.
            (Err(e), _) => Err(StoreError::Backend {
                context: self.context,
                source: Box::new(Arc::clone(e)),
            }),
        };
        // The caller may have gone (it cannot: it waits on this channel); nothing to do then.
        let _ = self.done.send(result);
    }
}

/// Runs and commits one group-commit batch, then reports to every waiting writer.
fn commit_batch(conn: &mut Connection, mut batch: Vec<Box<dyn GroupedWrite>>) {
    let outcome = (|| -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for job in &mut batch {
            conn.execute_batch("SAVEPOINT grouped_write")?;
            if job.run(conn) {
                conn.execute_batch("RELEASE grouped_write")?;
            } else {
                conn.execute_batch("ROLLBACK TO grouped_write; RELEASE grouped_write")?;
            }
        }
        conn.execute_batch("COMMIT")
    })();
    if outcome.is_err() {
        if let Err(e) = warden_sqlite::rollback_abandoned(conn) {
            tracing::error!(error = %e, "cannot roll back a failed write batch");
        }
    }
    let outcome = outcome.map_err(Arc::new);
    for job in batch {
        job.finish(outcome.as_ref().map(|_| ()));
    }
}

/// `$LATEST` is stored as 0 and published versions by number; anything else names no
/// version at all.
fn function_exists(tx: &Connection, name: &FunctionName) -> Result<bool, StoreError> {
    tx.prepare_cached("SELECT 1 FROM functions WHERE name = ?1")
        .and_then(|mut s| s.exists(params![name.as_str()]))
        .map_err(db("looking up a function"))
}

fn require_function(tx: &Connection, name: &FunctionName) -> Result<(), StoreError> {
    if function_exists(tx, name)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(function_label(name)))
    }
}

/// `NotFound` unless `version` names an existing version of `function`.
fn require_version(
    tx: &Connection,
    function: &FunctionName,
    version: &str,
) -> Result<(), StoreError> {
    let exists = match version_num(version) {
        None => false,
        Some(n) => tx
            .prepare_cached("SELECT 1 FROM versions WHERE function = ?1 AND version_num = ?2")
            .and_then(|mut s| s.exists(params![function.as_str(), n]))
            .map_err(db("looking up a version"))?,
    };
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound(version_label(function, version)))
    }
}

fn read_version_row(row: &Row<'_>, name: &FunctionName) -> Result<FunctionVersion, StoreError> {
    let num: i64 = row.get(0).map_err(db("reading a version"))?;
    let json: String = row.get(1).map_err(db("reading a version"))?;
    decode(&json, || {
        let v = if num == 0 {
            LATEST.to_owned()
        } else {
            num.to_string()
        };
        version_label(name, &v)
    })
}

/// Writes version `num` of `record`'s function; `json` is `record` encoded as a stored
/// record (see [`record::encode`]).
fn insert_version(
    tx: &Connection,
    record: &FunctionVersion,
    json: &str,
    num: i64,
    source_digest: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO versions (function, version_num, code_sha256, revision_id, source_digest, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (function, version_num) DO UPDATE SET
           code_sha256 = excluded.code_sha256, revision_id = excluded.revision_id,
           source_digest = excluded.source_digest, record = excluded.record",
    )
    .and_then(|mut s| {
        s.execute(params![
            record.name.as_str(),
            num,
            record.code_sha256,
            record.revision_id,
            source_digest,
            json
        ])
    })
    .map_err(db("writing a version"))?;
    Ok(())
}

/// `(page_count, freelist_count, page_size)` of a database.
fn page_counts(conn: &Connection) -> Result<(i64, i64, i64), StoreError> {
    let get = |name: &str| -> Result<i64, StoreError> {
        conn.pragma_query_value(None, name, |r| r.get(0))
            .map_err(db("measuring the logs database"))
    };
    Ok((
        get("page_count")?,
        get("freelist_count")?,
        get("page_size")?,
    ))
}

impl SqliteStore {
    /// Opens (creating if needed) the metadata database at `path` and the logs database
    /// beside it (see [`SqliteStore::logs_path`]), migrating both to the current schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let meta = warden_sqlite::open(
            path,
            &warden_sqlite::Options {
                synchronous: Synchronous::Full,
                migrations: META_MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(plumbing)?;
        let logs = warden_sqlite::open(
            &Self::logs_path(path),
            &warden_sqlite::Options {
                synchronous: Synchronous::Normal,
                migrations: LOG_MIGRATIONS,
                incremental_vacuum: true,
            },
        )
        .map_err(plumbing)?;
        logs.writer
            .pragma_update(None, "journal_size_limit", LOG_WAL_LIMIT_BYTES)
            .map_err(db("opening the logs database"))?;
        Ok(Self {
            meta_path: path.to_owned(),
            writer: Mutex::new(meta.writer),
            pending: Mutex::new(Vec::new()),
            reader: Mutex::new(meta.reader),
            log_writer: Mutex::new(logs.writer),
            log_reader: Mutex::new(logs.reader),
        })
    }

    /// Where the logs database of the metadata database at `meta` lives: same directory,
    /// same stem, `.logs.db` (`warden.db` → `warden.logs.db`).
    pub fn logs_path(meta: &Path) -> PathBuf {
        let stem = meta
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "warden".to_owned());
        meta.with_file_name(format!("{stem}.logs.db"))
    }

    /// The metadata database this store was opened on.
    pub fn path(&self) -> &Path {
        &self.meta_path
    }

    /// Bytes the log lines take in the logs database: its pages minus the free ones.
    pub fn log_bytes(&self) -> Result<u64, StoreError> {
        let conn = lock(&self.log_writer);
        let (pages, free, size) = page_counts(&conn)?;
        Ok(u64::try_from((pages - free).max(0) * size).unwrap_or(0))
    }

    /// Deletes one batch of log lines, the seqs `select` picks (a query given `?1` = `arg`
    /// and `?2` = `limit`), in its own transaction; returns how many went.
    fn delete_log_batch(&self, select: &str, arg: i64, limit: i64) -> Result<u64, StoreError> {
        let mut conn = lock(&self.log_writer);
        let tx = immediate(&mut conn, "pruning logs")?;
        let n = tx
            .execute(
                &format!("DELETE FROM logs WHERE seq IN ({select})"),
                params![arg, limit],
            )
            .map_err(db("pruning logs"))?;
        tx.commit().map_err(db("pruning logs"))?;
        Ok(n as u64)
    }

    /// Gives free pages of the logs database back to the file system, a batch at a time,
    /// then truncates its write-ahead log. Up to `keep_free` bytes of free pages stay: new
    /// lines reuse them, and pruning to 90 % of the cap leaves room for them within it. A
    /// file created before incremental vacuuming was turned on is converted once, with a
    /// full `VACUUM` (after pruning, so that it copies at most the size cap).
    fn reclaim_log_space(&self, keep_free: u64) -> Result<(), StoreError> {
        let mode: i64 = lock(&self.log_writer)
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .map_err(db("reading the logs vacuum mode"))?;
        // 2 is INCREMENTAL.
        if mode != 2 {
            let conn = lock(&self.log_writer);
            tracing::info!("converting the logs database to incremental vacuuming (once)");
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .map_err(db("converting the logs database"))?;
            conn.execute_batch("VACUUM")
                .map_err(db("converting the logs database"))?;
        } else {
            loop {
                let conn = lock(&self.log_writer);
                let (_, free, size) = page_counts(&conn)?;
                if u64::try_from(free * size).unwrap_or(u64::MAX) <= keep_free {
                    break;
                }
                conn.execute_batch(&format!(
                    "PRAGMA incremental_vacuum({})",
                    free.min(VACUUM_BATCH_PAGES)
                ))
                .map_err(db("shrinking the logs database"))?;
            }
        }
        // A reader still in the log may keep the checkpoint from finishing; the next prune
        // tries again.
        lock(&self.log_writer)
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(db("checkpointing the logs database"))
    }

    /// The write connection, with no transaction left open by a writer that panicked.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        let conn = lock(&self.writer);
        if let Err(e) = warden_sqlite::rollback_abandoned(&conn) {
            tracing::error!(error = %e, "cannot roll back a transaction abandoned by a panic");
        }
        conn
    }

    fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer();
        let tx = immediate(&mut conn, context)?;
        let out = f(&tx)?;
        tx.commit().map_err(db(context))?;
        Ok(out)
    }

    /// Runs `f` as part of a group commit: writes that arrive while another commit is
    /// being fsynced share the next transaction (each in its own savepoint, so one failing
    /// write does not undo the others) and so one fsync. Returns after the batch holding
    /// `f` committed, with `f`'s own result.
    ///
    /// INVARIANT: a job is pushed before its submitter takes the writer lock, and the
    /// thread that drains a batch reports every job in it before releasing the lock. So
    /// once a submitter holds the lock its job is either still queued (and it runs it) or
    /// already reported.
    fn write_grouped<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, outcome) = mpsc::sync_channel(1);
        lock_pending(&self.pending).push(Box::new(Grouped {
            context,
            write: Some(f),
            out: None,
            done,
        }));
        {
            let mut conn = self.writer();
            let batch = std::mem::take(&mut *lock_pending(&self.pending));
            if !batch.is_empty() {
                commit_batch(&mut conn, batch);
            }
        }
        outcome.recv().unwrap_or(Err(StoreError::WriteAbandoned))
    }

    /// Runs `f` in one read transaction, so multi-statement reads see one snapshot.
    fn read<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.reader);
        let tx = conn.transaction().map_err(db(context))?;
        f(&tx)
    }
}

// ---- tags (helper of the tag methods at the end of `impl Store`) ----

/// Replaces every tag of `function` inside `tx`.
fn write_tags(
    tx: &Connection,
    function: &FunctionName,
    tags: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM function_tags WHERE function = ?1",
        params![function.as_str()],
    )
    .map_err(db("writing tags"))?;
    let mut insert = tx
        .prepare_cached("INSERT INTO function_tags (function, key, value) VALUES (?1, ?2, ?3)")
        .map_err(db("writing tags"))?;
    for (k, v) in tags {
        insert
            .execute(params![function.as_str(), k, v])
            .map_err(db("writing tags"))?;
    }
    Ok(())
}

impl FunctionStore for SqliteStore {
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
        let conn = lock(&self.reader);
        let json: Option<String> = conn
            .prepare_cached("SELECT record FROM versions WHERE function = ?1 AND version_num = ?2")
            .and_then(|mut s| {
                s.query_row(params![name.as_str(), num], |r| r.get(0))
                    .optional()
            })
            .map_err(db("reading a version"))?;
        json.map(|j| decode(&j, || version_label(name, version)))
            .transpose()
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
        self.write("updating a function", |tx| {
            let current: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT revision_id, record FROM versions WHERE function = ?1 AND version_num = 0",
                )
                .and_then(|mut s| {
                    s.query_row(params![latest.name.as_str()], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                })
                .map_err(db("updating a function"))?;
            let (current, stored) =
                current.ok_or_else(|| StoreError::NotFound(function_label(&latest.name)))?;
            check_revision(expected_revision, &current)?;
            // Fields a newer node wrote survive this rewrite (see `record`).
            let (record, digest) = latest_record(latest, Some(&stored))?;
            insert_version(tx, latest, &record.json, 0, &digest)
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
        self.write("publishing a version", |tx| {
            let latest: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT record, source_digest FROM versions WHERE function = ?1 AND version_num = 0",
                )
                .and_then(|mut s| s.query_row(params![name.as_str()], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(db("publishing a version"))?;
            let (latest_json, latest_digest) = latest.ok_or_else(|| StoreError::NotFound(function_label(name)))?;
            let latest: FunctionVersion = decode(&latest_json, || version_label(name, LATEST))?;
            check_revision(expected_revision, &latest.revision_id)?;

            let newest: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT record, source_digest FROM versions
                     WHERE function = ?1 AND version_num > 0 ORDER BY version_num DESC LIMIT 1",
                )
                .and_then(|mut s| s.query_row(params![name.as_str()], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(db("publishing a version"))?;
            if let Some((json, digest)) = newest {
                if digest == latest_digest {
                    return decode(&json, || format!("the newest published version of function `{name}`"));
                }
            }

            let num: i64 = tx
                .prepare_cached("UPDATE functions SET next_version = next_version + 1 WHERE name = ?1 RETURNING next_version - 1")
                .and_then(|mut s| s.query_row(params![name.as_str()], |r| r.get(0)))
                .map_err(db("numbering a new version"))?;
            let (published, json) =
                published_copy(latest, &latest_json, num, new_revision_id, now_ms, description)?;
            insert_version(tx, &published, &json, num, &latest_digest)?;
            Ok(published)
        })
    }

    fn list_functions(
        &self,
        after: Option<&FunctionName>,
        limit: usize,
    ) -> Result<Vec<FunctionVersion>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT function, record FROM versions WHERE version_num = 0 AND function > ?1
                 ORDER BY function LIMIT ?2",
            )
            .map_err(db("listing functions"))?;
        let rows = stmt
            .query_map(
                params![after.map_or("", FunctionName::as_str), to_i64(limit)],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .map_err(db("listing functions"))?;
        let mut out = Vec::new();
        for row in rows {
            let (function, json) = row.map_err(db("listing functions"))?;
            out.push(decode(&json, || {
                format!("version `{LATEST}` of function `{function}`")
            })?);
        }
        Ok(out)
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
        self.read("listing versions", |tx| {
            require_function(tx, name)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT version_num, record FROM versions WHERE function = ?1 AND version_num > ?2
                     ORDER BY version_num LIMIT ?3",
                )
                .map_err(db("listing versions"))?;
            let mut rows = stmt
                .query(params![name.as_str(), after_num, to_i64(limit)])
                .map_err(db("listing versions"))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(db("listing versions"))? {
                out.push(read_version_row(row, name)?);
            }
            Ok(out)
        })
    }

    fn delete_function(
        &self,
        name: &FunctionName,
        version: Option<&str>,
    ) -> Result<bool, StoreError> {
        let Some(version) = version else {
            return self.write("deleting a function", |tx| {
                // Foreign keys would cascade too; explicit deletes keep this correct even
                // on a connection opened without them.
                for sql in [
                    "DELETE FROM function_tags WHERE function = ?1",
                    "DELETE FROM function_policies WHERE function = ?1",
                    "DELETE FROM events WHERE function = ?1",
                    "DELETE FROM reserved_concurrency WHERE function = ?1",
                    "DELETE FROM aliases WHERE function = ?1",
                    "DELETE FROM versions WHERE function = ?1",
                ] {
                    tx.execute(sql, params![name.as_str()])
                        .map_err(db("deleting a function"))?;
                }
                let n = tx
                    .execute(
                        "DELETE FROM functions WHERE name = ?1",
                        params![name.as_str()],
                    )
                    .map_err(db("deleting a function"))?;
                Ok(n > 0)
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
        self.write("deleting a version", |tx| {
            let alias: Option<String> = tx
                .prepare_cached(
                    "SELECT name FROM aliases WHERE function = ?1 AND (function_version = ?2 OR routing_version = ?2)
                     ORDER BY name LIMIT 1",
                )
                .and_then(|mut s| s.query_row(params![name.as_str(), version], |r| r.get(0)).optional())
                .map_err(db("deleting a version"))?;
            if let Some(alias) = alias {
                return Err(StoreError::Conflict(format!(
                    "{} cannot be deleted because alias `{alias}` points to it",
                    version_label(name, version)
                )));
            }
            let n = tx
                .execute(
                    "DELETE FROM versions WHERE function = ?1 AND version_num = ?2",
                    params![name.as_str(), num],
                )
                .map_err(db("deleting a version"))?;
            Ok(n > 0)
        })
    }

    fn referenced_code(&self) -> Result<Vec<String>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT code_sha256 FROM versions
                 UNION SELECT record ->> '$.opt_sha256' FROM versions
                     WHERE record ->> '$.opt_sha256' IS NOT NULL
                 UNION SELECT layer.value ->> '$.code_sha256'
                     FROM versions, json_each(versions.record, '$.layers') AS layer
                 UNION SELECT code_sha256 FROM layer_versions
                 ORDER BY 1",
            )
            .map_err(db("listing referenced code"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(db("listing referenced code"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("listing referenced code"))
    }

    fn create_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        let json = record::encode(alias, None, "the alias")?.json;
        self.write("creating an alias", |tx| {
            require_function(tx, &alias.function)?;
            require_version(tx, &alias.function, &alias.function_version)?;
            if let Some((routed, _)) = &alias.routing {
                require_version(tx, &alias.function, routed)?;
            }
            let n = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO aliases (function, name, function_version, routing_version, revision_id, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        alias.function.as_str(),
                        alias.name,
                        alias.function_version,
                        alias.routing.as_ref().map(|(v, _)| v.as_str()),
                        alias.revision_id,
                        json
                    ])
                })
                .map_err(db("creating an alias"))?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(alias_label(&alias.function, &alias.name)));
            }
            Ok(())
        })
    }

    fn get_alias(&self, function: &FunctionName, name: &str) -> Result<Option<Alias>, StoreError> {
        let conn = lock(&self.reader);
        let json: Option<String> = conn
            .prepare_cached("SELECT record FROM aliases WHERE function = ?1 AND name = ?2")
            .and_then(|mut s| {
                s.query_row(params![function.as_str(), name], |r| r.get(0))
                    .optional()
            })
            .map_err(db("reading an alias"))?;
        json.map(|j| read_alias(&j, function, name)).transpose()
    }

    fn update_alias(
        &self,
        alias: &Alias,
        expected_revision: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write("updating an alias", |tx| {
            let current: Option<(String, String)> = tx
                .prepare_cached("SELECT revision_id, record FROM aliases WHERE function = ?1 AND name = ?2")
                .and_then(|mut s| s.query_row(params![alias.function.as_str(), alias.name], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(db("updating an alias"))?;
            let (current, stored) = current.ok_or_else(|| StoreError::NotFound(alias_label(&alias.function, &alias.name)))?;
            check_revision(expected_revision, &current)?;
            let json = record::encode(alias, Some(&stored), "the alias")?.json;
            require_version(tx, &alias.function, &alias.function_version)?;
            if let Some((routed, _)) = &alias.routing {
                require_version(tx, &alias.function, routed)?;
            }
            tx.prepare_cached(
                "UPDATE aliases SET function_version = ?3, routing_version = ?4, revision_id = ?5, record = ?6
                 WHERE function = ?1 AND name = ?2",
            )
            .and_then(|mut s| {
                s.execute(params![
                    alias.function.as_str(),
                    alias.name,
                    alias.function_version,
                    alias.routing.as_ref().map(|(v, _)| v.as_str()),
                    alias.revision_id,
                    json
                ])
            })
            .map_err(db("updating an alias"))?;
            Ok(())
        })
    }

    fn delete_alias(&self, function: &FunctionName, name: &str) -> Result<bool, StoreError> {
        self.write("deleting an alias", |tx| {
            let n = tx
                .execute(
                    "DELETE FROM aliases WHERE function = ?1 AND name = ?2",
                    params![function.as_str(), name],
                )
                .map_err(db("deleting an alias"))?;
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
        self.read("listing aliases", |tx| {
            require_function(tx, function)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT name, record FROM aliases
                     WHERE function = ?1 AND name > ?2
                       AND (?3 IS NULL OR function_version = ?3 OR routing_version = ?3)
                     ORDER BY name LIMIT ?4",
                )
                .map_err(db("listing aliases"))?;
            let rows = stmt
                .query_map(
                    params![
                        function.as_str(),
                        after.unwrap_or(""),
                        version,
                        to_i64(limit)
                    ],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .map_err(db("listing aliases"))?;
            let mut out = Vec::new();
            for row in rows {
                let (name, json) = row.map_err(db("listing aliases"))?;
                out.push(read_alias(&json, function, &name)?);
            }
            Ok(out)
        })
    }

    fn put_reserved_concurrency(
        &self,
        function: &FunctionName,
        reserved: Option<u32>,
    ) -> Result<(), StoreError> {
        self.write("setting reserved concurrency", |tx| {
            require_function(tx, function)?;
            match reserved {
                Some(n) => tx.execute(
                    "INSERT INTO reserved_concurrency (function, reserved) VALUES (?1, ?2)
                     ON CONFLICT (function) DO UPDATE SET reserved = excluded.reserved",
                    params![function.as_str(), n],
                ),
                None => tx.execute(
                    "DELETE FROM reserved_concurrency WHERE function = ?1",
                    params![function.as_str()],
                ),
            }
            .map_err(db("setting reserved concurrency"))?;
            Ok(())
        })
    }

    fn get_reserved_concurrency(&self, function: &FunctionName) -> Result<Option<u32>, StoreError> {
        let conn = lock(&self.reader);
        conn.prepare_cached("SELECT reserved FROM reserved_concurrency WHERE function = ?1")
            .and_then(|mut s| {
                s.query_row(params![function.as_str()], |r| r.get(0))
                    .optional()
            })
            .map_err(db("reading reserved concurrency"))
    }

    fn all_reserved_concurrency(&self) -> Result<Vec<(FunctionName, u32)>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached("SELECT function, reserved FROM reserved_concurrency ORDER BY function")
            .map_err(db("listing reserved concurrency"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))
            .map_err(db("listing reserved concurrency"))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, n) = row.map_err(db("listing reserved concurrency"))?;
            out.push((stored_name(name)?, n));
        }
        Ok(out)
    }

    fn get_function_policy(&self, function: &FunctionName) -> Result<Option<String>, StoreError> {
        let conn = lock(&self.reader);
        conn.prepare_cached("SELECT document FROM function_policies WHERE function = ?1")
            .and_then(|mut s| {
                s.query_row(params![function.as_str()], |r| r.get(0))
                    .optional()
            })
            .map_err(db("reading a function policy"))
    }

    fn put_function_policy(
        &self,
        function: &FunctionName,
        document: Option<&str>,
    ) -> Result<(), StoreError> {
        let name = function.as_str().to_owned();
        let document = document.map(str::to_owned);
        self.write("writing a function policy", move |tx| {
            let exists: bool = tx
                .query_row(
                    "SELECT 1 FROM functions WHERE name = ?1",
                    params![name],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db("writing a function policy"))?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound(format!("function `{name}`")));
            }
            match document {
                Some(doc) => tx.execute(
                    "INSERT INTO function_policies (function, document) VALUES (?1, ?2)
                     ON CONFLICT (function) DO UPDATE SET document = excluded.document",
                    params![name, doc],
                ),
                None => tx.execute(
                    "DELETE FROM function_policies WHERE function = ?1",
                    params![name],
                ),
            }
            .map_err(db("writing a function policy"))?;
            Ok(())
        })
    }

    fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = lock(&self.reader);
        conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")
            .and_then(|mut s| s.query_row(params![key], |r| r.get(0)).optional())
            .map_err(db("reading a setting"))
    }

    fn seal_plaintext_environments(
        &self,
        seal: crate::SealPlaintext<'_>,
    ) -> Result<usize, StoreError> {
        let ctx = "sealing plain environments";
        let names: Vec<String> = {
            let conn = warden_sqlite::lock(&self.reader);
            let mut st = conn
                .prepare("SELECT DISTINCT function FROM versions WHERE record LIKE '%\"environment\":{%'")
                .map_err(db(ctx))?;
            let rows = st.query_map([], |r| r.get(0)).map_err(db(ctx))?;
            rows.collect::<Result<_, _>>().map_err(db(ctx))?
        };
        if names.is_empty() {
            return Ok(0);
        }
        // The plain records' bytes must not linger in freed space or in the database file
        // behind the WAL: zero what is freed, and checkpoint once done.
        self.writer()
            .pragma_update(None, "secure_delete", true)
            .map_err(db(ctx))?;
        let mut sealed = 0;
        for name in names {
            sealed += self.write(ctx, |tx| {
                let rows: Vec<(i64, String, String)> = tx
                    .prepare(
                        "SELECT version_num, record, source_digest FROM versions \
                         WHERE function = ?1 ORDER BY version_num",
                    )
                    .and_then(|mut st| {
                        st.query_map(params![name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                            .collect::<Result<_, _>>()
                    })
                    .map_err(db(ctx))?;
                let mut count = 0;
                let mut digests = Vec::new();
                for (num, json, source_digest) in rows {
                    let Some(row) = sealed_copy(&name, num, &json, source_digest, seal)? else {
                        continue;
                    };
                    insert_version(tx, &row.version, &row.json, num, &row.digest)?;
                    digests.extend(row.follow);
                    count += 1;
                }
                // Versions published from `$LATEST` as it was are its copies still.
                for (before, after) in digests {
                    tx.execute(
                        "UPDATE versions SET source_digest = ?3 \
                         WHERE function = ?1 AND version_num > 0 AND source_digest = ?2",
                        params![name, before, after],
                    )
                    .map_err(db(ctx))?;
                }
                Ok(count)
            })?;
        }
        let conn = self.writer();
        conn.execute_batch(
            "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .map_err(db(ctx))?;
        conn.pragma_update(None, "secure_delete", false)
            .map_err(db(ctx))?;
        Ok(sealed)
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write("writing a setting", |tx| {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(db("writing a setting"))?;
            Ok(())
        })
    }

    // ---- tags ----

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
        self.write("creating a function", |tx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO functions (name, next_version) VALUES (?1, 1)",
                )
                .and_then(|mut s| s.execute(params![latest.name.as_str()]))
                .map_err(db("creating a function"))?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(function_label(&latest.name)));
            }
            insert_version(tx, latest, &record.json, 0, &digest)?;
            write_tags(tx, &latest.name, tags)
        })
    }

    fn get_tags(
        &self,
        function: &FunctionName,
    ) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        self.read("reading tags", |tx| {
            if !function_exists(tx, function)? {
                return Ok(None);
            }
            let mut stmt = tx
                .prepare_cached("SELECT key, value FROM function_tags WHERE function = ?1")
                .map_err(db("reading tags"))?;
            let rows = stmt
                .query_map(params![function.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db("reading tags"))?;
            rows.collect::<Result<BTreeMap<_, _>, _>>()
                .map(Some)
                .map_err(db("reading tags"))
        })
    }

    fn replace_tags(
        &self,
        function: &FunctionName,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.write("writing tags", |tx| {
            require_function(tx, function)?;
            write_tags(tx, function, tags)
        })
    }
}

impl LogStore for SqliteStore {
    fn append_logs(&self, records: &[LogRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = lock(&self.log_writer);
        let tx = immediate(&mut conn, "appending logs")?;
        {
            // Each function's group, and each stream's event span, once per batch.
            let mut streams: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
            let mut groups: BTreeMap<&str, i64> = BTreeMap::new();
            for r in records {
                groups.entry(r.function.as_str()).or_insert(r.timestamp_ms);
                if let Some(stream) = &r.stream {
                    let span = streams
                        .entry((r.function.as_str(), stream.as_str()))
                        .or_insert((r.timestamp_ms, r.timestamp_ms));
                    span.0 = span.0.min(r.timestamp_ms);
                    span.1 = span.1.max(r.timestamp_ms);
                }
            }
            let now = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
            let mut ids: BTreeMap<(&str, &str), i64> = BTreeMap::new();
            for (&(key, stream), &(first, last)) in &streams {
                let id = upsert_stream(&tx, key, stream, first, last, now)
                    .map_err(db("appending logs"))?;
                ids.insert((key, stream), id);
            }
            // Rows go in by statements of several rows each: a statement's fixed cost (and
            // AUTOINCREMENT's read and write of `sqlite_sequence`) is then paid per chunk, not
            // per line. Rows keep their order, so `seq` follows the batch as before. The
            // statements are `INSERT OR FAIL`: a failure keeps the rows before it, which costs
            // nothing here since any error drops the whole transaction, and spares SQLite the
            // statement journal (a copy of every page a multi-row statement touches, spilled
            // to a temporary file past 64 KiB) that undoing a half-done statement would need.
            let mut rest = records;
            while let Some((rows, sql)) = log_insert_statements()
                .iter()
                .find(|(n, _)| *n <= rest.len())
            {
                let (chunk, tail) = rest.split_at(*rows);
                rest = tail;
                let mut stmt = tx.prepare_cached(sql).map_err(db("appending logs"))?;
                for (i, r) in chunk.iter().enumerate() {
                    let stream_id = r
                        .stream
                        .as_deref()
                        .and_then(|s| ids.get(&(r.function.as_str(), s)));
                    let values: [&dyn rusqlite::ToSql; LOG_INSERT_COLUMNS] = [
                        &r.function.as_str(),
                        &r.timestamp_ms,
                        &r.request_id,
                        &r.message,
                        &r.source.as_str(),
                        &stream_id,
                    ];
                    for (column, value) in values.into_iter().enumerate() {
                        stmt.raw_bind_parameter(i * LOG_INSERT_COLUMNS + column + 1, value)
                            .map_err(db("appending logs"))?;
                    }
                }
                stmt.raw_execute().map_err(db("appending logs"))?;
                // Only the log writer thread appends, and its batches take milliseconds at
                // load. The scheduler places a woken task on the CPU it last ran on, and an
                // invocation's next step (the server, the function, the client) queued
                // behind this thread waited for the whole batch while the other CPU idled.
                // Yielding after each chunk lets it run sooner (measured: p99 of the warm
                // invoke at one connection down by about a quarter, throughput unchanged).
                std::thread::yield_now();
            }
            for (function, first) in groups {
                tx.prepare_cached(
                    "INSERT INTO log_groups (name, key, created_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        format!("{FUNCTION_GROUP_PREFIX}{function}"),
                        function,
                        first
                    ])
                })
                .map_err(db("appending logs"))?;
            }
        }
        tx.commit().map_err(db("appending logs"))
    }

    fn read_logs(
        &self,
        function: &FunctionName,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let conn = lock(&self.log_reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT l.seq, l.timestamp_ms, l.request_id, l.message, l.source, s.name
                 FROM logs l LEFT JOIN log_streams s ON s.id = l.stream_id
                 WHERE l.function = ?1 AND l.seq > ?2 ORDER BY l.seq LIMIT ?3",
            )
            .map_err(db("reading logs"))?;
        let rows = stmt
            .query_map(params![function.as_str(), after_seq, to_i64(limit)], |r| {
                let source: String = r.get(4)?;
                Ok(LogRecord {
                    seq: r.get(0)?,
                    function: function.clone(),
                    timestamp_ms: r.get(1)?,
                    request_id: r.get(2)?,
                    message: r.get(3)?,
                    // The column's CHECK admits only the two spellings; should a damaged
                    // row hold anything else, it is not trusted as Warden's.
                    source: LogSource::parse(&source).unwrap_or(LogSource::Function),
                    stream: r.get(5)?,
                })
            })
            .map_err(db("reading logs"))?;
        rows.collect::<Result<_, _>>().map_err(db("reading logs"))
    }

    fn prune_logs(&self, retention: &LogRetention, now_ms: i64) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport {
            bytes_before: self.log_bytes()?,
            ..PruneReport::default()
        };
        let cutoff = now_ms.saturating_sub(retention.max_age_ms);
        loop {
            let n = self.delete_log_batch(
                "SELECT seq FROM logs WHERE timestamp_ms < ?1 ORDER BY seq LIMIT ?2",
                cutoff,
                PRUNE_BATCH_ROWS,
            )?;
            report.expired += n;
            if n < PRUNE_BATCH_ROWS as u64 {
                break;
            }
        }
        report.expired += self.expire_groups(now_ms)?;
        // A stream whose newest event expired is gone with it.
        lock(&self.log_writer)
            .execute(
                "DELETE FROM log_streams WHERE last_event_ms < ?1",
                params![cutoff],
            )
            .map_err(db("pruning logs"))?;
        if self.log_bytes()? > retention.max_bytes {
            let target = retention.max_bytes / 10 * 9;
            loop {
                let used = self.log_bytes()?;
                if used <= target {
                    break;
                }
                // As many of the oldest lines as should free the excess, from the average
                // line size (seqs only grow, so the span over-counts lines, never under).
                let (first, last): (Option<i64>, Option<i64>) = lock(&self.log_writer)
                    .query_row("SELECT min(seq), max(seq) FROM logs", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(db("pruning logs"))?;
                let (Some(first), Some(last)) = (first, last) else {
                    break;
                };
                let lines = (last - first + 1).max(1);
                let average = (i64::try_from(used).unwrap_or(i64::MAX) / lines).max(1);
                let excess = i64::try_from(used - target).unwrap_or(i64::MAX);
                let n = self.delete_log_batch(
                    "SELECT seq FROM logs WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
                    first,
                    (excess / average).clamp(1, PRUNE_BATCH_ROWS),
                )?;
                if n == 0 {
                    break;
                }
                report.evicted += n;
            }
        }
        self.reclaim_log_space(retention.max_bytes / 10)?;
        report.bytes_after = self.log_bytes()?;
        Ok(report)
    }

    fn create_log_group(&self, group: &LogGroup, now_ms: i64) -> Result<bool, StoreError> {
        let conn = lock(&self.log_writer);
        let n = conn
            .execute(
                "INSERT INTO log_groups (name, key, created_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![group.name(), group.key(), now_ms],
            )
            .map_err(db("creating a log group"))?;
        Ok(n == 1)
    }

    fn delete_log_group(&self, group: &LogGroup) -> Result<bool, StoreError> {
        let key = group.key();
        // The group row goes last, so a crash midway leaves a group that can be deleted
        // again.
        self.delete_lines(
            "deleting a log group",
            "SELECT seq FROM logs WHERE function = ?1 LIMIT ?2",
            &[&key],
        )?;
        let mut conn = lock(&self.log_writer);
        let tx = immediate(&mut conn, "deleting a log group")?;
        tx.execute("DELETE FROM log_streams WHERE key = ?1", params![key])
            .map_err(db("deleting a log group"))?;
        let n = tx
            .execute("DELETE FROM log_groups WHERE key = ?1", params![key])
            .map_err(db("deleting a log group"))?;
        tx.commit().map_err(db("deleting a log group"))?;
        Ok(n == 1)
    }

    fn custom_log_group_count(&self) -> Result<u64, StoreError> {
        lock(&self.log_reader)
            .query_row(
                "SELECT count(*) FROM log_groups WHERE substr(key, 1, 1) = ':'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(db("counting log groups"))
    }

    fn log_group(&self, group: &LogGroup) -> Result<Option<LogGroupInfo>, StoreError> {
        let conn = lock(&self.log_reader);
        conn.query_row(
            "SELECT name, created_ms, retention_days FROM log_groups WHERE key = ?1",
            params![group.key()],
            group_info,
        )
        .optional()
        .map_err(db("reading a log group"))
    }

    fn list_log_groups(
        &self,
        prefix: &str,
        pattern: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogGroupInfo>, StoreError> {
        let conn = lock(&self.log_reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT name, created_ms, retention_days FROM log_groups
                 WHERE name > ?1 AND substr(name, 1, length(?2)) = ?2
                   AND (?4 = '' OR instr(lower(name), lower(?4)) > 0)
                 ORDER BY name LIMIT ?3",
            )
            .map_err(db("listing log groups"))?;
        let rows = stmt
            .query_map(
                params![after.unwrap_or(""), prefix, to_i64(limit), pattern],
                group_info,
            )
            .map_err(db("listing log groups"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("listing log groups"))
    }

    fn set_log_retention(
        &self,
        group: &LogGroup,
        days: Option<u32>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let key = group.key();
        let n = lock(&self.log_writer)
            .execute(
                "UPDATE log_groups SET retention_days = ?2 WHERE key = ?1",
                params![key, days],
            )
            .map_err(db("setting a log group's retention"))?;
        if n == 0 {
            return Ok(false);
        }
        if let Some(days) = days {
            self.expire_group(&key, now_ms - i64::from(days) * DAY_MS)?;
        }
        Ok(true)
    }

    fn create_log_stream(
        &self,
        group: &LogGroup,
        stream: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let conn = lock(&self.log_writer);
        let n = conn
            .execute(
                "INSERT INTO log_streams (key, name, created_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![group.key(), stream, now_ms],
            )
            .map_err(db("creating a log stream"))?;
        Ok(n == 1)
    }

    fn delete_log_stream(&self, group: &LogGroup, stream: &str) -> Result<bool, StoreError> {
        let key = group.key();
        self.delete_lines(
            "deleting a log stream",
            "SELECT seq FROM logs WHERE stream_id =
                (SELECT id FROM log_streams WHERE key = ?1 AND name = ?2) LIMIT ?3",
            &[&key, &stream],
        )?;
        let n = lock(&self.log_writer)
            .execute(
                "DELETE FROM log_streams WHERE key = ?1 AND name = ?2",
                params![key, stream],
            )
            .map_err(db("deleting a log stream"))?;
        Ok(n == 1)
    }

    fn list_log_streams(
        &self,
        group: &LogGroup,
        query: &StreamQuery<'_>,
    ) -> Result<Vec<LogStreamInfo>, StoreError> {
        let direction = if query.descending { "DESC" } else { "ASC" };
        let order = if query.by_last_event {
            format!("coalesce(last_event_ms, created_ms) {direction}, name {direction}")
        } else {
            format!("name {direction}")
        };
        let conn = lock(&self.log_reader);
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms
                 FROM log_streams
                 WHERE key = ?1 AND substr(name, 1, length(?2)) = ?2
                 ORDER BY {order} LIMIT ?3 OFFSET ?4"
            ))
            .map_err(db("listing log streams"))?;
        let rows = stmt
            .query_map(
                params![
                    group.key(),
                    query.prefix,
                    to_i64(query.limit),
                    to_i64(query.offset)
                ],
                |r| {
                    Ok(LogStreamInfo {
                        name: r.get(0)?,
                        created_ms: r.get(1)?,
                        first_event_ms: r.get(2)?,
                        last_event_ms: r.get(3)?,
                        last_ingestion_ms: r.get(4)?,
                    })
                },
            )
            .map_err(db("listing log streams"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("listing log streams"))
    }

    fn append_events(
        &self,
        group: &LogGroup,
        stream: &str,
        events: &[(i64, String)],
        ingestion_ms: i64,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let key = group.key();
        let mut conn = lock(&self.log_writer);
        let tx = immediate(&mut conn, "appending log events")?;
        let first = events.iter().map(|e| e.0).min().unwrap_or(ingestion_ms);
        let last = events.iter().map(|e| e.0).max().unwrap_or(ingestion_ms);
        let stream_id = upsert_stream(&tx, &key, stream, first, last, ingestion_ms)
            .map_err(db("appending log events"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO logs (function, timestamp_ms, message, source, stream_id, ingestion_ms)
                     VALUES (?1, ?2, ?3, 'function', ?4, ?5)",
                )
                .map_err(db("appending log events"))?;
            for (timestamp, message) in events {
                stmt.execute(params![key, timestamp, message, stream_id, ingestion_ms])
                    .map_err(db("appending log events"))?;
            }
        }
        tx.commit().map_err(db("appending log events"))
    }

    fn scan_events(
        &self,
        range: &EventRange<'_>,
        visit: &mut dyn FnMut(EventRef<'_>) -> Scan,
    ) -> Result<(), StoreError> {
        let (seq_test, order, seq) = match range.cursor {
            Cursor::After(n) => ("seq > ?2", "ASC", n),
            Cursor::Before(n) => ("seq < ?2", "DESC", n),
        };
        // The group's own index always: its lines in seq order, never a sort, however
        // many lines other groups hold. Conditions not asked for are left out, so the
        // planner has nothing to weigh.
        let (index, stream_test) = if range.stream.is_some() {
            (
                "logs_by_stream",
                "AND l.stream_id = (SELECT id FROM log_streams WHERE key = ?1 AND name = ?5)",
            )
        } else {
            ("logs_by_function", "AND ?5 IS NULL")
        };
        let start_test = if range.start_ms.is_some() {
            "AND l.timestamp_ms >= ?3"
        } else {
            "AND ?3 IS NOT NULL"
        };
        let end_test = if range.end_ms.is_some() {
            "AND l.timestamp_ms < ?4"
        } else {
            "AND ?4 IS NOT NULL"
        };
        let sql = format!(
            "SELECT l.seq, s.name, l.timestamp_ms, coalesce(l.ingestion_ms, l.timestamp_ms),
                    l.message, l.source, l.request_id
             FROM logs l INDEXED BY {index} LEFT JOIN log_streams s ON s.id = l.stream_id
             WHERE l.function = ?1 AND l.{seq_test} {start_test} {end_test} {stream_test}
             ORDER BY l.seq {order}"
        );
        let conn = lock(&self.log_reader);
        let mut stmt = conn
            .prepare_cached(&sql)
            .map_err(db("reading log events"))?;
        let mut rows = stmt
            .query(params![
                range.group.key(),
                seq,
                range.start_ms.unwrap_or(i64::MIN),
                range.end_ms.unwrap_or(i64::MAX),
                range.stream,
            ])
            .map_err(db("reading log events"))?;
        while let Some(r) = rows.next().map_err(db("reading log events"))? {
            let text = |i: usize| -> Result<Option<&str>, StoreError> {
                match r.get_ref(i).map_err(db("reading log events"))? {
                    rusqlite::types::ValueRef::Null => Ok(None),
                    v => v.as_str().map(Some).map_err(|e| {
                        db("reading log events")(rusqlite::Error::FromSqlConversionFailure(
                            i,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        ))
                    }),
                }
            };
            let source = text(5)?
                .and_then(LogSource::parse)
                .unwrap_or(LogSource::Function);
            let event = EventRef {
                seq: r.get(0).map_err(db("reading log events"))?,
                stream: text(1)?,
                timestamp_ms: r.get(2).map_err(db("reading log events"))?,
                ingestion_ms: r.get(3).map_err(db("reading log events"))?,
                request_id: text(6)?,
                message: text(4)?.unwrap_or(""),
                source,
            };
            if visit(event) == Scan::Stop {
                break;
            }
        }
        Ok(())
    }
}

/// A day in milliseconds.
const DAY_MS: i64 = 24 * 3600 * 1000;

fn group_info(r: &Row<'_>) -> rusqlite::Result<LogGroupInfo> {
    let name: String = r.get(0)?;
    Ok(LogGroupInfo {
        group: LogGroup::from_name(&name),
        created_ms: r.get(1)?,
        retention_days: r.get(2)?,
    })
}

/// Records that a stream received events spanning `first..=last` at `now`, making it if
/// new; returns its id.
fn upsert_stream(
    tx: &Transaction<'_>,
    key: &str,
    stream: &str,
    first: i64,
    last: i64,
    now: i64,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO log_streams (key, name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms)
         VALUES (?1, ?2, ?5, ?3, ?4, ?5)
         ON CONFLICT (key, name) DO UPDATE SET
             first_event_ms = min(coalesce(first_event_ms, excluded.first_event_ms), excluded.first_event_ms),
             last_event_ms = max(coalesce(last_event_ms, excluded.last_event_ms), excluded.last_event_ms),
             last_ingestion_ms = excluded.last_ingestion_ms
         RETURNING id",
    )?
    .query_row(params![key, stream, first, last, now], |r| r.get(0))
}

impl SqliteStore {
    /// Deletes the log lines `select` picks (its parameters are `args`, then the batch
    /// size), a batch per transaction so that appends interleave; returns how many went.
    fn delete_lines(
        &self,
        context: &'static str,
        select: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<u64, StoreError> {
        let sql = format!("DELETE FROM logs WHERE seq IN ({select})");
        let batch: &dyn rusqlite::ToSql = &PRUNE_BATCH_ROWS;
        let mut total = 0;
        loop {
            let mut conn = lock(&self.log_writer);
            let tx = immediate(&mut conn, context)?;
            let n = tx
                .execute(
                    &sql,
                    rusqlite::params_from_iter(args.iter().chain(std::iter::once(&batch))),
                )
                .map_err(db(context))?;
            tx.commit().map_err(db(context))?;
            total += n as u64;
            if n < PRUNE_BATCH_ROWS as usize {
                return Ok(total);
            }
        }
    }

    /// Deletes a group's events older than `cutoff_ms`, a batch per transaction; returns
    /// how many went.
    fn expire_group(&self, key: &str, cutoff_ms: i64) -> Result<u64, StoreError> {
        let total = self.delete_lines(
            "applying a log group's retention",
            "SELECT seq FROM logs WHERE function = ?1 AND timestamp_ms < ?2 LIMIT ?3",
            &[&key, &cutoff_ms],
        )?;
        lock(&self.log_writer)
            .execute(
                "DELETE FROM log_streams WHERE key = ?1 AND last_event_ms < ?2",
                params![key, cutoff_ms],
            )
            .map_err(db("applying a log group's retention"))?;
        Ok(total)
    }

    /// Applies every group's own retention at `now_ms`; returns how many lines went.
    fn expire_groups(&self, now_ms: i64) -> Result<u64, StoreError> {
        let groups: Vec<(String, i64)> = {
            let conn = lock(&self.log_reader);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT key, retention_days FROM log_groups WHERE retention_days IS NOT NULL",
                )
                .map_err(db("applying log group retention"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db("applying log group retention"))?;
            rows.collect::<Result<_, _>>()
                .map_err(db("applying log group retention"))?
        };
        let mut total = 0;
        for (key, days) in groups {
            total += self.expire_group(&key, now_ms - days * DAY_MS)?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tag_tests;
#[cfg(test)]
mod tests;
