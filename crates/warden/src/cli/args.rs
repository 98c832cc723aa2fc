//! Parsers for command-line values: `KEY=VALUE` pairs and `@file` payloads.

use std::io::Read;

/// Parses `KEY=VALUE` (the value may contain `=` and be empty); used by `--env`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{s}` has an empty name before `=`"));
    }
    // Lambda's rule for variable names: a letter first, then letters, digits and `_`.
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{key}` is not a valid variable name (a letter, then letters, digits or `_`)"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Where an invoke payload comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The text given on the command line.
    Inline(String),
    /// `@path`: the file's bytes.
    File(String),
    /// `@-`: standard input.
    Stdin,
}

/// Parses a payload argument: `@-` is stdin, `@path` a file, anything else is literal
/// (`@@text` is the literal `@text`).
pub fn parse_payload(s: &str) -> Payload {
    match s.strip_prefix('@') {
        Some("-") => Payload::Stdin,
        Some(rest) if rest.starts_with('@') => Payload::Inline(rest.to_owned()),
        Some(path) => Payload::File(path.to_owned()),
        None => Payload::Inline(s.to_owned()),
    }
}

impl Payload {
    /// Reads the payload bytes.
    pub fn read(&self) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::Inline(s) => Ok(s.clone().into_bytes()),
            Self::File(path) => std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("could not read payload file `{path}`: {e}")),
            Self::Stdin => {
                let mut buf = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .map_err(|e| anyhow::anyhow!("could not read the payload from stdin: {e}"))?;
                Ok(buf)
            }
        }
    }
}

/// Formats a byte count for people: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        assert_eq!(parse_key_value("A=1"), Ok(("A".into(), "1".into())));
        assert_eq!(parse_key_value("URL=a=b"), Ok(("URL".into(), "a=b".into())));
        assert_eq!(
            parse_key_value("EMPTY="),
            Ok(("EMPTY".into(), String::new()))
        );
        assert_eq!(
            parse_key_value("NOEQ"),
            Err("`NOEQ` is not KEY=VALUE".into())
        );
        assert_eq!(
            parse_key_value("=x"),
            Err("`=x` has an empty name before `=`".into())
        );
        assert_eq!(
            parse_key_value("1A=x"),
            Err("`1A` is not a valid variable name (a letter, then letters, digits or `_`)".into())
        );
        assert!(parse_key_value("A-B=x").is_err());
    }

    #[test]
    fn payloads() {
        assert_eq!(
            parse_payload(r#"{"a":1}"#),
            Payload::Inline(r#"{"a":1}"#.into())
        );
        assert_eq!(
            parse_payload("@event.json"),
            Payload::File("event.json".into())
        );
        assert_eq!(parse_payload("@-"), Payload::Stdin);
        assert_eq!(parse_payload("@@x"), Payload::Inline("@x".into()));
    }

    #[test]
    fn payload_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.json");
        std::fs::write(&path, b"{\"k\":2}").unwrap();
        let p = parse_payload(&format!("@{}", path.display()));
        assert_eq!(p.read().unwrap(), b"{\"k\":2}");
        let missing = parse_payload("@/nonexistent/e.json").read().unwrap_err();
        assert!(missing
            .to_string()
            .starts_with("could not read payload file `/nonexistent/e.json`: "));
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(50 * 1024 * 1024), "50.0 MiB");
    }
}
