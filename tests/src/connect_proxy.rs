//! A forward proxy on loopback as enterprise networks have them: it opens
//! HTTP CONNECT tunnels, and nothing else. It records every CONNECT (the
//! target, the credentials it carried, its answer), can demand basic
//! authentication or refuse every tunnel with a status of the test's
//! choice, and routes targets by name to local addresses (as its DNS would
//! route `api.push.apple.com:443`), so that the server under test can name
//! the providers' real origins.

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
};

/// One CONNECT the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `HOST:PORT`, as asked for.
    pub target: String,
    /// The user and password of its basic authentication, if it had any.
    pub credentials: Option<(String, String)>,
    /// The status it was answered with.
    pub answer: u16,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, SocketAddr>,
    /// The only user and password accepted, when authentication is demanded.
    required: Option<(String, String)>,
    refusal: Option<u16>,
    connects: Vec<Connect>,
}

/// The proxy; it stops when dropped (open tunnels end with the test).
pub struct ConnectProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    accept: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    /// Starts on a free loopback port, open to anyone, routing targets that
    /// are socket addresses to themselves.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let arrived = Arc::new(Notify::new());
        let shared = (state.clone(), arrived.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, arrived) = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (state, arrived) = (state.clone(), arrived.clone());
                        async move { Ok::<_, Infallible>(answer(request, &state, &arrived).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            arrived,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.addr)
    }

    /// Tunnels to `target` (`HOST:PORT`) go to `to`.
    pub fn route(&self, target: &str, to: SocketAddr) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(target.to_owned(), to);
    }

    /// Demands basic authentication as `user` with `password` (407 else).
    pub fn require(&self, user: &str, password: &str) {
        self.state.lock().unwrap().required = Some((user.to_owned(), password.to_owned()));
    }

    /// Refuses every tunnel with `status` from now on, or no longer.
    pub fn refuse(&self, status: Option<u16>) {
        self.state.lock().unwrap().refusal = status;
    }

    /// Every CONNECT so far.
    pub fn connects(&self) -> Vec<Connect> {
        self.state.lock().unwrap().connects.clone()
    }

    /// The targets asked for so far, each once, sorted.
    pub fn targets(&self) -> Vec<String> {
        let mut targets: Vec<String> = self.connects().into_iter().map(|c| c.target).collect();
        targets.sort();
        targets.dedup();
        targets
    }

    /// Waits until `count` CONNECTs have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Connect> {
        loop {
            let arrived = self.arrived.notified();
            let connects = self.connects();
            if connects.len() >= count {
                return connects;
            }
            arrived.await;
        }
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The user and password of a `Basic` authorization header.
fn basic_credentials(request: &Request<Incoming>) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(http::header::PROXY_AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Answers one request: a tunnel for a CONNECT that passes, its refusal
/// otherwise.
async fn answer(
    request: Request<Incoming>,
    state: &Mutex<State>,
    arrived: &Notify,
) -> Response<Full<Bytes>> {
    let respond = |status: u16| {
        let mut response = Response::builder().status(status);
        if status == 407 {
            response = response.header("proxy-authenticate", "Basic realm=\"test proxy\"");
        }
        response.body(Full::new(Bytes::new())).unwrap()
    };
    if request.method() != Method::CONNECT {
        return respond(StatusCode::METHOD_NOT_ALLOWED.as_u16());
    }
    let target = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let credentials = basic_credentials(&request);
    let (required, refusal, routed) = {
        let state = state.lock().unwrap();
        (
            state.required.clone(),
            state.refusal,
            state.routes.get(&target).copied(),
        )
    };
    let upstream = match (&required, refusal) {
        (Some(required), _) if credentials.as_ref() != Some(required) => Err(407),
        (_, Some(status)) => Err(status),
        _ => match routed.or_else(|| target.parse().ok()) {
            Some(addr) => TcpStream::connect(addr).await.map_err(|_| 502),
            None => Err(502),
        },
    };
    let status = upstream.as_ref().map_or_else(|status| *status, |_| 200);
    state.lock().unwrap().connects.push(Connect {
        target,
        credentials,
        answer: status,
    });
    arrived.notify_waiters();
    if let Ok(mut upstream) = upstream {
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(request).await {
                let mut client = TokioIo::new(upgraded);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
    respond(status)
}
