//! Spawn latency benchmark (placeholder while being written).
fn main() {}
