//! A hostile function for the sandbox's escape-attempt suite, built with the official
//! `lambda_runtime` crate like any user function. The event picks the attack:
//! `{"action": "read" | "write" | "connect" | "status" | "forkbomb" | "alloc" | "spin" |
//! "ignore_term" | "background" | "fill_tmp" | "flood", ...}`. Each attempt answers with what the
//! kernel said (an errno name such as `ENOENT`), so the tests can assert the exact failure.
//!
//! Run as `bootstrap marker-<tag>` it is a marker process: it sleeps forever, so the tests
//! can look for `<tag>` in the host's process list to see whether it outlived its instance.

use std::io::Write;
use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

/// The errno names the suite expects, for readable assertions.
fn errno_name(e: &std::io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(1) => "EPERM",
        Some(2) => "ENOENT",
        Some(11) => "EAGAIN",
        Some(12) => "ENOMEM",
        Some(13) => "EACCES",
        Some(17) => "EEXIST",
        Some(28) => "ENOSPC",
        Some(30) => "EROFS",
        Some(101) => "ENETUNREACH",
        Some(110) => "ETIMEDOUT",
        Some(111) => "ECONNREFUSED",
        Some(113) => "EHOSTUNREACH",
        Some(n) => return format!("errno {n}"),
        None => return e.to_string(),
    };
    name.to_owned()
}

fn outcome(r: std::io::Result<()>) -> Value {
    match r {
        Ok(()) => json!("ok"),
        Err(e) => json!(errno_name(&e)),
    }
}

fn strings(payload: &Value, key: &str) -> Vec<String> {
    payload
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a marker process (this binary, sleeping) whose command line carries `tag`.
fn spawn_marker(tag: &str) -> std::io::Result<()> {
    std::process::Command::new("/proc/self/exe")
        .arg(format!("marker-{tag}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
}

fn spin_forever() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, _context) = event.into_parts();
    let action = payload.get("action").and_then(Value::as_str).unwrap_or("");
    let tag = payload
        .get("tag")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_owned();
    match action {
        // Every path: the errno of reading it, or "ok".
        "read" => {
            let mut out = serde_json::Map::new();
            for path in strings(&payload, "paths") {
                let r = std::fs::read(&path).map(drop);
                out.insert(path, outcome(r));
            }
            Ok(Value::Object(out))
        }
        // Every path: the errno of creating a file there, or "ok".
        "write" => {
            let mut out = serde_json::Map::new();
            for path in strings(&payload, "paths") {
                let r = std::fs::write(&path, b"escaped");
                out.insert(path, outcome(r));
            }
            Ok(Value::Object(out))
        }
        // Every `host:port`: the errno of a TCP connect, or "ok".
        "connect" => {
            let mut out = serde_json::Map::new();
            for addr in strings(&payload, "addrs") {
                let r = match addr.parse::<std::net::SocketAddr>() {
                    Ok(a) => {
                        std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).map(drop)
                    }
                    Err(e) => Err(std::io::Error::other(e)),
                };
                out.insert(addr, outcome(r));
            }
            Ok(Value::Object(out))
        }
        // The privilege lines of /proc/self/status, and who we are.
        "status" => {
            let status = std::fs::read_to_string("/proc/self/status")?;
            let mut out = serde_json::Map::new();
            for line in status.lines() {
                if let Some((k, v)) = line.split_once(':') {
                    if k.starts_with("Cap")
                        || ["NoNewPrivs", "Seccomp", "Uid", "Gid", "Groups"].contains(&k)
                    {
                        out.insert(k.to_owned(), json!(v.trim()));
                    }
                }
            }
            out.insert(
                "hostname".into(),
                json!(std::fs::read_to_string("/proc/sys/kernel/hostname")?.trim()),
            );
            Ok(Value::Object(out))
        }
        // Starts sleeping processes until the kernel refuses; reports how many and why.
        "forkbomb" => {
            let mut children = Vec::new();
            let error = loop {
                match std::process::Command::new("/bin/sleep").arg("3600").spawn() {
                    Ok(c) => children.push(c),
                    Err(e) => break errno_name(&e),
                }
                if children.len() >= 100_000 {
                    break "never refused".to_owned();
                }
            };
            Ok(json!({ "spawned": children.len(), "error": error }))
        }
        // Touches `mb` megabytes of heap, one page at a time.
        "alloc" => {
            let mb = payload.get("mb").and_then(Value::as_u64).unwrap_or(4096) as usize;
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mb {
                let mut block = vec![0u8; 1 << 20];
                for i in (0..block.len()).step_by(4096) {
                    block[i] = 1;
                }
                blocks.push(block);
            }
            Ok(json!({ "allocated_mb": blocks.len() }))
        }
        // Leaves a marker child, then burns CPU forever.
        "spin" => {
            spawn_marker(&tag)?;
            spin_forever()
        }
        // Catches SIGTERM (so it does not end the process), leaves a marker, then sleeps
        // past any deadline.
        "ignore_term" => {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            spawn_marker(&tag)?;
            loop {
                tokio::select! {
                    _ = term.recv() => eprintln!("hostile: SIGTERM ignored"),
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                }
            }
        }
        // Leaves a marker child running and answers at once.
        "background" => {
            spawn_marker(&tag)?;
            Ok(json!({ "left_behind": tag }))
        }
        // Writes 1 MiB chunks to /tmp until the kernel refuses.
        "fill_tmp" => {
            let mut f = std::fs::File::create("/tmp/fill")?;
            let chunk = vec![7u8; 1 << 20];
            let mut written_mb = 0u64;
            let error = loop {
                match f.write_all(&chunk) {
                    Ok(()) => written_mb += 1,
                    Err(e) => break errno_name(&e),
                }
            };
            drop(f);
            let _ = std::fs::remove_file("/tmp/fill");
            Ok(json!({ "written_mb": written_mb, "error": error }))
        }
        // Opens `count` TCP connections to `addr` at once and holds them, idle, for `hold_ms`
        // (a connection still connecting keeps trying until then); reports how many got
        // through and why the others did not.
        "flood" => {
            let addr: std::net::SocketAddr = payload
                .get("addr")
                .and_then(Value::as_str)
                .unwrap_or("127.0.0.1:9002")
                .parse()?;
            let count = payload.get("count").and_then(Value::as_u64).unwrap_or(1000);
            let hold = Duration::from_millis(
                payload
                    .get("hold_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(10_000),
            );
            let until = tokio::time::Instant::now() + hold;
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..count {
                tasks.spawn(async move {
                    let r =
                        tokio::time::timeout_at(until, tokio::net::TcpStream::connect(addr)).await;
                    match r {
                        Ok(Ok(stream)) => {
                            tokio::time::sleep_until(until).await;
                            drop(stream);
                            Ok(())
                        }
                        Ok(Err(e)) => Err(errno_name(&e)),
                        Err(_) => Err("still connecting".to_owned()),
                    }
                });
            }
            let mut connected = 0u64;
            let mut errors = serde_json::Map::new();
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(Ok(())) => connected += 1,
                    Ok(Err(e)) => {
                        let n = errors.get(&e).and_then(Value::as_u64).unwrap_or(0);
                        errors.insert(e, json!(n + 1));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(json!({ "connected": connected, "errors": errors }))
        }
        other => Err(format!("unknown action `{other}`").into()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a.starts_with("marker-"))
    {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    lambda_runtime::run(service_fn(handler)).await
}
