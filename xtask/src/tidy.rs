//! `cargo xtask tidy`: the invariants of ARCHITECTURE.md that types cannot enforce, checked
//! over the sources and manifests. The same checks run as a test (`cargo test -p xtask`),
//! so the test suite fails when one breaks.
//!
//! Each check is a pure function over file contents, unit-tested below on small examples.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Which Warden crates each crate may depend on (normal dependencies). A crate missing here
/// fails the check until its place in the layers is decided.
const ALLOWED_DEPENDENCIES: &[(&str, &[&str])] = &[
    ("warden-types", &[]),
    ("warden-iam", &[]),
    ("warden-sqlite", &[]),
    ("warden-postgres", &[]),
    // Test support only: real PostgreSQL and NATS servers.
    ("warden-testservers", &[]),
    ("warden-bus", &["warden-types", "warden-store"]),
    ("warden-sandbox", &[]),
    ("warden-runtime-api", &[]),
    ("warden-fixtures", &[]),
    ("warden-logquery", &[]),
    // The console's views: no I/O, so no Warden crate below them either.
    ("warden-console", &[]),
    ("warden-auth", &["warden-types"]),
    ("warden-package", &["warden-types"]),
    ("warden-runtimes", &["warden-types"]),
    (
        "warden-kms",
        &[
            "warden-types",
            "warden-iam",
            "warden-sqlite",
            "warden-postgres",
        ],
    ),
    (
        "warden-secrets",
        &[
            "warden-types",
            "warden-sqlite",
            "warden-postgres",
            "warden-kms",
        ],
    ),
    (
        "warden-store",
        &[
            "warden-types",
            "warden-sqlite",
            "warden-postgres",
            "warden-package",
        ],
    ),
    (
        "warden-identity",
        &[
            "warden-types",
            "warden-iam",
            "warden-sqlite",
            "warden-postgres",
            "warden-kms",
        ],
    ),
    ("warden-network", &["warden-sqlite", "warden-postgres"]),
    (
        "warden-dnsfw",
        &["warden-types", "warden-sqlite", "warden-postgres"],
    ),
    ("warden-dns", &["warden-sqlite", "warden-postgres"]),
    ("warden-egress", &["warden-sqlite", "warden-postgres"]),
    ("warden-contract", &["warden-sqlite", "warden-postgres"]),
    ("warden-urls", &["warden-sqlite", "warden-postgres"]),
    ("warden-metrics", &["warden-sqlite", "warden-postgres"]),
    ("warden-scan", &["warden-sqlite"]),
    ("warden-audit", &["warden-sqlite", "warden-postgres"]),
    ("warden-config", &["warden-sqlite", "warden-postgres"]),
    ("warden-findings", &["warden-sqlite", "warden-postgres"]),
    ("warden-controls", &["warden-iam", "warden-types"]),
    ("warden-sns", &["warden-sqlite", "warden-postgres"]),
    (
        "warden-signer",
        &[
            "warden-types",
            "warden-sqlite",
            "warden-postgres",
            "warden-kms",
        ],
    ),
    ("warden-executor", &["warden-sandbox", "warden-egress"]),
    (
        "warden-engine",
        &[
            "warden-types",
            "warden-store",
            "warden-executor",
            "warden-runtime-api",
            "warden-runtimes",
            "warden-kms",
            "warden-dns",
            "warden-egress",
        ],
    ),
    (
        "warden-control",
        &[
            "warden-types",
            "warden-store",
            "warden-package",
            "warden-iam",
            "warden-identity",
            "warden-runtimes",
            "warden-kms",
            "warden-scan",
            "warden-signer",
        ],
    ),
    (
        "warden-api",
        &[
            "warden-types",
            "warden-control",
            "warden-engine",
            "warden-auth",
            "warden-iam",
            "warden-identity",
            "warden-kms",
            "warden-secrets",
            "warden-network",
            "warden-egress",
            "warden-dnsfw",
            "warden-contract",
            "warden-urls",
            "warden-metrics",
            "warden-logquery",
            "warden-sns",
            "warden-scan",
            "warden-signer",
            "warden-audit",
            "warden-config",
            "warden-findings",
            "warden-controls",
            "warden-console",
        ],
    ),
    (
        "warden-testkit",
        &[
            "warden-types",
            "warden-store",
            "warden-executor",
            "warden-engine",
            "warden-runtimes",
            "warden-kms",
        ],
    ),
    (
        "warden",
        &[
            "warden-types",
            "warden-store",
            "warden-postgres",
            "warden-bus",
            "warden-executor",
            "warden-engine",
            "warden-api",
            "warden-sns",
            "warden-audit",
            "warden-config",
            "warden-findings",
            "warden-controls",
            "warden-control",
            "warden-package",
            "warden-auth",
            "warden-identity",
            "warden-iam",
            "warden-runtimes",
            "warden-kms",
            "warden-secrets",
            "warden-network",
            "warden-egress",
            "warden-dns",
            "warden-dnsfw",
            "warden-contract",
            "warden-urls",
            "warden-metrics",
            "warden-signer",
        ],
    ),
];

/// The only crate whose sources may contain `unsafe`.
const UNSAFE_CRATE: &str = "warden-sandbox";
/// The keyword, spelled so that this file does not contain it as a word.
const UNSAFE_WORD: &str = concat!("un", "safe");
/// The only crates that may depend on `anyhow` (the edges: the binary and automation).
const ANYHOW_CRATES: &[&str] = &["warden", "xtask"];
/// Crates that speak HTTP; the engine may depend on none of them.
const HTTP_CRATES: &[&str] = &[
    "hyper",
    "hyper-util",
    "http",
    "http-body",
    "http-body-util",
    "axum",
];
/// The file of the engine that holds the warm path, between the markers below.
const WARM_PATH_FILE: &str = "crates/warden-engine/src/lib.rs";
const WARM_BEGIN: &str = "// tidy:warm-path-begin";
const WARM_END: &str = "// tidy:warm-path-end";
/// The attributes whose reasons are checked, spelled so that this file has none.
const ALLOW: &str = concat!("#[", "allow(");
const INNER_ALLOW: &str = concat!("#![", "allow(");

/// One crate of the workspace, as read from disk.
struct Crate {
    name: String,
    dir: PathBuf,
    manifest: toml::Table,
}

/// Runs every check over the repository at `root`; fails listing every violation.
pub fn run(root: &Path) -> Result<()> {
    let violations = check_repository(root)?;
    if violations.is_empty() {
        eprintln!("tidy: every check passed");
        return Ok(());
    }
    for v in &violations {
        eprintln!("tidy: {v}");
    }
    bail!("{} tidy violation(s)", violations.len())
}

fn check_repository(root: &Path) -> Result<Vec<String>> {
    let crates = workspace_crates(root)?;
    let mut violations = Vec::new();
    for krate in &crates {
        let deps = dependency_names(&krate.manifest, "dependencies");
        violations.extend(check_layers(&krate.name, &deps));
        violations.extend(check_anyhow(&krate.name, &deps));
        if krate.name == "warden-engine" {
            violations.extend(check_no_http_dependency(&krate.name, &deps));
        }
        let library = krate.dir.join("src/lib.rs").exists() && krate.name != "warden";
        for file in rust_files(&krate.dir)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let shown = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .display()
                .to_string();
            let mut found = Vec::new();
            if krate.name != UNSAFE_CRATE {
                found.extend(check_no_unsafe(&text));
            }
            found.extend(check_allow_reasons(&text));
            found.extend(check_self_contained_comments(&text));
            if library && file.starts_with(krate.dir.join("src")) {
                found.extend(check_no_string_errors(&text));
            }
            if krate.name == "warden-engine" {
                found.extend(check_no_http_imports(&text));
            }
            violations.extend(found.into_iter().map(|f| format!("{shown}: {f}")));
        }
    }
    let warm = root.join(WARM_PATH_FILE);
    let text =
        std::fs::read_to_string(&warm).with_context(|| format!("reading {}", warm.display()))?;
    violations.extend(
        check_warm_path(&text)
            .into_iter()
            .map(|f| format!("{WARM_PATH_FILE}: {f}")),
    );
    Ok(violations)
}

fn workspace_crates(root: &Path) -> Result<Vec<Crate>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    dirs.push(root.join("xtask"));
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let path = dir.join("Cargo.toml");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let manifest: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            let name = manifest
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .with_context(|| format!("{} has no package name", path.display()))?
                .to_owned();
            Ok(Crate {
                name,
                dir,
                manifest,
            })
        })
        .collect()
}

fn dependency_names(manifest: &toml::Table, section: &str) -> BTreeSet<String> {
    manifest
        .get(section)
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A crate's Warden dependencies must be those its layer allows.
fn check_layers(name: &str, deps: &BTreeSet<String>) -> Vec<String> {
    let table: BTreeMap<&str, &[&str]> = ALLOWED_DEPENDENCIES.iter().copied().collect();
    let warden: Vec<&String> = deps.iter().filter(|d| d.starts_with("warden")).collect();
    if name == "xtask" {
        return Vec::new();
    }
    let Some(allowed) = table.get(name) else {
        return vec![format!(
            "crate `{name}` has no place in the dependency layers (xtask/src/tidy.rs)"
        )];
    };
    warden
        .into_iter()
        .filter(|d| !allowed.contains(&d.as_str()))
        .map(|d| format!("`{name}` must not depend on `{d}` (see ARCHITECTURE.md's layers)"))
        .collect()
}

fn check_anyhow(name: &str, deps: &BTreeSet<String>) -> Vec<String> {
    if deps.contains("anyhow") && !ANYHOW_CRATES.contains(&name) {
        vec![format!(
            "`{name}` depends on anyhow; libraries return thiserror enums"
        )]
    } else {
        Vec::new()
    }
}

fn check_no_http_dependency(name: &str, deps: &BTreeSet<String>) -> Vec<String> {
    deps.iter()
        .filter(|d| HTTP_CRATES.contains(&d.as_str()))
        .map(|d| format!("`{name}` must not depend on the HTTP crate `{d}`"))
        .collect()
}

/// The code of a line without its `//` comment (strings are not parsed: a `//` inside a
/// string cuts the line short, which can only hide code, never invent it).
fn code_of(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// `code` without its string literals (a simple scan: `"` starts and ends one, `\"` does
/// not).
fn without_strings(code: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in code.chars() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (_, '"') => in_string = !in_string,
            (false, c) => out.push(c),
            (true, _) => {}
        }
    }
    out
}

fn check_no_unsafe(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = without_strings(code_of(line));
            code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == UNSAFE_WORD)
        })
        .map(|(i, _)| format!("line {}: `{UNSAFE_WORD}` outside {UNSAFE_CRATE}", i + 1))
        .collect()
}

fn check_allow_reasons(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let code = code_of(line);
        if !(code.contains(ALLOW) || code.contains(INNER_ALLOW)) {
            continue;
        }
        // The attribute ends at the first line closing it.
        let mut attribute = String::new();
        for next in &lines[i..] {
            attribute.push_str(code_of(next));
            if code_of(next).contains(")]") {
                break;
            }
        }
        if !attribute.contains("reason") {
            out.push(format!(
                "line {}: `#[allow]` without `reason = \"...\"`",
                i + 1
            ));
        }
    }
    out
}

fn check_self_contained_comments(text: &str) -> Vec<String> {
    let cites = |comment: &str| {
        let lower = comment.to_ascii_lowercase();
        lower.contains(concat!("design", "-notes"))
            || lower.contains(concat!("../", "shared"))
            || lower
                .split("trap ")
                .skip(1)
                .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    };
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| line.find("//").map(|at| (i, &line[at..])))
        .filter(|(_, comment)| cites(comment))
        .map(|(i, _)| {
            format!(
                "line {}: a comment cites a file outside the repository",
                i + 1
            )
        })
        .collect()
}

/// Splits the generic arguments of the type that starts right after `<`, at top level.
fn generic_arguments(after_open: &str) -> Vec<String> {
    let mut depth = 0usize;
    let mut args = vec![String::new()];
    for c in after_open.chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' if depth == 0 => break,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                args.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = args.last_mut() {
            last.push(c);
        }
    }
    args.into_iter().map(|a| a.trim().to_owned()).collect()
}

/// Public functions of a library must not return `Result<_, String>`.
fn check_no_string_errors(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let code = code_of(line).trim_start();
        let public = code.starts_with("pub fn ") || code.starts_with("pub async fn ");
        if !public {
            continue;
        }
        let mut signature = String::new();
        for next in &lines[i..] {
            let part = code_of(next);
            signature.push_str(part);
            if part.contains('{') || part.trim_end().ends_with(';') {
                break;
            }
        }
        let Some(arrow) = signature.find("->") else {
            continue;
        };
        let returned = &signature[arrow + 2..];
        let Some(open) = returned.find("Result<") else {
            continue;
        };
        let args = generic_arguments(&returned[open + "Result<".len()..]);
        if args.len() == 2 && args[1] == "String" {
            out.push(format!(
                "line {}: a public function returns `Result<_, String>`; use an error enum",
                i + 1
            ));
        }
    }
    out
}

fn check_no_http_imports(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = code_of(line);
            ["hyper::", "http::", "axum::", "http_body"]
                .iter()
                .any(|p| code.contains(p) && !code.contains(&format!("_{p}")))
        })
        .map(|(i, _)| format!("line {}: the engine uses an HTTP type", i + 1))
        .collect()
}

/// Whether a line of code names the store: the type `Store`, or a `store` that is not an
/// atomic's `.store(...)` method.
fn names_the_store(code: &str) -> bool {
    code.contains("Store")
        || code
            .match_indices("store")
            .any(|(at, word)| !code[at + word.len()..].starts_with('('))
}

/// Between each pair of warm-path markers, nothing may name the store.
fn check_warm_path(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut regions = 0;
    let mut rest = 0;
    while let Some(begin) = text[rest..].find(WARM_BEGIN).map(|b| b + rest) {
        let Some(end) = text[begin..].find(WARM_END).map(|e| e + begin) else {
            out.push(format!("a `{WARM_BEGIN}` has no `{WARM_END}`"));
            return out;
        };
        regions += 1;
        let first_line = text[..begin].lines().count();
        out.extend(
            text[begin..end]
                .lines()
                .enumerate()
                .filter(|(_, line)| names_the_store(code_of(line)))
                .map(|(i, _)| {
                    format!(
                        "line {}: the warm path touches the store",
                        first_line + i + 1
                    )
                }),
        );
        rest = end;
    }
    if regions == 0 {
        out.push(format!(
            "the warm path is not marked (`{WARM_BEGIN}` ... `{WARM_END}`)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_repository_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the repository root");
        let violations = check_repository(root).expect("the checks run");
        assert!(violations.is_empty(), "{}", violations.join("\n"));
    }

    #[test]
    fn layers_refuse_an_upward_dependency_and_an_unknown_crate() {
        assert!(check_layers("warden-engine", &set(&["warden-store", "tokio"])).is_empty());
        let up = check_layers("warden-engine", &set(&["warden-api"]));
        assert_eq!(up.len(), 1);
        assert!(up[0].contains("`warden-engine` must not depend on `warden-api`"));
        assert_eq!(check_layers("warden-new", &set(&[])).len(), 1);
    }

    #[test]
    fn anyhow_and_http_stay_at_the_edges() {
        assert!(check_anyhow("warden", &set(&["anyhow"])).is_empty());
        assert_eq!(check_anyhow("warden-store", &set(&["anyhow"])).len(), 1);
        assert_eq!(
            check_no_http_dependency("warden-engine", &set(&["hyper", "tokio"])).len(),
            1
        );
        assert_eq!(
            check_no_http_imports("use hyper::Request;\nlet x = 1; // http::Uri in a comment\n")
                .len(),
            1
        );
    }

    #[test]
    fn unsafe_is_found_in_code_but_not_in_comments_or_names() {
        let text = format!(
            "#![forbid({UNSAFE_WORD}_code)]\n// {UNSAFE_WORD} in a comment\nfn f() {{ {UNSAFE_WORD} {{ g() }} }}\nlet s = \"{UNSAFE_WORD}\";\n"
        );
        assert_eq!(
            check_no_unsafe(&text),
            [format!("line 3: `{UNSAFE_WORD}` outside warden-sandbox")]
        );
    }

    #[test]
    fn an_allow_needs_a_reason_even_over_several_lines() {
        let text = format!(
            "{ALLOW}dead_code)]\nfn a() {{}}\n{ALLOW}\n    dead_code,\n    reason = \"kept\"\n)]\nfn b() {{}}\n#[expect(dead_code)]\n"
        );
        assert_eq!(
            check_allow_reasons(&text),
            ["line 1: `#[allow]` without `reason = \"...\"`"]
        );
    }

    #[test]
    fn comments_citing_outside_files_are_found() {
        let text = format!(
            "// see {}\n/// {} 3 of the notes\n// a trap set for nobody\nlet trap = 1;\n",
            concat!("DESIGN", "-NOTES"),
            "trap"
        );
        let found = check_self_contained_comments(&text);
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn string_errors_are_found_in_public_signatures_only() {
        let text = "pub fn a() -> Result<u8, String> {}\nfn b() -> Result<u8, String> {}\npub fn c(\n    x: u8,\n) -> Result<BTreeMap<String, String>, MyError> {}\npub fn d() -> std::result::Result<Vec<(u8, String)>, String>;\n";
        assert_eq!(
            check_no_string_errors(text)
                .iter()
                .map(|v| v.split(':').next().unwrap_or("").to_owned())
                .collect::<Vec<_>>(),
            ["line 1", "line 6"]
        );
    }

    #[test]
    fn the_warm_path_must_be_marked_and_free_of_store_calls() {
        assert_eq!(check_warm_path("fn run() {}").len(), 1);
        let clean = "// tidy:warm-path-begin\nfn run() { pool.take(); flag.store(true, Relaxed) }\n// tidy:warm-path-end\n";
        assert!(check_warm_path(clean).is_empty());
        let dirty =
            "x\n// tidy:warm-path-begin\nfn run() { self.store.get() }\n// tidy:warm-path-end\n";
        assert_eq!(
            check_warm_path(dirty),
            ["line 3: the warm path touches the store"]
        );
        let second = format!("{clean}fn cold() {{ store.get() }}\n{dirty}");
        assert_eq!(
            check_warm_path(&second),
            ["line 7: the warm path touches the store"],
            "every marked region is checked, and only those"
        );
    }
}
