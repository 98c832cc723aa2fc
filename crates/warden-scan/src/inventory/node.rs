//! Node.js manifests: `package-lock.json` (and `npm-shrinkwrap.json`, and npm's hidden
//! `node_modules/.package-lock.json`) in every lockfile version, installed
//! `node_modules/**/package.json`, `yarn.lock` (classic v1 and Berry) and
//! `pnpm-lock.yaml` (v5 to v9).
//!
//! `yarn.lock` v1 is not YAML, and of `pnpm-lock.yaml` only the keys of one top-level
//! mapping are needed; both are read by small line parsers instead of a YAML library. The
//! layouts are fixed by the tools that write them (two-space indent, one entry header per
//! line), so the parsers stay a few lines each, never expand YAML aliases, and are
//! property-tested not to panic on any input.

use serde_json::Value;

use super::Found;
use crate::Ecosystem;

fn found(name: &str, version: &str, local: bool) -> Found {
    Found {
        ecosystem: Ecosystem::Npm,
        name: name.to_owned(),
        version: version.to_owned(),
        local,
    }
}

/// Whether an npm version field names something other than a registry release: a local
/// directory or link (`file:`, `link:`) is the user's own code.
fn version_is_local(version: &str) -> bool {
    version.starts_with("file:") || version.starts_with("link:")
}

/// The packages of a `package-lock.json`. Lockfile v2 and v3 list every installed
/// package under `packages`, keyed by its `node_modules/...` path (a key without
/// `node_modules/` is a workspace member, the empty key the project itself); v1 nests
/// `dependencies` inside each other, a tree that is walked with an explicit stack (its
/// depth is already bounded by the JSON parser's recursion limit).
pub(super) fn package_lock(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let lock: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if let Some(packages) = lock.get("packages").and_then(Value::as_object) {
        for (key, entry) in packages {
            if key.is_empty() || entry.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let Some(version) = entry.get("version").and_then(Value::as_str) else {
                continue;
            };
            let (path_name, workspace) = match key.rfind("node_modules/") {
                Some(at) => (&key[at + "node_modules/".len()..], false),
                None => (key.rsplit('/').next().unwrap_or(key), true),
            };
            // An aliased install (`"x": "npm:real@1"`) records the real name in `name`.
            let name = entry
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(path_name);
            if !name.is_empty() {
                out.push(found(name, version, workspace || version_is_local(version)));
            }
        }
        return Ok(out);
    }
    let mut stack: Vec<&serde_json::Map<String, Value>> = Vec::new();
    if let Some(deps) = lock.get("dependencies").and_then(Value::as_object) {
        stack.push(deps);
    }
    while let Some(deps) = stack.pop() {
        for (name, entry) in deps {
            if let Some(version) = entry.get("version").and_then(Value::as_str) {
                out.push(found(name, version, version_is_local(version)));
            }
            if let Some(nested) = entry.get("dependencies").and_then(Value::as_object) {
                stack.push(nested);
            }
        }
    }
    Ok(out)
}

/// `name` and `version` of an installed package's own `package.json`.
pub(super) fn package_json(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let manifest: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let name = manifest.get("name").and_then(Value::as_str);
    let version = manifest.get("version").and_then(Value::as_str);
    match (name, version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => {
            Ok(vec![found(n, v, version_is_local(v))])
        }
        _ => Err("no `name` and `version`".into()),
    }
}

/// Splits a yarn descriptor (`lodash@^4.17.19`, `@babel/core@npm:^7.0.0`,
/// `alias@npm:real@^1.0.0`, `app@workspace:.`) into the installed package's name and
/// whether it is local (a workspace, link, portal or file dependency).
fn yarn_descriptor(spec: &str) -> Option<(&str, bool)> {
    let spec = spec.trim().trim_matches('"');
    // The name may start with `@` (a scope); the range starts at the next `@`.
    let at = spec.get(1..)?.find('@')? + 1;
    let (name, range) = (&spec[..at], &spec[at + 1..]);
    let local = ["workspace:", "link:", "portal:", "file:"]
        .iter()
        .any(|p| range.starts_with(p));
    // An alias installs another package: `alias@npm:real@range`.
    let name = match range.strip_prefix("npm:") {
        Some(target) => match target.get(1..).and_then(|t| t.find('@')) {
            Some(at) => &target[..at + 1],
            None => name,
        },
        None => name,
    };
    (!name.is_empty()).then_some((name, local))
}

/// The first descriptor of an entry header; all descriptors of one entry resolve to the
/// same package. Classic quotes each descriptor (`"a@^1", "a@^2"`), Berry the whole list
/// (`"a@npm:^1, a@npm:^2"`); descriptors never contain commas or quotes.
fn first_descriptor(header: &str) -> &str {
    let header = header.trim();
    let header = header.strip_prefix('"').unwrap_or(header);
    header.split([',', '"']).next().unwrap_or_default()
}

/// The entries of a `yarn.lock`, classic (`version "1.2.3"`) or Berry
/// (`version: 1.2.3`): each top-level header names one or more descriptors, and its
/// `version` field, at exactly two spaces of indent, is what is installed.
pub(super) fn yarn_lock(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut current: Option<(&str, bool)> = None;
    for line in text.lines() {
        let line = line.trim_end();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        if indent == 0 {
            current = line
                .strip_suffix(':')
                .filter(|h| *h != "__metadata")
                .and_then(|h| yarn_descriptor(first_descriptor(h)));
            continue;
        }
        if indent != 2 {
            continue;
        }
        let Some((name, local)) = current else {
            continue;
        };
        let Some(rest) = body.strip_prefix("version") else {
            continue;
        };
        if !rest.starts_with([' ', ':']) {
            continue;
        }
        let version = rest
            .trim_start_matches(':')
            .trim()
            .trim_matches(['"', '\'']);
        if !version.is_empty() {
            out.push(found(
                name,
                version,
                local || version.ends_with("-use.local"),
            ));
            current = None;
        }
    }
    Ok(out)
}

/// Splits a `pnpm-lock.yaml` package key into name and version: v5 writes
/// `/name/1.2.3` and `/@scope/name/1.2.3_peer@2.0.0`, v6 `/name@1.2.3(peer@2.0.0)`, v9
/// `name@1.2.3`. A key whose version is not a release (a tarball URL, a git host path,
/// `file:`, `link:`) names no registry package and is skipped.
fn pnpm_key(key: &str) -> Option<(&str, &str)> {
    let key = key.strip_prefix('/').unwrap_or(key);
    let key = key.split('(').next().unwrap_or(key);
    let segments: Vec<&str> = key.split('/').collect();
    let v5 = match segments.as_slice() {
        [scope, _, version] if scope.starts_with('@') => {
            Some((scope.len() + 1 + segments[1].len(), *version))
        }
        [name, version] if !name.starts_with('@') => Some((name.len(), *version)),
        _ => None,
    };
    let (name, version) = match v5 {
        Some((name_len, version)) if !key[..name_len].get(1..)?.contains('@') => (
            &key[..name_len],
            version.split('_').next().unwrap_or(version),
        ),
        _ => {
            let at = key.get(1..)?.find('@')? + 1;
            (&key[..at], &key[at + 1..])
        }
    };
    let release = version.starts_with(|c: char| c.is_ascii_digit());
    (release && !name.is_empty()).then_some((name, version))
}

/// The keys of the top-level `packages:` mapping of a `pnpm-lock.yaml` (v9's
/// `snapshots:` repeats them with peer suffixes and is not needed).
pub(super) fn pnpm_lock(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut in_packages = false;
    for line in text.lines() {
        let line = line.trim_end();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        if indent == 0 {
            in_packages = line == "packages:";
            continue;
        }
        if !in_packages || indent != 2 {
            continue;
        }
        let Some(key) = body.strip_suffix(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['\'', '"']);
        if let Some((name, version)) = pnpm_key(key) {
            out.push(found(name, version, false));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(found: &[Found]) -> Vec<(String, String, bool)> {
        let mut v: Vec<_> = found
            .iter()
            .map(|f| (f.name.clone(), f.version.clone(), f.local))
            .collect();
        v.sort();
        v
    }

    fn p(name: &str, version: &str, local: bool) -> (String, String, bool) {
        (name.into(), version.into(), local)
    }

    #[test]
    fn package_lock_v1_nested_tree() {
        let f = package_lock(include_bytes!(
            "../../tests/data/lockfiles/package-lock-v1.json"
        ))
        .expect("parses");
        assert_eq!(
            pairs(&f),
            [
                p("@types/node", "14.14.31", false),
                p("express", "4.17.1", false),
                p("qs", "6.10.3", false),
                p("qs", "6.7.0", false),
                p("shared", "file:../shared", true),
            ]
        );
    }

    #[test]
    fn package_lock_v3_packages() {
        let f = package_lock(include_bytes!(
            "../../tests/data/lockfiles/package-lock-v3.json"
        ))
        .expect("parses");
        assert_eq!(
            pairs(&f),
            [
                p("@aws-sdk/client-s3", "3.600.0", false),
                p("lodash", "4.17.15", false),
                p("semver", "7.5.1", false),
                p("string-width", "4.2.3", false),
                p("utils", "0.0.1", true),
            ]
        );
        assert!(package_lock(b"[1, 2").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut doc = String::new();
        for _ in 0..100_000 {
            doc.push_str(r#"{"dependencies":{"a":"#);
        }
        assert!(package_lock(doc.as_bytes()).is_err());
    }

    #[test]
    fn installed_package_json() {
        let f = package_json(include_bytes!(
            "../../tests/data/lockfiles/node_modules-package.json"
        ))
        .expect("parses");
        assert_eq!(pairs(&f), [p("minimist", "1.2.5", false)]);
        assert_eq!(
            package_json(br#"{"name": "x"}"#).map(|_| ()),
            Err("no `name` and `version`".into())
        );
    }

    #[test]
    fn yarn_classic_and_berry() {
        let f =
            yarn_lock(include_bytes!("../../tests/data/lockfiles/yarn-v1.lock")).expect("parses");
        assert_eq!(
            pairs(&f),
            [
                p("@babel/code-frame", "7.12.13", false),
                p("lodash", "4.17.20", false),
                p("minimist", "0.0.8", false),
                p("string-width", "4.2.3", false),
            ]
        );
        let f = yarn_lock(include_bytes!("../../tests/data/lockfiles/yarn-berry.lock"))
            .expect("parses");
        assert_eq!(
            pairs(&f),
            [
                p("@babel/code-frame", "7.24.7", false),
                p("axios", "0.21.0", false),
                p("thumbnailer", "0.0.0-use.local", true),
            ]
        );
    }

    #[test]
    fn yarn_dependency_cycles_are_just_entries() {
        // a depends on b and b on a: entries are read flat, no graph is walked.
        let lock = b"a@^1:\n  version \"1.0.0\"\n  dependencies:\n    b \"^1\"\n\nb@^1:\n  version \"1.0.1\"\n  dependencies:\n    a \"^1\"\n";
        let f = yarn_lock(lock).expect("parses");
        assert_eq!(pairs(&f), [p("a", "1.0.0", false), p("b", "1.0.1", false)]);
    }

    #[test]
    fn pnpm_lock_versions() {
        let v5 = pnpm_lock(include_bytes!(
            "../../tests/data/lockfiles/pnpm-lock-v5.yaml"
        ))
        .expect("parses");
        assert_eq!(
            pairs(&v5),
            [
                p("@babel/core", "7.12.3", false),
                p("lodash", "4.17.15", false),
                p("react-dom", "17.0.2", false),
            ]
        );
        let v6 = pnpm_lock(include_bytes!(
            "../../tests/data/lockfiles/pnpm-lock-v6.yaml"
        ))
        .expect("parses");
        assert_eq!(
            pairs(&v6),
            [
                p("@babel/core", "7.12.3", false),
                p("react-dom", "17.0.2", false)
            ]
        );
        let v9 = pnpm_lock(include_bytes!(
            "../../tests/data/lockfiles/pnpm-lock-v9.yaml"
        ))
        .expect("parses");
        assert_eq!(
            pairs(&v9),
            [
                p("@babel/core", "7.24.7", false),
                p("axios", "0.21.0", false)
            ]
        );
    }

    #[test]
    fn pnpm_keys() {
        assert_eq!(
            pnpm_key("/@types/node/14.0.0"),
            Some(("@types/node", "14.0.0"))
        );
        assert_eq!(pnpm_key("/a/1.0.0_b@2.0.0+c@1.0.0"), Some(("a", "1.0.0")));
        assert_eq!(pnpm_key("/@x/y@2.0.0(z@1.0.0)"), Some(("@x/y", "2.0.0")));
        assert_eq!(pnpm_key("q@3.0.0-rc.1"), Some(("q", "3.0.0-rc.1")));
        assert_eq!(pnpm_key("q@file:../q"), None);
        assert_eq!(pnpm_key("@"), None);
        assert_eq!(pnpm_key(""), None);
    }

    proptest! {
        #[test]
        fn yarn_descriptors_split_name_from_range(
            scope in prop::option::of("[a-z][a-z0-9-]{0,8}"),
            name in "[a-z][a-z0-9.-]{0,12}",
            range in "(\\^|~)?[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}",
            npm in any::<bool>(),
        ) {
            let full = match &scope { Some(s) => format!("@{s}/{name}"), None => name.clone() };
            let spec = if npm { format!("\"{full}@npm:{range}\"") } else { format!("{full}@{range}") };
            prop_assert_eq!(yarn_descriptor(&spec), Some((full.as_str(), false)));
        }

        #[test]
        fn pnpm_keys_of_every_version_agree(
            scope in prop::option::of("[a-z][a-z0-9-]{0,8}"),
            name in "[a-z][a-z0-9.-]{0,12}",
            version in "[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}(-[a-z0-9.]{1,6})?",
        ) {
            let full = match &scope { Some(s) => format!("@{s}/{name}"), None => name.clone() };
            for key in [
                format!("/{full}/{version}"),
                format!("/{full}/{version}_peer@1.0.0"),
                format!("/{full}@{version}"),
                format!("/{full}@{version}(peer@1.0.0)"),
                format!("{full}@{version}"),
            ] {
                prop_assert_eq!(pnpm_key(&key), Some((full.as_str(), version.as_str())), "{}", key);
            }
        }

        #[test]
        fn line_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = yarn_lock(&bytes);
            let _ = pnpm_lock(&bytes);
            let _ = package_lock(&bytes);
            let _ = package_json(&bytes);
        }

        #[test]
        fn line_parsers_never_panic_on_lockfile_like_text(
            lines in prop::collection::vec("( {0,4})([\"'/@a-z0-9._:,^~ -]{0,20})(:?)", 0..40)
        ) {
            let text = format!("packages:\n{}", lines.join("\n"));
            let _ = yarn_lock(text.as_bytes());
            let _ = pnpm_lock(text.as_bytes());
        }
    }
}
