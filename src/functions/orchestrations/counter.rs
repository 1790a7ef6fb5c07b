//! `Counter`: a durable entity holding a count (the aggregator pattern).
//!
//! `POST /api/orchestrators/entities/Counter/{key}?op=add` with an amount as the body adds it;
//! `op=reset` sets it to 0; `GET /api/orchestrators/entities/Counter/{key}` reads the count.
//! Orchestrations call `get` with `ctx.call_entity`.

use azfn::durable::EntityOp;
use serde_json::{Value, json};

/// Applies one operation to the count.
pub fn counter(count: &mut i64, op: &EntityOp) -> Result<Value, String> {
    match op.name.as_str() {
        "add" => {
            let amount: i64 = op.input()?;
            *count = count.checked_add(amount).ok_or("the count would overflow")?;
            Ok(Value::Null)
        }
        "reset" => {
            *count = 0;
            Ok(Value::Null)
        }
        "get" => Ok(json!(*count)),
        other => Err(format!("Counter has no operation `{other}` (add, reset, get, delete)")),
    }
}

/// `CountTo`'s input.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct CountTo {
    /// The counter's key.
    pub key: String,
    /// How many `add 1` signals to send.
    pub adds: u32,
}

/// `CountTo`: signals `add 1` to the counter `key` `adds` times, then calls `get`. An
/// orchestration's operations on one entity apply in the order it makes them, so the answer
/// includes every one of its signals.
pub async fn count_to(
    ctx: azfn::durable::OrchestrationContext,
    input: CountTo,
) -> Result<i64, azfn::durable::TaskError> {
    let counter = azfn::durable::EntityId::new("Counter", &input.key);
    for _ in 0..input.adds {
        ctx.signal_entity(&counter, "add", 1);
    }
    ctx.call_entity(&counter, "get", ()).await
}
