//! Response streaming: `InvokeWithResponseStream` read by boto3's event-stream parser and
//! `RESPONSE_STREAM` function URLs read by Python `requests` and curl, fed by Node.js
//! handlers wrapped in `awslambda.streamifyResponse`, on Warden's Node.js runtime and on
//! the unmodified reference client `aws-lambda-ric` (which speaks the Runtime API's
//! streaming mode and its error trailers on its own). The first chunk arrives while the
//! function is still running; an error mid-stream is told in `InvokeComplete`, or breaks
//! a URL's response off; and every refusal comes before anything runs.

use serde_json::{json, Value};

use crate::harness::*;
use crate::node_runtime::{add_ric, node_runtime};

const STREAMING_JS: &str = r#"
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
exports.chunks = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType('text/plain');
  responseStream.write('first\n');
  await sleep(1500);
  responseStream.write('second\n');
  responseStream.end();
});
exports.midError = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('partial\n');
  await sleep(300);
  throw new Error('boom mid-stream');
});
exports.early = awslambda.streamifyResponse(async () => {
  throw new TypeError('before any byte');
});
exports.web = awslambda.streamifyResponse(async (event, responseStream) => {
  const out = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { 'content-type': 'text/plain', 'x-custom': 'yes' },
    cookies: ['a=1'],
  });
  out.write('head-');
  await sleep(1500);
  out.write('tail');
  out.end();
});
exports.plain = async (event) => ({ plain: event });
"#;

/// A package of the streaming handlers, with `aws-lambda-ric` beside them.
fn package() -> std::path::PathBuf {
    let dir = crate::harness::scratch_dir();
    std::fs::write(dir.join("index.js"), STREAMING_JS).unwrap();
    add_ric(&dir);
    zip_dir(&dir)
}

/// Creates `name` running `handler`, on the reference client when `ric`.
fn create(s: &Server, name: &str, handler: &str, zip: &std::path::Path, ric: bool) {
    let mut args = vec![
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        node_runtime(),
        "--handler",
        handler,
        "--role",
        EXEC_ROLE,
        "--timeout",
        "20",
        "--memory-size",
        "512",
    ];
    let zip = format!("fileb://{}", zip.display());
    args.extend(["--zip-file", &zip]);
    if ric {
        args.extend([
            "--environment",
            "Variables={AWS_LAMBDA_EXEC_WRAPPER=/var/task/ric.sh}",
        ]);
    }
    s.aws(&args);
}

/// Reads a stream with boto3; prints, as JSON, the response's metadata, each chunk with
/// the seconds since the first, and the `InvokeComplete` event.
const READ_STREAM: &str = r#"
import json, os, sys, time, base64, boto3
from botocore.config import Config
lam = boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"], config=Config(retries={"total_max_attempts": 1}, read_timeout=60))
kw = json.loads(sys.argv[1])
r = lam.invoke_with_response_stream(**kw)
chunks, complete, first = [], [], None
for event in r["EventStream"]:
    now = time.monotonic()
    if "PayloadChunk" in event:
        first = first if first is not None else now
        chunks.append([now - first, event["PayloadChunk"]["Payload"].decode()])
    if "InvokeComplete" in event:
        complete.append(event["InvokeComplete"])
print(json.dumps({
    "status": r["StatusCode"],
    "version": r.get("ExecutedVersion"),
    "content_type": r.get("ResponseStreamContentType"),
    "chunks": chunks,
    "complete": complete,
}))
"#;

fn read_stream(s: &Server, request: Value) -> Value {
    let out = std::process::Command::new(python())
        .args(["-c", READ_STREAM, &request.to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(s.client_env())
        .env("ENDPOINT", &s.endpoint)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn text_of(chunks: &Value) -> String {
    chunks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[1].as_str().unwrap())
        .collect()
}

/// The seconds between the first chunk and the last.
fn spread(chunks: &Value) -> f64 {
    let all = chunks.as_array().unwrap();
    all.last().unwrap()[0].as_f64().unwrap() - all[0][0].as_f64().unwrap()
}

#[test]
fn invoke_with_response_stream_delivers_chunks_as_they_are_written() {
    let s = Server::start();
    let zip = package();
    for (suffix, ric) in [("", false), ("-ric", true)] {
        create(&s, &format!("chunks{suffix}"), "index.chunks", &zip, ric);
        create(&s, &format!("mid{suffix}"), "index.midError", &zip, ric);
        create(&s, &format!("early{suffix}"), "index.early", &zip, ric);
    }
    create(&s, "plain", "index.plain", &zip, false);

    for suffix in ["", "-ric"] {
        let got = read_stream(
            &s,
            json!({"FunctionName": format!("chunks{suffix}"), "Payload": "{}"}),
        );
        assert_eq!(got["status"], 200, "{got}");
        assert_eq!(got["version"], "$LATEST");
        assert_eq!(text_of(&got["chunks"]), "first\nsecond\n", "{got}");
        assert_eq!(got["chunks"][0][1], "first\n", "{got}");
        // The function waits 1.5 s between its writes: a response buffered until the end
        // would bring both at once.
        assert!(spread(&got["chunks"]) >= 1.0, "{got}");
        assert_eq!(got["complete"], json!([{}]), "{got}");

        // A failure after the stream began: what was written arrives, then the error.
        let got = read_stream(
            &s,
            json!({"FunctionName": format!("mid{suffix}"), "Payload": "{}"}),
        );
        assert_eq!(text_of(&got["chunks"]), "partial\n", "{got}");
        assert_eq!(got["complete"][0]["ErrorCode"], "Error", "{got}");
        assert_eq!(
            got["complete"][0]["ErrorDetails"], "boom mid-stream",
            "{got}"
        );

        // A failure before the first byte: no chunk, the error in InvokeComplete.
        let got = read_stream(
            &s,
            json!({"FunctionName": format!("early{suffix}"), "Payload": "{}"}),
        );
        assert_eq!(got["chunks"], json!([]), "{got}");
        assert_eq!(got["complete"][0]["ErrorCode"], "TypeError", "{got}");
        assert_eq!(
            got["complete"][0]["ErrorDetails"], "before any byte",
            "{got}"
        );
    }

    // A function that does not stream: its whole answer in one chunk; the log's tail on
    // request.
    let got = read_stream(
        &s,
        json!({"FunctionName": "plain", "Payload": "{\"k\":1}", "LogType": "Tail"}),
    );
    assert_eq!(text_of(&got["chunks"]), r#"{"plain":{"k":1}}"#, "{got}");
    let tail = unb64(got["complete"][0]["LogResult"].as_str().unwrap());
    assert!(
        String::from_utf8_lossy(&tail).contains("REPORT RequestId"),
        "{got}"
    );

    // Plain Invoke of a streaming function: the chunks collected into one answer.
    let out = tempfile::NamedTempFile::new().unwrap();
    let meta = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "chunks",
        "--payload",
        "{}",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(meta["StatusCode"], 200, "{meta}");
    assert_eq!(
        std::fs::read_to_string(out.path()).unwrap(),
        "first\nsecond\n"
    );
    let meta = s.aws(&[
        "lambda",
        "invoke",
        "--function-name",
        "mid",
        "--payload",
        "{}",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(meta["FunctionError"], "Unhandled", "{meta}");
    let error: Value = serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap();
    assert_eq!(error["errorMessage"], "boom mid-stream");
}

#[test]
fn invoke_with_response_stream_refusals_come_before_anything_runs() {
    let s = Server::start();
    let zip = package();
    create(&s, "chunks", "index.chunks", &zip, false);
    let path = "/2021-11-15/functions/chunks/response-streaming-invocations";

    // No signature, and no policy opening the function to everyone: refused as Invoke is.
    let (status, headers, _) = s.http_unsigned("POST", path, &[], b"{}");
    assert_eq!(status, 403);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-amzn-errortype" && v == "MissingAuthenticationTokenException"),
        "{headers:?}"
    );
    // A principal allowed only to read the function.
    let reader = user_with_policy(
        &s,
        "reader",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"}]}),
    );
    let (status, _, body) = send(&s.endpoint, Some(&reader), "POST", path, &[], b"{}");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("lambda:InvokeFunction"));
    // Lambda's other invocation types are not streaming ones.
    let (status, _, body) = s.http("POST", path, &[("x-amz-invocation-type", "Event")], b"{}");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("RequestResponse or DryRun"));
    let (status, _, _) = s.http("POST", path, &[("x-amz-invocation-type", "DryRun")], b"{}");
    assert_eq!(status, 204);
    // Not a function.
    let (status, _, _) = s.http(
        "POST",
        "/2021-11-15/functions/nope/response-streaming-invocations",
        &[],
        b"{}",
    );
    assert_eq!(status, 404);
    // The input contract applies as to Invoke.
    let (status, _, _) = s.http(
        "PUT",
        "/_warden/2026-11-01/functions/chunks/input-contract",
        &[("content-type", "application/json")],
        br#"{"EventSchema": {"type": "object", "required": ["tenant"]}}"#,
    );
    assert_eq!(status, 200);
    let (status, headers, body) = s.http("POST", path, &[], b"{}");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(headers
        .iter()
        .any(|(k, v)| k == "x-amzn-errortype" && v.starts_with("InvalidRequestContentException")));
    // Nothing ran: no log line of the function.
    assert!(
        s.logs("chunks").iter().all(|l| !l.starts_with("START")),
        "{:?}",
        s.logs("chunks")
    );
}

/// Reads a URL with `requests` in streaming mode; prints the status, headers, each chunk
/// with the seconds since the first, and the exception that ended the read, if any.
const READ_URL: &str = r#"
import json, sys, time, requests
r = requests.get(sys.argv[1], stream=True, timeout=60)
chunks, first, error = [], None, None
try:
    for chunk in r.iter_content(chunk_size=None):
        now = time.monotonic()
        first = first if first is not None else now
        chunks.append([now - first, chunk.decode()])
except Exception as e:
    error = type(e).__name__
print(json.dumps({"status": r.status_code, "headers": dict(r.headers), "chunks": chunks, "error": error}))
"#;

fn read_url(url: &str) -> Value {
    let out = std::process::Command::new(python())
        .args(["-c", READ_URL, url])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A public `RESPONSE_STREAM` URL of `function`, in its path form.
fn streaming_url(s: &Server, function: &str) -> String {
    s.aws(&[
        "lambda",
        "add-permission",
        "--function-name",
        function,
        "--statement-id",
        "public-url",
        "--action",
        "lambda:InvokeFunctionUrl",
        "--principal",
        "*",
        "--function-url-auth-type",
        "NONE",
    ]);
    let config = s.aws(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        function,
        "--auth-type",
        "NONE",
        "--invoke-mode",
        "RESPONSE_STREAM",
    ]);
    assert_eq!(config["InvokeMode"], "RESPONSE_STREAM", "{config}");
    let id = config["FunctionUrl"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    format!("{}/_url/{id}/", s.url_endpoint)
}

#[test]
fn response_stream_urls_stream_the_body_after_the_head() {
    let s = Server::start();
    let zip = package();
    for (name, handler, ric) in [
        ("web", "index.web", false),
        ("web-ric", "index.web", true),
        ("chunks", "index.chunks", false),
        ("mid", "index.midError", false),
        ("early", "index.early", false),
        ("plain", "index.plain", false),
    ] {
        create(&s, name, handler, &zip, ric);
    }
    for name in ["web", "web-ric"] {
        let got = read_url(&streaming_url(&s, name));
        assert_eq!(got["status"], 201, "{got}");
        assert_eq!(got["headers"]["x-custom"], "yes", "{got}");
        assert_eq!(got["headers"]["content-type"], "text/plain", "{got}");
        assert_eq!(got["headers"]["set-cookie"], "a=1", "{got}");
        assert_eq!(got["headers"]["transfer-encoding"], "chunked", "{got}");
        assert_eq!(text_of(&got["chunks"]), "head-tail", "{got}");
        assert!(spread(&got["chunks"]) >= 1.0, "{got}");
        assert_eq!(got["error"], Value::Null);
    }
    // Without a prelude: 200 with the stream's content type.
    let got = read_url(&streaming_url(&s, "chunks"));
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["headers"]["content-type"], "text/plain", "{got}");
    assert_eq!(text_of(&got["chunks"]), "first\nsecond\n");
    // An error after the head: the response is broken off, not ended as if whole.
    let got = read_url(&streaming_url(&s, "mid"));
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(text_of(&got["chunks"]), "partial\n", "{got}");
    assert_eq!(got["error"], "ChunkedEncodingError", "{got}");
    // An error before any byte, and a function that does not stream: as on a BUFFERED URL.
    let got = read_url(&streaming_url(&s, "early"));
    assert_eq!(got["status"], 502, "{got}");
    let got = read_url(&streaming_url(&s, "plain"));
    assert_eq!(got["status"], 200, "{got}");
    let body: Value = serde_json::from_str(&text_of(&got["chunks"])).unwrap();
    assert_eq!(body["plain"]["requestContext"]["http"]["method"], "GET");
}
