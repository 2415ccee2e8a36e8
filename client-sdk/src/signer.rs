//! The device key, seen only through what it does: sign.
//!
//! Every request the device makes is signed through a [`Signer`], so the
//! SDK never needs the secret key. A key in the phone's secure hardware (the
//! iOS Secure Enclave, an Android Keystore or StrongBox key) implements it
//! by asking the hardware to sign; [`SoftwareKey`] is the implementation
//! for keys held in memory, which [`FileKeyStore`](crate::FileKeyStore) and
//! [`MemoryKeyStore`](crate::MemoryKeyStore) keep.

use mfa_proto::signing::{KeyAlgorithm, SecretKey};

use crate::Error;

/// A device key that signs where it lives; the secret never leaves it.
///
/// The protocol's encodings (`docs/protocol.md`): for
/// [`KeyAlgorithm::Ed25519`], a 32-byte public key and 64-byte signatures;
/// for [`KeyAlgorithm::EcdsaP256Sha256`], the public key as 65 bytes of
/// uncompressed SEC1 (`0x04 ‖ X ‖ Y`) and signatures over SHA-256 of the
/// message in DER with a low `S` (replace `s` by `n − s` when `s > n/2`;
/// platform APIs do not do that for you).
pub trait Signer: Send + Sync {
    /// The key's algorithm.
    fn algorithm(&self) -> KeyAlgorithm;
    /// The public key, in the algorithm's encoding.
    fn public_key(&self) -> Vec<u8>;
    /// Signs `message` (the whole message: a P-256 signer hashes it with
    /// SHA-256 itself). May fail, e.g. when the person cancels the
    /// system's prompt that guards a hardware key.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

/// A device key held in software (Ed25519 or P-256). `Debug` never shows
/// the secret.
#[derive(Debug, Clone)]
pub struct SoftwareKey(SecretKey);

impl SoftwareKey {
    /// A new random key of `algorithm`.
    pub fn generate(algorithm: KeyAlgorithm) -> Self {
        Self(SecretKey::generate(algorithm))
    }

    /// A key from its 32 secret bytes: an Ed25519 seed, or a P-256 scalar.
    pub fn from_bytes(algorithm: KeyAlgorithm, bytes: &[u8; 32]) -> Result<Self, Error> {
        SecretKey::from_bytes(algorithm, bytes)
            .map(Self)
            .map_err(|_| Error::Protocol("not a valid secret key of its algorithm"))
    }

    /// The 32 secret bytes, for a store that keeps them where only the app
    /// can read them.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl Signer for SoftwareKey {
    fn algorithm(&self) -> KeyAlgorithm {
        self.0.algorithm()
    }

    fn public_key(&self) -> Vec<u8> {
        self.0.public_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.0.sign(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_proto::signing::PublicKey;

    #[test]
    fn software_keys_of_both_algorithms_sign_what_the_server_verifies() {
        for algorithm in KeyAlgorithm::ALL {
            let key = SoftwareKey::generate(algorithm);
            assert_eq!(key.algorithm(), algorithm);
            let public = PublicKey::parse(algorithm, &key.public_key()).unwrap();
            let signature = key.sign(b"message").unwrap();
            assert_eq!(public.verify(b"message", &signature), Ok(()));
            let again = SoftwareKey::from_bytes(algorithm, &key.to_bytes()).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            assert!(!format!("{key:?}").contains(&format!("{:?}", key.to_bytes())));
        }
    }
}
