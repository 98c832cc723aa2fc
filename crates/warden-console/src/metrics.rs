//! `GetMetricData` requests for the console's charts, and their results read back.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::chart::Line;

/// What the console charts for a function: (query id, metric, statistic), all from
/// `AWS/Lambda` with the `FunctionName` dimension.
pub const FUNCTION_SERIES: [(&str, &str, &str); 6] = [
    ("inv", "Invocations", "Sum"),
    ("err", "Errors", "Sum"),
    ("thr", "Throttles", "Sum"),
    ("p50", "Duration", "p50"),
    ("p99", "Duration", "p99"),
    ("conc", "ConcurrentExecutions", "Maximum"),
];

/// One metric query of a `GetMetricData` request, with `id` made unique by `index`.
pub fn query(
    index: usize,
    id: &str,
    function: &str,
    metric: &str,
    stat: &str,
    period: i64,
) -> Value {
    json!({
        "Id": format!("{id}_{index}"),
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/Lambda",
                "MetricName": metric,
                "Dimensions": [{"Name": "FunctionName", "Value": function}],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": true,
    })
}

/// A `GetMetricData` request body over `[start, end)`.
pub fn request(queries: Vec<Value>, start: i64, end: i64) -> Value {
    json!({
        "MetricDataQueries": queries,
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    })
}

/// The results of a `GetMetricData` response by query id, each oldest first.
pub fn results(response: &Value) -> HashMap<String, Vec<(i64, f64)>> {
    let mut out = HashMap::new();
    let Some(list) = response["MetricDataResults"].as_array() else {
        return out;
    };
    for r in list {
        let Some(id) = r["Id"].as_str() else { continue };
        let times = r["Timestamps"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let values = r["Values"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut points: Vec<(i64, f64)> = times
            .iter()
            .zip(values)
            .filter_map(|(t, v)| Some((t.as_f64()? as i64, v.as_f64()?)))
            .collect();
        points.sort_by_key(|p| p.0);
        out.insert(id.to_owned(), points);
    }
    out
}

/// A function's numbers over the charted range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Invocations.
    pub invocations: f64,
    /// Errors.
    pub errors: f64,
    /// The median duration of the minutes charted (ms), if any ran.
    pub p50: Option<f64>,
    /// The worst minute's 99th percentile (ms), if any ran.
    pub p99: Option<f64>,
    /// Errors in the last five minutes charted.
    pub recent_errors: f64,
    /// Invocations per period, for a sparkline.
    pub spark: Vec<(i64, f64)>,
    /// Errors per period, drawn over the invocations.
    pub spark_errors: Vec<(i64, f64)>,
    /// The 99th percentile duration per period (ms), for a sparkline.
    pub spark_p99: Vec<(i64, f64)>,
}

/// The summary of function `index`'s series in `results` (queries made with
/// [`FUNCTION_SERIES`] and [`query`]); `end` is the range's end.
pub fn summary(results: &HashMap<String, Vec<(i64, f64)>>, index: usize, end: i64) -> Summary {
    let get = |id: &str| {
        results
            .get(&format!("{id}_{index}"))
            .cloned()
            .unwrap_or_default()
    };
    // From +0.0: an empty `sum()` of floats is -0.0, which would print as "-0".
    let sum = |points: &[(i64, f64)]| points.iter().fold(0.0, |acc, p| acc + p.1);
    let inv = get("inv");
    let err = get("err");
    let p50s: Vec<f64> = get("p50").iter().map(|p| p.1).collect();
    let median = if p50s.is_empty() {
        None
    } else {
        let mut v = p50s;
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    };
    Summary {
        invocations: sum(&inv),
        errors: sum(&err),
        p50: median,
        p99: get("p99").iter().map(|p| p.1).reduce(f64::max),
        recent_errors: err.iter().filter(|p| p.0 >= end - 300).map(|p| p.1).sum(),
        spark: inv,
        spark_errors: err,
        spark_p99: get("p99s"),
    }
}

/// The function page's chart lines from its results (index 0): counts, durations and
/// concurrency.
pub fn function_lines(results: &HashMap<String, Vec<(i64, f64)>>) -> [Vec<Line>; 3] {
    let line = |id: &str, label: &str| Line {
        label: label.to_owned(),
        points: results.get(&format!("{id}_0")).cloned().unwrap_or_default(),
    };
    [
        vec![
            line("inv", "Invocations"),
            line("err", "Errors"),
            line("thr", "Throttles"),
        ],
        vec![
            line("p50", "Duration p50 (ms)"),
            line("p99", "Duration p99 (ms)"),
        ],
        vec![line("conc", "Concurrent executions")],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_read_by_id_oldest_first_and_summarised() {
        let response = json!({"MetricDataResults": [
            {"Id": "inv_0", "Timestamps": [120.0, 60.0], "Values": [3.0, 2.0]},
            {"Id": "err_0", "Timestamps": [60.0, 400.0], "Values": [1.0, 2.0]},
            {"Id": "p50_0", "Timestamps": [60.0, 120.0, 180.0], "Values": [5.0, 1.0, 9.0]},
            {"Id": "p99_0", "Timestamps": [60.0, 120.0], "Values": [20.0, 40.0]},
            {"Id": "bad", "Timestamps": "x"},
        ]});
        let r = results(&response);
        assert_eq!(r["inv_0"], vec![(60, 2.0), (120, 3.0)]);
        let s = summary(&r, 0, 600);
        assert_eq!(s.invocations, 5.0);
        assert_eq!(s.errors, 3.0);
        assert_eq!(s.recent_errors, 2.0);
        assert_eq!(s.p50, Some(5.0));
        assert_eq!(s.p99, Some(40.0));
        assert_eq!(s.spark_errors, vec![(60, 1.0), (400, 2.0)]);
        assert!(s.spark_p99.is_empty());
        let none = summary(&r, 1, 600);
        assert_eq!(none, Summary::default());
        assert!(
            none.invocations.is_sign_positive(),
            "no invocations is 0, not -0"
        );
        assert!(results(&json!("nonsense")).is_empty());
    }
}
