//! Lambda's classic quotas, enforced by Warden exactly where Lambda enforces them.
//! The README's limits table mirrors this file.

/// Largest synchronous (`RequestResponse`) request or response payload.
pub const SYNC_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Largest asynchronous (`Event`) payload.
pub const ASYNC_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Largest zip accepted in `Code.ZipFile` (after base64 decoding).
pub const ZIP_BYTES: u64 = 50 * 1024 * 1024;
/// Largest total size of a package once unzipped.
pub const UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;
/// Most entries a package may hold; stops inode-exhaustion bombs made of empty files.
pub const ZIP_ENTRIES: usize = 20_000;
/// Largest control-plane request body: a 50 MB zip grows by 4/3 in base64 plus JSON framing.
pub const API_BODY_BYTES: usize = 70 * 1024 * 1024;
/// Function timeout bounds in seconds.
pub const TIMEOUT_SECONDS: std::ops::RangeInclusive<u32> = 1..=900;
/// Default function timeout in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 3;
/// Memory bounds in MB.
pub const MEMORY_MB: std::ops::RangeInclusive<u32> = 128..=10_240;
/// Default memory in MB.
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Ephemeral storage (`/tmp`) bounds in MB.
pub const EPHEMERAL_STORAGE_MB: std::ops::RangeInclusive<u32> = 512..=10_240;
/// Default ephemeral storage in MB.
pub const DEFAULT_EPHEMERAL_STORAGE_MB: u32 = 512;
/// Total size of environment variable names and values, as Lambda counts it (the JSON map).
pub const ENVIRONMENT_BYTES: usize = 4 * 1024;
/// Default account-wide concurrent executions.
pub const DEFAULT_ACCOUNT_CONCURRENCY: u32 = 1000;
/// Concurrency Lambda keeps unreserved for functions without reservations.
pub const UNRESERVED_CONCURRENCY_MINIMUM: u32 = 100;
/// Description length.
pub const DESCRIPTION_CHARS: usize = 256;
/// Handler string length.
pub const HANDLER_CHARS: usize = 128;
/// Largest base64 `X-Amz-Client-Context`.
pub const CLIENT_CONTEXT_BASE64_BYTES: usize = 3_583;
/// Bytes of log returned by `X-Amz-Log-Type: Tail`.
pub const LOG_TAIL_BYTES: usize = 4 * 1024;
/// Default bytes of output per second one function (all its instances together) may log
/// (`warden serve --log-rate-kib`); a function printing faster is slowed down.
pub const DEFAULT_LOG_RATE_KIB: u64 = 1024;
/// Default age after which log lines are deleted, in days (`--log-retention-days`).
pub const DEFAULT_LOG_RETENTION_DAYS: u64 = 7;
/// Default cap on the space all log lines take, in MiB (`--log-max-mib`).
pub const DEFAULT_LOG_MAX_MIB: u64 = 1024;
/// Longest log line kept; longer output is split, as CloudWatch splits large events.
pub const LOG_LINE_BYTES: usize = 256 * 1024;
/// Most items one List call returns.
pub const MAX_LIST_ITEMS: usize = 10_000;
/// Default page size of `ListFunctions` and friends when `MaxItems` is absent.
pub const DEFAULT_LIST_ITEMS: usize = 50;
/// Init phase deadline in seconds, as Lambda's on-demand init.
pub const INIT_TIMEOUT_SECONDS: u32 = 10;
/// Async retries after the first attempt.
pub const ASYNC_MAX_RETRIES: u32 = 2;
/// How long an async event may wait in the queue before it is dropped, in seconds (6 hours).
pub const ASYNC_MAX_EVENT_AGE_SECONDS: u32 = 6 * 3600;
