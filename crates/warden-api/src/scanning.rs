//! Warden's own dependency-scanning operations, under the dated path `/_warden/2026-11-01`:
//!
//! - `PUT /advisories` (`warden:ImportAdvisories` on the account's advisory database):
//!   replaces the database with the OSV JSON files of the zip in the body, then re-scans
//!   every function's `$LATEST` and published versions, and every published layer version
//!   (each distinct package once): what was not found before in a version is logged,
//!   counted (`NewFindings`, per function; a layer's account-wide) and listed in the
//!   answer. It changes what every later deploy is checked against, so
//!   it is its own action, granted by no `lambda:*` policy.
//! - `GET /advisories` (`warden:GetAdvisoryDatabase`): how many advisories, the policy.
//! - `GET /functions/NAME/findings` (`warden:GetFunctionFindings` on the function's or
//!   alias's ARN, `?Qualifier=`): the known vulnerabilities of its code and layers, against
//!   the database as it is now.
//! - `GET /functions/NAME/sbom` (`warden:GetFunctionSbom`): the same packages as a
//!   CycloneDX 1.5 SBOM.
//! - `GET /findings` (`warden:ListFunctionFindings` on `function:*`): the findings of
//!   every function's `$LATEST`.
//! - `POST /accepted-advisories` (`warden:AcceptAdvisory` on the advisory database), a
//!   JSON body `{"AdvisoryId", "Until": "YYYY-MM-DD", "Reason", "FunctionName"?}`:
//!   accepts an advisory, for one function or all, until that day (at most a year
//!   ahead): until then its findings no longer block a deploy and are shown `Accepted`.
//!   It loosens what a blocking policy refuses, so it is its own action, granted by no
//!   `lambda:*` policy; at most 10,000 acceptances are kept (`LimitExceededException`).
//! - `GET /accepted-advisories` (`warden:ListAcceptedAdvisories`): every acceptance,
//!   expired ones marked.
//! - `DELETE /accepted-advisories/ID?FunctionName=` (`warden:RevokeAcceptedAdvisory`):
//!   removes one acceptance, so its findings count again.
//!
//! Reads change nothing. The import is all or nothing: a zip that cannot be read leaves
//! the database as it was.

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use warden_control::scan::{AdvisoryError, PackageScan, ScanPolicy};
use warden_scan::{accept, Acceptance};

use crate::{json_response, ApiError, ApiRequest, ApiState, Reply};

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidRequestException",
        "dependency scanning is off on this server (`--dependency-scan off`)",
    )
}

fn policy_text(policy: ScanPolicy) -> String {
    policy.as_text()
}

/// `PUT /advisories`.
pub async fn import(state: &ApiState, request: &ApiRequest) -> Result<Reply, ApiError> {
    let advisories = state
        .control
        .advisories()
        .cloned()
        .ok_or_else(not_configured)?;
    if request.body.is_empty() {
        return Err(ApiError::invalid(
            "the body must be a zip of OSV JSON advisories",
        ));
    }
    let body = Bytes::clone(&request.body);
    let report = tokio::task::spawn_blocking(move || advisories.import_zip(&body))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            AdvisoryError::Import(_) => ApiError::invalid(e.to_string()),
            _ => ApiError::internal(e),
        })?;
    // Every deployed function is checked against what was just imported.
    let rescan = state.control.rescan_functions().await?;
    for new in &rescan.new {
        tracing::warn!(
            function = %new.function,
            version = %new.version,
            advisories = %new.advisories.join(","),
            "known vulnerabilities newly found in a deployed function"
        );
        for _ in &new.advisories {
            state.metrics.count(
                warden_metrics::Counter::NewFindings,
                Some(&new.function),
                None,
            );
        }
    }
    for new in &rescan.new_layers {
        tracing::warn!(
            layer_version = %new.layer_version_arn,
            advisories = %new.advisories.join(","),
            "known vulnerabilities newly found in a published layer"
        );
        // Counted account-wide: the metric's dimension names functions.
        for _ in &new.advisories {
            state
                .metrics
                .count(warden_metrics::Counter::NewFindings, None, None);
        }
    }
    let new_layer_findings: Vec<serde_json::Value> = rescan
        .new_layers
        .iter()
        .map(|n| {
            json!({
                "LayerVersionArn": n.layer_version_arn,
                "AdvisoryIds": n.advisories,
            })
        })
        .collect();
    let new_findings: Vec<serde_json::Value> = rescan
        .new
        .iter()
        .map(|n| {
            json!({
                "FunctionName": n.function,
                "Version": n.version,
                "AdvisoryIds": n.advisories,
            })
        })
        .collect();
    let malformed: Vec<serde_json::Value> = report
        .malformed
        .iter()
        .take(20)
        .map(|p| json!({ "Path": p.path, "Reason": p.reason }))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "Loaded": report.loaded,
            "Withdrawn": report.withdrawn,
            "OtherEcosystems": report.other_ecosystems,
            "Duplicates": report.duplicates,
            "Malformed": report.malformed.len(),
            "MalformedFiles": malformed,
            "Rescanned": {
                "Functions": rescan.functions,
                "Versions": rescan.versions,
                "Packages": rescan.packages,
                "WithFindings": rescan.with_findings,
                "NewFindings": new_findings,
                "LayerVersions": rescan.layer_versions,
                "NewLayerFindings": new_layer_findings,
            },
        }),
    ))
}

/// `GET /advisories`.
pub async fn database(state: &ApiState) -> Result<Reply, ApiError> {
    let advisories = state.control.advisories().ok_or_else(not_configured)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "Advisories": advisories.current().len(),
            "Policy": policy_text(advisories.policy()),
        }),
    ))
}

async fn scanned(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Vec<PackageScan>, ApiError> {
    state.control.advisories().ok_or_else(not_configured)?;
    let function = state
        .function_ref(raw)?
        .with_qualifier(request.query("Qualifier").as_deref())?;
    Ok(state.control.scan_function(&function).await?)
}

/// `GET /functions/NAME/findings`.
pub async fn findings(
    state: &ApiState,
    request: &ApiRequest,
    raw: &str,
) -> Result<Reply, ApiError> {
    let scans = scanned(state, request, raw).await?;
    let name = state.function_ref(raw)?.name.to_string();
    Ok(json_response(
        StatusCode::OK,
        &findings_json(state, &name, &scans)?,
    ))
}

/// The findings of one function's packages, each marked `Accepted` when an acceptance
/// in force covers it.
fn findings_json(
    state: &ApiState,
    function: &str,
    scans: &[PackageScan],
) -> Result<serde_json::Value, ApiError> {
    let advisories = state.control.advisories().ok_or_else(not_configured)?;
    let today = advisories.today();
    let mut findings = Vec::new();
    let mut unparsable = Vec::new();
    let mut packages = 0;
    for scan in scans {
        packages += scan.inventory.packages.len();
        for f in &scan.report.findings {
            let mut finding = json!({
                "Source": scan.source,
                "Ecosystem": f.ecosystem,
                "Package": f.name,
                "Version": f.version,
                "Paths": f.paths,
                "AdvisoryId": f.advisory_id,
                "Aliases": f.aliases,
                "Summary": f.summary,
                "Severity": f.severity.as_ref().map(|s| json!({
                    "Rating": format!("{:?}", s.rating).to_ascii_uppercase(),
                    "Score": s.score,
                    "Vector": s.vector,
                })),
                "FixedVersion": f.fixed,
            });
            if let Some(a) = advisories.accepted(&f.advisory_id, function, today) {
                finding["Accepted"] = acceptance_json(&a, today);
            }
            findings.push(finding);
        }
        for u in &scan.report.unparsable {
            unparsable.push(json!({
                "Source": scan.source,
                "Ecosystem": u.ecosystem,
                "Package": u.name,
                "Version": u.version,
                "AdvisoryId": u.advisory_id,
                "Reason": u.reason,
            }));
        }
    }
    Ok(json!({
        "Packages": packages,
        "Findings": findings,
        "Unparsable": unparsable,
    }))
}

fn acceptance_json(a: &Acceptance, today: time::Date) -> serde_json::Value {
    let mut v = json!({
        "Until": accept::format_day(a.until),
        "Reason": a.reason,
    });
    if !a.in_force(today) {
        v["Expired"] = json!(true);
    }
    v
}

/// `GET /findings`: every function's `$LATEST`, in name order. Callers: those allowed
/// `warden:ListFunctionFindings` on `function:*`; changes nothing.
pub async fn list_findings(state: &ApiState) -> Result<Reply, ApiError> {
    state.control.advisories().ok_or_else(not_configured)?;
    let mut functions = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .control
            .list_functions(after.clone(), warden_types::limits::MAX_LIST_ITEMS, false)
            .await?;
        for f in &page.items {
            let r = warden_types::FunctionRef {
                name: f.name.clone(),
                qualifier: None,
            };
            let scans = match state.control.scan_function(&r).await {
                Ok(s) => s,
                // Deleted since it was listed.
                Err(warden_control::ControlError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut entry = findings_json(state, f.name.as_str(), &scans)?;
            entry["FunctionName"] = json!(f.name.as_str());
            functions.push(entry);
        }
        match page
            .next_marker
            .and_then(|m| warden_types::FunctionName::new(&m).ok())
        {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "Functions": functions }),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct AcceptInput {
    advisory_id: String,
    until: String,
    reason: String,
    function_name: Option<String>,
}

fn accept_error(e: AdvisoryError) -> ApiError {
    match e {
        AdvisoryError::Accept(a) => ApiError::invalid(format!("{}: {}", a.field, a.message)),
        AdvisoryError::Limit(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "LimitExceededException",
            e.to_string(),
        ),
        other => ApiError::internal(other),
    }
}

fn function_field(raw: Option<String>) -> Result<Option<String>, ApiError> {
    raw.map(|f| {
        warden_types::FunctionName::new(&f)
            .map(|n| n.as_str().to_owned())
            .map_err(|_| {
                ApiError::invalid(
                    "FunctionName: a function name is 1-64 letters, digits, `-` and `_`",
                )
            })
    })
    .transpose()
}

/// `POST /accepted-advisories`. Callers: those allowed `warden:AcceptAdvisory` on the
/// advisory database. Records (or replaces) one acceptance durably: until its day, the
/// advisory's findings stop blocking deploys (for the function named, or every one).
pub async fn accept_advisory(state: &ApiState, request: &ApiRequest) -> Result<Reply, ApiError> {
    let advisories = state
        .control
        .advisories()
        .cloned()
        .ok_or_else(not_configured)?;
    let input: AcceptInput = crate::parse_body(&request.body)?;
    let function = function_field(input.function_name)?;
    let today = advisories.today();
    let acceptance = Acceptance::new(
        &input.advisory_id,
        function,
        &input.until,
        &input.reason,
        today,
    )
    .map_err(|e| accept_error(e.into()))?;
    let shown = acceptance.clone();
    tokio::task::spawn_blocking(move || advisories.accept(acceptance))
        .await
        .map_err(ApiError::internal)?
        .map_err(accept_error)?;
    tracing::warn!(
        advisory = %shown.advisory_id,
        function = shown.function.as_deref().unwrap_or("*"),
        until = %accept::format_day(shown.until),
        reason = %shown.reason,
        "an advisory was accepted"
    );
    Ok(json_response(
        StatusCode::OK,
        &acceptance_entry(&shown, today),
    ))
}

fn acceptance_entry(a: &Acceptance, today: time::Date) -> serde_json::Value {
    let mut v = acceptance_json(a, today);
    v["AdvisoryId"] = json!(a.advisory_id);
    if let Some(f) = &a.function {
        v["FunctionName"] = json!(f);
    }
    v
}

/// `GET /accepted-advisories`. Callers: those allowed `warden:ListAcceptedAdvisories`;
/// changes nothing.
pub async fn list_accepted(state: &ApiState) -> Result<Reply, ApiError> {
    let advisories = state.control.advisories().ok_or_else(not_configured)?;
    let today = advisories.today();
    let list: Vec<serde_json::Value> = advisories
        .acceptances()
        .iter()
        .map(|a| acceptance_entry(a, today))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "AcceptedAdvisories": list }),
    ))
}

/// `DELETE /accepted-advisories/ID`. Callers: those allowed
/// `warden:RevokeAcceptedAdvisory`. Removes one acceptance durably, so the advisory's
/// findings count (and block) again; `ResourceNotFoundException` when there was none.
pub async fn revoke_accepted(
    state: &ApiState,
    request: &ApiRequest,
    id: &str,
) -> Result<Reply, ApiError> {
    let advisories = state
        .control
        .advisories()
        .cloned()
        .ok_or_else(not_configured)?;
    accept::check_advisory_id(id).map_err(|e| accept_error(e.into()))?;
    let function = function_field(request.query("FunctionName"))?;
    let (owned, f) = (id.to_owned(), function.clone());
    let removed = tokio::task::spawn_blocking(move || advisories.revoke(&owned, f.as_deref()))
        .await
        .map_err(ApiError::internal)?
        .map_err(accept_error)?;
    if !removed {
        let shown: String = id.chars().take(128).collect();
        return Err(ApiError::not_found(match function {
            Some(f) => format!("advisory {shown} is not accepted for function {f}"),
            None => format!("advisory {shown} is not accepted for every function"),
        }));
    }
    Ok(crate::empty_response(StatusCode::NO_CONTENT))
}

/// `GET /functions/NAME/sbom`.
pub async fn sbom(state: &ApiState, request: &ApiRequest, raw: &str) -> Result<Reply, ApiError> {
    let scans = scanned(state, request, raw).await?;
    let mut inventory = warden_scan::Inventory::default();
    for scan in scans {
        inventory.packages.extend(scan.inventory.packages);
    }
    let name = state.function_ref(raw)?.name.to_string();
    Ok(json_response(
        StatusCode::OK,
        &warden_scan::sbom::cyclonedx(&inventory, &name),
    ))
}
