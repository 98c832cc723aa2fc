//! `warden invoke`: call a function and print what it returned.

use std::io::{IsTerminal, Write};

use base64::Engine;
use clap::Args;
use http::Method;

use super::{
    args::{parse_payload, Payload},
    client::{encode, Client},
    with_qualifier,
};

fn payload_arg(s: &str) -> Result<Payload, String> {
    Ok(parse_payload(s))
}

/// `warden invoke`
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// Function name or ARN
    pub name: String,
    /// JSON payload, `@file` to read a file or `@-` for stdin [default: {}]
    #[arg(value_parser = payload_arg)]
    pub payload: Option<Payload>,
    /// Version or alias
    #[arg(long, short = 'q')]
    pub qualifier: Option<String>,
    /// Queue the event and return at once (invocation type `Event`)
    #[arg(long, conflicts_with = "tail")]
    pub event: bool,
    /// Print the last 4 KB of the invocation's log to stderr (control characters escaped)
    #[arg(long)]
    pub tail: bool,
}

/// Invokes, prints the payload to stdout and the tail log to stderr.
///
/// Exits the process with status 1 (after printing) when the function reports an error.
pub fn invoke(client: &Client, args: &InvokeArgs) -> anyhow::Result<()> {
    let payload = match &args.payload {
        Some(p) => p.read()?,
        None => b"{}".to_vec(),
    };
    let path = with_qualifier(
        format!("/2015-03-31/functions/{}/invocations", encode(&args.name)),
        args.qualifier.as_deref(),
    );
    let mut headers = vec![(
        "X-Amz-Invocation-Type",
        if args.event {
            "Event"
        } else {
            "RequestResponse"
        },
    )];
    if args.tail {
        headers.push(("X-Amz-Log-Type", "Tail"));
    }
    let subject = format!("function `{}`", args.name);
    let reply = client.call(Method::POST, &path, &headers, Some(payload), &subject)?;

    if let Some(log) = reply.header("X-Amz-Log-Result") {
        match base64::engine::general_purpose::STANDARD.decode(log) {
            Ok(text) => {
                let mut err = std::io::stderr().lock();
                // The tail is Lambda's plain text, which cannot say who wrote a line, but
                // nothing in it may act on the terminal: escaped line by line.
                let text = String::from_utf8_lossy(&text);
                for line in text.lines() {
                    // Best effort: the payload matters more than the log.
                    let _ = writeln!(err, "{}", super::logs::escape_for_terminal(line));
                }
            }
            Err(_) => eprintln!("warning: the server sent a log tail that is not base64"),
        }
    }
    if args.event {
        eprintln!("queued (HTTP {})", reply.status);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&reply.body)?;
    if out.is_terminal() && !reply.body.ends_with(b"\n") {
        writeln!(out)?;
    }
    out.flush()?;
    if let Some(kind) = reply.header("X-Amz-Function-Error") {
        eprintln!("error: {subject} returned an error ({kind})");
        std::process::exit(1);
    }
    Ok(())
}
