//! The enrolled account and where the app keeps it.
//!
//! The account holds the device's secret key, so a store must keep it where
//! only the app can read it. [`FileKeyStore`] writes a JSON file readable by
//! its owner only; a production app would rather implement [`KeyStore`] on top
//! of the platform's keychain or keystore.

use std::{
    fs, io,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::Error;

/// One enrolled account: which server, which device, and the device's key.
///
/// `Debug` never prints the secret key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The server's gRPC URL.
    pub server_url: String,
    /// The device's identifier, sent with every call.
    pub device_id: String,
    /// The tenant's identifier.
    pub tenant_id: String,
    /// The tenant's display name, shown as the account's title.
    pub tenant_display_name: String,
    /// The user's e-mail, shown under the title.
    pub user_email: String,
    /// The server's Ed25519 public key, which signs challenge contexts.
    #[serde(with = "base64_key")]
    pub server_public_key: [u8; 32],
    /// The device's Ed25519 secret key (zeroed in memory when dropped).
    #[serde(rename = "device_key_seed", with = "base64_signing_key")]
    device_key: SigningKey,
    /// The device's offline-code secret, when the server offers offline
    /// codes ([`Account::offline_code`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_optional_secret"
    )]
    pub(crate) offline_code_secret: Option<Vec<u8>>,
}

impl Account {
    pub(crate) fn new(
        server_url: String,
        response: &mfa_proto::v1::CompleteEnrollmentResponse,
        server_public_key: [u8; 32],
        device_key: SigningKey,
    ) -> Self {
        Self {
            server_url,
            device_id: response.device_id.clone(),
            tenant_id: response.tenant_id.clone(),
            tenant_display_name: response.tenant_display_name.clone(),
            user_email: response.user_email.clone(),
            server_public_key,
            device_key,
            offline_code_secret: crate::offline_code::secret_of(response),
        }
    }

    /// The device's secret key. For platform key stores that keep the key
    /// apart from the rest of the account, and for tests; never send it anywhere.
    pub fn signing_key(&self) -> &SigningKey {
        &self.device_key
    }

    /// The device's public key, as the server knows it.
    pub fn device_public_key(&self) -> VerifyingKey {
        self.device_key.verifying_key()
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("server_url", &self.server_url)
            .field("device_id", &self.device_id)
            .field("tenant_id", &self.tenant_id)
            .field("tenant_display_name", &self.tenant_display_name)
            .field("user_email", &self.user_email)
            .field(
                "server_public_key",
                &STANDARD.encode(self.server_public_key),
            )
            .field("device_key", &"<redacted>")
            .field(
                "offline_code_secret",
                &self.offline_code_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where the app keeps its account between runs.
///
/// Calls are synchronous: saving happens once per enrollment and loading once
/// per start, so a short blocking write is acceptable.
pub trait KeyStore: Send + Sync {
    /// Reads the saved account; `None` when none was saved.
    fn load(&self) -> Result<Option<Account>, Error>;
    /// Saves the account, replacing any earlier one.
    fn save(&self, account: &Account) -> Result<(), Error>;
    /// Deletes the saved account; deleting nothing is not an error.
    fn delete(&self) -> Result<(), Error>;
}

/// Keeps the account as a JSON file that only its owner can read (mode 0600
/// on Unix). Saving writes a temporary file in the same directory and renames
/// it over the old one, so a crash never leaves half an account behind.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    path: PathBuf,
}

impl FileKeyStore {
    /// A store at this path; the directory must exist.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn directory(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    fn write_new_file(path: &Path, contents: &[u8]) -> io::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(contents)?;
        file.sync_all()
    }
}

impl KeyStore for FileKeyStore {
    fn load(&self) -> Result<Option<Account>, Error> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let account = serde_json::from_slice(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is damaged: {e}", self.path.display()),
            )
        })?;
        Ok(Some(account))
    }

    fn save(&self, account: &Account) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(account).map_err(io::Error::other)?;
        let file_name = self
            .path
            .file_name()
            .ok_or_else(|| io::Error::other("the key store path must name a file"))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(file_name);
        temp_name.push(format!(".{:016x}.tmp", rand::rngs::OsRng.next_u64()));
        let temp = self.directory().join(temp_name);

        let written =
            Self::write_new_file(&temp, &json).and_then(|()| fs::rename(&temp, &self.path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(e.into());
        }
        // Make the rename itself durable. Some file systems refuse to sync a
        // directory; the file is in place either way, so that is not an error.
        #[cfg(unix)]
        if let Ok(dir) = fs::File::open(self.directory()) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn delete(&self) -> Result<(), Error> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Keeps the account in memory only, for tests and examples. Clones share the
/// same slot.
#[derive(Debug, Clone, Default)]
pub struct MemoryKeyStore {
    slot: Arc<Mutex<Option<Account>>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Account>> {
        // The slot holds plain data, so a panic elsewhere cannot leave it
        // inconsistent: use it even if poisoned.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KeyStore for MemoryKeyStore {
    fn load(&self) -> Result<Option<Account>, Error> {
        Ok(self.slot().clone())
    }

    fn save(&self, account: &Account) -> Result<(), Error> {
        *self.slot() = Some(account.clone());
        Ok(())
    }

    fn delete(&self) -> Result<(), Error> {
        *self.slot() = None;
        Ok(())
    }
}

/// Serde of a 32-byte key as standard base64.
mod base64_key {
    use super::*;
    use serde::{de::Error as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(key))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| D::Error::custom("expected a 32-byte key in base64"))
    }
}

/// Serde of an optional secret as standard base64.
mod base64_optional_secret {
    use super::*;
    use serde::{de::Error as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        secret: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match secret {
            Some(secret) => serializer.serialize_str(&STANDARD.encode(secret)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                STANDARD
                    .decode(text)
                    .map_err(|_| D::Error::custom("expected a secret in base64"))
            })
            .transpose()
    }
}

/// Serde of a signing key as its 32-byte seed in standard base64.
mod base64_signing_key {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &SigningKey, serializer: S) -> Result<S::Ok, S::Error> {
        base64_key::serialize(&key.to_bytes(), serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SigningKey, D::Error> {
        base64_key::deserialize(deserializer).map(|seed| SigningKey::from_bytes(&seed))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_account() -> Account {
        Account {
            server_url: "http://127.0.0.1:50051".into(),
            device_id: "6f1c1d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f".into(),
            tenant_id: "3b0e6a52-1c2d-4e5f-8a9b-0c1d2e3f4a5b".into(),
            tenant_display_name: "IHIGrp (External Collaboration)".into(),
            user_email: "hanako@example.jp".into(),
            server_public_key: SigningKey::from_bytes(&[0x22; 32])
                .verifying_key()
                .to_bytes(),
            device_key: SigningKey::from_bytes(&[0x11; 32]),
            offline_code_secret: Some(b"12345678901234567890".to_vec()),
        }
    }

    #[test]
    fn file_store_round_trips_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path().join("account.json"));
        assert_eq!(store.load().unwrap(), None);

        let account = sample_account();
        store.save(&account).unwrap();
        assert_eq!(store.load().unwrap(), Some(account.clone()));

        // Saving again replaces the file and leaves no temporary file behind.
        let mut renamed = account;
        renamed.user_email = "taro@example.jp".into();
        store.save(&renamed).unwrap();
        assert_eq!(store.load().unwrap(), Some(renamed));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["account.json"]);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        store.delete().unwrap();
        assert_eq!(store.load().unwrap(), None);
        store.delete().unwrap();
    }

    #[test]
    fn keys_are_base64_in_json() {
        let json = serde_json::to_value(sample_account()).unwrap();
        assert_eq!(json["device_key_seed"], STANDARD.encode([0x11; 32]));
        assert_eq!(
            json["offline_code_secret"],
            STANDARD.encode(b"12345678901234567890")
        );
        assert_eq!(
            json["server_public_key"],
            "oJql9HpnWYAv+VX43C0qFKXJnSO+l/hkEn/5ODRVpPA="
        );
    }

    #[test]
    fn damaged_file_is_a_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path().join("account.json"));
        fs::write(store.path(), "{ not json").unwrap();
        assert!(matches!(store.load(), Err(Error::Storage(_))));
    }

    #[test]
    fn debug_never_shows_the_secret_key() {
        let account = sample_account();
        let debug = format!("{account:?}");
        let seed = account.signing_key().to_bytes();
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.contains(&STANDARD.encode(seed)), "{debug}");
        assert!(!debug.contains(&format!("{seed:?}")), "{debug}");
        assert!(!debug.contains("17, 17, 17"), "{debug}");
        let secret = account.offline_code_secret.clone().unwrap();
        assert!(!debug.contains(&STANDARD.encode(&secret)), "{debug}");
        assert!(!debug.contains("12345678901234567890"), "{debug}");
        assert!(!debug.contains("49, 50, 51"), "{debug}");
    }

    #[test]
    fn memory_store_clones_share_the_account() {
        let store = MemoryKeyStore::new();
        let other = store.clone();
        store.save(&sample_account()).unwrap();
        assert_eq!(other.load().unwrap(), Some(sample_account()));
        other.delete().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }
}
