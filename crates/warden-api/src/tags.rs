//! Tag operations: `TagResource`, `UntagResource`, `ListTags` under
//! `/2017-03-31/tags/{ARN}`. Tags belong to a function (not to a version or alias), so the
//! resource must be an unqualified function ARN. Callers need `lambda:TagResource`,
//! `lambda:UntagResource` or `lambda:ListTags` on the function (`access::targets`); the
//! first two change the function's tags and nothing else.

use http::StatusCode;
use serde_json::json;
use warden_control::commands::{TagFunction, UntagFunction};
use warden_types::{FunctionName, Tags};

use crate::caller::RequestCaller;
use crate::shape::TagResourceInput;
use crate::{empty_response, json_response, parse_body, ApiError, ApiRequest, ApiState, Reply};

/// The function a tag resource ARN names.
fn function_of(state: &ApiState, arn: &str) -> Result<FunctionName, ApiError> {
    if !arn.starts_with("arn:") || !arn.contains(":function:") {
        return Err(ApiError::invalid(format!(
            "`{}` is not a function ARN; Warden can tag only functions",
            arn.chars().take(256).collect::<String>()
        )));
    }
    let r = state.function_ref(arn)?;
    if r.qualifier.is_some() {
        return Err(ApiError::invalid(
            "Tags apply to the function, not to its versions or aliases; use the unqualified function ARN",
        ));
    }
    Ok(r.name)
}

/// `TagResource`: adds tags, replacing the values of keys the function has; at most 50 in
/// all, keys and values within Lambda's limits, no `aws:` keys.
pub async fn tag(state: &ApiState, request: &ApiRequest, arn: &str) -> Result<Reply, ApiError> {
    let function = function_of(state, arn)?;
    let input: TagResourceInput = parse_body(&request.body)?;
    let tags = input
        .tags
        .ok_or_else(|| ApiError::invalid("Tags is required"))?;
    let tags = Tags::new(tags).map_err(warden_types::ConfigError::from)?;
    state
        .control
        .tag_function(
            TagFunction { function, tags },
            &RequestCaller::new(state, request),
        )
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `UntagResource`: removes the tags named by every `tagKeys` query parameter.
pub async fn untag(state: &ApiState, request: &ApiRequest, arn: &str) -> Result<Reply, ApiError> {
    let function = function_of(state, arn)?;
    let keys: Vec<String> = crate::routes::query_params(request.parts.uri.query())
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    if keys.is_empty() {
        return Err(ApiError::invalid("TagKeys is required"));
    }
    for k in &keys {
        warden_types::tags::check_key(k).map_err(warden_types::ConfigError::from)?;
    }
    state
        .control
        .untag_function(
            UntagFunction { function, keys },
            &RequestCaller::new(state, request),
        )
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `ListTags`: the function's tags; changes nothing.
pub async fn list(state: &ApiState, arn: &str) -> Result<Reply, ApiError> {
    let function = function_of(state, arn)?;
    let tags = state.control.list_tags(&function).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "Tags": tags.as_map() }),
    ))
}
