//! `mfa-soak`: runs sign-ins against `mfa-server` for a set time with short
//! lifetimes and retention, so that the sweeper keeps expiring and deleting
//! data, and checks that the server's resident memory, open file descriptors
//! and database size (the SQLite file with its `-shm`) stay flat: after a
//! warm-up (the time it takes for the first data to outlive its retention),
//! the peak of the second half may exceed the peak of the first half by at
//! most `--tolerance` percent (plus a small absolute slack for the allocator
//! and SQLite's page granularity). The `-wal` file holds no data of its own
//! for long, only what the last checkpoints have not copied yet, so its size
//! follows the scheduling of the checkpoint thread, not what is kept: it must
//! come back to the size the server cuts it to (`WAL_SIZE_LIMIT`) in the
//! second half rather than stay flat. Exits non-zero otherwise.
//!
//! The load, per worker: full sign-ins (create, list, approve, get) for one
//! user; and, whenever the previous ones have had time to expire, a sign-in
//! nobody answers (for a second user) and an enrollment nobody completes.

// The three modules are shared with `mfa-bench`, which uses the rest of them.
#[allow(dead_code)]
#[path = "load.rs"]
mod load;
#[allow(dead_code)]
#[path = "scenarios.rs"]
mod scenarios;
#[allow(dead_code)]
#[path = "server.rs"]
mod server;

use clap::Parser;
use load::{Steps, Worker};
use mfa_sdk::portal::RelyingParty;
use mfa_server::store::WAL_SIZE_LIMIT;
use scenarios::{Enroll, FullCycle, Turns, User};
use server::{sqlite_bytes, status_kib, Server};
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};
use tonic::transport::Channel;

/// Lifetimes short enough that data ends and outlives its retention many
/// times in a short run. The clock skew bounds how long a device request's
/// nonce is kept for replay detection (phone and server share a clock here).
const TTL: Duration = Duration::from_secs(2);
const SETTINGS: &[(&str, &str)] = &[
    ("MFA_CLOCK_SKEW", "4s"),
    ("MFA_CHALLENGE_TTL", "2s"),
    ("MFA_ENROLLMENT_TTL", "2s"),
    ("MFA_RETENTION", "4s"),
    ("MFA_CHALLENGE_WINDOW", "4s"),
    ("MFA_AUDIT_RETENTION", "8s"),
];
/// The time after which every kind of data has outlived its retention at
/// least once (the audit retention, a purge interval, slack).
const MIN_WARMUP: Duration = Duration::from_secs(12);

#[derive(Parser)]
#[command(
    name = "mfa-soak",
    about = "Runs sign-ins against mfa-server and checks that memory, open files and database size stay flat"
)]
struct Args {
    /// The server binary.
    #[arg(long, default_value = "target/release/mfa-server")]
    server: PathBuf,
    /// How long to run, e.g. `10m`, `30s`.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrent workers (each a portal session and two phones).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How much the second half's peak may exceed the first half's, in percent.
    #[arg(long, default_value_t = 10.0)]
    tolerance: f64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match soak(&args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("mfa-soak: {error}");
            std::process::exit(2);
        }
    }
}

/// One reading of the server process and its database.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    sign_ins: u64,
    rss_bytes: u64,
    open_fds: u64,
    /// The database file and its `-shm`.
    database_bytes: u64,
    wal_bytes: u64,
}

async fn soak(args: &Args) -> Result<bool, String> {
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let database = data.path().join("mfa.db");
    let server = Server::start_with(
        &args.server,
        &format!("sqlite://{}", database.display()),
        SETTINGS,
    )?;
    let c = args.concurrency.max(1);
    let portal = RelyingParty::connect(
        &server.url,
        server.portal_key.as_deref().unwrap_or_default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let channel = Channel::from_shared(server.url.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let enroll = Enroll {
        portal: portal.clone(),
        channel,
        prefix: "soak".into(),
        next: 0,
        users: Vec::new(),
        push: false,
    };
    let mut users = load::run(vec![enroll], Duration::MAX, 2 * c as u64)
        .await?
        .workers
        .remove(0)
        .users;
    let mut workers = Vec::new();
    for i in 0..c {
        let (answering, idle) = (users.pop(), users.pop());
        let (Some(user), Some(idle)) = (answering, idle) else {
            return Err("enrollment produced too few users".into());
        };
        workers.push(SoakWorker {
            cycle: FullCycle {
                portal: portal.clone(),
                users: Turns::new(vec![user]),
            },
            idle,
            abandoned_user: format!("abandoned-{i}"),
            last_abandoned: None,
        });
    }

    let warmup = MIN_WARMUP.max(args.duration / 10);
    let interval = (args.duration / 30).clamp(Duration::from_secs(1), Duration::from_secs(20));
    println!(
        "mfa-soak: {} for {:?} with {c} workers, sampling every {interval:?}, \
         comparing the halves after {warmup:?} (tolerance {}%)",
        args.server.display(),
        args.duration,
        args.tolerance
    );
    println!(
        "{:>8} {:>10} {:>10} {:>6} {:>12} {:>10}",
        "time", "sign-ins", "rss MiB", "fds", "db KiB", "wal KiB"
    );
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut sign_ins = 0;
    while start.elapsed() < args.duration {
        let slice = interval.min(args.duration.saturating_sub(start.elapsed()));
        let run = load::run(workers, slice, u64::MAX).await?;
        workers = run.workers;
        sign_ins += run.ops;
        let pid = server.pid();
        let sizes = sqlite_bytes(&database);
        let sample = Sample {
            at: start.elapsed(),
            sign_ins,
            rss_bytes: status_kib(pid, "VmRSS:") * 1024,
            open_fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|entries| entries.count() as u64)
                .unwrap_or_default(),
            database_bytes: sizes.0 - sizes.1,
            wal_bytes: sizes.1,
        };
        println!(
            "{:>7.0}s {:>10} {:>10.1} {:>6} {:>12.0} {:>10.0}",
            sample.at.as_secs_f64(),
            sample.sign_ins,
            sample.rss_bytes as f64 / MIB,
            sample.open_fds,
            sample.database_bytes as f64 / 1024.0,
            sample.wal_bytes as f64 / 1024.0
        );
        samples.push(sample);
    }

    let steady: Vec<Sample> = samples.into_iter().filter(|s| s.at >= warmup).collect();
    if steady.len() < 4 {
        return Err(format!(
            "too few samples after the {warmup:?} warm-up: run longer"
        ));
    }
    let (first, second) = steady.split_at(steady.len() / 2);
    let checks = [
        Check::new(
            "resident memory (MiB)",
            first,
            second,
            |s| s.rss_bytes as f64 / MIB,
            4.0,
        ),
        Check::new(
            "open file descriptors",
            first,
            second,
            |s| s.open_fds as f64,
            2.0,
        ),
        Check::new(
            "database file (KiB)",
            first,
            second,
            |s| s.database_bytes as f64 / 1024.0,
            256.0,
        ),
    ];
    println!("\n{sign_ins} sign-ins; peaks of the first and second half after the warm-up:");
    let mut flat = true;
    for check in &checks {
        let allowed = check.first * (1.0 + args.tolerance / 100.0) + check.slack;
        let ok = check.second <= allowed;
        flat &= ok;
        println!(
            "  {:<24} {:>10.1} → {:>10.1} (allowed {:>10.1}) {}",
            check.name,
            check.first,
            check.second,
            allowed,
            if ok { "flat" } else { "GROWING" }
        );
    }
    // The WAL is cut back whenever it starts over: it must have been at most
    // that size at some point of the second half (with a page of slack).
    let wal_floor = second.iter().map(|s| s.wal_bytes).min().unwrap_or(0) as f64 / 1024.0;
    let wal_limit = (WAL_SIZE_LIMIT + 4096) as f64 / 1024.0;
    let wal_ok = wal_floor <= wal_limit;
    flat &= wal_ok;
    println!(
        "  {:<24} {:>10} → {:>10.1} (allowed {:>10.1}) {}",
        "WAL, smallest (KiB)",
        "",
        wal_floor,
        wal_limit,
        if wal_ok { "cut back" } else { "NOT CUT BACK" }
    );
    println!("{}", if flat { "soak passed" } else { "soak FAILED" });
    Ok(flat)
}

const MIB: f64 = 1024.0 * 1024.0;

/// One measure's peaks in the two halves and its absolute slack.
struct Check {
    name: &'static str,
    first: f64,
    second: f64,
    slack: f64,
}

impl Check {
    fn new(
        name: &'static str,
        first: &[Sample],
        second: &[Sample],
        measure: impl Fn(&Sample) -> f64,
        slack: f64,
    ) -> Self {
        let peak = |samples: &[Sample]| samples.iter().map(&measure).fold(0.0, f64::max);
        Self {
            name,
            first: peak(first),
            second: peak(second),
            slack,
        }
    }
}

/// A worker of the soak: full sign-ins, and data left to expire.
struct SoakWorker {
    cycle: FullCycle,
    /// A user whose sign-ins nobody answers.
    idle: User,
    /// A user whose enrollments nobody completes.
    abandoned_user: String,
    last_abandoned: Option<Instant>,
}

impl Worker for SoakWorker {
    async fn step(&mut self, steps: &mut Steps) -> Result<bool, String> {
        self.cycle.step(steps).await?;
        // Once the previous ones have expired, leave a new sign-in and a new
        // enrollment to the sweeper.
        if self.last_abandoned.is_none_or(|t| t.elapsed() > TTL) {
            let portal = &self.cycle.portal;
            portal
                .start_sign_in(&self.idle.id, Default::default())
                .await
                .map_err(|e| format!("create an unanswered sign-in: {e}"))?;
            let email = format!("{}@example.com", self.abandoned_user);
            portal
                .begin_enrollment(&self.abandoned_user, &email)
                .await
                .map_err(|e| format!("begin an abandoned enrollment: {e}"))?;
            self.last_abandoned = Some(Instant::now());
        }
        Ok(true)
    }
}
