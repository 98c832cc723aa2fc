//! `cargo xtask bench --compare`: the warm echo on Warden beside the closest peer,
//! `cargo lambda watch --release` serving the same `lambda_runtime` function (the
//! `warden-fixtures` `fixture` binary), under the same `wrk` settings in one run, and
//! beside the floor: `warden-fixtures`' `floor` relay, which carries an Invoke to the same
//! function and back and checks nothing, so that what Warden's checks and bookkeeping
//! cost shows as its distance from the floor.
//!
//! Every configuration is measured once per round, the rounds alternate their order, and
//! each ratio is taken between two runs of the same round, measured back to back, so that
//! a machine shared with other work moves both sides of a ratio alike. The ratio reported
//! is the median of the rounds' ratios.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{create_function_of, percentile, pick, start, wrk_script};

/// The peer, pinned: a test-only tool, installed only when `--compare` is asked for.
const CARGO_LAMBDA: &str = "cargo-lambda==1.9.2";

/// `cargo-lambda`, from its Python wheel (which carries the binary) in a venv of its own
/// beside the other test tools; installed on first use.
fn cargo_lambda(root: &Path) -> Result<PathBuf> {
    let venv = crate::python_tools_dir(root).join("cargo-lambda-venv");
    let bin = venv.join("bin/cargo-lambda");
    let works = |bin: &Path| {
        Command::new(bin)
            .args(["lambda", "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !works(&bin) {
        crate::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        crate::run(Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary",
            ":all:",
            CARGO_LAMBDA,
        ]))?;
        if !works(&bin) {
            bail!("installing {CARGO_LAMBDA} failed");
        }
    }
    Ok(bin)
}

/// A running `cargo lambda watch`, in a process group of its own (it runs cargo and the
/// function as its children), stopped with the whole group on drop.
struct Peer {
    child: Child,
    /// The Invoke URL of the fixture.
    url: String,
    _log: tempfile::NamedTempFile,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
        // Whatever ignored SIGTERM (the function it started) goes with the group.
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running `floor` relay with its instances; it stops (and stops them) when its
/// standard input closes.
struct Floor {
    child: Child,
    url: String,
}

impl Drop for Floor {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Starts the `floor` relay with `instances` instances of the fixture.
fn start_floor(root: &Path, instances: u32) -> Result<Floor> {
    use std::io::BufRead as _;
    let mut child = Command::new(root.join("target/release/floor"))
        .arg("--function")
        .arg(root.join("target/release/fixture"))
        .args(["--instances", &instances.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the floor relay")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("invoke ")
        .with_context(|| format!("the floor relay said {line:?}"))?;
    Ok(Floor {
        url: format!("{base}/2015-03-31/functions/fixture/invocations"),
        child,
    })
}

/// Starts `cargo lambda watch --release` on the fixture with `concurrency` instances at
/// most, on a free loopback port, and waits for its first answer (it builds first).
fn start_peer(root: &Path, bin: &Path, concurrency: u32) -> Result<Peer> {
    let port = free_port()?;
    let log = tempfile::NamedTempFile::new()?;
    let mut command = Command::new(bin);
    command
        .current_dir(root)
        .args([
            "lambda",
            "watch",
            "--release",
            "--ignore-changes",
            "--package",
            "warden-fixtures",
            "--bin",
            "fixture",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
            "--concurrency",
            &concurrency.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(log.reopen()?)
        .stderr(log.reopen()?)
        .process_group(0);
    let child = command.spawn().context("starting cargo lambda watch")?;
    let peer = Peer {
        child,
        url: format!("http://127.0.0.1:{port}/2015-03-31/functions/fixture/invocations"),
        _log: log,
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let answer = super::agent()
            .post(&peer.url)
            .send("{}")
            .map(|r| r.status().as_u16());
        if let Ok(200) = answer {
            return Ok(peer);
        }
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(peer._log.path()).unwrap_or_default();
            bail!("cargo lambda watch did not answer within 600 s ({answer:?}):\n{text}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A `wrk` Lua script for a POST of `{}` with `headers`.
fn script(headers: &[(String, String)]) -> Result<tempfile::NamedTempFile> {
    let file = tempfile::NamedTempFile::new()?;
    let mut lua = "wrk.method = \"POST\"\nwrk.body = \"{}\"\n".to_owned();
    for (k, v) in headers {
        lua.push_str(&format!("wrk.headers[\"{k}\"] = \"{v}\"\n"));
    }
    std::fs::write(file.path(), lua)?;
    Ok(file)
}

/// A `wrk` latency (`458.00us`, `70.50ms`, `1.20s`) in microseconds.
fn micros(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix("s") {
        (n, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn show_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// Warden's function of this MemorySize.
    Warden(u32),
    /// The peer at this `--concurrency`.
    Peer(u32),
    /// The floor relay with this many instances.
    Floor(u32),
}

struct Config {
    side: Side,
    connections: u32,
}

impl Config {
    fn label(&self) -> String {
        let who = match self.side {
            Side::Warden(mb) => format!("Warden, {mb} MB"),
            Side::Peer(1) => "peer, default --concurrency 1".to_owned(),
            Side::Peer(c) => format!("peer, --concurrency {c}"),
            Side::Floor(1) => "floor, 1 instance".to_owned(),
            Side::Floor(n) => format!("floor, {n} instances"),
        };
        let plural = if self.connections == 1 { "" } else { "s" };
        format!("{who}, {} connection{plural}", self.connections)
    }
}

/// One `wrk` run: p50 and p99 in µs, and invokes per second.
#[derive(Clone, Copy)]
struct Sample {
    p50: f64,
    p99: f64,
    rps: f64,
}

pub(super) fn compare(root: &Path, seconds: u32, rounds: usize) -> Result<()> {
    let bin = cargo_lambda(root)?;
    let version = Command::new(&bin).args(["lambda", "--version"]).output()?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    // One Warden server (`--cpu-scaling lambda`, the default) with the fixture at the
    // default 128 MB and at 1,769 MB (one full CPU on Lambda's scale).
    let server = start(root, &[])?;
    create_function_of(&server, root, "echo128", 128)?;
    create_function_of(&server, root, "echo1769", 1769)?;
    let peer_one = start_peer(root, &bin, 1)?;
    let peer_eight = start_peer(root, &bin, 8)?;
    let floor_one = start_floor(root, 1)?;
    let floor_eight = start_floor(root, 8)?;
    let configs = [
        Config {
            side: Side::Warden(128),
            connections: 1,
        },
        Config {
            side: Side::Peer(1),
            connections: 1,
        },
        Config {
            side: Side::Warden(1769),
            connections: 1,
        },
        Config {
            side: Side::Warden(128),
            connections: 8,
        },
        Config {
            side: Side::Peer(1),
            connections: 8,
        },
        Config {
            side: Side::Peer(8),
            connections: 8,
        },
        Config {
            side: Side::Warden(1769),
            connections: 8,
        },
        Config {
            side: Side::Floor(1),
            connections: 1,
        },
        Config {
            side: Side::Floor(8),
            connections: 8,
        },
    ];
    let measure = |c: &Config, seconds: u32| -> Result<Sample> {
        let threads = c.connections.min(2);
        let (url, headers) = match c.side {
            Side::Warden(mb) => {
                // Signed afresh for each run: a signature is good for 5 minutes.
                let path = format!("/2015-03-31/functions/echo{mb}/invocations");
                let signed = server.signed("POST", &path, &[], b"{}")?;
                let headers = signed
                    .headers()
                    .iter()
                    .map(|(k, v)| Ok((k.as_str().to_owned(), v.to_str()?.to_owned())))
                    .collect::<Result<Vec<_>>>()?;
                (format!("{}{path}", server.endpoint), headers)
            }
            Side::Peer(1) => (peer_one.url.clone(), Vec::new()),
            Side::Peer(_) => (peer_eight.url.clone(), Vec::new()),
            Side::Floor(1) => (floor_one.url.clone(), Vec::new()),
            Side::Floor(_) => (floor_eight.url.clone(), Vec::new()),
        };
        let lua = script(&headers)?;
        let text = wrk_script(lua.path(), &url, threads, c.connections, seconds)?;
        let field = |p: &str| micros(&pick(&text, p)).with_context(|| format!("wrk {p}: {text}"));
        Ok(Sample {
            p50: field("50%")?,
            p99: field("99%")?,
            rps: pick(&text, "Requests/sec:")
                .parse()
                .with_context(|| format!("wrk throughput: {text}"))?,
        })
    };
    // Warm-up: every instance each configuration will use is started before measuring.
    for c in &configs {
        measure(c, 1)?;
    }
    println!(
        "## warden bench --compare ({seconds} s per wrk run, {rounds} rounds; peer: {version})"
    );
    println!("Warden's requests are SigV4-signed and verified; the peer's and the floor's are unsigned (they check nothing).");
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); configs.len()];
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..configs.len()).collect()
        } else {
            (0..configs.len()).rev().collect()
        };
        for i in order {
            let s = measure(&configs[i], seconds)?;
            println!(
                "round {}: {:<52} p50 {:>9}  p99 {:>9}  {:>8.0} invokes/s",
                round + 1,
                configs[i].label(),
                show_us(s.p50),
                show_us(s.p99),
                s.rps
            );
            samples[i].push(s);
        }
    }
    let median = |v: &mut Vec<f64>| percentile(v, 0.5);
    println!();
    println!("| configuration | p50 | p99 | invokes/s |");
    println!("| --- | --- | --- | --- |");
    for (c, s) in configs.iter().zip(&samples) {
        println!(
            "| {} | {} | {} | {:.0} |",
            c.label(),
            show_us(median(&mut s.iter().map(|s| s.p50).collect())),
            show_us(median(&mut s.iter().map(|s| s.p99).collect())),
            median(&mut s.iter().map(|s| s.rps).collect())
        );
    }
    println!();
    println!("Warden / the other side, the median of the rounds' ratios (latency: below 1 is Warden faster; throughput: above 1 is):");
    println!("| Warden | other side | p50 | p99 | invokes/s |");
    println!("| --- | --- | --- | --- | --- |");
    let find = |side: Side, connections: u32| {
        configs
            .iter()
            .position(|c| c.side == side && c.connections == connections)
            .expect("a configured pair")
    };
    let pairs = [
        (find(Side::Warden(128), 1), find(Side::Peer(1), 1)),
        (find(Side::Warden(1769), 1), find(Side::Peer(1), 1)),
        (find(Side::Warden(128), 8), find(Side::Peer(1), 8)),
        (find(Side::Warden(1769), 8), find(Side::Peer(1), 8)),
        (find(Side::Warden(128), 8), find(Side::Peer(8), 8)),
        (find(Side::Warden(1769), 8), find(Side::Peer(8), 8)),
        (find(Side::Warden(1769), 1), find(Side::Floor(1), 1)),
        (find(Side::Warden(1769), 8), find(Side::Floor(8), 8)),
    ];
    for (w, p) in pairs {
        let ratio = |f: fn(&Sample) -> f64| {
            let mut r: Vec<f64> = samples[w]
                .iter()
                .zip(&samples[p])
                .map(|(a, b)| f(a) / f(b))
                .collect();
            percentile(&mut r, 0.5)
        };
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} |",
            configs[w].label(),
            configs[p].label(),
            ratio(|s| s.p50),
            ratio(|s| s.p99),
            ratio(|s| s.rps)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::micros;

    #[test]
    fn wrk_latencies_are_read_in_microseconds() {
        assert_eq!(micros("458.00us"), Some(458.0));
        assert_eq!(micros("70.50ms"), Some(70_500.0));
        assert_eq!(micros("1.20s"), Some(1_200_000.0));
        assert_eq!(micros("?"), None);
    }
}
