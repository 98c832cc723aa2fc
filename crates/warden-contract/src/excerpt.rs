//! Short, escaped excerpts of text and JSON values for messages.
//!
//! A message about a payload must never carry the payload back: a 1 MB string that fails a
//! schema would otherwise be echoed into the HTTP response and every log line that records it.
//! Everything a message quotes from outside (a value, a property name, a method, a path) goes
//! through [`excerpt`] or [`value_excerpt`]: at most [`EXCERPT_CHARS`] printable ASCII
//! characters, every control or non-ASCII character written as a `\u{..}` escape, and `…`
//! appended when something was cut.

use std::fmt::Write as _;

use serde_json::Value;

/// How many characters an excerpt keeps at most, escapes included, before the `…`.
pub const EXCERPT_CHARS: usize = 32;

/// The ellipsis appended to an excerpt that was cut.
const ELLIPSIS: char = '…';

/// An escaped excerpt of `text`: at most [`EXCERPT_CHARS`] characters, `…` appended when cut.
///
/// Printable ASCII is kept as is except `\` and `"`, which are escaped with a backslash so that
/// an excerpt placed between quotes stays unambiguous; every other character becomes `\u{..}`.
pub(crate) fn excerpt(text: &str) -> String {
    clip_chars(text.chars(), EXCERPT_CHARS, true)
}

/// Like [`excerpt`] but keeps up to `max` characters: for the owner's own contract document,
/// whose error messages may quote a little more of it.
pub(crate) fn clip(text: &str, max: usize) -> String {
    clip_chars(text.chars(), max, true)
}

/// The excerpt of `chars`, escaped as [`excerpt`] describes, cut to `max` characters.
///
/// `escape_quoting` chooses whether `\` and `"` are escaped: yes for raw text, no for JSON text,
/// where the serializer has already escaped them.
fn clip_chars(chars: impl Iterator<Item = char>, max: usize, escape_quoting: bool) -> String {
    let mut out = String::new();
    let mut piece = String::new();
    for c in chars {
        piece.clear();
        match c {
            '\\' | '"' if escape_quoting => {
                piece.push('\\');
                piece.push(c);
            }
            ' '..='~' => piece.push(c),
            _ => {
                // Writing into a String cannot fail.
                let _ = write!(piece, "\\u{{{:x}}}", u32::from(c));
            }
        }
        // Every piece is ASCII, so its byte length is its character count.
        if out.len() + piece.len() > max {
            out.push(ELLIPSIS);
            return out;
        }
        out.push_str(&piece);
    }
    out
}

/// The excerpt of one JSON Pointer segment: `~` and `/` are escaped as RFC 6901 says
/// (`~0`, `~1`), then the result is cut and escaped as [`excerpt`] does.
pub(crate) fn pointer_segment(key: &str) -> String {
    let chars = key.chars().flat_map(|c| {
        let (pair, len) = match c {
            '~' => (['~', '0'], 2),
            '/' => (['~', '1'], 2),
            _ => ([c, c], 1),
        };
        pair.into_iter().take(len)
    });
    clip_chars(chars, EXCERPT_CHARS, true)
}

/// The excerpt of a JSON value as compact JSON text: `7`, `"abc"`, `{"a":[1,2]}`, cut at
/// [`EXCERPT_CHARS`] characters with `…`.
///
/// Only as much of the value is serialized as the excerpt needs, so a huge array costs no
/// more than a small one.
pub(crate) fn value_excerpt(value: &Value) -> String {
    let mut sink = BoundedSink::default();
    // The sink refuses writes past its bound, which ends serialization early with an error:
    // that error only means "enough was written".
    let _ = serde_json::to_writer(&mut sink, value);
    let text = match std::str::from_utf8(&sink.buf) {
        Ok(text) => text,
        Err(e) => {
            // The bound may fall inside a multi-byte character: keep the whole ones before it.
            let valid = sink.buf.get(..e.valid_up_to()).unwrap_or_default();
            std::str::from_utf8(valid).unwrap_or_default()
        }
    };
    let mut out = clip_chars(text.chars(), EXCERPT_CHARS, false);
    if sink.full && !out.ends_with(ELLIPSIS) {
        out.push(ELLIPSIS);
    }
    out
}

/// A writer that keeps the first bytes written to it and then refuses more.
#[derive(Default)]
struct BoundedSink {
    buf: Vec<u8>,
    full: bool,
}

/// Enough bytes for [`EXCERPT_CHARS`] characters plus one, each up to 4 bytes in UTF-8.
const SINK_BYTES: usize = (EXCERPT_CHARS + 1) * 4;

impl std::io::Write for BoundedSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = SINK_BYTES.saturating_sub(self.buf.len());
        if room == 0 {
            self.full = true;
            return Err(std::io::Error::other("excerpt is long enough"));
        }
        let n = room.min(data.len());
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if n < data.len() {
            self.full = true;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// The body of an excerpt, without the trailing ellipsis.
    fn body(s: &str) -> &str {
        s.strip_suffix(ELLIPSIS).unwrap_or(s)
    }

    #[test]
    fn short_text_is_kept() {
        assert_eq!(excerpt("x-api-key"), "x-api-key");
        assert_eq!(excerpt(""), "");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        let e = excerpt(&"a".repeat(1_000_000));
        assert_eq!(e, format!("{}…", "a".repeat(32)));
    }

    #[test]
    fn control_and_non_ascii_are_escaped() {
        assert_eq!(
            excerpt("a\nb\u{0}é\u{1F600}"),
            "a\\u{a}b\\u{0}\\u{e9}\\u{1f600}"
        );
        assert_eq!(excerpt("say \"hi\" \\"), "say \\\"hi\\\" \\\\");
    }

    #[test]
    fn an_escape_that_does_not_fit_is_cut_whole() {
        let text = format!("{}é", "a".repeat(30));
        assert_eq!(excerpt(&text), format!("{}…", "a".repeat(30)));
    }

    #[test]
    fn pointer_segments_escape_tilde_and_slash() {
        assert_eq!(pointer_segment("a/b~c"), "a~1b~0c");
        assert_eq!(pointer_segment("plain"), "plain");
        assert_eq!(pointer_segment(""), "");
        assert_eq!(pointer_segment("nul\0"), "nul\\u{0}");
    }

    #[test]
    fn values_are_compact_json() {
        assert_eq!(value_excerpt(&json!(7)), "7");
        assert_eq!(value_excerpt(&json!("abc")), "\"abc\"");
        assert_eq!(value_excerpt(&json!({"a": [1, 2]})), "{\"a\":[1,2]}");
        assert_eq!(value_excerpt(&json!(null)), "null");
        assert_eq!(value_excerpt(&json!("a\nb")), "\"a\\nb\"");
    }

    #[test]
    fn huge_values_are_cut() {
        let big = json!("x".repeat(1 << 20));
        let e = value_excerpt(&big);
        assert_eq!(e, format!("\"{}…", "x".repeat(31)));
        let arr = Value::Array(vec![json!(12345); 100_000]);
        let e = value_excerpt(&arr);
        assert!(e.ends_with('…'));
        assert!(body(&e).len() <= EXCERPT_CHARS);
    }

    #[test]
    fn a_value_exactly_at_the_bound_has_no_ellipsis() {
        let s = "y".repeat(EXCERPT_CHARS - 2);
        assert_eq!(value_excerpt(&json!(s)), format!("\"{s}\""));
    }

    proptest! {
        #[test]
        fn excerpts_are_short_and_printable(text in any::<String>()) {
            for e in [excerpt(&text), pointer_segment(&text), value_excerpt(&Value::String(text.clone()))] {
                let b = body(&e);
                prop_assert!(b.chars().count() <= EXCERPT_CHARS, "{e:?}");
                prop_assert!(b.chars().all(|c| (' '..='~').contains(&c)), "{e:?}");
                prop_assert!(!e.chars().any(char::is_control), "{e:?}");
                prop_assert_eq!(e.matches(ELLIPSIS).count(), usize::from(e.ends_with(ELLIPSIS)));
            }
        }

        #[test]
        fn short_ascii_text_is_unchanged(text in "[a-zA-Z0-9 ._-]{0,32}") {
            prop_assert_eq!(excerpt(&text), text);
        }
    }
}
