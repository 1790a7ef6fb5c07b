//! `ApprovalWorkflow`: waits for a human's "Approval" event, or gives up after a timeout.

use std::time::Duration;

use azfn::durable::{OrchestrationContext, TaskError};
use serde::Deserialize;
use serde_json::{Value, json};

/// The workflow's input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    /// How long to wait for the event.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    3600
}

/// Waits for the event `Approval` (its data is the decision); answers
/// `{status: "approved"|"rejected", decision}` or `{status: "timedOut"}`.
pub async fn approval_workflow(ctx: OrchestrationContext, request: ApprovalRequest) -> Result<Value, TaskError> {
    ctx.set_custom_status("waiting for approval");
    let timeout = Duration::from_secs(request.timeout_seconds);
    match ctx.wait_for_event_with_timeout::<Value>("Approval", timeout).await? {
        Some(decision) => {
            let approved = match &decision {
                Value::Bool(b) => *b,
                Value::Object(m) => m.get("approved").and_then(Value::as_bool).unwrap_or(false),
                Value::String(s) => s.eq_ignore_ascii_case("approved") || s.eq_ignore_ascii_case("yes"),
                _ => false,
            };
            ctx.set_custom_status("decided");
            Ok(json!({ "status": if approved { "approved" } else { "rejected" }, "decision": decision }))
        }
        None => {
            ctx.set_custom_status("timed out");
            Ok(json!({ "status": "timedOut" }))
        }
    }
}
