//! Requests signed by `aws-sigv4` (the AWS SDK for Rust's signer) verify, in both forms.

use std::time::Duration;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use warden_auth::presign_request;

use crate::*;

#[test]
fn a_signed_invoke_verifies_and_names_the_signer() {
    let (parts, body) = signed_invoke(&long_term(), t0());
    let a = check(&parts, &body, t0()).unwrap();
    assert_eq!(a.principal, principal("alice"));
    assert_eq!(a.access_key_id, LONG_AKID);
    assert_eq!(a.service, "lambda");
    assert_eq!(a.region, REGION);
    assert_eq!(a.signed_at, t0());
    assert!(!a.presigned);
}

#[test]
fn temporary_credentials_verify_with_their_token() {
    let (parts, body) = signed_invoke(&temporary(), t0());
    assert_eq!(parts.headers["x-amz-security-token"], TOKEN);
    let a = check(&parts, &body, t0() + Duration::from_secs(60)).unwrap();
    assert_eq!(a.access_key_id, TEMP_AKID);
}

#[test]
fn the_clock_window_is_five_minutes_either_way() {
    let (parts, body) = signed_invoke(&long_term(), t0());
    check(&parts, &body, t0() + Duration::from_secs(300)).unwrap();
    check(&parts, &body, t0() - Duration::from_secs(300)).unwrap();
}

#[test]
fn unsigned_headers_added_on_the_way_do_not_matter() {
    let (mut parts, body) = signed_invoke(&long_term(), t0());
    for (k, v) in [
        ("user-agent", "proxy/1.0"),
        ("x-forwarded-for", "10.0.0.1"),
        ("content-length", "16"),
        ("x-amzn-trace-id", "Root=1-abc"),
    ] {
        parts.headers.insert(k, v.parse().unwrap());
    }
    check(&parts, &body, t0()).unwrap();
}

#[test]
fn paths_and_queries_with_reserved_characters_verify() {
    for (method, pq) in [
        ("GET", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af?Qualifier=%24LATEST"),
        ("GET", "/2015-03-31/functions?Marker=a%20b%2Bc%2F%C3%A9&MaxItems=5"),
        ("GET", "/2015-03-31/functions/"),
        ("DELETE", "/2015-03-31/functions/f%20g/policy/s%2F1?RevisionId=x"),
        ("GET", "/_warden/functions/f/logs?since=0&follow=true"),
        ("GET", "/?b=2&a=1&a=0&empty="),
    ] {
        let mut req = request(method, pq, &[], b"");
        sign_request(&mut req, b"", &signing(&long_term()), REGION, "lambda", t0()).unwrap();
        let (parts, body) = as_received(req);
        check(&parts, &body, t0()).unwrap_or_else(|e| panic!("{pq}: {e}"));
    }
}

#[test]
fn a_declared_payload_hash_must_be_the_real_one() {
    let body = br#"{"a":1}"#;
    let hash = "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862";
    let mut req = request(
        "POST",
        "/2015-03-31/functions/f/invocations",
        &[("x-amz-content-sha256", hash)],
        body,
    );
    sign_request(
        &mut req,
        body,
        &signing(&long_term()),
        REGION,
        "lambda",
        t0(),
    )
    .unwrap();
    let (parts, body) = as_received(req);
    check(&parts, &body, t0()).unwrap();
}

#[test]
fn presigned_urls_verify_until_they_expire() {
    for cred in [long_term(), temporary()] {
        let mut req = request("GET", "/2015-03-31/functions/hello?Qualifier=1", &[], b"");
        presign_request(
            &mut req,
            b"",
            &signing(&cred),
            REGION,
            "lambda",
            t0(),
            Duration::from_secs(300),
        )
        .unwrap();
        assert!(req.uri().query().unwrap().contains("X-Amz-Signature="));
        let (parts, body) = as_received(req);
        let a = check(&parts, &body, t0() + Duration::from_secs(300)).unwrap();
        assert!(a.presigned);
        assert_eq!(a.access_key_id, cred.access_key_id);
    }
}

/// `UNSIGNED-PAYLOAD` declared in `x-amz-content-sha256` is honoured on presigned requests.
#[test]
fn presigned_requests_may_leave_the_payload_unsigned() {
    let cred = long_term();
    let identity = aws_credential_types::Credentials::new(
        &cred.access_key_id,
        &cred.secret_access_key,
        None,
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("lambda")
        .time(t0())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("{ENDPOINT}/2015-03-31/functions/f/invocations");
    let headers = [
        ("host", "127.0.0.1:9700"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .unwrap()
        .into_parts();
    let mut req = request(
        "POST",
        "/2015-03-31/functions/f/invocations",
        &[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
        b"any body at all",
    );
    instructions.apply_to_request_http1x(&mut req);
    let (parts, body) = as_received(req);
    let a = check(&parts, &body, t0()).unwrap();
    assert!(a.presigned);
}
