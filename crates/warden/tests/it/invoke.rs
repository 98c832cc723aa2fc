//! Invocation semantics: Runtime API headers, errors, timeouts, crashes, warm reuse,
//! idle reaping and cleanup, with the official `lambda_runtime` client in the instance.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{b64, unb64, wait_gone, Server};

fn invoke(s: &Server, function: &str, payload: Value) -> (u16, Vec<(String, String)>, Value) {
    let (status, headers, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{function}/invocations"),
        &[],
        payload.to_string().as_bytes(),
    );
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn runtime_api_gives_the_real_deadline_arn_trace_and_client_context() {
    let s = Server::start();
    s.create_fixture("ctx", &["--timeout", "30"]);
    let context = b64(br#"{"custom":{"tenant":"t1"}}"#);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (status, headers, body) = s.http(
        "POST",
        "/2015-03-31/functions/ctx/invocations",
        &[("X-Amz-Client-Context", &context)],
        br#"{"action":"context"}"#,
    );
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    let deadline = body["deadline_ms"].as_i64().unwrap();
    assert!(
        (before + 29_000..=before + 31_000).contains(&deadline),
        "deadline {deadline} vs now {before}"
    );
    let arn = body["invoked_function_arn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:lambda:us-east-1:") && arn.ends_with(":function:ctx"),
        "{arn}"
    );
    let trace = body["trace_id"].as_str().unwrap();
    assert!(
        trace.starts_with("Root=1-") && trace.contains(";Parent=") && trace.ends_with(";Sampled=0"),
        "{trace}"
    );
    assert_eq!(body["client_context"], json!({ "tenant": "t1" }));
    assert_eq!(header(&headers, "x-amz-executed-version"), Some("$LATEST"));
    assert!(uuid_like(body["request_id"].as_str().unwrap()), "{body}");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn environment_has_what_the_official_clients_need() {
    let s = Server::start();
    s.create_fixture(
        "envf",
        &[
            "--memory-size",
            "256",
            "--environment",
            "Variables={MINE=yes}",
        ],
    );
    let (_, _, env) = invoke(&s, "envf", json!({"action": "env"}));
    for key in [
        "AWS_LAMBDA_RUNTIME_API",
        "_HANDLER",
        "LAMBDA_TASK_ROOT",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_EXECUTION_ENV",
        "LAMBDA_RUNTIME_DIR",
        "TZ",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
    ] {
        assert!(env.get(key).is_some(), "{key} missing from {env}");
    }
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "envf");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/envf");
    assert_eq!(env["MINE"], "yes");
    assert_eq!(env["_HANDLER"], "bootstrap");
    // Nothing of the server's own environment leaks in.
    assert!(env.get("WARDEN_LOG").is_none(), "{env}");
}

#[test]
fn warm_instances_are_reused_and_idle_ones_reaped() {
    let s = Server::start_with(&["--idle-timeout", "1"]);
    s.create_fixture("warm", &[]);
    let (_, _, a) = invoke(&s, "warm", json!({"action": "context"}));
    let (_, _, b) = invoke(&s, "warm", json!({"action": "context"}));
    assert_eq!(
        a["instance"], b["instance"],
        "the second invoke reuses the warm instance"
    );
    let processes = s.instance_processes();
    assert!(
        !processes.is_empty(),
        "the warm instance is a process on the host"
    );
    wait_gone(
        &processes,
        Duration::from_secs(10),
        "the idle instance is reaped",
    );
    let (_, _, c) = invoke(&s, "warm", json!({"action": "context"}));
    assert_ne!(
        c["instance"], a["instance"],
        "after reaping, a new instance starts"
    );
    let lines = s.wait_logs("warm", Duration::from_secs(30), |l| {
        l.iter().filter(|x| x.starts_with("REPORT")).count() >= 3
    });
    let reports: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("REPORT RequestId: "))
        .collect();
    assert_eq!(reports.len(), 3, "{lines:?}");
    assert!(
        reports[0].contains("\tInit Duration: "),
        "cold start reports init: {}",
        reports[0]
    );
    assert!(
        !reports[1].contains("Init Duration"),
        "warm start does not: {}",
        reports[1]
    );
    assert!(reports[2].contains("\tInit Duration: "), "{}", reports[2]);
    for r in reports {
        assert!(
            r.contains("\tDuration: ")
                && r.contains(" ms\tBilled Duration: ")
                && r.contains("\tMemory Size: 128 MB\tMax Memory Used: "),
            "{r}"
        );
        // The instance's peak memory: never 0 MB.
        assert!((1..=128).contains(&max_memory_used(r)), "{r}");
    }
}

/// As in Lambda, one id names an invocation everywhere: the `x-amzn-RequestId` of the
/// Invoke response, the function's `context.aws_request_id` and the log frame's
/// `RequestId`, so a caller can find its invocation's lines.
#[test]
fn the_invoke_responses_request_id_is_the_invocations() {
    let s = Server::start();
    s.create_fixture("ids", &[]);
    let (status, headers, body) = invoke(&s, "ids", json!({"action": "context"}));
    assert_eq!(status, 200, "{body}");
    let id = header(&headers, "x-amzn-requestid").expect("a request id");
    assert_eq!(body["request_id"], id, "the function's context: {body}");
    let lines = s.wait_logs("ids", Duration::from_secs(30), |l| {
        l.iter().any(|x| x.starts_with("REPORT"))
    });
    for frame in ["START RequestId: ", "END RequestId: ", "REPORT RequestId: "] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{frame}{id}"))),
            "{frame}{id} in {lines:?}"
        );
    }
}

/// The `Max Memory Used` figure of a `REPORT` line.
fn max_memory_used(report: &str) -> u64 {
    report
        .split("Max Memory Used: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Max Memory Used in {report}"))
}

/// `Max Memory Used` is the instance's own peak: it follows what the function touched,
/// and the next instance, which may reuse the first one's cgroup, starts again from its
/// own memory instead of inheriting the figure.
#[test]
fn max_memory_used_is_the_instances_own_peak() {
    let s = Server::start_with(&["--idle-timeout", "1"]);
    s.create_fixture("hungry", &["--memory-size", "256"]);
    invoke(&s, "hungry", json!({"action": "touch", "mb": 100}));
    let processes = s.instance_processes();
    wait_gone(
        &processes,
        Duration::from_secs(10),
        "the idle instance is reaped",
    );
    invoke(&s, "hungry", json!({"action": "echo"}));
    let lines = s.wait_logs("hungry", Duration::from_secs(30), |l| {
        l.iter().filter(|x| x.starts_with("REPORT")).count() >= 2
    });
    let used: Vec<u64> = lines
        .iter()
        .filter(|l| l.starts_with("REPORT RequestId: "))
        .map(|r| max_memory_used(r))
        .collect();
    assert_eq!(used.len(), 2, "{lines:?}");
    assert!(
        (100..=256).contains(&used[0]),
        "100 MiB touched, 256 MB allowed: {lines:?}"
    );
    assert!(
        (1..50).contains(&used[1]),
        "a new instance that touched nothing: {lines:?}"
    );
}

#[test]
fn timeout_kills_the_instance_and_reports_lambdas_error() {
    let s = Server::start();
    s.create_fixture("slow", &["--timeout", "1"]);
    invoke(&s, "slow", json!({"action": "context"}));
    let processes = s.instance_processes();
    assert!(!processes.is_empty());
    let started = Instant::now();
    // The function would sleep for a minute: an answer well before that came from the
    // one-second timeout, not from the function finishing.
    let (status, headers, body) = invoke(&s, "slow", json!({"action": "sleep", "ms": 60_000}));
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the caller is answered at the deadline"
    );
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-amz-function-error"), Some("Unhandled"));
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Task timed out after 1.00 seconds"),
        "{body}"
    );
    wait_gone(
        &processes,
        Duration::from_secs(30),
        "the timed-out instance is killed",
    );
    s.wait_logs("slow", Duration::from_secs(30), |l| {
        l.iter()
            .any(|x| x.ends_with("Task timed out after 1.00 seconds"))
    });
    let (status, _, again) = invoke(&s, "slow", json!({"action": "echo", "ok": true}));
    assert_eq!(
        (status, again["ok"].clone()),
        (200, json!(true)),
        "the function keeps working afterwards"
    );
}

#[test]
fn crashes_and_init_failures_are_reported_as_lambda_does() {
    let s = Server::start();
    s.create_fixture("crash", &[]);
    let (status, headers, body) = invoke(&s, "crash", json!({"action": "exit", "code": 3}));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-amz-function-error"), Some("Unhandled"));
    assert_eq!(body["errorType"], "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 3"),
        "{body}"
    );
    let (_, _, ok) = invoke(&s, "crash", json!({"n": 2}));
    assert_eq!(ok["n"], 2, "a crashed instance is replaced");

    s.create_fixture(
        "initdies",
        &["--environment", "Variables={FIXTURE_INIT=exit}"],
    );
    let (status, headers, body) = invoke(&s, "initdies", json!({}));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-amz-function-error"), Some("Unhandled"));
    assert_eq!(body["errorType"], "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exit status 7"),
        "{body}"
    );

    // A package without a bootstrap.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README"), "no bootstrap here").unwrap();
    let zip = crate::harness::zip_dir(dir.path());
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "noboot",
        "--runtime",
        "provided.al2",
        "--role",
        "arn:aws:iam::123456789012:role/lambda-exec",
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ]);
    let (status, _, body) = invoke(&s, "noboot", json!({}));
    assert_eq!(status, 200);
    assert_eq!(body["errorType"], "Runtime.InvalidEntrypoint", "{body}");
}

#[test]
fn tail_returns_this_invocations_output() {
    let s = Server::start();
    s.create_fixture("talk", &[]);
    let (_, headers, _) = s.http(
        "POST",
        "/2015-03-31/functions/talk/invocations",
        &[("X-Amz-Log-Type", "Tail")],
        br#"{"action":"print","text":"tail me"}"#,
    );
    let log = String::from_utf8(unb64(header(&headers, "x-amz-log-result").unwrap())).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines[0].starts_with("START RequestId: "), "{log}");
    assert!(
        lines.contains(&"tail me") && lines.contains(&"stderr: tail me"),
        "{log}"
    );
    assert!(
        lines[lines.len() - 2].starts_with("END RequestId: "),
        "{log}"
    );
    assert!(
        lines[lines.len() - 1].starts_with("REPORT RequestId: "),
        "{log}"
    );
    let stored = s.wait_logs("talk", Duration::from_secs(30), |l| {
        l.iter().any(|x| x.starts_with("REPORT"))
    });
    let start = stored.iter().position(|l| l.starts_with("START")).unwrap();
    let end = stored.iter().position(|l| l.starts_with("END")).unwrap();
    let printed = stored.iter().position(|l| l == "tail me").unwrap();
    assert!(
        start < printed && printed < end,
        "output is framed inside its invocation: {stored:?}"
    );
}

#[test]
fn shutdown_leaves_no_process_behind() {
    let mut s = Server::start();
    s.create_fixture("bye", &[]);
    invoke(&s, "bye", json!({"action": "context"}));
    let mut processes = s.instance_processes();
    processes.extend(crate::harness::descendants(s.pid()));
    assert!(!processes.is_empty());
    let status = s.stop().unwrap();
    assert!(status.success(), "graceful exit: {status}");
    wait_gone(
        &processes,
        Duration::from_secs(30),
        "instances and the zygote end with the server",
    );
}

#[test]
fn a_killed_server_leaves_no_process_behind() {
    let mut s = Server::start();
    s.create_fixture("orphan", &[]);
    invoke(&s, "orphan", json!({"action": "context"}));
    let processes = crate::harness::descendants(s.pid());
    assert!(
        processes.len() >= 2,
        "a zygote and an instance: {processes:?}"
    );
    s.kill9();
    wait_gone(
        &processes,
        Duration::from_secs(30),
        "instances and the zygote end with a killed server",
    );
}
