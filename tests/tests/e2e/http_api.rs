//! The HTTP/JSON API (`http_listen`) through real HTTP: every route, its
//! API-key checks, bad input, watches as server-sent events and long polls,
//! the limits it shares with gRPC, and errors that match gRPC's.

use http::{Method, StatusCode};
use mfa_proto::v1::{self as proto, SignInContext};
use mfa_sdk::reason;
use mfa_tests::{
    http_api::{Events, HttpApi},
    *,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A server with the HTTP/JSON listener on a free loopback port, and
/// `adjust` applied.
async fn server_with(adjust: impl FnOnce(&mut mfa_server::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
        adjust(c);
    })
    .await
}

/// Returns once the default tenant has `count` watches open (the server
/// frees a watch's slot when it sees the watch's caller go).
async fn watches_open(server: &TestServer, count: u32) {
    while server.service().open_watches(&server.tenant.id) != count {
        tokio::task::yield_now().await;
    }
}

async fn server() -> TestServer {
    server_with(|_| {}).await
}

/// Enrolls a phone for `user_id` through the HTTP API the way a portal
/// does: begin, show the QR code, long-poll until the number to show
/// appears, long-poll until verified.
async fn enroll_over_http(api: &HttpApi, user_id: &str) -> mfa_sdk::Authenticator {
    let begun = api
        .post(
            "/v1/enrollments",
            json!({"user_id": user_id, "email": format!("{user_id}@example.jp")}),
        )
        .await;
    assert_eq!(begun.status, StatusCode::CREATED, "{begun:?}");
    let begun = begun.json();
    let id = begun["enrollment_id"].as_str().unwrap().to_owned();
    assert!(begun["qr_svg"].as_str().unwrap().contains("<svg"));
    assert!(begun["manual_code"].as_str().unwrap().len() >= 10);
    let uri = mfa_sdk::EnrollmentUri::parse(begun["qr_uri"].as_str().unwrap()).unwrap();
    let (mut phone, verification) = mfa_sdk::Authenticator::enroll_with(
        &uri,
        phone_info("HTTP phone"),
        &mfa_sdk::MemoryKeyStore::new(),
        &mfa_sdk::ConnectOptions::default(),
    )
    .await
    .expect("phone enrolls");
    let registered = within(api.get(&format!("/v1/enrollments/{id}?wait=30s"))).await;
    let registered = registered.json();
    assert_eq!(registered["state"], "ENROLLMENT_STATE_DEVICE_REGISTERED");
    let number = registered["verification_number"].as_str().unwrap();
    phone.approve(&verification, number).await.unwrap();
    let verified = within(api.get(&format!(
        "/v1/enrollments/{id}?wait=30s&while_state=ENROLLMENT_STATE_DEVICE_REGISTERED"
    )))
    .await
    .json();
    assert_eq!(verified["state"], "ENROLLMENT_STATE_VERIFIED", "{verified}");
    assert_eq!(
        verified["device_id"].as_str().unwrap(),
        phone.account().device_id
    );
    phone
}

#[tokio::test]
async fn every_route_answers_a_portal_that_enrolls_and_signs_in() {
    let server = server().await;
    let api = server.http_api();
    let mut phone = enroll_over_http(&api, "hanako").await;

    let status = api.get("/v1/users/hanako").await;
    assert_eq!(status.status, StatusCode::OK);
    let status = status.json();
    assert_eq!(status["email"], "hanako@example.jp");
    assert_eq!(status["blocked"], false);
    assert_eq!(status["devices"][0]["state"], "DEVICE_STATE_ACTIVE");
    assert_eq!(status["devices"][0]["display_name"], "HTTP phone");
    assert_eq!(status["devices"][0]["push_status"], "PUSH_STATUS_NO_TOKEN");
    assert_eq!(
        status["devices"][0]["key_algorithm"],
        "KEY_ALGORITHM_ED25519"
    );

    // The offline code the phone shows is accepted once.
    let code = phone
        .account()
        .offline_code()
        .expect("the server has a key")
        .code;
    let verify = "/v1/users/hanako/offline-codes:verify";
    let accepted = api.post(verify, json!({"code": code})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{accepted:?}");
    assert_eq!(
        accepted.json()["device_id"].as_str().unwrap(),
        phone.account().device_id
    );
    let replayed = api.post(verify, json!({"code": code})).await;
    assert_eq!(replayed.status, StatusCode::CONFLICT);
    assert_eq!(replayed.reason(), reason::OFFLINE_CODE_USED);

    let terms = api
        .post(
            "/v1/users/hanako/terms",
            json!({"terms_version": "2026-04"}),
        )
        .await;
    assert_eq!(terms.status, StatusCode::OK);
    assert_eq!(terms.json()["accepted_terms_version"], "2026-04");
    let status = api.get("/v1/users/hanako").await.json();
    assert_eq!(status["accepted_terms_version"], "2026-04");
    assert!(status["terms_accept_time"].as_str().unwrap().ends_with('Z'));

    let created = api
        .post(
            "/v1/challenges",
            json!({"user_id": "hanako", "context": {"application_name": "Customer portal", "location": "Tokyo, JP"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let created = created.json();
    assert_eq!(created["state"], "CHALLENGE_STATE_PENDING");
    assert_eq!(created["kind"], "CHALLENGE_KIND_SIGN_IN");
    assert_eq!(created["context"]["location"], "Tokyo, JP");
    assert!(created.get("end_time").is_none(), "{created}");
    let id = created["challenge_id"].as_str().unwrap();
    let read = api.get(&format!("/v1/challenges/{id}")).await.json();
    assert_eq!(read["number"], created["number"]);
    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.application_name, "Customer portal");
    phone
        .approve(&pending, created["number"].as_str().unwrap())
        .await
        .unwrap();
    let approved = api.get(&format!("/v1/challenges/{id}")).await.json();
    assert_eq!(approved["state"], "CHALLENGE_STATE_APPROVED");
    assert_eq!(
        approved["answered_by_device_id"].as_str().unwrap(),
        phone.account().device_id
    );
    assert!(approved["end_time"].is_string());

    let second = api
        .post("/v1/challenges", json!({"user_id": "hanako"}))
        .await
        .json();
    let id = second["challenge_id"].as_str().unwrap();
    let cancelled = api
        .call(Method::POST, &format!("/v1/challenges/{id}:cancel"), None)
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{cancelled:?}");
    assert_eq!(cancelled.json()["state"], "CHALLENGE_STATE_CANCELLED");
    let again = api
        .call(Method::POST, &format!("/v1/challenges/{id}:cancel"), None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.reason(), reason::CHALLENGE_ENDED);

    // The document needs no key, and is the one committed.
    let document = HttpApi::new(&server.http_url(), None)
        .get("/v1/openapi.json")
        .await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(document.json()["openapi"], "3.1.0");
    let committed: Value =
        serde_json::from_str(include_str!("../../../docs/openapi.json")).unwrap();
    assert_eq!(document.json(), committed);
}

#[tokio::test]
async fn a_call_without_a_portal_key_is_refused_with_401_or_403() {
    let server = server().await;
    let api = server.http_api();
    for (key, status, expected) in [
        (None, StatusCode::UNAUTHORIZED, reason::API_KEY_MISSING),
        (
            Some("mfak_not-a-key"),
            StatusCode::UNAUTHORIZED,
            reason::API_KEY_INVALID,
        ),
        (
            Some("Basic abc"),
            StatusCode::UNAUTHORIZED,
            reason::API_KEY_MISSING,
        ),
        (
            Some(server.tenant.admin_key.as_str()),
            StatusCode::FORBIDDEN,
            reason::API_KEY_WRONG_ROLE,
        ),
    ] {
        let caller = api.with_key(key);
        for answer in [
            caller.get("/v1/users/hanako").await,
            caller
                .post("/v1/challenges", json!({"user_id": "hanako"}))
                .await,
            caller
                .post(
                    "/v1/enrollments",
                    json!({"user_id": "hanako", "email": "h@example.jp"}),
                )
                .await,
        ] {
            assert_eq!(answer.status, status, "{key:?}: {answer:?}");
            assert_eq!(answer.reason(), expected, "{key:?}");
        }
    }
    let wrong_role = api
        .with_key(Some(&server.tenant.admin_key))
        .get("/v1/users/hanako")
        .await
        .json();
    assert_eq!(wrong_role["error"]["metadata"]["required_role"], "portal");
    assert_eq!(wrong_role["error"]["code"], "PERMISSION_DENIED");
}

/// A request body: its content type and bytes.
type Body = Option<(&'static str, Vec<u8>)>;

#[tokio::test]
async fn bad_input_is_a_json_4xx_and_changes_nothing() {
    let server = server_with(|c| c.max_message_size = 1024).await;
    let api = server.http_api();
    // A first good call, so that the key's last use is already recorded.
    assert_eq!(api.get("/v1/users/hanako").await.status, StatusCode::OK);
    let before = server.database_rows().await;

    let post = |body: Body| {
        let api = api.clone();
        async move { api.raw(Method::POST, "/v1/enrollments", body).await }
    };
    let json_body = |text: &str| Some(("application/json", text.as_bytes().to_vec()));
    let cases: Vec<(&str, Body, StatusCode, &str)> = vec![
        (
            "not JSON",
            json_body("{\"user_id\": "),
            StatusCode::BAD_REQUEST,
            reason::MALFORMED_REQUEST,
        ),
        (
            "unknown field",
            json_body(r#"{"user_id":"u","email":"u@example.jp","admin":true}"#),
            StatusCode::BAD_REQUEST,
            reason::MALFORMED_REQUEST,
        ),
        (
            "missing field",
            json_body(r#"{"user_id":"u"}"#),
            StatusCode::BAD_REQUEST,
            reason::MALFORMED_REQUEST,
        ),
        (
            "wrong type",
            json_body(r#"{"user_id":7,"email":"u@example.jp"}"#),
            StatusCode::BAD_REQUEST,
            reason::MALFORMED_REQUEST,
        ),
        (
            "an array",
            json_body("[]"),
            StatusCode::BAD_REQUEST,
            reason::MALFORMED_REQUEST,
        ),
        (
            "no body",
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a form",
            Some((
                "application/x-www-form-urlencoded",
                b"user_id=u&email=u%40example.jp".to_vec(),
            )),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "too large",
            Some((
                "application/json",
                format!(
                    r#"{{"user_id":"{}","email":"u@example.jp"}}"#,
                    "u".repeat(2000)
                )
                .into_bytes(),
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
            reason::REQUEST_TOO_LARGE,
        ),
        (
            "empty user",
            json_body(r#"{"user_id":"","email":"u@example.jp"}"#),
            StatusCode::BAD_REQUEST,
            reason::INVALID_ARGUMENT,
        ),
        (
            "bad e-mail",
            json_body(r#"{"user_id":"u","email":"x"}"#),
            StatusCode::BAD_REQUEST,
            reason::INVALID_ARGUMENT,
        ),
    ];
    for (what, body, status, expected) in cases {
        let answer = post(body).await;
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        assert_eq!(answer.reason(), expected, "{what}");
    }
    let too_large = post(Some((
        "application/json",
        format!(r#"{{"user_id":"{}"}}"#, "u".repeat(2000)).into_bytes(),
    )))
    .await
    .json();
    assert_eq!(too_large["error"]["metadata"]["max_bytes"], "1024");
    assert_eq!(too_large["error"]["code"], "OUT_OF_RANGE");

    let id = "00000000-0000-4000-8000-000000000000";
    for (path, expected) in [
        (
            format!("/v1/challenges/{id}?wait=forever"),
            reason::INVALID_ARGUMENT,
        ),
        (
            format!("/v1/challenges/{id}?wait=0s"),
            reason::INVALID_ARGUMENT,
        ),
        (
            format!("/v1/challenges/{id}?wait=61s"),
            reason::INVALID_ARGUMENT,
        ),
        (
            format!("/v1/challenges/{id}?wait=1s&while_state=WAITING"),
            reason::INVALID_ARGUMENT,
        ),
        (
            format!("/v1/challenges/{id}?while_state=CHALLENGE_STATE_PENDING"),
            reason::INVALID_ARGUMENT,
        ),
        (
            format!("/v1/challenges/{id}?timeout=1s"),
            reason::INVALID_ARGUMENT,
        ),
        (
            "/v1/challenges/not-an-id".to_owned(),
            reason::INVALID_ARGUMENT,
        ),
        (format!("/v1/challenges/{id}"), reason::NOT_FOUND),
        (format!("/v1/enrollments/{id}/events"), reason::NOT_FOUND),
        ("/v1/nothing-here".to_owned(), reason::NOT_FOUND),
    ] {
        let answer = api.get(&path).await;
        assert_eq!(answer.reason(), expected, "{path}: {answer:?}");
    }
    let wrong_verb = api
        .call(Method::POST, &format!("/v1/challenges/{id}:approve"), None)
        .await;
    assert_eq!(wrong_verb.status, StatusCode::NOT_FOUND);
    assert_eq!(wrong_verb.reason(), reason::NOT_FOUND);
    let not_found = api.get(&format!("/v1/challenges/{id}")).await.json();
    assert_eq!(not_found["error"]["metadata"]["resource"], "challenge");

    assert_eq!(server.database_rows().await, before);
}

#[tokio::test]
async fn server_sent_events_deliver_the_approval_and_end() {
    let server = server().await;
    let api = server.http_api();
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "hanako", "hanako@example.jp").await;
    let created = api
        .post("/v1/challenges", json!({"user_id": "hanako"}))
        .await
        .json();
    let id = created["challenge_id"].as_str().unwrap();
    let response = api
        .send(
            Method::GET,
            &format!("/v1/challenges/{id}/events"),
            None,
            &[],
        )
        .await;
    let mut events = Events::of(response);
    let first = within(events.next()).await.expect("the current state");
    assert_eq!(first.name, "challenge");
    assert_eq!(first.data["state"], "CHALLENGE_STATE_PENDING");

    let pending = only_pending(&mut phone).await;
    phone
        .approve(&pending, created["number"].as_str().unwrap())
        .await
        .unwrap();
    let approved = within(events.next()).await.expect("the approval");
    assert_eq!(approved.data["state"], "CHALLENGE_STATE_APPROVED");
    assert_eq!(approved.data["challenge_id"], id);
    assert!(within(events.next()).await.is_none(), "ends after the end");
}

#[tokio::test]
async fn enrollment_events_follow_the_enrollment_to_verified() {
    let server = server().await;
    let api = server.http_api();
    let begun = api
        .post(
            "/v1/enrollments",
            json!({"user_id": "taro", "email": "taro@example.jp"}),
        )
        .await
        .json();
    let id = begun["enrollment_id"].as_str().unwrap();
    let mut events = Events::of(
        api.send(
            Method::GET,
            &format!("/v1/enrollments/{id}/events"),
            None,
            &[],
        )
        .await,
    );
    let first = within(events.next()).await.unwrap();
    assert_eq!(first.name, "enrollment");
    assert_eq!(first.data["state"], "ENROLLMENT_STATE_WAITING_FOR_SCAN");
    let uri = mfa_sdk::EnrollmentUri::parse(begun["qr_uri"].as_str().unwrap()).unwrap();
    let (mut phone, verification) = mfa_sdk::Authenticator::enroll_with(
        &uri,
        phone_info("Phone"),
        &mfa_sdk::MemoryKeyStore::new(),
        &server.connect,
    )
    .await
    .unwrap();
    let registered = within(events.next()).await.unwrap();
    assert_eq!(
        registered.data["state"],
        "ENROLLMENT_STATE_DEVICE_REGISTERED"
    );
    let number = registered.data["verification_number"].as_str().unwrap();
    phone.approve(&verification, number).await.unwrap();
    let verified = within(events.next()).await.unwrap();
    assert_eq!(verified.data["state"], "ENROLLMENT_STATE_VERIFIED");
    assert!(within(events.next()).await.is_none());
}

#[tokio::test]
async fn a_long_poll_answers_on_the_change_or_with_the_pending_state_at_its_bound() {
    let server = server().await;
    let api = server.http_api();
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "hanako", "hanako@example.jp").await;
    let created = api
        .post("/v1/challenges", json!({"user_id": "hanako"}))
        .await
        .json();
    let id = created["challenge_id"].as_str().unwrap().to_owned();

    // On the change: the poll waits (it holds a watch), and answers when
    // the phone denies, long before its bound.
    let waiting = tokio::spawn({
        let (api, id) = (api.clone(), id.clone());
        async move { api.get(&format!("/v1/challenges/{id}?wait=60s")).await }
    });
    within(watches_open(&server, 1)).await;
    let pending = only_pending(&mut phone).await;
    phone.deny(&pending).await.unwrap();
    let answered = within(waiting).await.unwrap();
    assert_eq!(answered.status, StatusCode::OK);
    let answered = answered.json();
    assert_eq!(answered["state"], "CHALLENGE_STATE_DENIED");
    assert_eq!(answered["deny_reason"], "DENY_REASON_USER_DENIED");

    // At its bound: the pending state, no sooner.
    let created = api
        .post("/v1/challenges", json!({"user_id": "hanako"}))
        .await
        .json();
    let pending_id = created["challenge_id"].as_str().unwrap();
    let started = Instant::now();
    let bounded = within(api.get(&format!("/v1/challenges/{pending_id}?wait=1s"))).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(bounded.status, StatusCode::OK);
    assert_eq!(bounded.json()["state"], "CHALLENGE_STATE_PENDING");

    // An ended challenge answers at once, whatever the wait.
    let started = Instant::now();
    let ended = api
        .get(&format!("/v1/challenges/{id}?wait=60s"))
        .await
        .json();
    assert_eq!(ended["state"], "CHALLENGE_STATE_DENIED");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn limits_count_grpc_and_http_calls_together() {
    let server = server_with(|c| {
        c.challenge_limit = 3;
        c.watch_streams_per_tenant = 1;
    })
    .await;
    let api = server.http_api();
    let portal = server.portal().await;
    server.enroll(&portal, "hanako", "hanako@example.jp").await;
    portal
        .start_sign_in("hanako", SignInContext::default())
        .await
        .unwrap();
    portal
        .start_sign_in("hanako", SignInContext::default())
        .await
        .unwrap();
    let third = api
        .post("/v1/challenges", json!({"user_id": "hanako"}))
        .await;
    assert_eq!(third.status, StatusCode::CREATED);
    let id = third.json()["challenge_id"].as_str().unwrap().to_owned();
    let fourth = api
        .post("/v1/challenges", json!({"user_id": "hanako"}))
        .await;
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fourth.reason(), reason::RATE_LIMITED);
    let fifth = portal
        .start_sign_in("hanako", SignInContext::default())
        .await
        .unwrap_err();
    assert!(fifth.is_rate_limited(), "{fifth:?}");

    // One watch per tenant: a gRPC watch holds it against HTTP watches.
    let mut grpc_watch = portal.watch_challenge(&id).await.unwrap();
    grpc_watch.message().await.unwrap().unwrap();
    for path in [
        format!("/v1/challenges/{id}/events"),
        format!("/v1/challenges/{id}?wait=5s"),
    ] {
        let refused = api.get(&path).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(refused.reason(), reason::TOO_MANY_WATCHES);
    }
    // A read without wait holds no watch.
    assert_eq!(
        api.get(&format!("/v1/challenges/{id}")).await.status,
        StatusCode::OK
    );
    drop(grpc_watch);
    within(watches_open(&server, 0)).await;
    // And an HTTP watch holds it against gRPC ones.
    let mut events = Events::of(
        api.send(
            Method::GET,
            &format!("/v1/challenges/{id}/events"),
            None,
            &[],
        )
        .await,
    );
    within(events.next()).await.unwrap();
    let refused = portal.watch_challenge(&id).await.unwrap_err();
    assert_eq!(refused.reason(), Some(reason::TOO_MANY_WATCHES));
}

/// The same failure asked of both faces: the same reason, gRPC code,
/// message and metadata, and the HTTP status of the one table.
#[tokio::test]
async fn errors_are_the_grpc_reasons_in_json() {
    let server = server().await;
    let api = server.http_api();
    let mut grpc = server.portal().await.client();
    let unknown = "00000000-0000-4000-8000-000000000000".to_owned();
    server.portal().await.cancel(&unknown).await.unwrap_err();

    let cases: Vec<(tonic::Status, mfa_tests::http_api::Answer)> = vec![
        (
            grpc.get_challenge(proto::GetChallengeRequest {
                challenge_id: unknown.clone(),
            })
            .await
            .unwrap_err(),
            api.get(&format!("/v1/challenges/{unknown}")).await,
        ),
        (
            grpc.get_challenge(proto::GetChallengeRequest {
                challenge_id: "x".into(),
            })
            .await
            .unwrap_err(),
            api.get("/v1/challenges/x").await,
        ),
        (
            grpc.create_challenge(proto::CreateChallengeRequest {
                user_id: "nobody".into(),
                context: None,
            })
            .await
            .unwrap_err(),
            api.post("/v1/challenges", json!({"user_id": "nobody"}))
                .await,
        ),
        (
            grpc.begin_enrollment(proto::BeginEnrollmentRequest {
                user_id: "u".into(),
                email: "not an address".into(),
            })
            .await
            .unwrap_err(),
            api.post(
                "/v1/enrollments",
                json!({"user_id": "u", "email": "not an address"}),
            )
            .await,
        ),
        (
            grpc.record_terms_acceptance(proto::RecordTermsAcceptanceRequest {
                user_id: "u".into(),
                terms_version: String::new(),
            })
            .await
            .unwrap_err(),
            api.post("/v1/users/u/terms", json!({"terms_version": ""}))
                .await,
        ),
        (
            grpc.cancel_challenge(proto::CancelChallengeRequest {
                challenge_id: unknown.clone(),
            })
            .await
            .unwrap_err(),
            api.call(
                Method::POST,
                &format!("/v1/challenges/{unknown}:cancel"),
                None,
            )
            .await,
        ),
    ];
    for (status, answer) in cases {
        let info = error_info(&status);
        let body = answer.json();
        let error = &body["error"];
        assert_eq!(answer.reason(), info.reason, "{body}");
        let reason = mfa_proto::status::Reason::parse(&info.reason).unwrap();
        assert_eq!(answer.status.as_u16(), reason.http_status(), "{body}");
        assert_eq!(error["code"], reason.code_name(), "{body}");
        assert_eq!(reason.code(), status.code(), "{body}");
        assert_eq!(error["message"], status.message(), "{body}");
        let metadata: std::collections::BTreeMap<String, String> =
            serde_json::from_value(error["metadata"].clone()).unwrap();
        let expected: std::collections::BTreeMap<String, String> =
            info.metadata.clone().into_iter().collect();
        assert_eq!(metadata, expected, "{body}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_callers() {
    let server = server_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    // A key of the other role: the refusal is audited against its tenant.
    let caller = HttpApi::new(&server.http_url(), Some(&server.tenant.admin_key));
    let refused = caller
        .send(
            Method::GET,
            "/v1/users/hanako",
            None,
            &[("x-forwarded-for", "198.51.100.7, 203.0.113.9")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let events = server.audit_events("").await;
    let failed = events
        .iter()
        .find(|e| e.event_type == "auth.failed")
        .expect("the refusal is audited");
    assert_eq!(failed.client_address, "203.0.113.9");
}

#[tokio::test]
async fn a_stopping_server_ends_server_sent_events_with_an_error_event() {
    let mut server = server().await;
    let api = server.http_api();
    let portal = server.portal().await;
    server.enroll(&portal, "hanako", "hanako@example.jp").await;
    let created = api
        .post("/v1/challenges", json!({"user_id": "hanako"}))
        .await
        .json();
    let id = created["challenge_id"].as_str().unwrap();
    let mut events = Events::of(
        api.send(
            Method::GET,
            &format!("/v1/challenges/{id}/events"),
            None,
            &[],
        )
        .await,
    );
    within(events.next()).await.unwrap();
    server.restart().await;
    let last = within(events.next()).await.expect("an error event");
    assert_eq!(last.name, "error");
    assert_eq!(last.data["error"]["reason"], "SHUTTING_DOWN");
    assert_eq!(last.data["error"]["status"], 503);
    assert!(within(events.next()).await.is_none());
    // The restarted server serves the API on the same address.
    let read = server.http_api().get(&format!("/v1/challenges/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
}

/// `GET path` over HTTPS, trusting `pki`'s CA, with a client certificate
/// when given: the status and the JSON body.
async fn https_get(
    server: &TestServer,
    pki: &mfa_tests::tls::TestPki,
    client: Option<mfa_tests::tls::Issued>,
    path: &str,
) -> (StatusCode, Value) {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        Some(issued) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let addr = server.http_url().trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", addr)
        .header(
            "authorization",
            format!("Bearer {}", server.tenant.portal_key),
        )
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn over_tls_the_api_requires_the_client_certificate_like_grpc() {
    let pki = mfa_tests::tls::TestPki::new("mfa test CA");
    let server = server_with(|config| {
        let files = pki.write_server_files(&config.data_dir.join("tls"));
        config.tls = mfa_server::tls::TlsConfig {
            cert_file: Some(files.cert_file),
            key_file: Some(files.key_file),
            client_ca_file: Some(files.ca_file),
            require_client_cert: true,
            allow_plaintext: false,
        };
    })
    .await;
    let (status, body) = https_get(
        &server,
        &pki,
        Some(pki.client("portal")),
        "/v1/users/hanako",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "hanako");
    let (status, body) = https_get(&server, &pki, None, "/v1/users/hanako").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["reason"], "CLIENT_CERTIFICATE_REQUIRED");
}

/// The curl commands of the README's HTTP/JSON example, as a shell runs
/// them (continued lines joined), without comments and the `API=` line.
fn readme_curl_commands() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let block = readme
        .split("<!-- curl-example -->")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README's curl example");
    block
        .replace("\\\n", " ")
        .lines()
        .filter(|line| line.starts_with("curl "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_readmes_curl_examples_work_as_written() {
    let curl = std::process::Command::new("curl").arg("--version").output();
    if !installed_or_skip(
        "the_readmes_curl_examples_work_as_written",
        curl.is_ok(),
        "curl",
    ) {
        return;
    }
    let server = server().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "hanako", "hanako@example.jp").await;
    let commands = readme_curl_commands();
    assert_eq!(commands.len(), 6, "{commands:#?}");
    // curl runs on the blocking pool: the server answers on this test's
    // runtime meanwhile.
    let (api_url, key) = (server.http_url(), server.tenant.portal_key.clone());
    let run = |command: &str, id: &str| {
        let (command, id, api_url, key) = (
            command.to_owned(),
            id.to_owned(),
            api_url.clone(),
            key.clone(),
        );
        async move {
            let output = tokio::task::spawn_blocking({
                let command = command.clone();
                move || {
                    std::process::Command::new("bash")
                        .arg("-c")
                        .arg(&command)
                        .env("API", api_url)
                        .env("KEY", key)
                        .env("ID", id)
                        .output()
                        .expect("bash runs")
                }
            })
            .await
            .unwrap();
            assert!(output.status.success(), "{command}: {output:?}");
            String::from_utf8(output.stdout).unwrap()
        }
    };
    let json = |text: String| -> Value { serde_json::from_str(&text).unwrap() };

    let status = json(within(run(&commands[0], "")).await);
    assert_eq!(
        status["devices"][0]["state"], "DEVICE_STATE_ACTIVE",
        "{status}"
    );
    let begun = json(within(run(&commands[1], "")).await);
    assert!(begun["qr_uri"]
        .as_str()
        .unwrap()
        .starts_with("mfa://enroll?"));
    let created = json(within(run(&commands[2], "")).await);
    assert_eq!(created["context"]["application_name"], "Customer portal");
    let id = created["challenge_id"].as_str().unwrap().to_owned();
    let pending = only_pending(&mut phone).await;
    phone
        .approve(&pending, created["number"].as_str().unwrap())
        .await
        .unwrap();
    let approved = json(within(run(&commands[3], &id)).await);
    assert_eq!(approved["state"], "CHALLENGE_STATE_APPROVED");
    let events = within(run(&commands[4], &id)).await;
    assert!(
        events.contains("event: challenge") && events.contains("CHALLENGE_STATE_APPROVED"),
        "{events}"
    );
    let cancel = json(within(run(&commands[5], &id)).await);
    assert_eq!(cancel["error"]["reason"], "CHALLENGE_ENDED", "{cancel}");
}
