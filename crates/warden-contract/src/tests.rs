use proptest::prelude::*;

use super::*;

fn compiled(doc: &str) -> Compiled {
    Compiled::compile(&InputContract::parse(doc.as_bytes()).unwrap()).unwrap()
}

fn violations(c: &Compiled, payload: &str) -> Violations {
    match c.check_event(payload.as_bytes()) {
        Ok(()) => panic!("{payload:?} should be refused"),
        Err(v) => v,
    }
}

const ORDER: &str = r#"{"EventSchema": {
    "type": "object",
    "required": ["order"],
    "properties": {"order": {"type": "object", "properties": {"id": {"type": "string"}}}}
}}"#;

#[test]
fn a_matching_event_passes() {
    let c = compiled(ORDER);
    assert_eq!(c.check_event(br#"{"order": {"id": "o-1"}}"#), Ok(()));
}

#[test]
fn schema_violations_name_their_location() {
    let c = compiled(ORDER);
    let v = violations(&c, r#"{"order": {"id": 7}}"#);
    assert_eq!(v.to_string(), "/order/id: 7 is not of type \"string\"");
    assert_eq!(v.code(), "InvalidRequestContentException");
    let v = violations(&c, "{}");
    assert_eq!(v.to_string(), "\"order\" is a required property");
}

#[test]
fn an_empty_payload_is_checked_as_an_empty_object() {
    assert_eq!(compiled("{}").check_event(b""), Ok(()));
    assert_eq!(
        compiled(r#"{"EventSchema": {"type": "object"}}"#).check_event(b""),
        Ok(())
    );
    let v = compiled(ORDER).check_event(b"").unwrap_err();
    assert_eq!(v.as_slice()[0].message, "\"order\" is a required property");
    // Whitespace is not empty: it is not JSON.
    assert!(compiled("{}").check_event(b"  ").is_err());
}

#[test]
fn invalid_utf8_and_malformed_json_are_violations_of_the_whole_payload() {
    let c = compiled("{}");
    let v = c.check_event(b"{\"a\": \"\xff\"}").unwrap_err();
    assert_eq!(v.as_slice()[0].location, "");
    assert!(
        v.to_string().starts_with("payload is not valid UTF-8"),
        "{v}"
    );
    let v = violations(&c, "[1, ]");
    assert_eq!(
        v.to_string(),
        "payload is not valid JSON: trailing comma at line 1 column 5"
    );
    let v = violations(&c, "{\"a\": nul}");
    assert_eq!(
        v.to_string(),
        "payload is not valid JSON: expected ident at line 1 column 10"
    );
}

#[test]
fn oversized_payloads_are_refused_before_reading() {
    let c = compiled("{}");
    let big = vec![b' '; MAX_EVENT_BYTES + 1];
    let v = c.check_event(&big).unwrap_err();
    assert!(v.to_string().contains("the limit is 6291456"), "{v}");
}

#[test]
fn defaults_without_a_json_section_are_lenient_but_bounded() {
    let c = compiled("{}");
    assert_eq!(c.check_event(br#"{"a": 1, "a": 2}"#), Ok(()));
    assert_eq!(c.check_event(b"[18446744073709551615]"), Ok(()));
    let deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
    assert_eq!(c.check_event(deep.as_bytes()), Ok(()));
    let deeper = format!("{}{}", "[".repeat(65), "]".repeat(65));
    assert!(violations(&c, &deeper)
        .to_string()
        .contains("limit of 64 levels"));
    let long = format!("\"{}\"", "x".repeat(262_145));
    assert!(violations(&c, &long)
        .to_string()
        .contains("limit of 262144 bytes"));
    assert!(violations(&c, "1e999").to_string().contains("IEEE-754"));
}

#[test]
fn a_declared_json_section_is_strict() {
    let c = compiled(r#"{"Json": {}}"#);
    let v = violations(&c, r#"{"a": {"b": 1, "b": 2}}"#);
    assert_eq!(v.as_slice()[0].location, "/a/b");
    assert!(v.to_string().contains("duplicate key"));
    let v = violations(&c, r#"{"n": [9007199254740992]}"#);
    assert_eq!(v.as_slice()[0].location, "/n/0");
    assert_eq!(
        c.check_event(br#"{"n": 9007199254740991, "f": 1.5e300}"#),
        Ok(())
    );

    let c =
        compiled(r#"{"Json": {"AllowDuplicateKeys": true, "MaxDepth": 2, "MaxStringLength": 4}}"#);
    assert_eq!(c.check_event(br#"{"a": [1], "a": "abcd"}"#), Ok(()));
    assert!(violations(&c, r#"{"a": [[1]]}"#)
        .to_string()
        .starts_with("/a/0: nesting"));
    assert!(violations(&c, r#"{"abcde": 1}"#)
        .to_string()
        .contains("limit of 4 bytes"));
}

#[test]
fn json_limits_apply_before_the_schema() {
    let c = compiled(r#"{"EventSchema": {"type": "string"}, "Json": {"MaxStringLength": 3}}"#);
    let v = violations(&c, "[\"abcd\"]");
    assert_eq!(v.as_slice().len(), 1);
    assert!(v.to_string().contains("limit of 3 bytes"), "{v}");
}

#[test]
fn violations_are_capped() {
    let c = compiled(r#"{"EventSchema": {"items": {"type": "string"}}}"#);
    let payload = format!("[{}]", vec!["1"; 25].join(","));
    let v = violations(&c, &payload);
    assert_eq!(v.as_slice().len(), MAX_VIOLATIONS);
    assert_eq!(v.omitted(), 15);
    assert_eq!(v.len(), 25);
    assert!(!v.is_empty());
    let text = v.to_string();
    assert!(
        text.starts_with("/0: 1 is not of type \"string\"; /1: "),
        "{text}"
    );
    assert!(text.ends_with("; and 15 more"), "{text}");
    assert_eq!(text.matches("; ").count(), 10);
}

#[test]
fn a_million_errors_stay_cheap() {
    let c = compiled(r#"{"EventSchema": {"items": {"type": "string"}}}"#);
    let payload = format!("[{}]", vec!["1"; 1_000_000].join(","));
    let v = violations(&c, &payload);
    assert_eq!(v.as_slice().len(), 1);
    assert_eq!(v.as_slice()[0].location, "/0");
}

#[test]
fn huge_values_never_appear_in_messages() {
    let c = compiled(
        r#"{"EventSchema": {"properties": {"s": {"type": "integer"}}, "propertyNames": {"maxLength": 8}}}"#,
    );
    let huge = "\u{1}\u{e9}".repeat(100_000);
    let payload = serde_json::json!({ "s": huge.clone(), huge: 1 }).to_string();
    let v = c.check_event(payload.as_bytes()).unwrap_err();
    let text = v.to_string();
    assert!(text.len() < 400, "{text}");
    assert!(!text.chars().any(char::is_control), "{text}");
}

#[test]
fn compile_refuses_what_parse_cannot_see() {
    let contract =
        InputContract::parse(br#"{"EventSchema": {"$ref": "https://example.com/s"}}"#).unwrap();
    let e = Compiled::compile(&contract).unwrap_err();
    assert!(matches!(e, ContractError::ExternalRef { .. }));
    assert_eq!(e.code(), "InvalidParameterValueException");
    assert!(e.to_string().contains("https://example.com/s"), "{e}");
    let contract =
        InputContract::parse(br#"{"EventSchema": {"$ref": "file:///etc/passwd"}}"#).unwrap();
    assert!(Compiled::compile(&contract)
        .unwrap_err()
        .to_string()
        .contains("file:///etc/passwd"));
    let contract = InputContract::parse(
        br#"{"EventSchema": {"$schema": "http://json-schema.org/draft-04/schema#"}}"#,
    )
    .unwrap();
    assert!(Compiled::compile(&contract)
        .unwrap_err()
        .to_string()
        .contains("draft-04"));
}

#[test]
fn compile_checks_contracts_built_in_the_crate() {
    let contract = InputContract {
        json: Some(document::JsonSection {
            max_depth: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        Compiled::compile(&contract),
        Err(ContractError::OutOfRange { .. })
    ));
}

#[test]
fn deep_schemas_compile_and_deep_events_validate() {
    // The deepest document and the deepest event allowed, with a recursive schema, on a
    // test thread's ordinary stack.
    let mut schema = String::from("{\"type\": \"array\"}");
    for _ in 0..60 {
        schema = format!("{{\"properties\": {{\"a\": {schema}}}}}");
    }
    let c = compiled(&format!(r#"{{"EventSchema": {schema}}}"#));
    assert_eq!(c.check_event(b"{}"), Ok(()));

    let c = compiled(
        r##"{"EventSchema": {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}, "Json": {"MaxDepth": 127}}"##,
    );
    let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
    assert_eq!(c.check_event(deep.as_bytes()), Ok(()));
    let bad = format!("{}1{}", "[".repeat(127), "]".repeat(127));
    let v = violations(&c, &bad);
    assert_eq!(v.as_slice()[0].location.matches('/').count(), 127);
}

#[test]
fn requests_are_checked_only_with_a_url_section() {
    let req = RequestParts {
        method: "DELETE",
        path: "/anything",
        headers: &[],
        body_len: 1 << 30,
    };
    assert_eq!(compiled("{}").check_request(&req), Ok(()));
    let c = compiled(r#"{"Url": {"AllowedMethods": ["GET"], "MaxBodyBytes": 10}}"#);
    let v = c.check_request(&req).unwrap_err();
    assert_eq!(v.to_string(), "method: method \"DELETE\" is not allowed; allowed: GET; body: body is 1073741824 bytes; the limit is 10");
    assert_eq!(v.code(), "InvalidRequestContentException");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_check_event(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for c in [compiled("{}"), compiled(ORDER), compiled(r#"{"Json": {"MaxDepth": 3, "MaxStringLength": 4}}"#)] {
            let _ = c.check_event(&bytes);
        }
    }

    #[test]
    fn arbitrary_json_never_panics_and_agrees_with_serde_json(text in "[\\[\\]{}\",:0-9a-z\\\\ .eE+-]{0,64}") {
        let c = compiled(r#"{"EventSchema": true, "Json": {"MaxDepth": 127, "MaxStringLength": 6291456, "AllowDuplicateKeys": true}}"#);
        let ours = c.check_event(text.as_bytes());
        let theirs = serde_json::from_str::<serde_json::Value>(&text);
        if !text.is_empty() && ours.is_ok() {
            prop_assert!(theirs.is_ok(), "{:?}", text);
        }
        if let (Err(v), Ok(_)) = (&ours, &theirs) {
            // The only refusals of text serde_json accepts are the integer rule's.
            prop_assert!(v.to_string().contains("2^53"), "{:?}: {}", text, v);
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_crashing(depth in 65usize..=100_000, object in any::<bool>(), closed in any::<bool>()) {
        let (open, close) = if object { ("{\"k\":", "}") } else { ("[", "]") };
        let mut text = open.repeat(depth);
        if closed {
            text.push('1');
            text.push_str(&close.repeat(depth));
        }
        let v = compiled(ORDER).check_event(text.as_bytes()).unwrap_err();
        prop_assert!(v.to_string().contains("limit of 64 levels"), "{}", v);
    }

    #[test]
    fn messages_are_bounded_for_any_string(s in any::<String>()) {
        let c = compiled(r#"{"EventSchema": {"properties": {"v": {"type": "integer"}}, "additionalProperties": {"maxLength": 0}}}"#);
        let payload = serde_json::json!({ "v": s.clone(), s.clone(): s.clone() }).to_string();
        if let Err(v) = c.check_event(payload.as_bytes()) {
            for violation in v.as_slice() {
                prop_assert!(!violation.message.chars().any(char::is_control));
                prop_assert!(!violation.location.chars().any(char::is_control));
                prop_assert!(violation.message.len() < 200, "{}", violation.message);
            }
        }
    }
}
