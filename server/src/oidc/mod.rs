//! The OpenID Connect provider: a browser-facing face of the service, a
//! sibling of [`crate::api`], on a listener of its own (`[oidc]`).
//!
//! - [`authorize`] takes authorization requests (directly, or pushed by a
//!   confidential client: RFC 9126), checks them against the registered
//!   client and stores them as authorizations.
//! - [`verify`] is the hosted verification page: it starts the sign-in
//!   challenge (or, for a first device, the enrollment) through the domain,
//!   follows it live, shows every outcome, and sends the person back to the
//!   relying party with a code or an error.
//! - [`token`] redeems codes for id_tokens signed with [`keys`].
//!
//! Endpoints (under the issuer's path): `/.well-known/openid-configuration`,
//! `/jwks`, `/authorize`, `/par`, `/token`, and `/verify/{id}…`.

mod authorize;
pub mod config;
mod entra;
mod error;
mod i18n;
mod keys;
mod listener;
mod pages;
mod token;
mod verify;

use crate::{client_address::TrustedProxies, config::Config, domain::Service, tls::TlsError};
use axum::{
    extract::State,
    http::header,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use keys::{Keys, Rotation};
use serde_json::json;
use std::{net::SocketAddr, sync::Arc};
use tokio::{net::TcpListener, task::JoinHandle};

/// The provider's shared state.
#[derive(Clone)]
struct Provider(Arc<Inner>);

struct Inner {
    service: Service,
    /// The issuer URL, without a trailing slash.
    issuer: String,
    /// The issuer's path (empty, or like `/mfa`), under which routes live.
    base_path: String,
    config: config::OidcConfig,
    keys: Keys,
    /// The Entra tenants' keys, for external methods' `id_token_hint`.
    entra: entra::EntraKeys,
}

impl std::ops::Deref for Provider {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// An endpoint's public URL.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A page's path on this listener.
    fn path(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }
}

/// A started provider.
pub struct RunningProvider {
    pub addr: SocketAddr,
    pub issuer: String,
    pub task: JoinHandle<()>,
}

/// Why the provider could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("oidc.issuer {0:?}: {1}")]
    Issuer(String, String),
    #[error("oidc.listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Binds and starts the provider if `oidc.listen` is set.
pub async fn start(
    config: &Config,
    service: Service,
) -> Result<Option<RunningProvider>, StartError> {
    let Some(listen) = config.oidc.listen else {
        return Ok(None);
    };
    // Checked before binding, so that plaintext never opens where it is not allowed.
    let tls = config.tls.rustls_config(listen, "the OpenID provider")?;
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let issuer = config.oidc.issuer_for(addr, tls.is_some());
    let parsed =
        url::Url::parse(&issuer).map_err(|e| StartError::Issuer(issuer.clone(), e.to_string()))?;
    if !matches!(parsed.scheme(), "https" | "http")
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(StartError::Issuer(
            issuer,
            "must be an http(s) URL without query or fragment".into(),
        ));
    }
    let base_path = parsed.path().trim_end_matches('/').to_owned();
    let rotation = Rotation {
        every: config.oidc.key_rotation,
        publish_ahead: config.oidc.key_publish_ahead,
        token_ttl: config.oidc.id_token_ttl,
    };
    let provider = Provider(Arc::new(Inner {
        keys: Keys::new(service.clone(), rotation),
        entra: entra::EntraKeys::default(),
        service: service.clone(),
        issuer: issuer.clone(),
        base_path,
        config: config.oidc.clone(),
    }));
    let app = router(provider);
    tracing::info!(%addr, %issuer, "OpenID provider listening");
    let task = tokio::spawn(listener::serve(
        listener,
        tls,
        TrustedProxies::new(&config.trusted_proxies),
        app,
        service,
    ));
    Ok(Some(RunningProvider { addr, issuer, task }))
}

fn router(provider: Provider) -> Router {
    let routes = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route(
            "/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/par", post(authorize::pushed))
        .route("/token", post(token::token))
        .route("/verify/{id}", get(verify::page))
        .route("/verify/{id}/status", get(verify::status))
        .route("/verify/{id}/retry", post(verify::retry))
        .route("/verify/{id}/return", post(verify::give_up))
        .with_state(provider.clone());
    if provider.base_path.is_empty() {
        routes
    } else {
        Router::new().nest(&provider.base_path, routes)
    }
}

/// OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3).
async fn discovery(State(p): State<Provider>) -> impl IntoResponse {
    Json(json!({
        "issuer": p.issuer,
        "authorization_endpoint": p.url("/authorize"),
        "token_endpoint": p.url("/token"),
        "pushed_authorization_request_endpoint": p.url("/par"),
        "jwks_uri": p.url("/jwks"),
        "scopes_supported": ["openid"],
        "response_types_supported": ["code", "id_token"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "implicit"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "oid", "tid"],
        "claims_parameter_supported": true,
        "acr_values_supported": [authorize::ENTRA_ACR],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
}

/// The published signing keys.
async fn jwks(State(p): State<Provider>) -> axum::response::Response {
    match p.keys.jwks().await {
        Ok(jwks) => (
            [(header::CACHE_CONTROL, "public, max-age=3600")],
            Json(jwks),
        )
            .into_response(),
        Err(e) => error::server_error(&e).into_response(),
    }
}
