//! Digest signatures, their JSON, export and the witness.

use super::*;

fn signed(signer: &Ed25519Signer) -> Digest {
    Digest::sign(
        signer,
        7,
        [1; 32],
        [2; 32],
        1_714_521_600_000,
        Some([3; 32]),
    )
    .unwrap()
}

#[test]
fn signs_what_it_names_and_nothing_else() {
    let signer = Ed25519Signer::from_seed("key-1", &[9; 32]).unwrap();
    let verifier = Ed25519Verifier::new("key-1", &signer.public_key());
    let d = signed(&signer);
    assert!(d.verify_signature(&verifier));
    assert_eq!(
        d.signed_message(),
        format!(
            "warden-audit-digest/1\ntree-size 7\nroot {}\nchain {}\ntime 1714521600000\nprevious {}\nkey key-1\n",
            "01".repeat(32),
            "02".repeat(32),
            "03".repeat(32)
        )
    );
    let changes: [fn(&mut Digest); 6] = [
        |d| d.tree_size += 1,
        |d| d.root_hash[0] ^= 1,
        |d| d.chain_hash[31] ^= 1,
        |d| d.time += 1,
        |d| d.previous_digest_hash = None,
        |d| d.signature[0] ^= 1,
    ];
    for change in changes {
        let mut forged = d.clone();
        change(&mut forged);
        assert!(!forged.verify_signature(&verifier));
    }
    // Another key, or an unknown key id, is not trusted.
    let other = Ed25519Signer::generate("key-1").unwrap();
    assert!(!signed(&other).verify_signature(&verifier));
    let mut renamed = d.clone();
    renamed.key_id = "key-2".into();
    assert!(!renamed.verify_signature(&verifier));
}

#[test]
fn json_round_trips_and_refuses_unknown_fields() {
    let signer = Ed25519Signer::generate("arn:aws:kms:us-east-1:123456789012:key/k").unwrap();
    let d = signed(&signer);
    let json = d.to_json();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["treeSize"], 7);
    assert_eq!(v["rootHash"], "01".repeat(32));
    assert_eq!(v["previousDigestHash"], "03".repeat(32));
    assert_eq!(Digest::from_json(&json, "x").unwrap(), d);
    let mut extra = v.clone();
    extra["note"] = "x".into();
    let err = Digest::from_json(extra.to_string().as_bytes(), "`d.json`").unwrap_err();
    assert!(err
        .to_string()
        .starts_with("the digest `d.json` does not parse: unknown field `note`"));
}

struct NewlineKey;

impl Signer for NewlineKey {
    fn key_id(&self) -> &str {
        "a\nb"
    }
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(vec![])
    }
}

#[test]
fn refuses_a_key_id_that_could_forge_a_line() {
    let err = Digest::sign(&NewlineKey, 0, [0; 32], [0; 32], 0, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the key id `a\nb` is empty or has control characters"
    );
}

#[test]
fn exports_once_and_keeps_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("digests");
    let signer = Ed25519Signer::generate("key-1").unwrap();
    let d = signed(&signer);
    let written = export_to_dir(std::slice::from_ref(&d), &out).unwrap();
    assert_eq!(written, vec![out.join("digest-7.json")]);
    assert_eq!(
        export_to_dir(std::slice::from_ref(&d), &out).unwrap(),
        Vec::<PathBuf>::new()
    );
    let mut changed = d.clone();
    changed.time += 1;
    let err = export_to_dir(&[changed], &out).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the exported digest `{}` differs from the log's digest of the same size; not overwritten",
            out.join("digest-7.json").display()
        )
    );
    std::fs::write(out.join("notes.txt"), "ignored").unwrap();
    assert_eq!(read_exported(&out).unwrap(), vec![d]);
}

#[test]
fn the_witness_gets_the_digest_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("seen.json");
    let signer = Ed25519Signer::generate("key-1").unwrap();
    let d = signed(&signer);
    let sh = |script: String| vec!["sh".to_owned(), "-c".to_owned(), script];
    send_to_witness(&sh(format!("cat > {}", copy.display())), &d).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), d.to_json());

    let err = send_to_witness(&sh("echo 'digest rejected' >&2; exit 3".into()), &d).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the witness command `sh` refused the digest (exit status: 3): digest rejected"
    );
    let err = send_to_witness(&["/nonexistent/witness".to_owned()], &d).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("running the witness command `/nonexistent/witness`: "));
}
