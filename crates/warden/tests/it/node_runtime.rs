//! Node.js functions on Warden's own Node.js runtime, deployed with the AWS CLI and
//! invoked as a user would: CommonJS, ES modules, async and callback handlers, Lambda's
//! errors and log lines, and the filesystem layout of the sandbox; and the same handlers
//! under the unmodified reference client `aws-lambda-ric` (brought by the function through
//! `AWS_LAMBDA_EXEC_WRAPPER`), which must agree on everything but ids, times and the
//! runtimes' own stack frames.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{invoke_seen, zip_dir, Seen, Server, EXEC_ROLE};

/// The runtime of the host's `node` (`nodejs20.x`...), which Warden finds on `PATH`.
pub(crate) fn node_runtime() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let out = std::process::Command::new("node")
            .args(["-p", "process.versions.node.split('.')[0]"])
            .output()
            .expect("the tests need node on PATH");
        format!("nodejs{}.x", String::from_utf8(out.stdout).unwrap().trim())
    })
}

fn package(files: &[(&str, &str)]) -> PathBuf {
    let dir = crate::harness::scratch_dir();
    for (rel, text) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    zip_dir(&dir)
}

fn create(s: &Server, name: &str, handler: &str, zip: &Path) {
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        node_runtime(),
        "--handler",
        handler,
        "--role",
        EXEC_ROLE,
        "--timeout",
        "10",
        "--memory-size",
        "512",
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ]);
}

/// Invokes `name` with the AWS CLI; returns the function error (if any) and the payload.
fn invoke(s: &Server, name: &str, payload: &str) -> (Option<String>, Value) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let meta = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--payload",
        payload,
        out.path().to_str().unwrap(),
    ]);
    let body = std::fs::read(out.path()).unwrap();
    (
        meta.get("FunctionError")
            .and_then(Value::as_str)
            .map(str::to_owned),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

const CJS: &str = r#"
const fs = require('fs');
console.log('module loaded');
exports.handler = async (event, context) => ({
  event,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  memoryLimitInMB: context.memoryLimitInMB,
  remainingInRange: context.getRemainingTimeInMillis() > 0 && context.getRemainingTimeInMillis() <= 10000,
  requestIdLength: context.awsRequestId.length,
  arn: context.invokedFunctionArn,
  logGroupName: context.logGroupName,
  execPath: process.execPath,
  var: fs.readdirSync('/var').sort(),
  nodePath: process.env.NODE_PATH,
});
exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { via: 'callback', n: event.n }), 5);
};
exports.callbackError = (event, context, callback) => callback(new Error('callback says no'));
exports.thrown = async () => { throw new TypeError('node says no'); };
exports.rejected = async () => { Promise.reject(new Error('nobody waits')); await new Promise(r => setTimeout(r, 200)); return 'late'; };
exports.logs = async () => {
  console.log('plain %s', 'line');
  console.error('two\nlines');
  console.warn('careful');
  return 'logged';
};
"#;

const ESM: &str = r#"
const loaded = await Promise.resolve('top-level await');
export const handler = async (event) => ({ esm: true, loaded, event });
"#;

#[test]
fn node_handlers_run_as_on_lambda() {
    let s = Server::start();
    let zip = package(&[
        ("index.js", CJS),
        ("esm.mjs", ESM),
        ("nested/deep/mod.js", "exports.go = async () => 'deep';"),
    ]);
    create(&s, "cjs", "index.handler", &zip);
    let (error, body) = invoke(&s, "cjs", r#"{"k": "v"}"#);
    assert_eq!(error, None, "{body}");
    assert_eq!(body["event"], json!({"k": "v"}));
    assert_eq!(body["functionName"], "cjs");
    assert_eq!(body["functionVersion"], "$LATEST");
    assert_eq!(body["memoryLimitInMB"], "512");
    assert_eq!(body["remainingInRange"], true);
    assert_eq!(body["requestIdLength"], 36);
    assert!(
        body["arn"].as_str().unwrap().ends_with(":function:cjs"),
        "{body}"
    );
    assert_eq!(body["logGroupName"], "/aws/lambda/cjs");
    assert_eq!(body["execPath"], "/var/lang/bin/node");
    assert_eq!(body["var"], json!(["lang", "runtime", "task"]));
    assert!(
        body["nodePath"]
            .as_str()
            .unwrap()
            .contains("/opt/nodejs/node_modules"),
        "{body}"
    );

    create(&s, "esm", "esm.handler", &zip);
    let (error, body) = invoke(&s, "esm", "[1]");
    assert_eq!(error, None, "{body}");
    assert_eq!(
        body,
        json!({"esm": true, "loaded": "top-level await", "event": [1]})
    );

    create(&s, "deep", "nested/deep/mod.go", &zip);
    assert_eq!(invoke(&s, "deep", "{}"), (None, json!("deep")));

    create(&s, "callback", "index.callback", &zip);
    assert_eq!(
        invoke(&s, "callback", r#"{"n": 7}"#),
        (None, json!({"via": "callback", "n": 7}))
    );

    create(&s, "cberror", "index.callbackError", &zip);
    let (error, body) = invoke(&s, "cberror", "{}");
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Error", "{body}");
    assert_eq!(body["errorMessage"], "callback says no", "{body}");

    create(&s, "thrown", "index.thrown", &zip);
    let (error, body) = invoke(&s, "thrown", "{}");
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "TypeError", "{body}");
    assert_eq!(body["errorMessage"], "node says no", "{body}");
    assert!(
        body["trace"].as_array().is_some_and(|t| t
            .iter()
            .any(|l| l.as_str().unwrap().contains("/var/task/index.js"))),
        "{body}"
    );
}

#[test]
fn a_package_of_type_module_loads_as_esm() {
    let s = Server::start();
    let zip = package(&[
        ("package.json", r#"{"type": "module"}"#),
        (
            "app.js",
            "export const handler = async () => ({ esm: typeof require === 'undefined' });",
        ),
    ]);
    create(&s, "typed", "app.handler", &zip);
    assert_eq!(invoke(&s, "typed", "{}"), (None, json!({"esm": true})));
}

#[test]
fn node_init_errors_and_unhandled_rejections_are_reported_as_lambda_reports_them() {
    let s = Server::start();
    let zip = package(&[
        ("index.js", CJS),
        ("syntax.js", "exports.handler = async () => {;\n"),
    ]);
    for (name, handler, error_type) in [
        ("nomodule", "missing.handler", "Runtime.ImportModuleError"),
        ("noexport", "index.nope", "Runtime.HandlerNotFound"),
        ("syntax", "syntax.handler", "Runtime.UserCodeSyntaxError"),
    ] {
        create(&s, name, handler, &zip);
        let (error, body) = invoke(&s, name, "{}");
        assert_eq!(error.as_deref(), Some("Unhandled"), "{name}: {body}");
        assert_eq!(body["errorType"], error_type, "{name}: {body}");
    }

    create(&s, "rejected", "index.rejected", &zip);
    let (error, body) = invoke(&s, "rejected", "{}");
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(
        body["errorType"], "Runtime.UnhandledPromiseRejection",
        "{body}"
    );
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("nobody waits"),
        "{body}"
    );
}

#[test]
fn console_lines_are_lambda_log_events() {
    let s = Server::start();
    create(&s, "logs", "index.logs", &package(&[("index.js", CJS)]));
    assert_eq!(invoke(&s, "logs", "{}"), (None, json!("logged")));
    let lines = s.wait_logs("logs", Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("REPORT"))
    });
    let fields = |needle: &str| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.ends_with(needle))
            .unwrap_or_else(|| panic!("{needle:?} in {lines:?}"));
        line.split('\t').map(str::to_owned).collect()
    };
    let plain = fields("plain line");
    assert_eq!(plain.len(), 4, "{plain:?}");
    assert!(
        plain[0].ends_with('Z') && plain[0].contains('T'),
        "{plain:?}"
    );
    assert_eq!(plain[1].len(), 36, "{plain:?}");
    assert_eq!(plain[2], "INFO");
    assert_eq!(fields("careful")[2], "WARN");
    // A message of several lines stays one event.
    let two = fields("two\nlines");
    assert_eq!(two[2], "ERROR");
    assert!(lines
        .iter()
        .any(|l| l == "module loaded" || l.ends_with("\tmodule loaded")));
}

/// The Node.js SDK comes from `warden runtime sdk install node`, offline from `npm pack`
/// tarballs here: a package the function does not bring resolves from Warden's SDK
/// directory, never from anywhere on the host. (The package is a stand-in built by the
/// test, named as the SDK's Lambda client is, so no network is needed.)
#[test]
fn the_node_sdk_is_installed_by_warden_and_found_without_packaging() {
    let s = Server::start();
    let src = tempfile::tempdir().unwrap();
    let pkg = src.path().join("client-lambda");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(
        pkg.join("package.json"),
        r#"{"name": "@aws-sdk/client-lambda", "version": "3.0.0-warden-test", "main": "index.js"}"#,
    )
    .unwrap();
    std::fs::write(pkg.join("index.js"), "exports.where = __filename;\n").unwrap();
    let tarballs = src.path().join("tarballs");
    std::fs::create_dir_all(&tarballs).unwrap();
    let packed = std::process::Command::new("npm")
        .args(["pack", "--silent", "--pack-destination"])
        .arg(&tarballs)
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(
        packed.status.success(),
        "{}",
        String::from_utf8_lossy(&packed.stderr)
    );

    let zip = package(&[(
        "index.js",
        "exports.handler = async () => require('@aws-sdk/client-lambda').where;\n",
    )]);
    create(&s, "before", "index.handler", &zip);
    let (error, body) = invoke(&s, "before", "{}");
    assert_eq!(error.as_deref(), Some("Unhandled"), "{body}");

    let out = s.warden(&[
        "runtime",
        "sdk",
        "install",
        "node",
        "--data-dir",
        s.data_dir.to_str().unwrap(),
        "--from",
        tarballs.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("@aws-sdk/client-lambda 3.0.0-warden-test"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    create(&s, "after", "index.handler", &zip);
    assert_eq!(
        invoke(&s, "after", "{}"),
        (
            None,
            json!("/var/runtime/sdk/node/node_modules/@aws-sdk/client-lambda/index.js")
        )
    );
}

const DIFF_JS: &str = r#"
console.log('module loaded');
exports.context = async (event, context) => ({
  event,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  memoryLimitInMB: context.memoryLimitInMB,
  logGroupName: context.logGroupName,
  arn: context.invokedFunctionArn,
  requestIdLength: context.awsRequestId.length,
  remainingInRange: context.getRemainingTimeInMillis() > 0 && context.getRemainingTimeInMillis() <= 10000,
  waits: context.callbackWaitsForEmptyEventLoop,
  clientContext: context.clientContext,
  identity: context.identity === undefined ? 'undefined' : context.identity,
});
exports.callback = (event, context, callback) => { setTimeout(() => callback(null, { via: 'callback' }), 5); };
exports.callbackError = (event, context, callback) => callback(new Error('callback says no'));
exports.thrown = async () => { throw new TypeError('node says no'); };
exports.thrownString = async () => { throw 'a plain string'; };
exports.nothing = async () => undefined;
exports.bigint = async () => ({ n: 10n });
exports.logs = async () => {
  console.log('plain %s', 'line');
  console.info('info');
  console.warn('careful');
  console.error('two\nlines');
  console.debug('debug');
  return 'logged';
};
exports.rejected = async () => { Promise.reject(new Error('nobody waits')); await new Promise(r => setTimeout(r, 200)); return 'late'; };
exports.legacy = (event, context) => { context.succeed({ legacy: true }); };
exports.legacyFail = (event, context) => { context.fail(new Error('legacy says no')); };
exports.neverCalls = (event, context, callback) => {};
"#;

/// The wrapper that runs the reference client (its `bin/index.mjs <handler>`) instead of
/// Warden's bootstrap: Lambda starts it with the runtime's command line, whose first word
/// is the interpreter.
pub(crate) const NODE_RIC_WRAPPER: &str =
    "#!/bin/sh\ncd /var/task && exec \"$1\" /var/task/ric/bin/index.mjs \"$_HANDLER\"\n";

/// A package with the differential handlers and `aws-lambda-ric` (its `bin`, `dist` and
/// manifest: all it needs at run time) under `ric/`.
fn diff_package() -> PathBuf {
    let dir = crate::harness::scratch_dir();
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("index.js", DIFF_JS);
    write(
        "esm.mjs",
        "export const handler = async (event) => ({ esm: true, event });\n",
    );
    write("nested/deep/mod.js", "exports.go = async () => 'deep';\n");
    write("syntax.js", "exports.handler = async () => {;\n");
    add_ric(&dir);
    zip_dir(&dir)
}

/// Puts `aws-lambda-ric` under `dir/ric/` and the wrapper that runs it at `dir/ric.sh`.
pub(crate) fn add_ric(dir: &Path) {
    let ric = PathBuf::from(
        std::env::var("WARDEN_TEST_NODE_RIC")
            .expect("WARDEN_TEST_NODE_RIC is not set: run the tests with `cargo xtask ci`"),
    );
    std::fs::write(dir.join("ric.sh"), NODE_RIC_WRAPPER).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("ric.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("ric")).unwrap();
    for part in ["bin", "dist", "package.json"] {
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(ric.join(part))
            .arg(dir.join("ric").join(part))
            .status()
            .unwrap();
        assert!(status.success(), "copying aws-lambda-ric's {part}");
    }
}

/// The file of either runtime, as error messages name it (a require stack).
fn runtime_file(text: &str) -> String {
    text.replace("/var/task/ric/dist/index.mjs", "<runtime>")
        .replace("/var/runtime/node/index.mjs", "<runtime>")
}

/// Whether a stack frame (or a log line holding one) is either runtime's own.
fn runtime_frame(line: &str) -> bool {
    line.contains("/var/runtime/")
        || line.contains("/var/task/ric/")
        || line.contains("node:internal")
}

/// What one invocation showed, without either runtime's own stack frames, with the
/// runtime's file named alike in messages, and without the reference client's start-up
/// line (its `bin` prints one Lambda's runtime does not).
fn seen(s: &Server, name: &str, payload: &str) -> Seen {
    let mut seen = invoke_seen(s, name, payload);
    if let Some(m) = seen.body.get("errorMessage").and_then(Value::as_str) {
        seen.body["errorMessage"] = Value::String(runtime_file(m));
    }
    if let Some(trace) = seen.body.get_mut("trace").and_then(Value::as_array_mut) {
        trace.retain(|l| !runtime_frame(l.as_str().unwrap_or("")));
    }
    seen.logs
        .retain(|l| !l.starts_with("Executing '") && !runtime_frame(l));
    seen
}

#[test]
fn wardens_node_runtime_behaves_as_the_reference_client() {
    let ours = Server::start();
    let reference = Server::start();
    let zip = diff_package();
    let cases: &[(&str, &str, &str)] = &[
        ("context", "index.context", r#"{"k": "v"}"#),
        ("callback", "index.callback", "{}"),
        ("cberror", "index.callbackError", "{}"),
        ("thrown", "index.thrown", "{}"),
        ("string", "index.thrownString", "{}"),
        ("nothing", "index.nothing", "{}"),
        ("bigint", "index.bigint", "{}"),
        ("logs", "index.logs", "{}"),
        ("esm", "esm.handler", "[1]"),
        ("deep", "nested/deep/mod.go", "{}"),
        ("nomodule", "missing.handler", "{}"),
        ("noexport", "index.nope", "{}"),
        ("syntax", "syntax.handler", "{}"),
        ("rejected", "index.rejected", "{}"),
        ("legacy", "index.legacy", "{}"),
        ("legacyfail", "index.legacyFail", "{}"),
        ("nevercalls", "index.neverCalls", "{}"),
    ];
    for (name, handler, _) in cases {
        create(&ours, name, handler, &zip);
        let env = "Variables={AWS_LAMBDA_EXEC_WRAPPER=/var/task/ric.sh}";
        reference.aws(&[
            "lambda",
            "create-function",
            "--function-name",
            name,
            "--runtime",
            node_runtime(),
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
    let mut differences = Vec::new();
    for (name, _, payload) in cases {
        let got = seen(&ours, name, payload);
        let want = seen(&reference, name, payload);
        if got != want {
            differences.push(format!(
                "case `{name}`:\n  warden:    {got:?}\n  reference: {want:?}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn json_logging_config_makes_console_write_json_records_filtered_by_level() {
    let s = Server::start();
    let zip = package(&[(
        "index.js",
        "exports.handler = async () => { console.info('quiet'); console.warn('loud', 1); return 'ok'; };\n",
    )]);
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "json",
        "--runtime",
        node_runtime(),
        "--handler",
        "index.handler",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &format!("fileb://{}", zip.display()),
        "--logging-config",
        "LogFormat=JSON,ApplicationLogLevel=WARN",
    ]);
    assert_eq!(invoke(&s, "json", "{}"), (None, json!("ok")));
    let lines = s.wait_logs("json", Duration::from_secs(10), |l| {
        l.iter().any(|x| x.contains("platform.report"))
    });
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?}")))
        .collect();
    let app: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("level").is_some())
        .collect();
    assert_eq!(app.len(), 1, "INFO is below the level: {lines:?}");
    assert_eq!(app[0]["level"], "WARN");
    assert_eq!(app[0]["message"], "loud 1");
    assert_eq!(app[0]["requestId"], records[0]["record"]["requestId"]);
}
