//! Function logs under hostile output, through a real server: a function printing flat
//! out is slowed down instead of growing the server's memory or disk, what cannot be kept
//! is replaced by a counted marker, other functions keep logging, and `warden logs` shows
//! function output so that it can neither drive the terminal nor pass for Warden's lines.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{unb64, Server};

/// Resident memory of a process in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Invokes synchronously with raw signed HTTP; returns (status, headers, payload).
fn invoke(
    s: &Server,
    name: &str,
    payload: &Value,
    tail: bool,
) -> (u16, Vec<(String, String)>, Value) {
    let mut headers = vec![];
    if tail {
        headers.push(("X-Amz-Log-Type", "Tail"));
    }
    let (status, headers, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &headers,
        payload.to_string().as_bytes(),
    );
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, headers, body)
}

fn log_tail(headers: &[(String, String)]) -> String {
    let (_, v) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-log-result"))
        .expect("X-Amz-Log-Result");
    String::from_utf8(unb64(v)).unwrap()
}

const RATE_KIB: u64 = 256;
const CAP_MIB: u64 = 2;

#[test]
fn a_flooding_function_is_slowed_and_the_server_memory_and_log_database_stay_bounded() {
    let rate = RATE_KIB.to_string();
    let cap = CAP_MIB.to_string();
    let s = Server::start_with(&["--log-rate-kib", &rate, "--log-max-mib", &cap]);
    s.create_fixture("flood", &["--timeout", "120", "--memory-size", "1769"]);
    s.create_fixture("quiet", &[]);
    // Warm both up so the baseline includes a running server's usual memory.
    assert_eq!(
        invoke(
            &s,
            "flood",
            &serde_json::json!({"action": "flood", "lines": 10}),
            false
        )
        .0,
        200
    );
    assert_eq!(invoke(&s, "quiet", &serde_json::json!({}), false).0, 200);
    let pid = s.pid();
    let baseline = rss_kib(pid);
    let logs_db = s.data_dir.join("warden.logs.db");
    let logs_wal = s.data_dir.join("warden.logs.db-wal");

    let instances = 4;
    let flood_ms = 8000;
    let started = Instant::now();
    let (reports, peak_rss, peak_db, quiet_tail) = std::thread::scope(|scope| {
        let floods: Vec<_> = (0..instances)
            .map(|_| {
                scope.spawn(|| {
                    // Short lines: the server's cost is per line, so these flood it fastest.
                    let event =
                        serde_json::json!({"action": "flood", "ms": flood_ms, "bytes": 100});
                    let (status, _, body) = invoke(&s, "flood", &event, false);
                    assert_eq!(status, 200, "{body}");
                    body
                })
            })
            .collect();
        let mut peak_rss = baseline;
        let mut peak_db = 0;
        let mut quiet_tail = None;
        while !floods.iter().all(|f| f.is_finished()) {
            peak_rss = peak_rss.max(rss_kib(pid));
            peak_db = peak_db.max(file_len(&logs_db));
            if quiet_tail.is_none() && started.elapsed() > Duration::from_millis(2000) {
                // Another function, in the middle of the flood, still logs.
                let (status, headers, _) = invoke(
                    &s,
                    "quiet",
                    &serde_json::json!({"action": "print", "text": "quiet during the flood"}),
                    true,
                );
                assert_eq!(status, 200);
                let tail = log_tail(&headers);
                s.wait_logs("quiet", Duration::from_secs(30), |l| {
                    l.iter().any(|x| x == "quiet during the flood")
                        && l.iter()
                            .filter(|x| x.starts_with("REPORT RequestId: "))
                            .count()
                            >= 2
                });
                quiet_tail = Some(tail);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let reports: Vec<Value> = floods.into_iter().map(|f| f.join().unwrap()).collect();
        (reports, peak_rss, peak_db, quiet_tail)
    });
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "flood: {reports:?} in {elapsed:.1} s; server RSS {baseline} -> {peak_rss} KiB; logs database up to {peak_db} bytes"
    );

    // The server's memory did not follow the flood.
    let grown_mib = peak_rss.saturating_sub(baseline) / 1024;
    assert!(
        grown_mib < 48,
        "the server grew by {grown_mib} MiB (from {baseline} KiB) while functions flooded their logs"
    );

    // Back-pressure: together the instances wrote no more than the rate allows over the
    // time they ran, plus one second's burst and what their buffers and pipes hold.
    let written: u64 = reports.iter().map(|r| r["bytes"].as_u64().unwrap()).sum();
    let allowed = (RATE_KIB * 1024) as f64 * (elapsed + 1.0) + (instances * 1024 * 1024) as f64;
    assert!(
        (written as f64) <= allowed,
        "the flood wrote {written} bytes in {elapsed:.1} s against a rate of {RATE_KIB} KiB/s"
    );
    assert!(written > 0);

    // The logs database stays near its cap while the flood runs, and under it once the
    // pruner caught up.
    let cap_bytes = CAP_MIB * 1024 * 1024;
    assert!(
        peak_db <= 2 * cap_bytes,
        "the logs database reached {peak_db} bytes with a cap of {cap_bytes}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while file_len(&logs_db) > cap_bytes + cap_bytes / 10 {
        assert!(
            Instant::now() < deadline,
            "the logs database stayed at {} bytes with a cap of {cap_bytes}",
            file_len(&logs_db)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        file_len(&logs_wal) <= 16 * 1024 * 1024,
        "the write-ahead log holds {} bytes",
        file_len(&logs_wal)
    );

    // The other function's logs were written during the flood, and still are after it.
    let tail = quiet_tail.expect("the quiet function ran during the flood");
    assert!(tail.contains("quiet during the flood"), "{tail}");
    assert!(tail.contains("REPORT RequestId: "), "{tail}");
    invoke(
        &s,
        "quiet",
        &serde_json::json!({"action": "print", "text": "quiet after the flood"}),
        false,
    );
    s.wait_logs("quiet", Duration::from_secs(30), |l| {
        l.iter().any(|x| x == "quiet after the flood")
    });
    // The flood's newest lines are kept and framed. (The log writer stores lines off the
    // invocation's path: wait until every flood invocation's REPORT is stored.)
    let flood = s.wait_logs("flood", Duration::from_secs(30), |l| {
        l.iter()
            .filter(|x| x.starts_with("REPORT RequestId: "))
            .count()
            >= 4
    });
    assert!(flood.iter().any(|l| l.starts_with("flood ")));
    assert!(
        flood.last().unwrap().starts_with("REPORT RequestId: "),
        "{:?}",
        flood.last()
    );
}

/// Records of a function's log as `--output json` prints them.
fn json_records(s: &Server, name: &str) -> Vec<Value> {
    let out = s.warden(&["logs", name, "--output", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn output_past_the_rate_at_the_end_of_an_invocation_is_replaced_by_a_counted_marker() {
    // One KiB per second: a function printing 40 KB at once and returning is far over it.
    let s = Server::start_with(&["--log-rate-kib", "1"]);
    s.create_fixture("burst", &[]);
    let event = serde_json::json!({"action": "flood", "lines": 40, "bytes": 1000, "ms": 60000});
    let (status, headers, body) = invoke(&s, "burst", &event, true);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["lines"], 40,
        "the function was not blocked: its pipe holds 40 KB"
    );
    let tail = log_tail(&headers);
    assert!(tail.contains("[truncated] "), "{tail}");

    let records = s
        .wait_logs("burst", Duration::from_secs(30), |l| {
            l.iter().any(|x| x.starts_with("REPORT RequestId: "))
        })
        .len();
    assert!(records > 0);
    let records = json_records(&s, "burst");
    let kept = records
        .iter()
        .filter(|r| {
            r["source"] == "function" && r["message"].as_str().unwrap().starts_with("flood ")
        })
        .count();
    let marker = records
        .iter()
        .find(|r| r["message"].as_str().unwrap().starts_with("[truncated] "))
        .expect("a truncation marker");
    assert_eq!(marker["source"], "platform");
    let dropped = 40 - kept;
    assert!(dropped > 0);
    assert_eq!(
        marker["message"],
        format!(
            "[truncated] {dropped} lines ({} bytes) of function output were dropped: the function logged faster than its limit of 1024 bytes per second",
            dropped * 1000
        )
    );
    // Warden's own rendering shows the marker as a platform line, before END.
    let text = without_time(&String::from_utf8(s.warden(&["logs", "burst"]).stdout).unwrap());
    let margin: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("  | "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(margin, ["START", "[truncated]", "END", "REPORT"], "{text}");
}

/// `warden logs`'s human format without its first column, the time each line was logged
/// (`2026-12-03T18:40:01.123Z `), which every line must have.
fn without_time(text: &str) -> String {
    text.lines()
        .map(|l| {
            let (time, rest) = l.split_at_checked(25).unwrap_or_else(|| panic!("{l:?}"));
            // A further line of one event (its line breaks kept) sits under the first,
            // behind the function's gutter.
            let continued = time.trim().is_empty() && rest.starts_with("  | ");
            assert!(
                continued
                    || (time.len() == 25 && time.ends_with("Z ") && time.as_bytes()[10] == b'T'),
                "no time column: {l:?}"
            );
            rest
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the hostile function prints: a terminal title change, colour, a bell, a
/// carriage return, a bidi override, and forged `END` / `REPORT` lines.
const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[31mred\r\u{202e}txt.exe\nREPORT RequestId: 00000000-0000-0000-0000-000000000000\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB\nEND RequestId: 00000000-0000-0000-0000-000000000000";

#[test]
fn warden_logs_escapes_function_output_and_marks_platform_lines() {
    let s = Server::start();
    s.create_fixture("hostile-logs", &[]);
    let event = serde_json::json!({"action": "print", "text": HOSTILE});
    let (status, headers, body) = invoke(&s, "hostile-logs", &event, true);
    assert_eq!(status, 200, "{body}");
    let tail = log_tail(&headers);
    assert!(
        tail.contains("\u{1b}]0;owned"),
        "the Lambda tail stays raw, as Lambda's"
    );
    s.wait_logs("hostile-logs", Duration::from_secs(30), |l| {
        l.iter()
            .filter(|x| x.starts_with("REPORT RequestId: "))
            .count()
            >= 3
    });

    let out = s.warden(&["logs", "hostile-logs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = without_time(&String::from_utf8(out.stdout).unwrap());
    for forbidden in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
        assert!(
            !text.contains(forbidden),
            "{forbidden:?} reached the terminal:\n{text}"
        );
    }
    // A carriage return is a line break within one event (as Lambda's runtimes write a
    // traceback): the rest of the line goes under the gutter, it cannot rewind over it.
    assert!(
        text.contains("  | \\x1b]0;owned\\x07\\x1b[31mred\n  | \\u{202e}txt.exe"),
        "{text}"
    );
    // Exactly one START, END and REPORT at the margin: Warden's. The function's copies
    // are under the gutter.
    let at_margin = |word: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{word} RequestId: ")))
            .collect::<Vec<_>>()
    };
    let starts = at_margin("START");
    let ends = at_margin("END");
    let reports = at_margin("REPORT");
    assert_eq!(
        (starts.len(), ends.len(), reports.len()),
        (1, 1, 1),
        "{text}"
    );
    assert!(!reports[0].contains("00000000-0000"), "{text}");
    assert!(!ends[0].contains("00000000-0000"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("  | REPORT RequestId: 00000000-0000")
                || l.starts_with("  | END RequestId: 00000000-0000"))
            .count(),
        4,
        "the forged lines (two on stdout, two on stderr) are shown as the function's: {text}"
    );

    // JSON keeps the bytes as stored and says who wrote each line.
    let records = json_records(&s, "hostile-logs");
    let raw = records
        .iter()
        .find(|r| r["message"].as_str().unwrap().starts_with("\u{1b}]0;owned"))
        .expect("the raw line");
    assert_eq!(raw["source"], "function");
    // (The carriage return was stored as the line break of a multi-line event.)
    assert_eq!(
        raw["message"], "\u{1b}]0;owned\u{7}\u{1b}[31mred\n\u{202e}txt.exe",
        "JSON output keeps the raw text"
    );
    let sources = |prefix: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r["message"].as_str().unwrap().starts_with(prefix))
            .map(|r| r["source"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut report_sources = sources("REPORT RequestId: ");
    report_sources.sort();
    assert_eq!(report_sources, ["function", "function", "platform"]);

    // `warden invoke --tail` escapes the tail too.
    let out = s.warden(&[
        "invoke",
        "hostile-logs",
        &serde_json::json!({"action": "print", "text": HOSTILE}).to_string(),
        "--tail",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("\\x1b]0;owned"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr}"
    );
}
