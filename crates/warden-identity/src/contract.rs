//! The identity store's contract, tested once for every backend: each test here is a
//! function of a [`Fixture`], and `contract_tests!` turns the list of them into one
//! `#[test]` per backend (`contract::sqlite::<name>` and `contract::postgres::<name>`).
//!
//! The PostgreSQL backend runs against a real server the tests start
//! (`warden_testservers::Postgres::shared`), each test in a database of its own.

use std::sync::{Arc, Barrier};

use crate::store::{
    Holder, IdentityStore, InlinePolicy, KeyStatus, KeyUsage, ManagedPolicy, Role,
    SqliteIdentityStore, StoredKey, User,
};
use crate::PostgresIdentityStore;

/// The backends every contract test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One empty store of one backend, and how to open another on the same data.
struct Fixture {
    /// The store under test.
    store: Arc<dyn IdentityStore>,
    /// The SQLite file or the PostgreSQL URL.
    reopen: Reopen,
    _dir: Option<tempfile::TempDir>,
}

enum Reopen {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Fixture {
    fn new(backend: Backend) -> Fixture {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("identity.db");
                Fixture {
                    store: Arc::new(SqliteIdentityStore::open(&path).unwrap()),
                    reopen: Reopen::Sqlite(path),
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let url = warden_testservers::Postgres::shared()
                    .fresh_database()
                    .unwrap();
                Fixture {
                    store: Arc::new(PostgresIdentityStore::open(&url, 2).unwrap()),
                    reopen: Reopen::Postgres(url),
                    _dir: None,
                }
            }
        }
    }

    /// A second store on the same data, as another process or node opens it.
    fn reopen(&self) -> Arc<dyn IdentityStore> {
        match &self.reopen {
            Reopen::Sqlite(path) => Arc::new(SqliteIdentityStore::open(path).unwrap()),
            Reopen::Postgres(url) => Arc::new(PostgresIdentityStore::open(url, 2).unwrap()),
        }
    }
}

/// `contract_tests!(a, b)` defines, for each name, a `#[test]` in module `sqlite` and one
/// in module `postgres` that call `a(&Fixture::new(backend))`.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Fixture::new(super::Backend::Sqlite));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Fixture::new(super::Backend::Postgres));
                }
            )*
        }
    };
}

contract_tests!(
    entities_survive_reopening,
    names_are_unique_ignoring_case,
    delete_user_conflicts_until_dependents_are_gone,
    quotas_are_enforced,
    writes_to_missing_entities_fail_with_no_such_entity,
    key_status_updates_and_debug_redacts_the_secret,
    policy_versions_are_numbered_capped_and_guarded,
    aws_managed_policies_live_beside_customer_policies_of_the_same_name,
    key_usage_is_recorded_in_one_batch,
    every_write_moves_the_generation_by_one_and_a_refused_one_does_not,
    a_snapshot_holds_exactly_the_writes_up_to_its_generation,
    two_stores_racing_on_one_name_make_it_once,
    a_deleted_key_written_through_one_store_is_gone_from_the_others_load,
    names_keep_their_case_and_compare_without_it,
);

fn user(name: &str) -> User {
    User {
        name: name.into(),
        id: format!("AIDA{name}"),
        arn: format!("arn:aws:iam::123456789012:user/{name}"),
        path: "/".into(),
        tags: vec![("team".into(), "a".into())],
        created_ms: 1,
    }
}

fn key(id: &str, user: &str) -> StoredKey {
    StoredKey {
        id: id.into(),
        user_name: user.into(),
        status: KeyStatus::Active,
        sealed_secret: vec![1, 2, 3],
        created_ms: 2,
        last_used_ms: None,
        last_used_service: None,
        last_used_region: None,
    }
}

fn role(name: &str) -> Role {
    Role {
        name: name.into(),
        id: format!("AROA{name}"),
        arn: format!("arn:aws:iam::123456789012:role/{name}"),
        path: "/".into(),
        trust_policy: "{}".into(),
        description: Some("d".into()),
        max_session_duration_s: 3600,
        tags: vec![],
        created_ms: 3,
    }
}

fn managed(name: &str) -> ManagedPolicy {
    ManagedPolicy {
        name: name.into(),
        id: format!("ANPA{name}"),
        arn: format!("arn:aws:iam::123456789012:policy/{name}"),
        path: "/".into(),
        document: "{}".into(),
        description: None,
        created_ms: 4,
        default_version: "v1".into(),
        updated_ms: 4,
    }
}

fn entities_survive_reopening(f: &Fixture) {
    let s = &f.store;
    let inline = InlinePolicy {
        holder: Holder::User("alice".into()),
        name: "p".into(),
        document: "{\"a\":1}".into(),
    };
    s.create_user(
        &user("alice"),
        std::slice::from_ref(&inline),
        Some(&key("AKIA1", "alice")),
    )
    .unwrap();
    s.create_role(&role("r")).unwrap();
    s.create_managed_policy(&managed("m")).unwrap();
    s.attach_policy(&Holder::Role("r".into()), &managed("m").arn, 10)
        .unwrap();
    let s = f.reopen();
    let d = s.load().unwrap();
    assert_eq!(d.users, vec![user("alice")]);
    assert_eq!(d.keys, vec![key("AKIA1", "alice")]);
    assert_eq!(d.roles, vec![role("r")]);
    assert_eq!(d.inline, vec![inline]);
    assert_eq!(d.policies, vec![managed("m")]);
    assert_eq!(
        d.attachments,
        vec![(Holder::Role("r".into()), managed("m").arn)]
    );
}

fn names_are_unique_ignoring_case(f: &Fixture) {
    let s = &f.store;
    s.create_user(&user("alice"), &[], None).unwrap();
    let e = s.create_user(&user("ALICE"), &[], None).unwrap_err();
    assert_eq!(e.code(), "EntityAlreadyExists");
    assert_eq!(e.to_string(), "User with name `ALICE` already exists.");
    s.create_role(&role("r")).unwrap();
    assert_eq!(
        s.create_role(&role("R")).unwrap_err().code(),
        "EntityAlreadyExists"
    );
}

fn delete_user_conflicts_until_dependents_are_gone(f: &Fixture) {
    let s = &f.store;
    s.create_user(&user("bob"), &[], Some(&key("AKIA1", "bob")))
        .unwrap();
    assert_eq!(s.delete_user("bob").unwrap_err().code(), "DeleteConflict");
    s.delete_access_key("bob", "AKIA1").unwrap();
    let holder = Holder::User("bob".into());
    s.put_inline_policy(&InlinePolicy {
        holder: holder.clone(),
        name: "p".into(),
        document: "{}".into(),
    })
    .unwrap();
    assert_eq!(s.delete_user("bob").unwrap_err().code(), "DeleteConflict");
    s.delete_inline_policy(&holder, "p").unwrap();
    s.create_managed_policy(&managed("m")).unwrap();
    s.attach_policy(&holder, &managed("m").arn, 10).unwrap();
    assert_eq!(s.delete_user("bob").unwrap_err().code(), "DeleteConflict");
    assert_eq!(
        s.delete_managed_policy(&managed("m").arn)
            .unwrap_err()
            .code(),
        "DeleteConflict"
    );
    s.detach_policy(&holder, &managed("m").arn).unwrap();
    s.delete_user("bob").unwrap();
    s.delete_managed_policy(&managed("m").arn).unwrap();
    assert_eq!(s.delete_user("bob").unwrap_err().code(), "NoSuchEntity");
    assert!(s.load().unwrap().users.is_empty());
}

fn quotas_are_enforced(f: &Fixture) {
    let s = &f.store;
    s.create_user(&user("u"), &[], None).unwrap();
    s.create_access_key(&key("AKIA1", "u"), 2).unwrap();
    s.create_access_key(&key("AKIA2", "u"), 2).unwrap();
    let e = s.create_access_key(&key("AKIA3", "u"), 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot exceed quota for AccessKeysPerUser: 2"
    );
    s.create_managed_policy(&managed("a")).unwrap();
    s.create_managed_policy(&managed("b")).unwrap();
    let h = Holder::User("u".into());
    s.attach_policy(&h, &managed("a").arn, 1).unwrap();
    // Re-attaching the same policy is idempotent, not over quota.
    s.attach_policy(&h, &managed("a").arn, 1).unwrap();
    assert_eq!(
        s.attach_policy(&h, &managed("b").arn, 1)
            .unwrap_err()
            .code(),
        "LimitExceeded"
    );
}

fn writes_to_missing_entities_fail_with_no_such_entity(f: &Fixture) {
    let s = &f.store;
    assert_eq!(
        s.create_access_key(&key("AKIA1", "ghost"), 2)
            .unwrap_err()
            .to_string(),
        "The user with name `ghost` cannot be found."
    );
    assert_eq!(
        s.set_role_trust_policy("ghost", "{}").unwrap_err().code(),
        "NoSuchEntity"
    );
    assert_eq!(
        s.set_access_key_status("ghost", "AKIA1", KeyStatus::Inactive)
            .unwrap_err()
            .code(),
        "NoSuchEntity"
    );
    s.create_role(&role("r")).unwrap();
    assert_eq!(
        s.attach_policy(
            &Holder::Role("r".into()),
            "arn:aws:iam::123456789012:policy/x",
            10
        )
        .unwrap_err()
        .code(),
        "NoSuchEntity"
    );
}

fn key_status_updates_and_debug_redacts_the_secret(f: &Fixture) {
    let s = &f.store;
    s.create_user(&user("u"), &[], Some(&key("AKIA1", "u")))
        .unwrap();
    s.set_access_key_status("u", "AKIA1", KeyStatus::Inactive)
        .unwrap();
    let d = s.load().unwrap();
    assert_eq!(d.keys[0].status, KeyStatus::Inactive);
    let dbg = format!("{:?}", d.keys[0]);
    assert!(
        dbg.contains("<redacted>") && !dbg.contains("[1, 2, 3]"),
        "{dbg}"
    );
}

fn policy_versions_are_numbered_capped_and_guarded(f: &Fixture) {
    let s = &f.store;
    let m = managed("m");
    s.create_managed_policy(&m).unwrap();
    let v = |doc: &str, default: bool| s.create_policy_version(&m.arn, doc, 5, default, 3);
    assert_eq!(v("{\"a\":2}", false).unwrap(), "v2");
    assert_eq!(v("{\"a\":3}", true).unwrap(), "v3");
    let e = v("{}", false).unwrap_err();
    assert_eq!(e.code(), "LimitExceeded", "{e}");
    let d = s.load().unwrap();
    assert_eq!(d.policies[0].default_version, "v3");
    assert_eq!(d.policies[0].document, "{\"a\":3}");
    assert_eq!(
        d.versions
            .iter()
            .map(|v| v.version_id.as_str())
            .collect::<Vec<_>>(),
        ["v1", "v2", "v3"]
    );
    assert_eq!(
        s.delete_policy_version(&m.arn, "v3").unwrap_err().code(),
        "DeleteConflict"
    );
    assert_eq!(
        s.delete_policy_version(&m.arn, "v9").unwrap_err().code(),
        "NoSuchEntity"
    );
    s.delete_policy_version(&m.arn, "v2").unwrap();
    // Ids are never reused.
    assert_eq!(v("{}", false).unwrap(), "v4");
    assert_eq!(
        s.set_default_policy_version(&m.arn, "v2", 6)
            .unwrap_err()
            .code(),
        "NoSuchEntity"
    );
    s.set_default_policy_version(&m.arn, "v1", 6).unwrap();
    assert_eq!(s.load().unwrap().policies[0].document, "{}");
    // A policy with several versions cannot be deleted until they are.
    let e = s.delete_managed_policy(&m.arn).unwrap_err();
    assert_eq!(e.code(), "DeleteConflict");
    assert!(e.to_string().contains("more than one version"), "{e}");
    s.delete_policy_version(&m.arn, "v3").unwrap();
    s.delete_policy_version(&m.arn, "v4").unwrap();
    s.delete_managed_policy(&m.arn).unwrap();
    let d = s.load().unwrap();
    assert!(d.policies.is_empty() && d.versions.is_empty());
}

fn aws_managed_policies_live_beside_customer_policies_of_the_same_name(f: &Fixture) {
    let s = &f.store;
    s.create_managed_policy(&managed("AdministratorAccess"))
        .unwrap();
    let aws = ManagedPolicy {
        arn: "arn:aws:iam::aws:policy/AdministratorAccess".into(),
        id: "ANPAAWS".into(),
        default_version: "v7".into(),
        document: "{\"v\":1}".into(),
        ..managed("AdministratorAccess")
    };
    s.put_aws_managed_policy(&aws).unwrap();
    s.attach_policy(&Holder::Role("r".into()), &aws.arn, 10)
        .unwrap_err();
    s.create_role(&role("r")).unwrap();
    s.attach_policy(&Holder::Role("r".into()), &aws.arn, 10)
        .unwrap();
    // Refreshing it (a newer document) keeps its attachments.
    s.put_aws_managed_policy(&ManagedPolicy {
        document: "{\"v\":2}".into(),
        ..aws.clone()
    })
    .unwrap();
    let d = s.load().unwrap();
    assert_eq!(d.policies.len(), 2);
    let got = d.policies.iter().find(|p| p.arn == aws.arn).unwrap();
    assert_eq!(got.document, "{\"v\":2}");
    assert_eq!(got.default_version, "v7");
    assert_eq!(d.attachments.len(), 1);
    // A second customer policy of that name is still refused.
    let dup = ManagedPolicy {
        arn: "arn:aws:iam::123456789012:policy/x/AdministratorAccess".into(),
        id: "ANPAother".into(),
        ..managed("administratoraccess")
    };
    assert_eq!(
        s.create_managed_policy(&dup).unwrap_err().code(),
        "EntityAlreadyExists"
    );
}

fn key_usage_is_recorded_in_one_batch(f: &Fixture) {
    let s = &f.store;
    s.create_user(&user("u"), &[], Some(&key("AKIA1", "u")))
        .unwrap();
    s.record_key_usage(&[
        KeyUsage {
            key_id: "AKIA1".into(),
            at_ms: 42,
            service: "lambda".into(),
            region: "us-east-1".into(),
        },
        KeyUsage {
            key_id: "AKIAGONE".into(),
            at_ms: 43,
            service: "iam".into(),
            region: "us-east-1".into(),
        },
    ])
    .unwrap();
    let k = &s.load().unwrap().keys[0];
    assert_eq!(k.last_used_ms, Some(42));
    assert_eq!(k.last_used_service.as_deref(), Some("lambda"));
    assert_eq!(k.last_used_region.as_deref(), Some("us-east-1"));
}

/// Every write of the trait, in an order in which each succeeds on an empty store.
#[allow(clippy::type_complexity, reason = "a table of closures")]
fn every_write() -> Vec<(&'static str, Box<dyn Fn(&dyn IdentityStore)>)> {
    let m = managed("m").arn;
    let aws = ManagedPolicy {
        arn: "arn:aws:iam::aws:policy/ReadOnly".into(),
        id: "ANPAAWS".into(),
        ..managed("ReadOnly")
    };
    let u = || Holder::User("u".into());
    let inline = InlinePolicy {
        holder: u(),
        name: "p".into(),
        document: "{}".into(),
    };
    let m2 = m.clone();
    let m3 = m.clone();
    let m4 = m.clone();
    let m5 = m.clone();
    let m6 = m.clone();
    vec![
        (
            "create_user",
            Box::new(|s: &dyn IdentityStore| s.create_user(&user("u"), &[], None).unwrap()),
        ),
        (
            "set_user_tags",
            Box::new(|s: &dyn IdentityStore| {
                s.set_user_tags("u", &vec![("k".into(), "v".into())])
                    .unwrap()
            }),
        ),
        (
            "create_access_key",
            Box::new(|s: &dyn IdentityStore| s.create_access_key(&key("AKIA1", "u"), 2).unwrap()),
        ),
        (
            "set_access_key_status",
            Box::new(|s: &dyn IdentityStore| {
                s.set_access_key_status("u", "AKIA1", KeyStatus::Inactive)
                    .unwrap()
            }),
        ),
        (
            "record_key_usage",
            Box::new(|s: &dyn IdentityStore| {
                s.record_key_usage(&[KeyUsage {
                    key_id: "AKIA1".into(),
                    at_ms: 9,
                    service: "iam".into(),
                    region: "us-east-1".into(),
                }])
                .unwrap()
            }),
        ),
        (
            "reseal_secrets",
            Box::new(|s: &dyn IdentityStore| {
                assert_eq!(
                    s.reseal_secrets(&|_, sealed| Ok(sealed.to_vec())).unwrap(),
                    1
                )
            }),
        ),
        (
            "put_inline_policy",
            Box::new(move |s: &dyn IdentityStore| s.put_inline_policy(&inline).unwrap()),
        ),
        (
            "create_role",
            Box::new(|s: &dyn IdentityStore| s.create_role(&role("r")).unwrap()),
        ),
        (
            "set_role_trust_policy",
            Box::new(|s: &dyn IdentityStore| s.set_role_trust_policy("r", "{\"t\":1}").unwrap()),
        ),
        (
            "set_role_tags",
            Box::new(|s: &dyn IdentityStore| {
                s.set_role_tags("r", &vec![("k".into(), "v".into())])
                    .unwrap()
            }),
        ),
        (
            "update_role",
            Box::new(|s: &dyn IdentityStore| s.update_role("r", Some(None), Some(7200)).unwrap()),
        ),
        (
            "create_managed_policy",
            Box::new(|s: &dyn IdentityStore| s.create_managed_policy(&managed("m")).unwrap()),
        ),
        (
            "create_policy_version",
            Box::new(move |s: &dyn IdentityStore| {
                assert_eq!(s.create_policy_version(&m, "{}", 5, true, 5).unwrap(), "v2")
            }),
        ),
        (
            "set_default_policy_version",
            Box::new(move |s: &dyn IdentityStore| {
                s.set_default_policy_version(&m2, "v1", 6).unwrap()
            }),
        ),
        (
            "delete_policy_version",
            Box::new(move |s: &dyn IdentityStore| s.delete_policy_version(&m3, "v2").unwrap()),
        ),
        (
            "put_aws_managed_policy",
            Box::new(move |s: &dyn IdentityStore| s.put_aws_managed_policy(&aws).unwrap()),
        ),
        (
            "attach_policy",
            Box::new(move |s: &dyn IdentityStore| s.attach_policy(&u(), &m4, 10).unwrap()),
        ),
        (
            "detach_policy",
            Box::new(move |s: &dyn IdentityStore| s.detach_policy(&u(), &m5).unwrap()),
        ),
        (
            "delete_inline_policy",
            Box::new(move |s: &dyn IdentityStore| s.delete_inline_policy(&u(), "p").unwrap()),
        ),
        (
            "delete_access_key",
            Box::new(|s: &dyn IdentityStore| s.delete_access_key("u", "AKIA1").unwrap()),
        ),
        (
            "delete_managed_policy",
            Box::new(move |s: &dyn IdentityStore| s.delete_managed_policy(&m6).unwrap()),
        ),
        (
            "delete_role",
            Box::new(|s: &dyn IdentityStore| s.delete_role("r").unwrap()),
        ),
        (
            "delete_user",
            Box::new(|s: &dyn IdentityStore| s.delete_user("u").unwrap()),
        ),
    ]
}

fn every_write_moves_the_generation_by_one_and_a_refused_one_does_not(f: &Fixture) {
    let s = f.store.as_ref();
    let other = f.reopen();
    let mut g = s.generation().unwrap();
    assert_eq!(s.load().unwrap().generation, g);
    let writes = every_write();
    for (name, write) in &writes {
        write(s);
        let now = s.generation().unwrap();
        assert_eq!(now, g + 1, "{name} moves the generation by one");
        assert_eq!(s.load().unwrap().generation, now, "after {name}");
        assert_eq!(other.generation().unwrap(), now, "another store sees it");
        g = now;
    }
    // Refused writes roll back, generation included.
    s.create_user(&user("a"), &[], Some(&key("AKIA9", "a")))
        .unwrap();
    let g = s.generation().unwrap();
    let refused = [
        s.create_user(&user("A"), &[], None).unwrap_err(),
        s.delete_user("a").unwrap_err(),
        s.delete_user("ghost").unwrap_err(),
        s.create_access_key(&key("AKIA8", "a"), 1).unwrap_err(),
        s.delete_access_key("a", "AKIA0").unwrap_err(),
        s.create_policy_version("arn:aws:iam::123456789012:policy/none", "{}", 1, false, 5)
            .unwrap_err(),
        // A write whose second statement fails: the user is not left behind.
        s.create_user(&user("b"), &[], Some(&key("AKIA9", "b")))
            .unwrap_err(),
    ];
    assert_eq!(
        refused.iter().map(|e| e.code()).collect::<Vec<_>>(),
        [
            "EntityAlreadyExists",
            "DeleteConflict",
            "NoSuchEntity",
            "LimitExceeded",
            "NoSuchEntity",
            "NoSuchEntity",
            "ServiceFailure"
        ]
    );
    assert_eq!(s.generation().unwrap(), g);
    let d = s.load().unwrap();
    assert_eq!(d.generation, g);
    assert_eq!(d.users, vec![user("a")]);
    // Nothing to record is no write at all.
    s.record_key_usage(&[]).unwrap();
    assert_eq!(s.generation().unwrap(), g);
}

fn a_snapshot_holds_exactly_the_writes_up_to_its_generation(f: &Fixture) {
    let writer = Arc::clone(&f.store);
    let reader = f.reopen();
    let base = reader.generation().unwrap();
    const USERS: u64 = 40;
    let writing = std::thread::spawn(move || {
        for i in 0..USERS {
            writer
                .create_user(&user(&format!("u{i:02}")), &[], None)
                .unwrap();
        }
    });
    let mut seen = Vec::new();
    loop {
        let done = writing.is_finished();
        let d = reader.load().unwrap();
        // Each write made one user: a snapshot at generation g holds the first g - base.
        let expected: Vec<String> = (0..d.generation - base)
            .map(|i| format!("u{i:02}"))
            .collect();
        let names: Vec<String> = d.users.iter().map(|u| u.name.clone()).collect();
        assert_eq!(names, expected, "snapshot at generation {}", d.generation);
        seen.push(d.generation);
        if done {
            break;
        }
    }
    writing.join().unwrap();
    assert_eq!(seen.last().copied(), Some(base + USERS));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
}

fn two_stores_racing_on_one_name_make_it_once(f: &Fixture) {
    let stores = [Arc::clone(&f.store), f.reopen()];
    const ROUNDS: usize = 8;
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let s = Arc::clone(s);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    // The two spell the name differently (and so have different ids): it
                    // is the name, compared without case, that collides.
                    let name = if i == 0 {
                        format!("race{round}")
                    } else {
                        format!("RACE{round}")
                    };
                    barrier.wait();
                    let u = s.create_user(&user(&name), &[], None);
                    barrier.wait();
                    let r = s.create_role(&role(&name));
                    barrier.wait();
                    let p = s.create_managed_policy(&managed(&name));
                    [u, r, p].map(|r| r.map_err(|e| e.code()))
                })
            })
            .collect();
        let outcomes: Vec<[Result<(), &str>; 3]> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        for kind in 0..3 {
            let mut results: Vec<Result<(), &str>> = outcomes.iter().map(|o| o[kind]).collect();
            results.sort();
            assert_eq!(
                results,
                [Ok(()), Err("EntityAlreadyExists")],
                "round {round}, entity {kind}"
            );
        }
    }
    let d = stores[1].load().unwrap();
    assert_eq!(d.users.len(), ROUNDS);
    assert_eq!(d.roles.len(), ROUNDS);
    assert_eq!(d.policies.len(), ROUNDS);
    assert_eq!(d.versions.len(), ROUNDS);
}

fn a_deleted_key_written_through_one_store_is_gone_from_the_others_load(f: &Fixture) {
    let a = &f.store;
    let b = f.reopen();
    a.create_user(&user("u"), &[], Some(&key("AKIA1", "u")))
        .unwrap();
    a.create_access_key(&key("AKIA2", "u"), 2).unwrap();
    let ids = |d: &crate::store::Dump| d.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&b.load().unwrap()), ["AKIA1", "AKIA2"]);
    a.delete_access_key("u", "AKIA1").unwrap();
    let d = b.load().unwrap();
    assert_eq!(ids(&d), ["AKIA2"]);
    assert_eq!(d.generation, a.generation().unwrap());
    // And a deactivation likewise.
    a.set_access_key_status("u", "AKIA2", KeyStatus::Inactive)
        .unwrap();
    assert_eq!(b.load().unwrap().keys[0].status, KeyStatus::Inactive);
}

fn names_keep_their_case_and_compare_without_it(f: &Fixture) {
    let s = &f.store;
    for name in ["bob", "Alice", "carol"] {
        s.create_user(&user(name), &[], None).unwrap();
    }
    // Ordered without regard to case, spelled as created.
    let names = |s: &Arc<dyn IdentityStore>| {
        s.load()
            .unwrap()
            .users
            .into_iter()
            .map(|u| u.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(s), ["Alice", "bob", "carol"]);
    // Only ASCII letters fold, as SQLite's NOCASE does.
    s.create_user(&user("\u{e9}"), &[], None).unwrap();
    s.create_user(&user("\u{c9}"), &[], None).unwrap();
    s.set_user_tags("ALICE", &vec![("k".into(), "v".into())])
        .unwrap();
    let alice = |s: &Arc<dyn IdentityStore>| {
        s.load()
            .unwrap()
            .users
            .into_iter()
            .find(|u| u.name == "Alice")
            .unwrap()
    };
    assert_eq!(alice(s).tags, vec![("k".to_owned(), "v".to_owned())]);
    // An inline policy keeps the spelling it was first written with; a second write of
    // the same name in another case replaces its document.
    let put = |holder: &str, name: &str, doc: &str| {
        s.put_inline_policy(&InlinePolicy {
            holder: Holder::User(holder.into()),
            name: name.into(),
            document: doc.into(),
        })
    };
    put("alice", "Pol", "{\"a\":1}").unwrap();
    put("ALICE", "pOL", "{\"a\":2}").unwrap();
    let d = s.load().unwrap();
    assert_eq!(
        d.inline,
        vec![InlinePolicy {
            holder: Holder::User("alice".into()),
            name: "Pol".into(),
            document: "{\"a\":2}".into(),
        }]
    );
    // The holder of an attachment too, and detaching names it in any case.
    s.create_managed_policy(&managed("m")).unwrap();
    s.attach_policy(&Holder::User("aLiCe".into()), &managed("m").arn, 10)
        .unwrap();
    s.attach_policy(&Holder::User("ALICE".into()), &managed("m").arn, 10)
        .unwrap();
    assert_eq!(
        s.load().unwrap().attachments,
        vec![(Holder::User("aLiCe".into()), managed("m").arn)]
    );
    // Deletion is refused while the differently spelled dependents exist.
    assert_eq!(s.delete_user("alice").unwrap_err().code(), "DeleteConflict");
    s.detach_policy(&Holder::User("alice".into()), &managed("m").arn)
        .unwrap();
    s.delete_inline_policy(&Holder::User("Alice".into()), "POL")
        .unwrap();
    // Access keys name their user exactly as stored.
    s.create_access_key(&key("AKIA1", "Alice"), 2).unwrap();
    assert_eq!(
        s.set_access_key_status("alice", "AKIA1", KeyStatus::Inactive)
            .unwrap_err()
            .code(),
        "NoSuchEntity"
    );
    assert_eq!(
        s.delete_access_key("ALICE", "AKIA1").unwrap_err().code(),
        "NoSuchEntity"
    );
    s.delete_access_key("Alice", "AKIA1").unwrap();
    s.delete_user("ALICE").unwrap();
    assert_eq!(names(s), ["bob", "carol", "\u{c9}", "\u{e9}"]);
    // Roles and customer policies alike.
    s.create_role(&role("Admin")).unwrap();
    s.set_role_trust_policy("ADMIN", "{\"t\":1}").unwrap();
    assert_eq!(s.load().unwrap().roles[0].trust_policy, "{\"t\":1}");
    assert_eq!(
        s.create_managed_policy(&ManagedPolicy {
            arn: "arn:aws:iam::123456789012:policy/other/M".into(),
            id: "ANPAM2".into(),
            ..managed("M")
        })
        .unwrap_err()
        .code(),
        "EntityAlreadyExists"
    );
}
