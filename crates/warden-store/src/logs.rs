//! Function logs, the store's second concern: append-only lines per function, read in
//! order, pruned by age and size. Kept apart from the metadata so that log batches never
//! wait for metadata writes (the SQLite backend uses a second file with weaker syncing; a
//! networked backend may use a log service).

use warden_types::FunctionName;

use crate::StoreError;

/// Who wrote a log line. Readers must never present a `Function` line as a `Platform`
/// one: that is what keeps a function from forging `END` or `REPORT` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// Warden itself: `START`, `END`, `REPORT`, timeouts, crashes, truncation markers.
    Platform,
    /// The function's stdout or stderr (or text it reported, such as an init error).
    Function,
}

impl LogSource {
    /// The stored (and API) spelling: `platform` or `function`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::Platform => "platform",
            LogSource::Function => "function",
        }
    }

    /// The inverse of [`LogSource::as_str`]; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "platform" => Some(LogSource::Platform),
            "function" => Some(LogSource::Function),
            _ => None,
        }
    }
}

/// One line of a function's log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    /// Monotonic per store; assigned by `append_logs` (ignored on input).
    pub seq: i64,
    /// The function that logged it.
    pub function: FunctionName,
    /// When, in epoch milliseconds.
    pub timestamp_ms: i64,
    /// Request id the line belongs to, when known.
    pub request_id: Option<String>,
    /// The line.
    pub message: String,
    /// Who wrote it.
    pub source: LogSource,
}

/// How much log the store keeps: lines older than `max_age_ms` go, and while the lines
/// take more than `max_bytes`, the oldest go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    /// Lines older than this go, in milliseconds.
    pub max_age_ms: i64,
    /// While the lines take more than this, the oldest go.
    pub max_bytes: u64,
}

/// What one [`LogStore::prune_logs`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Lines deleted for being older than the retention age.
    pub expired: u64,
    /// Lines deleted (oldest first) to get under the size cap.
    pub evicted: u64,
    /// Bytes the log lines took before and after the pass.
    pub bytes_before: u64,
    /// Bytes the log lines took after the pass.
    pub bytes_after: u64,
}

/// The log store. Appends are durable against a process crash when they return (the
/// SQLite backend may lose the newest lines on power loss; see [`crate::sqlite`]).
///
/// Who may call it: the engine's log writer appends and prunes; the API reads. Nothing here
/// changes function configuration or the queue.
pub trait LogStore: Send + Sync + 'static {
    /// Appends lines (their `seq` is assigned here), in order, in one transaction.
    fn append_logs(&self, records: &[LogRecord]) -> Result<(), StoreError>;
    /// Lines of one function with `seq > after_seq`, oldest first.
    fn read_logs(
        &self,
        function: &FunctionName,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError>;
    /// Enforces `retention` at `now_ms`: deletes expired lines, then the oldest lines while
    /// the rest exceed the size cap (to 90 % of it, so that a busy log is not pruned on
    /// every batch), and gives the freed space back to the file system. Works in small
    /// batches, so appends interleave with a long prune instead of waiting for it.
    fn prune_logs(&self, retention: &LogRetention, now_ms: i64) -> Result<PruneReport, StoreError>;
}
