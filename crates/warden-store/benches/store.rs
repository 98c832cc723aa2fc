//! Rough throughput and latency of the SQLite store on this machine's disk:
//! `cargo bench -p warden-store`. Prints numbers; asserts nothing.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_store::{EventQueue, FunctionStore, LogRecord, LogStore, QueuedEvent, SqliteStore};
use warden_types::{FunctionName, FunctionVersion, NodeId, LATEST};

fn latest(name: &FunctionName) -> FunctionVersion {
    FunctionVersion {
        name: name.clone(),
        version: LATEST.to_owned(),
        runtime: "provided.al2023".to_owned(),
        handler: "bootstrap".to_owned(),
        role: "arn:aws:iam::000000000000:role/r".to_owned(),
        description: String::new(),
        timeout_seconds: 3,
        memory_mb: 128,
        ephemeral_storage_mb: 512,
        environment: Default::default(),
        sealed_environment: None,
        kms_key_arn: None,
        environment_error: None,
        code_sha256: "sha".to_owned(),
        code_size: 1,
        revision_id: "r".to_owned(),
        last_modified_ms: 0,
        architectures: vec![],
        layers: Vec::new(),
        opt_sha256: None,
        logging: Default::default(),
        vpc_config: None,
    }
}

fn event(name: &FunctionName, id: String) -> QueuedEvent {
    QueuedEvent {
        id,
        function: name.clone(),
        qualifier: LATEST.to_owned(),
        payload: vec![b'x'; 1024],
        attempts: 0,
        not_before_ms: 0,
        enqueued_ms: 0,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn report(what: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    println!(
        "{what:<44} {:>8.0} ops/s   p50 {:>8.1?}   p99 {:>8.1?}",
        lat.len() as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    );
}

fn timed(n: usize, mut f: impl FnMut(usize)) -> (Vec<Duration>, Duration) {
    let start = Instant::now();
    let lat = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    (lat, start.elapsed())
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("warden.db")).unwrap());
    let f = FunctionName::new("bench").unwrap();
    store.create_function(&latest(&f)).unwrap();

    let (lat, wall) = timed(2_000, |i| {
        store.enqueue_event(&event(&f, format!("a{i}"))).unwrap()
    });
    report("enqueue_event, 1 thread (1 KiB payload)", lat, wall);

    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, f) = (store.clone(), f.clone());
            std::thread::spawn(move || {
                timed(500, |i| {
                    store
                        .enqueue_event(&event(&f, format!("b{t}-{i}")))
                        .unwrap()
                })
                .0
            })
        })
        .collect();
    let lat: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    report("enqueue_event, 4 threads", lat, start.elapsed());

    let (lat, wall) = timed(2_000, |i| {
        store.enqueue_event(&event(&f, format!("d{i}"))).unwrap()
    });
    report("enqueue_event, 1 thread, again", lat, wall);

    let node = NodeId::new("bench").unwrap();
    let (lat, wall) = timed(200, |_| {
        for e in store.lease_events(&node, 1, 60_000, 10).unwrap() {
            let _ = store.complete_event(&e.lease).unwrap();
        }
    });
    report("lease 10 + complete each (per lease)", lat, wall);

    let (lat, wall) = timed(20_000, |_| {
        store.get_version(&f, LATEST).unwrap().unwrap();
    });
    report("get_version, idle writer", lat, wall);

    // Reads while another thread writes continuously: WAL keeps them independent.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, f, stop) = (store.clone(), f.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.enqueue_event(&event(&f, format!("c{i}"))).unwrap();
                i += 1;
            }
        })
    };
    let (lat, wall) = timed(20_000, |_| {
        store.get_version(&f, LATEST).unwrap().unwrap();
    });
    report("get_version, busy writer", lat, wall);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();

    let batch: Vec<_> = (0..50)
        .map(|i| LogRecord {
            seq: 0,
            function: f.clone(),
            timestamp_ms: i,
            request_id: Some("req".into()),
            stream: None,
            message: "a log line of ordinary length, about eighty bytes or so, like most".into(),
            source: warden_store::LogSource::Function,
        })
        .collect();
    let (lat, wall) = timed(500, |_| store.append_logs(&batch).unwrap());
    report("append_logs, batches of 50", lat, wall);
}
