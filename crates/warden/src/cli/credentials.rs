//! Where the CLI finds the keys it signs requests with, in the order the AWS CLI uses plus
//! Warden's own bootstrap file:
//!
//! 1. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`;
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`),
//!    profile `AWS_PROFILE` or `default`;
//! 3. the file `warden serve` writes on first start: `$WARDEN_DATA_DIR/credentials`, else
//!    `$XDG_DATA_HOME/warden/credentials`, else `~/.local/share/warden/credentials`
//!    (same format, profile `default`).
//!
//! The region is `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`. Lookups take the
//! environment as a function so tests can run them against temporary files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use warden_auth::SigningCredentials;

/// The region when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Credentials found, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The keys.
    pub credentials: SigningCredentials,
    /// Where they came from, for messages: `environment`, or `<path> [profile]`.
    pub source: String,
}

/// Reads an environment variable; empty values count as unset, as in the AWS CLI.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as an [`Env`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The signing region.
pub fn region(env: Env<'_>) -> String {
    env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

/// Finds credentials in the order of the module docs; `Ok(None)` when there are none.
///
/// # Errors
/// Half-set environment credentials, an unreadable or incomplete file, or an explicitly
/// chosen `AWS_PROFILE` that the shared file does not have: each would otherwise silently sign
/// as someone else or not at all.
pub fn find(env: Env<'_>) -> anyhow::Result<Option<Found>> {
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => {
            return Ok(Some(Found {
                credentials: SigningCredentials {
                    access_key_id,
                    secret_access_key,
                    session_token: env("AWS_SESSION_TOKEN"),
                },
                source: "environment".to_owned(),
            }))
        }
        (Some(_), None) => {
            bail!("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        }
        (None, Some(_)) => {
            bail!("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
        }
        (None, None) => {}
    }
    let explicit_profile = env("AWS_PROFILE");
    let profile = explicit_profile.as_deref().unwrap_or("default");
    if let Some(shared) = shared_credentials_path(env) {
        match read_profile(&shared, profile)? {
            Some(found) => return Ok(Some(found)),
            None if explicit_profile.is_some() && shared.exists() => bail!(
                "profile `{profile}` (from AWS_PROFILE) is not in `{}`",
                shared.display()
            ),
            None => {}
        }
    }
    match warden_credentials_path(env) {
        Some(path) => read_profile(&path, "default"),
        None => Ok(None),
    }
}

/// One line naming every place [`find`] looks, for when it found nothing.
pub fn hint(env: Env<'_>) -> String {
    let show = |p: Option<PathBuf>| {
        p.map_or_else(
            || "(no home directory)".to_owned(),
            |p| format!("`{}`", p.display()),
        )
    };
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    format!(
        "hint: no credentials found, so the request was sent unsigned; Warden looks in \
         AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then {} (profile `{profile}`), then {} \
         (written by `warden serve` on first start)",
        show(shared_credentials_path(env)),
        show(warden_credentials_path(env)),
    )
}

fn home(env: Env<'_>) -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

/// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
pub fn shared_credentials_path(env: Env<'_>) -> Option<PathBuf> {
    env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home(env).map(|h| h.join(".aws").join("credentials")))
}

/// The bootstrap credentials `warden serve` writes into its data directory; the default data
/// directory is the server's (`$XDG_DATA_HOME/warden`, else `~/.local/share/warden`).
pub fn warden_credentials_path(env: Env<'_>) -> Option<PathBuf> {
    let data_dir = env("WARDEN_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| env("XDG_DATA_HOME").map(|x| PathBuf::from(x).join("warden")))
        .or_else(|| home(env).map(|h| h.join(".local").join("share").join("warden")))?;
    Some(data_dir.join("credentials"))
}

/// Reads `profile` from a shared-credentials file; `Ok(None)` if the file or the profile is
/// absent.
fn read_profile(path: &Path, profile: &str) -> anyhow::Result<Option<Found>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read credentials file `{}`", path.display()))
        }
    };
    let Some(values) = parse_profile(&text, profile) else {
        return Ok(None);
    };
    let get = |key: &str| {
        values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let source = format!("`{}` [{profile}]", path.display());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Found {
            credentials: SigningCredentials {
                access_key_id,
                secret_access_key,
                session_token: get("aws_session_token").or_else(|| get("aws_security_token")),
            },
            source,
        })),
        (None, None) => Ok(None),
        _ => bail!(
            "profile `{profile}` in `{}` needs both aws_access_key_id and aws_secret_access_key",
            path.display()
        ),
    }
}

/// The `key = value` pairs of section `[profile]` in INI text (keys lowercased, as Python's
/// configparser does for the AWS CLI), or `None` if there is no such section.
fn parse_profile(text: &str, profile: &str) -> Option<Vec<(String, String)>> {
    let mut in_section = false;
    let mut seen = false;
    let mut values = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == profile;
            seen |= in_section;
            continue;
        }
        if in_section {
            if let Some((k, v)) = line.split_once('=').or_else(|| line.split_once(':')) {
                values.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
    }
    seen.then_some(values)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        move |k| map.get(k).cloned().filter(|v| !v.is_empty())
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn akid(found: anyhow::Result<Option<Found>>) -> Option<String> {
        found.unwrap().map(|f| f.credentials.access_key_id)
    }

    /// A home with a shared file (profiles `default` and `dev`) and a Warden data dir file.
    fn setup() -> (tempfile::TempDir, Vec<(&'static str, String)>) {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(
            &home.join(".aws/credentials"),
            "# comment\n[default]\naws_access_key_id = AKIASHARED\naws_secret_access_key = s1\n\n\
             [dev]\nAWS_ACCESS_KEY_ID=AKIADEV\naws_secret_access_key=s2\naws_session_token = tok\n",
        );
        write(
            &home.join(".local/share/warden/credentials"),
            "[default]\naws_access_key_id = AKIAWARDENHOME\naws_secret_access_key = s3\n",
        );
        let vars = vec![("HOME", home.display().to_string())];
        (dir, vars)
    }

    #[test]
    fn environment_comes_first() {
        let (_dir, mut vars) = setup();
        vars.push(("AWS_ACCESS_KEY_ID", "AKIAENV".into()));
        vars.push(("AWS_SECRET_ACCESS_KEY", "secret".into()));
        vars.push(("AWS_SESSION_TOKEN", "token".into()));
        let found = find(&env_of(&vars)).unwrap().unwrap();
        assert_eq!(found.source, "environment");
        assert_eq!(found.credentials.session_token.as_deref(), Some("token"));
        assert_eq!(found.credentials.access_key_id, "AKIAENV");
    }

    #[test]
    fn half_set_environment_is_an_error() {
        let (_dir, mut vars) = setup();
        vars.push(("AWS_ACCESS_KEY_ID", "AKIAENV".into()));
        let err = find(&env_of(&vars)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
        );
    }

    #[test]
    fn then_the_shared_file_and_its_profiles() {
        let (_dir, mut vars) = setup();
        assert_eq!(akid(find(&env_of(&vars))), Some("AKIASHARED".into()));
        vars.push(("AWS_PROFILE", "dev".into()));
        let found = find(&env_of(&vars)).unwrap().unwrap();
        assert_eq!(found.credentials.access_key_id, "AKIADEV");
        assert_eq!(found.credentials.session_token.as_deref(), Some("tok"));
        assert!(
            found.source.ends_with("/home/.aws/credentials` [dev]"),
            "{}",
            found.source
        );
    }

    #[test]
    fn an_explicit_profile_that_does_not_exist_is_an_error() {
        let (_dir, mut vars) = setup();
        vars.push(("AWS_PROFILE", "nope".into()));
        let err = find(&env_of(&vars)).unwrap_err().to_string();
        assert!(
            err.starts_with("profile `nope` (from AWS_PROFILE) is not in `"),
            "{err}"
        );
    }

    #[test]
    fn aws_shared_credentials_file_overrides_the_home_file() {
        let (dir, mut vars) = setup();
        let other = dir.path().join("other-credentials");
        write(
            &other,
            "[default]\naws_access_key_id=AKIAOTHER\naws_secret_access_key=x\n",
        );
        vars.push(("AWS_SHARED_CREDENTIALS_FILE", other.display().to_string()));
        assert_eq!(akid(find(&env_of(&vars))), Some("AKIAOTHER".into()));
    }

    #[test]
    fn then_wardens_own_file() {
        let (dir, mut vars) = setup();
        // No shared file at all (pointed at a missing path).
        vars.push((
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("missing").display().to_string(),
        ));
        assert_eq!(akid(find(&env_of(&vars))), Some("AKIAWARDENHOME".into()));
        // XDG_DATA_HOME moves the default data dir.
        let xdg = dir.path().join("xdg");
        write(
            &xdg.join("warden/credentials"),
            "[default]\naws_access_key_id=AKIAXDG\naws_secret_access_key=x\n",
        );
        vars.push(("XDG_DATA_HOME", xdg.display().to_string()));
        assert_eq!(akid(find(&env_of(&vars))), Some("AKIAXDG".into()));
        // WARDEN_DATA_DIR wins over both.
        let data = dir.path().join("data");
        write(
            &data.join("credentials"),
            "[default]\naws_access_key_id=AKIADATADIR\naws_secret_access_key=x\n",
        );
        vars.push(("WARDEN_DATA_DIR", data.display().to_string()));
        assert_eq!(akid(find(&env_of(&vars))), Some("AKIADATADIR".into()));
    }

    #[test]
    fn a_shared_file_without_the_default_profile_falls_through() {
        let (dir, mut vars) = setup();
        let other = dir.path().join("only-dev");
        write(
            &other,
            "[dev]\naws_access_key_id=AKIADEV\naws_secret_access_key=x\n",
        );
        vars.push(("AWS_SHARED_CREDENTIALS_FILE", other.display().to_string()));
        assert_eq!(akid(find(&env_of(&vars))), Some("AKIAWARDENHOME".into()));
    }

    #[test]
    fn nothing_found_and_the_hint_names_every_place() {
        let dir = tempfile::tempdir().unwrap();
        let vars = vec![("HOME", dir.path().display().to_string())];
        assert_eq!(akid(find(&env_of(&vars))), None);
        let hint = hint(&env_of(&vars));
        let home = dir.path().display();
        assert_eq!(
            hint,
            format!(
                "hint: no credentials found, so the request was sent unsigned; Warden looks in \
                 AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then `{home}/.aws/credentials` (profile \
                 `default`), then `{home}/.local/share/warden/credentials` (written by `warden \
                 serve` on first start)"
            )
        );
    }

    #[test]
    fn an_incomplete_profile_is_an_error() {
        let (dir, mut vars) = setup();
        let other = dir.path().join("half");
        write(&other, "[default]\naws_access_key_id=AKIAHALF\n");
        vars.push(("AWS_SHARED_CREDENTIALS_FILE", other.display().to_string()));
        let err = find(&env_of(&vars)).unwrap_err().to_string();
        assert!(err.starts_with("profile `default` in `"), "{err}");
        assert!(
            err.ends_with("` needs both aws_access_key_id and aws_secret_access_key"),
            "{err}"
        );
    }

    #[test]
    fn regions() {
        assert_eq!(region(&env_of(&[])), "us-east-1");
        assert_eq!(
            region(&env_of(&[("AWS_DEFAULT_REGION", "eu-west-1".into())])),
            "eu-west-1"
        );
        assert_eq!(
            region(&env_of(&[
                ("AWS_DEFAULT_REGION", "eu-west-1".into()),
                ("AWS_REGION", "ap-south-1".into())
            ])),
            "ap-south-1"
        );
    }

    #[test]
    fn ini_parsing() {
        let text = "[a]\nx = 1\n; c\n[ b ]\nK : v\n  y=  2 \n";
        assert_eq!(
            parse_profile(text, "a"),
            Some(vec![("x".into(), "1".into())])
        );
        assert_eq!(
            parse_profile(text, "b"),
            Some(vec![("k".into(), "v".into()), ("y".into(), "2".into())])
        );
        assert_eq!(parse_profile(text, "c"), None);
    }
}
