//! Finding the host interpreter of a runtime: the candidates, in order, and asking each one
//! where it really lives.
//!
//! A candidate is never trusted by its name or location: it is run once (with `-I -S` for
//! Python, so that nothing of the environment or of site-packages takes part) and reports
//! its version, its real executable and, for Python, its base prefix. That is what makes
//! shims (pyenv's, asdf's), symlinks and venvs resolve to the installation they stand for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use warden_types::Runtime;

use crate::{Interpreter, Language};

/// How long a candidate interpreter may go without running before its probe is given up:
/// a bound on a hung interpreter, not a measure of a healthy one. A healthy probe takes a
/// fraction of a second of CPU, but on a host whose cores are saturated (hundreds of
/// runnable processes, as a hostile function's fork bomb makes) its wall time stretches
/// without bound, and a wall-clock deadline alone (10 s, then 30 s) was seen to refuse a
/// start that would have succeeded. So the clock restarts whenever the probe has used
/// more CPU time since the last look.
const PROBE_STALL: Duration = Duration::from_secs(30);

/// The most a probe may take however it progresses.
const PROBE_CAP: Duration = Duration::from_secs(300);

/// How often a running probe's CPU time is read.
const PROBE_LOOK: Duration = Duration::from_millis(250);

/// Where to look for interpreters: the parts of the server's environment that matter.
#[derive(Debug, Clone, Default)]
pub struct HostEnv {
    /// `PATH`'s directories, in order.
    pub path: Vec<PathBuf>,
    /// The user's home directory (never acceptable as an installation prefix).
    pub home: Option<PathBuf>,
    /// pyenv's root (`$PYENV_ROOT`, else `~/.pyenv`).
    pub pyenv_root: Option<PathBuf>,
    /// uv's managed Pythons (`$UV_PYTHON_INSTALL_DIR`, else `$XDG_DATA_HOME/uv/python`,
    /// else `~/.local/share/uv/python`).
    pub uv_pythons: Option<PathBuf>,
    /// nvm's directory (`$NVM_DIR`, else `~/.nvm`).
    pub nvm_dir: Option<PathBuf>,
}

impl HostEnv {
    /// Nowhere to look: every managed runtime is missing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// What this process's environment says.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let under_home = |rel: &str| home.as_ref().map(|h| h.join(rel));
        let path = var("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let uv_pythons = var("UV_PYTHON_INSTALL_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("uv/python")))
            .or_else(|| under_home(".local/share/uv/python"));
        Self {
            path,
            pyenv_root: var("PYENV_ROOT")
                .map(PathBuf::from)
                .or_else(|| under_home(".pyenv")),
            uv_pythons,
            nvm_dir: var("NVM_DIR")
                .map(PathBuf::from)
                .or_else(|| under_home(".nvm")),
            home,
        }
    }
}

/// What a probe learnt, before it is checked against a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probed {
    version: String,
    executable: PathBuf,
    prefix: PathBuf,
}

/// Probes candidates, each path at most once.
pub(crate) struct Prober<'a> {
    host: &'a HostEnv,
    seen: HashMap<(PathBuf, bool), Result<Probed, String>>,
}

impl<'a> Prober<'a> {
    pub(crate) fn new(host: &'a HostEnv) -> Self {
        Self {
            host,
            seen: HashMap::new(),
        }
    }

    /// The interpreter at `path`, if it is of exactly `runtime`'s version.
    pub(crate) fn exact(&mut self, runtime: &Runtime, path: &Path) -> Result<Interpreter, String> {
        let (language, wanted) = wanted(runtime)?;
        let probed = self.probe(language, path)?;
        accept(language, wanted, &probed, self.host, "--runtime")
    }

    /// The first candidate of `runtime`'s version, or why there is none.
    pub(crate) fn find(&mut self, runtime: &Runtime) -> Result<Interpreter, String> {
        let (language, wanted) = wanted(runtime)?;
        let mut refusals = Vec::new();
        for (path, found_by) in candidates(language, wanted, self.host) {
            let Ok(probed) = self.probe(language, &path) else {
                continue;
            };
            match accept(language, wanted, &probed, self.host, found_by) {
                Ok(interpreter) => return Ok(interpreter),
                Err(why) if matches_version(language, wanted, &probed.version) => {
                    refusals.push(format!("{}: {why}", path.display()));
                }
                Err(_) => {}
            }
        }
        let looked = match language {
            Language::Python => format!(
                "looked for python{wanted} and python3 on PATH, and in pyenv's and uv's installed versions"
            ),
            Language::Node => {
                "looked for node on PATH and in nvm's installed versions".to_owned()
            }
        };
        let example = match language {
            Language::Python => format!("/path/to/python{wanted}"),
            Language::Node => "/path/to/node".to_owned(),
        };
        let mut why = format!(
            "no {} {wanted} interpreter was found ({looked})",
            language.name()
        );
        if !refusals.is_empty() {
            why.push_str(&format!("; refused: {}", refusals.join("; ")));
        }
        why.push_str(&format!(
            ". Install {} {wanted} on the host, or start the server with --runtime {}={example}",
            language.name(),
            runtime.as_str()
        ));
        Err(why)
    }

    fn probe(&mut self, language: Language, path: &Path) -> Result<Probed, String> {
        // `/bin/python3` and `/usr/bin/python3.11` are often one file: probe it once.
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let key = (canonical, language == Language::Python);
        if let Some(known) = self.seen.get(&key) {
            return known.clone();
        }
        let result = probe(language, path);
        self.seen.insert(key, result.clone());
        result
    }
}

/// The language and version `runtime` needs.
fn wanted(runtime: &Runtime) -> Result<(Language, &str), String> {
    let language = match runtime {
        Runtime::Python(_) => Language::Python,
        Runtime::Node(_) => Language::Node,
        Runtime::Provided(_) => return Err("provided runtimes need no interpreter".into()),
    };
    let version = runtime
        .language_version()
        .ok_or_else(|| format!("{} names no version", runtime.as_str()))?;
    Ok((language, version))
}

/// Whether `version` (`3.12.1`, `20.20.2`) is the `wanted` one (`3.12`, `20`).
fn matches_version(language: Language, wanted: &str, version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    let have = match language {
        Language::Python => parts.get(..2).map(|p| p.join(".")),
        Language::Node => parts.first().map(|p| (*p).to_owned()),
    };
    have.as_deref() == Some(wanted)
}

/// Checks a probed interpreter against the runtime and the rules of a prefix that may be
/// shown to functions.
fn accept(
    language: Language,
    wanted: &str,
    probed: &Probed,
    host: &HostEnv,
    found_by: &str,
) -> Result<Interpreter, String> {
    if !matches_version(language, wanted, &probed.version) {
        return Err(format!(
            "it is {} {}, not {wanted}",
            language.name(),
            probed.version
        ));
    }
    let prefix = &probed.prefix;
    if !prefix.is_absolute() || prefix == Path::new("/") {
        return Err(format!(
            "its installation prefix `{}` cannot be shown to functions on its own",
            prefix.display()
        ));
    }
    if host.home.as_deref() == Some(prefix.as_path()) {
        return Err(format!(
            "its installation prefix is the home directory `{}`, which functions must not see",
            prefix.display()
        ));
    }
    if !probed.executable.starts_with(prefix) {
        return Err(format!(
            "its executable `{}` is not inside its installation prefix `{}`",
            probed.executable.display(),
            prefix.display()
        ));
    }
    Ok(Interpreter {
        language,
        version: probed.version.clone(),
        executable: probed.executable.clone(),
        prefix: prefix.clone(),
        found_by: found_by.to_owned(),
    })
}

/// Where a `language` interpreter of version `wanted` may be, in order, with how each was
/// found. Only paths that exist are returned.
fn candidates(language: Language, wanted: &str, host: &HostEnv) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    match language {
        Language::Python => {
            let pyenv = |out: &mut Vec<(PathBuf, &'static str)>| {
                if let Some(root) = &host.pyenv_root {
                    for dir in versions_in(&root.join("versions"), |n| {
                        n.starts_with(&format!("{wanted}."))
                    }) {
                        out.push((dir.join(format!("bin/python{wanted}")), "pyenv"));
                    }
                }
            };
            let shims = host.pyenv_root.as_ref().map(|r| r.join("shims"));
            for name in [format!("python{wanted}"), "python3".to_owned()] {
                for dir in &host.path {
                    // A pyenv shim stands for pyenv's installed versions, which are read
                    // directly: running the shim costs a shell and pyenv itself per probe.
                    if shims.as_ref() == Some(dir) {
                        pyenv(&mut out);
                    } else {
                        out.push((dir.join(&name), "PATH"));
                    }
                }
            }
            pyenv(&mut out);
            if let Some(root) = &host.uv_pythons {
                for dir in versions_in(root, |n| n.starts_with(&format!("cpython-{wanted}."))) {
                    out.push((dir.join(format!("bin/python{wanted}")), "uv"));
                }
            }
        }
        Language::Node => {
            for name in ["node", "nodejs"] {
                for dir in &host.path {
                    out.push((dir.join(name), "PATH"));
                }
            }
            if let Some(root) = &host.nvm_dir {
                for dir in versions_in(&root.join("versions/node"), |n| {
                    n.starts_with(&format!("v{wanted}."))
                }) {
                    out.push((dir.join("bin/node"), "nvm"));
                }
            }
        }
    }
    out.retain(|(p, _)| p.is_file());
    out
}

/// The subdirectories of `dir` whose names pass `keep`, newest version first.
fn versions_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            keep(&name).then(|| (version_key(&name), e.path()))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The numbers in a version directory's name, for ordering (`cpython-3.12.4-linux` →
/// `[3, 12, 4]`).
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Runs the interpreter at `path` and asks it what it is and where it lives.
fn probe(language: Language, path: &Path) -> Result<Probed, String> {
    const PYTHON: &str = "import json, os, sys\n\
        print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3],\n\
            'executable': os.path.realpath(sys.executable),\n\
            'prefix': os.path.realpath(sys.base_prefix),\n\
            'exec_prefix': os.path.realpath(sys.base_exec_prefix)}))";
    const NODE: &str = "const fs = require('fs'), path = require('path');\n\
        const exe = fs.realpathSync(process.execPath);\n\
        console.log(JSON.stringify({version: process.versions.node, executable: exe,\n\
            prefix: path.dirname(path.dirname(exe))}))";
    let mut command = Command::new(path);
    match language {
        Language::Python => command.args(["-I", "-S", "-c", PYTHON]),
        Language::Node => command.args(["-e", NODE]).env_remove("NODE_OPTIONS"),
    };
    let output = run_with_deadline(&mut command)?;
    #[derive(serde::Deserialize)]
    struct Answer {
        version: String,
        executable: PathBuf,
        prefix: PathBuf,
        exec_prefix: Option<PathBuf>,
    }
    let answer: Answer = serde_json::from_slice(&output)
        .map_err(|e| format!("it did not answer as a {} would ({e})", language.name()))?;
    if let Some(exec_prefix) = &answer.exec_prefix {
        if *exec_prefix != answer.prefix {
            return Err(format!(
                "its prefix `{}` and exec prefix `{}` differ, so no one directory holds it",
                answer.prefix.display(),
                exec_prefix.display()
            ));
        }
    }
    Ok(Probed {
        version: answer.version,
        executable: answer.executable,
        prefix: answer.prefix,
    })
}

/// Runs `command` with no input, its stdout captured, until it exits, goes
/// [`PROBE_STALL`] without using CPU time, or reaches [`PROBE_CAP`].
fn run_with_deadline(command: &mut Command) -> Result<Vec<u8>, String> {
    run_within(command, PROBE_STALL, PROBE_CAP)
}

/// [`run_with_deadline`] with the limits given.
fn run_within(
    command: &mut Command,
    stall_after: Duration,
    cap: Duration,
) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("it could not be run ({e})"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A probe answers in one short line; anything longer is not an answer.
        let _ = (&mut stdout).take(64 * 1024).read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let mut progress = (started, None::<u64>);
    let mut looked = started;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                let now = Instant::now();
                if now.duration_since(looked) >= PROBE_LOOK {
                    looked = now;
                    let cpu = proc_stat(child.id()).map(|s| s.cpu_ticks);
                    if cpu.is_some() && cpu != progress.1 {
                        progress = (now, cpu);
                    }
                }
                let stalled = now.duration_since(progress.0) >= stall_after;
                if stalled || now.duration_since(started) >= cap {
                    let state = proc_stat(child.id())
                        .map(|s| format!(", state {}", s.state))
                        .unwrap_or_default();
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(if stalled {
                        format!(
                            "it did not answer, and ran for none of the last {} s{state}",
                            stall_after.as_secs()
                        )
                    } else {
                        format!("it did not answer within {} s{state}", cap.as_secs())
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("waiting for it failed ({e})")),
        }
    };
    let out = reader.join().map_err(|_| "its output could not be read")?;
    if !status.success() {
        return Err(format!("it failed to run ({status})"));
    }
    Ok(out)
}

/// What `/proc/PID/stat` tells of a running probe.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcStat {
    /// The one-letter scheduler state (`R`, `S`, `D`...).
    state: char,
    /// User plus system CPU time, in clock ticks.
    cpu_ticks: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a `/proc/PID/stat` line. The command name (second field) is in parentheses
/// and may itself hold spaces and parentheses, so the fields are counted after the last
/// `)`: the state, then (fields 14 and 15 of the line) user and system time.
fn parse_proc_stat(line: &str) -> Option<ProcStat> {
    let (_, rest) = line.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcStat {
        state,
        cpu_ticks: utime.checked_add(stime)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_lines_are_read_after_the_command_name() {
        let line = "4242 (py (x) y) R 1 4242 4242 0 -1 4194304 97 0 0 0 7 3 0 0 20 0 1 0 \
                    123 4096 10 18446744073709551615";
        assert_eq!(
            parse_proc_stat(line),
            Some(ProcStat {
                state: 'R',
                cpu_ticks: 10
            })
        );
        assert_eq!(parse_proc_stat("4242 (short) S 1 2"), None);
        assert_eq!(parse_proc_stat("no parenthesis"), None);
        assert_eq!(parse_proc_stat(""), None);
    }

    proptest::proptest! {
        // The command name is the probed program's to choose (`prctl(PR_SET_NAME)`):
        // whatever it holds, the fields after it are read as the kernel wrote them.
        #[test]
        fn any_command_name_leaves_the_fields_after_it_intact(
            name in "\\PC{0,16}",
            state in proptest::char::range('A', 'Z'),
            utime in 0u64..1 << 40,
            stime in 0u64..1 << 40,
        ) {
            let line = format!(
                "77 ({name}) {state} 1 77 77 0 -1 4194304 97 0 0 0 {utime} {stime} 0 0 20 0 1 0"
            );
            proptest::prop_assert_eq!(
                parse_proc_stat(&line),
                Some(ProcStat { state, cpu_ticks: utime + stime })
            );
        }

        #[test]
        fn arbitrary_text_never_panics_the_parser(line in "\\PC{0,200}") {
            let _ = parse_proc_stat(&line);
        }
    }

    #[test]
    fn a_probe_that_never_runs_is_given_up_after_the_stall_bound() {
        let err = run_within(
            Command::new("sleep").arg("600"),
            Duration::from_secs(1),
            Duration::from_secs(600),
        )
        .expect_err("a sleeping probe never answers");
        assert!(
            err.starts_with("it did not answer, and ran for none of the last 1 s, state S"),
            "{err}"
        );
    }

    #[test]
    fn a_probe_that_keeps_running_is_waited_for_past_the_stall_bound_up_to_the_cap() {
        // A shell loop always uses CPU: the stall bound never fires, the cap does.
        let err = run_within(
            Command::new("sh").args(["-c", "while :; do :; done"]),
            Duration::from_secs(2),
            Duration::from_secs(4),
        )
        .expect_err("a spinning probe never answers");
        assert!(err.starts_with("it did not answer within 4 s"), "{err}");
        // One that answers is read as before.
        let out = run_within(
            Command::new("sh").args(["-c", "echo answer"]),
            Duration::from_secs(30),
            Duration::from_secs(300),
        )
        .expect("answers");
        assert_eq!(out, b"answer\n");
    }

    #[test]
    fn versions_match_on_their_significant_parts() {
        assert!(matches_version(Language::Python, "3.12", "3.12.1"));
        assert!(!matches_version(Language::Python, "3.1", "3.12.1"));
        assert!(!matches_version(Language::Python, "3.12", "3.11.7"));
        assert!(matches_version(Language::Node, "20", "20.20.2"));
        assert!(!matches_version(Language::Node, "2", "20.20.2"));
    }

    #[test]
    fn version_directories_sort_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["3.12.1", "3.12.10", "3.12.9", "3.11.7", "other"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let got: Vec<String> = versions_in(dir.path(), |n| n.starts_with("3.12."))
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, ["3.12.10", "3.12.9", "3.12.1"]);
    }

    #[test]
    fn prefixes_that_would_show_too_much_are_refused() {
        let host = HostEnv {
            home: Some("/home/u".into()),
            ..HostEnv::empty()
        };
        let probed = |prefix: &str, exe: &str| Probed {
            version: "3.12.1".into(),
            executable: exe.into(),
            prefix: prefix.into(),
        };
        let python = |p: &Probed| accept(Language::Python, "3.12", p, &host, "PATH");
        assert!(python(&probed("/", "/bin/python3.12"))
            .unwrap_err()
            .contains("cannot be shown"));
        assert!(python(&probed("/home/u", "/home/u/bin/python3.12"))
            .unwrap_err()
            .contains("home directory"));
        assert!(python(&probed("/opt/py", "/usr/bin/python3.12"))
            .unwrap_err()
            .contains("not inside"));
        assert!(python(&probed("/opt/py", "/opt/py/bin/python3.11")).is_ok());
        let old = Probed {
            version: "3.11.7".into(),
            ..probed("/opt/py", "/opt/py/bin/python3.11")
        };
        assert_eq!(python(&old).unwrap_err(), "it is Python 3.11.7, not 3.12");
    }

    #[test]
    fn the_hosts_python3_resolves_to_a_prefix_holding_its_standard_library() {
        let host = HostEnv::from_process();
        let python3 = host
            .path
            .iter()
            .map(|d| d.join("python3"))
            .find(|p| p.is_file())
            .expect("the tests need a python3 on PATH");
        let i = probe(Language::Python, &python3).unwrap();
        let minor: Vec<&str> = i.version.split('.').take(2).collect();
        let stdlib = i
            .prefix
            .join(format!("lib/python{}/os.py", minor.join(".")));
        assert!(stdlib.is_file(), "{i:?}");
        assert!(i.executable.starts_with(&i.prefix), "{i:?}");
        assert!(!i.executable.is_symlink(), "{i:?}");
    }

    #[test]
    fn a_program_that_is_not_an_interpreter_is_not_taken_for_one() {
        let e = probe(Language::Python, Path::new("/bin/true")).unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        let e = probe(Language::Node, Path::new("/nonexistent/node")).unwrap_err();
        assert!(e.contains("could not be run"), "{e}");
    }

    #[test]
    fn pyenv_and_uv_trees_are_searched_in_version_order() {
        let root = tempfile::tempdir().unwrap();
        let touch = |rel: &str| {
            let p = root.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "").unwrap();
        };
        touch("pyenv/versions/3.12.1/bin/python3.12");
        touch("pyenv/versions/3.12.3/bin/python3.12");
        touch("uv/cpython-3.12.4-linux-x86_64-gnu/bin/python3.12");
        touch("nvm/versions/node/v20.1.0/bin/node");
        let host = HostEnv {
            pyenv_root: Some(root.path().join("pyenv")),
            uv_pythons: Some(root.path().join("uv")),
            nvm_dir: Some(root.path().join("nvm")),
            ..HostEnv::empty()
        };
        let got: Vec<(String, &str)> = candidates(Language::Python, "3.12", &host)
            .into_iter()
            .map(|(p, by)| {
                let rel = p.strip_prefix(root.path()).unwrap();
                (rel.display().to_string(), by)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("pyenv/versions/3.12.3/bin/python3.12".to_owned(), "pyenv"),
                ("pyenv/versions/3.12.1/bin/python3.12".to_owned(), "pyenv"),
                (
                    "uv/cpython-3.12.4-linux-x86_64-gnu/bin/python3.12".to_owned(),
                    "uv"
                ),
            ]
        );
        assert_eq!(candidates(Language::Node, "20", &host).len(), 1);
        assert!(candidates(Language::Node, "22", &host).is_empty());
    }
}
