//! Integration tests of the IAM/STS query API: every action through `handle_query`, the
//! XML read back with quick-xml, and the same bodies fed to botocore's own parser.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

mod botocore;
mod scenario;
