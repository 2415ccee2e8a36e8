//! `demo-portal`: a small web portal that signs people in with a password
//! and then the phone's number-matching approval, through the MFA service's
//! portal API and the SDK's relying-party helper.
//!
//! - `app.rs`: the routes and the sign-in steps, talking to the service.
//! - `pages.rs`: the server-rendered HTML.
//! - `i18n.rs`: Japanese and English text by `Accept-Language`.
//! - `session.rs`: browser sessions in memory.
//! - `users.rs`: the demo's user list (the first factor).

mod app;
mod i18n;
mod pages;
mod session;
mod users;

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;
use mfa_sdk::portal::RelyingParty;

#[derive(Parser)]
#[command(
    name = "demo-portal",
    version,
    about = "A demo portal using the MFA service"
)]
struct Args {
    /// Address to serve the portal on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The MFA service's gRPC URL.
    #[arg(long, env = "MFA_URL", default_value = "http://127.0.0.1:50051")]
    mfa_url: String,
    /// A portal API key of the tenant (`mfa-server serve --dev` prints one).
    #[arg(long, env = "MFA_PORTAL_KEY", hide_env_values = true)]
    portal_key: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo-portal: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let rp = RelyingParty::connect(&args.mfa_url, &args.portal_key).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("demo portal on http://{}", listener.local_addr()?);
    let app = app::router(rp).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
