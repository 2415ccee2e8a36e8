//! Configuration: built-in defaults, then an optional TOML file, then `MFA_*`
//! environment variables (e.g. `MFA_LISTEN=0.0.0.0:50051`, `MFA_CHALLENGE_TTL=90s`;
//! which variables count: [`environment`]). [`show`] prints the result with
//! each value's source.

pub mod environment;
pub mod show;

use crate::{
    oidc::config::OidcConfig, push::config::PushConfig, telemetry::logging::LogFormat,
    tls::TlsConfig,
};
use figment::{
    providers::{Format, Serialized, Toml},
    Figment,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

/// Everything `mfa-server` can be told. Durations are written like `90s`, `10m`, `24h`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the gRPC listener.
    pub listen: SocketAddr,
    /// Address of the HTTP/JSON listener for portals (the portal service as
    /// JSON resources, see docs/openapi.json); unset: no such listener. TLS
    /// and `trusted_proxies` as for the gRPC listener.
    pub http_listen: Option<SocketAddr>,
    /// TLS for the gRPC listener and client certificates (`[tls]`).
    pub tls: TlsConfig,
    /// Networks of the load balancers and proxies in front of the server
    /// (CIDRs such as `10.0.0.0/8`, or single addresses). Only a call whose
    /// TCP peer is in one of them has its client address taken from
    /// `forwarded` / `x-forwarded-for`; empty: every call's address is its
    /// TCP peer.
    pub trusted_proxies: Vec<IpNet>,
    /// The URL phones use to reach this server; put into enrollment QR codes.
    /// Defaults to `http://<listen>` (`https://` with TLS).
    pub public_url: Option<String>,
    /// Directory for the SQLite file and the server key.
    pub data_dir: PathBuf,
    /// Database URL, `sqlite:` or `postgres:`; defaults to `sqlite://<data_dir>/mfa.db`.
    pub database_url: Option<String>,
    /// PostgreSQL: most connections per replica, the change listener's included.
    pub database_max_connections: u32,
    /// PostgreSQL: longest wait for a connection before a call fails with UNAVAILABLE.
    #[serde(with = "humantime_serde")]
    pub database_acquire_timeout: Duration,
    /// PostgreSQL: longest a store operation may take (each statement is also
    /// bounded by it on the database's side); past it, the call fails with
    /// UNAVAILABLE. The change listener, when quiet this long, must answer a
    /// query within it. `0s` turns it off; migrations are never bounded.
    #[serde(with = "humantime_serde")]
    pub database_query_timeout: Duration,
    /// PostgreSQL: TLS to the database (`[database_tls]`); each key set here
    /// overrides the URL's parameter (`sslmode`, `sslrootcert`, …).
    pub database_tls: crate::store::DatabaseTls,
    /// The server's Ed25519 identity key; defaults to `<data_dir>/server-identity.key`,
    /// created (mode 0600) on first start.
    pub server_key_file: Option<PathBuf>,
    /// How long an activation code (QR code) stays valid.
    #[serde(with = "humantime_serde")]
    pub enrollment_ttl: Duration,
    /// How long a challenge (and an enrollment's verification round) waits for an answer.
    #[serde(with = "humantime_serde")]
    pub challenge_ttl: Duration,
    /// At most this many sign-in challenges per user per `challenge_window`.
    pub challenge_limit: u32,
    /// The window of `challenge_limit`.
    #[serde(with = "humantime_serde")]
    pub challenge_window: Duration,
    /// How long a fraud report blocks a user's new challenges (unless an admin unblocks).
    #[serde(with = "humantime_serde")]
    pub fraud_block: Duration,
    /// Largest accepted difference between a device's clock and ours.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// At most this many failed activations per client address per `activation_window`.
    pub activation_failure_limit: u32,
    /// The window of `activation_failure_limit`.
    #[serde(with = "humantime_serde")]
    pub activation_window: Duration,
    /// How long a portal or admin API key, once checked against the database,
    /// is trusted from memory (`0s` checks every call). A key removed from the
    /// database stops working on each replica within this time.
    #[serde(with = "humantime_serde")]
    pub api_key_cache_ttl: Duration,
    /// How long a tenant's settings, once read from the database, are
    /// trusted from memory (`0s` reads them on every call). A change made
    /// with `mfa-server tenant update` reaches each replica within this time.
    #[serde(with = "humantime_serde")]
    pub tenant_cache_ttl: Duration,
    /// At most this many failed device signatures per client address per
    /// `signature_window`; past it, device calls from the address are refused.
    pub signature_failure_limit: u32,
    /// The window of `signature_failure_limit`.
    #[serde(with = "humantime_serde")]
    pub signature_window: Duration,
    /// The key (a file of 32 random bytes, the same on every replica) that
    /// seals devices' offline-code secrets at rest. Unset: offline codes are
    /// off (`serve --dev` creates `<data_dir>/offline-code.key`).
    pub offline_code_key_file: Option<PathBuf>,
    /// At most this many failed offline codes per user, and per end-user
    /// address, per `offline_code_window`; past it, every code is refused.
    pub offline_code_failure_limit: u32,
    /// The window of `offline_code_failure_limit`.
    #[serde(with = "humantime_serde")]
    pub offline_code_window: Duration,
    /// Largest request message the server decodes (bytes); larger: OUT_OF_RANGE.
    pub max_message_size: usize,
    /// Calls (streams) open at once on one client connection; more: RESOURCE_EXHAUSTED.
    pub max_streams_per_connection: u32,
    /// A client connection with no call open for this long is closed (an
    /// open watch counts as a call, however quiet); `0s` keeps idle
    /// connections open.
    #[serde(with = "humantime_serde")]
    pub idle_connection_timeout: Duration,
    /// Watch streams open at once per tenant; more: RESOURCE_EXHAUSTED.
    pub watch_streams_per_tenant: u32,
    /// Longest life of a watch stream; it then ends with DEADLINE_EXCEEDED
    /// and the portal watches again.
    #[serde(with = "humantime_serde")]
    pub watch_max_duration: Duration,
    /// How long ended challenges and enrollments stay readable (GetChallenge,
    /// the portal's records) before the sweeper deletes them; never less than
    /// `challenge_window`, whose limit counts them.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How long audit events are kept before the sweeper deletes them.
    #[serde(with = "humantime_serde")]
    pub audit_retention: Duration,
    /// Push providers and delivery limits (`[push]`, `[push.apns]`, `[push.fcm]`).
    pub push: PushConfig,
    /// Address of the operators' HTTP listener (`/metrics`, `/healthz`).
    pub metrics_listen: SocketAddr,
    /// How often the database is checked for the health state.
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// The OpenID Connect provider (`[oidc]`), off unless `oidc.listen` is set.
    pub oidc: OidcConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_listen: None,
            tls: TlsConfig::default(),
            trusted_proxies: Vec::new(),
            public_url: None,
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_max_connections: 10,
            database_acquire_timeout: Duration::from_secs(3),
            database_query_timeout: Duration::from_secs(5),
            database_tls: crate::store::DatabaseTls::default(),
            server_key_file: None,
            enrollment_ttl: Duration::from_secs(10 * 60),
            challenge_ttl: Duration::from_secs(2 * 60),
            challenge_limit: 10,
            challenge_window: Duration::from_secs(15 * 60),
            fraud_block: Duration::from_secs(24 * 60 * 60),
            clock_skew: Duration::from_secs(5 * 60),
            activation_failure_limit: 10,
            activation_window: Duration::from_secs(15 * 60),
            api_key_cache_ttl: Duration::from_secs(10),
            tenant_cache_ttl: Duration::from_secs(30),
            signature_failure_limit: 20,
            signature_window: Duration::from_secs(15 * 60),
            offline_code_key_file: None,
            offline_code_failure_limit: 5,
            offline_code_window: Duration::from_secs(60 * 60),
            max_message_size: 64 * 1024,
            max_streams_per_connection: 100,
            idle_connection_timeout: Duration::from_secs(5 * 60),
            watch_streams_per_tenant: 1000,
            watch_max_duration: Duration::from_secs(30 * 60),
            retention: Duration::from_secs(30 * 24 * 60 * 60),
            audit_retention: Duration::from_secs(400 * 24 * 60 * 60),
            push: PushConfig::default(),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            health_interval: Duration::from_secs(5),
            log_format: LogFormat::Text,
            oidc: OidcConfig::default(),
        }
    }
}

/// A configuration that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// A configuration as read, with what it takes to tell where each value
/// came from.
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// `MFA_*` variables that were ignored as not ours (names only; see
    /// [`environment`]), to be reported once logging is set up.
    pub ignored_variables: Vec<String>,
    figment: Figment,
}

impl Loaded {
    /// Logs the ignored `MFA_*` variables, if any, in one warning that names
    /// them (never their values).
    pub fn warn_ignored(&self) {
        if !self.ignored_variables.is_empty() {
            tracing::warn!(
                variables = %self.ignored_variables.join(", "),
                "ignoring MFA_* environment variables that are not configuration keys"
            );
        }
    }
}

impl Config {
    /// Reads defaults, then `file` if given, then `MFA_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let figment = figment.merge(environment::provider());
        let config = figment.extract().map_err(|e| ConfigError(Box::new(e)))?;
        Ok(Loaded {
            config,
            ignored_variables: environment::ignored_variables(),
            figment,
        })
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mfa.db").display()))
    }

    /// The database URL in effect, with any password hidden, for logs and messages.
    pub fn database_url_redacted(&self) -> String {
        crate::store::redacted_url(&self.database_url())
    }

    /// The database pool settings.
    pub fn pool_settings(&self) -> crate::store::PoolSettings {
        crate::store::PoolSettings {
            max_connections: self.database_max_connections,
            acquire_timeout: self.database_acquire_timeout,
            statement_timeout: self.database_query_timeout,
        }
    }

    /// The public URL in effect.
    pub fn public_url(&self) -> String {
        self.public_url_for(self.listen)
    }

    /// The public URL in effect for a listener bound to `addr`.
    pub fn public_url_for(&self, addr: SocketAddr) -> String {
        let scheme = if self.tls.enabled() { "https" } else { "http" };
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"))
    }

    /// The offline-code key file of `serve --dev` when none is configured.
    pub fn dev_offline_code_key_file(&self) -> PathBuf {
        self.data_dir.join("offline-code.key")
    }

    /// The server key path in effect.
    pub fn server_key_file(&self) -> PathBuf {
        self.server_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("server-identity.key"))
    }
}

#[cfg(test)]
// figment's Jail closures return figment::Error, whose size clippy flags.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("mfa.toml", "challenge_ttl = \"45s\"\nchallenge_limit = 3\n")?;
            jail.set_env("MFA_CHALLENGE_LIMIT", "4");
            let config = Config::load(Some(Path::new("mfa.toml")))
                .expect("loads")
                .config;
            assert_eq!(config.challenge_ttl, Duration::from_secs(45));
            assert_eq!(config.challenge_limit, 4);
            assert_eq!(config.enrollment_ttl, Config::default().enrollment_ttl);
            assert_eq!(config.database_url(), "sqlite://data/mfa.db");
            Ok(())
        });
    }

    #[test]
    fn push_sections_read_from_the_file_and_nested_environment_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mfa.toml",
                "[push.apns]\nkey_file = \"/etc/mfa/apns.p8\"\nkey_id = \"ABC123DEFG\"\n\
                 team_id = \"DEF123GHIJ\"\ntopic = \"com.example.app\"\nenvironment = \"sandbox\"\n",
            )?;
            jail.set_env("MFA_PUSH__TIMEOUT", "3s");
            jail.set_env("MFA_PUSH__APNS__TOPIC", "com.example.other");
            jail.set_env("MFA_PUSH__PROXY", "http://proxy.corp:3128");
            jail.set_env("MFA_PUSH__NO_PROXY", r#"["push.internal", "10.0.0.0/8"]"#);
            let config = Config::load(Some(Path::new("mfa.toml")))
                .expect("loads")
                .config;
            assert_eq!(config.push.proxy.as_deref(), Some("http://proxy.corp:3128"));
            assert_eq!(config.push.no_proxy, ["push.internal", "10.0.0.0/8"]);
            let apns = config.push.apns.expect("apns configured");
            assert_eq!(apns.topic, "com.example.other");
            assert_eq!(apns.origin(), "https://api.sandbox.push.apple.com");
            assert_eq!(config.push.timeout, Duration::from_secs(3));
            assert_eq!(config.push.fcm, None);
            Ok(())
        });
    }

    #[test]
    fn tls_and_limits_read_from_the_file_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mfa.toml",
                "listen = \"0.0.0.0:50051\"\nwatch_max_duration = \"5m\"\n\
                 [tls]\ncert_file = \"/etc/mfa/server.pem\"\nkey_file = \"/etc/mfa/server.key\"\n",
            )?;
            jail.set_env("MFA_TLS__REQUIRE_CLIENT_CERT", "true");
            jail.set_env("MFA_TLS__CLIENT_CA_FILE", "/etc/mfa/clients.pem");
            jail.set_env("MFA_IDLE_CONNECTION_TIMEOUT", "90s");
            jail.set_env("MFA_HTTP_LISTEN", "0.0.0.0:8443");
            let config = Config::load(Some(Path::new("mfa.toml")))
                .expect("loads")
                .config;
            assert!(config.tls.enabled() && config.tls.require_client_cert);
            assert_eq!(
                config.tls.client_ca_file.as_deref(),
                Some(Path::new("/etc/mfa/clients.pem"))
            );
            assert_eq!(config.public_url(), "https://0.0.0.0:50051");
            assert_eq!(config.watch_max_duration, Duration::from_secs(300));
            assert_eq!(config.idle_connection_timeout, Duration::from_secs(90));
            assert_eq!(config.http_listen, Some("0.0.0.0:8443".parse().unwrap()));
            assert_eq!(Config::default().http_listen, None);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("mfa.toml", "challenge_tll = \"45s\"\n")?;
            assert!(Config::load(Some(Path::new("mfa.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn foreign_mfa_variables_are_ignored_and_named_but_typos_in_sections_are_errors() {
        figment::Jail::expect_with(|jail| {
            // What Kubernetes adds for a Service named `mfa`, the SDK
            // example's key, and the configuration file's own variable.
            jail.set_env("MFA_PORT", "tcp://10.0.0.7:50051");
            jail.set_env("MFA_PORT_50051_TCP_ADDR", "10.0.0.7");
            jail.set_env("MFA_SERVICE_HOST", "10.0.0.7");
            jail.set_env("MFA_PORTAL_KEY", "mfak_not-a-real-key");
            jail.set_env("MFA_CONFIG", "/etc/mfa/mfa.toml");
            jail.set_env("MFA_CHALLENGE_LIMIT", "4");
            let loaded = Config::load(None).expect("loads");
            assert_eq!(loaded.config.challenge_limit, 4);
            assert_eq!(
                loaded.ignored_variables,
                [
                    "MFA_PORT",
                    "MFA_PORTAL_KEY",
                    "MFA_PORT_50051_TCP_ADDR",
                    "MFA_SERVICE_HOST"
                ]
            );
            jail.set_env("MFA_TLS__CERTFILE", "/etc/mfa/server.pem");
            let error = Config::load(None)
                .err()
                .expect("a typo below a known key")
                .to_string();
            assert!(error.contains("certfile"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn show_names_each_source_and_hides_the_database_and_proxy_passwords() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mfa.toml",
                "challenge_ttl = \"45s\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
            )?;
            jail.set_env(
                "MFA_DATABASE_URL",
                "postgres://mfa:s3cret@db.internal:5432/mfa",
            );
            jail.set_env("MFA_PUSH__TIMEOUT", "3s");
            jail.set_env(
                "MFA_PUSH__PROXY",
                "http://push:pr0xy-s3cret@proxy.corp:3128",
            );
            let loaded = Config::load(Some(Path::new("mfa.toml"))).expect("loads");
            let shown = loaded.show();
            let line = |key: &str| {
                shown
                    .lines()
                    .find(|line| line.starts_with(&format!("{key} = ")))
                    .unwrap_or_else(|| panic!("{key} in:\n{shown}"))
                    .to_owned()
            };
            assert!(line("challenge_ttl").contains("= \"45s\""), "{shown}");
            assert!(line("challenge_ttl").contains("# file "), "{shown}");
            assert!(
                line("trusted_proxies").contains("[\"10.0.0.0/8\"]"),
                "{shown}"
            );
            assert!(
                line("push.timeout").ends_with("# environment MFA_PUSH__TIMEOUT"),
                "{shown}"
            );
            assert!(line("listen").ends_with("# default"), "{shown}");
            assert!(
                line("database_url").contains("mfa:***@db.internal"),
                "{shown}"
            );
            assert!(
                line("push.proxy").contains("\"http://push:***@proxy.corp:3128\""),
                "{shown}"
            );
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("# public_url = (not set)"), "{shown}");
            Ok(())
        });
    }
}
