//! Integration tests of the IAM/STS query API: every action through `handle_query`, the
//! XML read back with quick-xml, and the same bodies fed to botocore's own parser.

mod botocore;
mod scenario;
