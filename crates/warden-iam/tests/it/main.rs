//! Integration tests for `warden-iam`: the data-driven policy cases (checked against our
//! evaluator and against an independent one), error messages, and property tests.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

mod cases;
mod errors;
mod oracle;
mod props;
