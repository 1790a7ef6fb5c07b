//! `ConfirmOrder`, in two versions: how an orchestrator's steps change without breaking the
//! instances in flight. Each instance runs on the version it started with; new starts take the
//! newest (or `AZFN_DURABLE_DEFAULT_VERSION`).
//!
//! - Version 1 waits for the event `Confirm`, then greets the customer.
//! - Version 2 also counts the units confirmed (the event's data) before it greets: a new first
//!   step, which version 1's histories do not have, so it is a new version, not an edit of 1.

use azfn::durable::{OrchestrationContext, TaskError};
use serde::Deserialize;
use serde_json::{Value, json};

/// The input of both versions.
#[derive(Debug, Clone, Deserialize)]
pub struct Confirmation {
    /// Who is greeted.
    pub customer: String,
}

/// Version 1: `{version: "1", greeting}` once `Confirm` has come.
pub async fn confirm_order_v1(ctx: OrchestrationContext, input: Confirmation) -> Result<Value, TaskError> {
    ctx.set_custom_status("waiting for Confirm");
    let _: Value = ctx.wait_for_event("Confirm").await?;
    let greeting: String = ctx.call_activity("SayHello", &input.customer).await?;
    Ok(json!({ "version": "1", "greeting": greeting }))
}

/// Version 2: `{version: "2", units, greeting}` once `Confirm` has come with the number of units.
pub async fn confirm_order_v2(ctx: OrchestrationContext, input: Confirmation) -> Result<Value, TaskError> {
    ctx.set_custom_status("waiting for Confirm");
    let units: Value = ctx.wait_for_event("Confirm").await?;
    let units: u64 = ctx.call_activity("Number", units.as_u64().unwrap_or(1)).await?;
    let greeting: String = ctx.call_activity("SayHello", &input.customer).await?;
    Ok(json!({ "version": "2", "units": units, "greeting": greeting }))
}
