//! Compiling regular expressions from untrusted patterns and queries.
//!
//! The `regex` crate matches in time linear in the input (no backtracking), so what is
//! left to bound is the size of the compiled program and of the lazy DFA's cache, and the
//! nesting depth of the expression's syntax tree.

use regex::{Regex, RegexBuilder};

/// Largest compiled program, in bytes.
const SIZE_LIMIT: usize = 1 << 20;
/// Largest lazy-DFA cache, in bytes, per regex.
const DFA_SIZE_LIMIT: usize = 2 << 20;
/// Deepest nesting of groups and repetitions.
const NEST_LIMIT: u32 = 32;

/// Compiles `pattern` with the limits above.
pub(crate) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_or_deep_expressions_are_refused() {
        assert!(compile("a{1000}{1000}").is_err());
        assert!(compile(&format!("{}a{}", "(".repeat(100), ")".repeat(100))).is_err());
        assert!(compile("[hc]at$").is_ok());
    }
}
