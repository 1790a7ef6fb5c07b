//! A deterministic simulation of azfn's durable engine.
//!
//! One seeded run puts N simulated workers ([`worker`]) in one process, on one current-thread
//! tokio runtime whose clock is paused (virtual time: a week of timers passes in milliseconds).
//! They share one in-memory Azure Storage account (`azfn::storage::memory`), through which the
//! engine's own code ([`azfn::durable::Dispatcher`], unchanged) keeps its instances, queues and
//! blobs. A client process drives the [`workload`]'s scenarios. While faults are on, the seeded
//! generator ([`faults`]) refuses calls with 503s, loses answers after the write happened,
//! delays calls, crashes workers at any await point and restarts them, with each worker's clock
//! skewed. Then faults stop, and the run checks its invariants ([`check`]): every instance ends as
//! expected within a bound of virtual time, every entity operation counts exactly once, no lock
//! is held, nothing is in poison, and activities ran no more often than at-least-once allows.
//!
//! Every decision comes from the seed, ids and clocks included, so a seed replays: a failure
//! prints the seed, the trace of faults and client steps, and the command that runs it again.
//!
//! ```no_run
//! let report = azfn_sim::run(&azfn_sim::Config { seed: 7, workers: 4, ..azfn_sim::Config::default() });
//! assert!(report.failures.is_empty(), "{}", report.describe());
//! ```

pub mod check;
pub mod faults;
pub mod rng;
pub mod worker;
pub mod workload;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use azfn::durable::DurableClient;
use azfn::storage::memory::{MemoryStorage, NoFaults};
use chrono::{TimeZone, Utc};

use faults::{Chance, Rates};
use rng::Rng;
use worker::Worker;

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The seed everything follows from.
    pub seed: u64,
    /// Simulated workers (1 to 16).
    pub workers: usize,
    /// Scenarios drawn.
    pub scenarios: usize,
    /// The widest fan-out drawn.
    pub max_fan_out: i64,
    /// How long faults and crashes go on, in virtual time.
    pub fault_time: Duration,
    /// Whether faults are injected at all (off: a clean run, which must also be exact).
    pub faults: bool,
    /// Draw only this scenario (one of [`workload::SCENARIOS`]); `None`: any.
    pub only: Option<&'static str>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 0,
            workers: 4,
            scenarios: 6,
            max_fan_out: 40,
            fault_time: Duration::from_secs(180),
            faults: true,
            only: None,
        }
    }
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    /// The settings.
    pub config: Config,
    /// The broken invariants; empty when the run passed.
    pub failures: Vec<String>,
    /// The trace (faults, crashes, client steps) and digest.
    pub trace: faults::Trace,
    /// Activity executions, and the calls they served.
    pub executions: (u64, u64),
    /// Crashes injected.
    pub crashes: u32,
    /// Virtual time the run took.
    pub virtual_time: Duration,
}

impl Report {
    /// The report as text: the outcome, the figures, and on failure the trace and how to replay.
    pub fn describe(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "seed {} on {} workers: {} ({} storage calls, {} faults, {} crashes, {} activity executions for {} calls, {:.0} s virtual, digest {:016x})\n",
            c.seed,
            c.workers,
            if self.failures.is_empty() { "passed" } else { "FAILED" },
            self.trace.calls,
            self.trace.faults,
            self.crashes,
            self.executions.0,
            self.executions.1,
            self.virtual_time.as_secs_f64(),
            self.trace.digest,
        );
        for f in &self.failures {
            out.push_str(&format!("  broken: {f}\n"));
        }
        out
    }

    /// The trace, one line per fault, crash and client step.
    pub fn trace_text(&self) -> String {
        self.trace.lines.join("\n")
    }
}

/// Runs one seed to its end and checks it.
pub fn run(config: &Config) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(simulate(config.clone()))
}

async fn simulate(config: Config) -> Report {
    let epoch = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("a valid date");
    let _clock = azfn::durable::clock::simulate(epoch, config.seed);
    let started = tokio::time::Instant::now();
    let chance = Chance::new(config.seed);
    let mut rng = Rng::new(config.seed.wrapping_mul(31).wrapping_add(17));
    let page = [5, 50, 1000][rng.below(3) as usize];
    let storage = MemoryStorage::new(epoch).with_page_size(page);
    let ledger = Arc::new(Mutex::new(workload::Ledger::default()));
    let registry = Arc::new(workload::registry(ledger.clone(), 30_000));

    // The client: a front end that does not crash and meets no faults of its own.
    let client_link = storage.link(Arc::new(NoFaults), worker::retry_policy());
    let client_hub = worker::hub(&client_link, chrono::Duration::zero());
    client_hub.ensure_created().await.expect("in-memory storage");
    let client = DurableClient::new(client_hub.clone(), registry.clone());

    let workers = config.workers.clamp(1, 16);
    let skew = |rng: &mut Rng| chrono::Duration::milliseconds(rng.below(4001) as i64 - 2000);
    // A rolling deploy (some seeds): the first `old` workers run a version without one function
    // and are replaced, one by one, by the full version while faults go on.
    let mut deploy = Rng::new(config.seed ^ 0x0de9_10e5);
    let rolling = config.faults && deploy.below(4) == 0;
    let lacking = workload::FUNCTIONS[deploy.below(workload::FUNCTIONS.len() as u64) as usize];
    let old = if rolling { 1 + deploy.below(workers as u64) as usize } else { 0 };
    let old_registry = workload::registry(ledger.clone(), 30_000);
    let old_registry = Arc::new(match lacking.split_once('@') {
        Some((name, version)) => old_registry.without_version(name, version),
        None => old_registry.without(lacking),
    });
    let mut registries: Vec<Arc<azfn::durable::Registry>> =
        (0..workers).map(|i| if i < old { old_registry.clone() } else { registry.clone() }).collect();
    let mut pool: Vec<Worker> = (0..workers)
        .map(|i| {
            let s = skew(&mut rng);
            Worker::start(&format!("w{i}"), &storage, &chance, registries[i].clone(), s)
        })
        .collect();

    let rates = if config.faults {
        Rates {
            unavailable: rng.below(50) as f64 / 1000.0,
            lost: rng.below(30) as f64 / 1000.0,
            delay: rng.below(100) as f64 / 1000.0,
            max_delay: Duration::from_millis(rng.below(3000)),
        }
    } else {
        Rates::NONE
    };
    chance.set_rates(rates);
    chance.note(format!("{workers} workers, page size {page}, rates {rates:?}"));
    if rolling {
        chance.note(format!("rolling deploy: w0..w{} lack `{lacking}` until they are replaced", old - 1));
    }

    let expected = Arc::new(Mutex::new(workload::Expected::default()));
    // Draws that came later have streams of their own, so that adding one does not change the
    // workloads of the seeds before.
    let mut extra = Rng::new(config.seed ^ 0x005e_ed0f_a2f0);
    let long_timers = rng.below(10) == 0;
    let max_fan_out = if extra.below(50) == 0 { 1000 } else { config.max_fan_out };
    let draw = workload::Draw { only: config.only, count: config.scenarios, long_timers, max_fan_out };
    let steps = workload::spawn_all(&mut rng, draw, client.clone(), expected.clone(), ledger.clone(), &chance);

    // While faults are on: crashes (a worker dies at a random moment and comes back later, with
    // the same version) and the deploy's replacements (at once, with the full version).
    enum Happening {
        Crash(usize),
        Upgrade(usize),
    }
    let mut schedule = Vec::new();
    if config.faults {
        let mut at = Duration::ZERO;
        loop {
            at += Duration::from_millis(rng.below(config.fault_time.as_millis() as u64 / 4 + 1));
            if at >= config.fault_time {
                break;
            }
            schedule.push((at, Happening::Crash(rng.below(workers as u64) as usize)));
        }
        for i in 0..old {
            let at = Duration::from_millis(deploy.below(config.fault_time.as_millis() as u64));
            schedule.push((at, Happening::Upgrade(i)));
        }
        schedule.sort_by_key(|(at, _)| *at);
    }
    let mut crashes = 0;
    let mut generation = 0;
    for (at, happening) in schedule {
        if tokio::time::Instant::now() < started + at {
            tokio::time::sleep_until(started + at).await;
        }
        generation += 1;
        let i = match happening {
            Happening::Crash(i) => {
                chance.note(format!("crash {}", pool[i].name));
                pool[i].crash();
                crashes += 1;
                tokio::time::sleep(Duration::from_millis(rng.below(30_000))).await;
                i
            }
            Happening::Upgrade(i) => {
                chance.note(format!("deploy replaces {} with the full version", pool[i].name));
                pool[i].crash();
                registries[i] = registry.clone();
                i
            }
        };
        let s = skew(&mut rng);
        let name = format!("w{i}.{generation}");
        chance.note(format!("{name} starts in place of {}", pool[i].name));
        pool[i] = Worker::start(&name, &storage, &chance, registries[i].clone(), s);
    }
    if config.faults {
        tokio::time::sleep_until(started + config.fault_time).await;
    }
    chance.set_rates(Rates::NONE);
    chance.note("faults stop");

    // Every client step ends (they wait for instances) or the bound passes.
    let bound = if long_timers { Duration::from_secs(12 * 24 * 3600) } else { Duration::from_secs(2 * 24 * 3600) };
    let deadline = tokio::time::Instant::now() + bound;
    for step in steps {
        let _ = tokio::time::timeout_at(deadline, step).await;
    }
    let failures = check::settle_and_check(
        check::View { client: &client, hub: &client_hub, storage: &storage, registry: &registry },
        &expected,
        &ledger,
        deadline,
        crashes,
        rates != Rates::NONE,
    )
    .await;
    let virtual_time = started.elapsed();
    for w in &pool {
        w.crash();
    }
    let executions = {
        let l = ledger.lock().expect("ledger");
        (l.executions.values().map(|n| u64::from(*n)).sum(), l.executions.len() as u64)
    };
    Report { config, failures, trace: chance.take_trace(), executions, crashes, virtual_time }
}
