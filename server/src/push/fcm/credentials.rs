//! FCM's OAuth2 access tokens, from credentials as Google Cloud workloads
//! have them: a service account key, user credentials (`authorized_user`,
//! as `gcloud auth application-default login` writes them) or the metadata
//! server (Compute Engine, GKE with workload identity, Cloud Run). They are
//! found at set-up in the order Google's client libraries look
//! ([`FcmCredentials::Auto`]). tame-oauth builds each token request and
//! parses the token; our [`Transport`] sends it to the origin we choose,
//! trusting the token endpoint's own CAs (`token_ca_file`) and through the
//! push proxy, if any; the metadata server never goes through a proxy.

use crate::push::{
    config::{FcmConfig, FcmCredentials, GoogleEnvironment},
    retry_after,
    transport::{Connection, Transport, TransportError},
    Outcome, SetupError,
};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use serde_json::Value;
use std::{
    path::Path,
    time::{Duration, Instant},
};
use tame_oauth::gcp::{
    end_user::EndUserCredentialsInner, metadata_server::MetadataServerProviderInner,
    service_account::ServiceAccountProviderInner, EndUserCredentialsInfo, ServiceAccountInfo,
    TokenOrRequest, TokenProvider, TokenProviderWrapperInner,
};
use tokio::sync::Mutex;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// An access token is replaced this long before Google says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// The longest wait for the metadata server at start, when looking for it:
/// where there is one it answers at once; elsewhere the name does not
/// resolve or the link-local address does not answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// What the probe asks for: the workload's service account (404 without).
const PROBE_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/";

/// What the credentials are, as far as the messages care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A service account key, of this project.
    ServiceAccount { project_id: String },
    /// A person's credentials; FCM bills their requests to a quota project,
    /// which it requires (the file's `quota_project_id`, when it has one).
    User { quota_project: Option<String> },
    /// The service account of the workload, from the metadata server.
    MetadataServer,
}

/// Caches `token`, requested at `requested`, until shortly before it
/// expires; returns it.
fn keep(
    current: &mut Option<(String, Instant)>,
    token: tame_oauth::Token,
    requested: Instant,
) -> String {
    let expires_in = u64::try_from(token.expires_in.unwrap_or_default()).unwrap_or_default();
    let lifetime = Duration::from_secs(expires_in).saturating_sub(TOKEN_MARGIN);
    *current = Some((token.access_token.clone(), requested + lifetime));
    token.access_token
}

/// One source of access tokens, and the token it last gave.
pub struct Credentials {
    /// What they are.
    pub kind: Kind,
    /// Where they were found, for the log (a path or an origin, an account's
    /// e-mail address; never a secret).
    pub description: String,
    provider: TokenProviderWrapperInner,
    /// Where token requests go.
    transport: Transport,
    /// How the token endpoint is named in reasons: `oauth` or `metadata
    /// server`.
    endpoint: &'static str,
    /// Held across a fetch so that concurrent sends wait for one token.
    current: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The credentials `config` asks for, found in `config.environment` or
    /// else in this process's environment (read here, once). With `auto`,
    /// nothing found is an error that lists what was tried.
    pub async fn find(config: &FcmConfig, connection: Connection) -> Result<Self, SetupError> {
        let timeout = connection.timeout;
        let environment = config
            .environment
            .clone()
            .unwrap_or_else(GoogleEnvironment::from_process);
        let setup = Setup { config, connection };
        let forced = |name: &str| match &config.service_account_file {
            Some(_) => Err(SetupError(format!(
                "push.fcm.service_account_file is set, but push.fcm.credentials = \"{name}\": \
                 remove one of them"
            ))),
            None => Ok(()),
        };
        let mut tried = Vec::new();
        match config.credentials {
            FcmCredentials::ServiceAccount => {
                let path = config.service_account_file.as_deref().ok_or_else(|| {
                    SetupError(
                        "push.fcm.credentials = \"service-account\" needs \
                         push.fcm.service_account_file"
                            .into(),
                    )
                })?;
                setup.key_file(path)
            }
            FcmCredentials::ApplicationDefault => {
                forced("application-default")?;
                setup
                    .application_default(&environment, &mut tried)?
                    .ok_or_else(|| none_found("no application default credentials", &tried))
            }
            FcmCredentials::MetadataServer => {
                forced("metadata-server")?;
                setup.metadata_server()
            }
            FcmCredentials::Auto => {
                if let Some(path) = &config.service_account_file {
                    return setup.key_file(path);
                }
                tried.push("push.fcm.service_account_file (not set)".to_owned());
                if let Some(found) = setup.application_default(&environment, &mut tried)? {
                    return Ok(found);
                }
                let metadata = setup.metadata_server()?;
                match metadata.probe(timeout.min(PROBE_TIMEOUT)).await {
                    Ok(()) => Ok(metadata),
                    Err(why) => {
                        tried.push(format!("{} ({why})", metadata.description));
                        Err(none_found("no credentials found", &tried))
                    }
                }
            }
        }
    }

    /// The current access token, fetched when there is none or it is about
    /// to expire.
    pub async fn access_token(&self) -> Result<String, Outcome> {
        let mut current = self.current.lock().await;
        if let Some((token, valid_until)) = &*current {
            if Instant::now() < *valid_until {
                return Ok(token.clone());
            }
        }
        let requested = Instant::now();
        let token = self.fetch().await?;
        Ok(keep(&mut current, token, requested))
    }

    /// Asks for a new access token now, and keeps it: whether the
    /// credentials are still granted (a revoked key or grant fails here
    /// rather than at the next push).
    pub async fn check(&self) -> Result<(), String> {
        let mut current = self.current.lock().await;
        let requested = Instant::now();
        let token = self
            .fetch()
            .await
            .map_err(|outcome| outcome.reason().to_owned())?;
        keep(&mut current, token, requested);
        Ok(())
    }

    /// Drops `token` if it is still the cached one.
    pub async fn forget(&self, token: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(t, _)| t == token) {
            *current = None;
        }
    }

    /// One token request, whatever the source: tame-oauth's request sent to
    /// our origin, and the answer classified as FCM's are.
    async fn fetch(&self) -> Result<tame_oauth::Token, Outcome> {
        let request = match self.provider.get_token(&[SCOPE]) {
            Ok(TokenOrRequest::Request { request, .. }) => request,
            Ok(TokenOrRequest::Token(token)) => return Ok(token),
            Err(e) => return Err(Outcome::failed(format!("{}: {e}", self.endpoint))),
        };
        let request = match self.kind {
            Kind::ServiceAccount { .. } => base64url_assertion(request),
            _ => request,
        };
        let request = self
            .transport
            .retarget(request)
            .map_err(Outcome::transport)?;
        let reply = self
            .transport
            .send(request)
            .await
            .map_err(Outcome::transport)?;
        if reply.status.is_success() {
            let response = http::Response::builder()
                .status(reply.status)
                .body(reply.body)
                .map_err(|e| Outcome::failed(e.to_string()))?;
            return self
                .provider
                .parse_token_response(0, response)
                .map_err(|_| {
                    Outcome::failed(format!("{}: the answer has no token", self.endpoint))
                });
        }
        // Only the OAuth error code: an error_description may quote what
        // was sent.
        let code = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|body| body["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {}", reply.status.as_u16()));
        let reason = format!("{}: {code}", self.endpoint);
        Err(
            if reply.status.is_server_error() || reply.status == StatusCode::TOO_MANY_REQUESTS {
                Outcome::Retry {
                    reason,
                    after: retry_after(&reply.headers),
                }
            } else {
                // Refused credentials (a deleted key, a revoked grant, a
                // workload without the role): our set-up, not the device.
                Outcome::Misconfigured { reason }
            },
        )
    }

    /// Whether the metadata server answers, as itself, that this workload
    /// has a service account; why not otherwise.
    async fn probe(&self, within: Duration) -> Result<(), String> {
        let request = self
            .transport
            .get(PROBE_PATH)
            .ok()
            .and_then(|request| {
                let request = request.header("Metadata-Flavor", "Google");
                request.body(Full::new(Bytes::new())).ok()
            })
            .ok_or("the origin makes no request URL")?;
        let no_answer = || format!("no answer within {}", humantime::format_duration(within));
        let reply = match tokio::time::timeout(within, self.transport.send(request)).await {
            Err(_) | Ok(Err(TransportError::Timeout)) => return Err(no_answer()),
            Ok(Err(TransportError::Failed(why) | TransportError::Refused(why))) => {
                return Err(format!("connection: {why}"))
            }
            Ok(Ok(reply)) => reply,
        };
        if reply
            .headers
            .get("metadata-flavor")
            .is_none_or(|flavor| flavor != "Google")
        {
            return Err("the answer is not a metadata server's".into());
        }
        match reply.status {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err("no service account for this workload".into()),
            status => Err(format!("HTTP {}", status.as_u16())),
        }
    }
}

/// A JWT-bearer grant whose assertion's signature is in base64url, as RFC
/// 7515 requires. tame-oauth 0.10 encodes the signature in standard base64
/// (`+` and `/`; its header and claims are right), which a strict token
/// endpoint refuses as an invalid signature. A request already right is
/// left as it is, so a tame-oauth that fixes this changes nothing here.
fn base64url_assertion(request: http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let (mut parts, body) = request.into_parts();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(&body) {
        match name.as_ref() {
            "assertion" => form.append_pair(&name, &value.replace('+', "-").replace('/', "_")),
            _ => form.append_pair(&name, &value),
        };
    }
    let body = form.finish().into_bytes();
    parts
        .headers
        .insert(http::header::CONTENT_LENGTH, body.len().into());
    http::Request::from_parts(parts, body)
}

/// A credentials file's text; an error names the place and the file.
fn read(path: &Path, place: Place) -> Result<String, SetupError> {
    std::fs::read_to_string(path)
        .map_err(|e| SetupError(format!("{} {}: {e}", place.label(), path.display())))
}

/// The start-up error when nothing was found.
fn none_found(what: &str, tried: &[String]) -> SetupError {
    SetupError(format!(
        "FCM: {what}; tried {} (see README, \"Setting up FCM\")",
        tried.join(", ")
    ))
}

/// The string fields `names` of a credentials file, or the names of those
/// that are missing or empty.
fn strings<const N: usize>(file: &Value, names: [&'static str; N]) -> Result<[String; N], String> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| file[name].as_str().is_none_or(str::is_empty))
        .collect();
    if !missing.is_empty() {
        return Err(missing.join(", "));
    }
    Ok(names.map(|name| file[name].as_str().unwrap_or_default().to_owned()))
}

/// What every source is built from.
struct Setup<'a> {
    config: &'a FcmConfig,
    connection: Connection,
}

/// Where a credentials file was found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// `push.fcm.service_account_file`: a service account key only.
    KeyFile,
    /// Named by `GOOGLE_APPLICATION_CREDENTIALS`.
    Variable,
    /// gcloud's application default credentials.
    Gcloud,
}

impl Place {
    /// How messages name a file of this place.
    fn label(self) -> &'static str {
        match self {
            Place::KeyFile => "FCM service account file",
            Place::Variable => "GOOGLE_APPLICATION_CREDENTIALS file",
            Place::Gcloud => "gcloud's credentials file",
        }
    }

    /// What the log adds after the file's path.
    fn via(self) -> &'static str {
        match self {
            Place::KeyFile => "",
            Place::Variable => " (GOOGLE_APPLICATION_CREDENTIALS)",
            Place::Gcloud => " (gcloud's application default credentials)",
        }
    }
}

impl Setup<'_> {
    /// `push.fcm.service_account_file`.
    fn key_file(&self, path: &Path) -> Result<Credentials, SetupError> {
        let text = read(path, Place::KeyFile)?;
        self.credentials_file(path, &text, Place::KeyFile)
    }

    /// The file named by `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's
    /// user credentials if they exist; each place looked at is added to
    /// `tried`. A file that is there but unreadable or malformed is an
    /// error, not a reason to look further.
    fn application_default(
        &self,
        environment: &GoogleEnvironment,
        tried: &mut Vec<String>,
    ) -> Result<Option<Credentials>, SetupError> {
        if let Some(path) = &environment.application_credentials {
            let text = read(path, Place::Variable)?;
            return self
                .credentials_file(path, &text, Place::Variable)
                .map(Some);
        }
        tried.push("GOOGLE_APPLICATION_CREDENTIALS (not set)".into());
        let Some(path) = environment.gcloud_credentials_file() else {
            tried
                .push("gcloud's user credentials (neither CLOUDSDK_CONFIG nor HOME is set)".into());
            return Ok(None);
        };
        let exists = path.try_exists().map_err(|e| {
            SetupError(format!("{} {}: {e}", Place::Gcloud.label(), path.display()))
        })?;
        if !exists {
            tried.push(format!("{} (not found)", path.display()));
            return Ok(None);
        }
        let text = read(&path, Place::Gcloud)?;
        self.credentials_file(&path, &text, Place::Gcloud).map(Some)
    }

    /// A service account key or user credentials, by the file's `type`.
    /// Messages name the file and missing fields, never a value.
    fn credentials_file(
        &self,
        path: &Path,
        text: &str,
        place: Place,
    ) -> Result<Credentials, SetupError> {
        let error =
            |why: String| SetupError(format!("{} {}: {why}", place.label(), path.display()));
        let via = place.via();
        // serde_json's syntax errors give a line and column, not the text.
        let file: Value =
            serde_json::from_str(text).map_err(|e| error(format!("not JSON ({e})")))?;
        match file["type"].as_str() {
            Some("service_account") => {
                let [project_id, private_key, client_email, token_uri] = strings(
                    &file,
                    ["project_id", "private_key", "client_email", "token_uri"],
                )
                .map_err(|missing| error(format!("not a service account key (no {missing})")))?;
                self.service_account(path, via, project_id, private_key, client_email, token_uri)
                    .map_err(error)
            }
            Some("authorized_user") if place != Place::KeyFile => {
                let [client_id, client_secret, refresh_token] =
                    strings(&file, ["client_id", "client_secret", "refresh_token"])
                        .map_err(|missing| error(format!("not user credentials (no {missing})")))?;
                let quota_project = file["quota_project_id"]
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned);
                let provider = TokenProviderWrapperInner::EndUser(EndUserCredentialsInner::new(
                    EndUserCredentialsInfo {
                        client_id,
                        client_secret,
                        refresh_token,
                        client_type: "authorized_user".into(),
                    },
                ));
                Ok(Credentials::new(
                    Kind::User { quota_project },
                    format!("the user credentials {}{via}", path.display()),
                    provider,
                    Transport::trusting(
                        self.config.oauth_origin(),
                        self.config.token_trust(),
                        self.connection.clone(),
                    )?,
                    "oauth",
                ))
            }
            _ if place == Place::KeyFile => Err(error(
                "not a service account key (no type \"service_account\")".into(),
            )),
            Some(other) => Err(error(format!(
                "credentials of type {other:?} are not supported: use a service account key, \
                 user credentials (authorized_user) or the metadata server"
            ))),
            None => Err(error("no type: not a credentials file".into())),
        }
    }

    /// A service account key's provider; the key is checked by signing one
    /// assertion now rather than at the first push.
    fn service_account(
        &self,
        path: &Path,
        via: &str,
        project_id: String,
        private_key: String,
        client_email: String,
        token_uri: String,
    ) -> Result<Credentials, String> {
        if !super::is_project_id(&project_id) {
            return Err("project_id is not a project id".into());
        }
        let uri: http::Uri = token_uri
            .parse()
            .map_err(|_| "token_uri is not a URL".to_owned())?;
        let token_origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let description = format!(
            "the service account key {} of {client_email}{via}",
            path.display()
        );
        let not_rsa = |_| "private_key is not an RSA private key".to_owned();
        let provider = ServiceAccountProviderInner::new(ServiceAccountInfo {
            private_key,
            client_email,
            token_uri,
        })
        .map_err(not_rsa)?;
        provider.get_token(&[SCOPE]).map_err(not_rsa)?;
        let transport = Transport::trusting(
            &token_origin,
            self.config.token_trust(),
            self.connection.clone(),
        )
        .map_err(|e| format!("token_uri: {e}"))?;
        Ok(Credentials::new(
            Kind::ServiceAccount { project_id },
            description,
            TokenProviderWrapperInner::ServiceAccount(provider),
            transport,
            "oauth",
        ))
    }

    /// The metadata server at the configured origin (not asked anything yet).
    fn metadata_server(&self) -> Result<Credentials, SetupError> {
        let origin = self.config.metadata_origin();
        Ok(Credentials::new(
            Kind::MetadataServer,
            format!("the metadata server at {origin}"),
            TokenProviderWrapperInner::Metadata(MetadataServerProviderInner::new(None)),
            Transport::metadata_server(origin, self.connection.timeout)?,
            "metadata server",
        ))
    }
}

impl Credentials {
    fn new(
        kind: Kind,
        description: String,
        provider: TokenProviderWrapperInner,
        transport: Transport,
        endpoint: &'static str,
    ) -> Self {
        Self {
            kind,
            description,
            provider,
            transport,
            endpoint,
            current: Mutex::new(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assertions_signature_is_made_base64url() {
        let body = b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer\
                     &assertion=eyJh.eyJp.ab%2Bc%2Fd"
            .to_vec();
        let request = http::Request::post("https://oauth2.googleapis.com/token")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap();
        let request = base64url_assertion(request);
        let expected = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer\
                        &assertion=eyJh.eyJp.ab-c_d";
        assert_eq!(String::from_utf8_lossy(request.body()), expected);
        assert_eq!(
            request.headers()[http::header::CONTENT_LENGTH],
            expected.len().to_string()
        );
        // Already right: unchanged.
        let again = base64url_assertion(request);
        assert_eq!(String::from_utf8_lossy(again.body()), expected);
    }
}
