//! CloudWatch's metric operations through boto3 and the AWS CLI, which speak the Smithy
//! RPC v2 CBOR protocol to it: custom metrics put and read back as statistics, metric
//! data and listings; Lambda's own metrics of an invoked function, once its minute is
//! closed; and the refusals (platform namespaces, bad periods, metric math, no
//! permission) with CloudWatch's error codes.

use serde_json::{json, Value};

use crate::harness::*;

const SCRIPT: &str = r#"
import datetime, json, os, boto3, botocore
from botocore.config import Config
cw = boto3.client("cloudwatch", endpoint_url=os.environ["ENDPOINT"], config=Config(retries={"total_max_attempts": 1}))
now = datetime.datetime.now(datetime.timezone.utc)
dims = [{"Name": "Shop", "Value": "north"}]
cw.put_metric_data(Namespace="App", MetricData=[
    {"MetricName": "Orders", "Dimensions": dims, "Value": 3, "Unit": "Count"},
    {"MetricName": "Orders", "Dimensions": dims, "Value": 4, "Unit": "Count"},
    {"MetricName": "Latency", "Values": [10, 20, 30], "Counts": [1, 1, 2]},
    {"MetricName": "Batch", "StatisticValues": {"SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4}},
])
window = dict(StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=2))
stats = cw.get_metric_statistics(Namespace="App", MetricName="Orders", Dimensions=dims, Period=60,
                                 Statistics=["Sum", "SampleCount", "Average", "Maximum"], **window)
latency = cw.get_metric_statistics(Namespace="App", MetricName="Latency", Period=300, Statistics=["Average"], **window)
data = cw.get_metric_data(MetricDataQueries=[
    {"Id": "orders", "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Orders", "Dimensions": dims}, "Period": 60, "Stat": "Sum"}},
    {"Id": "hidden", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Batch"}, "Period": 60, "Stat": "Average"}},
    {"Id": "doubled", "Expression": "orders * 2 + hidden", "Label": "twice"},
    {"Id": "total", "Expression": "SUM(METRICS())"},
], **window)
listed = cw.list_metrics(Namespace="App")
filtered = cw.list_metrics(Namespace="App", Dimensions=[{"Name": "Shop"}])
errors = {}
def expect(name, fn, **kw):
    try:
        fn(**kw)
        errors[name] = None
    except botocore.exceptions.ClientError as e:
        errors[name] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
expect("platform", cw.put_metric_data, Namespace="AWS/Lambda", MetricData=[{"MetricName": "Invocations", "Value": 1}])
expect("period", cw.get_metric_statistics, Namespace="App", MetricName="Orders", Period=30, Statistics=["Sum"], **window)
expect("math", cw.get_metric_data, MetricDataQueries=[{"Id": "m", "Expression": "IF(m, 1)"}], **window)
expect("cycle", cw.get_metric_data, MetricDataQueries=[{"Id": "a", "Expression": "b + 1"}, {"Id": "b", "Expression": "a * 2"}], **window)
expect("order", cw.get_metric_statistics, Namespace="App", MetricName="Orders", Period=60, Statistics=["Sum"],
       StartTime=now, EndTime=now - datetime.timedelta(minutes=1))
expect("both", cw.put_metric_data, Namespace="App", MetricData=[{"MetricName": "X", "Value": 1, "Values": [1]}])
expect("resolution", cw.put_metric_data, Namespace="App", MetricData=[{"MetricName": "X", "Value": 1, "StorageResolution": 1}])
expect("unserved", cw.list_metrics, Namespace="App", RecentlyActive="PT3H")
other_unit = cw.get_metric_statistics(Namespace="App", MetricName="Orders", Dimensions=dims, Period=60,
                                      Statistics=["Sum"], Unit="Seconds", **window)
def plain(v):
    return json.loads(json.dumps(v, default=str))
print(json.dumps({
    "stats": plain(stats["Datapoints"]), "label": stats["Label"],
    "latency": plain(latency["Datapoints"]),
    "data": plain(data["MetricDataResults"]),
    "listed": sorted((m["MetricName"], json.dumps(m["Dimensions"])) for m in listed["Metrics"]),
    "filtered": [m["MetricName"] for m in filtered["Metrics"]],
    "errors": errors,
    "other_unit": plain(other_unit["Datapoints"]),
}))
"#;

#[test]
fn custom_metrics_are_put_and_read_back_with_boto3() {
    let s = Server::start();
    let out: Value = serde_json::from_str(s.python(SCRIPT).trim()).unwrap();
    assert_eq!(out["label"], "Orders");
    let stats = &out["stats"][0];
    assert_eq!(out["stats"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(
        (stats["Sum"].as_f64(), stats["SampleCount"].as_f64()),
        (Some(7.0), Some(2.0))
    );
    assert_eq!(
        (stats["Average"].as_f64(), stats["Maximum"].as_f64()),
        (Some(3.5), Some(4.0))
    );
    assert_eq!(out["latency"][0]["Average"].as_f64(), Some(22.5), "{out}");
    let data = out["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "ReturnData false hides a query: {out}");
    assert_eq!(data[0]["Id"], "orders");
    assert_eq!(data[0]["Values"], json!([7.0]));
    assert_eq!(data[0]["StatusCode"], "Complete");
    // Metric math: 7 * 2 + Batch's average (10 / 4), and the sum of both metric queries.
    assert_eq!(
        (&data[1]["Id"], &data[1]["Label"]),
        (&json!("doubled"), &json!("twice"))
    );
    assert_eq!(data[1]["Values"], json!([16.5]), "{out}");
    assert_eq!(data[2]["Values"], json!([9.5]), "{out}");
    assert_eq!(data[1]["Timestamps"], data[0]["Timestamps"]);
    assert_eq!(
        out["listed"],
        json!([
            ["Batch", "[]"],
            ["Latency", "[]"],
            ["Orders", r#"[{"Name": "Shop", "Value": "north"}]"#]
        ])
    );
    assert_eq!(out["filtered"], json!(["Orders"]));
    assert_eq!(
        out["errors"],
        json!({
            "platform": ["InvalidParameterValue", 400],
            "period": ["InvalidParameterValue", 400],
            "math": ["ValidationError", 400],
            "cycle": ["ValidationError", 400],
            "order": ["InvalidParameterValue", 400],
            "both": ["InvalidParameterValue", 400],
            "resolution": ["InvalidParameterValue", 400],
            "unserved": ["InvalidParameterValue", 400],
        })
    );
    assert_eq!(stats["Unit"], "Count", "the unit PutMetricData gave: {out}");
    assert_eq!(
        out["other_unit"],
        json!([]),
        "another unit has no datapoints"
    );
}

#[test]
fn lambdas_metrics_of_an_invoked_function_are_read_with_the_aws_cli() {
    let s = Server::start();
    s.create_fixture("measured", &[]);
    let out = tempfile::NamedTempFile::new().unwrap();
    for _ in 0..3 {
        s.aws(&[
            "lambda",
            "invoke",
            "--function-name",
            "measured",
            "--payload",
            "{}",
            out.path().to_str().unwrap(),
        ]);
    }
    // The minute closes at its end: wait for it, and no longer than two.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = (now - 600, now + 600);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    let stats = loop {
        let stats = s.aws(&[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/Lambda",
            "--metric-name",
            "Invocations",
            "--dimensions",
            "Name=FunctionName,Value=measured",
            "--start-time",
            &start.to_string(),
            "--end-time",
            &end.to_string(),
            "--period",
            "3600",
            "--statistics",
            "Sum",
        ]);
        // The invocations may straddle a minute: wait for all three to be counted.
        let counted: f64 = stats["Datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["Sum"].as_f64())
            .sum();
        if counted >= 3.0 || std::time::Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    // One datapoint per hour: the invocations may straddle an hour, so they are summed.
    let total = |v: &Value, stat: &str| -> f64 {
        v["Datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d[stat].as_f64())
            .sum()
    };
    assert_eq!(total(&stats, "Sum"), 3.0, "{stats}");
    assert_eq!(stats["Datapoints"][0]["Unit"], "Count");
    let duration = s.aws(&[
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        "AWS/Lambda",
        "--metric-name",
        "Duration",
        "--dimensions",
        "Name=FunctionName,Value=measured",
        "--start-time",
        &start.to_string(),
        "--end-time",
        &end.to_string(),
        "--period",
        "3600",
        "--statistics",
        "SampleCount",
        "Maximum",
        "--extended-statistics",
        "p99",
    ]);
    assert_eq!(total(&duration, "SampleCount"), 3.0, "{duration}");
    // The account's unreserved concurrency of each closed minute: the invocations ran one
    // at a time, so its maximum is 1.
    let unreserved = s.aws(&[
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        "AWS/Lambda",
        "--metric-name",
        "UnreservedConcurrentExecutions",
        "--start-time",
        &start.to_string(),
        "--end-time",
        &end.to_string(),
        "--period",
        "3600",
        "--statistics",
        "Maximum",
    ]);
    let most = unreserved["Datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["Maximum"].as_f64())
        .fold(0.0, f64::max);
    assert_eq!(most, 1.0, "{unreserved}");
    for point in duration["Datapoints"].as_array().unwrap() {
        assert_eq!(point["Unit"], "Milliseconds");
        let p99 = point["ExtendedStatistics"]["p99"].as_f64().unwrap();
        assert!(
            p99 > 0.0 && p99 <= point["Maximum"].as_f64().unwrap(),
            "{duration}"
        );
    }
    let listed = s.aws(&["cloudwatch", "list-metrics", "--namespace", "AWS/Lambda"]);
    let names: Vec<&str> = listed["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["MetricName"].as_str().unwrap())
        .collect();
    for name in ["Invocations", "Errors", "Duration", "ConcurrentExecutions"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }

    // Reading metrics takes cloudwatch:* permissions.
    let reader = user_with_policy(
        &s,
        "lambda-only",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}]}),
    );
    let out = aws_as(&s, &reader, &["cloudwatch", "list-metrics"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AccessDenied") && err.contains("cloudwatch:ListMetrics"),
        "{err}"
    );
}

/// botocore's own RPC v2 CBOR serializer and parser (the protocol other SDKs speak to
/// CloudWatch), with a SigV4 signature made by botocore.
const CBOR_SCRIPT: &str = r#"
import datetime, json, os, botocore.session, botocore.serialize, botocore.parsers, requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
session = botocore.session.get_session()
model = session.get_service_model("cloudwatch")
serializer = botocore.serialize.create_serializer("smithy-rpc-v2-cbor")
parser = botocore.parsers.create_parser("smithy-rpc-v2-cbor")
region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
def call(name, params):
    op = model.operation_model(name)
    req = serializer.serialize_to_request(params, op)
    aws = AWSRequest(method="POST", url=os.environ["ENDPOINT"] + req["url_path"], data=req["body"], headers=req["headers"])
    SigV4Auth(session.get_credentials(), "monitoring", region).add_auth(aws)
    p = aws.prepare()
    r = requests.post(p.url, data=p.body, headers=dict(p.headers), timeout=30)
    assert r.headers.get("smithy-protocol") == "rpc-v2-cbor", dict(r.headers)
    parsed = parser.parse({"status_code": r.status_code, "headers": r.headers, "body": r.content}, op.output_shape)
    return r.status_code, parsed
now = datetime.datetime.now(datetime.timezone.utc)
put = call("PutMetricData", {"Namespace": "Cbor", "MetricData": [{"MetricName": "Hits", "Value": 5, "Timestamp": now}]})
got = call("GetMetricStatistics", {"Namespace": "Cbor", "MetricName": "Hits", "Period": 60, "Statistics": ["Sum"],
           "StartTime": now - datetime.timedelta(minutes=5), "EndTime": now + datetime.timedelta(minutes=1)})
bad = call("GetMetricStatistics", {"Namespace": "Cbor", "MetricName": "Hits", "Period": 7, "Statistics": ["Sum"],
           "StartTime": now - datetime.timedelta(minutes=5), "EndTime": now})
print(json.dumps({
    "put": put[0],
    "got": [got[0], [[p["Sum"], p["Timestamp"].timestamp() % 60] for p in got[1]["Datapoints"]]],
    "bad": [bad[0], bad[1]["Error"]["Code"]],
}))
"#;

#[test]
fn the_rpc_v2_cbor_protocol_serves_botocores_own_serializer() {
    let s = Server::start();
    let out: Value = serde_json::from_str(s.python(CBOR_SCRIPT).trim()).unwrap();
    assert_eq!(
        out,
        json!({"put": 200, "got": [200, [[5.0, 0.0]]], "bad": [400, "InvalidParameterValue"]})
    );
}

#[test]
fn embedded_metric_format_lines_become_custom_metrics() {
    let s = Server::start();
    s.create_fixture("emitter", &[]);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let emf = json!({
        "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{
            "Namespace": "Shop", "Dimensions": [["Service"]],
            "Metrics": [{"Name": "CartLatency", "Unit": "Milliseconds"}]
        }]},
        "Service": "cart",
        "CartLatency": [12, 30],
    });
    // A directive on a platform namespace is not taken.
    let forged = json!({
        "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{
            "Namespace": "AWS/Lambda", "Metrics": [{"Name": "Errors"}]
        }]},
        "Errors": 1000,
    });
    for text in [emf.to_string(), forged.to_string()] {
        let payload = json!({"action": "print", "text": text}).to_string();
        let (status, _, _) = s.http(
            "POST",
            "/2015-03-31/functions/emitter/invocations",
            &[],
            payload.as_bytes(),
        );
        assert_eq!(status, 200);
    }
    let start = (now_ms / 1000 - 600).to_string();
    let end = (now_ms / 1000 + 600).to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let stats = loop {
        let stats = s.aws(&[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "Shop",
            "--metric-name",
            "CartLatency",
            "--dimensions",
            "Name=Service,Value=cart",
            "--start-time",
            &start,
            "--end-time",
            &end,
            "--period",
            "60",
            "--statistics",
            "SampleCount",
            "Sum",
            "Maximum",
        ]);
        if !stats["Datapoints"].as_array().unwrap().is_empty()
            || std::time::Instant::now() > deadline
        {
            break stats;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let point = &stats["Datapoints"][0];
    assert_eq!(
        (
            point["SampleCount"].as_f64(),
            point["Sum"].as_f64(),
            point["Maximum"].as_f64()
        ),
        (Some(2.0), Some(42.0), Some(30.0)),
        "{stats}"
    );
    assert_eq!(point["Unit"], "Milliseconds");
    let errors = s.aws(&[
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        "AWS/Lambda",
        "--metric-name",
        "Errors",
        "--start-time",
        &start,
        "--end-time",
        &end,
        "--period",
        "3600",
        "--statistics",
        "Sum",
    ]);
    let forged_sum: f64 = errors["Datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["Sum"].as_f64())
        .sum();
    assert!(forged_sum < 1000.0, "{errors}");
}

/// botocore made to speak CloudWatch's older query protocol: its own model, with the
/// protocol set to `query`, found first through `AWS_DATA_PATH`.
const QUERY_PROTOCOL: &str = r#"
import datetime, glob, gzip, json, os, tempfile
import botocore
root = tempfile.mkdtemp()
source = glob.glob(os.path.join(os.path.dirname(botocore.__file__), "data", "cloudwatch", "2010-08-01", "service-2.json*"))[0]
model = json.load(gzip.open(source) if source.endswith(".gz") else open(source))
model["metadata"]["protocol"] = "query"
model["metadata"]["protocols"] = ["query"]
os.makedirs(os.path.join(root, "cloudwatch", "2010-08-01"))
json.dump(model, open(os.path.join(root, "cloudwatch", "2010-08-01", "service-2.json"), "w"))
os.environ["AWS_DATA_PATH"] = root
import boto3
from botocore.config import Config
cw = boto3.client("cloudwatch", endpoint_url=os.environ["ENDPOINT"], config=Config(retries={"total_max_attempts": 1}))
seen = []
cw.meta.events.register("before-send", lambda request, **kw: seen.append(request.headers.get("Content-Type", b"")))
now = datetime.datetime.now(datetime.timezone.utc)
dims = [{"Name": "Shop", "Value": "north"}]
cw.put_metric_data(Namespace="App", MetricData=[
    {"MetricName": "Orders", "Dimensions": dims, "Value": 3, "Unit": "Count"},
    {"MetricName": "Orders", "Dimensions": dims, "Value": 4, "Unit": "Count"},
])
window = dict(StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=2))
stats = cw.get_metric_statistics(Namespace="App", MetricName="Orders", Dimensions=dims, Period=60,
                                 Statistics=["Sum", "Maximum"], **window)
data = cw.get_metric_data(MetricDataQueries=[
    {"Id": "orders", "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Orders", "Dimensions": dims}, "Period": 60, "Stat": "Sum"}},
    {"Id": "twice", "Expression": "orders * 2"},
], **window)
listed = cw.list_metrics(Namespace="App")["Metrics"]
cw.put_metric_alarm(AlarmName="q", Namespace="App", MetricName="Orders", Dimensions=dims, Statistic="Sum",
                    Period=60, EvaluationPeriods=1, Threshold=100, ComparisonOperator="GreaterThanThreshold")
alarm = cw.describe_alarms(AlarmNames=["q"])["MetricAlarms"][0]
try:
    cw.put_metric_data(Namespace="AWS/Lambda", MetricData=[{"MetricName": "Errors", "Value": 1}])
    error = None
except cw.exceptions.ClientError as e:
    error = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
point = stats["Datapoints"][0]
print(json.dumps({
    "form": all(c.startswith(b"application/x-www-form-urlencoded") for c in seen) and len(seen) > 0,
    "sum": point["Sum"], "max": point["Maximum"], "unit": point["Unit"],
    "data": [[r["Id"], r["Values"]] for r in data["MetricDataResults"]],
    "listed": [[m["MetricName"], m["Dimensions"]] for m in listed],
    "alarm": [alarm["AlarmName"], alarm["StateValue"], alarm["Threshold"], alarm["Dimensions"]],
    "error": error,
}))
"#;

#[test]
fn the_older_query_protocol_is_served_to_a_client_that_speaks_it() {
    let s = Server::start();
    let out: Value = serde_json::from_str(s.python(QUERY_PROTOCOL).trim()).unwrap();
    assert_eq!(
        out["form"], true,
        "botocore spoke the query protocol: {out}"
    );
    assert_eq!(
        (out["sum"].as_f64(), out["max"].as_f64()),
        (Some(7.0), Some(4.0)),
        "{out}"
    );
    assert_eq!(out["unit"], "Count");
    assert_eq!(out["data"], json!([["orders", [7.0]], ["twice", [14.0]]]));
    assert_eq!(
        out["listed"],
        json!([["Orders", [{"Name": "Shop", "Value": "north"}]]])
    );
    assert_eq!(
        out["alarm"],
        json!(["q", "INSUFFICIENT_DATA", 100.0, [{"Name": "Shop", "Value": "north"}]])
    );
    assert_eq!(out["error"], json!(["InvalidParameterValue", 400]));
}
