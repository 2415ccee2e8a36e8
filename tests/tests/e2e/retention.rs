//! Retention: the sweeper's purge deletes ended challenges and enrollments
//! after `retention` (never before `challenge_window`, whose limit counts
//! them) and audit events after `audit_retention`; pending challenges and
//! devices stay.

use mfa_proto::v1::{ChallengeState, SignInContext};
use mfa_server::domain::now_ms;
use mfa_tests::*;
use std::time::Duration;

const MINUTE_MS: i64 = 60_000;

#[tokio::test]
async fn the_purge_deletes_ended_challenges_and_old_audit_only() {
    let server = TestServer::start_with(|c| {
        c.retention = Duration::from_secs(1);
        c.challenge_window = Duration::from_secs(15 * 60);
        c.audit_retention = Duration::from_secs(60 * 60);
    })
    .await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let answered = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let shown = only_pending(&mut phone).await;
    phone.approve(&shown, &answered.number).await.unwrap();
    let _other_phone = server.enroll(&portal, "v", "v@example.jp").await;
    let pending = portal
        .start_sign_in("v", SignInContext::default())
        .await
        .unwrap();
    let audit_before = server.audit_types("").await;
    let now = now_ms();

    // Past `retention` but within `challenge_window`: the limit still counts
    // the challenge, so it stays.
    server
        .service()
        .purge_at(now + 10 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(
        portal
            .get_challenge(&answered.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Approved
    );

    // Past the window: the ended challenge is gone, the pending one, the
    // devices and the audit log stay.
    let deleted = server
        .service()
        .purge_at(now + 16 * MINUTE_MS)
        .await
        .unwrap();
    assert!(deleted >= 1, "{deleted}");
    let gone = portal
        .get_challenge(&answered.challenge_id)
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some(tonic::Code::NotFound), "{gone:?}");
    assert_eq!(
        portal
            .get_challenge(&pending.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Pending
    );
    assert_eq!(server.audit_types("").await, audit_before);
    let again = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let shown = only_pending(&mut phone).await;
    assert_eq!(
        phone.approve(&shown, &again.number).await.unwrap().state,
        ChallengeState::Approved
    );

    // Past `audit_retention` of everything so far: the audit log is empty.
    server
        .service()
        .purge_at(now + 61 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(server.audit_types("").await, Vec::<String>::new());
}
