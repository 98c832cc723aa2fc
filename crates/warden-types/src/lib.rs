//! Shared vocabulary of Warden: validated identifiers, ARNs, validated configuration
//! values and tags, the stored form of a function's configuration, the control plane's
//! change events, and Lambda's documented limits.
//!
//! Everything here is plain data with validation; this crate does no I/O.
#![forbid(unsafe_code)]

pub mod cache;
pub mod change;
pub mod config;
pub mod function;
pub mod hygiene;
pub mod identity;
pub mod layer;
pub mod limits;
pub mod names;
pub mod node;
pub mod page;
pub mod seal;
pub mod tags;

pub use cache::ChangeCache;
pub use config::{
    Architecture, ConfigError, Description, Environment, EphemeralStorage, Handler, MemorySize,
    RoleArn, StatementId, Timeout,
};
pub use function::{FunctionVersion, LoggingSettings, Runtime, VpcConfig, LATEST};
pub use names::{AccountId, AliasName, FunctionName, FunctionRef, NameError, Qualifier, Region};
pub use node::{NodeId, NodeIdError};
pub use tags::{TagError, Tags};

/// Milliseconds since the Unix epoch, the clock unit every store record uses.
pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Lambda's `LastModified` format: `2019-10-23T18:17:44.542+0000`.
pub fn lambda_timestamp(epoch_millis: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_millis) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// ISO-8601 UTC with milliseconds and a `Z`, as Lambda's timeout message uses.
pub fn iso_timestamp(epoch_millis: i64) -> String {
    let mut s = lambda_timestamp(epoch_millis);
    s.truncate(23);
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_lambda_shape() {
        assert_eq!(
            lambda_timestamp(1_571_854_664_542),
            "2019-10-23T18:17:44.542+0000"
        );
        assert_eq!(iso_timestamp(1_571_854_664_542), "2019-10-23T18:17:44.542Z");
    }
}
