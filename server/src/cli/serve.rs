//! `mfa-server serve` and `mfa-server migrate`: running the service, and
//! bringing its database up to date.

use super::CliResult;
use mfa_server::{config::Config, model::Role, offline_code_key::OfflineCodeKey, server};

/// Applies the migrations and says where.
pub async fn migrate(config: &Config) -> CliResult {
    server::open_store(config).await?.store.migrate().await?;
    println!("migrations applied to {}", config.database_url_redacted());
    Ok(())
}

/// Serves until SIGTERM or Ctrl-C; with `dev` on an empty database, first
/// creates a demo tenant and prints its keys. With `dev` and no
/// `offline_code_key_file`, offline codes use a key made next to the data.
pub async fn serve(config: &Config, dev: bool) -> CliResult {
    // Handlers first: a SIGTERM sent as soon as the server says that it
    // listens (by an orchestrator, or a test) must drain it, not kill it.
    let stop = shutdown_signal()?;
    let mut config = config.clone();
    if dev && config.offline_code_key_file.is_none() {
        let path = config.dev_offline_code_key_file();
        OfflineCodeKey::create_if_missing(&path)
            .map_err(|e| format!("offline-code key {}: {e}", path.display()))?;
        config.offline_code_key_file = Some(path);
    }
    let config = &config;
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
    if let Some((addr, issuer)) = &running.oidc {
        println!("OpenID provider on {addr}, issuer {issuer}");
    }
    println!(
        "mfa-server listening on {} (database {})",
        running.addr,
        config.database_url_redacted()
    );
    let shutdown = running.shutdown_handle();
    tokio::spawn(async move {
        stop.await;
        tracing::info!("shutting down");
        let _ = shutdown.send(true);
    });
    running.wait().await?;
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C), with the handlers installed when this is
/// called rather than when the future is first polled.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
