//! The server's key files: raw bytes, written once, readable by the owner
//! only (mode 0600), so that a key never passes through a shell or a log.

use std::{io::Write, path::Path};

/// Writes `bytes` to a new file at `path` (mode 0600), creating its
/// directory; fails with `AlreadyExists` if there is a file already, so that
/// a key is never replaced.
pub fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
