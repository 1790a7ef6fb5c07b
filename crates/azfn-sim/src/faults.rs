//! The faults storage calls meet: one seeded generator decides, for every call of every worker,
//! whether it is answered, refused with a 503, applied with its answer lost, or delayed; every
//! decision is folded into the run's digest and every fault written to its trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use azfn::storage::memory::{Fault, Faults};

use crate::rng::Rng;

/// How often each fault happens while faults are on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// A 503 before the call is applied.
    pub unavailable: f64,
    /// The call is applied and its answer lost.
    pub lost: f64,
    /// The call waits up to [`Rates::max_delay`] first.
    pub delay: f64,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Rates {
    /// No faults.
    pub const NONE: Rates = Rates { unavailable: 0.0, lost: 0.0, delay: 0.0, max_delay: Duration::ZERO };
}

/// What a run did, for its report and its replay.
#[derive(Debug, Default)]
pub struct Trace {
    /// The faults, crashes and client steps, with their virtual times.
    pub lines: Vec<String>,
    /// A fold of every storage call and decision, in order: two runs of one seed give the same.
    pub digest: u64,
    /// Storage calls decided.
    pub calls: u64,
    /// Faults injected.
    pub faults: u64,
}

impl Trace {
    fn fold(&mut self, text: &str) {
        for b in text.bytes() {
            self.digest = (self.digest ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

#[derive(Debug)]
struct World {
    rng: Rng,
    rates: Rates,
    trace: Trace,
    start: tokio::time::Instant,
}

/// The run's chance and trace, shared by every worker's [`WorkerFaults`].
#[derive(Debug, Clone)]
pub struct Chance(Arc<Mutex<World>>);

impl Chance {
    /// A run seeded with `seed`, faults off.
    pub fn new(seed: u64) -> Self {
        let world = World {
            rng: Rng::new(seed),
            rates: Rates::NONE,
            trace: Trace { digest: 0xcbf2_9ce4_8422_2325, ..Trace::default() },
            start: tokio::time::Instant::now(),
        };
        Self(Arc::new(Mutex::new(world)))
    }

    /// Runs `f` with the generator.
    pub fn with<T>(&self, f: impl FnOnce(&mut Rng) -> T) -> T {
        f(&mut self.0.lock().expect("world").rng)
    }

    /// Sets the fault rates (from now on).
    pub fn set_rates(&self, rates: Rates) {
        self.0.lock().expect("world").rates = rates;
    }

    /// Writes `line` to the trace, with the virtual time.
    pub fn note(&self, line: impl AsRef<str>) {
        let mut w = self.0.lock().expect("world");
        let line = format!("{:>10.3}s  {}", w.start.elapsed().as_secs_f64(), line.as_ref());
        w.trace.fold(&line);
        w.trace.lines.push(line);
    }

    /// The trace so far.
    pub fn take_trace(&self) -> Trace {
        std::mem::take(&mut self.0.lock().expect("world").trace)
    }

    /// The faults of the process `who`.
    pub fn for_worker(&self, who: &str) -> Arc<WorkerFaults> {
        Arc::new(WorkerFaults { chance: self.clone(), who: who.to_owned() })
    }
}

/// One process's view of the run's faults.
#[derive(Debug)]
pub struct WorkerFaults {
    chance: Chance,
    who: String,
}

impl Faults for WorkerFaults {
    fn decide(&self, what: &str) -> Fault {
        let mut w = self.chance.0.lock().expect("world");
        let rates = w.rates;
        let fault = if w.rng.chance(rates.unavailable) {
            Fault::Unavailable
        } else if w.rng.chance(rates.lost) {
            Fault::LostAnswer
        } else if w.rng.chance(rates.delay) {
            let ms = w.rng.below(rates.max_delay.as_millis() as u64 + 1);
            Fault::Delay(Duration::from_millis(ms))
        } else {
            Fault::None
        };
        w.trace.calls += 1;
        let elapsed = w.start.elapsed().as_micros();
        w.trace.fold(&format!("{elapsed} {} {what} {fault:?}", self.who));
        if fault != Fault::None {
            w.trace.faults += 1;
            let line = format!("{:>10.3}s  {} {what}: {fault:?}", elapsed as f64 / 1e6, self.who);
            w.trace.lines.push(line);
        }
        fault
    }
}
