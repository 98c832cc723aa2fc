//! The right-hand side of JSON and space-delimited conditions, and how it is compared.
//!
//! A value is a number (`400`, `-2.5`, `10e3`), a string with or without double quotes in
//! which a leading and a trailing `*` match any text (`*Event`, `Event*`, `*html*`; a `*`
//! in the middle is an ordinary character), or a `%regex%`. Strings compare with `=` and
//! `!=` only; numbers with all six operators. A number compares numerically with a JSON
//! number or with text that reads as a number; with other text, `=` holds only for the
//! literal's own spelling and `!=` for anything else. A string or regex compared with a
//! JSON number sees the number as JSON writes it.

use memchr::memmem::Finder;
use regex::Regex;

use super::scan::Scanner;
use super::PatternError;
use crate::number::parse_number;

/// Most regular expressions one pattern may hold (CloudWatch's quota for JSON and
/// space-delimited patterns).
pub(super) const MAX_REGEXES: usize = 2;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// Consumes an operator at the cursor, if there is one.
    pub(super) fn read(s: &mut Scanner<'_>) -> Option<CmpOp> {
        for (text, op) in [
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("=", CmpOp::Eq),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ] {
            if s.eat(text) {
                return Some(op);
            }
        }
        None
    }

    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            CmpOp::Eq => ordering == Equal,
            CmpOp::Ne => ordering != Equal,
            CmpOp::Lt => ordering == Less,
            CmpOp::Le => ordering != Greater,
            CmpOp::Gt => ordering == Greater,
            CmpOp::Ge => ordering != Less,
        }
    }
}

/// A string with its wildcards resolved.
#[derive(Debug)]
pub(super) enum TextPattern {
    /// `*`: any value.
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Boxed: a searcher is large, and most values are not this.
    Contains(Box<Finder<'static>>),
}

impl TextPattern {
    pub(super) fn new(text: &str) -> TextPattern {
        let lead = text.starts_with('*');
        let body = if lead { &text[1..] } else { text };
        let trail = body.ends_with('*');
        let core = if trail { &body[..body.len() - 1] } else { body };
        match (lead, trail) {
            _ if core.is_empty() && (lead || trail) => TextPattern::Any,
            (false, false) => TextPattern::Exact(core.to_owned()),
            (false, true) => TextPattern::Prefix(core.to_owned()),
            (true, false) => TextPattern::Suffix(core.to_owned()),
            (true, true) => {
                TextPattern::Contains(Box::new(Finder::new(core.as_bytes()).into_owned()))
            }
        }
    }

    pub(super) fn matches(&self, text: &str) -> bool {
        match self {
            TextPattern::Any => true,
            TextPattern::Exact(s) => text == s,
            TextPattern::Prefix(s) => text.starts_with(s.as_str()),
            TextPattern::Suffix(s) => text.ends_with(s.as_str()),
            TextPattern::Contains(f) => f.find(text.as_bytes()).is_some(),
        }
    }
}

/// The value side of a condition.
#[derive(Debug)]
pub(super) enum Value {
    Text(TextPattern),
    /// A numeric literal, with its text for comparing against values that are not numbers.
    Number {
        value: f64,
        text: String,
    },
    Regex(Regex),
}

/// What a condition is evaluated against.
#[derive(Debug, Clone, Copy)]
pub(super) enum Operand<'a> {
    /// Text: a JSON string, or a field of a space-delimited event.
    Text(&'a str),
    /// A JSON number.
    Number(&'a serde_json::Number),
}

/// A comparison: operator and value.
#[derive(Debug)]
pub(super) struct Condition {
    pub(super) op: CmpOp,
    pub(super) value: Value,
}

impl Condition {
    /// Reads `OP VALUE` at the cursor.
    pub(super) fn read(s: &mut Scanner<'_>, regexes: &mut usize) -> Result<Self, PatternError> {
        s.skip_ws();
        let Some(op) = CmpOp::read(s) else {
            return Err(s.unexpected("a comparison operator (=, !=, <, <=, >, >=)"));
        };
        s.skip_ws();
        let position = s.here();
        let value = read_value(s, regexes)?;
        if !matches!(op, CmpOp::Eq | CmpOp::Ne) && !matches!(value, Value::Number { .. }) {
            return Err(PatternError::InvalidValue {
                value: describe(&value),
                reason: "the operators <, <=, > and >= compare numbers only".to_owned(),
                position,
            });
        }
        Ok(Condition { op, value })
    }

    /// Whether `operand` satisfies the condition.
    pub(super) fn holds(&self, operand: Operand<'_>) -> bool {
        match &self.value {
            Value::Number { value, text } => {
                let (number, raw) = match operand {
                    Operand::Number(n) => (n.as_f64(), None),
                    Operand::Text(t) => (parse_number(t), Some(t)),
                };
                match (number, raw) {
                    (Some(n), _) => n
                        .partial_cmp(value)
                        .is_some_and(|ordering| self.op.holds(ordering)),
                    // Text that is not a number: equal only to the literal's own spelling.
                    (None, Some(t)) => match self.op {
                        CmpOp::Eq => t == text,
                        CmpOp::Ne => t != text,
                        _ => false,
                    },
                    (None, None) => false,
                }
            }
            Value::Text(pattern) => {
                let matched = with_text(operand, |t| pattern.matches(t));
                (self.op == CmpOp::Eq) == matched
            }
            Value::Regex(re) => {
                let matched = with_text(operand, |t| re.is_match(t));
                (self.op == CmpOp::Eq) == matched
            }
        }
    }
}

fn with_text(operand: Operand<'_>, f: impl FnOnce(&str) -> bool) -> bool {
    match operand {
        Operand::Text(t) => f(t),
        Operand::Number(n) => f(&n.to_string()),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Text(TextPattern::Any) => "*".to_owned(),
        Value::Text(TextPattern::Exact(s)) => s.clone(),
        Value::Text(TextPattern::Prefix(s)) => format!("{s}*"),
        Value::Text(TextPattern::Suffix(s)) => format!("*{s}"),
        Value::Text(TextPattern::Contains(f)) => {
            format!("*{}*", String::from_utf8_lossy(f.needle()))
        }
        Value::Number { text, .. } => text.clone(),
        Value::Regex(re) => format!("%{}%", re.as_str()),
    }
}

/// Characters an unquoted value may hold.
fn bare_value_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '*' | '+' | ':' | '/')
}

/// Characters that end an unquoted value.
fn ends_value(c: char) -> bool {
    c.is_whitespace() || matches!(c, ')' | '}' | ']' | ',' | '&' | '|')
}

/// Reads a value at the cursor.
fn read_value(s: &mut Scanner<'_>, regexes: &mut usize) -> Result<Value, PatternError> {
    match s.peek() {
        Some('"') => Ok(Value::Text(TextPattern::new(&s.quoted()?))),
        Some('%') => Ok(Value::Regex(read_regex(s, regexes)?)),
        _ => {
            let position = s.here();
            let bare = s.take_while(bare_value_char);
            if let Some(c) = s.peek().filter(|c| !ends_value(*c)) {
                let operator_like = matches!(c, '=' | '!' | '<' | '>' | '(' | '{' | '[' | '"');
                if bare.is_empty() && operator_like {
                    return Err(s.unexpected("a value"));
                }
                let word = format!("{bare}{}", s.take_while(|c| !ends_value(c)));
                return Err(PatternError::InvalidValue {
                    value: word,
                    reason: "values with characters other than letters, digits and _ - . * + : / \
                             must be enclosed in double quotes"
                        .to_owned(),
                    position,
                });
            }
            if bare.is_empty() {
                return Err(s.unexpected("a value"));
            }
            Ok(match parse_number(bare) {
                Some(value) => Value::Number {
                    value,
                    text: bare.to_owned(),
                },
                None => Value::Text(TextPattern::new(bare)),
            })
        }
    }
}

/// Characters CloudWatch accepts inside `%...%`: letters and digits, the symbols
/// `: _ # = @ / ; , -`, the operators `^ $ ? [ ] { } | \ * + .`, and spaces. Not `(` or
/// `)` (no groups), and no multi-byte characters.
fn regex_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ':' | '_'
                | '#'
                | '='
                | '@'
                | '/'
                | ';'
                | ','
                | '-'
                | '^'
                | '$'
                | '?'
                | '['
                | ']'
                | '{'
                | '}'
                | '|'
                | '\\'
                | '*'
                | '+'
                | '.'
                | ' '
        )
}

/// Reads and compiles `%regex%` at the cursor, counting it against [`MAX_REGEXES`].
pub(super) fn read_regex(s: &mut Scanner<'_>, regexes: &mut usize) -> Result<Regex, PatternError> {
    let (body, position) = s.regex_body()?;
    *regexes += 1;
    if *regexes > MAX_REGEXES {
        return Err(PatternError::TooManyRegexes { max: MAX_REGEXES });
    }
    let invalid = |reason: String| PatternError::InvalidRegex {
        regex: body.to_owned(),
        reason,
        position,
    };
    if body.is_empty() {
        return Err(invalid("the expression is empty".to_owned()));
    }
    if let Some(c) = body.chars().find(|c| !regex_char(*c)) {
        let reason = match c {
            '(' | ')' => {
                "parentheses are not supported: a pattern cannot define a subpattern".to_owned()
            }
            c if !c.is_ascii() => format!("multi-byte characters such as '{c}' are not supported"),
            c => format!("the character '{c}' is not supported"),
        };
        return Err(invalid(reason));
    }
    crate::regex_limits::compile(body).map_err(|e| invalid(first_line(&e.to_string())))
}

fn first_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .or_else(|| text.lines().next())
        .unwrap_or("does not compile")
        .trim_start_matches("error: ")
        .to_owned()
}
