//! Measures the per-request paths: `CredentialSource::lookup` for a user key and a role
//! session, and `Identity::policies_for`. Prints ns per call; run with
//! `cargo bench -p warden-identity --bench lookup`.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use warden_identity::{Holder, Identity};
use warden_types::identity::CredentialSource;

fn measure(label: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{label}: {ns:.0} ns/call");
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let id = Identity::open(dir.path(), "123456789012").expect("open");
    let (key, _) = id
        .ensure_bootstrap_admin()
        .expect("bootstrap")
        .expect("new");
    // A realistic population: 50 users with keys and policies, 20 roles.
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:*","Resource":"*"}]}"#;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    for i in 0..50 {
        let name = format!("user{i}");
        id.create_user(&name, None, vec![]).expect("user");
        id.create_access_key(&name).expect("key");
        id.put_inline_policy(&Holder::User(name), "p", doc)
            .expect("policy");
    }
    let mut role_arn = String::new();
    for i in 0..20 {
        let r = id
            .create_role(&format!("role{i}"), None, trust, None, None, vec![])
            .expect("role");
        id.put_inline_policy(&Holder::Role(r.name.clone()), "p", doc)
            .expect("policy");
        role_arn = r.arn;
    }
    let session = id
        .issue_role_session(&role_arn, "bench", Duration::from_secs(600))
        .expect("session");
    let admin = id.lookup(&key).expect("admin").principal;

    measure("lookup(user key)", 1_000_000, || {
        black_box(id.lookup(black_box(&key)));
    });
    measure("lookup(role session)", 1_000_000, || {
        black_box(id.lookup(black_box(&session.access_key_id)));
    });
    measure("lookup(unknown key)", 1_000_000, || {
        black_box(id.lookup(black_box("AKIAUNKNOWNUNKNOWN00")));
    });
    measure("policies_for(user)", 1_000_000, || {
        black_box(id.policies_for(black_box(&admin)));
    });
    measure("policies_for(role session)", 1_000_000, || {
        black_box(id.policies_for(black_box(&session.principal)));
    });
    measure("write + snapshot rebuild (tag_user)", 200, || {
        id.tag_user("user1", &vec![("k".into(), "v".into())])
            .expect("tag");
    });
}
