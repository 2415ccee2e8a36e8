//! PostgreSQL, for several replicas sharing one database.
//!
//! Every operation is one statement or one transaction, so that the
//! guarantees hold whichever replica runs it: answering is a conditional
//! `UPDATE … WHERE state = 'pending'` (a second, concurrent answer finds the
//! row no longer pending once the first commits); creating a challenge locks
//! the user's row so that two replicas cannot both leave a pending sign-in;
//! sweeping claims rows with `FOR UPDATE SKIP LOCKED`, so replicas sweeping at
//! once share the work instead of waiting for or repeating each other.
//! Changes are announced to every replica by triggers (`NOTIFY`), relayed by
//! [`ChangeFeed`].

mod checks;
mod feed;
mod tls;

pub use feed::ChangeFeed;
pub use tls::{DatabaseTls, SslMode};

use super::rows::{self as decode, unique_violation, Columns};
use super::{
    algorithm_names, audit, delete_user, enrollment_after_verification, lifetime_ms, oidc,
    verification_names, Creation, Deletion, Ended, PoolSettings, Quota, Reset, Store, StoreError,
    StoreResult, Swept, TenantCounts,
};
use crate::model::*;
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use std::{str::FromStr, sync::Arc, time::Duration};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// PostgreSQL-backed store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// When the pool's connections are checked with a round trip.
    checks: Arc<checks::Checks>,
    /// How long the change listener may stay quiet before it must prove
    /// that its connection still answers (`None`: never).
    listener_check: Option<Duration>,
}

impl PostgresStore {
    /// Connects to the database at a `postgres:` URL.
    ///
    /// Waiting for a connection is bounded by `acquire_timeout`, so that an
    /// outage turns into a prompt UNAVAILABLE rather than hung calls; the pool
    /// checks a connection before use when it has been idle for a while or
    /// since a failed check, and after use when its call did not complete
    /// ([`checks`]; both within `acquire_timeout`, so that a connection lost
    /// silently is dropped, not waited on), and opens new ones as needed, so service
    /// resumes by itself once the database is back. On the
    /// database's side, each statement is bounded by `statement_timeout`, and
    /// a session left idle inside a transaction for as long (its replica
    /// stopped hearing from the database midway) is ended, so that the rows
    /// it locked are not held until TCP gives up on it.
    ///
    /// `tls`'s keys override the URL's `sslmode`, `sslrootcert`, `sslcert`
    /// and `sslkey`; the files in use are checked first, and a refused TLS
    /// connection fails with [`StoreError::Tls`], which names the cause.
    pub async fn open(url: &str, settings: PoolSettings, tls: &DatabaseTls) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let tls = tls::Tls::resolve(url, tls, &options).map_err(StoreError::Tls)?;
        for note in tls.check().await.map_err(StoreError::Tls)? {
            tracing::warn!("{note}");
        }
        tracing::info!(sslmode = %tls.mode(), "connecting to PostgreSQL");
        let mut options = tls.apply(options).application_name("mfa-server");
        if !settings.statement_timeout.is_zero() {
            let millis = settings.statement_timeout.as_millis().to_string();
            options = options.options([
                ("statement_timeout", millis.clone()),
                ("idle_in_transaction_session_timeout", millis),
            ]);
        }
        let release_check = settings.acquire_timeout;
        let checks = checks::Checks::new();
        let (checks_before, checks_after) = (checks.clone(), checks.clone());
        let pool = PgPoolOptions::new()
            // The change listener's connection is counted in, outside the pool.
            .max_connections(settings.max_connections.max(2) - 1)
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(move |connection, metadata| {
                let checks = checks_before.clone();
                Box::pin(async move { checks.before_use(connection, metadata).await })
            })
            .after_release(move |connection, _| {
                let checks = checks_after.clone();
                Box::pin(async move { checks.after_use(connection, release_check).await })
            })
            .connect_with(options)
            .await
            .map_err(|e| match tls.explain(&e) {
                Some(cause) => StoreError::Tls(cause),
                None => e.into(),
            })?;
        Ok(Self {
            pool,
            checks,
            listener_check: Some(settings.statement_timeout).filter(|t| !t.is_zero()),
        })
    }

    /// [`Store::end_challenge`] for a sign-in that blocks no one (most
    /// answers): nothing else to settle, so the ending and its audit entry
    /// go in one statement instead of a transaction of four round trips.
    /// The entry is the one the ending makes of `challenge` as read, which
    /// differs from the stored row only in what the statement sets.
    async fn end_sign_in(
        &self,
        challenge: &Challenge,
        ending: &Ending,
        now: i64,
    ) -> StoreResult<Option<Ended>> {
        let expected = Ended {
            challenge: Challenge {
                state: ending.state,
                deny_reason: ending.deny_reason,
                answered_by: ending.answered_by.clone(),
                ended_at: Some(now),
                ..challenge.clone()
            },
            enrollment_id: None,
        };
        // All that `audit::ending` records when no one is blocked.
        let entry = audit::ended(&expected, ending.note.as_deref(), now);
        let mut held = self.hold().await?;
        let query = bind_ending(
            sqlx::query(END_CHALLENGE_AUDITED),
            &challenge.id,
            ending,
            now,
        );
        let row = bind_audit(query, &entry, None)
            .fetch_optional(&mut *held)
            .await?;
        let Some(row) = held.done(row) else {
            return Ok(None);
        };
        Ok(Some(Ended {
            challenge: decode::challenge(&row)?,
            enrollment_id: None,
        }))
    }

    /// A connection for one call, to hand back with [`Held::done`].
    async fn hold(&self) -> StoreResult<Held<'_>> {
        Ok(Held {
            connection: Some(self.pool.acquire().await?),
            checks: &self.checks,
        })
    }

    /// The feed of every replica's changes (our own included), to relay
    /// to watch streams with [`ChangeFeed::start`].
    pub fn change_feed(&self) -> ChangeFeed {
        ChangeFeed::new(self.pool.clone(), self.listener_check)
    }
}

/// A pooled connection held by one store call. [`Held::done`] hands it back
/// as it stands once every statement the call sent has completed; dropped
/// instead (a call cancelled or failed midway, a transaction left to roll
/// back), it is a sign of trouble ([`checks`]) and goes through the pool's
/// check of returned connections, which flushes what is pending and drops a
/// connection that no longer answers.
struct Held<'a> {
    connection: Option<PoolConnection<Postgres>>,
    checks: &'a checks::Checks,
}

impl Held<'_> {
    /// Hands the connection back to the pool, and passes `value` on.
    fn done<T>(mut self, value: T) -> T {
        if let Some(connection) = self.connection.take() {
            connection.release_ready();
        }
        value
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.connection.is_some() {
            self.checks.trouble();
        }
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.connection.as_ref().expect("held until done")
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.connection.as_mut().expect("held until done")
    }
}

const INSERT_CHALLENGE: &str =
    "INSERT INTO challenges (id, tenant_id, user_id, kind, target_device_id, number, nonce, state,
         deny_reason, answered_by, application_name, client_ip, location, message,
         created_at, expires_at, ended_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

/// [`INSERT_CHALLENGE`] with `c`'s values.
fn bind_challenge<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    c: &'q Challenge,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(&c.user_id)
        .bind(c.kind.as_str())
        .bind(&c.target_device_id)
        .bind(&c.number)
        .bind(&c.nonce[..])
        .bind(c.state.as_str())
        .bind(c.deny_reason.map(DenyReason::as_str))
        .bind(&c.answered_by)
        .bind(&c.context.application_name)
        .bind(&c.context.client_ip)
        .bind(&c.context.location)
        .bind(&c.context.message)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.ended_at)
}

async fn insert_challenge(tx: &mut Transaction<'_, Postgres>, c: &Challenge) -> StoreResult<()> {
    bind_challenge(sqlx::query(INSERT_CHALLENGE), c)
        .execute(&mut **tx)
        .await
        .map_err(|e| unique_violation(e, "challenge id"))?;
    Ok(())
}

/// Inserts `c` and appends `entries` to the audit log (in their order) in one
/// statement.
async fn insert_challenge_audited(
    connection: &mut PgConnection,
    c: &Challenge,
    entries: &[AuditEvent],
) -> StoreResult<()> {
    const CHALLENGE_VALUES: usize = 17;
    const AUDIT_VALUES: usize = 11;
    let rows: Vec<String> = (0..entries.len())
        .map(|row| {
            let first = CHALLENGE_VALUES + row * AUDIT_VALUES + 1;
            let values: Vec<String> = (first..first + AUDIT_VALUES)
                .map(|n| format!("${n}"))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect();
    let sql = format!(
        "WITH inserted AS ({INSERT_CHALLENGE}) {} VALUES {}",
        super::insert_audit_into!(),
        rows.join(", ")
    );
    let query = entries
        .iter()
        .fold(bind_challenge(sqlx::query(&sql), c), |query, entry| {
            bind_audit(query, entry, None)
        });
    query
        .execute(connection)
        .await
        .map_err(|e| unique_violation(e, "challenge id"))?;
    Ok(())
}

/// Applies what ending a verification challenge means for its device and
/// enrollment; returns the enrollment that changed.
async fn settle_verification(
    tx: &mut Transaction<'_, Postgres>,
    challenge: &Challenge,
    now: i64,
) -> StoreResult<Option<String>> {
    if challenge.kind != ChallengeKind::EnrollmentVerification {
        return Ok(None);
    }
    let enrollment_state = enrollment_after_verification(challenge.state);
    if enrollment_state == EnrollmentState::Verified {
        sqlx::query(
            "UPDATE devices SET state = 'active' WHERE id = $1 AND state = 'pending_verification'",
        )
        .bind(&challenge.target_device_id)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE devices SET state = 'revoked', revoked_at = $1 WHERE id = $2 AND state != 'revoked'",
        )
        .bind(now)
        .bind(&challenge.target_device_id)
        .execute(&mut **tx)
        .await?;
    }
    let enrollment: Option<String> = sqlx::query_scalar(
        "UPDATE enrollments SET state = $1 WHERE challenge_id = $2 AND state = 'device_registered' RETURNING id",
    )
    .bind(enrollment_state.as_str())
    .bind(&challenge.id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(enrollment)
}

/// Cancels a user's pending challenges and open enrollments (a reset, a
/// deletion).
async fn cancel_open(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: &str,
    user_id: &str,
    now: i64,
) -> StoreResult<super::Cancelled> {
    let challenges = sqlx::query_as(
        "UPDATE challenges SET state = 'cancelled', ended_at = $1
         WHERE tenant_id = $2 AND user_id = $3 AND state = 'pending' RETURNING id, kind",
    )
    .bind(now)
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?;
    let enrollments = sqlx::query_scalar(super::CANCEL_OPEN_ENROLLMENTS)
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await?;
    Ok(super::Cancelled {
        challenges,
        enrollments,
    })
}

/// Runs one of the [`delete_user`] statements for `(tenant, user)`; returns
/// how many rows it changed.
async fn of_user(
    tx: &mut Transaction<'_, Postgres>,
    statement: &str,
    (tenant_id, user_id): (&str, &str),
) -> StoreResult<u64> {
    let done = sqlx::query(statement)
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// Appends audit entries (in the caller's transaction, if any).
async fn insert_audit(connection: &mut PgConnection, events: &[AuditEvent]) -> StoreResult<()> {
    for e in events {
        bind_audit(sqlx::query(super::INSERT_AUDIT), e, None)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// [`super::INSERT_AUDIT`] or [`super::COUNT_AUDIT`] with `event`'s values.
fn bind_audit<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    e: &'q AuditEvent,
    key: Option<&'q str>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(&e.tenant_id)
        .bind(e.at)
        .bind(&e.event_type)
        .bind(&e.user_id)
        .bind(&e.device_id)
        .bind(&e.challenge_id)
        .bind(&e.enrollment_id)
        .bind(&e.detail)
        .bind(&e.client_address)
        .bind(e.count.max(1))
        .bind(key)
}

/// Ends a pending challenge: one that is due when expiring (`$6`), one that
/// is not yet due otherwise.
macro_rules! end_challenge {
    () => {
        "UPDATE challenges SET state = $1, deny_reason = $2, answered_by = $3, ended_at = $4
         WHERE id = $5 AND state = 'pending'
           AND (($6 AND expires_at <= $4) OR (NOT $6 AND expires_at > $4))
         RETURNING *"
    };
}
const END_CHALLENGE: &str = end_challenge!();

/// [`END_CHALLENGE`]'s `$1`…`$6`: `ending` of challenge `id` at `now`.
fn bind_ending<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    id: &'q str,
    ending: &'q Ending,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(ending.state.as_str())
        .bind(ending.deny_reason.map(DenyReason::as_str))
        .bind(&ending.answered_by)
        .bind(now)
        .bind(id)
        .bind(ending.state == ChallengeState::Expired)
}

/// [`END_CHALLENGE`] with its audit entry (`$7`…`$17`, as [`bind_audit`]
/// binds them), stored only if the challenge ended: one statement, which is
/// atomic on its own.
const END_CHALLENGE_AUDITED: &str = concat!(
    "WITH ended AS (",
    end_challenge!(),
    "), logged AS (",
    super::insert_audit_into!(),
    " SELECT $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 FROM ended)
     SELECT * FROM ended"
);

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> StoreResult<()> {
        // The migrator holds an advisory lock, so replicas starting together
        // apply each migration once. Its connection leaves the pool, so that
        // lifting the statement timeout for a long migration stays with it.
        let mut connection = self.pool.acquire().await?.detach();
        for unbounded in [
            "SET statement_timeout = 0",
            "SET idle_in_transaction_session_timeout = 0",
        ] {
            sqlx::query(unbounded).execute(&mut connection).await?;
        }
        let migrated = MIGRATOR.run_direct(&mut connection).await;
        let _ = connection.close().await;
        Ok(migrated?)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1 FROM tenants LIMIT 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn close(&self) -> StoreResult<()> {
        self.pool.close().await;
        Ok(())
    }

    async fn count_pending_challenges(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM challenges WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn create_tenant(&self, t: &Tenant) -> StoreResult<()> {
        sqlx::query(super::INSERT_TENANT)
            .bind(&t.id)
            .bind(&t.display_name)
            .bind(i64::from(t.number_digits))
            .bind(t.created_at)
            .bind(lifetime_ms(t.challenge_ttl))
            .bind(lifetime_ms(t.enrollment_ttl))
            .bind(t.offline_codes_enabled)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "tenant id"))?;
        Ok(())
    }

    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::tenant).transpose()
    }

    async fn count_tenants(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::tenant).collect()
    }

    async fn update_tenant(
        &self,
        id: &str,
        changes: &TenantChanges,
    ) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query(super::UPDATE_TENANT)
            .bind(&changes.display_name)
            .bind(changes.number_digits.map(i64::from))
            .bind(changes.challenge_ttl.is_some())
            .bind(changes.challenge_ttl.and_then(lifetime_ms))
            .bind(changes.enrollment_ttl.is_some())
            .bind(changes.enrollment_ttl.and_then(lifetime_ms))
            .bind(changes.offline_codes_enabled)
            .bind(changes.allowed_key_algorithms.is_some())
            .bind(algorithm_names(changes))
            .bind(changes.user_verification.is_some())
            .bind(verification_names(changes))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::tenant).transpose()
    }

    async fn tenant_counts(&self, id: &str, now: i64) -> StoreResult<TenantCounts> {
        let (users, active_devices, pending_challenges) = sqlx::query_as(
            "SELECT
                 (SELECT COUNT(*) FROM users WHERE tenant_id = $1),
                 (SELECT COUNT(*) FROM devices WHERE tenant_id = $1 AND state = 'active'),
                 (SELECT COUNT(*) FROM challenges
                  WHERE tenant_id = $1 AND state = 'pending' AND expires_at > $2)",
        )
        .bind(id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(TenantCounts {
            users,
            active_devices,
            pending_challenges,
        })
    }

    async fn create_api_key(
        &self,
        id: &str,
        tenant_id: &str,
        role: Role,
        key_hash: &[u8; 32],
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (id, tenant_id, role, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(tenant_id)
            .bind(role.as_str())
            .bind(&key_hash[..])
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "API key"))?;
        Ok(())
    }

    async fn find_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(super::FIND_API_KEY)
            .bind(&key_hash[..])
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::api_key).transpose()
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(super::GET_API_KEY)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::api_key).transpose()
    }

    async fn list_api_keys(&self, tenant_id: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = sqlx::query(super::LIST_API_KEYS)
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::api_key).collect()
    }

    async fn record_api_key_use(&self, id: &str, now: i64, unless_since: i64) -> StoreResult<bool> {
        let written = sqlx::query(super::RECORD_API_KEY_USE)
            .bind(now)
            .bind(id)
            .bind(unless_since)
            .execute(&self.pool)
            .await?;
        Ok(written.rows_affected() == 1)
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<bool> {
        let result =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn get_user(&self, tenant_id: &str, user_id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::user).transpose()
    }

    async fn set_blocked_until(
        &self,
        tenant_id: &str,
        user_id: &str,
        until: Option<i64>,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE users SET blocked_until = $1 WHERE tenant_id = $2 AND user_id = $3",
        )
        .bind(until)
        .bind(tenant_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn record_terms(
        &self,
        tenant_id: &str,
        user_id: &str,
        version: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (tenant_id, user_id, email, terms_version, terms_accepted_at) VALUES ($1, $2, '', $3, $4)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET terms_version = excluded.terms_version,
                 terms_accepted_at = excluded.terms_accepted_at",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(version)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_enrollment(
        &self,
        e: &Enrollment,
        email: &str,
        code_hash: &[u8; 32],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO users (tenant_id, user_id, email) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET email = excluded.email",
        )
        .bind(&e.tenant_id)
        .bind(&e.user_id)
        .bind(email)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO enrollments (id, tenant_id, user_id, code_hash, state, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&e.id)
        .bind(&e.tenant_id)
        .bind(&e.user_id)
        .bind(&code_hash[..])
        .bind(e.state.as_str())
        .bind(e.created_at)
        .bind(e.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "activation code"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_enrollment(&self, id: &str) -> StoreResult<Option<Enrollment>> {
        let row = sqlx::query("SELECT * FROM enrollments WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::enrollment).transpose()
    }

    async fn find_enrollment_by_code(
        &self,
        code_hash: &[u8; 32],
    ) -> StoreResult<Option<Enrollment>> {
        let row = sqlx::query("SELECT * FROM enrollments WHERE code_hash = $1")
            .bind(&code_hash[..])
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::enrollment).transpose()
    }

    async fn register_device(
        &self,
        enrollment_id: &str,
        d: &Device,
        challenge: &Challenge,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE enrollments SET state = 'device_registered', device_id = $1, challenge_id = $2, expires_at = $3
             WHERE id = $4 AND state = 'waiting_for_scan' AND expires_at > $5",
        )
        .bind(&d.id)
        .bind(&challenge.id)
        .bind(challenge.expires_at)
        .bind(enrollment_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO devices (id, tenant_id, user_id, display_name, public_key, push_platform, push_token,
                 state, created_at, revoked_at, key_algorithm)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&d.id)
        .bind(&d.tenant_id)
        .bind(&d.user_id)
        .bind(&d.display_name)
        .bind(&d.public_key[..])
        .bind(d.push_platform.as_str())
        .bind(&d.push_token)
        .bind(d.state.as_str())
        .bind(d.created_at)
        .bind(d.revoked_at)
        .bind(d.key_algorithm.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "device id"))?;
        insert_challenge(&mut tx, challenge).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_device(&self, id: &str) -> StoreResult<Option<Device>> {
        let mut held = self.hold().await?;
        let row = sqlx::query("SELECT * FROM devices WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *held)
            .await?;
        held.done(row).as_ref().map(decode::device).transpose()
    }

    async fn list_devices(&self, tenant_id: &str, user_id: &str) -> StoreResult<Vec<Device>> {
        let rows = sqlx::query(
            "SELECT * FROM devices WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode::device).collect()
    }

    async fn user_with_devices(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<(User, Vec<Device>)>> {
        let mut held = self.hold().await?;
        let rows = sqlx::query(super::USER_WITH_DEVICES)
            .bind(tenant_id)
            .bind(user_id)
            .fetch_all(&mut *held)
            .await?;
        let rows = held
            .done(rows)
            .iter()
            .map(decode::user_and_device)
            .collect::<StoreResult<_>>()?;
        Ok(decode::user_with_devices(rows))
    }

    async fn set_push_token(
        &self,
        device_id: &str,
        platform: PushPlatform,
        token: &str,
    ) -> StoreResult<()> {
        sqlx::query(super::SET_PUSH_TOKEN)
            .bind(platform.as_str())
            .bind(token)
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_device(&self, device_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query(
            "UPDATE devices SET state = 'revoked', revoked_at = $1 WHERE id = $2 AND state != 'revoked'",
        )
        .bind(now)
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
        // A device still being verified takes its enrollment down with it.
        let rows = sqlx::query(
            "UPDATE challenges SET state = 'cancelled', ended_at = $1
             WHERE target_device_id = $2 AND state = 'pending' RETURNING *",
        )
        .bind(now)
        .bind(device_id)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            settle_verification(&mut tx, &decode::challenge(row)?, now).await?;
        }
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    async fn save_delivery(&self, d: &PushDelivery) -> StoreResult<()> {
        let mut held = self.hold().await?;
        sqlx::query(
            "INSERT INTO push_deliveries
                 (challenge_id, device_id, push_platform, state, attempts, provider_message_id, reason, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (challenge_id, device_id) DO UPDATE SET
                 state = excluded.state, attempts = excluded.attempts,
                 provider_message_id = excluded.provider_message_id,
                 reason = excluded.reason, updated_at = excluded.updated_at",
        )
        .bind(&d.challenge_id)
        .bind(&d.device_id)
        .bind(d.push_platform.as_str())
        .bind(d.state.as_str())
        .bind(i64::from(d.attempts))
        .bind(&d.provider_message_id)
        .bind(&d.reason)
        .bind(d.updated_at)
        .execute(&mut *held)
        .await?;
        held.done(Ok(()))
    }

    async fn list_deliveries(&self, challenge_id: &str) -> StoreResult<Vec<PushDelivery>> {
        let mut held = self.hold().await?;
        let rows =
            sqlx::query("SELECT * FROM push_deliveries WHERE challenge_id = $1 ORDER BY device_id")
                .bind(challenge_id)
                .fetch_all(&mut *held)
                .await?;
        held.done(rows).iter().map(decode::delivery).collect()
    }

    async fn invalidate_push_token(
        &self,
        device_id: &str,
        token: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let updated = sqlx::query(super::INVALIDATE_PUSH_TOKEN)
            .bind(reason)
            .bind(now)
            .bind(device_id)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn count_unreachable_devices(&self) -> StoreResult<Vec<UnreachableDevices>> {
        let rows = sqlx::query(super::COUNT_UNREACHABLE_DEVICES)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::unreachable_devices).collect()
    }

    async fn provider_token(&self, name: &str) -> StoreResult<Option<ProviderToken>> {
        let row = sqlx::query(super::PROVIDER_TOKEN)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::provider_token).transpose()
    }

    async fn replace_provider_token(
        &self,
        name: &str,
        replaces: Option<&str>,
        token: &ProviderToken,
    ) -> StoreResult<bool> {
        let query = match replaces {
            None => sqlx::query(super::INSERT_PROVIDER_TOKEN)
                .bind(name)
                .bind(&token.token)
                .bind(token.issued_at),
            Some(old) => sqlx::query(super::REPLACE_PROVIDER_TOKEN)
                .bind(&token.token)
                .bind(token.issued_at)
                .bind(name)
                .bind(old),
        };
        Ok(query.execute(&self.pool).await?.rows_affected() == 1)
    }

    async fn use_nonce(&self, device_id: &str, nonce: &[u8], expires_at: i64) -> StoreResult<bool> {
        let mut held = self.hold().await?;
        let result = sqlx::query(
            "INSERT INTO device_nonces (device_id, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(device_id)
        .bind(nonce)
        .bind(expires_at)
        .execute(&mut *held)
        .await?;
        held.done(Ok(result.rows_affected() == 1))
    }

    async fn create_challenge(&self, challenge: &Challenge, quota: Quota) -> StoreResult<Creation> {
        let mut held = self.hold().await?;
        let mut tx = held.begin().await?;
        // One challenge creation per user at a time, across replicas: the
        // second waits, then counts the first's challenge against the quota
        // and supersedes it.
        sqlx::query("SELECT 1 FROM users WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE")
            .bind(&challenge.tenant_id)
            .bind(&challenge.user_id)
            .execute(&mut *tx)
            .await?;
        let recent: i64 = sqlx::query_scalar(super::COUNT_SIGN_INS)
            .bind(&challenge.tenant_id)
            .bind(&challenge.user_id)
            .bind(quota.since)
            .fetch_one(&mut *tx)
            .await?;
        if recent >= i64::from(quota.limit) {
            tx.rollback().await?;
            return held.done(Ok(Creation::QuotaSpent));
        }
        let rows = sqlx::query(
            "UPDATE challenges SET state = 'superseded', ended_at = $1
             WHERE tenant_id = $2 AND user_id = $3 AND kind = 'sign_in' AND state = 'pending' RETURNING *",
        )
        .bind(challenge.created_at)
        .bind(&challenge.tenant_id)
        .bind(&challenge.user_id)
        .fetch_all(&mut *tx)
        .await?;
        let superseded = rows
            .iter()
            .map(decode::ended)
            .collect::<StoreResult<Vec<_>>>()?;
        insert_challenge_audited(&mut tx, challenge, &audit::creation(challenge, &superseded))
            .await?;
        tx.commit().await?;
        held.done(Ok(Creation::Created(superseded)))
    }

    async fn get_challenge(&self, id: &str) -> StoreResult<Option<Challenge>> {
        let mut held = self.hold().await?;
        let row = sqlx::query("SELECT * FROM challenges WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *held)
            .await?;
        held.done(row).as_ref().map(decode::challenge).transpose()
    }

    async fn challenge_with_deliveries(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Challenge, Vec<PushDelivery>)>> {
        // One row per delivery (or one with none), its columns renamed apart
        // from the challenge's.
        let mut held = self.hold().await?;
        let rows = sqlx::query(
            "SELECT c.*, d.challenge_id AS delivery_challenge_id, d.device_id AS delivery_device_id,
                 d.push_platform AS delivery_push_platform, d.state AS delivery_state,
                 d.attempts AS delivery_attempts,
                 d.provider_message_id AS delivery_provider_message_id,
                 d.reason AS delivery_reason, d.updated_at AS delivery_updated_at
             FROM challenges c LEFT JOIN push_deliveries d ON d.challenge_id = c.id
             WHERE c.id = $1 ORDER BY d.device_id",
        )
        .bind(id)
        .fetch_all(&mut *held)
        .await?;
        let rows = held.done(rows);
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let deliveries = rows
            .iter()
            .map(|row| decode::Prefixed("delivery_", row))
            .filter(|row| matches!(row.optional_text("device_id"), Ok(Some(_))))
            .map(|row| decode::delivery(&row))
            .collect::<StoreResult<_>>()?;
        Ok(Some((decode::challenge(first)?, deliveries)))
    }

    async fn pending_for_device(
        &self,
        device: &Device,
        now: i64,
    ) -> StoreResult<Vec<(Challenge, String)>> {
        let mut held = self.hold().await?;
        let rows = sqlx::query(
            "SELECT c.*, u.email AS user_email
             FROM challenges c
             JOIN users u ON u.tenant_id = c.tenant_id AND u.user_id = c.user_id
             WHERE c.tenant_id = $1 AND c.user_id = $2 AND c.state = 'pending'
               AND c.expires_at > $3
               AND (c.target_device_id = $4 OR (c.target_device_id IS NULL AND $5))
             ORDER BY c.created_at DESC",
        )
        .bind(&device.tenant_id)
        .bind(&device.user_id)
        .bind(now)
        .bind(&device.id)
        .bind(device.state == DeviceState::Active)
        .fetch_all(&mut *held)
        .await?;
        held.done(rows)
            .iter()
            .map(decode::challenge_with_email)
            .collect()
    }

    async fn end_challenge(
        &self,
        challenge: &Challenge,
        ending: &Ending,
        now: i64,
    ) -> StoreResult<Option<Ended>> {
        if challenge.kind == ChallengeKind::SignIn && ending.block_user_until.is_none() {
            return self.end_sign_in(challenge, ending, now).await;
        }
        let id = &challenge.id;
        let mut held = self.hold().await?;
        let mut tx = held.begin().await?;
        if ending.block_user_until.is_some() {
            // Lock the user before the challenge, in the order creating a
            // challenge does, so that the two cannot deadlock.
            sqlx::query(
                "SELECT 1 FROM users WHERE (tenant_id, user_id) =
                     (SELECT tenant_id, user_id FROM challenges WHERE id = $1) FOR UPDATE",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let row = bind_ending(sqlx::query(END_CHALLENGE), id, ending, now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            // Lost the race: a refusal, not trouble.
            tx.rollback().await?;
            return held.done(Ok(None));
        };
        let challenge = decode::challenge(&row)?;
        let enrollment_id = settle_verification(&mut tx, &challenge, now).await?;
        if let Some(until) = ending.block_user_until {
            sqlx::query(
                "UPDATE users SET blocked_until = $1 WHERE tenant_id = $2 AND user_id = $3",
            )
            .bind(until)
            .bind(&challenge.tenant_id)
            .bind(&challenge.user_id)
            .execute(&mut *tx)
            .await?;
        }
        let ended = Ended {
            challenge,
            enrollment_id,
        };
        insert_audit(&mut tx, &audit::ending(&ended, ending, now)).await?;
        tx.commit().await?;
        held.done(Ok(Some(ended)))
    }

    async fn sweep(&self, now: i64, keep_attempts_since: i64) -> StoreResult<Swept> {
        let mut tx = self.pool.begin().await?;
        // Rows another replica is sweeping (or answering) right now are
        // skipped: that replica settles them, or the next sweep does.
        let rows = sqlx::query(
            "UPDATE challenges SET state = 'expired', ended_at = $1
             WHERE id IN (SELECT id FROM challenges WHERE state = 'pending' AND expires_at <= $1
                          FOR UPDATE SKIP LOCKED)
             RETURNING *",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut swept = Swept::default();
        for row in &rows {
            let challenge = decode::challenge(row)?;
            let enrollment_id = settle_verification(&mut tx, &challenge, now).await?;
            swept.challenges.push(Ended {
                challenge,
                enrollment_id,
            });
        }
        let rows = sqlx::query(
            "UPDATE enrollments SET state = 'expired'
             WHERE id IN (SELECT id FROM enrollments
                          WHERE state IN ('waiting_for_scan', 'device_registered') AND expires_at <= $1
                          FOR UPDATE SKIP LOCKED)
             RETURNING *",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        swept.enrollments = rows
            .iter()
            .map(decode::enrollment)
            .collect::<StoreResult<_>>()?;
        sqlx::query(
            "DELETE FROM device_nonces WHERE (device_id, nonce) IN
                 (SELECT device_id, nonce FROM device_nonces WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM failed_attempts WHERE id IN
                 (SELECT id FROM failed_attempts WHERE at < $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(keep_attempts_since)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM oidc_authorizations WHERE id IN
                 (SELECT id FROM oidc_authorizations WHERE expires_at < $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(keep_attempts_since)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, &audit::swept(&swept, now)).await?;
        tx.commit().await?;
        Ok(swept)
    }

    async fn purge(&self, ended_before: i64, audit_before: i64) -> StoreResult<u64> {
        // Each statement on its own: nothing ties them together, and short
        // transactions hold their locks briefly.
        let mut deleted = 0;
        for statement in super::PURGE_ENDED {
            let done = sqlx::query(statement)
                .bind(ended_before)
                .execute(&self.pool)
                .await?;
            deleted += done.rows_affected();
        }
        let done = sqlx::query(super::PURGE_AUDIT)
            .bind(audit_before)
            .execute(&self.pool)
            .await?;
        Ok(deleted + done.rows_affected())
    }

    async fn next_deadline(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(t) FROM (
                 SELECT MIN(expires_at) AS t FROM challenges WHERE state = 'pending'
                 UNION ALL
                 SELECT MIN(expires_at) FROM enrollments WHERE state IN ('waiting_for_scan', 'device_registered')
             ) AS deadlines",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn reset_user(&self, tenant_id: &str, user_id: &str, now: i64) -> StoreResult<Reset> {
        let mut tx = self.pool.begin().await?;
        let revoked_devices = sqlx::query_scalar(
            "UPDATE devices SET state = 'revoked', revoked_at = $1
             WHERE tenant_id = $2 AND user_id = $3 AND state != 'revoked' RETURNING id",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let super::Cancelled {
            challenges: cancelled,
            enrollments: cancelled_enrollments,
        } = cancel_open(&mut tx, tenant_id, user_id, now).await?;
        tx.commit().await?;
        Ok(decode::reset(
            revoked_devices,
            cancelled,
            cancelled_enrollments,
        ))
    }

    async fn delete_user(
        &self,
        tenant_id: &str,
        user_id: &str,
        by: &str,
        now: i64,
    ) -> StoreResult<Deletion> {
        let mut tx = self.pool.begin().await?;
        // The user's row first, as creating a challenge and a fraud block
        // lock it: a challenge being created waits, and then finds no user.
        let found =
            sqlx::query("SELECT 1 FROM users WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE")
                .bind(tenant_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        if !found {
            return Ok(Deletion::default());
        }
        // Updated, not only deleted: the change triggers announce the ends
        // to every replica's watchers when the transaction commits.
        let super::Cancelled {
            challenges: cancelled,
            enrollments: cancelled_enrollments,
        } = cancel_open(&mut tx, tenant_id, user_id, now).await?;
        let (cancelled_challenges, cancelled_sign_ins) = decode::cancelled(cancelled);
        let user = (tenant_id, user_id);
        let anonymised_audit_events = of_user(&mut tx, delete_user::ANONYMISE_AUDIT, user).await?;
        of_user(&mut tx, delete_user::NONCES, user).await?;
        of_user(&mut tx, delete_user::FAILURES, user).await?;
        of_user(&mut tx, delete_user::OIDC_AUTHORIZATIONS, user).await?;
        let challenges = of_user(&mut tx, delete_user::CHALLENGES, user).await?;
        let enrollments = of_user(&mut tx, delete_user::ENROLLMENTS, user).await?;
        let devices = of_user(&mut tx, delete_user::DEVICES, user).await?;
        of_user(&mut tx, delete_user::USER, user).await?;
        let deletion = Deletion {
            found,
            devices,
            challenges,
            enrollments,
            cancelled_challenges,
            cancelled_sign_ins,
            cancelled_enrollments,
            anonymised_audit_events,
        };
        insert_audit(
            &mut tx,
            &[audit::user_deleted(tenant_id, &deletion, by, now)],
        )
        .await?;
        tx.commit().await?;
        Ok(deletion)
    }

    async fn save_offline_secret(&self, device_id: &str, sealed: &[u8]) -> StoreResult<()> {
        sqlx::query(super::offline_codes::SAVE)
            .bind(device_id)
            .bind(sealed)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "offline-code secret"))?;
        Ok(())
    }

    async fn offline_secrets(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<OfflineSecret>> {
        let rows = sqlx::query(super::offline_codes::LIST)
            .bind(tenant_id)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::offline_secret).collect()
    }

    async fn use_offline_step(&self, device_id: &str, step: i64) -> StoreResult<bool> {
        let updated = sqlx::query(super::offline_codes::USE_STEP)
            .bind(step)
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn record_failure(&self, scope: &str, key: &str, now: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO failed_attempts (scope, key, at) VALUES ($1, $2, $3)")
            .bind(scope)
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_failures(&self, scope: &str, key: &str, since: i64) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM failed_attempts WHERE scope = $1 AND key = $2 AND at >= $3",
        )
        .bind(scope)
        .bind(key)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut connection = self.pool.acquire().await?;
        insert_audit(&mut connection, std::slice::from_ref(event)).await
    }

    async fn count_audit(&self, event: &AuditEvent, key: &str) -> StoreResult<()> {
        bind_audit(sqlx::query(super::COUNT_AUDIT), event, Some(key))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        tenant_id: &str,
        user_id: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events
             WHERE tenant_id = $1 AND ($2::text IS NULL OR user_id = $2) AND id < $3
             ORDER BY id DESC LIMIT $4",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode::audit_event).collect()
    }
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        let rows = sqlx::query(oidc::SIGNING_KEYS)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::signing_key).collect()
    }

    async fn add_signing_key(
        &self,
        k: &SigningKey,
        unless_created_since: i64,
    ) -> StoreResult<bool> {
        let added = sqlx::query(oidc::INSERT_SIGNING_KEY)
            .bind(&k.kid)
            .bind(&k.private_key)
            .bind(&k.certificate)
            .bind(k.created_at)
            .bind(k.signs_from)
            .bind(unless_created_since)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "signing key id"))?;
        Ok(added.rows_affected() == 1)
    }

    async fn forget_signing_keys(&self, replaced_before: i64) -> StoreResult<u64> {
        let done = sqlx::query(oidc::FORGET_SIGNING_KEYS)
            .bind(replaced_before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn create_oidc_client(&self, client: &OidcClient) -> StoreResult<()> {
        let (uris, entra) = oidc::client_json(client)?;
        sqlx::query(oidc::INSERT_CLIENT)
            .bind(&client.client_id)
            .bind(&client.tenant_id)
            .bind(&client.display_name)
            .bind(client.secret_hash.as_ref().map(|h| &h[..]))
            .bind(uris)
            .bind(entra)
            .bind(client.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "client id"))?;
        Ok(())
    }

    async fn get_oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        let row = sqlx::query(oidc::GET_CLIENT)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::oidc_client).transpose()
    }

    async fn list_oidc_clients(&self, tenant_id: &str) -> StoreResult<Vec<OidcClient>> {
        let rows = sqlx::query(oidc::LIST_CLIENTS)
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::oidc_client).collect()
    }

    async fn create_authorization(&self, a: &Authorization) -> StoreResult<()> {
        sqlx::query(oidc::INSERT_AUTHORIZATION)
            .bind(&a.id)
            .bind(&a.tenant_id)
            .bind(&a.client_id)
            .bind(&a.user_id)
            .bind(&a.email)
            .bind(i64::from(a.pushed))
            .bind(&a.redirect_uri)
            .bind(&a.state)
            .bind(&a.nonce)
            .bind(&a.code_challenge)
            .bind(a.created_at)
            .bind(a.expires_at)
            .bind(a.response_type.as_str())
            .bind(oidc::subject_json(a)?)
            .bind(a.hint_hash.as_ref().map(|h| &h[..]))
            .bind(&a.acr)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "id_token_hint"))?;
        Ok(())
    }

    async fn get_authorization(&self, id: &str) -> StoreResult<Option<Authorization>> {
        let row = sqlx::query(oidc::GET_AUTHORIZATION)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::authorization).transpose()
    }

    async fn set_authorization_step(
        &self,
        id: &str,
        challenge_id: Option<&str>,
        enrollment_id: Option<&str>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(oidc::SET_STEP)
            .bind(challenge_id)
            .bind(enrollment_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_authorization(
        &self,
        id: &str,
        code: Option<(&[u8; 32], i64)>,
        auth_time: Option<i64>,
        now: i64,
    ) -> StoreResult<bool> {
        let (hash, expires) = code.unzip();
        let done = sqlx::query(oidc::FINISH)
            .bind(now)
            .bind(auth_time)
            .bind(hash.map(|h| &h[..]))
            .bind(expires)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn redeem_code(
        &self,
        code_hash: &[u8; 32],
        now: i64,
    ) -> StoreResult<Option<Authorization>> {
        let row = sqlx::query(oidc::REDEEM_CODE)
            .bind(now)
            .bind(&code_hash[..])
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::authorization).transpose()
    }
}
