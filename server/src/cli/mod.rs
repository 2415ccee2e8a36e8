//! The operator's commands. This file holds the command line's shape and
//! sends each command to its file: [`serve`] (`serve`, `migrate`),
//! [`tenant`], [`api_key`], [`stats`] and [`config`]. Each opens the
//! database named by the configuration, so that it works beside a running
//! server (SQLite in WAL mode lets a second process in; PostgreSQL is shared
//! anyway).

mod api_key;
mod config;
mod serve;
mod stats;
mod tenant;

use clap::{Parser, Subcommand};
use mfa_server::{config::Config, telemetry};
use std::{
    path::PathBuf,
    time::{Duration, UNIX_EPOCH},
};

/// What a command returns: its failure is printed as `mfa-server: <error>`.
pub type CliResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(
    name = "mfa-server",
    version,
    about = "Push-notification MFA approval service with number matching"
)]
pub struct Cli {
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
        command: tenant::TenantCommand,
    },
    /// Manages API keys.
    ApiKey {
        #[command(subcommand)]
        command: api_key::ApiKeyCommand,
    },
    /// Shows the configuration in effect.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// Prints request counts and latency quantiles read from a running
    /// server's metrics endpoint (totals since that server started).
    Stats {
        /// The server's metrics endpoint (`metrics_listen` + `/metrics`).
        #[arg(long, default_value = "http://127.0.0.1:9464/metrics")]
        url: String,
    },
}

/// Reads the configuration, sets up logging, and runs the command.
pub async fn run(cli: Cli) -> CliResult {
    let loaded = Config::load(cli.config.as_deref())?;
    telemetry::logging::init(loaded.config.log_format);
    loaded.warn_ignored();
    let config = &loaded.config;
    match cli.command {
        Command::Serve { dev } => serve::serve(config, dev).await,
        Command::Migrate => serve::migrate(config).await,
        Command::Tenant { command } => tenant::run(config, command).await,
        Command::ApiKey { command } => api_key::run(config, command).await,
        Command::Config { command } => config::run(&loaded, command),
        Command::Stats { url } => stats::run(&url).await,
    }
}

/// A stored time (milliseconds since the epoch) as RFC 3339, in UTC.
fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or_default());
    humantime::format_rfc3339_seconds(at).to_string()
}

/// An optional stored time, `-` when there is none.
fn optional_time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), time)
}
