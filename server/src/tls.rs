//! Transport security of the gRPC and HTTP/JSON listeners: TLS with rustls, optional client
//! certificates for portal and admin callers, and the rule that plaintext is
//! served only on a loopback address unless the operator forces it.

use crate::telemetry::metrics;
use mfa_proto::status::Reason;
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};
use tonic::{
    service::Interceptor,
    transport::{Certificate, Identity, ServerTlsConfig},
    Request, Status,
};

/// A client that has not finished its TLS handshake by then is dropped, so
/// that idle connections cannot pile up before they are even authenticated.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `[tls]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM), leaf first. Setting it (with
    /// `key_file`) turns TLS on.
    pub cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// CA (PEM) that signs portal and admin client certificates. When set,
    /// the handshake asks for a client certificate and verifies any that is
    /// presented; phones present none and authenticate with their device key.
    pub client_ca_file: Option<PathBuf>,
    /// Refuse portal and admin calls that came without a client certificate
    /// signed by `client_ca_file` (UNAUTHENTICATED), on top of the API key.
    pub require_client_cert: bool,
    /// Serve plaintext on a non-loopback address (only behind a proxy that
    /// terminates TLS on the same host or a trusted network).
    pub allow_plaintext: bool,
}

/// Settings that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("tls: {0}")]
pub struct TlsError(String);

impl TlsConfig {
    /// Whether the listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }

    /// Checks the settings against the listen address and reads the files:
    /// the gRPC listener's TLS configuration, or `None` for plaintext.
    pub fn server_config(&self, listen: SocketAddr) -> Result<Option<ServerTlsConfig>, TlsError> {
        let Some(files) = self.read(listen, "gRPC")? else {
            return Ok(None);
        };
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(files.cert, files.key))
            .timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca) = files.client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(true);
        }
        Ok(Some(config))
    }

    /// The same settings for the HTTP/JSON listener at `listen`: its rustls
    /// configuration (HTTP/1.1), or `None` for plaintext.
    pub fn http_server_config(
        &self,
        listen: SocketAddr,
    ) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        let Some(files) = self.read(listen, "HTTP/JSON")? else {
            return Ok(None);
        };
        let mut config = rustls_server(&files, files.client_ca.as_deref(), "HTTP listener")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }

    /// The same certificate for a browser-facing listener (the OpenID
    /// provider's, named `what`), with the same rule for plaintext; no
    /// client certificates are asked for. `None` for plaintext.
    pub fn rustls_config(
        &self,
        listen: SocketAddr,
        what: &str,
    ) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        let Some(files) = self.read(listen, what)? else {
            return Ok(None);
        };
        let mut config = rustls_server(&files, None, what)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }

    /// Checks the settings against the address of a listener serving
    /// `what` and reads the files; `None` for plaintext.
    fn read(&self, listen: SocketAddr, what: &str) -> Result<Option<TlsFiles>, TlsError> {
        let (cert_file, key_file) = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => {
                if self.client_ca_file.is_some() || self.require_client_cert {
                    return Err(TlsError(
                        "client certificates need TLS: set cert_file and key_file".into(),
                    ));
                }
                if !listen.ip().is_loopback() && !self.allow_plaintext {
                    return Err(TlsError(format!(
                        "refusing to serve plaintext {what} on the non-loopback address {listen}: \
                         set [tls] cert_file and key_file, or tls.allow_plaintext = true if a \
                         proxy in front terminates TLS"
                    )));
                }
                return Ok(None);
            }
            _ => {
                return Err(TlsError(
                    "cert_file and key_file must be set together".into(),
                ))
            }
        };
        let cert = read_certificates("cert_file", cert_file)?;
        let key = std::fs::read(key_file).map_err(|e| file_error("key_file", key_file, e))?;
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
            TlsError(format!(
                "key_file {}: no usable private key: {e}",
                key_file.display()
            ))
        })?;
        let client_ca = match (&self.client_ca_file, self.require_client_cert) {
            (Some(ca_file), _) => Some(read_certificates("client_ca_file", ca_file)?),
            (None, true) => return Err(TlsError(
                "require_client_cert needs client_ca_file, the CA that signs client certificates"
                    .into(),
            )),
            (None, false) => None,
        };
        Ok(Some(TlsFiles {
            cert,
            key,
            client_ca,
        }))
    }

    /// The check in front of the portal and admin services.
    pub fn client_cert_policy(&self) -> ClientCertPolicy {
        ClientCertPolicy {
            required: self.require_client_cert,
        }
    }
}

/// The PEM files of a TLS listener, read and checked.
struct TlsFiles {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// A rustls server configuration with the certificate of `files`, asking
/// for (and checking, but not requiring) client certificates signed by
/// `client_ca` when given; errors name `what` is served.
fn rustls_server(
    files: &TlsFiles,
    client_ca: Option<&[u8]>,
    what: &str,
) -> Result<rustls::ServerConfig, TlsError> {
    let bad = |e: &dyn std::fmt::Display| TlsError(format!("{what}: {e}"));
    let certs = CertificateDer::pem_slice_iter(&files.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|e| bad(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| bad(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(certs, key).map_err(|e| bad(&e))
}

/// Reads a PEM file that must hold at least one certificate.
fn read_certificates(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| file_error(key, path, e))?;
    let count = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{key} {}: {e}", path.display())))?
        .len();
    if count == 0 {
        return Err(TlsError(format!(
            "{key} {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(pem)
}

fn file_error(key: &str, path: &Path, error: std::io::Error) -> TlsError {
    TlsError(format!("{key} {}: {error}", path.display()))
}

/// Refuses calls without a verified client certificate when one is
/// required. The handshake has already verified any certificate presented
/// against the client CA, so its presence is the proof.
#[derive(Debug, Clone, Copy)]
pub struct ClientCertPolicy {
    required: bool,
}

impl ClientCertPolicy {
    /// Refuses a portal or admin call that came without a verified client
    /// certificate when one is required; `presented` says whether it came
    /// with one (on the gRPC listener and the HTTP/JSON one alike).
    pub fn check(&self, presented: bool) -> Result<(), crate::domain::Error> {
        if self.required && !presented {
            metrics::auth_failure("client_certificate");
            tracing::warn!("authentication failed: no client certificate");
            return Err(crate::domain::Error::refused(
                Reason::ClientCertificateRequired,
                "this service requires a TLS client certificate signed by the server's client CA",
            ));
        }
        Ok(())
    }
}

impl Interceptor for ClientCertPolicy {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request.peer_certs().is_some_and(|certs| !certs.is_empty()))?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:50051".parse().unwrap()
    }

    #[test]
    fn plaintext_is_for_loopback_unless_forced() {
        let public: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let plain = TlsConfig::default();
        assert!(plain.server_config(loopback()).unwrap().is_none());
        let error = plain.server_config(public).unwrap_err().to_string();
        assert!(error.contains("non-loopback"), "{error}");
        // The HTTP/JSON listener follows the same rule.
        assert!(plain.http_server_config(loopback()).unwrap().is_none());
        assert!(plain.http_server_config(public).is_err());
        let forced = TlsConfig {
            allow_plaintext: true,
            ..TlsConfig::default()
        };
        assert!(forced.server_config(public).unwrap().is_none());
        assert!(forced.http_server_config(public).unwrap().is_none());
    }

    #[test]
    fn incomplete_settings_are_errors() {
        let half = TlsConfig {
            cert_file: Some("server.pem".into()),
            ..TlsConfig::default()
        };
        assert!(half.server_config(loopback()).is_err());
        let ca_without_tls = TlsConfig {
            client_ca_file: Some("ca.pem".into()),
            ..TlsConfig::default()
        };
        assert!(ca_without_tls.server_config(loopback()).is_err());
    }

    #[test]
    fn missing_or_empty_files_name_the_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let missing = TlsConfig {
            cert_file: Some(dir.path().join("missing.pem")),
            key_file: Some(empty.clone()),
            ..TlsConfig::default()
        };
        let error = missing.server_config(loopback()).unwrap_err().to_string();
        assert!(
            error.contains("cert_file") && error.contains("missing.pem"),
            "{error}"
        );
        let not_pem = TlsConfig {
            cert_file: Some(empty.clone()),
            key_file: Some(empty),
            ..TlsConfig::default()
        };
        let error = not_pem.server_config(loopback()).unwrap_err().to_string();
        assert!(error.contains("no PEM certificate"), "{error}");
    }
}
