//! `PlaceOrderSaga`: reserve inventory, charge the card, ship; when a step fails, the steps done so
//! far are compensated in reverse order. The payment service is guarded by the `CircuitBreaker`
//! entity `payments`: while it is open, orders are cancelled at once instead of waiting on a
//! service that keeps failing.

use azfn::durable::{ActivityContext, EntityId, OrchestrationContext, Saga, TaskError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The saga's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrder {
    /// The order.
    pub order_id: String,
    /// What to reserve.
    #[serde(default)]
    pub sku: String,
    /// How many.
    #[serde(default = "one")]
    pub quantity: u32,
    /// The card to charge; `"declined"` makes the charge fail (a refusal), `"unavailable"` as if the
    /// payment service were down (a failure the circuit breaker counts).
    pub card: String,
    /// The payment circuit breaker's settings (default: opens after 3 failures, for 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<super::circuit_breaker::Settings>,
}

fn one() -> u32 {
    1
}

/// Runs the three steps; on failure answers `{status: "cancelled", compensated: [...]}`.
pub async fn place_order_saga(ctx: OrchestrationContext, order: PlaceOrder) -> Result<Value, TaskError> {
    let mut saga = Saga::new();
    let steps = async {
        let reservation: String = ctx.call_activity("ReserveInventory", &order).await?;
        saga.add_compensation("ReleaseInventory", &reservation);
        let breaker = EntityId::new("CircuitBreaker", "payments");
        let settings = order.breaker.unwrap_or_default();
        if !ctx.call_entity::<bool>(&breaker, "allow", settings).await? {
            return Err(TaskError::new("the payment service is failing (circuit open); not tried"));
        }
        let payment: String = match ctx.call_activity("ChargePayment", &order).await {
            Ok(p) => {
                ctx.signal_entity(&breaker, "success", ());
                p
            }
            Err(e) => {
                // A refused card is an answer; anything else counts against the service.
                let outcome = if e.message.contains("declined") { "success" } else { "failure" };
                ctx.signal_entity(&breaker, outcome, ());
                return Err(e);
            }
        };
        let tracking: String = ctx.call_activity("ShipOrder", &order).await?;
        Ok::<_, TaskError>(json!({
            "status": "shipped", "orderId": order.order_id, "reservation": reservation, "payment": payment,
            "tracking": tracking,
        }))
    };
    match steps.await {
        Ok(done) => Ok(done),
        Err(failure) => {
            ctx.log(format_args!("order {} failed: {failure}; compensating", order.order_id));
            let compensated = saga.compensate(&ctx).await?;
            Ok(json!({ "status": "cancelled", "reason": failure.message, "compensated": compensated }))
        }
    }
}

/// Reserves stock; returns a reservation id.
pub async fn reserve_inventory(_ctx: ActivityContext, order: PlaceOrder) -> Result<String, String> {
    Ok(format!("res-{}", order.order_id))
}

/// Charges the card; a card `"declined"` is refused.
pub async fn charge_payment(_ctx: ActivityContext, order: PlaceOrder) -> Result<String, String> {
    match order.card.as_str() {
        "declined" => return Err(format!("the card for order {} was declined", order.order_id)),
        "unavailable" => return Err("the payment service did not answer".to_owned()),
        _ => {}
    }
    Ok(format!("pay-{}", order.order_id))
}

/// Ships the order; returns a tracking number.
pub async fn ship_order(_ctx: ActivityContext, order: PlaceOrder) -> Result<String, String> {
    Ok(format!("trk-{}", order.order_id))
}

/// Gives back a reservation.
pub async fn release_inventory(_ctx: ActivityContext, reservation: String) -> Result<String, String> {
    Ok(format!("released {reservation}"))
}
