//! Condition operators: parsing their names, compiling their values, and evaluating them
//! against a request context with AWS's rules for missing keys, `...IfExists`,
//! `ForAllValues:`/`ForAnyValue:` and negated operators.
//!
//! Rules (from AWS's condition operator reference, checked against an independent evaluator):
//! - Several values under one key: any may match (OR); negated operators require that none
//!   match (the AND of the negations).
//! - A key absent from the context: false, except negated operators and `...IfExists`
//!   (true), `ForAllValues:` (true) and `Null` (which tests exactly that).
//! - A multi-valued context key with an operator lacking a set qualifier does not match.
//! - A value that cannot be compared (a non-numeric request value for `Numeric*`, a policy
//!   variable with no value) satisfies neither the operator nor its negation.

use std::net::IpAddr;

use crate::eval::Context;
use crate::pattern::{Pattern, Syntax};
use crate::policy::{parse_arn_pattern, split_arn, ArnPattern, Version};
use crate::ContextValue;

/// The base operator family and comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    BinaryEquals,
    IpAddress,
    Arn,
    Null,
}

/// An ordering test; `Eq` is also used for the negated `...NotEquals` forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetOp {
    None,
    ForAllValues,
    ForAnyValue,
}

/// A full operator such as `ForAnyValue:StringNotLikeIfExists`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Operator {
    pub base: Base,
    pub negated: bool,
    pub if_exists: bool,
    pub set: SetOp,
}

const BASES: &[(&str, Base, bool)] = &[
    ("stringequals", Base::StringEquals, false),
    ("stringnotequals", Base::StringEquals, true),
    (
        "stringequalsignorecase",
        Base::StringEqualsIgnoreCase,
        false,
    ),
    (
        "stringnotequalsignorecase",
        Base::StringEqualsIgnoreCase,
        true,
    ),
    ("stringlike", Base::StringLike, false),
    ("stringnotlike", Base::StringLike, true),
    ("numericequals", Base::Numeric(Cmp::Eq), false),
    ("numericnotequals", Base::Numeric(Cmp::Eq), true),
    ("numericlessthan", Base::Numeric(Cmp::Lt), false),
    ("numericlessthanequals", Base::Numeric(Cmp::Le), false),
    ("numericgreaterthan", Base::Numeric(Cmp::Gt), false),
    ("numericgreaterthanequals", Base::Numeric(Cmp::Ge), false),
    ("dateequals", Base::Date(Cmp::Eq), false),
    ("datenotequals", Base::Date(Cmp::Eq), true),
    ("datelessthan", Base::Date(Cmp::Lt), false),
    ("datelessthanequals", Base::Date(Cmp::Le), false),
    ("dategreaterthan", Base::Date(Cmp::Gt), false),
    ("dategreaterthanequals", Base::Date(Cmp::Ge), false),
    ("bool", Base::Bool, false),
    ("binaryequals", Base::BinaryEquals, false),
    ("ipaddress", Base::IpAddress, false),
    ("notipaddress", Base::IpAddress, true),
    ("arnequals", Base::Arn, false),
    ("arnlike", Base::Arn, false),
    ("arnnotequals", Base::Arn, true),
    ("arnnotlike", Base::Arn, true),
    ("null", Base::Null, false),
];

impl Operator {
    /// Parses an operator name; names are matched case-insensitively, as IAM does.
    pub fn parse(name: &str) -> Option<Operator> {
        let lower = name.to_ascii_lowercase();
        let (set, rest) = if let Some(r) = lower.strip_prefix("forallvalues:") {
            (SetOp::ForAllValues, r)
        } else if let Some(r) = lower.strip_prefix("foranyvalue:") {
            (SetOp::ForAnyValue, r)
        } else {
            (SetOp::None, lower.as_str())
        };
        let (if_exists, base_name) = match rest.strip_suffix("ifexists") {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let &(_, base, negated) = BASES.iter().find(|(n, _, _)| *n == base_name)?;
        // `Null` tests presence itself; qualifying it is meaningless and IAM flags it.
        if base == Base::Null && (if_exists || set != SetOp::None) {
            return None;
        }
        Some(Operator {
            base,
            negated,
            if_exists,
            set,
        })
    }
}

/// An IPv4 or IPv6 network in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&n| n <= max)?
            }
            Some(_) => return None,
        };
        Some(Cidr { addr, prefix })
    }

    /// `None` when `ip` is not an address at all; an address of the other family is
    /// simply not contained.
    fn contains(&self, ip: &str) -> Option<bool> {
        let ip: IpAddr = ip.parse().ok()?;
        Some(match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

#[derive(Clone, Debug)]
enum Values {
    Patterns(Box<[Pattern]>),
    Numbers(Box<[f64]>),
    Dates(Box<[i64]>),
    Bools(Box<[bool]>),
    Raw(Box<[Box<str>]>),
    Cidrs(Box<[Cidr]>),
    Arns(Box<[ArnPattern]>),
}

/// One `operator: { key: values }` entry, compiled.
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    op: Operator,
    /// Lowercased: condition key names are case-insensitive.
    key: Box<str>,
    values: Values,
}

impl Condition {
    /// Compiles the values for `op`; on a malformed value returns it as the error.
    pub(crate) fn compile(
        op: Operator,
        key: &str,
        raw: &[String],
        version: Version,
    ) -> Result<Condition, String> {
        let vars = version == Version::V2012_10_17;
        let pats = |wildcards, case_insensitive| {
            Values::Patterns(
                raw.iter()
                    .map(|r| {
                        Pattern::compile(
                            r,
                            Syntax {
                                wildcards,
                                variables: vars,
                                case_insensitive,
                            },
                        )
                    })
                    .collect(),
            )
        };
        fn all<T>(raw: &[String], f: impl Fn(&str) -> Option<T>) -> Result<Box<[T]>, String> {
            raw.iter().map(|r| f(r).ok_or_else(|| r.clone())).collect()
        }
        let values = match op.base {
            Base::StringEquals => pats(false, false),
            Base::StringEqualsIgnoreCase => pats(false, true),
            Base::StringLike => pats(true, false),
            Base::Numeric(_) => Values::Numbers(all(raw, parse_number)?),
            Base::Date(_) => Values::Dates(all(raw, parse_date)?),
            Base::Bool | Base::Null => Values::Bools(all(raw, parse_bool)?),
            Base::BinaryEquals => Values::Raw(raw.iter().map(|r| r.as_str().into()).collect()),
            Base::IpAddress => Values::Cidrs(all(raw, Cidr::parse)?),
            Base::Arn => Values::Arns(all(raw, |r| parse_arn_pattern(r, version, false))?),
        };
        Ok(Condition {
            op,
            key: key.to_ascii_lowercase().into_boxed_str(),
            values,
        })
    }

    /// Evaluates the condition against the request context.
    pub fn eval(&self, ctx: &Context<'_>) -> bool {
        let value = ctx.get(&self.key);
        if let (Base::Null, Values::Bools(b)) = (self.op.base, &self.values) {
            // `"Null": {"k": "true"}` means "k is absent".
            return b.iter().any(|&want_absent| want_absent == value.is_none());
        }
        match (self.op.set, value) {
            (_, None) => match self.op.set {
                SetOp::ForAllValues => true,
                SetOp::ForAnyValue => self.op.if_exists,
                SetOp::None => self.op.if_exists || self.op.negated,
            },
            (_, Some(ContextValue::String(s))) => self.test(s, ctx),
            (SetOp::None, Some(ContextValue::List(_))) => false,
            (SetOp::ForAllValues, Some(ContextValue::List(l))) => {
                l.iter().all(|s| self.test(s, ctx))
            }
            (SetOp::ForAnyValue, Some(ContextValue::List(l))) => {
                l.iter().any(|s| self.test(s, ctx))
            }
        }
    }

    /// The operator applied to one request value against all policy values.
    fn test(&self, request: &str, ctx: &Context<'_>) -> bool {
        if self.op.negated {
            // Every policy value must be definitely unequal.
            self.each(request, ctx, |r| r == Some(false))
        } else {
            !self.each(request, ctx, |r| r != Some(true))
        }
    }

    /// True when `pred` holds for the comparison of `request` with every policy value.
    fn each(&self, request: &str, ctx: &Context<'_>, pred: impl Fn(Option<bool>) -> bool) -> bool {
        match &self.values {
            Values::Patterns(p) => p.iter().all(|p| pred(p.matches_opt(request, ctx))),
            Values::Numbers(n) => {
                let r = parse_number(request);
                n.iter()
                    .all(|&v| pred(r.map(|r| compare(self.op.base, r.partial_cmp(&v)))))
            }
            Values::Dates(d) => {
                let r = parse_date(request);
                d.iter()
                    .all(|&v| pred(r.map(|r| compare(self.op.base, Some(r.cmp(&v))))))
            }
            Values::Bools(b) => {
                let r = parse_bool(request);
                b.iter().all(|&v| pred(r.map(|r| r == v)))
            }
            Values::Raw(raw) => raw.iter().all(|v| pred(Some(&**v == request))),
            Values::Cidrs(c) => c.iter().all(|c| pred(c.contains(request))),
            Values::Arns(a) => {
                let parts = split_arn(request);
                a.iter()
                    .all(|a| pred(parts.map(|parts| a.matches_parts(&parts, ctx))))
            }
        }
    }
}

fn compare(base: Base, ord: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    let cmp = match base {
        Base::Numeric(c) | Base::Date(c) => c,
        _ => Cmp::Eq,
    };
    matches!(
        (cmp, ord),
        (Cmp::Eq, Some(Equal))
            | (Cmp::Lt, Some(Less))
            | (Cmp::Le, Some(Less | Equal))
            | (Cmp::Gt, Some(Greater))
            | (Cmp::Ge, Some(Greater | Equal))
    )
}

impl ArnPattern {
    /// Matches already-split request parts; variables never cross parts.
    pub(crate) fn matches_parts(&self, parts: &[&str; 5], ctx: &Context<'_>) -> bool {
        self.parts
            .iter()
            .zip(parts.iter())
            .all(|(p, s)| p.matches(s, ctx))
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Decimal integers and fractions with an optional sign; no exponents, `inf` or `NaN`.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty());
    if !ok {
        return None;
    }
    s.parse().ok()
}

/// Epoch seconds, or W3C/ISO-8601 `YYYY-MM-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]` (no zone = UTC).
/// Returns epoch milliseconds.
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok()?.checked_mul(1000);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    let mut i = 10;
    if i < b.len() {
        if b[i] != b'T' {
            return None;
        }
        let (h, mi) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if b.get(i + 3) != Some(&b':') || h > 23 || mi > 59 {
            return None;
        }
        ms += (h * 3600 + mi * 60) * 1000;
        i += 6;
        if b.get(i) == Some(&b':') {
            let sec = num(i + 1, 2)?;
            if sec > 60 {
                return None;
            }
            ms += sec * 1000;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let frac = &s[start..end.min(start + 3)];
                let scale = 10_i64.pow(3 - frac.len() as u32);
                ms += frac.parse::<i64>().ok()? * scale;
                i = end;
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') if i + 1 == b.len() => {}
            Some(&sign @ (b'+' | b'-')) => {
                let oh = num(i + 1, 2)?;
                let om = match (b.get(i + 3), b.len() - i) {
                    (Some(b':'), 6) => num(i + 4, 2)?,
                    (_, 5) => num(i + 3, 2)?,
                    (_, 3) => 0,
                    _ => return None,
                };
                let off = (oh * 60 + om) * 60_000;
                ms += if sign == b'+' { -off } else { off };
            }
            _ => return None,
        }
    }
    Some(ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        let op = Operator::parse("ForAnyValue:StringNotLikeIfExists").unwrap();
        assert_eq!(op.base, Base::StringLike);
        assert!(op.negated && op.if_exists);
        assert_eq!(op.set, SetOp::ForAnyValue);
        assert!(Operator::parse("stringequals").is_some());
        assert!(Operator::parse("StringEqualz").is_none());
        assert!(Operator::parse("NullIfExists").is_none());
        assert!(Operator::parse("ForAllValues:Null").is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_date("86400"), Some(86_400_000));
        assert_eq!(
            parse_date("2020-01-01T01:00:00+01:00"),
            parse_date("2020-01-01")
        );
        assert_eq!(
            parse_date("2020-01-01T00:00:00.5Z"),
            Some(1_577_836_800_500)
        );
        assert_eq!(parse_date("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date("2020-01-01T00:00Zjunk"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("1e3"), None);
        assert_eq!(parse_number("1."), None);
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert_eq!(c.contains("10.1.2.3"), Some(true));
        assert_eq!(c.contains("11.1.2.3"), Some(false));
        assert_eq!(c.contains("::1"), Some(false));
        assert_eq!(c.contains("nope"), None);
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert_eq!(c.contains("2001:db8:1::5"), Some(true));
        assert_eq!(
            Cidr::parse("0.0.0.0/0").unwrap().contains("1.2.3.4"),
            Some(true)
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0/8").is_none());
    }
}
