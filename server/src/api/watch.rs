//! Server-streaming watches: the current state at once, then every change,
//! ending after a terminal state (or after `watch_max_duration`).

use crate::{
    domain::{Service, WatchSlot},
    events::Change,
};
use mfa_proto::status::Reason;
use std::future::Future;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Streams `fetch()` for the object named by `target`, re-reading it on every
/// change event for it (and after missed events), until `is_terminal`; a
/// shutdown ends the stream with UNAVAILABLE, and the longest watch duration
/// with DEADLINE_EXCEEDED, so that the caller watches again. `slot` is held
/// for as long as the stream lasts.
pub fn follow<T, F, Fut>(
    service: &Service,
    slot: WatchSlot,
    target: Change,
    fetch: F,
    is_terminal: fn(&T) -> bool,
) -> ReceiverStream<Result<T, Status>>
where
    T: PartialEq + Clone + Send + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Status>> + Send,
{
    let (tx, rx) = mpsc::channel(8);
    // Subscribe before the first read so that no change can slip between them.
    let mut changes = service.events().subscribe();
    let service = service.clone();
    let max_duration = service.limits().watch_max_duration;
    tokio::spawn(async move {
        let mut slot = Some(slot);
        let ended_by_limit = tokio::time::sleep(max_duration);
        tokio::pin!(ended_by_limit);
        let mut last: Option<T> = None;
        loop {
            let done = match fetch().await {
                Ok(value) if last.as_ref() == Some(&value) => false,
                Ok(value) => {
                    let terminal = is_terminal(&value);
                    last = Some(value.clone());
                    if terminal {
                        // Freed before the caller sees the end, so that a
                        // caller who watches again at once finds it free.
                        drop(slot.take());
                    }
                    if tx.send(Ok(value)).await.is_err() {
                        return;
                    }
                    terminal
                }
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    true
                }
            };
            if done {
                return;
            }
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(change) if change == target || change == Change::Everything => break,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    },
                    () = tx.closed() => return,
                    () = service.shutting_down() => {
                        let _ = tx.send(Err(Reason::ShuttingDown.status("the server is shutting down; watch again"))).await;
                        return;
                    }
                    () = &mut ended_by_limit => {
                        let _ = tx.send(Err(Reason::WatchDurationExceeded.status(format!(
                            "this watch reached the longest watch duration ({}s); watch again",
                            max_duration.as_secs()
                        )))).await;
                        return;
                    }
                }
            }
        }
    });
    ReceiverStream::new(rx)
}
