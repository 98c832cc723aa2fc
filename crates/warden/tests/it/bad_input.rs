//! Bad input never hurts: every malformed, oversized or hostile request gets an AWS-shaped
//! error, and what was stored before is intact afterwards.

use serde_json::{json, Value};

use crate::harness::{b64, python, Server};

/// Sends a request and checks status, `x-amzn-ErrorType` and the JSON body's `Type`/`Message`.
fn expect_error(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    status: u16,
    code: &str,
) -> String {
    let (got, h, body) = s.http(method, path, headers, body);
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(got, status, "{method} {path}: {text}");
    let header = h
        .iter()
        .find(|(k, _)| k == "x-amzn-errortype")
        .map(|(_, v)| v.as_str());
    assert_eq!(header, Some(code), "{method} {path}: {h:?}");
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is JSON: {text}"));
    assert_eq!(v["Type"], "User");
    assert_eq!(v["__type"], code);
    v["Message"].as_str().expect("a message").to_owned()
}

fn zip_from_python(script: &str) -> Vec<u8> {
    let out = std::process::Command::new(python())
        .args(["-c", &format!("import io, sys, zipfile\nbuf = io.BytesIO()\n{script}\nsys.stdout.buffer.write(buf.getvalue())")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn create_body(name: &str, zip: &[u8]) -> Vec<u8> {
    json!({
        "FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
        "Role": "arn:aws:iam::123456789012:role/lambda-exec", "Code": { "ZipFile": b64(zip) },
    })
    .to_string()
    .into_bytes()
}

#[test]
fn malformed_requests_get_aws_shaped_errors() {
    let s = Server::start();
    s.create_fixture("keep", &[]);
    let before = s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "keep",
    ]);

    let m = expect_error(
        &s,
        "POST",
        "/2015-03-31/functions",
        &[],
        b"{not json",
        400,
        "InvalidRequestContentException",
    );
    assert!(
        m.starts_with("Could not parse request body into json"),
        "{m}"
    );
    expect_error(
        &s,
        "POST",
        "/2015-03-31/functions/keep/invocations",
        &[],
        b"{\"a\":",
        400,
        "InvalidRequestContentException",
    );
    expect_error(
        &s,
        "PUT",
        "/2015-03-31/functions/keep/configuration",
        &[],
        b"[1,2",
        400,
        "InvalidRequestContentException",
    );
    expect_error(
        &s,
        "PUT",
        "/2015-03-31/functions/keep/configuration",
        &[],
        br#"{"Timeout":"soon"}"#,
        400,
        "InvalidRequestContentException",
    );
    expect_error(
        &s,
        "GET",
        "/2015-03-31/functions/no-such-fn",
        &[],
        b"",
        404,
        "ResourceNotFoundException",
    );
    let m = expect_error(
        &s,
        "GET",
        "/2015-03-31/functions/bad%20name",
        &[],
        b"",
        400,
        "InvalidParameterValueException",
    );
    assert!(m.contains("`bad name`"), "{m}");
    expect_error(
        &s,
        "GET",
        "/2015-03-31/functions/arn:aws:lambda:us-east-1:999999999999:function:keep",
        &[],
        b"",
        400,
        "InvalidParameterValueException",
    );
    expect_error(
        &s,
        "GET",
        "/2015-03-31/functions?MaxItems=0",
        &[],
        b"",
        400,
        "InvalidParameterValueException",
    );
    expect_error(
        &s,
        "DELETE",
        "/2099-01-01/whatever",
        &[],
        b"",
        404,
        "UnknownOperationException",
    );
    expect_error(
        &s,
        "POST",
        "/2015-03-31/functions/keep/invocations",
        &[("X-Amz-Invocation-Type", "Sometimes")],
        b"{}",
        400,
        "InvalidParameterValueException",
    );
    expect_error(
        &s,
        "POST",
        "/2015-03-31/functions/keep/invocations",
        &[("X-Amz-Client-Context", "%%%")],
        b"{}",
        400,
        "InvalidParameterValueException",
    );

    // Payload limits: 6 MB synchronous, 1 MB asynchronous.
    let big = format!("\"{}\"", "x".repeat(6 * 1024 * 1024));
    let m = expect_error(
        &s,
        "POST",
        "/2015-03-31/functions/keep/invocations",
        &[],
        big.as_bytes(),
        413,
        "RequestTooLargeException",
    );
    assert!(m.contains("6291456"), "{m}");
    let medium = format!("\"{}\"", "x".repeat(1024 * 1024));
    expect_error(
        &s,
        "POST",
        "/2015-03-31/functions/keep/invocations",
        &[("X-Amz-Invocation-Type", "Event")],
        medium.as_bytes(),
        413,
        "RequestTooLargeException",
    );

    // A response above 6 MB is the function's error, not the platform's.
    let (status, h, body) = s.http(
        "POST",
        "/2015-03-31/functions/keep/invocations",
        &[],
        br#"{"action":"big","bytes":7000000}"#,
    );
    assert_eq!(status, 200);
    assert!(h
        .iter()
        .any(|(k, v)| k == "x-amz-function-error" && v == "Unhandled"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge");

    let after = s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "keep",
    ]);
    assert_eq!(before, after, "nothing stored changed");
}

#[test]
fn hostile_zips_are_refused_and_leave_nothing() {
    let s = Server::start();
    let traversal = zip_from_python("z = zipfile.ZipFile(buf, 'w')\nz.writestr('../../etc/evil', 'x')\nz.writestr('bootstrap', 'x')\nz.close()");
    let m = expect_error(
        &s,
        "POST",
        "/2015-03-31/functions",
        &[],
        &create_body("trav", &traversal),
        502,
        "InvalidZipFileException",
    );
    assert!(m.contains("../../etc/evil"), "{m}");

    let absolute =
        zip_from_python("z = zipfile.ZipFile(buf, 'w')\nz.writestr('/etc/evil', 'x')\nz.close()");
    expect_error(
        &s,
        "POST",
        "/2015-03-31/functions",
        &[],
        &create_body("abs", &absolute),
        502,
        "InvalidZipFileException",
    );

    let symlink = zip_from_python(
        "z = zipfile.ZipFile(buf, 'w')\ni = zipfile.ZipInfo('link')\ni.external_attr = (0o120777 << 16)\nz.writestr(i, '/etc/shadow')\nz.close()",
    );
    expect_error(
        &s,
        "POST",
        "/2015-03-31/functions",
        &[],
        &create_body("sym", &symlink),
        502,
        "InvalidZipFileException",
    );

    // 300 MB of zeros compresses to ~300 KB: stopped while extracting.
    let bomb = zip_from_python(
        "z = zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED)\nwith z.open('bootstrap', 'w', force_zip64=True) as f:\n    chunk = bytes(1 << 20)\n    for _ in range(300):\n        f.write(chunk)\nz.close()",
    );
    assert!(bomb.len() < 2 * 1024 * 1024);
    expect_error(
        &s,
        "POST",
        "/2015-03-31/functions",
        &[],
        &create_body("bomb", &bomb),
        502,
        "InvalidZipFileException",
    );

    expect_error(
        &s,
        "POST",
        "/2015-03-31/functions",
        &[],
        &create_body("junk", b"PK\x03\x04garbage"),
        502,
        "InvalidZipFileException",
    );

    let listed = s.aws(&["lambda", "list-functions"]);
    assert_eq!(listed["Functions"], json!([]), "no function was created");
    let code_dir = s.code_dir.join("code");
    let leftovers: Vec<_> = std::fs::read_dir(&code_dir)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "no extracted code remains: {leftovers:?}"
    );
}
