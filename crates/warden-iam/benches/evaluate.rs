//! Evaluations per second of a realistic role policy (10 statements with wildcards and
//! conditions) on one core. Run: `cargo bench -p warden-iam --bench evaluate`.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use warden_iam::{evaluate, ContextValue, Policy, PolicyKind, Request};

const ROLE_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Logs", "Effect": "Allow",
     "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/*"},
    {"Sid": "ReadTables", "Effect": "Allow", "Action": ["dynamodb:Get*", "dynamodb:Query", "dynamodb:Scan"],
     "Resource": ["arn:aws:dynamodb:us-east-1:123456789012:table/Orders", "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/index/*"]},
    {"Sid": "WriteOwnItems", "Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem"],
     "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/Orders",
     "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:userid}"]}}},
    {"Sid": "InvokeTeamFunctions", "Effect": "Allow", "Action": "lambda:Invoke*",
     "Resource": "arn:aws:lambda:us-east-1:123456789012:function:orders-*",
     "Condition": {"StringEquals": {"aws:PrincipalTag/team": "orders"}, "Bool": {"aws:SecureTransport": "true"}}},
    {"Sid": "ReadFunctions", "Effect": "Allow", "Action": ["lambda:Get*", "lambda:List*"], "Resource": "*"},
    {"Sid": "Queue", "Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"],
     "Resource": "arn:aws:sqs:us-east-1:123456789012:orders-*"},
    {"Sid": "Objects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
     "Resource": "arn:aws:s3:::orders-bucket/${aws:username}/*"},
    {"Sid": "DenyOutsideNetwork", "Effect": "Deny", "Action": "*", "Resource": "*",
     "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]},
                   "Bool": {"aws:ViaAWSService": "false"}}},
    {"Sid": "DenyOutsideRegions", "Effect": "Deny", "NotAction": ["iam:*", "sts:*"], "Resource": "*",
     "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}}},
    {"Sid": "DenyAfterExpiry", "Effect": "Deny", "Action": "*", "Resource": "*",
     "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}
  ]
}"#;

fn context() -> HashMap<String, ContextValue> {
    [
        ("aws:sourceip", "10.1.2.3"),
        ("aws:securetransport", "true"),
        ("aws:viaawsservice", "false"),
        ("aws:requestedregion", "us-east-1"),
        ("aws:currenttime", "2025-06-01T12:00:00Z"),
        ("aws:principaltag/team", "orders"),
        ("aws:username", "alice"),
        ("aws:userid", "AIDAEXAMPLE"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ContextValue::from(v)))
    .collect()
}

/// Nanoseconds this thread has spent on a CPU (Linux), so that a loaded machine does not
/// distort the per-core rate; `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn run(name: &str, policy: &Policy, request: &Request) {
    const N: u32 = 2_000_000;
    let expected = evaluate(request, &[policy], None).effect;
    // Warm up caches and branch predictors.
    for _ in 0..N / 10 {
        black_box(evaluate(black_box(request), &[policy], None));
    }
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    for _ in 0..N {
        let d = evaluate(black_box(request), &[policy], None);
        debug_assert_eq!(d.effect, expected);
        black_box(d);
    }
    let elapsed = start.elapsed();
    let wall = f64::from(N) / elapsed.as_secs_f64();
    let on_cpu = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => format!("{:>10.0}", f64::from(N) / ((b - a) as f64 / 1e9)),
        _ => "n/a".to_string(),
    };
    println!("{name:<42} {wall:>10.0} evals/s wall  {on_cpu} evals/s on-cpu  ({expected:?})");
}

fn main() {
    let policy = Policy::parse_as(ROLE_POLICY, PolicyKind::Identity).expect("benchmark policy");
    let base = Request {
        principal: Some("arn:aws:iam::123456789012:user/alice".into()),
        action: "lambda:InvokeFunction".into(),
        resource: "arn:aws:lambda:us-east-1:123456789012:function:orders-api".into(),
        context: context(),
    };
    println!("role policy: 10 statements, wildcards, conditions; one core");
    run("invoke allowed (conditions evaluated)", &policy, &base);
    let mut r = base.clone();
    r.action = "dynamodb:Query".into();
    r.resource = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/index/ByDate".into();
    run("dynamodb query on index allowed", &policy, &r);
    let mut r = base.clone();
    r.action = "s3:GetObject".into();
    r.resource = "arn:aws:s3:::orders-bucket/alice/report.csv".into();
    run("s3 object with ${aws:username} allowed", &policy, &r);
    let mut r = base.clone();
    r.context
        .insert("aws:sourceip".into(), ContextValue::from("8.8.8.8"));
    run("denied outside network (explicit deny)", &policy, &r);
    let mut r = base.clone();
    r.action = "kms:Decrypt".into();
    run("unrelated action (implicit deny)", &policy, &r);
}
