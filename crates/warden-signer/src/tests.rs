//! The signer's state and verdicts, over a real KMS in a temporary directory.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use warden_kms::{Kms, MasterKey};

use crate::format;
use crate::{Policy, Signer, Untrusted, Validity, ValidityUnit, Verdict, LAMBDA_PLATFORM};

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

struct World {
    _dir: tempfile::TempDir,
    signer: Signer,
    clock: Arc<AtomicI64>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let kms = Kms::open(
        dir.path(),
        MasterKey::generate().unwrap(),
        "123456789012",
        "us-east-1",
    )
    .unwrap();
    let clock = Arc::new(AtomicI64::new(1_700_000_000));
    let c = Arc::clone(&clock);
    let signer = Signer::open_with_clock(
        dir.path(),
        Arc::new(kms),
        "123456789012",
        "us-east-1",
        Arc::new(move || c.load(Ordering::SeqCst)),
    )
    .unwrap();
    World {
        _dir: dir,
        signer,
        clock,
    }
}

fn sign(signer: &Signer, profile: &str, zip: &[u8]) -> Vec<u8> {
    let digest = format::prepare(zip).unwrap();
    let (_, manifest) = signer.sign_digest(profile, &digest).unwrap();
    format::attach(zip, &manifest).unwrap()
}

#[test]
fn checks_run_in_lambdas_order() {
    let w = world();
    let p = w
        .signer
        .put_profile(
            "app",
            LAMBDA_PLATFORM,
            Some(Validity::new(1, ValidityUnit::Days).unwrap()),
        )
        .unwrap();
    let arn = p.version_arn(&p.versions[0].version);
    let allowed = vec![arn.clone()];
    let zip = zip_of(&[("index.py", b"def handler(e, c):\n    return 1\n")]);
    let signed = sign(&w.signer, "app", &zip);
    assert!(matches!(
        w.signer.verify(&signed, &allowed),
        Verdict::Trusted { .. }
    ));
    assert_eq!(
        w.signer.verify(&zip, &allowed),
        Verdict::Untrusted(Untrusted::Unsigned)
    );
    // A changed byte: integrity, whatever else is true.
    let mut bent = signed.clone();
    bent[40] ^= 1;
    assert!(matches!(
        w.signer.verify(&bent, &allowed),
        Verdict::Integrity(_)
    ));
    // Another profile: mismatch.
    w.signer
        .put_profile("other", LAMBDA_PLATFORM, None)
        .unwrap();
    let theirs = sign(&w.signer, "other", &zip);
    assert!(matches!(
        w.signer.verify(&theirs, &allowed),
        Verdict::Untrusted(Untrusted::Mismatch { .. })
    ));
    // A revoked signature.
    let revoked = sign(&w.signer, "app", &zip);
    let (m, _) = format::read_signature(&revoked).unwrap();
    w.signer
        .revoke_signature(&m.unwrap().job_id, "leaked")
        .unwrap();
    assert!(matches!(
        w.signer.verify(&revoked, &allowed),
        Verdict::Untrusted(Untrusted::Revoked { .. })
    ));
    assert!(matches!(
        w.signer.verify(&signed, &allowed),
        Verdict::Trusted { .. }
    ));
    // Expiry comes before mismatch and revocation.
    w.clock.fetch_add(2 * 86_400, Ordering::SeqCst);
    assert!(matches!(
        w.signer.verify(&revoked, &allowed),
        Verdict::Untrusted(Untrusted::Expired { .. })
    ));
}

#[test]
fn a_revoked_profile_revokes_signatures_from_its_effective_time() {
    let w = world();
    let p = w.signer.put_profile("app", LAMBDA_PLATFORM, None).unwrap();
    let v = p.versions[0].version.clone();
    let allowed = vec![p.version_arn(&v)];
    let zip = zip_of(&[("a.py", b"1")]);
    let before = sign(&w.signer, "app", &zip);
    w.clock.fetch_add(100, Ordering::SeqCst);
    let after = sign(&w.signer, "app", &zip);
    let now = w.clock.load(Ordering::SeqCst);
    w.signer
        .revoke_profile(
            "app",
            &v,
            "compromised",
            now - 50,
            "arn:aws:iam::123456789012:root",
        )
        .unwrap();
    assert!(matches!(
        w.signer.verify(&before, &allowed),
        Verdict::Trusted { .. }
    ));
    assert!(matches!(
        w.signer.verify(&after, &allowed),
        Verdict::Untrusted(Untrusted::Revoked { .. })
    ));
    let e = w.signer.sign_digest("app", &"0".repeat(96)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the signing profile `app` is Revoked and signs no more"
    );
}

#[test]
fn state_survives_reopening_and_keys_are_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = [7u8; warden_kms::MASTER_KEY_LEN];
    let master = MasterKey::from_bytes(&bytes).unwrap();
    let open = |m: MasterKey| {
        let kms = Arc::new(Kms::open(dir.path(), m, "123456789012", "us-east-1").unwrap());
        Signer::open(dir.path(), kms, "123456789012", "us-east-1").unwrap()
    };
    let s = open(master);
    let p = s.put_profile("app", LAMBDA_PLATFORM, None).unwrap();
    let csc = s
        .create_config(
            String::new(),
            vec![p.version_arn(&p.versions[0].version)],
            Policy::Enforce,
        )
        .unwrap();
    s.set_function_config("f", &csc.arn).unwrap();
    drop(s);
    let s = open(MasterKey::from_bytes(&bytes).unwrap());
    assert_eq!(s.config_of("f").unwrap().arn, csc.arn);
    let zip = zip_of(&[("a.py", b"1")]);
    let signed = sign(&s, "app", &zip);
    assert!(matches!(
        s.verify(&signed, &csc.allowed),
        Verdict::Trusted { .. }
    ));
    let db = std::fs::read(dir.path().join("signer.db")).unwrap();
    assert!(!db.windows(10).any(|w| w == b"PRIVATE KE"));
    assert!(s.delete_config(&csc.arn).is_err());
}

#[test]
fn refusals_name_the_problem() {
    let w = world();
    let e = w
        .signer
        .put_profile("app", "Notation-OCI-SHA384-ECDSA", None)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "platformId `Notation-OCI-SHA384-ECDSA` is not supported: Warden signs only for `AWSLambda-SHA384-ECDSA`"
    );
    let e = w
        .signer
        .put_profile("a b", LAMBDA_PLATFORM, None)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "profileName `a b` must be 2 to 64 letters, digits and underscores"
    );
    assert!(Validity::new(136, ValidityUnit::Months).is_err());
    let e = w
        .signer
        .create_config(
            String::new(),
            vec!["arn:aws:s3:::bucket".into()],
            Policy::Warn,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`arn:aws:s3:::bucket` in AllowedPublishers.SigningProfileVersionArns is not a signing profile version ARN"
    );
    w.signer.put_profile("app", LAMBDA_PLATFORM, None).unwrap();
    w.signer.cancel_profile("app").unwrap();
    assert!(w.signer.put_profile("app", LAMBDA_PLATFORM, None).is_err());
}

#[test]
fn forged_and_transplanted_signatures_fail_integrity() {
    let w = world();
    let p = w.signer.put_profile("app", LAMBDA_PLATFORM, None).unwrap();
    let allowed = vec![p.version_arn(&p.versions[0].version)];
    let zip = zip_of(&[("a.py", b"print(1)\n")]);
    let signed = sign(&w.signer, "app", &zip);
    let (m, _) = format::read_signature(&signed).unwrap();
    let m = m.unwrap();
    // The right digest with a made-up signature.
    let mut forged = m.clone();
    forged.signature = "MGUCMQ==".into();
    let out = format::attach(&zip, &forged).unwrap();
    assert!(matches!(
        w.signer.verify(&out, &allowed),
        Verdict::Integrity(_)
    ));
    // A real signature moved onto other code, its digest rewritten to match.
    let other = zip_of(&[("a.py", b"import os; os.system('x')\n")]);
    let mut moved = m.clone();
    moved.digest = format::prepare(&other).unwrap();
    let out = format::attach(&other, &moved).unwrap();
    assert!(matches!(
        w.signer.verify(&out, &allowed),
        Verdict::Integrity(_)
    ));
    // A later expiry claimed for a real signature.
    let mut longer = m.clone();
    longer.expires_at += 1_000_000;
    let out = format::attach(&zip, &longer).unwrap();
    assert!(matches!(
        w.signer.verify(&out, &allowed),
        Verdict::Integrity(_)
    ));
    // A profile version this server does not know: not an allowed publisher.
    let mut unknown = m;
    unknown.profile_version_arn.push('X');
    let out = format::attach(&zip, &unknown).unwrap();
    assert!(matches!(
        w.signer.verify(&out, &allowed),
        Verdict::Untrusted(Untrusted::Mismatch { .. })
    ));
}

#[test]
fn duplicate_entries_and_bombs_are_handled_without_unpacking() {
    use std::io::Write as _;
    // Two entries renamed to one name, in the local headers and the central directory.
    let mut zip = zip_of(&[("a.py", b"1"), ("b.py", b"2")]);
    for i in 0..zip.len().saturating_sub(4) {
        if &zip[i..i + 4] == b"b.py" {
            zip[i..i + 4].copy_from_slice(b"a.py");
        }
    }
    assert!(matches!(
        format::prepare(&zip),
        Err(crate::SignerError::MalformedZip(_))
    ));
    // A highly compressed entry: signing and verifying read its compressed bytes only.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "zeros.bin",
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )
    .unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..16 {
        w.write_all(&block).unwrap();
    }
    let bomb = w.finish().unwrap().into_inner();
    assert!(bomb.len() < 1 << 20);
    let world = world();
    let p = world
        .signer
        .put_profile("app", LAMBDA_PLATFORM, None)
        .unwrap();
    let signed = sign(&world.signer, "app", &bomb);
    assert!(matches!(
        world
            .signer
            .verify(&signed, &[p.version_arn(&p.versions[0].version)]),
        Verdict::Trusted { .. }
    ));
}

/// A node of a deployment on the PostgreSQL database at `url`, its KMS shared too.
fn shared_node(url: &str, master: &[u8; warden_kms::MASTER_KEY_LEN]) -> Signer {
    let kms = Kms::open_postgres(
        url,
        2,
        MasterKey::from_bytes(master).unwrap(),
        "123456789012",
        "us-east-1",
    )
    .unwrap();
    kms.ensure_aws_managed_keys().unwrap();
    Signer::open_postgres(url, 2, Arc::new(kms), "123456789012", "us-east-1").unwrap()
}

#[test]
fn nodes_sharing_a_store_sign_verify_and_refuse_from_the_latest_state() {
    let url = warden_testservers::Postgres::shared()
        .fresh_database()
        .unwrap();
    let master = [9u8; warden_kms::MASTER_KEY_LEN];
    let a = shared_node(&url, &master);
    let b = shared_node(&url, &master);
    // A profile and a config made on A, attached to a function on A.
    let p = a.put_profile("app", LAMBDA_PLATFORM, None).unwrap();
    let csc = a
        .create_config(
            String::new(),
            vec![p.version_arn(&p.versions[0].version)],
            Policy::Enforce,
        )
        .unwrap();
    assert!(b.config_of("f").is_none());
    a.set_function_config("f", &csc.arn).unwrap();
    // B sees it after its poll, and signs with the profile key A made (sealed under the
    // shared KMS): A trusts B's signature.
    assert!(b.refresh().unwrap());
    assert!(!b.refresh().unwrap(), "nothing newer");
    assert_eq!(b.config_of("f").unwrap().arn, csc.arn);
    let zip = zip_of(&[("a.py", b"1")]);
    let signed = sign(&b, "app", &zip);
    assert!(matches!(
        a.verify(&signed, &csc.allowed),
        Verdict::Trusted { .. }
    ));
    // A change decides from what every node committed, even before its poll: C last
    // read the config unused, then A attached it to `g`; C may not delete it.
    let c = shared_node(&url, &master);
    a.clear_function_config("f").unwrap();
    assert!(c.refresh().unwrap());
    assert!(c.functions_of(&csc.arn).unwrap().is_empty());
    a.set_function_config("g", &csc.arn).unwrap();
    let e = c.delete_config(&csc.arn).unwrap_err();
    assert!(e.to_string().contains("used by functions"), "{e}");
    a.clear_function_config("g").unwrap();
    c.delete_config(&csc.arn).unwrap();
    // The signing job made on B, revoked on A: B's verdict changes after its poll.
    b.refresh().unwrap();
    let job = match a.verify(&signed, &[p.version_arn(&p.versions[0].version)]) {
        Verdict::Trusted { job_id, .. } => job_id,
        other => panic!("{other:?}"),
    };
    a.revoke_signature(&job, "leaked").unwrap();
    b.refresh().unwrap();
    assert!(matches!(
        b.verify(&signed, &[p.version_arn(&p.versions[0].version)]),
        Verdict::Untrusted(_)
    ));
    // The database holds no private key in the clear.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for row in db.query("SELECT record FROM shared_records", &[]).unwrap() {
        let text: String = row.get(0);
        assert!(!text.contains("PRIVATE KE"), "{text}");
    }
}
