//! Metric alarms through the AWS CLI: an alarm on a function's `Errors` and one on the
//! account's `AccessDenied` go to `ALARM` once the minute's datapoints show the breach, and
//! notify by invoking a function with CloudWatch's alarm event; `SetAlarmState`, the
//! history, and the refusals (actions of other kinds or accounts, actions on functions the
//! author may not invoke).

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

const NOTIFY: &str = "import json\ndef handler(event, context):\n    print('ALARM-EVENT ' + json.dumps(event))\n    return 'ok'\n";
const BOOM: &str = "def handler(event, context):\n    raise Exception('boom')\n";

fn function(s: &Server, name: &str, code: &str) -> String {
    let zip = format!("fileb://{}", python_zip(&[("app.py", code)]).display());
    let out = s.aws(&[
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
    ]);
    out["FunctionArn"].as_str().unwrap().to_owned()
}

fn put_alarm(s: &Server, name: &str, metric: &[&str], action: &str) -> std::process::Output {
    let mut args = vec![
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        name,
        "--statistic",
        "Sum",
        "--period",
        "60",
        "--evaluation-periods",
        "1",
        "--comparison-operator",
        "GreaterThanThreshold",
        "--alarm-actions",
        action,
    ];
    args.extend_from_slice(metric);
    s.aws_raw(&args)
}

fn alarm_state(s: &Server, name: &str) -> String {
    let out = s.aws(&["cloudwatch", "describe-alarms", "--alarm-names", name]);
    out["MetricAlarms"][0]["StateValue"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// The alarm events the notify function received.
fn events(s: &Server) -> Vec<Value> {
    s.logs("notify")
        .iter()
        .filter_map(|l| l.split_once("ALARM-EVENT ").map(|(_, e)| e.to_owned()))
        .filter_map(|e| serde_json::from_str(&e).ok())
        .collect()
}

#[test]
fn alarms_go_to_alarm_on_breaching_minutes_and_invoke_their_action() {
    let s = Server::start();
    let notify = function(&s, "notify", NOTIFY);
    function(&s, "boom", BOOM);
    let out = put_alarm(
        &s,
        "boom-errors",
        &[
            "--namespace",
            "AWS/Lambda",
            "--metric-name",
            "Errors",
            "--dimensions",
            "Name=FunctionName,Value=boom",
            "--threshold",
            "0",
        ],
        &notify,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = put_alarm(
        &s,
        "denials",
        &[
            "--namespace",
            "Warden/Security",
            "--metric-name",
            "AccessDenied",
            "--threshold",
            "2",
        ],
        &notify,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(alarm_state(&s, "boom-errors"), "INSUFFICIENT_DATA");

    // The two errors, and one principal denied again and again, each within one minute
    // (the alarms' period): the calls start early enough in a minute to end in it.
    let into_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if into_minute > 20 {
        std::thread::sleep(Duration::from_secs(61 - into_minute));
    }
    let payload = tempfile::NamedTempFile::new().unwrap();
    for _ in 0..2 {
        let meta = s.aws(&[
            "lambda",
            "invoke",
            "--function-name",
            "boom",
            "--payload",
            "{}",
            payload.path().to_str().unwrap(),
        ]);
        assert_eq!(meta["FunctionError"], "Unhandled");
    }
    let snooper = user_with_policy(
        &s,
        "snooper",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"}]}),
    );
    for _ in 0..3 {
        let out = aws_as(&s, &snooper, &["lambda", "list-functions"]);
        assert!(!out.status.success());
    }

    // Evaluated once the minute's datapoints are written: within two minutes.
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while (alarm_state(&s, "boom-errors") != "ALARM" || alarm_state(&s, "denials") != "ALARM")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_secs(2));
    }
    for name in ["boom-errors", "denials"] {
        if alarm_state(&s, name) != "ALARM" {
            // Say what the alarm saw, and what the metric holds, before failing.
            let described = s.aws(&["cloudwatch", "describe-alarms", "--alarm-names", name]);
            let history = s.aws(&["cloudwatch", "describe-alarm-history", "--alarm-name", name]);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let errors = s.aws(&[
                "cloudwatch",
                "get-metric-statistics",
                "--namespace",
                "AWS/Lambda",
                "--metric-name",
                "Errors",
                "--dimensions",
                "Name=FunctionName,Value=boom",
                "--start-time",
                &(now - 600).to_string(),
                "--end-time",
                &(now + 60).to_string(),
                "--period",
                "60",
                "--statistics",
                "Sum",
            ]);
            panic!("{name} is not in ALARM: {described}\n{history}\nErrors: {errors}");
        }
    }
    let described = s.aws(&[
        "cloudwatch",
        "describe-alarms",
        "--alarm-names",
        "boom-errors",
    ]);
    let reason = described["MetricAlarms"][0]["StateReason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("Threshold Crossed: 1 out of the last 1 datapoints [2]"),
        "{reason}"
    );

    s.wait_logs("notify", Duration::from_secs(60), |_| events(&s).len() >= 2);
    let events = events(&s);
    let boom = events
        .iter()
        .find(|e| e["alarmData"]["alarmName"] == "boom-errors")
        .expect("the errors alarm's event");
    assert_eq!(boom["source"], "aws.cloudwatch");
    assert_eq!(boom["alarmData"]["state"]["value"], "ALARM");
    assert_eq!(
        boom["alarmData"]["previousState"]["value"],
        "INSUFFICIENT_DATA"
    );
    assert_eq!(
        boom["alarmArn"],
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:boom-errors"
    );
    let history = s.aws(&[
        "cloudwatch",
        "describe-alarm-history",
        "--alarm-name",
        "boom-errors",
    ]);
    let summaries: Vec<&str> = history["AlarmHistoryItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["HistorySummary"].as_str().unwrap())
        .collect();
    assert!(
        summaries.contains(&"Alarm updated from INSUFFICIENT_DATA to ALARM"),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|h| h.starts_with("Successfully executed action arn:aws:lambda:")),
        "{summaries:?}"
    );
}

#[test]
fn set_alarm_state_notifies_and_refusals_name_the_problem() {
    let s = Server::start();
    let notify = function(&s, "notify", NOTIFY);
    let metric = [
        "--namespace",
        "App",
        "--metric-name",
        "Orders",
        "--threshold",
        "10",
    ];
    let out = put_alarm(&s, "orders", &metric, &notify);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.aws(&[
        "cloudwatch",
        "set-alarm-state",
        "--alarm-name",
        "orders",
        "--state-value",
        "ALARM",
        "--state-reason",
        "testing the pager",
    ]);
    assert_eq!(alarm_state(&s, "orders"), "ALARM");
    s.wait_logs("notify", Duration::from_secs(60), |_| {
        !events(&s).is_empty()
    });
    assert_eq!(
        events(&s)[0]["alarmData"]["state"]["reason"],
        "testing the pager"
    );

    // Actions other than functions and topics of this account are refused by name,
    // nothing stored.
    for (name, action, said) in [
        (
            "scaling",
            "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:x",
            "is not supported",
        ),
        (
            "elsewhere",
            "arn:aws:sns:us-east-1:999999999999:pager",
            "is not a topic of this account",
        ),
    ] {
        let out = put_alarm(&s, name, &metric, action);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(error_code(&err), "InvalidParameterValue", "{err}");
        assert!(err.contains(said), "{err}");
    }
    // An alarm may only invoke what its author may invoke.
    let watcher = user_with_policy(
        &s,
        "watcher",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "cloudwatch:*", "Resource": "*"}]}),
    );
    let out = aws_as(
        &s,
        &watcher,
        &[
            "cloudwatch",
            "put-metric-alarm",
            "--alarm-name",
            "sneaky",
            "--namespace",
            "App",
            "--metric-name",
            "Orders",
            "--statistic",
            "Sum",
            "--period",
            "60",
            "--evaluation-periods",
            "1",
            "--threshold",
            "1",
            "--comparison-operator",
            "GreaterThanThreshold",
            "--alarm-actions",
            &notify,
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AccessDenied") && err.contains("lambda:InvokeFunction"),
        "{err}"
    );
    let all = s.aws(&["cloudwatch", "describe-alarms"]);
    let names: Vec<&str> = all["MetricAlarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AlarmName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders"]);
    s.aws(&["cloudwatch", "delete-alarms", "--alarm-names", "orders"]);
    let all = s.aws(&["cloudwatch", "describe-alarms"]);
    assert_eq!(all["MetricAlarms"], json!([]));
}

const MATH_ALARM: &str = r#"
import datetime, json, os, time, boto3
cw = boto3.client("cloudwatch", endpoint_url=os.environ["ENDPOINT"])
now = datetime.datetime.now(datetime.timezone.utc)
# This minute is evaluated once it closes.
cw.put_metric_data(Namespace="Shop", MetricData=[{"MetricName": "Orders", "Value": 5}])
cw.put_metric_alarm(
    AlarmName="orders-x10", EvaluationPeriods=1, Threshold=40, ComparisonOperator="GreaterThanThreshold",
    Metrics=[
        {"Id": "m1", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": "Shop", "MetricName": "Orders"}, "Period": 60, "Stat": "Sum"}},
        {"Id": "e1", "Expression": "m1 * 10", "Label": "ten times"},
    ],
)
refused = {}
for name, metrics in [
    ("two returned", [
        {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "Shop", "MetricName": "Orders"}, "Period": 60, "Stat": "Sum"}},
        {"Id": "e1", "Expression": "m1 * 10"},
    ]),
    ("bad expression", [
        {"Id": "m1", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": "Shop", "MetricName": "Orders"}, "Period": 60, "Stat": "Sum"}},
        {"Id": "e1", "Expression": "IF(m1, 1)"},
    ]),
]:
    try:
        cw.put_metric_alarm(AlarmName="bad", EvaluationPeriods=1, Threshold=1,
                            ComparisonOperator="GreaterThanThreshold", Metrics=metrics)
        refused[name] = None
    except cw.exceptions.ClientError as e:
        refused[name] = e.response["Error"]["Code"]
deadline = time.time() + 150
while True:
    alarm = cw.describe_alarms(AlarmNames=["orders-x10"])["MetricAlarms"][0]
    if alarm["StateValue"] == "ALARM" or time.time() > deadline:
        break
    time.sleep(2)
print(json.dumps({"state": alarm["StateValue"], "reason": alarm["StateReason"],
                  "metrics": [m["Id"] for m in alarm["Metrics"]], "refused": refused,
                  "names": [a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]]}))
"#;

#[test]
fn a_metric_math_alarm_watches_an_expression_over_its_metrics() {
    let s = Server::start();
    let out: Value = serde_json::from_str(s.python(MATH_ALARM).trim()).unwrap();
    assert_eq!(out["state"], "ALARM", "{out}");
    assert!(out["reason"].as_str().unwrap().contains("[50"), "{out}");
    assert_eq!(out["metrics"], json!(["m1", "e1"]));
    assert_eq!(
        out["refused"],
        json!({"two returned": "InvalidParameterValue", "bad expression": "ValidationError"})
    );
    assert_eq!(
        out["names"],
        json!(["orders-x10"]),
        "refused alarms are not kept"
    );
}
