//! What happens around every store operation, whatever the backend: its
//! time goes into `mfa_store_operation_seconds{operation}`, and, for a
//! database across a network, it is given up as unavailable once it outlasts
//! a deadline, so that a database that stopped answering cannot hang calls.

use super::{
    Creation, Deletion, Ended, Quota, Reset, Store, StoreError, StoreResult, Swept, TenantCounts,
};
use crate::{model::*, telemetry::metrics::store_operation};
use async_trait::async_trait;
use std::time::{Duration, Instant};

/// Wraps a store: times each operation and bounds it by `deadline`, if any.
pub struct Instrumented<S> {
    store: S,
    deadline: Option<Duration>,
}

impl<S: Store> Instrumented<S> {
    /// Times `store`'s operations; none is given up.
    pub fn new(store: S) -> Self {
        Self {
            store,
            deadline: None,
        }
    }

    /// Times `store`'s operations and fails those that take longer than
    /// `deadline` (a zero `deadline` bounds nothing). Migrating and closing
    /// are never bounded.
    pub fn bounded(store: S, deadline: Duration) -> Self {
        Self {
            store,
            deadline: Some(deadline).filter(|d| !d.is_zero()),
        }
    }
}

/// Implements [`Store`] by timing and delegating each listed method, bounded
/// unless marked `#[unbounded]`.
macro_rules! timed {
    ($($(#[$unbounded:ident])? fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        #[async_trait]
        impl<S: Store> Store for Instrumented<S> {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret> {
                    let start = Instant::now();
                    let call = self.store.$name($($arg),*);
                    let deadline = timed!(@deadline self $(, $unbounded)?);
                    let result = match deadline {
                        Some(deadline) => tokio::time::timeout(deadline, call)
                            .await
                            .unwrap_or(Err(StoreError::TimedOut {
                                operation: stringify!($name),
                                after: deadline,
                            })),
                        None => call.await,
                    };
                    store_operation(stringify!($name), start.elapsed());
                    result
                }
            )*
        }
    };
    (@deadline $self:ident) => { $self.deadline };
    (@deadline $self:ident, unbounded) => { None };
}

timed! {
    #[unbounded] fn migrate(&self) -> ();
    fn ping(&self) -> ();
    #[unbounded] fn close(&self) -> ();
    fn count_pending_challenges(&self) -> i64;
    fn create_tenant(&self, tenant: &Tenant) -> ();
    fn get_tenant(&self, id: &str) -> Option<Tenant>;
    fn count_tenants(&self) -> i64;
    fn list_tenants(&self) -> Vec<Tenant>;
    fn update_tenant(&self, id: &str, changes: &TenantChanges) -> Option<Tenant>;
    fn tenant_counts(&self, id: &str, now: i64) -> TenantCounts;
    fn create_api_key(&self, id: &str, tenant_id: &str, role: Role, key_hash: &[u8; 32], now: i64) -> ();
    fn find_api_key(&self, key_hash: &[u8; 32]) -> Option<ApiKeyRecord>;
    fn get_api_key(&self, id: &str) -> Option<ApiKeyRecord>;
    fn list_api_keys(&self, tenant_id: Option<&str>) -> Vec<ApiKeyRecord>;
    fn record_api_key_use(&self, id: &str, now: i64, unless_since: i64) -> bool;
    fn revoke_api_key(&self, id: &str, now: i64) -> bool;
    fn get_user(&self, tenant_id: &str, user_id: &str) -> Option<User>;
    fn set_blocked_until(&self, tenant_id: &str, user_id: &str, until: Option<i64>) -> bool;
    fn record_terms(&self, tenant_id: &str, user_id: &str, version: &str, now: i64) -> ();
    fn create_enrollment(&self, enrollment: &Enrollment, email: &str, code_hash: &[u8; 32]) -> ();
    fn get_enrollment(&self, id: &str) -> Option<Enrollment>;
    fn find_enrollment_by_code(&self, code_hash: &[u8; 32]) -> Option<Enrollment>;
    fn register_device(&self, enrollment_id: &str, device: &Device, challenge: &Challenge, now: i64) -> bool;
    fn get_device(&self, id: &str) -> Option<Device>;
    fn list_devices(&self, tenant_id: &str, user_id: &str) -> Vec<Device>;
    fn user_with_devices(&self, tenant_id: &str, user_id: &str) -> Option<(User, Vec<Device>)>;
    fn set_push_token(&self, device_id: &str, platform: PushPlatform, token: &str) -> ();
    fn revoke_device(&self, device_id: &str, now: i64) -> bool;
    fn save_delivery(&self, delivery: &PushDelivery) -> ();
    fn list_deliveries(&self, challenge_id: &str) -> Vec<PushDelivery>;
    fn invalidate_push_token(&self, device_id: &str, token: &str, reason: &str, now: i64) -> bool;
    fn count_unreachable_devices(&self) -> Vec<UnreachableDevices>;
    fn provider_token(&self, name: &str) -> Option<ProviderToken>;
    fn replace_provider_token(&self, name: &str, replaces: Option<&str>, token: &ProviderToken) -> bool;
    fn use_nonce(&self, device_id: &str, nonce: &[u8], expires_at: i64) -> bool;
    fn create_challenge(&self, challenge: &Challenge, quota: Quota) -> Creation;
    fn get_challenge(&self, id: &str) -> Option<Challenge>;
    fn challenge_with_deliveries(&self, id: &str) -> Option<(Challenge, Vec<PushDelivery>)>;
    fn pending_for_device(&self, device: &Device, now: i64) -> Vec<(Challenge, String)>;
    fn end_challenge(&self, challenge: &Challenge, ending: &Ending, now: i64) -> Option<Ended>;
    fn sweep(&self, now: i64, keep_attempts_since: i64) -> Swept;
    fn purge(&self, ended_before: i64, audit_before: i64) -> u64;
    fn next_deadline(&self) -> Option<i64>;
    fn reset_user(&self, tenant_id: &str, user_id: &str, now: i64) -> Reset;
    fn delete_user(&self, tenant_id: &str, user_id: &str, by: &str, now: i64) -> Deletion;
    fn save_offline_secret(&self, device_id: &str, sealed: &[u8]) -> ();
    fn offline_secrets(&self, tenant_id: &str, user_id: &str) -> Vec<OfflineSecret>;
    fn use_offline_step(&self, device_id: &str, step: i64) -> bool;
    fn record_failure(&self, scope: &str, key: &str, now: i64) -> ();
    fn count_failures(&self, scope: &str, key: &str, since: i64) -> i64;
    fn append_audit(&self, event: &AuditEvent) -> ();
    fn count_audit(&self, event: &AuditEvent, key: &str) -> ();
    fn list_audit(&self, tenant_id: &str, user_id: Option<&str>, before_id: Option<i64>, limit: i64) -> Vec<AuditEvent>;
    fn signing_keys(&self) -> Vec<SigningKey>;
    fn add_signing_key(&self, key: &SigningKey, unless_created_since: i64) -> bool;
    fn forget_signing_keys(&self, replaced_before: i64) -> u64;
    fn create_oidc_client(&self, client: &OidcClient) -> ();
    fn get_oidc_client(&self, client_id: &str) -> Option<OidcClient>;
    fn list_oidc_clients(&self, tenant_id: &str) -> Vec<OidcClient>;
    fn create_authorization(&self, authorization: &Authorization) -> ();
    fn get_authorization(&self, id: &str) -> Option<Authorization>;
    fn set_authorization_step(&self, id: &str, challenge_id: Option<&str>, enrollment_id: Option<&str>) -> bool;
    fn finish_authorization(&self, id: &str, code: Option<(&[u8; 32], i64)>, auth_time: Option<i64>, now: i64) -> bool;
    fn redeem_code(&self, code_hash: &[u8; 32], now: i64) -> Option<Authorization>;
}
