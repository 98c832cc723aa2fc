//! Server-side verification of SigV4 signatures: the checks AWS makes (scope, clock window,
//! payload hash, session token) around one signature computation.
//!
//! A header-signed request (what every SDK and the CLI send) has its signature computed by
//! `canonical`, which writes the canonical request once and keeps derived signing keys; it
//! follows `aws-sigv4`'s rules below exactly, and property tests hold the two to the same
//! signature on generated requests. Presigned URLs, and anything `canonical` declines, are
//! computed by `aws-sigv4` itself.
//!
//! Why `aws-sigv4` is the reference rather than our own reading of the specification: it
//! is the code every Rust AWS SDK signs with, and it can reproduce the canonical request of
//! an incoming request exactly when it is fed (a) only the headers named in `SignedHeaders`,
//! with no exclusion list, (b) the path and query as sent (it applies the non-S3 rules itself:
//! RFC 3986 dot-segment removal, empty segments dropped, each byte of the already-encoded path
//! encoded a second time; query pairs decoded, re-encoded and sorted), (c) the time parsed from
//! `X-Amz-Date`, and (d) for presigned URLs the query without the `X-Amz-*` signature
//! parameters, which it re-adds itself in the order the SigV4 specification gives. The one
//! form it cannot reproduce is a request dated only by a `Date` header (it always signs
//! `x-amz-date`); no AWS SDK or CLI sends that, so such requests are refused as incomplete.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode,
};
use http::request::Parts;
use sha2::{Digest, Sha256};
use warden_types::identity::{Credential, CredentialSource};

use crate::canonical::{self, HeaderForm, SigningKeys};
use crate::parse::{self, Scope};
use crate::{AuthError, Authenticated};

/// How far a header-signed request's `X-Amz-Date` may be from the server's clock, either way.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The payload-hash value by which a signer declares that the body is not signed.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Everything the signature computation needs, from either signature form.
struct Claim {
    scope: Scope,
    signed_headers: Vec<String>,
    signature: String,
    date: String,
    /// `Some(expires)` for the presigned form.
    presigned_expires: Option<u64>,
    session_token: Option<String>,
    /// Whether the token is part of the canonical request (header signed, or query form).
    token_signed: bool,
    /// Path and query to canonicalize.
    path_and_query: String,
}

/// Verifies the SigV4 signature of a request and returns who signed it.
///
/// `parts` and `body` are the request as received; `now` is the server's clock;
/// `expected_region` the region this endpoint serves. The service in the credential scope is
/// returned, not checked: the caller compares it with the operation's service.
///
/// Rules beyond the signature itself (each documented on [`AuthError`]'s variants):
/// - `host` must be signed, and so must `x-amz-date` in the header form; `Date` alone is
///   refused (see the module comment).
/// - Header form: `X-Amz-Date` within [`MAX_CLOCK_SKEW`] of `now`, either way. Presigned form:
///   valid from `X-Amz-Date` (less the same skew, for clients whose clock runs ahead) until
///   `X-Amz-Date + X-Amz-Expires` (at most 7 days), with no skew added at the end.
/// - Payload: without `x-amz-content-sha256` the server hashes `body`. With it, the value must
///   be the body's real SHA-256, except that `UNSIGNED-PAYLOAD` is accepted on presigned
///   requests only. AWS documents `UNSIGNED-PAYLOAD` for S3 and for presigned URLs, where the
///   signer cannot know the body; on a header-signed request it would let anyone replay a
///   captured request with another body during the skew window, and no SDK sends it to a
///   non-S3 service over plain HTTP, so it is refused there.
/// - Session token (`X-Amz-Security-Token`, header or query): present iff the credential has
///   one, and equal to it (compared in constant time); it need not be signed.
/// - The request path must already be in normal form (no `.`, `..` or empty segments): the
///   signature covers the normalized path, so a non-normal path could route differently from
///   what was signed.
///
/// # Errors
/// The first failing check, as an [`AuthError`]; checks that need no secret come first, and a
/// token or expiry problem is reported only once the signature has verified.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    now: SystemTime,
    credentials: &dyn CredentialSource,
    expected_region: &str,
) -> Result<Authenticated, AuthError> {
    verify_headers(parts, now, credentials, expected_region)?.finish(
        parts,
        &Sha256::digest(body).into(),
        now,
        credentials,
    )
}

/// A request whose headers passed every check that does not need the body: the signature
/// data is well formed, the access key is known and active, `X-Amz-Date` is within the clock
/// window and the credential scope names this region. Nothing is authenticated yet: the
/// signature covers the body's hash, so [`PendingVerification::finish`] decides, once the
/// body has been read and hashed.
///
/// This split lets a server refuse a request from an unknown key, or with a stale or
/// malformed signature, before it reads (and buffers) a large body.
pub struct PendingVerification {
    claim: Claim,
    signed_at: SystemTime,
}

/// Names the access key only: the claim holds the signature and any session token, which
/// never go into a log line.
impl std::fmt::Debug for PendingVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingVerification")
            .field("access_key_id", &self.claim.scope.access_key_id)
            .field("service", &self.claim.scope.service)
            .finish_non_exhaustive()
    }
}

/// The first half of [`verify`]: every check on the request's headers (see
/// [`PendingVerification`]), in the same order and with the same errors as [`verify`].
///
/// # Errors
/// The first failing check, as an [`AuthError`]; `MissingAuthentication` when the request
/// carries no signature at all.
pub fn verify_headers(
    parts: &Parts,
    now: SystemTime,
    credentials: &dyn CredentialSource,
    expected_region: &str,
) -> Result<PendingVerification, AuthError> {
    let claim = claim(parts)?;
    let signed_at = parse::parse_amz_date(&claim.date)?;
    if claim.scope.date != claim.date[..8] {
        return Err(AuthError::ScopeDateMismatch {
            scope_date: claim.scope.date,
            request_date: claim.date,
        });
    }
    if claim.scope.region != expected_region {
        return Err(AuthError::WrongRegion {
            expected: expected_region.to_owned(),
            got: claim.scope.region,
        });
    }
    let akid = claim.scope.access_key_id.as_str();
    if credentials.lookup(akid).is_none() {
        return Err(AuthError::UnknownAccessKey {
            access_key_id: akid.to_owned(),
        });
    }
    check_time(&claim, signed_at, now)?;
    Ok(PendingVerification { claim, signed_at })
}

impl PendingVerification {
    /// The service named in the credential scope (`lambda`, `iam`, ...), not yet proven.
    pub fn service(&self) -> &str {
        &self.claim.scope.service
    }

    /// The access key id the request names, not yet proven.
    pub fn access_key_id(&self) -> &str {
        &self.claim.scope.access_key_id
    }

    /// The second half of [`verify`]: checks the payload hash and the signature over
    /// `body_sha256` (the SHA-256 of the body as received), then the session token and the
    /// credential's expiry. `parts` must be the request the pending verification came from.
    ///
    /// The credential is looked up again, so a key deleted while its request's body was
    /// arriving does not authenticate it.
    ///
    /// # Errors
    /// As [`verify`]'s checks after the clock window.
    pub fn finish(
        self,
        parts: &Parts,
        body_sha256: &[u8; 32],
        now: SystemTime,
        credentials: &dyn CredentialSource,
    ) -> Result<Authenticated, AuthError> {
        let Self { claim, signed_at } = self;
        let akid = claim.scope.access_key_id.as_str();
        let credential = credentials
            .lookup(akid)
            .ok_or_else(|| AuthError::UnknownAccessKey {
                access_key_id: akid.to_owned(),
            })?;
        let payload_hash = payload_hash(parts, body_sha256, &claim)?;
        let expected = expected_signature(parts, &claim, &credential, signed_at, payload_hash)?;
        if !constant_time_eq::constant_time_eq(expected.as_bytes(), claim.signature.as_bytes()) {
            return Err(AuthError::mismatch(akid, "signature"));
        }
        check_session_token(&claim, &credential)?;
        if let Some(expires_at_ms) = credential.expires_at_ms {
            if epoch_ms(now) >= expires_at_ms {
                return Err(AuthError::ExpiredToken {
                    access_key_id: credential.access_key_id,
                });
            }
        }
        Ok(Authenticated {
            principal: credential.principal,
            access_key_id: credential.access_key_id,
            service: claim.scope.service,
            region: claim.scope.region,
            signed_at,
            presigned: claim.presigned_expires.is_some(),
        })
    }
}

/// Reads the signature data out of the request, in whichever form it came.
fn claim(parts: &Parts) -> Result<Claim, AuthError> {
    let query = parts.uri.query().unwrap_or("");
    let mut authorization = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let header = authorization.next();
    if authorization.next().is_some() {
        return Err(AuthError::malformed(
            "The request has more than one Authorization header.",
        ));
    }
    let presigned = parse::looks_presigned(query);
    match (header, presigned) {
        (None, false) => Err(AuthError::MissingAuthentication),
        (Some(_), true) => Err(AuthError::malformed(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified",
        )),
        (Some(value), false) => {
            let value = value.to_str().map_err(|_| {
                AuthError::malformed("The Authorization header is not valid ASCII text.")
            })?;
            let h = parse::parse_authorization(value)?;
            let date = single_header(parts, "x-amz-date")?;
            let Some(date) = date else {
                let reason = if parts.headers.contains_key(http::header::DATE) {
                    "Warden requires the 'X-Amz-Date' header: requests dated only by a 'Date' \
                     header are not supported."
                } else {
                    "Authorization header requires existence of either a 'X-Amz-Date' or a \
                     'Date' header."
                };
                return Err(AuthError::malformed(reason));
            };
            if !h.signed_headers.iter().any(|n| n == "x-amz-date") {
                return Err(AuthError::malformed(
                    "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
                ));
            }
            let session_token = single_header(parts, "x-amz-security-token")?;
            Ok(Claim {
                token_signed: h.signed_headers.iter().any(|n| n == "x-amz-security-token"),
                scope: h.scope,
                signed_headers: h.signed_headers,
                signature: h.signature,
                date: date.to_owned(),
                presigned_expires: None,
                session_token: session_token.map(str::to_owned),
                path_and_query: path_and_query(parts.uri.path(), query),
            })
        }
        (None, true) => {
            let p = parse::parse_presigned_query(query)?;
            Ok(Claim {
                scope: p.scope,
                signed_headers: p.signed_headers,
                signature: p.signature,
                date: p.date,
                presigned_expires: Some(p.expires_secs),
                token_signed: p.session_token.is_some(),
                session_token: p.session_token,
                path_and_query: path_and_query(parts.uri.path(), &p.operation_query),
            })
        }
    }
}

fn path_and_query(path: &str, query: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// The value of a header that may appear at most once, as text.
fn single_header<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut values = parts.headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::malformed(format!(
            "The request has more than one '{name}' header."
        )));
    }
    first
        .map(|v| {
            v.to_str()
                .map_err(|_| AuthError::malformed(format!("The '{name}' header is not ASCII.")))
        })
        .transpose()
}

fn check_time(claim: &Claim, signed_at: SystemTime, now: SystemTime) -> Result<(), AuthError> {
    let fmt = parse::format_amz_date;
    match claim.presigned_expires {
        None => {
            if signed_at + MAX_CLOCK_SKEW < now {
                let limit = now.checked_sub(MAX_CLOCK_SKEW).unwrap_or(now);
                return Err(AuthError::SignatureExpired {
                    detail: format!(
                        "{} is now earlier than {} ({} - 5 min.)",
                        claim.date,
                        fmt(limit),
                        fmt(now)
                    ),
                });
            }
            if signed_at > now + MAX_CLOCK_SKEW {
                return Err(AuthError::SignatureNotYetCurrent {
                    detail: format!(
                        "{} is still later than {} ({} + 5 min.)",
                        claim.date,
                        fmt(now + MAX_CLOCK_SKEW),
                        fmt(now)
                    ),
                });
            }
        }
        Some(expires) => {
            let end = signed_at + Duration::from_secs(expires);
            if end < now {
                return Err(AuthError::SignatureExpired {
                    detail: format!(
                        "{} is now earlier than {} ({} + {expires} sec. = {})",
                        fmt(end),
                        fmt(now),
                        claim.date,
                        fmt(end)
                    ),
                });
            }
            if signed_at > now + MAX_CLOCK_SKEW {
                return Err(AuthError::SignatureNotYetCurrent {
                    detail: format!(
                        "{} is still later than {} ({} + 5 min.)",
                        claim.date,
                        fmt(now + MAX_CLOCK_SKEW),
                        fmt(now)
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The payload hash to put in the canonical request (see [`verify`] for the rules).
fn payload_hash(parts: &Parts, body_sha256: &[u8; 32], claim: &Claim) -> Result<String, AuthError> {
    let akid = &claim.scope.access_key_id;
    let mut real = String::with_capacity(64);
    crate::canonical::push_hex(&mut real, body_sha256);
    match single_header(parts, "x-amz-content-sha256")? {
        None => Ok(real),
        Some(UNSIGNED_PAYLOAD) if claim.presigned_expires.is_some() => {
            Ok(UNSIGNED_PAYLOAD.to_owned())
        }
        Some(UNSIGNED_PAYLOAD) => Err(AuthError::mismatch(
            akid,
            "UNSIGNED-PAYLOAD on a header-signed request",
        )),
        Some(declared) if declared == real => Ok(real),
        Some(_) => Err(AuthError::mismatch(akid, "payload hash")),
    }
}

/// The signing keys derived so far, shared by every verification of the process.
static SIGNING_KEYS: std::sync::LazyLock<SigningKeys> =
    std::sync::LazyLock::new(SigningKeys::default);

/// Computes the signature the request should carry: header-signed requests with
/// [`canonical`], anything it declines and every presigned URL with `aws-sigv4`.
fn expected_signature(
    parts: &Parts,
    claim: &Claim,
    credential: &Credential,
    signed_at: SystemTime,
    payload_hash: String,
) -> Result<String, AuthError> {
    let akid = claim.scope.access_key_id.as_str();
    // INVARIANT: the canonical request covers the normalized path; refusing any other path
    // makes "what was signed" and "what the router sees" the same string.
    if !is_normalized(parts.uri.path()) {
        return Err(AuthError::mismatch(akid, "path not in normal form"));
    }
    if claim.presigned_expires.is_none() {
        if let Some(signature) = canonical::signature(
            &header_form(parts, claim, signed_at, &payload_hash),
            &credential.secret_access_key,
            &SIGNING_KEYS,
        ) {
            return Ok(signature);
        }
    }
    sdk_signature(parts, claim, credential, signed_at, payload_hash)
}

fn header_form<'a>(
    parts: &'a Parts,
    claim: &'a Claim,
    signed_at: SystemTime,
    payload_hash: &'a str,
) -> HeaderForm<'a> {
    HeaderForm {
        parts,
        scope: &claim.scope,
        signed_headers: &claim.signed_headers,
        path_and_query: &claim.path_and_query,
        signed_at,
        signed_token: claim
            .session_token
            .as_deref()
            .filter(|_| claim.token_signed),
        payload_hash,
    }
}

/// The signature the request should carry, computed by `aws-sigv4`'s signer.
fn sdk_signature(
    parts: &Parts,
    claim: &Claim,
    credential: &Credential,
    signed_at: SystemTime,
    payload_hash: String,
) -> Result<String, AuthError> {
    let akid = claim.scope.access_key_id.as_str();
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(claim.signed_headers.len() + 1);
    for name in &claim.signed_headers {
        let mut values = parts.headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            if name == "host" {
                // HTTP/2 and absolute-form requests carry the host in the URI instead.
                match parts.uri.authority() {
                    Some(authority) => headers.push(("host", authority.as_str())),
                    None => return Err(AuthError::mismatch(akid, "no host header")),
                }
                continue;
            }
            return Err(AuthError::mismatch(akid, "a signed header is absent"));
        }
        for value in values {
            let value = value
                .to_str()
                .map_err(|_| AuthError::mismatch(akid, "a signed header is not text"))?;
            headers.push((name.as_str(), value));
        }
    }
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
    // Only signed headers are passed in, so nothing may be left out of them.
    settings.excluded_headers = None;
    settings.session_token_mode = if claim.token_signed {
        SessionTokenMode::Include
    } else {
        SessionTokenMode::Exclude
    };
    if let Some(expires) = claim.presigned_expires {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
    }
    // The request's own token is signed in (the stored one is compared afterwards), so that a
    // wrong token is reported as such and not as a bad signature.
    let identity = aws_credential_types::Credentials::new(
        akid,
        credential.secret_access_key.clone(),
        claim.session_token.clone(),
        None,
        "warden-verifier",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&claim.scope.region)
        .name(&claim.scope.service)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|_| AuthError::mismatch(akid, "signing parameters"))?
        .into();
    let request = SignableRequest::new(
        parts.method.as_str(),
        claim.path_and_query.as_str(),
        headers.into_iter(),
        SignableBody::Precomputed(payload_hash),
    )
    .map_err(|_| AuthError::mismatch(akid, "request cannot be canonicalized"))?;
    let output = aws_sigv4::http_request::sign(request, &params)
        .map_err(|_| AuthError::mismatch(akid, "request cannot be canonicalized"))?;
    Ok(output.into_parts().1)
}

/// True when RFC 3986 dot-segment removal and empty-segment removal leave `path` unchanged.
fn is_normalized(path: &str) -> bool {
    if path.is_empty() || path == "/" {
        return true;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/')
        .all(|segment| !matches!(segment, "" | "." | ".."))
}

fn check_session_token(claim: &Claim, credential: &Credential) -> Result<(), AuthError> {
    let ok = match (&claim.session_token, &credential.session_token) {
        (None, None) => true,
        (Some(sent), Some(stored)) => {
            constant_time_eq::constant_time_eq(sent.as_bytes(), stored.as_bytes())
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::SessionTokenMismatch {
            access_key_id: credential.access_key_id.clone(),
        })
    }
}

fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn credential(secret: &str, token: Option<&str>) -> Credential {
        Credential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: secret.into(),
            session_token: token.map(str::to_owned),
            expires_at_ms: None,
            principal: warden_types::identity::Principal {
                arn: "arn:aws:iam::123456789012:user/u".into(),
                account: "123456789012".into(),
                name: "u".into(),
                id: "AIDAEXAMPLE".into(),
                kind: warden_types::identity::PrincipalKind::User,
                tags: Default::default(),
                session: None,
            },
        }
    }

    /// A request as a client could send it, and the claim its `Authorization` would give.
    struct Generated {
        parts: Parts,
        claim: Claim,
        signed_at: SystemTime,
    }

    impl std::fmt::Debug for Generated {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Generated")
                .field("parts", &self.parts)
                .field("signed_headers", &self.claim.signed_headers)
                .field("path_and_query", &self.claim.path_and_query)
                .field("token_signed", &self.claim.token_signed)
                .field("signed_at", &self.signed_at)
                .finish()
        }
    }

    fn generated() -> impl Strategy<Value = Generated> {
        let segment = "([A-Za-z0-9._~:@!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){1,6}"
            .prop_filter("not a dot segment", |s| s != "." && s != "..");
        let query = "([A-Za-z0-9._~:@!$'()*+,;=/?-]|%[0-9A-Fa-f]{2}|&|%zz){0,24}";
        let value = "[ -~\t]{0,10}";
        (
            prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"]),
            prop::collection::vec(segment, 0..4),
            any::<bool>(),
            query,
            "[a-z0-9.:]{1,10}",
            prop::collection::vec(
                (
                    prop::sample::select(vec!["content-type", "x-a", "x-amz-target", "x-b"]),
                    value,
                ),
                0..5,
            ),
            prop::option::of(("[A-Za-z0-9+/=]{1,20}", any::<bool>())),
            0u64..4_000_000_000,
            prop::sample::select(vec!["lambda", "iam", "sts"]),
        )
            .prop_filter_map(
                "a URI the http crate takes",
                |(method, segments, trailing, query, host, extra, token, secs, service)| {
                    let mut path = String::new();
                    for s in &segments {
                        path.push('/');
                        path.push_str(s);
                    }
                    if path.is_empty() || trailing {
                        path.push('/');
                    }
                    let uri = if query.is_empty() {
                        path.clone()
                    } else {
                        format!("{path}?{query}")
                    };
                    let signed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
                    let date = parse::format_amz_date(signed_at);
                    let mut builder = http::Request::builder()
                        .method(method)
                        .uri(uri.as_str())
                        .header("host", format!("  {host} "))
                        .header("x-amz-date", &date);
                    let mut names = vec!["host".to_owned(), "x-amz-date".to_owned()];
                    for (name, v) in &extra {
                        builder = builder.header(*name, v.as_str());
                        names.push((*name).to_owned());
                    }
                    let token_signed = token.as_ref().is_some_and(|(_, signed)| *signed);
                    if let Some((t, _)) = &token {
                        builder = builder.header("x-amz-security-token", t.as_str());
                        if token_signed {
                            names.push("x-amz-security-token".to_owned());
                        }
                    }
                    names.sort();
                    names.dedup();
                    let (parts, ()) = builder.body(()).ok()?.into_parts();
                    let query = parts.uri.query().unwrap_or("").to_owned();
                    let claim = Claim {
                        scope: Scope {
                            access_key_id: "AKIDEXAMPLE".into(),
                            date: date[..8].to_owned(),
                            region: "us-east-1".into(),
                            service: service.into(),
                        },
                        signed_headers: names,
                        signature: String::new(),
                        date,
                        presigned_expires: None,
                        session_token: token.map(|(t, _)| t),
                        token_signed,
                        path_and_query: path_and_query(parts.uri.path(), &query),
                    };
                    Some(Generated {
                        parts,
                        claim,
                        signed_at,
                    })
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The canonical module and `aws-sigv4`'s signer agree on every generated request:
        /// same signature, or both decline.
        #[test]
        fn the_fast_signature_is_the_sdk_signature(
            g in generated(),
            secret in "[A-Za-z0-9+/]{40}",
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let credential = credential(&secret, g.claim.session_token.as_deref());
            let hash = hex::encode(Sha256::digest(&body));
            let keys = SigningKeys::default();
            let fast = canonical::signature(
                &header_form(&g.parts, &g.claim, g.signed_at, &hash),
                &secret,
                &keys,
            );
            let sdk = sdk_signature(&g.parts, &g.claim, &credential, g.signed_at, hash.clone()).ok();
            prop_assert_eq!(&fast, &sdk);
            prop_assert!(fast.is_some());
            // A second time, from the cached key.
            let again = canonical::signature(
                &header_form(&g.parts, &g.claim, g.signed_at, &hash),
                &secret,
                &keys,
            );
            prop_assert_eq!(&again, &sdk);
        }

        /// A request signed by the SDK's signer verifies, and any one change to what the
        /// signature covers (method, a signed header, the query, the body) is refused.
        #[test]
        fn sdk_signed_requests_verify_and_tampered_ones_do_not(
            g in generated(),
            secret in "[A-Za-z0-9+/]{40}",
            tamper in 0usize..4,
        ) {
            let credential = credential(&secret, g.claim.session_token.as_deref());
            let hash = hex::encode(Sha256::digest(b"{}"));
            let signature = sdk_signature(&g.parts, &g.claim, &credential, g.signed_at, hash.clone()).unwrap();
            let keys = SigningKeys::default();
            let ok = canonical::signature(&header_form(&g.parts, &g.claim, g.signed_at, &hash), &secret, &keys);
            prop_assert_eq!(ok.as_deref(), Some(signature.as_str()));

            let mut parts = g.parts.clone();
            let mut hash2 = hash.clone();
            let mut claim_path = g.claim.path_and_query.clone();
            match tamper {
                0 => parts.method = if parts.method == http::Method::GET { http::Method::POST } else { http::Method::GET },
                1 => { parts.headers.insert("host", http::HeaderValue::from_static("elsewhere")); }
                2 => claim_path.push_str(if claim_path.contains('?') { "&extra=1" } else { "?extra=1" }),
                _ => hash2 = hex::encode(Sha256::digest(b"{\"other\":1}")),
            }
            let claim = Claim { path_and_query: claim_path, ..clone_claim(&g.claim) };
            let changed = canonical::signature(&header_form(&parts, &claim, g.signed_at, &hash2), &secret, &keys);
            prop_assert!(changed.is_some());
            prop_assert_ne!(changed.as_deref(), Some(signature.as_str()));
        }
    }

    fn clone_claim(c: &Claim) -> Claim {
        Claim {
            scope: c.scope.clone(),
            signed_headers: c.signed_headers.clone(),
            signature: c.signature.clone(),
            date: c.date.clone(),
            presigned_expires: c.presigned_expires,
            session_token: c.session_token.clone(),
            token_signed: c.token_signed,
            path_and_query: c.path_and_query.clone(),
        }
    }

    #[test]
    fn a_request_without_a_host_header_is_left_to_the_sdk_signer() {
        let (parts, ()) = http::Request::builder()
            .uri("http://example.com/path")
            .header("x-amz-date", "20261206T120000Z")
            .body(())
            .unwrap()
            .into_parts();
        let signed_at = parse::parse_amz_date("20261206T120000Z").unwrap();
        let claim = Claim {
            scope: Scope {
                access_key_id: "AKIDEXAMPLE".into(),
                date: "20261206".into(),
                region: "us-east-1".into(),
                service: "lambda".into(),
            },
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: String::new(),
            date: "20261206T120000Z".into(),
            presigned_expires: None,
            session_token: None,
            token_signed: false,
            path_and_query: "/path".into(),
        };
        let hash = hex::encode(Sha256::digest(b""));
        let keys = SigningKeys::default();
        assert_eq!(
            canonical::signature(&header_form(&parts, &claim, signed_at, &hash), "s", &keys),
            None
        );
        let c = credential("s", None);
        let via_sdk = expected_signature(&parts, &claim, &c, signed_at, hash.clone()).unwrap();
        assert_eq!(
            via_sdk,
            sdk_signature(&parts, &claim, &c, signed_at, hash).unwrap()
        );
    }

    #[test]
    fn normal_paths() {
        for ok in [
            "/",
            "",
            "/a",
            "/a/",
            "/2015-03-31/functions/f%3Ax/invocations",
        ] {
            assert!(is_normalized(ok), "{ok}");
        }
        for bad in [
            "/a//b", "//", "/a/./b", "/a/../b", "/..", "/.", "a", "/a/..",
        ] {
            assert!(!is_normalized(bad), "{bad}");
        }
    }
}
