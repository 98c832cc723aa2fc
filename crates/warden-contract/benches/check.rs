//! Time one input-contract check adds to an invoke (`cargo bench -p warden-contract --bench
//! check`): a 1 KB event of 20 properties against a 20-property schema, next to the check an
//! invoke without a contract does (the payload must parse as JSON), so the difference is
//! the contract's cost.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use warden_contract::{Compiled, InputContract};

/// Runs `f` `iterations` times, five rounds, and prints the best round's time per call.
fn measure(label: &str, iterations: u32, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        best = best.min(start.elapsed() / iterations);
    }
    println!("{label}: {:.2} µs", best.as_secs_f64() * 1e6);
    best
}

fn main() {
    let mut properties = Map::new();
    let mut event = Map::new();
    for i in 0..20 {
        let (schema, value) = match i % 4 {
            0 => (
                json!({"type": "string", "maxLength": 64}),
                json!(format!("value-{i}-{}", "x".repeat(30))),
            ),
            1 => (json!({"type": "integer", "minimum": 0}), json!(i * 1000)),
            2 => (json!({"type": "boolean"}), json!(i % 3 == 0)),
            _ => (
                json!({"type": "string", "enum": ["red", "green", "blue"]}),
                json!("green"),
            ),
        };
        properties.insert(format!("field_{i:02}"), schema);
        event.insert(format!("field_{i:02}"), value);
    }
    let mut payload = serde_json::to_vec(&Value::Object(event.clone())).unwrap();
    // Pad to 1 KB with a free-form note the schema allows.
    let pad = 1024usize.saturating_sub(payload.len() + 12);
    event.insert("note".into(), json!("n".repeat(pad)));
    payload = serde_json::to_vec(&Value::Object(event)).unwrap();
    let names: Vec<&String> = properties.keys().collect();
    let document = json!({
        "EventSchema": {
            "type": "object",
            "required": names,
            "properties": properties,
        },
        "Json": {"MaxDepth": 8, "MaxStringLength": 4096, "AllowDuplicateKeys": false}
    });
    let contract = InputContract::parse(document.to_string().as_bytes()).unwrap();
    let compiled = Compiled::compile(&contract).unwrap();
    compiled.check_event(&payload).unwrap();
    println!(
        "event: {} bytes, 20 properties (+ a note); schema: 20 properties",
        payload.len()
    );
    let plain = measure(
        "no contract (parse as JSON, as Lambda checks)",
        100_000,
        || {
            black_box(
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&payload)).unwrap(),
            );
        },
    );
    let limits_only = Compiled::compile(
        &InputContract::parse(
            br#"{"Json": {"MaxDepth": 8, "MaxStringLength": 4096, "AllowDuplicateKeys": false}}"#,
        )
        .unwrap(),
    )
    .unwrap();
    measure(
        "  of which the bounded scan (a contract of Json limits only)",
        100_000,
        || {
            black_box(limits_only.check_event(black_box(&payload))).unwrap();
        },
    );
    measure(
        "  of which building the value the schema sees",
        100_000,
        || {
            black_box(serde_json::from_slice::<Value>(black_box(&payload)).unwrap());
        },
    );
    let checked = measure("with the contract (scan, parse, schema)", 100_000, || {
        black_box(compiled.check_event(black_box(&payload))).unwrap();
    });
    println!(
        "added by the contract: {:.2} µs",
        (checked.as_secs_f64() - plain.as_secs_f64()) * 1e6
    );
}
