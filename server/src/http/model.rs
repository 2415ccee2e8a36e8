//! The JSON bodies: the `mfa.v1` messages of the portal service in JSON,
//! field for field with the same names (see `proto/mfa/v1/`). Enums are
//! their full value names (`CHALLENGE_STATE_APPROVED`) and times RFC 3339
//! strings in UTC, as in protobuf's JSON mapping; an unset time is left out.

use mfa_proto::v1;
use serde::{Deserialize, Serialize};
use utoipa::{
    openapi::{schema::Type, ObjectBuilder, RefOr, Schema},
    ToSchema,
};

/// The schema of a string holding one of a protobuf enum's value names.
fn names_schema(names: Vec<&'static str>, enum_name: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some(format!("A value of `{enum_name}`, by its full name.")))
        .into()
}

/// The value names of a protobuf enum, in number order.
macro_rules! enum_names {
    ($enum:ty) => {
        (0..)
            .map_while(|n| <$enum>::try_from(n).ok())
            .map(|value| value.as_str_name())
            .collect::<Vec<&'static str>>()
    };
}
pub(crate) use enum_names;

fn challenge_kind() -> RefOr<Schema> {
    names_schema(enum_names!(v1::ChallengeKind), "mfa.v1.ChallengeKind")
}
fn challenge_state() -> RefOr<Schema> {
    names_schema(enum_names!(v1::ChallengeState), "mfa.v1.ChallengeState")
}
fn deny_reason() -> RefOr<Schema> {
    names_schema(enum_names!(v1::DenyReason), "mfa.v1.DenyReason")
}
fn enrollment_state() -> RefOr<Schema> {
    names_schema(enum_names!(v1::EnrollmentState), "mfa.v1.EnrollmentState")
}
fn device_state() -> RefOr<Schema> {
    names_schema(enum_names!(v1::DeviceState), "mfa.v1.DeviceState")
}
fn push_platform() -> RefOr<Schema> {
    names_schema(enum_names!(v1::PushPlatform), "mfa.v1.PushPlatform")
}
fn push_status() -> RefOr<Schema> {
    names_schema(enum_names!(v1::PushStatus), "mfa.v1.PushStatus")
}
fn key_algorithm() -> RefOr<Schema> {
    names_schema(enum_names!(v1::KeyAlgorithm), "mfa.v1.KeyAlgorithm")
}
fn push_delivery_state() -> RefOr<Schema> {
    names_schema(
        enum_names!(v1::PushDeliveryState),
        "mfa.v1.PushDeliveryState",
    )
}

/// A time as RFC 3339 in UTC (`2026-04-01T09:30:00.123Z`), if set.
fn time(t: Option<prost_types::Timestamp>) -> Option<String> {
    t.map(|t| t.to_string())
}

/// A time that is always set, as RFC 3339 in UTC.
fn time_set(t: Option<prost_types::Timestamp>) -> String {
    time(t).unwrap_or_default()
}

/// Body of `POST /v1/enrollments` (`mfa.v1.BeginEnrollmentRequest`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginEnrollmentRequest {
    /// The portal's identifier of the user; 1 to 128 bytes.
    pub user_id: String,
    /// The user's e-mail address, shown in the app; 3 to 254 bytes.
    pub email: String,
}

/// Answer of `POST /v1/enrollments` (`mfa.v1.BeginEnrollmentResponse`, and
/// the QR code as an image).
#[derive(Debug, Serialize, ToSchema)]
pub struct BeginEnrollmentResponse {
    /// Identifier of the enrollment, for `GET /v1/enrollments/{enrollment_id}`.
    pub enrollment_id: String,
    /// The URI to render as a QR code (`mfa://enroll?...`), see docs/protocol.md.
    /// Secret: show it to the person only.
    pub qr_uri: String,
    /// The same URI as an SVG image of its QR code, ready to show (for
    /// example as `data:image/svg+xml;base64,...`). Secret, like `qr_uri`.
    pub qr_svg: String,
    /// The activation code for manual entry, e.g. "K7Q2M-9XW4T". Secret:
    /// show it to the person only.
    pub manual_code: String,
    /// The server URL for manual entry.
    pub server_url: String,
    /// When the code expires.
    #[schema(format = DateTime)]
    pub expire_time: String,
}

impl BeginEnrollmentResponse {
    /// The message, with `qr_svg` the image of its URI.
    pub fn new(begun: v1::BeginEnrollmentResponse, qr_svg: String) -> Self {
        Self {
            enrollment_id: begun.enrollment_id,
            qr_uri: begun.qr_uri,
            qr_svg,
            manual_code: begun.manual_code,
            server_url: begun.server_url,
            expire_time: time_set(begun.expire_time),
        }
    }
}

/// An enrollment as the portal sees it (`mfa.v1.Enrollment`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Enrollment {
    /// Identifier (UUID).
    pub enrollment_id: String,
    /// The portal's identifier of the user.
    pub user_id: String,
    /// Current state.
    #[schema(schema_with = enrollment_state)]
    pub state: String,
    /// The number to show while state is `ENROLLMENT_STATE_DEVICE_REGISTERED`.
    pub verification_number: String,
    /// The registered device; empty before a device registered.
    pub device_id: String,
    /// When the activation code, or once registered the verification round, expires.
    #[schema(format = DateTime)]
    pub expire_time: String,
}

impl From<v1::Enrollment> for Enrollment {
    fn from(e: v1::Enrollment) -> Self {
        Self {
            state: e.state().as_str_name().to_owned(),
            enrollment_id: e.enrollment_id,
            user_id: e.user_id,
            verification_number: e.verification_number,
            device_id: e.device_id,
            expire_time: time_set(e.expire_time),
        }
    }
}

/// What to show on the phone (`mfa.v1.SignInContext`). Every field may be
/// left out (empty).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SignInContext {
    /// Name of the application being signed in to; at most 128 bytes.
    pub application_name: String,
    /// The client's IP address as the portal saw it (IPv4 or IPv6); may be empty.
    pub client_ip: String,
    /// Approximate location, e.g. "Tokyo, JP"; at most 128 bytes; may be empty.
    pub location: String,
    /// Free text shown to the person; at most 256 bytes; may be empty.
    pub message: String,
}

impl From<SignInContext> for v1::SignInContext {
    fn from(c: SignInContext) -> Self {
        Self {
            application_name: c.application_name,
            client_ip: c.client_ip,
            location: c.location,
            message: c.message,
        }
    }
}

impl From<v1::SignInContext> for SignInContext {
    fn from(c: v1::SignInContext) -> Self {
        Self {
            application_name: c.application_name,
            client_ip: c.client_ip,
            location: c.location,
            message: c.message,
        }
    }
}

/// Body of `POST /v1/challenges` (`mfa.v1.CreateChallengeRequest`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChallengeRequest {
    /// The portal's identifier of the user; 1 to 128 bytes.
    pub user_id: String,
    /// What to show on the phone.
    #[serde(default)]
    pub context: Option<SignInContext>,
}

/// A number-matching challenge as the portal sees it (`mfa.v1.Challenge`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Challenge {
    /// Identifier (UUID).
    pub challenge_id: String,
    /// The portal's identifier of the user.
    pub user_id: String,
    /// What the challenge is for.
    #[schema(schema_with = challenge_kind)]
    pub kind: String,
    /// Current state.
    #[schema(schema_with = challenge_state)]
    pub state: String,
    /// Set when state is `CHALLENGE_STATE_DENIED`.
    #[schema(schema_with = deny_reason)]
    pub deny_reason: String,
    /// The number to show on the sign-in screen (2 to 6 digits).
    pub number: String,
    /// The context shown on the phone.
    pub context: SignInContext,
    /// When it was created.
    #[schema(format = DateTime)]
    pub create_time: String,
    /// When it expires if nobody answers.
    #[schema(format = DateTime)]
    pub expire_time: String,
    /// When it left PENDING; left out while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
    /// The device that answered; empty unless a device answered.
    pub answered_by_device_id: String,
    /// How the push notification to each of the user's devices fared
    /// (devices without push are not listed).
    pub push_deliveries: Vec<PushDelivery>,
}

impl From<v1::Challenge> for Challenge {
    fn from(c: v1::Challenge) -> Self {
        Self {
            kind: c.kind().as_str_name().to_owned(),
            state: c.state().as_str_name().to_owned(),
            deny_reason: c.deny_reason().as_str_name().to_owned(),
            challenge_id: c.challenge_id,
            user_id: c.user_id,
            number: c.number,
            context: c.context.unwrap_or_default().into(),
            create_time: time_set(c.create_time),
            expire_time: time_set(c.expire_time),
            end_time: time(c.end_time),
            answered_by_device_id: c.answered_by_device_id,
            push_deliveries: c.push_deliveries.into_iter().map(Into::into).collect(),
        }
    }
}

/// Where a push notification to one device stands (`mfa.v1.PushDelivery`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PushDelivery {
    /// The device notified.
    pub device_id: String,
    /// The provider used.
    #[schema(schema_with = push_platform)]
    pub push_platform: String,
    /// Where the delivery stands.
    #[schema(schema_with = push_delivery_state)]
    pub state: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The provider's id for the notification once sent.
    pub provider_message_id: String,
    /// Why it is retrying or failed.
    pub reason: String,
    /// When this state was recorded.
    #[schema(format = DateTime)]
    pub update_time: String,
}

impl From<v1::PushDelivery> for PushDelivery {
    fn from(d: v1::PushDelivery) -> Self {
        Self {
            push_platform: d.push_platform().as_str_name().to_owned(),
            state: d.state().as_str_name().to_owned(),
            device_id: d.device_id,
            attempts: d.attempts,
            provider_message_id: d.provider_message_id,
            reason: d.reason,
            update_time: time_set(d.update_time),
        }
    }
}

/// A registered phone (`mfa.v1.Device`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    /// Identifier (UUID).
    pub device_id: String,
    /// The portal's identifier of the user the device belongs to.
    pub user_id: String,
    /// Name the app gave, e.g. "Hanako's iPhone".
    pub display_name: String,
    /// How the device is notified.
    #[schema(schema_with = push_platform)]
    pub push_platform: String,
    /// Whether it can answer.
    #[schema(schema_with = device_state)]
    pub state: String,
    /// When it registered.
    #[schema(format = DateTime)]
    pub create_time: String,
    /// When it was revoked; left out unless revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub revoke_time: Option<String>,
    /// Whether it can be notified.
    #[schema(schema_with = push_status)]
    pub push_status: String,
    /// Since when push_status has been PUSH_STATUS_TOKEN_INVALID; left out
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub push_status_time: Option<String>,
    /// The provider's reason for PUSH_STATUS_TOKEN_INVALID; empty otherwise.
    pub push_status_reason: String,
    /// The algorithm of its key.
    #[schema(schema_with = key_algorithm)]
    pub key_algorithm: String,
}

impl From<v1::Device> for Device {
    fn from(d: v1::Device) -> Self {
        Self {
            push_platform: d.push_platform().as_str_name().to_owned(),
            state: d.state().as_str_name().to_owned(),
            push_status: d.push_status().as_str_name().to_owned(),
            key_algorithm: d.key_algorithm().as_str_name().to_owned(),
            device_id: d.device_id,
            user_id: d.user_id,
            display_name: d.display_name,
            create_time: time_set(d.create_time),
            revoke_time: time(d.revoke_time),
            push_status_time: time(d.push_status_time),
            push_status_reason: d.push_status_reason,
        }
    }
}

/// Answer of `GET /v1/users/{user_id}` (`mfa.v1.GetUserStatusResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserStatus {
    /// The portal's identifier of the user.
    pub user_id: String,
    /// The e-mail given at the latest enrollment; empty if never enrolled.
    pub email: String,
    /// The user's devices that are active or pending verification.
    pub devices: Vec<Device>,
    /// True while new challenges are refused after a fraud report.
    pub blocked: bool,
    /// When the block ends by itself; left out unless blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub blocked_until: Option<String>,
    /// The latest terms-of-use version the user accepted; empty if none.
    pub accepted_terms_version: String,
    /// When that version was accepted; left out if none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub terms_accept_time: Option<String>,
}

impl From<v1::GetUserStatusResponse> for UserStatus {
    fn from(s: v1::GetUserStatusResponse) -> Self {
        Self {
            user_id: s.user_id,
            email: s.email,
            devices: s.devices.into_iter().map(Into::into).collect(),
            blocked: s.blocked,
            blocked_until: time(s.blocked_until),
            accepted_terms_version: s.accepted_terms_version,
            terms_accept_time: time(s.terms_accept_time),
        }
    }
}

/// Body of `POST /v1/users/{user_id}/terms`
/// (`mfa.v1.RecordTermsAcceptanceRequest`, the user in the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordTermsRequest {
    /// The accepted version, e.g. "2026-04"; 1 to 64 bytes.
    pub terms_version: String,
}

/// Answer of `POST /v1/users/{user_id}/terms`
/// (`mfa.v1.RecordTermsAcceptanceResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TermsAcceptance {
    /// The version now recorded.
    pub accepted_terms_version: String,
    /// When it was recorded.
    #[schema(format = DateTime)]
    pub accept_time: String,
}

/// Body of `POST /v1/users/{user_id}/offline-codes:verify`
/// (`mfa.v1.VerifyOfflineCodeRequest`, the user in the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyOfflineCodeRequest {
    /// The 6 digits the person typed (spaces are not stripped: send digits).
    pub code: String,
    /// The end user's address as the portal saw it, for the per-address
    /// limit; empty or left out if not known.
    #[serde(default)]
    pub client_ip: String,
}

/// Answer of `POST /v1/users/{user_id}/offline-codes:verify`
/// (`mfa.v1.VerifyOfflineCodeResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct OfflineCodeVerified {
    /// The device whose code it was.
    pub device_id: String,
    /// When it was accepted.
    #[schema(format = DateTime)]
    pub verify_time: String,
}

impl From<v1::VerifyOfflineCodeResponse> for OfflineCodeVerified {
    fn from(r: v1::VerifyOfflineCodeResponse) -> Self {
        Self {
            device_id: r.device_id,
            verify_time: time_set(r.verify_time),
        }
    }
}

impl From<v1::RecordTermsAcceptanceResponse> for TermsAcceptance {
    fn from(r: v1::RecordTermsAcceptanceResponse) -> Self {
        Self {
            accepted_terms_version: r.accepted_terms_version,
            accept_time: time_set(r.accept_time),
        }
    }
}
