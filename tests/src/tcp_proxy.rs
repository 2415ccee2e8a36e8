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
    /// How many stalls there have been: a connection stalls once this
    /// passes the count it was forwarded under.
    stalls: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

struct State {
    open: bool,
    /// New connections are stalled from the start.
    stalling_new: bool,
    /// Some connections are stalled (until [`TcpProxy::restore`]).
    stalled_any: bool,
    connections: JoinSet<()>,
}

/// Forwards between `client` and `upstream` until either closes, or, once
/// `stalls` passes `forwarded_at`, holds both open and forwards nothing more.
async fn forward(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut stalls: watch::Receiver<u64>,
    forwarded_at: u64,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let stall = async {
        // Once stalled, or with the proxy gone, hold on forever.
        let _ = stalls.wait_for(|stalls| *stalls > forwarded_at).await;
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
            stalling_new: false,
            stalled_any: false,
            connections: JoinSet::new(),
        }));
        let stalls = watch::Sender::new(0);
        let accepting = state.clone();
        let counting = stalls.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut state = accepting.lock().unwrap();
                if !state.open {
                    continue; // dropping `client` closes it
                }
                let now = *counting.borrow();
                // Forwarded under an earlier count, a new connection stalls
                // at once.
                let forwarded_at = if state.stalling_new { now - 1 } else { now };
                state.connections.spawn(forward(
                    client,
                    upstream,
                    counting.subscribe(),
                    forwarded_at,
                ));
            }
        });
        Self {
            addr,
            state,
            stalls,
            accept,
        }
    }

    /// Stops forwarding on every connection, new ones included, and keeps
    /// them open: a peer waits for an answer that never comes.
    pub fn stall(&self) {
        let mut state = self.state.lock().unwrap();
        state.stalling_new = true;
        state.stalled_any = true;
        self.stalls.send_modify(|stalls| *stalls += 1);
    }

    /// Cuts every connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.open = false;
        state.connections.abort_all();
    }

    /// Forwards new connections again and leaves the stalled ones stalled,
    /// as when a network heals but the peers of its lost connections never
    /// hear of it.
    pub fn forward_new_only(&self) {
        self.state.lock().unwrap().stalling_new = false;
    }

    /// Forwards new connections again (after a stall, the stalled ones are
    /// closed).
    pub fn restore(&self) {
        let mut state = self.state.lock().unwrap();
        if state.stalled_any {
            state.connections.abort_all();
        }
        state.open = true;
        state.stalling_new = false;
        state.stalled_any = false;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.state.lock().unwrap().connections.abort_all();
    }
}
