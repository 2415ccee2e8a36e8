//! PostgreSQL over TLS: which `sslmode`, root certificates and client
//! certificate apply, checked before the first connection, and refusals told
//! in plain words.
//!
//! Each setting is taken from the first place that gives it: the
//! `[database_tls]` configuration keys, then the database URL's parameters,
//! then libpq's `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY`
//! variables (which sqlx reads too); `sslmode` defaults to `prefer`. The
//! result is applied to sqlx's options in full, so that what messages
//! describe is what sqlx does.

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::{fmt, path::PathBuf, sync::Arc};

/// TLS to PostgreSQL (`[database_tls]`; e.g. `MFA_DATABASE_TLS__MODE=verify-full`).
/// Each key set here overrides the database URL's parameter of the same
/// meaning; a key left unset leaves the URL's value (or libpq's `PGSSL*`
/// variable's) in effect. Files are PEM, read at every new connection, so
/// that renewed certificates apply without a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseTls {
    /// What the connection must be (`sslmode`).
    pub mode: Option<SslMode>,
    /// The CA certificates that sign the server's certificate
    /// (`sslrootcert`), trusted besides the system's trust store.
    pub root_cert_file: Option<PathBuf>,
    /// A client certificate to present (`sslcert`), for servers that
    /// authenticate clients by certificate; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (`sslkey`).
    pub key_file: Option<PathBuf>,
}

/// libpq's `sslmode`, as far as sqlx implements it (not `allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate;
    /// clear text otherwise.
    Prefer,
    /// TLS or no connection; the server's certificate is not checked.
    Require,
    /// TLS, with the server's certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, with the server's certificate signed by a trusted CA and
    /// naming the host connected to.
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 5] = [
        SslMode::Disable,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// Its name in URLs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Reads a value as sqlx does (any case); `given` names where it came
    /// from. `allow` is refused: sqlx would never try TLS under it.
    fn parse(value: &str, given: Origin) -> Result<Self, String> {
        let lower = value.to_ascii_lowercase();
        if lower == "allow" {
            return Err(format!(
                "PostgreSQL TLS: {} is not supported (the driver would never use TLS): \
                 use prefer or disable",
                given.setting(value)
            ));
        }
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == lower)
            .ok_or_else(|| {
                format!(
                    "PostgreSQL TLS: {} is not an sslmode: use disable, prefer, require, \
                     verify-ca or verify-full",
                    given.setting(&value.escape_default().to_string())
                )
            })
    }

    fn to_sqlx(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }

    /// Whether the server's certificate is checked against trusted CAs.
    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a setting was given, named as an operator would look for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A `[database_tls]` key.
    Config(&'static str),
    /// A URL parameter.
    Url(&'static str),
    /// A libpq environment variable.
    Env(&'static str),
    /// Nobody: the default.
    Default,
}

impl Origin {
    /// `value` as set here: `sslmode=require`, `database_tls.mode=require`,
    /// `PGSSLMODE=require`.
    fn setting(self, value: &str) -> String {
        match self {
            Origin::Default => format!("the default {value}"),
            given => format!("{given}={value}"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Config(key) => write!(f, "database_tls.{key}"),
            Origin::Url(parameter) => f.write_str(parameter),
            Origin::Env(variable) => f.write_str(variable),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// PEM input: a file, or the PEM itself (libpq's variables may hold it).
#[derive(Clone, PartialEq, Eq)]
enum Pem {
    File(PathBuf),
    Inline(String),
}

// By hand, so that a private key given inline never reaches a log.
impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(path) => f.debug_tuple("File").field(path).finish(),
            Pem::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

impl fmt::Display for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(path) => write!(f, "{}", path.display()),
            Pem::Inline(_) => f.write_str("the PEM given inline"),
        }
    }
}

/// A setting and where it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Given<T> {
    value: T,
    origin: Origin,
}

impl fmt::Display for Given<Pem> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.value, self.origin)
    }
}

/// The TLS settings in effect for one database.
#[derive(Debug, Clone)]
pub(super) struct Tls {
    mode: Given<SslMode>,
    root_cert: Option<Given<Pem>>,
    cert: Option<Given<Pem>>,
    key: Option<Given<Pem>>,
    /// The host that a certificate must name under verify-full.
    host: String,
    /// `host:port`, or the socket path, for messages.
    server: String,
}

/// One setting's three sources, in order of precedence.
struct Sources {
    config_key: &'static str,
    /// The URL parameter's names that sqlx accepts; the first is canonical.
    url_names: &'static [&'static str],
    env: &'static str,
}

const MODE: Sources = Sources {
    config_key: "mode",
    url_names: &["sslmode", "ssl-mode"],
    env: "PGSSLMODE",
};
const ROOT_CERT: Sources = Sources {
    config_key: "root_cert_file",
    url_names: &["sslrootcert", "ssl-root-cert", "ssl-ca"],
    env: "PGSSLROOTCERT",
};
const CERT: Sources = Sources {
    config_key: "cert_file",
    url_names: &["sslcert", "ssl-cert"],
    env: "PGSSLCERT",
};
const KEY: Sources = Sources {
    config_key: "key_file",
    url_names: &["sslkey", "ssl-key"],
    env: "PGSSLKEY",
};

impl Sources {
    /// The value this setting has in the URL (the last one given, as sqlx
    /// reads it) or else the environment, with its origin.
    fn url_or_env(&self, url: &url::Url) -> Option<(String, Origin)> {
        url.query_pairs()
            .filter(|(name, _)| self.url_names.contains(&name.as_ref()))
            .last()
            .map(|(_, value)| (value.into_owned(), Origin::Url(self.url_names[0])))
            .or_else(|| {
                std::env::var(self.env)
                    .ok()
                    .map(|value| (value, Origin::Env(self.env)))
            })
    }

    /// A PEM setting: the configured file, else the URL's (always a file),
    /// else the variable's (a file, or the PEM itself, as sqlx reads it).
    fn pem(&self, configured: Option<&PathBuf>, url: &url::Url) -> Option<Given<Pem>> {
        if let Some(path) = configured {
            return Some(Given {
                value: Pem::File(path.clone()),
                origin: Origin::Config(self.config_key),
            });
        }
        let (value, origin) = self.url_or_env(url)?;
        let trimmed = value.trim();
        let inline = matches!(origin, Origin::Env(_))
            && trimmed.starts_with("-----BEGIN")
            && trimmed.ends_with("-----");
        let value = if inline {
            Pem::Inline(value)
        } else {
            Pem::File(PathBuf::from(value))
        };
        Some(Given { value, origin })
    }
}

impl Tls {
    /// The settings in effect for `url` (already read into `options`) with
    /// `config`'s keys overriding it.
    pub(super) fn resolve(
        url: &str,
        config: &DatabaseTls,
        options: &PgConnectOptions,
    ) -> Result<Self, String> {
        // sqlx has read the same URL with the same parser, so this holds.
        let url = url::Url::parse(url)
            .map_err(|e| format!("PostgreSQL TLS: the database URL does not parse: {e}"))?;
        let mode = match config.mode {
            Some(mode) => Given {
                value: mode,
                origin: Origin::Config(MODE.config_key),
            },
            None => match MODE.url_or_env(&url) {
                Some((value, origin)) => Given {
                    value: SslMode::parse(&value, origin)?,
                    origin,
                },
                None => Given {
                    value: SslMode::Prefer,
                    origin: Origin::Default,
                },
            },
        };
        let server = match options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        Ok(Self {
            mode,
            root_cert: ROOT_CERT.pem(config.root_cert_file.as_ref(), &url),
            cert: CERT.pem(config.cert_file.as_ref(), &url),
            key: KEY.pem(config.key_file.as_ref(), &url),
            host: options.get_host().to_owned(),
            server,
        })
    }

    /// The sslmode in effect.
    pub(super) fn mode(&self) -> SslMode {
        self.mode.value
    }

    /// `options` with these settings, whichever sqlx had read.
    pub(super) fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        let mut options = options.ssl_mode(self.mode.value.to_sqlx());
        if let Some(root) = &self.root_cert {
            options = match &root.value {
                Pem::File(path) => options.ssl_root_cert(path),
                Pem::Inline(pem) => options.ssl_root_cert_from_pem(pem.clone().into_bytes()),
            };
        }
        if let Some(cert) = &self.cert {
            options = match &cert.value {
                Pem::File(path) => options.ssl_client_cert(path),
                Pem::Inline(pem) => options.ssl_client_cert_from_pem(pem),
            };
        }
        if let Some(key) = &self.key {
            options = match &key.value {
                Pem::File(path) => options.ssl_client_key(path),
                Pem::Inline(pem) => options.ssl_client_key_from_pem(pem),
            };
        }
        options
    }

    /// Checks, before connecting, that the files in use can be read and
    /// hold what they should, so that a mistake is named at start rather
    /// than by the driver's terser errors. Returns notes on settings that
    /// have no effect, to log.
    pub(super) async fn check(&self) -> Result<Vec<String>, String> {
        let mode = self.mode.value;
        let mut notes = Vec::new();
        if mode == SslMode::Disable {
            if self.root_cert.is_some() || self.cert.is_some() || self.key.is_some() {
                notes.push(
                    "PostgreSQL TLS: sslmode=disable, so the certificate settings are not used"
                        .to_owned(),
                );
            }
            return Ok(notes);
        }
        if let Some(root) = &self.root_cert {
            if mode.verifies() {
                let pem = read(root).await?;
                let mut store = rustls::RootCertStore::empty();
                for cert in certificates(&pem, root)? {
                    store.add(cert).map_err(|e| {
                        format!("PostgreSQL TLS: a certificate in {root} is unusable: {e}")
                    })?;
                }
            } else {
                notes.push(format!(
                    "PostgreSQL TLS: sslmode={mode} checks no certificate, so {root} is not \
                     used: use verify-full to check the server against it"
                ));
            }
        }
        match (&self.cert, &self.key) {
            (None, None) => {}
            (Some(cert), None) => {
                return Err(format!(
                    "PostgreSQL TLS: the client certificate {cert} needs its private key \
                     (sslkey or database_tls.key_file)"
                ))
            }
            (None, Some(key)) => {
                return Err(format!(
                    "PostgreSQL TLS: the client key {key} needs its certificate \
                     (sslcert or database_tls.cert_file)"
                ))
            }
            (Some(cert), Some(key)) => {
                let chain = certificates(&read(cert).await?, cert)?;
                let key_pem = read(key).await?;
                // The key's own parse error is not shown: it could quote the key.
                let private = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|_| format!("PostgreSQL TLS: {key} holds no PEM private key"))?;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .and_then(|builder| {
                        builder
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_client_auth_cert(chain, private)
                    })
                    .map_err(|e| {
                        format!(
                            "PostgreSQL TLS: the client certificate {cert} and key {key} \
                             cannot be used together: {e}"
                        )
                    })?;
            }
        }
        Ok(notes)
    }

    /// What went wrong, in plain words, when `error` is a TLS failure.
    pub(super) fn explain(&self, error: &sqlx::Error) -> Option<String> {
        let mode = self.mode.value;
        if let sqlx::Error::Tls(inner) = error {
            // sqlx's words when the server answers the TLS request with "no".
            if inner.to_string() == "server does not support TLS" {
                return Some(format!(
                    "PostgreSQL at {} does not offer TLS, and {} needs it",
                    self.server,
                    self.mode.origin.setting(mode.as_str())
                ));
            }
        }
        let cause = match error {
            // A failed handshake reaches sqlx as an I/O error around rustls's.
            sqlx::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
            sqlx::Error::Tls(inner) => inner.downcast_ref::<rustls::Error>()?,
            _ => return None,
        };
        let trusted = match &self.root_cert {
            Some(root) => format!("in {root} or in the system's trust store"),
            None => "in the system's trust store (no sslrootcert is given)".to_owned(),
        };
        use rustls::CertificateError as Cert;
        Some(match cause {
            rustls::Error::InvalidCertificate(Cert::UnknownIssuer) => {
                format!("PostgreSQL TLS: the server's certificate is not signed by a CA {trusted}")
            }
            rustls::Error::InvalidCertificate(
                Cert::NotValidForName | Cert::NotValidForNameContext { .. },
            ) => {
                let names = match cause {
                    rustls::Error::InvalidCertificate(Cert::NotValidForNameContext {
                        presented,
                        ..
                    }) if !presented.is_empty() => {
                        let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
                        format!(" (it names {})", names.join(", "))
                    }
                    _ => String::new(),
                };
                format!(
                    "PostgreSQL TLS: the server's certificate does not match host {}{names}; \
                     sslmode=verify-full checks the name, verify-ca does not",
                    self.host
                )
            }
            rustls::Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
                "PostgreSQL TLS: the server's certificate has expired".to_owned()
            }
            rustls::Error::InvalidCertificate(
                Cert::NotValidYet | Cert::NotValidYetContext { .. },
            ) => "PostgreSQL TLS: the server's certificate is not valid yet (check the clock)"
                .to_owned(),
            rustls::Error::InvalidCertificate(other) => {
                format!("PostgreSQL TLS: the server's certificate was refused: {other}")
            }
            rustls::Error::AlertReceived(alert) => format!(
                "PostgreSQL TLS: the server ended the handshake ({alert:?}); if it asks for a \
                 client certificate, give one it trusts (sslcert and sslkey)"
            ),
            other => format!("PostgreSQL TLS: {other}"),
        })
    }
}

/// A name as rustls reports it (`DnsName("db.internal")`,
/// `IpAddress(10.0.0.5)`), as an operator writes it.
fn plain_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|name| name.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|address| address.strip_suffix(')'))
        })
        .unwrap_or(presented)
}

/// The contents of a PEM input.
async fn read(pem: &Given<Pem>) -> Result<Vec<u8>, String> {
    match &pem.value {
        Pem::Inline(text) => Ok(text.clone().into_bytes()),
        Pem::File(path) => tokio::fs::read(path)
            .await
            .map_err(|e| format!("PostgreSQL TLS: cannot read {pem}: {e}")),
    }
}

/// The certificates in a PEM input: at least one.
fn certificates(pem: &[u8], given: &Given<Pem>) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("PostgreSQL TLS: {given} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("PostgreSQL TLS: {given} holds no PEM certificate"));
    }
    Ok(certs)
}

#[cfg(test)]
// figment's Jail closures return figment::Error, whose size clippy flags.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn resolve(url: &str, config: &DatabaseTls) -> Result<Tls, String> {
        let options = PgConnectOptions::from_str(url).expect("sqlx reads the URL");
        Tls::resolve(url, config, &options)
    }

    #[test]
    fn the_url_gives_what_the_configuration_leaves_unset() {
        let url = "postgres://u:secret@db.internal:6432/mfa?sslmode=verify-ca\
                   &sslrootcert=/url/ca.pem&sslcert=/url/client.pem&ssl-key=/url/client.key";
        let tls = resolve(url, &DatabaseTls::default()).unwrap();
        assert_eq!(tls.mode.value, SslMode::VerifyCa);
        assert_eq!(tls.mode.origin, Origin::Url("sslmode"));
        assert_eq!(
            tls.root_cert.as_ref().unwrap().to_string(),
            "/url/ca.pem (sslrootcert)"
        );
        assert_eq!(
            tls.key.as_ref().unwrap().to_string(),
            "/url/client.key (sslkey)"
        );
        assert_eq!(tls.server, "db.internal:6432");

        let config = DatabaseTls {
            mode: Some(SslMode::VerifyFull),
            root_cert_file: Some("/etc/mfa/ca.pem".into()),
            ..DatabaseTls::default()
        };
        let tls = resolve(url, &config).unwrap();
        assert_eq!(tls.mode.value, SslMode::VerifyFull);
        assert_eq!(
            tls.root_cert.as_ref().unwrap().to_string(),
            "/etc/mfa/ca.pem (database_tls.root_cert_file)"
        );
        assert_eq!(
            tls.cert.as_ref().unwrap().to_string(),
            "/url/client.pem (sslcert)"
        );
    }

    #[test]
    fn the_last_url_parameter_wins_as_in_sqlx() {
        let tls = resolve(
            "postgres://db/mfa?sslmode=require&ssl-mode=VERIFY-FULL",
            &DatabaseTls::default(),
        )
        .unwrap();
        assert_eq!(tls.mode.value, SslMode::VerifyFull);
    }

    #[test]
    fn names_read_as_written() {
        assert_eq!(plain_name("DnsName(\"db.internal\")"), "db.internal");
        assert_eq!(plain_name("IpAddress(10.0.0.5)"), "10.0.0.5");
        assert_eq!(plain_name("something else"), "something else");
    }

    #[test]
    fn allow_is_refused_with_the_reason() {
        let error = resolve("postgres://db/mfa?sslmode=allow", &DatabaseTls::default())
            .err()
            .unwrap();
        assert!(error.contains("sslmode=allow is not supported"), "{error}");
    }

    #[test]
    fn the_mode_is_read_from_the_file_and_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mfa.toml",
                "[database_tls]\nroot_cert_file = \"/etc/mfa/pg-ca.pem\"\n",
            )?;
            jail.set_env("MFA_DATABASE_TLS__MODE", "verify-full");
            let config = crate::config::Config::load(Some(std::path::Path::new("mfa.toml")))
                .expect("loads")
                .config;
            assert_eq!(config.database_tls.mode, Some(SslMode::VerifyFull));
            assert_eq!(
                config.database_tls.root_cert_file.as_deref(),
                Some(std::path::Path::new("/etc/mfa/pg-ca.pem"))
            );
            jail.set_env("MFA_DATABASE_TLS__MODE", "allow");
            assert!(crate::config::Config::load(None).is_err());
            Ok(())
        });
    }

    #[tokio::test]
    async fn missing_files_and_lone_keys_are_named() {
        let tls = resolve(
            "postgres://db/mfa?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            &DatabaseTls::default(),
        )
        .unwrap();
        let error = tls.check().await.unwrap_err();
        assert!(
            error.starts_with("PostgreSQL TLS: cannot read /nonexistent/ca.pem (sslrootcert): "),
            "{error}"
        );

        let tls = resolve(
            "postgres://db/mfa?sslmode=require&sslcert=/etc/client.pem",
            &DatabaseTls::default(),
        )
        .unwrap();
        let error = tls.check().await.unwrap_err();
        assert!(error.contains("needs its private key"), "{error}");

        let tls = resolve(
            "postgres://db/mfa?sslmode=require&sslrootcert=/etc/ca.pem",
            &DatabaseTls::default(),
        )
        .unwrap();
        let notes = tls.check().await.unwrap();
        assert!(notes[0].contains("is not used"), "{notes:?}");
    }
}
