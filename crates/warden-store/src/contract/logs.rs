//! The contract of [`crate::LogStore`] on every backend.
