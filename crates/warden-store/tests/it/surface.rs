//! The public API of the store crates names no SQLite type, so that a networked backend can
//! replace SQLite behind their traits without changing a caller: no `pub` item of
//! `warden-store` or `warden-identity` (signature, public field, variant or trait method)
//! mentions `rusqlite` or the plumbing crate, and the backend-neutral modules do not
//! mention them at all. A source scan, since a type's absence cannot be asserted by the
//! compiler.

use std::path::{Path, PathBuf};

/// Words that would make a public item depend on SQLite.
const FORBIDDEN: [&str; 2] = ["rusqlite", "warden_sqlite"];

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates directory")
        .join(name)
        .join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The file's code outside its test module (which, by this codebase's layout, is last or
/// in its own `tests.rs`).
fn non_test_code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The text from `start` through the brace that closes the first `{` after it, or through
/// the first `;` if that comes first.
fn item_text(code: &str, start: usize) -> &str {
    let rest = &code[start..];
    let open = rest.find('{');
    let semi = rest.find(';');
    match (open, semi) {
        (Some(o), Some(s)) if s < o => &rest[..=s],
        (None, Some(s)) => &rest[..=s],
        (Some(o), _) => {
            let mut depth = 0usize;
            for (i, c) in rest[o..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            return &rest[..=o + i];
                        }
                    }
                    _ => {}
                }
            }
            rest
        }
        (None, None) => rest,
    }
}

/// Every public item of `code` as the text a caller can see: a function's signature, a
/// struct's header and public fields, a whole enum or trait, a type, const, static or use.
fn public_items(code: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let start = offset + (line.len() - trimmed.len());
        offset += line.len();
        let Some(after) = trimmed.strip_prefix("pub ") else {
            continue;
        };
        let kind = after.split_whitespace().next().unwrap_or("");
        let text = item_text(code, start);
        match kind {
            "fn" | "const" | "static" | "type" | "use" | "unsafe" => {
                let signature = text.split('{').next().unwrap_or(text);
                items.push(signature.to_owned());
            }
            "struct" => {
                let header = text.split('{').next().unwrap_or(text).to_owned();
                let fields = text
                    .lines()
                    .skip(1)
                    .filter(|l| l.trim_start().starts_with("pub "))
                    .collect::<Vec<_>>()
                    .join("\n");
                items.push(format!("{header}\n{fields}"));
            }
            "enum" | "trait" => items.push(text.to_owned()),
            _ => {}
        }
    }
    items
}

fn offences(file: &Path, texts: impl IntoIterator<Item = String>) -> Vec<String> {
    texts
        .into_iter()
        .filter(|t| FORBIDDEN.iter().any(|w| t.contains(w)))
        .map(|t| format!("{}: {}", file.display(), t.trim()))
        .collect()
}

#[test]
fn the_scanner_sees_what_a_caller_sees() {
    let code =
        "pub struct A {\n    pub conn: rusqlite::Connection,\n    hidden: rusqlite::Row,\n}\n\
                pub struct B {\n    hidden: rusqlite::Connection,\n}\n\
                pub(crate) fn c(x: rusqlite::Error) {}\n\
                pub fn d(x: u32) -> Result<(), rusqlite::Error> {\n    todo()\n}\n\
                pub enum E {\n    V { source: rusqlite::Error },\n}\n\
                pub fn f() {\n    let x: rusqlite::Error;\n}\n";
    let found = offences(Path::new("x.rs"), public_items(code));
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("pub conn"));
    assert!(found[1].starts_with("x.rs: pub fn d"));
    assert!(found[2].contains("pub enum E"));
}

#[test]
fn no_public_item_names_a_sqlite_type() {
    let mut found = Vec::new();
    let mut scanned = 0;
    for krate in ["warden-store", "warden-identity"] {
        for file in rust_files(&crate_src(krate)) {
            let code = non_test_code(&file);
            scanned += 1;
            let is_backend = file.components().any(|c| c.as_os_str() == "sqlite")
                || file.ends_with("sqlite.rs")
                || (krate == "warden-identity" && file.ends_with("store.rs"));
            if is_backend {
                found.extend(offences(&file, public_items(&code)));
            } else {
                // Backend-neutral modules do not touch SQLite at all.
                found.extend(offences(&file, code.lines().map(str::to_owned)));
            }
        }
    }
    assert!(scanned >= 10, "only {scanned} files scanned");
    assert!(found.is_empty(), "SQLite in a public API: {found:#?}");
}
