//! The request pipeline: every service's requests pass the same stages (authentication,
//! authorization, input validation), and each refusal comes back in the wire protocol of
//! the service the request was for: rest-json for Lambda, the query protocol's XML for IAM
//! and STS, JSON 1.1 for `X-Amz-Target` services (KMS's door, which serves no operation
//! yet). Checked with raw HTTP, and with boto3 and the AWS CLI, which must parse each one.

use serde_json::Value;

use crate::harness::{user_with_key, Credentials, Server};

/// One request signed for `service` as `who` (unsigned when `None`); (status, headers, body).
fn call(
    s: &Server,
    who: Option<&Credentials>,
    service: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", s.endpoint));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(body.to_vec()).unwrap();
    if let Some(c) = who {
        let signing = warden_auth::SigningCredentials {
            access_key_id: c.key.clone(),
            secret_access_key: c.secret.clone(),
            session_token: c.token.clone(),
        };
        warden_auth::sign_request(
            &mut req,
            body,
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

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A JSON error: status, content type, `x-amzn-ErrorType` and the body's `__type`; returns
/// the body.
fn assert_json_error(
    got: (u16, Vec<(String, String)>, String),
    status: u16,
    content_type: &str,
    code: &str,
) -> Value {
    let (got_status, headers, body) = got;
    assert_eq!(got_status, status, "{code}: {body}");
    assert_eq!(
        header(&headers, "content-type"),
        Some(content_type),
        "{body}"
    );
    assert_eq!(header(&headers, "x-amzn-errortype"), Some(code), "{body}");
    assert!(header(&headers, "x-amzn-requestid").is_some());
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["__type"], code, "{body}");
    v
}

/// A query-protocol error in `ns` with `code`.
fn assert_xml_error(got: (u16, Vec<(String, String)>, String), status: u16, ns: &str, code: &str) {
    let (got_status, headers, body) = got;
    assert_eq!(got_status, status, "{code}: {body}");
    assert_eq!(header(&headers, "content-type"), Some("text/xml"), "{body}");
    assert!(
        header(&headers, "x-amzn-errortype").is_none(),
        "{headers:?}"
    );
    assert!(
        body.starts_with(&format!(
            "<ErrorResponse xmlns=\"{ns}\"><Error><Type>Sender</Type><Code>{code}</Code>"
        )),
        "{body}"
    );
}

const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const JSON_11: &str = "application/x-amz-json-1.1";

#[test]
fn refusals_of_each_protocol_are_rendered_in_it() {
    let s = Server::start();
    let admin = s.admin();
    let forged = Credentials {
        secret: "x".repeat(40),
        ..admin.clone()
    };
    let stranger = Credentials {
        key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret: "y".repeat(40),
        token: None,
    };
    let nobody = user_with_key(&s, "nobody");

    // Lambda, rest-json.
    let lambda = |who: Option<&Credentials>, method: &str, path: &str, body: &[u8]| {
        call(&s, who, "lambda", method, path, &[], body)
    };
    let get = "/2015-03-31/functions/f";
    let json = "application/json";
    assert_json_error(
        lambda(Some(&forged), "GET", get, b""),
        403,
        json,
        "InvalidSignatureException",
    );
    assert_json_error(
        lambda(Some(&stranger), "GET", get, b""),
        403,
        json,
        "UnrecognizedClientException",
    );
    let v = assert_json_error(
        lambda(Some(&nobody), "GET", get, b""),
        403,
        json,
        "AccessDeniedException",
    );
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("lambda:GetFunction"),
        "{v}"
    );
    assert_json_error(
        lambda(Some(&admin), "POST", "/2015-03-31/functions", b"{"),
        400,
        json,
        "InvalidRequestContentException",
    );
    assert_json_error(
        lambda(None, "GET", get, b""),
        403,
        json,
        "MissingAuthenticationTokenException",
    );

    // IAM, the query protocol.
    let form = "application/x-www-form-urlencoded; charset=utf-8";
    let iam = |who: Option<&Credentials>, body: &str| {
        call(
            &s,
            who,
            "iam",
            "POST",
            "/",
            &[("content-type", form)],
            body.as_bytes(),
        )
    };
    let list = "Action=ListUsers&Version=2010-05-08";
    assert_xml_error(
        iam(Some(&forged), list),
        403,
        IAM_NS,
        "SignatureDoesNotMatch",
    );
    assert_xml_error(
        iam(Some(&stranger), list),
        403,
        IAM_NS,
        "InvalidClientTokenId",
    );
    assert_xml_error(iam(Some(&nobody), list), 403, IAM_NS, "AccessDenied");
    assert_xml_error(
        iam(
            Some(&admin),
            "Action=ListUsers&Version=2010-05-08&MaxItems=many",
        ),
        400,
        IAM_NS,
        "ValidationError",
    );
    assert_xml_error(iam(None, list), 403, IAM_NS, "MissingAuthenticationToken");

    // KMS, JSON 1.1: authenticated first; an operation Warden does not serve is refused as
    // such; a body that is not a JSON object is refused as the protocol refuses it.
    let kms = |who: Option<&Credentials>, target: &str, body: &str| {
        call(
            &s,
            who,
            "kms",
            "POST",
            "/",
            &[("content-type", JSON_11), ("x-amz-target", target)],
            body.as_bytes(),
        )
    };
    let encrypt = "TrentService.Encrypt";
    let plain = r#"{"KeyId": "alias/k", "Plaintext": "aGk="}"#;
    let v = assert_json_error(
        kms(Some(&forged), encrypt, plain),
        403,
        JSON_11,
        "InvalidSignatureException",
    );
    assert!(v["message"].is_string(), "JSON 1.1 says `message`: {v}");
    assert_json_error(
        kms(Some(&stranger), encrypt, plain),
        403,
        JSON_11,
        "UnrecognizedClientException",
    );
    assert_json_error(
        kms(None, encrypt, plain),
        403,
        JSON_11,
        "MissingAuthenticationTokenException",
    );
    assert_json_error(
        kms(Some(&admin), encrypt, "{"),
        400,
        JSON_11,
        "SerializationException",
    );
    for who in [&admin, &nobody] {
        let v = assert_json_error(
            kms(Some(who), "TrentService.CreateGrant", r#"{"KeyId": "k"}"#),
            400,
            JSON_11,
            "UnknownOperationException",
        );
        assert!(
            v["message"].as_str().unwrap().contains("`CreateGrant`"),
            "{v}"
        );
    }
    // A served operation on a key that does not exist.
    assert_json_error(
        kms(Some(&admin), encrypt, plain),
        400,
        JSON_11,
        "NotFoundException",
    );
    // A request signed for KMS at a path of Lambda's is Lambda's, and refused as such.
    let (status, headers, body) = call(&s, Some(&admin), "kms", "GET", get, &[], b"");
    assert_eq!(status, 403, "{body}");
    assert_eq!(header(&headers, "content-type"), Some(json), "{body}");
    assert!(body.contains("'lambda'"), "{body}");
}

#[test]
fn boto3_and_the_aws_cli_parse_the_json_protocol_refusals() {
    let s = Server::start();
    let admin = s.admin();
    let script = format!(
        r#"
import os, boto3, botocore
from botocore.config import Config
def kms(key, secret):
    return boto3.client("kms", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={{"total_max_attempts": 1}}))
def expect_error(code, status, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        r = e.response
        assert r["Error"]["Code"] == code, r
        assert r["ResponseMetadata"]["HTTPStatusCode"] == status, r
        assert r["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "{JSON_11}", r
        return r
    raise AssertionError("the call succeeded")
admin = kms({key:?}, {secret:?})
r = expect_error("UnknownOperationException", 400, admin.list_grants, KeyId="k")
assert "`ListGrants`" in r["Error"]["Message"], r
expect_error("NotFoundException", 400, admin.encrypt, KeyId="alias/k", Plaintext=b"hi")
expect_error("InvalidSignatureException", 403, kms({key:?}, "x" * 40).list_keys)
expect_error("UnrecognizedClientException", 403, kms("AKIAIOSFODNN7EXAMPLE", "y" * 40).list_keys)
print("ok")
"#,
        key = admin.key,
        secret = admin.secret,
    );
    let out = s.python(&script);
    assert!(out.trim_end().ends_with("ok"), "{out}");
    let stderr = s.aws_err(&["kms", "list-grants", "--key-id", "k"]);
    assert!(
        stderr.contains("(UnknownOperationException)") && stderr.contains("`ListGrants`"),
        "{stderr}"
    );
}
