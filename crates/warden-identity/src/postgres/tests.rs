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
