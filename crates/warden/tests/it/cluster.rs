//! Several nodes on one PostgreSQL database and one NATS server (both real, started by the
//! tests): any node answers for the functions, users and keys another created; a change
//! made on one node reaches the others' caches; a node killed with `kill -9` loses no
//! acknowledged async event (queued in JetStream).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warden_testservers::{Nats, Postgres};

use crate::harness::{aws_as, ok_as, user_with_policy, warden_bin, Credentials, Server};

/// What the nodes of one cluster share.
struct Cluster {
    store: String,
    bus: String,
    master_key: PathBuf,
    temp: tempfile::TempDir,
    _nats: Nats,
}

impl Cluster {
    fn new() -> Cluster {
        let store = Postgres::shared().fresh_database().unwrap();
        let nats = Nats::start().unwrap();
        let temp = crate::harness::private_tempdir();
        // The operator gives every node the same master key.
        let master_key = temp.path().join("master.key");
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        std::fs::write(&master_key, key).unwrap();
        std::fs::set_permissions(&master_key, std::fs::Permissions::from_mode(0o600)).unwrap();
        Cluster {
            store,
            bus: nats.url(),
            master_key,
            temp,
            _nats: nats,
        }
    }

    /// The store's password (the URL is `postgres://USER:PASSWORD@...`).
    fn password(&self) -> &str {
        self.store
            .split(':')
            .nth(2)
            .and_then(|rest| rest.split('@').next())
            .unwrap()
    }

    fn data_dir(&self, node: &str) -> PathBuf {
        let dir = self.temp.path().join(node);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    /// Starts node `name`. The store's URL carries a password, so it goes through the
    /// environment, as an operator must give it. A node after the first gets the first
    /// node's admin credentials file (identity is shared: only the first node creates the
    /// admin).
    fn node(&self, name: &str, first: Option<&Server>, extra: &[&str]) -> Server {
        let dir = self.data_dir(name);
        if let Some(first) = first {
            std::fs::copy(first.data_dir.join("credentials"), dir.join("credentials")).unwrap();
        }
        let store = format!("WARDEN_STORE={}", self.store);
        let bus = format!("WARDEN_BUS={}", self.bus);
        let key = self.master_key.display().to_string();
        let mut args = vec!["--node-id", name, "--master-key-file", &key];
        args.extend_from_slice(extra);
        Server::start_via(&["env", &store, &bus], &dir, &args)
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Invokes `function` on `node` with `payload` and returns the function's result.
fn invoke(node: &Server, function: &str, payload: &Value) -> Value {
    let (status, _, body) = node.http(
        "POST",
        &format!("/2015-03-31/functions/{function}/invocations"),
        &[],
        payload.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn any_node_serves_the_functions_users_and_keys_another_node_created() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    let c = cluster.node("c", Some(&a), &[]);

    // Created on A, its environment sealed by the shared KMS, its code sealed in the shared
    // store: B runs it (fetching the code it never saw) and decrypts its environment.
    a.create_fixture("shared", &["--environment", "Variables={GREETING=hello}"]);
    let env = invoke(&b, "shared", &json!({"action": "env"}));
    assert_eq!(env["GREETING"], "hello");
    // The store's and the bus's URLs (with the store's password) never reach a function.
    let all = env.to_string();
    assert!(env.get("WARDEN_STORE").is_none() && env.get("WARDEN_BUS").is_none());
    let password = cluster.password();
    assert!(!all.contains(password), "{all}");
    // Nor the zygote, which every instance descends from.
    let zygotes: Vec<u32> = crate::harness::descendants(b.pid());
    for pid in zygotes {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            !environ
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "process {pid} holds the store's password in its environment"
        );
    }
    let listed = c.aws(&["lambda", "list-functions"]);
    assert_eq!(listed["Functions"][0]["FunctionName"], "shared");
    // boto3 through C: an alias made there is what A resolves.
    c.python(
        r#"
import json, os, boto3
lam = boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"])
v = lam.publish_version(FunctionName="shared")["Version"]
lam.create_alias(FunctionName="shared", Name="live", FunctionVersion=v)
out = json.loads(lam.invoke(FunctionName="shared", Qualifier="live",
                            Payload=b'{"action": "env"}')["Payload"].read())
assert out["GREETING"] == "hello", out
"#,
    );
    let env = invoke(&a, "shared:live", &json!({"action": "env"}));
    assert_eq!(env["GREETING"], "hello");

    // A change made on A reaches the cache of a node that already ran the function.
    a.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "shared",
        "--environment",
        "Variables={GREETING=bye}",
    ]);
    wait_for(
        "B to run the new configuration",
        Duration::from_secs(30),
        || invoke(&b, "shared", &json!({"action": "env"}))["GREETING"] == "bye",
    );
    assert_eq!(
        invoke(&c, "shared", &json!({"action": "env"}))["GREETING"],
        "bye"
    );

    // A user made on C, with a key made on C, is accepted by A; the key deleted on B is
    // refused by A within the identity poll period.
    let carol = user_with_policy(
        &c,
        "carol",
        &json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"}]
        }),
    );
    wait_for("A to accept C's new user", Duration::from_secs(30), || {
        aws_as(
            &a,
            &carol,
            &["lambda", "get-function", "--function-name", "shared"],
        )
        .status
        .success()
    });
    let got = ok_as(
        &a,
        &carol,
        &["lambda", "get-function", "--function-name", "shared"],
    );
    assert_eq!(got["Configuration"]["FunctionName"], "shared");
    b.aws(&[
        "iam",
        "delete-access-key",
        "--user-name",
        "carol",
        "--access-key-id",
        &carol.key,
    ]);
    wait_for(
        "A to refuse the deleted key",
        Duration::from_secs(30),
        || {
            !aws_as(
                &a,
                &carol,
                &["lambda", "get-function", "--function-name", "shared"],
            )
            .status
            .success()
        },
    );

    // A node given another master key is refused before it serves anything.
    let dir = cluster.data_dir("d");
    let wrong = cluster.temp.path().join("wrong.key");
    std::fs::write(&wrong, [7u8; 32]).unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(warden_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--node-id", "d"])
        .arg("--data-dir")
        .arg(&dir)
        .arg("--master-key-file")
        .arg(&wrong)
        .env("WARDEN_STORE", &cluster.store)
        .env("WARDEN_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
    assert!(
        !stderr.contains(cluster.store.split('@').next().unwrap()),
        "the store's password leaked: {stderr}"
    );
}

#[test]
fn a_secret_made_on_one_node_is_read_changed_and_deleted_through_another() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);

    // Made with the AWS CLI on A, sealed under the shared KMS: boto3 on B opens it.
    let made = a.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "app/db",
        "--secret-string",
        "marker-cluster-5e1f",
    ]);
    let arn = made["ARN"].as_str().unwrap().to_owned();
    b.python(
        r#"
import os, boto3
sm = boto3.client("secretsmanager", endpoint_url=os.environ["ENDPOINT"])
got = sm.get_secret_value(SecretId="app/db")
assert got["SecretString"] == "marker-cluster-5e1f", got
assert got["VersionStages"] == ["AWSCURRENT"], got
sm.put_secret_value(SecretId="app/db", SecretString="second")
"#,
    );
    // B's new value is A's current one, and the first is A's previous one.
    let current = a.aws(&["secretsmanager", "get-secret-value", "--secret-id", &arn]);
    assert_eq!(current["SecretString"], "second");
    let previous = a.aws(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        "app/db",
        "--version-stage",
        "AWSPREVIOUS",
    ]);
    assert_eq!(previous["SecretString"], "marker-cluster-5e1f");
    // A name is one secret across the nodes: B cannot make it again.
    let stderr = b.aws_err(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "app/db",
        "--secret-string",
        "x",
    ]);
    assert!(stderr.contains("ResourceExistsException"), "{stderr}");
    // Scheduled for deletion on B: A refuses to read it and lists it only when asked to.
    b.aws(&[
        "secretsmanager",
        "delete-secret",
        "--secret-id",
        "app/db",
        "--recovery-window-in-days",
        "7",
    ]);
    let stderr = a.aws_err(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        "app/db",
    ]);
    assert!(stderr.contains("InvalidRequestException"), "{stderr}");
    let listed = a.aws(&["secretsmanager", "list-secrets"]);
    assert_eq!(listed["SecretList"].as_array().unwrap().len(), 0);
    let listed = a.aws(&[
        "secretsmanager",
        "list-secrets",
        "--include-planned-deletion",
    ]);
    assert_eq!(listed["SecretList"][0]["ARN"], arn.as_str());
    // The shared database holds no value in the clear.
    let mut db = postgres::Client::connect(&cluster.store, postgres::NoTls).unwrap();
    let mut dump = String::new();
    for row in db
        .query(
            "SELECT s.record, v.sealed FROM secrets s JOIN secret_versions v USING (arn)",
            &[],
        )
        .unwrap()
    {
        dump.push_str(row.get::<_, &str>(0));
        dump.push_str(&String::from_utf8_lossy(row.get::<_, &[u8]>(1)));
    }
    assert!(dump.contains("app/db"), "{dump}");
    assert!(!dump.contains("marker-cluster-5e1f"), "{dump}");
}

#[test]
fn a_role_session_assumed_on_one_node_is_accepted_by_another_until_its_role_is_deleted() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    let bob = user_with_policy(
        &a,
        "bob",
        &json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]
        }),
    );
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/bob"},
                       "Action": "sts:AssumeRole"}]
    })
    .to_string();
    a.aws(&[
        "iam",
        "create-role",
        "--role-name",
        "deployer",
        "--assume-role-policy-document",
        &trust,
    ]);
    a.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "deployer",
        "--policy-name",
        "read",
        "--policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:ListFunctions","Resource":"*"}]}"#,
    ]);
    wait_for("A to accept bob", Duration::from_secs(30), || {
        aws_as(&a, &bob, &["sts", "get-caller-identity"])
            .status
            .success()
    });
    // Assumed through A, used through B: B accepts it within its identity poll.
    let assumed = ok_as(
        &a,
        &bob,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            "arn:aws:iam::123456789012:role/deployer",
            "--role-session-name",
            "ci",
        ],
    );
    let c = &assumed["Credentials"];
    let session = Credentials {
        key: c["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: c["SecretAccessKey"].as_str().unwrap().to_owned(),
        token: Some(c["SessionToken"].as_str().unwrap().to_owned()),
    };
    wait_for("B to accept A's session", Duration::from_secs(30), || {
        aws_as(&b, &session, &["lambda", "list-functions"])
            .status
            .success()
    });
    let me = ok_as(&b, &session, &["sts", "get-caller-identity"]);
    assert_eq!(
        me["Arn"],
        "arn:aws:sts::123456789012:assumed-role/deployer/ci"
    );
    // The role's permissions, not more, on B too.
    let denied = aws_as(&b, &session, &["iam", "list-users"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("AccessDenied"));
    // A wrong secret with the session's key id is refused on B.
    let forged = Credentials {
        secret: "x".repeat(40),
        ..session.clone()
    };
    let refused = aws_as(&b, &forged, &["lambda", "list-functions"]);
    assert!(!refused.status.success());
    // Deleted on B, the role's session ends on A within its poll.
    b.aws(&[
        "iam",
        "delete-role-policy",
        "--role-name",
        "deployer",
        "--policy-name",
        "read",
    ]);
    b.aws(&["iam", "delete-role", "--role-name", "deployer"]);
    wait_for(
        "A to refuse the ended session",
        Duration::from_secs(30),
        || {
            let out = aws_as(&a, &session, &["sts", "get-caller-identity"]);
            !out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains("InvalidClientTokenId")
        },
    );
}

#[test]
fn a_code_signing_config_attached_on_one_node_guards_deploys_through_another() {
    use crate::code_signing::{config, fileb, ok, put_profile, refused, sign};
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    let profile = put_profile(&a, "app_signer", None);
    let csc = config(&a, &[&profile], "Enforce");
    a.create_fixture("guarded", &[]);
    a.aws(&[
        "lambda",
        "put-function-code-signing-config",
        "--function-name",
        "guarded",
        "--code-signing-config-arn",
        &csc,
    ]);
    wait_for(
        "B to know the function's config",
        Duration::from_secs(30),
        || {
            b.aws(&[
                "lambda",
                "get-function-code-signing-config",
                "--function-name",
                "guarded",
            ])["CodeSigningConfigArn"]
                == csc.as_str()
        },
    );
    // Unsigned code is refused through B as through A.
    let unsigned = crate::harness::fixture_zip();
    let update = |node: &Server, zip: &Path| {
        node.aws_raw(&[
            "lambda",
            "update-function-code",
            "--function-name",
            "guarded",
            "--zip-file",
            &fileb(zip),
        ])
    };
    assert_eq!(
        refused(&update(&b, unsigned)),
        "CodeVerificationFailedException"
    );
    // B signs with the profile A made (its key sealed under the shared KMS), and the
    // signed package deploys through B.
    let signed = sign(&b, "app_signer", unsigned);
    ok(&update(&b, &signed));
    // Detached on B: A deploys unsigned code again once it polls.
    b.aws(&[
        "lambda",
        "delete-function-code-signing-config",
        "--function-name",
        "guarded",
    ]);
    wait_for(
        "A to forget the function's config",
        Duration::from_secs(30),
        || {
            a.aws(&[
                "lambda",
                "get-function-code-signing-config",
                "--function-name",
                "guarded",
            ])["CodeSigningConfigArn"]
                == ""
        },
    );
    ok(&update(&a, unsigned));
}

#[test]
fn an_input_contract_put_through_one_node_is_enforced_by_another() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    a.create_fixture("orders", &[]);
    let (status, body) = crate::contracts::put(&a, "orders", crate::contracts::CONTRACT);
    assert_eq!(status, 200, "{body}");
    let bad = json!({"order": {"id": 7}}).to_string();
    let through_b = || {
        b.http(
            "POST",
            "/2015-03-31/functions/orders/invocations",
            &[],
            bad.as_bytes(),
        )
    };
    // Within the poll period, B refuses what breaks the contract before any code runs.
    wait_for("B to enforce A's contract", Duration::from_secs(30), || {
        through_b().0 == 400
    });
    let (status, _, body) = through_b();
    assert_eq!(status, 400);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("InvalidRequestContentException"), "{text}");
    assert!(text.contains("/order/id"), "{text}");
    let good = json!({"order": {"id": "A-1"}});
    assert_eq!(invoke(&b, "orders", &good), good);
    // Deleted through B, it no longer applies on A.
    let (status, _, _) = b.http(
        "DELETE",
        "/_warden/2026-11-01/functions/orders/input-contract",
        &[],
        b"",
    );
    assert!(status == 200 || status == 204, "{status}");
    wait_for("A to drop the contract", Duration::from_secs(30), || {
        a.http(
            "POST",
            "/2015-03-31/functions/orders/invocations",
            &[],
            br#"{"order": {"id": 7}}"#,
        )
        .0 == 200
    });
}

#[test]
fn a_function_url_made_through_one_node_is_served_by_another() {
    use crate::urls::{allow_public, curl, path_form};
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    a.create_fixture("web", &[]);
    allow_public(&a, "web");
    let created = a.aws(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "web",
        "--auth-type",
        "NONE",
    ]);
    let function_url = created["FunctionUrl"].as_str().unwrap().to_owned();
    // The same URL id, through B's URL listener.
    let on_b = path_form(&b, &function_url);
    wait_for(
        "B to serve A's function URL",
        Duration::from_secs(30),
        || curl(&[&format!("{on_b}/hello")]).0 == 200,
    );
    let (status, _, body) = curl(&[&format!("{on_b}/hello")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/hello"), "{body}");
    // B's view of the configuration is A's: the same URL id, on B's own listener.
    let got = b.aws(&[
        "lambda",
        "get-function-url-config",
        "--function-name",
        "web",
    ]);
    let id = |url: &str| {
        url.trim_start_matches("http://")
            .split('.')
            .next()
            .map(str::to_owned)
    };
    assert_eq!(id(got["FunctionUrl"].as_str().unwrap()), id(&function_url));
    assert_eq!(got["CreationTime"], created["CreationTime"]);
    // Deleted through B: A stops serving it as it would a URL that never existed.
    b.aws(&[
        "lambda",
        "delete-function-url-config",
        "--function-name",
        "web",
    ]);
    let never = curl(&[&format!("{}/_url/{}/x", a.url_endpoint, "a".repeat(32))]).0;
    assert_ne!(never, 200);
    let on_a = path_form(&a, &function_url);
    wait_for(
        "A to stop serving the deleted URL",
        Duration::from_secs(30),
        || curl(&[&format!("{on_a}/hello")]).0 == never,
    );
}

#[test]
fn a_master_key_rotation_reseals_the_shared_store_once_and_every_node_follows() {
    let cluster = Cluster::new();
    let mut a = cluster.node("a", None, &[]);
    let mut b = cluster.node("b", Some(&a), &[]);
    // Sealed under the master key in the shared store: an access key's secret, a KMS
    // key's material (which seals the secret's value) and a role session.
    let carol = user_with_policy(
        &a,
        "carol",
        &json!({"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}),
    );
    a.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "kept",
        "--secret-string",
        "across rotations",
    ]);
    a.aws(&[
        "iam",
        "create-role",
        "--role-name",
        "ops",
        "--assume-role-policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#,
    ]);
    let assumed = a.aws(&[
        "sts",
        "assume-role",
        "--role-arn",
        "arn:aws:iam::123456789012:role/ops",
        "--role-session-name",
        "before",
    ]);
    let c = &assumed["Credentials"];
    let session = Credentials {
        key: c["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: c["SecretAccessKey"].as_str().unwrap().to_owned(),
        token: Some(c["SessionToken"].as_str().unwrap().to_owned()),
    };
    a.stop();

    let rotate = |data: &Path, key_file: &Path| {
        Command::new(warden_bin())
            .args(["admin", "rotate-master-key", "--data-dir"])
            .arg(data)
            .arg("--master-key-file")
            .arg(key_file)
            .env("WARDEN_STORE", &cluster.store)
            .env("WARDEN_LOG", "warn")
            .output()
            .unwrap()
    };
    // While B runs, the rotation is refused: B would go on sealing under the old key.
    let out = rotate(&cluster.data_dir("a"), &cluster.master_key);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to rotate") && stderr.contains("b (seen"),
        "{stderr}"
    );
    b.stop();

    // Node A's rotation reseals the shared store and A's own files.
    let old = std::fs::read(&cluster.master_key).unwrap();
    let out = rotate(&cluster.data_dir("a"), &cluster.master_key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("1 role sessions resealed"), "{said}");
    let new = std::fs::read(&cluster.master_key).unwrap();
    assert_ne!(old, new);
    // Node B (on its own machine it has its own copy of the key file): the new key given
    // as its pending key, its run leaves the shared store as it is and reseals B's files.
    let b_key = cluster.temp.path().join("b.key");
    let b_pending = cluster.temp.path().join("b.key.new");
    for (path, bytes) in [(&b_key, &old), (&b_pending, &new)] {
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = rotate(&cluster.data_dir("b"), &b_key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("0 key materials"), "{said}");
    assert_eq!(std::fs::read(&b_key).unwrap(), new);

    // The old key no longer opens the store: a node given it is refused.
    let stale = cluster.temp.path().join("stale.key");
    std::fs::write(&stale, &old).unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o600)).unwrap();
    let refused = Command::new(warden_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--node-id", "c"])
        .arg("--data-dir")
        .arg(cluster.data_dir("c"))
        .arg("--master-key-file")
        .arg(&stale)
        .env("WARDEN_STORE", &cluster.store)
        .env("WARDEN_LOG", "warn")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("master key"), "{stderr}");

    // Under the new key both nodes serve what was sealed before: carol's key, the
    // secret (its KMS key's material resealed), the role session.
    a.restart();
    b.restart();
    let got = ok_as(
        &b,
        &carol,
        &["secretsmanager", "get-secret-value", "--secret-id", "kept"],
    );
    assert_eq!(got["SecretString"], "across rotations");
    let me = ok_as(&a, &session, &["sts", "get-caller-identity"]);
    assert_eq!(
        me["Arn"],
        "arn:aws:sts::123456789012:assumed-role/ops/before"
    );
    wait_for("B to accept the session", Duration::from_secs(30), || {
        aws_as(&b, &session, &["sts", "get-caller-identity"])
            .status
            .success()
    });
}

#[test]
fn a_resources_configuration_history_is_one_history_whichever_node_changed_it() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    a.create_fixture("tracked", &[]);
    b.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "tracked",
        "--memory-size",
        "256",
    ]);
    a.aws(&["lambda", "delete-function", "--function-name", "tracked"]);
    let states = |node: &Server| -> Vec<(String, String)> {
        let history = node.aws(&[
            "configservice",
            "get-resource-config-history",
            "--resource-type",
            "AWS::Lambda::Function",
            "--resource-id",
            "tracked",
        ]);
        history["configurationItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["configurationStateId"].as_str().unwrap().to_owned(),
                    i["configurationItemStatus"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let want = [
        ("3".to_owned(), "ResourceDeleted".to_owned()),
        ("2".to_owned(), "OK".to_owned()),
        ("1".to_owned(), "ResourceDiscovered".to_owned()),
    ];
    wait_for(
        "the three changes in the history",
        Duration::from_secs(30),
        || states(&a) == want,
    );
    assert_eq!(states(&b), want);
}

#[test]
fn posture_findings_are_one_set_whichever_node_evaluated() {
    use crate::posture::wait_status;
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    // A key without rotation, made through A: a finding, seen through both nodes.
    let key = a.aws(&["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_status(&a, "KMS.4", &key, Some("NEW"));
    wait_status(&b, "KMS.4", &key, Some("NEW"));
    // Fixed through B: B's evaluation resolves the one finding, for A too.
    b.aws(&["kms", "enable-key-rotation", "--key-id", &key]);
    wait_status(&b, "KMS.4", &key, Some("RESOLVED"));
    wait_status(&a, "KMS.4", &key, Some("RESOLVED"));
    let all = a.aws(&["securityhub", "get-findings"]);
    let of_key = all["Findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["Resources"][0]["Id"]
                .as_str()
                .is_some_and(|id| id.ends_with(&key))
        })
        .count();
    assert_eq!(of_key, 1, "one finding, whichever node evaluated");
}

#[test]
fn a_security_group_changed_through_one_node_is_the_same_group_on_another() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    let vpc = a.aws(&["ec2", "create-vpc", "--cidr-block", "10.40.0.0/16"])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = a.aws(&[
        "ec2",
        "create-security-group",
        "--vpc-id",
        &vpc,
        "--group-name",
        "db",
        "--description",
        "the database",
    ])["GroupId"]
        .as_str()
        .unwrap()
        .to_owned();
    a.aws(&[
        "ec2",
        "authorize-security-group-egress",
        "--group-id",
        &group,
        "--protocol",
        "tcp",
        "--port",
        "5432",
        "--cidr",
        "10.20.1.0/24",
    ]);
    let egress_ports = |node: &Server| -> Vec<i64> {
        let out = node.aws(&["ec2", "describe-security-groups", "--group-ids", &group]);
        out["SecurityGroups"][0]["IpPermissionsEgress"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["FromPort"].as_i64())
            .collect()
    };
    wait_for(
        "B to know A's group and rule",
        Duration::from_secs(30),
        || {
            b.aws_raw(&["ec2", "describe-security-groups", "--group-ids", &group])
                .status
                .success()
                && egress_ports(&b).contains(&5432)
        },
    );
    // The same rule added through B is a duplicate: B decides from A's change.
    let e = b.aws_err(&[
        "ec2",
        "authorize-security-group-egress",
        "--group-id",
        &group,
        "--protocol",
        "tcp",
        "--port",
        "5432",
        "--cidr",
        "10.20.1.0/24",
    ]);
    assert!(e.contains("InvalidPermission.Duplicate"), "{e}");
    // Revoked through B: gone on A within its poll.
    b.aws(&[
        "ec2",
        "revoke-security-group-egress",
        "--group-id",
        &group,
        "--protocol",
        "tcp",
        "--port",
        "5432",
        "--cidr",
        "10.20.1.0/24",
    ]);
    wait_for(
        "A to drop the revoked rule",
        Duration::from_secs(30),
        || !egress_ports(&a).contains(&5432),
    );
    // A flow log of the VPC made through A is B's too (B's flow collector asks the same
    // shared flow logs what to record).
    let created = a.aws(&[
        "ec2",
        "create-flow-logs",
        "--resource-type",
        "VPC",
        "--resource-ids",
        &vpc,
        "--traffic-type",
        "REJECT",
        "--log-group-name",
        "vpc-flows",
    ]);
    let flow_log = created["FlowLogIds"][0].as_str().unwrap().to_owned();
    wait_for("B to know A's flow log", Duration::from_secs(30), || {
        b.aws(&["ec2", "describe-flow-logs", "--flow-log-ids", &flow_log])["FlowLogs"][0]
            ["TrafficType"]
            == "REJECT"
    });
}

#[test]
fn a_dns_firewall_list_changed_through_one_node_is_the_same_list_on_another() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    let list = a.aws(&[
        "route53resolver",
        "create-firewall-domain-list",
        "--name",
        "blocked",
        "--creator-request-id",
        "list-1",
    ])["FirewallDomainList"]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    a.aws(&[
        "route53resolver",
        "update-firewall-domains",
        "--firewall-domain-list-id",
        &list,
        "--operation",
        "ADD",
        "--domains",
        "evil.net",
    ]);
    let domains = |node: &Server| -> Option<Value> {
        let out = node.aws_raw(&[
            "route53resolver",
            "list-firewall-domains",
            "--firewall-domain-list-id",
            &list,
        ]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap()["Domains"].clone())
    };
    wait_for("B to know A's list", Duration::from_secs(30), || {
        domains(&b) == Some(json!(["evil.net"]))
    });
    // Added through B: on A within its poll; the same request id is A's list on B.
    b.aws(&[
        "route53resolver",
        "update-firewall-domains",
        "--firewall-domain-list-id",
        &list,
        "--operation",
        "ADD",
        "--domains",
        "*.bad.org",
    ]);
    wait_for("A to know B's domain", Duration::from_secs(30), || {
        domains(&a) == Some(json!(["*.bad.org", "evil.net"]))
    });
    let again = b.aws(&[
        "route53resolver",
        "create-firewall-domain-list",
        "--name",
        "blocked",
        "--creator-request-id",
        "list-1",
    ]);
    assert_eq!(again["FirewallDomainList"]["Id"], list.as_str());
}

#[test]
fn a_password_on_the_command_line_is_refused_without_being_repeated() {
    let dir = crate::harness::private_tempdir();
    // `warden serve` on a fresh directory with `args`; its stderr, once it has failed.
    let refused = |args: &[&str]| -> String {
        let out = Command::new(warden_bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("WARDEN_STORE")
            .env("WARDEN_LOG", "warn")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = refused(&[
        "--store",
        "postgres://warden:hunter2-secret@127.0.0.1:1/warden",
    ]);
    assert!(stderr.contains("WARDEN_STORE"), "{stderr}");
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
    // A bus without a shared store is refused: it would connect nothing.
    let stderr = refused(&["--bus", "nats://127.0.0.1:1"]);
    assert!(stderr.contains("--bus"), "{stderr}");
    // Nor is a pool size for a store that has no pool.
    let stderr = refused(&["--store-connections", "4"]);
    assert!(stderr.contains("--store-connections"), "{stderr}");
}

/// Executions recorded by the fixture: request id → count.
fn witnessed(path: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Some(id) = line.split_whitespace().next() {
            *seen.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

/// Queues one async invocation on `node`; its request id if it was accepted.
fn enqueue(node: &Server, tag: usize) -> Option<String> {
    let (status, headers, _) = node.http(
        "POST",
        "/2015-03-31/functions/worker/invocations",
        &[("X-Amz-Invocation-Type", "Event")],
        json!({"action": "append", "tag": format!("e{tag}"), "ms": 100})
            .to_string()
            .as_bytes(),
    );
    (status == 202).then(|| {
        headers
            .iter()
            .find(|(k, _)| k == "x-amzn-requestid")
            .map(|(_, v)| v.clone())
            .unwrap()
    })
}

/// Events waiting in the cluster's async queue, as `node`'s metrics listener reports them.
fn queued_events(node: &Server) -> f64 {
    let (status, text) = crate::metrics::get(&node.metrics_endpoint, "GET");
    assert_eq!(status, 200, "{text}");
    crate::metrics::line_value(&text, "warden_async_queue_events")
        .unwrap_or_else(|| panic!("no queue depth in:\n{text}"))
}

#[test]
fn a_node_killed_mid_load_loses_no_acknowledged_async_event() {
    let cluster = Cluster::new();
    let witness = tempfile::NamedTempFile::new().unwrap();
    // Host witness file: the queue, not isolation, is under test.
    let extra = ["--insecure-no-sandbox"];
    let a = cluster.node("a", None, &extra);
    let mut b = cluster.node("b", Some(&a), &extra);
    let c = cluster.node("c", Some(&a), &extra);
    let env = format!("Variables={{FIXTURE_WITNESS={}}}", witness.path().display());
    a.create_fixture("worker", &["--environment", &env]);

    let mut accepted = Vec::new();
    for i in 0..30 {
        let node = [&a, &b, &c][i % 3];
        accepted.push(enqueue(node, i).expect("an async invocation is accepted"));
    }
    // The events wait in JetStream, not in the shared store's table.
    let mut db = postgres::Client::connect(&cluster.store, postgres::NoTls).unwrap();
    let in_table = |db: &mut postgres::Client| -> i64 {
        db.query_one("SELECT count(*) FROM events", &[])
            .unwrap()
            .get(0)
    };
    assert!(queued_events(&c) > 0.0);
    assert_eq!(in_table(&mut db), 0);
    // B dies with events leased, running or queued; A and C go on accepting.
    b.kill9();
    // An event runs twice only if B ran it and died before acknowledging it. The function
    // writes its witness line when it starts, so every run of B's is in the file a moment
    // after B died; its unacknowledged events come back to a node only after the queue's
    // acknowledgement wait (30 s), so no second run is in the file yet.
    std::thread::sleep(Duration::from_secs(2));
    let ran_before_b_died = witnessed(witness.path());
    for i in 30..45 {
        let node = if i % 2 == 0 { &a } else { &c };
        accepted.push(enqueue(node, i).expect("an async invocation is accepted"));
    }
    // B comes back under its own id; what it held is redelivered to whichever node pulls
    // first once the wait is over.
    b.restart();
    wait_for(
        "every accepted event to run",
        Duration::from_secs(120),
        || {
            let seen = witnessed(witness.path());
            accepted.iter().all(|id| seen.contains_key(id))
        },
    );
    let seen = witnessed(witness.path());
    // Only an event that had run when B died may run twice (async invocation is at least
    // once, as on Lambda): B may have run it without acknowledging it.
    let twice: Vec<_> = seen
        .iter()
        .filter(|(id, n)| **n > 1 && !ran_before_b_died.contains_key(*id))
        .collect();
    assert!(
        twice.is_empty(),
        "ran twice though they had not run when B died: {twice:?}"
    );
    let accepted_after: Vec<_> = accepted[30..].iter().filter(|id| seen[*id] > 1).collect();
    assert!(
        accepted_after.is_empty(),
        "events accepted after B died ran twice: {accepted_after:?}"
    );
    // Every event completes: the queue empties (the last ones may still be finishing),
    // whichever node is asked.
    wait_for("the queue to empty", Duration::from_secs(60), || {
        queued_events(&a) == 0.0 && queued_events(&b) == 0.0
    });
    let unknown: Vec<_> = seen.keys().filter(|id| !accepted.contains(id)).collect();
    assert!(unknown.is_empty(), "events nobody sent ran: {unknown:?}");
    assert_eq!(in_table(&mut db), 0);
}

#[test]
fn events_an_earlier_release_queued_in_the_store_run_once_through_the_work_queue() {
    let cluster = Cluster::new();
    let witness = tempfile::NamedTempFile::new().unwrap();
    let extra = ["--insecure-no-sandbox"];
    let a = cluster.node("a", None, &extra);
    let env = format!("Variables={{FIXTURE_WITNESS={}}}", witness.path().display());
    a.create_fixture("worker", &["--environment", &env]);
    // What a node of the earlier release left in the table it queued in: one event due,
    // one due in 3 s (a retry's back-off), one leased by a node that is still running it.
    let mut db = postgres::Client::connect(&cluster.store, postgres::NoTls).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let payload = |tag: &str| {
        json!({"action": "append", "tag": tag})
            .to_string()
            .into_bytes()
    };
    for (id, attempts, due, leased) in [
        ("0f0e0d0c-0000-4000-8000-000000000001", 0_i64, now, None),
        ("0f0e0d0c-0000-4000-8000-000000000002", 1, now + 3_000, None),
        (
            "0f0e0d0c-0000-4000-8000-000000000003",
            0,
            now,
            Some(now + 600_000),
        ),
    ] {
        db.execute(
            "INSERT INTO events (id, function, qualifier, payload, attempts, not_before_ms, \
             enqueued_ms, leased_until_ms, leased_by) VALUES ($1, 'worker', '$LATEST', $2, $3, \
             $4, $5, $6, CASE WHEN $6::BIGINT IS NULL THEN NULL ELSE 'old-node' END)",
            &[&id, &payload(id), &attempts, &due, &(now - 1_000), &leased],
        )
        .unwrap();
    }
    let moved = [
        "0f0e0d0c-0000-4000-8000-000000000001",
        "0f0e0d0c-0000-4000-8000-000000000002",
    ];
    wait_for(
        "the earlier release's events to run",
        Duration::from_secs(60),
        || {
            let seen = witnessed(witness.path());
            moved.iter().all(|id| seen.contains_key(*id))
        },
    );
    // Each ran once; the one another node holds stays where it is, for that node.
    std::thread::sleep(Duration::from_secs(6));
    let seen = witnessed(witness.path());
    for id in moved {
        assert_eq!(seen[id], 1, "{id} ran {} times", seen[id]);
    }
    assert!(!seen.contains_key("0f0e0d0c-0000-4000-8000-000000000003"));
    let left: Vec<String> = db
        .query("SELECT id FROM events", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["0f0e0d0c-0000-4000-8000-000000000003"]);
    wait_for("the work queue to empty", Duration::from_secs(30), || {
        queued_events(&a) == 0.0
    });
}

#[test]
fn the_sns_state_a_node_kept_in_its_own_file_moves_into_the_cluster_when_it_joins() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    // Node B first ran on its own, as a node of an earlier release did: SNS in its file.
    let dir = cluster.data_dir("b");
    let function = format!(
        "arn:aws:lambda:us-east-1:{}:function:worker",
        crate::harness::ACCOUNT
    );
    let topic = {
        let mut alone = Server::start_in(&dir, &[]);
        let topic = alone.aws(&["sns", "create-topic", "--name", "legacy"])["TopicArn"]
            .as_str()
            .unwrap()
            .to_owned();
        alone.aws(&[
            "sns",
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "lambda",
            "--notification-endpoint",
            &function,
        ]);
        alone.stop();
        topic
    };
    assert!(dir.join("sns.db").exists());
    let b = cluster.node("b", Some(&a), &[]);
    // The topic and its subscription are the cluster's: node A, which never saw the file,
    // lists them.
    let topics = a.aws(&["sns", "list-topics"]);
    let arns: Vec<&str> = topics["Topics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["TopicArn"].as_str())
        .collect();
    assert_eq!(arns, [topic.as_str()]);
    let subs = a.aws(&["sns", "list-subscriptions-by-topic", "--topic-arn", &topic]);
    let subs = subs["Subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["Endpoint"], function.as_str());
    assert_eq!(subs[0]["Protocol"], "lambda");
    // The file is set aside, so a restart does not read it again.
    assert!(!dir.join("sns.db").exists());
    assert!(dir.join("sns.db.imported").exists());
    drop(b);
}

/// Sends `n` invocations of `function` at once, spread over `nodes` in turn; the status
/// and body of each.
fn burst(nodes: &[&Server], function: &str, n: usize, payload: &Value) -> Vec<(u16, Value)> {
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..n)
            .map(|i| {
                let node = nodes[i % nodes.len()];
                scope.spawn(move || {
                    let (status, _, body) = node.http(
                        "POST",
                        &format!("/2015-03-31/functions/{function}/invocations"),
                        &[],
                        payload.to_string().as_bytes(),
                    );
                    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    })
}

/// The most of `spans` (`start_ms`, `end_ms`) that overlap at one moment.
fn most_at_once(spans: &[(u64, u64)]) -> usize {
    let mut edges: Vec<(u64, i32)> = spans
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    // An end before a start at the same millisecond: touching spans do not overlap.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// Checks a burst: every call answered 200 or Lambda's 429 for the reservation, at least
/// `limit` ran, and never more than `limit` at once.
fn check_burst(results: &[(u16, Value)], limit: usize) {
    let mut spans = Vec::new();
    for (status, body) in results {
        match status {
            200 => spans.push((
                body["start_ms"].as_u64().unwrap(),
                body["end_ms"].as_u64().unwrap(),
            )),
            429 => assert_eq!(
                body["Reason"], "ReservedFunctionConcurrentInvocationLimitExceeded",
                "{body}"
            ),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(
        most_at_once(&spans) <= limit,
        "{} ran at once with a reservation of {limit}: {spans:?}",
        most_at_once(&spans)
    );
    // Every call arrives while the first ones still sleep, so only a full reservation
    // throttles: fewer than `limit` successes would be a throttle below the limit.
    assert!(
        spans.len() >= limit,
        "only {} of {} ran with a reservation of {limit}",
        spans.len(),
        results.len()
    );
}

#[test]
fn a_reserved_concurrency_of_ten_holds_across_three_nodes() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    let c = cluster.node("c", Some(&a), &[]);
    let nodes = [&a, &b, &c];
    a.create_fixture("limited", &["--timeout", "60"]);
    let reserve = |n: &str| {
        a.aws(&[
            "lambda",
            "put-function-concurrency",
            "--function-name",
            "limited",
            "--reserved-concurrent-executions",
            n,
        ]);
    };
    // Every node must know the reservation before the burst: 0 first, seen as a throttle
    // on each node, then 10, seen as a success on each.
    reserve("0");
    let status_on = |node: &Server| {
        node.http(
            "POST",
            "/2015-03-31/functions/limited/invocations",
            &[],
            br#"{"action":"echo"}"#,
        )
        .0
    };
    for node in nodes {
        wait_for("the reservation of 0", Duration::from_secs(30), || {
            status_on(node) == 429
        });
    }
    reserve("10");
    for node in nodes {
        wait_for("the reservation of 10", Duration::from_secs(30), || {
            status_on(node) == 200
        });
    }

    // Thirty at once, ten through each node, each running for five seconds.
    let span = json!({"action": "span", "ms": 5000});
    let first = burst(&nodes, "limited", 30, &span);
    check_burst(&first, 10);

    // The slots go back to the store once unused...
    let mut db = postgres::Client::connect(&cluster.store, postgres::NoTls).unwrap();
    wait_for("every slot returned", Duration::from_secs(30), || {
        let leased: i64 = db
            .query_one(
                "SELECT coalesce(sum(slots), 0)::BIGINT FROM concurrency_leases \
                 WHERE expires_at > now()",
                &[],
            )
            .unwrap()
            .get(0);
        leased == 0
    });
    // ...so that one node alone may now run all ten, and its metrics show the lease.
    let leased = |node: &Server| -> f64 {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "30", &node.metrics_endpoint])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                l.strip_prefix("warden_concurrency_leased_slots ")?
                    .parse()
                    .ok()
            })
            .unwrap()
    };
    let (second, most_leased) = std::thread::scope(|scope| {
        let calls = scope.spawn(|| burst(&[&c], "limited", 12, &span));
        let mut most = 0f64;
        while !calls.is_finished() {
            most = most.max(leased(&c));
            std::thread::sleep(Duration::from_millis(100));
        }
        (calls.join().unwrap(), most)
    });
    check_burst(&second, 10);
    // All ten of the reservation, and nothing else: C runs no other function.
    assert_eq!(most_leased, 10.0);
}

/// A rolling upgrade at the schema's level. A newer build's additive step (a column this
/// build does not know, the track's version past this build's) leaves the schema usable:
/// a node of this build still joins and both serve. A step that a later build declares
/// breaking (its "compatible from" past this build) makes a node of this build refuse to
/// start, naming the schema, rather than misread it.
#[test]
fn a_node_joins_a_schema_a_newer_build_extended_and_refuses_one_it_broke() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    a.create_fixture("before", &[]);
    let mut db = postgres::Client::connect(&cluster.store, postgres::NoTls).unwrap();
    let schema = |db: &mut postgres::Client| -> (i64, i64) {
        let row = db
            .query_one(
                "SELECT version, compatible_from FROM warden_schema WHERE track = 'functions'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let (known, _) = schema(&mut db);
    db.batch_execute(
        "ALTER TABLE versions ADD COLUMN from_a_newer_build TEXT;
         UPDATE warden_schema SET version = version + 1 WHERE track = 'functions'",
    )
    .unwrap();
    assert_eq!(schema(&mut db), (known + 1, 0));

    let b = cluster.node("b", Some(&a), &[]);
    b.create_fixture("after", &[]);
    for (node, function) in [(&a, "after"), (&b, "before"), (&b, "after")] {
        let out = invoke(node, function, &json!({"action": "echo", "n": 1}));
        assert_eq!(out, json!({"action": "echo", "n": 1}));
    }
    // The newer build's column stays as it left it.
    let rows: i64 = db
        .query_one(
            "SELECT count(*) FROM versions WHERE from_a_newer_build IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "both functions' $LATEST rows");

    // A later build declares a break: this build no longer starts on the schema.
    db.batch_execute(
        "UPDATE warden_schema SET version = version + 1, compatible_from = version + 1
         WHERE track = 'functions'",
    )
    .unwrap();
    let dir = cluster.data_dir("c");
    std::fs::copy(a.data_dir.join("credentials"), dir.join("credentials")).unwrap();
    let out = Command::new(warden_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--node-id", "c"])
        .arg("--master-key-file")
        .arg(&cluster.master_key)
        .arg("--data-dir")
        .arg(&dir)
        .env("WARDEN_STORE", &cluster.store)
        .env("WARDEN_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("schema version") && stderr.contains("newer"),
        "{stderr}"
    );
    let password = cluster.password();
    assert!(!stderr.contains(password), "{stderr}");
}

/// The user names of the `CreateUser` events found through `node`, sorted.
fn created_users(node: &Server) -> Vec<String> {
    let mut names: Vec<String> = crate::harness::lookup(node, "EventName", "CreateUser")
        .iter()
        .map(|e| {
            e["requestParameters"]["userName"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort_unstable();
    names
}

/// Runs `warden audit ARGS` with `node`'s client environment and the shared store.
fn audit_cli(cluster: &Cluster, node: &Server, args: &[&str]) -> (bool, String) {
    let out = Command::new(warden_bin())
        .arg("audit")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(node.client_env())
        .env("WARDEN_STORE", &cluster.store)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_nodes_record_one_audit_trail_that_keeps_a_killed_nodes_acknowledged_calls_and_verifies() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let mut b = cluster.node("b", Some(&a), &[]);
    // One trail, one signing key: both nodes publish the cluster's public key.
    let key = |s: &Server| std::fs::read(s.data_dir.join("audit-public-key.json")).unwrap();
    assert_eq!(key(&a), key(&b));
    assert!(!a.data_dir.join("audit.db").exists(), "no per-node trail");

    // Writes through A go on while B acknowledges its own and is killed with `kill -9`.
    let on_a = std::thread::scope(|scope| {
        let on_a = scope.spawn(|| {
            (0..30)
                .map(|i| {
                    let name = format!("a{i:02}");
                    let (status, _, body) = a.iam(&[("Action", "CreateUser"), ("UserName", &name)]);
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    name
                })
                .collect::<Vec<_>>()
        });
        for i in 0..15 {
            let name = format!("b{i:02}");
            let (status, _, body) = b.iam(&[("Action", "CreateUser"), ("UserName", &name)]);
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        }
        b.kill9();
        on_a.join().unwrap()
    });
    let mut expected: Vec<String> = on_a;
    expected.extend((0..15).map(|i| format!("b{i:02}")));
    expected.sort_unstable();
    // Every acknowledged call of both nodes is in the one trail, found through A.
    assert_eq!(created_users(&a), expected);
    // B back: it appends after A's events and finds the same trail.
    b.restart();
    let (status, _, _) = b.iam(&[("Action", "CreateUser"), ("UserName", "after")]);
    assert_eq!(status, 200);
    expected.push("after".to_owned());
    expected.sort_unstable();
    assert_eq!(created_users(&b), expected);
    assert_eq!(created_users(&a), expected);

    // A digest signed through B, exported with A's public key, verifies the whole trail.
    let exported = crate::harness::private_tempdir();
    let dir = exported.path().join("digests");
    let dir_arg = dir.display().to_string();
    let (ok, said) = audit_cli(&cluster, &b, &["digest", "--export", &dir_arg]);
    assert!(ok, "{said}");
    assert_eq!(
        std::fs::read(dir.join("audit-public-key.json")).unwrap(),
        key(&a)
    );
    let (ok, said) = audit_cli(&cluster, &a, &["verify", "--digests", &dir_arg]);
    assert!(ok, "{said}");
    assert!(said.contains("OK: nothing removed"), "{said}");

    // An edit of the shared database behind the nodes' backs is named.
    let mut db = postgres::Client::connect(&cluster.store, postgres::NoTls).unwrap();
    let edited: i64 = db
        .query_one(
            "UPDATE audit_events SET body = replace(convert_from(body, 'UTF8'), '\"b03\"', '\"mallory\"')::BYTEA \
             WHERE seq = (SELECT seq FROM audit_events WHERE event_name = 'CreateUser' \
             AND convert_from(body, 'UTF8') LIKE '%\"b03\"%' ORDER BY seq LIMIT 1) RETURNING seq",
            &[],
        )
        .unwrap()
        .get(0);
    let (ok, said) = audit_cli(&cluster, &a, &["verify", "--digests", &dir_arg]);
    assert!(!ok, "{said}");
    assert!(
        said.contains(&format!("ALTERED: event {edited} was changed")),
        "{said}"
    );
}

#[test]
fn custom_metrics_put_through_two_nodes_merge_into_one_datapoint() {
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute = (now - now % 60).to_string();
    for (node, value) in [(&a, "3"), (&b, "4"), (&a, "10")] {
        node.aws(&[
            "cloudwatch",
            "put-metric-data",
            "--namespace",
            "Shop",
            "--metric-name",
            "Orders",
            "--unit",
            "Count",
            "--value",
            value,
            "--timestamp",
            &minute,
        ]);
    }
    let stats = |node: &Server| {
        node.aws(&[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "Shop",
            "--metric-name",
            "Orders",
            "--start-time",
            &(now - 600).to_string(),
            "--end-time",
            &(now + 600).to_string(),
            "--period",
            "60",
            "--statistics",
            "Sum",
            "SampleCount",
            "Minimum",
            "Maximum",
        ])
    };
    for node in [&a, &b] {
        let got = stats(node);
        let points = got["Datapoints"].as_array().unwrap();
        assert_eq!(points.len(), 1, "{got}");
        let p = &points[0];
        assert_eq!(
            (
                &p["Sum"],
                &p["SampleCount"],
                &p["Minimum"],
                &p["Maximum"],
                &p["Unit"]
            ),
            (
                &json!(17.0),
                &json!(3.0),
                &json!(3.0),
                &json!(10.0),
                &json!("Count")
            ),
            "{got}"
        );
    }
    let listed = b.aws(&["cloudwatch", "list-metrics", "--namespace", "Shop"]);
    assert_eq!(listed["Metrics"][0]["MetricName"], "Orders", "{listed}");
}

#[test]
fn a_live_nodes_id_is_refused_to_another_process_until_it_stops() {
    let cluster = Cluster::new();
    let mut a = cluster.node("a", None, &[]);
    let key = cluster.master_key.display().to_string();
    // Another data directory (another host, say) given the same id.
    let other = cluster.data_dir("a-elsewhere");
    let refused = Command::new(warden_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--node-id", "a"])
        .arg("--data-dir")
        .arg(&other)
        .args(["--master-key-file", &key])
        .env("WARDEN_STORE", &cluster.store)
        .env("WARDEN_LOG", "warn")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("node id `a` is held by another live node"),
        "{stderr}"
    );
    assert!(!stderr.contains(cluster.password()), "{stderr}");
    // A's own directory restarted after kill -9 claims it at once (same holder).
    a.kill9();
    a.restart();
    a.aws(&["sts", "get-caller-identity"]);
    // Stopped, A lets the id go: the other directory may now be node `a`.
    a.stop();
    std::fs::copy(a.data_dir.join("credentials"), other.join("credentials")).unwrap();
    let store = format!("WARDEN_STORE={}", cluster.store);
    let bus = format!("WARDEN_BUS={}", cluster.bus);
    let mut moved = Server::start_via(
        &["env", &store, &bus],
        &other,
        &["--node-id", "a", "--master-key-file", &key],
    );
    moved.aws(&["sts", "get-caller-identity"]);
    moved.stop();
}

#[test]
fn an_alarm_put_through_one_node_notifies_once_through_a_topic_made_on_another() {
    use crate::sns::{verify, visit, Webhook};
    let cluster = Cluster::new();
    let a = cluster.node("a", None, &[]);
    let b = cluster.node("b", Some(&a), &[]);
    let hook = Webhook::start();
    let topic = a.aws(&["sns", "create-topic", "--name", "pager"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending = b.aws(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic,
        "--protocol",
        "http",
        "--notification-endpoint",
        &hook.url,
    ]);
    assert_eq!(
        pending["SubscriptionArn"], "pending confirmation",
        "{pending}"
    );
    let confirmation = hook.wait_for("SubscriptionConfirmation", Duration::from_secs(30));
    let (status, body) = visit(confirmation["SubscribeURL"].as_str().unwrap());
    assert_eq!(status, 200, "{body}");
    for node in [&a, &b] {
        let subs = node.aws(&["sns", "list-subscriptions-by-topic", "--topic-arn", &topic]);
        let subs = subs["Subscriptions"].as_array().unwrap().clone();
        assert_eq!(subs.len(), 1, "{subs:?}");
        assert!(
            subs[0]["SubscriptionArn"]
                .as_str()
                .unwrap()
                .starts_with(&topic),
            "{subs:?}"
        );
    }
    // Every node signs with the cluster's one key: both serve the same certificate.
    let cert_url = confirmation["SigningCertURL"].as_str().unwrap();
    let cert_path = cert_url.splitn(4, '/').nth(3).unwrap();
    let certs: Vec<String> = [&a, &b]
        .into_iter()
        .map(|node| {
            let (status, body) = visit(&format!("{}/{cert_path}", node.endpoint));
            assert_eq!(status, 200, "{body}");
            body
        })
        .collect();
    assert!(certs[0].contains("BEGIN CERTIFICATE"), "{}", certs[0]);
    assert_eq!(certs[0], certs[1]);

    // The change of state travels the bus's work queue, sealed: a watcher of its subjects
    // sees one message, and not the alarm's name in it.
    let account = a.aws(&["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let watcher = BusWatcher::start(&cluster.bus, "warden.alarms.>");

    // The alarm is put through B, its datapoint through A; whichever node evaluates the
    // minute queues its change, whichever node takes it publishes, and whichever delivers,
    // the receiver hears it once.
    b.aws(&[
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        "failures",
        "--namespace",
        "Shop",
        "--metric-name",
        "Failures",
        "--statistic",
        "Sum",
        "--period",
        "60",
        "--evaluation-periods",
        "1",
        "--threshold",
        "0",
        "--comparison-operator",
        "GreaterThanThreshold",
        "--alarm-actions",
        &topic,
    ]);
    a.aws(&[
        "cloudwatch",
        "put-metric-data",
        "--namespace",
        "Shop",
        "--metric-name",
        "Failures",
        "--value",
        "1",
    ]);
    let notification = hook.wait_for("Notification", Duration::from_secs(150));
    let message: Value = serde_json::from_str(notification["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["AlarmName"], "failures", "{message}");
    assert_eq!(message["NewStateValue"], "ALARM", "{message}");
    verify(&a, &[confirmation, notification]);
    for node in [&a, &b] {
        let alarms = node.aws(&["cloudwatch", "describe-alarms", "--alarm-names", "failures"]);
        assert_eq!(alarms["MetricAlarms"][0]["StateValue"], "ALARM", "{alarms}");
        // The node that ran the action records it just after publishing.
        let acted = || {
            let history = node.aws(&[
                "cloudwatch",
                "describe-alarm-history",
                "--alarm-name",
                "failures",
            ]);
            history["AlarmHistoryItems"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["HistorySummary"] == format!("Successfully executed action {topic}"))
                .count()
        };
        wait_for("the action in the history", Duration::from_secs(10), || {
            acted() > 0
        });
        assert_eq!(acted(), 1);
    }
    let seen = watcher.messages();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, format!("warden.alarms.{account}.ALARM"));
    assert!(
        !seen[0].1.windows(8).any(|w| w == b"failures"),
        "the notification travels sealed"
    );
    // A notification forged by someone who may publish on the bus but lacks the cluster's
    // master key: stored by the stream, refused by the node that takes it, never acted on.
    let forged = json!({
        "format": 1,
        "id": "forged",
        "account": account,
        "region": "us-east-1",
        "alarm": {"name": "failures", "alarm_actions": [topic], "state": "Alarm"},
    });
    watcher.publish_to_stream(
        &format!("warden.alarms.{account}.ALARM"),
        forged.to_string().into_bytes(),
    );
    // The other node neither evaluated the minute again nor delivered the message again:
    // give it the time to have done so (its evaluation would follow within seconds).
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(hook.count("Notification"), 1);
    // Both the real notification and the forged one left the work queue.
    assert_eq!(watcher.stream_messages("WARDEN_ALARMS"), 0);
}

/// Messages seen on the bus: (subject, payload).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A plain NATS client of the test's own, beside the nodes: it watches subjects and
/// publishes as someone with access to the bus would.
struct BusWatcher {
    runtime: tokio::runtime::Runtime,
    client: async_nats::Client,
    seen: Seen,
}

impl BusWatcher {
    fn start(url: &str, subject: &str) -> BusWatcher {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = Seen::default();
        let client = runtime.block_on(async {
            let client = async_nats::connect(url).await.unwrap();
            let mut subscription = client.subscribe(subject.to_owned()).await.unwrap();
            client.flush().await.unwrap();
            let seen = std::sync::Arc::clone(&seen);
            tokio::spawn(async move {
                while let Some(m) = std::future::poll_fn(|cx| {
                    futures_core::Stream::poll_next(std::pin::Pin::new(&mut subscription), cx)
                })
                .await
                {
                    seen.lock()
                        .unwrap()
                        .push((m.subject.to_string(), m.payload.to_vec()));
                }
            });
            client
        });
        BusWatcher {
            runtime,
            client,
            seen,
        }
    }

    /// What was published on the watched subjects so far: (subject, payload).
    fn messages(&self) -> Vec<(String, Vec<u8>)> {
        self.seen.lock().unwrap().clone()
    }

    /// Publishes `payload` on `subject` and waits for the stream that captures it.
    fn publish_to_stream(&self, subject: &str, payload: Vec<u8>) {
        self.runtime.block_on(async {
            let js = async_nats::jetstream::new(self.client.clone());
            js.publish(subject.to_owned(), payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        });
    }

    /// How many messages the stream `name` holds.
    fn stream_messages(&self, name: &str) -> u64 {
        self.runtime.block_on(async {
            let js = async_nats::jetstream::new(self.client.clone());
            let mut stream = js.get_stream(name).await.unwrap();
            stream.info().await.unwrap().state.messages
        })
    }
}
