//! `warden logs`: print a function's log lines, optionally following new ones.

use std::io::Write;

use clap::Args;
use http::Method;
use serde_json::Value;

use super::client::{encode, Client};

/// Records asked for per request.
const BATCH: u32 = 500;
/// How long the server may hold a `--follow` request open waiting for new lines.
const FOLLOW_WAIT_SECONDS: u32 = 20;

/// `warden logs`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Function name
    pub name: String,
    /// Keep waiting for new lines until interrupted
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines after this sequence number [default: all that are kept]
    #[arg(long, value_name = "N")]
    pub since_seq: Option<u64>,
}

/// One page of the log endpoint.
#[derive(Debug, PartialEq)]
struct Page {
    messages: Vec<String>,
    next_seq: Option<u64>,
}

fn parse_page(v: &Value) -> Page {
    let messages = v
        .get("records")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("message").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    Page {
        messages,
        next_seq: v.get("nextSeq").and_then(Value::as_u64),
    }
}

/// Prints log lines; with `--follow`, long-polls until interrupted.
pub fn logs(client: &Client, args: &LogsArgs) -> anyhow::Result<()> {
    let subject = format!("function `{}`", args.name);
    let mut after = args.since_seq.unwrap_or(0);
    let wait = if args.follow { FOLLOW_WAIT_SECONDS } else { 0 };
    let out = std::io::stdout();
    loop {
        let path = format!(
            "/_warden/2026-11-01/functions/{}/logs?after={after}&limit={BATCH}&wait={wait}",
            encode(&args.name)
        );
        let page = parse_page(
            &client
                .call(Method::GET, &path, &[], None, &subject)?
                .json()?,
        );
        let got_any = !page.messages.is_empty();
        {
            let mut lock = out.lock();
            for m in &page.messages {
                // A closed pipe (`| head`) ends the command quietly.
                if writeln!(lock, "{}", m.trim_end_matches('\n')).is_err() {
                    return Ok(());
                }
            }
            if lock.flush().is_err() {
                return Ok(());
            }
        }
        let advanced = page.next_seq.is_some_and(|n| n > after);
        if let Some(n) = page.next_seq {
            after = after.max(n);
        }
        if !args.follow && (!got_any || !advanced) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_page() {
        let v = json!({
            "records": [
                {"seq": 1, "timestampMs": 1, "requestId": null, "message": "START RequestId: x\n"},
                {"seq": 2, "timestampMs": 2, "requestId": "x", "message": "hello"}
            ],
            "nextSeq": 3
        });
        assert_eq!(
            parse_page(&v),
            Page {
                messages: vec!["START RequestId: x\n".into(), "hello".into()],
                next_seq: Some(3)
            }
        );
        assert_eq!(
            parse_page(&json!({})),
            Page {
                messages: vec![],
                next_seq: None
            }
        );
    }
}
