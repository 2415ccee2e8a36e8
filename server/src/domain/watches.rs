//! Watches: an object's current state at once, then every change, ending
//! after a terminal state (or after `watch_max_duration`). Each open watch
//! holds a slot of its tenant's for as long as it lasts, so one tenant may
//! not hold all of them. The gRPC streams and the HTTP/JSON face's
//! server-sent events and long polls, and the OpenID provider's page, are
//! all [`follow`].

use super::{Error, Reason, Result, Service};
use crate::{events::Change, telemetry::metrics};
use std::{collections::HashMap, future::Future, sync::Mutex, time::Duration};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Open watches by tenant id.
#[derive(Debug, Default)]
pub(super) struct WatchSlots {
    open: Mutex<HashMap<String, u32>>,
}

/// An open watch of a tenant; frees its slot when dropped (when the stream ends).
pub struct WatchSlot {
    service: Service,
    tenant_id: String,
}

impl Service {
    /// Takes a watch slot for the tenant, or refuses past `watch_streams_per_tenant`.
    pub fn open_watch(&self, tenant_id: &str) -> Result<WatchSlot> {
        let limit = self.limits().watch_streams_per_tenant;
        let mut open = self.inner.watches.open.lock().expect("watch slots lock");
        let count = open.entry(tenant_id.to_owned()).or_default();
        if *count >= limit {
            metrics::throttled("watch_streams");
            return Err(Error::refused(
                Reason::TooManyWatches,
                format!("this tenant already has {limit} open watch streams; close one first"),
            ));
        }
        *count += 1;
        Ok(WatchSlot {
            service: self.clone(),
            tenant_id: tenant_id.to_owned(),
        })
    }

    /// How many watches the tenant has open on this replica.
    pub fn open_watches(&self, tenant_id: &str) -> u32 {
        let open = self
            .inner
            .watches
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        open.get(tenant_id).copied().unwrap_or(0)
    }
}

impl Service {
    /// A long poll on [`follow`]: `read()` once it differs from `seen`,
    /// re-read on every change of any of `targets`, or the last value read
    /// when `wait` has passed or the watch ends early (a shutdown, its
    /// longest duration). It holds one of the tenant's watch slots while it
    /// waits.
    pub async fn await_change<T, F, Fut>(
        &self,
        tenant_id: &str,
        targets: Vec<Change>,
        seen: &T,
        wait: Duration,
        read: F,
    ) -> Result<T>
    where
        T: PartialEq + Clone + Send + 'static,
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send,
    {
        let slot = self.open_watch(tenant_id)?;
        let mut updates = follow(self, slot, targets, read, |_| false);
        let deadline = tokio::time::Instant::now() + wait;
        let mut latest = match tokio_stream::StreamExt::next(&mut updates).await {
            Some(first) => first?,
            None => return Err(Error::Internal("a watch without a value".into())),
        };
        while latest == *seen {
            match tokio::time::timeout_at(deadline, tokio_stream::StreamExt::next(&mut updates))
                .await
            {
                Ok(Some(Ok(value))) => latest = value,
                Ok(Some(Err(_)) | None) | Err(_) => break,
            }
        }
        Ok(latest)
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self
            .service
            .inner
            .watches
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.tenant_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.tenant_id);
            }
        }
    }
}

/// Streams `fetch()` for the object named by `targets`, re-reading it on
/// every change event for any of them (and after missed events), until
/// `is_terminal`; a
/// shutdown ends the stream with `SHUTTING_DOWN`, and the longest watch
/// duration with `WATCH_DURATION_EXCEEDED`, so that the caller watches again.
/// `slot` is held for as long as the stream lasts.
pub fn follow<T, F, Fut>(
    service: &Service,
    slot: WatchSlot,
    targets: Vec<Change>,
    fetch: F,
    is_terminal: fn(&T) -> bool,
) -> ReceiverStream<Result<T>>
where
    T: PartialEq + Clone + Send + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>> + Send,
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
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    true
                }
            };
            if done {
                return;
            }
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(change) if change == Change::Everything || targets.contains(&change) => break,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    },
                    () = tx.closed() => return,
                    () = service.shutting_down() => {
                        let _ = tx.send(Err(Error::refused(Reason::ShuttingDown, "the server is shutting down; watch again"))).await;
                        return;
                    }
                    () = &mut ended_by_limit => {
                        let _ = tx.send(Err(Error::refused(Reason::WatchDurationExceeded, format!(
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
