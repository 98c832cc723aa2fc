//! Function resource policies on the wire: `AddPermission`, `RemovePermission`,
//! `GetPolicy`. What a function policy can grant, and the statements it holds, are the
//! control plane's ([`warden_control::policy`]); authorization reads [`grantable`] from
//! here.

use http::StatusCode;
use serde_json::json;
use warden_control::commands::{AddPermission, RemovePermission};
use warden_types::{FunctionName, StatementId};

use crate::caller::RequestCaller;
use crate::shape::{refuse, AddPermissionInput};
use crate::{empty_response, json_response, parse_body, ApiError, ApiRequest, ApiState, Reply};

pub use warden_control::policy::grantable;

/// Checks AddPermission's `Action` (the core's rule, as the API answers it).
fn check_action(action: &str) -> Result<(), ApiError> {
    warden_control::policy::check_action(action).map_err(ApiError::from)
}

fn name_of(state: &ApiState, raw: &str, request: &ApiRequest) -> Result<FunctionName, ApiError> {
    let r = state
        .function_ref(raw)?
        .with_qualifier(request.query("Qualifier").as_deref())?;
    if r.qualifier.is_some() {
        return Err(ApiError::invalid("resource policies on versions and aliases are not supported by Warden; use the unqualified function"));
    }
    Ok(r.name)
}

/// `AddPermission`: callers need `lambda:AddPermission` on the function. Adds one
/// statement, which can grant only
/// [`warden_control::policy::GRANTABLE_ACTIONS`], to the principal it names (`*`
/// lets unsigned callers invoke and nothing else).
pub async fn add_permission(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let function = name_of(state, raw, request)?;
    let input: AddPermissionInput = parse_body(&request.body)?;
    let statement_id = StatementId::new(
        &input
            .statement_id
            .ok_or_else(|| ApiError::invalid("StatementId is required"))?,
    )?;
    let action = input
        .action
        .ok_or_else(|| ApiError::invalid("Action is required"))?;
    check_action(&action)?;
    let function_url_auth_type = match input.function_url_auth_type {
        None => None,
        Some(serde_json::Value::String(t)) => Some(t),
        Some(_) => return Err(ApiError::invalid("FunctionUrlAuthType must be a string")),
    };
    if input.invoked_via_function_url == Some(true) {
        return Err(crate::shape::unsupported(
            "InvokedViaFunctionUrl",
            "function policies cannot tell how an invocation arrived",
        ));
    }
    refuse(
        "EventSourceToken",
        &input.event_source_token,
        "there are no Alexa event sources",
    )?;
    let principal = input
        .principal
        .ok_or_else(|| ApiError::invalid("Principal is required"))?;
    let command = AddPermission {
        function,
        statement_id,
        action,
        principal,
        source_arn: input.source_arn,
        source_account: input.source_account,
        principal_org_id: input.principal_org_id,
        function_url_auth_type,
        revision_id: input.revision_id,
    };
    let statement = state
        .control
        .add_permission(command, &RequestCaller::new(state, request))
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "Statement": statement.to_string() }),
    ))
}

/// `RemovePermission`: callers need `lambda:RemovePermission` on the function.
pub async fn remove_permission(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
    sid: &str,
) -> Result<Reply, ApiError> {
    let function = name_of(state, raw, request)?;
    state
        .control
        .remove_permission(
            RemovePermission {
                function,
                statement_id: sid.to_owned(),
                revision_id: request.query("RevisionId"),
            },
            &RequestCaller::new(state, request),
        )
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `GetPolicy`: callers need `lambda:GetPolicy` on the function; changes nothing.
pub async fn get_policy(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let function = name_of(state, raw, request)?;
    let view = state.control.get_policy(&function).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "Policy": view.policy.to_string(), "RevisionId": view.revision_id }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_action_is_answered_as_lambda_answers_it() {
        // Which actions a function policy may grant is the control plane's rule, tested
        // there; the API only answers its refusal in Lambda's words.
        assert!(check_action("lambda:InvokeFunction").is_ok());
        let e = check_action("lambda:UpdateFunctionConfiguration").unwrap_err();
        assert_eq!(e.code, "InvalidParameterValueException");
    }

    #[test]
    fn only_grantable_actions_are_read_from_function_policies() {
        assert!(grantable("lambda:InvokeFunction"));
        assert!(grantable("lambda:getfunctionconfiguration"));
        for not in [
            "lambda:UpdateFunctionConfiguration",
            "lambda:AddPermission",
            "lambda:RemovePermission",
            "lambda:CreateFunction",
            "lambda:ListFunctions",
            "lambda:*",
            "logs:GetLogEvents",
            "iam:PassRole",
        ] {
            assert!(!grantable(not), "{not}");
        }
    }
}
