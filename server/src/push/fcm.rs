//! FCM HTTP v1: an OAuth2 access token obtained with the service account's
//! RS256-signed JWT (the JWT-bearer grant at its `token_uri`), cached until a
//! minute before it expires, and high-priority data messages to
//! `/v1/projects/{project}/messages:send`.

use super::{
    config::FcmConfig,
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
use serde::Deserialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// An access token is replaced this long before Google says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// FCM error codes that mean the registration token will never work again.
/// (`INVALID_ARGUMENT` may be a malformed token, but as well a malformed
/// message of ours: it is a bad request, and the token is kept.)
const DEAD_TOKEN: &[&str] = &["UNREGISTERED"];
/// FCM error codes that mean our set-up is wrong, whatever the token: the
/// sender or project, the credentials, the APNs credentials in Firebase.
const MISCONFIGURED: &[&str] = &[
    "SENDER_ID_MISMATCH",
    "THIRD_PARTY_AUTH_ERROR",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "NOT_FOUND",
];

/// The fields of a service account key file that are used.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    private_key_id: String,
    private_key: String,
    client_email: String,
    token_uri: String,
}

/// Delivers to Android devices.
pub struct Fcm {
    messages: Transport,
    send_path: String,
    oauth: OAuth,
}

impl Fcm {
    /// Reads the service account and prepares both connections; fails with a
    /// clear message when the file is missing or malformed.
    pub fn new(config: &FcmConfig, connection: Connection) -> Result<Self, SetupError> {
        let path = config.service_account_file.display();
        let text = std::fs::read_to_string(&config.service_account_file)
            .map_err(|e| SetupError(format!("FCM service account file {path}: {e}")))?;
        let account: ServiceAccount = serde_json::from_str(&text).map_err(|e| {
            // serde's message names the missing field but never a value.
            SetupError(format!(
                "FCM service account file {path}: not a service account key ({e})"
            ))
        })?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(|_| {
            SetupError(format!(
                "FCM service account file {path}: private_key is not an RSA private key"
            ))
        })?;
        if account.project_id.is_empty()
            || !account
                .project_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(SetupError(format!(
                "FCM service account file {path}: project_id is not a project id"
            )));
        }
        let token_uri: http::Uri = account.token_uri.parse().map_err(|_| {
            SetupError(format!(
                "FCM service account file {path}: token_uri is not a URL"
            ))
        })?;
        let token_origin = format!(
            "{}://{}",
            token_uri.scheme_str().unwrap_or_default(),
            token_uri
                .authority()
                .map(|a| a.as_str())
                .unwrap_or_default()
        );
        let ca = config.ca_file.as_deref();
        Ok(Self {
            messages: Transport::new(config.origin(), ca, connection)?,
            send_path: format!("/v1/projects/{}/messages:send", account.project_id),
            oauth: OAuth {
                transport: Transport::new(&token_origin, ca, connection)?,
                token_path: token_uri.path().to_owned(),
                audience: account.token_uri,
                issuer: account.client_email,
                key_id: account.private_key_id,
                key,
                current: Mutex::new(None),
            },
        })
    }

    fn request(
        &self,
        message: &Message,
        access_token: &str,
    ) -> Result<Request<Full<Bytes>>, Outcome> {
        let remaining = ((message.expires_at - crate::domain::now_ms()).max(0) / 1000).max(1);
        let body = serde_json::json!({
            "message": {
                "token": message.token,
                "data": message.notice.to_fcm_data(),
                "android": {
                    "priority": "HIGH",
                    "ttl": format!("{remaining}s"),
                    "collapse_key": message.challenge_id,
                },
            }
        });
        self.messages
            .post(
                &self.send_path,
                Some(&format!("Bearer {access_token}")),
                "application/json",
            )
            .map_err(Outcome::transport)?
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| Outcome::failed(e.to_string()))
    }
}

#[async_trait]
impl Provider for Fcm {
    fn platform(&self) -> PushPlatform {
        PushPlatform::Fcm
    }

    async fn send(&self, message: &Message) -> Outcome {
        let mut renewed = false;
        loop {
            let access_token = match self.oauth.access_token().await {
                Ok(token) => token,
                Err(outcome) => return outcome,
            };
            let request = match self.request(message, &access_token) {
                Ok(request) => request,
                Err(outcome) => return outcome,
            };
            let reply = match self.messages.send(request).await {
                Ok(reply) => reply,
                Err(error) => return Outcome::transport(error),
            };
            let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            if reply.status == StatusCode::OK {
                return Outcome::Sent {
                    provider_message_id: body["name"].as_str().unwrap_or_default().to_owned(),
                };
            }
            let reason =
                error_code(&body).unwrap_or_else(|| format!("HTTP {}", reply.status.as_u16()));
            if DEAD_TOKEN.contains(&reason.as_str()) {
                return Outcome::TokenInvalid { reason };
            }
            if reply.status == StatusCode::UNAUTHORIZED && !renewed {
                // The access token was revoked or expired early: get another once.
                self.oauth.forget(&access_token).await;
                renewed = true;
                continue;
            }
            if matches!(
                reply.status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ) || MISCONFIGURED.contains(&reason.as_str())
            {
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

/// The FCM error code of an error answer: `details[].errorCode` of the
/// `FcmError` detail, else the canonical `error.status`.
fn error_code(body: &serde_json::Value) -> Option<String> {
    let error = &body["error"];
    error["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["errorCode"].as_str())
        .or_else(|| error["status"].as_str())
        .map(str::to_owned)
}

/// The OAuth2 access token, fetched once and shared until near its expiry.
struct OAuth {
    transport: Transport,
    token_path: String,
    audience: String,
    issuer: String,
    key_id: String,
    key: EncodingKey,
    /// Held across a fetch so that concurrent sends wait for one token.
    current: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    expires_in: u64,
}

impl OAuth {
    async fn access_token(&self) -> Result<String, Outcome> {
        let mut current = self.current.lock().await;
        if let Some((token, valid_until)) = &*current {
            if Instant::now() < *valid_until {
                return Ok(token.clone());
            }
        }
        let requested = Instant::now();
        let reply = self.fetch().await?;
        let lifetime = Duration::from_secs(reply.expires_in).saturating_sub(TOKEN_MARGIN);
        *current = Some((reply.access_token.clone(), requested + lifetime));
        Ok(reply.access_token)
    }

    /// Drops `token` if it is still the cached one.
    async fn forget(&self, token: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(t, _)| t == token) {
            *current = None;
        }
    }

    async fn fetch(&self) -> Result<TokenReply, Outcome> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let claims = serde_json::json!({
            "iss": self.issuer,
            "scope": SCOPE,
            "aud": self.audience,
            "iat": now,
            "exp": now + 3600,
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key_id.clone());
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Outcome::failed(format!("signing the OAuth assertion: {e}")))?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let request = self
            .transport
            .post(&self.token_path, None, "application/x-www-form-urlencoded")
            .map_err(Outcome::transport)?
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| Outcome::failed(e.to_string()))?;
        let reply = self
            .transport
            .send(request)
            .await
            .map_err(Outcome::transport)?;
        if reply.status.is_success() {
            return serde_json::from_slice(&reply.body).map_err(|_| {
                Outcome::failed("oauth: the token endpoint's answer has no access_token")
            });
        }
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let reason = format!(
            "oauth: {}",
            body["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP {}", reply.status.as_u16()))
        );
        Err(
            if reply.status.is_server_error() || reply.status == StatusCode::TOO_MANY_REQUESTS {
                Outcome::Retry {
                    reason,
                    after: retry_after(&reply.headers),
                }
            } else {
                // The service account is refused (a deleted key, a
                // disabled account): our set-up, not the device.
                Outcome::Misconfigured { reason }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_the_fcm_detail_first() {
        let unregistered = serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}
        ]}});
        assert_eq!(error_code(&unregistered).as_deref(), Some("UNREGISTERED"));
        let unavailable = serde_json::json!({"error": {"code": 503, "status": "UNAVAILABLE"}});
        assert_eq!(error_code(&unavailable).as_deref(), Some("UNAVAILABLE"));
        assert_eq!(error_code(&serde_json::json!("not an error")), None);
    }
}
