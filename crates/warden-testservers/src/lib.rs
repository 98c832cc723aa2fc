//! Real PostgreSQL and NATS servers for tests, started on loopback ports in a private
//! temporary directory.
//!
//! Each server runs under a small `sh` supervisor whose standard input is a pipe from the
//! test process. When the test process ends, however it ends (a panic, `kill -9`, the end
//! of `main`), the pipe closes, the supervisor's `read` returns, and it stops the server
//! and removes its directory. So a server outlives neither the value that started it nor
//! the process, and no test leaves a daemon behind.
//!
//! Run as root (as CI does), PostgreSQL refuses to start; the servers then run as the
//! `postgres` user that Debian's `postgresql` package creates, in a directory given to it.
//!
//! Where the programs are found:
//! - PostgreSQL: `$WARDEN_TEST_PG_BIN` (the directory holding `initdb` and `postgres`),
//!   else the newest `/usr/lib/postgresql/*/bin` (Debian's layout), else `$PATH`;
//! - NATS: `$WARDEN_TEST_NATS` (the `nats-server` program), else `$PATH` and `/usr/sbin`.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server process under its supervisor; stopping it (drop) closes the supervisor's
/// input, which stops the server and removes its directory.
struct Supervised {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Kept so the directory outlives the server even if the supervisor fails to remove
    /// it; removed (again) on drop.
    _dir: tempfile::TempDir,
}

impl Drop for Supervised {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Who the servers run as: `Some((uid, gid))` of the `postgres` user when this process is
/// root, else `None` (the current user).
fn server_user() -> io::Result<Option<(u32, u32)>> {
    let me = std::fs::metadata("/proc/self")?.uid();
    if me != 0 {
        return Ok(None);
    }
    let out = Command::new("id").args(["-u", "postgres"]).output()?;
    let gid = Command::new("id").args(["-g", "postgres"]).output()?;
    if !out.status.success() || !gid.status.success() {
        return Err(io::Error::other(
            "running as root, the test servers need the `postgres` user (Debian's `postgresql` package creates it)",
        ));
    }
    let parse = |b: Vec<u8>| -> io::Result<u32> {
        String::from_utf8_lossy(&b)
            .trim()
            .parse()
            .map_err(|_| io::Error::other("`id` printed no number"))
    };
    Ok(Some((parse(out.stdout)?, parse(gid.stdout)?)))
}

/// A private directory the server's user owns.
fn server_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    if let Some((uid, gid)) = server_user()? {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
    }
    Ok(dir)
}

/// A loopback port free at the time of the call.
/// A loopback port nothing listens on now, and that this process has not handed out
/// before: two servers started at once by parallel tests never get the same port (the
/// kernel may give a port it just freed to the next `bind` of port 0).
fn free_port() -> io::Result<u16> {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
    Err(io::Error::other(
        "no loopback port this process has not used",
    ))
}

/// Runs `script` under `sh` as the server's user with `dir` as its working directory; the
/// script must start the server in the background as `$pid`. The supervisor stops it
/// (SIGINT: PostgreSQL's fast shutdown; NATS stops on it too) when its input closes, then
/// removes `dir`.
fn supervise(script: &str, dir: tempfile::TempDir, log: &Path) -> io::Result<Supervised> {
    let full = format!(
        "{script}\nread _ignored\nkill -INT \"$pid\" 2>/dev/null\nwait \"$pid\"\ncd /\nrm -rf \"{}\" 2>/dev/null\n",
        dir.path().display()
    );
    let log_file = std::fs::File::create(log)?;
    // The server's user appends to the log too.
    if let Some((uid, gid)) = server_user()? {
        std::os::unix::fs::chown(log, Some(uid), Some(gid))?;
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(full)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log_file);
    if let Some((uid, gid)) = server_user()? {
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    Ok(Supervised {
        child,
        stdin,
        _dir: dir,
    })
}

fn log_tail(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let _ = f.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(2000);
    text[text.floor_char_boundary(start)..].to_owned()
}

/// Waits until `ready` holds or the supervisor exits.
fn wait_ready(
    server: &mut Supervised,
    what: &str,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = server.child.try_wait()? {
            return Err(io::Error::other(format!(
                "{what} exited ({status}) before accepting connections:\n{}",
                log_tail(log)
            )));
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{what} did not accept connections within {START_TIMEOUT:?}:\n{}",
                log_tail(log)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find_program(env: &str, candidates: &[PathBuf], name: &str) -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    for c in candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]) {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(io::Error::other(format!(
        "`{name}` was not found (set {env}, or run `cargo xtask tools` to install it)"
    )))
}

/// The directory holding PostgreSQL's `initdb` and `postgres`.
fn postgres_bin() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("WARDEN_TEST_PG_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let initdb = find_program("WARDEN_TEST_PG_BIN", &[], "initdb")?;
    Ok(initdb
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".")))
}

/// A PostgreSQL server of its own, on a loopback port, with password authentication.
pub struct Postgres {
    port: u16,
    password: String,
    server: Supervised,
    databases: AtomicU64,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .finish()
    }
}

/// The superuser the test server is created with.
pub const POSTGRES_USER: &str = "warden";

impl Postgres {
    /// Creates a cluster (`initdb`) and starts it. Takes a second or two: share one per
    /// test process with [`Postgres::shared`] and give each test its own database.
    pub fn start() -> io::Result<Postgres> {
        let bin = postgres_bin()?;
        let dir = server_dir("warden-pg-")?;
        let log = dir.path().join("server.log");
        let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password)?;
        let port = free_port()?;
        let script = format!(
            "set -e\n\
             \"{bin}/initdb\" -D data -U {POSTGRES_USER} --auth=scram-sha-256 --pwfile=pw -E UTF8 --locale=C >>server.log 2>&1\n\
             rm -f pw\n\
             set +e\n\
             \"{bin}/postgres\" -D data -h 127.0.0.1 -p {port} -k \"$PWD\" -c fsync=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB >>server.log 2>&1 &\n\
             pid=$!",
            bin = bin.display(),
        );
        let mut server = supervise(&script, dir, &log)?;
        let url = format!("postgres://{POSTGRES_USER}:{password}@127.0.0.1:{port}/postgres");
        wait_ready(&mut server, "PostgreSQL", &log, || {
            postgres::Client::connect(&url, postgres::NoTls).is_ok()
        })?;
        Ok(Postgres {
            port,
            password,
            server,
            databases: AtomicU64::new(0),
        })
    }

    /// One server for the whole test process, started on first use.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        let _guard = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        SHARED.get_or_init(|| match Postgres::start() {
            Ok(pg) => pg,
            Err(e) => panic!("starting the test PostgreSQL server: {e}"),
        })
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database`, with the superuser's password.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{POSTGRES_USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Creates a new, empty database with a unique name and returns its URL.
    pub fn fresh_database(&self) -> io::Result<String> {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(io::Error::other)?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(io::Error::other)?;
        Ok(self.url(&name))
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.server.child.try_wait(), Ok(None))
    }
}

/// A NATS server of its own with JetStream, on a loopback port.
pub struct Nats {
    port: u16,
    server: Supervised,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats").field("port", &self.port).finish()
    }
}

impl Nats {
    /// Starts `nats-server -js` with its storage in a private directory.
    pub fn start() -> io::Result<Nats> {
        let program = find_program(
            "WARDEN_TEST_NATS",
            &[PathBuf::from("/usr/sbin/nats-server")],
            "nats-server",
        )?;
        let dir = server_dir("warden-nats-")?;
        let log = dir.path().join("server.log");
        let port = free_port()?;
        // Warden's async queue carries events of up to 1 MiB plus headers, above NATS's
        // default limit of 1 MiB per message: operators raise it, and so do the tests.
        std::fs::write(dir.path().join("nats.conf"), "max_payload: 2MB\n")?;
        let script = format!(
            "\"{}\" -c nats.conf -a 127.0.0.1 -p {port} -js -sd \"$PWD/js\" >>server.log 2>&1 &\npid=$!",
            program.display()
        );
        let mut server = supervise(&script, dir, &log)?;
        // Ready when the port answers and this server's own log says it listens there:
        // another process's server on the same port is never taken for this one.
        let listening = format!("Listening for client connections on 127.0.0.1:{port}");
        wait_ready(&mut server, "nats-server", &log, || {
            nats_ready(port)
                && std::fs::read_to_string(&log).is_ok_and(|text| text.contains(&listening))
        })?;
        Ok(Nats { port, server })
    }

    /// One server for the whole test process, started on first use.
    pub fn shared() -> &'static Nats {
        static SHARED: OnceLock<Nats> = OnceLock::new();
        SHARED.get_or_init(|| match Nats::start() {
            Ok(n) => n,
            Err(e) => panic!("starting the test NATS server: {e}"),
        })
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.server.child.try_wait(), Ok(None))
    }
}

/// Whether a NATS server on `port` greets a client with its `INFO` line and answers a
/// `PING`.
fn nats_ready(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return false,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || !line.starts_with("INFO") {
        return false;
    }
    if stream
        .write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .is_err()
    {
        return false;
    }
    line.clear();
    reader.read_line(&mut line).is_ok() && line.starts_with("PONG")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_starts_with_a_password_and_gives_fresh_databases() {
        let pg = Postgres::shared();
        let a = pg.fresh_database().unwrap();
        let b = pg.fresh_database().unwrap();
        assert_ne!(a, b);
        let mut client = postgres::Client::connect(&a, postgres::NoTls).unwrap();
        let row = client.query_one("SELECT 1 + 1", &[]).unwrap();
        assert_eq!(row.get::<_, i32>(0), 2);
        // A wrong password is refused: the server really authenticates.
        let wrong = a.replacen(&format!(":{}@", pg.password), ":nope@", 1);
        assert!(postgres::Client::connect(&wrong, postgres::NoTls).is_err());
    }

    #[test]
    fn a_stopped_postgres_removes_its_directory() {
        let pg = Postgres::start().unwrap();
        let dir = pg.server._dir.path().to_owned();
        assert!(dir.join("data").is_dir());
        drop(pg);
        assert!(!dir.join("data").exists());
    }

    #[test]
    fn nats_starts_with_jetstream() {
        let mut nats = Nats::start().unwrap();
        assert!(nats.is_running());
        assert!(nats_ready(nats.port()));
        let log = nats.server._dir.path().join("server.log");
        let text = std::fs::read_to_string(log).unwrap();
        assert!(text.contains("JetStream"), "{text}");
    }
}
