//! End-to-end tests: real `warden serve` processes driven by the real AWS CLI, boto3,
//! the official runtime clients and the `warden` CLI.
#![allow(
    clippy::unwrap_used,
    reason = "a test or benchmark fails loudly on what it did not expect"
)]

mod harness;

mod alarms;
mod async_queue;
mod audit;
mod aws_cli;
mod bad_input;
mod boto3;
mod cloudwatch;
mod cluster;
mod code_gc;
mod code_signing;
mod concurrency;
mod console;
mod contracts;
mod cwlogs;
mod data_dir;
mod dns_firewall;
mod dos;
mod ec2;
mod escalation;
mod honest_inputs;
mod iam;
mod iam_more;
mod invoke;
mod kms;
mod layers;
mod lifecycle;
mod logs_bounds;
mod metrics;
mod network;
mod network_cli;
mod node_runtime;
mod nodes;
mod pipeline;
mod posture;
mod python_runtime;
mod runtimes;
mod sandbox;
mod scanning;
mod secrets;
mod sns;
mod streaming;
mod urls;
mod warden_cli;
