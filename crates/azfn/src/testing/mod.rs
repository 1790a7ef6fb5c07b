//! Helpers for unit tests of handlers, without a host: a function's context and a trigger built
//! from a payload shaped as the host sends it, both from the function's real function.json; and
//! what the handler wrote to its outputs, decoded back ([`Context::outputs`], [`outputs_of`]); and a
//! stand-in for the task hub behind [`Context::durable`] ([`DurableRecorder`]).
//!
//! Paths are relative to the current directory, which `cargo test` sets to the package root.
//!
//! ```no_run
//! use azfn::{QueueMessage, testing};
//! use serde_json::json;
//!
//! let msg: QueueMessage<String> = testing::trigger("ProcessOrder", json!("\"hello\""), json!({"DequeueCount": "1"}));
//! let ctx = testing::context("ProcessOrder");
//! // ... run the handler with `msg` and `ctx`, then:
//! let receipt: Option<serde_json::Value> = ctx.outputs().blob_json("receipt").unwrap();
//! ```

mod durable;

pub use durable::DurableRecorder;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::context::Context;
use crate::encoding::{decode_base64, value_text};
use crate::function_json::FunctionSpec;
use crate::http::HttpResponse;
use crate::outputs::IntoOutputs;
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

/// A binding as function.json declares it: type `ty`, name `name`, direction `in`, with the extra
/// properties of `extra` (an object).
///
/// ```
/// let b = azfn::testing::binding("queueTrigger", "msg", serde_json::json!({"queueName": "orders"}));
/// assert_eq!(b.property("queueName"), Some("orders"));
/// ```
pub fn binding(ty: &str, name: &str, extra: Value) -> crate::function_json::Binding {
    let mut v = serde_json::json!({"type": ty, "name": name, "direction": "in"});
    if let (Some(target), Value::Object(more)) = (v.as_object_mut(), extra) {
        target.extend(more);
    }
    serde_json::from_value(v).unwrap_or_else(|e| panic!("binding {name:?} of type {ty:?}: {e}"))
}

/// The trigger `T` for `binding`, from a whole invocation body as the host sends it
/// (`{"Data": {<binding name>: ...}, "Metadata": {...}}`, e.g. a fixture); the binding error when
/// it does not fit.
pub fn trigger_from_invocation<T: FromTrigger>(
    invocation: &Value,
    binding: &crate::function_json::Binding,
) -> Result<T, crate::BindError> {
    let empty = Map::new();
    let raw =
        invocation["Data"].get(&binding.name).map(|v| serde_json::value::to_raw_value(v).expect("a Value serializes"));
    let metadata = invocation["Metadata"].as_object().unwrap_or(&empty);
    T::from_trigger(&TriggerInput::new(binding, raw.as_deref(), metadata))
}

/// What a handler wrote to its output bindings, decoded back from the form sent to the host:
/// messages as their text, blobs as their bytes, table rows as objects, the HTTP response as it
/// was built. Get it with [`Context::outputs`] or [`outputs_of`].
#[derive(Debug, Clone)]
pub struct Written {
    values: Map<String, Value>,
    binary: Vec<String>,
    http: Option<HttpResponse>,
}

/// A value in [`Written`] that does not decode as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("output `{binding}`: {message}")]
pub struct DecodeError {
    /// The output binding.
    pub binding: String,
    /// What went wrong.
    pub message: String,
}

impl Written {
    pub(crate) fn new(values: Map<String, Value>, spec: &FunctionSpec, http: Option<HttpResponse>) -> Self {
        let binary = spec.outputs().filter(|b| b.is_binary()).map(|b| b.name.clone()).collect();
        Self { values, binary, http }
    }

    fn error(binding: &str, message: impl Into<String>) -> DecodeError {
        DecodeError { binding: binding.to_owned(), message: message.into() }
    }

    /// The messages sent to a queue, Service Bus or other message output, as text, in order.
    pub fn messages(&self, binding: &str) -> Vec<String> {
        match self.values.get(binding) {
            Some(Value::Array(items)) => items.iter().filter_map(|v| value_text(v).map(|t| t.into_owned())).collect(),
            Some(other) => value_text(other).map(|t| vec![t.into_owned()]).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The messages of a message output, each parsed as JSON into `T`.
    pub fn messages_json<T: DeserializeOwned>(&self, binding: &str) -> Result<Vec<T>, DecodeError> {
        self.messages(binding)
            .iter()
            .map(|m| {
                serde_json::from_str(m).map_err(|e| Self::error(binding, format!("message {m:?} is not the type: {e}")))
            })
            .collect()
    }

    /// The bytes written to a blob output, if any.
    pub fn blob(&self, binding: &str) -> Result<Option<Vec<u8>>, DecodeError> {
        let Some(value) = self.values.get(binding) else { return Ok(None) };
        let Value::String(text) = value else { return Err(Self::error(binding, "not a blob value")) };
        if self.binary.iter().any(|b| b == binding) {
            return Ok(Some(text.clone().into_bytes()));
        }
        decode_base64(text).map(Some).ok_or_else(|| Self::error(binding, "the blob value is not base64"))
    }

    /// The text written to a blob output, if any.
    pub fn blob_text(&self, binding: &str) -> Result<Option<String>, DecodeError> {
        self.blob(binding)?
            .map(|b| String::from_utf8(b).map_err(|_| Self::error(binding, "the blob is not UTF-8 text")))
            .transpose()
    }

    /// The JSON written to a blob output, parsed into `T`, if any.
    pub fn blob_json<T: DeserializeOwned>(&self, binding: &str) -> Result<Option<T>, DecodeError> {
        self.blob(binding)?
            .map(|b| {
                serde_json::from_slice(&b).map_err(|e| Self::error(binding, format!("the blob is not the type: {e}")))
            })
            .transpose()
    }

    /// The rows written to a table output, in order.
    pub fn entities(&self, binding: &str) -> Vec<Map<String, Value>> {
        match self.values.get(binding) {
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_object().cloned()).collect(),
            Some(Value::Object(o)) => vec![o.clone()],
            _ => Vec::new(),
        }
    }

    /// The rows of a table output, each parsed into `T`.
    pub fn entities_as<T: DeserializeOwned>(&self, binding: &str) -> Result<Vec<T>, DecodeError> {
        self.entities(binding)
            .into_iter()
            .map(|e| {
                serde_json::from_value(Value::Object(e))
                    .map_err(|e| Self::error(binding, format!("a row is not the type: {e}")))
            })
            .collect()
    }

    /// The value set for any output, as it will be sent (`$return` included).
    pub fn raw(&self, binding: &str) -> Option<&Value> {
        self.values.get(binding)
    }

    /// The HTTP response, when the handler returned one.
    pub fn http(&self) -> Option<&HttpResponse> {
        self.http.as_ref()
    }

    /// The HTTP response's body parsed as JSON into `T`.
    pub fn http_json<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        let res = self.http.as_ref().ok_or_else(|| Self::error("http", "the handler returned no HTTP response"))?;
        serde_json::from_slice(&res.body).map_err(|e| Self::error("http", format!("the body is not the type: {e}")))
    }
}

/// Records a handler's returned value (an [`HttpResponse`], a [`crate::Return`], `()`, or a pair)
/// on `ctx`, as the runtime does after the handler returns, and gives everything written, decoded.
///
/// ```no_run
/// use azfn::{Context, HttpRequest, HttpResponse, testing};
///
/// async fn create(req: HttpRequest, ctx: Context) -> Result<HttpResponse, azfn::Error> {
///     ctx.send_json("orders", &serde_json::json!({"id": 1}))?;
///     Ok(HttpResponse::created().json(&serde_json::json!({"id": 1})))
/// }
///
/// # async fn test(req: HttpRequest) {
/// let ctx = testing::context("CreateOrder");
/// let res = create(req, ctx.clone()).await.unwrap();
/// let written = testing::outputs_of(res, &ctx);
/// assert_eq!(written.http().unwrap().status, 201);
/// assert_eq!(written.messages("orders"), [r#"{"id":1}"#]);
/// # }
/// ```
pub fn outputs_of<R: IntoOutputs>(returned: R, ctx: &Context) -> Written {
    returned.into_outputs(ctx).unwrap_or_else(|e| panic!("{e}"));
    ctx.outputs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        let text = json!({"bindings": [
            {"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": "in"},
            {"type": "queue", "direction": "out", "name": "jobs", "queueName": "jobs"},
            {"type": "blob", "direction": "out", "name": "receipt", "path": "r/{id}"},
            {"type": "blob", "direction": "out", "name": "note", "path": "n/{id}", "dataType": "binary"},
            {"type": "table", "direction": "out", "name": "row", "tableName": "t"}
        ]});
        let spec = FunctionSpec::parse("F", std::path::Path::new("F/function.json"), &text.to_string()).unwrap();
        Context::new(spec, "id")
    }

    #[test]
    fn outputs_decode_back_to_what_the_handler_wrote() {
        let ctx = ctx();
        ctx.send_json("jobs", &json!({"job": 1})).unwrap();
        ctx.send_text("jobs", "plain").unwrap();
        ctx.write_blob_json("receipt", &json!({"total": 3})).unwrap();
        ctx.write_blob("note", "hi").unwrap();
        ctx.insert_entity("row", &json!({"PartitionKey": "p", "RowKey": "r", "n": 1})).unwrap();
        let w = ctx.outputs();
        assert_eq!(w.messages("jobs"), [r#"{"job":1}"#, "plain"]);
        assert!(w.messages_json::<Value>("jobs").unwrap_err().to_string().contains("output `jobs`"));
        assert_eq!(w.blob_json::<Value>("receipt").unwrap(), Some(json!({"total": 3})));
        assert_eq!(w.blob_text("note").unwrap().as_deref(), Some("hi"));
        assert_eq!(w.blob("missing").unwrap(), None);
        assert_eq!(w.entities("row")[0]["RowKey"], "r");
        assert!(w.http().is_none());
    }

    #[test]
    fn a_returned_response_is_recorded() {
        let text = json!({"bindings": [
            {"type": "httpTrigger", "direction": "in", "name": "req"},
            {"type": "http", "direction": "out", "name": "res"}
        ]});
        let spec = FunctionSpec::parse("H", std::path::Path::new("H/function.json"), &text.to_string()).unwrap();
        let ctx = Context::new(spec, "id");
        let w = outputs_of(HttpResponse::created().json(&json!({"id": 7})), &ctx);
        assert_eq!(w.http().unwrap().status, 201);
        assert_eq!(w.http_json::<Value>().unwrap()["id"], 7);
    }
}
