//! The store: what it writes, that it picks up where it left off, and that the proofs it
//! serves verify against its roots.

use super::*;
use crate::digest::{Ed25519Signer, Ed25519Verifier};
use crate::test_support::{fresh, on_both_backends, sample_event, Backend};

on_both_backends!(
    reopening_continues_the_tree_and_the_chain,
    served_proofs_verify,
    digests_chain_and_repeat_when_nothing_changed,
);

fn encoded(range: std::ops::Range<u64>) -> Vec<EncodedEvent> {
    range
        .map(|i| EncodedEvent::new(&sample_event(i)).unwrap())
        .collect()
}

#[test]
fn appends_hashes_and_chains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.size(), 0);
    assert_eq!(log.root(), merkle::empty_root());
    let events = encoded(0..10);
    assert_eq!(log.append_batch(&events[..3]).unwrap(), vec![0, 1, 2]);
    assert_eq!(
        log.append_batch(&events[3..]).unwrap(),
        (3..10).collect::<Vec<_>>()
    );
    assert_eq!(log.append_batch(&[]).unwrap(), Vec::<u64>::new());

    let leaves: Vec<Hash> = events
        .iter()
        .map(|e| merkle::leaf_hash(e.bytes()))
        .collect();
    let mut chain = GENESIS_CHAIN;
    for leaf in &leaves {
        chain = chain_hash(&chain, leaf);
    }
    assert_eq!(log.root(), merkle::root(leaves.as_slice(), 10).unwrap());
    assert_eq!(log.chain_hash(), chain);

    let reader = AuditReader::open(&path).unwrap();
    assert_eq!(reader.size().unwrap(), 10);
    assert_eq!(reader.event_bytes(4).unwrap().unwrap(), events[4].bytes());
    assert_eq!(reader.event_bytes(10).unwrap(), None);
    for n in 0..=10 {
        assert_eq!(
            reader.root_at(n).unwrap(),
            merkle::root(leaves.as_slice(), n).unwrap()
        );
    }
    // The file is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

fn reopening_continues_the_tree_and_the_chain(backend: Backend) {
    let fresh = fresh(backend);
    let events = encoded(0..23);
    let (root, chain) = {
        let mut log = fresh.store.writer().unwrap();
        log.append_batch(&events).unwrap();
        (log.root(), log.chain_hash())
    };
    let mut log = fresh.store.writer().unwrap();
    assert_eq!(
        (log.size(), log.root(), log.chain_hash()),
        (23, root, chain)
    );
    log.append_batch(&encoded(23..40)).unwrap();
    let mut whole = AuditLog::open(&fresh.dir.path().join("whole.db")).unwrap();
    whole.append_batch(&encoded(0..40)).unwrap();
    assert_eq!(log.root(), whole.root());
    assert_eq!(log.chain_hash(), whole.chain_hash());
}

fn served_proofs_verify(backend: Backend) {
    let fresh = fresh(backend);
    let mut log = fresh.store.writer().unwrap();
    log.append_batch(&encoded(0..37)).unwrap();
    let reader = fresh.store.reader().unwrap();
    for n in [1, 2, 5, 16, 17, 37] {
        let root = reader.root_at(n).unwrap();
        for m in 0..n {
            let leaf = reader.leaf_hash(m).unwrap();
            let path = reader.inclusion_proof(m, n).unwrap().unwrap();
            assert!(
                merkle::verify_inclusion(m, n, &leaf, &path, &root),
                "{m} in {n}"
            );
        }
        for old in 1..=n {
            let proof = reader.consistency_proof(old, n).unwrap().unwrap();
            let old_root = reader.root_at(old).unwrap();
            assert!(merkle::verify_consistency(old, n, &proof, &old_root, &root));
        }
    }
    assert_eq!(reader.inclusion_proof(37, 37).unwrap(), None);
    // Beyond the log the nodes are missing: an error, not a wrong proof.
    let err = reader.root_at(40).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the audit log is damaged: the tree node at level 3, index 4 is missing"
    );
}

fn digests_chain_and_repeat_when_nothing_changed(backend: Backend) {
    let fresh = fresh(backend);
    let signer = Ed25519Signer::generate("key-1").unwrap();
    let verifier = Ed25519Verifier::new("key-1", &signer.public_key());
    let mut log = fresh.store.writer().unwrap();
    let empty = log.publish_digest(&signer, 1).unwrap();
    assert_eq!(empty.tree_size, 0);
    assert_eq!(empty.previous_digest_hash, None);
    assert_eq!(empty.chain_hash, GENESIS_CHAIN);
    log.append_batch(&encoded(0..5)).unwrap();
    let first = log.publish_digest(&signer, 2).unwrap();
    assert_eq!(first.previous_digest_hash, Some(empty.hash()));
    assert_eq!(
        (first.tree_size, first.root_hash, first.chain_hash),
        (5, log.root(), log.chain_hash())
    );
    assert!(first.verify_signature(&verifier));
    let again = log.publish_digest(&signer, 3).unwrap();
    assert_eq!(again, first);
    log.append_batch(&encoded(5..6)).unwrap();
    let second = log.publish_digest(&signer, 4).unwrap();
    assert_eq!(second.previous_digest_hash, Some(first.hash()));
    let reader = fresh.store.reader().unwrap();
    assert_eq!(
        reader.digests().unwrap(),
        vec![empty, first, second.clone()]
    );
    assert_eq!(reader.latest_digest().unwrap(), Some(second));
}

/// Nodes sharing a log in PostgreSQL, each appending its own batches and publishing
/// digests at once: one log, positions without gaps, a chain without forks, digests that
/// chain whichever node signed them, and a clean verification.
#[test]
fn nodes_appending_at_once_write_one_log_that_verifies() {
    let first = fresh(Backend::Postgres);
    let signer = Ed25519Signer::generate("key-1").unwrap();
    let verifier = Ed25519Verifier::new("key-1", &signer.public_key());
    // Each node its own writer and connection; 4 nodes, 30 batches each, 1 to 4 events.
    let mut handed = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4u64)
            .map(|node| {
                let store = first.store.clone();
                let signer = &signer;
                scope.spawn(move || {
                    let mut log = store.writer().unwrap();
                    let mut mine = Vec::new();
                    for b in 0..30u64 {
                        let k = 1 + (node + b) % 4;
                        let base = node * 1000 + b * 10;
                        let seqs = log.append_batch(&encoded(base..base + k)).unwrap();
                        assert_eq!(seqs.len() as u64, k);
                        // A batch's positions are consecutive.
                        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
                        mine.extend(seqs);
                        if b % 7 == node {
                            log.publish_digest(signer, 1_000 + i64::try_from(b).unwrap())
                                .unwrap();
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<u64>>()
    });
    handed.sort_unstable();
    let total = handed.len() as u64;
    assert_eq!(
        handed,
        (0..total).collect::<Vec<_>>(),
        "positions given once each"
    );

    let mut log = first.store.writer().unwrap();
    let last = log.publish_digest(&signer, 9_999).unwrap();
    assert_eq!(last.tree_size, total);
    let reader = first.store.reader().unwrap();
    let digests = reader.digests().unwrap();
    assert!(digests.len() >= 5, "{}", digests.len());
    for pair in digests.windows(2) {
        assert_eq!(pair[1].previous_digest_hash, Some(pair[0].hash()));
    }
    let report = reader
        .verify(&crate::VerifyOptions {
            verifier: &verifier,
            exported: &digests,
            from_ms: None,
            to_ms: None,
        })
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.size, report.attested), (total, total));
    // A writer opened now starts where the others ended.
    assert_eq!(
        (log.size(), log.root()),
        (total, reader.root_at(total).unwrap())
    );
}

/// What an attacker with write access to the shared database does is found, as on SQLite.
#[test]
fn a_tampered_shared_log_names_what_was_done() {
    let fresh = fresh(Backend::Postgres);
    let signer = Ed25519Signer::generate("key-1").unwrap();
    let verifier = Ed25519Verifier::new("key-1", &signer.public_key());
    let mut log = fresh.store.writer().unwrap();
    log.append_batch(&encoded(0..40)).unwrap();
    log.publish_digest(&signer, 1).unwrap();
    let crate::Store::Postgres(pool) = &fresh.store else {
        unreachable!()
    };
    pool.run(|conn| {
        conn.client().batch_execute(
            "UPDATE audit_events SET body = replace(convert_from(body, 'UTF8'), 'alice', 'mallory')::BYTEA WHERE seq = 12;
             DELETE FROM audit_events WHERE seq = 30;",
        )
        .map_err(warden_postgres::Error::at("tampering"))
    })
    .unwrap();
    let reader = fresh.store.reader().unwrap();
    let report = reader
        .verify(&crate::VerifyOptions {
            verifier: &verifier,
            exported: &[],
            from_ms: None,
            to_ms: None,
        })
        .unwrap();
    assert_eq!(
        report.findings,
        vec![
            crate::Finding::Altered { seq: 12 },
            crate::Finding::Removed {
                first: 30,
                last: 30
            },
        ]
    );
}

/// The head row is checked before a batch is numbered from it.
#[test]
fn a_damaged_head_refuses_the_batch_and_appends_nothing() {
    let fresh = fresh(Backend::Postgres);
    let mut log = fresh.store.writer().unwrap();
    log.append_batch(&encoded(0..5)).unwrap();
    let crate::Store::Postgres(pool) = &fresh.store else {
        unreachable!()
    };
    pool.run(|conn| {
        conn.client()
            .batch_execute("UPDATE audit_head SET size = 6")
            .map_err(warden_postgres::Error::at("tampering"))
    })
    .unwrap();
    let err = log.append_batch(&encoded(5..6)).unwrap_err();
    assert!(matches!(err, Error::Damaged { .. }), "{err}");
    assert_eq!(fresh.store.reader().unwrap().size().unwrap(), 5);
}

/// The first node's key is the cluster's; a reseal replaces only the key it read.
#[test]
fn the_signing_key_is_offered_once_and_resealed_by_compare() {
    let fresh = fresh(Backend::Postgres);
    let crate::Store::Postgres(pool) = &fresh.store else {
        unreachable!()
    };
    assert_eq!(crate::postgres::signing_key(pool).unwrap(), None);
    assert_eq!(
        crate::postgres::offer_signing_key(pool, b"first".to_vec()).unwrap(),
        b"first"
    );
    assert_eq!(
        crate::postgres::offer_signing_key(pool, b"second".to_vec()).unwrap(),
        b"first"
    );
    assert!(
        !crate::postgres::replace_signing_key(pool, b"second".to_vec(), b"x".to_vec()).unwrap()
    );
    assert!(
        crate::postgres::replace_signing_key(pool, b"first".to_vec(), b"resealed".to_vec())
            .unwrap()
    );
    assert_eq!(
        crate::postgres::signing_key(pool).unwrap().as_deref(),
        Some(&b"resealed"[..])
    );
}
