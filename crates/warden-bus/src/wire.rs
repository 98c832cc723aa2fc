//! The wire format: what one notice looks like on the bus.
//!
//! Every notice is one JSON object carrying a format version `v` (1), the node that
//! published it (`origin`) and the time of the change (`at_ms`). A change notice adds the
//! function, the change's `kind` with its fields, and the actor; an identity notice adds
//! the generation. These structs are this crate's own, so the wire format changes only
//! here and on purpose, never because a type in another crate changed shape.
//!
//! Subjects: a change to function `f` travels on `warden.changes.f`; an identity
//! generation on `warden.identity`; a notice that asks every node to reload everything on
//! [`RESYNC_ALL_SUBJECT`] (its last token contains `@`, which no function name does).

use serde::{Deserialize, Serialize};
use warden_types::change::{Change, ChangeEvent};
use warden_types::{AliasName, FunctionName, NodeId};

/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;

/// The largest notice, in bytes, a node publishes or reads; the stream refuses larger
/// messages too. A notice holds a few names and an ARN, far below this.
pub const MAX_NOTICE_BYTES: usize = 16 * 1024;

/// The prefix of the subjects of change notices; the function's name follows.
pub const CHANGES_PREFIX: &str = "warden.changes.";

/// Every subject of change notices (the stream's first subject).
pub const CHANGES_SUBJECTS: &str = "warden.changes.>";

/// The subject of identity generations.
pub const IDENTITY_SUBJECT: &str = "warden.identity";

/// The subject of notices that ask every other node to drop all its caches.
pub const RESYNC_ALL_SUBJECT: &str = "warden.changes.@all";

/// The longest version or alias text accepted in a notice.
const MAX_QUALIFIER_LEN: usize = 128;

/// A change notice as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChangeNotice {
    v: u32,
    origin: String,
    /// Absent only in a notice that asks to reload everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    #[serde(flatten)]
    change: WireChange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    at_ms: i64,
}

/// The change, tagged by `kind`, with its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireChange {
    FunctionCreated {
        #[serde(default)]
        published: Option<String>,
    },
    CodeUpdated {
        #[serde(default)]
        published: Option<String>,
    },
    ConfigurationUpdated,
    VersionPublished {
        version: String,
    },
    VersionDeleted {
        version: String,
    },
    FunctionDeleted,
    AliasCreated {
        alias: String,
    },
    AliasUpdated {
        alias: String,
    },
    AliasDeleted {
        alias: String,
    },
    PolicyChanged,
    ConcurrencyChanged {
        #[serde(default)]
        reserved: Option<u32>,
    },
    TagsChanged,
    /// Drop every cache and reload everything: sent for a change this crate does not know
    /// how to describe, and after this node had to drop notices.
    Resync,
}

/// The `kind` of every [`WireChange`] variant.
const KINDS: [&str; 13] = [
    "function_created",
    "code_updated",
    "configuration_updated",
    "version_published",
    "version_deleted",
    "function_deleted",
    "alias_created",
    "alias_updated",
    "alias_deleted",
    "policy_changed",
    "concurrency_changed",
    "tags_changed",
    "resync",
];

/// An identity generation as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct IdentityNotice {
    v: u32,
    origin: String,
    generation: u64,
    at_ms: i64,
}

/// Only the version, read first so that a notice of another version is recognised as
/// such whatever else it holds.
#[derive(Deserialize)]
struct VersionProbe {
    v: u64,
}

/// Only the origin and kind, read when a version-1 change notice failed to decode, to tell
/// a kind this node does not know from plain garbage.
#[derive(Deserialize)]
struct KindProbe {
    origin: String,
    kind: String,
}

/// What `encode_change` made: the subject and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub subject: String,
    pub payload: Vec<u8>,
}

/// Why a notice could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("encoding a notice: {0}")]
pub(crate) struct EncodeError(String);

fn wire_change(change: &Change) -> WireChange {
    // `Change` is `#[non_exhaustive]` in another crate, so this match cannot be checked
    // for exhaustiveness here: a variant added later falls to the last arm, which asks
    // every node to reload everything. That is always correct, only slower; add an arm
    // (and a `WireChange` variant) when a variant is added.
    match change {
        Change::FunctionCreated { published } => WireChange::FunctionCreated {
            published: published.clone(),
        },
        Change::CodeUpdated { published } => WireChange::CodeUpdated {
            published: published.clone(),
        },
        Change::ConfigurationUpdated => WireChange::ConfigurationUpdated,
        Change::VersionPublished { version } => WireChange::VersionPublished {
            version: version.clone(),
        },
        Change::VersionDeleted { version } => WireChange::VersionDeleted {
            version: version.clone(),
        },
        Change::FunctionDeleted => WireChange::FunctionDeleted,
        Change::AliasCreated { alias } => WireChange::AliasCreated {
            alias: alias.clone(),
        },
        Change::AliasUpdated { alias } => WireChange::AliasUpdated {
            alias: alias.clone(),
        },
        Change::AliasDeleted { alias } => WireChange::AliasDeleted {
            alias: alias.clone(),
        },
        Change::PolicyChanged => WireChange::PolicyChanged,
        Change::ConcurrencyChanged { reserved } => WireChange::ConcurrencyChanged {
            reserved: *reserved,
        },
        Change::TagsChanged => WireChange::TagsChanged,
        _ => WireChange::Resync,
    }
}

/// The change a notice describes, or `None` for a resync notice. Exhaustive over this
/// crate's own enum.
fn domain_change(change: WireChange) -> Result<Option<Change>, DecodeError> {
    Ok(Some(match change {
        WireChange::FunctionCreated { published } => Change::FunctionCreated {
            published: published.map(check_version).transpose()?,
        },
        WireChange::CodeUpdated { published } => Change::CodeUpdated {
            published: published.map(check_version).transpose()?,
        },
        WireChange::ConfigurationUpdated => Change::ConfigurationUpdated,
        WireChange::VersionPublished { version } => Change::VersionPublished {
            version: check_version(version)?,
        },
        WireChange::VersionDeleted { version } => Change::VersionDeleted {
            version: check_version(version)?,
        },
        WireChange::FunctionDeleted => Change::FunctionDeleted,
        WireChange::AliasCreated { alias } => Change::AliasCreated {
            alias: check_alias(alias)?,
        },
        WireChange::AliasUpdated { alias } => Change::AliasUpdated {
            alias: check_alias(alias)?,
        },
        WireChange::AliasDeleted { alias } => Change::AliasDeleted {
            alias: check_alias(alias)?,
        },
        WireChange::PolicyChanged => Change::PolicyChanged,
        WireChange::ConcurrencyChanged { reserved } => Change::ConcurrencyChanged { reserved },
        WireChange::TagsChanged => Change::TagsChanged,
        WireChange::Resync => return Ok(None),
    }))
}

/// A version as a notice may name it: a short run of name characters (`$LATEST` too).
fn check_version(version: String) -> Result<String, DecodeError> {
    let ok = (1..=MAX_QUALIFIER_LEN).contains(&version.len())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '-' | '_'));
    if ok {
        Ok(version)
    } else {
        Err(DecodeError::Field("version"))
    }
}

fn check_alias(alias: String) -> Result<String, DecodeError> {
    AliasName::new(&alias)
        .map(|_| alias)
        .map_err(|_| DecodeError::Field("alias"))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(value).map_err(|e| EncodeError(e.to_string()))
}

/// The notice of one committed change. Never larger than [`MAX_NOTICE_BYTES`]: an
/// oversized actor is left out, and should the rest still not fit, the notice asks for a
/// reload of everything instead.
pub(crate) fn encode_change(origin: &NodeId, event: &ChangeEvent) -> Result<Encoded, EncodeError> {
    let mut notice = ChangeNotice {
        v: VERSION,
        origin: origin.as_str().to_owned(),
        function: Some(event.function.as_str().to_owned()),
        change: wire_change(&event.change),
        actor: event.actor.clone(),
        at_ms: event.at_ms,
    };
    let subject = format!("{CHANGES_PREFIX}{}", event.function.as_str());
    let mut payload = to_json(&notice)?;
    if payload.len() > MAX_NOTICE_BYTES {
        notice.actor = None;
        payload = to_json(&notice)?;
    }
    if payload.len() > MAX_NOTICE_BYTES {
        notice.change = WireChange::Resync;
        payload = to_json(&notice)?;
    }
    Ok(Encoded { subject, payload })
}

/// A notice that asks every other node to drop all its caches.
pub(crate) fn encode_resync_all(origin: &NodeId, at_ms: i64) -> Result<Encoded, EncodeError> {
    let notice = ChangeNotice {
        v: VERSION,
        origin: origin.as_str().to_owned(),
        function: None,
        change: WireChange::Resync,
        actor: None,
        at_ms,
    };
    Ok(Encoded {
        subject: RESYNC_ALL_SUBJECT.to_owned(),
        payload: to_json(&notice)?,
    })
}

/// A new identity generation.
pub(crate) fn encode_identity(
    origin: &NodeId,
    generation: u64,
    at_ms: i64,
) -> Result<Encoded, EncodeError> {
    let notice = IdentityNotice {
        v: VERSION,
        origin: origin.as_str().to_owned(),
        generation,
        at_ms,
    };
    Ok(Encoded {
        subject: IDENTITY_SUBJECT.to_owned(),
        payload: to_json(&notice)?,
    })
}

/// A notice as read from the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// One committed change.
    Change {
        /// The node that published it.
        origin: NodeId,
        /// The change.
        event: ChangeEvent,
    },
    /// Drop every cache and reload everything.
    Resync {
        /// The node that published it.
        origin: NodeId,
        /// Why, for the log.
        reason: String,
    },
    /// A new identity generation.
    Identity {
        /// The node that published it.
        origin: NodeId,
        /// The generation.
        generation: u64,
    },
}

/// Why a message from the bus was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Larger than [`MAX_NOTICE_BYTES`].
    #[error("the notice is {0} bytes, more than the {MAX_NOTICE_BYTES} accepted")]
    TooLarge(usize),
    /// Not JSON, or not a notice's shape.
    #[error("not a notice: {0}")]
    Json(String),
    /// A format version this node does not read.
    #[error("format version {0} is not the supported {VERSION}")]
    Version(u64),
    /// The origin is no node id.
    #[error("the origin is not a valid node id")]
    Origin,
    /// The subject is none of the bus's.
    #[error("unexpected subject")]
    Subject,
    /// The function is missing, invalid, or not the one the subject names.
    #[error("the function name is missing, invalid or does not match the subject")]
    Function,
    /// A field of the change does not validate.
    #[error("the {0} does not validate")]
    Field(&'static str),
}

/// Reads one message received on `subject`.
pub(crate) fn decode(subject: &str, payload: &[u8]) -> Result<Notice, DecodeError> {
    if payload.len() > MAX_NOTICE_BYTES {
        return Err(DecodeError::TooLarge(payload.len()));
    }
    let probe: VersionProbe =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    if probe.v != u64::from(VERSION) {
        return Err(DecodeError::Version(probe.v));
    }
    if subject == IDENTITY_SUBJECT {
        let notice: IdentityNotice =
            serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
        let origin = NodeId::new(&notice.origin).map_err(|_| DecodeError::Origin)?;
        return Ok(Notice::Identity {
            origin,
            generation: notice.generation,
        });
    }
    let Some(token) = subject.strip_prefix(CHANGES_PREFIX) else {
        return Err(DecodeError::Subject);
    };
    let notice: ChangeNotice = match serde_json::from_slice(payload) {
        Ok(notice) => notice,
        Err(e) => return unknown_kind(token, payload, e),
    };
    let origin = NodeId::new(&notice.origin).map_err(|_| DecodeError::Origin)?;
    if subject == RESYNC_ALL_SUBJECT {
        return match (notice.function, notice.change) {
            (None, WireChange::Resync) => Ok(Notice::Resync {
                origin,
                reason: "the publisher asked every node to reload".to_owned(),
            }),
            _ => Err(DecodeError::Subject),
        };
    }
    let function = notice
        .function
        .as_deref()
        .filter(|f| *f == token)
        .and_then(|f| FunctionName::new(f).ok())
        .ok_or(DecodeError::Function)?;
    match domain_change(notice.change)? {
        Some(change) => Ok(Notice::Change {
            origin,
            event: ChangeEvent {
                function,
                change,
                actor: notice.actor,
                at_ms: notice.at_ms,
            },
        }),
        None => Ok(Notice::Resync {
            origin,
            reason: format!("a change to {function} the publisher could not describe"),
        }),
    }
}

/// A version-1 change notice that did not decode: if it is well formed but of a `kind`
/// this node does not know (a newer node's), the node cannot tell what it must drop, so it
/// drops everything; anything else is skipped.
fn unknown_kind(
    token: &str,
    payload: &[u8],
    error: serde_json::Error,
) -> Result<Notice, DecodeError> {
    match serde_json::from_slice::<KindProbe>(payload) {
        Ok(probe) if !KINDS.contains(&probe.kind.as_str()) && FunctionName::new(token).is_ok() => {
            let origin = NodeId::new(&probe.origin).map_err(|_| DecodeError::Origin)?;
            Ok(Notice::Resync {
                origin,
                reason: format!("a change of unknown kind `{}` to {token}", probe.kind),
            })
        }
        _ => Err(DecodeError::Json(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn event(change: Change) -> ChangeEvent {
        ChangeEvent {
            function: FunctionName::new("orders-api").unwrap(),
            change,
            actor: Some("arn:aws:iam::123456789012:user/alice".into()),
            at_ms: 1_700_000_000_123,
        }
    }

    /// Every change the control plane knows today.
    fn every_change() -> Vec<Change> {
        vec![
            Change::FunctionCreated { published: None },
            Change::FunctionCreated {
                published: Some("1".into()),
            },
            Change::CodeUpdated { published: None },
            Change::CodeUpdated {
                published: Some("2".into()),
            },
            Change::ConfigurationUpdated,
            Change::VersionPublished {
                version: "3".into(),
            },
            Change::VersionDeleted {
                version: "3".into(),
            },
            Change::FunctionDeleted,
            Change::AliasCreated {
                alias: "live".into(),
            },
            Change::AliasUpdated {
                alias: "live".into(),
            },
            Change::AliasDeleted {
                alias: "live".into(),
            },
            Change::PolicyChanged,
            Change::ConcurrencyChanged { reserved: Some(5) },
            Change::ConcurrencyChanged { reserved: None },
            Change::TagsChanged,
        ]
    }

    #[test]
    fn every_change_round_trips_on_its_functions_subject() {
        let origin = node("node-a");
        for change in every_change() {
            let e = event(change);
            let encoded = encode_change(&origin, &e).unwrap();
            assert_eq!(encoded.subject, "warden.changes.orders-api");
            let decoded = decode(&encoded.subject, &encoded.payload).unwrap();
            assert_eq!(
                decoded,
                Notice::Change {
                    origin: origin.clone(),
                    event: e
                }
            );
        }
    }

    #[test]
    fn the_format_is_versioned_json_with_a_kind() {
        let e = event(Change::AliasUpdated {
            alias: "live".into(),
        });
        let encoded = encode_change(&node("n1"), &e).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&encoded.payload).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "v": 1,
                "origin": "n1",
                "function": "orders-api",
                "kind": "alias_updated",
                "alias": "live",
                "actor": "arn:aws:iam::123456789012:user/alice",
                "at_ms": 1_700_000_000_123_i64,
            })
        );
    }

    #[test]
    fn identity_generations_round_trip() {
        let encoded = encode_identity(&node("n1"), 42, 7).unwrap();
        assert_eq!(encoded.subject, IDENTITY_SUBJECT);
        assert_eq!(
            decode(IDENTITY_SUBJECT, &encoded.payload).unwrap(),
            Notice::Identity {
                origin: node("n1"),
                generation: 42
            }
        );
    }

    #[test]
    fn a_resync_notice_round_trips_and_needs_its_subject() {
        let encoded = encode_resync_all(&node("n1"), 7).unwrap();
        assert_eq!(encoded.subject, RESYNC_ALL_SUBJECT);
        assert!(matches!(
            decode(RESYNC_ALL_SUBJECT, &encoded.payload),
            Ok(Notice::Resync { origin, .. }) if origin == node("n1")
        ));
        // On a function's subject it lacks its function.
        assert_eq!(
            decode("warden.changes.f", &encoded.payload),
            Err(DecodeError::Function)
        );
        // A change notice on the resync subject is refused.
        let change = encode_change(&node("n1"), &event(Change::TagsChanged)).unwrap();
        assert_eq!(
            decode(RESYNC_ALL_SUBJECT, &change.payload),
            Err(DecodeError::Subject)
        );
    }

    #[test]
    fn an_oversized_actor_is_left_out() {
        let mut e = event(Change::PolicyChanged);
        e.actor = Some("a".repeat(MAX_NOTICE_BYTES));
        let encoded = encode_change(&node("n1"), &e).unwrap();
        assert!(encoded.payload.len() <= MAX_NOTICE_BYTES);
        e.actor = None;
        assert_eq!(
            decode(&encoded.subject, &encoded.payload).unwrap(),
            Notice::Change {
                origin: node("n1"),
                event: e
            }
        );
    }

    #[test]
    fn an_oversized_change_becomes_a_resync_of_its_function() {
        let e = event(Change::VersionPublished {
            version: "9".repeat(MAX_NOTICE_BYTES),
        });
        let encoded = encode_change(&node("n1"), &e).unwrap();
        assert!(encoded.payload.len() <= MAX_NOTICE_BYTES);
        assert!(matches!(
            decode(&encoded.subject, &encoded.payload),
            Ok(Notice::Resync { .. })
        ));
    }

    #[test]
    fn malformed_notices_are_refused() {
        let good = |f: &str| {
            serde_json::json!({
                "v": 1, "origin": "n1", "function": f, "kind": "tags_changed", "at_ms": 1
            })
        };
        let bytes = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
        assert!(decode("warden.changes.f", &bytes(good("f"))).is_ok());

        assert!(matches!(
            decode("warden.changes.f", b"{not json"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode("warden.changes.f", b"[1,2]"),
            Err(DecodeError::Json(_))
        ));
        let mut v2 = good("f");
        v2["v"] = 2.into();
        assert_eq!(
            decode("warden.changes.f", &bytes(v2)),
            Err(DecodeError::Version(2))
        );
        // A function name that does not validate, or that the subject does not name.
        assert_eq!(
            decode("warden.changes.f", &bytes(good("bad name!"))),
            Err(DecodeError::Function)
        );
        assert_eq!(
            decode("warden.changes.g", &bytes(good("f"))),
            Err(DecodeError::Function)
        );
        let mut no_function = good("f");
        no_function
            .as_object_mut()
            .unwrap()
            .remove("function")
            .unwrap();
        assert_eq!(
            decode("warden.changes.f", &bytes(no_function)),
            Err(DecodeError::Function)
        );
        let mut bad_origin = good("f");
        bad_origin["origin"] = "-nope".into();
        assert_eq!(
            decode("warden.changes.f", &bytes(bad_origin)),
            Err(DecodeError::Origin)
        );
        // Fields of the change validate.
        let mut bad_alias = good("f");
        bad_alias["kind"] = "alias_created".into();
        bad_alias["alias"] = "12".into();
        assert_eq!(
            decode("warden.changes.f", &bytes(bad_alias)),
            Err(DecodeError::Field("alias"))
        );
        let mut bad_version = good("f");
        bad_version["kind"] = "version_deleted".into();
        bad_version["version"] = "1.2".into();
        assert_eq!(
            decode("warden.changes.f", &bytes(bad_version)),
            Err(DecodeError::Field("version"))
        );
        // A known kind missing its field is garbage, not an unknown kind.
        let mut missing = good("f");
        missing["kind"] = "alias_created".into();
        assert!(matches!(
            decode("warden.changes.f", &bytes(missing)),
            Err(DecodeError::Json(_))
        ));
        // Too large, whatever it holds.
        let big = vec![b' '; MAX_NOTICE_BYTES + 1];
        assert_eq!(
            decode("warden.changes.f", &big),
            Err(DecodeError::TooLarge(MAX_NOTICE_BYTES + 1))
        );
        // Subjects outside the bus's.
        assert_eq!(
            decode("elsewhere", &bytes(good("f"))),
            Err(DecodeError::Subject)
        );
        // An identity notice needs its generation.
        assert!(matches!(
            decode(IDENTITY_SUBJECT, &bytes(good("f"))),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn the_list_of_kinds_is_every_variants() {
        let mut seen: Vec<String> = every_change()
            .iter()
            .map(wire_change)
            .chain([WireChange::Resync])
            .map(|c| {
                let v = serde_json::to_value(&c).unwrap();
                v["kind"].as_str().unwrap().to_owned()
            })
            .collect();
        seen.sort();
        seen.dedup();
        let mut kinds: Vec<String> = KINDS.iter().map(|k| k.to_string()).collect();
        kinds.sort();
        assert_eq!(seen, kinds);
    }

    #[test]
    fn a_well_formed_notice_of_an_unknown_kind_asks_for_a_reload() {
        let v = serde_json::json!({
            "v": 1, "origin": "n2", "function": "f", "kind": "layers_changed", "at_ms": 1
        });
        let decoded = decode("warden.changes.f", &serde_json::to_vec(&v).unwrap());
        assert!(matches!(decoded, Ok(Notice::Resync { origin, .. }) if origin == node("n2")));
        // But not from a bad origin or on a subject that is no function.
        let v = serde_json::json!({
            "v": 1, "origin": "?", "function": "f", "kind": "layers_changed", "at_ms": 1
        });
        assert_eq!(
            decode("warden.changes.f", &serde_json::to_vec(&v).unwrap()),
            Err(DecodeError::Origin)
        );
        let v = serde_json::json!({
            "v": 1, "origin": "n2", "kind": "layers_changed", "at_ms": 1
        });
        assert!(matches!(
            decode("warden.changes.a.b", &serde_json::to_vec(&v).unwrap()),
            Err(DecodeError::Json(_))
        ));
    }

    proptest::proptest! {
        /// Whatever arrives on the bus (any subject, any bytes, notices with arbitrary
        /// fields), decoding answers without panicking.
        #[test]
        fn decoding_never_panics(
            subject in "(warden\\.(changes\\.|identity)|[a-z.@]{0,12})[ -~]{0,24}",
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            let _ = decode(&subject, &payload);
        }

        /// A change notice decodes to the event it was made from, whatever its function
        /// name, actor and time.
        #[test]
        fn a_change_round_trips(
            function in "[A-Za-z0-9_-]{1,64}",
            actor in proptest::option::of("[ -~]{0,200}"),
            at_ms in proptest::prelude::any::<i64>(),
            which in 0usize..12,
        ) {
            let change = every_change().swap_remove(which % every_change().len());
            let event = ChangeEvent {
                function: FunctionName::new(&function).unwrap(),
                change,
                actor,
                at_ms,
            };
            let encoded = encode_change(&node("n1"), &event).unwrap();
            let decoded = decode(&encoded.subject, &encoded.payload);
            proptest::prop_assert_eq!(
                decoded,
                Ok(Notice::Change { origin: node("n1"), event })
            );
        }
    }
}
