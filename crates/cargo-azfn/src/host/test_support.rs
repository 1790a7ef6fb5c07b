//! Helpers for the host's unit tests: the host-shaped fixtures in the workspace's `tests/fixtures/`.

pub use azfn::testing::{binding, trigger_from_invocation as parse};
use serde_json::Value;

/// Reads a fixture from the workspace's `tests/fixtures/`.
pub fn fixture(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/").to_owned() + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}
