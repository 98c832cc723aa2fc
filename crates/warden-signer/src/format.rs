//! The signature a signed Lambda zip carries, and the digest it covers.
//!
//! AWS does not publish the layout of Signer's signed Lambda packages, so Warden's is its
//! own, and documented: the signature travels in the zip's **archive comment** (the free
//! text after the end-of-central-directory record), so the signed zip unpacks to exactly
//! the files of the unsigned one and any zip tool (the AWS CLI's `--zip-file` included)
//! carries it unchanged. The comment is [`MAGIC`] followed by one JSON object, the
//! [`Manifest`]:
//!
//! ```text
//! WARDEN-CODE-SIGNATURE-1 {"profileVersionArn":"arn:aws:signer:…/signing-profiles/p/AbCdEf1234",
//!   "jobId":"…","signedAt":1760000000,"expiresAt":1771000000,
//!   "digest":"<hex SHA-384>","signature":"<base64 DER ECDSA P-384 signature>"}
//! ```
//!
//! `digest` is SHA-384 over the unsigned archive: every byte of the signed zip before its
//! end-of-central-directory comment length field, then that field as zero. Every local
//! header, every entry's data and the whole central directory are covered, so a changed
//! byte anywhere but in the comment changes the digest. `signature` is ECDSA P-384 with
//! SHA-384 (ASN.1 DER) by the profile version's key over [`Manifest::statement`], which
//! binds the digest to the profile version, the job and both times.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::SignerError;

/// What a Warden signature comment starts with.
pub const MAGIC: &[u8] = b"WARDEN-CODE-SIGNATURE-1 ";

/// The largest signature comment accepted (a manifest is well under 1 KiB).
pub const MAX_SIGNATURE_BYTES: usize = 4096;

/// The largest number of entries a zip may have to be signed (Lambda's extraction refuses
/// more long before).
pub const MAX_ENTRIES: usize = 100_000;

/// The end-of-central-directory record's signature.
const EOCD: [u8; 4] = *b"PK\x05\x06";
/// The record's fixed length, comment length field included.
const EOCD_LEN: usize = 22;

/// The signature of one signed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// The profile version whose key signed.
    pub profile_version_arn: String,
    /// The signing job (what `RevokeSignature` names).
    pub job_id: String,
    /// When it was signed, in seconds since the epoch.
    pub signed_at: i64,
    /// When the signature stops being valid, in seconds since the epoch.
    pub expires_at: i64,
    /// Hex SHA-384 of the unsigned archive.
    pub digest: String,
    /// Base64 of the DER ECDSA signature over [`Manifest::statement`].
    pub signature: String,
}

impl Manifest {
    /// The bytes the profile version's key signs.
    pub fn statement(
        profile_version_arn: &str,
        job_id: &str,
        signed_at: i64,
        expires_at: i64,
        digest: &str,
    ) -> Vec<u8> {
        format!(
            "warden-code-signature-1\n{profile_version_arn}\n{job_id}\n{signed_at}\n{expires_at}\n{digest}\n"
        )
        .into_bytes()
    }

    /// The signature's DER bytes.
    pub fn signature_bytes(&self) -> Result<Vec<u8>, SignerError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| SignerError::BadSignature("its `signature` is not base64".into()))
    }

    /// The comment that carries this manifest.
    pub fn to_comment(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        // INVARIANT: a struct of strings and integers always serialises.
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }
}

/// A zip split at its comment: where the end-of-central-directory record starts, and the
/// comment's bytes.
#[derive(Debug)]
pub struct Split<'a> {
    /// The archive's bytes up to the comment length field.
    pub head: &'a [u8],
    /// The archive comment.
    pub comment: &'a [u8],
}

/// Finds the end-of-central-directory record: the last `PK\x05\x06` whose comment length
/// reaches exactly to the end of the bytes.
pub fn split(zip: &[u8]) -> Result<Split<'_>, SignerError> {
    if zip.len() < EOCD_LEN {
        return Err(SignerError::MalformedZip(
            "it is too short to be a zip archive".into(),
        ));
    }
    let lowest = zip.len().saturating_sub(EOCD_LEN + u16::MAX as usize);
    let mut at = zip.len() - EOCD_LEN;
    loop {
        if zip[at..at + 4] == EOCD {
            let len = u16::from_le_bytes([zip[at + 20], zip[at + 21]]) as usize;
            if at + EOCD_LEN + len == zip.len() {
                return Ok(Split {
                    head: &zip[..at + 20],
                    comment: &zip[at + EOCD_LEN..],
                });
            }
        }
        if at == lowest {
            return Err(SignerError::MalformedZip(
                "it has no end of central directory record".into(),
            ));
        }
        at -= 1;
    }
}

/// Hex SHA-384 of the archive `head` with an empty comment.
pub fn digest_of(head: &[u8]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA384);
    ctx.update(head);
    ctx.update(&[0, 0]);
    hex::encode(ctx.finish().as_ref())
}

/// The signature a package carries: `None` if its comment is not a Warden signature (an
/// unsigned package), an error if it claims to be one and is malformed.
pub fn read_signature(zip: &[u8]) -> Result<(Option<Manifest>, String), SignerError> {
    let split = split(zip)?;
    let digest = digest_of(split.head);
    let Some(body) = split.comment.strip_prefix(MAGIC) else {
        return Ok((None, digest));
    };
    if split.comment.len() > MAX_SIGNATURE_BYTES {
        return Err(SignerError::BadSignature(format!(
            "it is {} bytes, more than {MAX_SIGNATURE_BYTES}",
            split.comment.len()
        )));
    }
    let manifest: Manifest = serde_json::from_slice(body)
        .map_err(|e| SignerError::BadSignature(format!("its manifest does not parse: {e}")))?;
    Ok((Some(manifest), digest))
}

/// Checks that `zip` may be signed and returns the digest to sign: a well-formed, non-empty
/// archive, not signed already, without a comment of its own, with no duplicate or escaping
/// entry names.
pub fn prepare(zip: &[u8]) -> Result<String, SignerError> {
    let split = split(zip)?;
    if split.comment.starts_with(MAGIC) {
        return Err(SignerError::AlreadySigned);
    }
    if !split.comment.is_empty() {
        return Err(SignerError::MalformedZip(
            "it has an archive comment, where the signature would go".into(),
        ));
    }
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| SignerError::MalformedZip(format!("it does not open: {e}")))?;
    if archive.is_empty() {
        return Err(SignerError::EmptyZip);
    }
    if archive.len() > MAX_ENTRIES {
        return Err(SignerError::MalformedZip(format!(
            "it has {} entries, more than {MAX_ENTRIES}",
            archive.len()
        )));
    }
    // The reader indexes entries by name, so duplicates collapse there: the end record's
    // own count (unless it defers to ZIP64's) must match what was read.
    let eocd = split.head.len() - 20;
    let listed = u16::from_le_bytes([split.head[eocd + 10], split.head[eocd + 11]]);
    if listed != u16::MAX && usize::from(listed) != archive.len() {
        return Err(SignerError::MalformedZip(format!(
            "its central directory lists {listed} entries but {} distinct names",
            archive.len()
        )));
    }
    let mut archive = archive;
    let mut seen = std::collections::HashSet::new();
    let mut files = 0usize;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| SignerError::MalformedZip(format!("an entry does not read: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| SignerError::MalformedZip(format!("an entry name does not read: {e}")))?
            .into_owned();
        drop(entry);
        let bad = name.starts_with('/')
            || name.contains('\\')
            || name.split('/').any(|part| part == "..")
            || name.contains('\0');
        if bad {
            return Err(SignerError::MalformedZip(format!(
                "its entry `{}` would escape the package",
                name.escape_debug()
            )));
        }
        if !seen.insert(name.trim_end_matches('/').to_owned()) {
            return Err(SignerError::MalformedZip(format!(
                "its entry `{}` appears twice",
                name.escape_debug()
            )));
        }
        if !name.ends_with('/') {
            files += 1;
        }
    }
    // The central directory's own count must agree with what was read.
    if files == 0 {
        return Err(SignerError::EmptyZip);
    }
    Ok(digest_of(split.head))
}

/// `zip` with `manifest` as its comment. `zip` must have passed [`prepare`] (its comment
/// is empty).
pub fn attach(zip: &[u8], manifest: &Manifest) -> Result<Vec<u8>, SignerError> {
    let split = split(zip)?;
    if !split.comment.is_empty() {
        return Err(SignerError::AlreadySigned);
    }
    let comment = manifest.to_comment();
    let len = u16::try_from(comment.len())
        .map_err(|_| SignerError::BadSignature("the manifest is too long".into()))?;
    let mut out = Vec::with_capacity(zip.len() + comment.len());
    out.extend_from_slice(split.head);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&comment);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    pub(crate) fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn manifest(digest: &str) -> Manifest {
        Manifest {
            profile_version_arn:
                "arn:aws:signer:us-east-1:123456789012:/signing-profiles/p/AbCdEf1234".into(),
            job_id: "job".into(),
            signed_at: 1,
            expires_at: 2,
            digest: digest.into(),
            signature: "AAAA".into(),
        }
    }

    #[test]
    fn a_signed_zip_keeps_its_digest_and_entries() {
        let zip = zip_of(&[("index.py", b"def handler(e, c): return 1\n")]);
        let digest = prepare(&zip).unwrap();
        let signed = attach(&zip, &manifest(&digest)).unwrap();
        let (read, again) = read_signature(&signed).unwrap();
        assert_eq!(read, Some(manifest(&digest)));
        assert_eq!(again, digest);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&signed)).unwrap();
        assert_eq!(archive.len(), 1);
        assert!(archive.by_name("index.py").is_ok());
        assert!(matches!(prepare(&signed), Err(SignerError::AlreadySigned)));
    }

    #[test]
    fn every_changed_byte_before_the_comment_changes_the_digest() {
        let zip = zip_of(&[("a.py", b"x = 1\n"), ("b/c.txt", b"hello")]);
        let digest = prepare(&zip).unwrap();
        let signed = attach(&zip, &manifest(&digest)).unwrap();
        let head = signed.len() - manifest(&digest).to_comment().len() - 2;
        for i in 0..head {
            let mut bent = signed.clone();
            bent[i] ^= 0x01;
            if let Ok((_, d)) = read_signature(&bent) {
                assert_ne!(d, digest, "byte {i}");
            }
        }
    }

    #[test]
    fn empty_malformed_and_hostile_zips_are_refused_for_signing() {
        assert!(matches!(prepare(b""), Err(SignerError::MalformedZip(_))));
        assert!(matches!(
            prepare(b"not a zip at all, just some text here"),
            Err(SignerError::MalformedZip(_))
        ));
        assert!(matches!(prepare(&zip_of(&[])), Err(SignerError::EmptyZip)));
        let zip = zip_of(&[("a.py", b"1")]);
        assert!(matches!(
            prepare(&zip[..zip.len() - 5]),
            Err(SignerError::MalformedZip(_))
        ));
        let e = prepare(&zip_of(&[("../evil.py", b"1")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the zip is malformed: its entry `../evil.py` would escape the package"
        );
    }

    #[test]
    fn a_huge_or_malformed_signature_is_refused() {
        let zip = zip_of(&[("a.py", b"1")]);
        let split = split(&zip).unwrap();
        let with_comment = |c: &[u8]| {
            let mut out = split.head.to_vec();
            out.extend_from_slice(&(c.len() as u16).to_le_bytes());
            out.extend_from_slice(c);
            out
        };
        let mut huge = MAGIC.to_vec();
        huge.extend(std::iter::repeat_n(b'x', 10_000));
        assert!(matches!(
            read_signature(&with_comment(&huge)),
            Err(SignerError::BadSignature(_))
        ));
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(b"{\"profileVersionArn\":1}");
        assert!(matches!(
            read_signature(&with_comment(&bad)),
            Err(SignerError::BadSignature(_))
        ));
        // Another tool's comment: an unsigned package, not refused by reading.
        assert!(matches!(
            read_signature(&with_comment(b"made by zip 3.0")),
            Ok((None, _))
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = read_signature(&bytes);
            let _ = prepare(&bytes);
        }
    }
}
