//! The aggregator: once a minute, off every request's path, the difference between this
//! minute's snapshot of the live series and the previous one becomes one-minute datapoints,
//! written to the store in one transaction; once an hour the store is compacted.
//!
//! Datapoints are written as Lambda publishes them: `Invocations` and the other counters
//! only for a minute in which they moved; `Errors` for every minute with invocations (0 or
//! more, with the invocations as its sample count, so its average is the error rate);
//! `Duration` and `AsyncEventAge` with their extremes and histogram; and
//! `ConcurrentExecutions` as the most invocations running at once during the minute.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::histogram::HistogramSnapshot;
use crate::store::{Datapoint, MetricId, MetricStore, StoreError};
use crate::{Counter, Dimensions, Metrics, SeriesSnapshot, Timer, LAMBDA_NAMESPACE};

/// Turns live series into datapoints.
pub struct Aggregator {
    metrics: Arc<Metrics>,
    store: Arc<MetricStore>,
    previous: HashMap<Dimensions, SeriesSnapshot>,
    last_compaction: i64,
}

/// The seconds since the epoch, now.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Aggregator {
    /// An aggregator whose first minute starts now (what was recorded before is not
    /// attributed to it).
    pub fn new(metrics: Arc<Metrics>, store: Arc<MetricStore>) -> Self {
        let previous = metrics
            .snapshot(true)
            .into_iter()
            .map(|s| (s.dims.clone(), s))
            .collect();
        Self {
            metrics,
            store,
            previous,
            last_compaction: 0,
        }
    }

    /// Closes the minute that starts at `minute` (epoch seconds): its datapoints are
    /// written, and returned for whoever watches them (alarms).
    pub fn close_minute(
        &mut self,
        minute: i64,
    ) -> Result<Vec<(MetricId, i64, Datapoint)>, StoreError> {
        let minute = minute - minute.rem_euclid(60);
        let now = self.metrics.snapshot(true);
        let mut rows = Vec::new();
        for current in &now {
            let before = self.previous.get(&current.dims);
            datapoints(current, before, minute, &mut rows);
        }
        self.previous = now.into_iter().map(|s| (s.dims.clone(), s)).collect();
        self.store.add(&rows)?;
        if minute - self.last_compaction >= 3_600 {
            self.last_compaction = minute;
            self.store.compact(minute)?;
        }
        Ok(rows)
    }

    /// Runs on a thread of its own, closing each minute at its end, until `stop` is
    /// dropped or sent to; after each minute is stored, `closed` is told the time (epoch
    /// seconds), so that alarms are evaluated on data that includes it.
    pub fn spawn(
        mut self,
        stop: mpsc::Receiver<()>,
        closed: impl Fn(i64) + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("metrics-aggregator".into())
            .spawn(move || loop {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let into_minute = now.as_millis() % 60_000;
                let wait = Duration::from_millis((60_000 - into_minute) as u64);
                match stop.recv_timeout(wait) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                // The minute that just ended.
                let minute = now_s() - 30;
                if let Err(e) = self.close_minute(minute) {
                    tracing::warn!(error = %e, "a minute's metrics could not be stored");
                }
                closed(now_s());
            })
    }
}

/// The datapoints one series contributes for one minute.
fn datapoints(
    current: &SeriesSnapshot,
    before: Option<&SeriesSnapshot>,
    minute: i64,
    rows: &mut Vec<(MetricId, i64, Datapoint)>,
) {
    let dims = current.dims.key();
    let id = |namespace: &str, metric: &str| MetricId {
        namespace: namespace.to_owned(),
        metric: metric.to_owned(),
        dims: dims.clone(),
    };
    let delta = |c: Counter| {
        current
            .counter(c)
            .saturating_sub(before.map_or(0, |b| b.counter(c)))
    };
    let invocations = delta(Counter::Invocations);
    for counter in Counter::ALL {
        let n = delta(counter);
        let point = match counter {
            Counter::Errors if invocations > 0 || n > 0 => Datapoint {
                ts: minute,
                count: invocations.max(n) as f64,
                sum: n as f64,
                min: if n < invocations { 0.0 } else { 1.0 },
                max: if n > 0 { 1.0 } else { 0.0 },
                hist: None,
            },
            _ if n > 0 => Datapoint {
                ts: minute,
                count: n as f64,
                sum: n as f64,
                min: 1.0,
                max: 1.0,
                hist: None,
            },
            _ => continue,
        };
        rows.push((id(counter.namespace(), counter.name()), 60, point));
    }
    for timer in Timer::ALL {
        let now = current.timer(timer);
        let empty = HistogramSnapshot::default();
        let then = before.map_or(&empty, |b| &b.timer(timer).totals);
        let diff = now.totals.since(then);
        if diff.count == 0 {
            continue;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let point = Datapoint {
            ts: minute,
            count: diff.count as f64,
            sum: ms(diff.sum),
            min: now.minute_min.map_or(0.0, ms),
            max: now.minute_max.map_or(0.0, ms),
            hist: Some(diff),
        };
        rows.push((id(LAMBDA_NAMESPACE, timer.name()), 60, point));
    }
    if current.concurrent_peak > 0 {
        let peak = current.concurrent_peak as f64;
        let point = Datapoint {
            ts: minute,
            count: 1.0,
            sum: peak,
            min: peak,
            max: peak,
            hist: None,
        };
        rows.push((id(LAMBDA_NAMESPACE, "ConcurrentExecutions"), 60, point));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_becomes_lambdas_datapoints() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(MetricStore::open(&dir.path().join("m.db")).expect("open"));
        let metrics = Arc::new(Metrics::new(100));
        metrics.started("f", "1", None);
        metrics.finished("f", "1", None, 1_000, false);
        let mut agg = Aggregator::new(Arc::clone(&metrics), Arc::clone(&store));
        // What came before the aggregator is not this minute's.
        for ms in [10u64, 30] {
            metrics.started("f", "1", None);
            metrics.finished("f", "1", None, ms * 1000, ms == 30);
        }
        metrics.count(Counter::AccessDenied, None, None);
        let rows = agg.close_minute(120).expect("close");
        let find = |metric: &str, dims: &str| {
            rows.iter()
                .find(|(id, _, _)| id.metric == metric && id.dims == dims)
                .map(|(_, _, p)| p.clone())
        };
        let inv = find("Invocations", "FunctionName=f").expect("invocations");
        assert_eq!((inv.ts, inv.sum), (120, 2.0));
        let errors = find("Errors", "ExecutedVersion=1,FunctionName=f").expect("errors");
        assert_eq!(
            (errors.count, errors.sum, errors.average()),
            (2.0, 1.0, 0.5)
        );
        let duration = find("Duration", "").expect("duration");
        assert_eq!((duration.count, duration.sum), (2.0, 40.0));
        assert_eq!((duration.min, duration.max), (10.0, 30.0));
        assert_eq!(
            find("ConcurrentExecutions", "FunctionName=f")
                .expect("peak")
                .max,
            1.0
        );
        let denied = rows
            .iter()
            .find(|(id, _, _)| id.metric == "AccessDenied")
            .expect("denied");
        assert_eq!(denied.0.namespace, "Warden/Security");
        // A quiet minute writes nothing for the function.
        let rows = agg.close_minute(180).expect("close");
        assert!(rows.is_empty(), "{rows:?}");
        let stored = store
            .query(
                &MetricId {
                    namespace: "AWS/Lambda".into(),
                    metric: "Invocations".into(),
                    dims: "FunctionName=f".into(),
                },
                0,
                1_000,
                60,
            )
            .expect("query");
        assert_eq!(stored.len(), 1);
    }
}
