//! `mfa-bench`: starts the release `mfa-server` on a fresh database (and, on
//! PostgreSQL, a second replica), pointed at APNs and FCM stand-ins in this
//! process, seeds it with enrolled phones and pending challenges, and
//! measures, in one run: the gRPC ceiling (health checks) and the floor of a
//! sign-in ([`floor`]), enrollment, the full sign-in cycle (closed loop, then
//! at half its rate), sign-ins offered at a fixed rate (open loop, with push
//! and a watch on the other replica), challenge creation alone, the device's
//! answer alone, and push throughput. Prints a table and writes the same
//! figures as JSON under `target/bench/`.

mod floor;
mod load;
mod profile;
mod push_rate;
mod scenarios;
mod server;

use clap::Parser;
use load::{run, run_open_loop, run_paced, OpenRun, Run, StepLatency, Steps, Worker};
use mfa_sdk::portal::RelyingParty;
use mfa_tests::push::{PushStandIns, StandIn};
use scenarios::{Answer, Ceiling, Create, Created, Enroll, FullCycle, Turns, User, WatchedCycle};
use serde::Serialize;
use server::{Server, Usage};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tonic::transport::Channel;

#[derive(Parser)]
#[command(
    about = "Measures mfa-server: full sign-ins, their parts, enrollment and the gRPC ceiling"
)]
struct Args {
    /// Concurrent callers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long each timed scenario runs.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Data size: 1 means 10,000 enrolled phones and 1,000 pending challenges.
    #[arg(long, default_value_t = 1)]
    scale: u64,
    /// A database URL (`postgres://…`, an empty database); default: SQLite in a temporary directory.
    #[arg(long, default_value = "")]
    db: String,
    /// The server binary.
    #[arg(long, default_value = "target/release/mfa-server")]
    server: PathBuf,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Connections the portal and the phones share (each side).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Also run full cycles once more under `perf` (not measured) and write
    /// a flame graph and where the server's CPU went to the output directory.
    #[arg(long)]
    profile: bool,
    /// Full sign-ins offered per second in the open-loop scenario (about a
    /// large organisation's Monday-morning peak).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Phones with push tokens (iPhones and Android phones in turn) that the
    /// open-loop scenario signs in.
    #[arg(long, default_value_t = 2_000)]
    pushed_phones: u64,
}

/// One scenario's figures.
#[derive(Debug, Serialize)]
struct Figures {
    scenario: &'static str,
    concurrency: usize,
    ops: u64,
    seconds: f64,
    ops_per_second: f64,
    /// Server CPU per 1,000 operations.
    server_cpu_ms_per_1000: f64,
    /// The load generator's own CPU per 1,000 operations (it shares the
    /// machine with the server).
    load_cpu_ms_per_1000: f64,
    /// What the server wrote towards the disk, per operation.
    server_disk_kib_per_op: f64,
    /// On PostgreSQL: the database's own CPU per 1,000 operations.
    postgres_cpu_ms_per_1000: Option<f64>,
    /// For sign-in cycles: the server's CPU per cycle as a multiple of the
    /// floor measured in this run.
    times_floor: Option<f64>,
    steps: Vec<StepLatency>,
}

/// The open-loop scenario's own figures.
#[derive(Debug, Serialize)]
struct OpenLoop {
    offered_per_second: f64,
    achieved_per_second: f64,
    /// Scheduled starts that found every phone busy, or 90 sign-ins still
    /// running: the offered rate was not held by that many.
    missed_starts: u64,
    /// Whether the watch ran on another replica than the calls (PostgreSQL).
    watch_on_other_replica: bool,
    /// The server's own handling time per call (p99, from its metrics).
    server_p99_ms: BTreeMap<String, f64>,
    /// Creation (the portal's call) → the provider stand-in receiving the
    /// notification, by provider.
    push_received: BTreeMap<String, StepLatency>,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    database: String,
    scale: u64,
    enrolled_phones: u64,
    pending_challenges: u64,
    /// The users the sign-in scenarios sign in, each caller its share in
    /// turn (the enrolled phones less those holding a pending challenge).
    sign_in_users: usize,
    concurrency: usize,
    scenarios: Vec<Figures>,
    /// Full cycles × RPCs per cycle ÷ health checks, per second, same run.
    full_cycle_share_of_ceiling: f64,
    /// The server's own handling time per call (p99, from its metrics), by
    /// method, while full cycles run at half the peak rate.
    server_p99_ms_at_half_rate: BTreeMap<String, f64>,
    server_peak_rss_mib: f64,
    /// On SQLite: the largest the database files (with the WAL) and the WAL
    /// alone grew during the run, sampled every [`SIZE_SAMPLE`].
    sqlite_peak_mib: Option<f64>,
    sqlite_wal_peak_mib: Option<f64>,
    /// The server's CPU per 1,000 cycles at the floor ([`floor`]), and the
    /// part of it that is the signatures.
    floor_ms_per_1000_cycles: f64,
    floor_signatures_ms_per_1000_cycles: f64,
    open_loop: Option<OpenLoop>,
    push_throughput: Vec<push_rate::PushRate>,
    /// With `--profile`: where the server's CPU went during full cycles.
    profile: Option<profile::Profile>,
    /// On PostgreSQL: the server's CPU per full cycle ÷ that of the SQLite
    /// run of the same scale in the output directory (`make bench` runs it
    /// just before), if there is one.
    full_cycle_server_cpu_vs_sqlite: Option<f64>,
}

const CYCLE_RPCS: f64 = floor::CYCLE_CALLS;
/// How often the SQLite files' size is read.
const SIZE_SAMPLE: Duration = Duration::from_millis(100);
/// Upper bound on the challenges created ahead for the device-answer scenario.
const MAX_PREPARED_ANSWERS: usize = 20_000;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(error) = bench(args).await {
        eprintln!("mfa-bench: {error}");
        std::process::exit(1);
    }
}

async fn bench(args: Args) -> Result<(), String> {
    let push_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let push = PushStandIns::start(push_dir.path()).await;
    let push_settings = push.environment();
    let push_settings: Vec<(&str, &str)> = push_settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let server = Server::start_with(&args.server, &args.db, &push_settings)?;
    // On PostgreSQL, portals watch on a second replica, as behind a load
    // balancer.
    let replica = match args.db.is_empty() {
        true => None,
        false => Some(Server::replica(&args.server, &args.db, &push_settings)?),
    };
    let portal_key = server.portal_key.clone().unwrap_or_default();
    let sizes = args
        .db
        .is_empty()
        .then(|| SizePeaks::watch(server.sqlite_file()));
    let connect = |n: usize| {
        let url = server.url.clone();
        async move {
            let mut channels = Vec::new();
            for _ in 0..n.max(1) {
                let channel = Channel::from_shared(url.clone())
                    .map_err(|e| e.to_string())?
                    .connect()
                    .await
                    .map_err(|e| format!("connecting to {url}: {e}"))?;
                channels.push(channel);
            }
            Ok::<_, String>(channels)
        }
    };
    let phone_channels = connect(args.connections).await?;
    let mut portals = Vec::new();
    for _ in 0..args.connections.max(1) {
        portals.push(
            RelyingParty::connect(&server.url, &portal_key)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let portal = |i: usize| portals[i % portals.len()].clone();
    let c = args.concurrency.max(1);
    let mut figures = Vec::new();
    let mut measure = Measure {
        server: &server,
        postgres: !args.db.is_empty(),
        max_in_flight: 90,
    };

    // The ceiling first, on an idle server.
    let workers = (0..c)
        .map(|i| Ceiling {
            health: tonic_health::pb::health_client::HealthClient::new(
                phone_channels[i % phone_channels.len()].clone(),
            ),
        })
        .collect();
    let (ceiling, _) = measure
        .scenario(
            "grpc ceiling (health check)",
            c,
            workers,
            args.duration,
            u64::MAX,
        )
        .await?;
    let ceiling_rate = ceiling.ops_per_second;
    let floor_signatures = floor::signatures_ms_per_1000_cycles();
    let floor = floor::ms_per_1000_cycles(ceiling.server_cpu_ms_per_1000);
    figures.push(ceiling);

    // Enrollment, which also seeds the data.
    let phones = 10_000 * args.scale;
    let pending = 1_000 * args.scale;
    eprintln!("enrolling {phones} phones…");
    let workers = (0..c)
        .map(|i| Enroll {
            portal: portal(i),
            channel: phone_channels[i % phone_channels.len()].clone(),
            prefix: format!("user{i}"),
            next: 0,
            users: Vec::new(),
            push: false,
        })
        .collect();
    let (enrollment, enrolled) = measure
        .scenario(
            "enrollment (begin → register → number → verify)",
            c,
            workers,
            Duration::MAX,
            phones,
        )
        .await?;
    figures.push(enrollment);
    let mut users: Vec<User> = enrolled.into_iter().flat_map(|w| w.users).collect();

    eprintln!("enrolling {} phones with push tokens…", args.pushed_phones);
    let workers = (0..c)
        .map(|i| Enroll {
            portal: portal(i),
            channel: phone_channels[i % phone_channels.len()].clone(),
            prefix: format!("pushed{i}"),
            next: 0,
            users: Vec::new(),
            push: true,
        })
        .collect();
    let pushed: Vec<User> = run(workers, Duration::MAX, args.pushed_phones)
        .await?
        .workers
        .into_iter()
        .flat_map(|w| w.users)
        .collect();

    eprintln!("creating {pending} pending challenges…");
    let waiting: Vec<User> = users.split_off(users.len() - pending as usize);
    let workers = chunks(waiting, c)
        .into_iter()
        .enumerate()
        .map(|(i, users)| Seed {
            portal: portal(i),
            users,
        })
        .collect();
    run(workers, Duration::MAX, u64::MAX).await?;

    // The sign-in scenarios, on every other user: each caller signs in its
    // share of them in turn.
    if users.len() < c {
        return Err(format!(
            "concurrency {c} needs more than {phones} enrolled phones: raise --scale"
        ));
    }
    let sign_in_users = users.len();
    let workers: Vec<FullCycle> = chunks(users, c)
        .into_iter()
        .enumerate()
        .map(|(i, users)| FullCycle {
            portal: portal(i),
            users: Turns::new(users),
        })
        .collect();
    let (mut cycle, cycle_workers) = measure
        .scenario("full sign-in cycle", c, workers, args.duration, u64::MAX)
        .await?;
    let cycle_rate = cycle.ops_per_second;
    cycle.times_floor = Some(cycle.server_cpu_ms_per_1000 / floor);
    figures.push(cycle);

    // Half the peak rate, paced: how long the server itself takes per call
    // when it is not saturated, read from its own metrics for this window.
    let pace = Duration::from_secs_f64(c as f64 / (cycle_rate / 2.0).max(1.0));
    let before = server.metrics().await?;
    let (mut half, cycle_workers) = measure
        .paced(
            "full sign-in cycle at half the peak rate",
            c,
            cycle_workers,
            args.duration,
            Some(pace),
        )
        .await?;
    half.times_floor = Some(half.server_cpu_ms_per_1000 / floor);
    figures.push(half);
    let window = server.metrics().await?.since(&before);
    println!("\nthe server's own view of the half-rate run (its metrics):\n\n{window}");
    let server_p99_ms_at_half_rate = window
        .call_quantiles(0.99)
        .into_iter()
        .map(|(method, seconds)| (method, seconds * 1000.0))
        .collect();

    // Sign-ins offered at a fixed rate by people whose phones are notified,
    // the portal following each live (on the other replica where there is
    // one).
    let mut watching = Vec::new();
    for i in 0..args.connections.max(1) {
        watching.push(match &replica {
            Some(replica) => RelyingParty::connect(&replica.url, &portal_key)
                .await
                .map_err(|e| e.to_string())?,
            None => portal(i),
        });
    }
    let created = Created::default();
    let workers: Vec<WatchedCycle> = pushed
        .into_iter()
        .enumerate()
        .map(|(i, user)| WatchedCycle {
            creating: portal(i),
            watching: watching[i % watching.len()].clone(),
            user,
            created: created.clone(),
        })
        .collect();
    let pushes_before = (push.apns.requests().len(), push.fcm.requests().len());
    let before = server.metrics().await?;
    let name = "sign-ins offered at --rate (open loop, push, watch)";
    let (mut offered, missed, achieved) = measure
        .open_loop(name, workers, args.rate, args.duration)
        .await?;
    offered.times_floor = Some(offered.server_cpu_ms_per_1000 / floor);
    let window = server.metrics().await?.since(&before);
    let created = std::mem::take(&mut *created.lock().expect("not poisoned"));
    let push_received = [
        ("apns", push.apns.requests().split_off(pushes_before.0)),
        ("fcm", push.fcm.requests().split_off(pushes_before.1)),
    ]
    .into_iter()
    .map(|(provider, requests)| {
        let mut steps = Steps::default();
        for request in requests {
            let id = match provider {
                "apns" => &request.body["mfa"]["challenge_id"],
                _ => &request.body["message"]["data"]["challenge_id"],
            };
            if let Some(start) = id.as_str().and_then(|id| created.get(id)) {
                steps.record(provider, request.at.saturating_duration_since(*start));
            }
        }
        let summary = steps
            .summary()
            .pop()
            .unwrap_or_else(|| StepLatency::empty(provider));
        (provider.to_owned(), summary)
    })
    .collect();
    let open_loop = OpenLoop {
        offered_per_second: args.rate,
        achieved_per_second: achieved,
        missed_starts: missed,
        watch_on_other_replica: replica.is_some(),
        server_p99_ms: window
            .call_quantiles(0.99)
            .into_iter()
            .map(|(method, seconds)| (method, seconds * 1000.0))
            .collect(),
        push_received,
    };
    figures.push(offered);

    let (profile, cycle_workers) = if args.profile {
        // Sampling slows the server, so this run's figures are not kept;
        // perf stops before the load does, so every sample is under load.
        let recording = profile::Recording::start(server.pid(), &args.out, args.duration * 3 / 4)?;
        let (_, workers) = measure
            .scenario(
                "full sign-in cycle, profiled",
                c,
                cycle_workers,
                args.duration,
                u64::MAX,
            )
            .await?;
        eprintln!("reading the profile…");
        let out = args.out.clone();
        let profile = tokio::task::spawn_blocking(move || recording.finish(&out))
            .await
            .map_err(|e| e.to_string())??;
        (Some(profile), workers)
    } else {
        (None, cycle_workers)
    };

    let workers: Vec<Create> = cycle_workers
        .iter()
        .enumerate()
        .map(|(i, w)| Create {
            portal: portal(i),
            user_ids: Turns::new(w.users.items().iter().map(|u| u.id.clone()).collect()),
        })
        .collect();
    let (create, _) = measure
        .scenario("challenge creation", c, workers, args.duration, u64::MAX)
        .await?;
    figures.push(create);

    // Enough answers for the run at well above the rates seen here.
    let mut users: Vec<User> = cycle_workers
        .into_iter()
        .flat_map(|w| w.users.into_items())
        .collect();
    users.truncate(MAX_PREPARED_ANSWERS);
    eprintln!("preparing {} challenges to answer…", users.len());
    let preparing: Vec<_> = chunks(users, c)
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let portal = portal(i);
            tokio::spawn(async move { Answer::prepare(&portal, chunk).await })
        })
        .collect();
    let mut workers = Vec::new();
    for task in preparing {
        workers.push(task.await.map_err(|e| e.to_string())??);
    }
    let (answer, _) = measure
        .scenario("device answer", c, workers, args.duration, u64::MAX)
        .await?;
    figures.push(answer);

    eprintln!("push throughput…");
    let push_config = mfa_server::push::config::PushConfig {
        apns: push.config.apns.clone(),
        fcm: push.config.fcm.clone(),
        ..Default::default()
    };
    let push_throughput = push_rate::measure(&push_config, args.duration).await?;

    let mut report = Report {
        machine: machine(),
        database: if args.db.is_empty() {
            "sqlite".into()
        } else {
            "postgres".into()
        },
        scale: args.scale,
        enrolled_phones: phones + args.pushed_phones,
        pending_challenges: pending,
        sign_in_users,
        concurrency: c,
        full_cycle_share_of_ceiling: cycle_rate * CYCLE_RPCS / ceiling_rate,
        server_p99_ms_at_half_rate,
        server_peak_rss_mib: mib(server.usage().peak_rss_bytes),
        sqlite_peak_mib: sizes.as_ref().map(|s| mib(s.files.load(Ordering::Relaxed))),
        sqlite_wal_peak_mib: sizes.as_ref().map(|s| mib(s.wal.load(Ordering::Relaxed))),
        scenarios: figures,
        floor_ms_per_1000_cycles: floor,
        floor_signatures_ms_per_1000_cycles: floor_signatures,
        open_loop: Some(open_loop),
        push_throughput,
        profile,
        full_cycle_server_cpu_vs_sqlite: None,
    };
    let comparison = (!args.db.is_empty()).then(|| {
        against_sqlite(
            &report,
            &args.out.join(format!("sqlite-scale{}.json", args.scale)),
        )
    });
    print!("{}", table(&report));
    if let Some((ratio, line)) = comparison {
        println!("{line}");
        report.full_cycle_server_cpu_vs_sqlite = ratio;
    }
    if let Some(profile) = &report.profile {
        println!("{profile}");
    }
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let path = args
        .out
        .join(format!("{}-scale{}.json", report.database, args.scale));
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("results: {}", path.display());
    Ok(())
}

/// `report`'s server CPU per full cycle ÷ that of the SQLite run written to
/// `sqlite_json`, and a line that says so and how long ago that run was
/// written (or that there is none).
fn against_sqlite(report: &Report, sqlite_json: &Path) -> (Option<f64>, String) {
    const CYCLE: &str = "full sign-in cycle";
    let cycle_cpu = |scenarios: &serde_json::Value| {
        scenarios
            .as_array()?
            .iter()
            .find_map(|s| (s["scenario"] == CYCLE).then(|| s["server_cpu_ms_per_1000"].as_f64())?)
    };
    let sqlite = std::fs::read(sqlite_json)
        .ok()
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|run| cycle_cpu(&run["scenarios"]));
    let ours = report
        .scenarios
        .iter()
        .find(|s| s.scenario == CYCLE)
        .map(|s| s.server_cpu_ms_per_1000);
    let (Some(sqlite), Some(ours)) = (sqlite, ours) else {
        let none = format!(
            "no SQLite run in {} to compare the server's CPU per full cycle with",
            sqlite_json.display()
        );
        return (None, none);
    };
    let age = std::fs::metadata(sqlite_json)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|written| written.elapsed().ok())
        .map_or_else(String::new, |age| {
            format!(", written {} s ago", age.as_secs())
        });
    let line = format!(
        "full cycle: the server's CPU is {:.2}× that on SQLite ({ours:.1} ÷ {sqlite:.1} ms per 1,000; {}{age})",
        ours / sqlite,
        sqlite_json.display()
    );
    (Some(ours / sqlite), line)
}

/// Runs scenarios and attributes the server's CPU time to each (and, on
/// PostgreSQL, the database's).
struct Measure<'a> {
    server: &'a Server,
    postgres: bool,
    /// Open-loop operations allowed in flight: below the server's limit of
    /// calls at once per connection (they need not spread evenly).
    max_in_flight: usize,
}

/// CPU and disk readings before a scenario.
struct Readings {
    server: Usage,
    load: Duration,
    postgres: Option<Duration>,
}

impl Measure<'_> {
    async fn scenario<W: Worker>(
        &mut self,
        name: &'static str,
        concurrency: usize,
        workers: Vec<W>,
        duration: Duration,
        limit: u64,
    ) -> Result<(Figures, Vec<W>), String> {
        self.run(name, concurrency, workers, duration, limit, None)
            .await
    }

    /// A scenario at a fixed rate: each worker starts one operation per `pace`.
    async fn paced<W: Worker>(
        &mut self,
        name: &'static str,
        concurrency: usize,
        workers: Vec<W>,
        duration: Duration,
        pace: Option<Duration>,
    ) -> Result<(Figures, Vec<W>), String> {
        self.run(name, concurrency, workers, duration, u64::MAX, pace)
            .await
    }

    /// Sign-ins started at `rate` a second whatever earlier ones do; the
    /// figures, the starts missed, and the rate of those made.
    async fn open_loop<W: Worker>(
        &mut self,
        name: &'static str,
        workers: Vec<W>,
        rate: f64,
        duration: Duration,
    ) -> Result<(Figures, u64, f64), String> {
        eprintln!("{name}…");
        let before = self.readings();
        let OpenRun {
            ops,
            missed,
            scheduled_for,
            elapsed,
            steps,
            workers,
        } = run_open_loop(workers, rate, duration, self.max_in_flight).await?;
        let figures = self.figures(name, workers.len(), before, ops, elapsed, &steps);
        Ok((figures, missed, ops as f64 / scheduled_for.as_secs_f64()))
    }

    async fn run<W: Worker>(
        &mut self,
        name: &'static str,
        concurrency: usize,
        workers: Vec<W>,
        duration: Duration,
        limit: u64,
        pace: Option<Duration>,
    ) -> Result<(Figures, Vec<W>), String> {
        eprintln!("{name}…");
        let before = self.readings();
        let Run {
            ops,
            elapsed,
            steps,
            workers,
        } = run_paced(workers, duration, limit, pace).await?;
        let figures = self.figures(name, concurrency, before, ops, elapsed, &steps);
        Ok((figures, workers))
    }

    fn readings(&self) -> Readings {
        Readings {
            server: self.server.usage(),
            load: server::cpu_time(std::process::id()),
            postgres: self.postgres.then(server::postgres_cpu_time),
        }
    }

    fn figures(
        &self,
        name: &'static str,
        concurrency: usize,
        before: Readings,
        ops: u64,
        elapsed: Duration,
        steps: &Steps,
    ) -> Figures {
        let after = self.readings();
        let cpu = after.server.cpu.saturating_sub(before.server.cpu);
        let written = after
            .server
            .disk_written_bytes
            .saturating_sub(before.server.disk_written_bytes);
        let load_cpu = after.load.saturating_sub(before.load);
        let per_1000_ops =
            |cpu: Duration| cpu.as_secs_f64() * 1000.0 / (ops.max(1) as f64 / 1000.0);
        let seconds = elapsed.as_secs_f64();
        Figures {
            scenario: name,
            concurrency,
            ops,
            seconds,
            ops_per_second: ops as f64 / seconds,
            server_cpu_ms_per_1000: per_1000_ops(cpu),
            load_cpu_ms_per_1000: per_1000_ops(load_cpu),
            server_disk_kib_per_op: written as f64 / 1024.0 / ops.max(1) as f64,
            postgres_cpu_ms_per_1000: before
                .postgres
                .zip(after.postgres)
                .map(|(before, after)| per_1000_ops(after.saturating_sub(before))),
            times_floor: None,
            steps: steps.summary(),
        }
    }
}

/// Creates one challenge for each user and leaves it pending.
struct Seed {
    portal: RelyingParty,
    users: Vec<User>,
}

impl Worker for Seed {
    async fn step(&mut self, _: &mut load::Steps) -> Result<bool, String> {
        let Some(user) = self.users.pop() else {
            return Ok(false);
        };
        self.portal
            .start_sign_in(&user.id, Default::default())
            .await
            .map_err(|e| format!("create: {e}"))?;
        Ok(true)
    }
}

/// Splits `items` into `n` nearly equal parts.
fn chunks<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut parts: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        parts[i % n].push(item);
    }
    parts
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} × {cpu}")
}

fn table(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nmfa-server on {} ({}), {} enrolled phones, {} pending challenges, \
         sign-ins by {} users in turn, concurrency {}\n",
        report.database,
        report.machine,
        report.enrolled_phones,
        report.pending_challenges,
        report.sign_in_users,
        report.concurrency
    );
    let _ = writeln!(
        out,
        "{:<52} {:>8} {:>10} {:>16} {:>8} {:>14} {:>14} {:>12}   {:<14} {:>8} {:>8} {:>8} {:>8}",
        "scenario",
        "ops",
        "ops/s",
        "server ms/1k ops",
        "× floor",
        "postgres ms/1k",
        "load ms/1k ops",
        "disk KiB/op",
        "step",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms"
    );
    let optional = |v: Option<f64>, decimals: usize| {
        v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
    };
    for f in &report.scenarios {
        for (i, s) in f.steps.iter().enumerate() {
            let head = if i == 0 {
                format!(
                    "{:<52} {:>8} {:>10.0} {:>16.1} {:>8} {:>14} {:>14.1} {:>12.1}",
                    f.scenario,
                    f.ops,
                    f.ops_per_second,
                    f.server_cpu_ms_per_1000,
                    optional(f.times_floor, 2),
                    optional(f.postgres_cpu_ms_per_1000, 1),
                    f.load_cpu_ms_per_1000,
                    f.server_disk_kib_per_op
                )
            } else {
                format!(
                    "{:<52} {:>8} {:>10} {:>16} {:>8} {:>14} {:>14} {:>12}",
                    "", "", "", "", "", "", "", ""
                )
            };
            let _ = writeln!(
                out,
                "{head}   {:<14} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                s.step, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms
            );
        }
    }
    let files = match (report.sqlite_peak_mib, report.sqlite_wal_peak_mib) {
        (Some(files), Some(wal)) => {
            format!("; SQLite files peak {files:.0} MiB (of which the WAL {wal:.0} MiB)")
        }
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "\nfull cycle: {:.0}% of the gRPC ceiling ({} RPCs a cycle); server peak RSS {:.0} MiB{files}\n",
        report.full_cycle_share_of_ceiling * 100.0,
        CYCLE_RPCS,
        report.server_peak_rss_mib
    );
    let _ = writeln!(
        out,
        "floor: {:.1} ms of server CPU per 1,000 cycles ({} health checks at this concurrency, \
         plus {:.1} ms for 2 signature verifications and 1 signature)\n",
        report.floor_ms_per_1000_cycles, CYCLE_RPCS, report.floor_signatures_ms_per_1000_cycles
    );
    if let Some(open) = &report.open_loop {
        let _ = writeln!(
            out,
            "open loop: {:.0} sign-ins/s offered, {:.0}/s done, {} starts missed (too many still running); \
             the watch on {} replica",
            open.offered_per_second,
            open.achieved_per_second,
            open.missed_starts,
            if open.watch_on_other_replica { "the other" } else { "the same" }
        );
        for (provider, l) in &open.push_received {
            let _ = writeln!(
                out,
                "  creation → {provider} stand-in received: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms ({} notifications)",
                l.p50_ms, l.p99_ms, l.p999_ms, l.count
            );
        }
        if let Some((method, p99)) = open.server_p99_ms.iter().max_by(|a, b| a.1.total_cmp(b.1)) {
            let _ = writeln!(
                out,
                "  the server's slowest call p99: {p99:.2} ms ({method})"
            );
        }
        let _ = writeln!(out);
    }
    for rate in &report.push_throughput {
        let _ = writeln!(
            out,
            "push throughput: {} stand-in accepted {:.0} notifications/s over one HTTP/2 connection ({} in flight)",
            rate.provider, rate.accepted_per_second, rate.concurrency
        );
    }
    let _ = writeln!(out);
    if let Some((method, p99)) = report
        .server_p99_ms_at_half_rate
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
    {
        let _ = writeln!(
            out,
            "at half the peak rate, the server's slowest call p99 is {p99:.2} ms ({method})\n"
        );
    }
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The largest sizes of a SQLite database's files seen so far, sampled on a
/// task of their own until this is dropped.
struct SizePeaks {
    files: Arc<AtomicU64>,
    wal: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl SizePeaks {
    fn watch(database: PathBuf) -> Self {
        let (files, wal) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let sampler = tokio::spawn({
            let (files, wal) = (files.clone(), wal.clone());
            async move {
                let mut every = tokio::time::interval(SIZE_SAMPLE);
                loop {
                    every.tick().await;
                    let (all, log) = server::sqlite_bytes(&database);
                    files.fetch_max(all, Ordering::Relaxed);
                    wal.fetch_max(log, Ordering::Relaxed);
                }
            }
        });
        Self {
            files,
            wal,
            sampler,
        }
    }
}

impl Drop for SizePeaks {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}
