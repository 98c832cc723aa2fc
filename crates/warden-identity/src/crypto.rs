//! Secrets at rest and random identifiers: sealing of secret access keys under the server
//! master key (bound to their key id), and the random ids and secrets IAM hands out.
//!
//! A secret access key cannot be hashed: SigV4 verification needs the key itself to compute
//! the HMAC. So it is encrypted under a 32-byte master key that lives in its own file, so a
//! copy of the database alone reveals nothing.

pub use warden_kms::{MasterKey, MASTER_KEY_LEN};

use crate::error::IdentityError;

/// Encrypts `secret` for storage; `key_id` is bound as associated data, so a sealed
/// secret copied onto another key's row does not decrypt.
pub(crate) fn seal_secret(
    key: &MasterKey,
    key_id: &str,
    secret: &str,
) -> Result<Vec<u8>, IdentityError> {
    key.seal(key_id.as_bytes(), secret.as_bytes())
        .map_err(|_| IdentityError::Crypto("encrypting a secret"))
}

/// Decrypts a secret sealed by [`seal_secret`] for the same `key_id`.
pub(crate) fn open_secret(
    key: &MasterKey,
    key_id: &str,
    sealed: &[u8],
) -> Result<String, IdentityError> {
    let fail = || IdentityError::Decrypt {
        key_id: key_id.to_owned(),
    };
    let plain = key.open(key_id.as_bytes(), sealed).ok_or_else(fail)?;
    String::from_utf8(plain.to_vec()).map_err(|_| fail())
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), IdentityError> {
    warden_kms::random::fill_random(buf)
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
    fn secrets_round_trip_bound_to_their_key_id() {
        let k = key(7);
        let sealed = seal_secret(&k, "AKIAAAAA", "s3cret/+").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"s3cret/+"));
        assert_eq!(open_secret(&k, "AKIAAAAA", &sealed).unwrap(), "s3cret/+");
        assert!(open_secret(&k, "AKIABBBB", &sealed).is_err());
        assert_eq!(
            open_secret(&key(8), "AKIAAAAA", &sealed)
                .unwrap_err()
                .to_string(),
            "cannot decrypt the secret of access key `AKIAAAAA`: wrong master key or tampered data"
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
}
