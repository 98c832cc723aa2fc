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
pub(crate) const HISTORY_PER_ALARM: i64 = 100;

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
        if let Some(pool) = self.shared() {
            return crate::postgres::put_alarm(pool, alarm);
        }
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
        if let Some(pool) = self.shared() {
            return crate::postgres::alarms(pool);
        }
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

    /// Changes the stored alarm `name` with `change`, the record locked from the read to
    /// the write, so a change made meanwhile (a `PutMetricAlarm` through another node, on
    /// a shared store) is neither undone nor lost. `change` may run more than once (a
    /// transaction PostgreSQL aborts is retried). Returns the alarm as written, or `None`
    /// if there is none of that name.
    pub fn update_alarm(
        &self,
        name: &str,
        change: impl Fn(&mut Alarm) + Send + 'static,
    ) -> Result<Option<Alarm>, StoreError> {
        if let Some(pool) = self.shared() {
            return crate::postgres::update_alarm(pool, name.to_owned(), Box::new(change));
        }
        self.with_tx("updating an alarm", |tx| {
            let doc: Option<String> = tx
                .query_row(
                    "SELECT document FROM alarms WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sqlite("updating an alarm"))?;
            let Some(doc) = doc else {
                return Ok(None);
            };
            let mut alarm: Alarm =
                serde_json::from_str(&doc).map_err(|e| StoreError::Encoding(e.to_string()))?;
            change(&mut alarm);
            let json =
                serde_json::to_string(&alarm).map_err(|e| StoreError::Encoding(e.to_string()))?;
            tx.execute(
                "UPDATE alarms SET document = ?2 WHERE name = ?1",
                params![name, json],
            )
            .map_err(sqlite("updating an alarm"))?;
            Ok(Some(alarm))
        })
    }

    /// Whether this node evaluates the alarms of `minute` (epoch seconds of its start).
    /// A store of one node always does; on a shared store exactly one node a minute does,
    /// the first to ask.
    pub fn claim_evaluation(&self, minute: i64) -> Result<bool, StoreError> {
        match self.shared() {
            Some(pool) => crate::postgres::claim_evaluation(pool, minute),
            None => Ok(true),
        }
    }

    /// Deletes alarms by name; returns how many existed.
    pub fn delete_alarms(&self, names: &[String]) -> Result<usize, StoreError> {
        if let Some(pool) = self.shared() {
            return crate::postgres::delete_alarms(pool, names.to_vec());
        }
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
        if let Some(pool) = self.shared() {
            return crate::postgres::add_history(pool, vec![item.clone()]);
        }
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
        if let Some(pool) = self.shared() {
            return crate::postgres::history(pool, alarm.map(str::to_owned), max);
        }
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

    /// A store on a file of its own, or with a fresh shared database; and the database's
    /// address, to open more nodes on it.
    fn fresh(shared: bool) -> (tempfile::TempDir, MetricStore, Option<String>) {
        let dir = tempfile::tempdir().expect("dir");
        if !shared {
            let store = MetricStore::open(&dir.path().join("m.db")).expect("open");
            return (dir, store, None);
        }
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .expect("database");
        let store = node(&dir, "a", &url);
        (dir, store, Some(url))
    }

    /// Another node's store on the shared database at `url`.
    fn node(dir: &tempfile::TempDir, name: &str, url: &str) -> MetricStore {
        let pool = warden_postgres::Pool::open(
            url,
            &warden_postgres::Options::default(),
            &[crate::postgres::TRACK],
        )
        .expect("pool");
        MetricStore::open_with_shared(&dir.path().join(format!("{name}.db")), pool).expect("open")
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
        alarms_and_their_history_are_kept,
        an_update_changes_only_what_it_names_and_misses_an_absent_alarm,
    );

    fn an_update_changes_only_what_it_names_and_misses_an_absent_alarm(shared: bool) {
        let (_dir, store, _) = fresh(shared);
        let a = alarm(Comparison::GreaterThanThreshold, MissingData::Missing, 1, 1);
        store.put_alarm(&a).expect("put");
        // A definition put after the evaluation read the alarm...
        let mut redefined = a.clone();
        redefined.threshold = 42.0;
        store.put_alarm(&redefined).expect("put");
        // ...survives the evaluation's change of state.
        let written = store
            .update_alarm("a", |alarm| {
                alarm.state = AlarmState::Alarm;
                alarm.state_reason = "breached".into();
            })
            .expect("update")
            .expect("exists");
        assert_eq!(
            (written.threshold, written.state),
            (42.0, AlarmState::Alarm)
        );
        assert_eq!(store.alarms().expect("read"), vec![written]);
        assert_eq!(store.update_alarm("none", |_| {}).expect("update"), None);
    }

    fn alarms_and_their_history_are_kept(shared: bool) {
        let (_dir, store, _) = fresh(shared);
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

    #[test]
    fn nodes_share_alarms_and_one_node_a_minute_evaluates_them() {
        let (dir, a, url) = fresh(true);
        let url = url.expect("shared");
        let b = node(&dir, "b", &url);
        let c = node(&dir, "c", &url);
        let alarm = alarm(Comparison::GreaterThanThreshold, MissingData::Missing, 1, 1);
        a.put_alarm(&alarm).expect("put");
        b.add_history(&HistoryItem {
            alarm: "a".into(),
            time_ms: 1,
            kind: "StateUpdate".into(),
            summary: "through b".into(),
        })
        .expect("history");
        assert_eq!(c.alarms().expect("read"), vec![alarm]);
        assert_eq!(
            a.history(Some("a"), 10).expect("history")[0].summary,
            "through b"
        );

        // Three nodes ask for each of three minutes at once: each minute has one taker.
        for minute in [60, 120, 180] {
            let won: Vec<bool> = std::thread::scope(|scope| {
                let asks: Vec<_> = [&a, &b, &c]
                    .into_iter()
                    .map(|n| scope.spawn(move || n.claim_evaluation(minute).expect("claim")))
                    .collect();
                asks.into_iter().map(|h| h.join().expect("join")).collect()
            });
            assert_eq!(
                won.iter().filter(|w| **w).count(),
                1,
                "minute {minute}: {won:?}"
            );
        }
        // A minute already evaluated, or an earlier one, is nobody's.
        assert!(!a.claim_evaluation(180).expect("claim"));
        assert!(!b.claim_evaluation(120).expect("claim"));
    }

    #[test]
    fn the_alarm_bound_holds_for_the_cluster() {
        let (dir, a, url) = fresh(true);
        let b = node(&dir, "b", &url.expect("shared"));
        let template = alarm(Comparison::GreaterThanThreshold, MissingData::Missing, 1, 1);
        for i in 0..MAX_ALARMS - 1 {
            let mut one = template.clone();
            one.name = format!("alarm-{i:04}");
            if i % 2 == 0 { &a } else { &b }
                .put_alarm(&one)
                .expect("put");
        }
        // Two nodes race for the last place: one gets it, the other is refused.
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
            let puts: Vec<_> = [(&a, "last-a"), (&b, "last-b")]
                .into_iter()
                .map(|(n, name)| {
                    let mut one = template.clone();
                    one.name = name.into();
                    scope.spawn(move || n.put_alarm(&one))
                })
                .collect();
            puts.into_iter().map(|h| h.join().expect("join")).collect()
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(results
            .iter()
            .any(|r| matches!(r, Err(StoreError::TooManyAlarms(_)))));
        assert_eq!(a.alarms().expect("read").len(), MAX_ALARMS);
        // Replacing an existing alarm is no addition.
        b.put_alarm(&{
            let mut one = template.clone();
            one.name = "alarm-0000".into();
            one
        })
        .expect("replace");
    }

    #[test]
    fn alarms_kept_in_a_nodes_file_move_to_the_shared_store() {
        let (dir, shared, url) = fresh(true);
        let url = url.expect("shared");
        let mut taken = alarm(Comparison::GreaterThanThreshold, MissingData::Missing, 1, 1);
        taken.name = "taken".into();
        taken.threshold = 7.0;
        shared.put_alarm(&taken).expect("put");
        // A node of the previous release, its alarms in its file.
        let path = dir.path().join("old.db");
        {
            let old = MetricStore::open(&path).expect("open");
            let mine = alarm(Comparison::GreaterThanThreshold, MissingData::Missing, 1, 1);
            old.put_alarm(&mine).expect("put");
            let mut clash = mine.clone();
            clash.name = "taken".into();
            old.put_alarm(&clash).expect("put");
            for (name, summary) in [("a", "first"), ("a", "second"), ("taken", "lost")] {
                old.add_history(&HistoryItem {
                    alarm: name.into(),
                    time_ms: 1,
                    kind: "StateUpdate".into(),
                    summary: summary.into(),
                })
                .expect("history");
            }
        }
        let pool = warden_postgres::Pool::open(
            &url,
            &warden_postgres::Options::default(),
            &[crate::postgres::TRACK],
        )
        .expect("pool");
        let upgraded = MetricStore::open_with_shared(&path, pool).expect("open");
        let names: Vec<(String, f64)> = shared
            .alarms()
            .expect("read")
            .into_iter()
            .map(|a| (a.name, a.threshold))
            .collect();
        assert_eq!(names, vec![("a".into(), 0.0), ("taken".into(), 7.0)]);
        let summaries: Vec<String> = upgraded
            .history(None, 10)
            .expect("history")
            .into_iter()
            .map(|h| h.summary)
            .collect();
        assert_eq!(summaries, vec!["second", "first"]);
        // Moved, not copied: the file holds none, so a second start imports nothing.
        drop(upgraded);
        assert!(MetricStore::open(&path)
            .expect("open")
            .alarms()
            .expect("read")
            .is_empty());
    }
}
