//! APNs over HTTP/2 with token-based authentication: an ES256 provider token
//! signed with the team's `.p8` key, and the request headers Apple documents
//! for an alert.
//!
//! Apple refuses provider tokens whose `iat` is more than an hour old, and a
//! key whose tokens change more often than every 20 minutes
//! (`TooManyProviderTokenUpdates`). So the token lives in the database, shared
//! by every replica and kept across restarts ([`ProviderTokens`]): whoever
//! finds it missing or 50 minutes old signs a new one, and the others take
//! that one. Age is measured on the wall clock against `iat`, the way Apple
//! measures it, so that a clock corrected by a step is followed at once.

use super::{
    config::ApnsConfig,
    retry_after,
    transport::{Connection, Transport},
    Message, Outcome, Provider, SetupError,
};
use crate::{
    model::{ProviderToken, PushPlatform},
    store::Store,
};
use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

/// A provider token is replaced once it is this old (seconds since `iat`).
const TOKEN_REFRESH: i64 = 50 * 60;
/// How far in the future another server's `iat` may be (clocks differ a
/// little) before its token is taken for a wrong clock's and replaced.
const CLOCK_SKEW: i64 = 60;
/// Reasons that mean the device token will never work again.
const DEAD_TOKEN: &[&str] = &["Unregistered", "ExpiredToken"];
/// Reasons that mean our set-up is wrong, whatever the token: the topic
/// (bundle id), the environment, the key. The token is kept.
const MISCONFIGURED: &[&str] = &[
    "DeviceTokenNotForTopic",
    "BadTopic",
    "MissingTopic",
    "TopicDisallowed",
    "BadCertificate",
    "BadCertificateEnvironment",
    "InvalidProviderToken",
    "MissingProviderToken",
    "ExpiredProviderToken",
    "Forbidden",
];

/// Delivers to iOS devices.
pub struct Apns {
    transport: Transport,
    key_file: PathBuf,
    tokens: ProviderTokens,
    topic: String,
}

impl Apns {
    /// Reads the key and prepares the connection; fails with a clear message
    /// when the key file is missing or not an ES256 `.p8` key. Provider
    /// tokens are shared through `store`.
    pub fn new(
        config: &ApnsConfig,
        connection: Connection,
        store: Arc<dyn Store>,
    ) -> Result<Self, SetupError> {
        let key = read_key(&config.key_file)?;
        for (name, value) in [("key_id", &config.key_id), ("team_id", &config.team_id)] {
            if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(SetupError(format!(
                    "APNs {name} must be the 10-character id Apple shows"
                )));
            }
        }
        if config.topic.is_empty() {
            return Err(SetupError(
                "APNs topic (the app's bundle id) is empty".into(),
            ));
        }
        let tokens = ProviderTokens::new(key, &config.key_id, &config.team_id, store);
        tokens.sign(unix_now())?;
        Ok(Self {
            transport: Transport::new(config.origin(), config.ca_file.as_deref(), connection)?,
            tokens,
            key_file: config.key_file.clone(),
            topic: config.topic.clone(),
        })
    }

    fn request(&self, message: &Message, token: &str) -> Result<Request<Full<Bytes>>, Outcome> {
        let body = serde_json::to_vec(&message.notice.to_apns_payload())
            .map_err(|e| Outcome::failed(e.to_string()))?;
        let path = format!("/3/device/{}", message.token);
        self.transport
            .post(&path, Some(&format!("bearer {token}")), "application/json")
            .map_err(Outcome::transport)?
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-expiration", (message.expires_at / 1000).to_string())
            .header("apns-collapse-id", message.collapse_id())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Outcome::failed(e.to_string()))
    }
}

#[async_trait]
impl Provider for Apns {
    fn platform(&self) -> PushPlatform {
        PushPlatform::Apns
    }

    async fn send(&self, message: &Message) -> Outcome {
        // Device tokens are hex; anything else would change the request path.
        if message.token.is_empty() || !message.token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Outcome::TokenInvalid {
                reason: "BadDeviceToken".into(),
            };
        }
        let mut token = match self.tokens.current(unix_now()).await {
            Ok(token) => token,
            Err(e) => return Outcome::Misconfigured { reason: e.0 },
        };
        let mut renewed = false;
        loop {
            let request = match self.request(message, &token) {
                Ok(request) => request,
                Err(outcome) => return outcome,
            };
            let reply = match self.transport.send(request).await {
                Ok(reply) => reply,
                Err(error) => return Outcome::transport(error),
            };
            if reply.status == StatusCode::OK {
                let id = reply
                    .headers
                    .get("apns-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                return Outcome::Sent {
                    provider_message_id: id.to_owned(),
                };
            }
            let reason = serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("HTTP {}", reply.status.as_u16()));
            if reply.status == StatusCode::GONE || DEAD_TOKEN.contains(&reason.as_str()) {
                return Outcome::TokenInvalid { reason };
            }
            if reason == "BadDeviceToken" {
                return Outcome::TokenRejected { reason };
            }
            // Apple's clock, not ours, decides: a token it calls expired is
            // replaced and the notification sent again, once, whatever its
            // age here.
            if reason == "ExpiredProviderToken" && !renewed {
                renewed = true;
                token = match self.tokens.renew(&token, unix_now()).await {
                    Ok(token) => token,
                    Err(e) => return Outcome::Misconfigured { reason: e.0 },
                };
                continue;
            }
            if reply.status == StatusCode::FORBIDDEN || MISCONFIGURED.contains(&reason.as_str()) {
                return Outcome::Misconfigured { reason };
            }
            return match reply.status {
                StatusCode::TOO_MANY_REQUESTS
                | StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::SERVICE_UNAVAILABLE => Outcome::Retry {
                    reason,
                    after: retry_after(&reply.headers),
                },
                _ => Outcome::Failed { reason },
            };
        }
    }

    /// Apple offers no way to check a key without a notification: the key
    /// file is read again and must parse and sign (a deleted, truncated or
    /// replaced-by-something-else file fails here, not at a restart).
    async fn check_credentials(&self) -> Result<(), String> {
        let key = read_key(&self.key_file).map_err(|e| e.0)?;
        sign(&key, &self.tokens.key_id, &self.tokens.team_id, unix_now())
            .map(drop)
            .map_err(|e| e.0)
    }
}

/// The `.p8` key at `path`; fails with a clear message when the file is
/// missing or not an ES256 key.
fn read_key(path: &Path) -> Result<EncodingKey, SetupError> {
    let pem = std::fs::read(path)
        .map_err(|e| SetupError(format!("APNs key file {}: {e}", path.display())))?;
    EncodingKey::from_ec_pem(&pem).map_err(|_| {
        SetupError(format!(
            "APNs key file {}: not a PKCS#8 EC private key (the .p8 file from Apple)",
            path.display()
        ))
    })
}

/// A provider token issued at `now` (seconds since the epoch).
fn sign(key: &EncodingKey, key_id: &str, team_id: &str, now: i64) -> Result<String, SetupError> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key_id.to_owned());
    let claims = serde_json::json!({ "iss": team_id, "iat": now });
    jsonwebtoken::encode(&header, &claims, key)
        .map_err(|e| SetupError(format!("signing the APNs provider token: {e}")))
}

/// Seconds since the epoch on the wall clock, as `iat` counts them.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The ES256 provider token of one key, shared through the store: see the
/// module documentation.
struct ProviderTokens {
    key: EncodingKey,
    key_id: String,
    team_id: String,
    /// The token's name in the store: one per team and key.
    name: String,
    store: Arc<dyn Store>,
    /// The token in use; held across a renewal so that concurrent sends wait
    /// for one token rather than each making its own.
    current: tokio::sync::Mutex<Option<ProviderToken>>,
}

impl ProviderTokens {
    fn new(key: EncodingKey, key_id: &str, team_id: &str, store: Arc<dyn Store>) -> Self {
        Self {
            key,
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
            name: format!("apns:{team_id}:{key_id}"),
            store,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether `token` may still be sent at `now`: issued less than
    /// [`TOKEN_REFRESH`] ago and not in the future.
    fn fresh(token: &ProviderToken, now: i64) -> bool {
        token.issued_at <= now + CLOCK_SKEW && now - token.issued_at < TOKEN_REFRESH
    }

    /// The token to send at `now` (seconds since the epoch): the one in use
    /// while fresh, else the shared one if fresh, else a new one.
    async fn current(&self, now: i64) -> Result<String, SetupError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| Self::fresh(t, now)) {
            return Ok(token.token.clone());
        }
        let token = self.shared_or_new(None, now).await?;
        *current = Some(token.clone());
        Ok(token.token)
    }

    /// Replaces `rejected`, which Apple called expired: with the shared token
    /// if another server has renewed it already, else with a new one.
    async fn renew(&self, rejected: &str, now: i64) -> Result<String, SetupError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.token != rejected) {
            return Ok(token.token.clone());
        }
        let token = self.shared_or_new(Some(rejected), now).await?;
        *current = Some(token.clone());
        Ok(token.token)
    }

    /// The shared token unless it is stale or `rejected`; otherwise a new
    /// one, shared unless another server shared its own first (then that
    /// one). Without the database, the token is this server's own until the
    /// database answers again.
    async fn shared_or_new(
        &self,
        rejected: Option<&str>,
        now: i64,
    ) -> Result<ProviderToken, SetupError> {
        let shared = match self.store.provider_token(&self.name).await {
            Ok(shared) => shared,
            Err(error) => {
                tracing::warn!(%error, "could not read the shared APNs provider token; signing one");
                return self.sign(now);
            }
        };
        let usable = |t: &ProviderToken| Self::fresh(t, now) && Some(t.token.as_str()) != rejected;
        if let Some(token) = shared.as_ref().filter(|t| usable(t)) {
            return Ok(token.clone());
        }
        let token = self.sign(now)?;
        let replaces = shared.as_ref().map(|t| t.token.as_str());
        match self
            .store
            .replace_provider_token(&self.name, replaces, &token)
            .await
        {
            Ok(true) => {
                tracing::info!("signed a new APNs provider token");
                Ok(token)
            }
            Ok(false) => match self.store.provider_token(&self.name).await {
                Ok(Some(theirs)) if usable(&theirs) => Ok(theirs),
                _ => Ok(token),
            },
            Err(error) => {
                tracing::warn!(%error, "could not share the APNs provider token");
                Ok(token)
            }
        }
    }

    /// A new token issued at `now`.
    fn sign(&self, now: i64) -> Result<ProviderToken, SetupError> {
        Ok(ProviderToken {
            token: sign(&self.key, &self.key_id, &self.team_id, now)?,
            issued_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    /// Two servers' token keepers on one database.
    async fn replicas() -> (ProviderTokens, ProviderTokens, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("mfa.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let keeper = || {
            let key = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
            ProviderTokens::new(key, "KEYID12345", "TEAMID1234", store.clone())
        };
        (keeper(), keeper(), dir)
    }

    fn issued_at(token: &str) -> i64 {
        let claims = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                .unwrap(),
        )
        .unwrap();
        claims["iat"].as_i64().unwrap()
    }

    const START: i64 = 1_800_000_000;

    #[tokio::test]
    async fn replicas_share_one_token_and_renew_it_once_it_is_fifty_minutes_old() {
        let (one, other, _dir) = replicas().await;
        let first = one.current(START).await.unwrap();
        let header = jsonwebtoken::decode_header(&first).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEYID12345"));
        assert_eq!(issued_at(&first), START);
        assert_eq!(other.current(START + 10).await.unwrap(), first);
        assert_eq!(one.current(START + 49 * 60).await.unwrap(), first);

        let later = START + 51 * 60;
        let second = other.current(later).await.unwrap();
        assert_ne!(second, first);
        assert_eq!(issued_at(&second), later);
        assert_eq!(one.current(later + 1).await.unwrap(), second);
    }

    #[tokio::test]
    async fn a_stepped_wall_clock_renews_the_token_at_once() {
        let (one, _, _dir) = replicas().await;
        // Signed while the clock was two hours slow, then corrected.
        let slow = one.current(START - 2 * 3600).await.unwrap();
        let corrected = one.current(START).await.unwrap();
        assert_ne!(corrected, slow);
        assert_eq!(issued_at(&corrected), START);
        // And a clock that was fast: a token from the future is not kept.
        let (one, _, _dir) = replicas().await;
        let fast = one.current(START + 2 * 3600).await.unwrap();
        assert_ne!(one.current(START).await.unwrap(), fast);
    }

    #[tokio::test]
    async fn a_token_apple_calls_expired_is_renewed_once_whatever_its_age() {
        let (one, other, _dir) = replicas().await;
        let rejected = one.current(START).await.unwrap();
        let renewed = one.renew(&rejected, START + 5).await.unwrap();
        assert_ne!(renewed, rejected, "renewed although five seconds old");
        // The other replica, refused the same token, takes the renewed one
        // instead of signing a third.
        assert_eq!(other.current(START + 6).await.unwrap(), renewed);
        assert_eq!(other.renew(&rejected, START + 6).await.unwrap(), renewed);
    }
}
