//! `OrderEvents`: a Service Bus trigger on the queue `order-events`.

use azfn::{Context, ServiceBusMessage};
use serde::Deserialize;

/// An order's status change, as other services publish it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    /// The order.
    pub order_id: String,
    /// Its new status.
    pub status: String,
}

/// Logs the event; a body that is not an `OrderEvent` fails and Service Bus redelivers, then dead-letters it.
pub async fn order_events(msg: ServiceBusMessage<OrderEvent>, _ctx: Context) -> Result<(), azfn::Error> {
    tracing::info!(
        order_id = %msg.body.order_id,
        status = %msg.body.status,
        message_id = msg.message_id.as_deref().unwrap_or("-"),
        deliveries = msg.delivery_count,
        "order event"
    );
    Ok(())
}
