//! Stored records: the JSON documents the store keeps (a function version, an alias) and
//! the rule that lets nodes of different Warden versions share them during a rolling
//! upgrade.
//!
//! # The rule
//!
//! Every record carries `record_version`, the record format of the build that last wrote
//! it ([`RECORD_VERSION`] here; a record written before versioning has none and is version
//! 1), and may carry `min_reader_version`, the oldest format that may read it (1 when
//! absent).
//!
//! - A reader whose [`RECORD_VERSION`] is below a record's `min_reader_version` refuses it
//!   ([`StoreError::RecordTooNew`]) rather than misread it.
//! - Otherwise it reads the fields it knows and ignores the rest: the record types have no
//!   `deny_unknown_fields`.
//! - A writer that rewrites a stored record (updating `$LATEST`, publishing a copy of it,
//!   updating an alias) keeps every top-level field it does not know, verbatim, together
//!   with `min_reader_version`, and stamps its own `record_version`; so a newer node's
//!   field survives an older node's read-modify-write, and a newer reader can tell from the
//!   stamp that an older writer touched the record.
//!
//! A newer build that adds a field must pick one of two kinds. A field whose meaning holds
//! whatever an older writer does to the fields it knows is simply added: older nodes carry
//! it along. A field that changes the meaning of others (say, one saying that the
//! environment is encrypted) must come with `min_reader_version` set to the new format on
//! every record that uses it: older nodes then refuse those records instead of running a
//! function with ciphertext for variables or overwriting them in plain text.
//!
//! Only top-level fields are kept: a newer field must be added at the top level of a
//! record, not inside an object an older build rewrites whole.

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::StoreError;

/// The record format this build reads and writes. 2: a function version may use layers
/// (`layers`, `opt_sha256`); a record that does carries `min_reader_version` 2, since a
/// build that ignored them would run the function without its `/opt`. 3: a function
/// version's environment is sealed (`sealed_environment`); such a record carries
/// `min_reader_version` 3, since an older build would run the function without its
/// variables or overwrite them.
pub const RECORD_VERSION: u32 = 3;

/// The oldest format that may read a function version record.
pub(crate) fn reader_needed(f: &warden_types::FunctionVersion) -> u32 {
    if f.sealed_environment.is_some() {
        3
    } else if !f.layers.is_empty() {
        2
    } else {
        1
    }
}

/// The field naming the format of the build that last wrote a record.
pub const VERSION_FIELD: &str = "record_version";
/// The field naming the oldest format that may read a record.
pub const MIN_READER_FIELD: &str = "min_reader_version";

/// The envelope fields, read before the record itself.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default = "first_version")]
    min_reader_version: u64,
}

fn first_version() -> u64 {
    1
}

/// A record ready to store: its JSON, and the fields of the stored record it replaces that
/// this build does not know and so kept (empty for a new record).
#[derive(Debug)]
pub(crate) struct Encoded {
    pub json: String,
    pub kept: Map<String, Value>,
}

/// Serialises `value` as a record, keeping the unknown fields (and `min_reader_version`) of
/// `replaces`, the stored JSON it is derived from, if any. `what` names it in errors.
pub(crate) fn encode<T: Serialize + DeserializeOwned>(
    value: &T,
    replaces: Option<&str>,
    what: &str,
) -> Result<Encoded, StoreError> {
    let invalid =
        |e: String| StoreError::InvalidRecord(format!("{what} cannot be serialised: {e}"));
    let mut fields = match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        Ok(other) => return Err(invalid(format!("it is not an object but {other}"))),
        Err(e) => return Err(invalid(e.to_string())),
    };
    let mut kept = Map::new();
    let mut min_reader = None;
    if let Some(stored) = replaces {
        // A record this build may not read, it may not overwrite either.
        let _ = check_readable(stored, || what.to_owned())?;
    }
    if let Some(Value::Object(old)) = replaces.and_then(|j| serde_json::from_str(j).ok()) {
        let known = known_fields::<T>();
        for (key, v) in old {
            if key == MIN_READER_FIELD {
                min_reader = Some(v);
            } else if key != VERSION_FIELD
                && !known.contains(&key.as_str())
                && !fields.contains_key(&key)
            {
                kept.insert(key, v);
            }
        }
    }
    fields.extend(kept.clone());
    if let Some(v) = min_reader {
        fields.insert(MIN_READER_FIELD.to_owned(), v);
    }
    fields.insert(VERSION_FIELD.to_owned(), Value::from(RECORD_VERSION));
    let json = serde_json::to_string(&fields).map_err(|e| invalid(e.to_string()))?;
    Ok(Encoded { json, kept })
}

/// Raises a record's `min_reader_version` to at least `version`: the record uses something
/// older readers would misread.
pub(crate) fn require_reader(encoded: &mut Encoded, version: u32) -> Result<(), StoreError> {
    let mut fields: Map<String, Value> = serde_json::from_str(&encoded.json)
        .map_err(|e| StoreError::InvalidRecord(e.to_string()))?;
    let current = fields
        .get(MIN_READER_FIELD)
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if current < u64::from(version) {
        fields.insert(MIN_READER_FIELD.to_owned(), Value::from(version));
        encoded.json =
            serde_json::to_string(&fields).map_err(|e| StoreError::InvalidRecord(e.to_string()))?;
    }
    Ok(())
}

/// Reads a stored record, refusing one only a newer format may read; unknown fields are
/// ignored. `what` names it in errors.
pub(crate) fn decode<T: DeserializeOwned>(
    json: &str,
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    let what = check_readable(json, what)?;
    serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
        what: what(),
        source,
    })
}

/// Refuses a record whose `min_reader_version` is above this build's format; hands `what`
/// back for later errors.
fn check_readable<W: FnOnce() -> String>(json: &str, what: W) -> Result<W, StoreError> {
    let envelope: Envelope = match serde_json::from_str(json) {
        Ok(e) => e,
        Err(source) => {
            return Err(StoreError::Corrupt {
                what: what(),
                source,
            })
        }
    };
    if envelope.min_reader_version > u64::from(RECORD_VERSION) {
        return Err(StoreError::RecordTooNew {
            what: what(),
            needs: u32::try_from(envelope.min_reader_version).unwrap_or(u32::MAX),
            supported: RECORD_VERSION,
        });
    }
    Ok(what)
}

/// The names of the fields `T` declares, as its `Deserialize` implementation reports them
/// to a deserializer asked for a struct: exactly what this build knows of a record,
/// including fields that a serialisation may leave out. Empty for a type that is not a
/// plain struct (a record must be one).
pub(crate) fn known_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields = None;
    // The probe always fails: it only records what it was asked for.
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields.unwrap_or(&[])
}

/// A deserializer that answers nothing and remembers the field list of the struct it was
/// asked to produce.
struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Alias;
    use warden_types::FunctionVersion;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Old {
        a: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<String>,
    }

    #[test]
    fn known_fields_are_the_declared_ones() {
        assert_eq!(known_fields::<Old>(), ["a", "b"]);
        let fv = known_fields::<FunctionVersion>();
        for f in [
            "name",
            "version",
            "environment",
            "code_sha256",
            "architectures",
        ] {
            assert!(fv.contains(&f), "{f} in {fv:?}");
        }
        assert!(known_fields::<Alias>().contains(&"routing"));
        assert!(known_fields::<u32>().is_empty());
    }

    #[test]
    fn unknown_fields_are_read_past_and_kept_on_rewrite() {
        let newer = r#"{"a":1,"b":"x","kms_key":"k1","record_version":2,"nested":{"z":[1]}}"#;
        let old: Old = decode(newer, || "it".into()).unwrap();
        assert_eq!(
            old,
            Old {
                a: 1,
                b: Some("x".into())
            }
        );
        let rewritten = encode(&Old { a: 2, b: None }, Some(newer), "it").unwrap();
        let v: Value = serde_json::from_str(&rewritten.json).unwrap();
        assert_eq!(v["a"], 2);
        assert_eq!(v["kms_key"], "k1");
        assert_eq!(v["nested"]["z"][0], 1);
        assert_eq!(
            v[VERSION_FIELD], RECORD_VERSION,
            "stamped by its last writer"
        );
        assert_eq!(
            v.get("b"),
            None,
            "a known field this writer cleared is not resurrected from the old record"
        );
        assert_eq!(rewritten.kept.len(), 2);
    }

    #[test]
    fn a_record_only_newer_readers_may_read_is_refused() {
        let json = format!(r#"{{"a":1,"{MIN_READER_FIELD}":{}}}"#, RECORD_VERSION + 1);
        let err = decode::<Old>(&json, || "record x".into()).unwrap_err();
        assert!(
            matches!(&err, StoreError::RecordTooNew { needs, supported, .. }
                if *needs == RECORD_VERSION + 1 && *supported == RECORD_VERSION),
            "{err}"
        );
        // Nor is it overwritten.
        let err = encode(&Old { a: 2, b: None }, Some(&json), "record x").unwrap_err();
        assert!(matches!(err, StoreError::RecordTooNew { .. }), "{err}");
        // One this build may read keeps its floor when rewritten.
        let json = format!(r#"{{"a":1,"{MIN_READER_FIELD}":{RECORD_VERSION}}}"#);
        let out = encode(&Old { a: 3, b: None }, Some(&json), "it").unwrap();
        let v: Value = serde_json::from_str(&out.json).unwrap();
        assert_eq!(v[MIN_READER_FIELD], RECORD_VERSION);
    }

    #[test]
    fn records_from_before_versioning_read_as_version_one() {
        let old: Old = decode(r#"{"a":5}"#, || "it".into()).unwrap();
        assert_eq!(old.a, 5);
        let fresh = encode(&old, None, "it").unwrap();
        assert!(fresh.kept.is_empty());
        assert_eq!(fresh.json, r#"{"a":5,"record_version":3}"#);
    }

    #[test]
    fn damaged_records_are_corrupt_not_panics() {
        for bad in [
            "",
            "[1]",
            "{\"a\":\"x\"}",
            "{\"min_reader_version\":\"2\",\"a\":1}",
        ] {
            let err = decode::<Old>(bad, || "it".into()).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{bad}: {err}");
        }
    }
}
