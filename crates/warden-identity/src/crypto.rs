//! Secrets at rest and random identifiers: the master key file, AES-256-GCM sealing of
//! secret access keys (bound to their key id), and the random ids and secrets IAM hands out.
//!
//! A secret access key cannot be hashed: SigV4 verification needs the key itself to compute
//! the HMAC. So it is encrypted under a 32-byte master key that lives in its own file, so a
//! copy of the database alone reveals nothing.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::error::IdentityError;

/// Format byte leading every sealed secret, so the scheme can change later.
const SEALED_V1: u8 = 1;
/// Length of the master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// The key that encrypts secrets at rest. Its `Debug` never shows the key.
pub struct MasterKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

fn file_err(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError {
    let path = path.to_owned();
    move |source| IdentityError::File {
        context,
        path,
        source,
    }
}

impl MasterKey {
    /// Builds a key from raw bytes (tests, or a key supplied by a KMS later).
    pub fn from_bytes(bytes: &[u8; MASTER_KEY_LEN]) -> Result<MasterKey, IdentityError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| IdentityError::Crypto("building the master key"))?;
        Ok(MasterKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Reads the key at `path`, creating it (mode 0600, never overwriting) if absent.
    ///
    /// Creation writes a temporary file, syncs it and hard-links it into place: the link
    /// fails if another process won the race, and a crash never leaves a short key file.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, IdentityError> {
        match read_key_file(path) {
            Ok(key) => return Ok(key),
            Err(IdentityError::File { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut bytes = [0u8; MASTER_KEY_LEN];
        fill_random(&mut bytes)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        let tmp = dir.join(format!(".master.key.{}", random_chars(12, ALNUM)?));
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()
        };
        write().map_err(file_err("writing a new master key", &tmp))?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(file_err("syncing the data directory", &dir))?;
                tracing::info!(path = %path.display(), "created a new master key");
                MasterKey::from_bytes(&bytes)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
            Err(e) => Err(file_err("installing the master key", path)(e)),
        }
    }

    /// Encrypts `secret` for storage; `key_id` is bound as associated data, so a sealed
    /// secret copied onto another key's row does not decrypt.
    pub fn seal(&self, key_id: &str, secret: &str) -> Result<Vec<u8>, IdentityError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut buf = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key_id.as_bytes()),
                &mut buf,
            )
            .map_err(|_| IdentityError::Crypto("encrypting a secret"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts a secret sealed by [`MasterKey::seal`] for the same `key_id`.
    pub fn open(&self, key_id: &str, sealed: &[u8]) -> Result<String, IdentityError> {
        let fail = || IdentityError::Decrypt {
            key_id: key_id.to_owned(),
        };
        let (&version, rest) = sealed.split_first().ok_or_else(fail)?;
        if version != SEALED_V1 || rest.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(key_id.as_bytes()), &mut buf)
            .map_err(|_| fail())?;
        String::from_utf8(plain.to_vec()).map_err(|_| fail())
    }
}

fn read_key_file(path: &Path) -> Result<MasterKey, IdentityError> {
    let mut f = fs::File::open(path).map_err(file_err("opening the master key", path))?;
    let meta = f
        .metadata()
        .map_err(file_err("reading the master key's metadata", path))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(IdentityError::MasterKeyUnusable {
            path: path.to_owned(),
            reason: format!(
                "its mode {:o} lets other users read it; expected 600",
                mode & 0o777
            ),
        });
    }
    let mut bytes = Vec::with_capacity(MASTER_KEY_LEN);
    f.read_to_end(&mut bytes)
        .map_err(file_err("reading the master key", path))?;
    let bytes: [u8; MASTER_KEY_LEN] =
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| IdentityError::MasterKeyUnusable {
                path: path.to_owned(),
                reason: format!("it holds {} bytes, expected {MASTER_KEY_LEN}", bytes.len()),
            })?;
    MasterKey::from_bytes(&bytes)
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), IdentityError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| IdentityError::Crypto("reading the system random number generator"))
}

/// The alphabet of IAM unique ids and access key ids (upper-case base32).
pub(crate) const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Letters and digits.
pub(crate) const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The alphabet of AWS secret access keys (base64 without padding).
pub(crate) const SECRET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `len` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
pub(crate) fn random_chars(len: usize, alphabet: &[u8]) -> Result<String, IdentityError> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf)?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

/// A new id such as `AIDA` + 16 base32 characters.
pub(crate) fn new_id(prefix: &str) -> Result<String, IdentityError> {
    Ok(format!("{prefix}{}", random_chars(16, BASE32)?))
}

/// A new 40-character secret access key.
pub(crate) fn new_secret() -> Result<String, IdentityError> {
    random_chars(40, SECRET)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; MASTER_KEY_LEN]).unwrap()
    }

    #[test]
    fn seal_and_open_round_trip() {
        let k = key(7);
        let sealed = k.seal("AKIAAAAA", "s3cret/+").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"s3cret/+"));
        assert_eq!(k.open("AKIAAAAA", &sealed).unwrap(), "s3cret/+");
    }

    #[test]
    fn wrong_key_wrong_id_and_tampering_are_refused() {
        let k = key(7);
        let sealed = k.seal("AKIAAAAA", "secret").unwrap();
        assert!(matches!(
            key(8).open("AKIAAAAA", &sealed),
            Err(IdentityError::Decrypt { .. })
        ));
        assert!(k.open("AKIABBBB", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(k.open("AKIAAAAA", &t).is_err(), "flip at byte {i} accepted");
        }
        assert!(k.open("AKIAAAAA", &sealed[..sealed.len() - 1]).is_err());
        assert!(k.open("AKIAAAAA", &[]).is_err());
        assert_eq!(
            key(8).open("AKIAAAAA", &sealed).unwrap_err().to_string(),
            "cannot decrypt the secret of access key `AKIAAAAA`: wrong master key or tampered data"
        );
    }

    #[test]
    fn master_key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k1 = MasterKey::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), MASTER_KEY_LEN as u64);
        let sealed = k1.seal("id", "x").unwrap();
        let k2 = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(k2.open("id", &sealed).unwrap(), "x");
        // No temporary file left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unusable_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, [1u8; 5]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("is unusable: it holds 5 bytes, expected 32"),
            "{e}"
        );
        fs::write(&path, [1u8; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("its mode 644 lets other users read it; expected 600"),
            "{e}"
        );
    }

    #[test]
    fn random_ids_have_the_right_shape() {
        let id = new_id("AKIA").unwrap();
        assert_eq!(id.len(), 20);
        assert!(id.bytes().skip(4).all(|b| BASE32.contains(&b)));
        assert_ne!(id, new_id("AKIA").unwrap());
        assert_eq!(new_secret().unwrap().len(), 40);
    }

    #[test]
    fn debug_redacts_the_key() {
        assert_eq!(format!("{:?}", key(1)), "MasterKey(<redacted>)");
    }
}
