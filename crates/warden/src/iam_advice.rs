//! Least privilege from observed access (IAM Access Analyzer's policy generation):
//! `warden iam generate-policy` and `warden iam unused`.
//!
//! Both read what a role's sessions were allowed from the audit trail: every recorded call
//! carries, in `additionalEventData.authorizedActions`, each IAM action the authorizer
//! allowed it and the resource it was allowed on (a function's ARN, a secret's, the KMS key
//! a secret is encrypted under, or `*` for the actions that take no resource). So the
//! generated policy names exactly the actions the calls needed, on exactly the resources
//! they touched; a call that was refused adds nothing.
//!
//! What the trail cannot show, the generated policy cannot grant: invocations and the other
//! data events are recorded only under `--audit-data-events`, and a role that had not yet
//! made a call will be denied it afterwards. Both commands read the data directory (the
//! trail) directly, as `warden audit verify` does; `unused` also reads the role's policies
//! through IAM's API with the caller's credentials.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use warden_audit::CloudTrailEvent;

/// `warden iam generate-policy`
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// The role whose sessions' calls to generate from
    #[arg(long)]
    role: String,
    /// Only calls in the last DURATION (`30d`, `12h`) or since a time
    #[arg(long, default_value = "90d", value_name = "DURATION|TIME", value_parser = crate::cli::parse_since)]
    since: i64,
    /// Write the policy to FILE instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// The data directory (the audit trail). Default: as `warden serve`'s.
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The PostgreSQL store the nodes share (as `warden serve --store`), whose audit trail
    /// to read instead of the data directory's. A URL with a password is accepted only
    /// from `WARDEN_STORE`.
    #[arg(long, env = "WARDEN_STORE", hide_env_values = true)]
    store: Option<String>,
}

/// `warden iam unused`
#[derive(clap::Args, Debug)]
pub struct UnusedArgs {
    /// The role whose granted actions to compare with its calls
    #[arg(long)]
    role: String,
    /// Calls in the last DURATION (`30d`, `12h`) or since a time count as use
    #[arg(long, default_value = "90d", value_name = "DURATION|TIME", value_parser = crate::cli::parse_since)]
    since: i64,
    /// The data directory (the audit trail). Default: as `warden serve`'s.
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The PostgreSQL store the nodes share (as `warden serve --store`), whose audit trail
    /// to read instead of the data directory's. A URL with a password is accepted only
    /// from `WARDEN_STORE`.
    #[arg(long, env = "WARDEN_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// What one action was used for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// The resources it was allowed on.
    pub resources: BTreeSet<String>,
    /// How many calls needed it.
    pub calls: u64,
    /// The last call's time (`eventTime`).
    pub last: String,
}

/// Whether `event` is a call by a session of the role named `role` (role names compare
/// ignoring case, as IAM's do).
fn by_role(event: &CloudTrailEvent, role: &str) -> bool {
    event
        .user_identity
        .session_context
        .as_ref()
        .and_then(|c| c.session_issuer.as_ref())
        .is_some_and(|issuer| issuer.kind == "Role" && issuer.user_name.eq_ignore_ascii_case(role))
}

/// Adds what `event` was allowed to `used`.
pub(crate) fn observe(used: &mut BTreeMap<String, Usage>, event: &CloudTrailEvent) {
    let Some(actions) = event
        .additional_event_data
        .as_ref()
        .and_then(|d| d.get("authorizedActions"))
        .and_then(Value::as_array)
    else {
        return;
    };
    for entry in actions {
        let (Some(action), Some(resource)) = (
            entry.get("action").and_then(Value::as_str),
            entry.get("resource").and_then(Value::as_str),
        ) else {
            continue;
        };
        let usage = used.entry(action.to_owned()).or_default();
        usage.resources.insert(resource.to_owned());
        usage.calls += 1;
        if event.event_time > usage.last {
            usage.last.clone_from(&event.event_time);
        }
    }
}

/// Every action the role's sessions were allowed since `since_ms`, from the trail in
/// `data_dir` or in the shared `store`.
fn used_by_role(
    data_dir: &Path,
    store: Option<&str>,
    role: &str,
    since_ms: i64,
) -> anyhow::Result<(BTreeMap<String, Usage>, u64)> {
    let reader = crate::audit::trail_for_reading(data_dir, store)?.reader()?;
    let mut used = BTreeMap::new();
    let mut calls = 0;
    reader.for_each_event(Some(since_ms), None, |_, event| {
        if by_role(&event, role) {
            calls += 1;
            observe(&mut used, &event);
        }
        true
    })?;
    Ok((used, calls))
}

/// The least-privilege policy for `used`: one statement per set of resources, its actions
/// sorted, so that actions used on the same resources share a statement.
pub(crate) fn policy(used: &BTreeMap<String, Usage>) -> Value {
    let mut by_resources: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for (action, usage) in used {
        let resources: Vec<String> = if usage.resources.contains("*") {
            vec!["*".to_owned()]
        } else {
            usage.resources.iter().cloned().collect()
        };
        by_resources
            .entry(resources)
            .or_default()
            .push(action.clone());
    }
    let statements: Vec<Value> = by_resources
        .into_iter()
        .map(|(resources, actions)| {
            let one = |v: Vec<String>| {
                if v.len() == 1 {
                    json!(v[0])
                } else {
                    json!(v)
                }
            };
            json!({ "Effect": "Allow", "Action": one(actions), "Resource": one(resources) })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// Runs `warden iam generate-policy`.
pub fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::serve::default_data_dir);
    let (used, calls) = used_by_role(&data_dir, args.store.as_deref(), &args.role, args.since)?;
    if used.is_empty() {
        bail!(
            "the audit trail holds no allowed call by a session of role `{}` in that time: nothing to generate from",
            args.role
        );
    }
    let text = serde_json::to_string_pretty(&policy(&used))? + "\n";
    match &args.output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write `{}`", path.display()))?,
        None => print!("{text}"),
    }
    eprintln!(
        "{} actions from {calls} calls by role `{}`; invocations and other data events count only if the server records them (--audit-data-events)",
        used.len(),
        args.role
    );
    Ok(())
}

/// The actions `statement` allows (`Action`, a string or a list); `NotAction` statements
/// are reported whole, since what they grant cannot be listed.
fn allowed_actions(statement: &Value) -> Vec<String> {
    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return Vec::new();
    }
    if let Some(not) = statement.get("NotAction") {
        return vec![format!("NotAction {not}")];
    }
    match statement.get("Action") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Each granted action pattern no observed action matches, with the policy granting it.
pub(crate) fn unused(
    policies: &[(String, Value)],
    used: &BTreeMap<String, Usage>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, document) in policies {
        let statements = match document.get("Statement") {
            Some(Value::Array(s)) => s.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        };
        for statement in &statements {
            for pattern in allowed_actions(statement) {
                let matched = used
                    .keys()
                    .any(|action| warden_iam::__private::wildcard_match(&pattern, action, true));
                if !matched && !out.iter().any(|(p, n)| p == &pattern && n == name) {
                    out.push((pattern, name.clone()));
                }
            }
        }
    }
    out
}

/// The role's policies through IAM's API: inline ones by name, managed ones by ARN.
fn role_policies(client: &crate::cli::Client, role: &str) -> anyhow::Result<Vec<(String, Value)>> {
    use crate::cli::iam::{call, values};
    let decode = |doc: &str| -> anyhow::Result<Value> {
        let text = percent_encoding::percent_decode_str(doc).decode_utf8_lossy();
        serde_json::from_str(&text).context("a policy document is not JSON")
    };
    let mut out = Vec::new();
    let xml = call(
        client,
        &[("Action", "ListRolePolicies"), ("RoleName", role)],
    )?;
    for name in values(&xml, "member") {
        let xml = call(
            client,
            &[
                ("Action", "GetRolePolicy"),
                ("RoleName", role),
                ("PolicyName", &name),
            ],
        )?;
        let doc = values(&xml, "PolicyDocument").join("");
        out.push((format!("inline policy `{name}`"), decode(&doc)?));
    }
    let xml = call(
        client,
        &[("Action", "ListAttachedRolePolicies"), ("RoleName", role)],
    )?;
    for arn in values(&xml, "PolicyArn") {
        let xml = call(client, &[("Action", "GetPolicy"), ("PolicyArn", &arn)])?;
        let version = values(&xml, "DefaultVersionId").join("");
        let xml = call(
            client,
            &[
                ("Action", "GetPolicyVersion"),
                ("PolicyArn", &arn),
                ("VersionId", &version),
            ],
        )?;
        let doc = values(&xml, "Document").join("");
        out.push((format!("managed policy {arn}"), decode(&doc)?));
    }
    Ok(out)
}

/// Runs `warden iam unused`.
pub fn run_unused(args: &UnusedArgs, endpoint: &str) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::serve::default_data_dir);
    let client = crate::cli::Client::new(endpoint)?;
    let policies = role_policies(&client, &args.role)?;
    let (used, calls) = used_by_role(&data_dir, args.store.as_deref(), &args.role, args.since)?;
    let unused = unused(&policies, &used);
    if args.json {
        let value = json!({
            "role": args.role,
            "calls": calls,
            "used": used.iter().map(|(a, u)| json!({
                "action": a, "calls": u.calls, "lastUsed": u.last,
                "resources": u.resources.iter().collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "unused": unused.iter().map(|(a, p)| json!({ "action": a, "grantedBy": p })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{calls} calls by role `{}` in the period", args.role);
    for (action, usage) in &used {
        println!(
            "used    {action:<48} {} calls, last {}",
            usage.calls, usage.last
        );
    }
    for (action, granted_by) in &unused {
        println!("UNUSED  {action:<48} granted by {granted_by}");
    }
    if unused.is_empty() {
        println!("every granted action was used");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(resources: &[&str]) -> Usage {
        Usage {
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            calls: 1,
            last: "2026-12-04T00:00:00Z".into(),
        }
    }

    #[test]
    fn actions_on_the_same_resources_share_a_statement() {
        let mut used = BTreeMap::new();
        used.insert(
            "secretsmanager:GetSecretValue".to_owned(),
            usage(&["arn:s"]),
        );
        used.insert(
            "secretsmanager:DescribeSecret".to_owned(),
            usage(&["arn:s"]),
        );
        used.insert("kms:Decrypt".to_owned(), usage(&["arn:k"]));
        used.insert("lambda:ListFunctions".to_owned(), usage(&["*"]));
        let p = policy(&used);
        assert_eq!(
            p["Statement"],
            json!([
                { "Effect": "Allow", "Action": "lambda:ListFunctions", "Resource": "*" },
                { "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:k" },
                { "Effect": "Allow", "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"], "Resource": "arn:s" },
            ])
        );
    }

    #[test]
    fn granted_patterns_nothing_used_are_unused() {
        let mut used = BTreeMap::new();
        used.insert("s3:GetObject".to_owned(), usage(&["*"]));
        let policies = vec![(
            "inline policy `p`".to_owned(),
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["S3:Get*", "dynamodb:PutItem"], "Resource": "*"},
                {"Effect": "Deny", "Action": "iam:*", "Resource": "*"},
            ]}),
        )];
        assert_eq!(
            unused(&policies, &used),
            vec![(
                "dynamodb:PutItem".to_owned(),
                "inline policy `p`".to_owned()
            )]
        );
    }
}
