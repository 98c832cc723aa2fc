//! Integration tests for `warden-auth`: requests signed by `aws-sigv4` and by the real botocore
//! are verified; tampered, stale, mis-scoped and malformed ones are refused with AWS's codes.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

mod botocore;
mod fuzz;
mod negative;
mod positive;
mod staged;

use std::time::{Duration, SystemTime};

use http::{request::Parts, Request};
use warden_auth::{sign_request, AuthError, Authenticated, SigningCredentials};
use warden_types::identity::{Credential, CredentialSource, Principal, PrincipalKind};

pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ENDPOINT: &str = "http://127.0.0.1:9700";
pub(crate) const LONG_AKID: &str = "AKIAWARDENLONGTERM01";
pub(crate) const TEMP_AKID: &str = "ASIAWARDENTEMPORARY2";
pub(crate) const TOKEN: &str = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token==";

/// An in-memory key store.
pub struct Keys(pub Vec<Credential>);

impl CredentialSource for Keys {
    fn lookup(&self, access_key_id: &str) -> Option<Credential> {
        self.0
            .iter()
            .find(|c| c.access_key_id == access_key_id)
            .cloned()
    }
}

pub(crate) fn principal(name: &str) -> Principal {
    Principal {
        arn: format!("arn:aws:iam::123456789012:user/{name}"),
        account: "123456789012".into(),
        name: name.into(),
        id: "AIDAWARDENTEST".into(),
        kind: PrincipalKind::User,
        tags: Default::default(),
        session: None,
    }
}

/// 2026-11-26T12:00:00Z, the clock of most tests.
pub(crate) fn t0() -> SystemTime {
    time::macros::datetime!(2026-11-26 12:00:00 UTC).into()
}

pub(crate) fn long_term() -> Credential {
    Credential {
        access_key_id: LONG_AKID.into(),
        secret_access_key: "long/term+secret=0123456789abcdefghij".into(),
        session_token: None,
        expires_at_ms: None,
        principal: principal("alice"),
    }
}

/// A temporary credential valid for one hour after [`t0`].
pub(crate) fn temporary() -> Credential {
    let expires = t0() + Duration::from_secs(3600);
    let ms = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Credential {
        access_key_id: TEMP_AKID.into(),
        secret_access_key: "temporary/secret+0123456789abcdefghijk".into(),
        session_token: Some(TOKEN.into()),
        expires_at_ms: Some(ms as i64),
        principal: principal("role-session"),
    }
}

pub(crate) fn keys() -> Keys {
    Keys(vec![long_term(), temporary()])
}

pub(crate) fn signing(c: &Credential) -> SigningCredentials {
    SigningCredentials {
        access_key_id: c.access_key_id.clone(),
        secret_access_key: c.secret_access_key.clone(),
        session_token: c.session_token.clone(),
    }
}

/// A client-side request to Warden (absolute URI).
pub(crate) fn request(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Request<Vec<u8>> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("{ENDPOINT}{path_and_query}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.to_vec()).unwrap()
}

/// The request as the server sees it: origin-form URI plus the `Host` header the HTTP client
/// adds on the wire.
pub(crate) fn as_received(req: Request<Vec<u8>>) -> (Parts, Vec<u8>) {
    let (mut parts, body) = req.into_parts();
    if let Some(authority) = parts.uri.authority().cloned() {
        parts
            .headers
            .entry(http::header::HOST)
            .or_insert(authority.as_str().parse().unwrap());
        parts.uri = parts
            .uri
            .path_and_query()
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
    }
    (parts, body)
}

/// A typical small Invoke, signed by `aws-sigv4` at `at` with `cred`.
pub(crate) fn signed_invoke(cred: &Credential, at: SystemTime) -> (Parts, Vec<u8>) {
    let mut req = request(
        "POST",
        "/2015-03-31/functions/hello/invocations?Qualifier=live",
        &[
            ("content-type", "application/json"),
            ("x-amz-log-type", "Tail"),
        ],
        br#"{"name":"world"}"#,
    );
    let body = req.body().clone();
    sign_request(&mut req, &body, &signing(cred), REGION, "lambda", at).unwrap();
    as_received(req)
}

pub(crate) fn check(
    parts: &Parts,
    body: &[u8],
    now: SystemTime,
) -> Result<Authenticated, AuthError> {
    warden_auth::verify(parts, body, now, &keys(), REGION)
}

/// Asserts the error's code, status and client message.
#[track_caller]
pub(crate) fn assert_err(
    r: Result<Authenticated, AuthError>,
    code: &str,
    status: u16,
    message: &str,
) {
    let e = r.expect_err("request must be refused");
    assert_eq!((e.code(), e.status()), (code, status), "{e:?}");
    assert_eq!(e.message(), message, "{e:?}");
}

pub(crate) const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
