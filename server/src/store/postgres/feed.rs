//! Relays the database's change notifications to this replica's watch
//! streams, so that an answer stored through any replica reaches watchers on
//! every replica at once.
//!
//! Triggers (migrations/postgres/0003_change_notifications.sql, 0016) send
//! `challenge:<id>` or `enrollment:<id>` on the `mfa_changes` channel when a
//! write commits. Notifications sent while the listening connection is down
//! are lost, so after every (re)connection every watcher is told to re-read
//! ([`Change::Everything`]): none misses a terminal state.
//!
//! A network that silently drops everything gives the listener no error: it
//! would wait for ever, and this replica's watches with it. So a listener
//! that has heard nothing for a while must answer a query within as long, or
//! it is taken for lost and replaced. Each listener has a connection of its
//! own, outside the store's pool: a lost one is told to `UNLISTEN` when it is
//! dropped, which waits until TCP gives up, and must not hold one of the
//! store's connections meanwhile.

use crate::{
    events::{Change, Events},
    store::StoreResult,
};
use sqlx::{
    postgres::{PgListener, PgNotification, PgPool, PgPoolOptions},
    Executor,
};
use std::time::Duration;

/// The channel the triggers notify.
pub const CHANNEL: &str = "mfa_changes";
/// First pause before reconnecting after a failed attempt; it doubles up to
/// [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Listens on the database's change channel and feeds [`Events`].
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    pool: PgPool,
    check: Option<Duration>,
}

impl ChangeFeed {
    /// A feed whose listener, when quiet for `check`, must answer a query
    /// within `check` (`None`: never checked).
    pub(super) fn new(pool: PgPool, check: Option<Duration>) -> Self {
        Self { pool, check }
    }

    /// Starts listening, then relays changes to `events` in the background
    /// until the store's pool is closed. Returns once listening, so that every
    /// change committed afterwards reaches `events`.
    pub async fn start(self, events: Events) -> StoreResult<()> {
        let listener = listen(&self.pool).await?;
        let mut closed = self.pool.close_event();
        tokio::spawn(async move {
            // Ends the relay (and drops its listener) once the store closes.
            let _ = closed
                .do_until(run(self.pool, listener, events, self.check))
                .await;
        });
        Ok(())
    }
}

/// Relays changes, reconnecting whenever the listening connection is lost
/// and then telling every watcher to re-read.
async fn run(pool: PgPool, mut listener: PgListener, events: Events, check: Option<Duration>) {
    loop {
        events.deliver(Change::Everything);
        let error = relay(&mut listener, &events, check).await;
        tracing::warn!(%error, "change listener lost; reconnecting");
        drop(listener);
        let mut retry = FIRST_RETRY;
        listener = loop {
            if pool.is_closed() {
                return;
            }
            match listen(&pool).await {
                Ok(listener) => break listener,
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?retry, "cannot listen for changes");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        };
        tracing::info!("listening for changes again");
    }
}

/// A listener on [`CHANNEL`] over a new connection made as `pool` makes
/// them, in a pool of its own. Connecting and `LISTEN` are each bounded by
/// the pool's acquire timeout, like every other wait on the database.
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let within = pool.options().get_acquire_timeout();
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(within)
        .connect_lazy_with((*pool.connect_options()).clone());
    let mut listener = PgListener::connect_with(&own).await?;
    // Reconnect in `run`, not inside the listener, so that every new
    // connection is followed by a re-read.
    listener.eager_reconnect(false);
    tokio::time::timeout(within, listener.listen(CHANNEL))
        .await
        .map_err(|_| {
            sqlx::Error::Protocol(format!("LISTEN was not answered within {within:?}"))
        })??;
    Ok(listener)
}

/// Delivers notifications until the connection fails; returns why.
async fn relay(listener: &mut PgListener, events: &Events, check: Option<Duration>) -> sqlx::Error {
    loop {
        match next(listener, check).await {
            Ok(Some(notification)) => match parse(notification.payload()) {
                Some(change) => events.deliver(change),
                None => tracing::warn!(
                    payload = notification.payload(),
                    "unknown change notification"
                ),
            },
            Ok(None) => return sqlx::Error::Protocol("the listening connection closed".into()),
            Err(error) => return error,
        }
    }
}

/// The next notification; with `check`, a quiet connection must answer a
/// query within `check` each time it has been quiet that long.
async fn next(
    listener: &mut PgListener,
    check: Option<Duration>,
) -> Result<Option<PgNotification>, sqlx::Error> {
    let Some(check) = check else {
        return listener.try_recv().await;
    };
    loop {
        if let Ok(received) = tokio::time::timeout(check, listener.try_recv()).await {
            return received;
        }
        match tokio::time::timeout(check, listener.execute("SELECT 1")).await {
            Ok(answered) => answered?,
            Err(_) => {
                return Err(sqlx::Error::Protocol(format!(
                    "the listening connection did not answer within {check:?}"
                )))
            }
        };
    }
}

/// Reads a trigger's payload.
fn parse(payload: &str) -> Option<Change> {
    match payload.split_once(':')? {
        ("challenge", id) => Some(Change::Challenge(id.to_owned())),
        ("enrollment", id) => Some(Change::Enrollment(id.to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_what_changed() {
        assert_eq!(
            parse("challenge:c-1"),
            Some(Change::Challenge("c-1".into()))
        );
        assert_eq!(
            parse("enrollment:e-1"),
            Some(Change::Enrollment("e-1".into()))
        );
        assert_eq!(parse("device:d-1"), None);
        assert_eq!(parse("challenge"), None);
    }
}
