//! `cargo xtask bench --idle N`: N concurrent invocations of a function that sleeps 1 s
//! (so the instances are mostly idle), the memory each warm idle instance then costs on
//! the server and in its sandbox, and the same N invocations against a function with a
//! reserved concurrency, to see the limit held exactly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{agent, create_function_of, metric, percentile, rss_kib, start, wait_idle, Server};

/// What one caller saw: status, the error type of a refusal, and when (ms after the
/// callers were released) its request was answered.
struct Outcome {
    status: u16,
    error_type: String,
    answered_ms: f64,
}

/// `n` invocations of `function` (sleeping `ms`) from `n` threads released together,
/// while a sampler reads the function's `warden_concurrent_executions` gauge every 5 ms;
/// returns the outcomes and the highest value the gauge showed.
fn fire(server: &Server, function: &str, n: usize, ms: u64) -> Result<(Vec<Outcome>, f64)> {
    let payload = format!(r#"{{"action":"sleep","ms":{ms}}}"#);
    let path = format!("/2015-03-31/functions/{function}/invocations");
    let requests: Vec<http::Request<Vec<u8>>> = (0..n)
        .map(|_| server.signed("POST", &path, &[], payload.as_bytes()))
        .collect::<Result<_>>()?;
    let gauge = format!("warden_concurrent_executions{{function=\"{function}\"}} ");
    let done = std::sync::atomic::AtomicBool::new(false);
    let gate = std::sync::Barrier::new(n + 1);
    let (outcomes, peak) = std::thread::scope(|scope| -> Result<(Vec<Outcome>, f64)> {
        let sampler = scope.spawn(|| {
            let mut peak = 0f64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(v) = metric(server, &gauge) {
                    peak = peak.max(v);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        let handles: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let gate = &gate;
                scope.spawn(move || -> Result<(u16, String, Instant)> {
                    gate.wait();
                    let mut r = agent().run(request)?;
                    let at = Instant::now();
                    let status = r.status().as_u16();
                    let error_type = r
                        .headers()
                        .get("x-amzn-errortype")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let _ = r.body_mut().read_to_string();
                    Ok((status, error_type, at))
                })
            })
            .collect();
        gate.wait();
        let released = Instant::now();
        let mut outcomes = Vec::new();
        for h in handles {
            let (status, error_type, at) = h
                .join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))??;
            outcomes.push(Outcome {
                status,
                error_type,
                answered_ms: at.saturating_duration_since(released).as_secs_f64() * 1000.0,
            });
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler
            .join()
            .map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
        Ok((outcomes, peak))
    })?;
    Ok((outcomes, peak))
}

/// Every process below `root` in the process tree: pid and command name.
fn descendants(root: u32) -> Result<Vec<(u32, String)>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut names = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; the name may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let Some(ppid) = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        children.entry(ppid).or_default().push(pid);
        names.insert(pid, name);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            out.push((child, names.get(&child).cloned().unwrap_or_default()));
            stack.push(child);
        }
    }
    Ok(out)
}

/// The `Pss:` and `Rss:` of a process, in KiB, from `/proc/PID/smaps_rollup`.
fn pss_rss_kib(pid: u32) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    };
    Some((field("Pss:")?, field("Rss:")?))
}

/// The memory a process's memory cgroup is charged (cgroup v2 `memory.current`, or v1
/// `memory.usage_in_bytes`), with the cgroup's path.
fn cgroup_bytes(pid: u32) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let v1 = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| format!("/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"))
    });
    let v2 = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|path| format!("/sys/fs/cgroup{path}/memory.current"));
    for file in v1.into_iter().chain(v2) {
        if let Some(bytes) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            return Some((file, bytes));
        }
    }
    None
}

pub(super) fn idle(root: &Path, n: usize, limit: u32) -> Result<()> {
    // Each instance's limits count 640 MiB against the memory budget (128 MB and the
    // 512 MB `/tmp` charged to the same cgroup); the budget is a reservation of limits,
    // not of use, so it is raised to admit N instances of one function and `limit` of the
    // other. Instances stay warm for the whole run.
    let budget = format!("{}MiB", (n + limit as usize) * 640 + 1024);
    let server = start(
        root,
        &[
            "--memory-budget".to_owned(),
            budget.clone(),
            "--idle-timeout".to_owned(),
            "3600".to_owned(),
        ],
    )?;
    create_function_of(&server, root, "idle", 128)?;
    create_function_of(&server, root, "limited", 128)?;
    let pid = server.child.id();
    // The new packages' background scans end before the baseline is read.
    wait_idle(pid)?;
    let before: HashSet<u32> = descendants(pid)?.into_iter().map(|(p, _)| p).collect();
    let rss_before = rss_kib(pid)?;

    // (a) N at once, no limit but the account's.
    let (outcomes, peak) = fire(&server, "idle", n, 1000)?;
    let ok = outcomes.iter().filter(|o| o.status == 200).count();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.status != 200) {
        *failures
            .entry(format!("{} {}", o.status, o.error_type))
            .or_default() += 1;
    }
    let mut answered: Vec<f64> = outcomes.iter().map(|o| o.answered_ms).collect();
    println!(
        "## warden bench --idle {n} (128 MB, each invocation sleeps 1 s; --memory-budget {budget})"
    );
    println!(
        "(a) {ok} of {n} succeeded; failures: {failures:?}; at most {peak} running at once (the gauge, sampled every 5 ms)"
    );
    println!(
        "    answered p50 {:.0} ms  p99 {:.0} ms  last {:.0} ms after the callers were released",
        percentile(&mut answered, 0.5),
        percentile(&mut answered, 0.99),
        percentile(&mut answered, 1.0)
    );

    // (c) The instances are now warm and idle: what each costs.
    std::thread::sleep(Duration::from_secs(2));
    wait_idle(pid)?;
    let idle_instances = metric(&server, "warden_idle_instances ").unwrap_or(f64::NAN);
    let rss_after = rss_kib(pid)?;
    let new: Vec<(u32, String)> = descendants(pid)?
        .into_iter()
        .filter(|(p, _)| !before.contains(p))
        .collect();
    let mut by_name: BTreeMap<String, (usize, f64, f64)> = BTreeMap::new();
    let mut cgroups: BTreeMap<String, u64> = BTreeMap::new();
    let server_cgroup = cgroup_bytes(pid).map(|(path, _)| path);
    for (p, name) in &new {
        if let Some((pss, rss)) = pss_rss_kib(*p) {
            let e = by_name.entry(name.clone()).or_default();
            e.0 += 1;
            e.1 += pss;
            e.2 += rss;
        }
        if let Some((path, bytes)) = cgroup_bytes(*p) {
            if Some(&path) != server_cgroup.as_ref() {
                cgroups.insert(path, bytes);
            }
        }
    }
    let instances = if idle_instances.is_finite() && idle_instances > 0.0 {
        idle_instances
    } else {
        ok as f64
    };
    let pss_total: f64 = by_name.values().map(|v| v.1).sum();
    let cgroup_total: u64 = cgroups.values().sum();
    println!(
        "(c) {instances} warm idle instances (warden_idle_instances); server RSS {:.0} MiB before, {:.0} MiB after: {:.1} KiB per instance",
        rss_before / 1024.0,
        rss_after / 1024.0,
        (rss_after - rss_before) / instances
    );
    println!(
        "    sandbox side: {} new processes under the server, PSS {:.0} KiB per instance; {} instance cgroups charged {:.0} KiB per instance",
        new.len(),
        pss_total / instances,
        cgroups.len(),
        cgroup_total as f64 / 1024.0 / instances
    );
    for (name, (count, pss, rss)) in &by_name {
        println!(
            "    {count:>5} x {name:<16} PSS {:>7.0} KiB each  RSS {:>7.0} KiB each",
            pss / *count as f64,
            rss / *count as f64
        );
    }

    // (b) The same N against a function with a reserved concurrency of `limit`.
    let mut r = server.send(
        "PUT",
        "/2017-10-31/functions/limited/concurrency",
        &[],
        format!(r#"{{"ReservedConcurrentExecutions":{limit}}}"#).as_bytes(),
    )?;
    if r.status() != 200 {
        bail!(
            "PutFunctionConcurrency: {} {}",
            r.status(),
            r.body_mut().read_to_string()?
        );
    }
    let (outcomes, peak) = fire(&server, "limited", n, 1000)?;
    let ok: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 200).collect();
    let throttled: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status == 429 && o.error_type.starts_with("TooManyRequestsException"))
        .collect();
    let mut other: BTreeMap<String, usize> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| {
        o.status != 200
            && !(o.status == 429 && o.error_type.starts_with("TooManyRequestsException"))
    }) {
        *other
            .entry(format!("{} {}", o.status, o.error_type))
            .or_default() += 1;
    }
    let first_done = ok
        .iter()
        .map(|o| o.answered_ms)
        .fold(f64::INFINITY, f64::min);
    let last_throttle = throttled.iter().map(|o| o.answered_ms).fold(0.0, f64::max);
    println!("(b) reserved concurrency {limit}: {} succeeded, {} throttled (429 TooManyRequestsException), other: {other:?}; at most {peak} running at once",
        ok.len(),
        throttled.len()
    );
    println!(
        "    the last throttle was answered {last_throttle:.0} ms after release, the first success {first_done:.0} ms: {}",
        if last_throttle < first_done {
            format!(
                "every refusal came while {limit} were running, so exactly {limit} may succeed: {}",
                if ok.len() == limit as usize {
                    "held exactly"
                } else {
                    "NOT HELD"
                }
            )
        } else {
            "slots freed during the burst, so more than the limit may succeed over time".to_owned()
        }
    );
    if peak > f64::from(limit) {
        bail!("the gauge showed {peak} running at once, above the limit of {limit}");
    }
    Ok(())
}
