//! The deploy-time cost of code signing (`cargo bench -p warden-signer --bench verify`):
//! verifying a signed package (its SHA-384 digest, one ECDSA P-384 verification, the
//! config's and the revocations' look-ups) against the size of the package, beside
//! signing it (checking the zip, digesting it, opening the profile key through KMS, one
//! signature). Times are printed, never asserted.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_signer::{format, Signer, Verdict, LAMBDA_PLATFORM};

fn measure<T>(label: &str, rounds: u32, mut f: impl FnMut() -> T) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        black_box(f());
        best = best.min(start.elapsed());
    }
    println!("{label}: {:.2} ms", best.as_secs_f64() * 1e3);
    best
}

/// A package of `files` entries holding `mb` MiB of incompressible bytes in all.
fn package(mb: usize, files: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let per_file = (mb << 20) / files;
    for i in 0..files {
        w.start_file(
            format!("lib/file{i}.bin"),
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        let mut data = Vec::with_capacity(per_file);
        while data.len() < per_file {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
        w.write_all(&data[..per_file]).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let kms = warden_kms::Kms::open(
        dir.path(),
        warden_kms::MasterKey::generate().unwrap(),
        "123456789012",
        "us-east-1",
    )
    .unwrap();
    let signer = Signer::open(dir.path(), Arc::new(kms), "123456789012", "us-east-1").unwrap();
    let p = signer.put_profile("bench", LAMBDA_PLATFORM, None).unwrap();
    let allowed = vec![p.version_arn(&p.versions[0].version)];
    for (mb, files) in [(1, 10), (10, 100), (50, 1000)] {
        let zip = package(mb, files);
        let mut signed = Vec::new();
        measure(&format!("sign {mb} MiB ({files} files)"), 5, || {
            let digest = format::prepare(&zip).unwrap();
            let (_, manifest) = signer.sign_digest("bench", &digest).unwrap();
            signed = format::attach(&zip, &manifest).unwrap();
        });
        measure(&format!("verify {mb} MiB ({files} files)"), 10, || {
            let verdict = signer.verify(&signed, &allowed);
            assert!(matches!(verdict, Verdict::Trusted { .. }));
        });
        measure(&format!("unsigned verdict {mb} MiB"), 10, || {
            signer.verify(&zip, &allowed)
        });
    }
}
