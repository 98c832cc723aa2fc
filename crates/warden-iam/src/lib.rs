//! IAM policy grammar, validation and evaluation with AWS's semantics; does no I/O.
//!
//! ```
//! use warden_iam::{evaluate, Policy, Request, DecisionEffect};
//! let policy = Policy::parse(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
//!     "Action":"lambda:Invoke*","Resource":"arn:aws:lambda:*:123456789012:function:*"}}"#).unwrap();
//! let request = Request {
//!     principal: Some("arn:aws:iam::123456789012:user/alice".into()),
//!     action: "lambda:InvokeFunction".into(),
//!     resource: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
//!     ..Request::default()
//! };
//! assert_eq!(evaluate(&request, &[&policy], None).effect, DecisionEffect::Allowed);
//! ```
//!
//! Module map: `policy` parses and validates documents into compiled statements, `pattern`
//! compiles wildcard and policy-variable strings, `condition` implements every condition
//! operator, `eval` combines statements into a [`Decision`], `simulate` is the JSON
//! front-end used by `warden iam simulate`.
#![forbid(unsafe_code)]

mod condition;
mod error;
mod eval;
mod pattern;
mod policy;
pub mod simulate;

pub use error::PolicyError;
pub use eval::{
    evaluate, evaluate_key_policy, evaluate_trust, is_kms_key, ContextValue, Decision,
    DecisionEffect, MatchedStatement, PolicySource, Request,
};
pub use policy::{Effect, Policy, PolicyKind, Statement, Version};

#[doc(hidden)]
/// Exposed for the property tests and the benchmark only; not a stable API.
pub mod __private {
    /// Matches `text` against a wildcard `pattern` (`*`, `?`; no variables).
    pub fn wildcard_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
        let map = std::collections::HashMap::new();
        let ctx = crate::eval::Context::new(&map);
        crate::pattern::Pattern::compile(
            pattern,
            crate::pattern::Syntax {
                wildcards: true,
                variables: false,
                case_insensitive,
            },
        )
        .matches(text, &ctx)
    }
}
