//! KMS through the real AWS CLI and boto3: keys, aliases, encryption and its errors, key
//! policies as KMS decides them, rotation, and environments sealed at rest.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{
    aws_as, error_code, fixture_bin, unb64, user_with_policy, zip_dir, Server, EXEC_ROLE,
};

fn create_key(s: &Server) -> String {
    let k = s.aws(&["kms", "create-key", "--description", "test key"]);
    let meta = &k["KeyMetadata"];
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["KeyManager"], "CUSTOMER");
    assert_eq!(meta["KeySpec"], "SYMMETRIC_DEFAULT");
    meta["Arn"].as_str().unwrap().to_owned()
}

/// `aws kms encrypt` of `text` under `key`, with `context` (`k=v,...`), returning the blob.
fn encrypt(s: &Server, key: &str, text: &str, context: Option<&str>) -> String {
    // The AWS CLI v1 sends a blob argument's text as its bytes.
    let mut args = vec!["kms", "encrypt", "--key-id", key, "--plaintext", text];
    if let Some(c) = context {
        args.extend(["--encryption-context", c]);
    }
    let out = s.aws(&args);
    if key.starts_with("arn:") {
        assert_eq!(out["KeyId"], key);
    }
    out["CiphertextBlob"].as_str().unwrap().to_owned()
}

#[test]
fn the_aws_cli_encrypts_decrypts_and_gets_kms_errors() {
    let s = Server::start();
    let key = create_key(&s);
    let blob = encrypt(&s, &key, "attack at dawn", Some("app=orders"));
    // No KeyId: the ciphertext names its key. (The AWS CLI v1 takes the blob as base64
    // text through fileb://, so it is written to a file first.)
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, unb64(&blob)).unwrap();
    let blob_arg = format!("fileb://{}", file.display());
    let out = s.aws(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob_arg,
        "--encryption-context",
        "app=orders",
    ]);
    assert_eq!(unb64(out["Plaintext"].as_str().unwrap()), b"attack at dawn");
    assert_eq!(out["KeyId"], key);
    assert_eq!(out["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");

    // Another context, a changed byte: InvalidCiphertextException.
    let e = s.aws_err(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob_arg,
        "--encryption-context",
        "app=billing",
    ]);
    assert_eq!(error_code(&e), "InvalidCiphertextException", "{e}");
    let mut tampered = unb64(&blob);
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(&file, &tampered).unwrap();
    let e = s.aws_err(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob_arg,
        "--encryption-context",
        "app=orders",
    ]);
    assert_eq!(error_code(&e), "InvalidCiphertextException", "{e}");
    std::fs::write(&file, unb64(&blob)).unwrap();

    // A wrong KeyId: IncorrectKeyException.
    let other = create_key(&s);
    let e = s.aws_err(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob_arg,
        "--encryption-context",
        "app=orders",
        "--key-id",
        &other,
    ]);
    assert_eq!(error_code(&e), "IncorrectKeyException", "{e}");

    // Plaintext limits: 4096 bytes at most.
    let big = "x".repeat(4097);
    let e = s.aws_err(&["kms", "encrypt", "--key-id", &key, "--plaintext", &big]);
    assert_eq!(error_code(&e), "ValidationException", "{e}");

    // Disabled: DisabledException; pending deletion: KMSInvalidStateException.
    s.aws(&["kms", "disable-key", "--key-id", &key]);
    let e = s.aws_err(&["kms", "encrypt", "--key-id", &key, "--plaintext", "x"]);
    assert_eq!(error_code(&e), "DisabledException", "{e}");
    s.aws(&["kms", "enable-key", "--key-id", &key]);
    let e = s.aws_err(&[
        "kms",
        "schedule-key-deletion",
        "--key-id",
        &key,
        "--pending-window-in-days",
        "6",
    ]);
    assert_eq!(error_code(&e), "ValidationException", "{e}");
    let d = s.aws(&[
        "kms",
        "schedule-key-deletion",
        "--key-id",
        &key,
        "--pending-window-in-days",
        "7",
    ]);
    assert_eq!(d["KeyState"], "PendingDeletion");
    assert_eq!(d["PendingWindowInDays"], 7);
    let e = s.aws_err(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob_arg,
        "--encryption-context",
        "app=orders",
    ]);
    assert_eq!(error_code(&e), "KMSInvalidStateException", "{e}");
    let meta = &s.aws(&["kms", "describe-key", "--key-id", &key])["KeyMetadata"];
    assert_eq!(meta["KeyState"], "PendingDeletion");
    assert!(meta["DeletionDate"].is_number() || meta["DeletionDate"].is_string());
    s.aws(&["kms", "cancel-key-deletion", "--key-id", &key]);
    let meta = &s.aws(&["kms", "describe-key", "--key-id", &key])["KeyMetadata"];
    assert_eq!(
        meta["KeyState"], "Disabled",
        "a cancelled deletion leaves the key disabled"
    );

    // Unknown keys and operations.
    let e = s.aws_err(&[
        "kms",
        "describe-key",
        "--key-id",
        "00000000-0000-0000-0000-000000000000",
    ]);
    assert_eq!(error_code(&e), "NotFoundException", "{e}");
    let e = s.aws_err(&["kms", "list-grants", "--key-id", &key]);
    assert_eq!(error_code(&e), "UnknownOperationException", "{e}");
}

#[test]
fn aliases_rotation_policies_and_tags_through_the_aws_cli() {
    let s = Server::start();
    let key = create_key(&s);
    s.aws(&[
        "kms",
        "create-alias",
        "--alias-name",
        "alias/orders",
        "--target-key-id",
        &key,
    ]);
    let e = s.aws_err(&[
        "kms",
        "create-alias",
        "--alias-name",
        "alias/orders",
        "--target-key-id",
        &key,
    ]);
    assert_eq!(error_code(&e), "AlreadyExistsException", "{e}");
    let e = s.aws_err(&[
        "kms",
        "create-alias",
        "--alias-name",
        "alias/aws/mine",
        "--target-key-id",
        &key,
    ]);
    assert_eq!(error_code(&e), "InvalidAliasNameException", "{e}");
    // Encrypt by alias; the AWS managed aws/lambda key is listed.
    let blob = encrypt(&s, "alias/orders", "hi", None);
    assert!(!blob.is_empty());
    let aliases = s.aws(&["kms", "list-aliases"]);
    let names: Vec<&str> = aliases["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AliasName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"alias/orders") && names.contains(&"alias/aws/lambda"),
        "{names:?}"
    );
    let lambda_key =
        &s.aws(&["kms", "describe-key", "--key-id", "alias/aws/lambda"])["KeyMetadata"];
    assert_eq!(lambda_key["KeyManager"], "AWS");
    // The AWS managed key cannot be used directly, nor changed.
    let e = s.aws_err(&[
        "kms",
        "encrypt",
        "--key-id",
        "alias/aws/lambda",
        "--plaintext",
        "x",
    ]);
    assert_eq!(error_code(&e), "AccessDeniedException", "{e}");
    let e = s.aws_err(&["kms", "disable-key", "--key-id", "alias/aws/lambda"]);
    assert_eq!(error_code(&e), "AccessDeniedException", "{e}");

    // Rotation: old ciphertexts still decrypt after an on-demand rotation.
    let before = encrypt(&s, &key, "before", None);
    s.aws(&[
        "kms",
        "enable-key-rotation",
        "--key-id",
        &key,
        "--rotation-period-in-days",
        "90",
    ]);
    let status = s.aws(&["kms", "get-key-rotation-status", "--key-id", &key]);
    assert_eq!(status["KeyRotationEnabled"], true);
    assert_eq!(status["RotationPeriodInDays"], 90);
    s.aws(&["kms", "rotate-key-on-demand", "--key-id", &key]);
    let rotations = s.aws(&["kms", "list-key-rotations", "--key-id", &key]);
    assert_eq!(rotations["Rotations"][0]["RotationType"], "ON_DEMAND");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, unb64(&before)).unwrap();
    let out = s.aws(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &format!("fileb://{}", file.display()),
    ]);
    assert_eq!(unb64(out["Plaintext"].as_str().unwrap()), b"before");

    // Policies: one, named default, delegating to IAM; a policy that would lock the
    // caller out is refused unless the safety check is bypassed.
    let names = s.aws(&["kms", "list-key-policies", "--key-id", &key]);
    assert_eq!(names["PolicyNames"], json!(["default"]));
    let policy: Value = serde_json::from_str(
        s.aws(&[
            "kms",
            "get-key-policy",
            "--key-id",
            &key,
            "--policy-name",
            "default",
        ])["Policy"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        policy["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::123456789012:root"
    );
    let lockout = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:user/nobody"}, "Action": "kms:*", "Resource": "*"}]});
    let e = s.aws_err(&[
        "kms",
        "put-key-policy",
        "--key-id",
        &key,
        "--policy-name",
        "default",
        "--policy",
        &lockout.to_string(),
    ]);
    assert_eq!(error_code(&e), "MalformedPolicyDocumentException", "{e}");

    // Tags.
    s.aws(&[
        "kms",
        "tag-resource",
        "--key-id",
        &key,
        "--tags",
        "TagKey=team,TagValue=a",
    ]);
    let tags = s.aws(&["kms", "list-resource-tags", "--key-id", &key]);
    assert_eq!(tags["Tags"], json!([{"TagKey": "team", "TagValue": "a"}]));
    s.aws(&[
        "kms",
        "untag-resource",
        "--key-id",
        &key,
        "--tag-keys",
        "team",
    ]);
    let tags = s.aws(&["kms", "list-resource-tags", "--key-id", &key]);
    assert_eq!(tags["Tags"], json!([]));
    let random = s.aws(&["kms", "generate-random", "--number-of-bytes", "32"]);
    assert_eq!(unb64(random["Plaintext"].as_str().unwrap()).len(), 32);
}

#[test]
fn key_policies_decide_with_identity_policies_as_kms_does() {
    let s = Server::start();
    // Alice may use every key by her IAM policy.
    let alice = user_with_policy(
        &s,
        "alice",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}),
    );
    // Bob has no IAM policy at all.
    let bob = user_with_policy(
        &s,
        "bob",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:GetAccountSettings", "Resource": "*"}]}),
    );
    let delegating = create_key(&s);
    // A key whose policy names the admin (to manage it) and Bob for Encrypt only, and does
    // not delegate to the account.
    let admin_arn = s.aws(&["sts", "get-caller-identity"])["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_only = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": admin_arn},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "bob", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/bob"},
         "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:app": "orders"}}}]});
    let restricted = s.aws(&["kms", "create-key", "--policy", &bob_only.to_string()])
        ["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let plaintext = "x";
    let try_encrypt = |who, key: &str, context: &str| {
        aws_as(
            &s,
            who,
            &[
                "kms",
                "encrypt",
                "--key-id",
                key,
                "--plaintext",
                plaintext,
                "--encryption-context",
                context,
            ],
        )
    };
    // Delegation: Alice's identity policy suffices, Bob's absence of one does not.
    assert!(try_encrypt(&alice, &delegating, "app=orders")
        .status
        .success());
    let out = try_encrypt(&bob, &delegating, "app=orders");
    assert!(!out.status.success());
    assert_eq!(
        error_code(&String::from_utf8_lossy(&out.stderr)),
        "AccessDeniedException"
    );
    // No delegation: Alice's kms:* grants nothing; Bob is allowed by the key policy alone,
    // only with the right encryption context.
    let out = try_encrypt(&alice, &restricted, "app=orders");
    assert!(
        !out.status.success(),
        "an identity policy alone must not grant use of the key"
    );
    assert!(try_encrypt(&bob, &restricted, "app=orders")
        .status
        .success());
    let out = try_encrypt(&bob, &restricted, "app=billing");
    assert!(!out.status.success());
    assert_eq!(
        error_code(&String::from_utf8_lossy(&out.stderr)),
        "AccessDeniedException"
    );
    // Bob may not describe it (the key policy gives him Encrypt only).
    let out = aws_as(&s, &bob, &["kms", "describe-key", "--key-id", &restricted]);
    assert!(!out.status.success());
}

#[test]
fn boto3_and_the_aws_encryption_sdk_work_unchanged() {
    let s = Server::start();
    let key = create_key(&s);
    let out = s.python(&format!(
        r#"
import base64, os, boto3, botocore
from botocore.config import Config
kms = boto3.client("kms", endpoint_url=os.environ["ENDPOINT"], config=Config(retries={{"total_max_attempts": 1}}))
KEY = {key:?}
r = kms.encrypt(KeyId=KEY, Plaintext=b"hello", EncryptionContext={{"a": "1"}})
assert r["KeyId"] == KEY
d = kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={{"a": "1"}})
assert d["Plaintext"] == b"hello" and d["KeyId"] == KEY
dk = kms.generate_data_key(KeyId=KEY, KeySpec="AES_256")
assert len(dk["Plaintext"]) == 32
assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
nk = kms.generate_data_key_without_plaintext(KeyId=KEY, NumberOfBytes=16)
assert "Plaintext" not in nk and len(kms.decrypt(CiphertextBlob=nk["CiphertextBlob"])["Plaintext"]) == 16
other = kms.create_key()["KeyMetadata"]["KeyId"]
re = kms.re_encrypt(CiphertextBlob=r["CiphertextBlob"], SourceEncryptionContext={{"a": "1"}}, DestinationKeyId=other)
assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"])["Plaintext"] == b"hello"
for code, call in [
    ("InvalidCiphertextException", lambda: kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={{"a": "2"}})),
    ("IncorrectKeyException", lambda: kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={{"a": "1"}}, KeyId=other)),
    ("NotFoundException", lambda: kms.describe_key(KeyId="alias/missing")),
    ("ValidationException", lambda: kms.encrypt(KeyId=KEY, Plaintext=b"")),
    ("UnsupportedOperationException", lambda: kms.encrypt(KeyId=KEY, Plaintext=b"x", GrantTokens=["t"])),
    ("DryRunOperationException", lambda: kms.encrypt(KeyId=KEY, Plaintext=b"x", DryRun=True)),
]:
    try:
        call()
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == code, (code, e.response["Error"])
    else:
        raise AssertionError(code + " not raised")
keys = kms.get_paginator("list_keys").paginate(PaginationConfig={{"PageSize": 1}})
ids = [k["KeyId"] for page in keys for k in page["Keys"]]
assert len(ids) == len(set(ids)) >= 4, ids

# The SDK's own KMS clients find Warden through the standard endpoint variable.
os.environ["AWS_ENDPOINT_URL_KMS"] = os.environ["ENDPOINT"]
import aws_encryption_sdk
from aws_encryption_sdk import CommitmentPolicy
client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[KEY])
ct, header = client.encrypt(source=b"envelope secret", key_provider=provider, encryption_context={{"purpose": "test"}})
assert b"envelope secret" not in ct
pt, header2 = client.decrypt(source=ct, key_provider=provider)
assert pt == b"envelope secret" and header2.encryption_context["purpose"] == "test"
print("ok")
"#
    ));
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

#[test]
fn code_and_environments_are_sealed_at_rest_and_a_disabled_key_stops_cold_starts() {
    let mut s = Server::start();
    let key = create_key(&s);
    let marker = "env-marker-7c1d93";
    let code_marker = "code-marker-4b2e08";
    // The fixture runtime, with a file whose text is the code marker.
    let src = tempfile::tempdir().unwrap();
    std::fs::copy(fixture_bin("fixture"), src.path().join("bootstrap")).unwrap();
    std::fs::write(src.path().join("marker.txt"), code_marker).unwrap();
    let zip = zip_dir(src.path());
    s.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "sealed",
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &format!("fileb://{}", zip.display()),
        "--environment",
        &format!("Variables={{SECRET={marker}}}"),
        "--kms-key-arn",
        &key,
    ]);
    let cfg = s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "sealed",
    ]);
    assert_eq!(cfg["KMSKeyArn"], key);
    assert_eq!(cfg["Environment"]["Variables"]["SECRET"], marker);
    // The function sees its variable.
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.json");
    let out = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "sealed",
        "--payload",
        r#"{"action":"env"}"#,
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out["StatusCode"], 200);
    let seen: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(seen["SECRET"], marker);
    // A caller who may read the function but not use the key sees Environment.Error.
    let reader = user_with_policy(
        &s,
        "reader",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "lambda:GetFunctionConfiguration", "Resource": "*"}]}),
    );
    let shown = aws_as(
        &s,
        &reader,
        &[
            "lambda",
            "get-function-configuration",
            "--function-name",
            "sealed",
        ],
    );
    assert!(shown.status.success());
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(shown["Environment"]["Variables"].is_null(), "{shown}");
    assert_eq!(
        shown["Environment"]["Error"]["ErrorCode"],
        "AccessDeniedException"
    );
    // Disabled key: the next cold start fails with Lambda's error, and the configuration
    // shows why.
    s.aws(&["kms", "disable-key", "--key-id", &key]);
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "sealed",
        "--timeout",
        "7",
    ]);
    let e = s.aws_err(&["lambda", "invoke", "--function-name", "sealed", "/dev/null"]);
    assert_eq!(error_code(&e), "KMSDisabledException", "{e}");
    let cfg = s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "sealed",
    ]);
    assert_eq!(
        cfg["Environment"]["Error"]["ErrorCode"],
        "KMSDisabledException"
    );
    s.aws(&["kms", "enable-key", "--key-id", &key]);
    // A caller who may not use a customer key cannot set it.
    let deployer = user_with_policy(
        &s,
        "deployer",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["lambda:*", "iam:PassRole"], "Resource": "*"},
            {"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"}]}),
    );
    let out = aws_as(
        &s,
        &deployer,
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "sealed",
            "--kms-key-arn",
            &key,
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        error_code(&String::from_utf8_lossy(&out.stderr)),
        "KMSAccessDeniedException"
    );

    // At rest: stop the server and look at every byte of the data directory (SQLite
    // files, their WAL, the sealed zips, everything).
    s.stop();
    for entry in walk(&s.data_dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        for m in [marker, code_marker] {
            assert!(
                !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                "{} holds {m} in the clear",
                entry.display()
            );
        }
    }
    // A reboot empties the memory-backed code directory: the code comes back from its
    // sealed zip at the next cold start.
    for entry in std::fs::read_dir(&s.code_dir).unwrap().flatten() {
        std::fs::remove_dir_all(entry.path()).unwrap();
    }
    s.restart();
    let out = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "sealed",
        "--payload",
        r#"{"action":"env"}"#,
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out["StatusCode"], 200, "{out}");
    let seen: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(seen["SECRET"], marker);
    let extracted = walk(&s.code_dir)
        .into_iter()
        .any(|p| p.ends_with("marker.txt") && std::fs::read_to_string(&p).unwrap() == code_marker);
    assert!(extracted, "the code was extracted again");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            out.extend(walk(&path));
        } else if ty.is_file() {
            out.push(path);
        }
    }
    out
}

/// `warden serve` on `data` with `args`, expected to fail: its stderr.
fn serve_fails(data: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(crate::harness::warden_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--url-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--account-id",
            "123456789012",
        ])
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("WARDEN_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "warden serve started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn admin(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(crate::harness::warden_bin())
        .arg("admin")
        .args(args)
        .envs(envs.iter().copied())
        .env("WARDEN_LOG", "warn")
        .output()
        .unwrap()
}

fn write_key(path: &std::path::Path, byte: u8) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, [byte; 32]).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_wrong_master_key_is_refused_and_rotation_reseals_everything_even_after_a_crash() {
    let temp = crate::harness::private_tempdir();
    let data = temp.path().join("state");
    let mut s = Server::start_in(&data, &[]);
    let key = create_key(&s);
    let blob = encrypt(&s, &key, "kept across rotations", None);
    s.create_fixture("rot", &["--environment", "Variables={SECRET=s1}"]);
    s.stop();

    // A wrong master key: refused at once, naming both fingerprints, nothing changed.
    let master = data.join("master.key");
    let original = std::fs::read(&master).unwrap();
    let kms_db = std::fs::read(data.join("kms.db")).unwrap();
    write_key(&master, 7);
    let e = serve_fails(&data, &[]);
    assert!(
        e.contains("is not the one that sealed this data directory"),
        "{e}"
    );
    assert_eq!(std::fs::read(data.join("kms.db")).unwrap(), kms_db);
    std::fs::write(&master, &original).unwrap();

    // A rotation interrupted right after writing the new key: the server refuses to
    // start; running the command again finishes it.
    let pending = data.join("master.key.new");
    write_key(&pending, 9);
    let e = serve_fails(&data, &[]);
    assert!(e.contains("rotate-master-key"), "{e}");
    let out = admin(
        &["rotate-master-key", "--data-dir", data.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("master key rotated"));
    assert!(!pending.exists());
    assert_eq!(
        std::fs::read(&master).unwrap(),
        [9; 32],
        "the pending key was installed"
    );
    // And once more, from a clean state: a new random key.
    let out = admin(
        &["rotate-master-key", "--data-dir", data.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(std::fs::read(&master).unwrap(), [9; 32]);

    // Everything sealed before still opens: the admin's secret (the CLI signs with it),
    // the KMS key's material, the function's environment.
    s.restart();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, unb64(&blob)).unwrap();
    let out = s.aws(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &format!("fileb://{}", file.display()),
    ]);
    assert_eq!(
        unb64(out["Plaintext"].as_str().unwrap()),
        b"kept across rotations"
    );
    let cfg = s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "rot",
    ]);
    assert_eq!(cfg["Environment"]["Variables"]["SECRET"], "s1");
}

#[test]
fn a_passphrase_master_key_works_and_a_wrong_one_is_refused() {
    let temp = crate::harness::private_tempdir();
    let data = temp.path().join("state");
    let args = ["--master-key-passphrase-env", "WARDEN_TEST_PASSPHRASE"];
    let good = ["env", "WARDEN_TEST_PASSPHRASE=correct horse battery staple"];
    let mut s = Server::start_via(&good, &data, &args);
    let key = create_key(&s);
    s.stop();
    assert!(
        !data.join("master.key").exists(),
        "no key file with a passphrase"
    );
    assert!(data.join("master.salt").exists());
    let out = std::process::Command::new("env")
        .arg("WARDEN_TEST_PASSPHRASE=wrong horse")
        .arg(crate::harness::warden_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(args)
        .env("WARDEN_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("is not the one that sealed this data directory"),
        "{e}"
    );
    let s = Server::start_via(&good, &data, &args);
    assert_eq!(
        s.aws(&["kms", "describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "Enabled"
    );
}

#[test]
fn a_kill_9_after_an_acknowledged_key_rotation_loses_nothing() {
    let mut s = Server::start();
    let key = create_key(&s);
    let before = encrypt(&s, &key, "before", None);
    s.aws(&["kms", "rotate-key-on-demand", "--key-id", &key]);
    let after = encrypt(&s, &key, "after", None);
    s.aws(&["kms", "disable-key", "--key-id", &key]);
    s.kill9();
    s.restart();
    // The acknowledged disable survived; so did both materials.
    let meta = &s.aws(&["kms", "describe-key", "--key-id", &key])["KeyMetadata"];
    assert_eq!(meta["KeyState"], "Disabled");
    s.aws(&["kms", "enable-key", "--key-id", &key]);
    let rotations = s.aws(&["kms", "list-key-rotations", "--key-id", &key]);
    assert_eq!(rotations["Rotations"].as_array().unwrap().len(), 1);
    let dir = tempfile::tempdir().unwrap();
    for (blob, text) in [(before, "before"), (after, "after")] {
        let file = dir.path().join("blob");
        std::fs::write(&file, unb64(&blob)).unwrap();
        let out = s.aws(&[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            &format!("fileb://{}", file.display()),
        ]);
        assert_eq!(unb64(out["Plaintext"].as_str().unwrap()), text.as_bytes());
    }
}

#[test]
fn plain_secrets_in_environments_are_flagged_and_redacted_from_logs() {
    let s = Server::start();
    let secret = "hunter2-Pa55word";
    let body = json!({
        "FunctionName": "leaky", "Runtime": "provided.al2023", "Handler": "bootstrap",
        "Role": EXEC_ROLE,
        "Code": { "ZipFile": crate::harness::b64(&std::fs::read(crate::harness::fixture_zip()).unwrap()) },
        "Environment": { "Variables": { "DB_PASSWORD": secret, "TABLE": "orders" } },
    });
    let (status, headers, response) = s.http(
        "POST",
        "/2015-03-31/functions",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&response));
    let warning = headers
        .iter()
        .find(|(k, _)| k == "warning")
        .map(|(_, v)| v.clone())
        .expect("a Warning header");
    assert!(warning.contains("DB_PASSWORD"), "{warning}");
    assert!(!warning.contains("TABLE"), "{warning}");
    assert!(
        !warning.contains(secret),
        "the value is never shown: {warning}"
    );
    // The function prints its secret: the stored log line has it redacted.
    let payload = json!({"action": "print", "text": format!("connecting with {secret} to orders")});
    let (status, _, _) = s.http(
        "POST",
        "/2015-03-31/functions/leaky/invocations",
        &[],
        payload.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let lines = s.wait_logs("leaky", Duration::from_secs(10), |l| {
        l.iter().any(|l| l.starts_with("REPORT"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.contains("connecting with **** to orders")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains(secret)), "{lines:?}");
    // A configuration without such values clears the warning.
    let (status, headers, _) = s.http(
        "PUT",
        "/2015-03-31/functions/leaky/configuration",
        &[("content-type", "application/json")],
        json!({"Environment": {"Variables": {"TABLE": "orders"}}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200);
    assert!(headers.iter().all(|(k, _)| k != "warning"), "{headers:?}");
}
