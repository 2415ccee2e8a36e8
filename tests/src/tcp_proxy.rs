//! A TCP proxy a test can cut, stall and restore, to take a database away
//! from a server (and give it back) without touching the database server
//! itself.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};

/// Forwards connections to `upstream` while open; when cut, drops every
/// forwarded connection and closes new ones at once; when stalled, keeps
/// every connection open and forwards nothing, as a network that silently
/// drops packets does.
pub struct TcpProxy {
    /// Where to connect instead of the upstream.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stalled: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

struct State {
    open: bool,
    connections: JoinSet<()>,
}

/// Forwards between `client` and `upstream` until either closes, or, once
/// `stalled` is set, holds both open and forwards nothing more.
async fn forward(mut client: TcpStream, upstream: SocketAddr, mut stalled: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let stall = async {
        // Once stalled, or with the proxy gone, hold on forever.
        let _ = stalled.wait_for(|stalled| *stalled).await;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = stall => std::future::pending().await,
    }
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
        let stalled = watch::Sender::new(false);
        let accepting = state.clone();
        let stalling = stalled.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut state = accepting.lock().unwrap();
                if !state.open {
                    continue; // dropping `client` closes it
                }
                state
                    .connections
                    .spawn(forward(client, upstream, stalling.subscribe()));
            }
        });
        Self {
            addr,
            state,
            stalled,
            accept,
        }
    }

    /// Stops forwarding on every connection, new ones included, and keeps
    /// them open: a peer waits for an answer that never comes.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Cuts every connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.open = false;
        state.connections.abort_all();
    }

    /// Forwards new connections again (after a stall, the stalled ones are
    /// closed).
    pub fn restore(&self) {
        let mut state = self.state.lock().unwrap();
        if self.stalled.send_replace(false) {
            state.connections.abort_all();
        }
        state.open = true;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.state.lock().unwrap().connections.abort_all();
    }
}
