//! The authorization endpoint (`/authorize`, GET or POST) and the pushed
//! authorization request endpoint (`/par`, RFC 9126).
//!
//! A request is checked in the order OpenID Connect Core §3.1.2.2 asks:
//! errors about the client or its redirect URI are shown to the person (the
//! client cannot be trusted to receive them); every later error goes to the
//! client's redirect URI with `state`. A valid request becomes a stored
//! authorization, and the browser goes on to its verification page.
//!
//! The user is named by `login_hint`: the same user id the portal uses with
//! `PortalService` (e.g. the e-mail address or the directory's object id).
//! The front channel does not authenticate it, so a request that arrives
//! there may only sign in a user who has a device; enrolling a first device
//! takes a request pushed by a confidential client, whose secret vouches
//! for the user.

use super::{
    error::{self, Mode, OAuthError},
    i18n::Lang,
    pages,
    token::authenticate_client,
    Provider,
};
use crate::{
    domain::{input, new_id, now_ms},
    model::{Authorization, EntraTenant, OidcClient, ResponseType},
};
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form, Json,
};
use serde::Deserialize;
use serde_json::json;

/// The `request_uri` prefix of pushed requests (RFC 9126 §2.2).
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request's `request_uri` is offered for (`expires_in`).
const PUSHED_REQUEST_TTL_SECS: i64 = 90;

/// The parameters of an authorization request (OpenID Connect Core §3.1.2.1).
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    login_hint: Option<String>,
    max_age: Option<String>,
    prompt: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    request_uri: Option<String>,
    request: Option<String>,
    response_mode: Option<String>,
    /// Entra ID's external method: the user, signed by Entra ID.
    id_token_hint: Option<String>,
    /// Entra ID's external method: the `acr` and `amr` it asks for.
    claims: Option<String>,
    /// Client authentication, at `/par` only.
    client_secret: Option<String>,
}

/// Why a request was refused: shown to the person, or sent to the client.
enum Refusal {
    Page(String),
    Client {
        redirect_uri: String,
        state: Option<String>,
        mode: Mode,
        error: OAuthError,
    },
}

pub async fn authorize_get(
    State(p): State<Provider>,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    authorize(p, headers, params).await
}

pub async fn authorize_post(
    State(p): State<Provider>,
    headers: HeaderMap,
    Form(params): Form<AuthorizeParams>,
) -> Response {
    authorize(p, headers, params).await
}

async fn authorize(p: Provider, headers: HeaderMap, params: AuthorizeParams) -> Response {
    let lang = Lang::from_headers(&headers);
    let result = match &params.request_uri {
        Some(uri) => pushed_request(&p, &params, uri).await,
        None => match client_of(&p, &params).await {
            Ok(client) => request(&p, &client, &params, false).await,
            Err(refusal) => Err(refusal),
        },
    };
    match result {
        Ok(authorization) => {
            Redirect::to(&p.path(&format!("/verify/{}", authorization.id))).into_response()
        }
        Err(Refusal::Page(text)) => {
            tracing::info!(reason = %text, "authorization request refused");
            (
                StatusCode::BAD_REQUEST,
                pages::message(
                    lang,
                    "error",
                    &format!("{} ({text})", lang.texts().bad_request),
                ),
            )
                .into_response()
        }
        Err(Refusal::Client {
            redirect_uri,
            state,
            mode,
            error,
        }) => error::respond_error(&redirect_uri, &p.issuer, mode, state.as_deref(), &error),
    }
}

/// `/par`: a confidential client pushes its request, authenticated, and
/// gets a `request_uri` to send the browser with.
pub async fn pushed(
    State(p): State<Provider>,
    headers: HeaderMap,
    Form(params): Form<AuthorizeParams>,
) -> Response {
    let client = match authenticate_client(
        &p,
        &headers,
        params.client_id.as_deref(),
        params.client_secret.as_deref(),
    )
    .await
    {
        Ok(client) => client,
        Err(error) => return error.json(),
    };
    if params.request_uri.is_some() || params.request.is_some() {
        return OAuthError::invalid_request("request_uri and request are not accepted here").json();
    }
    let authenticated = client.secret_hash.is_some();
    match request(&p, &client, &params, authenticated).await {
        Ok(authorization) => (
            StatusCode::CREATED,
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "request_uri": format!("{REQUEST_URI_PREFIX}{}", authorization.id),
                "expires_in": PUSHED_REQUEST_TTL_SECS,
            })),
        )
            .into_response(),
        Err(Refusal::Page(text)) => OAuthError::invalid_request(text).json(),
        Err(Refusal::Client { error, .. }) => error.json(),
    }
}

/// The browser arrives with a pushed request's `request_uri`.
async fn pushed_request(
    p: &Provider,
    params: &AuthorizeParams,
    request_uri: &str,
) -> Result<Authorization, Refusal> {
    let unknown = || Refusal::Page("request_uri is unknown or expired".into());
    let id = request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .ok_or_else(unknown)?;
    let authorization = p.service.authorization(id).await.map_err(|_| unknown())?;
    let now = now_ms();
    if params.client_id.as_deref() != Some(authorization.client_id.as_str())
        || authorization.finished_at.is_some()
        || authorization.challenge_id.is_some()
        || authorization.enrollment_id.is_some()
        || authorization.created_at + PUSHED_REQUEST_TTL_SECS * 1000 <= now
    {
        return Err(unknown());
    }
    Ok(authorization)
}

/// The client the request names, with the redirect URI checked.
async fn client_of(p: &Provider, params: &AuthorizeParams) -> Result<OidcClient, Refusal> {
    let client_id = params
        .client_id
        .as_deref()
        .ok_or_else(|| Refusal::Page("client_id is missing".into()))?;
    p.service
        .oidc_client(client_id)
        .await
        .map_err(|_| Refusal::Page("client_id is not a registered client".into()))
}

/// Checks a request of `client` and stores it as an authorization.
async fn request(
    p: &Provider,
    client: &OidcClient,
    params: &AuthorizeParams,
    pushed: bool,
) -> Result<Authorization, Refusal> {
    let redirect_uri = params
        .redirect_uri
        .as_deref()
        .ok_or_else(|| Refusal::Page("redirect_uri is missing".into()))?;
    if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return Err(Refusal::Page(
            "redirect_uri is not one registered for this client".into(),
        ));
    }
    // Errors go back the way the request asked for its answer.
    let mode = match params.response_mode.as_deref() {
        Some("form_post") => Mode::FormPost,
        _ => Mode::Query,
    };
    let refuse = |code: &'static str, text: &str| Refusal::Client {
        redirect_uri: redirect_uri.to_owned(),
        state: params.state.clone(),
        mode,
        error: OAuthError::new(code, text),
    };
    if params.request.is_some() {
        return Err(refuse(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    let response_type = match (params.response_type.as_deref(), &client.entra) {
        (Some("code"), None) => ResponseType::Code,
        (Some("id_token"), Some(_)) => ResponseType::IdToken,
        (Some(_), None) => {
            return Err(refuse(
                "unsupported_response_type",
                "response_type must be code",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(refuse(
                "unsupported_response_type",
                "this client is Entra ID's external method: response_type must be id_token",
            ))
        }
        (None, _) => return Err(refuse("invalid_request", "response_type is missing")),
    };
    if Mode::from(response_type) != mode
        && (params.response_mode.is_some() || response_type == ResponseType::IdToken)
    {
        return Err(refuse(
            "invalid_request",
            match response_type {
                ResponseType::Code => "response_mode must be query",
                ResponseType::IdToken => "response_mode must be form_post",
            },
        ));
    }
    if !params
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .any(|s| s == "openid")
    {
        return Err(refuse("invalid_scope", "scope must include openid"));
    }
    if params
        .prompt
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .any(|p| p == "none")
    {
        return Err(refuse(
            "interaction_required",
            "every sign-in needs the person to approve on the phone",
        ));
    }
    // Each sign-in is a new approval (auth_time is its time), so any
    // max_age is met; it need only be well formed.
    if let Some(max_age) = &params.max_age {
        if max_age.parse::<u64>().is_err() {
            return Err(refuse(
                "invalid_request",
                "max_age must be a number of seconds",
            ));
        }
    }
    if let (ResponseType::IdToken, Some(entra)) = (response_type, &client.entra) {
        return entra_request(p, client, entra, params, redirect_uri, &refuse).await;
    }
    let code_challenge = match (
        params.code_challenge.as_deref(),
        params.code_challenge_method.as_deref(),
    ) {
        (Some(challenge), Some("S256")) if is_pkce_challenge(challenge) => {
            Some(challenge.to_owned())
        }
        (Some(_), Some("S256")) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge must be 43 base64url characters",
            ))
        }
        (Some(_), _) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256",
            ))
        }
        (None, Some(_)) => return Err(refuse("invalid_request", "code_challenge is missing")),
        (None, None) if client.secret_hash.is_none() => {
            return Err(refuse(
                "invalid_request",
                "a public client must use PKCE (S256)",
            ))
        }
        (None, None) => None,
    };
    let user_id = params
        .login_hint
        .as_deref()
        .filter(|hint| !hint.is_empty())
        .ok_or_else(|| refuse("invalid_request", "login_hint is required: the user's id"))?;
    let text_param = |value: &Option<String>, name: &str| -> Result<Option<String>, Refusal> {
        match value {
            Some(v) if v.len() > 512 => {
                Err(refuse("invalid_request", &format!("{name} is too long")))
            }
            v => Ok(v.clone()),
        }
    };
    let authorization = Authorization {
        pushed,
        state: text_param(&params.state, "state")?,
        nonce: text_param(&params.nonce, "nonce")?,
        code_challenge,
        ..new_authorization(p, client, redirect_uri, user_id, ResponseType::Code)
    };
    begin(p, authorization, &refuse).await
}

/// A new authorization of `client` for `user_id`, to be completed with what
/// the request gives.
fn new_authorization(
    p: &Provider,
    client: &OidcClient,
    redirect_uri: &str,
    user_id: &str,
    response_type: ResponseType,
) -> Authorization {
    let now = now_ms();
    Authorization {
        id: new_id(),
        tenant_id: client.tenant_id.clone(),
        client_id: client.client_id.clone(),
        user_id: user_id.to_owned(),
        // The app lists the account under an e-mail address: the user id,
        // when it is one.
        email: if input::email(user_id).is_ok() {
            user_id.to_owned()
        } else {
            String::new()
        },
        pushed: false,
        response_type,
        subject: None,
        acr: None,
        hint_hash: None,
        redirect_uri: redirect_uri.to_owned(),
        state: None,
        nonce: None,
        code_challenge: None,
        challenge_id: None,
        enrollment_id: None,
        created_at: now,
        expires_at: now + p.config.authorization_ttl.as_millis() as i64,
        finished_at: None,
        auth_time: None,
        code_expires_at: None,
        code_used_at: None,
    }
}

/// Stores a checked authorization; a refusal goes back to the client.
async fn begin(
    p: &Provider,
    authorization: Authorization,
    refuse: &(dyn Fn(&'static str, &str) -> Refusal + Sync),
) -> Result<Authorization, Refusal> {
    if let Err(e) = p.service.begin_authorization(&authorization).await {
        let error = OAuthError::from_domain(&e);
        return Err(refuse(error.code, &error.description));
    }
    Ok(authorization)
}

/// An Entra ID external method's request (`response_type=id_token`,
/// `response_mode=form_post`): the `id_token_hint` must verify against the
/// client's Entra tenant, and is used once; the user is the hint's object
/// id (`oid`). The hint vouches for the user, so a first device may be
/// enrolled. A `claims` request for `acr` or `amr` must allow what this
/// provider does: `possessionorinherence` and `swk`.
async fn entra_request(
    p: &Provider,
    client: &OidcClient,
    entra: &EntraTenant,
    params: &AuthorizeParams,
    redirect_uri: &str,
    refuse: &(dyn Fn(&'static str, &str) -> Refusal + Sync),
) -> Result<Authorization, Refusal> {
    let nonce = params
        .nonce
        .as_deref()
        .filter(|n| !n.is_empty() && n.len() <= 512)
        .ok_or_else(|| refuse("invalid_request", "nonce is required (at most 512 bytes)"))?;
    if params.state.as_ref().is_some_and(|s| s.len() > 512) {
        return Err(refuse("invalid_request", "state is too long"));
    }
    let acr =
        granted_acr(params.claims.as_deref()).map_err(|text| refuse("invalid_request", &text))?;
    let hint = params
        .id_token_hint
        .as_deref()
        .ok_or_else(|| refuse("invalid_request", "id_token_hint is required"))?;
    let verified = p.entra.verify(entra, hint).await.map_err(|text| {
        tracing::info!(reason = %text, "id_token_hint refused");
        refuse("invalid_request", &text)
    })?;
    let email = [verified.username.as_deref(), params.login_hint.as_deref()]
        .into_iter()
        .flatten()
        .find(|name| input::email(name).is_ok())
        .unwrap_or_default()
        .to_owned();
    let authorization = Authorization {
        email,
        // Entra ID vouches for the user: a first device may be enrolled.
        pushed: true,
        hint_hash: Some(crate::domain::secret_hash(hint)),
        acr: Some(acr),
        state: params.state.clone(),
        nonce: Some(nonce.to_owned()),
        ..new_authorization(
            p,
            client,
            redirect_uri,
            &verified.subject.oid,
            ResponseType::IdToken,
        )
    };
    begin(
        p,
        Authorization {
            subject: Some(verified.subject),
            ..authorization
        },
        refuse,
    )
    .await
}

/// The `acr` values a possession factor satisfies, in Entra ID's table of
/// supported values, the first being the one given when none is asked for.
pub const POSSESSION_ACRS: [&str; 4] = [
    "possessionorinherence",
    "knowledgeorpossession",
    "knowledgeorpossessionorinherence",
    "possession",
];
/// The `amr` this provider gives: the confirmation of a software-secured
/// key (RFC 8176), which Entra ID counts as possession.
pub const ENTRA_AMR: &str = "swk";

/// The `acr` to grant for a `claims` request (OpenID Connect Core §5.5):
/// the first value it asks for that a possession factor satisfies (only one
/// is returned); where it names `amr` values, `swk` must be among them.
fn granted_acr(claims: Option<&str>) -> Result<String, String> {
    let Some(claims) = claims else {
        return Ok(POSSESSION_ACRS[0].to_owned());
    };
    let claims: serde_json::Value =
        serde_json::from_str(claims).map_err(|e| format!("claims is not JSON: {e}"))?;
    let asked = |claim: &str| -> Option<Vec<String>> {
        let request = &claims["id_token"][claim];
        request["values"]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .or_else(|| request["value"].as_str().map(|v| vec![v.to_owned()]))
    };
    if asked("amr").is_some_and(|amr| !amr.iter().any(|m| m == ENTRA_AMR)) {
        return Err(format!(
            "claims asks for an amr this provider cannot give ({ENTRA_AMR} only)"
        ));
    }
    match asked("acr") {
        None => Ok(POSSESSION_ACRS[0].to_owned()),
        Some(acr) => acr
            .into_iter()
            .find(|value| POSSESSION_ACRS.contains(&value.as_str()))
            .ok_or_else(|| {
                "claims asks for an acr that a possession factor does not satisfy".to_owned()
            }),
    }
}

/// A PKCE S256 challenge: the base64url SHA-256 of the verifier, 43 characters.
fn is_pkce_challenge(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_granted_acr_is_one_asked_for_that_possession_satisfies() {
        let entra = r#"{"id_token":{"acr":{"essential":true,"values":["possessionorinherence"]},
            "amr":{"essential":true,"values":["face","fido","swk","otp"]}}}"#;
        assert_eq!(granted_acr(Some(entra)).unwrap(), "possessionorinherence");
        let several =
            r#"{"id_token":{"acr":{"values":["knowledge","inherence","knowledgeorpossession"]}}}"#;
        assert_eq!(granted_acr(Some(several)).unwrap(), "knowledgeorpossession");
        let empty = r#"{"id_token":{}}"#;
        assert_eq!(granted_acr(Some(empty)).unwrap(), "possessionorinherence");
        assert_eq!(granted_acr(None).unwrap(), "possessionorinherence");
        let knowledge = r#"{"id_token":{"acr":{"values":["knowledge","inherence"]}}}"#;
        assert!(granted_acr(Some(knowledge)).unwrap_err().contains("acr"));
        let other_amr = r#"{"id_token":{"amr":{"value":"fido"}}}"#;
        assert!(granted_acr(Some(other_amr)).unwrap_err().contains("amr"));
        assert!(granted_acr(Some("not json")).is_err());
    }

    #[test]
    fn pkce_challenges_are_43_base64url_characters() {
        assert!(is_pkce_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_pkce_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
        assert!(!is_pkce_challenge("short"));
    }
}
