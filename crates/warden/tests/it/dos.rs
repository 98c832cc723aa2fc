//! Denial of service through descriptors and memory, against the real server: thousands of
//! idle sockets from a local process, a function flooding its in-namespace API relay,
//! slow and idle connections, and request bodies that never finish, from unknown keys,
//! valid keys and no key at all. Each test shows the server's descriptors or memory stay
//! bounded (read from `/proc/<pid>/`) while other callers' signed calls still succeed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::harness::{fixture_bin, zip_dir, Credentials, Server, EXEC_ROLE};

/// Generous guard against a hang; never a performance threshold.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn addr(s: &Server) -> SocketAddr {
    s.endpoint.strip_prefix("http://").unwrap().parse().unwrap()
}

/// Open descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Soft and hard `Max open files` of a process.
fn nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].parse().unwrap(), fields[4].parse().unwrap())
}

/// Opens up to `n` idle connections (stops after repeated failures, which an unprotected
/// server produces once it is out of descriptors).
fn idle_sockets(to: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    let mut failures = 0;
    while held.len() < n && failures < 20 {
        match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(s) => held.push(s),
            Err(_) => failures += 1,
        }
    }
    held
}

/// The calls every test makes while under attack: a Lambda call and an IAM call with the
/// AWS CLI, and a signed raw call.
fn signed_calls_succeed(s: &Server) {
    let functions = s.aws(&["lambda", "list-functions"]);
    assert!(functions["Functions"].is_array(), "{functions}");
    let users = s.aws(&["iam", "list-users"]);
    assert!(users["Users"].is_array(), "{users}");
    let (status, _, body) = s.http("GET", "/2015-03-31/functions", &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn idle_sockets_beyond_the_cap_leave_the_api_answering() {
    let s = Server::start_with(&["--max-connections", "200"]);
    let pid = s.pid();
    let before = fds(pid);
    let to = addr(&s);
    let mut held = idle_sockets(to, 3000);
    assert_eq!(held.len(), 3000, "the server stopped accepting connections");
    // And more keep coming while the callers work.
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut more = Vec::new();
            while !stop.load(Ordering::Relaxed) && more.len() < 3000 {
                more.extend(TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok());
            }
            more
        })
    };
    signed_calls_succeed(&s);
    stop.store(true, Ordering::Relaxed);
    held.extend(attacker.join().unwrap());
    let during = fds(pid);
    eprintln!(
        "held {} sockets; server descriptors {before} -> {during}",
        held.len()
    );
    assert!(
        during <= before + 200 + 20,
        "{during} descriptors with a cap of 200 connections (started with {before})"
    );
    signed_calls_succeed(&s);
}

#[test]
fn the_default_cap_is_derived_from_a_raised_descriptor_limit() {
    // Started as many systems start services: a soft limit of 1024 under a higher hard one.
    let temp = crate::harness::private_tempdir();
    let s = Server::start_via(
        &["sh", "-c", r#"ulimit -Sn 1024 && exec "$0" "$@""#],
        temp.path(),
        &[],
    );
    let pid = s.pid();
    let (soft, hard) = nofile(pid);
    assert_eq!(
        soft, hard,
        "the server raises its soft limit to the hard one"
    );
    let cap = (hard as usize / 4).clamp(64, 4096);
    let before = fds(pid);
    let held = idle_sockets(addr(&s), cap + 1500);
    assert_eq!(
        held.len(),
        cap + 1500,
        "the server stopped accepting connections"
    );
    signed_calls_succeed(&s);
    let during = fds(pid);
    eprintln!("limit {soft}/{hard}, cap {cap}; server descriptors {before} -> {during}");
    assert!(
        during <= before + cap + 20,
        "{during} descriptors with a default cap of {cap} (started with {before}, limit {hard})"
    );
    assert!(
        during < hard as usize / 2,
        "the default leaves descriptors to spare"
    );
}

#[test]
fn out_of_descriptors_the_server_frees_one_and_logs_rarely() {
    // A cap the descriptor limit cannot honour, as a misconfiguration or instances using
    // most descriptors would leave it.
    let temp = tempfile::tempdir().unwrap();
    let log = temp.path().join("stderr.log");
    let script = format!(r#"ulimit -n 256 && exec "$0" "$@" 2>'{}'"#, log.display());
    let data = temp.path().join("data");
    let s = Server::start_via(
        &["sh", "-c", &script],
        &data,
        &["--max-connections", "5000"],
    );
    let started = Instant::now();
    let held = idle_sockets(addr(&s), 1000);
    assert!(held.len() > 256, "only {} connections", held.len());
    signed_calls_succeed(&s);
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings = text.lines().filter(|l| l.contains("accept failed")).count();
    eprintln!("{warnings} accept warnings in {elapsed:?}");
    assert!(
        warnings >= 1,
        "running out of descriptors went unreported:\n{text}"
    );
    // At most one line per 10 s.
    assert!(
        warnings as u64 <= elapsed.as_secs() / 10 + 1,
        "{warnings} accept warnings in {elapsed:?}"
    );
}

/// Reads a response until the connection closes or `guard` passes; returns the status line
/// and headers, lowercased, and the status code (0 when the server closed without one).
fn read_answer(stream: &mut TcpStream, guard: Duration) -> std::io::Result<(u16, String)> {
    stream.set_read_timeout(Some(guard))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            // A reset after the answer (the server closed with unread input) ends it too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

/// Waits until the server closes the connection (EOF or reset), or fails after `guard`.
fn closed_by_server(stream: &mut TcpStream, guard: Duration) -> bool {
    stream.set_read_timeout(Some(guard)).unwrap();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    let s = Server::start_with(&["--header-timeout", "2"]);
    let to = addr(&s);
    // Connected, silent.
    let mut silent = TcpStream::connect(to).unwrap();
    // Half a request head, never finished.
    let mut slow = TcpStream::connect(to).unwrap();
    slow.write_all(b"GET /2015-03-31/functions HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    // One complete request, then idle on a kept-alive connection.
    let mut idle = TcpStream::connect(to).unwrap();
    idle.write_all(b"GET /2015-03-31/functions HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let (status, head) = read_answer(&mut idle, HANG_GUARD).unwrap();
    assert_eq!(status, 403, "{head}");
    assert!(
        head.contains("missingauthenticationtokenexception"),
        "{head}"
    );
    for (what, stream) in [
        ("silent", &mut silent),
        ("slow", &mut slow),
        ("idle", &mut idle),
    ] {
        assert!(
            closed_by_server(stream, HANG_GUARD),
            "the {what} connection was never closed"
        );
    }
    signed_calls_succeed(&s);
}

/// A zip whose `bootstrap` is the hostile fixture.
fn hostile_zip() -> std::path::PathBuf {
    let dir = crate::harness::scratch_dir();
    std::fs::copy(fixture_bin("hostile"), dir.join("bootstrap")).unwrap();
    zip_dir(&dir)
}

fn create_native(s: &Server, name: &str, zip: &std::path::Path, timeout: &str) {
    let zip = format!("fileb://{}", zip.display());
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        EXEC_ROLE,
        "--timeout",
        timeout,
        "--zip-file",
        &zip,
    ]);
}

/// Invokes with the AWS CLI and returns the function's answer.
fn cli_invoke(s: &Server, name: &str, payload: &Value) -> Value {
    let out = tempfile::NamedTempFile::new().unwrap();
    let path = out.path().display().to_string();
    let meta = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--payload",
        &payload.to_string(),
        &path,
    ]);
    assert_eq!(meta["StatusCode"], 200, "{meta}");
    assert!(meta.get("FunctionError").is_none(), "{meta}");
    serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap()
}

#[test]
fn a_function_flooding_its_api_relay_leaves_the_api_answering() {
    let s = Server::start();
    let pid = s.pid();
    create_native(&s, "flood", &hostile_zip(), "120");
    s.create_fixture("bystander", &[]);
    let echo = cli_invoke(&s, "bystander", &json!({"action": "echo", "n": 0}));
    assert_eq!(echo["n"], 0);
    let before = fds(pid);

    let flooding = {
        let endpoint = s.endpoint.clone();
        let admin = s.admin();
        std::thread::spawn(move || {
            let payload = json!({"action": "flood", "addr": "127.0.0.1:9002", "count": 3000, "hold_ms": 20_000});
            crate::harness::send(
                &endpoint,
                Some(&admin),
                "POST",
                "/2015-03-31/functions/flood/invocations",
                &[],
                payload.to_string().as_bytes(),
            )
        })
    };
    // Once the relay is full, others keep working, and the server's descriptors stay bounded.
    let started = Instant::now();
    let mut most = before;
    while fds(pid) < before + 3 * 64 && started.elapsed() < HANG_GUARD {
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in 1..=3 {
        let echo = cli_invoke(&s, "bystander", &json!({"action": "echo", "n": n}));
        assert_eq!(echo["n"], n);
        let (status, _, body) = s.iam(&[("Action", "ListUsers")]);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        most = most.max(fds(pid));
    }
    while !flooding.is_finished() {
        most = most.max(fds(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, headers, body) = flooding.join().unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    assert!(
        !headers.iter().any(|(k, _)| k == "x-amz-function-error"),
        "{body}"
    );
    let report: Value = serde_json::from_str(&body).unwrap();
    eprintln!("flood: {report}; server descriptors {before} -> at most {most}");
    assert!(
        report["connected"].as_u64().unwrap() >= 64,
        "the relay accepted its share: {report}"
    );
    // 64 relayed connections at three descriptors each, plus the flooding instance's own
    // (listeners, pipes, pidfd, Runtime API connection) and an invoke's.
    assert!(
        most <= before + 3 * 64 + 64,
        "{most} descriptors while a function held {} connections (started with {before})",
        report["connected"]
    );
    signed_calls_succeed(&s);
}

/// The head of a request with `content_length` bytes of body, signed by `creds` (over an
/// empty body: the server must decide before the body arrives) and dated `at`.
fn raw_head(
    s: &Server,
    creds: Option<&Credentials>,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    content_length: usize,
    at: SystemTime,
) -> Vec<u8> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", s.endpoint))
        .header("content-type", "application/json")
        .header("content-length", content_length.to_string());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Vec::<u8>::new()).unwrap();
    if let Some(c) = creds {
        let signing = warden_auth::SigningCredentials {
            access_key_id: c.key.clone(),
            secret_access_key: c.secret.clone(),
            session_token: c.token.clone(),
        };
        warden_auth::sign_request(&mut req, b"", &signing, "us-east-1", "lambda", at).unwrap();
    }
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", addr(s));
    for (k, v) in req.headers() {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn stranger() -> Credentials {
    Credentials {
        key: "AKIAWARDENSTRANGER01".into(),
        secret: "s".repeat(40),
        token: None,
    }
}

const BIG: usize = 60 * 1000 * 1000;

#[test]
fn requests_that_fail_on_their_headers_are_refused_before_their_body() {
    let s = Server::start();
    s.create_fixture("private", &[]);
    let now = SystemTime::now();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown key",
            raw_head(
                &s,
                Some(&stranger()),
                "POST",
                "/2015-03-31/functions",
                &[],
                BIG,
                now,
            ),
            "unrecognizedclientexception",
        ),
        (
            "signed an hour ago",
            raw_head(
                &s,
                Some(&s.admin()),
                "POST",
                "/2015-03-31/functions",
                &[],
                BIG,
                now - Duration::from_secs(3600),
            ),
            "invalidsignatureexception",
        ),
        (
            "unknown key, expecting 100-continue",
            raw_head(
                &s,
                Some(&stranger()),
                "POST",
                "/2015-03-31/functions",
                &[("expect", "100-continue")],
                BIG,
                now,
            ),
            "unrecognizedclientexception",
        ),
        (
            "no signature",
            raw_head(&s, None, "POST", "/2015-03-31/functions", &[], BIG, now),
            "missingauthenticationtokenexception",
        ),
        (
            "no signature, invoking a function that is not public",
            raw_head(
                &s,
                None,
                "POST",
                "/2015-03-31/functions/private/invocations",
                &[],
                6 * 1024 * 1024,
                now,
            ),
            "missingauthenticationtokenexception",
        ),
    ];
    for (what, head, code) in cases {
        let mut stream = TcpStream::connect(addr(&s)).unwrap();
        stream.write_all(&head).unwrap();
        // Not one byte of the body is sent: the answer must come without it.
        let (status, answer) = read_answer(&mut stream, HANG_GUARD)
            .unwrap_or_else(|e| panic!("{what}: no answer before the body ({e})"));
        assert_eq!(status, 403, "{what}: {answer}");
        assert!(answer.contains(code), "{what}: {answer}");
        assert!(!answer.contains("100 continue"), "{what}: {answer}");
    }
    signed_calls_succeed(&s);
}

#[test]
fn a_stalled_body_from_a_valid_key_is_closed_after_its_deadline() {
    let s = Server::start();
    let mut stream = TcpStream::connect(addr(&s)).unwrap();
    let head = raw_head(
        &s,
        Some(&s.admin()),
        "POST",
        "/2015-03-31/functions",
        &[],
        BIG,
        SystemTime::now(),
    );
    stream.write_all(&head).unwrap();
    stream.write_all(&vec![b' '; 1024 * 1024]).unwrap();
    // Then nothing more: the server gives up on the body and closes.
    let (status, answer) =
        read_answer(&mut stream, HANG_GUARD).expect("the server never gave up on a stalled body");
    assert!(
        status == 0 || (status == 408 && answer.contains("requesttimeoutexception")),
        "{answer}"
    );
    assert!(closed_by_server(&mut stream, HANG_GUARD));
    signed_calls_succeed(&s);
}

#[test]
fn stalled_bodies_leave_memory_bounded_and_calls_answered() {
    let s = Server::start_with(&["--max-body-memory", "128"]);
    s.create_fixture("small", &[]);
    let pid = s.pid();
    let before = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let mut attackers = Vec::new();
    // Half with the admin's valid key, half with a key the server does not know; each
    // sends 6 MB of a 60 MB CreateFunction body, then stalls.
    for i in 0..60 {
        let creds = if i % 2 == 0 { s.admin() } else { stranger() };
        let head = raw_head(
            &s,
            Some(&creds),
            "POST",
            "/2015-03-31/functions",
            &[],
            BIG,
            SystemTime::now(),
        );
        let to = addr(&s);
        let stop = Arc::clone(&stop);
        let sent_tx = sent_tx.clone();
        attackers.push(std::thread::spawn(move || {
            let mut stream = TcpStream::connect(to).unwrap();
            stream
                .set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let _ = stream.write_all(&head);
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..96 {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
            }
            sent_tx.send(()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(stream);
        }));
    }
    for _ in 0..attackers.len() {
        sent_rx.recv_timeout(HANG_GUARD).unwrap();
    }
    let mut most = rss_kib(pid);
    signed_calls_succeed(&s);
    let (status, _, body) = s.http(
        "POST",
        "/2015-03-31/functions/small/invocations",
        &[],
        br#"{"action":"echo","ok":true}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    most = most.max(rss_kib(pid));
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    // 60 x 6 MB were sent; the budget (128 MiB, of which one 60 MB body fits the large
    // share) bounds what the server holds, whatever the attackers send.
    let grown_mib = most.saturating_sub(before) / 1024;
    eprintln!("server RSS {before} KiB -> at most {most} KiB");
    assert!(
        grown_mib < 160,
        "the server grew by {grown_mib} MiB while bodies stalled"
    );
}

#[test]
fn large_uploads_still_work_and_a_bad_signature_over_one_is_refused_as_before() {
    let s = Server::start();
    // 20 MB of incompressible padding beside the fixture.
    let dir = crate::harness::scratch_dir();
    std::fs::copy(fixture_bin("fixture"), dir.join("bootstrap")).unwrap();
    let mut padding = vec![0u8; 20 * 1000 * 1000];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in padding.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(dir.join("padding"), &padding).unwrap();
    let zip = zip_dir(&dir);
    assert!(std::fs::metadata(&zip).unwrap().len() > 20_000_000);

    let mut wrong = s.admin();
    wrong.secret = "w".repeat(40);
    let out = std::process::Command::new(crate::harness::aws_cli())
        .args(["--endpoint-url", &s.endpoint, "lambda", "create-function"])
        .args(["--function-name", "big", "--runtime", "provided.al2023"])
        .args(["--handler", "bootstrap", "--role", EXEC_ROLE])
        .arg("--zip-file")
        .arg(format!("fileb://{}", zip.display()))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(
            s.client_env()
                .into_iter()
                .filter(|(k, _)| !k.starts_with("AWS_SHARED")),
        )
        .env("AWS_ACCESS_KEY_ID", &wrong.key)
        .env("AWS_SECRET_ACCESS_KEY", &wrong.secret)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("InvalidSignatureException"), "{stderr}");

    create_native(&s, "big", &zip, "3");
    let echo = cli_invoke(&s, "big", &json!({"action": "echo", "big": true}));
    assert_eq!(echo["big"], true);
}

/// Callers that give up mid-invocation (an SDK's read timeout here): the function runs to
/// its end, as on Lambda, and its instance goes back to its pool. Before, each such caller
/// left an instance running outside the pool with its share of the host memory budget, so
/// anyone allowed to invoke could exhaust the budget by disconnecting.
#[test]
fn callers_that_give_up_mid_invocation_leave_no_instance_behind() {
    let s = Server::start();
    let zip = crate::harness::python_zip(&[(
        "app.py",
        "import time\ndef handler(event, context):\n    time.sleep(0.6)\n    return 'done'\n",
    )]);
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "slow",
        "--runtime",
        crate::harness::python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        EXEC_ROLE,
        "--memory-size",
        "1769",
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ]);
    let out = s.python(
        r#"
import os, time, boto3, botocore
from botocore.config import Config
def client(timeout):
    return boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"],
                        config=Config(read_timeout=timeout, retries={"total_max_attempts": 1}))
impatient = client(0.2)
gave_up = 0
for _ in range(5):
    try:
        impatient.invoke(FunctionName="slow", Payload=b"{}")
    except botocore.exceptions.ReadTimeoutError:
        gave_up += 1
    # Long enough for the abandoned invocation (and a first cold start) to end.
    time.sleep(2)
answer = client(60).invoke(FunctionName="slow", Payload=b"{}")["Payload"].read().decode()
print(gave_up, answer)
"#,
    );
    assert_eq!(out.trim(), "5 \"done\"", "{out}");
    // One log stream per instance: every invocation ran on the first one.
    let streams = s.aws(&[
        "logs",
        "describe-log-streams",
        "--log-group-name",
        "/aws/lambda/slow",
    ]);
    let streams = streams["logStreams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{streams:?}");
    // And the abandoned invocations ran to their end: six REPORT lines.
    let reports = |lines: &[String]| lines.iter().filter(|l| l.starts_with("REPORT")).count();
    let lines = s.wait_logs("slow", HANG_GUARD, |l| reports(l) >= 6);
    assert_eq!(reports(&lines), 6);
}

/// The API listens with a deep accept queue (4,096, or the kernel's `somaxconn` if lower):
/// with the runtime's default of 1,024, a thousand callers fanning out invocations at once
/// overflowed it while the server started instances, and the kernel reset about one
/// connection in five. The queue's length is what `ss` shows as a listener's Send-Q.
#[test]
fn the_api_listens_with_a_deep_accept_queue() {
    let s = Server::start();
    let port = addr(&s).port();
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let backlog: u64 = text
        .split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listener on {port} in `ss`: {text}"));
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(backlog, somaxconn.min(4096), "{text}");
}
