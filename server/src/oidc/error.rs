//! OAuth 2.0 errors as the specifications prescribe them: at the token and
//! pushed-authorization endpoints a JSON body (RFC 6749 §5.2), and from the
//! authorization endpoint a redirect to the client with `error`,
//! `error_description` and `state` (§4.1.2.1) once the redirect URI is
//! known to be the client's.

use crate::{domain::Error, model::ResponseType};
use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Json,
};
use serde_json::json;

/// An OAuth error code with a description for the developer.
#[derive(Debug)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new("invalid_client", description)
    }

    /// A domain failure met while serving a request: the store or the
    /// server failed (details are logged, not returned), or the request was
    /// refused for a reason the message tells.
    pub fn from_domain(error: &Error) -> Self {
        match error {
            Error::Unavailable(_) => Self::new("temporarily_unavailable", error.to_string()),
            Error::Internal(detail) => {
                tracing::error!(%detail, "OpenID provider: internal error");
                Self::new("server_error", error.to_string())
            }
            Error::Refused { .. } => Self::invalid_request(error.to_string()),
        }
    }

    /// The JSON answer of the token and pushed-authorization endpoints.
    pub fn json(&self) -> Response {
        let status = match self.code {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = (
            status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({ "error": self.code, "error_description": self.description })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"token\""),
            );
        }
        response
    }
}

/// A server failure at an endpoint that answers JSON.
pub fn server_error(error: &Error) -> Response {
    OAuthError::from_domain(error).json()
}

/// How the authorization response reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A 303 to the redirect URI with the parameters in its query.
    Query,
    /// A page that posts the parameters to the redirect URI.
    FormPost,
}

impl From<ResponseType> for Mode {
    /// The code flow answers in the query; Entra ID's external method
    /// (`response_type=id_token`) by form post.
    fn from(response_type: ResponseType) -> Self {
        match response_type {
            ResponseType::Code => Mode::Query,
            ResponseType::IdToken => Mode::FormPost,
        }
    }
}

/// The authorization response: in the query (with the issuer, RFC 9207) or
/// by form post (OAuth 2.0 Form Post Response Mode).
pub fn respond(
    redirect_uri: &str,
    issuer: &str,
    mode: Mode,
    params: &[(&str, Option<&str>)],
) -> Response {
    match mode {
        Mode::Query => redirect(redirect_uri, issuer, params),
        Mode::FormPost => form_post(redirect_uri, params),
    }
}

fn redirect(redirect_uri: &str, issuer: &str, params: &[(&str, Option<&str>)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        // Registered URIs were checked; this is a stored value gone bad.
        tracing::error!("stored redirect URI does not parse");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        query.append_pair("iss", issuer);
    }
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// OAuth 2.0 Form Post Response Mode: a form the browser submits at once
/// (with a button for browsers without script).
fn form_post(redirect_uri: &str, params: &[(&str, Option<&str>)]) -> Response {
    use super::pages::escape;
    let fields: String = params
        .iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(name),
                escape(value)
            )
        })
        .collect();
    let page = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>…</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{action}">{fields}<noscript><button type="submit">Continue</button></noscript></form>
</body></html>
"#,
        action = escape(redirect_uri),
    );
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        ],
        page,
    )
        .into_response()
}

/// The error response of the authorization endpoint, sent to the client.
pub fn respond_error(
    redirect_uri: &str,
    issuer: &str,
    mode: Mode,
    state: Option<&str>,
    error: &OAuthError,
) -> Response {
    respond(
        redirect_uri,
        issuer,
        mode,
        &[
            ("error", Some(error.code)),
            ("error_description", Some(&error.description)),
            ("state", state),
        ],
    )
}
