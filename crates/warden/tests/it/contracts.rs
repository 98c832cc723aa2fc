//! Input contracts: events that break a function's declared contract are refused before
//! any of its code runs, through every way an event arrives; the contract operations are
//! authorized like any other and refuse documents that could reach the network or files.

use serde_json::{json, Value};

use crate::harness::*;

pub(crate) const CONTRACT: &str = r#"{
  "EventSchema": {
    "type": "object",
    "required": ["order"],
    "properties": {
      "order": {
        "type": "object",
        "required": ["id"],
        "properties": { "id": { "type": "string", "maxLength": 16 } }
      },
      "action": { "type": "string" }
    }
  },
  "Json": { "MaxDepth": 8, "MaxStringLength": 4096, "AllowDuplicateKeys": false }
}"#;

fn invoke(s: &Server, target: &str, payload: &[u8]) -> (u16, Value) {
    let (status, _, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{target}/invocations"),
        &[],
        payload,
    );
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// How many invocations reached the function's code (its `START` lines).
fn starts(s: &Server, function: &str) -> usize {
    s.logs(function)
        .iter()
        .filter(|l| l.starts_with("START "))
        .count()
}

/// Puts `document` as the contract of `target` (`NAME` or `NAME?Qualifier=ALIAS`).
pub(crate) fn put(s: &Server, target: &str, document: &str) -> (u16, Value) {
    let (name, query) = target.split_once('?').unwrap_or((target, ""));
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let (status, _, body) = s.http(
        "PUT",
        &format!("/_warden/2026-11-01/functions/{name}/input-contract{query}"),
        &[("content-type", "application/json")],
        document.as_bytes(),
    );
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn events_that_break_the_contract_never_reach_the_code() {
    let s = Server::start();
    s.create_fixture("orders", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contract.json");
    std::fs::write(&file, CONTRACT).unwrap();
    let out = s.warden(&[
        "function",
        "contract",
        "set",
        "orders",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["Contract"]["Json"]["MaxDepth"], 8);

    // A conforming event runs.
    let good = json!({"order": {"id": "A-1"}, "action": "echo"});
    let (status, body) = invoke(&s, "orders", good.to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, good);
    s.wait_logs("orders", std::time::Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("REPORT "))
    });
    let ran = starts(&s, "orders");

    // Each of these is refused with 400 InvalidRequestContentException naming where.
    let secret = "s".repeat(10_000);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (br#"{"order": {"id": 7}}"#.to_vec(), "/order/id"),
        (br#"{"action": "echo"}"#.to_vec(), "order"),
        (
            json!({"order": {"id": secret}}).to_string().into_bytes(),
            "/order/id",
        ),
        (
            br#"{"order": {"id": "a"}, "order": {"id": "b"}}"#.to_vec(),
            "order",
        ),
        (br#"{"order": {"id": "a"}"#.to_vec(), ""),
        (b"\xff\xfe{}".to_vec(), ""),
        (
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            "",
        ),
    ];
    for (payload, location) in &cases {
        let (status, body) = invoke(&s, "orders", payload);
        assert_eq!(status, 400, "{body}");
        let text = body.to_string();
        assert!(text.contains("InvalidRequestContentException"), "{text}");
        assert!(text.contains(location), "{location} not named: {text}");
        // The offending value is never echoed beyond a short excerpt.
        assert!(
            !text.contains(&"s".repeat(64)),
            "echoed the value: {}",
            text.len()
        );
    }
    // Asynchronous invocations are checked before they are queued.
    let (status, _, body) = s.http(
        "POST",
        "/2015-03-31/functions/orders/invocations",
        &[("X-Amz-Invocation-Type", "Event")],
        br#"{"order": {}}"#,
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // And the AWS CLI shows the error as Lambda's.
    let err = s.aws_err(&[
        "lambda",
        "invoke",
        "--function-name",
        "orders",
        "--payload",
        r#"{"order": {"id": 7}}"#,
        "/dev/null",
    ]);
    assert_eq!(error_code(&err), "InvalidRequestContentException", "{err}");
    assert!(err.contains("/order/id"), "{err}");

    // None of them reached the function.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(starts(&s, "orders"), ran, "a refused event ran");
    let (status, _, body) = s.http(
        "GET",
        "/_warden/2026-11-01/functions/orders/input-contract",
        &[],
        b"",
    );
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["RefusedEvents"].as_u64(),
        Some(cases.len() as u64 + 2),
        "{body}"
    );
}

#[test]
fn an_alias_may_carry_its_own_contract_and_contracts_go_with_their_function() {
    let s = Server::start();
    s.create_fixture("f", &["--publish"]);
    s.aws(&[
        "lambda",
        "create-alias",
        "--function-name",
        "f",
        "--name",
        "live",
        "--function-version",
        "1",
    ]);
    assert_eq!(put(&s, "f", CONTRACT).0, 200);
    let (status, body) = put(
        &s,
        "f?Qualifier=live",
        r#"{"EventSchema": {"type": "object", "required": ["tenant"]}}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Qualifier"], "live");
    assert!(body["FunctionArn"]
        .as_str()
        .unwrap()
        .ends_with(":function:f:live"));

    let order = br#"{"order": {"id": "x"}}"#;
    let tenant = br#"{"tenant": "t"}"#;
    assert_eq!(invoke(&s, "f", order).0, 200);
    assert_eq!(invoke(&s, "f", tenant).0, 400);
    assert_eq!(invoke(&s, "f:live", tenant).0, 200);
    assert_eq!(invoke(&s, "f:live", order).0, 400);
    // A version has no contract of its own: the function's applies.
    assert_eq!(invoke(&s, "f:1", tenant).0, 400);
    let (status, body) = put(&s, "f?Qualifier=1", CONTRACT);
    assert_eq!(status, 400, "{body}");

    // Deleting the alias forgets its contract; a new alias of that name has none.
    s.aws(&[
        "lambda",
        "delete-alias",
        "--function-name",
        "f",
        "--name",
        "live",
    ]);
    s.aws(&[
        "lambda",
        "create-alias",
        "--function-name",
        "f",
        "--name",
        "live",
        "--function-version",
        "1",
    ]);
    assert_eq!(
        invoke(&s, "f:live", tenant).0,
        400,
        "the function's applies"
    );
    // Deleting the function forgets all of them.
    s.aws(&["lambda", "delete-function", "--function-name", "f"]);
    s.create_fixture("f", &[]);
    assert_eq!(invoke(&s, "f", tenant).0, 200);
    let (status, _, _) = s.http(
        "GET",
        "/_warden/2026-11-01/functions/f/input-contract",
        &[],
        b"",
    );
    assert_eq!(status, 404);

    // Contracts survive a restart, compiled again.
    assert_eq!(put(&s, "f", CONTRACT).0, 200);
    let mut s = s;
    s.stop();
    s.restart();
    assert_eq!(invoke(&s, "f", tenant).0, 400);
    assert_eq!(invoke(&s, "f", order).0, 200);
    // Deleting it admits any JSON again.
    let out = s.warden(&["function", "contract", "delete", "f"]);
    assert!(out.status.success());
    assert_eq!(invoke(&s, "f", tenant).0, 200);
    let out = s.warden(&["function", "contract", "delete", "f"]);
    assert!(!out.status.success(), "deleting nothing is an error");
}

#[test]
fn contract_operations_are_authorized_and_refuse_unsafe_documents() {
    let s = Server::start();
    s.create_fixture("f", &[]);
    // Documents that would reach the network or files, or are not contracts at all.
    for (document, named) in [
        (
            r#"{"EventSchema": {"$ref": "https://example.com/schema.json"}}"#,
            "https://example.com/schema.json",
        ),
        (
            r#"{"EventSchema": {"properties": {"a": {"$ref": "file:///etc/passwd"}}}}"#,
            "file:///etc/passwd",
        ),
        (
            r#"{"EventSchema": {"$schema": "https://example.com/meta"}}"#,
            "https://example.com/meta",
        ),
        (r#"{"Bogus": 1}"#, "Bogus"),
        (r#"{"Json": {"MaxDepth": 100000}}"#, "MaxDepth"),
        ("not json", ""),
    ] {
        let (status, body) = put(&s, "f", document);
        assert_eq!(status, 400, "{document}: {body}");
        assert!(body.to_string().contains(named), "{named}: {body}");
    }
    let big = format!(
        r#"{{"EventSchema": {{"description": "{}"}}}}"#,
        "x".repeat(300 * 1024)
    );
    assert_eq!(put(&s, "f", &big).0, 400);
    // None of those was stored.
    let (status, _, _) = s.http(
        "GET",
        "/_warden/2026-11-01/functions/f/input-contract",
        &[],
        b"",
    );
    assert_eq!(status, 404);
    assert_eq!(put(&s, "missing", CONTRACT).0, 404);

    // `lambda:*` does not grant the contract operations; they are named actions.
    let lambda_admin = user_with_policy(
        &s,
        "lambda-admin",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}]}),
    );
    let reader = user_with_policy(
        &s,
        "reader",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "warden:GetFunctionInputContract",
             "Resource": "arn:aws:lambda:*:*:function:f"}]}),
    );
    assert_eq!(put(&s, "f", CONTRACT).0, 200);
    let as_user = |who: &Credentials, method: &str| {
        send(
            &s.endpoint,
            Some(who),
            method,
            "/_warden/2026-11-01/functions/f/input-contract",
            &[],
            CONTRACT.as_bytes(),
        )
    };
    for method in ["PUT", "GET", "DELETE"] {
        let (status, _, body) = as_user(&lambda_admin, method);
        assert_eq!(status, 403, "{method}: {}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("AccessDeniedException"));
    }
    assert_eq!(as_user(&reader, "GET").0, 200);
    assert_eq!(as_user(&reader, "PUT").0, 403);
    assert_eq!(as_user(&reader, "DELETE").0, 403);
    // Unsigned calls are refused before anything else.
    let (status, _, _) = s.http_unsigned(
        "GET",
        "/_warden/2026-11-01/functions/f/input-contract",
        &[],
        b"",
    );
    assert_eq!(status, 403);
}
