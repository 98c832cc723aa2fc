//! Runs every case of `tests/data/cases.jsonl` through `simulate::run_case` and checks the
//! decision recorded in the file.

use serde_json::Value;

/// One case line: the simulation input plus `id`, `expect` and `note`.
pub struct Case {
    pub id: String,
    pub expect: String,
    pub note: String,
    pub input: Value,
}

pub fn load() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cases.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            let obj = v.as_object_mut().unwrap();
            let mut take = |k: &str| obj.remove(k).unwrap().as_str().unwrap().to_string();
            let (id, expect, note) = (take("id"), take("expect"), take("note"));
            Case {
                id,
                expect,
                note,
                input: v,
            }
        })
        .collect()
}

/// The decision Warden's simulator gives, with `error` for a refused policy.
pub fn decide(input: &Value) -> String {
    let out = warden_iam::simulate::run_case(input);
    if out.get("error").is_some() {
        return "error".into();
    }
    out["decision"].as_str().unwrap().to_string()
}

#[test]
fn every_case_matches_its_expected_decision() {
    let cases = load();
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let got = decide(&c.input);
            (got != c.expect).then(|| {
                format!(
                    "{}: expected {}, got {} ({}) -> {}",
                    c.id,
                    c.expect,
                    got,
                    c.note,
                    warden_iam::simulate::run_case(&c.input)
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn case_ids_are_unique_and_cover_every_outcome() {
    let cases = load();
    let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), cases.len());
    for outcome in ["allowed", "explicitDeny", "implicitDeny", "error"] {
        assert!(
            cases.iter().any(|c| c.expect == outcome),
            "no {outcome} case"
        );
    }
}

#[test]
fn matched_statements_name_the_deciding_statements() {
    let input: Value = serde_json::json!({
        "identityPolicies": [
            {"Version": "2012-10-17", "Statement": [
                {"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "*"},
                {"Sid": "NoDelete", "Effect": "Deny", "Action": "lambda:Delete*", "Resource": "*"}]}],
        "resourcePolicy": {"Version": "2012-10-17", "Statement": [
            {"Sid": "Alice", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"},
             "Action": "lambda:*", "Resource": "*"}]},
        "action": "lambda:DeleteFunction",
        "resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "principal": "arn:aws:iam::123456789012:user/alice"
    });
    assert_eq!(
        warden_iam::simulate::run_case(&input),
        serde_json::json!({"decision": "explicitDeny", "matchedStatements": [
            {"policy": "identity", "policyIndex": 0, "statementIndex": 1, "sid": "NoDelete"}]})
    );
    let mut allowed = input.clone();
    allowed["action"] = "lambda:GetFunction".into();
    assert_eq!(
        warden_iam::simulate::run_case(&allowed),
        serde_json::json!({"decision": "allowed", "matchedStatements": [
            {"policy": "identity", "policyIndex": 0, "statementIndex": 0, "sid": "All"},
            {"policy": "resource", "policyIndex": 0, "statementIndex": 0, "sid": "Alice"}]})
    );
}
