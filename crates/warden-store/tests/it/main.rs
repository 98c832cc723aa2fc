//! Integration tests of `warden-store` that need a whole process: durability across
//! `kill -9`.

mod crash;
