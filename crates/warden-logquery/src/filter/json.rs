//! JSON patterns: `{ SELECTOR OP VALUE }` conditions combined with `&&`, `||` and
//! parentheses (`()` binds tighter than `&&`, which binds tighter than `||`).
//!
//! A selector is `$` followed by property steps `.name` (letters, digits, `_` and `-`) and
//! index steps `[N]`; the first step is a property. A condition is `SELECTOR OP VALUE` (see
//! [`super::value`]), `SELECTOR IS TRUE`, `IS FALSE`, `IS NULL`, or `SELECTOR NOT EXISTS`.
//! Comparisons hold only where the selector reaches a string or a number: on an object, an
//! array, a boolean, null or nothing, both `=` and `!=` are false. A message that is not a
//! JSON object matches no JSON pattern; each message is parsed at most once per match.

use serde_json::Value as Json;

use super::scan::Scanner;
use super::value::{Condition, Operand};
use super::{PatternError, MAX_DEPTH};

/// A parsed JSON pattern.
#[derive(Debug)]
pub(super) struct JsonPattern {
    expr: Expr,
}

#[derive(Debug)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Test(Selector, Test),
}

#[derive(Debug)]
enum Test {
    Compare(Condition),
    IsTrue,
    IsFalse,
    IsNull,
    NotExists,
}

#[derive(Debug)]
struct Selector {
    steps: Vec<Step>,
}

#[derive(Debug)]
enum Step {
    Key(String),
    Index(usize),
}

impl Selector {
    fn resolve<'j>(&self, root: &'j Json) -> Option<&'j Json> {
        self.steps.iter().try_fold(root, |node, step| match step {
            Step::Key(k) => node.as_object()?.get(k),
            Step::Index(i) => node.as_array()?.get(*i),
        })
    }
}

impl JsonPattern {
    /// Parses the whole of `s`, which starts at `{`.
    pub(super) fn parse(s: &mut Scanner<'_>) -> Result<JsonPattern, PatternError> {
        let open = s.here();
        if !s.eat("{") {
            return Err(s.unexpected("'{'"));
        }
        let mut regexes = 0;
        let expr = parse_or(s, 0, &mut regexes)?;
        s.skip_ws();
        if s.peek() == Some(')') {
            return Err(PatternError::UnbalancedParentheses { position: s.here() });
        }
        if !s.eat("}") {
            if s.at_end() {
                return Err(PatternError::UnbalancedBrackets {
                    open: '{',
                    close: '}',
                    position: open,
                });
            }
            return Err(s.unexpected("'&&', '||' or '}'"));
        }
        s.skip_ws();
        if !s.at_end() {
            return Err(s.unexpected("end of pattern after '}'"));
        }
        Ok(JsonPattern { expr })
    }

    pub(super) fn matches(&self, message: &str) -> bool {
        if !message.trim_start().starts_with('{') {
            return false;
        }
        match serde_json::from_str::<Json>(message) {
            Ok(root @ Json::Object(_)) => self.expr.eval(&root),
            _ => false,
        }
    }
}

impl Expr {
    fn eval(&self, root: &Json) -> bool {
        match self {
            Expr::And(all) => all.iter().all(|e| e.eval(root)),
            Expr::Or(any) => any.iter().any(|e| e.eval(root)),
            Expr::Test(selector, test) => {
                let node = selector.resolve(root);
                match test {
                    Test::Compare(condition) => match node {
                        Some(Json::String(s)) => condition.holds(Operand::Text(s)),
                        Some(Json::Number(n)) => condition.holds(Operand::Number(n)),
                        _ => false,
                    },
                    Test::IsTrue => node == Some(&Json::Bool(true)),
                    Test::IsFalse => node == Some(&Json::Bool(false)),
                    Test::IsNull => node == Some(&Json::Null),
                    Test::NotExists => node.is_none(),
                }
            }
        }
    }
}

fn parse_or(s: &mut Scanner<'_>, depth: usize, regexes: &mut usize) -> Result<Expr, PatternError> {
    let mut any = vec![parse_and(s, depth, regexes)?];
    loop {
        s.skip_ws();
        if !s.eat("||") {
            break;
        }
        any.push(parse_and(s, depth, regexes)?);
    }
    Ok(if any.len() == 1 {
        any.remove(0)
    } else {
        Expr::Or(any)
    })
}

fn parse_and(s: &mut Scanner<'_>, depth: usize, regexes: &mut usize) -> Result<Expr, PatternError> {
    let mut all = vec![parse_primary(s, depth, regexes)?];
    loop {
        s.skip_ws();
        if !s.eat("&&") {
            break;
        }
        all.push(parse_primary(s, depth, regexes)?);
    }
    Ok(if all.len() == 1 {
        all.remove(0)
    } else {
        Expr::And(all)
    })
}

fn parse_primary(
    s: &mut Scanner<'_>,
    depth: usize,
    regexes: &mut usize,
) -> Result<Expr, PatternError> {
    s.skip_ws();
    match s.peek() {
        Some('(') => {
            let open = s.here();
            if depth + 1 > MAX_DEPTH {
                return Err(PatternError::TooDeep {
                    max: MAX_DEPTH,
                    position: open,
                });
            }
            s.bump();
            let inner = parse_or(s, depth + 1, regexes)?;
            s.skip_ws();
            if !s.eat(")") {
                return Err(PatternError::UnbalancedParentheses { position: open });
            }
            Ok(inner)
        }
        Some('$') => {
            let selector = parse_selector(s)?;
            s.skip_ws();
            let test = if eat_keyword(s, "IS") {
                s.skip_ws();
                if eat_keyword(s, "TRUE") {
                    Test::IsTrue
                } else if eat_keyword(s, "FALSE") {
                    Test::IsFalse
                } else if eat_keyword(s, "NULL") {
                    Test::IsNull
                } else {
                    return Err(s.unexpected("TRUE, FALSE or NULL after IS"));
                }
            } else if eat_keyword(s, "NOT") {
                s.skip_ws();
                if !eat_keyword(s, "EXISTS") {
                    return Err(s.unexpected("EXISTS after NOT"));
                }
                Test::NotExists
            } else {
                Test::Compare(Condition::read(s, regexes)?)
            };
            Ok(Expr::Test(selector, test))
        }
        Some(')') => Err(PatternError::UnbalancedParentheses { position: s.here() }),
        _ => Err(s.unexpected("a selector such as $.field, or '('")),
    }
}

/// Consumes `word` (any case) if it is at the cursor as a whole word.
fn eat_keyword(s: &mut Scanner<'_>, word: &str) -> bool {
    let rest = s.rest();
    let Some(head) = rest.get(..word.len()) else {
        return false;
    };
    let whole = !rest[word.len()..]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_');
    if head.eq_ignore_ascii_case(word) && whole {
        s.eat(head)
    } else {
        false
    }
}

fn selector_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

fn parse_selector(s: &mut Scanner<'_>) -> Result<Selector, PatternError> {
    let start = s.offset();
    let position = s.here();
    s.bump(); // `$`
    let mut steps = Vec::new();
    let invalid = |s: &mut Scanner<'_>, reason: &str| {
        let tail = s.take_while(|c| !c.is_whitespace() && !matches!(c, '=' | '!' | '<' | '>'));
        PatternError::InvalidSelector {
            selector: format!("{}{tail}", s.slice(start, s.offset() - tail.len())),
            reason: reason.to_owned(),
            position,
        }
    };
    loop {
        match s.peek() {
            Some('.') => {
                s.bump();
                let name = s.take_while(selector_name_char);
                if name.is_empty() {
                    let reason = if s.peek() == Some('*') {
                        "wildcard selectors such as $.* are not supported"
                    } else {
                        "a '.' must be followed by a property name of letters, digits, '_' or '-'"
                    };
                    return Err(invalid(s, reason));
                }
                steps.push(Step::Key(name.to_owned()));
            }
            Some('[') => {
                if steps.is_empty() {
                    return Err(invalid(s, "an array index must follow a property"));
                }
                s.bump();
                let digits = s.take_while(|c| c.is_ascii_digit());
                let index = digits.parse::<usize>().ok();
                match index {
                    Some(i) if s.eat("]") => steps.push(Step::Index(i)),
                    _ => {
                        return Err(invalid(
                            s,
                            "an array index is a non-negative integer in brackets, such as [0]",
                        ))
                    }
                }
            }
            _ => break,
        }
    }
    if steps.is_empty() {
        return Err(invalid(
            s,
            "a selector starts with '$.' and a property name",
        ));
    }
    Ok(Selector { steps })
}
