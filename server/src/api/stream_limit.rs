//! A limit on the calls open at once on one client connection: past it, a
//! call is answered RESOURCE_EXHAUSTED at once, so that one connection cannot
//! hold every task and watch the server has. A call's slot is held until its
//! response body ends (for a watch, until the stream closes).

use crate::telemetry::metrics;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};
use tonic::{
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
    Status,
};
use tower::{Layer, Service};

/// Open calls by the client connection's remote address.
type OpenCalls = Arc<Mutex<HashMap<SocketAddr, u32>>>;

/// Adds [`StreamLimit`] with at most `limit` calls per connection.
#[derive(Debug, Clone)]
pub struct StreamLimitLayer {
    limit: u32,
    open: OpenCalls,
}

impl StreamLimitLayer {
    /// At most `limit` calls open at once per connection.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            open: OpenCalls::default(),
        }
    }
}

impl<S> Layer<S> for StreamLimitLayer {
    type Service = StreamLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StreamLimit {
            inner,
            limit: self.limit,
            open: self.open.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct StreamLimit<S> {
    inner: S,
    limit: u32,
    open: OpenCalls,
}

impl<S, B, RB> Service<Request<B>> for StreamLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let slot = match remote_addr(&request) {
            Some(peer) => match self.take_slot(peer) {
                Some(slot) => Some(slot),
                None => {
                    metrics::throttled("connection_streams");
                    let response = Status::resource_exhausted(format!(
                        "more than {} calls at once on this connection; wait for one to end or open another connection",
                        self.limit
                    ))
                    .into_http();
                    return Box::pin(async move { Ok(response) });
                }
            },
            // Every listener we serve records the remote address; without
            // one there is no connection to count against.
            None => None,
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|body| {
                Body::new(Held {
                    body: Body::new(body),
                    _slot: slot,
                })
            }))
        })
    }
}

impl<S> StreamLimit<S> {
    fn take_slot(&self, peer: SocketAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(peer).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            open: self.open.clone(),
            peer,
        })
    }
}

fn remote_addr<B>(request: &Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
}

/// One open call of a connection; freed when dropped.
struct Slot {
    open: OpenCalls,
    peer: SocketAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// A response body that holds its call's slot until it is dropped.
struct Held {
    body: Body,
    _slot: Option<Slot>,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
