//! What the dispatcher has learnt about each provider's set-up, so that a
//! mistake on our side never costs the users their push tokens.
//!
//! A provider's answers fall into kinds: the token is dead (forget it), the
//! request was bad (keep it), or we are misconfigured: a wrong APNs topic or
//! environment, a wrong FCM sender or project, credentials the provider
//! refuses. A misconfiguration marks the provider unhealthy (`/healthz`
//! detail, `mfa_push_provider_misconfigured`) until it accepts a
//! notification again, and keeps every token.
//!
//! APNs answers `BadDeviceToken` both for a token that is broken and for a
//! sandbox token sent to the production service (or the reverse): a wrong
//! `environment` would make every iPhone look broken. So a `BadDeviceToken`
//! forgets the token only while the provider is known to be healthy: at
//! least `min_answers` answers within `window`, fewer than `threshold` of
//! them `BadDeviceToken`. A larger share trips the breaker: tokens are kept,
//! the provider is reported misconfigured, and the alert fires.

use crate::{model::PushPlatform, telemetry::metrics};
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

/// When `BadDeviceToken` answers stop being believed.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// How far back answers count.
    pub window: Duration,
    /// Answers needed within the window before any token is forgotten for
    /// `BadDeviceToken`.
    pub min_answers: usize,
    /// Share of `BadDeviceToken` among them (0 to 1) that trips the breaker.
    pub threshold: f64,
}

/// A provider's state, as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderReport {
    pub platform: PushPlatform,
    /// Why the provider is misconfigured, if it is.
    pub misconfigured: Option<String>,
    /// The last credentials check: `None` before the first, else why they
    /// failed, if they did.
    pub credentials: Option<Result<(), String>>,
}

/// The providers' health, shared by the dispatcher's workers and `/healthz`.
#[derive(Debug, Clone)]
pub struct PushHealth {
    settings: BreakerSettings,
    providers: Arc<Mutex<HashMap<PushPlatform, State>>>,
}

#[derive(Debug, Default)]
struct State {
    /// The last misconfiguration reported, until the next acceptance.
    misconfigured: Option<String>,
    /// Answers within the window: when (ms), and whether `BadDeviceToken`.
    answers: VecDeque<(i64, bool)>,
    breaker_open: bool,
    /// The last credentials check, once there has been one.
    credentials: Option<Result<(), String>>,
}

impl State {
    fn bad_token_share(&self) -> (usize, usize) {
        let bad = self.answers.iter().filter(|(_, bad)| *bad).count();
        (bad, self.answers.len())
    }
}

/// What to do with a token the provider called malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadTokenVerdict {
    /// The provider is healthy: the token is dead.
    Forget,
    /// Kept, for the reason given (recorded as the delivery's reason).
    Keep(String),
}

impl PushHealth {
    /// Health with these breaker settings.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            providers: Arc::default(),
        }
    }

    /// Starts reporting `platform` (as healthy until it answers otherwise).
    pub fn watch(&self, platform: PushPlatform) {
        self.lock().entry(platform).or_default();
        metrics::set_push_misconfigured(platform.as_str(), false);
        metrics::set_push_bad_token_breaker(platform.as_str(), false);
    }

    /// An answer that says nothing about the token's or our set-up's health
    /// on its own (accepted, dead token, bad request) at `now_ms`; an
    /// acceptance also ends a misconfiguration.
    pub fn answered(&self, platform: PushPlatform, accepted: bool, now_ms: i64) {
        let mut providers = self.lock();
        let state = providers.entry(platform).or_default();
        if accepted && state.misconfigured.take().is_some() {
            tracing::info!(
                provider = platform.as_str(),
                "push provider accepts notifications again"
            );
            metrics::set_push_misconfigured(platform.as_str(), false);
        }
        self.count(platform, state, false, now_ms);
    }

    /// A misconfiguration: reported until the provider accepts again.
    pub fn misconfigured(&self, platform: PushPlatform, reason: &str, now_ms: i64) {
        let mut providers = self.lock();
        let state = providers.entry(platform).or_default();
        if state.misconfigured.as_deref() != Some(reason) {
            tracing::error!(
                provider = platform.as_str(),
                reason,
                "push provider misconfigured: push tokens are kept; fix the push settings"
            );
        }
        state.misconfigured = Some(reason.to_owned());
        metrics::set_push_misconfigured(platform.as_str(), true);
        self.count(platform, state, false, now_ms);
    }

    /// A `BadDeviceToken` answer at `now_ms`: forget the token, or keep it.
    pub fn bad_token(&self, platform: PushPlatform, now_ms: i64) -> BadTokenVerdict {
        let mut providers = self.lock();
        let state = providers.entry(platform).or_default();
        self.count(platform, state, true, now_ms);
        let (bad, answers) = state.bad_token_share();
        if state.breaker_open {
            BadTokenVerdict::Keep(format!(
                "BadDeviceToken (kept: {bad} of the last {answers} answers were BadDeviceToken, \
                 which suggests a wrong environment rather than dead tokens)"
            ))
        } else if answers < self.settings.min_answers {
            BadTokenVerdict::Keep(format!(
                "BadDeviceToken (kept: too few answers yet, {answers} of {}, to tell a dead \
                 token from a wrong environment)",
                self.settings.min_answers
            ))
        } else {
            BadTokenVerdict::Forget
        }
    }

    /// The result of a credentials check.
    pub fn credentials_checked(&self, platform: PushPlatform, result: Result<(), String>) {
        let mut providers = self.lock();
        let state = providers.entry(platform).or_default();
        let provider = platform.as_str();
        match &result {
            Ok(()) if state.credentials.as_ref().is_some_and(Result::is_err) => {
                tracing::info!(provider, "push credentials accepted again")
            }
            Err(reason) if state.credentials.as_ref() != Some(&result) => {
                tracing::error!(provider, reason, "push credentials check failed")
            }
            _ => {}
        }
        metrics::set_push_credentials_ok(provider, result.is_ok());
        state.credentials = Some(result);
    }

    /// Every provider's state, for `/healthz`.
    pub fn report(&self) -> Vec<ProviderReport> {
        let providers = self.lock();
        let mut report: Vec<ProviderReport> = providers
            .iter()
            .map(|(platform, state)| ProviderReport {
                platform: *platform,
                misconfigured: state.misconfigured.clone(),
                credentials: state.credentials.clone(),
            })
            .collect();
        report.sort_by_key(|r| r.platform.as_str());
        report
    }

    /// Adds an answer, drops those out of the window, and opens or closes
    /// the breaker.
    fn count(&self, platform: PushPlatform, state: &mut State, bad: bool, now_ms: i64) {
        let window = self.settings.window.as_millis() as i64;
        state.answers.push_back((now_ms, bad));
        while state
            .answers
            .front()
            .is_some_and(|(at, _)| *at <= now_ms - window)
        {
            state.answers.pop_front();
        }
        let (bad, answers) = state.bad_token_share();
        let open = answers >= self.settings.min_answers
            && bad as f64 >= self.settings.threshold * answers as f64;
        if open != state.breaker_open {
            state.breaker_open = open;
            metrics::set_push_bad_token_breaker(platform.as_str(), open);
            let provider = platform.as_str();
            if open {
                let reason = format!(
                    "{bad} of the last {answers} answers were BadDeviceToken: check the APNs \
                     environment (sandbox or production) against the app's build"
                );
                tracing::error!(provider, %reason, "push tokens are no longer forgotten for BadDeviceToken");
                state.misconfigured = Some(reason);
                metrics::set_push_misconfigured(provider, true);
            } else {
                tracing::info!(provider, "BadDeviceToken answers are rare again");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PushPlatform, State>> {
        self.providers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APNS: PushPlatform = PushPlatform::Apns;

    fn health() -> PushHealth {
        PushHealth::new(BreakerSettings {
            window: Duration::from_secs(60),
            min_answers: 4,
            threshold: 0.5,
        })
    }

    #[test]
    fn bad_tokens_are_forgotten_only_once_the_provider_is_known_healthy() {
        let health = health();
        assert!(matches!(
            health.bad_token(APNS, 0),
            BadTokenVerdict::Keep(_)
        ));
        for at in 1..=6 {
            health.answered(APNS, true, at);
        }
        assert_eq!(health.bad_token(APNS, 7), BadTokenVerdict::Forget);
    }

    #[test]
    fn a_burst_of_bad_tokens_trips_the_breaker_until_it_ages_out() {
        let health = health();
        for at in 0..4 {
            health.answered(APNS, true, at);
        }
        // 1 of 5, 2 of 6, 3 of 7: dead tokens; 4 of 8 trips the breaker.
        for at in 10..13 {
            assert_eq!(health.bad_token(APNS, at), BadTokenVerdict::Forget);
        }
        let kept = health.bad_token(APNS, 13);
        assert!(
            matches!(&kept, BadTokenVerdict::Keep(why) if why.contains("environment")),
            "{kept:?}"
        );
        assert!(health.report()[0].misconfigured.is_some());
        // A minute later the burst is out of the window; acceptances close
        // the breaker and end the misconfiguration.
        for at in 70_000..70_004 {
            health.answered(APNS, true, at);
        }
        assert_eq!(health.report()[0].misconfigured, None);
        assert_eq!(health.bad_token(APNS, 70_005), BadTokenVerdict::Forget);
    }

    #[test]
    fn a_misconfiguration_lasts_until_the_provider_accepts_again() {
        let health = health();
        health.misconfigured(APNS, "DeviceTokenNotForTopic", 0);
        health.answered(APNS, false, 1);
        assert_eq!(
            health.report()[0].misconfigured.as_deref(),
            Some("DeviceTokenNotForTopic")
        );
        health.answered(APNS, true, 2);
        assert_eq!(health.report()[0].misconfigured, None);
    }
}
