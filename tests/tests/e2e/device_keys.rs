//! Device keys of either algorithm (Ed25519, ECDSA P-256), the tenant's
//! device policy (allowed algorithms, required user verification) and the
//! signed user-verification flag, over gRPC. Hostile cases: a signature of
//! one algorithm presented for the other, a high-S signature, an off-curve
//! key, a flag stripped or flipped after signing, a disallowed algorithm, an
//! approval that does not meet the policy. Each is refused with its reason
//! and changes nothing.

use mfa_proto::{
    signing::{self, PublicKey},
    v1::{self as proto, ChallengeState, Decision, DenyReason, SignInContext},
};
use mfa_sdk::{
    Authenticator, EnrollmentUri, KeyAlgorithm, KeyStore, MemoryKeyStore, Signer, SoftwareKey,
    UserVerification,
};
use mfa_tests::{
    scrape::{scrape, value},
    *,
};
use p256::ecdsa::Signature as P256Signature;
use tonic::Code;

const P256: KeyAlgorithm = KeyAlgorithm::EcdsaP256Sha256;
const ED25519: KeyAlgorithm = KeyAlgorithm::Ed25519;

fn p256_store() -> MemoryKeyStore {
    MemoryKeyStore::with_key_algorithm(P256)
}

/// The reason of a refused call.
fn reason<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String) {
    let status = result.expect_err("the call is refused");
    (status.code(), error_info(&status).reason)
}

/// A CompleteEnrollment request as an app builds it: the proof signed by
/// `key`, the algorithm named as `declared` (unset: none, as apps of the
/// first release send).
fn enrollment_request(
    code: &str,
    public_key: &[u8],
    declared: Option<KeyAlgorithm>,
    key: &SoftwareKey,
) -> proto::CompleteEnrollmentRequest {
    let proof = signing::EnrollmentProof {
        activation_code: code,
        public_key,
        push_platform: "PUSH_PLATFORM_NONE",
        push_token: "",
        device_name: "Phone",
        key_algorithm: declared.map(KeyAlgorithm::wire_name),
    };
    proto::CompleteEnrollmentRequest {
        activation_code: code.to_owned(),
        public_key: public_key.to_vec(),
        push_platform: proto::PushPlatform::None.into(),
        push_token: String::new(),
        device_name: "Phone".into(),
        signature: key.sign(&proof.signed_bytes()).unwrap(),
        key_algorithm: declared
            .map_or(proto::KeyAlgorithm::Unspecified, wire_algorithm)
            .into(),
    }
}

fn wire_algorithm(algorithm: KeyAlgorithm) -> proto::KeyAlgorithm {
    proto::KeyAlgorithm::from_str_name(algorithm.wire_name()).unwrap()
}

/// The same P-256 signature with `s` replaced by `n - s`: valid ECDSA, and
/// the malleable twin the protocol refuses.
fn high_s_twin(der: &[u8]) -> Vec<u8> {
    let signature = P256Signature::from_der(der).unwrap();
    let (r, s) = signature.split_scalars();
    P256Signature::from_scalars(r.to_bytes(), (-*s).to_bytes())
        .unwrap()
        .to_der()
        .as_bytes()
        .to_vec()
}

/// A fresh activation code and the device client to use it with.
async fn activation(
    server: &TestServer,
    portal: &mfa_sdk::portal::RelyingParty,
    user: &str,
) -> (
    EnrollmentUri,
    proto::device_service_client::DeviceServiceClient<tonic::transport::Channel>,
) {
    let begun = portal
        .begin_enrollment(user, &format!("{user}@example.jp"))
        .await
        .unwrap();
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let client = proto::device_service_client::DeviceServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    (uri, client)
}

async fn set_policy(server: &TestServer, policy: proto::DevicePolicy) -> proto::DevicePolicy {
    server
        .admin()
        .await
        .update_tenant_settings(proto::UpdateTenantSettingsRequest {
            device_policy: Some(policy),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap()
        .device_policy
        .unwrap()
}

fn require(methods: &[proto::UserVerification]) -> proto::DevicePolicy {
    proto::DevicePolicy {
        require_user_verification: true,
        accepted_user_verifications: methods.iter().map(|&m| m.into()).collect(),
        ..Default::default()
    }
}

/// `mfa_approvals_total` of this server's tenant after `method`.
async fn approvals(server: &TestServer, method: &str) -> f64 {
    value(
        &scrape(server).await,
        "mfa_approvals_total",
        &[("tenant", &server.tenant.id), ("user_verification", method)],
    )
}

async fn sign_in(
    portal: &mfa_sdk::portal::RelyingParty,
    phone: &mut Authenticator,
    user: &str,
) -> (proto::Challenge, mfa_sdk::VerifiedChallenge) {
    let challenge = portal
        .start_sign_in(user, SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(phone).await;
    assert_eq!(pending.challenge_id, challenge.challenge_id);
    (challenge, pending)
}

#[tokio::test]
async fn a_p256_device_enrolls_and_signs_every_call() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server
        .enroll_in(&portal, "hanako", "hanako@example.jp", &p256_store())
        .await;
    assert_eq!(phone.signer().algorithm(), P256);
    assert_eq!(phone.signer().public_key().len(), 65);

    // Every device call: the pull path, an answer, a token update, removal.
    let (challenge, pending) = sign_in(&portal, &mut phone, "hanako").await;
    let answer = phone.approve(&pending, &challenge.number).await.unwrap();
    assert_eq!(answer.state, ChallengeState::Approved);
    assert_eq!(
        within(portal.await_outcome(&challenge.challenge_id))
            .await
            .unwrap()
            .state(),
        ChallengeState::Approved
    );
    phone
        .update_push_token(proto::PushPlatform::Fcm, "fcm-token")
        .await
        .unwrap();
    let events = server.audit_events("hanako").await;
    let registered = events
        .iter()
        .find(|e| e.event_type == "enrollment.device_registered")
        .unwrap();
    assert!(
        registered.detail.contains("key ecdsa_p256_sha256"),
        "{}",
        registered.detail
    );
    phone.clone().remove(&p256_store()).await.unwrap();
    assert!(phone
        .pending_challenges()
        .await
        .unwrap_err()
        .is_device_revoked());
}

/// What a phone app of the first release sends: no algorithm at enrollment,
/// no user verification in its answers. It keeps working, and its approvals
/// count as made without verification.
#[tokio::test]
async fn an_app_of_the_first_release_enrolls_and_approves_unchanged() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let (uri, mut device) = activation(&server, &portal, "taro").await;
    let key = SoftwareKey::from_bytes(ED25519, &[0x42; 32]).unwrap();
    let request = enrollment_request(&uri.activation_code, &key.public_key(), None, &key);
    let response = device
        .complete_enrollment(request)
        .await
        .unwrap()
        .into_inner();
    let verification = response.verification_challenge.unwrap();
    assert!(verification.required_user_verification.is_empty());
    let context = verification.context.unwrap();

    let before = approvals(&server, "none").await;
    let begun_number = server
        .service()
        .store()
        .get_challenge(&context.challenge_id)
        .await
        .unwrap()
        .unwrap()
        .number;
    let message = signing::Approval {
        tenant_id: &context.tenant_id,
        challenge_id: &context.challenge_id,
        device_id: &response.device_id,
        decision: "DECISION_APPROVE",
        typed_number: &begun_number,
        challenge_nonce: &context.nonce,
        user_verification: None,
    }
    .signed_bytes();
    let answer = device
        .respond_to_challenge(proto::RespondToChallengeRequest {
            device_id: response.device_id.clone(),
            challenge_id: context.challenge_id.clone(),
            decision: Decision::Approve.into(),
            typed_number: begun_number,
            signature: key.sign(&message).unwrap(),
            user_verification: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.state(), ChallengeState::Approved);
    // Enrollment verification rounds count as enrollments, not approvals.
    assert_eq!(approvals(&server, "none").await, before);
    let detail = server
        .audit_events("taro")
        .await
        .into_iter()
        .find(|e| e.event_type == "challenge.approved")
        .unwrap()
        .detail;
    assert_eq!(detail, "user verification none");
}

#[tokio::test]
async fn a_signature_of_the_other_algorithm_is_refused() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let ed_key = SoftwareKey::from_bytes(ED25519, &[0x11; 32]).unwrap();
    let p_key = SoftwareKey::from_bytes(P256, &[0x11; 32]).unwrap();

    // Enrollment: a P-256 key and signature declared as Ed25519, an Ed25519
    // key with a P-256 signature, and an Ed25519 key declared as P-256.
    let (uri, mut device) = activation(&server, &portal, "u").await;
    let code = &uri.activation_code;
    let mut p256_as_ed = enrollment_request(code, &p_key.public_key(), Some(P256), &p_key);
    p256_as_ed.key_algorithm = proto::KeyAlgorithm::Ed25519.into();
    assert_eq!(
        reason(device.complete_enrollment(p256_as_ed).await),
        (Code::InvalidArgument, "INVALID_ARGUMENT".into())
    );
    let mut ed_with_p256_signature =
        enrollment_request(code, &ed_key.public_key(), Some(ED25519), &ed_key);
    ed_with_p256_signature.signature =
        enrollment_request(code, &ed_key.public_key(), Some(ED25519), &p_key).signature;
    assert_eq!(
        reason(device.complete_enrollment(ed_with_p256_signature).await),
        (Code::Unauthenticated, "SIGNATURE_INVALID".into())
    );
    let ed_as_p256 = enrollment_request(code, &ed_key.public_key(), Some(P256), &ed_key);
    assert_eq!(
        reason(device.complete_enrollment(ed_as_p256).await),
        (Code::InvalidArgument, "INVALID_ARGUMENT".into())
    );

    // After enrollment: answers to a P-256 device signed with Ed25519 (64
    // bytes), and to an Ed25519 device signed with P-256 (DER).
    let mut p256_phone = server
        .enroll_in(&portal, "p", "p@example.jp", &p256_store())
        .await;
    let mut ed_phone = server.enroll(&portal, "e", "e@example.jp").await;
    for (phone, user, wrong) in [
        (&mut p256_phone, "p", &ed_key),
        (&mut ed_phone, "e", &p_key),
    ] {
        let (challenge, pending) = sign_in(&portal, phone, user).await;
        let mut request = phone
            .approval_request(
                &pending,
                Decision::Approve,
                &challenge.number,
                UserVerification::None,
            )
            .unwrap();
        let genuine = request.clone();
        let message = approval_bytes(
            phone,
            &pending,
            &challenge.number,
            Some("USER_VERIFICATION_NONE"),
        );
        request.signature = wrong.sign(&message).unwrap();
        assert_ne!(request.signature.len(), genuine.signature.len());
        assert_eq!(
            reason(phone.client().respond_to_challenge(request).await),
            (Code::Unauthenticated, "SIGNATURE_INVALID".into()),
            "{user}"
        );
        // The refusal changed nothing: the genuine answer still counts.
        let answer = phone
            .client()
            .respond_to_challenge(genuine)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.state(), ChallengeState::Approved, "{user}");
    }
    // The code that saw only refusals is still good for a P-256 key.
    let right = enrollment_request(code, &p_key.public_key(), Some(P256), &p_key);
    device.complete_enrollment(right).await.unwrap();
}

#[tokio::test]
async fn a_high_s_signature_is_refused() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let key = SoftwareKey::from_bytes(P256, &[0x24; 32]).unwrap();
    let PublicKey::EcdsaP256(verifying) = PublicKey::parse(P256, &key.public_key()).unwrap() else {
        unreachable!()
    };

    // At enrollment: the proof's high-S twin, though valid ECDSA.
    let (uri, mut device) = activation(&server, &portal, "u").await;
    let mut request = enrollment_request(&uri.activation_code, &key.public_key(), Some(P256), &key);
    let genuine_proof = request.clone();
    request.signature = high_s_twin(&request.signature);
    let proof_bytes = signing::EnrollmentProof {
        activation_code: &uri.activation_code,
        public_key: &key.public_key(),
        push_platform: "PUSH_PLATFORM_NONE",
        push_token: "",
        device_name: "Phone",
        key_algorithm: Some(P256.wire_name()),
    }
    .signed_bytes();
    let twin = P256Signature::from_der(&request.signature).unwrap();
    assert!(
        p256::ecdsa::signature::Verifier::verify(&verifying, &proof_bytes, &twin).is_ok(),
        "the twin is valid ECDSA"
    );
    assert_eq!(
        reason(device.complete_enrollment(request).await),
        (Code::Unauthenticated, "SIGNATURE_INVALID".into())
    );
    device.complete_enrollment(genuine_proof).await.unwrap();

    // After enrollment: an answer and a device request with their twins.
    let mut phone = server
        .enroll_in(&portal, "p", "p@example.jp", &p256_store())
        .await;
    let (challenge, pending) = sign_in(&portal, &mut phone, "p").await;
    let genuine = phone
        .approval_request(
            &pending,
            Decision::Approve,
            &challenge.number,
            UserVerification::Biometric,
        )
        .unwrap();
    let twin = proto::RespondToChallengeRequest {
        signature: high_s_twin(&genuine.signature),
        ..genuine.clone()
    };
    assert_eq!(
        reason(phone.client().respond_to_challenge(twin).await),
        (Code::Unauthenticated, "SIGNATURE_INVALID".into())
    );
    let mut list = phone.signed_list_request().unwrap();
    let proof = list.proof.as_mut().unwrap();
    proof.signature = high_s_twin(&proof.signature);
    assert_eq!(
        reason(phone.client().list_pending_challenges(list).await),
        (Code::Unauthenticated, "SIGNATURE_INVALID".into())
    );
    let answer = phone
        .client()
        .respond_to_challenge(genuine)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.state(), ChallengeState::Approved);
}

#[tokio::test]
async fn an_off_curve_or_otherwise_encoded_p256_key_is_refused_at_enrollment() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let key = SoftwareKey::from_bytes(P256, &[0x33; 32]).unwrap();
    let public_key = key.public_key();
    let (uri, mut device) = activation(&server, &portal, "u").await;
    let code = &uri.activation_code;

    let mut off_curve = public_key.clone();
    off_curve[64] ^= 1;
    let PublicKey::EcdsaP256(verifying) = PublicKey::parse(P256, &public_key).unwrap() else {
        unreachable!()
    };
    let compressed = verifying.to_encoded_point(true).as_bytes().to_vec();
    let spki = [
        hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap(),
        public_key.clone(),
    ]
    .concat();
    let identity = vec![0u8];
    for (what, bytes) in [
        ("off the curve", off_curve),
        ("compressed", compressed),
        ("SPKI", spki),
        ("identity", identity),
    ] {
        // Signed over the bad bytes, as an app with such a key would.
        let request = enrollment_request(code, &bytes, Some(P256), &key);
        let status = device.complete_enrollment(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}");
        assert!(
            status.message().contains("public key"),
            "{what}: {status:?}"
        );
    }
    // Nothing was registered, and the code still works with a good key.
    let devices = server
        .service()
        .list_devices(&server.tenant.id, "u")
        .await
        .unwrap();
    assert!(devices.is_empty());
    let good = enrollment_request(code, &public_key, Some(P256), &key);
    device.complete_enrollment(good).await.unwrap();
}

#[tokio::test]
async fn a_tenant_can_restrict_the_key_algorithms() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut admin = server.admin().await;
    let initial = admin
        .get_tenant_settings(proto::GetTenantSettingsRequest {})
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap()
        .device_policy
        .unwrap();
    assert_eq!(initial, proto::DevicePolicy::default());

    // Bad policies are refused and change nothing.
    for bad in [
        proto::DevicePolicy {
            allowed_key_algorithms: vec![0],
            ..Default::default()
        },
        proto::DevicePolicy {
            accepted_user_verifications: vec![proto::UserVerification::Biometric.into()],
            ..Default::default()
        },
        require(&[proto::UserVerification::None]),
    ] {
        let status = admin
            .update_tenant_settings(proto::UpdateTenantSettingsRequest {
                device_policy: Some(bad),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    let ed_only = proto::DevicePolicy {
        allowed_key_algorithms: vec![proto::KeyAlgorithm::Ed25519.into()],
        ..Default::default()
    };
    assert_eq!(set_policy(&server, ed_only.clone()).await, ed_only);
    let begun = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let error = Authenticator::enroll(&uri, phone_info("Phone"), &p256_store())
        .await
        .unwrap_err();
    assert!(error.is_key_algorithm_not_allowed(), "{error:?}");
    assert_eq!(error.code(), Some(Code::FailedPrecondition));
    assert_eq!(
        error.metadata(mfa_sdk::reason::ALLOWED_KEY_ALGORITHMS),
        Some("KEY_ALGORITHM_ED25519")
    );
    let events = server.audit_types("u").await;
    assert!(events.contains(&"enrollment.key_algorithm_refused".to_owned()));
    // The same code enrolls an allowed key.
    Authenticator::enroll(&uri, phone_info("Phone"), &MemoryKeyStore::new())
        .await
        .unwrap();

    // Devices enrolled before a restriction keep working.
    set_policy(&server, proto::DevicePolicy::default()).await;
    let mut p256_phone = server
        .enroll_in(&portal, "p", "p@example.jp", &p256_store())
        .await;
    // Administrators see each device's algorithm.
    let listed = admin
        .list_devices(proto::ListDevicesRequest {
            user_id: "p".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(
        listed[0].key_algorithm(),
        proto::KeyAlgorithm::EcdsaP256Sha256
    );
    let p256_only = proto::DevicePolicy {
        allowed_key_algorithms: vec![proto::KeyAlgorithm::EcdsaP256Sha256.into()],
        ..Default::default()
    };
    set_policy(&server, p256_only).await;
    let (challenge, pending) = sign_in(&portal, &mut p256_phone, "p").await;
    p256_phone
        .approve(&pending, &challenge.number)
        .await
        .unwrap();
    let error = Authenticator::enroll(
        &EnrollmentUri::parse(
            &portal
                .begin_enrollment("e", "e@example.jp")
                .await
                .unwrap()
                .qr_uri,
        )
        .unwrap(),
        phone_info("Phone"),
        &MemoryKeyStore::new(),
    )
    .await
    .unwrap_err();
    assert!(error.is_key_algorithm_not_allowed(), "{error:?}");
}

#[tokio::test]
async fn a_tenant_that_requires_biometrics_refuses_approvals_without_it() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let mut phone = server
        .enroll_in(&portal, "hanako", "hanako@example.jp", &p256_store())
        .await;
    let policy = set_policy(&server, require(&[proto::UserVerification::Biometric])).await;
    assert_eq!(policy, require(&[proto::UserVerification::Biometric]));

    // The app learns the policy with the challenge.
    let (challenge, pending) = sign_in(&portal, &mut phone, "hanako").await;
    assert_eq!(
        pending.required_user_verification,
        [UserVerification::Biometric]
    );
    // The device PIN is not enough: the sign-in ends denied, and says why.
    let error = phone
        .approve_verified(&pending, &challenge.number, UserVerification::DevicePin)
        .await
        .unwrap_err();
    assert!(error.is_user_verification_required(), "{error:?}");
    assert_eq!(error.code(), Some(Code::FailedPrecondition));
    assert_eq!(
        error.metadata(mfa_sdk::reason::ACCEPTED_USER_VERIFICATIONS),
        Some("USER_VERIFICATION_BIOMETRIC")
    );
    let seen = within(portal.await_outcome(&challenge.challenge_id))
        .await
        .unwrap();
    assert_eq!(seen.state(), ChallengeState::Denied);
    assert_eq!(seen.deny_reason(), DenyReason::UserVerificationRequired);
    // Answered once: a second answer finds it ended.
    let again = phone
        .approve_verified(&pending, &challenge.number, UserVerification::Biometric)
        .await
        .unwrap_err();
    assert!(again.is_challenge_ended(), "{again:?}");

    // No verification at all, from a current app or one that predates the flag.
    for verification in [Some(UserVerification::None), None] {
        let (challenge, pending) = sign_in(&portal, &mut phone, "hanako").await;
        let mut request = phone
            .approval_request(
                &pending,
                Decision::Approve,
                &challenge.number,
                verification.unwrap_or(UserVerification::None),
            )
            .unwrap();
        if verification.is_none() {
            let message = approval_bytes(&phone, &pending, &challenge.number, None);
            request.signature = phone.signer().sign(&message).unwrap();
            request.user_verification = 0;
        }
        assert_eq!(
            reason(phone.client().respond_to_challenge(request).await),
            (
                Code::FailedPrecondition,
                "USER_VERIFICATION_REQUIRED".into()
            ),
            "{verification:?}"
        );
        let seen = portal.get_challenge(&challenge.challenge_id).await.unwrap();
        assert_eq!(seen.deny_reason(), DenyReason::UserVerificationRequired);
    }

    // Denying needs no verification.
    let (challenge, pending) = sign_in(&portal, &mut phone, "hanako").await;
    let answer = phone.deny(&pending).await.unwrap();
    assert_eq!(answer.deny_reason, DenyReason::UserDenied);
    assert_eq!(
        portal
            .get_challenge(&challenge.challenge_id)
            .await
            .unwrap()
            .deny_reason(),
        DenyReason::UserDenied
    );

    // With a biometric, the approval goes through, counted by its method.
    let before = approvals(&server, "biometric").await;
    let (challenge, pending) = sign_in(&portal, &mut phone, "hanako").await;
    let answer = phone
        .approve_verified(&pending, &challenge.number, UserVerification::Biometric)
        .await
        .unwrap();
    assert_eq!(answer.state, ChallengeState::Approved);
    assert_eq!(approvals(&server, "biometric").await, before + 1.0);

    // The audit log names the method of each answer.
    let events = server.audit_events("hanako").await;
    let details: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.event_type.starts_with("challenge.") && e.event_type != "challenge.created")
        .map(|e| (e.event_type.as_str(), e.detail.as_str()))
        .collect();
    assert!(details.contains(&("challenge.approved", "user verification biometric")));
    assert!(details.contains(&(
        "challenge.denied",
        "user_verification_required: approved with user verification device_pin"
    )));
    assert!(details.contains(&(
        "challenge.denied",
        "user_verification_required: approved with user verification none"
    )));
    let scraped = scrape(&server).await;
    assert_eq!(
        value(
            &scraped,
            "mfa_challenges_ended_total",
            &[
                ("tenant", &server.tenant.id),
                ("outcome", "user_verification_required")
            ]
        ),
        3.0
    );
}

#[tokio::test]
async fn any_verification_satisfies_a_policy_without_a_list_and_enrollment_needs_it_too() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let policy = set_policy(&server, require(&[])).await;
    assert!(policy.require_user_verification);
    assert_eq!(policy.accepted_user_verifications.len(), 2);

    // The enrollment's verification round asks for it as well.
    let begun = portal
        .begin_enrollment("taro", "taro@example.jp")
        .await
        .unwrap();
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let store = MemoryKeyStore::new();
    let (mut phone, verification) = Authenticator::enroll(&uri, phone_info("Phone"), &store)
        .await
        .unwrap();
    assert_eq!(
        verification.required_user_verification,
        [UserVerification::DevicePin, UserVerification::Biometric]
    );
    let number = verification_number(&portal, &begun.enrollment_id).await;
    phone
        .approve_verified(&verification, &number, UserVerification::DevicePin)
        .await
        .unwrap();
    assert_eq!(
        within(portal.await_enrollment(&begun.enrollment_id))
            .await
            .unwrap()
            .state(),
        proto::EnrollmentState::Verified
    );

    let before = approvals(&server, "device_pin").await;
    let (challenge, pending) = sign_in(&portal, &mut phone, "taro").await;
    phone
        .approve_verified(&pending, &challenge.number, UserVerification::DevicePin)
        .await
        .unwrap();
    assert_eq!(approvals(&server, "device_pin").await, before + 1.0);

    // Back to no requirement: the app is told none is needed.
    set_policy(&server, proto::DevicePolicy::default()).await;
    let (_, pending) = sign_in(&portal, &mut phone, "taro").await;
    assert!(!pending.requires_user_verification());
    assert!(store.load().unwrap().is_some());
}

#[tokio::test]
async fn a_flag_stripped_or_flipped_after_signing_is_refused() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    for (store, user) in [(MemoryKeyStore::new(), "e"), (p256_store(), "p")] {
        let mut phone = server
            .enroll_in(&portal, user, &format!("{user}@example.jp"), &store)
            .await;
        let (challenge, pending) = sign_in(&portal, &mut phone, user).await;
        let signed = phone
            .approval_request(
                &pending,
                Decision::Approve,
                &challenge.number,
                UserVerification::DevicePin,
            )
            .unwrap();
        for tampered in [
            proto::UserVerification::Unspecified,
            proto::UserVerification::None,
            proto::UserVerification::Biometric,
        ] {
            let request = proto::RespondToChallengeRequest {
                user_verification: tampered.into(),
                ..signed.clone()
            };
            assert_eq!(
                reason(phone.client().respond_to_challenge(request).await),
                (Code::Unauthenticated, "SIGNATURE_INVALID".into()),
                "{user}: {tampered:?}"
            );
        }
        let unknown = proto::RespondToChallengeRequest {
            user_verification: 42,
            ..signed.clone()
        };
        assert_eq!(
            reason(phone.client().respond_to_challenge(unknown).await).0,
            Code::InvalidArgument
        );
        assert_eq!(
            portal
                .get_challenge(&challenge.challenge_id)
                .await
                .unwrap()
                .state(),
            ChallengeState::Pending,
            "{user}: nothing changed"
        );
        let answer = phone
            .client()
            .respond_to_challenge(signed)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.state(), ChallengeState::Approved);
        let approved = server
            .audit_events(user)
            .await
            .into_iter()
            .find(|e| {
                e.event_type == "challenge.approved" && e.challenge_id == challenge.challenge_id
            })
            .unwrap();
        assert_eq!(approved.detail, "user verification device_pin");
    }
}
