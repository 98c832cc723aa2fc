//! Client-side SigV4 signing with `aws-sigv4`, for Warden's own clients (the `warden` CLI) and
//! for tests that need requests signed exactly as the AWS SDKs sign them.

use std::{fmt, time::Duration, time::SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use http::{HeaderValue, Request};

use crate::AuthError;

/// The keys a client signs with. `Debug` never prints the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningCredentials {
    /// `AKIA...` or `ASIA...`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// Set for temporary credentials; sent as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for SigningCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Signs `request` in place with an `Authorization` header (plus `X-Amz-Date` and, for
/// temporary credentials, `X-Amz-Security-Token`), hashing `body` into the signature as the
/// AWS CLI does for Lambda (no `x-amz-content-sha256` header is added).
///
/// The request URI must be absolute (`http://host:port/path?query`, already percent-encoded)
/// or the request must carry a `Host` header; every header present is signed except those the
/// SDKs leave out (`user-agent`, `x-amzn-trace-id`, `transfer-encoding`).
///
/// # Errors
/// [`AuthError::Signing`] when the request has no host, a header is not text, or the token is
/// not a valid header value.
pub fn sign_request<B>(
    request: &mut Request<B>,
    body: &[u8],
    credentials: &SigningCredentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<(), AuthError> {
    // A stale signature or date from an earlier attempt must not be signed over.
    for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
        request.headers_mut().remove(name);
    }
    let settings = SigningSettings::default();
    let (headers, _) = run_signer(
        request,
        SignableBody::Bytes(body),
        credentials,
        region,
        service,
        now,
        settings,
    )?;
    for (name, value) in headers {
        let value = HeaderValue::from_str(&value).map_err(|_| AuthError::Signing {
            reason: format!("the `{name}` value is not a valid header value"),
        })?;
        request.headers_mut().insert(name, value);
    }
    Ok(())
}

/// Presigns `request`: adds the `X-Amz-*` query parameters (signing only the headers present,
/// normally just `host`) so that the URL alone authorizes the request for `expires_in`.
/// The body is hashed into the signature as it is (empty for a GET).
///
/// # Errors
/// As [`sign_request`], and when `expires_in` is zero or longer than 7 days.
pub fn presign_request<B>(
    request: &mut Request<B>,
    body: &[u8],
    credentials: &SigningCredentials,
    region: &str,
    service: &str,
    now: SystemTime,
    expires_in: Duration,
) -> Result<(), AuthError> {
    let secs = expires_in.as_secs();
    if !(1..=crate::parse::MAX_PRESIGNED_EXPIRES_SECS).contains(&secs) {
        return Err(AuthError::Signing {
            reason: format!("a presigned URL must expire within 1 s to 7 days, not {secs} s"),
        });
    }
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(secs));
    let (_, params) = run_signer(
        request,
        SignableBody::Bytes(body),
        credentials,
        region,
        service,
        now,
        settings,
    )?;
    let mut uri = request.uri().to_string();
    let mut separator = if request.uri().query().is_some_and(|q| !q.is_empty()) {
        '&'
    } else if uri.ends_with('?') {
        // `http::Uri` keeps a bare `?`: append right after it.
        '\0'
    } else {
        '?'
    };
    for (name, value) in params {
        if separator != '\0' {
            uri.push(separator);
        }
        separator = '&';
        uri.push_str(name);
        uri.push('=');
        uri.extend(form_urlencoded::byte_serialize(value.as_bytes()));
    }
    *request.uri_mut() = uri.parse().map_err(|e| AuthError::Signing {
        reason: format!("the presigned URI does not parse: {e}"),
    })?;
    Ok(())
}

type Headers = Vec<(&'static str, String)>;
type Params = Vec<(&'static str, String)>;

fn run_signer<B>(
    request: &Request<B>,
    body: SignableBody<'_>,
    credentials: &SigningCredentials,
    region: &str,
    service: &str,
    now: SystemTime,
    settings: SigningSettings,
) -> Result<(Headers, Params), AuthError> {
    let failed = |reason: String| AuthError::Signing { reason };
    // aws-sigv4 panics when it cannot find a host anywhere: check first.
    if request.uri().authority().is_none() && !request.headers().contains_key(http::header::HOST) {
        return Err(failed(
            "the request has neither an absolute URI nor a `host` header".to_owned(),
        ));
    }
    let mut headers = Vec::with_capacity(request.headers().len());
    for (name, value) in request.headers() {
        let value = value
            .to_str()
            .map_err(|_| failed(format!("the `{name}` header is not text")))?;
        headers.push((name.as_str(), value));
    }
    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.clone(),
        credentials.session_token.clone(),
        None,
        "warden",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| failed(e.to_string()))?
        .into();
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(
        request.method().as_str(),
        uri.as_str(),
        headers.into_iter(),
        body,
    )
    .map_err(|e| failed(e.to_string()))?;
    let output =
        aws_sigv4::http_request::sign(signable, &params).map_err(|e| failed(e.to_string()))?;
    let (instructions, _signature) = output.into_parts();
    let (headers, params) = instructions.into_parts();
    Ok((
        headers
            .into_iter()
            .map(|h| (h.name(), h.value().to_owned()))
            .collect(),
        params
            .into_iter()
            .map(|(k, v)| (k, v.into_owned()))
            .collect(),
    ))
}
