//! CloudWatch Logs' JSON 1.1 API (`X-Amz-Target: Logs_20140328.*`) over the log store:
//! every function's log group `/aws/lambda/NAME` (one stream per instance, named as Lambda
//! names them), and groups callers make themselves.
//!
//! Who may call what: every operation is authorized with its IAM action (`logs:GetLogEvents`)
//! by the caller's identity policies, on the ARN of the group it names
//! (`arn:aws:logs:REGION:ACCOUNT:log-group:NAME`) or, for the operations on one stream
//! (`CreateLogStream`, `DeleteLogStream`, `GetLogEvents`, `PutLogEvents`), on the stream's
//! (`...:log-group:NAME:log-stream:STREAM`), whether or not it exists, so that a caller
//! without permission learns nothing of it. `DescribeLogGroups` is authorized on
//! `...:log-group:*`. A query's results (`GetQueryResults`, `StopQuery`) are given only to
//! the principal that started it.
//!
//! What each can change: log groups, their streams, events and retention; nothing else. A
//! caller allowed `logs:PutLogEvents` on a function's group may add lines to it, as on
//! AWS; they are stored as the caller's, never as Warden's, so they cannot pass for
//! `START`, `END` or `REPORT`. Every member an operation's model defines is read or
//! refused by name (`InvalidParameterException`); unknown members are refused too.
//!
//! Bounds: at most [`MAX_CUSTOM_GROUPS`] groups besides the functions', [`MAX_STREAMS`]
//! streams made with `CreateLogStream` per group, PutLogEvents' own limits (10,000 events,
//! 1 MiB, 256 KiB per event, 24 hours apart), a FilterLogEvents call reads at most
//! [`SCAN_BUDGET`] events before it answers with a `nextToken`, and at most
//! [`MAX_QUERIES`] query results are kept, each for [`QUERY_KEPT`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};
use warden_control::{
    Cursor, EventRange, LogGroup, LogGroupInfo, LogStore, LogStreamInfo, Scan, StreamQuery,
};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{json_op, JsonOperation, JsonService};
use crate::error::JsonVersion;
use crate::kms::{reply, Input};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// CloudWatch Logs (`logs`).
pub static LOGS: JsonService = JsonService {
    signing_name: "logs",
    target_prefix: "Logs_20140328",
    version: JsonVersion::V1_1,
    operations: OPERATIONS,
    max_body: PUT_LOG_EVENTS_BODY,
};

/// Log groups besides the functions' own.
pub const MAX_CUSTOM_GROUPS: usize = 1_000;
/// Streams `CreateLogStream` may make in one group.
pub const MAX_STREAMS: usize = 1_000;
/// Events one FilterLogEvents call reads before it answers with what it found so far and a
/// `nextToken`, so that a call over a large group never runs long.
pub const SCAN_BUDGET: u64 = 2_000_000;
/// Query results kept for `GetQueryResults`.
pub const MAX_QUERIES: usize = 100;
/// How long a query's results are kept.
pub const QUERY_KEPT: Duration = Duration::from_secs(15 * 60);
/// Bytes of query results kept at most, all queries together; the oldest go first.
pub const MAX_KEPT_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of events one GetLogEvents or FilterLogEvents answer carries at most, as in
/// CloudWatch (then the next token says where to go on); an event larger than that is
/// still answered, alone.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// What an event costs in an answer besides its message (CloudWatch counts 26 bytes).
const EVENT_OVERHEAD: usize = 26;
/// PutLogEvents: events per call.
const MAX_BATCH_EVENTS: usize = 10_000;
/// PutLogEvents: bytes per call, counting 26 bytes per event as CloudWatch does.
const MAX_BATCH_BYTES: usize = 1_048_576;
/// The largest request body: a full PutLogEvents batch (1 MiB of messages) with its JSON
/// around it; the batch's own limits are checked on the events.
const PUT_LOG_EVENTS_BODY: usize = 4 * 1024 * 1024;
/// PutLogEvents: bytes per event.
const MAX_EVENT_BYTES: usize = 256 * 1024;
/// PutLogEvents: how far back an event may be (14 days) and ahead (2 hours).
const MAX_AGE_MS: i64 = 14 * 24 * 3600 * 1000;
const MAX_AHEAD_MS: i64 = 2 * 3600 * 1000;
/// The retention periods PutRetentionPolicy accepts, in days.
const RETENTION_DAYS: &[i64] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

const OPERATIONS: &[JsonOperation] = &[
    json_op!("DescribeLogGroups", all_groups_target, describe_log_groups),
    json_op!("CreateLogGroup", group_target, create_log_group),
    json_op!("DeleteLogGroup", group_target, delete_log_group),
    json_op!("PutRetentionPolicy", group_target, put_retention_policy),
    json_op!(
        "DeleteRetentionPolicy",
        group_target,
        delete_retention_policy
    ),
    json_op!("DescribeLogStreams", group_target, describe_log_streams),
    json_op!("CreateLogStream", stream_target, create_log_stream),
    json_op!("DeleteLogStream", stream_target, delete_log_stream),
    json_op!("PutLogEvents", stream_target, put_log_events),
    json_op!("GetLogEvents", stream_target, get_log_events),
    json_op!("FilterLogEvents", group_target, filter_log_events),
    json_op!("StartQuery", query_groups_target, start_query),
    json_op!("GetQueryResults", any_target, get_query_results),
    json_op!("StopQuery", any_target, stop_query),
];

// ---- errors ----

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
        message,
    )
}

fn group_not_found() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
}

fn stream_not_found() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
}

fn store_error(e: warden_control::StoreError) -> ApiError {
    ApiError::internal(format!("the log store failed: {e}"))
}

/// Runs a log store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&dyn LogStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.control.log_store();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| ApiError::internal(format!("a log store task failed: {e}")))?
}

// ---- names ----

/// A log group name as CloudWatch Logs allows them: 1-512 of letters, digits and `._-/#`.
fn group_name(name: &str) -> Result<LogGroup, ApiError> {
    let ok = (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b));
    if !ok {
        return Err(invalid(
            "1 validation error detected: Value at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+ and have length between 1 and 512",
        ));
    }
    Ok(LogGroup::from_name(name))
}

/// A log stream name: 1-512 characters, neither `:` nor `*`.
fn stream_name(name: &str) -> Result<&str, ApiError> {
    let ok = (1..=512).contains(&name.len())
        && !name.contains([':', '*'])
        && !name.chars().any(char::is_control);
    if !ok {
        return Err(invalid(
            "1 validation error detected: Value at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]* and have length between 1 and 512",
        ));
    }
    Ok(name)
}

/// The group a request names, by `logGroupName` or `logGroupIdentifier` (a name or an
/// ARN of this account and region), exactly one of them.
fn named_group(state: &ApiState, body: &Value) -> Result<LogGroup, ApiError> {
    let name = body.get("logGroupName").and_then(Value::as_str);
    let identifier = body.get("logGroupIdentifier").and_then(Value::as_str);
    match (name, identifier) {
        (Some(n), None) => group_name(n),
        (None, Some(id)) => {
            let prefix = format!("arn:aws:logs:{}:{}:log-group:", state.region, state.account);
            match id.strip_prefix(&prefix) {
                Some(rest) => group_name(rest.strip_suffix(":*").unwrap_or(rest)),
                None if id.starts_with("arn:") => Err(invalid(
                    "logGroupIdentifier names a log group of another account or region",
                )),
                None => group_name(id),
            }
        }
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
        )),
        (None, None) => Err(invalid(
            "Should provide either name or ARN of the log group to use.",
        )),
    }
}

fn group_arn(state: &ApiState, group: &LogGroup) -> String {
    format!(
        "arn:aws:logs:{}:{}:log-group:{}",
        state.region,
        state.account,
        group.name()
    )
}

// ---- authorization ----

fn target(action: &str, resource: String) -> Target {
    Target {
        action: format!("logs:{action}"),
        resource,
        ..Target::default()
    }
}

fn all_groups_target(
    state: &ApiState,
    operation: &str,
    _body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(vec![target(
        operation,
        format!(
            "arn:aws:logs:{}:{}:log-group:*",
            state.region, state.account
        ),
    )])
}

fn group_target(
    state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let group = named_group(state, body)?;
    Ok(vec![target(operation, group_arn(state, &group))])
}

fn stream_target(
    state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    let group = named_group(state, body)?;
    let stream = body
        .get("logStreamName")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("logStreamName is required"))?;
    let stream = stream_name(stream)?;
    Ok(vec![target(
        operation,
        format!("{}:log-stream:{stream}", group_arn(state, &group)),
    )])
}

/// `logs:StartQuery` on each group the query reads.
fn query_groups_target(
    state: &ApiState,
    operation: &str,
    body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(query_groups(state, body)?
        .iter()
        .map(|g| target(operation, group_arn(state, g)))
        .collect())
}

fn any_target(
    _state: &ApiState,
    operation: &str,
    _body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(vec![target(operation, "*".into())])
}

// ---- shapes ----

fn group_shape(state: &ApiState, g: &LogGroupInfo) -> Value {
    let arn = group_arn(state, &g.group);
    let mut v = json!({
        "logGroupName": g.group.name(),
        "creationTime": g.created_ms,
        "metricFilterCount": 0,
        "arn": format!("{arn}:*"),
        "logGroupArn": arn,
        "logGroupClass": "STANDARD",
    });
    if let Some(days) = g.retention_days {
        v["retentionInDays"] = json!(days);
    }
    v
}

fn stream_shape(state: &ApiState, group: &LogGroup, s: &LogStreamInfo) -> Value {
    let mut v = json!({
        "logStreamName": s.name,
        "creationTime": s.created_ms,
        "arn": format!("{}:log-stream:{}", group_arn(state, group), s.name),
    });
    for (key, value) in [
        ("firstEventTimestamp", s.first_event_ms),
        ("lastEventTimestamp", s.last_event_ms),
        ("lastIngestionTime", s.last_ingestion_ms),
    ] {
        if let Some(ms) = value {
            v[key] = json!(ms);
        }
    }
    v
}

/// An optional integer member within `range`, named in the error as the model names it.
fn bounded(
    input: &Input<'_>,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    match input.integer(name)? {
        Some(n) if !range.contains(&n) => Err(invalid(format!(
            "1 validation error detected: Value '{n}' at '{name}' failed to satisfy constraint: Member must have value between {} and {}",
            range.start(),
            range.end()
        ))),
        n => Ok(n),
    }
}

/// A page token this module wrote: `PREFIX` and a number.
fn token(input: &Input<'_>, name: &str, prefix: &str) -> Result<Option<i64>, ApiError> {
    match input.string(name)? {
        None => Ok(None),
        Some(t) => t
            .strip_prefix(prefix)
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| invalid(format!("The specified {name} is not valid."))),
    }
}

// ---- groups ----

async fn describe_log_groups(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "DescribeLogGroups",
        &body,
        &[
            "logGroupNamePrefix",
            "logGroupNamePattern",
            "nextToken",
            "limit",
            "logGroupClass",
            "accountIdentifiers",
            "includeLinkedAccounts",
            "logGroupIdentifiers",
        ],
    )?;
    if input.boolean("includeLinkedAccounts")? || !input.strings("accountIdentifiers")?.is_empty() {
        return Err(invalid(
            "accountIdentifiers and includeLinkedAccounts: Warden serves one account; it has no linked accounts",
        ));
    }
    if !input.strings("logGroupIdentifiers")?.is_empty() {
        return Err(invalid(
            "logGroupIdentifiers is not supported by Warden; use logGroupNamePrefix or logGroupNamePattern",
        ));
    }
    match input.string("logGroupClass")? {
        None | Some("STANDARD") => {}
        Some(other) => {
            return Err(invalid(format!(
                "logGroupClass {other}: Warden's log groups are all STANDARD"
            )))
        }
    }
    let prefix = input.string("logGroupNamePrefix")?.unwrap_or("").to_owned();
    let pattern = input
        .string("logGroupNamePattern")?
        .unwrap_or("")
        .to_owned();
    if !prefix.is_empty() && !pattern.is_empty() {
        return Err(invalid(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    let limit = bounded(&input, "limit", 1..=50)?.unwrap_or(50) as usize;
    let after = input.string("nextToken")?.map(str::to_owned);
    let groups = blocking(state, move |store| {
        store
            .list_log_groups(&prefix, &pattern, after.as_deref(), limit + 1)
            .map_err(store_error)
    })
    .await?;
    let more = groups.len() > limit;
    let page = &groups[..groups.len().min(limit)];
    let mut out = json!({
        "logGroups": page.iter().map(|g| group_shape(state, g)).collect::<Vec<_>>(),
    });
    if more {
        if let Some(last) = page.last() {
            out["nextToken"] = json!(last.group.name());
        }
    }
    reply(&out)
}

async fn create_log_group(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "CreateLogGroup",
        &body,
        &[
            "logGroupName",
            "kmsKeyId",
            "tags",
            "logGroupClass",
            "deletionProtectionEnabled",
        ],
    )?;
    for refused in ["kmsKeyId", "tags", "deletionProtectionEnabled"] {
        if input.get(refused).is_some() {
            return Err(invalid(format!(
                "{refused} is not supported by Warden's log groups (the log store is private to the server and has no tags)"
            )));
        }
    }
    match input.string("logGroupClass")? {
        None | Some("STANDARD") => {}
        Some(other) => {
            return Err(invalid(format!(
                "logGroupClass {other}: Warden's log groups are all STANDARD"
            )))
        }
    }
    let group = group_name(input.required("logGroupName")?)?;
    blocking(state, move |store| {
        if matches!(group, LogGroup::Custom(_)) {
            let custom = store.custom_log_group_count().map_err(store_error)?;
            if custom >= MAX_CUSTOM_GROUPS as u64 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "LimitExceededException",
                    format!("Resource limit exceeded: at most {MAX_CUSTOM_GROUPS} log groups besides the functions'"),
                ));
            }
        }
        if !store
            .create_log_group(&group, warden_types::now_millis())
            .map_err(store_error)?
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ResourceAlreadyExistsException",
                "The specified log group already exists",
            ));
        }
        Ok(())
    })
    .await?;
    reply(&json!({}))
}

async fn delete_log_group(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("DeleteLogGroup", &body, &["logGroupName"])?;
    let group = group_name(input.required("logGroupName")?)?;
    let deleted = blocking(state, move |store| {
        store.delete_log_group(&group).map_err(store_error)
    })
    .await?;
    if !deleted {
        return Err(group_not_found());
    }
    reply(&json!({}))
}

async fn put_retention_policy(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "PutRetentionPolicy",
        &body,
        &["logGroupName", "retentionInDays"],
    )?;
    let group = group_name(input.required("logGroupName")?)?;
    let days = input
        .integer("retentionInDays")?
        .ok_or_else(|| invalid("retentionInDays is required"))?;
    if !RETENTION_DAYS.contains(&days) {
        return Err(invalid(format!(
            "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: {RETENTION_DAYS:?}"
        )));
    }
    let days = u32::try_from(days).map_err(|_| invalid("retentionInDays is out of range"))?;
    set_retention(state, group, Some(days)).await
}

/// Sets or removes a group's retention; `ResourceNotFoundException` for no such group.
async fn set_retention(
    state: &ApiState,
    group: LogGroup,
    days: Option<u32>,
) -> Result<Reply, ApiError> {
    let found = blocking(state, move |store| {
        store
            .set_log_retention(&group, days, warden_types::now_millis())
            .map_err(store_error)
    })
    .await?;
    if !found {
        return Err(group_not_found());
    }
    reply(&json!({}))
}

async fn delete_retention_policy(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("DeleteRetentionPolicy", &body, &["logGroupName"])?;
    let group = group_name(input.required("logGroupName")?)?;
    set_retention(state, group, None).await
}

// ---- streams ----

async fn describe_log_streams(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "DescribeLogStreams",
        &body,
        &[
            "logGroupName",
            "logGroupIdentifier",
            "logStreamNamePrefix",
            "orderBy",
            "descending",
            "nextToken",
            "limit",
        ],
    )?;
    let group = named_group(state, &body)?;
    let prefix = input
        .string("logStreamNamePrefix")?
        .unwrap_or("")
        .to_owned();
    let by_last_event = match input.string("orderBy")? {
        None | Some("LogStreamName") => false,
        Some("LastEventTime") => true,
        Some(other) => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{other}' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
            )))
        }
    };
    if by_last_event && !prefix.is_empty() {
        return Err(invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let descending = input.boolean("descending")?;
    let limit = bounded(&input, "limit", 1..=50)?.unwrap_or(50) as usize;
    let offset = token(&input, "nextToken", "o/")?.unwrap_or(0) as usize;
    let shown = group.clone();
    let streams = blocking(state, move |store| {
        if store.log_group(&group).map_err(store_error)?.is_none() {
            return Err(group_not_found());
        }
        store
            .list_log_streams(
                &group,
                &StreamQuery {
                    prefix: &prefix,
                    by_last_event,
                    descending,
                    offset,
                    limit: limit + 1,
                },
            )
            .map_err(store_error)
    })
    .await?;
    let more = streams.len() > limit;
    let page = &streams[..streams.len().min(limit)];
    let mut out = json!({
        "logStreams": page.iter().map(|s| stream_shape(state, &shown, s)).collect::<Vec<_>>(),
    });
    if more {
        out["nextToken"] = json!(format!("o/{}", offset + limit));
    }
    reply(&out)
}

async fn create_log_stream(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("CreateLogStream", &body, &["logGroupName", "logStreamName"])?;
    let group = group_name(input.required("logGroupName")?)?;
    let stream = stream_name(input.required("logStreamName")?)?.to_owned();
    blocking(state, move |store| {
        if store.log_group(&group).map_err(store_error)?.is_none() {
            return Err(group_not_found());
        }
        let existing = store
            .list_log_streams(
                &group,
                &StreamQuery {
                    limit: MAX_STREAMS,
                    ..StreamQuery::default()
                },
            )
            .map_err(store_error)?;
        if existing.iter().any(|s| s.name == stream) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ResourceAlreadyExistsException",
                "The specified log stream already exists",
            ));
        }
        if existing.len() >= MAX_STREAMS {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "LimitExceededException",
                format!("Resource limit exceeded: at most {MAX_STREAMS} log streams per log group"),
            ));
        }
        store
            .create_log_stream(&group, &stream, warden_types::now_millis())
            .map_err(store_error)?;
        Ok(())
    })
    .await?;
    reply(&json!({}))
}

async fn delete_log_stream(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("DeleteLogStream", &body, &["logGroupName", "logStreamName"])?;
    let group = group_name(input.required("logGroupName")?)?;
    let stream = stream_name(input.required("logStreamName")?)?.to_owned();
    blocking(state, move |store| {
        if store.log_group(&group).map_err(store_error)?.is_none() {
            return Err(group_not_found());
        }
        if !store
            .delete_log_stream(&group, &stream)
            .map_err(store_error)?
        {
            return Err(stream_not_found());
        }
        Ok(())
    })
    .await?;
    reply(&json!({}))
}

// ---- events ----

/// Whether `group` has a stream named `name` (the shortest name with a prefix sorts
/// first, so one row tells).
fn stream_exists(store: &dyn LogStore, group: &LogGroup, name: &str) -> Result<bool, ApiError> {
    Ok(store
        .list_log_streams(
            group,
            &StreamQuery {
                prefix: name,
                limit: 1,
                ..StreamQuery::default()
            },
        )
        .map_err(store_error)?
        .first()
        .is_some_and(|s| s.name == name))
}

async fn put_log_events(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "PutLogEvents",
        &body,
        &[
            "logGroupName",
            "logStreamName",
            "logEvents",
            "sequenceToken",
            "entity",
        ],
    )?;
    if input.get("entity").is_some() {
        return Err(invalid(
            "entity is not supported by Warden (it has no CloudWatch explorer to link to)",
        ));
    }
    // CloudWatch Logs ignores sequence tokens; so does Warden, as a string or not at all.
    input.string("sequenceToken")?;
    let group = group_name(input.required("logGroupName")?)?;
    let stream = stream_name(input.required("logStreamName")?)?.to_owned();
    let raw = input
        .get("logEvents")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("logEvents is required and must be a list"))?;
    if raw.is_empty() || raw.len() > MAX_BATCH_EVENTS {
        return Err(invalid(format!(
            "logEvents must hold 1 to {MAX_BATCH_EVENTS} events"
        )));
    }
    let mut events = Vec::with_capacity(raw.len());
    let mut bytes = 0usize;
    for e in raw {
        let obj = e
            .as_object()
            .ok_or_else(|| invalid("each log event must be an object"))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["timestamp", "message"].contains(&k.as_str()))
        {
            let shown: String = k.chars().take(64).collect();
            return Err(invalid(format!("`{shown}` is not a member of a log event")));
        }
        let timestamp = obj
            .get("timestamp")
            .and_then(Value::as_i64)
            .ok_or_else(|| invalid("each log event needs a timestamp (epoch milliseconds)"))?;
        let message = obj
            .get("message")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("each log event needs a message"))?;
        if message.is_empty() {
            return Err(invalid("A log event's message must not be empty"));
        }
        if message.len() > MAX_EVENT_BYTES {
            return Err(invalid(format!(
                "Log event too large: a message may hold at most {MAX_EVENT_BYTES} bytes"
            )));
        }
        bytes += message.len() + 26;
        events.push((timestamp, message.to_owned()));
    }
    if bytes > MAX_BATCH_BYTES {
        return Err(invalid(format!(
            "Log events too large: a call may carry at most {MAX_BATCH_BYTES} bytes, counting 26 bytes per event"
        )));
    }
    if events.windows(2).any(|w| w[1].0 < w[0].0) {
        return Err(invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    if let (Some(first), Some(last)) = (events.first(), events.last()) {
        if last.0 - first.0 > 24 * 3600 * 1000 {
            return Err(invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            ));
        }
    }
    let now = warden_types::now_millis();
    let rejected = blocking(state, move |store| {
        let Some(info) = store.log_group(&group).map_err(store_error)? else {
            return Err(group_not_found());
        };
        if !stream_exists(store, &group, &stream)? {
            return Err(stream_not_found());
        }
        // As CloudWatch does: events too old for the group's retention (or 14 days) and
        // too far ahead are left out and reported, the rest are stored.
        let oldest = now
            - info
                .retention_days
                .map(|d| i64::from(d) * 24 * 3600 * 1000)
                .unwrap_or(MAX_AGE_MS)
                .min(MAX_AGE_MS);
        let too_old = events.iter().rposition(|e| e.0 < oldest);
        let too_new = events.iter().position(|e| e.0 > now + MAX_AHEAD_MS);
        let start = too_old.map_or(0, |i| i + 1);
        let end = too_new.unwrap_or(events.len()).max(start);
        store
            .append_events(&group, &stream, &events[start..end], now)
            .map_err(store_error)?;
        let retention_cut = info.retention_days.is_some_and(|d| i64::from(d) < 14);
        Ok((too_old, too_new, retention_cut))
    })
    .await?;
    let mut out = json!({});
    let (too_old, too_new, retention_cut) = rejected;
    if too_old.is_some() || too_new.is_some() {
        let mut info = json!({});
        // The end index is exclusive, the start index inclusive, as CloudWatch reports.
        if let Some(i) = too_old {
            let key = if retention_cut {
                "expiredLogEventEndIndex"
            } else {
                "tooOldLogEventEndIndex"
            };
            info[key] = json!(i + 1);
        }
        if let Some(i) = too_new {
            info["tooNewLogEventStartIndex"] = json!(i);
        }
        out["rejectedLogEventsInfo"] = info;
    }
    reply(&out)
}

async fn get_log_events(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "GetLogEvents",
        &body,
        &[
            "logGroupName",
            "logGroupIdentifier",
            "logStreamName",
            "startTime",
            "endTime",
            "nextToken",
            "limit",
            "startFromHead",
            "unmask",
        ],
    )?;
    if input.boolean("unmask")? {
        return Err(invalid(
            "unmask: Warden has no data protection policies, so nothing is masked",
        ));
    }
    let group = named_group(state, &body)?;
    let stream = stream_name(input.required("logStreamName")?)?.to_owned();
    let limit = bounded(&input, "limit", 1..=10_000)?.unwrap_or(10_000) as usize;
    let start_ms = input.integer("startTime")?;
    let end_ms = input.integer("endTime")?;
    let given = input.string("nextToken")?.map(str::to_owned);
    let cursor = match given.as_deref() {
        Some(t) if t.starts_with("f/") => {
            Cursor::After(token(&input, "nextToken", "f/")?.unwrap_or(0))
        }
        Some(t) if t.starts_with("b/") => {
            Cursor::Before(token(&input, "nextToken", "b/")?.unwrap_or(0))
        }
        Some(_) => return Err(invalid("The specified nextToken is not valid.")),
        None if input.boolean("startFromHead")? => Cursor::After(0),
        None => Cursor::Before(i64::MAX),
    };
    let events = blocking(state, move |store| {
        if store.log_group(&group).map_err(store_error)?.is_none() {
            return Err(group_not_found());
        }
        if !stream_exists(store, &group, &stream)? {
            return Err(stream_not_found());
        }
        let range = EventRange {
            group: &group,
            stream: Some(&stream),
            start_ms,
            end_ms,
            cursor,
        };
        let mut events = Vec::new();
        let mut bytes = 0;
        store
            .scan_events(&range, &mut |e| {
                bytes += e.message.len() + EVENT_OVERHEAD;
                events.push(warden_control::StoredEvent::from(e));
                if events.len() >= limit || bytes >= MAX_ANSWER_BYTES {
                    Scan::Stop
                } else {
                    Scan::Continue
                }
            })
            .map_err(store_error)?;
        if matches!(cursor, Cursor::Before(_)) {
            events.reverse();
        }
        Ok(events)
    })
    .await?;
    // With no events, both tokens stay where the caller was, which is how the AWS CLI
    // knows it reached the end.
    let (forward, backward) = match (events.first(), events.last()) {
        (Some(first), Some(last)) => (format!("f/{}", last.seq), format!("b/{}", first.seq)),
        _ => match cursor {
            Cursor::After(n) => (format!("f/{n}"), format!("b/{}", n.saturating_add(1))),
            Cursor::Before(n) => (format!("f/{}", n.saturating_sub(1)), format!("b/{n}")),
        },
    };
    let out = json!({
        "events": events.iter().map(|e| json!({
            "timestamp": e.timestamp_ms,
            "message": e.message,
            "ingestionTime": e.ingestion_ms,
        })).collect::<Vec<_>>(),
        "nextForwardToken": forward,
        "nextBackwardToken": backward,
    });
    reply(&out)
}

async fn filter_log_events(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "FilterLogEvents",
        &body,
        &[
            "logGroupName",
            "logGroupIdentifier",
            "logStreamNames",
            "logStreamNamePrefix",
            "startTime",
            "endTime",
            "filterPattern",
            "nextToken",
            "limit",
            "startFromHead",
            "interleaved",
            "unmask",
        ],
    )?;
    if input.boolean("unmask")? {
        return Err(invalid(
            "unmask: Warden has no data protection policies, so nothing is masked",
        ));
    }
    // CloudWatch Logs always interleaves now and ignores the flag; so does Warden.
    input.boolean("interleaved")?;
    if input
        .get("startFromHead")
        .is_some_and(|v| v == &Value::Bool(false))
    {
        return Err(invalid(
            "startFromHead false is not supported by Warden: FilterLogEvents reads oldest first",
        ));
    }
    let group = named_group(state, &body)?;
    let names = input.strings("logStreamNames")?;
    let prefix = input.string("logStreamNamePrefix")?.map(str::to_owned);
    if !names.is_empty() && prefix.is_some() {
        return Err(invalid(
            "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
        ));
    }
    if names.len() > 100 {
        return Err(invalid("logStreamNames may name at most 100 streams"));
    }
    let limit = bounded(&input, "limit", 1..=10_000)?.unwrap_or(10_000) as usize;
    let start_ms = input.integer("startTime")?;
    // FilterLogEvents' end is inclusive.
    let end_ms = input.integer("endTime")?.map(|t| t.saturating_add(1));
    let after = token(&input, "nextToken", "s/")?.unwrap_or(0);
    let pattern = warden_logquery::filter::parse(input.string("filterPattern")?.unwrap_or(""))
        .map_err(|e| invalid(e.to_string()))?;
    let (events, next) = blocking(state, move |store| {
        if store.log_group(&group).map_err(store_error)?.is_none() {
            return Err(group_not_found());
        }
        let range = EventRange {
            group: &group,
            stream: None,
            start_ms,
            end_ms,
            cursor: Cursor::After(after),
        };
        let wanted = |stream: Option<&str>| {
            let stream = stream.unwrap_or("");
            if !names.is_empty() {
                return names.iter().any(|n| n == stream);
            }
            prefix.as_deref().is_none_or(|p| stream.starts_with(p))
        };
        let mut events = Vec::new();
        let mut scanned = 0u64;
        let mut last_seq = after;
        let mut exhausted = true;
        let mut bytes = 0;
        store
            .scan_events(&range, &mut |e| {
                scanned += 1;
                last_seq = e.seq;
                if wanted(e.stream) && pattern.matches(e.message) {
                    bytes += e.message.len() + EVENT_OVERHEAD;
                    events.push(warden_control::StoredEvent::from(e));
                }
                if events.len() >= limit || bytes >= MAX_ANSWER_BYTES || scanned >= SCAN_BUDGET {
                    exhausted = false;
                    Scan::Stop
                } else {
                    Scan::Continue
                }
            })
            .map_err(store_error)?;
        Ok((events, (!exhausted).then_some(last_seq)))
    })
    .await?;
    let mut out = json!({
        "events": events.iter().map(|e| json!({
            "logStreamName": e.stream.as_deref().unwrap_or(NO_STREAM),
            "timestamp": e.timestamp_ms,
            "message": e.message,
            "ingestionTime": e.ingestion_ms,
            "eventId": e.seq.to_string(),
        })).collect::<Vec<_>>(),
        "searchedLogStreams": [],
    });
    if let Some(seq) = next {
        out["nextToken"] = json!(format!("s/{seq}"));
    }
    reply(&out)
}

/// The stream shown for lines no instance wrote (a throttle, a failure before any
/// instance started).
pub const NO_STREAM: &str = "warden/platform";

// ---- queries ----

/// The groups a StartQuery names: `logGroupName`, `logGroupNames` or
/// `logGroupIdentifiers`, exactly one of them, 1-50 groups.
fn query_groups(state: &ApiState, body: &Value) -> Result<Vec<LogGroup>, ApiError> {
    let one = body.get("logGroupName").and_then(Value::as_str);
    let list = |name: &str| -> Result<Vec<String>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid(format!("{name} must hold strings")))
                })
                .collect(),
            Some(_) => Err(invalid(format!("{name} must be a list"))),
        }
    };
    let names = list("logGroupNames")?;
    let identifiers = list("logGroupIdentifiers")?;
    let given = usize::from(one.is_some())
        + usize::from(!names.is_empty())
        + usize::from(!identifiers.is_empty());
    if given != 1 {
        return Err(invalid(
            "Exactly one of logGroupName, logGroupNames or logGroupIdentifiers must be given.",
        ));
    }
    let groups: Vec<LogGroup> = if let Some(n) = one {
        vec![group_name(n)?]
    } else if !names.is_empty() {
        names
            .iter()
            .map(|n| group_name(n))
            .collect::<Result<_, _>>()?
    } else {
        identifiers
            .iter()
            .map(|id| named_group(state, &json!({ "logGroupIdentifier": id })))
            .collect::<Result<_, _>>()?
    };
    if groups.len() > 50 {
        return Err(invalid("A query may read at most 50 log groups"));
    }
    Ok(groups)
}

/// Query results kept for `GetQueryResults`, by query id, with who started each.
#[derive(Default)]
pub struct Queries {
    kept: Mutex<HashMap<String, KeptQuery>>,
}

struct KeptQuery {
    owner: String,
    at: Instant,
    /// GetQueryResults' answer, written once.
    body: Arc<str>,
}

impl Queries {
    fn put(&self, id: String, owner: String, result: &Value) {
        let body: Arc<str> = result.to_string().into();
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|_, q| q.at.elapsed() < QUERY_KEPT);
        let held = |kept: &HashMap<String, KeptQuery>| -> usize {
            kept.values().map(|q| q.body.len()).sum()
        };
        while kept.len() >= MAX_QUERIES
            || (!kept.is_empty() && held(&kept) + body.len() > MAX_KEPT_BYTES)
        {
            let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, q)| q.at)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            kept.remove(&oldest);
        }
        kept.insert(
            id,
            KeptQuery {
                owner,
                at: Instant::now(),
                body,
            },
        );
    }

    fn get(&self, id: &str, owner: &str) -> Option<Arc<str>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(id)
            .filter(|q| q.owner == owner && q.at.elapsed() < QUERY_KEPT)
            .map(|q| Arc::clone(&q.body))
    }
}

fn owner(request: &ApiRequest) -> String {
    request
        .principal
        .as_ref()
        .map(|p| p.arn.to_string())
        .unwrap_or_default()
}

async fn start_query(
    state: &ApiState,
    request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "StartQuery",
        &body,
        &[
            "queryLanguage",
            "logGroupName",
            "logGroupNames",
            "logGroupIdentifiers",
            "startTime",
            "endTime",
            "queryString",
            "limit",
        ],
    )?;
    match input.string("queryLanguage")? {
        None | Some("CWLI") => {}
        Some(other) => {
            return Err(invalid(format!(
                "queryLanguage {other}: Warden runs Logs Insights queries (CWLI) only"
            )))
        }
    }
    let groups = query_groups(state, &body)?;
    let start_s = input
        .integer("startTime")?
        .ok_or_else(|| invalid("startTime is required"))?;
    let end_s = input
        .integer("endTime")?
        .ok_or_else(|| invalid("endTime is required"))?;
    if end_s < start_s {
        return Err(invalid("endTime must not be before startTime"));
    }
    let limit = bounded(&input, "limit", 1..=10_000)?.map(|n| n as usize);
    let query =
        warden_logquery::insights::parse_query(input.required("queryString")?).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "MalformedQueryException",
                e.to_string(),
            )
        })?;
    let account = state.account.to_string();
    let names: Vec<String> = groups.iter().map(LogGroup::name).collect();
    let result = blocking(state, move |store| {
        for g in &groups {
            if store.log_group(g).map_err(store_error)?.is_none() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ResourceNotFoundException",
                    format!("Log group '{}' does not exist", g.name()),
                ));
            }
        }
        run_query(
            store,
            &query,
            limit,
            &account,
            &groups,
            &names,
            (
                start_s.saturating_mul(1000),
                end_s.saturating_add(1).saturating_mul(1000),
            ),
        )
    })
    .await?;
    let id = uuid::Uuid::new_v4().to_string();
    state.log_queries.put(id.clone(), owner(request), &result);
    reply(&json!({ "queryId": id }))
}

async fn get_query_results(
    state: &ApiState,
    request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "GetQueryResults",
        &body,
        &["queryId", "nextToken", "maxItems"],
    )?;
    if input.get("nextToken").is_some() || input.get("maxItems").is_some() {
        return Err(invalid(
            "nextToken and maxItems: Warden returns a query's results in one page",
        ));
    }
    let id = input.required("queryId")?;
    let body = state.log_queries.get(id, &owner(request)).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "Query does not exist or has expired",
        )
    })?;
    let mut r = http::Response::new(crate::ReplyBody::from(body.to_string()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Ok(r)
}

async fn stop_query(
    state: &ApiState,
    request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("StopQuery", &body, &["queryId"])?;
    let id = input.required("queryId")?;
    // Queries run to completion within StartQuery, so there is never one to stop.
    if state.log_queries.get(id, &owner(request)).is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "Query does not exist or has expired",
        ));
    }
    reply(&json!({ "success": false }))
}

/// Runs `query` over the groups' events in `window` (epoch milliseconds, end exclusive),
/// reading at most [`QUERY_SCAN_BUDGET`] events; the answer is GetQueryResults' shape.
fn run_query(
    store: &dyn LogStore,
    query: &warden_logquery::insights::Query,
    limit: Option<usize>,
    account: &str,
    groups: &[LogGroup],
    names: &[String],
    window: (i64, i64),
) -> Result<Value, ApiError> {
    let mut run = query.start(limit);
    let mut scanned = 0u64;
    let mut failed = None;
    for (group, name) in groups.iter().zip(names) {
        let range = EventRange {
            group,
            stream: None,
            start_ms: Some(window.0),
            end_ms: Some(window.1),
            cursor: Cursor::After(0),
        };
        store
            .scan_events(&range, &mut |e| {
                scanned += 1;
                if scanned > QUERY_SCAN_BUDGET {
                    failed = Some(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "LimitExceededException",
                        format!("The query would read more than {QUERY_SCAN_BUDGET} events; narrow its time range or its log groups"),
                    ));
                    return Scan::Stop;
                }
                let pushed = run.push(warden_logquery::insights::Event {
                    timestamp_ms: e.timestamp_ms,
                    ingestion_ms: e.ingestion_ms,
                    account_id: account,
                    log_group: name,
                    log_stream: e.stream.unwrap_or(NO_STREAM),
                    message: e.message,
                    platform: e.source == warden_control::LogSource::Platform,
                });
                match pushed {
                    Ok(()) => Scan::Continue,
                    Err(err) => {
                        failed = Some(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "LimitExceededException",
                            err.to_string(),
                        ));
                        Scan::Stop
                    }
                }
            })
            .map_err(store_error)?;
        if let Some(e) = failed.take() {
            return Err(e);
        }
    }
    let out = run.finish();
    let results: Vec<Value> = out
        .rows
        .iter()
        .map(|row| {
            Value::Array(
                row.iter()
                    .map(|(field, value)| json!({ "field": field, "value": value }))
                    .collect(),
            )
        })
        .collect();
    Ok(json!({
        "status": "Complete",
        "results": results,
        "statistics": {
            "recordsMatched": out.statistics.records_matched,
            "recordsScanned": out.statistics.records_scanned,
            "bytesScanned": out.statistics.bytes_scanned,
        },
    }))
}

/// Events one query reads at most.
pub const QUERY_SCAN_BUDGET: u64 = 10_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_cloudwatch_rules() {
        assert_eq!(
            group_name("/aws/lambda/f").unwrap(),
            LogGroup::Function(warden_types::FunctionName::new("f").unwrap())
        );
        assert_eq!(
            group_name("app#1.x").unwrap(),
            LogGroup::Custom("app#1.x".into())
        );
        for bad in ["", "a b", "a:b", "a*", &"x".repeat(513)] {
            assert_eq!(
                group_name(bad).unwrap_err().code,
                "InvalidParameterException"
            );
        }
        for bad in ["", "a:b", "a*b", "a\nb"] {
            assert!(stream_name(bad).is_err(), "{bad:?}");
        }
        assert!(stream_name("2026/12/04/[$LATEST]abc").is_ok());
    }

    #[test]
    fn queries_are_kept_for_their_owner_only_and_bounded() {
        let q = Queries::default();
        q.put("1".into(), "alice".into(), &json!({"status": "Complete"}));
        assert!(q.get("1", "alice").is_some());
        assert!(q.get("1", "bob").is_none());
        for i in 0..MAX_QUERIES + 5 {
            q.put(format!("x{i}"), "alice".into(), &json!({}));
        }
        assert_eq!(q.kept.lock().unwrap().len(), MAX_QUERIES);
        assert!(q.get("1", "alice").is_none(), "the oldest went first");
        // Large results push the oldest out to stay within the byte budget.
        let big = json!({"results": "x".repeat(MAX_KEPT_BYTES / 3)});
        for i in 0..4 {
            q.put(format!("big{i}"), "alice".into(), &big);
        }
        let held: usize = q.kept.lock().unwrap().values().map(|k| k.body.len()).sum();
        assert!(held <= MAX_KEPT_BYTES, "{held}");
        assert!(q.get("big3", "alice").is_some() && q.get("big0", "alice").is_none());
    }
}
