//! The operators' HTTP listener: `/metrics` (Prometheus text format) and
//! `/healthz` (200 `SERVING` or 503 `NOT_SERVING`, for load balancers that
//! speak only HTTP, then a line per push provider for people).

use super::health::Health;
use crate::domain::Service;
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

#[derive(Clone)]
struct Endpoint {
    metrics: PrometheusHandle,
    health: Health,
    service: Service,
}

/// Serves `/metrics` and `/healthz` on `listener` until the service shuts down.
pub async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    health: Health,
    service: Service,
) {
    let stop = service.clone();
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .with_state(Endpoint {
            metrics,
            health,
            service,
        });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.shutting_down().await })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "metrics listener failed");
    }
}

async fn render_metrics(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    // The pending and devices-without-push gauges are read when scraped, so
    // they are exact whatever replica or restart changed them.
    match endpoint.service.store().count_pending_challenges().await {
        Ok(count) => super::metrics::set_pending(count),
        Err(error) => tracing::warn!(%error, "could not count pending challenges"),
    }
    match endpoint.service.store().count_unreachable_devices().await {
        Ok(counts) => super::metrics::set_devices_without_push(&counts),
        Err(error) => tracing::warn!(%error, "could not count devices without push"),
    }
    endpoint.metrics.run_upkeep();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        endpoint.metrics.render(),
    )
}

/// The first line is the state balancers read; then the version, and two
/// lines per push provider (its answers, its credentials), which never change
/// the status (sign-ins still work by pull, so a replica with a misconfigured
/// provider stays in the rotation).
async fn healthz(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    let (status, state) = if endpoint.health.is_serving() {
        (StatusCode::OK, "SERVING")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING")
    };
    let mut body = format!("{state}\nversion: {}\n", crate::VERSION);
    for provider in endpoint.service.push_health().report() {
        let state = match &provider.misconfigured {
            None => "ok".to_owned(),
            Some(reason) => format!("misconfigured: {reason}"),
        };
        let platform = provider.platform.as_str();
        body.push_str(&format!("push {platform}: {state}\n"));
        let credentials = match &provider.credentials {
            None => "not checked yet".to_owned(),
            Some(Ok(())) => "ok".to_owned(),
            Some(Err(reason)) => format!("failing: {reason}"),
        };
        body.push_str(&format!("push {platform} credentials: {credentials}\n"));
    }
    (status, body)
}
