//! Asynchronous invocations: the durable queue, Lambda's retry policy, and survival of a
//! restart and of `kill -9`.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::Server;

fn enqueue(s: &Server, function: &str, payload: &str) -> String {
    let (status, headers, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{function}/invocations"),
        &[("X-Amz-Invocation-Type", "Event")],
        payload.as_bytes(),
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    headers
        .iter()
        .find(|(k, _)| k == "x-amzn-requestid")
        .map(|(_, v)| v.clone())
        .expect("a request id")
}

/// Executions recorded by the fixture: request id → count.
fn witnessed(path: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Some(id) = line.split_whitespace().next() {
            *seen.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn failed_events_are_retried_twice_with_backoff() {
    let witness = tempfile::NamedTempFile::new().unwrap();
    // The witness file lives on the host, out of a sandboxed function's reach: the queue,
    // not isolation, is under test here.
    let s = Server::start_with(&[
        "--insecure-no-sandbox",
        "--async-retry-delays-ms",
        "300,600",
    ]);
    let env = format!("Variables={{FIXTURE_WITNESS={}}}", witness.path().display());
    s.create_fixture("retry", &["--environment", &env]);
    let started = Instant::now();
    let failing = enqueue(&s, "retry", r#"{"action":"append","fail":true}"#);
    let fine = enqueue(&s, "retry", r#"{"action":"append"}"#);
    wait_for(
        Duration::from_secs(20),
        || witnessed(witness.path()).get(&failing) == Some(&3),
        "three attempts",
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retries wait for their back-off"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let seen = witnessed(witness.path());
    assert_eq!(
        seen.get(&failing),
        Some(&3),
        "one attempt and exactly two retries: {seen:?}"
    );
    assert_eq!(seen.get(&fine), Some(&1), "a success runs once: {seen:?}");
    let logs = s.logs("retry");
    let starts = logs
        .iter()
        .filter(|l| l.starts_with(&format!("START RequestId: {failing}")))
        .count();
    assert_eq!(starts, 3, "retries keep the request id: {logs:?}");
}

#[test]
fn accepted_events_survive_restart_and_kill_9() {
    let witness = tempfile::NamedTempFile::new().unwrap();
    // Two instances at most, so events are still queued when the server dies.
    // Host witness file, as above: the queue, not isolation, is under test.
    let mut s = Server::start_with(&["--insecure-no-sandbox", "--account-concurrency", "2"]);
    let env = format!("Variables={{FIXTURE_WITNESS={}}}", witness.path().display());
    s.create_fixture("durable", &["--environment", &env, "--timeout", "10"]);
    let mut accepted: Vec<String> = (0..30)
        .map(|i| {
            enqueue(
                &s,
                "durable",
                &format!(r#"{{"action":"append","ms":100,"tag":"{i}"}}"#),
            )
        })
        .collect();
    wait_for(
        Duration::from_secs(20),
        || witnessed(witness.path()).len() >= 4,
        "some events to run",
    );
    s.kill9();
    let at_kill = witnessed(witness.path()).len();
    assert!(
        at_kill < accepted.len(),
        "the kill must interrupt the queue ({at_kill} ran)"
    );

    s.restart();
    accepted.extend((30..40).map(|i| {
        enqueue(
            &s,
            "durable",
            &format!(r#"{{"action":"append","tag":"{i}"}}"#),
        )
    }));
    wait_for(
        Duration::from_secs(60),
        || {
            let seen = witnessed(witness.path());
            accepted.iter().all(|id| seen.contains_key(id))
        },
        "every accepted event to run",
    );
    // A graceful restart with nothing in flight re-runs nothing.
    s.stop();
    s.restart();
    std::thread::sleep(Duration::from_millis(1500));
    let seen = witnessed(witness.path());
    let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    // Only events in flight at the kill may run again: at most 2 running (the account
    // concurrency) plus at most 2 that had finished but whose removal from the queue was not
    // yet durable. An event whose success was recorded never runs again, and the graceful
    // restart above re-ran nothing.
    assert!(twice.len() <= 4, "events ran twice: {twice:?}");
    assert!(seen.values().all(|n| *n <= 2), "{seen:?}");
    assert_eq!(
        seen.len(),
        accepted.len(),
        "no unknown executions and none lost"
    );
}
