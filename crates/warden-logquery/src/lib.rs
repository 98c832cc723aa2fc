//! The two query languages of CloudWatch Logs, for Warden's logs API.
//!
//! - [`filter`] — filter patterns, as FilterLogEvents, metric filters and subscription
//!   filters take them: terms, `?`/`-` terms, quoted phrases, `%regex%`, JSON patterns
//!   (`{ $.a.b = "x" && $.n > 3 }`) and space-delimited patterns (`[ip, user, ..., status =
//!   4*]`).
//! - [`insights`] — a documented subset of the Logs Insights query language (`fields`,
//!   `filter`, `stats`, `sort`, `limit`, `display`) and an executor that streams events
//!   through a parsed query with bounded memory.
//!
//! Both languages are parsed by hand, to an AST, before anything is matched: neither has a
//! published grammar or a crate that implements it, and a hand-written recursive-descent
//! parser lets every refusal name what is wrong and where, in the words an
//! `InvalidParameterException` or `MalformedQueryException` carries. Both parsers bound
//! their input's length and nesting depth, so a hostile pattern or query cannot exhaust
//! the stack; regular expressions are compiled by the `regex` crate, whose matching is
//! linear in the input, with size limits.
//!
//! This crate depends on no other Warden crate: it sees messages as `&str` and knows
//! nothing of where they are stored.
//!
//! ```
//! use warden_logquery::{filter, insights};
//!
//! let pattern = filter::parse("{ $.level = \"ERROR\" && $.latency > 500 }")?;
//! assert!(pattern.matches(r#"{"level": "ERROR", "latency": 750}"#));
//! assert!(!pattern.matches("ERROR latency=750"));
//!
//! let query = insights::parse_query("filter @message like /ERROR/ | stats count(*) as errors")?;
//! let event = insights::Event {
//!     timestamp_ms: 1_714_564_800_000,
//!     ingestion_ms: 1_714_564_800_005,
//!     account_id: "123456789012",
//!     log_group: "/aws/lambda/orders",
//!     log_stream: "2024/05/01/[$LATEST]abc",
//!     message: "ERROR connection reset",
//!     platform: false,
//! };
//! let output = query.run([event], None)?;
//! assert_eq!(output.rows, [vec![("errors".to_owned(), "1".to_owned())]]);
//! assert_eq!(output.statistics.records_matched, 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod filter;
pub mod insights;
mod number;
mod regex_limits;

pub use filter::{FilterPattern, PatternError};
pub use insights::{parse_query, Event, ExecError, Query, QueryError, QueryOutput};
