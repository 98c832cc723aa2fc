//! Every control-plane operation of the foundation issue, through the real AWS CLI.

use crate::harness::{fixture_zip, unb64, Server};

#[test]
fn function_lifecycle_with_the_aws_cli() {
    let s = Server::start();
    let created = s.create_fixture(
        "life",
        &[
            "--description",
            "first",
            "--environment",
            "Variables={GREETING=hi}",
        ],
    );
    assert_eq!(created["FunctionName"], "life");
    assert_eq!(created["Version"], "$LATEST");
    assert_eq!(created["State"], "Active");
    assert_eq!(created["Environment"]["Variables"]["GREETING"], "hi");
    let arn = created["FunctionArn"].as_str().unwrap().to_owned();
    assert!(
        arn.starts_with("arn:aws:lambda:us-east-1:") && arn.ends_with(":function:life"),
        "{arn}"
    );

    let got = s.aws(&["lambda", "get-function", "--function-name", "life"]);
    assert_eq!(got["Configuration"]["CodeSha256"], created["CodeSha256"]);
    let conf = s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        &arn,
    ]);
    assert_eq!(conf["Description"], "first");

    // A second function so that listing has something to page over.
    s.create_fixture("life2", &[]);
    let page = s.aws(&["lambda", "list-functions", "--max-items", "1"]);
    assert_eq!(page["Functions"].as_array().unwrap().len(), 1);
    assert_eq!(page["Functions"][0]["FunctionName"], "life");
    let token = page["NextToken"].as_str().expect("a next token").to_owned();
    let rest = s.aws(&[
        "lambda",
        "list-functions",
        "--max-items",
        "1",
        "--starting-token",
        &token,
    ]);
    assert_eq!(rest["Functions"][0]["FunctionName"], "life2");
    let all = s.aws(&["lambda", "list-functions"]);
    assert_eq!(all["Functions"].as_array().unwrap().len(), 2);

    // Configuration update, guarded by the revision id.
    let rev = conf["RevisionId"].as_str().unwrap().to_owned();
    let updated = s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "life",
        "--timeout",
        "7",
        "--memory-size",
        "256",
        "--revision-id",
        &rev,
    ]);
    assert_eq!(updated["Timeout"], 7);
    assert_eq!(updated["MemorySize"], 256);
    assert_ne!(updated["RevisionId"], rev);
    let stale = s.aws_err(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "life",
        "--timeout",
        "8",
        "--revision-id",
        &rev,
    ]);
    assert!(stale.contains("PreconditionFailedException"), "{stale}");

    // Code update with the same zip keeps the sha; publishing makes version 1.
    let zip = format!("fileb://{}", fixture_zip().display());
    let code = s.aws(&[
        "lambda",
        "update-function-code",
        "--function-name",
        "life",
        "--zip-file",
        &zip,
    ]);
    assert_eq!(code["CodeSha256"], created["CodeSha256"]);
    let v1 = s.aws(&[
        "lambda",
        "publish-version",
        "--function-name",
        "life",
        "--description",
        "v1",
    ]);
    assert_eq!(v1["Version"], "1");
    assert!(v1["FunctionArn"]
        .as_str()
        .unwrap()
        .ends_with(":function:life:1"));
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "life",
        "--timeout",
        "9",
    ]);
    let v2 = s.aws(&["lambda", "publish-version", "--function-name", "life"]);
    assert_eq!(v2["Version"], "2");
    let versions = s.aws(&[
        "lambda",
        "list-versions-by-function",
        "--function-name",
        "life",
    ]);
    let names: Vec<&str> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Version"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["$LATEST", "1", "2"]);

    // Aliases.
    let alias = s.aws(&[
        "lambda",
        "create-alias",
        "--function-name",
        "life",
        "--name",
        "live",
        "--function-version",
        "1",
    ]);
    assert!(alias["AliasArn"]
        .as_str()
        .unwrap()
        .ends_with(":function:life:live"));
    let got_alias = s.aws(&[
        "lambda",
        "get-alias",
        "--function-name",
        "life",
        "--name",
        "live",
    ]);
    assert_eq!(got_alias["FunctionVersion"], "1");
    let moved = s.aws(&[
        "lambda",
        "update-alias",
        "--function-name",
        "life",
        "--name",
        "live",
        "--function-version",
        "2",
    ]);
    assert_eq!(moved["FunctionVersion"], "2");
    s.aws(&[
        "lambda",
        "create-alias",
        "--function-name",
        "life",
        "--name",
        "beta",
        "--function-version",
        "$LATEST",
    ]);
    let aliases = s.aws(&["lambda", "list-aliases", "--function-name", "life"]);
    assert_eq!(aliases["Aliases"].as_array().unwrap().len(), 2);
    let busy = s.aws_err(&[
        "lambda",
        "delete-function",
        "--function-name",
        "life",
        "--qualifier",
        "2",
    ]);
    assert!(busy.contains("ResourceConflictException"), "{busy}");
    s.aws(&[
        "lambda",
        "delete-alias",
        "--function-name",
        "life",
        "--name",
        "beta",
    ]);
    let missing = s.aws_err(&[
        "lambda",
        "get-alias",
        "--function-name",
        "life",
        "--name",
        "beta",
    ]);
    assert!(missing.contains("ResourceNotFoundException"), "{missing}");

    // Invoke through an alias: the executed version is the alias target.
    let out = tempfile::NamedTempFile::new().unwrap();
    let out_path = out.path().to_str().unwrap();
    let meta = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "life",
        "--qualifier",
        "live",
        "--payload",
        r#"{"action":"echo","n":1}"#,
        "--log-type",
        "Tail",
        out_path,
    ]);
    assert_eq!(meta["StatusCode"], 200);
    assert_eq!(meta["ExecutedVersion"], "2");
    let log = String::from_utf8(unb64(meta["LogResult"].as_str().unwrap())).unwrap();
    assert!(
        log.contains("START RequestId: ") && log.contains("Version: 2"),
        "{log}"
    );
    assert!(
        log.contains("REPORT RequestId: ") && log.contains("Init Duration: "),
        "{log}"
    );
    let payload: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_path).unwrap()).unwrap();
    assert_eq!(payload["n"], 1);

    // Concurrency and account settings.
    let put = s.aws(&[
        "lambda",
        "put-function-concurrency",
        "--function-name",
        "life",
        "--reserved-concurrent-executions",
        "5",
    ]);
    assert_eq!(put["ReservedConcurrentExecutions"], 5);
    let got = s.aws(&[
        "lambda",
        "get-function-concurrency",
        "--function-name",
        "life",
    ]);
    assert_eq!(got["ReservedConcurrentExecutions"], 5);
    let account = s.aws(&["lambda", "get-account-settings"]);
    assert_eq!(account["AccountLimit"]["ConcurrentExecutions"], 1000);
    assert_eq!(
        account["AccountLimit"]["UnreservedConcurrentExecutions"],
        995
    );
    assert_eq!(account["AccountUsage"]["FunctionCount"], 2);
    s.aws(&[
        "lambda",
        "delete-function-concurrency",
        "--function-name",
        "life",
    ]);
    let got = s.aws(&[
        "lambda",
        "get-function-concurrency",
        "--function-name",
        "life",
    ]);
    assert!(got.get("ReservedConcurrentExecutions").is_none(), "{got}");

    // Deletion of a version, then of the whole function.
    s.aws(&[
        "lambda",
        "delete-alias",
        "--function-name",
        "life",
        "--name",
        "live",
    ]);
    s.aws(&[
        "lambda",
        "delete-function",
        "--function-name",
        "life",
        "--qualifier",
        "1",
    ]);
    let gone = s.aws_err(&[
        "lambda",
        "get-function",
        "--function-name",
        "life",
        "--qualifier",
        "1",
    ]);
    assert!(gone.contains("ResourceNotFoundException"), "{gone}");
    s.aws(&["lambda", "delete-function", "--function-name", "life"]);
    let gone = s.aws_err(&["lambda", "get-function", "--function-name", "life"]);
    assert!(
        gone.contains("ResourceNotFoundException") && gone.contains("Function not found"),
        "{gone}"
    );
}

#[test]
fn invoke_modes_with_the_aws_cli() {
    let s = Server::start();
    s.create_fixture("modes", &[]);
    let out = tempfile::NamedTempFile::new().unwrap();
    let out_path = out.path().to_str().unwrap();

    let event = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "modes",
        "--invocation-type",
        "Event",
        "--payload",
        "{}",
        out_path,
    ]);
    assert_eq!(event["StatusCode"], 202);
    let dry = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "modes",
        "--invocation-type",
        "DryRun",
        "--payload",
        "{}",
        out_path,
    ]);
    assert_eq!(dry["StatusCode"], 204);

    let failed = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "modes",
        "--payload",
        r#"{"action":"error"}"#,
        out_path,
    ]);
    assert_eq!(failed["StatusCode"], 200);
    assert_eq!(failed["FunctionError"], "Unhandled");
    let body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_path).unwrap()).unwrap();
    assert_eq!(body["errorMessage"], "the fixture was asked to fail");

    let missing = s.aws_err(&[
        "lambda",
        "invoke",
        "--function-name",
        "nope",
        "--payload",
        "{}",
        out_path,
    ]);
    assert!(missing.contains("ResourceNotFoundException"), "{missing}");
}
