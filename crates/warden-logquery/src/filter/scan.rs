//! A cursor over a filter pattern: the lexical pieces the three pattern kinds share
//! (whitespace, quoted strings, `%regex%`) and positions for error messages.

use super::PatternError;

/// A position in the pattern, moving forward only.
pub(super) struct Scanner<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Scanner<'s> {
    pub(super) fn new(src: &'s str) -> Self {
        Scanner { src, pos: 0 }
    }

    /// The byte offset of the cursor.
    pub(super) fn offset(&self) -> usize {
        self.pos
    }

    /// The 1-based character position of byte offset `at`, for messages.
    pub(super) fn position_of(&self, at: usize) -> usize {
        self.src.get(..at).map_or(0, |s| s.chars().count()) + 1
    }

    /// The 1-based character position of the cursor.
    pub(super) fn here(&self) -> usize {
        self.position_of(self.pos)
    }

    /// Moves the cursor back to byte offset `to`, an offset it has been at before.
    pub(super) fn rewind(&mut self, to: usize) {
        self.pos = to.min(self.pos);
    }

    pub(super) fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    pub(super) fn slice(&self, from: usize, to: usize) -> &'s str {
        self.src.get(from..to).unwrap_or("")
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(super) fn starts_with(&self, s: &str) -> bool {
        self.rest().starts_with(s)
    }

    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Consumes `s` if the cursor is at it.
    pub(super) fn eat(&mut self, s: &str) -> bool {
        if self.starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    pub(super) fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Consumes characters while `keep` holds; returns them.
    pub(super) fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'s str {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        self.slice(start, self.pos)
    }

    /// What is at the cursor, for an "expected X, found Y" message.
    pub(super) fn describe_here(&self) -> String {
        let rest = self.rest();
        if rest.is_empty() {
            return "end of pattern".to_owned();
        }
        let word: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(20)
            .collect();
        format!("'{word}'")
    }

    pub(super) fn unexpected(&self, expected: &str) -> PatternError {
        PatternError::Unexpected {
            expected: expected.to_owned(),
            found: self.describe_here(),
            position: self.here(),
        }
    }

    /// Reads a double-quoted string at the cursor (which must be at `"`). Inside, `\"` is a
    /// quote and `\\` a backslash; any other backslash is kept as written.
    pub(super) fn quoted(&mut self) -> Result<String, PatternError> {
        let start = self.here();
        if !self.eat("\"") {
            return Err(self.unexpected("'\"'"));
        }
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(PatternError::UnterminatedString { position: start }),
                Some('"') => return Ok(out),
                Some('\\') => match self.peek() {
                    Some(c @ ('"' | '\\')) => {
                        self.bump();
                        out.push(c);
                    }
                    _ => out.push('\\'),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// Reads `%...%` at the cursor (which must be at `%`); returns the text between the
    /// signs and the 1-based position of the opening one.
    pub(super) fn regex_body(&mut self) -> Result<(&'s str, usize), PatternError> {
        let start = self.here();
        if !self.eat("%") {
            return Err(self.unexpected("'%'"));
        }
        let body_start = self.pos;
        match self.rest().find('%') {
            Some(len) => {
                self.pos += len + 1;
                Ok((self.slice(body_start, body_start + len), start))
            }
            None => Err(PatternError::UnterminatedRegex { position: start }),
        }
    }
}
