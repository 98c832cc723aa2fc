//! The crate's error type: why a policy document was refused.

/// A policy document that IAM would refuse with `MalformedPolicyDocument`. The message says
/// what is wrong and where, e.g. ``statement 2 (Sid `AllowRead`): unknown condition operator
/// `StringEqualz` ``.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not JSON at all.
    #[error("policy is not valid json: {reason}")]
    Json {
        /// The JSON parser's explanation, with line and column.
        reason: String,
    },
    /// The JSON does not follow the policy grammar.
    #[error("{location}: {problem}")]
    Invalid {
        /// `policy` or `statement N (Sid `X`)`, counting statements from 1.
        location: String,
        /// What is wrong.
        problem: String,
    },
}

impl PolicyError {
    /// The AWS error code under which IAM reports this error.
    pub fn code(&self) -> &'static str {
        "MalformedPolicyDocument"
    }
}
