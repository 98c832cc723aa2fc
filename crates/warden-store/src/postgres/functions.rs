//! [`crate::FunctionStore`] on PostgreSQL, and the `functions` schema track.

use warden_postgres::Migration;

/// The `functions` track: functions, versions, aliases, layers, concurrency, policies,
/// tags, settings and the async queue.
pub(super) const MIGRATIONS: &[Migration] = &[];
