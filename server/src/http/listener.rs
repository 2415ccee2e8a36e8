//! The HTTP/JSON listener's connections: plain TCP on loopback (or behind a
//! proxy that terminates TLS), or TLS with the `[tls]` settings of the gRPC
//! listener. Each connection's [`Peer`] goes into its requests as
//! `ConnectInfo<Peer>`.

use crate::tls::HANDSHAKE_TIMEOUT;
use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, Listener},
};
use std::{io, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The TCP peer (a proxy's address, behind one).
    pub addr: SocketAddr,
    /// Whether it presented a client certificate that the client CA signed
    /// (the handshake verified any that was presented).
    pub client_cert: bool,
}

/// A pause after a failed `accept` (out of file descriptors, say), so that
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts the next TCP connection, with Nagle's algorithm off (small JSON
/// answers go out at once).
async fn accept_tcp(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                return (stream, addr);
            }
            Err(error) => {
                tracing::warn!(%error, "HTTP listener: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Plain TCP connections.
pub struct PlainListener(pub TcpListener);

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = accept_tcp(&self.0).await;
        (
            stream,
            Peer {
                addr,
                client_cert: false,
            },
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.0.local_addr()?,
            client_cert: false,
        })
    }
}

/// TLS connections. Handshakes run in tasks of their own, each bounded by
/// [`HANDSHAKE_TIMEOUT`], so that a slow client delays no one else.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
}

impl TlsListener {
    /// Accepts on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, addr) = tokio::select! {
                    accepted = accept_tcp(&listener) => accepted,
                    // The server stopped: stop accepting.
                    () = tx.closed() => return,
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let client_cert = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|certs| !certs.is_empty());
                            let _ = tx.send((tls, Peer { addr, client_cert })).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %addr, "HTTP listener: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%addr, "HTTP listener: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local, ready })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local,
            client_cert: false,
        })
    }
}

impl Connected<IncomingStream<'_, PlainListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        *stream.remote_addr()
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        *stream.remote_addr()
    }
}
