//! `cargo xtask bench`: end-to-end numbers for BENCHMARKS.md, measured against a release
//! `warden serve` over loopback with `wrk`, and cold starts read from Lambda's own
//! `REPORT ... Init Duration` lines.
//!
//! Usage: `cargo xtask bench [--insecure-no-sandbox] [--seconds N] [--cold N]`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;

struct Server {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn start(root: &Path, extra: &[String]) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(root.join("target/release/warden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "warn", "--data-dir"])
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting warden serve")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let endpoint = line.trim().strip_prefix("warden listening on ").context("unexpected first line")?.to_owned();
    Ok(Server { child, endpoint, _dir: dir })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn create_function(server: &Server, root: &Path, name: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(root.join("target/release/fixture"), dir.path().join("bootstrap"))?;
    let zip = warden_package::zip_directory(dir.path(), &mut |_, _| {})?;
    let body = serde_json::json!({
        "FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
        "Role": "arn:aws:iam::123456789012:role/bench", "Timeout": 30,
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    });
    let mut r = agent().post(&format!("{}/2015-03-31/functions", server.endpoint)).send(body.to_string().as_bytes())?;
    if r.status() != 201 {
        bail!("create failed: {}", r.body_mut().read_to_string()?);
    }
    Ok(())
}

fn wrk(server: &Server, function: &str, threads: u32, connections: u32, seconds: u32) -> Result<String> {
    let script = tempfile::NamedTempFile::new()?;
    std::fs::write(script.path(), "wrk.method = \"POST\"\nwrk.body = \"{}\"\n")?;
    let url = format!("{}/2015-03-31/functions/{function}/invocations", server.endpoint);
    let out = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(script.path())
        .arg(&url)
        .output()
        .context("running wrk (install it: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !text.contains("Requests/sec") {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    if text.contains("Non-2xx") {
        bail!("some invocations failed:\n{text}");
    }
    Ok(text)
}

fn pick(text: &str, prefix: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.split_whitespace().next().unwrap_or("").to_owned()))
        .unwrap_or_else(|| "?".into())
}

/// Cold starts: each configuration change retires the warm instance, so the next invoke
/// starts a new one; its REPORT line carries `Init Duration` (spawn to first `/next`).
fn cold_starts(server: &Server, function: &str, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let a = agent();
    let mut init = Vec::new();
    let mut end_to_end = Vec::new();
    for i in 0..n {
        let body = serde_json::json!({ "Description": format!("cold {i}") });
        a.put(&format!("{}/2015-03-31/functions/{function}/configuration", server.endpoint)).send(body.to_string().as_bytes())?;
        let started = Instant::now();
        let r = a
            .post(&format!("{}/2015-03-31/functions/{function}/invocations", server.endpoint))
            .header("X-Amz-Log-Type", "Tail")
            .send(&b"{}"[..])?;
        end_to_end.push(started.elapsed().as_secs_f64() * 1000.0);
        let log = r.headers().get("x-amz-log-result").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let log = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(log)?)?;
        let ms = log
            .split("Init Duration: ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse::<f64>().ok())
            .context("no Init Duration in a cold start's REPORT line")?;
        init.push(ms);
    }
    Ok((init, end_to_end))
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let idx = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[idx]
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut seconds = 10u32;
    let mut cold = 100usize;
    let mut extra = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().context("--seconds N")?.parse()?,
            "--cold" => cold = it.next().context("--cold N")?.parse()?,
            "--insecure-no-sandbox" => extra.push(a.clone()),
            other => bail!("unknown bench argument `{other}`"),
        }
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--release", "-p", "warden", "-p", "warden-fixtures"])
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let server = start(root, &extra)?;
    create_function(&server, root, "noop")?;
    // Warm up one instance, then measure.
    agent().post(&format!("{}/2015-03-31/functions/noop/invocations", server.endpoint)).send(&b"{}"[..])?;
    std::thread::sleep(Duration::from_millis(200));
    let one = wrk(&server, "noop", 1, 1, seconds)?;
    let many = wrk(&server, "noop", 2, 8, seconds)?;
    let (mut init, mut e2e) = cold_starts(&server, "noop", cold)?;
    let mode = if extra.is_empty() { "sandboxed" } else { "no sandbox" };
    println!("## warden bench ({mode}; {seconds} s per wrk run; {cold} cold starts)");
    println!("warm invoke, 1 connection:   p50 {}  p99 {}  {} invokes/s", pick(&one, "50%"), pick(&one, "99%"), pick(&one, "Requests/sec:"));
    println!("warm invoke, 8 connections:  p50 {}  p99 {}  {} invokes/s", pick(&many, "50%"), pick(&many, "99%"), pick(&many, "Requests/sec:"));
    println!(
        "cold start (spawn to first /next): p50 {:.2} ms  p99 {:.2} ms",
        percentile(&mut init, 0.5),
        percentile(&mut init, 0.99)
    );
    println!(
        "cold invoke end to end (client): p50 {:.2} ms  p99 {:.2} ms",
        percentile(&mut e2e, 0.5),
        percentile(&mut e2e, 0.99)
    );
    Ok(())
}
