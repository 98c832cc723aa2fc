//! Alias operations.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use warden_store::Alias;
use warden_types::{AliasName, FunctionName, LATEST};

use crate::shape;
use crate::{
    blocking, empty_response, json_response, parse_body, ApiError, ApiRequest, ApiState, Reply,
};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoutingInput {
    additional_version_weights: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasInput {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingInput>,
    revision_id: Option<String>,
}

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

fn routing(input: Option<RoutingInput>) -> Result<Option<(String, f64)>, ApiError> {
    let Some(weights) = input.and_then(|r| r.additional_version_weights) else {
        return Ok(None);
    };
    match weights.len() {
        0 => Ok(None),
        1 => {
            let (version, weight) = weights
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::invalid("empty routing"))?;
            if !(0.0..=1.0).contains(&weight) {
                return Err(ApiError::invalid(format!(
                    "routing weight `{weight}` must be between 0.0 and 1.0"
                )));
            }
            if version.parse::<u64>().is_err() {
                return Err(ApiError::invalid(format!(
                    "routing version `{version}` must be a published version number"
                )));
            }
            Ok(Some((version, weight)))
        }
        _ => Err(ApiError::invalid(
            "an alias can route to at most one additional version",
        )),
    }
}

/// Checks that every version an alias points at exists.
async fn check_versions(
    state: &ApiState,
    function: &FunctionName,
    versions: Vec<String>,
) -> Result<(), ApiError> {
    let store = Arc::clone(&state.store);
    let f = function.clone();
    let missing = blocking(move || {
        if store
            .get_version(&f, LATEST)
            .map_err(ApiError::from)?
            .is_none()
        {
            return Ok(Some(None));
        }
        for v in versions {
            if store.get_version(&f, &v).map_err(ApiError::from)?.is_none() {
                return Ok(Some(Some(v)));
            }
        }
        Ok(None)
    })
    .await?;
    match missing {
        None => Ok(()),
        Some(None) => Err(ApiError::not_found(format!(
            "Function not found: {}",
            state.function_arn(function, None)
        ))),
        Some(Some(v)) => Err(ApiError::not_found(format!(
            "Function not found: {}",
            state.function_arn(function, Some(&v))
        ))),
    }
}

pub async fn create(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let input: AliasInput = parse_body(&request.body)?;
    let name = alias_name(
        &input
            .name
            .ok_or_else(|| ApiError::invalid("Name is required"))?,
    )?;
    let version = input
        .function_version
        .ok_or_else(|| ApiError::invalid("FunctionVersion is required"))?;
    let description = input.description.unwrap_or_default();
    shape::validate_description(&description)?;
    let routing = routing(input.routing_config)?;
    let mut versions = vec![version.clone()];
    versions.extend(routing.iter().map(|(v, _)| v.clone()));
    check_versions(state, &function, versions).await?;
    let alias = Alias {
        function: function.clone(),
        name: name.to_string(),
        function_version: version,
        description,
        routing,
        revision_id: uuid::Uuid::new_v4().to_string(),
    };
    let store = Arc::clone(&state.store);
    let a = alias.clone();
    let arn = state.function_arn(&function, Some(&alias.name));
    blocking(move || {
        store.create_alias(&a).map_err(|e| match e {
            warden_store::StoreError::AlreadyExists(_) => {
                ApiError::conflict(format!("Alias already exists: {arn}"))
            }
            other => other.into(),
        })
    })
    .await?;
    state.engine.invalidate(&function);
    Ok(json_response(
        StatusCode::CREATED,
        &shape::alias(state, &alias),
    ))
}

async fn load(
    state: &ApiState,
    function: &FunctionName,
    name: &AliasName,
) -> Result<Alias, ApiError> {
    let store = Arc::clone(&state.store);
    let (f, n) = (function.clone(), name.to_string());
    let found = blocking(move || store.get_alias(&f, &n).map_err(ApiError::from)).await?;
    found.ok_or_else(|| {
        ApiError::not_found(format!(
            "Cannot find alias arn: {}",
            state.function_arn(function, Some(name.as_str()))
        ))
    })
}

pub async fn get(state: &ApiState, raw: &str, alias: &str) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let a = load(state, &function, &alias_name(alias)?).await?;
    Ok(json_response(StatusCode::OK, &shape::alias(state, &a)))
}

pub async fn update(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
    alias: &str,
) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let name = alias_name(alias)?;
    let input: AliasInput = parse_body(&request.body)?;
    let mut a = load(state, &function, &name).await?;
    if let Some(expected) = &input.revision_id {
        if *expected != a.revision_id {
            return Err(ApiError::precondition());
        }
    }
    if let Some(v) = input.function_version {
        a.function_version = v;
    }
    if let Some(d) = input.description {
        shape::validate_description(&d)?;
        a.description = d;
    }
    if input.routing_config.is_some() {
        a.routing = routing(input.routing_config)?;
    }
    let mut versions = vec![a.function_version.clone()];
    versions.extend(a.routing.iter().map(|(v, _)| v.clone()));
    check_versions(state, &function, versions).await?;
    let previous = a.revision_id.clone();
    a.revision_id = uuid::Uuid::new_v4().to_string();
    let store = Arc::clone(&state.store);
    let updated = a.clone();
    blocking(move || {
        store
            .update_alias(&updated, Some(&previous))
            .map_err(ApiError::from)
    })
    .await?;
    state.engine.invalidate(&function);
    Ok(json_response(StatusCode::OK, &shape::alias(state, &a)))
}

pub async fn delete(state: &ApiState, raw: &str, alias: &str) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let name = alias_name(alias)?;
    let store = Arc::clone(&state.store);
    let (f, n) = (function.clone(), name.to_string());
    // Lambda answers 204 whether or not the alias existed.
    blocking(move || store.delete_alias(&f, &n).map_err(ApiError::from)).await?;
    state.engine.invalidate(&function);
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub async fn list(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let function = function_name(state, raw)?;
    let max = shape::max_items(request.query("MaxItems"))?;
    let marker = request.query("Marker").filter(|m| !m.is_empty());
    let version = request.query("FunctionVersion");
    check_versions(state, &function, Vec::new()).await?;
    let store = Arc::clone(&state.store);
    let f = function.clone();
    let page = blocking(move || {
        store
            .list_aliases(&f, version.as_deref(), marker.as_deref(), max + 1)
            .map_err(ApiError::from)
    })
    .await?;
    let next = (page.len() > max).then(|| page[max - 1].name.clone());
    let aliases: Vec<Value> = page
        .iter()
        .take(max)
        .map(|a| shape::alias(state, a))
        .collect();
    let mut body = json!({ "Aliases": aliases });
    if let Some(n) = next {
        body["NextMarker"] = n.into();
    }
    Ok(json_response(StatusCode::OK, &body))
}
