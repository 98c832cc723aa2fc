//! Integration tests of `warden-store` that need a whole process (durability across
//! `kill -9`) or the sources of the store crates (no SQLite type in their public API).
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

mod crash;
mod surface;
