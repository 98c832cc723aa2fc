//! CloudWatch's metric operations in the two protocols current clients speak to it, signed
//! for `monitoring`: JSON 1.0 (`POST /` with `X-Amz-Target:
//! GraniteServiceVersion20100801.<Operation>`, which botocore prefers) and Smithy RPC v2
//! CBOR (`POST /service/GraniteServiceVersion20100801/operation/<Operation>` with
//! `smithy-protocol: rpc-v2-cbor`, which other SDKs use). Both are read into one CBOR value
//! and answered from one; JSON carries timestamps as epoch seconds, CBOR as tag 1. Errors
//! carry the query protocol's code in `x-amzn-query-error`, as clients of a
//! query-compatible service expect.
//!
//! Served: `PutMetricData` (custom namespaces only: `AWS/` is the platform's),
//! `GetMetricStatistics`, `GetMetricData` (metric queries; metric-math expressions are
//! refused by name) and `ListMetrics`, over the datapoints `warden_metrics` keeps. Each is
//! authorized as `cloudwatch:<Operation>` on `*`, as in AWS. Reads change nothing;
//! `PutMetricData` adds datapoints to a custom namespace and nothing else.
//!
//! CloudWatch's older query protocol (a form at `/`, answered in XML) is served too, by
//! [`crate::cloudwatch_query`], which reads the form into the same CBOR value.

use ciborium::Value as Cbor;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use warden_metrics::store::{percentile_of, Datapoint, MetricId};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{BoxFuture, Head, ServiceDoor};
use crate::pipeline::Validated;
use crate::routes::{Operation, Service};
use crate::{ApiError, ApiRequest, ApiState, Reply, ReplyBody};

/// The path prefix of every operation in RPC v2 CBOR.
const PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";
/// The `X-Amz-Target` prefix of JSON 1.0.
const TARGET: &str = "GraniteServiceVersion20100801";
/// The CBOR content type.
pub const CBOR: &str = "application/cbor";
/// The operations served.
const OPERATIONS: [&str; 11] = [
    "PutMetricData",
    "GetMetricStatistics",
    "GetMetricData",
    "ListMetrics",
    "PutMetricAlarm",
    "DescribeAlarms",
    "DeleteAlarms",
    "SetAlarmState",
    "DescribeAlarmHistory",
    "EnableAlarmActions",
    "DisableAlarmActions",
];
/// Most datapoints one `GetMetricStatistics` or one query of `GetMetricData` returns, as
/// CloudWatch caps them.
const MAX_DATAPOINTS: usize = 1_440;
/// Most metrics one `PutMetricData` carries.
const MAX_PUT_METRICS: usize = 1_000;
/// Most queries one `GetMetricData` carries.
const MAX_QUERIES: usize = 500;
/// Most metrics `ListMetrics` returns.
const MAX_LISTED: usize = 500;
/// How far back `ListMetrics` looks: two weeks, as CloudWatch does.
const LIST_WINDOW_S: i64 = 14 * 86_400;

/// CloudWatch's door.
pub struct CloudWatchDoor;

/// The protocol a CloudWatch request came in, and its answer goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Smithy RPC v2 CBOR.
    Cbor,
    /// JSON 1.0 (`X-Amz-Target`).
    Json,
    /// The query protocol (a form; XML answers).
    Query,
}

fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
        || (parts.method == http::Method::GET && parts.uri.query().is_some())
}

fn wire_of(parts: &Parts) -> Wire {
    if parts.uri.path().starts_with(PREFIX) {
        Wire::Cbor
    } else if parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(TARGET))
    {
        Wire::Json
    } else {
        Wire::Query
    }
}

/// The operation a request names and its input, whatever its protocol.
fn operation_and_input(request: &ApiRequest) -> Result<(String, Cbor), ApiError> {
    match &request.operation {
        Operation::CloudWatch(name) => Ok((name.clone(), input_of(request)?)),
        _ => crate::cloudwatch_query::read(&crate::access::query_params(request)),
    }
}

impl ServiceDoor for CloudWatchDoor {
    fn signing_names(&self) -> &'static [&'static str] {
        &["monitoring"]
    }

    /// The RPC v2 paths; `/` with CloudWatch's `X-Amz-Target` (JSON 1.0); and `/` signed
    /// for `monitoring` without it (the query protocol).
    fn claims(&self, head: Head<'_>) -> bool {
        let path = head.parts.uri.path();
        let json = head
            .header("x-amz-target")
            .and_then(crate::doors::parse_target)
            .is_some_and(|(prefix, _)| prefix == TARGET);
        path.starts_with(PREFIX) || (path == "/" && (json || head.claimed == Some("monitoring")))
    }

    fn route(&self, parts: &Parts) -> Result<Operation, ApiError> {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::doors::parse_target)
            .filter(|(prefix, _)| *prefix == TARGET);
        let cbor = parts.uri.path().strip_prefix(PREFIX);
        let Some(name) = cbor.or(target.map(|(_, op)| op)) else {
            // The query protocol names its action in the form, read after authentication.
            if parts.uri.path() == "/" && is_form(parts) {
                return Ok(Operation::Query);
            }
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                "A CloudWatch request is a form (the query protocol), JSON 1.0 with X-Amz-Target, or Smithy RPC v2 CBOR",
            ));
        };
        if parts.method != http::Method::POST {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "UnknownOperationException",
                "CloudWatch operations are POST requests",
            ));
        }
        Ok(Operation::CloudWatch(name.chars().take(64).collect()))
    }

    fn service(&self, head: Head<'_>) -> Service {
        Service::CloudWatch(wire_of(head.parts))
    }

    fn service_of(&self, request: &ApiRequest) -> Service {
        Service::CloudWatch(wire_of(&request.parts))
    }

    fn body_limit(&self, _operation: &Operation) -> usize {
        // PutMetricData's own limit.
        1024 * 1024
    }

    /// `cloudwatch:<Operation>` on `*`; an alarm whose actions invoke functions also needs
    /// `lambda:InvokeFunction` on each of them, so that putting an alarm never runs a
    /// function its author could not run.
    fn targets(
        &self,
        state: &ApiState,
        request: &ApiRequest,
        _principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        let (name, input) = operation_and_input(request)?;
        if !OPERATIONS.contains(&name.as_str()) {
            return Ok(Vec::new());
        }
        let mut targets = vec![Target {
            action: format!("cloudwatch:{name}"),
            resource: "*".into(),
            ..Target::default()
        }];
        if name == "PutMetricAlarm" {
            for key in ["AlarmActions", "OKActions", "InsufficientDataActions"] {
                for action in list(&input, key) {
                    let Cbor::Text(arn) = action else { continue };
                    targets.push(match alarm_action(state, arn)? {
                        AlarmAction::Function(function) => Target {
                            action: "lambda:InvokeFunction".into(),
                            resource: arn.clone(),
                            function: Some(function.name),
                            ..Target::default()
                        },
                        AlarmAction::Topic(topic) => Target {
                            action: "sns:Publish".into(),
                            policy: state
                                .sns
                                .topic_policy(&topic)
                                .ok()
                                .flatten()
                                .and_then(|text| {
                                    warden_iam::Policy::parse_as(
                                        &text,
                                        warden_iam::PolicyKind::Resource,
                                    )
                                    .ok()
                                })
                                .map(std::sync::Arc::new),
                            resource: topic,
                            ..Target::default()
                        },
                    });
                }
            }
        }
        Ok(targets)
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(dispatch(state, request.into_request()))
    }
}

async fn dispatch(state: &ApiState, request: ApiRequest) -> Result<Reply, ApiError> {
    let (name, input) = operation_and_input(&request)?;
    let name = &name;
    if !OPERATIONS.contains(&name.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!(
                "CloudWatch operation `{name}` is not served; Warden serves {}",
                OPERATIONS.join(", ")
            ),
        ));
    }
    let wire = wire_of(&request.parts);
    if name == "SetAlarmState" {
        members(&input, honoured(name), name)?;
        let output = crate::alarms::set_alarm_state(state, &input).await?;
        return Ok(respond(wire, name, &output));
    }
    let store = std::sync::Arc::clone(&state.metric_store);
    let operation = name.clone();
    let name = name.clone();
    let account = state.account.to_string();
    let region = state.region.to_string();
    members(&input, honoured(&name), &name)?;
    let output = tokio::task::spawn_blocking(move || match name.as_str() {
        "PutMetricData" => put_metric_data(&store, &input),
        "GetMetricStatistics" => get_metric_statistics(&store, &input),
        "GetMetricData" => get_metric_data(&store, &input),
        "ListMetrics" => list_metrics(&store, &input),
        other => crate::alarms::handle(&store, other, &input, &account, &region),
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(respond(wire, &operation, &output))
}

/// An operation's answer in the protocol its request came in.
fn respond(wire: Wire, operation: &str, output: &Cbor) -> Reply {
    let (body, content_type) = match wire {
        Wire::Cbor => return cbor_response(StatusCode::OK, output),
        Wire::Json => (to_json(output).to_string(), "application/x-amz-json-1.0"),
        Wire::Query => (
            crate::cloudwatch_query::write(operation, output, &uuid::Uuid::new_v4().to_string()),
            "text/xml",
        ),
    };
    let mut r = Response::new(ReplyBody::from(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// The request's body (CBOR or JSON, by its path) as one CBOR map.
fn input_of(request: &ApiRequest) -> Result<Cbor, ApiError> {
    let input = if request.body.is_empty() {
        Cbor::Map(Vec::new())
    } else if request.parts.uri.path().starts_with(PREFIX) {
        ciborium::from_reader::<Cbor, _>(&request.body[..])
            .map_err(|e| invalid(format!("the body is not valid CBOR: {e}")))?
    } else {
        let json: serde_json::Value = serde_json::from_slice(&request.body)
            .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
        from_json(&json)
    };
    if !matches!(input, Cbor::Map(_)) {
        return Err(invalid("the body must be a map"));
    }
    Ok(input)
}

/// What an alarm action does.
pub(crate) enum AlarmAction {
    /// Invokes a Lambda function of this account, asynchronously.
    Function(warden_types::FunctionRef),
    /// Publishes to an SNS topic of this account and region (its ARN).
    Topic(String),
}

/// What an alarm action's ARN does: invoke a Lambda function or publish to an SNS topic,
/// of this account and region. Other actions (Auto Scaling, EC2, Systems Manager) are
/// refused by name.
pub(crate) fn alarm_action(state: &ApiState, arn: &str) -> Result<AlarmAction, ApiError> {
    if let Some(rest) = arn.strip_prefix("arn:aws:sns:") {
        let mine = format!("{}:{}:", state.region, state.account);
        let name = rest.strip_prefix(&mine).unwrap_or("");
        let valid = (1..=256).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(invalid(format!(
                "Alarm action `{}` is not a topic of this account and region (arn:aws:sns:{}:{}:NAME)",
                arn.chars().take(256).collect::<String>(),
                state.region,
                state.account
            )));
        }
        return Ok(AlarmAction::Topic(arn.to_owned()));
    }
    if !arn.starts_with("arn:aws:lambda:") {
        return Err(invalid(format!(
            "Alarm action `{}` is not supported: an alarm action invokes a Lambda function (arn:aws:lambda:...:function:NAME) or publishes to an SNS topic (arn:aws:sns:...:NAME)",
            arn.chars().take(256).collect::<String>()
        )));
    }
    state.function_ref(arn).map(AlarmAction::Function)
}

/// A JSON body as the CBOR value the handlers read (numbers stay numbers: a JSON
/// timestamp is epoch seconds, which [`time`] takes).
pub(crate) fn from_json(v: &serde_json::Value) -> Cbor {
    use serde_json::Value as J;
    match v {
        J::Null => Cbor::Null,
        J::Bool(b) => Cbor::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Cbor::Text(s.clone()),
        J::Array(items) => Cbor::Array(items.iter().map(from_json).collect()),
        J::Object(entries) => Cbor::Map(
            entries
                .iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), from_json(v)))
                .collect(),
        ),
    }
}

/// A handler's answer as JSON 1.0 writes it (a timestamp as epoch seconds).
pub(crate) fn to_json(v: &Cbor) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Cbor::Integer(i) => J::from(i128::from(*i) as f64),
        Cbor::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Cbor::Text(s) => J::String(s.clone()),
        Cbor::Bool(b) => J::Bool(*b),
        Cbor::Array(items) => J::Array(items.iter().map(to_json).collect()),
        Cbor::Map(entries) => J::Object(
            entries
                .iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k.clone(), to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        Cbor::Tag(_, inner) => to_json(inner),
        _ => J::Null,
    }
}

/// A CBOR response of the protocol.
pub fn cbor_response(status: StatusCode, value: &Cbor) -> Reply {
    let mut body = Vec::new();
    if let Err(e) = ciborium::into_writer(value, &mut body) {
        tracing::error!(error = %e, "a CBOR response could not be written");
    }
    let mut r = Response::new(ReplyBody::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CBOR));
    h.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    r
}

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        message.into(),
    )
}

pub(crate) fn missing(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "MissingRequiredParameterException",
        format!("The parameter {name} is required."),
    )
}

fn store_error(e: warden_metrics::store::StoreError) -> ApiError {
    ApiError::internal(e)
}

// ---- reading CBOR ----

pub(crate) fn get<'a>(map: &'a Cbor, key: &str) -> Option<&'a Cbor> {
    match map {
        Cbor::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(k, Cbor::Text(t) if t == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

pub(crate) fn text<'a>(map: &'a Cbor, key: &str) -> Option<&'a str> {
    match get(map, key) {
        Some(Cbor::Text(t)) => Some(t),
        _ => None,
    }
}

pub(crate) fn number(v: &Cbor) -> Option<f64> {
    match v {
        Cbor::Integer(i) => Some(i128::from(*i) as f64),
        Cbor::Float(f) => Some(*f),
        _ => None,
    }
}

pub(crate) fn num(map: &Cbor, key: &str) -> Option<f64> {
    get(map, key).and_then(number)
}

/// A timestamp: tag 1 (epoch seconds), or a bare number of seconds.
pub(crate) fn time(map: &Cbor, key: &str) -> Option<f64> {
    match get(map, key)? {
        Cbor::Tag(1, inner) => number(inner),
        other => number(other),
    }
}

pub(crate) fn list<'a>(map: &'a Cbor, key: &str) -> &'a [Cbor] {
    match get(map, key) {
        Some(Cbor::Array(items)) => items,
        _ => &[],
    }
}

pub(crate) fn required_text<'a>(map: &'a Cbor, key: &str) -> Result<&'a str, ApiError> {
    text(map, key).ok_or_else(|| missing(key))
}

/// `Dimensions: [{Name, Value}]` as the store's canonical key; at most 30, as CloudWatch.
pub(crate) fn dimensions(map: &Cbor) -> Result<String, ApiError> {
    let items = list(map, "Dimensions");
    if items.len() > 30 {
        return Err(invalid("A metric has at most 30 dimensions."));
    }
    let mut pairs = Vec::new();
    for d in items {
        let name = required_text(d, "Name")?;
        let value = required_text(d, "Value")?;
        if name.is_empty() || name.len() > 255 || value.is_empty() || value.len() > 1024 {
            return Err(invalid(
                "A dimension's name is 1-255 characters and its value 1-1024.",
            ));
        }
        if name.contains(['=', ',']) || value.contains(',') {
            return Err(invalid(
                "Warden keeps dimensions whose names hold no `=` or `,`, and whose values hold no `,`.",
            ));
        }
        pairs.push((name, value));
    }
    Ok(warden_metrics::dimensions_key(&pairs))
}

fn metric_id(map: &Cbor) -> Result<MetricId, ApiError> {
    Ok(MetricId {
        namespace: required_text(map, "Namespace")?.to_owned(),
        metric: required_text(map, "MetricName")?.to_owned(),
        dims: dimensions(map)?,
    })
}

// ---- writing CBOR ----

pub(crate) fn t(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

pub(crate) fn map(entries: Vec<(&str, Cbor)>) -> Cbor {
    Cbor::Map(entries.into_iter().map(|(k, v)| (t(k), v)).collect())
}

pub(crate) fn timestamp(seconds: i64) -> Cbor {
    Cbor::Tag(1, Box::new(Cbor::Integer(seconds.into())))
}

pub(crate) fn dims_out(key: &str) -> Cbor {
    Cbor::Array(
        key.split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| map(vec![("Name", t(k)), ("Value", t(v))]))
            .collect(),
    )
}

/// The unit of a metric: Warden's own metrics' fixed ones, a custom metric's as
/// `PutMetricData` last gave it, else `None`.
fn unit_of(store: &warden_metrics::store::MetricStore, id: &MetricId) -> Result<String, ApiError> {
    Ok(match (id.namespace.as_str(), id.metric.as_str()) {
        ("AWS/Lambda", "Duration" | "AsyncEventAge") => "Milliseconds".into(),
        ("AWS/Lambda" | "Warden/Security", _) => "Count".into(),
        _ => store
            .custom_unit(id)
            .map_err(store_error)?
            .unwrap_or_else(|| "None".into()),
    })
}

/// The members each operation reads. Any other member of a request is refused by name
/// rather than ignored.
fn honoured(operation: &str) -> &'static [&'static str] {
    match operation {
        "PutMetricData" => &["Namespace", "MetricData"],
        "GetMetricStatistics" => &[
            "Namespace",
            "MetricName",
            "Dimensions",
            "StartTime",
            "EndTime",
            "Period",
            "Statistics",
            "ExtendedStatistics",
            "Unit",
        ],
        "GetMetricData" => &["MetricDataQueries", "StartTime", "EndTime", "ScanBy"],
        "ListMetrics" => &["Namespace", "MetricName", "Dimensions", "NextToken"],
        "PutMetricAlarm" => &[
            "AlarmName",
            "AlarmDescription",
            "ActionsEnabled",
            "OKActions",
            "AlarmActions",
            "InsufficientDataActions",
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Dimensions",
            "Period",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "Metrics",
        ],
        "DescribeAlarms" => &["AlarmNames", "AlarmNamePrefix", "StateValue"],
        "DeleteAlarms" | "EnableAlarmActions" | "DisableAlarmActions" => &["AlarmNames"],
        "SetAlarmState" => &["AlarmName", "StateValue", "StateReason"],
        "DescribeAlarmHistory" => &["AlarmName", "MaxRecords"],
        _ => &[],
    }
}

/// Refuses a member of `map` that `allowed` does not name.
pub(crate) fn members(map: &Cbor, allowed: &[&str], what: &str) -> Result<(), ApiError> {
    if let Cbor::Map(entries) = map {
        for (k, _) in entries {
            let Cbor::Text(k) = k else {
                return Err(invalid("member names are text"));
            };
            if !allowed.contains(&k.as_str()) {
                return Err(invalid(format!(
                    "`{}` is not supported by Warden's {what}",
                    k.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    Ok(())
}

// ---- operations ----

/// The time range and period of a read, checked as CloudWatch checks them.
fn range(input: &Cbor) -> Result<(i64, i64), ApiError> {
    let start = time(input, "StartTime").ok_or_else(|| missing("StartTime"))?;
    let end = time(input, "EndTime").ok_or_else(|| missing("EndTime"))?;
    if end <= start {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    Ok((start.floor() as i64, end.ceil() as i64))
}

pub(crate) fn period(value: Option<f64>) -> Result<i64, ApiError> {
    let p = value.ok_or_else(|| missing("Period"))?;
    if p < 60.0 || p % 60.0 != 0.0 || p > 86_400.0 * 455.0 {
        return Err(invalid(
            "The parameter Period must be a multiple of 60 (Warden keeps one-minute resolution at best).",
        ));
    }
    Ok(p as i64)
}

pub(crate) fn check_stat(stat: &str) -> Result<(), ApiError> {
    if matches!(
        stat,
        "SampleCount" | "Sum" | "Average" | "Minimum" | "Maximum"
    ) || percentile_of(stat).is_some()
    {
        return Ok(());
    }
    Err(invalid(format!(
        "The statistic `{}` is not one Warden computes: SampleCount, Sum, Average, Minimum, Maximum, or a percentile pNN",
        stat.chars().take(32).collect::<String>()
    )))
}

fn put_metric_data(
    store: &warden_metrics::store::MetricStore,
    input: &Cbor,
) -> Result<Cbor, ApiError> {
    let namespace = required_text(input, "Namespace")?;
    if namespace.starts_with("AWS/") || namespace.starts_with("Warden/") {
        return Err(invalid(format!(
            "The value {namespace} for parameter Namespace is invalid: `AWS/` and `Warden/` are the platform's namespaces."
        )));
    }
    if namespace.is_empty() || namespace.len() > 255 {
        return Err(invalid("A namespace is 1-255 characters."));
    }
    let data = list(input, "MetricData");
    if data.is_empty() {
        return Err(missing("MetricData"));
    }
    if data.len() > MAX_PUT_METRICS {
        return Err(invalid(format!(
            "One PutMetricData carries at most {MAX_PUT_METRICS} metrics."
        )));
    }
    let now = warden_metrics::aggregate::now_s();
    let mut rows = Vec::new();
    let mut units = Vec::new();
    for m in data {
        members(
            m,
            &[
                "MetricName",
                "Dimensions",
                "Timestamp",
                "Value",
                "Values",
                "Counts",
                "StatisticValues",
                "Unit",
                "StorageResolution",
            ],
            "PutMetricData MetricData",
        )?;
        if num(m, "StorageResolution").is_some_and(|r| r != 60.0) {
            return Err(invalid(
                "StorageResolution must be 60: Warden keeps one-minute resolution at best",
            ));
        }
        units.push(text(m, "Unit").map(str::to_owned));
        let metric = required_text(m, "MetricName")?;
        if metric.is_empty() || metric.len() > 255 {
            return Err(invalid("A metric name is 1-255 characters."));
        }
        let ts = time(m, "Timestamp").map_or(now, |t| t.floor() as i64);
        if ts > now + 2 * 3600 || ts < now - 14 * 86_400 {
            return Err(invalid(
                "A datapoint's Timestamp is at most two weeks old and two hours ahead.",
            ));
        }
        let point = datapoint_of(m, ts - ts.rem_euclid(60))?;
        let id = MetricId {
            namespace: namespace.to_owned(),
            metric: metric.to_owned(),
            dims: dimensions(m)?,
        };
        rows.push((id, 60, point));
    }
    store.add_custom(&rows, &units).map_err(|e| match e {
        warden_metrics::store::StoreError::TooManyMetrics(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "LimitExceededException",
            e.to_string(),
        ),
        other => store_error(other),
    })?;
    Ok(Cbor::Map(Vec::new()))
}

/// The datapoint one entry of `MetricData` describes: a `Value`, `Values` with `Counts`,
/// or `StatisticValues`; exactly one of them.
fn datapoint_of(m: &Cbor, ts: i64) -> Result<Datapoint, ApiError> {
    let finite = |v: f64| {
        if v.is_finite() && v.abs() <= 1e108 {
            Ok(v)
        } else {
            Err(invalid("Values must be finite numbers within ±1e108."))
        }
    };
    let single = num(m, "Value");
    let values = list(m, "Values");
    let stats = get(m, "StatisticValues");
    match (single, values.is_empty(), stats) {
        (Some(v), true, None) => {
            let v = finite(v)?;
            Ok(Datapoint {
                ts,
                count: 1.0,
                sum: v,
                min: v,
                max: v,
                hist: None,
            })
        }
        (None, false, None) => {
            if values.len() > 150 {
                return Err(invalid("Values holds at most 150 values."));
            }
            let counts = list(m, "Counts");
            if !counts.is_empty() && counts.len() != values.len() {
                return Err(invalid("Counts must have one count per value."));
            }
            let mut point = Datapoint {
                ts,
                count: 0.0,
                sum: 0.0,
                min: f64::MAX,
                max: f64::MIN,
                hist: None,
            };
            for (i, v) in values.iter().enumerate() {
                let v = finite(number(v).ok_or_else(|| invalid("Values must be numbers."))?)?;
                let n = counts.get(i).and_then(number).unwrap_or(1.0);
                if !(n.is_finite() && n > 0.0) {
                    return Err(invalid("Counts must be positive."));
                }
                point.count += n;
                point.sum += v * n;
                point.min = point.min.min(v);
                point.max = point.max.max(v);
            }
            Ok(point)
        }
        (None, true, Some(s)) => {
            let field = |k: &str| {
                num(s, k)
                    .ok_or_else(|| missing(&format!("StatisticValues.{k}")))
                    .and_then(finite)
            };
            let point = Datapoint {
                ts,
                count: field("SampleCount")?,
                sum: field("Sum")?,
                min: field("Minimum")?,
                max: field("Maximum")?,
                hist: None,
            };
            if point.count <= 0.0 || point.min > point.max {
                return Err(invalid(
                    "StatisticValues must have a positive SampleCount and Minimum <= Maximum.",
                ));
            }
            Ok(point)
        }
        _ => Err(invalid(
            "Each metric needs exactly one of Value, Values or StatisticValues.",
        )),
    }
}

fn get_metric_statistics(
    store: &warden_metrics::store::MetricStore,
    input: &Cbor,
) -> Result<Cbor, ApiError> {
    let id = metric_id(input)?;
    let (start, end) = range(input)?;
    let period = period(num(input, "Period"))?;
    let stats: Vec<&str> = list(input, "Statistics")
        .iter()
        .filter_map(|s| match s {
            Cbor::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let extended: Vec<&str> = list(input, "ExtendedStatistics")
        .iter()
        .filter_map(|s| match s {
            Cbor::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    if stats.is_empty() && extended.is_empty() {
        return Err(missing("Statistics or ExtendedStatistics"));
    }
    for s in &stats {
        if percentile_of(s).is_some() {
            return Err(invalid("Percentiles go in ExtendedStatistics."));
        }
        check_stat(s)?;
    }
    for s in &extended {
        if percentile_of(s).is_none() {
            return Err(invalid(format!("`{s}` is not a percentile (pNN).")));
        }
    }
    if (end - start) / period > MAX_DATAPOINTS as i64 {
        return Err(invalid(format!(
            "You have requested up to {} datapoints, which exceeds the limit of {MAX_DATAPOINTS}.",
            (end - start) / period
        )));
    }
    let unit = unit_of(store, &id)?;
    // A unit asked for that is not the metric's: no datapoints, as CloudWatch.
    let points = match text(input, "Unit") {
        Some(u) if u != unit => Vec::new(),
        _ => store.query(&id, start, end, period).map_err(store_error)?,
    };
    let datapoints = points
        .iter()
        .map(|p| {
            let mut entries = vec![("Timestamp", timestamp(p.ts)), ("Unit", t(&unit))];
            for s in &stats {
                if let Some(v) = p.statistic(s) {
                    entries.push((s, Cbor::Float(v)));
                }
            }
            if !extended.is_empty() {
                let ext: Vec<(Cbor, Cbor)> = extended
                    .iter()
                    .filter_map(|s| p.statistic(s).map(|v| (t(s), Cbor::Float(v))))
                    .collect();
                entries.push(("ExtendedStatistics", Cbor::Map(ext)));
            }
            map(entries)
        })
        .collect();
    Ok(map(vec![
        ("Label", t(&id.metric)),
        ("Datapoints", Cbor::Array(datapoints)),
    ]))
}

fn get_metric_data(
    store: &warden_metrics::store::MetricStore,
    input: &Cbor,
) -> Result<Cbor, ApiError> {
    let (start, end) = range(input)?;
    let queries = list(input, "MetricDataQueries");
    if queries.is_empty() {
        return Err(missing("MetricDataQueries"));
    }
    if queries.len() > MAX_QUERIES {
        return Err(invalid(format!("At most {MAX_QUERIES} queries.")));
    }
    let ascending = text(input, "ScanBy") == Some("TimestampAscending");
    let mut results = Vec::new();
    for q in run_metric_queries(store, queries, start, end)? {
        if !q.returned {
            continue;
        }
        let mut points: Vec<(i64, f64)> = q.series.into_iter().collect();
        if !ascending {
            points.reverse();
        }
        let (times, values): (Vec<Cbor>, Vec<Cbor>) = points
            .iter()
            .map(|(ts, v)| (timestamp(*ts), Cbor::Float(*v)))
            .unzip();
        results.push(map(vec![
            ("Id", t(&q.id)),
            ("Label", t(&q.label)),
            ("Timestamps", Cbor::Array(times)),
            ("Values", Cbor::Array(values)),
            ("StatusCode", t("Complete")),
        ]));
    }
    Ok(map(vec![
        ("MetricDataResults", Cbor::Array(results)),
        ("Messages", Cbor::Array(Vec::new())),
    ]))
}

/// One query's result: its id, label, whether it is returned, and its series.
pub(crate) struct QueryResult {
    pub(crate) id: String,
    pub(crate) label: String,
    pub(crate) returned: bool,
    pub(crate) series: warden_metrics::math::Series,
}

/// Runs GetMetricData's queries (metric queries, then expressions in dependency order)
/// over `[start, end)`; the results in the order the queries were given.
pub(crate) fn run_metric_queries(
    store: &warden_metrics::store::MetricStore,
    queries: &[Cbor],
    start: i64,
    end: i64,
) -> Result<Vec<QueryResult>, ApiError> {
    // CloudWatch's cap on one call: 100,800 datapoints across all its queries.
    let mut budget: i64 = 100_800;
    // Each query's series, metric queries first, then expressions as their inputs are
    // ready; results are returned in the order the queries were given.
    let mut series: std::collections::BTreeMap<String, warden_metrics::math::Series> =
        std::collections::BTreeMap::new();
    let mut metric_ids: Vec<String> = Vec::new();
    let mut expressions: Vec<(String, warden_metrics::math::Expr)> = Vec::new();
    let mut shown: Vec<(String, String, bool)> = Vec::new();
    for q in queries {
        members(
            q,
            &["Id", "MetricStat", "Expression", "Label", "ReturnData"],
            "GetMetricData query",
        )?;
        let id = required_text(q, "Id")?;
        let valid_id = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && id.len() <= 255
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_id {
            return Err(invalid(format!(
                "The Id `{}` must start with a lowercase letter and hold only letters, digits and underscores.",
                id.chars().take(64).collect::<String>()
            )));
        }
        if shown.iter().any(|(seen, _, _)| seen == id) {
            return Err(invalid(format!(
                "The Id `{id}` is used by more than one query."
            )));
        }
        let returned = !matches!(get(q, "ReturnData"), Some(Cbor::Bool(false)));
        match (get(q, "MetricStat"), text(q, "Expression")) {
            (Some(stat), None) => {
                members(stat, &["Metric", "Period", "Stat", "Unit"], "MetricStat")?;
                let metric = get(stat, "Metric").ok_or_else(|| missing("MetricStat.Metric"))?;
                let metric = metric_id(metric)?;
                let period = period(num(stat, "Period"))?;
                let name = required_text(stat, "Stat")?;
                check_stat(name)?;
                budget -= (end - start) / period;
                if budget < 0 {
                    return Err(invalid(
                        "One GetMetricData returns at most 100,800 datapoints across its queries: shorten the range or lengthen the periods.",
                    ));
                }
                let points = match text(stat, "Unit") {
                    Some(u) if u != unit_of(store, &metric)? => Vec::new(),
                    _ => store
                        .query(&metric, start, end, period)
                        .map_err(store_error)?,
                };
                series.insert(
                    id.to_owned(),
                    points
                        .iter()
                        .filter_map(|p| p.statistic(name).map(|v| (p.ts, v)))
                        .collect(),
                );
                metric_ids.push(id.to_owned());
                let label = text(q, "Label").unwrap_or(&metric.metric).to_owned();
                shown.push((id.to_owned(), label, returned));
            }
            (None, Some(expression)) => {
                let parsed = warden_metrics::math::parse(expression).map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "ValidationError",
                        format!("Error in expression '{id}': {e}"),
                    )
                })?;
                expressions.push((id.to_owned(), parsed));
                let label = text(q, "Label").unwrap_or(id).to_owned();
                shown.push((id.to_owned(), label, returned));
            }
            _ => {
                return Err(invalid(format!(
                    "Query `{id}` needs exactly one of MetricStat and Expression."
                )))
            }
        }
    }
    // Expressions in dependency order; what never becomes ready is a cycle or a reference
    // to no query.
    while !expressions.is_empty() {
        let ready = expressions.iter().position(|(_, e)| {
            let mut refs = Vec::new();
            e.references(&mut refs);
            refs.iter().all(|r| series.contains_key(r))
        });
        let Some(at) = ready else {
            let (id, _) = &expressions[0];
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                format!("Error in expression '{id}': it refers to itself (through other expressions) or to an Id no query has."),
            ));
        };
        let (id, expr) = expressions.remove(at);
        let value = warden_metrics::math::evaluate(
            &expr,
            &warden_metrics::math::Inputs {
                series: &series,
                metric_ids: &metric_ids,
            },
        )
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                format!("Error in expression '{id}': {e}"),
            )
        })?;
        series.insert(id, value);
    }
    Ok(shown
        .into_iter()
        .map(|(id, label, returned)| QueryResult {
            series: series.remove(&id).unwrap_or_default(),
            id,
            label,
            returned,
        })
        .collect())
}

fn list_metrics(
    store: &warden_metrics::store::MetricStore,
    input: &Cbor,
) -> Result<Cbor, ApiError> {
    if get(input, "NextToken").is_some() {
        return Err(invalid(
            "NextToken is not valid: Warden lists every metric in one page of at most 500",
        ));
    }
    let namespace = text(input, "Namespace");
    let metric = text(input, "MetricName");
    // Each filter must be among the metric's dimensions (a filter without a value
    // matches any value).
    let filters: Vec<(String, Option<String>)> = list(input, "Dimensions")
        .iter()
        .filter_map(|d| {
            let name = text(d, "Name")?.to_owned();
            Some((name, text(d, "Value").map(str::to_owned)))
        })
        .collect();
    let since = warden_metrics::aggregate::now_s() - LIST_WINDOW_S;
    let all = store.list(namespace, metric, since).map_err(store_error)?;
    let metrics: Vec<Cbor> = all
        .iter()
        .filter(|m| {
            filters.iter().all(|(name, value)| {
                m.dims
                    .split(',')
                    .filter_map(|p| p.split_once('='))
                    .any(|(k, v)| k == name && value.as_deref().is_none_or(|want| want == v))
            })
        })
        .take(MAX_LISTED)
        .map(|m| {
            map(vec![
                ("Namespace", t(&m.namespace)),
                ("MetricName", t(&m.metric)),
                ("Dimensions", dims_out(&m.dims)),
            ])
        })
        .collect();
    Ok(map(vec![("Metrics", Cbor::Array(metrics))]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cbor(value: &Cbor) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).expect("write");
        out
    }

    #[test]
    fn a_datapoint_is_one_of_value_values_or_statistic_values() {
        let m = map(vec![("MetricName", t("m")), ("Value", Cbor::Float(2.5))]);
        let p = datapoint_of(&m, 60).expect("value");
        assert_eq!((p.count, p.sum, p.min, p.max), (1.0, 2.5, 2.5, 2.5));
        let m = map(vec![
            (
                "Values",
                Cbor::Array(vec![Cbor::Float(1.0), Cbor::Float(3.0)]),
            ),
            (
                "Counts",
                Cbor::Array(vec![Cbor::Float(2.0), Cbor::Float(1.0)]),
            ),
        ]);
        let p = datapoint_of(&m, 60).expect("values");
        assert_eq!((p.count, p.sum, p.min, p.max), (3.0, 5.0, 1.0, 3.0));
        for bad in [
            map(vec![]),
            map(vec![
                ("Value", Cbor::Float(1.0)),
                ("Values", Cbor::Array(vec![Cbor::Float(1.0)])),
            ]),
            map(vec![("Value", Cbor::Float(f64::NAN))]),
            map(vec![
                ("Values", Cbor::Array(vec![Cbor::Float(1.0)])),
                (
                    "Counts",
                    Cbor::Array(vec![Cbor::Float(1.0), Cbor::Float(1.0)]),
                ),
            ]),
        ] {
            assert!(datapoint_of(&bad, 60).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statistics_and_percentiles_are_named_as_cloudwatch_names_them() {
        assert!(check_stat("p99").is_ok() && check_stat("p99.9").is_ok());
        assert!(check_stat("Average").is_ok());
        for bad in ["p0", "p101", "Median", "tm99", ""] {
            assert!(check_stat(bad).is_err(), "{bad}");
        }
        assert_eq!(
            dimensions(&map(vec![(
                "Dimensions",
                Cbor::Array(vec![
                    map(vec![("Name", t("b")), ("Value", t("2"))]),
                    map(vec![("Name", t("a")), ("Value", t("1"))]),
                ])
            )]))
            .expect("dims"),
            "a=1,b=2"
        );
        assert_eq!(
            time(
                &map(vec![("T", Cbor::Tag(1, Box::new(Cbor::Float(5.5))))]),
                "T"
            ),
            Some(5.5)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic_the_readers(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(value) = ciborium::from_reader::<Cbor, _>(&bytes[..]) {
                let _ = metric_id(&value);
                let _ = range(&value);
                let _ = datapoint_of(&value, 0);
                let _ = cbor(&value);
            }
        }
    }
}
