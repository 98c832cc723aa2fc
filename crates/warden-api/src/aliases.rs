//! Alias operations: input shapes to the core's alias commands, `AliasConfiguration` out.
//! Callers need the operation's action (`lambda:CreateAlias`, ...) on the function.

use http::StatusCode;

use warden_control::commands::{CreateAlias, DeleteAlias, Routing, UpdateAlias};
use warden_types::{AliasName, Description, FunctionName};

use crate::caller::RequestCaller;
use crate::shape::{self, CreateAliasInput, RoutingInput, UpdateAliasInput};
use crate::{empty_response, json_response, parse_body, ApiError, ApiRequest, ApiState, Reply};

fn function_name(state: &ApiState, raw: &str) -> Result<FunctionName, ApiError> {
    let r = state.function_ref(raw)?;
    if r.qualifier.is_some() {
        return Err(ApiError::invalid(format!(
            "`{raw}` must not include a qualifier for this operation"
        )));
    }
    Ok(r.name)
}

fn alias_name(raw: &str) -> Result<AliasName, ApiError> {
    AliasName::new(raw).map_err(ApiError::from)
}

/// `RoutingConfig`: no weights (or an empty map) is no routing; one entry is one routing
/// version; more are refused.
fn routing(input: Option<RoutingInput>) -> Result<Option<Routing>, ApiError> {
    let Some(weights) = input.and_then(|r| r.additional_version_weights) else {
        return Ok(None);
    };
    let mut entries = weights.into_iter();
    match (entries.next(), entries.next()) {
        (None, _) => Ok(None),
        (Some((version, weight)), None) => Ok(Some(Routing::new(&version, weight)?)),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "an alias can route to at most one additional version",
        )),
    }
}

/// `CreateAlias`: the alias's version (and routing version) must exist.
pub async fn create(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let input: CreateAliasInput = parse_body(&request.body)?;
    let name = alias_name(
        &input
            .name
            .ok_or_else(|| ApiError::invalid("Name is required"))?,
    )?;
    let function_version = input
        .function_version
        .ok_or_else(|| ApiError::invalid("FunctionVersion is required"))?;
    let description = Description::new(input.description.as_deref().unwrap_or_default())?;
    let command = CreateAlias {
        function,
        name,
        function_version,
        description,
        routing: routing(input.routing_config)?,
    };
    let alias = state
        .control
        .create_alias(command, &RequestCaller::new(state, request))
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &shape::alias(state, &alias),
    ))
}

/// `GetAlias`: changes nothing.
pub async fn get(state: &ApiState, raw: &str, alias: &str) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let a = state
        .control
        .get_alias(&function, &alias_name(alias)?)
        .await?;
    Ok(json_response(StatusCode::OK, &shape::alias(state, &a)))
}

/// `UpdateAlias`: changes the alias's version, description or routing.
pub async fn update(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
    alias: &str,
) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let name = alias_name(alias)?;
    let input: UpdateAliasInput = parse_body(&request.body)?;
    let command = UpdateAlias {
        function,
        name,
        function_version: input.function_version,
        description: input
            .description
            .as_deref()
            .map(Description::new)
            .transpose()?,
        routing: match input.routing_config {
            Some(r) => Some(routing(Some(r))?),
            None => None,
        },
        revision_id: input.revision_id,
    };
    let a = state
        .control
        .update_alias(command, &RequestCaller::new(state, request))
        .await?;
    Ok(json_response(StatusCode::OK, &shape::alias(state, &a)))
}

/// `DeleteAlias`: Lambda answers 204 whether or not the alias existed.
pub async fn delete(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
    alias: &str,
) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let name = alias_name(alias)?;
    state
        .control
        .delete_alias(
            DeleteAlias { function, name },
            &RequestCaller::new(state, request),
        )
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `ListAliases`: changes nothing.
pub async fn list(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let wanted = shape::page_request(request)?;
    let version = request.query("FunctionVersion");
    let page = state
        .control
        .list_aliases(&function, version, wanted.marker, wanted.max_items)
        .await?;
    let body = shape::page_output("Aliases", page.map(|a| shape::alias(state, &a)));
    Ok(json_response(StatusCode::OK, &body))
}
