//! Term patterns for unstructured events: `ERROR Exception`, `?ERROR ?WARN`,
//! `ERROR -Exiting`, `"quoted phrase"`.
//!
//! Terms are separated by whitespace. A term is a run of letters, digits and `_`, or a
//! double-quoted phrase (needed for any other character). Matching is a case-sensitive
//! substring search: `ERROR` matches `ERRORCODE: -1`. An event matches when it contains
//! every plain term, at least one `?` term (if there are any), and no `-` term. Each term's
//! searcher is built once, when the pattern is parsed.

use memchr::memmem::Finder;

use super::scan::Scanner;
use super::PatternError;

/// A parsed term pattern.
#[derive(Debug)]
pub(super) struct Terms {
    required: Vec<Finder<'static>>,
    any: Vec<Finder<'static>>,
    excluded: Vec<Finder<'static>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Required,
    Any,
    Excluded,
}

fn plain_term_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Terms {
    /// Parses the whole of `s` as terms.
    pub(super) fn parse(s: &mut Scanner<'_>) -> Result<Terms, PatternError> {
        let mut terms = Terms {
            required: Vec::new(),
            any: Vec::new(),
            excluded: Vec::new(),
        };
        loop {
            s.skip_ws();
            if s.at_end() {
                return Ok(terms);
            }
            let role = if s.eat("?") {
                Role::Any
            } else if s.eat("-") {
                Role::Excluded
            } else {
                Role::Required
            };
            if role != Role::Required {
                // `"ERROR" - "Exiting"`: a space may follow the sign.
                s.skip_ws();
            }
            let position = s.here();
            let text = match s.peek() {
                None => return Err(s.unexpected("a term after '?' or '-'")),
                Some('"') => {
                    let text = s.quoted()?;
                    if s.peek().is_some_and(|c| !c.is_whitespace()) {
                        return Err(s.unexpected("whitespace after a quoted term"));
                    }
                    text
                }
                Some('%') => {
                    return Err(PatternError::Unsupported {
                        what: "a regular expression (%...%) must be the whole filter pattern"
                            .to_owned(),
                        position,
                    })
                }
                Some(_) => {
                    let word = s.take_while(|c| !c.is_whitespace());
                    if !word.chars().all(plain_term_char) {
                        return Err(PatternError::InvalidTermCharacters {
                            term: word.to_owned(),
                            position,
                        });
                    }
                    word.to_owned()
                }
            };
            let finder = Finder::new(text.as_bytes()).into_owned();
            match role {
                Role::Required => terms.required.push(finder),
                Role::Any => terms.any.push(finder),
                Role::Excluded => terms.excluded.push(finder),
            }
        }
    }

    pub(super) fn matches(&self, message: &str) -> bool {
        let haystack = message.as_bytes();
        self.required.iter().all(|f| f.find(haystack).is_some())
            && (self.any.is_empty() || self.any.iter().any(|f| f.find(haystack).is_some()))
            && !self.excluded.iter().any(|f| f.find(haystack).is_some())
    }
}
