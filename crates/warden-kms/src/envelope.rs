//! Envelope encryption inside Warden: a value is encrypted (AES-256-GCM) under a fresh
//! data key, and the data key under a KMS key, with an encryption context bound to both.
//! The environment of every function is stored this way ([`Keyring`]).
//!
//! ```text
//! offset  size  field
//! 0       4     "WENV"
//! 4       2     length w of the wrapped data key (big-endian)
//! 6       w     the data key, a KMS ciphertext blob (names its KMS key)
//! 6+w     12    nonce
//! 18+w    n+16  AES-256-GCM ciphertext of the value, then its tag
//! ```
//!
//! The associated data of the value is everything before the nonce and the encoded
//! context, so the wrapped key cannot be swapped and the value cannot move to another
//! context (another function).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine as _;
use warden_types::function::SealedEnvironment;
use zeroize::Zeroizing;

use crate::ciphertext::{encode_context, EncryptionContext};
use crate::random::fill_random;
use crate::{Kms, KmsError};

const MAGIC: &[u8; 4] = b"WENV";

/// Seals `plaintext` under a new data key of `key_ref`.
pub fn seal(
    kms: &Kms,
    key_ref: &str,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<(Vec<u8>, String), KmsError> {
    let data_key = kms.generate_data_key(key_ref, 32, context)?;
    let wrapped = &data_key.ciphertext;
    let mut out = Vec::with_capacity(6 + wrapped.len() + NONCE_LEN + plaintext.len() + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
    out.extend_from_slice(wrapped);
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce).map_err(|_| KmsError::Crypto("generating a nonce"))?;
    let mut aad = out.clone();
    aad.extend_from_slice(&encode_context(context));
    let cipher = cipher(&data_key.plaintext)?;
    let mut body = plaintext.to_vec();
    cipher
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| KmsError::Crypto("encrypting"))?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok((out, data_key.key.arn.clone()))
}

/// The KMS ciphertext of the data key inside a sealed value.
pub fn wrapped_key(sealed: &[u8]) -> Option<&[u8]> {
    let rest = sealed.strip_prefix(MAGIC.as_slice())?;
    let len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
    rest.get(2..2 + len)
}

/// Opens what [`seal`] sealed with the same context.
pub fn open(
    kms: &Kms,
    context: &EncryptionContext,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let wrapped = wrapped_key(sealed).ok_or(KmsError::InvalidCiphertext)?;
    let header_len = 6 + wrapped.len();
    let rest = &sealed[header_len..];
    if rest.len() < NONCE_LEN + 16 {
        return Err(KmsError::InvalidCiphertext);
    }
    let (data_key, _) = kms.decrypt(wrapped, context, None)?;
    let cipher = cipher(&data_key)?;
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KmsError::InvalidCiphertext)?;
    let mut aad = sealed[..header_len].to_vec();
    aad.extend_from_slice(&encode_context(context));
    let mut buf = Zeroizing::new(body.to_vec());
    let len = cipher
        .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
        .map_err(|_| KmsError::InvalidCiphertext)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn cipher(bytes: &[u8]) -> Result<LessSafeKey, KmsError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| KmsError::Crypto("building a data key"))
}

/// Why a function's environment could not be sealed or opened. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The key is disabled (Lambda's `KMSDisabledException`).
    #[error("Lambda was unable to decrypt the environment variables because the KMS key used is disabled. Please check the function's KMS key settings. KMS Exception: DisabledException. KMS Message: {0} is disabled.")]
    Disabled(String),
    /// The key is pending deletion (`KMSInvalidStateException`).
    #[error("Lambda was unable to decrypt the environment variables because the KMS key used is in an invalid state for Decrypt. Please check the function's KMS key settings. KMS Exception: KMSInvalidStateException. KMS Message: {0}")]
    InvalidState(String),
    /// The key no longer exists (`KMSNotFoundException`).
    #[error("Lambda was unable to decrypt the environment variables because the KMS key was not found. Please check the function's KMS key settings. KMS Exception: NotFoundException. KMS Message: {0}")]
    NotFound(String),
    /// The sealed environment does not open (tampered with, or moved to another function).
    #[error("the stored environment of function `{0}` does not authenticate")]
    Unreadable(String),
    /// KMS failed.
    #[error("the key service failed: {0}")]
    Internal(String),
}

impl KeyringError {
    /// Lambda's error code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            KeyringError::Disabled(_) => "KMSDisabledException",
            KeyringError::InvalidState(_) => "KMSInvalidStateException",
            KeyringError::NotFound(_) => "KMSNotFoundException",
            KeyringError::Unreadable(_) | KeyringError::Internal(_) => "KMSAccessDeniedException",
        }
    }

    fn from_kms(function: &str, e: KmsError) -> KeyringError {
        match e {
            KmsError::Disabled(arn) => KeyringError::Disabled(arn),
            KmsError::InvalidState(m) => KeyringError::InvalidState(m),
            KmsError::NotFound(m) => KeyringError::NotFound(m),
            KmsError::InvalidCiphertext | KmsError::IncorrectKey => {
                KeyringError::Unreadable(function.to_owned())
            }
            other => KeyringError::Internal(other.to_string()),
        }
    }
}

/// Seals and opens functions' environment variables.
pub trait Keyring: Send + Sync {
    /// A short description for logs and `warden doctor`.
    fn describe(&self) -> &'static str;
    /// The stored form of `variables` of function `function`, under `key` (an ARN, or the
    /// service's AWS managed key when `None`).
    fn seal(
        &self,
        function: &str,
        key: Option<&str>,
        variables: &BTreeMap<String, String>,
    ) -> Result<SealedEnvironment, KeyringError>;
    /// The variables of a sealed environment of `function`.
    fn open(
        &self,
        function: &str,
        sealed: &SealedEnvironment,
    ) -> Result<BTreeMap<String, String>, KeyringError>;
}

/// The keyring of Warden's KMS: envelope encryption under `alias/aws/lambda` or the
/// function's own key, with `{"LambdaFunctionName": NAME}` as the encryption context.
pub struct KmsKeyring {
    kms: Kms,
}

impl KmsKeyring {
    /// A keyring over `kms`.
    pub fn new(kms: Kms) -> Arc<KmsKeyring> {
        Arc::new(KmsKeyring { kms })
    }
}

/// The encryption context of a function's environment.
pub fn function_context(function: &str) -> EncryptionContext {
    [("LambdaFunctionName".to_owned(), function.to_owned())].into()
}

impl Keyring for KmsKeyring {
    fn describe(&self) -> &'static str {
        "KMS (AES-256-GCM envelope encryption under alias/aws/lambda or the function's KMSKeyArn)"
    }

    fn seal(
        &self,
        function: &str,
        key: Option<&str>,
        variables: &BTreeMap<String, String>,
    ) -> Result<SealedEnvironment, KeyringError> {
        let json = Zeroizing::new(
            serde_json::to_vec(variables)
                .map_err(|_| KeyringError::Internal("serializing variables".into()))?,
        );
        let key_ref = key.unwrap_or("alias/aws/lambda");
        let (blob, arn) = seal(&self.kms, key_ref, &function_context(function), &json)
            .map_err(|e| KeyringError::from_kms(function, e))?;
        Ok(SealedEnvironment {
            key_arn: arn,
            customer_key: key.is_some(),
            ciphertext: base64::engine::general_purpose::STANDARD.encode(blob),
        })
    }

    fn open(
        &self,
        function: &str,
        sealed: &SealedEnvironment,
    ) -> Result<BTreeMap<String, String>, KeyringError> {
        let blob = base64::engine::general_purpose::STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| KeyringError::Unreadable(function.to_owned()))?;
        let plain = open(&self.kms, &function_context(function), &blob)
            .map_err(|e| KeyringError::from_kms(function, e))?;
        serde_json::from_slice(&plain).map_err(|_| KeyringError::Unreadable(function.to_owned()))
    }
}

/// The sealer of code at rest: each package is envelope-encrypted under the AWS managed
/// key `alias/aws/lambda`, with its `CodeSha256` as the encryption context. Packages are
/// content-addressed and shared by every function and layer that uses the same bytes, so
/// they are sealed under the service's key rather than one function's.
#[derive(Clone)]
pub struct CodeSealer {
    kms: Kms,
}

impl std::fmt::Debug for CodeSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSealer(alias/aws/lambda)")
    }
}

impl CodeSealer {
    /// A sealer over `kms`.
    pub fn new(kms: Kms) -> Arc<CodeSealer> {
        Arc::new(CodeSealer { kms })
    }
}

/// The encryption context of a stored package.
pub fn code_context(sha: &str) -> EncryptionContext {
    [("aws:lambda:CodeSha256".to_owned(), sha.to_owned())].into()
}

impl warden_types::seal::BlobSealer for CodeSealer {
    fn seal(&self, sha: &str, plain: &[u8]) -> Result<Vec<u8>, warden_types::seal::SealError> {
        seal(&self.kms, "alias/aws/lambda", &code_context(sha), plain)
            .map(|(blob, _)| blob)
            .map_err(|e| warden_types::seal::SealError(e.to_string()))
    }

    fn open(&self, sha: &str, sealed: &[u8]) -> Result<Vec<u8>, warden_types::seal::SealError> {
        open(&self.kms, &code_context(sha), sealed)
            .map(|plain| plain.to_vec())
            .map_err(|e| warden_types::seal::SealError(format!("package {sha}: {e}")))
    }
}
