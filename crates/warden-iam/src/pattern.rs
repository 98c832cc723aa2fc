//! Pre-compiled IAM string patterns: `*` and `?` wildcards and `${...}` policy variables.
//!
//! Patterns are compiled once at parse time into a token list so that evaluation is a
//! linear scan with single-star backtracking and never allocates.

use crate::eval::Context;

/// How a policy string is to be read when compiled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (otherwise they are literal characters).
    pub wildcards: bool,
    /// `${key}` policy variables are substituted (only under Version 2012-10-17).
    pub variables: bool,
    /// Compare case-insensitively (actions, `StringEqualsIgnoreCase`).
    pub case_insensitive: bool,
}

/// A reference to a request-context value used as a policy variable.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Variable {
    /// Lowercased context key: condition keys are case-insensitive.
    pub key: Box<str>,
    /// The value from `${key, 'default'}` used when the key is absent.
    pub default: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// Literal text; lowercased at compile time when the pattern is case-insensitive.
    Lit(Box<str>),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
    Var(Variable),
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pattern {
    toks: Box<[Tok]>,
    case_insensitive: bool,
    has_vars: bool,
}

impl Pattern {
    /// Compiles `text` under `syntax`. Compilation cannot fail: a `${` without a closing
    /// brace, or with an empty key, is literal text (as IAM treats it).
    pub fn compile(text: &str, syntax: Syntax) -> Pattern {
        let mut toks: Vec<Tok> = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        let push_lit = |lit: &mut String, toks: &mut Vec<Tok>| {
            if !lit.is_empty() {
                let s = if syntax.case_insensitive {
                    lit.to_lowercase()
                } else {
                    lit.clone()
                };
                toks.push(Tok::Lit(s.into_boxed_str()));
                lit.clear();
            }
        };
        while let Some(c) = rest.chars().next() {
            if syntax.wildcards && (c == '*' || c == '?') {
                push_lit(&mut lit, &mut toks);
                // Consecutive stars are one star; keeps backtracking linear.
                if c == '*' {
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                } else {
                    toks.push(Tok::One);
                }
                rest = &rest[1..];
                continue;
            }
            if syntax.variables && rest.starts_with("${") {
                if let Some(end) = rest[2..].find('}') {
                    let inner = &rest[2..2 + end];
                    match inner {
                        "*" | "?" | "$" => lit.push_str(inner),
                        _ => match parse_variable(inner) {
                            Some(var) => {
                                push_lit(&mut lit, &mut toks);
                                toks.push(Tok::Var(var));
                            }
                            None => lit.push_str(&rest[..end + 3]),
                        },
                    }
                    rest = &rest[end + 3..];
                    continue;
                }
            }
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        push_lit(&mut lit, &mut toks);
        let has_vars = toks.iter().any(|t| matches!(t, Tok::Var(_)));
        Pattern {
            toks: toks.into_boxed_slice(),
            case_insensitive: syntax.case_insensitive,
            has_vars,
        }
    }

    /// Whether the pattern holds a policy variable, whose value comes from the context.
    pub fn has_variables(&self) -> bool {
        self.has_vars
    }

    /// Matches `text`, resolving variables from `ctx`. A variable that cannot be resolved
    /// (absent without default, or multi-valued) makes the pattern match nothing.
    pub fn matches(&self, text: &str, ctx: &Context<'_>) -> bool {
        self.matches_opt(text, ctx) == Some(true)
    }

    /// Like [`Pattern::matches`], but `None` when a variable cannot be resolved, so that
    /// negated operators can tell "different" from "not comparable".
    pub fn matches_opt(&self, text: &str, ctx: &Context<'_>) -> Option<bool> {
        if self.has_vars {
            // Resolve every variable up front so the matcher never meets a missing one.
            for t in self.toks.iter() {
                if let Tok::Var(v) = t {
                    ctx.variable(v)?;
                }
            }
        }
        // Fast paths for the shapes most policies use: `*`, `literal`, `literal*`.
        let ci = self.case_insensitive;
        Some(match &*self.toks {
            [Tok::Star] => true,
            [Tok::Lit(l)] => l.len() == text.len() && prefix_len(text, 0, l, ci).is_some(),
            [Tok::Lit(l), Tok::Star] => prefix_len(text, 0, l, ci).is_some(),
            toks => glob(toks, text, ci, ctx),
        })
    }
}

fn parse_variable(inner: &str) -> Option<Variable> {
    let (key, default) = match inner.split_once(',') {
        Some((k, d)) => {
            let d = d.trim();
            let d = d.strip_prefix('\'')?.strip_suffix('\'')?;
            (k.trim(), Some(d.into()))
        }
        None => (inner.trim(), None),
    };
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '$' || c == '{') {
        return None;
    }
    Some(Variable {
        key: key.to_ascii_lowercase().into_boxed_str(),
        default,
    })
}

/// Length in bytes of the UTF-8 character starting at byte `pos` of `s`.
fn char_len_at(s: &str, pos: usize) -> usize {
    match s.as_bytes()[pos] {
        b if b < 0x80 => 1,
        b if b >= 0xF0 => 4,
        b if b >= 0xE0 => 3,
        _ => 2,
    }
}

/// If `text[pos..]` starts with `lit`, returns the number of bytes of `text` consumed.
fn prefix_len(text: &str, pos: usize, lit: &str, ci: bool) -> Option<usize> {
    let rest = &text[pos..];
    if !ci {
        return rest.starts_with(lit).then_some(lit.len());
    }
    if lit.is_ascii() {
        let n = lit.len();
        return (rest.len() >= n && rest.as_bytes()[..n].eq_ignore_ascii_case(lit.as_bytes()))
            .then_some(n);
    }
    // Unicode case folding: walk `rest` char by char, lowercasing each.
    let mut want = lit.chars().peekable();
    let mut consumed = 0;
    for c in rest.chars() {
        if want.peek().is_none() {
            break;
        }
        for lc in c.to_lowercase() {
            if want.next() != Some(lc) {
                return None;
            }
        }
        consumed += c.len_utf8();
    }
    want.peek().is_none().then_some(consumed)
}

/// Wildcard match with backtracking to the most recent star only, which is complete for
/// patterns whose only variable-length token is `*`.
fn glob(toks: &[Tok], text: &str, ci: bool, ctx: &Context<'_>) -> bool {
    let len = text.len();
    let mut ti = 0;
    let mut pos = 0;
    let mut star: Option<(usize, usize)> = None;
    loop {
        if ti < toks.len() {
            let step = match &toks[ti] {
                Tok::Star => {
                    star = Some((ti + 1, pos));
                    ti += 1;
                    continue;
                }
                Tok::One => (pos < len).then(|| char_len_at(text, pos)),
                Tok::Lit(l) => prefix_len(text, pos, l, ci),
                // Substituted values are literal text: a `*` in a user name is not a wildcard.
                Tok::Var(v) => ctx
                    .variable(v)
                    .and_then(|value| prefix_len_var(text, pos, value, ci)),
            };
            if let Some(n) = step {
                pos += n;
                ti += 1;
                continue;
            }
        } else if pos == len {
            return true;
        }
        match star {
            Some((sti, sp)) if sp < len => {
                let np = sp + char_len_at(text, sp);
                star = Some((sti, np));
                ti = sti;
                pos = np;
            }
            _ => return false,
        }
    }
}

fn prefix_len_var(text: &str, pos: usize, value: &str, ci: bool) -> Option<usize> {
    if !ci {
        return prefix_len(text, pos, value, false);
    }
    // Variable values are not pre-lowercased; compare both sides folded.
    let rest = &text[pos..];
    let mut a = rest.char_indices();
    let mut consumed = 0;
    for vc in value.chars() {
        let (i, tc) = a.next()?;
        if !tc.to_lowercase().eq(vc.to_lowercase()) {
            return None;
        }
        consumed = i + tc.len_utf8();
    }
    Some(consumed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const WILD: Syntax = Syntax {
        wildcards: true,
        variables: true,
        case_insensitive: false,
    };

    fn m(p: &str, t: &str) -> bool {
        let ctx_map = HashMap::new();
        let ctx = Context::new(&ctx_map);
        Pattern::compile(p, WILD).matches(t, &ctx)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("a*c", "abbbc"));
        assert!(m("a*c", "ac"));
        assert!(!m("a*c", "acb"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(m("?é?", "aéb"));
        assert!(m("a**b", "ab"));
    }

    #[test]
    fn escapes_and_defaults() {
        let mut ctx_map = HashMap::new();
        ctx_map.insert(
            "aws:username".to_string(),
            crate::ContextValue::String("bob*".into()),
        );
        let ctx = Context::new(&ctx_map);
        let p = Pattern::compile("home/${aws:username}/${*}", WILD);
        assert!(p.matches("home/bob*/*", &ctx));
        assert!(!p.matches("home/bobby/*", &ctx));
        let p = Pattern::compile("${aws:missing, 'dflt'}", WILD);
        assert!(p.matches("dflt", &ctx));
        let p = Pattern::compile("${aws:missing}", WILD);
        assert!(!p.matches("", &ctx));
        let p = Pattern::compile("${AWS:UserName}", WILD);
        assert!(p.matches("bob*", &ctx));
    }

    #[test]
    fn case_insensitive() {
        let ci = Syntax {
            wildcards: true,
            variables: false,
            case_insensitive: true,
        };
        let ctx_map = HashMap::new();
        let ctx = Context::new(&ctx_map);
        assert!(Pattern::compile("Lambda:Get*", ci).matches("lambda:getFunction", &ctx));
        assert!(Pattern::compile("ÄB", ci).matches("äb", &ctx));
    }
}
