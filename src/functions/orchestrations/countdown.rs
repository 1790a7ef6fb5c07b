//! `Countdown`: an eternal-style orchestration that counts down with a durable timer per tick and
//! `continue_as_new`, so its history never grows.

use std::time::Duration;

use azfn::durable::{OrchestrationContext, TaskError};
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
}

/// Waits one interval, then starts over with one tick less; at zero returns `"liftoff"`.
pub async fn countdown(ctx: OrchestrationContext, tick: Tick) -> Result<String, TaskError> {
    ctx.set_custom_status(tick.remaining);
    if tick.remaining == 0 {
        return Ok("liftoff".into());
    }
    ctx.sleep(Duration::from_millis(tick.interval_ms)).await;
    ctx.continue_as_new(Tick { remaining: tick.remaining - 1, ..tick });
    Ok(String::new())
}
