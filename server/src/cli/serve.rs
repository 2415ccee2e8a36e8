//! `mfa-server serve` and `mfa-server migrate`: running the service, and
//! bringing its database up to date.

use super::CliResult;
use mfa_server::{config::Config, model::Role, server};

/// Applies the migrations and says where.
pub async fn migrate(config: &Config) -> CliResult {
    server::open_store(config).await?.store.migrate().await?;
    println!("migrations applied to {}", config.database_url_redacted());
    Ok(())
}

/// Serves until SIGTERM or Ctrl-C; with `dev` on an empty database, first
/// creates a demo tenant and prints its keys.
pub async fn serve(config: &Config, dev: bool) -> CliResult {
    let running = server::start(config).await?;
    if dev && running.service.store().count_tenants().await? == 0 {
        let tenant = running.service.create_tenant("Demo tenant", 2).await?;
        let portal = running
            .service
            .create_api_key(&tenant.id, Role::Portal)
            .await?;
        let admin = running
            .service
            .create_api_key(&tenant.id, Role::Admin)
            .await?;
        println!("Development tenant created (shown once):");
        println!("  tenant id:  {}", tenant.id);
        println!("  portal key: {}", portal.secret);
        println!("  admin key:  {}", admin.secret);
        println!(
            "Try: MFA_PORTAL_KEY={} cargo run -p mfa-sdk --example sign_in",
            portal.secret
        );
    }
    println!(
        "metrics and health on http://{}/metrics and /healthz",
        running.metrics_addr
    );
    println!(
        "mfa-server listening on {} (database {})",
        running.addr,
        config.database_url_redacted()
    );
    let shutdown = running.shutdown_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown.send(true);
    });
    running.wait().await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
