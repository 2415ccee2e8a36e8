//! The operator's commands. This file holds the command line's shape and
//! sends each command to its file: [`serve`] (`serve`, `migrate`),
//! [`tenant`], [`api_key`], [`user`], [`oidc_client`], [`stats`], [`health`] and
//! [`config`] (and `openapi`, one line here). Each opens the
//! database named by the configuration, so that it works beside a running
//! server (SQLite in WAL mode lets a second process in; PostgreSQL is shared
//! anyway).

mod api_key;
mod config;
mod health;
mod oidc_client;
mod serve;
mod stats;
mod tenant;
mod user;

use clap::{Parser, Subcommand};
use mfa_server::{config::Config, telemetry};
use std::{
    fmt,
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
    /// Runs the service (gRPC, and HTTP/JSON when `http_listen` is set).
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
    /// Manages a tenant's users.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Manages the OpenID provider's relying parties.
    OidcClient {
        #[command(subcommand)]
        command: oidc_client::OidcClientCommand,
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
    /// Asks a running server's `/healthz` (on the configured
    /// `metrics_listen`) and exits 0 when it is serving, 1 otherwise: the
    /// health check of a container image, which has no curl.
    Health {
        /// Another health endpoint than `metrics_listen`'s `/healthz`.
        #[arg(long)]
        url: Option<String>,
    },
    /// Prints the HTTP/JSON API's OpenAPI 3.1 document (as served at
    /// `/v1/openapi.json`; `docs/openapi.json` is its committed copy).
    Openapi,
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
        Command::User { command } => user::run(config, command).await,
        Command::OidcClient { command } => oidc_client::run(config, command).await,
        Command::Config { command } => config::run(&loaded, command),
        Command::Stats { url } => stats::run(&url).await,
        Command::Health { url } => health::run(config, url).await,
        Command::Openapi => {
            print!("{}", mfa_server::http::openapi::document());
            Ok(())
        }
    }
}

/// A stored time (milliseconds since the epoch) as RFC 3339, in UTC.
fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or_default());
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A duration in one unit, as the configuration takes it (`90s`, `30m`,
/// `24h`), without the spaces humantime puts between units.
fn duration(d: Duration) -> String {
    let (ms, secs) = (d.as_millis(), d.as_secs());
    match () {
        _ if ms % 1000 != 0 => format!("{ms}ms"),
        _ if secs != 0 && secs % 3600 == 0 => format!("{}h", secs / 3600),
        _ if secs != 0 && secs % 60 == 0 => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

/// An optional stored time, `-` when there is none.
fn optional_time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), time)
}

/// A listing: a header and rows, each column as wide as its widest cell,
/// two spaces apart (the last one unpadded, so that a name with spaces may
/// go there).
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            rows: vec![header.map(str::to_owned).to_vec()],
        }
    }

    fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.to_vec());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 < columns {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                } else {
                    line.push_str(cell);
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_configuration_writes_them() {
        let shown: Vec<String> = [90, 120, 7200, 86_400, 0]
            .map(|s| duration(Duration::from_secs(s)))
            .into();
        assert_eq!(shown, ["90s", "2m", "2h", "24h", "0s"]);
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn a_table_pads_every_column_but_the_last() {
        let mut table = Table::new(["ID", "NAME"]);
        table.row(["abc".to_owned(), "Acme (External)".to_owned()]);
        table.row(["a".to_owned(), String::new()]);
        assert_eq!(table.to_string(), "ID   NAME\nabc  Acme (External)\na\n");
    }
}
