//! Runs all cases through the independent evaluator `@cloud-copilot/iam-simulate` in one
//! `node` process and checks that it reaches the decision recorded in the case file, except
//! for the listed, explained disagreements (where the oracle departs from AWS's documented
//! behaviour or is more lenient than IAM's validation).
//!
//! The package is AGPL-licensed: it is never vendored. `cargo xtask ci` installs it into the
//! repository's test-tools directory and sets `WARDEN_TEST_NODE_MODULES`.

use std::collections::HashMap;
use std::process::Command;

use serde_json::Value;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn exceptions() -> HashMap<String, String> {
    let text =
        std::fs::read_to_string(format!("{MANIFEST}/tests/data/oracle-exceptions.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn independent_oracle_agrees_except_listed_cases() {
    let Ok(modules) = std::env::var("WARDEN_TEST_NODE_MODULES") else {
        panic!(
            "WARDEN_TEST_NODE_MODULES is not set: run `cargo xtask ci`, which installs \
             @cloud-copilot/iam-simulate for this test and sets it"
        );
    };
    let output = Command::new("node")
        .arg(format!("{MANIFEST}/tests/oracle/run_oracle.js"))
        .arg(format!("{MANIFEST}/tests/data/cases.jsonl"))
        .env("NODE_PATH", &modules)
        .output()
        .expect("run node (is Node.js installed?)");
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let oracle: HashMap<String, String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let cases = super::cases::load();
    assert_eq!(oracle.len(), cases.len(), "oracle skipped cases");
    let exceptions = exceptions();
    for id in exceptions.keys() {
        assert!(
            cases.iter().any(|c| &c.id == id),
            "exception for unknown case {id}"
        );
    }
    let mut failures = Vec::new();
    for c in &cases {
        let got = &oracle[&c.id];
        match exceptions.get(&c.id) {
            None if *got != c.expect => failures.push(format!(
                "{}: expected {}, oracle says {} ({})",
                c.id, c.expect, got, c.note
            )),
            // A listed disagreement that has gone away must be removed from the list.
            Some(reason) if *got == c.expect => failures.push(format!(
                "{}: listed as an exception ({reason}) but the oracle now agrees",
                c.id
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Sanity: the exceptions are a small minority.
    assert!(exceptions.len() * 10 < cases.len());
}
