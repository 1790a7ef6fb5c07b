//! The engine's time and fresh ids: the system clock and random UUIDs, or, inside a deterministic
//! simulation (feature `simulation`), tokio's paused clock and ids counted from a seed, so that a
//! run can be replayed exactly.

#[cfg(feature = "simulation")]
use std::cell::RefCell;

use chrono::{DateTime, Utc};

#[cfg(feature = "simulation")]
thread_local! {
    static SIMULATED: RefCell<Option<Simulated>> = const { RefCell::new(None) };
}

#[cfg(feature = "simulation")]
#[derive(Debug)]
struct Simulated {
    epoch: DateTime<Utc>,
    start: tokio::time::Instant,
    seed: u64,
    ids: u64,
    jitters: u64,
}

/// The time now: the system's, or the simulation's on this thread.
pub fn now() -> DateTime<Utc> {
    #[cfg(feature = "simulation")]
    if let Some(t) = SIMULATED.with(|s| {
        s.borrow().as_ref().map(|s| s.epoch + chrono::Duration::from_std(s.start.elapsed()).unwrap_or_default())
    }) {
        return t;
    }
    Utc::now()
}

/// A fresh id of 32 hexadecimal digits: a random UUID, or the simulation's next one.
pub fn new_id() -> String {
    #[cfg(feature = "simulation")]
    if let Some(id) = SIMULATED.with(|s| {
        s.borrow_mut().as_mut().map(|s| {
            s.ids += 1;
            format!("{:016x}{:016x}", s.seed, s.ids)
        })
    }) {
        return id;
    }
    uuid::Uuid::new_v4().simple().to_string()
}

/// A random duration from zero to `max`, to spread retries that would otherwise meet again: from
/// a random UUID's bits, or, in a simulation, from the seed and a count of its own (so that ids
/// are not shifted by it).
pub fn jitter(max: std::time::Duration) -> std::time::Duration {
    let bits = simulated_bits().unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
    max.mul_f64((bits >> 11) as f64 / (1u64 << 53) as f64)
}

/// The simulation's next random bits for [`jitter`]: SplitMix64 of the seed and a count of its own
/// (well spread, and the same on a replay); `None` outside a simulation.
#[cfg(feature = "simulation")]
fn simulated_bits() -> Option<u64> {
    SIMULATED.with(|s| {
        s.borrow_mut().as_mut().map(|s| {
            s.jitters += 1;
            let mut z = s.seed ^ s.jitters.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    })
}

#[cfg(not(feature = "simulation"))]
fn simulated_bits() -> Option<u64> {
    None
}

/// Until the guard drops, [`now`] on this thread reads `epoch` plus the time tokio's clock has
/// moved since this call, and [`new_id`] counts from `seed`.
#[cfg(feature = "simulation")]
pub fn simulate(epoch: DateTime<Utc>, seed: u64) -> SimulationGuard {
    SIMULATED.with(|s| {
        *s.borrow_mut() = Some(Simulated { epoch, start: tokio::time::Instant::now(), seed, ids: 0, jitters: 0 });
    });
    SimulationGuard(())
}

/// Ends a [`simulate`] when dropped.
#[cfg(feature = "simulation")]
#[derive(Debug)]
pub struct SimulationGuard(());

#[cfg(feature = "simulation")]
impl Drop for SimulationGuard {
    fn drop(&mut self) {
        SIMULATED.with(|s| *s.borrow_mut() = None);
    }
}
