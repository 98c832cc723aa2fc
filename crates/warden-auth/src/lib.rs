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

mod error;
mod parse;
mod sign;
mod verify;

use std::time::SystemTime;

use warden_types::identity::Principal;

pub use error::AuthError;
pub use sign::{presign_request, sign_request, SigningCredentials};
pub use verify::{verify, verify_headers, PendingVerification, MAX_CLOCK_SKEW};

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
