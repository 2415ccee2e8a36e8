//! The client address behind a load balancer: a `x-forwarded-for` header is
//! believed only from a peer in `trusted_proxies`, and it is the address that
//! audit and the activation limits use. Here the test's own connection plays
//! the balancer (its peer is 127.0.0.1), forwarding for made-up clients.

use ed25519_dalek::SigningKey;
use mfa_proto::{
    signing,
    v1::{self as proto, device_service_client::DeviceServiceClient},
};
use mfa_tests::*;
use tonic::{service::interceptor::InterceptedService, transport::Channel, Code, Request};

/// A device client whose calls carry `x-forwarded-for: <forwarded_for>`.
async fn device_forwarding_for(
    server: &TestServer,
    forwarded_for: &'static str,
) -> DeviceServiceClient<
    InterceptedService<Channel, impl FnMut(Request<()>) -> Result<Request<()>, tonic::Status>>,
> {
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    DeviceServiceClient::with_interceptor(channel, move |mut request: Request<()>| {
        request
            .metadata_mut()
            .insert("x-forwarded-for", forwarded_for.parse().unwrap());
        Ok(request)
    })
}

/// A complete enrollment request for `code`, with a proof of possession by
/// `key` (or, if `forge`, a signature that does not verify).
fn enrollment(code: &str, key: &SigningKey, forge: bool) -> proto::CompleteEnrollmentRequest {
    let public_key = key.verifying_key().to_bytes();
    let proof = signing::EnrollmentProof {
        activation_code: code,
        public_key: &public_key,
        push_platform: "PUSH_PLATFORM_NONE",
        push_token: "",
        device_name: "Phone",
        key_algorithm: None,
    }
    .signed_bytes();
    let mut signature = signing::sign(key, &proof);
    if forge {
        signature[0] ^= 1;
    }
    proto::CompleteEnrollmentRequest {
        activation_code: code.to_owned(),
        public_key: public_key.to_vec(),
        push_platform: proto::PushPlatform::None as i32,
        push_token: String::new(),
        device_name: "Phone".into(),
        signature,
        key_algorithm: 0,
    }
}

async fn begin(portal: &mfa_sdk::portal::RelyingParty, user: &str) -> String {
    let begun = portal
        .begin_enrollment(user, &format!("{user}@example.jp"))
        .await
        .unwrap();
    mfa_sdk::EnrollmentUri::parse(&begun.qr_uri)
        .unwrap()
        .activation_code
}

#[tokio::test]
async fn a_guesser_behind_the_balancer_blocks_only_their_own_address() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.activation_failure_limit = 3;
    })
    .await;
    let portal = server.portal().await;
    let code = begin(&portal, "u").await;
    let key = SigningKey::from_bytes(&[7; 32]);

    let mut guesser = device_forwarding_for(&server, "198.51.100.66").await;
    for expected in [
        Code::NotFound,
        Code::NotFound,
        Code::NotFound,
        Code::ResourceExhausted,
    ] {
        let status = guesser
            .complete_enrollment(enrollment("AAAAAAAAAA", &key, false))
            .await
            .unwrap_err();
        assert_eq!(status.code(), expected, "{status:?}");
    }
    // The guesser's address is blocked even for the right code ...
    let status = guesser
        .complete_enrollment(enrollment(&code, &key, false))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // ... while a phone forwarded from another address enrolls.
    let mut phone = device_forwarding_for(&server, "203.0.113.5").await;
    phone
        .complete_enrollment(enrollment(&code, &key, false))
        .await
        .expect("the genuine phone enrolls");

    // Audit names the forwarded address; the guesses are one aggregated entry
    // (two if a minute turned meanwhile) that counts them.
    let events = server.audit_events("").await;
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "enrollment.activation_failed")
        .collect();
    assert!(
        failed.is_empty(),
        "an unknown code names no tenant: {failed:?}"
    );
    assert_eq!(
        server
            .service()
            .store()
            .count_failures("activation", "198.51.100.66", 0)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        server
            .service()
            .store()
            .count_failures("activation", "127.0.0.1", 0)
            .await
            .unwrap(),
        0,
        "nothing is charged to the balancer"
    );
}

#[tokio::test]
async fn a_forwarded_address_from_an_untrusted_peer_is_not_believed() {
    let server = TestServer::start_with(|c| c.activation_failure_limit = 2).await;
    let key = SigningKey::from_bytes(&[7; 32]);
    // Each call claims another address; none is believed.
    for (claimed, expected) in [
        ("198.51.100.1", Code::NotFound),
        ("198.51.100.2", Code::NotFound),
        ("198.51.100.3", Code::ResourceExhausted),
    ] {
        let mut liar = device_forwarding_for(&server, claimed).await;
        let status = liar
            .complete_enrollment(enrollment("AAAAAAAAAA", &key, false))
            .await
            .unwrap_err();
        assert_eq!(status.code(), expected, "{claimed}: {status:?}");
    }
}

#[tokio::test]
async fn bad_proofs_with_a_known_code_spoil_only_that_enrollment() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.activation_failure_limit = 2;
    })
    .await;
    let portal = server.portal().await;
    let spoiled = begin(&portal, "u").await;
    let other = begin(&portal, "v").await;
    let key = SigningKey::from_bytes(&[7; 32]);

    // Bad proofs from two addresses, each under its own limit.
    for address in ["198.51.100.1", "198.51.100.2"] {
        let mut client = device_forwarding_for(&server, address).await;
        let status = client
            .complete_enrollment(enrollment(&spoiled, &key, true))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    // The code is spent for everyone, even with a good proof ...
    let mut fresh = device_forwarding_for(&server, "203.0.113.9").await;
    let status = fresh
        .complete_enrollment(enrollment(&spoiled, &key, false))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("QR code"), "{status:?}");
    // ... and no other enrollment is.
    fresh
        .complete_enrollment(enrollment(&other, &key, false))
        .await
        .expect("another enrollment still works from the same address");

    let events = server.audit_events("u").await;
    assert_eq!(
        occurrences(&events, "enrollment.activation_failed"),
        2,
        "{events:?}"
    );
    let addresses: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "enrollment.activation_failed")
        .map(|e| e.client_address.as_str())
        .collect();
    assert!(
        addresses.contains(&"198.51.100.1") && addresses.contains(&"198.51.100.2"),
        "{addresses:?}"
    );
}
