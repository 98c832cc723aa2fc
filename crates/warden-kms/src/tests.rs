//! The key service over a real store, with a clock the tests move: one suite, run on both
//! backends (a SQLite file in a temporary directory, a fresh PostgreSQL database), and the
//! tests of several nodes sharing one PostgreSQL store.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::envelope::{self, Keyring, KeyringError, KmsKeyring};
use crate::{EncryptionContext, Kms, KmsError, MasterKey, NewKey};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const DAY: i64 = 86_400_000;

/// Where a test's store lives.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Place {
    fn sqlite() -> Place {
        Place::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Place {
        Place::Postgres(
            warden_testservers::Postgres::shared()
                .fresh_database()
                .unwrap(),
        )
    }

    /// The service on this store, without the AWS managed keys.
    fn open_bare(&self, master: MasterKey, clock: &Arc<AtomicI64>) -> Result<Kms, KmsError> {
        let c = clock.clone();
        let clock: crate::Clock = Arc::new(move || c.load(Ordering::SeqCst));
        match self {
            Place::Sqlite(dir) => Kms::open_with_clock(dir.path(), master, ACCOUNT, REGION, clock),
            Place::Postgres(url) => {
                Kms::open_postgres_with_clock(url, 2, master, ACCOUNT, REGION, clock)
            }
        }
    }

    /// Whether several nodes may share the store (and a miss refreshes).
    fn shared(&self) -> bool {
        matches!(self, Place::Postgres(_))
    }

    /// The store itself.
    fn backend(&self) -> crate::store::Backend {
        match self {
            Place::Sqlite(dir) => crate::store::Backend::Sqlite(
                crate::store::KmsStore::open(&dir.path().join("kms.db")).unwrap(),
            ),
            Place::Postgres(url) => {
                crate::store::Backend::Postgres(crate::postgres::PgKmsStore::open(url, 1).unwrap())
            }
        }
    }

    /// Everything stored, read straight from the store.
    fn dump(&self) -> crate::store::Dump {
        match self {
            Place::Sqlite(dir) => crate::store::KmsStore::open(&dir.path().join("kms.db"))
                .unwrap()
                .load()
                .unwrap(),
            Place::Postgres(url) => crate::postgres::PgKmsStore::open(url, 1)
                .unwrap()
                .load()
                .unwrap(),
        }
    }
}

struct Fixture {
    place: Place,
    master: MasterKey,
    clock: Arc<AtomicI64>,
    kms: Kms,
}

fn master() -> MasterKey {
    MasterKey::from_bytes(&[9; 32]).unwrap()
}

fn fixture(place: Place) -> Fixture {
    let clock = Arc::new(AtomicI64::new(1_700_000_000_000));
    let kms = open(&place, master(), &clock).unwrap();
    Fixture {
        place,
        master: master(),
        clock,
        kms,
    }
}

fn open(place: &Place, master: MasterKey, clock: &Arc<AtomicI64>) -> Result<Kms, KmsError> {
    let kms = place.open_bare(master, clock)?;
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

fn encrypt_and_decrypt_round_trip_and_the_ciphertext_names_its_key(place: Place) {
    let f = fixture(place);
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

fn another_context_or_any_changed_byte_is_an_invalid_ciphertext(place: Place) {
    let f = fixture(place);
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

fn a_wrong_key_id_is_an_incorrect_key(place: Place) {
    let f = fixture(place);
    let a = key(&f);
    let b = key(&f);
    let (blob, _) = f.kms.encrypt(&a, b"x", &ctx(&[])).unwrap();
    assert!(matches!(
        f.kms.decrypt(&blob, &ctx(&[]), Some(&b)),
        Err(KmsError::IncorrectKey)
    ));
    assert!(f.kms.decrypt(&blob, &ctx(&[]), Some(&a)).is_ok());
}

fn plaintext_limits_are_kms_limits(place: Place) {
    let f = fixture(place);
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

fn disabled_and_pending_deletion_keys_refuse_use_with_their_errors(place: Place) {
    let f = fixture(place);
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
    let again = open(&f.place, f.master.clone(), &f.clock).unwrap();
    assert!(matches!(again.resolve(&arn), Err(KmsError::NotFound(_))));
}

fn rotation_keeps_old_material_so_old_ciphertexts_decrypt(place: Place) {
    let f = fixture(place);
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
    let again = open(&f.place, f.master.clone(), &f.clock).unwrap();
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

fn on_demand_rotations_are_bounded(place: Place) {
    let f = fixture(place);
    let arn = key(&f);
    for _ in 0..crate::MAX_ON_DEMAND_ROTATIONS {
        f.kms.rotate_on_demand(&arn).unwrap();
    }
    assert!(matches!(
        f.kms.rotate_on_demand(&arn),
        Err(KmsError::LimitExceeded(_))
    ));
}

fn aliases_resolve_by_name_and_arn_and_refuse_reserved_names(place: Place) {
    let f = fixture(place);
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

fn key_references_in_other_forms_are_not_found(place: Place) {
    let f = fixture(place);
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

fn listings_page_through_every_key_and_alias(place: Place) {
    let f = fixture(place);
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

fn a_wrong_master_key_is_refused_before_anything_is_read(place: Place) {
    let f = fixture(place);
    key(&f);
    drop(f.kms);
    let wrong = MasterKey::from_bytes(&[1; 32]).unwrap();
    let e = open(&f.place, wrong, &f.clock).err().unwrap();
    assert!(matches!(e, KmsError::WrongMasterKey { .. }), "{e}");
    assert!(e.to_string().contains("nothing was read or changed"));
    assert!(open(&f.place, f.master.clone(), &f.clock).is_ok());
}

fn rotating_the_master_key_reseals_every_material(place: Place) {
    let f = fixture(place);
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
    assert!(open(&f.place, f.master.clone(), &f.clock).is_err());
    let again = open(&f.place, new, &f.clock).unwrap();
    assert_eq!(
        again.decrypt(&blob, &ctx(&[]), None).unwrap().0.as_slice(),
        b"kept"
    );
}

fn nothing_secret_is_stored_in_the_clear(place: Place) {
    let f = fixture(place);
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
    let dump = f.place.dump();
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

fn every_write_bumps_the_generation_and_a_stale_write_writes_nothing(place: Place) {
    use crate::store::Op;
    let f = fixture(place);
    let store = f.place.backend();
    let before = store.load().unwrap();
    assert_eq!(store.generation().unwrap(), before.generation);
    // The AWS managed keys were written.
    assert!(before.generation >= 2, "{}", before.generation);
    assert_eq!(f.kms.generation(), before.generation);
    let arn = key(&f);
    let after = store.load().unwrap();
    assert_eq!(after.generation, before.generation + 1);
    assert_eq!(f.kms.generation(), after.generation);
    assert_eq!(after.keys.len(), before.keys.len() + 1);
    // A write expecting an older generation is refused whole.
    let name = "alias/stale".to_owned();
    let id = f.kms.resolve(&arn).unwrap().id();
    let op = Op::PutAlias {
        name: name.clone(),
        key: id,
        created_ms: 1,
        updated_ms: 1,
    };
    assert_eq!(
        store
            .apply("test", std::slice::from_ref(&op), Some(before.generation))
            .unwrap(),
        None
    );
    assert_eq!(store.generation().unwrap(), after.generation);
    assert!(store.load().unwrap().aliases.iter().all(|a| a.0 != name));
    // At the current generation it is written, and visible after a refresh.
    assert_eq!(
        store.apply("test", &[op], Some(after.generation)).unwrap(),
        Some(after.generation + 1)
    );
    if f.place.shared() {
        // Another node may have written it: the miss reloads once.
        assert_eq!(f.kms.resolve(&name).unwrap().arn, arn);
    } else {
        // Only this process writes a kms.db: no reload on a miss, but refresh sees it.
        assert!(matches!(f.kms.resolve(&name), Err(KmsError::NotFound(_))));
        assert!(f.kms.refresh().unwrap());
        assert_eq!(f.kms.resolve(&name).unwrap().arn, arn);
    }
    assert_eq!(f.kms.generation(), after.generation + 1);
    assert!(!f.kms.refresh().unwrap());
}

/// Runs each named test on both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Place::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Place::postgres()) })*
        }
    };
}

on_both_backends!(
    encrypt_and_decrypt_round_trip_and_the_ciphertext_names_its_key,
    another_context_or_any_changed_byte_is_an_invalid_ciphertext,
    a_wrong_key_id_is_an_incorrect_key,
    plaintext_limits_are_kms_limits,
    disabled_and_pending_deletion_keys_refuse_use_with_their_errors,
    rotation_keeps_old_material_so_old_ciphertexts_decrypt,
    on_demand_rotations_are_bounded,
    aliases_resolve_by_name_and_arn_and_refuse_reserved_names,
    key_references_in_other_forms_are_not_found,
    listings_page_through_every_key_and_alias,
    a_wrong_master_key_is_refused_before_anything_is_read,
    rotating_the_master_key_reseals_every_material,
    nothing_secret_is_stored_in_the_clear,
    every_write_bumps_the_generation_and_a_stale_write_writes_nothing,
);

proptest::proptest! {
    // Sealed environments and code come from the data directory: whatever bytes are there,
    // opening them refuses or succeeds, never panics, and only the real thing opens.
    #[test]
    fn opening_arbitrary_envelopes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        static KMS: std::sync::OnceLock<(Place, Kms)> = std::sync::OnceLock::new();
        let (_, kms) = KMS.get_or_init(|| {
            let f = fixture(Place::sqlite());
            (f.place, f.kms)
        });
        let context = crate::envelope::function_context("f");
        proptest::prop_assert!(envelope::open(kms, &context, &bytes).is_err());
        let _ = envelope::wrapped_key(&bytes);
    }
}

#[test]
fn a_kms_db_written_before_generations_existed_opens_unchanged() {
    let f = fixture(Place::sqlite());
    let arn = key(&f);
    let (blob, _) = f.kms.encrypt(&arn, b"old", &ctx(&[])).unwrap();
    drop(f.kms);
    let Place::Sqlite(dir) = &f.place else {
        unreachable!()
    };
    let conn = rusqlite::Connection::open(dir.path().join("kms.db")).unwrap();
    assert_eq!(
        conn.execute("DELETE FROM meta WHERE name = 'generation'", [])
            .unwrap(),
        1
    );
    drop(conn);
    let again = open(&f.place, f.master.clone(), &f.clock).unwrap();
    assert_eq!(f.place.backend().generation().unwrap(), 0);
    assert_eq!(
        again.decrypt(&blob, &ctx(&[]), None).unwrap().0.as_slice(),
        b"old"
    );
    again.set_enabled(&arn, false).unwrap();
    assert_eq!(f.place.backend().generation().unwrap(), 1);
}

/// Several nodes on one PostgreSQL database, given the same master key.
mod shared {
    use std::sync::atomic::AtomicI64;
    use std::sync::{Arc, Barrier};

    use warden_types::seal::BlobSealer as _;

    use super::{ctx, master, Place};
    use crate::envelope::CodeSealer;
    use crate::store::KeyState;
    use crate::{Kms, KmsError, MasterKey, NewKey};

    fn clock() -> Arc<AtomicI64> {
        Arc::new(AtomicI64::new(1_700_000_000_000))
    }

    /// Two nodes on one fresh database, opened before any key exists.
    fn two_nodes() -> (Place, Kms, Kms) {
        let place = Place::postgres();
        let c = clock();
        let a = place.open_bare(master(), &c).unwrap();
        let b = place.open_bare(master(), &c).unwrap();
        (place, a, b)
    }

    #[test]
    fn a_key_made_on_one_node_encrypts_there_and_decrypts_on_another() {
        let (_place, a, b) = two_nodes();
        let arn = a.create_key(NewKey::default()).unwrap().arn.clone();
        let c = ctx(&[("k", "v")]);
        let (blob, _) = a.encrypt(&arn, b"across", &c).unwrap();
        // B never heard of the key: the unknown key in the ciphertext makes it reload.
        let (plain, k) = b.decrypt(&blob, &c, None).unwrap();
        assert_eq!(plain.as_slice(), b"across");
        assert_eq!(k.arn, arn);
        // An alias made on A resolves on B at once, and B encrypts for A.
        a.create_alias("alias/shared", &arn).unwrap();
        let (blob, _) = b.encrypt("alias/shared", b"back", &c).unwrap();
        assert_eq!(a.decrypt(&blob, &c, None).unwrap().0.as_slice(), b"back");
        // A material made by rotating on B decrypts on A (an unknown version reloads).
        b.rotate_on_demand(&arn).unwrap();
        let (blob, _) = b.encrypt(&arn, b"rotated", &c).unwrap();
        assert_eq!(a.decrypt(&blob, &c, None).unwrap().0.as_slice(), b"rotated");
        assert_eq!(a.resolve(&arn).unwrap().rotations().count(), 2);
        // A reference that exists nowhere is still not found.
        assert!(matches!(
            b.resolve("alias/nowhere"),
            Err(KmsError::NotFound(_))
        ));
    }

    #[test]
    fn a_data_key_from_one_node_decrypts_on_another() {
        let (_place, a, b) = two_nodes();
        let arn = a.create_key(NewKey::default()).unwrap().arn.clone();
        let c = ctx(&[("purpose", "data")]);
        let dk = a.generate_data_key(&arn, 32, &c).unwrap();
        let (plain, _) = b.decrypt(&dk.ciphertext, &c, Some(&arn)).unwrap();
        assert_eq!(plain.as_slice(), dk.plaintext.as_slice());
    }

    #[test]
    fn code_sealed_on_one_node_opens_on_another() {
        let (_place, a, b) = two_nodes();
        a.ensure_aws_managed_keys().unwrap();
        let sealer_a = CodeSealer::new(a.clone());
        let sealer_b = CodeSealer::new(b.clone());
        let zip = b"PK\x03\x04 some code".to_vec();
        let sealed = sealer_a.seal("sha-a", &zip).unwrap();
        assert_eq!(sealer_b.open("sha-a", &sealed).unwrap(), zip);
        assert!(sealer_b.open("sha-other", &sealed).is_err());
        // B seals under the same AWS managed key (it did not make one of its own).
        let sealed = sealer_b.seal("sha-b", &zip).unwrap();
        assert_eq!(sealer_a.open("sha-b", &sealed).unwrap(), zip);
        assert_eq!(
            a.resolve("alias/aws/lambda").unwrap().id(),
            b.resolve("alias/aws/lambda").unwrap().id()
        );
    }

    #[test]
    fn nodes_starting_at_once_make_one_aws_managed_key_of_each_service() {
        let place = Arc::new(Place::postgres());
        let nodes = 4;
        let barrier = Arc::new(Barrier::new(nodes));
        let threads: Vec<_> = (0..nodes)
            .map(|_| {
                let place = place.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let kms = place.open_bare(master(), &clock()).unwrap();
                    kms.ensure_aws_managed_keys().unwrap();
                    kms
                })
            })
            .collect();
        let kms: Vec<Kms> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let dump = place.dump();
        assert_eq!(dump.keys.len(), crate::AWS_MANAGED.len(), "{:?}", dump.keys);
        assert_eq!(dump.aliases.len(), crate::AWS_MANAGED.len());
        for service in crate::AWS_MANAGED {
            let alias = format!("alias/aws/{service}");
            let stored = dump.aliases.iter().find(|a| a.0 == alias).unwrap().1;
            for k in &kms {
                assert_eq!(k.resolve(&alias).unwrap().id(), stored);
            }
        }
    }

    #[test]
    fn a_node_with_another_master_key_is_refused() {
        let (place, a, _b) = two_nodes();
        let arn = a.create_key(NewKey::default()).unwrap().arn.clone();
        let other = MasterKey::from_bytes(&[1; 32]).unwrap();
        let e = place.open_bare(other, &clock()).err().unwrap();
        assert!(matches!(e, KmsError::WrongMasterKey { .. }), "{e}");
        // Nothing was changed: the right key still opens everything.
        let c = place.open_bare(master(), &clock()).unwrap();
        assert!(c.resolve(&arn).is_ok());
    }

    #[test]
    fn of_nodes_first_starting_at_once_with_different_master_keys_one_wins() {
        let place = Arc::new(Place::postgres());
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = [[3u8; 32], [4u8; 32]]
            .into_iter()
            .map(|bytes| {
                let place = place.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    place
                        .open_bare(MasterKey::from_bytes(&bytes).unwrap(), &clock())
                        .map(|_| ())
                })
            })
            .collect();
        let results: Vec<Result<(), KmsError>> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(results
            .iter()
            .any(|r| matches!(r, Err(KmsError::WrongMasterKey { .. }))));
    }

    #[test]
    fn a_key_disabled_on_one_node_is_refused_by_another_after_refresh() {
        let (_place, a, b) = two_nodes();
        let arn = a.create_key(NewKey::default()).unwrap().arn.clone();
        let (blob, _) = b.encrypt(&arn, b"x", &ctx(&[])).unwrap();
        assert!(!b.refresh().unwrap(), "B reloaded on its miss already");
        a.set_enabled(&arn, false).unwrap();
        // Until B refreshes, its copy says enabled (the documented staleness).
        assert!(b.encrypt(&arn, b"x", &ctx(&[])).is_ok());
        assert!(b.refresh().unwrap());
        assert!(!b.refresh().unwrap());
        assert!(matches!(
            b.encrypt(&arn, b"x", &ctx(&[])),
            Err(KmsError::Disabled(_))
        ));
        assert!(matches!(
            b.decrypt(&blob, &ctx(&[]), None),
            Err(KmsError::Disabled(_))
        ));
    }

    #[test]
    fn a_key_enabled_on_one_node_works_on_another_at_once() {
        let (_place, a, b) = two_nodes();
        let arn = a.create_key(NewKey::default()).unwrap().arn.clone();
        let c = ctx(&[]);
        let (blob, _) = a.encrypt(&arn, b"x", &c).unwrap();
        a.set_enabled(&arn, false).unwrap();
        // B learns of the key disabled.
        assert!(matches!(
            b.encrypt(&arn, b"x", &c),
            Err(KmsError::Disabled(_))
        ));
        let disabled_at = b.generation();
        a.set_enabled(&arn, true).unwrap();
        // B's copy says disabled; the refusal makes it reload once, and the key works.
        assert!(b.encrypt(&arn, b"y", &c).is_ok());
        assert!(b.generation() > disabled_at);
        a.set_enabled(&arn, false).unwrap();
        assert!(b.refresh().unwrap());
        a.set_enabled(&arn, true).unwrap();
        assert_eq!(b.decrypt(&blob, &c, None).unwrap().0.as_slice(), b"x");
        a.set_enabled(&arn, false).unwrap();
        assert!(b.refresh().unwrap());
        a.set_enabled(&arn, true).unwrap();
        assert!(b.generate_data_key(&arn, 16, &c).is_ok());
        // A key the store holds disabled is still refused after the attempted reload.
        a.set_enabled(&arn, false).unwrap();
        assert!(b.refresh().unwrap());
        assert!(matches!(
            b.encrypt(&arn, b"x", &c),
            Err(KmsError::Disabled(_))
        ));
        assert!(matches!(
            b.decrypt(&blob, &c, None),
            Err(KmsError::Disabled(_))
        ));
    }

    #[test]
    fn a_change_refused_on_a_stale_copy_is_decided_again() {
        let (_place, a, b) = two_nodes();
        let arn = a.create_key(NewKey::default()).unwrap().arn.clone();
        a.set_enabled(&arn, false).unwrap();
        a.create_alias("alias/old", &arn).unwrap();
        assert_eq!(b.resolve(&arn).unwrap().record.state, KeyState::Disabled);
        assert!(b.resolve("alias/old").is_ok());
        a.set_enabled(&arn, true).unwrap();
        a.delete_alias("alias/old").unwrap();
        // B's copy says disabled (rotation needs an enabled key) and the alias taken; the
        // store says otherwise, and B decides on what the store says.
        let k = b.enable_rotation(&arn, None).unwrap();
        assert_eq!(k.record.state, KeyState::Enabled);
        assert!(k.record.rotation.is_some());
        b.create_alias("alias/old", &arn).unwrap();
        assert!(a.refresh().unwrap());
        assert!(a.resolve(&arn).unwrap().record.rotation.is_some());
        assert_eq!(a.resolve("alias/old").unwrap().arn, arn);
        // A refusal the store confirms stays a refusal.
        assert!(matches!(
            b.create_alias("alias/old", &arn),
            Err(KmsError::AlreadyExists(_))
        ));
    }

    #[test]
    fn a_change_decided_on_a_stale_copy_is_decided_again_and_loses_nothing() {
        let (_place, a, b) = two_nodes();
        let arn = a.create_key(NewKey::default()).unwrap().arn.clone();
        b.resolve(&arn).unwrap();
        a.set_enabled(&arn, false).unwrap();
        // B still thinks the key is enabled; its tag is written on top of A's change.
        let k = b
            .tag(&arn, vec![("team".to_owned(), "blue".to_owned())])
            .unwrap();
        assert_eq!(k.record.state, crate::store::KeyState::Disabled);
        assert!(a.refresh().unwrap());
        let k = a.resolve(&arn).unwrap();
        assert_eq!(k.record.state, crate::store::KeyState::Disabled);
        assert_eq!(k.record.tags, [("team".to_owned(), "blue".to_owned())]);
        // A change refused on the fresh copy is refused: an alias for a key another node
        // scheduled for deletion.
        a.set_enabled(&arn, true).unwrap();
        a.schedule_deletion(&arn, 7).unwrap();
        assert!(matches!(
            b.create_alias("alias/late", &arn),
            Err(KmsError::InvalidState(_))
        ));
    }
}
