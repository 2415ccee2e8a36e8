//! The load runner: a number of concurrent workers, each repeating one
//! operation until the time is up (or it runs out of work), timing each step
//! into its own histograms, merged at the end.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::{
    collections::BTreeMap,
    future::Future,
    time::{Duration, Instant},
};

/// Latencies by step name, in microseconds.
#[derive(Default)]
pub struct Steps(BTreeMap<&'static str, Histogram<u64>>);

impl Steps {
    /// Records that `step` took `took`.
    pub fn record(&mut self, step: &'static str, took: Duration) {
        let micros = (took.as_micros() as u64).max(1);
        self.0
            .entry(step)
            .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds"))
            .saturating_record(micros);
    }

    /// Times `future` as `step`.
    pub async fn time<T>(&mut self, step: &'static str, future: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let output = future.await;
        self.record(step, start.elapsed());
        output
    }

    fn merge(&mut self, other: Steps) {
        for (step, histogram) in other.0 {
            match self.0.get_mut(step) {
                Some(mine) => mine.add(&histogram).expect("same bounds"),
                None => {
                    self.0.insert(step, histogram);
                }
            }
        }
    }

    /// Quantiles per step, in milliseconds.
    pub fn summary(&self) -> Vec<StepLatency> {
        self.0
            .iter()
            .map(|(step, h)| {
                let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
                StepLatency {
                    step: step.to_string(),
                    count: h.len(),
                    p50_ms: ms(0.5),
                    p90_ms: ms(0.9),
                    p99_ms: ms(0.99),
                    p999_ms: ms(0.999),
                }
            })
            .collect()
    }
}

/// One step's latency quantiles.
#[derive(Debug, Clone, Serialize)]
pub struct StepLatency {
    pub step: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl StepLatency {
    /// A step that never happened.
    pub fn empty(step: &str) -> Self {
        Self {
            step: step.to_owned(),
            count: 0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
        }
    }
}

/// A worker's operation.
pub trait Worker: Send + 'static {
    /// Does one operation, timing its steps; `Ok(false)` when out of work.
    fn step(&mut self, steps: &mut Steps) -> impl Future<Output = Result<bool, String>> + Send;
}

/// What a run did.
pub struct Run<W> {
    pub ops: u64,
    pub elapsed: Duration,
    pub steps: Steps,
    /// The workers, for the next phase.
    pub workers: Vec<W>,
}

/// Runs every worker until `duration` has passed, `limit` operations are
/// done in all, or the workers run out of work. The first error stops the
/// run: a benchmark of failing calls measures nothing.
pub async fn run<W: Worker>(
    workers: Vec<W>,
    duration: Duration,
    limit: u64,
) -> Result<Run<W>, String> {
    run_paced(workers, duration, limit, None).await
}

/// [`run`], each worker starting an operation at most once per `pace`
/// (an open-loop rate of workers ÷ pace), when given.
pub async fn run_paced<W: Worker>(
    workers: Vec<W>,
    duration: Duration,
    limit: u64,
    pace: Option<Duration>,
) -> Result<Run<W>, String> {
    let start = Instant::now();
    // `Duration::MAX` means no time limit.
    let deadline = start.checked_add(duration);
    let left = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(limit));
    let workers_count = workers.len().max(1) as u32;
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, mut worker)| {
            let left = left.clone();
            tokio::spawn(async move {
                let mut steps = Steps::default();
                let mut ops = 0u64;
                let mut ticks = pace.map(|pace| {
                    // Staggered, so that the workers do not start in bursts.
                    let first = tokio::time::Instant::now() + pace * i as u32 / workers_count;
                    let mut ticks = tokio::time::interval_at(first, pace);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    ticks
                });
                while deadline.is_none_or(|d| Instant::now() < d)
                    && left
                        .fetch_update(
                            std::sync::atomic::Ordering::Relaxed,
                            std::sync::atomic::Ordering::Relaxed,
                            |n| n.checked_sub(1),
                        )
                        .is_ok()
                {
                    if let Some(ticks) = &mut ticks {
                        ticks.tick().await;
                    }
                    if !worker.step(&mut steps).await? {
                        break;
                    }
                    ops += 1;
                }
                Ok::<_, String>((worker, steps, ops))
            })
        })
        .collect();
    let mut run = Run {
        ops: 0,
        elapsed: Duration::ZERO,
        steps: Steps::default(),
        workers: Vec::new(),
    };
    for task in tasks {
        let (worker, steps, ops) = task.await.map_err(|e| e.to_string())??;
        run.ops += ops;
        run.steps.merge(steps);
        run.workers.push(worker);
    }
    run.elapsed = start.elapsed();
    Ok(run)
}

/// What an open-loop run did.
pub struct OpenRun<W> {
    /// Operations started at their scheduled time (or as soon after it as a
    /// worker was free) and finished.
    pub ops: u64,
    /// Scheduled starts that found no free worker: the offered rate was not
    /// held by that many.
    pub missed: u64,
    /// How long starts were scheduled for (the run's `duration`).
    pub scheduled_for: Duration,
    /// Until the last operation finished.
    pub elapsed: Duration,
    /// The workers' own steps, and `scheduled` (from the scheduled start to
    /// the end of the operation, so that a late start counts against it).
    pub steps: Steps,
    pub workers: Vec<W>,
}

/// Starts operations at `rate` a second for `duration`, whatever earlier ones
/// are doing (an open loop, as independent people sign in): each start takes
/// a free worker; a start that finds none, or finds `max_in_flight`
/// operations still running, is counted as missed.
pub async fn run_open_loop<W: Worker>(
    workers: Vec<W>,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) -> Result<OpenRun<W>, String> {
    use std::sync::{Arc, Mutex};
    let count = workers.len();
    let free = Arc::new(Mutex::new(workers));
    let steps = Arc::new(Mutex::new(Steps::default()));
    let mut running = tokio::task::JoinSet::new();
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut ticks = tokio::time::interval(period);
    // Late ticks fire at once: the schedule, not the last start, sets the rate.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let (mut ops, mut missed) = (0u64, 0u64);
    while start.elapsed() < duration {
        let scheduled = ticks.tick().await.into_std();
        // Finished operations report their errors as soon as possible.
        while let Some(done) = running.try_join_next() {
            done.map_err(|e| e.to_string())??;
            ops += 1;
        }
        if running.len() >= max_in_flight {
            missed += 1;
            continue;
        }
        let Some(mut worker) = free.lock().expect("not poisoned").pop() else {
            missed += 1;
            continue;
        };
        let (free, steps) = (free.clone(), steps.clone());
        running.spawn(async move {
            let mut mine = Steps::default();
            let result = worker.step(&mut mine).await;
            mine.record("scheduled", scheduled.elapsed());
            steps.lock().expect("not poisoned").merge(mine);
            free.lock().expect("not poisoned").push(worker);
            result.map(drop)
        });
    }
    let scheduled_for = start.elapsed();
    while let Some(done) = running.join_next().await {
        done.map_err(|e| e.to_string())??;
        ops += 1;
    }
    let elapsed = start.elapsed();
    let workers = std::mem::take(&mut *free.lock().expect("not poisoned"));
    debug_assert_eq!(workers.len(), count);
    let steps = std::mem::take(&mut *steps.lock().expect("not poisoned"));
    Ok(OpenRun {
        ops,
        missed,
        scheduled_for,
        elapsed,
        steps,
        workers,
    })
}
