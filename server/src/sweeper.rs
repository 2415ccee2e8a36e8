//! Expires challenges and enrollments at their deadlines. The task sleeps until
//! the earliest deadline in the store, and is woken early when a new one is
//! added, so nothing is polled.

use crate::domain::{now_ms, Service};
use std::time::Duration;

/// Longest sleep between sweeps, so that spent nonces and attempts are purged
/// even when nothing is pending.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// Pause after a store failure before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// Runs until the service shuts down.
pub async fn run(service: Service) {
    loop {
        let wait = match service.sweep().await {
            Ok(Some(deadline)) => Duration::from_millis(
                (deadline - now_ms()).clamp(0, MAX_IDLE.as_millis() as i64) as u64,
            ),
            Ok(None) => MAX_IDLE,
            Err(error) => {
                tracing::warn!(%error, "sweep failed");
                RETRY
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = service.deadline_added() => {}
            () = service.shutting_down() => return,
        }
    }
}
