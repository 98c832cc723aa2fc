//! Starts real `warden serve` processes on loopback with their own data directory, and
//! drives them with the real AWS CLI, boto3 and raw HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn warden_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warden"))
}

/// A binary of the `warden-fixtures` package, built next to `warden`.
pub fn fixture_bin(name: &str) -> PathBuf {
    let path = warden_bin().with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask ci` (it builds the fixtures first)",
        path.display()
    );
    path
}

fn tool(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) => PathBuf::from(v),
        None => panic!("{var} is not set: run the tests with `cargo xtask ci` (or `cargo xtask test`), which installs the AWS CLI, boto3 and awslambdaric"),
    }
}

pub fn python() -> PathBuf {
    tool("WARDEN_TEST_PYTHON")
}

/// The runtime (`python3.11`...) of the test interpreter, which every test server is
/// told to use for it (`--runtime`).
pub fn python_runtime() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let out = Command::new(python())
            .args([
                "-c",
                "import sys; print('python%d.%d' % sys.version_info[:2])",
            ])
            .output()
            .expect("the test python runs");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

pub fn aws_cli() -> PathBuf {
    tool("WARDEN_TEST_AWS")
}

/// A zip whose `bootstrap` is the `lambda_runtime` fixture, built once per test run.
pub fn fixture_zip() -> &'static Path {
    static ZIP: OnceLock<PathBuf> = OnceLock::new();
    ZIP.get_or_init(|| {
        let dir = scratch_dir();
        std::fs::copy(fixture_bin("fixture"), dir.join("bootstrap")).unwrap();
        zip_dir(&dir)
    })
}

/// Zips a directory (deterministically) into a file beside it.
pub fn zip_dir(dir: &Path) -> PathBuf {
    let bytes = warden_package::zip_directory(dir, &mut |_, _| {}).unwrap();
    let path = dir.with_extension("zip");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A Python package with the given files, zipped.
pub fn python_zip(files: &[(&str, &str)]) -> PathBuf {
    let dir = scratch_dir();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    zip_dir(&dir)
}

/// Creates the Python function `name` (handler `app.handler`) from `files`, running as
/// the server's `warden-default` role; `extra` are more `create-function` arguments.
pub fn create_python_function(s: &Server, name: &str, files: &[(&str, &str)], extra: &[&str]) {
    let zip = python_zip(files);
    let account = s.aws(&["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let role = format!("arn:aws:iam::{account}:role/warden-default");
    let zip_arg = format!("fileb://{}", zip.display());
    let mut args = vec![
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        &role,
        "--zip-file",
        &zip_arg,
    ];
    args.extend_from_slice(extra);
    s.aws(&args);
}

pub struct Server {
    child: Option<Child>,
    pub endpoint: String,
    /// Where the server serves function URLs (`http://127.0.0.1:PORT`).
    pub url_endpoint: String,
    /// `http://127.0.0.1:PORT/metrics`: the Prometheus listener.
    pub metrics_endpoint: String,
    pub data_dir: PathBuf,
    /// Where the server keeps extracted code (`--code-dir`): a private directory on
    /// `/dev/shm` when that is memory-backed, removed with the server.
    pub code_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    _code_temp: Option<tempfile::TempDir>,
    args: Vec<String>,
    /// The command the server was started through (kept for restarts).
    wrapper: Vec<String>,
}

/// A private directory for a test server's extracted code, on `/dev/shm` if possible (a
/// memory-backed file system, as Warden's default is), else in the temporary directory.
fn code_temp() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let mut builder = tempfile::Builder::new();
    builder
        .prefix("warden-test-code-")
        .permissions(std::fs::Permissions::from_mode(0o700));
    builder
        .tempdir_in("/dev/shm")
        .or_else(|_| builder.tempdir())
        .unwrap()
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        let temp = private_tempdir();
        let dir = temp.path().to_path_buf();
        let mut s = Self::start_in(&dir, args);
        s._temp = Some(temp);
        s
    }

    /// Starts a server on an existing data directory (for restart tests).
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Self {
        Self::start_via(&[], data_dir, args)
    }

    /// Starts a server through `wrapper` (a command that ends by running the program and
    /// arguments it is given, such as `sh -c '... exec "$0" "$@"'`).
    pub fn start_via(wrapper: &[&str], data_dir: &Path, args: &[&str]) -> Self {
        Self::spawn(wrapper, data_dir, args, true, None)
    }

    /// Starts a server as on a fresh install: its environment holds only the system's
    /// `PATH` (`/usr/bin:/bin`), no home and no interpreter named to it, so it serves
    /// whatever plain `python3` and `node` the host has, found by itself.
    pub fn start_fresh_host() -> Self {
        let temp = private_tempdir();
        let mut s = Self::spawn(
            &["env", "-i", "PATH=/usr/bin:/bin", "WARDEN_LOG=warn"],
            temp.path(),
            &[],
            false,
            None,
        );
        s._temp = Some(temp);
        s
    }

    /// Starts `warden serve`; with `test_runtime`, the test interpreter serves its runtime
    /// (`--runtime`).
    fn spawn(
        wrapper: &[&str],
        data_dir: &Path,
        args: &[&str],
        test_runtime: bool,
        code_dir: Option<PathBuf>,
    ) -> Self {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (code_dir, code_temp) = match code_dir {
            Some(d) => (d, None),
            None => {
                let t = code_temp();
                (t.path().join("code-root"), Some(t))
            }
        };
        let code_arg = if args.iter().any(|a| a == "--code-dir") {
            Vec::new()
        } else {
            vec!["--code-dir".to_owned(), code_dir.display().to_string()]
        };
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(warden_bin());
                c
            }
            None => Command::new(warden_bin()),
        };
        let mut child = command
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--url-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--account-id",
                ACCOUNT,
                "--data-dir",
            ])
            .arg(data_dir)
            .args(if test_runtime {
                vec![
                    "--runtime".to_owned(),
                    format!("{}={}", python_runtime(), python().display()),
                ]
            } else {
                Vec::new()
            })
            .args(&code_arg)
            .args(&args)
            .env("WARDEN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("warden serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("warden listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from warden serve: {line:?}"))
            .to_owned();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let url_endpoint = line
            .trim()
            .strip_prefix("warden function URLs on ")
            .unwrap_or_else(|| panic!("unexpected second line from warden serve: {line:?}"))
            .to_owned();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let metrics_endpoint = line
            .trim()
            .strip_prefix("warden metrics on ")
            .unwrap_or_else(|| panic!("unexpected third line from warden serve: {line:?}"))
            .to_owned();
        let s = Self {
            child: Some(child),
            endpoint,
            url_endpoint,
            metrics_endpoint,
            data_dir: data_dir.to_path_buf(),
            code_dir,
            _temp: None,
            _code_temp: code_temp,
            args,
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
        };
        s.ensure_role(EXEC_ROLE_NAME, LAMBDA_TRUST);
        s
    }

    /// Creates a role (idempotent) through the IAM query API.
    pub fn ensure_role(&self, name: &str, trust: &str) {
        let (status, _, body) = self.iam(&[
            ("Action", "CreateRole"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", trust),
        ]);
        assert!(
            status == 200 || status == 409,
            "CreateRole {name}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// One IAM query-protocol call, signed as the admin.
    pub fn iam(&self, params: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Version", "2010-05-08");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        self.http(
            "POST",
            "/",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            body.as_bytes(),
        )
    }

    /// The admin's credentials the server wrote on first start.
    pub fn admin(&self) -> Credentials {
        let text = std::fs::read_to_string(self.data_dir.join("credentials"))
            .expect("the server writes DATA_DIR/credentials");
        let field = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.split_once('=')
                        .filter(|(k, _)| k.trim() == name)
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("{name} missing from the credentials file"))
        };
        Credentials {
            key: field("aws_access_key_id"),
            secret: field("aws_secret_access_key"),
            token: None,
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Host pids of every process the server started, its zygote excepted: the function
    /// instances and whatever they started.
    pub fn instance_processes(&self) -> Vec<u32> {
        let server = self.pid();
        let mut all = descendants(server);
        // The zygote is the server's direct child running `__zygote`.
        all.retain(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !String::from_utf8_lossy(&cmdline).contains("__zygote")
        });
        all
    }

    /// SIGKILL: the crash case.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait: the graceful case. Returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return Some(status);
            }
            assert!(
                Instant::now() < deadline,
                "warden did not exit within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the same server again on the same data directory (and code directory: a
    /// process restart, not a reboot).
    pub fn restart(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let wrapper: Vec<&str> = self.wrapper.iter().map(String::as_str).collect();
        let mut fresh = Self::spawn(
            &wrapper,
            &self.data_dir,
            &args,
            true,
            Some(self.code_dir.clone()),
        );
        self.child = fresh.child.take();
        self.endpoint = fresh.endpoint.clone();
        self.url_endpoint = fresh.url_endpoint.clone();
        self.metrics_endpoint = fresh.metrics_endpoint.clone();
    }

    /// Environment for AWS clients: the server's credentials once it writes them,
    /// placeholder keys otherwise.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_DEFAULT_REGION".to_owned(), "us-east-1".to_owned()),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ("AWS_CONFIG_FILE".to_owned(), "/dev/null".to_owned()),
            ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
            ("WARDEN_ENDPOINT".to_owned(), self.endpoint.clone()),
            (
                "WARDEN_DATA_DIR".to_owned(),
                self.data_dir.display().to_string(),
            ),
        ];
        let creds = self.data_dir.join("credentials");
        if creds.exists() {
            env.push((
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                creds.display().to_string(),
            ));
        } else {
            env.push(("AWS_ACCESS_KEY_ID".into(), "AKIAIOSFODNN7EXAMPLE".into()));
            env.push((
                "AWS_SECRET_ACCESS_KEY".into(),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            ));
        }
        env
    }

    /// Runs `aws --endpoint-url ... ARGS`, returning its output.
    pub fn aws_raw(&self, args: &[&str]) -> Output {
        Command::new(aws_cli())
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.client_env())
            .output()
            .unwrap()
    }

    /// Runs the AWS CLI and parses its JSON output; panics with stderr on failure.
    pub fn aws(&self, args: &[&str]) -> Value {
        let out = self.aws_raw(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "aws {args:?} printed non-JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs the AWS CLI expecting failure; returns stderr.
    pub fn aws_err(&self, args: &[&str]) -> String {
        let out = self.aws_raw(args);
        assert!(
            !out.status.success(),
            "aws {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs a Python script with boto3 available; `ENDPOINT` is set in its environment.
    /// Panics with the script's output unless it exits 0.
    pub fn python(&self, script: &str) -> String {
        let out = Command::new(python())
            .args(["-c", script])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.client_env())
            .env("ENDPOINT", &self.endpoint)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "python failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs the `warden` CLI against this server.
    pub fn warden(&self, args: &[&str]) -> Output {
        Command::new(warden_bin())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.client_env())
            .output()
            .unwrap()
    }

    /// Creates a function from the fixture zip with the AWS CLI.
    pub fn create_fixture(&self, name: &str, extra: &[&str]) -> Value {
        let zip = format!("fileb://{}", fixture_zip().display());
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
        self.aws(&args)
    }

    /// Installs boto3 for this server's Python functions with `warden runtime sdk install`,
    /// offline, from the wheels the test tools downloaded.
    pub fn install_python_sdk(&self) {
        let out = Command::new(warden_bin())
            .args(["runtime", "sdk", "install", "python", "--from"])
            .arg(tool("WARDEN_TEST_WHEELS"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--python")
            .arg(python())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "warden runtime sdk install failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// HTTP request signed as the admin; returns (status, headers, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        send(
            &self.endpoint,
            Some(&self.admin()),
            method,
            path,
            headers,
            body,
        )
    }

    /// HTTP request without a signature.
    pub fn http_unsigned(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        send(&self.endpoint, None, method, path, headers, body)
    }

    /// Every log line of a function as the API returns it.
    pub fn logs(&self, function: &str) -> Vec<String> {
        // Every page: a flood keeps more lines than one page holds, and the newest (the
        // REPORT lines tests wait for) come last.
        let mut lines = Vec::new();
        let mut after = 0u64;
        loop {
            let (status, _, body) = self.http(
                "GET",
                &format!("/_warden/2026-11-01/functions/{function}/logs?limit=10000&after={after}"),
                &[],
                b"",
            );
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let v: Value = serde_json::from_slice(&body).unwrap();
            let records = v["records"].as_array().unwrap();
            if records.is_empty() {
                return lines;
            }
            lines.extend(
                records
                    .iter()
                    .map(|r| r["message"].as_str().unwrap().to_owned()),
            );
            after = v["nextSeq"].as_u64().unwrap();
        }
    }

    /// Waits until `check` holds for the function's logs, or panics after `timeout`.
    pub fn wait_logs(
        &self,
        function: &str,
        timeout: Duration,
        check: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.logs(function);
            if check(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "logs of `{function}` never satisfied the check:\n{}",
                lines.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The account every test server serves, so role ARNs are predictable.
pub const ACCOUNT: &str = "123456789012";
/// The execution role every test server has, trusting Lambda.
pub const EXEC_ROLE_NAME: &str = "lambda-exec";
pub const EXEC_ROLE: &str = "arn:aws:iam::123456789012:role/lambda-exec";
pub const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Access key material for signing.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub key: String,
    pub secret: String,
    pub token: Option<String>,
}

/// Sends one request, SigV4-signed with `creds` when given (service `iam` for `/`,
/// `lambda` otherwise).
pub fn send(
    endpoint: &str,
    creds: Option<&Credentials>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{endpoint}{path}");
    let mut req = http::Request::builder().method(method).uri(&url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(body.to_vec()).unwrap();
    if let Some(c) = creds {
        let signing = warden_auth::SigningCredentials {
            access_key_id: c.key.clone(),
            secret_access_key: c.secret.clone(),
            session_token: c.token.clone(),
        };
        let service = if path == "/" || path.starts_with("/?") {
            "iam"
        } else {
            "lambda"
        };
        warden_auth::sign_request(
            &mut req,
            body,
            &signing,
            "us-east-1",
            service,
            std::time::SystemTime::now(),
        )
        .unwrap();
    }
    let response = agent.run(req).unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response.into_body().read_to_vec().unwrap();
    (status, headers, body)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every live descendant of `root`, from `/proc`.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command may contain spaces and parentheses: fields follow the last `)`.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        if let Some(ppid) = fields.get(1).and_then(|p| p.parse::<u32>().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (child, parent) in &parents {
            if *parent == p && !found.contains(child) {
                found.push(*child);
                frontier.push(*child);
            }
        }
    }
    found
}

/// Waits until none of `pids` is alive, or panics with `what`.
pub fn wait_gone(pids: &[u32], timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "{what}: {:?} still alive",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process exists.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// A new directory that outlives its caller's scope (a package's sources, a zip beside
/// them), for as long as this test process runs.
///
/// Every one lives under one directory of this process, `warden-it-<pid>` in the
/// temporary directory. A test process has no exit hook to remove it, so the first call
/// of each process removes those of processes that no longer run: what a run leaves
/// behind is bounded by one run, not by every run the machine ever made.
pub fn scratch_dir() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let tmp = std::env::temp_dir();
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("warden-it-"))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if !alive(pid) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let root = tmp.join(format!("warden-it-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        // Traversable by the unprivileged users some tests run servers and tools as.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        root
    });
    tempfile::tempdir_in(root).unwrap().keep()
}

/// A temporary directory only its owner can enter, as a data directory must be.
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .unwrap()
}

/// The error code in the AWS CLI's stderr ("An error occurred (CODE) when calling ..."),
/// or the whole text when there is none.
pub fn error_code(stderr: &str) -> &str {
    stderr
        .split_once("An error occurred (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(c, _)| c)
        .unwrap_or(stderr)
}

/// Base64 of bytes.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Base64 decode.
pub fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// Runs the AWS CLI as `who` (no shared credentials or config file, no instance metadata,
/// one attempt), with Warden's endpoint.
pub fn aws_as(s: &Server, who: &Credentials, args: &[&str]) -> Output {
    let mut cmd = Command::new(aws_cli());
    cmd.args(["--endpoint-url", &s.endpoint, "--output", "json"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_ACCESS_KEY_ID", &who.key)
        .env("AWS_SECRET_ACCESS_KEY", &who.secret);
    if let Some(t) = &who.token {
        cmd.env("AWS_SESSION_TOKEN", t);
    }
    cmd.output().unwrap()
}

/// Runs the AWS CLI as `who` expecting success; its JSON output (`Null` when it printed
/// nothing).
pub fn ok_as(s: &Server, who: &Credentials, args: &[&str]) -> Value {
    let out = aws_as(s, who, args);
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A new IAM user with an access key and no policy.
pub fn user_with_key(s: &Server, name: &str) -> Credentials {
    s.aws(&["iam", "create-user", "--user-name", name]);
    let key = s.aws(&["iam", "create-access-key", "--user-name", name]);
    Credentials {
        key: key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_owned(),
        token: None,
    }
}

/// A new IAM user with one inline policy (named `p`) and an access key.
pub fn user_with_policy(s: &Server, name: &str, policy: &Value) -> Credentials {
    s.aws(&["iam", "create-user", "--user-name", name]);
    s.aws(&[
        "iam",
        "put-user-policy",
        "--user-name",
        name,
        "--policy-name",
        "p",
        "--policy-document",
        &policy.to_string(),
    ]);
    let key = s.aws(&["iam", "create-access-key", "--user-name", name]);
    Credentials {
        key: key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_owned(),
        token: None,
    }
}

/// What one invocation showed, as two runtimes running the same handler must agree on it.
#[derive(Debug, PartialEq)]
pub struct Seen {
    /// The `X-Amz-Function-Error` header.
    pub error: Option<String>,
    /// The response body as JSON (`Null` if it is not JSON).
    pub body: Value,
    /// Each line of the function's own log events (platform lines left out), its times and
    /// request ids replaced by `<time>` and `<id>`, no-break spaces as spaces.
    pub logs: Vec<String>,
}

/// Invokes `name` with `payload` and a client context (`{"custom": {"k": "v"}}`), waits for
/// its `REPORT`, and returns what it showed.
pub fn invoke_seen(s: &Server, name: &str, payload: &str) -> Seen {
    let client_context = b64(br#"{"custom": {"k": "v"}}"#);
    let (status, headers, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[("X-Amz-Client-Context", client_context.as_str())],
        payload.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let error = headers
        .iter()
        .find(|(k, _)| k == "x-amz-function-error")
        .map(|(_, v)| v.clone());
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let lines = s.wait_logs(name, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("REPORT"))
    });
    let logs = lines
        .iter()
        .filter(|l| {
            !["START ", "END ", "REPORT ", "RequestId: "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .flat_map(|l| l.split('\n'))
        .map(normalise_log_line)
        .collect();
    Seen { error, body, logs }
}

/// A log line with its timestamps and request ids (tab-separated fields) replaced, and
/// no-break spaces as spaces.
fn normalise_log_line(line: &str) -> String {
    line.replace('\u{a0}', " ")
        .split('\t')
        .map(|field| {
            let time = field.len() == 24 && field.ends_with('Z') && field.contains('T');
            let id = field.len() == 36 && field.chars().filter(|c| *c == '-').count() == 4;
            if time {
                "<time>".to_owned()
            } else if id {
                "<id>".to_owned()
            } else {
                field.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\t")
}

/// Every event LookupEvents finds for `key = value` (all pages), as parsed CloudTrail
/// records.
pub fn lookup(s: &Server, key: &str, value: &str) -> Vec<Value> {
    let out = s.aws(&[
        "cloudtrail",
        "lookup-events",
        "--lookup-attributes",
        &format!("AttributeKey={key},AttributeValue={value}"),
    ]);
    out["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .collect()
}
