//! The contract of [`crate::FunctionStore`], [`crate::LayerStore`] and [`crate::EventQueue`] on every backend.
