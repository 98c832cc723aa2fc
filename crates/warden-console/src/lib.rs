//! The web console: pages rendered on the server from the AWS API's own responses.
//!
//! This crate does no I/O. The API's console module signs a browser in, makes each call
//! a page needs through the same request pipeline as the AWS CLI's calls (authorized by
//! IAM for the signed-in principal, validated and recorded in the audit trail), and hands
//! the responses, as the wire's JSON, to the views here. A call the principal may not make
//! shows as a refusal in its section of the page; nothing is hidden by the console itself.
//!
//! - [`session`]: sessions, their cookie and CSRF tokens.
//! - [`view`]: the pages (HTML through `maud`, which escapes every value it is given).
//! - [`chart`]: charts as SVG, drawn by `plotters`.
//! - [`metrics`]: reading `GetMetricData`'s results into chart lines and summaries.
//! - [`assets`]: the style sheet and script, built into the binary; no third-party asset
//!   is ever fetched, so the console works air-gapped.

pub mod assets;
pub mod chart;
pub mod metrics;
pub mod session;
pub mod view;

/// The Content-Security-Policy every console response carries: nothing but the
/// console's own script, style and event stream; no inline script or style, no frames,
/// forms only to the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The other headers every console response carries, as (name, value).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// A call a page made that did not succeed: the AWS error code and message, as the CLI
/// would show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The HTTP status.
    pub status: u16,
    /// The error code (`AccessDeniedException`, ...).
    pub code: String,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// What one call gave a page: the response's JSON, or the error.
pub type Fetched = Result<serde_json::Value, CallError>;
