//! Instances, scheduling, concurrency, timeouts, the async queue worker and log framing
