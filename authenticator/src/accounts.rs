//! The enrolled accounts: one SDK [`FileKeyStore`] file per account (mode
//! 0600, it holds the device's secret key) in a directory only the owner may
//! enter (mode 0700).

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use mfa_sdk::{Authenticator, FileKeyStore};

/// The directory under the home directory used when none is given.
const DEFAULT_DIR: &str = ".mfa-authenticator";

/// The accounts directory.
pub struct Accounts {
    dir: PathBuf,
}

/// One saved account, opened: its store and the SDK's authenticator.
pub struct Opened {
    pub store: FileKeyStore,
    pub app: Authenticator,
}

impl Accounts {
    /// Opens `dir`, or `~/.mfa-authenticator`, creating it owner-only if needed.
    pub fn open(dir: Option<PathBuf>) -> io::Result<Self> {
        let dir = match dir {
            Some(dir) => dir,
            None => std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(DEFAULT_DIR))
                .ok_or_else(|| {
                    io::Error::other("HOME is not set: give the accounts directory with --home")
                })?,
        };
        // Directories made here are owner-only; an existing one is left as
        // it is (the account files themselves are always 0600).
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir)?;
        Ok(Self { dir })
    }

    /// The directory, which also holds the PIN.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A store for a new account, beside the existing ones.
    pub fn new_store(&self) -> io::Result<FileKeyStore> {
        let next = self
            .files()?
            .iter()
            .filter_map(|path| account_number(path))
            .max()
            .map_or(1, |n| n + 1);
        Ok(FileKeyStore::new(
            self.dir.join(format!("account-{next}.json")),
        ))
    }

    /// Opens every saved account, in the order they were added.
    pub async fn open_all(&self) -> Result<Vec<Opened>, mfa_sdk::Error> {
        let mut opened = Vec::new();
        for path in self.files()? {
            let store = FileKeyStore::new(path);
            if let Some(app) = Authenticator::open(&store).await? {
                opened.push(Opened { store, app });
            }
        }
        Ok(opened)
    }

    /// The account files, oldest first.
    fn files(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<(u64, PathBuf)> = fs::read_dir(&self.dir)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter_map(|path| account_number(&path).map(|n| (n, path)))
            .collect();
        files.sort();
        Ok(files.into_iter().map(|(_, path)| path).collect())
    }
}

/// `n` of a file named `account-n.json`.
fn account_number(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("account-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_account_files_count() {
        assert_eq!(account_number(Path::new("/x/account-12.json")), Some(12));
        assert_eq!(
            account_number(Path::new("/x/.account-1.json.0123.tmp")),
            None
        );
        assert_eq!(account_number(Path::new("/x/account-.json")), None);
        assert_eq!(account_number(Path::new("/x/notes.txt")), None);
    }

    #[test]
    fn new_accounts_come_after_the_last_one() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("phone");
        let accounts = Accounts::open(Some(dir.clone())).unwrap();
        assert!(accounts
            .new_store()
            .unwrap()
            .path()
            .ends_with("account-1.json"));
        fs::write(dir.join("account-3.json"), "{}").unwrap();
        assert!(accounts
            .new_store()
            .unwrap()
            .path()
            .ends_with("account-4.json"));
    }
}
