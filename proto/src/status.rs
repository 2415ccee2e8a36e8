//! The service's refusals: every error status the server sends carries a
//! stable, machine-readable [`Reason`], as a standard `google.rpc.ErrorInfo`
//! in the status details (domain [`ERROR_DOMAIN`]) and, for clients written
//! before that, in the `mfa-reason` response metadata ([`REASON_METADATA`]).
//!
//! [`Reason::faces`] is the one table from a reason to its gRPC status code
//! and its HTTP status, so that neither face can drift from the other;
//! `docs/protocol.md` lists the same table for independent clients, and a
//! test below checks that it does.

use std::collections::HashMap;
use tonic::{metadata::MetadataValue, Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every reason the server sends. Reasons are unique
/// within it, and it stays the same for as long as the `mfa.v1` API does.
pub const ERROR_DOMAIN: &str = "mfa.v1";

/// Response metadata key that repeats the reason, for clients that predate
/// `ErrorInfo`.
pub const REASON_METADATA: &str = "mfa-reason";

/// `ErrorInfo.metadata` key of [`Reason::ClockSkew`]: the server's clock,
/// in milliseconds since the Unix epoch, when it refused the proof.
pub const SERVER_TIME_MS: &str = "server_time_ms";
/// `ErrorInfo.metadata` key of [`Reason::ClockSkew`]: how far, in
/// milliseconds, a proof's timestamp may be from the server's clock.
pub const MAX_SKEW_MS: &str = "max_skew_ms";
/// `ErrorInfo.metadata` key of [`Reason::KeyAlgorithmNotAllowed`]: the
/// algorithms the tenant allows, comma-separated protobuf value names.
pub const ALLOWED_KEY_ALGORITHMS: &str = "allowed_key_algorithms";
/// `ErrorInfo.metadata` key of [`Reason::UserVerificationRequired`]: the
/// methods the tenant accepts, comma-separated protobuf value names.
pub const ACCEPTED_USER_VERIFICATIONS: &str = "accepted_user_verifications";

/// Why the server refused a call, or could not serve it.
///
/// Every reason has one gRPC code and one HTTP status ([`Reason::faces`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A field of the request is missing or not valid (the message names it).
    InvalidArgument,
    /// The request body is not a protobuf message of the method's request
    /// type, or its gRPC framing is broken (a bad varint, invalid UTF-8 in a
    /// string, a wrong wire type, a truncated field or frame, no message).
    MalformedRequest,
    /// The request message is larger than the server's `max_message_size`.
    RequestTooLarge,
    /// An HTTP/JSON request body that is not `application/json`.
    UnsupportedMediaType,
    /// No API key in the `authorization` metadata (`Bearer mfak_…`).
    ApiKeyMissing,
    /// The API key is unknown or revoked.
    ApiKeyInvalid,
    /// The API key is valid but of the other role (a portal key on the
    /// admin service, or an admin key on the portal service).
    ApiKeyWrongRole,
    /// The service requires a TLS client certificate and none was presented.
    ClientCertificateRequired,
    /// The device id of a device call is not a registered device (never
    /// registered, or its user was deleted).
    DeviceUnknown,
    /// A device's signature (request proof, approval or enrollment proof of
    /// possession) does not verify.
    SignatureInvalid,
    /// A device proof's timestamp is further from the server's clock than
    /// the allowed clock skew; the device's clock is probably wrong.
    ClockSkew,
    /// The signed device request was already used once.
    ReplayedRequest,
    /// The device was revoked and can no longer call the service.
    DeviceRevoked,
    /// No such object for this caller (also: another tenant's object).
    NotFound,
    /// No such activation code exists (often a typing mistake).
    ActivationCodeUnknown,
    /// The activation code expired before the device used it.
    ActivationCodeExpired,
    /// The activation code was already used by a device.
    ActivationCodeUsed,
    /// The challenge expired before it was answered.
    ChallengeExpired,
    /// The challenge already ended (answered, superseded or cancelled).
    ChallengeEnded,
    /// The user is blocked after a fraud report.
    UserBlocked,
    /// The user has no active device to send a challenge to (or whose
    /// offline code to check).
    NoActiveDevice,
    /// Offline codes are turned off for the tenant, or the server has no key
    /// for their secrets (`offline_code_key_file`).
    OfflineCodesDisabled,
    /// None of the user's active devices has an offline-code secret (they
    /// enrolled before the server offered offline codes): enroll again.
    OfflineCodeNotSetUp,
    /// The offline code is not the current code of any of the user's devices.
    OfflineCodeInvalid,
    /// The offline code is right, but its time step (or a later one) was
    /// already used on that device: wait for the next code.
    OfflineCodeUsed,
    /// The tenant does not allow the key algorithm a device enrolled with.
    KeyAlgorithmNotAllowed,
    /// An approval without the user verification the tenant requires; the
    /// challenge ended denied for it.
    UserVerificationRequired,
    /// Too many requests (challenges for a user, failed activations or
    /// failed signatures from an address, failed offline codes for a user
    /// or an address); try again later.
    RateLimited,
    /// The tenant has as many open watches as the server allows.
    TooManyWatches,
    /// The connection has as many calls open as the server allows.
    TooManyStreams,
    /// A watch reached the longest watch duration; watch again.
    WatchDurationExceeded,
    /// The server is shutting down; call again (another replica answers).
    ShuttingDown,
    /// The server's storage did not answer; try again.
    StorageUnavailable,
    /// A server fault; the details are in the server's log, not the reply.
    InternalError,
}

impl Reason {
    /// Every reason, in the order of the table in `docs/protocol.md`.
    pub const ALL: [Reason; 34] = [
        Self::InvalidArgument,
        Self::MalformedRequest,
        Self::RequestTooLarge,
        Self::UnsupportedMediaType,
        Self::ApiKeyMissing,
        Self::ApiKeyInvalid,
        Self::ApiKeyWrongRole,
        Self::ClientCertificateRequired,
        Self::DeviceUnknown,
        Self::SignatureInvalid,
        Self::ClockSkew,
        Self::ReplayedRequest,
        Self::DeviceRevoked,
        Self::NotFound,
        Self::ActivationCodeUnknown,
        Self::ActivationCodeExpired,
        Self::ActivationCodeUsed,
        Self::ChallengeExpired,
        Self::ChallengeEnded,
        Self::UserBlocked,
        Self::NoActiveDevice,
        Self::OfflineCodesDisabled,
        Self::OfflineCodeNotSetUp,
        Self::OfflineCodeInvalid,
        Self::OfflineCodeUsed,
        Self::KeyAlgorithmNotAllowed,
        Self::UserVerificationRequired,
        Self::RateLimited,
        Self::TooManyWatches,
        Self::TooManyStreams,
        Self::WatchDurationExceeded,
        Self::ShuttingDown,
        Self::StorageUnavailable,
        Self::InternalError,
    ];

    /// The reason as sent on the wire (`ErrorInfo.reason`, `mfa-reason`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::MalformedRequest => "MALFORMED_REQUEST",
            Self::RequestTooLarge => "REQUEST_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::ApiKeyMissing => "API_KEY_MISSING",
            Self::ApiKeyInvalid => "API_KEY_INVALID",
            Self::ApiKeyWrongRole => "API_KEY_WRONG_ROLE",
            Self::ClientCertificateRequired => "CLIENT_CERTIFICATE_REQUIRED",
            Self::DeviceUnknown => "DEVICE_UNKNOWN",
            Self::SignatureInvalid => "SIGNATURE_INVALID",
            Self::ClockSkew => "CLOCK_SKEW",
            Self::ReplayedRequest => "REPLAYED_REQUEST",
            Self::DeviceRevoked => "DEVICE_REVOKED",
            Self::NotFound => "NOT_FOUND",
            Self::ActivationCodeUnknown => "ACTIVATION_CODE_UNKNOWN",
            Self::ActivationCodeExpired => "ACTIVATION_CODE_EXPIRED",
            Self::ActivationCodeUsed => "ACTIVATION_CODE_USED",
            Self::ChallengeExpired => "CHALLENGE_EXPIRED",
            Self::ChallengeEnded => "CHALLENGE_ENDED",
            Self::UserBlocked => "USER_BLOCKED",
            Self::NoActiveDevice => "NO_ACTIVE_DEVICE",
            Self::OfflineCodesDisabled => "OFFLINE_CODES_DISABLED",
            Self::OfflineCodeNotSetUp => "OFFLINE_CODE_NOT_SET_UP",
            Self::OfflineCodeInvalid => "OFFLINE_CODE_INVALID",
            Self::OfflineCodeUsed => "OFFLINE_CODE_USED",
            Self::KeyAlgorithmNotAllowed => "KEY_ALGORITHM_NOT_ALLOWED",
            Self::UserVerificationRequired => "USER_VERIFICATION_REQUIRED",
            Self::RateLimited => "RATE_LIMITED",
            Self::TooManyWatches => "TOO_MANY_WATCHES",
            Self::TooManyStreams => "TOO_MANY_STREAMS",
            Self::WatchDurationExceeded => "WATCH_DURATION_EXCEEDED",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::StorageUnavailable => "STORAGE_UNAVAILABLE",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The reason named `name` on the wire, if it is one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The one table: the reason's gRPC status code and its HTTP status.
    ///
    /// The HTTP column follows `google.rpc.Code`'s mapping, except where a
    /// more specific status says more: 409 for a state that forbids the call
    /// (`FAILED_PRECONDITION`), 413 for a request that is too large, 415 for
    /// a body of another media type.
    pub fn faces(self) -> (Code, u16) {
        match self {
            Self::InvalidArgument | Self::MalformedRequest => (Code::InvalidArgument, 400),
            Self::RequestTooLarge => (Code::OutOfRange, 413),
            Self::UnsupportedMediaType => (Code::InvalidArgument, 415),
            Self::ApiKeyMissing
            | Self::ApiKeyInvalid
            | Self::ClientCertificateRequired
            | Self::DeviceUnknown
            | Self::SignatureInvalid
            | Self::ClockSkew
            | Self::ReplayedRequest => (Code::Unauthenticated, 401),
            Self::ApiKeyWrongRole | Self::DeviceRevoked | Self::OfflineCodeInvalid => {
                (Code::PermissionDenied, 403)
            }
            Self::NotFound | Self::ActivationCodeUnknown => (Code::NotFound, 404),
            Self::ActivationCodeExpired
            | Self::ActivationCodeUsed
            | Self::ChallengeExpired
            | Self::ChallengeEnded
            | Self::UserBlocked
            | Self::NoActiveDevice
            | Self::OfflineCodesDisabled
            | Self::OfflineCodeNotSetUp
            | Self::OfflineCodeUsed
            | Self::KeyAlgorithmNotAllowed
            | Self::UserVerificationRequired => (Code::FailedPrecondition, 409),
            Self::RateLimited | Self::TooManyWatches | Self::TooManyStreams => {
                (Code::ResourceExhausted, 429)
            }
            Self::WatchDurationExceeded => (Code::DeadlineExceeded, 504),
            Self::ShuttingDown | Self::StorageUnavailable => (Code::Unavailable, 503),
            Self::InternalError => (Code::Internal, 500),
        }
    }

    /// The gRPC status code of this reason.
    pub fn code(self) -> Code {
        self.faces().0
    }

    /// The name of [`Reason::code`] as the gRPC documentation writes it
    /// (`NOT_FOUND`), which the HTTP/JSON face sends as the error's `code`.
    pub fn code_name(self) -> &'static str {
        match self.code() {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The HTTP status of this reason, for the HTTP/JSON face of the API.
    pub fn http_status(self) -> u16 {
        self.faces().1
    }

    /// The status that refuses a call for this reason, with `message` for
    /// people. It goes back to the caller as it is: no secret in it.
    pub fn status(self, message: impl Into<String>) -> Status {
        self.status_with(message, std::iter::empty::<(&str, String)>())
    }

    /// Like [`Reason::status`], with `metadata` (`ErrorInfo.metadata`) for
    /// programs; no secret in it either.
    pub fn status_with<K: Into<String>>(
        self,
        message: impl Into<String>,
        metadata: impl IntoIterator<Item = (K, String)>,
    ) -> Status {
        let metadata: HashMap<String, String> =
            metadata.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let details = ErrorDetails::with_error_info(self.as_str(), ERROR_DOMAIN, metadata);
        let mut status = Status::with_error_details(self.code(), message, details);
        status
            .metadata_mut()
            .insert(REASON_METADATA, MetadataValue::from_static(self.as_str()));
        status
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_well_formed_and_parse_back() {
        let names: HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            let name = reason.as_str();
            // google.rpc.ErrorInfo: at most 63 characters of [A-Z0-9_].
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert_eq!(Reason::parse(name), Some(reason));
        }
        assert_eq!(Reason::parse("SOMETHING_ELSE"), None);
    }

    #[test]
    fn a_status_carries_the_reason_twice_and_its_metadata() {
        let status =
            Reason::ClockSkew.status_with("check the clock", [(SERVER_TIME_MS, "42".into())]);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "check the clock");
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "CLOCK_SKEW");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata[SERVER_TIME_MS], "42");
        assert_eq!(
            status.metadata().get(REASON_METADATA).unwrap(),
            "CLOCK_SKEW"
        );
        // And through the wire form, as a client reads it.
        let received = Status::from_header_map(status.into_http::<()>().headers()).unwrap();
        assert_eq!(
            received.get_details_error_info().unwrap().reason,
            "CLOCK_SKEW"
        );
    }

    /// `SCREAMING_SNAKE` name of a code, as the gRPC documentation writes it.
    fn code_name(code: Code) -> String {
        let mut name = String::new();
        for (i, c) in format!("{code:?}").chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                name.push('_');
            }
            name.push(c.to_ascii_uppercase());
        }
        name
    }

    /// The contract for independent clients lists exactly these reasons,
    /// each with its gRPC code and HTTP status, in a table whose rows read
    /// `` | `REASON` | GRPC_CODE | HTTP | when | ``.
    #[test]
    fn the_protocol_document_lists_every_reason_with_its_faces() {
        let doc = include_str!("../../docs/protocol.md");
        let documented: Vec<(String, String, String)> = doc
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let reason = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let http = cells.get(3)?;
                (reason.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                    && http.len() == 3
                    && http.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (reason.to_owned(), cells[2].to_owned(), http.to_string()))
            })
            .collect();
        let expected: Vec<(String, String, String)> = Reason::ALL
            .iter()
            .map(|r| {
                (
                    r.as_str().to_owned(),
                    code_name(r.code()),
                    r.http_status().to_string(),
                )
            })
            .collect();
        assert_eq!(documented, expected);
        for reason in Reason::ALL {
            assert_eq!(reason.code_name(), code_name(reason.code()), "{reason}");
        }
    }
}
