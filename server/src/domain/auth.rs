//! Who is calling: portal and admin API keys, and device request proofs.

use super::{
    input, new_id, now_ms, random_bytes, secret_hash, Client, Error, Reason, Result, Service,
};
use crate::{
    model::{ApiKeyRecord, AuditEvent, Device, DeviceState, Role},
    telemetry::metrics,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use mfa_proto::{signing, status};
use std::time::Duration;

/// Prefix of every API key, so that leaked keys are easy to recognise.
const API_KEY_PREFIX: &str = "mfak_";
/// Scope of failed device signatures (and calls naming unknown devices),
/// counted per client address.
const SIGNATURE_BY_ADDRESS: &str = "device_signature";
/// Scope of failed device signatures, counted per device.
const SIGNATURE_BY_DEVICE: &str = "device_signature.device";
/// `ErrorInfo.metadata` key of `API_KEY_WRONG_ROLE`: the role the service
/// requires (`portal` or `admin`).
pub const REQUIRED_ROLE: &str = "required_role";

/// How often at most a key's last use is written: `api-key list` shows it
/// to within this plus `api_key_cache_ttl`.
pub const KEY_USE_PRECISION: Duration = Duration::from_secs(60);

/// Whom a portal or admin call speaks for: the tenant, and the key it
/// presented (named in the audit log of what it does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    pub tenant_id: String,
    pub key_id: String,
}

/// A freshly created API key; the secret is shown once and stored hashed.
pub struct ApiKey {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A device call's proof of the device key, as decoded from the request.
pub struct Proof<'a> {
    pub device_id: &'a str,
    pub timestamp_ms: i64,
    pub nonce: &'a [u8],
    pub signature: &'a [u8],
}

/// The secret of an `authorization` value (`Bearer mfak_…`), as a gRPC
/// call's metadata and an HTTP request's header carry it.
pub fn bearer_secret(authorization: &str) -> Option<&str> {
    authorization.strip_prefix("Bearer ").map(str::trim)
}

impl Service {
    /// Creates an API key for a tenant and role (CLI and `--dev`).
    pub async fn create_api_key(&self, tenant_id: &str, role: Role) -> Result<ApiKey> {
        self.known_tenant(tenant_id).await?;
        let secret = format!(
            "{API_KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        );
        let key = ApiKey {
            id: new_id(),
            secret,
        };
        self.store()
            .create_api_key(
                &key.id,
                tenant_id,
                role,
                &secret_hash(&key.secret),
                now_ms(),
            )
            .await?;
        self.audit(AuditEvent {
            tenant_id: Some(tenant_id.to_owned()),
            event_type: "api_key.created".into(),
            detail: format!("role {} key {}", role.as_str(), key.id),
            ..Default::default()
        })
        .await;
        Ok(key)
    }

    /// A tenant's API keys (every tenant's for `None`), revoked ones
    /// included, oldest first (CLI).
    pub async fn list_api_keys(&self, tenant_id: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        if let Some(tenant_id) = tenant_id {
            self.known_tenant(tenant_id).await?;
        }
        Ok(self.store().list_api_keys(tenant_id).await?)
    }

    /// Revokes an API key by its id (CLI); true if this call revoked it,
    /// false if it was revoked already. The row stays, so that the audit
    /// trail keeps naming it. A server that checked the key within
    /// `api_key_cache_ttl` keeps accepting it until that time has passed.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(ApiKeyRecord, bool)> {
        if id.starts_with(API_KEY_PREFIX) {
            // Someone pasted the key itself: refuse without repeating it.
            return Err(Error::invalid(
                "give the key's id (as `api-key list` shows it), not the key itself",
            ));
        }
        input::id("key id", id)?;
        let revoked = self.store().revoke_api_key(id, now_ms()).await?;
        let key = self
            .store()
            .get_api_key(id)
            .await?
            .ok_or(Error::not_found("API key"))?;
        if revoked {
            self.audit(AuditEvent {
                tenant_id: Some(key.tenant_id.clone()),
                event_type: "api_key.revoked".into(),
                detail: format!("role {} key {}", key.role.as_str(), key.id),
                ..Default::default()
            })
            .await;
        }
        Ok((key, revoked))
    }

    /// The holder of a valid key of this role, presented by `client`. No key
    /// (or something that is not one) is `API_KEY_MISSING`, an unknown or
    /// revoked key `API_KEY_INVALID`, both UNAUTHENTICATED; a valid key of
    /// the other role is `API_KEY_WRONG_ROLE`, PERMISSION_DENIED: the caller
    /// is known, and the failure is audited against its tenant.
    pub async fn authenticate_key(
        &self,
        secret: Option<&str>,
        role: Role,
        client: &Client,
    ) -> Result<KeyHolder> {
        let Some(secret) = secret.filter(|s| s.starts_with(API_KEY_PREFIX)) else {
            self.audit_auth_failure(None, "missing or malformed API key", client)
                .await;
            return Err(Error::refused(
                Reason::ApiKeyMissing,
                "an API key is required: authorization: Bearer mfak_…",
            ));
        };
        let hash = secret_hash(secret);
        let found = match self.inner.api_keys.get(&hash) {
            Some(found) => Some(found),
            None => {
                let found = self.store().find_api_key(&hash).await?;
                if let Some(key) = &found {
                    self.note_key_use(key).await;
                    self.inner.api_keys.insert(hash, key.clone());
                }
                found
            }
        };
        match found {
            Some(key) if key.role == role => Ok(KeyHolder {
                tenant_id: key.tenant_id,
                key_id: key.id,
            }),
            Some(key) => {
                self.audit_auth_failure(Some(key.tenant_id), "API key of another role", client)
                    .await;
                Err(Error::refused(
                    Reason::ApiKeyWrongRole,
                    format!("this API key is not a {} key", role.as_str()),
                )
                .with(REQUIRED_ROLE, role.as_str()))
            }
            None => {
                self.audit_auth_failure(None, "unknown API key", client)
                    .await;
                Err(Error::refused(
                    Reason::ApiKeyInvalid,
                    "unknown or revoked API key",
                ))
            }
        }
    }

    /// Records that a call presented `key` now, at most once per
    /// [`KEY_USE_PRECISION`] (across replicas too: the store writes only over
    /// an older time). Only keys read from the database come here, so calls
    /// answered from the key cache cost nothing. A failed write is logged and
    /// the call goes on: the last use is for the operator's information.
    async fn note_key_use(&self, key: &ApiKeyRecord) {
        let now = now_ms();
        let unless_since = now - KEY_USE_PRECISION.as_millis() as i64;
        if key.last_used_at.is_some_and(|at| at >= unless_since) {
            return;
        }
        if let Err(error) = self
            .store()
            .record_api_key_use(&key.id, now, unless_since)
            .await
        {
            tracing::warn!(%error, key_id = %key.id, "could not record an API key's use");
        }
    }

    async fn audit_auth_failure(&self, tenant_id: Option<String>, detail: &str, client: &Client) {
        tracing::warn!(detail, client = %client.address(), "authentication failed");
        metrics::auth_failure("api_key");
        self.audit_failure(AuditEvent {
            tenant_id,
            event_type: "auth.failed".into(),
            detail: detail.to_owned(),
            client_address: Some(client.address()),
            ..Default::default()
        })
        .await;
    }

    /// Checks a device request: a known device, a fresh timestamp, a
    /// signature by its key over the request, and a nonce never seen before.
    pub(super) async fn authenticate_device(
        &self,
        proof: &Proof<'_>,
        method: &str,
        body: &[&str],
        client: &Client,
    ) -> Result<Device> {
        input::id("proof.device_id", proof.device_id)?;
        input::signature(proof.signature)?;
        if proof.nonce.len() != 16 {
            return Err(Error::invalid("proof.nonce must be 16 bytes"));
        }
        let skew = self.limits().clock_skew.as_millis() as i64;
        let now = now_ms();
        // Saturating: the timestamp is the caller's, any i64 at all.
        if now.saturating_sub(proof.timestamp_ms).saturating_abs() > skew {
            metrics::auth_failure("replay");
            // The server's time lets the app tell the person how far off
            // the phone's clock is; it is no secret.
            return Err(Error::refused(
                Reason::ClockSkew,
                "request timestamp is outside the allowed clock skew; check the device's clock",
            )
            .with(status::SERVER_TIME_MS, now)
            .with(status::MAX_SKEW_MS, skew));
        }
        let device = self.known_device(proof.device_id, client).await?;
        let message = signing::DeviceRequest {
            device_id: proof.device_id,
            method,
            timestamp_ms: proof.timestamp_ms,
            nonce: proof.nonce,
            body,
        }
        .signed_bytes();
        self.check_device_signature(&device, &message, proof.signature, None, client)
            .await?;
        if !self
            .store()
            .use_nonce(&device.id, proof.nonce, proof.timestamp_ms + skew)
            .await?
        {
            metrics::auth_failure("replay");
            self.audit_device(
                &device,
                "device.replay_rejected",
                None,
                method,
                Some(client),
            )
            .await;
            return Err(Error::refused(
                Reason::ReplayedRequest,
                "this signed request was already used",
            ));
        }
        self.ensure_not_revoked(&device, None, client).await?;
        Ok(device)
    }

    /// The calling device. A call naming a device that does not exist is
    /// counted against the caller's address (like a bad signature), and
    /// refused with RESOURCE_EXHAUSTED once the address is past its limit.
    pub(super) async fn known_device(&self, device_id: &str, client: &Client) -> Result<Device> {
        if let Some(device) = self.store().get_device(device_id).await? {
            return Ok(device);
        }
        metrics::auth_failure("unknown_device");
        let event = AuditEvent {
            event_type: "device.unknown".into(),
            detail: "a call named a device that does not exist".into(),
            client_address: Some(client.address()),
            ..Default::default()
        };
        self.refuse_bad_signature(event, &[(SIGNATURE_BY_ADDRESS, &client.throttle_key())])
            .await?;
        Err(Error::refused(Reason::DeviceUnknown, "unknown device"))
    }

    /// Verifies a device's signature. A correctly signed call is never
    /// refused for failures charged to others, so the signature is checked
    /// before any limit: behind a load balancer many phones share an
    /// address, and an attacker there must not lock them out. A bad
    /// signature is counted against the device and the caller's address,
    /// audited (aggregated per minute) and refused; once either is past
    /// `signature_failure_limit` within `signature_window`, it is refused
    /// with RESOURCE_EXHAUSTED and no longer recorded one by one.
    pub(super) async fn check_device_signature(
        &self,
        device: &Device,
        message: &[u8],
        signature: &[u8],
        challenge_id: Option<&str>,
        client: &Client,
    ) -> Result<()> {
        let cache_key = (device.key_algorithm, device.public_key.clone());
        let key = match self.inner.device_keys.get(&cache_key) {
            Some(key) => key,
            None => {
                let key = signing::PublicKey::parse(device.key_algorithm, &device.public_key)
                    .map_err(|e| {
                        Error::Internal(format!("stored key of device {}: {e}", device.id))
                    })?;
                self.inner.device_keys.insert(cache_key, key);
                key
            }
        };
        if key.verify(message, signature).is_ok() {
            return Ok(());
        }
        metrics::auth_failure("device_signature");
        let event = AuditEvent {
            tenant_id: Some(device.tenant_id.clone()),
            event_type: "device.bad_signature".into(),
            user_id: Some(device.user_id.clone()),
            device_id: Some(device.id.clone()),
            challenge_id: challenge_id.map(str::to_owned),
            detail: "signature does not verify".into(),
            client_address: Some(client.address()),
            ..Default::default()
        };
        self.refuse_bad_signature(
            event,
            &[
                (SIGNATURE_BY_ADDRESS, &client.throttle_key()),
                (SIGNATURE_BY_DEVICE, &device.id),
            ],
        )
        .await?;
        Err(Error::refused(
            Reason::SignatureInvalid,
            "device signature does not verify",
        ))
    }

    /// Charges a failed device authentication (`event`) to each of `counters`
    /// (scope, key) and audits it; RESOURCE_EXHAUSTED instead, with neither,
    /// once any of them is past the limit.
    async fn refuse_bad_signature(
        &self,
        event: AuditEvent,
        counters: &[(&str, &str)],
    ) -> Result<()> {
        let now = now_ms();
        let limits = self.limits();
        let window = (limits.signature_window, limits.signature_failure_limit);
        if let Some(scope) = self.over_limit(counters, window, now).await? {
            metrics::throttled("device_signature");
            self.audit_failure(AuditEvent {
                event_type: "device.throttled".into(),
                detail: format!("too many failed signatures ({scope})"),
                ..event
            })
            .await;
            return Err(Error::refused(
                Reason::RateLimited,
                "too many failed device signatures; wait and try again",
            ));
        }
        self.record_failures(counters, now).await?;
        self.audit_failure(event).await;
        Ok(())
    }

    /// The scope of the first of `counters` (scope, key) with at least
    /// `limit` failures within `window` before `now`, if any.
    pub(super) async fn over_limit<'a>(
        &self,
        counters: &[(&'a str, &str)],
        (window, limit): (Duration, u32),
        now: i64,
    ) -> Result<Option<&'a str>> {
        let since = now - window.as_millis() as i64;
        for (scope, key) in counters {
            if self.store().count_failures(scope, key, since).await? >= i64::from(limit) {
                return Ok(Some(scope));
            }
        }
        Ok(None)
    }

    /// Counts a failure at `now` against each of `counters` (scope, key).
    pub(super) async fn record_failures(&self, counters: &[(&str, &str)], now: i64) -> Result<()> {
        for (scope, key) in counters {
            self.store().record_failure(scope, key, now).await?;
        }
        Ok(())
    }

    /// Refuses a revoked device; the attempt is audited and counted, since a
    /// revoked phone that still calls may be in someone else's hands.
    pub(super) async fn ensure_not_revoked(
        &self,
        device: &Device,
        challenge_id: Option<&str>,
        client: &Client,
    ) -> Result<()> {
        if device.state != DeviceState::Revoked {
            return Ok(());
        }
        metrics::auth_failure("revoked_device");
        self.audit_device(
            device,
            "device.revoked_refused",
            challenge_id,
            "a revoked device called",
            Some(client),
        )
        .await;
        Err(Error::refused(
            Reason::DeviceRevoked,
            "this device has been revoked; enroll again from the portal",
        ))
    }

    pub(super) async fn audit_device(
        &self,
        device: &Device,
        event_type: &str,
        challenge_id: Option<&str>,
        detail: &str,
        client: Option<&Client>,
    ) {
        self.audit(AuditEvent {
            tenant_id: Some(device.tenant_id.clone()),
            event_type: event_type.to_owned(),
            user_id: Some(device.user_id.clone()),
            device_id: Some(device.id.clone()),
            challenge_id: challenge_id.map(str::to_owned),
            detail: detail.to_owned(),
            client_address: client.map(|c| c.address()),
            ..Default::default()
        })
        .await;
    }
}
