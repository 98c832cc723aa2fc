//! The errors of function URL operations, each carrying the error code and HTTP status
//! Lambda answers with, so that the API renders them unchanged.
//!
//! Which code a refusal gets follows Lambda's two layers of checks:
//!
//! - a value that breaks the service model's own constraints (an enum outside its set, a
//!   list or string over its length, a number out of range, a required member missing, a
//!   string off its pattern) is a `ValidationException` whose message has the model's
//!   `1 validation error detected: Value ... at 'member' failed to satisfy constraint: ...`
//!   shape, as Lambda's front end reports it;
//! - a value the model allows and the service refuses (a CORS method outside
//!   `GET PUT HEAD POST PATCH DELETE *`, a header name that is not an HTTP token) is an
//!   `InvalidParameterValueException` naming the member;
//! - a body that is not JSON, a member of the wrong JSON type, or a member the model does
//!   not define is an `InvalidRequestContentException` naming it: unknown members are
//!   refused rather than dropped, so that a misspelt setting is never silently ignored.

/// Why a function URL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// A value outside the service model's constraints (`ValidationException`, 400).
    #[error("{0}")]
    Validation(String),
    /// A value the model allows and Lambda refuses (`InvalidParameterValueException`, 400).
    #[error("{0}")]
    InvalidParameter(String),
    /// A body that does not parse, a member of the wrong type, or an unknown member
    /// (`InvalidRequestContentException`, 400).
    #[error("{0}")]
    InvalidContent(String),
    /// No such function URL (`ResourceNotFoundException`, 404).
    #[error("{0}")]
    NotFound(String),
    /// The function (or alias) has a function URL already (`ResourceConflictException`,
    /// 409).
    #[error("{0}")]
    Conflict(String),
    /// Warden's bound on function URLs is reached (`ServiceQuotaExceededException`, 402:
    /// the code Lambda's model defines for a request that would exceed a service quota,
    /// which the SDKs do not retry, unlike `TooManyRequestsException`).
    #[error("{0}")]
    QuotaExceeded(String),
    /// The store failed (`ServiceException`, 500); details are for the log, not the
    /// caller.
    #[error("the function URL store failed while {context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: warden_sqlite::Error,
    },
    /// The store shared with other nodes (PostgreSQL) failed (`ServiceException`, 500).
    #[error("the function URL store failed while {context}: {source}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// The underlying error (never the connection's password).
        #[source]
        source: warden_postgres::Error,
    },
    /// A stored row that this build cannot read (`ServiceException`, 500): refused
    /// rather than guessed at, since a guessed `AuthType` could open a URL to everyone.
    #[error("the function URL store holds a row it cannot read: {0}")]
    Corrupt(String),
}

impl UrlError {
    /// Lambda's error code.
    pub fn code(&self) -> &'static str {
        match self {
            UrlError::Validation(_) => "ValidationException",
            UrlError::InvalidParameter(_) => "InvalidParameterValueException",
            UrlError::InvalidContent(_) => "InvalidRequestContentException",
            UrlError::NotFound(_) => "ResourceNotFoundException",
            UrlError::Conflict(_) => "ResourceConflictException",
            UrlError::QuotaExceeded(_) => "ServiceQuotaExceededException",
            UrlError::Store { .. } | UrlError::Shared { .. } | UrlError::Corrupt(_) => {
                "ServiceException"
            }
        }
    }

    /// The HTTP status Lambda answers the error with.
    pub fn status(&self) -> u16 {
        match self {
            UrlError::Validation(_)
            | UrlError::InvalidParameter(_)
            | UrlError::InvalidContent(_) => 400,
            UrlError::NotFound(_) => 404,
            UrlError::Conflict(_) => 409,
            UrlError::QuotaExceeded(_) => 402,
            UrlError::Store { .. } | UrlError::Shared { .. } | UrlError::Corrupt(_) => 500,
        }
    }

    /// Whether the failure is the server's, not the request's: its message is logged and
    /// a generic one sent.
    pub fn is_internal(&self) -> bool {
        matches!(self, UrlError::Store { .. } | UrlError::Corrupt(_))
    }

    /// A `ValidationException` in the model's words: `value` (already quoted as the
    /// model quotes it, or `null`) at `member` fails `constraint`.
    pub(crate) fn constraint(value: &str, member: &str, constraint: &str) -> UrlError {
        UrlError::Validation(format!(
            "1 validation error detected: Value {value} at '{member}' failed to satisfy constraint: {constraint}"
        ))
    }

    /// The refusal of a missing required member.
    pub(crate) fn missing(member: &str) -> UrlError {
        UrlError::constraint("null", member, "Member must not be null")
    }
}

/// `value` quoted for a validation message, cut to 64 characters so that a huge value
/// never floods a response or a log.
pub(crate) fn shown(value: &str) -> String {
    let mut s: String = value.chars().take(64).collect();
    if s.len() < value.len() {
        s.push_str("...");
    }
    format!("'{s}'")
}

/// Maps a SQLite error to [`UrlError::Store`] with `context`.
pub(crate) fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> UrlError {
    move |e| UrlError::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}

pub(crate) fn shared(context: &'static str) -> impl FnOnce(warden_postgres::Error) -> UrlError {
    move |source| UrlError::Shared { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_lambdas() {
        let cases = [
            (UrlError::Validation("v".into()), "ValidationException", 400),
            (
                UrlError::InvalidParameter("p".into()),
                "InvalidParameterValueException",
                400,
            ),
            (
                UrlError::InvalidContent("c".into()),
                "InvalidRequestContentException",
                400,
            ),
            (
                UrlError::NotFound("n".into()),
                "ResourceNotFoundException",
                404,
            ),
            (
                UrlError::Conflict("c".into()),
                "ResourceConflictException",
                409,
            ),
            (
                UrlError::QuotaExceeded("q".into()),
                "ServiceQuotaExceededException",
                402,
            ),
            (UrlError::Corrupt("x".into()), "ServiceException", 500),
        ];
        for (e, code, status) in cases {
            assert_eq!(e.code(), code);
            assert_eq!(e.status(), status);
            assert_eq!(e.is_internal(), status == 500);
        }
    }

    #[test]
    fn shown_values_are_quoted_and_cut() {
        assert_eq!(shown("abc"), "'abc'");
        let long = "x".repeat(100);
        let s = shown(&long);
        assert!(s.len() < 80 && s.ends_with("...'"), "{s}");
        assert_eq!(
            UrlError::missing("authType").to_string(),
            "1 validation error detected: Value null at 'authType' failed to satisfy constraint: Member must not be null"
        );
    }
}
