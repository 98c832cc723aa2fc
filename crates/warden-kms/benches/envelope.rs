//! In-process KMS and envelope operations per second: `Encrypt` and `Decrypt` of 1 KB,
//! `GenerateDataKey`, and the sealing and opening of a function environment (ten variables)
//! by the KMS keyring. Run with `cargo bench -p warden-kms --bench envelope`.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use warden_kms::envelope::{Keyring, KmsKeyring};
use warden_kms::{EncryptionContext, Kms, MasterKey, NewKey};

fn measure(label: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label}: {:.0} ops/s ({:.2} µs/op)",
        f64::from(iterations) / secs,
        secs * 1e6 / f64::from(iterations)
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let kms = Kms::open(
        dir.path(),
        MasterKey::generate().unwrap(),
        "123456789012",
        "us-east-1",
    )
    .unwrap();
    kms.ensure_aws_managed_keys().unwrap();
    let key = kms.create_key(NewKey::default()).unwrap().arn.clone();
    let context: EncryptionContext = [("app".to_owned(), "bench".to_owned())].into();
    let plaintext = [7u8; 1024];
    let (blob, _) = kms.encrypt(&key, &plaintext, &context).unwrap();
    measure("Encrypt 1 KB", 200_000, || {
        black_box(kms.encrypt(&key, &plaintext, &context).unwrap());
    });
    measure("Decrypt 1 KB", 200_000, || {
        black_box(kms.decrypt(&blob, &context, None).unwrap());
    });
    measure("GenerateDataKey (32 bytes)", 200_000, || {
        black_box(kms.generate_data_key(&key, 32, &context).unwrap());
    });
    let keyring = KmsKeyring::new(kms.clone());
    let variables: BTreeMap<String, String> = (0..10)
        .map(|i| (format!("VAR_{i}"), format!("value-{i}-{}", "x".repeat(40))))
        .collect();
    let sealed = keyring.seal("bench", None, &variables).unwrap();
    measure("seal an environment (10 variables)", 100_000, || {
        black_box(keyring.seal("bench", None, &variables).unwrap());
    });
    measure("open an environment (10 variables)", 100_000, || {
        black_box(keyring.open("bench", &sealed).unwrap());
    });
}
