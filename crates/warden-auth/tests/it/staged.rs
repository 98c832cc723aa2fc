//! The two-stage verification a server runs around a streamed body
//! (`verify_headers`, then `PendingVerification::finish` with the body's hash) decides
//! exactly as the one-shot `verify`: same result, same error, for any request.

use std::time::Duration;

use http::HeaderValue;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use warden_auth::{verify_headers, AuthError, Authenticated};

use crate::*;

fn staged(
    parts: &http::request::Parts,
    body: &[u8],
    now: std::time::SystemTime,
) -> Result<Authenticated, AuthError> {
    let keys = keys();
    let pending = verify_headers(parts, now, &keys, REGION)?;
    pending.finish(parts, &Sha256::digest(body).into(), now, &keys)
}

/// A signed request with an arbitrary body, as the server receives it.
fn signed_with_body(
    cred: &Credential,
    body: &[u8],
    declare_hash: bool,
) -> (http::request::Parts, Vec<u8>) {
    let hash = hex::encode(Sha256::digest(body));
    let mut headers = vec![("content-type", "application/json")];
    if declare_hash {
        headers.push(("x-amz-content-sha256", hash.as_str()));
    }
    let mut req = request("POST", "/2015-03-31/functions", &headers, body);
    sign_request(&mut req, body, &signing(cred), REGION, "lambda", t0()).unwrap();
    as_received(req)
}

#[test]
fn a_key_unknown_at_the_headers_is_refused_before_the_body() {
    let (mut parts, _) = signed_invoke(&long_term(), t0());
    let auth = parts.headers["authorization"]
        .to_str()
        .unwrap()
        .replace(LONG_AKID, "AKIAWARDENNOSUCHKEY1");
    parts
        .headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    let e = verify_headers(&parts, t0(), &keys(), REGION).unwrap_err();
    assert_eq!(e.code(), "UnrecognizedClientException");
}

#[test]
fn a_key_deleted_while_the_body_arrives_does_not_authenticate() {
    let (parts, body) = signed_invoke(&long_term(), t0());
    let pending = verify_headers(&parts, t0(), &keys(), REGION).unwrap();
    assert_eq!(pending.access_key_id(), LONG_AKID);
    assert_eq!(pending.service(), "lambda");
    let only_temporary = Keys(vec![temporary()]);
    let e = pending
        .finish(&parts, &Sha256::digest(&body).into(), t0(), &only_temporary)
        .unwrap_err();
    assert_eq!(e.code(), "UnrecognizedClientException");
}

#[test]
fn the_pending_state_never_prints_the_token_or_signature() {
    let (parts, _) = signed_invoke(&temporary(), t0());
    let pending = verify_headers(&parts, t0(), &keys(), REGION).unwrap();
    let printed = format!("{pending:?}");
    let signature = parts.headers["authorization"]
        .to_str()
        .unwrap()
        .rsplit("Signature=")
        .next()
        .unwrap()
        .to_owned();
    assert!(!printed.contains(TOKEN), "{printed}");
    assert!(!printed.contains(&signature), "{printed}");
    assert!(printed.contains(TEMP_AKID), "{printed}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Signed bodies, then delivered intact or altered, checked at a shifted clock.
    #[test]
    fn staged_verification_decides_as_verify(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        declare_hash in any::<bool>(),
        temporary_key in any::<bool>(),
        alter in proptest::option::of((any::<usize>(), any::<u8>())),
        skew_secs in -600i64..600,
    ) {
        let cred = if temporary_key { temporary() } else { long_term() };
        let (parts, mut received) = signed_with_body(&cred, &body, declare_hash);
        if let Some((at, byte)) = alter {
            if received.is_empty() {
                received.push(byte);
            } else {
                let i = at % received.len();
                received[i] ^= byte | 1;
            }
        }
        let now = if skew_secs >= 0 {
            t0() + Duration::from_secs(skew_secs as u64)
        } else {
            t0() - Duration::from_secs(skew_secs.unsigned_abs())
        };
        prop_assert_eq!(staged(&parts, &received, now), check(&parts, &received, now));
    }

    /// Arbitrary `Authorization` headers: both refuse, with the same error.
    #[test]
    fn staged_verification_refuses_as_verify(value in "[ -~]{0,300}") {
        let (mut parts, body) = signed_invoke(&long_term(), t0());
        if let Ok(v) = HeaderValue::from_str(&value) {
            parts.headers.insert("authorization", v);
            prop_assert_eq!(staged(&parts, &body, t0()), check(&parts, &body, t0()));
        }
    }
}
