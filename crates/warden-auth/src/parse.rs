//! Parsers for the untrusted parts of a SigV4 request: the `Authorization` header, the
//! presigned query parameters, the credential scope, `SignedHeaders` and `X-Amz-Date`.
//!
//! Every function here takes attacker-controlled text and returns an [`AuthError`] instead of
//! panicking; the property tests at the bottom hold them to that.

use std::time::SystemTime;

use crate::AuthError;

/// The only algorithm accepted (SigV4A and older versions are refused).
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// AWS's upper bound for `X-Amz-Expires`: seven days.
pub(crate) const MAX_PRESIGNED_EXPIRES_SECS: u64 = 7 * 24 * 3600;
/// Inputs echoed into messages are cut to this many characters.
const ECHO_LIMIT: usize = 100;

/// The query parameters that carry a presigned signature; none of them is part of the
/// operation, so they are taken out of the query before it is canonicalized (the signer
/// re-adds all of them except the signature).
pub(crate) const PRESIGN_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// `AKID/YYYYMMDD/REGION/SERVICE/aws4_request`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

/// The three parameters of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorizationHeader {
    pub scope: Scope,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// The signature parameters of a presigned URL, plus the query without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PresignedQuery {
    pub scope: Scope,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Date`, raw.
    pub date: String,
    pub expires_secs: u64,
    pub session_token: Option<String>,
    /// The raw query with every [`PRESIGN_PARAMS`] pair removed, pairs kept as sent.
    pub operation_query: String,
}

fn echo(s: &str) -> String {
    s.chars().take(ECHO_LIMIT).collect()
}

/// The three parameters of an `Authorization` header, as written in it.
struct AuthorizationParts<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// A credential scope, borrowed from the header or query that holds it.
struct ScopeRef<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

/// Parses the value of an `Authorization` header.
pub(crate) fn parse_authorization(value: &str) -> Result<AuthorizationHeader, AuthError> {
    let parts = split_authorization(value)?;
    Ok(AuthorizationHeader {
        scope: parse_credential(parts.credential)?,
        signed_headers: parse_signed_headers(parts.signed_headers)?,
        signature: parts.signature.to_owned(),
    })
}

/// The service an `Authorization` header's scope names, if [`parse_authorization`] would
/// accept the header; checked in the same order, without copying anything out of it.
pub(crate) fn authorization_service(value: &str) -> Result<&str, AuthError> {
    let parts = split_authorization(value)?;
    let scope = split_credential(parts.credential)?;
    check_signed_headers(parts.signed_headers)?;
    Ok(scope.service)
}

fn split_authorization(value: &str) -> Result<AuthorizationParts<'_>, AuthError> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::malformed(format!(
            "Unsupported AWS 'algorithm': '{}'. Warden accepts only '{ALGORITHM}'.",
            echo(algorithm)
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for pair in rest.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return Err(AuthError::malformed(format!(
                "'{}' not a valid key=value pair (missing equal-sign) in Authorization header",
                echo(pair)
            )));
        };
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(AuthError::malformed(format!(
                    "Unknown parameter '{}' in Authorization header",
                    echo(other)
                )))
            }
        };
        if slot.replace(value.trim()).is_some() {
            return Err(AuthError::malformed(format!(
                "Authorization header has more than one '{}' parameter",
                name.trim()
            )));
        }
    }
    let mut missing = String::new();
    for (name, slot) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed_headers),
    ] {
        if slot.is_none_or(str::is_empty) {
            if !missing.is_empty() {
                missing.push(' ');
            }
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter."
            ));
        }
    }
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) if missing.is_empty() => {
            Ok(AuthorizationParts {
                credential,
                signed_headers,
                signature,
            })
        }
        _ => Err(AuthError::malformed(missing)),
    }
}

/// Parses `AKID/YYYYMMDD/REGION/SERVICE/aws4_request`.
pub(crate) fn parse_credential(value: &str) -> Result<Scope, AuthError> {
    let scope = split_credential(value)?;
    Ok(Scope {
        access_key_id: scope.access_key_id.to_owned(),
        date: scope.date.to_owned(),
        region: scope.region.to_owned(),
        service: scope.service.to_owned(),
    })
}

fn split_credential(value: &str) -> Result<ScopeRef<'_>, AuthError> {
    let wrong_shape = || {
        AuthError::malformed(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{}'",
            echo(value)
        ))
    };
    let mut parts = value.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(wrong_shape());
    };
    if terminator != "aws4_request" {
        return Err(AuthError::malformed(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            echo(terminator)
        )));
    }
    if akid.is_empty() || region.is_empty() || service.is_empty() {
        return Err(wrong_shape());
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::malformed(format!(
            "Invalid credential date '{}': the date must be in YYYYMMDD format.",
            echo(date)
        )));
    }
    Ok(ScopeRef {
        access_key_id: akid,
        date,
        region,
        service,
    })
}

/// Parses `SignedHeaders`: lowercase names separated by `;`, sorted, unique, including `host`.
pub(crate) fn parse_signed_headers(value: &str) -> Result<Vec<String>, AuthError> {
    check_signed_headers(value)?;
    Ok(value.split(';').map(str::to_owned).collect())
}

fn check_signed_headers(value: &str) -> Result<(), AuthError> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            })
    };
    if !value.split(';').all(valid_name) {
        return Err(AuthError::malformed(format!(
            "SignedHeaders must be a semicolon-separated list of lowercase header names, \
             got '{}'",
            echo(value)
        )));
    }
    // The canonical request lists headers sorted; a list in another order cannot have been
    // produced by a conforming signer.
    let mut names = value.split(';');
    let mut previous = names.next();
    for name in names {
        if previous.is_some_and(|p| p >= name) {
            return Err(AuthError::malformed(format!(
                "SignedHeaders must be sorted and without duplicates, got '{}'",
                echo(value)
            )));
        }
        previous = Some(name);
    }
    if !value.split(';').any(|n| n == "host") {
        return Err(AuthError::malformed(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(())
}

/// Parses `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format, UTC), the only form SigV4 signs.
pub(crate) fn parse_amz_date(value: &str) -> Result<SystemTime, AuthError> {
    let invalid = || {
        AuthError::malformed(format!(
            "Invalid X-Amz-Date '{}': the date must be in ISO 8601 basic format \
             YYYYMMDD'T'HHMMSS'Z'.",
            echo(value)
        ))
    };
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(invalid());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, AuthError> {
        let digits = &b[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(invalid());
        }
        Ok(digits
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(invalid)?;
    let narrow = |v: u32| u8::try_from(v).map_err(|_| invalid());
    // Year fits i32 (four digits); day and time fields fit u8 (two digits).
    let date =
        time::Date::from_calendar_date(year as i32, month, narrow(day)?).map_err(|_| invalid())?;
    let time = time::Time::from_hms(narrow(hour)?, narrow(minute)?, narrow(second)?)
        .map_err(|_| invalid())?;
    Ok(time::PrimitiveDateTime::new(date, time).assume_utc().into())
}

/// Formats a time as `YYYYMMDDTHHMMSSZ` (the inverse of [`parse_amz_date`]).
///
/// Every verification formats one, so the digits are written directly: 347 instructions,
/// where `format!` took 2,040. Years outside 0-9999 (which no parsed date has) take the
/// general path.
pub(crate) fn format_amz_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    if let Ok(year) = u32::try_from(t.year()) {
        if year <= 9999 {
            let mut out = String::with_capacity(16);
            let mut push = |value: u32, digits: u32| {
                for i in (0..digits).rev() {
                    let digit = (value / 10u32.pow(i)) % 10;
                    out.push(char::from(b'0' + digit as u8));
                }
            };
            push(year, 4);
            push(u32::from(u8::from(t.month())), 2);
            push(u32::from(t.day()), 2);
            out.push('T');
            let mut push = |value: u8| {
                out.push(char::from(b'0' + value / 10));
                out.push(char::from(b'0' + value % 10));
            };
            push(t.hour());
            push(t.minute());
            push(t.second());
            out.push('Z');
            return out;
        }
    }
    general_amz_date(t)
}

/// [`format_amz_date`] by `format!`, for any year.
fn general_amz_date(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// True when the query carries presigned-signature parameters.
pub(crate) fn looks_presigned(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, _)| {
        matches!(
            &*k,
            "X-Amz-Algorithm" | "X-Amz-Credential" | "X-Amz-Signature"
        )
    })
}

/// Parses the presigned form's query parameters.
pub(crate) fn parse_presigned_query(query: &str) -> Result<PresignedQuery, AuthError> {
    let mut found: [Option<String>; 7] = Default::default();
    let mut operation_query = String::with_capacity(query.len());
    for raw in query.split('&').filter(|p| !p.is_empty()) {
        let decoded = form_urlencoded::parse(raw.as_bytes()).next();
        let index = decoded
            .as_ref()
            .and_then(|(k, _)| PRESIGN_PARAMS.iter().position(|p| *p == k));
        match (index, decoded) {
            (Some(i), Some((_, v))) => {
                if found[i].replace(v.into_owned()).is_some() {
                    return Err(AuthError::malformed(format!(
                        "AWS query-string parameter '{}' appears more than once.",
                        PRESIGN_PARAMS[i]
                    )));
                }
            }
            _ => {
                if !operation_query.is_empty() {
                    operation_query.push('&');
                }
                operation_query.push_str(raw);
            }
        }
    }
    let [algorithm, credential, date, expires, signed_headers, signature, token] = found;
    let require = |v: Option<String>, name: &str| {
        v.filter(|v| !v.is_empty()).ok_or_else(|| {
            AuthError::malformed(format!(
                "AWS query-string parameters must include '{name}'. Re-examine the \
                 query-string parameters."
            ))
        })
    };
    let algorithm = require(algorithm, "X-Amz-Algorithm")?;
    let credential = require(credential, "X-Amz-Credential")?;
    let date = require(date, "X-Amz-Date")?;
    let expires = require(expires, "X-Amz-Expires")?;
    let signed_headers = require(signed_headers, "X-Amz-SignedHeaders")?;
    let signature = require(signature, "X-Amz-Signature")?;
    if algorithm != ALGORITHM {
        return Err(AuthError::malformed(format!(
            "X-Amz-Algorithm only supports '{ALGORITHM}', got '{}'",
            echo(&algorithm)
        )));
    }
    // Digits only: the signer writes the number as plain decimal, so `+5` or ` 5` could not
    // have been signed.
    let expires_secs = if expires.len() <= 10 && expires.bytes().all(|b| b.is_ascii_digit()) {
        expires.parse::<u64>().ok()
    } else {
        None
    }
    .filter(|s| (1..=MAX_PRESIGNED_EXPIRES_SECS).contains(s))
    .ok_or_else(|| {
        AuthError::malformed(format!(
            "X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGNED_EXPIRES_SECS} \
             (one week), got '{}'",
            echo(&expires)
        ))
    })?;
    Ok(PresignedQuery {
        scope: parse_credential(&credential)?,
        signed_headers: parse_signed_headers(&signed_headers)?,
        signature,
        date,
        expires_secs,
        session_token: token,
        operation_query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(e: AuthError) -> String {
        assert_eq!(e.code(), "IncompleteSignatureException", "{e:?}");
        e.message()
    }

    #[test]
    fn parses_a_botocore_header() {
        let h = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/lambda/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abcd",
        )
        .unwrap();
        assert_eq!(h.scope.access_key_id, "AKIDEXAMPLE");
        assert_eq!(h.scope.date, "20261126");
        assert_eq!(h.scope.region, "us-east-1");
        assert_eq!(h.scope.service, "lambda");
        assert_eq!(h.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(h.signature, "abcd");
    }

    #[test]
    fn header_errors_are_worded_as_aws() {
        assert_eq!(
            reason(parse_authorization("AWS4-HMAC-SHA256 Credential=a/20261126/r/s/aws4_request").unwrap_err()),
            "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter."
        );
        assert_eq!(
            reason(parse_authorization("AWS AKID:sig").unwrap_err()),
            "Unsupported AWS 'algorithm': 'AWS'. Warden accepts only 'AWS4-HMAC-SHA256'."
        );
        assert_eq!(
            reason(parse_authorization("AWS4-HMAC-SHA256 Credential").unwrap_err()),
            "'Credential' not a valid key=value pair (missing equal-sign) in Authorization header"
        );
        assert_eq!(
            reason(
                parse_authorization(
                    "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=x"
                )
                .unwrap_err()
            ),
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'a/b'"
        );
        assert_eq!(
            reason(parse_credential("a/20261126/r/s/aws5_request").unwrap_err()),
            "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'."
        );
        assert_eq!(
            reason(parse_signed_headers("x-amz-date").unwrap_err()),
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        );
        assert_eq!(
            reason(parse_signed_headers("x-amz-date;host").unwrap_err()),
            "SignedHeaders must be sorted and without duplicates, got 'x-amz-date;host'"
        );
        assert!(parse_signed_headers("Host").is_err());
        assert!(parse_signed_headers("host;;x").is_err());
        assert!(parse_authorization(
            "AWS4-HMAC-SHA256 Credential=a/20261126/r/s/aws4_request, Credential=b/20261126/r/s/aws4_request, SignedHeaders=host, Signature=x"
        )
        .is_err());
    }

    #[test]
    fn dates_round_trip_and_reject_nonsense() {
        let t = parse_amz_date("20261126T235959Z").unwrap();
        assert_eq!(format_amz_date(t), "20261126T235959Z");
        for bad in [
            "20261126T235959",
            "20261326T000000Z",
            "20260230T000000Z",
            "20261126T240000Z",
            "2026-11-26T00:00:00Z",
            "2026112６T000000Z",
            "",
        ] {
            assert!(parse_amz_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn presigned_query_is_split_from_the_operation_query() {
        let q = "Qualifier=%24LATEST&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261126%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=20261126T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=ff&b=";
        let p = parse_presigned_query(q).unwrap();
        assert_eq!(p.operation_query, "Qualifier=%24LATEST&b=");
        assert_eq!(p.scope.access_key_id, "AK");
        assert_eq!(p.expires_secs, 300);
        assert_eq!(p.session_token, None);
        assert!(looks_presigned(q));
        assert!(!looks_presigned("Qualifier=1"));
    }

    #[test]
    fn presigned_expiry_bounds() {
        let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261126%2Fr%2Fs%2Faws4_request&X-Amz-Date=20261126T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=ff";
        assert!(parse_presigned_query(&format!("{base}&X-Amz-Expires=604800")).is_ok());
        for bad in ["604801", "0", "-1", "+5", "99999999999999999999", ""] {
            let e = parse_presigned_query(&format!("{base}&X-Amz-Expires={bad}")).unwrap_err();
            assert_eq!(e.code(), "IncompleteSignatureException", "{bad}");
        }
        let e = parse_presigned_query(base).unwrap_err();
        assert_eq!(
            e.message(),
            "AWS query-string parameters must include 'X-Amz-Expires'. Re-examine the query-string parameters."
        );
        let dup = format!("{base}&X-Amz-Expires=5&X-Amz-Expires=6");
        assert!(parse_presigned_query(&dup).is_err());
    }

    proptest! {
        #[test]
        fn authorization_parser_never_panics(s in "\\PC{0,300}") {
            let _ = parse_authorization(&s);
        }

        #[test]
        fn structured_authorization_never_panics(
            alg in prop_oneof![Just("AWS4-HMAC-SHA256".to_owned()), "[A-Z0-9-]{0,20}"],
            cred in "[a-zA-Z0-9/_-]{0,60}",
            sh in "[a-z;-]{0,40}",
            sig in "[0-9a-f]{0,70}",
            sep in prop_oneof![Just(", "), Just(","), Just(" , "), Just(";")],
        ) {
            let _ = parse_authorization(&format!("{alg} Credential={cred}{sep}SignedHeaders={sh}{sep}Signature={sig}"));
        }

        #[test]
        fn the_claimed_service_is_the_parsed_one(
            akid in "[A-Z0-9]{0,3}",
            date in prop_oneof![4 => "[0-9]{8}", 1 => "[0-9]{7,9}"],
            service in "[a-z]{0,4}",
            terminator in prop_oneof![4 => Just("aws4_request"), 1 => Just("aws4"), 1 => Just("")],
            extra in prop_oneof![4 => Just(""), 1 => Just("/x")],
            sh in prop_oneof![
                Just("host;x-amz-date"), Just("x-amz-date;host"), Just("host;host"),
                Just("content-type;host"), Just("Host"), Just(""), Just("host;;x"),
            ],
            sig in "[0-9a-f]{0,3}",
            sep in prop_oneof![2 => Just(", "), 2 => Just(","), 1 => Just(";")],
        ) {
            let value = format!(
                "AWS4-HMAC-SHA256 Credential={akid}/{date}/us-east-1/{service}/{terminator}{extra}\
                 {sep}SignedHeaders={sh}{sep}Signature={sig}"
            );
            let parsed = parse_authorization(&value).map(|h| h.scope.service);
            let claimed = authorization_service(&value).map(str::to_owned);
            prop_assert_eq!(parsed.is_ok(), claimed.is_ok());
            prop_assert_eq!(parsed.ok(), claimed.ok());
        }

        #[test]
        fn query_parser_never_panics(s in "[a-zA-Z0-9%&=+._~-]{0,300}") {
            let _ = looks_presigned(&s);
            let _ = parse_presigned_query(&s);
        }

        #[test]
        fn the_amz_date_is_the_general_format(secs in -100_000_000_000i64..253_402_300_800i64) {
            let t = time::OffsetDateTime::from_unix_timestamp(secs).expect("in range");
            prop_assert_eq!(format_amz_date(t.into()), general_amz_date(t));
        }

        #[test]
        fn date_parser_never_panics(s in "[0-9TZ]{0,20}") {
            if let Ok(t) = parse_amz_date(&s) {
                prop_assert_eq!(format_amz_date(t), s);
            }
        }
    }
}
