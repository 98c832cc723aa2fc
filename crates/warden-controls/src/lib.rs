//! Warden's posture controls: what each checks, how to fix what it finds, and the
//! evaluation of every control over a neutral description of an account ([`Facts`]).
//!
//! Two callers fill [`Facts`]: the API reads the live account (and keeps the findings,
//! Security Hub-style), and [`template`] reads an AWS SAM or CloudFormation template
//! offline. Both therefore run the same controls. A fact a source cannot know (a role's
//! calls, a key's age, vulnerability matches for a template) is left empty or `None`, and
//! the controls that need it stay quiet.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

pub mod report;
pub mod template;

/// One control failing on one resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The control (`Lambda.1`).
    pub control_id: String,
    /// The resource's type (`AwsLambdaFunction`).
    pub resource_type: String,
    /// The resource (an ARN, or a template's logical id).
    pub resource_id: String,
    /// `INFORMATIONAL`, `LOW`, `MEDIUM`, `HIGH` or `CRITICAL`.
    pub severity: String,
    /// The control's title.
    pub title: String,
    /// What is wrong with this resource.
    pub description: String,
    /// How to fix it.
    pub remediation: String,
}

/// One control.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    /// Its id (`Lambda.1`).
    pub id: &'static str,
    /// `INFORMATIONAL` to `CRITICAL`.
    pub severity: &'static str,
    /// Its title.
    pub title: &'static str,
    /// What it checks.
    pub checks: &'static str,
    /// How to fix what it finds.
    pub remediation: &'static str,
    /// The checkov checks that find the same thing, where checkov has one.
    pub checkov: &'static [&'static str],
}

/// Every control evaluated against the live account.
pub const CONTROLS: &[Control] = &[
    Control {
        id: "Lambda.1",
        severity: "CRITICAL",
        title: "Lambda function and layer policies should prohibit public access",
        checks: "A function's or layer version's resource policy allows `*` (or `{\"AWS\": \"*\"}`) without an aws:SourceAccount, aws:SourceArn or aws:PrincipalOrgID condition.",
        remediation: "Remove the statement (`aws lambda remove-permission` / `remove-layer-version-permission`) or name the principal and add a SourceAccount or SourceArn condition.",
        checkov: &["CKV_AWS_301"],
    },
    Control {
        id: "Warden.Lambda.CrossAccount",
        severity: "MEDIUM",
        title: "Lambda function and layer policies should not grant other accounts",
        checks: "A function's or layer version's resource policy names a principal of another account.",
        remediation: "Remove the permission unless the other account is meant to call the function; prefer a condition on aws:SourceArn.",
        checkov: &[],
    },
    Control {
        id: "Lambda.2",
        severity: "MEDIUM",
        title: "Lambda functions should use supported runtimes",
        checks: "The function's runtime is past Lambda's deprecation date (python3.9 and older, nodejs18.x and older, and the others in Lambda's schedule).",
        remediation: "Update the function to a supported runtime (`aws lambda update-function-configuration --runtime python3.13`).",
        checkov: &["CKV_AWS_363"],
    },
    Control {
        id: "Warden.Url.1",
        severity: "HIGH",
        title: "Function URLs should require IAM authentication",
        checks: "A function URL has AuthType NONE: anyone who can reach the URL listener may invoke the function.",
        remediation: "Use AuthType AWS_IAM (`aws lambda update-function-url-config --auth-type AWS_IAM`), or keep NONE only for a deliberately public endpoint with an input contract.",
        checkov: &["CKV_AWS_258"],
    },
    Control {
        id: "Warden.Url.2",
        severity: "HIGH",
        title: "A public function URL should have an input contract",
        checks: "A function URL with AuthType NONE serves a function with no input contract, so any event reaches its code.",
        remediation: "Give the function an input contract (`warden function contract put`): a JSON Schema and limits its events must meet.",
        checkov: &[],
    },
    Control {
        id: "IAM.1",
        severity: "CRITICAL",
        title: "Execution roles should not allow full administrative privileges",
        checks: "A policy of a role some function runs as allows Action `*` on Resource `*`.",
        remediation: "Replace it with what the function needs: `warden iam generate-policy --role ROLE` writes that policy from the audit trail.",
        checkov: &["CKV_AWS_1", "CKV_AWS_62", "CKV_AWS_63"],
    },
    Control {
        id: "Warden.IAM.WildcardAction",
        severity: "HIGH",
        title: "Execution roles should not allow wildcard actions",
        checks: "A policy of a role some function runs as allows a whole service (`s3:*`) or every action (`*`).",
        remediation: "List the actions the function calls; `warden iam generate-policy --role ROLE` writes them from the audit trail.",
        checkov: &["CKV_AWS_49", "CKV_AWS_107", "CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_110", "CKV_AWS_111"],
    },
    Control {
        id: "Warden.IAM.WildcardResource",
        severity: "MEDIUM",
        title: "Execution roles should name the resources they may act on",
        checks: "A policy of a role some function runs as allows an action on Resource `*`.",
        remediation: "Name the resources' ARNs; `warden iam generate-policy` uses the ARNs the calls touched.",
        checkov: &["CKV_AWS_111", "CKV_AWS_355"],
    },
    Control {
        id: "Warden.IAM.UnusedRole",
        severity: "LOW",
        title: "Roles should be used",
        checks: "A role older than the inactivity period (`--posture-inactive-days`) made no call in that period, as far as the audit trail shows.",
        remediation: "Delete the role if nothing needs it (`aws iam delete-role`).",
        checkov: &[],
    },
    Control {
        id: "Warden.IAM.UnusedPermission",
        severity: "LOW",
        title: "Roles should not keep permissions they do not use",
        checks: "A role older than the inactivity period is granted actions none of its calls in that period used.",
        remediation: "Remove them: `warden iam unused --role ROLE` lists them, `warden iam generate-policy` writes the policy the calls needed.",
        checkov: &[],
    },
    Control {
        id: "Warden.Lambda.PlaintextSecret",
        severity: "HIGH",
        title: "Environment variables should not hold secrets in plain text",
        checks: "A variable's value looks like a secret: a private key, an AWS secret key, a token or password by its name and a value that is not a reference.",
        remediation: "Keep the secret in Secrets Manager and read it at run time (the Parameters and Secrets extension), or encrypt the value with a customer key.",
        checkov: &["CKV_AWS_45"],
    },
    Control {
        id: "Warden.Lambda.CustomerKey",
        severity: "LOW",
        title: "Functions with environment variables should use a customer managed key",
        checks: "A function has environment variables sealed only under the account's AWS managed key.",
        remediation: "Set KMSKeyArn to a customer managed key whose policy names who may decrypt.",
        checkov: &["CKV_AWS_173"],
    },
    Control {
        id: "Warden.Lambda.OpenEgress",
        severity: "MEDIUM",
        title: "Functions should not have open egress",
        checks: "A security group of the function's VpcConfig allows all traffic to 0.0.0.0/0 or ::/0, or the function has no VpcConfig on a server started with `--default-egress internet`.",
        remediation: "Replace the rule with the destinations the function needs (`aws ec2 revoke-security-group-egress`).",
        checkov: &[],
    },
    Control {
        id: "Warden.Lambda.VulnerableDependency",
        severity: "HIGH",
        title: "Function packages should have no known vulnerable dependency",
        checks: "Dependency scanning matched a package of the function's code or layers to an advisory of the imported database.",
        remediation: "Upgrade the dependency to its fixed version (`warden scan findings FUNCTION` names it) and deploy again.",
        checkov: &[],
    },
    Control {
        id: "Warden.Lambda.CodeSigning",
        severity: "MEDIUM",
        title: "Functions should have a code signing config",
        checks: "No code signing config applies to the function, so any package its deployers upload runs.",
        remediation: "Create a code signing config with your signing profiles (`aws lambda create-code-signing-config`) and attach it (`aws lambda put-function-code-signing-config`).",
        checkov: &["CKV_AWS_272"],
    },
    Control {
        id: "Warden.Lambda.ErrorsAlarm",
        severity: "LOW",
        title: "Functions should have an alarm on errors",
        checks: "No CloudWatch alarm watches the function's AWS/Lambda Errors metric.",
        remediation: "`aws cloudwatch put-metric-alarm --namespace AWS/Lambda --metric-name Errors --dimensions Name=FunctionName,Value=FUNCTION ...` with an SNS action.",
        checkov: &[],
    },
    Control {
        id: "IAM.3",
        severity: "MEDIUM",
        title: "Access keys should be rotated within the inactivity period",
        checks: "An active access key is older than the inactivity period (90 days by default).",
        remediation: "`warden iam key rotate --user USER KEY` makes a new key and deactivates the old one.",
        checkov: &[],
    },
    Control {
        id: "Warden.IAM.IdleAdmin",
        severity: "MEDIUM",
        title: "Administrators should be active or removed",
        checks: "A user allowed `*` on `*` used no access key in the inactivity period.",
        remediation: "Deactivate the user's keys, or remove its administrator policy.",
        checkov: &[],
    },
    Control {
        id: "Warden.Lambda.Concurrency",
        severity: "LOW",
        title: "Functions should have a concurrency limit",
        checks: "The function has no reserved concurrency, so it may take the account's whole concurrency (and a flood of its events every other function's).",
        remediation: "Set ReservedConcurrentExecutions (`aws lambda put-function-concurrency`) to what the function needs.",
        checkov: &["CKV_AWS_115"],
    },
    Control {
        id: "Warden.Lambda.DeadLetter",
        severity: "LOW",
        title: "Functions invoked asynchronously should keep failed events",
        checks: "A template's function has no DeadLetterConfig, so an asynchronous event that fails its retries is lost. (Warden's own queue counts dropped events as AsyncEventsDropped; DeadLetterConfig is an AWS setting, so the live account is not checked.)",
        remediation: "Give the function a DeadLetterConfig (an SQS queue or SNS topic) or an OnFailure destination.",
        checkov: &["CKV_AWS_116"],
    },
    Control {
        id: "Lambda.3",
        severity: "LOW",
        title: "Lambda functions should be in a VPC",
        checks: "A template's function has no VpcConfig, so on AWS it reaches the internet and AWS services directly. (Warden isolates a function without VpcConfig from every network unless `--default-egress internet`, which Warden.Lambda.OpenEgress checks.)",
        remediation: "Give the function a VpcConfig whose security groups allow what it needs.",
        checkov: &["CKV_AWS_117"],
    },
    Control {
        id: "KMS.4",
        severity: "MEDIUM",
        title: "AWS KMS key rotation should be enabled",
        checks: "A symmetric customer managed key does not rotate its key material yearly.",
        remediation: "Enable rotation (`aws kms enable-key-rotation`, or `EnableKeyRotation: true`).",
        checkov: &["CKV_AWS_7"],
    },
];

/// Runtimes past Lambda's deprecation date (as of this release).
pub const DEPRECATED_RUNTIMES: &[&str] = &[
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "python3.9",
    "nodejs",
    "nodejs4.3",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "nodejs18.x",
    "provided",
];

/// The control of `id` (the first control if none has it).
pub fn control(id: &str) -> &'static Control {
    CONTROLS.iter().find(|c| c.id == id).unwrap_or(&CONTROLS[0])
}

/// What one evaluation read of the account.
#[derive(Debug, Default)]
pub struct Facts {
    /// The functions.
    pub functions: Vec<FunctionFacts>,
    /// Layer version ARN → its policy.
    pub layer_policies: Vec<(String, Value)>,
    /// Role name → (ARN, creation ms, its policy documents).
    pub roles: BTreeMap<String, (String, i64, Vec<Value>)>,
    /// Role name (lower case) → the actions its sessions were allowed in the period; a role
    /// absent here made no call (left empty when the source cannot tell: see
    /// [`Facts::usage_known`]).
    pub role_usage: BTreeMap<String, BTreeSet<String>>,
    /// Whether [`Facts::role_usage`] is known (a live account's audit trail); a template
    /// cannot tell, so the controls about unused roles and permissions stay quiet.
    pub usage_known: bool,
    /// Whether the alarms are known (a live account); a template may define none of the
    /// alarms an account has elsewhere.
    pub alarms_known: bool,
    /// The users.
    pub users: Vec<UserFacts>,
    /// Customer managed symmetric keys: (id or ARN, whether their material rotates).
    pub keys: Vec<(String, bool)>,
    /// Alarms on AWS/Lambda Errors: the functions they watch.
    pub errors_alarmed: BTreeSet<String>,
}

/// A user: (name, ARN, allowed `*` on `*`?, active keys' (id, creation ms), the latest
/// use of any of its keys (ms)).
pub type UserFacts = (String, String, bool, Vec<(String, i64)>, Option<i64>);

/// A function, as the controls see it.
#[derive(Debug, Default)]
pub struct FunctionFacts {
    /// Its name (a template's logical id).
    pub name: String,
    /// Its ARN (a template's `FILE#LogicalId`).
    pub arn: String,
    /// Its runtime.
    pub runtime: String,
    /// Its execution role (an ARN, or anything ending in `/ROLE`).
    pub role: String,
    /// Its environment variables, in plain text.
    pub environment: BTreeMap<String, String>,
    /// Its customer managed key, if any.
    pub kms_key: Option<String>,
    /// Its resource policy (statements), if any.
    pub policy: Option<Value>,
    /// Whether a function URL with `AuthType NONE` serves it.
    pub url_auth_none: bool,
    /// The URL's own resource, where it is one apart from the function (a template's
    /// `AWS::Lambda::Url`); findings about the URL name it.
    pub url_resource: Option<String>,
    /// Whether an input contract applies to its events.
    pub has_contract: bool,
    /// Whether it may reach any address.
    pub open_egress: bool,
    /// Known vulnerabilities in its packages.
    pub vulnerable: usize,
    /// Whether it has a code signing config (`None`: not known).
    pub code_signing: Option<bool>,
    /// Whether it has reserved concurrency (`None`: not known).
    pub concurrency_limited: Option<bool>,
    /// Whether it has a dead-letter queue (`None`: not known, or not an AWS setting).
    pub dead_letter: Option<bool>,
    /// Whether it has a VpcConfig, where that is AWS's sense of network isolation (a
    /// template); `None` for the live account, whose isolation OpenEgress checks.
    pub in_vpc: Option<bool>,
}

/// The statements of a policy document (one, or a list).
pub fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// A string-or-list member as strings.
pub fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The principals a resource-policy statement allows: `*` for the public.
fn principals(statement: &Value) -> Vec<String> {
    match statement.get("Principal") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Object(m)) => m.values().flat_map(|v| strings(Some(v))).collect(),
        _ => Vec::new(),
    }
}

fn limited_to_source(statement: &Value) -> bool {
    let Some(Value::Object(conditions)) = statement.get("Condition") else {
        return false;
    };
    conditions.values().any(|c| {
        c.as_object().is_some_and(|m| {
            m.keys().any(|k| {
                let k = k.to_ascii_lowercase();
                k == "aws:sourceaccount" || k == "aws:sourcearn" || k == "aws:principalorgid"
            })
        })
    })
}

/// Lambda.1 and Warden.Lambda.CrossAccount over one resource policy.
fn policy_findings(arn: &str, kind: &str, policy: &Value, account: &str, out: &mut Vec<Failure>) {
    for s in statements(policy) {
        if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        for p in principals(s) {
            if p == "*" && !limited_to_source(s) {
                out.push(observe(
                    "Lambda.1",
                    kind,
                    arn,
                    format!(
                        "the policy of {arn} allows anyone ({})",
                        s.get("Sid")
                            .and_then(Value::as_str)
                            .unwrap_or("a statement")
                    ),
                ));
            } else if let Some(other) = account_of(&p) {
                if other != account {
                    out.push(observe(
                        "Warden.Lambda.CrossAccount",
                        kind,
                        arn,
                        format!("the policy of {arn} grants account {other}"),
                    ));
                }
            }
        }
    }
}

/// The account a principal names (`123456789012` or an ARN in it).
fn account_of(principal: &str) -> Option<&str> {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        return Some(principal);
    }
    principal
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split(':').next())
        .filter(|a| a.len() == 12)
}

fn observe(id: &str, resource_type: &str, resource: &str, description: String) -> Failure {
    let c = control(id);
    Failure {
        control_id: c.id.to_owned(),
        resource_type: resource_type.to_owned(),
        resource_id: resource.to_owned(),
        severity: c.severity.to_owned(),
        title: c.title.to_owned(),
        description,
        remediation: c.remediation.to_owned(),
    }
}

/// Each control over `facts`.
/// Every control over `facts`: the failures, in the order the controls and resources
/// were visited. `now_ms` and `inactive_days` decide the time-based controls.
pub fn evaluate(facts: &Facts, account: &str, now_ms: i64, inactive_days: u32) -> Vec<Failure> {
    let mut out = Vec::new();
    let period_ms = i64::from(inactive_days) * 86_400_000;
    let old = |created: i64| now_ms - created >= period_ms;
    let mut execution_roles = BTreeSet::new();
    for f in &facts.functions {
        let kind = "AwsLambdaFunction";
        if let Some(policy) = &f.policy {
            policy_findings(&f.arn, kind, policy, account, &mut out);
        }
        if DEPRECATED_RUNTIMES.contains(&f.runtime.as_str()) {
            out.push(observe(
                "Lambda.2",
                kind,
                &f.arn,
                format!("{} runs on {}, past its deprecation", f.name, f.runtime),
            ));
        }
        if f.url_auth_none {
            out.push(observe(
                "Warden.Url.1",
                kind,
                f.url_resource.as_deref().unwrap_or(&f.arn),
                format!("{}'s function URL takes unsigned requests", f.name),
            ));
            if !f.has_contract {
                out.push(observe(
                    "Warden.Url.2",
                    kind,
                    &f.arn,
                    format!("{} has a public URL and no input contract", f.name),
                ));
            }
        }
        let secrets: Vec<&str> = f
            .environment
            .iter()
            .filter(|(k, v)| warden_types::hygiene::likely_secret(k, v).is_some())
            .map(|(k, _)| k.as_str())
            .collect();
        if !secrets.is_empty() {
            out.push(observe(
                "Warden.Lambda.PlaintextSecret",
                kind,
                &f.arn,
                format!(
                    "{}'s variables {} look like secrets in plain text",
                    f.name,
                    secrets.join(", ")
                ),
            ));
        }
        if !f.environment.is_empty() && f.kms_key.is_none() {
            out.push(observe(
                "Warden.Lambda.CustomerKey",
                kind,
                &f.arn,
                format!(
                    "{}'s environment is sealed under the AWS managed key only",
                    f.name
                ),
            ));
        }
        if f.open_egress {
            out.push(observe(
                "Warden.Lambda.OpenEgress",
                kind,
                &f.arn,
                format!("a security group of {} allows all traffic anywhere", f.name),
            ));
        }
        if f.code_signing == Some(false) {
            out.push(observe(
                "Warden.Lambda.CodeSigning",
                kind,
                &f.arn,
                format!("{} has no code signing config", f.name),
            ));
        }
        if f.concurrency_limited == Some(false) {
            out.push(observe(
                "Warden.Lambda.Concurrency",
                kind,
                &f.arn,
                format!("{} has no reserved concurrency", f.name),
            ));
        }
        if f.dead_letter == Some(false) {
            out.push(observe(
                "Warden.Lambda.DeadLetter",
                kind,
                &f.arn,
                format!("{} has no dead-letter queue", f.name),
            ));
        }
        if f.in_vpc == Some(false) {
            out.push(observe(
                "Lambda.3",
                kind,
                &f.arn,
                format!("{} has no VpcConfig", f.name),
            ));
        }
        if f.vulnerable > 0 {
            out.push(observe(
                "Warden.Lambda.VulnerableDependency",
                kind,
                &f.arn,
                format!(
                    "{} has {} known vulnerabilities in its dependencies",
                    f.name, f.vulnerable
                ),
            ));
        }
        if facts.alarms_known && !facts.errors_alarmed.contains(&f.name) {
            out.push(observe(
                "Warden.Lambda.ErrorsAlarm",
                kind,
                &f.arn,
                format!("no alarm watches {}'s Errors", f.name),
            ));
        }
        if let Some(role) = f.role.rsplit('/').next() {
            execution_roles.insert(role.to_ascii_lowercase());
        }
    }
    for (key, rotates) in &facts.keys {
        if !rotates {
            out.push(observe(
                "KMS.4",
                "AwsKmsKey",
                key,
                format!("key {key} does not rotate its material"),
            ));
        }
    }
    for (arn, policy) in &facts.layer_policies {
        policy_findings(arn, "AwsLambdaLayerVersion", policy, account, &mut out);
    }
    for (name, (arn, created, policies)) in &facts.roles {
        let kind = "AwsIamRole";
        if execution_roles.contains(&name.to_ascii_lowercase()) {
            let mut full = false;
            let mut wildcard_action = BTreeSet::new();
            let mut wildcard_resource = BTreeSet::new();
            for doc in policies {
                for s in statements(doc) {
                    if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
                        continue;
                    }
                    let actions = strings(s.get("Action"));
                    let resources = strings(s.get("Resource"));
                    let any_resource = resources.iter().any(|r| r == "*");
                    for a in &actions {
                        if a == "*" && any_resource {
                            full = true;
                        } else if a == "*" || a.ends_with(":*") {
                            wildcard_action.insert(a.clone());
                        } else if any_resource {
                            wildcard_resource.insert(a.clone());
                        }
                    }
                }
            }
            if full {
                out.push(observe(
                    "IAM.1",
                    kind,
                    arn,
                    format!("role {name} allows every action on every resource"),
                ));
            }
            if !wildcard_action.is_empty() {
                out.push(observe(
                    "Warden.IAM.WildcardAction",
                    kind,
                    arn,
                    format!(
                        "role {name} allows {}",
                        wildcard_action.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if !wildcard_resource.is_empty() {
                out.push(observe(
                    "Warden.IAM.WildcardResource",
                    kind,
                    arn,
                    format!(
                        "role {name} allows {} on every resource",
                        wildcard_resource.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        if facts.usage_known && old(*created) {
            match facts.role_usage.get(&name.to_ascii_lowercase()) {
                None => out.push(observe(
                    "Warden.IAM.UnusedRole",
                    kind,
                    arn,
                    format!("role {name} made no call in {inactive_days} days"),
                )),
                Some(used) => {
                    let mut unused = BTreeSet::new();
                    for doc in policies {
                        for s in statements(doc) {
                            if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
                                continue;
                            }
                            for a in strings(s.get("Action")) {
                                if !used
                                    .iter()
                                    .any(|u| warden_iam::__private::wildcard_match(&a, u, true))
                                {
                                    unused.insert(a);
                                }
                            }
                        }
                    }
                    if !unused.is_empty() {
                        out.push(observe(
                            "Warden.IAM.UnusedPermission",
                            kind,
                            arn,
                            format!(
                                "role {name} did not use {} in {inactive_days} days",
                                unused.into_iter().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    for (name, arn, admin, keys, last_used) in &facts.users {
        let kind = "AwsIamUser";
        let stale: Vec<&str> = keys
            .iter()
            .filter(|(_, c)| old(*c))
            .map(|(k, _)| k.as_str())
            .collect();
        if !stale.is_empty() {
            out.push(observe(
                "IAM.3",
                "AwsIamAccessKey",
                arn,
                format!(
                    "user {name}'s keys {} are older than {inactive_days} days",
                    stale.join(", ")
                ),
            ));
        }
        // A key made recently and not used yet is not idle: the period counts from the
        // later of the last use and the newest key.
        let newest_key = keys.iter().map(|(_, c)| *c).max();
        let idle = match last_used.max(&newest_key) {
            None => true,
            Some(t) => now_ms - t >= period_ms,
        };
        if *admin && idle && !keys.is_empty() {
            out.push(observe(
                "Warden.IAM.IdleAdmin",
                kind,
                arn,
                format!("administrator {name} used no key in {inactive_days} days"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "123456789012";

    fn function(name: &str) -> FunctionFacts {
        FunctionFacts {
            name: name.into(),
            arn: format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"),
            runtime: "python3.12".into(),
            role: format!("arn:aws:iam::{ACCOUNT}:role/exec"),
            environment: BTreeMap::new(),
            kms_key: None,
            policy: None,
            url_auth_none: false,
            url_resource: None,
            has_contract: false,
            open_egress: false,
            vulnerable: 0,
            code_signing: Some(true),
            concurrency_limited: Some(true),
            dead_letter: Some(true),
            in_vpc: Some(true),
        }
    }

    fn ids(found: &[Failure]) -> Vec<&str> {
        let mut v: Vec<&str> = found.iter().map(|o| o.control_id.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn every_control_has_its_text() {
        for c in CONTROLS {
            assert!(
                !c.title.is_empty() && !c.checks.is_empty() && !c.remediation.is_empty(),
                "{}",
                c.id
            );
            assert!(["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&c.severity));
        }
    }

    #[test]
    fn a_well_kept_function_passes_and_each_fault_fires_its_control() {
        let mut facts = Facts {
            usage_known: true,
            alarms_known: true,
            ..Facts::default()
        };
        facts.functions.push(function("good"));
        facts.errors_alarmed.insert("good".into());
        facts.roles.insert("exec".into(), (format!("arn:aws:iam::{ACCOUNT}:role/exec"), 0, vec![json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]})]));
        facts
            .role_usage
            .insert("exec".into(), ["s3:GetObject".to_owned()].into());
        assert!(evaluate(&facts, ACCOUNT, 1_000, 0).is_empty());

        let mut bad = function("bad");
        bad.runtime = "python3.9".into();
        bad.url_auth_none = true;
        bad.environment
            .insert("DB_PASSWORD".into(), "hunter2hunter2".into());
        bad.open_egress = true;
        bad.vulnerable = 2;
        bad.code_signing = Some(false);
        bad.concurrency_limited = Some(false);
        bad.dead_letter = Some(false);
        bad.in_vpc = Some(false);
        facts.keys.push(("k1".into(), false));
        bad.policy = Some(json!({"Statement": [
            {"Sid": "open", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction"},
            {"Sid": "other", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::210987654321:root"}, "Action": "lambda:InvokeFunction"},
            {"Sid": "scoped", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction", "Condition": {"StringEquals": {"AWS:SourceAccount": ACCOUNT}}},
        ]}));
        facts.functions.push(bad);
        facts.roles.insert(
            "exec".into(),
            (
                format!("arn:aws:iam::{ACCOUNT}:role/exec"),
                0,
                vec![json!({"Statement": [
                    {"Effect": "Allow", "Action": "*", "Resource": "*"},
                    {"Effect": "Allow", "Action": ["s3:*", "dynamodb:PutItem"], "Resource": "*"},
                ]})],
            ),
        );
        facts.users.push((
            "root-ish".into(),
            format!("arn:aws:iam::{ACCOUNT}:user/root-ish"),
            true,
            vec![("AKIA1".into(), 0)],
            None,
        ));
        let found = evaluate(&facts, ACCOUNT, 1_000, 0);
        assert_eq!(
            ids(&found),
            [
                "IAM.1",
                "IAM.3",
                "KMS.4",
                "Lambda.1",
                "Lambda.2",
                "Lambda.3",
                "Warden.IAM.IdleAdmin",
                "Warden.IAM.UnusedPermission",
                "Warden.IAM.WildcardAction",
                "Warden.IAM.WildcardResource",
                "Warden.Lambda.CodeSigning",
                "Warden.Lambda.Concurrency",
                "Warden.Lambda.CrossAccount",
                "Warden.Lambda.CustomerKey",
                "Warden.Lambda.DeadLetter",
                "Warden.Lambda.ErrorsAlarm",
                "Warden.Lambda.OpenEgress",
                "Warden.Lambda.PlaintextSecret",
                "Warden.Lambda.VulnerableDependency",
                "Warden.Url.1",
                "Warden.Url.2",
            ]
        );
        // The scoped public statement is not Lambda.1; only the open one is.
        assert_eq!(
            found.iter().filter(|o| o.control_id == "Lambda.1").count(),
            1
        );
        // Within the inactivity period, the time-based controls stay quiet.
        let recent = evaluate(&facts, ACCOUNT, 1_000, 90);
        assert!(!ids(&recent).contains(&"IAM.3"));
        assert!(!ids(&recent).contains(&"Warden.IAM.IdleAdmin"));
        // A role with no call at all in the period is unused.
        facts.role_usage.clear();
        assert!(ids(&evaluate(&facts, ACCOUNT, 1_000, 0)).contains(&"Warden.IAM.UnusedRole"));
    }
}
