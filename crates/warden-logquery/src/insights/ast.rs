//! The parsed form of a query.

use memchr::memmem::Finder;
use regex::Regex;

/// An expression in `filter`, `fields`, `sort` and `stats`.
#[derive(Debug)]
pub(super) enum Expr {
    Field(String),
    Num(f64),
    Str(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Like {
        expr: Box<Expr>,
        pattern: LikePattern,
        negated: bool,
    },
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    IsPresent(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The right side of `like` / `=~`.
#[derive(Debug)]
pub(super) enum LikePattern {
    /// `like "text"`: a case-sensitive substring.
    Substring(Box<Finder<'static>>),
    /// `like /regex/`.
    Regex(Regex),
}

/// `expr [as name]` in `fields`.
#[derive(Debug)]
pub(super) struct Projection {
    pub(super) expr: Expr,
    pub(super) name: String,
}

impl Projection {
    /// Whether the projection only shows a field under its own name.
    pub(super) fn is_plain(&self) -> bool {
        matches!(&self.expr, Expr::Field(f) if *f == self.name)
    }
}

/// A `sort` key.
#[derive(Debug)]
pub(super) struct SortKey {
    pub(super) expr: Expr,
    pub(super) descending: bool,
}

/// An aggregate function of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AggFunc {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    Pct,
}

/// One aggregate of `stats`.
#[derive(Debug)]
pub(super) struct Aggregate {
    pub(super) func: AggFunc,
    /// `None` for `count(*)`.
    pub(super) arg: Option<Expr>,
    /// For `pct`: the percentile, 0 to 100.
    pub(super) percentile: f64,
    pub(super) name: String,
}

/// What `stats ... by` groups on.
#[derive(Debug)]
pub(super) enum GroupKey {
    Expr(Expr),
    /// `bin(period)`: `@timestamp` rounded down to a multiple of the period, in ms.
    Bin(i64),
}

/// One `by` item.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) key: GroupKey,
    pub(super) name: String,
}

/// The `stats` command.
#[derive(Debug)]
pub(super) struct Stats {
    pub(super) aggregates: Vec<Aggregate>,
    pub(super) groups: Vec<Group>,
}

/// A step applied to each record (before `stats`) or each row (after it).
#[derive(Debug)]
pub(super) enum Step {
    Filter(Expr),
    Fields(Vec<Projection>),
}
