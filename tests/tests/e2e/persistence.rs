//! A restart keeps everything: devices, pending challenges, the server key,
//! terms and the audit log.

use mfa_proto::v1::{self as proto, ChallengeState, SignInContext};
use mfa_tests::*;

#[tokio::test]
async fn a_restarted_server_keeps_everything() {
    let mut server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    portal
        .record_terms_acceptance("u", "2026-04")
        .await
        .unwrap();
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let audit_before = audit_count(&server).await;
    let mut watch = portal
        .watch_challenge(&challenge.challenge_id)
        .await
        .unwrap();
    watch.message().await.unwrap();

    server.restart().await;

    // An open watch is closed with a status that tells the portal to watch again.
    let closed = within(watch.message()).await.unwrap_err();
    assert_eq!(closed.code(), tonic::Code::Unavailable, "{closed:?}");

    let portal = server.portal().await;
    let status = portal.user_status("u").await.unwrap();
    assert_eq!(status.devices.len(), 1);
    assert_eq!(status.accepted_terms_version, "2026-04");
    assert_eq!(
        portal
            .get_challenge(&challenge.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Pending
    );
    // The phone verifies the context with the key it pinned before the restart.
    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.challenge_id, challenge.challenge_id);
    assert_eq!(
        phone
            .approve(&pending, &challenge.number)
            .await
            .unwrap()
            .state,
        ChallengeState::Approved
    );
    assert_eq!(
        portal
            .await_outcome(&challenge.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Approved
    );
    assert!(audit_count(&server).await > audit_before);
    if postgres::backend() == postgres::Backend::Sqlite {
        assert!(server.dir().join("mfa.db").exists());
    }
}

async fn audit_count(server: &TestServer) -> usize {
    let mut admin = server.admin().await;
    let request = proto::ListAuditEventsRequest {
        page_size: 1000,
        ..Default::default()
    };
    admin
        .list_audit_events(request)
        .await
        .unwrap()
        .into_inner()
        .events
        .len()
}
