//! Space-delimited patterns: `[ip, user, ..., status_code = 4*, bytes > 1000]`.
//!
//! The event is split into fields at runs of whitespace; text between double quotes, or
//! between `[` and `]`, is one field (without its delimiters), so
//! `"GET /index.html HTTP/1.0"` and `[10/Oct/2000:13:25:15 -0700]` are one field each.
//!
//! The pattern lists the fields, separated by commas: a name (letters, digits, `_`), an
//! empty place (an unnamed field), or `...`, which stands for any number of fields,
//! including none. A name may carry a condition on its own field: `status = 4*`,
//! `bytes > 1000`, combined with `&&` and `||` (and parentheses) as in
//! `status = 4* && status != 403` or `w1 = ERROR || w1 = WARN`. Without `...` the event
//! must have exactly as many fields as the pattern.
//!
//! Matching is linear in the number of fields for each run of places between two `...`
//! (a leftmost-first search, which is exact because each place tests one field alone).

use super::scan::Scanner;
use super::value::Condition;
use super::value::Operand;
use super::{PatternError, MAX_DEPTH};

/// A parsed space-delimited pattern.
#[derive(Debug)]
pub(super) struct Delimited {
    /// Runs of places between ellipses.
    segments: Vec<Vec<Place>>,
    /// The pattern starts with `...`.
    open_start: bool,
    /// The pattern ends with `...`.
    open_end: bool,
}

/// One place: a field, with or without a condition.
#[derive(Debug)]
struct Place {
    condition: Option<Cond>,
}

#[derive(Debug)]
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Test(Condition),
}

impl Cond {
    fn holds(&self, field: &str) -> bool {
        match self {
            Cond::And(all) => all.iter().all(|c| c.holds(field)),
            Cond::Or(any) => any.iter().any(|c| c.holds(field)),
            Cond::Test(t) => t.holds(Operand::Text(field)),
        }
    }
}

impl Place {
    fn holds(&self, field: &str) -> bool {
        self.condition.as_ref().is_none_or(|c| c.holds(field))
    }
}

fn name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Delimited {
    /// Parses the whole of `s`, which starts at `[`.
    pub(super) fn parse(s: &mut Scanner<'_>) -> Result<Delimited, PatternError> {
        let open = s.here();
        if !s.eat("[") {
            return Err(s.unexpected("'['"));
        }
        s.skip_ws();
        if s.peek() == Some(']') {
            return Err(s.unexpected("a field name or '...'"));
        }
        let mut regexes = 0;
        let mut segments: Vec<Vec<Place>> = vec![Vec::new()];
        let mut open_start = false;
        let mut open_end;
        let mut index = 0usize;
        loop {
            s.skip_ws();
            let is_ellipsis = s.eat("...") || s.eat("\u{2026}");
            if is_ellipsis {
                if index == 0 {
                    open_start = true;
                }
                open_end = true;
                if segments.last().is_some_and(|seg| !seg.is_empty()) {
                    segments.push(Vec::new());
                }
            } else {
                open_end = false;
                let place = parse_place(s, &mut regexes)?;
                if let Some(seg) = segments.last_mut() {
                    seg.push(place);
                }
            }
            index += 1;
            s.skip_ws();
            if s.eat(",") {
                continue;
            }
            if s.eat("]") {
                break;
            }
            if s.at_end() {
                return Err(PatternError::UnbalancedBrackets {
                    open: '[',
                    close: ']',
                    position: open,
                });
            }
            return Err(s.unexpected("',' or ']'"));
        }
        s.skip_ws();
        if !s.at_end() {
            return Err(s.unexpected("end of pattern after ']'"));
        }
        segments.retain(|seg| !seg.is_empty());
        Ok(Delimited {
            segments,
            open_start,
            open_end,
        })
    }

    pub(super) fn matches(&self, message: &str) -> bool {
        let fields = split_fields(message);
        let n = self.segments.len();
        if n == 0 {
            // Only ellipses (`[...]`), or an empty first place.
            return self.open_start || fields.is_empty();
        }
        let mut cursor = 0usize;
        for (k, seg) in self.segments.iter().enumerate() {
            let anchored_start = k == 0 && !self.open_start;
            let anchored_end = k == n - 1 && !self.open_end;
            let fits_at = |at: usize| {
                fields
                    .get(at..at + seg.len())
                    .is_some_and(|window| seg.iter().zip(window).all(|(p, f)| p.holds(f)))
            };
            if anchored_start && anchored_end {
                return fields.len() == seg.len() && fits_at(0);
            }
            if anchored_end {
                let Some(at) = fields.len().checked_sub(seg.len()) else {
                    return false;
                };
                return at >= cursor && fits_at(at);
            }
            if anchored_start {
                if !fits_at(0) {
                    return false;
                }
                cursor = seg.len();
                continue;
            }
            let Some(last_start) = fields.len().checked_sub(seg.len()) else {
                return false;
            };
            match (cursor..=last_start).find(|at| fits_at(*at)) {
                Some(at) => cursor = at + seg.len(),
                None => return false,
            }
        }
        true
    }
}

/// Reads one place: empty, a name, or a name with a condition.
fn parse_place(s: &mut Scanner<'_>, regexes: &mut usize) -> Result<Place, PatternError> {
    if matches!(s.peek(), Some(',' | ']')) {
        return Ok(Place { condition: None });
    }
    let start = s.offset();
    // A condition may open with parentheses; the place's name is its first field name.
    s.take_while(|c| c == '(' || c.is_whitespace());
    let parenthesized = s.offset() != start;
    let name = s.take_while(name_char);
    if name.is_empty() {
        return Err(s.unexpected("a field name, '...', ',' or ']'"));
    }
    s.skip_ws();
    if !parenthesized && matches!(s.peek(), Some(',' | ']') | None) {
        return Ok(Place { condition: None });
    }
    s.rewind(start);
    let condition = parse_or(s, name, 0, regexes)?;
    Ok(Place {
        condition: Some(condition),
    })
}

fn parse_or(
    s: &mut Scanner<'_>,
    slot: &str,
    depth: usize,
    regexes: &mut usize,
) -> Result<Cond, PatternError> {
    let mut any = vec![parse_and(s, slot, depth, regexes)?];
    loop {
        s.skip_ws();
        if !s.eat("||") {
            break;
        }
        any.push(parse_and(s, slot, depth, regexes)?);
    }
    Ok(if any.len() == 1 {
        any.remove(0)
    } else {
        Cond::Or(any)
    })
}

fn parse_and(
    s: &mut Scanner<'_>,
    slot: &str,
    depth: usize,
    regexes: &mut usize,
) -> Result<Cond, PatternError> {
    let mut all = vec![parse_atom(s, slot, depth, regexes)?];
    loop {
        s.skip_ws();
        if !s.eat("&&") {
            break;
        }
        all.push(parse_atom(s, slot, depth, regexes)?);
    }
    Ok(if all.len() == 1 {
        all.remove(0)
    } else {
        Cond::And(all)
    })
}

fn parse_atom(
    s: &mut Scanner<'_>,
    slot: &str,
    depth: usize,
    regexes: &mut usize,
) -> Result<Cond, PatternError> {
    s.skip_ws();
    if s.peek() == Some('(') {
        let open = s.here();
        if depth + 1 > MAX_DEPTH {
            return Err(PatternError::TooDeep {
                max: MAX_DEPTH,
                position: open,
            });
        }
        s.bump();
        let inner = parse_or(s, slot, depth + 1, regexes)?;
        s.skip_ws();
        if !s.eat(")") {
            return Err(PatternError::UnbalancedParentheses { position: open });
        }
        return Ok(inner);
    }
    if s.peek() == Some(')') {
        return Err(PatternError::UnbalancedParentheses { position: s.here() });
    }
    let position = s.here();
    let field = s.take_while(name_char);
    if field.is_empty() {
        return Err(s.unexpected("a field name"));
    }
    if field != slot {
        return Err(PatternError::ForeignField {
            slot: slot.to_owned(),
            field: field.to_owned(),
            position,
        });
    }
    Ok(Cond::Test(Condition::read(s, regexes)?))
}

/// Splits an event into fields (see the module's documentation).
fn split_fields(message: &str) -> Vec<&str> {
    let bytes = message.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let Some(&first) = bytes.get(i) else {
            break;
        };
        // Every delimiter is ASCII, so each cut below is on a character boundary.
        let (start, end, next) = match first {
            b'"' | b'[' => {
                let close = if first == b'"' { b'"' } else { b']' };
                match memchr::memchr(close, &bytes[i + 1..]) {
                    Some(len) => (i + 1, i + 1 + len, i + 2 + len),
                    None => (i + 1, bytes.len(), bytes.len()),
                }
            }
            _ => {
                let len = bytes[i..]
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .unwrap_or(bytes.len() - i);
                (i, i + len, i + len)
            }
        };
        fields.push(message.get(start..end).unwrap_or(""));
        i = next;
    }
    fields
}

#[cfg(test)]
pub(super) fn split_for_tests(message: &str) -> Vec<&str> {
    split_fields(message)
}
