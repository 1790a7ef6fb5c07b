//! `CreateOrder`: `POST /api/orders` validates an order and puts it on the `orders` queue.

use std::sync::OnceLock;

use azfn::idempotency::{IdempotencyStore, fingerprint};
use azfn::{Context, HttpRequest, HttpResponse};
use serde_json::{Value, json};

use super::model::{Order, validate};

/// The idempotency store of this process (`None` when the storage setting is missing).
fn store() -> Option<&'static IdempotencyStore> {
    static STORE: OnceLock<Option<IdempotencyStore>> = OnceLock::new();
    STORE.get_or_init(|| IdempotencyStore::from_env().ok()).as_ref()
}

fn error(status: u16, kind: &str, message: &str) -> HttpResponse {
    let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::error(status, kind, message)
}

/// Accepts `{customerId, items: [{sku, quantity, unitPrice}], currency}`: `202 {orderId}` and a
/// message on the queue output `order`, or `400` with every problem found.
///
/// With an `Idempotency-Key` header, a retried request gets the first one's `orderId` and queues
/// that same order again (in case the host could not write it the first time), so the order exists
/// once: `ProcessOrder` keys its row by the order id. The same key with another body is refused
/// (422); while the first request runs, a retry gets 409.
pub async fn create_order(req: HttpRequest, ctx: Context) -> Result<HttpResponse, azfn::Error> {
    let body: Value = match req.json() {
        Ok(v) => v,
        Err(e) => return Ok(e.into()),
    };
    let (customer_id, currency, items) = match validate(&body) {
        Ok(parts) => parts,
        Err(problems) => {
            tracing::info!(problems = problems.len(), "order refused");
            return Ok(HttpResponse::bad_request().json(&json!({"error": {
                "kind": "invalid_order",
                "message": format!("the order is not valid: {} problems", problems.len()),
                "problems": problems,
            }})));
        }
    };
    let new_order = move || Order {
        order_id: uuid::Uuid::new_v4().to_string(),
        customer_id,
        currency,
        items,
        created_at: chrono::Utc::now().to_rfc3339(),
    };
    let order = match req.header("Idempotency-Key") {
        None => new_order(),
        Some(key) => {
            let Some(store) = store() else {
                return Ok(error(500, "setup", "Idempotency-Key needs the AzureWebJobsStorage setting"));
            };
            let made = store
                .once("CreateOrder", key, &fingerprint(&req.body), || async {
                    Ok::<_, std::convert::Infallible>(new_order())
                })
                .await;
            match made {
                Ok(once) => {
                    if !once.is_first() {
                        tracing::info!(key, "a retried order: answered with the first one");
                    }
                    once.into_value()
                }
                Err(e) => return Ok(error(e.status(), "idempotency", &e.to_string())),
            }
        }
    };
    ctx.send_json("order", &order)?;
    tracing::info!(order_id = %order.order_id, lines = order.items.len(), "order accepted");
    Ok(HttpResponse::accepted()
        .header("Location", &format!("/api/orders/{}", order.order_id))
        .json(&json!({"orderId": order.order_id})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_support::*;

    #[tokio::test]
    async fn a_valid_order_is_queued() {
        let ctx = context("CreateOrder");
        let body = r#"{"customerId":"c-1","currency":"EUR","items":[{"sku":"s","quantity":2,"unitPrice":1.5}]}"#;
        let res = create_order(http_request("POST", "http://localhost:7071/api/orders", Some(body)), ctx.clone())
            .await
            .unwrap();
        assert_eq!(res.status, 202);
        let id = serde_json::from_slice::<Value>(&res.body).unwrap()["orderId"].as_str().unwrap().to_owned();
        let queued: Vec<Order> = ctx.outputs().messages_json("order").unwrap();
        let queued = &queued[0];
        assert_eq!(queued.order_id, id);
        assert_eq!(queued.total_cents(), 300);
    }

    #[tokio::test]
    async fn bad_orders_get_400_with_reasons_and_nothing_is_queued() {
        let ctx = context("CreateOrder");
        let res = create_order(http_request("POST", "http://x/api/orders", Some(r#"{"items":[]}"#)), ctx.clone())
            .await
            .unwrap();
        assert_eq!(res.status, 400);
        let body: Value = serde_json::from_slice(&res.body).unwrap();
        assert_eq!(body["error"]["problems"].as_array().unwrap().len(), 3);
        let res = create_order(http_request("POST", "http://x/api/orders", Some("{oops")), ctx.clone()).await.unwrap();
        assert_eq!(res.status, 400);
        assert!(ctx.outputs().messages("order").is_empty());
    }
}
