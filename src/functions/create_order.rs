//! `CreateOrder`: `POST /api/orders` validates an order and puts it on the `orders` queue.

use azfn::{Context, HttpRequest, HttpResponse};
use serde_json::{Value, json};

use super::model::{Order, validate};

/// Accepts `{customerId, items: [{sku, quantity, unitPrice}], currency}`: `202 {orderId}` and a
/// message on the queue output `order`, or `400` with every problem found.
pub async fn create_order(req: HttpRequest, ctx: Context) -> Result<HttpResponse, azfn::Error> {
    let body: Value = match req.json() {
        Ok(v) => v,
        Err(e) => return Ok(e.into()),
    };
    let (customer_id, currency, items) = match validate(&body) {
        Ok(parts) => parts,
        Err(problems) => {
            tracing::info!(problems = problems.len(), "order refused");
            return Ok(
                HttpResponse::bad_request().json(&json!({"error": "the order is not valid", "problems": problems}))
            );
        }
    };
    let order = Order {
        order_id: uuid::Uuid::new_v4().to_string(),
        customer_id,
        currency,
        items,
        created_at: chrono::Utc::now().to_rfc3339(),
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
        let (outputs, _) = ctx.wire_outputs().unwrap();
        let queued: Order = serde_json::from_str(outputs["order"][0].as_str().unwrap()).unwrap();
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
        assert_eq!(body["problems"].as_array().unwrap().len(), 3);
        let res = create_order(http_request("POST", "http://x/api/orders", Some("{oops")), ctx.clone()).await.unwrap();
        assert_eq!(res.status, 400);
        assert!(ctx.wire_outputs().unwrap().0.is_empty());
    }
}
