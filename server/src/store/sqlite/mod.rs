//! The embedded default: one SQLite file in WAL mode.
//!
//! Statements run synchronously on the calling thread (rusqlite), with their
//! prepared form cached per connection. A statement on a local file takes
//! microseconds, less than handing it to another thread and back would cost
//! (which is what an async driver does for every statement and every row).
//! Writes go through one connection behind a mutex, so our own writers never
//! race for SQLite's single write lock; reads take a connection of their own
//! and run beside the writer (WAL).
//!
//! Queries for a user's pending challenges name their index (`INDEXED BY`):
//! without statistics SQLite's planner prefers an index over the user's whole
//! history to the partial index over the pending rows, and a user who signs in
//! all day would make each of them read thousands of rows.
//!
//! Migrations stay with sqlx's migrator, which keeps its ledger in the same
//! file and shares the bundled SQLite library.

mod checkpoint;
pub use checkpoint::WAL_SIZE_LIMIT;

use super::rows::{self as decode, Columns};
use super::{
    algorithm_names, audit, delete_user, lifetime_ms, oidc, verification_names, Creation, Deletion,
    Ended, Quota, Reset, Store, StoreError, StoreResult, Swept, TenantCounts,
};
use crate::model::*;
use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, Params};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a statement waits for a lock another process holds (`migrate`,
/// a backup) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle read connections kept for reuse; more are opened under load.
const IDLE_READERS: usize = 8;

/// SQLite-backed store.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    _checkpointer: checkpoint::Checkpointer,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite:` URL.
    ///
    /// WAL lets readers run beside the writer; `synchronous = NORMAL` is
    /// durable across process crashes in WAL mode (an OS crash may lose the
    /// last commits, never corrupt the file); foreign keys are enforced; a busy
    /// timeout rides out other processes such as `migrate`. Checkpoints run on
    /// a thread of their own ([`checkpoint`]).
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        let path = options.get_filename().to_owned();
        let writer = connect(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.pragma_update(None, "journal_size_limit", checkpoint::WAL_SIZE_LIMIT)?;
        let writer = Arc::new(Mutex::new(writer));
        Ok(Self {
            _checkpointer: checkpoint::Checkpointer::start(&path, writer.clone())?,
            path,
            writer,
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Runs `work` on a read connection (a pooled one, or a new one).
    fn read<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = lock(&self.readers).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => connect(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        };
        let result = work(&connection);
        let mut idle = lock(&self.readers);
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
        result
    }

    /// Runs `work` on the write connection, outside a transaction (for one
    /// statement, which SQLite makes atomic on its own).
    fn write<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        work(&lock(&self.writer))
    }

    /// Runs `work` in a write transaction, committed if it returns `Ok`.
    /// `BEGIN` and `COMMIT` are cached statements like the others (rusqlite's
    /// `Transaction` prepares both anew every time: 1% of a sign-in's CPU).
    fn transaction<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let writer = lock(&self.writer);
        execute(&writer, "BEGIN IMMEDIATE", [])?;
        let open = RollbackUnlessCommitted(&writer);
        let value = work(open.0)?;
        execute(open.0, "COMMIT", [])?;
        Ok(value)
    }

    /// sqlx's view of the same file, for its migrator.
    fn sqlx_options(&self) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(&self.path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
    }
}

/// A connection with the settings every statement relies on.
fn connect(path: &Path, flags: OpenFlags) -> StoreResult<Connection> {
    let connection = Connection::open_with_flags(
        path,
        flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// A lock that a panic elsewhere does not poison for good: a transaction
/// interrupted by a panic was rolled back when it dropped.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Rolls back the write connection's transaction unless it committed: on an
/// error, a failed `COMMIT` or a panic, the next transaction starts clean.
struct RollbackUnlessCommitted<'a>(&'a Connection);

impl Drop for RollbackUnlessCommitted<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            if let Err(error) = execute(self.0, "ROLLBACK", []) {
                tracing::error!(%error, "rolling back a failed SQLite transaction");
            }
        }
    }
}

/// A rusqlite row read by column name, for the shared decoders.
struct Row<'a>(&'a rusqlite::Row<'a>);

impl Columns for Row<'_> {
    fn text(&self, column: &str) -> StoreResult<String> {
        Ok(self.0.get(column)?)
    }

    fn optional_text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.0.get(column)?)
    }

    fn integer(&self, column: &str) -> StoreResult<i64> {
        Ok(self.0.get(column)?)
    }

    fn optional_integer(&self, column: &str) -> StoreResult<Option<i64>> {
        Ok(self.0.get(column)?)
    }

    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
        Ok(self.0.get(column)?)
    }

    fn boolean(&self, column: &str) -> StoreResult<bool> {
        Ok(self.0.get(column)?)
    }

    fn optional_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.0.get(column)?)
    }
}

/// Every row of a query (or of a statement with `RETURNING`), decoded.
fn all<T>(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut decoded = Vec::new();
    while let Some(row) = rows.next()? {
        decoded.push(decode(&Row(row))?);
    }
    Ok(decoded)
}

/// The first row of a query, decoded, if there is one.
fn optional<T>(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    rows.next()?.map(|row| decode(&Row(row))).transpose()
}

/// The single value a query returns.
fn scalar<T: rusqlite::types::FromSql>(
    connection: &Connection,
    sql: &str,
    params: impl Params,
) -> StoreResult<T> {
    Ok(connection
        .prepare_cached(sql)?
        .query_row(params, |row| row.get(0))?)
}

/// Runs a statement; returns how many rows it changed.
fn execute(connection: &Connection, sql: &str, params: impl Params) -> StoreResult<usize> {
    Ok(connection.prepare_cached(sql)?.execute(params)?)
}

/// [`execute`] for an insert whose unique constraint names `what`.
fn insert(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    what: &'static str,
) -> StoreResult<()> {
    match connection.prepare_cached(sql)?.execute(params) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(error, _))
            if error.code == rusqlite::ErrorCode::ConstraintViolation
                && matches!(
                    error.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
        {
            Err(StoreError::Duplicate(what))
        }
        Err(error) => Err(error.into()),
    }
}

fn challenge(connection: &Connection, id: &str) -> StoreResult<Option<Challenge>> {
    optional(
        connection,
        "SELECT * FROM challenges WHERE id = ?",
        [id],
        |row| decode::challenge(row),
    )
}

fn deliveries(connection: &Connection, challenge_id: &str) -> StoreResult<Vec<PushDelivery>> {
    all(
        connection,
        "SELECT * FROM push_deliveries WHERE challenge_id = ? ORDER BY device_id",
        [challenge_id],
        |row| decode::delivery(row),
    )
}

fn insert_challenge(connection: &Connection, c: &Challenge) -> StoreResult<()> {
    insert(
        connection,
        "INSERT INTO challenges (id, tenant_id, user_id, kind, target_device_id, number, nonce, state,
             deny_reason, answered_by, application_name, client_ip, location, message,
             created_at, expires_at, ended_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            c.id,
            c.tenant_id,
            c.user_id,
            c.kind.as_str(),
            c.target_device_id,
            c.number,
            &c.nonce[..],
            c.state.as_str(),
            c.deny_reason.map(DenyReason::as_str),
            c.answered_by,
            c.context.application_name,
            c.context.client_ip,
            c.context.location,
            c.context.message,
            c.created_at,
            c.expires_at,
            c.ended_at,
        ],
        "challenge id",
    )
}

/// Applies what ending a verification challenge means for its device and
/// enrollment; returns the enrollment that changed.
fn settle_verification(
    connection: &Connection,
    challenge: &Challenge,
    now: i64,
) -> StoreResult<Option<String>> {
    if challenge.kind != ChallengeKind::EnrollmentVerification {
        return Ok(None);
    }
    let enrollment_state = super::enrollment_after_verification(challenge.state);
    if enrollment_state == EnrollmentState::Verified {
        execute(
            connection,
            "UPDATE devices SET state = 'active' WHERE id = ? AND state = 'pending_verification'",
            [&challenge.target_device_id],
        )?;
    } else {
        execute(
            connection,
            "UPDATE devices SET state = 'revoked', revoked_at = ? WHERE id = ? AND state != 'revoked'",
            params![now, challenge.target_device_id],
        )?;
    }
    optional(
        connection,
        "UPDATE enrollments SET state = ? WHERE challenge_id = ? AND state = 'device_registered' RETURNING id",
        params![enrollment_state.as_str(), challenge.id],
        |row| row.text("id"),
    )
}

/// Ends challenges that `sql` (an `UPDATE … RETURNING *`) selected, settling
/// the enrollments that verification challenges belong to.
fn end_challenges(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    now: i64,
) -> StoreResult<Vec<Ended>> {
    let challenges = all(connection, sql, params, |row| decode::challenge(row))?;
    challenges
        .into_iter()
        .map(|challenge| {
            let enrollment_id = settle_verification(connection, &challenge, now)?;
            Ok(Ended {
                challenge,
                enrollment_id,
            })
        })
        .collect()
}

/// Appends audit entries (in the caller's transaction, if any).
fn insert_audit<'a>(
    connection: &Connection,
    events: impl IntoIterator<Item = &'a AuditEvent>,
) -> StoreResult<()> {
    for e in events {
        write_audit(connection, super::INSERT_AUDIT, e, None)?;
    }
    Ok(())
}

/// [`super::INSERT_AUDIT`] or [`super::COUNT_AUDIT`] with `e`'s values.
fn write_audit(
    connection: &Connection,
    statement: &str,
    e: &AuditEvent,
    key: Option<&str>,
) -> StoreResult<()> {
    execute(
        connection,
        statement,
        params![
            e.tenant_id,
            e.at,
            e.event_type,
            e.user_id,
            e.device_id,
            e.challenge_id,
            e.enrollment_id,
            e.detail,
            e.client_address,
            e.count.max(1),
            key
        ],
    )?;
    Ok(())
}

/// Cancels a user's pending challenges and open enrollments (a reset, a
/// deletion).
fn cancel_open(
    connection: &Connection,
    tenant_id: &str,
    user_id: &str,
    now: i64,
) -> StoreResult<super::Cancelled> {
    let challenges = all(
        connection,
        "UPDATE challenges INDEXED BY challenges_pending_by_user SET state = 'cancelled', ended_at = ?
         WHERE tenant_id = ? AND user_id = ? AND state = 'pending' RETURNING id, kind",
        params![now, tenant_id, user_id],
        |row| Ok((row.text("id")?, row.text("kind")?)),
    )?;
    let enrollments = all(
        connection,
        super::CANCEL_OPEN_ENROLLMENTS,
        [tenant_id, user_id],
        |row| row.text("id"),
    )?;
    Ok(super::Cancelled {
        challenges,
        enrollments,
    })
}

const END_CHALLENGE: &str =
    "UPDATE challenges SET state = ?, deny_reason = ?, answered_by = ?, ended_at = ?
     WHERE id = ? AND state = 'pending' AND ((? AND expires_at <= ?) OR (NOT ? AND expires_at > ?))
     RETURNING *";

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(self.sqlx_options())
            .await?;
        let migrated = MIGRATOR.run(&pool).await;
        pool.close().await;
        Ok(migrated?)
    }

    async fn ping(&self) -> StoreResult<()> {
        // A fresh connection, not a pooled one: pooled connections keep an
        // open file even after the database's volume went away.
        let connection = connect(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        scalar::<i64>(&connection, "SELECT COUNT(*) FROM tenants", [])?;
        Ok(())
    }

    async fn close(&self) -> StoreResult<()> {
        // Checkpointing moves the WAL into the database file, so that the
        // file is complete on its own once the process ends.
        lock(&self.readers).clear();
        self.write(|writer| {
            writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
    }

    async fn count_pending_challenges(&self) -> StoreResult<i64> {
        self.read(|c| {
            scalar(
                c,
                "SELECT COUNT(*) FROM challenges WHERE state = 'pending'",
                [],
            )
        })
    }

    async fn create_tenant(&self, t: &Tenant) -> StoreResult<()> {
        self.write(|c| {
            insert(
                c,
                super::INSERT_TENANT,
                params![
                    t.id,
                    t.display_name,
                    t.number_digits,
                    t.created_at,
                    lifetime_ms(t.challenge_ttl),
                    lifetime_ms(t.enrollment_ttl),
                    t.offline_codes_enabled
                ],
                "tenant id",
            )
        })
    }

    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        self.read(|c| {
            optional(c, "SELECT * FROM tenants WHERE id = ?", [id], |row| {
                decode::tenant(row)
            })
        })
    }

    async fn count_tenants(&self) -> StoreResult<i64> {
        self.read(|c| scalar(c, "SELECT COUNT(*) FROM tenants", []))
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.read(|c| {
            all(
                c,
                "SELECT * FROM tenants ORDER BY created_at, id",
                [],
                |row| decode::tenant(row),
            )
        })
    }

    async fn update_tenant(
        &self,
        id: &str,
        changes: &TenantChanges,
    ) -> StoreResult<Option<Tenant>> {
        self.write(|c| {
            optional(
                c,
                super::UPDATE_TENANT,
                params![
                    changes.display_name,
                    changes.number_digits,
                    changes.challenge_ttl.is_some(),
                    changes.challenge_ttl.and_then(lifetime_ms),
                    changes.enrollment_ttl.is_some(),
                    changes.enrollment_ttl.and_then(lifetime_ms),
                    changes.offline_codes_enabled,
                    changes.allowed_key_algorithms.is_some(),
                    algorithm_names(changes),
                    changes.user_verification.is_some(),
                    verification_names(changes),
                    id
                ],
                |row| decode::tenant(row),
            )
        })
    }

    async fn tenant_counts(&self, id: &str, now: i64) -> StoreResult<TenantCounts> {
        self.read(|c| {
            let counts = c
                .prepare_cached(
                    "SELECT
                     (SELECT COUNT(*) FROM users WHERE tenant_id = ?1),
                     (SELECT COUNT(*) FROM devices WHERE tenant_id = ?1 AND state = 'active'),
                     (SELECT COUNT(*) FROM challenges INDEXED BY challenges_pending_by_user
                      WHERE tenant_id = ?1 AND state = 'pending' AND expires_at > ?2)",
                )?
                .query_row(params![id, now], |row| {
                    Ok(TenantCounts {
                        users: row.get(0)?,
                        active_devices: row.get(1)?,
                        pending_challenges: row.get(2)?,
                    })
                })?;
            Ok(counts)
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
        self.write(|c| {
            insert(
                c,
                "INSERT INTO api_keys (id, tenant_id, role, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                params![id, tenant_id, role.as_str(), &key_hash[..], now],
                "API key",
            )
        })
    }

    async fn find_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|c| {
            optional(c, super::FIND_API_KEY, [&key_hash[..]], |row| {
                decode::api_key(row)
            })
        })
    }

    async fn get_user(&self, tenant_id: &str, user_id: &str) -> StoreResult<Option<User>> {
        self.read(|c| {
            optional(
                c,
                "SELECT * FROM users WHERE tenant_id = ? AND user_id = ?",
                [tenant_id, user_id],
                |row| decode::user(row),
            )
        })
    }

    async fn set_blocked_until(
        &self,
        tenant_id: &str,
        user_id: &str,
        until: Option<i64>,
    ) -> StoreResult<bool> {
        self.write(|c| {
            let changed = execute(
                c,
                "UPDATE users SET blocked_until = ? WHERE tenant_id = ? AND user_id = ?",
                params![until, tenant_id, user_id],
            )?;
            Ok(changed == 1)
        })
    }

    async fn record_terms(
        &self,
        tenant_id: &str,
        user_id: &str,
        version: &str,
        now: i64,
    ) -> StoreResult<()> {
        self.write(|c| {
            execute(
                c,
                "INSERT INTO users (tenant_id, user_id, email, terms_version, terms_accepted_at) VALUES (?, ?, '', ?, ?)
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET terms_version = excluded.terms_version,
                     terms_accepted_at = excluded.terms_accepted_at",
                params![tenant_id, user_id, version, now],
            )?;
            Ok(())
        })
    }

    async fn create_enrollment(
        &self,
        e: &Enrollment,
        email: &str,
        code_hash: &[u8; 32],
    ) -> StoreResult<()> {
        self.transaction(|c| {
            execute(
                c,
                "INSERT INTO users (tenant_id, user_id, email) VALUES (?, ?, ?)
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET email = excluded.email",
                params![e.tenant_id, e.user_id, email],
            )?;
            insert(
                c,
                "INSERT INTO enrollments (id, tenant_id, user_id, code_hash, state, created_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                params![
                    e.id,
                    e.tenant_id,
                    e.user_id,
                    &code_hash[..],
                    e.state.as_str(),
                    e.created_at,
                    e.expires_at
                ],
                "activation code",
            )
        })
    }

    async fn get_enrollment(&self, id: &str) -> StoreResult<Option<Enrollment>> {
        self.read(|c| {
            optional(c, "SELECT * FROM enrollments WHERE id = ?", [id], |row| {
                decode::enrollment(row)
            })
        })
    }

    async fn find_enrollment_by_code(
        &self,
        code_hash: &[u8; 32],
    ) -> StoreResult<Option<Enrollment>> {
        self.read(|c| {
            optional(
                c,
                "SELECT * FROM enrollments WHERE code_hash = ?",
                [&code_hash[..]],
                |row| decode::enrollment(row),
            )
        })
    }

    async fn register_device(
        &self,
        enrollment_id: &str,
        d: &Device,
        challenge: &Challenge,
        now: i64,
    ) -> StoreResult<bool> {
        self.transaction(|c| {
            let claimed = execute(
                c,
                "UPDATE enrollments SET state = 'device_registered', device_id = ?, challenge_id = ?, expires_at = ?
                 WHERE id = ? AND state = 'waiting_for_scan' AND expires_at > ?",
                params![d.id, challenge.id, challenge.expires_at, enrollment_id, now],
            )?;
            if claimed != 1 {
                return Ok(false);
            }
            insert(
                c,
                "INSERT INTO devices (id, tenant_id, user_id, display_name, public_key, push_platform, push_token,
                     state, created_at, revoked_at, key_algorithm)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    d.id,
                    d.tenant_id,
                    d.user_id,
                    d.display_name,
                    &d.public_key[..],
                    d.push_platform.as_str(),
                    d.push_token,
                    d.state.as_str(),
                    d.created_at,
                    d.revoked_at,
                    d.key_algorithm.as_str()
                ],
                "device id",
            )?;
            insert_challenge(c, challenge)?;
            Ok(true)
        })
    }

    async fn get_device(&self, id: &str) -> StoreResult<Option<Device>> {
        self.read(|c| {
            optional(c, "SELECT * FROM devices WHERE id = ?", [id], |row| {
                decode::device(row)
            })
        })
    }

    async fn list_devices(&self, tenant_id: &str, user_id: &str) -> StoreResult<Vec<Device>> {
        self.read(|c| {
            all(
                c,
                "SELECT * FROM devices WHERE tenant_id = ? AND user_id = ? ORDER BY created_at, id",
                [tenant_id, user_id],
                |row| decode::device(row),
            )
        })
    }

    async fn user_with_devices(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<(User, Vec<Device>)>> {
        let rows = self.read(|c| {
            all(c, super::USER_WITH_DEVICES, [tenant_id, user_id], |row| {
                decode::user_and_device(row)
            })
        })?;
        Ok(decode::user_with_devices(rows))
    }

    async fn save_delivery(&self, d: &PushDelivery) -> StoreResult<()> {
        self.write(|c| {
            execute(
                c,
                "INSERT INTO push_deliveries
                     (challenge_id, device_id, push_platform, state, attempts, provider_message_id, reason, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (challenge_id, device_id) DO UPDATE SET
                     state = excluded.state, attempts = excluded.attempts,
                     provider_message_id = excluded.provider_message_id,
                     reason = excluded.reason, updated_at = excluded.updated_at",
                params![
                    d.challenge_id,
                    d.device_id,
                    d.push_platform.as_str(),
                    d.state.as_str(),
                    d.attempts,
                    d.provider_message_id,
                    d.reason,
                    d.updated_at
                ],
            )?;
            Ok(())
        })
    }

    async fn list_deliveries(&self, challenge_id: &str) -> StoreResult<Vec<PushDelivery>> {
        self.read(|c| deliveries(c, challenge_id))
    }

    async fn invalidate_push_token(
        &self,
        device_id: &str,
        token: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<bool> {
        self.write(|c| {
            let changed = execute(
                c,
                super::INVALIDATE_PUSH_TOKEN,
                params![reason, now, device_id, token],
            )?;
            Ok(changed == 1)
        })
    }

    async fn count_unreachable_devices(&self) -> StoreResult<Vec<UnreachableDevices>> {
        self.read(|c| {
            all(c, super::COUNT_UNREACHABLE_DEVICES, [], |row| {
                decode::unreachable_devices(row)
            })
        })
    }

    async fn provider_token(&self, name: &str) -> StoreResult<Option<ProviderToken>> {
        self.read(|c| {
            optional(c, super::PROVIDER_TOKEN, [name], |row| {
                decode::provider_token(row)
            })
        })
    }

    async fn replace_provider_token(
        &self,
        name: &str,
        replaces: Option<&str>,
        token: &ProviderToken,
    ) -> StoreResult<bool> {
        self.write(|c| {
            let changed = match replaces {
                None => execute(
                    c,
                    super::INSERT_PROVIDER_TOKEN,
                    params![name, token.token, token.issued_at],
                )?,
                Some(old) => execute(
                    c,
                    super::REPLACE_PROVIDER_TOKEN,
                    params![token.token, token.issued_at, name, old],
                )?,
            };
            Ok(changed == 1)
        })
    }

    async fn set_push_token(
        &self,
        device_id: &str,
        platform: PushPlatform,
        token: &str,
    ) -> StoreResult<()> {
        self.write(|c| {
            execute(
                c,
                super::SET_PUSH_TOKEN,
                [platform.as_str(), token, device_id],
            )?;
            Ok(())
        })
    }

    async fn revoke_device(&self, device_id: &str, now: i64) -> StoreResult<bool> {
        self.transaction(|c| {
            let revoked = execute(
                c,
                "UPDATE devices SET state = 'revoked', revoked_at = ? WHERE id = ? AND state != 'revoked'",
                params![now, device_id],
            )?;
            // A device still being verified takes its enrollment down with it.
            end_challenges(
                c,
                "UPDATE challenges SET state = 'cancelled', ended_at = ?
                 WHERE target_device_id = ? AND state = 'pending' RETURNING *",
                params![now, device_id],
                now,
            )?;
            Ok(revoked == 1)
        })
    }

    async fn use_nonce(&self, device_id: &str, nonce: &[u8], expires_at: i64) -> StoreResult<bool> {
        self.write(|c| {
            let inserted = execute(
                c,
                "INSERT INTO device_nonces (device_id, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                params![device_id, nonce, expires_at],
            )?;
            Ok(inserted == 1)
        })
    }

    async fn create_challenge(&self, challenge: &Challenge, quota: Quota) -> StoreResult<Creation> {
        // The one write connection serializes creations, so the count holds.
        self.transaction(|c| {
            let recent: i64 = scalar(
                c,
                super::COUNT_SIGN_INS,
                params![challenge.tenant_id, challenge.user_id, quota.since],
            )?;
            if recent >= i64::from(quota.limit) {
                return Ok(Creation::QuotaSpent);
            }
            let superseded = all(
                c,
                "UPDATE challenges INDEXED BY challenges_pending_by_user SET state = 'superseded', ended_at = ?
                 WHERE tenant_id = ? AND user_id = ? AND kind = 'sign_in' AND state = 'pending' RETURNING *",
                params![challenge.created_at, challenge.tenant_id, challenge.user_id],
                |row| decode::ended(row),
            )?;
            insert_challenge(c, challenge)?;
            insert_audit(c, &audit::creation(challenge, &superseded))?;
            Ok(Creation::Created(superseded))
        })
    }

    async fn get_challenge(&self, id: &str) -> StoreResult<Option<Challenge>> {
        self.read(|c| challenge(c, id))
    }

    async fn challenge_with_deliveries(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Challenge, Vec<PushDelivery>)>> {
        self.read(|c| {
            challenge(c, id)?
                .map(|found| Ok((found, deliveries(c, id)?)))
                .transpose()
        })
    }

    async fn pending_for_device(
        &self,
        device: &Device,
        now: i64,
    ) -> StoreResult<Vec<(Challenge, String)>> {
        self.read(|c| {
            all(
                c,
                "SELECT c.*, u.email AS user_email
                 FROM challenges c INDEXED BY challenges_pending_by_user
                 JOIN users u ON u.tenant_id = c.tenant_id AND u.user_id = c.user_id
                 WHERE c.tenant_id = ? AND c.user_id = ? AND c.state = 'pending'
                   AND c.expires_at > ?
                   AND (c.target_device_id = ? OR (c.target_device_id IS NULL AND ?))
                 ORDER BY c.created_at DESC",
                params![
                    device.tenant_id,
                    device.user_id,
                    now,
                    device.id,
                    device.state == DeviceState::Active
                ],
                |row| decode::challenge_with_email(row),
            )
        })
    }

    async fn end_challenge(
        &self,
        challenge: &Challenge,
        ending: &Ending,
        now: i64,
    ) -> StoreResult<Option<Ended>> {
        let expiring = ending.state == ChallengeState::Expired;
        self.transaction(|c| {
            let ended = end_challenges(
                c,
                END_CHALLENGE,
                params![
                    ending.state.as_str(),
                    ending.deny_reason.map(DenyReason::as_str),
                    ending.answered_by,
                    now,
                    challenge.id,
                    expiring,
                    now,
                    expiring,
                    now
                ],
                now,
            )?
            .pop();
            let Some(ended) = ended else { return Ok(None) };
            if let Some(until) = ending.block_user_until {
                execute(
                    c,
                    "UPDATE users SET blocked_until = ? WHERE tenant_id = ? AND user_id = ?",
                    params![until, ended.challenge.tenant_id, ended.challenge.user_id],
                )?;
            }
            insert_audit(c, &audit::ending(&ended, ending, now))?;
            Ok(Some(ended))
        })
    }

    async fn sweep(&self, now: i64, keep_attempts_since: i64) -> StoreResult<Swept> {
        self.transaction(|c| {
            let challenges = end_challenges(
                c,
                "UPDATE challenges SET state = 'expired', ended_at = ? WHERE state = 'pending' AND expires_at <= ? RETURNING *",
                [now, now],
                now,
            )?;
            let enrollments = all(
                c,
                "UPDATE enrollments SET state = 'expired'
                 WHERE state IN ('waiting_for_scan', 'device_registered') AND expires_at <= ? RETURNING *",
                [now],
                |row| decode::enrollment(row),
            )?;
            execute(c, "DELETE FROM device_nonces WHERE expires_at <= ?", [now])?;
            execute(
                c,
                "DELETE FROM failed_attempts WHERE at < ?",
                [keep_attempts_since],
            )?;
            execute(
                c,
                "DELETE FROM oidc_authorizations WHERE expires_at < ?",
                [keep_attempts_since],
            )?;
            let swept = Swept {
                challenges,
                enrollments,
            };
            insert_audit(c, &audit::swept(&swept, now))?;
            Ok(swept)
        })
    }

    async fn purge(&self, ended_before: i64, audit_before: i64) -> StoreResult<u64> {
        // Each statement on its own: nothing ties them together, and short
        // transactions hold their locks briefly.
        let mut deleted = 0;
        for statement in super::PURGE_ENDED {
            deleted += self.write(|c| execute(c, statement, [ended_before]))?;
        }
        deleted += self.write(|c| execute(c, super::PURGE_AUDIT, [audit_before]))?;
        Ok(deleted as u64)
    }

    async fn next_deadline(&self) -> StoreResult<Option<i64>> {
        self.read(|c| {
            scalar(
                c,
                "SELECT MIN(t) FROM (
                     SELECT MIN(expires_at) AS t FROM challenges WHERE state = 'pending'
                     UNION ALL
                     SELECT MIN(expires_at) FROM enrollments WHERE state IN ('waiting_for_scan', 'device_registered'))",
                [],
            )
        })
    }

    async fn reset_user(&self, tenant_id: &str, user_id: &str, now: i64) -> StoreResult<Reset> {
        self.transaction(|c| {
            let revoked_devices = all(
                c,
                "UPDATE devices SET state = 'revoked', revoked_at = ?
                 WHERE tenant_id = ? AND user_id = ? AND state != 'revoked' RETURNING id",
                params![now, tenant_id, user_id],
                |row| row.text("id"),
            )?;
            let super::Cancelled {
                challenges: cancelled,
                enrollments: cancelled_enrollments,
            } = cancel_open(c, tenant_id, user_id, now)?;
            Ok(decode::reset(
                revoked_devices,
                cancelled,
                cancelled_enrollments,
            ))
        })
    }

    async fn delete_user(
        &self,
        tenant_id: &str,
        user_id: &str,
        by: &str,
        now: i64,
    ) -> StoreResult<Deletion> {
        self.transaction(|c| {
            let user = params![tenant_id, user_id];
            let found: bool = scalar(
                c,
                "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = ? AND user_id = ?)",
                user,
            )?;
            if !found {
                return Ok(Deletion::default());
            }
            let super::Cancelled {
                challenges: cancelled,
                enrollments: cancelled_enrollments,
            } = cancel_open(c, tenant_id, user_id, now)?;
            let (cancelled_challenges, cancelled_sign_ins) = decode::cancelled(cancelled);
            let anonymised_audit_events = execute(c, delete_user::ANONYMISE_AUDIT, user)? as u64;
            execute(c, delete_user::NONCES, user)?;
            execute(c, delete_user::FAILURES, user)?;
            execute(c, delete_user::OIDC_AUTHORIZATIONS, user)?;
            let challenges = execute(c, delete_user::CHALLENGES, user)? as u64;
            let enrollments = execute(c, delete_user::ENROLLMENTS, user)? as u64;
            let devices = execute(c, delete_user::DEVICES, user)? as u64;
            execute(c, delete_user::USER, user)?;
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
            insert_audit(c, [&audit::user_deleted(tenant_id, &deletion, by, now)])?;
            Ok(deletion)
        })
    }

    async fn save_offline_secret(&self, device_id: &str, sealed: &[u8]) -> StoreResult<()> {
        self.write(|c| {
            insert(
                c,
                super::offline_codes::SAVE,
                params![device_id, sealed],
                "offline-code secret",
            )
        })
    }

    async fn offline_secrets(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<OfflineSecret>> {
        self.read(|c| {
            all(
                c,
                super::offline_codes::LIST,
                params![tenant_id, user_id],
                |row| decode::offline_secret(row),
            )
        })
    }

    async fn use_offline_step(&self, device_id: &str, step: i64) -> StoreResult<bool> {
        self.write(|c| {
            Ok(execute(c, super::offline_codes::USE_STEP, params![step, device_id])? == 1)
        })
    }

    async fn record_failure(&self, scope: &str, key: &str, now: i64) -> StoreResult<()> {
        self.write(|c| {
            execute(
                c,
                "INSERT INTO failed_attempts (scope, key, at) VALUES (?, ?, ?)",
                params![scope, key, now],
            )?;
            Ok(())
        })
    }

    async fn count_failures(&self, scope: &str, key: &str, since: i64) -> StoreResult<i64> {
        self.read(|c| {
            scalar(
                c,
                "SELECT COUNT(*) FROM failed_attempts WHERE scope = ? AND key = ? AND at >= ?",
                params![scope, key, since],
            )
        })
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.write(|c| insert_audit(c, [event]))
    }

    async fn count_audit(&self, event: &AuditEvent, key: &str) -> StoreResult<()> {
        self.write(|c| write_audit(c, super::COUNT_AUDIT, event, Some(key)))
    }

    async fn list_audit(
        &self,
        tenant_id: &str,
        user_id: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.read(|c| {
            all(
                c,
                "SELECT * FROM audit_events
                 WHERE tenant_id = ? AND (? IS NULL OR user_id = ?) AND id < ?
                 ORDER BY id DESC LIMIT ?",
                params![
                    tenant_id,
                    user_id,
                    user_id,
                    before_id.unwrap_or(i64::MAX),
                    limit
                ],
                |row| decode::audit_event(row),
            )
        })
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|c| optional(c, super::GET_API_KEY, [id], |row| decode::api_key(row)))
    }

    async fn list_api_keys(&self, tenant_id: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(|c| {
            all(c, super::LIST_API_KEYS, [tenant_id], |row| {
                decode::api_key(row)
            })
        })
    }

    async fn record_api_key_use(&self, id: &str, now: i64, unless_since: i64) -> StoreResult<bool> {
        self.write(|c| {
            let written = execute(c, super::RECORD_API_KEY_USE, params![now, id, unless_since])?;
            Ok(written == 1)
        })
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<bool> {
        self.write(|c| {
            let revoked = execute(
                c,
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                params![now, id],
            )?;
            Ok(revoked == 1)
        })
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        self.read(|c| all(c, oidc::SIGNING_KEYS, [], |row| decode::signing_key(row)))
    }

    async fn add_signing_key(
        &self,
        k: &SigningKey,
        unless_created_since: i64,
    ) -> StoreResult<bool> {
        self.write(|c| {
            let added = execute(
                c,
                oidc::INSERT_SIGNING_KEY,
                params![
                    k.kid,
                    k.private_key,
                    k.certificate,
                    k.created_at,
                    k.signs_from,
                    unless_created_since
                ],
            )?;
            Ok(added == 1)
        })
    }

    async fn forget_signing_keys(&self, replaced_before: i64) -> StoreResult<u64> {
        self.write(|c| Ok(execute(c, oidc::FORGET_SIGNING_KEYS, [replaced_before])? as u64))
    }

    async fn create_oidc_client(&self, client: &OidcClient) -> StoreResult<()> {
        let (uris, entra) = oidc::client_json(client)?;
        self.write(|c| {
            insert(
                c,
                oidc::INSERT_CLIENT,
                params![
                    client.client_id,
                    client.tenant_id,
                    client.display_name,
                    client.secret_hash.as_ref().map(|h| &h[..]),
                    uris,
                    entra,
                    client.created_at
                ],
                "client id",
            )
        })
    }

    async fn get_oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        self.read(|c| {
            optional(c, oidc::GET_CLIENT, [client_id], |row| {
                decode::oidc_client(row)
            })
        })
    }

    async fn list_oidc_clients(&self, tenant_id: &str) -> StoreResult<Vec<OidcClient>> {
        self.read(|c| {
            all(c, oidc::LIST_CLIENTS, [tenant_id], |row| {
                decode::oidc_client(row)
            })
        })
    }

    async fn create_authorization(&self, a: &Authorization) -> StoreResult<()> {
        self.write(|c| {
            insert(
                c,
                oidc::INSERT_AUTHORIZATION,
                params![
                    a.id,
                    a.tenant_id,
                    a.client_id,
                    a.user_id,
                    a.email,
                    i64::from(a.pushed),
                    a.redirect_uri,
                    a.state,
                    a.nonce,
                    a.code_challenge,
                    a.created_at,
                    a.expires_at,
                    a.response_type.as_str(),
                    oidc::subject_json(a)?,
                    a.hint_hash.as_ref().map(|h| &h[..]),
                    a.acr
                ],
                "id_token_hint",
            )
        })
    }

    async fn get_authorization(&self, id: &str) -> StoreResult<Option<Authorization>> {
        self.read(|c| {
            optional(c, oidc::GET_AUTHORIZATION, [id], |row| {
                decode::authorization(row)
            })
        })
    }

    async fn set_authorization_step(
        &self,
        id: &str,
        challenge_id: Option<&str>,
        enrollment_id: Option<&str>,
    ) -> StoreResult<bool> {
        self.write(|c| {
            Ok(execute(c, oidc::SET_STEP, params![challenge_id, enrollment_id, id])? == 1)
        })
    }

    async fn finish_authorization(
        &self,
        id: &str,
        code: Option<(&[u8; 32], i64)>,
        auth_time: Option<i64>,
        now: i64,
    ) -> StoreResult<bool> {
        let (hash, expires) = code.unzip();
        self.write(|c| {
            let finished = execute(
                c,
                oidc::FINISH,
                params![now, auth_time, hash.map(|h| &h[..]), expires, id],
            )?;
            Ok(finished == 1)
        })
    }

    async fn redeem_code(
        &self,
        code_hash: &[u8; 32],
        now: i64,
    ) -> StoreResult<Option<Authorization>> {
        self.write(|c| {
            optional(c, oidc::REDEEM_CODE, params![now, &code_hash[..]], |row| {
                decode::authorization(row)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("mfa.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    fn add_tenant(c: &Connection, id: &str) -> StoreResult<usize> {
        execute(
            c,
            "INSERT INTO tenants (id, display_name, number_digits, created_at) VALUES (?, 'T', 2, 0)",
            [id],
        )
    }

    #[tokio::test]
    async fn a_transaction_that_fails_or_panics_leaves_nothing_and_the_next_one_commits() {
        let (store, _dir) = store().await;
        let failed: StoreResult<()> = store.transaction(|c| {
            add_tenant(c, "failed")?;
            Err(StoreError::Corrupt("on purpose".into()))
        });
        assert!(failed.is_err());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.transaction(|c| -> StoreResult<()> {
                add_tenant(c, "panicked")?;
                panic!("on purpose")
            })
        }));
        assert!(panicked.is_err());
        store.transaction(|c| add_tenant(c, "kept")).unwrap();

        let mut ids = Vec::new();
        for id in ["failed", "panicked", "kept"] {
            if store.get_tenant(id).await.unwrap().is_some() {
                ids.push(id);
            }
        }
        assert_eq!(ids, ["kept"]);
        assert!(lock(&store.writer).is_autocommit());
    }
}
