//! `Restock`: quotes a restock, then orders it from the warehouse service over HTTP. When the
//! warehouse is down the order fails and so does the instance; once it is back, rewinding the
//! instance (`POST api/orchestrators/instances/{id}/rewind`) orders again without quoting again.

use std::time::Duration;

use azfn::durable::{ActivityContext, OrchestrationContext, TaskError, join_all};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The app setting with the warehouse service's URL; unset, orders are only logged.
pub const WAREHOUSE_URL: &str = "WAREHOUSE_URL";

/// What to restock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restock {
    /// The item.
    pub sku: String,
    /// How many.
    pub quantity: u32,
}

/// Quotes, then orders: `{quote, warehouseOrder}`. A quantity of 0 is refused by the code itself
/// (a failure a rewind cannot change).
pub async fn restock(ctx: OrchestrationContext, order: Restock) -> Result<Value, TaskError> {
    if order.quantity == 0 {
        return Err(TaskError::new(format!("restock of {}: the quantity must be at least 1", order.sku)));
    }
    let quote: String = ctx.call_activity("QuoteRestock", &order).await?;
    let warehouse_order: String = ctx.call_activity("OrderFromWarehouse", &order).await?;
    Ok(json!({ "quote": quote, "warehouseOrder": warehouse_order }))
}

/// `RestockAll`: one `Restock` sub-orchestration per item, in parallel; their outputs in order.
/// One failed restock fails it; rewinding it rewinds the failed restocks with it.
pub async fn restock_all(ctx: OrchestrationContext, orders: Vec<Restock>) -> Result<Vec<Value>, TaskError> {
    let runs = orders.iter().map(|o| ctx.call_sub_orchestrator::<Value>("Restock", o));
    join_all(runs).await.into_iter().collect()
}

/// Prices the restock (here, a fixed price per unit).
pub async fn quote_restock(_ctx: ActivityContext, order: Restock) -> Result<String, String> {
    tracing::info!(sku = %order.sku, "quoting a restock");
    Ok(format!("{} x {} at 4.20", order.quantity, order.sku))
}

/// Orders from the warehouse: `POST {WAREHOUSE_URL}` with the order, the call's idempotency key
/// in `Idempotency-Key`; the answer's body is the warehouse's order id. An error status or no
/// answer within 10 s fails the call.
pub async fn order_from_warehouse(ctx: ActivityContext, order: Restock) -> Result<String, String> {
    let Ok(url) = std::env::var(WAREHOUSE_URL) else {
        tracing::info!(sku = %order.sku, "no {WAREHOUSE_URL}: the order is only logged");
        return Ok(format!("logged-{}", ctx.idempotency_key()));
    };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let res = http
        .post(&url)
        .header("idempotency-key", ctx.idempotency_key())
        .json(&order)
        .send()
        .await
        .map_err(|e| format!("the warehouse at {url} did not answer: {e}"))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("the warehouse answered {status}: {body}"));
    }
    Ok(body)
}
