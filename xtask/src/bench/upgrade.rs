//! `cargo xtask bench --upgrade REVISION`: a rolling upgrade rehearsed with two builds.
//!
//! Builds `warden` at REVISION (an earlier release, from a git worktree of this
//! repository, sharing the target directory's compiled dependencies) beside the current
//! release build, and runs, on a fresh PostgreSQL database and a NATS server started for
//! the run:
//!
//! 1. node `a` of the old build alone, which makes the schema and the bootstrap admin, and
//!    a function created through it;
//! 2. node `b` of the new build joining it (migrating the schema as its release does);
//! 3. both side by side: synchronous invokes through each, async events accepted by each
//!    (the old build queues them in PostgreSQL, the new one in JetStream) each run once,
//!    and a configuration change made through either seen by the other;
//! 4. node `a` replaced by the new build on its own data directory, and the same checks.
//!
//! Every check is a real call through the API; the run stops at the first that fails. It
//! is a rehearsal, not part of the test suite: the suite builds one revision.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use super::cluster::Backend;
use super::Server;

/// How long a check waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(60);

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn git(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").current_dir(root).args(args).output()?;
    ensure!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Builds `warden` at `revision` and returns where its binary was kept.
fn build_old(root: &Path, revision: &str) -> Result<PathBuf> {
    let commit = git(
        root,
        &["rev-parse", "--short=12", &format!("{revision}^{{commit}}")],
    )
    .with_context(|| format!("{revision} is not a commit of this repository"))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let kept = target.join(format!("upgrade/warden-{commit}"));
    if kept.exists() {
        return Ok(kept);
    }
    let source = target.join(format!("upgrade/src-{commit}"));
    if !source.exists() {
        git(
            root,
            &[
                "worktree",
                "add",
                "--detach",
                &source.display().to_string(),
                &commit,
            ],
        )?;
    }
    // The same target directory: the dependencies both revisions share are compiled
    // once. Its `release/warden` is the old build's until the current one is built again.
    let built = Command::new(cargo())
        .current_dir(&source)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "-p", "warden", "--bin", "warden"])
        .status()?;
    ensure!(built.success(), "the build of {commit} failed");
    std::fs::copy(target.join("release/warden"), &kept)?;
    git(
        root,
        &[
            "worktree",
            "remove",
            "--force",
            &source.display().to_string(),
        ],
    )?;
    Ok(kept)
}

/// Builds the current `warden` again, so that `target/release/warden` is this revision's.
fn rebuild_current(root: &Path, old: &Path) -> Result<PathBuf> {
    let built = Command::new(cargo())
        .current_dir(root)
        .args(["build", "--release", "-p", "warden", "--bin", "warden"])
        .status()?;
    ensure!(built.success(), "the current build failed");
    let current = root.join("target/release/warden");
    ensure!(
        std::fs::read(&current)? != std::fs::read(old)?,
        "target/release/warden is still the old build"
    );
    Ok(current)
}

/// The checks passed so far, for the report.
#[derive(Default)]
struct Steps(Vec<(String, Duration)>);

impl Steps {
    fn check(&mut self, what: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
        let start = Instant::now();
        f().with_context(|| format!("check failed: {what}"))?;
        let took = start.elapsed();
        eprintln!("ok  {what} ({} ms)", took.as_millis());
        self.0.push((what.to_owned(), took));
        Ok(())
    }
}

/// How many times each tag's event ran, by the witness file the function appends to.
fn runs(witness: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in std::fs::read_to_string(witness).unwrap_or_default().lines() {
        if let Some(tag) = line.split_whitespace().nth(1) {
            *seen.entry(tag.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

fn call(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Result<(u16, String)> {
    let mut r = server.send(method, path, headers, body.to_string().as_bytes())?;
    Ok((r.status().as_u16(), r.body_mut().read_to_string()?))
}

fn invoke(server: &Server, payload: &Value) -> Result<Value> {
    let (status, body) = call(
        server,
        "POST",
        "/2015-03-31/functions/worker/invocations",
        &[],
        payload,
    )?;
    ensure!(status == 200, "invoke answered {status}: {body}");
    Ok(serde_json::from_str(&body)?)
}

fn enqueue(server: &Server, tag: &str) -> Result<()> {
    let (status, body) = call(
        server,
        "POST",
        "/2015-03-31/functions/worker/invocations",
        &[("X-Amz-Invocation-Type", "Event")],
        &json!({"action": "append", "tag": tag}),
    )?;
    ensure!(status == 202, "an async invoke answered {status}: {body}");
    Ok(())
}

fn set_stage(server: &Server, witness: &Path, stage: &str) -> Result<()> {
    let (status, body) = call(
        server,
        "PUT",
        "/2015-03-31/functions/worker/configuration",
        &[],
        &json!({"Environment": {"Variables": {
            "FIXTURE_WITNESS": witness.display().to_string(),
            "STAGE": stage,
        }}}),
    )?;
    ensure!(
        status == 200,
        "UpdateFunctionConfiguration answered {status}: {body}"
    );
    Ok(())
}

/// Waits until `server` reports `stage` in the function's configuration and the function
/// it runs sees it.
fn sees_stage(server: &Server, stage: &str) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = call(
            server,
            "GET",
            "/2015-03-31/functions/worker/configuration",
            &[],
            &json!({}),
        )?;
        ensure!(
            status == 200,
            "GetFunctionConfiguration answered {status}: {body}"
        );
        let config: Value = serde_json::from_str(&body)?;
        let configured = config["Environment"]["Variables"]["STAGE"] == stage;
        if configured && invoke(server, &json!({"action": "env"}))?["STAGE"] == stage {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "never saw STAGE={stage}: {config}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Queues `tags` alternately through `nodes`, then waits until each ran exactly once.
fn async_round(witness: &Path, nodes: &[&Server], tags: &[String]) -> Result<()> {
    for (i, tag) in tags.iter().enumerate() {
        enqueue(nodes[i % nodes.len()], tag)?;
    }
    each_runs_once(witness, tags)
}

/// Waits until each of `tags` ran, then a little longer, and checks that none ran twice.
fn each_runs_once(witness: &Path, tags: &[String]) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = runs(witness);
        let missing: Vec<_> = tags.iter().filter(|t| !seen.contains_key(*t)).collect();
        if missing.is_empty() {
            break;
        }
        ensure!(Instant::now() < deadline, "events never ran: {missing:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Time for a second run of any of them, had there been one.
    std::thread::sleep(Duration::from_secs(3));
    let seen = runs(witness);
    let twice: Vec<_> = tags.iter().filter(|t| seen[*t] != 1).collect();
    ensure!(twice.is_empty(), "events ran more than once: {twice:?}");
    Ok(())
}

fn schema(store: &str) -> Result<String> {
    let mut db = postgres::Client::connect(store, postgres::NoTls)?;
    let rows = db.query(
        "SELECT track, version, compatible_from FROM warden_schema ORDER BY track",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "{} {} (from {})",
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                r.get::<_, i64>(2)
            )
        })
        .collect::<Vec<_>>()
        .join(", "))
}

/// Stops `server` and keeps its data directory.
fn stop_keeping_data(mut server: Server) -> Result<tempfile::TempDir> {
    let data = std::mem::replace(&mut server._dir, tempfile::tempdir()?);
    drop(server);
    Ok(data)
}

pub fn upgrade(root: &Path, revision: &str) -> Result<()> {
    let old = build_old(root, revision)?;
    let current = rebuild_current(root, &old)?;
    let nats = warden_testservers::Nats::start().context("starting nats-server")?;
    let backend = Backend::postgres(&nats)?;
    let store = backend
        .store_url()
        .context("a PostgreSQL backend")?
        .to_owned();
    let witness_file = tempfile::NamedTempFile::new()?;
    let witness = witness_file.path();
    let started = Instant::now();
    let mut r = Steps::default();
    // The witness file is the host's: the queue and the configuration, not isolation,
    // are rehearsed.
    let extra = vec!["--insecure-no-sandbox".to_owned()];

    let a = backend.node_of(&old, "a", None, &extra, super::private_dir()?)?;
    let schema_old = schema(&store)?;
    r.check("the old node creates a function and invokes it", || {
        let env = json!({"FIXTURE_WITNESS": witness.display().to_string(), "STAGE": "one"});
        super::create_fixture(&a, root, "worker", 512, env)?;
        ensure!(invoke(&a, &json!({"action": "echo", "n": 1}))?["n"] == 1);
        Ok(())
    })?;

    let b = backend.node_of(&current, "b", Some(&a), &extra, super::private_dir()?)?;
    let schema_mixed = schema(&store)?;
    r.check("side by side: each node invokes the function", || {
        for node in [&a, &b] {
            ensure!(invoke(node, &json!({"action": "echo", "n": 2}))?["n"] == 2);
        }
        Ok(())
    })?;
    r.check(
        "side by side: 40 async events accepted by both nodes each run once",
        || {
            let tags: Vec<String> = (0..40).map(|i| format!("mixed{i}")).collect();
            async_round(witness, &[&a, &b], &tags)
        },
    )?;
    r.check(
        "side by side: a change through the new node reaches the old",
        || {
            set_stage(&b, witness, "two")?;
            sees_stage(&a, "two")
        },
    )?;
    r.check(
        "side by side: a change through the old node reaches the new",
        || {
            set_stage(&a, witness, "three")?;
            sees_stage(&b, "three")
        },
    )?;

    // Events the old node accepts just before it stops wait in PostgreSQL for the new
    // build to move them into JetStream.
    let tags: Vec<String> = (0..10).map(|i| format!("handover{i}")).collect();
    for tag in &tags {
        enqueue(&a, tag)?;
    }
    let data = stop_keeping_data(a)?;
    let a = backend.node_of(&current, "a", None, &extra, data)?;
    let schema_new = schema(&store)?;
    r.check(
        "upgraded: the events the old node accepted before it stopped each run once",
        || each_runs_once(witness, &tags),
    )?;
    r.check(
        "upgraded: the node keeps its configuration and invokes",
        || {
            sees_stage(&a, "three")?;
            ensure!(invoke(&a, &json!({"action": "echo", "n": 3}))?["n"] == 3);
            Ok(())
        },
    )?;
    r.check(
        "upgraded: 20 async events accepted by both nodes each run once",
        || {
            let tags: Vec<String> = (0..20).map(|i| format!("new{i}")).collect();
            async_round(witness, &[&a, &b], &tags)
        },
    )?;
    drop((a, b));

    println!(
        "## warden bench --upgrade {revision} ({} s in all)",
        started.elapsed().as_secs()
    );
    println!("old build: {revision} ({})", old.display());
    println!("schema after the old node: {schema_old}");
    println!("schema with both:          {schema_mixed}");
    println!("schema after the upgrade:  {schema_new}");
    for (what, took) in &r.0 {
        println!("- ok: {what} ({} ms)", took.as_millis());
    }
    let total: usize = runs(witness).values().sum();
    println!("async events run: {total}, each once");
    if total != 70 {
        bail!("expected 70 runs of async events, the witness holds {total}");
    }
    Ok(())
}
