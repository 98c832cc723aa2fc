//! `cargo xtask bench --console N [--seconds S]`: the web console's cost.
//!
//! N functions are deployed; the bench signs in as the bootstrap admin (the console's
//! sign-in form), then loads the functions page (every function, with its last hour of
//! metrics) ten times one after another, timing each from request to last byte, and five
//! times in Chromium, to the load event. Then it
//! measures the server's CPU (user + system, from `/proc/PID/stat`) over S seconds idle,
//! and over S seconds with 20 function pages' live charts and the functions page's live
//! rows open, read as a browser reads them.

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{deploy_many, percentile, start, Server};

/// `/proc` reports CPU time in units of `USER_HZ`, which Linux fixes at 100 for it.
const USER_HZ: f64 = 100.0;

fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command name (which may hold spaces, so it is found from the last `)`),
    // fields 14 and 15 of the line are utime and stime.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse()
            .context("a CPU field of /proc/PID/stat")
    };
    // `rest` starts at field 3 (state), so field 14 is at index 11.
    Ok(field(11)? + field(12)?)
}

/// The server's CPU over `seconds`, as a percentage of one core.
fn cpu_percent(pid: u32, seconds: u32) -> Result<f64> {
    let before = cpu_ticks(pid)?;
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(u64::from(seconds)));
    let ticks = cpu_ticks(pid)? - before;
    Ok(ticks as f64 / USER_HZ / t.elapsed().as_secs_f64() * 100.0)
}

fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// `text` as a form value: every byte but ASCII letters and digits percent-encoded.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Signs in through the console's form; the session cookie (`name=value`).
fn sign_in(server: &Server) -> Result<String> {
    let form = format!(
        "access_key_id={}&secret_access_key={}",
        server.creds.access_key_id,
        form_encode(&server.creds.secret_access_key)
    );
    let r = no_redirects()
        .post(&format!("{}/console/sign-in", server.endpoint))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(form.as_bytes())?;
    if r.status() != 303 {
        bail!("console sign-in answered {}", r.status());
    }
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .context("no session cookie")?;
    Ok(cookie.split(';').next().unwrap_or_default().to_owned())
}

/// Waits (at most 90 s) until `ListMetrics` shows `Invocations` of at least `want`
/// functions (its one page stops at 500 metrics): the minute of their invocations was
/// closed and stored.
fn wait_for_datapoints(server: &Server, want: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let body = br#"{"Namespace": "AWS/Lambda", "MetricName": "Invocations"}"#;
        let request = server.signed_for(
            "monitoring",
            "POST",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", "GraniteServiceVersion20100801.ListMetrics"),
            ],
            body,
        )?;
        let mut r = super::agent().run(request)?;
        let v: serde_json::Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
        let listed = v["Metrics"]
            .as_array()
            .map(|metrics| {
                metrics
                    .iter()
                    .filter_map(|m| {
                        m["Dimensions"]
                            .as_array()?
                            .iter()
                            .find(|d| d["Name"] == "FunctionName")?["Value"]
                            .as_str()
                    })
                    .collect::<std::collections::HashSet<_>>()
                    .len()
            })
            .unwrap_or(0);
        if listed >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {listed} of {want} functions had datapoints after 90 s");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The functions page loaded ten times over HTTP, one after another, from request to
/// last byte: "p50 …, slowest …" and the page's size.
fn page_loads(server: &Server, cookie: &str, functions: usize) -> Result<(String, usize)> {
    let agent = no_redirects();
    let mut loads = Vec::new();
    let mut bytes = 0;
    for _ in 0..10 {
        let t = Instant::now();
        let mut r = agent
            .get(&format!("{}/console/functions", server.endpoint))
            .header("cookie", cookie)
            .call()?;
        let page = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()?;
        loads.push(t.elapsed().as_secs_f64() * 1000.0);
        if r.status() != 200 {
            bail!("the functions page answered {}", r.status());
        }
        let rows = page.matches("data-function=").count();
        if rows != functions {
            bail!("the functions page listed {rows} of {functions}");
        }
        bytes = page.len();
    }
    let p50 = percentile(&mut loads.clone(), 0.5);
    let slowest = loads.iter().copied().fold(0.0, f64::max);
    Ok((format!("p50 {p50:.0} ms, slowest {slowest:.0} ms"), bytes))
}

/// The functions page loaded five times in Debian's Chromium (headless, through
/// chromedriver and the test tools' Selenium), from navigation start to the load event:
/// the page as a user waits for it, rendering included. Skipped, saying so, when the test
/// tools are not installed.
fn browser_loads(root: &Path, server: &Server, cookie: &str) -> Result<String> {
    let python = crate::python_tools_dir(root).join("venv/bin/python");
    let (name, value) = cookie.split_once('=').context("a cookie is name=value")?;
    let script = format!(
        r#"
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
    opts.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    d.get("{base}/console/sign-in")
    d.add_cookie({{"name": "{name}", "value": "{value}", "path": "/console"}})
    times = []
    for _ in range(5):
        d.get("{base}/console/functions")
        assert d.title.startswith("Functions"), d.title
        times.append(d.execute_script(
            "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;"))
    times.sort()
    print("p50 %.0f ms, slowest %.0f ms" % (times[2], times[-1]))
finally:
    d.quit()
"#,
        base = server.endpoint,
    );
    if !python.exists() || !Path::new("/usr/bin/chromedriver").exists() {
        return Ok("not measured (run `cargo xtask ci` once to install the test tools)".into());
    }
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .output()?;
    if !out.status.success() {
        bail!(
            "the browser measurement failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub(super) fn console(root: &Path, functions: usize, seconds: u32) -> Result<()> {
    let server = start(root, &[])?;
    let create_s = deploy_many(&server, functions)?;
    // Two cases: 20 functions with datapoints (most functions idle, as is common), then
    // every function with datapoints (the page must query each). Each function invoked
    // fails at init, which counts an invocation and an error; its datapoints exist once
    // the server closes the minute.
    let cookie = sign_in(&server)?;
    let mut cases = Vec::new();
    for active in [20.min(functions), functions] {
        for i in 0..active {
            server.send(
                "POST",
                &format!("/2015-03-31/functions/f{i:05}/invocations"),
                &[],
                b"{}",
            )?;
        }
        wait_for_datapoints(&server, active.min(400))?;
        let (http, bytes) = page_loads(&server, &cookie, functions)?;
        let browser = browser_loads(root, &server, &cookie)?;
        cases.push((active, http, bytes, browser));
    }
    let pid = server.child.id();
    let idle = cpu_percent(pid, seconds)?;
    // 20 function pages and the functions page, each reading its stream as a browser
    // would, until the measurement ends.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    let paths: Vec<String> = (0..20.min(functions))
        .map(|i| format!("/console/live/functions/f{i:05}"))
        .chain(["/console/live/functions".to_owned()])
        .collect();
    for path in paths {
        let url = format!("{}{path}", server.endpoint);
        let cookie = cookie.clone();
        let stop = std::sync::Arc::clone(&stop);
        readers.push(std::thread::spawn(move || -> Result<u64> {
            let r = no_redirects().get(&url).header("cookie", &cookie).call()?;
            if r.status() != 200 {
                bail!("{url} answered {}", r.status());
            }
            let mut body = r.into_body().into_reader();
            let mut buf = [0u8; 4096];
            let mut got = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match body.read(&mut buf)? {
                    0 => break,
                    n => got += n as u64,
                }
            }
            Ok(got)
        }));
    }
    // Let every stream send its first event before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let live = cpu_percent(pid, seconds)?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(server);
    let mut received = 0;
    for r in readers {
        received += r
            .join()
            .map_err(|_| anyhow::anyhow!("a stream reader panicked"))?
            .unwrap_or(0);
    }
    println!("## warden bench --console {functions} --seconds {seconds}");
    println!("{functions} creates: {create_s:.1} s");
    for (active, http, bytes, browser) in &cases {
        println!(
            "functions page, {functions} rows ({} KiB), {active} with datapoints: over HTTP {http}; in Chromium (to the load event, 5 loads) {browser}",
            bytes / 1024
        );
    }
    println!(
        "server CPU, % of one core: idle {idle:.2}, with 20 live function pages and the live functions page {live:.2} (difference {:.2}); {received} bytes of events read",
        live - idle
    );
    Ok(())
}
