//! Template scanning.
