//! The cost of recording one warm invocation's metrics (`started` then `finished`), which
//! runs on every invocation's path: `cargo bench -p warden-metrics --bench record`.

use std::hint::black_box;
use std::time::Instant;

use warden_metrics::Metrics;

fn main() {
    let metrics = Metrics::new(warden_metrics::DEFAULT_MAX_SERIES);
    // 200 functions, as a busy server might hold; the one measured is among them.
    let names: Vec<String> = (0..200).map(|i| format!("function-{i}")).collect();
    for n in &names {
        metrics.started(n, "$LATEST", None);
        metrics.finished(n, "$LATEST", None, 1_000, false);
    }
    let rounds = 2_000_000u32;
    let mut samples = Vec::with_capacity(100);
    for _ in 0..100 {
        let start = Instant::now();
        for i in 0..rounds / 100 {
            let name = &names[(i as usize) % names.len()];
            metrics.started(black_box(name), black_box("$LATEST"), None);
            metrics.finished(
                black_box(name),
                "$LATEST",
                None,
                black_box(u64::from(i % 5_000)),
                i % 97 == 0,
            );
        }
        samples.push(start.elapsed().as_nanos() as f64 / f64::from(rounds / 100));
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "record one invocation (started + finished, account, function and version series): p50 {:.0} ns, p90 {:.0} ns",
        samples[50], samples[90]
    );
}
