//! `PlaceOrders`: one `PlaceOrderSaga` sub-orchestration per order, run in parallel.

use azfn::durable::{OrchestrationContext, TaskError, join_all};
use serde_json::{Value, json};

use super::place_order_saga::PlaceOrder;

/// Places every order as a sub-orchestration and reports how many shipped and how many were cancelled.
pub async fn place_orders(ctx: OrchestrationContext, orders: Vec<PlaceOrder>) -> Result<Value, TaskError> {
    let runs = orders.iter().map(|o| ctx.call_sub_orchestrator::<Value>("PlaceOrderSaga", o));
    let mut shipped = Vec::new();
    let mut cancelled = Vec::new();
    for (order, result) in orders.iter().zip(join_all(runs).await) {
        match result?["status"].as_str() {
            Some("shipped") => shipped.push(order.order_id.clone()),
            _ => cancelled.push(order.order_id.clone()),
        }
    }
    Ok(json!({ "shipped": shipped, "cancelled": cancelled }))
}
