//! Scale-out and throttling under reserved and account concurrency.

use std::time::Duration;

use serde_json::Value;

use crate::harness::Server;

fn invoke_in_thread(
    s: &Server,
    function: &str,
    payload: &str,
) -> std::thread::JoinHandle<(u16, Value)> {
    let endpoint = s.endpoint.clone();
    let admin = s.admin();
    let path = format!("/2015-03-31/functions/{function}/invocations");
    let payload = payload.to_owned();
    std::thread::spawn(move || {
        let (status, _, body) = crate::harness::send(
            &endpoint,
            Some(&admin),
            "POST",
            &path,
            &[],
            payload.as_bytes(),
        );
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    })
}

#[test]
fn instances_scale_out_and_reserved_concurrency_throttles() {
    let s = Server::start();
    s.create_fixture("par", &["--timeout", "10"]);
    // Three concurrent invocations run in three instances.
    let handles: Vec<_> = (0..3)
        .map(|_| invoke_in_thread(&s, "par", r#"{"action":"sleep","ms":700}"#))
        .collect();
    let results: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        results.iter().all(|(status, _)| *status == 200),
        "{results:?}"
    );

    s.aws(&[
        "lambda",
        "put-function-concurrency",
        "--function-name",
        "par",
        "--reserved-concurrent-executions",
        "1",
    ]);
    let busy = invoke_in_thread(&s, "par", r#"{"action":"sleep","ms":1500}"#);
    std::thread::sleep(Duration::from_millis(400));
    let (status, headers, body) =
        s.http("POST", "/2015-03-31/functions/par/invocations", &[], b"{}");
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["Reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-amzn-errortype" && v == "TooManyRequestsException"),
        "{headers:?}"
    );
    assert!(
        headers.iter().any(|(k, _)| k == "retry-after"),
        "{headers:?}"
    );
    assert_eq!(busy.join().unwrap().0, 200);
    let (status, _, _) = s.http("POST", "/2015-03-31/functions/par/invocations", &[], b"{}");
    assert_eq!(status, 200, "the slot is free again");
}

#[test]
fn the_account_limit_throttles_unreserved_functions() {
    let s = Server::start_with(&["--account-concurrency", "2"]);
    s.create_fixture("acct", &["--timeout", "10"]);
    let a = invoke_in_thread(&s, "acct", r#"{"action":"sleep","ms":1500}"#);
    let b = invoke_in_thread(&s, "acct", r#"{"action":"sleep","ms":1500}"#);
    std::thread::sleep(Duration::from_millis(500));
    let (status, _, body) = s.http("POST", "/2015-03-31/functions/acct/invocations", &[], b"{}");
    assert_eq!(status, 429);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["Reason"], "ConcurrentInvocationLimitExceeded");
    assert_eq!(a.join().unwrap().0, 200);
    assert_eq!(b.join().unwrap().0, 200);
    let settings = s.aws(&["lambda", "get-account-settings"]);
    assert_eq!(settings["AccountLimit"]["ConcurrentExecutions"], 2);
}
