//! `GetOrder`: `GET /api/orders/{id}` answers the stored order from the `orders` table, or 404.

use azfn::{Context, HttpRequest, HttpResponse};

use super::process_order::OrderRow;

/// Reads the table input `order` (partition `orders`, row `{id}`), which the host fills in.
pub async fn get_order(req: HttpRequest, ctx: Context) -> Result<HttpResponse, azfn::Error> {
    let id = req.param("id").unwrap_or_default();
    Ok(match ctx.input::<OrderRow>("order")? {
        Some(row) => HttpResponse::ok().json(&row.view()?),
        None => HttpResponse::error(http::StatusCode::NOT_FOUND, "not_found", format!("no order with id {id:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_support::*;
    use serde_json::{Map, Value, json};

    #[tokio::test]
    async fn found_and_not_found() {
        let row = json!({"PartitionKey": "orders", "RowKey": "o-1", "customerId": "c", "currency": "EUR", "total": 3.0,
                         "items": "[{\"sku\":\"s\",\"quantity\":2,\"unitPriceCents\":150}]", "status": "processed",
                         "receipt": "receipts/o-1.json", "createdAt": "2024-05-01T10:00:00+00:00"});
        let inputs: Map<String, Value> = [("order".to_owned(), row)].into_iter().collect();
        let ctx = azfn::Context::with_data(spec("GetOrder"), "id", Map::new(), inputs);
        let res = get_order(http_request("GET", "http://x/api/orders/o-1", None), ctx).await.unwrap();
        assert_eq!(res.status, 200);
        let body: Value = serde_json::from_slice(&res.body).unwrap();
        assert_eq!(body["orderId"], "o-1");
        assert_eq!(body["items"][0]["unitPrice"], 1.5);

        let res = get_order(http_request("GET", "http://x/api/orders/nope", None), context("GetOrder")).await.unwrap();
        assert_eq!(res.status, 404);
    }
}
