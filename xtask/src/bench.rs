//! `cargo xtask bench`: end-to-end numbers for BENCHMARKS.md, measured against a release
//! `warden serve` over loopback with `wrk`, and cold starts read from Lambda's own
//! `REPORT ... Init Duration` lines.
//!
//! Usage: `cargo xtask bench [--insecure-no-sandbox] [--seconds N] [--cold N]`, or
//! `cargo xtask bench [--insecure-no-sandbox] --callgrind N` for the server's instruction
//! count per warm invoke (repeatable where times are noisy), or
//! `cargo xtask bench --runtimes [--cold N] [--seconds N]` for the managed runtimes: Python
//! and Node.js cold starts on Warden's bootstraps beside the reference clients
//! (`awslambdaric`, `aws-lambda-ric`, brought by the function through
//! `AWS_LAMBDA_EXEC_WRAPPER`), and a warm
//! Python echo beside the Rust one, or `cargo xtask bench --kms [--seconds N] [--cold N]`
//! for KMS `Encrypt` and `Decrypt` of 1 KB through the API and cold starts of a function
//! with and without a sealed environment, or `cargo xtask bench --network [--cold N]
//! [--seconds N]` for egress: cold starts and warm invokes of the same function on a
//! server without network links (`--default-egress deny`) and one giving every instance a
//! link (`--default-egress internet`), and the throughput of a Python function reading from
//! a TCP service in a test namespace beside the same code run unsandboxed (root only), or
//! `cargo xtask bench --urls [--seconds N]` for function URLs beside `Invoke` and the cost of
//! an input contract on a warm invoke, or `cargo xtask bench --signing [--cold N]` for the
//! deploy-time cost of code signing: `UpdateFunctionCode` of the same 10 MiB package,
//! unsigned to a function without a code signing config and signed to one with an
//! `Enforce` config, N times each, or `cargo xtask bench --cpu [--seconds N]` for the warm
//! echo at one connection at 128 MB (held by its CPU quota), at 1,769 MB and under
//! `--cpu-scaling off`, or `cargo xtask bench --scale N` for N functions deployed:
//! ListFunctions and GetFunction latency, the server's memory and its restart time, or
//! `cargo xtask bench --burst N` for N concurrent cold starts, or
//! `cargo xtask bench --idle N [--limit L]` for N concurrent invocations of a function
//! that sleeps 1 s, the memory per warm idle instance (server and sandbox) and the same N
//! against a reserved concurrency of L (default 100), or
//! `cargo xtask bench --compare [--seconds N] [--rounds R]` for the warm echo on Warden
//! beside the closest peer (`cargo lambda watch --release`, installed into a venv of the
//! test tools on first use) at 1 and 8 connections, in R alternating rounds (default 3),
//! with the ratios Warden/peer, or `cargo xtask bench --console N [--seconds S]` for the
//! web console: its functions page with N functions deployed, and the server's CPU while
//! 20 function pages and the functions page take live updates, or
//! `cargo xtask bench --cluster [--seconds N]` for one node on SQLite beside one on
//! PostgreSQL (warm invokes and the database transactions they cause, control-plane
//! writes, async enqueues) and three PostgreSQL nodes beside one. `--cold-gap-ms N` waits
//! N ms before each cold start (default 0: back to back). `cargo xtask bench --upgrade
//! REVISION` rehearses a rolling upgrade from the build of REVISION to this one (see
//! `upgrade`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;

mod cluster;
mod compare;
mod console;
mod idle;
mod upgrade;

struct Server {
    child: Child,
    endpoint: String,
    /// Where the server serves function URLs.
    url_endpoint: String,
    /// `http://127.0.0.1:PORT/metrics`.
    metrics_endpoint: String,
    creds: warden_auth::SigningCredentials,
    _dir: tempfile::TempDir,
}

/// The account the bench server serves, so the default role's ARN is known.
const ACCOUNT: &str = "123456789012";

impl Server {
    /// A request signed as the bootstrap admin; SigV4 signatures stay valid for 5 minutes,
    /// which also lets `wrk` replay one signed request.
    fn signed(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<http::Request<Vec<u8>>> {
        self.signed_for("lambda", method, path, headers, body)
    }

    fn signed_for(
        &self,
        service: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<http::Request<Vec<u8>>> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(body.to_vec())?;
        warden_auth::sign_request(
            &mut req,
            body,
            &self.creds,
            "us-east-1",
            service,
            std::time::SystemTime::now(),
        )?;
        Ok(req)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<http::Response<ureq::Body>> {
        Ok(agent().run(self.signed(method, path, headers, body)?)?)
    }
}

fn read_credentials(dir: &Path) -> Result<warden_auth::SigningCredentials> {
    let text = std::fs::read_to_string(dir.join("credentials"))
        .context("the server writes DATA_DIR/credentials")?;
    let field = |name: &str| -> Result<String> {
        text.lines()
            .find_map(|l| {
                l.split_once('=')
                    .filter(|(k, _)| k.trim() == name)
                    .map(|(_, v)| v.trim().to_owned())
            })
            .with_context(|| format!("{name} missing from the credentials file"))
    };
    Ok(warden_auth::SigningCredentials {
        access_key_id: field("aws_access_key_id")?,
        secret_access_key: field("aws_secret_access_key")?,
        session_token: None,
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start(root: &Path, extra: &[String]) -> Result<Server> {
    start_under(root, &[], extra)
}

/// Starts the release server, under `wrapper` (such as valgrind) when one is given.
fn start_under(root: &Path, wrapper: &[String], extra: &[String]) -> Result<Server> {
    start_in(root, wrapper, extra, private_dir()?)
}

/// A new directory only its owner may use: a data directory must be, or the server
/// refuses it.
fn private_dir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()?)
}

/// Starts the release server on the data directory `dir` (a new one, or one a stopped
/// server left).
fn start_in(
    root: &Path,
    wrapper: &[String],
    extra: &[String],
    dir: tempfile::TempDir,
) -> Result<Server> {
    start_with_env(root, wrapper, extra, dir, &[])
}

/// [`start_in`] with `env` added to the server's environment (where a store's URL with
/// its password must go).
fn start_with_env(
    root: &Path,
    wrapper: &[String],
    extra: &[String],
    dir: tempfile::TempDir,
    env: &[(&str, &str)],
) -> Result<Server> {
    let warden = WARDEN_BINARY
        .get()
        .cloned()
        .unwrap_or_else(|| root.join("target/release/warden"));
    start_program(&warden, wrapper, extra, dir, env)
}

/// [`start_with_env`] of the `warden` binary at `warden` (another build's, say).
fn start_program(
    warden: &Path,
    wrapper: &[String],
    extra: &[String],
    dir: tempfile::TempDir,
    env: &[(&str, &str)],
) -> Result<Server> {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(warden);
            c
        }
        None => Command::new(warden),
    };
    let mut child = command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--url-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--account-id",
            ACCOUNT,
            "--data-dir",
        ])
        .arg(dir.path())
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting warden serve")?;
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().context("no stdout")?);
    reader.read_line(&mut line)?;
    let endpoint = line
        .trim()
        .strip_prefix("warden listening on ")
        .context("unexpected first line")?
        .to_owned();
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let url_endpoint = line
        .trim()
        .strip_prefix("warden function URLs on ")
        .context("unexpected second line")?
        .to_owned();
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let metrics_endpoint = line
        .trim()
        .strip_prefix("warden metrics on ")
        .context("unexpected third line")?
        .to_owned();
    let creds = read_credentials(dir.path())?;
    Ok(Server {
        child,
        endpoint,
        url_endpoint,
        metrics_endpoint,
        creds,
        _dir: dir,
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Creates `name` from the files of `dir` (zipped), at 1,769 MB (one full vCPU).
fn create_from_dir(
    server: &Server,
    name: &str,
    dir: &Path,
    runtime: &str,
    handler: &str,
    env: serde_json::Value,
) -> Result<()> {
    let zip = warden_package::zip_directory(dir, &mut |_, _| {})?;
    let body = serde_json::json!({
        "FunctionName": name, "Runtime": runtime, "Handler": handler,
        "Role": format!("arn:aws:iam::{ACCOUNT}:role/warden-default"), "Timeout": 30,
        "MemorySize": 1769, "Environment": { "Variables": env },
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    });
    create(server, &body)
}

/// CreateFunction with `body`; an error unless it answers 201.
fn create(server: &Server, body: &serde_json::Value) -> Result<()> {
    let mut r = server.send(
        "POST",
        "/2015-03-31/functions",
        &[],
        body.to_string().as_bytes(),
    )?;
    if r.status() != 201 {
        bail!(
            "create {} failed: {}",
            body["FunctionName"],
            r.body_mut().read_to_string()?
        );
    }
    Ok(())
}

/// Deploys `functions` functions `f00000`, `f00001`, ... (a 20-byte `provided.al2023`
/// `bootstrap` each), four creates at a time; the seconds it took.
fn deploy_many(server: &Server, functions: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("bootstrap"), "#!/bin/sh\nexit 1\n")?;
    let zip = warden_package::zip_directory(dir.path(), &mut |_, _| {})?;
    let code = base64::engine::general_purpose::STANDARD.encode(zip);
    let created = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (server, code) = (&server, &code);
                scope.spawn(move || -> Result<()> {
                    for i in (w..functions).step_by(4) {
                        let body = serde_json::json!({
                            "FunctionName": format!("f{i:05}"), "Runtime": "provided.al2023",
                            "Handler": "bootstrap",
                            "Role": format!("arn:aws:iam::{ACCOUNT}:role/warden-default"),
                            "Code": { "ZipFile": code },
                        });
                        create(server, &body)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a create worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(created.elapsed().as_secs_f64())
}

/// `cargo xtask bench --scale N`: N functions deployed (a small `provided.al2023`
/// package each, created four at a time), then ListFunctions page by page and GetFunction
/// of 500 of them, timed one request at a time; the server's resident memory; and a
/// restart on the same data directory, timed from the start to the server's first line.
fn scale(root: &Path, functions: usize) -> Result<()> {
    let server = start(root, &[])?;
    let create_s = deploy_many(&server, functions)?;
    let timed = |path: &str| -> Result<(f64, serde_json::Value)> {
        let t = Instant::now();
        let mut r = server.send("GET", path, &[], b"")?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if r.status() != 200 {
            bail!("GET {path}: {}", r.status());
        }
        Ok((ms, serde_json::from_str(&r.body_mut().read_to_string()?)?))
    };
    let mut pages = Vec::new();
    let mut listed = 0;
    let mut marker: Option<String> = None;
    loop {
        let path = match &marker {
            Some(m) => format!("/2015-03-31/functions?Marker={m}"),
            None => "/2015-03-31/functions".to_owned(),
        };
        let (ms, page) = timed(&path)?;
        pages.push(ms);
        listed += page["Functions"].as_array().map_or(0, Vec::len);
        match page["NextMarker"].as_str() {
            Some(m) => marker = Some(m.to_owned()),
            None => break,
        }
    }
    if listed != functions {
        bail!("ListFunctions listed {listed} of {functions}");
    }
    let mut gets = Vec::new();
    for k in 0..500 {
        let i = (k * 7919) % functions;
        gets.push(timed(&format!("/2015-03-31/functions/f{i:05}"))?.0);
    }
    let rss_mib = rss_kib(server.child.id())? / 1024.0;
    // A restart on the same data directory.
    let mut server = server;
    let dir = std::mem::replace(&mut server._dir, tempfile::tempdir()?);
    drop(server);
    let restarted = Instant::now();
    let again = start_in(root, &[], &[], dir)?;
    let startup_s = restarted.elapsed().as_secs_f64();
    let rss_after_mib = rss_kib(again.child.id())? / 1024.0;
    println!("## warden bench --scale {functions}");
    println!("created {functions} functions in {create_s:.1} s (4 at a time)");
    println!(
        "ListFunctions: {} pages, p50 {:.2} ms  p99 {:.2} ms",
        pages.len(),
        percentile(&mut pages, 0.5),
        percentile(&mut pages, 0.99)
    );
    println!(
        "GetFunction: p50 {:.2} ms  p99 {:.2} ms",
        percentile(&mut gets, 0.5),
        percentile(&mut gets, 0.99)
    );
    println!(
        "server RSS: {rss_mib:.0} MiB after the creates; {rss_after_mib:.0} MiB after a restart"
    );
    println!("restart to listening: {startup_s:.2} s");
    Ok(())
}

/// `cargo xtask bench --burst N`: N invocations at once of a function with no instance
/// (the Rust echo at 128 MB, sleeping 1 s so that each needs its own instance), so N
/// concurrent cold starts: how many succeeded, and their `Init Duration` and end-to-end
/// latency.
fn burst(root: &Path, n: usize) -> Result<()> {
    // Each instance's limits count 640 MiB against the host memory budget (128 MB and the
    // 512 MB `/tmp` the sandbox charges to it), which the default budget (80 % of host
    // memory) holds about 30 of here; the budget is a reservation of limits, not of use,
    // so it is raised explicitly to admit them all.
    let budget = format!("{}MiB", n * 640 + 1024);
    let server = start(root, &["--memory-budget".to_owned(), budget.clone()])?;
    create_function_of(&server, root, "burst", 128)?;
    let payload = br#"{"action":"sleep","ms":1000}"#;
    let requests: Vec<http::Request<Vec<u8>>> = (0..n)
        .map(|_| {
            server.signed(
                "POST",
                "/2015-03-31/functions/burst/invocations",
                &[("X-Amz-Log-Type", "Tail")],
                payload,
            )
        })
        .collect::<Result<_>>()?;
    let gate = std::sync::Barrier::new(n);
    let outcomes: Vec<Result<(u16, f64, Option<f64>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let gate = &gate;
                scope.spawn(move || -> Result<(u16, f64, Option<f64>)> {
                    gate.wait();
                    let started = Instant::now();
                    let r = agent().run(request)?;
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    let status = r.status().as_u16();
                    let log = r
                        .headers()
                        .get("x-amz-log-result")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let log = base64::engine::general_purpose::STANDARD
                        .decode(log)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .unwrap_or_default();
                    let init = log
                        .split("Init Duration: ")
                        .nth(1)
                        .and_then(|s| s.split(' ').next())
                        .and_then(|s| s.parse::<f64>().ok());
                    Ok((status, ms, init))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))
            })
            .collect()
    });
    let mut ok = 0;
    let mut failed = Vec::new();
    let mut e2e = Vec::new();
    let mut init = Vec::new();
    for o in outcomes {
        match o {
            Ok((200, ms, i)) => {
                ok += 1;
                e2e.push(ms);
                init.extend(i);
            }
            Ok((status, _, _)) => failed.push(status.to_string()),
            Err(e) => failed.push(e.to_string()),
        }
    }
    println!(
        "## warden bench --burst {n} (128 MB, each invocation sleeps 1 s; --memory-budget {budget})"
    );
    println!(
        "{ok} of {n} succeeded; {} cold starts; failures: {failed:?}",
        init.len()
    );
    if !init.is_empty() {
        println!(
            "Init Duration p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            percentile(&mut init, 0.5),
            percentile(&mut init, 0.99),
            percentile(&mut init, 1.0)
        );
    }
    if !e2e.is_empty() {
        println!(
            "end to end p50 {:.0} ms  p99 {:.0} ms (1,000 ms of it the function's sleep)",
            percentile(&mut e2e, 0.5),
            percentile(&mut e2e, 0.99)
        );
    }
    Ok(())
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

/// The value of the unlabelled series `name` (with its trailing space) at `/metrics`.
fn metric(server: &Server, name: &str) -> Result<f64> {
    let text = agent()
        .get(&server.metrics_endpoint)
        .call()?
        .into_body()
        .read_to_string()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no {name} in /metrics"))
}

/// `cargo xtask bench --cpu`: the warm echo (Rust, `lambda_runtime`) at one connection at
/// the default 128 MB, where the CPU quota (8 % of a CPU) is what a closed loop runs into,
/// beside the same at 1,769 MB (one CPU) and at 128 MB under `--cpu-scaling off`, with
/// the events the engine's pacing held.
fn cpu(root: &Path, seconds: u32) -> Result<()> {
    println!("## warden bench --cpu ({seconds} s per wrk run, 1 connection)");
    for (flags, memory) in [
        (&[][..], 128),
        (&[][..], 1769),
        (&["--cpu-scaling", "off"][..], 128),
    ] {
        let extra: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let server = start(root, &extra)?;
        create_function_of(&server, root, "echo", memory)?;
        server.send("POST", "/2015-03-31/functions/echo/invocations", &[], b"{}")?;
        std::thread::sleep(Duration::from_millis(200));
        let one = wrk(&server, "echo", 1, 1, seconds)?;
        // How many events the engine held back for the instance's CPU share, and for how
        // long on average (the pacing of instances below one CPU; a build from before it,
        // given with `--warden`, has no such metrics).
        let held = match (
            metric(&server, "warden_paced_events_total"),
            metric(&server, "warden_pacing_wait_seconds_total"),
        ) {
            (Ok(n), Ok(s)) if n > 0.0 => format!("{n} held, {:.2} ms each", s / n * 1000.0),
            (Ok(_), Ok(_)) => "none held".to_owned(),
            _ => "no pacing".to_owned(),
        };
        println!(
            "{memory:>5} MB {:<22} p50 {:>9}  p99 {:>9}  {} invokes/s  {held}",
            flags.join(" "),
            pick(&one, "50%"),
            pick(&one, "99%"),
            pick(&one, "Requests/sec:")
        );
    }
    Ok(())
}

/// `cargo xtask bench --runtimes`: cold starts of the same echo handler on Warden's Python
/// and Node.js bootstraps and on the reference clients `awslambdaric` and
/// `aws-lambda-ric`, and warm latency of the Python echo beside
/// the Rust one, in one run.
fn runtimes(root: &Path, extra: &[String], cold: usize, seconds: u32) -> Result<()> {
    let tools = crate::tools(root)?;
    let python = tools.var("WARDEN_TEST_PYTHON")?;
    let version = Command::new(&python)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()?;
    let runtime = format!("python{}", String::from_utf8(version.stdout)?.trim());
    let node = Command::new("node")
        .args(["-p", "process.versions.node.split('.')[0]"])
        .output()
        .context("running node")?;
    let node_runtime = format!("nodejs{}.x", String::from_utf8(node.stdout)?.trim());

    let dir = tempfile::tempdir()?;
    let pkg = dir.path().join("py");
    std::fs::create_dir_all(&pkg)?;
    std::fs::write(
        pkg.join("app.py"),
        "def handler(event, context):\n    return event\n",
    )?;
    std::fs::write(
        pkg.join("ric.sh"),
        "#!/bin/sh\nPYTHONPATH=/var/task/ric exec \"$1\" -m awslambdaric \"$_HANDLER\"\n",
    )?;
    std::fs::set_permissions(
        pkg.join("ric.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    // The reference client and what it imports, from the test tools' environment.
    let site = Command::new(&python)
        .args([
            "-c",
            "import awslambdaric, os; print(os.path.dirname(os.path.dirname(awslambdaric.__file__)))",
        ])
        .output()?;
    let site = std::path::PathBuf::from(String::from_utf8(site.stdout)?.trim());
    for entry in std::fs::read_dir(&site)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["awslambdaric", "simplejson", "snapshot_restore_py.py"].contains(&name.as_str())
            || name.starts_with("runtime_client")
        {
            crate::deny::copy_tree_or_file(&entry.path(), &pkg.join("ric").join(&name))?;
        }
    }
    let js = dir.path().join("js");
    std::fs::create_dir_all(&js)?;
    std::fs::write(
        js.join("index.mjs"),
        "export const handler = async (event) => event;\n",
    )?;
    // The reference Node.js client (what it needs at run time), started the same way.
    let node_ric = std::path::PathBuf::from(tools.var("WARDEN_TEST_NODE_RIC")?);
    std::fs::write(
        js.join("ric.sh"),
        "#!/bin/sh\ncd /var/task && exec \"$1\" /var/task/ric/bin/index.mjs \"$_HANDLER\"\n",
    )?;
    std::fs::set_permissions(
        js.join("ric.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    for part in ["bin", "dist", "package.json"] {
        crate::deny::copy_tree_or_file(&node_ric.join(part), &js.join("ric").join(part))?;
    }

    let server = start(root, extra)?;
    create_function(&server, root, "rust")?;
    create_from_dir(
        &server,
        "py",
        &pkg,
        &runtime,
        "app.handler",
        serde_json::json!({}),
    )?;
    create_from_dir(
        &server,
        "py-ric",
        &pkg,
        &runtime,
        "app.handler",
        serde_json::json!({"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/ric.sh"}),
    )?;
    create_from_dir(
        &server,
        "node",
        &js,
        &node_runtime,
        "index.handler",
        serde_json::json!({}),
    )?;
    create_from_dir(
        &server,
        "node-ric",
        &js,
        &node_runtime,
        "index.handler",
        serde_json::json!({"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/ric.sh"}),
    )?;

    let mode = if extra.is_empty() {
        "sandboxed"
    } else {
        "no sandbox"
    };
    println!("## warden bench --runtimes ({mode}; {cold} cold starts each; 1,769 MB)");
    for (function, what) in [
        ("py", format!("{runtime}, Warden's bootstrap")),
        ("py-ric", format!("{runtime}, awslambdaric")),
        ("node", format!("{node_runtime}, Warden's bootstrap")),
        ("node-ric", format!("{node_runtime}, aws-lambda-ric")),
        ("rust", "provided.al2023, lambda_runtime".to_owned()),
    ] {
        let (mut init, _) = cold_starts(&server, function, cold)?;
        println!(
            "cold start {what:<36} p50 {:>7.2} ms  p99 {:>7.2} ms",
            percentile(&mut init, 0.5),
            percentile(&mut init, 0.99)
        );
    }
    for function in ["py", "rust"] {
        server.send(
            "POST",
            &format!("/2015-03-31/functions/{function}/invocations"),
            &[],
            b"{}",
        )?;
        std::thread::sleep(Duration::from_millis(200));
        let one = wrk(&server, function, 1, 1, seconds)?;
        println!(
            "warm echo {function:<5} 1 connection: p50 {}  p99 {}  {} invokes/s",
            pick(&one, "50%"),
            pick(&one, "99%"),
            pick(&one, "Requests/sec:")
        );
    }
    Ok(())
}

fn create_function(server: &Server, root: &Path, name: &str) -> Result<()> {
    // 1,769 MB is one full vCPU in Lambda's (and the sandbox's) CPU-per-memory scale,
    // so the platform, not a 7 % CPU quota, is measured.
    create_function_of(server, root, name, 1769)
}

fn create_function_of(server: &Server, root: &Path, name: &str, memory_mb: u32) -> Result<()> {
    create_fixture(server, root, name, memory_mb, serde_json::json!({}))
}

/// Creates `name` from the release `fixture`, with the environment variables `env`.
fn create_fixture(
    server: &Server,
    root: &Path,
    name: &str,
    memory_mb: u32,
    env: serde_json::Value,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        root.join("target/release/fixture"),
        dir.path().join("bootstrap"),
    )?;
    let zip = warden_package::zip_directory(dir.path(), &mut |_, _| {})?;
    let mut body = serde_json::json!({
        "FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
        "Role": format!("arn:aws:iam::{ACCOUNT}:role/warden-default"), "Timeout": 30,
        "MemorySize": memory_mb,
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    });
    // No environment at all unless asked: the measured functions keep none.
    if env.as_object().is_some_and(|vars| !vars.is_empty()) {
        body["Environment"] = serde_json::json!({ "Variables": env });
    }
    create(server, &body)
}

/// `cargo xtask bench --signing`: the deploy-time cost of code signing, as
/// `UpdateFunctionCode` of one 10 MiB package (the fixture and incompressible padding)
/// takes it: unsigned, to a function without a config, and signed, to a function with an
/// `Enforce` config; `n` of each, alternating.
fn code_signing(root: &Path, extra: &[String], n: usize) -> Result<()> {
    let server = start(root, extra)?;
    let call = |service: &str, method: &str, path: &str, body: &serde_json::Value| {
        let request = server.signed_for(
            service,
            method,
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )?;
        let mut r = agent().run(request)?;
        let status = r.status();
        let text = r.body_mut().with_config().limit(1 << 20).read_to_string()?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        Ok::<_, anyhow::Error>(serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default())
    };
    let profile = call(
        "signer",
        "PUT",
        "/signing-profiles/bench",
        &serde_json::json!({ "platformId": "AWSLambda-SHA384-ECDSA" }),
    )?;
    let version_arn = profile["profileVersionArn"]
        .as_str()
        .context("no profileVersionArn")?
        .to_owned();
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        root.join("target/release/fixture"),
        dir.path().join("bootstrap"),
    )?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut padding = Vec::with_capacity(10 << 20);
    while padding.len() < 10 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        padding.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(dir.path().join("padding.bin"), &padding)?;
    let zip = warden_package::zip_directory(dir.path(), &mut |_, _| {})?;
    let digest = warden_signer::format::prepare(&zip)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let signed = call(
        "signer",
        "POST",
        "/signing-jobs/with-payload",
        &serde_json::json!({
            "profileName": "bench",
            "payload": b64.encode(digest.as_bytes()),
            "payloadFormat": warden_signer::DIGEST_PAYLOAD_FORMAT,
        }),
    )?;
    let comment = b64.decode(signed["signature"].as_str().context("no signature")?)?;
    let manifest: warden_signer::format::Manifest = serde_json::from_slice(
        comment
            .strip_prefix(warden_signer::format::MAGIC)
            .context("not a Warden signature")?,
    )?;
    let signed_zip = warden_signer::format::attach(&zip, &manifest)?;
    let config = call(
        "lambda",
        "POST",
        "/2020-04-22/code-signing-configs",
        &serde_json::json!({
            "AllowedPublishers": { "SigningProfileVersionArns": [version_arn] },
            "CodeSigningPolicies": { "UntrustedArtifactOnDeployment": "Enforce" },
        }),
    )?;
    let config_arn = config["CodeSigningConfig"]["CodeSigningConfigArn"]
        .as_str()
        .context("no CodeSigningConfigArn")?
        .to_owned();
    for (name, code, csc) in [
        ("plain", &zip, None),
        ("signed", &signed_zip, Some(config_arn.as_str())),
    ] {
        let mut body = serde_json::json!({
            "FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
            "Role": format!("arn:aws:iam::{ACCOUNT}:role/warden-default"),
            "Code": { "ZipFile": b64.encode(code) },
        });
        if let Some(arn) = csc {
            body["CodeSigningConfigArn"] = serde_json::json!(arn);
        }
        call("lambda", "POST", "/2015-03-31/functions", &body)?;
    }
    let plain_body = serde_json::json!({ "ZipFile": b64.encode(&zip) });
    let signed_body = serde_json::json!({ "ZipFile": b64.encode(&signed_zip) });
    let (mut plain, mut checked) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        for (name, body, times) in [
            ("plain", &plain_body, &mut plain),
            ("signed", &signed_body, &mut checked),
        ] {
            let start = Instant::now();
            call(
                "lambda",
                "PUT",
                &format!("/2015-03-31/functions/{name}/code"),
                body,
            )?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!(
        "## warden bench --signing ({n} UpdateFunctionCode of a {:.1} MiB zip each)",
        zip.len() as f64 / f64::from(1 << 20)
    );
    println!(
        "unsigned, no config:      p50 {:.1} ms  p99 {:.1} ms",
        percentile(&mut plain, 0.5),
        percentile(&mut plain, 0.99)
    );
    println!(
        "signed, Enforce config:   p50 {:.1} ms  p99 {:.1} ms",
        percentile(&mut checked, 0.5),
        percentile(&mut checked, 0.99)
    );
    Ok(())
}

/// `cargo xtask bench --kms`: `Encrypt` and `Decrypt` of 1 KB through the API (one signed
/// request replayed by `wrk`, as for invokes), and cold starts of the same function without
/// and with a sealed environment of ten variables.
fn kms(root: &Path, extra: &[String], cold: usize, seconds: u32) -> Result<()> {
    let server = start(root, extra)?;
    let call = |target: &str, body: &serde_json::Value| -> Result<serde_json::Value> {
        let request = server.signed_for(
            "kms",
            "POST",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", target),
            ],
            body.to_string().as_bytes(),
        )?;
        let r = agent().run(request)?;
        let text = r.into_body().read_to_string()?;
        Ok(serde_json::from_str(&text)?)
    };
    let key = call("TrentService.CreateKey", &serde_json::json!({}))?["KeyMetadata"]["Arn"]
        .as_str()
        .context("CreateKey answered no key")?
        .to_owned();
    let plaintext = base64::engine::general_purpose::STANDARD.encode([7u8; 1024]);
    let encrypt = serde_json::json!({ "KeyId": key, "Plaintext": plaintext });
    let blob = call("TrentService.Encrypt", &encrypt)?["CiphertextBlob"]
        .as_str()
        .context("Encrypt answered no blob")?
        .to_owned();
    let decrypt = serde_json::json!({ "CiphertextBlob": blob });
    let mut rows = Vec::new();
    for (name, target, body) in [
        ("Encrypt 1 KB", "TrentService.Encrypt", &encrypt),
        ("Decrypt 1 KB", "TrentService.Decrypt", &decrypt),
    ] {
        for connections in [1u32, 8] {
            let signed = server.signed_for(
                "kms",
                "POST",
                "/",
                &[
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", target),
                ],
                body.to_string().as_bytes(),
            )?;
            let out = wrk_request(
                &server,
                None,
                signed,
                body.to_string().as_bytes(),
                connections.min(2),
                connections,
                seconds,
            )?;
            rows.push(format!(
                "{name}, {connections} connection{}: p50 {}  p99 {}  {} ops/s",
                if connections == 1 { "" } else { "s" },
                pick(&out, "50%"),
                pick(&out, "99%"),
                pick(&out, "Requests/sec:")
            ));
        }
    }
    create_function(&server, root, "plain")?;
    create_function(&server, root, "sealed")?;
    let variables: serde_json::Map<String, serde_json::Value> = (0..10)
        .map(|i| {
            (
                format!("VAR_{i}"),
                serde_json::json!(format!("value-{i}-{}", "x".repeat(40))),
            )
        })
        .collect();
    server.send(
        "PUT",
        "/2015-03-31/functions/sealed/configuration",
        &[],
        serde_json::json!({ "Environment": { "Variables": variables } })
            .to_string()
            .as_bytes(),
    )?;
    let (mut plain, _) = cold_starts(&server, "plain", cold)?;
    let (mut sealed, _) = cold_starts(&server, "sealed", cold)?;
    let mode = if extra.is_empty() {
        "sandboxed"
    } else {
        "no sandbox"
    };
    println!("## warden bench --kms ({mode}; {seconds} s per wrk run; {cold} cold starts each)");
    for r in rows {
        println!("{r}");
    }
    println!(
        "cold start, no environment:            p50 {:.2} ms  p99 {:.2} ms",
        percentile(&mut plain, 0.5),
        percentile(&mut plain, 0.99)
    );
    println!(
        "cold start, 10 sealed variables:       p50 {:.2} ms  p99 {:.2} ms",
        percentile(&mut sealed, 0.5),
        percentile(&mut sealed, 0.99)
    );
    Ok(())
}

/// `--posture`: how long one evaluation of every posture control takes over 1,000
/// functions (each with a policy statement and an environment), as the server reports it
/// in `/metrics` (`warden_posture_evaluation_seconds`), after a change of one function.
fn posture(root: &Path, extra: &[String]) -> Result<()> {
    const FUNCTIONS: usize = 1_000;
    let server = start(root, extra)?;
    let created = Instant::now();
    for i in 0..FUNCTIONS {
        create_function(&server, root, &format!("p{i}"))?;
    }
    let create_s = created.elapsed().as_secs_f64();
    let gauge = |name: &str| metric(&server, name);
    let mut times = Vec::new();
    // The evaluation after the last create, first.
    std::thread::sleep(Duration::from_secs(3));
    for round in 0..5 {
        let before = gauge("warden_posture_evaluation_seconds ")?;
        let body = serde_json::json!({ "Description": format!("round {round}") });
        let mut r = server.send(
            "PUT",
            "/2015-03-31/functions/p0/configuration",
            &[],
            body.to_string().as_bytes(),
        )?;
        if r.status() != 200 {
            bail!("update failed: {}", r.body_mut().read_to_string()?);
        }
        // The evaluation starts within a second of the change; wait until it is over (a
        // new duration is reported).
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = before;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            last = gauge("warden_posture_evaluation_seconds ")?;
            if last != before {
                break;
            }
        }
        times.push(last * 1000.0);
    }
    let failures = gauge("warden_posture_failures ")?;
    println!(
        "## warden bench --posture ({FUNCTIONS} functions created in {create_s:.1} s; {failures} control failures)"
    );
    println!(
        "one evaluation of every control: median {:.0} ms (of {} after a change)",
        percentile(&mut times, 0.5),
        times.len()
    );
    Ok(())
}

/// `--logs`: FilterLogEvents over [`LOG_EVENTS`] stored events, each call reading them all
/// (a pattern that matches few, JSON and space-delimited patterns, one that matches none),
/// through the API with a signed request, as a client sees it.
fn logs(root: &Path, extra: &[String]) -> Result<()> {
    const LOG_EVENTS: usize = 1_000_000;
    const BATCH: usize = 10_000;
    let server = start(root, extra)?;
    let call = |target: &str, body: &serde_json::Value| -> Result<(serde_json::Value, f64)> {
        let request = server.signed_for(
            "logs",
            "POST",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", target),
            ],
            body.to_string().as_bytes(),
        )?;
        let started = Instant::now();
        let r = agent().run(request)?;
        let text = r.into_body().read_to_string()?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok((serde_json::from_str(&text)?, ms))
    };
    let group = serde_json::json!({ "logGroupName": "bench" });
    call("Logs_20140328.CreateLogGroup", &group)?;
    call(
        "Logs_20140328.CreateLogStream",
        &serde_json::json!({ "logGroupName": "bench", "logStreamName": "s" }),
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let loaded = Instant::now();
    for b in 0..LOG_EVENTS / BATCH {
        let events: Vec<serde_json::Value> = (0..BATCH)
            .map(|i| {
                let n = b * BATCH + i;
                let message = match n % 4 {
                    0 => format!(
                        r#"{{"level": "{}", "latency": {}, "path": "/orders/{n}"}}"#,
                        if n.is_multiple_of(1000) { "ERROR" } else { "INFO" },
                        n % 500
                    ),
                    1 => format!("10.0.{}.{} GET /index.html {} {}", n % 256, n % 200, if n % 997 == 1 { 503 } else { 200 }, n % 5000),
                    2 => format!("INFO processed order {n} in {} ms", n % 90),
                    _ => format!("DEBUG cache hit ratio {}.{}", n % 100, n % 10),
                };
                serde_json::json!({ "timestamp": now - 3_600_000 + (n as i64) / 1000, "message": message })
            })
            .collect();
        call(
            "Logs_20140328.PutLogEvents",
            &serde_json::json!({ "logGroupName": "bench", "logStreamName": "s", "logEvents": events }),
        )?;
    }
    let load_s = loaded.elapsed().as_secs_f64();
    println!(
        "## warden bench --logs ({LOG_EVENTS} events stored through PutLogEvents in {load_s:.1} s, {:.0} events/s)",
        LOG_EVENTS as f64 / load_s
    );
    for (name, pattern) in [
        ("term matching 1 in 1000", "ERROR"),
        ("JSON pattern", r#"{ $.level = "ERROR" && $.latency >= 0 }"#),
        (
            "space-delimited pattern",
            "[ip, verb = GET, path, status = 5*, size]",
        ),
        ("term matching nothing", "NOWHERE"),
        ("no pattern (first 10,000)", ""),
    ] {
        let mut times = Vec::new();
        let mut matched = 0;
        for _ in 0..3 {
            let (out, ms) = call(
                "Logs_20140328.FilterLogEvents",
                &serde_json::json!({ "logGroupName": "bench", "filterPattern": pattern }),
            )?;
            matched = out["events"].as_array().map_or(0, Vec::len);
            times.push(ms);
        }
        println!(
            "FilterLogEvents, {name}: median {:.0} ms ({matched} events returned)",
            percentile(&mut times, 0.5)
        );
    }
    Ok(())
}

/// `--logs`, second part: a chatty function (`flood`: 60-byte lines as fast as it is let)
/// with the per-function log rate lifted, how many lines per second reach the store, and
/// a quiet function's warm invoke latency meanwhile beside its latency without the flood.
fn log_ingestion(root: &Path, extra: &[String], seconds: u32) -> Result<()> {
    let mut args = extra.to_vec();
    args.extend(["--log-rate-kib", "1048576", "--log-max-mib", "8192"].map(String::from));
    let server = start(root, &args)?;
    create_function(&server, root, "chatty")?;
    create_function(&server, root, "quiet")?;
    for f in ["chatty", "quiet"] {
        server.send(
            "POST",
            &format!("/2015-03-31/functions/{f}/invocations"),
            &[],
            b"{}",
        )?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let calm = wrk(&server, "quiet", 1, 1, seconds)?;
    let flood_ms = u64::from(seconds) * 1000 + 2000;
    let started = Instant::now();
    let (flood, busy) = std::thread::scope(|scope| -> Result<(serde_json::Value, String)> {
        let flood = scope.spawn(|| -> Result<serde_json::Value> {
            let body = serde_json::json!({"action": "flood", "ms": flood_ms, "bytes": 60});
            let mut r = server.send(
                "POST",
                "/2015-03-31/functions/chatty/invocations",
                &[],
                body.to_string().as_bytes(),
            )?;
            Ok(serde_json::from_str(&r.body_mut().read_to_string()?)?)
        });
        std::thread::sleep(Duration::from_millis(1000));
        let busy = wrk(&server, "quiet", 1, 1, seconds)?;
        let flood = flood
            .join()
            .map_err(|_| anyhow::anyhow!("the flood thread panicked"))??;
        Ok((flood, busy))
    })?;
    let lines = flood["lines"]
        .as_u64()
        .context("the flood said no line count")?;
    // Stored once its REPORT is: the writer keeps the invocation's lines in order.
    let stored = loop {
        let request = server.signed_for(
            "logs",
            "POST",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "Logs_20140328.FilterLogEvents"),
            ],
            br#"{"logGroupName": "/aws/lambda/chatty", "filterPattern": "REPORT"}"#,
        )?;
        let text = agent().run(request)?.into_body().read_to_string()?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        if v["events"].as_array().map_or(0, Vec::len) >= 2 {
            break started.elapsed().as_secs_f64();
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the flood's lines were not stored within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "log ingestion: {lines} lines of 60 bytes written in {} ms, all stored after {stored:.1} s: {:.0} lines/s stored ({:.0} lines/s as the function wrote them)",
        flood["ms"],
        lines as f64 / stored,
        lines as f64 * 1000.0 / flood["ms"].as_f64().unwrap_or(1.0).max(1.0)
    );
    println!(
        "warm invoke of another function, 1 connection: p50 {} without the flood, {} during it",
        pick(&calm, "50%"),
        pick(&busy, "50%")
    );
    Ok(())
}

fn wrk(
    server: &Server,
    function: &str,
    threads: u32,
    connections: u32,
    seconds: u32,
) -> Result<String> {
    let path = format!("/2015-03-31/functions/{function}/invocations");
    let signed = server.signed("POST", &path, &[], b"{}")?;
    wrk_request(server, None, signed, b"{}", threads, connections, seconds)
}

/// Replays one signed request with `wrk` for `seconds`.
fn wrk_request(
    server: &Server,
    base: Option<&str>,
    signed: http::Request<Vec<u8>>,
    body: &[u8],
    threads: u32,
    connections: u32,
    seconds: u32,
) -> Result<String> {
    let script = tempfile::NamedTempFile::new()?;
    let path = signed
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.to_string());
    let escaped = String::from_utf8_lossy(body)
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let mut lua = format!("wrk.method = \"POST\"\nwrk.body = \"{escaped}\"\n");
    for (k, v) in signed.headers() {
        lua.push_str(&format!(
            "wrk.headers[\"{}\"] = \"{}\"\n",
            k.as_str(),
            v.to_str()?
        ));
    }
    std::fs::write(script.path(), lua)?;
    let url = format!("{}{path}", base.unwrap_or(&server.endpoint));
    wrk_script(script.path(), &url, threads, connections, seconds)
}

/// Runs `wrk` with the Lua `script` (method, body and headers) against `url`; an error if
/// any response was not 2xx.
fn wrk_script(
    script: &Path,
    url: &str,
    threads: u32,
    connections: u32,
    seconds: u32,
) -> Result<String> {
    let out = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
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
        .find_map(|l| {
            l.trim()
                .strip_prefix(prefix)
                .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// Cold starts: each configuration change retires the warm instance, so the next invoke
/// starts a new one; its REPORT line carries `Init Duration` (spawn to first `/next`).
fn cold_starts(server: &Server, function: &str, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut init = Vec::new();
    let mut end_to_end = Vec::new();
    let gap = Duration::from_millis(COLD_GAP_MS.load(std::sync::atomic::Ordering::Relaxed));
    for i in 0..n {
        std::thread::sleep(gap);
        let body = serde_json::json!({ "Description": format!("cold {i}") });
        server.send(
            "PUT",
            &format!("/2015-03-31/functions/{function}/configuration"),
            &[],
            body.to_string().as_bytes(),
        )?;
        let request = server.signed(
            "POST",
            &format!("/2015-03-31/functions/{function}/invocations"),
            &[("X-Amz-Log-Type", "Tail")],
            b"{}",
        )?;
        let started = Instant::now();
        let r = agent().run(request)?;
        end_to_end.push(started.elapsed().as_secs_f64() * 1000.0);
        if r.status() != 200 || r.headers().contains_key("x-amz-function-error") {
            let status = r.status();
            let body = r.into_body().read_to_string().unwrap_or_default();
            bail!("cold start {i} failed: {status} {body}");
        }
        let log = r
            .headers()
            .get("x-amz-log-result")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let log = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(log)?)?;
        let ms = log
            .split("Init Duration: ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse::<f64>().ok())
            .context("no Init Duration in a cold start's REPORT line")?;
        init.push(ms);
    }
    // `WARDEN_BENCH_SAMPLES=1`: every sample, in order, to see where a tail comes from.
    if std::env::var_os("WARDEN_BENCH_SAMPLES").is_some() {
        let line = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        eprintln!("Init Duration (ms): {}", line(&init));
        eprintln!("end to end (ms): {}", line(&end_to_end));
    }
    Ok((init, end_to_end))
}

/// A TCP service in its own network namespace at 203.0.113.2 (documentation space, routed
/// only to it), sending [`SINK_BYTES`] to each connection; removed on drop.
struct BenchHost {
    service: Child,
}

const SINK_BYTES: u64 = 512 << 20;

const SINK: &str = r#"
import socket, sys, threading
n = int(sys.argv[1])
chunk = b"x" * (1 << 20)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen(16)
print("ready", flush=True)
def send(c):
    left = n
    while left > 0:
        c.sendall(chunk[:min(left, len(chunk))]); left -= len(chunk)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=send, args=(c,), daemon=True).start()
"#;

/// Reads everything from the sink and prints MiB/s: the same code as a function and as a
/// plain process.
const FETCH: &str = r#"
import socket, time
def fetch():
    s = socket.create_connection(("203.0.113.2", 9000))
    buf = bytearray(1 << 20); total = 0; start = time.perf_counter()
    while True:
        n = s.recv_into(buf)
        if not n: break
        total += n
    return total / (1 << 20) / (time.perf_counter() - start)
def handler(event, context):
    return {"mib_per_s": fetch()}
if __name__ == "__main__":
    print(fetch())
"#;

impl BenchHost {
    fn start(python: &str) -> Result<BenchHost> {
        let ip = |args: &[&str]| -> Result<()> {
            let ok = Command::new("ip").args(args).status()?.success();
            if !ok {
                bail!("ip {args:?} failed");
            }
            Ok(())
        };
        let _ = Command::new("ip").args(["netns", "del", "wbench"]).status();
        ip(&["netns", "add", "wbench"])?;
        ip(&[
            "link", "add", "wbh0", "type", "veth", "peer", "name", "eth0", "netns", "wbench",
        ])?;
        ip(&["addr", "add", "203.0.113.1/24", "dev", "wbh0"])?;
        ip(&["link", "set", "wbh0", "up"])?;
        for args in [
            &["addr", "add", "203.0.113.2/24", "dev", "eth0"][..],
            &["link", "set", "eth0", "up"],
            &["link", "set", "lo", "up"],
            &["route", "add", "default", "via", "203.0.113.1"],
        ] {
            let mut all = vec!["netns", "exec", "wbench", "ip"];
            all.extend_from_slice(args);
            ip(&all)?;
        }
        let mut service = Command::new("ip")
            .args([
                "netns",
                "exec",
                "wbench",
                python,
                "-c",
                SINK,
                &SINK_BYTES.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(service.stdout.take().context("no stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("the sink did not start: {line}");
        }
        Ok(BenchHost { service })
    }
}

impl Drop for BenchHost {
    fn drop(&mut self) {
        let _ = self.service.kill();
        let _ = self.service.wait();
        let _ = Command::new("ip").args(["link", "del", "wbh0"]).status();
        let _ = Command::new("ip").args(["netns", "del", "wbench"]).status();
    }
}

/// `cargo xtask bench --urls`: warm invokes of the same function through the API's
/// `Invoke` (signed) and through its public function URL (`AuthType` `NONE`), one
/// connection and eight; then `Invoke` with a 1 KB event without and with a 20-property
/// input contract.
fn function_urls(root: &Path, seconds: u32) -> Result<()> {
    // The URL's abuse limits lifted: this measures the path, not the limiter.
    let lifted: Vec<String> = [
        "--url-rate",
        "1000000",
        "--url-source-rate",
        "1000000",
        "--url-max-in-flight",
        "100000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = start(root, &lifted)?;
    create_function(&server, root, "noop")?;
    let mut r = server.send(
        "POST",
        "/2021-10-31/functions/noop/url",
        &[],
        br#"{"AuthType": "NONE"}"#,
    )?;
    let created: serde_json::Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
    let function_url = created["FunctionUrl"]
        .as_str()
        .context("CreateFunctionUrlConfig answered no FunctionUrl")?;
    let id = function_url
        .trim_start_matches("http://")
        .split('.')
        .next()
        .context("a function URL starts with its id")?
        .to_owned();
    server.send(
        "POST",
        "/2015-03-31/functions/noop/policy",
        &[],
        br#"{"StatementId": "url", "Action": "lambda:InvokeFunctionUrl", "Principal": "*", "FunctionUrlAuthType": "NONE"}"#,
    )?;
    server.send("POST", "/2015-03-31/functions/noop/invocations", &[], b"{}")?;
    std::thread::sleep(Duration::from_millis(200));
    // The URL request is unsigned: wrk replays it as is.
    let url_request = http::Request::builder()
        .method("POST")
        .uri(format!("{}/_url/{id}/", server.url_endpoint))
        .header("content-type", "application/json")
        .body(b"{}".to_vec())?;
    let probe = agent().run(url_request.clone())?;
    if probe.status() != 200 {
        bail!("the function URL answered {}", probe.status());
    }
    let mut rows = Vec::new();
    for (threads, connections) in [(1, 1), (2, 8)] {
        let api = wrk(&server, "noop", threads, connections, seconds)?;
        let url = wrk_request(
            &server,
            Some(&server.url_endpoint),
            url_request.clone(),
            b"{}",
            threads,
            connections,
            seconds,
        )?;
        rows.push(format!(
            "{connections} connection(s): Invoke p50 {} p99 {} {} /s; function URL p50 {} p99 {} {} /s",
            pick(&api, "50%"),
            pick(&api, "99%"),
            pick(&api, "Requests/sec:"),
            pick(&url, "50%"),
            pick(&url, "99%"),
            pick(&url, "Requests/sec:"),
        ));
    }
    // A 1 KB event of 20 properties, without and with a contract naming all of them.
    let mut properties = serde_json::Map::new();
    let mut event = serde_json::Map::new();
    for i in 0..20 {
        properties.insert(
            format!("field_{i:02}"),
            serde_json::json!({"type": "string", "maxLength": 64}),
        );
        event.insert(
            format!("field_{i:02}"),
            serde_json::json!(format!("value-{i}-{}", "x".repeat(30))),
        );
    }
    let body = serde_json::to_vec(&serde_json::Value::Object(event))?;
    let path = "/2015-03-31/functions/noop/invocations";
    let without = wrk_request(
        &server,
        None,
        server.signed("POST", path, &[], &body)?,
        &body,
        1,
        1,
        seconds,
    )?;
    let names: Vec<&String> = properties.keys().collect();
    let contract = serde_json::json!({
        "EventSchema": {"type": "object", "required": names, "properties": properties}
    });
    let r = server.send(
        "PUT",
        "/_warden/2026-11-01/functions/noop/input-contract",
        &[],
        contract.to_string().as_bytes(),
    )?;
    if r.status() != 200 {
        bail!("storing the contract answered {}", r.status());
    }
    let with = wrk_request(
        &server,
        None,
        server.signed("POST", path, &[], &body)?,
        &body,
        1,
        1,
        seconds,
    )?;
    rows.push(format!(
        "Invoke of a {}-byte event, 1 connection: no contract p50 {} ({} /s); 20-property contract p50 {} ({} /s)",
        body.len(),
        pick(&without, "50%"),
        pick(&without, "Requests/sec:"),
        pick(&with, "50%"),
        pick(&with, "Requests/sec:"),
    ));
    println!("## warden bench --urls (sandboxed; {seconds} s per wrk run)");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

/// Milliseconds each cold start waits before its configuration change (`--cold-gap-ms`):
/// 0 measures cold starts back to back, as a burst; more lets background work (such as a
/// network namespace pool's refill) finish in between, as on a server that is not busy.
/// `--warden PATH`: the server build to measure in place of this checkout's release
/// build (another revision's, say, for a before-and-after in one sitting).
static WARDEN_BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

static COLD_GAP_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `cargo xtask bench --network`.
fn network(root: &Path, cold: usize, seconds: u32) -> Result<()> {
    let tools = crate::tools(root)?;
    let python = tools.var("WARDEN_TEST_PYTHON")?;
    let version = Command::new(&python)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()?;
    let runtime = format!("python{}", String::from_utf8(version.stdout)?.trim());
    let host = BenchHost::start(&python)?;
    let mut rows = Vec::new();
    for (label, extra) in [
        ("loopback only (--default-egress deny)", Vec::new()),
        (
            "with a network link (--default-egress internet)",
            vec!["--default-egress".to_owned(), "internet".to_owned()],
        ),
    ] {
        let server = start(root, &extra)?;
        create_function(&server, root, "noop")?;
        server.send("POST", "/2015-03-31/functions/noop/invocations", &[], b"{}")?;
        std::thread::sleep(Duration::from_millis(200));
        let one = wrk(&server, "noop", 1, 1, seconds)?;
        let spawns = |name: &str| metric(&server, name);
        let (n0, t0) = (
            spawns("warden_zygote_spawns_total ")?,
            spawns("warden_zygote_spawn_seconds_total ")?,
        );
        let (mut init, mut e2e) = cold_starts(&server, "noop", cold)?;
        let (n1, t1) = (
            spawns("warden_zygote_spawns_total ")?,
            spawns("warden_zygote_spawn_seconds_total ")?,
        );
        rows.push(format!(
            "{label}:\n  warm invoke, 1 connection: p50 {}  p99 {}  {} invokes/s\n  \
             cold start Init Duration: p50 {:.2} ms  p99 {:.2} ms; end to end p50 {:.2} ms; \
             zygote spawn mean {:.2} ms",
            pick(&one, "50%"),
            pick(&one, "99%"),
            pick(&one, "Requests/sec:"),
            percentile(&mut init, 0.5),
            percentile(&mut init, 0.99),
            percentile(&mut e2e, 0.5),
            (t1 - t0) * 1000.0 / (n1 - n0).max(1.0),
        ));
        if !extra.is_empty() {
            let dir = tempfile::tempdir()?;
            std::fs::write(dir.path().join("app.py"), FETCH)?;
            create_from_dir(
                &server,
                "fetch",
                dir.path(),
                &runtime,
                "app.handler",
                serde_json::json!({}),
            )?;
            let mut inside = Vec::new();
            for _ in 0..5 {
                let mut r = server.send(
                    "POST",
                    "/2015-03-31/functions/fetch/invocations",
                    &[],
                    b"{}",
                )?;
                let v: serde_json::Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
                inside.push(v["mib_per_s"].as_f64().context("fetch answered no rate")?);
            }
            let mut outside = Vec::new();
            for _ in 0..5 {
                let out = Command::new(&python).args(["-c", FETCH]).output()?;
                outside.push(String::from_utf8(out.stdout)?.trim().parse::<f64>()?);
            }
            let (i, o) = (percentile(&mut inside, 0.5), percentile(&mut outside, 0.5));
            rows.push(format!(
                "TCP throughput to an allowed service ({} MiB per run, median of 5): \
                 function {i:.0} MiB/s, unsandboxed process {o:.0} MiB/s, ratio {:.2}",
                SINK_BYTES >> 20,
                i / o
            ));
        }
    }
    drop(host);
    println!(
        "## warden bench --network (sandboxed; {seconds} s per wrk run; {cold} cold starts each)"
    );
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let idx = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[idx]
}

/// Instructions the server executes per warm invoke, counted by callgrind: repeatable on a
/// shared machine where wall-clock latency is not. The server runs under
/// `valgrind --tool=callgrind` (its zygote and the function run natively); the counters are
/// zeroed after a warm-up and dumped after `n` sequential signed invokes.
/// Waits until process `pid` uses less than 2% of a core over half a second.
fn wait_idle(pid: u32) -> Result<()> {
    let ticks = || -> Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are the 14th and 15th fields of the line.
        Ok(field(11) + field(12))
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = ticks()?;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let now = ticks()?;
        if now - last <= 1 {
            return Ok(());
        }
        last = now;
    }
    bail!("the server did not go quiet within 300 s")
}

fn callgrind(root: &Path, extra: &[String], n: usize) -> Result<()> {
    // Kept after the run, so that `callgrind_annotate` can say where the count goes.
    let out = root.join("target/bench-callgrind");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let pattern = out.join("callgrind.out.%p");
    let wrapper = vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        "--collect-atstart=yes".to_owned(),
        format!("--callgrind-out-file={}", pattern.display()),
    ];
    let server = start_under(root, &wrapper, extra)?;
    create_function(&server, root, "noop")?;
    for _ in 0..20 {
        let r = server.send("POST", "/2015-03-31/functions/noop/invocations", &[], b"{}")?;
        if r.status() != 200 {
            bail!("warm-up invoke failed: {}", r.status());
        }
    }
    // A new function's package is scanned in the background (the posture check counts
    // its vulnerabilities): wait for the server to go quiet so that one-off work stays
    // out of the count.
    wait_idle(server.child.id())?;
    let pid = server.child.id().to_string();
    let control = |what: &str| -> Result<()> {
        let status = Command::new("callgrind_control")
            .args([what, &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running callgrind_control (it comes with valgrind)")?;
        if !status.success() {
            bail!("callgrind_control {what} failed");
        }
        Ok(())
    };
    control("--zero")?;
    // Signed in advance, so that signing (client work) stays outside the count.
    let requests = (0..n)
        .map(|_| server.signed("POST", "/2015-03-31/functions/noop/invocations", &[], b"{}"))
        .collect::<Result<Vec<_>>>()?;
    // One connection for them all, kept alive between invokes as `wrk` and the SDKs keep
    // theirs (a connection per invoke added an accept and a connection's setup to each).
    let client = agent();
    for request in requests {
        let r = client.run(request)?;
        if r.status() != 200 {
            bail!("invoke failed: {}", r.status());
        }
        // Read to the end, or the agent cannot hand the connection to the next request.
        r.into_body().read_to_vec()?;
    }
    control("--dump")?;
    let mut totals = 0u64;
    let mut dump = None;
    for entry in std::fs::read_dir(&out)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        // Only the dump requested after the measured invokes (not the one written at
        // exit); its `totals:` line holds the instruction count.
        if !text.contains("desc: Trigger: dump") {
            continue;
        }
        if let Some(n) = text
            .lines()
            .find_map(|l| l.strip_prefix("totals: "))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|t| t.parse::<u64>().ok())
        {
            if n > totals {
                totals = n;
                dump = Some(path);
            }
        }
    }
    if totals == 0 {
        bail!("no callgrind dump with a `totals:` line was written");
    }
    let mode = if extra.is_empty() {
        "sandboxed"
    } else {
        "no sandbox"
    };
    println!("## warden bench --callgrind ({mode}; {n} warm invokes)");
    println!("server instructions per warm invoke: {}", totals / n as u64);
    if let Some(dump) = dump {
        println!(
            "profile: callgrind_annotate --inclusive=yes {}",
            dump.display()
        );
    }
    Ok(())
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut seconds = 10u32;
    let mut cold = 100usize;
    let mut count_instructions = None;
    let mut managed = false;
    let mut keys = false;
    let mut net = false;
    let mut urls = false;
    let mut log_queries = false;
    let mut signing = false;
    let mut posture_checks = false;
    let mut cpu_shares = false;
    let mut scale_to: Option<usize> = None;
    let mut burst_of: Option<usize> = None;
    let mut idle_of: Option<usize> = None;
    let mut limit = 100u32;
    let mut side_by_side = false;
    let mut console_of: Option<usize> = None;
    let mut nodes = false;
    let mut upgrade_from: Option<String> = None;
    let mut rounds = 3usize;
    let mut extra = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().context("--seconds N")?.parse()?,
            "--cold" => cold = it.next().context("--cold N")?.parse()?,
            "--callgrind" => {
                count_instructions = Some(it.next().context("--callgrind N")?.parse()?)
            }
            "--insecure-no-sandbox" => extra.push(a.clone()),
            "--runtimes" => managed = true,
            "--kms" => keys = true,
            "--network" => net = true,
            "--urls" => urls = true,
            "--logs" => log_queries = true,
            "--signing" => signing = true,
            "--posture" => posture_checks = true,
            "--cpu" => cpu_shares = true,
            "--scale" => scale_to = Some(it.next().context("--scale N")?.parse()?),
            "--burst" => burst_of = Some(it.next().context("--burst N")?.parse()?),
            "--idle" => idle_of = Some(it.next().context("--idle N")?.parse()?),
            "--limit" => limit = it.next().context("--limit L")?.parse()?,
            "--compare" => side_by_side = true,
            "--console" => console_of = Some(it.next().context("--console N")?.parse()?),
            "--cluster" => nodes = true,
            "--upgrade" => upgrade_from = Some(it.next().context("--upgrade REVISION")?.clone()),
            "--rounds" => rounds = it.next().context("--rounds R")?.parse()?,
            "--warden" => {
                let path = PathBuf::from(it.next().context("--warden PATH")?);
                if !path.is_file() {
                    bail!("--warden {}: no such file", path.display());
                }
                if WARDEN_BINARY.set(path).is_err() {
                    bail!("--warden is given twice");
                }
            }
            "--cold-gap-ms" => COLD_GAP_MS.store(
                it.next().context("--cold-gap-ms N")?.parse()?,
                std::sync::atomic::Ordering::Relaxed,
            ),
            other => bail!("unknown bench argument `{other}`"),
        }
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "warden",
            "-p",
            "warden-fixtures",
        ])
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    if let Some(n) = count_instructions {
        return callgrind(root, &extra, n);
    }
    if managed {
        return runtimes(root, &extra, cold, seconds);
    }
    if keys {
        return kms(root, &extra, cold, seconds);
    }
    if net {
        return network(root, cold, seconds);
    }
    if urls {
        return function_urls(root, seconds);
    }
    if signing {
        return code_signing(root, &extra, cold);
    }
    if posture_checks {
        return posture(root, &extra);
    }
    if cpu_shares {
        return cpu(root, seconds);
    }
    if let Some(n) = scale_to {
        return scale(root, n);
    }
    if let Some(n) = burst_of {
        return burst(root, n);
    }
    if let Some(n) = idle_of {
        return idle::idle(root, n, limit);
    }
    if side_by_side {
        return compare::compare(root, seconds, rounds.max(1));
    }
    if let Some(n) = console_of {
        return console::console(root, n, seconds);
    }
    if nodes {
        return cluster::cluster(root, seconds);
    }
    if let Some(revision) = upgrade_from {
        return upgrade::upgrade(root, &revision);
    }
    if log_queries {
        logs(root, &extra)?;
        return log_ingestion(root, &extra, seconds);
    }
    let server = start(root, &extra)?;
    create_function(&server, root, "noop")?;
    // Warm up one instance, then measure.
    server.send("POST", "/2015-03-31/functions/noop/invocations", &[], b"{}")?;
    std::thread::sleep(Duration::from_millis(200));
    let one = wrk(&server, "noop", 1, 1, seconds)?;
    let many = wrk(&server, "noop", 2, 8, seconds)?;
    let (mut init, mut e2e) = cold_starts(&server, "noop", cold)?;
    let mode = if extra.is_empty() {
        "sandboxed"
    } else {
        "no sandbox"
    };
    println!("## warden bench ({mode}; {seconds} s per wrk run; {cold} cold starts)");
    println!(
        "warm invoke, 1 connection:   p50 {}  p99 {}  {} invokes/s",
        pick(&one, "50%"),
        pick(&one, "99%"),
        pick(&one, "Requests/sec:")
    );
    println!(
        "warm invoke, 8 connections:  p50 {}  p99 {}  {} invokes/s",
        pick(&many, "50%"),
        pick(&many, "99%"),
        pick(&many, "Requests/sec:")
    );
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
