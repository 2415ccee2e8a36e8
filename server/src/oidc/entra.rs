//! Entra ID's external authentication method (EAM): the `id_token_hint`
//! that Entra ID sends with each request is checked against the Entra
//! tenant configured on the client: its signature by a key of the tenant's
//! JWKS (read from its URL or file, kept for [`JWKS_TTL`], and read again
//! when a hint names a key it does not hold), RS256, the issuer, the
//! audience (the external method's app id) and the tenant id. Entra ID
//! issues the hint already expired, so that it serves as nothing but a
//! hint; its freshness is its issue time instead: at most [`HINT_MAX_AGE`]
//! old (Entra ID gives up on the sign-in after about ten minutes), with
//! [`LEEWAY`] of clock difference.

use crate::model::{EntraTenant, HintSubject};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long a tenant's keys are trusted before they are read again.
const JWKS_TTL: Duration = Duration::from_secs(60 * 60);
/// The clock difference allowed on the hint's `iat` and `nbf`.
const LEEWAY: u64 = 5 * 60;
/// How old a hint may be, by its `iat`.
const HINT_MAX_AGE: u64 = 10 * 60;
/// The largest JWKS document read.
const MAX_JWKS: usize = 256 * 1024;
/// How long a JWKS download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a verified hint tells.
#[derive(Debug, Clone)]
pub struct Hint {
    pub subject: HintSubject,
    /// The user's sign-in name (`preferred_username`), if the hint has one.
    pub username: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    oid: String,
    tid: String,
    iat: u64,
    preferred_username: Option<String>,
}

/// The Entra tenants' keys, by JWKS source.
#[derive(Default)]
pub struct EntraKeys {
    cache: Mutex<HashMap<String, (Instant, JwkSet)>>,
}

impl EntraKeys {
    /// Verifies `hint` for `tenant`; the reason, for the relying party's
    /// `error_description`, when it does not verify.
    pub async fn verify(&self, tenant: &EntraTenant, hint: &str) -> Result<Hint, String> {
        let header = jsonwebtoken::decode_header(hint)
            .map_err(|e| format!("id_token_hint is not a JWT: {e}"))?;
        if header.alg != Algorithm::RS256 {
            return Err("id_token_hint must be signed with RS256".into());
        }
        let kid = header.kid.ok_or("id_token_hint names no key (kid)")?;
        let key = match self.key(tenant, &kid, false).await? {
            Some(key) => key,
            // A key Entra added since we read the set: read it again once.
            None => self
                .key(tenant, &kid, true)
                .await?
                .ok_or("id_token_hint is signed by a key the Entra tenant does not publish")?,
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&tenant.issuer]);
        validation.set_audience(&[&tenant.app_id]);
        validation.leeway = LEEWAY;
        validation.validate_exp = false;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(hint, &key, &validation)
            .map_err(|e| format!("id_token_hint does not verify: {e}"))?
            .claims;
        let now = u64::try_from(crate::domain::now_ms() / 1000).unwrap_or_default();
        if claims.iat + HINT_MAX_AGE + LEEWAY < now {
            return Err("id_token_hint is stale: issued more than 10 minutes ago".into());
        }
        if claims.iat > now + LEEWAY {
            return Err("id_token_hint is issued in the future".into());
        }
        if claims.tid != tenant.tenant_id {
            return Err("id_token_hint is of another Entra tenant".into());
        }
        Ok(Hint {
            subject: HintSubject {
                sub: claims.sub,
                oid: claims.oid,
                tid: claims.tid,
            },
            username: claims.preferred_username,
        })
    }

    /// The key `kid` of the tenant, from memory unless `refresh` or stale.
    async fn key(
        &self,
        tenant: &EntraTenant,
        kid: &str,
        refresh: bool,
    ) -> Result<Option<DecodingKey>, String> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&tenant.jwks)
            .filter(|(read_at, _)| !refresh && read_at.elapsed() < JWKS_TTL)
            .map(|(_, set)| set.clone());
        let set = match cached {
            Some(set) => set,
            None => {
                let set = read_jwks(&tenant.jwks).await?;
                self.cache
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(tenant.jwks.clone(), (Instant::now(), set.clone()));
                set
            }
        };
        set.find(kid)
            .map(|jwk| {
                DecodingKey::from_jwk(jwk).map_err(|e| format!("Entra key {kid} is unusable: {e}"))
            })
            .transpose()
    }
}

/// Reads a JWKS from an `https://` URL (`http://` on loopback) or a file.
async fn read_jwks(source: &str) -> Result<JwkSet, String> {
    let text = if source.starts_with("https://") || source.starts_with("http://") {
        fetch(source).await?
    } else {
        tokio::fs::read(source)
            .await
            .map_err(|e| format!("Entra JWKS file {source}: {e}"))?
            .into()
    };
    serde_json::from_slice(&text).map_err(|e| format!("Entra JWKS {source}: {e}"))
}

async fn fetch(url: &str) -> Result<Bytes, String> {
    let failed = |e: &dyn std::fmt::Display| format!("Entra JWKS {url}: {e}");
    let roots =
        crate::push::transport::system_roots().unwrap_or_else(|_| rustls::RootCertStore::empty());
    let tls = crate::push::transport::tls_config(roots).map_err(|e| failed(&e))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
    let uri: http::Uri = url.parse().map_err(|e| failed(&e))?;
    let exchange = async {
        let response = client.get(uri).await.map_err(|e| failed(&e))?;
        if !response.status().is_success() {
            return Err(failed(&response.status()));
        }
        Limited::new(response.into_body(), MAX_JWKS)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| failed(&e))
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| failed(&"no answer in time"))?
}
