//! The service's metrics, recorded through the `metrics` facade into one
//! process-wide Prometheus recorder. Labels carry only bounded, non-personal
//! values: tenant ids, outcomes, providers, method and operation names.

use crate::model::{Challenge, ChallengeKind, ChallengeState, DenyReason, UserVerification};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{sync::OnceLock, time::Duration};

/// Buckets for work the server does itself: 100 µs to 1 s.
const SERVER_WORK: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Buckets for a person answering on the phone: 0.5 s to 5 min.
const HUMAN_ANSWER: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0,
];
/// Buckets for a push provider accepting a notification: 5 ms to 30 s.
const PUSH_ACCEPT: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the process-wide recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(SERVER_WORK)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("mfa_challenge_answer_seconds".into()),
                        HUMAN_ANSWER,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("mfa_push_accept_seconds".into()),
                        PUSH_ACCEPT,
                    )
                })
                .expect("static buckets are valid");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            spawn_upkeep(handle.clone());
            // Another recorder may already be installed (e.g. by an embedding
            // program); ours then renders only what is recorded through it.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            metrics::gauge!("mfa_build_info", "version" => crate::VERSION).set(1.0);
            handle
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds histogram samples into buckets at [`UPKEEP_INTERVAL`] on a thread
/// of its own. The recorder keeps every sample until upkeep runs; a scrape
/// runs it too, but without one (no Prometheus) memory would grow with every
/// request (`make soak` showed it).
fn spawn_upkeep(handle: PrometheusHandle) {
    let upkeep = move || loop {
        std::thread::sleep(UPKEEP_INTERVAL);
        handle.run_upkeep();
    };
    if let Err(error) = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(upkeep)
    {
        tracing::warn!(%error, "could not start the metrics upkeep thread");
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "mfa_build_info",
        "Always 1; the version label is the running mfa-server's version"
    );
    describe_counter!(
        "mfa_grpc_requests_total",
        "API calls by service, method, status code and transport (grpc, or http for the HTTP/JSON face)"
    );
    describe_histogram!(
        "mfa_grpc_request_duration_seconds",
        Unit::Seconds,
        "API call latency (to response headers) by service, method and transport"
    );
    describe_counter!("mfa_challenges_created_total", "Sign-in challenges created");
    describe_counter!("mfa_challenges_ended_total", "Challenges ended, by outcome");
    describe_counter!(
        "mfa_approvals_total",
        "Approved challenges, by how the person unlocked (user_verification)"
    );
    describe_histogram!(
        "mfa_challenge_answer_seconds",
        Unit::Seconds,
        "Time from challenge creation to the person's answer"
    );
    describe_histogram!(
        "mfa_push_accept_seconds",
        Unit::Seconds,
        "Time from challenge creation to the push provider accepting the notification"
    );
    describe_counter!(
        "mfa_push_sends_total",
        "Push notifications by provider and outcome"
    );
    describe_counter!("mfa_push_retries_total", "Push delivery retries");
    describe_counter!(
        "mfa_push_invalid_tokens_total",
        "Push tokens the provider reported invalid"
    );
    describe_gauge!(
        "mfa_push_queue_depth",
        "Notifications waiting to be delivered"
    );
    describe_gauge!(
        "mfa_push_provider_misconfigured",
        "1 while a push provider refuses our set-up (topic, environment, sender, credentials); push tokens are kept meanwhile"
    );
    describe_gauge!(
        "mfa_push_bad_token_breaker_open",
        "1 while BadDeviceToken answers are too frequent to be believed (a wrong APNs environment): tokens are kept"
    );
    describe_gauge!(
        "mfa_push_credentials_ok",
        "1 while a push provider's credentials pass their periodic check (FCM: a token grant; APNs: the key parses and signs), 0 once one fails"
    );
    describe_gauge!(
        "mfa_devices_without_push",
        "Active devices that cannot be notified, by tenant, platform and status (token_invalid: the provider called the token dead; no_token: never had one); they answer by pulling"
    );
    describe_counter!(
        "mfa_enrollments_total",
        "Enrollment steps and endings, by outcome"
    );
    describe_histogram!(
        "mfa_store_operation_seconds",
        Unit::Seconds,
        "Store operation latency"
    );
    describe_gauge!("mfa_challenges_pending", "Challenges waiting for an answer");
    describe_gauge!(
        "mfa_health_serving",
        "1 while the service is serving, 0 otherwise"
    );
    describe_counter!("mfa_auth_failures_total", "Failed authentications by kind");
    describe_counter!(
        "mfa_offline_codes_total",
        "Offline codes checked, by outcome (accepted, invalid, used, throttled, disabled, not_set_up)"
    );
    describe_counter!(
        "mfa_throttled_total",
        "Calls refused (RESOURCE_EXHAUSTED) or idle connections closed by a limit, by limit"
    );
}

/// The outcome label of an ended challenge.
pub fn outcome(challenge: &Challenge) -> &'static str {
    match (challenge.state, challenge.deny_reason) {
        (ChallengeState::Denied, Some(DenyReason::WrongNumber)) => "wrong_number",
        (ChallengeState::Denied, Some(DenyReason::FraudReported)) => "fraud",
        (ChallengeState::Denied, Some(DenyReason::UserVerificationRequired)) => {
            "user_verification_required"
        }
        (state, _) => state.as_str(),
    }
}

/// A sign-in challenge was created.
pub fn challenge_created(tenant_id: &str) {
    metrics::counter!("mfa_challenges_created_total", "tenant" => tenant_id.to_owned())
        .increment(1);
}

/// A challenge ended: sign-ins count by outcome (answered ones also record
/// the time to answer), enrollment verification rounds as enrollment outcomes.
pub fn challenge_ended(challenge: &Challenge) {
    let outcome = outcome(challenge);
    if challenge.kind == ChallengeKind::EnrollmentVerification {
        let ending = match challenge.state {
            ChallengeState::Approved => "verified",
            ChallengeState::Denied => "failed",
            ChallengeState::Expired => "expired",
            ChallengeState::Pending | ChallengeState::Superseded | ChallengeState::Cancelled => {
                "cancelled"
            }
        };
        enrollment(&challenge.tenant_id, ending);
        return;
    }
    let tenant = challenge.tenant_id.clone();
    metrics::counter!("mfa_challenges_ended_total", "tenant" => tenant.clone(), "outcome" => outcome).increment(1);
    if let (Some(_), Some(ended)) = (&challenge.answered_by, challenge.ended_at) {
        let seconds = (ended - challenge.created_at).max(0) as f64 / 1000.0;
        metrics::histogram!("mfa_challenge_answer_seconds", "tenant" => tenant, "outcome" => outcome).record(seconds);
    }
}

/// A sign-in approved after `verification`; enrollment verification rounds
/// count as enrollments (as in [`challenge_ended`]).
pub fn approval(challenge: &Challenge, verification: UserVerification) {
    if challenge.kind != ChallengeKind::SignIn {
        return;
    }
    metrics::counter!(
        "mfa_approvals_total",
        "tenant" => challenge.tenant_id.clone(),
        "user_verification" => verification.as_str()
    )
    .increment(1);
}

/// Sign-in challenges cancelled by an administrator's reset.
pub fn challenges_cancelled(tenant_id: &str, count: u32) {
    metrics::counter!("mfa_challenges_ended_total", "tenant" => tenant_id.to_owned(), "outcome" => "cancelled")
        .increment(u64::from(count));
}

/// An enrollment step or ending: `started`, `registered`, `verified`,
/// `failed`, `expired` or `cancelled`.
pub fn enrollment(tenant_id: &str, outcome: &'static str) {
    metrics::counter!("mfa_enrollments_total", "tenant" => tenant_id.to_owned(), "outcome" => outcome).increment(1);
}

/// A push ended `accepted` (by the provider, `since_creation` after the
/// challenge was created), `failed` or `token_invalid`.
pub fn push_sent(provider: &'static str, outcome: &'static str, since_creation: Duration) {
    metrics::counter!("mfa_push_sends_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
    if outcome == "accepted" {
        metrics::histogram!("mfa_push_accept_seconds", "provider" => provider)
            .record(since_creation.as_secs_f64());
    }
}

/// A failed authentication of this kind.
pub fn auth_failure(kind: &'static str) {
    metrics::counter!("mfa_auth_failures_total", "kind" => kind).increment(1);
}

/// A call refused by a limit: `activation`, `device_signature`,
/// `offline_code`, `challenges`, `watch_streams` or `connection_streams`; or a connection
/// closed by one: `idle_connection`.
pub fn throttled(limit: &'static str) {
    metrics::counter!("mfa_throttled_total", "limit" => limit).increment(1);
}

/// An offline code was checked: `accepted`, `invalid`, `used`,
/// `throttled`, `disabled` or `not_set_up`.
pub fn offline_code(tenant_id: &str, outcome: &'static str) {
    metrics::counter!("mfa_offline_codes_total", "tenant" => tenant_id.to_owned(), "outcome" => outcome).increment(1);
}

/// How long a store operation took.
pub fn store_operation(operation: &'static str, took: Duration) {
    metrics::histogram!("mfa_store_operation_seconds", "operation" => operation)
        .record(took.as_secs_f64());
}

/// Pending challenges right now.
pub fn set_pending(count: i64) {
    metrics::gauge!("mfa_challenges_pending").set(count as f64);
}

/// Whether the service is serving.
pub fn set_serving(serving: bool) {
    metrics::gauge!("mfa_health_serving").set(if serving { 1.0 } else { 0.0 });
}

/// A push attempt is retried.
pub fn push_retry(provider: &'static str) {
    metrics::counter!("mfa_push_retries_total", "provider" => provider).increment(1);
}

/// A provider called a device's push token dead.
pub fn push_token_invalid(provider: &'static str) {
    metrics::counter!("mfa_push_invalid_tokens_total", "provider" => provider).increment(1);
}

/// Whether a provider refuses our set-up.
pub fn set_push_misconfigured(provider: &'static str, misconfigured: bool) {
    metrics::gauge!("mfa_push_provider_misconfigured", "provider" => provider)
        .set(f64::from(u8::from(misconfigured)));
}

/// Whether `BadDeviceToken` answers are being disbelieved.
pub fn set_push_bad_token_breaker(provider: &'static str, open: bool) {
    metrics::gauge!("mfa_push_bad_token_breaker_open", "provider" => provider)
        .set(f64::from(u8::from(open)));
}

/// Whether a provider's credentials passed their last check.
pub fn set_push_credentials_ok(provider: &'static str, ok: bool) {
    metrics::gauge!("mfa_push_credentials_ok", "provider" => provider).set(f64::from(u8::from(ok)));
}

/// The devices without working push, as counted now: each count is set, and
/// a count seen before but absent now is set to zero.
pub fn set_devices_without_push(counts: &[crate::model::UnreachableDevices]) {
    type Labels = (String, &'static str, &'static str);
    static SEEN: std::sync::Mutex<Vec<Labels>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now: Vec<Labels> = counts
        .iter()
        .map(|c| (c.tenant_id.clone(), c.platform.as_str(), c.status))
        .collect();
    for (tenant, platform, status) in seen.iter().filter(|l| !now.contains(l)) {
        metrics::gauge!("mfa_devices_without_push", "tenant" => tenant.clone(),
            "platform" => *platform, "status" => *status)
        .set(0.0);
    }
    for count in counts {
        metrics::gauge!("mfa_devices_without_push", "tenant" => count.tenant_id.clone(),
            "platform" => count.platform.as_str(), "status" => count.status)
        .set(count.count as f64);
    }
    *seen = now;
}

/// Notifications waiting in a provider's queue.
pub fn set_push_queue_depth(provider: &'static str, depth: usize) {
    metrics::gauge!("mfa_push_queue_depth", "provider" => provider).set(depth as f64);
}

/// Counts one API call of `service`'s `method` that ended with `code` and
/// took `took`, with the transport it came through (`grpc` or `http`): the
/// HTTP/JSON face counts its calls under the same names as gRPC's.
pub fn api_call(
    transport: &'static str,
    service: String,
    method: String,
    code: tonic::Code,
    took: Duration,
) {
    let code = match code {
        tonic::Code::Ok => "OK".to_owned(),
        other => format!("{other:?}"),
    };
    metrics::counter!(
        "mfa_grpc_requests_total",
        "service" => service.clone(),
        "method" => method.clone(),
        "code" => code,
        "transport" => transport
    )
    .increment(1);
    metrics::histogram!(
        "mfa_grpc_request_duration_seconds",
        "service" => service,
        "method" => method,
        "transport" => transport
    )
    .record(took.as_secs_f64());
}
