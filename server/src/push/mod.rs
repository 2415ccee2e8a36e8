//! Push delivery through Apple's and Google's services. Creating a challenge
//! hands each notification to the [`Dispatcher`] and returns; the dispatcher
//! sends in the background, retries what a provider refuses for now, records
//! each device's delivery state, and forgets push tokens the provider calls
//! dead. The pull path (`ListPendingChallenges`) works whatever happens here.

pub mod apns;
pub mod config;
mod dispatch;
pub mod fcm;
pub mod health;
pub mod proxy;
pub mod transport;

pub use dispatch::{Dispatcher, RetryPolicy};
pub use health::{BreakerSettings, PushHealth};

use crate::model::PushPlatform;
use async_trait::async_trait;
use http::HeaderMap;
use mfa_proto::push::PushNotice;
use std::time::Duration;
use transport::TransportError;

/// A provider could not be set up (bad credentials file, bad origin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// One notification for one device.
#[derive(Debug, Clone)]
pub struct Message {
    pub challenge_id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub device_id: String,
    pub platform: PushPlatform,
    /// The device's push token (a secret of sorts: never logged).
    pub token: String,
    pub notice: PushNotice,
    /// When the challenge was created and expires (ms since the epoch).
    pub created_at: i64,
    pub expires_at: i64,
}

impl Message {
    /// The notification's collapse id (APNs `apns-collapse-id`, FCM
    /// `collapse_key`): the account's sign-in slot on the phone, which is the
    /// device id (opaque, and one per user per phone), so that a newer
    /// challenge replaces the older notification on the lock screen and in
    /// the provider's store for an offline phone.
    pub fn collapse_id(&self) -> &str {
        &self.device_id
    }
}

/// What a provider made of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; the provider's id for the notification.
    Sent { provider_message_id: String },
    /// Refused for now (throttled, unavailable, no answer): try again,
    /// not before `after` when the provider said so.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The device's push token is dead (the app was removed, the token
    /// expired): it is forgotten.
    TokenInvalid { reason: String },
    /// The provider called the token malformed (APNs `BadDeviceToken`):
    /// dead, unless too many are, which points at our environment instead
    /// ([`health`]).
    TokenRejected { reason: String },
    /// Our set-up is wrong (topic, environment, sender, project,
    /// credentials): the token is not to blame and is kept; the provider is
    /// reported misconfigured.
    Misconfigured { reason: String },
    /// This request was refused for good; the token is kept.
    Failed { reason: String },
}

impl Outcome {
    /// Why it was not `Sent`, in words (empty for `Sent`).
    fn reason(&self) -> &str {
        match self {
            Self::Sent { .. } => "",
            Self::Retry { reason, .. }
            | Self::TokenInvalid { reason }
            | Self::TokenRejected { reason }
            | Self::Misconfigured { reason }
            | Self::Failed { reason } => reason,
        }
    }

    fn failed(reason: impl Into<String>) -> Self {
        Self::Failed {
            reason: reason.into(),
        }
    }

    /// No answer is worth another try, unless a proxy refused for good.
    fn transport(error: TransportError) -> Self {
        let reason = match error {
            TransportError::Refused(reason) => return Self::Misconfigured { reason },
            TransportError::Timeout => "timeout".into(),
            TransportError::Failed(why) => format!("connection: {why}"),
        };
        Self::Retry {
            reason,
            after: None,
        }
    }
}

/// A push service.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The platform it serves.
    fn platform(&self) -> PushPlatform;
    /// Makes one attempt at delivering `message`.
    async fn send(&self, message: &Message) -> Outcome;
    /// Checks the credentials without notifying anyone; `Err` says why they
    /// fail.
    async fn check_credentials(&self) -> Result<(), String>;
}

/// A `retry-after` header in seconds (the form both providers use).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// The providers the configuration asks for, sharing provider tokens
/// through `store`; a missing or malformed credentials file is an error that
/// names it, and so are FCM credentials that cannot be found (which may take
/// asking the metadata server) and a malformed proxy URL.
pub async fn providers(
    config: &config::PushConfig,
    store: std::sync::Arc<dyn crate::store::Store>,
) -> Result<Vec<std::sync::Arc<dyn Provider>>, SetupError> {
    let mut providers: Vec<std::sync::Arc<dyn Provider>> = Vec::new();
    if config.apns.is_none() && config.fcm.is_none() {
        return Ok(providers);
    }
    let connection = config.connection()?;
    if let Some(proxy) = connection.proxies.describe() {
        tracing::info!("push: through the proxy {proxy}");
    }
    if let Some(apns) = &config.apns {
        providers.push(std::sync::Arc::new(apns::Apns::new(
            apns,
            connection.clone(),
            store,
        )?));
    }
    if let Some(fcm) = &config.fcm {
        providers.push(std::sync::Arc::new(
            fcm::Fcm::new(fcm, connection.clone()).await?,
        ));
    }
    Ok(providers)
}
