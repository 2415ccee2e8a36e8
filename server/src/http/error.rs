//! The one shape of every error the HTTP/JSON face sends:
//!
//! ```json
//! {"error": {"status": 404, "code": "NOT_FOUND", "reason": "NOT_FOUND",
//!            "message": "challenge not found", "metadata": {"resource": "challenge"}}}
//! ```
//!
//! `status` is the HTTP status, `code` the gRPC code the same refusal has on
//! the gRPC face and `reason` its `ErrorInfo` reason, all from the one table
//! ([`mfa_proto::status::Reason::faces`]); `metadata` is `ErrorInfo`'s.

use crate::domain::{self, Reason, Refusal};
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// An error answer; see the module documentation.
#[derive(Debug)]
pub struct ApiError(pub Refusal);

impl ApiError {
    /// A refusal for `reason`, for what only this face checks (the body,
    /// the query).
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self(Refusal::bare(reason, message))
    }

    /// The refusal with `key: value` in its metadata.
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Self {
        self.0.metadata.push((key, value.to_string()));
        self
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        let Refusal {
            reason,
            message,
            metadata,
        } = &self.0;
        ErrorBody {
            error: ErrorDetail {
                status: reason.http_status(),
                code: reason.code_name(),
                reason: reason.as_str(),
                message: message.clone(),
                metadata: metadata
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            },
        }
    }
}

/// Domain errors become API errors exactly as they become gRPC statuses.
impl From<domain::Error> for ApiError {
    fn from(error: domain::Error) -> Self {
        Self(error.into_refusal())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = self.0.reason;
        let status =
            StatusCode::from_u16(reason.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = super::json(status, &self.body());
        // For the call's metrics (its gRPC code) and log line.
        response.extensions_mut().insert(reason);
        response
    }
}

/// Every error answer's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status, as in the status line.
    #[schema(example = 404)]
    pub status: u16,
    /// The gRPC status code of the same refusal on the gRPC face.
    #[schema(example = "NOT_FOUND")]
    pub code: &'static str,
    /// The machine-readable reason (docs/protocol.md lists them all); react
    /// to it, not to the message.
    #[schema(example = "NOT_FOUND")]
    pub reason: &'static str,
    /// For people; may change. Never holds a secret.
    #[schema(example = "challenge not found")]
    pub message: String,
    /// The reason's `ErrorInfo` metadata (docs/protocol.md lists the keys).
    pub metadata: BTreeMap<String, String>,
}
