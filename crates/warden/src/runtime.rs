//! The managed runtimes of this host: `--runtime NAME=PATH`, shared by `warden serve`,
//! `warden doctor` and `warden runtime list`, and the `warden runtime` commands.
//!
//! `warden runtime list` runs the same discovery `warden serve` runs at start, on this
//! machine, with the same `--runtime` settings: what it prints is what a server started
//! here with those settings serves.

use std::path::PathBuf;

use anyhow::Context;
use warden_runtimes::{Availability, HostEnv, RuntimeTable};

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
    /// or why it is unavailable.
    List(ListArgs),
}

/// Options of `warden runtime list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    runtimes: RuntimeArgs,
    /// `table` (default) or `json`.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// Runs a `warden runtime` command.
pub fn run(command: RuntimeCommand) -> anyhow::Result<()> {
    match command {
        RuntimeCommand::List(args) => {
            let table = args.runtimes.table()?;
            if args.output == "json" {
                let rows: Vec<serde_json::Value> = table
                    .rows()
                    .into_iter()
                    .map(|(n, a)| json_row(n, a))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).context("rendering the list")?
                );
            } else {
                print!("{}", render(&table));
            }
            Ok(())
        }
    }
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
