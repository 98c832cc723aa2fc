//! The template corpus: what Warden finds in each template, and the comparison with
//! checkov on the same files (`WARDEN_TEST_CHECKOV`, set by `cargo xtask ci`).
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it did not expect"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use warden_controls::template::scan;
use warden_controls::CONTROLS;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates")
}

/// (control, logical id) pairs Warden finds in `file`.
fn warden(file: &str) -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(corpus().join(file)).unwrap();
    scan(&text, file)
        .unwrap()
        .findings
        .into_iter()
        .map(|f| {
            let logical = f.resource_id.rsplit('#').next().unwrap().to_owned();
            (f.control_id, logical)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(c, r)| ((*c).to_owned(), (*r).to_owned()))
        .collect()
}

#[test]
fn each_template_gets_exactly_the_findings_its_resources_call_for() {
    let expected: &[(&str, &[(&str, &str)])] = &[
        (
            // A customer key that rotates, code signing, a VPC whose group reaches only
            // the database, a concurrency limit, a dead-letter queue, an Errors alarm, a
            // role allowed one action on one table: nothing to say.
            "cfn-hardened.json",
            &[],
        ),
        (
            "sam-wide-open.yaml",
            &[
                ("IAM.1", "OrdersRole"),
                ("Lambda.1", "Orders"),
                ("Lambda.2", "Orders"),
                ("Lambda.3", "Orders"),
                ("Warden.Lambda.CodeSigning", "Orders"),
                ("Warden.Lambda.Concurrency", "Orders"),
                ("Warden.Lambda.CustomerKey", "Orders"),
                ("Warden.Lambda.DeadLetter", "Orders"),
                ("Warden.Lambda.PlaintextSecret", "Orders"),
                ("Warden.Url.1", "Orders"),
            ],
        ),
        (
            "cfn-public-permission.yaml",
            &[
                ("Lambda.1", "Hook"),
                ("Lambda.2", "Hook"),
                ("Lambda.3", "Hook"),
                ("Warden.Lambda.CodeSigning", "Hook"),
                ("Warden.Lambda.Concurrency", "Hook"),
                ("Warden.Lambda.CrossAccount", "Hook"),
                ("Warden.Lambda.DeadLetter", "Hook"),
                ("Warden.Url.1", "Url"),
            ],
        ),
        (
            "cfn-iam-admin.yaml",
            &[
                ("IAM.1", "Admin"),
                ("KMS.4", "Key"),
                ("Lambda.3", "Report"),
                ("Warden.IAM.WildcardAction", "Admin"),
                ("Warden.Lambda.CodeSigning", "Report"),
                ("Warden.Lambda.Concurrency", "Report"),
                ("Warden.Lambda.DeadLetter", "Report"),
            ],
        ),
        (
            "sam-policy-templates.yaml",
            &[
                ("Lambda.3", "Writer"),
                // `sqs:*` on `*`: one finding, the wildcard action (the tables and the
                // bucket the policy templates grant are named).
                ("Warden.IAM.WildcardAction", "WriterRole"),
                ("Warden.Lambda.CodeSigning", "Writer"),
                ("Warden.Lambda.DeadLetter", "Writer"),
            ],
        ),
    ];
    let on_disk: BTreeSet<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = expected.iter().map(|(f, _)| (*f).to_owned()).collect();
    assert_eq!(
        on_disk, listed,
        "every template of the corpus has its expectation"
    );
    for (file, findings) in expected {
        assert_eq!(warden(file), pairs(findings), "{file}");
    }
}

/// The resource types both scanners are compared on: Lambda's, and what functions depend
/// on (roles and policies, keys, code signing).
const COMPARED: &[&str] = &[
    "AWS::Lambda::",
    "AWS::Serverless::Function",
    "AWS::IAM::",
    "AWS::KMS::Key",
    "AWS::Signer::",
];

/// checkov's failed checks on `file`: (check id, resource type, logical id).
fn checkov(file: &str) -> Vec<(String, String, String)> {
    let checkov = std::env::var_os("WARDEN_TEST_CHECKOV")
        .expect("WARDEN_TEST_CHECKOV is not set: run the tests with `cargo xtask ci`, which installs checkov");
    let out = std::process::Command::new(checkov)
        .args([
            "--framework",
            "cloudformation",
            "--skip-download",
            "--quiet",
            "-o",
            "json",
            "-f",
        ])
        .arg(corpus().join(file))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("checkov printed no JSON for {file} ({e}): {text}"));
    let report = match value {
        serde_json::Value::Array(mut a) => a.remove(0),
        other => other,
    };
    report["results"]["failed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let resource = c["resource"].as_str().unwrap();
                    let (kind, logical) = resource.rsplit_once('.').unwrap();
                    (
                        c["check_id"].as_str().unwrap().to_owned(),
                        kind.to_owned(),
                        logical.to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn warden_finds_what_checkov_finds_on_lambda_resources_and_what_it_misses() {
    for file in [
        "cfn-hardened.json",
        "sam-wide-open.yaml",
        "cfn-public-permission.yaml",
        "cfn-iam-admin.yaml",
        "sam-policy-templates.yaml",
    ] {
        let ours = warden(file);
        for (check, kind, logical) in checkov(file) {
            if !COMPARED.iter().any(|p| kind.starts_with(p)) {
                // checkov's other checks (a security group rule's description, a
                // DynamoDB table's backups) are about resources outside Warden's scope.
                continue;
            }
            let controls: Vec<&str> = CONTROLS
                .iter()
                .filter(|c| c.checkov.contains(&check.as_str()))
                .map(|c| c.id)
                .collect();
            assert!(
                ours.iter().any(|(c, r)| r == &logical && controls.contains(&c.as_str())),
                "{file}: checkov's {check} on {kind}.{logical} has no Warden finding (controls {controls:?}; Warden found {ours:?})"
            );
        }
    }
    // What checkov misses: a SAM function's inline policy allowing `*`, and a permission
    // that lets anyone invoke a function. Warden finds both.
    let missed = checkov("sam-wide-open.yaml");
    assert!(
        !missed
            .iter()
            .any(|(_, _, r)| r == "OrdersPublic" || r == "OrdersRole"),
        "checkov now finds {missed:?}: update the comparison"
    );
    assert!(!missed.iter().any(|(c, _, _)| [
        "CKV_AWS_1",
        "CKV_AWS_49",
        "CKV_AWS_62",
        "CKV_AWS_63",
        "CKV_AWS_301"
    ]
    .contains(&c.as_str())));
    let ours = warden("sam-wide-open.yaml");
    assert!(ours.contains(&("IAM.1".into(), "OrdersRole".into())));
    assert!(ours.contains(&("Lambda.1".into(), "Orders".into())));
    let missed = checkov("cfn-public-permission.yaml");
    assert!(!missed.iter().any(|(_, _, r)| r == "Open"), "{missed:?}");
    assert!(warden("cfn-public-permission.yaml").contains(&("Lambda.1".into(), "Hook".into())));
}
