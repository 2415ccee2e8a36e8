//! A limit on the calls open at once on one client connection: past it, a
//! call is answered RESOURCE_EXHAUSTED at once, so that one connection cannot
//! hold every task and watch the server has. A call is open until its
//! response body ends (for a watch, until the stream closes); the count is
//! kept in [`Connections`], where the idle timeout reads it too.

use super::connection::{Call, Connections};
use crate::client_address::remote_addr;
use crate::telemetry::metrics;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use mfa_proto::status::Reason;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};
use tonic::{body::Body, Status};
use tower::{Layer, Service};

/// `ErrorInfo.metadata` key of `TOO_MANY_STREAMS`: the calls a connection
/// may have open at once.
pub const MAX_STREAMS: &str = "max_streams";

/// Adds [`StreamLimit`] with at most `limit` calls per connection.
#[derive(Debug, Clone)]
pub struct StreamLimitLayer {
    limit: u32,
    connections: Connections,
}

impl StreamLimitLayer {
    /// At most `limit` calls open at once on each of `connections`.
    pub fn new(limit: u32, connections: Connections) -> Self {
        Self { limit, connections }
    }
}

impl<S> Layer<S> for StreamLimitLayer {
    type Service = StreamLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StreamLimit {
            inner,
            limit: self.limit,
            connections: self.connections.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct StreamLimit<S> {
    inner: S,
    limit: u32,
    connections: Connections,
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
        let connection = remote_addr(&request).and_then(|peer| self.connections.get(peer));
        let call = match connection {
            Some(activity) => match activity.begin(self.limit) {
                Some(call) => Some(call),
                None => {
                    metrics::throttled("connection_streams");
                    let response = Reason::TooManyStreams
                        .status_with(
                            format!(
                                "more than {} calls at once on this connection; wait for one to end or open another connection",
                                self.limit
                            ),
                            [(MAX_STREAMS, self.limit.to_string())],
                        )
                        .into_http();
                    return Box::pin(async move { Ok(response) });
                }
            },
            // The server tracks every connection it accepts; a request
            // from elsewhere has no connection to count against.
            None => None,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(Held {
                    body: Body::new(body),
                    _call: call,
                })
            }))
        })
    }
}

/// A response body that keeps its call open until it is dropped.
struct Held {
    body: Body,
    _call: Option<Call>,
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
