//! Push throughput: notifications the APNs and FCM stand-ins accept per
//! second from the server's own providers (one HTTP/2 connection each, the
//! dispatcher's concurrency in flight), in this process, without the
//! dispatcher's queue or delivery records: what the push path itself allows.

use mfa_server::{
    model::PushPlatform,
    push::{self, config::PushConfig, Message, Outcome},
    store::{SqliteStore, Store},
};
use serde::Serialize;
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// One provider's figures.
#[derive(Debug, Serialize)]
pub struct PushRate {
    pub provider: &'static str,
    pub concurrency: usize,
    pub accepted: u64,
    pub accepted_per_second: f64,
}

/// Sends to each configured provider for `duration`, `config.concurrency`
/// requests in flight.
pub async fn measure(config: &PushConfig, duration: Duration) -> Result<Vec<PushRate>, String> {
    // Provider tokens are shared through a store, as on a server.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("push.db").display());
    let store = SqliteStore::open(&url).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> = Arc::new(store);
    let providers = push::providers(config, store)
        .await
        .map_err(|e| e.to_string())?;
    let mut rates = Vec::new();
    for provider in providers {
        let platform = provider.platform();
        let accepted = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let senders: Vec<_> = (0..config.concurrency)
            .map(|worker| {
                let (provider, accepted) = (provider.clone(), accepted.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        n += 1;
                        let message = message(platform, worker, n);
                        match provider.send(&message).await {
                            Outcome::Sent { .. } => {
                                accepted.fetch_add(1, Ordering::Relaxed);
                            }
                            other => return Err(format!("{platform:?}: {other:?}")),
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for sender in senders {
            sender.await.map_err(|e| e.to_string())??;
        }
        let accepted = accepted.load(Ordering::Relaxed);
        rates.push(PushRate {
            provider: platform.as_str(),
            concurrency: config.concurrency,
            accepted,
            accepted_per_second: accepted as f64 / start.elapsed().as_secs_f64(),
        });
    }
    Ok(rates)
}

/// The `n`-th notification of sender `worker`.
fn message(platform: PushPlatform, worker: usize, n: u64) -> Message {
    let challenge_id = format!("bench-{worker}-{n}");
    let now = mfa_server::domain::now_ms();
    Message {
        notice: mfa_proto::push::PushNotice::new(&challenge_id, "bench-tenant", "Bench"),
        challenge_id,
        tenant_id: "bench-tenant".into(),
        user_id: format!("user-{worker}"),
        device_id: format!("device-{worker}"),
        platform,
        token: match platform {
            PushPlatform::Apns => format!("{:064x}", worker + 1),
            _ => format!("fcm-bench-{worker}"),
        },
        created_at: now,
        expires_at: now + 120_000,
    }
}
