//! The provider's signing keys: RS256 (what Entra ID, Keycloak and most
//! relying parties expect), kept in the database so that every replica
//! publishes and signs with the same keys.
//!
//! Rotation: a key is published in the JWKS as soon as it is made, and signs
//! only from `key_publish_ahead` later (the first key at once: nobody can
//! have cached anything yet), so that relying parties that cache the JWKS
//! know it before they see it. Each key signs for `key_rotation`; the next
//! one is made `key_publish_ahead` before that. A key that a newer one
//! replaced stays in the JWKS for `id_token_ttl` and an hour more, while
//! tokens it signed may still be presented, and is then deleted. Replicas
//! that rotate at once add one key between them (the store adds a key only
//! if none newer was made meanwhile).

use crate::{
    domain::{now_ms, Error, Result, Service},
    model::SigningKey,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::{
    pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey},
    pkcs8::EncodePrivateKey,
    traits::PublicKeyParts,
    RsaPrivateKey,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Bits of each RSA key.
const KEY_BITS: usize = 2048;
/// How long a replica trusts the keys it read (a rotation by another
/// replica reaches it within this time, long before the new key signs).
const CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a replaced key stays published beyond the id_token lifetime.
const RETIRED_MARGIN: Duration = Duration::from_secs(60 * 60);

/// The rotation settings.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub every: Duration,
    pub publish_ahead: Duration,
    pub token_ttl: Duration,
}

/// A stored key, parsed once.
struct Parsed {
    kid: String,
    signs_from: i64,
    encoding: EncodingKey,
    jwk: Value,
}

/// The signing keys, read from the store at most every [`CACHE_TTL`].
pub struct Keys {
    service: Service,
    rotation: Rotation,
    cache: Mutex<Option<(Instant, Arc<Vec<Parsed>>)>>,
}

impl Keys {
    pub fn new(service: Service, rotation: Rotation) -> Self {
        Self {
            service,
            rotation,
            cache: Mutex::new(None),
        }
    }

    /// The JWKS document: every published key.
    pub async fn jwks(&self) -> Result<Value> {
        let keys = self.keys().await?;
        Ok(json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }))
    }

    /// Signs `claims` as a JWT with the key that signs now.
    pub async fn sign(&self, claims: &impl Serialize) -> Result<String> {
        let keys = self.keys().await?;
        let signer = signer_at(&keys, now_ms())?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, claims, &signer.encoding)
            .map_err(|e| Error::Internal(format!("signing an id_token: {e}")))
    }

    /// Reads (and, when due, rotates) the keys, or serves them from memory.
    async fn keys(&self) -> Result<Arc<Vec<Parsed>>> {
        // Never trusted for long against a short publication lead, so
        // that every replica sees a new key well before it signs.
        let ttl = CACHE_TTL.min(self.rotation.publish_ahead / 4);
        if let Some((read_at, keys)) = &*self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            if read_at.elapsed() < ttl {
                return Ok(keys.clone());
            }
        }
        let keys = Arc::new(self.load(now_ms()).await?);
        *self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// Makes the next key if one is due at `now`, forgets retired keys, and
    /// parses the rest, in the order they sign.
    async fn load(&self, now: i64) -> Result<Vec<Parsed>> {
        let store = self.service.store();
        let ms = |d: Duration| d.as_millis() as i64;
        let stored = store.signing_keys().await?;
        let newest = stored.iter().max_by_key(|k| k.created_at);
        let due = newest.is_none_or(|k| {
            k.signs_from + ms(self.rotation.every) - ms(self.rotation.publish_ahead) <= now
        });
        if due {
            let signs_from = if stored.is_empty() {
                now
            } else {
                now + ms(self.rotation.publish_ahead)
            };
            let key = generate(now, signs_from).await?;
            let unless_since = newest.map_or(i64::MIN, |k| k.created_at + 1);
            if store.add_signing_key(&key, unless_since).await? {
                tracing::info!(kid = %key.kid, "made a new OpenID provider signing key");
            }
        }
        let forgotten = store
            .forget_signing_keys(now - ms(self.rotation.token_ttl) - ms(RETIRED_MARGIN))
            .await?;
        let stored = if due || forgotten > 0 {
            store.signing_keys().await?
        } else {
            stored
        };
        stored.iter().map(parse).collect()
    }
}

/// The key that signs at `now`: the last of those that sign by then.
fn signer_at(keys: &[Parsed], now: i64) -> Result<&Parsed> {
    keys.iter()
        .rev()
        .find(|k| k.signs_from <= now)
        .ok_or_else(|| Error::Internal("no signing key signs yet".into()))
}

/// A new RSA key and its self-signed certificate (made on a blocking
/// thread: it takes a while).
async fn generate(now: i64, signs_from: i64) -> Result<SigningKey> {
    let kid = crate::domain::new_id();
    let subject = format!("mfa-server OpenID provider signing key {kid}");
    let (private_key, certificate) = tokio::task::spawn_blocking(move || {
        let fail =
            |e: &dyn std::fmt::Display| Error::Internal(format!("making a signing key: {e}"));
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS).map_err(|e| fail(&e))?;
        let pkcs1 = key.to_pkcs1_der().map_err(|e| fail(&e))?;
        let pkcs8 = key.to_pkcs8_der().map_err(|e| fail(&e))?;
        // Entra ID wants each key's X.509 form in the JWKS (`x5c`); the
        // certificate carries the key, nothing trusts it as a CA.
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .map_err(|e| fail(&e))?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(&e))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, subject);
        let certificate = params.self_signed(&pair).map_err(|e| fail(&e))?;
        Ok::<_, Error>((pkcs1.as_bytes().to_vec(), certificate.der().to_vec()))
    })
    .await
    .map_err(|e| Error::Internal(format!("key generation task: {e}")))??;
    Ok(SigningKey {
        kid,
        private_key,
        certificate,
        created_at: now,
        signs_from,
    })
}

fn parse(key: &SigningKey) -> Result<Parsed> {
    let corrupt =
        |e: &dyn std::fmt::Display| Error::Internal(format!("signing key {}: {e}", key.kid));
    let private = RsaPrivateKey::from_pkcs1_der(&key.private_key).map_err(|e| corrupt(&e))?;
    let b64 = |n: &rsa::BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
    Ok(Parsed {
        kid: key.kid.clone(),
        signs_from: key.signs_from,
        encoding: EncodingKey::from_rsa_der(&key.private_key),
        jwk: json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": key.kid,
            "n": b64(private.n()),
            "e": b64(private.e()),
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&key.certificate)],
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, server::build_service};

    const DAY: i64 = 24 * 60 * 60 * 1000;

    #[tokio::test]
    async fn a_new_key_is_published_before_it_signs_and_the_old_one_stays_while_its_tokens_live() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let service = build_service(&config, "http://127.0.0.1:1".into())
            .await
            .unwrap();
        let rotation = Rotation {
            every: Duration::from_secs(30 * 24 * 60 * 60),
            publish_ahead: Duration::from_secs(2 * 24 * 60 * 60),
            token_ttl: Duration::from_secs(5 * 60),
        };
        let keys = Keys::new(service, rotation);
        let kids = |keys: &[Parsed]| keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
        let t0 = now_ms();

        // The first key signs at once; a reload before rotation is due
        // changes nothing.
        let first = keys.load(t0).await.unwrap();
        assert_eq!(first.len(), 1);
        let a = first[0].kid.clone();
        assert_eq!(signer_at(&first, t0).unwrap().kid, a);
        assert_eq!(
            kids(&keys.load(t0 + 27 * DAY).await.unwrap()),
            std::slice::from_ref(&a)
        );

        // Due two days before the first has signed for thirty: the next key
        // is published, but the first still signs until the two days pass.
        let due = t0 + 28 * DAY;
        let both = keys.load(due).await.unwrap();
        assert_eq!(both.len(), 2);
        let b = both[1].kid.clone();
        assert_ne!(a, b);
        assert_eq!(signer_at(&both, due).unwrap().kid, a);
        assert_eq!(signer_at(&both, due + 2 * DAY - 1).unwrap().kid, a);
        assert_eq!(signer_at(&both, due + 2 * DAY).unwrap().kid, b);
        let jwks: Vec<Value> = both.iter().map(|k| k.jwk.clone()).collect();
        assert!(jwks
            .iter()
            .all(|k| k["kty"] == "RSA" && k["alg"] == "RS256"));

        // Replaced, the first stays published while a token it signed may
        // be presented (id_token_ttl and an hour), then goes.
        let replaced = due + 2 * DAY;
        let kept = replaced + 5 * 60 * 1000 + 60 * 60 * 1000;
        assert_eq!(kids(&keys.load(kept).await.unwrap()), [a, b.clone()]);
        assert_eq!(kids(&keys.load(kept + 1).await.unwrap()), [b]);
    }
}
