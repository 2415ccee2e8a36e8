//! Enrollment: QR code, manual entry, verification round, expiry, reuse.

use mfa_proto::v1::{ChallengeKind, ChallengeState, DeviceState, EnrollmentState, SignInContext};
use mfa_sdk::{proto, Authenticator, EnrollmentUri, MemoryKeyStore};
use mfa_tests::*;
use std::time::Duration;
use tonic::Code;

#[tokio::test]
async fn qr_enrollment_is_confirmed_by_the_first_number_round() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let begun = portal
        .begin_enrollment("hanako", "hanako@example.jp")
        .await
        .unwrap();
    assert!(begun.qr_uri.starts_with("mfa://enroll?v=1&"));
    assert_eq!(begun.server_url, server.url);
    assert_eq!(begun.manual_code.len(), 11, "{}", begun.manual_code);

    let mut watch = portal.watch_enrollment(&begun.enrollment_id).await.unwrap();
    let first = watch.message().await.unwrap().unwrap().enrollment.unwrap();
    assert_eq!(first.state(), EnrollmentState::WaitingForScan);
    assert!(first.verification_number.is_empty());

    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let store = MemoryKeyStore::new();
    let (mut phone, verification) =
        Authenticator::enroll(&uri, phone_info("Hanako's iPhone"), &store)
            .await
            .unwrap();
    assert_eq!(
        phone.account().tenant_display_name,
        "IHIGrp (External Collaboration)"
    );
    assert_eq!(phone.account().user_email, "hanako@example.jp");
    assert_eq!(verification.kind, ChallengeKind::EnrollmentVerification);
    assert_eq!(verification.number_length, 2);

    let registered = watch.message().await.unwrap().unwrap().enrollment.unwrap();
    assert_eq!(registered.state(), EnrollmentState::DeviceRegistered);
    assert_eq!(registered.device_id, phone.account().device_id);
    let number: u32 = registered.verification_number.parse().unwrap();
    assert!((10..=99).contains(&number));

    // Not yet active: no sign-in challenge can be created for the user.
    let refused = portal
        .start_sign_in("hanako", SignInContext::default())
        .await
        .unwrap_err();
    assert!(refused.is_no_active_device(), "{refused:?}");

    let answer = phone
        .approve(&verification, &registered.verification_number)
        .await
        .unwrap();
    assert_eq!(answer.state, ChallengeState::Approved);
    let verified = watch.message().await.unwrap().unwrap().enrollment.unwrap();
    assert_eq!(verified.state(), EnrollmentState::Verified);
    assert!(
        watch.message().await.unwrap().is_none(),
        "the watch ends after a terminal state"
    );

    let status = portal.user_status("hanako").await.unwrap();
    assert_eq!(status.email, "hanako@example.jp");
    assert_eq!(status.devices.len(), 1);
    assert_eq!(status.devices[0].state(), DeviceState::Active);
    assert_eq!(status.devices[0].display_name, "Hanako's iPhone");
    assert!(store_has_account(&store));
}

fn store_has_account(store: &MemoryKeyStore) -> bool {
    mfa_sdk::KeyStore::load(store).unwrap().is_some()
}

#[tokio::test]
async fn manual_code_and_url_enroll_like_the_qr_code() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let begun = portal
        .begin_enrollment("taro", "taro@example.jp")
        .await
        .unwrap();
    // People type codes in lower case, with or without the dash.
    let typed = begun.manual_code.to_lowercase().replace('-', " ");
    let uri = EnrollmentUri::manual(&typed, &begun.server_url).unwrap();
    assert_eq!(uri.server_public_key, None);
    let (mut phone, verification) =
        Authenticator::enroll(&uri, phone_info("Pixel"), &MemoryKeyStore::new())
            .await
            .unwrap();
    let qr_key = EnrollmentUri::parse(&begun.qr_uri)
        .unwrap()
        .server_public_key
        .unwrap();
    assert_eq!(
        phone.account().server_public_key,
        qr_key,
        "the server key is learned on first use"
    );
    let number = verification_number(&portal, &begun.enrollment_id).await;
    assert_eq!(
        phone.approve(&verification, &number).await.unwrap().state,
        ChallengeState::Approved
    );
    assert_eq!(
        portal
            .await_enrollment(&begun.enrollment_id)
            .await
            .unwrap()
            .state(),
        EnrollmentState::Verified
    );
}

#[tokio::test]
async fn an_expired_qr_code_gives_a_clear_error_and_the_portal_sees_expired() {
    let server = TestServer::start_with(|c| c.enrollment_ttl = Duration::from_millis(300)).await;
    let portal = server.portal().await;
    let begun = portal
        .begin_enrollment("jiro", "jiro@example.jp")
        .await
        .unwrap();
    let ended = within(portal.await_enrollment(&begun.enrollment_id))
        .await
        .unwrap();
    assert_eq!(ended.state(), EnrollmentState::Expired);

    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let error = Authenticator::enroll(&uri, phone_info("Late phone"), &MemoryKeyStore::new())
        .await
        .unwrap_err();
    assert!(error.is_activation_code_expired(), "{error:?}");
    assert_eq!(error.code(), Some(Code::FailedPrecondition));
    assert!(error.to_string().contains("expired"), "{error}");
    assert!(portal.user_status("jiro").await.unwrap().devices.is_empty());
}

#[tokio::test]
async fn an_activation_code_works_once() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let begun = portal
        .begin_enrollment("saburo", "saburo@example.jp")
        .await
        .unwrap();
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    Authenticator::enroll(&uri, phone_info("First"), &MemoryKeyStore::new())
        .await
        .unwrap();
    let error = Authenticator::enroll(&uri, phone_info("Second"), &MemoryKeyStore::new())
        .await
        .unwrap_err();
    assert!(error.is_activation_code_used(), "{error:?}");
    assert_eq!(portal.user_status("saburo").await.unwrap().devices.len(), 1);
}

#[tokio::test]
async fn a_wrong_verification_number_fails_the_enrollment() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let begun = portal
        .begin_enrollment("shiro", "shiro@example.jp")
        .await
        .unwrap();
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let (mut phone, verification) =
        Authenticator::enroll(&uri, phone_info("Phone"), &MemoryKeyStore::new())
            .await
            .unwrap();
    let number = verification_number(&portal, &begun.enrollment_id).await;
    let answer = phone
        .approve(&verification, &wrong_number(&number))
        .await
        .unwrap();
    assert_eq!(answer.state, ChallengeState::Denied);
    assert_eq!(answer.deny_reason, proto::DenyReason::WrongNumber);
    assert_eq!(
        portal
            .await_enrollment(&begun.enrollment_id)
            .await
            .unwrap()
            .state(),
        EnrollmentState::Failed
    );
    assert!(
        portal
            .user_status("shiro")
            .await
            .unwrap()
            .devices
            .is_empty(),
        "the device is not kept"
    );
    let refused = portal
        .start_sign_in("shiro", SignInContext::default())
        .await
        .unwrap_err();
    assert!(refused.is_no_active_device(), "{refused:?}");
}

#[tokio::test]
async fn an_unanswered_verification_round_expires_the_enrollment() {
    let server = TestServer::start_with(|c| c.challenge_ttl = Duration::from_millis(300)).await;
    let portal = server.portal().await;
    let begun = portal
        .begin_enrollment("goro", "goro@example.jp")
        .await
        .unwrap();
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let (mut phone, verification) =
        Authenticator::enroll(&uri, phone_info("Phone"), &MemoryKeyStore::new())
            .await
            .unwrap();
    let ended = within(portal.await_enrollment(&begun.enrollment_id))
        .await
        .unwrap();
    assert_eq!(ended.state(), EnrollmentState::Expired);
    let error = phone.approve(&verification, "10").await.unwrap_err();
    assert!(error.is_device_revoked(), "{error:?}");
}
