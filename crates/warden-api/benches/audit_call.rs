//! What the audit trail adds to one API call on the request's own thread
//! (`cargo bench -p warden-api --bench audit_call`): reading the request's head into a
//! `Note`, making the CloudTrail event (request parameters parsed from the body and
//! redacted, the response's elements for a write), encoding it, and queueing it for the
//! group-committing writer. The wait for the disk that a write then does is measured by
//! `warden-audit`'s own bench. Prints; asserts nothing about time.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use warden_api::audit::{Note, Outcome};
use warden_api::routes::{Operation, Service};
use warden_audit::{AuditLog, Ed25519Signer, EncodedEvent, Recorder, RecorderConfig};
use warden_types::identity::{Principal, PrincipalKind};

const BODY: &str = r#"{"FunctionName":"orders","MemorySize":512,"Timeout":30,"Role":"arn:aws:iam::123456789012:role/orders-exec","Environment":{"Variables":{"TABLE":"orders","DB_PASSWORD":"hunter2"}},"Description":"order intake"}"#;
const RESPONSE: &str = r#"{"FunctionName":"orders","FunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:orders","Runtime":"python3.12","Role":"arn:aws:iam::123456789012:role/orders-exec","Handler":"app.handler","CodeSize":5312,"Timeout":30,"MemorySize":512,"LastModified":"2026-12-04T10:00:00.000+0000","CodeSha256":"dGVzdA==","Version":"$LATEST","Environment":{"Variables":{"TABLE":"orders","DB_PASSWORD":"hunter2"}},"State":"Active","LastUpdateStatus":"InProgress","RevisionId":"1c4b2f1e-0000-4000-8000-000000000000"}"#;

fn note() -> Note {
    let request = http::Request::builder()
        .method("PUT")
        .uri("/2015-03-31/functions/orders/configuration")
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261204/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000")
        .header("user-agent", "aws-cli/2.15.0 Python/3.11.6 Linux/6.5 exe/x86_64 prompt/off command/lambda.update-function-configuration")
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    let mut note = Note::new(&parts, "127.0.0.1:40000".parse().unwrap());
    note.service = Some(Service::Lambda);
    note.operation = Some(Operation::UpdateFunctionConfiguration("orders".into()));
    note.principal = Some(Principal {
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        account: "123456789012".into(),
        name: "alice".into(),
        id: "AIDAEXAMPLEEXAMPLE".into(),
        kind: PrincipalKind::User,
        tags: Default::default(),
        session: None,
    });
    note.body = Bytes::from_static(BODY.as_bytes());
    note.targets = vec![(
        "lambda:UpdateFunctionConfiguration".into(),
        "arn:aws:lambda:us-east-1:123456789012:function:orders".into(),
    )];
    note
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{what}: p50 {:.1} µs, p99 {:.1} µs ({} calls)",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}

fn main() {
    const CALLS: usize = 50_000;
    let mut reply = http::Response::new(warden_api::ReplyBody::from(Bytes::from_static(
        RESPONSE.as_bytes(),
    )));
    *reply.status_mut() = http::StatusCode::OK;

    // The event alone: head, parameters, response elements, encoding.
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let t = Instant::now();
        let note = note();
        let (event, wait) = note
            .to_event(
                Outcome::Replied(&reply),
                &format!("req-{i}"),
                "123456789012",
                "us-east-1",
                false,
            )
            .unwrap();
        let encoded = EncodedEvent::new(&event).unwrap();
        samples.push(t.elapsed());
        assert!(wait);
        std::hint::black_box(encoded);
    }
    report(
        "note, event and encoding of an UpdateFunctionConfiguration",
        samples,
    );

    // The same, queued to a real recorder (the writer commits in the background).
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
    let signer = Arc::new(Ed25519Signer::generate("bench").unwrap());
    let recorder = Recorder::start(
        log,
        signer,
        RecorderConfig {
            digest_every: None,
            ..RecorderConfig::default()
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let samples = runtime.block_on(async {
        let mut samples = Vec::with_capacity(CALLS);
        let mut pending = Vec::with_capacity(CALLS);
        for i in 0..CALLS {
            let t = Instant::now();
            let (event, _) = note()
                .to_event(
                    Outcome::Replied(&reply),
                    &format!("req-{i}"),
                    "123456789012",
                    "us-east-1",
                    false,
                )
                .unwrap();
            let p = recorder
                .submit(EncodedEvent::new(&event).unwrap())
                .await
                .unwrap();
            samples.push(t.elapsed());
            pending.push(p);
        }
        for p in pending {
            p.durable().await.unwrap();
        }
        samples
    });
    report("... and queued to the recorder", samples);
    recorder.shutdown();
}
