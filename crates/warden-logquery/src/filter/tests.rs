use proptest::prelude::*;

use super::*;

fn p(pattern: &str) -> FilterPattern {
    parse(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
}

fn err(pattern: &str) -> PatternError {
    match parse(pattern) {
        Ok(fp) => panic!("{pattern:?} parsed as {fp:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn check(pattern: &str, yes: &[&str], no: &[&str]) {
    let fp = p(pattern);
    for m in yes {
        assert!(fp.matches(m), "{pattern:?} should match {m:?}");
    }
    for m in no {
        assert!(!fp.matches(m), "{pattern:?} should not match {m:?}");
    }
}

// ---- empty and terms ----

#[test]
fn empty_and_blank_patterns_match_everything() {
    for pattern in ["", "   ", "\t\n", "\" \"", " \"  \" "] {
        let fp = p(pattern);
        assert!(fp.matches_everything(), "{pattern:?}");
        assert!(fp.matches(""));
        assert!(fp.matches("anything"));
        assert_eq!(fp.kind(), PatternKind::All);
    }
}

#[test]
fn single_term_is_a_case_sensitive_substring() {
    check(
        "ERROR",
        &[
            "[ERROR] A fatal exception has occurred",
            "Exiting with ERRORCODE: -1",
        ],
        &["error", "ERRO", ""],
    );
}

#[test]
fn every_term_must_appear() {
    check(
        "ERROR Exception",
        &[
            "[ERROR] Caught IllegalArgumentException",
            "[ERROR] Unhandled Exception",
        ],
        &["[ERROR] fine", "Exception only"],
    );
    check(
        "Failed to process the request",
        &[
            "[WARN] Failed to process the request",
            "request the to process Failed",
        ],
        &["[WARN] Failed to process"],
    );
}

#[test]
fn question_marks_make_an_or() {
    let logs = [
        "ERROR WARN message",
        "ERROR message",
        "WARN message",
        "INFO",
    ];
    let matching = |pattern: &str| {
        let fp = p(pattern);
        logs.iter()
            .enumerate()
            .filter(|(_, m)| fp.matches(m))
            .map(|(i, _)| i + 1)
            .collect::<Vec<_>>()
    };
    assert_eq!(matching("ERROR"), [1, 2]);
    assert_eq!(matching("?ERROR ?WARN"), [1, 2, 3]);
    assert_eq!(matching("ERROR WARN"), [1]);
    assert_eq!(matching("ERROR -WARN"), [2]);
    assert_eq!(matching("-ERROR"), [3, 4]);
}

#[test]
fn exclusion_combines_with_required_terms() {
    check(
        "ERROR -Exiting",
        &["[ERROR] A fatal exception has occurred"],
        &["Exiting with ERRORCODE: -1", "nothing"],
    );
    // The spaced form of the same pattern.
    check(
        "\"ERROR\" - \"Exiting\"",
        &["[ERROR] x"],
        &["Exiting with ERRORCODE: -1"],
    );
    check("-\"not found\"", &["found it"], &["file not found"]);
}

#[test]
fn mixed_roles_need_all_required_one_optional_and_no_excluded() {
    check(
        "req ?a ?b -x",
        &["req a", "req b", "req a b"],
        &["req", "a b", "req a x"],
    );
}

#[test]
fn quoted_phrases_hold_any_character() {
    check(
        "\"INTERNAL SERVER ERROR\" \"[ERROR 400]\"",
        &["[ERROR 400] INTERNAL SERVER ERROR"],
        &[
            "INTERNAL SERVER ERROR",
            "[ERROR 400] INTERNAL  SERVER ERROR",
        ],
    );
    check(r#""say \"hi\"""#, &[r#"they say "hi" loudly"#], &["say hi"]);
    check(r#""C:\path\\x""#, &[r"C:\path\x"], &[r"C:\path\\x"]);
    check(
        "\"élan\" ünïcode_1",
        &["élan and ünïcode_1"],
        &["elan ünïcode_1"],
    );
}

#[test]
fn terms_with_other_characters_must_be_quoted() {
    for (pattern, term) in [
        ("ERROR:", "ERROR:"),
        ("ok 404.html", "404.html"),
        ("?a.b", "a.b"),
        ("-x-y", "x-y"),
        ("a --b", "-b"),
        ("x \"ok\"y", ""),
    ] {
        let e = err(pattern);
        if term.is_empty() {
            assert!(
                matches!(e, PatternError::Unexpected { .. }),
                "{pattern}: {e}"
            );
            continue;
        }
        assert_eq!(
            e,
            PatternError::InvalidTermCharacters {
                term: term.to_owned(),
                position: pattern.find(term).unwrap() + 1,
            },
            "{pattern}"
        );
        assert!(e
            .to_string()
            .starts_with(&format!("Invalid character(s) in term '{term}'")));
    }
}

#[test]
fn malformed_terms_are_refused_with_a_position() {
    assert_eq!(
        err("ok \"open"),
        PatternError::UnterminatedString { position: 4 }
    );
    assert!(matches!(
        err("ok ?"),
        PatternError::Unexpected { position: 5, .. }
    ));
    assert!(matches!(err("ok -  "), PatternError::Unexpected { .. }));
    assert!(matches!(
        err("ERROR %x%"),
        PatternError::Unsupported { position: 7, .. }
    ));
}

#[test]
fn length_is_limited_in_characters() {
    let ok = "é".repeat(MAX_PATTERN_CHARS);
    assert!(parse(&ok).is_ok());
    let long = "a".repeat(MAX_PATTERN_CHARS + 1);
    assert_eq!(
        err(&long),
        PatternError::TooLong {
            length: MAX_PATTERN_CHARS + 1,
            max: MAX_PATTERN_CHARS
        }
    );
}

// ---- regular expressions ----

#[test]
fn standalone_regex_searches_the_message() {
    check(
        "%AUTHORIZED%",
        &[
            "[ERROR 401] UNAUTHORIZED REQUEST",
            "[SUCCESS 200] AUTHORIZED REQUEST",
        ],
        &["authorized"],
    );
    check(
        r"%\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}%",
        &["from 10.0.0.1 ok"],
        &["from 10.0.0 ok"],
    );
    check("%[Ee]rror|[Ff]ail%", &["Error x", "it failed"], &["ERROR"]);
    check("%^[hc]at%", &["hat trick", "cat"], &["that"]);
    check("%[hc]at$%", &["a hat", "cat"], &["cats"]);
    check("%colou?r%", &["color", "colour"], &["colr"]);
    check(
        "%bind: address already in use%",
        &["bind: address already in use (98)"],
        &[],
    );
    assert_eq!(p("%a%").kind(), PatternKind::Regex);
}

#[test]
fn regex_restrictions_are_cloudwatchs() {
    let reason = |pattern: &str| match err(pattern) {
        PatternError::InvalidRegex { reason, .. } => reason,
        e => panic!("{pattern}: {e}"),
    };
    assert!(reason("%(a|b)%").contains("parentheses"));
    assert!(reason("%something!%").contains("'!'"));
    assert!(reason("%caf\u{e9}%").contains("multi-byte"));
    assert!(reason("%%").contains("empty"));
    assert!(
        reason("%a{1000}{1000}%").contains("size"),
        "{}",
        reason("%a{1000}{1000}%")
    );
    assert!(matches!(
        err("%abc"),
        PatternError::UnterminatedRegex { position: 1 }
    ));
    assert!(matches!(
        err("%a% b"),
        PatternError::Unsupported { position: 5, .. }
    ));
    assert_eq!(
        err("{ $.a = %x% || $.b = %y% || $.c = %z% }"),
        PatternError::TooManyRegexes { max: 2 }
    );
}

// ---- JSON ----

const EXAMPLE: &str = r#"{
  "eventType": "UpdateTrail",
  "sourceIPAddress": "111.111.111.111",
  "arrayKey": ["value", "another value"],
  "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
  "SomeObject": null,
  "ThisFlag": true,
  "Other": false,
  "latency": 750,
  "code": "404"
}"#;

#[test]
fn json_documented_examples_match() {
    for pattern in [
        r#"{ $.eventType = "UpdateTrail" }"#,
        "{ $.eventType = UpdateTrail }",
        "{$.eventType=UpdateTrail}",
        "{ $.sourceIPAddress != 123.123.* }",
        "{ $.sourceIPAddress = 111.111.* }",
        r#"{ $.arrayKey[0] = "value" }"#,
        r#"{ $.arrayKey[1] = "another value" }"#,
        "{ $.objectList[1].id = 2 }",
        "{ $.SomeObject IS NULL }",
        "{ $.SomeOtherObject NOT EXISTS }",
        "{ $.ThisFlag IS TRUE }",
        "{ $.Other IS FALSE }",
        "{ $.ThisFlag is true }",
        "{ $.eventType = *Trail }",
        "{ $.eventType = Update* }",
        "{ $.eventType = *dateTr* }",
        r#"{ $.eventType = "*" }"#,
        "{ $.latency = * }",
        "{ $.latency >= 500 }",
        "{ $.latency > +500 }",
        "{ $.latency < 10e3 }",
        "{ $.latency = 750 }",
        "{ $.latency = 750.0 }",
        "{ $.latency != 500 }",
        "{ $.code = 404 }",
        "{ $.code < 500 }",
        r#"{ $.objectList[0].id = "1" }"#,
        "{ $.eventType = %Update% }",
        "{ $.eventType != %^Delete% }",
    ] {
        assert!(p(pattern).matches(EXAMPLE), "{pattern} should match");
    }
}

#[test]
fn json_non_matches() {
    for pattern in [
        r#"{ $.eventType = "updatetrail" }"#,
        "{ $.eventType = Ev*ent }",
        "{ $.sourceIPAddress = 123.123.* }",
        "{ $.arrayKey[2] = value }",
        "{ $.objectList[0].id = 2 }",
        "{ $.SomeObject NOT EXISTS }",
        "{ $.Missing IS NULL }",
        "{ $.ThisFlag IS FALSE }",
        "{ $.SomeObject IS TRUE }",
        "{ $.latency < 500 }",
        "{ $.latency != 750 }",
        "{ $.eventType > 3 }",
        // Comparisons need a string or number node: both operators fail elsewhere.
        "{ $.arrayKey = value }",
        "{ $.arrayKey != value }",
        "{ $.objectList != 1 }",
        "{ $.SomeObject != x }",
        "{ $.ThisFlag = true }",
        "{ $.Missing != x }",
        "{ $.latency = * && $.missing = * }",
    ] {
        assert!(!p(pattern).matches(EXAMPLE), "{pattern} should not match");
    }
}

#[test]
fn json_wildcard_only_at_the_ends() {
    let pattern = p("{ $.e = Ev*ent }");
    assert!(pattern.matches(r#"{"e": "Ev*ent"}"#));
    assert!(!pattern.matches(r#"{"e": "Event"}"#));
}

#[test]
fn json_compound_conditions_follow_precedence() {
    let log = r#"{
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [{"id": 2, "email": "John.Doe@example.com"}, {"id": 3, "email": "Jane.Doe@example.com"}],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]]
    }"#;
    for (pattern, want) in [
        (
            r#"{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }"#,
            true,
        ),
        (
            r#"{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }"#,
            false,
        ),
        (
            r#"{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch && $.actions[2] = nomatch }"#,
            true,
        ),
        (
            r#"{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) && $.actions[2] = nomatch }"#,
            false,
        ),
        ("{ $.coordinates[2][0] = 7 }", true),
        ("{ ((($.user.id = 1))) }", true),
        ("{ $.user.id = 2 || $.user.id = 1 }", true),
    ] {
        assert_eq!(p(pattern).matches(log), want, "{pattern}");
    }
}

#[test]
fn json_or_across_events() {
    let fp = p("{$.foo = bar || $.foo = baz }");
    assert!(fp.matches(r#"{"foo": "bar"}"#));
    assert!(fp.matches(r#"{"foo": "baz"}"#));
    assert!(!fp.matches(r#"{"foo": "qux"}"#));
}

#[test]
fn messages_that_are_not_json_objects_never_match() {
    let fp = p("{ $.a NOT EXISTS }");
    assert!(fp.matches(r#"{"b": 1}"#));
    assert!(fp.matches(r#"  {"b": 1}  "#));
    for m in [
        "",
        "a",
        "[1]",
        "\"s\"",
        "{",
        "{\"b\": 1} trailing",
        "null",
        "{\"b\":}",
    ] {
        assert!(!fp.matches(m), "{m}");
    }
}

#[test]
fn json_selector_keys_allow_dashes_and_underscores() {
    check(
        "{ $.request-id = abc && $.user_name = bob }",
        &[r#"{"request-id": "abc", "user_name": "bob"}"#],
        &[r#"{"request-id": "abd", "user_name": "bob"}"#],
    );
}

#[test]
fn json_quoted_values_hold_any_character() {
    check(
        r#"{ $.email = "a@b.c" && $.path = "C:\\x" }"#,
        &[r#"{"email": "a@b.c", "path": "C:\\x"}"#],
        &[r#"{"email": "a@b.d", "path": "C:\\x"}"#],
    );
}

#[test]
fn json_errors_name_the_problem_and_place() {
    assert_eq!(
        err("{ ($.a = 1 }"),
        PatternError::UnbalancedParentheses { position: 3 }
    );
    assert_eq!(
        err("{ $.a = 1) }"),
        PatternError::UnbalancedParentheses { position: 10 }
    );
    assert_eq!(
        err("{ $.a = 1"),
        PatternError::UnbalancedBrackets {
            open: '{',
            close: '}',
            position: 1
        }
    );
    assert!(err("{ ($.a = 1 }")
        .to_string()
        .contains("Unbalanced parentheses at position 3"));
    let selector = |pattern: &str| match err(pattern) {
        PatternError::InvalidSelector {
            selector, reason, ..
        } => (selector, reason),
        e => panic!("{pattern}: {e}"),
    };
    assert!(selector("{ $.* = 1 }").1.contains("wildcard"));
    assert!(selector("{ $[0] = 1 }").1.contains("follow a property"));
    assert!(selector("{ $ = 1 }").1.contains("starts with"));
    assert!(selector("{ $.a[x] = 1 }").1.contains("index"));
    assert!(selector("{ $.a[-1] = 1 }").1.contains("index"));
    assert_eq!(selector("{ $.a..b = 1 }").0, "$.a..b");
    assert!(matches!(err("{ $.a = }"), PatternError::Unexpected { .. }));
    assert!(matches!(err("{ $.a }"), PatternError::Unexpected { .. }));
    assert!(matches!(
        err("{ $.a IS MAYBE }"),
        PatternError::Unexpected { .. }
    ));
    assert!(matches!(
        err("{ $.a NOT THERE }"),
        PatternError::Unexpected { .. }
    ));
    assert!(matches!(
        err("{ $.a = 1 } x"),
        PatternError::Unexpected { .. }
    ));
    assert!(matches!(err("{ }"), PatternError::Unexpected { .. }));
    assert!(matches!(
        err("{ $.a = 1 && }"),
        PatternError::Unexpected { .. }
    ));
    assert!(matches!(err("{ a = 1 }"), PatternError::Unexpected { .. }));
    match err("{ $.a = x@y }") {
        PatternError::InvalidValue {
            value, position, ..
        } => {
            assert_eq!((value.as_str(), position), ("x@y", 9));
        }
        e => panic!("{e}"),
    }
    match err("{ $.a > abc }") {
        PatternError::InvalidValue { reason, .. } => assert!(reason.contains("numbers")),
        e => panic!("{e}"),
    }
    assert!(matches!(
        err("{ $.a > \"1\" }"),
        PatternError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("{ $.a > %1% }"),
        PatternError::InvalidValue { .. }
    ));
}

#[test]
fn nesting_is_bounded() {
    let ok = format!(
        "{{ {}$.a = 1{} }}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(p(&ok).matches(r#"{"a": 1}"#));
    let deep = format!(
        "{{ {}$.a = 1{} }}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(matches!(
        err(&deep),
        PatternError::TooDeep { max: MAX_DEPTH, .. }
    ));
    let hostile = format!("{{{}", "(".repeat(MAX_PATTERN_CHARS - 1));
    assert!(matches!(err(&hostile), PatternError::TooDeep { .. }));
    let deep_delimited = format!(
        "[{}a = 1{}]",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(matches!(err(&deep_delimited), PatternError::TooDeep { .. }));
}

#[test]
fn deeply_nested_messages_do_not_overflow() {
    let fp = p("{ $.a = 1 }");
    let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert!(!fp.matches(&deep));
}

// ---- space-delimited ----

const APACHE: [&str; 3] = [
    r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534"#,
    r#"127.0.0.1 - frank [10/Oct/2000:13:35:22 -0700] "GET /index.html HTTP/1.0" 404 5324"#,
    r#"127.0.0.1 - frank [10/Oct/2000:13:50:35 -0700] "GET /apache_pb.gif HTTP/1.0" 403 4355"#,
];

fn apache_matches(pattern: &str) -> Vec<usize> {
    let fp = p(pattern);
    APACHE
        .iter()
        .enumerate()
        .filter(|(_, m)| fp.matches(m))
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn delimited_fields_honour_quotes_and_brackets() {
    assert_eq!(
        delimited::split_for_tests(APACHE[0]),
        [
            "127.0.0.1",
            "-",
            "frank",
            "10/Oct/2000:13:25:15 -0700",
            "GET /apache_pb.gif HTTP/1.0",
            "200",
            "1534"
        ]
    );
    assert_eq!(
        delimited::split_for_tests("  a\t\"b c\"[d e]  f \"open"),
        ["a", "b c", "d e", "f", "open"]
    );
    assert_eq!(delimited::split_for_tests("[open"), ["open"]);
    assert!(delimited::split_for_tests("   ").is_empty());
}

#[test]
fn delimited_documented_examples() {
    assert_eq!(
        apache_matches("[ip, user, username, timestamp, request, status_code, bytes]"),
        [1, 2, 3]
    );
    assert_eq!(apache_matches("[..., status_code, bytes]"), [1, 2, 3]);
    assert_eq!(
        apache_matches("[ip, user, ..., status_code, bytes]"),
        [1, 2, 3]
    );
    assert_eq!(apache_matches("[ip, user, ...]"), [1, 2, 3]);
    assert_eq!(
        apache_matches("[ip, user, username, timestamp, request, status_code, bytes > 5000]"),
        [2]
    );
    assert_eq!(
        apache_matches("[ip, user, username, timestamp, request, status_code = 200, bytes]"),
        [1]
    );
    assert_eq!(
        apache_matches("[ip, user, username, timestamp, request, status_code = 4*, bytes]"),
        [2, 3]
    );
    assert_eq!(
        apache_matches(
            "[ip, user, username, timestamp, request = *html*, status_code = 4*, bytes]"
        ),
        [2]
    );
    assert_eq!(
        apache_matches(
            "[ip, user, username, timestamp, request, status_code = 4* && status_code != 403, bytes]"
        ),
        [2]
    );
    // The trailing empty place is an unnamed field.
    assert_eq!(
        apache_matches("[..., request=*.html*, status_code=4*,]"),
        [2]
    );
    // Without `...` the count must be exact.
    assert_eq!(apache_matches("[ip, user, username]"), Vec::<usize>::new());
    assert_eq!(
        apache_matches("[a, b, c, d, e, f, g, h]"),
        Vec::<usize>::new()
    );
    assert_eq!(apache_matches("[...]"), [1, 2, 3]);
    assert_eq!(apache_matches("[..., ...]"), [1, 2, 3]);
    assert_eq!(apache_matches("[..., u = frank, ...]"), [1, 2, 3]);
    assert_eq!(
        apache_matches("[..., u = \"GET /index.html HTTP/1.0\", ...]"),
        [2]
    );
    assert_eq!(
        apache_matches("[ip = 127.0.0.1, ..., s = 200, b = 1534]"),
        [1]
    );
    assert_eq!(apache_matches("[..., s = %^40[34]$%, b]"), [2, 3]);
    assert_eq!(
        apache_matches("[ip, ..., t = %2000:13:[23]%, ..., s = 4* || s = 200, b]"),
        [1, 2]
    );
}

#[test]
fn delimited_or_within_a_field() {
    let logs = ["ERROR WARN message", "ERROR message", "WARN message"];
    let matching = |pattern: &str| {
        let fp = p(pattern);
        logs.iter()
            .enumerate()
            .filter(|(_, m)| fp.matches(m))
            .map(|(i, _)| i + 1)
            .collect::<Vec<_>>()
    };
    assert_eq!(matching("[w1=ERROR, w2]"), [2]);
    assert_eq!(matching("[w1=ERROR || w1=WARN, w2]"), [2, 3]);
    assert_eq!(matching("[w1=ERROR, ...]"), [1, 2]);
    assert_eq!(matching("[w1 != ERROR && w1 != INFO, w2]"), [3]);
    assert_eq!(
        matching("[(w1 = ERROR || w1 = WARN) && w1 != WARN, w2]"),
        [2]
    );
}

#[test]
fn delimited_numbers_compare_numerically() {
    check(
        "[a, b >= 10]",
        &["x 10", "x 10.0", "x 1e3"],
        &["x 9", "x ten", "x"],
    );
    check("[a, b = 10]", &["x 10", "x 10.00"], &["x 100", "x ten"]);
    check("[a, b != 10]", &["x 11", "x ten"], &["x 10.0"]);
    check("[a, b = 4xx]", &["x 4xx"], &["x 404"]);
}

#[test]
fn delimited_errors() {
    assert!(matches!(
        err("[a, b"),
        PatternError::UnbalancedBrackets {
            open: '[',
            position: 1,
            ..
        }
    ));
    assert!(matches!(err("[a b]"), PatternError::Unexpected { .. }));
    assert!(matches!(
        err("[ ]"),
        PatternError::Unexpected { position: 3, .. }
    ));
    assert!(matches!(err("[a, b] x"), PatternError::Unexpected { .. }));
    assert!(matches!(err("[a, = 1]"), PatternError::Unexpected { .. }));
    assert!(matches!(err("[a = ]"), PatternError::Unexpected { .. }));
    assert!(matches!(err("[a > x]"), PatternError::InvalidValue { .. }));
    assert!(matches!(err("[a = (1]"), PatternError::Unexpected { .. }));
    assert!(matches!(
        err("[a = (1 || a = 2]"),
        PatternError::Unexpected { .. }
    ));
    assert!(matches!(
        err("[a = 1 && (a = 2]"),
        PatternError::UnbalancedParentheses { .. }
    ));
    assert_eq!(
        err("[ip, user, status_code = 4* && bytes > 1000]"),
        PatternError::ForeignField {
            slot: "status_code".to_owned(),
            field: "bytes".to_owned(),
            position: 32,
        }
    );
    // The documentation's `=!ERROR` is not an operator.
    assert!(err("[w1=!ERROR&&w1=!WARN, w2]")
        .to_string()
        .contains("expected a value"));
}

#[test]
fn pattern_kinds() {
    assert_eq!(p("a").kind(), PatternKind::Terms);
    assert_eq!(p(" { $.a = 1 } ").kind(), PatternKind::Json);
    assert_eq!(p(" [a] ").kind(), PatternKind::SpaceDelimited);
    assert_eq!(
        "x".parse::<FilterPattern>().map(|f| f.kind()),
        Ok(PatternKind::Terms)
    );
}

// ---- properties ----

/// Characters that exercise every branch of the grammars.
fn pattern_strategy() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "{", "}", "[", "]", "(", ")", "$", ".", "$.a", "$.b[0]", "[1]", "=", "!=", "<", ">=", "&&",
        "||", "IS", "TRUE", "NULL", "NOT", "EXISTS", "\"", "\\", "%", "*", "?", "-", ",", "...",
        " ", "a", "b", "1", "2.5", "e3", "é", "\t", "x*", "%a%", "\"q\"",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(pattern in ".{0,200}", message in ".{0,200}") {
        if let Ok(fp) = parse(&pattern) {
            let _ = fp.matches(&message);
        }
    }

    #[test]
    fn grammar_shaped_text_never_panics(pattern in pattern_strategy(), message in pattern_strategy()) {
        match parse(&pattern) {
            Ok(fp) => {
                let _ = fp.matches(&message);
                let _ = fp.matches(r#"{"a": 1, "b": [true]}"#);
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(!text.is_empty());
                if let Some(pos) = e.position() {
                    prop_assert!(pos >= 1 && pos <= pattern.chars().count() + 1, "{}", text);
                }
            }
        }
    }

    #[test]
    fn a_plain_word_matches_exactly_the_messages_containing_it(
        word in "[A-Za-z0-9_]{1,8}",
        message in "[A-Za-z0-9_ ]{0,40}",
    ) {
        let fp = parse(&word).unwrap();
        prop_assert_eq!(fp.matches(&message), message.contains(&word));
        let excluded = parse(&format!("-{word}")).unwrap();
        prop_assert_eq!(excluded.matches(&message), !message.contains(&word));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash(depth in 0usize..600) {
        let pattern = format!("{{ {}$.a = 1{} }}", "(".repeat(depth), ")".repeat(depth));
        let result = parse(&pattern);
        if depth <= MAX_DEPTH {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err());
        }
    }
}
