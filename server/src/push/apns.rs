//! APNs over HTTP/2 with token-based authentication: an ES256 provider token
//! signed with the team's `.p8` key, reused until it is 50 minutes old (Apple
//! refuses tokens older than an hour, and refreshes more often than every 20
//! minutes), and the request headers Apple documents for an alert.

use super::{
    config::ApnsConfig,
    retry_after,
    transport::{Connection, Transport},
    Message, Outcome, Provider, SetupError,
};
use crate::model::PushPlatform;
use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::{
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// A provider token is replaced once it is this old.
const TOKEN_REFRESH: Duration = Duration::from_secs(50 * 60);
/// Apple refuses provider tokens refreshed more often than this.
const TOKEN_MIN_AGE: Duration = Duration::from_secs(20 * 60);
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
    tokens: ProviderTokens,
    topic: String,
}

impl Apns {
    /// Reads the key and prepares the connection; fails with a clear message
    /// when the key file is missing or not an ES256 `.p8` key.
    pub fn new(config: &ApnsConfig, connection: Connection) -> Result<Self, SetupError> {
        let pem = std::fs::read(&config.key_file)
            .map_err(|e| SetupError(format!("APNs key file {}: {e}", config.key_file.display())))?;
        let key = EncodingKey::from_ec_pem(&pem).map_err(|_| {
            SetupError(format!(
                "APNs key file {}: not a PKCS#8 EC private key (the .p8 file from Apple)",
                config.key_file.display()
            ))
        })?;
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
        let tokens = ProviderTokens::new(key, &config.key_id, &config.team_id);
        tokens.current(Instant::now())?;
        Ok(Self {
            transport: Transport::new(config.origin(), config.ca_file.as_deref(), connection)?,
            tokens,
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
            .header("apns-collapse-id", &message.challenge_id)
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
        let mut refreshed = false;
        loop {
            let token = match self.tokens.current(Instant::now()) {
                Ok(token) => token,
                Err(e) => return Outcome::Misconfigured { reason: e.0 },
            };
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
            if reason == "ExpiredProviderToken" && !refreshed && self.tokens.expire(Instant::now())
            {
                refreshed = true;
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
}

/// The ES256 provider token, signed when missing or old.
struct ProviderTokens {
    key: EncodingKey,
    key_id: String,
    team_id: String,
    current: Mutex<Option<(String, Instant)>>,
}

impl ProviderTokens {
    fn new(key: EncodingKey, key_id: &str, team_id: &str) -> Self {
        Self {
            key,
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
            current: Mutex::new(None),
        }
    }

    /// The token to use at `now`: the cached one while younger than
    /// [`TOKEN_REFRESH`], a new one otherwise.
    fn current(&self, now: Instant) -> Result<String, SetupError> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, issued)) = &*current {
            if now.saturating_duration_since(*issued) < TOKEN_REFRESH {
                return Ok(token.clone());
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let issued_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let claims = serde_json::json!({ "iss": self.team_id, "iat": issued_at });
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| SetupError(format!("signing the APNs provider token: {e}")))?;
        *current = Some((token.clone(), now));
        Ok(token)
    }

    /// Drops the cached token after Apple called it expired, unless it is too
    /// young to replace (then Apple would refuse the new one too: the clock
    /// is wrong). Returns whether a new one will be signed.
    fn expire(&self, now: Instant) -> bool {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match &*current {
            Some((_, issued)) if now.saturating_duration_since(*issued) < TOKEN_MIN_AGE => false,
            _ => {
                *current = None;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> ProviderTokens {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        ProviderTokens::new(key, "KEYID12345", "TEAMID1234")
    }

    #[test]
    fn the_provider_token_is_reused_then_refreshed_before_an_hour() {
        let tokens = tokens();
        let start = Instant::now();
        let first = tokens.current(start).unwrap();
        assert_eq!(
            tokens
                .current(start + Duration::from_secs(49 * 60))
                .unwrap(),
            first
        );
        let header = jsonwebtoken::decode_header(&first).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEYID12345"));
        // ECDSA signatures are randomised: a new token differs even within the second.
        let later = start + Duration::from_secs(51 * 60);
        let second = tokens.current(later).unwrap();
        assert_ne!(second, first);
        assert_eq!(
            tokens.current(later + Duration::from_secs(60)).unwrap(),
            second
        );
    }

    #[test]
    fn an_expired_token_is_replaced_only_when_apple_allows() {
        let tokens = tokens();
        let start = Instant::now();
        tokens.current(start).unwrap();
        assert!(
            !tokens.expire(start + Duration::from_secs(5 * 60)),
            "too young to replace"
        );
        assert!(tokens.expire(start + Duration::from_secs(21 * 60)));
    }
}
