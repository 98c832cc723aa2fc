//! `warden logs`: print a function's log lines, optionally following new ones.
//!
//! The human format starts each line with the time it was logged (UTC, milliseconds).
//! Function output is untrusted text on the operator's terminal. In the human format every
//! control character (escape sequences included) and every bidirectional-override
//! character is shown escaped, and the function's lines sit under a `| ` gutter while
//! Warden's own lines (`START`, `END`, `REPORT`, markers) start at the margin, so a
//! function printing `REPORT RequestId: ...` cannot pass it off as Warden's. `--output
//! json` prints each record as the API returns it, message bytes unchanged (JSON escapes
//! what a terminal would act on).

use std::borrow::Cow;
use std::io::Write;

use clap::{Args, ValueEnum};
use http::Method;
use serde_json::Value;

use super::client::{encode, Client};

/// Records asked for per request.
const BATCH: u32 = 500;
/// How long the server may hold a `--follow` request open waiting for new lines.
const FOLLOW_WAIT_SECONDS: u32 = 20;
/// What precedes each line the function wrote, in the human format.
pub const FUNCTION_GUTTER: &str = "  | ";

/// How `warden logs` prints records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One line per record, escaped, function output under a `| ` gutter
    Text,
    /// One JSON object per record (seq, timestampMs, requestId, source, message), unescaped
    Json,
}

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
    /// Only lines matching this CloudWatch Logs filter pattern (`ERROR`, `"a phrase"`,
    /// `?ERROR ?WARN`, `{ $.level = "ERROR" }`, `[ip, user, status = 5*]`)
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Only lines logged in the last DURATION (`30s`, `15m`, `1h`, `2d`) or since a time
    /// (`2026-12-04T10:00:00Z`)
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_since)]
    pub since: Option<i64>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `--since`: a duration back from now, or an RFC 3339 time; epoch milliseconds.
pub(crate) fn parse_since(text: &str) -> Result<i64, String> {
    since_at(text, warden_types::now_millis())
}

fn since_at(text: &str, now_ms: i64) -> Result<i64, String> {
    let unit_ms = |unit: &str| match unit {
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        "d" => Some(86_400_000),
        "w" => Some(7 * 86_400_000),
        _ => None,
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        let (n, unit) = text.split_at(digits);
        if let (Ok(n), Some(ms)) = (n.parse::<i64>(), unit_ms(unit)) {
            return n
                .checked_mul(ms)
                .map(|back| now_ms.saturating_sub(back).max(0))
                .ok_or_else(|| format!("`{text}` reaches too far back"));
        }
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).clamp(0, i64::MAX as i128) as i64)
        .map_err(|_| {
            format!("`{text}` is neither a duration (30s, 15m, 1h, 2d, 1w) nor an RFC 3339 time")
        })
}

/// One record of the log endpoint.
#[derive(Debug, PartialEq)]
struct Record {
    /// When it was logged, in epoch milliseconds, if the server said.
    timestamp_ms: Option<i64>,
    /// Whether Warden wrote it; anything but an explicit `platform` is the function's.
    platform: bool,
    message: String,
    raw: Value,
}

/// One page of the log endpoint.
#[derive(Debug, PartialEq)]
struct Page {
    records: Vec<Record>,
    next_seq: Option<u64>,
}

fn parse_page(v: &Value) -> Page {
    let records = v
        .get("records")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(Record {
                timestamp_ms: r.get("timestampMs").and_then(Value::as_i64),
                platform: r.get("source").and_then(Value::as_str) == Some("platform"),
                message: r.get("message").and_then(Value::as_str)?.to_owned(),
                raw: r.clone(),
            })
        })
        .collect();
    Page {
        records,
        next_seq: v.get("nextSeq").and_then(Value::as_u64),
    }
}

/// Characters that reorder the text around them (the "Trojan Source" family); shown
/// escaped so that a line reads as it is stored.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character but tab, and every bidirectional control, written
/// as an escape (`\x1b`, `\u{202e}`): nothing in it can act on a terminal.
pub fn escape_for_terminal(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| (c.is_control() && c != '\t') || is_bidi_control(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if u32::from(c) < 0x80 {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        }
    }
    Cow::Owned(out)
}

/// How one record is shown in the human format. A record of several lines (a traceback
/// logged as one event) keeps its line breaks; each further line starts under the first,
/// behind the same gutter, so it cannot pass for a line of its own.
fn render(record: &Record) -> String {
    let time = match record.timestamp_ms {
        Some(ms) => warden_types::iso_timestamp(ms),
        None => format!("{:<24}", "-"),
    };
    let gutter = if record.platform { "" } else { FUNCTION_GUTTER };
    let indent = " ".repeat(time.chars().count());
    let mut out = String::new();
    for (i, line) in record
        .message
        .trim_end_matches('\n')
        .split('\n')
        .enumerate()
    {
        if i > 0 {
            out.push('\n');
            out.push_str(&indent);
            out.push(' ');
            out.push_str(gutter);
        } else {
            out.push_str(&time);
            out.push(' ');
            out.push_str(gutter);
        }
        out.push_str(&escape_for_terminal(line));
    }
    out
}

/// Prints log lines; with `--follow`, long-polls until interrupted.
pub fn logs(client: &Client, args: &LogsArgs) -> anyhow::Result<()> {
    let subject = format!("function `{}`", args.name);
    let mut after = args.since_seq.unwrap_or(0);
    let wait = if args.follow { FOLLOW_WAIT_SECONDS } else { 0 };
    let out = std::io::stdout();
    loop {
        let mut path = format!(
            "/_warden/2026-11-01/functions/{}/logs?after={after}&limit={BATCH}&wait={wait}",
            encode(&args.name)
        );
        if let Some(pattern) = &args.filter {
            path.push_str(&format!("&filter={}", encode(pattern)));
        }
        if let Some(since) = args.since {
            path.push_str(&format!("&since={since}"));
        }
        let page = parse_page(
            &client
                .call(Method::GET, &path, &[], None, &subject)?
                .json()?,
        );
        {
            let mut lock = out.lock();
            for r in &page.records {
                let line = match args.output {
                    Output::Text => render(r),
                    Output::Json => r.raw.to_string(),
                };
                // A closed pipe (`| head`) ends the command quietly.
                if writeln!(lock, "{line}").is_err() {
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
        // A filtered page may match nothing yet move on; the end is a page that did not.
        if !args.follow && !advanced {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn since_takes_durations_and_times() {
        let now = 1_800_000_000_000;
        assert_eq!(since_at("30s", now), Ok(now - 30_000));
        assert_eq!(since_at("15m", now), Ok(now - 900_000));
        assert_eq!(since_at("1h", now), Ok(now - 3_600_000));
        assert_eq!(since_at("2d", now), Ok(now - 172_800_000));
        assert_eq!(since_at("2026-12-04T10:00:00Z", now), Ok(1_796_378_400_000));
        for bad in ["", "h", "10", "10y", "yesterday", "99999999999999999999w"] {
            assert!(since_at(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_a_page() {
        let start = json!({"seq": 1, "timestampMs": 1, "requestId": null, "source": "platform", "message": "START RequestId: x\n"});
        let hello = json!({"seq": 2, "timestampMs": 2, "requestId": "x", "source": "function", "message": "hello"});
        // A server without the `source` field: nothing it sent is trusted as Warden's.
        let old =
            json!({"seq": 3, "timestampMs": 3, "requestId": "x", "message": "END RequestId: x"});
        let v = json!({ "records": [start, hello, old], "nextSeq": 3 });
        let page = parse_page(&v);
        assert_eq!(page.next_seq, Some(3));
        let seen: Vec<_> = page
            .records
            .iter()
            .map(|r| (r.platform, r.message.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (true, "START RequestId: x\n"),
                (false, "hello"),
                (false, "END RequestId: x")
            ]
        );
        assert_eq!(page.records[1].raw, hello);
        assert_eq!(
            parse_page(&json!({})),
            Page {
                records: vec![],
                next_seq: None
            }
        );
    }

    #[test]
    fn function_lines_cannot_pass_for_platform_lines() {
        let record = |platform, message: &str| Record {
            timestamp_ms: Some(1_764_788_400_123),
            platform,
            message: message.into(),
            raw: Value::Null,
        };
        let real = "REPORT RequestId: r\tDuration: 1.00 ms";
        let time = "2025-12-03T19:00:00.123Z";
        assert_eq!(render(&record(true, real)), format!("{time} {real}"));
        assert_eq!(render(&record(false, real)), format!("{time}   | {real}"));
        // Escape sequences are shown, not run; a carriage return cannot rewind the line
        // over the gutter.
        assert_eq!(
            render(&record(false, "\x1b[2J\x1b]0;pwned\x07\rREPORT")),
            format!("{time}   | \\x1b[2J\\x1b]0;pwned\\x07\\x0dREPORT")
        );
        assert_eq!(
            render(&record(false, "a\u{202e}b\u{9b}31m")),
            format!("{time}   | a\\u{{202e}}b\\u{{009b}}31m")
        );
        // One event of several lines keeps its line breaks, each further line under the
        // gutter, so a line of it cannot pose as Warden's.
        let pad = " ".repeat(time.len());
        assert_eq!(
            render(&record(
                false,
                "[ERROR] ValueError: no\nTraceback:\nREPORT RequestId: fake"
            )),
            format!("{time}   | [ERROR] ValueError: no\n{pad}   | Traceback:\n{pad}   | REPORT RequestId: fake")
        );
    }

    proptest! {
        #[test]
        fn escaped_text_holds_nothing_a_terminal_acts_on(text in any::<String>()) {
            let escaped = escape_for_terminal(&text);
            prop_assert!(!escaped.chars().any(|c| (c.is_control() && c != '\t') || is_bidi_control(c)));
            // Text without such characters is shown as it is.
            if !text.chars().any(|c| (c.is_control() && c != '\t') || is_bidi_control(c)) {
                prop_assert_eq!(escaped.as_ref(), text.as_str());
            }
        }
    }
}
