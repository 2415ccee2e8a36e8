//! FCM HTTP v1: an OAuth2 access token from the credentials found at set-up
//! ([`credentials`]: a service account key, user credentials or the metadata
//! server), cached until a minute before it expires, and high-priority data
//! messages to `/v1/projects/{project}/messages:send`.

mod credentials;

use super::{
    config::FcmConfig,
    retry_after,
    transport::{Connection, Transport},
    Message, Outcome, Provider, SetupError,
};
use crate::model::PushPlatform;
use async_trait::async_trait;
use bytes::Bytes;
use credentials::{Credentials, Kind};
use http::{Request, StatusCode};
use http_body_util::Full;

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

/// Delivers to Android devices.
pub struct Fcm {
    messages: Transport,
    send_path: String,
    /// The project billed for user credentials' requests
    /// (`x-goog-user-project`), which FCM requires of them.
    quota_project: Option<String>,
    oauth: Credentials,
}

impl Fcm {
    /// Finds the credentials (asking the metadata server, when it comes to
    /// that) and prepares the connections; fails with a clear message when
    /// none are found, a file is missing or malformed, or the project is
    /// not known. Logs where the credentials came from.
    pub async fn new(config: &FcmConfig, connection: Connection) -> Result<Self, SetupError> {
        let messages = Transport::new(
            config.origin(),
            config.ca_file.as_deref(),
            connection.clone(),
        )?;
        let oauth = Credentials::find(config, connection).await?;
        let project_id = match (&config.project_id, &oauth.kind) {
            (Some(project_id), _) => {
                if !is_project_id(project_id) {
                    return Err(SetupError(format!(
                        "push.fcm.project_id {project_id:?} is not a project id"
                    )));
                }
                project_id.clone()
            }
            (None, Kind::ServiceAccount { project_id }) => project_id.clone(),
            (None, _) => {
                return Err(SetupError(format!(
                    "push.fcm.project_id is required with credentials from {}: \
                     set it to the Firebase project of the app",
                    oauth.description
                )))
            }
        };
        let quota_project = match &oauth.kind {
            Kind::User { quota_project } => {
                Some(quota_project.clone().unwrap_or_else(|| project_id.clone()))
            }
            _ => None,
        };
        tracing::info!("push: FCM credentials from {}", oauth.description);
        Ok(Self {
            messages,
            send_path: format!("/v1/projects/{project_id}/messages:send"),
            quota_project,
            oauth,
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
                    "collapse_key": message.collapse_id(),
                },
            }
        });
        let mut request = self
            .messages
            .post(
                &self.send_path,
                Some(&format!("Bearer {access_token}")),
                "application/json",
            )
            .map_err(Outcome::transport)?;
        if let Some(project) = &self.quota_project {
            request = request.header("x-goog-user-project", project);
        }
        request
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

    /// A token grant.
    async fn check_credentials(&self) -> Result<(), String> {
        self.oauth.check().await
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

/// Letters, digits and hyphens, as Google's project ids are.
fn is_project_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
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
