//! A server whose wall clock was wrong at boot and is then stepped right, as
//! NTP does: the APNs provider token it signed with the wrong `iat` is
//! replaced at the first push after the step, without a refused round trip
//! and without a restart. The server runs under libfaketime, its clock moved
//! by a file the test writes (`.ci/run` installs libfaketime).

use mfa_proto::v1::{PushDeliveryState, PushPlatform, SignInContext};
use mfa_sdk::{portal::RelyingParty, ConnectOptions, DeviceInfo};
use mfa_tests::{enroll_phone, process::ServerProcess, push::*};
use std::path::Path;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn context() -> SignInContext {
    SignInContext {
        application_name: "Customer portal".into(),
        ..Default::default()
    }
}

/// `mfa-server serve --dev` on `data`, pushing to `push`'s APNs stand-in,
/// with its wall clock offset by what `offset_file` says.
fn start(data: &Path, push: &PushStandIns, offset_file: &Path) -> ServerProcess {
    let offset_file = offset_file.display().to_string();
    let mut settings = vec![
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        // Timers and timeouts keep their steady clock.
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ("MFA_PUSH__MAX_ATTEMPTS", "1"),
    ];
    let push = push.environment();
    settings.extend(push.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    ServerProcess::start(data, None, &settings)
}

fn issued_at(provider_token: &str) -> i64 {
    let claims = provider_token.split('.').nth(1).unwrap();
    let claims =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap();
    serde_json::from_slice::<serde_json::Value>(&claims).unwrap()["iat"]
        .as_i64()
        .unwrap()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// Two workers: the clients' connections close on one while the test waits
// for the server to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_stepped_right_renews_the_provider_token_at_the_first_push() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's libfaketime"
    );
    let dir = tempfile::tempdir().unwrap();
    let push = PushStandIns::start(dir.path()).await;
    let offset = dir.path().join("faketime");
    let data = dir.path().join("data");

    // Enrolled and notified while the clock is right (the phone's requests
    // carry its time).
    std::fs::write(&offset, "+0\n").unwrap();
    let server = start(&data, &push, &offset);
    let keys = server.keys.clone().expect("first start prints keys");
    let portal = RelyingParty::connect(&server.url, &keys.portal_key)
        .await
        .unwrap();
    let iphone = DeviceInfo {
        name: "iPhone".into(),
        push_platform: PushPlatform::Apns,
        push_token: "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
    };
    let phone = enroll_phone(
        &portal,
        "u",
        "u@example.jp",
        iphone,
        &ConnectOptions::default(),
    )
    .await;
    let device_id = phone.account().device_id.clone();
    let right = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &right.challenge_id, 1).await;
    assert_eq!(
        delivery(&deliveries, &device_id).state(),
        PushDeliveryState::Sent
    );
    // Open connections would hold the shutdown for its grace period.
    drop((phone, portal));
    server.stop();

    // A bad boot: the clock two hours slow. Every token it signs is expired
    // by Apple's clock, so pushes fail (the phone still answers by pulling).
    std::fs::write(&offset, "-7200\n").unwrap();
    let server = start(&data, &push, &offset);
    let portal = RelyingParty::connect(&server.url, &keys.portal_key)
        .await
        .unwrap();
    let slow = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &slow.challenge_id, 1).await;
    let refused = delivery(&deliveries, &device_id);
    assert_eq!(
        (refused.state(), refused.reason.as_str()),
        (PushDeliveryState::Failed, "ExpiredProviderToken")
    );
    let stale = push.apns.requests().last().unwrap().bearer.clone();
    assert!(
        issued_at(&stale) < unix_now() - 3600,
        "signed by the slow clock"
    );

    // NTP steps the clock right: the next push goes out with a new token,
    // accepted at the first request.
    std::fs::write(&offset, "+0\n").unwrap();
    let before = push.apns.requests().len();
    let corrected = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &corrected.challenge_id, 1).await;
    let sent = delivery(&deliveries, &device_id);
    assert_eq!((sent.state(), sent.attempts), (PushDeliveryState::Sent, 1));
    let requests = push.apns.requests();
    assert_eq!(
        requests.len(),
        before + 1,
        "no round trip with the stale token"
    );
    let fresh = &requests[before].bearer;
    assert!(
        (issued_at(fresh) - unix_now()).abs() < 60,
        "signed by the corrected clock"
    );
    drop(portal);
    server.stop();
}
