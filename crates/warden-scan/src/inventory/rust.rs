//! Rust manifests: the `[[package]]` entries of `Cargo.lock`.
//!
//! An entry without `source` is a workspace member or a path dependency: the function's
//! own code, not a crates.io release. It is kept (the SBOM lists it) but marked local, and
//! the scan does not match it against advisories, since a local crate that happens to be
//! called `time` is not the `time` of RustSec.

use serde::Deserialize;

use super::Found;
use crate::Ecosystem;

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    source: Option<String>,
}

/// The packages of a `Cargo.lock`.
pub(super) fn cargo_lock(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let lock: Lock = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    Ok(lock
        .package
        .into_iter()
        .map(|p| Found {
            ecosystem: Ecosystem::CratesIo,
            name: p.name,
            version: p.version,
            local: p.source.is_none(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_lock_packages() {
        let f =
            cargo_lock(include_bytes!("../../tests/data/lockfiles/Cargo.lock")).expect("parses");
        let got: Vec<_> = f
            .iter()
            .map(|f| (f.name.as_str(), f.version.as_str(), f.local))
            .collect();
        assert_eq!(
            got,
            [
                ("my-lambda", "0.1.0", true),
                ("smallvec", "0.6.9", false),
                ("time", "0.1.45", false),
                ("libc", "0.2.155", false),
            ]
        );
    }

    #[test]
    fn malformed_cargo_locks_are_reported() {
        assert!(cargo_lock(b"[[package]]\nname = \"x\"\n").is_err());
        assert_eq!(cargo_lock(b"\xc3\x28").map(|_| ()), Err("not UTF-8".into()));
        // A dependency cycle is only a list of entries here.
        let cyclic = b"[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\ndependencies = [\"b\"]\n\n[[package]]\nname = \"b\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\ndependencies = [\"a\"]\n";
        assert_eq!(cargo_lock(cyclic).map(|f| f.len()), Ok(2));
    }
}
