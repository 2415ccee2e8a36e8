//! The server under test: the release `mfa-server` binary in its own
//! process (so that its CPU time and memory are its own), on a fresh data
//! directory, provisioned by `serve --dev`.

use mfa_server::stats::{self, Stats};
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A running `mfa-server serve --dev`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The development tenant's portal key, printed when it started on an
    /// empty database (not by a replica).
    pub portal_key: Option<String>,
    /// `http://127.0.0.1:PORT/metrics`.
    pub metrics_url: String,
    data: tempfile::TempDir,
}

/// CPU time, peak memory and disk writes of a process, read from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu: Duration,
    pub peak_rss_bytes: u64,
    /// Bytes it has written towards the disk (`write_bytes` of
    /// `/proc/PID/io`: counted as it dirties the page cache, so the WAL's
    /// frames and the checkpoints' copies, not the socket traffic).
    pub disk_written_bytes: u64,
}

impl Server {
    /// Another replica on `database_url`, which a first server provisioned.
    pub fn replica(
        binary: &Path,
        database_url: &str,
        settings: &[(&str, &str)],
    ) -> Result<Self, String> {
        Self::launch(binary, database_url, settings)
    }

    /// Starts `binary` on a database that must be empty (`database_url`
    /// empty: the embedded SQLite default), with limits raised for load (a
    /// bench user signs in thousands of times a minute), challenges that
    /// outlive the run, and `settings` (`MFA_*` variables) besides.
    pub fn start_with(
        binary: &Path,
        database_url: &str,
        settings: &[(&str, &str)],
    ) -> Result<Self, String> {
        let server = Self::launch(binary, database_url, settings)?;
        match server.portal_key {
            Some(_) => Ok(server),
            None => Err("the database is not empty: give the bench an empty database".into()),
        }
    }

    /// Starts `binary` with `settings` (`MFA_*` variables) overriding the
    /// bench's.
    fn launch(
        binary: &Path,
        database_url: &str,
        settings: &[(&str, &str)],
    ) -> Result<Self, String> {
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        command
            .args(["serve", "--dev"])
            .env("MFA_DATA_DIR", data.path())
            .env("MFA_LISTEN", "127.0.0.1:0")
            .env("MFA_METRICS_LISTEN", "127.0.0.1:0")
            .env("MFA_CHALLENGE_LIMIT", "1000000000")
            .env("MFA_CHALLENGE_TTL", "1h")
            .env("MFA_ENROLLMENT_TTL", "1h")
            .env("RUST_LOG", "warn")
            .envs(settings.iter().copied())
            .stdout(Stdio::piped());
        if !database_url.is_empty() {
            command.env("MFA_DATABASE_URL", database_url);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let mut portal_key = None;
        let mut url = None;
        let mut metrics_url = None;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(key) = line.trim().strip_prefix("portal key:") {
                portal_key = Some(key.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("metrics and health on ") {
                metrics_url = rest.split(' ').next().map(str::to_owned);
            }
            if let Some(rest) = line.strip_prefix("mfa-server listening on ") {
                url = rest.split(' ').next().map(|addr| format!("http://{addr}"));
                break;
            }
        }
        // Keep the pipe open and drained, so that the server never writes
        // into a closed or full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        match (url, metrics_url) {
            (Some(url), Some(metrics_url)) => Ok(Self {
                child,
                url,
                portal_key,
                metrics_url,
                data,
            }),
            _ => Err("the server exited before listening".into()),
        }
    }

    /// Where the embedded database is (used unless a database URL was given).
    pub fn sqlite_file(&self) -> PathBuf {
        self.data.path().join("mfa.db")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's own view: a scrape of its metrics endpoint.
    pub async fn metrics(&self) -> Result<Stats, String> {
        let text = stats::fetch(&self.metrics_url)
            .await
            .map_err(|e| e.to_string())?;
        Stats::parse(&text).map_err(|e| format!("{}: {e}", self.metrics_url))
    }

    /// The server's CPU time and disk writes so far and its peak resident
    /// memory.
    pub fn usage(&self) -> Usage {
        let pid = self.pid();
        Usage {
            cpu: cpu_time(pid),
            peak_rss_bytes: status_kib(pid, "VmHWM:") * 1024,
            disk_written_bytes: disk_written_bytes(pid),
        }
    }
}

/// The user and system CPU time of process `pid` so far; zero if unreadable.
pub fn cpu_time(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces),
            // starting with field 3 of stat(5); utime and stime are 14 and 15.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or_default();
    Duration::from_millis(ticks * 1000 / clock_ticks_per_second())
}

/// The CPU time of every `postgres` process on this machine so far (the
/// database's own work, beside the server's).
pub fn postgres_cpu_time() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .map(cpu_time)
        .sum()
}

/// `write_bytes` of `/proc/PID/io`; 0 if unreadable.
fn disk_written_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The bytes of a SQLite database with its write-ahead log and
/// shared-memory index, and of the log alone.
pub fn sqlite_bytes(database: &Path) -> (u64, u64) {
    let size = |suffix: &str| {
        let mut path = database.as_os_str().to_owned();
        path.push(suffix);
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    };
    let wal = size("-wal");
    (size("") + wal + size("-shm"), wal)
}

/// A `kB` field of `/proc/PID/status`, e.g. `VmHWM:`; 0 if unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or_default()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `getconf CLK_TCK` (100 on Linux unless the kernel says otherwise).
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}
