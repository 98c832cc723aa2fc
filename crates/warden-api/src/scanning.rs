//! Warden's own dependency-scanning operations, under the dated path `/_warden/2026-11-01`:
//!
//! - `PUT /advisories` (`warden:ImportAdvisories` on the account's advisory database):
//!   replaces the database with the OSV JSON files of the zip in the body, then re-scans
//!   every function's `$LATEST`: what was not found before is logged, counted
//!   (`NewFindings`, per function) and listed in the answer. It changes what every later
//!   deploy is checked against, so it is its own action, granted by no `lambda:*` policy.
//! - `GET /advisories` (`warden:GetAdvisoryDatabase`): how many advisories, the policy.
//! - `GET /functions/NAME/findings` (`warden:GetFunctionFindings` on the function's or
//!   alias's ARN, `?Qualifier=`): the known vulnerabilities of its code and layers, against
//!   the database as it is now.
//! - `GET /functions/NAME/sbom` (`warden:GetFunctionSbom`): the same packages as a
//!   CycloneDX 1.5 SBOM.
//!
//! Reads change nothing. The import is all or nothing: a zip that cannot be read leaves
//! the database as it was.

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use warden_control::scan::{AdvisoryError, PackageScan, ScanPolicy};

use crate::{json_response, ApiError, ApiRequest, ApiState, Reply};

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidRequestException",
        "dependency scanning is off on this server (`--dependency-scan off`)",
    )
}

fn policy_text(policy: ScanPolicy) -> String {
    match policy {
        ScanPolicy::Warn => "warn".into(),
        ScanPolicy::Block(r) => format!("block:{}", format!("{r:?}").to_ascii_lowercase()),
    }
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
    for (function, new) in &rescan.new {
        tracing::warn!(function, advisories = %new.join(","), "known vulnerabilities newly found in a deployed function");
        for _ in new {
            state
                .metrics
                .count(warden_metrics::Counter::NewFindings, Some(function), None);
        }
    }
    let new_findings: Vec<serde_json::Value> = rescan
        .new
        .iter()
        .map(|(function, ids)| json!({ "FunctionName": function, "AdvisoryIds": ids }))
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
                "WithFindings": rescan.with_findings,
                "NewFindings": new_findings,
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
    let mut findings = Vec::new();
    let mut unparsable = Vec::new();
    let mut packages = 0;
    for scan in &scans {
        packages += scan.inventory.packages.len();
        for f in &scan.report.findings {
            findings.push(json!({
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
            }));
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
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "Packages": packages,
            "Findings": findings,
            "Unparsable": unparsable,
        }),
    ))
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
