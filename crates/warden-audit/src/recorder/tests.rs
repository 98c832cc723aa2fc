//! Group commit: an acknowledged event is in the file, concurrent callers each get their
//! own position, and digests follow the events acknowledged before them.

use std::sync::Arc;

use super::*;
use crate::digest::Ed25519Signer;
use crate::log::AuditReader;
use crate::test_support::sample_event;

fn start(dir: &std::path::Path) -> Recorder {
    let log = AuditLog::open(&dir.join("audit.db")).unwrap();
    let signer = Arc::new(Ed25519Signer::generate("key-1").unwrap());
    let config = RecorderConfig {
        digest_every: None,
        ..RecorderConfig::default()
    };
    Recorder::start(log, signer, config).unwrap()
}

#[test]
fn an_acknowledged_event_is_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = start(dir.path());
    for i in 0..5 {
        let seq = recorder.record(&sample_event(i)).unwrap();
        assert_eq!(seq, i);
        // A connection opened after the acknowledgement sees the row.
        let reader = AuditReader::open(&dir.path().join("audit.db")).unwrap();
        let bytes = reader.event_bytes(seq).unwrap().unwrap();
        assert_eq!(bytes, EncodedEvent::new(&sample_event(i)).unwrap().bytes());
    }
}

#[test]
fn concurrent_callers_share_commits_and_get_distinct_positions() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(start(dir.path()));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let recorder = Arc::clone(&recorder);
            std::thread::spawn(move || {
                (0..25u64)
                    .map(|i| recorder.record(&sample_event(t * 100 + i)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    let digest = recorder.publish_digest().unwrap();
    assert_eq!(digest.tree_size, 200);
}

#[test]
fn async_callers() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(start(dir.path()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let seqs = rt.block_on(async {
        let tasks: Vec<_> = (0..20u64)
            .map(|i| {
                let recorder = Arc::clone(&recorder);
                tokio::spawn(async move { recorder.record_async(&sample_event(i)).await })
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().unwrap());
        }
        let digest = recorder.publish_digest_async().await.unwrap();
        assert_eq!(digest.tree_size, 20);
        seqs
    });
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..20).collect::<Vec<_>>());
}

#[test]
fn shutdown_commits_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = start(dir.path());
    recorder.record(&sample_event(0)).unwrap();
    recorder.shutdown();
    let reader = AuditReader::open(&dir.path().join("audit.db")).unwrap();
    assert_eq!(reader.size().unwrap(), 1);
}

#[test]
fn periodic_digests_are_published_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
    let signer = Arc::new(Ed25519Signer::generate("key-1").unwrap());
    let exports = dir.path().join("exported");
    let config = RecorderConfig {
        digest_every: Some(std::time::Duration::from_millis(20)),
        export_dir: Some(exports.clone()),
        ..RecorderConfig::default()
    };
    let recorder = Recorder::start(log, signer, config).unwrap();
    recorder.record(&sample_event(0)).unwrap();
    let file = exports.join("digest-1.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(file.exists());
}
