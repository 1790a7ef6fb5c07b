//! `ProcessOrder`: a queue trigger on `orders` that writes the receipt blob and the order's table row.

use azfn::{Context, QueueMessage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{Line, Order, amount};

/// The receipt written to `receipts/{orderId}.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The order.
    pub order_id: String,
    /// The sum of the line totals.
    pub total: f64,
    /// ISO 4217 code.
    pub currency: String,
    /// One entry per order line.
    pub lines: Vec<ReceiptLine>,
}

/// A receipt line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptLine {
    /// The stock-keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: u64,
    /// Price of one.
    pub unit_price: f64,
    /// `quantity * unitPrice`.
    pub line_total: f64,
}

/// The row in the `orders` table that GetOrder reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRow {
    /// Always `orders`.
    #[serde(rename = "PartitionKey")]
    pub partition_key: String,
    /// The order id.
    #[serde(rename = "RowKey")]
    pub row_key: String,
    /// Who ordered.
    #[serde(rename = "customerId")]
    pub customer_id: String,
    /// ISO 4217 code.
    pub currency: String,
    /// The total.
    pub total: f64,
    /// The lines as JSON text (table properties cannot hold arrays).
    pub items: String,
    /// `processed`.
    pub status: String,
    /// The receipt's blob path.
    pub receipt: String,
    /// When the order was accepted.
    #[serde(rename = "createdAt")]
    pub created_at: String,
}

impl OrderRow {
    /// The order as GetOrder answers it.
    pub fn view(&self) -> Result<Value, serde_json::Error> {
        let lines: Vec<Line> = serde_json::from_str(&self.items)?;
        let items: Vec<Value> = lines
            .iter()
            .map(|l| json!({"sku": l.sku, "quantity": l.quantity, "unitPrice": amount(l.unit_price_cents)}))
            .collect();
        Ok(json!({
            "orderId": self.row_key, "customerId": self.customer_id, "currency": self.currency, "items": items,
            "total": self.total, "status": self.status, "receipt": self.receipt, "createdAt": self.created_at,
        }))
    }
}

/// Computes the total, writes the receipt (blob output `receipt`) and the row (table output `row`).
/// A message that is not a valid order fails, so after `maxDequeueCount` tries it lands in `orders-poison`.
pub async fn process_order(msg: QueueMessage<Order>, ctx: Context) -> Result<(), azfn::Error> {
    let order = msg.body;
    if let Err(e) = order.check() {
        // Under a retry policy (function.json `retry`), say which retry this was.
        let retry = ctx
            .retry_context()
            .filter(|r| r.retry_count > 0)
            .map(|r| format!(" (retry {} of {})", r.retry_count, r.max_retry_count));
        tracing::warn!(order_id = %order.order_id, attempt = msg.dequeue_count, "order refused{}: {e}", retry.unwrap_or_default());
        return Err(e.into());
    }
    let receipt = Receipt {
        order_id: order.order_id.clone(),
        total: amount(order.total_cents()),
        currency: order.currency.clone(),
        lines: order
            .items
            .iter()
            .map(|l| ReceiptLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                unit_price: amount(l.unit_price_cents),
                line_total: amount(l.unit_price_cents * l.quantity as i64),
            })
            .collect(),
    };
    ctx.write_blob_json("receipt", &receipt)?;
    // Upsert: a redelivered message writes the same row again instead of failing with 409.
    ctx.upsert_entity(
        "row",
        &OrderRow {
            partition_key: "orders".into(),
            row_key: order.order_id.clone(),
            customer_id: order.customer_id.clone(),
            currency: order.currency.clone(),
            total: receipt.total,
            items: serde_json::to_string(&order.items)?,
            status: "processed".into(),
            receipt: format!("receipts/{}.json", order.order_id),
            created_at: order.created_at.clone(),
        },
    )?;
    tracing::info!(order_id = %order.order_id, total = receipt.total, attempt = msg.dequeue_count, "order processed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_support::*;
    use azfn::FromTrigger as _;

    fn message(text: &str) -> Result<QueueMessage<Order>, azfn::BindError> {
        let spec = spec("ProcessOrder");
        let value = Value::String(serde_json::to_string(text).unwrap());
        let meta = serde_json::Map::new();
        QueueMessage::from_trigger(&azfn::triggers::TriggerInput::new(
            spec.trigger(),
            Some(&serde_json::value::to_raw_value(&value).unwrap()),
            &meta,
        ))
    }

    #[tokio::test]
    async fn writes_receipt_and_row() {
        let ctx = context("ProcessOrder");
        let msg = message(r#"{"orderId":"o-1","customerId":"c","currency":"EUR","items":[{"sku":"s","quantity":2,"unitPriceCents":150}],"createdAt":"t"}"#).unwrap();
        process_order(msg, ctx.clone()).await.unwrap();
        let written = ctx.outputs();
        let receipt: Receipt = written.blob_json("receipt").unwrap().expect("a receipt");
        assert_eq!(receipt.total, 3.0);
        assert_eq!(written.entities("row")[0]["RowKey"], "o-1");
    }

    #[test]
    fn a_message_that_is_not_an_order_does_not_bind() {
        let err = message("not an order").unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }

    #[tokio::test]
    async fn an_incomplete_order_fails() {
        let msg = message(r#"{"orderId":"","customerId":"c","currency":"EUR","items":[],"createdAt":"t"}"#).unwrap();
        assert!(process_order(msg, context("ProcessOrder")).await.is_err());
    }
}
