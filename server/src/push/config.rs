//! Push configuration: the providers' credentials (as files, never inline),
//! their origins and trust roots, the forward proxy, and the dispatcher's
//! limits.

use super::{
    proxy::{Proxies, ProxyEnvironment},
    transport::{Connection, Trust},
    SetupError,
};
use serde::{Deserialize, Serialize};
use std::{path::PathBuf, time::Duration};

/// The `[push]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Apple Push Notification service; unset: iOS devices use the pull path.
    pub apns: Option<ApnsConfig>,
    /// Firebase Cloud Messaging; unset: Android devices use the pull path.
    pub fcm: Option<FcmConfig>,
    /// The forward proxy to the providers and the OAuth token endpoints
    /// (HTTP CONNECT): `http://[USER:PASSWORD@]HOST:PORT`. Unset: the
    /// environment's `HTTPS_PROXY` (or `https_proxy`) and `NO_PROXY` (or
    /// `no_proxy`), if set; `""`: none, whatever the environment says.
    pub proxy: Option<String>,
    /// Origins reached directly although there is a proxy: host names (each
    /// with its subdomains; a leading dot is the same), IP addresses, CIDR
    /// networks, or `*` for all; with the environment's proxy, in addition
    /// to its `NO_PROXY`.
    pub no_proxy: Vec<String>,
    /// Longest wait for one provider request (connection included); a
    /// request that takes longer drops its connection.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How often an HTTP/2 PING checks each provider connection, idle or
    /// busy; `0s` never.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before its connection is closed
    /// (the next request opens a fresh one).
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Attempts per notification, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one, with jitter.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts (a provider's `retry-after` excepted).
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Notifications waiting per provider before new ones are refused.
    pub queue_size: usize,
    /// Requests in flight per provider.
    pub concurrency: usize,
    /// How far back APNs answers count when telling dead tokens from a
    /// wrong environment (see `bad_token_threshold`).
    #[serde(with = "humantime_serde")]
    pub bad_token_window: Duration,
    /// Answers needed within `bad_token_window` before a token is forgotten
    /// for `BadDeviceToken`; until then such tokens are kept.
    pub bad_token_min_answers: usize,
    /// Share of `BadDeviceToken` among the answers within the window (0 to 1)
    /// past which tokens are no longer forgotten for it and the provider is
    /// reported misconfigured.
    pub bad_token_threshold: f64,
    /// How often each provider's credentials are checked without sending a
    /// notification (FCM: a token grant; APNs: the key file parses and
    /// signs), the first time at start; `0s` never.
    #[serde(with = "humantime_serde")]
    pub credentials_check_interval: Duration,
    /// The proxy variables, instead of this process's own (read once, at
    /// set-up). Not a setting: servers started inside one test process
    /// share its environment, so tests say here what each one would see.
    #[serde(skip)]
    pub proxy_environment: Option<ProxyEnvironment>,
}

impl PushConfig {
    /// How the provider connections are made: their proxy and timeouts. A
    /// malformed proxy URL is an error that names its setting.
    pub fn connection(&self) -> Result<Connection, SetupError> {
        let environment = self
            .proxy_environment
            .clone()
            .unwrap_or_else(ProxyEnvironment::from_process);
        Ok(Connection {
            timeout: self.timeout,
            keepalive_interval: (!self.keepalive_interval.is_zero())
                .then_some(self.keepalive_interval),
            keepalive_timeout: self.keepalive_timeout,
            proxies: Proxies::new(self.proxy.as_deref(), &self.no_proxy, &environment)?,
        })
    }

    /// The breaker settings of [`crate::push::PushHealth`].
    pub fn breaker(&self) -> super::BreakerSettings {
        super::BreakerSettings {
            window: self.bad_token_window,
            min_answers: self.bad_token_min_answers,
            threshold: self.bad_token_threshold,
        }
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            apns: None,
            fcm: None,
            proxy: None,
            no_proxy: Vec::new(),
            timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(5),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(15),
            queue_size: 10_000,
            concurrency: 64,
            bad_token_window: Duration::from_secs(10 * 60),
            bad_token_min_answers: 20,
            bad_token_threshold: 0.5,
            credentials_check_interval: Duration::from_secs(10 * 60),
            proxy_environment: None,
        }
    }
}

/// Which of Apple's APNs origins to use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApnsEnvironment {
    /// `https://api.push.apple.com` (App Store and TestFlight builds).
    #[default]
    Production,
    /// `https://api.sandbox.push.apple.com` (development builds).
    Sandbox,
}

/// APNs with token-based authentication.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApnsConfig {
    /// The `.p8` signing key downloaded from Apple.
    pub key_file: PathBuf,
    /// The key's 10-character id.
    pub key_id: String,
    /// The developer team's 10-character id.
    pub team_id: String,
    /// The app's bundle id (the `apns-topic`).
    pub topic: String,
    /// Production or sandbox origin.
    #[serde(default)]
    pub environment: ApnsEnvironment,
    /// Another origin (a proxy, or a test stand-in); `http://` only on loopback.
    #[serde(default)]
    pub origin: Option<String>,
    /// PEM file of the certificate authorities to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl ApnsConfig {
    /// The origin in effect.
    pub fn origin(&self) -> &str {
        match (&self.origin, self.environment) {
            (Some(origin), _) => origin,
            (None, ApnsEnvironment::Production) => "https://api.push.apple.com",
            (None, ApnsEnvironment::Sandbox) => "https://api.sandbox.push.apple.com",
        }
    }
}

/// FCM HTTP v1, with credentials as Google Cloud workloads have them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FcmConfig {
    /// Which credentials to use: by default the first found, in the order
    /// of [`FcmCredentials::Auto`].
    pub credentials: FcmCredentials,
    /// A service account's JSON key file (Firebase console → Project
    /// settings → Service accounts → Generate new private key).
    pub service_account_file: Option<PathBuf>,
    /// The Firebase project of the app (which may differ from the project
    /// the server runs in). Required unless the credentials are a service
    /// account key, whose `project_id` is the default.
    pub project_id: Option<String>,
    /// Another messaging origin (a proxy, or a test stand-in); `http://` only
    /// on loopback. A service account's token endpoint is its key file's
    /// `token_uri`.
    pub origin: Option<String>,
    /// Another origin for the refresh-token grant of user credentials
    /// (`authorized_user`) than `https://oauth2.googleapis.com` (a proxy, or
    /// a test stand-in); `http://` only on loopback.
    pub oauth_origin: Option<String>,
    /// Another origin for the metadata server than
    /// `http://metadata.google.internal`: `http://169.254.169.254`, or a
    /// loopback address (a test stand-in).
    pub metadata_origin: Option<String>,
    /// PEM file of the certificate authorities to trust instead of the
    /// system's for the messaging origin. Unless `token_ca_file` is set, the
    /// token endpoints trust them too, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the certificate authorities to trust instead of the
    /// system's for the OAuth token endpoints (a key's `token_uri`,
    /// `oauth_origin`).
    pub token_ca_file: Option<PathBuf>,
    /// The variables that locate Application Default Credentials, instead of
    /// this process's own (read once, at set-up). Not a setting: servers
    /// started inside one test process share its environment, so tests say
    /// here what each one would see.
    #[serde(skip)]
    pub environment: Option<GoogleEnvironment>,
}

impl FcmConfig {
    /// The messaging origin in effect.
    pub fn origin(&self) -> &str {
        self.origin
            .as_deref()
            .unwrap_or("https://fcm.googleapis.com")
    }

    /// The origin of the refresh-token grant in effect.
    pub fn oauth_origin(&self) -> &str {
        self.oauth_origin
            .as_deref()
            .unwrap_or("https://oauth2.googleapis.com")
    }

    /// The metadata server's origin in effect.
    pub fn metadata_origin(&self) -> &str {
        self.metadata_origin
            .as_deref()
            .unwrap_or("http://metadata.google.internal")
    }

    /// What the OAuth token endpoints' certificates must chain to:
    /// `token_ca_file` alone; else the system's roots, with `ca_file`'s
    /// beside them (as configurations written before `token_ca_file` meant
    /// `ca_file` for both).
    pub fn token_trust(&self) -> Trust<'_> {
        match (&self.token_ca_file, &self.ca_file) {
            (Some(token), _) => Trust::Only(token),
            (None, Some(messages)) => Trust::SystemAnd(messages),
            (None, None) => Trust::System,
        }
    }
}

/// Where FCM's OAuth2 access tokens come from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FcmCredentials {
    /// The first found of: `service_account_file`; the file named by
    /// `GOOGLE_APPLICATION_CREDENTIALS`; gcloud's user credentials file;
    /// the metadata server (probed at start).
    #[default]
    Auto,
    /// The key file in `service_account_file`.
    ServiceAccount,
    /// Application Default Credentials from a file: the one named by
    /// `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's user credentials.
    ApplicationDefault,
    /// The metadata server of Compute Engine, GKE (workload identity) or
    /// Cloud Run, without probing it first.
    MetadataServer,
}

/// The environment variables through which Google's client libraries find
/// Application Default Credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoogleEnvironment {
    /// `GOOGLE_APPLICATION_CREDENTIALS`: a credentials file (a service
    /// account key or user credentials).
    pub application_credentials: Option<PathBuf>,
    /// `CLOUDSDK_CONFIG`: gcloud's configuration directory, instead of
    /// `$HOME/.config/gcloud`.
    pub cloudsdk_config: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
}

impl GoogleEnvironment {
    /// This process's variables (an empty one counts as unset).
    pub fn from_process() -> Self {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        Self {
            application_credentials: var("GOOGLE_APPLICATION_CREDENTIALS"),
            cloudsdk_config: var("CLOUDSDK_CONFIG"),
            home: var("HOME"),
        }
    }

    /// Where gcloud keeps the user credentials that
    /// `gcloud auth application-default login` writes, if either variable
    /// says.
    pub fn gcloud_credentials_file(&self) -> Option<PathBuf> {
        let directory = match (&self.cloudsdk_config, &self.home) {
            (Some(config), _) => config.clone(),
            (None, Some(home)) => home.join(".config").join("gcloud"),
            (None, None) => return None,
        };
        Some(directory.join("application_default_credentials.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn fcm_needs_no_key_file_and_names_its_credentials_in_kebab_case() {
        let config: FcmConfig = from_json(
            r#"{"project_id": "my-app", "credentials": "metadata-server",
                "metadata_origin": "http://169.254.169.254"}"#,
        );
        assert_eq!(config.credentials, FcmCredentials::MetadataServer);
        assert_eq!(config.service_account_file, None);
        assert_eq!(config.metadata_origin(), "http://169.254.169.254");
        assert_eq!(config.oauth_origin(), "https://oauth2.googleapis.com");
        let config: FcmConfig = from_json("{}");
        assert_eq!(config.credentials, FcmCredentials::Auto);
        assert_eq!(config.metadata_origin(), "http://metadata.google.internal");
        for (name, credentials) in [
            ("auto", FcmCredentials::Auto),
            ("service-account", FcmCredentials::ServiceAccount),
            ("application-default", FcmCredentials::ApplicationDefault),
            ("metadata-server", FcmCredentials::MetadataServer),
        ] {
            let config: FcmConfig = from_json(&format!(r#"{{"credentials": "{name}"}}"#));
            assert_eq!(config.credentials, credentials);
        }
    }

    #[test]
    fn the_token_endpoints_trust_their_own_ca_file_else_the_system_and_ca_file() {
        let config: FcmConfig = from_json("{}");
        assert_eq!(config.token_trust(), Trust::System);
        let config: FcmConfig = from_json(r#"{"ca_file": "/etc/mfa/fcm-ca.pem"}"#);
        assert_eq!(
            config.token_trust(),
            Trust::SystemAnd(Path::new("/etc/mfa/fcm-ca.pem"))
        );
        let config: FcmConfig = from_json(
            r#"{"ca_file": "/etc/mfa/fcm-ca.pem", "token_ca_file": "/etc/mfa/oauth-ca.pem"}"#,
        );
        assert_eq!(
            config.token_trust(),
            Trust::Only(Path::new("/etc/mfa/oauth-ca.pem"))
        );
    }

    fn from_json(json: &str) -> FcmConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn gcloud_credentials_are_under_cloudsdk_config_else_home() {
        let mut environment = GoogleEnvironment {
            home: Some("/home/op".into()),
            ..GoogleEnvironment::default()
        };
        assert_eq!(
            environment.gcloud_credentials_file(),
            Some("/home/op/.config/gcloud/application_default_credentials.json".into())
        );
        environment.cloudsdk_config = Some("/etc/gcloud".into());
        assert_eq!(
            environment.gcloud_credentials_file(),
            Some("/etc/gcloud/application_default_credentials.json".into())
        );
        assert_eq!(GoogleEnvironment::default().gcloud_credentials_file(), None);
    }
}
