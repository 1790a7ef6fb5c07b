//! Helpers for the host's unit tests: the host-shaped fixtures in the workspace's `tests/fixtures/`.

use azfn::BindError;
use azfn::function_json::Binding;
use azfn::triggers::{FromTrigger, TriggerInput};
use serde_json::{Map, Value};

/// Reads a fixture from the workspace's `tests/fixtures/`.
pub fn fixture(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/").to_owned() + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A trigger binding of type `ty` named `name`, with extra properties.
pub fn binding(ty: &str, name: &str, extra: Value) -> Binding {
    let mut v = serde_json::json!({"type": ty, "name": name, "direction": "in"});
    v.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::from_value(v).unwrap()
}

/// Parses `T` from a request fixture's `Data[name]` and `Metadata`.
pub fn parse<T: FromTrigger>(request: &Value, binding: &Binding) -> Result<T, BindError> {
    let empty = Map::new();
    let raw = request["Data"].get(&binding.name).map(|v| serde_json::value::to_raw_value(v).unwrap());
    let input = TriggerInput::new(binding, raw.as_deref(), request["Metadata"].as_object().unwrap_or(&empty));
    T::from_trigger(&input)
}
