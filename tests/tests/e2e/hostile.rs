//! Hostile and malformed input: replays, forged signatures, other tenants,
//! missing keys, revoked devices, bad fields. Each is refused with the right
//! code, changes nothing, and is audited and counted where it is an attack.

use base64::Engine;
use mfa_proto::v1::{ChallengeState, Decision, SignInContext};
use mfa_proto::{signing, v1 as proto};
use mfa_sdk::{
    Authenticator, EnrollmentUri, FileKeyStore, KeyAlgorithm, MemoryKeyStore, Signer, SoftwareKey,
    UserVerification,
};
use mfa_tests::{
    scrape::{scrape, value},
    *,
};
use std::time::Duration;
use tonic::Code;

fn code_of<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    result.expect_err("call should fail").code()
}

fn count(events: &[String], event_type: &str) -> usize {
    events.iter().filter(|e| *e == event_type).count()
}

/// `mfa_auth_failures_total` of a kind. The recorder is process-wide, so
/// tests compare it before and after their own calls.
async fn auth_failures(server: &TestServer, kind: &str) -> f64 {
    value(
        &scrape(server).await,
        "mfa_auth_failures_total",
        &[("kind", kind)],
    )
}

#[tokio::test]
async fn a_replayed_device_request_is_refused() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let request = phone.signed_list_request().unwrap();
    phone
        .client()
        .list_pending_challenges(request.clone())
        .await
        .unwrap();
    let replays_before = auth_failures(&server, "replay").await;
    let replay = phone
        .client()
        .list_pending_challenges(request)
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Code::Unauthenticated);
    assert!(mfa_sdk::Error::from(replay).is_replayed_request());
    assert!(auth_failures(&server, "replay").await >= replays_before + 1.0);
    assert_eq!(
        count(&server.audit_types("u").await, "device.replay_rejected"),
        1
    );
}

fn now_ms() -> i64 {
    mfa_server::domain::now_ms()
}

/// A ListPendingChallenges request from `device_id`, signed with `phone`'s key
/// at `timestamp_ms`.
fn list_request_at(
    phone: &Authenticator,
    device_id: &str,
    timestamp_ms: i64,
) -> proto::ListPendingChallengesRequest {
    let nonce: [u8; 16] = rand::random();
    let message = signing::DeviceRequest {
        device_id,
        method: "ListPendingChallenges",
        timestamp_ms,
        nonce: &nonce,
        body: &[],
    }
    .signed_bytes();
    proto::ListPendingChallengesRequest {
        proof: Some(proto::DeviceProof {
            device_id: device_id.to_owned(),
            timestamp_ms,
            nonce: nonce.to_vec(),
            signature: phone.signer().sign(&message).unwrap(),
        }),
    }
}

#[tokio::test]
async fn a_stale_future_tampered_or_unknown_device_request_is_refused_with_its_reason() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let device_id = phone.account().device_id.clone();
    let skew_ms = server.config.clock_skew.as_millis() as i64;

    // Ten minutes behind, and ten minutes ahead: the phone's clock is off.
    for offset_ms in [-10 * 60 * 1000, 10 * 60 * 1000] {
        let before = now_ms();
        let request = list_request_at(&phone, &device_id, before + offset_ms);
        let status = phone
            .client()
            .list_pending_challenges(request)
            .await
            .unwrap_err();
        let after = now_ms();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        let info = error_info(&status);
        assert_eq!(info.reason, "CLOCK_SKEW", "offset {offset_ms}");
        // The server's time, for the app to say how far off the phone is.
        let server_time: i64 = info.metadata["server_time_ms"].parse().unwrap();
        assert!((before..=after).contains(&server_time), "{server_time}");
        assert_eq!(info.metadata["max_skew_ms"], skew_ms.to_string());
        let error = mfa_sdk::Error::from(status);
        assert!(error.is_clock_skew());
        assert_eq!(error.server_time_ms(), Some(server_time));
    }

    // A proof signed for one method is useless for another.
    let mut request = proto::RemoveDeviceRequest {
        proof: phone.signed_list_request().unwrap().proof,
    };
    let status = phone
        .client()
        .remove_device(request.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_info(&status).reason, "SIGNATURE_INVALID");
    request.proof.as_mut().unwrap().nonce = vec![1; 15];
    let status = phone.client().remove_device(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(error_info(&status).reason, "INVALID_ARGUMENT");

    // A device id the server never registered.
    let stranger = uuid::Uuid::new_v4().to_string();
    let request = list_request_at(&phone, &stranger, now_ms());
    let status = phone
        .client()
        .list_pending_challenges(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_info(&status).reason, "DEVICE_UNKNOWN");
    assert!(mfa_sdk::Error::from(status).is_device_unknown());

    assert_eq!(
        portal.user_status("u").await.unwrap().devices.len(),
        1,
        "the device is still there"
    );
}

#[tokio::test]
async fn a_replayed_approval_is_refused() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut phone).await;
    let approval = phone
        .approval_request(
            &pending,
            Decision::Approve,
            &challenge.number,
            UserVerification::None,
        )
        .unwrap();
    phone
        .client()
        .respond_to_challenge(approval.clone())
        .await
        .unwrap();
    let replay = phone
        .client()
        .respond_to_challenge(approval.clone())
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Code::FailedPrecondition);
    assert!(mfa_sdk::Error::from(replay).is_challenge_ended());

    // The same signature cannot answer the user's next challenge either.
    let next = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let replayed = proto::RespondToChallengeRequest {
        challenge_id: next.challenge_id.clone(),
        ..approval
    };
    assert_eq!(
        code_of(phone.client().respond_to_challenge(replayed).await),
        Code::Unauthenticated
    );
    assert_eq!(
        portal
            .get_challenge(&next.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Pending
    );
}

#[tokio::test]
async fn another_devices_signature_is_refused() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let thief = server
        .enroll(&portal, "mallory", "mallory@example.jp")
        .await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut phone).await;
    let bad_before = auth_failures(&server, "device_signature").await;

    // Signed by another device's key, claiming to be the user's phone.
    let message = approval_bytes(&phone, &pending, &challenge.number, None);
    let forged = proto::RespondToChallengeRequest {
        device_id: phone.account().device_id.clone(),
        challenge_id: pending.challenge_id.clone(),
        decision: Decision::Approve.into(),
        typed_number: challenge.number.clone(),
        signature: thief.signer().sign(&message).unwrap(),
        user_verification: 0,
    };
    let status = phone
        .client()
        .respond_to_challenge(forged)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_info(&status).reason, "SIGNATURE_INVALID");
    assert!(mfa_sdk::Error::from(status).is_signature_invalid());

    // The other user's device answering with its own valid signature does not see it.
    let mut thief = thief;
    let own = thief
        .approval_request(
            &pending,
            Decision::Approve,
            &challenge.number,
            UserVerification::None,
        )
        .unwrap();
    assert_eq!(
        code_of(thief.client().respond_to_challenge(own).await),
        Code::NotFound
    );

    // A random key is no better.
    let random = SoftwareKey::from_bytes(KeyAlgorithm::Ed25519, &[3; 32]).unwrap();
    let mut request = phone
        .approval_request(
            &pending,
            Decision::Approve,
            &challenge.number,
            UserVerification::None,
        )
        .unwrap();
    request.signature = random.sign(&message).unwrap();
    request.user_verification = 0;
    assert_eq!(
        code_of(phone.client().respond_to_challenge(request).await),
        Code::Unauthenticated
    );
    assert!(auth_failures(&server, "device_signature").await >= bad_before + 2.0);
    assert_eq!(
        occurrences(&server.audit_events("u").await, "device.bad_signature"),
        2
    );

    assert_eq!(
        portal
            .get_challenge(&challenge.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Pending
    );
    assert_eq!(
        phone
            .approve(&pending, &challenge.number)
            .await
            .unwrap()
            .state,
        ChallengeState::Approved
    );
}

#[tokio::test]
async fn another_tenants_objects_are_not_found() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let begun = portal.begin_enrollment("v", "v@example.jp").await.unwrap();

    let other = server.create_tenant("Other tenant", 2).await;
    let other_portal = server.portal_with(&other.portal_key).await;
    let mut other_admin = server.admin_with(&other.admin_key).await;
    for error in [
        other_portal
            .get_challenge(&challenge.challenge_id)
            .await
            .unwrap_err(),
        other_portal
            .cancel(&challenge.challenge_id)
            .await
            .unwrap_err(),
        other_portal
            .watch_challenge(&challenge.challenge_id)
            .await
            .unwrap_err(),
        other_portal
            .watch_enrollment(&begun.enrollment_id)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(error.code(), Some(Code::NotFound), "{error:?}");
    }
    let revoke = other_admin
        .revoke_device(proto::RevokeDeviceRequest {
            device_id: phone.account().device_id.clone(),
        })
        .await;
    assert_eq!(code_of(revoke), Code::NotFound);
    // The same user id in another tenant is another person.
    assert!(other_portal
        .user_status("u")
        .await
        .unwrap()
        .devices
        .is_empty());
    let refused = other_portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap_err();
    assert!(refused.is_no_active_device());

    let pending = only_pending(&mut phone).await;
    assert_eq!(
        phone
            .approve(&pending, &challenge.number)
            .await
            .unwrap()
            .state,
        ChallengeState::Approved
    );
}

#[tokio::test]
async fn missing_and_unknown_keys_are_unauthenticated_and_a_wrong_role_is_permission_denied() {
    let server = TestServer::start().await;
    let before = auth_failures(&server, "api_key").await;
    let user_status = || proto::GetUserStatusRequest {
        user_id: "u".into(),
    };
    for (key, code, reason) in [
        ("", Code::Unauthenticated, "API_KEY_MISSING"),
        ("Basic abc", Code::Unauthenticated, "API_KEY_MISSING"),
        (
            "mfak_not-a-real-key",
            Code::Unauthenticated,
            "API_KEY_INVALID",
        ),
        (
            server.tenant.admin_key.as_str(),
            Code::PermissionDenied,
            "API_KEY_WRONG_ROLE",
        ),
    ] {
        let portal = server.portal_with(key).await;
        let status = portal
            .client()
            .get_user_status(user_status())
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "key {key:?}: {status:?}");
        assert_eq!(error_info(&status).reason, reason, "key {key:?}");
        assert!(mfa_sdk::Error::from(status).is_api_key_refused());
    }
    let mut admin = server.admin_with(&server.tenant.portal_key).await;
    let status = admin
        .list_devices(proto::ListDevicesRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let info = error_info(&status);
    assert_eq!(info.reason, "API_KEY_WRONG_ROLE");
    assert_eq!(info.metadata["required_role"], "admin");
    assert!(
        !status.message().contains(&server.tenant.portal_key)
            && !info.metadata.values().any(|v| v.contains("mfak_")),
        "errors never echo keys"
    );
    assert!(auth_failures(&server, "api_key").await >= before + 5.0);
    // Keys of this tenant used in the wrong role are in its audit log (an
    // unknown key names no tenant, so it is only logged and counted).
    // Both are "API key of another role" from one address within a minute
    // or two: aggregated, counted twice.
    let events = server.audit_events("").await;
    assert_eq!(occurrences(&events, "auth.failed"), 2, "{events:?}");
    assert!(events
        .iter()
        .filter(|e| e.event_type == "auth.failed")
        .all(|e| e.client_address == "127.0.0.1"));
}

#[tokio::test]
async fn a_revoked_device_can_do_nothing() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut admin = server.admin().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let _spare = server.enroll(&portal, "u", "u@example.jp").await;
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut phone).await;
    let revoked = admin
        .revoke_device(proto::RevokeDeviceRequest {
            device_id: phone.account().device_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(revoked.state(), proto::DeviceState::Revoked);

    let error = phone
        .approve(&pending, &challenge.number)
        .await
        .unwrap_err();
    assert!(error.is_device_revoked(), "{error:?}");
    assert_eq!(error.code(), Some(Code::PermissionDenied));
    assert!(phone
        .pending_challenges()
        .await
        .unwrap_err()
        .is_device_revoked());
    assert_eq!(
        portal
            .get_challenge(&challenge.challenge_id)
            .await
            .unwrap()
            .state(),
        ChallengeState::Pending
    );
    assert!(auth_failures(&server, "revoked_device").await >= 2.0);
    assert_eq!(
        count(&server.audit_types("u").await, "device.revoked_refused"),
        2
    );
}

#[tokio::test]
async fn malformed_requests_are_invalid_arguments_and_change_nothing() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let mut client = portal.client();

    let bad_creates = [
        proto::CreateChallengeRequest {
            user_id: String::new(),
            context: None,
        },
        proto::CreateChallengeRequest {
            user_id: "u".repeat(129),
            context: None,
        },
        proto::CreateChallengeRequest {
            user_id: "u".into(),
            context: Some(SignInContext {
                client_ip: "not an ip".into(),
                ..Default::default()
            }),
        },
        proto::CreateChallengeRequest {
            user_id: "u".into(),
            context: Some(SignInContext {
                message: "x".repeat(257),
                ..Default::default()
            }),
        },
        proto::CreateChallengeRequest {
            user_id: "u".into(),
            context: Some(SignInContext {
                application_name: "a\u{7}b".into(),
                ..Default::default()
            }),
        },
    ];
    for request in bad_creates {
        assert_eq!(
            code_of(client.create_challenge(request).await),
            Code::InvalidArgument
        );
    }
    assert!(
        phone.pending_challenges().await.unwrap().is_empty(),
        "no challenge was created"
    );

    let bad_id = client
        .get_challenge(proto::GetChallengeRequest {
            challenge_id: "../../etc".into(),
        })
        .await;
    assert_eq!(code_of(bad_id), Code::InvalidArgument);
    let bad_email = client
        .begin_enrollment(proto::BeginEnrollmentRequest {
            user_id: "u".into(),
            email: "nope".into(),
        })
        .await;
    assert_eq!(code_of(bad_email), Code::InvalidArgument);
    let bad_terms = client
        .record_terms_acceptance(proto::RecordTermsAcceptanceRequest {
            user_id: "u".into(),
            terms_version: String::new(),
        })
        .await;
    assert_eq!(code_of(bad_terms), Code::InvalidArgument);

    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut phone).await;
    let valid = phone
        .approval_request(
            &pending,
            Decision::Approve,
            &challenge.number,
            UserVerification::None,
        )
        .unwrap();
    let variants = [
        proto::RespondToChallengeRequest {
            decision: 0,
            ..valid.clone()
        },
        proto::RespondToChallengeRequest {
            decision: 99,
            ..valid.clone()
        },
        // Empty, or longer than any algorithm's (a size the server checks
        // before it knows the device's algorithm).
        proto::RespondToChallengeRequest {
            signature: vec![],
            ..valid.clone()
        },
        proto::RespondToChallengeRequest {
            signature: vec![0; 73],
            ..valid.clone()
        },
        proto::RespondToChallengeRequest {
            typed_number: "4x".into(),
            ..valid.clone()
        },
        proto::RespondToChallengeRequest {
            typed_number: String::new(),
            ..valid.clone()
        },
        proto::RespondToChallengeRequest {
            challenge_id: "nope".into(),
            ..valid.clone()
        },
        proto::RespondToChallengeRequest {
            device_id: String::new(),
            ..valid.clone()
        },
    ];
    for request in variants {
        assert_eq!(
            code_of(phone.client().respond_to_challenge(request).await),
            Code::InvalidArgument
        );
    }
    let oversized = proto::RespondToChallengeRequest {
        typed_number: "1".repeat(100_000),
        ..valid.clone()
    };
    let code = code_of(phone.client().respond_to_challenge(oversized).await);
    assert!(
        matches!(code, Code::ResourceExhausted | Code::OutOfRange),
        "{code:?}"
    );

    // Enrollment with a key of the wrong length, or no platform.
    let begun = portal.begin_enrollment("w", "w@example.jp").await.unwrap();
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let mut device =
        mfa_proto::v1::device_service_client::DeviceServiceClient::connect(server.url.clone())
            .await
            .unwrap();
    let enroll = |public_key: Vec<u8>, push_platform: i32| proto::CompleteEnrollmentRequest {
        activation_code: uri.activation_code.clone(),
        public_key,
        push_platform,
        push_token: String::new(),
        device_name: "x".into(),
        signature: vec![0; 64],
        key_algorithm: 0,
    };
    assert_eq!(
        code_of(device.complete_enrollment(enroll(vec![1; 31], 3)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code_of(device.complete_enrollment(enroll(vec![1; 32], 0)).await),
        Code::InvalidArgument
    );
    // A well-formed request with a bad proof of possession leaves the code usable.
    let key = SoftwareKey::from_bytes(KeyAlgorithm::Ed25519, &[5; 32]).unwrap();
    let bad_proof = enroll(key.public_key(), 3);
    assert_eq!(
        code_of(device.complete_enrollment(bad_proof).await),
        Code::Unauthenticated
    );
    Authenticator::enroll(&uri, phone_info("Real phone"), &MemoryKeyStore::new())
        .await
        .unwrap();

    assert_eq!(
        phone
            .approve(&pending, &challenge.number)
            .await
            .unwrap()
            .state,
        ChallengeState::Approved
    );
}

#[tokio::test]
async fn guessing_activation_codes_is_throttled_per_address() {
    let server = TestServer::start_with(|c| c.activation_failure_limit = 3).await;
    let portal = server.portal().await;
    let begun = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
    for guess in ["AAAAA-AAAAA", "AAAAA-AAAAB", "AAAAA-AAAAC"] {
        let uri = EnrollmentUri::manual(guess, &server.url).unwrap();
        let error = Authenticator::enroll(&uri, phone_info("Guesser"), &MemoryKeyStore::new())
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(Code::NotFound), "{error:?}");
    }
    // Even the right code is refused from this address now.
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let error = Authenticator::enroll(&uri, phone_info("Guesser"), &MemoryKeyStore::new())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::ResourceExhausted));
    assert!(error.is_rate_limited());
}

#[tokio::test]
async fn a_leaked_database_holds_no_api_key_activation_code_or_device_secret() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    // The phone keeps its key in a file, where the test can read it.
    let store = FileKeyStore::new(server.dir().join("phone.json"));
    server.enroll_in(&portal, "u", "u@example.jp", &store).await;
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
    let device_secret = base64::engine::general_purpose::STANDARD
        .decode(saved["device_key_seed"].as_str().unwrap())
        .unwrap();
    let open = portal.begin_enrollment("v", "v@example.jp").await.unwrap();
    let code = open.manual_code.replace('-', "");

    let stored = server.database_dump().await;
    // The dump is real: what the service must keep is there.
    let email = b"u@example.jp";
    assert!(
        stored.windows(email.len()).any(|w| w == email),
        "the dump holds the stored data"
    );
    let secrets: [(&str, Vec<u8>); 5] = [
        ("portal key", server.tenant.portal_key.clone().into_bytes()),
        ("admin key", server.tenant.admin_key.clone().into_bytes()),
        ("activation code", code.clone().into_bytes()),
        ("activation code as shown", open.manual_code.into_bytes()),
        ("device private key", device_secret),
    ];
    // Raw, and hex-encoded as a text dump shows binary columns.
    for (what, secret) in secrets {
        for form in [secret.clone(), hex::encode(&secret).into_bytes()] {
            assert!(
                !stored.windows(form.len()).any(|w| w == form.as_slice()),
                "the {what} is in the database"
            );
        }
    }
}

#[tokio::test]
async fn a_server_whose_key_differs_from_the_qr_code_is_refused_and_nothing_is_saved() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let begun = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
    let mut uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    // The QR code names another server's key: this server is an impostor to the app.
    uri.server_public_key = Some(
        ed25519_dalek::SigningKey::from_bytes(&[3; 32])
            .verifying_key()
            .to_bytes(),
    );
    let store = MemoryKeyStore::new();
    let error = Authenticator::enroll(&uri, phone_info("Phone"), &store)
        .await
        .unwrap_err();
    assert!(
        matches!(error, mfa_sdk::Error::BadServerSignature),
        "{error:?}"
    );
    assert!(mfa_sdk::KeyStore::load(&store).unwrap().is_none());
}

#[tokio::test]
async fn a_flood_of_challenges_for_one_user_is_capped_audited_and_counted() {
    let server = TestServer::start_with(|c| c.challenge_limit = 3).await;
    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            portal
                .start_sign_in("u", SignInContext::default())
                .await
                .unwrap(),
        );
    }
    let throttled_before = value(
        &scrape(&server).await,
        "mfa_throttled_total",
        &[("limit", "challenges")],
    );
    for _ in 0..5 {
        let error = portal
            .start_sign_in("u", SignInContext::default())
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(Code::ResourceExhausted));
        assert!(error.is_rate_limited());
    }
    let throttled = value(
        &scrape(&server).await,
        "mfa_throttled_total",
        &[("limit", "challenges")],
    );
    assert!(throttled >= throttled_before + 5.0);
    let events = server.audit_types("u").await;
    assert_eq!(count(&events, "challenge.rate_limited"), 5);
    assert_eq!(count(&events, "challenge.created"), 3);
    assert_eq!(count(&events, "challenge.superseded"), 2);
    // The phone sees only the last one, still waiting.
    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.challenge_id, last.unwrap().challenge_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_sign_ins_for_one_user_never_overshoot_the_limit() {
    let server = TestServer::start_with(|c| c.challenge_limit = 3).await;
    let portal = server.portal().await;
    server.enroll(&portal, "u", "u@example.jp").await;
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let portal = portal.clone();
            tokio::spawn(async move { portal.start_sign_in("u", SignInContext::default()).await })
        })
        .collect();
    let (mut started, mut limited) = (0, 0);
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => started += 1,
            Err(error) if error.is_rate_limited() => limited += 1,
            Err(error) => panic!("unexpected error: {error:?}"),
        }
    }
    assert_eq!((started, limited), (3, 13));
    let events = server.audit_types("u").await;
    assert_eq!(count(&events, "challenge.created"), 3);
    assert_eq!(count(&events, "challenge.rate_limited"), 13);
}

/// Revokes the default tenant's portal key, as `mfa-server api-key revoke` does.
async fn revoke_portal_key(server: &TestServer) {
    let service = server.service();
    let keys = service
        .list_api_keys(Some(&server.tenant.id))
        .await
        .unwrap();
    let portal = keys
        .iter()
        .find(|k| k.role == mfa_server::model::Role::Portal)
        .expect("a portal key");
    let (revoked, changed) = service.revoke_api_key(&portal.id).await.unwrap();
    assert!(changed && revoked.revoked_at.is_some(), "{revoked:?}");
}

#[tokio::test]
async fn a_revoked_api_key_stops_working_once_its_cached_check_expires() {
    let ttl = Duration::from_millis(300);
    let server = TestServer::start_with(|c| c.api_key_cache_ttl = ttl).await;
    let portal = server.portal().await;
    portal.user_status("u").await.unwrap();

    revoke_portal_key(&server).await;
    // Within the cache lifetime the checked key is still trusted...
    portal.user_status("u").await.unwrap();
    // ...and once it has passed, the database decides.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let error = portal.user_status("u").await.unwrap_err();
    assert_eq!(error.code(), Some(Code::Unauthenticated), "{error:?}");
}

#[tokio::test]
async fn with_no_api_key_cache_a_revoked_key_stops_working_at_once() {
    let server = TestServer::start_with(|c| c.api_key_cache_ttl = Duration::ZERO).await;
    let portal = server.portal().await;
    portal.user_status("u").await.unwrap();
    revoke_portal_key(&server).await;
    let error = portal.user_status("u").await.unwrap_err();
    assert_eq!(error.code(), Some(Code::Unauthenticated), "{error:?}");
    // The tenant's admin key still works, and its audit log holds the revocation.
    let events = server.audit_types("").await;
    assert_eq!(count(&events, "api_key.revoked"), 1, "{events:?}");
}

/// `mfa_grpc_requests_total` of one method and code.
async fn requests(server: &TestServer, service: &str, method: &str, code: &str) -> f64 {
    value(
        &scrape(server).await,
        "mfa_grpc_requests_total",
        &[("service", service), ("method", method), ("code", code)],
    )
}

#[tokio::test]
async fn undecodable_bodies_are_invalid_arguments_with_or_without_a_key_and_not_server_errors() {
    let server = TestServer::start().await;
    let portal_key = server.tenant.portal_key.clone();
    let admin_key = server.tenant.admin_key.clone();
    // Field 1 of each of these requests is a string (user_id, device_id,
    // challenge_id).
    let targets = [
        ("mfa.v1.PortalService", "CreateChallenge", Some(&portal_key)),
        ("mfa.v1.PortalService", "CreateChallenge", None),
        ("mfa.v1.PortalService", "WatchChallenge", Some(&portal_key)),
        ("mfa.v1.AdminService", "ListDevices", Some(&admin_key)),
        ("mfa.v1.DeviceService", "RespondToChallenge", None),
    ];
    // Protobuf that does not decode, each as one well-framed message.
    let messages: [(&str, &[u8]); 4] = [
        // A key whose varint never ends.
        ("a bad varint", &[0xff; 11]),
        ("invalid UTF-8 in a string", &[0x0a, 0x02, 0xc3, 0x28]),
        // Field 1 as a fixed32, not length-delimited.
        ("a wrong wire type", &[0x0d, 1, 2, 3, 4]),
        ("a truncated length-delimited field", &[0x0a, 0x10, b'u']),
    ];
    // And gRPC framing that holds no whole message.
    let framings: [(&str, Vec<u8>); 2] = [
        ("no message", Vec::new()),
        (
            "a truncated frame",
            raw::frame(&[0x0a, 0x10, b'u'])[..6].to_vec(),
        ),
    ];

    let mut before = Vec::new();
    for (service, method, _) in targets {
        before.push((
            requests(&server, service, method, "Internal").await,
            requests(&server, service, method, "InvalidArgument").await,
        ));
    }
    let audit_before = server.audit_types("").await;

    let (mut connection, _closed) = raw::connection(&server).await;
    let mut sent = vec![0.0; targets.len()];
    for (target, (service, method, key)) in targets.iter().enumerate() {
        let path = format!("/{service}/{method}");
        let bodies = messages
            .iter()
            .map(|(what, message)| (*what, raw::frame(message), true))
            .chain(
                framings
                    .iter()
                    .map(|(what, body)| (*what, body.clone(), false)),
            );
        for (what, body, decodes_as_protobuf) in bodies {
            let key = key.map(String::as_str);
            let status = raw::call(&mut connection, &server, &path, key, body).await;
            let case = format!("{what} to {method} (key: {})", key.is_some());
            assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
            let info = error_info(&status);
            assert_eq!(info.reason, "MALFORMED_REQUEST", "{case}");
            if decodes_as_protobuf {
                let expected = format!("mfa.v1.{method}Request");
                assert_eq!(info.metadata["message_type"], expected, "{case}");
                assert!(
                    status
                        .message()
                        .starts_with(&format!("request body does not decode as {expected}: ")),
                    "{case}: {}",
                    status.message()
                );
            }
            sent[target] += 1.0;
        }
    }

    // Counted as the callers' errors, never as the server's: the
    // MfaGrpcServerErrors alert counts only Internal, Unknown, Unavailable
    // and DataLoss.
    for (target, (service, method, _)) in targets.iter().enumerate() {
        let (internal, invalid) = before[target];
        assert_eq!(
            requests(&server, service, method, "Internal").await,
            internal,
            "{method}"
        );
        // Two targets share CreateChallenge: what both sent.
        let same_method: f64 = targets
            .iter()
            .zip(&sent)
            .filter(|((s, m, _), _)| s == service && m == method)
            .map(|(_, n)| n)
            .sum();
        assert!(
            requests(&server, service, method, "InvalidArgument").await >= invalid + same_method,
            "{method}"
        );
    }
    // Nothing was done, and no authentication was tried.
    assert_eq!(server.audit_types("").await, audit_before);
}
