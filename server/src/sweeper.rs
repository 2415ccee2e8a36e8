//! Expires challenges and enrollments at their deadlines. The task sleeps until
//! the earliest deadline in the store, and is woken early when an earlier one
//! is added, so nothing is polled. Between sweeps it purges what has outlived
//! its retention (`retention`, `audit_retention`).

use crate::domain::{now_ms, Limits, Service};
use std::time::{Duration, Instant};

/// Longest sleep between sweeps, so that spent nonces and attempts are purged
/// even when nothing is pending.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// Pause after a store failure before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// Runs until the service shuts down.
pub async fn run(service: Service) {
    let purge_every = purge_interval(service.limits());
    let mut next_purge = Instant::now();
    // A deadline earlier than the planned sweep only moves the wake-up: the
    // store is read when a deadline (or MAX_IDLE) comes, not once for every
    // challenge created.
    let mut due = true;
    let mut next_sweep = Instant::now();
    loop {
        if Instant::now() >= next_purge {
            match service.purge().await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "purged data past its retention"),
                Err(error) => tracing::warn!(%error, "purge failed"),
            }
            next_purge = Instant::now() + purge_every;
        }
        let planned = if due {
            next_sweep = Instant::now() + MAX_IDLE;
            service.sweep().await
        } else {
            Ok(service.planned_sweep())
        };
        let wait = match planned {
            Ok(Some(deadline)) => Duration::from_millis((deadline - now_ms()).max(0) as u64),
            Ok(None) => MAX_IDLE,
            Err(error) => {
                tracing::warn!(%error, "sweep failed");
                next_sweep = Instant::now() + RETRY;
                RETRY
            }
        };
        let now = Instant::now();
        let wait = wait
            .min(next_sweep.saturating_duration_since(now))
            .min(next_purge.saturating_duration_since(now));
        tokio::select! {
            () = tokio::time::sleep(wait) => due = true,
            () = service.earlier_deadline_added() => due = false,
            () = service.shutting_down() => return,
        }
    }
}

/// A quarter of the shortest retention, between one second and [`MAX_IDLE`]:
/// rows outlive their retention by at most that.
fn purge_interval(limits: &Limits) -> Duration {
    let shortest = limits
        .retention
        .max(limits.challenge_window)
        .min(limits.audit_retention);
    (shortest / 4).clamp(Duration::from_secs(1), MAX_IDLE)
}
