//! How the SDK reaches the server: plain `http://` (a loopback or trusted
//! network) or `https://` with the system's trust roots, a CA of the
//! organisation's own, and optionally a client certificate (portals and
//! administrators, when the server requires one).

use std::{path::Path, time::Duration};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::Error;

/// How long to wait for a connection to the server before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings. The default trusts the system's roots for
/// `https://` URLs and presents no client certificate.
///
/// ```no_run
/// # fn run() -> Result<(), mfa_sdk::Error> {
/// let options = mfa_sdk::ConnectOptions::new()
///     .ca_certificate_file("/etc/mfa/ca.pem")?
///     .client_identity_files("/etc/mfa/portal.pem", "/etc/mfa/portal.key")?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ConnectOptions {
    ca_certificate: Option<Vec<u8>>,
    client_identity: Option<(Vec<u8>, Vec<u8>)>,
    domain_name: Option<String>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("ca_certificate", &self.ca_certificate.is_some())
            .field("client_identity", &self.client_identity.is_some())
            .field("domain_name", &self.domain_name)
            .finish()
    }
}

impl ConnectOptions {
    /// The defaults: system trust roots, no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only this CA (PEM) for the server's certificate, instead of the
    /// system's roots.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificate = Some(pem.into());
        self
    }

    /// [`ca_certificate_pem`](Self::ca_certificate_pem) read from a file.
    pub fn ca_certificate_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(self.ca_certificate_pem(std::fs::read(path)?))
    }

    /// Presents this certificate chain and private key (PEM) to the server.
    pub fn client_identity_pem(
        mut self,
        certificate: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_identity = Some((certificate.into(), key.into()));
        self
    }

    /// [`client_identity_pem`](Self::client_identity_pem) read from files.
    pub fn client_identity_files(
        self,
        certificate: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        Ok(self.client_identity_pem(std::fs::read(certificate)?, std::fs::read(key)?))
    }

    /// Checks the server's certificate for this name instead of the URL's host.
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    /// The endpoint for `url`; TLS settings apply to `https://` URLs.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, Error> {
        let endpoint = Endpoint::from_shared(url.to_owned())?.connect_timeout(CONNECT_TIMEOUT);
        if endpoint.uri().scheme_str() != Some("https") {
            return Ok(endpoint);
        }
        let mut tls = ClientTlsConfig::new();
        tls = match &self.ca_certificate {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_native_roots(),
        };
        if let Some((certificate, key)) = &self.client_identity {
            tls = tls.identity(Identity::from_pem(certificate, key));
        }
        if let Some(name) = &self.domain_name {
            tls = tls.domain_name(name.clone());
        }
        Ok(endpoint.tls_config(tls)?)
    }

    /// Connects to the server at `url`, e.g. for a generated client such as
    /// [`AdminServiceClient`](crate::proto::admin_service_client::AdminServiceClient).
    pub async fn connect(&self, url: &str) -> Result<Channel, Error> {
        Ok(self.endpoint(url)?.connect().await?)
    }
}
