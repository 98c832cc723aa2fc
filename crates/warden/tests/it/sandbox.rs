//! Escape attempts through the real platform: hostile functions (the native `hostile`
//! fixture built with `lambda_runtime`, and a Python one under awslambdaric) deployed and
//! invoked like any function, with the sandbox on by default. Each test asserts the exact
//! failure (errno name, kill reason, error returned to the caller) and that the platform
//! keeps serving another function normally afterwards. The last tests run the server as
//! an unprivileged user, where the sandbox uses a user namespace.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{aws_cli, fixture_bin, python, python_zip, warden_bin, zip_dir, Server};

/// A zip whose `bootstrap` is the hostile fixture.
fn hostile_zip() -> &'static Path {
    static ZIP: OnceLock<PathBuf> = OnceLock::new();
    ZIP.get_or_init(|| {
        let dir = crate::harness::scratch_dir();
        std::fs::copy(fixture_bin("hostile"), dir.join("bootstrap")).unwrap();
        zip_dir(&dir)
    })
}

const HOSTILE_PY: &str = r#"
import ctypes, errno, os, socket

libc = ctypes.CDLL(None, use_errno=True)

def syscall(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]

def sock(family, kind, proto=0):
    try:
        socket.socket(family, kind, proto).close()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]

def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]

def handler(event, context):
    action = event["action"]
    if action == "syscalls":
        return {
            "ptrace": syscall(101, 0, 0, 0, 0),          # PTRACE_TRACEME
            "mount": syscall(165, 0, 0, 0, 0, 0),
            "keyctl": syscall(250, 0, -3, 0, 0, 0),      # KEYCTL_GET_KEYRING_ID, session
            "bpf": syscall(321, 0, 0, 0),
            "perf_event_open": syscall(298, 0, 0, -1, -1, 0),
            "userfaultfd": syscall(323, 0),
            "io_uring_setup": syscall(425, 1, 0),
            "unshare": syscall(272, 0x10000000),          # CLONE_NEWUSER
            "raw socket": sock(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
            "packet socket": sock(socket.AF_PACKET, socket.SOCK_RAW),
            "netlink route socket": sock(socket.AF_NETLINK, socket.SOCK_RAW, 0),
            "udp socket": sock(socket.AF_INET, socket.SOCK_DGRAM),
        }
    if action == "status":
        keep = ("Cap", "NoNewPrivs", "Seccomp", "Uid")
        with open("/proc/self/status") as f:
            lines = [l.split(":", 1) for l in f.read().splitlines()]
        return {k: v.strip() for k, v in lines if k.startswith(keep)}
    if action == "files":
        out = {}
        for p in event["read"]:
            out["read " + p] = attempt(lambda: open(p, "rb").read())
        for p in event["write"]:
            out["write " + p] = attempt(lambda: open(p, "w").write("escaped"))
        for host, port in event["connect"]:
            out["connect %s:%d" % (host, port)] = attempt(
                lambda: socket.create_connection((host, port), timeout=2).close())
        return out
    raise ValueError("unknown action " + action)
"#;

fn invoke(s: &Server, function: &str, payload: Value) -> (Option<String>, Value) {
    let (status, headers, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{function}/invocations"),
        &[],
        payload.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let error = headers
        .iter()
        .find(|(k, _)| k == "x-amz-function-error")
        .map(|(_, v)| v.clone());
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (error, body)
}

/// Creates the hostile native function with extra `create-function` arguments.
fn create_hostile(s: &Server, name: &str, extra: &[&str]) {
    let zip = format!("fileb://{}", hostile_zip().display());
    let mut args = vec![
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        "arn:aws:iam::123456789012:role/lambda-exec",
        "--zip-file",
        &zip,
    ];
    args.extend_from_slice(extra);
    s.aws(&args);
}

fn create_python(s: &Server, name: &str, files: &[(&str, &str)]) {
    let zip = format!("fileb://{}", python_zip(files).display());
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        crate::harness::python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        "arn:aws:iam::123456789012:role/lambda-exec",
        "--zip-file",
        &zip,
    ]);
}

/// The platform still serves an ordinary function normally.
fn still_serves(s: &Server) {
    let name = format!("bystander-{}", rand_tag());
    s.create_fixture(&name, &[]);
    let (error, body) = invoke(s, &name, json!({"action": "echo", "alive": true}));
    assert_eq!((error, body["alive"].clone()), (None, json!(true)));
}

fn rand_tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Host pids of marker processes the hostile fixture started with `tag`.
fn markers(tag: &str) -> Vec<u32> {
    let needle = format!("marker-{tag}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
                && crate::harness::alive(*pid)
        })
        .collect()
}

fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The extracted code directory of a function on the host, found by a file only it has.
fn code_dir_holding(s: &Server, file: &str) -> PathBuf {
    let code = s.code_dir.join("code");
    std::fs::read_dir(&code)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join(file).exists())
        .unwrap_or_else(|| panic!("no code directory in {} holds {file}", code.display()))
}

fn sorted(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("?").to_owned()))
        .collect();
    out.sort();
    out
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn host_files_data_dir_and_other_functions_code_are_invisible() {
    let s = Server::start();
    create_python(
        &s,
        "victim",
        &[
            ("app.py", "def handler(e, c):\n    return 'victim'\n"),
            ("victim-secret.txt", "do not read me"),
        ],
    );
    create_hostile(&s, "reader", &[]);
    let victim = code_dir_holding(&s, "victim-secret.txt");
    let secret = victim.join("victim-secret.txt").display().to_string();
    let db = s.data_dir.join("warden.db").display().to_string();
    let paths = [
        "/etc/shadow",
        "/etc/passwd",
        "/root/.bash_history",
        db.as_str(),
        secret.as_str(),
        "/var/task/bootstrap",
    ];
    let (error, got) = invoke(&s, "reader", json!({"action": "read", "paths": paths}));
    assert_eq!(error, None, "{got}");
    assert_eq!(
        sorted(&got),
        pairs(&[
            ("/etc/shadow", "ENOENT"),
            ("/etc/passwd", "ENOENT"),
            ("/root/.bash_history", "ENOENT"),
            (&db, "ENOENT"),
            (&secret, "ENOENT"),
            ("/var/task/bootstrap", "ok"),
        ])
    );

    let paths = [
        "/var/task/planted",
        "/planted",
        "/usr/planted",
        "/etc/ssl/planted",
        "/dev/planted",
        "/proc/planted",
        "/tmp/allowed",
    ];
    let (error, got) = invoke(&s, "reader", json!({"action": "write", "paths": paths}));
    assert_eq!(error, None, "{got}");
    assert_eq!(
        sorted(&got),
        pairs(&[
            ("/var/task/planted", "EROFS"),
            ("/planted", "EROFS"),
            ("/usr/planted", "EROFS"),
            ("/etc/ssl/planted", "EROFS"),
            ("/dev/planted", "EROFS"),
            ("/proc/planted", "ENOENT"),
            ("/tmp/allowed", "ok"),
        ])
    );
    let code = code_dir_holding(&s, "bootstrap");
    assert!(!code.join("planted").exists(), "nothing reached the host");
    assert!(!Path::new("/usr/planted").exists());
    still_serves(&s);
}

#[test]
fn the_network_is_private_loopback_only() {
    let s = Server::start();
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let host_addr = host.local_addr().unwrap().to_string();
    let api_addr = s.endpoint.trim_start_matches("http://").to_owned();
    create_hostile(&s, "net", &[]);
    let addrs = [
        host_addr.as_str(),
        api_addr.as_str(),
        "10.0.0.1:80",
        "127.0.0.1:9001",
    ];
    let (error, got) = invoke(&s, "net", json!({"action": "connect", "addrs": addrs}));
    assert_eq!(error, None, "{got}");
    assert_eq!(
        sorted(&got),
        pairs(&[
            (&host_addr, "ECONNREFUSED"),
            (&api_addr, "ECONNREFUSED"),
            ("10.0.0.1:80", "ENETUNREACH"),
            // Its own Runtime API, served by the platform inside its namespace.
            ("127.0.0.1:9001", "ok"),
        ])
    );
    assert_eq!(
        host.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing reached the host's listener"
    );
    still_serves(&s);
}

const DROPPED: [(&str, &str); 5] = [
    ("CapAmb", "0000000000000000"),
    ("CapBnd", "0000000000000000"),
    ("CapEff", "0000000000000000"),
    ("CapInh", "0000000000000000"),
    ("CapPrm", "0000000000000000"),
];

fn assert_unprivileged(status: &Value) {
    for (k, v) in DROPPED {
        assert_eq!(status[k], v, "{k} in {status}");
    }
    assert_eq!(status["NoNewPrivs"], "1", "{status}");
    assert_eq!(status["Seccomp"], "2", "{status}");
    assert_eq!(status["Uid"], "993\t993\t993\t993", "{status}");
}

#[test]
fn functions_run_without_privileges_and_forbidden_syscalls_fail() {
    let s = Server::start();
    create_hostile(&s, "native", &[]);
    let (error, status) = invoke(&s, "native", json!({"action": "status"}));
    assert_eq!(error, None, "{status}");
    assert_unprivileged(&status);
    assert_eq!(status["hostname"], "localhost");

    create_python(&s, "py", &[("app.py", HOSTILE_PY)]);
    let (error, status) = invoke(&s, "py", json!({"action": "status"}));
    assert_eq!(error, None, "{status}");
    assert_unprivileged(&status);

    let (error, got) = invoke(&s, "py", json!({"action": "syscalls"}));
    assert_eq!(error, None, "{got}");
    assert_eq!(
        sorted(&got),
        pairs(&[
            ("ptrace", "EPERM"),
            ("mount", "EPERM"),
            ("keyctl", "EPERM"),
            ("bpf", "EPERM"),
            ("perf_event_open", "EPERM"),
            ("userfaultfd", "EPERM"),
            ("io_uring_setup", "EPERM"),
            ("unshare", "EPERM"),
            ("raw socket", "EPERM"),
            ("packet socket", "EPERM"),
            ("netlink route socket", "EPERM"),
            ("udp socket", "ok"),
        ])
    );

    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let event = json!({
        "action": "files",
        "read": ["/etc/shadow", "/var/task/app.py"],
        "write": ["/var/task/app.py", "/tmp/scratch"],
        "connect": [["127.0.0.1", port]],
    });
    let (error, got) = invoke(&s, "py", event);
    assert_eq!(error, None, "{got}");
    let connect = format!("connect 127.0.0.1:{port}");
    assert_eq!(
        sorted(&got),
        pairs(&[
            ("read /etc/shadow", "ENOENT"),
            ("read /var/task/app.py", "ok"),
            ("write /var/task/app.py", "EROFS"),
            ("write /tmp/scratch", "ok"),
            (&connect, "ECONNREFUSED"),
        ])
    );
    still_serves(&s);
}

#[test]
fn a_fork_bomb_is_stopped_by_the_pids_limit() {
    let s = Server::start();
    // A full vCPU so that a thousand spawns finish quickly.
    create_hostile(&s, "bomb", &["--memory-size", "1769", "--timeout", "60"]);
    let (error, got) = invoke(&s, "bomb", json!({"action": "forkbomb"}));
    assert_eq!(error, None, "{got}");
    assert_eq!(got["error"], "EAGAIN", "{got}");
    let spawned = got["spawned"].as_u64().unwrap();
    assert!(
        (900..1024).contains(&spawned),
        "stopped just under pids.max = 1024 (init, the function and its threads count too): {spawned}"
    );
    still_serves(&s);
}

#[test]
fn allocating_far_beyond_memory_is_runtime_out_of_memory() {
    let s = Server::start();
    create_hostile(&s, "hog", &["--timeout", "60"]);
    let (error, got) = invoke(&s, "hog", json!({"action": "alloc", "mb": 8192}));
    assert_eq!(error.as_deref(), Some("Unhandled"), "{got}");
    assert_eq!(got["errorType"], "Runtime.OutOfMemory", "{got}");
    let message = got["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("RequestId: ")
            && message.ends_with(" Error: Runtime exited with error: signal: killed"),
        "{message}"
    );
    // The next invoke gets a fresh instance.
    let (error, got) = invoke(&s, "hog", json!({"action": "alloc", "mb": 16}));
    assert_eq!((error, got), (None, json!({"allocated_mb": 16})));
    still_serves(&s);
}

fn assert_timed_out_and_gone(s: &Server, function: &str, action: &str) {
    let tag = rand_tag();
    let (error, got) = invoke(s, function, json!({"action": action, "tag": tag}));
    assert_eq!(error.as_deref(), Some("Unhandled"), "{got}");
    assert_eq!(got["errorType"], "Sandbox.Timedout", "{got}");
    assert!(
        got["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Error: Task timed out after 1.00 seconds"),
        "{got}"
    );
    wait_until(
        Duration::from_secs(30),
        "the instance's processes are gone",
        || markers(&tag).is_empty(),
    );
}

#[test]
fn spinning_and_ignoring_sigterm_end_at_the_deadline() {
    let s = Server::start();
    create_hostile(&s, "spin", &["--timeout", "1"]);
    assert_timed_out_and_gone(&s, "spin", "spin");
    assert_timed_out_and_gone(&s, "spin", "ignore_term");
    still_serves(&s);
}

#[test]
fn a_background_process_ends_with_its_instance() {
    let s = Server::start();
    create_hostile(&s, "bg", &[]);
    let tag = rand_tag();
    let (error, got) = invoke(&s, "bg", json!({"action": "background", "tag": tag}));
    assert_eq!((error, got), (None, json!({ "left_behind": tag })));
    // The function may answer while its child is still inside `execve` (its command line
    // not yet readable), so look until it shows.
    wait_until(
        Duration::from_secs(10),
        "the background process runs meanwhile",
        || markers(&tag).len() == 1,
    );
    // A configuration change retires the warm instance.
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "bg",
        "--description",
        "retire the instance",
    ]);
    wait_until(
        Duration::from_secs(30),
        "the background process is gone",
        || markers(&tag).is_empty(),
    );
    still_serves(&s);
}

#[test]
fn filling_tmp_gives_enospc_not_an_oom_kill() {
    let s = Server::start();
    create_hostile(
        &s,
        "filler",
        &["--ephemeral-storage", "Size=512", "--timeout", "60"],
    );
    let (error, got) = invoke(&s, "filler", json!({"action": "fill_tmp"}));
    assert_eq!(error, None, "{got}");
    // /tmp is capped at EphemeralStorage and the memory limit leaves room for it.
    assert_eq!(got["error"], "ENOSPC", "{got}");
    assert_eq!(got["written_mb"], 512, "{got}");
    let (error, got) = invoke(
        &s,
        "filler",
        json!({"action": "write", "paths": ["/tmp/x"]}),
    );
    assert_eq!(
        (error, got),
        (None, json!({"/tmp/x": "ok"})),
        "same instance, still usable"
    );
    still_serves(&s);
}

/// A `warden serve` started by this module (as another user), stderr captured.
struct RawServer {
    child: Child,
    endpoint: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    credentials: PathBuf,
}

impl RawServer {
    /// Starts `warden serve ARGS` under `wrapper` (e.g. `setpriv ...`); `Err` with the
    /// server's stderr if it exits before listening.
    fn start(wrapper: &[&str], data_dir: &Path, args: &[&str]) -> Result<Self, String> {
        let (program, pre) = match wrapper.split_first() {
            Some((p, rest)) => (PathBuf::from(p), rest.to_vec()),
            None => (warden_bin(), Vec::new()),
        };
        let mut cmd = Command::new(program);
        cmd.args(pre);
        if !wrapper.is_empty() {
            // Neither the checkout nor the test's working directory need be reachable.
            cmd.arg(reachable_warden_bin()).current_dir("/");
        }
        let mut child = cmd
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--url-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--account-id",
                "123456789012",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(args)
            .env("WARDEN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        match line.trim().strip_prefix("warden listening on ") {
            Some(e) => Ok(Self {
                endpoint: e.to_owned(),
                child,
                stderr,
                credentials: data_dir.join("credentials"),
            }),
            None => {
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let text = stderr.lock().unwrap().clone();
                Err(text)
            }
        }
    }

    fn aws(&self, args: &[&str]) -> Value {
        let out = Command::new(aws_cli())
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            // The admin key the server wrote on first start.
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.credentials)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn invoke(&self, function: &str, payload: Value) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.json");
        let payload = payload.to_string();
        self.aws(&[
            "lambda",
            "invoke",
            "--function-name",
            function,
            "--payload",
            &payload,
            out.to_str().unwrap(),
        ]);
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

/// Whether the tests run as root (as CI does); otherwise they already run unprivileged
/// and need no wrapper to drop privileges.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// The wrapper that runs a command as an unprivileged user: `setpriv` to nobody when root.
fn unprivileged() -> &'static [&'static str] {
    if running_as_root() {
        &NOBODY
    } else {
        &[]
    }
}

/// A copy of the `warden` binary that any user can run. The checkout (hence `target/`)
/// may live under a directory other users cannot traverse, such as a 0700 home
/// directory, and an unprivileged server runs its own executable again for its zygote.
fn reachable_warden_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = crate::harness::scratch_dir();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("warden");
        // A hard link where the file system allows one, so no copy of the binary is
        // made. Otherwise copied by `cp`, not by this process: a file the test process opened for writing
        // could leak, for a moment, into a child another test thread is starting, and
        // executing the copy would then fail with `ETXTBSY`.
        if std::fs::hard_link(warden_bin(), &bin).is_err() {
            let copied = Command::new("cp")
                .arg(warden_bin())
                .arg(&bin)
                .status()
                .unwrap();
            assert!(copied.success());
        }
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    })
}

/// `program` run through [`unprivileged`].
fn as_unprivileged(program: impl AsRef<std::ffi::OsStr>) -> Command {
    match unprivileged().split_first() {
        Some((wrapper, pre)) => {
            let mut c = Command::new(wrapper);
            c.args(pre).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Whether this kernel lets an unprivileged user create a user namespace.
fn unprivileged_userns_allowed() -> bool {
    as_unprivileged("unshare")
        .args(["--user", "--net", "--mount", "--pid", "--fork", "true"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A data directory the unprivileged user owns, under a directory it can traverse.
fn nobody_data_dir() -> tempfile::TempDir {
    let dir = crate::harness::private_tempdir();
    if !running_as_root() {
        return dir;
    }
    let status = Command::new("chown")
        .args(["65534:65534"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    // Private to its owner, as the server requires of a data directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn an_unprivileged_server_sandboxes_with_a_user_namespace() {
    let dir = nobody_data_dir();
    let started = RawServer::start(unprivileged(), dir.path(), &[]);
    if !unprivileged_userns_allowed() {
        // Without user namespaces the server must refuse, saying why and naming the flag.
        let stderr = started
            .err()
            .expect("serve refuses without a usable sandbox");
        assert!(
            stderr.contains("refusing to start: the function sandbox cannot work on this host (")
                && stderr.contains("--insecure-no-sandbox"),
            "{stderr}"
        );
        return;
    }
    let s = started.unwrap_or_else(|e| panic!("serve as nobody failed: {e}"));
    let zip = format!("fileb://{}", hostile_zip().display());
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "unpriv",
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        // The execution role every server creates on first start.
        "arn:aws:iam::123456789012:role/warden-default",
        "--zip-file",
        &zip,
    ]);
    let status = s.invoke("unpriv", json!({"action": "status"}));
    for (k, v) in DROPPED {
        assert_eq!(status[k], v, "{k} in {status}");
    }
    assert_eq!(status["NoNewPrivs"], "1", "{status}");
    assert_eq!(status["Seccomp"], "2", "{status}");
    // uid 993 inside the user namespace, mapped to nobody outside.
    assert_eq!(status["Uid"], "993\t993\t993\t993", "{status}");

    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_addr = host.local_addr().unwrap().to_string();
    let got = s.invoke(
        "unpriv",
        json!({"action": "connect", "addrs": [host_addr.clone()]}),
    );
    assert_eq!(got, json!({ host_addr: "ECONNREFUSED" }));
    let got = s.invoke(
        "unpriv",
        json!({"action": "read", "paths": ["/etc/shadow", "/var/task/bootstrap"]}),
    );
    assert_eq!(
        got,
        json!({"/etc/shadow": "ENOENT", "/var/task/bootstrap": "ok"})
    );
    let got = s.invoke(
        "unpriv",
        json!({"action": "write", "paths": ["/var/task/x", "/tmp/x"]}),
    );
    assert_eq!(got, json!({"/var/task/x": "EROFS", "/tmp/x": "ok"}));
    // Unprivileged, something is always degraded (at least the namespace pool), and the
    // log says so at WARN.
    let log = s.stderr.lock().unwrap().clone();
    assert!(
        log.contains("sandbox protection degraded"),
        "degraded protections are logged at WARN: {log}"
    );
}

#[test]
fn insecure_no_sandbox_warns_on_every_start() {
    let dir = crate::harness::private_tempdir();
    let s = RawServer::start(&[], dir.path(), &["--insecure-no-sandbox"]).unwrap();
    wait_until(Duration::from_secs(30), "the warning is logged", || {
        s.stderr.lock().unwrap().contains(
            "--insecure-no-sandbox: functions run as plain processes with this server's privileges and see the whole host; use it only on platforms without namespaces",
        )
    });
    assert!(s.stderr.lock().unwrap().contains("WARN"));
}

#[test]
fn doctor_reports_the_protections_in_force() {
    let out = Command::new(warden_bin())
        .arg("doctor")
        .arg("--runtime")
        .arg(format!(
            "{}={}",
            crate::harness::python_runtime(),
            python().display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "namespaces",
        "capabilities",
        "seccomp",
        "landlock",
        "memory limit",
        "process limit per instance",
        "pids limit",
        "network isolation",
    ] {
        assert!(
            text.lines().any(|l| l.contains(name)),
            "`{name}` is reported: {text}"
        );
    }
    // As root, on a host that allows user namespaces (this one), a fork bomb's forks are
    // refused before they copy anything.
    let limit = text
        .lines()
        .find(|l| l.contains("process limit per instance"))
        .unwrap_or_default();
    assert!(!limit.contains("DEGRADED"), "{limit}");
    // The runtimes, with the one given resolved from its venv to the real interpreter.
    let runtime_line = text
        .lines()
        .find(|l| l.trim_start().starts_with(crate::harness::python_runtime()))
        .unwrap_or_else(|| panic!("the test runtime is listed: {text}"));
    assert!(
        runtime_line.contains("ready") && runtime_line.contains("found by --runtime"),
        "{runtime_line}"
    );
    assert!(!runtime_line.contains("venv"), "{runtime_line}");
    // Unprivileged, namespaces are made at spawn rather than pooled: called out as degraded.
    if unprivileged_userns_allowed() {
        let out = as_unprivileged(reachable_warden_bin())
            .arg("doctor")
            .current_dir("/")
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines()
                .any(|l| l.contains("DEGRADED") && l.contains("network namespace pool")),
            "{text}"
        );
        assert!(text.contains("WARNING"), "{text}");
    }
}

const LAYOUT_PY: &str = r#"
import errno, os, sys

def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]

def handler(event, context):
    def write(path):
        with open(path, "w") as f:
            f.write("x")
    return {
        "executable": sys.executable,
        "prefix": sys.prefix,
        "path": sys.path,
        "root": sorted(os.listdir("/")),
        "var": sorted(os.listdir("/var")),
        "exists": {p: os.path.exists(p) for p in event["host"]},
        "write": {p: attempt(lambda p=p: write(p)) for p in ["/var/lang/x", "/var/runtime/x"]},
    }
"#;

#[test]
fn a_managed_runtime_shows_its_interpreter_at_var_lang_and_nothing_of_the_host() {
    let s = Server::start();
    create_python(&s, "layout", &[("app.py", LAYOUT_PY)]);
    // Where the test interpreter really lives on the host (a venv's base installation).
    let host_prefix = s.python("import os, sys\nprint(os.path.realpath(sys.base_prefix))");
    let host_prefix = host_prefix.trim().to_owned();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let version = crate::harness::python_runtime().trim_start_matches("python");
    let host_paths = [
        host_prefix.clone(),
        python().display().to_string(),
        home.clone(),
        s.data_dir.display().to_string(),
    ];
    let (error, got) = invoke(&s, "layout", json!({ "host": host_paths }));
    assert_eq!(error, None, "{got}");
    assert_eq!(got["executable"], format!("/var/lang/bin/python{version}"));
    assert_eq!(got["prefix"], "/var/lang");
    let path: Vec<&str> = got["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(path[0], "/var/task");
    assert!(path.contains(&"/opt/python"), "{path:?}");
    assert!(
        path.iter()
            .all(|p| ["/var/task", "/opt/", "/var/runtime", "/var/lang/lib/"]
                .iter()
                .any(|allowed| p.starts_with(allowed))),
        "no host path and no site-packages of the host: {path:?}"
    );
    assert!(
        !path
            .iter()
            .any(|p| p.contains("site-packages") && p.starts_with("/var/lang")),
        "{path:?}"
    );
    assert_eq!(got["var"], json!(["lang", "runtime", "task"]));
    let root: Vec<&str> = got["root"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        !root.contains(&"root") && !root.contains(&"home"),
        "{root:?}"
    );
    for p in &host_paths {
        if !p.starts_with("/usr/") {
            assert_eq!(got["exists"][p], false, "{p} is visible: {got}");
        }
    }
    assert_eq!(
        got["write"],
        json!({"/var/lang/x": "EROFS", "/var/runtime/x": "EROFS"})
    );
}
