//! A bounded, iterative JSON checker: the first stage of every event check.
//!
//! Why a hand-written scanner rather than a serde `Visitor` on top of `serde_json`:
//!
//! - **Number literals.** Refusing an integer beyond ±(2^53−1) needs the literal as written:
//!   without serde_json's `arbitrary_precision` feature (which would change `serde_json::Value`
//!   for the whole workspace) an integer literal too big for 64 bits reaches a visitor as an
//!   `f64`, indistinguishable from `1e20`.
//! - **Stack.** A visitor runs inside serde_json's recursive descent: a few stack frames per
//!   nesting level. This scanner keeps its own explicit stack on the heap, one small frame per
//!   open container, so `[[[[…` a million levels deep costs one loop iteration per byte and is
//!   refused at the contract's `MaxDepth` without recursing at all.
//! - **Locations.** It knows the JSON Pointer of every value while it reads, so a refusal names
//!   where it happened (`/order/items/3`).
//!
//! It checks the full JSON grammar of RFC 8259 as serde_json reads it (property-tested against
//! serde_json in this module's tests), so a payload it accepts is one serde_json accepts, and
//! the value handed to the schema is then built by serde_json itself. It never allocates more
//! than the payload's own keys (only when duplicates are refused) and one frame per open
//! container.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::excerpt::{excerpt, pointer_segment};

/// What the scanner enforces besides the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanLimits {
    /// How many arrays and objects may be open at once: `{"a":[1]}` has depth 2, a scalar 0.
    pub max_depth: usize,
    /// The longest string or object key, in UTF-8 bytes after escapes are decoded.
    pub max_string_bytes: usize,
    /// Whether an object may repeat a key (compared after escapes are decoded).
    pub allow_duplicate_keys: bool,
    /// Whether integer literals (no fraction, no exponent) beyond ±(2^53−1) are refused.
    pub safe_integers: bool,
}

/// What a successful scan learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// How many JSON values the text holds, containers and scalars alike.
    pub values: usize,
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// The text is not JSON: `reason` worded as serde_json words it, at byte `offset`.
    Syntax {
        /// What was wrong, e.g. "expected value".
        reason: &'static str,
        /// The byte where it was noticed.
        offset: usize,
    },
    /// The text is JSON but breaks a limit at `location` (a JSON Pointer).
    Limit {
        /// Where: a JSON Pointer whose segments are excerpts.
        location: String,
        /// What, without quoting more than an excerpt.
        message: String,
    },
}

impl ScanError {
    /// The syntax error's message in serde_json's shape, `reason at line L column C`, where
    /// (as serde_json counts) the position is just past the offending byte, or the end of the
    /// text: the line is one more than the newlines before it, the column how many bytes of
    /// its line precede it.
    pub(crate) fn syntax_message(reason: &str, text: &[u8], offset: usize) -> String {
        let end = offset.saturating_add(1).min(text.len());
        let before = text.get(..end).unwrap_or(text);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        format!("{reason} at line {line} column {}", end - line_start)
    }
}

/// The largest integer an IEEE-754 double holds exactly, and its negation the smallest.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// One open container.
enum Frame<'a> {
    /// An array; `index` is the element being read.
    Array { index: usize },
    /// An object; `segment` says the pointer segment of the member being read; `keys` holds
    /// every key seen so far when duplicates are refused (borrowed from the text unless the
    /// key has escapes).
    Object {
        segment: Segment,
        keys: Option<HashSet<Cow<'a, str>>>,
    },
}

/// A member's pointer segment, made only when an error names it: most keys are never
/// named, so they cost no allocation.
enum Segment {
    /// The key is the text's bytes in this range (it has no escapes).
    Raw(usize, usize),
    /// The segment of a key with escapes (or of one cut short), made when it was read.
    Made(String),
}

/// What the scanner expects next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (at the top, after `:`, or after `,` in an array).
    Value,
    /// A value or `]`, right after `[`.
    ValueOrEndArray,
    /// A key or `}`, right after `{`.
    KeyOrEndObject,
    /// A key, after `,` in an object.
    Key,
    /// The `:` after a key.
    Colon,
    /// `,` or the container's end, or the end of text at the top.
    Next,
}

/// Checks that `text` is one JSON value within `limits`.
pub(crate) fn scan(text: &str, limits: ScanLimits) -> Result<Scanned, ScanError> {
    Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        limits,
        stack: Vec::new(),
        values: 0,
        key: String::new(),
    }
    .run()
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    limits: ScanLimits,
    stack: Vec<Frame<'a>>,
    values: usize,
    /// The key being read, decoded; reused between keys.
    key: String,
}

impl<'a> Scanner<'a> {
    fn run(mut self) -> Result<Scanned, ScanError> {
        let mut expect = Expect::Value;
        loop {
            self.skip_whitespace();
            let byte = self.bytes.get(self.pos).copied();
            expect = match expect {
                Expect::Value | Expect::ValueOrEndArray => match byte {
                    Some(b']') if expect == Expect::ValueOrEndArray => {
                        self.pos += 1;
                        self.stack.pop();
                        Expect::Next
                    }
                    Some(b']') if matches!(self.stack.last(), Some(Frame::Array { .. })) => {
                        return Err(self.syntax("trailing comma"));
                    }
                    Some(b) => self.value(b)?,
                    None => return Err(self.syntax("EOF while parsing a value")),
                },
                Expect::KeyOrEndObject | Expect::Key => match byte {
                    Some(b'}') if expect == Expect::KeyOrEndObject => {
                        self.pos += 1;
                        self.stack.pop();
                        Expect::Next
                    }
                    Some(b'}') => return Err(self.syntax("trailing comma")),
                    Some(b'"') => {
                        self.object_key()?;
                        Expect::Colon
                    }
                    Some(_) => return Err(self.syntax("key must be a string")),
                    None => return Err(self.syntax("EOF while parsing an object")),
                },
                Expect::Colon => match byte {
                    Some(b':') => {
                        self.pos += 1;
                        Expect::Value
                    }
                    Some(_) => return Err(self.syntax("expected `:`")),
                    None => return Err(self.syntax("EOF while parsing an object")),
                },
                Expect::Next => match (self.stack.last_mut(), byte) {
                    (None, None) => {
                        return Ok(Scanned {
                            values: self.values,
                        })
                    }
                    (None, Some(_)) => return Err(self.syntax("trailing characters")),
                    (Some(Frame::Array { index }), Some(b',')) => {
                        *index += 1;
                        self.pos += 1;
                        Expect::Value
                    }
                    (Some(Frame::Array { .. }), Some(b']'))
                    | (Some(Frame::Object { .. }), Some(b'}')) => {
                        self.pos += 1;
                        self.stack.pop();
                        Expect::Next
                    }
                    (Some(Frame::Object { .. }), Some(b',')) => {
                        self.pos += 1;
                        Expect::Key
                    }
                    (Some(Frame::Array { .. }), Some(_)) => {
                        return Err(self.syntax("expected `,` or `]`"))
                    }
                    (Some(Frame::Array { .. }), None) => {
                        return Err(self.syntax("EOF while parsing a list"))
                    }
                    (Some(Frame::Object { .. }), Some(_)) => {
                        return Err(self.syntax("expected `,` or `}`"))
                    }
                    (Some(Frame::Object { .. }), None) => {
                        return Err(self.syntax("EOF while parsing an object"))
                    }
                },
            };
        }
    }

    /// Reads the value that starts with `first`; returns what comes after it.
    fn value(&mut self, first: u8) -> Result<Expect, ScanError> {
        self.values += 1;
        match first {
            b'[' | b'{' => {
                if self.stack.len() >= self.limits.max_depth {
                    return Err(self.limit(format!(
                        "nesting is deeper than the limit of {} levels",
                        self.limits.max_depth
                    )));
                }
                self.pos += 1;
                if first == b'[' {
                    self.stack.push(Frame::Array { index: 0 });
                    Ok(Expect::ValueOrEndArray)
                } else {
                    let keys = (!self.limits.allow_duplicate_keys).then(HashSet::new);
                    self.stack.push(Frame::Object {
                        segment: Segment::Made(String::new()),
                        keys,
                    });
                    Ok(Expect::KeyOrEndObject)
                }
            }
            b'"' => {
                let len = self.string(false)?;
                if len > self.limits.max_string_bytes {
                    return Err(self.string_too_long());
                }
                Ok(Expect::Next)
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
                Ok(Expect::Next)
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => Err(self.syntax("expected value")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<Expect, ScanError> {
        for &expected in word {
            match self.bytes.get(self.pos) {
                Some(&b) if b == expected => self.pos += 1,
                Some(_) => return Err(self.syntax("expected ident")),
                None => return Err(self.syntax("EOF while parsing a value")),
            }
        }
        Ok(Expect::Next)
    }

    /// Reads a number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<(), ScanError> {
        let start = self.pos;
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            Some(_) => return Err(self.syntax("invalid number")),
            None => return Err(self.syntax("EOF while parsing a value")),
        }
        let mut integer = true;
        if self.bytes.get(self.pos) == Some(&b'.') {
            integer = false;
            self.pos += 1;
            self.required_digits()?;
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            integer = false;
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.required_digits()?;
        }
        let literal = self.text.get(start..self.pos).unwrap_or_default();
        // serde_json cannot hold a number that rounds to infinity and refuses it; say so here
        // with its location.
        if literal.parse::<f64>().map_or(true, f64::is_infinite) {
            return Err(self.limit(format!(
                "number {} is out of the IEEE-754 double range",
                excerpt(literal)
            )));
        }
        if integer && self.limits.safe_integers {
            let magnitude = literal.trim_start_matches('-');
            let safe = magnitude
                .parse::<u64>()
                .is_ok_and(|n| n <= MAX_SAFE_INTEGER);
            if !safe {
                return Err(self.limit(format!(
                    "integer {} is beyond ±(2^53−1), which not every JSON reader holds exactly",
                    excerpt(literal)
                )));
            }
        }
        Ok(())
    }

    fn digits(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self) -> Result<(), ScanError> {
        match self.bytes.get(self.pos) {
            Some(b'0'..=b'9') => {
                self.digits();
                Ok(())
            }
            Some(_) => Err(self.syntax("invalid number")),
            None => Err(self.syntax("EOF while parsing a value")),
        }
    }

    /// Reads an object key into `self.key`, then checks its length and whether it repeats.
    fn object_key(&mut self) -> Result<(), ScanError> {
        self.key.clear();
        let start = self.pos + 1;
        let len = self.string(true)?;
        let text = self.text;
        // Without escapes the key is its raw text: borrowed, not copied.
        let raw = text
            .get(start..self.pos.saturating_sub(1))
            .filter(|r| *r == self.key.as_str());
        let segment = match raw {
            Some(_) => Segment::Raw(start, self.pos - 1),
            None => Segment::Made(pointer_segment(&self.key)),
        };
        if let Some(Frame::Object {
            segment: current, ..
        }) = self.stack.last_mut()
        {
            *current = segment;
        }
        if len > self.limits.max_string_bytes {
            return Err(self.string_too_long());
        }
        let repeated = match self.stack.last_mut() {
            Some(Frame::Object {
                keys: Some(keys), ..
            }) => {
                let key = match raw {
                    Some(r) => Cow::Borrowed(r),
                    None => Cow::Owned(std::mem::take(&mut self.key)),
                };
                !keys.insert(key)
            }
            _ => false,
        };
        if repeated {
            return Err(self.limit("duplicate key in an object".to_owned()));
        }
        Ok(())
    }

    /// Reads a string whose opening quote is at `self.pos`; returns its decoded length in
    /// UTF-8 bytes. When `keep` is true the decoded text is appended to `self.key`.
    ///
    /// Stops as soon as the length passes the limit, so a huge key is never copied whole.
    fn string(&mut self, keep: bool) -> Result<usize, ScanError> {
        self.pos += 1;
        let mut len = 0usize;
        let mut run_start = self.pos;
        loop {
            // A run of plain bytes at once: up to a quote, a backslash or a control byte.
            let rest = self.bytes.get(self.pos..).unwrap_or_default();
            let run = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(rest.len());
            if len + run > self.limits.max_string_bytes {
                // The caller refuses this string: the rest of it need not be read. A key keeps
                // what was read so far (up to the first byte past the limit), enough for the
                // excerpt that names it.
                self.pos += self.limits.max_string_bytes - len + 1;
                len = self.limits.max_string_bytes + 1;
                if keep {
                    let mut end = self.pos;
                    while !self.text.is_char_boundary(end) {
                        end -= 1;
                    }
                    self.key
                        .push_str(self.text.get(run_start..end).unwrap_or_default());
                }
                return Ok(len);
            }
            len += run;
            self.pos += run;
            match self.bytes.get(self.pos) {
                None => return Err(self.syntax("EOF while parsing a string")),
                Some(&b) if b == b'"' || b == b'\\' => {
                    if keep {
                        // Both ends of the run sit at ASCII bytes, hence on char boundaries.
                        self.key
                            .push_str(self.text.get(run_start..self.pos).unwrap_or_default());
                    }
                    self.pos += 1;
                    if b == b'"' {
                        return Ok(len);
                    }
                    len += self.escape(keep)?;
                    run_start = self.pos;
                    if len > self.limits.max_string_bytes {
                        return Ok(len);
                    }
                }
                Some(_) => {
                    return Err(self.syntax(
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ));
                }
            }
        }
    }

    /// Reads the escape after a `\`; returns the decoded length in UTF-8 bytes.
    fn escape(&mut self, keep: bool) -> Result<usize, ScanError> {
        let Some(&b) = self.bytes.get(self.pos) else {
            return Err(self.syntax("EOF while parsing a string"));
        };
        self.pos += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => return Err(self.syntax_at("invalid escape", self.pos - 1)),
        };
        if keep {
            self.key.push(c);
        }
        Ok(c.len_utf8())
    }

    /// Reads the code point of a `\uXXXX` escape, pairing UTF-16 surrogates as serde_json
    /// does when it builds a string: a lone surrogate is an error.
    fn unicode_escape(&mut self) -> Result<char, ScanError> {
        let first = self.hex4()?;
        match first {
            0xDC00..=0xDFFF => {
                Err(self.syntax_at("lone leading surrogate in hex escape", self.pos - 1))
            }
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos) != Some(&b'\\') {
                    return self.unexpected_end_of_hex_escape();
                }
                self.pos += 1;
                if self.bytes.get(self.pos) != Some(&b'u') {
                    return self.unexpected_end_of_hex_escape();
                }
                self.pos += 1;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(
                        self.syntax_at("lone leading surrogate in hex escape", self.pos - 1)
                    );
                }
                let code = 0x1_0000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                char::from_u32(code).ok_or_else(|| self.syntax("invalid unicode code point"))
            }
            _ => char::from_u32(first).ok_or_else(|| self.syntax("invalid unicode code point")),
        }
    }

    fn unexpected_end_of_hex_escape(&mut self) -> Result<char, ScanError> {
        match self.bytes.get(self.pos) {
            None => Err(self.syntax("EOF while parsing a string")),
            Some(_) => {
                self.pos += 1;
                Err(self.syntax_at("unexpected end of hex escape", self.pos - 1))
            }
        }
    }

    /// Reads the four hex digits of a `\u` escape; like serde_json, takes all four before
    /// judging them.
    fn hex4(&mut self) -> Result<u32, ScanError> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            self.pos = self.bytes.len();
            return Err(self.syntax("EOF while parsing a string"));
        };
        self.pos += 4;
        let mut n = 0u32;
        for &b in digits {
            match char::from(b).to_digit(16) {
                Some(digit) => n = n * 16 + digit,
                None => return Err(self.syntax_at("invalid escape", self.pos - 1)),
            }
        }
        Ok(n)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn syntax(&self, reason: &'static str) -> ScanError {
        self.syntax_at(reason, self.pos)
    }

    fn syntax_at(&self, reason: &'static str, offset: usize) -> ScanError {
        ScanError::Syntax { reason, offset }
    }

    fn string_too_long(&self) -> ScanError {
        self.limit(format!(
            "string is longer than the limit of {} bytes",
            self.limits.max_string_bytes
        ))
    }

    /// A limit error at the pointer of the value being read.
    fn limit(&self, message: String) -> ScanError {
        let mut location = String::new();
        for frame in &self.stack {
            location.push('/');
            match frame {
                Frame::Array { index } => location.push_str(&index.to_string()),
                Frame::Object {
                    segment: Segment::Made(made),
                    ..
                } => location.push_str(made),
                Frame::Object {
                    segment: Segment::Raw(start, end),
                    ..
                } => location.push_str(&pointer_segment(
                    self.text.get(*start..*end).unwrap_or_default(),
                )),
            }
        }
        ScanError::Limit { location, message }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// Limits loose enough that only the grammar matters.
    const LOOSE: ScanLimits = ScanLimits {
        max_depth: 127,
        max_string_bytes: usize::MAX,
        allow_duplicate_keys: true,
        safe_integers: false,
    };

    const STRICT: ScanLimits = ScanLimits {
        max_depth: 4,
        max_string_bytes: 8,
        allow_duplicate_keys: false,
        safe_integers: true,
    };

    fn limit_of(text: &str, limits: ScanLimits) -> (String, String) {
        match scan(text, limits) {
            Err(ScanError::Limit { location, message }) => (location, message),
            other => panic!("expected a limit error for {text:?}, got {other:?}"),
        }
    }

    fn syntax_of(text: &str) -> &'static str {
        match scan(text, LOOSE) {
            Err(ScanError::Syntax { reason, .. }) => reason,
            other => panic!("expected a syntax error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn accepts_json() {
        for text in [
            "{}",
            "[]",
            " 0 ",
            "-0.5e+10",
            "\"a\\u00e9\\ud83d\\ude00\\n\"",
            "{\"a\":[1,{\"b\":null}],\"c\":true,\"d\":false}",
            "[1E5, 2e-3, 0.0]",
        ] {
            assert!(scan(text, LOOSE).is_ok(), "{text}");
        }
    }

    #[test]
    fn counts_values() {
        assert_eq!(
            scan("{\"a\":[1,2],\"b\":{}}", LOOSE),
            Ok(Scanned { values: 5 })
        );
        assert_eq!(scan("7", LOOSE), Ok(Scanned { values: 1 }));
    }

    #[test]
    fn refuses_malformed_json_with_serde_json_wording() {
        assert_eq!(syntax_of(""), "EOF while parsing a value");
        assert_eq!(syntax_of("[1,]"), "trailing comma");
        assert_eq!(syntax_of("{\"a\":1,}"), "trailing comma");
        assert_eq!(syntax_of("{1:2}"), "key must be a string");
        assert_eq!(syntax_of("[1 2]"), "expected `,` or `]`");
        assert_eq!(syntax_of("{\"a\" 1}"), "expected `:`");
        assert_eq!(syntax_of("{} x"), "trailing characters");
        assert_eq!(syntax_of("tru"), "EOF while parsing a value");
        assert_eq!(syntax_of("trux"), "expected ident");
        assert_eq!(syntax_of("01"), "trailing characters");
        assert_eq!(syntax_of("-"), "EOF while parsing a value");
        assert_eq!(syntax_of("1."), "EOF while parsing a value");
        assert_eq!(syntax_of("\"\\x\""), "invalid escape");
        assert_eq!(
            syntax_of("\"\\udc00\""),
            "lone leading surrogate in hex escape"
        );
        assert_eq!(syntax_of("\"\\ud800x\""), "unexpected end of hex escape");
        assert_eq!(
            syntax_of("\"a\nb\""),
            "control character (\\u0000-\\u001F) found while parsing a string"
        );
        assert_eq!(syntax_of("[1"), "EOF while parsing a list");
        assert_eq!(syntax_of("{\"a\":1"), "EOF while parsing an object");
    }

    #[test]
    fn syntax_messages_name_line_and_column_like_serde_json() {
        for text in ["[1,]", "{\"a\":\n  x}", "[1 2]", "[1,", "{} x"] {
            let Err(ScanError::Syntax { reason, offset }) = scan(text, LOOSE) else {
                panic!("{text:?} should not scan");
            };
            let ours = ScanError::syntax_message(reason, text.as_bytes(), offset);
            let theirs = serde_json::from_str::<Value>(text).unwrap_err().to_string();
            assert_eq!(ours, theirs, "{text:?}");
        }
    }

    #[test]
    fn refuses_deep_nesting_at_max_depth() {
        assert!(scan("[[[[1]]]]", STRICT).is_ok());
        let (location, message) = limit_of("[[[[[1]]]]]", STRICT);
        assert_eq!(location, "/0/0/0/0");
        assert!(message.contains("limit of 4 levels"), "{message}");
        let (location, _) = limit_of("{\"a\":{\"b\":[{\"c\":{}}]}}", STRICT);
        assert_eq!(location, "/a/b/0/c");
    }

    #[test]
    fn refuses_a_million_levels_without_recursing() {
        let text = "[".repeat(1_000_000);
        let (location, _) = limit_of(&text, LOOSE);
        assert_eq!(location.matches('/').count(), 127);
        let text = "{\"a\":".repeat(1_000_000);
        assert!(matches!(scan(&text, LOOSE), Err(ScanError::Limit { .. })));
    }

    #[test]
    fn refuses_long_strings_and_keys() {
        assert!(scan("[\"12345678\"]", STRICT).is_ok());
        let (location, message) = limit_of("[\"123456789\"]", STRICT);
        assert_eq!(location, "/0");
        assert!(message.contains("limit of 8 bytes"), "{message}");
        // Escapes count decoded: six characters of text, one byte of string.
        assert!(scan(
            "[\"\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\"]",
            STRICT
        )
        .is_ok());
        // Multi-byte characters count in UTF-8 bytes.
        assert!(matches!(
            scan("[\"ééééé\"]", STRICT),
            Err(ScanError::Limit { .. })
        ));
        let (location, _) = limit_of("{\"123456789\":1}", STRICT);
        assert_eq!(location, "/123456789");
    }

    #[test]
    fn long_values_are_not_echoed() {
        let text = format!("{{\"{}\":1}}", "k".repeat(100_000));
        let (location, message) = limit_of(&text, STRICT);
        assert!(location.len() < 40, "{location}");
        assert!(message.len() < 100, "{message}");
    }

    #[test]
    fn refuses_duplicate_keys_after_decoding() {
        let (location, message) = limit_of("{\"a\":1,\"b\":{\"x\":1,\"\\u0078\":2}}", STRICT);
        assert_eq!(location, "/b/x");
        assert!(message.contains("duplicate key"), "{message}");
        // The same key in different objects is fine.
        assert!(scan("[{\"a\":1},{\"a\":2}]", STRICT).is_ok());
        assert!(scan("{\"a\":1,\"a\":2}", LOOSE).is_ok());
    }

    #[test]
    fn integers_beyond_2_pow_53_are_refused_when_asked() {
        assert!(scan("[9007199254740991, -9007199254740991]", STRICT).is_ok());
        let (location, message) = limit_of("[1, 9007199254740992]", STRICT);
        assert_eq!(location, "/1");
        assert!(message.contains("9007199254740992"), "{message}");
        assert!(matches!(
            scan("-9007199254740992", STRICT),
            Err(ScanError::Limit { .. })
        ));
        assert!(matches!(
            scan(&"9".repeat(400), STRICT),
            Err(ScanError::Limit { .. })
        ));
        // Fractions and exponents are floats, checked only for the double range.
        assert!(scan("[1e300, 9007199254740993.0]", STRICT).is_ok());
        assert!(scan("9007199254740993", LOOSE).is_ok());
    }

    #[test]
    fn numbers_beyond_the_double_range_are_always_refused() {
        for text in ["1e400", "-1e309", &"9".repeat(400)] {
            let (_, message) = limit_of(text, LOOSE);
            assert!(message.contains("IEEE-754"), "{message}");
            assert!(serde_json::from_str::<Value>(text).is_err());
        }
        assert!(scan("1e-400", LOOSE).is_ok());
    }

    /// The reference for duplicate detection: serde_json's own reading of every object,
    /// pairing each key with the keys before it in the same object.
    fn has_duplicate_keys(text: &str) -> bool {
        struct Dup(bool);
        impl<'de> serde::de::Visitor<'de> for &mut Dup {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<(), E> {
                Ok(())
            }
            fn visit_i64<E>(self, _: i64) -> Result<(), E> {
                Ok(())
            }
            fn visit_u64<E>(self, _: u64) -> Result<(), E> {
                Ok(())
            }
            fn visit_f64<E>(self, _: f64) -> Result<(), E> {
                Ok(())
            }
            fn visit_str<E>(self, _: &str) -> Result<(), E> {
                Ok(())
            }
            fn visit_unit<E>(self) -> Result<(), E> {
                Ok(())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                while seq.next_element_seed(&mut *self)?.is_some() {}
                Ok(())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key) {
                        self.0 = true;
                    }
                    map.next_value_seed(&mut *self)?;
                }
                Ok(())
            }
        }
        impl<'de> serde::de::DeserializeSeed<'de> for &mut Dup {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        }
        let mut dup = Dup(false);
        let mut de = serde_json::Deserializer::from_str(text);
        serde::de::DeserializeSeed::deserialize(&mut dup, &mut de).unwrap();
        dup.0
    }

    /// JSON text for objects whose keys come from a small alphabet, some written with
    /// `\u` escapes, so that duplicates are frequent and sometimes disguised.
    fn object_text() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec!["a", "b", "\\u0061", "\\u0062", "ab", "a\\u0062"]);
        let leaf = prop_oneof![
            Just("1".to_owned()),
            Just("\"a\"".to_owned()),
            Just("null".to_owned())
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key.clone(), inner), 0..5).prop_map(|members| {
                    let body: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
    }

    /// Arbitrary JSON values, serialized by serde_json.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m: BTreeMap<String, Value>| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Text that is mostly JSON-like: JSON tokens and stray bytes, so the grammar is exercised
    /// far more than by uniformly random text.
    fn json_like_text() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            " ",
            "\n",
            "\"",
            "\"a\"",
            "\"\\u00e9\"",
            "\\",
            "\\u",
            "\\ud83d",
            "\\ude00",
            "1",
            "-",
            "0",
            ".",
            "e",
            "+",
            "12.5e-3",
            "true",
            "false",
            "null",
            "tru",
            "x",
            "\u{e9}",
            "\t",
            "\u{1}",
        ]);
        prop::collection::vec(token, 0..24).prop_map(|t| t.concat())
    }

    proptest! {
        #[test]
        fn serialized_values_always_scan(value in json_value()) {
            let text = serde_json::to_string(&value).unwrap();
            prop_assert!(scan(&text, LOOSE).is_ok(), "{}", text);
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            prop_assert!(scan(&pretty, LOOSE).is_ok(), "{}", pretty);
        }

        #[test]
        fn agrees_with_serde_json_on_json_like_text(text in json_like_text()) {
            let ours = scan(&text, LOOSE).is_ok();
            let theirs = serde_json::from_str::<Value>(&text).is_ok();
            prop_assert_eq!(ours, theirs, "{:?}", text);
        }

        #[test]
        fn agrees_with_serde_json_on_arbitrary_text(text in any::<String>()) {
            let ours = scan(&text, LOOSE).is_ok();
            let theirs = serde_json::from_str::<Value>(&text).is_ok();
            prop_assert_eq!(ours, theirs, "{:?}", text);
        }

        #[test]
        fn agrees_with_serde_json_on_mutated_json(
            value in json_value(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"[]{},:\"\\ -+.0123456789eEtrfalsnu\x01\x7f".to_vec()),
            op in 0u8..3,
        ) {
            let mut bytes = serde_json::to_vec(&value).unwrap();
            let i = at.index(bytes.len() + 1);
            match op {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => { bytes.remove(i); }
                _ if i < bytes.len() => bytes[i] = byte,
                _ => bytes.push(byte),
            }
            // Mutations may split a multi-byte character; both sides see the same text.
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let ours = scan(text, LOOSE);
                let theirs = serde_json::from_str::<Value>(text);
                prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: {:?}", text, ours);
                if let (Err(ScanError::Syntax { reason, offset }), Err(e)) = (ours, theirs) {
                    let position = format!("at line {} column {}", e.line(), e.column());
                    let message = ScanError::syntax_message(reason, text.as_bytes(), offset);
                    prop_assert!(message.ends_with(&position), "{:?}: ours {:?}, theirs {:?}", text, message, e.to_string());
                }
            }
        }

        #[test]
        fn syntax_errors_are_worded_like_serde_json(text in json_like_text()) {
            if let Err(ScanError::Syntax { reason, offset }) = scan(&text, LOOSE) {
                let theirs = serde_json::from_str::<Value>(&text).unwrap_err();
                let ours = ScanError::syntax_message(reason, text.as_bytes(), offset);
                // Same line and column; the reason may be worded differently where serde_json
                // and the grammar disagree on which token was "expected".
                let position = format!("at line {} column {}", theirs.line(), theirs.column());
                prop_assert!(ours.ends_with(&position), "{:?}: ours {:?}, theirs {:?}", text, ours, theirs.to_string());
            }
        }

        #[test]
        fn duplicate_detection_agrees_with_a_reference(text in object_text()) {
            let expected = has_duplicate_keys(&text);
            let got = matches!(scan(&text, ScanLimits { allow_duplicate_keys: false, ..LOOSE }), Err(ScanError::Limit { .. }));
            prop_assert_eq!(got, expected, "{}", text);
        }

        #[test]
        fn deep_nesting_is_refused_at_any_depth(depth in 5usize..100_000, object in any::<bool>()) {
            let open = if object { "{\"k\":" } else { "[" };
            let text = open.repeat(depth);
            let refused = matches!(scan(&text, STRICT), Err(ScanError::Limit { .. }));
            prop_assert!(refused);
        }
    }
}
