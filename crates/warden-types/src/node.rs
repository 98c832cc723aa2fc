//! The identity of one Warden server process among the nodes sharing a store: it owns the
//! async-event leases it takes (and, once several nodes share a store, its share of the
//! concurrency accounting). Plain data; where it comes from is the binary's business.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node id `{0}` must be 1-64 characters of letters, digits, `.`, `-` and `_`, starting with a letter or digit")]
pub struct NodeIdError(pub String);

/// A node id: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`. Unique among the nodes sharing one store;
/// stable across restarts of one node, so that a restarted node can reclaim its own leases.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// Longest id, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates `s`.
    pub fn new(s: &str) -> Result<Self, NodeIdError> {
        let mut chars = s.chars();
        let ok = s.len() <= Self::MAX_LEN
            && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NodeIdError(s.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for NodeId {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<Self, NodeIdError> {
        Self::new(s)
    }
}

impl TryFrom<String> for NodeId {
    type Error = NodeIdError;
    fn try_from(s: String) -> Result<Self, NodeIdError> {
        Self::new(&s)
    }
}

impl From<NodeId> for String {
    fn from(n: NodeId) -> String {
        n.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn node_ids_are_validated() {
        for ok in ["a", "node-1", "host.example_2", &"x".repeat(64)] {
            assert_eq!(NodeId::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "ä", &"x".repeat(65)] {
            assert_eq!(
                NodeId::new(bad),
                Err(NodeIdError(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert!(serde_json::from_str::<NodeId>("\"a/b\"").is_err());
    }

    proptest! {
        #[test]
        fn any_string_is_accepted_only_if_it_round_trips(s in ".{0,80}") {
            if let Ok(id) = NodeId::new(&s) {
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert!(s.len() <= NodeId::MAX_LEN);
                prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
            }
        }
    }
}
