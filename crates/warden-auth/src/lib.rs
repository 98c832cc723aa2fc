//! AWS Signature Version 4 for Warden: [`verify`] authenticates every incoming API request
//! (both the `Authorization` header form and presigned URLs), and [`sign_request`] signs the
//! requests of Warden's own clients.
//!
//! The expected signature is computed by `aws-sigv4`, the signer of the AWS SDK for Rust (see
//! `verify.rs` for why it reproduces an incoming request's canonical form), and compared in
//! constant time. This crate does no I/O: credentials come from a
//! [`CredentialSource`](warden_types::identity::CredentialSource) and the time from the caller.
//!
//! Callers must route and parse exactly the request that was verified: the query is
//! canonicalized with form-urlencoded decoding (`+` is a space), so the API must decode it the
//! same way.
#![forbid(unsafe_code)]

mod canonical;
mod error;
mod parse;
mod sign;
mod verify;

use std::time::SystemTime;

use warden_types::identity::Principal;

pub use error::AuthError;
pub use sign::{presign_request, sign_request, SigningCredentials};
pub use verify::{verify, verify_headers, PendingVerification, MAX_CLOCK_SKEW};

/// The service named in the request's SigV4 credential scope (`lambda`, `iam`, `s3`, ...),
/// read from the `Authorization` header or the presigned `X-Amz-Credential` parameter
/// without verifying anything. `None` when the request carries no readable scope; the
/// verifier then reports what is wrong with it.
///
/// The API uses it to answer requests meant for a service it does not serve before it
/// reads their bodies; the answer reveals nothing beyond which services exist here.
pub fn claimed_service(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        return parse::authorization_service(value).ok().map(str::to_owned);
    }
    let query = query?;
    let credential = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "X-Amz-Credential")
        .map(|(_, v)| v.into_owned())?;
    parse::parse_credential(&credential)
        .ok()
        .map(|scope| scope.service)
}

/// A request whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Who signed it.
    pub principal: Principal,
    /// The access key that signed it.
    pub access_key_id: String,
    /// The service named in the credential scope (`lambda`, `iam`, ...); the API checks it
    /// against the operation's service.
    pub service: String,
    /// The region named in the credential scope (always the expected region).
    pub region: String,
    /// `X-Amz-Date`.
    pub signed_at: SystemTime,
    /// True for the presigned-URL form.
    pub presigned: bool,
}

#[cfg(test)]
mod tests {
    use super::claimed_service;
    use proptest::prelude::*;

    fn headers(authorization: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(authorization).unwrap(),
        );
        h
    }

    #[test]
    fn the_scope_names_the_service_in_either_form() {
        let h = headers(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abcd",
        );
        assert_eq!(claimed_service(&h, None).as_deref(), Some("s3"));
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261126%2Fus-east-1%2Fdynamodb%2Faws4_request";
        assert_eq!(
            claimed_service(&http::HeaderMap::new(), Some(q)).as_deref(),
            Some("dynamodb")
        );
        assert_eq!(claimed_service(&http::HeaderMap::new(), None), None);
        assert_eq!(claimed_service(&headers("Bearer x"), Some(q)), None);
        assert_eq!(
            claimed_service(&http::HeaderMap::new(), Some("X-Amz-Credential=AKID%2Fbad")),
            None
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(auth in "\\PC{0,200}", query in "\\PC{0,200}") {
            let mut h = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&auth) {
                h.insert(http::header::AUTHORIZATION, v);
            }
            let _ = claimed_service(&h, Some(&query));
            let _ = claimed_service(&http::HeaderMap::new(), Some(&query));
        }
    }
}
