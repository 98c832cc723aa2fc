//! The store: what it writes, that it picks up where it left off, and that the proofs it
//! serves verify against its roots.

use super::*;
use crate::digest::{Ed25519Signer, Ed25519Verifier};
use crate::test_support::sample_event;

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

#[test]
fn reopening_continues_the_tree_and_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let events = encoded(0..23);
    let (root, chain) = {
        let mut log = AuditLog::open(&path).unwrap();
        log.append_batch(&events).unwrap();
        (log.root(), log.chain_hash())
    };
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(
        (log.size(), log.root(), log.chain_hash()),
        (23, root, chain)
    );
    log.append_batch(&encoded(23..40)).unwrap();
    let mut whole = AuditLog::open(&dir.path().join("whole.db")).unwrap();
    whole.append_batch(&encoded(0..40)).unwrap();
    assert_eq!(log.root(), whole.root());
    assert_eq!(log.chain_hash(), whole.chain_hash());
}

#[test]
fn served_proofs_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut log = AuditLog::open(&path).unwrap();
    log.append_batch(&encoded(0..37)).unwrap();
    let reader = AuditReader::open(&path).unwrap();
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

#[test]
fn digests_chain_and_repeat_when_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let signer = Ed25519Signer::generate("key-1").unwrap();
    let verifier = Ed25519Verifier::new("key-1", &signer.public_key());
    let mut log = AuditLog::open(&path).unwrap();
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
    let reader = AuditReader::open(&path).unwrap();
    assert_eq!(
        reader.digests().unwrap(),
        vec![empty, first, second.clone()]
    );
    assert_eq!(reader.latest_digest().unwrap(), Some(second));
}
