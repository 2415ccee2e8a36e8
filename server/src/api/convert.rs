//! Encoding domain records as `mfa.v1` messages, and decoding enums.

use crate::{domain::Error, model};
use mfa_proto::v1;
use prost_types::Timestamp;

pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn optional_timestamp(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(timestamp)
}

impl From<model::ChallengeKind> for v1::ChallengeKind {
    fn from(kind: model::ChallengeKind) -> Self {
        match kind {
            model::ChallengeKind::SignIn => Self::SignIn,
            model::ChallengeKind::EnrollmentVerification => Self::EnrollmentVerification,
        }
    }
}

fn challenge_state(state: model::ChallengeState) -> v1::ChallengeState {
    use model::ChallengeState::*;
    match state {
        Pending => v1::ChallengeState::Pending,
        Approved => v1::ChallengeState::Approved,
        Denied => v1::ChallengeState::Denied,
        Expired => v1::ChallengeState::Expired,
        Superseded => v1::ChallengeState::Superseded,
        Cancelled => v1::ChallengeState::Cancelled,
    }
}

fn deny_reason(reason: Option<model::DenyReason>) -> v1::DenyReason {
    match reason {
        None => v1::DenyReason::Unspecified,
        Some(model::DenyReason::UserDenied) => v1::DenyReason::UserDenied,
        Some(model::DenyReason::WrongNumber) => v1::DenyReason::WrongNumber,
        Some(model::DenyReason::FraudReported) => v1::DenyReason::FraudReported,
        Some(model::DenyReason::UserVerificationRequired) => {
            v1::DenyReason::UserVerificationRequired
        }
    }
}

/// A key algorithm as a request names it: `None` when unset (Ed25519, and
/// nothing signed for it).
pub fn key_algorithm(value: i32) -> Result<Option<model::KeyAlgorithm>, Error> {
    match v1::KeyAlgorithm::try_from(value) {
        Ok(v1::KeyAlgorithm::Unspecified) => Ok(None),
        Ok(v1::KeyAlgorithm::Ed25519) => Ok(Some(model::KeyAlgorithm::Ed25519)),
        Ok(v1::KeyAlgorithm::EcdsaP256Sha256) => Ok(Some(model::KeyAlgorithm::EcdsaP256Sha256)),
        Err(_) => Err(Error::invalid(
            "key_algorithm must be ED25519 or ECDSA_P256_SHA256",
        )),
    }
}

fn key_algorithm_out(algorithm: model::KeyAlgorithm) -> v1::KeyAlgorithm {
    match algorithm {
        model::KeyAlgorithm::Ed25519 => v1::KeyAlgorithm::Ed25519,
        model::KeyAlgorithm::EcdsaP256Sha256 => v1::KeyAlgorithm::EcdsaP256Sha256,
    }
}

/// A user verification method as a request names it: `None` when unset (an
/// app that predates the flag, and nothing signed for it).
pub fn user_verification(value: i32) -> Result<Option<model::UserVerification>, Error> {
    match v1::UserVerification::try_from(value) {
        Ok(v1::UserVerification::Unspecified) => Ok(None),
        Ok(v1::UserVerification::None) => Ok(Some(model::UserVerification::None)),
        Ok(v1::UserVerification::DevicePin) => Ok(Some(model::UserVerification::DevicePin)),
        Ok(v1::UserVerification::Biometric) => Ok(Some(model::UserVerification::Biometric)),
        Err(_) => Err(Error::invalid(
            "user_verification must be NONE, DEVICE_PIN or BIOMETRIC",
        )),
    }
}

fn user_verification_out(method: model::UserVerification) -> v1::UserVerification {
    match method {
        model::UserVerification::None => v1::UserVerification::None,
        model::UserVerification::DevicePin => v1::UserVerification::DevicePin,
        model::UserVerification::Biometric => v1::UserVerification::Biometric,
    }
}

/// A tenant's device policy as AdminService shows it.
pub fn device_policy(policy: &model::DevicePolicy) -> v1::DevicePolicy {
    v1::DevicePolicy {
        allowed_key_algorithms: policy
            .allowed_key_algorithms
            .iter()
            .flatten()
            .map(|&a| key_algorithm_out(a).into())
            .collect(),
        require_user_verification: policy.user_verification.is_some(),
        accepted_user_verifications: policy
            .required_user_verification()
            .into_iter()
            .map(|m| user_verification_out(m).into())
            .collect(),
    }
}

/// A device policy from AdminService: every value named, none UNSPECIFIED;
/// no accepted methods without `require_user_verification`; an empty list
/// of either kind means every algorithm (every verifying method).
pub fn device_policy_in(policy: v1::DevicePolicy) -> Result<model::DevicePolicy, Error> {
    let mut algorithms = std::collections::BTreeSet::new();
    for &value in &policy.allowed_key_algorithms {
        algorithms.insert(key_algorithm(value)?.ok_or_else(|| {
            Error::invalid("device_policy.allowed_key_algorithms must not hold UNSPECIFIED")
        })?);
    }
    let mut methods = std::collections::BTreeSet::new();
    for &value in &policy.accepted_user_verifications {
        match user_verification(value)? {
            Some(model::UserVerification::None) | None => return Err(Error::invalid(
                "device_policy.accepted_user_verifications may hold DEVICE_PIN and BIOMETRIC only",
            )),
            Some(method) => methods.insert(method),
        };
    }
    if !policy.require_user_verification && !methods.is_empty() {
        return Err(Error::invalid(
            "device_policy.accepted_user_verifications needs require_user_verification",
        ));
    }
    if policy.require_user_verification && methods.is_empty() {
        methods = [
            model::UserVerification::DevicePin,
            model::UserVerification::Biometric,
        ]
        .into();
    }
    Ok(model::DevicePolicy {
        allowed_key_algorithms: (!algorithms.is_empty()).then_some(algorithms),
        user_verification: policy.require_user_verification.then_some(methods),
    })
}

pub fn push_platform(platform: i32) -> Result<(model::PushPlatform, &'static str), Error> {
    let decoded = v1::PushPlatform::try_from(platform).unwrap_or(v1::PushPlatform::Unspecified);
    let platform = match decoded {
        v1::PushPlatform::Apns => model::PushPlatform::Apns,
        v1::PushPlatform::Fcm => model::PushPlatform::Fcm,
        v1::PushPlatform::None => model::PushPlatform::None,
        v1::PushPlatform::Unspecified => {
            return Err(Error::invalid("push_platform must be APNS, FCM or NONE"))
        }
    };
    Ok((platform, decoded.as_str_name()))
}

fn push_platform_out(platform: model::PushPlatform) -> v1::PushPlatform {
    match platform {
        model::PushPlatform::Apns => v1::PushPlatform::Apns,
        model::PushPlatform::Fcm => v1::PushPlatform::Fcm,
        model::PushPlatform::None => v1::PushPlatform::None,
    }
}

pub fn sign_in_context(context: Option<v1::SignInContext>) -> model::SignInContext {
    let c = context.unwrap_or_default();
    model::SignInContext {
        application_name: c.application_name,
        client_ip: c.client_ip,
        location: c.location,
        message: c.message,
    }
}

fn sign_in_context_out(c: &model::SignInContext) -> v1::SignInContext {
    v1::SignInContext {
        application_name: c.application_name.clone(),
        client_ip: c.client_ip.clone(),
        location: c.location.clone(),
        message: c.message.clone(),
    }
}

/// A challenge with how its push notifications fared.
pub fn challenge(c: &model::Challenge, deliveries: &[model::PushDelivery]) -> v1::Challenge {
    v1::Challenge {
        challenge_id: c.id.clone(),
        user_id: c.user_id.clone(),
        kind: v1::ChallengeKind::from(c.kind).into(),
        state: challenge_state(c.state).into(),
        deny_reason: deny_reason(c.deny_reason).into(),
        number: c.number.clone(),
        context: Some(sign_in_context_out(&c.context)),
        create_time: Some(timestamp(c.created_at)),
        expire_time: Some(timestamp(c.expires_at)),
        end_time: optional_timestamp(c.ended_at),
        answered_by_device_id: c.answered_by.clone().unwrap_or_default(),
        push_deliveries: deliveries.iter().map(push_delivery).collect(),
    }
}

fn push_delivery(d: &model::PushDelivery) -> v1::PushDelivery {
    use model::DeliveryState::*;
    v1::PushDelivery {
        device_id: d.device_id.clone(),
        push_platform: push_platform_out(d.push_platform).into(),
        state: match d.state {
            Retrying => v1::PushDeliveryState::Retrying,
            Sent => v1::PushDeliveryState::Sent,
            Failed => v1::PushDeliveryState::Failed,
            TokenInvalid => v1::PushDeliveryState::TokenInvalid,
        }
        .into(),
        attempts: d.attempts,
        provider_message_id: d.provider_message_id.clone(),
        reason: d.reason.clone(),
        update_time: Some(timestamp(d.updated_at)),
    }
}

pub fn answer(c: &model::Challenge) -> v1::RespondToChallengeResponse {
    v1::RespondToChallengeResponse {
        state: challenge_state(c.state).into(),
        deny_reason: deny_reason(c.deny_reason).into(),
    }
}

pub fn is_terminal_challenge(c: &v1::Challenge) -> bool {
    c.state() != v1::ChallengeState::Pending
}

pub fn device(d: &model::Device) -> v1::Device {
    v1::Device {
        device_id: d.id.clone(),
        user_id: d.user_id.clone(),
        display_name: d.display_name.clone(),
        push_platform: push_platform_out(d.push_platform).into(),
        state: match d.state {
            model::DeviceState::PendingVerification => v1::DeviceState::PendingVerification,
            model::DeviceState::Active => v1::DeviceState::Active,
            model::DeviceState::Revoked => v1::DeviceState::Revoked,
        }
        .into(),
        create_time: Some(timestamp(d.created_at)),
        revoke_time: optional_timestamp(d.revoked_at),
        key_algorithm: key_algorithm_out(d.key_algorithm).into(),
        ..push_status(d.push_status())
    }
}

/// A device's push status fields.
fn push_status(status: model::PushStatus<'_>) -> v1::Device {
    let (status, since, reason) = match status {
        model::PushStatus::Ok => (v1::PushStatus::Ok, None, String::new()),
        model::PushStatus::NoToken => (v1::PushStatus::NoToken, None, String::new()),
        model::PushStatus::TokenInvalid(invalid) => (
            v1::PushStatus::TokenInvalid,
            Some(timestamp(invalid.since)),
            invalid.reason.clone(),
        ),
    };
    v1::Device {
        push_status: status.into(),
        push_status_time: since,
        push_status_reason: reason,
        ..Default::default()
    }
}

pub fn enrollment(e: &model::Enrollment, verification_number: Option<String>) -> v1::Enrollment {
    use model::EnrollmentState::*;
    v1::Enrollment {
        enrollment_id: e.id.clone(),
        user_id: e.user_id.clone(),
        state: match e.state {
            WaitingForScan => v1::EnrollmentState::WaitingForScan,
            DeviceRegistered => v1::EnrollmentState::DeviceRegistered,
            Verified => v1::EnrollmentState::Verified,
            Failed => v1::EnrollmentState::Failed,
            Expired => v1::EnrollmentState::Expired,
            Cancelled => v1::EnrollmentState::Cancelled,
        }
        .into(),
        verification_number: verification_number.unwrap_or_default(),
        device_id: e.device_id.clone().unwrap_or_default(),
        expire_time: Some(timestamp(e.expires_at)),
    }
}

pub fn is_terminal_enrollment(e: &v1::Enrollment) -> bool {
    !matches!(
        e.state(),
        v1::EnrollmentState::WaitingForScan | v1::EnrollmentState::DeviceRegistered
    )
}

pub fn pending(p: &crate::domain::PendingChallenge) -> v1::PendingChallenge {
    let c = &p.challenge;
    v1::PendingChallenge {
        context: Some(v1::ChallengeContext {
            challenge_id: c.id.clone(),
            tenant_id: c.tenant_id.clone(),
            tenant_display_name: p.tenant_display_name.clone(),
            user_email: p.user_email.clone(),
            kind: v1::ChallengeKind::from(c.kind).into(),
            sign_in: Some(sign_in_context_out(&c.context)),
            create_time: Some(timestamp(c.created_at)),
            expire_time: Some(timestamp(c.expires_at)),
            number_length: p.number_length,
            nonce: c.nonce.to_vec(),
        }),
        server_signature: p.server_signature.clone(),
        required_user_verification: p
            .required_user_verification
            .iter()
            .map(|&m| user_verification_out(m).into())
            .collect(),
    }
}

pub fn audit_event(e: &model::AuditEvent) -> v1::AuditEvent {
    v1::AuditEvent {
        event_id: e.id,
        time: Some(timestamp(e.at)),
        event_type: e.event_type.clone(),
        user_id: e.user_id.clone().unwrap_or_default(),
        device_id: e.device_id.clone().unwrap_or_default(),
        challenge_id: e.challenge_id.clone().unwrap_or_default(),
        enrollment_id: e.enrollment_id.clone().unwrap_or_default(),
        detail: e.detail.clone(),
        client_address: e.client_address.clone().unwrap_or_default(),
        count: u32::try_from(e.count).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signed bytes carry the domain's names: they must be the wire's.
    #[test]
    fn signed_names_are_the_wire_names() {
        for algorithm in model::KeyAlgorithm::ALL {
            assert_eq!(
                key_algorithm_out(algorithm).as_str_name(),
                algorithm.wire_name()
            );
            let value = key_algorithm_out(algorithm) as i32;
            assert_eq!(key_algorithm(value).unwrap(), Some(algorithm));
        }
        for method in model::UserVerification::ALL {
            assert_eq!(
                user_verification_out(method).as_str_name(),
                method.wire_name()
            );
            let value = user_verification_out(method) as i32;
            assert_eq!(user_verification(value).unwrap(), Some(method));
        }
        assert_eq!(key_algorithm(0).unwrap(), None);
        assert_eq!(user_verification(0).unwrap(), None);
        assert!(key_algorithm(99).is_err());
        assert!(user_verification(99).is_err());
    }

    #[test]
    fn device_policies_are_checked_and_round_trip() {
        let required_any = v1::DevicePolicy {
            allowed_key_algorithms: vec![v1::KeyAlgorithm::EcdsaP256Sha256.into()],
            require_user_verification: true,
            accepted_user_verifications: vec![],
        };
        let policy = device_policy_in(required_any).unwrap();
        assert!(policy.accepts(model::UserVerification::DevicePin));
        assert!(policy.accepts(model::UserVerification::Biometric));
        assert!(!policy.accepts(model::UserVerification::None));
        assert!(policy.allows(model::KeyAlgorithm::EcdsaP256Sha256));
        assert!(!policy.allows(model::KeyAlgorithm::Ed25519));
        assert_eq!(device_policy_in(device_policy(&policy)).unwrap(), policy);

        let open = device_policy_in(v1::DevicePolicy::default()).unwrap();
        assert_eq!(open, model::DevicePolicy::default());
        for bad in [
            v1::DevicePolicy {
                accepted_user_verifications: vec![v1::UserVerification::Biometric.into()],
                ..Default::default()
            },
            v1::DevicePolicy {
                require_user_verification: true,
                accepted_user_verifications: vec![v1::UserVerification::None.into()],
                ..Default::default()
            },
            v1::DevicePolicy {
                allowed_key_algorithms: vec![0],
                ..Default::default()
            },
            v1::DevicePolicy {
                allowed_key_algorithms: vec![42],
                ..Default::default()
            },
        ] {
            assert!(device_policy_in(bad).is_err());
        }
    }
}
