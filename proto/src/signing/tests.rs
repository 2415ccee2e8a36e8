//! Checks the signed bytes against the committed vectors in
//! `testdata/signing-vectors.json`. To regenerate them after a deliberate
//! protocol change, run `MFA_WRITE_VECTORS=1 cargo test -p mfa-proto`.

use super::*;
use serde_json::{json, Value};

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/signing-vectors.json");

fn hex_field(input: &Value, name: &str) -> Vec<u8> {
    hex::decode(input[name].as_str().unwrap()).unwrap()
}

fn str_field<'a>(input: &'a Value, name: &str) -> &'a str {
    input[name].as_str().unwrap()
}

fn int_field(input: &Value, name: &str) -> i64 {
    input[name].as_i64().unwrap()
}

/// Rebuilds a vector's message from its inputs with this crate's builders.
fn message_for(kind: &str, input: &Value) -> Vec<u8> {
    match kind {
        "enrollment" => {
            let key: [u8; 32] = hex_field(input, "public_key").try_into().unwrap();
            EnrollmentProof {
                activation_code: str_field(input, "activation_code"),
                public_key: &key,
                push_platform: str_field(input, "push_platform"),
                push_token: str_field(input, "push_token"),
                device_name: str_field(input, "device_name"),
            }
            .signed_bytes()
        }
        "device_request" => {
            let body: Vec<&str> = input["body"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            DeviceRequest {
                device_id: str_field(input, "device_id"),
                method: str_field(input, "method"),
                timestamp_ms: int_field(input, "timestamp_ms"),
                nonce: &hex_field(input, "nonce"),
                body: &body,
            }
            .signed_bytes()
        }
        "approval" => Approval {
            tenant_id: str_field(input, "tenant_id"),
            challenge_id: str_field(input, "challenge_id"),
            device_id: str_field(input, "device_id"),
            decision: str_field(input, "decision"),
            typed_number: str_field(input, "typed_number"),
            challenge_nonce: &hex_field(input, "challenge_nonce"),
        }
        .signed_bytes(),
        "challenge_context" => ChallengeContext {
            tenant_id: str_field(input, "tenant_id"),
            tenant_display_name: str_field(input, "tenant_display_name"),
            challenge_id: str_field(input, "challenge_id"),
            kind: str_field(input, "kind"),
            user_email: str_field(input, "user_email"),
            application_name: str_field(input, "application_name"),
            client_ip: str_field(input, "client_ip"),
            location: str_field(input, "location"),
            message: str_field(input, "message"),
            create_time_ms: int_field(input, "create_time_ms"),
            expire_time_ms: int_field(input, "expire_time_ms"),
            number_length: int_field(input, "number_length"),
            nonce: &hex_field(input, "nonce"),
        }
        .signed_bytes(),
        other => panic!("unknown vector kind {other}"),
    }
}

/// The inputs the vectors are made from: fixed keys, so signatures are fixed too.
fn vector_inputs() -> Vec<(&'static str, &'static str, [u8; 32], Value)> {
    let device_seed = [0x11; 32];
    let server_seed = [0x22; 32];
    let device_public = SigningKey::from_bytes(&device_seed).verifying_key();
    vec![
        (
            "enrollment proof of possession",
            "enrollment",
            device_seed,
            json!({
                "activation_code": "K7Q2M9XW4T",
                "public_key": hex::encode(device_public.as_bytes()),
                "push_platform": "PUSH_PLATFORM_APNS",
                "push_token": "a1b2c3d4e5f6",
                "device_name": "Hanako's iPhone",
            }),
        ),
        (
            "list pending challenges",
            "device_request",
            device_seed,
            json!({
                "device_id": "6f1c1d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f",
                "method": "ListPendingChallenges",
                "timestamp_ms": 1_790_000_000_000_i64,
                "nonce": "000102030405060708090a0b0c0d0e0f",
                "body": [],
            }),
        ),
        (
            "update push token",
            "device_request",
            device_seed,
            json!({
                "device_id": "6f1c1d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f",
                "method": "UpdatePushToken",
                "timestamp_ms": 1_790_000_000_123_i64,
                "nonce": "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
                "body": ["PUSH_PLATFORM_FCM", "fcm-token-xyz"],
            }),
        ),
        (
            "approve with typed number",
            "approval",
            device_seed,
            json!({
                "tenant_id": "3b0e6a52-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
                "challenge_id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
                "device_id": "6f1c1d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f",
                "decision": "DECISION_APPROVE",
                "typed_number": "42",
                "challenge_nonce": "aa".repeat(32),
            }),
        ),
        (
            "report fraud",
            "approval",
            device_seed,
            json!({
                "tenant_id": "3b0e6a52-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
                "challenge_id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
                "device_id": "6f1c1d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f",
                "decision": "DECISION_REPORT_FRAUD",
                "typed_number": "",
                "challenge_nonce": "aa".repeat(32),
            }),
        ),
        (
            "server-signed challenge context",
            "challenge_context",
            server_seed,
            json!({
                "tenant_id": "3b0e6a52-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
                "tenant_display_name": "IHIGrp (External Collaboration)",
                "challenge_id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
                "kind": "CHALLENGE_KIND_SIGN_IN",
                "user_email": "hanako@example.jp",
                "application_name": "Customer portal",
                "client_ip": "203.0.113.7",
                "location": "Tokyo, JP",
                "message": "",
                "create_time_ms": 1_790_000_000_000_i64,
                "expire_time_ms": 1_790_000_120_000_i64,
                "number_length": 2,
                "nonce": "aa".repeat(32),
            }),
        ),
    ]
}

fn generate() -> Value {
    let vectors: Vec<Value> = vector_inputs()
        .into_iter()
        .map(|(name, kind, seed, input)| {
            let key = SigningKey::from_bytes(&seed);
            let message = message_for(kind, &input);
            json!({
                "name": name,
                "kind": kind,
                "private_key_seed": hex::encode(seed),
                "public_key": hex::encode(key.verifying_key().as_bytes()),
                "input": input,
                "message": hex::encode(&message),
                "signature": hex::encode(sign(&key, &message)),
            })
        })
        .collect();
    json!({
        "description": "Signed-bytes test vectors of the mfa.v1 protocol; see docs/protocol.md.",
        "vectors": vectors,
    })
}

fn committed() -> Value {
    let text = std::fs::read_to_string(VECTORS_PATH).expect("read signing vectors");
    serde_json::from_str(&text).expect("parse signing vectors")
}

#[test]
fn committed_vectors_match_the_builders() {
    if std::env::var_os("MFA_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
        std::fs::write(VECTORS_PATH, text).unwrap();
    }
    let committed = committed();
    let vectors = committed["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), vector_inputs().len());
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        let kind = vector["kind"].as_str().unwrap();
        let message = message_for(kind, &vector["input"]);
        assert_eq!(
            hex::encode(&message),
            vector["message"].as_str().unwrap(),
            "{name}: bytes"
        );

        let seed: [u8; 32] = hex::decode(vector["private_key_seed"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let key = SigningKey::from_bytes(&seed);
        let public =
            parse_public_key(&hex::decode(vector["public_key"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(public, key.verifying_key(), "{name}: public key");
        let signature = hex::decode(vector["signature"].as_str().unwrap()).unwrap();
        assert_eq!(sign(&key, &message), signature, "{name}: signature");
        assert_eq!(
            verify(&public, &message, &signature),
            Ok(()),
            "{name}: verify"
        );
    }
}

#[test]
fn fields_are_length_prefixed_so_boundaries_cannot_shift() {
    let a = Approval {
        tenant_id: "t",
        challenge_id: "c1",
        device_id: "d",
        decision: "DECISION_APPROVE",
        typed_number: "2",
        challenge_nonce: &[1],
    };
    let b = Approval {
        challenge_id: "c",
        device_id: "1d",
        ..a
    };
    assert_ne!(a.signed_bytes(), b.signed_bytes());
    let expected_prefix = [&15u32.to_be_bytes()[..], b"mfa.v1.approval"].concat();
    assert!(a.signed_bytes().starts_with(&expected_prefix));
}

#[test]
fn tampered_messages_and_other_keys_do_not_verify() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let other = SigningKey::from_bytes(&[8; 32]);
    let message = b"message".to_vec();
    let signature = sign(&key, &message);
    assert_eq!(
        verify(&key.verifying_key(), b"messagE", &signature),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(&other.verifying_key(), &message, &signature),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(&key.verifying_key(), &message, &signature[..63]),
        Err(SignatureError::MalformedSignature)
    );
    assert_eq!(
        parse_public_key(&[0; 31]).err(),
        Some(SignatureError::MalformedKey)
    );
}
