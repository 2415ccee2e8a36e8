//! The `mfa-server` command: parses the command line and configuration, then
//! calls the library.

use clap::{Parser, Subcommand, ValueEnum};
use mfa_server::{config::Config, model::Role, server, telemetry};
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, UNIX_EPOCH},
};

#[derive(Parser)]
#[command(
    name = "mfa-server",
    version,
    about = "Push-notification MFA approval service with number matching"
)]
struct Cli {
    /// TOML configuration file; `MFA_*` environment variables override it.
    #[arg(long, short, global = true, env = "MFA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gRPC service.
    Serve {
        /// On an empty database, create a demo tenant and print a portal key and an admin key.
        #[arg(long)]
        dev: bool,
    },
    /// Applies database migrations and exits.
    Migrate,
    /// Manages tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manages API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Shows the configuration in effect.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Prints request counts and latency quantiles read from a running
    /// server's metrics endpoint (totals since that server started).
    Stats {
        /// The server's metrics endpoint (`metrics_listen` + `/metrics`).
        #[arg(long, default_value = "http://127.0.0.1:9464/metrics")]
        url: String,
    },
    /// Asks a running server's `/healthz` (on the configured
    /// `metrics_listen`) and exits 0 when it is serving, 1 otherwise: the
    /// health check of a container image, which has no curl.
    Health {
        /// Another health endpoint than `metrics_listen`'s `/healthz`.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Prints the effective configuration as TOML, each value with its
    /// source (default, file, environment), secrets redacted.
    Show,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Creates a tenant and prints its id.
    Create {
        /// Display name shown in the app, e.g. "IHIGrp (External Collaboration)".
        #[arg(long)]
        name: String,
        /// Digits in challenge numbers (2 to 6).
        #[arg(long, default_value_t = 2)]
        digits: u8,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Creates an API key and prints it once (only its hash is stored).
    Create {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// What the key may call.
        #[arg(long, value_enum)]
        role: KeyRole,
    },
    /// Lists a tenant's API keys: id, role, when created and revoked (never
    /// the keys themselves).
    List {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
    },
    /// Revokes an API key. Running servers accept it for at most
    /// `api_key_cache_ttl` more.
    Revoke {
        /// The key's id (as `api-key list` shows it).
        id: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyRole {
    Portal,
    Admin,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mfa-server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let loaded = Config::load(cli.config.as_deref())?;
    telemetry::logging::init(loaded.config.log_format);
    loaded.warn_ignored();
    let config = &loaded.config;
    match cli.command {
        Command::Config {
            command: ConfigCommand::Show,
        } => {
            print!("{}", loaded.show());
            Ok(())
        }
        Command::Serve { dev } => serve(config, dev).await,
        Command::Migrate => {
            server::open_store(config).await?.store.migrate().await?;
            println!("migrations applied to {}", config.database_url_redacted());
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Create { name, digits },
        } => {
            let service = server::build_service(config, config.public_url()).await?;
            let tenant = service.create_tenant(&name, digits).await?;
            println!("{}", tenant.id);
            Ok(())
        }
        Command::ApiKey { command } => api_key(config, command).await,
        Command::Stats { url } => {
            print!("{}", mfa_server::stats::report(&url).await?);
            Ok(())
        }
        Command::Health { url } => {
            let url = url.unwrap_or_else(|| health_url(config.metrics_listen));
            // A success status only: 503 NOT_SERVING is an error here.
            let state = mfa_server::stats::fetch(&url).await?;
            println!("{}", state.trim());
            Ok(())
        }
    }
}

async fn api_key(
    config: &Config,
    command: ApiKeyCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let service = server::build_service(config, config.public_url()).await?;
    match command {
        ApiKeyCommand::Create { tenant, role } => {
            let role = match role {
                KeyRole::Portal => Role::Portal,
                KeyRole::Admin => Role::Admin,
            };
            let key = service.create_api_key(&tenant, role).await?;
            println!("{}", key.secret);
            eprintln!(
                "(key id {}; this is the only time the key is shown)",
                key.id
            );
        }
        ApiKeyCommand::List { tenant } => {
            let keys = service.list_api_keys(&tenant).await?;
            println!("{}", columns(["ID", "ROLE", "CREATED", "REVOKED"]));
            for key in &keys {
                let revoked = key.revoked_at.map_or_else(|| "-".to_owned(), time);
                let created = time(key.created_at);
                println!(
                    "{}",
                    columns([&key.id, key.role.as_str(), &created, &revoked])
                );
            }
        }
        ApiKeyCommand::Revoke { id } => match service.revoke_api_key(&id).await? {
            (key, true) => println!(
                "revoked API key {} ({} key of tenant {}); servers that checked it \
                 recently accept it for at most {} more (api_key_cache_ttl)",
                key.id,
                key.role.as_str(),
                key.tenant_id,
                humantime::format_duration(config.api_key_cache_ttl),
            ),
            (key, false) => println!(
                "API key {} was already revoked at {}",
                key.id,
                key.revoked_at.map_or_else(|| "-".to_owned(), time),
            ),
        },
    }
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

/// One row of `api-key list`: id, role, created, revoked.
fn columns([id, role, created, revoked]: [&str; 4]) -> String {
    format!("{id:<36}  {role:<6}  {created:<20}  {revoked}")
}

/// A stored time (milliseconds since the epoch) as RFC 3339, in UTC.
fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or_default());
    humantime::format_rfc3339_seconds(at).to_string()
}

async fn serve(config: &Config, dev: bool) -> Result<(), Box<dyn std::error::Error>> {
    // Handlers first: a SIGTERM sent as soon as the server says that it
    // listens (by an orchestrator, or a test) must drain it, not kill it.
    let stop = shutdown_signal()?;
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
