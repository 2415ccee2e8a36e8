//! The enrolled account and where the app keeps it, with its device key.
//!
//! A [`KeyStore`] keeps one account and the device key it signs with. The
//! SDK asks it to make the key at enrollment and then only uses the key
//! through [`Signer`]: a store over the iOS Secure Enclave or the Android
//! Keystore makes a key that never leaves the hardware. [`FileKeyStore`]
//! (an owner-only JSON file) and [`MemoryKeyStore`] (tests, examples) keep a
//! [`SoftwareKey`] instead.

use std::{
    fs, io,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use mfa_proto::signing::KeyAlgorithm;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{Error, Signer, SoftwareKey};

/// One enrolled account: which server, which device, which user, and the
/// offline-code secret. The device key is not in it: it stays in the
/// [`KeyStore`].
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
    /// The device's offline-code secret, when the server offers offline
    /// codes ([`Account::offline_code`]): the one secret an account holds
    /// (never shown by `Debug`); an app keeps the account where it keeps
    /// secrets (the iOS Keychain, Android's encrypted storage).
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
    ) -> Self {
        Self {
            server_url,
            device_id: response.device_id.clone(),
            tenant_id: response.tenant_id.clone(),
            tenant_display_name: response.tenant_display_name.clone(),
            user_email: response.user_email.clone(),
            server_public_key,
            offline_code_secret: crate::offline_code::secret_of(response),
        }
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
            .field(
                "offline_code_secret",
                &self.offline_code_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A saved account with its device key, as a [`KeyStore`] hands it out.
pub type SavedAccount = (Account, Arc<dyn Signer>);

/// Where the app keeps its account and its device key between runs.
///
/// Calls are synchronous: they happen once per enrollment and once per
/// start, so a short blocking call is acceptable.
pub trait KeyStore: Send + Sync {
    /// Makes a new device key for an enrollment. The store keeps it for the
    /// account that the next [`save`](Self::save) writes; until then an
    /// account saved earlier, and its key, stay as they were.
    fn create_key(&self) -> Result<Arc<dyn Signer>, Error>;
    /// Reads the saved account and its key; `None` when none was saved.
    fn load(&self) -> Result<Option<SavedAccount>, Error>;
    /// Saves the account with the key [`create_key`](Self::create_key)
    /// made, replacing any earlier account (or, with no new key, keeping the
    /// saved account's key).
    fn save(&self, account: &Account) -> Result<(), Error>;
    /// Deletes the saved account and its key; deleting nothing is not an
    /// error.
    fn delete(&self) -> Result<(), Error>;
}

/// A software store's key made by `create_key` and not saved yet.
#[derive(Debug, Clone)]
struct NewKey {
    algorithm: KeyAlgorithm,
    made: Arc<Mutex<Option<SoftwareKey>>>,
}

impl NewKey {
    fn new(algorithm: KeyAlgorithm) -> Self {
        Self {
            algorithm,
            made: Arc::default(),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<SoftwareKey>> {
        // Plain data: usable even if a panic elsewhere poisoned it.
        self.made.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create(&self) -> Arc<dyn Signer> {
        let key = SoftwareKey::generate(self.algorithm);
        *self.slot() = Some(key.clone());
        Arc::new(key)
    }

    fn take(&self) -> Option<SoftwareKey> {
        self.slot().take()
    }
}

fn no_key() -> Error {
    io::Error::other("there is no device key to save with the account: enroll first").into()
}

/// An account as [`FileKeyStore`] writes it: the account's fields, the key's
/// algorithm (absent in files of the first release: Ed25519) and its 32
/// secret bytes in base64.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    #[serde(flatten)]
    account: Account,
    #[serde(default = "ed25519", with = "algorithm_name")]
    device_key_algorithm: KeyAlgorithm,
    #[serde(with = "base64_key")]
    device_key_seed: [u8; 32],
}

fn ed25519() -> KeyAlgorithm {
    KeyAlgorithm::Ed25519
}

impl StoredAccount {
    fn key(&self) -> Result<SoftwareKey, Error> {
        SoftwareKey::from_bytes(self.device_key_algorithm, &self.device_key_seed)
    }
}

/// Keeps the account and a software device key as a JSON file that only its
/// owner can read (mode 0600 on Unix). Saving writes a temporary file in the
/// same directory and renames it over the old one, so a crash never leaves
/// half an account behind. Clones share a key made and not yet saved.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    path: PathBuf,
    new_key: NewKey,
}

impl FileKeyStore {
    /// A store at this path, making Ed25519 keys; the directory must exist.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            new_key: NewKey::new(KeyAlgorithm::Ed25519),
        }
    }

    /// The same store, making keys of `algorithm` (an account already
    /// saved keeps its key, whatever its algorithm).
    pub fn with_key_algorithm(mut self, algorithm: KeyAlgorithm) -> Self {
        self.new_key = NewKey::new(algorithm);
        self
    }

    fn read(&self) -> Result<Option<StoredAccount>, Error> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let stored = serde_json::from_slice(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is damaged: {e}", self.path.display()),
            )
        })?;
        Ok(Some(stored))
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
    fn create_key(&self) -> Result<Arc<dyn Signer>, Error> {
        Ok(self.new_key.create())
    }

    fn load(&self) -> Result<Option<SavedAccount>, Error> {
        let Some(stored) = self.read()? else {
            return Ok(None);
        };
        let key = stored.key().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} holds an unusable device key", self.path.display()),
            )
        })?;
        Ok(Some((stored.account, Arc::new(key))))
    }

    fn save(&self, account: &Account) -> Result<(), Error> {
        let key = match self.new_key.take() {
            Some(key) => key,
            None => self.read()?.ok_or_else(no_key)?.key()?,
        };
        let stored = StoredAccount {
            account: account.clone(),
            device_key_algorithm: key.algorithm(),
            device_key_seed: key.to_bytes(),
        };
        let json = serde_json::to_vec_pretty(&stored).map_err(io::Error::other)?;
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

/// Keeps the account and a software device key in memory only, for tests
/// and examples. Clones share the same slot.
#[derive(Debug, Clone)]
pub struct MemoryKeyStore {
    slot: Arc<Mutex<Option<(Account, SoftwareKey)>>>,
    new_key: NewKey,
}

impl Default for MemoryKeyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryKeyStore {
    /// An empty store, making Ed25519 keys.
    pub fn new() -> Self {
        Self::with_key_algorithm(KeyAlgorithm::Ed25519)
    }

    /// An empty store, making keys of `algorithm`.
    pub fn with_key_algorithm(algorithm: KeyAlgorithm) -> Self {
        Self {
            slot: Arc::default(),
            new_key: NewKey::new(algorithm),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<(Account, SoftwareKey)>> {
        // The slot holds plain data, so a panic elsewhere cannot leave it
        // inconsistent: use it even if poisoned.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KeyStore for MemoryKeyStore {
    fn create_key(&self) -> Result<Arc<dyn Signer>, Error> {
        Ok(self.new_key.create())
    }

    fn load(&self) -> Result<Option<SavedAccount>, Error> {
        Ok(self
            .slot()
            .clone()
            .map(|(account, key)| (account, Arc::new(key) as Arc<dyn Signer>)))
    }

    fn save(&self, account: &Account) -> Result<(), Error> {
        let mut slot = self.slot();
        let key = match self.new_key.take() {
            Some(key) => key,
            None => slot
                .as_ref()
                .map(|(_, key)| key.clone())
                .ok_or_else(no_key)?,
        };
        *slot = Some((account.clone(), key));
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

/// Serde of a key algorithm as its short name (`ed25519`, …).
mod algorithm_name {
    use super::*;
    use serde::{de::Error as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        algorithm: &KeyAlgorithm,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(algorithm.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<KeyAlgorithm, D::Error> {
        let name = String::deserialize(deserializer)?;
        KeyAlgorithm::parse(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown key algorithm {name:?}")))
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
            server_public_key: ed25519_dalek::SigningKey::from_bytes(&[0x22; 32])
                .verifying_key()
                .to_bytes(),
            offline_code_secret: Some(b"12345678901234567890".to_vec()),
        }
    }

    /// The account and the public key of its signer, as loaded.
    fn loaded(store: &dyn KeyStore) -> Option<(Account, KeyAlgorithm, Vec<u8>)> {
        store
            .load()
            .unwrap()
            .map(|(account, key)| (account, key.algorithm(), key.public_key()))
    }

    #[test]
    fn file_store_round_trips_with_owner_only_mode() {
        for algorithm in KeyAlgorithm::ALL {
            let dir = tempfile::tempdir().unwrap();
            let store =
                FileKeyStore::new(dir.path().join("account.json")).with_key_algorithm(algorithm);
            assert!(store.load().unwrap().is_none());

            let account = sample_account();
            let key = store.create_key().unwrap();
            assert_eq!(key.algorithm(), algorithm);
            store.save(&account).unwrap();
            let public_key = key.public_key();
            assert_eq!(
                loaded(&store),
                Some((account.clone(), algorithm, public_key.clone()))
            );

            // Saving again keeps the key, replaces the file and leaves no
            // temporary file behind.
            let mut renamed = account;
            renamed.user_email = "taro@example.jp".into();
            store.save(&renamed).unwrap();
            assert_eq!(loaded(&store), Some((renamed, algorithm, public_key)));
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
            assert!(store.load().unwrap().is_none());
            store.delete().unwrap();
        }
    }

    #[test]
    fn a_new_key_replaces_the_saved_one_only_when_saved() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path().join("account.json"));
        assert!(matches!(
            store.save(&sample_account()),
            Err(Error::Storage(_))
        ));
        let first = store.create_key().unwrap().public_key();
        store.save(&sample_account()).unwrap();
        let second = store.create_key().unwrap().public_key();
        assert_ne!(first, second);
        assert_eq!(loaded(&store).unwrap().2, first);
        store.save(&sample_account()).unwrap();
        assert_eq!(loaded(&store).unwrap().2, second);
    }

    /// Files written before P-256 keys carry no algorithm: Ed25519.
    #[test]
    fn files_of_the_first_release_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path().join("account.json"));
        let seed = [0x11; 32];
        let mut json = serde_json::to_value(sample_account()).unwrap();
        json["device_key_seed"] = STANDARD.encode(seed).into();
        fs::write(store.path(), json.to_string()).unwrap();
        let expected = SoftwareKey::from_bytes(KeyAlgorithm::Ed25519, &seed).unwrap();
        assert_eq!(
            loaded(&store),
            Some((
                sample_account(),
                KeyAlgorithm::Ed25519,
                expected.public_key()
            ))
        );
    }

    #[test]
    fn keys_are_base64_in_json() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path().join("account.json"))
            .with_key_algorithm(KeyAlgorithm::EcdsaP256Sha256);
        store.create_key().unwrap();
        store.save(&sample_account()).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(json["device_key_algorithm"], "ecdsa_p256_sha256");
        assert_eq!(
            STANDARD
                .decode(json["device_key_seed"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
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
    fn debug_never_shows_the_offline_code_secret() {
        let account = sample_account();
        let debug = format!("{account:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let secret = account.offline_code_secret.clone().unwrap();
        assert!(!debug.contains(&STANDARD.encode(&secret)), "{debug}");
        assert!(!debug.contains("12345678901234567890"), "{debug}");
        assert!(!debug.contains("49, 50, 51"), "{debug}");
    }

    #[test]
    fn memory_store_clones_share_the_account_and_key() {
        let store = MemoryKeyStore::with_key_algorithm(KeyAlgorithm::EcdsaP256Sha256);
        let other = store.clone();
        let key = store.create_key().unwrap();
        other.save(&sample_account()).unwrap();
        assert_eq!(
            loaded(&store),
            Some((
                sample_account(),
                KeyAlgorithm::EcdsaP256Sha256,
                key.public_key()
            ))
        );
        other.delete().unwrap();
        assert!(store.load().unwrap().is_none());
    }
}
