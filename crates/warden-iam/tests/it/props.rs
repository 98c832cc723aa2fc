//! Property tests: the parser never panics on hostile input, evaluation never panics on
//! whatever parses, and the wildcard matcher agrees with a naive reference implementation.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use warden_iam::{evaluate, ContextValue, Policy, PolicyKind, Request};

/// Obviously-correct exponential reference matcher.
fn naive(p: &[char], t: &[char], ci: bool) -> bool {
    let eq = |a: char, b: char| {
        if ci {
            a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| naive(&p[1..], &t[i..], ci)),
        Some('?') => !t.is_empty() && naive(&p[1..], &t[1..], ci),
        Some(&c) => !t.is_empty() && eq(c, t[0]) && naive(&p[1..], &t[1..], ci),
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z:*?${}/ .-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("Version".to_string()),
                    Just("Statement".to_string()),
                    Just("Effect".to_string()),
                    Just("Action".to_string()),
                    Just("Resource".to_string()),
                    Just("Principal".to_string()),
                    Just("Condition".to_string()),
                    Just("StringLike".to_string()),
                    Just("AWS".to_string()),
                    "[a-zA-Z:]{1,8}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        Just("lambda:*".to_string()),
        Just("arn:aws:lambda:*:1:function:f*".to_string()),
        Just("${aws:username}".to_string()),
        Just("${x, 'd'}".to_string()),
        "[a-z:*?/${}]{0,12}",
    ]
}

/// Documents shaped like policies, so the generator reaches deep validation paths.
fn arb_policy() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
        Just("StringLike"),
        Just("ForAnyValue:StringNotEquals"),
        Just("NumericLessThan"),
        Just("DateGreaterThan"),
        Just("IpAddress"),
        Just("ArnLike"),
        Just("Bool"),
        Just("Null"),
        Just("BinaryEquals"),
        Just("StringEqualsIfExists"),
    ];
    (
        prop_oneof![Just("Allow"), Just("Deny")],
        piece(),
        piece(),
        op,
        piece(),
        prop::option::of(piece()),
    )
        .prop_map(|(effect, action, resource, op, value, principal)| {
            let mut st = json!({"Effect": effect, "Action": action, "Resource": resource,
                                "Condition": {op: {"k:a": value}}});
            if let Some(p) = principal {
                st["Principal"] = json!({ "AWS": p });
            }
            json!({"Version": "2012-10-17", "Statement": [st]})
        })
}

/// Policies of either version whose statements may or may not read the context: a
/// condition on a key the context holds, or a variable in a resource.
fn arb_maybe_contextual_policy() -> impl Strategy<Value = Value> {
    // Action names hold no variables (the parser refuses them).
    let action = prop_oneof![Just("*"), Just("lambda:*"), Just("lambda:InvokeFunction"),];
    let resource = prop_oneof![
        Just("*"),
        Just("arn:aws:lambda:*:1:function:${aws:username}"),
        Just("arn:aws:lambda:*:1:function:f*"),
        Just("arn:aws:lambda:*:1:function:${k:a, 'f'}"),
    ];
    let statement = (
        prop_oneof![Just("Allow"), Just("Deny")],
        action,
        resource,
        prop::option::of((
            prop_oneof![Just("StringEquals"), Just("StringNotLike"), Just("Null")],
            prop_oneof![Just("k:a"), Just("aws:username"), Just("k:absent")],
            prop_oneof![
                Just("f"),
                Just("true"),
                Just("false"),
                Just("${aws:username}")
            ],
        )),
    )
        .prop_map(|(effect, action, resource, condition)| {
            let mut st = json!({"Effect": effect, "Action": action, "Resource": resource});
            if let Some((op, key, value)) = condition {
                st["Condition"] = json!({ op: { key: value } });
            }
            st
        });
    (
        prop_oneof![Just("2012-10-17"), Just("2008-10-17")],
        prop::collection::vec(statement, 1..4),
    )
        .prop_map(|(version, statements)| json!({"Version": version, "Statement": statements}))
}

proptest! {
    #[test]
    fn a_policy_that_reads_no_context_decides_the_same_without_it(
        doc in arb_maybe_contextual_policy(),
        action in prop_oneof![Just("lambda:InvokeFunction"), Just("lambda:GetFunction")],
        name in prop_oneof![Just("f"), Just("g"), Just("${aws:username}"), Just("${k:a, 'f'}")],
        value in prop_oneof![Just("f"), Just("g"), Just("true")],
    ) {
        // `Null` takes only `true` or `false`: the other pairings do not parse.
        let parsed = Policy::from_json(&doc, PolicyKind::Identity);
        prop_assume!(parsed.is_ok());
        let p = parsed.unwrap();
        let request = |context| Request {
            principal: Some("arn:aws:iam::1:user/u".into()),
            action: action.to_string(),
            resource: format!("arn:aws:lambda:us-east-1:1:function:{name}"),
            context,
        };
        let full = HashMap::from([
            ("k:a".to_string(), ContextValue::String(value.to_string())),
            ("aws:username".to_string(), ContextValue::String(value.to_string())),
        ]);
        let with = evaluate(&request(full), &[&p], None);
        let without = evaluate(&request(HashMap::new()), &[&p], None);
        if !p.reads_context() {
            prop_assert_eq!(with, without);
        }
        // A condition, or a variable in the 2012 language, always reads the context.
        let text = doc.to_string();
        let variables = doc["Version"] == "2012-10-17" && text.contains("${");
        prop_assert_eq!(p.reads_context(), text.contains("Condition") || variables);
    }

    #[test]
    fn parser_never_panics_on_strings(s in "\\PC{0,200}") {
        let _ = Policy::parse(&s);
    }

    #[test]
    fn parser_never_panics_on_json(v in arb_json()) {
        for kind in [PolicyKind::Any, PolicyKind::Identity, PolicyKind::Resource, PolicyKind::Trust] {
            let _ = Policy::from_json(&v, kind);
        }
        let _ = warden_iam::simulate::run_case(&v);
    }

    #[test]
    fn evaluation_never_panics(doc in arb_policy(), action in "[a-z]{1,6}:[A-Za-z]{0,6}",
                               resource in "(arn:[a-z:/*]{0,20})|[a-z]{0,5}",
                               value in "[a-z0-9.:/-]{0,12}") {
        if let Ok(p) = Policy::from_json(&doc, PolicyKind::Any) {
            let mut context = HashMap::new();
            context.insert("k:a".to_string(), ContextValue::String(value.clone()));
            context.insert("aws:username".to_string(), ContextValue::List(vec![value]));
            let req = Request { principal: Some("arn:aws:iam::1:user/u".into()), action, resource, context };
            let _ = evaluate(&req, &[&p], Some(&p));
        }
    }

    #[test]
    fn wildcard_agrees_with_reference(p in "[ab*?é]{0,8}", t in "[abé]{0,10}") {
        let pc: Vec<char> = p.chars().collect();
        let tc: Vec<char> = t.chars().collect();
        prop_assert_eq!(warden_iam::__private::wildcard_match(&p, &t, false), naive(&pc, &tc, false));
    }

    #[test]
    fn case_insensitive_wildcard_agrees_with_reference(p in "[aAbBéÉ*?]{0,8}", t in "[aAbBéÉ]{0,10}") {
        let pc: Vec<char> = p.chars().collect();
        let tc: Vec<char> = t.chars().collect();
        prop_assert_eq!(warden_iam::__private::wildcard_match(&p, &t, true), naive(&pc, &tc, true));
    }
}
