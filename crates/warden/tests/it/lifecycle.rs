//! The life of an instance through the real server: an instance the engine decided to
//! kill is never handed another invocation, a fork-bombed instance is torn down completely
//! and does not hold up the server's shutdown, admission respects the host memory budget,
//! and functions reach only the services Warden serves through its endpoint.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{python_zip, wait_gone, Server, EXEC_ROLE};

/// Invokes synchronously with a signed raw request; returns the status, the
/// `X-Amz-Function-Error` header and the body as JSON (or as a JSON string when it is not).
fn invoke(s: &Server, function: &str, payload: &Value) -> (u16, Option<String>, Value) {
    let (status, headers, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{function}/invocations"),
        &[],
        payload.to_string().as_bytes(),
    );
    let error = headers
        .iter()
        .find(|(k, _)| k == "x-amz-function-error")
        .map(|(_, v)| v.clone());
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, error, body)
}

fn create_python(s: &Server, name: &str, code: &str, extra: &[&str]) {
    let zip = format!("fileb://{}", python_zip(&[("app.py", code)]).display());
    let mut args = vec![
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        crate::harness::python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        EXEC_ROLE,
        "--zip-file",
        &zip,
    ];
    args.extend_from_slice(extra);
    s.aws(&args);
}

#[test]
fn the_invoke_after_a_timeout_never_gets_the_killed_instance() {
    let s = Server::start();
    s.create_fixture("slow", &["--timeout", "1"]);
    // The kill after a timeout takes a moment to be observed; an invoke right behind it
    // used to find the dying instance in the warm pool about a third of the time.
    for round in 0..10 {
        let (status, error, body) = invoke(&s, "slow", &json!({"action": "sleep", "ms": 5000}));
        assert_eq!(status, 200, "round {round}: {body}");
        assert_eq!(error.as_deref(), Some("Unhandled"), "round {round}: {body}");
        assert_eq!(
            body["errorType"], "Sandbox.Timedout",
            "round {round}: {body}"
        );
        let (status, error, body) = invoke(&s, "slow", &json!({"action": "echo", "round": round}));
        assert_eq!(status, 200, "round {round}: {body}");
        assert_eq!(
            (error, body),
            (None, json!({"action": "echo", "round": round})),
            "round {round}: the invoke after a timeout must run on a fresh instance"
        );
    }
    // After a response too large to return (which may also run into the timeout), the
    // instance is replaced: `lambda_runtime` exits once its response is refused, and the
    // next invoke used to find it in the warm pool still alive, then fail with its exit.
    for round in 0..5 {
        let (_, error, before) = invoke(&s, "slow", &json!({"action": "context"}));
        assert_eq!(error, None, "round {round}: {before}");
        let (status, error, body) = invoke(&s, "slow", &json!({"action": "big"}));
        assert_eq!(status, 200, "round {round}");
        assert_eq!(error.as_deref(), Some("Unhandled"), "round {round}");
        let error_type = body["errorType"].as_str().unwrap_or_default();
        assert!(
            ["Function.ResponseSizeTooLarge", "Sandbox.Timedout"].contains(&error_type),
            "round {round}: {error_type}"
        );
        let (status, error, after) = invoke(&s, "slow", &json!({"action": "context"}));
        assert_eq!(
            (status, error),
            (200, None),
            "round {round}: the invoke after an oversized response runs: {after}"
        );
        assert_ne!(
            before["instance"], after["instance"],
            "round {round}: it runs on a new instance"
        );
    }
}

/// A fork bomb that keeps every process busy: each one forks for ever and ignores the
/// refusals once the pids limit is reached, so the instance is full of runnable processes
/// sharing the small CPU quota of a 128 MB function when its timeout kills it.
const FORK_BOMB: &str = r#"
import os

def handler(event, context):
    while True:
        try:
            os.fork()
        except OSError:
            pass
"#;

/// Deploys the fork bomb, runs it into its timeout and returns the host pids of the
/// instance's processes as they were right after the caller got its answer.
fn detonate(s: &Server) -> Vec<u32> {
    create_python(s, "bomb", FORK_BOMB, &["--timeout", "5"]);
    let (status, error, body) = invoke(s, "bomb", &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(error.as_deref(), Some("Unhandled"), "{body}");
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    s.instance_processes()
}

#[test]
fn a_timed_out_fork_bomb_is_torn_down_completely() {
    let s = Server::start();
    let pids = detonate(&s);
    // The kill must finish what the processes were doing, not wait for the CPU quota to
    // let hundreds of them die one slice at a time (that took over a minute).
    wait_gone(
        &pids,
        Duration::from_secs(15),
        "processes of the killed fork bomb",
    );
    // The snapshot can miss a process forked while it was taken; nothing of the instance
    // may be left either way (its init last, once it has reaped the rest).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = s.instance_processes();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "instance processes left 15 s after the fork bomb's teardown: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shutdown_after_a_fork_bomb_completes_and_leaves_nothing() {
    let mut s = Server::start();
    let pids = detonate(&s);
    // `stop` sends SIGTERM and fails if the server is still running 20 s later.
    let status = s.stop().expect("the server was running");
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    wait_gone(
        &pids,
        Duration::from_secs(10),
        "instance processes after shutdown",
    );
}

/// Waits (bounded) until the server has started an instance process.
fn wait_for_an_instance(s: &Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.instance_processes().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no instance started within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cold_starts_stay_within_the_host_memory_budget() {
    // Each instance of a 1024 MB function with the default 512 MB `/tmp` may use 1536 MiB:
    // exactly one fits in this budget.
    let s = Server::start_with(&["--memory-budget", "1.5GiB"]);
    s.create_fixture("first", &["--memory-size", "1024", "--timeout", "30"]);
    s.create_fixture("second", &["--memory-size", "1024"]);

    std::thread::scope(|scope| {
        let busy = scope.spawn(|| invoke(&s, "first", &json!({"action": "sleep", "ms": 4000})));
        wait_for_an_instance(&s);
        // The first instance is busy and holds the whole budget: nothing can be evicted.
        let (status, headers, body) = s.http(
            "POST",
            "/2015-03-31/functions/second/invocations",
            &[],
            br#"{"action":"echo"}"#,
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 429, "{body}");
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "x-amzn-errortype" && v.starts_with("TooManyRequestsException")),
            "{headers:?}"
        );
        assert_eq!(body["Reason"], "HostMemoryBudgetExceeded", "{body}");
        let (status, error, body) = busy.join().unwrap();
        assert_eq!((status, error), (200, None), "{body}");
        assert_eq!(body, json!({"slept_ms": 4000}));
    });

    // Now the first instance is idle: the second function's cold start evicts it.
    let (_, error, before) = invoke(&s, "first", &json!({"action": "context"}));
    assert_eq!(error, None, "{before}");
    let (status, error, body) = invoke(&s, "second", &json!({"action": "echo", "n": 1}));
    assert_eq!(
        (status, error, body),
        (200, None, json!({"action": "echo", "n": 1}))
    );
    // Warm invokes are never refused, even with the budget full.
    let (status, error, _) = invoke(&s, "second", &json!({"action": "echo"}));
    assert_eq!((status, error), (200, None));
    // And the first function had lost its instance: it starts a new one (evicting the
    // second's in turn).
    let (_, error, after) = invoke(&s, "first", &json!({"action": "context"}));
    assert_eq!(error, None, "{after}");
    assert_ne!(
        before["instance"], after["instance"],
        "the idle instance was evicted"
    );
}

/// An instance retired by a configuration change still holds its memory until it is
/// reaped, a moment later: the cold start right after the change waits for it rather than
/// being refused.
#[test]
fn a_cold_start_right_after_a_configuration_change_waits_for_the_retired_instance() {
    // Exactly one instance of this function fits in the budget.
    let s = Server::start_with(&["--memory-budget", "1.5GiB"]);
    s.create_fixture("changing", &["--memory-size", "1024"]);
    for round in 0..10 {
        let (status, error, body) = invoke(&s, "changing", &json!({"action": "echo"}));
        assert_eq!((status, error), (200, None), "round {round}: {body}");
        // Retires the idle instance; the next invoke needs a new one at once.
        let (status, _, body) = s.http(
            "PUT",
            "/2015-03-31/functions/changing/configuration",
            &[],
            json!({"Description": format!("round {round}")})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let (status, error, body) = invoke(&s, "changing", &json!({"action": "echo"}));
        assert_eq!(
            (status, error),
            (200, None),
            "round {round}: the cold start after the change was refused: {body}"
        );
    }
}

/// Reports where boto3 sends each service's calls from inside a function, and calls the
/// services Warden serves with the function's role.
const ENDPOINTS: &str = r#"
import os, boto3

def handler(event, context):
    clients = {name: boto3.client(name) for name in ["lambda", "iam", "sts", "s3", "dynamodb"]}
    return {
        "global": os.environ.get("AWS_ENDPOINT_URL"),
        "endpoints": {name: c.meta.endpoint_url for name, c in clients.items()},
        "caller": clients["sts"].get_caller_identity()["Arn"],
        "function": clients["lambda"].get_function_configuration(
            FunctionName=context.function_name)["FunctionName"],
        "role": clients["iam"].get_role(RoleName="lambda-exec")["Role"]["RoleName"],
    }
"#;

#[test]
fn functions_reach_warden_only_for_the_services_it_serves() {
    let s = Server::start();
    s.install_python_sdk();
    let allow = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["lambda:GetFunctionConfiguration", "iam:GetRole"], "Resource": "*"}]});
    s.aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "lambda-exec",
        "--policy-name",
        "look-around",
        "--policy-document",
        &allow.to_string(),
    ]);
    // Importing boto3 at init needs more CPU than 128 MB's 8 % of a core gives within
    // the 10 s init phase on a busy machine.
    create_python(
        &s,
        "where",
        ENDPOINTS,
        &["--timeout", "30", "--memory-size", "1024"],
    );
    let (status, error, body) = invoke(&s, "where", &json!({}));
    assert_eq!((status, error), (200, None), "{body}");
    // Lambda, IAM and STS calls reach Warden (through the sandbox's relay) and work with
    // the function's role.
    let warden = "http://127.0.0.1:9002";
    for service in ["lambda", "iam", "sts"] {
        assert_eq!(body["endpoints"][service], warden, "{body}");
    }
    assert_eq!(body["function"], "where", "{body}");
    assert_eq!(body["role"], "lambda-exec", "{body}");
    assert!(
        body["caller"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:sts::123456789012:assumed-role/lambda-exec/"),
        "{body}"
    );
    // Other services are not sent to Warden, whose answer could only mislead.
    assert_eq!(body["global"], Value::Null, "{body}");
    for service in ["s3", "dynamodb"] {
        let url = body["endpoints"][service].as_str().unwrap();
        assert!(
            url.starts_with("https://") && url.ends_with(".amazonaws.com"),
            "{service} goes where the SDK sends it on Lambda: {body}"
        );
    }
}

/// Spins for 1.5 s of wall time and answers the CPU time it got over the wall time.
const SPIN: &str = "import time\n\
def handler(event, context):\n    \
    wall, cpu = time.monotonic(), time.process_time()\n    \
    while time.monotonic() - wall < 1.5:\n        pass\n    \
    return (time.process_time() - cpu) / (time.monotonic() - wall)\n";

fn spin_share(s: &Server, name: &str) -> f64 {
    create_python(s, name, SPIN, &["--memory-size", "128", "--timeout", "60"]);
    let (status, error, body) = invoke(s, name, &json!({}));
    assert_eq!((status, error), (200, None), "{body}");
    body.as_f64().unwrap()
}

/// Lambda's proportional CPU: a spin loop at 128 MB gets about 7 % of one CPU over its
/// run (the quota is 1 ms per 12.5 ms period); under `--cpu-scaling off` it is not held
/// to that. Ratios of CPU time to wall time, never a duration.
#[test]
fn a_128_mb_function_gets_its_share_of_a_cpu_unless_cpu_scaling_is_off() {
    let s = Server::start();
    let share = spin_share(&s, "spin");
    assert!(
        (0.03..0.13).contains(&share),
        "share of one CPU at 128 MB: {share}"
    );
    let free = Server::start_with(&["--cpu-scaling", "off"]);
    let unlimited = spin_share(&free, "spin");
    assert!(
        unlimited > 3.0 * share,
        "with --cpu-scaling off: {unlimited}, with Lambda's scaling: {share}"
    );
}

/// `(nr_periods, nr_throttled)` from the `cpu.stat` of the CPU cgroup the process `pid`
/// is in: the kernel's count of the enforcement periods in which the cgroup ran, and of
/// those in which it used its whole quota and was stopped.
fn cpu_periods(pid: u32) -> (u64, u64) {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // The v1 `cpu` hierarchy where there is one, else the unified one.
    let (v1, path) = own
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let v1 = controllers.split(',').any(|c| c == "cpu");
            (v1 || controllers.is_empty()).then(|| (v1, path.to_owned()))
        })
        .max_by_key(|(v1, _)| *v1)
        .unwrap();
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split(' ');
            let (fstype, _, options) = (r.next()?, r.next()?, r.next()?);
            let matches = if v1 {
                fstype == "cgroup" && options.split(',').any(|o| o == "cpu")
            } else {
                fstype == "cgroup2"
            };
            matches.then(|| left.split(' ').nth(4).map(str::to_owned))?
        })
        .unwrap();
    let stat =
        std::fs::read_to_string(format!("{mount}/{}/cpu.stat", path.trim_start_matches('/')))
            .unwrap();
    let field = |name: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap()
    };
    (field("nr_periods "), field("nr_throttled "))
}

/// Short invocations in a closed loop at 128 MB (8 % of a CPU, the kernel's 1 ms quota
/// per 12.5 ms period) are paced by the instance's CPU time before each event, not
/// stopped by the kernel in the middle of one: the kernel throttles the instance in few
/// of the periods it runs (in nearly every one without the pacing, which made one
/// invocation in twenty wait a whole period). Counts from the kernel, not times.
#[test]
fn short_invocations_at_128_mb_are_paced_rather_than_throttled() {
    let s = Server::start();
    s.create_fixture("paced", &["--memory-size", "128"]);
    let burn = json!({"action": "burn", "us": 200});
    let (status, error, _) = invoke(&s, "paced", &burn);
    assert_eq!((status, error), (200, None));
    let instance = *s.instance_processes().first().unwrap();
    let (periods_before, throttled_before) = cpu_periods(instance);
    for _ in 0..300 {
        let (status, error, body) = invoke(&s, "paced", &burn);
        assert_eq!((status, error), (200, None), "{body}");
    }
    let (periods_after, throttled_after) = cpu_periods(instance);
    let periods = periods_after - periods_before;
    let throttled = throttled_after - throttled_before;
    // 300 invocations that spin for 200 µs each, at 1 ms of CPU per 12.5 ms period, run
    // through about 120 periods here (fewer if other processes take the CPU mid-spin);
    // the ratio below needs a few dozen to mean anything.
    assert!(periods >= 30, "the loop ran in only {periods} periods");
    // Paced, 2-3 of 125 on a quiet host and 6-7 under a load of two spinning
    // processes; without the pacing, 115 of 115.
    assert!(
        throttled * 4 <= periods,
        "throttled in {throttled} of {periods} periods"
    );
    // The holding is visible: events were held, for some time.
    let (status, text) = crate::metrics::get(&s.metrics_endpoint, "GET");
    assert_eq!(status, 200, "{text}");
    let value = |series: &str| crate::metrics::line_value(&text, series).unwrap();
    assert!(value("warden_paced_events_total") >= 1.0, "{text}");
    assert!(value("warden_pacing_wait_seconds_total") > 0.0, "{text}");
}
