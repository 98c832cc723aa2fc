//! Function URLs: configured through Lambda's API with the AWS CLI, served on their own
//! listener to curl, Python `requests` and a SigV4-signing client, with Lambda's payload
//! format 2.0 and response mapping, CORS answered by the platform, and every refusal
//! (no resource policy, no signature, no permission, a contract) before the code runs.

use std::process::Command;

use serde_json::{json, Value};

use crate::harness::*;

/// Echoes the event (no `statusCode`: a 200 JSON of it) on `/echo`, answers what the body
/// asks on `/respond`, fails otherwise.
const WEB: &str = r#"
import json, base64
def handler(event, context):
    path = event["rawPath"]
    if path.endswith("/echo"):
        return event
    if path.endswith("/respond"):
        body = event.get("body") or "{}"
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return json.loads(body)
    raise Exception("boom")
"#;

fn create_web(s: &Server, name: &str) {
    let zip = format!("fileb://{}", python_zip(&[("app.py", WEB)]).display());
    s.aws(&[
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
    ]);
}

/// The path form of a URL on this server: `http://127.0.0.1:PORT/_url/<id>`.
pub(crate) fn path_form(s: &Server, function_url: &str) -> String {
    let id = function_url
        .trim_start_matches("http://")
        .split('.')
        .next()
        .unwrap();
    format!("{}/_url/{id}", s.url_endpoint)
}

/// curl: (status, headers as lowercase `name: value` lines, body).
pub(crate) fn curl(args: &[&str]) -> (u16, Vec<String>, String) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "--max-time", "30"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines.map(|l| l.to_ascii_lowercase()).collect();
    (status, headers, body.to_owned())
}

pub(crate) fn allow_public(s: &Server, function: &str) {
    s.aws(&[
        "lambda",
        "add-permission",
        "--function-name",
        function,
        "--statement-id",
        "public-url",
        "--action",
        "lambda:InvokeFunctionUrl",
        "--principal",
        "*",
        "--function-url-auth-type",
        "NONE",
    ]);
}

#[test]
fn a_public_url_serves_payload_2_0_events_and_maps_responses() {
    let s = Server::start();
    create_web(&s, "web");
    let created = s.aws(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "web",
        "--auth-type",
        "NONE",
    ]);
    let function_url = created["FunctionUrl"].as_str().unwrap().to_owned();
    assert!(
        function_url.contains(".lambda-url.us-east-1.localhost:"),
        "{created}"
    );
    assert_eq!(created["AuthType"], "NONE");
    assert!(created["FunctionArn"]
        .as_str()
        .unwrap()
        .ends_with(":function:web"));
    let base = path_form(&s, &function_url);

    // AWS requires a resource policy for a public URL: without one, 403 before any code.
    let (status, _, body) = curl(&[&format!("{base}/echo")]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["Message"],
        "Forbidden"
    );
    allow_public(&s, "web");
    let policy = s.aws(&["lambda", "get-policy", "--function-name", "web"]);
    assert!(
        policy["Policy"]
            .as_str()
            .unwrap()
            .contains(r#""lambda:FunctionUrlAuthType":"NONE""#),
        "{policy}"
    );

    // The event, as curl sends it.
    let (status, headers, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-H",
        "x-custom: one",
        "-H",
        "cookie: a=1; b=2",
        "-H",
        "x-forwarded-for: 6.6.6.6",
        "--data",
        r#"{"hello": "world"}"#,
        &format!("{base}/orders/echo?x=1&y=two&x=3"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(headers
        .iter()
        .any(|h| h.starts_with("content-type: application/json")));
    assert!(headers.iter().any(|h| h.starts_with("x-amzn-requestid: ")));
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "$default");
    assert_eq!(event["rawPath"], "/orders/echo");
    assert_eq!(event["rawQueryString"], "x=1&y=two&x=3");
    assert_eq!(
        event["queryStringParameters"],
        json!({"x": "1,3", "y": "two"})
    );
    assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
    assert_eq!(event["headers"]["x-custom"], "one");
    // The forwarding headers are the platform's, not the client's.
    assert_eq!(event["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(event["headers"]["x-forwarded-proto"], "http");
    assert!(event["headers"].get("cookie").is_none());
    assert_eq!(event["body"], r#"{"hello": "world"}"#);
    assert_eq!(event["isBase64Encoded"], false);
    let ctx = &event["requestContext"];
    assert_eq!(ctx["http"]["method"], "POST");
    assert_eq!(ctx["http"]["path"], "/orders/echo");
    assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["accountId"], ACCOUNT);
    assert!(ctx.get("authorizer").is_none(), "{ctx}");
    let id = ctx["apiId"].as_str().unwrap();
    assert!(function_url.starts_with(&format!("http://{id}.")));

    // Binary bodies arrive base64-encoded.
    let (status, _, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/octet-stream",
        "--data-binary",
        "\u{1}\u{2}binary",
        &format!("{base}/echo"),
    ]);
    assert_eq!(status, 200);
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(unb64(event["body"].as_str().unwrap()), b"\x01\x02binary");

    // Routed by host name as well (the URL's own host).
    let host = function_url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    let (status, _, body) = curl(&[
        "-H",
        &format!("host: {host}"),
        &format!("{}/echo", s.url_endpoint),
    ]);
    assert_eq!(status, 200, "{body}");

    // Response mapping: status, headers, cookies, body; a bare value is a 200 JSON body.
    let respond = format!("{base}/respond");
    let (status, headers, body) = curl(&[
        "-X",
        "POST",
        "--data",
        r#"{"statusCode": 201, "headers": {"x-made": "yes"}, "cookies": ["s=1; Secure"], "body": "made"}"#,
        &respond,
    ]);
    assert_eq!(status, 201);
    assert_eq!(body, "made");
    assert!(headers.contains(&"x-made: yes".to_owned()), "{headers:?}");
    assert!(
        headers.contains(&"set-cookie: s=1; secure".to_owned()),
        "{headers:?}"
    );
    let (status, _, body) = curl(&["-X", "POST", "--data", r#""just text""#, &respond]);
    assert_eq!((status, body.as_str()), (200, r#""just text""#));
    // A header that would inject a second line is dropped, not sent.
    let (status, headers, _) = curl(&[
        "-X",
        "POST",
        "--data",
        r#"{"statusCode": 200, "headers": {"x-evil": "a\r\nset-cookie: stolen=1"}, "body": ""}"#,
        &respond,
    ]);
    assert_eq!(status, 200);
    assert!(!headers.iter().any(|h| h.contains("stolen")), "{headers:?}");
    // A function error is 502.
    let (status, _, body) = curl(&[&format!("{base}/fails")]);
    assert_eq!(status, 502, "{body}");

    // Python requests sees the same.
    let script = format!(
        r#"
import requests
r = requests.post("{base}/respond", json={{"statusCode": 202, "body": "ok"}})
print(r.status_code, r.text)
r = requests.get("{}/_url/{}/echo")
print(r.status_code)
"#,
        s.url_endpoint,
        "a".repeat(32)
    );
    let out = s.python(&script);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["202 ok", "404"]);

    // The configuration through the AWS CLI.
    let got = s.aws(&[
        "lambda",
        "get-function-url-config",
        "--function-name",
        "web",
    ]);
    assert_eq!(got["FunctionUrl"], function_url.as_str());
    let listed = s.aws(&[
        "lambda",
        "list-function-url-configs",
        "--function-name",
        "web",
    ]);
    assert_eq!(listed["FunctionUrlConfigs"].as_array().unwrap().len(), 1);
    let err = s.aws_err(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "web",
        "--auth-type",
        "NONE",
    ]);
    assert_eq!(error_code(&err), "ResourceConflictException", "{err}");
    let updated = s.aws(&[
        "lambda",
        "update-function-url-config",
        "--function-name",
        "web",
        "--invoke-mode",
        "RESPONSE_STREAM",
    ]);
    assert_eq!(updated["InvokeMode"], "RESPONSE_STREAM", "{updated}");
    let err = s.aws_err(&[
        "lambda",
        "update-function-url-config",
        "--function-name",
        "web",
        "--invoke-mode",
        "STREAMING",
    ]);
    assert_eq!(error_code(&err), "ValidationException", "{err}");
    s.aws(&[
        "lambda",
        "delete-function-url-config",
        "--function-name",
        "web",
    ]);
    let (status, _, _) = curl(&[&format!("{base}/echo")]);
    assert_eq!(status, 404, "a deleted URL is gone");
    let err = s.aws_err(&[
        "lambda",
        "get-function-url-config",
        "--function-name",
        "web",
    ]);
    assert_eq!(error_code(&err), "ResourceNotFoundException", "{err}");
}

#[test]
fn an_iam_url_needs_a_signature_and_lambda_invoke_function_url() {
    let s = Server::start();
    create_web(&s, "private");
    let created = s.aws(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "private",
        "--auth-type",
        "AWS_IAM",
    ]);
    let base = path_form(&s, created["FunctionUrl"].as_str().unwrap());
    // Unsigned: refused.
    let (status, _, body) = curl(&[&format!("{base}/echo")]);
    assert_eq!(status, 403, "{body}");

    let invoker = user_with_policy(
        &s,
        "invoker",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "lambda:InvokeFunctionUrl", "Resource": "*",
             "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}}]}),
    );
    let invoke_only = user_with_policy(
        &s,
        "invoke-only",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}]}),
    );
    // A SigV4-signing client (botocore's signer, as the SDKs sign).
    let signed = |who: &Credentials, body: &str| -> (u16, String) {
        let script = format!(
            r#"
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
req = AWSRequest(method="POST", url="{base}/echo", data={body:?}, headers={{"content-type": "application/json"}})
SigV4Auth(Credentials("{}", "{}"), "lambda", "us-east-1").add_auth(req)
r = requests.post(req.url, data=req.body, headers=dict(req.headers))
print(r.status_code)
print(r.text)
"#,
            who.key, who.secret
        );
        let out = s.python(&script);
        let (status, text) = out.split_once('\n').unwrap();
        (status.trim().parse().unwrap(), text.trim().to_owned())
    };
    let (status, body) = signed(&invoker, r#"{"n": 1}"#);
    assert_eq!(status, 200, "{body}");
    let event: Value = serde_json::from_str(&body).unwrap();
    let iam = &event["requestContext"]["authorizer"]["iam"];
    assert!(
        iam["userArn"].as_str().unwrap().ends_with(":user/invoker"),
        "{iam}"
    );
    assert_eq!(iam["accessKey"], invoker.key.as_str());
    assert_eq!(event["body"], r#"{"n": 1}"#);
    // lambda:InvokeFunction is not lambda:InvokeFunctionUrl.
    let (status, body) = signed(&invoke_only, "{}");
    assert_eq!(status, 403, "{body}");
    // Nor does it let a caller make, change, read or delete URLs.
    for args in [
        vec!["create-function-url-config", "--auth-type", "NONE"],
        vec!["update-function-url-config", "--auth-type", "NONE"],
        vec!["get-function-url-config"],
        vec!["delete-function-url-config"],
        vec!["list-function-url-configs"],
    ] {
        let mut all = vec!["lambda"];
        all.extend(&args);
        all.extend(["--function-name", "private"]);
        let out = aws_as(&s, &invoke_only, &all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(error_code(&err), "AccessDeniedException", "{args:?}: {err}");
    }
    let still = s.aws(&[
        "lambda",
        "get-function-url-config",
        "--function-name",
        "private",
    ]);
    assert_eq!(still["AuthType"], "AWS_IAM");
    // A signature over another body is refused.
    let script = format!(
        r#"
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
req = AWSRequest(method="POST", url="{base}/echo", data="{{}}")
SigV4Auth(Credentials("{}", "{}"), "lambda", "us-east-1").add_auth(req)
r = requests.post(req.url, data="{{\"tampered\": 1}}", headers=dict(req.headers))
print(r.status_code)
"#,
        invoker.key, invoker.secret
    );
    assert_eq!(s.python(&script).trim(), "403");
    // A URL for an alias invokes that alias.
    s.aws(&["lambda", "publish-version", "--function-name", "private"]);
    s.aws(&[
        "lambda",
        "create-alias",
        "--function-name",
        "private",
        "--name",
        "live",
        "--function-version",
        "1",
    ]);
    let alias = s.aws(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "private",
        "--qualifier",
        "live",
        "--auth-type",
        "AWS_IAM",
    ]);
    assert!(alias["FunctionArn"]
        .as_str()
        .unwrap()
        .ends_with(":function:private:live"));
    // A public URL of an alias could never be opened (function policies are on the
    // unqualified function): refused by name, on create and on update.
    let err = s.aws_err(&[
        "lambda",
        "update-function-url-config",
        "--function-name",
        "private",
        "--qualifier",
        "live",
        "--auth-type",
        "NONE",
    ]);
    assert!(err.contains("AuthType"), "{err}");
    let err = s.aws_err(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "private",
        "--qualifier",
        "1",
        "--auth-type",
        "AWS_IAM",
    ]);
    assert_eq!(error_code(&err), "ValidationException", "{err}");
    // Deleting the function takes its URLs with it.
    s.aws(&["lambda", "delete-function", "--function-name", "private"]);
    let (status, _, _) = curl(&[&format!("{base}/echo")]);
    assert_eq!(status, 404);
}

#[test]
fn cors_and_contracts_are_answered_by_the_platform() {
    let s = Server::start();
    create_web(&s, "site");
    allow_public(&s, "site");
    let created = s.aws(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "site",
        "--auth-type",
        "NONE",
        "--cors",
        r#"{"AllowOrigins": ["https://app.example"], "AllowMethods": ["POST"], "AllowHeaders": ["x-api-key"], "MaxAge": 300}"#,
    ]);
    assert_eq!(
        created["Cors"]["AllowOrigins"],
        json!(["https://app.example"])
    );
    let base = path_form(&s, created["FunctionUrl"].as_str().unwrap());
    let preflight = |origin: &str| {
        curl(&[
            "-X",
            "OPTIONS",
            "-H",
            &format!("origin: {origin}"),
            "-H",
            "access-control-request-method: POST",
            "-H",
            "access-control-request-headers: x-api-key",
            &format!("{base}/echo"),
        ])
    };
    let (status, headers, _) = preflight("https://app.example");
    assert_eq!(status, 200);
    assert!(
        headers.contains(&"access-control-allow-origin: https://app.example".to_owned()),
        "{headers:?}"
    );
    assert!(
        headers.contains(&"access-control-max-age: 300".to_owned()),
        "{headers:?}"
    );
    let (status, headers, _) = preflight("https://evil.example");
    assert_eq!(status, 200);
    assert!(
        !headers
            .iter()
            .any(|h| h.starts_with("access-control-allow-origin")),
        "{headers:?}"
    );
    // Preflights never reach the function.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!s.logs("site").iter().any(|l| l.starts_with("START ")));
    // A normal response carries the platform's CORS headers.
    let (status, headers, _) = curl(&[
        "-X",
        "POST",
        "-H",
        "origin: https://app.example",
        &format!("{base}/echo"),
    ]);
    assert_eq!(status, 200);
    assert!(headers.contains(&"access-control-allow-origin: https://app.example".to_owned()));

    // A contract's URL rules and event schema are checked before the code runs.
    let (status, _, body) = s.http(
        "PUT",
        "/_warden/2026-11-01/functions/site/input-contract",
        &[],
        br#"{"Url": {"AllowedMethods": ["POST"], "AllowedPaths": ["/echo"], "RequiredHeaders": ["x-api-key"]},
             "EventSchema": {"type": "object", "required": ["body"]}}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The one invocation so far (the CORS request above) is logged before counting.
    let starts = |lines: &[String]| lines.iter().filter(|l| l.starts_with("REPORT ")).count();
    let before = starts(
        &s.wait_logs("site", std::time::Duration::from_secs(10), |l| {
            starts(l) == 1
        }),
    );
    for (args, path, named) in [
        (vec!["-H", "x-api-key: k", "--data", "{}"], "/other", "path"),
        (vec!["-X", "GET", "-H", "x-api-key: k"], "/echo", "method"),
        (vec!["--data", "{}"], "/echo", "x-api-key"),
    ] {
        let url = format!("{base}{path}");
        let mut all = args.clone();
        all.push(&url);
        let (status, headers, body) = curl(&all);
        assert_eq!(status, 400, "{named}: {body}");
        assert!(body.contains("input contract"), "{body}");
        assert!(body.contains(named), "{named} not named: {body}");
        assert!(
            headers.contains(&"x-amzn-errortype: invalidrequestcontentexception".to_owned()),
            "{headers:?}"
        );
    }
    // An empty body leaves `body` out of the event, which the schema requires.
    let (status, _, body) = curl(&["-X", "POST", "-H", "x-api-key: k", &format!("{base}/echo")]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("body"), "{body}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(starts(&s.logs("site")), before, "a refused request ran");
    let (status, _, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "x-api-key: k",
        "--data",
        "{}",
        &format!("{base}/echo"),
    ]);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_flooded_url_is_throttled_and_leaves_the_api_alone() {
    let s = Server::start_with(&["--url-rate", "5", "--url-max-in-flight", "2"]);
    create_web(&s, "flooded");
    allow_public(&s, "flooded");
    let created = s.aws(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "flooded",
        "--auth-type",
        "NONE",
    ]);
    let base = path_form(&s, created["FunctionUrl"].as_str().unwrap());
    // Forty requests at once to the URL, while the API is called through boto3.
    let script = format!(
        r#"
import concurrent.futures, os, boto3, requests
def hit(_):
    r = requests.post("{base}/echo", data="{{}}", timeout=60)
    return r.status_code, r.headers.get("retry-after"), r.headers.get("x-amzn-errortype")
lam = boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
with concurrent.futures.ThreadPoolExecutor(40) as pool:
    flood = [pool.submit(hit, i) for i in range(40)]
    api = [lam.get_function(FunctionName="flooded")["Configuration"]["FunctionName"] for _ in range(10)]
    results = [f.result() for f in flood]
print(sum(1 for s, _, _ in results if s == 200))
print(sum(1 for s, a, t in results if s == 429 and a and int(a) >= 1 and t == "TooManyRequestsException"))
print(sum(1 for s, _, _ in results if s not in (200, 429)))
print(sum(1 for n in api if n == "flooded"))
"#
    );
    let out = s.python(&script);
    let counts: Vec<usize> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
    let [ok, throttled, other, api] = counts[..] else {
        panic!("{out}")
    };
    assert!(ok >= 1, "{out}");
    assert!(ok <= 5, "at most the burst passed: {out}");
    assert_eq!(
        ok + throttled,
        40,
        "every refusal is a 429 with Retry-After: {out}"
    );
    assert_eq!(other, 0, "{out}");
    assert_eq!(api, 10, "the API served every call during the flood: {out}");
    // Once the bucket refills, the URL serves again.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (status, _, body) = curl(&["-X", "POST", "--data", "{}", &format!("{base}/echo")]);
    assert_eq!(status, 200, "{body}");
}
