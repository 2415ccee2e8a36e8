//! A TCP proxy a test can cut and restore, to take a database away from a
//! server (and give it back) without touching the database server itself.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

/// Forwards connections to `upstream` while open; when cut, drops every
/// forwarded connection and closes new ones at once.
pub struct TcpProxy {
    /// Where to connect instead of the upstream.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: tokio::task::JoinHandle<()>,
}

struct State {
    open: bool,
    connections: JoinSet<()>,
}

impl TcpProxy {
    /// Starts an open proxy on a free loopback port.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            open: true,
            connections: JoinSet::new(),
        }));
        let accepting = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = accepting.lock().unwrap();
                if !state.open {
                    continue; // dropping `client` closes it
                }
                state.connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// Cuts every connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.open = false;
        state.connections.abort_all();
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.state.lock().unwrap().open = true;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.state.lock().unwrap().connections.abort_all();
    }
}
