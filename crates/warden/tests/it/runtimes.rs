//! Python functions run by the unmodified `awslambdaric` client.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{python_zip, Server};

const HANDLERS: &str = r#"
import json, os, sys
print("module loaded", flush=True)

def ok(event, context):
    print("handling", json.dumps(event))
    return {
        "event": event,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "python": sys.version_info[0],
    }

def fail(event, context):
    raise ValueError("python says no")
"#;

fn create(s: &Server, name: &str, handler: &str, zip: &std::path::Path) {
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        crate::harness::python_runtime(),
        "--handler",
        handler,
        "--role",
        "arn:aws:iam::123456789012:role/lambda-exec",
        "--timeout",
        "10",
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ]);
}

fn invoke(s: &Server, name: &str, payload: &str) -> (Option<String>, Value) {
    let (status, headers, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[],
        payload.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let error = headers
        .iter()
        .find(|(k, _)| k == "x-amz-function-error")
        .map(|(_, v)| v.clone());
    (error, serde_json::from_slice(&body).unwrap())
}

#[test]
fn python_handlers_run_under_awslambdaric() {
    let s = Server::start();
    let zip = python_zip(&[("app.py", HANDLERS)]);
    create(&s, "py", "app.ok", &zip);
    let (error, body) = invoke(&s, "py", r#"{"k": "v"}"#);
    assert_eq!(error, None, "{body}");
    assert_eq!(body["event"]["k"], "v");
    assert_eq!(body["function_name"], "py");
    assert_eq!(body["memory"].to_string().trim_matches('"'), "128");
    let remaining = body["remaining_ms"].as_i64().unwrap();
    assert!(
        (8_000..=10_000).contains(&remaining),
        "remaining time follows the real deadline: {remaining}"
    );
    assert!(body["arn"].as_str().unwrap().ends_with(":function:py"));

    let logs = s.wait_logs("py", Duration::from_secs(5), |l| {
        l.iter().any(|x| x.starts_with("REPORT"))
    });
    assert!(logs.iter().any(|l| l == "module loaded"), "{logs:?}");
    assert!(
        logs.iter().any(|l| l.contains(r#"handling {"k": "v"}"#)),
        "{logs:?}"
    );

    create(&s, "pyfail", "app.fail", &zip);
    let (error, body) = invoke(&s, "pyfail", "{}");
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "ValueError");
    assert_eq!(body["errorMessage"], "python says no");
    assert!(body["stackTrace"].is_array(), "{body}");
}

#[test]
fn python_init_errors_reach_the_caller() {
    let s = Server::start();
    let zip = python_zip(&[
        ("app.py", HANDLERS),
        ("broken.py", "import does_not_exist\n"),
    ]);
    create(&s, "noimport", "broken.handler", &zip);
    let (error, body) = invoke(&s, "noimport", "{}");
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Runtime.ImportModuleError", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Unable to import module 'broken'"),
        "{body}"
    );

    create(&s, "nohandler", "app.missing", &zip);
    let (error, body) = invoke(&s, "nohandler", "{}");
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Runtime.HandlerNotFound", "{body}");
}
