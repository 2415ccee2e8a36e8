//! Persistence behind a narrow interface: each method is one operation the
//! domain needs, atomic on its own ("end this challenge if it is still
//! pending"), so that every backend keeps the same guarantees.

mod instrumented;
mod oidc;
mod postgres;
mod rows;
mod sqlite;

pub use instrumented::Instrumented;
pub use postgres::{ChangeFeed, DatabaseTls, PostgresStore, SslMode};
pub use sqlite::{SqliteStore, WAL_SIZE_LIMIT};

use crate::model::*;
use async_trait::async_trait;
use std::time::Duration;

/// Connection pool limits for a database server (PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once, the change listener's included.
    pub max_connections: u32,
    /// Longest wait for a connection before a call fails as unavailable.
    pub acquire_timeout: Duration,
    /// Longest a statement may run on the database (`statement_timeout`;
    /// zero for none). Migrations are not bounded.
    pub statement_timeout: Duration,
}

/// Where an enrollment ends when its verification challenge ends in `state`
/// (its device becomes active when verified, and is revoked otherwise).
fn enrollment_after_verification(state: ChallengeState) -> EnrollmentState {
    match state {
        ChallengeState::Approved => EnrollmentState::Verified,
        ChallengeState::Expired => EnrollmentState::Expired,
        ChallengeState::Cancelled | ChallengeState::Superseded => EnrollmentState::Cancelled,
        ChallengeState::Denied | ChallengeState::Pending => EnrollmentState::Failed,
    }
}

/// The audit entries a store writes in the same transaction as the change
/// they record, so that no crash can separate an outcome from its record.
pub(crate) mod audit {
    use super::Ended;
    use crate::model::*;

    /// A challenge was created.
    pub fn created(challenge: &Challenge) -> AuditEvent {
        AuditEvent {
            tenant_id: Some(challenge.tenant_id.clone()),
            at: challenge.created_at,
            event_type: "challenge.created".into(),
            user_id: Some(challenge.user_id.clone()),
            challenge_id: Some(challenge.id.clone()),
            ..Default::default()
        }
    }

    /// A challenge ended (`challenge.approved`, `challenge.expired`, …), with
    /// `note` or else its deny reason as the detail.
    pub fn ended(ended: &Ended, note: Option<&str>, at: i64) -> AuditEvent {
        let c = &ended.challenge;
        AuditEvent {
            tenant_id: Some(c.tenant_id.clone()),
            at,
            event_type: format!("challenge.{}", c.state.as_str()),
            user_id: Some(c.user_id.clone()),
            device_id: c.answered_by.clone().or_else(|| c.target_device_id.clone()),
            challenge_id: Some(c.id.clone()),
            enrollment_id: ended.enrollment_id.clone(),
            detail: note
                .map(str::to_owned)
                .or_else(|| c.deny_reason.map(|r| r.as_str().to_owned()))
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// The user was blocked by a fraud report on this challenge.
    pub fn blocked(challenge: &Challenge, at: i64) -> AuditEvent {
        AuditEvent {
            tenant_id: Some(challenge.tenant_id.clone()),
            at,
            event_type: "user.blocked".into(),
            user_id: Some(challenge.user_id.clone()),
            device_id: challenge.answered_by.clone(),
            challenge_id: Some(challenge.id.clone()),
            detail: "fraud reported".into(),
            ..Default::default()
        }
    }

    /// An enrollment expired unfinished.
    pub fn enrollment_expired(enrollment: &Enrollment, at: i64) -> AuditEvent {
        AuditEvent {
            tenant_id: Some(enrollment.tenant_id.clone()),
            at,
            event_type: "enrollment.expired".into(),
            user_id: Some(enrollment.user_id.clone()),
            enrollment_id: Some(enrollment.id.clone()),
            ..Default::default()
        }
    }

    /// A user was deleted, by `by` (an admin key, the command line): the
    /// counts only, and no user id, so that the entry names no one.
    pub fn user_deleted(
        tenant_id: &str,
        deleted: &super::Deletion,
        by: &str,
        at: i64,
    ) -> AuditEvent {
        AuditEvent {
            tenant_id: Some(tenant_id.to_owned()),
            at,
            event_type: "user.deleted".into(),
            detail: format!(
                "deleted {} devices, {} challenges ({} pending) and {} enrollments ({} open); \
                 anonymised {} audit events; by {by}",
                deleted.devices,
                deleted.challenges,
                deleted.cancelled_challenges.len(),
                deleted.enrollments,
                deleted.cancelled_enrollments.len(),
                deleted.anonymised_audit_events,
            ),
            ..Default::default()
        }
    }

    /// The entries of one sweep: expired challenges and enrollments.
    pub fn swept(swept: &super::Swept, at: i64) -> Vec<AuditEvent> {
        let challenges = swept.challenges.iter().map(|e| ended(e, None, at));
        let enrollments = swept.enrollments.iter().map(|e| enrollment_expired(e, at));
        challenges.chain(enrollments).collect()
    }

    /// The entries of a challenge's creation and of those it superseded.
    pub fn creation(challenge: &Challenge, superseded: &[Ended]) -> Vec<AuditEvent> {
        let note = format!("superseded by {}", challenge.id);
        superseded
            .iter()
            .map(|e| ended(e, Some(&note), challenge.created_at))
            .chain([created(challenge)])
            .collect()
    }

    /// The entries of an ending: the end, and the block a fraud report set.
    pub fn ending(ended: &Ended, ending: &Ending, at: i64) -> Vec<AuditEvent> {
        let block = ending
            .block_user_until
            .map(|_| blocked(&ended.challenge, at));
        [self::ended(ended, ending.note.as_deref(), at)]
            .into_iter()
            .chain(block)
            .collect()
    }
}

/// The database URL with its password, if any, replaced by `***`: the form
/// that may be logged or shown.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => format!(
            "{}:…",
            url.split(':').next().unwrap_or_default().escape_default()
        ),
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// The embedded database (SQLite) failed.
    #[error("database unavailable: {0}")]
    Embedded(#[from] rusqlite::Error),
    /// A unique value (id, key hash, activation code hash) already exists.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// A thread or file the store needs could not be set up.
    #[error("database I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The database's TLS settings are unusable, or its TLS connection was
    /// refused; the message names the cause (and never a password).
    #[error("{0}")]
    Tls(String),
    /// The database did not answer in time (the store gave up on it).
    #[error("database unavailable: no answer to {operation} within {after:?}")]
    TimedOut {
        operation: &'static str,
        after: Duration,
    },
    /// A stored value could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A cap on a user's sign-in challenges: at most `limit` created at or after
/// `since`. The store counts them in the transaction that creates the next
/// one, so that racing creations cannot overshoot it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub since: i64,
    pub limit: u32,
}

/// What [`Store::create_challenge`] did.
#[derive(Debug, Clone)]
pub enum Creation {
    /// The challenge was created; these pending sign-ins were superseded.
    Created(Vec<Ended>),
    /// The user's quota was spent: nothing was written.
    QuotaSpent,
}

/// A challenge that left `Pending`, and the enrollment it confirmed, if any.
#[derive(Debug, Clone)]
pub struct Ended {
    pub challenge: Challenge,
    pub enrollment_id: Option<String>,
}

/// What expired in one sweep.
#[derive(Debug, Clone, Default)]
pub struct Swept {
    pub challenges: Vec<Ended>,
    pub enrollments: Vec<Enrollment>,
}

/// What a reset of a user's methods changed.
#[derive(Debug, Clone, Default)]
pub struct Reset {
    pub revoked_devices: Vec<String>,
    pub cancelled_challenges: Vec<String>,
    /// How many of the cancelled challenges were sign-ins.
    pub cancelled_sign_ins: u32,
    pub cancelled_enrollments: Vec<String>,
}

/// What deleting a user removed ([`Store::delete_user`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deletion {
    /// False if there was no such user: nothing was deleted or written.
    pub found: bool,
    pub devices: u64,
    pub challenges: u64,
    pub enrollments: u64,
    /// The deleted challenges that were pending, cancelled first.
    pub cancelled_challenges: Vec<String>,
    /// How many of the cancelled challenges were sign-ins.
    pub cancelled_sign_ins: u32,
    /// The deleted enrollments that were open, cancelled first.
    pub cancelled_enrollments: Vec<String>,
    /// The user's audit events kept without anything that points to them.
    pub anonymised_audit_events: u64,
}

/// What cancelling a user's open work ended (a reset, a deletion).
pub(crate) struct Cancelled {
    /// The pending challenges, as `(id, kind)`.
    pub challenges: Vec<(String, String)>,
    /// The open enrollments' ids.
    pub enrollments: Vec<String>,
}

/// The statement that cancels a user's open enrollments (`$1` tenant, `$2`
/// user), returning their ids: part of a reset and of a deletion.
pub(crate) const CANCEL_OPEN_ENROLLMENTS: &str = "UPDATE enrollments SET state = 'cancelled'
     WHERE tenant_id = $1 AND user_id = $2 AND state IN ('waiting_for_scan', 'device_registered')
     RETURNING id";

/// The statements of [`Store::delete_user`] that are the same on every
/// backend, each taking the tenant as `$1` and the user as `$2`, in the
/// order they run (after the user's pending challenges are cancelled).
pub(crate) mod delete_user {
    /// Keeps the user's audit events (and those naming a device of theirs)
    /// as a record of what happened when, without what could point back to
    /// the person: the user, device, challenge and enrollment ids, the
    /// client address, the aggregation key (which repeats them) and the
    /// detail, unless the detail is one of the fixed words of its event type
    /// (a deny reason, the fraud block, the reset counts, a terms version).
    pub const ANONYMISE_AUDIT: &str = "UPDATE audit_events SET
             user_id = NULL, device_id = NULL, challenge_id = NULL, enrollment_id = NULL,
             client_address = NULL, aggregate_key = NULL,
             detail = CASE WHEN event_type IN
                 ('challenge.denied', 'user.blocked', 'user.reset', 'terms.accepted')
                 THEN detail ELSE '' END
         WHERE tenant_id = $1
           AND (user_id = $2 OR device_id IN (SELECT id FROM devices WHERE tenant_id = $1 AND user_id = $2))";
    /// Forgets the request nonces of the user's devices.
    pub const NONCES: &str = "DELETE FROM device_nonces
         WHERE device_id IN (SELECT id FROM devices WHERE tenant_id = $1 AND user_id = $2)";
    /// Forgets the failures counted against the user, whose key is
    /// `tenant/user` (failed offline codes): it names the user.
    pub const FAILURES: &str = "DELETE FROM failed_attempts WHERE key = $1 || '/' || $2";
    /// Forgets the user's sign-ins through the OpenID provider.
    pub const OIDC_AUTHORIZATIONS: &str =
        "DELETE FROM oidc_authorizations WHERE tenant_id = $1 AND user_id = $2";
    /// Deletes the user's challenges; their push deliveries go with them
    /// (`ON DELETE CASCADE`).
    pub const CHALLENGES: &str = "DELETE FROM challenges WHERE tenant_id = $1 AND user_id = $2";
    pub const ENROLLMENTS: &str = "DELETE FROM enrollments WHERE tenant_id = $1 AND user_id = $2";
    pub const DEVICES: &str = "DELETE FROM devices WHERE tenant_id = $1 AND user_id = $2";
    pub const USER: &str = "DELETE FROM users WHERE tenant_id = $1 AND user_id = $2";
}

/// How much a tenant has, for `mfa-server tenant show`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantCounts {
    pub users: i64,
    /// Devices that can answer (not revoked, verification finished).
    pub active_devices: i64,
    /// Challenges waiting for an answer and not yet due.
    pub pending_challenges: i64,
}

/// The statements of [`Store::purge`], the same on every backend: the first
/// two take the end cutoff, the last the audit cutoff, each as `$1`. Push
/// deliveries go with their challenge (`ON DELETE CASCADE`).
pub(crate) const PURGE_ENDED: [&str; 2] = [
    "DELETE FROM challenges WHERE ended_at < $1",
    "DELETE FROM enrollments
     WHERE state NOT IN ('waiting_for_scan', 'device_registered') AND expires_at < $1",
];
/// The statement that purges audit events older than `$1`. Ids grow with
/// time, so these are the events before the first one at or after the
/// cutoff, found by reading from the oldest: the purge reads only the rows it
/// deletes (and one more), with no index on the time, of which every entry
/// would write a page. An entry stamped earlier than one written before it (a
/// clock stepped back, replicas' clocks) waits for a later purge; none at or
/// after the cutoff is ever deleted.
pub(crate) const PURGE_AUDIT: &str = "DELETE FROM audit_events WHERE id < COALESCE(
         (SELECT id FROM audit_events WHERE at >= $1 ORDER BY id LIMIT 1),
         (SELECT MAX(id) + 1 FROM audit_events))";

/// The statement that counts a user's sign-in challenges for a [`Quota`], the
/// same on every backend (`$1` tenant, `$2` user, `$3` since).
pub(crate) const COUNT_SIGN_INS: &str = "SELECT COUNT(*) FROM challenges
     WHERE tenant_id = $1 AND user_id = $2 AND kind = 'sign_in' AND created_at >= $3";

/// The statement of [`Store::user_with_devices`], the same on every backend
/// (`$1` tenant, `$2` user): the user's row with each of their devices, or
/// once with no device (a device always has its user, by foreign key).
pub(crate) const USER_WITH_DEVICES: &str = "SELECT u.tenant_id AS tenant_id, u.user_id AS user_id,
         u.email AS email, u.blocked_until AS blocked_until,
         u.terms_version AS terms_version, u.terms_accepted_at AS terms_accepted_at,
         d.id AS id, d.display_name AS display_name, d.key_algorithm AS key_algorithm,
         d.public_key AS public_key,
         d.push_platform AS push_platform, d.push_token AS push_token, d.state AS state,
         d.created_at AS created_at, d.revoked_at AS revoked_at,
         d.push_token_invalid_at AS push_token_invalid_at,
         d.push_token_invalid_reason AS push_token_invalid_reason
     FROM users u LEFT JOIN devices d ON d.tenant_id = u.tenant_id AND d.user_id = u.user_id
     WHERE u.tenant_id = $1 AND u.user_id = $2
     ORDER BY d.created_at, d.id";

/// The statement of [`Store::count_unreachable_devices`], the same on every
/// backend (served by the `devices_without_push` index).
pub(crate) const COUNT_UNREACHABLE_DEVICES: &str = "SELECT tenant_id, push_platform,
         CASE WHEN push_token_invalid_at IS NULL THEN 'no_token' ELSE 'token_invalid' END AS status,
         COUNT(*) AS count
     FROM devices WHERE state = 'active' AND push_token = ''
     GROUP BY tenant_id, push_platform, status";

/// The statement that forgets a dead push token, the same on every backend:
/// `$1` the reason, `$2` when, `$3` the device, `$4` the token.
pub(crate) const INVALIDATE_PUSH_TOKEN: &str = "UPDATE devices
     SET push_token = '', push_token_invalid_reason = $1, push_token_invalid_at = $2
     WHERE id = $3 AND push_token = $4";

/// The statement that registers a push token (`$1` platform, `$2` token, `$3`
/// device), ending any earlier token's invalid status.
pub(crate) const SET_PUSH_TOKEN: &str = "UPDATE devices
     SET push_platform = $1, push_token = $2, push_token_invalid_at = NULL,
         push_token_invalid_reason = ''
     WHERE id = $3";

/// The statements of [`Store::provider_token`] and
/// [`Store::replace_provider_token`], the same on every backend.
pub(crate) const PROVIDER_TOKEN: &str =
    "SELECT token, issued_at FROM push_provider_tokens WHERE name = $1";
pub(crate) const INSERT_PROVIDER_TOKEN: &str =
    "INSERT INTO push_provider_tokens (name, token, issued_at) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO NOTHING";
pub(crate) const REPLACE_PROVIDER_TOKEN: &str =
    "UPDATE push_provider_tokens SET token = $1, issued_at = $2 WHERE name = $3 AND token = $4";

/// `INSERT INTO audit_events` and its columns, in the order the backends bind
/// an entry's values: its ten columns, then its aggregation key.
macro_rules! insert_audit_into {
    () => {
        "INSERT INTO audit_events
         (tenant_id, at, event_type, user_id, device_id, challenge_id, enrollment_id, detail,
          client_address, count, aggregate_key)"
    };
}
pub(crate) use insert_audit_into;

/// The statement that appends an audit entry, the same on every backend:
/// `$1`…`$10` are the entry's columns, `$11` its aggregation key (NULL for an
/// entry of its own).
pub(crate) const INSERT_AUDIT: &str = concat!(
    insert_audit_into!(),
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);

/// The statement of [`Store::count_audit`]: [`INSERT_AUDIT`], or one more
/// on the entry with the same key.
pub(crate) const COUNT_AUDIT: &str = concat!(
    insert_audit_into!(),
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (aggregate_key) WHERE aggregate_key IS NOT NULL
     DO UPDATE SET count = audit_events.count + 1"
);

/// The statement that inserts a tenant, the same on every backend (`$1`…`$7`:
/// id, display name, digits, created, challenge and enrollment lifetimes in
/// milliseconds or NULL, whether offline codes are on).
pub(crate) const INSERT_TENANT: &str = "INSERT INTO tenants
     (id, display_name, number_digits, created_at, challenge_ttl_ms, enrollment_ttl_ms,
      offline_codes_enabled)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// The statement of [`Store::update_tenant`], the same on every backend: a
/// NULL `$1` or `$2` keeps the display name or digits; `$3` (`$5`) says
/// whether to set the challenge (enrollment) lifetime to `$4` (`$6`), NULL
/// meaning the server's default; a NULL `$7` keeps whether offline codes
/// are on; `$8` (`$10`) whether to set the allowed key algorithms (the user
/// verification methods) to `$9` (`$11`), NULL meaning every algorithm (none
/// required), see [`names`]; `$12` is the tenant. (SQLite numbers `$n`
/// parameters in the order they first appear, so they appear in order.) One
/// statement, so that two updates of different settings cannot undo each
/// other.
pub(crate) const UPDATE_TENANT: &str = "UPDATE tenants SET
         display_name = COALESCE($1, display_name),
         number_digits = COALESCE($2, number_digits),
         challenge_ttl_ms = CASE WHEN $3 THEN $4 ELSE challenge_ttl_ms END,
         enrollment_ttl_ms = CASE WHEN $5 THEN $6 ELSE enrollment_ttl_ms END,
         offline_codes_enabled = COALESCE($7, offline_codes_enabled),
         allowed_key_algorithms = CASE WHEN $8 THEN $9 ELSE allowed_key_algorithms END,
         user_verification = CASE WHEN $10 THEN $11 ELSE user_verification END
     WHERE id = $12
     RETURNING *";

/// The statements of the offline-code operations, the same on every backend.
pub(crate) mod offline_codes {
    /// [`super::Store::save_offline_secret`] (`$1` device, `$2` sealed secret).
    pub const SAVE: &str = "INSERT INTO offline_code_secrets (device_id, sealed) VALUES ($1, $2)";
    /// [`super::Store::offline_secrets`] (`$1` tenant, `$2` user).
    pub const LIST: &str = "SELECT s.device_id AS device_id, s.sealed AS sealed,
             s.last_step AS last_step
         FROM offline_code_secrets s JOIN devices d ON d.id = s.device_id
         WHERE d.tenant_id = $1 AND d.user_id = $2 AND d.state = 'active'
         ORDER BY d.created_at, d.id";
    /// [`super::Store::use_offline_step`] (`$1` step, `$2` device): one
    /// statement, so that two replicas checking the same code at once
    /// cannot both accept it.
    pub const USE_STEP: &str = "UPDATE offline_code_secrets SET last_step = $1
         WHERE device_id = $2 AND (last_step IS NULL OR last_step < $1)";
}

/// The allowed key algorithms an update sets, as stored.
pub(crate) fn algorithm_names(changes: &TenantChanges) -> Option<String> {
    names(
        changes.allowed_key_algorithms.as_ref()?.as_ref(),
        KeyAlgorithm::as_str,
    )
}

/// The user verification methods an update sets, as stored.
pub(crate) fn verification_names(changes: &TenantChanges) -> Option<String> {
    names(
        changes.user_verification.as_ref()?.as_ref(),
        UserVerification::as_str,
    )
}

/// A set of names as stored: comma-separated, NULL for no set.
pub(crate) fn names<T: Copy>(
    set: Option<&std::collections::BTreeSet<T>>,
    name: impl Fn(T) -> &'static str,
) -> Option<String> {
    set.map(|set| {
        set.iter()
            .map(|&item| name(item))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// A lifetime as stored: milliseconds, NULL for the server's default.
pub(crate) fn lifetime_ms(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// The columns of an [`ApiKeyRecord`] (never the hash).
macro_rules! api_key_columns {
    () => {
        "SELECT id, tenant_id, role, created_at, revoked_at, last_used_at FROM api_keys"
    };
}

/// The statement of [`Store::find_api_key`], the same on every backend
/// (`$1`: the key's hash): a revoked key no longer authenticates.
pub(crate) const FIND_API_KEY: &str = concat!(
    api_key_columns!(),
    " WHERE key_hash = $1 AND revoked_at IS NULL"
);
/// The statement of [`Store::get_api_key`] (`$1`: the key's id).
pub(crate) const GET_API_KEY: &str = concat!(api_key_columns!(), " WHERE id = $1");
/// The statement of [`Store::list_api_keys`] (`$1`: the tenant, or NULL for
/// every tenant's keys).
pub(crate) const LIST_API_KEYS: &str = concat!(
    api_key_columns!(),
    " WHERE CAST($1 AS TEXT) IS NULL OR tenant_id = $1 ORDER BY created_at, id"
);
/// The statement of [`Store::record_api_key_use`] (`$1` now, `$2` the key,
/// `$3` the time before which an earlier use is rewritten).
pub(crate) const RECORD_API_KEY_USE: &str =
    "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)";

/// The operations the service needs from its database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Checks that the database can be reached the way a new client would.
    async fn ping(&self) -> StoreResult<()>;
    /// Finishes pending writes and closes every connection (on shutdown).
    async fn close(&self) -> StoreResult<()>;
    /// Challenges waiting for an answer.
    async fn count_pending_challenges(&self) -> StoreResult<i64>;

    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>>;
    async fn count_tenants(&self) -> StoreResult<i64>;
    /// Every tenant, oldest first.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// Applies `changes` to a tenant in one statement; the tenant as it now
    /// is, or `None` if there is no such tenant.
    async fn update_tenant(&self, id: &str, changes: &TenantChanges)
        -> StoreResult<Option<Tenant>>;
    /// A tenant's users, active devices and challenges pending at `now`.
    async fn tenant_counts(&self, id: &str, now: i64) -> StoreResult<TenantCounts>;
    async fn create_api_key(
        &self,
        id: &str,
        tenant_id: &str,
        role: Role,
        key_hash: &[u8; 32],
        now: i64,
    ) -> StoreResult<()>;
    /// The unrevoked key with this hash.
    async fn find_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<ApiKeyRecord>>;
    /// The key with this id, revoked or not.
    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// A tenant's keys (every tenant's for `None`), revoked ones included,
    /// oldest first.
    async fn list_api_keys(&self, tenant_id: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Records that a key authenticated at `now`, unless a use at or after
    /// `unless_since` is recorded already; true if it wrote.
    async fn record_api_key_use(&self, id: &str, now: i64, unless_since: i64) -> StoreResult<bool>;
    /// Revokes a key unless already revoked; true if it changed.
    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<bool>;

    async fn get_user(&self, tenant_id: &str, user_id: &str) -> StoreResult<Option<User>>;
    /// Sets (or clears) the block on a user's new challenges.
    async fn set_blocked_until(
        &self,
        tenant_id: &str,
        user_id: &str,
        until: Option<i64>,
    ) -> StoreResult<bool>;
    /// Records an accepted terms version, creating the user if needed.
    async fn record_terms(
        &self,
        tenant_id: &str,
        user_id: &str,
        version: &str,
        now: i64,
    ) -> StoreResult<()>;

    /// Creates an enrollment (and the user, or updates the user's e-mail).
    async fn create_enrollment(
        &self,
        enrollment: &Enrollment,
        email: &str,
        code_hash: &[u8; 32],
    ) -> StoreResult<()>;
    async fn get_enrollment(&self, id: &str) -> StoreResult<Option<Enrollment>>;
    async fn find_enrollment_by_code(
        &self,
        code_hash: &[u8; 32],
    ) -> StoreResult<Option<Enrollment>>;
    /// Registers a device on an enrollment still waiting for a scan and not
    /// expired at `now`, with its verification challenge; false if it was not.
    async fn register_device(
        &self,
        enrollment_id: &str,
        device: &Device,
        challenge: &Challenge,
        now: i64,
    ) -> StoreResult<bool>;

    async fn get_device(&self, id: &str) -> StoreResult<Option<Device>>;
    /// A user's devices, oldest first.
    async fn list_devices(&self, tenant_id: &str, user_id: &str) -> StoreResult<Vec<Device>>;
    /// A user and their devices, oldest first, in one read; `None` for an
    /// unknown user.
    async fn user_with_devices(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<(User, Vec<Device>)>>;
    async fn set_push_token(
        &self,
        device_id: &str,
        platform: PushPlatform,
        token: &str,
    ) -> StoreResult<()>;
    /// Revokes a device unless already revoked; true if it changed.
    async fn revoke_device(&self, device_id: &str, now: i64) -> StoreResult<bool>;
    /// Records where a push delivery stands (one row per challenge and device).
    async fn save_delivery(&self, delivery: &PushDelivery) -> StoreResult<()>;
    /// The push deliveries of a challenge, by device id.
    async fn list_deliveries(&self, challenge_id: &str) -> StoreResult<Vec<PushDelivery>>;
    /// Forgets a device's push token that the provider reported invalid at
    /// `now` for `reason`, unless the app has registered another one
    /// meanwhile; true if it did.
    async fn invalidate_push_token(
        &self,
        device_id: &str,
        token: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Active devices without working push, per tenant, platform and status.
    async fn count_unreachable_devices(&self) -> StoreResult<Vec<UnreachableDevices>>;
    /// The provider token shared under `name`, if there is one.
    async fn provider_token(&self, name: &str) -> StoreResult<Option<ProviderToken>>;
    /// Shares `token` under `name` if the shared one is still `replaces`
    /// (`None`: there is none); false if another server replaced it first.
    async fn replace_provider_token(
        &self,
        name: &str,
        replaces: Option<&str>,
        token: &ProviderToken,
    ) -> StoreResult<bool>;
    /// Remembers a device request nonce until `expires_at`; false if it was
    /// already used.
    async fn use_nonce(&self, device_id: &str, nonce: &[u8], expires_at: i64) -> StoreResult<bool>;

    /// Inserts a sign-in challenge unless the user's `quota` is spent,
    /// superseding the user's pending sign-in challenges in the same
    /// transaction. The audit entries ([`audit::creation`]) go in the same
    /// transaction. Creations for one user are serialized, across replicas.
    async fn create_challenge(&self, challenge: &Challenge, quota: Quota) -> StoreResult<Creation>;
    async fn get_challenge(&self, id: &str) -> StoreResult<Option<Challenge>>;
    /// A challenge with its push deliveries ([`Store::list_deliveries`]), in
    /// one read.
    async fn challenge_with_deliveries(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Challenge, Vec<PushDelivery>)>>;
    /// Pending, unexpired challenges that this device may answer, newest
    /// first, each with its user's e-mail (read in the same query).
    async fn pending_for_device(
        &self,
        device: &Device,
        now: i64,
    ) -> StoreResult<Vec<(Challenge, String)>>;
    /// Ends `challenge` (as last read: a backend may record the ending from
    /// it) if it is still pending (and, unless it is being expired, not yet
    /// expired at `now`); `None` if it was not. Ending a verification
    /// challenge also settles its enrollment and device. The audit entries
    /// ([`audit::ending`]) go in the same transaction.
    async fn end_challenge(
        &self,
        challenge: &Challenge,
        ending: &Ending,
        now: i64,
    ) -> StoreResult<Option<Ended>>;

    /// Expires everything due at `now` (audited in the same transaction:
    /// [`audit::swept`]) and purges spent nonces, and the attempts and the
    /// OpenID provider's authorizations (which the audit log records) that
    /// ended before `keep_attempts_since`.
    async fn sweep(&self, now: i64, keep_attempts_since: i64) -> StoreResult<Swept>;
    /// Deletes challenges that ended before `ended_before` (with their push
    /// deliveries), ended enrollments that expired before it, and audit
    /// events older than `audit_before`; returns how many rows it deleted.
    async fn purge(&self, ended_before: i64, audit_before: i64) -> StoreResult<u64>;
    /// The earliest expiry among pending challenges and open enrollments.
    async fn next_deadline(&self) -> StoreResult<Option<i64>>;
    /// Revokes all of a user's devices and cancels everything open.
    async fn reset_user(&self, tenant_id: &str, user_id: &str, now: i64) -> StoreResult<Reset>;
    /// Deletes a user and everything of theirs, in one transaction: their
    /// pending challenges and open enrollments are cancelled first (so that,
    /// on a shared database, every replica's watchers hear of them), their
    /// audit events anonymised, then their nonces, challenges (with push
    /// deliveries), enrollments, devices and record deleted, and the deletion
    /// audited ([`audit::user_deleted`], naming `by`). An unknown user is
    /// `found: false`, and nothing is written.
    async fn delete_user(
        &self,
        tenant_id: &str,
        user_id: &str,
        by: &str,
        now: i64,
    ) -> StoreResult<Deletion>;

    /// Keeps a device's sealed offline-code secret (at its registration).
    async fn save_offline_secret(&self, device_id: &str, sealed: &[u8]) -> StoreResult<()>;
    /// The offline-code secrets of a user's active devices, oldest device
    /// first.
    async fn offline_secrets(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<OfflineSecret>>;
    /// Records that a code of `step` was accepted for a device, unless that
    /// step or a later one was already; true if it was recorded.
    async fn use_offline_step(&self, device_id: &str, step: i64) -> StoreResult<bool>;

    async fn record_failure(&self, scope: &str, key: &str, now: i64) -> StoreResult<()>;
    async fn count_failures(&self, scope: &str, key: &str, since: i64) -> StoreResult<i64>;

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Counts one more occurrence in the aggregated audit entry named `key`
    /// (one per kind, source and minute), appending `event` as that entry,
    /// with a count of one, if it does not exist yet.
    async fn count_audit(&self, event: &AuditEvent, key: &str) -> StoreResult<()>;
    /// Events newest first, with ids below `before_id` when given.
    async fn list_audit(
        &self,
        tenant_id: &str,
        user_id: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>>;

    /// The OpenID provider's signing keys, in the order they sign.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
    /// Adds a signing key unless another was created at or after
    /// `unless_created_since` (so that replicas rotating at once add one);
    /// true if it was added.
    async fn add_signing_key(
        &self,
        key: &SigningKey,
        unless_created_since: i64,
    ) -> StoreResult<bool>;
    /// Deletes the keys that a newer key replaced before `replaced_before`.
    async fn forget_signing_keys(&self, replaced_before: i64) -> StoreResult<u64>;
    async fn create_oidc_client(&self, client: &OidcClient) -> StoreResult<()>;
    async fn get_oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>>;
    /// A tenant's relying parties, oldest first.
    async fn list_oidc_clients(&self, tenant_id: &str) -> StoreResult<Vec<OidcClient>>;
    async fn create_authorization(&self, authorization: &Authorization) -> StoreResult<()>;
    async fn get_authorization(&self, id: &str) -> StoreResult<Option<Authorization>>;
    /// Records the challenge or enrollment an unfinished authorization is
    /// waiting for; false if it is finished.
    async fn set_authorization_step(
        &self,
        id: &str,
        challenge_id: Option<&str>,
        enrollment_id: Option<&str>,
    ) -> StoreResult<bool>;
    /// Finishes an authorization unless it is finished already: with a code
    /// (its hash and expiry) and the time of the approval, or with neither
    /// for an error. True if this call finished it.
    async fn finish_authorization(
        &self,
        id: &str,
        code: Option<(&[u8; 32], i64)>,
        auth_time: Option<i64>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Marks the code with this hash used, if it was not: the authorization
    /// it belongs to, or `None` for an unknown or spent code. Exactly one
    /// caller, on any replica, gets it.
    async fn redeem_code(
        &self,
        code_hash: &[u8; 32],
        now: i64,
    ) -> StoreResult<Option<Authorization>>;
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn passwords_never_leave_the_url() {
        assert_eq!(
            redacted_url("postgres://mfa:s3cret@db.internal:5432/mfa"),
            "postgres://mfa:***@db.internal:5432/mfa"
        );
        assert_eq!(
            redacted_url("postgres://mfa@db.internal/mfa"),
            "postgres://mfa@db.internal/mfa"
        );
        assert_eq!(redacted_url("sqlite://data/mfa.db"), "sqlite://data/mfa.db");
        assert!(!redacted_url("postgres://mfa:s3cret@[bad/mfa").contains("s3cret"));
    }
}
