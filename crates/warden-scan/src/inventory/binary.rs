//! Dependencies compiled into executables: the list `cargo auditable` embeds in Rust
//! binaries (an ELF section `.dep-v0`, zlib-compressed JSON), and the build information
//! the Go toolchain writes into every Go binary (module path, versions of the main module
//! and of each dependency).
//!
//! Why hand-written: both formats are small and fixed, and reading them needs only the
//! ELF section table (for Rust) or a byte search (for Go); an object-file crate would bring
//! far more parsing surface than the dozen fields read here. Every offset and length read
//! from the file is checked against its size before use, the decompressed list is bounded
//! ([`MAX_LIST_BYTES`]), and the parsers are property-tested on hostile input.

use std::io::Read;

use serde::Deserialize;

use super::Found;
use crate::Ecosystem;

/// The largest dependency list decompressed from a Rust binary.
pub const MAX_LIST_BYTES: u64 = 8 << 20;

/// Most dependencies read from one binary.
const MAX_PACKAGES: usize = 100_000;

const GO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Whether `bytes` start like an ELF object.
pub(crate) fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// The dependencies an executable declares: `Ok(None)` when it carries neither list.
pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Vec<Found>>, String> {
    if let Some(section) = elf_section(bytes, b".dep-v0")? {
        return auditable(section).map(Some);
    }
    go_buildinfo(bytes)
}

fn read_uint(bytes: &[u8], at: usize, width: usize, little: bool) -> Result<u64, String> {
    let end = at.checked_add(width).ok_or("an offset overflows")?;
    let slice = bytes
        .get(at..end)
        .ok_or_else(|| format!("the ELF header points past the file's end ({at})"))?;
    let mut value = 0u64;
    for i in 0..width {
        let b = if little {
            slice[width - 1 - i]
        } else {
            slice[i]
        };
        value = (value << 8) | u64::from(b);
    }
    Ok(value)
}

fn to_usize(v: u64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| "an ELF offset does not fit in memory".to_owned())
}

/// The contents of the section named `wanted`, if the ELF file has one.
fn elf_section<'a>(bytes: &'a [u8], wanted: &[u8]) -> Result<Option<&'a [u8]>, String> {
    if !is_elf(bytes) || bytes.len() < 0x34 {
        return Ok(None);
    }
    let wide = match bytes[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    let little = match bytes[5] {
        1 => true,
        2 => false,
        d => return Err(format!("unknown ELF byte order {d}")),
    };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (
            read_uint(bytes, 0x28, 8, little)?,
            read_uint(bytes, 0x3A, 2, little)?,
            read_uint(bytes, 0x3C, 2, little)?,
            read_uint(bytes, 0x3E, 2, little)?,
        )
    } else {
        (
            read_uint(bytes, 0x20, 4, little)?,
            read_uint(bytes, 0x2E, 2, little)?,
            read_uint(bytes, 0x30, 2, little)?,
            read_uint(bytes, 0x32, 2, little)?,
        )
    };
    if shnum == 0 || shoff == 0 {
        return Ok(None);
    }
    let min_entry = if wide { 0x40 } else { 0x28 };
    if shentsize < min_entry {
        return Err(format!(
            "ELF section headers of {shentsize} bytes are too small"
        ));
    }
    let header = |i: u64| -> Result<(u64, u64, u64), String> {
        let at = shoff
            .checked_add(i.checked_mul(shentsize).ok_or("an offset overflows")?)
            .ok_or("an offset overflows")?;
        let at = to_usize(at)?;
        let name = read_uint(bytes, at, 4, little)?;
        let (offset, size) = if wide {
            (
                read_uint(bytes, at + 0x18, 8, little)?,
                read_uint(bytes, at + 0x20, 8, little)?,
            )
        } else {
            (
                read_uint(bytes, at + 0x10, 4, little)?,
                read_uint(bytes, at + 0x14, 4, little)?,
            )
        };
        Ok((name, offset, size))
    };
    let contents = |offset: u64, size: u64| -> Result<&'a [u8], String> {
        let start = to_usize(offset)?;
        let end = start
            .checked_add(to_usize(size)?)
            .ok_or("a section overflows")?;
        bytes
            .get(start..end)
            .ok_or_else(|| "an ELF section lies past the file's end".to_owned())
    };
    if shstrndx >= shnum {
        return Err("the ELF section name table is out of range".into());
    }
    let (_, names_offset, names_size) = header(shstrndx)?;
    let names = contents(names_offset, names_size)?;
    for i in 0..shnum {
        let (name, offset, size) = header(i)?;
        let Some(rest) = names.get(to_usize(name)?..) else {
            continue;
        };
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        if &rest[..end] == wanted {
            return contents(offset, size).map(Some);
        }
    }
    Ok(None)
}

#[derive(Deserialize)]
struct AuditableList {
    packages: Vec<AuditablePackage>,
}

#[derive(Deserialize)]
struct AuditablePackage {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    root: bool,
}

/// The `cargo auditable` list: crates from crates.io are matched; local, git and other
/// registries' crates (and the binary's own crate) are listed as local.
fn auditable(compressed: &[u8]) -> Result<Vec<Found>, String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_LIST_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("the cargo auditable list does not decompress: {e}"))?;
    if json.len() as u64 > MAX_LIST_BYTES {
        return Err(format!(
            "the cargo auditable list is larger than {MAX_LIST_BYTES} bytes"
        ));
    }
    let list: AuditableList = serde_json::from_slice(&json)
        .map_err(|e| format!("the cargo auditable list is not its JSON: {e}"))?;
    if list.packages.len() > MAX_PACKAGES {
        return Err(format!("more than {MAX_PACKAGES} dependencies"));
    }
    Ok(list
        .packages
        .into_iter()
        .map(|p| Found {
            ecosystem: Ecosystem::CratesIo,
            local: p.root || p.source.as_deref() != Some("crates.io"),
            name: p.name,
            version: p.version,
        })
        .collect())
}

/// A Go varint-prefixed string at `at`; the string and where it ends.
fn go_string(bytes: &[u8], mut at: usize) -> Result<(&[u8], usize), String> {
    let mut len = 0u64;
    let mut shift = 0u32;
    loop {
        let b = *bytes.get(at).ok_or("the Go build info is cut short")?;
        at += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 56 {
            return Err("a Go build info length is too long".into());
        }
    }
    let len = to_usize(len)?;
    let end = at.checked_add(len).ok_or("a Go string overflows")?;
    let s = bytes
        .get(at..end)
        .ok_or("a Go build info string lies past the file's end")?;
    Ok((s, end))
}

/// The Go build information: the main module (local) and each dependency (a `=>`
/// replacement takes the place of the dependency before it).
fn go_buildinfo(bytes: &[u8]) -> Result<Option<Vec<Found>>, String> {
    let Some(at) = bytes.windows(GO_MAGIC.len()).position(|w| w == GO_MAGIC) else {
        return Ok(None);
    };
    let flags = *bytes
        .get(at + 15)
        .ok_or("the Go build info header is cut short")?;
    if flags & 2 == 0 {
        return Err("Go build info written before Go 1.18 is not read".into());
    }
    let (_version, next) = go_string(bytes, at + 32)?;
    let (mut info, _) = go_string(bytes, next)?;
    // The module text sits between two 16-byte sentinels.
    if info.len() >= 33 && info[info.len() - 17] == b'\n' {
        info = &info[16..info.len() - 16];
    }
    let text = std::str::from_utf8(info).map_err(|_| "the Go module information is not UTF-8")?;
    let mut found: Vec<Found> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let module = |path: &str, version: &str, local: bool| Found {
            ecosystem: Ecosystem::Go,
            name: path.to_owned(),
            version: version.trim_start_matches('v').to_owned(),
            local,
        };
        match fields.as_slice() {
            ["mod", path, version, ..] => found.push(module(path, version, true)),
            ["dep", path, version, ..] => found.push(module(path, version, false)),
            ["=>", path, version, ..] => {
                if let Some(last) = found.last_mut() {
                    *last = module(path, version, false);
                }
            }
            // A replacement by a local directory has no version: it is the user's code.
            ["=>", path] => {
                if let Some(last) = found.last_mut() {
                    *last = module(path, "(local)", true);
                }
            }
            _ => {}
        }
        if found.len() > MAX_PACKAGES {
            return Err(format!("more than {MAX_PACKAGES} dependencies"));
        }
    }
    Ok(Some(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write as _;

    /// A minimal little-endian ELF64 file with one named section besides the name table.
    pub(crate) fn elf_with_section(name: &str, data: &[u8]) -> Vec<u8> {
        let mut names = vec![0u8];
        let name_at = names.len() as u32;
        names.extend_from_slice(name.as_bytes());
        names.push(0);
        let table_at = names.len() as u32;
        names.extend_from_slice(b".shstrtab\0");
        let mut file = vec![0u8; 0x40];
        file[..4].copy_from_slice(b"\x7fELF");
        file[4] = 2;
        file[5] = 1;
        let data_off = file.len() as u64;
        file.extend_from_slice(data);
        let names_off = file.len() as u64;
        file.extend_from_slice(&names);
        let shoff = file.len() as u64;
        let mut header = |name: u32, offset: u64, size: u64| {
            let mut h = vec![0u8; 0x40];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&offset.to_le_bytes());
            h[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            file.extend_from_slice(&h);
        };
        header(0, 0, 0);
        header(name_at, data_off, data.len() as u64);
        header(table_at, names_off, names.len() as u64);
        file[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        file[0x3A..0x3C].copy_from_slice(&0x40u16.to_le_bytes());
        file[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
        file[0x3E..0x40].copy_from_slice(&2u16.to_le_bytes());
        file
    }

    pub(crate) fn zlib(json: &str) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(json.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    /// A Go 1.18+ build info blob, as the linker writes it, inside other bytes.
    pub(crate) fn go_binary(modinfo: &str) -> Vec<u8> {
        let mut blob = vec![0u8; 48];
        blob.extend_from_slice(GO_MAGIC);
        blob.push(8);
        blob.push(2);
        blob.extend_from_slice(&[0u8; 16]);
        let push = |blob: &mut Vec<u8>, s: &[u8]| {
            let mut n = s.len();
            while n >= 0x80 {
                blob.push((n as u8) | 0x80);
                n >>= 7;
            }
            blob.push(n as u8);
            blob.extend_from_slice(s);
        };
        push(&mut blob, b"go1.22.1");
        let mut wrapped = vec![b'0'; 16];
        wrapped.extend_from_slice(modinfo.as_bytes());
        wrapped.extend_from_slice(b"\n");
        wrapped.extend_from_slice(&[b'1'; 16]);
        // The sentinel test needs a newline 17 bytes from the end.
        push(&mut blob, &wrapped);
        blob.extend_from_slice(&[0u8; 64]);
        blob
    }

    #[test]
    fn a_cargo_auditable_list_is_read_from_its_elf_section() {
        let json = r#"{"packages":[
            {"name":"app","version":"0.1.0","source":"local","kind":"runtime","dependencies":[1],"root":true},
            {"name":"smallvec","version":"1.6.0","source":"crates.io","kind":"runtime","dependencies":[]},
            {"name":"private","version":"2.0.0","source":"git","kind":"runtime","dependencies":[]}
        ]}"#;
        let file = elf_with_section(".dep-v0", &zlib(json));
        let found = parse(&file).unwrap().unwrap();
        let got: Vec<(&str, &str, bool)> = found
            .iter()
            .map(|f| (f.name.as_str(), f.version.as_str(), f.local))
            .collect();
        assert_eq!(
            got,
            [
                ("app", "0.1.0", true),
                ("smallvec", "1.6.0", false),
                ("private", "2.0.0", true)
            ]
        );
        // An ELF file without the section says nothing.
        assert!(parse(&elf_with_section(".text", b"code"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn go_build_info_names_the_modules() {
        let info = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/net\tv0.17.0\th1:x=\ndep\tgithub.com/a/b\tv1.0.0\th1:y=\n=>\tgithub.com/fork/b\tv1.0.1\th1:z=\n";
        let found = parse(&go_binary(info)).unwrap().unwrap();
        let got: Vec<(&str, &str, bool)> = found
            .iter()
            .map(|f| (f.name.as_str(), f.version.as_str(), f.local))
            .collect();
        assert_eq!(
            got,
            [
                ("example.com/app", "(devel)", true),
                ("golang.org/x/net", "0.17.0", false),
                ("github.com/fork/b", "1.0.1", false),
            ]
        );
    }

    #[test]
    fn damaged_binaries_are_reported_not_trusted() {
        let mut file = elf_with_section(".dep-v0", &zlib(r#"{"packages":[]}"#));
        // Section headers pointing past the end.
        let len = file.len();
        file[0x28..0x30].copy_from_slice(&(len as u64 * 2).to_le_bytes());
        assert!(parse(&file).is_err());
        assert!(parse(&elf_with_section(".dep-v0", b"not zlib")).is_err());
        // A zlib bomb stops at the bound.
        let bomb = zlib(&" ".repeat((MAX_LIST_BYTES + 10) as usize));
        let err = parse(&elf_with_section(".dep-v0", &bomb)).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        let mut go = go_binary("dep\tx\tv1\t\n");
        let cut = go.len() - 90;
        go.truncate(cut);
        assert!(parse(&go).is_err());
    }

    #[test]
    fn a_vulnerable_crate_compiled_into_bootstrap_is_found_by_the_scan() {
        use std::io::Write as _;
        let json = r#"{"packages":[
            {"name":"lambda-app","version":"0.1.0","source":"local","root":true,"dependencies":[1]},
            {"name":"smallvec","version":"1.6.0","source":"crates.io","dependencies":[]}
        ]}"#;
        let elf = elf_with_section(".dep-v0", &zlib(json));
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o755);
        writer.start_file("bootstrap", options).unwrap();
        writer.write_all(&elf).unwrap();
        // A data file that happens to be ELF but is not executable is not read.
        writer
            .start_file("data.bin", options.unix_permissions(0o644))
            .unwrap();
        writer.write_all(&elf).unwrap();
        let zip = writer.finish().unwrap().into_inner();
        let inventory = crate::inventory_zip(&zip, &crate::Limits::default()).unwrap();
        let smallvec = inventory
            .packages
            .iter()
            .find(|p| p.name == "smallvec")
            .expect("smallvec listed");
        assert_eq!(smallvec.paths, ["bootstrap"]);
        let dir =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/advisories/osv");
        let (db, _) = crate::AdvisoryDb::import_dir(&dir, &crate::ImportLimits::default()).unwrap();
        let report = crate::scan(&inventory, &db);
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.name == "smallvec" && f.advisory_id == "RUSTSEC-2021-0003"),
            "{:?}",
            report.findings
        );
        // The application's own crate is local: listed, not matched.
        assert!(report.findings.iter().all(|f| f.name != "lambda-app"));
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), prefix in 0usize..3) {
            let mut input = match prefix {
                0 => b"\x7fELF\x02\x01".to_vec(),
                1 => GO_MAGIC.to_vec(),
                _ => Vec::new(),
            };
            input.extend(bytes);
            let _ = parse(&input);
        }
    }
}
