//! Feeds the scenario's response bodies to botocore's `QueryParser` with the real IAM and
//! STS models (plus the `json_decode_policies` handler boto3 and the AWS CLI run), so the
//! shapes are checked by the client that will read them.

use std::process::Command;

use crate::scenario::{run, INVOKE_DOC, TRUST_DOC};

const SCRIPT: &str = r#"
import json, sys
import botocore.session
from botocore.parsers import QueryParser
from botocore.handlers import json_decode_policies
session = botocore.session.get_session()
models = {"iam": session.get_service_model("iam"), "sts": session.get_service_model("sts")}
out = []
for case in json.load(sys.stdin):
    model = models["sts" if case["action"] in ("GetCallerIdentity", "AssumeRole") else "iam"]
    op = model.operation_model(case["action"])
    parsed = QueryParser().parse(
        {"status_code": case["status"], "headers": {}, "body": case["body"].encode()},
        op.output_shape)
    if case["status"] == 200:
        json_decode_policies(parsed, op)
    parsed.pop("ResponseMetadata", None)
    out.append(parsed)
print(json.dumps(out, default=str))
"#;

#[test]
fn botocore_parses_every_response() {
    let Ok(python) = std::env::var("WARDEN_TEST_PYTHON") else {
        panic!("WARDEN_TEST_PYTHON is not set: run `cargo xtask ci`, which creates the venv with boto3 and sets it");
    };
    let s = run();
    let cases: Vec<serde_json::Value> = s
        .log
        .iter()
        // Unknown actions have no model to parse against.
        .filter(|r| r.action != "FlyToTheMoon")
        .map(|r| {
            serde_json::json!({"action": r.action, "status": r.response.status, "body": r.response.body})
        })
        .collect();
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            serde_json::Value::Array(cases.clone())
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed.len(), cases.len());
    let find = |action: &str, nth: usize| -> &serde_json::Value {
        cases
            .iter()
            .zip(&parsed)
            .filter(|(c, _)| c["action"] == action)
            .nth(nth)
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("no {action} #{nth}"))
    };
    let invoke: serde_json::Value = serde_json::from_str(INVOKE_DOC).unwrap();
    let trust: serde_json::Value = serde_json::from_str(TRUST_DOC).unwrap();

    let u = &find("CreateUser", 0)["User"];
    assert_eq!(u["UserName"], "alice");
    assert_eq!(u["Path"], "/eng/");
    assert_eq!(u["Arn"], "arn:aws:iam::123456789012:user/eng/alice");
    assert_eq!(
        u["Tags"][0],
        serde_json::json!({"Key": "team", "Value": "blue & green"})
    );
    assert!(u["CreateDate"].as_str().unwrap().ends_with("+00:00"), "{u}");
    assert_eq!(
        find("CreateUser", 1)["Error"]["Code"],
        "EntityAlreadyExists"
    );
    assert_eq!(find("GetUser", 1)["User"]["UserName"], "admin");
    let users = &find("ListUsers", 0);
    assert_eq!(users["Users"].as_array().unwrap().len(), 2);
    assert_eq!(users["IsTruncated"], false);
    assert_eq!(find("ListUsers", 1)["IsTruncated"], true);
    assert_eq!(find("ListUsers", 1)["Marker"], "1");
    let key = &find("CreateAccessKey", 0)["AccessKey"];
    assert_eq!(key["Status"], "Active");
    assert_eq!(key["SecretAccessKey"].as_str().unwrap().len(), 40);
    assert_eq!(
        find("ListAccessKeys", 0)["AccessKeyMetadata"][0]["AccessKeyId"],
        key["AccessKeyId"]
    );
    let pol = &find("CreatePolicy", 0)["Policy"];
    assert_eq!(pol["DefaultVersionId"], "v1");
    assert_eq!(pol["IsAttachable"], true);
    assert_eq!(pol["Description"], "lets <you> invoke");
    assert_eq!(find("GetPolicy", 0)["Policy"]["AttachmentCount"], 0);
    let version = &find("GetPolicyVersion", 0)["PolicyVersion"];
    assert_eq!(version["Document"], invoke);
    assert_eq!(version["IsDefaultVersion"], true);
    assert_eq!(find("GetPolicyVersion", 1)["Error"]["Code"], "NoSuchEntity");
    assert_eq!(
        find("ListPolicies", 0)["Policies"][0]["PolicyName"],
        "invoke"
    );
    assert_eq!(
        find("ListAttachedUserPolicies", 0)["AttachedPolicies"][0]["PolicyName"],
        "invoke"
    );
    assert_eq!(find("GetUserPolicy", 0)["PolicyDocument"], invoke);
    assert_eq!(
        find("ListUserPolicies", 0)["PolicyNames"],
        serde_json::json!(["inline"])
    );
    assert_eq!(find("DeleteUser", 0)["Error"]["Code"], "DeleteConflict");
    assert_eq!(
        find("PutUserPolicy", 1)["Error"]["Code"],
        "MalformedPolicyDocument"
    );
    let role = &find("CreateRole", 0)["Role"];
    assert_eq!(role["AssumeRolePolicyDocument"], trust);
    assert_eq!(role["MaxSessionDuration"], 7200);
    assert_eq!(role["Description"], "runs <fns>");
    assert_eq!(find("GetRole", 0)["Role"]["RoleName"], "exec");
    assert_eq!(
        find("ListRoles", 0)["Roles"][0]["AssumeRolePolicyDocument"],
        trust
    );
    assert_eq!(find("GetRolePolicy", 0)["PolicyDocument"], invoke);
    assert_eq!(
        find("ListRolePolicies", 0)["PolicyNames"],
        serde_json::json!(["inv"])
    );
    assert_eq!(
        find("ListAttachedRolePolicies", 0)["AttachedPolicies"][0]["PolicyArn"],
        "arn:aws:iam::123456789012:policy/invoke"
    );
    let me = &find("GetCallerIdentity", 0);
    assert_eq!(me["Arn"], "arn:aws:iam::123456789012:user/admin");
    assert_eq!(me["Account"], "123456789012");
    let gone = &find("GetUser", 2)["Error"];
    assert_eq!(gone["Code"], "NoSuchEntity");
    assert_eq!(gone["Type"], "Sender");
    assert_eq!(
        gone["Message"],
        "The user with name `alice` cannot be found."
    );
    assert_eq!(
        find("ListPolicyVersions", 0)["Versions"][0]["VersionId"],
        "v2"
    );
    assert_eq!(
        find("CreatePolicyVersion", 0)["PolicyVersion"]["IsDefaultVersion"],
        true
    );
    assert_eq!(find("UpdateRole", 0), &serde_json::json!({}));
    assert_eq!(
        find("UpdateRoleDescription", 0)["Role"]["Description"],
        "described"
    );
    assert_eq!(
        find("ListRoleTags", 0)["Tags"],
        serde_json::json!([{"Key": "k", "Value": "v"}, {"Key": "k2", "Value": "v2"}])
    );
    let used = &find("GetAccessKeyLastUsed", 0)["AccessKeyLastUsed"];
    assert_eq!(used["ServiceName"], "lambda");
    assert!(used["LastUsedDate"].as_str().unwrap().ends_with("+00:00"));
    let assumed = &find("AssumeRole", 0);
    assert!(assumed["Credentials"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .starts_with("ASIA"));
    assert!(assumed["Credentials"]["Expiration"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));
    assert_eq!(
        assumed["AssumedRoleUser"]["Arn"],
        "arn:aws:sts::123456789012:assumed-role/exec/scenario"
    );
    assert!(assumed["PackedPolicySize"].as_u64().unwrap() <= 100);
    assert_eq!(find("AssumeRole", 1)["Error"]["Code"], "ValidationError");
    // Operations without output parse to an empty structure.
    assert_eq!(find("DeleteRole", 1), &serde_json::json!({}));
}
