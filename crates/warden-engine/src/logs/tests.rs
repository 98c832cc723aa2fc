//! Unit tests of log framing, the rate bucket, back-pressure on an instance's pipe and
//! the truncation marker, against a real pipe and a real SQLite store.

use std::time::Duration;

use warden_store::{LogStore, SqliteStore};

use super::*;

#[test]
fn report_has_lambda_shape() {
    assert_eq!(
        report_line("abc", 0.87, 128, 36, Some(90.514)),
        "REPORT RequestId: abc\tDuration: 0.87 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 36 MB\tInit Duration: 90.51 ms"
    );
    assert!(!report_line("abc", 12.2, 128, 36, None).contains("Init"));
}

#[test]
fn tail_keeps_last_4k_on_char_boundaries() {
    let mut t = Tail::default();
    for _ in 0..5000 {
        t.push("é");
    }
    let s = t.last_4k();
    assert!(s.len() <= 4096);
    assert!(s.ends_with("é\n"));
}

#[test]
fn peak_memory_is_read_again_from_held_files_until_the_process_is_gone() {
    let own = PeakMemory::open(std::process::id() as i32);
    let first = own.mb();
    assert!(first > 0);
    assert!(
        own.mb() >= first,
        "read again from the start of the held file"
    );

    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep");
    let peak = PeakMemory::open(child.id() as i32);
    assert!(peak.mb() > 0);
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(peak.mb(), 0, "gone: nothing to report, not a stale figure");
    assert_eq!(PeakMemory::open(0).mb(), 0);
}

#[test]
fn hundredths_write_two_decimals_as_the_float_format_does() {
    for (value, text) in [
        (0.0, "0.00"),
        (0.004, "0.00"),
        (0.006, "0.01"),
        (0.87, "0.87"),
        (1.0, "1.00"),
        (90.509, "90.51"),
        (899_999.999, "900000.00"),
        (-1.0, "0.00"),
        (f64::NAN, "0.00"),
    ] {
        assert_eq!(Hundredths(value).to_string(), text, "{value}");
    }
}

proptest::proptest! {
    #[test]
    fn hundredths_agree_with_the_float_format_away_from_ties(ms in 0.0f64..1.0e7) {
        // Away from a tie (a value whose third decimal is a 5 and nothing after), both
        // round to the same hundredth.
        let scaled = ms * 100.0;
        proptest::prop_assume!((scaled - scaled.floor() - 0.5).abs() > 1e-6);
        proptest::prop_assert_eq!(Hundredths(ms).to_string(), format!("{ms:.2}"));
    }
}

#[test]
fn peak_memory_reads_an_instances_cgroup_file_again_from_its_start() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.peak");
    std::fs::write(&path, "5242881\n").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let peak = PeakMemory::of_instance(std::process::id() as i32, Some(file.into()));
    assert_eq!(peak.mb(), 6, "bytes, rounded up to the next MB");
    let mut grown = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    grown.write_all(b"104857600\n").unwrap();
    assert_eq!(peak.mb(), 100, "read again, not remembered");
    std::fs::write(&path, "max\n").unwrap();
    assert_eq!(peak.mb(), 0, "not a number: nothing to report");
    // Without a cgroup file, the processes' own peak.
    assert!(PeakMemory::of_instance(std::process::id() as i32, None).mb() > 0);
}

#[test]
fn peak_memory_reads_status_as_bytes() {
    assert_eq!(
        vm_hwm_in(b"Name:\t\xff\xfe\nVmPeak:\t 9 kB\nVmHWM:\t    1234 kB\n"),
        Some(1234)
    );
    assert_eq!(vm_hwm_in(b"Name:\tx\n"), None);
    assert_eq!(vm_hwm_in(b"VmHWM:\t lots kB\n"), None);
}

#[test]
fn the_rate_bucket_holds_one_second_and_allows_one_second_of_debt() {
    let bucket = RateBucket::new(1000);
    assert_eq!(bucket.wait(), Duration::ZERO);
    // A full second's worth, then one more second's worth of debt, but not beyond.
    assert!(bucket.try_charge(1000));
    assert!(bucket.try_charge(900));
    assert!(!bucket.try_charge(500), "that would be 1.4 s of debt");
    assert!(bucket.wait() > Duration::from_millis(500));
    // The reader's charge is unconditional: the bytes were already read.
    bucket.charge(10_000);
    assert!(bucket.wait() > Duration::from_secs(9));
}

fn name(s: &str) -> FunctionName {
    FunctionName::new(s).unwrap()
}

fn limits(rate: u64) -> LogLimits {
    LogLimits {
        rate_bytes_per_second: rate,
        ..LogLimits::default()
    }
}

fn open_store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("warden.db")).unwrap());
    (dir, store)
}

/// Waits until the function's stored lines satisfy `check`.
fn wait_logs(store: &SqliteStore, f: &str, check: impl Fn(&[LogRecord]) -> bool) -> Vec<LogRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = store.read_logs(&name(f), 0, 1_000_000).unwrap();
        if check(&lines) {
            return lines;
        }
        assert!(Instant::now() < deadline, "logs never matched: {lines:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A capture of a fresh pipe pair; returns the function's ends, which never block.
fn capture(sink: &LogSink, f: &str) -> (Arc<LogCapture>, std::fs::File, std::fs::File) {
    capture_as(sink, f, PlatformLines::Text)
}

/// [`capture`], the platform's lines written as `lines` says.
fn capture_as(
    sink: &LogSink,
    f: &str,
    lines: PlatformLines,
) -> (Arc<LogCapture>, std::fs::File, std::fs::File) {
    let (out_tx, out_rx) = pipe::pipe().unwrap();
    let (err_tx, err_rx) = pipe::pipe().unwrap();
    let capture = LogCapture::start(
        name(f),
        format!("2026/12/04/[$LATEST]{f}"),
        lines,
        Default::default(),
        sink.clone(),
        out_rx.into_blocking_fd().unwrap(),
        err_rx.into_blocking_fd().unwrap(),
    )
    .unwrap();
    let file = |tx: pipe::Sender| std::fs::File::from(tx.into_nonblocking_fd().unwrap());
    (capture, file(out_tx), file(err_tx))
}

/// Writes 100-byte lines without blocking until the pipe is full; returns how many.
/// Writes this small are atomic, so every line counted went in whole.
fn fill(mut tx: &std::fs::File, next: &mut usize) -> usize {
    use std::io::Write;
    let mut written = 0;
    loop {
        let line = format!("{:0>99}\n", *next);
        match tx.write(line.as_bytes()) {
            Ok(n) => {
                assert_eq!(n, 100);
                *next += 1;
                written += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return written,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_over_its_rate_is_not_read_and_what_end_drops_is_counted() {
    let (_d, store) = open_store();
    // One byte per second: after its first read the reader is days in debt.
    let sink = LogSink::start(store.clone(), limits(1));
    let (capture, out, _err) = capture(&sink, "noisy");
    capture.begin("r1", "$LATEST", true);

    let mut next = 0;
    let mut written = fill(&out, &mut next);
    // The reader takes one chunk, then stops: the store receives those lines...
    let first = wait_logs(&store, "noisy", |l| {
        l.iter().any(|r| r.source == LogSource::Function)
    });
    let read_lines = first
        .iter()
        .filter(|r| r.source == LogSource::Function)
        .count();
    assert!(read_lines * 100 <= READ_CHUNK, "read {read_lines} lines");
    // ...and however long the function keeps writing, the pipe stays full.
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        written += fill(&out, &mut next);
    }
    assert!(
        written * 100 <= READ_CHUNK + 1024 * 1024,
        "the function wrote {written} lines past a stalled reader"
    );

    let report = Report {
        request_id: "r1".into(),
        duration_ms: 1.0,
        memory_mb: 128,
        memory: None,
        init_ms: None,
        json: false,
    };
    let tail = capture.end("r1", &report, false).unwrap();
    let lines = wait_logs(&store, "noisy", |l| {
        l.iter()
            .any(|r| r.message.starts_with("REPORT RequestId: r1"))
    });
    let kept = lines
        .iter()
        .filter(|r| r.source == LogSource::Function)
        .count();
    let marker = lines
        .iter()
        .find(|r| r.message.starts_with("[truncated] "))
        .expect("a truncation marker");
    assert_eq!(marker.source, LogSource::Platform);
    assert_eq!(marker.request_id.as_deref(), Some("r1"));
    let dropped = written - kept;
    assert!(dropped > 0);
    assert_eq!(
        marker.message,
        format!(
            "[truncated] {dropped} lines ({} bytes) of function output were dropped: the function logged faster than its limit of 1 bytes per second",
            dropped * 100
        )
    );
    // The marker comes before END, and the tail shows it too.
    let order: Vec<_> = lines
        .iter()
        .filter(|r| r.source == LogSource::Platform)
        .map(|r| r.message.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["START", "[truncated]", "END", "REPORT"]);
    assert!(tail.last_4k().contains("[truncated] "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_its_rate_nothing_is_lost_and_lines_keep_their_framing() {
    let (_d, store) = open_store();
    let sink = LogSink::start(store.clone(), LogLimits::default());
    let (capture, out, err) = capture(&sink, "quiet");
    capture.begin("r1", "1", false);
    use std::io::Write;
    (&out)
        .write_all(b"hello\nREPORT RequestId: forged\n")
        .unwrap();
    (&err).write_all(b"no newline at the end").unwrap();
    capture.reported("Runtime.Custom: chosen by the function".into());
    let report = Report {
        request_id: "r1".into(),
        duration_ms: 1.0,
        memory_mb: 128,
        memory: None,
        init_ms: None,
        json: false,
    };
    assert!(capture.end("r1", &report, false).is_none());
    let lines = wait_logs(&store, "quiet", |l| {
        l.iter()
            .any(|r| r.message.starts_with("REPORT RequestId: r1"))
    });
    let seen: Vec<_> = lines
        .iter()
        .map(|r| (r.source, r.message.as_str()))
        .collect();
    use LogSource::{Function as F, Platform as P};
    assert_eq!(seen[0], (P, "START RequestId: r1 Version: 1"));
    assert!(seen.contains(&(F, "hello")));
    assert!(seen.contains(&(F, "REPORT RequestId: forged")));
    assert!(seen.contains(&(F, "no newline at the end")));
    assert!(seen.contains(&(F, "Runtime.Custom: chosen by the function")));
    assert_eq!(seen[seen.len() - 2], (P, "END RequestId: r1"));
    assert!(seen[seen.len() - 1].1.starts_with("REPORT RequestId: r1\t"));
    assert!(lines.iter().all(|r| r.request_id.as_deref() == Some("r1")));
    assert!(!lines.iter().any(|r| r.message.starts_with("[truncated]")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pruner_keeps_the_logs_under_the_size_cap() {
    let (dir, store) = open_store();
    let cap = 512 * 1024;
    let sink = LogSink::start(
        store.clone(),
        LogLimits {
            rate_bytes_per_second: 1 << 30,
            retention: LogRetention {
                max_age_ms: i64::MAX,
                max_bytes: cap,
            },
        },
    );
    let body = "y".repeat(1000);
    for i in 0..4000 {
        sink.emit(&name("big"), None, None, format!("{i} {body}"));
    }
    // Every line reaches the store, and the pruner keeps only the newest.
    let lines = wait_logs(&store, "big", |l| {
        l.last().is_some_and(|r| r.message.starts_with("3999 "))
    });
    assert!(!lines.is_empty());
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.log_bytes().unwrap() > cap {
        assert!(Instant::now() < deadline, "never pruned under the cap");
        std::thread::sleep(Duration::from_millis(10));
    }
    let file = std::fs::metadata(dir.path().join("warden.logs.db"))
        .unwrap()
        .len();
    assert!(file < 4_000_000, "the file holds {file} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_format_writes_platform_records_and_warn_writes_none() {
    let (_d, store) = open_store();
    let sink = LogSink::start(store.clone(), LogLimits::default());
    let (json, _o, _e) = capture_as(&sink, "json", PlatformLines::Json);
    json.begin("r1", "$LATEST", false);
    let report = Report {
        request_id: "r1".into(),
        duration_ms: 1.5,
        memory_mb: 256,
        memory: None,
        init_ms: Some(12.25),
        json: true,
    };
    assert!(json.end("r1", &report, true).is_none());
    let lines = wait_logs(&store, "json", |l| l.len() >= 2);
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|r| serde_json::from_str(&r.message).expect("a JSON record"))
        .collect();
    assert_eq!(records.len(), 2, "no END record: {lines:?}");
    assert_eq!(records[0]["type"], "platform.start");
    assert_eq!(
        records[0]["record"],
        serde_json::json!({"requestId": "r1", "version": "$LATEST"})
    );
    assert_eq!(records[1]["type"], "platform.report");
    assert_eq!(
        records[1]["record"]["metrics"],
        serde_json::json!({"durationMs": 1.5, "billedDurationMs": 2, "memorySizeMB": 256,
            "maxMemoryUsedMB": 0, "initDurationMs": 12.25})
    );
    assert!(lines.iter().all(|r| r.source == LogSource::Platform));

    let (quiet, out, _e) = capture_as(&sink, "quiet", PlatformLines::Quiet);
    quiet.begin("r2", "$LATEST", false);
    use std::io::Write;
    (&out).write_all(b"only this\n").unwrap();
    assert!(quiet
        .end(
            "r2",
            &Report {
                request_id: "r2".into(),
                ..report
            },
            true
        )
        .is_none());
    wait_logs(&store, "quiet", |l| !l.is_empty());
    // Whatever the writer had queued is stored by now: the function's line alone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = store.read_logs(&name("quiet"), 0, 100).unwrap();
    let messages: Vec<&str> = lines.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages, ["only this"]);
}
