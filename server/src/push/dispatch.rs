//! The dispatcher: a bounded queue and a bounded number of requests in flight
//! per provider (so a slow or dead provider holds up neither challenge
//! creation nor the other provider), retries with exponential backoff and
//! jitter that never outlive the challenge, and the delivery record.

use super::{
    config::PushConfig,
    health::{BadTokenVerdict, PushHealth},
    Message, Outcome, Provider,
};
use crate::{
    domain::now_ms,
    events::{Change, Events},
    model::{AuditEvent, ChallengeState, DeliveryState, PushDelivery, PushPlatform},
    store::Store,
    telemetry::metrics,
};
use rand::Rng;
use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::sync::{mpsc, watch, Semaphore};

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per notification, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait after the `failed`-th failed attempt: exponential, capped,
    /// with "equal jitter" (`jitter` in 0..1 spreads it over its upper half),
    /// and never shorter than what the provider asked for.
    pub fn backoff(&self, failed: u32, provider_asked: Option<Duration>, jitter: f64) -> Duration {
        let doubling = 2u32.saturating_pow(failed.saturating_sub(1));
        let full = self
            .initial_backoff
            .saturating_mul(doubling)
            .min(self.max_backoff);
        let wait = full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        wait.max(provider_asked.unwrap_or_default())
    }
}

/// Hands notifications to providers; see the module documentation.
pub struct Dispatcher {
    queues: HashMap<PushPlatform, mpsc::Sender<Message>>,
    record: Record,
    health: PushHealth,
    /// Dropped with the dispatcher, which stops the credentials checks.
    _checks: watch::Sender<()>,
}

impl Dispatcher {
    /// Starts one worker per provider, with `config`'s limits and retries,
    /// and a periodic credentials check per provider.
    pub fn new(
        providers: Vec<Arc<dyn Provider>>,
        config: &PushConfig,
        store: Arc<dyn Store>,
        events: Events,
    ) -> Self {
        let record = Record { store, events };
        let health = PushHealth::new(config.breaker());
        let policy = Arc::new(RetryPolicy {
            max_attempts: config.max_attempts.max(1),
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
        });
        let (queue_size, concurrency) = (config.queue_size, config.concurrency);
        let (checks, stop) = watch::channel(());
        let check_every = config.credentials_check_interval;
        if !check_every.is_zero() {
            for provider in &providers {
                let check = check_credentials(provider.clone(), health.clone(), check_every);
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = check => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        }
        let queues = providers
            .into_iter()
            .map(|provider| {
                let (sender, receiver) = mpsc::channel(queue_size.max(1));
                health.watch(provider.platform());
                let worker = Worker {
                    provider: provider.clone(),
                    policy: policy.clone(),
                    record: record.clone(),
                    in_flight: Arc::new(Semaphore::new(concurrency.max(1))),
                    health: health.clone(),
                };
                tokio::spawn(worker.run(receiver));
                (provider.platform(), sender)
            })
            .collect();
        Self {
            queues,
            record,
            health,
            _checks: checks,
        }
    }

    /// What the providers' answers tell about our set-up (for `/healthz`).
    pub fn health(&self) -> &PushHealth {
        &self.health
    }

    /// Queues `message` without waiting for the provider. Without a provider
    /// for its platform, or with a full queue, the delivery is recorded as
    /// failed; the device can still answer through the pull path.
    pub async fn dispatch(&self, message: Message) {
        let reason = match self.queues.get(&message.platform) {
            None => "not_configured",
            Some(queue) => match queue.try_send(message) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(m)) => {
                    return self.refuse(m, "queue_full").await;
                }
                Err(mpsc::error::TrySendError::Closed(m)) => {
                    return self.refuse(m, "shutting_down").await;
                }
            },
        };
        self.refuse(message, reason).await
    }

    async fn refuse(&self, message: Message, reason: &str) {
        if reason != "not_configured" {
            tracing::warn!(challenge_id = %message.challenge_id, reason, "push not queued");
        }
        self.record
            .save(&message, DeliveryState::Failed, 0, "", reason)
            .await;
        metrics::push_sent(message.platform.as_str(), "failed", Duration::ZERO);
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        for platform in self.queues.keys() {
            metrics::set_push_queue_depth(platform.as_str(), 0);
        }
    }
}

/// Checks `provider`'s credentials now and then every `every`, reporting to
/// `health`.
async fn check_credentials(provider: Arc<dyn Provider>, health: PushHealth, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let result = provider.check_credentials().await;
        health.credentials_checked(provider.platform(), result);
    }
}

/// Delivers one provider's queue.
struct Worker {
    provider: Arc<dyn Provider>,
    policy: Arc<RetryPolicy>,
    record: Record,
    in_flight: Arc<Semaphore>,
    health: PushHealth,
}

impl Worker {
    async fn run(self, mut queue: mpsc::Receiver<Message>) {
        let provider = self.provider.platform().as_str();
        let worker = Arc::new(self);
        loop {
            metrics::set_push_queue_depth(provider, queue.len());
            let Some(message) = queue.recv().await else {
                return;
            };
            metrics::set_push_queue_depth(provider, queue.len());
            // Waiting here lets the queue fill: that is the bound.
            let Ok(permit) = worker.in_flight.clone().acquire_owned().await else {
                return;
            };
            let worker = worker.clone();
            tokio::spawn(async move {
                worker.deliver(message).await;
                drop(permit);
            });
        }
    }

    async fn deliver(&self, message: Message) {
        let platform = self.provider.platform();
        let provider = platform.as_str();
        let since_creation =
            || Duration::from_millis((now_ms() - message.created_at).max(0) as u64);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (reason, asked) = match self.provider.send(&message).await {
                Outcome::Sent {
                    provider_message_id,
                } => {
                    self.health.answered(platform, true, now_ms());
                    tracing::info!(challenge_id = %message.challenge_id, device_id = %message.device_id,
                        provider, attempts, "push accepted");
                    metrics::push_sent(provider, "accepted", since_creation());
                    let id = &provider_message_id;
                    return self
                        .record
                        .save(&message, DeliveryState::Sent, attempts, id, "")
                        .await;
                }
                Outcome::TokenInvalid { reason } => {
                    self.health.answered(platform, false, now_ms());
                    return self.forget(&message, attempts, &reason).await;
                }
                Outcome::TokenRejected { reason } => {
                    return match self.health.bad_token(platform, now_ms()) {
                        BadTokenVerdict::Forget => self.forget(&message, attempts, &reason).await,
                        BadTokenVerdict::Keep(why) => self.give_up(&message, attempts, &why).await,
                    };
                }
                Outcome::Misconfigured { reason } => {
                    self.health.misconfigured(platform, &reason, now_ms());
                    return self.give_up(&message, attempts, &reason).await;
                }
                Outcome::Failed { reason } => {
                    self.health.answered(platform, false, now_ms());
                    return self.give_up(&message, attempts, &reason).await;
                }
                Outcome::Retry { reason, after } => (reason, after),
            };
            let wait = self
                .policy
                .backoff(attempts, asked, rand::thread_rng().gen());
            if attempts >= self.policy.max_attempts {
                return self.give_up(&message, attempts, &reason).await;
            }
            if now_ms() + wait.as_millis() as i64 >= message.expires_at {
                let reason = format!("{reason}; the challenge expires before another attempt");
                return self.give_up(&message, attempts, &reason).await;
            }
            tracing::info!(challenge_id = %message.challenge_id, device_id = %message.device_id,
                provider, attempts, reason, ?wait, "push refused for now; retrying");
            metrics::push_retry(provider);
            self.record
                .save(&message, DeliveryState::Retrying, attempts, "", &reason)
                .await;
            tokio::time::sleep(wait).await;
            if !self.record.still_pending(&message.challenge_id).await {
                let reason = "the challenge ended before delivery";
                return self.give_up(&message, attempts, reason).await;
            }
        }
    }

    /// The provider called the token dead: it is forgotten.
    async fn forget(&self, message: &Message, attempts: u32, reason: &str) {
        let provider = self.provider.platform().as_str();
        tracing::warn!(challenge_id = %message.challenge_id, device_id = %message.device_id,
            provider, reason, "push token invalid");
        let since_creation = Duration::from_millis((now_ms() - message.created_at).max(0) as u64);
        metrics::push_sent(provider, "token_invalid", since_creation);
        self.record.forget_token(message, reason).await;
        self.record
            .save(message, DeliveryState::TokenInvalid, attempts, "", reason)
            .await;
    }

    async fn give_up(&self, message: &Message, attempts: u32, reason: &str) {
        let provider = self.provider.platform().as_str();
        tracing::warn!(challenge_id = %message.challenge_id, device_id = %message.device_id,
            provider, attempts, reason, "push failed");
        metrics::push_sent(provider, "failed", Duration::ZERO);
        self.record
            .save(message, DeliveryState::Failed, attempts, "", reason)
            .await;
    }
}

/// Stores delivery states and tells the challenge's watchers.
#[derive(Clone)]
struct Record {
    store: Arc<dyn Store>,
    events: Events,
}

impl Record {
    async fn save(
        &self,
        message: &Message,
        state: DeliveryState,
        attempts: u32,
        provider_message_id: &str,
        reason: &str,
    ) {
        let delivery = PushDelivery {
            challenge_id: message.challenge_id.clone(),
            device_id: message.device_id.clone(),
            push_platform: message.platform,
            state,
            attempts,
            provider_message_id: provider_message_id.to_owned(),
            reason: reason.to_owned(),
            updated_at: now_ms(),
        };
        if let Err(error) = self.store.save_delivery(&delivery).await {
            tracing::error!(%error, challenge_id = %message.challenge_id, "could not store a push delivery");
            return;
        }
        self.events
            .publish(Change::Challenge(message.challenge_id.clone()));
    }

    /// Stops using a dead push token (unless the app replaced it meanwhile).
    async fn forget_token(&self, message: &Message, reason: &str) {
        match self
            .store
            .invalidate_push_token(&message.device_id, &message.token, reason, now_ms())
            .await
        {
            Ok(true) => {
                metrics::push_token_invalid(message.platform.as_str());
                let event = AuditEvent {
                    at: now_ms(),
                    tenant_id: Some(message.tenant_id.clone()),
                    user_id: Some(message.user_id.clone()),
                    event_type: "device.push_token_invalid".into(),
                    device_id: Some(message.device_id.clone()),
                    challenge_id: Some(message.challenge_id.clone()),
                    detail: reason.to_owned(),
                    ..Default::default()
                };
                if let Err(error) = self.store.append_audit(&event).await {
                    tracing::error!(%error, "could not store audit event");
                }
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, device_id = %message.device_id, "could not forget a push token")
            }
        }
    }

    async fn still_pending(&self, challenge_id: &str) -> bool {
        match self.store.get_challenge(challenge_id).await {
            Ok(Some(c)) => c.state == ChallengeState::Pending && c.expires_at > now_ms(),
            Ok(None) => false,
            // Unknown: try; the provider's answer is still worth having.
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_honours_the_provider() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(policy.backoff(1, None, 0.0)), 50);
        assert_eq!(ms(policy.backoff(1, None, 1.0)), 100);
        assert_eq!(ms(policy.backoff(2, None, 1.0)), 200);
        assert_eq!(ms(policy.backoff(3, None, 0.5)), 300);
        assert_eq!(ms(policy.backoff(10, None, 1.0)), 1000);
        assert_eq!(ms(policy.backoff(40, None, 1.0)), 1000, "no overflow");
        let asked = Some(Duration::from_secs(3));
        assert_eq!(ms(policy.backoff(1, asked, 1.0)), 3000);
    }
}
