//! Bounded, escape-proof extraction of an untrusted zip into an empty directory.
//!
//! Two passes: the first checks every entry's metadata (names, duplicates, encryption,
//! compression, declared sizes) before anything touches the disk; the second writes, counting
//! the bytes actually produced, because declared sizes are attacker-controlled.

use std::{
    collections::HashSet,
    fs::{self, File, OpenOptions},
    io::{self, Cursor, Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use zip::{CompressionMethod, ZipArchive};

use crate::{
    names::{check_symlink_target, parse_entry_name, EntryPath, MAX_SYMLINK_TARGET},
    EntryProblem, PackageError,
};

/// No entry may expand to more than this many times its compressed size (once past
/// [`RATIO_GRACE_BYTES`]). Real code compresses 2-10x; deflate can reach about 1030x, which only
/// runs of identical bytes (bombs, or rare zero-filled data files) achieve.
pub const MAX_COMPRESSION_RATIO: u64 = 200;

/// Bytes an entry may always expand to, whatever its ratio, so tiny compressible files pass.
pub const RATIO_GRACE_BYTES: u64 = 1024 * 1024;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const COPY_CHUNK: usize = 64 * 1024;

/// Bounds on a package; [`Default`] is Lambda's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest zip accepted, in bytes.
    pub max_zip_bytes: u64,
    /// Largest total of bytes written while extracting.
    pub max_unzipped_bytes: u64,
    /// Most entries (files, directories and symlinks) in the zip.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_zip_bytes: warden_types::limits::ZIP_BYTES,
            max_unzipped_bytes: warden_types::limits::UNZIPPED_BYTES,
            max_entries: warden_types::limits::ZIP_ENTRIES,
        }
    }
}

/// What [`extract`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    /// Regular files and symlinks created.
    pub files: usize,
    /// Bytes written: file contents plus symlink targets.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File { executable: bool },
    Dir,
    Symlink,
}

#[derive(Debug)]
struct Plan {
    index: usize,
    name: String,
    path: EntryPath,
    kind: Kind,
    declared: u64,
    compressed: u64,
}

/// Extracts `zip` into `dest`, an existing empty directory.
///
/// Files are written 0644, or 0755 when the zip gives them any executable bit (so a
/// `bootstrap` stays executable); directories 0755; setuid, setgid and sticky bits are never
/// applied. Pre-existing symlinks are never followed. Symlink entries are created only if
/// their target is relative and stays inside the package (see the crate docs).
///
/// On error `dest` may hold a partial package: the caller owns `dest` and removes it.
pub fn extract(zip: &[u8], dest: &Path, limits: &Limits) -> Result<Extracted, PackageError> {
    let size = zip.len() as u64;
    if size > limits.max_zip_bytes {
        return Err(PackageError::ZipTooLarge {
            size,
            limit: limits.max_zip_bytes,
        });
    }
    if fs::read_dir(dest)
        .map_err(PackageError::ReadDest)?
        .next()
        .is_some()
    {
        return Err(PackageError::DestNotEmpty);
    }
    let mut archive = ZipArchive::new(Cursor::new(zip)).map_err(PackageError::Archive)?;
    if archive.len() > limits.max_entries {
        return Err(PackageError::TooManyEntries {
            count: archive.len(),
            limit: limits.max_entries,
        });
    }
    if archive.has_duplicate_names() {
        return Err(PackageError::DuplicateNames);
    }
    let plans = plan(&archive, size, limits)?;

    let mut out = Extracted { files: 0, bytes: 0 };
    for plan in &plans {
        write_entry(&mut archive, plan, dest, limits, &mut out)?;
    }
    Ok(out)
}

/// The names at the top level of the package in `zip` (files and directories, a
/// directory's name once, without its `/`), sorted, without extracting anything: what a
/// client looks at to tell which runtime the package is for. Refuses what [`extract`]
/// would refuse for its size or entry count.
pub fn top_level_names(zip: &[u8], limits: &Limits) -> Result<Vec<String>, PackageError> {
    let size = zip.len() as u64;
    if size > limits.max_zip_bytes {
        return Err(PackageError::ZipTooLarge {
            size,
            limit: limits.max_zip_bytes,
        });
    }
    let archive = ZipArchive::new(Cursor::new(zip)).map_err(PackageError::Archive)?;
    if archive.len() > limits.max_entries {
        return Err(PackageError::TooManyEntries {
            count: archive.len(),
            limit: limits.max_entries,
        });
    }
    let mut names = Vec::new();
    for name in archive.file_names() {
        let name = name.map_err(PackageError::Archive)?;
        let first = name
            .trim_start_matches("./")
            .split('/')
            .next()
            .unwrap_or("");
        if !first.is_empty() && first != "." && first != ".." {
            names.push(first.to_owned());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// First pass: validates every entry without writing anything.
fn plan(
    archive: &ZipArchive<Cursor<&[u8]>>,
    zip_size: u64,
    limits: &Limits,
) -> Result<Vec<Plan>, PackageError> {
    let mut plans = Vec::with_capacity(archive.len());
    let mut seen = HashSet::new();
    let mut symlinks = HashSet::new();
    let mut declared_total = 0u64;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_data(index)
            .map_err(PackageError::Archive)?;
        let name = entry.name().map_err(PackageError::Archive)?.into_owned();
        let unsafe_entry = |problem| PackageError::UnsafeEntry {
            name: name.clone(),
            problem,
        };
        let path = parse_entry_name(&name).map_err(unsafe_entry)?;
        let mode = entry.unix_mode();
        let kind = if entry.is_symlink() {
            if path.trailing_slash {
                return Err(unsafe_entry(EntryProblem::SymlinkIsDir));
            }
            Kind::Symlink
        } else if path.trailing_slash || mode.is_some_and(|m| m & S_IFMT == S_IFDIR) {
            Kind::Dir
        } else {
            Kind::File {
                executable: mode.is_some_and(|m| m & 0o111 != 0),
            }
        };
        if path.components.is_empty() {
            // `./` names the package root itself, which already exists.
            if kind == Kind::Dir {
                continue;
            }
            return Err(unsafe_entry(EntryProblem::Empty));
        }
        if entry.encrypted() {
            return Err(PackageError::Encrypted { name });
        }
        if kind != Kind::Dir {
            let method = entry.compression();
            if !matches!(
                method,
                CompressionMethod::Stored | CompressionMethod::Deflated
            ) {
                return Err(PackageError::UnsupportedCompression {
                    name,
                    method: method.to_string(),
                });
            }
        }
        let joined = path.joined();
        if !seen.insert(joined.clone()) {
            return Err(PackageError::DuplicateEntry { name });
        }
        if kind == Kind::Symlink {
            symlinks.insert(joined);
        }
        declared_total = declared_total.saturating_add(entry.size());
        if declared_total > limits.max_unzipped_bytes {
            // An honest oversized package is refused before any byte is written.
            return Err(PackageError::UnzippedTooLarge {
                name,
                limit: limits.max_unzipped_bytes,
            });
        }
        plans.push(Plan {
            index,
            name,
            path,
            kind,
            declared: entry.size(),
            // A header may claim any compressed size; the data cannot exceed the zip itself.
            compressed: entry.compressed_size().min(zip_size),
        });
    }
    // Writing below a symlink would follow it, wherever it appears in the archive order.
    for plan in &plans {
        let comps = &plan.path.components;
        for end in 1..comps.len() {
            let prefix = comps[..end].join("/");
            if symlinks.contains(&prefix) {
                return Err(PackageError::UnsafeEntry {
                    name: plan.name.clone(),
                    problem: EntryProblem::BelowSymlink { link: prefix },
                });
            }
        }
    }
    Ok(plans)
}

fn write_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    plan: &Plan,
    dest: &Path,
    limits: &Limits,
    out: &mut Extracted,
) -> Result<(), PackageError> {
    let write_err = |source| PackageError::WriteEntry {
        name: plan.name.clone(),
        source,
    };
    let comps = &plan.path.components;
    let (last, parents) = match comps.split_last() {
        Some(split) => split,
        None => return Ok(()),
    };
    let mut target = dest.to_path_buf();
    for parent in parents {
        target.push(parent);
        ensure_dir(&target).map_err(write_err)?;
    }
    target.push(last);

    let mut entry = archive
        .by_index(plan.index)
        .map_err(PackageError::Archive)?;
    match plan.kind {
        Kind::Dir => ensure_dir(&target).map_err(write_err)?,
        Kind::Symlink => {
            let mut raw = Vec::new();
            (&mut entry)
                .take(MAX_SYMLINK_TARGET as u64 + 1)
                .read_to_end(&mut raw)
                .map_err(|source| PackageError::ReadEntry {
                    name: plan.name.clone(),
                    source,
                })?;
            let unsafe_entry = |problem| PackageError::UnsafeEntry {
                name: plan.name.clone(),
                problem,
            };
            let link_target = String::from_utf8(raw)
                .map_err(|_| unsafe_entry(EntryProblem::SymlinkTargetInvalid))?;
            check_symlink_target(parents.len(), &link_target).map_err(unsafe_entry)?;
            let n = link_target.len() as u64;
            if out.bytes.saturating_add(n) > limits.max_unzipped_bytes {
                return Err(PackageError::UnzippedTooLarge {
                    name: plan.name.clone(),
                    limit: limits.max_unzipped_bytes,
                });
            }
            // symlink(2) fails with EEXIST rather than following anything already there.
            std::os::unix::fs::symlink(&link_target, &target).map_err(write_err)?;
            out.bytes += n;
            out.files += 1;
        }
        Kind::File { executable } => {
            let mode = if executable { 0o755 } else { 0o644 };
            // create_new is O_CREAT|O_EXCL, which never follows a symlink; O_NOFOLLOW says so
            // explicitly in case this is ever relaxed.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&target)
                .map_err(write_err)?;
            copy_bounded(&mut entry, &mut file, plan, limits, out)?;
            // The umask may have cleared bits that the package needs.
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(write_err)?;
            out.files += 1;
        }
    }
    Ok(())
}

/// Copies one entry, checking every limit before each write so the disk never holds more
/// than allowed.
fn copy_bounded(
    reader: &mut impl Read,
    file: &mut File,
    plan: &Plan,
    limits: &Limits,
    out: &mut Extracted,
) -> Result<(), PackageError> {
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut written = 0u64;
    let ratio_bound = plan
        .compressed
        .max(1)
        .saturating_mul(MAX_COMPRESSION_RATIO)
        .max(RATIO_GRACE_BYTES);
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(PackageError::ReadEntry {
                    name: plan.name.clone(),
                    source,
                })
            }
        };
        let n64 = n as u64;
        written = written.saturating_add(n64);
        if written > plan.declared {
            return Err(PackageError::LargerThanDeclared {
                name: plan.name.clone(),
                declared: plan.declared,
            });
        }
        if out.bytes.saturating_add(n64) > limits.max_unzipped_bytes {
            return Err(PackageError::UnzippedTooLarge {
                name: plan.name.clone(),
                limit: limits.max_unzipped_bytes,
            });
        }
        if written > ratio_bound {
            return Err(PackageError::CompressionRatio {
                name: plan.name.clone(),
                ratio: MAX_COMPRESSION_RATIO,
            });
        }
        file.write_all(&buf[..n])
            .map_err(|source| PackageError::WriteEntry {
                name: plan.name.clone(),
                source,
            })?;
        out.bytes += n64;
    }
}

/// Makes `path` a real directory (0755), refusing a symlink or file already there.
fn ensure_dir(path: &PathBuf) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(path)?;
            if meta.file_type().is_dir() {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file or symlink is already there where a directory is needed",
                ))
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod top_level_tests {
    use super::*;

    #[test]
    fn top_level_names_are_the_first_component_of_every_entry_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg/sub")).unwrap();
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        std::fs::write(dir.path().join("pkg/__init__.py"), "").unwrap();
        std::fs::write(dir.path().join("pkg/sub/m.py"), "").unwrap();
        let zip = crate::zip_directory(dir.path(), &mut |_, _| {}).unwrap();
        let names = top_level_names(&zip, &Limits::default()).unwrap();
        assert_eq!(names, ["app.py", "pkg"]);
        assert!(matches!(
            top_level_names(b"not a zip", &Limits::default()),
            Err(PackageError::Archive(_))
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::MetadataExt;
    use zip::write::{SimpleFileOptions, ZipWriter};

    /// An entry to put in a test zip.
    enum E<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str),
        Link(&'a str, &'a str),
    }

    fn build(entries: &[E<'_>]) -> Vec<u8> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        for e in entries {
            match e {
                E::File(name, data, mode) => {
                    let opts = SimpleFileOptions::default().unix_permissions(*mode);
                    zip.start_file(*name, opts).unwrap();
                    zip.write_all(data).unwrap();
                }
                E::Dir(name) => zip
                    .add_directory(*name, SimpleFileOptions::default())
                    .unwrap(),
                E::Link(name, target) => zip
                    .add_symlink(*name, *target, SimpleFileOptions::default())
                    .unwrap(),
            }
        }
        zip.finish().unwrap().into_inner()
    }

    /// Rewrites header fields of the entry `name` in both its local and central headers.
    /// Offsets are those of the local header; the central header's are 2 further (it has
    /// "version made by" first), and its name starts at 46 instead of 30.
    fn patch(zip: &mut [u8], name: &[u8], field: usize, value: &[u8]) {
        let mut hits = 0;
        for p in 0..zip.len().saturating_sub(4) {
            let (shift, name_at) = match &zip[p..p + 4] {
                b"PK\x03\x04" => (0, 30),
                b"PK\x01\x02" => (2, 46),
                _ => continue,
            };
            if zip.get(p + name_at..p + name_at + name.len()) == Some(name) {
                let at = p + field + shift;
                zip[at..at + value.len()].copy_from_slice(value);
                hits += 1;
            }
        }
        assert_eq!(hits, 2, "patched local and central header");
    }
    const FLAGS: usize = 6;
    const METHOD: usize = 8;
    const UNCOMPRESSED: usize = 22;

    fn extract_new(
        zip: &[u8],
        limits: &Limits,
    ) -> (tempfile::TempDir, Result<Extracted, PackageError>) {
        let dir = tempfile::tempdir().unwrap();
        let res = extract(zip, dir.path(), limits);
        (dir, res)
    }

    fn err(zip: &[u8]) -> String {
        extract_new(zip, &Limits::default())
            .1
            .unwrap_err()
            .to_string()
    }

    fn disk_bytes(root: &Path) -> u64 {
        let mut total = 0;
        for e in fs::read_dir(root).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            total += if m.is_dir() {
                disk_bytes(&e.path())
            } else {
                m.len()
            };
        }
        total
    }

    #[test]
    fn extracts_files_dirs_links_and_modes() {
        let zip = build(&[
            E::File("bootstrap", b"#!/bin/sh\n", 0o4777),
            E::Dir("lib/"),
            E::File("lib/libfoo.so.1", b"elf", 0o640),
            E::Link("lib/libfoo.so", "libfoo.so.1"),
            E::File("deep/er/data.txt", b"hello", 0o600),
            E::Link("deep/er/up", "../../lib"),
        ]);
        let (dir, res) = extract_new(&zip, &Limits::default());
        assert_eq!(
            res.unwrap(),
            Extracted {
                files: 5,
                bytes: 10 + 3 + 11 + 5 + 9
            }
        );
        let mode = |p: &str| fs::symlink_metadata(dir.path().join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("bootstrap"), 0o755, "setuid stripped, exec kept");
        assert_eq!(mode("lib/libfoo.so.1"), 0o644);
        assert_eq!(mode("deep/er/data.txt"), 0o644);
        assert_eq!(mode("lib"), 0o755);
        assert_eq!(mode("deep"), 0o755);
        assert_eq!(fs::read(dir.path().join("lib/libfoo.so")).unwrap(), b"elf");
        assert_eq!(
            fs::read_link(dir.path().join("deep/er/up")).unwrap(),
            Path::new("../../lib")
        );
    }

    #[test]
    fn refuses_unsafe_names_with_the_entry_and_reason() {
        let cases = [
            (
                "../evil",
                "entry `../evil` is refused: the path contains `..`",
            ),
            (
                "a/../../evil",
                "entry `a/../../evil` is refused: the path contains `..`",
            ),
            (
                "/etc/evil",
                "entry `/etc/evil` is refused: the path is absolute",
            ),
            (
                "C:\\evil",
                "entry `C:\\evil` is refused: the name contains a backslash",
            ),
            (
                "C:/evil",
                "entry `C:/evil` is refused: the path starts with a drive letter",
            ),
            (
                "a//b",
                "entry `a//b` is refused: the path has an empty component",
            ),
        ];
        for (name, expected) in cases {
            let zip = build(&[E::File(name, b"x", 0o644)]);
            assert_eq!(err(&zip), expected, "{name}");
        }
    }

    #[test]
    fn refuses_nul_in_names() {
        let mut zip = build(&[E::File("aXb", b"x", 0o644)]);
        for p in 0..zip.len() - 3 {
            if &zip[p..p + 3] == b"aXb" {
                zip[p + 1] = 0;
            }
        }
        assert_eq!(
            err(&zip),
            "entry `a\0b` is refused: the name contains a NUL byte"
        );
    }

    #[test]
    fn refuses_escaping_symlinks() {
        let zip = build(&[E::Link("l", "/etc/passwd")]);
        assert_eq!(
            err(&zip),
            "entry `l` is refused: the symlink target `/etc/passwd` is absolute"
        );
        let zip = build(&[E::Link("a/l", "../../x")]);
        assert_eq!(
            err(&zip),
            "entry `a/l` is refused: the symlink target `../../x` points outside the package"
        );
        let zip = build(&[E::Link("l", "a/../..")]);
        assert_eq!(
            err(&zip),
            "entry `l` is refused: the symlink target `a/../..` has `..` after a name (only leading `..` are allowed)"
        );
    }

    #[test]
    fn refuses_writing_below_a_symlink_in_either_order() {
        let expected = "entry `s/x` is refused: it lies below the symlink `s`";
        let zip = build(&[E::Link("s", "d"), E::File("s/x", b"x", 0o644)]);
        assert_eq!(err(&zip), expected);
        let zip = build(&[E::File("s/x", b"x", 0o644), E::Link("s", "d")]);
        assert_eq!(err(&zip), expected);
    }

    /// The chain that defeats a purely lexical check: `a/s -> ..` is the root, so
    /// `a/s/y -> ../..` would climb out. It must be refused however it is spelled.
    #[test]
    fn refuses_symlink_chains_that_escape() {
        let zip = build(&[
            E::Dir("a/"),
            E::Link("a/s", ".."),
            E::Link("a/s/y", "../.."),
        ]);
        assert_eq!(
            err(&zip),
            "entry `a/s/y` is refused: it lies below the symlink `a/s`"
        );
        let zip = build(&[E::Link("a/s", ".."), E::Link("t", "a/s/../..")]);
        assert!(err(&zip).contains("has `..` after a name"));
    }

    #[test]
    fn refuses_duplicates() {
        let mut zip = build(&[E::File("dupA", b"1", 0o644), E::File("dupB", b"2", 0o644)]);
        for p in 0..zip.len() - 4 {
            if &zip[p..p + 4] == b"dupB" {
                zip[p + 3] = b'A';
            }
        }
        assert_eq!(err(&zip), "zip lists the same entry name more than once");
        let zip = build(&[E::File("a", b"1", 0o644), E::File("./a", b"2", 0o644)]);
        assert_eq!(
            err(&zip),
            "entry `./a` names a path that an earlier entry already uses"
        );
        let zip = build(&[E::File("a", b"1", 0o644), E::Dir("a/")]);
        assert_eq!(
            err(&zip),
            "entry `a/` names a path that an earlier entry already uses"
        );
    }

    #[test]
    fn refuses_too_many_entries() {
        let zip = build(&[
            E::File("a", b"", 0o644),
            E::File("b", b"", 0o644),
            E::File("c", b"", 0o644),
        ]);
        let limits = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        let (_dir, res) = extract_new(&zip, &limits);
        assert_eq!(
            res.unwrap_err().to_string(),
            "zip has 3 entries, more than the limit of 2"
        );
    }

    #[test]
    fn refuses_a_zip_over_the_size_limit() {
        let zip = build(&[E::File("a", b"hello", 0o644)]);
        let limits = Limits {
            max_zip_bytes: 10,
            ..Limits::default()
        };
        let (_dir, res) = extract_new(&zip, &limits);
        let msg = res.unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "zip is {} bytes, more than the limit of 10 bytes",
                zip.len()
            )
        );
    }

    #[test]
    fn refuses_encrypted_entries() {
        let mut zip = build(&[E::File("secret", b"x", 0o644)]);
        patch(&mut zip, b"secret", FLAGS, &[0x01, 0x00]);
        assert_eq!(
            err(&zip),
            "entry `secret` is encrypted, which is not supported"
        );
    }

    #[test]
    fn refuses_unsupported_compression() {
        let mut zip = build(&[E::File("packed", b"x", 0o644)]);
        patch(&mut zip, b"packed", METHOD, &93u16.to_le_bytes());
        assert_eq!(
            err(&zip),
            "entry `packed` uses compression method `Zstd`; only store and deflate are supported"
        );
    }

    #[test]
    fn refuses_a_non_empty_destination() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("old"), b"x").unwrap();
        let zip = build(&[E::File("a", b"x", 0o644)]);
        assert_eq!(
            extract(&zip, dir.path(), &Limits::default())
                .unwrap_err()
                .to_string(),
            "destination directory is not empty"
        );
    }

    #[test]
    fn refuses_garbage() {
        assert!(err(b"not a zip at all").starts_with("could not read the zip archive: "));
    }

    fn zeros_bomb(size: u64) -> Vec<u8> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default().compression_level(Some(9));
        zip.start_file("bomb", opts).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..size / chunk.len() as u64 {
            zip.write_all(&chunk).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    /// 1 GiB of zeros in about a megabyte: refused from its declared size before any write.
    #[test]
    fn honest_gigabyte_bomb_is_refused_before_writing() {
        let zip = zeros_bomb(1 << 30);
        assert!(zip.len() < 2 << 20);
        let (dir, res) = extract_new(&zip, &Limits::default());
        assert_eq!(
            res.unwrap_err().to_string(),
            "package unzips to more than the limit of 262144000 bytes (at entry `bomb`)"
        );
        assert_eq!(disk_bytes(dir.path()), 0);
    }

    /// The same bomb whose headers claim 1000 bytes: stopped at the lie, having written at
    /// most the declared size.
    #[test]
    fn lying_gigabyte_bomb_is_stopped_while_writing() {
        let mut zip = zeros_bomb(1 << 30);
        patch(&mut zip, b"bomb", UNCOMPRESSED, &1000u32.to_le_bytes());
        let (dir, res) = extract_new(&zip, &Limits::default());
        let err = res.unwrap_err();
        assert!(
            matches!(
                &err,
                PackageError::LargerThanDeclared { declared: 1000, .. }
                    | PackageError::ReadEntry { .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("`bomb`"), "{err}");
        assert!(disk_bytes(dir.path()) <= 1000);
    }

    #[test]
    fn extreme_compression_ratio_is_refused() {
        let zip = zeros_bomb(16 << 20);
        let (dir, res) = extract_new(&zip, &Limits::default());
        assert_eq!(
            res.unwrap_err().to_string(),
            "entry `bomb` expands more than 200 times its compressed size"
        );
        let bound = (zip.len() as u64 * MAX_COMPRESSION_RATIO).max(RATIO_GRACE_BYTES);
        assert!(disk_bytes(dir.path()) <= bound);
    }

    #[test]
    fn many_entries_together_over_the_limit_are_refused() {
        let data = vec![7u8; 4096];
        let zip = build(&[
            E::File("a", &data, 0o644),
            E::File("b", &data, 0o644),
            E::File("c", &data, 0o644),
        ]);
        let limits = Limits {
            max_unzipped_bytes: 10_000,
            ..Limits::default()
        };
        let (dir, res) = extract_new(&zip, &limits);
        assert_eq!(
            res.unwrap_err().to_string(),
            "package unzips to more than the limit of 10000 bytes (at entry `c`)"
        );
        assert_eq!(disk_bytes(dir.path()), 0);
    }

    /// The byte counter that runs while writing, fed a stream whose declared size is
    /// unbounded: it stops exactly at the limit.
    #[test]
    fn copy_stops_at_the_unzipped_limit_whatever_was_declared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        let plan = Plan {
            index: 0,
            name: "f".into(),
            path: parse_entry_name("f").unwrap(),
            kind: Kind::File { executable: false },
            declared: u64::MAX,
            compressed: u64::MAX,
        };
        let limits = Limits {
            max_unzipped_bytes: 100_000,
            ..Limits::default()
        };
        let mut out = Extracted { files: 0, bytes: 0 };
        let mut endless = io::repeat(1);
        let err = copy_bounded(&mut endless, &mut file, &plan, &limits, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "package unzips to more than the limit of 100000 bytes (at entry `f`)"
        );
        assert!(fs::metadata(&path).unwrap().len() <= 100_000);
        assert_eq!(out.bytes, fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn copy_stops_past_the_declared_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::create(dir.path().join("f")).unwrap();
        let plan = Plan {
            index: 0,
            name: "f".into(),
            path: parse_entry_name("f").unwrap(),
            kind: Kind::File { executable: false },
            declared: 10,
            compressed: 10,
        };
        let mut out = Extracted { files: 0, bytes: 0 };
        let err = copy_bounded(
            &mut io::repeat(1),
            &mut file,
            &plan,
            &Limits::default(),
            &mut out,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry `f` is larger than its declared size of 10 bytes"
        );
        assert_eq!(out.bytes, 0);
    }

    /// Everything below `root`, as paths relative to it.
    fn walk_all(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                walk_all(root, &p, out);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            let _ = extract(&bytes, dir.path(), &Limits::default());
        }

        /// Mutating a valid zip explores deeper paths than random bytes.
        #[test]
        fn mutated_zips_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut zip = build(&[
                E::File("bootstrap", b"#!/bin/sh\necho hi\n", 0o755),
                E::Link("l", "bootstrap"),
                E::Dir("d/"),
            ]);
            for (at, byte) in flips {
                let i = at.index(zip.len());
                zip[i] = byte;
            }
            let dir = tempfile::tempdir().unwrap();
            let _ = extract(&zip, dir.path(), &Limits::default());
        }

        /// Whatever the names and symlink targets, nothing appears outside `dest`, and every
        /// symlink that resolves lands inside it.
        #[test]
        fn arbitrary_names_stay_inside_dest(
            entries in proptest::collection::vec(
                ("(\\.\\.|\\.|a|b|/|\\\\|C:){1,8}", prop::option::of("(\\.\\.|\\.|a|b|/){1,8}")),
                1..8,
            )
        ) {
            let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
            for (name, link) in &entries {
                let res = match link {
                    Some(target) => zip.add_symlink(name.as_str(), target.as_str(), SimpleFileOptions::default()),
                    None => zip.start_file(name.as_str(), SimpleFileOptions::default())
                        .and_then(|()| zip.write_all(b"x").map_err(Into::into)),
                };
                prop_assume!(res.is_ok());
            }
            let zip = zip.finish().unwrap().into_inner();
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("dest");
            fs::create_dir(&dest).unwrap();
            let _ = extract(&zip, &dest, &Limits::default());
            let mut all = Vec::new();
            walk_all(root.path(), root.path(), &mut all);
            let dest_real = dest.canonicalize().unwrap();
            for p in all {
                prop_assert!(p.starts_with("dest"), "{} escaped", p.display());
                let full = root.path().join(&p);
                if let Ok(resolved) = full.canonicalize() {
                    prop_assert!(resolved.starts_with(&dest_real), "{} resolves outside", p.display());
                }
            }
        }
    }
}
