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
#![forbid(unsafe_code)]

pub mod filter;
pub mod insights;
mod number;
mod regex_limits;

pub use filter::{FilterPattern, PatternError};
pub use insights::{parse_query, Event, ExecError, Query, QueryError, QueryOutput};
