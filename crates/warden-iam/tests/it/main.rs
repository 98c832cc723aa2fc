//! Integration tests for `warden-iam`: the data-driven policy cases (checked against our
//! evaluator and against an independent one), error messages, and property tests.

mod cases;
mod errors;
mod oracle;
mod props;
