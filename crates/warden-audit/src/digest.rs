//! Signed digests: a signed tree head of the log, naming the digest before it, so that
//! whoever keeps a copy can later prove the log was not rewritten, truncated or forked.
//!
//! The signature covers [`Digest::signed_message`], a fixed line-oriented text built from
//! the fields (not the JSON, so that no JSON canonicalisation is needed), prefixed with a
//! version tag so the signature cannot be replayed as anything else. The key is behind the
//! [`Signer`] / [`Verifier`] pair: the KMS supplies them later; [`Ed25519Signer`] and
//! [`Ed25519Verifier`] (aws-lc-rs, which Warden's KMS already uses) serve until then and
//! in tests.
//!
//! Digests leave the data directory two ways: [`export_to_dir`] writes each as
//! `digest-<treeSize>.json` (write-once: a file is never overwritten with a different
//! digest), and [`send_to_witness`] hands one to an external command on stdin.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::merkle::Hash;

/// The first line of every signed message: the format and its version.
const SIGNED_MESSAGE_TAG: &str = "warden-audit-digest/1";

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Digest {
    /// How many events the tree covers (sequence numbers `0..treeSize`).
    pub tree_size: u64,
    /// The RFC 6962 tree head of those events, hex.
    #[serde(with = "hex32")]
    pub root_hash: Hash,
    /// The chain hash of the last covered event (32 zero bytes for an empty log), hex.
    #[serde(with = "hex32")]
    pub chain_hash: Hash,
    /// When the digest was made, epoch milliseconds.
    pub time: i64,
    /// [`Digest::hash`] of the digest published before this one; `null` for the first.
    #[serde(with = "opt_hex32")]
    pub previous_digest_hash: Option<Hash>,
    /// The signing key's id (a KMS key ARN once the KMS signs).
    pub key_id: String,
    /// The signature over [`Digest::signed_message`], base64.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

impl Digest {
    /// Builds and signs a digest.
    pub fn sign(
        signer: &dyn Signer,
        tree_size: u64,
        root_hash: Hash,
        chain_hash: Hash,
        time: i64,
        previous_digest_hash: Option<Hash>,
    ) -> Result<Self, Error> {
        let key_id = signer.key_id().to_owned();
        if !key_id_is_valid(&key_id) {
            return Err(Error::KeyId(key_id));
        }
        let mut digest = Digest {
            tree_size,
            root_hash,
            chain_hash,
            time,
            previous_digest_hash,
            key_id,
            signature: Vec::new(),
        };
        digest.signature = signer
            .sign(digest.signed_message().as_bytes())
            .map_err(|source| Error::Sign {
                key_id: digest.key_id.clone(),
                source,
            })?;
        Ok(digest)
    }

    /// The text the signature covers: one field a line, hashes in lowercase hex.
    pub fn signed_message(&self) -> String {
        let previous = self
            .previous_digest_hash
            .map_or_else(|| "none".to_owned(), hex::encode);
        format!(
            "{SIGNED_MESSAGE_TAG}\ntree-size {}\nroot {}\nchain {}\ntime {}\nprevious {}\nkey {}\n",
            self.tree_size,
            hex::encode(self.root_hash),
            hex::encode(self.chain_hash),
            self.time,
            previous,
            self.key_id
        )
    }

    /// What the next digest names as its previous one: SHA-256 of the signed message.
    pub fn hash(&self) -> Hash {
        Sha256::digest(self.signed_message().as_bytes()).into()
    }

    /// Whether the signature is good under `verifier` (and the key id could have been
    /// signed: one with a line break could make two messages read alike).
    pub fn verify_signature(&self, verifier: &dyn Verifier) -> bool {
        key_id_is_valid(&self.key_id)
            && verifier.verify(
                &self.key_id,
                self.signed_message().as_bytes(),
                &self.signature,
            )
    }

    /// The JSON the log stores and exports.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain fields into memory cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a digest's JSON; `origin` names where it came from, for the error.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Self, Error> {
        serde_json::from_slice(bytes).map_err(|source| Error::DigestParse {
            origin: origin.to_owned(),
            source,
        })
    }

    /// The file name an export gives this digest.
    pub fn file_name(&self) -> String {
        format!("digest-{}.json", self.tree_size)
    }
}

fn key_id_is_valid(key_id: &str) -> bool {
    !key_id.is_empty() && !key_id.chars().any(char::is_control)
}

/// What signs digests. The KMS implements it with a key that never leaves it.
pub trait Signer: Send + Sync {
    /// The key's id, written into each digest.
    fn key_id(&self) -> &str;
    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;
}

/// What checks digest signatures: a decision, never an error, since an unknown key and a
/// bad signature mean the same to verification (the digest is not trusted).
pub trait Verifier {
    /// Whether `signature` is `key_id`'s over `message`.
    fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> bool;
}

/// An Ed25519 key in memory.
pub struct Ed25519Signer {
    key_id: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A key aws-lc-rs could not generate or parse; it says no more than that.
#[derive(Debug, thiserror::Error)]
#[error("the Ed25519 key could not be generated or parsed")]
pub struct KeyError;

impl Ed25519Signer {
    /// A fresh random key.
    pub fn generate(key_id: impl Into<String>) -> Result<Self, KeyError> {
        Ok(Ed25519Signer {
            key_id: key_id.into(),
            pair: Ed25519KeyPair::generate().map_err(|_| KeyError)?,
        })
    }

    /// The key from its 32-byte seed.
    pub fn from_seed(key_id: impl Into<String>, seed: &[u8]) -> Result<Self, KeyError> {
        Ok(Ed25519Signer {
            key_id: key_id.into(),
            pair: Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| KeyError)?,
        })
    }

    /// The 32-byte public key, for a [`Ed25519Verifier`].
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

impl Signer for Ed25519Signer {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.pair.sign(message).as_ref().to_vec())
    }
}

/// Ed25519 public keys by key id; several, so that digests signed before a rotation still
/// verify.
#[derive(Debug, Clone, Default)]
pub struct Ed25519Verifier {
    keys: HashMap<String, Vec<u8>>,
}

impl Ed25519Verifier {
    /// A verifier that trusts one key.
    pub fn new(key_id: impl Into<String>, public_key: &[u8]) -> Self {
        let mut v = Ed25519Verifier::default();
        v.add(key_id, public_key);
        v
    }

    /// Trusts one more key.
    pub fn add(&mut self, key_id: impl Into<String>, public_key: &[u8]) {
        self.keys.insert(key_id.into(), public_key.to_vec());
    }
}

impl Verifier for Ed25519Verifier {
    fn verify(&self, key_id: &str, message: &[u8], sig: &[u8]) -> bool {
        self.keys.get(key_id).is_some_and(|key| {
            UnparsedPublicKey::new(&signature::ED25519, key)
                .verify(message, sig)
                .is_ok()
        })
    }
}

/// Writes each digest to `dir` as `digest-<treeSize>.json`, creating `dir`. A file already
/// there with the same digest is kept; one with a different digest is evidence the log's
/// digest changed, so it is never overwritten ([`Error::ExportConflict`]). Each new file is
/// written beside, synced and renamed into place, so a crash never leaves half a digest.
/// Returns the paths written.
pub fn export_to_dir(digests: &[Digest], dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |context: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Export {
            context,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("creating the digest directory", dir))?;
    let mut written = Vec::new();
    for digest in digests {
        let path = dir.join(digest.file_name());
        let json = digest.to_json();
        match std::fs::read(&path) {
            Ok(existing) => {
                let same = Digest::from_json(&existing, "")
                    .map(|d| d == *digest)
                    .unwrap_or(false);
                if same {
                    continue;
                }
                return Err(Error::ExportConflict { path });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("reading the exported digest", &path)(e)),
        }
        let tmp = dir.join(format!(".{}.tmp", digest.file_name()));
        let mut file =
            std::fs::File::create(&tmp).map_err(io("creating the exported digest", &tmp))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(io("writing the exported digest", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("renaming the exported digest", &path))?;
        written.push(path);
    }
    if !written.is_empty() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the digest directory", dir))?;
    }
    Ok(written)
}

/// Reads every `digest-*.json` in `dir`, smallest tree first.
pub fn read_exported(dir: &Path) -> Result<Vec<Digest>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Export {
        context: "reading the digest directory",
        path: dir.to_owned(),
        source,
    })?;
    let mut digests = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Export {
            context: "reading the digest directory",
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("digest-") && name.ends_with(".json")) {
            continue;
        }
        let path = entry.path();
        let bytes = std::fs::read(&path).map_err(|source| Error::Export {
            context: "reading the exported digest",
            path: path.clone(),
            source,
        })?;
        digests.push(Digest::from_json(&bytes, &format!("`{}`", path.display()))?);
    }
    digests.sort_by_key(|d| d.tree_size);
    Ok(digests)
}

/// Runs `command` (a program and its arguments, no shell) with the digest's JSON on stdin;
/// an unsuccessful exit is [`Error::WitnessRefused`] with the start of its stderr.
pub fn send_to_witness(command: &[String], digest: &Digest) -> Result<(), Error> {
    let program = command.first().cloned().unwrap_or_default();
    let spawn_err = |source| Error::WitnessSpawn {
        command: program.clone(),
        source,
    };
    let mut child = Command::new(&program)
        .args(command.iter().skip(1))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A witness that exits without reading is judged by its exit status, not by the
        // broken pipe this write then gets.
        if let Err(e) = stdin.write_all(&digest.to_json()) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                let _ = child.kill();
                let _ = child.wait();
                return Err(spawn_err(e));
            }
        }
    }
    let output = child.wait_with_output().map_err(spawn_err)?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr: String = stderr.trim().chars().take(500).collect();
    Err(Error::WitnessRefused {
        command: program,
        status: output.status.to_string(),
        stderr,
    })
}

mod hex32 {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::merkle::Hash;

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

mod opt_hex32 {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::merkle::Hash;

    pub fn serialize<S: Serializer>(h: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => s.serialize_str(&hex::encode(h)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hash>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Some(out))
    }
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
