//! `warden network flows NAME` and `warden network dns-queries NAME`: a function's flow log
//! (VPC Flow Logs' default format) and DNS query log, from Warden's own endpoints; `warden
//! network vpc|subnet|sg ...` are dispatched to [`super::ec2`].
//!
//! DNS names come from functions: every control or bidirectional-override character is
//! shown escaped, so a name cannot act on the operator's terminal.

use clap::{Args, Subcommand};
use http::Method;
use serde_json::Value;

use super::client::{encode, Client};

/// `warden network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Print a function's flow log records (version 2 format, then function and instance)
    Flows(LogArgs),
    /// Print a function's DNS queries: time, instance, name, type, action, rule, answer
    DnsQueries(LogArgs),
    /// Create, list and delete VPCs
    #[command(subcommand)]
    Vpc(super::ec2::VpcCommand),
    /// Create, list and delete subnets
    #[command(subcommand)]
    Subnet(super::ec2::SubnetCommand),
    /// Security groups: create, list, show, delete, allow and revoke rules
    #[command(subcommand)]
    Sg(super::ec2::SgCommand),
}

/// A function and how many records.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Function name
    pub name: String,
    /// The newest N records
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Print the records as the API returns them (JSON)
    #[arg(long)]
    pub json: bool,
}

/// Runs one `warden network` command.
pub fn run(client: &Client, cmd: &NetworkCommand) -> anyhow::Result<()> {
    let (args, what) = match cmd {
        NetworkCommand::Flows(a) => (a, "flows"),
        NetworkCommand::DnsQueries(a) => (a, "dns-queries"),
        NetworkCommand::Vpc(c) => return super::ec2::run_vpc(client, c),
        NetworkCommand::Subnet(c) => return super::ec2::run_subnet(client, c),
        NetworkCommand::Sg(c) => return super::ec2::run_sg(client, c),
    };
    let path = format!(
        "/_warden/2026-11-01/functions/{}/{what}?limit={}",
        encode(&args.name),
        args.limit
    );
    let reply = client.call(Method::GET, &path, &[], None, &args.name)?;
    let v = reply.json()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for line in render(&v, what) {
        println!("{line}");
    }
    Ok(())
}

/// The lines `warden network` prints for an endpoint's answer.
fn render(v: &Value, what: &str) -> Vec<String> {
    let text = |r: &Value, k: &str| escape(r.get(k).and_then(Value::as_str).unwrap_or("-"));
    if what == "flows" {
        let mut out: Vec<String> = v
            .get("Records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .zip(
                v.get("Lines")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            )
            .map(|(r, line)| {
                format!(
                    "{} {} {}",
                    escape(line.as_str().unwrap_or("")),
                    text(r, "function"),
                    text(r, "instance")
                )
            })
            .collect();
        if let Some(n) = v.get("RejectedFlows").and_then(Value::as_u64) {
            out.push(format!("# rejected flows kept: {n}"));
        }
        out
    } else {
        v.get("Queries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                let answers: Vec<String> = r
                    .get("Answers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(escape)
                    .collect();
                let time = r
                    .get("TimeMs")
                    .and_then(Value::as_i64)
                    .and_then(|ms| {
                        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                            .ok()
                    })
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "-".to_owned());
                let rule = text(r, "Rule");
                format!(
                    "{time} {} {} {} {}{} {} {}",
                    text(r, "Instance"),
                    text(r, "Name"),
                    text(r, "QueryType"),
                    text(r, "Action"),
                    if rule.is_empty() {
                        String::new()
                    } else {
                        format!("({rule})")
                    },
                    text(r, "ResponseCode"),
                    if answers.is_empty() {
                        "-".to_owned()
                    } else {
                        answers.join(",")
                    },
                )
            })
            .collect()
    }
}

/// `s` with control and bidirectional-override characters escaped.
pub(super) fn escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control()
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
            {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flows_and_queries_render_one_line_each_escaped() {
        let flows = json!({
            "Records": [{"function": "f", "instance": "i-01"}],
            "Lines": ["2 123 eni-01 198.18.0.2 10.0.0.1 1 2 6 3 180 1 61 ACCEPT OK"],
            "RejectedFlows": 4
        });
        assert_eq!(
            render(&flows, "flows"),
            [
                "2 123 eni-01 198.18.0.2 10.0.0.1 1 2 6 3 180 1 61 ACCEPT OK f i-01",
                "# rejected flows kept: 4"
            ]
        );
        let queries = json!({"Queries": [{
            "TimeMs": 0, "Instance": "i-01", "Name": "evil\u{1b}[2J.example.", "QueryType": "A",
            "Action": "BLOCK", "Rule": "r", "ResponseCode": "Non-Existent Domain", "Answers": []
        }]});
        let lines = render(&queries, "dns-queries");
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].contains('\u{1b}'), "{}", lines[0]);
        assert!(lines[0].contains("BLOCK(r)"), "{}", lines[0]);
        assert!(
            lines[0].starts_with("1970-01-01T00:00:00Z i-01"),
            "{}",
            lines[0]
        );
    }
}
