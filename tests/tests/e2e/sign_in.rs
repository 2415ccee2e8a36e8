//! Sign-in challenges: approve, deny, wrong number, fraud, expiry,
//! supersede, cancel, limits, and the race between two answers.

use mfa_proto::v1::{ChallengeKind, ChallengeState, DenyReason, SignInContext};
use mfa_sdk::proto;
use mfa_tests::*;
use std::time::Duration;
use tonic::Code;

fn context() -> SignInContext {
    SignInContext {
        application_name: "Customer portal".into(),
        client_ip: "203.0.113.7".into(),
        location: "Tokyo, JP".into(),
        message: "Sign-in from a new browser".into(),
    }
}

#[tokio::test]
async fn approving_with_the_typed_number_signs_the_person_in() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "hanako", "hanako@example.jp").await;

    let challenge = portal.start_sign_in("hanako", context()).await.unwrap();
    assert_eq!(challenge.state(), ChallengeState::Pending);
    let number: u32 = challenge.number.parse().unwrap();
    assert!((10..=99).contains(&number));
    let mut watch = portal
        .watch_challenge(&challenge.challenge_id)
        .await
        .unwrap();
    let first = watch.message().await.unwrap().unwrap().challenge.unwrap();
    assert_eq!(first.state(), ChallengeState::Pending);

    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.challenge_id, challenge.challenge_id);
    assert_eq!(pending.kind, ChallengeKind::SignIn);
    assert_eq!(
        pending.tenant_display_name,
        "IHIGrp (External Collaboration)"
    );
    assert_eq!(pending.user_email, "hanako@example.jp");
    assert_eq!(pending.application_name, "Customer portal");
    assert_eq!(pending.client_ip, "203.0.113.7");
    assert_eq!(pending.location, "Tokyo, JP");
    assert_eq!(pending.number_length, 2);

    let answer = phone.approve(&pending, &challenge.number).await.unwrap();
    assert_eq!(answer.state, ChallengeState::Approved);
    let seen = watch.message().await.unwrap().unwrap().challenge.unwrap();
    assert_eq!(seen.state(), ChallengeState::Approved);
    assert_eq!(seen.answered_by_device_id, phone.account().device_id);
    assert!(seen.end_time.is_some());
    assert!(watch.message().await.unwrap().is_none());
    assert_eq!(
        portal
            .get_challenge(&challenge.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Approved
    );
    assert!(phone.pending_challenges().await.unwrap().is_empty());
}

#[tokio::test]
async fn denying_ends_the_challenge_as_denied() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let pending = only_pending(&mut phone).await;
    let answer = phone.deny(&pending).await.unwrap();
    assert_eq!(
        (answer.state, answer.deny_reason),
        (ChallengeState::Denied, DenyReason::UserDenied)
    );
    let outcome = portal.await_outcome(&challenge.challenge_id).await.unwrap();
    assert_eq!(outcome.state(), ChallengeState::Denied);
    assert_eq!(outcome.deny_reason(), DenyReason::UserDenied);
}

#[tokio::test]
async fn a_wrong_number_denies_and_cannot_be_retried() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let pending = only_pending(&mut phone).await;
    let answer = phone
        .approve(&pending, &wrong_number(&challenge.number))
        .await
        .unwrap();
    assert_eq!(
        (answer.state, answer.deny_reason),
        (ChallengeState::Denied, DenyReason::WrongNumber)
    );
    let retry = phone
        .approve(&pending, &challenge.number)
        .await
        .unwrap_err();
    assert!(retry.is_challenge_ended(), "{retry:?}");
    let outcome = portal.get_challenge(&challenge.challenge_id).await.unwrap();
    assert_eq!(outcome.deny_reason(), DenyReason::WrongNumber);
}

#[tokio::test]
async fn a_fraud_report_blocks_the_user_until_an_admin_unblocks() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut admin = server.admin().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let pending = only_pending(&mut phone).await;
    let answer = phone.report_fraud(&pending).await.unwrap();
    assert_eq!(
        (answer.state, answer.deny_reason),
        (ChallengeState::Denied, DenyReason::FraudReported)
    );
    assert_eq!(
        portal
            .get_challenge(&challenge.challenge_id)
            .await
            .unwrap()
            .deny_reason(),
        DenyReason::FraudReported
    );

    let status = portal.user_status("u").await.unwrap();
    assert!(status.blocked);
    assert!(status.blocked_until.is_some());
    let refused = portal.start_sign_in("u", context()).await.unwrap_err();
    assert!(refused.is_user_blocked(), "{refused:?}");
    assert_eq!(refused.code(), Some(Code::FailedPrecondition));

    admin
        .unblock_user(proto::UnblockUserRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap();
    assert!(!portal.user_status("u").await.unwrap().blocked);
    let again = portal.start_sign_in("u", context()).await.unwrap();
    let pending = only_pending(&mut phone).await;
    assert_eq!(
        phone.approve(&pending, &again.number).await.unwrap().state,
        ChallengeState::Approved
    );

    let events = admin
        .list_audit_events(proto::ListAuditEventsRequest {
            user_id: "u".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    for expected in [
        "user.blocked",
        "user.unblocked",
        "challenge.refused_blocked",
        "challenge.denied",
        "challenge.approved",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
}

#[tokio::test]
async fn a_fraud_block_ends_by_itself_after_the_configured_time() {
    let server = TestServer::start_with(|c| c.fraud_block = Duration::from_millis(200)).await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    portal.start_sign_in("u", context()).await.unwrap();
    let pending = only_pending(&mut phone).await;
    phone.report_fraud(&pending).await.unwrap();
    assert!(portal
        .start_sign_in("u", context())
        .await
        .unwrap_err()
        .is_user_blocked());
    // The block is a stored deadline; waiting it out is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(250)).await;
    portal.start_sign_in("u", context()).await.unwrap();
}

#[tokio::test]
async fn an_unanswered_challenge_expires() {
    let server = TestServer::start_with(|c| c.challenge_ttl = Duration::from_millis(400)).await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let pending = only_pending(&mut phone).await;
    let outcome = within(portal.await_outcome(&challenge.challenge_id))
        .await
        .unwrap();
    assert_eq!(outcome.state(), ChallengeState::Expired);
    let late = phone
        .approve(&pending, &challenge.number)
        .await
        .unwrap_err();
    assert!(late.is_challenge_expired(), "{late:?}");
    assert!(phone.pending_challenges().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_new_challenge_supersedes_the_pending_one() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let old = portal.start_sign_in("u", context()).await.unwrap();
    let old_pending = only_pending(&mut phone).await;
    let new = portal.start_sign_in("u", context()).await.unwrap();
    assert_eq!(
        portal
            .get_challenge(&old.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Superseded
    );
    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.challenge_id, new.challenge_id);
    let stale = phone.approve(&old_pending, &old.number).await.unwrap_err();
    assert!(stale.is_challenge_ended(), "{stale:?}");
    assert_eq!(
        phone.approve(&pending, &new.number).await.unwrap().state,
        ChallengeState::Approved
    );
}

#[tokio::test]
async fn a_cancelled_challenge_cannot_be_approved() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let pending = only_pending(&mut phone).await;
    assert_eq!(
        portal
            .cancel(&challenge.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Cancelled
    );
    let error = phone
        .approve(&pending, &challenge.number)
        .await
        .unwrap_err();
    assert!(error.is_challenge_ended(), "{error:?}");
    let again = portal.cancel(&challenge.challenge_id).await.unwrap_err();
    assert_eq!(again.code(), Some(Code::FailedPrecondition));
}

#[tokio::test]
async fn too_many_challenges_for_one_user_are_refused() {
    let server = TestServer::start_with(|c| c.challenge_limit = 3).await;
    let portal = server.portal().await;
    server.enroll(&portal, "u", "u@example.jp").await;
    for _ in 0..3 {
        portal.start_sign_in("u", context()).await.unwrap();
    }
    let error = portal.start_sign_in("u", context()).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::ResourceExhausted));
    assert!(error.is_rate_limited());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_answering_at_once_yield_exactly_one_winner() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut first = server.enroll(&portal, "u", "u@example.jp").await;
    let mut second = server.enroll(&portal, "u", "u@example.jp").await;
    for _ in 0..5 {
        let challenge = portal.start_sign_in("u", context()).await.unwrap();
        let a = only_pending(&mut first).await;
        let b = only_pending(&mut second).await;
        let (mut p1, mut p2) = (first.clone(), second.clone());
        let (n1, n2) = (challenge.number.clone(), challenge.number.clone());
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move { p1.approve(&a, &n1).await }),
            tokio::spawn(async move { p2.deny(&b).await.map(|answer| (answer, n2)) })
        );
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        let winners = usize::from(r1.is_ok()) + usize::from(r2.is_ok());
        assert_eq!(winners, 1, "exactly one answer wins: {r1:?} {r2:?}");
        let loser = r1.as_ref().err().or(r2.as_ref().err()).unwrap();
        assert!(loser.is_challenge_ended(), "{loser:?}");
        let outcome = portal.get_challenge(&challenge.challenge_id).await.unwrap();
        let expected = if r1.is_ok() {
            ChallengeState::Approved
        } else {
            ChallengeState::Denied
        };
        assert_eq!(outcome.state(), expected);
    }
}

#[tokio::test]
async fn the_number_has_the_tenants_digits() {
    let server = TestServer::start().await;
    let tenant = server.create_tenant("Six digits Inc.", 6).await;
    let portal = server.portal_with(&tenant.portal_key).await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    assert_eq!(challenge.number.len(), 6);
    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.number_length, 6);
    assert_eq!(pending.tenant_display_name, "Six digits Inc.");
    assert_eq!(
        phone
            .approve(&pending, &challenge.number)
            .await
            .unwrap()
            .state,
        ChallengeState::Approved
    );
}
