//! Test functions for Warden, written against the official `lambda_runtime` crate exactly
//! as a user would write them. The binaries are zipped as `bootstrap` by the tests.
#![forbid(unsafe_code)]
