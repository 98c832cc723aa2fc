//! Verification of untouched logs; the tampering cases are in the integration tests,
//! which edit the file as an attacker would.

use super::*;
use crate::digest::{Ed25519Signer, Ed25519Verifier};
use crate::event::EncodedEvent;
use crate::test_support::{fresh, on_both_backends, sample_event, Backend, Fresh, T0};

fn log_with(backend: Backend, n: u64, digest_every: u64) -> (Fresh, AuditReader, Ed25519Verifier) {
    let fresh = fresh(backend);
    let signer = Ed25519Signer::generate("key-1").unwrap();
    let verifier = Ed25519Verifier::new("key-1", &signer.public_key());
    let mut log = fresh.store.writer().unwrap();
    for i in 0..n {
        log.append_batch(&[EncodedEvent::new(&sample_event(i)).unwrap()])
            .unwrap();
        if (i + 1) % digest_every == 0 {
            // Digest k is made just after event k's time.
            log.publish_digest(&signer, T0 + i64::try_from(i).unwrap() * 1000 + 500)
                .unwrap();
        }
    }
    let reader = fresh.store.reader().unwrap();
    (fresh, reader, verifier)
}

on_both_backends!(
    an_untouched_log_is_clean,
    an_empty_log_is_clean,
    a_time_range_starts_at_the_digest_before_it,
    an_unknown_key_makes_every_digest_forged,
);

fn an_untouched_log_is_clean(backend: Backend) {
    let (_dir, reader, verifier) = log_with(backend, 100, 10);
    let options = VerifyOptions {
        verifier: &verifier,
        exported: &[],
        from_ms: None,
        to_ms: None,
    };
    let report = reader.verify(&options).unwrap();
    assert_eq!(report.findings, vec![]);
    assert!(report.is_clean());
    assert_eq!(
        (
            report.size,
            report.events_checked,
            report.started_at,
            report.attested
        ),
        (100, 100, 0, 100)
    );
    // Exported copies that agree add nothing.
    let exported = reader.digests().unwrap();
    let report = reader
        .verify(&VerifyOptions {
            exported: &exported,
            ..options
        })
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
}

fn an_empty_log_is_clean(backend: Backend) {
    let (_dir, reader, verifier) = log_with(backend, 0, 1);
    let report = reader
        .verify(&VerifyOptions {
            verifier: &verifier,
            exported: &[],
            from_ms: None,
            to_ms: None,
        })
        .unwrap();
    assert!(report.is_clean());
    assert_eq!(report.size, 0);
}

fn a_time_range_starts_at_the_digest_before_it(backend: Backend) {
    let (_dir, reader, verifier) = log_with(backend, 100, 10);
    let report = reader
        .verify(&VerifyOptions {
            verifier: &verifier,
            exported: &[],
            from_ms: Some(T0 + 45_000),
            to_ms: Some(T0 + 60_000),
        })
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    // Digest 40 (after event 39) is the newest made before event 45.
    assert_eq!(
        (report.started_at, report.events_checked, report.attested),
        (40, 60, 100)
    );
}

fn an_unknown_key_makes_every_digest_forged(backend: Backend) {
    let (_dir, reader, _) = log_with(backend, 20, 10);
    let stranger = Ed25519Verifier::new("key-1", &[7; 32]);
    let report = reader
        .verify(&VerifyOptions {
            verifier: &stranger,
            exported: &[],
            from_ms: None,
            to_ms: None,
        })
        .unwrap();
    assert_eq!(
        report.findings,
        vec![
            Finding::DigestForged { tree_size: 10 },
            Finding::DigestForged { tree_size: 20 }
        ]
    );
    assert_eq!(report.attested, 0);
}
