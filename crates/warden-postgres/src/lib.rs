//! The PostgreSQL plumbing Warden's shared stores use, so that each rule is written once:
//!
//! - **Callable from any thread.** The stores' traits are synchronous and are called from
//!   the server's async workers as well as from plain threads. The synchronous `postgres`
//!   client drives its own small runtime and cannot run inside another, so each connection
//!   lives on a thread of its own; [`Pool::run`] hands it a job and waits for the answer.
//!   The pool is bounded: at most [`Options::connections`] connections, and callers queue
//!   for them.
//! - **Prepared once.** [`Conn::prepare`] keeps each statement prepared per connection.
//! - **Reconnects.** A connection the server closed (a restart, an idle timeout) is opened
//!   again before the next job; a job that fails on a broken connection fails once, with
//!   its error, rather than being run twice.
//! - **Serialization failures retried.** [`Conn::transaction`] runs a transaction again when
//!   PostgreSQL reports a serialization failure or a deadlock, the errors it asks clients
//!   to retry.
//! - **Transactions driven from the caller's thread.** A store whose logic interleaves
//!   reads, decisions and writes, and borrows what it decides with, opens a [`Remote`]
//!   transaction ([`Pool::begin`], [`Pool::transact`]): each step is a small job sent to
//!   the connection's thread, which holds the transaction open until the caller commits
//!   or drops it.
//! - **Versioned schema tracks.** Each store owns a [`Track`]: an append-only list of
//!   migrations recorded in the `warden_schema` table with the schema version and the
//!   oldest version a build must know to use it ("compatible from"). Additive steps keep
//!   older builds working during a rolling upgrade; a step that older builds cannot use
//!   raises "compatible from", and such builds refuse the database
//!   ([`Error::SchemaTooNew`]). Migrations take a transaction-scoped advisory lock, so
//!   nodes starting together never apply a step twice.
//!
//! - **Never holding an async worker.** A caller on a worker thread of a multi-threaded
//!   tokio runtime waits for its answer inside `block_in_place`, so the runtime moves the
//!   worker's other tasks to another thread while a query runs: a flood of calls that
//!   reach PostgreSQL (each a few round trips, some under a cluster-wide lock) slows
//!   those calls, not every request the node serves.
//!
//! The connection URL carries a password: it never appears in an error or a log line
//! ([`redacted`]).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub mod records;

use postgres::error::SqlState;
use postgres::{Client, NoTls, Statement};

/// The default number of connections of a pool.
pub const DEFAULT_CONNECTIONS: usize = 4;

/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a transaction is run when PostgreSQL asks for a retry.
const TRANSACTION_ATTEMPTS: u32 = 16;

/// The advisory lock key migrations hold (an arbitrary constant: "warden" in ASCII).
const MIGRATION_LOCK: i64 = 0x7761_7264_656e;

/// What went wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL `{url}`: {reason}")]
    BadUrl {
        /// The URL with its password replaced.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL asks for something this build does not do.
    #[error("unsupported PostgreSQL URL `{url}`: {reason}")]
    Unsupported {
        /// The URL with its password replaced.
        url: String,
        /// What is not supported.
        reason: String,
    },
    /// Connecting failed.
    #[error("connecting to PostgreSQL at {target}: {source}")]
    Connect {
        /// Host, port and database (never the password).
        target: String,
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// A statement failed.
    #[error("{context}: {source}")]
    Postgres {
        /// The step that failed.
        context: &'static str,
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// The database was migrated by a newer build that older builds cannot use.
    #[error(
        "the `{track}` schema is at version {found} and needs a build that knows version {compatible_from} or later; this build knows {supported}"
    )]
    SchemaTooNew {
        /// The schema track.
        track: &'static str,
        /// Its version in the database.
        found: i64,
        /// The oldest version a build must know to use it.
        compatible_from: i64,
        /// The number of migrations this build knows.
        supported: i64,
    },
    /// The connection was lost and could not be opened again.
    #[error("PostgreSQL is unavailable: {reason}")]
    Unavailable {
        /// Host, port and database, when known.
        target: String,
        /// Why (the connection error's message).
        reason: String,
    },
    /// The pool was shut down, or its connection thread died.
    #[error("the PostgreSQL connection pool is closed")]
    Closed,
}

impl Error {
    /// Maps a client error to [`Error::Postgres`] with `context`.
    pub fn at(context: &'static str) -> impl FnOnce(postgres::Error) -> Error {
        move |source| Error::Postgres { context, source }
    }

    /// The SQLSTATE of the failed statement, if the server reported one.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Error::Postgres { source, .. } | Error::Connect { source, .. } => source.code(),
            _ => None,
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(source: postgres::Error) -> Self {
        Error::Postgres {
            context: "running a transaction",
            source,
        }
    }
}

/// Whether PostgreSQL asks the client to run the transaction again.
pub fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
    )
}

/// Whether `e` is a unique-constraint violation (the row exists already).
pub fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Whether `e` is a foreign-key violation (a referenced row is missing).
pub fn is_foreign_key_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

/// `url` with any password replaced by `***`, for messages.
pub fn redacted(url: &str) -> String {
    // postgres://user:password@host/db: the password runs from the first ':' after the
    // scheme to the last '@' before the path.
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    if user.len() == userinfo.len() {
        return url.to_owned();
    }
    format!(
        "{}{user}:***{}",
        &url[..scheme_end],
        &url[scheme_end + at..]
    )
}

/// How to open a pool.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many connections (and threads) the pool holds; at least one.
    pub connections: usize,
    /// The `application_name` the server shows for these connections.
    pub application_name: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connections: DEFAULT_CONNECTIONS,
            application_name: "warden".to_owned(),
        }
    }
}

/// One schema migration step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The statements of the step, run in one transaction.
    pub sql: &'static str,
    /// Whether builds that know only the earlier steps can no longer use the schema after
    /// this one (a dropped or renamed column, a changed meaning). Additive steps (new
    /// tables, new nullable columns) leave it `false`.
    pub breaks_older_builds: bool,
}

impl Migration {
    /// An additive step older builds tolerate.
    pub const fn additive(sql: &'static str) -> Migration {
        Migration {
            sql,
            breaks_older_builds: false,
        }
    }
}

/// A store's schema: its name in `warden_schema` and its steps. Entry `i` moves the
/// track's version from `i` to `i + 1`. Append only: a released step is never edited.
#[derive(Debug, Clone, Copy)]
pub struct Track {
    /// The track's name (for example `functions`).
    pub name: &'static str,
    /// Its migrations.
    pub migrations: &'static [Migration],
}

/// One connection, with the statements it has prepared.
pub struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("prepared", &self.statements.len())
            .finish()
    }
}

impl Conn {
    /// The client, for statements that need no preparation or for transactions.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// `sql` prepared on this connection, once.
    pub fn prepare(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs `f` in a transaction and commits it, running it again (up to a bound) when
    /// PostgreSQL reports a serialization failure or a deadlock. `f` must therefore be
    /// safe to run more than once: it may only change the database. An error of `f`
    /// rolls the transaction back and is returned as it is.
    pub fn transaction<T, E>(
        &mut self,
        mut f: impl FnMut(&mut postgres::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<postgres::Error> + AsPostgres,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<T, E> = (|| {
                let mut tx = self.client.transaction()?;
                let value = f(&mut tx)?;
                tx.commit()?;
                Ok(value)
            })();
            match result {
                Err(e)
                    if attempt < TRANSACTION_ATTEMPTS
                        && e.as_postgres().is_some_and(is_retryable) =>
                {
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
                other => return other,
            }
        }
    }
}

/// Runs `f`, which waits for a connection's thread, without holding an async worker: on a
/// worker of a multi-threaded tokio runtime the runtime is told this thread blocks, and
/// hands the worker's other tasks to another thread; on any other thread `f` just runs.
fn wait<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// How long to wait before attempt `attempt + 1` of a transaction: growing, capped at
/// about 50 ms, with jitter so that contenders that collided do not collide again.
fn backoff(attempt: u32) -> Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    let base = 1u64 << attempt.min(5);
    Duration::from_micros(base * 1000 + jitter % (base * 1000 + 1))
}

/// Lets [`Conn::transaction`] see whether a caller's error is a retryable PostgreSQL one.
pub trait AsPostgres {
    /// The PostgreSQL error inside, if any.
    fn as_postgres(&self) -> Option<&postgres::Error>;
}

impl AsPostgres for postgres::Error {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        Some(self)
    }
}

impl AsPostgres for Error {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        match self {
            Error::Postgres { source, .. } | Error::Connect { source, .. } => Some(source),
            _ => None,
        }
    }
}

type Job = Box<dyn FnOnce(Result<&mut Conn, &Error>) + Send>;

/// A bounded pool of connections, each on its own thread. Cheap to clone; the connections
/// close when the last clone is dropped.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    jobs: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    target: String,
    connections: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.inner.target)
            .field("connections", &self.inner.connections)
            .finish()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Closing the channel ends every worker once it finishes its job.
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for w in workers {
            let _ = w.join();
        }
    }
}

/// Parses `url` into a client configuration, refusing what this build cannot honour.
fn config(url: &str, options: &Options) -> Result<postgres::Config, Error> {
    let mut config = postgres::Config::from_str(url).map_err(|e| Error::BadUrl {
        url: redacted(url),
        reason: e.to_string(),
    })?;
    if config.get_ssl_mode() == postgres::config::SslMode::Require {
        return Err(Error::Unsupported {
            url: redacted(url),
            reason: "sslmode=require: this build connects without TLS; reach PostgreSQL over loopback, a Unix socket or a private network".to_owned(),
        });
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name(&options.application_name);
    Ok(config)
}

/// Where a configuration points, for messages: hosts, ports and database, no password.
fn target(config: &postgres::Config) -> String {
    use postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}:{}/{}",
        hosts.join(","),
        if ports.is_empty() {
            "5432".to_owned()
        } else {
            ports.join(",")
        },
        config.get_dbname().unwrap_or("")
    )
}

fn connect(config: &postgres::Config, target: &str) -> Result<Conn, Error> {
    let client = config.connect(NoTls).map_err(|source| Error::Connect {
        target: target.to_owned(),
        source,
    })?;
    Ok(Conn {
        client,
        statements: HashMap::new(),
    })
}

impl Pool {
    /// Opens `options.connections` connections to `url` and brings every track in
    /// `tracks` up to date. Fails if the server cannot be reached or a schema is newer than
    /// this build can use.
    pub fn open(url: &str, options: &Options, tracks: &[Track]) -> Result<Pool, Error> {
        let config = config(url, options)?;
        let target = target(&config);
        let mut first = connect(&config, &target)?;
        for track in tracks {
            migrate(&mut first, track)?;
        }
        let connections = options.connections.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(0);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(connections);
        let mut initial = Some(first);
        for i in 0..connections {
            let conn = match initial.take() {
                Some(c) => c,
                None => connect(&config, &target)?,
            };
            let rx = Arc::clone(&rx);
            let config = config.clone();
            let target = target.clone();
            let worker = std::thread::Builder::new()
                .name(format!("postgres-{i}"))
                .spawn(move || work(conn, &config, &target, &rx))
                .map_err(|_| Error::Closed)?;
            workers.push(worker);
        }
        Ok(Pool {
            inner: Arc::new(PoolInner {
                jobs: Mutex::new(Some(tx)),
                workers: Mutex::new(workers),
                target,
                connections,
            }),
        })
    }

    /// Host, port and database of the pool, for messages (no password).
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// Runs `f` on a free connection and returns its result; waits for one if all are
    /// busy. Fails with the connection error if the connection was lost and cannot be
    /// opened again, and with [`Error::Closed`] if the pool is gone.
    pub fn run<T, E>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (reply_tx, reply_rx) = mpsc::sync_channel::<Result<T, E>>(1);
        let target = self.inner.target.clone();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn),
                Err(e) => Err(E::from(Error::Unavailable {
                    target,
                    reason: e.to_string(),
                })),
            };
            let _ = reply_tx.send(result);
        });
        let sender = self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| E::from(Error::Closed))?;
        wait(|| {
            sender.send(job).map_err(|_| E::from(Error::Closed))?;
            reply_rx.recv().map_err(|_| E::from(Error::Closed))?
        })
    }
}

impl Pool {
    /// Opens a transaction on a free connection (waiting for one if all are busy), with
    /// `statements` prepared on it, and hands it to the caller: each
    /// [`Remote::run`] sends one step to the connection's thread and waits for its answer.
    ///
    /// For stores whose logic reads and writes in turn within one transaction and cannot
    /// be moved, with all it borrows, onto the connection's thread. The connection stays
    /// the caller's until [`Remote::commit`] or until the [`Remote`] is dropped, which
    /// rolls the transaction back. Most callers want [`Pool::transact`], which also runs
    /// the transaction again when PostgreSQL asks.
    pub fn begin(&self, statements: &'static [&'static str]) -> Result<Remote, Error> {
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), Error>>(1);
        let (steps_tx, steps_rx) = mpsc::sync_channel::<Message>(0);
        let target = self.inner.target.clone();
        let job: Job = Box::new(move |conn| {
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(Error::Unavailable {
                        target,
                        reason: e.to_string(),
                    }));
                    return;
                }
            };
            let prepared: Result<Vec<Statement>, _> =
                statements.iter().map(|sql| conn.prepare(sql)).collect();
            let prepared = match prepared {
                Ok(p) => p,
                Err(e) => {
                    let _ =
                        ready_tx.send(Err(Error::at("preparing a transaction's statements")(e)));
                    return;
                }
            };
            let mut tx = match conn.client.transaction() {
                Ok(tx) => tx,
                Err(e) => {
                    let _ = ready_tx.send(Err(Error::at("opening a transaction")(e)));
                    return;
                }
            };
            if ready_tx.send(Ok(())).is_err() {
                return;
            }
            // Until the caller commits; a caller that goes away rolls back (dropping `tx`).
            while let Ok(message) = steps_rx.recv() {
                match message {
                    Message::Step(step) => step(&mut tx, &prepared),
                    Message::Commit(reply) => {
                        let _ = reply.send(tx.commit().map_err(Error::at("committing")));
                        return;
                    }
                }
            }
        });
        let sender = self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::Closed)?;
        wait(|| {
            sender.send(job).map_err(|_| Error::Closed)?;
            ready_rx.recv().map_err(|_| Error::Closed)?
        })?;
        Ok(Remote { steps: steps_tx })
    }

    /// Runs `f` in a transaction opened with [`Pool::begin`] and commits it, running it
    /// again (up to a bound) when PostgreSQL reports a serialization failure or a
    /// deadlock, as [`Conn::transaction`] does. `f` must therefore be safe to run more
    /// than once: it may only change the database. An error of `f` rolls the transaction
    /// back and is returned as it is.
    pub fn transact<T, E>(
        &self,
        statements: &'static [&'static str],
        mut f: impl FnMut(&mut Remote) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error> + AsPostgres,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<T, E> = (|| {
                let mut remote = self.begin(statements)?;
                let value = f(&mut remote)?;
                remote.commit()?;
                Ok(value)
            })();
            match result {
                Err(e)
                    if attempt < TRANSACTION_ATTEMPTS
                        && e.as_postgres().is_some_and(is_retryable) =>
                {
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
                other => return other,
            }
        }
    }
}

/// One step of a [`Remote`] transaction, run on the connection's thread.
type Step = Box<dyn FnOnce(&mut postgres::Transaction<'_>, &[Statement]) + Send>;

enum Message {
    Step(Step),
    Commit(SyncSender<Result<(), Error>>),
}

/// A transaction open on a pooled connection's thread, driven from the caller's thread
/// (see [`Pool::begin`]). Dropping it without [`Remote::commit`] rolls it back.
pub struct Remote {
    steps: SyncSender<Message>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

impl Remote {
    /// Runs `f` in the transaction, with the statements [`Pool::begin`] prepared (in the
    /// order given), and returns its answer. A failed statement aborts the transaction:
    /// every later step fails too, and the caller should return the first error.
    pub fn run<R: Send + 'static>(
        &mut self,
        context: &'static str,
        f: impl FnOnce(&mut postgres::Transaction<'_>, &[Statement]) -> Result<R, postgres::Error>
            + Send
            + 'static,
    ) -> Result<R, Error> {
        let (reply_tx, reply_rx) = mpsc::sync_channel::<Result<R, postgres::Error>>(1);
        let step: Step = Box::new(move |tx, statements| {
            let _ = reply_tx.send(f(tx, statements));
        });
        wait(|| {
            self.steps
                .send(Message::Step(step))
                .map_err(|_| Error::Closed)?;
            reply_rx
                .recv()
                .map_err(|_| Error::Closed)?
                .map_err(Error::at(context))
        })
    }

    /// Commits the transaction.
    pub fn commit(self) -> Result<(), Error> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        wait(|| {
            self.steps
                .send(Message::Commit(reply_tx))
                .map_err(|_| Error::Closed)?;
            reply_rx.recv().map_err(|_| Error::Closed)?
        })
    }
}

/// A connection thread: takes jobs until the pool closes, opening its connection again
/// when the server closed it.
fn work(conn: Conn, config: &postgres::Config, target: &str, jobs: &Mutex<Receiver<Job>>) {
    let mut conn = Some(conn);
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if conn.as_mut().is_none_or(|c| c.client.is_closed()) {
            match connect(config, target) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(target: "warden::postgres", %target, error = %e, "reconnecting failed");
                    conn = None;
                    job(Err(&e));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            job(Err(&Error::Closed));
            continue;
        };
        // A job that panics loses its answer (its caller sees `Closed`) and its
        // connection, which may be inside a transaction; the thread lives on.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(c))));
        if ran.is_err() {
            conn = None;
        }
    }
}

/// Brings `track` up to date on `conn`.
fn migrate(conn: &mut Conn, track: &Track) -> Result<(), Error> {
    let supported = i64::try_from(track.migrations.len()).unwrap_or(i64::MAX);
    conn.transaction(|tx| -> Result<(), Error> {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(Error::at("locking the schema for migration"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS warden_schema (
                track TEXT PRIMARY KEY,
                version BIGINT NOT NULL,
                compatible_from BIGINT NOT NULL
            )",
        )
        .map_err(Error::at("creating the schema table"))?;
        let row = tx
            .query_opt(
                "SELECT version, compatible_from FROM warden_schema WHERE track = $1",
                &[&track.name],
            )
            .map_err(Error::at("reading the schema version"))?;
        let (mut version, mut compatible_from) = match row {
            Some(r) => (r.get::<_, i64>(0), r.get::<_, i64>(1)),
            None => (0, 0),
        };
        if version > supported && compatible_from > supported {
            return Err(Error::SchemaTooNew {
                track: track.name,
                found: version,
                compatible_from,
                supported,
            });
        }
        let start = usize::try_from(version).unwrap_or(usize::MAX);
        for (i, step) in track.migrations.iter().enumerate().skip(start) {
            tx.batch_execute(step.sql)
                .map_err(Error::at("applying a schema migration"))?;
            version = i64::try_from(i + 1).unwrap_or(i64::MAX);
            if step.breaks_older_builds {
                compatible_from = version;
            }
        }
        tx.execute(
            "INSERT INTO warden_schema (track, version, compatible_from) VALUES ($1, $2, $3)
             ON CONFLICT (track) DO UPDATE SET version = EXCLUDED.version,
                 compatible_from = EXCLUDED.compatible_from",
            &[&track.name, &version, &compatible_from],
        )
        .map_err(Error::at("recording the schema version"))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests;
