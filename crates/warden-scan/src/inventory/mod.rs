//! The inventory of a function or layer package: which third-party packages it ships,
//! found by reading the lockfiles and installed-package manifests inside it.
//!
//! Only files whose names mark them as manifests are read, each up to
//! [`Limits::max_manifest_bytes`], all together up to [`Limits::max_total_bytes`], so a
//! package of any size (or a zip bomb) costs bounded memory. A manifest that cannot be
//! parsed is reported as a [`Problem`] and skipped; a package that is itself hostile (a
//! path with `..`, too many entries, too much manifest data) is refused as a whole.

mod binary;
mod node;
mod python;
mod rust;

use std::collections::HashMap;
use std::io::{Cursor, Read};

use zip::ZipArchive;

use crate::{Ecosystem, Error};

/// Bounds on what reading a package may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries (files and directories) a package may have.
    pub max_entries: usize,
    /// Largest manifest that is parsed; a bigger one is reported and skipped.
    pub max_manifest_bytes: u64,
    /// Most bytes read from all manifests together; past it the package is refused.
    pub max_total_bytes: u64,
    /// Largest executable read for the dependencies compiled into it (`cargo auditable`'s
    /// list, Go's build information); a bigger one is reported and skipped. Executables
    /// count against [`Limits::max_total_bytes`] too.
    pub max_binary_bytes: u64,
}

impl Default for Limits {
    /// 100,000 entries, 8 MiB per manifest, 128 MiB per executable, 256 MiB in all: well
    /// above real deployment packages (Lambda allows 250 MB unzipped), far below the
    /// machine.
    fn default() -> Limits {
        Limits {
            max_entries: 100_000,
            max_manifest_bytes: 8 << 20,
            max_total_bytes: 256 << 20,
            max_binary_bytes: 128 << 20,
        }
    }
}

/// One third-party package found in a function package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Its name, normalised as the ecosystem compares names (PEP 503 for PyPI).
    pub name: String,
    /// Its version as the manifest wrote it.
    pub version: String,
    /// Whether every manifest naming it says it is the user's own code (a workspace
    /// member, a path or editable dependency) rather than a registry release; local
    /// packages are listed in the SBOM but not matched against advisories.
    pub local: bool,
    /// Each file in the package that names it, in the order read (never empty).
    pub paths: Vec<String>,
}

/// A manifest that was found but could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its path in the package.
    pub path: String,
    /// Why it was skipped.
    pub reason: String,
}

/// Everything found in one package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The packages, one per (ecosystem, name, version), sorted by those.
    pub packages: Vec<Package>,
    /// The manifests that were skipped, and why.
    pub problems: Vec<Problem>,
}

/// What a parser found: the name is still as written.
#[derive(Debug)]
pub(crate) struct Found {
    ecosystem: Ecosystem,
    name: String,
    version: String,
    local: bool,
}

/// The kinds of manifest, each with its parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PythonMetadata,
    Requirements,
    TomlLock,
    PipfileLock,
    PackageLock,
    PackageJson,
    YarnLock,
    PnpmLock,
    CargoLock,
}

impl Kind {
    /// The manifest kind of a package path, from its name alone.
    fn of(path: &str) -> Option<Kind> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (&file, dirs) = parts.split_last()?;
        let parent = dirs.last().copied().unwrap_or("");
        let kind = match file {
            "METADATA" if parent.ends_with(".dist-info") => Kind::PythonMetadata,
            "PKG-INFO" if parent.ends_with(".egg-info") => Kind::PythonMetadata,
            "poetry.lock" | "uv.lock" => Kind::TomlLock,
            "Pipfile.lock" => Kind::PipfileLock,
            "package-lock.json" | "npm-shrinkwrap.json" => Kind::PackageLock,
            ".package-lock.json" if parent == "node_modules" => Kind::PackageLock,
            "package.json" if is_installed_package_dir(dirs) => Kind::PackageJson,
            "yarn.lock" => Kind::YarnLock,
            "pnpm-lock.yaml" => Kind::PnpmLock,
            "Cargo.lock" => Kind::CargoLock,
            f if f.starts_with("requirements") && f.ends_with(".txt") => Kind::Requirements,
            _ => return None,
        };
        Some(kind)
    }

    fn parse(self, bytes: &[u8]) -> Result<Vec<Found>, String> {
        match self {
            Kind::PythonMetadata => python::metadata(bytes),
            Kind::Requirements => python::requirements(bytes),
            Kind::TomlLock => python::toml_lock(bytes),
            Kind::PipfileLock => python::pipfile_lock(bytes),
            Kind::PackageLock => node::package_lock(bytes),
            Kind::PackageJson => node::package_json(bytes),
            Kind::YarnLock => node::yarn_lock(bytes),
            Kind::PnpmLock => node::pnpm_lock(bytes),
            Kind::CargoLock => rust::cargo_lock(bytes),
        }
    }
}

/// Whether `dirs` ends in `node_modules/NAME` or `node_modules/@SCOPE/NAME`: the root of
/// an installed package, not a fixture deeper inside one.
fn is_installed_package_dir(dirs: &[&str]) -> bool {
    match dirs {
        [.., "node_modules", name] => !name.starts_with('@') && !name.starts_with('.'),
        [.., "node_modules", scope, _] => scope.starts_with('@'),
        _ => false,
    }
}

/// Whether the scanner reads the file at `path` (for a caller that walks a directory and
/// wants to read only what matters).
pub fn is_manifest(path: &str) -> bool {
    Kind::of(path).is_some()
}

/// Refuses absolute paths and any `..` component (with either slash): names that would
/// leave the package if it were extracted, which no honest package has.
fn check_path(path: &str) -> Result<(), Error> {
    let drive = matches!(path.as_bytes(), [letter, b':', ..] if letter.is_ascii_alphabetic());
    let absolute = path.starts_with(['/', '\\']) || drive;
    if absolute || path.split(['/', '\\']).any(|c| c == "..") {
        return Err(Error::UnsafePath { path: path.into() });
    }
    Ok(())
}

/// Gathers what the manifests of one package name, merging duplicates.
struct Builder {
    limits: Limits,
    entries: usize,
    total: u64,
    index: HashMap<(Ecosystem, String, String), usize>,
    inventory: Inventory,
}

impl Builder {
    fn new(limits: &Limits) -> Builder {
        Builder {
            limits: *limits,
            entries: 0,
            total: 0,
            index: HashMap::new(),
            inventory: Inventory::default(),
        }
    }

    /// Counts one entry of the package against the limits; `Some(kind)` if it is a
    /// manifest to read.
    fn entry(&mut self, path: &str) -> Result<Option<Kind>, Error> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(Error::TooManyEntries {
                found: self.entries,
                limit: self.limits.max_entries,
            });
        }
        check_path(path)?;
        Ok(Kind::of(path))
    }

    fn problem(&mut self, path: &str, reason: String) {
        self.inventory.problems.push(Problem {
            path: path.into(),
            reason,
        });
    }

    /// Parses one manifest's bytes (at most the per-manifest limit plus one, as read).
    fn manifest(&mut self, kind: Kind, path: &str, bytes: &[u8]) -> Result<(), Error> {
        let len = bytes.len() as u64;
        self.total = self.total.saturating_add(len);
        if self.total > self.limits.max_total_bytes {
            return Err(Error::TooManyBytes {
                limit: self.limits.max_total_bytes,
            });
        }
        if len > self.limits.max_manifest_bytes {
            let limit = self.limits.max_manifest_bytes;
            self.problem(path, format!("larger than the {limit} bytes read"));
            return Ok(());
        }
        match kind.parse(bytes) {
            Ok(found) => {
                for f in found {
                    self.add(f, path);
                }
            }
            Err(reason) => self.problem(path, reason),
        }
        Ok(())
    }

    /// Reads the dependencies compiled into one executable (its whole bytes, at most the
    /// binary limit plus one, as read).
    fn binary(&mut self, path: &str, bytes: &[u8]) -> Result<(), Error> {
        let len = bytes.len() as u64;
        self.total = self.total.saturating_add(len);
        if self.total > self.limits.max_total_bytes {
            return Err(Error::TooManyBytes {
                limit: self.limits.max_total_bytes,
            });
        }
        if len > self.limits.max_binary_bytes {
            let limit = self.limits.max_binary_bytes;
            self.problem(
                path,
                format!("an executable larger than the {limit} bytes read"),
            );
            return Ok(());
        }
        match binary::parse(bytes) {
            Ok(Some(found)) => {
                for f in found {
                    self.add(f, path);
                }
            }
            Ok(None) => {}
            Err(reason) => self.problem(path, reason),
        }
        Ok(())
    }

    fn add(&mut self, found: Found, path: &str) {
        let name = found.ecosystem.normalize_name(&found.name);
        let version = found.version.trim().to_owned();
        if name.is_empty() || version.is_empty() {
            return;
        }
        let key = (found.ecosystem, name, version);
        if let Some(&i) = self.index.get(&key) {
            let package = &mut self.inventory.packages[i];
            // A package any manifest calls a registry release is scanned.
            package.local &= found.local;
            if !package.paths.iter().any(|p| p == path) {
                package.paths.push(path.to_owned());
            }
            return;
        }
        self.index
            .insert(key.clone(), self.inventory.packages.len());
        let (ecosystem, name, version) = key;
        self.inventory.packages.push(Package {
            ecosystem,
            name,
            version,
            local: found.local,
            paths: vec![path.to_owned()],
        });
    }

    fn finish(mut self) -> Inventory {
        self.inventory.packages.sort_by(|a, b| {
            (a.ecosystem, &a.name, &a.version).cmp(&(b.ecosystem, &b.name, &b.version))
        });
        self.inventory
    }
}

/// The inventory of a package given as its files, `(path, contents)`, paths relative to
/// the package root with `/` separators. Every file counts against
/// [`Limits::max_entries`]; only manifests are parsed.
pub fn inventory<P, B>(
    files: impl IntoIterator<Item = (P, B)>,
    limits: &Limits,
) -> Result<Inventory, Error>
where
    P: AsRef<str>,
    B: AsRef<[u8]>,
{
    let mut builder = Builder::new(limits);
    for (path, bytes) in files {
        let path = path.as_ref();
        let bytes = bytes.as_ref();
        if let Some(kind) = builder.entry(path)? {
            // Count no more than a reader of the zip would have read.
            let cap =
                usize::try_from(limits.max_manifest_bytes.saturating_add(1)).unwrap_or(usize::MAX);
            builder.manifest(kind, path, &bytes[..bytes.len().min(cap)])?;
        } else if binary::is_elf(bytes) {
            let cap =
                usize::try_from(limits.max_binary_bytes.saturating_add(1)).unwrap_or(usize::MAX);
            builder.binary(path, &bytes[..bytes.len().min(cap)])?;
        }
    }
    Ok(builder.finish())
}

/// The inventory of a package given as a zip archive (a Lambda deployment package or
/// layer). Entries are never extracted; each manifest is decompressed into memory up to
/// the per-manifest limit plus one byte, whatever size the archive declares for it.
pub fn inventory_zip(zip: &[u8], limits: &Limits) -> Result<Inventory, Error> {
    let mut archive = ZipArchive::new(Cursor::new(zip)).map_err(Error::ReadArchive)?;
    if archive.len() > limits.max_entries {
        return Err(Error::TooManyEntries {
            found: archive.len(),
            limit: limits.max_entries,
        });
    }
    let mut builder = Builder::new(limits);
    for index in 0..archive.len() {
        let (path, is_file, executable) = {
            let entry = archive.by_index_data(index).map_err(Error::ReadArchive)?;
            let name = entry.name().map_err(Error::ReadArchive)?.into_owned();
            let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0)
                || name.rsplit('/').next() == Some("bootstrap");
            (name, !entry.is_dir() && !entry.is_symlink(), executable)
        };
        let Some(kind) = builder.entry(&path)? else {
            if is_file && executable {
                read_executable(&mut archive, index, &path, limits, &mut builder)?;
            }
            continue;
        };
        if !is_file {
            continue;
        }
        let mut bytes = Vec::new();
        let read = archive
            .by_index(index)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                file.take(limits.max_manifest_bytes.saturating_add(1))
                    .read_to_end(&mut bytes)
                    .map_err(|e| e.to_string())
            });
        match read {
            Ok(_) => builder.manifest(kind, &path, &bytes)?,
            // A damaged or encrypted entry: the rest of the package is still worth
            // scanning, and the problem is reported.
            Err(reason) => builder.problem(&path, format!("cannot be read: {reason}")),
        }
    }
    Ok(builder.finish())
}

/// Reads an executable entry of the archive if it is an ELF file: its first bytes, then
/// the rest within the binary limit.
fn read_executable(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    index: usize,
    path: &str,
    limits: &Limits,
    builder: &mut Builder,
) -> Result<(), Error> {
    let mut bytes = Vec::new();
    let read = archive
        .by_index(index)
        .map_err(|e| e.to_string())
        .and_then(|file| {
            let mut file = file.take(limits.max_binary_bytes.saturating_add(1));
            let mut magic = [0u8; 4];
            let n = file.read(&mut magic).map_err(|e| e.to_string())?;
            bytes.extend_from_slice(&magic[..n]);
            if binary::is_elf(&bytes) {
                file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
    match read {
        Ok(()) if binary::is_elf(&bytes) => builder.binary(path, &bytes),
        Ok(()) => Ok(()),
        Err(reason) => {
            builder.problem(path, format!("cannot be read: {reason}"));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn manifest_kinds_by_path() {
        let cases = [
            (
                "python/Jinja2-2.10.dist-info/METADATA",
                Some(Kind::PythonMetadata),
            ),
            ("METADATA", None),
            ("x.egg-info/PKG-INFO", Some(Kind::PythonMetadata)),
            ("requirements-dev.txt", Some(Kind::Requirements)),
            ("app/requirements.txt", Some(Kind::Requirements)),
            ("poetry.lock", Some(Kind::TomlLock)),
            ("sub/uv.lock", Some(Kind::TomlLock)),
            ("Pipfile.lock", Some(Kind::PipfileLock)),
            ("package-lock.json", Some(Kind::PackageLock)),
            ("node_modules/.package-lock.json", Some(Kind::PackageLock)),
            (".package-lock.json", None),
            ("package.json", None),
            ("node_modules/lodash/package.json", Some(Kind::PackageJson)),
            (
                "nodejs/node_modules/@aws-sdk/client-s3/package.json",
                Some(Kind::PackageJson),
            ),
            ("node_modules/lodash/test/package.json", None),
            ("node_modules/@scope/package.json", None),
            ("yarn.lock", Some(Kind::YarnLock)),
            ("pnpm-lock.yaml", Some(Kind::PnpmLock)),
            ("Cargo.lock", Some(Kind::CargoLock)),
            ("src/main.rs", None),
        ];
        for (path, kind) in cases {
            assert_eq!(Kind::of(path), kind, "{path}");
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for path in [
            "../etc/passwd",
            "a/../../b",
            "/abs/Cargo.lock",
            "a\\..\\b",
            "C:/x",
            "..",
        ] {
            let err = inventory([(path, b"")], &Limits::default()).expect_err(path);
            assert_eq!(
                err.to_string(),
                format!("the package path `{path}` leaves the package root")
            );
        }
        // A colon elsewhere, or dots that are not a `..` component, are ordinary names.
        let ok = ["ab:c/d", "x..y/Cargo.lock", ".../z", "./index.js"];
        let inv = inventory(ok.map(|p| (p, b"")), &Limits::default());
        assert!(inv.is_ok(), "{inv:?}");
    }

    #[test]
    fn duplicates_merge_and_keep_every_path() {
        let files: [(&str, &[u8]); 3] = [
            ("requirements.txt", b"Jinja2==2.10\n"),
            (
                "python/jinja2-2.10.dist-info/METADATA",
                b"Name: jinja2\nVersion: 2.10\n",
            ),
            (
                "Cargo.lock",
                b"[[package]]\nname = \"a\"\nversion = \"1.0.0\"\n",
            ),
        ];
        let inv = inventory(files, &Limits::default()).expect("inventory");
        assert_eq!(
            inv.packages,
            [
                Package {
                    ecosystem: Ecosystem::PyPi,
                    name: "jinja2".into(),
                    version: "2.10".into(),
                    local: false,
                    paths: vec![
                        "requirements.txt".into(),
                        "python/jinja2-2.10.dist-info/METADATA".into()
                    ],
                },
                Package {
                    ecosystem: Ecosystem::CratesIo,
                    name: "a".into(),
                    version: "1.0.0".into(),
                    local: true,
                    paths: vec!["Cargo.lock".into()],
                },
            ]
        );
    }

    #[test]
    fn limits_bound_the_work() {
        let limits = Limits {
            max_entries: 2,
            max_manifest_bytes: 10,
            max_total_bytes: 25,
            max_binary_bytes: 10,
        };
        let big = [b'#'; 11];
        let inv = inventory([("requirements.txt", &big[..])], &limits).expect("inventory");
        assert_eq!(
            inv.problems,
            [Problem {
                path: "requirements.txt".into(),
                reason: "larger than the 10 bytes read".into()
            }]
        );
        let err = inventory([("a", b""), ("b", b""), ("c", b"")], &limits).expect_err("entries");
        assert_eq!(
            err.to_string(),
            "the package has 3 entries, more than the 2 that are scanned"
        );
        let ten = [b'#'; 10];
        let files = [
            ("requirements.txt", &ten[..]),
            ("x/requirements.txt", &ten[..]),
        ];
        assert!(inventory(files, &limits).is_ok());
        let files = [
            ("requirements.txt", &big[..]),
            ("x/requirements.txt", &big[..]),
            ("y/requirements.txt", &big[..]),
        ];
        let limits = Limits {
            max_entries: 10,
            ..limits
        };
        let err = inventory(files, &limits).expect_err("total");
        assert_eq!(
            err.to_string(),
            "the package's manifests add up to more than 25 bytes"
        );
    }

    #[test]
    fn malformed_manifests_are_problems() {
        let files: [(&str, &[u8]); 2] = [
            ("package-lock.json", b"{\"packages\": "),
            ("Pipfile.lock", b"\xff\xfe"),
        ];
        let inv = inventory(files, &Limits::default()).expect("inventory");
        assert!(inv.packages.is_empty());
        let paths: Vec<_> = inv.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["package-lock.json", "Pipfile.lock"]);
    }

    proptest! {
        #[test]
        fn every_parser_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
            for kind in [
                Kind::PythonMetadata, Kind::Requirements, Kind::TomlLock, Kind::PipfileLock,
                Kind::PackageLock, Kind::PackageJson, Kind::YarnLock, Kind::PnpmLock,
                Kind::CargoLock,
            ] {
                let _ = kind.parse(&bytes);
            }
        }

        #[test]
        fn every_parser_survives_arbitrary_text(text in "\\PC{0,300}") {
            for kind in [
                Kind::PythonMetadata, Kind::Requirements, Kind::TomlLock, Kind::PipfileLock,
                Kind::PackageLock, Kind::PackageJson, Kind::YarnLock, Kind::PnpmLock,
                Kind::CargoLock,
            ] {
                let _ = kind.parse(text.as_bytes());
            }
        }

        #[test]
        fn inventory_never_panics_on_arbitrary_zips(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = inventory_zip(&bytes, &Limits::default());
        }
    }
}
