//! Push connections through a forward proxy. Where a network reaches the
//! internet only through an HTTP proxy, each connection to a provider (and
//! to an OAuth token endpoint) is an HTTP CONNECT tunnel through it, with
//! basic authentication when the proxy URL names a user; TLS to the origin
//! then runs inside the tunnel, its certificate checked against the
//! origin's name as on a direct connection.
//!
//! Which proxy, and which origins bypass it: `push.proxy` and
//! `push.no_proxy`, or else the `HTTPS_PROXY` and `NO_PROXY` variables,
//! matched by curl's rules as hyper-util's [`Matcher`] applies them. Plain
//! `http://` origins (loopback stand-ins, the metadata server) never go
//! through a proxy.
//!
//! The tunnel is opened here rather than by hyper-util's `Tunnel`, which
//! reports every refusal but 407 as "unsuccessful": an operator needs to
//! read the proxy's answer (403, 502) to fix it.

use super::SetupError;
use crate::error_text::with_causes;
use http::{HeaderValue, StatusCode, Uri};
use hyper_util::{
    client::{legacy::connect::HttpConnector, proxy::matcher::Matcher},
    rt::TokioIo,
};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The longest CONNECT answer read (status line and headers).
const MAX_ANSWER: usize = 8 * 1024;
/// What a proxy URL looks like, for error messages.
const EXPECTED: &str = "expected http://[USER:PASSWORD@]HOST:PORT";

/// The proxy variables of an environment (an empty one counts as unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnvironment {
    /// `HTTPS_PROXY`, else `https_proxy`: the variable's name and value.
    pub https_proxy: Option<(&'static str, String)>,
    /// `NO_PROXY`, else `no_proxy`.
    pub no_proxy: Option<String>,
}

impl ProxyEnvironment {
    /// This process's variables.
    pub fn from_process() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The variables as `var` gives them.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: [&'static str; 2]| {
            names.into_iter().find_map(|name| {
                var(name)
                    .filter(|value| !value.trim().is_empty())
                    .map(|value| (name, value))
            })
        };
        Self {
            https_proxy: first(["HTTPS_PROXY", "https_proxy"]),
            no_proxy: first(["NO_PROXY", "no_proxy"]).map(|(_, value)| value),
        }
    }
}

/// Which origins go through which proxy; by default none.
#[derive(Clone, Default)]
pub struct Proxies(Option<Arc<Rules>>);

struct Rules {
    matcher: Matcher,
    /// The proxy URL with its password hidden, and where it was set.
    shown: String,
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe().as_deref().unwrap_or("direct"))
    }
}

/// The proxy to reach one origin through.
struct Route {
    /// `http://HOST:PORT/`.
    proxy: Uri,
    /// `HOST:PORT`, as messages name the proxy.
    name: String,
    authorization: Option<HeaderValue>,
}

impl Proxies {
    /// Every origin directly.
    pub fn direct() -> Self {
        Self(None)
    }

    /// `configured` (`push.proxy`) when it is set (`""`: none), else the
    /// proxy of `environment` with its exceptions; `no_proxy`
    /// (`push.no_proxy`) are exceptions either way. A proxy URL that is not
    /// `http://[USER:PASSWORD@]HOST[:PORT]` is an error that names its
    /// setting, never its text.
    pub fn new(
        configured: Option<&str>,
        no_proxy: &[String],
        environment: &ProxyEnvironment,
    ) -> Result<Self, SetupError> {
        let mut no_proxy = no_proxy.to_vec();
        let (source, url) = match (configured, &environment.https_proxy) {
            (Some(url), _) if url.trim().is_empty() => return Ok(Self::direct()),
            (Some(url), _) => ("push.proxy", url),
            (None, Some((name, url))) => {
                no_proxy.extend(environment.no_proxy.clone());
                (*name, url.as_str())
            }
            (None, None) => return Ok(Self::direct()),
        };
        let no_proxy = no_proxy.join(",");
        let url = proxy_url(url).map_err(|why| SetupError(format!("{source}: {why}")))?;
        // The matcher applies `*` to names only; it means every origin.
        if no_proxy.split(',').any(|entry| entry.trim() == "*") {
            return Ok(Self::direct());
        }
        let matcher = Matcher::builder().https(&url).no(no_proxy).build();
        Ok(Self(Some(Arc::new(Rules {
            matcher,
            shown: format!("{} ({source})", redacted(&url)),
        }))))
    }

    /// The proxy in use, its password hidden, and where it was set.
    pub fn describe(&self) -> Option<String> {
        self.0.as_ref().map(|rules| rules.shown.clone())
    }

    /// Whether `origin` is reached through the proxy.
    pub fn proxies(&self, origin: &Uri) -> bool {
        self.route(origin).is_some()
    }

    fn route(&self, origin: &Uri) -> Option<Route> {
        let intercept = self.0.as_ref()?.matcher.intercept(origin)?;
        Some(Route {
            proxy: intercept.uri().clone(),
            name: intercept
                .uri()
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            authorization: intercept.basic_auth().cloned(),
        })
    }
}

/// `text` as a proxy URL with its scheme and port (`http://`, `:80` when
/// left out), or why not, without quoting it (it may hold a password).
fn proxy_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let text = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = url::Url::parse(&text).map_err(|_| format!("not a proxy URL; {EXPECTED}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "{}:// proxies are not supported; {EXPECTED}",
            url.scheme()
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() || url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("not a proxy URL; {EXPECTED}, without a path"));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let user = match (url.username(), url.password()) {
        ("", None) => String::new(),
        (user, None) => format!("{user}@"),
        (user, Some(password)) => format!("{user}:{password}@"),
    };
    let normalized = format!("http://{user}{host}:{port}");
    // The matcher ignores what it cannot parse, which would be no proxy.
    let probe = Uri::from_static("https://example.com");
    if Matcher::builder()
        .https(&normalized)
        .build()
        .intercept(&probe)
        .is_none()
    {
        return Err(format!("not a proxy URL; {EXPECTED}"));
    }
    Ok(normalized)
}

/// A proxy URL with its password, if any, replaced by `***`, however
/// malformed the URL.
pub fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let Some((user, _password)) = userinfo.split_once(':') else {
        return url.to_owned();
    };
    let scheme = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{scheme}{user}:***@{host}")
}

/// Connects to an origin directly, or through a CONNECT tunnel of the
/// proxy that [`Proxies`] names for it.
#[derive(Clone)]
pub struct Connector {
    tcp: HttpConnector,
    proxies: Proxies,
}

impl Connector {
    /// A connector following `proxies`.
    pub fn new(proxies: Proxies) -> Self {
        let mut tcp = HttpConnector::new();
        // https:// origins too: TLS is the next layer's.
        tcp.enforce_http(false);
        // A notification is a few small frames (HEADERS, DATA): with
        // Nagle's algorithm each waits for the provider's delayed ACK (40 ms
        // on Linux) while an earlier one is unacknowledged.
        tcp.set_nodelay(true);
        Self { tcp, proxies }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, origin: Uri) -> Self::Future {
        let Some(route) = self.proxies.route(&origin) else {
            let connecting = self.tcp.call(origin);
            return Box::pin(async move { Ok(connecting.await?) });
        };
        let connecting = self.tcp.call(route.proxy.clone());
        Box::pin(async move {
            let target = format!(
                "{}:{}",
                origin.host().unwrap_or_default(),
                origin.port_u16().unwrap_or(443)
            );
            let failed = |failure| ProxyError {
                proxy: route.name.clone(),
                target: target.clone(),
                failure,
            };
            let stream = connecting
                .await
                .map_err(|e| failed(Failure::Unreachable(with_causes(&e))))?;
            let stream = tunnel(stream.into_inner(), &target, route.authorization.as_ref())
                .await
                .map_err(failed)?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// Asks the proxy on `stream` for a tunnel to `target` (`HOST:PORT`).
async fn tunnel(
    mut stream: TcpStream,
    target: &str,
    authorization: Option<&HeaderValue>,
) -> Result<TcpStream, Failure> {
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(value) = authorization {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let io = |e: std::io::Error| Failure::Io(e.to_string());
    stream.write_all(&request).await.map_err(io)?;
    let mut answer = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await.map_err(io)?;
        if read == 0 {
            return Err(Failure::Closed);
        }
        answer.extend_from_slice(&chunk[..read]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&answer) {
            Ok(httparse::Status::Complete(length)) => {
                let code = response.code.unwrap_or_default();
                if !(200..300).contains(&code) {
                    return Err(Failure::Refused(code));
                }
                // The client speaks first in TLS: nothing may follow yet.
                if length != answer.len() {
                    return Err(Failure::NotHttp);
                }
                return Ok(stream);
            }
            Ok(httparse::Status::Partial) if answer.len() < MAX_ANSWER => {}
            _ => return Err(Failure::NotHttp),
        }
    }
}

/// Why a tunnel did not open. Its text names the proxy by host and port,
/// never by its credentials.
#[derive(Debug)]
pub struct ProxyError {
    proxy: String,
    target: String,
    failure: Failure,
}

#[derive(Debug)]
enum Failure {
    /// No connection to the proxy.
    Unreachable(String),
    /// The proxy answered the CONNECT with this status.
    Refused(u16),
    /// The proxy closed the connection without an answer.
    Closed,
    /// The answer was not HTTP (or data came before the tunnel opened).
    NotHttp,
    /// The connection to the proxy failed during the exchange.
    Io(String),
}

impl ProxyError {
    /// Whether the proxy refused for good, for our credentials (407) or by
    /// its rules (403 and the like): a set-up to fix, not worth retrying.
    /// Its gateway errors (502, 503, 504) and time-outs are for now.
    pub fn refused_for_good(&self) -> bool {
        matches!(self.failure, Failure::Refused(code)
            if (400..500).contains(&code) && code != 408 && code != 429)
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (proxy, target) = (&self.proxy, &self.target);
        match &self.failure {
            Failure::Unreachable(why) => write!(f, "proxy {proxy} unreachable: {why}"),
            Failure::Refused(code) => {
                let reason = StatusCode::from_u16(*code)
                    .ok()
                    .and_then(|status| status.canonical_reason())
                    .unwrap_or("");
                write!(
                    f,
                    "proxy {proxy} refused the tunnel to {target}: {code} {reason}"
                )?;
                if *code == 407 {
                    f.write_str(" (the proxy URL's user or password is missing or wrong)")?;
                }
                Ok(())
            }
            Failure::Closed => write!(
                f,
                "proxy {proxy} closed the connection instead of answering the CONNECT to {target}"
            ),
            Failure::NotHttp => write!(
                f,
                "proxy {proxy} answered the CONNECT to {target} with something other than HTTP"
            ),
            Failure::Io(why) => write!(f, "proxy {proxy}, CONNECT to {target}: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// The proxy's refusal for good among `error`'s causes, if there is one.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ProxyError> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(proxy) = error.downcast_ref::<ProxyError>() {
            return proxy.refused_for_good().then_some(proxy);
        }
        cause = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(vars: &[(&str, &str)]) -> ProxyEnvironment {
        ProxyEnvironment::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn proxied(proxies: &Proxies, origin: &str) -> bool {
        proxies.proxies(&origin.parse().unwrap())
    }

    #[test]
    fn the_variables_in_upper_case_come_first_and_empty_ones_are_unset() {
        let env = environment(&[
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://lower:3128"),
            ("no_proxy", "internal"),
        ]);
        assert_eq!(
            env.https_proxy,
            Some(("HTTPS_PROXY", "http://upper:3128".into()))
        );
        assert_eq!(env.no_proxy.as_deref(), Some("internal"));
        let env = environment(&[("HTTPS_PROXY", " "), ("https_proxy", "http://lower:3128")]);
        assert_eq!(
            env.https_proxy,
            Some(("https_proxy", "http://lower:3128".into()))
        );
        // HTTP_PROXY is for plain http://, which push never sends.
        assert_eq!(
            environment(&[("HTTP_PROXY", "http://p:1")]),
            environment(&[])
        );
    }

    #[test]
    fn no_proxy_names_hosts_domains_addresses_and_networks() {
        let env = environment(&[
            ("HTTPS_PROXY", "proxy.corp:3128"),
            (
                "NO_PROXY",
                "localhost, .internal,apple.com , 10.0.0.0/8,::1",
            ),
        ]);
        let proxies = Proxies::new(None, &[], &env).unwrap();
        for direct in [
            "https://localhost:8443",
            "https://push.internal",
            "https://api.push.apple.com",
            "https://apple.com",
            "https://10.1.2.3:443",
            "https://[::1]:8443",
        ] {
            assert!(!proxied(&proxies, direct), "{direct}");
        }
        for through in [
            "https://fcm.googleapis.com",
            "https://notapple.com",
            "https://127.0.0.1:8443",
            "https://internal.example.com",
        ] {
            assert!(proxied(&proxies, through), "{through}");
        }
        // Plain http:// (loopback stand-ins, the metadata server) never.
        assert!(!proxied(&proxies, "http://fcm.googleapis.com"));
        // `*`: nothing through the proxy, addresses included.
        let env = environment(&[("HTTPS_PROXY", "proxy:3128"), ("NO_PROXY", "*")]);
        let proxies = Proxies::new(None, &[], &env).unwrap();
        assert!(!proxied(&proxies, "https://fcm.googleapis.com"));
        assert!(!proxied(&proxies, "https://192.0.2.1"));
    }

    #[test]
    fn push_proxy_overrides_the_environment_and_push_no_proxy_always_applies() {
        let env = environment(&[
            ("HTTPS_PROXY", "http://env-proxy:3128"),
            ("NO_PROXY", "googleapis.com"),
        ]);
        let proxies =
            Proxies::new(Some("http://cfg-proxy:8080"), &["apple.com".into()], &env).unwrap();
        assert_eq!(
            proxies.describe().as_deref(),
            Some("http://cfg-proxy:8080 (push.proxy)")
        );
        assert!(proxied(&proxies, "https://fcm.googleapis.com"));
        assert!(!proxied(&proxies, "https://api.push.apple.com"));
        // An empty push.proxy: no proxy, whatever the environment says.
        let direct = Proxies::new(Some(""), &[], &env).unwrap();
        assert!(direct.describe().is_none());
        assert!(!proxied(&direct, "https://fcm.googleapis.com"));
        let from_env = Proxies::new(None, &[], &env).unwrap();
        assert_eq!(
            from_env.describe().as_deref(),
            Some("http://env-proxy:3128 (HTTPS_PROXY)")
        );
        // push.no_proxy adds to NO_PROXY.
        let both = Proxies::new(None, &["apple.com".into()], &env).unwrap();
        assert!(!proxied(&both, "https://api.push.apple.com"));
        assert!(!proxied(&both, "https://fcm.googleapis.com"));
        assert!(proxied(&both, "https://example.com"));
        assert!(Proxies::new(None, &[], &ProxyEnvironment::default())
            .unwrap()
            .describe()
            .is_none());
    }

    #[test]
    fn proxy_urls_are_http_with_a_default_port_and_errors_never_quote_them() {
        assert_eq!(
            proxy_url("proxy.corp:3128").unwrap(),
            "http://proxy.corp:3128"
        );
        assert_eq!(
            proxy_url("http://proxy.corp").unwrap(),
            "http://proxy.corp:80"
        );
        assert_eq!(
            proxy_url("http://me:p%40ss@[::1]:3128/").unwrap(),
            "http://me:p%40ss@[::1]:3128"
        );
        for (bad, why) in [
            ("https://proxy:3128", "https:// proxies are not supported"),
            (
                "socks5://s3cret@proxy:1080",
                "socks5:// proxies are not supported",
            ),
            ("http://me:s3cret@proxy:3128/path", "without a path"),
            ("http://me:s3cret@:3128", "not a proxy URL"),
            ("http://me:s3cret@proxy:99999", "not a proxy URL"),
        ] {
            let error = proxy_url(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
        let error =
            Proxies::new(None, &[], &environment(&[("https_proxy", "ftp://x")])).unwrap_err();
        assert!(error.0.starts_with("https_proxy: ftp://"), "{error}");
    }

    #[test]
    fn passwords_are_hidden_however_the_url_is_written() {
        for (url, shown) in [
            ("http://me:s3cret@proxy:3128", "http://me:***@proxy:3128"),
            ("me:s3cret@proxy:3128", "me:***@proxy:3128"),
            ("http://me:s3:c@ret@proxy:3128", "http://me:***@proxy:3128"),
            ("http://me@proxy:3128", "http://me@proxy:3128"),
            ("http://proxy:3128", "http://proxy:3128"),
        ] {
            assert_eq!(redacted(url), shown);
        }
        let env = environment(&[("HTTPS_PROXY", "http://me:s3cret@proxy:3128")]);
        let proxies = Proxies::new(None, &[], &env).unwrap();
        assert_eq!(
            format!("{proxies:?}"),
            "http://me:***@proxy:3128 (HTTPS_PROXY)"
        );
    }

    #[tokio::test]
    async fn the_tunnel_opens_on_2xx_and_names_any_other_answer() {
        async fn answered(answer: &'static [u8]) -> (Result<(), Failure>, String) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let proxy = tokio::spawn(async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = vec![0u8; 1024];
                let read = stream.read(&mut request).await.unwrap();
                stream.write_all(answer).await.unwrap();
                String::from_utf8_lossy(&request[..read]).into_owned()
            });
            let stream = TcpStream::connect(addr).await.unwrap();
            let auth = HeaderValue::from_static("Basic bWU6czNjcmV0");
            let result = tunnel(stream, "api.push.apple.com:443", Some(&auth)).await;
            (result.map(drop), proxy.await.unwrap())
        }
        let (opened, request) = answered(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
        assert!(opened.is_ok(), "{opened:?}");
        assert_eq!(
            request,
            "CONNECT api.push.apple.com:443 HTTP/1.1\r\nHost: api.push.apple.com:443\r\n\
             Proxy-Authorization: Basic bWU6czNjcmV0\r\n\r\n"
        );
        for (answer, code, for_good) in [
            (
                &b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"[..],
                407,
                true,
            ),
            (b"HTTP/1.0 403 Forbidden\r\n\r\n", 403, true),
            (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", 502, false),
        ] {
            let (refused, _) = answered(answer).await;
            let failure = refused.unwrap_err();
            assert!(
                matches!(failure, Failure::Refused(c) if c == code),
                "{failure:?}"
            );
            let error = ProxyError {
                proxy: "127.0.0.1:3128".into(),
                target: "api.push.apple.com:443".into(),
                failure,
            };
            assert_eq!(error.refused_for_good(), for_good);
            assert!(
                error.to_string().starts_with(&format!(
                    "proxy 127.0.0.1:3128 refused the tunnel to api.push.apple.com:443: {code} "
                )),
                "{error}"
            );
        }
        let (garbage, _) = answered(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        assert!(matches!(garbage, Err(Failure::NotHttp)), "{garbage:?}");
        let (early, _) = answered(b"HTTP/1.1 200 OK\r\n\r\nhello").await;
        assert!(matches!(early, Err(Failure::NotHttp)), "{early:?}");
    }
}
