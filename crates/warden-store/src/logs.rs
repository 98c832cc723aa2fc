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
    /// The log stream: the instance that wrote it (`2026/12/04/[$LATEST]<id>`), or none
    /// for a line no instance wrote (a throttle, a failure before any instance started).
    #[serde(default)]
    pub stream: Option<String>,
    /// The line.
    pub message: String,
    /// Who wrote it.
    pub source: LogSource,
}

/// The prefix of a function's log group name: `/aws/lambda/NAME`.
pub const FUNCTION_GROUP_PREFIX: &str = "/aws/lambda/";

/// A log group, as CloudWatch Logs names it and the store keys it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogGroup {
    /// `/aws/lambda/NAME`: where the function's instances log.
    Function(FunctionName),
    /// Any other group: made with `CreateLogGroup`, or Warden's own.
    Custom(String),
}

impl LogGroup {
    /// The group a name stands for: `/aws/lambda/NAME` with a valid function name is that
    /// function's group; any other name is a custom group. Names are checked by the API.
    pub fn from_name(name: &str) -> LogGroup {
        match name
            .strip_prefix(FUNCTION_GROUP_PREFIX)
            .and_then(|f| FunctionName::new(f).ok())
        {
            Some(f) => LogGroup::Function(f),
            None => LogGroup::Custom(name.to_owned()),
        }
    }

    /// The group's name (`/aws/lambda/f`, `my-app`).
    pub fn name(&self) -> String {
        match self {
            LogGroup::Function(f) => format!("{FUNCTION_GROUP_PREFIX}{f}"),
            LogGroup::Custom(name) => name.clone(),
        }
    }

    /// The key of the group's lines in a store: a function's name, or `:` and the group's
    /// name (no function name holds a colon, so the two never meet).
    pub fn key(&self) -> String {
        match self {
            LogGroup::Function(f) => f.to_string(),
            LogGroup::Custom(name) => format!(":{name}"),
        }
    }
}

/// A log group's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroupInfo {
    /// The group.
    pub group: LogGroup,
    /// When it was made (its first line, for a function's group), epoch milliseconds.
    pub created_ms: i64,
    /// Days its lines are kept (`PutRetentionPolicy`); none keeps them as long as the
    /// store's own retention does.
    pub retention_days: Option<u32>,
}

/// A log stream's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStreamInfo {
    /// Its name.
    pub name: String,
    /// When it was made, epoch milliseconds.
    pub created_ms: i64,
    /// The oldest and newest event timestamps it received, if any.
    pub first_event_ms: Option<i64>,
    /// The newest event timestamp it received.
    pub last_event_ms: Option<i64>,
    /// When it last received events.
    pub last_ingestion_ms: Option<i64>,
}

/// Which of a group's streams a listing shows, in which order.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamQuery<'a> {
    /// Streams whose name starts with this.
    pub prefix: &'a str,
    /// By their newest event's timestamp (then name) instead of by name.
    pub by_last_event: bool,
    /// Newest or last name first.
    pub descending: bool,
    /// How many of the ordered streams to skip.
    pub offset: usize,
    /// The most to return.
    pub limit: usize,
}

/// Which events of a group a read covers.
#[derive(Debug, Clone, Copy)]
pub struct EventRange<'a> {
    /// The group.
    pub group: &'a LogGroup,
    /// Only this stream's events, if set.
    pub stream: Option<&'a str>,
    /// Events with `timestamp >= start_ms`.
    pub start_ms: Option<i64>,
    /// Events with `timestamp < end_ms`.
    pub end_ms: Option<i64>,
    /// Where the read starts and which way it goes.
    pub cursor: Cursor,
}

/// A position in a group's events, by sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Events with `seq > n`, oldest first.
    After(i64),
    /// Events with `seq < n`, newest first (a read returns them oldest first).
    Before(i64),
}

/// One event as a scan sees it, borrowed from the row being read.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// Its sequence number.
    pub seq: i64,
    /// Its stream, if it has one.
    pub stream: Option<&'a str>,
    /// Its timestamp, epoch milliseconds.
    pub timestamp_ms: i64,
    /// When it was stored.
    pub ingestion_ms: i64,
    /// The invocation it belongs to, when known.
    pub request_id: Option<&'a str>,
    /// The message.
    pub message: &'a str,
    /// Who wrote it.
    pub source: LogSource,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its sequence number (unique and growing within a store).
    pub seq: i64,
    /// Its stream, if it has one.
    pub stream: Option<String>,
    /// Its timestamp, epoch milliseconds.
    pub timestamp_ms: i64,
    /// When it was stored.
    pub ingestion_ms: i64,
    /// The invocation it belongs to, when known.
    pub request_id: Option<String>,
    /// The message.
    pub message: String,
    /// Who wrote it.
    pub source: LogSource,
}

impl From<EventRef<'_>> for StoredEvent {
    fn from(e: EventRef<'_>) -> Self {
        StoredEvent {
            seq: e.seq,
            stream: e.stream.map(str::to_owned),
            timestamp_ms: e.timestamp_ms,
            ingestion_ms: e.ingestion_ms,
            request_id: e.request_id.map(str::to_owned),
            message: e.message.to_owned(),
            source: e.source,
        }
    }
}

/// Whether a scan goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Read the next event.
    Continue,
    /// Stop here.
    Stop,
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

    /// Makes a log group; false if it exists. A function's group also comes into being
    /// with its first line.
    fn create_log_group(&self, group: &LogGroup, now_ms: i64) -> Result<bool, StoreError>;
    /// Deletes a group with its streams and events; false if it did not exist.
    fn delete_log_group(&self, group: &LogGroup) -> Result<bool, StoreError>;
    /// One group's description.
    fn log_group(&self, group: &LogGroup) -> Result<Option<LogGroupInfo>, StoreError>;
    /// How many groups there are besides the functions' own.
    fn custom_log_group_count(&self) -> Result<u64, StoreError>;
    /// Groups whose name starts with `prefix`, holds `pattern` (ignoring case; empty
    /// matches all) and sorts after `after`, by name.
    fn list_log_groups(
        &self,
        prefix: &str,
        pattern: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogGroupInfo>, StoreError>;
    /// Sets (or with `None` removes) a group's retention in days, and deletes its events
    /// older than that at once; false if the group does not exist.
    fn set_log_retention(
        &self,
        group: &LogGroup,
        days: Option<u32>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Makes a stream in an existing group; `Ok(false)` if it exists.
    fn create_log_stream(
        &self,
        group: &LogGroup,
        stream: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes a stream and its events; false if it did not exist.
    fn delete_log_stream(&self, group: &LogGroup, stream: &str) -> Result<bool, StoreError>;
    /// A page of a group's streams.
    fn list_log_streams(
        &self,
        group: &LogGroup,
        query: &StreamQuery<'_>,
    ) -> Result<Vec<LogStreamInfo>, StoreError>;
    /// Appends events (timestamp, message) to an existing stream in one transaction,
    /// stored at `ingestion_ms`. They are the caller's, never Warden's own lines.
    fn append_events(
        &self,
        group: &LogGroup,
        stream: &str,
        events: &[(i64, String)],
        ingestion_ms: i64,
    ) -> Result<(), StoreError>;
    /// Reads events of `range` one at a time (in the cursor's direction) until `visit`
    /// says stop or the range ends, without holding more than one in memory.
    fn scan_events(
        &self,
        range: &EventRange<'_>,
        visit: &mut dyn FnMut(EventRef<'_>) -> Scan,
    ) -> Result<(), StoreError>;
}
