//! Least privilege: SigV4 on every call, IAM users, roles and policies through the real
//! AWS CLI, function resource policies, and execution-role credentials inside functions.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{
    aws_as, python_zip, send, user_with_key, Credentials, Server, ACCOUNT, EXEC_ROLE,
};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_request_is_authenticated() {
    let s = Server::start();
    let mode = std::fs::metadata(s.data_dir.join("credentials"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the bootstrap credentials are private");

    let (status, headers, body) = s.http_unsigned("GET", "/2015-03-31/functions", &[], b"");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(headers
        .iter()
        .any(|(k, v)| k == "x-amzn-errortype" && v == "MissingAuthenticationTokenException"));

    let stranger = Credentials {
        key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret: "x".repeat(40),
        token: None,
    };
    let out = aws_as(&s, &stranger, &["lambda", "list-functions"]);
    assert!(
        stderr(&out).contains("UnrecognizedClientException"),
        "{}",
        stderr(&out)
    );

    let mut wrong_secret = s.admin();
    wrong_secret.secret = "y".repeat(40);
    let out = aws_as(&s, &wrong_secret, &["lambda", "list-functions"]);
    assert!(
        stderr(&out).contains("InvalidSignatureException"),
        "{}",
        stderr(&out)
    );

    // A body altered after signing.
    let admin = s.admin();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/2015-03-31/functions/x/invocations", s.endpoint))
        .body(b"{\"a\":1}".to_vec())
        .unwrap();
    let signing = warden_auth::SigningCredentials {
        access_key_id: admin.key,
        secret_access_key: admin.secret,
        session_token: None,
    };
    warden_auth::sign_request(
        &mut req,
        b"{\"a\":1}",
        &signing,
        "us-east-1",
        "lambda",
        std::time::SystemTime::now(),
    )
    .unwrap();
    *req.body_mut() = b"{\"a\":2}".to_vec();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent.run(req).unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        r.headers().get("x-amzn-errortype").unwrap(),
        "InvalidSignatureException"
    );

    // The admin works, and the secret never appears in what the server prints or stores in logs.
    let me = s.aws(&["sts", "get-caller-identity"]);
    assert_eq!(me["Account"], ACCOUNT);
    assert_eq!(me["Arn"], format!("arn:aws:iam::{ACCOUNT}:user/admin"));
}

#[test]
fn users_get_exactly_their_policies_and_resource_policies() {
    let s = Server::start();
    s.create_fixture("open", &[]);
    s.create_fixture("closed", &[]);
    let bob = user_with_key(&s, "bob");
    let out = aws_as(&s, &bob, &["lambda", "list-functions"]);
    assert!(
        stderr(&out).contains("AccessDeniedException"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("lambda:ListFunctions"),
        "{}",
        stderr(&out)
    );

    let bad = s.aws_err(&["iam", "put-user-policy", "--user-name", "bob", "--policy-name", "p", "--policy-document", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:Get*","Resource":"*","Condition":{"StringEqualz":{"a":"b"}}}]}"#]);
    assert!(bad.contains("MalformedPolicyDocument"), "{bad}");
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Effect": "Allow", "Action": "lambda:GetFunction*", "Resource": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:open") },
            { "Effect": "Allow", "Action": "lambda:CreateFunction", "Resource": "*" },
        ]
    });
    s.aws(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "bob",
        "--policy-name",
        "p",
        "--policy-document",
        &policy.to_string(),
    ]);
    let out = aws_as(
        &s,
        &bob,
        &[
            "lambda",
            "get-function-configuration",
            "--function-name",
            "open",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = aws_as(
        &s,
        &bob,
        &[
            "lambda",
            "get-function-configuration",
            "--function-name",
            "closed",
        ],
    );
    assert!(
        stderr(&out).contains("AccessDeniedException"),
        "{}",
        stderr(&out)
    );

    // Invoke is denied until the function's resource policy names bob.
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let invoke = [
        "lambda",
        "invoke",
        "--function-name",
        "open",
        "--payload",
        "{}",
        tmp.path().to_str().unwrap(),
    ];
    assert!(stderr(&aws_as(&s, &bob, &invoke)).contains("AccessDeniedException"));
    let bob_arn = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let added = s.aws(&[
        "lambda",
        "add-permission",
        "--function-name",
        "open",
        "--statement-id",
        "bob-invokes",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        &bob_arn,
    ]);
    let statement: Value = serde_json::from_str(added["Statement"].as_str().unwrap()).unwrap();
    assert_eq!(statement["Principal"]["AWS"], bob_arn.as_str());
    let out = aws_as(&s, &bob, &invoke);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = s.aws(&["lambda", "get-policy", "--function-name", "open"]);
    assert!(got["Policy"].as_str().unwrap().contains("bob-invokes"));
    let dup = s.aws_err(&[
        "lambda",
        "add-permission",
        "--function-name",
        "open",
        "--statement-id",
        "bob-invokes",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        &bob_arn,
    ]);
    assert!(dup.contains("ResourceConflictException"), "{dup}");
    s.aws(&[
        "lambda",
        "remove-permission",
        "--function-name",
        "open",
        "--statement-id",
        "bob-invokes",
    ]);
    assert!(stderr(&aws_as(&s, &bob, &invoke)).contains("AccessDeniedException"));

    // Anonymous calls work only where a resource policy names `*`, and only for what it allows.
    let anonymous = |s: &Server| {
        s.http_unsigned("POST", "/2015-03-31/functions/open/invocations", &[], b"{}")
            .0
    };
    assert_eq!(anonymous(&s), 403);
    s.aws(&[
        "lambda",
        "add-permission",
        "--function-name",
        "open",
        "--statement-id",
        "public",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "*",
    ]);
    assert_eq!(
        anonymous(&s),
        200,
        "a public function can be invoked unsigned"
    );
    // A function deleted and created again under the same name starts without a policy.
    s.aws(&["lambda", "delete-function", "--function-name", "open"]);
    s.create_fixture("open", &[]);
    assert_eq!(
        anonymous(&s),
        403,
        "the old resource policy is gone with its function"
    );
    s.aws(&[
        "lambda",
        "add-permission",
        "--function-name",
        "open",
        "--statement-id",
        "public",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "*",
    ]);
    assert_eq!(anonymous(&s), 200);
    assert_eq!(
        s.http_unsigned("GET", "/2015-03-31/functions/open", &[], b"")
            .0,
        403,
        "but nothing else"
    );
    s.aws(&[
        "lambda",
        "remove-permission",
        "--function-name",
        "open",
        "--statement-id",
        "public",
    ]);
    assert_eq!(anonymous(&s), 403);

    // Creating a function needs iam:PassRole on its role.
    let zip = format!("fileb://{}", crate::harness::fixture_zip().display());
    let create = [
        "lambda",
        "create-function",
        "--function-name",
        "bobs",
        "--runtime",
        "provided.al2023",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &zip,
    ];
    let out = aws_as(&s, &bob, &create);
    assert!(stderr(&out).contains("iam:PassRole"), "{}", stderr(&out));
    let pass = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:PassRole","Resource":EXEC_ROLE}]});
    s.aws(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "bob",
        "--policy-name",
        "pass",
        "--policy-document",
        &pass.to_string(),
    ]);
    let out = aws_as(&s, &bob, &create);
    assert!(out.status.success(), "{}", stderr(&out));
    // A role Lambda may not assume is refused even to the admin.
    s.ensure_role("not-for-lambda", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#);
    let err = s.aws_err(&[
        "lambda",
        "create-function",
        "--function-name",
        "x",
        "--runtime",
        "provided.al2023",
        "--role",
        &format!("arn:aws:iam::{ACCOUNT}:role/not-for-lambda"),
        "--zip-file",
        &zip,
    ]);
    assert!(err.contains("cannot be assumed by Lambda"), "{err}");

    // An explicit deny wins over the allows.
    let deny = json!({"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"lambda:*","Resource":"*"}]});
    s.aws(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "bob",
        "--policy-name",
        "deny",
        "--policy-document",
        &deny.to_string(),
    ]);
    let out = aws_as(
        &s,
        &bob,
        &[
            "lambda",
            "get-function-configuration",
            "--function-name",
            "open",
        ],
    );
    assert!(stderr(&out).contains("explicit deny"), "{}", stderr(&out));

    // A deactivated key stops working.
    s.aws(&[
        "iam",
        "update-access-key",
        "--user-name",
        "bob",
        "--access-key-id",
        &bob.key,
        "--status",
        "Inactive",
    ]);
    let out = aws_as(&s, &bob, &["sts", "get-caller-identity"]);
    assert!(
        stderr(&out).contains("(InvalidClientTokenId)"),
        "{}",
        stderr(&out)
    );
}

const CALLER: &str = r#"
import json, os, boto3, botocore
def handler(event, context):
    lam = boto3.client("lambda")
    out = {"endpoint": os.environ.get("AWS_ENDPOINT_URL_LAMBDA"),
           "key": os.environ["AWS_ACCESS_KEY_ID"], "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
           "token": os.environ["AWS_SESSION_TOKEN"]}
    try:
        r = lam.invoke(FunctionName=event["target"], Payload=b'{"via":"boto3"}')
        out["result"] = json.loads(r["Payload"].read())
    except botocore.exceptions.ClientError as e:
        out["error"] = e.response["Error"]["Code"]
    return out
"#;

#[test]
fn functions_call_warden_with_exactly_their_roles_permissions() {
    // The credentials and AWS_ENDPOINT_URL_LAMBDA are under test here, in the default sandbox:
    // boto3 reaches the API through the listener in the instance's own network namespace.
    let s = Server::start();
    // boto3 as Lambda's Python runtimes offer it: installed by Warden, not packaged.
    s.install_python_sdk();
    s.create_fixture("target", &[]);
    s.ensure_role("caller-role", crate::harness::LAMBDA_TRUST);
    let zip = python_zip(&[("app.py", CALLER)]);
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "caller",
        "--runtime",
        crate::harness::python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        &format!("arn:aws:iam::{ACCOUNT}:role/caller-role"),
        "--timeout",
        "30",
        // Importing boto3 takes a second or two of CPU: at the default 128 MB (8 % of a
        // core) that may not fit the 10 s init phase on a busy machine; 1,024 MB gets 58 %.
        "--memory-size",
        "1024",
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ]);
    let call = |s: &Server| -> Value {
        let (status, _, body) = s.http(
            "POST",
            "/2015-03-31/functions/caller/invocations",
            &[],
            br#"{"target":"target"}"#,
        );
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    };
    let denied = call(&s);
    assert_eq!(denied["error"], "AccessDeniedException", "{denied}");
    assert!(denied["key"].as_str().unwrap().starts_with("ASIA"));

    let allow = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:target")}]});
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "caller-role",
        "--policy-name",
        "invoke",
        "--policy-document",
        &allow.to_string(),
    ]);
    let allowed = call(&s);
    assert_eq!(allowed["result"], json!({"via": "boto3"}), "{allowed}");

    // The instance's credentials work from outside while it lives, and stop when it ends.
    let creds = Credentials {
        key: allowed["key"].as_str().unwrap().to_owned(),
        secret: allowed["secret"].as_str().unwrap().to_owned(),
        token: Some(allowed["token"].as_str().unwrap().to_owned()),
    };
    let (status, _, _) = send(
        &s.endpoint,
        Some(&creds),
        "POST",
        "/2015-03-31/functions/target/invocations",
        &[],
        b"{}",
    );
    assert_eq!(status, 200, "the role session can invoke the target");
    let (status, _, _) = send(
        &s.endpoint,
        Some(&creds),
        "GET",
        "/2015-03-31/functions",
        &[],
        b"",
    );
    assert_eq!(status, 403, "and nothing else");
    // A configuration change retires the instance; its session is revoked with it.
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "caller",
        "--description",
        "retire",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, headers, _) = send(
            &s.endpoint,
            Some(&creds),
            "POST",
            "/2015-03-31/functions/target/invocations",
            &[],
            b"{}",
        );
        if status == 403 {
            assert!(
                headers
                    .iter()
                    .any(|(k, v)| k == "x-amzn-errortype" && v == "UnrecognizedClientException"),
                "{headers:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "credentials outlived their instance"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn simulate_decides_like_iam() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.json");
    std::fs::write(&policy, r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"lambda:Invoke*","Resource":"arn:aws:lambda:*:*:function:app-*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#).unwrap();
    let run = |extra: &[&str]| -> Value {
        let out = std::process::Command::new(crate::harness::warden_bin())
            .args([
                "iam",
                "simulate",
                "--policy",
                policy.to_str().unwrap(),
                "--action",
                "lambda:InvokeFunction",
            ])
            .args(extra)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let yes = run(&[
        "--resource",
        "arn:aws:lambda:us-east-1:1:function:app-a",
        "--context",
        "aws:SourceIp=10.1.2.3",
    ]);
    assert_eq!(yes["decision"], "allowed");
    assert_eq!(yes["matchedStatements"][0]["sid"], "A");
    let no = run(&[
        "--resource",
        "arn:aws:lambda:us-east-1:1:function:app-a",
        "--context",
        "aws:SourceIp=192.168.0.1",
    ]);
    assert_eq!(no["decision"], "implicitDeny");

    let mut child = std::process::Command::new(crate::harness::warden_bin())
        .args(["iam", "simulate", "--batch"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let p = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let lines = format!(
        "{}\n{}\n",
        json!({"identityPolicies":[serde_json::from_str::<Value>(p).unwrap()],"action":"s3:GetObject","resource":"arn:aws:s3:::b/k"}),
        json!({"identityPolicies":[serde_json::from_str::<Value>(p).unwrap()],"action":"lambda:GetFunction","resource":"*"}),
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let results: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["decision"], "explicitDeny");
    assert_eq!(results[1]["decision"], "allowed");
}
