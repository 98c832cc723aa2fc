//! The Lambda-compatible control-plane HTTP API and its request pipeline
