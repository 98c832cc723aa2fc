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

/// How a function is run, inferred from its package when `--runtime` or `--handler` is
/// not given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inferred {
    runtime: String,
    handler: String,
    /// Where the guess came from, said to the user.
    from: String,
}

/// Python files a handler is conventionally in, and the functions it is conventionally
/// called, in the order they are looked for.
const PYTHON_FILES: &[&str] = &["lambda_function.py", "app.py"];
const PYTHON_FUNCTIONS: &[&str] = &["lambda_handler", "handler"];
/// Node.js files a handler is conventionally in (its export is always `handler`).
const NODE_FILES: &[&str] = &["index.mjs", "index.js", "index.cjs"];

/// Infers the runtime and handler of a package from the names at its top level and, where
/// `read` can read it, the text of its handler file: a `bootstrap` is a custom runtime; a
/// Python or Node.js handler file with exactly one conventional handler runs on the newest
/// runtime of its language `newest` names (found on this machine; the server checks it
/// serves it too). Anything else is refused, saying what the package looks like.
fn infer(
    top_level: &[String],
    read: &dyn Fn(&str) -> Option<String>,
    newest: &dyn Fn(warden_runtimes::Language) -> Option<String>,
) -> anyhow::Result<Inferred> {
    use warden_runtimes::Language;
    let has = |name: &str| top_level.iter().any(|n| n == name);
    if has("bootstrap") {
        return Ok(Inferred {
            runtime: BOOTSTRAP_RUNTIME.to_owned(),
            handler: "bootstrap".to_owned(),
            from: "`bootstrap`".to_owned(),
        });
    }
    let py = PYTHON_FILES.iter().copied().find(|n| has(n));
    let js = NODE_FILES.iter().copied().find(|n| has(n));
    let cannot =
        |why: String| anyhow::anyhow!("cannot tell which runtime the package is for: {why}");
    let (file, language) = match (py, js) {
        (Some(p), Some(j)) => {
            return Err(cannot(format!(
                "it has both `{p}` and `{j}`: pass --runtime and --handler"
            )))
        }
        (Some(p), None) => (p, Language::Python),
        (None, Some(j)) => (j, Language::Node),
        (None, None) => {
            return Err(cannot(
                "it has no `bootstrap` and no handler file Warden recognises (lambda_function.py, app.py, index.mjs, index.js): pass --runtime and --handler"
                    .to_owned(),
            ))
        }
    };
    let module = file.rsplit_once('.').map_or(file, |(m, _)| m);
    let text = read(file);
    let function = match (language, text) {
        (Language::Python, Some(text)) => {
            let defined: Vec<&str> = PYTHON_FUNCTIONS
                .iter()
                .copied()
                .filter(|f| {
                    text.lines().any(|l| {
                        l.starts_with(&format!("def {f}("))
                            || l.starts_with(&format!("async def {f}("))
                    })
                })
                .collect();
            match defined.as_slice() {
                [one] => *one,
                _ => {
                    return Err(cannot(format!(
                        "`{file}` defines {} of `lambda_handler` and `handler`: pass --handler {module}.NAME",
                        if defined.is_empty() { "neither" } else { "both" }
                    )))
                }
            }
        }
        // Lambda's console names its Python handler so; without the text, nothing else is sure.
        (Language::Python, None) if file == "lambda_function.py" => "lambda_handler",
        (Language::Python, None) => {
            return Err(cannot(format!(
                "it has `{file}`, a Python handler: pass for example `--handler {module}.handler`"
            )))
        }
        (Language::Node, text) => {
            let exported = text.is_none_or(|t| {
                [
                    "exports.handler",
                    "export const handler",
                    "export async function handler",
                    "export function handler",
                    "export { handler",
                    "export {handler",
                ]
                .iter()
                .any(|p| t.contains(p))
            });
            if !exported {
                return Err(cannot(format!(
                    "`{file}` exports no `handler`: pass --handler {module}.NAME"
                )));
            }
            "handler"
        }
    };
    let runtime = newest(language).ok_or_else(|| {
        cannot(format!(
            "it has `{file}`, a {} handler, but no {} interpreter was found on this machine to tell which version: pass --runtime",
            language.name(),
            language.name()
        ))
    })?;
    Ok(Inferred {
        runtime,
        handler: format!("{module}.{function}"),
        from: format!("`{file}`"),
    })
}

/// The newest runtime of `language` an interpreter on this machine serves.
fn newest_local_runtime(language: warden_runtimes::Language) -> Option<String> {
    let table =
        warden_runtimes::RuntimeTable::discover(&[], &warden_runtimes::HostEnv::from_process())
            .ok()?;
    table
        .rows()
        .into_iter()
        .rev()
        .find_map(|(name, a)| match a {
            warden_runtimes::Availability::Ready(i) if i.language == language => {
                Some(name.to_owned())
            }
            _ => None,
        })
}

/// The CreateFunction body: explicit fields plus what create requires, inferred from the
/// package where not given.
fn create_body(
    args: &DeployArgs,
    top_level: &[String],
    zip_b64: &str,
    default_role: &str,
    read: &dyn Fn(&str) -> Option<String>,
    newest: &dyn Fn(warden_runtimes::Language) -> Option<String>,
) -> anyhow::Result<Value> {
    let (runtime, handler) = match (args.runtime.as_deref(), args.handler.as_deref()) {
        (Some(r), h) => (r.to_owned(), handler_for(r, h)?),
        (None, h) => {
            let inferred = infer(top_level, read, newest)?;
            let handler = h.map_or(inferred.handler.clone(), str::to_owned);
            eprintln!(
                "inferred runtime {} and handler {handler} from {} (pass --runtime and --handler to choose)",
                inferred.runtime, inferred.from
            );
            (inferred.runtime, handler)
        }
    };
    let mut body = config_fields(args);
    body.insert("FunctionName".into(), json!(args.name));
    body.insert("Runtime".into(), json!(runtime));
    body.insert("Handler".into(), json!(handler));
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
    // A directory's handler file is read to see which function it defines.
    let source = args.source.clone();
    let read = move |name: &str| -> Option<String> {
        let path = source.join(name);
        let meta = std::fs::metadata(&path).ok()?;
        (source.is_dir() && meta.len() <= 1024 * 1024)
            .then(|| std::fs::read_to_string(&path).ok())
            .flatten()
    };
    let create = match create_body(
        args,
        &top_level,
        &zip_b64,
        &default_role,
        &read,
        &newest_local_runtime,
    ) {
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
            &|_| None,
            &|_| None,
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
            &|_| None,
            &|_| None,
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

    /// Infers with `files` as the package's handler files (name, text) and Python 3.13
    /// and Node.js 22 on this machine.
    fn inferred(files: &[(&str, &str)]) -> Result<Inferred, String> {
        let top: Vec<String> = files.iter().map(|(n, _)| (*n).to_owned()).collect();
        let read = |name: &str| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| (*t).to_owned())
        };
        let newest = |l: warden_runtimes::Language| {
            Some(match l {
                warden_runtimes::Language::Python => "python3.13".to_owned(),
                warden_runtimes::Language::Node => "nodejs22.x".to_owned(),
            })
        };
        infer(&top, &read, &newest).map_err(|e| e.to_string())
    }

    #[test]
    fn runtime_and_handler_are_inferred_from_the_handler_file() {
        let got = inferred(&[(
            "app.py",
            "import json\n\ndef handler(event, context):\n    return 1\n",
        )])
        .unwrap();
        assert_eq!(
            (got.runtime.as_str(), got.handler.as_str()),
            ("python3.13", "app.handler")
        );
        let got = inferred(&[(
            "lambda_function.py",
            "def lambda_handler(e, c):\n    pass\n",
        )])
        .unwrap();
        assert_eq!(got.handler, "lambda_function.lambda_handler");
        let got = inferred(&[("index.mjs", "export const handler = async () => 1;\n")]).unwrap();
        assert_eq!(
            (got.runtime.as_str(), got.handler.as_str()),
            ("nodejs22.x", "index.handler")
        );
        let got = inferred(&[
            ("index.js", "exports.handler = async () => 1;\n"),
            ("README.md", ""),
        ])
        .unwrap();
        assert_eq!(got.handler, "index.handler");
        let got = inferred(&[("bootstrap", "")]).unwrap();
        assert_eq!(
            (got.runtime.as_str(), got.handler.as_str()),
            ("provided.al2023", "bootstrap")
        );
    }

    #[test]
    fn what_cannot_be_inferred_is_refused_saying_why() {
        let refused = |files: &[(&str, &str)]| inferred(files).unwrap_err();
        assert!(
            refused(&[("app.py", "def main():\n    pass\n")]).contains("defines neither"),
            "no handler"
        );
        assert!(
            refused(&[(
                "app.py",
                "def handler(e, c): pass\ndef lambda_handler(e, c): pass\n"
            )])
            .contains("defines both"),
            "two handlers"
        );
        assert!(
            refused(&[("app.py", "x"), ("index.js", "y")]).contains("both `app.py` and `index.js`")
        );
        assert!(refused(&[("index.js", "module.exports = {};\n")]).contains("exports no `handler`"));
        assert!(refused(&[("README.md", "")]).contains("no `bootstrap`"));
        // Without a local interpreter, the version cannot be told.
        let e = infer(
            &names(&["app.py"]),
            &|_| Some("def handler(e, c): pass\n".into()),
            &|_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no Python interpreter was found on this machine"),
            "{e}"
        );
    }

    #[test]
    fn python_needs_a_handler() {
        let err = create_body(
            &args(Some("python3.12"), None),
            &[],
            "",
            "r",
            &|_| None,
            &|_| None,
        )
        .unwrap_err();
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
