//! Metrics: invocations, errors, durations and security refusals counted as they happen,
//! served on the metrics listener in the Prometheus text format, scraped by a real
//! Prometheus server (started here) and queried through its own API; and the listener's
//! refusals.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

const APP: &str = r#"
def handler(event, context):
    if event.get("fail"):
        raise Exception("asked to fail")
    return {"ok": True}
"#;

/// curl: (status, body).
pub(crate) fn get(url: &str, method: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            "--max-time",
            "30",
            url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

pub(crate) fn line_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A Prometheus server scraping `target` every second, ended when dropped.
struct Prometheus {
    child: Child,
    api: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: warden\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "the tests need `prometheus` (Debian package prometheus): run `cargo xtask ci`",
            );
        Self {
            child,
            api: format!("http://127.0.0.1:{port}/api/v1"),
            _dir: dir,
        }
    }

    /// Evaluates `query` until `accept` takes its first sample's value, or panics after a
    /// minute with the last answer.
    fn wait_for(&self, query: &str, accept: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while Instant::now() < deadline {
            let out = Command::new("curl")
                .args(["-s", "--max-time", "5", "-G"])
                .arg(format!("{}/query", self.api))
                .args(["--data-urlencode", &format!("query={query}")])
                .output()
                .unwrap();
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            let value = serde_json::from_str::<Value>(&last).ok().and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
            });
            if let Some(v) = value.filter(|v| accept(*v)) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("Prometheus never answered `{query}` as expected; last answer: {last}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn invocations_and_refusals_are_counted_and_scraped_by_prometheus() {
    let s = Server::start();
    let zip = format!("fileb://{}", python_zip(&[("app.py", APP)]).display());
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "m",
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &zip,
    ]);
    let out = tempfile::NamedTempFile::new().unwrap();
    for payload in ["{}", "{}", "{}", r#"{"fail": 1}"#, r#"{"fail": 1}"#] {
        s.aws(&[
            "lambda",
            "invoke",
            "--function-name",
            "m",
            "--payload",
            payload,
            out.path().to_str().unwrap(),
        ]);
    }
    // Refusals: no signature, no permission, an event the contract refuses.
    let (status, _, _) = s.http_unsigned("GET", "/2015-03-31/functions/m", &[], b"");
    assert_eq!(status, 403);
    let reader = user_with_policy(
        &s,
        "reader",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"}]}),
    );
    let (status, _, _) = send(
        &s.endpoint,
        Some(&reader),
        "POST",
        "/2015-03-31/functions/m/invocations",
        &[],
        b"{}",
    );
    assert_eq!(status, 403);
    let (status, _, _) = s.http(
        "PUT",
        "/_warden/2026-11-01/functions/m/input-contract",
        &[("content-type", "application/json")],
        br#"{"EventSchema": {"type": "object", "required": ["order"]}}"#,
    );
    assert_eq!(status, 200);
    let (status, _, _) = s.http("POST", "/2015-03-31/functions/m/invocations", &[], b"{}");
    assert_eq!(status, 400);

    let (status, text) = get(&s.metrics_endpoint, "GET");
    assert_eq!(status, 200, "{text}");
    let value = |series: &str| {
        line_value(&text, series).unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
    };
    assert_eq!(value("warden_invocations_total{function=\"m\"}"), 5.0);
    assert_eq!(value("warden_errors_total{function=\"m\"}"), 2.0);
    assert_eq!(value("warden_duration_seconds_count{function=\"m\"}"), 5.0);
    assert_eq!(
        value("warden_input_validation_rejects_total{function=\"m\"}"),
        1.0
    );
    assert_eq!(value("warden_concurrent_executions{function=\"m\"}"), 0.0);
    assert!(value("warden_authentication_failures_total") >= 1.0);
    assert!(value("warden_access_denied_total") >= 1.0);
    assert!(value("warden_idle_instances") >= 1.0);
    // Nothing runs and nothing waits once the invocations are over.
    assert_eq!(value("warden_running_invocations"), 0.0);
    // A node whose limits are its own leases nothing.
    assert_eq!(value("warden_concurrency_leased_slots"), 0.0);
    assert_eq!(value("warden_async_queue_events"), 0.0);
    // The log writer's backlog is reported (its value depends on the writer's timing).
    value("warden_log_queue_bytes");
    // At least one instance was started, and its start took some time.
    assert!(value("warden_zygote_spawns_total") >= 1.0);
    assert!(value("warden_zygote_spawn_seconds_total") > 0.0);
    assert!(
        text.contains("# TYPE warden_zygote_spawns_total counter"),
        "{text}"
    );
    assert!(value("warden_zygote_spawn_max_seconds") > 0.0);
    // The longest start is per scrape period: the next scrape, with no start between, says 0.
    let (_, again) = get(&s.metrics_endpoint, "GET");
    assert_eq!(
        line_value(&again, "warden_zygote_spawn_max_seconds"),
        Some(0.0)
    );

    let prometheus = Prometheus::start(
        s.metrics_endpoint
            .trim_start_matches("http://")
            .trim_end_matches("/metrics"),
    );
    prometheus.wait_for("warden_invocations_total{function=\"m\"}", |v| v == 5.0);
    prometheus.wait_for("sum(warden_errors_total)", |v| v == 2.0);
    let p50 = prometheus.wait_for(
        "histogram_quantile(0.5, warden_duration_seconds_bucket{function=\"m\"})",
        |v| v > 0.0,
    );
    assert!(p50 < 10.0, "a median of {p50} s");
    // A later invocation reaches Prometheus on a later scrape.
    s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "m",
        "--payload",
        r#"{"order": 1}"#,
        out.path().to_str().unwrap(),
    ]);
    prometheus.wait_for("warden_invocations_total{function=\"m\"}", |v| v == 6.0);
}

#[test]
fn the_metrics_listener_serves_only_get_metrics_and_only_on_loopback() {
    let s = Server::start();
    let base = s.metrics_endpoint.trim_end_matches("/metrics").to_owned();
    assert_eq!(get(&format!("{base}/"), "GET").0, 404);
    assert_eq!(get(&format!("{base}/metrics/x"), "GET").0, 404);
    assert_eq!(get(&s.metrics_endpoint, "POST").0, 405);
    assert_eq!(get(&s.metrics_endpoint, "DELETE").0, 405);
    // Not on the API's listener, nor the URLs'.
    assert_ne!(get(&format!("{}/metrics", s.endpoint), "GET").0, 200);

    let data = private_tempdir();
    let out = Command::new(warden_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--url-listen",
            "127.0.0.1:0",
        ])
        .args(["--metrics-listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .env("WARDEN_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on non-loopback address `0.0.0.0:0`"),
        "{stderr}"
    );
    let out = Command::new(warden_bin())
        .args(["serve", "--metrics-listen", "somewhere", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither an address (IP:PORT) nor `off`"));
}

#[test]
fn an_initializing_instance_counts_in_the_concurrency_gauge() {
    // Lambda counts an environment in ConcurrentExecutions from its init on; a function
    // whose init takes two seconds must show as running during them.
    let s = Server::start();
    create_python_function(
        &s,
        "slowinit",
        &[(
            "app.py",
            "import time\ntime.sleep(2)\ndef handler(event, context):\n    return 1\n",
        )],
        &["--timeout", "10"],
    );
    let endpoint = s.endpoint.clone();
    let admin = s.admin();
    let invoking = std::thread::spawn(move || {
        send(
            &endpoint,
            Some(&admin),
            "POST",
            "/2015-03-31/functions/slowinit/invocations",
            &[],
            b"{}",
        )
        .0
    });
    let series = "warden_concurrent_executions{function=\"slowinit\"}";
    // Scraped for as long as the invocation is in flight, whatever the host's speed.
    let mut during = false;
    while !invoking.is_finished() {
        let (_, text) = get(&s.metrics_endpoint, "GET");
        if line_value(&text, series) == Some(1.0) {
            during = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(during, "the gauge never read 1 during the two-second init");
    assert_eq!(invoking.join().unwrap(), 200);
    let (_, text) = get(&s.metrics_endpoint, "GET");
    assert_eq!(line_value(&text, series), Some(0.0), "{text}");
}
