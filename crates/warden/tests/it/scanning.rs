//! Dependency scanning: real OSV advisories imported with `warden scan db import`, a
//! Python function whose `requirements.txt` pins vulnerable versions deployed with the
//! AWS CLI (warned by default, refused under `--dependency-scan block:high` or a stricter
//! `warden:scan-policy` tag), its findings (one function's and all) and its CycloneDX
//! SBOM; the import's re-scan of published versions and its `NewFindings` metric as
//! CloudWatch serves it; accepted advisories; and who may change any of it.

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
    create_with(s, name, zip, &[])
}

fn create_with(s: &Server, name: &str, zip: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
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
    ];
    args.extend_from_slice(extra);
    s.aws_raw(&args)
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
    // Deployed before any advisory is known, published as version 1, then `$LATEST`
    // fixed: the import's re-scan finds the published version.
    let out = create(&s, "early", &package(REQUIREMENTS));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v1 = s.aws(&["lambda", "publish-version", "--function-name", "early"]);
    assert_eq!(v1["Version"], "1");
    s.aws(&[
        "lambda",
        "update-function-code",
        "--function-name",
        "early",
        "--zip-file",
        &package("requests==2.32.3\n"),
    ]);
    // A layer no function uses is re-scanned too.
    let loose = python_zip(&[("requirements.txt", "idna==3.6\n")]);
    let loose = s.aws(&[
        "lambda",
        "publish-layer-version",
        "--layer-name",
        "loose",
        "--zip-file",
        &format!("fileb://{}", loose.display()),
    ]);
    let report = import(&s);
    assert_eq!(
        report["Rescanned"],
        json!({"Functions": 1, "Versions": 2, "Packages": 3, "WithFindings": 1, "NewFindings": [
            {"FunctionName": "early", "Version": "1", "AdvisoryIds": ["PYSEC-2018-28", "PYSEC-2023-74", "PYSEC-2024-60"]}
        ], "LayerVersions": 1, "NewLayerFindings": [
            {"LayerVersionArn": loose["LayerVersionArn"], "AdvisoryIds": ["PYSEC-2024-60"]}
        ]})
    );
    // The same database again finds nothing new.
    let again = import(&s);
    assert_eq!(again["Rescanned"]["NewFindings"], json!([]));
    assert_eq!(again["Rescanned"]["NewLayerFindings"], json!([]));
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
    // The same count is a CloudWatch metric (what an alarm watches), once its minute
    // closes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 600).to_string(), (now + 600).to_string());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    let counted = loop {
        let stats = s.aws(&[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "Warden/Security",
            "--metric-name",
            "NewFindings",
            "--dimensions",
            "Name=FunctionName,Value=early",
            "--start-time",
            &start,
            "--end-time",
            &end,
            "--period",
            "3600",
            "--statistics",
            "Sum",
        ]);
        let sum: f64 = stats["Datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["Sum"].as_f64())
            .sum();
        if sum >= 3.0 || std::time::Instant::now() > deadline {
            break sum;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    assert_eq!(counted, 3.0, "NewFindings as CloudWatch serves it");

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
    // Every function's `$LATEST` at once.
    let all = warden_json(&s, &["scan", "findings"]);
    let summary: Vec<(&str, usize)> = all["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["FunctionName"].as_str().unwrap(),
                f["Findings"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("clean", 0), ("early", 0), ("vulnerable", 3)],
        "{all}"
    );
    assert_eq!(
        all["Functions"][2]["Findings"][0]["AdvisoryId"],
        "PYSEC-2024-60"
    );

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
        ("GET", "/_warden/2026-11-01/findings"),
        ("POST", "/_warden/2026-11-01/accepted-advisories"),
        ("GET", "/_warden/2026-11-01/accepted-advisories"),
        (
            "DELETE",
            "/_warden/2026-11-01/accepted-advisories/PYSEC-2024-60",
        ),
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
    // A tag cannot loosen the account's policy.
    let out = create_tagged(
        &s,
        "loosened",
        &package(REQUIREMENTS),
        "warden:scan-policy=warn",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PYSEC-2024-60 idna@3.6 (High)"), "{err}");
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

fn create_tagged(s: &Server, name: &str, zip: &str, tags: &str) -> std::process::Output {
    create_with(s, name, zip, &["--tags", tags])
}

fn update_code(s: &Server, name: &str, zip: &str) -> std::process::Output {
    s.aws_raw(&[
        "lambda",
        "update-function-code",
        "--function-name",
        name,
        "--zip-file",
        zip,
    ])
}

#[test]
fn a_function_tag_tightens_the_policy_and_a_bad_value_is_refused() {
    let s = Server::start();
    import(&s);
    // The account warns; the tag blocks at high.
    let out = create_tagged(
        &s,
        "strict",
        &package(REQUIREMENTS),
        "warden:scan-policy=block:high",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&err), "InvalidParameterValueException", "{err}");
    assert!(err.contains("PYSEC-2024-60 idna@3.6 (High)"), "{err}");
    assert!(err.contains("block:high"), "{err}");
    // Below the tag's severity: deployed.
    let out = create_tagged(
        &s,
        "strict",
        &package("requests==2.19.1\n"),
        "warden:scan-policy=block:high",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not a policy: refused, naming the tag.
    let out = create_tagged(
        &s,
        "odd",
        &package("requests==2.32.3\n"),
        "warden:scan-policy=off",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&err), "InvalidParameterValueException", "{err}");
    assert!(err.contains("warden:scan-policy"), "{err}");

    // Tagged after creation: the next code update is held to it.
    let out = create(&s, "plain", &package("requests==2.32.3\n"));
    assert!(out.status.success());
    let arn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:plain");
    let err = s.aws_err(&[
        "lambda",
        "tag-resource",
        "--resource",
        &arn,
        "--tags",
        "warden:scan-policy=block:severe",
    ]);
    assert_eq!(error_code(&err), "InvalidParameterValueException", "{err}");
    assert!(err.contains("warden:scan-policy"), "{err}");
    let out = update_code(&s, "plain", &package(REQUIREMENTS));
    assert!(out.status.success(), "untagged, the account warns");
    s.aws(&[
        "lambda",
        "tag-resource",
        "--resource",
        &arn,
        "--tags",
        "warden:scan-policy=block:medium",
    ]);
    let out = update_code(&s, "plain", &package("idna==3.6\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PYSEC-2024-60"), "{err}");

    // A layer published under the account's `warn` cannot carry past a function's tag
    // what its code could not.
    let layer = python_zip(&[("requirements.txt", "idna==3.6\n")]);
    let published = s.aws(&[
        "lambda",
        "publish-layer-version",
        "--layer-name",
        "vulnerable-deps",
        "--zip-file",
        &format!("fileb://{}", layer.display()),
    ]);
    let layer_arn = published["LayerVersionArn"].as_str().unwrap().to_owned();
    let with_layer = |name: &str, tags: Option<&str>| {
        let mut args = vec![
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
            "--layers",
            &layer_arn,
        ];
        let zip = package("requests==2.32.3\n");
        args.extend(["--zip-file", &zip]);
        if let Some(t) = tags {
            args.extend(["--tags", t]);
        }
        s.aws_raw(&args)
    };
    let out = with_layer("layered-strict", Some("warden:scan-policy=block:high"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&err), "InvalidParameterValueException", "{err}");
    assert!(
        err.contains(&format!("layer version {layer_arn}")) && err.contains("PYSEC-2024-60"),
        "{err}"
    );
    let out = with_layer("layered", None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nor can a layer added later, once the function is tagged.
    s.aws(&[
        "lambda",
        "tag-resource",
        "--resource",
        &arn,
        "--tags",
        "warden:scan-policy=block:medium",
    ]);
    let err = s.aws_err(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "plain",
        "--layers",
        &layer_arn,
    ]);
    assert_eq!(error_code(&err), "InvalidParameterValueException", "{err}");
    assert!(
        err.contains("layer version") && err.contains("PYSEC-2024-60"),
        "{err}"
    );
}

/// A day `days` after today (UTC), as `YYYY-MM-DD`.
fn day(days: i64) -> String {
    let d = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[test]
fn an_accepted_advisory_stops_blocking_until_revoked_and_survives_a_restart() {
    let mut s = Server::start_with(&["--dependency-scan", "block:high"]);
    import(&s);
    let tomorrow = day(1);
    let accepted = warden_json(
        &s,
        &[
            "scan",
            "accept",
            "PYSEC-2024-60",
            "--until",
            &tomorrow,
            "--reason",
            "no fixed idna in our base image until the next release",
            "--function",
            "vulnerable",
        ],
    );
    assert_eq!(
        accepted,
        json!({"AdvisoryId": "PYSEC-2024-60", "FunctionName": "vulnerable", "Until": tomorrow,
               "Reason": "no fixed idna in our base image until the next release"})
    );
    // Accepted for one function only.
    let out = create(&s, "other", &package(REQUIREMENTS));
    assert!(!out.status.success());
    let out = create(&s, "vulnerable", &package(REQUIREMENTS));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = warden_json(&s, &["scan", "findings", "vulnerable"]);
    let idna = &findings["Findings"][0];
    assert_eq!(idna["AdvisoryId"], "PYSEC-2024-60");
    assert_eq!(
        idna["Accepted"],
        json!({"Until": tomorrow, "Reason": "no fixed idna in our base image until the next release"})
    );
    assert!(
        findings["Findings"][1].get("Accepted").is_none(),
        "{findings}"
    );

    // Refusals name the field and change nothing.
    for (body, field) in [
        (
            json!({"AdvisoryId": "PYSEC-2024-60", "Until": day(-1), "Reason": "r"}),
            "Until",
        ),
        (
            json!({"AdvisoryId": "PYSEC-2024-60", "Until": day(400), "Reason": "r"}),
            "Until",
        ),
        (
            json!({"AdvisoryId": "PYSEC-2024-60", "Until": "soon", "Reason": "r"}),
            "Until",
        ),
        (
            json!({"AdvisoryId": "PYSEC-2024-60", "Until": tomorrow, "Reason": " "}),
            "Reason",
        ),
        (
            json!({"AdvisoryId": "PYSEC-2024-60", "Until": tomorrow, "Reason": "r".repeat(1025)}),
            "Reason",
        ),
        (
            json!({"AdvisoryId": "../etc", "Until": tomorrow, "Reason": "r"}),
            "AdvisoryId",
        ),
        (
            json!({"AdvisoryId": "A-1", "Until": tomorrow, "Reason": "r", "FunctionName": "no such/name"}),
            "FunctionName",
        ),
    ] {
        let (status, _, reply) = s.http(
            "POST",
            "/_warden/2026-11-01/accepted-advisories",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        let text = String::from_utf8_lossy(&reply);
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("InvalidParameterValueException"), "{text}");
        assert!(text.contains(field), "{field}: {text}");
    }
    let (status, _, reply) = s.http(
        "POST",
        "/_warden/2026-11-01/accepted-advisories",
        &[("content-type", "application/json")],
        br#"{"AdvisoryId": "A-1", "Until": "2030-01-01"}"#,
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&reply));
    let list = warden_json(&s, &["scan", "accepted"]);
    assert_eq!(
        list["AcceptedAdvisories"].as_array().unwrap().len(),
        1,
        "{list}"
    );
    for path in [
        "/_warden/2026-11-01/accepted-advisories/..%2Fetc",
        "/_warden/2026-11-01/accepted-advisories/PYSEC-2024-60?FunctionName=a%2Fb",
    ] {
        let (status, _, reply) = s.http("DELETE", path, &[], b"");
        let text = String::from_utf8_lossy(&reply);
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("InvalidParameterValueException"), "{text}");
    }

    // Kept across a restart.
    s.stop();
    s.restart();
    let list = warden_json(&s, &["scan", "accepted"]);
    assert_eq!(list["AcceptedAdvisories"], json!([accepted]));

    // Revoked: the finding blocks again.
    let out = s.warden(&["scan", "unaccept", "PYSEC-2024-60"]);
    assert!(!out.status.success(), "there is none for every function");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ResourceNotFoundException"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.warden(&[
        "scan",
        "unaccept",
        "PYSEC-2024-60",
        "--function",
        "vulnerable",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        warden_json(&s, &["scan", "accepted"]),
        json!({"AcceptedAdvisories": []})
    );
    let out = update_code(&s, "vulnerable", &package("idna==3.6\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PYSEC-2024-60"));
    let findings = warden_json(&s, &["scan", "findings", "vulnerable"]);
    assert!(
        findings["Findings"][0].get("Accepted").is_none(),
        "{findings}"
    );
}

#[test]
fn inspector_list_findings_serves_filters_paging_and_refusals() {
    let s = Server::start();
    import(&s);
    let out = create(&s, "vulnerable", &package(REQUIREMENTS));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.aws(&["lambda", "publish-version", "--function-name", "vulnerable"]);
    let out = create(&s, "clean", &package("requests==2.32.3\n"));
    assert!(out.status.success());
    warden_json(
        &s,
        &[
            "scan",
            "accept",
            "PYSEC-2018-28",
            "--until",
            &day(1),
            "--reason",
            "requests is only used against our own hosts",
        ],
    );

    // Three findings in each of `$LATEST` and version 1; none in `clean`.
    let all = s.aws(&["inspector2", "list-findings"]);
    let findings = all["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 6, "{all}");
    let config = s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "vulnerable",
    ]);
    let idna = findings
        .iter()
        .find(|f| {
            f["packageVulnerabilityDetails"]["vulnerabilityId"] == "PYSEC-2024-60"
                && f["resources"][0]["details"]["awsLambdaFunction"]["version"] == "$LATEST"
        })
        .expect("idna in $LATEST");
    assert_eq!(idna["type"], "PACKAGE_VULNERABILITY");
    assert_eq!(idna["awsAccountId"], ACCOUNT);
    assert_eq!(idna["severity"], "HIGH");
    assert_eq!(idna["status"], "ACTIVE");
    assert_eq!(idna["fixAvailable"], "YES");
    assert_eq!(idna["title"], "PYSEC-2024-60 - idna");
    assert!(idna["findingArn"]
        .as_str()
        .unwrap()
        .starts_with(&format!("arn:aws:inspector2:us-east-1:{ACCOUNT}:finding/")));
    let package = &idna["packageVulnerabilityDetails"]["vulnerablePackages"][0];
    assert_eq!(package["name"], "idna");
    assert_eq!(package["version"], "3.6");
    assert_eq!(package["fixedInVersion"], "3.7");
    assert_eq!(package["filePath"], "requirements.txt");
    assert_eq!(package["packageManager"], "PIP");
    assert_eq!(
        idna["packageVulnerabilityDetails"]["cvss"][0]["baseScore"],
        7.5
    );
    let resource = &idna["resources"][0];
    assert_eq!(resource["type"], "AWS_LAMBDA_FUNCTION");
    let lambda = &resource["details"]["awsLambdaFunction"];
    assert_eq!(lambda["functionName"], "vulnerable");
    assert_eq!(lambda["codeSha256"], config["CodeSha256"]);
    let runtime = config["Runtime"].as_str().unwrap();
    assert_eq!(
        lambda["runtime"],
        format!(
            "PYTHON_{}",
            runtime.trim_start_matches("python").replace('.', "_")
        )
    );
    // Accepted (for every function): suppressed, in both versions.
    let suppressed: Vec<&Value> = findings
        .iter()
        .filter(|f| f["status"] == "SUPPRESSED")
        .collect();
    assert_eq!(suppressed.len(), 2, "{all}");
    assert!(suppressed
        .iter()
        .all(|f| f["packageVulnerabilityDetails"]["vulnerabilityId"] == "PYSEC-2018-28"));
    // No severity in the advisory: untriaged.
    let untriaged = findings
        .iter()
        .filter(|f| f["severity"] == "UNTRIAGED")
        .count();
    assert_eq!(untriaged, 4, "{all}");

    let count = |criteria: Value| -> usize {
        let v = s.aws(&[
            "inspector2",
            "list-findings",
            "--filter-criteria",
            &criteria.to_string(),
        ]);
        v["findings"].as_array().unwrap().len()
    };
    assert_eq!(
        count(json!({
            "lambdaFunctionName": [{"comparison": "EQUALS", "value": "vulnerable"}],
            "severity": [{"comparison": "EQUALS", "value": "HIGH"}],
        })),
        2
    );
    assert_eq!(
        count(json!({"lambdaFunctionName": [{"comparison": "EQUALS", "value": "clean"}]})),
        0
    );
    assert_eq!(
        count(json!({"findingStatus": [{"comparison": "EQUALS", "value": "SUPPRESSED"}]})),
        2
    );
    assert_eq!(
        count(json!({"vulnerabilityId": [{"comparison": "NOT_EQUALS", "value": "PYSEC-2024-60"}]})),
        4
    );

    // Paging: pages of 4 give every finding once; one page of 4 says where to go on.
    let paged = s.aws(&["inspector2", "list-findings", "--page-size", "4"]);
    let mut arns: Vec<&str> = paged["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["findingArn"].as_str().unwrap())
        .collect();
    arns.sort_unstable();
    arns.dedup();
    assert_eq!(arns.len(), 6, "{paged}");
    let first = s.aws(&["inspector2", "list-findings", "--max-items", "4"]);
    assert_eq!(first["findings"].as_array().unwrap().len(), 4);
    let token = first["NextToken"].as_str().expect("a next token");
    let rest = s.aws(&[
        "inspector2",
        "list-findings",
        "--max-items",
        "4",
        "--starting-token",
        token,
    ]);
    assert_eq!(rest["findings"].as_array().unwrap().len(), 2, "{rest}");

    // Refusals: a filter or comparison Warden does not serve is named, never ignored.
    let err = s.aws_err(&[
        "inspector2",
        "list-findings",
        "--filter-criteria",
        r#"{"ecrImageHash": [{"comparison": "EQUALS", "value": "sha256:x"}]}"#,
    ]);
    assert_eq!(error_code(&err), "ValidationException", "{err}");
    assert!(err.contains("ecrImageHash"), "{err}");
    let err = s.aws_err(&[
        "inspector2",
        "list-findings",
        "--filter-criteria",
        r#"{"lambdaFunctionName": [{"comparison": "PREFIX", "value": "vuln"}]}"#,
    ]);
    assert_eq!(error_code(&err), "ValidationException", "{err}");
    assert!(err.contains("PREFIX"), "{err}");
    let err = s.aws_err(&[
        "inspector2",
        "list-findings",
        "--sort-criteria",
        "field=SEVERITY,sortOrder=DESC",
    ]);
    assert_eq!(error_code(&err), "ValidationException", "{err}");

    // lambda:* does not grant it.
    let deployer = user_with_policy(
        &s,
        "deployer",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}]}),
    );
    let out = aws_as(&s, &deployer, &["inspector2", "list-findings"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&err), "AccessDeniedException", "{err}");
    let reader = user_with_policy(
        &s,
        "reader",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "inspector2:ListFindings", "Resource": "*"}]}),
    );
    let v = ok_as(&s, &reader, &["inspector2", "list-findings"]);
    assert_eq!(v["findings"].as_array().unwrap().len(), 6);
}
