//! Values and expression evaluation.
//!
//! A field is missing, or holds text, a number, a timestamp or a boolean. Arithmetic needs
//! numbers (text that reads as a number counts) and is missing otherwise. Comparisons
//! compare numbers as numbers when both sides are numbers, text otherwise, and are false
//! when either side is missing; `not` negates. `like "x"` is a case-sensitive substring
//! test, `like /re/` a regex search, and `in [..]` equality with any listed value.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::ast::{ArithOp, CmpOp, Expr, LikePattern};
use crate::number::{format_number, parse_number};

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    /// Milliseconds since the epoch.
    Time(i64),
    Bool(bool),
}

impl Val<'_> {
    pub(super) fn into_owned(self) -> Val<'static> {
        match self {
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Num(n) => Val::Num(n),
            Val::Time(t) => Val::Time(t),
            Val::Bool(b) => Val::Bool(b),
        }
    }

    pub(super) fn borrowed(&self) -> Val<'_> {
        match self {
            Val::Str(s) => Val::Str(Cow::Borrowed(s)),
            Val::Num(n) => Val::Num(*n),
            Val::Time(t) => Val::Time(*t),
            Val::Bool(b) => Val::Bool(*b),
        }
    }

    pub(super) fn as_number(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Time(t) => Some(*t as f64),
            Val::Str(s) => parse_number(s),
            Val::Bool(_) => None,
        }
    }

    /// The value as GetQueryResults shows it.
    pub(super) fn display(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Num(n) => Cow::Owned(format_number(*n)),
            Val::Time(t) => Cow::Owned(format_timestamp(*t)),
            Val::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

/// `yyyy-MM-dd HH:mm:ss.SSS` in UTC, as Logs Insights shows timestamps.
pub(super) fn format_timestamp(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => ms.to_string(),
    }
}

/// Where expressions find fields.
pub(super) trait Fields {
    fn get(&self, name: &str) -> Option<Val<'_>>;
}

/// Evaluates `expr` over `fields`; `None` is a missing value.
pub(super) fn eval<'r, F: Fields + ?Sized>(expr: &'r Expr, fields: &'r F) -> Option<Val<'r>> {
    match expr {
        Expr::Field(name) => fields.get(name),
        Expr::Num(n) => Some(Val::Num(*n)),
        Expr::Str(s) => Some(Val::Str(Cow::Borrowed(s))),
        Expr::Neg(e) => Some(Val::Num(-eval(e, fields)?.as_number()?)),
        Expr::Not(e) => Some(Val::Bool(!truthy(eval(e, fields).as_ref()))),
        Expr::Arith(op, l, r) => {
            let a = eval(l, fields)?.as_number()?;
            let b = eval(r, fields)?.as_number()?;
            let n = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
                ArithOp::Rem => a % b,
                ArithOp::Pow => a.powf(b),
            };
            n.is_finite().then_some(Val::Num(n))
        }
        Expr::Cmp(op, l, r) => {
            let held = match (eval(l, fields), eval(r, fields)) {
                (Some(a), Some(b)) => compare(&a, &b).is_some_and(|o| holds(*op, o)),
                _ => false,
            };
            Some(Val::Bool(held))
        }
        Expr::And(all) => Some(Val::Bool(
            all.iter().all(|e| truthy(eval(e, fields).as_ref())),
        )),
        Expr::Or(any) => Some(Val::Bool(
            any.iter().any(|e| truthy(eval(e, fields).as_ref())),
        )),
        Expr::Like {
            expr,
            pattern,
            negated,
        } => {
            let matched = eval(expr, fields).is_some_and(|v| {
                let text = v.display();
                match pattern {
                    LikePattern::Substring(f) => f.find(text.as_bytes()).is_some(),
                    LikePattern::Regex(re) => re.is_match(&text),
                }
            });
            Some(Val::Bool(matched != *negated))
        }
        Expr::In {
            expr,
            list,
            negated,
        } => {
            let found = eval(expr, fields).is_some_and(|v| {
                list.iter().any(|item| {
                    eval(item, fields)
                        .and_then(|w| compare(&v, &w))
                        .is_some_and(Ordering::is_eq)
                })
            });
            Some(Val::Bool(found != *negated))
        }
        Expr::IsPresent(name) => Some(Val::Bool(fields.get(name).is_some())),
    }
}

/// Whether a value passes `filter`.
pub(super) fn truthy(v: Option<&Val<'_>>) -> bool {
    match v {
        None => false,
        Some(Val::Bool(b)) => *b,
        Some(Val::Num(n)) => *n != 0.0,
        Some(Val::Str(s)) => !s.is_empty(),
        Some(Val::Time(_)) => true,
    }
}

fn holds(op: CmpOp, o: Ordering) -> bool {
    match op {
        CmpOp::Eq => o.is_eq(),
        CmpOp::Ne => o.is_ne(),
        CmpOp::Lt => o.is_lt(),
        CmpOp::Le => o.is_le(),
        CmpOp::Gt => o.is_gt(),
        CmpOp::Ge => o.is_ge(),
    }
}

/// Numbers as numbers when both sides are numbers, text otherwise.
fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a.as_number(), b.as_number()) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(a.display().cmp(&b.display())),
    }
}

/// A value as `sort` orders it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SortVal {
    Text(String),
    Num(f64),
}

impl SortVal {
    pub(super) fn of(v: &Val<'_>) -> SortVal {
        match v.as_number() {
            Some(n) => SortVal::Num(n),
            None => SortVal::Text(v.display().into_owned()),
        }
    }
}

/// Ascending order: every text before every number; numbers by value; text in natural
/// order (runs of digits compare by length, then value; everything else by code point).
pub(super) fn natural_cmp(a: &SortVal, b: &SortVal) -> Ordering {
    match (a, b) {
        (SortVal::Num(x), SortVal::Num(y)) => x.total_cmp(y),
        (SortVal::Text(_), SortVal::Num(_)) => Ordering::Less,
        (SortVal::Num(_), SortVal::Text(_)) => Ordering::Greater,
        (SortVal::Text(x), SortVal::Text(y)) => natural_text_cmp(x, y),
    }
}

/// Splits off the first chunk: a run of ASCII digits, a run of letters, or one other
/// character.
fn chunk(s: &str) -> (&str, &str) {
    let mut chars = s.char_indices();
    let Some((_, first)) = chars.next() else {
        return ("", "");
    };
    let same: fn(char) -> bool = if first.is_ascii_digit() {
        |c| c.is_ascii_digit()
    } else if first.is_alphabetic() {
        char::is_alphabetic
    } else {
        |_| false
    };
    let end = chars.find(|(_, c)| !same(*c)).map_or(s.len(), |(i, _)| i);
    s.split_at(end)
}

fn natural_text_cmp(mut a: &str, mut b: &str) -> Ordering {
    loop {
        let (ca, rest_a) = chunk(a);
        let (cb, rest_b) = chunk(b);
        if ca.is_empty() || cb.is_empty() {
            return ca.len().cmp(&cb.len()).then(Ordering::Equal);
        }
        let digits = |c: &str| c.bytes().all(|b| b.is_ascii_digit());
        let order = if digits(ca) && digits(cb) {
            ca.len().cmp(&cb.len()).then_with(|| ca.cmp(cb))
        } else {
            ca.cmp(cb)
        };
        if order.is_ne() {
            return order;
        }
        a = rest_a;
        b = rest_b;
    }
}
