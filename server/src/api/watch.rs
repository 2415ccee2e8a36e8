//! Server-streaming watches: the current state at once, then every change,
//! ending after a terminal state.

use crate::{domain::Service, events::Change};
use std::future::Future;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Streams `fetch()` for the object named by `target`, re-reading it on every
/// change event for it (and after missed events), until `is_terminal`; a
/// shutdown ends the stream with UNAVAILABLE so that the caller watches again.
pub fn follow<T, F, Fut>(
    service: &Service,
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
    tokio::spawn(async move {
        let mut last: Option<T> = None;
        loop {
            let done = match fetch().await {
                Ok(value) if last.as_ref() == Some(&value) => false,
                Ok(value) => {
                    let terminal = is_terminal(&value);
                    last = Some(value.clone());
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
                        let _ = tx.send(Err(Status::unavailable("the server is shutting down; watch again"))).await;
                        return;
                    }
                }
            }
        }
    });
    ReceiverStream::new(rx)
}
