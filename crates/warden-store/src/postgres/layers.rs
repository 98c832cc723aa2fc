//! [`crate::LayerStore`] on PostgreSQL (its tables are in the `functions` track).
