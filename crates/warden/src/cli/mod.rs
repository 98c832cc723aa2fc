//! The `warden` command-line client: deploy, invoke, list, inspect, publish and delete
//! functions, manage their aliases, read their logs, and manage VPCs, subnets and security
//! groups, against a running `warden serve`.
//!
//! The commands speak Lambda's own REST API (plus Warden's log endpoints) and EC2's query
//! API, so what works here works with the AWS CLI too. All HTTP goes through
//! [`client::Client::send_for`] (usually by way of [`client::Client::send`]).

mod alias;
mod args;
mod client;
mod console;
mod contract;
mod credentials;
mod ec2;
mod function;
pub mod iam;
mod invoke;
mod layer;
mod logs;
mod netlog;
mod scan;
mod sign;

pub(crate) use client::{ApiError, Client};
pub(crate) use logs::parse_since;

use clap::{Args, Subcommand};

/// Client commands, flattened into the top-level `warden` command.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Deploy, list, inspect and delete functions
    #[command(subcommand)]
    Function(FunctionCommand),
    /// Invoke a function and print its response to stdout
    Invoke(invoke::InvokeArgs),
    /// Print a function's logs
    Logs(logs::LogsArgs),
    /// Create, update, delete and list aliases (named pointers to versions)
    #[command(subcommand)]
    Alias(alias::AliasCommand),
    /// Publish, list and delete layers (libraries functions share, shown at /opt)
    #[command(subcommand)]
    Layer(layer::LayerCommand),
    /// VPCs, subnets and security groups; a function's flow records and DNS queries
    #[command(subcommand)]
    Network(netlog::NetworkCommand),
    /// Dependency scanning: the advisory database, a function's findings and SBOM
    #[command(subcommand)]
    Scan(scan::ScanCommand),
    /// Sign a Lambda package with a signing profile; the signature travels in the zip
    Sign(sign::SignArgs),
    /// Print a one-time link that signs a browser in to the web console as your access key
    Console,
}

/// `warden function ...`
#[derive(Debug, Subcommand)]
pub enum FunctionCommand {
    /// Create a function from a directory or zip, or update it if it exists
    Deploy(function::DeployArgs),
    /// List functions
    List,
    /// Show a function's configuration and code location as JSON
    Get(NameArgs),
    /// Delete a function, or one version of it with --qualifier
    Delete(NameArgs),
    /// Publish `$LATEST` as a new, immutable version
    Publish(alias::PublishArgs),
    /// Set, show or delete the input contract events must meet before the code runs
    #[command(subcommand)]
    Contract(contract::ContractCommand),
}

/// A function name with an optional version or alias.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Function name or ARN
    pub name: String,
    /// Version or alias
    #[arg(long, short = 'q')]
    pub qualifier: Option<String>,
}

/// Runs `warden iam user|key|role|policy ...` against the Warden at `endpoint`.
pub fn run_iam(cmd: iam::AdminCommand, endpoint: &str) -> anyhow::Result<()> {
    let client = client::Client::new(endpoint)?;
    iam::run(&client, cmd)
}

/// Runs one client command against the Warden at `endpoint` (e.g. `http://127.0.0.1:9700`).
///
/// Errors print well as one line with `{:#}`. `invoke` exits the process with status 1 itself
/// after printing the payload when the function reports an error, as `X-Amz-Function-Error`
/// is not a failure of the command.
pub fn run(cmd: ClientCommand, endpoint: &str) -> anyhow::Result<()> {
    let client = client::Client::new(endpoint)?;
    match cmd {
        ClientCommand::Function(FunctionCommand::Deploy(args)) => function::deploy(&client, &args),
        ClientCommand::Function(FunctionCommand::List) => function::list(&client),
        ClientCommand::Function(FunctionCommand::Get(args)) => function::get(&client, &args),
        ClientCommand::Function(FunctionCommand::Delete(args)) => function::delete(&client, &args),
        ClientCommand::Invoke(args) => invoke::invoke(&client, &args),
        ClientCommand::Logs(args) => logs::logs(&client, &args),
        ClientCommand::Function(FunctionCommand::Publish(args)) => alias::publish(&client, &args),
        ClientCommand::Function(FunctionCommand::Contract(cmd)) => contract::run(&client, &cmd),
        ClientCommand::Alias(cmd) => alias::run(&client, &cmd),
        ClientCommand::Layer(cmd) => layer::run(&client, &cmd),
        ClientCommand::Network(cmd) => netlog::run(&client, &cmd),
        ClientCommand::Scan(cmd) => scan::run(&client, &cmd),
        ClientCommand::Sign(args) => sign::sign(&client, &args),
        ClientCommand::Console => console::link(&client, endpoint),
    }
}

/// `path` plus `?Qualifier=q` when a qualifier is given.
fn with_qualifier(path: String, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(q) => format!("{path}?Qualifier={}", client::encode(q)),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Stands in for the top-level command, as `main.rs` flattens [`ClientCommand`].
    #[derive(Debug, Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: Top2,
    }
    #[derive(Debug, Subcommand)]
    enum Top2 {
        #[command(flatten)]
        Client(ClientCommand),
    }

    fn parse(args: &[&str]) -> Result<ClientCommand, String> {
        let mut argv = vec!["warden"];
        argv.extend_from_slice(args);
        Top::try_parse_from(argv)
            .map(|t| match t.cmd {
                Top2::Client(c) => c,
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_command_definition_is_consistent() {
        use clap::CommandFactory;
        Top::command().debug_assert();
    }

    #[test]
    fn parses_sign() {
        let cmd = parse(&["sign", "--profile", "app", "f.zip", "-o", "out.zip"]).unwrap();
        let ClientCommand::Sign(args) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(args.profile, "app");
        assert_eq!(args.package, std::path::PathBuf::from("f.zip"));
        assert_eq!(args.output, Some(std::path::PathBuf::from("out.zip")));
        assert!(
            parse(&["sign", "f.zip"]).is_err(),
            "the profile is required"
        );
    }

    #[test]
    fn parses_deploy() {
        let cmd = parse(&[
            "function",
            "deploy",
            "./fn",
            "--name",
            "hello",
            "--memory",
            "256",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--timeout",
            "30",
        ])
        .unwrap();
        let ClientCommand::Function(FunctionCommand::Deploy(d)) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(d.name, "hello");
        assert_eq!(d.memory, Some(256));
        assert_eq!(d.timeout, Some(30));
        assert_eq!(
            d.env,
            vec![
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "x=y".to_owned())
            ]
        );
        assert_eq!(d.runtime, None);
    }

    #[test]
    fn deploy_rejects_a_bad_env_pair() {
        let err = parse(&["function", "deploy", ".", "--name", "f", "--env", "NOPE"]).unwrap_err();
        assert!(err.contains("`NOPE` is not KEY=VALUE"), "{err}");
    }

    #[test]
    fn parses_invoke() {
        let cmd = parse(&["invoke", "hello", "@event.json", "--tail", "-q", "live"]).unwrap();
        let ClientCommand::Invoke(i) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(i.name, "hello");
        assert_eq!(i.payload, Some(args::Payload::File("event.json".into())));
        assert!(i.tail && !i.event);
        assert_eq!(i.qualifier.as_deref(), Some("live"));
    }

    #[test]
    fn parses_list_get_delete_logs() {
        assert!(matches!(
            parse(&["function", "list"]).unwrap(),
            ClientCommand::Function(FunctionCommand::List)
        ));
        let ClientCommand::Function(FunctionCommand::Delete(n)) =
            parse(&["function", "delete", "f", "--qualifier", "3"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((n.name.as_str(), n.qualifier.as_deref()), ("f", Some("3")));
        let ClientCommand::Logs(l) =
            parse(&["logs", "f", "--follow", "--since-seq", "42"]).unwrap()
        else {
            panic!()
        };
        assert!(l.follow);
        assert_eq!(l.since_seq, Some(42));
        assert_eq!(l.output, logs::Output::Text);
        let ClientCommand::Logs(l) = parse(&["logs", "f", "--output", "json"]).unwrap() else {
            panic!()
        };
        assert_eq!(l.output, logs::Output::Json);
        assert!(parse(&["logs", "f", "--output", "yaml"]).is_err());
    }

    #[test]
    fn qualifier_is_encoded_into_the_query() {
        assert_eq!(with_qualifier("/x".into(), None), "/x");
        assert_eq!(
            with_qualifier("/x".into(), Some("$LATEST")),
            "/x?Qualifier=%24LATEST"
        );
    }
}
