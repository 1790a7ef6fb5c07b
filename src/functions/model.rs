//! The orders app's data: a new order as callers send it, validated; the queued order; the receipt.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most lines an order may have.
const MAX_LINES: usize = 100;
/// Most of one item an order line may ask for.
const MAX_QUANTITY: u64 = 1000;
/// Highest unit price, in minor units (cents).
const MAX_UNIT_PRICE_CENTS: i64 = 100_000_000;

/// One line of an order, with its price in minor units (cents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// The stock-keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: u64,
    /// Price of one, in cents.
    pub unit_price_cents: i64,
}

/// An accepted order, as it travels on the `orders` queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The id CreateOrder gave it.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// The lines.
    pub items: Vec<Line>,
    /// When it was accepted (RFC 3339).
    pub created_at: String,
}

impl Order {
    /// The order's total in cents.
    pub fn total_cents(&self) -> i64 {
        self.items.iter().map(|l| l.unit_price_cents * l.quantity as i64).sum()
    }

    /// Checks an order read back from the queue: a message that was not written by CreateOrder fails here.
    pub fn check(&self) -> Result<(), String> {
        if self.order_id.is_empty() || self.items.is_empty() || self.currency.len() != 3 {
            return Err(format!(
                "order {:?} is incomplete (needs an id, a currency and at least one line)",
                self.order_id
            ));
        }
        Ok(())
    }
}

/// One reason a new order was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: `customerId`, `items[0].quantity`, ...
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Validates a new order as a caller sent it (`{customerId, items: [{sku, quantity, unitPrice}], currency}`)
/// and returns its parts, or every problem found.
pub fn validate(body: &Value) -> Result<(String, String, Vec<Line>), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem =
        |field: &str, message: &str| problems.push(Problem { field: field.to_owned(), message: message.to_owned() });
    let Some(obj) = body.as_object() else {
        problem("", "the order should be a JSON object");
        return Err(problems);
    };

    let customer_id = match obj.get("customerId") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 64 => s.trim().to_owned(),
        Some(Value::String(_)) => {
            problem("customerId", "should be 1 to 64 characters");
            String::new()
        }
        None | Some(Value::Null) => {
            problem("customerId", "is required");
            String::new()
        }
        Some(other) => {
            problem("customerId", &format!("should be a string, not {}", azfn::error::json_kind(other)));
            String::new()
        }
    };

    let currency = match obj.get("currency") {
        Some(Value::String(s)) if s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()) => s.clone(),
        None | Some(Value::Null) => {
            problem("currency", "is required: a three-letter ISO 4217 code such as EUR");
            String::new()
        }
        Some(_) => {
            problem("currency", "should be a three-letter ISO 4217 code such as EUR");
            String::new()
        }
    };

    let mut lines = Vec::new();
    match obj.get("items") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_LINES => {
            for (i, item) in items.iter().enumerate() {
                let at = |f: &str| format!("items[{i}].{f}");
                let sku = match item.get("sku") {
                    Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 64 => Some(s.trim().to_owned()),
                    _ => {
                        problem(&at("sku"), "is required and should be a string of 1 to 64 characters");
                        None
                    }
                };
                let quantity = match item.get("quantity").and_then(Value::as_u64) {
                    Some(q) if (1..=MAX_QUANTITY).contains(&q) => Some(q),
                    _ => {
                        problem(&at("quantity"), &format!("should be a whole number from 1 to {MAX_QUANTITY}"));
                        None
                    }
                };
                let price = match item.get("unitPrice").and_then(Value::as_f64) {
                    Some(p) if p.is_finite() && p >= 0.0 && ((p * 100.0).round() - p * 100.0).abs() < 1e-6 => {
                        let cents = (p * 100.0).round() as i64;
                        if cents > MAX_UNIT_PRICE_CENTS {
                            problem(&at("unitPrice"), "is too high");
                            None
                        } else {
                            Some(cents)
                        }
                    }
                    _ => {
                        problem(&at("unitPrice"), "should be a non-negative amount with at most two decimals");
                        None
                    }
                };
                if let (Some(sku), Some(quantity), Some(unit_price_cents)) = (sku, quantity, price) {
                    lines.push(Line { sku, quantity, unit_price_cents });
                }
            }
        }
        Some(Value::Array(items)) if items.len() > MAX_LINES => {
            problem("items", &format!("has more than {MAX_LINES} lines"))
        }
        _ => problem("items", "is required and should be a non-empty array"),
    }

    if problems.is_empty() { Ok((customer_id, currency, lines)) } else { Err(problems) }
}

/// Cents as a decimal amount (`1998` gives `19.98`).
pub fn amount(cents: i64) -> f64 {
    cents as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_order() {
        let (customer, currency, lines) = validate(
            &json!({"customerId": "c-1", "currency": "EUR", "items": [{"sku": "a", "quantity": 2, "unitPrice": 9.99}]}),
        )
        .unwrap();
        assert_eq!((customer.as_str(), currency.as_str()), ("c-1", "EUR"));
        assert_eq!(lines, [Line { sku: "a".into(), quantity: 2, unit_price_cents: 999 }]);
    }

    #[test]
    fn every_problem_is_reported() {
        let problems =
            validate(&json!({"currency": "euro", "items": [{"sku": "", "quantity": 0, "unitPrice": 1.234}]}))
                .unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["customerId", "currency", "items[0].sku", "items[0].quantity", "items[0].unitPrice"]);
        assert_eq!(validate(&json!([])).unwrap_err()[0].message, "the order should be a JSON object");
        assert_eq!(
            validate(&json!({"customerId": "c", "currency": "EUR", "items": []})).unwrap_err()[0].field,
            "items"
        );
    }

    #[test]
    fn totals_in_cents() {
        let order = Order {
            order_id: "o".into(),
            customer_id: "c".into(),
            currency: "EUR".into(),
            items: vec![
                Line { sku: "a".into(), quantity: 3, unit_price_cents: 10 },
                Line { sku: "b".into(), quantity: 1, unit_price_cents: 5 },
            ],
            created_at: String::new(),
        };
        assert_eq!(order.total_cents(), 35);
        assert_eq!(amount(1998), 19.98);
    }
}
