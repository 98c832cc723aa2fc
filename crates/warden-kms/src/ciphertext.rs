//! The ciphertext blob KMS hands out, and the encryption context bound into it.
//!
//! Warden's own format (AWS does not document its own; callers treat the blob as opaque):
//!
//! ```text
//! offset  size  field
//! 0       1     format version, 1
//! 1       16    key id (the KMS key's UUID, raw)
//! 17      4     material version (big-endian): which of the key's materials sealed it
//! 21      12    AES-GCM nonce (random)
//! 33      n+16  AES-256-GCM ciphertext of n plaintext bytes, then its tag
//! ```
//!
//! The associated data is the 33-byte header followed by the canonical encoding of the
//! encryption context, so a changed header byte, a ciphertext moved onto another key or
//! material, or a different context all fail authentication. The parser is hand-written
//! (a fixed layout of four fields) and property-tested below: it never panics and accepts
//! exactly what [`Header::encode`] writes.

use std::collections::BTreeMap;

use uuid::Uuid;

/// The format version this build writes and reads.
pub const FORMAT_V1: u8 = 1;
/// Bytes before the sealed payload.
pub const HEADER_LEN: usize = 33;
/// Bytes of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Bytes of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;

/// The clear part of a ciphertext blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The key that sealed it.
    pub key_id: Uuid,
    /// Which material of that key.
    pub material: u32,
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// The header's 33 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = FORMAT_V1;
        out[1..17].copy_from_slice(self.key_id.as_bytes());
        out[17..21].copy_from_slice(&self.material.to_be_bytes());
        out[21..33].copy_from_slice(&self.nonce);
        out
    }

    /// Splits a blob into its header and sealed payload (ciphertext and tag); `None` if
    /// it is not in this format or too short to hold a tag.
    pub fn parse(blob: &[u8]) -> Option<(Header, &[u8])> {
        if blob.len() < HEADER_LEN + TAG_LEN || blob[0] != FORMAT_V1 {
            return None;
        }
        let key_id = Uuid::from_slice(&blob[1..17]).ok()?;
        let material = u32::from_be_bytes(blob[17..21].try_into().ok()?);
        let nonce: [u8; NONCE_LEN] = blob[21..33].try_into().ok()?;
        Some((
            Header {
                key_id,
                material,
                nonce,
            },
            &blob[HEADER_LEN..],
        ))
    }
}

/// An encryption context: non-secret pairs bound to a ciphertext as authenticated data.
pub type EncryptionContext = BTreeMap<String, String>;

/// The context's canonical bytes: the pair count, then each pair sorted by key, every
/// field length-prefixed (u32, big-endian), so no two contexts encode alike.
pub fn encode_context(context: &EncryptionContext) -> Vec<u8> {
    let size: usize = context.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(context.len() as u32).to_be_bytes());
    for (k, v) in context {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// The associated data of a blob: its header, then its context.
pub fn associated_data(header: &Header, context: &EncryptionContext) -> Vec<u8> {
    let mut aad = header.encode().to_vec();
    aad.extend_from_slice(&encode_context(context));
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(material: u32) -> Header {
        Header {
            key_id: Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
            material,
            nonce: [7; NONCE_LEN],
        }
    }

    #[test]
    fn a_header_round_trips_and_short_or_foreign_blobs_do_not_parse() {
        let mut blob = header(3).encode().to_vec();
        blob.extend_from_slice(&[0; TAG_LEN]);
        let (h, payload) = Header::parse(&blob).unwrap();
        assert_eq!(h, header(3));
        assert_eq!(payload.len(), TAG_LEN);
        assert!(Header::parse(&blob[..blob.len() - 1]).is_none());
        blob[0] = 2;
        assert!(Header::parse(&blob).is_none());
        assert!(Header::parse(&[]).is_none());
    }

    #[test]
    fn contexts_encode_distinctly() {
        let a: EncryptionContext = [("ab".into(), "c".into())].into();
        let b: EncryptionContext = [("a".into(), "bc".into())].into();
        assert_ne!(encode_context(&a), encode_context(&b));
        assert_ne!(
            encode_context(&a),
            encode_context(&EncryptionContext::new())
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_accepts_only_the_written_form(
            blob in proptest::collection::vec(any::<u8>(), 0..80)
        ) {
            if let Some((h, payload)) = Header::parse(&blob) {
                prop_assert_eq!(&h.encode()[..], &blob[..HEADER_LEN]);
                prop_assert_eq!(payload, &blob[HEADER_LEN..]);
                prop_assert!(payload.len() >= TAG_LEN);
            } else {
                prop_assert!(blob.len() < HEADER_LEN + TAG_LEN || blob[0] != FORMAT_V1);
            }
        }

        #[test]
        fn headers_round_trip(
            id in any::<u128>(), material in any::<u32>(), nonce in any::<[u8; NONCE_LEN]>(),
            payload in proptest::collection::vec(any::<u8>(), TAG_LEN..64)
        ) {
            let h = Header { key_id: Uuid::from_u128(id), material, nonce };
            let mut blob = h.encode().to_vec();
            blob.extend_from_slice(&payload);
            let (parsed, rest) = Header::parse(&blob).unwrap();
            prop_assert_eq!(parsed, h);
            prop_assert_eq!(rest, &payload[..]);
        }

        #[test]
        fn distinct_contexts_have_distinct_encodings(
            a in proptest::collection::btree_map("[a-c]{0,3}", "[a-c]{0,3}", 0..4),
            b in proptest::collection::btree_map("[a-c]{0,3}", "[a-c]{0,3}", 0..4),
        ) {
            prop_assert_eq!(a == b, encode_context(&a) == encode_context(&b));
        }
    }
}
