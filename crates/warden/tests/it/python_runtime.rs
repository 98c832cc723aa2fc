//! Warden's Python runtime against the reference client: the same handlers run on two
//! servers, one with Warden's own bootstrap, the other with the unmodified `awslambdaric`
//! brought by the function itself (vendored into the package and started through
//! `AWS_LAMBDA_EXEC_WRAPPER`, as code that brings its own client does), and everything but
//! ids and timestamps must agree: results, errors, init failures, context values and log
//! lines.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::{invoke_seen, python, python_runtime, zip_dir, Seen, Server, EXEC_ROLE};

const HANDLERS: &str = r#"
import decimal, json, logging, os, sys
logger = logging.getLogger()
logger.setLevel(logging.INFO)
print("module loaded")

def context(event, context):
    custom = None if context.client_context is None else context.client_context.custom
    return {
        "event": event,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name.split("]")[0] + "]",
        "request_id_length": len(context.aws_request_id),
        "remaining_in_range": 0 < context.get_remaining_time_in_millis() <= 10000,
        "identity": context.identity is None,
        "client_context": custom,
        "cwd": os.getcwd(),
        "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
    }

def helper():
    return {"a": 1}["b"]

def fail(event, context):
    raise ValueError("python says no")

def nested(event, context):
    return helper()

def unmarshallable(event, context):
    return {"s": {1, 2}}

def decimals(event, context):
    return {"d": decimal.Decimal("1.5")}

def logs(event, context):
    logger.info("info line")
    logger.warning("two\nlines")
    logger.debug("hidden")
    print("printed")
    return "done"

def nothing(event, context):
    return None

def text(event, context):
    return {"s": "\u00e9\u2713", "n": [1, 2.5, True, None]}
"#;

/// The wrapper that runs the reference client instead of Warden's bootstrap: Lambda
/// starts it with the runtime's command line, whose first word is the interpreter.
const RIC_WRAPPER: &str =
    "#!/bin/sh\nPYTHONPATH=/var/task/ric exec \"$1\" -m awslambdaric \"$_HANDLER\"\n";

/// A package holding the handlers, modules that fail at import, and `awslambdaric` (with
/// what it imports) copied from the test interpreter's environment under `ric/`.
fn package() -> PathBuf {
    let dir = crate::harness::scratch_dir();
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("app.py", HANDLERS);
    write(
        "pkg/sub/module.py",
        "def handler(event, context):\n    return 'deep'\n",
    );
    write("pkg/__init__.py", "");
    write("pkg/sub/__init__.py", "");
    write("broken.py", "import does_not_exist\n");
    write("syntax.py", "def handler(event, context:\n    return 1\n");
    write("raises.py", "raise RuntimeError('at import')\n");
    // `logging` imported only once the handler runs: Lambda's format all the same.
    write(
        "late.py",
        "def handler(event, context):\n    import logging\n    logging.getLogger().warning('late %s', 1)\n    return 'ok'\n",
    );
    write("ric.sh", RIC_WRAPPER);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("ric.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let site = String::from_utf8(
        Command::new(python())
            .args([
                "-c",
                "import awslambdaric, os; print(os.path.dirname(os.path.dirname(awslambdaric.__file__)))",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let site = PathBuf::from(site.trim());
    for entry in std::fs::read_dir(&site).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = ["awslambdaric", "simplejson", "snapshot_restore_py.py"]
            .contains(&name.as_str())
            || name.starts_with("runtime_client");
        if wanted {
            copy(&entry.path(), &dir.join("ric").join(&name));
        }
    }
    zip_dir(&dir)
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            if e.file_name() != "__pycache__" {
                copy(&e.path(), &to.join(e.file_name()));
            }
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

/// Creates `name` with `handler` on `s`; with `reference`, run by `awslambdaric`.
fn create(s: &Server, name: &str, handler: &str, zip: &Path, reference: bool) {
    let env = if reference {
        "Variables={AWS_LAMBDA_EXEC_WRAPPER=/var/task/ric.sh}"
    } else {
        "Variables={}"
    };
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        python_runtime(),
        "--handler",
        handler,
        "--role",
        EXEC_ROLE,
        "--timeout",
        "10",
        "--memory-size",
        "512",
        "--environment",
        env,
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ]);
}

/// What one invocation showed, with the request id left out of error bodies and the
/// reference client's advisory warning before an init error (which Warden's runtime does
/// not print) left out of the logs.
fn run(s: &Server, name: &str, payload: &str) -> Seen {
    let mut seen = invoke_seen(s, name, payload);
    if let Some(o) = seen.body.as_object_mut() {
        o.remove("requestId");
    }
    seen.logs.retain(|l| !l.contains("\tLAMBDA_WARNING: "));
    seen
}

#[test]
fn wardens_python_runtime_behaves_as_the_reference_client() {
    let ours = Server::start();
    let reference = Server::start();
    let zip = package();
    let cases: &[(&str, &str, &str)] = &[
        ("context", "app.context", r#"{"k": "v"}"#),
        ("fail", "app.fail", "{}"),
        ("nested", "app.nested", "{}"),
        ("unmarshallable", "app.unmarshallable", "{}"),
        ("decimals", "app.decimals", "{}"),
        ("logs", "app.logs", "{}"),
        ("nothing", "app.nothing", "{}"),
        ("text", "app.text", "[1, \"two\"]"),
        ("deep", "pkg/sub/module.handler", "{}"),
        ("broken", "broken.handler", "{}"),
        ("syntax", "syntax.handler", "{}"),
        ("raises", "raises.handler", "{}"),
        ("missing", "app.missing", "{}"),
        ("late", "late.handler", "{}"),
    ];
    for (name, handler, _) in cases {
        create(&ours, name, handler, &zip, false);
        create(&reference, name, handler, &zip, true);
    }
    for (name, _, payload) in cases {
        let got = run(&ours, name, payload);
        let want = run(&reference, name, payload);
        assert_eq!(
            got, want,
            "case `{name}`: Warden's runtime (left) differs from awslambdaric (right)"
        );
    }
    // The cases mean something: spot-check what both agreed on.
    let seen = run(&ours, "context", "{}");
    assert_eq!(seen.body["client_context"], json!({"k": "v"}));
    assert_eq!(seen.body["memory_limit_in_mb"], "512");
    assert_eq!(seen.body["cwd"], "/var/task");
    let seen = run(&ours, "logs", "{}");
    assert!(
        seen.logs
            .contains(&"[WARNING]\t<time>\t<id>\ttwo".to_owned()),
        "{:?}",
        seen.logs
    );
    let seen = run(&ours, "syntax", "{}");
    assert_eq!(seen.body["errorType"], "Runtime.UserCodeSyntaxError");
    let seen = run(&ours, "late", "{}");
    assert!(
        seen.logs
            .contains(&"[WARNING]\t<time>\t<id>\tlate 1".to_owned()),
        "{:?}",
        seen.logs
    );
}

#[test]
fn a_python_traceback_is_one_log_event_with_its_line_breaks() {
    let s = Server::start();
    create(&s, "fail", "app.fail", &package(), false);
    let seen = run(&s, "fail", "{}");
    assert_eq!(seen.error.as_deref(), Some("Unhandled"));
    let lines = s.logs("fail");
    let event = lines
        .iter()
        .find(|l| l.starts_with("[ERROR] ValueError: python says no"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        event.contains("\nTraceback (most recent call last):\n  File \"/var/task/app.py\""),
        "{event:?}"
    );
    assert!(!event.contains('\r'), "{event:?}");
}

const USES_BOTO3: &str = r#"
def handler(event, context):
    import boto3
    return {"file": boto3.__file__, "version": boto3.__version__}
"#;

#[test]
fn boto3_comes_from_wardens_sdk_never_from_the_hosts_site_packages() {
    let s = Server::start();
    // The test interpreter has boto3 in its own site-packages: a function must not see it.
    let zip = crate::harness::python_zip(&[("app.py", USES_BOTO3)]);
    create(&s, "before", "app.handler", &zip, false);
    let seen = run(&s, "before", "{}");
    assert_eq!(seen.error.as_deref(), Some("Unhandled"));
    assert_eq!(
        seen.body["errorType"], "ModuleNotFoundError",
        "{:?}",
        seen.body
    );
    let listed = s.warden(&[
        "runtime",
        "list",
        "--data-dir",
        s.data_dir.to_str().unwrap(),
    ]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("boto3 (Python SDK): not installed"),
        "{listed}"
    );

    s.install_python_sdk();
    create(&s, "after", "app.handler", &zip, false);
    let seen = run(&s, "after", "{}");
    assert_eq!(seen.error, None, "{:?}", seen.body);
    assert!(
        seen.body["file"]
            .as_str()
            .unwrap()
            .starts_with("/var/runtime/sdk/python/boto3/"),
        "{:?}",
        seen.body
    );
    let listed = s.warden(&[
        "runtime",
        "list",
        "--data-dir",
        s.data_dir.to_str().unwrap(),
    ]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains(&format!(
            "boto3 (Python SDK) {}: installed",
            seen.body["version"].as_str().unwrap()
        )),
        "{listed}"
    );
}

const LOGS_PY: &str = r#"
import logging
logger = logging.getLogger()

def handler(event, context):
    logger.debug("debug detail")
    logger.info("info line")
    logger.error("error line")
    return "ok"
"#;

#[test]
fn json_logging_config_writes_json_records_filtered_by_level() {
    let s = Server::start();
    let zip = crate::harness::python_zip(&[("app.py", LOGS_PY)]);
    let created = s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "json",
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &format!("fileb://{}", zip.display()),
        "--logging-config",
        "LogFormat=JSON,ApplicationLogLevel=DEBUG",
    ]);
    assert_eq!(
        created["LoggingConfig"],
        json!({"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG", "SystemLogLevel": "INFO",
               "LogGroup": "/aws/lambda/json"})
    );
    let invoke = || {
        let (status, _, body) =
            s.http("POST", "/2015-03-31/functions/json/invocations", &[], b"{}");
        assert_eq!((status, body.as_slice()), (200, &b"\"ok\""[..]));
    };
    invoke();
    let lines = s.wait_logs("json", std::time::Duration::from_secs(10), |l| {
        l.iter().any(|x| x.contains("platform.report"))
    });
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?}")))
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().or(r["level"].as_str()).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "platform.start",
            "DEBUG",
            "INFO",
            "ERROR",
            "platform.report"
        ],
        "{lines:?}"
    );
    let request_id = records[0]["record"]["requestId"].as_str().unwrap();
    assert_eq!(records[1]["requestId"], request_id);
    assert_eq!(records[1]["message"], "debug detail");
    assert!(
        records[4]["record"]["metrics"]["initDurationMs"].is_number(),
        "{}",
        records[4]
    );

    // At ERROR and a WARN system level, only the error is written.
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "json",
        "--logging-config",
        "LogFormat=JSON,ApplicationLogLevel=ERROR,SystemLogLevel=WARN",
    ]);
    invoke();
    s.wait_logs("json", std::time::Duration::from_secs(10), |l| {
        l.len() > lines.len()
    });
    // Anything else of that invocation would have been stored with or before its error.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after: Vec<String> = s.logs("json").into_iter().skip(lines.len()).collect();
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(
        after[0].contains("\"level\": \"ERROR\"") || after[0].contains("\"level\":\"ERROR\""),
        "{after:?}"
    );

    // Levels belong to the JSON format only.
    let err = s.aws_err(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "json",
        "--logging-config",
        "LogFormat=Text,ApplicationLogLevel=DEBUG",
    ]);
    assert!(
        err.contains("InvalidParameterValueException") && err.contains("only with LogFormat JSON"),
        "{err}"
    );
}
