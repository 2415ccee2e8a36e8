//! Local stand-ins for Apple's and Google's push services, speaking HTTP/2 on
//! loopback: APNs over TLS with a certificate from a CA generated here, FCM
//! HTTP v1 and its OAuth token endpoint. Both check authentication the way
//! the real services do (the ES256 provider token against the team's public
//! key; the RS256 JWT-bearer assertion against the service account's, or the
//! refresh token of a person's credentials), record every request, and
//! answer with scripted replies in the providers' formats. Beside them, a
//! stand-in for Google's metadata server (plain HTTP/1.1, as the real one)
//! hands out the FCM stand-in's tokens as a workload's would.

use crate::within;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{rt::TokioExecutor, rt::TokioIo, server::conn::auto};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mfa_proto::v1::{ChallengeState, PushDelivery, PushDeliveryState};
use mfa_sdk::portal::RelyingParty;
use mfa_server::push::{
    config::{ApnsConfig, ApnsEnvironment, FcmConfig, GoogleEnvironment, PushConfig},
    proxy::ProxyEnvironment,
};
use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{net::TcpListener, sync::Notify};

/// The APNs key id and team id the stand-in expects.
pub const APNS_KEY_ID: &str = "KEYID12345";
pub const APNS_TEAM_ID: &str = "TEAMID1234";
/// The app's bundle id.
pub const APNS_TOPIC: &str = "com.example.authenticator";
/// The Firebase project.
pub const FCM_PROJECT: &str = "mfa-test-project";
const FCM_CLIENT_EMAIL: &str = "mfa-push@mfa-test-project.iam.gserviceaccount.com";
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The OAuth client and refresh token of the person whose user credentials
/// (`authorized_user`) the token endpoint knows.
const FCM_USER_CLIENT_ID: &str = "32555940559.apps.googleusercontent.com";
/// Secrets of the stand-in's user credentials: tests check they never show.
pub const FCM_USER_CLIENT_SECRET: &str = "stand-in-client-secret-ZmQ0";
pub const FCM_USER_REFRESH_TOKEN: &str = "1//stand-in-refresh-token-Y2E5";
/// The metadata server's paths: the workload's service account, its token.
const METADATA_ACCOUNT: &str = "/computeMetadata/v1/instance/service-accounts/default/";
const METADATA_TOKEN: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const FCM_PRIVATE_KEY: &str = include_str!("../fixtures/fcm-test-service-account-key.pem");
const FCM_PUBLIC_KEY: &str = include_str!("../fixtures/fcm-test-service-account-key.pub.pem");

/// A scripted answer; requests beyond the script are accepted.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    /// APNs `reason`, or FCM `errorCode`.
    pub reason: &'static str,
    pub retry_after: Option<u64>,
    /// Answer only after this long (to cross the client's timeout).
    pub delay: Duration,
}

impl Scripted {
    /// An error answer.
    pub fn error(status: u16, reason: &'static str) -> Self {
        Self {
            status,
            reason,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }

    /// A success after `delay`.
    pub fn slow(delay: Duration) -> Self {
        Self {
            status: 200,
            reason: "",
            retry_after: None,
            delay,
        }
    }
}

/// A request a stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: std::time::Instant,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
    /// The bearer token it carried.
    pub bearer: String,
}

#[derive(Default)]
pub struct Log {
    requests: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Scripted>>,
    arrived: Notify,
}

/// What tests do with either stand-in (for FCM: its message requests).
pub trait StandIn {
    #[doc(hidden)]
    fn log(&self) -> &Log;

    /// Answers the next requests with these replies, in order.
    fn script(&self, replies: impl IntoIterator<Item = Scripted>) {
        self.log().script.lock().unwrap().extend(replies);
    }

    /// Every request so far.
    fn requests(&self) -> Vec<Received> {
        self.log().requests()
    }

    /// Waits until `count` requests have arrived.
    fn wait_for(&self, count: usize) -> impl std::future::Future<Output = Vec<Received>> {
        self.log().wait_for(count)
    }
}

impl StandIn for ApnsStandIn {
    fn log(&self) -> &Log {
        &self.log
    }
}

impl StandIn for FcmStandIn {
    fn log(&self) -> &Log {
        &self.log
    }
}

impl Log {
    fn record(&self, received: Received) -> Option<Scripted> {
        self.requests.lock().unwrap().push(received);
        self.arrived.notify_waiters();
        self.script.lock().unwrap().pop_front()
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Received> {
        loop {
            let arrived = self.arrived.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            arrived.await;
        }
    }
}

/// A CA made for one test, and a certificate it signed for 127.0.0.1 (or
/// for the names a test gives).
pub struct TestCa {
    cert_pem: String,
    server: rustls::ServerConfig,
}

impl TestCa {
    pub fn new() -> Self {
        Self::for_names(&["127.0.0.1", "localhost"])
    }

    /// A CA whose servers' certificate names `names` (a provider's own
    /// host names, for a stand-in reached through a proxy).
    pub fn for_names(names: &[&str]) -> Self {
        use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        let pki = crate::tls::TestPki::new("mfa test CA");
        let leaf = pki.server_for(names);
        let mut server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec()];
        Self {
            cert_pem: pki.ca_pem(),
            server,
        }
    }

    /// Writes the CA certificate (what `ca_file` points to).
    pub fn write(&self, path: &Path) {
        std::fs::write(path, &self.cert_pem).unwrap();
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// The HTTP a stand-in speaks.
#[derive(Clone, Copy)]
enum Wire {
    /// HTTP/2 over TLS when a TLS configuration is given, cleartext HTTP/2
    /// (prior knowledge) otherwise.
    Http2,
    /// Cleartext HTTP/1.1.
    Http1,
}

/// Serves `handle` on a loopback port.
async fn serve<H, F>(tls: Option<rustls::ServerConfig>, wire: Wire, handle: H) -> SocketAddr
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.map(|config| tokio_rustls::TlsAcceptor::from(Arc::new(config)));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handle = handle.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = handle(request);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let builder = match wire {
                    Wire::Http2 => builder.http2_only(),
                    Wire::Http1 => builder.http1_only(),
                };
                let _ = match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                        Err(_) => return,
                    },
                    None => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                };
            });
        }
    });
    addr
}

fn json_response(
    status: u16,
    body: serde_json::Value,
    headers: &[(&str, String)],
) -> Response<Full<Bytes>> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, value);
    }
    response
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn read(request: Request<Incoming>) -> (http::request::Parts, Bytes) {
    let (parts, body) = request.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

fn bearer(headers: &http::HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').map(|(_, token)| token.to_owned()))
        .unwrap_or_default()
}

/// The APNs stand-in.
pub struct ApnsStandIn {
    pub addr: SocketAddr,
    log: Arc<Log>,
    /// The team's `.p8` key (PKCS#8 PEM), as the operator would keep it.
    pub key_pem: String,
}

impl ApnsStandIn {
    /// Starts with a new team key; requests must be signed by it.
    pub async fn start(ca: &TestCa) -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let public = DecodingKey::from_ec_pem(key.public_key_pem().as_bytes()).unwrap();
        let log = Arc::new(Log::default());
        let state = (log.clone(), Arc::new(public));
        let addr = serve(Some(ca.server.clone()), Wire::Http2, move |request| {
            let (log, public) = state.clone();
            async move { apns_handle(request, &log, &public).await }
        })
        .await;
        Self {
            addr,
            log,
            key_pem: key.serialize_pem(),
        }
    }

    /// The `[push.apns]` settings for this stand-in (key written into `dir`).
    pub fn config(&self, dir: &Path, ca_file: &Path) -> ApnsConfig {
        let key_file = dir.join("apns-key.p8");
        std::fs::write(&key_file, &self.key_pem).unwrap();
        ApnsConfig {
            key_file,
            key_id: APNS_KEY_ID.into(),
            team_id: APNS_TEAM_ID.into(),
            topic: APNS_TOPIC.into(),
            environment: ApnsEnvironment::Sandbox,
            origin: Some(format!("https://127.0.0.1:{}", self.addr.port())),
            ca_file: Some(ca_file.to_path_buf()),
        }
    }
}

async fn apns_handle(
    request: Request<Incoming>,
    log: &Log,
    public: &DecodingKey,
) -> Response<Full<Bytes>> {
    let (parts, body) = read(request).await;
    let bearer = bearer(&parts.headers);
    let received = Received {
        at: std::time::Instant::now(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: serde_json::from_slice(&body).unwrap_or_default(),
        bearer: bearer.clone(),
    };
    let scripted = log.record(received);
    let reason = |status: u16, reason: &str| {
        json_response(status, serde_json::json!({ "reason": reason }), &[])
    };
    // Apple's checks, in the order it documents them.
    if parts.method != http::Method::POST || !parts.uri.path().starts_with("/3/device/") {
        return reason(405, "MethodNotAllowed");
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let Ok(token) = jsonwebtoken::decode::<serde_json::Value>(&bearer, public, &validation) else {
        return reason(403, "InvalidProviderToken");
    };
    if token.header.kid.as_deref() != Some(APNS_KEY_ID)
        || token.claims["iss"] != APNS_TEAM_ID
        || !token.claims["iat"].is_u64()
    {
        return reason(403, "InvalidProviderToken");
    }
    // Apple refuses a token issued more than an hour ago, by its clock.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if token.claims["iat"].as_u64().unwrap_or_default() + 3600 < now {
        return reason(403, "ExpiredProviderToken");
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    if header("apns-topic") != APNS_TOPIC {
        return reason(400, "TopicDisallowed");
    }
    if header("apns-push-type") != "alert" {
        return reason(400, "InvalidPushType");
    }
    if header("apns-priority") != "10" {
        return reason(400, "BadPriority");
    }
    if header("apns-expiration").parse::<u64>().is_err() {
        return reason(400, "BadExpirationDate");
    }
    if header("apns-collapse-id").is_empty() || header("apns-collapse-id").len() > 64 {
        return reason(400, "BadCollapseId");
    }
    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return reason(400, "PayloadEmpty");
    }
    if let Some(scripted) = scripted {
        tokio::time::sleep(scripted.delay).await;
        if scripted.status != 200 {
            let mut response = reason(scripted.status, scripted.reason);
            if let Some(after) = scripted.retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", after.to_string().parse().unwrap());
            }
            return response;
        }
    }
    json_response(
        200,
        serde_json::json!({}),
        &[("apns-id", uuid::Uuid::new_v4().to_string().to_uppercase())],
    )
}

/// The FCM stand-in: messages and the OAuth token endpoint on one origin,
/// or (over TLS, as Google's own) each on its own.
pub struct FcmStandIn {
    /// Where messages (and, in cleartext, token requests) are received.
    pub addr: SocketAddr,
    /// Where token requests are received.
    pub token_addr: SocketAddr,
    origin: String,
    token_uri: String,
    log: Arc<Log>,
    tokens: Arc<TokenEndpoint>,
}

/// Where an access token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// The service account's JWT-bearer assertion.
    ServiceAccount,
    /// The refresh token of a person's credentials.
    User,
    /// The metadata server, for the workload's service account.
    MetadataServer,
}

/// An access token handed out.
struct Issued {
    token: String,
    grant: Grant,
    revoked: bool,
}

#[derive(Default)]
struct TokenEndpoint {
    issued: Mutex<Vec<Issued>>,
    expires_in: Mutex<u64>,
    /// Whether the service account's key has been deleted in the console.
    key_deleted: std::sync::atomic::AtomicBool,
}

impl TokenEndpoint {
    /// A new access token; its prefix tells the grant (`ya29.stand-in-N`
    /// for a service account key, `ya29.user-N`, `ya29.metadata-N`).
    fn issue(&self, grant: Grant) -> Response<Full<Bytes>> {
        let mut issued = self.issued.lock().unwrap();
        let kind = match grant {
            Grant::ServiceAccount => "stand-in",
            Grant::User => "user",
            Grant::MetadataServer => "metadata",
        };
        let access_token = format!("ya29.{kind}-{}", issued.len() + 1);
        issued.push(Issued {
            token: access_token.clone(),
            grant,
            revoked: false,
        });
        let expires_in = *self.expires_in.lock().unwrap();
        json_response(
            200,
            serde_json::json!({"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer"}),
            &[],
        )
    }

    /// The grant of a valid token.
    fn grant_of(&self, token: &str) -> Option<Grant> {
        let issued = self.issued.lock().unwrap();
        issued
            .iter()
            .find(|issued| issued.token == token && !issued.revoked)
            .map(|issued| issued.grant)
    }
}

/// What the FCM stand-in's listeners share.
#[derive(Clone)]
struct FcmState {
    log: Arc<Log>,
    tokens: Arc<TokenEndpoint>,
    public: Arc<DecodingKey>,
    /// The token endpoint's URL, which assertions must be addressed to.
    audience: Arc<Mutex<String>>,
}

impl FcmState {
    fn new() -> Self {
        let tokens = Arc::new(TokenEndpoint::default());
        *tokens.expires_in.lock().unwrap() = 3600;
        Self {
            log: Arc::new(Log::default()),
            tokens,
            public: Arc::new(DecodingKey::from_rsa_pem(FCM_PUBLIC_KEY.as_bytes()).unwrap()),
            audience: Arc::new(Mutex::new(String::new())),
        }
    }

    /// Serves messages and token requests on a loopback port.
    async fn serve(&self, tls: Option<rustls::ServerConfig>) -> SocketAddr {
        let state = self.clone();
        serve(tls, Wire::Http2, move |request| {
            let state = state.clone();
            async move {
                let audience = state.audience.lock().unwrap().clone();
                fcm_handle(request, &state.log, &state.tokens, &state.public, &audience).await
            }
        })
        .await
    }
}

impl FcmStandIn {
    /// Starts on cleartext HTTP/2 (loopback).
    pub async fn start() -> Self {
        let state = FcmState::new();
        let addr = state.serve(None).await;
        let origin = format!("http://127.0.0.1:{}", addr.port());
        let token_uri = format!("{origin}/token");
        *state.audience.lock().unwrap() = token_uri.clone();
        Self {
            addr,
            token_addr: addr,
            origin,
            token_uri,
            log: state.log,
            tokens: state.tokens,
        }
    }

    /// Starts over TLS as Google's own origins, for a proxy to route to:
    /// messages for `https://fcm.googleapis.com` with a certificate of
    /// `messages_ca` (on `addr`), the token endpoint
    /// `https://oauth2.googleapis.com/token` with one of `token_ca` (on
    /// `token_addr`).
    pub async fn start_as_google(messages_ca: &TestCa, token_ca: &TestCa) -> Self {
        let state = FcmState::new();
        let token_uri = "https://oauth2.googleapis.com/token".to_owned();
        *state.audience.lock().unwrap() = token_uri.clone();
        Self {
            addr: state.serve(Some(messages_ca.server.clone())).await,
            token_addr: state.serve(Some(token_ca.server.clone())).await,
            origin: "https://fcm.googleapis.com".into(),
            token_uri,
            log: state.log,
            tokens: state.tokens,
        }
    }

    /// The messaging origin: `http://127.0.0.1:PORT` (also the token
    /// endpoint's), or Google's.
    pub fn origin(&self) -> String {
        self.origin.clone()
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.tokens.issued.lock().unwrap().len()
    }

    /// The lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, seconds: u64) {
        *self.tokens.expires_in.lock().unwrap() = seconds;
    }

    /// Deletes the service account's key, as an administrator would in the
    /// Cloud console: grants for it are refused from now on (`invalid_grant`).
    pub fn delete_key(&self) {
        self.tokens
            .key_deleted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Revokes every access token issued so far: messages carrying one are
    /// answered 401, as Google answers a revoked or expired token.
    pub fn revoke_tokens(&self) {
        for issued in self.tokens.issued.lock().unwrap().iter_mut() {
            issued.revoked = true;
        }
    }

    /// The service account key file, as the Firebase console hands it out,
    /// with its token endpoint here.
    pub fn service_account_key(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "service_account",
            "project_id": FCM_PROJECT,
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": FCM_PRIVATE_KEY,
            "client_email": FCM_CLIENT_EMAIL,
            "client_id": "100000000000000000000",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        })
    }

    /// A person's credentials as `gcloud auth application-default login`
    /// writes them, with the `quota_project_id` that
    /// `gcloud auth application-default set-quota-project` adds.
    pub fn user_credentials(quota_project: Option<&str>) -> serde_json::Value {
        let mut file = serde_json::json!({
            "account": "",
            "client_id": FCM_USER_CLIENT_ID,
            "client_secret": FCM_USER_CLIENT_SECRET,
            "refresh_token": FCM_USER_REFRESH_TOKEN,
            "type": "authorized_user",
            "universe_domain": "googleapis.com",
        });
        if let Some(project) = quota_project {
            file["quota_project_id"] = project.into();
        }
        file
    }

    /// The `[push.fcm]` settings with a service account key (written into
    /// `dir`), nothing read from the test process's environment.
    pub fn config(&self, dir: &Path) -> FcmConfig {
        let service_account_file = dir.join("fcm-service-account.json");
        std::fs::write(
            &service_account_file,
            self.service_account_key().to_string(),
        )
        .unwrap();
        FcmConfig {
            service_account_file: Some(service_account_file),
            origin: Some(self.origin()),
            environment: Some(GoogleEnvironment::default()),
            ..FcmConfig::default()
        }
    }
}

async fn fcm_handle(
    request: Request<Incoming>,
    log: &Log,
    tokens: &TokenEndpoint,
    public: &DecodingKey,
    audience: &str,
) -> Response<Full<Bytes>> {
    let (parts, body) = read(request).await;
    if parts.uri.path() == "/token" {
        return token_handle(&body, tokens, public, audience);
    }
    let bearer = bearer(&parts.headers);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let scripted = log.record(Received {
        at: std::time::Instant::now(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: body.clone(),
        bearer: bearer.clone(),
    });
    let error = |status: u16, code: &str, fcm_code: Option<&str>| {
        let details: Vec<serde_json::Value> = fcm_code
            .map(|c| serde_json::json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": c}))
            .into_iter()
            .collect();
        serde_json::json!({"error": {"code": status, "message": "stand-in", "status": code, "details": details}})
    };
    if parts.uri.path() != format!("/v1/projects/{FCM_PROJECT}/messages:send") {
        return json_response(404, error(404, "NOT_FOUND", None), &[]);
    }
    let Some(grant) = tokens.grant_of(&bearer) else {
        return json_response(401, error(401, "UNAUTHENTICATED", None), &[]);
    };
    // FCM bills a person's requests to a quota project, and refuses them
    // without one.
    if grant == Grant::User
        && parts
            .headers
            .get("x-goog-user-project")
            .is_none_or(|project| project.is_empty())
    {
        return json_response(403, error(403, "PERMISSION_DENIED", None), &[]);
    }
    let message = &body["message"];
    if !message["token"].is_string() || !message["data"].is_object() {
        return json_response(
            400,
            error(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT")),
            &[],
        );
    }
    if let Some(scripted) = scripted {
        tokio::time::sleep(scripted.delay).await;
        if scripted.status != 200 {
            let status_name = match scripted.status {
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                _ => "INTERNAL",
            };
            let headers: Vec<(&str, String)> = scripted
                .retry_after
                .map(|after| ("retry-after", after.to_string()))
                .into_iter()
                .collect();
            let body = error(scripted.status, status_name, Some(scripted.reason));
            return json_response(scripted.status, body, &headers);
        }
    }
    let name = format!(
        "projects/{FCM_PROJECT}/messages/{}",
        uuid::Uuid::new_v4().simple()
    );
    json_response(200, serde_json::json!({ "name": name }), &[])
}

/// Google's token endpoint: the JWT-bearer grant, whose assertion must be
/// an RS256 JWT (base64url, as RFC 7515 has it) by the service account's
/// key for the messaging scope, addressed to this endpoint; and the
/// refresh-token grant of the one person's credentials it knows.
fn token_handle(
    body: &[u8],
    tokens: &TokenEndpoint,
    public: &DecodingKey,
    audience: &str,
) -> Response<Full<Bytes>> {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let invalid = |status: u16, error: &str, why: &str| {
        json_response(
            status,
            serde_json::json!({"error": error, "error_description": why}),
            &[],
        )
    };
    match field("grant_type") {
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let mut validation = Validation::new(Algorithm::RS256);
            validation.set_audience(&[audience]);
            validation.set_issuer(&[FCM_CLIENT_EMAIL]);
            let Ok(token) =
                jsonwebtoken::decode::<serde_json::Value>(field("assertion"), public, &validation)
            else {
                return invalid(400, "invalid_grant", "Invalid JWT Signature.");
            };
            if token.claims["scope"] != FCM_SCOPE {
                return invalid(400, "invalid_scope", "bad scope");
            }
            if tokens
                .key_deleted
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                return invalid(400, "invalid_grant", "Invalid JWT Signature.");
            }
            tokens.issue(Grant::ServiceAccount)
        }
        "refresh_token" => {
            if field("client_id") != FCM_USER_CLIENT_ID
                || field("client_secret") != FCM_USER_CLIENT_SECRET
            {
                return invalid(401, "invalid_client", "The OAuth client was not found.");
            }
            if field("refresh_token") != FCM_USER_REFRESH_TOKEN {
                return invalid(400, "invalid_grant", "Token has been expired or revoked.");
            }
            tokens.issue(Grant::User)
        }
        _ => invalid(400, "unsupported_grant_type", "Invalid grant_type."),
    }
}

/// A request the metadata server stand-in received.
#[derive(Debug, Clone)]
pub struct MetadataRequest {
    pub path: String,
    pub query: String,
    pub headers: http::HeaderMap,
}

/// Google's metadata server on a loopback port, plain HTTP/1.1: it answers
/// only requests with `Metadata-Flavor: Google` and without
/// `X-Forwarded-For` (as the real one, against requests relayed from
/// outside), says `Metadata-Flavor: Google` in every answer, and hands out
/// access tokens of the FCM stand-in for the workload's service account.
pub struct MetadataStandIn {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<MetadataRequest>>>,
    /// The status token requests are refused with, if they are.
    refusal: Arc<Mutex<Option<u16>>>,
}

impl MetadataStandIn {
    /// Starts one whose tokens `fcm` accepts.
    pub async fn start(fcm: &FcmStandIn) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let refusal = Arc::new(Mutex::new(None));
        let state = (fcm.tokens.clone(), requests.clone(), refusal.clone());
        let addr = serve(None, Wire::Http1, move |request| {
            let (tokens, requests, refusal) = state.clone();
            async move {
                let status = *refusal.lock().unwrap();
                metadata_handle(request, &tokens, &requests, status)
            }
        })
        .await;
        Self {
            addr,
            requests,
            refusal,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Every request so far, refused ones included.
    pub fn requests(&self) -> Vec<MetadataRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Refuses token requests with `status` from now on (as GKE does for a
    /// workload whose service account lacks the binding), or no longer.
    pub fn refuse_tokens(&self, status: Option<u16>) {
        *self.refusal.lock().unwrap() = status;
    }
}

fn metadata_handle(
    request: Request<Incoming>,
    tokens: &TokenEndpoint,
    requests: &Mutex<Vec<MetadataRequest>>,
    refusal: Option<u16>,
) -> Response<Full<Bytes>> {
    let (parts, _) = request.into_parts();
    requests.lock().unwrap().push(MetadataRequest {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers.clone(),
    });
    let text = |status: u16, body: &str| {
        Response::builder()
            .status(status)
            .header("metadata-flavor", "Google")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    if parts
        .headers
        .get("metadata-flavor")
        .is_none_or(|flavor| flavor != "Google")
    {
        return text(
            403,
            "Missing required header \"Metadata-Flavor\": \"Google\"",
        );
    }
    if parts.headers.contains_key("x-forwarded-for") {
        return text(403, "Request denied: X-Forwarded-For is not allowed");
    }
    match (parts.uri.path(), refusal) {
        (METADATA_ACCOUNT, _) => text(200, "aliases\nemail\nidentity\nscopes\ntoken\n"),
        (METADATA_TOKEN, Some(status)) => text(status, "Unable to generate access token"),
        (METADATA_TOKEN, None) => {
            let mut response = tokens.issue(Grant::MetadataServer);
            response
                .headers_mut()
                .insert("metadata-flavor", "Google".parse().unwrap());
            response
        }
        _ => text(404, "Not Found"),
    }
}

/// Both stand-ins and the `[push]` settings that point the server at them,
/// with short timeouts and backoff so that retries happen within a test.
pub struct PushStandIns {
    pub apns: ApnsStandIn,
    pub fcm: FcmStandIn,
    pub config: PushConfig,
}

impl PushStandIns {
    /// Starts both; credentials and the CA file are written into `dir`.
    pub async fn start(dir: &Path) -> Self {
        let ca = TestCa::new();
        let ca_file = dir.join("push-ca.pem");
        ca.write(&ca_file);
        let apns = ApnsStandIn::start(&ca).await;
        let fcm = FcmStandIn::start().await;
        let config = PushConfig {
            apns: Some(apns.config(dir, &ca_file)),
            fcm: Some(fcm.config(dir)),
            ..quick_push_config()
        };
        Self { apns, fcm, config }
    }

    /// The `MFA_PUSH__*` variables that point a `mfa-server` process at
    /// both stand-ins (the files are those of [`Self::start`]'s `dir`).
    pub fn environment(&self) -> Vec<(String, String)> {
        let apns = self.config.apns.as_ref().expect("APNs configured");
        let fcm = self.config.fcm.as_ref().expect("FCM configured");
        let path = |p: &Path| p.display().to_string();
        [
            ("APNS__KEY_FILE", path(&apns.key_file)),
            ("APNS__KEY_ID", apns.key_id.clone()),
            ("APNS__TEAM_ID", apns.team_id.clone()),
            ("APNS__TOPIC", apns.topic.clone()),
            ("APNS__ENVIRONMENT", "sandbox".into()),
            ("APNS__ORIGIN", apns.origin.clone().unwrap_or_default()),
            (
                "APNS__CA_FILE",
                path(apns.ca_file.as_deref().expect("a CA")),
            ),
            (
                "FCM__SERVICE_ACCOUNT_FILE",
                path(fcm.service_account_file.as_deref().expect("a key")),
            ),
            ("FCM__ORIGIN", fcm.origin.clone().unwrap_or_default()),
            // Straight to the stand-ins, whatever HTTPS_PROXY the runner has.
            ("PROXY", String::new()),
        ]
        .into_iter()
        .map(|(key, value)| (format!("MFA_PUSH__{key}"), value))
        .collect()
    }
}

/// Follows the challenge's watch until every device listed has a delivery
/// in a final state (sent, failed, token invalid) and returns them.
pub async fn settled_deliveries(
    portal: &RelyingParty,
    challenge_id: &str,
    devices: usize,
) -> Vec<PushDelivery> {
    let mut watch = portal.watch_challenge(challenge_id).await.unwrap();
    loop {
        let challenge = within(watch.message())
            .await
            .unwrap()
            .expect("watch open")
            .challenge
            .unwrap();
        let settled = challenge
            .push_deliveries
            .iter()
            .filter(|d| d.state() != PushDeliveryState::Retrying)
            .count();
        if settled == devices {
            return challenge.push_deliveries;
        }
        assert_eq!(
            challenge.state(),
            ChallengeState::Pending,
            "ended before delivery: {challenge:?}"
        );
    }
}

pub fn delivery(deliveries: &[PushDelivery], device_id: &str) -> PushDelivery {
    deliveries
        .iter()
        .find(|d| d.device_id == device_id)
        .unwrap_or_else(|| panic!("no delivery for {device_id}: {deliveries:?}"))
        .clone()
}

/// `[push]` settings without providers, with short timeouts and backoff so
/// that retries happen within a test, and no proxy whatever the test
/// process's environment says.
pub fn quick_push_config() -> PushConfig {
    PushConfig {
        timeout: Duration::from_millis(500),
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        // Tests that check credentials turn it on: a token grant at start
        // would count among the grants other tests count.
        credentials_check_interval: Duration::ZERO,
        proxy_environment: Some(ProxyEnvironment::default()),
        ..PushConfig::default()
    }
}
