//! The pages. Each takes what the API answered (the wire's JSON) and renders HTML;
//! `maud` escapes every value, so nothing a function, a log line or a caller wrote can
//! become markup. A section whose call was refused shows the refusal, as the CLI would.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;

use crate::chart::{self, Line};
use crate::metrics::Summary;
use crate::{CallError, Fetched};

/// Who is signed in, for the header and the forms.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The principal's ARN.
    pub arn: &'a str,
    /// The session's CSRF token, written into every form.
    pub csrf: &'a str,
}

/// The result of an action a page took (invoke, publish, move an alias, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What was done.
    pub title: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// What came back (the response, or the error).
    pub text: String,
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A time the API gave as epoch seconds (or already as text), as RFC 3339 in UTC.
fn when(v: &Value, key: &str) -> String {
    let Some(seconds) = v[key].as_f64() else {
        return text(v, key);
    };
    time::OffsetDateTime::from_unix_timestamp(seconds as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| text(v, key))
}

/// `{"t": seconds}` from epoch milliseconds, for [`when`].
fn json_seconds(ms: &Value) -> Value {
    serde_json::json!({ "t": ms.as_f64().map(|m| m / 1000.0) })
}

fn number(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(x) if x >= 100.0 => format!("{x:.0}{unit}"),
        Some(x) => format!("{x:.2}{unit}"),
        None => "–".to_owned(),
    }
}

fn count(x: f64) -> String {
    format!("{x:.0}")
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

fn csrf_field(who: &Who<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

fn refused(e: &CallError) -> Markup {
    html! { p.refused role="alert" { (e.code) ": " (e.message) } }
}

/// A whole page: header with navigation, the signed-in principal and sign-out, then
/// `body`. `live` names the page's event stream, which the script follows.
pub fn layout(title: &str, who: Option<&Who<'_>>, live: Option<&str>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden" }
                link rel="icon" href="/console/assets/icon.svg";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body data-live=[live] {
                header {
                    span.brand { "Warden" }
                    @if let Some(who) = who {
                        nav aria-label="Sections" {
                            a href="/console/functions" { "Functions" } " "
                            a href="/console/alarms" { "Alarms" } " "
                            a href="/console/findings" { "Findings" } " "
                            a href="/console/audit" { "Audit trail" } " "
                            a href="/console/iam" { "IAM" }
                        }
                        span.who { "Signed in as " (who.arn) }
                        form method="post" action="/console/sign-out" {
                            (csrf_field(who))
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
    .into_string()
}

/// The sign-in page.
pub fn sign_in(error: Option<&str>) -> String {
    let body = html! {
        div.signin {
            p { "Sign in with an IAM user's access key. Every page then shows only what that user's policies allow." }
            @if let Some(e) = error { p.refused role="alert" { (e) } }
            form method="post" action="/console/sign-in" {
                label for="access_key_id" { "Access key ID" }
                input #access_key_id type="text" name="access_key_id" autocomplete="username" required;
                label for="secret_access_key" { "Secret access key" }
                input #secret_access_key type="password" name="secret_access_key" autocomplete="current-password" required;
                p { button type="submit" { "Sign in" } }
            }
        }
    };
    layout("Sign in", None, None, body)
}

/// The page of a one-time sign-in link: who it signs in as, and the button that does.
pub fn link(token: &str, arn: &str) -> String {
    let body = html! {
        div.signin {
            p { "This link signs this browser in as " strong { (arn) } "." }
            form method="post" action="/console/sign-in/link" {
                input type="hidden" name="token" value=(token);
                button type="submit" { "Sign in" }
            }
        }
    };
    layout("Sign in", None, None, body)
}

/// A page that only says what went wrong (an unknown page, a refused change).
pub fn message(who: Option<&Who<'_>>, title: &str, text: &str) -> String {
    layout(
        title,
        who,
        None,
        html! { p.refused role="alert" { (text) } },
    )
}

fn sparkline(lines: &[&[(i64, f64)]], from: i64, to: i64) -> Markup {
    let lines: Vec<Line> = lines
        .iter()
        .map(|points| Line {
            label: String::new(),
            points: points.to_vec(),
        })
        .collect();
    PreEscaped(chart::sparkline(&lines, from, to, 120, 28))
}

/// One row of the functions page.
#[derive(Debug, Clone)]
pub struct FunctionRow {
    /// The function's configuration, as `ListFunctions` gives it.
    pub config: Value,
    /// Its numbers over the last hour.
    pub summary: Summary,
}

/// The functions page: every function the principal may list, with its numbers over the
/// range `from..to`. `metrics` is the refusal of the metrics call, if it was refused.
pub fn functions(
    who: &Who<'_>,
    rows: Result<&[FunctionRow], &CallError>,
    metrics: Option<&CallError>,
    from: i64,
    to: i64,
) -> String {
    let body = html! {
        @match rows {
            Err(e) => (refused(e)),
            Ok(rows) => {
                @if let Some(e) = metrics { (refused(e)) }
                p.muted { (rows.len()) " functions. Numbers cover the last hour; the live columns the last minute." }
                table #functions {
                    thead { tr {
                        th scope="col" { "Function" } th scope="col" { "State" }
                        th scope="col" { "Runtime" } th scope="col" { "Memory" }
                        th scope="col" { "Last modified" } th scope="col" { "Invocations (1 h)" }
                        th scope="col" { "Errors (1 h)" } th scope="col" { "Error rate" }
                        th scope="col" { "p50 / p99" } th scope="col" { "Invocations (blue), errors (red)" }
                        th scope="col" { "p99 duration" }
                        th scope="col" { "Live: invocations / errors (1 min)" }
                    } }
                    tbody {
                        @for row in rows {
                            @let name = text(&row.config, "FunctionName");
                            @let s = &row.summary;
                            @let failing = s.recent_errors > 0.0;
                            tr data-function=(name) data-recent-errors=(if failing { "yes" } else { "no" }) class=[failing.then_some("failing")] {
                                td { a href={ "/console/functions/" (encode(&name)) } { (name) } }
                                td.state { (text(&row.config, "State")) " " span.state-live { @if failing { "Failing" } } }
                                td { (text(&row.config, "Runtime")) }
                                td { (text(&row.config, "MemorySize")) " MB" }
                                td { (text(&row.config, "LastModified")) }
                                td { (count(s.invocations)) }
                                td { (count(s.errors)) }
                                td { @if s.invocations > 0.0 { (format!("{:.1} %", 100.0 * s.errors / s.invocations)) } @else { "–" } }
                                td { (number(s.p50, " ms")) " / " (number(s.p99, " ms")) }
                                td { (sparkline(&[&s.spark, &s.spark_errors], from, to)) }
                                td { (sparkline(&[&s.spark_p99], from, to)) }
                                td { span.live-inv { "0" } " / " span.live-err { "0" } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(
        "Functions",
        Some(who),
        Some("/console/live/functions"),
        body,
    )
}

/// The chart fragment of a function page (also what its event stream sends).
pub fn charts(lines: Result<&[Vec<Line>; 3], &CallError>, from: i64, to: i64) -> String {
    let titles = [
        "Invocations, errors, throttles per minute",
        "Duration (ms)",
        "Concurrency",
    ];
    html! {
        div #charts.charts aria-live="polite" {
            @match lines {
                Err(e) => (refused(e)),
                Ok(lines) => {
                    @for (title, group) in titles.iter().zip(lines.iter()) {
                        figure.chart {
                            (PreEscaped(chart::svg(group, from, to, 420, 140)))
                            figcaption {
                                strong { (title) } " · peak " (number(Some(chart::peak(group)), ""))
                                div.legend {
                                    @for (i, l) in group.iter().enumerate() {
                                        span class={ "c" (i % chart::PALETTE.len()) } { "■ " (l.label) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

/// Everything a function page shows, one call's result each.
#[derive(Debug, Clone)]
pub struct FunctionPage {
    /// The function's name.
    pub name: String,
    /// `GetFunction`.
    pub function: Fetched,
    /// EC2's `DescribeSecurityGroups` of the function's `VpcConfig` groups, as JSON
    /// (`Null` for a function without one).
    pub network: Fetched,
    /// `ListVersionsByFunction`.
    pub versions: Fetched,
    /// `ListAliases`.
    pub aliases: Fetched,
    /// `GetPolicy` (a missing policy is `Ok(Null)`).
    pub policy: Fetched,
    /// `GetInputContract` (none is `Ok(Null)`).
    pub contract: Fetched,
    /// `GetFunctionCodeSigningConfig`.
    pub signing: Fetched,
    /// Inspector's `ListFindings` for the function.
    pub findings: Fetched,
    /// `FilterLogEvents` for the latest `REPORT` lines.
    pub reports: Fetched,
    /// `FilterLogEvents` with the page's filter pattern.
    pub logs: Fetched,
    /// The filter pattern the log tail was asked for.
    pub filter: String,
    /// When the page's log tail ends (epoch ms): the live tail goes on from there.
    pub since_ms: i64,
    /// Config's `GetResourceConfigHistory` for the function.
    pub history: Fetched,
    /// The rendered chart fragment ([`charts`]).
    pub charts: String,
    /// What an action just did.
    pub outcome: Option<Outcome>,
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn section(title: &str, fetched: &Fetched, render: impl Fn(&Value) -> Markup) -> Markup {
    html! {
        section aria-label=(title) {
            h2 { (title) }
            @match fetched {
                Err(e) => (refused(e)),
                Ok(v) => (render(v)),
            }
        }
    }
}

/// The lines of `new` that `old` does not have, and the reverse, for a configuration
/// item's JSON pretty-printed: enough to show what a change changed.
pub fn diff(old: &str, new: &str) -> Vec<(char, String)> {
    let olds: Vec<&str> = old.lines().collect();
    let news: Vec<&str> = new.lines().collect();
    let mut out = Vec::new();
    for l in &olds {
        if !news.contains(l) {
            out.push(('-', (*l).to_owned()));
        }
    }
    for l in &news {
        if !olds.contains(l) {
            out.push(('+', (*l).to_owned()));
        }
    }
    out
}

/// The peers of one EC2 permission: CIDR ranges and security groups.
fn rule_peers(p: &Value) -> String {
    let mut out = Vec::new();
    for (list, key) in [
        ("ipRanges", "cidrIp"),
        ("ipv6Ranges", "cidrIpv6"),
        ("groups", "groupId"),
    ] {
        for item in p[list].as_array().map(Vec::as_slice).unwrap_or_default() {
            out.push(text(item, key));
        }
    }
    out.join(", ")
}

fn configuration_of(item: &Value) -> String {
    match &item["configuration"] {
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map(|v| pretty(&v))
            .unwrap_or_else(|_| s.clone()),
        other => pretty(other),
    }
}

/// A function's page.
pub fn function(who: &Who<'_>, page: &FunctionPage) -> String {
    let name = &page.name;
    let path = format!("/console/functions/{}", encode(name));
    let body = html! {
        @if let Some(o) = &page.outcome {
            section #outcome aria-label="Result" {
                h2 { (o.title) }
                p class=(if o.ok { "ok" } else { "bad" }) { @if o.ok { "Succeeded" } @else { "Failed" } }
                pre { (o.text) }
            }
        }
        (PreEscaped(&page.charts))
        (section("Configuration", &page.function, |v| {
            let c = &v["Configuration"];
            html! {
                table {
                    @for key in ["State", "Runtime", "Handler", "MemorySize", "Timeout", "Role", "LastModified", "CodeSha256", "Version", "KMSKeyArn"] {
                        tr { th scope="row" { (key) } td { (text(c, key)) } }
                    }
                    tr { th scope="row" { "Network (VpcConfig)" } td { pre { (pretty(&c["VpcConfig"])) } } }
                    tr { th scope="row" { "Environment variables" } td {
                        @if let Some(vars) = c["Environment"]["Variables"].as_object() {
                            (vars.keys().cloned().collect::<Vec<_>>().join(", ")) " (values not shown)"
                        } @else { "none" }
                    } }
                }
            }
        }))
        section aria-label="Invoke" {
            h2 { "Invoke" }
            form method="post" action={ (path) "/invoke" } {
                (csrf_field(who))
                label for="payload" { "Event (JSON)" }
                textarea #payload name="payload" { "{}" }
                p { button type="submit" { "Invoke" } }
            }
        }
        (section("Versions", &page.versions, |v| html! {
            table { thead { tr { th { "Version" } th { "Description" } th { "Last modified" } th { "Code SHA-256" } } }
                tbody { @for ver in v["Versions"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    tr { td { (text(ver, "Version")) } td { (text(ver, "Description")) } td { (text(ver, "LastModified")) } td { (text(ver, "CodeSha256")) } }
                } }
            }
            form method="post" action={ (path) "/publish" } {
                (csrf_field(who))
                button type="submit" { "Publish a new version" }
            }
        }))
        (section("Aliases", &page.aliases, |v| html! {
            table { thead { tr { th { "Alias" } th { "Version" } th { "Routing" } th { "Move to version" } } }
                tbody { @for a in v["Aliases"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    @let alias = text(a, "Name");
                    tr {
                        td { (alias) } td { (text(a, "FunctionVersion")) }
                        td { (pretty(&a["RoutingConfig"])) }
                        td { form.inline method="post" action={ (path) "/alias" } {
                            (csrf_field(who))
                            input type="hidden" name="alias" value=(alias);
                            label.visually-hidden for={ "v-" (alias) } { "Version for " (alias) }
                            input id={ "v-" (alias) } type="text" name="version" size="6" required;
                            " " button type="submit" { "Move" }
                        } }
                    }
                } }
            }
        }))
        (section("Network rules", &page.network, |v| html! {
            @let groups = v.as_object().and_then(|o| o.values().next()).map(|r| &r["securityGroupInfo"]).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            @if v.is_null() { p.muted { "No VpcConfig: the function reaches nothing but Warden's own endpoints (unless the server's default egress is open)." } }
            @for g in groups {
                h3 { (text(g, "groupId")) " · " (text(g, "groupName")) }
                table { thead { tr { th { "Direction" } th { "Protocol" } th { "Ports" } th { "Peers" } } }
                    tbody {
                        @for (direction, key) in [("Egress", "ipPermissionsEgress"), ("Ingress", "ipPermissions")] {
                            @for p in g[key].as_array().map(Vec::as_slice).unwrap_or_default() {
                                tr { td { (direction) } td { (text(p, "ipProtocol")) }
                                    td { @if p["fromPort"].is_null() { "all" } @else { (text(p, "fromPort")) "–" (text(p, "toPort")) } }
                                    td { (rule_peers(p)) } }
                            }
                        }
                    }
                }
            }
        }))
        (section("Resource policy", &page.policy, |v| html! {
            @if v.is_null() { p.muted { "No resource policy." } }
            @else { pre { (match v["Policy"].as_str() {
                Some(p) => serde_json::from_str::<Value>(p).map(|p| pretty(&p)).unwrap_or_else(|_| p.to_owned()),
                None => pretty(v),
            }) } }
        }))
        (section("Input contract", &page.contract, |v| html! {
            @if v.is_null() { p.muted { "No input contract: events must be JSON within the size limit." } }
            @else { pre { (pretty(v)) } }
        }))
        (section("Code signing", &page.signing, |v| html! {
            @if v["CodeSigningConfigArn"].as_str().is_none_or(str::is_empty) { p.muted { "No code signing configuration." } }
            @else { p { (text(v, "CodeSigningConfigArn")) } }
        }))
        (section("Dependency findings", &page.findings, |v| html! {
            @let list = v["findings"].as_array().map(Vec::as_slice).unwrap_or_default();
            @if list.is_empty() { p.ok { "No known vulnerability in the function's packages." } }
            @else { table { thead { tr { th { "Severity" } th { "Title" } th { "Remediation" } } }
                tbody { @for f in list {
                    @let sev = text(f, "severity");
                    tr { td class={ "sev-" (sev) } { (sev) } td { (text(f, "title")) } td { (text(&f["remediation"]["recommendation"], "text")) } }
                } } } }
        }))
        (section("Recent invocations", &page.reports, |v| html! {
            @let events = v["events"].as_array().map(Vec::as_slice).unwrap_or_default();
            @if events.is_empty() { p.muted { "No REPORT line yet." } }
            @else { pre #reports { @for e in events.iter().rev().take(20) { (text(e, "message").trim_end()) "\n" } } }
        }))
        section aria-label="Logs" {
            h2 { "Logs" }
            form method="get" action=(path) {
                label for="filter" { "Filter pattern (CloudWatch Logs syntax)" }
                input #filter type="text" name="filter" value=(page.filter);
                " " button type="submit" { "Filter" }
            }
            @match &page.logs {
                Err(e) => (refused(e)),
                Ok(v) => {
                    @let events = v["events"].as_array().map(Vec::as_slice).unwrap_or_default();
                    @let live = format!("/console/live/logs/{}?filter={}&since={}", encode(name), encode(&page.filter), page.since_ms);
                    pre #logs data-live-logs=(live) aria-live="polite" { @for e in events { (text(e, "message").trim_end()) "\n" } }
                }
            }
        }
        (section("Configuration history", &page.history, |v| {
            let items = v["configurationItems"].as_array().map(Vec::as_slice).unwrap_or_default();
            html! {
                @if items.is_empty() { p.muted { "No recorded change." } }
                @for (i, item) in items.iter().enumerate() {
                    @let older = items.get(i + 1).map(configuration_of).unwrap_or_default();
                    details open[i == 0] {
                        summary { (when(item, "configurationItemCaptureTime")) " · " (text(item, "configurationItemStatus"))
                            @if let Some(ids) = item["relatedEvents"].as_array() {
                                " · " @for id in ids { a href={ "/console/audit?key=EventId&value=" (encode(id.as_str().unwrap_or_default())) } { "audit event" } " " }
                            }
                        }
                        pre { @for (sign, line) in diff(&older, &configuration_of(item)) {
                            span class=(if sign == '+' { "diff-add" } else { "diff-del" }) { (sign) " " (line) } "\n"
                        } }
                    }
                }
            }
        }))
    };
    let live = format!("/console/live/functions/{}", encode(name));
    layout(name, Some(who), Some(&live), body)
}

/// The alarms page: each alarm with its state, and the history of state changes.
pub fn alarms(who: &Who<'_>, alarms: &Fetched, history: &Fetched) -> String {
    let body = html! {
        (section("Alarms", alarms, |v| html! {
            table #alarms { thead { tr { th { "Alarm" } th { "State" } th { "Metric" } th { "Reason" } th { "Actions" } } }
            tbody { @for a in v["MetricAlarms"].as_array().map(Vec::as_slice).unwrap_or_default() {
                @let name = text(a, "AlarmName");
                @let state = text(a, "StateValue");
                @let function = a["Dimensions"].as_array().and_then(|d| d.iter().find(|d| d["Name"] == "FunctionName")).map(|d| text(d, "Value"));
                @let enabled = a["ActionsEnabled"].as_bool().unwrap_or(false);
                tr data-alarm=(name) class=[(state == "ALARM").then_some("failing")] {
                    td { (name) }
                    td.state { (state) }
                    td { (text(a, "MetricName"))
                        @if let Some(f) = &function { " of " a href={ "/console/functions/" (encode(f)) } { (f) } } }
                    td { (text(a, "StateReason")) }
                    td { form.inline method="post" action="/console/alarms/actions" {
                        (csrf_field(who))
                        input type="hidden" name="alarm" value=(name);
                        input type="hidden" name="enable" value=(if enabled { "false" } else { "true" });
                        button type="submit" { @if enabled { "Disable actions" } @else { "Enable actions" } }
                    } }
                }
            } } }
        }))
        (section("History", history, |v| html! {
            table { thead { tr { th { "Time" } th { "Alarm" } th { "Type" } th { "Summary" } } }
            tbody { @for h in v["AlarmHistoryItems"].as_array().map(Vec::as_slice).unwrap_or_default() {
                tr { td { (when(h, "Timestamp")) } td { (text(h, "AlarmName")) } td { (text(h, "HistoryItemType")) } td { (text(h, "HistorySummary")) } }
            } } }
        }))
    };
    layout("Alarms", Some(who), None, body)
}

const SEVERITIES: [&str; 5] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"];

/// The posture findings page, by severity, with a form to suppress each.
pub fn findings(who: &Who<'_>, findings: &Fetched) -> String {
    let body = html! {
        (section("Posture findings", findings, |v| {
            let list = v["Findings"].as_array().map(Vec::as_slice).unwrap_or_default();
            html! {
                @for sev in SEVERITIES {
                    @let of: Vec<&Value> = list.iter().filter(|f| f["Severity"]["Label"] == sev).collect();
                    @if !of.is_empty() {
                        h2 class={ "sev-" (sev) } { (sev) " (" (of.len()) ")" }
                        table { thead { tr { th { "Finding" } th { "Resource" } th { "Workflow" } th { "Remediation" } th { "Suppress" } } }
                        tbody { @for f in of {
                            @let id = text(f, "Id");
                            tr data-finding=(id) {
                                td { (text(f, "Title")) }
                                td { @for r in f["Resources"].as_array().map(Vec::as_slice).unwrap_or_default() { (text(r, "Id")) " " } }
                                td { (text(&f["Workflow"], "Status")) }
                                td { (text(&f["Remediation"]["Recommendation"], "Text")) }
                                td { form method="post" action="/console/findings/suppress" {
                                    (csrf_field(who))
                                    input type="hidden" name="id" value=(id);
                                    input type="hidden" name="product" value=(text(f, "ProductArn"));
                                    label for={ "reason-" (id) } { "Reason" }
                                    input id={ "reason-" (id) } type="text" name="reason" required;
                                    " " button type="submit" { "Suppress" }
                                } }
                            }
                        } } }
                    }
                }
                @if list.is_empty() { p.ok { "No active finding." } }
            }
        }))
    };
    layout("Findings", Some(who), None, body)
}

/// The audit trail page: a lookup form, the events it found, the trail's state and the
/// latest verification (`verification`: the server's `Verification` as JSON, `Null` if
/// none ran since it started).
pub fn audit(
    who: &Who<'_>,
    key: &str,
    value: &str,
    events: &Fetched,
    status: &Fetched,
    verification: &Value,
) -> String {
    let keys = [
        "EventName",
        "Username",
        "ResourceName",
        "EventSource",
        "AccessKeyId",
        "EventId",
    ];
    let body = html! {
        (section("Integrity", status, |v| html! {
            p { "Events recorded: " (text(v, "EventsRecorded")) ". "
                @if v["LatestDigestTreeSize"].is_null() { "No signed digest yet." }
                @else { "Latest signed digest covers " (text(v, "LatestDigestTreeSize")) " events, delivered at " (when(v, "LatestDigestDeliveryTime")) "." } }
        }))
        section #verification aria-label="Verification" {
            @if verification.is_null() {
                p.muted { "No verification has run since the server started." }
            } @else {
                @let r = &verification["report"];
                @let findings = r["findings"].as_array().map(Vec::as_slice).unwrap_or_default();
                @let at = json_seconds(&verification["atMs"]);
                p {
                    "Last verification at " (when(&at, "t")) ": " (text(r, "eventsChecked")) " events checked from position "
                    (text(r, "startedAt")) ", " (text(r, "attested")) " attested by a signed digest, " (text(r, "size")) " stored. "
                    @if findings.is_empty() { strong.ok { "OK: nothing removed, altered, inserted, reordered or truncated." } }
                    @else { strong.bad { (findings.len()) " problems found:" } }
                }
                @if !findings.is_empty() { ul { @for f in findings.iter().take(50) { li { (f.to_string()) } } } }
            }
            form method="post" action="/console/audit/verify" {
                (csrf_field(who))
                button type="submit" { "Verify the trail now" }
            }
            p.muted { "This checks the trail against the digests in the data directory; for evidence the data directory cannot rewrite, run " code { "warden audit verify --digests DIR" } " on an export." }
        }
        form method="get" action="/console/audit" {
            label for="key" { "Attribute" }
            select #key name="key" { @for k in keys { option value=(k) selected[k == key] { (k) } } }
            label for="value" { "Value" }
            input #value type="text" name="value" value=(value);
            " " button type="submit" { "Look up" }
        }
        (section("Events", events, |v| html! {
            table #events { thead { tr { th { "Time" } th { "Event" } th { "User" } th { "Resources" } th { "Error" } } }
            tbody { @for e in v["Events"].as_array().map(Vec::as_slice).unwrap_or_default() {
                @let detail: Value = e["CloudTrailEvent"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
                tr { td { (when(e, "EventTime")) } td { (text(e, "EventName")) } td { (text(e, "Username")) }
                    td { @for r in e["Resources"].as_array().map(Vec::as_slice).unwrap_or_default() { (text(r, "ResourceName")) " " } }
                    td.bad { (text(&detail, "errorCode")) } }
            } } }
        }))
    };
    layout("Audit trail", Some(who), None, body)
}

/// One IAM role and the functions whose execution role it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleRow {
    /// The role's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The functions that run as it.
    pub functions: Vec<String>,
}

/// The IAM page: users, and roles with the functions that use them.
pub fn iam(
    who: &Who<'_>,
    users: Result<&[String], &CallError>,
    roles: Result<&[RoleRow], &CallError>,
) -> String {
    let body = html! {
        h2 { "Users" }
        @match users {
            Err(e) => (refused(e)),
            Ok(users) => ul { @for u in users { li { (u) } } },
        }
        h2 { "Roles" }
        @match roles {
            Err(e) => (refused(e)),
            Ok(roles) => table { thead { tr { th { "Role" } th { "ARN" } th { "Used by" } } }
                tbody { @for r in roles {
                    tr { td { (r.name) } td { (r.arn) } td {
                        @if r.functions.is_empty() { span.muted { "no function" } }
                        @for f in &r.functions { a href={ "/console/functions/" (encode(f)) } { (f) } " " }
                    } }
                } } },
        }
    };
    layout("IAM", Some(who), None, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WHO: Who<'static> = Who {
        arn: "arn:aws:iam::000000000000:user/alice",
        csrf: "tok",
    };

    #[test]
    fn every_value_is_escaped() {
        let row = FunctionRow {
            config: json!({"FunctionName": "<script>alert(1)</script>", "Runtime": "\"><img src=x>"}),
            summary: Summary::default(),
        };
        let page = functions(&WHO, Ok(&[row]), None, 0, 60);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x>"));
        assert!(page.contains("&lt;script&gt;"));
    }

    #[test]
    fn every_form_carries_the_csrf_token_and_no_inline_script_or_style() {
        let page = FunctionPage {
            name: "f".into(),
            function: Ok(json!({"Configuration": {"FunctionName": "f"}})),
            network: Ok(Value::Null),
            versions: Ok(json!({"Versions": [{"Version": "1"}]})),
            aliases: Ok(json!({"Aliases": [{"Name": "live", "FunctionVersion": "1"}]})),
            policy: Ok(Value::Null),
            contract: Ok(Value::Null),
            signing: Ok(json!({})),
            findings: Ok(json!({"findings": []})),
            reports: Ok(json!({"events": []})),
            logs: Err(CallError {
                status: 403,
                code: "AccessDeniedException".into(),
                message: "no".into(),
            }),
            filter: String::new(),
            since_ms: 0,
            history: Ok(json!({"configurationItems": []})),
            charts: charts(Ok(&[vec![], vec![], vec![]]), 0, 60),
            outcome: None,
        };
        let html = function(&WHO, &page);
        let forms = html.matches("method=\"post\"").count();
        assert!(forms >= 3, "{html}");
        assert_eq!(
            html.matches("name=\"csrf\" value=\"tok\"").count(),
            forms,
            "{html}"
        );
        assert!(
            !html.contains("<script>"),
            "only the external script: {html}"
        );
        assert!(!html.contains("style="));
        assert!(html.contains("AccessDeniedException: no"));
    }

    #[test]
    fn a_diff_shows_what_changed() {
        let d = diff(
            "{\n  \"a\": 1,\n  \"b\": 2\n}",
            "{\n  \"a\": 1,\n  \"b\": 3\n}",
        );
        assert_eq!(
            d,
            vec![('-', "  \"b\": 2".into()), ('+', "  \"b\": 3".into())]
        );
    }

    #[test]
    fn names_are_percent_encoded_in_links() {
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(encode("my-fn_1.x~"), "my-fn_1.x~");
    }
}
