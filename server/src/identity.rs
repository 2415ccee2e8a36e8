//! The server's Ed25519 identity: it signs challenge contexts so the app can
//! trust what it shows, and its public key travels in the enrollment QR code.

use ed25519_dalek::SigningKey;
use std::path::Path;

/// The server's signing key.
#[derive(Clone)]
pub struct ServerIdentity {
    key: SigningKey,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("public_key", &self.public_key())
            .finish()
    }
}

impl ServerIdentity {
    /// Reads the 32-byte key seed at `path`, creating it (mode 0600) if missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let seed: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not a 32-byte Ed25519 key seed", path.display()),
                    )
                })?;
                Ok(Self {
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                crate::key_file::create_new(path, key.as_bytes())?;
                Ok(Self { key })
            }
            Err(e) => Err(e),
        }
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs a message.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        mfa_proto::signing::sign(&self.key, message)
    }
}
