//! `warden layer publish|list|delete`: layers, through Lambda's own API (so the AWS CLI
//! sees the same).

use std::path::PathBuf;

use base64::Engine as _;
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{json, Value};

use super::client::{encode, Client};

/// `warden layer ...`
#[derive(Debug, Subcommand)]
pub enum LayerCommand {
    /// Publish a directory or zip as a new version of a layer and print it as JSON
    Publish(PublishArgs),
    /// List layers (each with its newest version) as JSON
    List,
    /// Delete one version of a layer (functions that use it keep it)
    Delete(DeleteArgs),
}

/// `warden layer publish`
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// A directory to zip, or a ready .zip file; its top level is what /opt shows
    /// (`python/`, `nodejs/node_modules/`, `bin/`, `lib/`)
    pub source: PathBuf,
    /// Layer name
    #[arg(long, short = 'n')]
    pub name: String,
    /// Description of the version
    #[arg(long)]
    pub description: Option<String>,
    /// A runtime the layer is meant for, repeatable (informational, as on Lambda)
    #[arg(long = "compatible-runtime", value_name = "RUNTIME")]
    pub compatible_runtimes: Vec<String>,
    /// License of the layer's contents
    #[arg(long)]
    pub license_info: Option<String>,
}

/// `warden layer delete`
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Layer name
    pub name: String,
    /// Version number
    #[arg(value_name = "VERSION")]
    pub version_number: u64,
}

/// Runs a `warden layer` command.
pub fn run(client: &Client, cmd: &LayerCommand) -> anyhow::Result<()> {
    match cmd {
        LayerCommand::Publish(args) => {
            let zip = super::function::load_package(&args.source)?;
            let mut body = json!({
                "Content": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
            });
            if let Some(d) = &args.description {
                body["Description"] = json!(d);
            }
            if !args.compatible_runtimes.is_empty() {
                body["CompatibleRuntimes"] = json!(args.compatible_runtimes);
            }
            if let Some(l) = &args.license_info {
                body["LicenseInfo"] = json!(l);
            }
            let path = format!("/2018-10-31/layers/{}/versions", encode(&args.name));
            let subject = format!("layer `{}`", args.name);
            let answer = client
                .call(
                    Method::POST,
                    &path,
                    &[],
                    Some(serde_json::to_vec(&body)?),
                    &subject,
                )?
                .json()?;
            super::alias::print_json(&answer)
        }
        LayerCommand::List => {
            let mut layers: Vec<Value> = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let path = match &marker {
                    Some(m) => format!("/2018-10-31/layers?Marker={}", encode(m)),
                    None => "/2018-10-31/layers".to_owned(),
                };
                let page = client
                    .call(Method::GET, &path, &[], None, "layers")?
                    .json()?;
                layers.extend(page["Layers"].as_array().cloned().unwrap_or_default());
                match page["NextMarker"].as_str() {
                    Some(m) => marker = Some(m.to_owned()),
                    None => break,
                }
            }
            super::alias::print_json(&json!({ "Layers": layers }))
        }
        LayerCommand::Delete(args) => {
            let path = format!(
                "/2018-10-31/layers/{}/versions/{}",
                encode(&args.name),
                args.version_number
            );
            let subject = format!("version {} of layer `{}`", args.version_number, args.name);
            client.call(Method::DELETE, &path, &[], None, &subject)?;
            Ok(())
        }
    }
}
