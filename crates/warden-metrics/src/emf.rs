//! CloudWatch's Embedded Metric Format: a function logs a JSON object whose `_aws` member
//! declares metrics over its other members, and the values become custom metrics without
//! a PutMetricData call.
//!
//! ```json
//! {"_aws": {"Timestamp": 1796396400000, "CloudWatchMetrics": [{"Namespace": "Shop",
//!   "Dimensions": [["Service"]], "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}]}]},
//!  "Service": "cart", "Latency": [12, 30]}
//! ```
//!
//! [`extract`] reads one line (a line that is not EMF gives nothing, a malformed
//! directive an [`EmfError`] naming what is wrong); [`EmfSink`] gathers what lines carry
//! per metric and minute, in memory and bounded ([`MAX_PENDING`]), and a thread writes them
//! to the store every [`FLUSH_PERIOD`], so a chatty function costs one transaction per
//! period, not one per line. The limits are CloudWatch's: 100 metrics per directive, 30
//! dimensions per set, 100 values per metric; namespaces `AWS/...` and `Warden/...` are the
//! platform's and refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::store::{Datapoint, MetricId, MetricStore, StoreError};

/// Metrics one directive may declare.
pub const MAX_METRICS: usize = 100;
/// Dimensions one set may name.
pub const MAX_DIMENSIONS: usize = 30;
/// Values one metric may carry in one line.
pub const MAX_VALUES: usize = 100;
/// Metric-minutes [`EmfSink`] holds before a flush; beyond, datapoints are dropped and
/// counted.
pub const MAX_PENDING: usize = 10_000;
/// How often [`EmfSink`] writes what it gathered.
pub const FLUSH_PERIOD: Duration = Duration::from_secs(5);

/// Why a line's `_aws` directive was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid embedded metric format: {0}")]
pub struct EmfError(pub String);

fn bad(message: impl Into<String>) -> EmfError {
    EmfError(message.into())
}

/// One value of one metric a line carries.
#[derive(Debug, Clone, PartialEq)]
pub struct EmfPoint {
    /// The metric.
    pub id: MetricId,
    /// The unit the directive gave, if any.
    pub unit: Option<String>,
    /// The minute it belongs to, epoch seconds.
    pub minute: i64,
    /// The values (one or more).
    pub values: Vec<f64>,
}

/// The metrics a log line carries: nothing if it is not an EMF object, an error if its
/// directive is malformed. `now_s` bounds the timestamp as PutMetricData does (two weeks
/// back, two hours ahead).
pub fn extract(line: &str, now_s: i64) -> Result<Vec<EmfPoint>, EmfError> {
    let trimmed = line.trim();
    // The cheap test first: most lines are not EMF.
    if !trimmed.starts_with('{') || !trimmed.contains("\"_aws\"") {
        return Ok(Vec::new());
    }
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(trimmed) else {
        return Ok(Vec::new());
    };
    let Some(aws) = root.get("_aws") else {
        return Ok(Vec::new());
    };
    let aws = aws
        .as_object()
        .ok_or_else(|| bad("_aws must be an object"))?;
    let ms = aws
        .get("Timestamp")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("_aws.Timestamp (epoch milliseconds) is required"))?;
    let ts = ms.div_euclid(1000);
    if ts > now_s + 2 * 3600 || ts < now_s - 14 * 86_400 {
        return Err(bad(
            "_aws.Timestamp is more than two weeks old or two hours ahead",
        ));
    }
    let minute = ts - ts.rem_euclid(60);
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("_aws.CloudWatchMetrics must be a list"))?;
    let mut out = Vec::new();
    for d in directives {
        let d = d
            .as_object()
            .ok_or_else(|| bad("each CloudWatchMetrics entry must be an object"))?;
        let namespace = d
            .get("Namespace")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("Namespace is required"))?;
        if namespace.is_empty() || namespace.len() > 255 {
            return Err(bad("a Namespace is 1-255 characters"));
        }
        if namespace.starts_with("AWS/") || namespace.starts_with("Warden/") {
            return Err(bad(format!("the namespace {namespace} is the platform's")));
        }
        let sets = dimension_sets(d, &root)?;
        let metrics = d
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("Metrics must be a list"))?;
        if metrics.len() > MAX_METRICS {
            return Err(bad(format!(
                "a directive declares at most {MAX_METRICS} metrics"
            )));
        }
        for m in metrics {
            let name = m
                .get("Name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("each metric needs a Name"))?;
            if name.is_empty() || name.len() > 255 {
                return Err(bad("a metric Name is 1-255 characters"));
            }
            if m.get("StorageResolution")
                .and_then(Value::as_i64)
                .is_some_and(|r| r != 60)
            {
                return Err(bad(format!(
                    "{name}: StorageResolution must be 60; Warden keeps one-minute resolution at best"
                )));
            }
            let unit = m.get("Unit").and_then(Value::as_str).map(str::to_owned);
            let values = values_of(&root, name)?;
            if values.is_empty() {
                continue;
            }
            for dims in &sets {
                out.push(EmfPoint {
                    id: MetricId {
                        namespace: namespace.to_owned(),
                        metric: name.to_owned(),
                        dims: dims.clone(),
                    },
                    unit: unit.clone(),
                    minute,
                    values: values.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The directive's dimension sets, each as canonical dimensions text; an empty list (or
/// none) is one set of no dimensions.
fn dimension_sets(
    d: &Map<String, Value>,
    root: &Map<String, Value>,
) -> Result<Vec<String>, EmfError> {
    let Some(sets) = d.get("Dimensions") else {
        return Ok(vec![String::new()]);
    };
    let sets = sets
        .as_array()
        .ok_or_else(|| bad("Dimensions must be a list of lists of member names"))?;
    if sets.is_empty() {
        return Ok(vec![String::new()]);
    }
    let mut out = Vec::new();
    for set in sets {
        let keys = set
            .as_array()
            .ok_or_else(|| bad("each dimension set must be a list of member names"))?;
        if keys.len() > MAX_DIMENSIONS {
            return Err(bad(format!(
                "a dimension set names at most {MAX_DIMENSIONS} members"
            )));
        }
        let mut pairs = Vec::new();
        for k in keys {
            let key = k
                .as_str()
                .ok_or_else(|| bad("a dimension set holds member names"))?;
            let value = root.get(key).and_then(Value::as_str).ok_or_else(|| {
                bad(format!(
                    "the dimension {key} needs a string member of that name"
                ))
            })?;
            if key.is_empty()
                || key.len() > 255
                || value.is_empty()
                || value.len() > 1024
                || key.contains(['=', ','])
                || value.contains(',')
            {
                return Err(bad(format!(
                    "the dimension {key}: names are 1-255 characters without `=` or `,`, values 1-1024 without `,`"
                )));
            }
            pairs.push((key, value));
        }
        out.push(crate::dimensions_key(&pairs));
    }
    Ok(out)
}

/// The values of the member `name`: a number or a list of numbers.
fn values_of(root: &Map<String, Value>, name: &str) -> Result<Vec<f64>, EmfError> {
    let finite = |v: &Value| v.as_f64().filter(|x| x.is_finite());
    match root.get(name) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            if items.len() > MAX_VALUES {
                return Err(bad(format!("{name} carries more than {MAX_VALUES} values")));
            }
            items
                .iter()
                .map(|v| finite(v).ok_or_else(|| bad(format!("{name} must hold numbers"))))
                .collect()
        }
        Some(v) => finite(v)
            .map(|x| vec![x])
            .ok_or_else(|| bad(format!("{name} must be a number or a list of numbers"))),
    }
}

/// What an [`EmfSink`] holds: each metric-minute's datapoint so far, and the unit last
/// given.
type Pending = HashMap<(MetricId, i64), (Datapoint, Option<String>)>;

/// Gathers EMF datapoints in memory and writes them to the store every
/// [`FLUSH_PERIOD`].
pub struct EmfSink {
    pending: Mutex<Pending>,
    dropped: AtomicU64,
    store: Arc<MetricStore>,
}

impl EmfSink {
    /// A sink over `store`, with its flushing thread.
    pub fn start(store: Arc<MetricStore>) -> Arc<Self> {
        let sink = Arc::new(Self {
            pending: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
            store,
        });
        let weak = Arc::downgrade(&sink);
        let spawned = std::thread::Builder::new()
            .name("emf-flush".into())
            .spawn(move || {
                let mut reported = 0;
                loop {
                    std::thread::sleep(FLUSH_PERIOD);
                    let Some(sink) = weak.upgrade() else { return };
                    if let Err(e) = sink.flush() {
                        tracing::warn!(error = %e, "could not store embedded metrics");
                    }
                    let dropped = sink.dropped();
                    if dropped > reported {
                        tracing::warn!(
                            datapoints = dropped - reported,
                            "embedded metrics were dropped: more metric-minutes arrived between two writes than the sink holds"
                        );
                        reported = dropped;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the embedded metrics writer");
        }
        sink
    }

    /// Takes in one function log line. Returns the error of a malformed directive, for the
    /// caller to report; a line that is not EMF is `Ok`.
    pub fn ingest(&self, line: &str, now_s: i64) -> Result<(), EmfError> {
        let points = extract(line, now_s)?;
        if points.is_empty() {
            return Ok(());
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for p in points {
            let mut point = Datapoint {
                ts: p.minute,
                count: 0.0,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                hist: None,
            };
            for v in &p.values {
                point.count += 1.0;
                point.sum += v;
                point.min = point.min.min(*v);
                point.max = point.max.max(*v);
            }
            let key = (p.id, p.minute);
            if let Some((existing, unit)) = pending.get_mut(&key) {
                existing.merge(&point);
                if p.unit.is_some() {
                    *unit = p.unit;
                }
            } else if pending.len() < MAX_PENDING {
                pending.insert(key, (point, p.unit));
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Writes what was gathered; a metric past the store's custom metric cap is dropped
    /// with the rest of its batch, as PutMetricData would refuse it.
    pub fn flush(&self) -> Result<(), StoreError> {
        let taken: Vec<_> = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.drain().collect()
        };
        if taken.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(taken.len());
        let mut units = Vec::with_capacity(taken.len());
        for ((id, _), (point, unit)) in taken {
            rows.push((id, 60, point));
            units.push(unit);
        }
        self.store.add_custom(&rows, &units)
    }

    /// Datapoints dropped because the sink was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_796_396_400;

    fn line(extra: &str) -> String {
        format!(
            r#"{{"_aws": {{"Timestamp": {}, "CloudWatchMetrics": [{{"Namespace": "Shop", "Dimensions": [["Service"], ["Service", "Region"]], "Metrics": [{{"Name": "Latency", "Unit": "Milliseconds"}}, {{"Name": "Orders"}}]}}]}}, "Service": "cart", "Region": "north", "Latency": [12, 30], "Orders": 1{extra}}}"#,
            NOW * 1000 + 5_000
        )
    }

    #[test]
    fn a_directive_gives_one_series_per_dimension_set() {
        let points = extract(&line(""), NOW).unwrap();
        let seen: Vec<_> = points
            .iter()
            .map(|p| {
                (
                    p.id.metric.as_str(),
                    p.id.dims.as_str(),
                    p.values.clone(),
                    p.unit.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "Latency",
                    "Service=cart",
                    vec![12.0, 30.0],
                    Some("Milliseconds")
                ),
                (
                    "Latency",
                    "Region=north,Service=cart",
                    vec![12.0, 30.0],
                    Some("Milliseconds")
                ),
                ("Orders", "Service=cart", vec![1.0], None),
                ("Orders", "Region=north,Service=cart", vec![1.0], None),
            ]
        );
        assert!(points.iter().all(|p| p.minute == NOW - NOW.rem_euclid(60)));
    }

    #[test]
    fn lines_that_are_not_emf_give_nothing_and_bad_directives_say_why() {
        for plain in ["hello", "{\"a\": 1}", "[1]", "{\"_aws\" broken"] {
            assert_eq!(extract(plain, NOW), Ok(Vec::new()), "{plain}");
        }
        for (bad_line, said) in [
            (
                r#"{"_aws": {"CloudWatchMetrics": []}}"#.to_owned(),
                "Timestamp",
            ),
            (
                format!(
                    r#"{{"_aws": {{"Timestamp": {}, "CloudWatchMetrics": [{{"Namespace": "AWS/Lambda", "Metrics": []}}]}}}}"#,
                    NOW * 1000
                ),
                "platform",
            ),
            (
                format!(
                    r#"{{"_aws": {{"Timestamp": {}, "CloudWatchMetrics": [{{"Namespace": "N", "Dimensions": [["Missing"]], "Metrics": [{{"Name": "M"}}]}}]}}, "M": 1}}"#,
                    NOW * 1000
                ),
                "Missing",
            ),
            (
                format!(
                    r#"{{"_aws": {{"Timestamp": {}, "CloudWatchMetrics": [{{"Namespace": "N", "Metrics": [{{"Name": "M"}}]}}]}}, "M": "x"}}"#,
                    NOW * 1000
                ),
                "number",
            ),
            (
                format!(
                    r#"{{"_aws": {{"Timestamp": {}, "CloudWatchMetrics": []}}}}"#,
                    (NOW - 30 * 86_400) * 1000
                ),
                "two weeks",
            ),
        ] {
            let e = extract(&bad_line, NOW).unwrap_err();
            assert!(e.0.contains(said), "{bad_line}: {e}");
        }
    }

    #[test]
    fn the_sink_merges_a_minute_and_writes_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MetricStore::open(&dir.path().join("m.db")).unwrap());
        let sink = EmfSink::start(Arc::clone(&store));
        sink.ingest(&line(""), NOW).unwrap();
        sink.ingest(&line(""), NOW).unwrap();
        sink.ingest("not emf", NOW).unwrap();
        sink.flush().unwrap();
        let id = MetricId {
            namespace: "Shop".into(),
            metric: "Latency".into(),
            dims: "Service=cart".into(),
        };
        let points = store.query(&id, NOW - 600, NOW + 600, 60).unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(
            (points[0].count, points[0].sum, points[0].max),
            (4.0, 84.0, 30.0)
        );
        assert_eq!(
            store.custom_unit(&id).unwrap().as_deref(),
            Some("Milliseconds")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(text in "\\{\"_aws\".{0,200}") {
            let _ = extract(&text, NOW);
        }
    }
}
