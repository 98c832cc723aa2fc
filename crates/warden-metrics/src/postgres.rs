//! Datapoints and custom metrics in PostgreSQL, shared by the nodes of a cluster (the
//! `metrics` schema track): each node adds its own minute's datapoints, and they merge
//! into the same rows, so a query through any node sees every node's invocations.
//!
//! Adding merges into what is stored (sums, counts, minima, maxima and histograms), so
//! it reads a row before it writes it: every write transaction first takes one advisory
//! lock, and two nodes adding to one row queue instead of losing each other's values. A
//! node writes once a minute, plus `PutMetricData`: the lock is rarely contended.
//!
//! Alarms and their history are shared too. An alarm is one row holding its JSON
//! document; a change of state is a read-modify-write of that row under `FOR UPDATE`
//! ([`update_alarm`]), so it cannot undo a definition another node put meanwhile. The
//! evaluation runs on one node a minute: the first to move `metric_alarm_turn` to the
//! minute ([`claim_evaluation`]). If that node dies before it acts, no state was stored,
//! and the next minute's evaluation, on any node, finds the same change: an alarm's
//! notification is late by at most one minute, never lost and never sent by two nodes.

use warden_postgres::{Conn, Migration, Pool, Track};

use crate::alarms::{Alarm, HistoryItem, HISTORY_PER_ALARM, MAX_ALARMS};
use crate::store::{decode_hist, encode_hist, Datapoint, MetricId, StoreError, MAX_CUSTOM_METRICS};

const MIGRATIONS: &[Migration] = &[
    Migration::additive(
        r#"
CREATE TABLE metric_datapoints (
    namespace TEXT COLLATE "C" NOT NULL,
    metric TEXT COLLATE "C" NOT NULL,
    dims TEXT COLLATE "C" NOT NULL,
    period BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    count DOUBLE PRECISION NOT NULL,
    sum DOUBLE PRECISION NOT NULL,
    min DOUBLE PRECISION NOT NULL,
    max DOUBLE PRECISION NOT NULL,
    hist BYTEA,
    PRIMARY KEY (namespace, metric, dims, period, ts)
);
CREATE INDEX metric_datapoints_by_age ON metric_datapoints (period, ts);
CREATE TABLE metric_custom (
    namespace TEXT COLLATE "C" NOT NULL,
    metric TEXT COLLATE "C" NOT NULL,
    dims TEXT COLLATE "C" NOT NULL,
    unit TEXT,
    PRIMARY KEY (namespace, metric, dims)
);
"#,
    ),
    Migration::additive(
        r#"
CREATE TABLE metric_alarms (
    name TEXT COLLATE "C" PRIMARY KEY,
    document TEXT NOT NULL
);
CREATE TABLE metric_alarm_history (
    seq BIGSERIAL PRIMARY KEY,
    alarm TEXT COLLATE "C" NOT NULL,
    time_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX metric_alarm_history_by_alarm ON metric_alarm_history (alarm, seq);
CREATE TABLE metric_alarm_turn (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    minute BIGINT NOT NULL
);
"#,
    ),
];

/// The `metrics` schema track.
pub const TRACK: Track = Track {
    name: "metrics",
    migrations: MIGRATIONS,
};

/// The advisory lock every write holds ("metrics" in ASCII).
const LOCK: i64 = 0x006d_6574_7269_6373;

const TAKE_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
const READ_ONE: &str = "SELECT ts, count, sum, min, max, hist FROM metric_datapoints \
     WHERE namespace = $1 AND metric = $2 AND dims = $3 AND period = $4 AND ts = $5";
const UPSERT: &str = "INSERT INTO metric_datapoints \
     (namespace, metric, dims, period, ts, count, sum, min, max, hist) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (namespace, metric, dims, period, ts) DO UPDATE SET count = EXCLUDED.count, \
     sum = EXCLUDED.sum, min = EXCLUDED.min, max = EXCLUDED.max, hist = EXCLUDED.hist";
const SET_UNIT: &str =
    "UPDATE metric_custom SET unit = $4 WHERE namespace = $1 AND metric = $2 AND dims = $3";
const REGISTER: &str = "INSERT INTO metric_custom (namespace, metric, dims, unit) \
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
const COUNT_CUSTOM: &str = "SELECT count(*) FROM metric_custom";
const UNIT: &str =
    "SELECT unit FROM metric_custom WHERE namespace = $1 AND metric = $2 AND dims = $3";
const QUERY: &str = "SELECT ts, count, sum, min, max, hist FROM metric_datapoints \
     WHERE namespace = $1 AND metric = $2 AND dims = $3 AND ts >= $4 AND ts < $5 \
     ORDER BY ts, period";
const LIST: &str = "SELECT DISTINCT namespace, metric, dims FROM metric_datapoints \
     WHERE ts >= $1 AND ($2::TEXT IS NULL OR namespace = $2) \
     AND ($3::TEXT IS NULL OR metric = $3) ORDER BY namespace, metric, dims";
const OLD_MINUTES: &str = "SELECT namespace, metric, dims, ts, count, sum, min, max, hist \
     FROM metric_datapoints WHERE period = 60 AND ts < $1";
const DROP_MINUTES: &str = "DELETE FROM metric_datapoints WHERE period = 60 AND ts < $1";
const DROP_FIVES: &str = "DELETE FROM metric_datapoints WHERE period = 300 AND ts < $1";

/// The advisory lock that counts alarms against [`MAX_ALARMS`] ("alarms" in ASCII).
const ALARMS_LOCK: i64 = 0x0000_616c_6172_6d73;
const ALARM_EXISTS: &str = "SELECT 1 FROM metric_alarms WHERE name = $1";
const COUNT_ALARMS: &str = "SELECT count(*) FROM metric_alarms";
const PUT_ALARM: &str = "INSERT INTO metric_alarms (name, document) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET document = EXCLUDED.document";
const ALARMS: &str = "SELECT document FROM metric_alarms ORDER BY name";
const ALARM_FOR_UPDATE: &str = "SELECT document FROM metric_alarms WHERE name = $1 FOR UPDATE";
const SET_ALARM: &str = "UPDATE metric_alarms SET document = $2 WHERE name = $1";
const DELETE_ALARM: &str = "DELETE FROM metric_alarms WHERE name = $1";
const DELETE_HISTORY: &str = "DELETE FROM metric_alarm_history WHERE alarm = $1";
const ADD_HISTORY: &str = "INSERT INTO metric_alarm_history (alarm, time_ms, kind, summary) \
     VALUES ($1, $2, $3, $4)";
const TRIM_HISTORY: &str = "DELETE FROM metric_alarm_history WHERE alarm = $1 AND seq < \
     (SELECT min(seq) FROM (SELECT seq FROM metric_alarm_history WHERE alarm = $1 \
      ORDER BY seq DESC LIMIT $2) AS newest)";
const HISTORY: &str = "SELECT alarm, time_ms, kind, summary FROM metric_alarm_history \
     WHERE ($1::TEXT IS NULL OR alarm = $1) ORDER BY seq DESC LIMIT $2";
const CLAIM_TURN: &str = "INSERT INTO metric_alarm_turn (id, minute) VALUES (1, $1) \
     ON CONFLICT (id) DO UPDATE SET minute = EXCLUDED.minute \
     WHERE metric_alarm_turn.minute < EXCLUDED.minute";

impl warden_postgres::AsPostgres for StoreError {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        match self {
            StoreError::Shared { source, .. } => source.as_postgres(),
            _ => None,
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let context = "talking to PostgreSQL";
        StoreError::Shared {
            context,
            source: warden_postgres::Error::at(context)(e),
        }
    }
}

impl From<warden_postgres::Error> for StoreError {
    fn from(source: warden_postgres::Error) -> Self {
        StoreError::Shared {
            context: "talking to PostgreSQL",
            source,
        }
    }
}

fn point(row: &postgres::Row) -> Result<Datapoint, postgres::Error> {
    let hist: Option<Vec<u8>> = row.try_get(5)?;
    Ok(Datapoint {
        ts: row.try_get(0)?,
        count: row.try_get(1)?,
        sum: row.try_get(2)?,
        min: row.try_get(3)?,
        max: row.try_get(4)?,
        hist: hist.as_deref().and_then(decode_hist),
    })
}

/// Merges `rows` into the stored datapoints, inside a transaction holding the lock.
fn add_in(
    tx: &mut postgres::Transaction<'_>,
    rows: &[(MetricId, i64, Datapoint)],
) -> Result<(), postgres::Error> {
    let read = tx.prepare(READ_ONE)?;
    let upsert = tx.prepare(UPSERT)?;
    for (id, period, p) in rows {
        let mut p = p.clone();
        let key: [&(dyn postgres::types::ToSql + Sync); 5] =
            [&id.namespace, &id.metric, &id.dims, period, &p.ts];
        if let Some(row) = tx.query_opt(&read, &key)? {
            p.merge(&point(&row)?);
        }
        let hist = p.hist.as_ref().map(encode_hist);
        tx.execute(
            &upsert,
            &[
                &id.namespace,
                &id.metric,
                &id.dims,
                period,
                &p.ts,
                &p.count,
                &p.sum,
                &p.min,
                &p.max,
                &hist,
            ],
        )?;
    }
    Ok(())
}

fn lock(tx: &mut postgres::Transaction<'_>) -> Result<(), postgres::Error> {
    tx.execute(TAKE_LOCK, &[&LOCK]).map(drop)
}

/// Runs `f` on a pooled connection.
fn on<T: Send + 'static>(
    pool: &Pool,
    f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    pool.run(f)
}

/// [`crate::store::MetricStore::add`] on the shared store.
pub(crate) fn add(pool: &Pool, rows: Vec<(MetricId, i64, Datapoint)>) -> Result<(), StoreError> {
    on(pool, move |conn| {
        conn.transaction(|tx| {
            lock(tx)?;
            add_in(tx, &rows).map_err(StoreError::from)
        })
    })
}

/// [`crate::store::MetricStore::add_custom`] on the shared store: the metrics registered
/// and their datapoints added in one transaction, or nothing.
pub(crate) fn add_custom(
    pool: &Pool,
    rows: Vec<(MetricId, i64, Datapoint)>,
    units: Vec<Option<String>>,
) -> Result<(), StoreError> {
    on(pool, move |conn| {
        conn.transaction(|tx| {
            lock(tx)?;
            for (i, (id, _, _)) in rows.iter().enumerate() {
                let unit = units.get(i).cloned().flatten();
                if unit.is_some() {
                    tx.execute(SET_UNIT, &[&id.namespace, &id.metric, &id.dims, &unit])?;
                }
                let added = tx.execute(REGISTER, &[&id.namespace, &id.metric, &id.dims, &unit])?;
                if added == 0 {
                    continue;
                }
                let count: i64 = tx.query_one(COUNT_CUSTOM, &[])?.try_get(0)?;
                if usize::try_from(count).unwrap_or(usize::MAX) > MAX_CUSTOM_METRICS {
                    return Err(StoreError::TooManyMetrics(format!(
                        "{}/{}",
                        id.namespace, id.metric
                    )));
                }
            }
            add_in(tx, &rows).map_err(StoreError::from)
        })
    })
}

/// [`crate::store::MetricStore::custom_unit`] on the shared store.
pub(crate) fn custom_unit(pool: &Pool, id: MetricId) -> Result<Option<String>, StoreError> {
    on(pool, move |conn| {
        let st = conn.prepare(UNIT)?;
        let row = conn
            .client()
            .query_opt(&st, &[&id.namespace, &id.metric, &id.dims])?;
        Ok(match row {
            Some(r) => r.try_get::<_, Option<String>>(0)?,
            None => None,
        })
    })
}

/// The stored rows of `id` with `start <= ts < end`, by time then period.
pub(crate) fn query(
    pool: &Pool,
    id: MetricId,
    start: i64,
    end: i64,
) -> Result<Vec<Datapoint>, StoreError> {
    on(pool, move |conn| {
        let st = conn.prepare(QUERY)?;
        let rows = conn
            .client()
            .query(&st, &[&id.namespace, &id.metric, &id.dims, &start, &end])?;
        rows.iter()
            .map(|r| point(r).map_err(StoreError::from))
            .collect()
    })
}

/// [`crate::store::MetricStore::list`] on the shared store.
pub(crate) fn list(
    pool: &Pool,
    namespace: Option<String>,
    metric: Option<String>,
    since: i64,
) -> Result<Vec<MetricId>, StoreError> {
    on(pool, move |conn| {
        let st = conn.prepare(LIST)?;
        let rows = conn.client().query(&st, &[&since, &namespace, &metric])?;
        rows.iter()
            .map(|r| {
                Ok(MetricId {
                    namespace: r.try_get(0)?,
                    metric: r.try_get(1)?,
                    dims: r.try_get(2)?,
                })
            })
            .collect()
    })
}

/// [`crate::store::MetricStore::compact`] on the shared store, in one transaction: the
/// first node to compact rolls the old minutes up, the others then find none.
pub(crate) fn compact(
    pool: &Pool,
    minute_cutoff: i64,
    five_cutoff: i64,
) -> Result<usize, StoreError> {
    on(pool, move |conn| {
        conn.transaction(|tx| {
            lock(tx)?;
            let old = tx.query(OLD_MINUTES, &[&minute_cutoff])?;
            let mut rolled = Vec::with_capacity(old.len());
            for r in &old {
                let id = MetricId {
                    namespace: r.try_get(0)?,
                    metric: r.try_get(1)?,
                    dims: r.try_get(2)?,
                };
                let hist: Option<Vec<u8>> = r.try_get(8)?;
                let ts: i64 = r.try_get(3)?;
                rolled.push((
                    id,
                    300,
                    Datapoint {
                        ts: ts - ts.rem_euclid(300),
                        count: r.try_get(4)?,
                        sum: r.try_get(5)?,
                        min: r.try_get(6)?,
                        max: r.try_get(7)?,
                        hist: hist.as_deref().and_then(decode_hist),
                    },
                ));
            }
            add_in(tx, &rolled)?;
            let minutes = tx.execute(DROP_MINUTES, &[&minute_cutoff])?;
            let fives = tx.execute(DROP_FIVES, &[&five_cutoff])?;
            Ok(usize::try_from(minutes + fives).unwrap_or(usize::MAX))
        })
    })
}

fn encode_alarm(alarm: &Alarm) -> Result<String, StoreError> {
    serde_json::to_string(alarm).map_err(|e| StoreError::Encoding(e.to_string()))
}

/// [`crate::store::MetricStore::put_alarm`] on the shared store: the count against
/// [`MAX_ALARMS`] is taken under an advisory lock, so two nodes cannot both add the last.
pub(crate) fn put_alarm(pool: &Pool, alarm: &Alarm) -> Result<(), StoreError> {
    let name = alarm.name.clone();
    let json = encode_alarm(alarm)?;
    on(pool, move |conn| {
        conn.transaction(|tx| {
            tx.execute(TAKE_LOCK, &[&ALARMS_LOCK])?;
            if tx.query_opt(ALARM_EXISTS, &[&name])?.is_none() {
                let count: i64 = tx.query_one(COUNT_ALARMS, &[])?.try_get(0)?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_ALARMS {
                    return Err(StoreError::TooManyAlarms(name.clone()));
                }
            }
            tx.execute(PUT_ALARM, &[&name, &json])?;
            Ok(())
        })
    })
}

/// Every alarm, by name (documents that no longer decode are skipped, as in the file).
pub(crate) fn alarms(pool: &Pool) -> Result<Vec<Alarm>, StoreError> {
    on(pool, move |conn| {
        let st = conn.prepare(ALARMS)?;
        let rows = conn.client().query(&st, &[])?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let doc: String = r.try_get(0)?;
            if let Ok(alarm) = serde_json::from_str(&doc) {
                out.push(alarm);
            }
        }
        Ok(out)
    })
}

/// [`crate::store::MetricStore::update_alarm`] on the shared store: the row is locked
/// from the read to the write.
pub(crate) fn update_alarm(
    pool: &Pool,
    name: String,
    change: Box<dyn Fn(&mut Alarm) + Send>,
) -> Result<Option<Alarm>, StoreError> {
    on(pool, move |conn| {
        conn.transaction(|tx| {
            let Some(row) = tx.query_opt(ALARM_FOR_UPDATE, &[&name])? else {
                return Ok(None);
            };
            let doc: String = row.try_get(0)?;
            let mut alarm: Alarm =
                serde_json::from_str(&doc).map_err(|e| StoreError::Encoding(e.to_string()))?;
            change(&mut alarm);
            tx.execute(SET_ALARM, &[&name, &encode_alarm(&alarm)?])?;
            Ok(Some(alarm))
        })
    })
}

/// Deletes alarms and their history; returns how many existed.
pub(crate) fn delete_alarms(pool: &Pool, names: Vec<String>) -> Result<usize, StoreError> {
    on(pool, move |conn| {
        conn.transaction(|tx| {
            let mut n = 0;
            for name in &names {
                n += tx.execute(DELETE_ALARM, &[name])?;
                tx.execute(DELETE_HISTORY, &[name])?;
            }
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    })
}

/// Adds history entries, keeping the newest [`HISTORY_PER_ALARM`] of each alarm.
pub(crate) fn add_history(pool: &Pool, items: Vec<HistoryItem>) -> Result<(), StoreError> {
    on(pool, move |conn| {
        conn.transaction(|tx| {
            for item in &items {
                tx.execute(
                    ADD_HISTORY,
                    &[&item.alarm, &item.time_ms, &item.kind, &item.summary],
                )?;
                tx.execute(TRIM_HISTORY, &[&item.alarm, &HISTORY_PER_ALARM])?;
            }
            Ok(())
        })
    })
}

/// History entries, newest first, of one alarm or all.
pub(crate) fn history(
    pool: &Pool,
    alarm: Option<String>,
    max: usize,
) -> Result<Vec<HistoryItem>, StoreError> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    on(pool, move |conn| {
        let st = conn.prepare(HISTORY)?;
        let rows = conn.client().query(&st, &[&alarm, &max])?;
        rows.iter()
            .map(|r| {
                Ok(HistoryItem {
                    alarm: r.try_get(0)?,
                    time_ms: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    summary: r.try_get(3)?,
                })
            })
            .collect()
    })
}

/// Whether this node evaluates the alarms of `minute`: true for the first node to ask
/// for a minute later than the last one evaluated, false for every other.
pub(crate) fn claim_evaluation(pool: &Pool, minute: i64) -> Result<bool, StoreError> {
    on(pool, move |conn| {
        let st = conn.prepare(CLAIM_TURN)?;
        Ok(conn.client().execute(&st, &[&minute])? == 1)
    })
}

/// Adds alarms a node kept in its own file, and their history (given newest first), to
/// the shared store; an alarm already there of the same name is kept and the file's
/// dropped with its history. Not counted against [`MAX_ALARMS`]: what was stored is
/// never lost to a bound it was not put under.
pub(crate) fn import_alarms(
    pool: &Pool,
    alarms: Vec<Alarm>,
    history: Vec<HistoryItem>,
) -> Result<(), StoreError> {
    let mut docs = Vec::with_capacity(alarms.len());
    for alarm in &alarms {
        docs.push((alarm.name.clone(), encode_alarm(alarm)?));
    }
    on(pool, move |conn| {
        conn.transaction(|tx| {
            tx.execute(TAKE_LOCK, &[&ALARMS_LOCK])?;
            let mut imported = std::collections::HashSet::new();
            for (name, doc) in &docs {
                let added = tx.execute(
                    "INSERT INTO metric_alarms (name, document) VALUES ($1, $2) \
                     ON CONFLICT (name) DO NOTHING",
                    &[name, doc],
                )?;
                if added == 1 {
                    imported.insert(name.as_str());
                }
            }
            for item in history.iter().rev() {
                if imported.contains(item.alarm.as_str()) {
                    tx.execute(
                        ADD_HISTORY,
                        &[&item.alarm, &item.time_ms, &item.kind, &item.summary],
                    )?;
                }
            }
            Ok(())
        })
    })
}
