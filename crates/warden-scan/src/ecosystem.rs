//! The package ecosystems the scanner knows, with each one's rule for comparing names and
//! its spelling in OSV records and package URLs.

use std::fmt;

/// A package ecosystem, as OSV names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Ecosystem {
    /// Python packages (`PyPI` in OSV); names compared after PEP 503 normalisation.
    #[serde(rename = "PyPI")]
    PyPi,
    /// Node.js packages (`npm`); names are case-sensitive and kept as written.
    #[serde(rename = "npm")]
    Npm,
    /// Rust crates (`crates.io`); names kept as written.
    #[serde(rename = "crates.io")]
    CratesIo,
    /// Go modules (`Go`); module paths kept as written.
    #[serde(rename = "Go")]
    Go,
}

impl Ecosystem {
    /// The ecosystem's name in OSV records.
    pub fn osv_name(self) -> &'static str {
        match self {
            Ecosystem::PyPi => "PyPI",
            Ecosystem::Npm => "npm",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Go => "Go",
        }
    }

    /// The ecosystem an OSV `package.ecosystem` names, if the scanner knows it. OSV lets
    /// an ecosystem carry a `:suffix` (a release, as in `Debian:12`); none of ours do, so
    /// a suffixed name is not ours.
    pub fn from_osv(name: &str) -> Option<Ecosystem> {
        match name {
            "PyPI" => Some(Ecosystem::PyPi),
            "npm" => Some(Ecosystem::Npm),
            "crates.io" => Some(Ecosystem::CratesIo),
            "Go" => Some(Ecosystem::Go),
            _ => None,
        }
    }

    /// The package URL type (`pkg:TYPE/...`).
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::PyPi => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::CratesIo => "cargo",
            Ecosystem::Go => "golang",
        }
    }

    /// `name` as this ecosystem compares it: PEP 503 for PyPI (lower case, each run of
    /// `-`, `_` and `.` one `-`), trimmed and unchanged otherwise.
    pub fn normalize_name(self, name: &str) -> String {
        let name = name.trim();
        match self {
            Ecosystem::PyPi => {
                let mut out = String::with_capacity(name.len());
                let mut in_run = false;
                for c in name.chars() {
                    if matches!(c, '-' | '_' | '.') {
                        if !in_run {
                            out.push('-');
                        }
                        in_run = true;
                    } else {
                        out.extend(c.to_lowercase());
                        in_run = false;
                    }
                }
                out
            }
            Ecosystem::Npm | Ecosystem::CratesIo | Ecosystem::Go => name.to_owned(),
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.osv_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep503_normalisation() {
        let n = |s| Ecosystem::PyPi.normalize_name(s);
        assert_eq!(n("Django"), "django");
        assert_eq!(n("zope.interface"), "zope-interface");
        assert_eq!(n("Foo__Bar-.-baz"), "foo-bar-baz");
        assert_eq!(n(" typing_extensions "), "typing-extensions");
        assert_eq!(Ecosystem::Npm.normalize_name("@Types/Node"), "@Types/Node");
    }

    #[test]
    fn osv_names_round_trip() {
        for e in [
            Ecosystem::PyPi,
            Ecosystem::Npm,
            Ecosystem::CratesIo,
            Ecosystem::Go,
        ] {
            assert_eq!(Ecosystem::from_osv(e.osv_name()), Some(e));
        }
        assert_eq!(Ecosystem::from_osv("Debian:12"), None);
    }
}
