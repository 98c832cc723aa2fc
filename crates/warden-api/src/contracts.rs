//! Warden's own input-contract operations, under the dated path
//! `/_warden/2026-11-01/functions/NAME/input-contract` (`?Qualifier=ALIAS` for an alias's
//! own contract): `PUT` stores the document in the body, `GET` reads it back, `DELETE`
//! removes it. Each is authorized like a Lambda operation, as
//! `warden:PutFunctionInputContract`, `warden:GetFunctionInputContract` and
//! `warden:DeleteFunctionInputContract` on the function's (or alias's) ARN, so only a
//! principal granted those actions changes what events a function admits; `lambda:*`
//! does not grant them.
//!
//! And the check itself ([`admit`]), which every way an event arrives calls before the
//! engine sees the event.

use http::StatusCode;
use serde_json::json;
use warden_contract::store::{Applicable, StoreError, Stored};
use warden_types::{FunctionName, FunctionRef, Qualifier};

use crate::{empty_response, json_response, ApiError, ApiRequest, ApiState, Reply};

/// The function and the qualifier (`""` for the function's own contract) a request names.
fn subject(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<(FunctionName, String), ApiError> {
    let r = state
        .function_ref(raw)?
        .with_qualifier(request.query("Qualifier").as_deref())?;
    let qualifier = match r.qualifier {
        None => String::new(),
        Some(Qualifier::Alias(a)) => a.to_string(),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "an input contract belongs to a function or to one of its aliases; \
                 `{other}` is not an alias"
            )))
        }
    };
    Ok((r.name, qualifier))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Contract(e) => ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()),
        StoreError::LimitExceeded => ApiError::new(
            StatusCode::BAD_REQUEST,
            "LimitExceededException",
            e.to_string(),
        ),
        StoreError::Store { .. } => ApiError::internal(e),
    }
}

fn rendered(
    state: &ApiState,
    name: &FunctionName,
    qualifier: &str,
    stored: &Stored,
) -> serde_json::Value {
    let document: serde_json::Value =
        serde_json::from_str(&stored.document).unwrap_or(serde_json::Value::Null);
    let q = (!qualifier.is_empty()).then_some(qualifier);
    let mut body = json!({
        "FunctionName": name.to_string(),
        "FunctionArn": state.function_arn(name, q),
        "Contract": document,
        "LastModified": warden_types::lambda_timestamp(stored.updated_ms),
        "RefusedEvents": state.contracts.refusals(name.as_str()),
    });
    if let Some(q) = q {
        body["Qualifier"] = json!(q);
    }
    if let Err(why) = &stored.compiled {
        body["Error"] = json!(why);
    }
    body
}

/// `PUT .../input-contract`: stores the body as the contract.
pub async fn put(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let (name, qualifier) = subject(state, request, raw)?;
    state
        .must_exist(&name, (!qualifier.is_empty()).then_some(qualifier.as_str()))
        .await?;
    let contracts = state.contracts.clone();
    let body = request.body.clone();
    let (f, q) = (name.to_string(), qualifier.clone());
    // Compiling a schema and the fsync of the store are blocking work.
    let stored = tokio::task::spawn_blocking(move || contracts.put(&f, &q, &body))
        .await
        .map_err(|e| ApiError::internal(format!("storing the input contract: {e}")))?
        .map_err(store_error)?;
    tracing::info!(function = %name, qualifier = %qualifier, "input contract stored");
    Ok(json_response(
        StatusCode::OK,
        &rendered(state, &name, &qualifier, &stored),
    ))
}

/// `GET .../input-contract`.
pub async fn get(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let (name, qualifier) = subject(state, request, raw)?;
    state
        .must_exist(&name, (!qualifier.is_empty()).then_some(qualifier.as_str()))
        .await?;
    let stored = state
        .contracts
        .get(name.as_str(), &qualifier)
        .ok_or_else(|| not_found(&name, &qualifier))?;
    Ok(json_response(
        StatusCode::OK,
        &rendered(state, &name, &qualifier, &stored),
    ))
}

/// `DELETE .../input-contract`.
pub async fn delete(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let (name, qualifier) = subject(state, request, raw)?;
    state
        .must_exist(&name, (!qualifier.is_empty()).then_some(qualifier.as_str()))
        .await?;
    let contracts = state.contracts.clone();
    let (f, q) = (name.to_string(), qualifier.clone());
    let deleted = tokio::task::spawn_blocking(move || contracts.delete(&f, &q))
        .await
        .map_err(|e| ApiError::internal(format!("deleting the input contract: {e}")))?
        .map_err(store_error)?;
    if !deleted {
        return Err(not_found(&name, &qualifier));
    }
    tracing::info!(function = %name, qualifier = %qualifier, "input contract deleted");
    Ok(empty_response(StatusCode::NO_CONTENT))
}

fn not_found(name: &FunctionName, qualifier: &str) -> ApiError {
    if qualifier.is_empty() {
        ApiError::not_found(format!("Function {name} has no input contract"))
    } else {
        ApiError::not_found(format!(
            "Alias {qualifier} of function {name} has no input contract"
        ))
    }
}

/// Checks an event for `function` against the contract that applies to it (the alias's
/// own, else the function's); without one, checks only that it is JSON, as Lambda does.
/// A refusal names each failing location, never more than a short escaped excerpt of a
/// value, is counted for the function and logged without the payload.
pub fn admit(state: &ApiState, function: &FunctionRef, payload: &[u8]) -> Result<(), ApiError> {
    let alias = match &function.qualifier {
        Some(Qualifier::Alias(a)) => Some(a.as_str()),
        _ => None,
    };
    match state.contracts.applicable(function.name.as_str(), alias) {
        Applicable::None => check_json(payload),
        Applicable::Contract(contract) => contract.check_event(payload).map_err(|violations| {
            state.count_contract_refusal(function.name.as_str());
            tracing::info!(
                function = %function.name,
                violations = violations.len(),
                "event refused by the function's input contract"
            );
            ApiError::bad_content(format!(
                "The event does not meet the function's input contract: {violations}"
            ))
        }),
        Applicable::Broken(why) => {
            state.count_contract_refusal(function.name.as_str());
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                format!(
                    "The function's stored input contract no longer compiles ({why}); \
                     events are refused until it is replaced"
                ),
            ))
        }
    }
}

/// Lambda requires event payloads to be JSON; an empty body is allowed.
fn check_json(body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| {
            ApiError::bad_content(format!(
                "Could not parse request body into json: Could not parse payload into json: {e}"
            ))
        })
}
