//! Tampered, stale, mis-scoped, unknown and malformed requests are refused with AWS's codes.

use std::time::Duration;

use http::HeaderValue;
use warden_auth::presign_request;

use crate::*;

fn replace_signature(parts: &mut http::request::Parts, f: impl Fn(&str) -> String) {
    let auth = parts.headers["authorization"].to_str().unwrap().to_owned();
    let (head, sig) = auth.rsplit_once("Signature=").unwrap();
    let new = format!("{head}Signature={}", f(sig));
    parts.headers.insert("authorization", new.parse().unwrap());
}

#[test]
fn every_flipped_signature_character_is_refused() {
    let (parts, body) = signed_invoke(&long_term(), t0());
    let sig = {
        let auth = parts.headers["authorization"].to_str().unwrap();
        auth.rsplit_once("Signature=").unwrap().1.to_owned()
    };
    assert_eq!(sig.len(), 64);
    for i in 0..sig.len() {
        let mut p = parts.clone();
        replace_signature(&mut p, |s| {
            let mut b = s.as_bytes().to_vec();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            String::from_utf8(b).unwrap()
        });
        assert_err(
            check(&p, &body, t0()),
            "InvalidSignatureException",
            403,
            MISMATCH,
        );
    }
    // Truncated, extended, uppercased or emptied signatures too.
    for f in [
        |s: &str| s[..63].to_owned(),
        |s: &str| format!("{s}0"),
        |s: &str| s.to_uppercase(),
    ] {
        let mut p = parts.clone();
        replace_signature(&mut p, f);
        assert_err(
            check(&p, &body, t0()),
            "InvalidSignatureException",
            403,
            MISMATCH,
        );
    }
}

#[test]
fn an_altered_body_is_refused() {
    let (parts, mut body) = signed_invoke(&long_term(), t0());
    for i in 0..body.len() {
        body[i] ^= 1;
        assert_err(
            check(&parts, &body, t0()),
            "InvalidSignatureException",
            403,
            MISMATCH,
        );
        body[i] ^= 1;
    }
    body.push(b' ');
    assert_err(
        check(&parts, &body, t0()),
        "InvalidSignatureException",
        403,
        MISMATCH,
    );
    assert_err(
        check(&parts, b"", t0()),
        "InvalidSignatureException",
        403,
        MISMATCH,
    );
}

#[test]
fn altered_signed_headers_method_path_or_query_are_refused() {
    let (parts, body) = signed_invoke(&long_term(), t0());
    let mut cases = Vec::new();
    for (name, value) in [
        ("content-type", "text/plain"),
        ("x-amz-log-type", "None"),
        ("host", "127.0.0.1:9701"),
        ("x-amz-date", "20261126T120001Z"),
    ] {
        let mut p = parts.clone();
        p.headers.insert(name, HeaderValue::from_static(value));
        cases.push((format!("header {name}"), p));
    }
    let mut p = parts.clone();
    p.headers
        .append("x-amz-log-type", HeaderValue::from_static("Tail"));
    cases.push(("repeated signed header".into(), p));
    let mut p = parts.clone();
    p.headers.remove("content-type");
    cases.push(("removed signed header".into(), p));
    let mut p = parts.clone();
    p.method = http::Method::PUT;
    cases.push(("method".into(), p));
    for pq in [
        "/2015-03-31/functions/hellp/invocations?Qualifier=live",
        "/2015-03-31/functions/hello/invocations?Qualifier=live2",
        "/2015-03-31/functions/hello/invocations?Qualifier=live&x=1",
        "/2015-03-31/functions/hello/invocations",
        "/2015-03-31/functions/hello//invocations?Qualifier=live",
        "/2015-03-31/functions/x/../hello/invocations?Qualifier=live",
    ] {
        let mut p = parts.clone();
        p.uri = pq.parse().unwrap();
        cases.push((format!("uri {pq}"), p));
    }
    for (what, p) in cases {
        let e = check(&p, &body, t0()).expect_err(&what);
        assert_eq!(e.code(), "InvalidSignatureException", "{what}: {e}");
    }
}

#[test]
fn requests_outside_the_clock_window_are_refused() {
    let (parts, body) = signed_invoke(&long_term(), t0());
    assert_err(
        check(&parts, &body, t0() + Duration::from_secs(301)),
        "InvalidSignatureException",
        403,
        "Signature expired: 20261126T120000Z is now earlier than 20261126T120001Z (20261126T120501Z - 5 min.)",
    );
    assert_err(
        check(&parts, &body, t0() - Duration::from_secs(301)),
        "InvalidSignatureException",
        403,
        "Signature not yet current: 20261126T120000Z is still later than 20261126T115959Z (20261126T115459Z + 5 min.)",
    );
}

#[test]
fn a_presigned_url_expires_and_cannot_be_tampered_with() {
    let mut req = request("GET", "/2015-03-31/functions/hello", &[], b"");
    presign_request(
        &mut req,
        b"",
        &signing(&long_term()),
        REGION,
        "lambda",
        t0(),
        Duration::from_secs(60),
    )
    .unwrap();
    let (parts, body) = as_received(req);
    check(&parts, &body, t0() + Duration::from_secs(60)).unwrap();
    assert_err(
        check(&parts, &body, t0() + Duration::from_secs(61)),
        "InvalidSignatureException",
        403,
        "Signature expired: 20261126T120100Z is now earlier than 20261126T120101Z (20261126T120000Z + 60 sec. = 20261126T120100Z)",
    );
    let pq = parts.uri.path_and_query().unwrap().as_str().to_owned();
    for tampered in [
        pq.replace("X-Amz-Expires=60", "X-Amz-Expires=600"),
        pq.replace("/hello", "/hellp"),
        format!("{pq}&Qualifier=2"),
    ] {
        let mut p = parts.clone();
        p.uri = tampered.parse().unwrap();
        let e = check(&p, &body, t0()).expect_err(&tampered);
        assert_eq!(e.code(), "InvalidSignatureException", "{tampered}");
    }
    // The body of a presigned GET is signed (as its empty hash) unless declared unsigned.
    let mut p = parts.clone();
    p.headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    assert_err(
        check(&p, b"x", t0()),
        "InvalidSignatureException",
        403,
        MISMATCH,
    );
    assert_err(
        check(&parts, b"x", t0()),
        "InvalidSignatureException",
        403,
        MISMATCH,
    );
    // Both forms at once are ambiguous.
    let mut p = parts.clone();
    p.headers.insert(
        "authorization",
        HeaderValue::from_static("AWS4-HMAC-SHA256 x"),
    );
    let e = check(&p, &body, t0()).unwrap_err();
    assert_eq!(
        (e.code(), e.status()),
        ("IncompleteSignatureException", 400)
    );
}

#[test]
fn the_region_must_be_the_endpoints() {
    let mut req = request("GET", "/2015-03-31/functions", &[], b"");
    sign_request(
        &mut req,
        b"",
        &signing(&long_term()),
        "eu-west-1",
        "lambda",
        t0(),
    )
    .unwrap();
    let (parts, body) = as_received(req);
    assert_err(
        check(&parts, &body, t0()),
        "InvalidSignatureException",
        403,
        "Credential should be scoped to a valid region, not 'eu-west-1'. This endpoint serves region 'us-east-1'.",
    );
}

#[test]
fn the_scope_date_must_be_the_request_date() {
    let (mut parts, body) = signed_invoke(&long_term(), t0());
    let auth = parts.headers["authorization"]
        .to_str()
        .unwrap()
        .replace("/20261126/", "/20261125/");
    parts.headers.insert("authorization", auth.parse().unwrap());
    assert_err(
        check(&parts, &body, t0()),
        "InvalidSignatureException",
        403,
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20261125' != '20261126', from '20261126T120000Z'.",
    );
}

#[test]
fn unknown_keys_are_unrecognized() {
    let mut cred = long_term();
    cred.access_key_id = "AKIANOSUCHKEY0000000".into();
    let (parts, body) = signed_invoke(&cred, t0());
    assert_err(
        check(&parts, &body, t0()),
        "UnrecognizedClientException",
        403,
        "The security token included in the request is invalid.",
    );
}

#[test]
fn a_wrong_secret_is_a_bad_signature() {
    let mut cred = long_term();
    cred.secret_access_key.push('x');
    let (parts, body) = signed_invoke(&cred, t0());
    assert_err(
        check(&parts, &body, t0()),
        "InvalidSignatureException",
        403,
        MISMATCH,
    );
}

#[test]
fn session_tokens_must_be_present_exactly_when_required_and_match() {
    const INVALID: &str = "The security token included in the request is invalid.";
    // Temporary key, token left out.
    let mut cred = temporary();
    cred.session_token = None;
    let (parts, body) = signed_invoke(&cred, t0());
    assert_err(
        check(&parts, &body, t0()),
        "UnrecognizedClientException",
        403,
        INVALID,
    );
    // Temporary key, another token.
    cred.session_token = Some(format!("{TOKEN}x"));
    let (parts, body) = signed_invoke(&cred, t0());
    assert_err(
        check(&parts, &body, t0()),
        "UnrecognizedClientException",
        403,
        INVALID,
    );
    // Long-term key with a token.
    let mut cred = long_term();
    cred.session_token = Some(TOKEN.into());
    let (parts, body) = signed_invoke(&cred, t0());
    assert_err(
        check(&parts, &body, t0()),
        "UnrecognizedClientException",
        403,
        INVALID,
    );
    // A signed token altered in flight breaks the signature.
    let (mut parts, body) = signed_invoke(&temporary(), t0());
    parts
        .headers
        .insert("x-amz-security-token", HeaderValue::from_static("other"));
    assert_err(
        check(&parts, &body, t0()),
        "InvalidSignatureException",
        403,
        MISMATCH,
    );
}

#[test]
fn expired_temporary_credentials_are_refused() {
    let at = t0() + Duration::from_secs(3600);
    let (parts, body) = signed_invoke(&temporary(), at);
    assert_err(
        check(&parts, &body, at),
        "ExpiredTokenException",
        403,
        "The security token included in the request is expired",
    );
}

#[test]
fn missing_and_malformed_signatures() {
    let (parts, body) = signed_invoke(&long_term(), t0());
    let mut p = parts.clone();
    p.headers.remove("authorization");
    assert_err(
        check(&p, &body, t0()),
        "MissingAuthenticationTokenException",
        403,
        "Missing Authentication Token",
    );
    for bad in [
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=AKIAWARDENLONGTERM01/20261126/us-east-1/lambda/aws4_request",
        "Bearer abc",
        "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=00",
    ] {
        let mut p = parts.clone();
        p.headers.insert("authorization", bad.parse().unwrap());
        let e = check(&p, &body, t0()).unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("IncompleteSignatureException", 400),
            "{bad}"
        );
    }
    // A `Date` header alone is not enough (see the crate docs).
    let mut p = parts.clone();
    p.headers.remove("x-amz-date");
    p.headers.insert(
        "date",
        HeaderValue::from_static("Thu, 26 Nov 2026 12:00:00 GMT"),
    );
    assert_err(
        check(&p, &body, t0()),
        "IncompleteSignatureException",
        400,
        "Warden requires the 'X-Amz-Date' header: requests dated only by a 'Date' header are not supported.",
    );
    // A header-signed request may not leave its payload unsigned.
    let mut req = request(
        "POST",
        "/2015-03-31/functions/f/invocations",
        &[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
        b"{}",
    );
    sign_request(
        &mut req,
        b"{}",
        &signing(&long_term()),
        REGION,
        "lambda",
        t0(),
    )
    .unwrap();
    let (p, b) = as_received(req);
    assert_err(
        check(&p, &b, t0()),
        "InvalidSignatureException",
        403,
        MISMATCH,
    );
}

#[test]
fn messages_never_contain_secrets_or_the_expected_signature() {
    let cred = temporary();
    let mut bad = cred.clone();
    bad.secret_access_key.push('x');
    let (parts, body) = signed_invoke(&bad, t0());
    let e = check(&parts, &body, t0()).unwrap_err();
    for text in [e.to_string(), e.message(), format!("{e:?}")] {
        assert!(!text.contains(&cred.secret_access_key), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
    }
    // The signature the request should have carried is not in any text either.
    let (good, _) = signed_invoke(&cred, t0());
    let auth = good.headers["authorization"].to_str().unwrap();
    let expected = auth.rsplit_once("Signature=").unwrap().1;
    for text in [e.to_string(), e.message(), format!("{e:?}")] {
        assert!(!text.contains(expected), "{text}");
    }
}
