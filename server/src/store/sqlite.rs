//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes go through a pool of one connection, so our own writers never race
//! for SQLite's single write lock (no SQLITE_BUSY from lock upgrades), while
//! reads use a separate pool and run concurrently with the writer (WAL).

use super::rows::{self as decode, unique_violation};
use super::{Ended, Reset, Store, StoreResult, Swept};
use crate::model::*;
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::{str::FromStr, time::Duration};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// SQLite-backed store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    options: SqliteConnectOptions,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite:` URL.
    ///
    /// WAL lets readers run beside the writer; `synchronous = NORMAL` is
    /// durable across process crashes in WAL mode (an OS crash may lose the
    /// last commits, never corrupt the file); foreign keys are enforced; a busy
    /// timeout rides out checkpoints and other processes such as `migrate`.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // A connection to a local file cannot go stale, so the pool hands
        // connections out without the round trip of a test query first.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let options = options.read_only(true).create_if_missing(false);
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        Ok(Self {
            write,
            read,
            options,
        })
    }
}

async fn insert_challenge(tx: &mut Transaction<'_, Sqlite>, c: &Challenge) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO challenges (id, tenant_id, user_id, kind, target_device_id, number, nonce, state,
             deny_reason, answered_by, application_name, client_ip, location, message,
             created_at, expires_at, ended_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
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
    .execute(&mut **tx)
    .await
    .map_err(|e| unique_violation(e, "challenge id"))?;
    Ok(())
}

/// Applies what ending a verification challenge means for its device and
/// enrollment; returns the enrollment that changed.
async fn settle_verification(
    tx: &mut Transaction<'_, Sqlite>,
    challenge: &Challenge,
    now: i64,
) -> StoreResult<Option<String>> {
    if challenge.kind != ChallengeKind::EnrollmentVerification {
        return Ok(None);
    }
    let enrollment_state = super::enrollment_after_verification(challenge.state);
    let device_sql = if enrollment_state == EnrollmentState::Verified {
        "UPDATE devices SET state = 'active' WHERE id = ? AND state = 'pending_verification'"
    } else {
        "UPDATE devices SET state = 'revoked', revoked_at = ? WHERE id = ? AND state != 'revoked'"
    };
    let mut query = sqlx::query(device_sql);
    if enrollment_state != EnrollmentState::Verified {
        query = query.bind(now);
    }
    query
        .bind(&challenge.target_device_id)
        .execute(&mut **tx)
        .await?;
    let enrollment: Option<String> = sqlx::query_scalar(
        "UPDATE enrollments SET state = ? WHERE challenge_id = ? AND state = 'device_registered' RETURNING id",
    )
    .bind(enrollment_state.as_str())
    .bind(&challenge.id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(enrollment)
}

const END_CHALLENGE: &str =
    "UPDATE challenges SET state = ?, deny_reason = ?, answered_by = ?, ended_at = ?
     WHERE id = ? AND state = 'pending' AND ((? AND expires_at <= ?) OR (NOT ? AND expires_at > ?))
     RETURNING *";

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.write).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        // A fresh connection, not a pooled one: pooled connections keep an
        // open file even after the database's volume went away.
        use sqlx::ConnectOptions;
        let mut connection = self.options.connect().await?;
        sqlx::query("SELECT 1 FROM tenants LIMIT 1")
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    async fn close(&self) -> StoreResult<()> {
        // Closing the last writer connection checkpoints the WAL into the
        // database file.
        self.read.close().await;
        self.write.close().await;
        Ok(())
    }

    async fn count_pending_challenges(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM challenges WHERE state = 'pending'")
                .fetch_one(&self.read)
                .await?,
        )
    }

    async fn create_tenant(&self, t: &Tenant) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tenants (id, display_name, number_digits, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.display_name)
        .bind(i64::from(t.number_digits))
        .bind(t.created_at)
        .execute(&self.write)
        .await
        .map_err(|e| unique_violation(e, "tenant id"))?;
        Ok(())
    }

    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(decode::tenant).transpose()
    }

    async fn count_tenants(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(&self.read)
            .await?)
    }

    async fn create_api_key(
        &self,
        id: &str,
        tenant_id: &str,
        role: Role,
        key_hash: &[u8; 32],
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (id, tenant_id, role, key_hash, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(tenant_id)
            .bind(role.as_str())
            .bind(&key_hash[..])
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(|e| unique_violation(e, "API key"))?;
        Ok(())
    }

    async fn find_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<(String, Role)>> {
        let row = sqlx::query(super::FIND_API_KEY)
            .bind(&key_hash[..])
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(decode::role).transpose()
    }

    async fn get_user(&self, tenant_id: &str, user_id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant_id = ? AND user_id = ?")
            .bind(tenant_id)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(decode::user).transpose()
    }

    async fn set_blocked_until(
        &self,
        tenant_id: &str,
        user_id: &str,
        until: Option<i64>,
    ) -> StoreResult<bool> {
        let result =
            sqlx::query("UPDATE users SET blocked_until = ? WHERE tenant_id = ? AND user_id = ?")
                .bind(until)
                .bind(tenant_id)
                .bind(user_id)
                .execute(&self.write)
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
            "INSERT INTO users (tenant_id, user_id, email, terms_version, terms_accepted_at) VALUES (?, ?, '', ?, ?)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET terms_version = excluded.terms_version,
                 terms_accepted_at = excluded.terms_accepted_at",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(version)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn create_enrollment(
        &self,
        e: &Enrollment,
        email: &str,
        code_hash: &[u8; 32],
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO users (tenant_id, user_id, email) VALUES (?, ?, ?)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET email = excluded.email",
        )
        .bind(&e.tenant_id)
        .bind(&e.user_id)
        .bind(email)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO enrollments (id, tenant_id, user_id, code_hash, state, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        let row = sqlx::query("SELECT * FROM enrollments WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(decode::enrollment).transpose()
    }

    async fn find_enrollment_by_code(
        &self,
        code_hash: &[u8; 32],
    ) -> StoreResult<Option<Enrollment>> {
        let row = sqlx::query("SELECT * FROM enrollments WHERE code_hash = ?")
            .bind(&code_hash[..])
            .fetch_optional(&self.read)
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
        let mut tx = self.write.begin().await?;
        let claimed = sqlx::query(
            "UPDATE enrollments SET state = 'device_registered', device_id = ?, challenge_id = ?, expires_at = ?
             WHERE id = ? AND state = 'waiting_for_scan' AND expires_at > ?",
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
                 state, created_at, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "device id"))?;
        insert_challenge(&mut tx, challenge).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_device(&self, id: &str) -> StoreResult<Option<Device>> {
        let row = sqlx::query("SELECT * FROM devices WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(decode::device).transpose()
    }

    async fn list_devices(&self, tenant_id: &str, user_id: &str) -> StoreResult<Vec<Device>> {
        let rows = sqlx::query(
            "SELECT * FROM devices WHERE tenant_id = ? AND user_id = ? ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(decode::device).collect()
    }

    async fn save_delivery(&self, d: &PushDelivery) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO push_deliveries
                 (challenge_id, device_id, push_platform, state, attempts, provider_message_id, reason, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn list_deliveries(&self, challenge_id: &str) -> StoreResult<Vec<PushDelivery>> {
        let rows =
            sqlx::query("SELECT * FROM push_deliveries WHERE challenge_id = ? ORDER BY device_id")
                .bind(challenge_id)
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(decode::delivery).collect()
    }

    async fn invalidate_push_token(&self, device_id: &str, token: &str) -> StoreResult<bool> {
        let updated =
            sqlx::query("UPDATE devices SET push_token = '' WHERE id = ? AND push_token = ?")
                .bind(device_id)
                .bind(token)
                .execute(&self.write)
                .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn set_push_token(
        &self,
        device_id: &str,
        platform: PushPlatform,
        token: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE devices SET push_platform = ?, push_token = ? WHERE id = ?")
            .bind(platform.as_str())
            .bind(token)
            .bind(device_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn revoke_device(&self, device_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let result = sqlx::query("UPDATE devices SET state = 'revoked', revoked_at = ? WHERE id = ? AND state != 'revoked'")
            .bind(now)
            .bind(device_id)
            .execute(&mut *tx)
            .await?;
        // A device still being verified takes its enrollment down with it.
        let rows = sqlx::query(
            "UPDATE challenges SET state = 'cancelled', ended_at = ?
             WHERE target_device_id = ? AND state = 'pending' RETURNING *",
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

    async fn use_nonce(&self, device_id: &str, nonce: &[u8], expires_at: i64) -> StoreResult<bool> {
        let result = sqlx::query("INSERT INTO device_nonces (device_id, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(device_id)
            .bind(nonce)
            .bind(expires_at)
            .execute(&self.write)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn create_challenge(&self, challenge: &Challenge) -> StoreResult<Vec<Ended>> {
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(
            "UPDATE challenges SET state = 'superseded', ended_at = ?
             WHERE tenant_id = ? AND user_id = ? AND kind = 'sign_in' AND state = 'pending' RETURNING *",
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
        insert_challenge(&mut tx, challenge).await?;
        tx.commit().await?;
        Ok(superseded)
    }

    async fn get_challenge(&self, id: &str) -> StoreResult<Option<Challenge>> {
        let row = sqlx::query("SELECT * FROM challenges WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(decode::challenge).transpose()
    }

    async fn count_challenges_since(
        &self,
        tenant_id: &str,
        user_id: &str,
        since: i64,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM challenges WHERE tenant_id = ? AND user_id = ? AND kind = 'sign_in' AND created_at >= ?",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(since)
        .fetch_one(&self.read)
        .await?)
    }

    async fn pending_for_device(&self, device: &Device, now: i64) -> StoreResult<Vec<Challenge>> {
        let rows = sqlx::query(
            "SELECT * FROM challenges
             WHERE tenant_id = ? AND user_id = ? AND state = 'pending' AND expires_at > ?
               AND (target_device_id = ? OR (target_device_id IS NULL AND ?))
             ORDER BY created_at DESC",
        )
        .bind(&device.tenant_id)
        .bind(&device.user_id)
        .bind(now)
        .bind(&device.id)
        .bind(device.state == DeviceState::Active)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(decode::challenge).collect()
    }

    async fn end_challenge(
        &self,
        id: &str,
        ending: &Ending,
        now: i64,
    ) -> StoreResult<Option<Ended>> {
        let expiring = ending.state == ChallengeState::Expired;
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(END_CHALLENGE)
            .bind(ending.state.as_str())
            .bind(ending.deny_reason.map(DenyReason::as_str))
            .bind(&ending.answered_by)
            .bind(now)
            .bind(id)
            .bind(expiring)
            .bind(now)
            .bind(expiring)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let challenge = decode::challenge(&row)?;
        let enrollment_id = settle_verification(&mut tx, &challenge, now).await?;
        if let Some(until) = ending.block_user_until {
            sqlx::query("UPDATE users SET blocked_until = ? WHERE tenant_id = ? AND user_id = ?")
                .bind(until)
                .bind(&challenge.tenant_id)
                .bind(&challenge.user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(Ended {
            challenge,
            enrollment_id,
        }))
    }

    async fn sweep(&self, now: i64, keep_attempts_since: i64) -> StoreResult<Swept> {
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(
            "UPDATE challenges SET state = 'expired', ended_at = ? WHERE state = 'pending' AND expires_at <= ? RETURNING *",
        )
        .bind(now)
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
             WHERE state IN ('waiting_for_scan', 'device_registered') AND expires_at <= ? RETURNING *",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        swept.enrollments = rows
            .iter()
            .map(decode::enrollment)
            .collect::<StoreResult<_>>()?;
        sqlx::query("DELETE FROM device_nonces WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM failed_attempts WHERE at < ?")
            .bind(keep_attempts_since)
            .execute(&mut *tx)
            .await?;
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
                .execute(&self.write)
                .await?;
            deleted += done.rows_affected();
        }
        let done = sqlx::query(super::PURGE_AUDIT)
            .bind(audit_before)
            .execute(&self.write)
            .await?;
        Ok(deleted + done.rows_affected())
    }

    async fn next_deadline(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(t) FROM (
                 SELECT MIN(expires_at) AS t FROM challenges WHERE state = 'pending'
                 UNION ALL
                 SELECT MIN(expires_at) FROM enrollments WHERE state IN ('waiting_for_scan', 'device_registered'))",
        )
        .fetch_one(&self.read)
        .await?)
    }

    async fn reset_user(&self, tenant_id: &str, user_id: &str, now: i64) -> StoreResult<Reset> {
        let mut tx = self.write.begin().await?;
        let revoked_devices = sqlx::query_scalar(
            "UPDATE devices SET state = 'revoked', revoked_at = ?
             WHERE tenant_id = ? AND user_id = ? AND state != 'revoked' RETURNING id",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let cancelled: Vec<(String, String)> = sqlx::query_as(
            "UPDATE challenges SET state = 'cancelled', ended_at = ?
             WHERE tenant_id = ? AND user_id = ? AND state = 'pending' RETURNING id, kind",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let cancelled_enrollments = sqlx::query_scalar(
            "UPDATE enrollments SET state = 'cancelled'
             WHERE tenant_id = ? AND user_id = ? AND state IN ('waiting_for_scan', 'device_registered') RETURNING id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(decode::reset(
            revoked_devices,
            cancelled,
            cancelled_enrollments,
        ))
    }

    async fn record_failure(&self, scope: &str, key: &str, now: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO failed_attempts (scope, key, at) VALUES (?, ?, ?)")
            .bind(scope)
            .bind(key)
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn count_failures(&self, scope: &str, key: &str, since: i64) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM failed_attempts WHERE scope = ? AND key = ? AND at >= ?",
        )
        .bind(scope)
        .bind(key)
        .bind(since)
        .fetch_one(&self.read)
        .await?)
    }

    async fn append_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (tenant_id, at, event_type, user_id, device_id, challenge_id, enrollment_id, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.tenant_id)
        .bind(e.at)
        .bind(&e.event_type)
        .bind(&e.user_id)
        .bind(&e.device_id)
        .bind(&e.challenge_id)
        .bind(&e.enrollment_id)
        .bind(&e.detail)
        .execute(&self.write)
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
             WHERE tenant_id = ? AND (? IS NULL OR user_id = ?) AND id < ?
             ORDER BY id DESC LIMIT ?",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(user_id)
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(decode::audit_event).collect()
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, role, created_at, revoked_at FROM api_keys WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(decode::api_key).transpose()
    }

    async fn list_api_keys(&self, tenant_id: &str) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, role, created_at, revoked_at FROM api_keys
             WHERE tenant_id = ? ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(decode::api_key).collect()
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<bool> {
        let result =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.write)
                .await?;
        Ok(result.rows_affected() == 1)
    }
}
