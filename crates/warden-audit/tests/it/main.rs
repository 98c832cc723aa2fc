//! warden-audit's integration tests: one binary, modules by area.
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it did not expect"
)]

mod support;
mod tamper;
