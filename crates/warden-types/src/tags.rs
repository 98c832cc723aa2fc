//! A function's tags: free-form key-value pairs that infrastructure tools write and read,
//! within Lambda's limits. Constructing [`Tags`] checks every rule, so a stored or
//! returned set of tags is always one Lambda would accept.

use std::collections::BTreeMap;

/// Most tags one function may carry.
pub const MAX_TAGS: usize = 50;
/// Longest tag key, in characters.
pub const TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in characters.
pub const TAG_VALUE_CHARS: usize = 256;
/// Tag keys starting with this (in any case) are reserved for AWS.
pub const RESERVED_TAG_PREFIX: &str = "aws:";

/// Why a set of tags was refused; the message names the tag and is shown to API callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// More tags than a function may have (how many it would have).
    #[error("a function can have at most {MAX_TAGS} tags; this request would leave it {0}")]
    TooMany(usize),
    /// An invalid key.
    #[error("tag key `{0}` must be 1-128 characters of letters, digits, spaces and `_.:/=+-@`")]
    Key(String),
    /// An invalid value (its key).
    #[error("the value of tag `{0}` must be at most 256 characters of letters, digits, spaces and `_.:/=+-@`")]
    Value(String),
    /// A key in the `aws:` namespace.
    #[error("tag key `{0}` starts with `aws:`, which is reserved for AWS")]
    Reserved(String),
}

/// Lambda's tag pattern: `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`. Letters and numbers as Unicode
/// defines them; separators are the space characters (not tabs or line breaks, which are
/// control characters).
fn tag_char(c: char) -> bool {
    c.is_alphanumeric()
        || "_.:/=+-@".contains(c)
        || matches!(
            c,
            ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
        )
}

/// Checks one tag key as Lambda does.
pub fn check_key(key: &str) -> Result<(), TagError> {
    let len = key.chars().count();
    if !(1..=TAG_KEY_CHARS).contains(&len) || !key.chars().all(tag_char) {
        return Err(TagError::Key(shown(key)));
    }
    if key
        .get(..RESERVED_TAG_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_TAG_PREFIX))
    {
        return Err(TagError::Reserved(shown(key)));
    }
    Ok(())
}

/// A key as an error message shows it: cut, so that a hostile key cannot make the message
/// large.
fn shown(key: &str) -> String {
    key.chars().take(TAG_KEY_CHARS + 1).collect()
}

/// A valid set of tags: at most [`MAX_TAGS`], each key and value within Lambda's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    /// Checks tags: count, keys, values and reserved prefixes.
    pub fn new(tags: BTreeMap<String, String>) -> Result<Self, TagError> {
        for (k, v) in &tags {
            check_key(k)?;
            if v.chars().count() > TAG_VALUE_CHARS || !v.chars().all(tag_char) {
                return Err(TagError::Value(shown(k)));
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(TagError::TooMany(tags.len()));
        }
        Ok(Self(tags))
    }

    /// These tags with `other` added (its values win), if the result is within the limit.
    pub fn merged(&self, other: &Tags) -> Result<Tags, TagError> {
        let mut all = self.0.clone();
        all.extend(other.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        if all.len() > MAX_TAGS {
            return Err(TagError::TooMany(all.len()));
        }
        Ok(Tags(all))
    }

    /// These tags without `keys` (keys that are absent are ignored, as in Lambda).
    pub fn without<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Tags {
        let mut all = self.0.clone();
        for k in keys {
            all.remove(k);
        }
        Tags(all)
    }

    /// The tags.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The tags, by value.
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn lambda_limits() {
        assert!(Tags::new(tags(&[("team", "a b"), ("cost:center", "x/y=z+1@-")])).is_ok());
        assert!(Tags::new(tags(&[("empty", "")])).is_ok());
        assert_eq!(
            Tags::new(tags(&[("", "x")])),
            Err(TagError::Key(String::new()))
        );
        assert!(Tags::new(tags(&[(&"k".repeat(129), "x")])).is_err());
        assert!(Tags::new(tags(&[(&"k".repeat(128), &"v".repeat(256))])).is_ok());
        assert!(Tags::new(tags(&[("k", &"v".repeat(257))])).is_err());
        assert!(Tags::new(tags(&[("a\tb", "x")])).is_err());
        assert!(Tags::new(tags(&[("k", "line\nbreak")])).is_err());
        for reserved in ["aws:x", "AWS:x", "Aws:cloudformation:stack-name"] {
            assert_eq!(
                Tags::new(tags(&[(reserved, "x")])),
                Err(TagError::Reserved(reserved.to_owned()))
            );
        }
        assert!(Tags::new(tags(&[("awsx", "ok"), ("my:aws:x", "ok")])).is_ok());
        let fifty: BTreeMap<String, String> =
            (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        let full = Tags::new(fifty.clone()).unwrap();
        let mut fifty_one = fifty;
        fifty_one.insert("one-more".into(), "v".into());
        assert_eq!(Tags::new(fifty_one), Err(TagError::TooMany(51)));
        // Replacing a value does not count twice; adding a new key does.
        let same = Tags::new(tags(&[("k1", "w")])).unwrap();
        assert_eq!(full.merged(&same).unwrap().as_map()["k1"], "w");
        let new = Tags::new(tags(&[("new", "w")])).unwrap();
        assert_eq!(full.merged(&new), Err(TagError::TooMany(51)));
        assert_eq!(full.without(["k1", "absent"]).len(), 49);
    }

    proptest! {
        #[test]
        fn checking_never_panics(k in "\\PC{0,200}", v in "\\PC{0,300}") {
            let _ = Tags::new(BTreeMap::from([(k, v)]));
        }
    }
}
