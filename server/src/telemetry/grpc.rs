//! A tower layer around every gRPC call: a request id (the caller's
//! `x-request-id`, or a new one) on a tracing span that every log line of the
//! call carries (with the caller's address) and on the response, and the
//! request count and latency by service, method and status code
//! ([`crate::telemetry::metrics::api_call`], which the HTTP/JSON face shares).

use crate::client_address::ClientAddress;
use http::{HeaderValue, Request, Response};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};
use tower::{Layer, Service};
use tracing::Instrument;

/// Header that carries the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Adds [`GrpcTelemetry`] to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTelemetryLayer;

impl<S> Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTelemetry { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for GrpcTelemetry<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let request_id = request_id(request.headers());
        let client = request
            .extensions()
            .get::<ClientAddress>()
            .map_or_else(|| "unknown".to_owned(), ToString::to_string);
        let span = tracing::info_span!("grpc", %request_id, %service, %method, %client);
        let start = Instant::now();
        let call = self.inner.call(request);
        Box::pin(
            async move {
                let mut response = call.await?;
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from);
                // Unknown methods would let any caller mint label values.
                let method = if code == tonic::Code::Unimplemented {
                    "unknown".to_owned()
                } else {
                    method
                };
                let service = if code == tonic::Code::Unimplemented {
                    "unknown".to_owned()
                } else {
                    service
                };
                crate::telemetry::metrics::api_call("grpc", service, method, code, start.elapsed());
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert(REQUEST_ID, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The caller's `x-request-id`, if it is a sensible one, or a new id.
pub fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// `/mfa.v1.PortalService/CreateChallenge` → (`mfa.v1.PortalService`, `CreateChallenge`).
fn split_path(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    (service.to_owned(), method.to_owned())
}
