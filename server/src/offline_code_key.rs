//! The server's offline-code key: it seals each device's offline-code
//! secret at rest, so that a copy of the database alone gives no codes.
//!
//! AES-256-GCM (ring), with a random 96-bit nonce per secret and the device
//! id as associated data, so that a sealed secret moved to another device's
//! row does not open. Sealed form: the nonce, then the ciphertext and tag.
//! Every replica must read the same key (`offline_code_key_file`); rotating
//! it is not supported yet (secrets sealed with the old key would no longer
//! open: their devices would have to enroll again).

use rand::{rngs::OsRng, RngCore};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use std::path::Path;

/// Length of the key file: 32 random bytes.
pub const KEY_LENGTH: usize = 32;

/// The key that seals offline-code secrets.
pub struct OfflineCodeKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for OfflineCodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OfflineCodeKey(<redacted>)")
    }
}

impl OfflineCodeKey {
    /// The key of 32 bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LENGTH]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 takes 32 bytes");
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// Reads the key file at `path`: exactly 32 bytes.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        let bytes: [u8; KEY_LENGTH] = bytes.try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a {KEY_LENGTH}-byte key (make one with `head -c 32 /dev/urandom`)",
                    path.display()
                ),
            )
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Creates a key file of 32 random bytes (mode 0600) at `path` unless
    /// one exists (`serve --dev`).
    pub fn create_if_missing(path: &Path) -> std::io::Result<()> {
        let mut bytes = [0; KEY_LENGTH];
        OsRng.fill_bytes(&mut bytes);
        match crate::key_file::create_new(path, &bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }

    /// Seals a device's secret.
    pub fn seal(&self, device_id: &str, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut sealed = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(device_id.as_bytes()),
                &mut sealed,
            )
            .expect("a secret of a few bytes fits AES-GCM");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Opens a sealed secret of `device_id`; `None` if it was not sealed by
    /// this key for this device (or was altered).
    pub fn open(&self, device_id: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(device_id.as_bytes()), &mut buffer)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_device() {
        let key = OfflineCodeKey::from_bytes(&[7; 32]);
        let secret = [0x5a; 20];
        let sealed = key.seal("device-1", &secret);
        assert_eq!(sealed.len(), NONCE_LEN + 20 + 16);
        assert!(!sealed.windows(20).any(|w| w == secret));
        assert_eq!(key.open("device-1", &sealed).as_deref(), Some(&secret[..]));
        assert_ne!(
            key.seal("device-1", &secret),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(key.open("device-2", &sealed), None);
        assert_eq!(
            OfflineCodeKey::from_bytes(&[8; 32]).open("device-1", &sealed),
            None
        );
        let mut altered = sealed.clone();
        altered[NONCE_LEN] ^= 1;
        assert_eq!(key.open("device-1", &altered), None);
        assert_eq!(key.open("device-1", &sealed[..5]), None);
    }

    #[test]
    fn the_key_file_is_made_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/offline-code.key");
        OfflineCodeKey::create_if_missing(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), KEY_LENGTH);
        OfflineCodeKey::create_if_missing(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "kept, not replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = OfflineCodeKey::load(&path).unwrap().seal("d", b"s");
        assert_eq!(
            OfflineCodeKey::from_bytes(&bytes.try_into().unwrap())
                .open("d", &sealed)
                .as_deref(),
            Some(&b"s"[..])
        );
        std::fs::write(&path, b"short").unwrap();
        let error = OfflineCodeKey::load(&path).unwrap_err().to_string();
        assert!(error.contains("32-byte"), "{error}");
    }
}
