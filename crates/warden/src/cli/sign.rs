//! `warden sign --profile NAME package.zip [-o out.zip]`: signs a Lambda package with a
//! signing profile. The package is checked and digested here; the server's `SignPayload`
//! (Signer's API, `payloadFormat` `application/vnd.warden.lambda-zip-digest`) signs the
//! digest with the profile's current key, which never leaves the server, and answers with
//! the signature; it is written into the package's archive comment (see
//! `warden_signer::format`), so the signed zip deploys unchanged with the AWS CLI's
//! `--zip-file`.

use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use clap::Args;
use http::Method;

use super::client::{ApiError, Client};

/// `warden sign`
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The signing profile (`aws signer put-signing-profile`)
    #[arg(long)]
    pub profile: String,
    /// The unsigned zip to sign
    pub package: PathBuf,
    /// Where to write the signed zip (default: `NAME.signed.zip` beside the package)
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// The largest package signed (Lambda's largest direct upload is far smaller).
const MAX_PACKAGE: u64 = 256 << 20;

/// Signs the package and writes the signed copy.
pub fn sign(client: &Client, args: &SignArgs) -> anyhow::Result<()> {
    let size = std::fs::metadata(&args.package)
        .with_context(|| format!("cannot read `{}`", args.package.display()))?
        .len();
    if size > MAX_PACKAGE {
        anyhow::bail!(
            "`{}` is {size} bytes; Warden signs packages of at most {MAX_PACKAGE} bytes",
            args.package.display()
        );
    }
    let zip = std::fs::read(&args.package)
        .with_context(|| format!("cannot read `{}`", args.package.display()))?;
    let digest = warden_signer::format::prepare(&zip)
        .with_context(|| format!("cannot sign `{}`", args.package.display()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = serde_json::json!({
        "profileName": args.profile,
        "payload": b64.encode(digest.as_bytes()),
        "payloadFormat": warden_signer::DIGEST_PAYLOAD_FORMAT,
    });
    let reply = client.send_for(
        "signer",
        Method::POST,
        "/signing-jobs/with-payload",
        &[("content-type", "application/json")],
        Some(body.to_string().into_bytes()),
    )?;
    if !(200..300).contains(&reply.status) {
        return Err(ApiError::from_reply(&reply)
            .about(format!("signing profile `{}`", args.profile))
            .into());
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&reply.body).context("the signing reply is not JSON")?;
    let comment = answer
        .get("signature")
        .and_then(|s| s.as_str())
        .and_then(|s| b64.decode(s).ok())
        .context("the signing reply carries no signature")?;
    let manifest = comment
        .strip_prefix(warden_signer::format::MAGIC)
        .and_then(|m| serde_json::from_slice::<warden_signer::format::Manifest>(m).ok())
        .context("the signing reply's signature is not a Warden package signature")?;
    if manifest.digest != digest {
        anyhow::bail!("the server signed a digest other than the package's");
    }
    let signed = warden_signer::format::attach(&zip, &manifest)?;
    let output = args.output.clone().unwrap_or_else(|| {
        let stem = args
            .package
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "package".into());
        args.package.with_file_name(format!("{stem}.signed.zip"))
    });
    std::fs::write(&output, &signed)
        .with_context(|| format!("cannot write `{}`", output.display()))?;
    println!(
        "{}",
        serde_json::json!({
            "Output": output.display().to_string(),
            "JobId": manifest.job_id,
            "ProfileVersionArn": manifest.profile_version_arn,
            "SignedAt": manifest.signed_at,
            "ExpiresAt": manifest.expires_at,
        })
    );
    Ok(())
}
