//! `warden scan ...`: the advisory database dependency scanning matches packages against,
//! and what it finds in a function, through Warden's own endpoints under
//! `/_warden/2026-11-01` (`advisories`, `functions/NAME/findings`, `functions/NAME/sbom`).

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
    /// Print a function's known vulnerabilities (its code and layers), as JSON
    Findings(NameArgs),
    /// Print a function's packages as a CycloneDX 1.5 SBOM
    Sbom(NameArgs),
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
        ScanCommand::Findings(a) | ScanCommand::Sbom(a) => {
            let what = if matches!(cmd, ScanCommand::Findings(_)) {
                "findings"
            } else {
                "sbom"
            };
            let path = with_qualifier(
                format!("/_warden/2026-11-01/functions/{}/{what}", encode(&a.name)),
                a.qualifier.as_deref(),
            );
            client.call(
                Method::GET,
                &path,
                &[],
                None,
                &format!("the {what} of `{}`", a.name),
            )?
        }
    };
    println!("{}", serde_json::to_string_pretty(&reply.json()?)?);
    Ok(())
}
