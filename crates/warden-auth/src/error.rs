//! Why a request was not authenticated, with the AWS error code, HTTP status and client-facing
//! message for each case.
//!
//! Two texts per error: `Display` (lowercase, for logs, may name the access key id) and
//! [`AuthError::message`] (AWS's own wording, safe to send to the caller). Neither ever contains
//! a secret access key, a session token or the expected signature.

/// AWS's message for a signature that does not verify; AWS gives no detail, and neither do we,
/// so a caller cannot learn which part of the request we canonicalized differently.
const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
     service documentation for details.";
const INVALID_TOKEN: &str = "The security token included in the request is invalid.";

/// A request that could not be authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Neither an `Authorization` header nor presigned query parameters.
    #[error("the request carries no signature")]
    MissingAuthentication,
    /// The signature data is present but unusable (malformed header, missing parameter, ...).
    /// `reason` is AWS-worded and sent to the caller.
    #[error("malformed signature: {reason}")]
    Malformed {
        /// What is wrong, in AWS's words.
        reason: String,
    },
    /// No active credential has this access key id.
    #[error("unknown access key id `{access_key_id}`")]
    UnknownAccessKey {
        /// The access key id the request names.
        access_key_id: String,
    },
    /// The session token is missing, present for a long-term key, or not the credential's.
    #[error("session token does not match the credential of `{access_key_id}`")]
    SessionTokenMismatch {
        /// The access key id the request names.
        access_key_id: String,
    },
    /// The credential (a temporary one) has expired.
    #[error("the temporary credential `{access_key_id}` has expired")]
    ExpiredToken {
        /// The access key id the request names.
        access_key_id: String,
    },
    /// The credential scope names another region than the one this endpoint serves.
    #[error("credential scoped to region `{got}` but this endpoint serves `{expected}`")]
    WrongRegion {
        /// The region this endpoint serves.
        expected: String,
        /// The region in the request's credential scope.
        got: String,
    },
    /// The credential scope's date is not the date of `X-Amz-Date`.
    #[error("credential scope date `{scope_date}` is not the date of `{request_date}`")]
    ScopeDateMismatch {
        /// `YYYYMMDD` from the credential scope.
        scope_date: String,
        /// `YYYYMMDDTHHMMSSZ` from `X-Amz-Date`.
        request_date: String,
    },
    /// The request was signed too long ago (or its presigned lifetime is over).
    #[error("signature expired: {detail}")]
    SignatureExpired {
        /// AWS-worded: `20261126T000000Z is now earlier than ...`.
        detail: String,
    },
    /// The request was signed too far in the future.
    #[error("signature not yet current: {detail}")]
    SignatureNotYetCurrent {
        /// AWS-worded: `20261126T002000Z is still later than ...`.
        detail: String,
    },
    /// The signature does not verify; `step` says (for logs only) what differed.
    #[error("signature mismatch for `{access_key_id}`: {step}")]
    SignatureMismatch {
        /// The access key id the request names.
        access_key_id: String,
        /// What failed: `signature`, `payload hash`, `path not normalized`, ...
        step: &'static str,
    },
    /// Signing a request on the client side failed (a header or token is not a valid HTTP
    /// value, or the URI cannot be parsed).
    #[error("cannot sign the request: {reason}")]
    Signing {
        /// What went wrong.
        reason: String,
    },
}

impl AuthError {
    /// The AWS error code (`x-amzn-ErrorType`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAuthentication => "MissingAuthenticationTokenException",
            Self::Malformed { .. } => "IncompleteSignatureException",
            Self::UnknownAccessKey { .. } | Self::SessionTokenMismatch { .. } => {
                "UnrecognizedClientException"
            }
            Self::ExpiredToken { .. } => "ExpiredTokenException",
            Self::WrongRegion { .. }
            | Self::ScopeDateMismatch { .. }
            | Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::SignatureMismatch { .. } => "InvalidSignatureException",
            Self::Signing { .. } => "InternalFailure",
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed { .. } => 400,
            Self::Signing { .. } => 500,
            _ => 403,
        }
    }

    /// The message to send to the caller, worded as AWS words it. Never contains a secret or
    /// the expected signature.
    pub fn message(&self) -> String {
        match self {
            Self::MissingAuthentication => "Missing Authentication Token".to_owned(),
            Self::Malformed { reason } => reason.clone(),
            Self::UnknownAccessKey { .. } | Self::SessionTokenMismatch { .. } => {
                INVALID_TOKEN.to_owned()
            }
            Self::ExpiredToken { .. } => {
                "The security token included in the request is expired".to_owned()
            }
            Self::WrongRegion { expected, got } => format!(
                "Credential should be scoped to a valid region, not '{got}'. \
                 This endpoint serves region '{expected}'."
            ),
            Self::ScopeDateMismatch {
                scope_date,
                request_date,
            } => format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of \
                 date from HTTP: '{scope_date}' != '{}', from '{request_date}'.",
                request_date.get(..8).unwrap_or(request_date)
            ),
            Self::SignatureExpired { detail } => format!("Signature expired: {detail}"),
            Self::SignatureNotYetCurrent { detail } => {
                format!("Signature not yet current: {detail}")
            }
            Self::SignatureMismatch { .. } => SIGNATURE_MISMATCH.to_owned(),
            Self::Signing { reason } => format!("cannot sign the request: {reason}"),
        }
    }

    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed {
            reason: reason.into(),
        }
    }

    pub(crate) fn mismatch(access_key_id: &str, step: &'static str) -> Self {
        Self::SignatureMismatch {
            access_key_id: access_key_id.to_owned(),
            step,
        }
    }
}
