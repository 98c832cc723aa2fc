//! JSON front-end for policy simulation, as `warden iam simulate` and its `--batch` mode use.
//!
//! Input, one case:
//! `{"identityPolicies":[{...}], "resourcePolicy":{...}|null, "action":"lambda:InvokeFunction",
//!   "resource":"arn:...", "principal":"arn:..."|null, "context":{"aws:SourceIp":"10.0.0.1",
//!   "aws:TagKeys":["a","b"]}}`.
//! Output: `{"decision":"allowed"|"explicitDeny"|"implicitDeny","matchedStatements":[
//!   {"policy":"identity"|"resource","policyIndex":0,"statementIndex":1,"sid":"X"|null}]}`,
//! or `{"error":"..."}` when a policy is malformed or the case itself is not well formed.
//! Identity policies are validated as identity policies and the resource policy as a
//! resource policy (principal required), as IAM would when they are attached. When the
//! resource is a KMS key (`arn:aws:kms:...:key/ID`), the resource policy is its key policy
//! and the decision is KMS's ([`crate::evaluate_key_policy`]): no key policy, no access.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::{
    evaluate, evaluate_key_policy, is_kms_key, ContextValue, DecisionEffect, Policy, PolicyKind,
    PolicySource, Request,
};

/// Runs one simulation case; never panics, errors are reported as `{"error": ...}`.
pub fn run_case(case: &Value) -> Value {
    match run(case) {
        Ok(v) => v,
        Err(e) => json!({ "error": e }),
    }
}

fn run(case: &Value) -> Result<Value, String> {
    let obj = case
        .as_object()
        .ok_or("a simulation case must be a JSON object")?;
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "identityPolicies" | "resourcePolicy" | "action" | "resource" | "principal" | "context"
        ) {
            return Err(format!("unknown field `{key}` in simulation case"));
        }
    }
    let identity = match obj.get("identityPolicies") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, p)| {
                load(p, PolicyKind::Identity).map_err(|e| format!("identity policy {i}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("`identityPolicies` must be an array of policies".into()),
    };
    let resource_policy = match obj.get("resourcePolicy") {
        None | Some(Value::Null) => None,
        Some(p) => {
            Some(load(p, PolicyKind::Resource).map_err(|e| format!("resource policy: {e}"))?)
        }
    };
    let string = |name: &str| -> Result<String, String> {
        obj.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("`{name}` must be a string"))
    };
    let principal = match obj.get("principal") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("`principal` must be a string or null".into()),
    };
    let request = Request {
        principal,
        action: string("action")?,
        resource: string("resource")?,
        context: context(obj.get("context"))?,
    };
    let refs: Vec<&Policy> = identity.iter().collect();
    // On a KMS key the resource policy is the key policy, and decides as KMS does.
    let decision = if is_kms_key(&request.resource) {
        evaluate_key_policy(&request, &refs, resource_policy.as_ref())
    } else {
        evaluate(&request, &refs, resource_policy.as_ref())
    };
    let name = match decision.effect {
        DecisionEffect::Allowed => "allowed",
        DecisionEffect::ExplicitDeny => "explicitDeny",
        DecisionEffect::ImplicitDeny => "implicitDeny",
    };
    let matched: Vec<Value> = decision
        .matched
        .iter()
        .map(|m| {
            json!({
                "policy": match m.source { PolicySource::Identity => "identity", PolicySource::Resource => "resource" },
                "policyIndex": m.policy_index,
                "statementIndex": m.statement_index,
                "sid": m.sid.as_deref(),
            })
        })
        .collect();
    Ok(json!({ "decision": name, "matchedStatements": matched }))
}

/// A policy given as a JSON object, or as a string holding the document.
fn load(p: &Value, kind: PolicyKind) -> Result<Policy, String> {
    match p {
        Value::String(text) => Policy::parse_as(text, kind),
        other => Policy::from_json(other, kind),
    }
    .map_err(|e| e.to_string())
}

fn context(v: Option<&Value>) -> Result<HashMap<String, ContextValue>, String> {
    let empty = Map::new();
    let obj = match v {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err("`context` must be an object".into()),
    };
    obj.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => ContextValue::String(s.clone()),
                Value::Array(a) => ContextValue::List(
                    a.iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| format!("context key `{k}` must hold strings"))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                _ => {
                    return Err(format!(
                        "context key `{k}` must be a string or an array of strings"
                    ))
                }
            };
            Ok((k.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_with_matched_statement() {
        let out = run_case(&json!({
            "identityPolicies": [{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}],
            "action": "s3:GetObject", "resource": "arn:aws:s3:::b/k",
            "principal": "arn:aws:iam::123456789012:user/u"
        }));
        assert_eq!(
            out,
            json!({"decision":"allowed","matchedStatements":[{"policy":"identity","policyIndex":0,"statementIndex":0,"sid":"A"}]})
        );
    }

    #[test]
    fn malformed_policy_is_an_error() {
        let out = run_case(&json!({
            "identityPolicies": [{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"s3:Get*","Resource":"*","Condition":{"StringEqualz":{"a:b":"c"}}}]}],
            "action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"
        }));
        assert_eq!(
            out,
            json!({"error":"identity policy 0: statement 1 (Sid `A`): unknown condition operator `StringEqualz`"})
        );
    }

    #[test]
    fn bad_case_shape() {
        assert_eq!(
            run_case(&json!({"action": 3, "resource": "*"})),
            json!({"error":"`action` must be a string"})
        );
        assert_eq!(
            run_case(&json!([])),
            json!({"error":"a simulation case must be a JSON object"})
        );
    }
}
