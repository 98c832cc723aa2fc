//! A function whose behaviour the event chooses, so one binary covers every case the
//! integration tests need: `{"action": "echo" | "error" | "sleep" | "exit" | "print" |
//! "env" | "big" | "context" | "append" | "flood" | "span" | "burn", ...}`. At init, `FIXTURE_INIT=exit` exits before asking
//! for work and `FIXTURE_INIT=sleep` never finishes init.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let action = payload
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("echo");
    match action {
        "echo" => Ok(payload),
        "error" => Err("the fixture was asked to fail".into()),
        "sleep" => {
            let ms = payload.get("ms").and_then(Value::as_u64).unwrap_or(1000);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Ok(json!({ "slept_ms": ms }))
        }
        "burn" => {
            // Spins for `us` microseconds (of the host's clock): CPU work of about that
            // size, less if the kernel stops the instance meanwhile.
            let us = payload.get("us").and_then(Value::as_u64).unwrap_or(100);
            let start = std::time::Instant::now();
            let mut spins = 0u64;
            while start.elapsed() < std::time::Duration::from_micros(us) {
                spins = std::hint::black_box(spins + 1);
            }
            Ok(json!({ "spins": spins }))
        }
        "span" => {
            // Sleeps like `sleep`, and says when it ran (Unix ms on the host's clock), so
            // a test can count how many ran at once.
            let now = || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            };
            let ms = payload.get("ms").and_then(Value::as_u64).unwrap_or(1000);
            let start_ms = now();
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Ok(json!({ "start_ms": start_ms, "end_ms": now() }))
        }
        "exit" => {
            std::process::exit(payload.get("code").and_then(Value::as_i64).unwrap_or(3) as i32)
        }
        "print" => {
            let text = payload
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("hello from the fixture");
            println!("{text}");
            eprintln!("stderr: {text}");
            Ok(json!({ "printed": text }))
        }
        "flood" => {
            // Prints `bytes`-byte lines to stdout as fast as it is let, for `ms` ms or
            // `lines` lines, whichever ends first; reports what it wrote.
            use std::io::Write;
            let ms = payload.get("ms").and_then(Value::as_u64).unwrap_or(1000);
            let max_lines = payload
                .get("lines")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            let size = payload
                .get("bytes")
                .and_then(Value::as_u64)
                .unwrap_or(1000)
                .max(32) as usize;
            let started = std::time::Instant::now();
            let deadline = started + std::time::Duration::from_millis(ms);
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
            let mut lines = 0u64;
            while lines < max_lines && std::time::Instant::now() < deadline {
                let mut line = format!("flood {lines} ");
                line.extend(std::iter::repeat_n(
                    'x',
                    size.saturating_sub(line.len() + 1),
                ));
                line.push('\n');
                out.write_all(line.as_bytes())?;
                lines += 1;
            }
            out.flush()?;
            Ok(json!({
                "lines": lines,
                "bytes": lines * size as u64,
                "ms": started.elapsed().as_millis() as u64,
            }))
        }
        "env" => {
            let vars: serde_json::Map<String, Value> = std::env::vars()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            Ok(Value::Object(vars))
        }
        "touch" => {
            // Holds `mb` MiB, every page written, for the length of the invocation.
            let mb = payload.get("mb").and_then(Value::as_u64).unwrap_or(1) as usize;
            let held = vec![1u8; mb << 20];
            Ok(json!({ "touched": std::hint::black_box(&held).iter().step_by(4096).count() }))
        }
        "big" => {
            let bytes = payload
                .get("bytes")
                .and_then(Value::as_u64)
                .unwrap_or(7 * 1024 * 1024) as usize;
            Ok(json!({ "data": "x".repeat(bytes) }))
        }
        "append" => {
            // A witness outside Warden for queue tests: one line per execution, durable.
            use std::io::Write;
            let path = std::env::var("FIXTURE_WITNESS")?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            // One `write` of the whole line: with O_APPEND it lands in one piece even
            // when several instances append at once (formatted writes may split it).
            let line = format!(
                "{} {}\n",
                context.request_id,
                payload.get("tag").and_then(Value::as_str).unwrap_or("")
            );
            f.write_all(line.as_bytes())?;
            f.sync_all()?;
            if let Some(ms) = payload.get("ms").and_then(Value::as_u64) {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            if payload
                .get("fail")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                return Err("failing as asked".into());
            }
            Ok(json!({ "appended": true }))
        }
        "context" => Ok(json!({
            "request_id": context.request_id,
            "deadline_ms": context.deadline,
            "invoked_function_arn": context.invoked_function_arn,
            "trace_id": context.xray_trace_id,
            "client_context": context.client_context.map(|c| c.custom),
            "pid": std::process::id(),
            "instance": INSTANCE.get().copied().unwrap_or_default(),
        })),
        other => Err(format!("unknown action `{other}`").into()),
    }
}

/// Identifies this process across invocations (pids repeat inside pid namespaces).
static INSTANCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let _ = INSTANCE.set(started.as_nanos() as u64 ^ u64::from(std::process::id()));
    match std::env::var("FIXTURE_INIT").as_deref() {
        Ok("exit") => std::process::exit(7),
        Ok("sleep") => loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        },
        _ => {}
    }
    lambda_runtime::run(service_fn(handler)).await
}
