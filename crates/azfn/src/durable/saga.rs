//! Sagas: record a compensating activity after each step that succeeds, and on failure run the
//! compensations in reverse order.

use serde::Serialize;
use serde_json::Value;

use super::context::{OrchestrationContext, TaskError};

/// The compensations recorded so far.
#[derive(Debug, Clone, Default)]
pub struct Saga {
    steps: Vec<(String, Value)>,
}

impl Saga {
    /// A saga with nothing to undo yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `activity` with `input` undoes the step that just succeeded.
    pub fn add_compensation(&mut self, activity: &str, input: impl Serialize) {
        self.steps.push((activity.to_owned(), serde_json::to_value(input).unwrap_or(Value::Null)));
    }

    /// Runs the compensations, last first; returns the names of those that ran, or the first error.
    pub async fn compensate(&mut self, ctx: &OrchestrationContext) -> Result<Vec<String>, TaskError> {
        let mut done = Vec::new();
        while let Some((activity, input)) = self.steps.pop() {
            ctx.schedule_activity(&activity, input).await?;
            done.push(activity);
        }
        Ok(done)
    }
}
