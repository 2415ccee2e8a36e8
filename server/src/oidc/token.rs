//! The token endpoint: a code, redeemed once by the client it was issued
//! to, with the same redirect URI and the PKCE verifier, becomes an
//! id_token (OpenID Connect Core §3.1.3).

use super::{authorize::ENTRA_AMR, error::OAuthError, Provider};
use crate::{
    domain::{client_secret_matches, now_ms, random_bytes},
    model::{Authorization, OidcClient, ResponseType},
};
use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Form, Json,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The token request (RFC 6749 §4.1.3, RFC 7636 §4.5).
#[derive(Debug, Deserialize)]
pub struct TokenParams {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The id_token's claims.
#[derive(Serialize)]
struct IdToken<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    /// RFC 8176: a proof of possession of a software-secured key (the
    /// phone's device key signed the approval).
    amr: [&'a str; 1],
    /// Entra ID's external method: the class it asked for, and the hint's
    /// object and tenant ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<&'a str>,
}

/// The signed id_token of an approved authorization: for the code flow
/// about the user the relying party named, for Entra ID's external method
/// about the hint's subject (its `sub`, `oid` and `tid`, with the `acr`).
pub(super) async fn id_token(
    p: &Provider,
    authorization: &Authorization,
    auth_time_ms: i64,
) -> crate::domain::Result<String> {
    let now = now_ms() / 1000;
    let subject = authorization.subject.as_ref();
    p.keys
        .sign(&IdToken {
            iss: &p.issuer,
            sub: subject.map_or(&authorization.user_id, |s| &s.sub),
            aud: &authorization.client_id,
            exp: now + p.config.id_token_ttl.as_secs() as i64,
            iat: now,
            auth_time: auth_time_ms / 1000,
            nonce: authorization.nonce.as_deref(),
            amr: [ENTRA_AMR],
            acr: authorization.acr.as_deref(),
            oid: subject.map(|s| s.oid.as_str()),
            tid: subject.map(|s| s.tid.as_str()),
        })
        .await
}

pub async fn token(
    State(p): State<Provider>,
    headers: HeaderMap,
    Form(params): Form<TokenParams>,
) -> Response {
    match redeem(&p, &headers, &params).await {
        Ok(response) => response,
        Err(error) => {
            tracing::info!(error = error.code, reason = %error.description, "token request refused");
            error.json()
        }
    }
}

async fn redeem(
    p: &Provider,
    headers: &HeaderMap,
    params: &TokenParams,
) -> Result<Response, OAuthError> {
    let client = authenticate_client(
        p,
        headers,
        params.client_id.as_deref(),
        params.client_secret.as_deref(),
    )
    .await?;
    if params.grant_type.as_deref() != Some("authorization_code") {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            "grant_type must be authorization_code",
        ));
    }
    let code = params
        .code
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    // Spent at once, whatever follows: a code is tried once.
    let authorization = p
        .service
        .redeem_code(code)
        .await
        .map_err(|e| OAuthError::from_domain(&e))?
        .ok_or_else(|| OAuthError::invalid_grant("the code is unknown, expired or already used"))?;
    if authorization.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if params.redirect_uri.as_deref() != Some(authorization.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    match (
        &authorization.code_challenge,
        params.code_verifier.as_deref(),
    ) {
        (Some(challenge), Some(verifier)) if pkce_matches(challenge, verifier) => {}
        (Some(_), _) => return Err(OAuthError::invalid_grant("code_verifier does not match")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier given for a request without code_challenge",
            ))
        }
        (None, None) => {}
    }
    if authorization.response_type != ResponseType::Code {
        return Err(OAuthError::invalid_grant(
            "the code was not issued by the code flow",
        ));
    }
    let ttl = p.config.id_token_ttl.as_secs() as i64;
    let id_token = id_token(
        p,
        &authorization,
        authorization.auth_time.unwrap_or_default(),
    )
    .await
    .map_err(|e| OAuthError::from_domain(&e))?;
    // OAuth requires an access token; this provider has no resources for
    // it to open, so it is random, kept nowhere, and grants nothing.
    let access_token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": "openid",
            "id_token": id_token,
        })),
    )
        .into_response())
}

/// Whether `verifier` is the PKCE verifier of `challenge` (S256).
fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    valid && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// The client of a token or pushed request: `client_secret_basic`,
/// `client_secret_post`, or a public client named by `client_id` alone.
pub async fn authenticate_client(
    p: &Provider,
    headers: &HeaderMap,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<OidcClient, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|encoded| {
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            // RFC 6749 §2.3.1: each part is form-urlencoded.
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Ok::<_, OAuthError>((decode(id), decode(secret)))
        })
        .transpose()?;
    let (client_id, secret) = match (&basic, form_id) {
        (Some((id, _)), Some(form)) if form != id => {
            return Err(OAuthError::invalid_request(
                "client_id differs from the Basic credentials",
            ))
        }
        (Some((id, secret)), _) => (id.clone(), Some(secret.clone())),
        (None, Some(id)) => (id.to_owned(), form_secret.map(str::to_owned)),
        (None, None) => {
            return Err(OAuthError::invalid_client(
                "client authentication is missing",
            ))
        }
    };
    let client = p
        .service
        .oidc_client(&client_id)
        .await
        .map_err(|_| OAuthError::invalid_client("unknown client"))?;
    match (&client.secret_hash, secret) {
        (Some(_), Some(secret)) if client_secret_matches(&client, &secret) => Ok(client),
        (Some(_), _) => Err(OAuthError::invalid_client(
            "the client secret is missing or wrong",
        )),
        (None, None) => Ok(client),
        (None, Some(_)) => Err(OAuthError::invalid_client(
            "this public client has no secret",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_follows_rfc_7636() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(challenge, verifier));
        assert!(!pkce_matches(challenge, &verifier.replace('d', "e")));
        assert!(!pkce_matches(challenge, "short"));
    }
}
