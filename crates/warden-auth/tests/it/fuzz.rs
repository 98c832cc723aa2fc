//! Property tests: arbitrary signature inputs never panic the verifier and never authenticate.

use http::HeaderValue;
use proptest::prelude::*;

use crate::*;

fn base() -> (http::request::Parts, Vec<u8>) {
    signed_invoke(&long_term(), t0())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_authorization_headers_never_authenticate(value in "[ -~]{0,400}") {
        let (mut parts, body) = base();
        if let Ok(v) = HeaderValue::from_str(&value) {
            parts.headers.insert("authorization", v);
            prop_assert!(check(&parts, &body, t0()).is_err());
        }
    }

    /// Well-formed headers naming a real key, with arbitrary scope, headers and signature.
    #[test]
    fn structured_authorization_headers_never_authenticate(
        region in prop_oneof![Just("us-east-1".to_owned()), "[a-z0-9-]{0,12}"],
        service in prop_oneof![Just("lambda".to_owned()), "[a-z]{0,8}"],
        signed in prop_oneof![
            Just("content-type;host;x-amz-date;x-amz-log-type".to_owned()),
            Just("host;x-amz-date".to_owned()),
            "[a-z;-]{0,40}",
        ],
        signature in "[0-9a-f]{0,66}",
    ) {
        let (mut parts, body) = base();
        let value = format!(
            "AWS4-HMAC-SHA256 Credential={LONG_AKID}/20261126/{region}/{service}/aws4_request, SignedHeaders={signed}, Signature={signature}"
        );
        parts.headers.insert("authorization", HeaderValue::from_str(&value).unwrap());
        prop_assert!(check(&parts, &body, t0()).is_err());
    }

    #[test]
    fn arbitrary_query_strings_never_authenticate(
        query in "[a-zA-Z0-9%&=+._~/-]{0,300}",
        presign in any::<bool>(),
    ) {
        let (mut parts, body) = base();
        parts.headers.remove("authorization");
        let query = if presign {
            format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={LONG_AKID}%2F20261126%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=20261126T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&{query}")
        } else {
            query
        };
        if let Ok(uri) = format!("/2015-03-31/functions/hello?{query}").parse() {
            parts.uri = uri;
            prop_assert!(check(&parts, &body, t0()).is_err());
        }
    }

    /// Appending any query pair to a signed request breaks it.
    #[test]
    fn query_additions_break_the_signature(k in "[a-zA-Z][a-zA-Z0-9]{0,10}", v in "[a-zA-Z0-9%]{0,10}") {
        let (mut parts, body) = base();
        let pq = format!("{}&{k}={v}", parts.uri.path_and_query().unwrap());
        if let Ok(uri) = pq.parse() {
            parts.uri = uri;
            prop_assert!(check(&parts, &body, t0()).is_err());
        }
    }
}
