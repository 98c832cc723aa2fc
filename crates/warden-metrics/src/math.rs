//! Metric math: the subset of CloudWatch's expression language that GetMetricData and
//! alarms evaluate over time series.
//!
//! Supported: numbers, the ids of other queries, `+ - * /` with CloudWatch's precedence,
//! unary minus, parentheses, and the functions `SUM`, `AVG`, `MIN`, `MAX` (of an array
//! `[a, b]`, of `METRICS()` or `METRICS("prefix")`, or of one series), `RATE`, `DIFF`,
//! `ABS` and `FILL(series, value)`. Anything else (other functions, `IF`, `SEARCH`,
//! `INSIGHT_RULE_METRIC`, ...) is refused by name.
//!
//! Semantics follow CloudWatch: an operation between two series applies at the timestamps
//! both have; between a series and a number, at every timestamp of the series; `SUM` (and
//! the other reductions) of an array of series gives, at each timestamp any of them has,
//! the reduction of the values present; of a single series, one number (which then acts
//! like a constant). `RATE` is the change per second between consecutive datapoints (the
//! first has none); `DIFF` the change itself. Division by zero gives no datapoint.
//!
//! The grammar is a dozen rules, so it is parsed by hand (no crate covers CloudWatch's
//! syntax); input length and nesting are bounded ([`MAX_EXPRESSION_CHARS`],
//! [`MAX_DEPTH`]), and the parser is property-tested never to panic.

use std::collections::BTreeMap;

/// A time series: value by timestamp (seconds).
pub type Series = BTreeMap<i64, f64>;

/// Longest expression CloudWatch accepts.
pub const MAX_EXPRESSION_CHARS: usize = 2048;
/// Deepest nesting of parentheses, brackets and calls.
pub const MAX_DEPTH: usize = 32;

/// Why an expression cannot be parsed or evaluated; the text is CloudWatch-like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MathError(pub String);

fn error(message: impl Into<String>) -> MathError {
    MathError(message.into())
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number.
    Number(f64),
    /// Another query's result, by id.
    Id(String),
    /// `[a, b, ...]`.
    Array(Vec<Expr>),
    /// `METRICS()` or `METRICS("prefix")`: every metric query's result (whose id starts
    /// with the prefix).
    Metrics(Option<String>),
    /// A binary operation.
    Binary(Op, Box<Expr>, Box<Expr>),
    /// `-x`.
    Negate(Box<Expr>),
    /// A function call.
    Call(Function, Vec<Expr>),
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// The functions served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `SUM`
    Sum,
    /// `AVG`
    Avg,
    /// `MIN`
    Min,
    /// `MAX`
    Max,
    /// `RATE`
    Rate,
    /// `DIFF`
    Diff,
    /// `ABS`
    Abs,
    /// `FILL`
    Fill,
}

impl Function {
    fn named(name: &str) -> Option<Function> {
        Some(match name {
            "SUM" => Function::Sum,
            "AVG" => Function::Avg,
            "MIN" => Function::Min,
            "MAX" => Function::Max,
            "RATE" => Function::Rate,
            "DIFF" => Function::Diff,
            "ABS" => Function::Abs,
            "FILL" => Function::Fill,
            _ => return None,
        })
    }
}

// ---- lexing ----

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Word(String),
    Text(String),
    Punct(char),
}

fn lex(text: &str) -> Result<Vec<Token>, MathError> {
    if text.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(error(format!(
            "The expression is longer than {MAX_EXPRESSION_CHARS} characters."
        )));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s
                .parse::<f64>()
                .map_err(|_| error(format!("Invalid number `{s}` at position {}.", start + 1)))?;
            tokens.push(Token::Number(n));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == '"' {
            let start = i;
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(error(format!(
                            "Unterminated string starting at position {}.",
                            start + 1
                        )))
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Text(s));
        } else if "+-*/()[],".contains(c) {
            tokens.push(Token::Punct(c));
            i += 1;
        } else {
            return Err(error(format!(
                "Unrecognized character `{c}` at position {}.",
                i + 1
            )));
        }
    }
    Ok(tokens)
}

// ---- parsing ----

/// Parses an expression.
pub fn parse(text: &str) -> Result<Expr, MathError> {
    let tokens = lex(text)?;
    let mut p = Parser { tokens, at: 0 };
    let e = p.sum(0)?;
    if p.at < p.tokens.len() {
        return Err(error(format!(
            "Unexpected `{}` after the end of the expression.",
            show(&p.tokens[p.at])
        )));
    }
    Ok(e)
}

fn show(t: &Token) -> String {
    match t {
        Token::Number(n) => n.to_string(),
        Token::Word(w) => w.clone(),
        Token::Text(s) => format!("\"{s}\""),
        Token::Punct(c) => c.to_string(),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Punct(c)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), MathError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(error(match self.peek() {
                Some(t) => format!("Expected `{c}` but found `{}`.", show(t)),
                None => format!("Expected `{c}` but the expression ended."),
            }))
        }
    }

    fn deeper(depth: usize) -> Result<usize, MathError> {
        if depth >= MAX_DEPTH {
            Err(error(format!(
                "The expression nests deeper than {MAX_DEPTH} levels."
            )))
        } else {
            Ok(depth + 1)
        }
    }

    fn sum(&mut self, depth: usize) -> Result<Expr, MathError> {
        let mut left = self.product(depth)?;
        loop {
            let op = if self.eat('+') {
                Op::Add
            } else if self.eat('-') {
                Op::Sub
            } else {
                return Ok(left);
            };
            let right = self.product(depth)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn product(&mut self, depth: usize) -> Result<Expr, MathError> {
        let mut left = self.unary(depth)?;
        loop {
            let op = if self.eat('*') {
                Op::Mul
            } else if self.eat('/') {
                Op::Div
            } else {
                return Ok(left);
            };
            let right = self.unary(depth)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, MathError> {
        if self.eat('-') {
            let depth = Self::deeper(depth)?;
            return Ok(Expr::Negate(Box::new(self.unary(depth)?)));
        }
        self.atom(depth)
    }

    fn atom(&mut self, depth: usize) -> Result<Expr, MathError> {
        let depth = Self::deeper(depth)?;
        let Some(token) = self.peek().cloned() else {
            return Err(error("The expression ended where a value was expected."));
        };
        self.at += 1;
        match token {
            Token::Number(n) => Ok(Expr::Number(n)),
            Token::Punct('(') => {
                let e = self.sum(depth)?;
                self.expect(')')?;
                Ok(e)
            }
            Token::Punct('[') => {
                let mut items = Vec::new();
                if !self.eat(']') {
                    loop {
                        items.push(self.sum(depth)?);
                        if self.eat(']') {
                            break;
                        }
                        self.expect(',')?;
                    }
                }
                Ok(Expr::Array(items))
            }
            Token::Word(w) if self.peek() == Some(&Token::Punct('(')) => {
                self.at += 1;
                if w == "METRICS" {
                    let prefix = match self.peek().cloned() {
                        Some(Token::Text(s)) => {
                            self.at += 1;
                            Some(s)
                        }
                        _ => None,
                    };
                    self.expect(')')?;
                    return Ok(Expr::Metrics(prefix));
                }
                let function = Function::named(&w).ok_or_else(|| {
                    error(format!(
                        "Unsupported function `{w}`: Warden's metric math has SUM, AVG, MIN, MAX, RATE, DIFF, ABS, FILL and METRICS."
                    ))
                })?;
                let mut args = Vec::new();
                if !self.eat(')') {
                    loop {
                        args.push(self.sum(depth)?);
                        if self.eat(')') {
                            break;
                        }
                        self.expect(',')?;
                    }
                }
                let arity = match function {
                    Function::Fill => 2,
                    _ => 1,
                };
                if args.len() != arity {
                    return Err(error(format!(
                        "{w} takes {arity} argument{}.",
                        if arity == 1 { "" } else { "s" }
                    )));
                }
                Ok(Expr::Call(function, args))
            }
            Token::Word(w) => {
                if w.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                    Ok(Expr::Id(w))
                } else {
                    Err(error(format!(
                        "Unrecognized token `{w}`: query ids start with a lowercase letter."
                    )))
                }
            }
            other => Err(error(format!("Unexpected `{}`.", show(&other)))),
        }
    }
}

impl Expr {
    /// The ids of other queries it reads (`METRICS()` reads every metric query).
    pub fn references(&self, out: &mut Vec<String>) {
        match self {
            Expr::Id(id) => out.push(id.clone()),
            Expr::Array(items) | Expr::Call(_, items) => {
                items.iter().for_each(|e| e.references(out))
            }
            Expr::Binary(_, a, b) => {
                a.references(out);
                b.references(out);
            }
            Expr::Negate(e) => e.references(out),
            Expr::Number(_) | Expr::Metrics(_) => {}
        }
    }

    /// Whether it reads `METRICS()`.
    pub fn reads_all_metrics(&self) -> bool {
        match self {
            Expr::Metrics(_) => true,
            Expr::Array(items) | Expr::Call(_, items) => items.iter().any(Expr::reads_all_metrics),
            Expr::Binary(_, a, b) => a.reads_all_metrics() || b.reads_all_metrics(),
            Expr::Negate(e) => e.reads_all_metrics(),
            Expr::Number(_) | Expr::Id(_) => false,
        }
    }
}

// ---- evaluation ----

/// A value while evaluating.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Scalar(f64),
    Series(Series),
    Array(Vec<Series>),
}

/// What an expression can read: the results of other queries by id, and which of them
/// are metric queries (for `METRICS()`), in query order.
pub struct Inputs<'a> {
    /// Every evaluated query's series, by id.
    pub series: &'a BTreeMap<String, Series>,
    /// The ids of the metric (not expression) queries, in order.
    pub metric_ids: &'a [String],
}

/// Evaluates an expression to one series; a result that is one number (`SUM(m)`) is that
/// number at every timestamp any input has.
pub fn evaluate(expr: &Expr, inputs: &Inputs<'_>) -> Result<Series, MathError> {
    match eval(expr, inputs)? {
        Value::Series(s) => Ok(s),
        Value::Scalar(v) => {
            let mut times: Vec<i64> = inputs
                .series
                .values()
                .flat_map(|s| s.keys().copied())
                .collect();
            times.sort_unstable();
            times.dedup();
            Ok(times
                .into_iter()
                .map(|t| (t, v))
                .filter(|(_, v)| v.is_finite())
                .collect())
        }
        Value::Array(_) => Err(error(
            "The expression gives an array of series; reduce it with SUM, AVG, MIN or MAX.",
        )),
    }
}

fn eval(expr: &Expr, inputs: &Inputs<'_>) -> Result<Value, MathError> {
    Ok(match expr {
        Expr::Number(n) => Value::Scalar(*n),
        Expr::Id(id) => Value::Series(
            inputs
                .series
                .get(id)
                .cloned()
                .ok_or_else(|| error(format!("Unknown query id `{id}`.")))?,
        ),
        Expr::Metrics(prefix) => Value::Array(
            inputs
                .metric_ids
                .iter()
                .filter(|id| prefix.as_deref().is_none_or(|p| id.starts_with(p)))
                .filter_map(|id| inputs.series.get(id).cloned())
                .collect(),
        ),
        Expr::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match eval(item, inputs)? {
                    Value::Series(s) => out.push(s),
                    Value::Array(a) => out.extend(a),
                    Value::Scalar(_) => return Err(error("An array holds series, not numbers.")),
                }
            }
            Value::Array(out)
        }
        Expr::Negate(e) => map_value(eval(e, inputs)?, |v| -v)?,
        Expr::Binary(op, a, b) => binary(*op, eval(a, inputs)?, eval(b, inputs)?)?,
        Expr::Call(function, args) => call(*function, args, inputs)?,
    })
}

fn map_value(v: Value, f: impl Fn(f64) -> f64) -> Result<Value, MathError> {
    match v {
        Value::Scalar(x) => Ok(Value::Scalar(f(x))),
        Value::Series(s) => Ok(Value::Series(finite(s.into_iter().map(|(t, x)| (t, f(x)))))),
        Value::Array(a) => Ok(Value::Array(
            a.into_iter()
                .map(|s| finite(s.into_iter().map(|(t, x)| (t, f(x)))))
                .collect(),
        )),
    }
}

/// Keeps the finite values: a division by zero gives no datapoint.
fn finite(points: impl Iterator<Item = (i64, f64)>) -> Series {
    points.filter(|(_, v)| v.is_finite()).collect()
}

fn apply(op: Op, a: f64, b: f64) -> f64 {
    match op {
        Op::Add => a + b,
        Op::Sub => a - b,
        Op::Mul => a * b,
        Op::Div => a / b,
    }
}

fn binary(op: Op, a: Value, b: Value) -> Result<Value, MathError> {
    Ok(match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => Value::Scalar(apply(op, x, y)),
        (Value::Series(s), Value::Scalar(y)) => {
            Value::Series(finite(s.into_iter().map(|(t, x)| (t, apply(op, x, y)))))
        }
        (Value::Scalar(x), Value::Series(s)) => {
            Value::Series(finite(s.into_iter().map(|(t, y)| (t, apply(op, x, y)))))
        }
        (Value::Series(s), Value::Series(r)) => Value::Series(finite(
            s.into_iter()
                .filter_map(|(t, x)| r.get(&t).map(|y| (t, apply(op, x, *y)))),
        )),
        _ => {
            return Err(error(
                "Arithmetic on an array of series is not supported; reduce it with SUM, AVG, MIN or MAX first.",
            ))
        }
    })
}

fn call(function: Function, args: &[Expr], inputs: &Inputs<'_>) -> Result<Value, MathError> {
    let first = args
        .first()
        .ok_or_else(|| error("A function needs an argument."))?;
    let value = eval(first, inputs)?;
    match function {
        Function::Sum | Function::Avg | Function::Min | Function::Max => {
            Ok(reduce(function, value))
        }
        Function::Abs => map_value(value, f64::abs),
        Function::Rate | Function::Diff => {
            let Value::Series(s) = value else {
                return Err(error("RATE and DIFF take one series."));
            };
            let points: Vec<(i64, f64)> = s.into_iter().collect();
            Ok(Value::Series(finite(points.windows(2).map(|w| {
                let ((t0, v0), (t1, v1)) = (w[0], w[1]);
                let change = v1 - v0;
                let value = if function == Function::Rate {
                    change / (t1 - t0) as f64
                } else {
                    change
                };
                (t1, value)
            }))))
        }
        Function::Fill => {
            let Value::Series(s) = value else {
                return Err(error("FILL takes a series and a number."));
            };
            let Some(Value::Scalar(fill)) = args.get(1).map(|a| eval(a, inputs)).transpose()?
            else {
                return Err(error("FILL takes a series and a number."));
            };
            // Every timestamp any input has, with the series' value or the fill.
            let mut out: Series = inputs
                .series
                .values()
                .flat_map(|x| x.keys().copied())
                .map(|t| (t, fill))
                .collect();
            out.extend(s);
            Ok(Value::Series(finite(out.into_iter())))
        }
    }
}

fn reduce(function: Function, value: Value) -> Value {
    let fold = |values: &[f64]| -> f64 {
        match function {
            Function::Sum => values.iter().sum(),
            Function::Avg => values.iter().sum::<f64>() / values.len() as f64,
            Function::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            _ => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    };
    match value {
        Value::Scalar(x) => Value::Scalar(x),
        Value::Series(s) => {
            let values: Vec<f64> = s.values().copied().collect();
            if values.is_empty() {
                Value::Series(Series::new())
            } else {
                Value::Scalar(fold(&values))
            }
        }
        Value::Array(series) => {
            let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for s in &series {
                for (t, v) in s {
                    at.entry(*t).or_default().push(*v);
                }
            }
            Value::Series(finite(at.into_iter().map(|(t, vs)| (t, fold(&vs)))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn series(points: &[(i64, f64)]) -> Series {
        points.iter().copied().collect()
    }

    fn run(text: &str, data: &[(&str, Series)]) -> Result<Series, MathError> {
        let series: BTreeMap<String, Series> = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let ids: Vec<String> = data.iter().map(|(k, _)| k.to_string()).collect();
        evaluate(
            &parse(text)?,
            &Inputs {
                series: &series,
                metric_ids: &ids,
            },
        )
    }

    #[test]
    fn arithmetic_aligns_series_on_their_common_timestamps() {
        let a = series(&[(60, 10.0), (120, 20.0), (180, 30.0)]);
        let b = series(&[(60, 2.0), (180, 0.0)]);
        let data = [("errors", a.clone()), ("invocations", b)];
        assert_eq!(
            run("100 * errors / invocations", &data).unwrap(),
            series(&[(60, 500.0)]),
            "no datapoint where a series lacks one or divides by zero"
        );
        assert_eq!(
            run("errors - 1 + 2 * 3", &data).unwrap(),
            series(&[(60, 15.0), (120, 25.0), (180, 35.0)])
        );
        assert_eq!(
            run("-(errors)", &data).unwrap(),
            series(&[(60, -10.0), (120, -20.0), (180, -30.0)])
        );
    }

    #[test]
    fn sum_of_metrics_and_arrays_reduces_per_timestamp() {
        let data = [
            ("m1", series(&[(60, 1.0), (120, 2.0)])),
            ("m2", series(&[(60, 10.0)])),
            ("other", series(&[(60, 100.0)])),
        ];
        assert_eq!(
            run("SUM(METRICS())", &data).unwrap(),
            series(&[(60, 111.0), (120, 2.0)])
        );
        assert_eq!(
            run("SUM(METRICS(\"m\"))", &data).unwrap(),
            series(&[(60, 11.0), (120, 2.0)])
        );
        assert_eq!(
            run("SUM([m1, m2])", &data).unwrap(),
            series(&[(60, 11.0), (120, 2.0)])
        );
        assert_eq!(
            run("MAX([m1, m2])", &data).unwrap(),
            series(&[(60, 10.0), (120, 2.0)])
        );
        // A reduction of one series is a number, shown at every timestamp.
        assert_eq!(
            run("SUM(m1)", &data).unwrap(),
            series(&[(60, 3.0), (120, 3.0)])
        );
        assert_eq!(
            run("m1 / SUM(m1)", &data).unwrap(),
            series(&[(60, 1.0 / 3.0), (120, 2.0 / 3.0)])
        );
    }

    #[test]
    fn rate_is_the_change_per_second() {
        let data = [("c", series(&[(0, 10.0), (60, 70.0), (180, 70.0)]))];
        assert_eq!(
            run("RATE(c)", &data).unwrap(),
            series(&[(60, 1.0), (180, 0.0)])
        );
        assert_eq!(
            run("DIFF(c)", &data).unwrap(),
            series(&[(60, 60.0), (180, 0.0)])
        );
        assert_eq!(
            run(
                "FILL(c, 0)",
                &[("c", series(&[(0, 1.0)])), ("d", series(&[(60, 5.0)]))]
            )
            .unwrap(),
            series(&[(0, 1.0), (60, 0.0)])
        );
    }

    #[test]
    fn what_is_not_served_is_refused_by_name() {
        for (text, said) in [
            ("IF(m, 1)", "`IF`"),
            ("m > 1", "`>`"),
            ("SEARCH('x', 'Sum', 60)", "`'`"),
            ("m1 +", "ended"),
            ("(m1", "Expected `)`"),
            ("M1", "lowercase"),
            ("RATE(a, b)", "RATE takes 1 argument"),
            ("m1 m2", "Unexpected `m2`"),
            ("m1 % 2", "`%`"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.0.contains(said), "{text}: {e}");
        }
        assert!(run("nope + 1", &[])
            .unwrap_err()
            .0
            .contains("Unknown query id"));
        assert!(run("METRICS()", &[]).unwrap_err().0.contains("array"));
        let deep = "(".repeat(100) + "1" + &")".repeat(100);
        assert!(parse(&deep).unwrap_err().0.contains("deeper"));
        assert!(parse(&"1+".repeat(2000)).unwrap_err().0.contains("longer"));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[a-zA-Z0-9_+*/()\\[\\],\". -]{0,80}") {
            if let Ok(e) = parse(&text) {
                let data = BTreeMap::from([("m1".to_string(), series(&[(0, 1.0), (60, 0.0)]))]);
                let ids = vec!["m1".to_string()];
                let _ = evaluate(&e, &Inputs { series: &data, metric_ids: &ids });
            }
        }
    }
}
