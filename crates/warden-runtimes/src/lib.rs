//! Managed runtimes: which host interpreter stands behind each `python3.x` and `nodejs*.x`
//! runtime, and the runtime bootstraps Warden ships for them.
//!
//! On Lambda the managed runtime is part of the platform: users bring a handler, never an
//! interpreter or a runtime client. Warden does the same with what the host has:
//!
//! - [`RuntimeTable::discover`] finds, for every runtime, an interpreter of exactly that
//!   version (`pythonX.Y` and `python3` on `PATH`, pyenv's and uv's installed versions,
//!   `node` on `PATH` and nvm's versions, or one the operator names with
//!   `--runtime NAME=PATH`), asks it where it really lives (through shims, symlinks and
//!   venvs) and records its installation prefix, which the engine shows to the function
//!   read-only at `/var/lang` and nowhere else;
//! - [`bootstrap`] holds the Python and Node.js runtime clients, written for Warden and
//!   compiled into the binary, which the server installs into a directory shown read-only
//!   at `/var/runtime`; no package from the host or the function is needed.
//!
//! A runtime no interpreter was found for is [`Availability::Missing`] with the reason and
//! what to install: the control plane refuses to create or configure a function with it,
//! so nothing fails at invoke time for a reason known at deploy time.
#![forbid(unsafe_code)]

pub mod bootstrap;
mod discover;
pub mod sdk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use warden_types::Runtime;

pub use discover::HostEnv;

/// The language of a managed runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Language {
    /// CPython.
    Python,
    /// Node.js.
    Node,
}

impl Language {
    /// How people call it.
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "Python",
            Language::Node => "Node.js",
        }
    }
}

/// A host interpreter, resolved to where it really lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Interpreter {
    /// Its language.
    pub language: Language,
    /// Its full version (`3.12.1`, `20.20.2`).
    pub version: String,
    /// The real executable (no shim, no symlink, no venv).
    pub executable: PathBuf,
    /// The installation prefix: the directory shown at `/var/lang` (it holds `bin/` and
    /// `lib/`).
    pub prefix: PathBuf,
    /// How it was found (`PATH`, `pyenv`, `uv`, `nvm`, `--runtime`), for `warden runtime list`.
    pub found_by: String,
}

impl Interpreter {
    /// The executable's path below the prefix (`bin/python3.12`, `bin/node`).
    pub fn relative_executable(&self) -> &Path {
        self.executable
            .strip_prefix(&self.prefix)
            .unwrap_or(&self.executable)
    }
}

/// Whether a runtime can be served on this host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Availability {
    /// `provided.*`: the function brings its own `bootstrap`.
    Native,
    /// This interpreter serves it.
    Ready(Interpreter),
    /// Nothing serves it; the sentence says why and what to do.
    Missing(String),
}

/// Why the table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `--runtime NAME=PATH` named a runtime Warden does not know.
    #[error("`--runtime {name}=...`: `{name}` is not a runtime Warden runs (one of: {list})", list = managed_names().join(", "))]
    UnknownRuntime {
        /// The name given.
        name: String,
    },
    /// `--runtime NAME=PATH` named an interpreter that cannot serve it.
    #[error("`--runtime {name}={}`: {why}", path.display())]
    BadOverride {
        /// The runtime.
        name: String,
        /// The interpreter given.
        path: PathBuf,
        /// Why it cannot serve the runtime.
        why: String,
    },
    /// No interpreter serves the runtime here; the sentence says why and what to do.
    #[error("The runtime {runtime} is not available on this Warden host: {why}")]
    Unavailable {
        /// The runtime.
        runtime: String,
        /// Why, and what to install or configure.
        why: String,
    },
    /// Installing an SDK failed (why in the message).
    #[error("{0}")]
    Sdk(String),
    /// `--runtime` was not `NAME=PATH`.
    #[error("`--runtime {0}`: expected NAME=PATH, for example python3.12=/usr/bin/python3.12")]
    Syntax(String),
}

/// Every runtime name Warden runs, with how it is served on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeTable {
    entries: BTreeMap<String, Availability>,
}

/// The runtimes that need an interpreter.
pub fn managed_names() -> Vec<&'static str> {
    Runtime::SUPPORTED
        .iter()
        .copied()
        .filter(|n| !n.starts_with("provided"))
        .collect()
}

/// Parses a `--runtime NAME=PATH` argument.
pub fn parse_override(arg: &str) -> Result<(String, PathBuf), RuntimeError> {
    match arg.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(path)))
        }
        _ => Err(RuntimeError::Syntax(arg.to_owned())),
    }
}

impl RuntimeTable {
    /// Finds an interpreter for every managed runtime on this host. Each `overrides` entry
    /// (`--runtime NAME=PATH`) decides its runtime and must be of the right version; the
    /// others are looked for as [`HostEnv`] describes.
    pub fn discover(overrides: &[(String, PathBuf)], host: &HostEnv) -> Result<Self, RuntimeError> {
        let mut entries = BTreeMap::new();
        for name in Runtime::SUPPORTED {
            if name.starts_with("provided") {
                entries.insert((*name).to_owned(), Availability::Native);
            }
        }
        let mut prober = discover::Prober::new(host);
        for (name, path) in overrides {
            let runtime = match Runtime::parse(name) {
                Some(r @ (Runtime::Python(_) | Runtime::Node(_))) => r,
                _ => return Err(RuntimeError::UnknownRuntime { name: name.clone() }),
            };
            let interpreter =
                prober
                    .exact(&runtime, path)
                    .map_err(|why| RuntimeError::BadOverride {
                        name: name.clone(),
                        path: path.clone(),
                        why,
                    })?;
            entries.insert(name.clone(), Availability::Ready(interpreter));
        }
        for name in managed_names() {
            if entries.contains_key(name) {
                continue;
            }
            let Some(runtime) = Runtime::parse(name) else {
                continue;
            };
            let availability = match prober.find(&runtime) {
                Ok(i) => Availability::Ready(i),
                Err(why) => Availability::Missing(why),
            };
            entries.insert(name.to_owned(), availability);
        }
        Ok(Self { entries })
    }

    /// A table from explicit entries (tests, and hosts that configure everything).
    pub fn from_entries(entries: impl IntoIterator<Item = (String, Availability)>) -> Self {
        Self {
            entries: entries.into_iter().collect(),
        }
    }

    /// How `runtime` is served; `None` for a name Warden does not run.
    pub fn get(&self, runtime: &str) -> Option<&Availability> {
        self.entries.get(runtime)
    }

    /// The interpreter serving `runtime`, if one does.
    pub fn interpreter(&self, runtime: &str) -> Option<&Interpreter> {
        match self.entries.get(runtime) {
            Some(Availability::Ready(i)) => Some(i),
            _ => None,
        }
    }

    /// `Ok` if a function of `runtime` can run here; otherwise
    /// [`RuntimeError::Unavailable`], whose message is the sentence to show the caller.
    pub fn check(&self, runtime: &Runtime) -> Result<(), RuntimeError> {
        let why = match self.entries.get(runtime.as_str()) {
            Some(Availability::Native | Availability::Ready(_)) => return Ok(()),
            Some(Availability::Missing(why)) => why.clone(),
            None => "Warden does not know it".to_owned(),
        };
        Err(RuntimeError::Unavailable {
            runtime: runtime.as_str().to_owned(),
            why,
        })
    }

    /// Every runtime with its availability, in Lambda's order of listing.
    pub fn rows(&self) -> Vec<(&'static str, &Availability)> {
        Runtime::SUPPORTED
            .iter()
            .filter_map(|n| self.entries.get(*n).map(|a| (*n, a)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_as_name_equals_path() {
        assert_eq!(
            parse_override("python3.12=/opt/py/bin/python3.12").unwrap(),
            ("python3.12".into(), PathBuf::from("/opt/py/bin/python3.12"))
        );
        for bad in ["python3.12", "=x", "python3.12="] {
            assert!(parse_override(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_override_for_an_unknown_runtime_is_refused() {
        let e = RuntimeTable::discover(
            &[("java21".into(), PathBuf::from("/usr/bin/java"))],
            &HostEnv::empty(),
        )
        .unwrap_err();
        assert!(matches!(e, RuntimeError::UnknownRuntime { .. }), "{e}");
        let e = RuntimeTable::discover(
            &[("provided.al2023".into(), PathBuf::from("/bin/sh"))],
            &HostEnv::empty(),
        )
        .unwrap_err();
        assert!(matches!(e, RuntimeError::UnknownRuntime { .. }), "{e}");
    }

    #[test]
    fn a_host_with_nothing_serves_only_provided_and_says_why() {
        let table = RuntimeTable::discover(&[], &HostEnv::empty()).unwrap();
        assert_eq!(table.get("provided.al2023"), Some(&Availability::Native));
        let py = Runtime::parse("python3.12").unwrap();
        let why = table.check(&py).unwrap_err().to_string();
        assert!(
            why.contains("no Python 3.12 interpreter was found"),
            "{why}"
        );
        assert!(why.contains("--runtime python3.12="), "{why}");
        let node = Runtime::parse("nodejs20.x").unwrap();
        let why = table.check(&node).unwrap_err().to_string();
        assert!(why.contains("no Node.js 20 interpreter was found"), "{why}");
        assert_eq!(table.rows().len(), Runtime::SUPPORTED.len());
    }

    #[test]
    fn the_relative_executable_is_below_the_prefix() {
        let i = Interpreter {
            language: Language::Python,
            version: "3.12.1".into(),
            executable: "/opt/py/bin/python3.12".into(),
            prefix: "/opt/py".into(),
            found_by: "PATH".into(),
        };
        assert_eq!(i.relative_executable(), Path::new("bin/python3.12"));
    }
}
