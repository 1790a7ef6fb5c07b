//! `PlaceOrderSaga`: reserve inventory, charge the card, ship; when a step fails, the steps done so
//! far are compensated in reverse order.

use azfn::durable::{ActivityContext, OrchestrationContext, Saga, TaskError};
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
    /// The card to charge; `"declined"` makes the charge fail.
    pub card: String,
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
        let payment: String = ctx.call_activity("ChargePayment", &order).await?;
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
            Ok(json!({ "status": "cancelled", "compensated": compensated }))
        }
    }
}

/// Reserves stock; returns a reservation id.
pub async fn reserve_inventory(_ctx: ActivityContext, order: PlaceOrder) -> Result<String, String> {
    Ok(format!("res-{}", order.order_id))
}

/// Charges the card; a card `"declined"` is refused.
pub async fn charge_payment(_ctx: ActivityContext, order: PlaceOrder) -> Result<String, String> {
    if order.card == "declined" {
        return Err(format!("the card for order {} was declined", order.order_id));
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
