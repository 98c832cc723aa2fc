//! The server master key: the root of trust of everything Warden keeps secret at rest.
//!
//! It seals (AES-256-GCM) the material of every KMS key and every IAM secret access key;
//! nothing else is encrypted under it directly. It comes from a 32-byte key file
//! (`DATA_DIR/master.key` by default, mode 0600, created on first start) or is derived
//! from a passphrase (PBKDF2-HMAC-SHA256, 600,000 iterations, with a random salt kept
//! beside the data in `DATA_DIR/master.salt`), for hosts that keep their secrets
//! elsewhere. Its `fingerprint` names it without revealing it, so a data directory can
//! say which master key sealed it and a wrong one is refused before anything is read.

use std::fs;
use std::io::{Read, Write};
use std::num::NonZeroU32;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest;
use zeroize::Zeroizing;

use crate::random::fill_random;

/// Length of the master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;
/// Format byte leading everything the master key seals.
const SEALED_V1: u8 = 1;
/// PBKDF2 iterations for a passphrase (OWASP's figure for PBKDF2-HMAC-SHA256).
const PBKDF2_ITERATIONS: u32 = 600_000;
/// Length of the passphrase salt.
const SALT_LEN: usize = 16;

/// Why the master key could not be loaded or used. Never carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// Reading or writing a key (or salt) file failed.
    #[error("{context} `{}`: {source}", path.display())]
    File {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The key file exists but is unusable (wrong length or readable by others).
    #[error("master key `{}` is unusable: {reason}", path.display())]
    Unusable {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An empty passphrase.
    #[error("the master key passphrase is empty")]
    EmptyPassphrase,
    /// The system random number generator or the cipher failed.
    #[error("cryptography failure while {0}")]
    Crypto(&'static str),
}

fn file_err(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MasterKeyError {
    let path = path.to_owned();
    move |source| MasterKeyError::File {
        context,
        path,
        source,
    }
}

struct Inner {
    key: LessSafeKey,
    fingerprint: String,
}

/// The key that seals secrets at rest. Cheap to clone; its `Debug` never shows the key.
#[derive(Clone)]
pub struct MasterKey {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.inner.fingerprint)
    }
}

impl MasterKey {
    /// Builds a key from raw bytes.
    pub fn from_bytes(bytes: &[u8; MASTER_KEY_LEN]) -> Result<MasterKey, MasterKeyError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| MasterKeyError::Crypto("building the master key"))?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"warden master key fingerprint\0");
        ctx.update(bytes);
        let digest = ctx.finish();
        let fingerprint = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(MasterKey {
            inner: Arc::new(Inner {
                key: LessSafeKey::new(unbound),
                fingerprint,
            }),
        })
    }

    /// A new random key (not saved anywhere).
    pub fn generate() -> Result<MasterKey, MasterKeyError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        fill_random(bytes.as_mut()).map_err(|_| MasterKeyError::Crypto("generating a key"))?;
        MasterKey::from_bytes(&bytes)
    }

    /// Sixteen hex digits naming this key (a digest of it; reveals nothing of it).
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// Reads the key at `path`, creating it (mode 0600, never overwriting) if absent.
    ///
    /// Creation writes a temporary file, syncs it and hard-links it into place: the link
    /// fails if another process won the race, and a crash never leaves a short key file.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, MasterKeyError> {
        match read_key_file(path) {
            Ok(key) => return Ok(key),
            Err(MasterKeyError::File { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        fill_random(bytes.as_mut()).map_err(|_| MasterKeyError::Crypto("generating a key"))?;
        match write_new_file(path, bytes.as_ref()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created a new master key");
                MasterKey::from_bytes(&bytes)
            }
            // Another process created it first: use theirs.
            Err(MasterKeyError::File { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                read_key_file(path)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads an existing key file; a missing file is an error.
    pub fn load(path: &Path) -> Result<MasterKey, MasterKeyError> {
        read_key_file(path)
    }

    /// Writes this key's bytes to a new file at `path` (mode 0600; an existing file is
    /// never overwritten), synced with its directory. Only keys built from bytes held
    /// here can be written: [`MasterKey::generate_file`] is how a new key file is made.
    pub fn generate_file(path: &Path) -> Result<MasterKey, MasterKeyError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        fill_random(bytes.as_mut()).map_err(|_| MasterKeyError::Crypto("generating a key"))?;
        write_new_file(path, bytes.as_ref())?;
        MasterKey::from_bytes(&bytes)
    }

    /// Derives the key from `passphrase` with the salt in `salt_path` (created, random, on
    /// first use). The same passphrase and salt always give the same key.
    pub fn from_passphrase(
        passphrase: &str,
        salt_path: &Path,
    ) -> Result<MasterKey, MasterKeyError> {
        if passphrase.is_empty() {
            return Err(MasterKeyError::EmptyPassphrase);
        }
        let salt = match fs::read(salt_path) {
            Ok(s) if s.len() == SALT_LEN => s,
            Ok(s) => {
                return Err(MasterKeyError::Unusable {
                    path: salt_path.to_owned(),
                    reason: format!("the salt holds {} bytes, expected {SALT_LEN}", s.len()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut s = [0u8; SALT_LEN];
                fill_random(&mut s).map_err(|_| MasterKeyError::Crypto("generating a salt"))?;
                match write_new_file(salt_path, &s) {
                    Ok(()) => s.to_vec(),
                    Err(MasterKeyError::File { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        fs::read(salt_path).map_err(file_err("reading the salt", salt_path))?
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(file_err("reading the salt", salt_path)(e)),
        };
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).ok_or(MasterKeyError::Crypto(
            "deriving the key from the passphrase",
        ))?;
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            passphrase.as_bytes(),
            bytes.as_mut(),
        );
        MasterKey::from_bytes(&bytes)
    }

    /// Encrypts `plain`; `aad` is bound as associated data, so a sealed value copied to
    /// another place (another `aad`) does not open.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce).map_err(|_| MasterKeyError::Crypto("generating a nonce"))?;
        let mut body = plain.to_vec();
        self.inner
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| MasterKeyError::Crypto("sealing"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts what [`MasterKey::seal`] sealed with the same `aad`; `None` if it does
    /// not authenticate (another key, another `aad`, or a changed byte).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&version, rest) = sealed.split_first()?;
        if version != SEALED_V1 || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .inner
            .key
            .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
            .ok()?
            .len();
        buf.truncate(len);
        Some(buf)
    }
}

fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), MasterKeyError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut suffix = [0u8; 8];
    fill_random(&mut suffix).map_err(|_| MasterKeyError::Crypto("naming a file"))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".key.{suffix}"));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    let written = write();
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    linked.map_err(file_err("installing", path))?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(file_err("syncing the directory", &dir))
}

fn read_key_file(path: &Path) -> Result<MasterKey, MasterKeyError> {
    let mut f = fs::File::open(path).map_err(file_err("opening the master key", path))?;
    let meta = f
        .metadata()
        .map_err(file_err("reading the master key's metadata", path))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(MasterKeyError::Unusable {
            path: path.to_owned(),
            reason: format!(
                "its mode {:o} lets other users read it; expected 600",
                mode & 0o777
            ),
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(MASTER_KEY_LEN));
    Read::by_ref(&mut f)
        .take(MASTER_KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(file_err("reading the master key", path))?;
    let bytes: &[u8; MASTER_KEY_LEN] =
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::Unusable {
                path: path.to_owned(),
                reason: format!(
                    "it holds {}{} bytes, expected {MASTER_KEY_LEN}",
                    if bytes.len() > MASTER_KEY_LEN {
                        "more than "
                    } else {
                        ""
                    },
                    bytes.len().min(MASTER_KEY_LEN)
                ),
            })?;
    MasterKey::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; MASTER_KEY_LEN]).unwrap()
    }

    #[test]
    fn seal_and_open_round_trip_bound_to_their_aad() {
        let k = key(7);
        let sealed = k.seal(b"id", b"s3cret/+").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"s3cret/+"));
        assert_eq!(k.open(b"id", &sealed).unwrap().as_slice(), b"s3cret/+");
        assert!(k.open(b"other", &sealed).is_none());
        assert!(key(8).open(b"id", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(k.open(b"id", &t).is_none(), "flip at byte {i} accepted");
        }
        assert!(k.open(b"id", &sealed[..sealed.len() - 1]).is_none());
        assert!(k.open(b"id", &[]).is_none());
    }

    #[test]
    fn fingerprints_name_keys_without_showing_them() {
        assert_eq!(key(1).fingerprint(), key(1).fingerprint());
        assert_ne!(key(1).fingerprint(), key(2).fingerprint());
        assert_eq!(key(1).fingerprint().len(), 16);
        assert!(!format!("{:?}", key(1)).contains("0101"));
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k1 = MasterKey::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), MASTER_KEY_LEN as u64);
        let k2 = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(k1.fingerprint(), k2.fingerprint());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
        assert!(
            MasterKey::generate_file(&path).is_err(),
            "never overwritten"
        );
    }

    #[test]
    fn unusable_key_files_are_refused_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, [0u8; 31]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = MasterKey::load(&path).unwrap_err().to_string();
        assert!(e.contains("holds 31 bytes"), "{e}");
        fs::write(&path, [0u8; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = MasterKey::load(&path).unwrap_err().to_string();
        assert!(e.contains("lets other users read it"), "{e}");
        assert!(MasterKey::load(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn a_passphrase_derives_the_same_key_with_its_salt() {
        let dir = tempfile::tempdir().unwrap();
        let salt = dir.path().join("master.salt");
        let a = MasterKey::from_passphrase("correct horse", &salt).unwrap();
        let b = MasterKey::from_passphrase("correct horse", &salt).unwrap();
        let c = MasterKey::from_passphrase("wrong horse", &salt).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert!(matches!(
            MasterKey::from_passphrase("", &salt),
            Err(MasterKeyError::EmptyPassphrase)
        ));
    }
}
