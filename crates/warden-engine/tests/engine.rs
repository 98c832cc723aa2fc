//! The engine's cold start, delivery and async queue, on real processes and a real store,
//! with the executor, the credential issuer and an observer recording what happens.
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it did not expect"
)]

use std::time::Duration;

use bytes::Bytes;
use warden_engine::{InvokeError, InvokeRequest, InvokeResponse, ThrottleReason};
use warden_executor::{Egress, ExitStatus};
use warden_testkit::{Seen, TestEngine, TEST_ROLE};
use warden_types::change::{Change, ChangeEvent, ChangeObserver};
use warden_types::{FunctionName, FunctionRef};

fn request(function: &str, payload: serde_json::Value) -> InvokeRequest {
    InvokeRequest {
        function: FunctionRef {
            name: FunctionName::new(function).unwrap(),
            qualifier: None,
        },
        payload: Bytes::from(payload.to_string()),
        tail: true,
        client_context: None,
        request_id: None,
        stream: None,
    }
}

fn body(response: &InvokeResponse) -> serde_json::Value {
    serde_json::from_slice(&response.payload).unwrap()
}

/// Waits (a bounded number of times) for `done` to hold.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} never happened");
}

fn started_ids(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Started { request_id } => Some(request_id.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_gets_the_whole_contract_and_the_next_invoke_is_warm() {
    let t = TestEngine::start();
    t.deploy("echo", 3, &[("GREETING", "hello")]);
    let vars = [
        "GREETING",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_ENDPOINT_URL_LAMBDA",
    ];
    let first = t
        .engine
        .invoke(request("echo", serde_json::json!({"n": 1, "vars": vars})))
        .await
        .unwrap();
    assert_eq!(first.function_error, None, "{:?}", first.payload);
    let out = body(&first);
    assert_eq!(out["echo"]["n"], 1);
    assert_eq!(out["env"]["GREETING"], "hello");
    assert_eq!(out["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "128");
    assert_eq!(out["env"]["AWS_SESSION_TOKEN"], "test-token");
    assert_eq!(out["env"]["AWS_ENDPOINT_URL_LAMBDA"], "http://127.0.0.1:9");

    // The credentials the function saw are the ones issued for its role.
    let issued = t.issuer.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].0, TEST_ROLE);
    assert_eq!(out["env"]["AWS_ACCESS_KEY_ID"], issued[0].1.as_str());

    // The executor was given the limits the engine computed, and the environment whole.
    let spawns = t.executor.spawns();
    assert_eq!(spawns.len(), 1);
    let limits = &spawns[0].limits;
    assert_eq!(
        (limits.memory_mb, limits.tmp_mb, limits.cpu_percent),
        (128, 512, 8)
    );
    assert_eq!(limits.egress, Egress::RelayOnly);
    assert!(spawns[0].var("AWS_LAMBDA_RUNTIME_API").is_some());

    let tail = first.log_tail.unwrap();
    assert!(tail.contains("START RequestId:"), "{tail}");
    assert!(
        tail.contains("handling "),
        "the function's own output: {tail}"
    );
    assert!(
        tail.contains("Init Duration:"),
        "a cold start reports init: {tail}"
    );

    let second = t
        .engine
        .invoke(request("echo", serde_json::json!({"n": 2})))
        .await
        .unwrap();
    assert_eq!(body(&second)["echo"]["n"], 2);
    assert_eq!(t.executor.spawns().len(), 1, "the warm instance was reused");
    let tail = second.log_tail.unwrap();
    assert!(!tail.contains("Init Duration:"), "{tail}");

    let seen = t.observer.seen();
    assert_eq!(seen.len(), 5, "{seen:?}");
    // The cold start is announced before its instance starts: it counts as running from
    // there, as Lambda counts initializing environments.
    let Seen::Initializing { request_id } = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(
        seen[1],
        Seen::Started {
            request_id: request_id.clone()
        }
    );
    assert_eq!(
        seen[2],
        Seen::Finished {
            function_error: false,
            cold: true
        }
    );
    assert!(matches!(seen[3], Seen::Started { .. }));
    assert_eq!(
        seen[4],
        Seen::Finished {
            function_error: false,
            cold: false
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_character_function_gets_a_session_name_sts_accepts() {
    let t = TestEngine::start();
    t.deploy("q", 3, &[]);
    let answered = t
        .engine
        .invoke(request("q", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(answered.function_error, None, "{:?}", answered.payload);
    assert_eq!(t.issuer.sessions(), ["q_"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_keeps_the_instance() {
    let t = TestEngine::start();
    t.deploy("f", 3, &[]);
    let failed = t
        .engine
        .invoke(request("f", serde_json::json!({"action": "fail"})))
        .await
        .unwrap();
    assert_eq!(failed.function_error, Some("Unhandled"));
    assert_eq!(body(&failed)["errorType"], "Boom");
    let ok = t
        .engine
        .invoke(request("f", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(ok.function_error, None);
    assert_eq!(t.executor.spawns().len(), 1);
    assert!(t.executor.kills().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_the_instance_and_revokes_its_credentials() {
    let t = TestEngine::start();
    t.deploy("slow", 1, &[]);
    let timed_out = t
        .engine
        .invoke(request(
            "slow",
            serde_json::json!({"action": "sleep", "seconds": 30}),
        ))
        .await
        .unwrap();
    assert_eq!(timed_out.function_error, Some("Unhandled"));
    assert_eq!(body(&timed_out)["errorType"], "Sandbox.Timedout");
    let tail = timed_out.log_tail.unwrap();
    assert!(tail.contains("Task timed out after 1.00 seconds"), "{tail}");
    let spawned = t.executor.spawns()[0].id;
    assert_eq!(t.executor.kills(), [spawned]);
    let key = t.issuer.issued()[0].1.clone();
    eventually("the revocation of the instance's credentials", || {
        t.issuer.revoked().contains(&key)
    })
    .await;
    let seen = t.observer.seen();
    assert_eq!(
        seen[2..],
        [
            Seen::TimedOut,
            Seen::Finished {
                function_error: true,
                cold: true
            }
        ]
    );

    // The next invocation gets a new instance.
    let again = t
        .engine
        .invoke(request("slow", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(again.function_error, None);
    assert_eq!(t.executor.spawns().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_during_an_invocation_is_a_runtime_exit_error() {
    let t = TestEngine::start();
    t.deploy("crash", 3, &[]);
    let crashed = t
        .engine
        .invoke(request("crash", serde_json::json!({"action": "exit"})))
        .await
        .unwrap();
    assert_eq!(crashed.function_error, Some("Unhandled"));
    assert_eq!(body(&crashed)["errorType"], "Runtime.ExitError");
    assert!(t
        .observer
        .seen()
        .contains(&Seen::Exited(ExitStatus::Code(7))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_failures_are_reported_with_their_type() {
    let t = TestEngine::start();
    t.deploy("badinit", 3, &[("MODE", "init-error")]);
    let failed = t
        .engine
        .invoke(request("badinit", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(failed.function_error, Some("Unhandled"));
    let seen = t.observer.seen();
    assert!(matches!(seen[0], Seen::Initializing { .. }), "{seen:?}");
    assert_eq!(
        seen[2],
        Seen::InitFailed {
            error_type: "InitBoom".into()
        },
        "{seen:?}"
    );

    t.deploy("exits", 3, &[("MODE", "exit-at-init")]);
    let exited = t
        .engine
        .invoke(request("exits", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(body(&exited)["errorType"], "Runtime.ExitError");
    let tail = exited.log_tail.unwrap();
    assert!(
        tail.contains("Runtime exited with error: exit status 3"),
        "{tail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_be_assumed_starts_nothing() {
    let t = TestEngine::start();
    t.deploy("norole", 3, &[]);
    t.issuer.refuse(TEST_ROLE);
    let refused = t
        .engine
        .invoke(request("norole", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(body(&refused)["errorType"], "Runtime.InvalidRole");
    assert!(
        t.executor.spawns().is_empty(),
        "no process without credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_is_observed_and_nothing_runs() {
    let t = TestEngine::start();
    t.deploy("held", 3, &[]);
    // What the control plane announces when reserved concurrency is set to 0.
    t.engine.concurrency().on_change(&ChangeEvent {
        function: FunctionName::new("held").unwrap(),
        change: Change::ConcurrencyChanged { reserved: Some(0) },
        actor: None,
        at_ms: 0,
    });
    let throttled = t
        .engine
        .invoke(request("held", serde_json::json!({})))
        .await;
    assert!(matches!(
        throttled,
        Err(InvokeError::Throttled(
            ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded
        ))
    ));
    assert_eq!(
        t.observer.seen(),
        [Seen::Throttled(
            ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded
        )]
    );
    assert!(t.executor.spawns().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_runs_an_event_once_and_retries_a_failing_one_twice() {
    let t = TestEngine::start();
    t.deploy("worker", 3, &[]);
    let reference = FunctionRef {
        name: FunctionName::new("worker").unwrap(),
        qualifier: None,
    };
    let ok = t
        .engine
        .enqueue(&reference, Bytes::from_static(b"{\"n\": 1}"))
        .await
        .unwrap();
    eventually("the event to run and leave the queue", || {
        t.store.queued_event_count().unwrap() == 0
    })
    .await;
    assert_eq!(started_ids(&t.observer.seen()), std::slice::from_ref(&ok));

    let failing = t
        .engine
        .enqueue(&reference, Bytes::from_static(b"{\"action\": \"fail\"}"))
        .await
        .unwrap();
    eventually("the failing event's three attempts", || {
        t.store.queued_event_count().unwrap() == 0
    })
    .await;
    let seen = t.observer.seen();
    let attempts = started_ids(&seen)
        .iter()
        .filter(|id| **id == failing)
        .count();
    assert_eq!(attempts, 3, "one attempt and two retries: {seen:?}");
    let failures = seen
        .iter()
        .filter(|s| {
            matches!(
                s,
                Seen::Finished {
                    function_error: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(failures, 3);
}
