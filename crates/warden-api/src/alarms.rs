//! CloudWatch's metric alarms: `PutMetricAlarm`, `DescribeAlarms`, `DeleteAlarms`,
//! `SetAlarmState`, `DescribeAlarmHistory`, `EnableAlarmActions` and `DisableAlarmActions`
//! (served by the CloudWatch door, authorized as `cloudwatch:<Operation>`), and their
//! evaluation once a minute ([`evaluate_all`], called by the server after the minute's
//! datapoints are written).
//!
//! An alarm's actions invoke Lambda functions of this account, asynchronously, with the
//! event CloudWatch sends them (`source: aws.cloudwatch`, `alarmData` with the state, the
//! previous state and the configuration), or publish CloudWatch's alarm notification to
//! SNS topics of this account (subject `ALARM: "name" in REGION`, the JSON message with
//! `NewStateValue`, `Trigger` and the rest). The invocation is queued, or the message
//! published (durable in SNS's outbox), before the state change is recorded as acted on,
//! so a notification is delivered at least once across a crash. In a cluster with a bus
//! the change goes to the bus's work queue instead ([`AlarmSink`]), before it is
//! recorded, and whichever node takes it runs the actions ([`act`]). Putting an alarm whose
//! actions invoke a function needs `lambda:InvokeFunction` on it, and one that publishes
//! to a topic `sns:Publish` on it (the door's targets).

use ciborium::Value as Cbor;
use http::StatusCode;
use warden_metrics::alarms::{Alarm, AlarmState, Comparison, HistoryItem, MissingData};
use warden_metrics::store::MetricStore;

use crate::cloudwatch::{
    check_stat, dimensions, get, invalid, list, map, missing, num, period, required_text, t, text,
};
use crate::{ApiError, ApiState};

/// Alarm names: 1-255 characters, as CloudWatch.
fn alarm_name(name: &str) -> Result<&str, ApiError> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(invalid("An alarm name is 1-255 characters."));
    }
    Ok(name)
}

fn store_error(e: warden_metrics::store::StoreError) -> ApiError {
    match e {
        warden_metrics::store::StoreError::TooManyAlarms(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "LimitExceededException",
            e.to_string(),
        ),
        other => ApiError::internal(other),
    }
}

fn now_ms() -> i64 {
    warden_types::now_millis()
}

fn texts(input: &Cbor, key: &str) -> Vec<String> {
    list(input, key)
        .iter()
        .filter_map(|v| match v {
            Cbor::Text(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// The synchronous operations (everything but `SetAlarmState`).
pub(crate) fn handle(
    store: &MetricStore,
    operation: &str,
    input: &Cbor,
    account: &str,
    region: &str,
) -> Result<Cbor, ApiError> {
    match operation {
        "PutMetricAlarm" => put_metric_alarm(store, input),
        "DescribeAlarms" => describe_alarms(store, input, account, region),
        "DeleteAlarms" => {
            let names = texts(input, "AlarmNames");
            if names.is_empty() || names.len() > 100 {
                return Err(invalid("AlarmNames holds 1-100 names."));
            }
            store.delete_alarms(&names).map_err(store_error)?;
            Ok(Cbor::Map(Vec::new()))
        }
        "DescribeAlarmHistory" => {
            let max = num(input, "MaxRecords").unwrap_or(100.0).clamp(1.0, 100.0) as usize;
            let items = store
                .history(text(input, "AlarmName"), max)
                .map_err(store_error)?;
            let items = items
                .iter()
                .map(|h| {
                    map(vec![
                        ("AlarmName", t(&h.alarm)),
                        ("AlarmType", t("MetricAlarm")),
                        ("Timestamp", timestamp_ms(h.time_ms)),
                        ("HistoryItemType", t(&h.kind)),
                        ("HistorySummary", t(&h.summary)),
                    ])
                })
                .collect();
            Ok(map(vec![("AlarmHistoryItems", Cbor::Array(items))]))
        }
        "EnableAlarmActions" | "DisableAlarmActions" => {
            let enable = operation == "EnableAlarmActions";
            let names = texts(input, "AlarmNames");
            for alarm in store.alarms().map_err(store_error)? {
                if names.contains(&alarm.name) && alarm.actions_enabled != enable {
                    store
                        .update_alarm(&alarm.name, move |a| a.actions_enabled = enable)
                        .map_err(store_error)?;
                }
            }
            Ok(Cbor::Map(Vec::new()))
        }
        _ => Err(ApiError::unknown_operation()),
    }
}

/// A metric-math alarm's queries, as the handlers read them.
trait MathQueries {
    fn math_queries(&self) -> Option<Cbor>;
}

impl MathQueries for Alarm {
    fn math_queries(&self) -> Option<Cbor> {
        let json: serde_json::Value = serde_json::from_str(self.metrics.as_deref()?).ok()?;
        Some(crate::cloudwatch::from_json(&json))
    }
}

fn timestamp_ms(ms: i64) -> Cbor {
    Cbor::Tag(1, Box::new(Cbor::Float(ms as f64 / 1000.0)))
}

/// Most queries one metric-math alarm holds, as CloudWatch.
const MAX_ALARM_QUERIES: usize = 10;

/// A metric-math alarm's `Metrics`, checked: no single-metric member beside them, at most
/// [`MAX_ALARM_QUERIES`] queries of which exactly one returns data, every expression valid
/// (the queries are run over an empty range). Returns them as JSON text, and the period:
/// the shortest of their metric queries'.
fn math_alarm(
    store: &MetricStore,
    input: &Cbor,
    metrics: &Cbor,
) -> Result<(String, i64), ApiError> {
    for single in [
        "Namespace",
        "MetricName",
        "Dimensions",
        "Statistic",
        "ExtendedStatistic",
        "Period",
    ] {
        if get(input, single).is_some() {
            return Err(invalid(format!(
                "`{single}` cannot be given with Metrics: a metric-math alarm names its metrics in Metrics"
            )));
        }
    }
    let Cbor::Array(queries) = metrics else {
        return Err(invalid("Metrics must be a list of queries."));
    };
    let queries = queries.clone();
    if queries.is_empty() || queries.len() > MAX_ALARM_QUERIES {
        return Err(invalid(format!(
            "Metrics holds 1 to {MAX_ALARM_QUERIES} queries."
        )));
    }
    let returned = queries
        .iter()
        .filter(|q| !matches!(get(q, "ReturnData"), Some(Cbor::Bool(false))))
        .count();
    if returned != 1 {
        return Err(invalid(
            "Exactly one query in Metrics must return data (the others set ReturnData false).",
        ));
    }
    let now = warden_metrics::aggregate::now_s();
    crate::cloudwatch::run_metric_queries(store, &queries, now, now)?;
    let period = queries
        .iter()
        .filter_map(|q| get(q, "MetricStat"))
        .filter_map(|m| num(m, "Period"))
        .map(|p| p as i64)
        .min()
        .ok_or_else(|| invalid("Metrics needs at least one metric query (MetricStat)."))?;
    let json = crate::cloudwatch::to_json(&Cbor::Array(queries)).to_string();
    Ok((json, period))
}

fn put_metric_alarm(store: &MetricStore, input: &Cbor) -> Result<Cbor, ApiError> {
    let name = alarm_name(required_text(input, "AlarmName")?)?.to_owned();
    let math = match get(input, "Metrics") {
        Some(metrics) => Some(math_alarm(store, input, metrics)?),
        None => None,
    };
    let statistic =
        match (
            &math,
            text(input, "Statistic"),
            text(input, "ExtendedStatistic"),
        ) {
            (Some(_), _, _) => String::new(),
            (None, Some(s), None) => s.to_owned(),
            (None, None, Some(s)) if s.starts_with('p') => s.to_owned(),
            _ => return Err(invalid(
                "Exactly one of Statistic and ExtendedStatistic (a percentile pNN) is required.",
            )),
        };
    if math.is_none() {
        check_stat(&statistic)?;
    }
    let evaluation_periods =
        num(input, "EvaluationPeriods").ok_or_else(|| missing("EvaluationPeriods"))?;
    if !(1.0..=1440.0).contains(&evaluation_periods) || evaluation_periods.fract() != 0.0 {
        return Err(invalid(
            "EvaluationPeriods is a whole number from 1 to 1440.",
        ));
    }
    let evaluation_periods = evaluation_periods as u32;
    let datapoints_to_alarm = match num(input, "DatapointsToAlarm") {
        None => evaluation_periods,
        Some(d) if d >= 1.0 && d <= f64::from(evaluation_periods) && d.fract() == 0.0 => d as u32,
        Some(_) => {
            return Err(invalid(
                "DatapointsToAlarm is a whole number from 1 to EvaluationPeriods.",
            ))
        }
    };
    let period = match &math {
        Some((_, period)) => *period,
        None => period(num(input, "Period"))?,
    };
    let threshold = num(input, "Threshold").ok_or_else(|| missing("Threshold"))?;
    if !threshold.is_finite() {
        return Err(invalid("Threshold must be a finite number."));
    }
    let comparison = Comparison::parse(required_text(input, "ComparisonOperator")?).ok_or_else(|| {
        invalid("ComparisonOperator is GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold or LessThanOrEqualToThreshold (anomaly detection is not supported).")
    })?;
    let missing_data = match text(input, "TreatMissingData") {
        None => MissingData::Missing,
        Some(m) => MissingData::parse(m).ok_or_else(|| {
            invalid("TreatMissingData is breaching, notBreaching, ignore or missing.")
        })?,
    };
    let actions = |key: &str| -> Result<Vec<String>, ApiError> {
        let all = texts(input, key);
        if all.len() > 5 {
            return Err(invalid(format!("{key} holds at most 5 actions.")));
        }
        Ok(all)
    };
    let now = now_ms();
    let previous = store
        .alarms()
        .map_err(store_error)?
        .into_iter()
        .find(|a| a.name == name);
    let alarm = Alarm {
        name,
        description: text(input, "AlarmDescription").map(str::to_owned),
        namespace: match &math {
            Some(_) => String::new(),
            None => required_text(input, "Namespace")?.to_owned(),
        },
        metric: match &math {
            Some(_) => String::new(),
            None => required_text(input, "MetricName")?.to_owned(),
        },
        dims: match &math {
            Some(_) => String::new(),
            None => dimensions(input)?,
        },
        statistic,
        period,
        evaluation_periods,
        datapoints_to_alarm,
        threshold,
        comparison,
        missing: missing_data,
        actions_enabled: !matches!(get(input, "ActionsEnabled"), Some(Cbor::Bool(false))),
        alarm_actions: actions("AlarmActions")?,
        ok_actions: actions("OKActions")?,
        insufficient_data_actions: actions("InsufficientDataActions")?,
        // A new alarm starts without data; a changed one keeps its state, as CloudWatch.
        state: previous
            .as_ref()
            .map_or(AlarmState::InsufficientData, |p| p.state),
        state_reason: previous.as_ref().map_or_else(
            || "Unchecked: Initial alarm creation".to_owned(),
            |p| p.state_reason.clone(),
        ),
        state_updated_ms: previous.as_ref().map_or(now, |p| p.state_updated_ms),
        updated_ms: now,
        metrics: math.map(|(json, _)| json),
    };
    store.put_alarm(&alarm).map_err(store_error)?;
    store
        .add_history(&HistoryItem {
            alarm: alarm.name.clone(),
            time_ms: now,
            kind: "ConfigurationUpdate".into(),
            summary: format!(
                "Alarm \"{}\" {}",
                alarm.name,
                if previous.is_some() {
                    "updated"
                } else {
                    "created"
                }
            ),
        })
        .map_err(store_error)?;
    Ok(Cbor::Map(Vec::new()))
}

fn alarm_arn(account: &str, region: &str, name: &str) -> String {
    format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}")
}

fn describe_alarms(
    store: &MetricStore,
    input: &Cbor,
    account: &str,
    region: &str,
) -> Result<Cbor, ApiError> {
    let names = texts(input, "AlarmNames");
    let prefix = text(input, "AlarmNamePrefix");
    let state = match text(input, "StateValue") {
        None => None,
        Some(s) => Some(
            AlarmState::parse(s)
                .ok_or_else(|| invalid("StateValue is OK, ALARM or INSUFFICIENT_DATA."))?,
        ),
    };
    let alarms: Vec<Cbor> = store
        .alarms()
        .map_err(store_error)?
        .iter()
        .filter(|a| names.is_empty() || names.contains(&a.name))
        .filter(|a| prefix.is_none_or(|p| a.name.starts_with(p)))
        .filter(|a| state.is_none_or(|s| a.state == s))
        .map(|a| describe(a, account, region))
        .collect();
    Ok(map(vec![
        ("MetricAlarms", Cbor::Array(alarms)),
        ("CompositeAlarms", Cbor::Array(Vec::new())),
    ]))
}

fn describe(a: &Alarm, account: &str, region: &str) -> Cbor {
    let strings = |v: &[String]| Cbor::Array(v.iter().map(|s| t(s)).collect());
    let comparison = a.comparison.as_str();
    let mut entries = vec![
        ("AlarmName", t(&a.name)),
        ("AlarmArn", t(&alarm_arn(account, region, &a.name))),
        (
            "AlarmConfigurationUpdatedTimestamp",
            timestamp_ms(a.updated_ms),
        ),
        ("ActionsEnabled", Cbor::Bool(a.actions_enabled)),
        ("OKActions", strings(&a.ok_actions)),
        ("AlarmActions", strings(&a.alarm_actions)),
        (
            "InsufficientDataActions",
            strings(&a.insufficient_data_actions),
        ),
        ("StateValue", t(a.state.as_str())),
        ("StateReason", t(&a.state_reason)),
        ("StateUpdatedTimestamp", timestamp_ms(a.state_updated_ms)),
        (
            "EvaluationPeriods",
            Cbor::Integer(a.evaluation_periods.into()),
        ),
        (
            "DatapointsToAlarm",
            Cbor::Integer(a.datapoints_to_alarm.into()),
        ),
        ("Threshold", Cbor::Float(a.threshold)),
        ("ComparisonOperator", t(comparison)),
        ("TreatMissingData", t(a.missing.as_str())),
    ];
    match a.math_queries() {
        Some(queries) => entries.push(("Metrics", queries)),
        None => {
            entries.push(("MetricName", t(&a.metric)));
            entries.push(("Namespace", t(&a.namespace)));
            entries.push(("Dimensions", crate::cloudwatch::dims_out(&a.dims)));
            entries.push(("Period", Cbor::Integer(a.period.into())));
            if a.statistic.starts_with('p') {
                entries.push(("ExtendedStatistic", t(&a.statistic)));
            } else {
                entries.push(("Statistic", t(&a.statistic)));
            }
        }
    }
    if let Some(d) = &a.description {
        entries.push(("AlarmDescription", t(d)));
    }
    map(entries)
}

/// `SetAlarmState`: the state until the next evaluation, with its actions.
pub(crate) async fn set_alarm_state(state: &ApiState, input: &Cbor) -> Result<Cbor, ApiError> {
    let name = required_text(input, "AlarmName")?.to_owned();
    let value = AlarmState::parse(required_text(input, "StateValue")?)
        .ok_or_else(|| invalid("StateValue is OK, ALARM or INSUFFICIENT_DATA."))?;
    let reason = required_text(input, "StateReason")?
        .chars()
        .take(1023)
        .collect::<String>();
    let store = std::sync::Arc::clone(&state.metric_store);
    let alarm = tokio::task::spawn_blocking(move || store.alarms())
        .await
        .map_err(ApiError::internal)?
        .map_err(store_error)?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Alarm {name} not found"),
            )
        })?;
    transition(state, alarm, value, reason).await?;
    Ok(Cbor::Map(Vec::new()))
}

/// Evaluates every alarm as of `now` (epoch seconds) and acts on each change of state.
/// Nodes sharing a store take turns: only the node that claims the minute evaluates it
/// ([`MetricStore::claim_evaluation`]), so a change is acted on once in the cluster.
pub async fn evaluate_all(state: &ApiState, now: i64) -> Result<(), ApiError> {
    let store = std::sync::Arc::clone(&state.metric_store);
    let changes = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let mut changes = Vec::new();
        if !store
            .claim_evaluation(now - now.rem_euclid(60))
            .map_err(store_error)?
        {
            return Ok(changes);
        }
        for alarm in store.alarms().map_err(store_error)? {
            let span = alarm.period * i64::from(alarm.evaluation_periods);
            let end = now - now.rem_euclid(alarm.period);
            let verdict = match alarm.math_queries() {
                Some(Cbor::Array(queries)) => {
                    // One alarm whose queries cannot run does not hold the others back.
                    let results = match crate::cloudwatch::run_metric_queries(
                        &store,
                        &queries,
                        end - span,
                        end,
                    ) {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(alarm = %alarm.name, error = %e.message, "a metric-math alarm could not be evaluated");
                            continue;
                        }
                    };
                    let series = results
                        .into_iter()
                        .find(|q| q.returned)
                        .map(|q| q.series)
                        .unwrap_or_default();
                    warden_metrics::alarms::evaluate_with(&alarm, |ts| series.get(&ts).copied(), now)
                }
                _ => {
                    let points = store
                        .query(&alarm.metric_id(), end - span, end, alarm.period)
                        .map_err(store_error)?;
                    warden_metrics::alarms::evaluate(&alarm, &points, now)
                }
            };
            if let Some((next, reason)) = verdict {
                if next != alarm.state {
                    changes.push((alarm, next, reason));
                }
            }
        }
        Ok(changes)
    })
    .await
    .map_err(ApiError::internal)??;
    // One alarm whose change could not be acted on does not hold back the others; it is
    // found again at the next evaluation.
    let mut first_error = None;
    for (alarm, next, reason) in changes {
        let name = alarm.name.clone();
        if let Err(e) = transition(state, alarm, next, reason).await {
            tracing::warn!(alarm = %name, error = %e.message, "an alarm's change of state could not be acted on");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The format of a [`Notification`] this build writes and reads.
pub const NOTIFICATION_FORMAT: u32 = 1;

/// A change of an alarm's state whose actions are to run, as the node that noticed it
/// hands it to the node that runs them through an [`AlarmSink`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Notification {
    /// [`NOTIFICATION_FORMAT`] when written.
    pub format: u32,
    /// Names this change of state (a UUID).
    pub id: String,
    /// The account whose alarm it is.
    pub account: String,
    /// The region it is in.
    pub region: String,
    /// The alarm as it was when it changed, with its new state, reason and time.
    pub alarm: Alarm,
    /// The state it left.
    pub previous: AlarmState,
    /// Why it was in that state.
    pub previous_reason: String,
    /// When it entered that state, epoch ms.
    pub previous_ms: i64,
}

/// Where changes of state go to have their actions run on some node of a cluster (the
/// bus's work queue, which the server sets); [`act`] runs them where they arrive.
pub trait AlarmSink: Send + Sync {
    /// Queues `notification` durably; returns once it is, or why it could not be.
    fn send(
        &self,
        notification: Notification,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;
}

/// Records a change of state and has its actions run: at once, here, or on a cluster
/// through the [`AlarmSink`] before the change is recorded (so a change whose
/// notification could not be queued is found again by the next evaluation).
async fn transition(
    state: &ApiState,
    mut alarm: Alarm,
    next: AlarmState,
    reason: String,
) -> Result<(), ApiError> {
    let previous = alarm.state;
    let previous_reason = std::mem::replace(&mut alarm.state_reason, reason);
    let previous_ms = alarm.state_updated_ms;
    let now = now_ms();
    alarm.state = next;
    alarm.state_updated_ms = now;
    let notification = Notification {
        format: NOTIFICATION_FORMAT,
        id: uuid::Uuid::new_v4().to_string(),
        account: state.account.to_string(),
        region: state.region.to_string(),
        alarm,
        previous,
        previous_reason,
        previous_ms,
    };
    let alarm = &notification.alarm;
    let mut history = vec![HistoryItem {
        alarm: alarm.name.clone(),
        time_ms: now,
        kind: "StateUpdate".into(),
        summary: format!(
            "Alarm updated from {} to {}",
            previous.as_str(),
            next.as_str()
        ),
    }];
    if alarm.actions_enabled && !alarm.actions_for(next).is_empty() {
        match state.alarm_sink.get() {
            Some(sink) => sink.send(notification.clone()).await.map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServiceFault",
                    format!("the alarm's change of state could not be queued for its actions: {e}"),
                )
            })?,
            None => history.extend(run_actions(state, &notification).await),
        }
    }
    tracing::info!(alarm = %alarm.name, from = previous.as_str(), to = next.as_str(), "alarm state changed");
    let store = std::sync::Arc::clone(&state.metric_store);
    let (name, state_reason) = (alarm.name.clone(), alarm.state_reason.clone());
    tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        // Only the state is written back: a definition put meanwhile (through another
        // node, or while the actions ran) stays as it was put.
        let written = store
            .update_alarm(&name, move |a| {
                a.state = next;
                a.state_reason = state_reason.clone();
                a.state_updated_ms = now;
            })
            .map_err(store_error)?;
        if written.is_some() {
            for item in &history {
                store.add_history(item).map_err(store_error)?;
            }
        }
        Ok(())
    })
    .await
    .map_err(ApiError::internal)?
}

/// Runs the actions of a change of state another node queued, and records what they did
/// in the alarm's history. The caller checked that the notification is this cluster's
/// (it opened under the master key and names this account and region).
pub async fn act(state: &ApiState, notification: &Notification) {
    let history = run_actions(state, notification).await;
    let store = std::sync::Arc::clone(&state.metric_store);
    let name = notification.alarm.name.clone();
    let written = tokio::task::spawn_blocking(move || {
        // An alarm deleted meanwhile keeps no history, as its deletion removed the rest.
        if !store.alarms()?.iter().any(|a| a.name == name) {
            return Ok(());
        }
        history.iter().try_for_each(|item| store.add_history(item))
    })
    .await;
    // The actions ran: running them again for want of their history would notify twice.
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(alarm = %notification.alarm.name, error = %e, "an alarm's actions ran but their history could not be recorded")
        }
        Err(e) => {
            tracing::warn!(alarm = %notification.alarm.name, error = %e, "an alarm's actions ran but their history could not be recorded")
        }
    }
}

/// Runs the actions of a change of state: each function is queued for an asynchronous
/// invocation with CloudWatch's alarm event, each topic gets CloudWatch's notification.
/// Returns the history item of each action.
async fn run_actions(state: &ApiState, notification: &Notification) -> Vec<HistoryItem> {
    let Notification {
        alarm,
        previous,
        previous_reason,
        previous_ms,
        ..
    } = notification;
    let (next, reason, now) = (alarm.state, &alarm.state_reason, alarm.state_updated_ms);
    let time = warden_types::iso_timestamp(now);
    let event = serde_json::json!({
        "source": "aws.cloudwatch",
        "alarmArn": alarm_arn(state.account.as_str(), state.region.as_str(), &alarm.name),
        "accountId": state.account.to_string(),
        "time": time,
        "region": state.region.to_string(),
        "alarmData": {
            "alarmName": alarm.name,
            "state": {"value": next.as_str(), "reason": reason, "timestamp": time},
            "previousState": {
                "value": previous.as_str(),
                "reason": previous_reason,
                "timestamp": warden_types::iso_timestamp(*previous_ms),
            },
            "configuration": {
                "description": alarm.description,
                "metrics": [{
                    "id": "m1",
                    "metricStat": {
                        "metric": {"namespace": alarm.namespace, "name": alarm.metric, "dimensions": alarm.dims},
                        "period": alarm.period,
                        "stat": alarm.statistic,
                    },
                    "returnData": true,
                }],
            },
        },
    });
    let payload = bytes::Bytes::from(event.to_string());
    let mut history = Vec::new();
    for arn in alarm.actions_for(next) {
        let summary = match crate::cloudwatch::alarm_action(state, arn) {
            Ok(crate::cloudwatch::AlarmAction::Function(function)) => {
                match state.engine.enqueue(&function, payload.clone()).await {
                    Ok(_) => format!("Successfully executed action {arn}"),
                    Err(e) => format!("Failed to execute action {arn}: {e}"),
                }
            }
            Ok(crate::cloudwatch::AlarmAction::Topic(topic)) => {
                match publish(state, &topic, alarm, *previous, reason, now).await {
                    Ok(()) => format!("Successfully executed action {arn}"),
                    Err(e) => format!("Failed to execute action {arn}: {}", e.message),
                }
            }
            Err(e) => format!("Failed to execute action {arn}: {}", e.message),
        };
        history.push(HistoryItem {
            alarm: alarm.name.clone(),
            time_ms: now,
            kind: "Action".into(),
            summary,
        });
    }
    history
}

/// Publishes CloudWatch's alarm notification for `alarm`'s new state to `topic`.
async fn publish(
    state: &ApiState,
    topic: &str,
    alarm: &Alarm,
    previous: AlarmState,
    reason: &str,
    now: i64,
) -> Result<(), ApiError> {
    let region = state.region.to_string();
    let time = warden_types::iso_timestamp(now).replace('Z', "+0000");
    let dimensions: Vec<serde_json::Value> = alarm
        .dims
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    let (statistic_type, statistic) = if alarm.statistic.starts_with('p') {
        ("ExtendedStatistic", alarm.statistic.clone())
    } else {
        ("Statistic", alarm.statistic.to_uppercase())
    };
    let message = serde_json::json!({
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": state.account.to_string(),
        "NewStateValue": alarm.state.as_str(),
        "NewStateReason": reason,
        "StateChangeTime": time,
        "Region": region,
        "AlarmArn": alarm_arn(state.account.as_str(), &region, &alarm.name),
        "OldStateValue": previous.as_str(),
        "OKActions": alarm.ok_actions,
        "AlarmActions": alarm.alarm_actions,
        "InsufficientDataActions": alarm.insufficient_data_actions,
        "Trigger": {
            "MetricName": alarm.metric,
            "Namespace": alarm.namespace,
            "StatisticType": statistic_type,
            "Statistic": statistic,
            "Unit": null,
            "Dimensions": dimensions,
            "Period": alarm.period,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "ComparisonOperator": alarm.comparison.as_str(),
            "Threshold": alarm.threshold,
            "TreatMissingData": alarm.missing.as_str(),
            "EvaluateLowSampleCountPercentile": "",
        },
    });
    let mut message = message;
    if let Some(queries) = alarm
        .metrics
        .as_deref()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
    {
        message["Trigger"]["Metrics"] = queries;
    }
    // SNS subjects are at most 100 printable ASCII characters.
    let shown: String = alarm
        .name
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(60)
        .collect();
    let subject: String = format!("{}: \"{shown}\" in {region}", alarm.state.as_str())
        .chars()
        .take(100)
        .collect();
    let params = vec![
        ("Action".to_owned(), "Publish".to_owned()),
        ("TopicArn".to_owned(), topic.to_owned()),
        ("Subject".to_owned(), subject),
        ("Message".to_owned(), message.to_string()),
    ];
    let ctx = warden_sns::query::CallContext {
        account: state.account.to_string(),
        region,
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let sns = state.sns.clone();
    tokio::task::spawn_blocking(move || sns.handle(&ctx, "Publish", &params))
        .await
        .map_err(ApiError::internal)?
        .map(|_| ())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_metric_alarm_checks_what_cloudwatch_checks() {
        let dir = tempfile::tempdir().expect("dir");
        let store = MetricStore::open(&dir.path().join("m.db")).expect("open");
        let base = |extra: Vec<(&str, Cbor)>| {
            let mut entries = vec![
                ("AlarmName", t("errors")),
                ("Namespace", t("AWS/Lambda")),
                ("MetricName", t("Errors")),
                ("Statistic", t("Sum")),
                ("Period", Cbor::Integer(60.into())),
                ("EvaluationPeriods", Cbor::Integer(1.into())),
                ("Threshold", Cbor::Float(0.0)),
                ("ComparisonOperator", t("GreaterThanThreshold")),
            ];
            // A later entry of the same name replaces the base's.
            entries.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            entries.extend(extra);
            map(entries)
        };
        put_metric_alarm(&store, &base(vec![])).expect("valid");
        let alarms = store.alarms().expect("alarms");
        assert_eq!(alarms.len(), 1);
        assert_eq!(alarms[0].state, AlarmState::InsufficientData);
        for (extra, why) in [
            (vec![("Period", Cbor::Integer(30.into()))], "period"),
            (
                vec![("EvaluationPeriods", Cbor::Integer(0.into()))],
                "periods",
            ),
            (
                vec![("DatapointsToAlarm", Cbor::Integer(2.into()))],
                "datapoints",
            ),
            (
                vec![("ComparisonOperator", t("GreaterThanUpperThreshold"))],
                "anomaly",
            ),
            (vec![("TreatMissingData", t("sometimes"))], "missing"),
            (vec![("ExtendedStatistic", t("p99"))], "both statistics"),
            (vec![("Metrics", Cbor::Array(vec![]))], "metric math"),
        ] {
            assert!(put_metric_alarm(&store, &base(extra)).is_err(), "{why}");
        }
    }
}
