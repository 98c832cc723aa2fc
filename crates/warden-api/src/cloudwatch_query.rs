//! CloudWatch's older wire protocol, the AWS query protocol (a form at `/` with
//! `Action=PutMetricData&Version=2010-08-01&...`, answered in XML), which SDKs and CLIs
//! released before CloudWatch moved to JSON and CBOR speak. The form is read into the same
//! CBOR value the other protocols produce, and the handlers' answer is written as
//! CloudWatch's XML, so every operation behaves the same whatever the protocol.
//!
//! Reading: `A.member.N.B` is the N-th element of list `A`; values are text except the
//! members CloudWatch's model types as numbers, timestamps (ISO 8601) or booleans, which
//! are converted by name (a dimension's `Value` stays text). A malformed number, timestamp
//! or index is refused, naming the parameter.

use ciborium::Value as Cbor;

use crate::cloudwatch::{invalid, t};
use crate::ApiError;

/// CloudWatch's XML namespace.
pub const NAMESPACE: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";
/// Most elements of one list a form may address.
const MAX_INDEX: usize = 1_000;

const NUMBERS: &[&str] = &[
    "Value",
    "Values",
    "Counts",
    "SampleCount",
    "Sum",
    "Minimum",
    "Maximum",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "StorageResolution",
    "MaxRecords",
    "MaxDatapoints",
];
const TIMES: &[&str] = &["Timestamp", "StartTime", "EndTime", "StartDate", "EndDate"];
const BOOLEANS: &[&str] = &["ReturnData", "ActionsEnabled"];

/// The operation a form names (`Action`), and the form's other parameters as the CBOR map
/// the handlers read.
pub fn read(params: &[(String, String)]) -> Result<(String, Cbor), ApiError> {
    let mut action = None;
    let mut root = Cbor::Map(Vec::new());
    for (key, value) in params {
        match key.as_str() {
            "Action" => {
                action = Some(value.clone());
                continue;
            }
            "Version" => {
                if value != "2010-08-01" {
                    return Err(invalid(format!(
                        "Version `{}` is not CloudWatch's (2010-08-01)",
                        value.chars().take(32).collect::<String>()
                    )));
                }
                continue;
            }
            _ => {}
        }
        let path: Vec<&str> = key.split('.').collect();
        insert(&mut root, &path, value, key, false)?;
    }
    if has_gap(&root) {
        return Err(invalid(
            "A list's members must be numbered from 1 without gaps.",
        ));
    }
    let action = action.ok_or_else(|| {
        ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "MissingAction",
            "The request must name an Action.",
        )
    })?;
    Ok((action, root))
}

/// Whether a list holds a member no parameter gave (`A.member.3` without `A.member.2`).
fn has_gap(node: &Cbor) -> bool {
    match node {
        Cbor::Null => true,
        Cbor::Array(items) => items.iter().any(has_gap),
        Cbor::Map(entries) => entries.iter().any(|(_, v)| has_gap(v)),
        _ => false,
    }
}

/// Puts `value` at `path` under `node`; `in_dimensions` says whether a `Dimensions` list
/// encloses it (where `Value` is text).
fn insert(
    node: &mut Cbor,
    path: &[&str],
    value: &str,
    key: &str,
    in_dimensions: bool,
) -> Result<(), ApiError> {
    let bad = || {
        invalid(format!(
            "The parameter `{}` is not well formed.",
            shown(key)
        ))
    };
    let Some((first, rest)) = path.split_first() else {
        return Err(bad());
    };
    if first.is_empty() {
        return Err(bad());
    }
    let Cbor::Map(entries) = node else {
        return Err(bad());
    };
    if rest.is_empty() {
        if entries.iter().any(|(k, _)| k.as_text() == Some(*first)) {
            return Err(invalid(format!(
                "The parameter `{}` is given twice.",
                shown(key)
            )));
        }
        entries.push((t(first), leaf(first, value, in_dimensions, key)?));
        return Ok(());
    }
    let dims = in_dimensions || *first == "Dimensions";
    // `A.member.N...`: a list.
    if rest.first() == Some(&"member") {
        let index: usize = rest
            .get(1)
            .and_then(|n| n.parse().ok())
            .filter(|n| (1..=MAX_INDEX).contains(n))
            .ok_or_else(bad)?;
        let list = child(entries, first, || Cbor::Array(Vec::new()));
        let Cbor::Array(items) = list else {
            return Err(bad());
        };
        while items.len() < index {
            items.push(Cbor::Null);
        }
        let slot = &mut items[index - 1];
        let tail = &rest[2..];
        if tail.is_empty() {
            if !matches!(slot, Cbor::Null) {
                return Err(invalid(format!(
                    "The parameter `{}` is given twice.",
                    shown(key)
                )));
            }
            *slot = leaf(first, value, dims, key)?;
            return Ok(());
        }
        if matches!(slot, Cbor::Null) {
            *slot = Cbor::Map(Vec::new());
        }
        return insert(slot, tail, value, key, dims);
    }
    let inner = child(entries, first, || Cbor::Map(Vec::new()));
    insert(inner, rest, value, key, dims)
}

/// The value of `name` in `entries`, made by `make` if absent.
fn child<'a>(
    entries: &'a mut Vec<(Cbor, Cbor)>,
    name: &str,
    make: impl FnOnce() -> Cbor,
) -> &'a mut Cbor {
    let at = match entries.iter().position(|(k, _)| k.as_text() == Some(name)) {
        Some(i) => i,
        None => {
            entries.push((t(name), make()));
            entries.len() - 1
        }
    };
    &mut entries[at].1
}

fn leaf(name: &str, value: &str, in_dimensions: bool, key: &str) -> Result<Cbor, ApiError> {
    if !in_dimensions && NUMBERS.contains(&name) {
        return value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Cbor::Float)
            .ok_or_else(|| invalid(format!("The parameter `{}` must be a number.", shown(key))));
    }
    if TIMES.contains(&name) {
        let parsed = time::OffsetDateTime::parse(
            value,
            &time::format_description::well_known::Iso8601::DEFAULT,
        )
        .map_err(|_| {
            invalid(format!(
                "The parameter `{}` must be an ISO 8601 time.",
                shown(key)
            ))
        })?;
        let seconds = parsed.unix_timestamp_nanos() as f64 / 1e9;
        return Ok(Cbor::Tag(1, Box::new(Cbor::Float(seconds))));
    }
    if BOOLEANS.contains(&name) {
        return match value {
            "true" => Ok(Cbor::Bool(true)),
            "false" => Ok(Cbor::Bool(false)),
            _ => Err(invalid(format!(
                "The parameter `{}` must be true or false.",
                shown(key)
            ))),
        };
    }
    Ok(t(value))
}

fn shown(key: &str) -> String {
    key.chars().take(128).collect()
}

/// The handlers' answer to `action` as CloudWatch's XML response document.
pub fn write(action: &str, output: &Cbor, request_id: &str) -> String {
    let mut out = format!("<{action}Response xmlns=\"{NAMESPACE}\">");
    let empty = matches!(output, Cbor::Map(entries) if entries.is_empty());
    if !empty {
        out.push_str(&format!("<{action}Result>"));
        if let Cbor::Map(entries) = output {
            for (k, v) in entries {
                if let Some(name) = k.as_text() {
                    element(&mut out, name, v);
                }
            }
        }
        out.push_str(&format!("</{action}Result>"));
    }
    out.push_str(&format!(
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        escape(request_id)
    ));
    out
}

fn element(out: &mut String, name: &str, value: &Cbor) {
    match value {
        Cbor::Array(items) => {
            out.push_str(&format!("<{name}>"));
            for item in items {
                element(out, "member", item);
            }
            out.push_str(&format!("</{name}>"));
        }
        // The one map (not structure) CloudWatch's outputs carry: percentiles by name.
        Cbor::Map(entries) if name == "ExtendedStatistics" => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in entries {
                out.push_str("<entry><key>");
                out.push_str(&escape(k.as_text().unwrap_or("")));
                out.push_str("</key>");
                element(out, "value", v);
                out.push_str("</entry>");
            }
            out.push_str(&format!("</{name}>"));
        }
        Cbor::Map(entries) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in entries {
                if let Some(child) = k.as_text() {
                    element(out, child, v);
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        Cbor::Null => {}
        other => {
            out.push_str(&format!("<{name}>{}</{name}>", scalar(other)));
        }
    }
}

fn scalar(value: &Cbor) -> String {
    match value {
        Cbor::Text(s) => escape(s),
        Cbor::Bool(b) => b.to_string(),
        Cbor::Integer(i) => i128::from(*i).to_string(),
        Cbor::Float(f) => f.to_string(),
        Cbor::Tag(1, inner) => {
            let seconds = match inner.as_ref() {
                Cbor::Integer(i) => i128::from(*i) as f64,
                Cbor::Float(f) => *f,
                _ => 0.0,
            };
            let ms = (seconds * 1000.0).round() as i64;
            warden_types::iso_timestamp(ms)
        }
        _ => String::new(),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                out.push_str(&format!("&#x{:x};", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudwatch::{get, list, num, text, time};
    use proptest::prelude::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_form_becomes_the_tree_the_handlers_read() {
        let (action, input) = read(&form(&[
            ("Action", "PutMetricData"),
            ("Version", "2010-08-01"),
            ("Namespace", "Shop"),
            ("MetricData.member.1.MetricName", "Orders"),
            ("MetricData.member.1.Value", "3.5"),
            ("MetricData.member.1.Timestamp", "2026-12-04T10:00:00Z"),
            ("MetricData.member.1.Dimensions.member.1.Name", "Shop"),
            ("MetricData.member.1.Dimensions.member.1.Value", "42"),
            ("MetricData.member.2.MetricName", "Latency"),
            ("MetricData.member.2.Values.member.1", "1"),
            ("MetricData.member.2.Values.member.2", "2"),
        ]))
        .unwrap();
        assert_eq!(action, "PutMetricData");
        assert_eq!(text(&input, "Namespace"), Some("Shop"));
        let data = list(&input, "MetricData");
        assert_eq!(data.len(), 2);
        assert_eq!(num(&data[0], "Value"), Some(3.5));
        assert_eq!(time(&data[0], "Timestamp"), Some(1_796_378_400.0));
        let dims = list(&data[0], "Dimensions");
        assert_eq!(
            text(&dims[0], "Value"),
            Some("42"),
            "a dimension's value stays text"
        );
        assert_eq!(list(&data[1], "Values").len(), 2);
        assert!(get(&input, "Version").is_none());
    }

    #[test]
    fn malformed_forms_are_refused_by_name() {
        for (pairs, said) in [
            (vec![("Namespace", "x")], "Action"),
            (
                vec![("Action", "ListMetrics"), ("Version", "2011-01-01")],
                "Version",
            ),
            (
                vec![
                    ("Action", "PutMetricData"),
                    ("MetricData.member.0.Value", "1"),
                ],
                "MetricData.member.0.Value",
            ),
            (
                vec![
                    ("Action", "PutMetricData"),
                    ("MetricData.member.1.Value", "many"),
                ],
                "number",
            ),
            (
                vec![
                    ("Action", "GetMetricStatistics"),
                    ("StartTime", "yesterday"),
                ],
                "ISO 8601",
            ),
            (
                vec![("Action", "PutMetricAlarm"), ("ActionsEnabled", "yes")],
                "true or false",
            ),
            (
                vec![
                    ("Action", "ListMetrics"),
                    ("Namespace", "a"),
                    ("Namespace", "b"),
                ],
                "twice",
            ),
            (
                vec![("Action", "ListMetrics"), ("A..B", "a")],
                "well formed",
            ),
            (
                vec![
                    ("Action", "PutMetricData"),
                    ("MetricData.member.2.Value", "1"),
                ],
                "gaps",
            ),
        ] {
            let pairs: Vec<(&str, &str)> = pairs;
            let e = read(&form(&pairs)).unwrap_err();
            assert!(
                e.message.contains(said) || e.code == "MissingAction",
                "{pairs:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn the_answer_is_cloudwatchs_xml() {
        let output = crate::cloudwatch::map(vec![
            ("Label", t("Orders")),
            (
                "Datapoints",
                Cbor::Array(vec![crate::cloudwatch::map(vec![
                    ("Timestamp", crate::cloudwatch::timestamp(1_796_378_400)),
                    ("Sum", Cbor::Float(7.0)),
                    (
                        "ExtendedStatistics",
                        crate::cloudwatch::map(vec![("p99", Cbor::Float(1.5))]),
                    ),
                ])]),
            ),
        ]);
        let xml = write("GetMetricStatistics", &output, "r-1");
        assert_eq!(
            xml,
            format!("<GetMetricStatisticsResponse xmlns=\"{NAMESPACE}\"><GetMetricStatisticsResult><Label>Orders</Label><Datapoints><member><Timestamp>2026-12-04T10:00:00.000Z</Timestamp><Sum>7</Sum><ExtendedStatistics><entry><key>p99</key><value>1.5</value></entry></ExtendedStatistics></member></Datapoints></GetMetricStatisticsResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></GetMetricStatisticsResponse>")
        );
        assert_eq!(
            write("PutMetricData", &Cbor::Map(Vec::new()), "r-2"),
            format!("<PutMetricDataResponse xmlns=\"{NAMESPACE}\"><ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></PutMetricDataResponse>")
        );
        assert!(
            write("X", &crate::cloudwatch::map(vec![("L", t("<&>"))]), "r")
                .contains("&lt;&amp;&gt;")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_forms_never_panic(pairs in proptest::collection::vec(("[A-Za-z.0-9]{0,24}", ".{0,12}"), 0..12)) {
            let _ = read(&pairs);
        }
    }
}
