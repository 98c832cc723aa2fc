//! Datapoints kept as CloudWatch keeps them, in `DATA_DIR/metrics.db` (or, for nodes
//! sharing a store, in PostgreSQL: [`crate::postgres`]): one row per metric,
//! dimensions, period and period start, with the statistics every query needs (sample
//! count, sum, minimum, maximum) and, for timed metrics, the histogram percentiles are read
//! from. One-minute rows are kept [`MINUTE_RETENTION_S`], then rolled into five-minute rows
//! kept [`FIVE_MINUTE_RETENTION_S`] ([`MetricStore::compact`]).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::histogram::HistogramSnapshot;

/// How long one-minute datapoints are kept: 15 days.
pub const MINUTE_RETENTION_S: i64 = 15 * 86_400;
/// How long five-minute datapoints are kept: 63 days.
pub const FIVE_MINUTE_RETENTION_S: i64 = 63 * 86_400;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE datapoints (
    namespace TEXT NOT NULL,
    metric TEXT NOT NULL,
    dims TEXT NOT NULL,
    period INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    count REAL NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    hist BLOB,
    PRIMARY KEY (namespace, metric, dims, period, ts)
) STRICT, WITHOUT ROWID;
CREATE INDEX datapoints_by_age ON datapoints (period, ts);
"#,
    r#"
CREATE TABLE custom_metrics (
    namespace TEXT NOT NULL,
    metric TEXT NOT NULL,
    dims TEXT NOT NULL,
    PRIMARY KEY (namespace, metric, dims)
) STRICT, WITHOUT ROWID;
"#,
    r#"
CREATE TABLE alarms (
    name TEXT PRIMARY KEY,
    document TEXT NOT NULL
) STRICT;
CREATE TABLE alarm_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL
) STRICT;
CREATE INDEX alarm_history_by_alarm ON alarm_history (alarm, seq);
"#,
    r#"
ALTER TABLE custom_metrics ADD COLUMN unit TEXT;
"#,
];

/// The most custom metrics (namespace, name and dimensions) a server keeps: each costs up to
/// a row a minute for 15 days, then one per five minutes for 63 days.
pub const MAX_CUSTOM_METRICS: usize = 1_000;

/// What went wrong keeping datapoints.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening the database failed.
    #[error("opening the metrics database: {0}")]
    Open(#[from] warden_sqlite::Error),
    /// Adding a custom metric would pass [`MAX_CUSTOM_METRICS`].
    #[error(
        "this server keeps at most {MAX_CUSTOM_METRICS} custom metrics; `{0}` would be one more"
    )]
    TooManyMetrics(String),
    /// Adding an alarm would pass [`crate::alarms::MAX_ALARMS`].
    #[error("this server keeps at most {max} alarms; `{0}` would be one more", max = crate::alarms::MAX_ALARMS)]
    TooManyAlarms(String),
    /// A record could not be encoded.
    #[error("encoding a record: {0}")]
    Encoding(String),
    /// A query of the shared store in PostgreSQL failed.
    #[error("{context}: {source}")]
    Shared {
        /// The step that failed.
        context: &'static str,
        /// The error.
        #[source]
        source: warden_postgres::Error,
    },
    /// A query failed.
    #[error("{context}: {source}")]
    Sqlite {
        /// The step that failed.
        context: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

pub(crate) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { context, source }
}

/// The statistics of one period of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// The period's start, epoch seconds.
    pub ts: i64,
    /// Values recorded.
    pub count: f64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// For timed metrics, in microseconds: where percentiles come from.
    pub hist: Option<HistogramSnapshot>,
}

impl Datapoint {
    /// Adds `other`'s values (same metric, another part of the period).
    pub fn merge(&mut self, other: &Datapoint) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        match (&mut self.hist, &other.hist) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.hist = Some(b.clone()),
            _ => {}
        }
    }

    /// The mean value.
    pub fn average(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// A statistic by CloudWatch's name: `SampleCount`, `Sum`, `Average`, `Minimum`,
    /// `Maximum`, or a percentile `pNN` / `pNN.N` ([`percentile_of`]); `None` for another
    /// name, or a percentile of a metric without a histogram.
    pub fn statistic(&self, stat: &str) -> Option<f64> {
        match stat {
            "SampleCount" => Some(self.count),
            "Sum" => Some(self.sum),
            "Average" => Some(self.average()),
            "Minimum" => Some(self.min),
            "Maximum" => Some(self.max),
            _ => percentile_of(stat).and_then(|p| self.percentile(p)),
        }
    }

    /// The `p`-th percentile in the metric's unit (milliseconds for timed metrics), from
    /// the histogram, never above the period's maximum; `None` for metrics without one.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let hist = self.hist.as_ref()?;
        let max_us = (self.max * 1000.0).round() as u64;
        hist.percentile(p, Some(max_us))
            .map(|us| us as f64 / 1000.0)
    }
}

/// The percentile a statistic's name asks for (`p99` is 99.0), if it is one: above 0, at
/// most 100.
pub fn percentile_of(stat: &str) -> Option<f64> {
    let p: f64 = stat.strip_prefix('p')?.parse().ok()?;
    (p > 0.0 && p <= 100.0).then_some(p)
}

pub(crate) fn encode_hist(h: &HistogramSnapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + h.buckets.len() * 10);
    out.extend_from_slice(&h.count.to_le_bytes());
    out.extend_from_slice(&h.sum.to_le_bytes());
    for (i, n) in h.sparse() {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
    }
    out
}

/// Reads [`encode_hist`]'s bytes; `None` for bytes of the wrong shape.
pub(crate) fn decode_hist(bytes: &[u8]) -> Option<HistogramSnapshot> {
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let count = u64_at(0)?;
    let sum = u64_at(8)?;
    let rest = bytes.get(16..)?;
    if rest.len() % 10 != 0 {
        return None;
    }
    let pairs: Vec<(u16, u64)> = rest
        .chunks_exact(10)
        .filter_map(|c| {
            let i = u16::from_le_bytes(c.get(..2)?.try_into().ok()?);
            let n = u64::from_le_bytes(c.get(2..)?.try_into().ok()?);
            Some((i, n))
        })
        .collect();
    Some(HistogramSnapshot::from_sparse(count, sum, &pairs))
}

/// One metric's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricId {
    /// `AWS/Lambda`, `Warden/Security`, or a custom namespace.
    pub namespace: String,
    /// The metric's name.
    pub metric: String,
    /// Canonical dimensions text (`FunctionName=f`), empty for none.
    pub dims: String,
}

/// The datapoints of one server, or of every node of a cluster.
///
/// With a shared store the datapoints, the custom metrics, the alarms and their history
/// are all in PostgreSQL ([`crate::postgres`]), where every node's datapoints merge into
/// the same rows; the node's file is then opened but holds nothing read.
pub struct MetricStore {
    conn: Mutex<Connection>,
    shared: Option<warden_postgres::Pool>,
}

impl MetricStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = warden_sqlite::open(
            path,
            &warden_sqlite::Options {
                // Datapoints are recomputed from nothing after a crash: losing the newest
                // minute to a power cut is acceptable, an fsync per minute per row is not.
                synchronous: warden_sqlite::Synchronous::Normal,
                migrations: MIGRATIONS,
                incremental_vacuum: true,
            },
        )?;
        Ok(Self {
            conn: Mutex::new(db.writer),
            shared: None,
        })
    }

    /// Opens (creating) `path`, and keeps datapoints, custom metrics and alarms on `pool`,
    /// shared with the other nodes (its schema includes [`crate::postgres::TRACK`]).
    ///
    /// Alarms a node kept in its file before alarms were shared (and their history) move
    /// to the shared store, where an alarm of the same name put by another node wins.
    pub fn open_with_shared(path: &Path, pool: warden_postgres::Pool) -> Result<Self, StoreError> {
        let mut store = Self::open(path)?;
        let local = store.alarms()?;
        if !local.is_empty() {
            // Every entry the file can hold: each alarm keeps its newest ones.
            let all = crate::alarms::MAX_ALARMS
                * usize::try_from(crate::alarms::HISTORY_PER_ALARM).unwrap_or(usize::MAX);
            let history = store.history(None, all)?;
            crate::postgres::import_alarms(&pool, local, history)?;
            store.with_tx("moving alarms to the shared store", |tx| {
                tx.execute_batch("DELETE FROM alarms; DELETE FROM alarm_history;")
                    .map_err(sqlite("moving alarms to the shared store"))
            })?;
        }
        store.shared = Some(pool);
        Ok(store)
    }

    /// Whether the store is shared with other nodes.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The shared store, if this node has one.
    pub(crate) fn shared(&self) -> Option<&warden_postgres::Pool> {
        self.shared.as_ref()
    }

    /// Adds datapoints (merged into any already stored for the same metric and period).
    pub fn add(&self, rows: &[(MetricId, i64, Datapoint)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(pool) = &self.shared {
            return crate::postgres::add(pool, rows.to_vec());
        }
        let mut conn = warden_sqlite::lock(&self.conn);
        let tx = warden_sqlite::immediate(&mut conn).map_err(sqlite("adding datapoints"))?;
        for (id, period, point) in rows {
            let mut point = point.clone();
            let existing = read_one(&tx, id, *period, point.ts)?;
            if let Some(e) = existing {
                point.merge(&e);
            }
            tx.execute(
                "INSERT OR REPLACE INTO datapoints \
                 (namespace, metric, dims, period, ts, count, sum, min, max, hist) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    id.namespace,
                    id.metric,
                    id.dims,
                    period,
                    point.ts,
                    point.count,
                    point.sum,
                    point.min,
                    point.max,
                    point.hist.as_ref().map(encode_hist),
                ],
            )
            .map_err(sqlite("adding datapoints"))?;
        }
        tx.commit().map_err(sqlite("adding datapoints"))
    }

    /// Runs `f` in one immediate transaction, committed if it succeeds.
    pub(crate) fn with_tx<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = warden_sqlite::lock(&self.conn);
        let tx = warden_sqlite::immediate(&mut conn).map_err(sqlite(context))?;
        let out = f(&tx)?;
        tx.commit().map_err(sqlite(context))?;
        Ok(out)
    }

    /// Adds datapoints of custom metrics (`PutMetricData`): as [`MetricStore::add`], after
    /// registering each new metric, refusing all of them if one would pass
    /// [`MAX_CUSTOM_METRICS`].
    pub fn add_custom(
        &self,
        rows: &[(MetricId, i64, Datapoint)],
        units: &[Option<String>],
    ) -> Result<(), StoreError> {
        if let Some(pool) = &self.shared {
            return crate::postgres::add_custom(pool, rows.to_vec(), units.to_vec());
        }
        {
            let mut conn = warden_sqlite::lock(&self.conn);
            let tx = warden_sqlite::immediate(&mut conn).map_err(sqlite("adding metrics"))?;
            for (i, (id, _, _)) in rows.iter().enumerate() {
                if let Some(Some(unit)) = units.get(i) {
                    tx.execute(
                        "UPDATE custom_metrics SET unit = ?4 WHERE namespace = ?1 AND metric = ?2 AND dims = ?3",
                        params![id.namespace, id.metric, id.dims, unit],
                    )
                    .map_err(sqlite("adding metrics"))?;
                }
                let added = tx
                    .execute(
                        "INSERT OR IGNORE INTO custom_metrics (namespace, metric, dims, unit) VALUES (?1, ?2, ?3, ?4)",
                        params![id.namespace, id.metric, id.dims, units.get(i).cloned().flatten()],
                    )
                    .map_err(sqlite("adding metrics"))?;
                if added == 0 {
                    continue;
                }
                let count: i64 = tx
                    .query_row("SELECT COUNT(*) FROM custom_metrics", [], |r| r.get(0))
                    .map_err(sqlite("adding metrics"))?;
                if count as usize > MAX_CUSTOM_METRICS {
                    // The transaction is dropped: nothing of this request is kept.
                    return Err(StoreError::TooManyMetrics(format!(
                        "{}/{}",
                        id.namespace, id.metric
                    )));
                }
            }
            tx.commit().map_err(sqlite("adding metrics"))?;
        }
        self.add(rows)
    }

    /// The unit `PutMetricData` last gave a custom metric, if any.
    pub fn custom_unit(&self, id: &MetricId) -> Result<Option<String>, StoreError> {
        if let Some(pool) = &self.shared {
            return crate::postgres::custom_unit(pool, id.clone());
        }
        let conn = warden_sqlite::lock(&self.conn);
        conn.query_row(
            "SELECT unit FROM custom_metrics WHERE namespace = ?1 AND metric = ?2 AND dims = ?3",
            params![id.namespace, id.metric, id.dims],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()
        .map(Option::flatten)
        .map_err(sqlite("reading a metric's unit"))
    }

    /// The datapoints of `id` from `start` (inclusive) to `end` (exclusive), epoch seconds,
    /// one per `period` seconds (aligned to the epoch) that has values.
    pub fn query(
        &self,
        id: &MetricId,
        start: i64,
        end: i64,
        period: i64,
    ) -> Result<Vec<Datapoint>, StoreError> {
        let period = period.max(60);
        let rows = match &self.shared {
            Some(pool) => crate::postgres::query(pool, id.clone(), start, end)?,
            None => {
                let conn = warden_sqlite::lock(&self.conn);
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT ts, count, sum, min, max, hist FROM datapoints \
                         WHERE namespace = ?1 AND metric = ?2 AND dims = ?3 AND ts >= ?4 AND ts < ?5 \
                         ORDER BY ts, period",
                    )
                    .map_err(sqlite("reading datapoints"))?;
                let mut rows = Vec::new();
                for r in stmt
                    .query_map(params![id.namespace, id.metric, id.dims, start, end], row)
                    .map_err(sqlite("reading datapoints"))?
                {
                    rows.push(r.map_err(sqlite("reading datapoints"))?);
                }
                rows
            }
        };
        let mut out: Vec<Datapoint> = Vec::new();
        for mut point in rows {
            point.ts -= point.ts.rem_euclid(period);
            match out.last_mut() {
                Some(last) if last.ts == point.ts => last.merge(&point),
                _ => out.push(point),
            }
        }
        Ok(out)
    }

    /// The metrics with a datapoint since `since`, optionally of one namespace and name.
    pub fn list(
        &self,
        namespace: Option<&str>,
        metric: Option<&str>,
        since: i64,
    ) -> Result<Vec<MetricId>, StoreError> {
        if let Some(pool) = &self.shared {
            return crate::postgres::list(
                pool,
                namespace.map(str::to_owned),
                metric.map(str::to_owned),
                since,
            );
        }
        let conn = warden_sqlite::lock(&self.conn);
        let mut stmt = conn
            .prepare_cached(
                "SELECT DISTINCT namespace, metric, dims FROM datapoints \
                 WHERE ts >= ?1 AND (?2 IS NULL OR namespace = ?2) AND (?3 IS NULL OR metric = ?3) \
                 ORDER BY namespace, metric, dims",
            )
            .map_err(sqlite("listing metrics"))?;
        let rows = stmt
            .query_map(params![since, namespace, metric], |r| {
                Ok(MetricId {
                    namespace: r.get(0)?,
                    metric: r.get(1)?,
                    dims: r.get(2)?,
                })
            })
            .map_err(sqlite("listing metrics"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sqlite("listing metrics"))
    }

    /// Rolls one-minute datapoints older than [`MINUTE_RETENTION_S`] into five-minute ones
    /// and deletes five-minute ones older than [`FIVE_MINUTE_RETENTION_S`]; `now` in epoch
    /// seconds. Returns the rows removed.
    pub fn compact(&self, now: i64) -> Result<usize, StoreError> {
        let minute_cutoff = now - MINUTE_RETENTION_S;
        if let Some(pool) = &self.shared {
            return crate::postgres::compact(pool, minute_cutoff, now - FIVE_MINUTE_RETENTION_S);
        }
        let old: Vec<(MetricId, Datapoint)> = {
            let conn = warden_sqlite::lock(&self.conn);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT namespace, metric, dims, ts, count, sum, min, max, hist \
                     FROM datapoints WHERE period = 60 AND ts < ?1",
                )
                .map_err(sqlite("compacting datapoints"))?;
            let rows = stmt
                .query_map(params![minute_cutoff], |r| {
                    let id = MetricId {
                        namespace: r.get(0)?,
                        metric: r.get(1)?,
                        dims: r.get(2)?,
                    };
                    let hist: Option<Vec<u8>> = r.get(8)?;
                    Ok((
                        id,
                        Datapoint {
                            ts: r.get(3)?,
                            count: r.get(4)?,
                            sum: r.get(5)?,
                            min: r.get(6)?,
                            max: r.get(7)?,
                            hist: hist.as_deref().and_then(decode_hist),
                        },
                    ))
                })
                .map_err(sqlite("compacting datapoints"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sqlite("compacting datapoints"))?
        };
        let rolled: Vec<(MetricId, i64, Datapoint)> = old
            .into_iter()
            .map(|(id, mut p)| {
                p.ts -= p.ts.rem_euclid(300);
                (id, 300, p)
            })
            .collect();
        self.add(&rolled)?;
        let conn = warden_sqlite::lock(&self.conn);
        let minutes = conn
            .execute(
                "DELETE FROM datapoints WHERE period = 60 AND ts < ?1",
                params![minute_cutoff],
            )
            .map_err(sqlite("compacting datapoints"))?;
        let fives = conn
            .execute(
                "DELETE FROM datapoints WHERE period = 300 AND ts < ?1",
                params![now - FIVE_MINUTE_RETENTION_S],
            )
            .map_err(sqlite("compacting datapoints"))?;
        let _ = conn.execute_batch("PRAGMA incremental_vacuum");
        Ok(minutes + fives)
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Datapoint> {
    let hist: Option<Vec<u8>> = r.get(5)?;
    Ok(Datapoint {
        ts: r.get(0)?,
        count: r.get(1)?,
        sum: r.get(2)?,
        min: r.get(3)?,
        max: r.get(4)?,
        hist: hist.as_deref().and_then(decode_hist),
    })
}

fn read_one(
    conn: &Connection,
    id: &MetricId,
    period: i64,
    ts: i64,
) -> Result<Option<Datapoint>, StoreError> {
    conn.prepare_cached(
        "SELECT ts, count, sum, min, max, hist FROM datapoints \
         WHERE namespace = ?1 AND metric = ?2 AND dims = ?3 AND period = ?4 AND ts = ?5",
    )
    .and_then(|mut s| {
        s.query_row(params![id.namespace, id.metric, id.dims, period, ts], row)
            .optional()
    })
    .map_err(sqlite("reading a datapoint"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;
    use proptest::prelude::*;

    fn id(metric: &str) -> MetricId {
        MetricId {
            namespace: "AWS/Lambda".into(),
            metric: metric.into(),
            dims: "FunctionName=f".into(),
        }
    }

    fn point(ts: i64, values_ms: &[u64]) -> Datapoint {
        let h = Histogram::default();
        values_ms.iter().for_each(|v| h.record(v * 1000));
        Datapoint {
            ts,
            count: values_ms.len() as f64,
            sum: values_ms.iter().sum::<u64>() as f64,
            min: *values_ms.iter().min().unwrap_or(&0) as f64,
            max: *values_ms.iter().max().unwrap_or(&0) as f64,
            hist: Some(h.snapshot()),
        }
    }

    /// A new store on this node's file alone, or with its datapoints on a fresh shared
    /// PostgreSQL database, and the directory of its file.
    fn fresh(shared: bool) -> (tempfile::TempDir, MetricStore, Option<String>) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("metrics.db");
        if !shared {
            let store = MetricStore::open(&path).expect("open");
            return (dir, store, None);
        }
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .expect("database");
        let store = MetricStore::open_with_shared(&path, pool(&url)).expect("open");
        (dir, store, Some(url))
    }

    fn pool(url: &str) -> warden_postgres::Pool {
        warden_postgres::Pool::open(
            url,
            &warden_postgres::Options::default(),
            &[crate::postgres::TRACK],
        )
        .expect("pool")
    }

    macro_rules! on_both_stores {
        ($($name:ident),* $(,)?) => {
            mod sqlite {
                $(#[test] fn $name() { super::$name(false); })*
            }
            mod postgres {
                $(#[test] fn $name() { super::$name(true); })*
            }
        };
    }

    on_both_stores!(
        datapoints_merge_into_periods_and_keep_their_percentiles,
        old_minutes_roll_into_five_minutes_and_expire,
        custom_metrics_are_capped_and_a_refused_request_keeps_nothing,
    );

    fn datapoints_merge_into_periods_and_keep_their_percentiles(shared: bool) {
        let (_dir, store, _) = fresh(shared);
        store
            .add(&[
                (id("Duration"), 60, point(600, &[10, 20])),
                (id("Duration"), 60, point(660, &[30])),
                (id("Duration"), 60, point(900, &[100])),
            ])
            .expect("add");
        // The same minute again merges.
        store
            .add(&[(id("Duration"), 60, point(600, &[40]))])
            .expect("add");
        let per_minute = store.query(&id("Duration"), 0, 10_000, 60).expect("query");
        assert_eq!(per_minute.len(), 3);
        assert_eq!((per_minute[0].count, per_minute[0].sum), (3.0, 70.0));
        let five = store.query(&id("Duration"), 0, 10_000, 300).expect("query");
        assert_eq!(five.len(), 2, "{five:?}");
        assert_eq!((five[0].ts, five[0].count, five[0].max), (600, 4.0, 40.0));
        let p100 = five[0].percentile(100.0).expect("percentile");
        assert_eq!(p100, 40.0);
        let p50 = five[0].percentile(50.0).expect("percentile");
        assert!((20.0..=23.0).contains(&p50), "{p50}");
        assert_eq!(
            store.list(Some("AWS/Lambda"), None, 0).expect("list"),
            vec![id("Duration")]
        );
    }

    fn old_minutes_roll_into_five_minutes_and_expire(shared: bool) {
        let (_dir, store, _) = fresh(shared);
        let now = 100 * 86_400;
        let old = now - MINUTE_RETENTION_S - 3_600;
        let ancient = now - FIVE_MINUTE_RETENTION_S - 3_600;
        store
            .add(&[
                (id("Invocations"), 60, point(old, &[1])),
                (id("Invocations"), 60, point(old + 60, &[1])),
                (id("Invocations"), 300, point(ancient, &[1])),
                (id("Invocations"), 60, point(now - 60, &[1])),
            ])
            .expect("add");
        assert_eq!(store.compact(now).expect("compact"), 3);
        let kept = store.query(&id("Invocations"), 0, now, 60).expect("query");
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(
            (kept[0].ts, kept[0].count),
            (old - old.rem_euclid(300), 2.0)
        );
        assert_eq!(kept[1].ts, now - 60);
    }

    proptest! {
        #[test]
        fn stored_histograms_decode_as_written(values in proptest::collection::vec(0u64..1u64 << 40, 0..100)) {
            let h = Histogram::default();
            values.iter().for_each(|v| h.record(*v));
            let s = h.snapshot();
            prop_assert_eq!(decode_hist(&encode_hist(&s)), Some(s));
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_hist(&bytes);
        }
    }

    fn custom_metrics_are_capped_and_a_refused_request_keeps_nothing(shared: bool) {
        let (_dir, store, _) = fresh(shared);
        let custom = |i: usize| MetricId {
            namespace: "App".into(),
            metric: format!("m{i}"),
            dims: String::new(),
        };
        let rows: Vec<_> = (0..MAX_CUSTOM_METRICS)
            .map(|i| (custom(i), 60, point(60, &[1])))
            .collect();
        store.add_custom(&rows, &[]).expect("within the cap");
        // The same metrics again are not new.
        store.add_custom(&rows[..10], &[]).expect("known metrics");
        let over = vec![
            (custom(0), 60, point(120, &[1])),
            (custom(MAX_CUSTOM_METRICS), 60, point(120, &[1])),
        ];
        let err = store.add_custom(&over, &[]).expect_err("past the cap");
        assert!(matches!(err, StoreError::TooManyMetrics(_)), "{err}");
        assert!(store
            .query(&custom(0), 120, 180, 60)
            .expect("query")
            .is_empty());
    }

    /// Nodes adding the same minute at once: every node's values are in the merged row,
    /// whichever node is asked, and each node's alarms stay its own.
    #[test]
    fn nodes_adding_one_minute_at_once_lose_none_of_each_others_values() {
        let (_dir, first, url) = fresh(true);
        let url = url.expect("shared");
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
        let nodes: Vec<MetricStore> = dirs
            .iter()
            .map(|d| {
                MetricStore::open_with_shared(&d.path().join("metrics.db"), pool(&url))
                    .expect("open")
            })
            .collect();
        std::thread::scope(|scope| {
            for (n, node) in nodes.iter().enumerate() {
                scope.spawn(move || {
                    for i in 0..20u64 {
                        let value = (n as u64) * 100 + i;
                        node.add(&[(id("Duration"), 60, point(600, &[value]))])
                            .expect("add");
                    }
                });
            }
        });
        let merged = first.query(&id("Duration"), 0, 10_000, 60).expect("query");
        assert_eq!(merged.len(), 1);
        let expected_sum: u64 = (0..3u64)
            .flat_map(|n| (0..20).map(move |i| n * 100 + i))
            .sum();
        assert_eq!(
            (merged[0].count, merged[0].sum),
            (60.0, expected_sum as f64)
        );
        assert_eq!((merged[0].min, merged[0].max), (0.0, 219.0));
        assert_eq!(merged[0].percentile(100.0), Some(219.0));
    }
}
