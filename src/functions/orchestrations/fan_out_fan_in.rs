//! `FanOutFanIn`: n activities at once, their results summed (fan-out/fan-in).

use azfn::durable::{ActivityContext, OrchestrationContext, TaskError, join_all};

/// Computes 1 + 2 + ... + n by calling `Number` for each k in parallel; n is at most 10,000.
pub async fn fan_out_fan_in(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
    if n > 10_000 {
        return Err(TaskError::new(format!("n = {n} is too many activities for one orchestration (at most 10000)")));
    }
    let calls = (1..=n).map(|k| ctx.call_activity::<u64>("Number", k));
    let mut sum = 0;
    for result in join_all(calls).await {
        sum += result?;
    }
    ctx.set_custom_status(format!("summed {n} results"));
    Ok(sum)
}

/// Returns its input: the work each parallel branch does.
pub async fn number(_ctx: ActivityContext, k: u64) -> Result<u64, String> {
    Ok(k)
}
