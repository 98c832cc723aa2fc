//! CloudWatch Logs through boto3 and the AWS CLI: a function's log group and its streams
//! (one per instance, named as Lambda names them), its events read and filtered with
//! CloudWatch's filter pattern syntax; groups made with CreateLogGroup taking
//! PutLogEvents; retention enforced at once; Logs Insights queries; and the refusals
//! (malformed patterns and queries, unknown groups, no permission) with CloudWatch's error
//! codes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

fn print(s: &Server, function: &str, text: &str) {
    let payload = json!({ "action": "print", "text": text }).to_string();
    let (status, _, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{function}/invocations"),
        &[],
        payload.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

const READ: &str = r#"
import json, os, re, boto3, botocore
from botocore.config import Config
logs = boto3.client("logs", endpoint_url=os.environ["ENDPOINT"], config=Config(retries={"total_max_attempts": 1}))
group = "/aws/lambda/talker"
out = {}
out["groups"] = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]]
streams = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True)["logStreams"]
out["streams"] = [s["logStreamName"] for s in streams]
out["stream_ok"] = all(re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", s) for s in out["streams"])
events = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"], startFromHead=True)
out["messages"] = [e["message"] for e in events["events"]]
again = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"], nextToken=events["nextForwardToken"])
out["at_end"] = [len(again["events"]), again["nextForwardToken"] == events["nextForwardToken"]]
def matched(pattern):
    r = logs.filter_log_events(logGroupName=group, filterPattern=pattern)
    return sorted(e["message"] for e in r["events"] if not e["message"].startswith(("START", "END", "REPORT", "stderr: ")))
out["json"] = matched('{ $.level = "ERROR" && $.latency > 100 }')
out["phrase"] = matched('"hello world"')
out["either"] = matched('?hello ?plain')
out["without"] = matched('ERROR -level')
out["fields"] = matched('[verb = GET, path, status = 5*]')
paged = logs.get_paginator("filter_log_events").paginate(logGroupName=group, PaginationConfig={"PageSize": 2})
out["paged"] = sum(len(p["events"]) for p in paged)
out["all"] = len(logs.filter_log_events(logGroupName=group)["events"])
errors = {}
def expect(name, fn, **kw):
    try:
        fn(**kw)
        errors[name] = None
    except botocore.exceptions.ClientError as e:
        errors[name] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
expect("pattern", logs.filter_log_events, logGroupName=group, filterPattern='{ $.level = ')
expect("missing", logs.filter_log_events, logGroupName="/aws/lambda/nobody")
expect("stream", logs.get_log_events, logGroupName=group, logStreamName="nope", startFromHead=True)
expect("token", logs.get_log_events, logGroupName=group, logStreamName=streams[0]["logStreamName"], nextToken="zz")
expect("forge", logs.put_log_events, logGroupName=group, logStreamName="x", logEvents=[{"timestamp": 1, "message": "REPORT"}])
import time
def query(q):
    qid = logs.start_query(logGroupName=group, startTime=int(time.time()) - 3600, endTime=int(time.time()) + 60, queryString=q)["queryId"]
    while True:
        r = logs.get_query_results(queryId=qid)
        if r["status"] == "Complete":
            return [{f["field"]: f["value"] for f in row} for row in r["results"]], r["statistics"]
        time.sleep(0.1)
rows, stats = query('fields @message | filter @message like /ERROR/ and @message not like /stderr/ | sort @timestamp asc | limit 10')
out["insights_messages"] = [r["@message"] for r in rows]
out["insights_scanned"] = stats["recordsScanned"]
rows, _ = query('filter @type = "REPORT" | stats count(*) as n, max(@duration) as slowest')
out["insights_reports"] = rows[0]["n"]
out["insights_slowest"] = float(rows[0]["slowest"]) > 0
rows, _ = query('filter ispresent(level) | stats count(*) as n by level | sort level asc')
out["insights_levels"] = [[r["level"], r["n"]] for r in rows]
expect("query", logs.start_query, logGroupName=group, startTime=0, endTime=1, queryString="parse @message 'x'")
expect("query_missing", logs.get_query_results, queryId="00000000-0000-0000-0000-000000000000")
out["errors"] = errors
print(json.dumps(out))
"#;

#[test]
fn a_functions_log_group_is_read_and_filtered_with_boto3_and_the_aws_cli() {
    let s = Server::start();
    s.create_fixture("talker", &[]);
    for text in [
        r#"{"level": "ERROR", "latency": 250}"#,
        r#"{"level": "ERROR", "latency": 5}"#,
        "hello world",
        "plain ERROR line",
        "GET /index.html 503",
    ] {
        print(&s, "talker", text);
    }
    s.wait_logs("talker", Duration::from_secs(20), |lines| {
        lines.iter().filter(|l| l.contains("REPORT")).count() == 5
    });
    let out: Value = serde_json::from_str(s.python(READ).trim()).unwrap();
    assert_eq!(out["groups"], json!(["/aws/lambda/talker"]), "{out}");
    assert_eq!(
        out["streams"].as_array().unwrap().len(),
        1,
        "one warm instance: {out}"
    );
    assert_eq!(out["stream_ok"], true, "{out}");
    let messages: Vec<&str> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(messages[0].starts_with("START RequestId: "), "{messages:?}");
    assert!(messages.contains(&"hello world"), "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("REPORT RequestId: ")));
    assert_eq!(
        out["at_end"],
        json!([0, true]),
        "the CLI's end-of-stream signal"
    );
    assert_eq!(
        out["json"],
        json!([r#"{"level": "ERROR", "latency": 250}"#]),
        "{out}"
    );
    assert_eq!(out["phrase"], json!(["hello world"]));
    assert_eq!(out["either"], json!(["hello world", "plain ERROR line"]));
    assert_eq!(out["without"], json!(["plain ERROR line"]));
    assert_eq!(out["fields"], json!(["GET /index.html 503"]));
    assert_eq!(out["paged"], out["all"], "pages add up to the whole");
    assert_eq!(
        out["errors"],
        json!({
            "pattern": ["InvalidParameterException", 400],
            "missing": ["ResourceNotFoundException", 400],
            "stream": ["ResourceNotFoundException", 400],
            "token": ["InvalidParameterException", 400],
            "forge": ["ResourceNotFoundException", 400],
            "query": ["MalformedQueryException", 400],
            "query_missing": ["ResourceNotFoundException", 400],
        }),
        "{out}"
    );
    // Logs Insights over the same group.
    assert_eq!(
        out["insights_messages"],
        json!([
            r#"{"level": "ERROR", "latency": 250}"#,
            r#"{"level": "ERROR", "latency": 5}"#,
            "plain ERROR line"
        ]),
        "{out}"
    );
    assert_eq!(out["insights_scanned"].as_f64(), out["all"].as_f64());
    assert_eq!(out["insights_reports"], "5");
    assert_eq!(out["insights_slowest"], true);
    // JSON embedded after a prefix counts too in a Lambda group, as Insights reads it:
    // each of the two lines was also printed to stderr behind `stderr: `.
    assert_eq!(out["insights_levels"], json!([["ERROR", "4"]]), "{out}");

    // The AWS CLI, as people type it.
    let found = s.aws(&[
        "logs",
        "filter-log-events",
        "--log-group-name",
        "/aws/lambda/talker",
        "--filter-pattern",
        "\"hello world\"",
    ]);
    let events = found["events"].as_array().unwrap();
    let messages: Vec<_> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{found}");
    assert!(messages.contains(&"hello world") && messages.contains(&"stderr: hello world"));
    assert_eq!(events[0]["logStreamName"], out["streams"][0]);

    // `warden logs` rides on the same filter engine.
    let cli = |args: &[&str]| -> Vec<Value> {
        let out = s.warden(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let json_errors = cli(&[
        "logs",
        "talker",
        "--filter",
        r#"{ $.level = "ERROR" && $.latency > 100 }"#,
        "--since",
        "1h",
        "--output",
        "json",
    ]);
    assert_eq!(json_errors.len(), 1, "{json_errors:?}");
    assert_eq!(
        json_errors[0]["message"],
        r#"{"level": "ERROR", "latency": 250}"#
    );
    assert_eq!(json_errors[0]["stream"], out["streams"][0]);
    let later = cli(&[
        "logs",
        "talker",
        "--since",
        "2099-01-01T00:00:00Z",
        "--output",
        "json",
    ]);
    assert!(later.is_empty(), "{later:?}");
    let bad = s.warden(&["logs", "talker", "--filter", "{ $.x = "]);
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("InvalidParameterValueException"), "{said}");
}

#[test]
fn a_custom_group_takes_put_log_events_and_keeps_its_retention() {
    let s = Server::start();
    let group = "app/orders";
    s.aws(&["logs", "create-log-group", "--log-group-name", group]);
    assert!(s
        .aws_err(&["logs", "create-log-group", "--log-group-name", group])
        .contains("(ResourceAlreadyExistsException)"));
    s.aws(&[
        "logs",
        "create-log-stream",
        "--log-group-name",
        group,
        "--log-stream-name",
        "web-1",
    ]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 24 * 3600 * 1000;
    let put = |events: Value| {
        s.aws(&[
            "logs",
            "put-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            "web-1",
            "--log-events",
            &events.to_string(),
        ])
    };
    // Twenty days back is too old for CloudWatch, and said so; three days back is kept.
    // (A call's events span at most a day.)
    let answer = put(json!([
        {"timestamp": now - 20 * day - 2, "message": "ancient"},
        {"timestamp": now - 20 * day - 1, "message": "ancient too"},
    ]));
    assert_eq!(
        answer["rejectedLogEventsInfo"],
        json!({"tooOldLogEventEndIndex": 2}),
        "{answer}"
    );
    put(json!([{"timestamp": now - 3 * day, "message": "old order"}]));
    put(json!([{"timestamp": now, "message": "new order"}]));
    let read = |s: &Server| -> Vec<String> {
        let got = s.aws(&[
            "logs",
            "get-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            "web-1",
            "--start-from-head",
        ]);
        got["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(read(&s), ["old order", "new order"]);

    // Retention applies at once to what is already stored.
    s.aws(&[
        "logs",
        "put-retention-policy",
        "--log-group-name",
        group,
        "--retention-in-days",
        "1",
    ]);
    assert_eq!(read(&s), ["new order"]);
    let described = s.aws(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        "app/",
    ]);
    assert_eq!(
        described["logGroups"][0]["retentionInDays"], 1,
        "{described}"
    );

    // Refusals, each with CloudWatch's code.
    let refused = |args: &[&str], code: &str| {
        let err = s.aws_err(args);
        assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    };
    refused(
        &[
            "logs",
            "put-retention-policy",
            "--log-group-name",
            group,
            "--retention-in-days",
            "2",
        ],
        "InvalidParameterException",
    );
    refused(
        &[
            "logs",
            "put-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            "web-1",
            "--log-events",
            &json!([{"timestamp": now, "message": "b"}, {"timestamp": now - 1, "message": "a"}])
                .to_string(),
        ],
        "InvalidParameterException",
    );
    refused(
        &[
            "logs",
            "put-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            "web-2",
            "--log-events",
            &json!([{"timestamp": now, "message": "a"}]).to_string(),
        ],
        "ResourceNotFoundException",
    );
    refused(
        &["logs", "create-log-group", "--log-group-name", "bad name"],
        "InvalidParameterException",
    );
    refused(
        &[
            "logs",
            "create-log-group",
            "--log-group-name",
            "tagged",
            "--tags",
            "k=v",
        ],
        "InvalidParameterException",
    );

    // A full batch (1 MiB of messages) is taken; answers stop at about 1 MiB and page on.
    let paged: Value = serde_json::from_str(
        s.python(
            r#"
import json, os, time, boto3
logs = boto3.client("logs", endpoint_url=os.environ["ENDPOINT"])
logs.create_log_stream(logGroupName="app/orders", logStreamName="big")
now = int(time.time() * 1000)
for batch in range(2):
    logs.put_log_events(logGroupName="app/orders", logStreamName="big", logEvents=[
        {"timestamp": now, "message": str(batch * 4 + i) + "x" * (255 * 1024)} for i in range(4)])
pages = [len(p["events"]) for p in logs.get_paginator("filter_log_events").paginate(
    logGroupName="app/orders", logStreamNames=["big"])]
first = logs.get_log_events(logGroupName="app/orders", logStreamName="big", startFromHead=True)
print(json.dumps({"pages": pages, "first": len(first["events"])}))
"#,
        )
        .trim(),
    )
    .unwrap();
    let pages: Vec<u64> = paged["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(pages.iter().sum::<u64>(), 8, "{paged}");
    assert!(pages.len() >= 2 && pages[0] < 8, "{paged}");
    assert!(paged["first"].as_u64().unwrap() < 8, "{paged}");

    s.aws(&["logs", "delete-log-group", "--log-group-name", group]);
    refused(
        &["logs", "delete-log-group", "--log-group-name", group],
        "ResourceNotFoundException",
    );
}

#[test]
fn logs_operations_are_authorized_on_the_group_they_name() {
    let s = Server::start();
    s.create_fixture("mine", &[]);
    s.create_fixture("theirs", &[]);
    print(&s, "mine", "mine says hi");
    print(&s, "theirs", "theirs says hi");
    for f in ["mine", "theirs"] {
        s.wait_logs(f, Duration::from_secs(20), |l| {
            l.iter().any(|l| l.contains("REPORT"))
        });
    }
    let reader = user_with_policy(
        &s,
        "reader",
        &json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": ["logs:FilterLogEvents", "logs:DescribeLogStreams", "logs:GetLogEvents"],
            "Resource": "arn:aws:logs:*:*:log-group:/aws/lambda/mine*"
        }]}),
    );
    let script = format!(
        r#"
import json, os, boto3, botocore
from botocore.config import Config
logs = boto3.client("logs", endpoint_url=os.environ["ENDPOINT"], aws_access_key_id={key:?},
                    aws_secret_access_key={secret:?}, region_name="us-east-1",
                    config=Config(retries={{"total_max_attempts": 1}}))
out = {{}}
def attempt(name, fn, **kw):
    try:
        r = fn(**kw)
        out[name] = len(r.get("events", r.get("logStreams", [])))
    except botocore.exceptions.ClientError as e:
        out[name] = e.response["Error"]["Code"]
attempt("mine", logs.filter_log_events, logGroupName="/aws/lambda/mine", filterPattern="hi")
attempt("theirs", logs.filter_log_events, logGroupName="/aws/lambda/theirs")
attempt("theirs_by_arn", logs.filter_log_events, logGroupIdentifier="arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/theirs")
attempt("missing", logs.filter_log_events, logGroupName="/aws/lambda/ghost")
attempt("streams", logs.describe_log_streams, logGroupName="/aws/lambda/mine")
attempt("groups", logs.describe_log_groups)
attempt("create", logs.create_log_group, logGroupName="mine2")
attempt("put", logs.put_log_events, logGroupName="/aws/lambda/mine", logStreamName="s", logEvents=[{{"timestamp": 1, "message": "x"}}])
print(json.dumps(out))
"#,
        key = reader.key,
        secret = reader.secret
    );
    let out: Value = serde_json::from_str(s.python(&script).trim()).unwrap();
    assert_eq!(
        out,
        json!({
            "mine": 2,
            "theirs": "AccessDeniedException",
            "theirs_by_arn": "AccessDeniedException",
            "missing": "AccessDeniedException",
            "streams": 1,
            "groups": "AccessDeniedException",
            "create": "AccessDeniedException",
            "put": "AccessDeniedException",
        })
    );
    // Unsigned requests never reach a handler.
    let (status, _, body) = s.http_unsigned(
        "POST",
        "/",
        &[
            ("x-amz-target", "Logs_20140328.DescribeLogGroups"),
            ("content-type", "application/x-amz-json-1.1"),
        ],
        b"{}",
    );
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));

    // Each refusal is in Warden's security log, with who and why, and so is a sandbox
    // kill; the admin reads them like any log group.
    s.create_fixture("sleepy", &["--timeout", "1"]);
    let payload = json!({"action": "sleep", "ms": 3000}).to_string();
    let (status, _, _) = s.http(
        "POST",
        "/2015-03-31/functions/sleepy/invocations",
        &[],
        payload.as_bytes(),
    );
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = s.aws(&[
            "logs",
            "filter-log-events",
            "--log-group-name",
            "/aws/warden/security",
            "--filter-pattern",
            r#"{ $.event = "AccessDenied" || $.event = "SandboxKill" || $.event = "AuthenticationFailure" }"#,
        ]);
        let events: Vec<Value> = found["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap())
            .collect();
        let denied = events
            .iter()
            .filter(|e| {
                e["event"] == "AccessDenied"
                    && e["errorMessage"]
                        .as_str()
                        .is_some_and(|m| m.contains(":user/reader"))
            })
            .count();
        let unsigned = events
            .iter()
            .filter(|e| {
                e["event"] == "AuthenticationFailure" && e["sourceIPAddress"] == "127.0.0.1"
            })
            .count();
        let killed = events.iter().any(|e| {
            e["event"] == "SandboxKill" && e["function"] == "sleepy" && e["reason"] == "timeout"
        });
        if denied == 6 && unsigned == 1 && killed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{denied} denials, {unsigned} unsigned, killed {killed}: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
