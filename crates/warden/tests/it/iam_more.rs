//! IAM and STS as the usual scripts drive them, through the real AWS CLI and boto3: errors
//! in the query protocol's XML (so clients report `AccessDenied`, not "invalid XML"),
//! `AssumeRole` with trust, duration, session policies and session tags, AWS-managed
//! policies, policy versions, `UpdateRole`, tag listing and removal, access-key last use,
//! and a clear answer for services Warden does not serve.

use std::process::Output;

use serde_json::{json, Value};

use crate::harness::{
    aws_as, fixture_zip, ok_as, send, user_with_key, Credentials, Server, ACCOUNT, EXEC_ROLE,
};

/// Runs the CLI as `who` expecting failure with `code` (as the CLI prints it:
/// `An error occurred (CODE) when calling ...`); returns stderr.
fn err_as(s: &Server, who: &Credentials, args: &[&str], code: &str) -> String {
    let out = aws_as(s, who, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "aws {args:?} unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(&format!("An error occurred ({code})")),
        "aws {args:?}: expected {code}, got: {stderr}"
    );
    stderr
}

fn put_user_policy(s: &Server, user: &str, name: &str, doc: &Value) {
    s.aws(&[
        "iam",
        "put-user-policy",
        "--user-name",
        user,
        "--policy-name",
        name,
        "--policy-document",
        &doc.to_string(),
    ]);
}

fn put_role_policy(s: &Server, role: &str, name: &str, doc: &Value) {
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        role,
        "--policy-name",
        name,
        "--policy-document",
        &doc.to_string(),
    ]);
}

fn create_role(s: &Server, name: &str, trust: &Value, extra: &[&str]) {
    let trust = trust.to_string();
    let mut args = vec![
        "iam",
        "create-role",
        "--role-name",
        name,
        "--assume-role-policy-document",
        &trust,
    ];
    args.extend_from_slice(extra);
    s.aws(&args);
}

fn allow(action: &str, resource: &str) -> Value {
    json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":action,"Resource":resource}]})
}

fn trusting(principal: Value, actions: &[&str]) -> Value {
    json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":principal,"Action":actions}]})
}

fn session_creds(v: &Value) -> Credentials {
    let c = &v["Credentials"];
    Credentials {
        key: c["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: c["SecretAccessKey"].as_str().unwrap().to_owned(),
        token: Some(c["SessionToken"].as_str().unwrap().to_owned()),
    }
}

/// A boto3 prelude: `client(service, who)` builds a client for the server as `who`.
const PRELUDE: &str = r#"
import json, os, sys, boto3, botocore
from botocore.config import Config
CFG = Config(retries={"total_max_attempts": 1}, read_timeout=30)
def client(service, key, secret, token=None):
    return boto3.client(service, endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        aws_session_token=token, config=CFG)
def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e.response}"
        return e.response
    raise AssertionError(f"expected {code}, the call succeeded")
"#;

fn boto3(s: &Server, vars: &[(&str, &str)], body: &str) {
    let mut script = PRELUDE.to_owned();
    for (k, v) in vars {
        script.push_str(&format!("{k} = {v:?}\n"));
    }
    script.push_str(body);
    script.push_str("\nprint('ok')\n");
    let out = s.python(&script);
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

/// One signed query-protocol request with an explicit signing service; (status, body).
fn query_as(
    s: &Server,
    who: Option<&Credentials>,
    service: &str,
    form: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        f.append_pair(k, v);
    }
    let body = f.finish().into_bytes();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/", s.endpoint))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body.clone())
        .unwrap();
    if let Some(c) = who {
        let signing = warden_auth::SigningCredentials {
            access_key_id: c.key.clone(),
            secret_access_key: c.secret.clone(),
            session_token: c.token.clone(),
        };
        warden_auth::sign_request(
            &mut req,
            &body,
            &signing,
            "us-east-1",
            service,
            std::time::SystemTime::now(),
        )
        .unwrap();
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent.run(req).unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response.into_body().read_to_string().unwrap();
    (status, headers, body)
}

const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Checks an `<ErrorResponse>` in `ns` with `code`.
fn assert_xml_error(status: u16, headers: &[(String, String)], body: &str, ns: &str, code: &str) {
    assert!(
        body.starts_with(&format!("<ErrorResponse xmlns=\"{ns}\"><Error><Type>")),
        "{status}: {body}"
    );
    assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/xml")),
        "{headers:?}"
    );
    let id = headers
        .iter()
        .find(|(k, _)| k == "x-amzn-requestid")
        .map(|(_, v)| v.as_str())
        .unwrap();
    assert!(
        body.contains(&format!("<RequestId>{id}</RequestId>")),
        "{body}"
    );
}

#[test]
fn iam_and_sts_errors_are_xml_that_the_aws_cli_and_boto3_parse() {
    let s = Server::start();
    let bob = user_with_key(&s, "bob");
    // A caller without the permission: AccessDenied, naming the action, as XML.
    let e = err_as(
        &s,
        &bob,
        &["iam", "create-user", "--user-name", "mallory"],
        "AccessDenied",
    );
    assert!(e.contains("iam:CreateUser"), "{e}");
    // A wrong secret, an unknown key: SignatureDoesNotMatch and InvalidClientTokenId.
    let mut wrong = bob.clone();
    wrong.secret = "x".repeat(40);
    err_as(&s, &wrong, &["iam", "list-users"], "SignatureDoesNotMatch");
    err_as(
        &s,
        &wrong,
        &["sts", "get-caller-identity"],
        "SignatureDoesNotMatch",
    );
    let stranger = Credentials {
        key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret: "y".repeat(40),
        token: None,
    };
    err_as(
        &s,
        &stranger,
        &["iam", "list-users"],
        "InvalidClientTokenId",
    );
    err_as(
        &s,
        &stranger,
        &["sts", "get-caller-identity"],
        "InvalidClientTokenId",
    );
    // An expired-looking session token that names no session: still InvalidClientTokenId.
    let fake_session = Credentials {
        key: "ASIAIOSFODNN7EXAMPLE".into(),
        secret: "y".repeat(40),
        token: Some("z".repeat(96)),
    };
    err_as(
        &s,
        &fake_session,
        &["sts", "get-caller-identity"],
        "InvalidClientTokenId",
    );

    // No signature at all: MissingAuthenticationToken, in each service's namespace.
    let (status, h, body) = query_as(
        &s,
        None,
        "iam",
        &[("Action", "ListUsers"), ("Version", "2010-05-08")],
    );
    assert_eq!(status, 403);
    assert_xml_error(status, &h, &body, IAM_NS, "MissingAuthenticationToken");
    let (status, h, body) = query_as(
        &s,
        None,
        "sts",
        &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
    );
    assert_eq!(status, 403);
    assert_xml_error(status, &h, &body, STS_NS, "MissingAuthenticationToken");

    // Actions Warden does not implement: InvalidAction (400), in the service's namespace.
    let admin = s.admin();
    let (status, h, body) = query_as(
        &s,
        Some(&admin),
        "iam",
        &[("Action", "FlyToTheMoon"), ("Version", "2010-05-08")],
    );
    assert_eq!(status, 400);
    assert_xml_error(status, &h, &body, IAM_NS, "InvalidAction");
    let (status, h, body) = query_as(
        &s,
        Some(&admin),
        "sts",
        &[("Action", "GetSessionToken"), ("Version", "2011-06-15")],
    );
    assert_eq!(status, 400);
    assert_xml_error(status, &h, &body, STS_NS, "InvalidAction");
    assert!(body.contains("2011-06-15"), "{body}");
    // An IAM action sent to STS is STS's InvalidAction, as the STS endpoint answers it.
    let (status, h, body) = query_as(
        &s,
        Some(&admin),
        "sts",
        &[
            ("Action", "CreateUser"),
            ("UserName", "via-sts"),
            ("Version", "2011-06-15"),
        ],
    );
    assert_eq!(status, 400);
    assert_xml_error(status, &h, &body, STS_NS, "InvalidAction");
    assert!(s
        .aws_err(&["iam", "get-user", "--user-name", "via-sts"])
        .contains("NoSuchEntity"));
    // A service error raised by the identity service itself is rendered the same way.
    let (status, h, body) = query_as(
        &s,
        Some(&admin),
        "iam",
        &[
            ("Action", "GetUser"),
            ("UserName", "nobody"),
            ("Version", "2010-05-08"),
        ],
    );
    assert_eq!(status, 404);
    assert_xml_error(status, &h, &body, IAM_NS, "NoSuchEntity");

    // boto3 reads the same codes and statuses.
    boto3(
        &s,
        &[
            ("BOB_KEY", &bob.key),
            ("BOB_SECRET", &bob.secret),
            ("ADMIN_KEY", &admin.key),
            ("ADMIN_SECRET", &admin.secret),
        ],
        r#"
iam = client("iam", BOB_KEY, BOB_SECRET)
r = expect_error("AccessDenied", iam.create_user, UserName="mallory")
assert r["ResponseMetadata"]["HTTPStatusCode"] == 403, r
assert "iam:CreateUser" in r["Error"]["Message"], r
r = expect_error("SignatureDoesNotMatch", client("sts", BOB_KEY, "x" * 40).get_caller_identity)
assert r["ResponseMetadata"]["HTTPStatusCode"] == 403, r
r = expect_error("InvalidClientTokenId", client("iam", "AKIAIOSFODNN7EXAMPLE", "y" * 40).list_roles)
assert r["ResponseMetadata"]["HTTPStatusCode"] == 403, r
sts = client("sts", ADMIN_KEY, ADMIN_SECRET)
r = expect_error("InvalidAction", sts.get_session_token)
assert r["ResponseMetadata"]["HTTPStatusCode"] == 400, r
assert client("sts", BOB_KEY, BOB_SECRET).get_caller_identity()["Arn"].endswith(":user/bob")
"#,
    );
}

#[test]
fn assume_role_honours_trust_duration_session_policies_and_tags() {
    let s = Server::start();
    let bob = user_with_key(&s, "bob");
    let carol = user_with_key(&s, "carol");
    let bob_arn = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/deployer");
    create_role(
        &s,
        "deployer",
        &trusting(json!({"AWS": bob_arn}), &["sts:AssumeRole"]),
        &[],
    );
    put_role_policy(&s, "deployer", "lambda", &allow("lambda:*", "*"));

    // Bob, named by the trust policy, needs no identity policy; carol is not admitted.
    let assumed = ok_as(
        &s,
        &bob,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "ci",
        ],
    );
    assert_eq!(
        assumed["AssumedRoleUser"]["Arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci")
    );
    assert!(assumed["AssumedRoleUser"]["AssumedRoleId"]
        .as_str()
        .unwrap()
        .ends_with(":ci"));
    let session = session_creds(&assumed);
    assert!(session.key.starts_with("ASIA"));
    let me = ok_as(&s, &session, &["sts", "get-caller-identity"]);
    assert_eq!(me["Arn"], assumed["AssumedRoleUser"]["Arn"]);
    ok_as(&s, &session, &["lambda", "list-functions"]);
    let e = err_as(&s, &session, &["iam", "list-users"], "AccessDenied");
    assert!(e.contains("assumed-role/deployer/ci"), "{e}");
    let e = err_as(
        &s,
        &carol,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "xx",
        ],
        "AccessDenied",
    );
    assert!(e.contains("sts:AssumeRole"), "{e}");
    // A role that does not exist reads the same (no existence oracle).
    err_as(
        &s,
        &carol,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &format!("arn:aws:iam::{ACCOUNT}:role/ghost"),
            "--role-session-name",
            "xx",
        ],
        "AccessDenied",
    );
    // An identity-policy Allow alone does not get carol in; a trust policy naming the
    // account delegates to it.
    put_user_policy(&s, "carol", "assume", &allow("sts:AssumeRole", &role_arn));
    let assume_carol = [
        "sts",
        "assume-role",
        "--role-arn",
        &role_arn,
        "--role-session-name",
        "carol",
    ];
    err_as(&s, &carol, &assume_carol, "AccessDenied");
    s.aws(&[
        "iam",
        "update-assume-role-policy",
        "--role-name",
        "deployer",
        "--policy-document",
        &trusting(
            json!({"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}),
            &["sts:AssumeRole", "sts:TagSession"],
        )
        .to_string(),
    ]);
    ok_as(&s, &carol, &assume_carol);
    err_as(
        &s,
        &bob,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "bbb",
        ],
        "AccessDenied",
    );

    // Duration: at least 900 s, at most the role's maximum (3600 by default).
    let with_duration = |d: &str| {
        aws_as(
            &s,
            &carol,
            &[
                "sts",
                "assume-role",
                "--role-arn",
                &role_arn,
                "--role-session-name",
                "ddd",
                "--duration-seconds",
                d,
            ],
        )
    };
    let out = with_duration("7200");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("(ValidationError)"),
        "{stderr}"
    );
    assert!(stderr.contains("MaxSessionDuration"), "{stderr}");
    // The SDKs check the minimum themselves; the server does too.
    let (status, _, body) = query_as(
        &s,
        Some(&carol),
        "sts",
        &[
            ("Action", "AssumeRole"),
            ("RoleArn", &role_arn),
            ("RoleSessionName", "short"),
            ("DurationSeconds", "899"),
            ("Version", "2011-06-15"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>ValidationError</Code>"), "{body}");
    s.aws(&[
        "iam",
        "update-role",
        "--role-name",
        "deployer",
        "--max-session-duration",
        "7200",
    ]);
    let out = with_duration("7200");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expires = v["Credentials"]["Expiration"].as_str().unwrap();
    let expires =
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(110) && left <= time::Duration::minutes(121),
        "{left}"
    );
    // Role chaining is limited to one hour.
    put_role_policy(&s, "deployer", "chain", &allow("sts:AssumeRole", &role_arn));
    let out = aws_as(
        &s,
        &session_creds(&v),
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "chain",
            "--duration-seconds",
            "7200",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("role chaining"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An inline session policy narrows the role's lambda:* to GetAccountSettings.
    let narrow = allow("lambda:GetAccountSettings", "*").to_string();
    let narrowed = session_creds(&ok_as(
        &s,
        &carol,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "narrow",
            "--policy",
            &narrow,
        ],
    ));
    ok_as(&s, &narrowed, &["lambda", "get-account-settings"]);
    let e = err_as(
        &s,
        &narrowed,
        &["lambda", "list-functions"],
        "AccessDeniedException",
    );
    assert!(e.contains("session policy"), "{e}");
    // A managed session policy does the same; it cannot widen the role either.
    s.aws(&[
        "iam",
        "create-policy",
        "--policy-name",
        "list-only",
        "--policy-document",
        &json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"lambda:ListFunctions","Resource":"*"},
            {"Effect":"Allow","Action":"iam:ListUsers","Resource":"*"}]})
        .to_string(),
    ]);
    let listing = session_creds(&ok_as(
        &s,
        &carol,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "list",
            "--policy-arns",
            &format!("arn=arn:aws:iam::{ACCOUNT}:policy/list-only"),
        ],
    ));
    ok_as(&s, &listing, &["lambda", "list-functions"]);
    err_as(
        &s,
        &listing,
        &["lambda", "get-account-settings"],
        "AccessDeniedException",
    );
    err_as(&s, &listing, &["iam", "list-users"], "AccessDenied");
    // Session policies bind iam:PassRole too: the role may pass roles, the session may not.
    put_role_policy(&s, "deployer", "pass", &allow("iam:PassRole", EXEC_ROLE));
    let zip = format!("fileb://{}", fixture_zip().display());
    let create = [
        "lambda",
        "create-function",
        "--function-name",
        "via-session",
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &zip,
    ];
    let creator = session_creds(&ok_as(
        &s,
        &carol,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "creator",
            "--policy",
            &allow("lambda:CreateFunction", "*").to_string(),
        ],
    ));
    let e = err_as(&s, &creator, &create, "AccessDeniedException");
    assert!(e.contains("iam:PassRole"), "{e}");
    let full = session_creds(&ok_as(
        &s,
        &carol,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "full",
        ],
    ));
    ok_as(&s, &full, &create);

    // Session tags need sts:TagSession and become aws:PrincipalTag values.
    put_role_policy(
        &s,
        "deployer",
        "lambda",
        &json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:ListFunctions",
            "Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"blue"}}}]}),
    );
    let tagged = |team: &str| {
        aws_as(
            &s,
            &carol,
            &[
                "sts",
                "assume-role",
                "--role-arn",
                &role_arn,
                "--role-session-name",
                team,
                "--tags",
                &format!("Key=team,Value={team}"),
            ],
        )
    };
    // With the trust policy naming the account, carol's own policy must allow tagging too.
    let out = tagged("blue");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(AccessDenied)") && stderr.contains("sts:TagSession"),
        "{stderr}"
    );
    put_user_policy(
        &s,
        "carol",
        "assume",
        &json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Action":["sts:AssumeRole","sts:TagSession"],"Resource":role_arn}]}),
    );
    let parse = |out: Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let blue = parse(tagged("blue"));
    ok_as(&s, &session_creds(&blue), &["lambda", "list-functions"]);
    let red = parse(tagged("red"));
    err_as(
        &s,
        &session_creds(&red),
        &["lambda", "list-functions"],
        "AccessDeniedException",
    );
    s.aws(&[
        "iam",
        "update-assume-role-policy",
        "--role-name",
        "deployer",
        "--policy-document",
        &trusting(
            json!({"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}),
            &["sts:AssumeRole"],
        )
        .to_string(),
    ]);
    let out = tagged("blue");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(AccessDenied)") && stderr.contains("sts:TagSession"),
        "{stderr}"
    );

    // ExternalId is a condition key of the trust policy; unsupported parameters are refused.
    s.aws(&[
        "iam",
        "update-assume-role-policy",
        "--role-name",
        "deployer",
        "--policy-document",
        &json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":bob_arn},"Action":"sts:AssumeRole",
            "Condition":{"StringEquals":{"sts:ExternalId":"open-sesame"}}}]})
        .to_string(),
    ]);
    let external = |extra: &[&str]| {
        let mut args = vec![
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "ext",
        ];
        args.extend_from_slice(extra);
        aws_as(&s, &bob, &args)
    };
    assert!(!external(&[]).status.success());
    assert!(external(&["--external-id", "open-sesame"]).status.success());
    let out = external(&[
        "--external-id",
        "open-sesame",
        "--source-identity",
        "someone",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(ValidationError)") && stderr.contains("SourceIdentity"),
        "{stderr}"
    );

    // boto3 parses AssumeRole's response and its errors.
    boto3(
        &s,
        &[
            ("BOB_KEY", &bob.key),
            ("BOB_SECRET", &bob.secret),
            ("ROLE", &role_arn),
        ],
        r#"
sts = client("sts", BOB_KEY, BOB_SECRET)
r = sts.assume_role(RoleArn=ROLE, RoleSessionName="boto", ExternalId="open-sesame", DurationSeconds=900)
c = r["Credentials"]
assert c["AccessKeyId"].startswith("ASIA") and r["AssumedRoleUser"]["Arn"].endswith("/deployer/boto"), r
me = client("sts", c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]).get_caller_identity()
assert me["Arn"] == r["AssumedRoleUser"]["Arn"], me
expect_error("AccessDenied", sts.assume_role, RoleArn=ROLE, RoleSessionName="boto")
expect_error("ValidationError", sts.assume_role, RoleArn=ROLE, RoleSessionName="boto", ExternalId="open-sesame", DurationSeconds=100000)
"#,
    );
}

#[test]
fn aws_managed_policies_are_attachable_listable_and_read_only() {
    let s = Server::start();
    let basic = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";
    // The Lambda tutorial's step.
    s.aws(&[
        "iam",
        "attach-role-policy",
        "--role-name",
        "lambda-exec",
        "--policy-arn",
        basic,
    ]);
    let attached = s.aws(&[
        "iam",
        "list-attached-role-policies",
        "--role-name",
        "lambda-exec",
    ]);
    assert_eq!(attached["AttachedPolicies"][0]["PolicyArn"], basic);
    assert_eq!(
        attached["AttachedPolicies"][0]["PolicyName"],
        "AWSLambdaBasicExecutionRole"
    );
    let aws = s.aws(&["iam", "list-policies", "--scope", "AWS"]);
    let names: Vec<&str> = aws["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["PolicyName"].as_str().unwrap())
        .collect();
    for want in [
        "AWSLambdaBasicExecutionRole",
        "AWSLambdaVPCAccessExecutionRole",
        "AWSLambda_ReadOnlyAccess",
        "AWSLambda_FullAccess",
        "AWSLambdaRole",
        "IAMReadOnlyAccess",
        "IAMFullAccess",
        "AdministratorAccess",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    s.aws(&[
        "iam",
        "create-policy",
        "--policy-name",
        "mine",
        "--policy-document",
        &allow("lambda:GetFunction", "*").to_string(),
    ]);
    let local = s.aws(&["iam", "list-policies", "--scope", "Local"]);
    assert_eq!(local["Policies"].as_array().unwrap().len(), 1, "{local}");
    let attached_only = s.aws(&["iam", "list-policies", "--only-attached"]);
    assert_eq!(attached_only["Policies"][0]["Arn"], basic);
    assert_eq!(attached_only["Policies"][0]["AttachmentCount"], 1);

    let vpc = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole";
    let got = s.aws(&["iam", "get-policy", "--policy-arn", vpc]);
    assert_eq!(got["Policy"]["DefaultVersionId"], "v3");
    assert_eq!(got["Policy"]["Path"], "/service-role/");
    let version = s.aws(&[
        "iam",
        "get-policy-version",
        "--policy-arn",
        vpc,
        "--version-id",
        "v3",
    ]);
    let doc = &version["PolicyVersion"]["Document"];
    assert_eq!(
        doc["Statement"][0]["Sid"],
        "AWSLambdaVPCAccessExecutionPermissions"
    );
    assert!(doc["Statement"][0]["Action"]
        .as_array()
        .unwrap()
        .contains(&json!("ec2:CreateNetworkInterface")));
    assert_eq!(version["PolicyVersion"]["IsDefaultVersion"], true);

    // Nobody may change or delete them, not even the administrator.
    let full = "arn:aws:iam::aws:policy/AWSLambda_FullAccess";
    assert!(s
        .aws_err(&["iam", "delete-policy", "--policy-arn", full])
        .contains("(AccessDenied)"));
    assert!(s
        .aws_err(&[
            "iam",
            "create-policy-version",
            "--policy-arn",
            full,
            "--policy-document",
            &allow("*", "*").to_string(),
            "--set-as-default",
        ])
        .contains("(AccessDenied)"));
    assert!(s
        .aws_err(&[
            "iam",
            "set-default-policy-version",
            "--policy-arn",
            full,
            "--version-id",
            "v1",
        ])
        .contains("(AccessDenied)"));
    // An AWS policy Warden does not provide is named as missing.
    assert!(s
        .aws_err(&[
            "iam",
            "attach-role-policy",
            "--role-name",
            "lambda-exec",
            "--policy-arn",
            "arn:aws:iam::aws:policy/AmazonS3FullAccess",
        ])
        .contains("(NoSuchEntity)"));

    // They grant what they say.
    let reader = user_with_key(&s, "reader");
    s.aws(&[
        "iam",
        "attach-user-policy",
        "--user-name",
        "reader",
        "--policy-arn",
        "arn:aws:iam::aws:policy/AWSLambda_ReadOnlyAccess",
    ]);
    ok_as(&s, &reader, &["lambda", "list-functions"]);
    let zip = format!("fileb://{}", fixture_zip().display());
    let create = [
        "lambda",
        "create-function",
        "--function-name",
        "by-dev",
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &zip,
    ];
    err_as(&s, &reader, &create, "AccessDeniedException");
    err_as(&s, &reader, &["iam", "list-users"], "AccessDenied");
    let dev = user_with_key(&s, "dev");
    s.aws(&[
        "iam",
        "attach-user-policy",
        "--user-name",
        "dev",
        "--policy-arn",
        full,
    ]);
    // AWSLambda_FullAccess passes roles only to Lambda (iam:PassedToService), which is
    // what create-function does.
    ok_as(&s, &dev, &create);
    ok_as(&s, &dev, &["iam", "list-roles"]);
    err_as(
        &s,
        &dev,
        &["iam", "create-user", "--user-name", "x"],
        "AccessDenied",
    );
    let auditor = user_with_key(&s, "auditor");
    s.aws(&[
        "iam",
        "attach-user-policy",
        "--user-name",
        "auditor",
        "--policy-arn",
        "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
    ]);
    ok_as(&s, &auditor, &["iam", "list-users"]);
    ok_as(&s, &auditor, &["iam", "get-policy", "--policy-arn", full]);
    err_as(
        &s,
        &auditor,
        &["iam", "create-user", "--user-name", "x"],
        "AccessDenied",
    );
}

#[test]
fn policy_versions_can_be_created_listed_switched_and_deleted() {
    let s = Server::start();
    let v1 = allow("lambda:ListFunctions", "*");
    let created = s.aws(&[
        "iam",
        "create-policy",
        "--policy-name",
        "lister",
        "--policy-document",
        &v1.to_string(),
    ]);
    let arn = created["Policy"]["Arn"].as_str().unwrap().to_owned();
    let user = user_with_key(&s, "u");
    s.aws(&[
        "iam",
        "attach-user-policy",
        "--user-name",
        "u",
        "--policy-arn",
        &arn,
    ]);
    ok_as(&s, &user, &["lambda", "list-functions"]);

    // v2 becomes the default at once: the user's permissions follow it.
    let v2 = allow("lambda:GetAccountSettings", "*");
    let made = s.aws(&[
        "iam",
        "create-policy-version",
        "--policy-arn",
        &arn,
        "--policy-document",
        &v2.to_string(),
        "--set-as-default",
    ]);
    assert_eq!(made["PolicyVersion"]["VersionId"], "v2");
    assert_eq!(made["PolicyVersion"]["IsDefaultVersion"], true);
    err_as(
        &s,
        &user,
        &["lambda", "list-functions"],
        "AccessDeniedException",
    );
    ok_as(&s, &user, &["lambda", "get-account-settings"]);
    for n in 3..=5 {
        let v = s.aws(&[
            "iam",
            "create-policy-version",
            "--policy-arn",
            &arn,
            "--policy-document",
            &v1.to_string(),
        ]);
        assert_eq!(v["PolicyVersion"]["VersionId"], format!("v{n}"));
        assert_eq!(v["PolicyVersion"]["IsDefaultVersion"], false);
    }
    // At most five.
    assert!(s
        .aws_err(&[
            "iam",
            "create-policy-version",
            "--policy-arn",
            &arn,
            "--policy-document",
            &v1.to_string(),
        ])
        .contains("(LimitExceeded)"));
    let listed = s.aws(&["iam", "list-policy-versions", "--policy-arn", &arn]);
    let ids: Vec<(&str, bool)> = listed["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["VersionId"].as_str().unwrap(),
                v["IsDefaultVersion"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("v5", false),
            ("v4", false),
            ("v3", false),
            ("v2", true),
            ("v1", false)
        ]
    );
    let got = s.aws(&[
        "iam",
        "get-policy-version",
        "--policy-arn",
        &arn,
        "--version-id",
        "v1",
    ]);
    assert_eq!(got["PolicyVersion"]["Document"], v1);
    assert_eq!(got["PolicyVersion"]["IsDefaultVersion"], false);
    // The default version cannot be deleted; others can, and ids are not reused.
    assert!(s
        .aws_err(&[
            "iam",
            "delete-policy-version",
            "--policy-arn",
            &arn,
            "--version-id",
            "v2",
        ])
        .contains("(DeleteConflict)"));
    s.aws(&[
        "iam",
        "delete-policy-version",
        "--policy-arn",
        &arn,
        "--version-id",
        "v5",
    ]);
    let v6 = s.aws(&[
        "iam",
        "create-policy-version",
        "--policy-arn",
        &arn,
        "--policy-document",
        &v1.to_string(),
    ]);
    assert_eq!(v6["PolicyVersion"]["VersionId"], "v6");
    s.aws(&[
        "iam",
        "set-default-policy-version",
        "--policy-arn",
        &arn,
        "--version-id",
        "v1",
    ]);
    assert_eq!(
        s.aws(&["iam", "get-policy", "--policy-arn", &arn])["Policy"]["DefaultVersionId"],
        "v1"
    );
    ok_as(&s, &user, &["lambda", "list-functions"]);
    for (bad, code) in [("v9", "NoSuchEntity"), ("version-two", "ValidationError")] {
        assert!(s
            .aws_err(&[
                "iam",
                "set-default-policy-version",
                "--policy-arn",
                &arn,
                "--version-id",
                bad,
            ])
            .contains(&format!("({code})")));
    }
    // A malformed version is refused with the grammar's message.
    assert!(s
        .aws_err(&[
            "iam",
            "create-policy-version",
            "--policy-arn",
            &arn,
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*"}]}"#,
        ])
        .contains("(MalformedPolicyDocument)"));
    // Deleting the policy needs its other versions gone first, then it is detached.
    s.aws(&[
        "iam",
        "detach-user-policy",
        "--user-name",
        "u",
        "--policy-arn",
        &arn,
    ]);
    assert!(s
        .aws_err(&["iam", "delete-policy", "--policy-arn", &arn])
        .contains("(DeleteConflict)"));
    for v in ["v2", "v3", "v4", "v6"] {
        s.aws(&[
            "iam",
            "delete-policy-version",
            "--policy-arn",
            &arn,
            "--version-id",
            v,
        ]);
    }
    s.aws(&["iam", "delete-policy", "--policy-arn", &arn]);
    // The same through boto3, whose parser reads the version shapes.
    let admin = s.admin();
    boto3(
        &s,
        &[("KEY", &admin.key), ("SECRET", &admin.secret)],
        r#"
iam = client("iam", KEY, SECRET)
arn = iam.create_policy(PolicyName="b", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"}]}))["Policy"]["Arn"]
v = iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}), SetAsDefault=True)["PolicyVersion"]
assert v["VersionId"] == "v2" and v["IsDefaultVersion"], v
got = iam.get_policy_version(PolicyArn=arn, VersionId="v2")["PolicyVersion"]
assert got["Document"]["Statement"][0]["Effect"] == "Deny", got
assert [x["VersionId"] for x in iam.list_policy_versions(PolicyArn=arn)["Versions"]] == ["v2", "v1"]
expect_error("DeleteConflict", iam.delete_policy_version, PolicyArn=arn, VersionId="v2")
"#,
    );
}

#[test]
fn roles_and_users_can_be_updated_untagged_and_their_tags_listed() {
    let s = Server::start();
    create_role(
        &s,
        "app",
        &trusting(
            json!({"Service": "lambda.amazonaws.com"}),
            &["sts:AssumeRole"],
        ),
        &[
            "--description",
            "before",
            "--tags",
            "Key=team,Value=blue",
            "Key=env,Value=dev",
        ],
    );
    s.aws(&[
        "iam",
        "update-role",
        "--role-name",
        "app",
        "--description",
        "after",
        "--max-session-duration",
        "7200",
    ]);
    let role = &s.aws(&["iam", "get-role", "--role-name", "app"])["Role"];
    assert_eq!(role["Description"], "after");
    assert_eq!(role["MaxSessionDuration"], 7200);
    // Only what is given changes.
    s.aws(&[
        "iam",
        "update-role",
        "--role-name",
        "APP",
        "--description",
        "again",
    ]);
    let role = &s.aws(&["iam", "get-role", "--role-name", "app"])["Role"];
    assert_eq!(
        (
            role["Description"].as_str(),
            role["MaxSessionDuration"].as_u64()
        ),
        (Some("again"), Some(7200))
    );
    let described = s.aws(&[
        "iam",
        "update-role-description",
        "--role-name",
        "app",
        "--description",
        "described",
    ]);
    assert_eq!(described["Role"]["Description"], "described");
    // The CLI checks the range itself, so these go out raw.
    let admin = s.admin();
    for bad in ["100", "50000", "many"] {
        let (status, _, body) = query_as(
            &s,
            Some(&admin),
            "iam",
            &[
                ("Action", "UpdateRole"),
                ("RoleName", "app"),
                ("MaxSessionDuration", bad),
                ("Version", "2010-05-08"),
            ],
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("<Code>ValidationError</Code>"), "{body}");
    }
    assert_eq!(
        s.aws(&["iam", "get-role", "--role-name", "app"])["Role"]["MaxSessionDuration"],
        7200
    );
    assert!(s
        .aws_err(&[
            "iam",
            "update-role",
            "--role-name",
            "nope",
            "--description",
            "x"
        ])
        .contains("(NoSuchEntity)"));

    let tags = s.aws(&["iam", "list-role-tags", "--role-name", "app"]);
    assert_eq!(
        tags["Tags"],
        json!([{"Key":"team","Value":"blue"},{"Key":"env","Value":"dev"}])
    );
    s.aws(&[
        "iam",
        "untag-role",
        "--role-name",
        "app",
        "--tag-keys",
        "team",
        "absent",
    ]);
    let tags = s.aws(&["iam", "list-role-tags", "--role-name", "app"]);
    assert_eq!(tags["Tags"], json!([{"Key":"env","Value":"dev"}]));

    s.aws(&[
        "iam",
        "create-user",
        "--user-name",
        "tagged",
        "--tags",
        "Key=a,Value=1",
        "Key=b,Value=2",
    ]);
    let page = s.aws(&[
        "iam",
        "list-user-tags",
        "--user-name",
        "tagged",
        "--max-items",
        "1",
    ]);
    assert_eq!(page["Tags"], json!([{"Key":"a","Value":"1"}]));
    assert!(page["NextToken"].is_string(), "{page}");
    s.aws(&[
        "iam",
        "untag-user",
        "--user-name",
        "tagged",
        "--tag-keys",
        "a",
    ]);
    let tags = s.aws(&["iam", "list-user-tags", "--user-name", "tagged"]);
    assert_eq!(tags["Tags"], json!([{"Key":"b","Value":"2"}]));
    assert!(s
        .aws_err(&["iam", "list-user-tags", "--user-name", "nobody"])
        .contains("(NoSuchEntity)"));
}

#[test]
fn access_key_last_use_is_recorded_and_survives_a_restart() {
    let mut s = Server::start();
    let user = user_with_key(&s, "worker");
    let last_used = |s: &Server| {
        s.aws(&[
            "iam",
            "get-access-key-last-used",
            "--access-key-id",
            &user.key,
        ])
    };
    let never = last_used(&s);
    assert_eq!(never["UserName"], "worker");
    assert_eq!(never["AccessKeyLastUsed"]["ServiceName"], "N/A");
    assert_eq!(never["AccessKeyLastUsed"]["Region"], "N/A");
    assert!(never["AccessKeyLastUsed"].get("LastUsedDate").is_none());
    // A signed call records the use (even one the caller is not allowed to make).
    err_as(
        &s,
        &user,
        &["lambda", "list-functions"],
        "AccessDeniedException",
    );
    let used = last_used(&s);
    assert_eq!(used["AccessKeyLastUsed"]["ServiceName"], "lambda");
    assert_eq!(used["AccessKeyLastUsed"]["Region"], "us-east-1");
    let when = used["AccessKeyLastUsed"]["LastUsedDate"]
        .as_str()
        .unwrap()
        .to_owned();
    // A graceful stop writes what is pending.
    s.stop();
    s.restart();
    let again = last_used(&s);
    assert_eq!(again["AccessKeyLastUsed"]["LastUsedDate"], when.as_str());
    assert_eq!(again["AccessKeyLastUsed"]["ServiceName"], "lambda");
    // The user may ask about its own key only if allowed; unknown keys are NoSuchEntity.
    err_as(
        &s,
        &user,
        &[
            "iam",
            "get-access-key-last-used",
            "--access-key-id",
            &user.key,
        ],
        "AccessDenied",
    );
    assert!(s
        .aws_err(&[
            "iam",
            "get-access-key-last-used",
            "--access-key-id",
            "AKIAIOSFODNN7EXAMPLE",
        ])
        .contains("(NoSuchEntity)"));
}

#[test]
fn calls_for_services_warden_does_not_serve_name_the_service() {
    let s = Server::start();
    let admin = s.admin();
    boto3(
        &s,
        &[("KEY", &admin.key), ("SECRET", &admin.secret)],
        r#"
for service, call, kw in [
    ("s3", "list_buckets", {}),
    ("s3", "put_object", {"Bucket": "b", "Key": "k", "Body": b"x"}),
    ("dynamodb", "list_tables", {}),
    ("sqs", "list_queues", {}),
    ("firehose", "list_delivery_streams", {}),
    ("kinesis", "list_streams", {}),
]:
    c = client(service, KEY, SECRET)
    r = expect_error("UnknownService", getattr(c, call), **kw)
    msg = r["Error"]["Message"]
    assert f"`{c.meta.service_model.signing_name}`" in msg and "does not serve" in msg, (service, r)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 400, r
"#,
    );
    let out = s.aws_raw(&["s3api", "list-buckets"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(UnknownService)") && stderr.contains("`s3`"),
        "{stderr}"
    );
    // Even unsigned-looking garbage for another service is not mistaken for IAM.
    let (status, _, body) = send(
        &s.endpoint,
        None,
        "GET",
        "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request",
        &[],
        b"",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("<Code>UnknownService</Code>"));
}
