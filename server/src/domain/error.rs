//! The domain's one error type. Every refusal carries a message written for
//! the caller and a stable machine-readable [`Reason`], which fixes its
//! status code (see [`mfa_proto::status`]) and which the API layer sends as
//! `google.rpc.ErrorInfo` and in the `mfa-reason` metadata, so that apps can
//! react without parsing text.

use crate::store::StoreError;

pub use mfa_proto::status::Reason;

/// Why a domain operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The call was refused for `reason`, which gives its status code.
    #[error("{message}")]
    Refused {
        reason: Reason,
        message: String,
        /// `ErrorInfo.metadata` for programs: never a secret.
        metadata: Vec<(&'static str, String)>,
    },
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
    /// A refusal for `reason`.
    pub fn refused(reason: Reason, message: impl Into<String>) -> Self {
        Self::Refused {
            reason,
            message: message.into(),
            metadata: Vec::new(),
        }
    }

    /// The refusal with `key: value` added to its metadata (a refusal only:
    /// server faults tell the caller nothing).
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Self {
        if let Self::Refused { metadata, .. } = &mut self {
            metadata.push((key, value.to_string()));
        }
        self
    }

    /// A malformed request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::refused(Reason::InvalidArgument, message)
    }

    /// No `what` for this caller; the metadata's `resource` names it.
    pub fn not_found(what: &'static str) -> Self {
        Self::refused(Reason::NotFound, format!("{what} not found")).with(RESOURCE, what)
    }

    /// The stable reason; every error has one.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Refused { reason, .. } => *reason,
            Self::Unavailable(_) => Reason::StorageUnavailable,
            Self::Internal(_) => Reason::InternalError,
        }
    }

    /// The gRPC status code, which the reason decides.
    pub fn code(&self) -> tonic::Code {
        self.reason().code()
    }

    /// What the caller is told, whichever face of the API it called: the
    /// reason, the message and the metadata. Server faults are logged here,
    /// once, and the caller learns only that there was one.
    pub fn into_refusal(self) -> Refusal {
        let message = self.to_string();
        match self {
            Self::Refused {
                reason, metadata, ..
            } => Refusal {
                reason,
                message,
                metadata,
            },
            Self::Unavailable(ref source) => {
                tracing::error!(error = %source, "store unavailable");
                Refusal::bare(self.reason(), message)
            }
            Self::Internal(ref detail) => {
                tracing::error!(detail, "internal error");
                Refusal::bare(self.reason(), message)
            }
        }
    }
}

/// An error as the caller sees it (see [`Error::into_refusal`]): the gRPC
/// face sends it as a status with `ErrorInfo`, the HTTP/JSON face as its
/// JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    /// For people; never a secret.
    pub message: String,
    /// `ErrorInfo.metadata` for programs; never a secret.
    pub metadata: Vec<(&'static str, String)>,
}

impl Refusal {
    /// A refusal without metadata.
    pub fn bare(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            metadata: Vec::new(),
        }
    }
}

/// `ErrorInfo.metadata` key of [`Reason::NotFound`]: what was not found
/// (`challenge`, `enrollment`, `device`, `user`, `tenant`, `API key`).
pub const RESOURCE: &str = "resource";

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt(what) => Self::Internal(format!("corrupt stored data: {what}")),
            StoreError::Duplicate(what) => Self::Internal(format!("duplicate {what}")),
            other => Self::Unavailable(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn the_code_follows_the_reason() {
        assert_eq!(Error::invalid("x").code(), Code::InvalidArgument);
        let missing = Error::not_found("challenge");
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(missing.to_string(), "challenge not found");
        let Error::Refused { metadata, .. } = missing else {
            panic!("a refusal");
        };
        assert_eq!(metadata, [(RESOURCE, "challenge".to_owned())]);
        assert_eq!(
            Error::refused(Reason::ApiKeyWrongRole, "x").code(),
            Code::PermissionDenied
        );
        let fault = Error::Internal("secret detail".into()).with("k", "v");
        assert_eq!(fault.code(), Code::Internal);
        assert_eq!(fault.to_string(), "internal error");
    }
}
