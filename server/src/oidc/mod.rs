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
        .layer(axum::middleware::map_response(browser_headers))
        .with_state(provider.clone());
    if provider.base_path.is_empty() {
        routes
    } else {
        Router::new().nest(&provider.base_path, routes)
    }
}

/// What every answer tells the browser: no framing (the verification page
/// must not be overlaid by another site's), no sniffing, no referrer (URLs
/// carry authorization ids and codes).
async fn browser_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
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
        "acr_values_supported": authorize::POSSESSION_ACRS,
        "claim_types_supported": ["normal"],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::build_service;
    use axum::{
        body::Body,
        http::{Request, StatusCode},
    };
    use tower::ServiceExt;

    const REDIRECT: &str = "https://rp.example.com/cb";
    const ISSUER: &str = "https://login.example.com/mfa";

    struct Setup {
        app: Router,
        confidential: (String, String),
        public: String,
        _dir: tempfile::TempDir,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let service = build_service(&config, "http://127.0.0.1:1".into())
            .await
            .unwrap();
        let tenant = service.create_tenant("Example", 2).await.unwrap();
        let uris = [REDIRECT.to_owned()];
        let confidential = service
            .register_oidc_client(&tenant.id, "RP", &uris, true, None)
            .await
            .unwrap();
        let public = service
            .register_oidc_client(&tenant.id, "SPA", &uris, false, None)
            .await
            .unwrap();
        let rotation = Rotation {
            every: config.oidc.key_rotation,
            publish_ahead: config.oidc.key_publish_ahead,
            token_ttl: config.oidc.id_token_ttl,
        };
        let provider = Provider(Arc::new(Inner {
            keys: Keys::new(service.clone(), rotation),
            entra: entra::EntraKeys::default(),
            service,
            issuer: ISSUER.into(),
            base_path: "/mfa".into(),
            config: config.oidc.clone(),
        }));
        Setup {
            app: router(provider),
            confidential: (confidential.client.client_id, confidential.secret.unwrap()),
            public: public.client.client_id,
            _dir: dir,
        }
    }

    async fn get(app: &Router, uri: &str) -> axum::response::Response {
        app.clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    /// The query of a redirect to the client.
    fn redirected(response: &axum::response::Response) -> Vec<(String, String)> {
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        url::Url::parse(location)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn authorization_errors_go_to_the_person_or_to_the_client_as_the_spec_says() {
        let s = setup().await;
        let client = &s.confidential.0;
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let base = |client: &str| {
            format!(
                "/mfa/authorize?client_id={client}&redirect_uri={}&state=s1&scope=openid",
                urlencode(REDIRECT)
            )
        };

        // Unknown client or foreign redirect URI: a page, never a redirect.
        for uri in [
            "/mfa/authorize?client_id=nope&response_type=code".to_owned(),
            format!(
                "/mfa/authorize?client_id={client}&redirect_uri={}&response_type=code",
                urlencode("https://evil.example.com/cb")
            ),
        ] {
            let response = get(&s.app, &uri).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
            assert!(!response.headers().contains_key(header::LOCATION));
        }

        // Everything else: back to the client with the error and the state.
        for (query, error) in [
            (
                "&response_type=token&login_hint=u",
                "unsupported_response_type",
            ),
            ("&response_type=code", "invalid_request"),
            (
                "&response_type=code&login_hint=u&prompt=none",
                "interaction_required",
            ),
            (
                "&response_type=code&login_hint=u&max_age=soon",
                "invalid_request",
            ),
            (
                "&response_type=code&login_hint=u&code_challenge=abc&code_challenge_method=plain",
                "invalid_request",
            ),
        ] {
            let response = get(&s.app, &format!("{}{query}", base(client))).await;
            let answer = redirected(&response);
            assert_eq!(param(&answer, "error"), Some(error), "{query}");
            assert_eq!(param(&answer, "state"), Some("s1"));
            assert_eq!(param(&answer, "iss"), Some(ISSUER));
            assert!(param(&answer, "code").is_none());
        }
        let no_openid = get(
            &s.app,
            &format!("/mfa/authorize?client_id={client}&redirect_uri={}&scope=profile&response_type=code&login_hint=u", urlencode(REDIRECT)),
        )
        .await;
        assert_eq!(
            param(&redirected(&no_openid), "error"),
            Some("invalid_scope")
        );
        // A public client must use PKCE.
        let public = get(
            &s.app,
            &format!("{}&response_type=code&login_hint=u", base(&s.public)),
        )
        .await;
        assert_eq!(
            param(&redirected(&public), "error"),
            Some("invalid_request")
        );

        // A good request goes on to its verification page.
        let good = get(
            &s.app,
            &format!(
                "{}&response_type=code&login_hint=u&nonce=n&max_age=0&code_challenge={challenge}&code_challenge_method=S256",
                base(&s.public)
            ),
        )
        .await;
        assert_eq!(good.status(), StatusCode::SEE_OTHER);
        let location = good.headers()[header::LOCATION].to_str().unwrap();
        assert!(location.starts_with("/mfa/verify/"), "{location}");
    }

    #[tokio::test]
    async fn the_token_endpoint_refuses_bad_clients_and_codes_in_json() {
        let s = setup().await;
        let (client, secret) = &s.confidential;
        let token = |auth: Option<String>, body: String| {
            let mut request = Request::post("/mfa/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            s.app
                .clone()
                .oneshot(request.body(Body::from(body)).unwrap())
        };
        let basic = |id: &str, secret: &str| {
            use base64::Engine;
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
            ))
        };
        let code_body = format!(
            "grant_type=authorization_code&code=abc&redirect_uri={}",
            urlencode(REDIRECT)
        );
        for (auth, body, status, error) in [
            (
                basic(client, "wrong"),
                code_body.clone(),
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            (
                None,
                code_body.clone(),
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            (
                basic(client, secret),
                code_body.clone(),
                StatusCode::BAD_REQUEST,
                "invalid_grant",
            ),
            (
                basic(client, secret),
                "grant_type=password".into(),
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
            ),
            (
                None,
                format!("{code_body}&client_id={}", s.public),
                StatusCode::BAD_REQUEST,
                "invalid_grant",
            ),
        ] {
            let response = token(auth, body.clone()).await.unwrap();
            assert_eq!(response.status(), status, "{body}");
            if status == StatusCode::UNAUTHORIZED {
                assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
            }
            let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(json["error"], error, "{body}");
        }
    }

    #[tokio::test]
    async fn discovery_names_the_endpoints_under_the_issuer_and_jwks_has_a_key() {
        let s = setup().await;
        let response = get(&s.app, "/mfa/.well-known/openid-configuration").await;
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        let metadata: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(metadata["issuer"], ISSUER);
        assert_eq!(metadata["token_endpoint"], format!("{ISSUER}/token"));
        assert_eq!(metadata["jwks_uri"], format!("{ISSUER}/jwks"));
        let response = get(&s.app, "/mfa/jwks").await;
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        let jwks: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(jwks["keys"][0]["alg"], "RS256");
    }

    fn urlencode(text: &str) -> String {
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
    }
}
