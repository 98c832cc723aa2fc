//! `warden function deploy|list|get|delete`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use anyhow::Context;
use base64::Engine;
use clap::Args;
use http::Method;
use serde_json::{json, Map, Value};

use super::{
    args::{human_bytes, parse_key_value},
    client::{encode, ApiError, Client},
    with_qualifier, NameArgs,
};

/// Runtime of a package with a `bootstrap` when `--runtime` is not given.
const BOOTSTRAP_RUNTIME: &str = "provided.al2023";
/// Role used when `--role` is not given: the execution role with no permissions that the
/// server creates on first start, in the caller's account.
const DEFAULT_ROLE_NAME: &str = "warden-default";
/// Above this, zipping a directory shows a progress bar.
const PROGRESS_THRESHOLD: u64 = 1024 * 1024;
/// Functions asked for per page of `list`.
const PAGE_SIZE: u32 = 50;

/// `warden function deploy`
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A directory to zip, or a ready .zip file
    pub source: PathBuf,
    /// Function name
    #[arg(long, short = 'n')]
    pub name: String,
    /// Runtime [default on create: provided.al2023 for a package with a `bootstrap`;
    /// required otherwise]
    #[arg(long)]
    pub runtime: Option<String>,
    /// Handler [default: `bootstrap` for provided runtimes; required for others]
    #[arg(long)]
    pub handler: Option<String>,
    /// Memory in MB (128-10240)
    #[arg(long)]
    pub memory: Option<u32>,
    /// Timeout in seconds (1-900)
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Environment variable, repeatable; replaces all variables when given
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// Execution role ARN
    #[arg(long)]
    pub role: Option<String>,
    /// Description
    #[arg(long)]
    pub description: Option<String>,
}

/// Zips `source` if it is a directory, or reads it if it is a zip.
pub(super) fn load_package(source: &Path) -> anyhow::Result<Vec<u8>> {
    let meta =
        std::fs::metadata(source).with_context(|| format!("cannot read `{}`", source.display()))?;
    if meta.is_dir() {
        let bar = indicatif::ProgressBar::hidden();
        let mut on_progress = |done: u64, total: u64| {
            if total > PROGRESS_THRESHOLD && bar.is_hidden() && done == 0 {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_length(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "zipping {bar:30} {bytes}/{total_bytes} ({eta})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
            }
            bar.set_position(done);
        };
        let zip = warden_package::zip_directory(source, &mut on_progress)
            .with_context(|| format!("cannot zip `{}`", source.display()))?;
        bar.finish_and_clear();
        Ok(zip)
    } else {
        let bytes =
            std::fs::read(source).with_context(|| format!("cannot read `{}`", source.display()))?;
        if !bytes.starts_with(b"PK") {
            anyhow::bail!(
                "`{}` is neither a directory nor a zip file",
                source.display()
            );
        }
        Ok(bytes)
    }
}

/// The handler to send on create: explicit, or `bootstrap` for custom runtimes.
fn handler_for(runtime: &str, handler: Option<&str>) -> anyhow::Result<String> {
    match handler {
        Some(h) => Ok(h.to_owned()),
        None if runtime.starts_with("provided") => Ok("bootstrap".to_owned()),
        None => anyhow::bail!(
            "--handler is required for runtime `{runtime}` (for example `app.handler`)"
        ),
    }
}

/// The configuration fields that the user gave explicitly, in Lambda's names.
fn config_fields(args: &DeployArgs) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(r) = &args.runtime {
        m.insert("Runtime".into(), json!(r));
    }
    if let Some(h) = &args.handler {
        m.insert("Handler".into(), json!(h));
    }
    if let Some(mb) = args.memory {
        m.insert("MemorySize".into(), json!(mb));
    }
    if let Some(s) = args.timeout {
        m.insert("Timeout".into(), json!(s));
    }
    if !args.env.is_empty() {
        let vars: Map<String, Value> = args
            .env
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        m.insert("Environment".into(), json!({ "Variables": vars }));
    }
    if let Some(r) = &args.role {
        m.insert("Role".into(), json!(r));
    }
    if let Some(d) = &args.description {
        m.insert("Description".into(), json!(d));
    }
    m
}

/// The runtime of a package created without `--runtime`, from the names at its top level:
/// a `bootstrap` is a custom runtime. Anything else is refused, saying what the package
/// looks like, rather than guessed.
fn infer_runtime(top_level: &[String]) -> anyhow::Result<&'static str> {
    let has = |name: &str| top_level.iter().any(|n| n == name);
    if has("bootstrap") {
        return Ok(BOOTSTRAP_RUNTIME);
    }
    let hint = if let Some(py) = ["lambda_function.py", "app.py"]
        .into_iter()
        .find(|n| has(n))
    {
        let module = py.trim_end_matches(".py");
        format!(
            "it has `{py}`, a Python handler: pass for example `--runtime python3.12 --handler {module}.handler`"
        )
    } else if let Some(js) = ["index.mjs", "index.js"].into_iter().find(|n| has(n)) {
        format!("it has `{js}`, a Node.js handler, and this Warden runs no Node.js runtime yet")
    } else {
        "it has no `bootstrap` and no handler file Warden recognises: pass --runtime and --handler"
            .to_owned()
    };
    anyhow::bail!("cannot tell which runtime the package is for: {hint}")
}

/// The CreateFunction body: explicit fields plus defaults for what create requires.
fn create_body(
    args: &DeployArgs,
    top_level: &[String],
    zip_b64: &str,
    default_role: &str,
) -> anyhow::Result<Value> {
    let runtime = match args.runtime.as_deref() {
        Some(r) => r,
        None => infer_runtime(top_level)?,
    };
    let mut body = config_fields(args);
    body.insert("FunctionName".into(), json!(args.name));
    body.insert("Runtime".into(), json!(runtime));
    body.insert(
        "Handler".into(),
        json!(handler_for(runtime, args.handler.as_deref())?),
    );
    body.entry("Role").or_insert_with(|| json!(default_role));
    body.insert("Code".into(), json!({ "ZipFile": zip_b64 }));
    Ok(Value::Object(body))
}

/// The ARN of the default execution role in the caller's account (from STS
/// `GetCallerIdentity`).
fn default_role(client: &Client) -> anyhow::Result<String> {
    let reply = client.send(
        Method::GET,
        "/?Action=GetCallerIdentity&Version=2011-06-15",
        &[],
        None,
    )?;
    if !(200..300).contains(&reply.status) {
        return Err(ApiError::from_reply(&reply)
            .about("the caller's account")
            .into());
    }
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    let account = text
        .split("<Account>")
        .nth(1)
        .and_then(|rest| rest.split("</Account>").next())
        .filter(|a| a.len() == 12 && a.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| anyhow::anyhow!("the server did not say which account this is"))?;
    Ok(format!("arn:aws:iam::{account}:role/{DEFAULT_ROLE_NAME}"))
}

/// `warden function deploy`: create, or update code and configuration if it exists.
pub fn deploy(client: &Client, args: &DeployArgs) -> anyhow::Result<()> {
    let zip = load_package(&args.source)?;
    let size = zip.len() as u64;
    if size > warden_types::limits::ZIP_BYTES {
        anyhow::bail!(
            "package is {}, more than the {} a zip upload may be",
            human_bytes(size),
            human_bytes(warden_types::limits::ZIP_BYTES)
        );
    }
    let top_level = warden_package::top_level_names(&zip, &warden_package::Limits::default())
        .with_context(|| format!("cannot read the package `{}`", args.source.display()))?;
    let zip_b64 = base64::engine::general_purpose::STANDARD.encode(&zip);
    drop(zip);
    if size > PROGRESS_THRESHOLD {
        eprintln!("uploading {}", human_bytes(size));
    }
    let subject = format!("function `{}`", args.name);
    let default_role = match &args.role {
        Some(r) => r.clone(),
        None => default_role(client)?,
    };
    let create = match create_body(args, &top_level, &zip_b64, &default_role) {
        Ok(body) => body,
        // Without a runtime or handler we cannot create, but updating an existing function
        // (which keeps its own) is fine.
        Err(missing_handler) => {
            let config = update(client, args, &zip_b64, &subject).map_err(|e| {
                match e.downcast_ref::<ApiError>() {
                    Some(api) if api.code == "ResourceNotFoundException" => missing_handler,
                    _ => e,
                }
            })?;
            print_summary("updated", &config, size);
            return Ok(());
        }
    };
    let body = serde_json::to_vec(&create)?;
    drop(create);
    let reply = client.send(Method::POST, "/2015-03-31/functions", &[], Some(body))?;
    let (action, config) = if (200..300).contains(&reply.status) {
        ("created", reply.json()?)
    } else {
        let err = ApiError::from_reply(&reply).about(subject.as_str());
        if err.code != "ResourceConflictException" {
            return Err(err.into());
        }
        ("updated", update(client, args, &zip_b64, &subject)?)
    };
    print_summary(action, &config, size);
    Ok(())
}

fn update(
    client: &Client,
    args: &DeployArgs,
    zip_b64: &str,
    subject: &str,
) -> anyhow::Result<Value> {
    let base = format!("/2015-03-31/functions/{}", encode(&args.name));
    let body = serde_json::to_vec(&json!({ "ZipFile": zip_b64 }))?;
    let mut config = client
        .call(
            Method::PUT,
            &format!("{base}/code"),
            &[],
            Some(body),
            subject,
        )?
        .json()?;
    let fields = config_fields(args);
    if !fields.is_empty() {
        let body = serde_json::to_vec(&Value::Object(fields))?;
        // Lambda answers 409 while the code update is still being applied: wait it out.
        let mut attempt = 0;
        config = loop {
            let reply = client.send(
                Method::PUT,
                &format!("{base}/configuration"),
                &[],
                Some(body.clone()),
            )?;
            if (200..300).contains(&reply.status) {
                break reply.json()?;
            }
            let err = ApiError::from_reply(&reply).about(subject);
            attempt += 1;
            if err.code != "ResourceConflictException" || attempt >= 20 {
                return Err(err.into());
            }
            thread::sleep(Duration::from_millis(250));
        };
    }
    Ok(config)
}

fn print_summary(action: &str, config: &Value, size: u64) {
    let s = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or("-");
    let code_size = config
        .get("CodeSize")
        .and_then(Value::as_u64)
        .unwrap_or(size);
    println!("{action} function `{}`", s("FunctionName"));
    println!("  arn      {}", s("FunctionArn"));
    println!("  version  {}", s("Version"));
    println!("  runtime  {} (handler {})", s("Runtime"), s("Handler"));
    println!(
        "  code     {}, sha256 {}",
        human_bytes(code_size),
        s("CodeSha256")
    );
}

/// `warden function list`: every page, as a table.
pub fn list(client: &Client) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut path = format!("/2015-03-31/functions?MaxItems={PAGE_SIZE}");
        if let Some(m) = &marker {
            path.push_str(&format!("&Marker={}", encode(m)));
        }
        let page = client
            .call(Method::GET, &path, &[], None, "functions")?
            .json()?;
        for f in page
            .get("Functions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            rows.push(row(f));
        }
        let next = page
            .get("NextMarker")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .map(str::to_owned);
        // A server that repeats its marker would loop forever.
        if next.is_none() || next == marker {
            break;
        }
        marker = next;
    }
    if rows.is_empty() {
        eprintln!("no functions");
        return Ok(());
    }
    print!(
        "{}",
        table(
            &["NAME", "RUNTIME", "MEMORY", "TIMEOUT", "LAST MODIFIED"],
            &rows
        )
    );
    Ok(())
}

fn row(f: &Value) -> Vec<String> {
    let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let n = |k: &str, unit: &str| {
        f.get(k)
            .and_then(Value::as_u64)
            .map_or_else(|| "-".to_owned(), |v| format!("{v}{unit}"))
    };
    vec![
        s("FunctionName"),
        s("Runtime"),
        n("MemorySize", " MB"),
        n("Timeout", " s"),
        s("LastModified"),
    ]
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let last = r.len().saturating_sub(1);
        for (i, cell) in r.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

/// `warden function get`: GetFunction, pretty-printed.
pub fn get(client: &Client, args: &NameArgs) -> anyhow::Result<()> {
    let path = with_qualifier(
        format!("/2015-03-31/functions/{}", encode(&args.name)),
        args.qualifier.as_deref(),
    );
    let subject = format!("function `{}`", args.name);
    let value = client
        .call(Method::GET, &path, &[], None, &subject)?
        .json()?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &value)?;
    writeln!(out)?;
    Ok(())
}

/// `warden function delete`.
pub fn delete(client: &Client, args: &NameArgs) -> anyhow::Result<()> {
    let path = with_qualifier(
        format!("/2015-03-31/functions/{}", encode(&args.name)),
        args.qualifier.as_deref(),
    );
    let subject = match &args.qualifier {
        Some(q) => format!("function `{}:{q}`", args.name),
        None => format!("function `{}`", args.name),
    };
    client.call(Method::DELETE, &path, &[], None, &subject)?;
    println!("deleted {subject}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(runtime: Option<&str>, handler: Option<&str>) -> DeployArgs {
        DeployArgs {
            source: ".".into(),
            name: "hello".into(),
            runtime: runtime.map(Into::into),
            handler: handler.map(Into::into),
            memory: None,
            timeout: None,
            env: vec![],
            role: None,
            description: None,
        }
    }

    #[test]
    fn create_body_fills_defaults() {
        let body = create_body(
            &args(None, None),
            &names(&["bootstrap", "lib"]),
            "UEs=",
            "arn:aws:iam::123456789012:role/r",
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "FunctionName": "hello",
                "Runtime": "provided.al2023",
                "Handler": "bootstrap",
                "Role": "arn:aws:iam::123456789012:role/r",
                "Code": {"ZipFile": "UEs="},
            })
        );
    }

    #[test]
    fn create_body_keeps_explicit_fields() {
        let mut a = args(Some("python3.12"), Some("app.handler"));
        a.memory = Some(512);
        a.timeout = Some(30);
        a.env = vec![("A".into(), "1".into())];
        a.role = Some("arn:aws:iam::123456789012:role/r".into());
        a.description = Some("d".into());
        let body = create_body(
            &a,
            &names(&["app.py"]),
            "UEs=",
            "arn:aws:iam::123456789012:role/r",
        )
        .unwrap();
        assert_eq!(body["Runtime"], "python3.12");
        assert_eq!(body["Handler"], "app.handler");
        assert_eq!(body["MemorySize"], 512);
        assert_eq!(body["Timeout"], 30);
        assert_eq!(body["Environment"], json!({"Variables": {"A": "1"}}));
        assert_eq!(body["Role"], "arn:aws:iam::123456789012:role/r");
        assert_eq!(body["Description"], "d");
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn without_runtime_a_package_without_bootstrap_is_refused_saying_what_it_looks_like() {
        let refused = |top: &[&str]| {
            create_body(&args(None, None), &names(top), "", "r")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(&["app.py", "requirements.txt"]),
            "cannot tell which runtime the package is for: it has `app.py`, a Python handler: pass for example `--runtime python3.12 --handler app.handler`"
        );
        assert!(refused(&["lambda_function.py"]).contains("--handler lambda_function.handler"));
        assert!(refused(&["index.mjs"]).contains("`index.mjs`, a Node.js handler"));
        assert!(refused(&["README.md"]).contains("no `bootstrap`"));
    }

    #[test]
    fn python_needs_a_handler() {
        let err = create_body(&args(Some("python3.12"), None), &[], "", "r").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--handler is required for runtime `python3.12` (for example `app.handler`)"
        );
    }

    #[test]
    fn update_sends_only_what_was_given() {
        assert!(config_fields(&args(None, None)).is_empty());
        let mut a = args(None, None);
        a.memory = Some(256);
        assert_eq!(Value::Object(config_fields(&a)), json!({"MemorySize": 256}));
    }

    #[test]
    fn loads_a_directory_or_a_zip_and_refuses_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("fn");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("bootstrap"), b"#!/bin/sh\n").unwrap();
        let zip = load_package(&src).unwrap();
        assert!(zip.starts_with(b"PK"));
        let zip_path = dir.path().join("fn.zip");
        std::fs::write(&zip_path, &zip).unwrap();
        assert_eq!(load_package(&zip_path).unwrap(), zip);
        let txt = dir.path().join("notes.txt");
        std::fs::write(&txt, b"hello").unwrap();
        let err = load_package(&txt).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("`{}` is neither a directory nor a zip file", txt.display())
        );
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            vec!["a".into(), "provided.al2023".into(), "128 MB".into()],
            vec!["longer-name".into(), "python3.12".into(), "1024 MB".into()],
        ];
        assert_eq!(
            table(&["NAME", "RUNTIME", "MEMORY"], &rows),
            "NAME         RUNTIME          MEMORY\n\
             a            provided.al2023  128 MB\n\
             longer-name  python3.12       1024 MB\n"
        );
    }

    #[test]
    fn rows_tolerate_missing_fields() {
        let r = row(&json!({"FunctionName": "f", "MemorySize": 128}));
        assert_eq!(r, ["f", "-", "128 MB", "-", "-"]);
    }
}
