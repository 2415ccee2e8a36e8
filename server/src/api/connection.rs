//! What the server knows about each client connection: the calls open on it
//! (counted by [`StreamLimitLayer`](super::StreamLimitLayer) from request to
//! the end of the response body, so that a watch counts until it ends), and
//! the idle timeout that closes a connection once no call has been open on
//! it for `idle_connection_timeout`.
//!
//! Neither tonic nor hyper closes idle HTTP/2 connections (their keepalive
//! only detects dead peers), so each accepted socket is wrapped: once its
//! connection has been idle for the timeout, its reads end as if the client
//! had hung up, and hyper closes the connection. Only calls count as
//! activity, not PINGs or other frames, so a client cannot keep an idle
//! connection by pinging; a quiet watch keeps its connection open.

use crate::telemetry::metrics;
use std::{
    collections::HashMap,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The open client connections by remote address (unique among the open TCP
/// connections of one listener), shared by the listener and the call layer.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    open: Arc<Mutex<HashMap<SocketAddr, Arc<Activity>>>>,
}

impl Connections {
    /// Tracks every connection `incoming` accepts, closing those idle for
    /// `idle_timeout` (none if it is zero).
    pub fn track(
        &self,
        incoming: impl Stream<Item = io::Result<TcpStream>>,
        idle_timeout: Duration,
    ) -> impl Stream<Item = io::Result<Tracked>> {
        let connections = self.clone();
        let idle_timeout = (!idle_timeout.is_zero()).then_some(idle_timeout);
        incoming.map(move |accepted| connections.open(accepted?, idle_timeout))
    }

    fn open(&self, stream: TcpStream, idle_timeout: Option<Duration>) -> io::Result<Tracked> {
        let peer = stream.peer_addr()?;
        let activity = Arc::new(Activity(Mutex::new(Calls {
            open: 0,
            idle_since: Instant::now(),
        })));
        lock(&self.open).insert(peer, activity.clone());
        Ok(Tracked {
            stream,
            peer,
            activity,
            connections: self.clone(),
            idle: idle_timeout.map(|timeout| IdleTimer {
                timeout,
                sleep: Box::pin(tokio::time::sleep(timeout)),
                expired: false,
            }),
        })
    }

    /// The calls of the open connection from `peer`.
    pub(super) fn get(&self, peer: SocketAddr) -> Option<Arc<Activity>> {
        lock(&self.open).get(&peer).cloned()
    }
}

/// The calls open on one connection.
#[derive(Debug)]
pub(super) struct Activity(Mutex<Calls>);

#[derive(Debug)]
struct Calls {
    open: u32,
    /// When the last call ended (or the connection opened); read while
    /// `open` is zero.
    idle_since: Instant,
}

impl Activity {
    /// Opens a call, unless `limit` calls are open already.
    pub(super) fn begin(self: &Arc<Self>, limit: u32) -> Option<Call> {
        let mut calls = lock(&self.0);
        if calls.open >= limit {
            return None;
        }
        calls.open += 1;
        Some(Call(self.clone()))
    }

    /// Since when no call has been open, or `None` while one is.
    fn idle_since(&self) -> Option<Instant> {
        let calls = lock(&self.0);
        (calls.open == 0).then_some(calls.idle_since)
    }
}

/// An open call; it ends when dropped.
pub(super) struct Call(Arc<Activity>);

impl Drop for Call {
    fn drop(&mut self) {
        let mut calls = lock(&self.0 .0);
        calls.open -= 1;
        if calls.open == 0 {
            calls.idle_since = Instant::now();
        }
    }
}

/// An accepted connection, whose reads end once it has been idle for the
/// timeout.
pub struct Tracked {
    stream: TcpStream,
    peer: SocketAddr,
    activity: Arc<Activity>,
    connections: Connections,
    idle: Option<IdleTimer>,
}

struct IdleTimer {
    timeout: Duration,
    /// Wakes the reader when the connection could next have been idle for
    /// `timeout`; while a call is open, a `timeout` later, to look again.
    sleep: Pin<Box<Sleep>>,
    expired: bool,
}

impl Tracked {
    /// Whether the connection has been idle for the timeout. Polled on every
    /// read, which hyper keeps pending for as long as the connection lives.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(idle) = &mut self.idle else {
            return false;
        };
        while !idle.expired && idle.sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let deadline = match self.activity.idle_since() {
                Some(since) => since + idle.timeout,
                None => now + idle.timeout,
            };
            if deadline <= now {
                idle.expired = true;
                metrics::throttled("idle_connection");
                tracing::debug!(timeout = ?idle.timeout, "closing an idle connection");
            } else {
                idle.sleep.as_mut().reset(deadline);
            }
        }
        idle.expired
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut open = lock(&self.connections.open);
        // A new connection from the same address may have replaced this one.
        if open
            .get(&self.peer)
            .is_some_and(|a| Arc::ptr_eq(a, &self.activity))
        {
            open.remove(&self.peer);
        }
    }
}

impl Connected for Tracked {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.idle_expired(cx) {
            // End of stream: hyper ends the connection and drops the socket.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
