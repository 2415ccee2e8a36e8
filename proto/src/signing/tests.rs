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

/// A field that only newer messages carry: absent means not written.
fn optional_field<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).map(|v| v.as_str().unwrap())
}

fn algorithm_named(name: &str) -> KeyAlgorithm {
    KeyAlgorithm::ALL
        .into_iter()
        .find(|a| a.wire_name() == name)
        .unwrap_or_else(|| panic!("unknown algorithm {name}"))
}

/// Rebuilds a vector's message from its inputs with this crate's builders.
fn message_for(kind: &str, input: &Value) -> Vec<u8> {
    match kind {
        "enrollment" => EnrollmentProof {
            activation_code: str_field(input, "activation_code"),
            public_key: &hex_field(input, "public_key"),
            push_platform: str_field(input, "push_platform"),
            push_token: str_field(input, "push_token"),
            device_name: str_field(input, "device_name"),
            key_algorithm: optional_field(input, "key_algorithm"),
        }
        .signed_bytes(),
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
            user_verification: optional_field(input, "user_verification"),
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

const DEVICE_SEED: [u8; 32] = [0x11; 32];
const SERVER_SEED: [u8; 32] = [0x22; 32];
const DEVICE_ID: &str = "6f1c1d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f";
const TENANT_ID: &str = "3b0e6a52-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const CHALLENGE_ID: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";

/// The device key of the vectors of one algorithm.
fn device_key(algorithm: KeyAlgorithm) -> SecretKey {
    SecretKey::from_bytes(algorithm, &DEVICE_SEED).unwrap()
}

/// One vector's recipe: its name, kind, signing algorithm, secret and inputs.
struct Recipe {
    name: String,
    kind: &'static str,
    algorithm: KeyAlgorithm,
    seed: [u8; 32],
    input: Value,
}

/// The messages every device key signs, for one algorithm (named `suffix`).
fn device_recipes(algorithm: KeyAlgorithm, suffix: &str) -> Vec<Recipe> {
    let public_key = hex::encode(device_key(algorithm).public_key().to_bytes());
    let approval = |decision: &str, typed: &str, verification: Option<&str>| {
        let mut input = json!({
            "tenant_id": TENANT_ID,
            "challenge_id": CHALLENGE_ID,
            "device_id": DEVICE_ID,
            "decision": decision,
            "typed_number": typed,
            "challenge_nonce": "aa".repeat(32),
        });
        if let Some(verification) = verification {
            input["user_verification"] = json!(verification);
        }
        input
    };
    let recipe = |name: &str, kind, input| Recipe {
        name: format!("{name} ({suffix})"),
        kind,
        algorithm,
        seed: DEVICE_SEED,
        input,
    };
    let mut enrollment = json!({
        "activation_code": "K7Q2M9XW4T",
        "public_key": public_key,
        "push_platform": "PUSH_PLATFORM_APNS",
        "push_token": "a1b2c3d4e5f6",
        "device_name": "Hanako's iPhone",
    });
    let mut recipes = Vec::new();
    if algorithm == KeyAlgorithm::Ed25519 {
        // As apps of the first release enroll: no algorithm field.
        recipes.push(recipe(
            "enrollment proof of possession, algorithm unset",
            "enrollment",
            enrollment.clone(),
        ));
    }
    enrollment["key_algorithm"] = json!(algorithm.wire_name());
    recipes.extend([
        recipe("enrollment proof of possession", "enrollment", enrollment),
        recipe(
            "list pending challenges",
            "device_request",
            json!({
                "device_id": DEVICE_ID,
                "method": "ListPendingChallenges",
                "timestamp_ms": 1_790_000_000_000_i64,
                "nonce": "000102030405060708090a0b0c0d0e0f",
                "body": [],
            }),
        ),
        recipe(
            "update push token",
            "device_request",
            json!({
                "device_id": DEVICE_ID,
                "method": "UpdatePushToken",
                "timestamp_ms": 1_790_000_000_123_i64,
                "nonce": "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
                "body": ["PUSH_PLATFORM_FCM", "fcm-token-xyz"],
            }),
        ),
        recipe(
            "remove device",
            "device_request",
            json!({
                "device_id": DEVICE_ID,
                "method": "RemoveDevice",
                "timestamp_ms": 1_790_000_000_456_i64,
                "nonce": "101112131415161718191a1b1c1d1e1f",
                "body": [],
            }),
        ),
    ]);
    if algorithm == KeyAlgorithm::Ed25519 {
        // As apps of the first release approve: no user verification field.
        recipes.push(recipe(
            "approve with typed number, user verification unset",
            "approval",
            approval("DECISION_APPROVE", "42", None),
        ));
    }
    recipes.extend([
        recipe(
            "approve after a biometric",
            "approval",
            approval(
                "DECISION_APPROVE",
                "42",
                Some("USER_VERIFICATION_BIOMETRIC"),
            ),
        ),
        recipe(
            "approve after the device PIN",
            "approval",
            approval(
                "DECISION_APPROVE",
                "42",
                Some("USER_VERIFICATION_DEVICE_PIN"),
            ),
        ),
        recipe(
            "deny without verification",
            "approval",
            approval("DECISION_DENY", "", Some("USER_VERIFICATION_NONE")),
        ),
        recipe(
            "report fraud",
            "approval",
            approval("DECISION_REPORT_FRAUD", "", Some("USER_VERIFICATION_NONE")),
        ),
    ]);
    recipes
}

/// The inputs the vectors are made from: fixed keys and, for ECDSA, RFC 6979
/// deterministic nonces, so signatures are fixed too.
fn recipes() -> Vec<Recipe> {
    let mut recipes = device_recipes(KeyAlgorithm::Ed25519, "Ed25519");
    recipes.extend(device_recipes(KeyAlgorithm::EcdsaP256Sha256, "ECDSA P-256"));
    recipes.push(Recipe {
        name: "server-signed challenge context (Ed25519)".into(),
        kind: "challenge_context",
        algorithm: KeyAlgorithm::Ed25519,
        seed: SERVER_SEED,
        input: json!({
            "tenant_id": TENANT_ID,
            "tenant_display_name": "IHIGrp (External Collaboration)",
            "challenge_id": CHALLENGE_ID,
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
    });
    recipes
}

fn generate() -> Value {
    let vectors: Vec<Value> = recipes()
        .into_iter()
        .map(|recipe| {
            let key = SecretKey::from_bytes(recipe.algorithm, &recipe.seed).unwrap();
            let message = message_for(recipe.kind, &recipe.input);
            json!({
                "name": recipe.name,
                "kind": recipe.kind,
                "algorithm": recipe.algorithm.wire_name(),
                "private_key_seed": hex::encode(recipe.seed),
                "public_key": hex::encode(key.public_key().to_bytes()),
                "input": recipe.input,
                "message": hex::encode(&message),
                "signature": hex::encode(key.sign(&message)),
            })
        })
        .collect();
    json!({
        "description": "Signed-bytes test vectors of the mfa.v1 protocol; see docs/protocol.md. \
            private_key_seed is the Ed25519 seed or the P-256 scalar (big-endian); \
            ECDSA signatures use RFC 6979 nonces and are normalised to low S.",
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
    assert_eq!(vectors.len(), recipes().len());
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        let kind = vector["kind"].as_str().unwrap();
        let message = message_for(kind, &vector["input"]);
        assert_eq!(
            hex::encode(&message),
            vector["message"].as_str().unwrap(),
            "{name}: bytes"
        );

        let algorithm = algorithm_named(vector["algorithm"].as_str().unwrap());
        let seed: [u8; 32] = hex::decode(vector["private_key_seed"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let key = SecretKey::from_bytes(algorithm, &seed).unwrap();
        let public = PublicKey::parse(
            algorithm,
            &hex::decode(vector["public_key"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(public, key.public_key(), "{name}: public key");
        let signature = hex::decode(vector["signature"].as_str().unwrap()).unwrap();
        assert_eq!(key.sign(&message), signature, "{name}: signature");
        assert_eq!(
            public.verify(&message, &signature),
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
        user_verification: None,
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
        Err(SignatureError::MalformedSignature(KeyAlgorithm::Ed25519))
    );
    assert_eq!(
        parse_public_key(&[0; 31]).err(),
        Some(SignatureError::MalformedKey(KeyAlgorithm::Ed25519))
    );
}

#[test]
fn the_user_verification_flag_is_signed_and_absent_only_when_unset() {
    let key = SecretKey::from_bytes(KeyAlgorithm::EcdsaP256Sha256, &[9; 32]).unwrap();
    let approval = |user_verification| Approval {
        tenant_id: "t",
        challenge_id: "c",
        device_id: "d",
        decision: "DECISION_APPROVE",
        typed_number: "42",
        challenge_nonce: &[1; 32],
        user_verification,
    };
    let unset = approval(None).signed_bytes();
    let biometric = approval(Some("USER_VERIFICATION_BIOMETRIC")).signed_bytes();
    // Unset is the first release's message exactly: old signatures verify.
    assert_eq!(&biometric[..unset.len()], &unset[..]);
    let signature = key.sign(&biometric);
    let public = key.public_key();
    assert_eq!(public.verify(&biometric, &signature), Ok(()));
    // Stripped or flipped after signing, the signature no longer verifies.
    for tampered in [
        unset,
        approval(Some("USER_VERIFICATION_NONE")).signed_bytes(),
        approval(Some("USER_VERIFICATION_DEVICE_PIN")).signed_bytes(),
    ] {
        assert_eq!(
            public.verify(&tampered, &signature),
            Err(SignatureError::Mismatch)
        );
    }
}

#[test]
fn the_key_algorithm_is_signed_when_named() {
    let key = SecretKey::from_bytes(KeyAlgorithm::Ed25519, &[9; 32]).unwrap();
    let public_key = key.public_key().to_bytes();
    let proof = |key_algorithm| EnrollmentProof {
        activation_code: "K7Q2M9XW4T",
        public_key: &public_key,
        push_platform: "PUSH_PLATFORM_NONE",
        push_token: "",
        device_name: "phone",
        key_algorithm,
    };
    let named = proof(Some("KEY_ALGORITHM_ED25519")).signed_bytes();
    let signature = key.sign(&named);
    assert_eq!(
        key.public_key()
            .verify(&proof(None).signed_bytes(), &signature),
        Err(SignatureError::Mismatch)
    );
}
