//! [`crate::LogStore`] on PostgreSQL, and the `logs` schema track.
//!
//! # Schema
//!
//! - `logs(seq, group_key, timestamp_ms, ingestion_ms, request_id, message, source,
//!   stream_id, bytes)`: one row per line. `group_key` is [`LogGroup::key`] (a function's
//!   name, or `:` and a custom group's name); `message` is BYTEA so that a line holding a
//!   NUL character (which PostgreSQL's TEXT refuses) is kept as it was written; `source`
//!   is `platform` or `function`; `ingestion_ms` is set only when it differs from the
//!   timestamp (events of `PutLogEvents`); `bytes` is what the line counts for in the size
//!   cap (below), computed by the database when the row is written and never changed.
//! - `log_groups(name, group_key, created_ms, retention_days)`,
//!   `log_streams(id, group_key, name, created_ms, first_event_ms, last_event_ms,
//!   last_ingestion_ms)`: CloudWatch Logs' groups and streams; a line names its stream by
//!   id.
//! - `log_bytes(group_key, bytes)`: per group, the sum of its lines' `bytes`.
//!
//! Names and keys use the `"C"` collation, so that listings sort by bytes (as SQLite
//! does) whatever the database's default collation, and `lower()` folds ASCII only.
//! The schema needs PostgreSQL 12 or later (stored generated columns).
//!
//! # Order, and readers that resume after a seq
//!
//! `seq` is an identity column (a sequence with `CACHE 1`, so values are handed out in
//! the order they are asked for, whichever session asks). Sequence values are not
//! transactional: two transactions may take 10 and 11 and commit 11 first, and a reader
//! that read 11 and resumes "after 11" would never see 10. Appends prevent that within a
//! group: an append first locks (by upserting) the `log_bytes` row of each group it
//! writes, in key order, and only then draws its seqs. Appends to one group are therefore
//! serialised, and each commits before the next draws its first seq, so a group's lines
//! become visible in seq order: a reader resuming after any seq it has seen within the
//! group (as [`crate::LogStore::read_logs`] and [`crate::LogStore::scan_events`] do)
//! misses nothing. Across groups there is no such order, and none is promised. The lock
//! is held for one statement: an append is a single statement (one round trip, and one
//! transaction), so appends of one group from several nodes queue for at most that long.
//!
//! # The size cap
//!
//! SQLite measures the pages its file uses. Here the store keeps an exact count instead:
//! each line counts for the bytes of its text (message, request id and group key) plus a
//! fixed 200 for the rest of what it costs on disk (tuple header, its integers and source,
//! its entries in the four indexes: measured on PostgreSQL 15, a line takes its text plus
//! 210 to 240 bytes), computed by `warden_log_line_bytes` into the line's `bytes` column
//! when it is written. `log_bytes` holds, per group, the sum over its lines, changed in the
//! same statement as every insert and delete of lines, and [`PostgresStore::log_bytes`] is
//! its sum: one small row read per group, never a scan of the lines. What the count leaves
//! out: the streams and groups themselves, index bloat, and the space of deleted lines,
//! which PostgreSQL reuses for new lines once (auto)vacuum has visited the table rather
//! than giving it back to the file system (as SQLite's incremental vacuum does). A database
//! under a steady cap therefore stays about as large as the cap plus what vacuum has not
//! reclaimed yet, but does not shrink when the cap is lowered: that takes a `VACUUM FULL`
//! of `logs`, which locks the table while it runs.
//!
//! Deleting lines (expiry, eviction, deleted streams and groups) works in batches of
//! [`PRUNE_BATCH_ROWS`], each one statement that locks the batch's `log_bytes` rows in key
//! order before deleting, so that it never deadlocks with appends, which lock them in the
//! same order. Several nodes may prune at once: a line two of them pick is deleted (and
//! counted) once, and eviction measures the excess in the statement that picks the
//! oldest lines, so that two nodes evicting together free it once, not twice. Unlike
//! SQLite's, eviction frees exactly the excess (to 90 % of the cap), not an estimate
//! from the average line size.

use std::time::Duration;

use postgres::types::ToSql;
use postgres::Row;
use warden_postgres::{Conn, Migration};
use warden_types::FunctionName;

use super::{pg, PostgresStore};
use crate::{
    Cursor, EventRange, EventRef, LogGroup, LogGroupInfo, LogRecord, LogRetention, LogSource,
    LogStore, LogStreamInfo, PruneReport, Scan, StoreError, StreamQuery, FUNCTION_GROUP_PREFIX,
};

/// The `logs` track.
pub(super) const MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
-- What a line counts for in the size cap: the bytes of its text plus a fixed 200 for the
-- rest of what it costs on disk (tuple header, integers, index entries). Never redefine
-- it in place: stored lines keep the count they were written with, and `log_bytes` sums
-- those.
CREATE FUNCTION warden_log_line_bytes(group_key TEXT, message BYTEA, request_id TEXT)
    RETURNS BIGINT LANGUAGE SQL IMMUTABLE PARALLEL SAFE
    AS $$ SELECT octet_length(group_key)::BIGINT + octet_length(message)
                 + coalesce(octet_length(request_id), 0) + 200 $$;

CREATE TABLE log_groups (
    name TEXT COLLATE "C" PRIMARY KEY,
    group_key TEXT COLLATE "C" NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    retention_days BIGINT CHECK (retention_days IS NULL OR retention_days > 0)
);

CREATE TABLE log_streams (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_key TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    first_event_ms BIGINT,
    last_event_ms BIGINT,
    last_ingestion_ms BIGINT,
    UNIQUE (group_key, name)
);

CREATE TABLE logs (
    -- CACHE 1: values in the order sessions ask for them (see the append lock).
    seq BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    group_key TEXT COLLATE "C" NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    ingestion_ms BIGINT,
    request_id TEXT,
    message BYTEA NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('platform', 'function')),
    stream_id BIGINT,
    bytes BIGINT NOT NULL
        GENERATED ALWAYS AS (warden_log_line_bytes(group_key, message, request_id)) STORED
);
CREATE INDEX logs_by_group ON logs (group_key, seq);
CREATE INDEX logs_by_stream ON logs (stream_id, seq);
CREATE INDEX logs_by_time ON logs (timestamp_ms);

-- Per group, the sum of its lines' `bytes`; appends lock their groups' rows here.
CREATE TABLE log_bytes (
    group_key TEXT COLLATE "C" PRIMARY KEY,
    bytes BIGINT NOT NULL
);
"#,
)];

/// Lines deleted per statement while pruning or deleting, so appends never wait long.
const PRUNE_BATCH_ROWS: i64 = 2000;

/// Events the first page of a scan reads; each further page reads four times more, up to
/// [`SCAN_MAX_PAGE`]. A scan told to stop early has read at most one page too many.
const SCAN_FIRST_PAGE: usize = 64;
/// The most events one page of a scan reads (and holds in memory).
const SCAN_MAX_PAGE: usize = 1024;

/// How many times a single statement is run when PostgreSQL asks for a retry.
const STATEMENT_ATTEMPTS: u32 = 8;

/// A day in milliseconds.
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Appends a batch of lines: `$1` keys, `$2` timestamps, `$3` request ids, `$4` messages,
/// `$5` sources, `$6` stream names (arrays, one element per line, in order), `$7` when
/// (the newest timestamp). The `log_bytes` upsert (`locked`) runs first: every other part
/// waits for it through `(SELECT count(*) FROM locked)`, so the groups are locked before
/// any seq is drawn; the lines are inserted in their order (`ORDER BY n`), so seqs follow
/// it.
const APPEND_LOGS: &str = r#"
WITH input AS MATERIALIZED (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[], $5::text[], $6::text[])
        WITH ORDINALITY AS i(group_key, timestamp_ms, request_id, message, source, stream, n)
),
locked AS MATERIALIZED (
    INSERT INTO log_bytes (group_key, bytes)
    SELECT group_key, sum(warden_log_line_bytes(group_key, message, request_id))
    FROM input GROUP BY group_key ORDER BY group_key
    ON CONFLICT (group_key) DO UPDATE SET bytes = log_bytes.bytes + excluded.bytes
    RETURNING group_key
),
streams AS MATERIALIZED (
    INSERT INTO log_streams
        (group_key, name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms)
    SELECT group_key, stream, $7::bigint, min(timestamp_ms), max(timestamp_ms), $7::bigint
    FROM input
    WHERE stream IS NOT NULL AND (SELECT count(*) FROM locked) > 0
    GROUP BY group_key, stream ORDER BY group_key, stream
    ON CONFLICT (group_key, name) DO UPDATE SET
        first_event_ms = least(log_streams.first_event_ms, excluded.first_event_ms),
        last_event_ms = greatest(log_streams.last_event_ms, excluded.last_event_ms),
        last_ingestion_ms = excluded.last_ingestion_ms
    RETURNING id, group_key, name
),
groups AS (
    INSERT INTO log_groups (name, group_key, created_ms)
    SELECT $8::text || group_key, group_key, (array_agg(timestamp_ms ORDER BY n))[1]
    FROM input
    WHERE (SELECT count(*) FROM locked) > 0
    GROUP BY group_key ORDER BY group_key
    ON CONFLICT DO NOTHING
)
INSERT INTO logs (group_key, timestamp_ms, request_id, message, source, stream_id)
SELECT i.group_key, i.timestamp_ms, i.request_id, i.message, i.source, s.id
FROM input i LEFT JOIN streams s ON s.group_key = i.group_key AND s.name = i.stream
WHERE (SELECT count(*) FROM locked) > 0
ORDER BY i.n
"#;

/// Appends events to one stream: `$1` group key, `$2` stream, `$3` timestamps, `$4`
/// messages, `$5` ingestion time. Locks the group first, like [`APPEND_LOGS`].
const APPEND_EVENTS: &str = r#"
WITH input AS MATERIALIZED (
    SELECT * FROM unnest($3::bigint[], $4::bytea[]) WITH ORDINALITY AS i(timestamp_ms, message, n)
),
locked AS MATERIALIZED (
    INSERT INTO log_bytes (group_key, bytes)
    SELECT $1::text, sum(warden_log_line_bytes($1::text, message, NULL)) FROM input
    ON CONFLICT (group_key) DO UPDATE SET bytes = log_bytes.bytes + excluded.bytes
    RETURNING group_key
),
stream AS MATERIALIZED (
    INSERT INTO log_streams
        (group_key, name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms)
    SELECT $1::text, $2::text, $5::bigint, min(timestamp_ms), max(timestamp_ms), $5::bigint
    FROM input
    WHERE (SELECT count(*) FROM locked) > 0
    ON CONFLICT (group_key, name) DO UPDATE SET
        first_event_ms = least(log_streams.first_event_ms, excluded.first_event_ms),
        last_event_ms = greatest(log_streams.last_event_ms, excluded.last_event_ms),
        last_ingestion_ms = excluded.last_ingestion_ms
    RETURNING id
)
INSERT INTO logs (group_key, timestamp_ms, ingestion_ms, message, source, stream_id)
SELECT $1::text, timestamp_ms, $5::bigint, message, 'function', (SELECT id FROM stream)
FROM input
WHERE (SELECT count(*) FROM locked) > 0
ORDER BY n
"#;

/// The statement that deletes one batch of lines: `$picked` selects `(seq, group_key)` of
/// at most `$1` lines. The batch's `log_bytes` rows are locked in key order (as appends
/// lock them) before any line goes, and lose what the deleted lines counted for. Returns
/// how many lines went and how many were picked (more, when another node deleted some of
/// them first).
macro_rules! delete_lines {
    ($picked:literal) => {
        concat!(
            "WITH picked AS MATERIALIZED (",
            $picked,
            "),
            locked AS MATERIALIZED (
                SELECT group_key FROM log_bytes
                WHERE group_key IN (SELECT group_key FROM picked)
                ORDER BY group_key FOR UPDATE
            ),
            gone AS (
                DELETE FROM logs
                WHERE seq IN (SELECT seq FROM picked) AND (SELECT count(*) FROM locked) >= 0
                RETURNING group_key, bytes
            ),
            freed AS MATERIALIZED (
                SELECT group_key, sum(bytes)::BIGINT AS bytes, count(*) AS lines
                FROM gone GROUP BY group_key
            ),
            counted AS (
                UPDATE log_bytes c SET bytes = c.bytes - f.bytes
                FROM freed f WHERE c.group_key = f.group_key
            )
            SELECT coalesce(sum(lines), 0)::BIGINT, (SELECT count(*) FROM picked) FROM freed"
        )
    };
}

/// Which lines a batched delete takes.
#[derive(Debug, Clone)]
enum Lines {
    /// Lines older than a time, oldest first.
    Expired { cutoff_ms: i64 },
    /// A group's lines.
    Group { key: String },
    /// A group's lines older than a time.
    GroupExpired { key: String, cutoff_ms: i64 },
    /// A stream's lines.
    Stream { key: String, name: String },
    /// The oldest lines (by seq), as few as leave at most `target` bytes. The excess is
    /// measured in the statement that picks the lines, from the same snapshot, so that
    /// two nodes evicting at once do not both evict it.
    Oldest { target: i64 },
}

impl Lines {
    /// Deletes one batch of at most [`PRUNE_BATCH_ROWS`] lines; returns how many went,
    /// and whether the batch was full (so that more may be left).
    fn delete_batch(&self, conn: &mut Conn) -> Result<(u64, bool), postgres::Error> {
        let limit = PRUNE_BATCH_ROWS;
        let (sql, params): (&'static str, Vec<&(dyn ToSql + Sync)>) = match self {
            Lines::Expired { cutoff_ms } => (
                delete_lines!(
                    "SELECT seq, group_key FROM logs WHERE timestamp_ms < $2
                     ORDER BY timestamp_ms LIMIT $1"
                ),
                vec![&limit, cutoff_ms],
            ),
            Lines::Group { key } => (
                delete_lines!("SELECT seq, group_key FROM logs WHERE group_key = $2 LIMIT $1"),
                vec![&limit, key],
            ),
            Lines::GroupExpired { key, cutoff_ms } => (
                delete_lines!(
                    "SELECT seq, group_key FROM logs
                     WHERE group_key = $2 AND timestamp_ms < $3 LIMIT $1"
                ),
                vec![&limit, key, cutoff_ms],
            ),
            Lines::Stream { key, name } => (
                delete_lines!(
                    "SELECT seq, group_key FROM logs WHERE stream_id =
                        (SELECT id FROM log_streams WHERE group_key = $2 AND name = $3)
                     LIMIT $1"
                ),
                vec![&limit, key, name],
            ),
            Lines::Oldest { target } => (
                delete_lines!(
                    "SELECT seq, group_key FROM (
                        SELECT seq, group_key,
                               (sum(bytes) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING))::BIGINT
                                   - bytes AS freed_before
                        FROM logs ORDER BY seq LIMIT $1
                     ) oldest
                     WHERE freed_before < (SELECT sum(bytes) FROM log_bytes)::BIGINT - $2::BIGINT"
                ),
                vec![&limit, target],
            ),
        };
        let statement = conn.prepare(sql)?;
        let (deleted, picked): (i64, i64) = retried(conn, |c| {
            let row = c.client().query_one(&statement, &params)?;
            Ok((row.try_get(0)?, row.try_get(1)?))
        })?;
        Ok((u64::try_from(deleted).unwrap_or(0), picked >= limit))
    }
}

/// Runs one statement (atomic on its own, so safe to run again) until PostgreSQL stops
/// asking for a retry, a bounded number of times.
fn retried<T>(
    conn: &mut Conn,
    mut f: impl FnMut(&mut Conn) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f(conn) {
            Err(e) if attempt < STATEMENT_ATTEMPTS && warden_postgres::is_retryable(&e) => {
                std::thread::sleep(Duration::from_millis(u64::from(attempt)));
            }
            other => return other,
        }
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored message: BYTEA holding the UTF-8 it was written as.
fn message(bytes: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(bytes).map_err(|e| StoreError::Backend {
        context: "reading a log line",
        source: Box::new(e),
    })
}

/// A stored source; anything else than Warden's spelling is not trusted as Warden's.
fn source(s: &str) -> LogSource {
    LogSource::parse(s).unwrap_or(LogSource::Function)
}

fn group_info(r: &Row) -> Result<LogGroupInfo, postgres::Error> {
    let name: String = r.try_get(0)?;
    let days: Option<i64> = r.try_get(2)?;
    Ok(LogGroupInfo {
        group: LogGroup::from_name(&name),
        created_ms: r.try_get(1)?,
        retention_days: days.and_then(|d| u32::try_from(d).ok()),
    })
}

impl PostgresStore {
    /// What the stored log lines count for, in bytes: the sum of each line's text
    /// (message, request id, group key) and 200 for the rest of its row (see the module
    /// docs). Kept exactly, per group, by every write; reading it reads one row per group.
    pub fn log_bytes(&self) -> Result<u64, StoreError> {
        self.pool
            .run(|conn| total_bytes(conn).map_err(pg("measuring the logs")))
    }

    /// Deletes the lines `lines` picks, a batch per statement so that appends interleave;
    /// returns how many went.
    fn delete_lines(&self, context: &'static str, lines: &Lines) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let lines = lines.clone();
            let (n, full) = self
                .pool
                .run(move |conn| lines.delete_batch(conn).map_err(pg(context)))?;
            total += n;
            if !full {
                return Ok(total);
            }
        }
    }

    /// Deletes a group's events older than `cutoff_ms`, and its streams whose newest
    /// event is; returns how many lines went.
    fn expire_group(&self, key: &str, cutoff_ms: i64) -> Result<u64, StoreError> {
        let context = "applying a log group's retention";
        let total = self.delete_lines(
            context,
            &Lines::GroupExpired {
                key: key.to_owned(),
                cutoff_ms,
            },
        )?;
        let key = key.to_owned();
        self.pool.run(move |conn| {
            let s = conn
                .prepare("DELETE FROM log_streams WHERE group_key = $1 AND last_event_ms < $2")
                .map_err(pg(context))?;
            retried(conn, |c| c.client().execute(&s, &[&key, &cutoff_ms])).map_err(pg(context))
        })?;
        Ok(total)
    }

    /// Applies every group's own retention at `now_ms`; returns how many lines went.
    fn expire_groups(&self, now_ms: i64) -> Result<u64, StoreError> {
        let context = "applying log group retention";
        let groups: Vec<(String, i64)> = self.pool.run(|conn| {
            let s = conn
                .prepare(
                    "SELECT group_key, retention_days FROM log_groups
                     WHERE retention_days IS NOT NULL",
                )
                .map_err(pg(context))?;
            let rows = conn.client().query(&s, &[]).map_err(pg(context))?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, postgres::Error>>()
                .map_err(pg(context))
        })?;
        let mut total = 0;
        for (key, days) in groups {
            total += self.expire_group(&key, now_ms.saturating_sub(days.saturating_mul(DAY_MS)))?;
        }
        Ok(total)
    }
}

/// The sum of `log_bytes`.
fn total_bytes(conn: &mut Conn) -> Result<u64, postgres::Error> {
    let s = conn.prepare("SELECT coalesce(sum(bytes), 0)::BIGINT FROM log_bytes")?;
    let n: i64 = conn.client().query_one(&s, &[])?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

impl LogStore for PostgresStore {
    fn append_logs(&self, records: &[LogRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = records.iter().map(|r| r.function.to_string()).collect();
        let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp_ms).collect();
        let request_ids: Vec<Option<String>> =
            records.iter().map(|r| r.request_id.clone()).collect();
        let messages: Vec<Vec<u8>> = records
            .iter()
            .map(|r| r.message.clone().into_bytes())
            .collect();
        let sources: Vec<&'static str> = records.iter().map(|r| r.source.as_str()).collect();
        let streams: Vec<Option<String>> = records.iter().map(|r| r.stream.clone()).collect();
        let now = timestamps.iter().copied().max().unwrap_or(0);
        self.pool.run(move |conn| {
            let s = conn.prepare(APPEND_LOGS).map_err(pg("appending logs"))?;
            retried(conn, |c| {
                c.client().execute(
                    &s,
                    &[
                        &keys,
                        &timestamps,
                        &request_ids,
                        &messages,
                        &sources,
                        &streams,
                        &now,
                        &FUNCTION_GROUP_PREFIX,
                    ],
                )
            })
            .map_err(pg("appending logs"))?;
            Ok(())
        })
    }

    fn read_logs(
        &self,
        function: &FunctionName,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let context = "reading logs";
        let function = function.clone();
        let limit = to_i64(limit);
        self.pool.run(move |conn| {
            let s = conn
                .prepare(
                    "SELECT l.seq, l.timestamp_ms, l.request_id, l.message, l.source, s.name
                     FROM logs l LEFT JOIN log_streams s ON s.id = l.stream_id
                     WHERE l.group_key = $1 AND l.seq > $2 ORDER BY l.seq LIMIT $3",
                )
                .map_err(pg(context))?;
            let rows = conn
                .client()
                .query(&s, &[&function.as_str(), &after_seq, &limit])
                .map_err(pg(context))?;
            rows.iter()
                .map(|r| {
                    Ok(LogRecord {
                        seq: r.try_get(0).map_err(pg(context))?,
                        function: function.clone(),
                        timestamp_ms: r.try_get(1).map_err(pg(context))?,
                        request_id: r.try_get(2).map_err(pg(context))?,
                        message: message(r.try_get(3).map_err(pg(context))?)?.to_owned(),
                        source: source(r.try_get(4).map_err(pg(context))?),
                        stream: r.try_get(5).map_err(pg(context))?,
                    })
                })
                .collect()
        })
    }

    fn prune_logs(&self, retention: &LogRetention, now_ms: i64) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport {
            bytes_before: self.log_bytes()?,
            ..PruneReport::default()
        };
        let cutoff_ms = now_ms.saturating_sub(retention.max_age_ms);
        report.expired += self.delete_lines("pruning logs", &Lines::Expired { cutoff_ms })?;
        report.expired += self.expire_groups(now_ms)?;
        // A stream whose newest event expired is gone with it.
        self.pool.run(move |conn| {
            let s = conn
                .prepare("DELETE FROM log_streams WHERE last_event_ms < $1")
                .map_err(pg("pruning logs"))?;
            retried(conn, |c| c.client().execute(&s, &[&cutoff_ms])).map_err(pg("pruning logs"))
        })?;
        let mut used = self.log_bytes()?;
        if used > retention.max_bytes {
            let target = retention.max_bytes / 10 * 9;
            while used > target {
                // Exactly as many of the oldest lines as free the excess (a batch at most).
                let lines = Lines::Oldest {
                    target: i64::try_from(target).unwrap_or(i64::MAX),
                };
                let (n, _) = self
                    .pool
                    .run(move |conn| lines.delete_batch(conn).map_err(pg("pruning logs")))?;
                if n == 0 {
                    break;
                }
                report.evicted += n;
                used = self.log_bytes()?;
            }
        }
        report.bytes_after = used;
        Ok(report)
    }

    fn create_log_group(&self, group: &LogGroup, now_ms: i64) -> Result<bool, StoreError> {
        let context = "creating a log group";
        let (name, key) = (group.name(), group.key());
        self.pool.run(move |conn| {
            let s = conn
                .prepare(
                    "INSERT INTO log_groups (name, group_key, created_ms) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .map_err(pg(context))?;
            let n = retried(conn, |c| c.client().execute(&s, &[&name, &key, &now_ms]))
                .map_err(pg(context))?;
            Ok(n == 1)
        })
    }

    fn delete_log_group(&self, group: &LogGroup) -> Result<bool, StoreError> {
        let context = "deleting a log group";
        let key = group.key();
        // The lines go in batches; the group row last, so that a failure midway leaves a
        // group that can be deleted again. Lines appended meanwhile go with it.
        self.delete_lines(context, &Lines::Group { key: key.clone() })?;
        self.pool.run(move |conn| {
            let lock = conn
                .prepare("SELECT 1 FROM log_bytes WHERE group_key = $1 FOR UPDATE")
                .map_err(pg(context))?;
            let lines = conn
                .prepare("DELETE FROM logs WHERE group_key = $1")
                .map_err(pg(context))?;
            let counter = conn
                .prepare("DELETE FROM log_bytes WHERE group_key = $1")
                .map_err(pg(context))?;
            let streams = conn
                .prepare("DELETE FROM log_streams WHERE group_key = $1")
                .map_err(pg(context))?;
            let groups = conn
                .prepare("DELETE FROM log_groups WHERE group_key = $1")
                .map_err(pg(context))?;
            conn.transaction(|tx| -> Result<bool, StoreError> {
                let key: &(dyn ToSql + Sync) = &key;
                tx.execute(&lock, &[key]).map_err(pg(context))?;
                tx.execute(&lines, &[key]).map_err(pg(context))?;
                tx.execute(&counter, &[key]).map_err(pg(context))?;
                tx.execute(&streams, &[key]).map_err(pg(context))?;
                Ok(tx.execute(&groups, &[key]).map_err(pg(context))? == 1)
            })
        })
    }

    fn log_group(&self, group: &LogGroup) -> Result<Option<LogGroupInfo>, StoreError> {
        let context = "reading a log group";
        let key = group.key();
        self.pool.run(move |conn| {
            let s = conn
                .prepare(
                    "SELECT name, created_ms, retention_days FROM log_groups
                     WHERE group_key = $1",
                )
                .map_err(pg(context))?;
            conn.client()
                .query_opt(&s, &[&key])
                .and_then(|r| r.as_ref().map(group_info).transpose())
                .map_err(pg(context))
        })
    }

    fn custom_log_group_count(&self) -> Result<u64, StoreError> {
        let context = "counting log groups";
        self.pool.run(move |conn| {
            let s = conn
                .prepare("SELECT count(*) FROM log_groups WHERE starts_with(group_key, ':')")
                .map_err(pg(context))?;
            let n: i64 = conn
                .client()
                .query_one(&s, &[])
                .and_then(|r| r.try_get(0))
                .map_err(pg(context))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn list_log_groups(
        &self,
        prefix: &str,
        pattern: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogGroupInfo>, StoreError> {
        let context = "listing log groups";
        let after = after.unwrap_or("").to_owned();
        let (prefix, pattern, limit) = (prefix.to_owned(), pattern.to_owned(), to_i64(limit));
        self.pool.run(move |conn| {
            let s = conn
                .prepare(
                    r#"SELECT name, created_ms, retention_days FROM log_groups
                       WHERE name > $1 AND starts_with(name, $2)
                         AND ($4 = '' OR strpos(lower(name), lower($4 COLLATE "C")) > 0)
                       ORDER BY name LIMIT $3"#,
                )
                .map_err(pg(context))?;
            let rows = conn
                .client()
                .query(&s, &[&after, &prefix, &limit, &pattern])
                .map_err(pg(context))?;
            rows.iter()
                .map(group_info)
                .collect::<Result<_, _>>()
                .map_err(pg(context))
        })
    }

    fn set_log_retention(
        &self,
        group: &LogGroup,
        days: Option<u32>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let context = "setting a log group's retention";
        let key = group.key();
        let stored = days.map(i64::from);
        let found = self.pool.run({
            let key = key.clone();
            move |conn| {
                let s = conn
                    .prepare("UPDATE log_groups SET retention_days = $2 WHERE group_key = $1")
                    .map_err(pg(context))?;
                let n = retried(conn, |c| c.client().execute(&s, &[&key, &stored]))
                    .map_err(pg(context))?;
                Ok::<_, StoreError>(n == 1)
            }
        })?;
        if !found {
            return Ok(false);
        }
        if let Some(days) = days {
            self.expire_group(&key, now_ms.saturating_sub(i64::from(days) * DAY_MS))?;
        }
        Ok(true)
    }

    fn create_log_stream(
        &self,
        group: &LogGroup,
        stream: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let context = "creating a log stream";
        let (key, stream) = (group.key(), stream.to_owned());
        self.pool.run(move |conn| {
            let s = conn
                .prepare(
                    "INSERT INTO log_streams (group_key, name, created_ms) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .map_err(pg(context))?;
            let n = retried(conn, |c| c.client().execute(&s, &[&key, &stream, &now_ms]))
                .map_err(pg(context))?;
            Ok(n == 1)
        })
    }

    fn delete_log_stream(&self, group: &LogGroup, stream: &str) -> Result<bool, StoreError> {
        let context = "deleting a log stream";
        let (key, name) = (group.key(), stream.to_owned());
        self.delete_lines(
            context,
            &Lines::Stream {
                key: key.clone(),
                name: name.clone(),
            },
        )?;
        // Then, in one transaction, lines appended meanwhile and the stream itself (the
        // group's counter locked first, as appends lock it).
        self.pool.run(move |conn| {
            let lock = conn
                .prepare("SELECT 1 FROM log_bytes WHERE group_key = $1 FOR UPDATE")
                .map_err(pg(context))?;
            let rest = conn
                .prepare(
                    "WITH gone AS (
                        DELETE FROM logs WHERE stream_id =
                            (SELECT id FROM log_streams WHERE group_key = $1 AND name = $2)
                        RETURNING bytes
                     )
                     UPDATE log_bytes SET bytes = bytes - (SELECT coalesce(sum(bytes), 0) FROM gone)
                     WHERE group_key = $1",
                )
                .map_err(pg(context))?;
            let delete = conn
                .prepare("DELETE FROM log_streams WHERE group_key = $1 AND name = $2")
                .map_err(pg(context))?;
            conn.transaction(|tx| -> Result<bool, StoreError> {
                tx.execute(&lock, &[&key]).map_err(pg(context))?;
                tx.execute(&rest, &[&key, &name]).map_err(pg(context))?;
                Ok(tx.execute(&delete, &[&key, &name]).map_err(pg(context))? == 1)
            })
        })
    }

    fn list_log_streams(
        &self,
        group: &LogGroup,
        query: &StreamQuery<'_>,
    ) -> Result<Vec<LogStreamInfo>, StoreError> {
        let context = "listing log streams";
        macro_rules! list {
            ($order:literal) => {
                concat!(
                    "SELECT name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms
                     FROM log_streams
                     WHERE group_key = $1 AND starts_with(name, $2)
                     ORDER BY ",
                    $order,
                    " LIMIT $3 OFFSET $4"
                )
            };
        }
        let sql = match (query.by_last_event, query.descending) {
            (false, false) => list!("name ASC"),
            (false, true) => list!("name DESC"),
            (true, false) => list!("coalesce(last_event_ms, created_ms) ASC, name ASC"),
            (true, true) => list!("coalesce(last_event_ms, created_ms) DESC, name DESC"),
        };
        let (key, prefix) = (group.key(), query.prefix.to_owned());
        let (limit, offset) = (to_i64(query.limit), to_i64(query.offset));
        self.pool.run(move |conn| {
            let s = conn.prepare(sql).map_err(pg(context))?;
            let rows = conn
                .client()
                .query(&s, &[&key, &prefix, &limit, &offset])
                .map_err(pg(context))?;
            rows.iter()
                .map(|r| {
                    Ok(LogStreamInfo {
                        name: r.try_get(0)?,
                        created_ms: r.try_get(1)?,
                        first_event_ms: r.try_get(2)?,
                        last_event_ms: r.try_get(3)?,
                        last_ingestion_ms: r.try_get(4)?,
                    })
                })
                .collect::<Result<_, postgres::Error>>()
                .map_err(pg(context))
        })
    }

    fn append_events(
        &self,
        group: &LogGroup,
        stream: &str,
        events: &[(i64, String)],
        ingestion_ms: i64,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let context = "appending log events";
        let (key, stream) = (group.key(), stream.to_owned());
        let timestamps: Vec<i64> = events.iter().map(|e| e.0).collect();
        let messages: Vec<Vec<u8>> = events.iter().map(|e| e.1.clone().into_bytes()).collect();
        self.pool.run(move |conn| {
            let s = conn.prepare(APPEND_EVENTS).map_err(pg(context))?;
            retried(conn, |c| {
                c.client()
                    .execute(&s, &[&key, &stream, &timestamps, &messages, &ingestion_ms])
            })
            .map_err(pg(context))?;
            Ok(())
        })
    }

    fn scan_events(
        &self,
        range: &EventRange<'_>,
        visit: &mut dyn FnMut(EventRef<'_>) -> Scan,
    ) -> Result<(), StoreError> {
        let context = "reading log events";
        // Pages by seq (keyset), each its own query: no connection is held while `visit`
        // runs, and a page starts where the last one stopped, so that no event is read
        // twice or skipped (a group's lines appear in seq order; see the module docs).
        // Unlike SQLite's single read, the pages are not one snapshot: a forward scan also
        // meets lines appended while it runs (after every line it has read), and lines
        // deleted meanwhile are not met.
        macro_rules! page {
            ($seq_test:literal, $stream_test:literal, $order:literal) => {
                concat!(
                    "SELECT l.seq, s.name, l.timestamp_ms, coalesce(l.ingestion_ms, l.timestamp_ms),
                            l.message, l.source, l.request_id
                     FROM logs l LEFT JOIN log_streams s ON s.id = l.stream_id
                     WHERE l.group_key = $1 AND ",
                    $seq_test,
                    $stream_test,
                    " AND ($3::BIGINT IS NULL OR l.timestamp_ms >= $3)
                       AND ($4::BIGINT IS NULL OR l.timestamp_ms < $4)
                     ORDER BY l.seq ",
                    $order,
                    " LIMIT $5"
                )
            };
        }
        let sql = match (range.cursor, range.stream.is_some()) {
            (Cursor::After(_), false) => page!("l.seq > $2", "", "ASC"),
            (Cursor::Before(_), false) => page!("l.seq < $2", "", "DESC"),
            (Cursor::After(_), true) => page!(
                "l.seq > $2",
                " AND l.stream_id = (SELECT id FROM log_streams WHERE group_key = $1 AND name = $6)",
                "ASC"
            ),
            (Cursor::Before(_), true) => page!(
                "l.seq < $2",
                " AND l.stream_id = (SELECT id FROM log_streams WHERE group_key = $1 AND name = $6)",
                "DESC"
            ),
        };
        let key = range.group.key();
        let stream = range.stream.map(str::to_owned);
        let (start_ms, end_ms) = (range.start_ms, range.end_ms);
        let mut position = match range.cursor {
            Cursor::After(n) | Cursor::Before(n) => n,
        };
        let mut page = SCAN_FIRST_PAGE;
        loop {
            let limit = to_i64(page);
            let rows: Vec<Row> = self.pool.run({
                let (key, stream) = (key.clone(), stream.clone());
                move |conn| {
                    let s = conn.prepare(sql).map_err(pg(context))?;
                    let mut params: Vec<&(dyn ToSql + Sync)> =
                        vec![&key, &position, &start_ms, &end_ms, &limit];
                    if let Some(stream) = &stream {
                        params.push(stream);
                    }
                    conn.client().query(&s, &params).map_err(pg(context))
                }
            })?;
            for r in &rows {
                let text = |i: usize| -> Result<Option<&str>, StoreError> {
                    r.try_get(i).map_err(pg(context))
                };
                let event = EventRef {
                    seq: r.try_get(0).map_err(pg(context))?,
                    stream: text(1)?,
                    timestamp_ms: r.try_get(2).map_err(pg(context))?,
                    ingestion_ms: r.try_get(3).map_err(pg(context))?,
                    message: message(r.try_get(4).map_err(pg(context))?)?,
                    source: source(r.try_get(5).map_err(pg(context))?),
                    request_id: text(6)?,
                };
                position = event.seq;
                if visit(event) == Scan::Stop {
                    return Ok(());
                }
            }
            if rows.len() < page {
                return Ok(());
            }
            page = (page * 4).min(SCAN_MAX_PAGE);
        }
    }
}

/// What only the PostgreSQL log store could get wrong: the byte count kept beside the
/// lines, under every kind of write and with several nodes writing and pruning at once.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use warden_types::FunctionName;

    use crate::{LogGroup, LogRecord, LogRetention, LogSource, LogStore, PostgresStore};

    /// What `warden_log_line_bytes` adds to a line's text.
    const LINE_OVERHEAD: i64 = 200;

    fn database() -> (String, PostgresStore) {
        let url = warden_testservers::Postgres::shared()
            .fresh_database()
            .unwrap();
        let store = PostgresStore::open(&url, 4).unwrap();
        (url, store)
    }

    fn client(url: &str) -> postgres::Client {
        postgres::Client::connect(url, postgres::NoTls).unwrap()
    }

    fn line(f: &str, ts: i64, msg: &str) -> LogRecord {
        LogRecord {
            seq: 0,
            function: FunctionName::new(f).unwrap(),
            timestamp_ms: ts,
            request_id: (ts % 2 == 0).then(|| format!("request-{ts}")),
            stream: (ts % 3 != 0).then(|| format!("stream-{}", ts % 4)),
            message: msg.to_owned(),
            source: LogSource::Function,
        }
    }

    /// Every stored line, as `(seq, bytes it should count for)`, oldest first.
    fn lines(url: &str) -> Vec<(i64, i64)> {
        client(url)
            .query(
                "SELECT seq, group_key, message, request_id, bytes FROM logs ORDER BY seq",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| {
                let key: String = r.get(1);
                let message: Vec<u8> = r.get(2);
                let request_id: Option<String> = r.get(3);
                let expected = key.len() as i64
                    + message.len() as i64
                    + request_id.map_or(0, |r| r.len() as i64)
                    + LINE_OVERHEAD;
                assert_eq!(r.get::<_, i64>(4), expected, "a line counts for its text");
                (r.get(0), expected)
            })
            .collect()
    }

    /// The count the store keeps is exactly the sum of its lines, per group and in all.
    fn assert_counted_exactly(url: &str, store: &PostgresStore) {
        let total: i64 = lines(url).iter().map(|l| l.1).sum();
        assert_eq!(store.log_bytes().unwrap(), total as u64);
        let mut c = client(url);
        let per_group = |sql: &str, c: &mut postgres::Client| -> BTreeMap<String, i64> {
            c.query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .filter(|(_, b): &(String, i64)| *b != 0)
                .collect()
        };
        assert_eq!(
            per_group("SELECT group_key, bytes FROM log_bytes", &mut c),
            per_group(
                "SELECT group_key, sum(bytes)::BIGINT FROM logs GROUP BY group_key",
                &mut c
            )
        );
    }

    #[test]
    fn every_write_keeps_the_byte_count_exact() {
        let (url, store) = database();
        assert_eq!(store.log_bytes().unwrap(), 0);
        let batch: Vec<_> = (0..300)
            .map(|i| line(["f", "g"][i % 2], i as i64, &"é".repeat(i % 17)))
            .collect();
        store.append_logs(&batch).unwrap();
        assert_counted_exactly(&url, &store);

        let app = LogGroup::Custom("app".into());
        store.create_log_group(&app, 0).unwrap();
        store
            .append_events(&app, "s", &[(5, "a".into()), (500, "bb".into())], 600)
            .unwrap();
        store
            .append_events(&app, "t", &[(7, "ccc".into())], 600)
            .unwrap();
        assert_counted_exactly(&url, &store);

        let report = store
            .prune_logs(
                &LogRetention {
                    max_age_ms: 200,
                    max_bytes: u64::MAX,
                },
                300,
            )
            .unwrap();
        assert!(report.expired > 0);
        assert_counted_exactly(&url, &store);

        store
            .set_log_retention(&app, Some(1), 86_400_000 + 100)
            .unwrap();
        assert_counted_exactly(&url, &store);
        assert!(store.delete_log_stream(&app, "s").unwrap());
        assert!(store
            .delete_log_stream(
                &LogGroup::Function(FunctionName::new("f").unwrap()),
                "stream-2"
            )
            .unwrap());
        assert_counted_exactly(&url, &store);
        assert!(store
            .delete_log_group(&LogGroup::Custom("app".into()))
            .unwrap());
        assert!(store
            .delete_log_group(&LogGroup::Function(FunctionName::new("g").unwrap()))
            .unwrap());
        assert_counted_exactly(&url, &store);
        let left: i64 = client(&url)
            .query_one(
                "SELECT count(*) FROM log_bytes WHERE group_key IN ('g', ':app')",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "a deleted group's count goes with it");
        assert_eq!(report.bytes_before, {
            // What the first batch and the events counted for, recomputed from the text.
            let text: i64 = batch
                .iter()
                .map(|r| {
                    (r.function.as_str().len()
                        + r.message.len()
                        + r.request_id.as_ref().map_or(0, String::len)) as i64
                        + LINE_OVERHEAD
                })
                .sum();
            let events: i64 = ["a", "bb", "ccc"]
                .iter()
                .map(|m| (":app".len() + m.len()) as i64 + LINE_OVERHEAD)
                .sum();
            (text + events) as u64
        });
    }

    #[test]
    fn the_size_cap_evicts_exactly_the_fewest_oldest_lines() {
        let (url, store) = database();
        // Lines of very different sizes, so that an estimate from the average would be off.
        for chunk in (0..3000).collect::<Vec<i64>>().chunks(500) {
            let batch: Vec<_> = chunk
                .iter()
                .map(|&i| line("f", i, &"x".repeat(((i * 7919) % 3000) as usize)))
                .collect();
            store.append_logs(&batch).unwrap();
        }
        let before = lines(&url);
        let total: i64 = before.iter().map(|l| l.1).sum();
        let cap = (total / 3) as u64;
        let report = store
            .prune_logs(
                &LogRetention {
                    max_age_ms: i64::MAX,
                    max_bytes: cap,
                },
                0,
            )
            .unwrap();
        // The fewest oldest lines whose removal leaves at most 90 % of the cap.
        let target = (cap / 10 * 9) as i64;
        let mut kept = total;
        let mut evicted = 0;
        for (_, bytes) in &before {
            if kept <= target {
                break;
            }
            kept -= bytes;
            evicted += 1;
        }
        assert_eq!(report.evicted, evicted);
        assert_eq!(report.bytes_before, total as u64);
        assert_eq!(report.bytes_after, kept as u64);
        let after = lines(&url);
        assert_eq!(after, before[evicted as usize..]);
        assert_counted_exactly(&url, &store);
    }

    /// Two nodes append to the same groups, delete streams and prune under a small cap, all at
    /// once: every call succeeds (no deadlock reaches a caller), the count stays exact and
    /// the cap holds once the appends stop.
    #[test]
    fn concurrent_appends_deletes_and_prunes_of_two_nodes_keep_the_count_exact() {
        let (url, first) = database();
        let stores = [
            Arc::new(first),
            Arc::new(PostgresStore::open(&url, 4).unwrap()),
        ];
        let cap: u64 = 200_000;
        let retention = LogRetention {
            max_age_ms: i64::MAX,
            max_bytes: cap,
        };
        let mut threads = Vec::new();
        for w in 0..4 {
            let store = stores[w % 2].clone();
            threads.push(std::thread::spawn(move || {
                for b in 0..40 {
                    // Each batch touches several groups, in an order of its own.
                    let batch: Vec<_> = (0..20)
                        .map(|i| {
                            let f = ["a", "b", "c"][(w + b + i) % 3];
                            line(f, (b * 20 + i) as i64, &"m".repeat(100 + w * 10 + i))
                        })
                        .collect();
                    store.append_logs(&batch).unwrap();
                    let app = LogGroup::Custom(format!("app{}", b % 2));
                    store
                        .append_events(&app, "s", &[(b as i64, "event".repeat(w + 1))], 1)
                        .unwrap();
                }
            }));
        }
        for store in &stores {
            let store = store.clone();
            threads.push(std::thread::spawn(move || {
                for _ in 0..15 {
                    store.prune_logs(&retention, 0).unwrap();
                    store
                        .delete_log_stream(
                            &LogGroup::Function(FunctionName::new("a").unwrap()),
                            "stream-1",
                        )
                        .unwrap();
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_counted_exactly(&url, &stores[0]);
        let report = stores[1].prune_logs(&retention, 0).unwrap();
        assert!(report.bytes_after <= cap, "{report:?}");
        assert_counted_exactly(&url, &stores[1]);
        let seqs: Vec<i64> = lines(&url).iter().map(|l| l.0).collect();
        assert!(!seqs.is_empty());
    }
}
