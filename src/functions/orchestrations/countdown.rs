//! `Countdown`: an eternal-style orchestration that counts down with a durable timer per tick and
//! `continue_as_new`, so its history never grows.

use std::time::Duration;

use azfn::durable::{EntityId, OrchestrationContext, TaskError};
use serde::{Deserialize, Serialize};

/// Where the countdown is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tick {
    /// Ticks left.
    pub remaining: u32,
    /// Milliseconds between ticks.
    #[serde(default)]
    pub interval_ms: u64,
    /// A `Counter` key to signal `add 1` at every tick, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
}

/// Waits one interval (signalling the counter, if there is one), then starts over with one tick
/// less; at zero returns `"liftoff"`. The signal goes out with the execution that continues as new.
pub async fn countdown(ctx: OrchestrationContext, tick: Tick) -> Result<String, TaskError> {
    ctx.set_custom_status(tick.remaining);
    if tick.remaining == 0 {
        return Ok("liftoff".into());
    }
    ctx.sleep(Duration::from_millis(tick.interval_ms)).await;
    if let Some(key) = &tick.counter {
        ctx.signal_entity(&EntityId::new("Counter", key), "add", 1);
    }
    ctx.continue_as_new(Tick { remaining: tick.remaining - 1, ..tick });
    Ok(String::new())
}
