//! The exact bytes that devices and the server sign (see `docs/protocol.md`).
//!
//! Every signed message is a sequence of fields, each written as its length
//! (4 bytes, big-endian) followed by its bytes. The first field is a
//! domain-separation tag that names the message and the protocol version, so a
//! signature made for one purpose can never be taken for another. Integers are
//! 8-byte big-endian two's complement; enums are written as their protobuf
//! value names (e.g. `DECISION_APPROVE`).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

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
    /// The device's Ed25519 public key.
    pub public_key: &'a [u8; 32],
    /// Push platform name, e.g. `PUSH_PLATFORM_APNS`.
    pub push_platform: &'a str,
    /// The push token.
    pub push_token: &'a str,
    /// The device's display name.
    pub device_name: &'a str,
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

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// The public key is not 32 bytes or not a valid curve point.
    MalformedKey,
    /// The signature is not 64 bytes.
    MalformedSignature,
    /// The signature does not verify over the bytes.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MalformedKey => "public key must be a 32-byte Ed25519 key",
            Self::MalformedSignature => "signature must be 64 bytes",
            Self::Mismatch => "signature does not verify",
        })
    }
}

impl std::error::Error for SignatureError {}

/// Parses a 32-byte Ed25519 public key.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey, SignatureError> {
    let bytes: &[u8; 32] = bytes.try_into().map_err(|_| SignatureError::MalformedKey)?;
    VerifyingKey::from_bytes(bytes).map_err(|_| SignatureError::MalformedKey)
}

/// Verifies a signature strictly (rejecting small-order keys and malleable
/// signatures).
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    let signature =
        Signature::from_slice(signature).map_err(|_| SignatureError::MalformedSignature)?;
    key.verify_strict(message, &signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// Signs a message.
pub fn sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    key.sign(message).to_bytes().to_vec()
}

#[cfg(test)]
mod tests;
