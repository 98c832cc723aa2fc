//! PostgreSQL-only tests: several nodes on one database through the identity service, the
//! copy of an earlier build's image, and the schema's refusal of that build. The store's
//! contract itself is tested on both backends in `crate::contract`.
use std::sync::Arc;

use super::*;

fn url() -> String {
    warden_testservers::Postgres::shared()
        .fresh_database()
        .unwrap()
}

fn user(name: &str) -> User {
    User {
        name: name.to_owned(),
        id: format!("AIDA{}", name.to_uppercase()),
        arn: format!("arn:aws:iam::123456789012:user/{name}"),
        path: "/".to_owned(),
        tags: Vec::new(),
        created_ms: 1,
    }
}

#[test]
fn a_user_written_through_one_node_is_read_by_another_and_generations_grow() {
    let url = url();
    let a = PostgresIdentityStore::open(&url, 1).unwrap();
    let b = PostgresIdentityStore::open(&url, 1).unwrap();
    let g0 = b.generation().unwrap();
    a.create_user(&user("alice"), &[], None).unwrap();
    let g1 = b.generation().unwrap();
    assert!(g1 > g0);
    let names: Vec<String> = b
        .load()
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice"]);
    // The embedded store's rules hold: names are unique without regard to case.
    let e = b.create_user(&user("ALICE"), &[], None).unwrap_err();
    assert!(matches!(e, IdentityError::EntityAlreadyExists(_)), "{e}");
    assert_eq!(
        b.generation().unwrap(),
        g1,
        "a refused write changes nothing"
    );
    b.delete_user("alice").unwrap();
    assert!(a.load().unwrap().users.is_empty());
}

#[test]
fn nodes_racing_on_one_name_make_it_once_and_lose_no_other_write() {
    let url = url();
    let stores: Vec<Arc<PostgresIdentityStore>> = (0..3)
        .map(|_| Arc::new(PostgresIdentityStore::open(&url, 1).unwrap()))
        .collect();
    let handles: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = Arc::clone(s);
            std::thread::spawn(move || {
                let shared = s.create_user(&user("same"), &[], None);
                // A write of its own, which must survive the others' writes.
                s.create_user(&user(&format!("own{i}")), &[], None).unwrap();
                shared.is_ok()
            })
        })
        .collect();
    let won = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|w| *w)
        .count();
    assert_eq!(won, 1);
    let mut names: Vec<String> = stores[0]
        .load()
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.name)
        .collect();
    names.sort();
    assert_eq!(names, ["own0", "own1", "own2", "same"]);
}

#[test]
fn a_revocation_on_one_node_reaches_the_other_after_refresh() {
    let url = url();
    let key = crate::MasterKey::generate().unwrap();
    let a = crate::Identity::open_postgres(&url, 1, key.clone(), "123456789012").unwrap();
    let b = crate::Identity::open_postgres(&url, 1, key, "123456789012").unwrap();
    let (id, _secret) = a.ensure_bootstrap_admin().unwrap().unwrap();
    // The second node finds the admin made: no second one.
    assert!(b.ensure_bootstrap_admin().unwrap().is_none());
    b.refresh().unwrap();
    assert!(warden_types::identity::CredentialSource::lookup(&b, &id).is_some());
    a.delete_access_key(crate::ADMIN_USER, &id).unwrap();
    assert!(b.refresh().unwrap());
    assert!(warden_types::identity::CredentialSource::lookup(&b, &id).is_none());
    assert!(!b.refresh().unwrap(), "nothing changed since");
}

#[test]
fn nodes_starting_together_make_one_bootstrap_admin() {
    let url = url();
    let key = crate::MasterKey::generate().unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (url, key, barrier) = (url.clone(), key.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                // Both open the fresh database (schema, AWS-managed policies) at once.
                barrier.wait();
                let store = PostgresIdentityStore::open(&url, 1).unwrap();
                let node =
                    crate::Identity::with_store(Arc::new(store), key, "123456789012").unwrap();
                let made = node.ensure_bootstrap_admin().unwrap();
                (node, made)
            })
        })
        .collect();
    let nodes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let made: Vec<&(String, String)> = nodes.iter().filter_map(|(_, m)| m.as_ref()).collect();
    assert_eq!(made.len(), 1, "exactly one node creates the administrator");
    let (key_id, secret) = made[0];
    let dump = PostgresIdentityStore::open(&url, 1)
        .unwrap()
        .load()
        .unwrap();
    let admins: Vec<&User> = dump
        .users
        .iter()
        .filter(|u| u.name == crate::ADMIN_USER)
        .collect();
    assert_eq!(admins.len(), 1);
    assert_eq!(dump.keys.len(), 1);
    assert_eq!(&dump.keys[0].id, key_id);
    for (node, _) in &nodes {
        node.refresh().unwrap();
        let c = warden_types::identity::CredentialSource::lookup(node, key_id).unwrap();
        assert_eq!(&c.secret_access_key, secret);
        assert_eq!(node.ensure_bootstrap_admin().unwrap(), None);
    }
}

#[test]
fn refresh_installs_only_a_newer_generation() {
    let url = url();
    let key = crate::MasterKey::generate().unwrap();
    let store = Arc::new(PostgresIdentityStore::open(&url, 1).unwrap());
    let a = crate::Identity::with_store(store.clone(), key.clone(), "123456789012").unwrap();
    let b = crate::Identity::open_postgres(&url, 1, key, "123456789012").unwrap();
    assert!(!a.refresh().unwrap(), "b's opening wrote nothing new");
    b.create_user("bob", None, Vec::new()).unwrap();
    assert!(a.user("bob").is_none());
    let g = store.generation().unwrap();
    assert!(a.refresh().unwrap());
    assert!(a.user("bob").is_some());
    // a's snapshot now carries the store's generation: nothing newer, nothing installed.
    assert!(!a.refresh().unwrap());
    assert_eq!(store.generation().unwrap(), g);
}

fn managed(name: &str) -> ManagedPolicy {
    ManagedPolicy {
        name: name.to_owned(),
        id: format!("ANPA{name}"),
        arn: format!("arn:aws:iam::123456789012:policy/{name}"),
        path: "/".to_owned(),
        document: "{}".to_owned(),
        description: Some("d".to_owned()),
        created_ms: 4,
        default_version: "v1".to_owned(),
        updated_ms: 4,
    }
}

#[test]
fn an_image_an_earlier_build_left_is_copied_into_the_tables_once() {
    let url = url();
    // The database as the earlier build left it: the track at its first step, one image
    // (the embedded store's file) at generation 7.
    let first = Track {
        name: "identity",
        migrations: &MIGRATIONS[..1],
    };
    let pool = Pool::open(&url, &Options::default(), &[first]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    {
        let s = SqliteIdentityStore::open(&path).unwrap();
        let key = StoredKey {
            id: "AKIA1".to_owned(),
            user_name: "Alice".to_owned(),
            status: KeyStatus::Active,
            sealed_secret: vec![9, 8, 7],
            created_ms: 2,
            last_used_ms: Some(3),
            last_used_service: Some("iam".to_owned()),
            last_used_region: Some("eu-west-1".to_owned()),
        };
        let inline = InlinePolicy {
            holder: Holder::User("Alice".to_owned()),
            name: "P".to_owned(),
            document: "{\"i\":1}".to_owned(),
        };
        s.create_user(&user("Alice"), &[inline], Some(&key))
            .unwrap();
        s.create_role(&Role {
            name: "R".to_owned(),
            id: "AROAR".to_owned(),
            arn: "arn:aws:iam::123456789012:role/R".to_owned(),
            path: "/".to_owned(),
            trust_policy: "{}".to_owned(),
            description: None,
            max_session_duration_s: 7200,
            tags: vec![("k".to_owned(), "v".to_owned())],
            created_ms: 5,
        })
        .unwrap();
        let m = managed("m");
        s.create_managed_policy(&m).unwrap();
        assert_eq!(
            s.create_policy_version(&m.arn, "{\"v\":2}", 6, true, 5)
                .unwrap(),
            "v2"
        );
        assert_eq!(
            s.create_policy_version(&m.arn, "{\"v\":3}", 7, false, 5)
                .unwrap(),
            "v3"
        );
        s.delete_policy_version(&m.arn, "v3").unwrap();
        s.put_aws_managed_policy(&ManagedPolicy {
            arn: "arn:aws:iam::aws:policy/m".to_owned(),
            id: "ANPAAWS".to_owned(),
            ..managed("m")
        })
        .unwrap();
        s.attach_policy(&Holder::Role("r".to_owned()), &m.arn, 10)
            .unwrap();
    }
    let image = std::fs::read(&path).unwrap();
    pool.run(move |conn| {
        conn.client()
            .execute(
                "INSERT INTO identity_image (id, generation, image) VALUES (1, 7, $1)",
                &[&image],
            )
            .map_err(IdentityError::from)
    })
    .unwrap();
    drop(pool);
    let expected = SqliteIdentityStore::open(&path).unwrap().load().unwrap();

    // Two nodes of this build start together: the image is copied once.
    let opening: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresIdentityStore::open(&url, 1).unwrap())
        })
        .collect();
    let stores: Vec<PostgresIdentityStore> =
        opening.into_iter().map(|h| h.join().unwrap()).collect();
    let d = stores[0].load().unwrap();
    assert_eq!(d.users, expected.users);
    assert_eq!(d.keys, expected.keys);
    assert_eq!(d.roles, expected.roles);
    assert_eq!(d.inline, expected.inline);
    assert_eq!(d.policies.len(), 2);
    for p in &expected.policies {
        assert!(d.policies.contains(p), "{p:?}");
    }
    assert_eq!(d.versions, expected.versions);
    assert_eq!(d.attachments, expected.attachments);
    assert_eq!(d.generation, 8, "past the image's generation");
    assert_eq!(stores[1].generation().unwrap(), 8, "copied once");
    // What the dump leaves out came along too: version ids are not reused, and the AWS
    // policy's name does not collide with the customer's.
    let arn = managed("m").arn;
    assert_eq!(
        stores[1]
            .create_policy_version(&arn, "{}", 9, false, 5)
            .unwrap(),
        "v4"
    );
    // The image is gone, so a third start copies nothing.
    drop(PostgresIdentityStore::open(&url, 1).unwrap());
    assert_eq!(stores[0].generation().unwrap(), 9);
    // A build that knows only the image refuses the database rather than miss writes.
    let err = Pool::open(&url, &Options::default(), &[first]).unwrap_err();
    assert!(
        matches!(err, warden_postgres::Error::SchemaTooNew { .. }),
        "{err}"
    );
}

#[test]
fn an_empty_image_is_dropped_without_a_write() {
    let url = url();
    let first = Track {
        name: "identity",
        migrations: &MIGRATIONS[..1],
    };
    let pool = Pool::open(&url, &Options::default(), &[first]).unwrap();
    pool.run(|conn| {
        conn.client()
            .execute(
                "INSERT INTO identity_image (id, generation, image) VALUES (1, 0, '\\x00')",
                &[],
            )
            .map_err(IdentityError::from)
    })
    .unwrap();
    let s = PostgresIdentityStore::open(&url, 1).unwrap();
    assert_eq!(s.generation().unwrap(), 0);
    assert!(s.load().unwrap().users.is_empty());
    let left: i64 = pool
        .run(|conn| {
            conn.client()
                .query_one("SELECT count(*) FROM identity_image", &[])
                .map(|r| r.get(0))
                .map_err(IdentityError::from)
        })
        .unwrap();
    assert_eq!(left, 0);
}
