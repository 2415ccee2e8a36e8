//! One HTTP/2 client per provider origin: TLS through rustls with the trust
//! roots we are told (a CA file, or the system's), one long-lived connection
//! multiplexing every request, and a timeout on each exchange.
//!
//! A middlebox or NAT that forgets a connection without a reset leaves it
//! open on our side, and every request on it would wait for its timeout
//! until the kernel gives up on the socket (about 15 minutes on Linux). So
//! the connection is PINGed (HTTP/2 PING, while idle and while busy) and
//! closed when a PING goes unanswered, and a request that times out drops
//! the connection it used: the next attempt opens a fresh one.

use super::SetupError;
use crate::error_text::with_causes;
use bytes::Bytes;
use http::{header::HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use std::{
    path::Path,
    sync::{Arc, RwLock},
    time::Duration,
};

/// Provider answers larger than this are cut off (they are small JSON).
const MAX_REPLY: usize = 64 * 1024;

/// A provider's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No answer within the configured time.
    Timeout,
    /// The connection or the exchange failed.
    Failed(String),
}

/// How long to wait, and how to tell that a connection died silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// Longest wait for one exchange (connecting included).
    pub timeout: Duration,
    /// How often an HTTP/2 PING checks the connection; `None`: never.
    pub keepalive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
}

type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP/2 client bound to one origin.
#[derive(Clone)]
pub struct Transport {
    /// The client in use, and how many it replaced: a timed-out exchange
    /// replaces the client (and so its pooled connection) it ran on, once.
    client: Arc<RwLock<(HyperClient, u64)>>,
    connector: HttpsConnector<HttpConnector>,
    origin: String,
    connection: Connection,
}

impl Transport {
    /// A client for `origin` (`https://host[:port]`, or `http://` on a
    /// loopback address), trusting the certificates in `ca_file` when given.
    pub fn new(
        origin: &str,
        ca_file: Option<&Path>,
        connection: Connection,
    ) -> Result<Self, SetupError> {
        let origin = checked_origin(origin)?;
        let roots = match ca_file {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http2()
            .build();
        Ok(Self {
            client: Arc::new(RwLock::new((client(&connector, connection), 0))),
            connector,
            origin,
            connection,
        })
    }

    /// The origin requests go to, without a trailing slash.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Sends `request` (its URI a path on this origin) and reads the answer.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, TransportError> {
        let (client, generation) = self.current();
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| TransportError::Failed(with_causes(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_REPLY)
                .collect()
                .await
                .map_err(|e| TransportError::Failed(e.to_string()))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let reply = tokio::time::timeout(self.connection.timeout, exchange)
            .await
            .unwrap_or(Err(TransportError::Timeout));
        if reply.as_ref().is_err_and(|e| *e == TransportError::Timeout) {
            self.replace(generation);
        }
        reply
    }

    fn current(&self) -> (HyperClient, u64) {
        self.client
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Drops the client of `generation` (unless another timeout did), and
    /// with it its connection once the exchanges still on it end.
    fn replace(&self, generation: u64) {
        let mut current = self
            .client
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.1 == generation {
            tracing::warn!(origin = %self.origin, "push request timed out; opening a new connection");
            *current = (client(&self.connector, self.connection), generation + 1);
        }
    }

    /// A POST to `path` on this origin with a body of `content_type`, and
    /// this `authorization` header when given.
    pub fn post(
        &self,
        path: &str,
        authorization: Option<&str>,
        content_type: &str,
    ) -> Result<http::request::Builder, TransportError> {
        let uri: Uri = format!("{}{path}", self.origin)
            .parse()
            .map_err(|e: http::uri::InvalidUri| TransportError::Failed(e.to_string()))?;
        let request = Request::post(uri).header(http::header::CONTENT_TYPE, content_type);
        Ok(match authorization {
            Some(value) => request.header(http::header::AUTHORIZATION, value),
            None => request,
        })
    }
}

/// A pooled HTTP/2 client, PINGing its connection when asked to.
fn client(connector: &HttpsConnector<HttpConnector>, connection: Connection) -> HyperClient {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .http2_only(true)
        .pool_idle_timeout(Duration::from_secs(600));
    if let Some(interval) = connection.keepalive_interval {
        builder
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(interval)
            .http2_keep_alive_timeout(connection.keepalive_timeout)
            .http2_keep_alive_while_idle(true);
    }
    builder.build(connector.clone())
}

/// Accepts `https://` origins, and `http://` only on a loopback address.
pub fn checked_origin(origin: &str) -> Result<String, SetupError> {
    let uri: Uri = origin
        .parse()
        .map_err(|e| SetupError(format!("push origin {origin:?}: {e}")))?;
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        Some("http") => {
            return Err(SetupError(format!(
                "push origin {origin:?}: plain http:// is accepted only on a loopback address"
            )))
        }
        _ => {
            return Err(SetupError(format!(
                "push origin {origin:?}: expected https://HOST[:PORT]"
            )))
        }
    }
    if host.is_empty() || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(SetupError(format!(
            "push origin {origin:?}: expected https://HOST[:PORT] without a path"
        )));
    }
    Ok(origin.trim_end_matches('/').to_owned())
}

fn roots_from_file(path: &Path) -> Result<rustls::RootCertStore, SetupError> {
    let error = |why: String| SetupError(format!("CA file {}: {why}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| error(e.to_string()))? {
        roots
            .add(cert.map_err(|e| error(e.to_string()))?)
            .map_err(|e| error(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(error("no certificate in it".into()));
    }
    Ok(roots)
}

fn system_roots() -> Result<rustls::RootCertStore, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(SetupError(
            "no system CA certificates found; install ca-certificates or set ca_file".into(),
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_https_or_loopback_http() {
        assert!(checked_origin("https://api.push.apple.com").is_ok());
        assert!(checked_origin("https://api.push.apple.com/").is_ok());
        assert!(checked_origin("http://127.0.0.1:8443").is_ok());
        assert!(checked_origin("http://[::1]:8443").is_ok());
        assert!(checked_origin("http://localhost:1").is_ok());
        let plain = checked_origin("http://push.example.com").unwrap_err();
        assert!(plain.0.contains("loopback"), "{plain}");
        assert!(checked_origin("ftp://x").is_err());
        assert!(checked_origin("https://x/with/path").is_err());
    }
}
