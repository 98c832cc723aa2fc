//! The contract document: parsing, bounds and the canonical form.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::excerpt::clip;
use crate::scan::{scan, ScanError, ScanLimits};
use crate::ContractError;

/// The largest contract document accepted, in bytes: 256 KiB.
pub const MAX_CONTRACT_BYTES: usize = 256 * 1024;

/// 6 MiB: Lambda's synchronous payload limit, the bound on body and string sizes.
const SIX_MIB: u64 = 6 * 1024 * 1024;

/// `MaxDepth` when the contract does not say: deep enough for any real event.
pub const DEFAULT_MAX_DEPTH: u32 = 64;
/// The deepest `MaxDepth` a contract may ask for. serde_json, which builds the value the
/// schema sees, refuses a 128th level of nesting, and the schema is evaluated recursively:
/// this bound keeps both well inside their limits.
pub const MAX_MAX_DEPTH: u32 = 127;
/// `MaxStringLength` when the contract does not say: 256 KiB.
pub const DEFAULT_MAX_STRING_LENGTH: u64 = 262_144;

/// The most entries any list in the document may have.
const MAX_LIST: usize = 32;
/// How much of the owner's own text an error message quotes.
const QUOTE_CHARS: usize = 200;

/// A function's input contract, as the owner writes it (see the crate documentation).
///
/// Every member is optional. [`InputContract::parse`] refuses unknown keys, out-of-range limits
/// and malformed entries, and normalizes header names and content types to lowercase; the
/// schema itself is checked by [`Compiled::compile`](crate::Compiled::compile).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct InputContract {
    /// The JSON Schema every event must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) event_schema: Option<Value>,
    /// Limits on the JSON text itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) json: Option<JsonSection>,
    /// Rules for requests arriving at the function's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<UrlSection>,
}

/// The `Json` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct JsonSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_depth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_string_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allow_duplicate_keys: Option<bool>,
}

/// The `Url` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct UrlSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_content_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_header_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) required_headers: Option<Vec<String>>,
}

impl InputContract {
    /// Parses and checks a contract document.
    ///
    /// Refuses a document over [`MAX_CONTRACT_BYTES`], one that is not JSON, one that repeats
    /// a key anywhere (the schema included), unknown keys (named in the error), limits out of
    /// range, and malformed methods, paths, content types or header names. The `EventSchema`
    /// is only checked to be an object or a boolean here; [`Compiled::compile`] checks the
    /// rest.
    ///
    /// [`Compiled::compile`]: crate::Compiled::compile
    pub fn parse(bytes: &[u8]) -> Result<InputContract, ContractError> {
        if bytes.len() > MAX_CONTRACT_BYTES {
            return Err(ContractError::TooLarge {
                size: bytes.len(),
                limit: MAX_CONTRACT_BYTES,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            ContractError::Malformed(format!(
                "the document is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ))
        })?;
        // serde_json keeps the last of repeated keys without a word; a schema that says
        // "type" twice is ambiguous, so repeats are refused first, anywhere in the document.
        let limits = ScanLimits {
            max_depth: MAX_MAX_DEPTH as usize,
            max_string_bytes: MAX_CONTRACT_BYTES,
            allow_duplicate_keys: false,
            safe_integers: false,
        };
        match scan(text, limits) {
            Ok(_) => {}
            Err(ScanError::Syntax { reason, offset }) => {
                return Err(ContractError::Malformed(ScanError::syntax_message(
                    reason, bytes, offset,
                )));
            }
            Err(ScanError::Limit { location, message }) => {
                return Err(ContractError::Malformed(format!("{location}: {message}")));
            }
        }
        let mut contract: InputContract = serde_json::from_str(text)
            .map_err(|e| ContractError::Malformed(clip(&e.to_string(), QUOTE_CHARS)))?;
        contract.check_and_normalize()?;
        Ok(contract)
    }

    /// The canonical JSON text of the contract, for returning it to its owner: compact, keys
    /// in a fixed order (the sections as documented, schema keys sorted), header names and
    /// content types in lowercase. Parsing it gives back an equal contract.
    pub fn to_json(&self) -> String {
        let schema = self.event_schema.as_ref().map(sorted);
        let canonical = InputContract {
            event_schema: schema,
            json: self.json.clone(),
            url: self.url.clone(),
        };
        // Serializing plain structs, strings, numbers and a `Value` cannot fail.
        serde_json::to_string(&canonical).unwrap_or_default()
    }

    /// Checks every bound and normalizes the URL lists; parse runs it once, compile again
    /// (for contracts built inside this crate).
    pub(crate) fn check_and_normalize(&mut self) -> Result<(), ContractError> {
        if let Some(schema) = &self.event_schema {
            if !schema.is_object() && !schema.is_boolean() {
                return Err(ContractError::InvalidValue {
                    field: "EventSchema".to_owned(),
                    reason: "must be a JSON Schema: an object or a boolean".to_owned(),
                });
            }
        }
        if let Some(json) = &self.json {
            if let Some(depth) = json.max_depth {
                in_range("Json.MaxDepth", depth.into(), 1, MAX_MAX_DEPTH.into())?;
            }
            if let Some(len) = json.max_string_length {
                in_range("Json.MaxStringLength", len, 1, SIX_MIB)?;
            }
        }
        if let Some(url) = &mut self.url {
            url.check_and_normalize()?;
        }
        Ok(())
    }
}

impl UrlSection {
    fn check_and_normalize(&mut self) -> Result<(), ContractError> {
        if let Some(methods) = &self.allowed_methods {
            check_list("Url.AllowedMethods", methods, false)?;
            for m in methods {
                check_method(m)?;
            }
        }
        if let Some(paths) = &self.allowed_paths {
            check_list("Url.AllowedPaths", paths, false)?;
            for p in paths {
                crate::url::check_path_pattern(p).map_err(|reason| {
                    ContractError::InvalidValue {
                        field: "Url.AllowedPaths".to_owned(),
                        reason: format!("{}: {reason}", quote(p)),
                    }
                })?;
            }
        }
        if let Some(types) = &mut self.allowed_content_types {
            for t in types.iter_mut() {
                check_content_type(t)?;
                t.make_ascii_lowercase();
            }
            check_list("Url.AllowedContentTypes", types, false)?;
        }
        if let Some(max) = self.max_body_bytes {
            in_range("Url.MaxBodyBytes", max, 1, SIX_MIB)?;
        }
        if let Some(max) = self.max_header_bytes {
            in_range("Url.MaxHeaderBytes", max, 1, 1024 * 1024)?;
        }
        if let Some(headers) = &mut self.required_headers {
            for h in headers.iter_mut() {
                check_header_name(h)?;
                h.make_ascii_lowercase();
            }
            check_list("Url.RequiredHeaders", headers, true)?;
        }
        Ok(())
    }
}

fn in_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ContractError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ContractError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// A list has at most [`MAX_LIST`] entries, none repeated, and (unless `may_be_empty`) at
/// least one: an empty allow-list would refuse every request, which is never what is meant.
fn check_list(field: &str, list: &[String], may_be_empty: bool) -> Result<(), ContractError> {
    let invalid = |reason: String| ContractError::InvalidValue {
        field: field.to_owned(),
        reason,
    };
    if list.is_empty() && !may_be_empty {
        return Err(invalid("must list at least one entry".to_owned()));
    }
    if list.len() > MAX_LIST {
        return Err(invalid(format!(
            "lists {} entries; at most {MAX_LIST} are allowed",
            list.len()
        )));
    }
    for (i, entry) in list.iter().enumerate() {
        if list.get(..i).is_some_and(|before| before.contains(entry)) {
            return Err(invalid(format!("{} is listed twice", quote(entry))));
        }
    }
    Ok(())
}

/// An RFC 9110 `tchar`: the characters of a token (method, header name, media type part).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(is_tchar)
}

/// Methods are case-sensitive tokens; the contract spells them in uppercase (`GET`), as every
/// HTTP client sends them.
fn check_method(m: &str) -> Result<(), ContractError> {
    if is_token(m, 32) && !m.bytes().any(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(ContractError::InvalidValue {
            field: "Url.AllowedMethods".to_owned(),
            reason: format!(
                "{} is not an uppercase HTTP method token of at most 32 characters",
                quote(m)
            ),
        })
    }
}

/// A media type without parameters: `type/subtype`, each a token.
fn check_content_type(t: &str) -> Result<(), ContractError> {
    let valid = t.len() <= 127
        && !t.contains('*')
        && t.split_once('/')
            .is_some_and(|(ty, sub)| is_token(ty, 127) && is_token(sub, 127));
    if valid {
        Ok(())
    } else {
        Err(ContractError::InvalidValue {
            field: "Url.AllowedContentTypes".to_owned(),
            reason: format!(
                "{} is not a media type `type/subtype` (no parameters, no wildcards)",
                quote(t)
            ),
        })
    }
}

fn check_header_name(h: &str) -> Result<(), ContractError> {
    if is_token(h, 128) {
        Ok(())
    } else {
        Err(ContractError::InvalidValue {
            field: "Url.RequiredHeaders".to_owned(),
            reason: format!(
                "{} is not a header name token of at most 128 characters",
                quote(h)
            ),
        })
    }
}

/// The owner's text quoted in an error message: escaped, and cut if long.
fn quote(text: &str) -> String {
    format!("\"{}\"", clip(text, QUOTE_CHARS))
}

/// A copy of `value` whose objects list their keys in sorted order, whichever order the
/// `serde_json::Map` in this build keeps.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn refused(doc: &str) -> ContractError {
        match InputContract::parse(doc.as_bytes()) {
            Ok(c) => panic!("{doc} should be refused, parsed as {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = r#"{
          "EventSchema": {"type": "object"},
          "Json": { "MaxDepth": 64, "MaxStringLength": 262144, "AllowDuplicateKeys": false },
          "Url": {
            "AllowedMethods": ["GET", "POST"],
            "AllowedPaths": ["/orders", "/orders/*"],
            "AllowedContentTypes": ["application/json"],
            "MaxBodyBytes": 65536,
            "MaxHeaderBytes": 16384,
            "RequiredHeaders": ["x-api-key"]
          }
        }"#;
        let c = InputContract::parse(doc.as_bytes()).unwrap();
        assert_eq!(c.json.as_ref().unwrap().max_depth, Some(64));
        assert_eq!(c.url.as_ref().unwrap().max_body_bytes, Some(65536));
    }

    #[test]
    fn every_member_is_optional() {
        assert_eq!(
            InputContract::parse(b"{}").unwrap(),
            InputContract::default()
        );
        assert_eq!(
            InputContract::parse(br#"{"Json":{},"Url":{}}"#)
                .unwrap()
                .to_json(),
            r#"{"Json":{},"Url":{}}"#
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        for (doc, name) in [
            (r#"{"EventSchemas": {}}"#, "EventSchemas"),
            (r#"{"Json": {"MaxDepht": 3}}"#, "MaxDepht"),
            (r#"{"Url": {"AllowedMethod": ["GET"]}}"#, "AllowedMethod"),
            (r#"{"eventSchema": {}}"#, "eventSchema"),
        ] {
            let e = refused(doc);
            assert!(e.to_string().contains(name), "{e}");
            assert_eq!(e.code(), "InvalidParameterValueException");
        }
    }

    #[test]
    fn oversized_documents_are_refused() {
        let doc = format!(
            r#"{{"EventSchema": {{"description": "{}"}}}}"#,
            "x".repeat(MAX_CONTRACT_BYTES)
        );
        let e = refused(&doc);
        assert!(matches!(e, ContractError::TooLarge { .. }), "{e}");
        assert_eq!(e.code(), "InvalidParameterValueException");
    }

    #[test]
    fn malformed_documents_are_refused() {
        for doc in [
            "",
            "[",
            "{\"Json\": 5}",
            "null",
            "{\"Json\":{\"MaxDepth\":-1}}",
            "{\"Json\":{\"MaxDepth\":1.5}}",
        ] {
            assert!(matches!(refused(doc), ContractError::Malformed(_)), "{doc}");
        }
        assert!(matches!(
            InputContract::parse(b"{\"Url\":{}}\xff"),
            Err(ContractError::Malformed(_))
        ));
    }

    #[test]
    fn repeated_keys_are_refused_anywhere() {
        let e = refused(r#"{"EventSchema": {"type": "string", "type": "object"}}"#);
        assert!(e.to_string().contains("/EventSchema/type"), "{e}");
        assert!(matches!(
            refused(r#"{"Json": {}, "Json": {}}"#),
            ContractError::Malformed(_)
        ));
    }

    #[test]
    fn limits_out_of_range_are_refused() {
        for (doc, field) in [
            (r#"{"Json": {"MaxDepth": 0}}"#, "Json.MaxDepth"),
            (r#"{"Json": {"MaxDepth": 128}}"#, "Json.MaxDepth"),
            (
                r#"{"Json": {"MaxStringLength": 0}}"#,
                "Json.MaxStringLength",
            ),
            (
                r#"{"Json": {"MaxStringLength": 6291457}}"#,
                "Json.MaxStringLength",
            ),
            (r#"{"Url": {"MaxBodyBytes": 0}}"#, "Url.MaxBodyBytes"),
            (r#"{"Url": {"MaxBodyBytes": 6291457}}"#, "Url.MaxBodyBytes"),
            (
                r#"{"Url": {"MaxHeaderBytes": 1048577}}"#,
                "Url.MaxHeaderBytes",
            ),
        ] {
            let e = refused(doc);
            assert!(
                matches!(e, ContractError::OutOfRange { field: f, .. } if f == field),
                "{doc}: {e}"
            );
        }
        assert!(InputContract::parse(
            br#"{"Json": {"MaxDepth": 127, "MaxStringLength": 6291456}}"#
        )
        .is_ok());
        assert!(InputContract::parse(
            br#"{"Url": {"MaxBodyBytes": 6291456, "MaxHeaderBytes": 1048576}}"#
        )
        .is_ok());
    }

    #[test]
    fn url_entries_are_checked() {
        for (doc, field) in [
            (
                r#"{"Url": {"AllowedMethods": ["get"]}}"#,
                "Url.AllowedMethods",
            ),
            (
                r#"{"Url": {"AllowedMethods": ["GE T"]}}"#,
                "Url.AllowedMethods",
            ),
            (r#"{"Url": {"AllowedMethods": []}}"#, "Url.AllowedMethods"),
            (
                r#"{"Url": {"AllowedMethods": ["GET", "GET"]}}"#,
                "Url.AllowedMethods",
            ),
            (
                r#"{"Url": {"AllowedPaths": ["orders"]}}"#,
                "Url.AllowedPaths",
            ),
            (
                r#"{"Url": {"AllowedPaths": ["/a/*/b"]}}"#,
                "Url.AllowedPaths",
            ),
            (r#"{"Url": {"AllowedPaths": ["/a*"]}}"#, "Url.AllowedPaths"),
            (
                r#"{"Url": {"AllowedPaths": ["/a/../b"]}}"#,
                "Url.AllowedPaths",
            ),
            (
                r#"{"Url": {"AllowedPaths": ["/a?b=1"]}}"#,
                "Url.AllowedPaths",
            ),
            (
                r#"{"Url": {"AllowedContentTypes": ["application/json; charset=utf-8"]}}"#,
                "Url.AllowedContentTypes",
            ),
            (
                r#"{"Url": {"AllowedContentTypes": ["application/*"]}}"#,
                "Url.AllowedContentTypes",
            ),
            (
                r#"{"Url": {"AllowedContentTypes": ["json"]}}"#,
                "Url.AllowedContentTypes",
            ),
            (
                r#"{"Url": {"AllowedContentTypes": ["Application/JSON", "application/json"]}}"#,
                "Url.AllowedContentTypes",
            ),
            (
                r#"{"Url": {"RequiredHeaders": ["x api key"]}}"#,
                "Url.RequiredHeaders",
            ),
            (
                r#"{"Url": {"RequiredHeaders": [""]}}"#,
                "Url.RequiredHeaders",
            ),
            (
                r#"{"Url": {"RequiredHeaders": ["X-Key", "x-key"]}}"#,
                "Url.RequiredHeaders",
            ),
        ] {
            let e = refused(doc);
            assert!(
                matches!(&e, ContractError::InvalidValue { field: f, .. } if f == field),
                "{doc}: {e}"
            );
        }
        let many: Vec<String> = (0..33).map(|i| format!("\"M{i}\"")).collect();
        let doc = format!(r#"{{"Url": {{"AllowedMethods": [{}]}}}}"#, many.join(","));
        assert!(refused(&doc).to_string().contains("at most 32"));
        assert!(InputContract::parse(br#"{"Url": {"RequiredHeaders": []}}"#).is_ok());
    }

    #[test]
    fn event_schema_must_be_an_object_or_a_boolean() {
        assert!(matches!(
            refused(r#"{"EventSchema": 5}"#),
            ContractError::InvalidValue { .. }
        ));
        assert!(matches!(
            refused(r#"{"EventSchema": "x"}"#),
            ContractError::InvalidValue { .. }
        ));
        assert!(InputContract::parse(br#"{"EventSchema": true}"#).is_ok());
    }

    #[test]
    fn to_json_is_canonical() {
        let doc = r#"{"Url": {"RequiredHeaders": ["X-Api-Key"], "AllowedContentTypes": ["Application/Json"]},
                      "EventSchema": {"type": "object", "properties": {"b": {}, "a": {}}}}"#;
        let c = InputContract::parse(doc.as_bytes()).unwrap();
        let json = c.to_json();
        assert_eq!(
            json,
            r#"{"EventSchema":{"properties":{"a":{},"b":{}},"type":"object"},"Url":{"AllowedContentTypes":["application/json"],"RequiredHeaders":["x-api-key"]}}"#
        );
        let again = InputContract::parse(json.as_bytes()).unwrap();
        assert_eq!(again, c);
        assert_eq!(again.to_json(), json);
    }

    #[test]
    fn error_messages_quote_little_of_the_document() {
        let long = "K".repeat(100_000);
        let e = refused(&format!(r#"{{"{long}": 1}}"#));
        assert!(e.to_string().len() < 400, "{e}");
        let e = refused(&format!(r#"{{"Url": {{"AllowedMethods": ["{long}"]}}}}"#));
        assert!(e.to_string().len() < 400, "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = InputContract::parse(&bytes);
        }

        #[test]
        fn json_like_documents_never_panic(doc in r#"\{("(EventSchema|Json|Url|MaxDepth|AllowedPaths)":(\{\}|\[\]|"/[a-z*]{0,4}"|[0-9]{1,3}|true|null),?){0,4}\}"#) {
            let _ = InputContract::parse(doc.as_bytes());
        }
    }
}
