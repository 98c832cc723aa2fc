//! Integration tests of `warden-store` that need a whole process (durability across
//! `kill -9`) or the sources of the store crates (no SQLite type in their public API).

mod crash;
mod surface;
