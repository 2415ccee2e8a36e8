//! `--profile`: samples the server's call stacks with `perf` while full
//! sign-in cycles run, and turns them into a flame graph and a table of
//! where the server's CPU time goes, so that "what dominates" is measured
//! the same way on any machine.

use inferno::{
    collapse::{perf::Folder, Collapse},
    flamegraph,
};
use serde::Serialize;
use std::{
    collections::BTreeMap,
    fmt,
    io::BufReader,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Samples a second on each core; enough for shares to within a percent or
/// two in a few seconds, and cheap enough for `perf script` to unwind.
const SAMPLES_PER_SECOND: &str = "499";

/// The parts of the server a sample is counted under: the first part, from
/// the leaf of its stack upwards, that one of its frames belongs to.
const PARTS: &[(&str, &[&str])] = &[
    (
        "SQLite: statements, B-trees, page cache, WAL writes",
        &["sqlite3", "rusqlite::"],
    ),
    (
        "ed25519 and SHA-512",
        &["curve25519_dalek::", "ed25519_dalek::", "sha2::"],
    ),
    (
        "HTTP/2, gRPC and protobuf",
        &[
            "h2::",
            "hyper::",
            "hyper_util::",
            "tonic::",
            "prost::",
            "tower::",
            "http_body",
            "_service_server::",
        ],
    ),
    ("tokio: scheduler and socket I/O", &["tokio::"]),
    ("mfa-server's own code", &["mfa_server::", "mfa_proto::"]),
];
const OTHER: &str = "other (allocator, kernel, idle threads)";
/// How a store operation's frames are named, whatever the backend.
const STORE_METHOD: &str = " as mfa_server::store::Store>::";

/// A `perf record` attached to the server.
pub struct Recording {
    perf: Child,
    data: PathBuf,
}

impl Recording {
    /// Starts sampling process `pid` for `duration`; the samples go to
    /// `out/full-cycle.perf.data`.
    pub fn start(pid: u32, out: &Path, duration: Duration) -> Result<Self, String> {
        std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
        let data = out.join("full-cycle.perf.data");
        let perf = Command::new("perf")
            .args(["record", "--quiet", "-F", SAMPLES_PER_SECOND])
            .args(["--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
            .arg(&data)
            .args(["--", "sleep", &duration.as_secs_f64().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("--profile needs perf (Debian: linux-perf): {e}"))?;
        Ok(Self { perf, data })
    }

    /// Waits for the recording to end, then writes the folded stacks
    /// (`full-cycle.folded`) and the flame graph (`full-cycle.svg`) beside
    /// the samples and returns the shares.
    pub fn finish(self, out: &Path) -> Result<Profile, String> {
        let recorded = self
            .perf
            .wait_with_output()
            .map_err(|e| format!("perf record: {e}"))?;
        if !recorded.status.success() {
            return Err(format!(
                "perf record failed (is the server traceable? see kernel.perf_event_paranoid): {}",
                String::from_utf8_lossy(&recorded.stderr).trim()
            ));
        }
        let mut script = Command::new("perf")
            .arg("script")
            .arg("-i")
            .arg(&self.data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("perf script: {e}"))?;
        let stacks = script
            .stdout
            .take()
            .ok_or("perf script gave no output stream")?;
        let mut folded = Vec::new();
        Folder::default()
            .collapse(BufReader::new(stacks), &mut folded)
            .map_err(|e| format!("folding perf script's stacks: {e}"))?;
        script.wait().map_err(|e| format!("perf script: {e}"))?;
        let folded = String::from_utf8_lossy(&folded);
        let write = |name: &str, bytes: &[u8]| {
            let path = out.join(name);
            std::fs::write(&path, bytes)
                .map(|()| path.clone())
                .map_err(|e| format!("writing {}: {e}", path.display()))
        };
        write("full-cycle.folded", folded.as_bytes())?;
        let mut svg = Vec::new();
        let mut options = flamegraph::Options::default();
        options.title = "mfa-server: full sign-in cycles".into();
        flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
            .map_err(|e| format!("drawing the flame graph: {e}"))?;
        let flamegraph = write("full-cycle.svg", &svg)?;
        Ok(Profile {
            flamegraph,
            ..Profile::from_folded(&folded)
        })
    }
}

/// Where the server's CPU time went, in shares of the samples.
#[derive(Debug, Default, Serialize)]
pub struct Profile {
    /// The samples' summed weight: perf's sample period, so CPU nanoseconds
    /// on the `cpu-clock` event, cycles on a hardware counter.
    pub weight: u64,
    /// Every sample counted once, under the first of [`PARTS`] on its stack
    /// from the leaf up.
    pub parts: Vec<Share>,
    /// Samples inside each store operation (what it called included).
    pub store_operations: Vec<Share>,
    pub flamegraph: PathBuf,
}

/// One line of a [`Profile`].
#[derive(Debug, Serialize, PartialEq)]
pub struct Share {
    pub what: String,
    pub percent: f64,
}

impl Profile {
    /// Reads folded stacks: one `frame;frame;…;leaf weight` a line.
    fn from_folded(folded: &str) -> Self {
        let mut weight = 0;
        let mut parts = BTreeMap::new();
        let mut operations = BTreeMap::new();
        for (stack, count) in folded.lines().filter_map(|line| line.rsplit_once(' ')) {
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            weight += count;
            let frames: Vec<&str> = stack.split(';').rev().collect();
            let part = frames
                .iter()
                .find_map(|frame| part_of(frame))
                .unwrap_or(OTHER);
            *parts.entry(part).or_default() += count;
            if let Some(operation) = frames.iter().find_map(|frame| store_operation(frame)) {
                *operations.entry(operation).or_default() += count;
            }
        }
        let shares = |counts: BTreeMap<&str, u64>| {
            let mut shares: Vec<Share> = counts
                .into_iter()
                .map(|(what, count)| Share {
                    what: what.to_owned(),
                    percent: 100.0 * count as f64 / weight.max(1) as f64,
                })
                .collect();
            shares.sort_by(|a, b| b.percent.total_cmp(&a.percent));
            shares
        };
        Self {
            weight,
            parts: shares(parts),
            store_operations: shares(operations),
            flamegraph: PathBuf::new(),
        }
    }
}

fn part_of(frame: &str) -> Option<&'static str> {
    PARTS
        .iter()
        .find(|(_, patterns)| patterns.iter().any(|p| frame.contains(p)))
        .map(|(part, _)| *part)
}

/// `get_device` from `<…SqliteStore as mfa_server::store::Store>::get_device::{{closure}}`.
fn store_operation(frame: &str) -> Option<&str> {
    let (_, method) = frame.split_once(STORE_METHOD)?;
    Some(method.split("::").next().unwrap_or(method))
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "where the server's CPU went during full cycles (flame graph: {}):\n",
            self.flamegraph.display()
        )?;
        for share in &self.parts {
            writeln!(f, "  {:>5.1}%  {}", share.percent, share.what)?;
        }
        writeln!(
            f,
            "\n  inside store operations (what they called included):\n"
        )?;
        for share in &self.store_operations {
            writeln!(f, "  {:>5.1}%  {}", share.percent, share.what)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sample_counts_under_the_part_nearest_its_leaf() {
        let folded = "\
mfa-server;tokio::runtime::park;<mfa_server::store::sqlite::SqliteStore as mfa_server::store::Store>::get_device::{{closure}};sqlite3_step;walWriteOneFrame 6
mfa-server;tokio::runtime::park;mfa_server::domain::respond;ed25519_dalek::verifying::verify;malloc 3
mfa-server;h2::codec::write;<mfa_proto::v1::device_service_server::DeviceServiceServer<T> as tower_service::Service>::call 2
mfa-server;[unknown];epoll_wait 1
not a folded line
";
        let profile = Profile::from_folded(folded);
        assert_eq!(profile.weight, 12);
        let percent = |what: &str| {
            profile
                .parts
                .iter()
                .find(|s| s.what == what)
                .map(|s| s.percent)
        };
        assert_eq!(percent(PARTS[0].0), Some(50.0));
        assert_eq!(percent(PARTS[1].0), Some(25.0));
        let grpc = percent(PARTS[2].0).unwrap();
        assert!((grpc - 100.0 * 2.0 / 12.0).abs() < 1e-9);
        assert_eq!(percent(PARTS[4].0), None);
        assert!(percent(OTHER).is_some());
        assert_eq!(profile.parts[0].what, PARTS[0].0);
        assert_eq!(
            profile.store_operations,
            vec![Share {
                what: "get_device".into(),
                percent: 50.0
            }]
        );
    }
}
