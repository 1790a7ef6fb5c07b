//! `OrderSummary`: every 5 minutes, logs how many orders there are and their value per currency.

use std::collections::BTreeMap;

use azfn::{Context, TimerInfo};

use super::process_order::OrderRow;

/// Summarises the table input `orders` (the newest 1000 rows of partition `orders`).
pub async fn order_summary(timer: TimerInfo, ctx: Context) -> Result<(), azfn::Error> {
    if timer.is_past_due {
        tracing::warn!("the summary is running late");
    }
    let rows: Vec<OrderRow> = ctx.input("orders")?.unwrap_or_default();
    let mut per_currency: BTreeMap<&str, (usize, i64)> = BTreeMap::new();
    for row in &rows {
        let entry = per_currency.entry(row.currency.as_str()).or_default();
        entry.0 += 1;
        entry.1 += (row.total * 100.0).round() as i64;
    }
    let totals: Vec<String> =
        per_currency.iter().map(|(c, (n, cents))| format!("{c}: {n} orders, {:.2}", *cents as f64 / 100.0)).collect();
    tracing::info!(
        orders = rows.len(),
        "order summary: {}",
        if totals.is_empty() { "no orders yet".to_owned() } else { totals.join("; ") }
    );
    Ok(())
}
