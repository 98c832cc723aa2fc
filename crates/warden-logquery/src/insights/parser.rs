//! Recursive-descent parser from tokens to commands.
//!
//! Expressions, loosest first: `or`; `and`; `not`; a comparison (`= != < <= > >=`,
//! `[not] like`, `=~`, `[not] in [...]`) between two sums; `+ -`; `* / %`; unary `-`;
//! `^`; and primaries (numbers, strings, fields, `ispresent(field)`, parentheses).
//! Parentheses, `not` and unary `-` may nest [`MAX_DEPTH`] deep, and `+ - * / % ^` may
//! chain [`MAX_DEPTH`] operators long, which bounds both this parser's recursion and the
//! depth of the trees it builds.

use memchr::memmem::Finder;

use super::ast::{
    AggFunc, Aggregate, ArithOp, CmpOp, Expr, Group, GroupKey, LikePattern, Projection, SortKey,
    Stats,
};
use super::lexer::{line_column, Tok, Token};
use super::{QueryError, MAX_LIMIT};

/// Deepest nesting of parentheses, `not` and signs; longest operator chain.
pub(super) const MAX_DEPTH: usize = 32;

/// One command as written.
#[derive(Debug)]
pub(super) enum Command {
    Fields(Vec<Projection>),
    Display(Vec<String>),
    Filter(Expr),
    Stats(Stats),
    Sort(Vec<SortKey>),
    Limit(usize),
}

/// A command and where it starts.
#[derive(Debug)]
pub(super) struct Located {
    pub(super) command: Command,
    pub(super) start: usize,
}

/// Commands of the full language that this subset refuses by name.
const UNSUPPORTED_COMMANDS: &[&str] = &[
    "parse",
    "dedup",
    "unmask",
    "pattern",
    "diff",
    "anomaly",
    "unnest",
    "lookup",
    "join",
    "filterindex",
    "source",
    "head",
    "tail",
    "fieldindex",
    "expand",
];

const AGGREGATES: &[(&str, AggFunc)] = &[
    ("count", AggFunc::Count),
    ("count_distinct", AggFunc::CountDistinct),
    ("sum", AggFunc::Sum),
    ("avg", AggFunc::Avg),
    ("min", AggFunc::Min),
    ("max", AggFunc::Max),
    ("pct", AggFunc::Pct),
];

const KEYWORDS: &[&str] = &["and", "or", "not", "like", "in", "as", "by", "asc", "desc"];

/// What the parser sees past the last token (never, as `lex` ends with `Eof`).
static EOF: Token = Token {
    tok: Tok::Eof,
    start: 0,
    end: 0,
    newline_before: false,
};

pub(super) struct Parser<'q> {
    src: &'q str,
    tokens: Vec<Token>,
    at: usize,
    /// Whether a `stats` command came before: aggregate calls then name its columns.
    after_stats: bool,
}

impl<'q> Parser<'q> {
    pub(super) fn new(src: &'q str, tokens: Vec<Token>) -> Self {
        Parser {
            src,
            tokens,
            at: 0,
            after_stats: false,
        }
    }

    fn token(&self) -> &Token {
        // `lex` always ends with `Eof`, and `bump` never moves past it.
        self.tokens
            .get(self.at)
            .or_else(|| self.tokens.last())
            .unwrap_or(&EOF)
    }

    /// The token before the cursor (the cursor's own at the start).
    fn previous(&self) -> &Token {
        self.tokens
            .get(self.at.saturating_sub(1))
            .unwrap_or_else(|| self.token())
    }

    fn peek(&self) -> &Tok {
        &self.token().tok
    }

    fn peek_next(&self) -> &Tok {
        self.tokens.get(self.at + 1).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn bump(&mut self) -> Token {
        let token = self.token().clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        token
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.peek().is_word(word) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn where_(&self, at: usize) -> (usize, usize) {
        line_column(self.src, at)
    }

    fn unexpected(&self, expected: &str) -> QueryError {
        let (line, column) = self.where_(self.token().start);
        QueryError::Unexpected {
            found: self.peek().describe(),
            expected: expected.to_owned(),
            line,
            column,
        }
    }

    fn expect(&mut self, tok: &Tok, expected: &str) -> Result<Token, QueryError> {
        if self.peek() == tok {
            Ok(self.bump())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.src.get(start..end).unwrap_or("").trim().to_owned()
    }

    fn too_deep(&self) -> QueryError {
        let (line, column) = self.where_(self.token().start);
        QueryError::TooDeep {
            max: MAX_DEPTH,
            line,
            column,
        }
    }

    /// Parses the whole query into commands.
    pub(super) fn commands(mut self) -> Result<Vec<Located>, QueryError> {
        if *self.peek() == Tok::Eof {
            return Err(QueryError::Empty);
        }
        let mut commands = Vec::new();
        loop {
            let start = self.token().start;
            let command = self.command()?;
            if matches!(command, Command::Stats(_)) {
                self.after_stats = true;
            }
            commands.push(Located { command, start });
            match self.peek() {
                Tok::Eof => return Ok(commands),
                Tok::Pipe => {
                    self.bump();
                }
                // A command at the start of a line needs no `|`.
                Tok::Ident(_) if self.token().newline_before && self.command_word() => {}
                _ => return Err(self.unexpected("'|' and the next command, or end of query")),
            }
        }
    }

    fn command_word(&self) -> bool {
        let Tok::Ident(word) = self.peek() else {
            return false;
        };
        let word = word.to_ascii_lowercase();
        matches!(
            word.as_str(),
            "fields" | "display" | "filter" | "where" | "stats" | "sort" | "limit"
        ) || UNSUPPORTED_COMMANDS.contains(&word.as_str())
    }

    fn command(&mut self) -> Result<Command, QueryError> {
        let token = self.token().clone();
        let Tok::Ident(word) = &token.tok else {
            return Err(self.unexpected("a command (fields, filter, stats, sort, limit, display)"));
        };
        let name = word.to_ascii_lowercase();
        self.bump();
        match name.as_str() {
            "fields" => Ok(Command::Fields(self.projections()?)),
            "display" => Ok(Command::Display(self.field_list()?)),
            "filter" | "where" => Ok(Command::Filter(self.expr(0)?)),
            "stats" => Ok(Command::Stats(self.stats()?)),
            "sort" => Ok(Command::Sort(self.sort_keys()?)),
            "limit" => Ok(Command::Limit(self.limit()?)),
            _ => {
                let (line, column) = self.where_(token.start);
                Err(QueryError::UnsupportedCommand {
                    name: word.clone(),
                    line,
                    column,
                })
            }
        }
    }

    fn projections(&mut self) -> Result<Vec<Projection>, QueryError> {
        let mut out = Vec::new();
        loop {
            let start = self.token().start;
            let expr = self.expr(0)?;
            let end = self.previous().end;
            let name = match (self.alias()?, &expr) {
                (Some(alias), _) => alias,
                (None, Expr::Field(f)) => f.clone(),
                (None, _) => self.text(start, end),
            };
            out.push(Projection { expr, name });
            if !self.eat(&Tok::Comma) {
                return Ok(out);
            }
        }
    }

    fn alias(&mut self) -> Result<Option<String>, QueryError> {
        if self.eat_word("as") {
            Ok(Some(self.field_name("a name after 'as'")?))
        } else {
            Ok(None)
        }
    }

    fn field_name(&mut self, expected: &str) -> Result<String, QueryError> {
        match self.peek().clone() {
            Tok::Ident(name) if !is_keyword(&name) => {
                self.bump();
                Ok(name)
            }
            Tok::Quoted(name) => {
                self.bump();
                Ok(name)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn field_list(&mut self) -> Result<Vec<String>, QueryError> {
        let mut out = vec![self.field_name("a field name")?];
        while self.eat(&Tok::Comma) {
            out.push(self.field_name("a field name")?);
        }
        Ok(out)
    }

    fn sort_keys(&mut self) -> Result<Vec<SortKey>, QueryError> {
        let mut out = Vec::new();
        loop {
            let expr = self.expr(0)?;
            let descending = if self.eat_word("desc") {
                true
            } else {
                self.eat_word("asc");
                false
            };
            out.push(SortKey { expr, descending });
            if !self.eat(&Tok::Comma) {
                return Ok(out);
            }
        }
    }

    fn limit(&mut self) -> Result<usize, QueryError> {
        let token = self.token().clone();
        let (line, column) = self.where_(token.start);
        let invalid = |value: String| QueryError::InvalidValue {
            what: "limit".to_owned(),
            value,
            reason: format!("a limit is a whole number from 1 to {MAX_LIMIT}"),
            line,
            column,
        };
        match token.tok {
            Tok::Num(n) => {
                self.bump();
                if n.fract() == 0.0 && n >= 1.0 && n <= MAX_LIMIT as f64 {
                    Ok(n as usize)
                } else {
                    Err(invalid(self.text(token.start, token.end)))
                }
            }
            Tok::Minus => Err(invalid(self.text(
                token.start,
                self.tokens.get(self.at + 1).map_or(token.end, |t| t.end),
            ))),
            _ => Err(self.unexpected("a number after 'limit'")),
        }
    }

    fn stats(&mut self) -> Result<Stats, QueryError> {
        if self.after_stats {
            let (line, column) = self.where_(self.previous().start);
            return Err(QueryError::Misplaced {
                what: "Only one stats command is supported".to_owned(),
                line,
                column,
            });
        }
        let mut aggregates = vec![self.aggregate()?];
        while self.eat(&Tok::Comma) {
            aggregates.push(self.aggregate()?);
        }
        let mut groups = Vec::new();
        if self.eat_word("by") {
            groups.push(self.group()?);
            while self.eat(&Tok::Comma) {
                groups.push(self.group()?);
            }
        }
        Ok(Stats { aggregates, groups })
    }

    fn aggregate(&mut self) -> Result<Aggregate, QueryError> {
        let token = self.token().clone();
        let Tok::Ident(name) = &token.tok else {
            return Err(self.unexpected("an aggregate function such as count(*)"));
        };
        let (line, column) = self.where_(token.start);
        if *self.peek_next() != Tok::LParen {
            return Err(self.unexpected("an aggregate function such as count(*)"));
        }
        let lower = name.to_ascii_lowercase();
        let Some(&(_, func)) = AGGREGATES.iter().find(|(n, _)| *n == lower) else {
            return Err(QueryError::UnsupportedFunction {
                name: name.clone(),
                hint: ": stats supports count, count_distinct, sum, avg, min, max and pct"
                    .to_owned(),
                line,
                column,
            });
        };
        self.bump();
        self.bump();
        let arg = if func == AggFunc::Count && self.eat(&Tok::Star) {
            None
        } else {
            Some(self.expr(0)?)
        };
        let mut percentile = 0.0;
        if func == AggFunc::Pct {
            self.expect(&Tok::Comma, "',' and a percentile")?;
            let token = self.token().clone();
            match token.tok {
                Tok::Num(p) if (0.0..=100.0).contains(&p) => {
                    self.bump();
                    percentile = p;
                }
                Tok::Num(_) | Tok::Minus => {
                    let (line, column) = self.where_(token.start);
                    return Err(QueryError::InvalidValue {
                        what: "percentile".to_owned(),
                        value: self.text(token.start, token.end),
                        reason: "a percentile is a number from 0 to 100".to_owned(),
                        line,
                        column,
                    });
                }
                _ => return Err(self.unexpected("a percentile from 0 to 100")),
            }
        }
        let close = self.expect(&Tok::RParen, "')'")?;
        let name = match self.alias()? {
            Some(alias) => alias,
            None => self.text(token.start, close.end),
        };
        Ok(Aggregate {
            func,
            arg,
            percentile,
            name,
        })
    }

    fn group(&mut self) -> Result<Group, QueryError> {
        let start = self.token().start;
        let key = if self.peek().is_word("bin") && *self.peek_next() == Tok::LParen {
            self.bump();
            self.bump();
            let token = self.bump();
            let (line, column) = self.where_(token.start);
            let Tok::Period(amount, unit) = &token.tok else {
                return Err(QueryError::Unexpected {
                    found: token.tok.describe(),
                    expected: "a period such as 5m, 1h, 30s or 1d".to_owned(),
                    line,
                    column,
                });
            };
            let period = period_ms(*amount, unit).map_err(|reason| QueryError::InvalidValue {
                what: "period".to_owned(),
                value: format!("{amount}{unit}"),
                reason,
                line,
                column,
            })?;
            self.expect(&Tok::RParen, "')'")?;
            GroupKey::Bin(period)
        } else {
            GroupKey::Expr(self.expr(0)?)
        };
        let end = self.previous().end;
        let name = match (self.alias()?, &key) {
            (Some(alias), _) => alias,
            (None, GroupKey::Expr(Expr::Field(f))) => f.clone(),
            (None, _) => self.text(start, end),
        };
        Ok(Group { key, name })
    }

    // ---- expressions ----

    pub(super) fn expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut any = vec![self.and(depth)?];
        while self.eat_word("or") {
            any.push(self.and(depth)?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Expr::Or(any)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut all = vec![self.not(depth)?];
        while self.eat_word("and") {
            all.push(self.not(depth)?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::And(all)
        })
    }

    fn not(&mut self, depth: usize) -> Result<Expr, QueryError> {
        if self.peek().is_word("not") {
            if depth >= MAX_DEPTH {
                return Err(self.too_deep());
            }
            self.bump();
            return Ok(Expr::Not(Box::new(self.not(depth + 1)?)));
        }
        self.comparison(depth)
    }

    fn comparison(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let left = self.sum(depth)?;
        let op = match self.peek() {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let right = self.sum(depth)?;
            return Ok(Expr::Cmp(op, Box::new(left), Box::new(right)));
        }
        let negated = self.peek().is_word("not")
            && (self.peek_next().is_word("like") || self.peek_next().is_word("in"));
        if negated {
            self.bump();
        }
        if self.eat_word("like") || (!negated && self.eat(&Tok::Match)) {
            let pattern = self.like_pattern()?;
            return Ok(Expr::Like {
                expr: Box::new(left),
                pattern,
                negated,
            });
        }
        if self.eat_word("in") {
            self.expect(&Tok::LBracket, "'[' and a list of values")?;
            let mut list = Vec::new();
            if *self.peek() != Tok::RBracket {
                list.push(self.literal()?);
                while self.eat(&Tok::Comma) {
                    list.push(self.literal()?);
                }
            }
            self.expect(&Tok::RBracket, "',' or ']'")?;
            return Ok(Expr::In {
                expr: Box::new(left),
                list,
                negated,
            });
        }
        Ok(left)
    }

    fn literal(&mut self) -> Result<Expr, QueryError> {
        let negative = self.eat(&Tok::Minus);
        match self.peek().clone() {
            Tok::Num(n) => {
                self.bump();
                Ok(Expr::Num(if negative { -n } else { n }))
            }
            Tok::Str(s) if !negative => {
                self.bump();
                Ok(Expr::Str(s))
            }
            _ => Err(self.unexpected("a number or a string")),
        }
    }

    fn like_pattern(&mut self) -> Result<LikePattern, QueryError> {
        let token = self.bump();
        match token.tok {
            Tok::Str(s) => Ok(LikePattern::Substring(Box::new(
                Finder::new(s.as_bytes()).into_owned(),
            ))),
            Tok::Regex(r) => crate::regex_limits::compile(&r)
                .map(LikePattern::Regex)
                .map_err(|e| {
                    let (line, column) = self.where_(token.start);
                    QueryError::InvalidRegex {
                        reason: e
                            .to_string()
                            .lines()
                            .rev()
                            .find(|l| l.starts_with("error:"))
                            .unwrap_or("does not compile within limits")
                            .trim_start_matches("error: ")
                            .to_owned(),
                        line,
                        column,
                    }
                }),
            _ => {
                self.at = self.at.saturating_sub(1);
                Err(self.unexpected("a string or a /regular expression/"))
            }
        }
    }

    fn sum(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut left = self.product(depth)?;
        let mut chain = 0;
        loop {
            let op = match self.peek() {
                Tok::Plus => ArithOp::Add,
                Tok::Minus => ArithOp::Sub,
                _ => return Ok(left),
            };
            chain += 1;
            if chain > MAX_DEPTH {
                return Err(self.too_deep());
            }
            self.bump();
            let right = self.product(depth)?;
            left = Expr::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn product(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut left = self.unary(depth)?;
        let mut chain = 0;
        loop {
            let op = match self.peek() {
                Tok::Star => ArithOp::Mul,
                Tok::Slash => ArithOp::Div,
                Tok::Percent => ArithOp::Rem,
                _ => return Ok(left),
            };
            chain += 1;
            if chain > MAX_DEPTH {
                return Err(self.too_deep());
            }
            self.bump();
            let right = self.unary(depth)?;
            left = Expr::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, QueryError> {
        if *self.peek() == Tok::Minus {
            if depth >= MAX_DEPTH {
                return Err(self.too_deep());
            }
            self.bump();
            return Ok(match self.unary(depth + 1)? {
                Expr::Num(n) => Expr::Num(-n),
                e => Expr::Neg(Box::new(e)),
            });
        }
        let base = self.primary(depth)?;
        if *self.peek() == Tok::Caret {
            if depth >= MAX_DEPTH {
                return Err(self.too_deep());
            }
            self.bump();
            let exponent = self.unary(depth + 1)?;
            return Ok(Expr::Arith(
                ArithOp::Pow,
                Box::new(base),
                Box::new(exponent),
            ));
        }
        Ok(base)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let token = self.token().clone();
        match &token.tok {
            Tok::Num(n) => {
                self.bump();
                Ok(Expr::Num(*n))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::Str(s.clone()))
            }
            Tok::Quoted(name) => {
                self.bump();
                Ok(Expr::Field(name.clone()))
            }
            Tok::LParen => {
                if depth >= MAX_DEPTH {
                    return Err(self.too_deep());
                }
                self.bump();
                let inner = self.expr(depth + 1)?;
                self.expect(&Tok::RParen, "')'")?;
                Ok(inner)
            }
            Tok::Ident(name) if *self.peek_next() == Tok::LParen => self.call(name, &token),
            Tok::Ident(name) if !is_keyword(name) => {
                self.bump();
                Ok(Expr::Field(name.clone()))
            }
            _ => Err(self.unexpected("a field, a number, a string or '('")),
        }
    }

    fn call(&mut self, name: &str, token: &Token) -> Result<Expr, QueryError> {
        let (line, column) = self.where_(token.start);
        let lower = name.to_ascii_lowercase();
        if lower == "ispresent" {
            self.bump();
            self.bump();
            let field = self.field_name("a field name")?;
            self.expect(&Tok::RParen, "')'")?;
            return Ok(Expr::IsPresent(field));
        }
        let aggregate = AGGREGATES.iter().any(|(n, _)| *n == lower);
        if aggregate && self.after_stats {
            // After `stats`, `count(*)` names the column that aggregate produced.
            self.bump();
            self.bump();
            let mut open = 1usize;
            let mut end = token.end;
            while open > 0 {
                let t = self.bump();
                match t.tok {
                    Tok::LParen => open += 1,
                    Tok::RParen => open -= 1,
                    Tok::Eof => return Err(self.unexpected("')'")),
                    _ => {}
                }
                end = t.end;
            }
            return Ok(Expr::Field(self.text(token.start, end)));
        }
        if aggregate || lower == "bin" {
            return Err(QueryError::Misplaced {
                what: format!("The function '{name}' can only be used in a stats command"),
                line,
                column,
            });
        }
        Err(QueryError::UnsupportedFunction {
            name: name.to_owned(),
            hint: ": outside stats, the supported function is ispresent".to_owned(),
            line,
            column,
        })
    }
}

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// A `bin` period in milliseconds. Calendar units (months, quarters, years) are refused:
/// their length varies.
fn period_ms(amount: u64, unit: &str) -> Result<i64, String> {
    let unit_ms: u64 = match unit.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 604_800_000,
        "mo" | "mon" | "mons" | "month" | "months" | "q" | "qtr" | "qtrs" | "quarter"
        | "quarters" | "y" | "yr" | "yrs" | "year" | "years" => {
            return Err("calendar periods (months, quarters, years) are not supported".to_owned())
        }
        _ => return Err("the unit must be ms, s, m, h, d or w".to_owned()),
    };
    if amount == 0 {
        return Err("a period must be longer than zero".to_owned());
    }
    amount
        .checked_mul(unit_ms)
        .and_then(|ms| i64::try_from(ms).ok())
        .ok_or_else(|| "the period is too long".to_owned())
}
