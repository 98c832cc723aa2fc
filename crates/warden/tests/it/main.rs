//! End-to-end tests: real `warden serve` processes driven by the real AWS CLI, boto3,
//! the official runtime clients and the `warden` CLI.

mod harness;

mod aws_cli;
mod boto3;
mod invoke;
mod runtimes;
mod concurrency;
mod async_queue;
mod bad_input;
mod warden_cli;
