//! Warden's tamper-evident audit trail (placeholder while the modules land).
#![forbid(unsafe_code)]

pub mod merkle;
