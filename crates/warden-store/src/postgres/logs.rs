//! [`crate::LogStore`] on PostgreSQL, and the `logs` schema track.

use warden_postgres::Migration;

/// The `logs` track.
pub(super) const MIGRATIONS: &[Migration] = &[];
