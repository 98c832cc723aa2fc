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

const TRUST_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;

/// Nodes sharing one database: how to open another, a role, and a principal to assume it
/// as.
struct Nodes {
    url: String,
    key: crate::MasterKey,
    a: crate::Identity,
    role: Role,
    user: warden_types::identity::Principal,
}

impl Nodes {
    fn new() -> Nodes {
        Nodes::on(url(), crate::MasterKey::generate().unwrap())
    }

    fn on(url: String, key: crate::MasterKey) -> Nodes {
        let a = crate::Identity::open_postgres(&url, 1, key.clone(), "123456789012").unwrap();
        let role = a
            .create_role("shared", None, TRUST_ACCOUNT, None, None, Vec::new())
            .unwrap();
        a.create_user("u", None, Vec::new()).unwrap();
        let (k, _) = a.create_access_key("u").unwrap();
        let user = lookup(&a, &k.id).unwrap().principal;
        Nodes {
            url,
            key,
            a,
            role,
            user,
        }
    }

    fn node(&self) -> crate::Identity {
        crate::Identity::open_postgres(&self.url, 1, self.key.clone(), "123456789012").unwrap()
    }

    fn assume(&self, node: &crate::Identity, name: &str) -> warden_types::identity::Credential {
        node.assume_role(
            &self.user,
            &crate::AssumeRoleRequest {
                role_arn: self.role.arn.clone(),
                session_name: name.into(),
                ..crate::AssumeRoleRequest::default()
            },
        )
        .unwrap()
        .credential
    }
}

fn lookup(node: &crate::Identity, id: &str) -> Option<warden_types::identity::Credential> {
    warden_types::identity::CredentialSource::lookup(node, id)
}

#[test]
fn a_session_assumed_on_one_node_is_accepted_by_another_with_its_session_policy() {
    let n = Nodes::new();
    let b = n.node();
    // B opened before the session was made, and its snapshot has the role.
    let assumed = n
        .a
        .assume_role(
            &n.user,
            &crate::AssumeRoleRequest {
                role_arn: n.role.arn.clone(),
                session_name: "s1".into(),
                policy: Some(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:GetFunction","Resource":"*"}]}"#
                        .into(),
                ),
                tags: vec![("team".into(), "red".into())],
                ..crate::AssumeRoleRequest::default()
            },
        )
        .unwrap()
        .credential;
    let id = assumed.access_key_id.clone();
    assert!(lookup(&b, &id).is_none(), "not before B polls");
    b.refresh().unwrap();
    let seen = lookup(&b, &id).expect("B accepts A's session after its poll");
    assert_eq!(seen.secret_access_key, assumed.secret_access_key);
    assert_eq!(seen.session_token, assumed.session_token);
    assert_eq!(seen.expires_at_ms, assumed.expires_at_ms);
    assert_eq!(seen.principal, assumed.principal);
    assert_eq!(
        seen.principal.tags.get("team").map(String::as_str),
        Some("red")
    );
    // Its session policy limits it on B as on A.
    assert_eq!(
        b.session_policies(&seen.principal).map(|p| p.len()),
        Some(1)
    );
    // A node that starts later holds it from the start.
    let c = n.node();
    assert!(lookup(&c, &id).is_some());
    // The role deleted on A ends the session everywhere: on A at once, on B and C at their
    // next poll; a node started afterwards never holds it.
    n.a.delete_role(&n.role.name).unwrap();
    assert!(lookup(&n.a, &id).is_none());
    for node in [&b, &c] {
        node.refresh().unwrap();
        assert!(lookup(node, &id).is_none());
    }
    assert!(lookup(&n.node(), &id).is_none());
}

#[test]
fn a_session_of_a_role_newer_than_the_snapshot_is_accepted_when_first_read() {
    let url = url();
    let key = crate::MasterKey::generate().unwrap();
    let b = crate::Identity::open_postgres(&url, 1, key.clone(), "123456789012").unwrap();
    // The role, the user and the session all come after B read its snapshot, and B reads
    // the session before it looks at the generation (as a poll racing with them can).
    let n = Nodes::on(url, key);
    let id = n.assume(&n.a, "late").access_key_id;
    b.pull_sessions().unwrap();
    assert!(lookup(&b, &id).is_some());
}

#[test]
fn the_shared_sessions_are_bounded_together_and_a_record_opens_only_on_its_own_row() {
    let n = Nodes::new();
    let b = n.node();
    let s1 = n.assume(&n.a, "one");
    let s2 = n.assume(&b, "two");
    let store = PostgresIdentityStore::open(&n.url, 1).unwrap();
    let stored = SharedSessions::since(&store, 0).unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored[0].seq < stored[1].seq);
    // Two live sessions across both nodes: a bound of two refuses a third.
    let mut third = stored[1].clone();
    third.access_key_id = "ASIATHIRDSESSION0000".into();
    let e = SharedSessions::put(&store, &third, 2, 0).unwrap_err();
    assert_eq!(e.code(), "LimitExceeded", "{e}");
    // Expired sessions do not count, and are deleted as the next one is stored.
    let later = s1.expires_at_ms.unwrap().max(s2.expires_at_ms.unwrap());
    SharedSessions::put(&store, &third, 2, later).unwrap();
    assert_eq!(SharedSessions::since(&store, 0).unwrap().len(), 1);
    // `third` carries `two`'s sealed record under another key id: it does not open, so
    // no node accepts it.
    let c = n.node();
    assert!(lookup(&c, "ASIATHIRDSESSION0000").is_none());
    // None of the stored bytes is a secret in the clear.
    let mut db = postgres::Client::connect(&n.url, postgres::NoTls).unwrap();
    for row in db
        .query("SELECT sealed FROM identity_sessions", &[])
        .unwrap()
    {
        let sealed: Vec<u8> = row.get(0);
        for secret in [&s1.secret_access_key, &s2.secret_access_key] {
            assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
    }
}
