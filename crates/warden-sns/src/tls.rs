//! The TLS client of `https` deliveries: rustls on aws-lc-rs, TLS 1.2 and 1.3, the
//! endpoint's certificate verified against a set of trusted certificate authorities and
//! its name (DNS name or IP address) checked, as SNS checks the endpoints it delivers to.
//! An endpoint whose certificate does not verify (self-signed, expired, another name,
//! an unknown authority) gets no message: the delivery fails and is retried, then
//! dead-lettered, with the reason.
//!
//! The trusted authorities are the host's certificate store (what the operating system
//! trusts) and, when the operator names one, a PEM file of further authorities (an
//! organisation's internal CA, or the only trust there is on an air-gapped host).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::error::SnsError;

/// The most a CA file may hold; a trust bundle is a few hundred kilobytes.
pub const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Where trust comes from.
#[derive(Clone, Debug, Default)]
pub struct TrustSettings {
    /// Trust the host's certificate store.
    pub system_roots: bool,
    /// A PEM file of further trusted certificate authorities.
    pub ca_file: Option<std::path::PathBuf>,
}

/// A TLS client for deliveries; cheap to clone.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    /// How many authorities it trusts (for the start-up log and `Debug`).
    roots: usize,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("roots", &self.roots)
            .finish()
    }
}

impl TlsClient {
    /// Builds the client. The host's store is read if asked for (certificates in it that
    /// do not parse are skipped, as every TLS client does); a named CA file must exist,
    /// be at most [`MAX_CA_FILE_BYTES`] and hold at least one certificate that parses.
    pub fn new(settings: &TrustSettings) -> Result<TlsClient, SnsError> {
        let mut roots = RootCertStore::empty();
        if settings.system_roots {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "a certificate of the host's store could not be read");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "trusted the host's certificate authorities");
        }
        if let Some(path) = &settings.ca_file {
            let pem = read_ca_file(path)?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    SnsError::Tls(format!(
                        "{}: not a PEM certificate file: {e}",
                        path.display()
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(SnsError::Tls(format!(
                    "{}: holds no certificate authority that can be used",
                    path.display()
                )));
            }
        }
        Self::with_roots(roots)
    }

    /// A client trusting exactly `roots`.
    pub fn with_roots(roots: RootCertStore) -> Result<TlsClient, SnsError> {
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let count = roots.len();
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SnsError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Deliveries speak HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            roots: count,
        })
    }

    /// How many certificate authorities the client trusts.
    pub fn trusted_authorities(&self) -> usize {
        self.roots
    }

    /// Runs the TLS handshake over `stream` with the endpoint named `host` (a DNS name or
    /// an IP address, without brackets), verifying its certificate.
    pub(crate) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, String> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("`{host}` is not a name a certificate can be checked against"))?;
        self.connector
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake with {host}: {e}"))
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<u8>, SnsError> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| SnsError::Tls(format!("{}: {e}", path.display())))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| SnsError::Tls(format!("{}: {e}", path.display())))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(SnsError::Tls(format!(
            "{}: larger than {MAX_CA_FILE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_usable_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = TlsClient::new(&TrustSettings {
            system_roots: false,
            ca_file: Some(dir.path().join("absent.pem")),
        });
        assert!(matches!(missing, Err(SnsError::Tls(_))));

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = TlsClient::new(&TrustSettings {
            system_roots: false,
            ca_file: Some(empty),
        })
        .expect_err("no certificate");
        assert!(e.to_string().contains("no certificate authority"), "{e}");

        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).expect("ca");
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.pem()).expect("write");
        let client = TlsClient::new(&TrustSettings {
            system_roots: false,
            ca_file: Some(good),
        })
        .expect("a CA file");
        assert_eq!(client.trusted_authorities(), 1);
    }

    #[test]
    fn names_that_cannot_be_checked_are_refused_before_connecting() {
        assert!(ServerName::try_from("bad name".to_owned()).is_err());
        assert!(ServerName::try_from("::1".to_owned()).is_ok());
        assert!(ServerName::try_from("example.com".to_owned()).is_ok());
    }
}
