//! The live series in Prometheus's text exposition format (version 0.0.4).
//!
//! Each family is labelled by `function` only (versions would multiply the series a
//! scrape carries; their datapoints are in the store). Events that belong to no function
//! (an authentication failure, a refusal before a function was named) are the family's
//! one unlabelled line, so that summing a family over its lines counts every event once.
//! Durations are histograms in seconds, with a bucket at each power of two of
//! microseconds, which the live histograms' buckets fall on exactly.

use std::fmt::Write as _;

use crate::histogram::{upper_bound, BUCKETS};
use crate::{Counter, SeriesSnapshot, Timer};

/// A value the caller adds (process and engine internals): typed `counter` when its name
/// ends in `_total`, `gauge` otherwise.
#[derive(Debug, Clone)]
pub struct Gauge {
    /// The family's name (`warden_instances`).
    pub name: &'static str,
    /// Its help line.
    pub help: &'static str,
    /// Its labels.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn family(counter: Counter) -> (&'static str, &'static str) {
    match counter {
        Counter::Invocations => (
            "warden_invocations_total",
            "Invocations that ran, successfully or not.",
        ),
        Counter::Errors => ("warden_errors_total", "Invocations that ended in an error."),
        Counter::Throttles => (
            "warden_throttles_total",
            "Invocations refused by a concurrency or memory limit.",
        ),
        Counter::AsyncEventsReceived => (
            "warden_async_events_received_total",
            "Asynchronous events queued.",
        ),
        Counter::AsyncEventsDropped => (
            "warden_async_events_dropped_total",
            "Asynchronous events dropped after their last attempt.",
        ),
        Counter::AuthenticationFailures => (
            "warden_authentication_failures_total",
            "Requests whose signature or credentials did not authenticate.",
        ),
        Counter::AccessDenied => (
            "warden_access_denied_total",
            "Requests their caller was not allowed to make.",
        ),
        Counter::InputValidationRejects => (
            "warden_input_validation_rejects_total",
            "Events and URL requests refused by an input contract.",
        ),
        Counter::EgressRejects => (
            "warden_egress_rejects_total",
            "Packets of connections refused by a function's egress rules.",
        ),
        Counter::SandboxKills => (
            "warden_sandbox_kills_total",
            "Instances the platform killed (memory, timeout, processes).",
        ),
        Counter::NewFindings => (
            "warden_new_findings_total",
            "Known vulnerabilities newly found in deployed functions by a re-scan.",
        ),
    }
}

fn timer_family(timer: Timer) -> (&'static str, &'static str) {
    match timer {
        Timer::Duration => ("warden_duration_seconds", "Invocation durations."),
        Timer::AsyncEventAge => (
            "warden_async_event_age_seconds",
            "How long asynchronous events waited for their first attempt.",
        ),
    }
}

/// A label value with `\`, `"` and line breaks escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Renders the series (as [`crate::Metrics::snapshot`] lists them: the account's first),
/// the number of series refused, and the caller's gauges.
pub fn render(series: &[SeriesSnapshot], refused_series: u64, extra: &[Gauge]) -> String {
    let mut out = String::new();
    let account = series.iter().find(|s| s.dims.function.is_none());
    let functions: Vec<&SeriesSnapshot> = series
        .iter()
        .filter(|s| {
            s.dims.function.is_some() && s.dims.version.is_none() && s.dims.resource.is_none()
        })
        .collect();
    for counter in Counter::ALL {
        let (name, help) = family(counter);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let mut counted = 0u64;
        for f in &functions {
            let n = f.counter(counter);
            counted += n;
            let function = f.dims.function.as_deref().unwrap_or_default();
            let _ = writeln!(out, "{name}{} {n}", labels(&[("function", function)]));
        }
        let total = account.map_or(0, |a| a.counter(counter));
        if total > counted || functions.is_empty() {
            let _ = writeln!(out, "{name} {}", total.saturating_sub(counted));
        }
    }
    for timer in Timer::ALL {
        let (name, help) = timer_family(timer);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for f in &functions {
            let function = f.dims.function.as_deref().unwrap_or_default();
            let t = &f.timer(timer).totals;
            let mut cumulative = 0u64;
            for i in 0..BUCKETS {
                cumulative += t.buckets.get(i).copied().unwrap_or(0);
                let bound = upper_bound(i);
                // One line per power of two of microseconds, where buckets end exactly.
                if i == BUCKETS - 1 || !bound.is_power_of_two() {
                    continue;
                }
                let le = format!("{}", bound as f64 / 1e6);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {cumulative}",
                    labels(&[("function", function), ("le", &le)])
                );
            }
            let l = labels(&[("function", function)]);
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                labels(&[("function", function), ("le", "+Inf")]),
                t.count
            );
            let _ = writeln!(out, "{name}_sum{l} {}", t.sum as f64 / 1e6);
            let _ = writeln!(out, "{name}_count{l} {}", t.count);
        }
    }
    let name = "warden_concurrent_executions";
    let _ = writeln!(
        out,
        "# HELP {name} Invocations running now.\n# TYPE {name} gauge"
    );
    for f in &functions {
        let function = f.dims.function.as_deref().unwrap_or_default();
        let _ = writeln!(
            out,
            "{name}{} {}",
            labels(&[("function", function)]),
            f.concurrent
        );
    }
    let _ = writeln!(out, "{name} {}", account.map_or(0, |a| a.concurrent));
    let name = "warden_metric_series_refused_total";
    let _ = writeln!(
        out,
        "# HELP {name} Series not kept because the series cap was reached.\n# TYPE {name} counter\n{name} {refused_series}"
    );
    let mut seen: Vec<&str> = Vec::new();
    for g in extra {
        if !seen.contains(&g.name) {
            seen.push(g.name);
            // Prometheus' convention: a family named `_total` only ever grows.
            let kind = if g.name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} {kind}",
                g.name, g.help, g.name
            );
        }
        let pairs: Vec<(&str, &str)> = g.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let _ = writeln!(out, "{}{} {}", g.name, labels(&pairs), g.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;

    #[test]
    fn families_are_labelled_by_function_and_count_each_event_once() {
        let m = Metrics::new(100);
        m.started("f", "1", None);
        m.finished("f", "1", None, 1_500, true);
        m.count(Counter::AuthenticationFailures, None, None);
        m.count(Counter::Throttles, Some("g\"x"), None);
        let text = render(
            &m.snapshot(false),
            m.refused_series(),
            &[Gauge {
                name: "warden_instances",
                help: "Instances by state.",
                labels: vec![("state", "idle".into())],
                value: 2.0,
            }],
        );
        for line in [
            "# TYPE warden_invocations_total counter",
            "warden_invocations_total{function=\"f\"} 1",
            "warden_errors_total{function=\"f\"} 1",
            "warden_throttles_total{function=\"g\\\"x\"} 1",
            "warden_authentication_failures_total 1",
            "warden_duration_seconds_bucket{function=\"f\",le=\"0.001024\"} 0",
            "warden_duration_seconds_bucket{function=\"f\",le=\"0.002048\"} 1",
            "warden_duration_seconds_bucket{function=\"f\",le=\"+Inf\"} 1",
            "warden_duration_seconds_sum{function=\"f\"} 0.0015",
            "warden_duration_seconds_count{function=\"f\"} 1",
            "warden_concurrent_executions{function=\"f\"} 0",
            "warden_instances{state=\"idle\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
        // Every event of a function is on its line, none also on the unlabelled one.
        assert!(!text.lines().any(|l| l == "warden_invocations_total 0"));
        assert!(!text
            .lines()
            .any(|l| l.starts_with("warden_invocations_total ")));
    }
}
