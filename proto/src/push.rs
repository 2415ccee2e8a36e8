//! The push notification payload. Pushes cross Apple's and Google's servers,
//! so they carry only what the app needs to fetch the challenge over the
//! authenticated device channel: no number, no e-mail, no address.

use serde::{Deserialize, Serialize};

/// Version of the payload format.
pub const PAYLOAD_VERSION: &str = "1";

/// What a push tells the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushNotice {
    /// Payload format version (`"1"`).
    pub mfa_v: String,
    /// The challenge to fetch with ListPendingChallenges.
    pub challenge_id: String,
    /// The tenant the challenge belongs to.
    pub tenant_id: String,
    /// The tenant's display name, for the notification text.
    pub tenant_display_name: String,
}

/// Why a push payload was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPayloadError(String);

impl std::fmt::Display for PushPayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "push payload not understood: {}", self.0)
    }
}

impl std::error::Error for PushPayloadError {}

impl PushNotice {
    /// A notice for a challenge.
    pub fn new(challenge_id: &str, tenant_id: &str, tenant_display_name: &str) -> Self {
        Self {
            mfa_v: PAYLOAD_VERSION.to_owned(),
            challenge_id: challenge_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            tenant_display_name: tenant_display_name.to_owned(),
        }
    }

    /// The FCM data message (every value a string, as FCM requires).
    pub fn to_fcm_data(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("plain strings serialise")
    }

    /// The APNs payload: an actionable alert plus the notice under `mfa`.
    pub fn to_apns_payload(&self) -> serde_json::Value {
        serde_json::json!({
            "aps": {
                "alert": {
                    "title": "Approve sign-in?",
                    "body": self.tenant_display_name,
                },
                "sound": "default",
                "mutable-content": 1,
                "category": "MFA_CHALLENGE",
            },
            "mfa": self,
        })
    }

    /// Parses either payload shape (APNs `userInfo` or FCM data).
    pub fn parse(json: &str) -> Result<Self, PushPayloadError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| PushPayloadError(e.to_string()))?;
        let notice = value.get("mfa").unwrap_or(&value).clone();
        let notice: Self =
            serde_json::from_value(notice).map_err(|e| PushPayloadError(e.to_string()))?;
        if notice.mfa_v != PAYLOAD_VERSION {
            return Err(PushPayloadError(format!(
                "unsupported version {:?}",
                notice.mfa_v
            )));
        }
        Ok(notice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_parse_back() {
        let notice = PushNotice::new("c", "t", "Example (External)");
        assert_eq!(
            PushNotice::parse(&notice.to_fcm_data().to_string()),
            Ok(notice.clone())
        );
        assert_eq!(
            PushNotice::parse(&notice.to_apns_payload().to_string()),
            Ok(notice)
        );
    }

    #[test]
    fn garbage_and_other_versions_are_errors() {
        assert!(PushNotice::parse("{").is_err());
        assert!(PushNotice::parse(r#"{"challenge_id":"c"}"#).is_err());
        let v2 = r#"{"mfa_v":"2","challenge_id":"c","tenant_id":"t","tenant_display_name":"x"}"#;
        assert!(PushNotice::parse(v2).is_err());
    }
}
