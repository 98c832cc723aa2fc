//! Privilege escalation attempts a narrow user would try, each of which must fail: handing
//! out configuration changes through a function policy, changing a function's role without
//! a signature or without `iam:PassRole` on the role it resolves to, spelling a role
//! ARN in another case to slip past PassRole, and instances getting credentials of a
//! role that no longer trusts Lambda.

use serde_json::{json, Value};

use crate::harness::{
    aws_as, ok_as, user_with_policy, Credentials, Server, ACCOUNT, EXEC_ROLE, LAMBDA_TRUST,
};

const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the CLI as `who`, expecting failure; returns stderr.
fn err_as(s: &Server, who: &Credentials, args: &[&str]) -> String {
    let out = aws_as(s, who, args);
    assert!(
        !out.status.success(),
        "aws {args:?} unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr(&out)
}

/// A role Lambda may assume that is allowed everything.
fn power_role(s: &Server, name: &str) -> String {
    s.ensure_role(name, LAMBDA_TRUST);
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        name,
        "--policy-name",
        "all",
        "--policy-document",
        ADMIN_POLICY,
    ]);
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}")
}

fn create_args<'a>(name: &'a str, role: &'a str, zip: &'a str) -> Vec<&'a str> {
    vec![
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        role,
        "--zip-file",
        zip,
    ]
}

fn role_of(s: &Server, function: &str) -> String {
    s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        function,
    ])["Role"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn error_type(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(k, _)| k == "x-amzn-errortype")
        .map(|(_, v)| v.as_str())
}

/// The attack of the review: a user allowed to create, add permissions to and invoke its
/// own functions, and to pass the harmless role, tries to give its function the `power`
/// role through the function policy and an unsigned request.
#[test]
fn a_narrow_user_cannot_become_administrator() {
    let s = Server::start();
    let power = power_role(&s, "power");
    let eve = user_with_policy(
        &s,
        "eve",
        &json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["lambda:CreateFunction","lambda:AddPermission","lambda:InvokeFunction"],
             "Resource":function_arn("eve-*")},
            {"Effect":"Allow","Action":"iam:PassRole","Resource":EXEC_ROLE}]}),
    );
    let zip = format!("fileb://{}", crate::harness::fixture_zip().display());
    ok_as(&s, &eve, &create_args("eve-f", EXEC_ROLE, &zip));

    // A function policy cannot hand out configuration changes, in any spelling.
    for action in [
        "lambda:UpdateFunctionConfiguration",
        "lambda:updatefunctionconfiguration",
        "lambda:AddPermission",
        "lambda:RemovePermission",
        "lambda:CreateFunction",
        "lambda:Update*",
        "iam:PassRole",
    ] {
        let err = err_as(
            &s,
            &eve,
            &[
                "lambda",
                "add-permission",
                "--function-name",
                "eve-f",
                "--statement-id",
                "open",
                "--action",
                action,
                "--principal",
                "*",
            ],
        );
        assert!(
            err.contains("InvalidParameterValueException"),
            "{action}: {err}"
        );
        assert!(err.contains(action), "the error names `{action}`: {err}");
    }
    assert!(
        s.aws_err(&["lambda", "get-policy", "--function-name", "eve-f"])
            .contains("ResourceNotFoundException"),
        "nothing was stored"
    );

    // `lambda:*` for everyone is accepted (as by Lambda), but it grants only what a function
    // policy can grant, and an unsigned caller only invoking.
    ok_as(
        &s,
        &eve,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "eve-f",
            "--statement-id",
            "all",
            "--action",
            "lambda:*",
            "--principal",
            "*",
        ],
    );
    let body = json!({ "Role": power }).to_string();
    let (status, headers, reply) = s.http_unsigned(
        "PUT",
        "/2015-03-31/functions/eve-f/configuration",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(
        error_type(&headers),
        Some("MissingAuthenticationTokenException")
    );
    assert_eq!(role_of(&s, "eve-f"), EXEC_ROLE);

    // Signed, eve is refused too: the function policy does not grant configuration changes.
    let err = err_as(
        &s,
        &eve,
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "eve-f",
            "--role",
            &power,
        ],
    );
    assert!(err.contains("AccessDeniedException"), "{err}");
    assert!(err.contains("lambda:UpdateFunctionConfiguration"), "{err}");
    assert_eq!(role_of(&s, "eve-f"), EXEC_ROLE);

    // Every other unsigned request is refused, whatever the function policy says.
    for (method, path, body) in [
        ("GET", "/2015-03-31/functions/eve-f", ""),
        ("GET", "/2015-03-31/functions/eve-f/configuration", ""),
        ("GET", "/2015-03-31/functions/eve-f/policy", ""),
        ("DELETE", "/2015-03-31/functions/eve-f/policy/all", ""),
        (
            "POST",
            "/2015-03-31/functions/eve-f/policy",
            r#"{"StatementId":"x","Action":"lambda:InvokeFunction","Principal":"*"}"#,
        ),
        ("POST", "/2015-03-31/functions/eve-f/versions", "{}"),
        (
            "PUT",
            "/2017-10-31/functions/eve-f/concurrency",
            r#"{"ReservedConcurrentExecutions":0}"#,
        ),
        ("DELETE", "/2015-03-31/functions/eve-f", ""),
    ] {
        let (status, headers, reply) = s.http_unsigned(
            method,
            path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(
            (status, error_type(&headers)),
            (403, Some("MissingAuthenticationTokenException")),
            "{method} {path}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    // Invoking, synchronously or not, is what `*` is for.
    let (status, _, reply) = s.http_unsigned(
        "POST",
        "/2015-03-31/functions/eve-f/invocations",
        &[],
        br#"{"hi":1}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(
        serde_json::from_slice::<Value>(&reply).unwrap(),
        json!({"hi":1})
    );
    let (status, _, _) = s.http_unsigned(
        "POST",
        "/2015-03-31/functions/eve-f/invocations",
        &[("x-amz-invocation-type", "Event")],
        b"{}",
    );
    assert_eq!(status, 202);
    // The function and its policy are intact.
    assert_eq!(role_of(&s, "eve-f"), EXEC_ROLE);
    let policy = s.aws(&["lambda", "get-policy", "--function-name", "eve-f"]);
    assert!(policy["Policy"].as_str().unwrap().contains("\"all\""));
}

/// Resource policies written before AddPermission checked its action, or by hand, grant
/// only what a function policy may grant.
#[test]
fn stored_function_policies_grant_only_what_add_permission_may_write() {
    let mut s = Server::start();
    s.create_fixture("legacy", &[]);
    s.ensure_role("power", LAMBDA_TRUST);
    let mallory = user_with_policy(
        &s,
        "mallory",
        &json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"iam:PassRole","Resource":"*"}]}),
    );
    s.aws(&[
        "lambda",
        "add-permission",
        "--function-name",
        "legacy",
        "--statement-id",
        "readers",
        "--action",
        "lambda:GetFunctionConfiguration",
        "--principal",
        &format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
    ]);
    // What an older Warden stored: configuration changes and permissions for everyone.
    s.stop();
    let wide = json!({"Version":"2012-10-17","Id":"default","Statement":[
        {"Sid":"readers","Effect":"Allow","Principal":{"AWS":format!("arn:aws:iam::{ACCOUNT}:user/mallory")},
         "Action":"lambda:GetFunctionConfiguration","Resource":function_arn("legacy")},
        {"Sid":"config","Effect":"Allow","Principal":"*",
         "Action":["lambda:UpdateFunctionConfiguration","lambda:AddPermission"],"Resource":function_arn("legacy")}]});
    let script = format!(
        "import sqlite3\nc = sqlite3.connect({db:?})\nn = c.execute('UPDATE function_policies SET document = ? WHERE function = ?', ({doc:?}, 'legacy')).rowcount\nc.commit()\nassert n == 1, n\n",
        db = s.data_dir.join("warden.db").display().to_string(),
        doc = wide.to_string(),
    );
    s.python(&script);
    s.restart();

    // What the function policy may grant still works...
    let got = ok_as(
        &s,
        &mallory,
        &[
            "lambda",
            "get-function-configuration",
            "--function-name",
            "legacy",
        ],
    );
    assert_eq!(got["Role"], EXEC_ROLE);
    // ...what it may not grant is ignored, signed or not.
    let err = err_as(
        &s,
        &mallory,
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "legacy",
            "--role",
            &format!("arn:aws:iam::{ACCOUNT}:role/power"),
        ],
    );
    assert!(err.contains("AccessDeniedException"), "{err}");
    assert!(err.contains("lambda:UpdateFunctionConfiguration"), "{err}");
    let err = err_as(
        &s,
        &mallory,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "legacy",
            "--statement-id",
            "mine",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "*",
        ],
    );
    assert!(err.contains("AccessDeniedException"), "{err}");
    let (status, _, _) = s.http_unsigned(
        "PUT",
        "/2015-03-31/functions/legacy/configuration",
        &[("content-type", "application/json")],
        br#"{"Description":"changed"}"#,
    );
    assert_eq!(status, 403);
    assert_eq!(role_of(&s, "legacy"), EXEC_ROLE);
}

/// PassRole is decided on the role a name resolves to, and the function stores that
/// role's canonical ARN.
#[test]
fn role_arn_spelling_cannot_slip_past_pass_role() {
    let s = Server::start();
    let power = power_role(&s, "power");
    s.ensure_role("app-runner", LAMBDA_TRUST);
    let zip = format!("fileb://{}", crate::harness::fixture_zip().display());
    let upper = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
    let mallory = user_with_policy(
        &s,
        "mallory",
        &json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"lambda:*","Resource":function_arn("mal-*")},
            {"Effect":"Allow","Action":"iam:PassRole","Resource":"*"},
            {"Effect":"Deny","Action":"iam:PassRole","Resource":power}]}),
    );
    for spelling in ["POWER", "Power", "powER"] {
        let err = err_as(&s, &mallory, &create_args("mal-f", &upper(spelling), &zip));
        assert!(err.contains("AccessDeniedException"), "{spelling}: {err}");
        assert!(err.contains("iam:PassRole"), "{err}");
        assert!(err.contains(&power), "decided on the canonical ARN: {err}");
    }
    assert!(s
        .aws_err(&["lambda", "get-function", "--function-name", "mal-f"])
        .contains("ResourceNotFoundException"));
    // Through an update as well.
    ok_as(&s, &mallory, &create_args("mal-g", EXEC_ROLE, &zip));
    let err = err_as(
        &s,
        &mallory,
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "mal-g",
            "--role",
            &upper("POWER"),
        ],
    );
    assert!(err.contains("iam:PassRole"), "{err}");
    assert_eq!(role_of(&s, "mal-g"), EXEC_ROLE);

    // An Allow on `role/App*` does not admit `App-runner` for the role `app-runner`.
    let app = user_with_policy(
        &s,
        "app",
        &json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"lambda:*","Resource":function_arn("app-*")},
            {"Effect":"Allow","Action":"iam:PassRole","Resource":upper("App*")}]}),
    );
    let err = err_as(&s, &app, &create_args("app-f", &upper("App-runner"), &zip));
    assert!(err.contains("iam:PassRole"), "{err}");
    assert!(err.contains(&upper("app-runner")), "{err}");

    // A caller allowed the canonical ARN may spell it otherwise; the canonical ARN is stored.
    let runner = user_with_policy(
        &s,
        "runner",
        &json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"lambda:*","Resource":function_arn("run-*")},
            {"Effect":"Allow","Action":"iam:PassRole","Resource":upper("app-runner")}]}),
    );
    let created = ok_as(
        &s,
        &runner,
        &create_args("run-f", &upper("APP-Runner"), &zip),
    );
    assert_eq!(created["Role"], upper("app-runner"));
    assert_eq!(role_of(&s, "run-f"), upper("app-runner"));
    let updated = ok_as(
        &s,
        &runner,
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "run-f",
            "--role",
            &upper("App-Runner"),
        ],
    );
    assert_eq!(updated["Role"], upper("app-runner"));
    // A role that does not exist is refused as Lambda refuses it.
    let err = s.aws_err(&create_args("x", &upper("nobody"), &zip));
    assert!(err.contains("InvalidParameterValueException"), "{err}");
    assert!(err.contains("cannot be assumed by Lambda"), "{err}");
}

/// IAM decides on the canonical ARN of the user, role or policy a request names, however
/// the request spells the name.
#[test]
fn iam_names_are_authorized_as_the_entities_they_resolve_to() {
    let s = Server::start();
    s.ensure_role("power", LAMBDA_TRUST);
    let carol = user_with_policy(
        &s,
        "carol",
        &json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"iam:*","Resource":"*"},
            {"Effect":"Deny","Action":"iam:*","Resource":[
                format!("arn:aws:iam::{ACCOUNT}:user/admin"),
                format!("arn:aws:iam::{ACCOUNT}:role/power")]}]}),
    );
    for name in ["ADMIN", "Admin", "admin"] {
        let err = err_as(
            &s,
            &carol,
            &[
                "iam",
                "put-user-policy",
                "--user-name",
                name,
                "--policy-name",
                "mine",
                "--policy-document",
                ADMIN_POLICY,
            ],
        );
        assert!(err.contains("AccessDenied"), "{name}: {err}");
        let err = err_as(
            &s,
            &carol,
            &["iam", "create-access-key", "--user-name", name],
        );
        assert!(err.contains("AccessDenied"), "{name}: {err}");
    }
    for name in ["POWER", "Power"] {
        let err = err_as(
            &s,
            &carol,
            &[
                "iam",
                "put-role-policy",
                "--role-name",
                name,
                "--policy-name",
                "mine",
                "--policy-document",
                ADMIN_POLICY,
            ],
        );
        assert!(err.contains("AccessDenied"), "{name}: {err}");
        let err = err_as(
            &s,
            &carol,
            &[
                "iam",
                "update-assume-role-policy",
                "--role-name",
                name,
                "--policy-document",
                LAMBDA_TRUST,
            ],
        );
        assert!(err.contains("AccessDenied"), "{name}: {err}");
    }
    let keys = s.aws(&["iam", "list-access-keys", "--user-name", "admin"]);
    assert_eq!(keys["AccessKeyMetadata"].as_array().unwrap().len(), 1);
    assert!(
        s.aws(&["iam", "list-role-policies", "--role-name", "power"])["PolicyNames"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// The trust policy is checked whenever an instance gets credentials, not only when the
/// role is configured; the caller sees the failure as a function error.
#[test]
fn credentials_need_the_trust_policy_at_every_cold_start() {
    let s = Server::start();
    s.ensure_role("trusting", LAMBDA_TRUST);
    let role = format!("arn:aws:iam::{ACCOUNT}:role/trusting");
    let zip = format!("fileb://{}", crate::harness::fixture_zip().display());
    s.aws(&create_args("t-f", &role, &zip));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let invoke = |s: &Server| -> (Value, Value) {
        let meta = s.aws(&[
            "lambda",
            "invoke",
            "--function-name",
            "t-f",
            "--payload",
            r#"{"action":"echo","n":1}"#,
            out.to_str().unwrap(),
        ]);
        let payload = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        (meta, payload)
    };
    let (meta, payload) = invoke(&s);
    assert!(meta.get("FunctionError").is_none(), "{meta} {payload}");
    assert_eq!(payload, json!({"action":"echo","n":1}));

    // The role stops trusting Lambda; the next instance must not get its credentials.
    let ec2 = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    s.aws(&[
        "iam",
        "update-assume-role-policy",
        "--role-name",
        "trusting",
        "--policy-document",
        ec2,
    ]);
    // A configuration change retires the warm instance.
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "t-f",
        "--memory-size",
        "256",
    ]);
    let (meta, payload) = invoke(&s);
    assert_eq!(meta["FunctionError"], "Unhandled", "{meta} {payload}");
    assert_eq!(payload["errorType"], "Runtime.InvalidRole", "{payload}");
    assert!(
        payload["errorMessage"]
            .as_str()
            .unwrap()
            .contains("The role defined for the function cannot be assumed by Lambda."),
        "{payload}"
    );
    // The same through boto3.
    let printed = s.python(
        r#"
import boto3, json, os
lam = boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"])
r = lam.invoke(FunctionName="t-f", Payload=b"{}")
print(json.dumps({"error": r.get("FunctionError"), "payload": json.loads(r["Payload"].read())}))
"#,
    );
    let got: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(got["error"], "Unhandled", "{got}");
    assert_eq!(got["payload"]["errorType"], "Runtime.InvalidRole", "{got}");

    // Restoring the trust makes it work again.
    s.aws(&[
        "iam",
        "update-assume-role-policy",
        "--role-name",
        "trusting",
        "--policy-document",
        LAMBDA_TRUST,
    ]);
    let (meta, payload) = invoke(&s);
    assert!(meta.get("FunctionError").is_none(), "{meta} {payload}");
    assert_eq!(payload, json!({"action":"echo","n":1}));
}
