//! `warden scan ...`: the advisory database dependency scanning matches packages against,
//! what it finds in a function (or in all), and the advisories an operator accepted,
//! through Warden's own endpoints under `/_warden/2026-11-01` (`advisories`, `findings`,
//! `functions/NAME/findings`, `functions/NAME/sbom`, `accepted-advisories`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use http::Method;

use super::client::{encode, Client};
use super::{with_qualifier, NameArgs};

/// `warden scan ...`
#[derive(Debug, Subcommand)]
pub enum ScanCommand {
    /// The advisory database: import an OSV export, or show its size and the policy
    #[command(subcommand)]
    Db(DbCommand),
    /// Print a function's known vulnerabilities (its code and layers), or with no NAME
    /// those of every function's $LATEST, as JSON
    Findings(FindingsArgs),
    /// Print a function's packages as a CycloneDX 1.5 SBOM
    Sbom(NameArgs),
    /// Accept an advisory until a day: its findings stop blocking deploys until then
    Accept(AcceptArgs),
    /// List the accepted advisories, as JSON
    Accepted,
    /// Revoke an acceptance: the advisory's findings count again
    Unaccept(UnacceptArgs),
}

/// `warden scan findings [NAME]`
#[derive(Debug, Args)]
pub struct FindingsArgs {
    /// Function name or ARN; without it, every function's findings
    pub name: Option<String>,
    /// Version or alias (with NAME)
    #[arg(long, short = 'q', requires = "name")]
    pub qualifier: Option<String>,
}

/// `warden scan accept ADVISORY_ID --until YYYY-MM-DD --reason TEXT [--function NAME]`
#[derive(Debug, Args)]
pub struct AcceptArgs {
    /// The advisory's id, as findings show it (e.g. PYSEC-2024-60)
    pub advisory_id: String,
    /// The last day (UTC, YYYY-MM-DD) the acceptance is in force; at most a year ahead
    #[arg(long)]
    pub until: String,
    /// Why the risk is accepted (required)
    #[arg(long)]
    pub reason: String,
    /// Accept it only for this function
    #[arg(long)]
    pub function: Option<String>,
}

/// `warden scan unaccept ADVISORY_ID [--function NAME]`
#[derive(Debug, Args)]
pub struct UnacceptArgs {
    /// The advisory's id
    pub advisory_id: String,
    /// The function the acceptance was made for (none: the one for every function)
    #[arg(long)]
    pub function: Option<String>,
}

/// `warden scan db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Replace the advisory database with the OSV JSON files of a directory or zip
    Import(ImportArgs),
    /// Show how many advisories are loaded and the deploy policy
    Status,
}

/// `warden scan db import PATH`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A directory of OSV JSON files (searched recursively), or a zip of them
    pub path: PathBuf,
}

/// Runs one `warden scan` command.
pub fn run(client: &Client, cmd: &ScanCommand) -> anyhow::Result<()> {
    let reply = match cmd {
        ScanCommand::Db(DbCommand::Import(a)) => {
            let zip = super::function::load_package(&a.path)
                .with_context(|| format!("cannot read the advisories at `{}`", a.path.display()))?;
            client.call(
                Method::PUT,
                "/_warden/2026-11-01/advisories",
                &[("content-type", "application/zip")],
                Some(zip),
                "the advisory database",
            )?
        }
        ScanCommand::Db(DbCommand::Status) => client.call(
            Method::GET,
            "/_warden/2026-11-01/advisories",
            &[],
            None,
            "the advisory database",
        )?,
        ScanCommand::Findings(FindingsArgs { name: None, .. }) => client.call(
            Method::GET,
            "/_warden/2026-11-01/findings",
            &[],
            None,
            "the findings of every function",
        )?,
        ScanCommand::Findings(FindingsArgs {
            name: Some(name),
            qualifier,
        }) => client.call(
            Method::GET,
            &with_qualifier(
                format!("/_warden/2026-11-01/functions/{}/findings", encode(name)),
                qualifier.as_deref(),
            ),
            &[],
            None,
            &format!("the findings of `{name}`"),
        )?,
        ScanCommand::Sbom(a) => client.call(
            Method::GET,
            &with_qualifier(
                format!("/_warden/2026-11-01/functions/{}/sbom", encode(&a.name)),
                a.qualifier.as_deref(),
            ),
            &[],
            None,
            &format!("the sbom of `{}`", a.name),
        )?,
        ScanCommand::Accept(a) => {
            let mut body = serde_json::json!({
                "AdvisoryId": a.advisory_id,
                "Until": a.until,
                "Reason": a.reason,
            });
            if let Some(f) = &a.function {
                body["FunctionName"] = serde_json::json!(f);
            }
            client.call(
                Method::POST,
                "/_warden/2026-11-01/accepted-advisories",
                &[("content-type", "application/json")],
                Some(body.to_string().into_bytes()),
                &format!("the acceptance of `{}`", a.advisory_id),
            )?
        }
        ScanCommand::Accepted => client.call(
            Method::GET,
            "/_warden/2026-11-01/accepted-advisories",
            &[],
            None,
            "the accepted advisories",
        )?,
        ScanCommand::Unaccept(a) => {
            let mut path = format!(
                "/_warden/2026-11-01/accepted-advisories/{}",
                encode(&a.advisory_id)
            );
            if let Some(f) = &a.function {
                path.push_str(&format!("?FunctionName={}", encode(f)));
            }
            client.call(
                Method::DELETE,
                &path,
                &[],
                None,
                &format!("the acceptance of `{}`", a.advisory_id),
            )?;
            return Ok(());
        }
    };
    println!("{}", serde_json::to_string_pretty(&reply.json()?)?);
    Ok(())
}
