//! Why a query was refused, or stopped.

use thiserror::Error;

/// A query that cannot be run. Its `Display` is the message a `MalformedQueryException`
/// carries: what is wrong and where (1-based line and character position).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query is longer than CloudWatch allows.
    #[error("Query is too long: it has {length} characters; at most {max} are allowed")]
    TooLong {
        /// Characters in the query.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The query has no command.
    #[error("Query is empty: it needs at least one command")]
    Empty,
    /// Something other than what the grammar allows at this point.
    #[error("Unexpected {found} at line {line}, position {column}: expected {expected}")]
    Unexpected {
        /// What is there (`end of query` at the end).
        found: String,
        /// What would have been valid.
        expected: String,
        /// 1-based line.
        line: usize,
        /// 1-based character position in the line.
        column: usize,
    },
    /// A command outside the supported subset (or no command at all).
    #[error(
        "Unsupported command '{name}' at line {line}, position {column}: the supported \
         commands are fields, filter, stats, sort, limit and display"
    )]
    UnsupportedCommand {
        /// The command as written.
        name: String,
        /// 1-based line.
        line: usize,
        /// 1-based character position in the line.
        column: usize,
    },
    /// A function outside the supported subset.
    #[error("Unsupported function '{name}' at line {line}, position {column}{hint}")]
    UnsupportedFunction {
        /// The function as written.
        name: String,
        /// What is supported where the function was, starting with `: `.
        hint: String,
        /// 1-based line.
        line: usize,
        /// 1-based character position in the line.
        column: usize,
    },
    /// A string, regular expression or backquoted name that never closes.
    #[error("Unterminated {what} starting at line {line}, position {column}")]
    Unterminated {
        /// What was left open.
        what: String,
        /// 1-based line.
        line: usize,
        /// 1-based character position in the line.
        column: usize,
    },
    /// A regular expression that does not compile within limits.
    #[error("Invalid regular expression at line {line}, position {column}: {reason}")]
    InvalidRegex {
        /// Why.
        reason: String,
        /// 1-based line.
        line: usize,
        /// 1-based character position in the line.
        column: usize,
    },
    /// Parentheses, `not` or signs nested, or operators chained, past the limit.
    #[error("Query nests expressions deeper than {max} levels at line {line}, position {column}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// 1-based line.
        line: usize,
        /// 1-based character position in the line.
        column: usize,
    },
    /// A literal that cannot be used where it is, such as `limit 0` or `bin(5x)`.
    #[error("Invalid {what} '{value}' at line {line}, position {column}: {reason}")]
    InvalidValue {
        /// What the value is for.
        what: String,
        /// The value as written.
        value: String,
        /// Why it cannot be used.
        reason: String,
        /// 1-based line.
        line: usize,
        /// 1-based character position in the line.
        column: usize,
    },
    /// A supported command or function where this subset does not allow it.
    #[error("{what} (line {line}, position {column})")]
    Misplaced {
        /// What is misplaced and what is allowed instead.
        what: String,
        /// 1-based line.
        line: usize,
        /// 1-based character position in the line.
        column: usize,
    },
}

/// Why running a parsed query stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ExecError {
    /// `stats ... by` produced more groups than are kept in memory.
    #[error(
        "The query's stats command produced more than {max} groups; narrow it with filter or \
         group by fewer fields"
    )]
    TooManyGroups {
        /// The limit.
        max: usize,
    },
    /// The rows (or `stats` groups) a query keeps while it runs would take more than this
    /// many bytes.
    #[error(
        "The query's results would take more than {max} bytes; select fewer or shorter \
         fields, or lower its limit"
    )]
    ResultsTooLarge {
        /// The limit.
        max: usize,
    },
}
