//! Honest inputs: every member Lambda's API defines is implemented or refused by name, an
//! unknown member is refused by name, and tags are implemented with Lambda's limits and
//! permissions. Driven by the AWS CLI, boto3 and raw signed HTTP against a real server.

use serde_json::{json, Value};

use crate::harness::{
    aws_as, b64, ok_as, user_with_policy, Credentials, Server, ACCOUNT, EXEC_ROLE,
};

fn arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}")
}

fn config(s: &Server, name: &str) -> Value {
    s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        name,
    ])
}

fn exists(s: &Server, name: &str) -> bool {
    let out = s.aws_raw(&["lambda", "get-function", "--function-name", name]);
    if out.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    false
}

fn err_as(s: &Server, who: &Credentials, args: &[&str]) -> String {
    let out = aws_as(s, who, args);
    assert!(
        !out.status.success(),
        "aws {args:?} unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The members Lambda defines that Warden does not implement yet: each is refused with
/// `InvalidParameterValueException` naming it, on create and on update, and nothing is
/// stored. (`KMSKeyArn` and `VpcConfig` used to be accepted and ignored: a caller believed
/// its variables were encrypted with its key. Both are honoured now, except `VpcConfig`'s
/// IPv6 member: instances have IPv4 only.)
#[test]
fn unimplemented_members_are_refused_by_name_never_ignored() {
    let s = Server::start();
    let zip = format!("fileb://{}", crate::harness::fixture_zip().display());
    let refused: [(&[&str], &str); 3] = [
        (
            &[
                "--vpc-config",
                "SubnetIds=subnet-1,SecurityGroupIds=sg-1,Ipv6AllowedForDualStack=true",
            ],
            "VpcConfig.Ipv6AllowedForDualStack",
        ),
        (&["--tracing-config", "Mode=Active"], "TracingConfig"),
        (&["--snap-start", "ApplyOn=PublishedVersions"], "SnapStart"),
    ];
    for (extra, member) in refused {
        let mut args = vec![
            "lambda",
            "create-function",
            "--function-name",
            "f",
            "--runtime",
            "provided.al2023",
            "--handler",
            "bootstrap",
            "--role",
            EXEC_ROLE,
            "--zip-file",
            &zip,
        ];
        args.extend_from_slice(extra);
        let err = s.aws_err(&args);
        assert!(
            err.contains("InvalidParameterValueException"),
            "{member}: {err}"
        );
        assert!(
            err.contains(&format!("{member} is not supported")),
            "{member}: {err}"
        );
        assert!(!exists(&s, "f"), "{member}: nothing is created");
    }

    s.create_fixture("f", &[]);
    let before = config(&s, "f");
    for (extra, member) in refused {
        let mut args = vec![
            "lambda",
            "update-function-configuration",
            "--function-name",
            "f",
        ];
        args.extend_from_slice(extra);
        let err = s.aws_err(&args);
        assert!(
            err.contains("InvalidParameterValueException"),
            "{member}: {err}"
        );
        assert!(err.contains(member), "{member}: {err}");
    }
    assert_eq!(config(&s, "f")["RevisionId"], before["RevisionId"]);

    // Values that ask for exactly what Warden does are honoured as given.
    let updated = s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "f",
        "--tracing-config",
        "Mode=PassThrough",
        "--vpc-config",
        "SubnetIds=[],SecurityGroupIds=[]",
        "--timeout",
        "7",
    ]);
    assert_eq!(updated["Timeout"], 7);
    assert_eq!(updated["TracingConfig"]["Mode"], "PassThrough");
}

/// A member no Lambda shape defines is refused naming it (`InvalidRequestContentException`,
/// as a body Lambda cannot read), whether at the top of the input or inside a nested
/// shape, and the function is left as it was.
#[test]
fn unknown_members_are_refused_by_name() {
    let s = Server::start();
    let zip = std::fs::read(crate::harness::fixture_zip()).unwrap();
    let create = |extra: Value| {
        let mut body = json!({
            "FunctionName": "f", "Runtime": "provided.al2023", "Handler": "bootstrap",
            "Role": EXEC_ROLE, "Code": { "ZipFile": b64(&zip) },
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        s.http(
            "POST",
            "/2015-03-31/functions",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let expect = |(status, headers, body): (u16, Vec<(String, String)>, Vec<u8>), member: &str| {
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 400, "{text}");
        let code = headers
            .iter()
            .find(|(k, _)| k == "x-amzn-errortype")
            .map(|(_, v)| v.clone());
        assert_eq!(
            code.as_deref(),
            Some("InvalidRequestContentException"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["Message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{member}`")),
            "{text}"
        );
    };
    expect(create(json!({ "Colour": "red" })), "Colour");
    expect(
        create(json!({ "KmsKeyArn": "arn:aws:kms:us-east-1:1:key/k" })),
        "KmsKeyArn",
    );
    expect(
        create(json!({ "Environment": { "Variables": {}, "Encrypted": true } })),
        "Encrypted",
    );
    assert!(!exists(&s, "f"));

    s.create_fixture("f", &["--timeout", "3"]);
    let refused = s.http(
        "PUT",
        "/2015-03-31/functions/f/configuration",
        &[("content-type", "application/json")],
        br#"{"Timeout": 9, "Colour": "red"}"#,
    );
    expect(refused, "Colour");
    assert_eq!(config(&s, "f")["Timeout"], 3);
    let (status, headers, body) = s.http(
        "POST",
        "/2015-03-31/functions/f/aliases",
        &[("content-type", "application/json")],
        br#"{"Name": "live", "FunctionVersion": "$LATEST", "Weight": 1}"#,
    );
    expect((status, headers, body), "Weight");

    // An Invoke header Lambda defines and Warden does not implement is refused by name.
    let (status, _, body) = s.http(
        "POST",
        "/2015-03-31/functions/f/invocations",
        &[("x-amz-tenant-id", "t-1")],
        b"{}",
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("x-amz-tenant-id is not supported"), "{text}");
}

/// Tags: set on create, returned by GetFunction, added, listed and removed by ARN, within
/// Lambda's limits (50 per function, key 1-128 and value 0-256 characters, `aws:` keys
/// reserved), on the function only (not a version or alias), gone with the function.
#[test]
fn tags_are_kept_with_lambdas_limits_and_go_with_the_function() {
    let s = Server::start();
    let f = arn("tagged");
    let created = s.create_fixture("tagged", &["--tags", "team=a,env=dev"]);
    let revision = created["RevisionId"].clone();
    let got = s.aws(&["lambda", "get-function", "--function-name", "tagged"]);
    assert_eq!(got["Tags"], json!({"team": "a", "env": "dev"}));
    assert!(got.get("TagsError").is_none());

    s.aws(&[
        "lambda",
        "tag-resource",
        "--resource",
        &f,
        "--tags",
        "owner=me,team=b",
    ]);
    s.aws(&[
        "lambda",
        "untag-resource",
        "--resource",
        &f,
        "--tag-keys",
        "env",
        "absent",
    ]);
    let listed = s.aws(&["lambda", "list-tags", "--resource", &f]);
    assert_eq!(listed["Tags"], json!({"team": "b", "owner": "me"}));
    // Tags are not configuration: the function's revision is unchanged.
    assert_eq!(config(&s, "tagged")["RevisionId"], revision);

    // Lambda's limits, each refused with nothing changed.
    let long_key = format!("{}=v", "k".repeat(129));
    let long_value = format!("k={}", "v".repeat(257));
    for (tags, says) in [
        ("aws:origin=x", "aws:"),
        ("AWS:Origin=x", "aws:"),
        (long_key.as_str(), "1-128"),
        (long_value.as_str(), "256"),
    ] {
        let err = s.aws_err(&["lambda", "tag-resource", "--resource", &f, "--tags", tags]);
        assert!(
            err.contains("InvalidParameterValueException"),
            "{tags}: {err}"
        );
        assert!(err.contains(says), "{tags}: {err}");
    }
    let many: Vec<String> = (0..49).map(|i| format!("k{i}=v")).collect();
    let err = s.aws_err(&[
        "lambda",
        "tag-resource",
        "--resource",
        &f,
        "--tags",
        &many.join(","),
    ]);
    assert!(err.contains("at most 50 tags"), "{err}");
    assert_eq!(
        s.aws(&["lambda", "list-tags", "--resource", &f])["Tags"],
        json!({"team": "b", "owner": "me"})
    );
    s.aws(&[
        "lambda",
        "tag-resource",
        "--resource",
        &f,
        "--tags",
        &many[..48].join(","),
    ]);
    let listed = s.aws(&["lambda", "list-tags", "--resource", &f]);
    assert_eq!(listed["Tags"].as_object().unwrap().len(), 50);

    // Versions and aliases have no tags of their own; unknown functions none at all.
    s.aws(&["lambda", "publish-version", "--function-name", "tagged"]);
    for qualified in [format!("{f}:1"), format!("{f}:$LATEST")] {
        let err = s.aws_err(&["lambda", "list-tags", "--resource", &qualified]);
        assert!(err.contains("InvalidParameterValueException"), "{err}");
    }
    let err = s.aws_err(&["lambda", "list-tags", "--resource", &arn("nobody")]);
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    let err = s.aws_err(&[
        "lambda",
        "tag-resource",
        "--resource",
        &arn("nobody"),
        "--tags",
        "a=b",
    ]);
    assert!(err.contains("ResourceNotFoundException"), "{err}");

    // boto3 reads them too.
    let out = s.python(&format!(
        r#"
import boto3, os
lam = boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"])
print(lam.list_tags(Resource="{f}")["Tags"]["owner"])
print(lam.get_function(FunctionName="tagged")["Tags"]["team"])
"#
    ));
    assert_eq!(out.trim(), "me\nb");

    // Deleting the function deletes its tags: a new function of that name has none.
    s.aws(&["lambda", "delete-function", "--function-name", "tagged"]);
    s.create_fixture("tagged", &[]);
    assert_eq!(
        s.aws(&["lambda", "list-tags", "--resource", &f])["Tags"],
        json!({})
    );
    let got = s.aws(&["lambda", "get-function", "--function-name", "tagged"]);
    assert!(got.get("Tags").is_none(), "{got}");
}

/// Tagging needs its own permissions, as in Lambda: `lambda:TagResource` to tag (on
/// create too), `lambda:UntagResource` to untag, `lambda:ListTags` to list them or to see
/// them in GetFunction (a caller without it gets `TagsError` instead of the tags).
#[test]
fn tags_need_their_own_permissions() {
    let s = Server::start();
    let zip = format!("fileb://{}", crate::harness::fixture_zip().display());
    let narrow = user_with_policy(
        &s,
        "narrow",
        &json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["lambda:CreateFunction","lambda:GetFunction"],
             "Resource":arn("n-*")},
            {"Effect":"Allow","Action":"iam:PassRole","Resource":EXEC_ROLE}]}),
    );
    let create = |name: &'static str, tags: Option<&'static str>| {
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
            EXEC_ROLE,
            "--zip-file",
            zip.as_str(),
        ];
        if let Some(t) = tags {
            args.extend(["--tags", t]);
        }
        args.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let args = create("n-tagged", Some("team=a"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = err_as(&s, &narrow, &args);
    assert!(err.contains("AccessDeniedException"), "{err}");
    assert!(err.contains("lambda:TagResource"), "{err}");
    assert!(!exists(&s, "n-tagged"));
    let args = create("n-plain", None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok_as(&s, &narrow, &args);

    // Tagged by someone allowed to: the narrow caller sees the function, not its tags.
    s.aws(&[
        "lambda",
        "tag-resource",
        "--resource",
        &arn("n-plain"),
        "--tags",
        "secret-project=x",
    ]);
    let got = ok_as(
        &s,
        &narrow,
        &["lambda", "get-function", "--function-name", "n-plain"],
    );
    assert!(got.get("Tags").is_none(), "{got}");
    assert_eq!(got["TagsError"]["ErrorCode"], "AccessDeniedException");
    for args in [
        vec!["lambda", "list-tags", "--resource"],
        vec![
            "lambda",
            "untag-resource",
            "--tag-keys",
            "secret-project",
            "--resource",
        ],
        vec!["lambda", "tag-resource", "--tags", "a=b", "--resource"],
    ] {
        let mut args = args;
        let target = arn("n-plain");
        args.push(&target);
        let err = err_as(&s, &narrow, &args);
        assert!(err.contains("AccessDeniedException"), "{args:?}: {err}");
    }
    assert_eq!(
        s.aws(&["lambda", "list-tags", "--resource", &arn("n-plain")])["Tags"],
        json!({"secret-project": "x"})
    );

    // With lambda:ListTags the tags are shown.
    let reader = user_with_policy(
        &s,
        "reader",
        &json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["lambda:GetFunction","lambda:ListTags"],
             "Resource":arn("n-*")}]}),
    );
    let got = ok_as(
        &s,
        &reader,
        &["lambda", "get-function", "--function-name", "n-plain"],
    );
    assert_eq!(got["Tags"], json!({"secret-project": "x"}));
    assert!(got.get("TagsError").is_none());
}
