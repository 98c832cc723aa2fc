//! Dependency scanning: real OSV advisories imported with `warden scan db import`, a
//! Python function whose `requirements.txt` pins vulnerable versions deployed with the
//! AWS CLI (warned by default, refused under `--dependency-scan block:high`), its findings
//! and its CycloneDX SBOM; and who may change the database.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::harness::*;

/// Real advisories (PyPA's and RustSec's), the subset kept with the scanner's tests.
fn advisories() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../warden-scan/tests/data/advisories/osv")
}

const APP: &str = "def handler(event, context):\n    return 'ok'\n";
/// `requests` 2.19.1 (PYSEC-2018-28, PYSEC-2023-74; no severity given) and `idna` 3.6
/// (PYSEC-2024-60, CVSS 7.5: High).
const REQUIREMENTS: &str = "requests==2.19.1  # pinned\nidna==3.6\nflask>=2\n";

fn package(requirements: &str) -> String {
    let zip = python_zip(&[("app.py", APP), ("requirements.txt", requirements)]);
    format!("fileb://{}", zip.display())
}

fn create(s: &Server, name: &str, zip: &str) -> std::process::Output {
    s.aws_raw(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        zip,
    ])
}

fn warden_json(s: &Server, args: &[&str]) -> Value {
    let out = s.warden(args);
    assert!(
        out.status.success(),
        "warden {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn import(s: &Server) -> Value {
    let dir = advisories();
    let report = warden_json(s, &["scan", "db", "import", dir.to_str().unwrap()]);
    assert_eq!(report["Malformed"], 0, "{report}");
    assert!(report["Loaded"].as_u64().unwrap() >= 20, "{report}");
    report
}

#[test]
fn deploys_are_scanned_and_findings_and_sboms_are_served() {
    let s = Server::start();
    let status = warden_json(&s, &["scan", "db", "status"]);
    assert_eq!(status, json!({"Advisories": 0, "Policy": "warn"}));
    // Deployed before any advisory is known: the import's re-scan finds it.
    let out = create(&s, "early", &package(REQUIREMENTS));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = import(&s);
    assert_eq!(
        report["Rescanned"],
        json!({"Functions": 1, "WithFindings": 1, "NewFindings": [
            {"FunctionName": "early", "AdvisoryIds": ["PYSEC-2018-28", "PYSEC-2023-74", "PYSEC-2024-60"]}
        ]})
    );
    // The same database again finds nothing new.
    assert_eq!(import(&s)["Rescanned"]["NewFindings"], json!([]));
    let scraped = std::process::Command::new("curl")
        .args(["-s", &s.metrics_endpoint])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&scraped.stdout);
    assert!(
        metrics
            .lines()
            .any(|l| l == "warden_new_findings_total{function=\"early\"} 3"),
        "{metrics}"
    );

    // Warned, not refused: the deploy goes through.
    let out = create(&s, "vulnerable", &package(REQUIREMENTS));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = warden_json(&s, &["scan", "findings", "vulnerable"]);
    let ids: Vec<&str> = findings["Findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["AdvisoryId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["PYSEC-2024-60", "PYSEC-2018-28", "PYSEC-2023-74"],
        "{findings}"
    );
    let idna = &findings["Findings"][0];
    assert_eq!(idna["Package"], "idna");
    assert_eq!(idna["Version"], "3.6");
    assert_eq!(idna["Ecosystem"], "PyPI");
    assert_eq!(idna["Source"], "code");
    assert_eq!(idna["Paths"], json!(["requirements.txt"]));
    assert_eq!(idna["FixedVersion"], "3.7");
    assert_eq!(idna["Severity"]["Rating"], "HIGH");
    assert_eq!(idna["Severity"]["Score"], 7.5);
    assert_eq!(findings["Findings"][1]["FixedVersion"], "2.20.0");
    assert_eq!(
        findings["Packages"], 2,
        "a range (`flask>=2`) names no version"
    );

    let sbom = warden_json(&s, &["scan", "sbom", "vulnerable"]);
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["specVersion"], "1.5");
    assert_eq!(sbom["metadata"]["component"]["name"], "vulnerable");
    let purls: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap())
        .collect();
    assert_eq!(purls, ["pkg:pypi/idna@3.6", "pkg:pypi/requests@2.19.1"]);
    // Valid by CycloneDX's own library's strict schema validation.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), sbom.to_string()).unwrap();
    let verdict = s.python(&format!(
        "from cyclonedx.validation.json import JsonStrictValidator\n\
         from cyclonedx.schema import SchemaVersion\n\
         print(JsonStrictValidator(SchemaVersion.V1_5).validate_str(open({:?}).read()))",
        file.path().display().to_string()
    ));
    assert_eq!(
        verdict.trim(),
        "None",
        "the SBOM is not valid CycloneDX 1.5: {verdict}"
    );

    // A clean package has no findings.
    let out = create(&s, "clean", &package("requests==2.32.3\n"));
    assert!(out.status.success());
    let findings = warden_json(&s, &["scan", "findings", "clean"]);
    assert_eq!(findings["Findings"], json!([]), "{findings}");

    // Refusals: a body that is not a zip changes nothing; no such function.
    let (status, _, body) = s.http("PUT", "/_warden/2026-11-01/advisories", &[], b"not a zip");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let kept = warden_json(&s, &["scan", "db", "status"])["Advisories"].as_u64();
    assert!(kept.unwrap() >= 20, "the database was kept");
    let (status, _, _) = s.http(
        "GET",
        "/_warden/2026-11-01/functions/nope/findings",
        &[],
        b"",
    );
    assert_eq!(status, 404);
}

#[test]
fn only_principals_granted_warden_actions_change_or_read_the_database() {
    let s = Server::start();
    import(&s);
    let (status, _, _) = s.http_unsigned("PUT", "/_warden/2026-11-01/advisories", &[], b"PK");
    assert_eq!(status, 403);
    // lambda:* grants none of Warden's own actions.
    let deployer = user_with_policy(
        &s,
        "deployer",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}]}),
    );
    for (method, path) in [
        ("PUT", "/_warden/2026-11-01/advisories"),
        ("GET", "/_warden/2026-11-01/advisories"),
        ("GET", "/_warden/2026-11-01/functions/f/findings"),
        ("GET", "/_warden/2026-11-01/functions/f/sbom"),
    ] {
        let (status, _, body) = send(&s.endpoint, Some(&deployer), method, path, &[], b"PK");
        assert_eq!(status, 403, "{method} {path}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("AccessDeniedException") && text.contains("warden:"),
            "{text}"
        );
    }
}

#[test]
fn a_blocking_policy_refuses_packages_with_findings_at_its_severity() {
    let s = Server::start_with(&["--dependency-scan", "block:high"]);
    import(&s);
    let out = create(&s, "vulnerable", &package(REQUIREMENTS));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&err), "InvalidParameterValueException", "{err}");
    assert!(err.contains("PYSEC-2024-60 idna@3.6 (High)"), "{err}");
    assert!(
        !err.contains("PYSEC-2018-28"),
        "below the blocking severity: {err}"
    );
    // Nothing was created.
    let err = s.aws_err(&["lambda", "get-function", "--function-name", "vulnerable"]);
    assert_eq!(error_code(&err), "ResourceNotFoundException");
    // Findings without a rating, or below it, pass.
    let out = create(&s, "requests-only", &package("requests==2.19.1\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let data = private_tempdir();
    let out = std::process::Command::new(warden_bin())
        .args(["serve", "--dependency-scan", "block:severe", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`block:severe` is not a scan policy"));
}
