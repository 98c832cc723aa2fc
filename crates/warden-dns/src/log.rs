//! The query log: every query an instance asked, in `DATA_DIR/dns.db`, the newest
//! [`MAX_RECORDS`] kept.
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

/// The query log; cheap to clone.
#[derive(Clone)]
pub struct QueryLog {
    queue: SyncSender<QueryRecord>,
    reader: Arc<Mutex<Connection>>,
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
        let (queue, records) = sync_channel::<QueryRecord>(QUEUE);
        let mut writer = db.writer;
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
                if let Err(e) = write(&mut writer, &batch) {
                    tracing::warn!(error = %e, records = batch.len(), "could not write DNS query records");
                }
            })
            .map_err(|e| DnsError::Store {
                context: "starting the DNS query log writer",
                source: warden_sqlite::Error::Io {
                    context: "spawning a thread",
                    path: path.to_path_buf(),
                    source: e,
                },
            })?;
        Ok(QueryLog {
            queue,
            reader: Arc::new(Mutex::new(db.reader)),
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
        let conn = warden_sqlite::lock(&self.reader);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = "SELECT time_ms, function, instance, vpc_id, name, query_type, action, rule, \
                   response_code, answers FROM queries WHERE (?1 IS NULL OR function = ?1) \
                   ORDER BY id DESC LIMIT ?2";
        let read = |e| DnsError::Store {
            context: "reading the DNS query log",
            source: warden_sqlite::sqlite("reading the DNS query log")(e),
        };
        let mut stmt = conn.prepare_cached(sql).map_err(read)?;
        let rows = stmt
            .query_map(params![function, limit], |row| {
                let answers: String = row.get(9)?;
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
                    answers: answers
                        .split(' ')
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect(),
                })
            })
            .map_err(read)?;
        let mut out = rows.collect::<Result<Vec<_>, _>>().map_err(read)?;
        out.reverse();
        Ok(out)
    }
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
