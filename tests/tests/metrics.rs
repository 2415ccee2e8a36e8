//! The metrics a scripted run leaves behind, scraped from `/metrics` and read
//! with a Prometheus text-format parser. A test binary of its own: the
//! recorder is process-wide, and gRPC and push counts carry no tenant label.

use mfa_proto::v1::{self as proto, ChallengeState, SignInContext};
use mfa_sdk::{Authenticator, DeviceInfo, EnrollmentUri, MemoryKeyStore, PushPlatform};
use mfa_tests::scrape::{scrape, value};
use mfa_tests::*;
use std::time::Duration;
use tonic::Code;

async fn sign_in(portal: &mfa_sdk::portal::RelyingParty) -> proto::Challenge {
    portal
        .start_sign_in("u", SignInContext::default())
        .await
        .expect("challenge created")
}

#[tokio::test]
async fn metrics_count_what_a_scripted_run_did() {
    let server = TestServer::start_with(|c| {
        c.challenge_ttl = Duration::from_secs(2);
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let tenant = server.tenant.id.as_str();
    let portal = server.portal().await;

    // Enrollment of an Android phone: started, registered, verified.
    let begun = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
    let info = DeviceInfo {
        name: "Pixel".into(),
        push_platform: PushPlatform::Fcm,
        push_token: "fcm-token-1".into(),
    };
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let (mut phone, verification) = Authenticator::enroll(&uri, info, &MemoryKeyStore::new())
        .await
        .unwrap();
    let number = verification_number(&portal, &begun.enrollment_id).await;
    phone.approve(&verification, &number).await.unwrap();
    // A second enrollment that an administrator's reset cancels.
    portal.begin_enrollment("v", "v@example.jp").await.unwrap();
    server
        .admin()
        .await
        .reset_user_methods(proto::ResetUserMethodsRequest {
            user_id: "v".into(),
        })
        .await
        .unwrap();

    // Approved, denied, wrong number.
    let challenge = sign_in(&portal).await;
    let pending = only_pending(&mut phone).await;
    phone.approve(&pending, &challenge.number).await.unwrap();
    sign_in(&portal).await;
    let pending = only_pending(&mut phone).await;
    phone.deny(&pending).await.unwrap();
    let challenge = sign_in(&portal).await;
    let pending = only_pending(&mut phone).await;
    phone
        .approve(&pending, &wrong_number(&challenge.number))
        .await
        .unwrap();
    // Superseded by a second, which the portal cancels.
    sign_in(&portal).await;
    let second = sign_in(&portal).await;
    portal.cancel(&second.challenge_id).await.unwrap();
    // Expired (the configured two seconds).
    let expiring = sign_in(&portal).await;
    let ended = within(portal.await_outcome(&expiring.challenge_id))
        .await
        .unwrap();
    assert_eq!(ended.state(), ChallengeState::Expired);
    // One pending right now, then reported as fraud, which blocks the user.
    sign_in(&portal).await;
    let during = scrape(&server).await;
    let pending = only_pending(&mut phone).await;
    phone.report_fraud(&pending).await.unwrap();
    let blocked = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap_err();
    assert_eq!(blocked.code(), Some(Code::FailedPrecondition));
    // A portal with a wrong key.
    let stranger = server.portal_with("mfak_not-a-key").await;
    let refused = stranger
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(Code::Unauthenticated));

    assert_eq!(value(&during, "mfa_challenges_pending", &[]), 1.0);
    let after = scrape(&server).await;
    let t = ("tenant", tenant);
    assert_eq!(value(&after, "mfa_challenges_pending", &[]), 0.0);
    assert_eq!(
        value(
            &after,
            "mfa_build_info",
            &[("version", mfa_server::VERSION)]
        ),
        1.0,
        "the running version is exported"
    );
    assert_eq!(value(&after, "mfa_challenges_created_total", &[t]), 7.0);
    for (outcome, count) in [
        ("approved", 1.0),
        ("denied", 1.0),
        ("wrong_number", 1.0),
        ("superseded", 1.0),
        ("cancelled", 1.0),
        ("expired", 1.0),
        ("fraud", 1.0),
    ] {
        let o = ("outcome", outcome);
        assert_eq!(
            value(&after, "mfa_challenges_ended_total", &[t, o]),
            count,
            "{outcome}"
        );
    }
    // Only answers made by a person are timed.
    assert_eq!(
        value(&after, "mfa_challenge_answer_seconds_count", &[t]),
        4.0
    );
    for (outcome, count) in [
        ("started", 2.0),
        ("registered", 1.0),
        ("verified", 1.0),
        ("cancelled", 1.0),
    ] {
        let o = ("outcome", outcome);
        assert_eq!(
            value(&after, "mfa_enrollments_total", &[t, o]),
            count,
            "{outcome}"
        );
    }

    // No FCM credentials are configured here: each push is recorded as failed
    // at once (delivery itself is covered by the e2e push tests).
    let fcm = ("provider", "fcm");
    assert_eq!(
        value(
            &after,
            "mfa_push_sends_total",
            &[fcm, ("outcome", "failed")]
        ),
        7.0
    );
    assert_eq!(value(&after, "mfa_push_sends_total", &[fcm]), 7.0);
    assert_eq!(value(&after, "mfa_push_accept_seconds_count", &[fcm]), 0.0);

    let create = [
        ("service", "mfa.v1.PortalService"),
        ("method", "CreateChallenge"),
    ];
    let with_code = |code| [create[0], create[1], ("code", code)];
    assert_eq!(
        value(&after, "mfa_grpc_requests_total", &with_code("OK")),
        7.0
    );
    assert_eq!(
        value(
            &after,
            "mfa_grpc_requests_total",
            &with_code("FailedPrecondition")
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "mfa_grpc_requests_total",
            &with_code("Unauthenticated")
        ),
        1.0
    );
    assert_eq!(
        value(&after, "mfa_grpc_request_duration_seconds_count", &create),
        9.0
    );
    let respond = [("method", "RespondToChallenge"), ("code", "OK")];
    // Four sign-in answers and the verification round.
    assert_eq!(value(&after, "mfa_grpc_requests_total", &respond), 5.0);
    assert_eq!(
        value(&after, "mfa_auth_failures_total", &[("kind", "api_key")]),
        1.0
    );

    let store = [("operation", "create_challenge")];
    assert_eq!(
        value(&after, "mfa_store_operation_seconds_count", &store),
        7.0
    );
    assert_eq!(value(&after, "mfa_health_serving", &[]), 1.0);
    // The sweeper sweeps when a deadline comes (here: the start and the one
    // expiry), not once for each of the nine challenges and enrollments.
    let sweeps = value(
        &after,
        "mfa_store_operation_seconds_count",
        &[("operation", "sweep")],
    );
    assert!((1.0..=4.0).contains(&sweeps), "{sweeps} sweeps");

    // HTTP/JSON calls count under the same names, with their transport
    // (the user is blocked after the fraud report above).
    let api = server.http_api();
    let created = api
        .post("/v1/challenges", serde_json::json!({"user_id": "u"}))
        .await;
    assert_eq!(created.reason(), "USER_BLOCKED");
    api.with_key(None)
        .post("/v1/challenges", serde_json::json!({"user_id": "u"}))
        .await;
    api.get("/v1/users/u").await;
    let http = scrape(&server).await;
    let calls = |method, code, transport| {
        value(
            &http,
            "mfa_grpc_requests_total",
            &[
                ("service", "mfa.v1.PortalService"),
                ("method", method),
                ("code", code),
                ("transport", transport),
            ],
        )
    };
    assert_eq!(calls("CreateChallenge", "FailedPrecondition", "http"), 1.0);
    assert_eq!(calls("CreateChallenge", "FailedPrecondition", "grpc"), 1.0);
    assert_eq!(calls("CreateChallenge", "OK", "grpc"), 7.0);
    assert_eq!(calls("CreateChallenge", "Unauthenticated", "http"), 1.0);
    assert_eq!(calls("GetUserStatus", "OK", "http"), 1.0);
    assert_eq!(
        value(
            &http,
            "mfa_grpc_request_duration_seconds_count",
            &[("method", "CreateChallenge"), ("transport", "http")]
        ),
        2.0
    );
    assert_eq!(
        value(&http, "mfa_auth_failures_total", &[("kind", "api_key")]),
        2.0
    );

    // No label carries a user id or an e-mail address.
    for sample in &http.samples {
        for (_, label) in sample.labels.iter() {
            assert!(
                !["u", "v", "u@example.jp", "v@example.jp"].contains(&label.as_str()),
                "{} carries {label:?}",
                sample.metric
            );
        }
    }
}
