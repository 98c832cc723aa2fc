//! `warden config history NAME`: a resource's configuration items (AWS Config's
//! `GetResourceConfigHistory` through the API, with the caller's credentials), oldest
//! first, each shown as what changed since the one before it.

use anyhow::bail;
use serde_json::{json, Value};

/// `warden config ...`
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Show how a resource's configuration changed, and which calls changed it
    History(HistoryArgs),
}

/// `warden config history`
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The resource's id: a function's name, `FUNCTION:ALIAS`, a role's or user's name, a
    /// key id, a secret's name, a security group id
    name: String,
    /// Its type
    #[arg(long = "type", default_value = "AWS::Lambda::Function")]
    resource_type: String,
    /// Print the configuration items as JSON lines instead
    #[arg(long)]
    json: bool,
}

/// Runs `warden config ...`.
pub fn run(cmd: ConfigCommand, endpoint: &str) -> anyhow::Result<()> {
    let ConfigCommand::History(args) = cmd;
    let client = crate::cli::Client::new(endpoint)?;
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({
            "resourceType": args.resource_type,
            "resourceId": args.name,
            "chronologicalOrder": "Forward",
            "limit": 100,
        });
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let reply = client.send_for(
            "config",
            http::Method::POST,
            "/",
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                (
                    "X-Amz-Target",
                    "StarlingDoveService.GetResourceConfigHistory",
                ),
            ],
            Some(serde_json::to_vec(&body)?),
        )?;
        if !(200..300).contains(&reply.status) {
            return Err(crate::cli::ApiError::from_reply(&reply)
                .about(&args.name)
                .into());
        }
        let page = reply.json()?;
        items.extend(
            page["configurationItems"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        token = page["nextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
        if items.len() > 100_000 {
            bail!("more than 100,000 configuration items; stopping");
        }
    }
    if args.json {
        for item in &items {
            println!("{item}");
        }
        return Ok(());
    }
    let mut previous = Value::Null;
    for item in &items {
        let configuration: Value = item["configuration"]
            .as_str()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Value::Null);
        let time = item["configurationItemCaptureTime"].as_f64().unwrap_or(0.0);
        let when = time::OffsetDateTime::from_unix_timestamp(time as i64)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let events: Vec<&str> = item["relatedEvents"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "state {}  {}  {}  (events: {})",
            item["configurationStateId"].as_str().unwrap_or("?"),
            when,
            item["configurationItemStatus"].as_str().unwrap_or("?"),
            events.join(", ")
        );
        if previous.is_null() && !configuration.is_null() {
            println!("  + {configuration}");
        } else {
            for change in warden_config::diff(&previous, &configuration) {
                let show =
                    |v: &Option<Value>| v.as_ref().map_or("(none)".to_owned(), Value::to_string);
                match (&change.before, &change.after) {
                    (None, Some(_)) => println!("  + {}: {}", change.path, show(&change.after)),
                    (Some(_), None) => println!("  - {}: {}", change.path, show(&change.before)),
                    _ => println!(
                        "  ~ {}: {} -> {}",
                        change.path,
                        show(&change.before),
                        show(&change.after)
                    ),
                }
            }
        }
        previous = configuration;
    }
    Ok(())
}
