//! Secrets Manager through the real AWS CLI and boto3, functions reading secrets with
//! their role's credentials, and rotation by a rotation function run on Warden.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{aws_as, error_code, python_runtime, python_zip, user_with_policy, Server};

#[test]
fn the_aws_cli_keeps_versions_stages_and_deletions_as_secrets_manager_does() {
    let s = Server::start();
    let created = s.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "app/db",
        "--secret-string",
        r#"{"password":"first"}"#,
        "--tags",
        "Key=team,Value=a",
    ]);
    let arn = created["ARN"].as_str().unwrap().to_owned();
    assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-"));
    let first = created["VersionId"].as_str().unwrap().to_owned();
    let e = s.aws_err(&["secretsmanager", "create-secret", "--name", "app/db"]);
    assert_eq!(error_code(&e), "ResourceExistsException", "{e}");

    let got = s.aws(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        "app/db",
    ]);
    assert_eq!(got["SecretString"], r#"{"password":"first"}"#);
    assert_eq!(got["VersionStages"], json!(["AWSCURRENT"]));
    // By ARN too, and by the ARN without its random suffix.
    let partial = arn.rsplit_once('-').unwrap().0;
    for id in [arn.as_str(), partial] {
        let got = s.aws(&["secretsmanager", "get-secret-value", "--secret-id", id]);
        assert_eq!(got["VersionId"], first.as_str());
    }

    let put = s.aws(&[
        "secretsmanager",
        "put-secret-value",
        "--secret-id",
        "app/db",
        "--secret-string",
        "second",
    ]);
    let second = put["VersionId"].as_str().unwrap().to_owned();
    let described = s.aws(&["secretsmanager", "describe-secret", "--secret-id", "app/db"]);
    assert_eq!(
        described["VersionIdsToStages"][&second],
        json!(["AWSCURRENT"])
    );
    assert_eq!(
        described["VersionIdsToStages"][&first],
        json!(["AWSPREVIOUS"])
    );
    assert_eq!(described["Tags"], json!([{"Key": "team", "Value": "a"}]));
    let previous = s.aws(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        "app/db",
        "--version-stage",
        "AWSPREVIOUS",
    ]);
    assert_eq!(previous["VersionId"], first.as_str());
    // Moving AWSCURRENT back needs the version that holds it named.
    let e = s.aws_err(&[
        "secretsmanager",
        "update-secret-version-stage",
        "--secret-id",
        "app/db",
        "--version-stage",
        "AWSCURRENT",
        "--move-to-version-id",
        &first,
    ]);
    assert_eq!(error_code(&e), "InvalidParameterException", "{e}");
    s.aws(&[
        "secretsmanager",
        "update-secret-version-stage",
        "--secret-id",
        "app/db",
        "--version-stage",
        "AWSCURRENT",
        "--move-to-version-id",
        &first,
        "--remove-from-version-id",
        &second,
    ]);
    let got = s.aws(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        "app/db",
    ]);
    assert_eq!(got["VersionId"], first.as_str());

    // Listing with filters.
    s.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "other",
        "--secret-string",
        "x",
    ]);
    let listed = s.aws(&[
        "secretsmanager",
        "list-secrets",
        "--filters",
        "Key=name,Values=app/",
    ]);
    let names: Vec<&str> = listed["SecretList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app/db"]);

    // A public resource policy is refused; a named one is kept.
    let public = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    let e = s.aws_err(&[
        "secretsmanager",
        "put-resource-policy",
        "--secret-id",
        "app/db",
        "--resource-policy",
        &public.to_string(),
    ]);
    assert_eq!(error_code(&e), "PublicPolicyException", "{e}");

    // Deletion with a recovery window: reads refused, restore brings it back; forced
    // deletion is immediate.
    let e = s.aws_err(&[
        "secretsmanager",
        "delete-secret",
        "--secret-id",
        "app/db",
        "--recovery-window-in-days",
        "3",
    ]);
    assert_eq!(error_code(&e), "InvalidParameterException", "{e}");
    s.aws(&["secretsmanager", "delete-secret", "--secret-id", "app/db"]);
    let e = s.aws_err(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        "app/db",
    ]);
    assert_eq!(error_code(&e), "InvalidRequestException", "{e}");
    let listed = s.aws(&["secretsmanager", "list-secrets"]);
    assert_eq!(listed["SecretList"].as_array().unwrap().len(), 1);
    s.aws(&["secretsmanager", "restore-secret", "--secret-id", "app/db"]);
    s.aws(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        "app/db",
    ]);
    s.aws(&[
        "secretsmanager",
        "delete-secret",
        "--secret-id",
        "other",
        "--force-delete-without-recovery",
    ]);
    let e = s.aws_err(&["secretsmanager", "describe-secret", "--secret-id", "other"]);
    assert_eq!(error_code(&e), "ResourceNotFoundException", "{e}");
}

#[test]
fn boto3_reads_and_writes_and_policies_decide_who_may() {
    let s = Server::start();
    let reader = user_with_policy(
        &s,
        "reader",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:shared/*"}]}),
    );
    let out = s.python(
        r#"
import os, boto3, botocore
from botocore.config import Config
sm = boto3.client("secretsmanager", endpoint_url=os.environ["ENDPOINT"], config=Config(retries={"total_max_attempts": 1}))
def expect(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == code, (code, e.response["Error"])
        return
    raise AssertionError(code + " not raised")
sm.create_secret(Name="shared/api", SecretBinary=b"\x00\x01binary")
assert sm.get_secret_value(SecretId="shared/api")["SecretBinary"] == b"\x00\x01binary"
sm.create_secret(Name="private/api", SecretString="p")
tok = "a" * 32
v = sm.put_secret_value(SecretId="shared/api", ClientRequestToken=tok, SecretString="s2")
assert sm.put_secret_value(SecretId="shared/api", ClientRequestToken=tok, SecretString="s2")["VersionId"] == tok
expect("ResourceExistsException", sm.put_secret_value, SecretId="shared/api", ClientRequestToken=tok, SecretString="other")
expect("ResourceNotFoundException", sm.get_secret_value, SecretId="missing")
expect("InvalidParameterException", sm.create_secret, Name="bad name")
expect("InvalidParameterException", sm.put_secret_value, SecretId="shared/api", SecretString="x" * 65537)
pw = sm.get_random_password(PasswordLength=40, ExcludePunctuation=True)["RandomPassword"]
assert len(pw) == 40 and pw.isalnum(), pw
for i in range(5):
    sm.create_secret(Name=f"many/{i}", SecretString="x")
pages = sm.get_paginator("list_secrets").paginate(PaginationConfig={"PageSize": 2})
names = [x["Name"] for p in pages for x in p["SecretList"]]
assert len(names) == len(set(names)) == 7, names
versions = sm.list_secret_version_ids(SecretId="shared/api")["Versions"]
assert {tuple(v["VersionStages"]) for v in versions} == {("AWSCURRENT",), ("AWSPREVIOUS",)}, versions
print("ok")
"#,
    );
    assert!(out.trim_end().ends_with("ok"), "{out}");
    // The reader may read what its policy names, nothing else.
    let ok = aws_as(
        &s,
        &reader,
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            "shared/api",
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let denied = aws_as(
        &s,
        &reader,
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            "private/api",
        ],
    );
    assert!(!denied.status.success());
    assert_eq!(
        error_code(&String::from_utf8_lossy(&denied.stderr)),
        "AccessDeniedException"
    );
    let denied = aws_as(
        &s,
        &reader,
        &[
            "secretsmanager",
            "put-secret-value",
            "--secret-id",
            "shared/api",
            "--secret-string",
            "x",
        ],
    );
    assert_eq!(
        error_code(&String::from_utf8_lossy(&denied.stderr)),
        "AccessDeniedException"
    );
    // A secret's resource policy can grant a caller what its IAM policies do not.
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:user/reader"},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    s.aws(&[
        "secretsmanager",
        "put-resource-policy",
        "--secret-id",
        "private/api",
        "--resource-policy",
        &policy.to_string(),
    ]);
    let ok = aws_as(
        &s,
        &reader,
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            "private/api",
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // A secret under a customer key whose policy does not let the reader decrypt.
    let admin_arn = s.aws(&["sts", "get-caller-identity"])["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"}]});
    let key = s.aws(&["kms", "create-key", "--policy", &key_policy.to_string()])["KeyMetadata"]
        ["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    s.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "shared/locked",
        "--kms-key-id",
        &key,
        "--secret-string",
        "v",
    ]);
    assert_eq!(
        s.aws(&[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            "shared/locked"
        ])["SecretString"],
        "v"
    );
    let denied = aws_as(
        &s,
        &reader,
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            "shared/locked",
        ],
    );
    assert!(
        !denied.status.success(),
        "the key policy must also allow kms:Decrypt"
    );
    assert_eq!(
        error_code(&String::from_utf8_lossy(&denied.stderr)),
        "AccessDeniedException"
    );
    // A disabled key: the value cannot be read, with KMS's reason.
    s.aws(&["kms", "disable-key", "--key-id", &key]);
    let e = s.aws_err(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        "shared/locked",
    ]);
    assert_eq!(error_code(&e), "DecryptionFailure", "{e}");
}

const ROTATOR: &str = r#"
import os, boto3
sm = boto3.client("secretsmanager")

def handler(event, context):
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    if step == "createSecret":
        try:
            sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        except sm.exceptions.ResourceNotFoundException:
            pw = sm.get_random_password(PasswordLength=24, ExcludePunctuation=True)["RandomPassword"]
            sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString="rotated-" + pw,
                                VersionStages=["AWSPENDING"])
    elif step == "testSecret":
        if os.environ.get("FAIL_TEST") == "1":
            raise RuntimeError("the new secret does not work")
    elif step == "finishSecret":
        stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
        current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
        if current != token:
            sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT",
                                           MoveToVersionId=token, RemoveFromVersionId=current)
"#;

const READER: &str = r#"
import boto3
def handler(event, context):
    return boto3.client("secretsmanager").get_secret_value(SecretId=event["id"])["SecretString"]
"#;

fn current(s: &Server, id: &str) -> String {
    s.aws(&["secretsmanager", "get-secret-value", "--secret-id", id])["SecretString"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn functions_read_secrets_with_their_role_and_rotation_runs_the_four_steps() {
    let s = Server::start();
    s.install_python_sdk();
    // The functions' role may use Secrets Manager (and, through it, the AWS managed key).
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "lambda-exec",
        "--policy-name",
        "secrets",
        "--policy-document",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "secretsmanager:*", "Resource": "*"}]})
        .to_string(),
    ]);
    let create = |name: &str, code: &str, env: Option<&str>| {
        let zip = python_zip(&[("app.py", code)]);
        let zip_arg = format!("fileb://{}", zip.display());
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
            "arn:aws:iam::123456789012:role/lambda-exec",
            "--timeout",
            "30",
            // Creating a boto3 client at import takes a second or two of CPU: at the
            // default 128 MB (7 % of a core) that would not fit the 10 s init phase on a
            // busy machine; 1,024 MB gets 58 %.
            "--memory-size",
            "1024",
            "--zip-file",
            &zip_arg,
        ];
        if let Some(e) = env {
            args.extend(["--environment", e]);
        }
        s.aws(&args);
    };
    create("reader", READER, None);
    create("rotator", ROTATOR, None);
    create("bad-rotator", ROTATOR, Some("Variables={FAIL_TEST=1}"));
    s.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "db",
        "--secret-string",
        "initial",
    ]);

    // A function reads the secret through the SDK, signed with its role's credentials.
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.json");
    s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "reader",
        "--payload",
        r#"{"id":"db"}"#,
        out_file.to_str().unwrap(),
    ]);
    let read: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(read, "initial");

    // Rotation needs the function's policy to let Secrets Manager invoke it.
    let e = s.aws_err(&[
        "secretsmanager",
        "rotate-secret",
        "--secret-id",
        "db",
        "--rotation-lambda-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:rotator",
    ]);
    assert_eq!(error_code(&e), "AccessDeniedException", "{e}");
    for f in ["rotator", "bad-rotator"] {
        s.aws(&[
            "lambda",
            "add-permission",
            "--function-name",
            f,
            "--statement-id",
            "sm",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "secretsmanager.amazonaws.com",
        ]);
    }
    // A failing rotation leaves AWSCURRENT untouched.
    s.aws(&[
        "secretsmanager",
        "rotate-secret",
        "--secret-id",
        "db",
        "--rotation-lambda-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bad-rotator",
    ]);
    // It is over once its pending version exists and has lost AWSPENDING.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = s.aws(&[
            "secretsmanager",
            "list-secret-version-ids",
            "--secret-id",
            "db",
            "--include-deprecated",
        ]);
        let versions = listed["Versions"].as_array().unwrap();
        let pending = versions.iter().any(|v| {
            v["VersionStages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "AWSPENDING")
        });
        if versions.len() == 2 && !pending {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed rotation never ended: {listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(current(&s, "db"), "initial");
    assert!(
        s.aws(&["secretsmanager", "describe-secret", "--secret-id", "db"])["LastRotatedDate"]
            .is_null()
    );

    // A working one moves AWSCURRENT to the new value, AWSPREVIOUS to the old.
    s.aws(&[
        "secretsmanager",
        "rotate-secret",
        "--secret-id",
        "db",
        "--rotation-lambda-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:rotator",
        "--rotation-rules",
        "AutomaticallyAfterDays=30",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !current(&s, "db").starts_with("rotated-") {
        assert!(Instant::now() < deadline, "the rotation never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    let previous = s.aws(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        "db",
        "--version-stage",
        "AWSPREVIOUS",
    ]);
    assert_eq!(previous["SecretString"], "initial");
    let d = s.aws(&["secretsmanager", "describe-secret", "--secret-id", "db"]);
    assert_eq!(d["RotationEnabled"], true);
    assert_eq!(d["RotationRules"]["AutomaticallyAfterDays"], 30);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.aws(&["secretsmanager", "describe-secret", "--secret-id", "db"])["LastRotatedDate"]
        .is_null()
    {
        assert!(Instant::now() < deadline, "the rotation was not recorded");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const EXTENSION: &str = r#"
import json, os, urllib.request, urllib.error

def get(path, token):
    req = urllib.request.Request("http://localhost:2773" + path,
                                 headers={"X-Aws-Parameters-Secrets-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()

def handler(event, context):
    token = os.environ["AWS_SESSION_TOKEN"]
    return {
        "ok": get("/secretsmanager/get?secretId=" + event["id"], token),
        "stage": get("/secretsmanager/get?secretId=" + event["id"] + "&versionStage=AWSCURRENT", token),
        "denied": get("/secretsmanager/get?secretId=locked", token),
        "bad_token": get("/secretsmanager/get?secretId=" + event["id"], "not-a-token"),
        "parameters": get("/systemsmanager/parameters/get?name=x", token),
    }
"#;

#[test]
fn the_parameters_and_secrets_extension_endpoint_answers_inside_the_instance() {
    let s = Server::start();
    // The role may read `app/*` secrets only.
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "lambda-exec",
        "--policy-name",
        "secrets",
        "--policy-document",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/*"}]})
        .to_string(),
    ]);
    s.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "app/key",
        "--secret-string",
        "from-the-extension",
    ]);
    s.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "locked",
        "--secret-string",
        "no",
    ]);
    let zip = python_zip(&[("app.py", EXTENSION)]);
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "ext",
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        "arn:aws:iam::123456789012:role/lambda-exec",
        "--timeout",
        "30",
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.json");
    s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "ext",
        "--payload",
        r#"{"id":"app/key"}"#,
        out_file.to_str().unwrap(),
    ]);
    let seen: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(seen["ok"][0], 200, "{seen}");
    assert_eq!(
        seen["ok"][1]["SecretString"], "from-the-extension",
        "{seen}"
    );
    assert_eq!(
        seen["stage"][1]["VersionStages"],
        json!(["AWSCURRENT"]),
        "{seen}"
    );
    assert_eq!(seen["denied"][0], 403, "{seen}");
    assert_eq!(seen["bad_token"][0], 403, "{seen}");
    assert_eq!(seen["parameters"][0], 400, "{seen}");
    // From outside an instance, a made-up token gets nothing either.
    let (status, _, _) = crate::harness::send(
        &s.endpoint,
        None,
        "GET",
        "/secretsmanager/get?secretId=app/key",
        &[("x-aws-parameters-secrets-token", "IQoJb3JpZ2luX2VjEXAMPLE")],
        b"",
    );
    assert_eq!(status, 403);
}
