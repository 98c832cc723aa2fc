//! The query log: every query an instance asked, in `DATA_DIR/dns.db` (or, for nodes
//! sharing a PostgreSQL store, in its `dns_queries`), the newest [`MAX_RECORDS`] kept.
//!
//! Records reach the database from a writer thread in batches (a query never waits for a
//! disk write); if the writer falls behind by more than [`QUEUE`] records, the newest are
//! counted as dropped rather than queued without bound.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::DnsError;

/// Records kept; older ones are deleted as newer ones arrive.
pub const MAX_RECORDS: i64 = 100_000;
/// Records waiting for the writer at most.
pub const QUEUE: usize = 10_000;
/// Most records written in one transaction.
const BATCH: usize = 512;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    function TEXT NOT NULL,
    instance TEXT NOT NULL,
    vpc_id TEXT NOT NULL,
    name TEXT NOT NULL,
    query_type TEXT NOT NULL,
    action TEXT NOT NULL,
    rule TEXT NOT NULL,
    response_code TEXT NOT NULL,
    answers TEXT NOT NULL
) STRICT;
CREATE INDEX queries_by_function ON queries (function, id);
"#];

/// One query and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryRecord {
    /// When it was asked, in milliseconds since the epoch.
    pub time_ms: i64,
    /// The function whose instance asked.
    pub function: String,
    /// The instance.
    pub instance: String,
    /// The function's VPC (empty if none).
    pub vpc_id: String,
    /// The name asked (with its trailing dot).
    pub name: String,
    /// The record type (`A`, `AAAA`, ...).
    pub query_type: String,
    /// `ALLOW`, `ALERT` or `BLOCK`.
    pub action: String,
    /// The firewall rule that decided, if one did.
    pub rule: String,
    /// The answer's response code (`No Error`, `Non-Existent Domain`, ...), empty if
    /// none was given.
    pub response_code: String,
    /// The addresses and names the answer carried.
    pub answers: Vec<String>,
}

/// The query log's schema track in PostgreSQL, for nodes sharing a store: one log of
/// every node's queries.
pub const POSTGRES_TRACK: warden_postgres::Track = warden_postgres::Track {
    name: "dns_queries",
    migrations: &[warden_postgres::Migration::additive(
        "CREATE TABLE dns_queries (
            id BIGSERIAL PRIMARY KEY,
            time_ms BIGINT NOT NULL,
            function TEXT NOT NULL,
            instance TEXT NOT NULL,
            vpc_id TEXT NOT NULL,
            name TEXT NOT NULL,
            query_type TEXT NOT NULL,
            action TEXT NOT NULL,
            rule TEXT NOT NULL,
            response_code TEXT NOT NULL,
            answers TEXT NOT NULL
        );
        CREATE INDEX dns_queries_by_function ON dns_queries (function, id);",
    )],
};

const PG_INSERT: &str = "INSERT INTO dns_queries (time_ms, function, instance, vpc_id, name, \
     query_type, action, rule, response_code, answers) SELECT * FROM UNNEST($1::BIGINT[], \
     $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], \
     $9::TEXT[], $10::TEXT[])";
const PG_TRIM: &str = "DELETE FROM dns_queries WHERE id <= (SELECT max(id) FROM dns_queries) - $1";
const PG_RECENT: &str = "SELECT time_ms, function, instance, vpc_id, name, query_type, action, \
     rule, response_code, answers FROM dns_queries WHERE ($1::TEXT IS NULL OR function = $1) \
     ORDER BY id DESC LIMIT $2";

/// Where records are kept: this node's file, or the store the nodes share.
enum Sink {
    Sqlite(Connection),
    Postgres(warden_postgres::Pool),
}

#[derive(Clone)]
enum Reader {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(warden_postgres::Pool),
}

/// The query log; cheap to clone.
#[derive(Clone)]
pub struct QueryLog {
    queue: SyncSender<QueryRecord>,
    reader: Reader,
    dropped: Arc<AtomicU64>,
}

impl QueryLog {
    /// Opens (creating) `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<QueryLog, DnsError> {
        let db = warden_sqlite::open(
            path,
            &warden_sqlite::Options {
                synchronous: warden_sqlite::Synchronous::Normal,
                migrations: MIGRATIONS,
                incremental_vacuum: false,
            },
        )
        .map_err(|source| DnsError::Store {
            context: "opening the DNS query log",
            source,
        })?;
        Self::start(
            Sink::Sqlite(db.writer),
            Reader::Sqlite(Arc::new(Mutex::new(db.reader))),
        )
        .map_err(|e| DnsError::Store {
            context: "starting the DNS query log writer",
            source: warden_sqlite::Error::Io {
                context: "spawning a thread",
                path: path.to_path_buf(),
                source: e,
            },
        })
    }

    /// The query log the nodes share, on `pool` (whose schema includes
    /// [`POSTGRES_TRACK`]), and its writer thread.
    pub fn open_shared(pool: warden_postgres::Pool) -> std::io::Result<QueryLog> {
        Self::start(Sink::Postgres(pool.clone()), Reader::Postgres(pool))
    }

    fn start(mut sink: Sink, reader: Reader) -> std::io::Result<QueryLog> {
        let (queue, records) = sync_channel::<QueryRecord>(QUEUE);
        std::thread::Builder::new()
            .name("dns-query-log".into())
            .spawn(move || loop {
                let first = match records.recv_timeout(Duration::from_secs(3600)) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                };
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match records.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                let written = match &mut sink {
                    Sink::Sqlite(conn) => write(conn, &batch).map_err(|e| e.to_string()),
                    Sink::Postgres(pool) => write_shared(pool, batch.clone()).map_err(|e| e.to_string()),
                };
                if let Err(e) = written {
                    tracing::warn!(error = %e, records = batch.len(), "could not write DNS query records");
                }
            })?;
        Ok(QueryLog {
            queue,
            reader,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues a record for writing; counts it as dropped if the queue is full.
    pub fn record(&self, record: QueryRecord) {
        match self.queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped because the writer fell behind, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The newest `limit` records (of `function`, if given), oldest first.
    pub fn recent(
        &self,
        function: Option<&str>,
        limit: usize,
    ) -> Result<Vec<QueryRecord>, DnsError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let answers = |text: String| -> Vec<String> {
            text.split(' ')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut out = match &self.reader {
            Reader::Sqlite(conn) => {
                let conn = warden_sqlite::lock(conn);
                let sql = "SELECT time_ms, function, instance, vpc_id, name, query_type, action, \
                           rule, response_code, answers FROM queries \
                           WHERE (?1 IS NULL OR function = ?1) ORDER BY id DESC LIMIT ?2";
                let read = |e| DnsError::Store {
                    context: "reading the DNS query log",
                    source: warden_sqlite::sqlite("reading the DNS query log")(e),
                };
                let mut stmt = conn.prepare_cached(sql).map_err(read)?;
                let rows = stmt
                    .query_map(params![function, limit], |row| {
                        Ok(QueryRecord {
                            time_ms: row.get(0)?,
                            function: row.get(1)?,
                            instance: row.get(2)?,
                            vpc_id: row.get(3)?,
                            name: row.get(4)?,
                            query_type: row.get(5)?,
                            action: row.get(6)?,
                            rule: row.get(7)?,
                            response_code: row.get(8)?,
                            answers: answers(row.get(9)?),
                        })
                    })
                    .map_err(read)?;
                let mut out = Vec::new();
                for row in rows {
                    out.push(row.map_err(read)?);
                }
                out
            }
            Reader::Postgres(pool) => {
                let function = function.map(str::to_owned);
                let context = "reading the DNS query log";
                pool.run(move |conn| {
                    let mut read = || -> Result<Vec<QueryRecord>, postgres::Error> {
                        let st = conn.prepare(PG_RECENT)?;
                        conn.client()
                            .query(&st, &[&function, &limit])?
                            .iter()
                            .map(|row| {
                                Ok(QueryRecord {
                                    time_ms: row.try_get(0)?,
                                    function: row.try_get(1)?,
                                    instance: row.try_get(2)?,
                                    vpc_id: row.try_get(3)?,
                                    name: row.try_get(4)?,
                                    query_type: row.try_get(5)?,
                                    action: row.try_get(6)?,
                                    rule: row.try_get(7)?,
                                    response_code: row.try_get(8)?,
                                    answers: answers(row.try_get(9)?),
                                })
                            })
                            .collect()
                    };
                    read().map_err(warden_postgres::Error::at(context))
                })
                .map_err(|source| DnsError::Shared { context, source })?
            }
        };
        out.reverse();
        Ok(out)
    }
}

/// Writes `batch` to the shared store in one transaction, trimming it to [`MAX_RECORDS`]
/// (every node's records together).
fn write_shared(
    pool: &warden_postgres::Pool,
    batch: Vec<QueryRecord>,
) -> Result<(), warden_postgres::Error> {
    pool.run(move |conn| {
        let (insert, trim) = match (conn.prepare(PG_INSERT), conn.prepare(PG_TRIM)) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                return Err(warden_postgres::Error::at("writing DNS query records")(e))
            }
        };
        let column = |f: fn(&QueryRecord) -> String| batch.iter().map(f).collect::<Vec<_>>();
        let times: Vec<i64> = batch.iter().map(|r| r.time_ms).collect();
        let (functions, instances, vpcs, names) = (
            column(|r| r.function.clone()),
            column(|r| r.instance.clone()),
            column(|r| r.vpc_id.clone()),
            column(|r| r.name.clone()),
        );
        let (types, actions, rules, codes, answers) = (
            column(|r| r.query_type.clone()),
            column(|r| r.action.clone()),
            column(|r| r.rule.clone()),
            column(|r| r.response_code.clone()),
            column(|r| r.answers.join(" ")),
        );
        conn.transaction(|tx| {
            tx.execute(
                &insert,
                &[
                    &times, &functions, &instances, &vpcs, &names, &types, &actions, &rules,
                    &codes, &answers,
                ],
            )?;
            tx.execute(&trim, &[&MAX_RECORDS]).map(drop)
        })
        .map_err(warden_postgres::Error::at("writing DNS query records"))
    })
}

fn write(conn: &mut Connection, batch: &[QueryRecord]) -> rusqlite::Result<()> {
    let tx = warden_sqlite::immediate(conn)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO queries (time_ms, function, instance, vpc_id, name, query_type, action, \
             rule, response_code, answers) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for r in batch {
            insert.execute(params![
                r.time_ms,
                r.function,
                r.instance,
                r.vpc_id,
                r.name,
                r.query_type,
                r.action,
                r.rule,
                r.response_code,
                r.answers.join(" "),
            ])?;
        }
    }
    tx.execute(
        "DELETE FROM queries WHERE id <= (SELECT MAX(id) FROM queries) - ?1",
        params![MAX_RECORDS],
    )?;
    tx.commit()
}
