//! Requests signed by the real botocore (the AWS CLI's and boto3's signer) verify, and stop
//! verifying when their body or signature is touched.
//!
//! `WARDEN_TEST_PYTHON` names a Python with `botocore` installed (`cargo xtask ci` creates
//! the test venv and sets it); without it this test fails rather than silently passing.

use std::{process::Command, time::Duration};

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::*;

fn botocore_requests() -> Vec<Value> {
    let python = std::env::var("WARDEN_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "WARDEN_TEST_PYTHON is not set: it must name a Python with boto3 installed; \
             run `cargo xtask ci`, which creates the test venv and sets it"
        )
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/botocore_sign.py");
    let out = Command::new(&python)
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{python}`: {e}"));
    assert!(
        out.status.success(),
        "botocore_sign.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Case {
    name: String,
    parts: http::request::Parts,
    body: Vec<u8>,
    keys: Keys,
    now: std::time::SystemTime,
}

fn case(v: &Value) -> Case {
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let url = s("url");
    let uri: http::Uri = url.parse().unwrap();
    let mut parts = http::Request::builder()
        .method(s("method").as_str())
        .uri(uri.path_and_query().unwrap().as_str())
        .body(())
        .unwrap()
        .into_parts()
        .0;
    // What urllib3 adds on the wire.
    parts.headers.insert(
        http::header::HOST,
        HeaderValue::from_str(uri.authority().unwrap().as_str()).unwrap(),
    );
    for h in v["headers"].as_array().unwrap() {
        let name = HeaderName::from_bytes(h[0].as_str().unwrap().as_bytes()).unwrap();
        parts
            .headers
            .append(name, HeaderValue::from_str(h[1].as_str().unwrap()).unwrap());
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(s("body_b64"))
        .unwrap();
    let mut cred = long_term();
    cred.access_key_id = s("access_key_id");
    cred.secret_access_key = s("secret_access_key");
    cred.session_token = v["session_token"].as_str().map(str::to_owned);
    // botocore signs with the current time: verify at the time it signed.
    let date = parts
        .headers
        .get("x-amz-date")
        .map(|d| d.to_str().unwrap().to_owned())
        .or_else(|| form_urlencoded_date(uri.query().unwrap_or("")))
        .unwrap();
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let now = time::PrimitiveDateTime::parse(&date, fmt)
        .unwrap()
        .assume_utc()
        .into();
    Case {
        name: s("name"),
        parts,
        body,
        keys: Keys(vec![cred]),
        now,
    }
}

fn form_urlencoded_date(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Date="))
        .map(str::to_owned)
}

#[test]
fn botocore_signed_requests_verify() {
    let requests = botocore_requests();
    assert!(requests.len() >= 10, "{requests:?}");
    let mut services = Vec::new();
    for v in &requests {
        let c = case(v);
        let a = warden_auth::verify(
            &c.parts,
            &c.body,
            c.now + Duration::from_secs(1),
            &c.keys,
            REGION,
        )
        .unwrap_or_else(|e| panic!("{}: {e} ({})", c.name, e.message()));
        assert_eq!(a.presigned, c.name.starts_with("presigned"), "{}", c.name);
        services.push(a.service);
    }
    assert!(services.contains(&"lambda".to_owned()));
    assert!(services.contains(&"iam".to_owned()));
}

#[test]
fn botocore_signed_requests_fail_when_touched() {
    for v in &botocore_requests() {
        let c = case(v);
        let verify = |parts: &http::request::Parts, body: &[u8]| {
            warden_auth::verify(parts, body, c.now, &c.keys, REGION)
        };
        let mut body = c.body.clone();
        body.push(b' ');
        let e = verify(&c.parts, &body).expect_err(&c.name);
        assert_eq!(e.code(), "InvalidSignatureException", "{}", c.name);
        // Flip the last signature character, wherever the signature is.
        let mut parts = c.parts.clone();
        if let Some(auth) = parts.headers.get("authorization") {
            let mut a = auth.to_str().unwrap().to_owned();
            let last = if a.ends_with('0') { "1" } else { "0" };
            a.replace_range(a.len() - 1.., last);
            parts.headers.insert("authorization", a.parse().unwrap());
        } else {
            let mut pq = parts.uri.path_and_query().unwrap().as_str().to_owned();
            let last = if pq.ends_with('0') { "1" } else { "0" };
            pq.replace_range(pq.len() - 1.., last);
            parts.uri = pq.parse().unwrap();
        }
        let e = verify(&parts, &c.body).expect_err(&c.name);
        assert_eq!(e.code(), "InvalidSignatureException", "{}", c.name);
        // Another region's endpoint refuses it.
        let e =
            warden_auth::verify(&c.parts, &c.body, c.now, &c.keys, "eu-west-1").expect_err(&c.name);
        assert_eq!(e.code(), "InvalidSignatureException", "{}", c.name);
    }
}
