//! `AuditReceipt`: a blob trigger on `receipts/{name}` that checks each receipt adds up.

use azfn::{BlobInput, Context};

use super::process_order::Receipt;

/// Logs whether the receipt's lines add up to its total. A blob that is not a receipt fails, so the
/// host retries it and then reports it on `webjobs-blobtrigger-poison`.
pub async fn audit_receipt(blob: BlobInput, _ctx: Context) -> Result<(), azfn::Error> {
    let name = blob.param("name").unwrap_or_default().to_owned();
    let receipt: Receipt = blob.json().map_err(|e| format!("receipts/{name} is not a receipt: {e}"))?;
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

    fn blob(content: &str) -> BlobInput {
        BlobInput {
            content: content.as_bytes().to_vec().into(),
            uri: None,
            properties: None,
            metadata: Default::default(),
            params: [("name".to_owned(), "o-1.json".to_owned())].into_iter().collect(),
        }
    }

    #[tokio::test]
    async fn good_and_bad_receipts() {
        let good = r#"{"orderId":"o-1","total":3.0,"currency":"EUR","lines":[{"sku":"s","quantity":2,"unitPrice":1.5,"lineTotal":3.0}]}"#;
        audit_receipt(blob(good), context("AuditReceipt")).await.unwrap();
        let err = audit_receipt(blob("{}"), context("AuditReceipt")).await.unwrap_err();
        assert!(err.to_string().contains("receipts/o-1.json is not a receipt"), "{err}");
    }
}
