//! CloudWatch Logs filter patterns, as FilterLogEvents, metric filters and subscription
//! filters take them.
//!
//! [`parse`] reads a pattern once; [`FilterPattern::matches`] then tests messages against
//! it. The pattern's first non-blank character decides its kind:
//!
//! - nothing (an empty or blank pattern, or `" "`): every event matches;
//! - `{`: a JSON pattern (module `json`), such as
//!   `{ $.level = "ERROR" && $.latency > 500 }`;
//! - `[`: a space-delimited pattern (module `delimited`), such as
//!   `[ip, user, ..., status = 4*]`;
//! - `%`: a regular expression, `%AUTHORIZED%`, which must then be the whole pattern;
//! - anything else: terms (module `terms`), such as `ERROR -Exiting` or `?ERROR ?WARN`.
//!
//! Regular expressions follow CloudWatch's documented restrictions: only ASCII letters and
//! digits, the symbols `: _ # = @ / ; , -` (and spaces), and the operators
//! `^ $ ? [ ] { } | \ * + .` — no parentheses — and at most two in one pattern. They are
//! compiled by the `regex` crate, which matches in linear time.
//!
//! The parser is written by hand: CloudWatch publishes the syntax only as prose and
//! examples, and no crate implements it. It is a recursive-descent parser over a cursor
//! (module `scan`) with an explicit depth limit ([`MAX_DEPTH`] nested parentheses) and a length
//! limit ([`MAX_PATTERN_CHARS`], CloudWatch's own), so any input is refused as a value,
//! never by exhausting the stack. Matching costs time linear in the message for each part
//! of the pattern: term searchers are built at parse time, and a JSON message is parsed
//! at most once per match.

mod delimited;
mod error;
mod json;
mod scan;
mod terms;
mod value;

use std::str::FromStr;

use regex::Regex;

pub use error::PatternError;

use delimited::Delimited;
use json::JsonPattern;
use scan::Scanner;
use terms::Terms;

/// The longest pattern accepted, in characters (CloudWatch's limit on `filterPattern`).
pub const MAX_PATTERN_CHARS: usize = 1024;

/// The deepest nesting of parentheses accepted in JSON and space-delimited patterns.
pub const MAX_DEPTH: usize = 32;

/// Parses a filter pattern.
pub fn parse(pattern: &str) -> Result<FilterPattern, PatternError> {
    FilterPattern::parse(pattern)
}

/// The kind of a parsed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    /// Matches every event.
    All,
    /// Terms, phrases, `?term` and `-term`.
    Terms,
    /// A standalone `%regex%`.
    Regex,
    /// A `{ ... }` JSON pattern.
    Json,
    /// A `[ ... ]` space-delimited pattern.
    SpaceDelimited,
}

/// A parsed filter pattern, ready to test messages.
#[derive(Debug)]
pub struct FilterPattern {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    All,
    Terms(Terms),
    Regex(Regex),
    Json(JsonPattern),
    Delimited(Delimited),
}

impl FilterPattern {
    /// Parses a filter pattern; see the [module documentation](self) for the syntax.
    pub fn parse(pattern: &str) -> Result<FilterPattern, PatternError> {
        let length = pattern.chars().count();
        if length > MAX_PATTERN_CHARS {
            return Err(PatternError::TooLong {
                length,
                max: MAX_PATTERN_CHARS,
            });
        }
        let mut s = Scanner::new(pattern);
        s.skip_ws();
        let kind = match s.peek() {
            None => Kind::All,
            Some('{') => Kind::Json(JsonPattern::parse(&mut s)?),
            Some('[') => Kind::Delimited(Delimited::parse(&mut s)?),
            Some('%') => {
                let mut regexes = 0;
                let re = value::read_regex(&mut s, &mut regexes)?;
                s.skip_ws();
                if !s.at_end() {
                    return Err(PatternError::Unsupported {
                        what: "a regular expression (%...%) must be the whole filter pattern"
                            .to_owned(),
                        position: s.here(),
                    });
                }
                Kind::Regex(re)
            }
            Some(_) if is_blank_phrase(pattern) => Kind::All,
            Some(_) => Kind::Terms(Terms::parse(&mut s)?),
        };
        Ok(FilterPattern { kind })
    }

    /// Whether `message` matches the pattern.
    pub fn matches(&self, message: &str) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::Terms(t) => t.matches(message),
            Kind::Regex(re) => re.is_match(message),
            Kind::Json(j) => j.matches(message),
            Kind::Delimited(d) => d.matches(message),
        }
    }

    /// Which kind of pattern this is.
    pub fn kind(&self) -> PatternKind {
        match self.kind {
            Kind::All => PatternKind::All,
            Kind::Terms(_) => PatternKind::Terms,
            Kind::Regex(_) => PatternKind::Regex,
            Kind::Json(_) => PatternKind::Json,
            Kind::Delimited(_) => PatternKind::SpaceDelimited,
        }
    }

    /// Whether every message matches, so a caller may skip matching altogether.
    pub fn matches_everything(&self) -> bool {
        matches!(self.kind, Kind::All)
    }
}

impl FromStr for FilterPattern {
    type Err = PatternError;

    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        FilterPattern::parse(pattern)
    }
}

/// `" "` (a quoted phrase of blanks and nothing else), which CloudWatch documents as
/// matching every event.
fn is_blank_phrase(pattern: &str) -> bool {
    pattern
        .trim()
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .is_some_and(|inner| inner.chars().all(char::is_whitespace))
}

#[cfg(test)]
mod tests;
