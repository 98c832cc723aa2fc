//! `warden console`: a one-time link that signs a browser in to the web console.

use anyhow::Context as _;
use http::Method;

use super::Client;

/// Asks the server for a sign-in link for the key this client signs with and prints it:
/// the link on stdout (for scripts and `xdg-open`), what it is on stderr.
pub fn link(client: &Client, endpoint: &str) -> anyhow::Result<()> {
    let reply = client.call(
        Method::POST,
        "/console/link",
        &[],
        Some(Vec::new()),
        "the console sign-in link",
    )?;
    let v = reply.json()?;
    let path = v["SignInPath"]
        .as_str()
        .context("the server's answer has no SignInPath")?;
    println!("{}{path}", endpoint.trim_end_matches('/'));
    eprintln!(
        "Open it in a browser: it signs in once, within {} s, as {}.",
        v["ExpiresInSeconds"],
        v["Principal"].as_str().unwrap_or("this key's principal")
    );
    Ok(())
}
