//! Challenges as the app may show them: only after the server's signature
//! over their context verified.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use mfa_proto::{
    signing::{self, UserVerification},
    v1::{self, ChallengeKind, PendingChallenge},
};

use crate::Error;

/// A challenge whose context the server's key signed: safe to show.
///
/// Made only by [`VerifiedChallenge::verify`] (and by the [`Authenticator`]
/// calls that use it); its fields are public to read.
///
/// [`Authenticator`]: crate::Authenticator
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedChallenge {
    /// The challenge's identifier.
    pub challenge_id: String,
    /// The tenant's identifier.
    pub tenant_id: String,
    /// The tenant's display name.
    pub tenant_display_name: String,
    /// The user's e-mail.
    pub user_email: String,
    /// Sign-in or enrollment verification.
    pub kind: ChallengeKind,
    /// Application being signed in to; empty for enrollment verification.
    pub application_name: String,
    /// The client's IP address as the portal reported it; may be empty.
    pub client_ip: String,
    /// Approximate location; may be empty.
    pub location: String,
    /// Free text from the portal; may be empty.
    pub message: String,
    /// When the challenge was created (millisecond precision).
    pub create_time: SystemTime,
    /// When it expires (millisecond precision).
    pub expire_time: SystemTime,
    /// How many digits the number has: the length of the app's input.
    pub number_length: u32,
    /// The server nonce that the answer's signature binds.
    pub nonce: Vec<u8>,
    /// The user verification the tenant requires to approve: verify the
    /// person with one of these methods (a biometric, the device PIN) and
    /// approve with [`Authenticator::approve_verified`]. Empty when none is
    /// required. The server enforces it; this tells the app to ask.
    ///
    /// [`Authenticator::approve_verified`]: crate::Authenticator::approve_verified
    pub required_user_verification: Vec<UserVerification>,
}

impl VerifiedChallenge {
    /// Checks the server's signature over the challenge's context and, only
    /// if it verifies, returns the challenge to show.
    ///
    /// Fails with [`Error::BadServerSignature`] when the signature does not
    /// verify with `server_key`, and with [`Error::Protocol`] when the context
    /// is missing or of a kind this SDK does not know.
    pub fn verify(pending: &PendingChallenge, server_key: &VerifyingKey) -> Result<Self, Error> {
        let context = pending
            .context
            .as_ref()
            .ok_or(Error::Protocol("a pending challenge has no context"))?;
        let kind = ChallengeKind::try_from(context.kind)
            .map_err(|_| Error::Protocol("a challenge is of an unknown kind"))?;
        let sign_in = context.sign_in.clone().unwrap_or_default();
        let create_time_ms = timestamp_ms(context.create_time.as_ref());
        let expire_time_ms = timestamp_ms(context.expire_time.as_ref());

        let signed = signing::ChallengeContext {
            tenant_id: &context.tenant_id,
            tenant_display_name: &context.tenant_display_name,
            challenge_id: &context.challenge_id,
            kind: kind.as_str_name(),
            user_email: &context.user_email,
            application_name: &sign_in.application_name,
            client_ip: &sign_in.client_ip,
            location: &sign_in.location,
            message: &sign_in.message,
            create_time_ms,
            expire_time_ms,
            number_length: i64::from(context.number_length),
            nonce: &context.nonce,
        };
        signing::verify(
            server_key,
            &signed.signed_bytes(),
            &pending.server_signature,
        )
        .map_err(|_| Error::BadServerSignature)?;

        Ok(Self {
            challenge_id: context.challenge_id.clone(),
            tenant_id: context.tenant_id.clone(),
            tenant_display_name: context.tenant_display_name.clone(),
            user_email: context.user_email.clone(),
            kind,
            application_name: sign_in.application_name,
            client_ip: sign_in.client_ip,
            location: sign_in.location,
            message: sign_in.message,
            create_time: system_time(create_time_ms),
            expire_time: system_time(expire_time_ms),
            number_length: context.number_length,
            nonce: context.nonce.clone(),
            // A method this SDK does not know is one it cannot offer.
            required_user_verification: pending
                .required_user_verification
                .iter()
                .filter_map(|&value| match v1::UserVerification::try_from(value) {
                    Ok(v1::UserVerification::DevicePin) => Some(UserVerification::DevicePin),
                    Ok(v1::UserVerification::Biometric) => Some(UserVerification::Biometric),
                    _ => None,
                })
                .collect(),
        })
    }

    /// Whether the tenant requires user verification to approve.
    pub fn requires_user_verification(&self) -> bool {
        !self.required_user_verification.is_empty()
    }

    /// Whether the challenge has expired by the device's clock.
    pub fn is_expired(&self) -> bool {
        SystemTime::now() >= self.expire_time
    }
}

/// Milliseconds since the Unix epoch, as the signed bytes carry them; a
/// missing timestamp is 0.
fn timestamp_ms(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    timestamp.map_or(0, |t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos / 1_000_000))
    })
}

fn system_time(ms: i64) -> SystemTime {
    let offset = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::test_vectors::{bytes, vectors};
    use mfa_proto::v1::{ChallengeContext, SignInContext};

    fn timestamp(ms: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        })
    }

    /// The vector's challenge as the server would send it.
    pub(crate) fn pending_from_vector(vector: &serde_json::Value) -> PendingChallenge {
        let input = &vector["input"];
        let text = |name: &str| input[name].as_str().unwrap().to_owned();
        let int = |name: &str| input[name].as_i64().unwrap();
        PendingChallenge {
            context: Some(ChallengeContext {
                challenge_id: text("challenge_id"),
                tenant_id: text("tenant_id"),
                tenant_display_name: text("tenant_display_name"),
                user_email: text("user_email"),
                kind: ChallengeKind::from_str_name(&text("kind")).unwrap() as i32,
                sign_in: Some(SignInContext {
                    application_name: text("application_name"),
                    client_ip: text("client_ip"),
                    location: text("location"),
                    message: text("message"),
                }),
                create_time: timestamp(int("create_time_ms")),
                expire_time: timestamp(int("expire_time_ms")),
                number_length: int("number_length").try_into().unwrap(),
                nonce: bytes(&input["nonce"]),
            }),
            server_signature: bytes(&vector["signature"]),
            required_user_verification: Vec::new(),
        }
    }

    fn server_key(vector: &serde_json::Value) -> VerifyingKey {
        signing::parse_public_key(&bytes(&vector["public_key"])).unwrap()
    }

    #[test]
    fn committed_context_vectors_verify() {
        for vector in vectors("challenge_context") {
            let pending = pending_from_vector(&vector);
            let verified = VerifiedChallenge::verify(&pending, &server_key(&vector))
                .unwrap_or_else(|e| panic!("{}: {e}", vector["name"]));
            let input = &vector["input"];
            assert_eq!(
                verified.challenge_id,
                input["challenge_id"].as_str().unwrap()
            );
            assert_eq!(verified.location, input["location"].as_str().unwrap());
            assert_eq!(verified.kind.as_str_name(), input["kind"].as_str().unwrap());
            assert_eq!(
                verified.expire_time,
                UNIX_EPOCH + Duration::from_millis(input["expire_time_ms"].as_u64().unwrap())
            );
            assert_eq!(
                i64::from(verified.number_length),
                input["number_length"].as_i64().unwrap()
            );
            assert_eq!(verified.nonce, bytes(&input["nonce"]));
        }
    }

    #[test]
    fn any_tampered_field_fails_the_signature() {
        type Tamper = fn(&mut PendingChallenge);
        let tampers: &[(&str, Tamper)] = &[
            ("location", |p| {
                p.context
                    .as_mut()
                    .unwrap()
                    .sign_in
                    .as_mut()
                    .unwrap()
                    .location = "Lagos, NG".into()
            }),
            ("application", |p| {
                let sign_in = p.context.as_mut().unwrap().sign_in.as_mut().unwrap();
                sign_in.application_name.push('!');
            }),
            ("sign_in removed", |p| {
                p.context.as_mut().unwrap().sign_in = None
            }),
            ("tenant", |p| {
                p.context.as_mut().unwrap().tenant_display_name = "Evil Corp".into()
            }),
            ("kind", |p| {
                p.context.as_mut().unwrap().kind = ChallengeKind::EnrollmentVerification as i32
            }),
            ("expiry", |p| {
                let expiry = p.context.as_mut().unwrap().expire_time.as_mut().unwrap();
                expiry.seconds += 3600;
            }),
            ("number length", |p| {
                p.context.as_mut().unwrap().number_length = 6
            }),
            ("nonce", |p| p.context.as_mut().unwrap().nonce[0] ^= 1),
            ("signature", |p| p.server_signature[0] ^= 1),
            ("short signature", |p| p.server_signature.truncate(63)),
        ];
        for vector in vectors("challenge_context") {
            for (name, tamper) in tampers {
                let mut pending = pending_from_vector(&vector);
                tamper(&mut pending);
                let result = VerifiedChallenge::verify(&pending, &server_key(&vector));
                assert!(
                    matches!(result, Err(Error::BadServerSignature)),
                    "tampered {name}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn another_servers_key_fails() {
        let other = ed25519_dalek::SigningKey::from_bytes(&[0x33; 32]).verifying_key();
        for vector in vectors("challenge_context") {
            let result = VerifiedChallenge::verify(&pending_from_vector(&vector), &other);
            assert!(
                matches!(result, Err(Error::BadServerSignature)),
                "{result:?}"
            );
        }
    }

    #[test]
    fn missing_context_is_a_protocol_error() {
        let vector = &vectors("challenge_context")[0];
        let pending = PendingChallenge {
            context: None,
            server_signature: bytes(&vector["signature"]),
            required_user_verification: Vec::new(),
        };
        let result = VerifiedChallenge::verify(&pending, &server_key(vector));
        assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    }

    #[test]
    fn the_required_user_verification_is_passed_on() {
        let vector = &vectors("challenge_context")[0];
        let mut pending = pending_from_vector(vector);
        pending.required_user_verification = vec![
            v1::UserVerification::Biometric as i32,
            v1::UserVerification::DevicePin as i32,
            99,
        ];
        let verified = VerifiedChallenge::verify(&pending, &server_key(vector)).unwrap();
        assert_eq!(
            verified.required_user_verification,
            [UserVerification::Biometric, UserVerification::DevicePin]
        );
        assert!(verified.requires_user_verification());
    }

    #[test]
    fn timestamps_become_milliseconds() {
        let t = prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 123_999_999,
        };
        assert_eq!(timestamp_ms(Some(&t)), 1_790_000_000_123);
        assert_eq!(timestamp_ms(None), 0);
        assert_eq!(system_time(-1500), UNIX_EPOCH - Duration::from_millis(1500));
    }
}
