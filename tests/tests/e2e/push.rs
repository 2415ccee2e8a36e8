//! Push delivery to the APNs and FCM stand-ins over HTTP/2: request shape and
//! authentication, payload privacy, provider token reuse, retries, timeouts,
//! dead tokens, bad credentials, and a dead provider.

use mfa_proto::v1::{
    ChallengeState, PushDelivery, PushDeliveryState, PushPlatform, PushStatus, SignInContext,
};
use mfa_sdk::{portal::RelyingParty, Authenticator, DeviceInfo};
use mfa_tests::{push::*, tcp_proxy::TcpProxy, *};
use std::time::Duration;

const APNS_TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const FCM_TOKEN: &str = "fcm-registration-token-1:APA91bExample";

pub(crate) fn context() -> SignInContext {
    SignInContext {
        application_name: "Customer portal".into(),
        client_ip: "203.0.113.7".into(),
        location: "Tokyo, JP".into(),
        message: String::new(),
    }
}

/// Enrolls user "u"'s iPhone (APNs) or Android phone (FCM).
pub(crate) async fn enroll(
    server: &TestServer,
    portal: &RelyingParty,
    platform: PushPlatform,
) -> Authenticator {
    enroll_phone(
        portal,
        "u",
        "u@example.jp",
        phone(platform),
        &server.connect,
    )
    .await
}

/// Enrolls user "u"'s phone as [`enroll`] does, through the portal of a
/// server in another process.
pub(crate) async fn enroll_on(portal: &RelyingParty, platform: PushPlatform) -> Authenticator {
    let connect = mfa_sdk::ConnectOptions::default();
    enroll_phone(portal, "u", "u@example.jp", phone(platform), &connect).await
}

/// User "u"'s iPhone (APNs) or Android phone (FCM).
fn phone(platform: PushPlatform) -> DeviceInfo {
    let (name, token) = match platform {
        PushPlatform::Apns => ("iPhone", APNS_TOKEN),
        _ => ("Pixel", FCM_TOKEN),
    };
    DeviceInfo {
        name: name.into(),
        push_platform: platform,
        push_token: token.into(),
    }
}

/// A server pointed at fresh stand-ins, with `adjust` applied to its config.
async fn start(
    adjust: impl FnOnce(&mut mfa_server::Config),
) -> (TestServer, PushStandIns, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let stand_ins = PushStandIns::start(dir.path()).await;
    let config = stand_ins.config.clone();
    let server = TestServer::start_with(|c| {
        c.push = config;
        adjust(c);
    })
    .await;
    (server, stand_ins, dir)
}

#[tokio::test]
async fn a_challenge_notifies_the_users_iphone_and_android_phone_with_signed_requests() {
    let (server, push, _dir) = start(|_| {}).await;
    let portal = server.portal().await;
    let iphone = enroll(&server, &portal, PushPlatform::Apns).await;
    let mut android = enroll(&server, &portal, PushPlatform::Fcm).await;

    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let apns = within(push.apns.wait_for(1)).await.remove(0);
    let fcm = within(push.fcm.wait_for(1)).await.remove(0);

    // APNs: the device path, Apple's headers, an actionable alert.
    assert_eq!(apns.path, format!("/3/device/{APNS_TOKEN}"));
    let header = |name: &str| apns.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("apns-topic"), APNS_TOPIC);
    assert_eq!(header("apns-push-type"), "alert");
    assert_eq!(header("apns-priority"), "10");
    let expires = challenge.expire_time.unwrap().seconds;
    assert_eq!(header("apns-expiration"), expires.to_string());
    assert_eq!(header("apns-collapse-id"), iphone.account().device_id);
    let aps = &apns.body["aps"];
    assert_eq!(aps["alert"]["title"], "Approve sign-in?");
    assert_eq!(aps["alert"]["body"], "IHIGrp (External Collaboration)");
    assert_eq!(aps["category"], "MFA_CHALLENGE");
    assert_eq!(aps["mutable-content"], 1);
    let notice = mfa_sdk::parse_push_payload(&apns.body.to_string()).unwrap();
    assert_eq!(notice.challenge_id, challenge.challenge_id);
    assert_eq!(notice.tenant_id, server.tenant.id);

    // FCM: a high-priority data message that lives as long as the challenge.
    assert_eq!(
        fcm.path,
        format!("/v1/projects/{FCM_PROJECT}/messages:send")
    );
    let message = &fcm.body["message"];
    assert_eq!(message["token"], FCM_TOKEN);
    assert_eq!(
        message["data"]["challenge_id"],
        challenge.challenge_id.as_str()
    );
    assert_eq!(message["android"]["priority"], "HIGH");
    assert_eq!(
        message["android"]["collapse_key"],
        android.account().device_id.as_str()
    );
    let ttl: u64 = message["android"]["ttl"]
        .as_str()
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(
        (1..=120).contains(&ttl),
        "ttl {ttl}s within the challenge's two minutes"
    );
    assert_eq!(push.fcm.tokens_issued(), 1);
    assert_eq!(fcm.bearer, "ya29.stand-in-1");

    // Nothing personal crosses Apple's or Google's servers.
    for body in [&apns.body, &fcm.body] {
        let leaves = string_leaves(body);
        for private in [
            "u@example.jp",
            "203.0.113.7",
            "Tokyo, JP",
            "Customer portal",
            "u",
            &challenge.number,
        ] {
            assert!(
                !leaves.iter().any(|v| v == private || v.contains('@')),
                "{private} in {body}"
            );
        }
    }

    // The portal sees both deliveries with the providers' ids.
    let deliveries = settled_deliveries(&portal, &challenge.challenge_id, 2).await;
    let ios = delivery(&deliveries, &iphone.account().device_id);
    assert_eq!((ios.state(), ios.attempts), (PushDeliveryState::Sent, 1));
    assert_eq!(ios.push_platform(), PushPlatform::Apns);
    assert_eq!(ios.provider_message_id.len(), 36, "the apns-id: {ios:?}");
    let droid = delivery(&deliveries, &android.account().device_id);
    assert_eq!(droid.state(), PushDeliveryState::Sent);
    assert!(droid
        .provider_message_id
        .starts_with(&format!("projects/{FCM_PROJECT}/messages/")));

    // Notified, the phone fetches the challenge named in the push and answers.
    let pending = only_pending(&mut android).await;
    assert_eq!(pending.challenge_id, notice.challenge_id);
    android.approve(&pending, &challenge.number).await.unwrap();
    let outcome = portal.await_outcome(&challenge.challenge_id).await.unwrap();
    assert_eq!(outcome.state(), ChallengeState::Approved);
}

#[tokio::test]
async fn provider_tokens_are_reused_and_renewed_before_they_expire() {
    let (server, push, _dir) = start(|_| {}).await;
    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Apns).await;
    enroll(&server, &portal, PushPlatform::Fcm).await;
    // A token that expires within the renewal margin is used once.
    push.fcm.set_token_lifetime(30);
    for round in 1..=2 {
        portal.start_sign_in("u", context()).await.unwrap();
        within(push.fcm.wait_for(round)).await;
        assert_eq!(push.fcm.tokens_issued(), round);
    }
    // A token valid for an hour serves the following sends.
    push.fcm.set_token_lifetime(3600);
    for round in 3..=5 {
        portal.start_sign_in("u", context()).await.unwrap();
        within(push.fcm.wait_for(round)).await;
    }
    assert_eq!(push.fcm.tokens_issued(), 3);
    let fcm = push.fcm.requests();
    assert_eq!(fcm[2].bearer, fcm[4].bearer);

    // One APNs provider token for every send.
    let apns = within(push.apns.wait_for(5)).await;
    assert!(apns.iter().all(|r| r.bearer == apns[0].bearer));
}

#[tokio::test]
async fn throttled_and_unavailable_providers_are_retried_until_accepted() {
    let (server, push, _dir) = start(|_| {}).await;
    let portal = server.portal().await;
    let iphone = enroll(&server, &portal, PushPlatform::Apns).await;
    let android = enroll(&server, &portal, PushPlatform::Fcm).await;
    push.apns.script([
        Scripted::error(503, "ServiceUnavailable"),
        Scripted {
            retry_after: Some(0),
            ..Scripted::error(429, "TooManyRequests")
        },
    ]);
    push.fcm.script([
        Scripted::error(503, "UNAVAILABLE"),
        Scripted::error(500, "INTERNAL"),
    ]);

    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &challenge.challenge_id, 2).await;
    let ios = delivery(&deliveries, &iphone.account().device_id);
    assert_eq!(
        (ios.state(), ios.attempts),
        (PushDeliveryState::Sent, 3),
        "{ios:?}"
    );
    let droid = delivery(&deliveries, &android.account().device_id);
    assert_eq!(
        (droid.state(), droid.attempts),
        (PushDeliveryState::Sent, 3),
        "{droid:?}"
    );
    assert_eq!(push.apns.requests().len(), 3);
    assert_eq!(push.fcm.requests().len(), 3);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_is_retried_then_given_up() {
    let (server, push, _dir) = start(|c| c.push.max_attempts = 2).await;
    let portal = server.portal().await;
    let android = enroll(&server, &portal, PushPlatform::Fcm).await;
    let too_slow = server.config.push.timeout * 3;
    push.fcm.script([Scripted::slow(too_slow)]);
    let first = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &first.challenge_id, 1).await;
    let droid = delivery(&deliveries, &android.account().device_id);
    assert_eq!(
        (droid.state(), droid.attempts),
        (PushDeliveryState::Sent, 2),
        "{droid:?}"
    );

    push.fcm
        .script([Scripted::slow(too_slow), Scripted::slow(too_slow)]);
    let second = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &second.challenge_id, 1).await;
    let droid = delivery(&deliveries, &android.account().device_id);
    assert_eq!(
        (droid.state(), droid.attempts, droid.reason.as_str()),
        (PushDeliveryState::Failed, 2, "timeout")
    );
}

#[tokio::test]
async fn dead_tokens_are_not_used_again_until_the_app_sends_a_new_one() {
    let (server, push, _dir) = start(|_| {}).await;
    let portal = server.portal().await;
    let mut iphone = enroll(&server, &portal, PushPlatform::Apns).await;
    let mut android = enroll(&server, &portal, PushPlatform::Fcm).await;
    push.apns.script([Scripted::error(410, "Unregistered")]);
    push.fcm.script([Scripted::error(404, "UNREGISTERED")]);

    let first = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &first.challenge_id, 2).await;
    for phone in [&iphone, &android] {
        let d = delivery(&deliveries, &phone.account().device_id);
        assert_eq!(
            (d.state(), d.attempts),
            (PushDeliveryState::TokenInvalid, 1),
            "{d:?}"
        );
    }
    assert_eq!(d_reason(&deliveries, &iphone), "Unregistered");
    assert_eq!(d_reason(&deliveries, &android), "UNREGISTERED");

    // Neither device is notified again, yet both still answer by pulling.
    let second = portal.start_sign_in("u", context()).await.unwrap();
    assert!(portal
        .get_challenge(&second.challenge_id)
        .await
        .unwrap()
        .push_deliveries
        .is_empty());
    let pending = only_pending(&mut android).await;
    android.approve(&pending, &second.number).await.unwrap();
    assert_eq!(
        (push.apns.requests().len(), push.fcm.requests().len()),
        (1, 1)
    );
    // The user's own audit trail shows it, and operators see which phones
    // no longer hear of sign-ins, since when and why.
    let audit = server.audit_events("u").await;
    assert_eq!(occurrences(&audit, "device.push_token_invalid"), 2);
    let status = portal.user_status("u").await.unwrap();
    for (phone, reason) in [(&iphone, "Unregistered"), (&android, "UNREGISTERED")] {
        let device = status
            .devices
            .iter()
            .find(|d| d.device_id == phone.account().device_id)
            .unwrap();
        assert_eq!(
            (device.push_status(), device.push_status_reason.as_str()),
            (PushStatus::TokenInvalid, reason),
            "{device:?}"
        );
        assert!(device.push_status_time.is_some(), "{device:?}");
    }
    let tenant = server.tenant.id.as_str();
    let without_push = |scrape: &prometheus_parse::Scrape, platform: &str| {
        scrape::value(
            scrape,
            "mfa_devices_without_push",
            &[
                ("tenant", tenant),
                ("platform", platform),
                ("status", "token_invalid"),
            ],
        )
    };
    let metrics = scrape::scrape(&server).await;
    assert_eq!(
        (
            without_push(&metrics, "apns"),
            without_push(&metrics, "fcm")
        ),
        (1.0, 1.0)
    );

    // The app registers a fresh token: pushes resume.
    let fresh = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";
    iphone
        .update_push_token(PushPlatform::Apns, fresh)
        .await
        .unwrap();
    let third = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &third.challenge_id, 1).await;
    assert_eq!(
        delivery(&deliveries, &iphone.account().device_id).state(),
        PushDeliveryState::Sent
    );
    assert_eq!(push.apns.requests()[1].path, format!("/3/device/{fresh}"));
    let status = portal.user_status("u").await.unwrap();
    let device = status
        .devices
        .iter()
        .find(|d| d.device_id == iphone.account().device_id)
        .unwrap();
    assert_eq!(
        (
            device.push_status(),
            device.push_status_time,
            device.push_status_reason.as_str()
        ),
        (PushStatus::Ok, None, "")
    );
    let metrics = scrape::scrape(&server).await;
    assert_eq!(
        (
            without_push(&metrics, "apns"),
            without_push(&metrics, "fcm")
        ),
        (0.0, 1.0)
    );
}

fn d_reason(deliveries: &[PushDelivery], phone: &Authenticator) -> String {
    delivery(deliveries, &phone.account().device_id).reason
}

#[tokio::test]
async fn a_provider_that_refuses_our_credentials_fails_the_delivery_not_the_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let push = PushStandIns::start(dir.path()).await;
    // An APNs key the stand-in does not know: Apple answers InvalidProviderToken.
    let other = ApnsStandIn::start(&TestCa::new()).await;
    let mut config = push.config.clone();
    let apns = config.apns.as_mut().unwrap();
    std::fs::write(&apns.key_file, &other.key_pem).unwrap();
    let server = TestServer::start_with(|c| c.push = config).await;
    let portal = server.portal().await;
    let mut iphone = enroll(&server, &portal, PushPlatform::Apns).await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &challenge.challenge_id, 1).await;
    let ios = delivery(&deliveries, &iphone.account().device_id);
    assert_eq!(
        (ios.state(), ios.attempts, ios.reason.as_str()),
        (PushDeliveryState::Failed, 1, "InvalidProviderToken")
    );
    let pending = only_pending(&mut iphone).await;
    iphone.approve(&pending, &challenge.number).await.unwrap();
}

#[tokio::test]
async fn with_a_provider_down_challenges_are_still_created_and_answered_by_pull() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (server, _push, _dir) = start(|c| {
        c.push.max_attempts = 2;
        c.push.fcm.as_mut().unwrap().origin = Some(format!("http://{closed}"));
    })
    .await;
    let portal = server.portal().await;
    let mut android = enroll(&server, &portal, PushPlatform::Fcm).await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &challenge.challenge_id, 1).await;
    let d = delivery(&deliveries, &android.account().device_id);
    assert_eq!(
        (d.state(), d.attempts),
        (PushDeliveryState::Failed, 2),
        "{d:?}"
    );
    assert!(d.reason.starts_with("connection:"), "{d:?}");
    let pending = only_pending(&mut android).await;
    android.approve(&pending, &challenge.number).await.unwrap();
    assert_eq!(
        portal
            .await_outcome(&challenge.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Approved
    );
}

#[tokio::test]
async fn missing_or_malformed_credentials_stop_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let push = PushStandIns::start(dir.path()).await;
    let start_error = |config: mfa_server::push::config::PushConfig| async move {
        let data = tempfile::tempdir().unwrap();
        let mut c = test_config(data.path());
        c.push = config;
        match mfa_server::start(&c).await {
            Ok(_) => panic!("started with bad credentials"),
            Err(error) => error.to_string(),
        }
    };

    let mut missing = push.config.clone();
    missing.apns.as_mut().unwrap().key_file = dir.path().join("nowhere.p8");
    let error = start_error(missing).await;
    assert!(
        error.contains("APNs key file") && error.contains("nowhere.p8"),
        "{error}"
    );

    let mut garbage = push.config.clone();
    let key_file = dir.path().join("garbage.p8");
    std::fs::write(
        &key_file,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    garbage.apns.as_mut().unwrap().key_file = key_file;
    let error = start_error(garbage).await;
    assert!(error.contains("not a PKCS#8 EC private key"), "{error}");

    let mut account = push.config.clone();
    let file = dir.path().join("account.json");
    std::fs::write(&file, r#"{"type": "service_account", "project_id": "p"}"#).unwrap();
    account.fcm.as_mut().unwrap().service_account_file = Some(file);
    let error = start_error(account).await;
    assert!(error.contains("not a service account key"), "{error}");

    let mut plain = push.config.clone();
    plain.apns.as_mut().unwrap().origin = Some("http://push.example.com".into());
    let error = start_error(plain).await;
    assert!(error.contains("only on a loopback address"), "{error}");
}

/// `/healthz`'s lines about the providers' answers (they follow the state
/// and the version).
pub(crate) async fn healthz(server: &TestServer) -> String {
    healthz_lines(server, |line| !line.contains(" credentials: ")).await
}

/// `/healthz`'s lines about the providers' credentials.
async fn credentials_health(server: &TestServer) -> String {
    healthz_lines(server, |line| line.contains(" credentials: ")).await
}

async fn healthz_lines(server: &TestServer, wanted: impl Fn(&str) -> bool) -> String {
    let url = format!("http://{}/healthz", server.metrics_addr());
    let body = mfa_server::stats::fetch(&url)
        .await
        .expect("/healthz answers");
    let head = format!("SERVING\nversion: {}\n", mfa_server::VERSION);
    let push = body
        .strip_prefix(&head)
        .unwrap_or_else(|| panic!("{body:?} begins with {head:?}"));
    push.lines()
        .filter(|line| wanted(line))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Enrolls `user`'s iPhone with its own push token.
async fn iphone_of(server: &TestServer, portal: &RelyingParty, user: &str, n: u8) -> Authenticator {
    let info = DeviceInfo {
        name: "iPhone".into(),
        push_platform: PushPlatform::Apns,
        push_token: format!("{n:02x}").repeat(32),
    };
    server
        .enroll_device(portal, user, &format!("{user}@example.jp"), info)
        .await
}

/// A sign-in of `user` and its one device's settled delivery.
pub(crate) async fn pushed(portal: &RelyingParty, user: &str) -> PushDelivery {
    let challenge = portal.start_sign_in(user, context()).await.unwrap();
    settled_deliveries(portal, &challenge.challenge_id, 1)
        .await
        .remove(0)
}

#[tokio::test]
async fn a_misconfigured_provider_keeps_every_token_and_shows_in_healthz() {
    let (server, push, _dir) = start(|_| {}).await;
    let portal = server.portal().await;
    let iphone = enroll(&server, &portal, PushPlatform::Apns).await;
    let android = enroll(&server, &portal, PushPlatform::Fcm).await;
    assert_eq!(healthz(&server).await, "push apns: ok\npush fcm: ok\n");

    // A wrong topic, a wrong sender: our set-up, not the phones.
    push.apns
        .script([Scripted::error(400, "DeviceTokenNotForTopic")]);
    push.fcm
        .script([Scripted::error(403, "SENDER_ID_MISMATCH")]);
    let first = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &first.challenge_id, 2).await;
    for (phone, reason) in [
        (&iphone, "DeviceTokenNotForTopic"),
        (&android, "SENDER_ID_MISMATCH"),
    ] {
        let d = delivery(&deliveries, &phone.account().device_id);
        assert_eq!(
            (d.state(), d.reason.as_str()),
            (PushDeliveryState::Failed, reason)
        );
    }
    assert_eq!(
        healthz(&server).await,
        "push apns: misconfigured: DeviceTokenNotForTopic\n\
         push fcm: misconfigured: SENDER_ID_MISMATCH\n"
    );

    // A bad request of FCM's kind is not the token's fault either.
    push.fcm.script([Scripted::error(400, "INVALID_ARGUMENT")]);
    let second = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &second.challenge_id, 2).await;
    let d = delivery(&deliveries, &android.account().device_id);
    assert_eq!(
        (d.state(), d.reason.as_str()),
        (PushDeliveryState::Failed, "INVALID_ARGUMENT")
    );
    assert_eq!(
        delivery(&deliveries, &iphone.account().device_id).state(),
        PushDeliveryState::Sent,
        "the iPhone's token was kept, and APNs accepts again"
    );

    // Once fixed, every phone is notified again: no token was forgotten.
    let third = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &third.challenge_id, 2).await;
    assert!(
        deliveries
            .iter()
            .all(|d| d.state() == PushDeliveryState::Sent),
        "{deliveries:?}"
    );
    assert_eq!(healthz(&server).await, "push apns: ok\npush fcm: ok\n");
    let audit = server.audit_types("").await;
    assert!(
        !audit.iter().any(|e| e == "device.push_token_invalid"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_burst_of_bad_device_tokens_is_taken_for_a_wrong_environment_not_dead_tokens() {
    let (server, push, _dir) = start(|c| {
        c.push.bad_token_min_answers = 3;
        c.push.bad_token_threshold = 0.6;
    })
    .await;
    let portal = server.portal().await;
    for (n, user) in ["a", "b", "c", "d"].iter().enumerate() {
        iphone_of(&server, &portal, user, n as u8 + 1).await;
    }

    // The first answer of a fresh server says nothing about its set-up yet:
    // the token is kept, and the next push to it goes through.
    push.apns.script([Scripted::error(400, "BadDeviceToken")]);
    let cold = pushed(&portal, "a").await;
    assert_eq!(cold.state(), PushDeliveryState::Failed, "{cold:?}");
    assert!(cold.reason.contains("too few answers"), "{cold:?}");
    assert_eq!(pushed(&portal, "a").await.state(), PushDeliveryState::Sent);
    assert_eq!(pushed(&portal, "b").await.state(), PushDeliveryState::Sent);

    // With the provider known to work, a BadDeviceToken is a dead token
    // (2 of 4 answers) ...
    push.apns.script([Scripted::error(400, "BadDeviceToken")]);
    assert_eq!(
        pushed(&portal, "c").await.state(),
        PushDeliveryState::TokenInvalid
    );
    // ... until they are too many to believe (3 of 5): kept, and reported.
    push.apns.script([Scripted::error(400, "BadDeviceToken")]);
    let burst = pushed(&portal, "d").await;
    assert_eq!(burst.state(), PushDeliveryState::Failed, "{burst:?}");
    assert!(burst.reason.contains("environment"), "{burst:?}");
    let health = healthz(&server).await;
    assert!(
        health.contains("push apns: misconfigured: ") && health.contains("environment"),
        "{health}"
    );
    assert_eq!(
        pushed(&portal, "d").await.state(),
        PushDeliveryState::Sent,
        "d's token was kept"
    );
    let invalidated = server
        .audit_types("")
        .await
        .into_iter()
        .filter(|e| e == "device.push_token_invalid")
        .count();
    assert_eq!(invalidated, 1, "only c's token was forgotten");
}

/// A server whose APNs connection runs through a relay the test can
/// silence, as a NAT or middlebox that forgets a connection without a reset
/// does; `adjust` sets its push timeouts.
async fn behind_a_relay(
    adjust: impl FnOnce(&mut mfa_server::push::config::PushConfig),
) -> (TestServer, PushStandIns, TcpProxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let push = PushStandIns::start(dir.path()).await;
    let relay = TcpProxy::start(push.apns.addr).await;
    let mut config = push.config.clone();
    config.apns.as_mut().unwrap().origin = Some(format!("https://127.0.0.1:{}", relay.addr.port()));
    adjust(&mut config);
    let server = TestServer::start_with(|c| c.push = config).await;
    (server, push, relay, dir)
}

/// An iPhone is notified once through the relay; then the connection in use
/// goes silent (new connections get through), and the next sign-in's
/// delivery is returned once settled.
pub(crate) async fn push_after_the_path_goes_silent(
    server: &TestServer,
    relay: &TcpProxy,
) -> PushDelivery {
    let portal = server.portal().await;
    let _iphone = enroll(server, &portal, PushPlatform::Apns).await;
    assert_eq!(pushed(&portal, "u").await.state(), PushDeliveryState::Sent);
    relay.stall();
    relay.forward_new_only();
    pushed(&portal, "u").await
}

/// A request timeout far beyond the test's patience (`within`, 5 s) and
/// quick PINGs: only the PINGs can notice a silent connection in time.
pub(crate) fn pings_alone_notice_silence(c: &mut mfa_server::push::config::PushConfig) {
    c.timeout = Duration::from_secs(120);
    c.keepalive_interval = Duration::from_millis(200);
    c.keepalive_timeout = Duration::from_millis(300);
}

/// The delivery got through on a new connection, after the first attempt
/// was lost on the silent one.
pub(crate) fn assert_sent_on_the_second_attempt(delivery: &PushDelivery) {
    assert_eq!(
        (delivery.state(), delivery.attempts),
        (PushDeliveryState::Sent, 2),
        "{delivery:?}"
    );
}

#[tokio::test]
async fn a_connection_that_goes_silent_is_replaced_after_an_unanswered_ping() {
    let (server, push, relay, _dir) = behind_a_relay(pings_alone_notice_silence).await;
    let delivery = push_after_the_path_goes_silent(&server, &relay).await;
    assert_sent_on_the_second_attempt(&delivery);
    assert_eq!(
        push.apns.requests().len(),
        2,
        "the lost attempt never arrived"
    );
}

#[tokio::test]
async fn a_request_that_times_out_drops_its_connection() {
    // No PINGs: the request timeout alone must get the next attempt onto a
    // fresh connection.
    let (server, push, relay, _dir) = behind_a_relay(|c| {
        c.timeout = Duration::from_millis(300);
        c.keepalive_interval = Duration::ZERO;
    })
    .await;
    let delivery = push_after_the_path_goes_silent(&server, &relay).await;
    assert_eq!(
        (
            delivery.state(),
            delivery.attempts,
            delivery.reason.as_str()
        ),
        (PushDeliveryState::Sent, 2, ""),
        "{delivery:?}"
    );
    assert_eq!(push.apns.requests().len(), 2);
}

#[tokio::test]
async fn a_newer_challenge_replaces_the_older_notification_on_the_phone() {
    let (server, push, _dir) = start(|_| {}).await;
    let portal = server.portal().await;
    let iphone = enroll(&server, &portal, PushPlatform::Apns).await;
    let android = enroll(&server, &portal, PushPlatform::Fcm).await;
    let (apns_before, fcm_before) = (push.apns.requests().len(), push.fcm.requests().len());
    let first = portal.start_sign_in("u", context()).await.unwrap();
    let second = portal.start_sign_in("u", context()).await.unwrap();
    assert_ne!(first.challenge_id, second.challenge_id);

    let apns = within(push.apns.wait_for(apns_before + 2)).await;
    let collapse_ids: Vec<&str> = apns[apns_before..]
        .iter()
        .map(|r| r.headers["apns-collapse-id"].to_str().unwrap())
        .collect();
    let slot = iphone.account().device_id.as_str();
    assert_eq!(collapse_ids, [slot, slot]);
    let fcm = within(push.fcm.wait_for(fcm_before + 2)).await;
    let collapse_keys: Vec<&serde_json::Value> = fcm[fcm_before..]
        .iter()
        .map(|r| &r.body["message"]["android"]["collapse_key"])
        .collect();
    let slot = serde_json::Value::from(android.account().device_id.as_str());
    assert_eq!(collapse_keys, [&slot, &slot]);
}

#[tokio::test]
async fn a_provider_token_apple_calls_expired_is_renewed_whatever_its_age_and_sent_again() {
    let (server, push, _dir) = start(|_| {}).await;
    let portal = server.portal().await;
    let iphone = enroll(&server, &portal, PushPlatform::Apns).await;
    let before = push.apns.requests().len();
    push.apns
        .script([Scripted::error(403, "ExpiredProviderToken")]);
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &challenge.challenge_id, 1).await;
    let d = delivery(&deliveries, &iphone.account().device_id);
    assert_eq!(
        (d.state(), d.attempts),
        (PushDeliveryState::Sent, 1),
        "{d:?}"
    );
    let requests = push.apns.requests();
    assert_eq!(requests.len(), before + 2);
    assert_ne!(
        requests[before].bearer,
        requests[before + 1].bearer,
        "sent again with a new provider token, though the refused one was seconds old"
    );
    assert_eq!(healthz(&server).await, "push apns: ok\npush fcm: ok\n");

    // Refused again at once: Apple's clock and the token disagree, which no
    // renewal mends; our set-up, reported as such, and the token is kept.
    push.apns.script([
        Scripted::error(403, "ExpiredProviderToken"),
        Scripted::error(403, "ExpiredProviderToken"),
    ]);
    let again = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &again.challenge_id, 1).await;
    let d = delivery(&deliveries, &iphone.account().device_id);
    assert_eq!(
        (d.state(), d.reason.as_str()),
        (PushDeliveryState::Failed, "ExpiredProviderToken")
    );
    assert!(healthz(&server)
        .await
        .contains("push apns: misconfigured: ExpiredProviderToken"));
}

#[tokio::test]
async fn credentials_are_checked_at_start_and_then_periodically_without_a_push() {
    let (server, push, _dir) = start(|c| {
        c.push.credentials_check_interval = Duration::from_millis(100);
    })
    .await;
    let until = |expected: &'static str| {
        let server = &server;
        async move {
            loop {
                if credentials_health(server).await == expected {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    within(until(
        "push apns credentials: ok\npush fcm credentials: ok\n",
    ))
    .await;
    let credentials_ok = |scrape: &prometheus_parse::Scrape, provider: &str| {
        scrape::value(scrape, "mfa_push_credentials_ok", &[("provider", provider)])
    };
    let metrics = scrape::scrape(&server).await;
    assert_eq!(
        (
            credentials_ok(&metrics, "apns"),
            credentials_ok(&metrics, "fcm")
        ),
        (1.0, 1.0)
    );

    // The service account's key deleted in the console; the APNs key file
    // replaced by something that is not a key.
    push.fcm.delete_key();
    let key_file = &server.config.push.apns.as_ref().unwrap().key_file;
    std::fs::write(
        key_file,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let expected = format!(
        "push apns credentials: failing: APNs key file {}: not a PKCS#8 EC private key \
         (the .p8 file from Apple)\npush fcm credentials: failing: oauth: invalid_grant\n",
        key_file.display()
    );
    let expected: &'static str = expected.leak();
    within(until(expected)).await;
    let metrics = scrape::scrape(&server).await;
    assert_eq!(
        (
            credentials_ok(&metrics, "apns"),
            credentials_ok(&metrics, "fcm")
        ),
        (0.0, 0.0)
    );
    assert!(
        push.apns.requests().is_empty() && push.fcm.requests().is_empty(),
        "no notification was needed to find out"
    );
}
