//! How fast filter patterns and an Insights query scan log events
//! (`cargo bench -p warden-logquery --bench filter`): a term pattern, a JSON pattern and a
//! space-delimited pattern, each matched against 1,000,000 generated Lambda-like lines,
//! then an Insights `filter | stats` query over the same lines. Prints events per second;
//! asserts only that each pattern matched what the generator put there.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::hint::black_box;
use std::time::Instant;

use warden_logquery::filter;
use warden_logquery::insights::{parse_query, Event};

const EVENTS: usize = 1_000_000;

/// One line of a Lambda log group, in the shapes a function and the platform write.
fn line(i: usize) -> String {
    let request = format!("6b5f3d2e-0000-4000-8000-{:012}", i / 5);
    match i % 5 {
        0 => format!("START RequestId: {request} Version: $LATEST"),
        1 => format!(
            "2024-05-01T12:00:{:02}.{:03}Z\t{request}\tINFO\tprocessed order {} for customer c-{} in {} ms",
            (i / 1000) % 60,
            i % 1000,
            i,
            i % 977,
            i % 300
        ),
        2 => format!(
            r#"{{"level":"{}","requestId":"{request}","path":"/orders/{}","latency":{},"user":{{"id":{},"tier":"gold"}}}}"#,
            if i % 35 == 2 { "ERROR" } else { "INFO" },
            i % 1000,
            i % 900,
            i % 50
        ),
        3 => {
            if i % 40 == 3 {
                format!(
                    "2024-05-01T12:00:00.000Z\t{request}\tERROR\tInvoke Error: connection reset by peer after {} ms",
                    i % 700
                )
            } else {
                format!("END RequestId: {request}")
            }
        }
        _ => format!(
            "REPORT RequestId: {request}\tDuration: {}.{:02} ms\tBilled Duration: {} ms\tMemory Size: 128 MB\tMax Memory Used: {} MB",
            i % 250,
            i % 100,
            i % 250 + 1,
            40 + i % 60
        ),
    }
}

fn bench_pattern(name: &str, pattern: &str, lines: &[String]) -> usize {
    let fp = filter::parse(pattern).unwrap();
    let mut best = f64::MAX;
    let mut matched = 0;
    for _ in 0..3 {
        let start = Instant::now();
        matched = lines.iter().filter(|l| fp.matches(black_box(l))).count();
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{name:<16} {pattern:<58} {matched:>8} matched  {:>7.1} ms  {:>12.0} events/s",
        best * 1e3,
        lines.len() as f64 / best
    );
    matched
}

fn main() {
    let start = Instant::now();
    let lines: Vec<String> = (0..EVENTS).map(line).collect();
    let bytes: usize = lines.iter().map(String::len).sum();
    println!(
        "generated {EVENTS} lines ({:.1} MB) in {:.2} s; best of 3 runs each:",
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );

    let errors = bench_pattern("term", "ERROR", &lines);
    assert!(errors > 0);
    bench_pattern("terms", "?ERROR ?timeout -REPORT", &lines);
    bench_pattern("phrase", "\"connection reset\"", &lines);
    let json = bench_pattern(
        "json",
        r#"{ $.level = "ERROR" && $.latency > 100 }"#,
        &lines,
    );
    assert!(json > 0);
    let delimited = bench_pattern(
        "space-delimited",
        "[time, request, level = ERROR, ...]",
        &lines,
    );
    assert!(delimited > 0);
    bench_pattern("regex", r"%Duration: 2[0-9]{2}\.%", &lines);

    let query = parse_query(
        "filter @type = \"REPORT\" | stats count(*), avg(@duration), pct(@duration, 95), max(@maxMemoryUsed) by bin(1h)",
    )
    .unwrap();
    let start = Instant::now();
    let output = query
        .run(
            lines.iter().enumerate().map(|(i, l)| Event {
                timestamp_ms: 1_714_564_800_000 + i as i64,
                ingestion_ms: 1_714_564_800_000 + i as i64,
                account_id: "123456789012",
                log_group: "/aws/lambda/orders",
                log_stream: "2024/05/01/[$LATEST]abc",
                message: l,
                platform: true,
            }),
            None,
        )
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "insights stats   {} rows from {} records  {:>7.1} ms  {:>12.0} events/s",
        output.rows.len(),
        output.statistics.records_scanned,
        elapsed * 1e3,
        EVENTS as f64 / elapsed
    );
}
