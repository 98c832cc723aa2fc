//! Tokens of a Logs Insights query.
//!
//! Names are letters, digits, `_`, `.` and `@` (not starting with a digit), or any text
//! between backquotes (`` `foo-bar` ``, `` @`a:b` ``). Strings are in single or double
//! quotes with `\` escapes. A number directly followed by letters is a period (`5m`).
//! After `like` or `=~`, text between slashes is a regular expression (`\/` is a slash in
//! it). `#` starts a comment that runs to the end of the line.

use super::QueryError;
use crate::number::parse_number;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A bare name or keyword.
    Ident(String),
    /// A backquoted name.
    Quoted(String),
    Str(String),
    Num(f64),
    /// `5m`: an integer and the letters after it.
    Period(u64, String),
    Regex(String),
    Pipe,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Percent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    Eof,
}

impl Tok {
    /// How the token reads in a message.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Quoted(s) => format!("'`{s}`'"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Num(n) => format!("number {n}"),
            Tok::Period(n, u) => format!("'{n}{u}'"),
            Tok::Regex(r) => format!("regular expression /{r}/"),
            Tok::Eof => "end of query".to_owned(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::Pipe => "|",
            Tok::Comma => ",",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Caret => "^",
            Tok::Percent => "%",
            Tok::Eq => "=",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Match => "=~",
            _ => "",
        }
    }

    /// Whether this is the bare word `word`, in any case.
    pub(super) fn is_word(&self, word: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(word))
    }
}

/// A token and where it is.
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    /// Byte offsets of the token in the query.
    pub(super) start: usize,
    pub(super) end: usize,
    /// Whether a line break separates it from the token before.
    pub(super) newline_before: bool,
}

/// 1-based line and character position of byte offset `at` in `src`.
pub(super) fn line_column(src: &str, at: usize) -> (usize, usize) {
    let before = src.get(..at).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '@'
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '@')
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    tokens: Vec<Token>,
}

impl<'s> Lexer<'s> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().nth(n))
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'s str {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    fn unterminated(&self, what: &str, at: usize) -> QueryError {
        let (line, column) = line_column(self.src, at);
        QueryError::Unterminated {
            what: what.to_owned(),
            line,
            column,
        }
    }

    /// Whether a `/` here starts a regular expression: after `like` or `=~`.
    fn regex_allowed(&self) -> bool {
        self.tokens
            .last()
            .is_some_and(|t| t.tok == Tok::Match || t.tok.is_word("like"))
    }

    /// Reads a quoted string or name whose opening `quote` is at the cursor.
    fn delimited(&mut self, quote: char, what: &str) -> Result<String, QueryError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.unterminated(what, start)),
                Some(c) if c == quote => return Ok(out),
                Some('\\') if quote != '`' => match self.bump() {
                    None => return Err(self.unterminated(what, start)),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                    // Kept as written, for text that means something to a regex.
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn regex(&mut self) -> Result<String, QueryError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.unterminated("regular expression", start)),
                Some('/') => return Ok(out),
                Some('\\') => match self.bump() {
                    None => return Err(self.unterminated("regular expression", start)),
                    Some('/') => out.push('/'),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn number(&mut self) -> Result<Tok, QueryError> {
        let start = self.pos;
        self.take_while(|c| c.is_ascii_digit());
        let mut integral = true;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            self.take_while(|c| c.is_ascii_digit());
            integral = false;
        }
        let exponent = matches!(self.peek(), Some('e' | 'E'))
            && (self.peek_at(1).is_some_and(|c| c.is_ascii_digit())
                || (matches!(self.peek_at(1), Some('+' | '-'))
                    && self.peek_at(2).is_some_and(|c| c.is_ascii_digit())));
        if exponent {
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            self.take_while(|c| c.is_ascii_digit());
            integral = false;
        }
        let digits = self.src.get(start..self.pos).unwrap_or("");
        if self.peek().is_some_and(char::is_alphabetic) {
            let unit = self.take_while(char::is_alphanumeric);
            let text = format!("{digits}{unit}");
            let (line, column) = line_column(self.src, start);
            let invalid = |reason: &str| QueryError::InvalidValue {
                what: "period".to_owned(),
                value: text.clone(),
                reason: reason.to_owned(),
                line,
                column,
            };
            if !integral {
                return Err(invalid("a period is a whole number and a unit, such as 5m"));
            }
            let amount = digits
                .parse::<u64>()
                .map_err(|_| invalid("the number is too large"))?;
            return Ok(Tok::Period(amount, unit.to_owned()));
        }
        match parse_number(digits) {
            Some(n) => Ok(Tok::Num(n)),
            None => {
                let (line, column) = line_column(self.src, start);
                Err(QueryError::InvalidValue {
                    what: "number".to_owned(),
                    value: digits.to_owned(),
                    reason: "not a finite number".to_owned(),
                    line,
                    column,
                })
            }
        }
    }

    fn next_tok(&mut self) -> Result<Option<Tok>, QueryError> {
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let two = |l: &mut Self, tok: Tok| {
            l.bump();
            l.bump();
            tok
        };
        let one = |l: &mut Self, tok: Tok| {
            l.bump();
            tok
        };
        let tok = match (c, self.peek_at(1)) {
            ('\'' | '"', _) => Tok::Str(self.delimited(c, "string")?),
            ('`', _) => Tok::Quoted(self.delimited('`', "backquoted name")?),
            ('@', Some('`')) => {
                self.bump();
                Tok::Quoted(format!("@{}", self.delimited('`', "backquoted name")?))
            }
            ('/', _) if self.regex_allowed() => Tok::Regex(self.regex()?),
            (c, _) if c.is_ascii_digit() => self.number()?,
            ('.', Some(d)) if d.is_ascii_digit() => {
                // `.5`
                let start = self.pos;
                self.bump();
                self.take_while(|c| c.is_ascii_digit());
                let text = self.src.get(start..self.pos).unwrap_or("");
                Tok::Num(parse_number(text).unwrap_or(0.0))
            }
            (c, _) if ident_start(c) => Tok::Ident(self.take_while(ident_char).to_owned()),
            ('!', Some('=')) => two(self, Tok::Ne),
            ('<', Some('=')) => two(self, Tok::Le),
            ('>', Some('=')) => two(self, Tok::Ge),
            ('=', Some('~')) => two(self, Tok::Match),
            ('=', Some('=')) => two(self, Tok::Eq),
            ('|', _) => one(self, Tok::Pipe),
            (',', _) => one(self, Tok::Comma),
            ('(', _) => one(self, Tok::LParen),
            (')', _) => one(self, Tok::RParen),
            ('[', _) => one(self, Tok::LBracket),
            (']', _) => one(self, Tok::RBracket),
            ('+', _) => one(self, Tok::Plus),
            ('-', _) => one(self, Tok::Minus),
            ('*', _) => one(self, Tok::Star),
            ('/', _) => one(self, Tok::Slash),
            ('^', _) => one(self, Tok::Caret),
            ('%', _) => one(self, Tok::Percent),
            ('=', _) => one(self, Tok::Eq),
            ('<', _) => one(self, Tok::Lt),
            ('>', _) => one(self, Tok::Gt),
            (other, _) => {
                let (line, column) = line_column(self.src, self.pos);
                return Err(QueryError::Unexpected {
                    found: format!("character '{other}'"),
                    expected: "a command, a name, a value or an operator".to_owned(),
                    line,
                    column,
                });
            }
        };
        Ok(Some(tok))
    }
}

/// Splits a query into tokens, ending with [`Tok::Eof`].
pub(super) fn lex(src: &str) -> Result<Vec<Token>, QueryError> {
    let mut lexer = Lexer {
        src,
        pos: 0,
        tokens: Vec::new(),
    };
    loop {
        let mut newline_before = false;
        loop {
            match lexer.peek() {
                Some('\n') => {
                    newline_before = true;
                    lexer.bump();
                }
                Some(c) if c.is_whitespace() => {
                    lexer.bump();
                }
                Some('#') => {
                    lexer.take_while(|c| c != '\n');
                }
                _ => break,
            }
        }
        let start = lexer.pos;
        let Some(tok) = lexer.next_tok()? else {
            lexer.tokens.push(Token {
                tok: Tok::Eof,
                start,
                end: start,
                newline_before,
            });
            return Ok(lexer.tokens);
        };
        lexer.tokens.push(Token {
            tok,
            start,
            end: lexer.pos,
            newline_before,
        });
    }
}
