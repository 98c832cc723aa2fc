//! What auditing costs (`cargo bench -p warden-audit --bench audit`): the latency of one
//! recorded event until it is acknowledged durable, with 1 and with 32 concurrent callers
//! sharing group commits; the caller-thread cost of serialising an event; and verification
//! throughput over 100,000 events. Prints; asserts nothing about time, which depends on the
//! disk's fsync.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_audit::event::{event_time, IdentityType, EVENT_VERSION};
use warden_audit::{
    AuditLog, AuditReader, CloudTrailEvent, Ed25519Signer, Ed25519Verifier, EncodedEvent, Recorder,
    RecorderConfig, UserIdentity, VerifyOptions,
};

const T0: i64 = 1_714_521_600_000;

/// A realistic write: an IAM user's UpdateFunctionConfiguration, about 900 bytes.
fn event(i: u64) -> CloudTrailEvent {
    let function = format!("arn:aws:lambda:us-east-1:123456789012:function:f{}", i % 50);
    CloudTrailEvent {
        event_version: EVENT_VERSION.into(),
        user_identity: UserIdentity {
            kind: IdentityType::IamUser,
            principal_id: Some("AIDAEXAMPLEEXAMPLE".into()),
            arn: Some("arn:aws:iam::123456789012:user/alice".into()),
            account_id: Some("123456789012".into()),
            access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
            user_name: Some("alice".into()),
            session_context: None,
            invoked_by: None,
        },
        event_time: event_time(T0 + i64::try_from(i).unwrap()),
        event_source: "lambda.amazonaws.com".into(),
        event_name: "UpdateFunctionConfiguration20150331v2".into(),
        aws_region: "us-east-1".into(),
        source_ip_address: "192.0.2.7".into(),
        user_agent: "aws-cli/2.15.0 Python/3.11.6 Linux/6.5 exe/x86_64".into(),
        error_code: None,
        error_message: None,
        request_parameters: Some(json!({
            "functionName": function,
            "memorySize": 512,
            "timeout": 30,
            "environment": {"variables": "HIDDEN_DUE_TO_SECURITY_REASONS"},
        })),
        response_elements: Some(json!({
            "functionName": function,
            "functionArn": function,
            "runtime": "python3.12",
            "state": "Active",
            "lastUpdateStatus": "InProgress",
        })),
        additional_event_data: None,
        request_id: format!("6b5f3d2e-0000-4000-8000-{i:012}"),
        event_id: format!("00000000-0000-4000-8000-{i:012}"),
        read_only: false,
        resources: vec![warden_audit::event::Resource {
            arn: function,
            account_id: "123456789012".into(),
            kind: "AWS::Lambda::Function".into(),
        }],
        event_type: "AwsApiCall".into(),
        management_event: true,
        recipient_account_id: "123456789012".into(),
        event_category: "Management".into(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, mut latencies: Vec<Duration>, wall: Duration) {
    latencies.sort_unstable();
    println!(
        "{label}: p50 {:.1} µs, p99 {:.1} µs, {:.0} events/s",
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.len() as f64 / wall.as_secs_f64()
    );
}

fn recorder(dir: &std::path::Path) -> Arc<Recorder> {
    let log = AuditLog::open(&dir.join("audit.db")).unwrap();
    let signer = Arc::new(Ed25519Signer::generate("bench").unwrap());
    let config = RecorderConfig {
        digest_every: None,
        ..RecorderConfig::default()
    };
    Arc::new(Recorder::start(log, signer, config).unwrap())
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!("database directory: {}", dir.path().display());
    let sample = EncodedEvent::new(&event(0)).unwrap();
    println!("event: {} bytes", sample.bytes().len());

    // What the request thread itself spends before it waits: the serialisation.
    let mut encode = Vec::with_capacity(20_000);
    let start = Instant::now();
    for i in 0..20_000 {
        let e = event(i);
        let t = Instant::now();
        black_box(EncodedEvent::new(black_box(&e)).unwrap());
        encode.push(t.elapsed());
    }
    report("serialise on the caller's thread", encode, start.elapsed());

    // One caller: every event pays a whole commit and fsync.
    let rec = recorder(&dir.path().join("one"));
    let mut latencies = Vec::new();
    let start = Instant::now();
    for i in 0..1_000 {
        let t = Instant::now();
        rec.record(&event(i)).unwrap();
        latencies.push(t.elapsed());
    }
    report("1 caller, acknowledged durable", latencies, start.elapsed());
    drop(rec);

    // 32 callers: they share group commits.
    let rec = recorder(&dir.path().join("many"));
    let start = Instant::now();
    let threads: Vec<_> = (0..32u64)
        .map(|t| {
            let rec = Arc::clone(&rec);
            std::thread::spawn(move || {
                (0..300u64)
                    .map(|i| {
                        let e = event(t * 1_000 + i);
                        let s = Instant::now();
                        rec.record(&e).unwrap();
                        s.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    report(
        "32 callers, acknowledged durable",
        latencies,
        start.elapsed(),
    );
    drop(rec);

    // Verification throughput over 100,000 events with a digest every 10,000.
    let path = dir.path().join("verify").join("audit.db");
    let signer = Ed25519Signer::generate("bench").unwrap();
    let verifier = Ed25519Verifier::new("bench", &signer.public_key());
    let mut log = AuditLog::open(&path).unwrap();
    let start = Instant::now();
    for chunk in 0..100u64 {
        let batch: Vec<_> = (chunk * 1_000..(chunk + 1) * 1_000)
            .map(|i| EncodedEvent::new(&event(i)).unwrap())
            .collect();
        log.append_batch(&batch).unwrap();
        if (chunk + 1) % 10 == 0 {
            log.publish_digest(&signer, T0 + 1_000_000).unwrap();
        }
    }
    println!(
        "appending 100,000 events in batches of 1,000: {:.0} events/s",
        100_000.0 / start.elapsed().as_secs_f64()
    );
    drop(log);
    let reader = AuditReader::open(&path).unwrap();
    let options = VerifyOptions {
        verifier: &verifier,
        exported: &[],
        from_ms: None,
        to_ms: None,
    };
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let report = reader.verify(&options).unwrap();
        best = best.min(start.elapsed());
        assert!(report.is_clean());
    }
    println!(
        "verify 100,000 events: {:.2} s, {:.0} events/s",
        best.as_secs_f64(),
        100_000.0 / best.as_secs_f64()
    );
}
