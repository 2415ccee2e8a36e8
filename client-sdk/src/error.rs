//! The crate's one error type, and the server's machine-readable reasons.

use mfa_proto::{enrollment::EnrollmentUriError, push::PushPayloadError, status::Reason};
use std::collections::HashMap;
use tonic_types::StatusExt;

/// The reasons the server gives for refusing a call, so that an app can
/// react without parsing the message. The server sends each as a standard
/// `google.rpc.ErrorInfo` (domain [`ERROR_DOMAIN`](reason::ERROR_DOMAIN)) and,
/// for older clients, in the `mfa-reason` metadata; [`Error::reason`] reads
/// the first and falls back to the second. `docs/protocol.md` says when each
/// is sent and with which status code.
pub mod reason {
    use super::Reason;

    /// Metadata key that also carries the reason (before `ErrorInfo`).
    pub const METADATA_KEY: &str = mfa_proto::status::REASON_METADATA;
    /// `ErrorInfo.domain` of the server's reasons.
    pub const ERROR_DOMAIN: &str = mfa_proto::status::ERROR_DOMAIN;

    /// A field of the request is missing or not valid.
    pub const INVALID_ARGUMENT: &str = Reason::InvalidArgument.as_str();
    /// The request body does not decode as the method's request message.
    pub const MALFORMED_REQUEST: &str = Reason::MalformedRequest.as_str();
    /// The request is larger than the server accepts.
    pub const REQUEST_TOO_LARGE: &str = Reason::RequestTooLarge.as_str();
    /// An HTTP/JSON body that is not `application/json` (never sent over gRPC).
    pub const UNSUPPORTED_MEDIA_TYPE: &str = Reason::UnsupportedMediaType.as_str();
    /// No API key was sent.
    pub const API_KEY_MISSING: &str = Reason::ApiKeyMissing.as_str();
    /// The API key is unknown or revoked.
    pub const API_KEY_INVALID: &str = Reason::ApiKeyInvalid.as_str();
    /// The API key is valid but of the other role (portal or admin).
    pub const API_KEY_WRONG_ROLE: &str = Reason::ApiKeyWrongRole.as_str();
    /// The service requires a TLS client certificate.
    pub const CLIENT_CERTIFICATE_REQUIRED: &str = Reason::ClientCertificateRequired.as_str();
    /// The server does not know this device (it was removed, or the account
    /// belongs to another server).
    pub const DEVICE_UNKNOWN: &str = Reason::DeviceUnknown.as_str();
    /// The device's signature does not verify.
    pub const SIGNATURE_INVALID: &str = Reason::SignatureInvalid.as_str();
    /// The device's clock is too far from the server's.
    pub const CLOCK_SKEW: &str = Reason::ClockSkew.as_str();
    /// The signed request was already used once.
    pub const REPLAYED_REQUEST: &str = Reason::ReplayedRequest.as_str();
    /// The device was revoked and can no longer call the service.
    pub const DEVICE_REVOKED: &str = Reason::DeviceRevoked.as_str();
    /// No such object for this caller.
    pub const NOT_FOUND: &str = Reason::NotFound.as_str();
    /// No such activation code exists.
    pub const ACTIVATION_CODE_UNKNOWN: &str = Reason::ActivationCodeUnknown.as_str();
    /// The activation code expired before the device used it.
    pub const ACTIVATION_CODE_EXPIRED: &str = Reason::ActivationCodeExpired.as_str();
    /// The activation code was already used by a device.
    pub const ACTIVATION_CODE_USED: &str = Reason::ActivationCodeUsed.as_str();
    /// The challenge expired before it was answered.
    pub const CHALLENGE_EXPIRED: &str = Reason::ChallengeExpired.as_str();
    /// The challenge already ended (answered, superseded or cancelled).
    pub const CHALLENGE_ENDED: &str = Reason::ChallengeEnded.as_str();
    /// The user is blocked after a fraud report.
    pub const USER_BLOCKED: &str = Reason::UserBlocked.as_str();
    /// The user has no active device to send a challenge to.
    pub const NO_ACTIVE_DEVICE: &str = Reason::NoActiveDevice.as_str();
    /// Offline codes are turned off for the tenant (or on the server).
    pub const OFFLINE_CODES_DISABLED: &str = Reason::OfflineCodesDisabled.as_str();
    /// None of the user's devices has an offline-code secret.
    pub const OFFLINE_CODE_NOT_SET_UP: &str = Reason::OfflineCodeNotSetUp.as_str();
    /// The offline code is not the user's current code.
    pub const OFFLINE_CODE_INVALID: &str = Reason::OfflineCodeInvalid.as_str();
    /// The offline code's time step was already used: wait for the next code.
    pub const OFFLINE_CODE_USED: &str = Reason::OfflineCodeUsed.as_str();
    /// The tenant does not allow the device key's algorithm.
    pub const KEY_ALGORITHM_NOT_ALLOWED: &str = Reason::KeyAlgorithmNotAllowed.as_str();
    /// The approval lacked the user verification the tenant requires; the
    /// challenge ended denied.
    pub const USER_VERIFICATION_REQUIRED: &str = Reason::UserVerificationRequired.as_str();
    /// Too many requests; try again later.
    pub const RATE_LIMITED: &str = Reason::RateLimited.as_str();
    /// The tenant has as many open watch streams as the server allows.
    pub const TOO_MANY_WATCHES: &str = Reason::TooManyWatches.as_str();
    /// The connection has as many calls open as the server allows.
    pub const TOO_MANY_STREAMS: &str = Reason::TooManyStreams.as_str();
    /// A watch reached the longest watch duration; watch again.
    pub const WATCH_DURATION_EXCEEDED: &str = Reason::WatchDurationExceeded.as_str();
    /// The server is shutting down; call again.
    pub const SHUTTING_DOWN: &str = Reason::ShuttingDown.as_str();
    /// The server's storage did not answer; try again.
    pub const STORAGE_UNAVAILABLE: &str = Reason::StorageUnavailable.as_str();
    /// A server fault.
    pub const INTERNAL_ERROR: &str = Reason::InternalError.as_str();

    /// `ErrorInfo.metadata` key of [`CLOCK_SKEW`]: the server's clock, in
    /// milliseconds since the Unix epoch.
    pub const SERVER_TIME_MS: &str = mfa_proto::status::SERVER_TIME_MS;
    /// `ErrorInfo.metadata` key of [`CLOCK_SKEW`]: the largest difference
    /// between the device's clock and the server's that it accepts, in
    /// milliseconds.
    pub const MAX_SKEW_MS: &str = mfa_proto::status::MAX_SKEW_MS;
    /// `ErrorInfo.metadata` key of [`KEY_ALGORITHM_NOT_ALLOWED`]: the allowed
    /// algorithms, comma-separated protobuf value names.
    pub const ALLOWED_KEY_ALGORITHMS: &str = mfa_proto::status::ALLOWED_KEY_ALGORITHMS;
    /// `ErrorInfo.metadata` key of [`USER_VERIFICATION_REQUIRED`]: the
    /// accepted methods, comma-separated protobuf value names.
    pub const ACCEPTED_USER_VERIFICATIONS: &str = mfa_proto::status::ACCEPTED_USER_VERIFICATIONS;
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

    /// The device key could not sign (e.g. the person cancelled the
    /// system's prompt that guards a hardware key); nothing was sent.
    #[error("the device key could not sign: {0}")]
    Signer(String),

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
        /// The reason's `ErrorInfo.metadata` (e.g. [`reason::SERVER_TIME_MS`]);
        /// empty when the server sent no `ErrorInfo`.
        metadata: HashMap<String, String>,
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
    /// Reads the reason from the status's `ErrorInfo` of the server's domain
    /// (an `ErrorInfo` of another domain, from a proxy say, is not the
    /// server's), and else from the `mfa-reason` metadata.
    fn from(status: tonic::Status) -> Self {
        let (reason, metadata) = match status
            .get_details_error_info()
            .filter(|info| info.domain == reason::ERROR_DOMAIN)
        {
            Some(info) => (Some(info.reason), info.metadata),
            None => {
                let reason = status
                    .metadata()
                    .get(reason::METADATA_KEY)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                (reason, HashMap::new())
            }
        };
        Self::Rejected {
            code: status.code(),
            reason,
            message: status.message().to_owned(),
            metadata,
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

    /// A value of the reason's `ErrorInfo.metadata`, when the server
    /// refused the request and sent it.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        match self {
            Self::Rejected { metadata, .. } => metadata.get(key).map(String::as_str),
            _ => None,
        }
    }

    fn has_reason(&self, expected: &str) -> bool {
        self.reason() == Some(expected)
    }

    /// The device's clock is too far from the server's, so its signed
    /// requests are refused: the app should ask the person to set the
    /// phone's time automatically. [`Error::server_time_ms`] tells by how much
    /// it is off.
    pub fn is_clock_skew(&self) -> bool {
        self.has_reason(reason::CLOCK_SKEW)
    }

    /// The server's clock when it refused a request for [`Error::is_clock_skew`],
    /// in milliseconds since the Unix epoch.
    pub fn server_time_ms(&self) -> Option<i64> {
        self.metadata(reason::SERVER_TIME_MS)?.parse().ok()
    }

    /// The server does not know this device: it was removed, so the app
    /// should remove the account.
    pub fn is_device_unknown(&self) -> bool {
        self.has_reason(reason::DEVICE_UNKNOWN)
    }

    /// The device's signature does not verify: the saved key is not the one
    /// the server registered, so the account must be enrolled again.
    pub fn is_signature_invalid(&self) -> bool {
        self.has_reason(reason::SIGNATURE_INVALID)
    }

    /// The API key is missing, unknown or revoked, or of the other role: the
    /// portal's configuration needs a valid portal key.
    pub fn is_api_key_refused(&self) -> bool {
        [
            reason::API_KEY_MISSING,
            reason::API_KEY_INVALID,
            reason::API_KEY_WRONG_ROLE,
        ]
        .into_iter()
        .any(|r| self.has_reason(r))
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

    /// The typed offline code was refused: wrong, or already used (the
    /// portal asks for the next code, or offers a push instead).
    pub fn is_offline_code_refused(&self) -> bool {
        self.has_reason(reason::OFFLINE_CODE_INVALID) || self.has_reason(reason::OFFLINE_CODE_USED)
    }

    /// Offline codes cannot be used for this user: turned off for the
    /// tenant, or none of the user's devices has them.
    pub fn is_offline_code_unavailable(&self) -> bool {
        self.has_reason(reason::OFFLINE_CODES_DISABLED)
            || self.has_reason(reason::OFFLINE_CODE_NOT_SET_UP)
    }

    /// Too many requests; try again later.
    pub fn is_rate_limited(&self) -> bool {
        self.has_reason(reason::RATE_LIMITED)
    }

    /// The server had already seen this signed request.
    pub fn is_replayed_request(&self) -> bool {
        self.has_reason(reason::REPLAYED_REQUEST)
    }

    /// The tenant does not allow this device key's algorithm (see
    /// [`reason::ALLOWED_KEY_ALGORITHMS`]).
    pub fn is_key_algorithm_not_allowed(&self) -> bool {
        self.has_reason(reason::KEY_ALGORITHM_NOT_ALLOWED)
    }

    /// The approval lacked the user verification the tenant requires (see
    /// [`reason::ACCEPTED_USER_VERIFICATIONS`]); the sign-in was denied.
    pub fn is_user_verification_required(&self) -> bool {
        self.has_reason(reason::USER_VERIFICATION_REQUIRED)
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

    fn with_error_info(domain: &str, reason: &str, metadata: &[(&str, &str)]) -> tonic::Status {
        let metadata: HashMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tonic::Status::with_error_details(
            tonic::Code::Unauthenticated,
            "request timestamp is outside the allowed clock skew",
            tonic_types::ErrorDetails::with_error_info(reason, domain, metadata),
        )
    }

    #[test]
    fn error_info_comes_first_with_its_metadata() {
        let mut status = with_error_info(
            reason::ERROR_DOMAIN,
            "CLOCK_SKEW",
            &[(reason::SERVER_TIME_MS, "1700000000000")],
        );
        // A disagreeing `mfa-reason` loses to ErrorInfo.
        status
            .metadata_mut()
            .insert(reason::METADATA_KEY, "RATE_LIMITED".parse().unwrap());
        let error = Error::from(status);
        assert!(error.is_clock_skew());
        assert!(!error.is_rate_limited());
        assert_eq!(error.server_time_ms(), Some(1_700_000_000_000));
        assert_eq!(
            error.metadata(reason::SERVER_TIME_MS),
            Some("1700000000000")
        );
    }

    #[test]
    fn error_info_of_another_domain_is_not_the_servers() {
        let mut status = with_error_info("proxy.example", "CLOCK_SKEW", &[]);
        status
            .metadata_mut()
            .insert(reason::METADATA_KEY, "DEVICE_UNKNOWN".parse().unwrap());
        let error = Error::from(status);
        assert!(!error.is_clock_skew());
        assert!(error.is_device_unknown());
        assert_eq!(error.server_time_ms(), None);
    }

    #[test]
    fn every_reason_of_the_protocol_has_a_constant() {
        let constants = [
            reason::INVALID_ARGUMENT,
            reason::MALFORMED_REQUEST,
            reason::REQUEST_TOO_LARGE,
            reason::UNSUPPORTED_MEDIA_TYPE,
            reason::API_KEY_MISSING,
            reason::API_KEY_INVALID,
            reason::API_KEY_WRONG_ROLE,
            reason::CLIENT_CERTIFICATE_REQUIRED,
            reason::DEVICE_UNKNOWN,
            reason::SIGNATURE_INVALID,
            reason::CLOCK_SKEW,
            reason::REPLAYED_REQUEST,
            reason::DEVICE_REVOKED,
            reason::NOT_FOUND,
            reason::ACTIVATION_CODE_UNKNOWN,
            reason::ACTIVATION_CODE_EXPIRED,
            reason::ACTIVATION_CODE_USED,
            reason::CHALLENGE_EXPIRED,
            reason::CHALLENGE_ENDED,
            reason::USER_BLOCKED,
            reason::NO_ACTIVE_DEVICE,
            reason::OFFLINE_CODES_DISABLED,
            reason::OFFLINE_CODE_NOT_SET_UP,
            reason::OFFLINE_CODE_INVALID,
            reason::OFFLINE_CODE_USED,
            reason::KEY_ALGORITHM_NOT_ALLOWED,
            reason::USER_VERIFICATION_REQUIRED,
            reason::RATE_LIMITED,
            reason::TOO_MANY_WATCHES,
            reason::TOO_MANY_STREAMS,
            reason::WATCH_DURATION_EXCEEDED,
            reason::SHUTTING_DOWN,
            reason::STORAGE_UNAVAILABLE,
            reason::INTERNAL_ERROR,
        ];
        let all: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(constants.to_vec(), all);
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
