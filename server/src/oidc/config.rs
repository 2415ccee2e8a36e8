//! The `[oidc]` section: the OpenID Connect provider's listener, issuer and
//! lifetimes.

use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, time::Duration};

/// The `[oidc]` section. The provider is off unless `listen` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// Address of the browser-facing listener (discovery, JWKS, the
    /// authorization and token endpoints, the verification page). Unset:
    /// no OpenID provider. It uses the `[tls]` certificate, and, like the
    /// gRPC listener, serves plaintext only on loopback unless
    /// `tls.allow_plaintext`.
    pub listen: Option<SocketAddr>,
    /// The issuer: the URL relying parties know the provider by, which every
    /// id_token names and under which the endpoints are served (a path is
    /// allowed, e.g. `https://login.example.com/mfa`). Defaults to
    /// `http://<listen>` (`https://` with TLS).
    pub issuer: Option<String>,
    /// How long an authorization code may wait to be redeemed.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// How long an id_token is valid.
    #[serde(with = "humantime_serde")]
    pub id_token_ttl: Duration,
    /// How long a person has to finish a sign-in on the verification page
    /// (enrollment included), from the authorization request.
    #[serde(with = "humantime_serde")]
    pub authorization_ttl: Duration,
    /// How long each signing key signs before the next one takes over.
    #[serde(with = "humantime_serde")]
    pub key_rotation: Duration,
    /// How long a new signing key is published before it signs, so that
    /// relying parties that cache the JWKS know it by then.
    #[serde(with = "humantime_serde")]
    pub key_publish_ahead: Duration,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            listen: None,
            issuer: None,
            code_ttl: Duration::from_secs(60),
            id_token_ttl: Duration::from_secs(5 * 60),
            authorization_ttl: Duration::from_secs(15 * 60),
            key_rotation: Duration::from_secs(30 * 24 * 60 * 60),
            key_publish_ahead: Duration::from_secs(2 * 24 * 60 * 60),
        }
    }
}

impl OidcConfig {
    /// The issuer in effect for a listener bound to `addr`, without a
    /// trailing slash.
    pub fn issuer_for(&self, addr: SocketAddr, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"))
            .trim_end_matches('/')
            .to_owned()
    }
}
