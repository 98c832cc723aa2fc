//! Amazon Inspector's `ListFindings` (rest-json, signing name `inspector2`,
//! `POST /findings/list`) over dependency scanning's findings, so that
//! `aws inspector2 list-findings` and Inspector tooling read them unchanged.
//!
//! **What is listed.** One `PACKAGE_VULNERABILITY` finding per (function version,
//! package, advisory): every function's `$LATEST` and published versions, their code and
//! layers, matched against the advisory database as it is at the call (findings are
//! computed, not stored; each distinct package is read once per call). A finding an
//! accepted advisory covers is `SUPPRESSED`, the others `ACTIVE`. `firstObservedAt` is
//! when the version's code was last changed (no observation history is kept);
//! `lastObservedAt` and `updatedAt` are the time of the call. Findings come in the order
//! of their `findingArn`, which is stable (a digest of function, version, package source,
//! package and advisory), and `nextToken` is the last ARN of the page, so that a page
//! boundary survives findings appearing or going in between.
//!
//! **Filters** (`filterCriteria`): `findingArn`, `awsAccountId`, `findingType`,
//! `severity`, `findingStatus`, `resourceType`, `resourceId`, `title`,
//! `vulnerabilityId`, `fixAvailable`, `lambdaFunctionName` and `lambdaFunctionRuntime`,
//! each a list of 1 to 10 string filters with comparison `EQUALS` or `NOT_EQUALS`.
//! Within one key a finding must equal one of the `EQUALS` values (if any) and none of
//! the `NOT_EQUALS` ones; keys combine with AND. Any other key, comparison (`PREFIX`) or
//! member, and `sortCriteria`, is refused with `ValidationException` naming it: a filter
//! Warden ignored would show more than was asked for.
//!
//! **Who may call.** `inspector2:ListFindings` on `*`, as on AWS. It reads; it changes
//! nothing. Without dependency scanning (`--dependency-scan off`) it is refused.

use std::collections::{BTreeMap, HashMap};

use http::request::Parts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warden_types::identity::Principal;
use warden_types::FunctionVersion;

use crate::access::Target;
use crate::doors::{BoxFuture, Head, ServiceDoor};
use crate::pipeline::Validated;
use crate::routes::{Operation, Service};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// The name Inspector's credential scopes carry.
pub const SIGNING_NAME: &str = "inspector2";
const LIST_FINDINGS: &str = "Inspector2.ListFindings";
/// Findings per page when `maxResults` is not given.
const DEFAULT_PAGE: usize = 50;
/// The most values one filter key takes, as Inspector's model says.
const MAX_FILTER_VALUES: usize = 10;

/// Inspector's door (`inspector2`, rest-json).
pub struct InspectorDoor;

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(
        http::StatusCode::BAD_REQUEST,
        "ValidationException",
        message,
    )
}

fn shown(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl ServiceDoor for InspectorDoor {
    fn signing_names(&self) -> &'static [&'static str] {
        &[SIGNING_NAME]
    }

    fn claims(&self, head: Head<'_>) -> bool {
        head.claimed == Some(SIGNING_NAME)
    }

    fn route(&self, parts: &Parts) -> Result<Operation, ApiError> {
        match (parts.method.as_str(), parts.uri.path()) {
            ("POST", "/findings/list") => Ok(Operation::JsonTarget(LIST_FINDINGS.into())),
            (m, p) => Err(ApiError::new(
                http::StatusCode::NOT_FOUND,
                "ValidationException",
                format!(
                    "Warden's Inspector serves ListFindings (POST /findings/list), not {m} {}",
                    shown(p, 128)
                ),
            )),
        }
    }

    fn service(&self, _head: Head<'_>) -> Service {
        Service::RestJson { name: SIGNING_NAME }
    }

    fn service_of(&self, _request: &ApiRequest) -> Service {
        Service::RestJson { name: SIGNING_NAME }
    }

    fn body_limit(&self, _operation: &Operation) -> usize {
        64 * 1024
    }

    fn targets(
        &self,
        _state: &ApiState,
        request: &ApiRequest,
        _principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        Ok(vec![Target {
            action: format!("inspector2:{}", request.operation.name()),
            resource: "*".into(),
            ..Target::default()
        }])
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(async move {
            let request = request.request();
            let body: Value = if request.body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(&request.body)
                    .map_err(|e| validation(format!("the body is not JSON: {e}")))?
            };
            list_findings(state, &body).await
        })
    }
}

/// A filterable field of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    FindingArn,
    AccountId,
    FindingType,
    Severity,
    Status,
    ResourceType,
    ResourceId,
    Title,
    VulnerabilityId,
    FixAvailable,
    FunctionName,
    FunctionRuntime,
}

const FIELDS: [(&str, Field); 12] = [
    ("findingArn", Field::FindingArn),
    ("awsAccountId", Field::AccountId),
    ("findingType", Field::FindingType),
    ("severity", Field::Severity),
    ("findingStatus", Field::Status),
    ("resourceType", Field::ResourceType),
    ("resourceId", Field::ResourceId),
    ("title", Field::Title),
    ("vulnerabilityId", Field::VulnerabilityId),
    ("fixAvailable", Field::FixAvailable),
    ("lambdaFunctionName", Field::FunctionName),
    ("lambdaFunctionRuntime", Field::FunctionRuntime),
];

/// One key's filters: the values a finding must equal one of (none: any), and those it
/// must equal none of.
#[derive(Debug, Default)]
struct Filter {
    equals: Vec<String>,
    not_equals: Vec<String>,
}

impl Filter {
    fn admits(&self, value: &str) -> bool {
        (self.equals.is_empty() || self.equals.iter().any(|v| v == value))
            && !self.not_equals.iter().any(|v| v == value)
    }
}

fn filters(body: &Value) -> Result<Vec<(Field, Filter)>, ApiError> {
    let Some(criteria) = body.get("filterCriteria") else {
        return Ok(Vec::new());
    };
    let criteria = criteria
        .as_object()
        .ok_or_else(|| validation("filterCriteria must be an object"))?;
    let mut out = Vec::new();
    for (name, list) in criteria {
        let Some((_, field)) = FIELDS.iter().find(|(n, _)| n == name) else {
            let served: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
            return Err(validation(format!(
                "Warden does not filter findings on `{}`; it filters on {}",
                shown(name, 64),
                served.join(", ")
            )));
        };
        let items = list
            .as_array()
            .filter(|l| (1..=MAX_FILTER_VALUES).contains(&l.len()))
            .ok_or_else(|| {
                validation(format!(
                    "filterCriteria.{name} must be a list of 1 to {MAX_FILTER_VALUES} string filters"
                ))
            })?;
        let mut filter = Filter::default();
        for item in items {
            let value = item
                .get("value")
                .and_then(Value::as_str)
                .filter(|v| (1..=1024).contains(&v.chars().count()))
                .ok_or_else(|| {
                    validation(format!(
                        "each filterCriteria.{name} needs a value of 1 to 1024 characters"
                    ))
                })?;
            match item.get("comparison").and_then(Value::as_str) {
                Some("EQUALS") => filter.equals.push(value.to_owned()),
                Some("NOT_EQUALS") => filter.not_equals.push(value.to_owned()),
                Some(other) => {
                    return Err(validation(format!(
                    "comparison `{}` of filterCriteria.{name} is not served: EQUALS or NOT_EQUALS",
                    shown(other, 32)
                )))
                }
                None => {
                    return Err(validation(format!(
                        "each filterCriteria.{name} needs a comparison"
                    )))
                }
            }
        }
        out.push((*field, filter));
    }
    Ok(out)
}

/// A finding, with the values filters compare.
struct Found {
    arn: String,
    values: BTreeMap<&'static str, String>,
    body: Value,
}

impl Found {
    fn value(&self, field: Field) -> &str {
        let key = FIELDS
            .iter()
            .find(|(_, f)| *f == field)
            .map_or("", |(n, _)| *n);
        self.values.get(key).map_or("", String::as_str)
    }
}

/// Inspector's name for a Lambda runtime (`UNSUPPORTED` for one it has none for).
fn runtime(runtime: &str) -> String {
    let known = [
        "nodejs18.x",
        "nodejs20.x",
        "nodejs22.x",
        "nodejs24.x",
        "python3.9",
        "python3.10",
        "python3.11",
        "python3.12",
        "python3.13",
        "python3.14",
    ];
    if !known.contains(&runtime) {
        return "UNSUPPORTED".into();
    }
    runtime
        .to_ascii_uppercase()
        .replace("PYTHON", "PYTHON_")
        .replace("NODEJS", "NODEJS_")
        .replace('.', "_")
}

fn severity(f: &warden_scan::Finding) -> &'static str {
    match f.severity.as_ref().map(|s| s.rating) {
        None => "UNTRIAGED",
        Some(warden_scan::Rating::None) => "INFORMATIONAL",
        Some(warden_scan::Rating::Low) => "LOW",
        Some(warden_scan::Rating::Medium) => "MEDIUM",
        Some(warden_scan::Rating::High) => "HIGH",
        Some(warden_scan::Rating::Critical) => "CRITICAL",
    }
}

fn package_manager(e: warden_scan::Ecosystem) -> &'static str {
    match e {
        warden_scan::Ecosystem::PyPi => "PIP",
        warden_scan::Ecosystem::Npm => "NPM",
        warden_scan::Ecosystem::CratesIo => "CARGO",
        warden_scan::Ecosystem::Go => "GOBINARY",
    }
}

fn seconds(ms: i64) -> f64 {
    // Milliseconds as fractional seconds: the rest-json timestamp format.
    ms as f64 / 1000.0
}

struct Context<'a> {
    state: &'a ApiState,
    advisories: &'a warden_control::scan::Advisories,
    today: time::Date,
    now_ms: i64,
}

/// The findings of one package of one version.
fn findings_of(
    cx: &Context<'_>,
    v: &FunctionVersion,
    source: Option<&str>,
    report: &warden_scan::ScanReport,
    out: &mut Vec<Found>,
) {
    let state = cx.state;
    let resource_id = state.function_arn(&v.name, Some(&v.version));
    for f in &report.findings {
        let mut digest = Sha256::new();
        for part in [
            v.name.as_str(),
            v.version.as_str(),
            source.unwrap_or("code"),
            &format!("{:?}", f.ecosystem),
            &f.name,
            &f.version,
            &f.advisory_id,
        ] {
            digest.update(part.as_bytes());
            digest.update([0]);
        }
        let hex: String = digest
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let arn = format!(
            "arn:aws:inspector2:{}:{}:finding/{hex}",
            state.region, state.account
        );
        let accepted = cx
            .advisories
            .accepted(&f.advisory_id, v.name.as_str(), cx.today);
        let status = if accepted.is_some() {
            "SUPPRESSED"
        } else {
            "ACTIVE"
        };
        let title = format!("{} - {}", f.advisory_id, f.name);
        let fix = if f.fixed.is_some() { "YES" } else { "NO" };
        let mut package = json!({
            "name": f.name,
            "version": f.version,
            "packageManager": package_manager(f.ecosystem),
        });
        if let Some(fixed) = &f.fixed {
            package["fixedInVersion"] = json!(fixed);
            package["remediation"] = json!(format!("Upgrade {} to {fixed}", f.name));
        }
        if let Some(path) = f.paths.first() {
            package["filePath"] = json!(path);
        }
        if let Some(layer) = source {
            package["sourceLambdaLayerArn"] = json!(layer);
        }
        let mut details = json!({
            "vulnerabilityId": f.advisory_id,
            "source": "OSV",
            "vulnerablePackages": [package],
            "relatedVulnerabilities": f.aliases,
        });
        if let Some(s) = &f.severity {
            if let (Some(score), Some(vector)) = (s.score, &s.vector) {
                let version = vector
                    .strip_prefix("CVSS:")
                    .and_then(|r| r.split('/').next())
                    .unwrap_or("3.1");
                details["cvss"] = json!([{
                    "baseScore": score,
                    "scoringVector": vector,
                    "version": version,
                    "source": "OSV",
                }]);
            }
            details["vendorSeverity"] = json!(format!("{:?}", s.rating).to_ascii_uppercase());
        }
        let mut lambda = json!({
            "functionName": v.name.as_str(),
            "runtime": runtime(&v.runtime),
            "codeSha256": v.code_sha256,
            "version": v.version,
            "executionRoleArn": v.role,
            "packageType": "ZIP",
            "lastModifiedAt": seconds(v.last_modified_ms),
        });
        if !v.layers.is_empty() {
            let layers: Vec<&str> = v.layers.iter().map(|l| l.arn.as_str()).collect();
            lambda["layers"] = json!(layers);
        }
        if let Some(a) = v.architectures.first() {
            lambda["architectures"] = json!([a.replace('-', "_").to_ascii_uppercase()]);
        }
        let recommendation = match &f.fixed {
            Some(fixed) => format!("Upgrade {} from {} to {fixed} or later.", f.name, f.version),
            None => format!(
                "No fixed version of {} is known; remove it or accept the risk.",
                f.name
            ),
        };
        let body = json!({
            "findingArn": arn,
            "awsAccountId": state.account.as_str(),
            "type": "PACKAGE_VULNERABILITY",
            "title": title,
            "description": f.summary.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| format!("{} affects {} {}", f.advisory_id, f.name, f.version)),
            "remediation": { "recommendation": { "text": recommendation } },
            "severity": severity(f),
            "firstObservedAt": seconds(v.last_modified_ms),
            "lastObservedAt": seconds(cx.now_ms),
            "updatedAt": seconds(cx.now_ms),
            "status": status,
            "fixAvailable": fix,
            "resources": [{
                "type": "AWS_LAMBDA_FUNCTION",
                "id": resource_id,
                "partition": "aws",
                "region": state.region.as_str(),
                "details": { "awsLambdaFunction": lambda },
            }],
            "packageVulnerabilityDetails": details,
        });
        let values = BTreeMap::from([
            ("findingArn", arn.clone()),
            ("awsAccountId", state.account.as_str().to_owned()),
            ("findingType", "PACKAGE_VULNERABILITY".to_owned()),
            ("severity", severity(f).to_owned()),
            ("findingStatus", status.to_owned()),
            ("resourceType", "AWS_LAMBDA_FUNCTION".to_owned()),
            ("resourceId", resource_id.clone()),
            ("title", title),
            ("vulnerabilityId", f.advisory_id.clone()),
            ("fixAvailable", fix.to_owned()),
            ("lambdaFunctionName", v.name.to_string()),
            ("lambdaFunctionRuntime", runtime(&v.runtime)),
        ]);
        out.push(Found { arn, values, body });
    }
}

async fn list_findings(state: &ApiState, body: &Value) -> Result<Reply, ApiError> {
    if let Some(obj) = body.as_object() {
        if let Some(k) = obj.keys().find(|k| {
            !["filterCriteria", "maxResults", "nextToken", "sortCriteria"].contains(&k.as_str())
        }) {
            return Err(validation(format!(
                "`{}` is not a member of ListFindings' input",
                shown(k, 64)
            )));
        }
    } else {
        return Err(validation("the body must be a JSON object"));
    }
    if body.get("sortCriteria").is_some() {
        return Err(validation(
            "sortCriteria is not served: findings come in the order of their findingArn",
        ));
    }
    let filters = filters(body)?;
    let max = match body.get("maxResults") {
        None => DEFAULT_PAGE,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=100).contains(n))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| validation("maxResults must be an integer from 1 to 100"))?,
    };
    let after = match body.get("nextToken") {
        None => None,
        Some(t) => Some(
            t.as_str()
                .filter(|t| t.starts_with("arn:aws:inspector2:") && t.len() <= 100)
                .ok_or_else(|| validation("nextToken is not one this server gave"))?
                .to_owned(),
        ),
    };
    let advisories = state.control.advisories().cloned().ok_or_else(|| {
        validation("dependency scanning is off on this server (`--dependency-scan off`)")
    })?;
    let cx = Context {
        state,
        advisories: &advisories,
        today: advisories.today(),
        now_ms: warden_types::now_millis(),
    };
    let mut found = Vec::new();
    let mut reports: HashMap<String, Option<warden_scan::ScanReport>> = HashMap::new();
    let mut marker = None;
    loop {
        let page = state
            .control
            .list_functions(marker.clone(), warden_types::limits::MAX_LIST_ITEMS, true)
            .await?;
        for v in &page.items {
            let packages = std::iter::once((None, &v.code_sha256)).chain(
                v.layers
                    .iter()
                    .map(|l| (Some(l.arn.as_str()), &l.code_sha256)),
            );
            for (source, sha) in packages {
                if !reports.contains_key(sha) {
                    let report = match state.control.scan_stored_package(sha).await {
                        Ok(r) => Some(r),
                        // Collected since the version was listed (it was deleted).
                        Err(e) => {
                            tracing::warn!(function = %v.name, version = %v.version, error = %e, "a package could not be scanned for ListFindings");
                            None
                        }
                    };
                    reports.insert(sha.clone(), report);
                }
                if let Some(Some(report)) = reports.get(sha) {
                    findings_of(&cx, v, source, report, &mut found);
                }
            }
        }
        match page
            .next_marker
            .and_then(|m| warden_types::FunctionName::new(&m).ok())
        {
            Some(next) => marker = Some(next),
            None => break,
        }
    }
    found.retain(|f| {
        filters
            .iter()
            .all(|(field, filter)| filter.admits(f.value(*field)))
    });
    found.sort_by(|a, b| a.arn.cmp(&b.arn));
    let start = match &after {
        Some(a) => found.partition_point(|f| f.arn.as_str() <= a.as_str()),
        None => 0,
    };
    let page: Vec<&Found> = found.iter().skip(start).take(max).collect();
    let mut out = json!({
        "findings": page.iter().map(|f| f.body.clone()).collect::<Vec<_>>(),
    });
    if start + page.len() < found.len() {
        if let Some(last) = page.last() {
            out["nextToken"] = json!(last.arn);
        }
    }
    Ok(crate::json_response(http::StatusCode::OK, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_served_or_refused_by_name() {
        let parsed = filters(&json!({"filterCriteria": {
            "severity": [{"comparison": "EQUALS", "value": "HIGH"}, {"comparison": "EQUALS", "value": "CRITICAL"}],
            "lambdaFunctionName": [{"comparison": "NOT_EQUALS", "value": "f"}],
        }}))
        .expect("served");
        assert_eq!(parsed.len(), 2);
        let severity = &parsed
            .iter()
            .find(|(f, _)| *f == Field::Severity)
            .expect("severity")
            .1;
        assert!(severity.admits("HIGH") && severity.admits("CRITICAL") && !severity.admits("LOW"));
        let name = &parsed
            .iter()
            .find(|(f, _)| *f == Field::FunctionName)
            .expect("name")
            .1;
        assert!(!name.admits("f") && name.admits("g"));

        let refused = |body: Value| filters(&body).expect_err("refused").message;
        let m = refused(
            json!({"filterCriteria": {"ecrImageHash": [{"comparison": "EQUALS", "value": "x"}]}}),
        );
        assert!(m.contains("`ecrImageHash`"), "{m}");
        let m =
            refused(json!({"filterCriteria": {"title": [{"comparison": "PREFIX", "value": "x"}]}}));
        assert!(m.contains("`PREFIX`") && m.contains("title"), "{m}");
        let m = refused(json!({"filterCriteria": {"title": []}}));
        assert!(m.contains("filterCriteria.title"), "{m}");
        let m = refused(json!({"filterCriteria": {"title": [{"value": "x"}]}}));
        assert!(m.contains("comparison"), "{m}");
    }

    #[test]
    fn runtimes_take_inspector_s_names() {
        assert_eq!(runtime("python3.12"), "PYTHON_3_12");
        assert_eq!(runtime("nodejs20.x"), "NODEJS_20_X");
        assert_eq!(runtime("provided.al2023"), "UNSUPPORTED");
    }

    /// Arbitrary JSON, leaning on the names `filterCriteria` uses.
    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("severity"),
                Just("lambdaFunctionName"),
                Just("comparison"),
                Just("value"),
                Just("EQUALS"),
                Just("PREFIX")
            ]
            .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("severity".to_owned()),
                        Just("lambdaFunctionName".to_owned()),
                        Just("comparison".to_owned()),
                        Just("value".to_owned()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any JSON as `filterCriteria` is served or refused, never a panic.
        #[test]
        fn filter_criteria_never_panic(criteria in json_value()) {
            let _ = filters(&json!({ "filterCriteria": criteria }));
        }
    }
}
