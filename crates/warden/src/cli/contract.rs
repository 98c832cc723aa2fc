//! `warden function contract set|get|delete NAME`: a function's (or, with `--qualifier`,
//! an alias's) input contract, through Warden's own endpoint
//! `/_warden/2026-11-01/functions/NAME/input-contract`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use http::Method;

use super::client::{encode, Client};
use super::{with_qualifier, NameArgs};

/// `warden function contract ...`
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Store the input contract in FILE (JSON: EventSchema, Json, Url), replacing any
    Set(SetArgs),
    /// Print the stored input contract and how many events it refused
    Get(NameArgs),
    /// Delete the input contract: events are then only checked to be JSON
    Delete(NameArgs),
}

/// `warden function contract set NAME FILE`
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Function name or ARN
    pub name: String,
    /// The contract document (`-` for standard input)
    pub file: PathBuf,
    /// An alias, for a contract of that alias only
    #[arg(long, short = 'q')]
    pub qualifier: Option<String>,
}

/// The most bytes of a contract document the server takes.
const MAX_DOCUMENT_BYTES: u64 = 256 * 1024;

fn path(name: &str, qualifier: Option<&str>) -> String {
    with_qualifier(
        format!(
            "/_warden/2026-11-01/functions/{}/input-contract",
            encode(name)
        ),
        qualifier,
    )
}

fn subject(name: &str, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(q) => format!("the input contract of `{name}:{q}`"),
        None => format!("the input contract of `{name}`"),
    }
}

/// Runs one `warden function contract` command.
pub fn run(client: &Client, cmd: &ContractCommand) -> anyhow::Result<()> {
    match cmd {
        ContractCommand::Set(a) => {
            let document = if a.file.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(std::io::stdin(), MAX_DOCUMENT_BYTES + 1),
                    &mut buf,
                )
                .context("cannot read the contract from standard input")?;
                buf
            } else {
                let size = std::fs::metadata(&a.file)
                    .with_context(|| format!("cannot read `{}`", a.file.display()))?
                    .len();
                anyhow::ensure!(
                    size <= MAX_DOCUMENT_BYTES,
                    "`{}` is {size} bytes; a contract is at most {MAX_DOCUMENT_BYTES}",
                    a.file.display()
                );
                std::fs::read(&a.file)
                    .with_context(|| format!("cannot read `{}`", a.file.display()))?
            };
            let q = a.qualifier.as_deref();
            let reply = client.call(
                Method::PUT,
                &path(&a.name, q),
                &[("content-type", "application/json")],
                Some(document),
                &subject(&a.name, q),
            )?;
            println!("{}", serde_json::to_string_pretty(&reply.json()?)?);
        }
        ContractCommand::Get(a) => {
            let q = a.qualifier.as_deref();
            let reply = client.call(
                Method::GET,
                &path(&a.name, q),
                &[],
                None,
                &subject(&a.name, q),
            )?;
            println!("{}", serde_json::to_string_pretty(&reply.json()?)?);
        }
        ContractCommand::Delete(a) => {
            let q = a.qualifier.as_deref();
            client.call(
                Method::DELETE,
                &path(&a.name, q),
                &[],
                None,
                &subject(&a.name, q),
            )?;
            println!("deleted {}", subject(&a.name, q));
        }
    }
    Ok(())
}
