//! `mfa-server health`: whether a running server is serving, for a
//! container's health check (the image has no curl).

use super::CliResult;
use mfa_server::config::Config;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Asks `url`, or else the configured metrics listener's `/healthz`, and
/// prints the answer; a status other than success (503 NOT_SERVING) fails.
pub async fn run(config: &Config, url: Option<String>) -> CliResult {
    let url = url.unwrap_or_else(|| health_url(config.metrics_listen));
    // A success status only: 503 NOT_SERVING is an error here.
    let state = mfa_server::stats::fetch(&url).await?;
    println!("{}", state.trim());
    Ok(())
}

/// `/healthz` on the metrics listener, asked from the same host: a listener
/// on every address (`0.0.0.0`, `[::]`) is reached through loopback.
fn health_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
}
