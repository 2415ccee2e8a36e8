//! The authenticator's PIN: the stand-in for the check a phone app makes
//! before approving when the organisation requires user verification (a
//! fingerprint, a face, the device passcode). It is chosen the first time it
//! is needed and kept in the accounts directory as a salted SHA-256 hash
//! (mode 0600), never as itself.

use std::{fs, io, io::Write, path::PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The file that holds the PIN's salt and hash.
pub struct Pin {
    path: PathBuf,
}

/// The shortest PIN accepted.
pub const MIN_LENGTH: usize = 4;

impl Pin {
    /// The PIN of the accounts directory `dir`.
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Self {
            path: dir.join("pin"),
        }
    }

    /// Whether a PIN was chosen.
    pub fn is_set(&self) -> bool {
        self.path.exists()
    }

    /// Chooses the PIN (digits only, at least [`MIN_LENGTH`]).
    pub fn set(&self, pin: &str) -> io::Result<()> {
        if !is_acceptable(pin) {
            return Err(io::Error::other(format!(
                "a PIN has at least {MIN_LENGTH} digits and nothing else"
            )));
        }
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let line = format!("{}:{}\n", hex(&salt), hex(&hash(&salt, pin)));
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(&self.path)?.write_all(line.as_bytes())
    }

    /// Whether `pin` is the chosen PIN.
    pub fn matches(&self, pin: &str) -> io::Result<bool> {
        let text = fs::read_to_string(&self.path)?;
        let damaged = || io::Error::other(format!("{} is damaged", self.path.display()));
        let (salt, stored) = text.trim().split_once(':').ok_or_else(damaged)?;
        let salt = unhex(salt).ok_or_else(damaged)?;
        Ok(hex(&hash(&salt, pin)) == stored)
    }
}

/// Whether `pin` may be chosen.
pub fn is_acceptable(pin: &str) -> bool {
    pin.len() >= MIN_LENGTH && pin.bytes().all(|b| b.is_ascii_digit())
}

fn hash(salt: &[u8], pin: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(salt)
        .chain_update(pin.as_bytes())
        .finalize()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_kept_hashed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pin = Pin::in_dir(dir.path());
        assert!(!pin.is_set());
        assert!(pin.set("12a4").is_err());
        assert!(pin.set("123").is_err());
        pin.set("2468").unwrap();
        assert!(pin.is_set());
        assert!(pin.matches("2468").unwrap());
        assert!(!pin.matches("2469").unwrap());
        let stored = fs::read_to_string(dir.path().join("pin")).unwrap();
        assert!(!stored.contains("2468"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("pin"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
