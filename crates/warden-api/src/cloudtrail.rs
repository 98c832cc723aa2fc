//! CloudTrail (`cloudtrail`, JSON 1.1): the audit trail read back.
//!
//! Warden keeps one trail, `warden`, which records every API call (see [`crate::audit`]);
//! it cannot be created, deleted, stopped or redirected, so only its reads are served:
//! - `LookupEvents` (`cloudtrail:LookupEvents` on `*`, as on AWS): one lookup attribute,
//!   a time range, pages of at most 50, newest first. `EventCategory: insight` is refused
//!   by name (Warden has no Insights); so is the `ResourceType` attribute. Besides
//!   CloudTrail's keys, `PrincipalArn` matches the caller's full ARN.
//! - `DescribeTrails`, `GetTrail`, `GetTrailStatus` (`cloudtrail:<Operation>` on the trail's
//!   ARN): the trail, whether it records data events, and when the last digest was
//!   signed.
//! - `PublishDigest` (Warden's own, `cloudtrail:PublishDigest` on the trail's ARN): signs a
//!   digest of everything recorded so far and returns it, as the periodic digests are.
//!
//! Who may call them: any principal whose identity policies allow the action (an
//! administrator's do); nothing here changes a recorded event.

use serde_json::{json, Value};
use warden_audit::lookup::{LookupAttribute, LookupQuery, MAX_RESULTS};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{json_op, JsonOperation, JsonService};
use crate::error::JsonVersion;
use crate::kms::{reply, Input};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// CloudTrail (`cloudtrail`).
pub static CLOUDTRAIL: JsonService = JsonService {
    signing_name: "cloudtrail",
    target_prefix: "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101",
    version: JsonVersion::V1_1,
    operations: OPERATIONS,
    max_body: 64 * 1024,
};

/// The one trail's name.
pub const TRAIL: &str = "warden";

const OPERATIONS: &[JsonOperation] = &[
    json_op!("LookupEvents", any_target, lookup_events),
    json_op!("DescribeTrails", trail_target, describe_trails),
    json_op!("GetTrail", trail_target, get_trail),
    json_op!("GetTrailStatus", trail_target, get_trail_status),
    json_op!("PublishDigest", trail_target, publish_digest),
];

fn error(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(http::StatusCode::BAD_REQUEST, code, message)
}

fn trail_arn(state: &ApiState) -> String {
    format!(
        "arn:aws:cloudtrail:{}:{}:trail/{TRAIL}",
        state.region, state.account
    )
}

fn any_target(
    _state: &ApiState,
    operation: &str,
    _body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(vec![Target {
        action: format!("cloudtrail:{operation}"),
        resource: "*".into(),
        ..Target::default()
    }])
}

fn trail_target(
    state: &ApiState,
    operation: &str,
    _body: &Value,
    _principal: Option<&Principal>,
) -> Result<Vec<Target>, ApiError> {
    Ok(vec![Target {
        action: format!("cloudtrail:{operation}"),
        resource: trail_arn(state),
        ..Target::default()
    }])
}

fn attribute(input: &Input<'_>) -> Result<Option<LookupAttribute>, ApiError> {
    let Some(list) = input.get("LookupAttributes") else {
        return Ok(None);
    };
    let items = list
        .as_array()
        .ok_or_else(|| ApiError::serialization("LookupAttributes must be a list"))?;
    let bad = |m: String| error("InvalidLookupAttributesException", m);
    match items.as_slice() {
        [] => Ok(None),
        [one] => {
            let key = one.get("AttributeKey").and_then(Value::as_str);
            let value = one.get("AttributeValue").and_then(Value::as_str);
            let (Some(key), Some(value)) = (key, value) else {
                return Err(bad(
                    "a lookup attribute needs an AttributeKey and an AttributeValue".into(),
                ));
            };
            if value.is_empty() || value.len() > 2000 {
                return Err(bad(
                    "AttributeValue must be 1 to 2000 characters long".into()
                ));
            }
            let v = value.to_owned();
            Ok(Some(match key {
                "EventId" => LookupAttribute::EventId(v),
                "EventName" => LookupAttribute::EventName(v),
                "EventSource" => LookupAttribute::EventSource(v),
                "Username" => LookupAttribute::Username(v),
                "PrincipalArn" => LookupAttribute::PrincipalArn(v),
                "ResourceName" => LookupAttribute::ResourceName(v),
                "AccessKeyId" => LookupAttribute::AccessKeyId(v),
                "ReadOnly" => match value {
                    "true" => LookupAttribute::ReadOnly(true),
                    "false" => LookupAttribute::ReadOnly(false),
                    _ => return Err(bad("ReadOnly must be `true` or `false`".into())),
                },
                "ResourceType" => {
                    return Err(bad(
                        "Warden does not look events up by ResourceType; use ResourceName".into(),
                    ))
                }
                other => {
                    let shown: String = other.chars().take(64).collect();
                    return Err(bad(format!("`{shown}` is not a lookup attribute key")));
                }
            }))
        }
        _ => Err(bad("LookupEvents takes at most one lookup attribute".into())),
    }
}

async fn lookup_events(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "LookupEvents",
        &body,
        &[
            "LookupAttributes",
            "StartTime",
            "EndTime",
            "EventCategory",
            "MaxResults",
            "NextToken",
        ],
    )?;
    if let Some(category) = input.string("EventCategory")? {
        let shown: String = category.chars().take(64).collect();
        return Err(error(
            "InvalidEventCategoryException",
            format!("EventCategory `{shown}` is not served: Warden records no Insights events"),
        ));
    }
    let max_results = match input.integer("MaxResults")? {
        None => None,
        Some(n) if (1..=i64::from(MAX_RESULTS)).contains(&n) => Some(n as u32),
        Some(n) => {
            return Err(error(
                "InvalidMaxResultsException",
                format!("MaxResults must be between 1 and {MAX_RESULTS}, not {n}"),
            ))
        }
    };
    let query = LookupQuery {
        attribute: attribute(&input)?,
        start_ms: input.epoch_ms("StartTime")?,
        end_ms: input.epoch_ms("EndTime")?,
        max_results,
        next_token: input.string("NextToken")?.map(str::to_owned),
    };
    if let (Some(s), Some(e)) = (query.start_ms, query.end_ms) {
        if s > e {
            return Err(error(
                "InvalidTimeRangeException",
                "StartTime must not be after EndTime",
            ));
        }
    }
    let store = state.audit.store().clone();
    let page = tokio::task::spawn_blocking(move || store.reader().and_then(|r| r.lookup(&query)))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            warden_audit::Error::InvalidNextToken => {
                error("InvalidNextTokenException", e.to_string())
            }
            warden_audit::Error::InvalidLookup(m) => error("InvalidLookupAttributesException", m),
            other => ApiError::internal(other),
        })?;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|found| {
            let e = &found.event;
            let time = warden_audit::event::parse_event_time(&e.event_time).unwrap_or(0);
            let mut shape = json!({
                "EventId": e.event_id,
                "EventName": e.event_name,
                "ReadOnly": e.read_only.to_string(),
                "EventTime": time as f64 / 1000.0,
                "EventSource": e.event_source,
                "Resources": e.resources.iter().map(|r| json!({
                    "ResourceType": r.kind,
                    "ResourceName": r.arn,
                })).collect::<Vec<_>>(),
                "CloudTrailEvent": found.raw,
            });
            if let Some(key) = &e.user_identity.access_key_id {
                shape["AccessKeyId"] = json!(key);
            }
            if let Some(name) = e.user_identity.lookup_name() {
                shape["Username"] = json!(name);
            }
            shape
        })
        .collect();
    let mut out = json!({ "Events": events });
    if let Some(token) = page.next_token {
        out["NextToken"] = json!(token);
    }
    reply(&out)
}

/// The trail names a request may use for the one trail: its name or its ARN.
fn is_trail(state: &ApiState, name: &str) -> bool {
    name == TRAIL || name == trail_arn(state)
}

fn trail_shape(state: &ApiState) -> Value {
    json!({
        "Name": TRAIL,
        "HomeRegion": state.region.as_str(),
        "TrailARN": trail_arn(state),
        "IncludeGlobalServiceEvents": true,
        "IsMultiRegionTrail": false,
        "IsOrganizationTrail": false,
        "LogFileValidationEnabled": true,
        "HasCustomEventSelectors": state.audit.data_events(),
        "HasInsightSelectors": false,
    })
}

fn trail_not_found(name: &str) -> ApiError {
    let shown: String = name.chars().take(256).collect();
    error(
        "TrailNotFoundException",
        format!("Unknown trail: {shown}. Warden keeps one trail, `{TRAIL}`."),
    )
}

async fn describe_trails(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new(
        "DescribeTrails",
        &body,
        &["trailNameList", "includeShadowTrails"],
    )?;
    let names = input.strings("trailNameList")?;
    let list = if names.is_empty() || names.iter().any(|n| is_trail(state, n)) {
        vec![trail_shape(state)]
    } else {
        Vec::new()
    };
    reply(&json!({ "trailList": list }))
}

async fn get_trail(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("GetTrail", &body, &["Name"])?;
    let name = input.required("Name")?;
    if !is_trail(state, name) {
        return Err(trail_not_found(name));
    }
    reply(&json!({ "Trail": trail_shape(state) }))
}

async fn get_trail_status(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    let input = Input::new("GetTrailStatus", &body, &["Name"])?;
    let name = input.required("Name")?;
    if !is_trail(state, name) {
        return Err(trail_not_found(name));
    }
    let store = state.audit.store().clone();
    let (latest, size) = tokio::task::spawn_blocking(move || {
        let reader = store.reader()?;
        Ok::<_, warden_audit::Error>((reader.latest_digest()?, reader.size()?))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let mut out = json!({
        "IsLogging": true,
        "EventsRecorded": size,
    });
    if let Some(d) = latest {
        out["LatestDigestDeliveryTime"] = json!(d.time as f64 / 1000.0);
        out["LatestDigestTreeSize"] = json!(d.tree_size);
    }
    reply(&out)
}

async fn publish_digest(
    state: &ApiState,
    _request: &ApiRequest,
    body: Value,
) -> Result<Reply, ApiError> {
    Input::new("PublishDigest", &body, &[])?;
    let digest = state
        .audit
        .recorder()
        .publish_digest_async()
        .await
        .map_err(ApiError::internal)?;
    let value: Value = serde_json::from_slice(&digest.to_json()).map_err(ApiError::internal)?;
    reply(&json!({ "Digest": value }))
}
