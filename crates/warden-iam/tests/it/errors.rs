//! User-facing error messages for malformed policies, checked in full.

use warden_iam::{Policy, PolicyError, PolicyKind};

fn check(kind: PolicyKind, doc: &str, expected: &str) {
    let err = Policy::parse_as(doc, kind).unwrap_err();
    assert_eq!(err.to_string(), expected);
    assert_eq!(err.code(), "MalformedPolicyDocument");
}

#[test]
fn messages_say_what_and_where() {
    use PolicyKind::*;
    check(
        Any,
        "{",
        "policy is not valid json: EOF while parsing an object at line 1 column 1",
    );
    check(Any, "[]", "policy: the document must be a JSON object");
    check(
        Any,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},
           {"Sid":"AllowRead","Effect":"Allow","Action":"s3:Get*","Resource":"*",
            "Condition":{"StringEqualz":{"aws:username":"bob"}}}]}"#,
        "statement 2 (Sid `AllowRead`): unknown condition operator `StringEqualz`",
    );
    check(
        Any,
        r#"{"Version":"2012-10-18","Statement":[]}"#,
        "policy: unsupported Version `2012-10-18`: use `2012-10-17` or `2008-10-17`",
    );
    check(
        Any,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","NotAction":"s3:*"}}"#,
        "statement 1: has both Action and NotAction",
    );
    check(
        Any,
        r#"{"Version":"2012-10-17","Statement":{"Action":"*"}}"#,
        "statement 1: missing Effect",
    );
    check(
        Any,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"GetObject"}}"#,
        "statement 1: Action: action `GetObject` must be `*` or `service:Action` (the service prefix is missing)",
    );
    check(
        Any,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["s3:Get*",3]}}"#,
        "statement 1: Action entries must be strings, found `3`",
    );
    check(
        Any,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Extra":1}}"#,
        "statement 1: unknown element `Extra`",
    );
    check(
        Any,
        r#"{"Version":"2012-10-17","Statement":{"Sid":"Net","Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}}"#,
        "statement 1 (Sid `Net`): condition `NotIpAddress` key `aws:SourceIp`: invalid value `10.0.0.0/33`",
    );
    check(
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*"}}"#,
        "statement 1: missing Resource or NotResource",
    );
    check(
        Resource,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/*"},"Action":"*","Resource":"*"}}"#,
        "statement 1: Principal: principal `arn:aws:iam::123456789012:user/*` uses a wildcard; only a bare `*` is allowed (use a condition on aws:PrincipalArn)",
    );
    check(
        Trust,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}}"#,
        "statement 1: a trust policy must not name a Resource or NotResource",
    );
    check(
        Any,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"*"},{"Sid":"A","Effect":"Deny","Action":"*"}]}"#,
        "statement 2 (Sid `A`): duplicate Sid `A`",
    );
}

#[test]
fn trust_policy_parses() {
    let p = Policy::parse_as(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}}"#,
        PolicyKind::Trust,
    )
    .unwrap();
    assert!(p.statements()[0].has_principal());
    assert!(matches!(
        Policy::parse("{\"Statement\": 1}"),
        Err(PolicyError::Invalid { .. })
    ));
}
