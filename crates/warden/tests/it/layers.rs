//! Layers with the AWS CLI: published, listed, merged read-only at `/opt` in order, kept by
//! the functions that use them after they are deleted, bounded, and authorized with their
//! own IAM actions.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::harness::{
    aws_as, python_runtime, user_with_policy, zip_dir, Server, ACCOUNT, EXEC_ROLE,
};

fn package(files: &[(&str, &str)]) -> PathBuf {
    let dir = crate::harness::scratch_dir();
    for (rel, text) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    zip_dir(&dir)
}

fn publish(s: &Server, name: &str, zip: &Path) -> Value {
    s.aws(&[
        "lambda",
        "publish-layer-version",
        "--layer-name",
        name,
        "--description",
        "shared code",
        "--compatible-runtimes",
        python_runtime(),
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ])
}

const APP: &str = r#"
import errno, os
def handler(event, context):
    import helper, only_first
    try:
        open("/opt/new", "w")
        write = "ok"
    except OSError as e:
        write = errno.errorcode[e.errno]
    return {"helper": helper.WHO, "first": only_first.WHO, "opt": sorted(os.listdir("/opt")), "write": write}
"#;

fn create(s: &Server, name: &str, layers: &[&str]) -> Value {
    let zip = package(&[("app.py", APP)]);
    let mut args = vec![
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        EXEC_ROLE,
        "--zip-file",
    ];
    let zip_arg = format!("fileb://{}", zip.display());
    args.push(&zip_arg);
    if !layers.is_empty() {
        args.push("--layers");
        args.extend_from_slice(layers);
    }
    s.aws(&args)
}

fn invoke(s: &Server, name: &str) -> Value {
    let (status, headers, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[],
        b"{}",
    );
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        !headers.iter().any(|(k, _)| k == "x-amz-function-error"),
        "{body}"
    );
    body
}

#[test]
fn layers_are_merged_at_opt_in_order_and_outlive_their_deletion() {
    let s = Server::start();
    let first = package(&[
        ("python/helper.py", "WHO = 'first'\n"),
        ("python/only_first.py", "WHO = 'first only'\n"),
    ]);
    let second = package(&[
        ("python/helper.py", "WHO = 'second'\n"),
        ("bin/tool", "#!/bin/sh\n"),
    ]);
    let one = publish(&s, "first", &first);
    assert_eq!(one["Version"], 1);
    let one_arn = one["LayerVersionArn"].as_str().unwrap().to_owned();
    assert_eq!(
        one_arn,
        format!("arn:aws:lambda:us-east-1:{ACCOUNT}:layer:first:1")
    );
    assert_eq!(
        one["LayerArn"],
        format!("arn:aws:lambda:us-east-1:{ACCOUNT}:layer:first")
    );
    assert_eq!(one["CompatibleRuntimes"], json!([python_runtime()]));
    assert!(
        one["Content"]["CodeSha256"].as_str().unwrap().len() == 44,
        "{one}"
    );
    let two = publish(&s, "second", &second);
    let two_arn = two["LayerVersionArn"].as_str().unwrap().to_owned();

    let created = create(&s, "uses", &[&one_arn, &two_arn]);
    assert_eq!(
        created["Layers"],
        json!([
            {"Arn": one_arn, "CodeSize": one["Content"]["CodeSize"]},
            {"Arn": two_arn, "CodeSize": two["Content"]["CodeSize"]},
        ])
    );
    let got = invoke(&s, "uses");
    assert_eq!(got["helper"], "second", "the later layer wins: {got}");
    assert_eq!(got["first"], "first only");
    assert_eq!(got["opt"], json!(["bin", "python"]));
    assert_eq!(got["write"], "EROFS", "/opt is read-only");

    // Reading layers back, in every way the API offers.
    let listed = s.aws(&["lambda", "list-layers"]);
    let names: Vec<&str> = listed["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["LayerName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
    let again = publish(&s, "first", &first);
    assert_eq!(
        again["Version"], 2,
        "a new version even of the same content"
    );
    let versions = s.aws(&["lambda", "list-layer-versions", "--layer-name", "first"]);
    let numbers: Vec<u64> = versions["LayerVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    let by_arn = s.aws(&["lambda", "get-layer-version-by-arn", "--arn", &one_arn]);
    assert_eq!(by_arn["Version"], 1);
    assert_eq!(by_arn["Description"], "shared code");

    // Deleting a version: gone from the API, still there for the function that uses it,
    // and its number is never reused.
    s.aws(&[
        "lambda",
        "delete-layer-version",
        "--layer-name",
        "first",
        "--version-number",
        "1",
    ]);
    let err = s.aws_err(&[
        "lambda",
        "get-layer-version",
        "--layer-name",
        "first",
        "--version-number",
        "1",
    ]);
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "uses",
        "--timeout",
        "9",
    ]);
    assert_eq!(invoke(&s, "uses")["helper"], "second");
    let err = {
        let zip = package(&[("app.py", APP)]);
        s.aws_err(&[
            "lambda",
            "create-function",
            "--function-name",
            "late",
            "--runtime",
            python_runtime(),
            "--handler",
            "app.handler",
            "--role",
            EXEC_ROLE,
            "--zip-file",
            &format!("fileb://{}", zip.display()),
            "--layers",
            &one_arn,
        ])
    };
    assert!(
        err.contains("InvalidParameterValueException") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(publish(&s, "first", &first)["Version"], 3);

    // Removing the layers: /opt is empty again.
    let updated = s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "uses",
        "--layers",
    ]);
    assert!(updated.get("Layers").is_none(), "{updated}");
}

#[test]
fn layer_limits_are_lambdas() {
    let s = Server::start();
    let layer = package(&[("python/x.py", "")]);
    let arns: Vec<String> = (0..6)
        .map(|i| {
            publish(&s, &format!("l{i}"), &layer)["LayerVersionArn"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let refs: Vec<&str> = arns.iter().map(String::as_str).collect();
    let zip = package(&[("app.py", APP)]);
    let zip = format!("fileb://{}", zip.display());
    let base = [
        "lambda",
        "create-function",
        "--function-name",
        "f",
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &zip,
        "--layers",
    ];
    let mut six = base.to_vec();
    six.extend_from_slice(&refs);
    let err = s.aws_err(&six);
    assert!(
        err.contains("Cannot reference more than 5 layers."),
        "{err}"
    );

    let second_of_l0 = publish(&s, "l0", &layer)["LayerVersionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut twice = base.to_vec();
    twice.extend_from_slice(&[refs[0], second_of_l0.as_str()]);
    let err = s.aws_err(&twice);
    assert!(
        err.contains("Two different versions of the same layer"),
        "{err}"
    );

    let mut foreign = base.to_vec();
    foreign.push("arn:aws:lambda:us-east-1:999999999999:layer:theirs:1");
    let err = s.aws_err(&foreign);
    assert!(err.contains("another account"), "{err}");
    assert!(s.aws(&["lambda", "list-functions"])["Functions"] == json!([]));

    // A layer zip gets the same extraction limits as function code.
    let bomb_dir = tempfile::tempdir().unwrap();
    let bomb = bomb_dir.path().join("bomb.zip");
    let made = std::process::Command::new(crate::harness::python())
        .args([
            "-c",
            "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\nwith z.open('python/big', 'w', force_zip64=True) as f:\n    chunk = bytes(1 << 20)\n    for _ in range(300):\n        f.write(chunk)\nz.close()",
        ])
        .arg(&bomb)
        .status()
        .unwrap();
    assert!(made.success());
    let err = s.aws_err(&[
        "lambda",
        "publish-layer-version",
        "--layer-name",
        "bomb",
        "--zip-file",
        &format!("fileb://{}", bomb.display()),
    ]);
    assert!(err.contains("InvalidZipFileException"), "{err}");
    assert_eq!(
        s.aws(&["lambda", "list-layers"])["Layers"]
            .as_array()
            .unwrap()
            .len(),
        6,
        "the bomb was not published"
    );
}

#[test]
fn using_a_layer_needs_permission_to_read_it() {
    let s = Server::start();
    let arn = publish(
        &s,
        "private",
        &package(&[("python/helper.py", "WHO = 'p'\n")]),
    )["LayerVersionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let builder = user_with_policy(
        &s,
        "builder",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["lambda:CreateFunction", "lambda:GetFunction"], "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": EXEC_ROLE}]}),
    );
    let zip = package(&[("app.py", "def handler(e, c):\n    return 1\n")]);
    let zip = format!("fileb://{}", zip.display());
    let create = |name: &str| {
        aws_as(
            &s,
            &builder,
            &[
                "lambda",
                "create-function",
                "--function-name",
                name,
                "--runtime",
                python_runtime(),
                "--handler",
                "app.handler",
                "--role",
                EXEC_ROLE,
                "--zip-file",
                &zip,
                "--layers",
                &arn,
            ],
        )
    };
    let denied = create("a");
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("AccessDeniedException") && stderr.contains("lambda:GetLayerVersion"),
        "{stderr}"
    );
    let err = String::from_utf8_lossy(
        &aws_as(
            &s,
            &builder,
            &[
                "lambda",
                "publish-layer-version",
                "--layer-name",
                "mine",
                "--zip-file",
                &zip,
            ],
        )
        .stderr,
    )
    .into_owned();
    assert!(
        err.contains("AccessDeniedException") && err.contains("lambda:PublishLayerVersion"),
        "{err}"
    );

    // Naming an account in the layer's policy delegates to that account's own policies,
    // as in IAM: it grants this account's users nothing by itself.
    s.aws(&[
        "lambda",
        "add-layer-version-permission",
        "--layer-name",
        "private",
        "--version-number",
        "1",
        "--statement-id",
        "account",
        "--action",
        "lambda:GetLayerVersion",
        "--principal",
        ACCOUNT,
    ]);
    assert!(!create("a2").status.success());
    // Making the version public (`*`) grants every caller the read.
    let added = s.aws(&[
        "lambda",
        "add-layer-version-permission",
        "--layer-name",
        "private",
        "--version-number",
        "1",
        "--statement-id",
        "public",
        "--action",
        "lambda:GetLayerVersion",
        "--principal",
        "*",
    ]);
    let statement: Value = serde_json::from_str(added["Statement"].as_str().unwrap()).unwrap();
    assert_eq!(statement["Resource"], arn);
    let policy = s.aws(&[
        "lambda",
        "get-layer-version-policy",
        "--layer-name",
        "private",
        "--version-number",
        "1",
    ]);
    assert_eq!(policy["RevisionId"], added["RevisionId"]);
    let allowed = create("b");
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    // Only reading can be granted on a layer.
    let err = s.aws_err(&[
        "lambda",
        "add-layer-version-permission",
        "--layer-name",
        "private",
        "--version-number",
        "1",
        "--statement-id",
        "x",
        "--action",
        "lambda:DeleteLayerVersion",
        "--principal",
        "*",
    ]);
    assert!(err.contains("only lambda:GetLayerVersion"), "{err}");
    s.aws(&[
        "lambda",
        "remove-layer-version-permission",
        "--layer-name",
        "private",
        "--version-number",
        "1",
        "--statement-id",
        "public",
    ]);
    let denied = create("c");
    assert!(!denied.status.success());
}

#[test]
fn node_functions_find_layer_modules_and_warden_publishes_directories() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("nodejs/node_modules/greeting");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(
        lib.join("index.js"),
        "module.exports = (n) => `hello ${n}`;\n",
    )
    .unwrap();
    let out = s.warden(&[
        "layer",
        "publish",
        dir.path().to_str().unwrap(),
        "--name",
        "greeting",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arn = published["LayerVersionArn"].as_str().unwrap();

    let node = std::process::Command::new("node")
        .args(["-p", "process.versions.node.split('.')[0]"])
        .output()
        .unwrap();
    let runtime = format!("nodejs{}.x", String::from_utf8_lossy(&node.stdout).trim());
    let zip = package(&[(
        "index.js",
        "const greet = require('greeting');\nexports.handler = async (e) => greet(e.name);\n",
    )]);
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "hi",
        "--runtime",
        &runtime,
        "--handler",
        "index.handler",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &format!("fileb://{}", zip.display()),
        "--layers",
        arn,
    ]);
    let (status, _, body) = s.http(
        "POST",
        "/2015-03-31/functions/hi/invocations",
        &[],
        br#"{"name": "layer"}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!("hello layer")
    );

    let listed = s.warden(&["layer", "list"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["Layers"][0]["LayerName"], "greeting");
}
