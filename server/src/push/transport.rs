//! One HTTP/2 client per provider origin: TLS through rustls with the trust
//! roots we are told (a CA file, or the system's), one long-lived connection
//! multiplexing every request, and a timeout on each exchange. The one
//! exception is Google's metadata server, which speaks plain HTTP/1.1 on a
//! link-local address ([`Transport::metadata_server`]).
//!
//! A middlebox or NAT that forgets a connection without a reset leaves it
//! open on our side, and every request on it would wait for its timeout
//! until the kernel gives up on the socket (about 15 minutes on Linux). So
//! the connection is PINGed (HTTP/2 PING, while idle and while busy) and
//! closed when a PING goes unanswered, and a request that times out drops
//! the connection it used: the next attempt opens a fresh one.
//!
//! Behind a forward proxy ([`super::proxy`]) each connection is a CONNECT
//! tunnel, and all of the above runs inside it unchanged.

use super::{
    proxy::{self, Connector, Proxies},
    SetupError,
};
use crate::error_text::with_causes;
use bytes::Bytes;
use http::{header::HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::Client,
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
    /// The way to the origin is closed for good: a proxy refused the tunnel
    /// for our credentials or by its rules. A set-up to fix, not worth
    /// retrying.
    Refused(String),
}

/// The addresses of Google's metadata server (its name, and its IPv4 and
/// IPv6 link-local addresses), the only hosts besides loopback that are
/// reached over plain `http://`.
const METADATA_SERVER_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "169.254.169.254",
    "fd20:ce::254",
];

/// How to reach an origin: the way (directly or through a proxy), how long
/// to wait, and how to tell that a connection died silently.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Longest wait for one exchange (connecting included).
    pub timeout: Duration,
    /// How often an HTTP/2 PING checks the connection; `None`: never.
    pub keepalive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Which origins are reached through which forward proxy.
    pub proxies: Proxies,
}

/// The certificate authorities an origin's certificate must chain to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust<'a> {
    /// The system's.
    System,
    /// Only those in this PEM file.
    Only(&'a Path),
    /// The system's, and those in this PEM file.
    SystemAnd(&'a Path),
}

impl<'a> Trust<'a> {
    /// Those in `ca_file` when given, else the system's.
    pub fn file_or_system(ca_file: Option<&'a Path>) -> Self {
        ca_file.map_or(Self::System, Self::Only)
    }

    fn roots(self) -> Result<rustls::RootCertStore, SetupError> {
        match self {
            Self::System => system_roots(),
            Self::Only(path) => roots_from_file(path),
            Self::SystemAnd(path) => {
                let mut roots = roots_from_file(path)?;
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                Ok(roots)
            }
        }
    }
}

type HyperClient = Client<HttpsConnector<Connector>, Full<Bytes>>;

/// An HTTP/2 client bound to one origin (HTTP/1.1 for the metadata server).
#[derive(Clone)]
pub struct Transport {
    /// The client in use, and how many it replaced: a timed-out exchange
    /// replaces the client (and so its pooled connection) it ran on, once.
    client: Arc<RwLock<(HyperClient, u64)>>,
    connector: HttpsConnector<Connector>,
    /// HTTP/2 only (the providers), or HTTP/1.1 (the metadata server).
    http2: bool,
    origin: String,
    connection: Connection,
}

impl Transport {
    /// A client for `origin` (`https://host[:port]`, or `http://` on a
    /// loopback address), trusting the certificates in `ca_file` when given
    /// (else the system's).
    pub fn new(
        origin: &str,
        ca_file: Option<&Path>,
        connection: Connection,
    ) -> Result<Self, SetupError> {
        Self::trusting(origin, Trust::file_or_system(ca_file), connection)
    }

    /// A client for `origin` (as for [`Transport::new`]) that trusts `trust`.
    pub fn trusting(
        origin: &str,
        trust: Trust<'_>,
        connection: Connection,
    ) -> Result<Self, SetupError> {
        let origin = checked_origin(origin)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(trust.roots()?)?)
            .https_or_http()
            .enable_http2()
            .wrap_connector(Connector::new(connection.proxies.clone()));
        Ok(Self::with(connector, true, origin, connection))
    }

    fn with(
        connector: HttpsConnector<Connector>,
        http2: bool,
        origin: String,
        connection: Connection,
    ) -> Self {
        Self {
            client: Arc::new(RwLock::new((client(&connector, http2, &connection), 0))),
            connector,
            http2,
            origin,
            connection,
        }
    }

    /// A client for Google's metadata server at `origin`: plain HTTP/1.1,
    /// as the metadata server speaks it. Plain `http://` is accepted here
    /// beyond loopback, but only for the metadata server's own addresses:
    /// it is reachable only from inside the machine or pod (link-local),
    /// offers no TLS at these addresses, and every Google client library
    /// talks to it so. Anywhere else a token over plain HTTP could be read
    /// on the way. It is reached directly, never through a proxy (which
    /// could not reach it, and the tokens it hands out are not to cross one).
    pub fn metadata_server(origin: &str, timeout: Duration) -> Result<Self, SetupError> {
        let origin = checked_metadata_origin(origin)?;
        // Never used (the origin is http://), but the connector wants one.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(rustls::RootCertStore::empty())?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(Connector::new(Proxies::direct()));
        // A local server on a fresh HTTP/1.1 connection: no PINGs.
        let connection = Connection {
            timeout,
            keepalive_interval: None,
            keepalive_timeout: timeout,
            proxies: Proxies::direct(),
        };
        Ok(Self::with(connector, false, origin, connection))
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
                .map_err(|e| match proxy::refusal(&e) {
                    Some(refusal) => TransportError::Refused(refusal.to_string()),
                    None => TransportError::Failed(with_causes(&e)),
                })?;
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
            *current = (
                client(&self.connector, self.http2, &self.connection),
                generation + 1,
            );
        }
    }

    /// `request`, made for another origin (by an OAuth library), bound to
    /// this one instead: its scheme and authority replaced, its path, query,
    /// headers and body kept.
    pub fn retarget(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, TransportError> {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = self.uri(path)?;
        Ok(Request::from_parts(parts, Full::new(Bytes::from(body))))
    }

    /// A GET of `path` on this origin.
    pub fn get(&self, path: &str) -> Result<http::request::Builder, TransportError> {
        Ok(Request::get(self.uri(path)?))
    }

    /// `path` (with any query) on this origin.
    fn uri(&self, path: &str) -> Result<Uri, TransportError> {
        format!("{}{path}", self.origin)
            .parse()
            .map_err(|e: http::uri::InvalidUri| TransportError::Failed(e.to_string()))
    }

    /// A POST to `path` on this origin with a body of `content_type`, and
    /// this `authorization` header when given.
    pub fn post(
        &self,
        path: &str,
        authorization: Option<&str>,
        content_type: &str,
    ) -> Result<http::request::Builder, TransportError> {
        let request =
            Request::post(self.uri(path)?).header(http::header::CONTENT_TYPE, content_type);
        Ok(match authorization {
            Some(value) => request.header(http::header::AUTHORIZATION, value),
            None => request,
        })
    }
}

/// A pooled client (HTTP/2 only, PINGing its connection when asked to; or
/// HTTP/1.1).
fn client(
    connector: &HttpsConnector<Connector>,
    http2: bool,
    connection: &Connection,
) -> HyperClient {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(Duration::from_secs(600));
    if http2 {
        builder.http2_only(true);
        if let Some(interval) = connection.keepalive_interval {
            builder
                .timer(TokioTimer::new())
                .http2_keep_alive_interval(interval)
                .http2_keep_alive_timeout(connection.keepalive_timeout)
                .http2_keep_alive_while_idle(true);
        }
    }
    builder.build(connector.clone())
}

/// Accepts `https://` origins, and `http://` only on a loopback address.
pub fn checked_origin(origin: &str) -> Result<String, SetupError> {
    let uri: Uri = origin
        .parse()
        .map_err(|e| SetupError(format!("push origin {origin:?}: {e}")))?;
    let loopback = is_loopback(&uri);
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
    if uri.host().unwrap_or_default().is_empty()
        || uri.path_and_query().is_some_and(|p| p.as_str() != "/")
    {
        return Err(SetupError(format!(
            "push origin {origin:?}: expected https://HOST[:PORT] without a path"
        )));
    }
    Ok(origin.trim_end_matches('/').to_owned())
}

/// Accepts `http://` origins on the metadata server's addresses or on a
/// loopback address (a stand-in), without a path.
pub fn checked_metadata_origin(origin: &str) -> Result<String, SetupError> {
    let refused = || {
        SetupError(format!(
            "metadata server origin {origin:?}: expected http://metadata.google.internal, \
             http://169.254.169.254 or http:// on a loopback address, without a path"
        ))
    };
    let uri: Uri = origin.parse().map_err(|_| refused())?;
    let host = uri.host().unwrap_or_default();
    let metadata = METADATA_SERVER_HOSTS.contains(&host.trim_matches(|c| c == '[' || c == ']'));
    if uri.scheme_str() != Some("http")
        || !(metadata || is_loopback(&uri))
        || uri.path_and_query().is_some_and(|p| p.as_str() != "/")
    {
        return Err(refused());
    }
    Ok(origin.trim_end_matches('/').to_owned())
}

/// Whether `uri`'s host is `localhost` or a loopback address.
fn is_loopback(uri: &Uri) -> bool {
    let host = uri.host().unwrap_or_default();
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// rustls with ring, trusting `roots`.
pub(crate) fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, SetupError> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SetupError(format!("TLS set-up: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth())
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

pub(crate) fn system_roots() -> Result<rustls::RootCertStore, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
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
        // The metadata server's addresses are for the metadata server only.
        assert!(checked_origin("http://metadata.google.internal").is_err());
        assert!(checked_origin("http://169.254.169.254").is_err());
    }

    #[test]
    fn the_metadata_server_is_plain_http_on_its_own_addresses_or_loopback() {
        for origin in [
            "http://metadata.google.internal",
            "http://metadata.google.internal/",
            "http://169.254.169.254",
            "http://[fd20:ce::254]",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
        ] {
            assert!(checked_metadata_origin(origin).is_ok(), "{origin}");
        }
        for origin in [
            "https://metadata.google.internal",
            "http://metadata.example.com",
            "http://169.254.169.253",
            "http://10.0.0.1",
            "http://metadata.google.internal/computeMetadata/v1",
            "metadata.google.internal",
        ] {
            let error = checked_metadata_origin(origin).unwrap_err();
            assert!(error.0.contains("metadata.google.internal"), "{error}");
        }
    }

    #[tokio::test]
    async fn a_retargeted_request_keeps_all_but_the_origin() {
        let transport =
            Transport::metadata_server("http://127.0.0.1:9", Duration::from_secs(1)).unwrap();
        let request = Request::post("https://oauth2.googleapis.com/token?a=b%20c")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"grant_type=refresh_token".to_vec())
            .unwrap();
        let request = transport.retarget(request).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), "http://127.0.0.1:9/token?a=b%20c");
        assert_eq!(
            request.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        let body = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "grant_type=refresh_token");
    }
}
