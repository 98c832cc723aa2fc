//! Posture checks end to end: controls fire on the live account within seconds of the
//! change that breaks them and resolve when it is fixed; findings are read and suppressed
//! through Security Hub's API with the AWS CLI, and with `warden audit findings`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// The findings of `control` on resources whose ARN ends with `resource`.
pub(crate) fn findings(s: &Server, control: &str, resource: &str) -> Vec<Value> {
    let filters = json!({ "GeneratorId": [{ "Value": control, "Comparison": "EQUALS" }] });
    let out = s.aws(&[
        "securityhub",
        "get-findings",
        "--filters",
        &filters.to_string(),
    ]);
    out["Findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["Resources"][0]["Id"]
                .as_str()
                .unwrap()
                .ends_with(resource)
        })
        .cloned()
        .collect()
}

/// Waits until the finding of `control` on `resource` has workflow `status` (`None`: no
/// such finding).
pub(crate) fn wait_status(
    s: &Server,
    control: &str,
    resource: &str,
    status: Option<&str>,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = findings(s, control, resource);
        let now = found
            .first()
            .map(|f| f["Workflow"]["Status"].as_str().unwrap().to_owned());
        if now.as_deref() == status {
            return found.into_iter().next().unwrap_or(Value::Null);
        }
        assert!(
            Instant::now() < deadline,
            "{control} on {resource}: {now:?}, expected {status:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn controls_fire_on_a_change_resolve_when_fixed_and_findings_can_be_suppressed() {
    let s = Server::start();
    s.ensure_role(EXEC_ROLE_NAME, LAMBDA_TRUST);
    s.create_fixture(
        "exposed",
        &[
            "--environment",
            "Variables={DB_PASSWORD=correct-horse-battery-staple-42}",
        ],
    );
    s.aws(&[
        "lambda",
        "add-permission",
        "--function-name",
        "exposed",
        "--statement-id",
        "open",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "*",
    ]);
    s.aws(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "exposed",
        "--auth-type",
        "NONE",
    ]);
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        EXEC_ROLE_NAME,
        "--policy-name",
        "admin",
        "--policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ]);

    let public = wait_status(&s, "Lambda.1", ":function:exposed", Some("NEW"));
    assert_eq!(public["Severity"]["Label"], "CRITICAL");
    assert_eq!(public["Compliance"]["Status"], "FAILED");
    assert!(public["Remediation"]["Recommendation"]["Text"]
        .as_str()
        .unwrap()
        .contains("remove-permission"));
    wait_status(&s, "Warden.Url.1", ":function:exposed", Some("NEW"));
    wait_status(&s, "Warden.Url.2", ":function:exposed", Some("NEW"));
    wait_status(
        &s,
        "Warden.Lambda.PlaintextSecret",
        ":function:exposed",
        Some("NEW"),
    );
    wait_status(
        &s,
        "Warden.Lambda.ErrorsAlarm",
        ":function:exposed",
        Some("NEW"),
    );
    wait_status(&s, "IAM.1", &format!(":role/{EXEC_ROLE_NAME}"), Some("NEW"));
    // No finding leaks the secret it found.
    let all = s.aws(&["securityhub", "get-findings"]);
    assert!(!all.to_string().contains("correct-horse"), "{all}");

    // Fixes resolve their findings.
    s.aws(&[
        "lambda",
        "remove-permission",
        "--function-name",
        "exposed",
        "--statement-id",
        "open",
    ]);
    let fixed = wait_status(&s, "Lambda.1", ":function:exposed", Some("RESOLVED"));
    assert_eq!(fixed["Compliance"]["Status"], "PASSED");
    let (status, _, body) = s.http(
        "PUT",
        "/_warden/2026-11-01/functions/exposed/input-contract",
        &[("content-type", "application/json")],
        br#"{"EventSchema": {"type": "object"}}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    wait_status(&s, "Warden.Url.2", ":function:exposed", Some("RESOLVED"));
    s.aws(&[
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        "exposed-errors",
        "--namespace",
        "AWS/Lambda",
        "--metric-name",
        "Errors",
        "--dimensions",
        "Name=FunctionName,Value=exposed",
        "--statistic",
        "Sum",
        "--period",
        "60",
        "--evaluation-periods",
        "1",
        "--threshold",
        "0",
        "--comparison-operator",
        "GreaterThanThreshold",
    ]);
    wait_status(
        &s,
        "Warden.Lambda.ErrorsAlarm",
        ":function:exposed",
        Some("RESOLVED"),
    );
    s.aws(&[
        "iam", "put-role-policy", "--role-name", EXEC_ROLE_NAME, "--policy-name", "admin",
        "--policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:CreateLogStream","Resource":"arn:aws:logs:us-east-1:123456789012:log-group:x"}]}"#,
    ]);
    wait_status(
        &s,
        "IAM.1",
        &format!(":role/{EXEC_ROLE_NAME}"),
        Some("RESOLVED"),
    );

    // No code signing config, then one: the control clears, and the config has a history.
    wait_status(
        &s,
        "Warden.Lambda.CodeSigning",
        ":function:exposed",
        Some("NEW"),
    );
    let profile = s.aws(&[
        "signer",
        "put-signing-profile",
        "--profile-name",
        "release",
        "--platform-id",
        "AWSLambda-SHA384-ECDSA",
    ]);
    let version = profile["profileVersionArn"].as_str().unwrap();
    let csc = s.aws(&[
        "lambda",
        "create-code-signing-config",
        "--allowed-publishers",
        &format!("SigningProfileVersionArns={version}"),
        "--code-signing-policies",
        "UntrustedArtifactOnDeployment=Warn",
    ]);
    let csc_arn = csc["CodeSigningConfig"]["CodeSigningConfigArn"]
        .as_str()
        .unwrap();
    s.aws(&[
        "lambda",
        "put-function-code-signing-config",
        "--function-name",
        "exposed",
        "--code-signing-config-arn",
        csc_arn,
    ]);
    wait_status(
        &s,
        "Warden.Lambda.CodeSigning",
        ":function:exposed",
        Some("RESOLVED"),
    );
    let history = s.aws(&[
        "configservice",
        "get-resource-config-history",
        "--resource-type",
        "AWS::Lambda::CodeSigningConfig",
        "--resource-id",
        csc_arn.rsplit(':').next().unwrap(),
    ]);
    assert!(
        history["configurationItems"][0]["configuration"]
            .as_str()
            .unwrap()
            .contains("\"Warn\""),
        "{history}"
    );

    // A customer key that does not rotate, then does.
    let key = s.aws(&["kms", "create-key"])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_id = key.rsplit('/').next().unwrap().to_owned();
    wait_status(&s, "KMS.4", &key_id, Some("NEW"));
    s.aws(&["kms", "enable-key-rotation", "--key-id", &key_id]);
    wait_status(&s, "KMS.4", &key_id, Some("RESOLVED"));

    // A public URL kept on purpose: suppressed, with the reason, and it stays suppressed.
    let url = findings(&s, "Warden.Url.1", ":function:exposed").remove(0);
    let identifier = json!([{ "Id": url["Id"], "ProductArn": url["ProductArn"] }]).to_string();
    let e = s.aws_err(&[
        "securityhub",
        "batch-update-findings",
        "--finding-identifiers",
        &identifier,
        "--workflow",
        "Status=SUPPRESSED",
    ]);
    assert_eq!(error_code(&e), "InvalidInputException", "{e}");
    let out = s.aws(&[
        "securityhub",
        "batch-update-findings",
        "--finding-identifiers",
        &identifier,
        "--workflow",
        "Status=SUPPRESSED",
        "--note",
        "Text=a public webhook by design,UpdatedBy=alice",
    ]);
    assert_eq!(
        out["ProcessedFindings"].as_array().unwrap().len(),
        1,
        "{out}"
    );
    // Another change triggers an evaluation; the suppression holds.
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "exposed",
        "--description",
        "touched",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let kept = wait_status(&s, "Warden.Url.1", ":function:exposed", Some("SUPPRESSED"));
    assert_eq!(kept["Note"]["Text"], "a public webhook by design");

    // Refusals: filters Warden does not serve, callers without permission.
    let e = s.aws_err(&[
        "securityhub",
        "get-findings",
        "--filters",
        r#"{"MalwareName": [{"Value": "x", "Comparison": "EQUALS"}]}"#,
    ]);
    assert_eq!(error_code(&e), "InvalidInputException", "{e}");
    let nobody = user_with_key(&s, "nobody");
    let out = aws_as(&s, &nobody, &["securityhub", "get-findings"]);
    assert_eq!(
        error_code(&String::from_utf8_lossy(&out.stderr)),
        "AccessDeniedException"
    );

    // `warden audit findings`: open findings with what to do.
    let out = s.warden(&[
        "audit",
        "findings",
        "--control",
        "Warden.Lambda.PlaintextSecret",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("HIGH") && text.contains("fix: Keep the secret in Secrets Manager"),
        "{text}"
    );
}

#[test]
fn time_based_controls_fire_once_the_inactivity_period_has_passed() {
    // With a period of 0 days, every key is older than it.
    let s = Server::start_with(&["--posture-inactive-days", "0"]);
    let admin = s.admin();
    let found = wait_status(&s, "IAM.3", ":user/admin", Some("NEW"));
    assert!(
        found["Description"].as_str().unwrap().contains(&admin.key),
        "{found}"
    );
}
