//! Datapoints and custom metrics in PostgreSQL, shared by the nodes of a cluster (the
//! `metrics` schema track): each node adds its own minute's datapoints, and they merge
//! into the same rows, so a query through any node sees every node's invocations.
//!
//! Adding merges into what is stored (sums, counts, minima, maxima and histograms), so
//! it reads a row before it writes it: every write transaction first takes one advisory
//! lock, and two nodes adding to one row queue instead of losing each other's values. A
//! node writes once a minute, plus `PutMetricData`: the lock is rarely contended.
//! Alarms and their history stay in each node's file (see [`crate::store::MetricStore`]).

use warden_postgres::{Conn, Migration, Pool, Track};

use crate::store::{decode_hist, encode_hist, Datapoint, MetricId, StoreError, MAX_CUSTOM_METRICS};

const MIGRATIONS: &[Migration] = &[Migration::additive(
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
)];

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
