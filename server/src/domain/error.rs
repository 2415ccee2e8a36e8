//! The domain's one error type. Every variant carries a message written for
//! the caller; some carry a stable machine-readable reason that the API layer
//! sends in the `mfa-reason` metadata so apps can react without parsing text.

use crate::store::StoreError;

/// Stable reasons sent beside some errors (`mfa-reason` metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ActivationCodeExpired,
    ActivationCodeUsed,
    ActivationCodeUnknown,
    DeviceRevoked,
    UserBlocked,
    ChallengeExpired,
    ChallengeEnded,
    NoActiveDevice,
    RateLimited,
    ReplayedRequest,
    TooManyWatches,
}

impl Reason {
    /// The reason as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActivationCodeExpired => "ACTIVATION_CODE_EXPIRED",
            Self::ActivationCodeUsed => "ACTIVATION_CODE_USED",
            Self::ActivationCodeUnknown => "ACTIVATION_CODE_UNKNOWN",
            Self::DeviceRevoked => "DEVICE_REVOKED",
            Self::UserBlocked => "USER_BLOCKED",
            Self::ChallengeExpired => "CHALLENGE_EXPIRED",
            Self::ChallengeEnded => "CHALLENGE_ENDED",
            Self::NoActiveDevice => "NO_ACTIVE_DEVICE",
            Self::RateLimited => "RATE_LIMITED",
            Self::ReplayedRequest => "REPLAYED_REQUEST",
            Self::TooManyWatches => "TOO_MANY_WATCHES",
        }
    }
}

/// Why a domain operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// Credentials are missing or wrong.
    #[error("{message}")]
    Unauthenticated {
        message: String,
        reason: Option<Reason>,
    },
    /// The caller is known but may not do this.
    #[error("{message}")]
    PermissionDenied { message: String, reason: Reason },
    /// No such object for this caller (also: another tenant's object).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The object is in the wrong state.
    #[error("{message}")]
    FailedPrecondition { message: String, reason: Reason },
    /// A limit was reached.
    #[error("{message}")]
    ResourceExhausted { message: String, reason: Reason },
    /// The store failed.
    #[error("storage unavailable, try again")]
    Unavailable(#[source] StoreError),
    /// An invariant broke; details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

/// Shorthand for domain results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A malformed request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    /// Failed authentication.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            message: message.into(),
            reason: None,
        }
    }

    /// Wrong state.
    pub fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            message: message.into(),
            reason,
        }
    }

    /// A limit.
    pub fn exhausted(reason: Reason, message: impl Into<String>) -> Self {
        Self::ResourceExhausted {
            message: message.into(),
            reason,
        }
    }

    /// The stable reason, if any.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::Unauthenticated { reason, .. } => *reason,
            Self::PermissionDenied { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::ResourceExhausted { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt(what) => Self::Internal(format!("corrupt stored data: {what}")),
            StoreError::Duplicate(what) => Self::Internal(format!("duplicate {what}")),
            other => Self::Unavailable(other),
        }
    }
}
