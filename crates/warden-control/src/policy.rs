//! Function resource policies: `AddPermission` and `RemovePermission`, with the statement
//! shapes Lambda writes.
//!
//! A function policy can grant only the operations Lambda lets one grant
//! ([`GRANTABLE_ACTIONS`]): invoking, reading, code and alias management, concurrency,
//! tags. Never configuration changes (which include the execution role) or permissions
//! themselves: AddPermission refuses any other action, and [`grantable`] keeps a stored
//! statement from granting more however it was written.

use serde_json::{json, Value};
use warden_iam::{Policy, PolicyKind};
use warden_types::change::Change;
use warden_types::FunctionName;

use crate::commands::{AddPermission, RemovePermission};
use crate::error::check_revision;
use crate::roles::Caller;
use crate::{Control, ControlError};

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
    "lambda:InvokeFunctionUrl",
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
pub fn check_action(action: &str) -> Result<(), ControlError> {
    if action == "*" || action.eq_ignore_ascii_case("lambda:*") || grantable(action) {
        return Ok(());
    }
    Err(ControlError::Invalid(format!(
        "The action {action} cannot be granted by a function policy. A function policy can grant `lambda:*` or one of: {}.",
        GRANTABLE_ACTIONS.join(", ")
    )))
}

/// A revision id of the policy: a hash of its text, so it changes exactly when it does.
pub fn revision(policy: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    policy.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn principal_json(p: &str) -> Result<Value, ControlError> {
    if p == "*" {
        return Ok(json!("*"));
    }
    if p.ends_with(".amazonaws.com") || p.ends_with(".amazonaws.com.cn") {
        return Ok(json!({ "Service": p }));
    }
    if (p.len() == 12 && p.chars().all(|c| c.is_ascii_digit())) || p.starts_with("arn:") {
        return Ok(json!({ "AWS": p }));
    }
    Err(ControlError::Invalid(format!(
        "Principal `{p}` must be `*`, an account id, an IAM ARN or a service principal"
    )))
}

impl Control {
    /// The function's policy document as stored, `None` without one; `NotFound` if the
    /// function does not exist.
    pub(crate) async fn load_policy(
        &self,
        name: &FunctionName,
    ) -> Result<Option<Value>, ControlError> {
        let n = name.clone();
        let (exists, doc) = self
            .blocking(move |inner| {
                let exists = inner.store.get_version(&n, warden_types::LATEST)?.is_some();
                let doc = if exists {
                    inner.store.get_function_policy(&n)?
                } else {
                    None
                };
                Ok((exists, doc))
            })
            .await?;
        if !exists {
            return Err(self.function_not_found(name));
        }
        doc.map(|d| {
            serde_json::from_str(&d).map_err(|e| {
                ControlError::Internal(format!("stored policy of `{name}` is unreadable: {e}"))
            })
        })
        .transpose()
    }

    async fn save_policy(
        &self,
        name: &FunctionName,
        policy: Option<Value>,
    ) -> Result<(), ControlError> {
        let n = name.clone();
        let text = policy.map(|p| p.to_string());
        self.blocking(move |inner| Ok(inner.store.put_function_policy(&n, text.as_deref())?))
            .await
    }

    /// `AddPermission`. Callers: the API, once the caller is allowed
    /// `lambda:AddPermission` on the function. Adds one statement to the function's policy;
    /// it can grant only [`GRANTABLE_ACTIONS`], to the principal it names (`*` lets
    /// unsigned callers invoke and nothing else). Returns the statement. Emits
    /// `PolicyChanged`.
    pub async fn add_permission(
        &self,
        command: AddPermission,
        caller: &dyn Caller,
    ) -> Result<Value, ControlError> {
        let AddPermission {
            function,
            statement_id,
            action,
            principal,
            source_arn,
            source_account,
            principal_org_id,
            function_url_auth_type,
            revision_id,
        } = command;
        check_action(&action)?;
        if let Some(t) = &function_url_auth_type {
            if !action.eq_ignore_ascii_case("lambda:InvokeFunctionUrl") {
                return Err(ControlError::Invalid(
                    "FunctionUrlAuthType is only valid with the action lambda:InvokeFunctionUrl"
                        .into(),
                ));
            }
            if t != "NONE" && t != "AWS_IAM" {
                return Err(ControlError::Invalid(format!(
                    "FunctionUrlAuthType `{t}` must be NONE or AWS_IAM"
                )));
            }
        }
        let principal = principal_json(&principal)?;
        let sid = statement_id.as_str();
        let mut statement = json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": principal,
            "Action": action,
            "Resource": self.function_arn(&function, None),
        });
        let mut condition = serde_json::Map::new();
        if let Some(arn) = source_arn {
            condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": arn }));
        }
        let mut equals = serde_json::Map::new();
        if let Some(account) = source_account {
            equals.insert("AWS:SourceAccount".into(), json!(account));
        }
        if let Some(org) = principal_org_id {
            equals.insert("aws:PrincipalOrgID".into(), json!(org));
        }
        if let Some(t) = function_url_auth_type {
            equals.insert("lambda:FunctionUrlAuthType".into(), json!(t));
        }
        if !equals.is_empty() {
            condition.insert("StringEquals".into(), Value::Object(equals));
        }
        if !condition.is_empty() {
            statement["Condition"] = Value::Object(condition);
        }
        let mut policy = self.load_policy(&function).await?.unwrap_or_else(
            || json!({ "Version": "2012-10-17", "Id": "default", "Statement": [] }),
        );
        check_revision(revision_id.as_deref(), &revision(&policy))?;
        let statements = policy["Statement"]
            .as_array_mut()
            .ok_or_else(|| ControlError::Internal("stored policy has no statement list".into()))?;
        if statements.iter().any(|s| s["Sid"] == sid) {
            return Err(ControlError::Conflict(format!("The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement.")));
        }
        statements.push(statement.clone());
        // INVARIANT: only policies the evaluator accepts are stored.
        Policy::parse_as(&policy.to_string(), PolicyKind::Resource)
            .map_err(|e| ControlError::Invalid(format!("the resulting policy is invalid: {e}")))?;
        self.save_policy(&function, Some(policy)).await?;
        self.emit(&function, Change::PolicyChanged, caller);
        Ok(statement)
    }

    /// `RemovePermission`. Callers: the API, once the caller is allowed
    /// `lambda:RemovePermission` on the function. Removes one statement (the policy goes
    /// with its last one). Emits `PolicyChanged`.
    pub async fn remove_permission(
        &self,
        command: RemovePermission,
        caller: &dyn Caller,
    ) -> Result<(), ControlError> {
        let RemovePermission {
            function,
            statement_id,
            revision_id,
        } = command;
        let Some(mut policy) = self.load_policy(&function).await? else {
            return Err(ControlError::NotFound(
                "No policy is associated with the given resource.".into(),
            ));
        };
        check_revision(revision_id.as_deref(), &revision(&policy))?;
        let statements = policy["Statement"]
            .as_array_mut()
            .ok_or_else(|| ControlError::Internal("stored policy has no statement list".into()))?;
        let before = statements.len();
        statements.retain(|s| s["Sid"] != statement_id.as_str());
        if statements.len() == before {
            return Err(ControlError::NotFound(format!(
                "Statement {statement_id} is not found in resource policy."
            )));
        }
        let empty = statements.is_empty();
        self.save_policy(&function, (!empty).then_some(policy))
            .await?;
        self.emit(&function, Change::PolicyChanged, caller);
        Ok(())
    }
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
            "lambda:TagResource",
            "lambda:InvokeFunctionUrl",
        ] {
            assert!(check_action(ok).is_ok(), "{ok}");
        }
        for refused in [
            "lambda:UpdateFunctionConfiguration",
            "lambda:UPDATEFUNCTIONCONFIGURATION",
            "lambda:AddPermission",
            "lambda:RemovePermission",
            "lambda:CreateFunction",
            "lambda:Update*",
            "lambda:Invoke?unction",
            "lambda:",
            "iam:PassRole",
            "*:*",
            "",
        ] {
            let e = check_action(refused).unwrap_err();
            assert!(matches!(e, ControlError::Invalid(_)), "{refused}");
            assert!(e.to_string().contains(&format!("action {refused} ")), "{e}");
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
