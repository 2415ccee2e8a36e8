//! Administration: reset and re-enroll, device lists, audit pages, terms.

use mfa_proto::v1::{
    self as proto, ChallengeState, DeviceState, EnrollmentState, PushPlatform, SignInContext,
};
use mfa_server::model::TenantChanges;
use mfa_tests::*;
use std::time::Duration;
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

/// Milliseconds since the epoch of a timestamp the server sent.
fn ms(time: Option<prost_types::Timestamp>) -> i64 {
    let time = time.expect("a time");
    time.seconds * 1000 + i64::from(time.nanos) / 1_000_000
}

/// A tenant's own digits and lifetimes (as `mfa-server tenant update` sets
/// them) apply to the challenges and enrollments created afterwards, a
/// refused update changes nothing, and `--default-ttls` brings the server's
/// lifetimes back.
#[tokio::test]
async fn a_tenant_s_own_digits_and_lifetimes_apply_to_what_it_creates_next() {
    let server = TestServer::start_with(|c| c.tenant_cache_ttl = Duration::ZERO).await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let service = server.service();
    let tenant = &server.tenant.id;
    let own = TenantChanges {
        number_digits: Some(5),
        challenge_ttl: Some(Some(Duration::from_secs(45))),
        enrollment_ttl: Some(Some(Duration::from_secs(3 * 60 * 60))),
        ..Default::default()
    };
    service.update_tenant(tenant, &own).await.unwrap();
    for refused in [
        TenantChanges {
            challenge_ttl: Some(Some(Duration::from_secs(29))),
            ..Default::default()
        },
        TenantChanges {
            number_digits: Some(2),
            enrollment_ttl: Some(Some(Duration::from_secs(25 * 60 * 60))),
            ..Default::default()
        },
        TenantChanges::default(),
    ] {
        let error = service.update_tenant(tenant, &refused).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error}");
    }
    let unknown = service
        .update_tenant("9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", &own)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    assert_eq!(challenge.number.len(), 5, "{challenge:?}");
    assert_eq!(
        ms(challenge.expire_time) - ms(challenge.create_time),
        45_000
    );
    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.number_length, 5);
    let before = mfa_server::domain::now_ms();
    let begun = portal.begin_enrollment("v", "v@example.jp").await.unwrap();
    let after = mfa_server::domain::now_ms();
    let lifetime = ms(begun.expire_time);
    assert!(
        (before + 3 * 3_600_000..=after + 3 * 3_600_000).contains(&lifetime),
        "an activation code of the tenant's 3h"
    );

    let defaults = TenantChanges {
        challenge_ttl: Some(None),
        enrollment_ttl: Some(None),
        ..Default::default()
    };
    let back = service.update_tenant(tenant, &defaults).await.unwrap();
    assert_eq!((back.number_digits, back.challenge_ttl), (5, None));
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    assert_eq!(
        ms(challenge.expire_time) - ms(challenge.create_time),
        server.config.challenge_ttl.as_millis() as i64
    );
    let types = server.audit_types("").await;
    assert_eq!(
        types.iter().filter(|t| *t == "tenant.updated").count(),
        2,
        "only the updates that happened are audited: {types:?}"
    );
}

/// A key's last use is written when a server reads the key from the
/// database, and at most once a minute: however busy, a key costs one write
/// a minute, and `api-key list` shows the use to within that.
#[tokio::test]
async fn a_key_s_last_use_is_recorded_at_most_once_a_minute() {
    use mfa_server::model::Role;
    let server = TestServer::start_with(|c| c.api_key_cache_ttl = Duration::ZERO).await;
    let server = &server;
    let last_use = |role: Role| async move {
        server
            .service()
            .list_api_keys(Some(&server.tenant.id))
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.role == role)
            .expect("a key of the role")
            .last_used_at
    };
    assert_eq!(last_use(Role::Portal).await, None, "not used yet");
    let before = mfa_server::domain::now_ms();
    let portal = server.portal().await;
    portal.user_status("u").await.unwrap();
    let first = last_use(Role::Portal).await.expect("the use is recorded");
    assert!(first >= before);
    // So that a second write could not carry the same time.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for _ in 0..5 {
        portal.user_status("u").await.unwrap();
    }
    assert_eq!(
        last_use(Role::Portal).await,
        Some(first),
        "every call read the key from the database, none rewrote its use"
    );
    assert_eq!(
        last_use(Role::Admin).await,
        None,
        "the admin key was not used"
    );
}

/// An administrator deletes a user: the watch on their pending sign-in ends
/// (NOT_FOUND), their phone is refused as unknown, nothing in the database
/// names them any more, the deletion is audited with counts and the admin
/// key's id only, and deleting again succeeds with nothing to delete. The
/// same user id in another tenant, and another user, keep everything.
#[tokio::test]
async fn deleting_a_user_erases_them_and_ends_what_was_open() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut admin = server.admin().await;
    let mut phone = server
        .enroll_device(
            &portal,
            "hanako",
            "hanako@example.jp",
            phone_info("Hanako's Pixel"),
        )
        .await;
    let mut kenji = server.enroll(&portal, "kenji", "kenji@example.jp").await;
    let elsewhere = server.create_tenant("Elsewhere", 2).await;
    let other_portal = server.portal_with(&elsewhere.portal_key).await;
    let mut namesake = server
        .enroll(&other_portal, "hanako", "hanako@elsewhere.example")
        .await;

    let challenge = portal
        .start_sign_in("hanako", SignInContext::default())
        .await
        .unwrap();
    let mut watch = portal
        .watch_challenge(&challenge.challenge_id)
        .await
        .unwrap();
    watch.message().await.unwrap();
    let open = portal
        .begin_enrollment("hanako", "hanako@example.jp")
        .await
        .unwrap();
    let mut enrollment_watch = portal.watch_enrollment(&open.enrollment_id).await.unwrap();
    enrollment_watch.message().await.unwrap();

    let delete = |user_id: &str| proto::DeleteUserRequest {
        user_id: user_id.into(),
    };
    let deleted = admin
        .delete_user(delete("hanako"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        deleted,
        proto::DeleteUserResponse {
            user_found: true,
            deleted_devices: 1,
            // The verification round and the sign-in.
            deleted_challenges: 2,
            deleted_enrollments: 2,
            cancelled_challenges: 1,
            cancelled_enrollments: 1,
            anonymised_audit_events: deleted.anonymised_audit_events,
        }
    );
    assert!(deleted.anonymised_audit_events >= 5, "{deleted:?}");

    let ended = within(watch.message()).await.unwrap_err();
    assert_eq!(ended.code(), Code::NotFound, "{ended:?}");
    let ended = within(enrollment_watch.message()).await.unwrap_err();
    assert_eq!(ended.code(), Code::NotFound, "{ended:?}");
    let refused = phone.pending_challenges().await.unwrap_err();
    assert!(refused.is_device_unknown(), "{refused:?}");
    let device_id = phone.account().device_id.clone();
    let saved = mfa_sdk::MemoryKeyStore::new();
    mfa_sdk::KeyStore::create_key(&saved).unwrap();
    mfa_sdk::KeyStore::save(&saved, phone.account()).unwrap();
    phone
        .remove(&saved)
        .await
        .expect("the app forgets a deleted account");
    assert!(mfa_sdk::KeyStore::load(&saved).unwrap().is_none());
    let gone = portal
        .get_challenge(&challenge.challenge_id)
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some(Code::NotFound));
    let status = portal.user_status("hanako").await.unwrap();
    assert!(
        status.devices.is_empty() && status.email.is_empty(),
        "{status:?}"
    );
    assert!(server.audit_events("hanako").await.is_empty());

    let admin_key = server
        .service()
        .list_api_keys(Some(&server.tenant.id))
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.role == mfa_server::model::Role::Admin)
        .unwrap()
        .id;
    let events = server.audit_events("").await;
    let deletion = events
        .iter()
        .find(|e| e.event_type == "user.deleted")
        .expect("the deletion is audited");
    assert!(deletion.user_id.is_empty(), "{deletion:?}");
    assert!(
        deletion
            .detail
            .ends_with(&format!("; by admin key {admin_key}")),
        "{deletion:?}"
    );
    let rows = server.database_rows().await;
    for personal in [
        "hanako@example.jp",
        "Hanako's Pixel",
        device_id.as_str(),
        challenge.challenge_id.as_str(),
        open.enrollment_id.as_str(),
    ] {
        assert!(!rows.contains(personal), "{personal} is still stored");
    }
    assert!(
        !events
            .iter()
            .any(|e| e.user_id == "hanako" || e.detail.contains("hanako")),
        "{events:?}"
    );

    // Again, and for someone who never was: nothing to delete, no error.
    for user_id in ["hanako", "nobody"] {
        let again = admin
            .delete_user(delete(user_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, proto::DeleteUserResponse::default(), "{user_id}");
    }
    let bad = admin.delete_user(delete("")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        server
            .audit_types("")
            .await
            .iter()
            .filter(|t| *t == "user.deleted")
            .count(),
        1,
        "only the deletion that deleted something is audited"
    );

    // The others keep signing in.
    for (portal, phone, user_id) in [
        (&portal, &mut kenji, "kenji"),
        (&other_portal, &mut namesake, "hanako"),
    ] {
        let challenge = portal
            .start_sign_in(user_id, SignInContext::default())
            .await
            .unwrap();
        let pending = only_pending(phone).await;
        let answer = phone.approve(&pending, &challenge.number).await.unwrap();
        assert_eq!(answer.state, ChallengeState::Approved);
    }
    // A new enrollment for the deleted user id starts from nothing.
    let mut again = server.enroll(&portal, "hanako", "hanako@example.jp").await;
    let challenge = portal
        .start_sign_in("hanako", SignInContext::default())
        .await
        .unwrap();
    assert_eq!(
        only_pending(&mut again).await.challenge_id,
        challenge.challenge_id
    );
}
