//! The `EventSchema`: compiling it without ever leaving the document, and turning the
//! `jsonschema` crate's errors into violations that quote no more than an excerpt.

use std::fmt::Write as _;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::Value;

use crate::excerpt::{clip, excerpt, pointer_segment, value_excerpt};
use crate::{ContractError, Violation, ViolationList};

/// The `$schema` values accepted, and the draft each names. An absent `$schema` means 2020-12.
const DIALECTS: &[(&str, Draft)] = &[
    (
        "https://json-schema.org/draft/2020-12/schema",
        Draft::Draft202012,
    ),
    (
        "https://json-schema.org/draft/2020-12/schema#",
        Draft::Draft202012,
    ),
    ("http://json-schema.org/draft-07/schema#", Draft::Draft7),
    ("http://json-schema.org/draft-07/schema", Draft::Draft7),
    ("https://json-schema.org/draft-07/schema#", Draft::Draft7),
    ("https://json-schema.org/draft-07/schema", Draft::Draft7),
];

/// Keywords whose string value is a reference to another schema.
const REFERENCE_KEYWORDS: &[&str] = &["$ref", "$dynamicRef", "$recursiveRef"];

/// Payloads with more values than this get only their first schema violation reported, and
/// none at all when the schema uses `anyOf` or `oneOf`: the `jsonschema` crate collects every
/// error of a failing `anyOf`/`oneOf` branch, and a copy of the failing instance with each, so
/// a full report on a large payload could cost far more memory than the payload itself.
const FULL_REPORT_MAX_VALUES: usize = 10_000;

/// How many steps a `pattern` with look-around or back-references may take per string before
/// it counts as a violation (plain patterns run in linear time and have no such limit).
const PATTERN_BACKTRACK_LIMIT: usize = 100_000;

/// A compiled `EventSchema`.
pub(crate) struct EventSchema {
    validator: Validator,
    /// Whether `anyOf` or `oneOf` appears anywhere in the schema document.
    has_alternatives: bool,
}

/// A retriever that refuses every URI: the schema may only refer to itself.
struct RefuseAll;

impl jsonschema::Retrieve for RefuseAll {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("retrieval of {uri} is refused: an input contract is self-contained").into())
    }
}

impl EventSchema {
    /// Compiles `schema`, refusing dialects other than 2020-12 and draft-07 and every
    /// reference that would leave the document.
    pub(crate) fn compile(schema: &Value) -> Result<EventSchema, ContractError> {
        let draft = match schema.get("$schema") {
            None => Draft::Draft202012,
            Some(Value::String(uri)) => dialect(uri)?,
            Some(other) => {
                return Err(ContractError::InvalidSchema {
                    location: "/$schema".to_owned(),
                    message: format!("{} is not a string", value_excerpt(other)),
                })
            }
        };
        let has_alternatives = inspect(schema)?;
        let validator = jsonschema::options()
            .with_draft(draft)
            .with_retriever(RefuseAll)
            .with_pattern_options(
                jsonschema::PatternOptions::fancy_regex().backtrack_limit(PATTERN_BACKTRACK_LIMIT),
            )
            .build(schema)
            .map_err(|e| compile_error(&e))?;
        Ok(EventSchema {
            validator,
            has_alternatives,
        })
    }

    /// Checks `instance` (a payload of `values` JSON values) and adds its violations.
    pub(crate) fn check(&self, instance: &Value, values: usize, out: &mut ViolationList) {
        if self.validator.is_valid(instance) {
            return;
        }
        if values <= FULL_REPORT_MAX_VALUES {
            for error in self.validator.iter_errors(instance) {
                out.push(violation(&error));
            }
        } else if !self.has_alternatives {
            if let Err(error) = self.validator.validate(instance) {
                out.push(violation(&error));
            }
        } else {
            out.push(Violation::new(
                "",
                format!(
                    "payload does not match the contract's EventSchema (details are reported \
                     only for payloads of at most {FULL_REPORT_MAX_VALUES} values)"
                ),
            ));
        }
    }
}

/// The draft a `$schema` URI names, or the refusal naming it.
fn dialect(uri: &str) -> Result<Draft, ContractError> {
    DIALECTS
        .iter()
        .find(|(known, _)| *known == uri)
        .map(|&(_, draft)| draft)
        .ok_or_else(|| ContractError::UnsupportedDialect(clip(uri, 200)))
}

/// Walks the whole schema document (iteratively) and refuses any reference that is not a
/// fragment of the document itself (`#…`) and any `$schema` that names another dialect;
/// returns whether `anyOf` or `oneOf` appears.
///
/// The walk covers every object in the document, keywords the `jsonschema` crate ignores
/// (an unknown keyword's subschema is never compiled, so a remote `$ref` there would pass
/// compilation silently) and data (`const`, `enum`, `default`, `examples`) alike: a reference
/// written anywhere is refused, which costs nothing to a schema that means none.
fn inspect(schema: &Value) -> Result<bool, ContractError> {
    let mut has_alternatives = false;
    let mut pending: Vec<(String, &Value)> = vec![(String::new(), schema)];
    while let Some((location, value)) = pending.pop() {
        match value {
            Value::Object(map) => {
                for (key, member) in map {
                    let here = format!("{location}/{}", pointer_segment(key));
                    if let Value::String(text) = member {
                        if REFERENCE_KEYWORDS.contains(&key.as_str()) && !text.starts_with('#') {
                            return Err(ContractError::ExternalRef {
                                location: here,
                                reference: clip(text, 200),
                            });
                        }
                        if key == "$schema" {
                            dialect(text)?;
                        }
                    }
                    if key == "anyOf" || key == "oneOf" {
                        has_alternatives = true;
                    }
                    pending.push((here, member));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    pending.push((format!("{location}/{i}"), item));
                }
            }
            _ => {}
        }
    }
    Ok(has_alternatives)
}

/// The contract error for a schema the `jsonschema` crate would not compile.
fn compile_error(error: &ValidationError<'_>) -> ContractError {
    if let ValidationErrorKind::Referencing(jsonschema::ReferencingError::Unretrievable {
        uri,
        ..
    }) = error.kind()
    {
        return ContractError::ExternalRef {
            location: pointer(error),
            reference: clip(uri, 200),
        };
    }
    ContractError::InvalidSchema {
        location: pointer(error),
        message: describe(error),
    }
}

/// The violation for one schema error.
fn violation(error: &ValidationError<'_>) -> Violation {
    Violation::new(pointer(error), describe(error))
}

/// The instance location of an error as a JSON Pointer, each segment an excerpt.
fn pointer(error: &ValidationError<'_>) -> String {
    let raw = error.instance_path().as_str();
    let mut out = String::new();
    // The crate's pointer is already RFC 6901-escaped: `/` inside a key is `~1`, so splitting
    // on `/` yields its segments; each is cut and escaped but not escaped again for `~`.
    for segment in raw.split('/').skip(1) {
        out.push('/');
        out.push_str(&excerpt(segment));
    }
    out
}

/// Up to three names, quoted as excerpts, then how many more.
fn names(list: &[String]) -> String {
    let mut out = String::new();
    for (i, name) in list.iter().take(3).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "\"{}\"", excerpt(name));
    }
    if list.len() > 3 {
        let _ = write!(out, " and {} more", list.len() - 3);
    }
    out
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A message for one schema error, built from its kind: the `jsonschema` crate's own messages
/// quote the whole failing value, and a failing value may be megabytes of the payload.
fn describe(error: &ValidationError<'_>) -> String {
    let v = value_excerpt(error.instance());
    match error.kind() {
        ValidationErrorKind::AdditionalItems { limit } => {
            format!(
                "{v} has more than {} allowed",
                plural(*limit as u64, "item", "items")
            )
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            format!(
                "additional properties are not allowed: {}",
                names(unexpected)
            )
        }
        ValidationErrorKind::AnyOf { .. } => {
            format!("{v} is not valid under any of the schemas listed in 'anyOf'")
        }
        ValidationErrorKind::BacktrackLimitExceeded { .. } => {
            format!("{v} could not be matched against 'pattern' within its backtracking limit")
        }
        ValidationErrorKind::RegexEngineFailure { .. } => {
            format!("{v} could not be matched against 'pattern'")
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("{v} is not the constant {}", value_excerpt(expected_value))
        }
        ValidationErrorKind::Contains => {
            format!("{v} has no item valid under 'contains'")
        }
        ValidationErrorKind::ContentEncoding { content_encoding } => {
            format!("{v} is not valid \"{}\" content", excerpt(content_encoding))
        }
        ValidationErrorKind::ContentMediaType { content_media_type } => {
            format!(
                "{v} is not valid \"{}\" content",
                excerpt(content_media_type)
            )
        }
        ValidationErrorKind::Custom { keyword, .. } => {
            format!("{v} is not valid under '{}'", excerpt(keyword))
        }
        ValidationErrorKind::Enum { options } => {
            let listed = match options.as_array() {
                Some(items) => {
                    let mut out = String::new();
                    for (i, item) in items.iter().take(3).enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        out.push_str(&value_excerpt(item));
                    }
                    if items.len() > 3 {
                        let _ = write!(out, " and {} more", items.len() - 3);
                    }
                    out
                }
                None => value_excerpt(options),
            };
            format!("{v} is not one of {listed}")
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => format!(
            "{v} is greater than or equal to the maximum of {}",
            value_excerpt(limit)
        ),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!(
            "{v} is less than or equal to the minimum of {}",
            value_excerpt(limit)
        ),
        ValidationErrorKind::FalseSchema => format!("{v} is not allowed here (false schema)"),
        ValidationErrorKind::Format { format } => format!("{v} is not a \"{}\"", excerpt(format)),
        ValidationErrorKind::FromUtf8 { .. } => format!("{v} does not decode to UTF-8"),
        ValidationErrorKind::MaxItems { limit } => {
            format!("{v} has more than {}", plural(*limit, "item", "items"))
        }
        ValidationErrorKind::Maximum { limit } => {
            format!(
                "{v} is greater than the maximum of {}",
                value_excerpt(limit)
            )
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!(
                "{v} is longer than {}",
                plural(*limit, "character", "characters")
            )
        }
        ValidationErrorKind::MaxProperties { limit } => {
            format!(
                "{v} has more than {}",
                plural(*limit, "property", "properties")
            )
        }
        ValidationErrorKind::MinItems { limit } => {
            format!("{v} has fewer than {}", plural(*limit, "item", "items"))
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("{v} is less than the minimum of {}", value_excerpt(limit))
        }
        ValidationErrorKind::MinLength { limit } => {
            format!(
                "{v} is shorter than {}",
                plural(*limit, "character", "characters")
            )
        }
        ValidationErrorKind::MinProperties { limit } => {
            format!(
                "{v} has fewer than {}",
                plural(*limit, "property", "properties")
            )
        }
        ValidationErrorKind::MultipleOf { multiple_of } => {
            format!(
                "{v} is not a multiple of {}",
                value_excerpt(&Value::from(*multiple_of))
            )
        }
        ValidationErrorKind::Not { .. } => format!("{v} is valid under the schema in 'not'"),
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            format!("{v} is valid under more than one of the schemas listed in 'oneOf'")
        }
        ValidationErrorKind::OneOfNotValid { .. } => {
            format!("{v} is not valid under any of the schemas listed in 'oneOf'")
        }
        ValidationErrorKind::Pattern { pattern } => {
            format!("{v} does not match \"{}\"", excerpt(pattern))
        }
        ValidationErrorKind::PropertyNames { error } => {
            format!("property name {}", describe(error))
        }
        ValidationErrorKind::Required { property } => {
            format!("{} is a required property", value_excerpt(property))
        }
        ValidationErrorKind::Type { kind } => match kind {
            TypeKind::Single(ty) => format!("{v} is not of type \"{ty}\""),
            TypeKind::Multiple(types) => {
                let listed: Vec<String> = types.iter().map(|t| format!("\"{t}\"")).collect();
                format!("{v} is not of types {}", listed.join(", "))
            }
        },
        ValidationErrorKind::UnevaluatedItems { unexpected } => format!(
            "{v} has unevaluated items, which are not allowed ({})",
            plural(unexpected.len() as u64, "item", "items")
        ),
        ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            format!(
                "unevaluated properties are not allowed: {}",
                names(unexpected)
            )
        }
        ValidationErrorKind::UniqueItems => format!("{v} has non-unique elements"),
        ValidationErrorKind::Referencing(e) => {
            format!(
                "a reference could not be resolved: {}",
                clip(&e.to_string(), 200)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compile(schema: Value) -> Result<EventSchema, ContractError> {
        EventSchema::compile(&schema)
    }

    fn violations(schema: Value, instance: Value) -> Vec<Violation> {
        let s = compile(schema).unwrap();
        let mut out = ViolationList::default();
        s.check(&instance, 1, &mut out);
        out.into_violations()
            .map(|v| v.as_slice().to_vec())
            .unwrap_or_default()
    }

    #[test]
    fn remote_refs_are_refused_by_name() {
        for (schema, location) in [
            (json!({"$ref": "https://example.com/s.json"}), "/$ref"),
            (
                json!({"properties": {"a": {"$ref": "http://169.254.169.254/latest"}}}),
                "/properties/a/$ref",
            ),
            (
                json!({"$defs": {"unused": {"$ref": "https://example.com/x"}}}),
                "/$defs/unused/$ref",
            ),
            (
                json!({"x-unknown": {"$ref": "https://example.com/x"}}),
                "/x-unknown/$ref",
            ),
            (
                json!({"$dynamicRef": "https://example.com/x#meta"}),
                "/$dynamicRef",
            ),
        ] {
            let Err(e) = compile(schema.clone()) else {
                panic!("{schema} compiled")
            };
            assert!(
                matches!(&e, ContractError::ExternalRef { location: l, .. } if l == location),
                "{e}"
            );
            assert!(
                e.to_string().contains("example.com") || e.to_string().contains("169.254"),
                "{e}"
            );
        }
    }

    #[test]
    fn file_and_relative_refs_are_refused() {
        for r in [
            "file:///etc/passwd",
            "other.json",
            "/abs/path.json",
            "urn:x:y",
            "//host/x",
        ] {
            let e = compile(json!({"items": {"$ref": r}})).err().unwrap();
            assert!(
                matches!(&e, ContractError::ExternalRef { reference, .. } if reference == r),
                "{e}"
            );
        }
    }

    #[test]
    fn the_retriever_refuses_what_the_scan_lets_through() {
        // A fragment against a remote base is still the document itself: no retrieval.
        assert!(compile(json!({"$id": "https://example.com/root", "$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a"})).is_ok());
        let e = compile_error(
            &jsonschema::options()
                .with_retriever(RefuseAll)
                .build(&json!({"$ref": "https://example.com/x"}))
                .err()
                .unwrap(),
        );
        assert!(
            matches!(&e, ContractError::ExternalRef { reference, .. } if reference == "https://example.com/x"),
            "{e}"
        );
    }

    #[test]
    fn local_refs_compile_and_validate() {
        let schema = json!({
            "$defs": {"id": {"type": "string"}},
            "type": "object",
            "properties": {"id": {"$ref": "#/$defs/id"}}
        });
        let v = violations(schema, json!({"id": 7}));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].location, "/id");
        assert_eq!(v[0].message, "7 is not of type \"string\"");
        let e = compile(json!({"$ref": "#/$defs/missing"})).err().unwrap();
        assert!(matches!(e, ContractError::InvalidSchema { .. }), "{e}");
    }

    #[test]
    fn dialects_other_than_2020_12_and_draft_07_are_refused() {
        for uri in [
            "http://json-schema.org/draft-04/schema#",
            "https://json-schema.org/draft/2019-09/schema",
            "https://example.com/my-meta",
        ] {
            let e = compile(json!({"$schema": uri})).err().unwrap();
            assert!(
                matches!(&e, ContractError::UnsupportedDialect(u) if u == uri),
                "{e}"
            );
            assert!(e.to_string().contains(uri));
        }
        let e = compile(json!({"properties": {"a": {"$id": "https://x/a", "$schema": "https://example.com/m"}}})).err().unwrap();
        assert!(matches!(e, ContractError::UnsupportedDialect(_)), "{e}");
        assert!(matches!(
            compile(json!({"$schema": 7})),
            Err(ContractError::InvalidSchema { .. })
        ));
        for (uri, _) in DIALECTS {
            let schema = json!({"$schema": uri, "type": "string"});
            assert!(compile(schema).is_ok(), "{uri}");
        }
    }

    #[test]
    fn draft_07_semantics_apply_when_named() {
        // In draft-07 `items` may be an array (tuple form); in 2020-12 that is `prefixItems`.
        let schema = json!({"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]});
        let v = violations(schema, json!([1]));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].location, "/0");
        assert!(compile(json!({"items": [{"type": "string"}]})).is_err());
        for (uri, draft) in DIALECTS {
            let schema = json!({"$schema": uri, "items": [{"type": "string"}]});
            let tuple_form_works = compile(schema).is_ok_and(|s| {
                let mut out = ViolationList::default();
                s.check(&json!([1]), 2, &mut out);
                out.into_violations().is_some()
            });
            assert_eq!(tuple_form_works, *draft == Draft::Draft7, "{uri}");
        }
    }

    #[test]
    fn formats_follow_each_drafts_default() {
        // 2020-12: `format` is an annotation only.
        assert!(violations(json!({"format": "email"}), json!("not an email")).is_empty());
        // draft-07: the `jsonschema` crate asserts known formats.
        let v = violations(
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "format": "email"}),
            json!("not an email"),
        );
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn invalid_schemas_are_refused_with_their_location() {
        let e = compile(json!({"properties": {"a": {"type": 5}}}))
            .err()
            .unwrap();
        assert!(
            matches!(&e, ContractError::InvalidSchema { location, .. } if location == "/properties/a/type"),
            "{e}"
        );
        let e = compile(json!({"pattern": "("})).err().unwrap();
        assert!(
            matches!(&e, ContractError::InvalidSchema { location, .. } if location == "/pattern"),
            "{e}"
        );
    }

    #[test]
    fn messages_never_echo_long_values() {
        let big = "A".repeat(1 << 20);
        let schema = json!({
            "type": "object",
            "properties": {"s": {"type": "integer"}, "t": {"maxLength": 3}, "u": {"enum": [1, 2]}},
            "additionalProperties": false,
            "propertyNames": {"maxLength": 100}
        });
        let mut instance = serde_json::Map::new();
        instance.insert("s".into(), json!(big));
        instance.insert("t".into(), json!(big));
        instance.insert("u".into(), json!([big.clone()]));
        instance.insert(big.clone(), json!(1));
        let v = violations(schema, Value::Object(instance));
        assert!(v.len() >= 4, "{v:?}");
        for v in &v {
            assert!(v.message.len() < 200, "{}", v.message);
            assert!(v.location.len() < 50, "{}", v.location);
        }
    }

    #[test]
    fn every_kind_reads_well() {
        let cases = [
            (
                json!({"required": ["id"]}),
                json!({}),
                "\"id\" is a required property",
            ),
            (
                json!({"minimum": 5}),
                json!(3),
                "3 is less than the minimum of 5",
            ),
            (
                json!({"maximum": 5}),
                json!(6),
                "6 is greater than the maximum of 5",
            ),
            (
                json!({"exclusiveMinimum": 5}),
                json!(5),
                "5 is less than or equal to the minimum of 5",
            ),
            (
                json!({"exclusiveMaximum": 5}),
                json!(5),
                "5 is greater than or equal to the maximum of 5",
            ),
            (
                json!({"minLength": 2}),
                json!("a"),
                "\"a\" is shorter than 2 characters",
            ),
            (
                json!({"maxLength": 1}),
                json!("ab"),
                "\"ab\" is longer than 1 character",
            ),
            (
                json!({"minItems": 1}),
                json!([]),
                "[] has fewer than 1 item",
            ),
            (
                json!({"maxItems": 0}),
                json!([1]),
                "[1] has more than 0 items",
            ),
            (
                json!({"minProperties": 1}),
                json!({}),
                "{} has fewer than 1 property",
            ),
            (
                json!({"maxProperties": 0}),
                json!({"a": 1}),
                "{\"a\":1} has more than 0 properties",
            ),
            (
                json!({"multipleOf": 2}),
                json!(3),
                "3 is not a multiple of 2.0",
            ),
            (
                json!({"const": "x"}),
                json!("y"),
                "\"y\" is not the constant \"x\"",
            ),
            (
                json!({"enum": [1, 2, 3, 4]}),
                json!(5),
                "5 is not one of 1, 2, 3 and 1 more",
            ),
            (
                json!({"type": ["string", "null"]}),
                json!(1),
                "1 is not of types \"null\", \"string\"",
            ),
            (
                json!({"pattern": "^a"}),
                json!("b"),
                "\"b\" does not match \"^a\"",
            ),
            (
                json!({"uniqueItems": true}),
                json!([1, 1]),
                "[1,1] has non-unique elements",
            ),
            (
                json!({"not": {}}),
                json!(1),
                "1 is valid under the schema in 'not'",
            ),
            (
                json!({"anyOf": [{"type": "string"}]}),
                json!(1),
                "1 is not valid under any of the schemas listed in 'anyOf'",
            ),
            (
                json!({"oneOf": [{}, {}]}),
                json!(1),
                "1 is valid under more than one of the schemas listed in 'oneOf'",
            ),
            (
                json!({"contains": {"type": "string"}}),
                json!([1]),
                "[1] has no item valid under 'contains'",
            ),
            (
                json!(false),
                json!(1),
                "1 is not allowed here (false schema)",
            ),
            (
                json!({"properties": {"x": {}}, "additionalProperties": false}),
                json!({"a": 1, "b": 2, "c": 3, "d": 4}),
                "additional properties are not allowed: \"a\", \"b\", \"c\" and 1 more",
            ),
            (
                json!({"unevaluatedProperties": false}),
                json!({"a": 1}),
                "unevaluated properties are not allowed: \"a\"",
            ),
            (
                json!({"prefixItems": [{}], "items": false}),
                json!([1, 2]),
                "2 is not allowed here (false schema)",
            ),
            (
                json!({"propertyNames": {"maxLength": 1}}),
                json!({"ab": 1}),
                "property name \"ab\" is longer than 1 character",
            ),
        ];
        for (schema, instance, expected) in cases {
            let v = violations(schema.clone(), instance);
            assert!(v.iter().any(|v| v.message == expected), "{schema}: {v:?}");
        }
    }

    #[test]
    fn large_payloads_report_one_violation() {
        let schema = json!({"items": {"type": "string"}});
        let s = compile(schema).unwrap();
        let instance = Value::Array(vec![json!(1); 50_000]);
        let mut out = ViolationList::default();
        s.check(&instance, 50_001, &mut out);
        let v = out.into_violations().unwrap();
        assert_eq!(v.as_slice().len(), 1);
        assert_eq!(v.omitted(), 0);
        assert_eq!(v.as_slice()[0].location, "/0");

        let s = compile(json!({"anyOf": [{"items": {"type": "string"}}]})).unwrap();
        let mut out = ViolationList::default();
        s.check(&instance, 50_001, &mut out);
        let v = out.into_violations().unwrap();
        assert_eq!(v.as_slice()[0].location, "");
    }

    #[test]
    fn hostile_patterns_stop_at_the_backtrack_limit() {
        let s = compile(json!({"pattern": "^(a+)+\\1$"})).unwrap();
        let mut out = ViolationList::default();
        let evil = json!(format!("{}b", "a".repeat(64)));
        s.check(&evil, 1, &mut out);
        assert!(out.into_violations().is_some());
    }
}
