//! The HTTP/JSON face of the portal service, for portals that do not speak
//! gRPC (PHP, Java, .NET, shell scripts): served on its own listener
//! (`http_listen`, off by default; TLS with the `[tls]` settings).
//!
//! It is a sibling of [`crate::api`], not a second implementation: every
//! route calls the operation the gRPC handler calls
//! ([`crate::api::portal`]) and sends its `mfa.v1` answer as JSON
//! ([`model`]). The API keys, the client-address rules, the limits and the
//! call metrics are the gRPC face's (the metrics with `transport="http"`),
//! and every error is the same [`crate::domain::Refusal`] in one JSON
//! shape ([`error`]). [`openapi`] documents it.

mod error;
mod extract;
mod listener;
mod model;
pub mod openapi;
mod portal;
mod watch;

pub use listener::Peer;

use crate::{
    client_address::{ClientAddress, TrustedProxies},
    domain::{Reason, Service},
    telemetry::{grpc::request_id, metrics},
    tls::ClientCertPolicy,
};
use axum::{
    extract::{ConnectInfo, Request, State},
    handler::Handler,
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use error::ApiError;
use listener::{PlainListener, TlsListener};
use serde::Serialize;
use std::{sync::Arc, time::Instant};
use tokio::net::TcpListener;
use tracing::Instrument;

/// The gRPC service whose operations these are, for the call metrics.
const SERVICE: &str = "mfa.v1.PortalService";

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    service: Service,
    client_cert: ClientCertPolicy,
    /// The largest body decoded (`max_message_size`).
    max_body: usize,
}

/// The routes, with the client-address resolution in front of them.
pub fn router(
    service: Service,
    trusted: TrustedProxies,
    client_cert: ClientCertPolicy,
    max_body: usize,
) -> Router {
    let api = Api {
        service,
        client_cert,
        max_body,
    };
    Router::new()
        .route(
            "/v1/enrollments",
            post(observe(portal::begin_enrollment, "BeginEnrollment")),
        )
        .route(
            "/v1/enrollments/{enrollment_id}",
            get(observe(portal::get_enrollment, "GetEnrollment")),
        )
        .route(
            "/v1/enrollments/{enrollment_id}/events",
            get(observe(portal::enrollment_events, "WatchEnrollment")),
        )
        .route(
            "/v1/challenges",
            post(observe(portal::create_challenge, "CreateChallenge")),
        )
        // `POST …/{challenge_id}:cancel`: the router matches whole segments,
        // so the handler takes the `:cancel` off.
        .route(
            "/v1/challenges/{challenge_id}",
            get(observe(portal::get_challenge, "GetChallenge"))
                .post(observe(portal::cancel_challenge, "CancelChallenge")),
        )
        .route(
            "/v1/challenges/{challenge_id}/events",
            get(observe(portal::challenge_events, "WatchChallenge")),
        )
        .route(
            "/v1/users/{user_id}",
            get(observe(portal::user_status, "GetUserStatus")),
        )
        .route(
            "/v1/users/{user_id}/terms",
            post(observe(portal::record_terms, "RecordTermsAcceptance")),
        )
        .route(
            "/v1/users/{user_id}/offline-codes:verify",
            post(observe(portal::verify_offline_code, "VerifyOfflineCode")),
        )
        .route("/v1/openapi.json", get(openapi_document))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .with_state(api)
        .layer(middleware::from_fn_with_state(trusted, client_address))
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "could not encode a JSON answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn openapi_document() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(openapi::document);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document.as_str(),
    )
        .into_response()
}

async fn no_route(request: Request) -> ApiError {
    ApiError::new(
        Reason::NotFound,
        format!(
            "no such route: {} {} (GET /v1/openapi.json lists the routes)",
            request.method(),
            request.uri().path()
        ),
    )
    .with("resource", "route")
}

/// The caller's address, as the gRPC face resolves it: the TCP peer, or
/// behind a trusted proxy the address it forwarded.
async fn client_address(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<Peer>>().copied() {
        let client = trusted.resolve(peer.addr.ip(), request.headers());
        request.extensions_mut().insert(client);
    }
    next.run(request).await
}

/// Around one operation: its log span with the request id and the caller's
/// address, the request id on the answer, and the call metrics under the
/// gRPC method's name.
fn observe<H, T>(handler: H, method: &'static str) -> impl Handler<T, Api>
where
    H: Handler<T, Api>,
    T: 'static,
{
    handler.layer(middleware::from_fn_with_state(method, observed))
}

async fn observed(State(method): State<&'static str>, request: Request, next: Next) -> Response {
    let request_id = request_id(request.headers());
    let client = request
        .extensions()
        .get::<ClientAddress>()
        .map_or_else(|| "unknown".to_owned(), ToString::to_string);
    let span = tracing::info_span!("http", %request_id, service = SERVICE, %method, %client);
    let start = Instant::now();
    let mut response = next.run(request).instrument(span).await;
    let code = response
        .extensions()
        .get::<Reason>()
        .map_or(tonic::Code::Ok, |reason| reason.code());
    metrics::api_call("http", SERVICE.into(), method.into(), code, start.elapsed());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(crate::telemetry::grpc::REQUEST_ID, value);
    }
    response
}

/// A bound HTTP/JSON listener, ready to serve.
pub enum HttpListener {
    Plain(TcpListener),
    Tls(TcpListener, Arc<rustls::ServerConfig>),
}

impl HttpListener {
    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        match self {
            Self::Plain(listener) | Self::Tls(listener, _) => listener.local_addr(),
        }
    }

    /// Serves `router` until the service shuts down; open watches end then
    /// (with `SHUTTING_DOWN`), and calls in flight finish.
    pub async fn serve(self, router: Router, service: Service) {
        let app = router.into_make_service_with_connect_info::<Peer>();
        let stop = service.clone();
        let stopped = async move { stop.shutting_down().await };
        let result = match self {
            Self::Plain(listener) => {
                axum::serve(PlainListener(listener), app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Self::Tls(listener, config) => match TlsListener::new(listener, config) {
                Ok(listener) => {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                }
                Err(error) => Err(error),
            },
        };
        if let Err(error) = result {
            tracing::error!(%error, "HTTP/JSON listener failed");
        }
    }
}
