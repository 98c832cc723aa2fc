//! Python manifests: installed distributions' `METADATA` / `PKG-INFO` headers, pinned
//! `requirements*.txt`, and the `poetry.lock`, `uv.lock` and `Pipfile.lock` lockfiles.

use serde::Deserialize;

use super::Found;
use crate::Ecosystem;

fn found(name: &str, version: &str, local: bool) -> Found {
    Found {
        ecosystem: Ecosystem::PyPi,
        name: name.to_owned(),
        version: version.to_owned(),
        local,
    }
}

/// The `Name` and `Version` headers of core metadata (`*.dist-info/METADATA`,
/// `*.egg-info/PKG-INFO`): RFC 822 style headers up to the first blank line, after which
/// the long description starts (and may contain anything, headers look-alikes included).
pub(super) fn metadata(bytes: &[u8]) -> Result<Vec<Found>, String> {
    // Headers are ASCII; a description in another encoding must not hide them.
    let text = String::from_utf8_lossy(bytes);
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            match key.trim() {
                "Name" if name.is_none() => name = Some(value.trim()),
                "Version" if version.is_none() => version = Some(value.trim()),
                _ => {}
            }
        }
    }
    match (name, version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => Ok(vec![found(n, v, false)]),
        _ => Err("no `Name` and `Version` headers".into()),
    }
}

/// Exact pins (`name==1.2.3`, `name[extra]===1.2.3`) of a pip requirements file. Options
/// (`-r`, `-e`, `--hash`), comments, environment markers after `;`, URLs and any
/// specifier that is not one exact version are skipped: only a pin names what is
/// installed.
pub(super) fn requirements(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        // A trailing backslash continues the requirement on the next line.
        if let Some(head) = line.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        if let Some(f) = requirement_pin(&logical) {
            out.push(f);
        }
        logical.clear();
    }
    if let Some(f) = requirement_pin(&logical) {
        out.push(f);
    }
    Ok(out)
}

fn requirement_pin(line: &str) -> Option<Found> {
    // A comment starts at `#` at the line start or after whitespace (pip's rule).
    let mut end = line.len();
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            end = i;
            break;
        }
    }
    let mut line = line[..end].trim();
    if line.starts_with('-') {
        return None;
    }
    if let Some((head, _markers)) = line.split_once(';') {
        line = head.trim();
    }
    // Per-requirement options such as `--hash=...` follow whitespace.
    if let Some(at) = line.find(" --").or_else(|| line.find("\t--")) {
        line = line[..at].trim();
    }
    let name_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_len);
    if name.is_empty() {
        return None;
    }
    rest = rest.trim_start();
    if let Some(extras) = rest.strip_prefix('[') {
        rest = extras.split_once(']')?.1.trim_start();
    }
    let version = rest
        .strip_prefix("===")
        .or_else(|| rest.strip_prefix("=="))?
        .trim();
    let exact =
        !version.is_empty() && !version.contains([',', '*', ' ', '\t', '<', '>', '=', '!', '~']);
    exact.then(|| found(name, version, false))
}

/// `[[package]]` of `poetry.lock` and `uv.lock`.
#[derive(Deserialize)]
struct TomlLock {
    #[serde(default)]
    package: Vec<TomlPackage>,
}

#[derive(Deserialize)]
struct TomlPackage {
    name: String,
    version: Option<String>,
    source: Option<toml::Value>,
}

/// Whether a lock entry's `source` says it is not from a package index: uv writes
/// `source = { editable | virtual | directory | path = ... }`, Poetry writes
/// `[package.source] type = "directory" | "file"`.
fn toml_source_is_local(source: Option<&toml::Value>) -> bool {
    let Some(table) = source.and_then(toml::Value::as_table) else {
        return false;
    };
    ["editable", "virtual", "directory", "path"]
        .iter()
        .any(|k| table.contains_key(*k))
        || matches!(
            table.get("type").and_then(toml::Value::as_str),
            Some("directory" | "file")
        )
}

/// The packages of a `poetry.lock` or `uv.lock`; an entry without a version (uv's
/// virtual project root) names nothing installed and is skipped.
pub(super) fn toml_lock(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let lock: TomlLock = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    Ok(lock
        .package
        .iter()
        .filter_map(|p| {
            let version = p.version.as_deref()?;
            Some(found(
                &p.name,
                version,
                toml_source_is_local(p.source.as_ref()),
            ))
        })
        .collect())
}

/// The `default` and `develop` sections of a `Pipfile.lock`, whose versions read
/// `==1.2.3`; editable and path entries carry no version and are skipped.
pub(super) fn pipfile_lock(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let lock: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for section in ["default", "develop"] {
        let Some(entries) = lock.get(section).and_then(|s| s.as_object()) else {
            continue;
        };
        for (name, entry) in entries {
            let version = entry
                .get("version")
                .and_then(|v| v.as_str())
                .and_then(|v| v.strip_prefix("=="))
                .map(|v| v.trim_start_matches('='));
            if let Some(version) = version.filter(|v| !v.is_empty()) {
                out.push(found(name, version, false));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(found: &[Found]) -> Vec<(String, String, bool)> {
        found
            .iter()
            .map(|f| (f.name.clone(), f.version.clone(), f.local))
            .collect()
    }

    fn p(name: &str, version: &str, local: bool) -> (String, String, bool) {
        (name.into(), version.into(), local)
    }

    #[test]
    fn metadata_headers_stop_at_the_body() {
        let f = metadata(include_bytes!("../../tests/data/lockfiles/METADATA")).expect("parses");
        assert_eq!(pairs(&f), [p("Jinja2", "2.10.1", false)]);
        let f = metadata(include_bytes!("../../tests/data/lockfiles/PKG-INFO")).expect("parses");
        assert_eq!(pairs(&f), [p("python_dateutil", "2.8.2", false)]);
        assert_eq!(
            metadata(b"Metadata-Version: 2.1\nSummary: x\n").map(|_| ()),
            Err("no `Name` and `Version` headers".into())
        );
        // Bad UTF-8 in the description does not hide the headers.
        let f = metadata(b"Name: a\nVersion: 1\n\n\xff\xfe").expect("parses");
        assert_eq!(pairs(&f), [p("a", "1", false)]);
    }

    #[test]
    fn requirements_keep_exact_pins_only() {
        let f = requirements(include_bytes!(
            "../../tests/data/lockfiles/requirements.txt"
        ))
        .expect("parses");
        assert_eq!(
            pairs(&f),
            [
                p("certifi", "2024.8.30", false),
                p("charset-normalizer", "3.3.2", false),
                p("idna", "2.8", false),
                p("Jinja2", "2.10", false),
                p("requests", "2.19.1", false),
                p("zope.interface", "5.4.0", false),
            ]
        );
        assert!(requirements(b"a==1.0,<2\nb==1.*\nc===\n#d==1\n")
            .expect("parses")
            .is_empty());
        // A continuation on the last line, with no newline after it.
        let f = requirements(b"x == 3.1 \\").expect("parses");
        assert_eq!(pairs(&f), [p("x", "3.1", false)]);
    }

    #[test]
    fn poetry_and_uv_locks() {
        let f =
            toml_lock(include_bytes!("../../tests/data/lockfiles/poetry.lock")).expect("parses");
        assert_eq!(
            pairs(&f),
            [
                p("django", "3.2.4", false),
                p("sqlparse", "0.4.1", false),
                p("my-shared-lib", "0.1.0", true),
            ]
        );
        let f = toml_lock(include_bytes!("../../tests/data/lockfiles/uv.lock")).expect("parses");
        assert_eq!(
            pairs(&f),
            [
                p("my-function", "0.1.0", true),
                p("pyyaml", "5.3.1", false),
                p("Typing_Extensions", "4.12.2", false),
            ]
        );
        assert!(toml_lock(b"[[package]\nname=").is_err());
        assert_eq!(toml_lock(b"\xff").map(|_| ()), Err("not UTF-8".into()));
    }

    #[test]
    fn pipfile_lock_sections() {
        let f = pipfile_lock(include_bytes!("../../tests/data/lockfiles/Pipfile.lock"))
            .expect("parses");
        assert_eq!(
            pairs(&f),
            [p("requests", "2.25.0", false), p("pytest", "7.4.0", false)]
        );
        assert!(pipfile_lock(b"{").is_err());
    }
}
