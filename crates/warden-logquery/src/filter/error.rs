//! Why a filter pattern was refused.

use thiserror::Error;

/// A filter pattern that cannot be used. Its `Display` is the message an
/// `InvalidParameterException` carries: what is wrong and, where it has one, the
/// 1-based character position in the pattern.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is longer than CloudWatch allows.
    #[error("Invalid filter pattern: it has {length} characters; at most {max} are allowed")]
    TooLong {
        /// Characters in the pattern.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// An unquoted term holds a character other than a letter, a digit or `_`.
    #[error(
        "Invalid character(s) in term '{term}' at position {position}: terms with characters \
         other than letters, digits and '_' must be enclosed in double quotes"
    )]
    InvalidTermCharacters {
        /// The term as written.
        term: String,
        /// Where it starts.
        position: usize,
    },
    /// A `"` opened a string that never closes.
    #[error("Unterminated quoted string starting at position {position}")]
    UnterminatedString {
        /// Where the string starts.
        position: usize,
    },
    /// A `%` opened a regular expression that never closes.
    #[error("Unterminated regular expression starting at position {position}")]
    UnterminatedRegex {
        /// Where the expression starts.
        position: usize,
    },
    /// A `(` without its `)`, or a `)` without its `(`.
    #[error("Unbalanced parentheses at position {position}")]
    UnbalancedParentheses {
        /// Where the unmatched parenthesis is (or where its partner is missing).
        position: usize,
    },
    /// A `{` or `[` pattern that does not end with its closing bracket.
    #[error("Unbalanced '{open}' at position {position}: the pattern must end with '{close}'")]
    UnbalancedBrackets {
        /// The opening bracket.
        open: char,
        /// The closing bracket that is missing or misplaced.
        close: char,
        /// Where the problem was found.
        position: usize,
    },
    /// Parentheses nested deeper than the limit.
    #[error("Filter pattern nests parentheses deeper than {max} levels at position {position}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Where the limit was crossed.
        position: usize,
    },
    /// Something other than what the grammar allows at this point.
    #[error("Invalid filter pattern at position {position}: expected {expected}, found {found}")]
    Unexpected {
        /// What would have been valid.
        expected: String,
        /// What is there (`end of pattern` at the end).
        found: String,
        /// Where.
        position: usize,
    },
    /// A JSON property selector that is not `$` followed by `.name` and `[index]` steps.
    #[error("Invalid JSON selector '{selector}' at position {position}: {reason}")]
    InvalidSelector {
        /// The selector as written.
        selector: String,
        /// What is wrong with it.
        reason: String,
        /// Where it starts.
        position: usize,
    },
    /// A value in a JSON or space-delimited condition that cannot be used.
    #[error("Invalid value '{value}' at position {position}: {reason}")]
    InvalidValue {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
        /// Where it starts.
        position: usize,
    },
    /// A `%regex%` that CloudWatch would refuse, or that does not compile within limits.
    #[error("Invalid regular expression '{regex}' at position {position}: {reason}")]
    InvalidRegex {
        /// The expression between the `%` signs.
        regex: String,
        /// What is wrong with it.
        reason: String,
        /// Where it starts.
        position: usize,
    },
    /// More regular expressions than one pattern may hold.
    #[error("Filter pattern has more than {max} regular expressions")]
    TooManyRegexes {
        /// The limit.
        max: usize,
    },
    /// A space-delimited condition names a field other than its own.
    #[error(
        "Invalid condition at position {position}: a condition in field '{slot}' may only \
         test '{slot}', not '{field}'"
    )]
    ForeignField {
        /// The field whose place the condition is in.
        slot: String,
        /// The field the condition names.
        field: String,
        /// Where the condition is.
        position: usize,
    },
    /// Syntax CloudWatch documents for something else, or does not document.
    #[error("Unsupported filter pattern syntax at position {position}: {what}")]
    Unsupported {
        /// What is not supported, and why where that helps.
        what: String,
        /// Where it is.
        position: usize,
    },
}

impl PatternError {
    /// The 1-based character position the error refers to, if it refers to one.
    pub fn position(&self) -> Option<usize> {
        match self {
            PatternError::TooLong { .. } | PatternError::TooManyRegexes { .. } => None,
            PatternError::InvalidTermCharacters { position, .. }
            | PatternError::UnterminatedString { position }
            | PatternError::UnterminatedRegex { position }
            | PatternError::UnbalancedParentheses { position }
            | PatternError::UnbalancedBrackets { position, .. }
            | PatternError::TooDeep { position, .. }
            | PatternError::Unexpected { position, .. }
            | PatternError::InvalidSelector { position, .. }
            | PatternError::InvalidValue { position, .. }
            | PatternError::InvalidRegex { position, .. }
            | PatternError::ForeignField { position, .. }
            | PatternError::Unsupported { position, .. } => Some(*position),
        }
    }
}
