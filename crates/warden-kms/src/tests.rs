//! The key service over a real store in a temporary directory, with a clock the tests move.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::envelope::{self, Keyring, KeyringError, KmsKeyring};
use crate::{EncryptionContext, Kms, KmsError, MasterKey, NewKey};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const DAY: i64 = 86_400_000;

struct Fixture {
    dir: tempfile::TempDir,
    master: MasterKey,
    clock: Arc<AtomicI64>,
    kms: Kms,
}

fn master() -> MasterKey {
    MasterKey::from_bytes(&[9; 32]).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(1_700_000_000_000));
    let kms = open(dir.path(), master(), &clock).unwrap();
    Fixture {
        dir,
        master: master(),
        clock,
        kms,
    }
}

fn open(dir: &std::path::Path, master: MasterKey, clock: &Arc<AtomicI64>) -> Result<Kms, KmsError> {
    let c = clock.clone();
    let kms = Kms::open_with_clock(
        dir,
        master,
        ACCOUNT,
        REGION,
        Arc::new(move || c.load(Ordering::SeqCst)),
    )?;
    kms.ensure_aws_managed_keys()?;
    Ok(kms)
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn key(f: &Fixture) -> String {
    f.kms.create_key(NewKey::default()).unwrap().arn.clone()
}

#[test]
fn encrypt_and_decrypt_round_trip_and_the_ciphertext_names_its_key() {
    let f = fixture();
    let arn = key(&f);
    let c = ctx(&[("purpose", "test")]);
    let (blob, k) = f.kms.encrypt(&arn, b"hello", &c).unwrap();
    assert_eq!(k.arn, arn);
    assert!(!blob.windows(5).any(|w| w == b"hello"));
    let (plain, k2) = f.kms.decrypt(&blob, &c, None).unwrap();
    assert_eq!(plain.as_slice(), b"hello");
    assert_eq!(k2.arn, arn);
    assert_eq!(f.kms.arn_of_ciphertext(&blob).unwrap(), arn);
}

#[test]
fn another_context_or_any_changed_byte_is_an_invalid_ciphertext() {
    let f = fixture();
    let arn = key(&f);
    let c = ctx(&[("a", "1")]);
    let (blob, _) = f.kms.encrypt(&arn, b"secret", &c).unwrap();
    for other in [ctx(&[]), ctx(&[("a", "2")]), ctx(&[("a", "1"), ("b", "")])] {
        assert!(matches!(
            f.kms.decrypt(&blob, &other, None),
            Err(KmsError::InvalidCiphertext)
        ));
    }
    for i in 0..blob.len() {
        let mut t = blob.clone();
        t[i] ^= 0x40;
        let e = f.kms.decrypt(&t, &c, None).unwrap_err();
        // A flipped key id names a key that does not exist: still an invalid ciphertext.
        assert!(matches!(e, KmsError::InvalidCiphertext), "byte {i}: {e:?}");
    }
}

#[test]
fn a_wrong_key_id_is_an_incorrect_key() {
    let f = fixture();
    let a = key(&f);
    let b = key(&f);
    let (blob, _) = f.kms.encrypt(&a, b"x", &ctx(&[])).unwrap();
    assert!(matches!(
        f.kms.decrypt(&blob, &ctx(&[]), Some(&b)),
        Err(KmsError::IncorrectKey)
    ));
    assert!(f.kms.decrypt(&blob, &ctx(&[]), Some(&a)).is_ok());
}

#[test]
fn plaintext_limits_are_kms_limits() {
    let f = fixture();
    let arn = key(&f);
    assert!(f.kms.encrypt(&arn, &[1; 4096], &ctx(&[])).is_ok());
    for bad in [0, 4097] {
        assert!(matches!(
            f.kms.encrypt(&arn, &vec![1; bad], &ctx(&[])),
            Err(KmsError::Validation(_))
        ));
    }
    assert!(matches!(f.kms.random(0), Err(KmsError::Validation(_))));
    assert_eq!(f.kms.random(1024).unwrap().len(), 1024);
}

#[test]
fn disabled_and_pending_deletion_keys_refuse_use_with_their_errors() {
    let f = fixture();
    let arn = key(&f);
    let (blob, _) = f.kms.encrypt(&arn, b"x", &ctx(&[])).unwrap();
    f.kms.set_enabled(&arn, false).unwrap();
    assert!(matches!(
        f.kms.encrypt(&arn, b"x", &ctx(&[])),
        Err(KmsError::Disabled(_))
    ));
    assert!(matches!(
        f.kms.decrypt(&blob, &ctx(&[]), None),
        Err(KmsError::Disabled(_))
    ));
    f.kms.set_enabled(&arn, true).unwrap();
    assert!(matches!(
        f.kms.schedule_deletion(&arn, 6),
        Err(KmsError::Validation(_))
    ));
    let k = f.kms.schedule_deletion(&arn, 7).unwrap();
    assert_eq!(
        k.record.deletion_ms,
        Some(f.clock.load(Ordering::SeqCst) + 7 * DAY)
    );
    assert!(matches!(
        f.kms.decrypt(&blob, &ctx(&[]), None),
        Err(KmsError::InvalidState(_))
    ));
    assert!(matches!(
        f.kms.set_enabled(&arn, true),
        Err(KmsError::InvalidState(_))
    ));
    // Cancelled: back, disabled, as KMS does.
    let k = f.kms.cancel_deletion(&arn).unwrap();
    assert_eq!(k.record.state, crate::store::KeyState::Disabled);
    f.kms.schedule_deletion(&arn, 7).unwrap();
    f.clock.fetch_add(7 * DAY, Ordering::SeqCst);
    assert!(matches!(f.kms.resolve(&arn), Err(KmsError::NotFound(_))));
    // And gone from the store too.
    drop(f.kms);
    let again = open(f.dir.path(), f.master.clone(), &f.clock).unwrap();
    assert!(matches!(again.resolve(&arn), Err(KmsError::NotFound(_))));
}

#[test]
fn rotation_keeps_old_material_so_old_ciphertexts_decrypt() {
    let f = fixture();
    let arn = key(&f);
    let (old, _) = f.kms.encrypt(&arn, b"before", &ctx(&[])).unwrap();
    f.kms.rotate_on_demand(&arn).unwrap();
    let (new, _) = f.kms.encrypt(&arn, b"after", &ctx(&[])).unwrap();
    assert_ne!(
        old[17..21],
        new[17..21],
        "a new material version seals new data"
    );
    assert_eq!(
        f.kms.decrypt(&old, &ctx(&[]), None).unwrap().0.as_slice(),
        b"before"
    );
    // Automatic rotation falls due with the clock.
    f.kms.enable_rotation(&arn, Some(90)).unwrap();
    assert!(f.kms.enable_rotation(&arn, Some(89)).is_err());
    f.clock.fetch_add(91 * DAY, Ordering::SeqCst);
    let k = f.kms.resolve(&arn).unwrap();
    let kinds: Vec<&str> = k.rotations().map(|(_, _, kind)| kind).collect();
    assert_eq!(kinds, ["ORIGINAL", "ON_DEMAND", "AUTOMATIC"]);
    // Everything survives reopening.
    drop(f.kms);
    let again = open(f.dir.path(), f.master.clone(), &f.clock).unwrap();
    assert_eq!(
        again.decrypt(&old, &ctx(&[]), None).unwrap().0.as_slice(),
        b"before"
    );
    assert_eq!(
        again.decrypt(&new, &ctx(&[]), None).unwrap().0.as_slice(),
        b"after"
    );
    assert_eq!(again.resolve(&arn).unwrap().rotations().count(), 3);
}

#[test]
fn on_demand_rotations_are_bounded() {
    let f = fixture();
    let arn = key(&f);
    for _ in 0..crate::MAX_ON_DEMAND_ROTATIONS {
        f.kms.rotate_on_demand(&arn).unwrap();
    }
    assert!(matches!(
        f.kms.rotate_on_demand(&arn),
        Err(KmsError::LimitExceeded(_))
    ));
}

#[test]
fn aliases_resolve_by_name_and_arn_and_refuse_reserved_names() {
    let f = fixture();
    let a = key(&f);
    let b = key(&f);
    f.kms.create_alias("alias/app", &a).unwrap();
    assert!(matches!(
        f.kms.create_alias("alias/app", &b),
        Err(KmsError::AlreadyExists(_))
    ));
    assert_eq!(f.kms.resolve("alias/app").unwrap().arn, a);
    let alias_arn = f.kms.alias_arn("alias/app");
    assert_eq!(f.kms.resolve(&alias_arn).unwrap().arn, a);
    f.kms.update_alias("alias/app", &b).unwrap();
    assert_eq!(f.kms.resolve("alias/app").unwrap().arn, b);
    assert!(matches!(
        f.kms.create_alias("alias/aws/mine", &a),
        Err(KmsError::InvalidAliasName(_))
    ));
    assert!(f.kms.create_alias("app", &a).is_err());
    assert!(f.kms.create_alias("alias/x", "alias/app").is_err());
    f.kms.delete_alias("alias/app").unwrap();
    assert!(matches!(
        f.kms.resolve("alias/app"),
        Err(KmsError::NotFound(_))
    ));
    // The AWS managed keys exist from the start, and refuse changes.
    let lambda = f.kms.resolve("alias/aws/lambda").unwrap();
    assert!(lambda.is_aws_managed());
    assert!(matches!(
        f.kms.set_enabled(&lambda.arn, false),
        Err(KmsError::Unsupported(_))
    ));
}

#[test]
fn key_references_in_other_forms_are_not_found() {
    let f = fixture();
    let arn = key(&f);
    let id = arn.rsplit('/').next().unwrap();
    assert!(f.kms.resolve(id).is_ok());
    assert!(f.kms.resolve(&id.to_uppercase()).is_err());
    for bad in [
        "",
        "nope",
        "arn:aws:kms:us-east-1:123456789012:nope/x",
        "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000",
        "key/",
        &format!("arn:aws:kms:us-east-1:000000000000:key/{id}"),
    ] {
        assert!(
            matches!(f.kms.resolve(bad), Err(KmsError::NotFound(_))),
            "{bad}"
        );
    }
}

#[test]
fn listings_page_through_every_key_and_alias() {
    let f = fixture();
    let mut made: Vec<String> = (0..5).map(|_| key(&f)).collect();
    made.extend(
        ["alias/aws/lambda", "alias/aws/secretsmanager"]
            .iter()
            .map(|a| f.kms.resolve(a).unwrap().arn.clone()),
    );
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let (page, next) = f.kms.list_keys(2, marker.as_deref()).unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|k| k.arn.clone()));
        match next {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    seen.sort();
    made.sort();
    assert_eq!(seen, made);
    assert!(matches!(
        f.kms.list_keys(2, Some("garbage")),
        Err(KmsError::InvalidMarker)
    ));
}

#[test]
fn a_wrong_master_key_is_refused_before_anything_is_read() {
    let f = fixture();
    key(&f);
    drop(f.kms);
    let wrong = MasterKey::from_bytes(&[1; 32]).unwrap();
    let e = open(f.dir.path(), wrong, &f.clock).err().unwrap();
    assert!(matches!(e, KmsError::WrongMasterKey { .. }), "{e}");
    assert!(e.to_string().contains("nothing was read or changed"));
    assert!(open(f.dir.path(), f.master.clone(), &f.clock).is_ok());
}

#[test]
fn rotating_the_master_key_reseals_every_material() {
    let f = fixture();
    let arn = key(&f);
    f.kms.rotate_on_demand(&arn).unwrap();
    let (blob, _) = f.kms.encrypt(&arn, b"kept", &ctx(&[])).unwrap();
    let new = MasterKey::from_bytes(&[2; 32]).unwrap();
    // Two materials of the key, one of each AWS managed key.
    assert_eq!(f.kms.rotate_master(&new).unwrap(), 4);
    assert_eq!(
        f.kms.decrypt(&blob, &ctx(&[]), None).unwrap().0.as_slice(),
        b"kept"
    );
    drop(f.kms);
    assert!(open(f.dir.path(), f.master.clone(), &f.clock).is_err());
    let again = open(f.dir.path(), new, &f.clock).unwrap();
    assert_eq!(
        again.decrypt(&blob, &ctx(&[]), None).unwrap().0.as_slice(),
        b"kept"
    );
}

#[test]
fn nothing_secret_is_stored_in_the_clear() {
    let f = fixture();
    let arn = key(&f);
    let keyring = KmsKeyring::new(f.kms.clone());
    let vars = [("TOKEN".to_owned(), "marker-5f1e2d".to_owned())].into();
    let sealed = keyring.seal("fn", Some(&arn), &vars).unwrap();
    assert!(!sealed.ciphertext.contains("marker-5f1e2d"));
    assert_eq!(keyring.open("fn", &sealed).unwrap(), vars);
    // Bound to its function.
    assert!(matches!(
        keyring.open("other", &sealed),
        Err(KeyringError::Unreadable(_))
    ));
    // The key's material is not in the database in the clear: no 32-byte window of the
    // file equals a material that decrypts anything is hard to show directly, so check
    // that every stored material is sealed (opens only under the master key).
    let dump = crate::store::KmsStore::open(&f.dir.path().join("kms.db"))
        .unwrap()
        .load()
        .unwrap();
    for (record, materials) in dump.keys {
        for m in materials {
            assert!(f
                .master
                .open(
                    &crate::store::material_aad(&record.id, m.version),
                    &m.sealed
                )
                .is_some());
            assert_eq!(m.sealed.len(), 1 + 12 + 32 + 16);
        }
    }
    // A disabled customer key stops the environment from opening, with Lambda's code.
    f.kms.set_enabled(&arn, false).unwrap();
    let e = keyring.open("fn", &sealed).unwrap_err();
    assert_eq!(e.code(), "KMSDisabledException");
    // Envelopes refuse tampering.
    let blob = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&keyring.seal("fn", None, &vars).unwrap().ciphertext)
            .unwrap()
    };
    let c = crate::envelope::function_context("fn");
    assert!(envelope::open(&f.kms, &c, &blob).is_ok());
    for i in 0..blob.len() {
        let mut t = blob.clone();
        t[i] ^= 1;
        assert!(envelope::open(&f.kms, &c, &t).is_err(), "byte {i}");
    }
}

proptest::proptest! {
    // Sealed environments and code come from the data directory: whatever bytes are there,
    // opening them refuses or succeeds, never panics, and only the real thing opens.
    #[test]
    fn opening_arbitrary_envelopes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        static KMS: std::sync::OnceLock<(tempfile::TempDir, Kms)> = std::sync::OnceLock::new();
        let (_, kms) = KMS.get_or_init(|| {
            let f = fixture();
            (f.dir, f.kms)
        });
        let context = crate::envelope::function_context("f");
        proptest::prop_assert!(envelope::open(kms, &context, &bytes).is_err());
        let _ = envelope::wrapped_key(&bytes);
    }
}
