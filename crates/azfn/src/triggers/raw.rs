//! Any trigger, untyped.

use serde_json::{Map, Value};

use super::{FromTrigger, TriggerInput};
use crate::error::BindError;

/// Any trigger's `Data` value and `Metadata`, as the host sent them: for trigger types azfn has no
/// type for (Cosmos DB, Event Hubs, Kafka, ...).
#[derive(Debug, Clone)]
pub struct RawTrigger {
    /// The function.json trigger type.
    pub trigger_type: String,
    /// `Data[<trigger name>]`, or `null` when absent.
    pub value: Value,
    /// The invocation's `Metadata`.
    pub metadata: Map<String, Value>,
}

impl FromTrigger for RawTrigger {
    const TRIGGER_TYPE: Option<&'static str> = None;

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        Ok(Self {
            trigger_type: input.binding.binding_type.clone(),
            value: input.value()?.unwrap_or(Value::Null),
            metadata: input.metadata().clone(),
        })
    }
}
