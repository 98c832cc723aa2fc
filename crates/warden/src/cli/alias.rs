//! `warden function publish` and `warden alias create|update|delete|list`: versions and
//! aliases, through Lambda's own API (so the AWS CLI sees the same).

use std::io::Write;

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{json, Map, Value};

use super::client::{encode, Client};

/// `warden function publish`
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Function name or ARN
    pub name: String,
    /// Description of the new version
    #[arg(long)]
    pub description: Option<String>,
}

/// `warden alias ...`
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Point a new alias at a version
    Create(AliasArgs),
    /// Point an alias at another version, or change its description
    Update(AliasArgs),
    /// Delete an alias
    Delete(AliasName),
    /// List a function's aliases as JSON
    List(AliasFunction),
}

/// A function and one of its aliases, with what the alias should be.
#[derive(Debug, Args)]
pub struct AliasArgs {
    /// Function name or ARN
    pub function: String,
    /// Alias name
    pub alias: String,
    /// The version the alias points to (`$LATEST` or a number) [required on create]
    #[arg(long)]
    pub function_version: Option<String>,
    /// Description
    #[arg(long)]
    pub description: Option<String>,
}

/// A function and one of its aliases.
#[derive(Debug, Args)]
pub struct AliasName {
    /// Function name or ARN
    pub function: String,
    /// Alias name
    pub alias: String,
}

/// A function whose aliases are listed.
#[derive(Debug, Args)]
pub struct AliasFunction {
    /// Function name or ARN
    pub function: String,
}

/// Sends `body` (a JSON object) to `path` and prints the JSON answer.
fn call_and_print(
    client: &Client,
    method: Method,
    path: &str,
    body: Map<String, Value>,
    subject: &str,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&Value::Object(body))?;
    let answer = client
        .call(method, path, &[], Some(body), subject)?
        .json()?;
    print_json(&answer)
}

pub(super) fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `warden function publish`: publishes `$LATEST` as a new version (or returns the newest
/// version when nothing changed since, as Lambda does) and prints it as JSON.
pub fn publish(client: &Client, args: &PublishArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    if let Some(d) = &args.description {
        body.insert("Description".into(), json!(d));
    }
    let path = format!("/2015-03-31/functions/{}/versions", encode(&args.name));
    let subject = format!("function `{}`", args.name);
    call_and_print(client, Method::POST, &path, body, &subject)
}

/// Runs one `warden alias` command.
pub fn run(client: &Client, cmd: &AliasCommand) -> anyhow::Result<()> {
    match cmd {
        AliasCommand::Create(a) => {
            let Some(version) = &a.function_version else {
                anyhow::bail!(
                    "--function-version is required to create an alias (a version number or `$LATEST`)"
                );
            };
            let mut body = Map::new();
            body.insert("Name".into(), json!(a.alias));
            body.insert("FunctionVersion".into(), json!(version));
            if let Some(d) = &a.description {
                body.insert("Description".into(), json!(d));
            }
            let path = format!("/2015-03-31/functions/{}/aliases", encode(&a.function));
            let subject = format!("function `{}`", a.function);
            call_and_print(client, Method::POST, &path, body, &subject)
        }
        AliasCommand::Update(a) => {
            let mut body = Map::new();
            if let Some(v) = &a.function_version {
                body.insert("FunctionVersion".into(), json!(v));
            }
            if let Some(d) = &a.description {
                body.insert("Description".into(), json!(d));
            }
            if body.is_empty() {
                anyhow::bail!("nothing to update: give --function-version or --description");
            }
            let path = format!(
                "/2015-03-31/functions/{}/aliases/{}",
                encode(&a.function),
                encode(&a.alias)
            );
            let subject = format!("alias `{}` of function `{}`", a.alias, a.function);
            call_and_print(client, Method::PUT, &path, body, &subject)
        }
        AliasCommand::Delete(a) => {
            let path = format!(
                "/2015-03-31/functions/{}/aliases/{}",
                encode(&a.function),
                encode(&a.alias)
            );
            let subject = format!("alias `{}` of function `{}`", a.alias, a.function);
            client.call(Method::DELETE, &path, &[], None, &subject)?;
            eprintln!("deleted alias `{}` of function `{}`", a.alias, a.function);
            Ok(())
        }
        AliasCommand::List(f) => {
            let mut aliases = Vec::new();
            let mut marker: Option<String> = None;
            let subject = format!("function `{}`", f.function);
            loop {
                let mut path = format!("/2015-03-31/functions/{}/aliases", encode(&f.function));
                if let Some(m) = &marker {
                    path.push_str(&format!("?Marker={}", encode(m)));
                }
                let page = client
                    .call(Method::GET, &path, &[], None, &subject)?
                    .json()?;
                if let Some(list) = page.get("Aliases").and_then(Value::as_array) {
                    aliases.extend(list.iter().cloned());
                }
                match page.get("NextMarker").and_then(Value::as_str) {
                    Some(m) if !m.is_empty() && Some(m) != marker.as_deref() => {
                        marker = Some(m.to_owned());
                    }
                    _ => break,
                }
            }
            print_json(&json!({ "Aliases": aliases }))
        }
    }
}
