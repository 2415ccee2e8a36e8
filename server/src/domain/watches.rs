//! Open watch streams per tenant: each holds a task and a connection slot for
//! as long as it lasts, so one tenant may not hold all of them.

use super::{Error, Reason, Result, Service};
use crate::{events::Change, telemetry::metrics};
use std::{collections::HashMap, future::Future, sync::Mutex, time::Duration};
use tokio::sync::broadcast::error::RecvError;

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
}

impl Service {
    /// A long poll: `read()` once it differs from `seen`, re-reading on
    /// every change of any of `targets` (and after missed changes), or the
    /// last value read when `wait` has passed or the server is stopping. It
    /// holds one of the tenant's watch slots while it waits.
    pub async fn await_change<T, F, Fut>(
        &self,
        tenant_id: &str,
        targets: &[Change],
        seen: &T,
        wait: Duration,
        read: F,
    ) -> Result<T>
    where
        T: PartialEq,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // Subscribe before the first read so that no change can slip between them.
        let mut changes = self.events().subscribe();
        let current = read().await?;
        if current != *seen {
            return Ok(current);
        }
        let _slot = self.open_watch(tenant_id)?;
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) if change != Change::Everything && !targets.contains(&change) => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return read().await,
                },
                () = &mut deadline => return read().await,
                () = self.shutting_down() => return read().await,
            }
            let current = read().await?;
            if current != *seen {
                return Ok(current);
            }
        }
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
