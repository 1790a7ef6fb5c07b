//! Helpers for unit tests of handlers: a function's context and a trigger built from a payload
//! shaped as the host sends it, both from the function's real function.json.
//!
//! Paths are relative to the current directory, which `cargo test` sets to the package root.
//!
//! ```no_run
//! use azfn::{QueueMessage, testing};
//! use serde_json::json;
//!
//! let msg: QueueMessage<String> = testing::trigger("ProcessOrder", json!("\"hello\""), json!({"DequeueCount": "1"}));
//! let ctx = testing::context("ProcessOrder");
//! ```

use serde_json::{Map, Value};

use crate::context::Context;
use crate::function_json::FunctionSpec;
use crate::triggers::{FromTrigger, TriggerInput};

/// The spec of `functions/<name>/function.json`. Panics with the reason when it cannot be read.
pub fn spec(name: &str) -> FunctionSpec {
    let path = std::path::Path::new("functions").join(name).join("function.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    FunctionSpec::parse(name, &path, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// A context for the function `name`, with no metadata.
pub fn context(name: &str) -> Context {
    Context::new(spec(name), "00000000-0000-4000-8000-000000000000")
}

/// The trigger `T` of function `name`, built from the `Data` value and `Metadata` object the host
/// would send. Panics with the binding error when the payload does not fit.
pub fn trigger<T: FromTrigger>(name: &str, data: Value, metadata: Value) -> T {
    let spec = spec(name);
    let raw = serde_json::value::to_raw_value(&data).expect("a Value serializes");
    let metadata: Map<String, Value> = match metadata {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    T::from_trigger(&TriggerInput::new(spec.trigger(), Some(&raw), &metadata)).unwrap_or_else(|e| panic!("{e}"))
}
