//! Decoding a request once, before any handler runs: the caller's API key
//! (and client certificate), a JSON body, and the query of a long poll.
//! Each failure is an [`ApiError`] in the one JSON shape.

use super::{error::ApiError, listener::Peer, Api};
use crate::{
    client_address::ClientAddress,
    domain::{self, Reason},
    model::Role,
};
use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request},
    http::{header, request::Parts},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The tenant of a call that presented a valid portal API key (and a client
/// certificate, where the server requires one), checked as the gRPC face
/// checks it.
pub struct PortalCaller {
    pub tenant_id: String,
}

impl FromRequestParts<Api> for PortalCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let certified = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .is_some_and(|info| info.0.client_cert);
        api.client_cert.check(certified)?;
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(domain::bearer_secret);
        let client = domain::Client::new(parts.extensions.get::<ClientAddress>().copied());
        let holder = api
            .service
            .authenticate_key(secret, Role::Portal, &client)
            .await?;
        Ok(Self {
            tenant_id: holder.tenant_id,
        })
    }
}

/// Names the protobuf message a JSON body stands for, for the
/// `MALFORMED_REQUEST` metadata (the same as the gRPC face's).
pub trait Message {
    /// The full name, e.g. `mfa.v1.CreateChallengeRequest`.
    const NAME: &'static str;
}

/// A JSON request body of `application/json`, at most `max_message_size`
/// bytes, with no unknown field.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Message> FromRequest<Api> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Api) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                "the body must be JSON, sent with content-type: application/json",
            ));
        }
        let limit = api.max_body;
        let too_large = || {
            ApiError::new(
                Reason::RequestTooLarge,
                format!("the body is larger than {limit} bytes"),
            )
            .with("max_bytes", limit)
        };
        let bytes = Limited::new(request.into_body(), limit)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<LengthLimitError>() {
                    too_large()
                } else {
                    ApiError::new(Reason::MalformedRequest, "the body could not be read")
                }
            })?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| {
                ApiError::new(
                    Reason::MalformedRequest,
                    format!("the body is not a valid {}: {error}", T::NAME),
                )
                .with("message_type", T::NAME)
            })
    }
}

/// The longest `wait` of a long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The query of a read that may wait for a change: `wait` (a duration such
/// as `30s`, at most [`MAX_WAIT`]) and `while_state` (the state to wait
/// out, by its full name). No other parameter is accepted.
#[derive(Debug, Default)]
pub struct WaitQuery {
    pub wait: Option<Duration>,
    pub while_state: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for WaitQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut query = WaitQuery::default();
        let pairs = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes());
        for (name, value) in pairs {
            match name.as_ref() {
                "wait" => query.wait = Some(wait(&value)?),
                "while_state" => query.while_state = Some(value.into_owned()),
                other => {
                    return Err(ApiError::new(
                        Reason::InvalidArgument,
                        format!("unknown query parameter {other:?}: use wait and while_state"),
                    ))
                }
            }
        }
        if query.while_state.is_some() && query.wait.is_none() {
            return Err(ApiError::new(
                Reason::InvalidArgument,
                "while_state needs wait",
            ));
        }
        Ok(query)
    }
}

/// `wait`: a duration from 1 ms to [`MAX_WAIT`], written like `30s` or `500ms`.
fn wait(value: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(value)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_WAIT)
        .ok_or_else(|| {
            ApiError::new(
                Reason::InvalidArgument,
                format!(
                    "wait must be a duration such as 30s, greater than zero and at most {}s",
                    MAX_WAIT.as_secs()
                ),
            )
        })
}

/// A path parameter (an id, a user id), percent-decoded.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection| {
                ApiError::new(
                    Reason::InvalidArgument,
                    format!("the path is not valid: {}", rejection.body_text()),
                )
            })
    }
}
