//! Code signing end to end with the real AWS CLI and boto3: a signing profile put with
//! `aws signer`, a package signed with `warden sign`, code signing configs under `Enforce`
//! and `Warn`, and every refusal Lambda documents: a changed byte
//! (`InvalidCodeSignatureException` whatever the policy), and an unsigned package, another
//! profile's, a revoked signature or profile, an expired signature
//! (`CodeVerificationFailedException` under `Enforce`, deployed under `Warn`); layers;
//! callers without permission; `--require-code-signing`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::harness::*;

const APP: &str = "def handler(event, context):\n    return {'signed': True}\n";

fn package(text: &str) -> PathBuf {
    python_zip(&[("app.py", text)])
}

pub(crate) fn fileb(p: &Path) -> String {
    format!("fileb://{}", p.display())
}

/// Puts a profile and returns its version ARN.
pub(crate) fn put_profile(s: &Server, name: &str, validity: Option<&str>) -> String {
    let mut args = vec![
        "signer",
        "put-signing-profile",
        "--profile-name",
        name,
        "--platform-id",
        "AWSLambda-SHA384-ECDSA",
    ];
    if let Some(v) = validity {
        args.extend(["--signature-validity-period", v]);
    }
    let out = s.aws(&args);
    assert!(out["profileVersion"].as_str().unwrap().len() == 10, "{out}");
    out["profileVersionArn"].as_str().unwrap().to_owned()
}

/// Signs `zip` with `warden sign` and returns the signed copy.
pub(crate) fn sign(s: &Server, profile: &str, zip: &Path) -> PathBuf {
    let out_path = zip.with_extension("signed.zip");
    let out = s.warden(&[
        "sign",
        "--profile",
        profile,
        zip.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "warden sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["JobId"].is_string(), "{report}");
    out_path
}

pub(crate) fn config(s: &Server, allowed: &[&str], policy: &str) -> String {
    let publishers = json!({ "SigningProfileVersionArns": allowed }).to_string();
    let policies = json!({ "UntrustedArtifactOnDeployment": policy }).to_string();
    let out = s.aws(&[
        "lambda",
        "create-code-signing-config",
        "--allowed-publishers",
        &publishers,
        "--code-signing-policies",
        &policies,
    ]);
    assert_eq!(
        out["CodeSigningConfig"]["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"],
        policy
    );
    out["CodeSigningConfig"]["CodeSigningConfigArn"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn create(s: &Server, name: &str, zip: &Path, csc: Option<&str>) -> std::process::Output {
    let zip = fileb(zip);
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
        EXEC_ROLE,
        "--zip-file",
        &zip,
    ];
    if let Some(c) = csc {
        args.extend(["--code-signing-config-arn", c]);
    }
    s.aws_raw(&args)
}

fn invoke(s: &Server, name: &str) -> Value {
    let (status, _, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[],
        b"{}",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

pub(crate) fn refused(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    error_code(&stderr).to_owned()
}

pub(crate) fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Flips one byte inside the first entry's data, leaving the signature in place.
fn tamper(signed: &Path) -> PathBuf {
    let mut bytes = std::fs::read(signed).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == b"app.py")
        .expect("the entry name")
        + 6;
    // Past the local header's name: the stored or deflated data.
    bytes[at + 2] ^= 0x20;
    let out = signed.with_extension("tampered.zip");
    std::fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn signed_code_deploys_and_everything_else_is_refused_under_enforce() {
    let s = Server::start();
    let arn = put_profile(&s, "app_signer", None);
    let other = put_profile(&s, "other_signer", None);
    let got = s.aws(&[
        "signer",
        "get-signing-profile",
        "--profile-name",
        "app_signer",
    ]);
    assert_eq!(got["status"], "Active");
    assert_eq!(got["platformId"], "AWSLambda-SHA384-ECDSA");
    assert_eq!(got["profileVersionArn"], arn.as_str());

    let zip = package(APP);
    let signed = sign(&s, "app_signer", &zip);
    let enforce = config(&s, &[&arn], "Enforce");
    ok(&create(&s, "signed", &signed, Some(&enforce)));
    let seen = s.aws(&[
        "lambda",
        "get-function-code-signing-config",
        "--function-name",
        "signed",
    ]);
    assert_eq!(seen["CodeSigningConfigArn"], enforce.as_str());
    let listed = s.aws(&[
        "lambda",
        "list-functions-by-code-signing-config",
        "--code-signing-config-arn",
        &enforce,
    ]);
    assert_eq!(listed["FunctionArns"].as_array().unwrap().len(), 1);
    assert_eq!(invoke(&s, "signed"), json!({"signed": true}));

    // A changed byte: integrity.
    let bent = tamper(&signed);
    assert_eq!(
        refused(&create(&s, "bent", &bent, Some(&enforce))),
        "InvalidCodeSignatureException"
    );
    // Unsigned, and another profile's signature.
    assert_eq!(
        refused(&create(&s, "unsigned", &zip, Some(&enforce))),
        "CodeVerificationFailedException"
    );
    let theirs = sign(&s, "other_signer", &package(APP));
    assert_eq!(
        refused(&create(&s, "theirs", &theirs, Some(&enforce))),
        "CodeVerificationFailedException"
    );
    assert_ne!(other, arn);
    // Updating the deployed function's code is checked too.
    let unsigned = fileb(&zip);
    let out = s.aws_raw(&[
        "lambda",
        "update-function-code",
        "--function-name",
        "signed",
        "--zip-file",
        &unsigned,
    ]);
    assert_eq!(refused(&out), "CodeVerificationFailedException");
    // Signing an already signed, empty or malformed zip fails clearly.
    let twice = s.warden(&["sign", "--profile", "app_signer", signed.to_str().unwrap()]);
    assert!(!twice.status.success());
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("the zip is already signed"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
    let junk = zip.with_extension("junk");
    std::fs::write(&junk, b"this is not a zip archive at all").unwrap();
    let bad = s.warden(&["sign", "--profile", "app_signer", junk.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the zip is malformed"));

    // Revoking the profile refuses its signatures from then on, but the code already
    // deployed keeps running.
    let version = arn.rsplit('/').next().unwrap();
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    s.aws(&[
        "signer",
        "revoke-signing-profile",
        "--profile-name",
        "app_signer",
        "--profile-version",
        version,
        "--reason",
        "key compromised",
        "--effective-time",
        &past.to_string(),
    ]);
    let again = fileb(&signed);
    let out = s.aws_raw(&[
        "lambda",
        "update-function-code",
        "--function-name",
        "signed",
        "--zip-file",
        &again,
    ]);
    assert_eq!(refused(&out), "CodeVerificationFailedException");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("the signing profile `app_signer` was revoked"));
    assert_eq!(invoke(&s, "signed"), json!({"signed": true}));
}

#[test]
fn warn_deploys_untrusted_code_but_never_a_changed_byte() {
    let s = Server::start();
    let arn = put_profile(&s, "warned", None);
    let warn = config(&s, &[&arn], "Warn");
    let zip = package(APP);
    ok(&create(&s, "unsigned", &zip, Some(&warn)));
    let signed = sign(&s, "warned", &zip);
    assert_eq!(
        refused(&create(&s, "bent", &tamper(&signed), Some(&warn))),
        "InvalidCodeSignatureException"
    );
    // The warned deploy is counted.
    let scraped = std::process::Command::new("curl")
        .args(["-s", "--max-time", "30", &s.metrics_endpoint])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&scraped.stdout);
    assert!(
        text.lines()
            .any(|l| l == "warden_code_signing_warned_deploys 1"),
        "{text}"
    );
    // A revoked profile: its later signatures are untrusted (deployed under Warn,
    // refused under Enforce).
    let version = arn.rsplit('/').next().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    s.aws(&[
        "signer",
        "revoke-signing-profile",
        "--profile-name",
        "warned",
        "--profile-version",
        version,
        "--reason",
        "compromised",
        "--effective-time",
        &now.to_string(),
    ]);
    let got = s.aws(&["signer", "get-signing-profile", "--profile-name", "warned"]);
    assert_eq!(got["status"], "Revoked");
    ok(&create(&s, "revoked_warn", &signed, Some(&warn)));
    let enforce = config(&s, &[&arn], "Enforce");
    assert_eq!(
        refused(&create(&s, "revoked_enforce", &signed, Some(&enforce))),
        "CodeVerificationFailedException"
    );
    // A revoked profile signs no more.
    let out = s.warden(&[
        "sign",
        "--profile",
        "warned",
        zip.to_str().unwrap(),
        "-o",
        "/dev/null",
    ]);
    assert!(!out.status.success());
}

#[test]
fn expired_signatures_and_revoked_jobs_are_untrusted() {
    let s = Server::start();
    let arn = put_profile(&s, "short", Some("value=1,type=DAYS"));
    let enforce = config(&s, &[&arn], "Enforce");
    let zip = package(APP);
    let signed = sign(&s, "short", &zip);
    // Revoke this signature's job: refused under Enforce.
    let bytes = std::fs::read(&signed).unwrap();
    let (manifest, _) = warden_signer::format::read_signature(&bytes).unwrap();
    let job = manifest.unwrap().job_id;
    s.aws(&[
        "signer",
        "revoke-signature",
        "--job-id",
        &job,
        "--reason",
        "leaked",
    ]);
    let out = create(&s, "revoked", &signed, Some(&enforce));
    assert_eq!(refused(&out), "CodeVerificationFailedException");
    assert!(String::from_utf8_lossy(&out.stderr).contains("was revoked"));
    // An expired signature: a manifest whose expiry passed cannot be forged without the
    // key, so expiry is covered by the signer's unit tests with a moved clock; here the
    // unknown job is refused.
    let out = s.aws_raw(&[
        "signer",
        "revoke-signature",
        "--job-id",
        "nope",
        "--reason",
        "x",
    ]);
    assert_eq!(refused(&out), "ResourceNotFoundException");
}

#[test]
fn layers_of_a_signed_function_are_checked() {
    let s = Server::start();
    let arn = put_profile(&s, "layers", None);
    let enforce = config(&s, &[&arn], "Enforce");
    let lib = python_zip(&[("helper.py", "X = 1\n")]);
    let unsigned_layer = s.aws(&[
        "lambda",
        "publish-layer-version",
        "--layer-name",
        "lib",
        "--zip-file",
        &fileb(&lib),
    ]);
    let signed_lib = sign(&s, "layers", &python_zip(&[("helper.py", "X = 2\n")]));
    let signed_layer = s.aws(&[
        "lambda",
        "publish-layer-version",
        "--layer-name",
        "lib",
        "--zip-file",
        &fileb(&signed_lib),
    ]);
    let signed = sign(&s, "layers", &package(APP));
    let zip = fileb(&signed);
    let with_layer = |name: &str, layer: &Value| {
        s.aws_raw(&[
            "lambda",
            "create-function",
            "--function-name",
            name,
            "--runtime",
            python_runtime(),
            "--handler",
            "app.handler",
            "--role",
            EXEC_ROLE,
            "--zip-file",
            &zip,
            "--code-signing-config-arn",
            &enforce,
            "--layers",
            layer["LayerVersionArn"].as_str().unwrap(),
        ])
    };
    assert_eq!(
        refused(&with_layer("f1", &unsigned_layer)),
        "CodeVerificationFailedException"
    );
    ok(&with_layer("f2", &signed_layer));
    let out = s.aws_raw(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "f2",
        "--layers",
        unsigned_layer["LayerVersionArn"].as_str().unwrap(),
    ]);
    assert_eq!(refused(&out), "CodeVerificationFailedException");
}

#[test]
fn refusals_name_the_problem_and_callers_need_permission() {
    let s = Server::start();
    let arn = put_profile(&s, "guarded", None);
    // Malformed input.
    let out = s.aws_raw(&[
        "signer",
        "put-signing-profile",
        "--profile-name",
        "xx",
        "--platform-id",
        "Notation-OCI-SHA384-ECDSA",
    ]);
    assert_eq!(refused(&out), "ValidationException");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("platformId `Notation-OCI-SHA384-ECDSA` is not supported"));
    let out = s.aws_raw(&[
        "lambda",
        "create-code-signing-config",
        "--allowed-publishers",
        r#"{"SigningProfileVersionArns":["arn:aws:s3:::bucket"]}"#,
    ]);
    assert_eq!(refused(&out), "InvalidParameterValueException");
    let out = s.aws_raw(&[
        "lambda",
        "get-code-signing-config",
        "--code-signing-config-arn",
        "arn:aws:lambda:us-east-1:123456789012:code-signing-config:csc-0123456789abcdefg",
    ]);
    assert_eq!(refused(&out), "ResourceNotFoundException");
    let zip = package(APP);
    let out = create(
        &s,
        "nocsc",
        &zip,
        Some("arn:aws:lambda:us-east-1:123456789012:code-signing-config:csc-0123456789abcdefg"),
    );
    assert_eq!(refused(&out), "CodeSigningConfigNotFoundException");

    // A caller without permission.
    let nobody = user_with_key(&s, "nobody");
    for args in [
        vec!["signer", "get-signing-profile", "--profile-name", "guarded"],
        vec![
            "signer",
            "put-signing-profile",
            "--profile-name",
            "mine",
            "--platform-id",
            "AWSLambda-SHA384-ECDSA",
        ],
        vec!["lambda", "list-code-signing-configs"],
    ] {
        let out = aws_as(&s, &nobody, &args);
        assert_eq!(refused(&out), "AccessDeniedException", "{args:?}");
    }
    let signer_only = user_with_policy(
        &s,
        "reader",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "signer:GetSigningProfile", "Resource": "*"}
        ]}),
    );
    let got = ok_as(
        &s,
        &signer_only,
        &["signer", "get-signing-profile", "--profile-name", "guarded"],
    );
    assert_eq!(got["profileVersionArn"], arn.as_str());
    let out = aws_as(
        &s,
        &signer_only,
        &[
            "signer",
            "cancel-signing-profile",
            "--profile-name",
            "guarded",
        ],
    );
    assert_eq!(refused(&out), "AccessDeniedException");

    // Permissions, with their revision.
    let added = s.aws(&[
        "signer",
        "add-profile-permission",
        "--profile-name",
        "guarded",
        "--action",
        "signer:StartSigningJob",
        "--principal",
        "111122223333",
        "--statement-id",
        "s1",
    ]);
    let listed = s.aws(&[
        "signer",
        "list-profile-permissions",
        "--profile-name",
        "guarded",
    ]);
    assert_eq!(listed["revisionId"], added["revisionId"]);
    assert_eq!(listed["permissions"][0]["statementId"], "s1");
    s.aws(&[
        "signer",
        "remove-profile-permission",
        "--profile-name",
        "guarded",
        "--statement-id",
        "s1",
        "--revision-id",
        added["revisionId"].as_str().unwrap(),
    ]);
}

#[test]
fn boto3_manages_profiles_and_configs() {
    let s = Server::start();
    let out = s.python(
        r#"
import boto3, os
signer = boto3.client("signer", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
lam = boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
p = signer.put_signing_profile(profileName="boto", platformId="AWSLambda-SHA384-ECDSA",
    signatureValidityPeriod={"value": 2, "type": "YEARS"})
profiles = signer.list_signing_profiles()["profiles"]
assert [x["profileName"] for x in profiles] == ["boto"], profiles
c = lam.create_code_signing_config(AllowedPublishers={"SigningProfileVersionArns": [p["profileVersionArn"]]},
    CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Enforce"})["CodeSigningConfig"]
arn = c["CodeSigningConfigArn"]
u = lam.update_code_signing_config(CodeSigningConfigArn=arn, Description="d",
    CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Warn"})["CodeSigningConfig"]
assert u["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"] == "Warn", u
assert len(lam.list_code_signing_configs()["CodeSigningConfigs"]) == 1
try:
    lam.get_function_code_signing_config(FunctionName="missing")
    raise SystemExit("no error")
except lam.exceptions.ResourceNotFoundException:
    pass
lam.delete_code_signing_config(CodeSigningConfigArn=arn)
signer.cancel_signing_profile(profileName="boto")
assert signer.list_signing_profiles()["profiles"] == []
assert signer.list_signing_profiles(includeCanceled=True)["profiles"][0]["status"] == "Canceled"
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn require_code_signing_refuses_functions_without_a_config() {
    let s = Server::start_with(&["--require-code-signing"]);
    let zip = package(APP);
    let out = create(&s, "plain", &zip, None);
    assert_eq!(refused(&out), "CodeVerificationFailedException");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--require-code-signing"));
    let arn = put_profile(&s, "required", None);
    let enforce = config(&s, &[&arn], "Enforce");
    let signed = sign(&s, "required", &zip);
    ok(&create(&s, "signed", &signed, Some(&enforce)));
    let out = s.aws_raw(&[
        "lambda",
        "delete-function-code-signing-config",
        "--function-name",
        "signed",
    ]);
    assert_eq!(refused(&out), "ResourceConflictException");
}

#[test]
fn boto3_sees_lambdas_exceptions_and_new_profile_versions() {
    let s = Server::start();
    let first = put_profile(&s, "rotating", None);
    let zip = package(APP);
    let old_signed = sign(&s, "rotating", &zip);
    // Putting the active profile again makes a new version (a new key) that signs from now.
    let second = put_profile(&s, "rotating", None);
    assert_ne!(first, second);
    let new_signed = sign(&s, "rotating", &package(APP));
    let script = format!(
        r#"
import boto3, os
lam = boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
old = open({old:?}, "rb").read()
new = open({new:?}, "rb").read()
arn = lam.create_code_signing_config(AllowedPublishers={{"SigningProfileVersionArns": [{first:?}]}},
    CodeSigningPolicies={{"UntrustedArtifactOnDeployment": "Enforce"}})["CodeSigningConfig"]["CodeSigningConfigArn"]
def create(name, code):
    return lam.create_function(FunctionName=name, Runtime={runtime:?}, Handler="app.handler",
        Role={role:?}, Code={{"ZipFile": code}}, CodeSigningConfigArn=arn)
create("old", old)
try:
    create("new", new)
    raise SystemExit("a newer version's signature passed a config naming the older one")
except lam.exceptions.CodeVerificationFailedException as e:
    assert "not among the code signing config's allowed publishers" in str(e), e
bent = bytearray(old)
bent[40] ^= 1
try:
    create("bent", bytes(bent))
    raise SystemExit("a changed byte passed")
except lam.exceptions.InvalidCodeSignatureException:
    pass
try:
    lam.put_function_code_signing_config(FunctionName="old",
        CodeSigningConfigArn="arn:aws:lambda:us-east-1:123456789012:code-signing-config:csc-0123456789abcdefg")
    raise SystemExit("a missing config was accepted")
except lam.exceptions.CodeSigningConfigNotFoundException:
    pass
print("ok")
"#,
        old = old_signed.display().to_string(),
        new = new_signed.display().to_string(),
        first = first,
        runtime = python_runtime(),
        role = EXEC_ROLE,
    );
    assert_eq!(s.python(&script).trim(), "ok");
}
