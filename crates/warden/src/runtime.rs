//! The managed runtimes of this host: `--runtime NAME=PATH`, shared by `warden serve`,
//! `warden doctor` and `warden runtime list`, and the `warden runtime` commands.
//!
//! `warden runtime list` runs the same discovery `warden serve` runs at start, on this
//! machine, with the same `--runtime` settings: what it prints is what a server started
//! here with those settings serves.

use std::path::PathBuf;

use anyhow::Context;
use warden_runtimes::{sdk, Availability, HostEnv, RuntimeTable};

/// `--runtime NAME=PATH`, repeatable.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// The interpreter of a managed runtime, instead of the one Warden would find:
    /// `python3.12=/opt/py312/bin/python3.12`, `nodejs22.x=/opt/node22/bin/node`.
    /// Repeatable. It must be of exactly that version.
    #[arg(long = "runtime", value_name = "NAME=PATH")]
    runtimes: Vec<String>,
}

impl RuntimeArgs {
    /// The runtime table of this host under these settings.
    pub fn table(&self) -> anyhow::Result<RuntimeTable> {
        let overrides = self
            .runtimes
            .iter()
            .map(|a| warden_runtimes::parse_override(a))
            .collect::<Result<Vec<(String, PathBuf)>, _>>()?;
        Ok(RuntimeTable::discover(
            &overrides,
            &HostEnv::from_process(),
        )?)
    }
}

/// `warden runtime ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RuntimeCommand {
    /// List every runtime, the interpreter that serves it on this host and its version,
    /// or why it is unavailable, and which AWS SDKs functions can import.
    List(ListArgs),
    /// The AWS SDKs functions import without packaging them (boto3; the AWS SDK for
    /// JavaScript v3).
    #[command(subcommand)]
    Sdk(SdkCommand),
}

/// `warden runtime sdk ...`.
#[derive(clap::Subcommand, Debug)]
pub enum SdkCommand {
    /// Install (or replace) an SDK in the data directory's runtime directory, with the
    /// host's pip or npm; new instances of running servers see it at once.
    Install(SdkInstallArgs),
}

/// Where the data directory is, as `warden serve --data-dir`.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDirArg {
    /// The server's data directory.
    /// Default: `$XDG_DATA_HOME/warden`, else `~/.local/share/warden`.
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDirArg {
    fn runtime_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(crate::serve::default_data_dir)
            .join("runtime")
    }
}

/// Options of `warden runtime list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    runtimes: RuntimeArgs,
    #[command(flatten)]
    data_dir: DataDirArg,
    /// `table` (default) or `json`.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// Which SDK to install.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkLanguage {
    /// boto3, for Python runtimes
    Python,
    /// The AWS SDK for JavaScript v3, for Node.js runtimes
    Node,
}

/// Options of `warden runtime sdk install`.
#[derive(clap::Args, Debug)]
pub struct SdkInstallArgs {
    /// Which SDK.
    #[arg(value_enum)]
    language: SdkLanguage,
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Install from this directory (wheels for Python, `npm pack` tarballs for Node.js)
    /// instead of the package registry: for hosts without network.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// A package to install instead of the default set (boto3; the Lambda, IAM and STS
    /// clients), as pip or npm takes it (`boto3==1.35.0`, `@aws-sdk/client-s3`). Repeatable.
    #[arg(long = "package", value_name = "SPEC")]
    packages: Vec<String>,
    /// The Python whose pip installs the Python SDK.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The npm that installs the Node.js SDK.
    #[arg(long, default_value = "npm")]
    npm: PathBuf,
}

/// Runs a `warden runtime` command.
pub fn run(command: RuntimeCommand) -> anyhow::Result<()> {
    match command {
        RuntimeCommand::List(args) => {
            let table = args.runtimes.table()?;
            let runtime_dir = args.data_dir.runtime_dir();
            if args.output == "json" {
                let rows: Vec<serde_json::Value> = table
                    .rows()
                    .into_iter()
                    .map(|(n, a)| json_row(n, a))
                    .collect();
                let out = serde_json::json!({
                    "Runtimes": rows,
                    "Sdks": {
                        "Python": sdk::python_sdk_version(&runtime_dir),
                        "Node": sdk::node_sdk_version(&runtime_dir),
                    },
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out).context("rendering the list")?
                );
            } else {
                print!("{}", render(&table));
                print!("{}", render_sdks(&runtime_dir));
            }
            Ok(())
        }
        RuntimeCommand::Sdk(SdkCommand::Install(args)) => {
            let runtime_dir = args.data_dir.runtime_dir();
            let source = match &args.from {
                Some(dir) => sdk::Source::Directory(dir.clone()),
                None => sdk::Source::Registry,
            };
            match args.language {
                SdkLanguage::Python => {
                    sdk::install_python(&runtime_dir, &args.python, &source, &args.packages)?;
                    println!(
                        "installed the Python SDK (boto3 {}) in {}",
                        sdk::python_sdk_version(&runtime_dir)
                            .as_deref()
                            .unwrap_or("not among the packages"),
                        runtime_dir.join(sdk::PYTHON_DIR).display()
                    );
                }
                SdkLanguage::Node => {
                    sdk::install_node(&runtime_dir, &args.npm, &source, &args.packages)?;
                    println!(
                        "installed the Node.js SDK (@aws-sdk/client-lambda {}) in {}",
                        sdk::node_sdk_version(&runtime_dir)
                            .as_deref()
                            .unwrap_or("not among the packages"),
                        runtime_dir.join(sdk::NODE_DIR).display()
                    );
                }
            }
            Ok(())
        }
    }
}

/// The SDK lines of `warden runtime list`.
fn render_sdks(runtime_dir: &std::path::Path) -> String {
    let line = |what: &str, version: Option<String>, language: &str| {
        match version {
        Some(v) => format!("{what} {v}: installed\n"),
        None => format!(
            "{what}: not installed, functions cannot import it unpackaged (`warden runtime sdk install {language}`)\n"
        ),
    }
    };
    line(
        "boto3 (Python SDK)",
        sdk::python_sdk_version(runtime_dir),
        "python",
    ) + &line(
        "AWS SDK for JavaScript v3",
        sdk::node_sdk_version(runtime_dir),
        "node",
    )
}

fn json_row(name: &str, availability: &Availability) -> serde_json::Value {
    match availability {
        Availability::Native => serde_json::json!({
            "Runtime": name, "Available": true, "Interpreter": null,
            "Note": "runs the package's own bootstrap",
        }),
        Availability::Ready(i) => serde_json::json!({
            "Runtime": name, "Available": true,
            "Interpreter": i.executable, "Version": i.version, "Prefix": i.prefix,
            "FoundBy": i.found_by,
        }),
        Availability::Missing(why) => serde_json::json!({
            "Runtime": name, "Available": false, "Reason": why,
        }),
    }
}

/// The table `warden runtime list` prints.
pub fn render(table: &RuntimeTable) -> String {
    let rows: Vec<[String; 3]> = table
        .rows()
        .into_iter()
        .map(|(name, a)| match a {
            Availability::Native => [
                name.to_owned(),
                "ready".to_owned(),
                "the package's own bootstrap".to_owned(),
            ],
            Availability::Ready(i) => [
                name.to_owned(),
                "ready".to_owned(),
                format!(
                    "{} {} ({}, found by {})",
                    i.language.name(),
                    i.version,
                    i.executable.display(),
                    i.found_by
                ),
            ],
            Availability::Missing(why) => [name.to_owned(), "missing".to_owned(), why.clone()],
        })
        .collect();
    let width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let mut out = String::new();
    for [name, state, detail] in rows {
        out.push_str(&format!("{name:<width$}  {state:<7}  {detail}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_runtimes::{Interpreter, Language};

    #[test]
    fn the_list_says_what_serves_each_runtime_or_why_nothing_does() {
        let table = RuntimeTable::from_entries([
            ("provided.al2023".to_owned(), Availability::Native),
            (
                "python3.12".to_owned(),
                Availability::Ready(Interpreter {
                    language: Language::Python,
                    version: "3.12.1".into(),
                    executable: "/opt/py/bin/python3.12".into(),
                    prefix: "/opt/py".into(),
                    found_by: "pyenv".into(),
                }),
            ),
            (
                "nodejs22.x".to_owned(),
                Availability::Missing("no Node.js 22 interpreter was found".into()),
            ),
        ]);
        assert_eq!(
            render(&table),
            "provided.al2023  ready    the package's own bootstrap\n\
             python3.12       ready    Python 3.12.1 (/opt/py/bin/python3.12, found by pyenv)\n\
             nodejs22.x       missing  no Node.js 22 interpreter was found\n"
        );
        let json = json_row("nodejs22.x", table.get("nodejs22.x").unwrap());
        assert_eq!(json["Available"], false);
    }
}
