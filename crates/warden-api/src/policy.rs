//! Function resource policies: `AddPermission`, `RemovePermission`, `GetPolicy`, with the
//! statement shapes Lambda writes.
//!
//! A function policy can grant only the operations Lambda lets one grant
//! ([`GRANTABLE_ACTIONS`]): invoking, reading, code and alias management, concurrency.
//! Never configuration changes (which include the execution role) or permissions
//! themselves: AddPermission refuses any other action, and [`grantable`] keeps a stored
//! statement from granting more however it was written.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use warden_iam::{Policy, PolicyKind};
use warden_types::FunctionName;

use crate::{
    blocking, empty_response, json_response, parse_body, ApiError, ApiRequest, ApiState, Reply,
};

/// The actions a function policy can grant: the operations on functions that Lambda
/// supports through resource-based policies (its developer guide lists them as the
/// cross-account APIs: Invoke, GetFunction, GetFunctionConfiguration, UpdateFunctionCode,
/// DeleteFunction, PublishVersion, ListVersionsByFunction, CreateAlias, GetAlias,
/// ListAliases, UpdateAlias, DeleteAlias, GetPolicy, PutFunctionConcurrency,
/// DeleteFunctionConcurrency, ListTags, TagResource, UntagResource). Lambda does not honour
/// `UpdateFunctionConfiguration`, `AddPermission` or `RemovePermission` in a function
/// policy; neither does Warden, since the first changes the role the function runs as and
/// the others hand out further permissions.
pub const GRANTABLE_ACTIONS: &[&str] = &[
    "lambda:InvokeFunction",
    "lambda:GetFunction",
    "lambda:GetFunctionConfiguration",
    "lambda:UpdateFunctionCode",
    "lambda:DeleteFunction",
    "lambda:PublishVersion",
    "lambda:ListVersionsByFunction",
    "lambda:CreateAlias",
    "lambda:GetAlias",
    "lambda:ListAliases",
    "lambda:UpdateAlias",
    "lambda:DeleteAlias",
    "lambda:GetPolicy",
    "lambda:PutFunctionConcurrency",
    "lambda:DeleteFunctionConcurrency",
    "lambda:ListTags",
    "lambda:TagResource",
    "lambda:UntagResource",
];

/// Whether a function policy may grant `action` (an operation's IAM action, such as
/// `lambda:GetFunction`; IAM matches actions ignoring case). Authorization consults a
/// function's policy only for these, so a stored statement naming `*`, `lambda:*` or any
/// other action never grants more.
pub fn grantable(action: &str) -> bool {
    GRANTABLE_ACTIONS
        .iter()
        .any(|a| a.eq_ignore_ascii_case(action))
}

/// Checks AddPermission's `Action`: `*`, `lambda:*` (both meaning every grantable action,
/// as in Lambda) or one grantable action.
fn check_action(action: &str) -> Result<(), ApiError> {
    if action == "*" || action.eq_ignore_ascii_case("lambda:*") || grantable(action) {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "The action {action} cannot be granted by a function policy. A function policy can grant `lambda:*` or one of: {}.",
        GRANTABLE_ACTIONS.join(", ")
    )))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddPermissionInput {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    source_arn: Option<String>,
    source_account: Option<String>,
    principal_org_id: Option<String>,
    revision_id: Option<String>,
    /// Function URLs and Alexa event source tokens do not exist in Warden: refused.
    function_url_auth_type: Option<Value>,
    event_source_token: Option<Value>,
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

async fn load(state: &ApiState, name: &FunctionName) -> Result<Option<Value>, ApiError> {
    let store = Arc::clone(&state.store);
    let n = name.clone();
    let exists = {
        let store = Arc::clone(&state.store);
        let n = name.clone();
        blocking(move || {
            store
                .get_version(&n, warden_types::LATEST)
                .map_err(ApiError::from)
        })
        .await?
        .is_some()
    };
    if !exists {
        return Err(ApiError::not_found(format!(
            "Function not found: {}",
            state.function_arn(name, None)
        )));
    }
    let doc = blocking(move || store.get_function_policy(&n).map_err(ApiError::from)).await?;
    doc.map(|d| serde_json::from_str(&d).map_err(ApiError::internal))
        .transpose()
}

async fn save(
    state: &ApiState,
    name: &FunctionName,
    policy: Option<Value>,
) -> Result<(), ApiError> {
    let store = Arc::clone(&state.store);
    let n = name.clone();
    let text = policy.map(|p| p.to_string());
    blocking(move || {
        store
            .put_function_policy(&n, text.as_deref())
            .map_err(ApiError::from)
    })
    .await?;
    state.access.invalidate(name);
    Ok(())
}

/// A revision id of the policy: a hash of its text, so it changes exactly when it does.
fn revision(policy: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    policy.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn principal_json(p: &str) -> Result<Value, ApiError> {
    if p == "*" {
        return Ok(json!("*"));
    }
    if p.ends_with(".amazonaws.com") || p.ends_with(".amazonaws.com.cn") {
        return Ok(json!({ "Service": p }));
    }
    if (p.len() == 12 && p.chars().all(|c| c.is_ascii_digit())) || p.starts_with("arn:") {
        return Ok(json!({ "AWS": p }));
    }
    Err(ApiError::invalid(format!(
        "Principal `{p}` must be `*`, an account id, an IAM ARN or a service principal"
    )))
}

/// AddPermission: adds one statement to the function's policy. Callers need
/// `lambda:AddPermission` on the function; the statement can grant only
/// [`GRANTABLE_ACTIONS`], to the principal it names (`*` lets unsigned callers invoke and
/// nothing else).
pub async fn add_permission(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = name_of(state, raw, request)?;
    let input: AddPermissionInput = parse_body(&request.body)?;
    let sid = input
        .statement_id
        .ok_or_else(|| ApiError::invalid("StatementId is required"))?;
    if sid.is_empty()
        || sid.len() > 100
        || !sid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::invalid(format!(
            "StatementId `{sid}` must be 1-100 of letters, digits, `-` and `_`"
        )));
    }
    let action = input
        .action
        .ok_or_else(|| ApiError::invalid("Action is required"))?;
    check_action(&action)?;
    if input.function_url_auth_type.is_some() {
        return Err(ApiError::invalid(
            "FunctionUrlAuthType is not supported by Warden, which has no function URLs",
        ));
    }
    if input.event_source_token.is_some() {
        return Err(ApiError::invalid(
            "EventSourceToken is not supported by Warden",
        ));
    }
    let principal = principal_json(
        &input
            .principal
            .ok_or_else(|| ApiError::invalid("Principal is required"))?,
    )?;
    let mut statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": state.function_arn(&name, None),
    });
    let mut condition = serde_json::Map::new();
    if let Some(arn) = input.source_arn {
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": arn }));
    }
    let mut equals = serde_json::Map::new();
    if let Some(account) = input.source_account {
        equals.insert("AWS:SourceAccount".into(), json!(account));
    }
    if let Some(org) = input.principal_org_id {
        equals.insert("aws:PrincipalOrgID".into(), json!(org));
    }
    if !equals.is_empty() {
        condition.insert("StringEquals".into(), Value::Object(equals));
    }
    if !condition.is_empty() {
        statement["Condition"] = Value::Object(condition);
    }
    let mut policy = load(state, &name)
        .await?
        .unwrap_or_else(|| json!({ "Version": "2012-10-17", "Id": "default", "Statement": [] }));
    if let Some(expected) = &input.revision_id {
        if *expected != revision(&policy) {
            return Err(ApiError::precondition());
        }
    }
    let statements = policy["Statement"]
        .as_array_mut()
        .ok_or_else(|| ApiError::internal("stored policy has no statement list"))?;
    if statements.iter().any(|s| s["Sid"] == sid.as_str()) {
        return Err(ApiError::conflict(format!("The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement.")));
    }
    statements.push(statement.clone());
    // INVARIANT: only policies the evaluator accepts are stored.
    Policy::parse_as(&policy.to_string(), PolicyKind::Resource)
        .map_err(|e| ApiError::invalid(format!("the resulting policy is invalid: {e}")))?;
    save(state, &name, Some(policy)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "Statement": statement.to_string() }),
    ))
}

pub async fn remove_permission(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
    sid: &str,
) -> Result<Reply, ApiError> {
    let name = name_of(state, raw, request)?;
    let Some(mut policy) = load(state, &name).await? else {
        return Err(ApiError::not_found(
            "No policy is associated with the given resource.",
        ));
    };
    if let Some(expected) = request.query("RevisionId") {
        if expected != revision(&policy) {
            return Err(ApiError::precondition());
        }
    }
    let statements = policy["Statement"]
        .as_array_mut()
        .ok_or_else(|| ApiError::internal("stored policy has no statement list"))?;
    let before = statements.len();
    statements.retain(|s| s["Sid"] != sid);
    if statements.len() == before {
        return Err(ApiError::not_found(format!(
            "Statement {sid} is not found in resource policy."
        )));
    }
    let empty = statements.is_empty();
    save(state, &name, (!empty).then_some(policy)).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub async fn get_policy(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let name = name_of(state, raw, request)?;
    let Some(policy) = load(state, &name).await? else {
        return Err(ApiError::not_found(
            "The resource you requested does not exist.",
        ));
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({ "Policy": policy.to_string(), "RevisionId": revision(&policy) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_permission_accepts_only_what_lambda_lets_a_function_policy_grant() {
        for ok in [
            "*",
            "lambda:*",
            "LAMBDA:*",
            "lambda:InvokeFunction",
            "lambda:invokefunction",
            "lambda:GetFunction",
            "lambda:UpdateFunctionCode",
            "lambda:PutFunctionConcurrency",
        ] {
            assert!(check_action(ok).is_ok(), "{ok}");
        }
        for refused in [
            "lambda:UpdateFunctionConfiguration",
            "lambda:UPDATEFUNCTIONCONFIGURATION",
            "lambda:AddPermission",
            "lambda:RemovePermission",
            "lambda:CreateFunction",
            "lambda:InvokeFunctionUrl",
            "lambda:Update*",
            "lambda:Invoke?unction",
            "lambda:",
            "iam:PassRole",
            "*:*",
            "",
        ] {
            let e = check_action(refused).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValueException", "{refused}");
            assert!(
                e.message.contains(&format!("action {refused} ")),
                "{}",
                e.message
            );
        }
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
