//! A template scan's report: text for a person, JSON for a script, SARIF 2.1.0 for code
//! scanning tools.

use serde_json::{json, Value};

use crate::template::ScanReport;
use crate::{control, CONTROLS};

/// The severities, most severe first.
pub const SEVERITIES: &[&str] = &["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"];

fn rank(severity: &str) -> usize {
    SEVERITIES
        .iter()
        .position(|s| *s == severity)
        .unwrap_or(SEVERITIES.len())
}

/// Whether any finding is at least as severe as `threshold` (`HIGH` counts `CRITICAL`).
pub fn fails_at(report: &ScanReport, threshold: &str) -> bool {
    let limit = rank(threshold);
    report.findings.iter().any(|f| rank(&f.severity) <= limit)
}

/// The findings by severity, each with what to do.
pub fn to_text(report: &ScanReport) -> String {
    let mut out = String::new();
    let mut findings: Vec<_> = report.findings.iter().collect();
    findings.sort_by_key(|f| {
        (
            rank(&f.severity),
            f.control_id.clone(),
            f.resource_id.clone(),
        )
    });
    for f in &findings {
        out.push_str(&format!(
            "{:<13} {:<30} {}\n              {}\n              fix: {}\n",
            f.severity, f.control_id, f.resource_id, f.description, f.remediation
        ));
    }
    let resources: usize = report.resources.values().sum();
    out.push_str(&format!(
        "{}: {} findings in {resources} resources\n",
        report.file,
        findings.len()
    ));
    out
}

/// The report as JSON.
pub fn to_json(report: &ScanReport) -> Value {
    json!(report)
}

fn level(severity: &str) -> &'static str {
    match severity {
        "CRITICAL" | "HIGH" => "error",
        "MEDIUM" => "warning",
        _ => "note",
    }
}

/// The report as a SARIF 2.1.0 log: one run, every control as a rule, each finding a
/// result located at the template (and the resource's logical id).
pub fn to_sarif(report: &ScanReport) -> Value {
    let rules: Vec<Value> = CONTROLS
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.id.replace('.', ""),
                "shortDescription": { "text": c.title },
                "fullDescription": { "text": c.checks },
                "help": { "text": c.remediation },
                "defaultConfiguration": { "level": level(c.severity) },
                "properties": { "security-severity": match c.severity {
                    "CRITICAL" => "9.5", "HIGH" => "8.0", "MEDIUM" => "5.5", "LOW" => "3.0", _ => "1.0",
                }, "checkov": c.checkov },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let index = CONTROLS.iter().position(|c| c.id == f.control_id);
            let logical = f.resource_id.rsplit('#').next().unwrap_or(&f.resource_id);
            json!({
                "ruleId": f.control_id,
                "ruleIndex": index,
                "level": level(&f.severity),
                "message": { "text": format!("{} {}", f.description, control(&f.control_id).remediation) },
                "locations": [{
                    "physicalLocation": { "artifactLocation": { "uri": report.file } },
                    "logicalLocations": [{ "name": logical, "kind": "resource" }],
                }],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "warden",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "artifacts": [{ "location": { "uri": report.file } }],
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ScanReport {
        crate::template::scan(
            "Resources:\n  F:\n    Type: AWS::Lambda::Function\n    Properties: { Runtime: python3.9 }\n",
            "t.yaml",
        )
        .unwrap()
    }

    #[test]
    fn thresholds_count_more_severe_findings() {
        let r = report();
        assert!(fails_at(&r, "MEDIUM"));
        assert!(!fails_at(&r, "HIGH"));
    }

    #[test]
    fn sarif_has_the_shape_code_scanning_reads() {
        let s = to_sarif(&report());
        assert_eq!(s["version"], "2.1.0");
        let run = &s["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), CONTROLS.len());
        for r in rules {
            assert!(r["id"].is_string() && r["shortDescription"]["text"].is_string());
            assert!(["error", "warning", "note"]
                .contains(&r["defaultConfiguration"]["level"].as_str().unwrap()));
        }
        for result in run["results"].as_array().unwrap() {
            let i = result["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[i]["id"], result["ruleId"]);
            assert_eq!(
                result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                "t.yaml"
            );
            assert!(result["message"]["text"].as_str().unwrap().len() > 10);
        }
        assert!(run["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ruleId"] == "Lambda.2"));
    }
}
