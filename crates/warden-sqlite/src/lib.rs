//! The SQLite plumbing every embedded Warden database shares (the function store's metadata
//! and logs files, and the identity store), so that each rule is written once:
//!
//! - files are private to their owner: the database and its `-wal` and `-shm` companions
//!   are 0600, whatever an older build or the umask left behind;
//! - every connection waits [`BUSY_TIMEOUT`] for a lock another connection (or process)
//!   holds, enforces foreign keys, and syncs as its file demands ([`Synchronous`]);
//! - a file runs in WAL mode or is refused ([`Error::WalUnavailable`]): WAL is what lets the
//!   reader run while the writer commits;
//! - the schema is a list of append-only migrations tracked in `PRAGMA user_version`, each
//!   applied inside an immediate transaction that re-reads the version, so two processes
//!   opening one file at once never apply a step twice, and a file written by a newer
//!   build is refused ([`Error::SchemaTooNew`]) instead of misread;
//! - a mutex whose holder panicked is still usable ([`lock`]): rusqlite rolls an open
//!   transaction back when it is dropped, and [`rollback_abandoned`] undoes one a panic left
//!   open on a connection kept for reuse.
//!
//! This is the only crate whose public API names `rusqlite` types. The stores built on it
//! (`warden-store`, `warden-identity`) turn [`Error`] into their own backend-neutral errors,
//! so that a networked backend can replace SQLite behind their traits.
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

/// How long a connection waits for a lock held by another connection before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How hard a database file syncs on commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is fsynced before it returns: survives power loss.
    Full,
    /// The WAL is fsynced at checkpoints only: survives a process crash, may lose the
    /// newest commits on power loss.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// How to open one database file.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// The schema: entry `i` moves `user_version` from `i` to `i + 1`. Append only: a
    /// released step is never edited, since files out there already ran it.
    pub migrations: &'a [&'a str],
    /// Create a new file with `auto_vacuum=INCREMENTAL`, so that deleted rows can give
    /// their space back to the file system (the setting takes only on a file without
    /// tables; converting an older file is the caller's business).
    pub incremental_vacuum: bool,
}

/// What went wrong opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A SQLite call failed.
    #[error("{context}: {source}")]
    Sqlite {
        /// The step that failed.
        context: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Creating, chmod-ing or syncing a file or directory failed.
    #[error("{context} at `{}`: {source}", path.display())]
    Io {
        /// The step that failed.
        context: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file was migrated by a newer build whose schema this one does not know.
    #[error("the database schema version {found} is newer than the newest this build supports ({supported})")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The number of migrations this build knows.
        supported: i64,
    },
    /// The file cannot use write-ahead logging (for example a file system without shared
    /// memory); refused rather than silently slower and blocking readers.
    #[error(
        "the database at `{}` cannot use write-ahead logging (journal mode stayed `{mode}`)",
        path.display()
    )]
    WalUnavailable {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// A migration step left rows whose foreign keys point nowhere; it was rolled back.
    #[error("schema migration {step} would leave rows whose foreign keys point nowhere")]
    DanglingForeignKeys {
        /// The `user_version` the step started from.
        step: i64,
    },
}

/// Maps a SQLite error to [`Error::Sqlite`] with `context`.
pub fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::Sqlite { context, source }
}

/// Locks `m` even if a thread panicked while holding it. For a connection this is safe:
/// rusqlite rolls back a transaction dropped during the unwind, and a connection used
/// outside a `Transaction` value is cleaned by [`rollback_abandoned`].
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so a
/// read inside it cannot be invalidated by another writer before it commits.
pub fn immediate(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Rolls back a transaction a panicking holder left open on `conn`; does nothing on a
/// connection in autocommit mode.
pub fn rollback_abandoned(conn: &Connection) -> rusqlite::Result<()> {
    if conn.is_autocommit() {
        return Ok(());
    }
    conn.execute_batch("ROLLBACK")
}

/// Creates the database file readable and writable by its owner only (0600), and takes
/// any wider permissions away from an existing one and its `-wal` and `-shm` companions.
/// SQLite gives the companions it creates the database file's permissions, so everything
/// written stays private.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match fs::set_permissions(&name, fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// Opens one connection to `path` (made private first) with the busy timeout, foreign
/// keys on, and `synchronous`.
pub fn open_connection(path: &Path, synchronous: Synchronous) -> Result<Connection, Error> {
    const CONTEXT: &str = "opening the database";
    private_file(path).map_err(|source| Error::Io {
        context: "making the database private to its owner",
        path: path.to_owned(),
        source,
    })?;
    let conn = Connection::open(path).map_err(sqlite(CONTEXT))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(CONTEXT))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sqlite(CONTEXT))?;
    conn.pragma_update(None, "synchronous", synchronous.pragma())
        .map_err(sqlite(CONTEXT))?;
    Ok(conn)
}

/// Switches the file behind `conn` to WAL (a setting kept in the file) and brings its
/// schema up to `options.migrations`.
pub fn prepare(conn: &mut Connection, path: &Path, options: &Options<'_>) -> Result<(), Error> {
    if options.incremental_vacuum {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(sqlite("enabling incremental vacuuming"))?;
    }
    // Switching a new file to WAL needs its exclusive lock. When another process opening
    // the same new file holds a lock, SQLite may answer "busy" at once, without waiting
    // through the busy timeout (its way out of a deadlock between two lock upgrades), so
    // the switch is tried again for as long as the busy timeout would have waited.
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mode: String = loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => break other.map_err(sqlite("switching to write-ahead logging"))?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::WalUnavailable {
            path: path.to_owned(),
            mode,
        });
    }
    migrate(conn, options.migrations)
}

/// Applies the migrations `conn`'s file has not run yet, one transaction per step.
///
/// A step may rebuild a table that others reference (SQLite cannot drop a constraint), so
/// foreign keys are off while the steps run (SQLite ignores the pragma inside a
/// transaction, hence around the loop) and each step checks them itself before it commits.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), Error> {
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(sqlite("migrating the schema"))?;
    let result = run_migrations(conn, migrations);
    let restored = conn
        .pragma_update(None, "foreign_keys", true)
        .map_err(sqlite("migrating the schema"));
    result.and(restored)
}

fn run_migrations(conn: &mut Connection, migrations: &[&str]) -> Result<(), Error> {
    let supported = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    loop {
        // INVARIANT: the version is re-read inside the write transaction, so two processes
        // opening the same file at once never apply one migration twice.
        let tx = immediate(conn).map_err(sqlite("migrating the schema"))?;
        let current: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sqlite("reading the schema version"))?;
        if current > supported {
            return Err(Error::SchemaTooNew {
                found: current,
                supported,
            });
        }
        if current == supported {
            return Ok(());
        }
        let Some(step) = usize::try_from(current)
            .ok()
            .and_then(|i| migrations.get(i))
        else {
            // A negative version: nothing this build wrote.
            return Err(Error::SchemaTooNew {
                found: current,
                supported,
            });
        };
        tx.execute_batch(step)
            .map_err(sqlite("migrating the schema"))?;
        let dangling = tx
            .query_row("PRAGMA foreign_key_check", [], |_| Ok(()))
            .optional()
            .map_err(sqlite("checking foreign keys after a migration"))?;
        if dangling.is_some() {
            return Err(Error::DanglingForeignKeys { step: current });
        }
        tx.pragma_update(None, "user_version", current + 1)
            .map_err(sqlite("migrating the schema"))?;
        tx.commit().map_err(sqlite("migrating the schema"))?;
        tracing::info!(from = current, to = current + 1, "migrated database schema");
    }
}

/// Makes a newly created file's directory entry durable; SQLite syncs the directory for its
/// journal files but not for the main file.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            context: "syncing the database directory",
            path: dir.to_owned(),
            source,
        })
}

/// The two connections of one database file: one writer, and one reader that cannot write
/// (`query_only`). WAL lets the reader run while the writer commits; each is meant to sit
/// behind its own mutex.
#[derive(Debug)]
pub struct Connections {
    /// The connection every write goes through.
    pub writer: Connection,
    /// A connection for reads only.
    pub reader: Connection,
}

/// Opens (creating if needed, with its directory) the database at `path`: private files,
/// WAL, the schema brought up to date, then a read-only second connection, and the
/// directory synced so that a new file survives a crash.
pub fn open(path: &Path, options: &Options<'_>) -> Result<Connections, Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|source| Error::Io {
        context: "creating the database directory",
        path: dir.clone(),
        source,
    })?;
    let mut writer = open_connection(path, options.synchronous)?;
    prepare(&mut writer, path, options)?;
    let reader = open_connection(path, options.synchronous)?;
    reader
        .pragma_update(None, "query_only", true)
        .map_err(sqlite("opening the database"))?;
    sync_dir(&dir)?;
    Ok(Connections { writer, reader })
}

#[cfg(test)]
mod tests;
