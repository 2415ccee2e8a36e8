//! The exact bytes that devices and the server sign (see `docs/protocol.md`).
//!
//! Every signed message is a sequence of fields, each written as its length
//! (4 bytes, big-endian) followed by its bytes. The first field is a
//! domain-separation tag that names the message and the protocol version, so a
//! signature made for one purpose can never be taken for another. Integers are
//! 8-byte big-endian two's complement; enums are written as their protobuf
//! value names (e.g. `DECISION_APPROVE`).
//!
//! Fields added after the first release are written only when the request
//! sets them, so that what an older app signed still verifies; see
//! [`EnrollmentProof::key_algorithm`] and [`Approval::user_verification`].
//! Device keys are Ed25519 or ECDSA P-256 ([`keys`]); the server's key,
//! which signs challenge contexts, is Ed25519.

mod keys;

pub use keys::{low_s, KeyAlgorithm, PublicKey, SecretKey};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// Tag of the enrollment proof-of-possession bytes.
pub const ENROLLMENT_TAG: &str = "mfa.v1.enrollment";
/// Tag of the bytes a device signs on every call after enrollment.
pub const DEVICE_REQUEST_TAG: &str = "mfa.v1.device-request";
/// Tag of the bytes a device signs to answer a challenge.
pub const APPROVAL_TAG: &str = "mfa.v1.approval";
/// Tag of the challenge context the server signs for the device.
pub const CHALLENGE_CONTEXT_TAG: &str = "mfa.v1.challenge-context";

/// Builds a length-prefixed field sequence.
#[derive(Debug, Default, Clone)]
struct Fields(Vec<u8>);

impl Fields {
    fn new(tag: &str) -> Self {
        Self::default().bytes(tag.as_bytes())
    }

    fn bytes(mut self, value: &[u8]) -> Self {
        // Every field is bounded far below 4 GiB by the API's size limits, and
        // a gRPC message cannot carry more, so the length always fits.
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(value);
        self
    }

    fn str(self, value: &str) -> Self {
        self.bytes(value.as_bytes())
    }

    /// A field that later protocol versions added: written only when set,
    /// so that the bytes without it are those of the earlier version.
    fn optional_str(self, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.str(value),
            None => self,
        }
    }

    fn int(self, value: i64) -> Self {
        self.bytes(&value.to_be_bytes())
    }

    fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// What a new device signs to prove it holds its key and the activation code.
#[derive(Debug, Clone, Copy)]
pub struct EnrollmentProof<'a> {
    /// The activation code, normalised: upper case, no dashes or spaces.
    pub activation_code: &'a str,
    /// The device's public key, in its algorithm's encoding.
    pub public_key: &'a [u8],
    /// Push platform name, e.g. `PUSH_PLATFORM_APNS`.
    pub push_platform: &'a str,
    /// The push token.
    pub push_token: &'a str,
    /// The device's display name.
    pub device_name: &'a str,
    /// The key algorithm's name (e.g. `KEY_ALGORITHM_ECDSA_P256_SHA256`)
    /// when the request names one; `None` (no field at all) when it leaves
    /// it unset, as apps of the first release do, meaning Ed25519.
    pub key_algorithm: Option<&'a str>,
}

impl EnrollmentProof<'_> {
    /// The bytes to sign.
    pub fn signed_bytes(&self) -> Vec<u8> {
        Fields::new(ENROLLMENT_TAG)
            .str(self.activation_code)
            .bytes(self.public_key)
            .str(self.push_platform)
            .str(self.push_token)
            .str(self.device_name)
            .optional_str(self.key_algorithm)
            .finish()
    }
}

/// What a device signs on a call after enrollment.
#[derive(Debug, Clone, Copy)]
pub struct DeviceRequest<'a> {
    /// The calling device's id.
    pub device_id: &'a str,
    /// The RPC's method name, e.g. `ListPendingChallenges`.
    pub method: &'a str,
    /// Milliseconds since the Unix epoch on the device's clock.
    pub timestamp_ms: i64,
    /// 16 random bytes, used once.
    pub nonce: &'a [u8],
    /// The request's own fields, in the order `docs/protocol.md` gives.
    pub body: &'a [&'a str],
}

impl DeviceRequest<'_> {
    /// The bytes to sign.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut fields = Fields::new(DEVICE_REQUEST_TAG)
            .str(self.device_id)
            .str(self.method)
            .int(self.timestamp_ms)
            .bytes(self.nonce);
        for field in self.body {
            fields = fields.str(field);
        }
        fields.finish()
    }
}

/// What a device signs to answer a challenge.
#[derive(Debug, Clone, Copy)]
pub struct Approval<'a> {
    /// The tenant of the challenge.
    pub tenant_id: &'a str,
    /// The challenge being answered.
    pub challenge_id: &'a str,
    /// The answering device.
    pub device_id: &'a str,
    /// Decision name, e.g. `DECISION_APPROVE`.
    pub decision: &'a str,
    /// The digits the person typed (empty when denying without typing).
    pub typed_number: &'a str,
    /// The challenge's server nonce.
    pub challenge_nonce: &'a [u8],
    /// How the person unlocked, e.g. `USER_VERIFICATION_BIOMETRIC`, when
    /// the request says; `None` (no field at all) when it leaves it unset,
    /// as apps of the first release do, which counts as no verification.
    pub user_verification: Option<&'a str>,
}

impl Approval<'_> {
    /// The bytes to sign.
    pub fn signed_bytes(&self) -> Vec<u8> {
        Fields::new(APPROVAL_TAG)
            .str(self.tenant_id)
            .str(self.challenge_id)
            .str(self.device_id)
            .str(self.decision)
            .str(self.typed_number)
            .bytes(self.challenge_nonce)
            .optional_str(self.user_verification)
            .finish()
    }
}

/// What the server signs about a challenge so the app can trust what it shows.
#[derive(Debug, Clone, Copy)]
pub struct ChallengeContext<'a> {
    /// The tenant's id.
    pub tenant_id: &'a str,
    /// The tenant's display name.
    pub tenant_display_name: &'a str,
    /// The challenge's id.
    pub challenge_id: &'a str,
    /// Kind name, e.g. `CHALLENGE_KIND_SIGN_IN`.
    pub kind: &'a str,
    /// The user's e-mail.
    pub user_email: &'a str,
    /// Application being signed in to.
    pub application_name: &'a str,
    /// Client IP as the portal reported it.
    pub client_ip: &'a str,
    /// Approximate location.
    pub location: &'a str,
    /// Free text from the portal.
    pub message: &'a str,
    /// Creation time, milliseconds since the Unix epoch.
    pub create_time_ms: i64,
    /// Expiry time, milliseconds since the Unix epoch.
    pub expire_time_ms: i64,
    /// Digits in the number.
    pub number_length: i64,
    /// The challenge's server nonce.
    pub nonce: &'a [u8],
}

impl ChallengeContext<'_> {
    /// The bytes to sign.
    pub fn signed_bytes(&self) -> Vec<u8> {
        Fields::new(CHALLENGE_CONTEXT_TAG)
            .str(self.tenant_id)
            .str(self.tenant_display_name)
            .str(self.challenge_id)
            .str(self.kind)
            .str(self.user_email)
            .str(self.application_name)
            .str(self.client_ip)
            .str(self.location)
            .str(self.message)
            .int(self.create_time_ms)
            .int(self.expire_time_ms)
            .int(self.number_length)
            .bytes(self.nonce)
            .finish()
    }
}

/// How the person unlocked the app before answering a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserVerification {
    /// No verification (also: an answer from an app that predates the flag).
    None,
    /// The device's PIN, pattern or passcode.
    DevicePin,
    /// A biometric (fingerprint, face).
    Biometric,
}

impl UserVerification {
    /// Every method.
    pub const ALL: [Self; 3] = [Self::None, Self::DevicePin, Self::Biometric];

    /// The protobuf value name, as signed: `USER_VERIFICATION_NONE`, …
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::None => "USER_VERIFICATION_NONE",
            Self::DevicePin => "USER_VERIFICATION_DEVICE_PIN",
            Self::Biometric => "USER_VERIFICATION_BIOMETRIC",
        }
    }

    /// The short name used on the command line, in storage, audit entries
    /// and metrics: `none`, `device_pin` or `biometric`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DevicePin => "device_pin",
            Self::Biometric => "biometric",
        }
    }

    /// Reads a short name ([`as_str`](Self::as_str)).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for UserVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key or a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// The public key is not in its algorithm's encoding, or not a valid
    /// point (off the curve, or of small order).
    MalformedKey(KeyAlgorithm),
    /// The signature is not in its algorithm's encoding (64 bytes for
    /// Ed25519, canonical DER for P-256).
    MalformedSignature(KeyAlgorithm),
    /// A P-256 signature with `s > n/2`: its malleable twin.
    HighS,
    /// The signature does not verify over the bytes.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MalformedKey(KeyAlgorithm::Ed25519) => {
                f.write_str("public key must be a 32-byte Ed25519 key")
            }
            Self::MalformedKey(KeyAlgorithm::EcdsaP256Sha256) => f.write_str(
                "public key must be a 65-byte uncompressed SEC1 point on P-256 (04 || X || Y)",
            ),
            Self::MalformedSignature(KeyAlgorithm::Ed25519) => {
                f.write_str("signature must be 64 bytes")
            }
            Self::MalformedSignature(KeyAlgorithm::EcdsaP256Sha256) => {
                f.write_str("signature must be an ECDSA signature in canonical DER")
            }
            Self::HighS => f.write_str("ECDSA signature must have a low S (s <= n/2)"),
            Self::Mismatch => f.write_str("signature does not verify"),
        }
    }
}

impl std::error::Error for SignatureError {}

/// Parses the server's 32-byte Ed25519 public key.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey, SignatureError> {
    keys::ed25519_key(bytes)
}

/// Verifies an Ed25519 signature strictly (rejecting small-order keys and
/// malleable signatures).
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    PublicKey::Ed25519(*key).verify(message, signature)
}

/// Signs a message with an Ed25519 key (the server's).
pub fn sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    key.sign(message).to_bytes().to_vec()
}

#[cfg(test)]
mod tests;
