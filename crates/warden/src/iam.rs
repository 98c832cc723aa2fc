//! `warden iam simulate`: decides like IAM's SimulateCustomPolicy, with Warden's own
//! evaluator, for one case from flags or many as JSON lines.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

#[derive(clap::Subcommand, Debug)]
pub enum IamCommand {
    /// Evaluate policies for an action on a resource and print the decision as JSON (offline).
    Simulate(SimulateArgs),
    /// Write the least-privilege policy a role's calls needed, from the audit trail
    /// (reads the data directory).
    GeneratePolicy(crate::iam_advice::GenerateArgs),
    /// List the actions a role's policies grant that its calls did not use, from the audit
    /// trail.
    Unused(crate::iam_advice::UnusedArgs),
    #[command(flatten)]
    Admin(crate::cli::iam::AdminCommand),
}

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Read cases as JSON lines from standard input (fields `identityPolicies`,
    /// `resourcePolicy`, `action`, `resource`, `principal`, `context`) and print one
    /// result per line, in order.
    #[arg(long, conflicts_with_all = ["policy", "action", "resource"])]
    batch: bool,
    /// An identity policy document file (repeatable).
    #[arg(long = "policy")]
    policy: Vec<PathBuf>,
    /// A resource policy document file.
    #[arg(long)]
    resource_policy: Option<PathBuf>,
    /// The action, e.g. `lambda:InvokeFunction`.
    #[arg(long, required_unless_present = "batch")]
    action: Option<String>,
    /// The resource ARN.
    #[arg(long, required_unless_present = "batch")]
    resource: Option<String>,
    /// The calling principal's ARN.
    #[arg(long)]
    principal: Option<String>,
    /// A condition key and value, `KEY=VALUE`; repeat a key for a multi-valued key.
    #[arg(long = "context", value_name = "KEY=VALUE")]
    context: Vec<String>,
}

fn read_policy(path: &PathBuf) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", path.display()))
}

pub fn run(command: IamCommand, endpoint: &str) -> anyhow::Result<()> {
    let args = match command {
        IamCommand::Simulate(args) => args,
        IamCommand::Admin(admin) => return crate::cli::run_iam(admin, endpoint),
        IamCommand::GeneratePolicy(args) => return crate::iam_advice::generate(&args),
        IamCommand::Unused(args) => return crate::iam_advice::run_unused(&args, endpoint),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.batch {
        for (n, line) in std::io::stdin().lock().lines().enumerate() {
            let line = line.context("reading standard input")?;
            if line.trim().is_empty() {
                continue;
            }
            let result = match serde_json::from_str::<Value>(&line) {
                Ok(case) => warden_iam::simulate::run_case(&case),
                Err(e) => json!({ "error": format!("line {}: not JSON: {e}", n + 1) }),
            };
            writeln!(out, "{result}")?;
        }
        return Ok(());
    }
    let mut context = Map::new();
    for pair in &args.context {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("context `{pair}` must be KEY=VALUE");
        };
        match context.get_mut(k) {
            None => {
                context.insert(k.to_owned(), json!(v));
            }
            Some(Value::Array(list)) => list.push(json!(v)),
            Some(existing) => *existing = json!([existing.clone(), v]),
        }
    }
    let case = json!({
        "identityPolicies": args.policy.iter().map(read_policy).collect::<anyhow::Result<Vec<_>>>()?,
        "resourcePolicy": args.resource_policy.as_ref().map(read_policy).transpose()?,
        "action": args.action,
        "resource": args.resource,
        "principal": args.principal,
        "context": context,
    });
    let result = warden_iam::simulate::run_case(&case);
    writeln!(out, "{}", serde_json::to_string_pretty(&result)?)?;
    if let Some(e) = result.get("error") {
        bail!("{}", e.as_str().unwrap_or("invalid case"));
    }
    Ok(())
}
