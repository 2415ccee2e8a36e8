//! When the pool checks a connection with a round trip of its own.
//!
//! sqlx's pool pings a connection before each use and after each: three round
//! trips for a call of one statement. Here a connection is checked before use
//! only when it has been idle for [`IDLE_CHECK`], or has been idle since the
//! last sign of trouble (a call that did not complete, or a check that
//! failed): one cut off with the others by an outage is then found before a
//! call meets it, as the pool found it before. A connection that a call hands
//! back with [`super::Held::done`] is not checked after use; any other is,
//! within a time limit.

use sqlx::{pool::PoolConnectionMetadata, Connection, PgConnection};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// How long a pooled connection may sit idle and still be used unchecked: one
/// used more recently has just shown that it answers.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The last time a connection failed its check, shared by a pool's callbacks.
#[derive(Debug)]
pub struct Checks {
    started: Instant,
    /// Nanoseconds from `started` to the last failed check; 0 for none.
    last_trouble: AtomicU64,
}

impl Checks {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            last_trouble: AtomicU64::new(0),
        })
    }

    /// Checks an idle connection before use if it needs it (see the module).
    pub async fn before_use(
        &self,
        connection: &mut PgConnection,
        metadata: PoolConnectionMetadata,
    ) -> Result<bool, sqlx::Error> {
        let idle_since = self
            .now()
            .saturating_sub(metadata.idle_for.as_nanos() as u64);
        if metadata.idle_for < IDLE_CHECK && idle_since > self.last_trouble.load(Ordering::Acquire)
        {
            return Ok(true);
        }
        self.noted(connection.ping().await).map(|()| true)
    }

    /// Checks a connection a call did not hand back in good order, within
    /// `limit`: sqlx's own check after it has no time limit, and a connection
    /// whose network went silent under a cancelled call would keep its place
    /// in the pool until TCP gives up.
    pub async fn after_use(
        &self,
        connection: &mut PgConnection,
        limit: Duration,
    ) -> Result<bool, sqlx::Error> {
        let answered = tokio::time::timeout(limit, connection.ping())
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        self.noted(answered).map(|()| true)
    }

    /// Notes trouble now: every connection idle since is checked before use.
    pub fn trouble(&self) {
        self.last_trouble
            .store(self.now().max(1), Ordering::Release);
    }

    fn noted(&self, checked: Result<(), sqlx::Error>) -> Result<(), sqlx::Error> {
        if checked.is_err() {
            self.trouble();
        }
        checked
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }
}
