//! Offline codes (RFC 6238) over gRPC: the phone computes the code with the
//! SDK from its secret and the clock, the portal sends what the person
//! typed, and the server accepts each time step at most once per device.

use mfa_proto::{
    offline_code::{self as totp, time_step, TIME_STEP_SECONDS},
    v1::{
        GetTenantSettingsRequest, ListDevicesRequest, RevokeDeviceRequest, SignInContext,
        UpdateTenantSettingsRequest,
    },
};
use mfa_sdk::{portal::RelyingParty, reason, Authenticator, Error};
use mfa_server::domain::{OfflineCodeAttempt, Reason};
use mfa_tests::{
    scrape::{scrape, value},
    *,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Code;

const STEP_MS: i64 = TIME_STEP_SECONDS * 1000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The current time step, once at least eight seconds of it remain (else
/// after waiting for the next one to begin), so that the checks that follow
/// all fall within it.
async fn fresh_step() -> i64 {
    let left = STEP_MS - now_ms() % STEP_MS;
    if left < 8_000 {
        tokio::time::sleep(Duration::from_millis(left as u64 + 20)).await;
    }
    time_step(now_ms())
}

/// The phone's code for time step `step`, from its saved secret, as the
/// SDK shows it at that time.
fn code(phone: &Authenticator, step: i64) -> String {
    phone
        .account()
        .offline_code_at(step * STEP_MS)
        .expect("the phone has offline codes")
        .code
}

/// Six digits that are none of the phone's codes from two steps before now
/// to two after (so still wrong if the step turns meanwhile).
fn wrong_codes(phone: &Authenticator, count: usize) -> Vec<String> {
    let step = time_step(now_ms());
    let right: Vec<String> = (step - 2..=step + 2).map(|s| code(phone, s)).collect();
    (0..)
        .map(|n| format!("{:06}", n * 7919 % 1_000_000))
        .filter(|c| !right.contains(c))
        .take(count)
        .collect()
}

/// The reason and gRPC code of a refusal.
fn refusal(error: Error) -> (String, Option<Code>) {
    (error.reason().unwrap_or_default().to_owned(), error.code())
}

async fn verify(portal: &RelyingParty, user: &str, code: &str) -> Result<String, Error> {
    portal
        .verify_offline_code(user, code, "")
        .await
        .map(|r| r.device_id)
}

async fn offline_codes(server: &TestServer, outcome: &str) -> f64 {
    value(
        &scrape(server).await,
        "mfa_offline_codes_total",
        &[("tenant", &server.tenant.id), ("outcome", outcome)],
    )
}

#[tokio::test]
async fn a_code_signs_in_once_per_time_step() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let phone = server.enroll(&portal, "aiko", "aiko@example.jp").await;
    assert!(phone.account().has_offline_codes());
    let device = phone.account().device_id.clone();

    let step = fresh_step().await;
    let now = phone.account().offline_code().unwrap().code;
    assert_eq!(now, code(&phone, step), "the SDK's code now is the step's");
    assert_eq!(verify(&portal, "aiko", &now).await.unwrap(), device);
    // The same code again: refused, as is the step before it.
    for used in [now.clone(), code(&phone, step - 1)] {
        let error = verify(&portal, "aiko", &used).await.unwrap_err();
        assert_eq!(
            refusal(error),
            (
                reason::OFFLINE_CODE_USED.to_owned(),
                Some(Code::FailedPrecondition)
            )
        );
    }
    // The next step's code still works, once.
    let next = code(&phone, step + 1);
    assert_eq!(verify(&portal, "aiko", &next).await.unwrap(), device);
    assert!(verify(&portal, "aiko", &next).await.is_err());

    assert_eq!(offline_codes(&server, "accepted").await, 2.0);
    assert_eq!(offline_codes(&server, "used").await, 3.0);
    let events = server.audit_events("aiko").await;
    assert_eq!(occurrences(&events, "offline_code.accepted"), 2);
    assert_eq!(occurrences(&events, "offline_code.failed"), 3);
    for event in events
        .iter()
        .filter(|e| e.event_type.starts_with("offline_code."))
    {
        let text = format!("{event:?}");
        assert!(!text.contains(&now) && !text.contains(&next), "{text}");
    }
    let accepted = events
        .iter()
        .find(|e| e.event_type == "offline_code.accepted")
        .unwrap();
    assert_eq!(accepted.device_id, device);
}

/// Over gRPC at the real clock: one step either side is accepted, two are
/// not, and a step at or before the last one used is refused.
#[tokio::test]
async fn the_window_is_one_step_either_side() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let phone = server.enroll(&portal, "aiko", "aiko@example.jp").await;

    let step = fresh_step().await;
    for outside in [step + 2, step - 2] {
        let error = verify(&portal, "aiko", &code(&phone, outside))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(error),
            (
                reason::OFFLINE_CODE_INVALID.to_owned(),
                Some(Code::PermissionDenied)
            ),
            "step {outside} of {step}"
        );
    }
    verify(&portal, "aiko", &code(&phone, step - 1))
        .await
        .expect("the step before");
    verify(&portal, "aiko", &code(&phone, step + 1))
        .await
        .expect("the step after");
    let error = verify(&portal, "aiko", &code(&phone, step))
        .await
        .unwrap_err();
    assert!(error.is_offline_code_refused(), "{error:?}");
    assert_eq!(error.reason(), Some(reason::OFFLINE_CODE_USED));
}

/// The window's edges to the millisecond, through the service's clock (the
/// real domain and store, at chosen times).
#[tokio::test]
async fn the_window_edges_to_the_millisecond() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let phone = server.enroll(&portal, "aiko", "aiko@example.jp").await;
    let service = server.service();
    let tenant = &server.tenant.id;
    let at = |code: String, now: i64| async move {
        service
            .verify_offline_code_at(
                tenant,
                &OfflineCodeAttempt {
                    user_id: "aiko",
                    code: &code,
                    client_ip: "",
                },
                now,
            )
            .await
            .map_err(|e| e.reason())
    };
    let s = time_step(now_ms()) + 10;
    let first_ms = s * STEP_MS;
    // At the first millisecond of step s: s-2 is out, s-1 is in.
    assert_eq!(
        at(code(&phone, s - 2), first_ms).await,
        Err(Reason::OfflineCodeInvalid)
    );
    assert!(at(code(&phone, s - 1), first_ms).await.is_ok());
    // At its last millisecond: s+1 is in, s+2 is out.
    let last_ms = first_ms + STEP_MS - 1;
    assert_eq!(
        at(code(&phone, s + 2), last_ms).await,
        Err(Reason::OfflineCodeInvalid)
    );
    assert!(at(code(&phone, s + 1), last_ms).await.is_ok());
    // One millisecond later s+2 is in, and s+1, used, is refused.
    assert_eq!(
        at(code(&phone, s + 1), last_ms + 1).await,
        Err(Reason::OfflineCodeUsed)
    );
    assert!(at(code(&phone, s + 2), last_ms + 1).await.is_ok());
}

#[tokio::test]
async fn guessing_hits_the_limit_and_then_even_the_right_code_is_refused() {
    let server = TestServer::start_with(|c| c.offline_code_failure_limit = 4).await;
    let portal = server.portal().await;
    let phone = server.enroll(&portal, "aiko", "aiko@example.jp").await;
    let other = server.enroll(&portal, "kenji", "kenji@example.jp").await;
    let guesser = "203.0.113.9";

    for guess in wrong_codes(&phone, 4) {
        let error = portal
            .verify_offline_code("aiko", &guess, guesser)
            .await
            .unwrap_err();
        assert_eq!(error.reason(), Some(reason::OFFLINE_CODE_INVALID));
    }
    let right = phone.account().offline_code().unwrap().code;
    let error = portal
        .verify_offline_code("aiko", &right, "198.51.100.1")
        .await
        .unwrap_err();
    assert_eq!(
        refusal(error),
        (
            reason::RATE_LIMITED.to_owned(),
            Some(Code::ResourceExhausted)
        ),
        "the user's limit holds from any address"
    );
    // The guesser's address is past its limit for every user...
    let kenji = other.account().offline_code().unwrap().code;
    let error = portal
        .verify_offline_code("kenji", &kenji, guesser)
        .await
        .unwrap_err();
    assert!(error.is_rate_limited(), "{error:?}");
    // ...while another user from elsewhere still signs in.
    portal
        .verify_offline_code("kenji", &kenji, "198.51.100.1")
        .await
        .expect("kenji signs in");
    // A push still works for the guessed user.
    let challenge = portal
        .start_sign_in("aiko", SignInContext::default())
        .await
        .unwrap();
    assert!(!challenge.number.is_empty());

    assert_eq!(offline_codes(&server, "throttled").await, 2.0);
    assert_eq!(offline_codes(&server, "invalid").await, 4.0);
    let types = server.audit_types("aiko").await;
    assert!(
        types.iter().any(|t| t == "offline_code.throttled"),
        "{types:?}"
    );
}

#[tokio::test]
async fn a_tenant_can_turn_offline_codes_off_and_on() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let phone = server.enroll(&portal, "aiko", "aiko@example.jp").await;
    let mut admin = server.admin().await;
    let settings = admin
        .get_tenant_settings(GetTenantSettingsRequest {})
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert!(settings.offline_codes_enabled, "on by default");
    let nothing = admin
        .update_tenant_settings(UpdateTenantSettingsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error_info(&nothing).reason, reason::INVALID_ARGUMENT);

    let off = admin
        .update_tenant_settings(UpdateTenantSettingsRequest {
            offline_codes_enabled: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert!(!off.offline_codes_enabled);
    assert_eq!(
        off.device_policy, settings.device_policy,
        "one setting changes, the others stay"
    );
    let right = phone.account().offline_code().unwrap().code;
    let error = verify(&portal, "aiko", &right).await.unwrap_err();
    assert_eq!(
        refusal(error),
        (
            reason::OFFLINE_CODES_DISABLED.to_owned(),
            Some(Code::FailedPrecondition)
        )
    );
    // Another tenant's setting is its own.
    let other = server.create_tenant("Other", 2).await;
    let mut other_admin = server.admin_with(&other.admin_key).await;
    let theirs = other_admin
        .get_tenant_settings(GetTenantSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.settings.unwrap().offline_codes_enabled);

    admin
        .update_tenant_settings(UpdateTenantSettingsRequest {
            offline_codes_enabled: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    verify(&portal, "aiko", &right)
        .await
        .expect("on again, the same code works: the refusal used nothing");
    let types = server.audit_types("").await;
    assert!(
        types.iter().filter(|t| *t == "tenant.updated").count() == 2,
        "{types:?}"
    );
}

#[tokio::test]
async fn wrong_users_devices_and_input_are_refused_without_counting() {
    let server = TestServer::start_with(|c| c.offline_code_failure_limit = 2).await;
    let portal = server.portal().await;
    let aiko = server.enroll(&portal, "aiko", "aiko@example.jp").await;
    let kenji = server.enroll(&portal, "kenji", "kenji@example.jp").await;
    let aiko_code = aiko.account().offline_code().unwrap().code;

    // Bad input: refused as such, and not counted (the limit is 2).
    for (code, ip) in [
        ("12345", ""),
        ("1234567", ""),
        ("12345a", ""),
        (aiko_code.as_str(), "not-an-address"),
    ] {
        let error = portal
            .verify_offline_code("aiko", code, ip)
            .await
            .unwrap_err();
        assert_eq!(
            refusal(error),
            (
                reason::INVALID_ARGUMENT.to_owned(),
                Some(Code::InvalidArgument)
            ),
            "{code:?} {ip:?}"
        );
    }
    // Nobody, and the same user id in another tenant, have no device.
    let error = verify(&portal, "nobody", &aiko_code).await.unwrap_err();
    assert_eq!(error.reason(), Some(reason::NO_ACTIVE_DEVICE));
    let other = server.create_tenant("Other", 2).await;
    let elsewhere = server.portal_with(&other.portal_key).await;
    let error = verify(&elsewhere, "aiko", &aiko_code).await.unwrap_err();
    assert_eq!(error.reason(), Some(reason::NO_ACTIVE_DEVICE));
    // Kenji's code is not Aiko's (one failure of two).
    let kenji_code = kenji.account().offline_code().unwrap().code;
    if kenji_code != aiko_code {
        let error = verify(&portal, "aiko", &kenji_code).await.unwrap_err();
        assert_eq!(error.reason(), Some(reason::OFFLINE_CODE_INVALID));
    }
    // Aiko's own code still works: nothing above reached her limit.
    verify(&portal, "aiko", &aiko_code)
        .await
        .expect("aiko signs in");

    // A revoked phone's codes are worth nothing.
    let mut admin = server.admin().await;
    admin
        .revoke_device(RevokeDeviceRequest {
            device_id: kenji.account().device_id.clone(),
        })
        .await
        .unwrap();
    let next = code(&kenji, time_step(now_ms()) + 1);
    let error = verify(&portal, "kenji", &next).await.unwrap_err();
    assert_eq!(error.reason(), Some(reason::NO_ACTIVE_DEVICE));
}

#[tokio::test]
async fn a_blocked_user_cannot_use_codes() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "aiko", "aiko@example.jp").await;
    portal
        .start_sign_in("aiko", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut phone).await;
    phone.report_fraud(&pending).await.unwrap();
    let right = phone.account().offline_code().unwrap().code;
    let error = verify(&portal, "aiko", &right).await.unwrap_err();
    assert_eq!(error.reason(), Some(reason::USER_BLOCKED));
}

/// The secret goes to the enrolling phone alone: nothing the portal or an
/// administrator reads holds it, and the database holds it only sealed.
#[tokio::test]
async fn the_secret_reaches_only_the_phone_and_is_sealed_at_rest() {
    use base64::{engine::general_purpose::STANDARD, Engine};
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let phone = server.enroll(&portal, "aiko", "aiko@example.jp").await;
    // As the key store saves it.
    let json = serde_json::to_value(phone.account()).unwrap();
    let encoded = json["offline_code_secret"]
        .as_str()
        .expect("saved")
        .to_owned();
    let secret = STANDARD.decode(&encoded).unwrap();
    assert_eq!(secret.len(), totp::SECRET_LENGTH);

    let begun = portal
        .begin_enrollment("aiko", "aiko@example.jp")
        .await
        .unwrap();
    let mut admin = server.admin().await;
    let devices = admin
        .list_devices(ListDevicesRequest {
            user_id: "aiko".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let seen_by_portal = format!(
        "{begun:?}{:?}{devices:?}{:?}",
        portal.user_status("aiko").await.unwrap(),
        server.audit_events("").await,
    );
    let hex = secret
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    for form in [&encoded, &hex, &format!("{secret:?}")[1..30]] {
        assert!(!seen_by_portal.contains(form), "{form} in {seen_by_portal}");
    }
    let dump = server.database_dump().await;
    for form in [secret.as_slice(), encoded.as_bytes(), hex.as_bytes()] {
        assert!(
            !dump.windows(form.len()).any(|w| w == form),
            "the database holds the secret in the clear"
        );
    }
}

/// A server without a key gives no secret and refuses codes; a replica with
/// a key sees that the phone has none.
#[tokio::test]
async fn without_a_key_there_are_no_codes() {
    let server = TestServer::start_with(|c| c.offline_code_key_file = None).await;
    let portal = server.portal().await;
    let phone = server.enroll(&portal, "aiko", "aiko@example.jp").await;
    assert!(!phone.account().has_offline_codes());
    let error = verify(&portal, "aiko", "123456").await.unwrap_err();
    assert_eq!(error.reason(), Some(reason::OFFLINE_CODES_DISABLED));

    let key = server.dir().join("offline-code.key");
    let replica = server
        .replica(|c| c.offline_code_key_file = Some(key))
        .await;
    let error = verify(&replica.portal().await, "aiko", "123456")
        .await
        .unwrap_err();
    assert!(error.is_offline_code_unavailable(), "{error:?}");
    assert_eq!(error.reason(), Some(reason::OFFLINE_CODE_NOT_SET_UP));
}

/// The last step used is in the shared store: a code accepted by one
/// replica is refused by the other.
#[tokio::test]
async fn a_code_used_on_one_replica_is_refused_on_another() {
    let server = TestServer::start().await;
    let replica = server.replica(|_| {}).await;
    let portal = server.portal().await;
    let phone = server.enroll(&portal, "aiko", "aiko@example.jp").await;
    let step = fresh_step().await;
    let now = code(&phone, step);
    verify(&portal, "aiko", &now).await.expect("accepted once");
    let error = verify(&replica.portal().await, "aiko", &now)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), Some(reason::OFFLINE_CODE_USED));
}
