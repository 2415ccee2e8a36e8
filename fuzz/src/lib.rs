//! Fuzz targets. Each takes arbitrary bytes, must never panic, and checks
//! properties of what it parsed or built:
//!
//! - [`enrollment_uri`]: QR URIs and typed codes parse to values that render
//!   and parse back to themselves.
//! - [`signed_bytes`]: every signed message decodes back into exactly its
//!   fields (the encoding is unambiguous), and signatures verify only over
//!   the bytes they were made for.
//! - [`push_payload`]: both push shapes parse back to the same notice.
//! - [`request_decoding`]: any bytes, decoded as any request message, go
//!   through the server's real handlers (on a SQLite file) and come back as a
//!   client error, never a panic or an internal error.
//!
//! `cargo fuzz` runs them (`make fuzz`); `tests/replay.rs` replays the seeds
//! under `seeds/` and some mutations of them on stable Rust (`make test`).

mod requests;

use ed25519_dalek::SigningKey;
use mfa_proto::{
    enrollment::{display_activation_code, normalize_activation_code, EnrollmentUri},
    push::PushNotice,
    signing,
};

pub use requests::request_decoding;

/// The enrollment URI (QR code) and manual code parsers.
pub fn enrollment_uri(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(uri) = EnrollmentUri::parse(&text) {
        assert_eq!(EnrollmentUri::parse(&uri.to_uri()).as_ref(), Ok(&uri));
    }
    if let Ok(code) = normalize_activation_code(&text) {
        assert_eq!(code.len(), 10);
        assert_eq!(
            normalize_activation_code(&display_activation_code(&code)),
            Ok(code)
        );
    }
    // Manual entry: the first line is the code, the rest the server URL.
    let (code, url) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(manual) = EnrollmentUri::manual(code, url) {
        let again = EnrollmentUri::manual(&manual.activation_code, &manual.server_url);
        assert_eq!(again.as_ref(), Ok(&manual), "manual entry is not stable");
        let with_key = EnrollmentUri {
            server_public_key: Some([7; 32]),
            ..manual
        };
        assert_eq!(EnrollmentUri::parse(&with_key.to_uri()), Ok(with_key));
    }
}

/// The signed-bytes builders and the signature verifier.
pub fn signed_bytes(data: &[u8]) {
    let parts: Vec<&[u8]> = data.split(|b| *b == 0xFF).collect();
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let text: Vec<String> = (0..10)
        .map(|i| String::from_utf8_lossy(part(i)).into_owned())
        .collect();
    let int = |i: usize| {
        let mut bytes = [0u8; 8];
        let source = part(i);
        let n = source.len().min(8);
        bytes[..n].copy_from_slice(&source[..n]);
        i64::from_be_bytes(bytes)
    };
    let key: [u8; 32] = std::array::from_fn(|i| part(10).get(i).copied().unwrap_or(0));
    let t: Vec<&[u8]> = text.iter().map(String::as_bytes).collect();
    let body: Vec<&str> = text[4..].iter().map(String::as_str).collect();
    // The fields later versions added are written only when set.
    let optional = |i: usize| (!text[i].is_empty()).then_some(text[i].as_str());

    let messages: Vec<(Vec<u8>, Vec<Vec<u8>>)> = vec![
        (
            signing::EnrollmentProof {
                activation_code: &text[0],
                public_key: &key,
                push_platform: &text[1],
                push_token: &text[2],
                device_name: &text[3],
                key_algorithm: optional(9),
            }
            .signed_bytes(),
            fields(
                signing::ENROLLMENT_TAG,
                &[
                    &[t[0], &key[..], t[1], t[2], t[3]][..],
                    &optional_field(optional(9)),
                ]
                .concat(),
            ),
        ),
        (
            signing::DeviceRequest {
                device_id: &text[0],
                method: &text[1],
                timestamp_ms: int(11),
                nonce: part(12),
                body: &body,
            }
            .signed_bytes(),
            fields(
                signing::DEVICE_REQUEST_TAG,
                &[t[0], t[1], &int(11).to_be_bytes()[..], part(12)]
                    .into_iter()
                    .chain(body.iter().map(|s| s.as_bytes()))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            signing::Approval {
                tenant_id: &text[0],
                challenge_id: &text[1],
                device_id: &text[2],
                decision: &text[3],
                typed_number: &text[4],
                challenge_nonce: part(12),
                user_verification: optional(5),
            }
            .signed_bytes(),
            fields(
                signing::APPROVAL_TAG,
                &[
                    &[t[0], t[1], t[2], t[3], t[4], part(12)][..],
                    &optional_field(optional(5)),
                ]
                .concat(),
            ),
        ),
        (
            signing::ChallengeContext {
                tenant_id: &text[0],
                tenant_display_name: &text[1],
                challenge_id: &text[2],
                kind: &text[3],
                user_email: &text[4],
                application_name: &text[5],
                client_ip: &text[6],
                location: &text[7],
                message: &text[8],
                create_time_ms: int(11),
                expire_time_ms: int(13),
                number_length: int(14),
                nonce: part(12),
            }
            .signed_bytes(),
            fields(
                signing::CHALLENGE_CONTEXT_TAG,
                &[
                    t[0],
                    t[1],
                    t[2],
                    t[3],
                    t[4],
                    t[5],
                    t[6],
                    t[7],
                    t[8],
                    &int(11).to_be_bytes()[..],
                    &int(13).to_be_bytes()[..],
                    &int(14).to_be_bytes()[..],
                    part(12),
                ],
            ),
        ),
    ];

    for (bytes, expected) in &messages {
        assert_eq!(
            decode_fields(bytes),
            Some(expected.clone()),
            "ambiguous encoding"
        );
    }
    // Signing is slow next to the rest: one message per input, picked by it.
    let (bytes, _) = &messages[data.len() % messages.len()];
    let signer = SigningKey::from_bytes(&key);
    let verifier = signer.verifying_key();
    let signature = signing::sign(&signer, bytes);
    assert_eq!(signing::verify(&verifier, bytes, &signature), Ok(()));
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(signing::verify(&verifier, &tampered, &signature).is_err());
    // Whatever the bytes, parsing a key and verifying never panics, under
    // either algorithm.
    for algorithm in signing::KeyAlgorithm::ALL {
        if let Ok(key) = signing::PublicKey::parse(algorithm, part(10)) {
            let _ = key.verify(part(11), part(12));
        }
    }
    // A P-256 key from the input signs what it verifies, and no other bytes.
    if let Ok(secret) = signing::SecretKey::from_bytes(signing::KeyAlgorithm::EcdsaP256Sha256, &key)
    {
        let signature = secret.sign(bytes);
        assert_eq!(secret.public_key().verify(bytes, &signature), Ok(()));
        assert!(secret.public_key().verify(&tampered, &signature).is_err());
    }
}

/// An optional field as the expected field list holds it: itself, or nothing.
fn optional_field(value: Option<&str>) -> Vec<&[u8]> {
    value.map(str::as_bytes).into_iter().collect()
}

/// A tag and fields as the expected field list.
fn fields(tag: &str, values: &[&[u8]]) -> Vec<Vec<u8>> {
    std::iter::once(tag.as_bytes())
        .chain(values.iter().copied())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Splits length-prefixed fields; `None` if the bytes are not exactly that.
fn decode_fields(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (field, rest) = rest.split_at(len);
        out.push(field.to_vec());
        bytes = rest;
    }
    Some(out)
}

/// Push payloads as the app receives them.
pub fn push_payload(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = mfa_sdk::parse_push_payload(&text);
    assert_eq!(
        parsed.is_ok(),
        PushNotice::parse(&text).is_ok(),
        "the SDK and the protocol crate disagree"
    );
    if let Ok(notice) = parsed {
        let fcm = notice.to_fcm_data().to_string();
        assert_eq!(PushNotice::parse(&fcm).as_ref(), Ok(&notice));
        let apns = notice.to_apns_payload().to_string();
        assert_eq!(PushNotice::parse(&apns), Ok(notice));
    }
}
