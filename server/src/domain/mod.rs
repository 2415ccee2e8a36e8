//! The rules of the product: enrollment, number-matching challenges, device
//! authentication and administration. The API layer decodes requests into
//! these calls; the store keeps each state change atomic.

mod admin;
mod auth;
mod cache;
mod challenge;
mod client;
mod deadlines;
mod device;
mod enrollment;
mod error;
pub mod input;
mod offline_code;
mod oidc;
mod tenant;
mod watches;

pub use admin::{DeletionCounts, ResetCounts, UserStatus};
pub use auth::Proof;
pub use auth::{bearer_secret, ApiKey, KeyHolder, KEY_USE_PRECISION};
pub use challenge::Answer;
pub use challenge::Decision;
pub use client::Client;
pub use device::{DeviceCall, PendingChallenge};
pub use enrollment::{EnrollmentStarted, NewDevice, Registered};
pub use error::{Error, Reason, Refusal, Result};
pub use offline_code::{OfflineCodeAttempt, OfflineCodeVerified};
pub use oidc::{client_secret_matches, RegisteredClient};
pub use tenant::{names, TenantSummary, CHALLENGE_TTLS, ENROLLMENT_TTLS};
pub use watches::{follow, WatchSlot};

use crate::{
    config::Config,
    events::{Change, Events},
    identity::ServerIdentity,
    model::*,
    offline_code_key::OfflineCodeKey,
    push::Dispatcher,
    store::{Ended, Store},
    telemetry::metrics,
};
use cache::TtlCache;
use mfa_proto::signing::PublicKey;
use rand::{rngs::OsRng, Rng, RngCore};
use std::{sync::Arc, time::Duration};
use tokio::sync::watch;

/// Limits and lifetimes taken from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub enrollment_ttl: Duration,
    pub challenge_ttl: Duration,
    pub challenge_limit: u32,
    pub challenge_window: Duration,
    pub fraud_block: Duration,
    pub clock_skew: Duration,
    pub activation_failure_limit: u32,
    pub activation_window: Duration,
    pub api_key_cache_ttl: Duration,
    pub tenant_cache_ttl: Duration,
    pub signature_failure_limit: u32,
    pub signature_window: Duration,
    pub offline_code_failure_limit: u32,
    pub offline_code_window: Duration,
    pub watch_streams_per_tenant: u32,
    pub watch_max_duration: Duration,
    pub retention: Duration,
    pub audit_retention: Duration,
}

impl From<&Config> for Limits {
    fn from(c: &Config) -> Self {
        Self {
            enrollment_ttl: c.enrollment_ttl,
            challenge_ttl: c.challenge_ttl,
            challenge_limit: c.challenge_limit,
            challenge_window: c.challenge_window,
            fraud_block: c.fraud_block,
            clock_skew: c.clock_skew,
            activation_failure_limit: c.activation_failure_limit,
            activation_window: c.activation_window,
            api_key_cache_ttl: c.api_key_cache_ttl,
            tenant_cache_ttl: c.tenant_cache_ttl,
            signature_failure_limit: c.signature_failure_limit,
            signature_window: c.signature_window,
            offline_code_failure_limit: c.offline_code_failure_limit,
            offline_code_window: c.offline_code_window,
            watch_streams_per_tenant: c.watch_streams_per_tenant,
            watch_max_duration: c.watch_max_duration,
            retention: c.retention,
            audit_retention: c.audit_retention,
        }
    }
}

/// The service: shared by every handler and background task.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    identity: ServerIdentity,
    events: Events,
    push: Arc<Dispatcher>,
    limits: Limits,
    public_url: String,
    deadlines: deadlines::Deadlines,
    shutdown: watch::Sender<bool>,
    /// Tenants by id, kept for `tenant_cache_ttl`: an operator's change
    /// (`mfa-server tenant update`) reaches every replica within that time.
    tenants: TtlCache<String, Tenant>,
    /// Portal and admin keys by hash, kept for `api_key_cache_ttl`.
    api_keys: TtlCache<[u8; 32], ApiKeyRecord>,
    /// Device public keys by algorithm and bytes, parsed (decompressed,
    /// checked on the curve) once: the value follows from the bytes alone,
    /// so it can never be stale.
    device_keys: TtlCache<(KeyAlgorithm, Vec<u8>), PublicKey>,
    watches: watches::WatchSlots,
    /// Seals offline-code secrets; `None`: offline codes are off.
    offline_code_key: Option<OfflineCodeKey>,
}

/// How long a parsed device key is reused.
const DEVICE_KEY_CACHE_TTL: Duration = Duration::from_secs(10 * 60);
/// Bound on each cache's entries.
const CACHE_CAPACITY: usize = 10_000;

impl Service {
    /// What the push providers' answers tell about our set-up.
    pub fn push_health(&self) -> &crate::push::PushHealth {
        self.inner.push.health()
    }

    /// Assembles the service.
    pub fn new(
        store: Arc<dyn Store>,
        identity: ServerIdentity,
        events: Events,
        push: Arc<Dispatcher>,
        limits: Limits,
        public_url: String,
        offline_code_key: Option<OfflineCodeKey>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                tenants: TtlCache::new(limits.tenant_cache_ttl, CACHE_CAPACITY),
                api_keys: TtlCache::new(limits.api_key_cache_ttl, CACHE_CAPACITY),
                device_keys: TtlCache::new(DEVICE_KEY_CACHE_TTL, CACHE_CAPACITY),
                store,
                identity,
                events,
                push,
                limits,
                public_url,
                deadlines: deadlines::Deadlines::default(),
                shutdown: watch::channel(false).0,
                watches: watches::WatchSlots::default(),
                offline_code_key,
            }),
        }
    }

    /// The store (for provisioning commands and watchers).
    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// The change feed that watch streams follow.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// The server's identity key.
    pub fn identity(&self) -> &ServerIdentity {
        &self.inner.identity
    }

    /// The limits and lifetimes in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Reads a challenge of this tenant.
    pub async fn challenge(&self, tenant_id: &str, challenge_id: &str) -> Result<Challenge> {
        input::id("challenge_id", challenge_id)?;
        match self.store().get_challenge(challenge_id).await? {
            Some(c) if c.tenant_id == tenant_id => Ok(c),
            _ => Err(Error::not_found("challenge")),
        }
    }

    /// Reads a challenge of this tenant with its push deliveries.
    pub async fn challenge_with_deliveries(
        &self,
        tenant_id: &str,
        challenge_id: &str,
    ) -> Result<(Challenge, Vec<PushDelivery>)> {
        input::id("challenge_id", challenge_id)?;
        match self.store().challenge_with_deliveries(challenge_id).await? {
            Some((c, deliveries)) if c.tenant_id == tenant_id => Ok((c, deliveries)),
            _ => Err(Error::not_found("challenge")),
        }
    }

    /// Reads an enrollment of this tenant.
    pub async fn enrollment(&self, tenant_id: &str, enrollment_id: &str) -> Result<Enrollment> {
        input::id("enrollment_id", enrollment_id)?;
        match self.store().get_enrollment(enrollment_id).await? {
            Some(e) if e.tenant_id == tenant_id => Ok(e),
            _ => Err(Error::not_found("enrollment")),
        }
    }

    /// The verification number of a registered enrollment (shown by the portal).
    pub async fn verification_number(&self, enrollment: &Enrollment) -> Result<Option<String>> {
        if enrollment.state != EnrollmentState::DeviceRegistered {
            return Ok(None);
        }
        let Some(id) = &enrollment.challenge_id else {
            return Ok(None);
        };
        Ok(self.store().get_challenge(id).await?.map(|c| c.number))
    }

    /// Expires everything due now and tells watchers; returns when the next
    /// sweep is due (the store's earliest deadline, or an earlier one added
    /// meanwhile).
    pub async fn sweep(&self) -> Result<Option<i64>> {
        self.sweep_at(now_ms()).await
    }

    /// [`Self::sweep`] as if the clock read `now` (ms since the Unix epoch),
    /// so that tests can expire challenges without waiting for them.
    pub async fn sweep_at(&self, now: i64) -> Result<Option<i64>> {
        let keep_since = now
            - self
                .limits()
                .activation_window
                .max(self.limits().signature_window)
                .max(self.limits().challenge_window)
                .max(self.limits().offline_code_window)
                .as_millis() as i64;
        let swept = self.store().sweep(now, keep_since).await?;
        for ended in &swept.challenges {
            self.announce_end(ended);
        }
        for enrollment in &swept.enrollments {
            metrics::enrollment(&enrollment.tenant_id, "expired");
            self.events()
                .publish(Change::Enrollment(enrollment.id.clone()));
        }
        self.inner.deadlines.forget_plan();
        let deadline = self.store().next_deadline().await?;
        Ok(self.inner.deadlines.plan(deadline))
    }

    /// Deletes what has outlived its retention: ended challenges and
    /// enrollments after `retention` (never sooner than `challenge_window`,
    /// whose limit counts them), audit events after `audit_retention`.
    /// Returns how many rows went.
    pub async fn purge(&self) -> Result<u64> {
        self.purge_at(now_ms()).await
    }

    /// [`Self::purge`] as if the clock read `now` (ms since the Unix epoch).
    pub async fn purge_at(&self, now: i64) -> Result<u64> {
        let limits = self.limits();
        let keep_ended = limits.retention.max(limits.challenge_window);
        let ended_before = now - keep_ended.as_millis() as i64;
        let audit_before = now - limits.audit_retention.as_millis() as i64;
        Ok(self.store().purge(ended_before, audit_before).await?)
    }

    /// Resolves when a deadline earlier than the planned sweep was added.
    pub async fn earlier_deadline_added(&self) {
        self.inner.deadlines.earlier_added().await
    }

    /// When the next sweep is planned.
    pub fn planned_sweep(&self) -> Option<i64> {
        self.inner.deadlines.planned()
    }

    /// Tells long-running work (watch streams, the sweeper) to finish.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once shutdown has begun.
    pub async fn shutting_down(&self) {
        let mut receiver = self.inner.shutdown.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }

    /// Tells the sweeper that something falls due at `deadline`.
    fn add_deadline(&self, deadline: i64) {
        self.inner.deadlines.add(deadline);
    }

    /// Counts and publishes a challenge that ended (and its enrollment); the
    /// store audited it in the transaction that ended it.
    fn announce_end(&self, ended: &Ended) {
        let c = &ended.challenge;
        tracing::info!(challenge_id = %c.id, state = c.state.as_str(), "challenge ended");
        metrics::challenge_ended(c);
        self.events().publish(Change::Challenge(c.id.clone()));
        if let Some(enrollment_id) = &ended.enrollment_id {
            self.events()
                .publish(Change::Enrollment(enrollment_id.clone()));
        }
    }

    /// Stores an audit event; a failure to audit is logged, not fatal to the
    /// caller's operation, which already happened.
    async fn audit(&self, mut event: AuditEvent) {
        event.at = now_ms();
        if let Err(error) = self.store().append_audit(&event).await {
            tracing::error!(%error, event_type = %event.event_type, "could not store audit event");
        }
    }

    /// Audits a failed authentication by a caller without valid credentials
    /// (anyone can cause these, as often as they like): one entry per kind,
    /// client address and minute (and the device or enrollment it named),
    /// whose count grows, so that a flood of junk calls adds one row a
    /// minute, not one a call. The challenges named vary, so none is kept.
    async fn audit_failure(&self, mut event: AuditEvent) {
        event.at = now_ms();
        event.challenge_id = None;
        let field = |value: &Option<String>| value.clone().unwrap_or_default();
        let key = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            event.at / 60_000,
            event.event_type,
            event.detail,
            field(&event.tenant_id),
            field(&event.user_id),
            field(&event.device_id),
            field(&event.enrollment_id),
            field(&event.client_address),
        );
        if let Err(error) = self.store().count_audit(&event, &key).await {
            tracing::error!(%error, event_type = %event.event_type, "could not store audit event");
        }
    }

    /// A new challenge for a user, with a fresh number and nonce.
    fn new_challenge(
        &self,
        tenant: &Tenant,
        user_id: &str,
        kind: ChallengeKind,
        context: SignInContext,
        target: Option<String>,
    ) -> Challenge {
        let now = now_ms();
        Challenge {
            id: new_id(),
            tenant_id: tenant.id.clone(),
            user_id: user_id.to_owned(),
            kind,
            target_device_id: target,
            number: random_number(tenant.number_digits),
            nonce: random_bytes(),
            state: ChallengeState::Pending,
            deny_reason: None,
            answered_by: None,
            context,
            created_at: now,
            expires_at: now + self.challenge_ttl(tenant).as_millis() as i64,
            ended_at: None,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A new random object id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A number of `digits` digits without a leading zero (10–99 for two), drawn
/// uniformly from the operating system's CSPRNG.
pub fn random_number(digits: u8) -> String {
    let low = 10u32.pow(u32::from(digits) - 1);
    OsRng.gen_range(low..low * 10).to_string()
}

/// SHA-256 of a secret, as stored in place of the secret.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_the_configured_digits_and_cover_the_range() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5000 {
            let n = random_number(2);
            assert_eq!(n.len(), 2);
            let value: u32 = n.parse().unwrap();
            assert!((10..=99).contains(&value));
            seen.insert(value);
        }
        assert_eq!(seen.len(), 90, "every two-digit number should appear");
        assert_eq!(random_number(6).len(), 6);
    }
}
