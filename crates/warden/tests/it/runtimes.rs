//! Managed runtimes as a user meets them: Python functions on Warden's runtime, init errors,
//! and a fresh host that has only a plain `python3` and `node`.

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
    let seen = crate::harness::invoke_seen(s, name, payload);
    (seen.error, seen.body)
}

#[test]
fn python_handlers_run_on_wardens_runtime() {
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

    let logs = s.wait_logs("py", Duration::from_secs(30), |l| {
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

/// What `warden runtime list --output json` says on a host whose `PATH` is only the
/// system's, as the server started by [`Server::start_fresh_host`] sees it.
fn fresh_host_runtimes() -> Value {
    let out = std::process::Command::new(crate::harness::warden_bin())
        .args([
            "runtime",
            "list",
            "--output",
            "json",
            "--data-dir",
            "/nonexistent",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The first ready runtime whose name starts with `prefix`.
fn ready(list: &Value, prefix: &str) -> Option<String> {
    list["Runtimes"].as_array()?.iter().find_map(|r| {
        let name = r["Runtime"].as_str()?;
        (name.starts_with(prefix) && r["Available"] == true).then(|| name.to_owned())
    })
}

#[test]
fn a_fresh_host_with_plain_python3_and_node_runs_both_unconfigured() {
    let list = fresh_host_runtimes();
    let python = ready(&list, "python").unwrap_or_else(|| panic!("no plain python3: {list}"));
    let node = ready(&list, "nodejs").unwrap_or_else(|| panic!("no plain node: {list}"));
    let s = Server::start_fresh_host();
    let py_zip = python_zip(&[(
        "app.py",
        "import sys\ndef handler(event, context):\n    return {'got': event, 'exe': sys.executable}\n",
    )]);
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "py",
        "--runtime",
        &python,
        "--handler",
        "app.handler",
        "--role",
        crate::harness::EXEC_ROLE,
        "--zip-file",
        &format!("fileb://{}", py_zip.display()),
    ]);
    let js_dir = crate::harness::scratch_dir();
    std::fs::write(
        js_dir.join("index.js"),
        "exports.handler = async (event) => ({ got: event, exe: process.execPath });\n",
    )
    .unwrap();
    let js_zip = crate::harness::zip_dir(&js_dir);
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "js",
        "--runtime",
        &node,
        "--handler",
        "index.handler",
        "--role",
        crate::harness::EXEC_ROLE,
        "--zip-file",
        &format!("fileb://{}", js_zip.display()),
    ]);
    // Invoked with boto3, as a user's script would.
    let out = s.python(
        r#"
import boto3, json, os
lam = boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"])
for name in ["py", "js"]:
    r = lam.invoke(FunctionName=name, Payload=json.dumps({"n": 1}).encode())
    print(json.dumps({"error": r.get("FunctionError"), "payload": json.loads(r["Payload"].read())}))
"#,
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let version = python.trim_start_matches("python");
    assert_eq!(
        lines[0],
        serde_json::json!({"error": null, "payload": {"got": {"n": 1}, "exe": format!("/var/lang/bin/python{version}")}})
    );
    assert_eq!(
        lines[1],
        serde_json::json!({"error": null, "payload": {"got": {"n": 1}, "exe": "/var/lang/bin/node"}})
    );

    // A runtime this host cannot serve is refused at once, saying what to do.
    let missing = list["Runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Available"] == false)
        .map(|r| r["Runtime"].as_str().unwrap().to_owned());
    if let Some(missing) = missing {
        let err = s.aws_err(&[
            "lambda",
            "create-function",
            "--function-name",
            "nope",
            "--runtime",
            &missing,
            "--handler",
            "app.handler",
            "--role",
            crate::harness::EXEC_ROLE,
            "--zip-file",
            &format!("fileb://{}", py_zip.display()),
        ]);
        assert!(
            err.contains("InvalidParameterValueException")
                && err.contains(&format!(
                    "The runtime {missing} is not available on this Warden host"
                ))
                && err.contains("--runtime"),
            "{err}"
        );
    }
    // An unknown runtime is refused as Lambda refuses it; a deprecated one too.
    let err = s.aws_err(&[
        "lambda",
        "create-function",
        "--function-name",
        "old",
        "--runtime",
        "python3.7",
        "--handler",
        "app.handler",
        "--role",
        crate::harness::EXEC_ROLE,
        "--zip-file",
        &format!("fileb://{}", py_zip.display()),
    ]);
    assert!(err.contains("no longer supported"), "{err}");
}
