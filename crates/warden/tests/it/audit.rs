//! The audit trail end to end: every API call of every service (allowed, denied, or with
//! failed authentication) is a CloudTrail event that the AWS CLI and boto3 look up, with
//! secrets left out; invocations only as data events when configured; a `kill -9` loses
//! no acknowledged write; `warden audit verify` finds the trail intact, and finds each
//! edit of the SQLite file made behind Warden's back.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::*;

/// The bytes of the audit database and its write-ahead log.
fn trail_bytes(data_dir: &Path) -> Vec<u8> {
    let mut all = std::fs::read(data_dir.join("audit.db")).unwrap();
    if let Ok(wal) = std::fs::read(data_dir.join("audit.db-wal")) {
        all.extend(wal);
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn every_call_is_recorded_without_its_secrets_and_looked_up_with_the_aws_cli_and_boto3() {
    let s = Server::start();
    s.ensure_role(EXEC_ROLE_NAME, LAMBDA_TRUST);
    let admin = s.admin();
    s.create_fixture(
        "audited",
        &[
            "--environment",
            "Variables={DB_PASSWORD=sw0rdfish-not-in-the-trail}",
        ],
    );
    s.aws(&["lambda", "get-function", "--function-name", "audited"]);
    let reader = user_with_key(&s, "reader");
    let created_secret = reader.secret.clone();
    // Denied: the user has no policy.
    let denied = aws_as(
        &s,
        &reader,
        &["lambda", "delete-function", "--function-name", "audited"],
    );
    assert_eq!(
        error_code(&String::from_utf8_lossy(&denied.stderr)),
        "AccessDeniedException"
    );
    // Failed authentication: a key Warden never issued.
    let stranger = Credentials {
        key: "AKIAUNKNOWNKEY000001".into(),
        secret: "x".repeat(40),
        token: None,
    };
    let refused = aws_as(&s, &stranger, &["lambda", "list-functions"]);
    assert!(!refused.status.success());
    // A data event, not recorded by default.
    let (status, _, _) = s.http(
        "POST",
        "/2015-03-31/functions/audited/invocations",
        &[],
        br#"{"secret-payload":"p4yl0ad-not-in-the-trail"}"#,
    );
    assert_eq!(status, 200);

    // CreateFunction: who, what, where, with the environment's values left out.
    let created = lookup(&s, "EventName", "CreateFunction");
    assert_eq!(created.len(), 1, "{created:#?}");
    let e = &created[0];
    assert_eq!(e["eventVersion"], "1.11");
    assert_eq!(e["eventSource"], "lambda.amazonaws.com");
    assert_eq!(e["eventCategory"], "Management");
    assert_eq!(e["readOnly"], false);
    assert_eq!(e["userIdentity"]["type"], "IAMUser");
    assert_eq!(e["userIdentity"]["accessKeyId"], admin.key.as_str());
    assert_eq!(e["requestParameters"]["functionName"], "audited");
    assert_eq!(
        e["requestParameters"]["environment"]["Variables"],
        "HIDDEN_DUE_TO_SECURITY_REASONS"
    );
    assert_eq!(e["responseElements"]["FunctionName"], "audited");
    assert_eq!(e["sourceIPAddress"], "127.0.0.1");
    assert!(e["userAgent"].as_str().unwrap().contains("aws-cli"));
    assert!(e["resources"][0]["ARN"]
        .as_str()
        .unwrap()
        .ends_with(":function:audited"));
    assert_eq!(e["resources"][0]["type"], "AWS::Lambda::Function");

    // The denial and the failed authentication are there, with their error codes.
    let deletes = lookup(&s, "EventName", "DeleteFunction");
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert_eq!(deletes[0]["errorCode"], "AccessDeniedException");
    assert!(deletes[0]["userIdentity"]["arn"]
        .as_str()
        .unwrap()
        .ends_with(":user/reader"));
    let strangers = lookup(&s, "AccessKeyId", &stranger.key);
    assert_eq!(strangers.len(), 1, "{strangers:#?}");
    assert_eq!(strangers[0]["errorCode"], "UnrecognizedClientException");
    assert_eq!(strangers[0]["userIdentity"]["type"], "Unknown");
    assert_eq!(strangers[0]["eventName"], "ListFunctions");

    // IAM's own calls, by the query protocol's Action; the new key's secret left out.
    let keys = lookup(&s, "EventName", "CreateAccessKey");
    assert_eq!(keys.len(), 1, "{keys:#?}");
    assert_eq!(keys[0]["eventSource"], "iam.amazonaws.com");
    assert_eq!(keys[0]["requestParameters"]["userName"], "reader");

    // Invocations are data events: off by default.
    assert!(lookup(&s, "EventName", "Invoke").is_empty());

    // Neither the environment's value, nor the payload, nor the issued secret is anywhere
    // in the trail's files.
    let bytes = trail_bytes(&s.data_dir);
    for secret in [
        "sw0rdfish-not-in-the-trail",
        "p4yl0ad-not-in-the-trail",
        created_secret.as_str(),
    ] {
        assert!(
            !contains(&bytes, secret),
            "`{secret}` is in the audit trail"
        );
    }

    // boto3: paging, the trail's status, and the refusals with CloudTrail's codes.
    let out = s.python(
        r#"
import json, os, boto3, botocore
from botocore.config import Config
ct = boto3.client("cloudtrail", endpoint_url=os.environ["ENDPOINT"], config=Config(retries={"total_max_attempts": 1}))
out = {}
pages = ct.get_paginator("lookup_events").paginate(PaginationConfig={"PageSize": 3})
ids = [e["EventId"] for p in pages for e in p["Events"]]
out["paged"] = len(ids)
out["unique"] = len(set(ids))
out["one_page"] = len(ct.lookup_events(MaxResults=50)["Events"])
out["writes_only"] = all(e["ReadOnly"] == "false" for e in ct.lookup_events(LookupAttributes=[{"AttributeKey": "ReadOnly", "AttributeValue": "false"}])["Events"])
out["status"] = ct.get_trail_status(Name="warden")["IsLogging"]
out["trails"] = [t["Name"] for t in ct.describe_trails()["trailList"]]
errors = {}
def expect(name, fn, **kw):
    try:
        fn(**kw)
        errors[name] = None
    except botocore.exceptions.ClientError as e:
        errors[name] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
expect("two", ct.lookup_events, LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "a"}, {"AttributeKey": "EventName", "AttributeValue": "b"}])
expect("type", ct.lookup_events, LookupAttributes=[{"AttributeKey": "ResourceType", "AttributeValue": "AWS::Lambda::Function"}])
expect("insight", ct.lookup_events, EventCategory="insight")
expect("token", ct.lookup_events, NextToken="garbage")
expect("range", ct.lookup_events, StartTime=2000000000, EndTime=1000000000)
expect("trail", ct.get_trail_status, Name="other")
out["errors"] = errors
print(json.dumps(out))
"#,
    );
    let out: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(out["paged"].as_u64().unwrap() >= 8, "{out}");
    assert_eq!(out["paged"], out["unique"], "{out}");
    assert_eq!(out["writes_only"], true);
    assert_eq!(out["status"], true);
    assert_eq!(out["trails"], json!(["warden"]));
    assert_eq!(
        out["errors"],
        json!({
            "two": ["InvalidLookupAttributesException", 400],
            "type": ["InvalidLookupAttributesException", 400],
            "insight": ["InvalidEventCategoryException", 400],
            "token": ["InvalidNextTokenException", 400],
            "range": ["InvalidTimeRangeException", 400],
            "trail": ["TrailNotFoundException", 400],
        })
    );

    // Reading the trail needs permission like anything else.
    let looked = aws_as(&s, &reader, &["cloudtrail", "lookup-events"]);
    assert_eq!(
        error_code(&String::from_utf8_lossy(&looked.stderr)),
        "AccessDeniedException"
    );

    // `warden audit events`: the same lookups from Warden's CLI.
    let out = s.warden(&["audit", "events", "--event", "CreateFunction"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("CreateFunction") && text.contains("lambda.amazonaws.com"));
    let out = s.warden(&[
        "audit",
        "events",
        "--principal",
        deletes[0]["userIdentity"]["arn"].as_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success());
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["eventName"] == "DeleteFunction"));
    assert!(events
        .iter()
        .all(|e| e["userIdentity"]["arn"] == deletes[0]["userIdentity"]["arn"]));
}

fn verify(s: &Server, digests: &Path) -> (bool, String) {
    let out = s.warden(&[
        "audit",
        "verify",
        "--digests",
        &digests.display().to_string(),
    ]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs SQL against the audit database behind Warden's back.
fn tamper(data_dir: &Path, sql: &str) {
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.executescript({sql:?}); c.commit()",
        data_dir.join("audit.db").display().to_string()
    );
    let out = Command::new(python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_kill_9_loses_no_acknowledged_write_and_verify_finds_every_edit() {
    let exported = private_tempdir();
    let export = exported.path().join("digests");
    let export_arg = export.display().to_string();
    let mut s = Server::start_with(&["--audit-data-events", "--audit-export-dir", &export_arg]);
    s.ensure_role(EXEC_ROLE_NAME, LAMBDA_TRUST);
    s.create_fixture("f", &[]);
    let (status, _, _) = s.http(
        "POST",
        "/2015-03-31/functions/f/invocations",
        &[],
        br#"{"k":"payload-kept-out"}"#,
    );
    assert_eq!(status, 200);
    // Acknowledged writes, then a crash.
    for i in 0..30 {
        let name = format!("u{i}");
        let (status, _, body) = s.iam(&[("Action", "CreateUser"), ("UserName", &name)]);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    s.kill9();
    s.restart();
    let users = lookup(&s, "EventName", "CreateUser");
    let mut names: Vec<&str> = users
        .iter()
        .map(|e| e["requestParameters"]["userName"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let mut expected: Vec<String> = (0..30).map(|i| format!("u{i}")).collect();
    expected.sort_unstable();
    assert_eq!(names, expected, "every acknowledged CreateUser survived");

    // The invocation, as a data event, without its payload.
    let invokes = lookup(&s, "EventName", "Invoke");
    assert_eq!(invokes.len(), 1, "{invokes:#?}");
    assert_eq!(invokes[0]["eventCategory"], "Data");
    assert_eq!(invokes[0]["managementEvent"], false);
    assert!(!invokes[0].to_string().contains("payload-kept-out"));

    // A digest on demand, exported with the public key; the trail verifies.
    let out = s.warden(&["audit", "digest", "--export", &export_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(export.join("audit-public-key.json").exists());
    let (ok, text) = verify(&s, &export);
    assert!(ok, "{text}");
    assert!(text.contains("OK"), "{text}");
    s.stop();

    let db = s.data_dir.join("audit.db");
    tamper(&s.data_dir, "PRAGMA wal_checkpoint(TRUNCATE);");
    let pristine = std::fs::read(&db).unwrap();
    let restore = || std::fs::write(&db, &pristine).unwrap();
    // Each edit, made directly in the file, is found and named.
    for (edit, named) in [
        (
            "UPDATE event SET body = CAST(replace(CAST(body AS TEXT), 'u7', 'u8') AS BLOB) WHERE event_name = 'CreateUser' AND CAST(body AS TEXT) LIKE '%\"u7\"%';",
            "ALTERED",
        ),
        (
            "DELETE FROM event WHERE seq = (SELECT seq FROM event WHERE event_name = 'CreateUser' LIMIT 1 OFFSET 5);",
            "REMOVED",
        ),
        (
            "DELETE FROM event WHERE seq >= (SELECT MAX(seq) - 3 FROM event); DELETE FROM digest;",
            "TRUNCATED",
        ),
    ] {
        tamper(&s.data_dir, edit);
        let (ok, text) = verify(&s, &export);
        assert!(!ok && text.contains(named), "{named}: {text}");
        restore();
    }
    let (ok, text) = verify(&s, &export);
    assert!(ok, "restored: {text}");
}

const WIDE_APP: &str = r#"
import boto3, botocore
def handler(event, context):
    out = {"secret": boto3.client("secretsmanager").get_secret_value(SecretId="app-db")["SecretString"]}
    out["memory"] = boto3.client("lambda").get_function_configuration(FunctionName=context.function_name)["MemorySize"]
    if event.get("extra"):
        try:
            boto3.client("lambda").list_functions()
            out["extra"] = "allowed"
        except botocore.exceptions.ClientError as e:
            out["extra"] = e.response["Error"]["Code"]
    return out
"#;

/// Invokes `name` with `payload` through the AWS CLI; its JSON answer.
fn invoke_json(s: &Server, name: &str, payload: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let meta = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--payload",
        payload,
        out.to_str().unwrap(),
    ]);
    assert!(
        meta.get("FunctionError").is_none(),
        "{meta}: {}",
        std::fs::read_to_string(&out).unwrap()
    );
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

#[test]
fn a_policy_generated_from_the_trail_keeps_the_function_working_and_denies_the_rest() {
    let s = Server::start();
    s.install_python_sdk();
    s.ensure_role("wide", LAMBDA_TRUST);
    let star = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "wide",
        "--policy-name",
        "p",
        "--policy-document",
        &star.to_string(),
    ]);
    s.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "app-db",
        "--secret-string",
        "s3cr3t",
    ]);
    let zip = python_zip(&[("app.py", WIDE_APP)]);
    let zip_arg = format!("fileb://{}", zip.display());
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "wide-fn",
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        "arn:aws:iam::123456789012:role/wide",
        "--timeout",
        "30",
        "--memory-size",
        "1024",
        "--zip-file",
        &zip_arg,
    ]);
    let first = invoke_json(&s, "wide-fn", "{}");
    assert_eq!(first["secret"], "s3cr3t");
    assert_eq!(first["memory"], 1024);

    // With `*` granted, `unused` can only say that `*` was used.
    let out = s.warden(&["iam", "unused", "--role", "wide", "--since", "1h", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unused"], json!([]));
    let used: Vec<&str> = report["used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["action"].as_str().unwrap())
        .collect();
    assert!(used.contains(&"secretsmanager:GetSecretValue"), "{report}");
    assert!(
        used.contains(&"lambda:GetFunctionConfiguration"),
        "{report}"
    );

    // The generated policy: exactly what the calls needed, on exactly their resources.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.json");
    let out = s.warden(&[
        "iam",
        "generate-policy",
        "--role",
        "wide",
        "--since",
        "1h",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let text = generated.to_string();
    assert!(!text.contains(r#""Action":"*""#), "{generated:#}");
    assert!(text.contains(":function:wide-fn"), "{generated:#}");
    assert!(text.contains(":secret:app-db-"), "{generated:#}");
    assert!(!text.contains("lambda:ListFunctions"), "{generated:#}");

    // Attached in place of `*`, the function still works, and everything else is denied.
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "wide",
        "--policy-name",
        "p",
        "--policy-document",
        &generated.to_string(),
    ]);
    let again = invoke_json(&s, "wide-fn", r#"{"extra": true}"#);
    assert_eq!(again["secret"], "s3cr3t");
    assert_eq!(again["extra"], "AccessDeniedException", "{again}");

    // And now a granted action the function never calls shows as unused.
    let mut widened = generated.clone();
    widened["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": "*"}));
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "wide",
        "--policy-name",
        "p",
        "--policy-document",
        &widened.to_string(),
    ]);
    let out = s.warden(&["iam", "unused", "--role", "wide", "--since", "1h"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("UNUSED  dynamodb:PutItem"), "{text}");
    assert_eq!(text.matches("UNUSED").count(), 1, "{text}");
}

#[test]
fn configuration_history_records_each_change_with_the_call_that_made_it() {
    let s = Server::start();
    s.ensure_role(EXEC_ROLE_NAME, LAMBDA_TRUST);
    s.create_fixture(
        "tracked",
        &[
            "--environment",
            "Variables={API_TOKEN=t0ken-not-in-history}",
        ],
    );
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "tracked",
        "--memory-size",
        "256",
    ]);
    s.aws(&["lambda", "publish-version", "--function-name", "tracked"]);
    s.aws(&[
        "lambda",
        "create-alias",
        "--function-name",
        "tracked",
        "--name",
        "live",
        "--function-version",
        "1",
    ]);
    s.aws(&[
        "iam", "put-role-policy", "--role-name", EXEC_ROLE_NAME, "--policy-name", "extra",
        "--policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
    ]);
    s.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "hist",
        "--secret-string",
        "v4lue-not-in-history",
    ]);
    s.aws(&["lambda", "delete-function", "--function-name", "tracked"]);

    let history = s.aws(&[
        "configservice",
        "get-resource-config-history",
        "--resource-type",
        "AWS::Lambda::Function",
        "--resource-id",
        "tracked",
    ]);
    let items = history["configurationItems"].as_array().unwrap();
    let states: Vec<(&str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["configurationStateId"].as_str().unwrap(),
                i["configurationItemStatus"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("3", "ResourceDeleted"),
            ("2", "OK"),
            ("1", "ResourceDiscovered")
        ],
        "{history:#}"
    );
    let second: Value = serde_json::from_str(items[1]["configuration"].as_str().unwrap()).unwrap();
    assert_eq!(second["MemorySize"], 256);
    assert_eq!(
        second["Environment"]["Variables"]["API_TOKEN"],
        "HIDDEN_DUE_TO_SECURITY_REASONS"
    );
    // The item names the audit event of the call that made the change.
    let event_id = items[1]["relatedEvents"][0].as_str().unwrap();
    let found = lookup(&s, "EventId", event_id);
    assert_eq!(found[0]["eventName"], "UpdateFunctionConfiguration");

    // The alias, the role and the secret's metadata have histories of their own.
    let alias = s.aws(&[
        "configservice",
        "get-resource-config-history",
        "--resource-type",
        "AWS::Lambda::Alias",
        "--resource-id",
        "tracked:live",
    ]);
    assert!(
        alias["configurationItems"][0]["configuration"]
            .as_str()
            .unwrap()
            .contains(r#""FunctionVersion":"1""#),
        "{alias:#}"
    );
    let role = s.aws(&[
        "configservice",
        "get-resource-config-history",
        "--resource-type",
        "AWS::IAM::Role",
        "--resource-id",
        EXEC_ROLE_NAME,
    ]);
    assert!(
        role["configurationItems"][0]["configuration"]
            .as_str()
            .unwrap()
            .contains("s3:GetObject"),
        "{role:#}"
    );
    let listed = s.aws(&[
        "configservice",
        "list-discovered-resources",
        "--resource-type",
        "AWS::Lambda::Function",
        "--include-deleted-resources",
    ]);
    assert_eq!(listed["resourceIdentifiers"][0]["resourceId"], "tracked");
    assert!(listed["resourceIdentifiers"][0]["resourceDeletionTime"].is_number());
    let live = s.aws(&[
        "configservice",
        "list-discovered-resources",
        "--resource-type",
        "AWS::Lambda::Function",
    ]);
    assert_eq!(live["resourceIdentifiers"], json!([]));

    // A layer version: published, then shared with another account.
    let zip = format!("fileb://{}", fixture_zip().display());
    s.aws(&[
        "lambda",
        "publish-layer-version",
        "--layer-name",
        "shared",
        "--zip-file",
        &zip,
    ]);
    s.aws(&[
        "lambda",
        "add-layer-version-permission",
        "--layer-name",
        "shared",
        "--version-number",
        "1",
        "--statement-id",
        "partner",
        "--action",
        "lambda:GetLayerVersion",
        "--principal",
        "210987654321",
    ]);
    let layer = s.aws(&[
        "configservice",
        "get-resource-config-history",
        "--resource-type",
        "AWS::Lambda::LayerVersion",
        "--resource-id",
        "shared:1",
    ]);
    let items = layer["configurationItems"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{layer:#}");
    assert!(items[0]["configuration"]
        .as_str()
        .unwrap()
        .contains("210987654321"));
    assert_eq!(items[1]["configurationItemStatus"], "ResourceDiscovered");

    // Refusals, with AWS Config's codes.
    let e = s.aws_err(&[
        "configservice",
        "get-resource-config-history",
        "--resource-type",
        "AWS::Lambda::Function",
        "--resource-id",
        "never",
    ]);
    assert_eq!(error_code(&e), "ResourceNotDiscoveredException", "{e}");
    let e = s.aws_err(&[
        "configservice",
        "get-resource-config-history",
        "--resource-type",
        "AWS::S3::Bucket",
        "--resource-id",
        "b",
    ]);
    assert_eq!(error_code(&e), "ValidationException", "{e}");
    let nobody = user_with_key(&s, "nobody");
    let out = aws_as(
        &s,
        &nobody,
        &[
            "configservice",
            "list-discovered-resources",
            "--resource-type",
            "AWS::IAM::Role",
        ],
    );
    assert_eq!(
        error_code(&String::from_utf8_lossy(&out.stderr)),
        "AccessDeniedException"
    );

    // `warden config history` shows each change as a diff.
    let out = s.warden(&["config", "history", "tracked"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("~ MemorySize: 128 -> 256"), "{text}");
    assert!(text.contains("ResourceDeleted"), "{text}");

    // No secret value reached the history's file.
    let mut bytes = std::fs::read(s.data_dir.join("config.db")).unwrap();
    if let Ok(wal) = std::fs::read(s.data_dir.join("config.db-wal")) {
        bytes.extend(wal);
    }
    for secret in ["t0ken-not-in-history", "v4lue-not-in-history"] {
        assert!(
            !contains(&bytes, secret),
            "`{secret}` is in the configuration history"
        );
    }
}

#[test]
fn a_full_trail_stops_recording_reads_then_refuses_changes_it_could_not_record() {
    let s = Server::start_with(&["--audit-max-mib", "1"]);
    // Changes are recorded until the trail is a tenth over its bound; then refused.
    let mut refused = None;
    for i in 0..20_000 {
        let name = format!("filler-{i}");
        let (status, _, body) = s.iam(&[("Action", "CreateUser"), ("UserName", &name)]);
        if status == 503 {
            refused = Some((name, String::from_utf8_lossy(&body).into_owned()));
            break;
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let (name, body) = refused.expect("the trail never filled");
    assert!(body.contains("ServiceUnavailable"), "{body}");
    // The refused change was not made.
    let (status, _, _) = s.iam(&[("Action", "GetUser"), ("UserName", &name)]);
    assert_eq!(status, 404);
    // Reads still work; they are no longer recorded, and that is counted.
    let (status, _, _) = s.http("GET", "/2015-03-31/functions", &[], b"");
    assert_eq!(status, 200);
    let text = ureq::get(&s.metrics_endpoint)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let dropped: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("warden_audit_events_dropped_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped >= 1.0, "{text}");
    // The database stays within about its bound (and its write-ahead log).
    let size = std::fs::metadata(s.data_dir.join("audit.db"))
        .unwrap()
        .len();
    assert!(size < 8 << 20, "audit.db is {size} bytes");
}
