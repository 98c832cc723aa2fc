//! The attacks of the issue, each made with plain SQLite on the file, and exactly what
//! verification reports for each.

use rusqlite::params;
use warden_audit::log::chain_hash;
use warden_audit::merkle::leaf_hash;
use warden_audit::{Ed25519Signer, EncodedEvent, Finding};

use crate::support::{body, edit_body, event, rehash_everything, Fixture};

const N: u64 = 200;
const EVERY: u64 = 20;

fn digests_above(seq: u64) -> impl Iterator<Item = u64> {
    (1..=N / EVERY).map(|k| k * EVERY).filter(move |s| *s > seq)
}

#[test]
fn an_untouched_log_verifies_clean() {
    let f = Fixture::new(N, EVERY);
    assert_eq!(f.verify(), vec![]);
}

#[test]
fn a_changed_byte_is_altered() {
    let f = Fixture::new(N, EVERY);
    edit_body(&f.raw(), 57, "aws-cli/2.15", "aws-cli/2.16");
    assert_eq!(f.verify(), vec![Finding::Altered { seq: 57 }]);
}

#[test]
fn changed_bytes_with_their_leaf_hash_recomputed_are_altered() {
    let f = Fixture::new(N, EVERY);
    let conn = f.raw();
    let edited = edit_body(&conn, 57, "aws-cli/2.15", "aws-cli/2.16");
    conn.execute(
        "UPDATE event SET leaf_hash = ?1 WHERE seq = 57",
        params![&leaf_hash(&edited)[..]],
    )
    .unwrap();
    assert_eq!(f.verify(), vec![Finding::Altered { seq: 57 }]);
}

#[test]
fn a_changed_index_column_is_altered() {
    let f = Fixture::new(N, EVERY);
    let conn = f.raw();
    conn.execute("UPDATE event SET username = 'mallory' WHERE seq = 12", [])
        .unwrap();
    conn.execute(
        "INSERT INTO event_resource (name, seq) VALUES ('arn:aws:lambda:us-east-1:123456789012:function:x', 80)",
        [],
    )
    .unwrap();
    assert_eq!(
        f.verify(),
        vec![Finding::Altered { seq: 12 }, Finding::Altered { seq: 80 }]
    );
}

#[test]
fn a_deleted_row_is_removed() {
    let f = Fixture::new(N, EVERY);
    f.raw()
        .execute("DELETE FROM event WHERE seq IN (57, 58, 120)", [])
        .unwrap();
    assert_eq!(
        f.verify(),
        vec![
            Finding::Removed {
                first: 57,
                last: 58
            },
            Finding::Removed {
                first: 120,
                last: 120
            }
        ]
    );
}

#[test]
fn swapped_rows_are_reordered() {
    let f = Fixture::new(N, EVERY);
    let conn = f.raw();
    conn.execute_batch(
        "UPDATE event SET seq = -1 WHERE seq = 40;
         UPDATE event SET seq = 40 WHERE seq = 90;
         UPDATE event SET seq = 90 WHERE seq = -1;",
    )
    .unwrap();
    assert_eq!(f.verify(), vec![Finding::Reordered { seqs: vec![40, 90] }]);
}

#[test]
fn swapped_neighbours_are_reordered() {
    let f = Fixture::new(N, EVERY);
    f.raw()
        .execute_batch(
            "UPDATE event SET seq = -1 WHERE seq = 40;
             UPDATE event SET seq = 40 WHERE seq = 41;
             UPDATE event SET seq = 41 WHERE seq = -1;",
        )
        .unwrap();
    // Moving either one restores the order: one of them is named.
    let findings = f.verify();
    assert!(
        findings == vec![Finding::Reordered { seqs: vec![40] }]
            || findings == vec![Finding::Reordered { seqs: vec![41] }],
        "{findings:?}"
    );
}

/// Moves rows `at..` one place up and puts a forged event at `at`, with a correct leaf
/// hash and, if `chained`, a chain hash that follows from its predecessor.
fn insert_forged(f: &Fixture, at: i64, chained: bool) {
    let conn = f.raw();
    conn.execute_batch(&format!(
        "UPDATE event SET seq = -(seq + 1) WHERE seq >= {at};
         UPDATE event SET seq = -seq WHERE seq < 0;
         UPDATE event_resource SET seq = seq + 1 WHERE seq >= {at};"
    ))
    .unwrap();
    let mut forged = event(9999);
    forged.event_time = event(u64::try_from(at).unwrap()).event_time;
    let forged = EncodedEvent::new(&forged).unwrap();
    let leaf = leaf_hash(forged.bytes());
    let chain = if chained {
        let previous: Vec<u8> = conn
            .query_row(
                "SELECT chain_hash FROM event WHERE seq = ?1",
                [at - 1],
                |r| r.get(0),
            )
            .unwrap();
        chain_hash(&previous.try_into().unwrap(), &leaf)
    } else {
        [0x42; 32]
    };
    let ix = forged.index();
    conn.execute(
        "INSERT INTO event (seq, time_ms, event_id, event_name, event_source, username,
            principal_arn, access_key_id, read_only, body, leaf_hash, chain_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            at,
            ix.time_ms,
            ix.event_id,
            ix.event_name,
            ix.event_source,
            ix.username,
            ix.principal_arn,
            ix.access_key_id,
            ix.read_only,
            forged.bytes(),
            &leaf[..],
            &chain[..]
        ],
    )
    .unwrap();
}

#[test]
fn a_forged_row_chained_to_its_predecessor_is_inserted() {
    let f = Fixture::new(N, EVERY);
    insert_forged(&f, 57, true);
    assert_eq!(f.verify(), vec![Finding::Inserted { seq: 57 }]);
}

#[test]
fn a_forged_row_with_a_made_up_chain_is_inserted() {
    let f = Fixture::new(N, EVERY);
    insert_forged(&f, 57, false);
    assert_eq!(f.verify(), vec![Finding::Inserted { seq: 57 }]);
}

#[test]
fn a_truncated_tail_is_caught_by_the_exported_digests() {
    let f = Fixture::new(N, EVERY);
    f.raw()
        .execute_batch(
            "DELETE FROM event WHERE seq >= 150;
             DELETE FROM event_resource WHERE seq >= 150;
             DELETE FROM node WHERE end_seq > 150;
             DELETE FROM digest WHERE tree_size > 150;",
        )
        .unwrap();
    assert_eq!(f.verify(), vec![Finding::Truncated { had: 200, now: 150 }]);
    // Without the copies kept elsewhere, the shorter log is consistent in itself: this is
    // why digests are exported.
    assert_eq!(f.verify_with(&[]), vec![]);
}

#[test]
fn a_truncated_tail_with_its_digests_left_is_caught_by_them() {
    let f = Fixture::new(N, EVERY);
    f.raw()
        .execute("DELETE FROM event WHERE seq >= 190", [])
        .unwrap();
    assert_eq!(
        f.verify_with(&[]),
        vec![Finding::Truncated { had: 200, now: 190 }]
    );
}

#[test]
fn a_consistent_rewrite_is_caught_by_the_signed_digests() {
    let f = Fixture::new(N, EVERY);
    let conn = f.raw();
    edit_body(&conn, 57, "192.0.2.7", "203.0.113.9");
    rehash_everything(&conn);
    let expected: Vec<Finding> = digests_above(57)
        .map(|tree_size| Finding::DigestMismatch { tree_size })
        .collect();
    assert_eq!(f.verify_with(&[]), expected);
    assert_eq!(f.verify(), expected);
}

#[test]
fn a_consistent_rewrite_with_new_digests_is_caught_by_the_exported_ones() {
    let f = Fixture::new(N, EVERY);
    let conn = f.raw();
    edit_body(&conn, 57, "192.0.2.7", "203.0.113.9");
    rehash_everything(&conn);
    // The attacker replaces every digest with ones signed by a key of their own.
    conn.execute("DELETE FROM digest", []).unwrap();
    drop(conn);
    let mallory = Ed25519Signer::generate("key-1").unwrap();
    let mut log = warden_audit::AuditLog::open(&f.db).unwrap();
    log.publish_digest(&mallory, 0).unwrap();
    drop(log);

    // Every genuine digest is missing from the file (the one of size 200 was replaced).
    let mut expected = vec![Finding::DigestForged { tree_size: 200 }];
    expected.extend((1..=N / EVERY).map(|k| Finding::DigestMissing {
        tree_size: k * EVERY,
    }));
    expected.extend(digests_above(57).map(|tree_size| Finding::DigestMismatch { tree_size }));
    let mut findings = f.verify();
    let key = |x: &Finding| format!("{x:?}");
    findings.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(findings, expected);
    // Without the exported digests, the forged signature is still caught.
    assert_eq!(
        f.verify_with(&[]),
        vec![Finding::DigestForged { tree_size: 200 }]
    );
    // And the untouched rows' bytes are what was recorded.
    assert_eq!(
        body(&f.raw(), 58),
        EncodedEvent::new(&event(58)).unwrap().bytes()
    );
}

#[test]
fn a_damaged_node_index_fails_the_proofs_it_serves() {
    let f = Fixture::new(N, EVERY);
    // The stored root of events 0..64: used by the proofs from 80, 100 and 120 onward
    // (RFC 6962's split puts it on their paths), not by the others.
    f.raw()
        .execute(
            "UPDATE node SET hash = zeroblob(32) WHERE end_seq = 64 AND level = 6",
            [],
        )
        .unwrap();
    assert_eq!(
        f.verify(),
        vec![
            Finding::ProofFailed { old: 80, new: 100 },
            Finding::ProofFailed { old: 100, new: 120 },
            Finding::ProofFailed { old: 120, new: 140 },
        ]
    );
}

#[test]
fn a_time_range_reports_only_its_events() {
    let f = Fixture::new(N, EVERY);
    let conn = f.raw();
    edit_body(&conn, 57, "aws-cli/2.15", "aws-cli/2.16");
    edit_body(&conn, 150, "aws-cli/2.15", "aws-cli/2.16");
    let reader = warden_audit::AuditReader::open(&f.db).unwrap();
    let exported = f.exported();
    let report = reader
        .verify(&warden_audit::VerifyOptions {
            verifier: &f.verifier,
            exported: &exported,
            from_ms: Some(crate::support::T0 + 100_000),
            to_ms: Some(crate::support::T0 + 199_000),
        })
        .unwrap();
    assert_eq!(report.findings, vec![Finding::Altered { seq: 150 }]);
}
