//! Deterministic zipping of a local directory, as the `warden` client uploads it.
//!
//! The same directory always gives the same bytes (sorted entries, fixed timestamps, modes
//! reduced to 0644/0755), so an unchanged function keeps its `CodeSha256`.

use std::{
    fs::{self, File},
    io::{self, Cursor, Read, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use zip::{
    write::{FileOptions, SimpleFileOptions},
    CompressionMethod, DateTime, ZipWriter,
};

use crate::{names::check_symlink_target, PackageError};

const COPY_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
enum Item {
    Dir,
    File { size: u64, executable: bool },
    Symlink { target: String },
}

/// Zips the contents of `dir` (not `dir` itself) into memory.
///
/// Entries are sorted by path and stamped 1980-01-01; files keep only whether they are
/// executable. Directories become entries so empty ones survive. Symlinks are stored as
/// symlinks if [`crate::extract`] would accept them, and refused otherwise (absolute, or
/// leaving `dir`). Sockets, fifos and devices are refused; nothing is skipped.
///
/// `on_progress(done, total)` is called as file contents are read, `total` being the sum of
/// the regular files' sizes when the walk started.
pub fn zip_directory(
    dir: &Path,
    on_progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<u8>, PackageError> {
    let mut items = Vec::new();
    walk(dir, dir, &mut items)?;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let total: u64 = items
        .iter()
        .map(|(_, _, item)| match item {
            Item::File { size, .. } => *size,
            _ => 0,
        })
        .sum();
    on_progress(0, total);

    let base: SimpleFileOptions = FileOptions::default()
        .last_modified_time(DateTime::default())
        .compression_method(CompressionMethod::Deflated);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let mut done = 0u64;
    let mut buf = vec![0u8; COPY_CHUNK];
    for (name, path, item) in &items {
        match item {
            Item::Dir => zip
                .add_directory(name.as_str(), base.unix_permissions(0o755))
                .map_err(PackageError::WriteZip)?,
            Item::Symlink { target } => zip
                .add_symlink(name.as_str(), target.as_str(), base.unix_permissions(0o777))
                .map_err(PackageError::WriteZip)?,
            Item::File { size, executable } => {
                let mode = if *executable { 0o755 } else { 0o644 };
                let options = base
                    .unix_permissions(mode)
                    .large_file(*size >= u64::from(u32::MAX));
                zip.start_file(name.as_str(), options)
                    .map_err(PackageError::WriteZip)?;
                let read_err = |source| PackageError::ReadSource {
                    path: path.clone(),
                    source,
                };
                let mut file = File::open(path).map_err(read_err)?;
                loop {
                    let n = match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(read_err(e)),
                    };
                    zip.write_all(&buf[..n])
                        .map_err(|e| PackageError::WriteZip(e.into()))?;
                    done += n as u64;
                    on_progress(done.min(total), total);
                }
            }
        }
    }
    let cursor = zip.finish().map_err(PackageError::WriteZip)?;
    Ok(cursor.into_inner())
}

/// Collects `(entry name, local path, item)` for everything below `current`.
fn walk(
    root: &Path,
    current: &Path,
    items: &mut Vec<(String, PathBuf, Item)>,
) -> Result<(), PackageError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackageError::ReadSource { path, source }
    };
    for dirent in fs::read_dir(current).map_err(read_err(current))? {
        let dirent = dirent.map_err(read_err(current))?;
        let path = dirent.path();
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let mut name = String::new();
        let mut depth = 0usize;
        for part in rel.components() {
            let part = part
                .as_os_str()
                .to_str()
                .ok_or_else(|| PackageError::NonUtf8Name { path: path.clone() })?;
            if depth > 0 {
                name.push('/');
            }
            name.push_str(part);
            depth += 1;
        }
        let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(read_err(&path))?;
            let target = target
                .to_str()
                .ok_or_else(|| PackageError::NonUtf8Name {
                    path: target.clone(),
                })?
                .to_owned();
            check_symlink_target(depth.saturating_sub(1), &target).map_err(|problem| {
                PackageError::UnsafeSymlink {
                    path: path.clone(),
                    problem,
                }
            })?;
            items.push((name, path, Item::Symlink { target }));
        } else if file_type.is_dir() {
            walk(root, &path, items)?;
            items.push((format!("{name}/"), path, Item::Dir));
        } else if file_type.is_file() {
            let item = Item::File {
                size: meta.len(),
                executable: meta.permissions().mode() & 0o111 != 0,
            };
            items.push((name, path, item));
        } else {
            return Err(PackageError::SpecialFile { path });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{extract, Limits};
    use std::os::unix::fs::{symlink, MetadataExt};

    fn sample(dir: &Path) {
        fs::write(dir.join("bootstrap"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(dir.join("bootstrap"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::create_dir_all(dir.join("lib/empty")).unwrap();
        fs::write(dir.join("lib/libfoo.so.1"), vec![42u8; 300_000]).unwrap();
        symlink("libfoo.so.1", dir.join("lib/libfoo.so")).unwrap();
        symlink("../lib", dir.join("lib/empty/../up")).unwrap();
    }

    #[test]
    fn round_trips_through_extract_keeping_modes_and_links() {
        let src = tempfile::tempdir().unwrap();
        sample(src.path());
        let zip = zip_directory(src.path(), &mut |_, _| {}).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let got = extract(&zip, dest.path(), &Limits::default()).unwrap();
        assert_eq!(got.files, 4);
        let d = dest.path();
        assert_eq!(
            fs::read(d.join("bootstrap")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            fs::metadata(d.join("bootstrap")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            fs::metadata(d.join("lib/libfoo.so.1")).unwrap().mode() & 0o7777,
            0o644
        );
        assert_eq!(
            fs::read_link(d.join("lib/libfoo.so")).unwrap(),
            Path::new("libfoo.so.1")
        );
        assert_eq!(
            fs::read_link(d.join("lib/up")).unwrap(),
            Path::new("../lib")
        );
        assert!(d.join("lib/empty").is_dir());
    }

    #[test]
    fn is_deterministic() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        sample(a.path());
        // Same content written in another order at another time.
        fs::create_dir_all(b.path().join("lib/empty")).unwrap();
        symlink("../lib", b.path().join("lib/up")).unwrap();
        symlink("libfoo.so.1", b.path().join("lib/libfoo.so")).unwrap();
        fs::write(b.path().join("lib/libfoo.so.1"), vec![42u8; 300_000]).unwrap();
        fs::write(b.path().join("bootstrap"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(
            b.path().join("bootstrap"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let za = zip_directory(a.path(), &mut |_, _| {}).unwrap();
        let zb = zip_directory(b.path(), &mut |_, _| {}).unwrap();
        assert!(za == zb, "same tree gives the same bytes");
    }

    #[test]
    fn reports_progress_up_to_the_total() {
        let src = tempfile::tempdir().unwrap();
        sample(src.path());
        let mut calls = Vec::new();
        zip_directory(src.path(), &mut |done, total| calls.push((done, total))).unwrap();
        let total = 300_000 + 18;
        assert_eq!(calls.first(), Some(&(0, total)));
        assert_eq!(calls.last(), Some(&(total, total)));
        assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn refuses_symlinks_leaving_the_directory() {
        let src = tempfile::tempdir().unwrap();
        symlink("/etc/passwd", src.path().join("abs")).unwrap();
        let err = zip_directory(src.path(), &mut |_, _| {}).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is refused: the symlink target `/etc/passwd` is absolute"),
            "{err}"
        );
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("d")).unwrap();
        symlink("../../x", src.path().join("d/up")).unwrap();
        let err = zip_directory(src.path(), &mut |_, _| {}).unwrap_err();
        assert!(
            err.to_string().ends_with("points outside the package"),
            "{err}"
        );
    }

    #[test]
    fn refuses_special_files() {
        let src = tempfile::tempdir().unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(src.path().join("sock")).unwrap();
        let err = zip_directory(src.path(), &mut |_, _| {}).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is not a regular file, directory or symlink"),
            "{err}"
        );
    }
}
