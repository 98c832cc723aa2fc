//! A documented subset of the CloudWatch Logs Insights query language.
//!
//! [`parse_query`] reads a query; [`Query::run`] streams events through it and returns
//! rows in the order GetQueryResults returns them, with its statistics.
//!
//! # The subset
//!
//! Commands, separated by `|` (a command that starts a new line needs none), with `#`
//! comments:
//!
//! - `fields f1, f2, expr as name` — the fields each result row shows (and fields computed
//!   for later commands);
//! - `filter EXPR` (or its alias `where EXPR`) — keep the events for which `EXPR` holds;
//! - `stats AGG(...) [as name], ... [by f1, bin(5m), ...]` — aggregates `count(*)`,
//!   `count(f)`, `count_distinct(f)`, `sum`, `avg`, `min`, `max`, `pct(f, 95)`; groups by
//!   fields and by `bin(period)` (`@timestamp` rounded down to a multiple of the period;
//!   units `ms`, `s`, `m`, `h`, `d`, `w` and their long spellings). One `stats` per
//!   query; `filter`, `fields`, `sort`, `limit` and `display` may follow it and then work
//!   on its rows;
//! - `sort EXPR [asc|desc], ...` — ascending unless `desc`; values in Insights' natural
//!   order (text before numbers); events without the field come last;
//! - `limit N` — at most `N` rows, 1 to [`MAX_LIMIT`];
//! - `display f1, f2` — which fields the rows show.
//!
//! Expressions: fields (names of letters, digits, `_`, `.`, `@`, or in backquotes),
//! numbers, strings in single or double quotes, `+ - * / % ^`, `= != < <= > >=`, `and`,
//! `or`, `not`, parentheses, `like "substring"`, `like /regex/` and `=~`, `not like`,
//! `in [..]`, `not in [..]`, and `ispresent(field)`.
//!
//! Without `sort`, rows of a query without `stats` come newest first (`@timestamp desc`),
//! and `stats` rows in the order their groups first appeared. Without `limit`, at most
//! [`DEFAULT_LIMIT`] rows are returned. A query without `fields` or `display` shows
//! `@timestamp` and `@message`.
//!
//! Fields: see [`record`] for the system fields, Lambda's fields and JSON fields.
//!
//! Anything else — `parse`, `dedup`, `unmask`, `pattern` and the other commands of the full
//! language, functions other than the ones above, a second `stats`, `filter` after `sort`
//! or `limit` — is refused with an error naming it and its place, never ignored.
//!
//! # Bounds
//!
//! A query has at most [`MAX_QUERY_CHARS`] characters and nests at most 32 levels. A query
//! without `stats` keeps only its best `limit` rows while it runs (a bounded heap); a
//! `stats` query keeps at most [`MAX_GROUPS`] groups, then stops with
//! [`ExecError::TooManyGroups`]; either keeps at most [`MAX_RESULT_BYTES`] of row values or
//! group keys, then stops with [`ExecError::ResultsTooLarge`]. `pct` keeps a uniform sample of at most 1,000 values per
//! group (exact below that) and `count_distinct` counts exactly up to 256 distinct values
//! per group, then estimates (HyperLogLog, about 3% error).

mod ast;
mod error;
mod eval;
mod exec;
pub use exec::Run;
mod lexer;
mod parser;
pub mod record;

use serde::Serialize;

use ast::{SortKey, Stats, Step};
pub use error::{ExecError, QueryError};

/// The longest query accepted, in characters (CloudWatch's limit).
pub const MAX_QUERY_CHARS: usize = 10_000;
/// Rows returned when the query has no `limit` and the caller sets no cap.
pub const DEFAULT_LIMIT: usize = 1_000;
/// The most rows a query may return.
pub const MAX_LIMIT: usize = 10_000;
/// The most `stats` groups kept.
pub const MAX_GROUPS: usize = 10_000;
/// The most bytes of rows (or of `stats` group keys) a query keeps while it runs.
pub const MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;

/// One stored log event, as a query reads it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// When the event happened, in milliseconds since the epoch (`@timestamp`).
    pub timestamp_ms: i64,
    /// When it was stored (`@ingestionTime`).
    pub ingestion_ms: i64,
    /// The account owning the log group; `@log` is `account_id:log_group` (or the log
    /// group alone when this is empty).
    pub account_id: &'a str,
    /// The log group's name.
    pub log_group: &'a str,
    /// The log stream's name (`@logStream`).
    pub log_stream: &'a str,
    /// The message (`@message`).
    pub message: &'a str,
    /// Whether the platform wrote this line (`START`, `END`, `REPORT`), rather than the
    /// function. Lambda's `@type`, `@requestId`, `@duration` and related fields are read
    /// from platform lines only.
    pub platform: bool,
}

/// What a query returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryOutput {
    /// Result rows in GetQueryResults order; each row lists `(field, value)` for the
    /// fields it has, in the order the query names them.
    pub rows: Vec<Vec<(String, String)>>,
    /// GetQueryResults' `statistics`.
    pub statistics: QueryStatistics,
}

/// GetQueryResults' `statistics`, as numbers in the JSON (doubles).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryStatistics {
    /// Events that passed the query's filters (before `stats`).
    pub records_matched: f64,
    /// Events read.
    pub records_scanned: f64,
    /// Bytes of the messages read.
    pub bytes_scanned: f64,
}

/// A parsed query.
#[derive(Debug)]
pub struct Query {
    /// Steps on each event, before `stats` (all of them without `stats`).
    pre: Vec<Step>,
    stats: Option<Stats>,
    /// Steps on `stats` rows.
    post: Vec<Step>,
    /// The sort, with `@timestamp desc` filled in for queries without `stats`.
    sort: Vec<SortKey>,
    limit: Option<usize>,
    /// The fields each row shows.
    output: Vec<String>,
}

/// Parses a Logs Insights query; see the [module documentation](self) for the subset.
pub fn parse_query(query: &str) -> Result<Query, QueryError> {
    Query::parse(query)
}

impl Query {
    /// Parses a Logs Insights query.
    pub fn parse(query: &str) -> Result<Query, QueryError> {
        let length = query.chars().count();
        if length > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong {
                length,
                max: MAX_QUERY_CHARS,
            });
        }
        let tokens = lexer::lex(query)?;
        let commands = parser::Parser::new(query, tokens).commands()?;
        exec::plan(query, commands)
    }

    /// Whether the query aggregates with `stats`.
    pub fn is_stats(&self) -> bool {
        self.stats.is_some()
    }

    /// The query's own `limit`, if it has one.
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// The fields the result rows show, in order.
    pub fn output_fields(&self) -> &[String] {
        &self.output
    }
}

#[cfg(test)]
mod tests;
