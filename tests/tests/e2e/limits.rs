//! Resource limits: each is set low in the configuration, crossed, and
//! answered with its documented status code, counted in the metrics.

use mfa_proto::v1::{
    self as proto, ChallengeState, Decision, ResetUserMethodsRequest, SignInContext,
};
use mfa_sdk::{reason, UserVerification};
use mfa_tests::{
    scrape::{scrape, value},
    *,
};
use std::time::{Duration, Instant};
use tonic::Code;

async fn throttled(server: &TestServer, limit: &str) -> f64 {
    value(
        &scrape(server).await,
        "mfa_throttled_total",
        &[("limit", limit)],
    )
}

#[tokio::test]
async fn a_request_larger_than_max_message_size_is_out_of_range() {
    let server = TestServer::start_with(|c| c.max_message_size = 1024).await;
    let portal = server.portal().await;
    let oversized = proto::CreateChallengeRequest {
        user_id: "u".repeat(2000),
        context: None,
    };
    let status = portal
        .client()
        .create_challenge(oversized)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let info = error_info(&status);
    assert_eq!(info.reason, reason::REQUEST_TOO_LARGE);
    assert_eq!(info.metadata["max_bytes"], "1024");
    // Below the limit the same kind of request is decoded and judged on its content.
    let decoded = proto::CreateChallengeRequest {
        user_id: "u".repeat(900),
        context: None,
    };
    let status = portal.client().create_challenge(decoded).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn calls_past_the_per_connection_limit_are_resource_exhausted() {
    let server = TestServer::start_with(|c| c.max_streams_per_connection = 2).await;
    let enrolling = server.portal().await;
    let mut phone = server.enroll(&enrolling, "u", "u@example.jp").await;
    let challenge = enrolling
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();

    // One connection holds two open watches: its third call is refused.
    let portal = server.portal().await;
    let mut watches = Vec::new();
    for _ in 0..2 {
        let mut watch = portal
            .watch_challenge(&challenge.challenge_id)
            .await
            .unwrap();
        within(watch.message()).await.unwrap().expect("first state");
        watches.push(watch);
    }
    let status = portal
        .client()
        .get_user_status(proto::GetUserStatusRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = error_info(&status);
    assert_eq!(info.reason, reason::TOO_MANY_STREAMS);
    assert_eq!(info.metadata["max_streams"], "2");
    assert!(throttled(&server, "connection_streams").await >= 1.0);

    // Other connections are not affected, and nothing changed.
    let other = server.portal().await;
    assert_eq!(other.user_status("u").await.unwrap().devices.len(), 1);
    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.challenge_id, challenge.challenge_id);
}

#[tokio::test]
async fn a_watch_ends_after_watch_max_duration() {
    let server =
        TestServer::start_with(|c| c.watch_max_duration = Duration::from_millis(300)).await;
    let portal = server.portal().await;
    let begun = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
    let mut watch = portal.watch_enrollment(&begun.enrollment_id).await.unwrap();
    let first = within(watch.message()).await.unwrap().expect("first state");
    assert_eq!(
        first.enrollment.unwrap().state(),
        proto::EnrollmentState::WaitingForScan
    );
    let ended = within(watch.message()).await.unwrap_err();
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");
    assert_eq!(error_info(&ended).reason, reason::WATCH_DURATION_EXCEEDED);
    // The portal watches again and gets the current state.
    let mut again = portal.watch_enrollment(&begun.enrollment_id).await.unwrap();
    assert!(within(again.message()).await.unwrap().is_some());
}

#[tokio::test]
async fn watch_streams_per_tenant_are_limited() {
    let server = TestServer::start_with(|c| c.watch_streams_per_tenant = 2).await;
    let portal = server.portal().await;
    let mut watches = Vec::new();
    for user in ["a", "b"] {
        let begun = portal
            .begin_enrollment(user, &format!("{user}@example.jp"))
            .await
            .unwrap();
        let mut watch = portal.watch_enrollment(&begun.enrollment_id).await.unwrap();
        within(watch.message()).await.unwrap().expect("first state");
        watches.push(watch);
    }
    let third = portal.begin_enrollment("c", "c@example.jp").await.unwrap();
    let error = server
        .portal()
        .await
        .watch_enrollment(&third.enrollment_id)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::ResourceExhausted), "{error:?}");
    assert_eq!(error.reason(), Some(reason::TOO_MANY_WATCHES));
    assert!(throttled(&server, "watch_streams").await >= 1.0);

    // Another tenant has its own slots.
    let other = server.create_tenant("Other", 2).await;
    let other_portal = server.portal_with(&other.portal_key).await;
    let begun = other_portal
        .begin_enrollment("x", "x@example.jp")
        .await
        .unwrap();
    let mut watch = other_portal
        .watch_enrollment(&begun.enrollment_id)
        .await
        .unwrap();
    assert!(within(watch.message()).await.unwrap().is_some());

    // A watch that ends frees its slot: cancel user a's enrollment.
    server
        .admin()
        .await
        .reset_user_methods(ResetUserMethodsRequest {
            user_id: "a".into(),
        })
        .await
        .unwrap();
    let last = within(watches[0].message()).await.unwrap().expect("end");
    assert_eq!(
        last.enrollment.unwrap().state(),
        proto::EnrollmentState::Cancelled
    );
    let mut watch = portal.watch_enrollment(&third.enrollment_id).await.unwrap();
    assert!(within(watch.message()).await.unwrap().is_some());
}

#[tokio::test]
async fn failed_signatures_are_throttled_but_never_lock_out_a_correctly_signed_call() {
    let server = TestServer::start_with(|c| c.signature_failure_limit = 3).await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut phone).await;

    // Three forged answers are refused as such; past the limit, forgeries
    // from this address and for this device are refused as throttled.
    for expected in [
        Code::Unauthenticated,
        Code::Unauthenticated,
        Code::Unauthenticated,
        Code::ResourceExhausted,
        Code::ResourceExhausted,
    ] {
        let mut forged = phone
            .approval_request(
                &pending,
                Decision::Approve,
                &challenge.number,
                UserVerification::None,
            )
            .unwrap();
        forged.signature[0] ^= 1;
        let status = phone
            .client()
            .respond_to_challenge(forged)
            .await
            .unwrap_err();
        assert_eq!(status.code(), expected, "{status:?}");
    }
    assert!(throttled(&server, "device_signature").await >= 2.0);

    // The device's own correctly signed calls still go through: the
    // signature is checked before any limit.
    phone.pending_challenges().await.expect("pending list");
    let approved = phone.approve(&pending, &challenge.number).await.unwrap();
    assert_eq!(approved.state, ChallengeState::Approved);

    // The failures are audited with the caller's address, aggregated: the
    // counts add up to what happened, in at most one entry per minute.
    let events = server.audit_events("u").await;
    assert_eq!(
        occurrences(&events, "device.bad_signature"),
        3,
        "{events:?}"
    );
    assert_eq!(occurrences(&events, "device.throttled"), 2, "{events:?}");
    for event in events
        .iter()
        .filter(|e| ["device.bad_signature", "device.throttled"].contains(&&*e.event_type))
    {
        assert_eq!(event.client_address, "127.0.0.1", "{event:?}");
    }
    assert!(
        events
            .iter()
            .filter(|e| e.event_type == "device.bad_signature")
            .count()
            <= 2,
        "aggregated: {events:?}"
    );
}

#[tokio::test]
async fn the_portal_helper_watches_again_past_watch_max_duration() {
    let server = TestServer::start_with(|c| {
        c.watch_max_duration = Duration::from_millis(150);
        c.challenge_ttl = Duration::from_secs(2);
    })
    .await;
    let portal = server.portal().await;
    server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    // The challenge outlives several watches; the helper follows it to the end.
    let outcome = within(portal.await_outcome(&challenge.challenge_id))
        .await
        .unwrap();
    assert_eq!(outcome.state(), ChallengeState::Expired);
}

/// The idle timeout of the tests below: short, so that they wait little.
const IDLE: Duration = Duration::from_millis(200);

/// One gRPC health check on `connection`, read to its end; its code.
async fn health_check(server: &TestServer, connection: &mut raw::Connection) -> Code {
    // An empty HealthCheckRequest (the whole server).
    raw::call(
        connection,
        server,
        "/grpc.health.v1.Health/Check",
        None,
        raw::frame(&[]),
    )
    .await
    .code()
}

#[tokio::test]
async fn a_connection_without_a_call_for_idle_connection_timeout_is_closed() {
    let server = TestServer::start_with(|c| c.idle_connection_timeout = IDLE).await;
    let closed_before = throttled(&server, "idle_connection").await;
    let (mut connection, closed) = raw::connection(&server).await;
    // Taken before the call: the server's idle time starts when the call
    // ends there, which is before the client has its answer.
    let quiet_since = Instant::now();
    assert_eq!(health_check(&server, &mut connection).await, Code::Ok);

    within(closed).await.unwrap();
    assert!(quiet_since.elapsed() >= IDLE, "closed before it was idle");
    assert!(connection.is_closed());
    assert!(throttled(&server, "idle_connection").await > closed_before);
    // The client's next call opens a new connection.
    assert!(server.portal().await.user_status("u").await.is_ok());
}

#[tokio::test]
async fn an_open_watch_keeps_its_connection_past_idle_connection_timeout() {
    let server = TestServer::start_with(|c| c.idle_connection_timeout = IDLE).await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    // A connection that carries nothing but the watch.
    let watching = server.portal().await;
    let mut watch = watching
        .watch_challenge(&challenge.challenge_id)
        .await
        .unwrap();
    let first = within(watch.message()).await.unwrap().expect("first state");
    assert_eq!(first.challenge.unwrap().state(), ChallengeState::Pending);

    // Meanwhile a connection without a call is closed, and the watch stays
    // quiet for a few more idle periods...
    let (mut quiet, closed) = raw::connection(&server).await;
    assert_eq!(health_check(&server, &mut quiet).await, Code::Ok);
    within(closed).await.unwrap();
    tokio::time::sleep(IDLE * 3).await;

    // ...and still delivers the outcome.
    let pending = only_pending(&mut phone).await;
    phone.approve(&pending, &challenge.number).await.unwrap();
    let outcome = within(watch.message()).await.unwrap().expect("outcome");
    assert_eq!(outcome.challenge.unwrap().state(), ChallengeState::Approved);
}

#[tokio::test]
async fn a_connection_calling_more_often_than_idle_connection_timeout_stays_open() {
    let server = TestServer::start_with(|c| c.idle_connection_timeout = IDLE).await;
    let (mut connection, closed) = raw::connection(&server).await;
    let started = Instant::now();
    while started.elapsed() < IDLE * 4 {
        assert_eq!(health_check(&server, &mut connection).await, Code::Ok);
        tokio::time::sleep(IDLE / 4).await;
    }
    assert!(!closed.is_finished(), "the server closed a busy connection");
    assert_eq!(health_check(&server, &mut connection).await, Code::Ok);
}
