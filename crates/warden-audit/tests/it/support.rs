//! A log of signed, exported events to attack, and raw access to its file.

use std::path::PathBuf;

use rusqlite::{params, Connection};
use serde_json::json;
use warden_audit::digest::{export_to_dir, read_exported};
use warden_audit::event::{event_time, IdentityType, EVENT_VERSION};
use warden_audit::log::{chain_hash, GENESIS_CHAIN};
use warden_audit::merkle::{leaf_hash, Frontier};
use warden_audit::{
    AuditLog, AuditReader, CloudTrailEvent, Digest, Ed25519Signer, Ed25519Verifier, EncodedEvent,
    Finding, UserIdentity, VerifyOptions,
};

pub const T0: i64 = 1_714_521_600_000;

/// Event `i`, a second after event `i - 1`.
pub fn event(i: u64) -> CloudTrailEvent {
    CloudTrailEvent {
        event_version: EVENT_VERSION.into(),
        user_identity: UserIdentity {
            kind: IdentityType::IamUser,
            principal_id: Some("AIDAEXAMPLE".into()),
            arn: Some("arn:aws:iam::123456789012:user/alice".into()),
            account_id: Some("123456789012".into()),
            access_key_id: Some("AKIAALICE".into()),
            user_name: Some("alice".into()),
            session_context: None,
            invoked_by: None,
        },
        event_time: event_time(T0 + i64::try_from(i).unwrap() * 1000),
        event_source: "lambda.amazonaws.com".into(),
        event_name: "DeleteFunction20150331".into(),
        aws_region: "us-east-1".into(),
        source_ip_address: "192.0.2.7".into(),
        user_agent: "aws-cli/2.15".into(),
        error_code: None,
        error_message: None,
        request_parameters: Some(json!({"functionName": format!("f{i}")})),
        response_elements: None,
        additional_event_data: None,
        request_id: format!("req-{i}"),
        event_id: format!("00000000-0000-4000-8000-{i:012}"),
        read_only: false,
        resources: vec![],
        event_type: "AwsApiCall".into(),
        management_event: true,
        recipient_account_id: "123456789012".into(),
        event_category: "Management".into(),
    }
}

/// A log of `n` events with a digest after every `every`, all exported.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub db: PathBuf,
    pub exported_dir: PathBuf,
    pub verifier: Ed25519Verifier,
}

impl Fixture {
    pub fn new(n: u64, every: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("audit.db");
        let exported_dir = dir.path().join("exported");
        let signer = Ed25519Signer::generate("key-1").unwrap();
        let verifier = Ed25519Verifier::new("key-1", &signer.public_key());
        let mut log = AuditLog::open(&db).unwrap();
        let mut i = 0;
        while i < n {
            let batch: Vec<_> = (i..(i + every).min(n))
                .map(|j| EncodedEvent::new(&event(j)).unwrap())
                .collect();
            log.append_batch(&batch).unwrap();
            i += every;
            let d = log
                .publish_digest(&signer, T0 + 1_000_000 + i64::try_from(i).unwrap())
                .unwrap();
            export_to_dir(&[d], &exported_dir).unwrap();
        }
        drop(log);
        Fixture {
            _dir: dir,
            db,
            exported_dir,
            verifier,
        }
    }

    /// The file as an attacker opens it: plain SQLite, no help from the crate.
    pub fn raw(&self) -> Connection {
        Connection::open(&self.db).unwrap()
    }

    pub fn exported(&self) -> Vec<Digest> {
        read_exported(&self.exported_dir).unwrap()
    }

    /// Verifies with the exported digests.
    pub fn verify(&self) -> Vec<Finding> {
        self.verify_with(&self.exported())
    }

    pub fn verify_with(&self, exported: &[Digest]) -> Vec<Finding> {
        let reader = AuditReader::open(&self.db).unwrap();
        reader
            .verify(&VerifyOptions {
                verifier: &self.verifier,
                exported,
                from_ms: None,
                to_ms: None,
            })
            .unwrap()
            .findings
    }
}

pub fn body(conn: &Connection, seq: i64) -> Vec<u8> {
    conn.query_row("SELECT body FROM event WHERE seq = ?1", [seq], |r| r.get(0))
        .unwrap()
}

/// Replaces the first `from` in event `seq`'s bytes with `to`.
pub fn edit_body(conn: &Connection, seq: i64, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(body(conn, seq)).unwrap();
    assert!(text.contains(from));
    let edited = text.replacen(from, to, 1).into_bytes();
    conn.execute(
        "UPDATE event SET body = ?1 WHERE seq = ?2",
        params![edited, seq],
    )
    .unwrap();
    edited
}

/// What a careful attacker does after editing rows: recompute every leaf hash, the whole
/// chain and every tree node, so that the file is consistent in itself.
pub fn rehash_everything(conn: &Connection) {
    let rows: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT seq, body FROM event ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    conn.execute("DELETE FROM node", []).unwrap();
    let mut chain = GENESIS_CHAIN;
    let mut frontier = Frontier::default();
    for (seq, bytes) in rows {
        let leaf = leaf_hash(&bytes);
        chain = chain_hash(&chain, &leaf);
        conn.execute(
            "UPDATE event SET leaf_hash = ?1, chain_hash = ?2 WHERE seq = ?3",
            params![&leaf[..], &chain[..], seq],
        )
        .unwrap();
        frontier.push(leaf, |level, index, hash| {
            let end = i64::try_from((index + 1) << level).unwrap();
            conn.execute(
                "INSERT INTO node (end_seq, level, hash) VALUES (?1, ?2, ?3)",
                params![end, level, &hash[..]],
            )
            .unwrap();
        });
    }
}
