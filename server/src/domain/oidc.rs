//! Sign-ins through the OpenID provider: the relying parties registered per
//! tenant, and each authorization from its request to the single redemption
//! of its code. The sign-in itself is an ordinary challenge (or, for a first
//! device, an enrollment), with every rule of those.

use super::{input, new_id, now_ms, random_bytes, secret_hash, Error, Result, Service};
use crate::model::*;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use subtle::ConstantTimeEq;

/// The prefix of client secrets, so that a leaked one is recognisable.
const SECRET_PREFIX: &str = "mfas_";
/// The most redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 20;

/// A registered client and, for a confidential one, its secret (shown once).
#[derive(Debug)]
pub struct RegisteredClient {
    pub client: OidcClient,
    pub secret: Option<String>,
}

impl Service {
    /// Registers a relying party for a tenant. A confidential client gets a
    /// secret (returned once; only its hash is kept); a public one must use
    /// PKCE.
    pub async fn register_oidc_client(
        &self,
        tenant_id: &str,
        display_name: &str,
        redirect_uris: &[String],
        confidential: bool,
        entra: Option<EntraTenant>,
    ) -> Result<RegisteredClient> {
        self.known_tenant(tenant_id).await?;
        input::text("name", display_name, 128)?;
        if redirect_uris.is_empty() || redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(Error::invalid(format!(
                "give between 1 and {MAX_REDIRECT_URIS} redirect URIs"
            )));
        }
        for uri in redirect_uris {
            check_redirect_uri(uri)?;
        }
        if let Some(entra) = &entra {
            input::text("Entra tenant id", &entra.tenant_id, 128)?;
            input::text("Entra app id", &entra.app_id, 128)?;
            input::text("Entra issuer", &entra.issuer, 512)?;
            input::text("Entra JWKS", &entra.jwks, 2000)?;
        }
        let secret = confidential.then(|| {
            format!(
                "{SECRET_PREFIX}{}",
                URL_SAFE_NO_PAD.encode(random_bytes::<32>())
            )
        });
        let client = OidcClient {
            client_id: new_id(),
            tenant_id: tenant_id.to_owned(),
            display_name: display_name.to_owned(),
            secret_hash: secret.as_deref().map(secret_hash),
            redirect_uris: redirect_uris.to_vec(),
            entra,
            created_at: now_ms(),
        };
        self.store().create_oidc_client(&client).await?;
        self.audit(AuditEvent {
            tenant_id: Some(tenant_id.to_owned()),
            event_type: "oidc_client.registered".into(),
            detail: format!(
                "client {} ({}), {}",
                client.client_id,
                if confidential {
                    "confidential"
                } else {
                    "public"
                },
                client.redirect_uris.join(" ")
            ),
            ..Default::default()
        })
        .await;
        Ok(RegisteredClient { client, secret })
    }

    /// A tenant's relying parties, oldest first.
    pub async fn oidc_clients(&self, tenant_id: &str) -> Result<Vec<OidcClient>> {
        self.known_tenant(tenant_id).await?;
        Ok(self.store().list_oidc_clients(tenant_id).await?)
    }

    /// The relying party with this client id.
    pub async fn oidc_client(&self, client_id: &str) -> Result<OidcClient> {
        input::id("client_id", client_id)?;
        self.store()
            .get_oidc_client(client_id)
            .await?
            .ok_or(Error::not_found("client"))
    }

    /// Starts an authorization (checked by the provider against its client).
    pub async fn begin_authorization(&self, authorization: &Authorization) -> Result<()> {
        input::user_id(&authorization.user_id)?;
        if !authorization.email.is_empty() {
            input::email(&authorization.email)?;
        }
        match self.store().create_authorization(authorization).await {
            Ok(()) => Ok(()),
            Err(crate::store::StoreError::Duplicate(_)) if authorization.hint_hash.is_some() => {
                Err(Error::invalid("this id_token_hint was already used"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// An authorization by its id.
    pub async fn authorization(&self, id: &str) -> Result<Authorization> {
        input::id("authorization", id)?;
        self.store()
            .get_authorization(id)
            .await?
            .ok_or(Error::not_found("authorization"))
    }

    /// Records what an authorization waits for now: a sign-in challenge, a
    /// first device's enrollment, or (both `None`) nothing yet, to start
    /// again. False if the authorization is finished.
    pub async fn set_authorization_step(
        &self,
        authorization: &Authorization,
        challenge_id: Option<&str>,
        enrollment_id: Option<&str>,
    ) -> Result<bool> {
        Ok(self
            .store()
            .set_authorization_step(&authorization.id, challenge_id, enrollment_id)
            .await?)
    }

    /// Issues the authorization's code, once: the code, or `None` if the
    /// authorization was finished already. The caller has checked that the
    /// person approved at `auth_time`.
    pub async fn issue_code(
        &self,
        authorization: &Authorization,
        auth_time: i64,
        code_ttl: std::time::Duration,
    ) -> Result<Option<String>> {
        let code = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let now = now_ms();
        let expires = now + code_ttl.as_millis() as i64;
        let issued = self
            .store()
            .finish_authorization(
                &authorization.id,
                Some((&secret_hash(&code), expires)),
                Some(auth_time),
                now,
            )
            .await?;
        if !issued {
            return Ok(None);
        }
        self.audit_issued(authorization, "oidc.code_issued").await;
        Ok(Some(code))
    }

    /// Finishes an authorization that returns its id_token at once (Entra
    /// ID's external method), approved at `auth_time`; false if it was
    /// finished already.
    pub async fn complete_authorization(
        &self,
        authorization: &Authorization,
        auth_time: i64,
    ) -> Result<bool> {
        let completed = self
            .store()
            .finish_authorization(&authorization.id, None, Some(auth_time), now_ms())
            .await?;
        if completed {
            self.audit_issued(authorization, "oidc.id_token_issued")
                .await;
        }
        Ok(completed)
    }

    /// Audits what an approved authorization gave its client.
    async fn audit_issued(&self, authorization: &Authorization, event_type: &str) {
        self.audit(AuditEvent {
            tenant_id: Some(authorization.tenant_id.clone()),
            event_type: event_type.into(),
            user_id: Some(authorization.user_id.clone()),
            challenge_id: authorization.challenge_id.clone(),
            enrollment_id: authorization.enrollment_id.clone(),
            detail: format!("client {}", authorization.client_id),
            ..Default::default()
        })
        .await;
    }

    /// Finishes an authorization without a code (the relying party is told
    /// of an error); false if it was finished already.
    pub async fn abandon_authorization(&self, authorization: &Authorization) -> Result<bool> {
        Ok(self
            .store()
            .finish_authorization(&authorization.id, None, None, now_ms())
            .await?)
    }

    /// Redeems a code, once across every replica: its authorization, or
    /// `None` for a code that is unknown, spent or expired.
    pub async fn redeem_code(&self, code: &str) -> Result<Option<Authorization>> {
        if code.is_empty() || code.len() > 128 {
            return Ok(None);
        }
        let now = now_ms();
        let redeemed = self.store().redeem_code(&secret_hash(code), now).await?;
        Ok(redeemed.filter(|a| a.code_expires_at.is_some_and(|expires| expires > now)))
    }
}

/// Whether `secret` is the client's secret (in constant time).
pub fn client_secret_matches(client: &OidcClient, secret: &str) -> bool {
    client
        .secret_hash
        .is_some_and(|hash| bool::from(hash.ct_eq(&secret_hash(secret))))
}

/// A redirect URI must be absolute, without a fragment, and `https`
/// unless it points to this machine (`http://127.0.0.1`, `localhost`, `[::1]`).
fn check_redirect_uri(uri: &str) -> Result<()> {
    input::text("redirect URI", uri, 2000)?;
    let parsed =
        url::Url::parse(uri).map_err(|e| Error::invalid(format!("redirect URI {uri:?}: {e}")))?;
    if parsed.fragment().is_some() {
        return Err(Error::invalid(format!(
            "redirect URI {uri:?} must not have a fragment"
        )));
    }
    let loopback = matches!(parsed.host(), Some(url::Host::Domain("localhost")))
        || matches!(parsed.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(Error::invalid(format!(
            "redirect URI {uri:?} must be https (http only on loopback)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_without_fragment() {
        assert!(check_redirect_uri("https://rp.example.com/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("http://rp.example.com/cb").is_err());
        assert!(check_redirect_uri("https://rp.example.com/cb#x").is_err());
        assert!(check_redirect_uri("/relative").is_err());
    }
}
