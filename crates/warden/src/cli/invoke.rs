//! `warden invoke`: call a function and print what it returned.

use std::io::Write;

use base64::Engine;
use clap::Args;
use http::Method;

use super::{
    args::{parse_payload, Payload},
    client::{encode, ApiError, Client},
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
    let reply = match client.call(Method::POST, &path, &headers, Some(payload), &subject) {
        Ok(reply) => reply,
        Err(e) => return Err(name_what_is_missing(client, args, e)),
    };

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
    // The output ends with a newline, on a terminal and in a file alike (a JSON reader
    // ignores it).
    if !reply.body.ends_with(b"\n") {
        writeln!(out)?;
    }
    out.flush()?;
    if let Some(kind) = reply.header("X-Amz-Function-Error") {
        eprintln!("error: {subject} returned an error ({kind})");
        std::process::exit(1);
    }
    Ok(())
}

/// The function and the qualifier of `name[:qualifier]` or a function ARN with a
/// qualifier (`--qualifier` wins); function names hold no `:`.
fn split_qualifier<'a>(name: &'a str, qualifier: Option<&'a str>) -> (&'a str, Option<&'a str>) {
    let (base, in_name) = if name.starts_with("arn:") {
        match name.rfind(':') {
            // `arn:aws:lambda:REGION:ACCOUNT:function:NAME:QUALIFIER` has 7 colons.
            Some(at) if name.matches(':').count() == 7 => (&name[..at], Some(&name[at + 1..])),
            _ => (name, None),
        }
    } else {
        match name.split_once(':') {
            Some((base, q)) => (base, Some(q)),
            None => (name, None),
        }
    };
    (base, qualifier.or(in_name))
}

/// When a qualified invoke is "not found" but the function exists, says that the version
/// or alias is what is missing; otherwise returns `error` as it is.
fn name_what_is_missing(client: &Client, args: &InvokeArgs, error: anyhow::Error) -> anyhow::Error {
    let not_found = error
        .downcast_ref::<ApiError>()
        .is_some_and(|e| e.code == "ResourceNotFoundException");
    let (function, qualifier) = split_qualifier(&args.name, args.qualifier.as_deref());
    let Some(qualifier) = qualifier.filter(|_| not_found) else {
        return error;
    };
    let path = format!("/2015-03-31/functions/{}", encode(function));
    match client.send(Method::GET, &path, &[], None) {
        Ok(reply) if (200..300).contains(&reply.status) => anyhow::anyhow!(
            "function `{function}` has no version or alias `{qualifier}` (ResourceNotFoundException)"
        ),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qualifier_comes_from_the_flag_the_name_or_the_arn() {
        assert_eq!(split_qualifier("f", None), ("f", None));
        assert_eq!(split_qualifier("f:prod", None), ("f", Some("prod")));
        assert_eq!(split_qualifier("f:prod", Some("2")), ("f", Some("2")));
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
        assert_eq!(split_qualifier(arn, None), (arn, None));
        assert_eq!(
            split_qualifier(&format!("{arn}:live"), None),
            (arn, Some("live"))
        );
    }
}
