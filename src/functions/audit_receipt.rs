//! `AuditReceipt`: checks that each receipt written to `receipts/` adds up.
//!
//! It is a queue trigger on `receipt-events`, where Event Grid puts a `Microsoft.Storage.BlobCreated`
//! event for every blob written to `receipts/` (the storage account's system topic and its
//! subscription in `infra/main.bicep`). The handler reads the blob the event names, with the app's
//! own storage connection. This works the same on every hosting plan and needs no key: Flex
//! Consumption has no polling blob trigger, and the Event Grid blob trigger would need the
//! `blobs_extension` key in its subscription (docs/adr/0004-blob-events.md). Under `cargo azfn start`
//! the built-in host raises the same events for Azurite (`AZFN_BLOB_EVENTS` in local.settings.json).
//!
//! The handler also takes the polling blob trigger (`"type": "blobTrigger", "path": "receipts/{name}"`
//! in function.json), which Elastic Premium and Consumption still offer: [`ReceiptWritten`] reads
//! whichever trigger function.json declares.

use std::sync::OnceLock;

use azfn::storage::{BlobClient, StorageError};
use azfn::triggers::TriggerInput;
use azfn::{BindError, BlobInput, Context, EventGridEvent, FromTrigger, QueueMessage};
use serde::Deserialize;
use serde_json::Value;

use super::process_order::Receipt;

/// The part of a `Microsoft.Storage.BlobCreated` event's `data` that the audit uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobCreated {
    /// The blob's URL.
    #[serde(default)]
    pub url: String,
}

/// What tells `AuditReceipt` that a receipt was written, by the trigger function.json declares.
#[derive(Debug)]
pub enum ReceiptWritten {
    /// An Event Grid `BlobCreated` event from a queue trigger (every plan).
    Event(EventGridEvent<BlobCreated>),
    /// The blob itself, from a polling blob trigger (Elastic Premium and Consumption only).
    Blob(BlobInput),
}

impl FromTrigger for ReceiptWritten {
    const TRIGGER_TYPE: Option<&'static str> = None;

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        if input.binding.is_type("blobTrigger") {
            return BlobInput::from_trigger(input).map(Self::Blob);
        }
        if !input.binding.is_type("queueTrigger") {
            return Err(BindError::new(format!(
                "AuditReceipt takes a queueTrigger (Event Grid BlobCreated events) or a blobTrigger, not {}",
                input.binding.binding_type
            )));
        }
        let message = QueueMessage::<Value>::from_trigger(input)?;
        EventGridEvent::from_json(message.body)
            .map(Self::Event)
            .map_err(|e| BindError::new(format!("the queue message is not a BlobCreated event: {e}")))
    }
}

/// The blob client of this process, on the `AzureWebJobsStorage` connection.
fn blobs() -> Result<&'static BlobClient, String> {
    static CLIENT: OnceLock<Result<BlobClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let account =
                azfn::storage::resolve("AzureWebJobsStorage", |k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
            BlobClient::new(&account).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Reads the receipt named by the event and logs whether it adds up. An event that is not about a
/// blob in `receipts/` and a blob deleted since are logged and done; a blob that is not a receipt
/// fails, so the host retries it and then moves the event to `receipt-events-poison` (or, for the
/// blob trigger, reports the blob on `webjobs-blobtrigger-poison`).
pub async fn audit_receipt(written: ReceiptWritten, _ctx: Context) -> Result<(), azfn::Error> {
    let event = match written {
        ReceiptWritten::Blob(blob) => return audit(blob.param("name").unwrap_or_default(), &blob.content),
        ReceiptWritten::Event(event) => event,
    };
    if event.event_type != "Microsoft.Storage.BlobCreated" {
        tracing::info!(event_type = %event.event_type, "not a BlobCreated event; ignored");
        return Ok(());
    }
    let subject = event.subject.unwrap_or_default();
    let Some(name) = subject.strip_prefix("/blobServices/default/containers/receipts/blobs/") else {
        tracing::info!(%subject, "a blob outside receipts/; ignored");
        return Ok(());
    };
    match blobs()?.get("receipts", name).await {
        Ok(blob) => audit(name, &blob.content),
        Err(e) if StorageError::is_not_found(&e) => {
            tracing::warn!(blob = %name, "the receipt was deleted before it could be checked");
            Ok(())
        }
        Err(e) => Err(format!("cannot read receipts/{name} ({}): {e}", event.data.url).into()),
    }
}

/// Checks one receipt's lines against its total and logs the outcome.
fn audit(name: &str, content: &[u8]) -> Result<(), azfn::Error> {
    let receipt: Receipt =
        serde_json::from_slice(content).map_err(|e| format!("receipts/{name} is not a receipt: {e}"))?;
    let cents = |x: f64| (x * 100.0).round() as i64;
    let lines_ok = receipt.lines.iter().all(|l| cents(l.unit_price) * l.quantity as i64 == cents(l.line_total));
    let sum: i64 = receipt.lines.iter().map(|l| cents(l.line_total)).sum();
    if lines_ok && sum == cents(receipt.total) {
        tracing::info!(blob = %name, order_id = %receipt.order_id, total = receipt.total, "receipt checked");
    } else {
        tracing::error!(blob = %name, order_id = %receipt.order_id, total = receipt.total, lines = sum as f64 / 100.0, "receipt does not add up");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_support::*;

    #[test]
    fn good_and_bad_receipts() {
        let good = r#"{"orderId":"o-1","total":3.0,"currency":"EUR","lines":[{"sku":"s","quantity":2,"unitPrice":1.5,"lineTotal":3.0}]}"#;
        audit("o-1.json", good.as_bytes()).unwrap();
        let err = audit("o-1.json", b"{}").unwrap_err();
        assert!(err.to_string().contains("receipts/o-1.json is not a receipt"), "{err}");
    }

    fn event(body: Value) -> ReceiptWritten {
        ReceiptWritten::Event(EventGridEvent::from_json(body).unwrap())
    }

    #[test]
    fn reads_the_trigger_that_function_json_declares() {
        use azfn::function_json::Binding;
        let queue: Binding = serde_json::from_value(serde_json::json!({"type": "queueTrigger", "direction": "in", "name": "event", "queueName": "receipt-events"})).unwrap();
        let metadata = serde_json::Map::new();
        let text = serde_json::value::to_raw_value("\"not an event\"").unwrap();
        let err = ReceiptWritten::from_trigger(&TriggerInput::new(&queue, Some(&text), &metadata)).unwrap_err();
        assert!(err.to_string().contains("not a BlobCreated event"), "{err}");
        let timer: Binding =
            serde_json::from_value(serde_json::json!({"type": "timerTrigger", "direction": "in", "name": "t"}))
                .unwrap();
        let err = ReceiptWritten::from_trigger(&TriggerInput::new(&timer, Some(&text), &metadata)).unwrap_err();
        assert!(err.to_string().contains("queueTrigger (Event Grid BlobCreated events) or a blobTrigger"), "{err}");
    }

    #[tokio::test]
    async fn events_that_are_not_about_receipts_are_ignored() {
        let other =
            serde_json::json!({"id": "1", "eventType": "Microsoft.Storage.BlobDeleted", "subject": "x", "data": {}});
        audit_receipt(event(other), context("AuditReceipt")).await.unwrap();
        let elsewhere = serde_json::json!({"id": "2", "eventType": "Microsoft.Storage.BlobCreated",
            "subject": "/blobServices/default/containers/images/blobs/a.png", "data": {"url": "http://x/images/a.png"}});
        audit_receipt(event(elsewhere), context("AuditReceipt")).await.unwrap();
    }
}
