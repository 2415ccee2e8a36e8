//! The example PHP portal (`examples/php-portal/`, under `php -S`) against
//! the HTTP/JSON API, driven over real HTTP as a person's browser would, with
//! the SDK's device side as the phone: enrollment with the QR code's manual
//! entry and the verification number, a number-matching sign-in approved
//! while the portal's page waits, and one denied.

use mfa_sdk::{Authenticator, ConnectOptions, EnrollmentUri, MemoryKeyStore};
use mfa_tests::{php, *};

#[tokio::test]
async fn a_php_portal_enrolls_a_phone_and_signs_in_with_number_matching() {
    if !php::available_or_skip("a_php_portal_enrolls_a_phone_and_signs_in_with_number_matching") {
        return;
    }
    let server =
        TestServer::start_with(|c| c.http_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let portal = php::PhpPortal::start(&server.http_url(), &server.tenant.portal_key);
    let browser = portal.browser();

    // Enrollment: the QR code, and the code and URL to type instead.
    let home = browser.get("/").await;
    assert_eq!(home.status, 200, "{}", portal.log());
    let enroll = browser
        .post(
            "/enroll",
            &[("user_id", "hanako"), ("email", "hanako@example.jp")],
        )
        .await;
    assert_eq!(enroll.status, 200, "{enroll:?}");
    let qr = enroll.attribute("qr", "src");
    assert!(
        qr.starts_with("data:image/svg+xml;base64,") && qr.len() > 1000,
        "{qr}"
    );
    let uri = EnrollmentUri::manual(&enroll.text("manual-code"), &enroll.text("server-url"))
        .expect("the page shows a code and a server URL");
    let (mut phone, verification) = Authenticator::enroll_with(
        &uri,
        phone_info("Hanako's phone"),
        &MemoryKeyStore::new(),
        &ConnectOptions::default(),
    )
    .await
    .expect("the phone enrolls with what the page shows");
    let registered = within(browser.get("/enroll/status")).await;
    assert_eq!(
        registered.attribute("state", "data-state"),
        "ENROLLMENT_STATE_DEVICE_REGISTERED",
        "{registered:?}"
    );
    let number = registered.text("number");
    phone.approve(&verification, &number).await.unwrap();
    let verified = within(browser.get("/enroll/status?shown=1")).await;
    assert_eq!(
        verified.attribute("state", "data-state"),
        "ENROLLMENT_STATE_VERIFIED",
        "{verified:?}"
    );

    // Sign-in, approved while the portal's page long-polls.
    let sign_in = browser.post("/sign-in", &[("user_id", "hanako")]).await;
    let number = sign_in.text("number");
    let waiting = tokio::spawn({
        let browser = browser.clone();
        async move { browser.get("/sign-in/status").await }
    });
    // The page is waiting once its long poll holds a watch.
    within(async {
        while server.service().open_watches(&server.tenant.id) != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.application_name, "Example PHP portal");
    assert_eq!(pending.number_length as usize, number.len());
    phone.approve(&pending, &number).await.unwrap();
    let signed_in = within(waiting).await.unwrap();
    assert_eq!(
        signed_in.attribute("state", "data-state"),
        "CHALLENGE_STATE_APPROVED",
        "{signed_in:?}"
    );
    assert_eq!(signed_in.text("user"), "hanako");

    // A second sign-in, denied on the phone.
    let sign_in = browser.post("/sign-in", &[("user_id", "hanako")]).await;
    assert!(!sign_in.text("number").is_empty());
    let pending = only_pending(&mut phone).await;
    phone.deny(&pending).await.unwrap();
    let denied = within(browser.get("/sign-in/status")).await;
    assert_eq!(
        denied.attribute("state", "data-state"),
        "CHALLENGE_STATE_DENIED"
    );
    assert_eq!(
        denied.attribute("state", "data-deny-reason"),
        "DENY_REASON_USER_DENIED"
    );

    // A refusal reaches the page as the server's reason.
    let nobody = browser.post("/sign-in", &[("user_id", "nobody")]).await;
    assert_eq!(nobody.status, 502);
    assert_eq!(nobody.attribute("error", "data-reason"), "NO_ACTIVE_DEVICE");

    // A new browser without the session cannot see the outcome page.
    let stranger = portal.browser().get("/sign-in/status").await;
    assert_eq!(stranger.status, 404);
}
