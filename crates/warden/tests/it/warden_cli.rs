//! The `warden` command-line client against a real server.

use crate::harness::{fixture_bin, Server};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn deploy_invoke_list_logs_delete() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture_bin("fixture"), dir.path().join("bootstrap")).unwrap();
    let dir_arg = dir.path().to_str().unwrap();

    let deployed = ok(&s.warden(&[
        "function",
        "deploy",
        dir_arg,
        "--name",
        "cli",
        "--timeout",
        "5",
        "--env",
        "A=1",
    ]));
    assert!(deployed.contains("cli"), "{deployed}");
    // Deploying again updates instead of failing; an environment value that looks like a
    // secret is warned of on stderr, by name only.
    let redeployed = s.warden(&[
        "function",
        "deploy",
        dir_arg,
        "--name",
        "cli",
        "--memory",
        "256",
        "--env",
        "A=1",
        "--env",
        "API_TOKEN=ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    ]);
    ok(&redeployed);
    let stderr = String::from_utf8_lossy(&redeployed.stderr);
    assert!(
        stderr.contains("warning:") && stderr.contains("API_TOKEN"),
        "{stderr}"
    );
    assert!(!stderr.contains("ghp_aBcDeF"), "{stderr}");
    let got: serde_json::Value =
        serde_json::from_str(&ok(&s.warden(&["function", "get", "cli"]))).unwrap();
    assert_eq!(got["Configuration"]["MemorySize"], 256);
    assert_eq!(
        got["Configuration"]["Timeout"], 5,
        "a redeploy keeps settings it was not given"
    );

    let out = ok(&s.warden(&["invoke", "cli", r#"{"action":"print","text":"from cli"}"#]));
    assert!(out.contains(r#""printed":"from cli""#), "{out}");
    let payload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(payload.path(), r#"{"x":42}"#).unwrap();
    let out = ok(&s.warden(&["invoke", "cli", &format!("@{}", payload.path().display())]));
    assert!(out.contains(r#""x":42"#), "{out}");

    let failed = s.warden(&["invoke", "cli", r#"{"action":"error"}"#]);
    assert_eq!(failed.status.code(), Some(1), "a function error exits 1");

    let list = ok(&s.warden(&["function", "list"]));
    assert!(
        list.contains("cli") && list.contains("provided.al2023"),
        "{list}"
    );

    // Log lines are written in batches, off the invoke path: wait until they are stored.
    s.wait_logs("cli", std::time::Duration::from_secs(10), |l| {
        l.iter().filter(|x| x.starts_with("REPORT")).count() >= 3
    });
    let logs = ok(&s.warden(&["logs", "cli"]));
    assert!(
        logs.contains("START RequestId: ")
            && logs.contains("from cli")
            && logs.contains("REPORT RequestId: "),
        "{logs}"
    );

    ok(&s.warden(&["function", "delete", "cli"]));
    let missing = s.warden(&["invoke", "cli", "{}"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains("ResourceNotFoundException"),
        "{err}"
    );
}

#[test]
fn an_unreachable_server_is_one_clear_line() {
    let out = std::process::Command::new(crate::harness::warden_bin())
        .args(["--endpoint-url", "http://127.0.0.1:9", "function", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach Warden"), "{err}");
}

#[test]
fn iam_administration_from_the_warden_cli() {
    let s = Server::start();
    ok(&s.warden(&["iam", "user", "create", "carol"]));
    let key = ok(&s.warden(&["iam", "key", "create", "--user", "carol"]));
    let id = key
        .lines()
        .find_map(|l| l.strip_prefix("aws_access_key_id = "))
        .expect("the new key id")
        .to_owned();
    assert!(id.starts_with("AKIA"), "{key}");
    assert!(ok(&s.warden(&["iam", "user", "list"])).contains("carol"));
    ok(&s.warden(&["iam", "role", "create", "jobs", "--lambda"]));
    assert!(ok(&s.warden(&["iam", "role", "list"])).contains("jobs"));
    let doc = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(doc.path(), r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:ListFunctions","Resource":"*"}]}"#).unwrap();
    ok(&s.warden(&[
        "iam",
        "policy",
        "put",
        "--user",
        "carol",
        "--name",
        "list",
        "--document",
        doc.path().to_str().unwrap(),
    ]));

    let rotated = ok(&s.warden(&["iam", "key", "rotate", "--user", "carol", &id]));
    assert!(
        rotated.contains(&format!("key {id} is now Inactive")),
        "{rotated}"
    );
    let keys = ok(&s.warden(&["iam", "key", "list", "--user", "carol"]));
    assert!(keys.contains(&format!("{id}  Inactive")), "{keys}");

    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#,
    )
    .unwrap();
    let refused = s.warden(&[
        "iam",
        "policy",
        "put",
        "--role",
        "jobs",
        "--name",
        "bad",
        "--document",
        bad.path().to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("MalformedPolicyDocument") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn the_server_log_has_no_colour_codes_when_it_is_not_a_terminal() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let data = crate::harness::private_tempdir();
    let mut server = Command::new(crate::harness::warden_bin())
        .args(["serve", "--insecure-no-sandbox", "--listen", "127.0.0.1:0"])
        .args([
            "--url-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(["--account-id", crate::harness::ACCOUNT, "--data-dir"])
        .arg(data.path())
        .env("WARDEN_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    // The first lines: the warning about running without a sandbox, then the start.
    let lines: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.contains("listening"))
        .take(200)
        .collect();
    server.kill().unwrap();
    server.wait().unwrap();
    let text = lines.join("\n");
    assert!(text.contains("WARN"), "a warning was logged: {text}");
    assert!(!text.contains('\u{1b}'), "no escape sequence in: {text:?}");
}

#[test]
fn deploy_infers_runtime_and_handler_or_refuses_saying_why() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        "import sys\n\ndef handler(event, context):\n    return {'echo': event, 'minor': sys.version_info[1]}\n",
    )
    .unwrap();
    let out = s.warden(&[
        "function",
        "deploy",
        dir.path().to_str().unwrap(),
        "--name",
        "guessed",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("inferred runtime python3.")
            && stderr.contains("handler app.handler from `app.py`"),
        "{stderr}"
    );
    let config = s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "guessed",
    ]);
    assert_eq!(config["Handler"], "app.handler");
    let runtime = config["Runtime"].as_str().unwrap().to_owned();
    let out = s.warden(&["invoke", "guessed", r#"{"k": 1}"#]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["echo"], serde_json::json!({"k": 1}));
    assert_eq!(
        format!("python3.{}", answer["minor"]),
        runtime,
        "the inferred runtime runs it"
    );

    // A package whose handler cannot be told is refused, and nothing is created.
    let vague = tempfile::tempdir().unwrap();
    std::fs::write(vague.path().join("app.py"), "def main():\n    pass\n").unwrap();
    let out = s.warden(&[
        "function",
        "deploy",
        vague.path().to_str().unwrap(),
        "--name",
        "vague",
    ]);
    assert!(!out.status.success(), "a handler was guessed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot tell which runtime the package is for: `app.py` defines neither of `lambda_handler` and `handler`"),
        "{stderr}"
    );
    let missing = s.aws_err(&["lambda", "get-function", "--function-name", "vague"]);
    assert!(missing.contains("ResourceNotFoundException"), "{missing}");
}

#[test]
fn logs_of_an_unknown_function_fail_and_known_ones_show_their_time() {
    let s = Server::start();
    let out = s.warden(&["logs", "nosuch"]);
    assert!(
        !out.status.success(),
        "logs of a function that never existed"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nosuch"), "{stderr}");

    s.create_fixture("timed", &[]);
    s.aws(&["lambda", "invoke", "--function-name", "timed", "/dev/null"]);
    s.wait_logs("timed", std::time::Duration::from_secs(10), |l| {
        l.iter().any(|m| m.starts_with("REPORT"))
    });
    let shown = ok(&s.warden(&["logs", "timed"]));
    let start = shown
        .lines()
        .find(|l| l.contains("START RequestId: "))
        .unwrap_or_else(|| panic!("{shown}"));
    // `2026-12-03T18:40:01.123Z START RequestId: ...`
    let (time, rest) = start.split_once(' ').unwrap();
    assert!(rest.starts_with("START RequestId: "), "{start}");
    assert_eq!(time.len(), 24, "{start}");
    assert!(
        time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{start}"
    );
}

#[test]
fn invoke_ends_with_a_newline_and_names_a_missing_qualifier() {
    let s = Server::start();
    s.create_fixture("q", &[]);
    // The payload printed into a pipe ends with a newline (the fixture answers `{}`, a
    // JSON object without one).
    let out = s.warden(&["invoke", "q", "{}"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with('{') && printed.ends_with("}\n"),
        "{printed:?}"
    );

    for (args, missing) in [
        (vec!["invoke", "q:nope"], "nope"),
        (vec!["invoke", "q", "--qualifier", "7"], "7"),
    ] {
        let out = s.warden(&args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("function `q` has no version or alias `{missing}`")),
            "{args:?}: {stderr}"
        );
    }
    // A function that does not exist at all is still said to be the missing thing.
    let out = s.warden(&["invoke", "absent:live"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not found") && !stderr.contains("has no version"),
        "{stderr}"
    );
}

#[test]
fn versions_and_aliases_from_the_warden_cli() {
    let s = Server::start();
    s.create_fixture("va", &[]);
    let published: serde_json::Value = serde_json::from_str(&ok(&s.warden(&[
        "function",
        "publish",
        "va",
        "--description",
        "first",
    ])))
    .unwrap();
    assert_eq!(published["Version"], "1");
    assert_eq!(published["Description"], "first");

    // Creating an alias needs a version.
    let out = s.warden(&["alias", "create", "va", "live"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--function-version is required"));

    let created: serde_json::Value = serde_json::from_str(&ok(&s.warden(&[
        "alias",
        "create",
        "va",
        "live",
        "--function-version",
        "1",
    ])))
    .unwrap();
    assert_eq!(created["Name"], "live");
    assert_eq!(created["FunctionVersion"], "1");
    // The AWS CLI sees the same alias.
    let got = s.aws(&[
        "lambda",
        "get-alias",
        "--function-name",
        "va",
        "--name",
        "live",
    ]);
    assert_eq!(got["FunctionVersion"], "1");

    ok(&s.warden(&[
        "alias",
        "update",
        "va",
        "live",
        "--function-version",
        "$LATEST",
    ]));
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&s.warden(&["alias", "list", "va"]))).unwrap();
    assert_eq!(listed["Aliases"][0]["Name"], "live");
    assert_eq!(listed["Aliases"][0]["FunctionVersion"], "$LATEST");

    ok(&s.warden(&["alias", "delete", "va", "live"]));
    let missing = s.aws_err(&[
        "lambda",
        "get-alias",
        "--function-name",
        "va",
        "--name",
        "live",
    ]);
    assert!(missing.contains("ResourceNotFoundException"), "{missing}");
}

/// The server's async workers: as many as `--worker-threads` says, else half the CPUs it
/// may use (at least one), as its metrics report; zero is refused before anything starts.
#[test]
fn the_server_runs_as_many_async_workers_as_configured() {
    fn workers(s: &crate::harness::Server) -> usize {
        let (status, text) = crate::metrics::get(&s.metrics_endpoint, "GET");
        assert_eq!(status, 200, "{text}");
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("warden_async_workers "))
            .unwrap_or_else(|| panic!("no warden_async_workers in {text}"));
        line.trim().parse().unwrap()
    }
    let three = crate::harness::Server::start_with(&["--worker-threads", "3"]);
    assert_eq!(workers(&three), 3);
    drop(three);
    let default = crate::harness::Server::start_with(&[]);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(workers(&default), (cpus / 2).max(1));
    drop(default);

    let out = std::process::Command::new(crate::harness::warden_bin())
        .args(["serve", "--worker-threads", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--worker-threads"), "{err}");
}
