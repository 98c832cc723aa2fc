//! The audit trail's one error type. Verification does not use it for what it finds in the
//! data (that is a [`crate::verify::Finding`]); it is for steps that could not run.

use std::path::PathBuf;

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or migrating the audit database failed.
    #[error("opening the audit database at `{}`: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: warden_sqlite::Error,
    },
    /// A read or write of the audit database failed.
    #[error("the audit database failed while {context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// What went wrong.
        #[source]
        source: warden_sqlite::Error,
    },
    /// A read or write of the audit trail in PostgreSQL failed.
    #[error("the shared audit trail failed while {context}: {source}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// What went wrong.
        #[source]
        source: warden_postgres::Error,
    },
    /// A stored row the writer or a proof needs is missing or malformed (run verify).
    #[error("the audit log is damaged: {what}")]
    Damaged {
        /// What was missing or malformed.
        what: String,
    },
    /// An event could not be serialised.
    #[error("encoding an audit event: {0}")]
    EncodeEvent(#[source] serde_json::Error),
    /// Event bytes given to the log are not a CloudTrail event.
    #[error("the audit event does not parse: {0}")]
    DecodeEvent(#[source] serde_json::Error),
    /// An event's `eventTime` is not an RFC 3339 time.
    #[error("the event time `{value}` is not an RFC 3339 time")]
    EventTime {
        /// The value given.
        value: String,
    },
    /// The recorder's writer thread has stopped (after an error it logged, or a shutdown),
    /// so the event was not recorded.
    #[error("the audit recorder has stopped; the event was not recorded")]
    RecorderStopped,
    /// The batch holding the event failed to commit; the event was not recorded.
    #[error("the audit batch was not committed: {reason}")]
    BatchFailed {
        /// The writer's error, as text (it is shared by every caller in the batch).
        reason: String,
    },
    /// Starting the recorder's writer thread failed.
    #[error("starting the audit writer thread: {0}")]
    SpawnWriter(#[source] std::io::Error),
    /// The signer refused or failed.
    #[error("signing the audit digest with key `{key_id}`: {source}")]
    Sign {
        /// The signing key.
        key_id: String,
        /// The signer's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A key id that cannot appear in a digest (empty, or with control characters).
    #[error("the key id `{0}` is empty or has control characters")]
    KeyId(String),
    /// A digest's JSON does not parse.
    #[error("the digest {origin} does not parse: {source}")]
    DigestParse {
        /// Where it came from: the database, or an exported file's path.
        origin: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Reading or writing exported digests failed.
    #[error("{context} `{}`: {source}", path.display())]
    Export {
        /// The step.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An exported digest file already holds a different digest of the same tree size: the
    /// log's digest changed since it was exported. It is left alone, as the evidence.
    #[error("the exported digest `{}` differs from the log's digest of the same size; not overwritten", path.display())]
    ExportConflict {
        /// The file.
        path: PathBuf,
    },
    /// The witness command could not be run or fed.
    #[error("running the witness command `{command}`: {source}")]
    WitnessSpawn {
        /// The program.
        command: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The witness command exited unsuccessfully.
    #[error("the witness command `{command}` refused the digest ({status}): {stderr}")]
    WitnessRefused {
        /// The program.
        command: String,
        /// How it exited.
        status: String,
        /// The start of what it wrote to stderr.
        stderr: String,
    },
    /// A LookupEvents page token this log did not hand out for this query.
    #[error("the next token is invalid or belongs to another query")]
    InvalidNextToken,
    /// A LookupEvents parameter out of range.
    #[error("{0}")]
    InvalidLookup(String),
}

/// Maps a SQLite error to [`Error::Store`] with `context`.
pub(crate) fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| Error::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}
