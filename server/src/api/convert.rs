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
    }
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
