//! Metric alarms, as CloudWatch defines them: a statistic of one metric over
//! `EvaluationPeriods` periods, each compared with a threshold; `DatapointsToAlarm` of them
//! breaching puts the alarm in `ALARM`, and `TreatMissingData` says what a period without
//! data counts as. Alarms and their history are kept in the metrics database; the
//! evaluation ([`evaluate`]) is a pure function of the alarm and the datapoints, run once a
//! minute by the server after the minute's datapoints are written.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::store::{sqlite, Datapoint, MetricId, MetricStore, StoreError};

/// The most alarms a server keeps.
pub const MAX_ALARMS: usize = 1_000;
/// History entries kept per alarm (the oldest go first).
const HISTORY_PER_ALARM: i64 = 100;

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    /// The metric is within the threshold.
    #[serde(rename = "OK")]
    Ok,
    /// The metric breached the threshold.
    #[serde(rename = "ALARM")]
    Alarm,
    /// Not enough data to tell.
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    /// CloudWatch's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    /// The state a name names.
    pub fn parse(s: &str) -> Option<AlarmState> {
        Some(match s {
            "OK" => AlarmState::Ok,
            "ALARM" => AlarmState::Alarm,
            "INSUFFICIENT_DATA" => AlarmState::InsufficientData,
            _ => return None,
        })
    }
}

/// How a value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `GreaterThanOrEqualToThreshold`.
    GreaterThanOrEqualToThreshold,
    /// `GreaterThanThreshold`.
    GreaterThanThreshold,
    /// `LessThanThreshold`.
    LessThanThreshold,
    /// `LessThanOrEqualToThreshold`.
    LessThanOrEqualToThreshold,
}

impl Comparison {
    /// The operator a name names.
    pub fn parse(s: &str) -> Option<Comparison> {
        Some(match s {
            "GreaterThanOrEqualToThreshold" => Comparison::GreaterThanOrEqualToThreshold,
            "GreaterThanThreshold" => Comparison::GreaterThanThreshold,
            "LessThanThreshold" => Comparison::LessThanThreshold,
            "LessThanOrEqualToThreshold" => Comparison::LessThanOrEqualToThreshold,
            _ => return None,
        })
    }

    /// CloudWatch's name of it.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Comparison::GreaterThanThreshold => "GreaterThanThreshold",
            Comparison::LessThanThreshold => "LessThanThreshold",
            Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }
}

/// What a period without data counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MissingData {
    /// `missing` (the default): the period is left out; with no data at all the alarm is
    /// `INSUFFICIENT_DATA`.
    Missing,
    /// `breaching`.
    Breaching,
    /// `notBreaching`.
    NotBreaching,
    /// `ignore`: the alarm keeps its state.
    Ignore,
}

impl MissingData {
    /// The treatment a name names.
    pub fn parse(s: &str) -> Option<MissingData> {
        Some(match s {
            "missing" => MissingData::Missing,
            "breaching" => MissingData::Breaching,
            "notBreaching" => MissingData::NotBreaching,
            "ignore" => MissingData::Ignore,
            _ => return None,
        })
    }

    /// CloudWatch's name of it.
    pub fn as_str(self) -> &'static str {
        match self {
            MissingData::Missing => "missing",
            MissingData::Breaching => "breaching",
            MissingData::NotBreaching => "notBreaching",
            MissingData::Ignore => "ignore",
        }
    }
}

/// One metric alarm's definition and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// Its name, unique per server.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// The metric.
    pub namespace: String,
    /// The metric's name.
    pub metric: String,
    /// Canonical dimensions text.
    pub dims: String,
    /// `SampleCount`, `Average`, `Sum`, `Minimum`, `Maximum` or a percentile `pNN`.
    pub statistic: String,
    /// Seconds per period (a multiple of 60).
    pub period: i64,
    /// Periods evaluated.
    pub evaluation_periods: u32,
    /// Breaching periods among them that make `ALARM`.
    pub datapoints_to_alarm: u32,
    /// The threshold.
    pub threshold: f64,
    /// The comparison.
    pub comparison: Comparison,
    /// What a period without data counts as.
    pub missing: MissingData,
    /// Whether the actions run.
    pub actions_enabled: bool,
    /// Actions on entering `ALARM`, `OK` and `INSUFFICIENT_DATA`.
    pub alarm_actions: Vec<String>,
    /// See `alarm_actions`.
    pub ok_actions: Vec<String>,
    /// See `alarm_actions`.
    pub insufficient_data_actions: Vec<String>,
    /// The state now.
    pub state: AlarmState,
    /// Why, in words.
    pub state_reason: String,
    /// When the state last changed, epoch ms.
    pub state_updated_ms: i64,
    /// When the definition last changed, epoch ms.
    pub updated_ms: i64,
    /// A metric-math alarm's queries (`Metrics`, as GetMetricData's `MetricDataQueries`,
    /// kept as JSON text); then the metric fields above are empty and the one query that
    /// returns data is what the alarm watches.
    #[serde(default)]
    pub metrics: Option<String>,
}

impl Alarm {
    /// The metric it watches.
    pub fn metric_id(&self) -> MetricId {
        MetricId {
            namespace: self.namespace.clone(),
            metric: self.metric.clone(),
            dims: self.dims.clone(),
        }
    }

    /// The actions of entering `state`.
    pub fn actions_for(&self, state: AlarmState) -> &[String] {
        match state {
            AlarmState::Alarm => &self.alarm_actions,
            AlarmState::Ok => &self.ok_actions,
            AlarmState::InsufficientData => &self.insufficient_data_actions,
        }
    }
}

/// The state `alarm` should be in given the datapoints of its metric, as of `now` (epoch
/// seconds): the last `evaluation_periods` whole periods before `now` are evaluated. The
/// reason says what was seen. `None`: keep the current state (`ignore` with no data).
pub fn evaluate(alarm: &Alarm, points: &[Datapoint], now: i64) -> Option<(AlarmState, String)> {
    evaluate_with(
        alarm,
        |start| {
            points
                .iter()
                .find(|p| p.ts == start)
                .and_then(|p| p.statistic(&alarm.statistic))
        },
        now,
    )
}

/// As [`evaluate`], with the value of the period starting at each timestamp given by
/// `value_at` (a metric-math alarm's series).
pub fn evaluate_with(
    alarm: &Alarm,
    value_at: impl Fn(i64) -> Option<f64>,
    now: i64,
) -> Option<(AlarmState, String)> {
    let period = alarm.period.max(60);
    let end = now - now.rem_euclid(period);
    let n = i64::from(alarm.evaluation_periods.max(1));
    let mut breaching = 0u32;
    let mut seen = 0u32;
    let mut values = Vec::new();
    for i in (0..n).rev() {
        let start = end - (i + 1) * period;
        let value = value_at(start);
        match value {
            Some(v) => {
                seen += 1;
                values.push(format!("{v}"));
                if alarm.comparison.breaches(v, alarm.threshold) {
                    breaching += 1;
                }
            }
            None => match alarm.missing {
                MissingData::Breaching => {
                    seen += 1;
                    breaching += 1;
                }
                MissingData::NotBreaching => seen += 1,
                MissingData::Missing | MissingData::Ignore => {}
            },
        }
    }
    let needed = alarm
        .datapoints_to_alarm
        .clamp(1, alarm.evaluation_periods.max(1));
    let shown = if values.is_empty() {
        "no datapoints".to_owned()
    } else {
        format!("[{}]", values.join(", "))
    };
    if breaching >= needed {
        return Some((
            AlarmState::Alarm,
            format!(
                "Threshold Crossed: {breaching} out of the last {n} datapoints {shown} breached the threshold ({})",
                alarm.threshold
            ),
        ));
    }
    if seen == 0 {
        return match alarm.missing {
            MissingData::Ignore => None,
            _ => Some((
                AlarmState::InsufficientData,
                format!("Insufficient Data: no datapoints in the last {n} periods of {period} s"),
            )),
        };
    }
    Some((
        AlarmState::Ok,
        format!(
            "Threshold Crossed: {breaching} out of the last {n} datapoints {shown} breached the threshold ({}), fewer than {needed}",
            alarm.threshold
        ),
    ))
}

/// One entry of an alarm's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryItem {
    /// The alarm.
    pub alarm: String,
    /// When, epoch ms.
    pub time_ms: i64,
    /// `StateUpdate`, `ConfigurationUpdate` or `Action`.
    pub kind: String,
    /// What happened, in words.
    pub summary: String,
}

impl MetricStore {
    /// Creates or replaces an alarm's record (definition and state, as given); at most
    /// [`MAX_ALARMS`].
    pub fn put_alarm(&self, alarm: &Alarm) -> Result<(), StoreError> {
        let json = serde_json::to_string(alarm).map_err(|e| StoreError::Encoding(e.to_string()))?;
        self.with_tx("putting an alarm", |tx| {
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM alarms WHERE name = ?1",
                    params![alarm.name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sqlite("putting an alarm"))?;
            if exists.is_none() {
                let count: i64 = tx
                    .query_row("SELECT COUNT(*) FROM alarms", [], |r| r.get(0))
                    .map_err(sqlite("putting an alarm"))?;
                if count as usize >= MAX_ALARMS {
                    return Err(StoreError::TooManyAlarms(alarm.name.clone()));
                }
            }
            tx.execute(
                "INSERT INTO alarms (name, document) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET document = excluded.document",
                params![alarm.name, json],
            )
            .map_err(sqlite("putting an alarm"))?;
            Ok(())
        })
    }

    /// Every alarm, by name.
    pub fn alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        self.with_tx("reading alarms", |tx| {
            let mut stmt = tx
                .prepare_cached("SELECT document FROM alarms ORDER BY name")
                .map_err(sqlite("reading alarms"))?;
            let docs = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sqlite("reading alarms"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sqlite("reading alarms"))?;
            Ok(docs
                .iter()
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect())
        })
    }

    /// Deletes alarms by name; returns how many existed.
    pub fn delete_alarms(&self, names: &[String]) -> Result<usize, StoreError> {
        self.with_tx("deleting alarms", |tx| {
            let mut n = 0;
            for name in names {
                n += tx
                    .execute("DELETE FROM alarms WHERE name = ?1", params![name])
                    .map_err(sqlite("deleting alarms"))?;
                tx.execute("DELETE FROM alarm_history WHERE alarm = ?1", params![name])
                    .map_err(sqlite("deleting alarms"))?;
            }
            Ok(n)
        })
    }

    /// Adds a history entry, keeping the newest [`HISTORY_PER_ALARM`] of the alarm.
    pub fn add_history(&self, item: &HistoryItem) -> Result<(), StoreError> {
        self.with_tx("recording alarm history", |tx| {
            tx.execute(
                "INSERT INTO alarm_history (alarm, time_ms, kind, summary) VALUES (?1, ?2, ?3, ?4)",
                params![item.alarm, item.time_ms, item.kind, item.summary],
            )
            .map_err(sqlite("recording alarm history"))?;
            tx.execute(
                "DELETE FROM alarm_history WHERE alarm = ?1 AND seq NOT IN \
                 (SELECT seq FROM alarm_history WHERE alarm = ?1 ORDER BY seq DESC LIMIT ?2)",
                params![item.alarm, HISTORY_PER_ALARM],
            )
            .map_err(sqlite("recording alarm history"))?;
            Ok(())
        })
    }

    /// History entries, newest first, of one alarm or all.
    pub fn history(&self, alarm: Option<&str>, max: usize) -> Result<Vec<HistoryItem>, StoreError> {
        self.with_tx("reading alarm history", |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT alarm, time_ms, kind, summary FROM alarm_history \
                     WHERE (?1 IS NULL OR alarm = ?1) ORDER BY seq DESC LIMIT ?2",
                )
                .map_err(sqlite("reading alarm history"))?;
            let rows = stmt
                .query_map(params![alarm, max as i64], |r| {
                    Ok(HistoryItem {
                        alarm: r.get(0)?,
                        time_ms: r.get(1)?,
                        kind: r.get(2)?,
                        summary: r.get(3)?,
                    })
                })
                .map_err(sqlite("reading alarm history"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sqlite("reading alarm history"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(comparison: Comparison, missing: MissingData, periods: u32, to_alarm: u32) -> Alarm {
        Alarm {
            name: "a".into(),
            description: None,
            namespace: "AWS/Lambda".into(),
            metric: "Errors".into(),
            dims: "FunctionName=f".into(),
            statistic: "Sum".into(),
            period: 60,
            evaluation_periods: periods,
            datapoints_to_alarm: to_alarm,
            threshold: 0.0,
            comparison,
            missing,
            actions_enabled: true,
            alarm_actions: Vec::new(),
            ok_actions: Vec::new(),
            insufficient_data_actions: Vec::new(),
            state: AlarmState::InsufficientData,
            state_reason: String::new(),
            state_updated_ms: 0,
            updated_ms: 0,
            metrics: None,
        }
    }

    #[test]
    fn a_math_alarm_is_judged_on_the_series_it_is_given() {
        let a = alarm(Comparison::GreaterThanThreshold, MissingData::Missing, 2, 2);
        let now = 600;
        let series: std::collections::BTreeMap<i64, f64> = [(480, 5.0), (540, 7.0)].into();
        let (state, reason) = evaluate_with(&a, |ts| series.get(&ts).copied(), now).unwrap();
        assert_eq!(state, AlarmState::Alarm, "{reason}");
        assert!(reason.contains("[5, 7]"), "{reason}");
        let (state, _) = evaluate_with(&a, |_| None, now).unwrap();
        assert_eq!(state, AlarmState::InsufficientData);
    }

    #[test]
    fn an_alarm_stored_before_metric_math_reads_back_without_it() {
        let mut stored = serde_json::to_value(alarm(
            Comparison::GreaterThanThreshold,
            MissingData::Missing,
            1,
            1,
        ))
        .unwrap();
        stored.as_object_mut().unwrap().remove("metrics");
        let read: Alarm = serde_json::from_value(stored).unwrap();
        assert_eq!(read.metrics, None);
    }

    fn sum(ts: i64, v: f64) -> Datapoint {
        Datapoint {
            ts,
            count: 1.0,
            sum: v,
            min: v,
            max: v,
            hist: None,
        }
    }

    #[test]
    fn the_last_whole_periods_decide_the_state() {
        let a = alarm(Comparison::GreaterThanThreshold, MissingData::Missing, 3, 2);
        // Now is 600 + 30: the periods evaluated start at 420, 480 and 540.
        let now = 630;
        let (state, _) = evaluate(&a, &[sum(480, 1.0), sum(540, 2.0)], now).expect("state");
        assert_eq!(state, AlarmState::Alarm);
        let (state, reason) = evaluate(&a, &[sum(480, 1.0), sum(540, 0.0)], now).expect("state");
        assert_eq!(state, AlarmState::Ok, "{reason}");
        // The minute in progress (600) does not count.
        let (state, _) = evaluate(&a, &[sum(600, 5.0), sum(540, 1.0)], now).expect("state");
        assert_eq!(state, AlarmState::Ok);
        let (state, _) = evaluate(&a, &[], now).expect("state");
        assert_eq!(state, AlarmState::InsufficientData);
    }

    #[test]
    fn missing_data_is_treated_as_configured() {
        let now = 630;
        let breaching = alarm(
            Comparison::GreaterThanThreshold,
            MissingData::Breaching,
            2,
            2,
        );
        assert_eq!(
            evaluate(&breaching, &[], now).map(|s| s.0),
            Some(AlarmState::Alarm)
        );
        let not = alarm(
            Comparison::GreaterThanThreshold,
            MissingData::NotBreaching,
            2,
            2,
        );
        assert_eq!(evaluate(&not, &[], now).map(|s| s.0), Some(AlarmState::Ok));
        let ignore = alarm(Comparison::GreaterThanThreshold, MissingData::Ignore, 2, 2);
        assert_eq!(evaluate(&ignore, &[], now), None);
        let low = alarm(
            Comparison::LessThanOrEqualToThreshold,
            MissingData::Missing,
            1,
            1,
        );
        assert_eq!(
            evaluate(&low, &[sum(540, 0.0)], now).map(|s| s.0),
            Some(AlarmState::Alarm)
        );
    }

    #[test]
    fn alarms_and_their_history_are_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let store = MetricStore::open(&dir.path().join("m.db")).expect("open");
        let mut a = alarm(Comparison::GreaterThanThreshold, MissingData::Missing, 1, 1);
        store.put_alarm(&a).expect("put");
        a.threshold = 5.0;
        store.put_alarm(&a).expect("replace");
        assert_eq!(store.alarms().expect("read"), vec![a.clone()]);
        for i in 0..(HISTORY_PER_ALARM + 5) {
            store
                .add_history(&HistoryItem {
                    alarm: "a".into(),
                    time_ms: i,
                    kind: "StateUpdate".into(),
                    summary: format!("{i}"),
                })
                .expect("history");
        }
        let h = store.history(Some("a"), 1000).expect("history");
        assert_eq!(h.len() as i64, HISTORY_PER_ALARM);
        assert_eq!(h[0].summary, format!("{}", HISTORY_PER_ALARM + 4));
        assert_eq!(
            store
                .delete_alarms(&["a".into(), "b".into()])
                .expect("delete"),
            1
        );
        assert!(store.alarms().expect("read").is_empty());
        assert!(store.history(None, 10).expect("history").is_empty());
    }
}
