//! Administration: reset and re-enroll, device lists, audit pages, terms.

use mfa_proto::v1::{
    self as proto, ChallengeState, DeviceState, EnrollmentState, PushPlatform, SignInContext,
};
use mfa_tests::*;
use tonic::Code;

#[tokio::test]
async fn a_reset_revokes_everything_and_allows_enrolling_again() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut admin = server.admin().await;
    let mut old_phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let open = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
    let mut watch = portal
        .watch_challenge(&challenge.challenge_id)
        .await
        .unwrap();
    watch.message().await.unwrap();

    let counts = admin
        .reset_user_methods(proto::ResetUserMethodsRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            counts.revoked_devices,
            counts.cancelled_challenges,
            counts.cancelled_enrollments
        ),
        (1, 1, 1)
    );
    let seen = within(watch.message())
        .await
        .unwrap()
        .unwrap()
        .challenge
        .unwrap();
    assert_eq!(seen.state(), ChallengeState::Cancelled);
    assert_eq!(
        portal
            .await_enrollment(&open.enrollment_id)
            .await
            .unwrap()
            .state(),
        EnrollmentState::Cancelled
    );
    assert!(old_phone
        .pending_challenges()
        .await
        .unwrap_err()
        .is_device_revoked());
    assert!(portal.user_status("u").await.unwrap().devices.is_empty());
    let refused = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap_err();
    assert!(refused.is_no_active_device());

    let mut new_phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut new_phone).await;
    assert_eq!(
        new_phone
            .approve(&pending, &challenge.number)
            .await
            .unwrap()
            .state,
        ChallengeState::Approved
    );

    let devices = admin
        .list_devices(proto::ListDevicesRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    let states: Vec<DeviceState> = devices.iter().map(|d| d.state()).collect();
    assert_eq!(states, [DeviceState::Revoked, DeviceState::Active]);
    assert!(devices[0].revoke_time.is_some());

    let unknown = admin
        .reset_user_methods(proto::ResetUserMethodsRequest {
            user_id: "nobody".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn the_audit_log_records_each_step_and_pages_newest_first() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut admin = server.admin().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut phone).await;
    phone.approve(&pending, &challenge.number).await.unwrap();

    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_audit_events(proto::ListAuditEventsRequest {
                user_id: "u".into(),
                page_size: 2,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.events.len() <= 2);
        all.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let ids: Vec<i64> = all.iter().map(|e| e.event_id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {ids:?}"
    );
    let types: Vec<&str> = all.iter().rev().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "enrollment.started",
            "enrollment.device_registered",
            "challenge.approved",
            "challenge.created",
            "challenge.approved"
        ]
    );
    let approval = all.first().unwrap();
    assert_eq!(approval.challenge_id, challenge.challenge_id);
    assert_eq!(approval.device_id, phone.account().device_id);
    let bad = admin
        .list_audit_events(proto::ListAuditEventsRequest {
            page_token: "x".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn terms_acceptance_is_recorded_per_user() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let status = portal.user_status("new-user").await.unwrap();
    assert!(
        status.accepted_terms_version.is_empty(),
        "a new user has accepted nothing"
    );
    let recorded = portal
        .record_terms_acceptance("new-user", "2026-04")
        .await
        .unwrap();
    assert_eq!(recorded.accepted_terms_version, "2026-04");
    let status = portal.user_status("new-user").await.unwrap();
    assert_eq!(status.accepted_terms_version, "2026-04");
    assert_eq!(status.terms_accept_time, recorded.accept_time);
    portal
        .record_terms_acceptance("new-user", "2026-11")
        .await
        .unwrap();
    assert_eq!(
        portal
            .user_status("new-user")
            .await
            .unwrap()
            .accepted_terms_version,
        "2026-11"
    );
}

#[tokio::test]
async fn a_device_can_rotate_its_push_token_and_remove_itself() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut admin = server.admin().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    phone
        .update_push_token(PushPlatform::Fcm, "fcm-token-2")
        .await
        .unwrap();
    let devices = admin
        .list_devices(proto::ListDevicesRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(devices[0].push_platform(), PushPlatform::Fcm);
    let bad = phone
        .update_push_token(PushPlatform::Fcm, "")
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(Code::InvalidArgument));

    let store = mfa_sdk::MemoryKeyStore::new();
    phone.remove(&store).await.unwrap();
    assert!(portal.user_status("u").await.unwrap().devices.is_empty());
}

/// A fraud report means someone else knows the password; a lost or changed
/// phone does not undo that. So a reset of the user's methods leaves the
/// block in place: the new phone enrolls, but sign-ins stay refused until an
/// administrator unblocks the user (or `fraud_block` passes).
#[tokio::test]
async fn a_reset_leaves_a_fraud_block_in_place() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut admin = server.admin().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut phone).await;
    phone.report_fraud(&pending).await.unwrap();

    admin
        .reset_user_methods(proto::ResetUserMethodsRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap();
    let status = portal.user_status("u").await.unwrap();
    assert!(status.blocked, "{status:?}");
    let mut new_phone = server.enroll(&portal, "u", "u@example.jp").await;
    let refused = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap_err();
    assert!(refused.is_user_blocked(), "{refused:?}");

    admin
        .unblock_user(proto::UnblockUserRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap();
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut new_phone).await;
    assert_eq!(
        new_phone
            .approve(&pending, &challenge.number)
            .await
            .unwrap()
            .state,
        ChallengeState::Approved
    );
}
