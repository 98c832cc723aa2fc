//! Time per verification of a typical small Invoke (`cargo bench -p warden-auth --bench verify`).
//!
//! Prints microseconds per call for a header-signed Invoke (long-term and temporary keys) and
//! a presigned GET; the credential lookup is a `HashMap`, as an in-memory key cache would be.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::{
    collections::HashMap,
    hint::black_box,
    time::{Duration, Instant, SystemTime},
};

use http::Request;
use warden_auth::{presign_request, sign_request, verify, SigningCredentials};
use warden_types::identity::{Credential, CredentialSource, Principal, PrincipalKind};

struct Keys(HashMap<String, Credential>);

impl CredentialSource for Keys {
    fn lookup(&self, access_key_id: &str) -> Option<Credential> {
        self.0.get(access_key_id).cloned()
    }
}

fn credential(akid: &str, token: Option<&str>) -> Credential {
    Credential {
        access_key_id: akid.into(),
        secret_access_key: "bench/secret+0123456789abcdefghijklmn".into(),
        session_token: token.map(str::to_owned),
        expires_at_ms: token.map(|_| i64::MAX),
        principal: Principal {
            arn: "arn:aws:iam::123456789012:user/bench".into(),
            account: "123456789012".into(),
            name: "bench".into(),
            id: "AIDABENCH".into(),
            kind: PrincipalKind::User,
            tags: Default::default(),
            session: None,
        },
    }
}

fn measure(label: &str, parts: &http::request::Parts, body: &[u8], keys: &Keys, now: SystemTime) {
    verify(parts, body, now, keys, "us-east-1").expect("the benchmark request must verify");
    let iterations = 20_000;
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(verify(
                black_box(parts),
                black_box(body),
                now,
                keys,
                "us-east-1",
            ))
            .ok();
        }
        best = best.min(start.elapsed());
    }
    let per_call = best.as_secs_f64() * 1e6 / f64::from(iterations);
    println!("{label}: {per_call:.2} µs per verification (best of 5 x {iterations})");
}

fn main() {
    let now = SystemTime::now();
    let long = credential("AKIABENCHLONGTERM001", None);
    let temp = credential(
        "ASIABENCHTEMPORARY02",
        Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token=="),
    );
    let keys = Keys(
        (0..1000)
            .map(|i| credential(&format!("AKIAFILLER{i:010}"), None))
            .chain([long.clone(), temp.clone()])
            .map(|c| (c.access_key_id.clone(), c))
            .collect(),
    );
    let body = br#"{"name":"world","n":42}"#;
    for (label, cred) in [
        ("invoke, long-term key", &long),
        ("invoke, session token", &temp),
    ] {
        let mut req = Request::builder()
            .method("POST")
            .uri("http://127.0.0.1:9700/2015-03-31/functions/hello/invocations")
            .header("x-amz-log-type", "None")
            .body(())
            .unwrap();
        let signing = SigningCredentials {
            access_key_id: cred.access_key_id.clone(),
            secret_access_key: cred.secret_access_key.clone(),
            session_token: cred.session_token.clone(),
        };
        sign_request(&mut req, body, &signing, "us-east-1", "lambda", now).unwrap();
        let (mut parts, ()) = req.into_parts();
        parts
            .headers
            .insert("host", "127.0.0.1:9700".parse().unwrap());
        parts.uri = "/2015-03-31/functions/hello/invocations".parse().unwrap();
        measure(label, &parts, body, &keys, now);
    }
    let mut req = Request::builder()
        .uri("http://127.0.0.1:9700/2015-03-31/functions/hello?Qualifier=1")
        .body(())
        .unwrap();
    let signing = SigningCredentials {
        access_key_id: long.access_key_id.clone(),
        secret_access_key: long.secret_access_key.clone(),
        session_token: None,
    };
    presign_request(
        &mut req,
        b"",
        &signing,
        "us-east-1",
        "lambda",
        now,
        Duration::from_secs(300),
    )
    .unwrap();
    let (mut parts, ()) = req.into_parts();
    parts
        .headers
        .insert("host", "127.0.0.1:9700".parse().unwrap());
    parts.uri = parts
        .uri
        .path_and_query()
        .unwrap()
        .as_str()
        .parse()
        .unwrap();
    measure("presigned GET", &parts, b"", &keys, now);
}
