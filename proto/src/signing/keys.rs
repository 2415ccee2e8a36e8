//! Device key algorithms: the one place that chooses between them.
//!
//! A device enrolls with an Ed25519 key (the default, and the only algorithm
//! of the first protocol release) or an ECDSA P-256 key (the curve that
//! iOS's Secure Enclave and Android's StrongBox keep in hardware). The wire
//! encodings, fixed by `docs/protocol.md`:
//!
//! | algorithm           | public key                                  | signature                              |
//! |---------------------|---------------------------------------------|----------------------------------------|
//! | `ED25519`           | 32 bytes (RFC 8032)                         | 64 bytes (RFC 8032), canonical `S`     |
//! | `ECDSA_P256_SHA256` | 65 bytes, SEC1 uncompressed `04 ‖ X ‖ Y`    | ASN.1 DER `SEQUENCE { r, s }`, low `S` |
//!
//! Both are verified strictly: no small-order or off-curve keys, no identity
//! point, no second encoding of a signature, no malleable signature.

use super::SignatureError;
use ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature as P256Signature, SigningKey as P256Secret, VerifyingKey as P256Key};

/// The algorithm of a device key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8032, pure): the default.
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256 (FIPS 186-4, SEC1).
    EcdsaP256Sha256,
}

impl KeyAlgorithm {
    /// Every algorithm the protocol knows.
    pub const ALL: [Self; 2] = [Self::Ed25519, Self::EcdsaP256Sha256];

    /// The protobuf value name, as signed: `KEY_ALGORITHM_ED25519`, …
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Ed25519 => "KEY_ALGORITHM_ED25519",
            Self::EcdsaP256Sha256 => "KEY_ALGORITHM_ECDSA_P256_SHA256",
        }
    }

    /// The short name used in configuration, on the command line and in
    /// storage: `ed25519` or `ecdsa_p256_sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256Sha256 => "ecdsa_p256_sha256",
        }
    }

    /// Reads a short name ([`as_str`](Self::as_str)).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The length of a public key's encoding.
    pub fn public_key_len(self) -> usize {
        match self {
            Self::Ed25519 => 32,
            Self::EcdsaP256Sha256 => 65,
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device's public key, parsed and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// An Ed25519 key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// A P-256 key: a point on the curve, never the identity.
    EcdsaP256(P256Key),
}

impl PublicKey {
    /// Parses a public key in its algorithm's encoding. An Ed25519 key must
    /// be 32 bytes and not of small order; a P-256 key must be exactly 65
    /// bytes, `0x04` then X and Y, a point on the curve (the identity cannot
    /// be encoded this way). Compressed points and SPKI are refused: there is
    /// one encoding of each key.
    pub fn parse(algorithm: KeyAlgorithm, bytes: &[u8]) -> Result<Self, SignatureError> {
        let malformed = SignatureError::MalformedKey(algorithm);
        match algorithm {
            KeyAlgorithm::Ed25519 => ed25519_key(bytes).map(Self::Ed25519),
            KeyAlgorithm::EcdsaP256Sha256 => {
                if bytes.len() != 65 || bytes[0] != 0x04 {
                    return Err(malformed);
                }
                P256Key::from_sec1_bytes(bytes)
                    .map(Self::EcdsaP256)
                    .map_err(|_| malformed)
            }
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::Ed25519(_) => KeyAlgorithm::Ed25519,
            Self::EcdsaP256(_) => KeyAlgorithm::EcdsaP256Sha256,
        }
    }

    /// The key's wire encoding (see [`parse`](Self::parse)).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(key) => key.to_bytes().to_vec(),
            Self::EcdsaP256(key) => key.to_encoded_point(false).as_bytes().to_vec(),
        }
    }

    /// Verifies a signature over `message` strictly: Ed25519 with
    /// `verify_strict` (canonical `S`, no small-order `R`); P-256 only as
    /// canonical DER (re-encoding gives the same bytes) with `s ≤ n/2`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match self {
            Self::Ed25519(key) => {
                let signature = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| SignatureError::MalformedSignature(KeyAlgorithm::Ed25519))?;
                key.verify_strict(message, &signature)
                    .map_err(|_| SignatureError::Mismatch)
            }
            Self::EcdsaP256(key) => {
                let signature = p256_signature(signature)?;
                key.verify(message, &signature)
                    .map_err(|_| SignatureError::Mismatch)
            }
        }
    }
}

/// Parses a 32-byte Ed25519 key that is a valid point not of small order
/// (`verify_strict` would refuse every signature of a small-order key).
pub(super) fn ed25519_key(bytes: &[u8]) -> Result<ed25519_dalek::VerifyingKey, SignatureError> {
    let malformed = SignatureError::MalformedKey(KeyAlgorithm::Ed25519);
    let bytes: &[u8; 32] = bytes.try_into().map_err(|_| malformed)?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| malformed)?;
    if key.is_weak() {
        return Err(malformed);
    }
    Ok(key)
}

/// Parses a P-256 signature: strict DER, nothing before or after it, and the
/// low-`S` form (a high `S` is the same signature made malleable).
fn p256_signature(bytes: &[u8]) -> Result<P256Signature, SignatureError> {
    let malformed = SignatureError::MalformedSignature(KeyAlgorithm::EcdsaP256Sha256);
    let signature = P256Signature::from_der(bytes).map_err(|_| malformed)?;
    if signature.to_der().as_bytes() != bytes {
        return Err(malformed);
    }
    if signature.normalize_s().is_some() {
        return Err(SignatureError::HighS);
    }
    Ok(signature)
}

/// A device key held in software: the SDK's file and memory stores, tests
/// and the vectors. Apps that keep the key in hardware never make one.
#[derive(Clone)]
pub enum SecretKey {
    /// An Ed25519 key (its 32-byte seed).
    Ed25519(ed25519_dalek::SigningKey),
    /// A P-256 key (its 32-byte scalar).
    EcdsaP256(P256Secret),
}

impl SecretKey {
    /// A new random key from the operating system's generator.
    pub fn generate(algorithm: KeyAlgorithm) -> Self {
        let mut rng = rand::rngs::OsRng;
        match algorithm {
            KeyAlgorithm::Ed25519 => Self::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
            KeyAlgorithm::EcdsaP256Sha256 => Self::EcdsaP256(P256Secret::random(&mut rng)),
        }
    }

    /// A key from its 32 secret bytes: an Ed25519 seed, or a P-256 scalar
    /// (big-endian, between 1 and n − 1).
    pub fn from_bytes(algorithm: KeyAlgorithm, bytes: &[u8; 32]) -> Result<Self, SignatureError> {
        match algorithm {
            KeyAlgorithm::Ed25519 => {
                Ok(Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(bytes)))
            }
            KeyAlgorithm::EcdsaP256Sha256 => P256Secret::from_bytes(bytes.into())
                .map(Self::EcdsaP256)
                .map_err(|_| SignatureError::MalformedKey(algorithm)),
        }
    }

    /// The 32 secret bytes ([`from_bytes`](Self::from_bytes)); keep them
    /// where only the app can read them.
    pub fn to_bytes(&self) -> [u8; 32] {
        match self {
            Self::Ed25519(key) => key.to_bytes(),
            Self::EcdsaP256(key) => key.to_bytes().into(),
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public_key().algorithm()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
            Self::EcdsaP256(key) => PublicKey::EcdsaP256(*key.verifying_key()),
        }
    }

    /// Signs `message` as the protocol wants it: Ed25519 as is; P-256 with
    /// RFC 6979 deterministic nonces, normalised to low `S`, DER-encoded.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            Self::EcdsaP256(key) => {
                let signature: P256Signature = key.sign(message);
                low_s(signature).to_der().as_bytes().to_vec()
            }
        }
    }
}

/// The low-`S` form of a P-256 signature, as the server accepts it.
pub fn low_s(signature: P256Signature) -> P256Signature {
    signature.normalize_s().unwrap_or(signature)
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::{bigint::Encoding, Curve};

    const MESSAGE: &[u8] = b"mfa.v1 test message";

    fn p256_key() -> SecretKey {
        SecretKey::from_bytes(KeyAlgorithm::EcdsaP256Sha256, &[0x11; 32]).unwrap()
    }

    fn ed25519_key() -> SecretKey {
        SecretKey::from_bytes(KeyAlgorithm::Ed25519, &[0x11; 32]).unwrap()
    }

    /// The same signature with `s` replaced by `n - s`: mathematically
    /// valid, and the malleable twin the server refuses.
    fn high_s_twin(der: &[u8]) -> Vec<u8> {
        let signature = P256Signature::from_der(der).unwrap();
        let (r, s) = signature.split_scalars();
        let twin = P256Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        twin.to_der().as_bytes().to_vec()
    }

    #[test]
    fn both_algorithms_sign_and_verify_and_round_trip_their_keys() {
        for key in [ed25519_key(), p256_key()] {
            let public = key.public_key();
            let signature = key.sign(MESSAGE);
            assert_eq!(public.verify(MESSAGE, &signature), Ok(()));
            assert_eq!(
                public.verify(b"another message", &signature),
                Err(SignatureError::Mismatch)
            );
            let bytes = public.to_bytes();
            assert_eq!(bytes.len(), key.algorithm().public_key_len());
            assert_eq!(PublicKey::parse(key.algorithm(), &bytes), Ok(public));
            let secret = key.to_bytes();
            assert_eq!(
                SecretKey::from_bytes(key.algorithm(), &secret)
                    .unwrap()
                    .public_key(),
                public
            );
        }
    }

    #[test]
    fn p256_signatures_are_deterministic_low_s_der() {
        let key = p256_key();
        let signature = key.sign(MESSAGE);
        assert_eq!(signature, key.sign(MESSAGE), "RFC 6979");
        assert_eq!(signature[0], 0x30, "a DER SEQUENCE");
        let parsed = P256Signature::from_der(&signature).unwrap();
        assert!(parsed.normalize_s().is_none(), "low S");
    }

    #[test]
    fn a_high_s_twin_is_refused_though_it_is_valid_ecdsa() {
        let key = p256_key();
        let PublicKey::EcdsaP256(verifying) = key.public_key() else {
            unreachable!()
        };
        let signature = key.sign(MESSAGE);
        let twin = high_s_twin(&signature);
        assert_ne!(twin, signature);
        // Plain ECDSA accepts both; the protocol accepts one.
        let parsed = P256Signature::from_der(&twin).unwrap();
        assert!(verifying.verify(MESSAGE, &parsed).is_ok());
        assert_eq!(
            key.public_key().verify(MESSAGE, &twin),
            Err(SignatureError::HighS)
        );
    }

    #[test]
    fn p256_signatures_in_any_other_encoding_are_refused() {
        let key = p256_key();
        let public = key.public_key();
        let der = key.sign(MESSAGE);
        let malformed = Err(SignatureError::MalformedSignature(
            KeyAlgorithm::EcdsaP256Sha256,
        ));
        // Raw r || s (CryptoKit's rawRepresentation) is not the wire form.
        let raw = P256Signature::from_der(&der).unwrap().to_bytes().to_vec();
        assert_eq!(public.verify(MESSAGE, &raw), malformed);
        // A byte after the SEQUENCE.
        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(public.verify(MESSAGE, &trailing), malformed);
        // The same SEQUENCE with a long-form length (BER, not DER).
        let mut long_form = vec![0x30, 0x81];
        long_form.extend_from_slice(&der[1..]);
        assert_eq!(public.verify(MESSAGE, &long_form), malformed);
        // r with a needless leading zero byte.
        let r_len = usize::from(der[3]);
        let mut padded = vec![0x30, der[1] + 1, 0x02, der[3] + 1, 0x00];
        padded.extend_from_slice(&der[4..4 + r_len]);
        padded.extend_from_slice(&der[4 + r_len..]);
        assert_eq!(public.verify(MESSAGE, &padded), malformed);
        // Truncated, empty.
        assert_eq!(public.verify(MESSAGE, &der[..der.len() - 1]), malformed);
        assert_eq!(public.verify(MESSAGE, &[]), malformed);
        // s = n is out of range.
        let n = p256::NistP256::ORDER.to_be_bytes();
        let mut out_of_range = vec![0x30, 0x46, 0x02, 0x21, 0x00];
        out_of_range.extend_from_slice(&n);
        out_of_range.extend_from_slice(&[0x02, 0x21, 0x00]);
        out_of_range.extend_from_slice(&n);
        assert_eq!(public.verify(MESSAGE, &out_of_range), malformed);
    }

    #[test]
    fn p256_keys_in_any_other_encoding_or_off_the_curve_are_refused() {
        let algorithm = KeyAlgorithm::EcdsaP256Sha256;
        let malformed = Err(SignatureError::MalformedKey(algorithm));
        let PublicKey::EcdsaP256(key) = p256_key().public_key() else {
            unreachable!()
        };
        let uncompressed = key.to_encoded_point(false).as_bytes().to_vec();
        let compressed = key.to_encoded_point(true).as_bytes().to_vec();
        assert!(PublicKey::parse(algorithm, &uncompressed).is_ok());
        assert_eq!(PublicKey::parse(algorithm, &compressed), malformed);
        // SubjectPublicKeyInfo, as Android's getEncoded() gives it.
        let spki_prefix = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
        let spki = [hex_bytes(spki_prefix), uncompressed.clone()].concat();
        assert_eq!(PublicKey::parse(algorithm, &spki), malformed);
        // Y changed: off the curve.
        let mut off_curve = uncompressed.clone();
        off_curve[64] ^= 1;
        assert_eq!(PublicKey::parse(algorithm, &off_curve), malformed);
        // The identity's only SEC1 encoding, and an all-zero point.
        assert_eq!(PublicKey::parse(algorithm, &[0x00]), malformed);
        let mut zero = vec![0x04];
        zero.extend_from_slice(&[0; 64]);
        assert_eq!(PublicKey::parse(algorithm, &zero), malformed);
        // The hybrid form (0x06/0x07) of the same point.
        let mut hybrid = uncompressed;
        hybrid[0] = 0x06 | (hybrid[64] & 1);
        assert_eq!(PublicKey::parse(algorithm, &hybrid), malformed);
    }

    #[test]
    fn a_signature_of_one_algorithm_is_refused_by_the_other() {
        let ed = ed25519_key();
        let p = p256_key();
        // An Ed25519 signature (64 bytes) presented to a P-256 key.
        assert_eq!(
            p.public_key().verify(MESSAGE, &ed.sign(MESSAGE)),
            Err(SignatureError::MalformedSignature(
                KeyAlgorithm::EcdsaP256Sha256
            ))
        );
        // A P-256 DER signature presented to an Ed25519 key.
        assert_eq!(
            ed.public_key().verify(MESSAGE, &p.sign(MESSAGE)),
            Err(SignatureError::MalformedSignature(KeyAlgorithm::Ed25519))
        );
        // And each key's encoding under the other algorithm.
        assert!(PublicKey::parse(KeyAlgorithm::Ed25519, &p.public_key().to_bytes()).is_err());
        assert!(
            PublicKey::parse(KeyAlgorithm::EcdsaP256Sha256, &ed.public_key().to_bytes()).is_err()
        );
    }

    #[test]
    fn small_order_ed25519_keys_are_refused() {
        // The identity point (y = 1): every signature of it is forgeable.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            PublicKey::parse(KeyAlgorithm::Ed25519, &identity),
            Err(SignatureError::MalformedKey(KeyAlgorithm::Ed25519))
        );
    }

    #[test]
    fn p256_scalars_out_of_range_are_refused() {
        assert!(SecretKey::from_bytes(KeyAlgorithm::EcdsaP256Sha256, &[0; 32]).is_err());
        assert!(SecretKey::from_bytes(KeyAlgorithm::EcdsaP256Sha256, &[0xff; 32]).is_err());
    }

    #[test]
    fn names_parse_back() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(KeyAlgorithm::parse(algorithm.as_str()), Some(algorithm));
        }
        assert_eq!(KeyAlgorithm::parse("rsa"), None);
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
