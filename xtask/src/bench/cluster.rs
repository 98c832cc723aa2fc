//! `cargo xtask bench --cluster`: what sharing a store costs and what several nodes give.
//!
//! In one run, on the same machine: one node on the embedded store (SQLite) beside one on
//! PostgreSQL (warm invokes with the database transactions they cause, control-plane
//! writes, async enqueues), then three PostgreSQL nodes invoked at once beside one. The
//! PostgreSQL and NATS servers are real ones started for the run (as the tests start
//! them), on loopback.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{create_function, percentile, pick, wrk, Server};

/// A store for the nodes of one measurement: the embedded one, or a fresh PostgreSQL
/// database and a NATS server.
pub(super) enum Backend {
    Sqlite,
    Postgres {
        store: String,
        bus: String,
        master_key: tempfile::TempDir,
    },
}

impl Backend {
    pub(super) fn postgres(nats: &warden_testservers::Nats) -> Result<Backend> {
        let store = warden_testservers::Postgres::shared()
            .fresh_database()
            .context("creating a database")?;
        let master_key = super::private_dir()?;
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(3));
        let path = master_key.path().join("master.key");
        std::fs::write(&path, key)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(Backend::Postgres {
            store,
            bus: nats.url(),
            master_key,
        })
    }

    /// The database's URL (PostgreSQL only).
    pub(super) fn store_url(&self) -> Option<&str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres { store, .. } => Some(store),
        }
    }

    /// Starts node `name`; a node after the first of a PostgreSQL backend is given the
    /// first's admin credentials (identity is shared).
    fn node(&self, root: &Path, name: &str, first: Option<&Server>) -> Result<Server> {
        let dir = super::private_dir()?;
        match self {
            Backend::Sqlite => super::start_in(root, &[], &[], dir),
            Backend::Postgres { .. } => {
                self.node_of(&root.join("target/release/warden"), name, first, &[], dir)
            }
        }
    }

    /// Starts node `name` of a PostgreSQL backend from the binary `warden` on the data
    /// directory `dir` (a new one, or one a stopped node left), with `extra` arguments.
    pub(super) fn node_of(
        &self,
        warden: &Path,
        name: &str,
        first: Option<&Server>,
        extra: &[String],
        dir: tempfile::TempDir,
    ) -> Result<Server> {
        let Backend::Postgres {
            store,
            bus,
            master_key,
        } = self
        else {
            bail!("only a PostgreSQL backend has nodes of a chosen binary");
        };
        if let Some(first) = first {
            std::fs::copy(
                first._dir.path().join("credentials"),
                dir.path().join("credentials"),
            )?;
        }
        let key = master_key.path().join("master.key");
        let mut args = vec![
            "--node-id".to_owned(),
            name.to_owned(),
            "--master-key-file".to_owned(),
            key.display().to_string(),
        ];
        args.extend_from_slice(extra);
        super::start_program(
            warden,
            &[],
            &args,
            dir,
            &[("WARDEN_STORE", store), ("WARDEN_BUS", bus)],
        )
    }

    /// Transactions committed in this backend's database so far (PostgreSQL only).
    fn commits(&self) -> Result<Option<i64>> {
        let Backend::Postgres { store, .. } = self else {
            return Ok(None);
        };
        let mut client = postgres::Client::connect(store, postgres::NoTls)?;
        // The statistics are a snapshot per transaction and flushed lazily: ask for fresh
        // ones.
        client.batch_execute("SELECT pg_stat_clear_snapshot()")?;
        let row = client.query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )?;
        Ok(Some(row.get(0)))
    }
}

/// One backend's single-node numbers.
struct Single {
    one: String,
    many: String,
    /// Invokes during the one-connection run, database commits during it, and commits
    /// during as long a time with no invoke (the node's own polling).
    commits: Option<(f64, i64, i64)>,
    writes: Vec<f64>,
    enqueue_per_s: f64,
}

fn single(root: &Path, backend: &Backend, seconds: u32) -> Result<Single> {
    let server = backend.node(root, "solo", None)?;
    create_function(&server, root, "noop")?;
    server.send("POST", "/2015-03-31/functions/noop/invocations", &[], b"{}")?;
    // Statistics reach pg_stat_database within a second of a transaction's end: each
    // count is read after as long a pause, so that both windows are equally long.
    let settle = Duration::from_millis(1500);
    std::thread::sleep(settle);
    let quiet_from = backend.commits()?;
    std::thread::sleep(Duration::from_secs(u64::from(seconds)));
    std::thread::sleep(settle);
    let before = backend.commits()?;
    let one = wrk(&server, "noop", 1, 1, seconds)?;
    std::thread::sleep(settle);
    let after = backend.commits()?;
    let invokes: f64 = pick(&one, "Requests/sec:").parse().unwrap_or(0.0) * f64::from(seconds);
    let commits = match (quiet_from, before, after) {
        (Some(q), Some(b), Some(a)) => Some((invokes, a - b, b - q)),
        _ => None,
    };
    let many = wrk(&server, "noop", 2, 8, seconds)?;
    let writes = config_writes(&server, 200)?;
    let enqueue_per_s = enqueues(&server, 8, 250)?;
    Ok(Single {
        one,
        many,
        commits,
        writes,
        enqueue_per_s,
    })
}

/// `n` `UpdateFunctionConfiguration` calls one after another; each one's latency in ms.
fn config_writes(server: &Server, n: usize) -> Result<Vec<f64>> {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let body = serde_json::json!({ "Description": format!("write {i}") }).to_string();
        let start = Instant::now();
        let mut r = server.send(
            "PUT",
            "/2015-03-31/functions/noop/configuration",
            &[],
            body.as_bytes(),
        )?;
        took.push(start.elapsed().as_secs_f64() * 1e3);
        if r.status() != 200 {
            bail!(
                "a configuration write failed: {}",
                r.body_mut().read_to_string()?
            );
        }
    }
    Ok(took)
}

/// `threads` callers each queue `each` async events (`Invoke` with `Event`); events
/// acknowledged per second.
fn enqueues(server: &Server, threads: usize, each: usize) -> Result<f64> {
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let callers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    for _ in 0..each {
                        let r = server.send(
                            "POST",
                            "/2015-03-31/functions/noop/invocations",
                            &[("x-amz-invocation-type", "Event")],
                            b"{}",
                        )?;
                        if r.status() != 202 {
                            bail!("an async invoke was not accepted: {}", r.status());
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for c in callers {
            c.join()
                .map_err(|_| anyhow::anyhow!("a caller panicked"))??;
        }
        Ok(())
    })?;
    Ok((threads * each) as f64 / start.elapsed().as_secs_f64())
}

/// Requests per second of `wrk` runs against every node at once, `connections` each.
fn at_once(nodes: &[&Server], connections: u32, seconds: u32) -> Result<Vec<f64>> {
    std::thread::scope(|scope| {
        let runs: Vec<_> = nodes
            .iter()
            .map(|node| scope.spawn(move || wrk(node, "noop", 1, connections, seconds)))
            .collect();
        runs.into_iter()
            .map(|r| {
                let text = r.join().map_err(|_| anyhow::anyhow!("wrk panicked"))??;
                Ok(pick(&text, "Requests/sec:").parse().unwrap_or(0.0))
            })
            .collect()
    })
}

/// The newest `pgbench` of the installed PostgreSQL versions.
fn pgbench_program() -> Result<std::path::PathBuf> {
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let program = e.path().join("bin/pgbench");
            program.is_file().then_some((version, program))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .context("no pgbench under /usr/lib/postgresql")
}

/// PostgreSQL's own capacity on this machine, as its benchmark measures it on a fresh
/// database: transactions per second of `pgbench -N` (an update, a select and an insert
/// per transaction, close to a Warden write) and `-S` (one indexed select), 8 clients.
fn pgbench(seconds: u32) -> Result<(f64, f64)> {
    let program = pgbench_program()?;
    let url = warden_testservers::Postgres::shared().fresh_database()?;
    let init = std::process::Command::new(&program)
        .args(["-i", "-q", "-s", "10", &url])
        .output()?;
    if !init.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let run = |mode: &str| -> Result<f64> {
        let out = std::process::Command::new(&program)
            .args([mode, "-c", "8", "-j", "2", "-T", &seconds.to_string(), &url])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("pgbench {mode} printed no tps: {text}"))
    };
    Ok((run("-N")?, run("-S")?))
}

pub fn cluster(root: &Path, seconds: u32) -> Result<()> {
    let nats = warden_testservers::Nats::start().context("starting nats-server")?;
    let sqlite = single(root, &Backend::Sqlite, seconds)?;
    let pg_backend = Backend::postgres(&nats)?;
    let pg = single(root, &pg_backend, seconds)?;

    // Three nodes on one database, beside one of them alone.
    let fleet = Backend::postgres(&nats)?;
    let a = fleet.node(root, "a", None)?;
    let b = fleet.node(root, "b", Some(&a))?;
    let c = fleet.node(root, "c", Some(&a))?;
    create_function(&a, root, "noop")?;
    for node in [&a, &b, &c] {
        // Each node fetches the code and starts its instance before it is measured.
        node.send("POST", "/2015-03-31/functions/noop/invocations", &[], b"{}")?;
    }
    std::thread::sleep(Duration::from_millis(500));
    // As many connections to each node as to the one alone: every node has the same
    // instances' memory to hold (the host memory budget is per node).
    let alone = at_once(&[&a], 8, seconds)?;
    let three = at_once(&[&a, &b, &c], 8, seconds)?;
    drop((a, b, c));
    let (writes_tps, reads_tps) = pgbench(seconds)?;

    println!("## warden bench --cluster ({seconds} s per wrk run)");
    for (name, s) in [("SQLite", &sqlite), ("PostgreSQL", &pg)] {
        println!(
            "{name:>10}: warm 1 conn p50 {} p99 {} {} /s; 8 conns p50 {} p99 {} {} /s",
            pick(&s.one, "50%"),
            pick(&s.one, "99%"),
            pick(&s.one, "Requests/sec:"),
            pick(&s.many, "50%"),
            pick(&s.many, "99%"),
            pick(&s.many, "Requests/sec:"),
        );
        if let Some((invokes, commits, quiet)) = s.commits {
            println!(
                "{:>10}  database commits during the 1-conn run: {commits} for {invokes:.0} invokes; as long without invokes: {quiet}",
                ""
            );
        }
        let mut writes = s.writes.clone();
        println!(
            "{:>10}  UpdateFunctionConfiguration: p50 {:.2} ms p99 {:.2} ms; async enqueue (8 callers): {:.0} /s",
            "",
            percentile(&mut writes, 0.5),
            percentile(&mut writes, 0.99),
            s.enqueue_per_s
        );
    }
    println!(
        "three nodes, 8 conns each: {:.0} /s in all ({}); one of them alone, 8 conns: {:.0} /s",
        three.iter().sum::<f64>(),
        three
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" + "),
        alone.iter().sum::<f64>()
    );
    println!(
        "PostgreSQL alone (pgbench, 8 clients): -N {writes_tps:.0} tps, -S {reads_tps:.0} tps"
    );
    Ok(())
}
