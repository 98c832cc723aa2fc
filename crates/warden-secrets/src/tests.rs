//! The service over a real store and a real KMS, each test once per backend
//! (`tests::sqlite::NAME` on a temporary directory, `tests::postgres::NAME` on a database
//! of its own in a real PostgreSQL server the tests start).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::*;

const DAY: i64 = 86_400_000;
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Fixture {
    dir: tempfile::TempDir,
    /// The PostgreSQL database's URL, on that backend.
    url: Option<String>,
    master: warden_kms::MasterKey,
    clock: Arc<AtomicI64>,
    kms: warden_kms::Kms,
    secrets: Secrets,
}

fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let master = warden_kms::MasterKey::generate().unwrap();
    let clock = Arc::new(AtomicI64::new(1_700_000_000_000));
    let (url, kms, secrets) = match backend {
        Backend::Sqlite => {
            let kms = warden_kms::Kms::open(dir.path(), master.clone(), ACCOUNT, REGION).unwrap();
            kms.ensure_aws_managed_keys().unwrap();
            let c = clock.clone();
            let secrets = Secrets::open_with_clock(
                dir.path(),
                kms.clone(),
                ACCOUNT,
                REGION,
                Arc::new(move || c.load(Ordering::SeqCst)),
            )
            .unwrap();
            (None, kms, secrets)
        }
        Backend::Postgres => {
            let url = warden_testservers::Postgres::shared()
                .fresh_database()
                .unwrap();
            let (kms, secrets) = node(&url, &master, &clock);
            (Some(url), kms, secrets)
        }
    };
    Fixture {
        dir,
        url,
        master,
        clock,
        kms,
        secrets,
    }
}

/// A node on the PostgreSQL database at `url`: its KMS and its secrets, both shared.
fn node(
    url: &str,
    master: &warden_kms::MasterKey,
    clock: &Arc<AtomicI64>,
) -> (warden_kms::Kms, Secrets) {
    let kms = warden_kms::Kms::open_postgres(url, 2, master.clone(), ACCOUNT, REGION).unwrap();
    kms.ensure_aws_managed_keys().unwrap();
    let c = clock.clone();
    let secrets = Secrets::open_postgres_with_clock(
        url,
        2,
        kms.clone(),
        ACCOUNT,
        REGION,
        Arc::new(move || c.load(Ordering::SeqCst)),
    )
    .unwrap();
    (kms, secrets)
}

/// Every byte the backend stores secrets in.
fn stored_bytes(f: &Fixture) -> Vec<Vec<u8>> {
    match &f.url {
        None => vec![
            std::fs::read(f.dir.path().join("secrets.db")).unwrap(),
            std::fs::read(f.dir.path().join("secrets.db-wal")).unwrap_or_default(),
        ],
        Some(url) => {
            let mut c = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
            let mut out = Vec::new();
            for row in c.query("SELECT record::BYTEA FROM secrets", &[]).unwrap() {
                out.push(row.get(0));
            }
            for row in c
                .query("SELECT sealed, stages::BYTEA FROM secret_versions", &[])
                .unwrap()
            {
                out.push(row.get(0));
                out.push(row.get(1));
            }
            out
        }
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(super::fixture(super::Backend::Sqlite));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(super::fixture(super::Backend::Postgres));
                }
            )*
        }
    };
}

on_both_backends!(
    values_are_sealed_and_stages_move_as_secrets_manager_moves_them,
    tokens_make_puts_idempotent_and_versions_immutable,
    deletion_waits_for_its_window_and_can_be_undone,
    a_customer_key_seals_and_its_state_decides,
    version_stages_move_only_from_where_they_are,
    a_failed_rotation_leaves_awscurrent_and_a_successful_one_is_recorded,
    names_and_partial_arns_resolve_and_bad_names_do_not,
    the_stored_values_are_bounded_in_bytes,
);

fn s(v: &str) -> SecretValue {
    SecretValue::String(v.to_owned())
}

fn create(f: &Fixture, name: &str, value: &str) -> Secret {
    f.secrets
        .create(NewSecret {
            name: name.into(),
            value: Some(s(value)),
            ..NewSecret::default()
        })
        .unwrap()
        .0
}

fn values_are_sealed_and_stages_move_as_secrets_manager_moves_them(f: Fixture) {
    let secret = create(&f, "db/password", "marker-first-0c1f");
    assert!(secret
        .arn
        .starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:db/password-"));
    assert_eq!(
        secret.arn.len(),
        secret.arn.find("db/password-").unwrap() + "db/password-".len() + 6
    );
    let (_, v1, value) = f.secrets.get_value("db/password", None, None).unwrap();
    assert_eq!(value, s("marker-first-0c1f"));
    assert_eq!(v1.stages, [AWSCURRENT]);
    // A second value: it becomes current, the first previous.
    let (_, v2) = f
        .secrets
        .put_value(&secret.arn, None, &s("second"), None)
        .unwrap();
    let (_, versions) = f.secrets.describe("db/password").unwrap();
    let stages = |id: &str| versions.iter().find(|v| v.id == id).unwrap().stages.clone();
    assert_eq!(stages(&v2.id), [AWSCURRENT]);
    assert_eq!(stages(&v1.id), [AWSPREVIOUS]);
    let (_, _, prev) = f
        .secrets
        .get_value("db/password", None, Some(AWSPREVIOUS))
        .unwrap();
    assert_eq!(prev, s("marker-first-0c1f"));
    // A third: the first loses AWSPREVIOUS.
    let (_, v3) = f
        .secrets
        .put_value("db/password", None, &s("third"), None)
        .unwrap();
    let (_, versions) = f.secrets.describe("db/password").unwrap();
    let stages = |id: &str| versions.iter().find(|v| v.id == id).unwrap().stages.clone();
    assert!(stages(&v1.id).is_empty());
    assert_eq!(stages(&v2.id), [AWSPREVIOUS]);
    assert_eq!(stages(&v3.id), [AWSCURRENT]);
    // The store holds no value in the clear.
    for bytes in stored_bytes(&f) {
        assert!(!bytes.windows(17).any(|w| w == b"marker-first-0c1f"));
    }
}

fn tokens_make_puts_idempotent_and_versions_immutable(f: Fixture) {
    create(&f, "t", "a");
    let token = "0123456789abcdef0123456789abcdef";
    let (_, v) = f
        .secrets
        .put_value("t", Some(token), &s("b"), None)
        .unwrap();
    let (_, again) = f
        .secrets
        .put_value("t", Some(token), &s("b"), None)
        .unwrap();
    assert_eq!(v, again);
    assert!(matches!(
        f.secrets.put_value("t", Some(token), &s("c"), None),
        Err(SecretsError::Exists(_))
    ));
    assert!(matches!(
        f.secrets.put_value("t", Some("short"), &s("c"), None),
        Err(SecretsError::InvalidParameter(_))
    ));
    let big = SecretValue::Binary(vec![0; MAX_SECRET_BYTES + 1]);
    assert!(matches!(
        f.secrets.put_value("t", None, &big, None),
        Err(SecretsError::InvalidParameter(_))
    ));
}

fn deletion_waits_for_its_window_and_can_be_undone(f: Fixture) {
    create(&f, "gone", "x");
    assert!(matches!(
        f.secrets.delete("gone", Some(6), false),
        Err(SecretsError::InvalidParameter(_))
    ));
    assert!(
        f.secrets.delete("gone", Some(7), true).is_err(),
        "both options"
    );
    let d = f.secrets.delete("gone", Some(7), false).unwrap();
    assert_eq!(d.deleted_ms, Some(f.clock.load(Ordering::SeqCst) + 7 * DAY));
    assert!(matches!(
        f.secrets.get_value("gone", None, None),
        Err(SecretsError::InvalidRequest(_))
    ));
    assert!(matches!(
        f.secrets.create(NewSecret {
            name: "gone".into(),
            ..NewSecret::default()
        }),
        Err(SecretsError::InvalidRequest(_))
    ));
    f.secrets.restore("gone").unwrap();
    assert_eq!(f.secrets.get_value("gone", None, None).unwrap().2, s("x"));
    f.secrets.delete("gone", None, false).unwrap();
    f.clock.fetch_add(30 * DAY, Ordering::SeqCst);
    assert!(matches!(
        f.secrets.describe("gone"),
        Err(SecretsError::NotFound(_))
    ));
    // Forced: at once.
    create(&f, "now", "x");
    f.secrets.delete("now", None, true).unwrap();
    assert!(matches!(
        f.secrets.describe("now"),
        Err(SecretsError::NotFound(_))
    ));
}

fn a_customer_key_seals_and_its_state_decides(f: Fixture) {
    let key = f.kms.create_key(warden_kms::NewKey::default()).unwrap();
    f.secrets
        .create(NewSecret {
            name: "k".into(),
            kms_key_id: Some(key.arn.clone()),
            value: Some(s("v")),
            ..NewSecret::default()
        })
        .unwrap();
    f.kms.set_enabled(&key.arn, false).unwrap();
    let e = f.secrets.get_value("k", None, None).unwrap_err();
    assert_eq!(e.code(), "DecryptionFailure");
    assert!(e.to_string().contains("DisabledException"), "{e}");
    f.kms.set_enabled(&key.arn, true).unwrap();
    assert_eq!(f.secrets.get_value("k", None, None).unwrap().2, s("v"));
    assert!(f
        .secrets
        .create(NewSecret {
            name: "nokey".into(),
            kms_key_id: Some("alias/missing".into()),
            ..NewSecret::default()
        })
        .is_err());
}

fn version_stages_move_only_from_where_they_are(f: Fixture) {
    create(&f, "st", "a");
    let (_, versions) = f.secrets.describe("st").unwrap();
    let first = versions[0].id.clone();
    let (_, pending) = f
        .secrets
        .put_value("st", None, &s("b"), Some(vec![AWSPENDING.into()]))
        .unwrap();
    assert_eq!(f.secrets.get_value("st", None, None).unwrap().2, s("a"));
    // AWSCURRENT is on `first`: moving it without naming `first` is refused.
    assert!(matches!(
        f.secrets
            .move_version_stage("st", AWSCURRENT, None, Some(&pending.id)),
        Err(SecretsError::InvalidParameter(_))
    ));
    f.secrets
        .move_version_stage("st", AWSCURRENT, Some(&first), Some(&pending.id))
        .unwrap();
    assert_eq!(f.secrets.get_value("st", None, None).unwrap().2, s("b"));
    assert_eq!(
        f.secrets
            .get_value("st", None, Some(AWSPREVIOUS))
            .unwrap()
            .2,
        s("a")
    );
    assert!(matches!(
        f.secrets
            .move_version_stage("st", AWSCURRENT, Some(&pending.id), None),
        Err(SecretsError::InvalidParameter(_))
    ));
}

fn a_failed_rotation_leaves_awscurrent_and_a_successful_one_is_recorded(f: Fixture) {
    create(&f, "rot", "old");
    let token = "11111111111111111111111111111111";
    f.secrets.check_no_pending("rot").unwrap();
    f.secrets
        .put_value("rot", Some(token), &s("new"), Some(vec![AWSPENDING.into()]))
        .unwrap();
    assert!(
        f.secrets.check_no_pending("rot").is_err(),
        "a rotation is pending"
    );
    assert!(!f.secrets.finish_rotation("rot", token).unwrap());
    assert_eq!(f.secrets.get_value("rot", None, None).unwrap().2, s("old"));
    f.secrets.check_no_pending("rot").unwrap();
    let token2 = "22222222222222222222222222222222";
    f.secrets
        .put_value(
            "rot",
            Some(token2),
            &s("newer"),
            Some(vec![AWSPENDING.into()]),
        )
        .unwrap();
    let (_, versions) = f.secrets.describe("rot").unwrap();
    let current = versions
        .iter()
        .find(|v| v.stages.iter().any(|s| s == AWSCURRENT))
        .unwrap();
    f.secrets
        .move_version_stage("rot", AWSCURRENT, Some(&current.id), Some(token2))
        .unwrap();
    assert!(f.secrets.finish_rotation("rot", token2).unwrap());
    assert_eq!(
        f.secrets.get_value("rot", None, None).unwrap().2,
        s("newer")
    );
    assert!(f
        .secrets
        .describe("rot")
        .unwrap()
        .0
        .last_rotated_ms
        .is_some());
    // Scheduled: due after its interval.
    f.secrets
        .set_rotation(
            "rot",
            Rotation {
                lambda_arn: "arn:aws:lambda:us-east-1:123456789012:function:r".into(),
                after_days: None,
                schedule: Some("rate(2 days)".into()),
                next_ms: None,
            },
        )
        .unwrap();
    assert!(f.secrets.claim_due_rotations().unwrap().is_empty());
    f.clock.fetch_add(2 * DAY, Ordering::SeqCst);
    // Due: claimed once, then not again until another interval has passed.
    assert_eq!(f.secrets.claim_due_rotations().unwrap().len(), 1);
    assert!(f.secrets.claim_due_rotations().unwrap().is_empty());
    // A rotation still running (a pending version not yet current) is not claimed.
    f.clock.fetch_add(2 * DAY, Ordering::SeqCst);
    f.secrets
        .put_value(
            "rot",
            Some("33333333333333333333333333333333"),
            &s("pending"),
            Some(vec![AWSPENDING.into()]),
        )
        .unwrap();
    assert!(f.secrets.claim_due_rotations().unwrap().is_empty());
    f.secrets
        .finish_rotation("rot", "33333333333333333333333333333333")
        .unwrap();
    f.clock.fetch_add(2 * DAY, Ordering::SeqCst);
    assert_eq!(f.secrets.claim_due_rotations().unwrap().len(), 1);
    assert!(f
        .secrets
        .set_rotation(
            "rot",
            Rotation {
                lambda_arn: "x".into(),
                after_days: None,
                schedule: Some("cron(0 0 * * ? *)".into()),
                next_ms: None,
            },
        )
        .is_err());
}

fn names_and_partial_arns_resolve_and_bad_names_do_not(f: Fixture) {
    let secret = create(&f, "app/key", "x");
    let partial = format!("{}app/key", f.secrets.arn_prefix());
    assert_eq!(f.secrets.resolve(&partial).unwrap().arn, secret.arn);
    assert_eq!(f.secrets.resolve(&secret.arn).unwrap().name, "app/key");
    for bad in ["", "sp ace", &"x".repeat(513), "semi;colon"] {
        assert!(check_name(bad).is_err(), "{bad}");
    }
    assert!(matches!(
        f.secrets.resolve("nope"),
        Err(SecretsError::NotFound(_))
    ));
}

fn the_stored_values_are_bounded_in_bytes(f: Fixture) {
    f.secrets.set_max_stored_bytes(3_500);
    create(&f, "a", &"x".repeat(1_000));
    create(&f, "b", &"x".repeat(1_000));
    // Each sealed value takes its bytes and about 120 more: a 1,500-byte one no longer fits.
    assert!(matches!(
        f.secrets.put_value("a", None, &s(&"y".repeat(1_500)), None),
        Err(SecretsError::LimitExceeded(_))
    ));
    // Deleting a secret gives its room back.
    f.secrets.delete("b", None, true).unwrap();
    f.secrets
        .put_value("a", None, &s(&"y".repeat(1_500)), None)
        .unwrap();
}

// Several nodes on one PostgreSQL database: each `node` below is what a `warden serve`
// of a deployment opens.

#[test]
fn a_secret_one_node_made_is_read_and_changed_on_another() {
    let f = fixture(Backend::Postgres);
    let url = f.url.clone().unwrap();
    let (_, other) = node(&url, &f.master, &f.clock);
    let secret = create(&f, "shared/db", "marker-shared-77aa");
    let (read, _, value) = other.get_value("shared/db", None, None).unwrap();
    assert_eq!(read.arn, secret.arn);
    assert_eq!(value, s("marker-shared-77aa"));
    let (_, v2) = other
        .put_value(&secret.arn, None, &s("second"), None)
        .unwrap();
    assert_eq!(
        f.secrets.get_value("shared/db", None, None).unwrap().2,
        s("second")
    );
    assert_eq!(
        f.secrets
            .get_value("shared/db", None, Some(AWSPREVIOUS))
            .unwrap()
            .2,
        s("marker-shared-77aa")
    );
    let (_, versions) = f.secrets.describe("shared/db").unwrap();
    let current = versions
        .iter()
        .find(|v| v.stages.iter().any(|s| s == AWSCURRENT))
        .unwrap();
    assert_eq!(current.id, v2.id);
    other.delete("shared/db", None, true).unwrap();
    assert!(matches!(
        f.secrets.get_value("shared/db", None, None),
        Err(SecretsError::NotFound(_))
    ));
}

#[test]
fn nodes_racing_on_one_name_make_it_once_and_keep_one_current_version() {
    let f = fixture(Backend::Postgres);
    let url = f.url.clone().unwrap();
    let nodes: Vec<Secrets> = (0..4).map(|_| node(&url, &f.master, &f.clock).1).collect();
    let made: Vec<Result<(Secret, Option<Version>), SecretsError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| {
                scope.spawn(move || {
                    n.create(NewSecret {
                        name: "raced".into(),
                        value: Some(s("v")),
                        ..NewSecret::default()
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(made.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(made
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, SecretsError::Exists(_))));
    // Every node adds five values at once: all 21 versions stay, one is current, one
    // previous.
    std::thread::scope(|scope| {
        for (i, n) in nodes.iter().enumerate() {
            scope.spawn(move || {
                for j in 0..5 {
                    n.put_value("raced", None, &s(&format!("{i}-{j}")), None)
                        .unwrap();
                }
            });
        }
    });
    let (_, versions) = f.secrets.describe("raced").unwrap();
    assert_eq!(versions.len(), 21);
    let with = |stage: &str| {
        versions
            .iter()
            .filter(|v| v.stages.iter().any(|s| s == stage))
            .count()
    };
    assert_eq!(with(AWSCURRENT), 1);
    assert_eq!(with(AWSPREVIOUS), 1);
}

#[test]
fn a_due_rotation_is_claimed_by_one_node_of_many() {
    let f = fixture(Backend::Postgres);
    let url = f.url.clone().unwrap();
    let nodes: Vec<Secrets> = (0..4).map(|_| node(&url, &f.master, &f.clock).1).collect();
    for name in ["a", "b", "c"] {
        create(&f, name, "x");
        f.secrets
            .set_rotation(
                name,
                Rotation {
                    lambda_arn: "arn:aws:lambda:us-east-1:123456789012:function:r".into(),
                    after_days: Some(1),
                    schedule: None,
                    next_ms: None,
                },
            )
            .unwrap();
    }
    f.clock.fetch_add(DAY, Ordering::SeqCst);
    let claims: Vec<Vec<Secret>> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| scope.spawn(move || n.claim_due_rotations().unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut names: Vec<String> = claims.into_iter().flatten().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
}
