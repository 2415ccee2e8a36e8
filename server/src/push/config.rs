//! Push configuration: the providers' credentials (as files, never inline),
//! their origins and trust roots, and the dispatcher's limits.

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
}

impl PushConfig {
    /// The provider connections' timeouts.
    pub fn connection(&self) -> super::transport::Connection {
        super::transport::Connection {
            timeout: self.timeout,
            keepalive_interval: (!self.keepalive_interval.is_zero())
                .then_some(self.keepalive_interval),
            keepalive_timeout: self.keepalive_timeout,
        }
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

/// FCM HTTP v1 with a service account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// The service account's JSON key file (Firebase console → Project
    /// settings → Service accounts → Generate new private key).
    pub service_account_file: PathBuf,
    /// Another messaging origin (a proxy, or a test stand-in); `http://` only
    /// on loopback. The token endpoint is the key file's `token_uri`.
    #[serde(default)]
    pub origin: Option<String>,
    /// PEM file of the certificate authorities to trust instead of the
    /// system's (for both the messaging origin and the token endpoint).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl FcmConfig {
    /// The origin in effect.
    pub fn origin(&self) -> &str {
        self.origin
            .as_deref()
            .unwrap_or("https://fcm.googleapis.com")
    }
}
