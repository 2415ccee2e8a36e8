//! The records the domain works with and the store keeps. Times are
//! milliseconds since the Unix epoch.

use std::{collections::BTreeSet, time::Duration};

pub use mfa_proto::signing::{KeyAlgorithm, UserVerification};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Reads a stored name.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

string_enum!(
    /// What an API key may call.
    Role { Portal => "portal", Admin => "admin" }
);

string_enum!(
    /// A challenge's state; all but `Pending` are terminal.
    ChallengeState {
        Pending => "pending",
        Approved => "approved",
        Denied => "denied",
        Expired => "expired",
        Superseded => "superseded",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// Why a challenge was denied.
    DenyReason {
        UserDenied => "user_denied",
        WrongNumber => "wrong_number",
        FraudReported => "fraud_reported",
        UserVerificationRequired => "user_verification_required",
    }
);

string_enum!(
    /// What a challenge is for.
    ChallengeKind { SignIn => "sign_in", EnrollmentVerification => "enrollment_verification" }
);

string_enum!(
    /// An enrollment's state.
    EnrollmentState {
        WaitingForScan => "waiting_for_scan",
        DeviceRegistered => "device_registered",
        Verified => "verified",
        Failed => "failed",
        Expired => "expired",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// A device's state.
    DeviceState { PendingVerification => "pending_verification", Active => "active", Revoked => "revoked" }
);

string_enum!(
    /// How a device is notified.
    PushPlatform { Apns => "apns", Fcm => "fcm", None => "none" }
);

string_enum!(
    /// Where a push notification to one device stands.
    DeliveryState {
        Retrying => "retrying",
        Sent => "sent",
        Failed => "failed",
        TokenInvalid => "token_invalid",
    }
);

/// A push notification to one device for one challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushDelivery {
    pub challenge_id: String,
    pub device_id: String,
    pub push_platform: PushPlatform,
    pub state: DeliveryState,
    pub attempts: u32,
    /// The provider's id for the notification once sent.
    pub provider_message_id: String,
    /// Why it is retrying or failed.
    pub reason: String,
    pub updated_at: i64,
}

impl EnrollmentState {
    /// True once the enrollment can no longer change.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::WaitingForScan | Self::DeviceRegistered)
    }
}

/// An organisation using the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub display_name: String,
    /// Digits in challenge numbers (2 to 6).
    pub number_digits: u8,
    pub created_at: i64,
    /// How long this tenant's challenges wait for an answer; `None`: the
    /// server's `challenge_ttl`.
    pub challenge_ttl: Option<Duration>,
    /// How long this tenant's activation codes stay valid; `None`: the
    /// server's `enrollment_ttl`.
    pub enrollment_ttl: Option<Duration>,
    /// Whether the portal may sign its users in with offline codes.
    pub offline_codes_enabled: bool,
    /// What the tenant requires of device keys and approvals.
    pub device_policy: DevicePolicy,
}

/// What a tenant requires of its devices' keys and approvals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicePolicy {
    /// The key algorithms a device may enroll with; `None`: every one,
    /// including algorithms added later.
    pub allowed_key_algorithms: Option<BTreeSet<KeyAlgorithm>>,
    /// The user verification methods of which an approval needs one;
    /// `None`: no verification required. Never empty, never holds
    /// [`UserVerification::None`].
    pub user_verification: Option<BTreeSet<UserVerification>>,
}

impl DevicePolicy {
    /// Whether a device may enroll with a key of `algorithm`.
    pub fn allows(&self, algorithm: KeyAlgorithm) -> bool {
        self.allowed_key_algorithms
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&algorithm))
    }

    /// Whether an approval after `method` meets the policy.
    pub fn accepts(&self, method: UserVerification) -> bool {
        self.user_verification
            .as_ref()
            .is_none_or(|accepted| accepted.contains(&method))
    }

    /// The methods an approval needs one of; empty when none is required.
    pub fn required_user_verification(&self) -> Vec<UserVerification> {
        self.user_verification.iter().flatten().copied().collect()
    }
}

/// What a tenant update changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantChanges {
    pub display_name: Option<String>,
    pub number_digits: Option<u8>,
    /// `Some(None)` returns to the server's `challenge_ttl`.
    pub challenge_ttl: Option<Option<Duration>>,
    /// `Some(None)` returns to the server's `enrollment_ttl`.
    pub enrollment_ttl: Option<Option<Duration>>,
    /// Turns offline codes on or off.
    pub offline_codes_enabled: Option<bool>,
    /// `Some(None)` allows every key algorithm again.
    pub allowed_key_algorithms: Option<Option<BTreeSet<KeyAlgorithm>>>,
    /// `Some(None)` requires no user verification any more.
    pub user_verification: Option<Option<BTreeSet<UserVerification>>>,
}

impl TenantChanges {
    /// True if it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A portal or admin API key as stored: whose it is and when it was created
/// and revoked. The key itself is never stored, only its hash, which stays
/// in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub role: Role,
    pub created_at: i64,
    /// Once set, the key no longer authenticates.
    pub revoked_at: Option<i64>,
    /// When it last authenticated, recorded at most once a minute and only
    /// when a server read it from the database (not from its key cache): it
    /// may be earlier than the true last use by up to a minute plus
    /// `api_key_cache_ttl`.
    pub last_used_at: Option<i64>,
}

/// A device's offline-code secret as stored: sealed with the server's
/// offline-code key, and the last time step a code of it was accepted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineSecret {
    pub device_id: String,
    pub sealed: Vec<u8>,
    pub last_step: Option<i64>,
}

/// A person, as the portal identifies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub tenant_id: String,
    pub user_id: String,
    pub email: String,
    pub blocked_until: Option<i64>,
    pub terms_version: Option<String>,
    pub terms_accepted_at: Option<i64>,
}

/// A registered phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub display_name: String,
    pub key_algorithm: KeyAlgorithm,
    /// The public key in its algorithm's wire encoding.
    pub public_key: Vec<u8>,
    pub push_platform: PushPlatform,
    pub push_token: String,
    pub state: DeviceState,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// Set while the push token is gone because the provider called it dead.
    pub push_token_invalid: Option<PushTokenInvalid>,
}

impl Device {
    /// Whether the device can be notified, as operators see it.
    pub fn push_status(&self) -> PushStatus<'_> {
        match &self.push_token_invalid {
            Some(invalid) => PushStatus::TokenInvalid(invalid),
            None if self.push_platform == PushPlatform::None || self.push_token.is_empty() => {
                PushStatus::NoToken
            }
            None => PushStatus::Ok,
        }
    }
}

/// When and why a provider called a device's push token dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTokenInvalid {
    pub since: i64,
    /// The provider's reason (`Unregistered`, `UNREGISTERED`, …).
    pub reason: String,
}

/// Whether a device can be notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStatus<'a> {
    Ok,
    /// The provider called the token dead; the app has not sent another.
    TokenInvalid(&'a PushTokenInvalid),
    /// The device never had a token (it answers by pulling only).
    NoToken,
}

/// A provider token shared by the replicas (APNs: the ES256 JWT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderToken {
    pub token: String,
    /// Its `iat`, in seconds since the epoch.
    pub issued_at: i64,
}

/// Devices without working push, counted for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreachableDevices {
    pub tenant_id: String,
    pub platform: PushPlatform,
    /// `token_invalid` or `no_token`.
    pub status: &'static str,
    pub count: i64,
}

/// An enrollment started by the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub state: EnrollmentState,
    pub created_at: i64,
    /// The code's expiry; once a device registered, the verification round's.
    pub expires_at: i64,
    pub device_id: Option<String>,
    /// The verification challenge, once a device registered.
    pub challenge_id: Option<String>,
}

/// What the portal said about a sign-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInContext {
    pub application_name: String,
    pub client_ip: String,
    pub location: String,
    pub message: String,
}

/// A number-matching challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub kind: ChallengeKind,
    /// The only device that may answer (enrollment verification); `None` for
    /// any active device of the user.
    pub target_device_id: Option<String>,
    pub number: String,
    pub nonce: [u8; 32],
    pub state: ChallengeState,
    pub deny_reason: Option<DenyReason>,
    pub answered_by: Option<String>,
    pub context: SignInContext,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

/// How a challenge leaves `Pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub state: ChallengeState,
    pub deny_reason: Option<DenyReason>,
    pub answered_by: Option<String>,
    /// Block the user's new challenges until then (fraud report).
    pub block_user_until: Option<i64>,
    /// Why it ended, for the audit log, when the deny reason does not say.
    pub note: Option<String>,
}

impl Ending {
    /// An ending without an answering device.
    pub fn unanswered(state: ChallengeState) -> Self {
        Self {
            state,
            deny_reason: None,
            answered_by: None,
            block_user_until: None,
            note: None,
        }
    }
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: i64,
    pub tenant_id: Option<String>,
    pub at: i64,
    pub event_type: String,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub challenge_id: Option<String>,
    pub enrollment_id: Option<String>,
    pub detail: String,
    /// The address the call came from, where a call caused it.
    pub client_address: Option<String>,
    /// How many times it happened: more than one only for an aggregated
    /// entry (failed authentications, one entry per kind, source and minute).
    pub count: i64,
}

impl Default for AuditEvent {
    fn default() -> Self {
        Self {
            id: 0,
            tenant_id: None,
            at: 0,
            event_type: String::new(),
            user_id: None,
            device_id: None,
            challenge_id: None,
            enrollment_id: None,
            detail: String::new(),
            client_address: None,
            count: 1,
        }
    }
}

/// A key of the OpenID provider that signs id_tokens (RS256): published in
/// the JWKS from `created_at`, used to sign from `signs_from`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The key id (`kid`), as the JWKS and each token's header name it.
    pub kid: String,
    /// The RSA private key, PKCS#1 DER.
    pub private_key: Vec<u8>,
    /// A self-signed X.509 certificate of the key (DER), for the JWKS's
    /// `x5c`.
    pub certificate: Vec<u8>,
    pub created_at: i64,
    pub signs_from: i64,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .finish_non_exhaustive()
    }
}

/// A relying party registered with the OpenID provider for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClient {
    pub client_id: String,
    pub tenant_id: String,
    /// Shown on the verification page and as the sign-in's application.
    pub display_name: String,
    /// SHA-256 of the client secret; `None` for a public client (PKCE only).
    pub secret_hash: Option<[u8; 32]>,
    /// The redirect URIs a request may name, compared exactly.
    pub redirect_uris: Vec<String>,
    /// For Entra ID's external authentication method: the Entra tenant
    /// whose id_token_hint this client's requests carry.
    pub entra: Option<EntraTenant>,
    pub created_at: i64,
}

/// An Entra ID tenant, as an external authentication method's client
/// checks the `id_token_hint` it sends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntraTenant {
    /// The Entra tenant id (`tid`).
    pub tenant_id: String,
    /// The app id of the external method's app registration: the hint's `aud`.
    pub app_id: String,
    /// The hint's issuer, `https://login.microsoftonline.com/<tid>/v2.0`.
    pub issuer: String,
    /// Where the tenant's signing keys are: an `https://` JWKS URL (for
    /// Entra, `https://login.microsoftonline.com/<tid>/discovery/v2.0/keys`)
    /// or a JWKS file's path.
    pub jwks: String,
}

string_enum!(
    /// What an authorization returns: a code (the code flow) or an
    /// id_token posted back at once (Entra ID's external method).
    ResponseType { Code => "code", IdToken => "id_token" }
);

/// Who an Entra `id_token_hint` named: returned in the id_token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HintSubject {
    pub sub: String,
    pub oid: String,
    pub tid: String,
}

/// One sign-in through the OpenID provider, from the authorization request
/// to the code's redemption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub id: String,
    pub tenant_id: String,
    pub client_id: String,
    /// The user, as the relying party named them (`login_hint`).
    pub user_id: String,
    /// The e-mail address an enrollment shows in the app (may be empty).
    pub email: String,
    /// Whether the request came authenticated by the client (pushed,
    /// RFC 9126, or with a verified Entra `id_token_hint`): only such a
    /// request may enroll a first device.
    pub pushed: bool,
    pub response_type: ResponseType,
    /// The subject of a verified `id_token_hint`.
    pub subject: Option<HintSubject>,
    /// The `acr` to grant (Entra ID's external method), one it asked for.
    pub acr: Option<String>,
    /// SHA-256 of the `id_token_hint`, which may be used once.
    pub hint_hash: Option<[u8; 32]>,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// The PKCE S256 challenge, base64url.
    pub code_challenge: Option<String>,
    /// The sign-in challenge in progress, if one was started.
    pub challenge_id: Option<String>,
    /// The enrollment in progress, for a user without a device.
    pub enrollment_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// When a code was issued or an error returned (once only).
    pub finished_at: Option<i64>,
    /// When the person approved (the id_token's `auth_time`).
    pub auth_time: Option<i64>,
    pub code_expires_at: Option<i64>,
    pub code_used_at: Option<i64>,
}
