//! Message signing: an RSA-2048 key generated on first start (aws-lc-rs), kept in `sns.db`
//! (a 0600 file) with a self-signed X.509 certificate for it, and SignatureVersion 2
//! (SHA256withRSA, PKCS#1 v1.5) signatures over SNS's string to sign.
//!
//! With a shared store in PostgreSQL the key is the cluster's: it is stored only sealed by
//! the [`KeySealer`] the binary gives (its master key), the first node to start offers
//! one, and every node signs with the one stored (see [`crate::postgres`]). The
//! certificate is public and stored as it is.
//!
//! The string to sign is each field's name and value, each followed by a newline, in this
//! fixed order: for a Notification `Message`, `MessageId`, `Subject` (only when present),
//! `Timestamp`, `TopicArn`, `Type`; for a SubscriptionConfirmation or
//! UnsubscribeConfirmation `Message`, `MessageId`, `SubscribeURL`, `Timestamp`, `Token`,
//! `TopicArn`, `Type`.

use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::Engine;

use crate::error::SnsError;
use crate::model::now_ms;
use crate::store::Store;

/// Why a [`KeySealer`] could not seal or unseal. Never carries key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SealError(pub String);

/// Seals the signing key before it reaches a shared store, and opens it again; the binary
/// implements it with its master key. `unseal` must fail for bytes this sealer did not
/// seal (an authenticated cipher), so that a node with another master key refuses the
/// stored key rather than signing with garbage, and so that a rotation can tell whether
/// the stored key is sealed under the new sealer already.
pub trait KeySealer: Send + Sync + 'static {
    /// The stored form of `plain` (the PKCS#8 private key).
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, SealError>;
    /// The key `sealed` holds; fails if this sealer did not seal it or it was changed.
    fn unseal(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError>;
}

/// How long the generated certificate is valid.
pub const CERTIFICATE_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The fields a signature covers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Signed<'a> {
    /// A Notification.
    Notification {
        message: &'a str,
        message_id: &'a str,
        subject: Option<&'a str>,
        timestamp: &'a str,
        topic_arn: &'a str,
    },
    /// A SubscriptionConfirmation or UnsubscribeConfirmation (`kind` is its `Type`).
    Confirmation {
        kind: &'a str,
        message: &'a str,
        message_id: &'a str,
        subscribe_url: &'a str,
        timestamp: &'a str,
        token: &'a str,
        topic_arn: &'a str,
    },
}

impl Signed<'_> {
    /// SNS's string to sign for these fields.
    pub(crate) fn string_to_sign(&self) -> String {
        let mut out = String::new();
        let mut field = |name: &str, value: &str| {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        match *self {
            Signed::Notification {
                message,
                message_id,
                subject,
                timestamp,
                topic_arn,
            } => {
                field("Message", message);
                field("MessageId", message_id);
                if let Some(s) = subject {
                    field("Subject", s);
                }
                field("Timestamp", timestamp);
                field("TopicArn", topic_arn);
                field("Type", "Notification");
            }
            Signed::Confirmation {
                kind,
                message,
                message_id,
                subscribe_url,
                timestamp,
                token,
                topic_arn,
            } => {
                field("Message", message);
                field("MessageId", message_id);
                field("SubscribeURL", subscribe_url);
                field("Timestamp", timestamp);
                field("Token", token);
                field("TopicArn", topic_arn);
                field("Type", kind);
            }
        }
        out
    }
}

/// The signing key and its certificate.
pub(crate) struct Signer {
    key: RsaKeyPair,
    cert_pem: String,
    cert_file: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

fn signing(what: &str) -> impl FnOnce(aws_lc_rs::error::Unspecified) -> SnsError + '_ {
    move |_| SnsError::Signing(what.to_owned())
}

impl Signer {
    /// Loads the stored key and certificate, generating and storing them on first start.
    pub(crate) fn load_or_create(store: &Store) -> Result<Signer, SnsError> {
        if let Some((pkcs8, der)) = store.signing_key()? {
            return Signer::from_parts(&pkcs8, &der);
        }
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(signing("generating the RSA-2048 key failed"))?;
        let pkcs8: Pkcs8V1Der<'static> = key
            .as_der()
            .map_err(signing("encoding the key as PKCS#8 failed"))?;
        let der = self_signed_certificate(pkcs8.as_ref())?;
        // Another process may have stored a key first: the stored one wins.
        let (pkcs8, der) = store.put_signing_key(pkcs8.as_ref(), &der, now_ms())?;
        Signer::from_parts(&pkcs8, &der)
    }

    fn from_parts(pkcs8: &[u8], cert_der: &[u8]) -> Result<Signer, SnsError> {
        let key = RsaKeyPair::from_pkcs8(pkcs8)
            .map_err(|_| SnsError::Signing("the stored key does not parse".to_owned()))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert_der);
        let cert_file = format!(
            "SimpleNotificationService-{}.pem",
            hex::encode(&digest.as_ref()[..16])
        );
        Ok(Signer {
            key,
            cert_pem: pem_certificate(cert_der),
            cert_file,
        })
    }

    /// The certificate, PEM-encoded.
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate's file name (the last segment of `SigningCertURL`).
    pub(crate) fn cert_file(&self) -> &str {
        &self.cert_file
    }

    /// The public key, as a PKCS#1 `RSAPublicKey` (DER).
    #[cfg(test)]
    pub(crate) fn public_key(&self) -> &[u8] {
        use aws_lc_rs::signature::KeyPair as _;
        self.key.public_key().as_ref()
    }

    /// The base64 SHA256withRSA signature of `fields`' string to sign.
    pub(crate) fn sign(&self, fields: &Signed<'_>) -> Result<String, SnsError> {
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                fields.string_to_sign().as_bytes(),
                &mut signature,
            )
            .map_err(signing("signing a message failed"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature))
    }
}

/// A self-signed certificate for the PKCS#8 RSA key, DER-encoded.
fn self_signed_certificate(pkcs8: &[u8]) -> Result<Vec<u8>, SnsError> {
    let fail = |what: &str| {
        let what = what.to_owned();
        move |e: rcgen::Error| SnsError::Signing(format!("{what}: {e}"))
    };
    let key =
        rcgen::KeyPair::try_from(pkcs8).map_err(fail("loading the key for the certificate"))?;
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, "Warden");
    name.push(rcgen::DnType::CommonName, "Warden SNS message signing");
    params.distinguished_name = name;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + CERTIFICATE_VALIDITY;
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(signing("the random generator failed"))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params
        .self_signed(&key)
        .map_err(fail("creating the certificate"))?;
    Ok(cert.der().to_vec())
}

/// PEM encoding of a DER certificate.
fn pem_certificate(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
