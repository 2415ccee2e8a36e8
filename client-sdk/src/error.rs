//! The crate's one error type, and the server's machine-readable reasons.

use mfa_proto::{enrollment::EnrollmentUriError, push::PushPayloadError};

/// The values the server puts in the `mfa-reason` response metadata, so that
/// an app can react to a refusal without parsing the message.
pub mod reason {
    /// Metadata key that carries the reason.
    pub const METADATA_KEY: &str = "mfa-reason";

    /// The activation code expired before the device used it.
    pub const ACTIVATION_CODE_EXPIRED: &str = "ACTIVATION_CODE_EXPIRED";
    /// The activation code was already used by a device.
    pub const ACTIVATION_CODE_USED: &str = "ACTIVATION_CODE_USED";
    /// No such activation code exists.
    pub const ACTIVATION_CODE_UNKNOWN: &str = "ACTIVATION_CODE_UNKNOWN";
    /// The device was revoked and can no longer call the service.
    pub const DEVICE_REVOKED: &str = "DEVICE_REVOKED";
    /// The user is blocked after a fraud report.
    pub const USER_BLOCKED: &str = "USER_BLOCKED";
    /// The challenge expired before it was answered.
    pub const CHALLENGE_EXPIRED: &str = "CHALLENGE_EXPIRED";
    /// The challenge already ended (answered, superseded or cancelled).
    pub const CHALLENGE_ENDED: &str = "CHALLENGE_ENDED";
    /// The user has no active device to send a challenge to.
    pub const NO_ACTIVE_DEVICE: &str = "NO_ACTIVE_DEVICE";
    /// Too many requests; try again later.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The signed request was already used once.
    pub const REPLAYED_REQUEST: &str = "REPLAYED_REQUEST";
    /// The tenant has as many open watch streams as the server allows.
    pub const TOO_MANY_WATCHES: &str = "TOO_MANY_WATCHES";
}

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The QR code or the typed activation code and server URL are not valid.
    #[error("this enrollment code cannot be used: {0}")]
    InvalidEnrollment(#[from] EnrollmentUriError),

    /// The server could not be reached, or its URL is not usable.
    #[error("could not connect to the MFA server: {0}")]
    Transport(#[from] tonic::transport::Error),

    /// The server did not prove it is the server the account belongs to: its
    /// key differs from the one in the QR code, or a challenge's signature
    /// does not verify. Nothing from such a response is shown or saved.
    #[error(
        "the MFA server's identity could not be verified (its key or signature does not match); \
         nothing it sent was shown or saved"
    )]
    BadServerSignature,

    /// The server answered with something this SDK does not understand.
    #[error("the MFA server sent an unexpected response: {0}")]
    Protocol(&'static str),

    /// The saved account could not be read, written or deleted.
    #[error("the saved MFA account could not be read or written: {0}")]
    Storage(#[from] std::io::Error),

    /// A push notification's payload is not one this SDK understands.
    #[error(transparent)]
    PushPayload(#[from] PushPayloadError),

    /// The portal API key contains characters that cannot be sent in a header.
    #[error("the portal API key must be printable ASCII without line breaks")]
    InvalidApiKey,

    /// The server refused the request.
    #[error("{}", describe_rejection(*.code, .message))]
    Rejected {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's machine-readable reason (see [`reason`]), when it gave one.
        reason: Option<String>,
        /// The server's message.
        message: String,
    },
}

fn describe_rejection(code: tonic::Code, message: &str) -> String {
    if message.is_empty() {
        format!("the MFA server refused the request: {code}")
    } else {
        format!("the MFA server refused the request: {message}")
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let reason = status
            .metadata()
            .get(reason::METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Self::Rejected {
            code: status.code(),
            reason,
            message: status.message().to_owned(),
        }
    }
}

impl Error {
    /// The server's machine-readable reason (one of the [`reason`] values),
    /// when the server refused the request and gave one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Rejected { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }

    /// The gRPC status code, when the server refused the request.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn has_reason(&self, expected: &str) -> bool {
        self.reason() == Some(expected)
    }

    /// The activation code expired: the portal must start a new enrollment.
    pub fn is_activation_code_expired(&self) -> bool {
        self.has_reason(reason::ACTIVATION_CODE_EXPIRED)
    }

    /// The activation code was already used.
    pub fn is_activation_code_used(&self) -> bool {
        self.has_reason(reason::ACTIVATION_CODE_USED)
    }

    /// No such activation code exists (often a typing mistake).
    pub fn is_activation_code_unknown(&self) -> bool {
        self.has_reason(reason::ACTIVATION_CODE_UNKNOWN)
    }

    /// The device was revoked: the app should remove the account.
    pub fn is_device_revoked(&self) -> bool {
        self.has_reason(reason::DEVICE_REVOKED)
    }

    /// The user is blocked after a fraud report.
    pub fn is_user_blocked(&self) -> bool {
        self.has_reason(reason::USER_BLOCKED)
    }

    /// The challenge expired before it was answered.
    pub fn is_challenge_expired(&self) -> bool {
        self.has_reason(reason::CHALLENGE_EXPIRED)
    }

    /// The challenge already ended (answered, superseded or cancelled).
    pub fn is_challenge_ended(&self) -> bool {
        self.has_reason(reason::CHALLENGE_ENDED)
    }

    /// The user has no active device.
    pub fn is_no_active_device(&self) -> bool {
        self.has_reason(reason::NO_ACTIVE_DEVICE)
    }

    /// Too many requests; try again later.
    pub fn is_rate_limited(&self) -> bool {
        self.has_reason(reason::RATE_LIMITED)
    }

    /// The server had already seen this signed request.
    pub fn is_replayed_request(&self) -> bool {
        self.has_reason(reason::REPLAYED_REQUEST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_becomes_rejected_with_its_reason() {
        let mut status = tonic::Status::failed_precondition("the activation code has expired");
        status.metadata_mut().insert(
            reason::METADATA_KEY,
            reason::ACTIVATION_CODE_EXPIRED.parse().unwrap(),
        );
        let error = Error::from(status);
        assert_eq!(error.code(), Some(tonic::Code::FailedPrecondition));
        assert_eq!(error.reason(), Some("ACTIVATION_CODE_EXPIRED"));
        assert!(error.is_activation_code_expired());
        assert!(!error.is_activation_code_used());
        assert_eq!(
            error.to_string(),
            "the MFA server refused the request: the activation code has expired"
        );
    }

    #[test]
    fn status_without_reason_or_message_still_reads_well() {
        let error = Error::from(tonic::Status::new(tonic::Code::Unavailable, ""));
        assert_eq!(error.reason(), None);
        assert!(!error.is_rate_limited());
        assert!(error
            .to_string()
            .ends_with("The service is currently unavailable"));
        assert_eq!(Error::BadServerSignature.code(), None);
    }
}
