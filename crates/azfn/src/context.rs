//! The per-invocation context a handler receives next to its trigger.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::durable::Durable;
use crate::durable::binding::DurableSource;
use crate::encoding::{value_json, value_text};
use crate::error::{BindError, OutputError};
use crate::function_json::{Direction, FunctionSpec};
use crate::metadata::{RetryContext, SysMetadata};
use crate::outputs::Outputs;

/// What a handler knows about its invocation, and where it puts its outputs.
///
/// Cheap to clone; clones share the outputs. Output names are the function.json binding names and
/// are checked as they are set, so a typo fails the invocation with the list of real names instead
/// of being dropped by the host (which matches `Outputs` keys case-sensitively and ignores the rest).
///
/// ```
/// use azfn::{Context, FunctionSpec};
///
/// let spec = FunctionSpec::parse("Enqueue", "Enqueue/function.json".as_ref(), r#"{"bindings": [
///     {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 */5 * * * *"},
///     {"type": "queue", "direction": "out", "name": "jobs", "queueName": "jobs"}]}"#).unwrap();
/// let ctx = Context::new(spec, "3f2c9a57-0000-4000-8000-000000000000");
/// ctx.send_json("jobs", &serde_json::json!({"job": 1})).unwrap();
/// assert!(ctx.send_text("job", "x").is_err());
/// let (outputs, _) = ctx.wire_outputs().unwrap();
/// assert_eq!(outputs["jobs"], serde_json::json!([r#"{"job":1}"#]));
/// ```
#[derive(Debug, Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    invocation_id: String,
    spec: Arc<FunctionSpec>,
    /// `Metadata` as received (a slice of the request body); parsed on first use, because many
    /// handlers never look at it.
    raw_metadata: Option<Bytes>,
    metadata: OnceLock<Map<String, Value>>,
    /// The non-trigger `Data` entries as raw JSON (slices of the request body), parsed when a
    /// handler asks for one.
    inputs: HashMap<String, Bytes>,
    outputs: Mutex<Outputs>,
    /// The lines the handler logged (see [`crate::logs`]).
    logs: Mutex<Option<Vec<String>>>,
    /// What the app shares with every invocation (its durable task hub).
    services: Arc<Services>,
}

/// What an app shares with each of its invocations' contexts.
#[derive(Debug, Default)]
pub(crate) struct Services {
    /// Where `ctx.durable()` goes.
    pub(crate) durable: DurableSource,
    /// The host's HTTP route prefix (host.json `extensions.http.routePrefix`).
    pub(crate) route_prefix: String,
}

impl Services {
    /// The services of an app without any: no durable hub, the default route prefix `api`.
    pub(crate) fn none() -> Arc<Self> {
        static NONE: OnceLock<Arc<Services>> = OnceLock::new();
        NONE.get_or_init(|| Arc::new(Services { durable: DurableSource::None, route_prefix: "api".to_owned() })).clone()
    }
}

impl Context {
    /// A context for `spec` with no metadata: for tests of handlers, and for forwarded HTTP requests.
    pub fn new(spec: FunctionSpec, invocation_id: impl Into<String>) -> Self {
        Self::from_raw(Arc::new(spec), invocation_id.into(), None, HashMap::new(), Services::none())
    }

    /// A context for `spec` with the invocation's `Metadata` and its non-trigger `Data` entries
    /// (input bindings): for tests of handlers that read them.
    pub fn with_data(
        spec: FunctionSpec,
        invocation_id: impl Into<String>,
        metadata: Map<String, Value>,
        inputs: Map<String, Value>,
    ) -> Self {
        let inputs = inputs
            .into_iter()
            .map(|(k, v)| (k, Bytes::from(serde_json::to_vec(&v).expect("a Value always serializes"))))
            .collect();
        let ctx = Self::from_raw(Arc::new(spec), invocation_id.into(), None, inputs, Services::none());
        let _ = ctx.inner.metadata.set(metadata);
        ctx
    }

    pub(crate) fn from_raw(
        spec: Arc<FunctionSpec>,
        invocation_id: String,
        raw_metadata: Option<Bytes>,
        inputs: HashMap<String, Bytes>,
        services: Arc<Services>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                invocation_id,
                spec,
                raw_metadata,
                metadata: OnceLock::new(),
                inputs,
                outputs: Mutex::new(Outputs::default()),
                logs: Mutex::new(Some(Vec::new())),
                services,
            }),
        }
    }

    /// The invocation id (the host's `X-Azure-Functions-InvocationId` header).
    pub fn invocation_id(&self) -> &str {
        &self.inner.invocation_id
    }

    /// The function's name.
    pub fn function_name(&self) -> &str {
        &self.inner.spec.name
    }

    /// The function's metadata from function.json.
    pub fn function(&self) -> &FunctionSpec {
        &self.inner.spec
    }

    /// The app's durable client, as the orchestration client binding is in Durable Functions: start
    /// orchestrations, raise events, query, terminate, signal entities and answer with the
    /// management URLs, on the task hub the app declared with [`App::durable`](crate::App::durable).
    /// See [`durable::binding`](crate::durable::binding); in unit tests,
    /// [`testing::DurableRecorder`](crate::testing::DurableRecorder).
    pub fn durable(&self) -> Durable {
        Durable::new(self.inner.services.durable.clone(), &self.inner.services.route_prefix)
    }

    /// This context with its durable calls going to `source` (a unit test's recorder).
    pub(crate) fn with_durable(self, source: DurableSource) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| panic!("a new context is not shared"));
        let route_prefix = inner.services.route_prefix.clone();
        Self { inner: Arc::new(Inner { services: Arc::new(Services { durable: source, route_prefix }), ..inner }) }
    }

    /// Adds a line to the invocation's `Logs`; gives it back once the invocation has answered
    /// (its lines were taken for the response), so that the caller writes it elsewhere.
    pub(crate) fn push_log(&self, line: String) -> Result<(), String> {
        match &mut *self.inner.logs.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(lines) => {
                lines.push(line);
                Ok(())
            }
            None => Err(line),
        }
    }

    /// The lines logged so far, taken out for the response: later lines are given back by
    /// [`push_log`](Self::push_log) (work the handler left running in the background).
    pub(crate) fn take_logs(&self) -> Vec<String> {
        self.inner.logs.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default()
    }

    /// The invocation's `Metadata`, as the host sent it.
    pub fn metadata(&self) -> &Map<String, Value> {
        self.inner.metadata.get_or_init(|| {
            // The server checked that it is an object (or null) when it read the envelope.
            self.inner.raw_metadata.as_ref().and_then(|raw| serde_json::from_slice(raw).ok()).unwrap_or_default()
        })
    }

    /// A metadata value as text, with the host's double encoding undone (`"\"42\""` gives `42`).
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        self.metadata().get(key).and_then(value_text).map(|s| s.into_owned())
    }

    /// `Metadata.sys`: the function name, the host's clock and a random GUID.
    pub fn sys(&self) -> Option<SysMetadata> {
        self.metadata().get("sys").and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// `Metadata.RetryContext`, when a host retry policy is re-running the function.
    pub fn retry_context(&self) -> Option<RetryContext> {
        self.metadata().get("RetryContext").and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// An input binding's value (a table entity, a blob, ...) as `T`; `None` when the host sent none
    /// (e.g. no entity with that key).
    ///
    /// The name must be an input binding of the function other than its trigger.
    pub fn input<T: DeserializeOwned>(&self, binding: &str) -> Result<Option<T>, BindError> {
        let spec = &self.inner.spec;
        let declared =
            spec.json.bindings.iter().any(|b| b.name == binding && b.direction != Direction::Out && !b.is_trigger());
        if !declared {
            let inputs: Vec<_> = spec
                .json
                .bindings
                .iter()
                .filter(|b| b.direction != Direction::Out && !b.is_trigger())
                .map(|b| format!("`{}`", b.name))
                .collect();
            return Err(BindError::new(format!(
                "function `{}` has no input binding named `{binding}`; its inputs are: {}",
                spec.name,
                if inputs.is_empty() { "none".to_owned() } else { inputs.join(", ") }
            )));
        }
        let value: Option<Value> = match self.inner.inputs.get(binding) {
            None => None,
            Some(raw) => Some(
                serde_json::from_slice(raw)
                    .map_err(|e| BindError::new(format!("input `{binding}` is not JSON: {e}")))?,
            ),
        };
        match value.as_ref() {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let json = value_json(v).map_err(|e| BindError::new(format!("input `{binding}` is not JSON: {e}")))?;
                serde_json::from_value(json.into_owned()).map(Some).map_err(|e| {
                    BindError::new(format!("input `{binding}` does not fit {}: {e}", std::any::type_name::<T>()))
                })
            }
        }
    }

    /// Sends `value` as one JSON message to a message output (queue, Service Bus, Event Hubs, ...).
    ///
    /// While traces are exported (see [`telemetry`](crate::telemetry)), a value that is a JSON object
    /// without a `traceparent` property gets one, first: the W3C trace context of this invocation,
    /// which the function that receives the message continues. The rest of the text is exactly what
    /// serde wrote. (A receiver that refuses unknown fields
    /// can declare it, or the sender can use [`send_text`](Self::send_text).)
    pub fn send_json<T: Serialize + ?Sized>(&self, binding: &str, value: &T) -> Result<(), OutputError> {
        let error =
            |e: serde_json::Error| OutputError::new(format!("cannot serialize the message for `{binding}`: {e}"));
        let text = serde_json::to_string(value).map_err(error)?;
        let text = match crate::telemetry::current_traceparent() {
            Some(traceparent) => crate::telemetry::with_traceparent(text, &traceparent),
            None => text,
        };
        self.send_text(binding, text)
    }

    /// Sends one text message to a message output (queue, Service Bus, Event Hubs, ...).
    pub fn send_text(&self, binding: &str, text: impl Into<String>) -> Result<(), OutputError> {
        self.with_outputs(|o, spec| o.push_message(spec, binding, text.into()))
    }

    /// Writes the bytes to a blob output.
    pub fn write_blob(&self, binding: &str, content: impl Into<Bytes>) -> Result<(), OutputError> {
        self.with_outputs(|o, spec| o.set_blob(spec, binding, content.into()))
    }

    /// Writes `value` as JSON to a blob output.
    pub fn write_blob_json<T: Serialize + ?Sized>(&self, binding: &str, value: &T) -> Result<(), OutputError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| OutputError::new(format!("cannot serialize the blob for `{binding}`: {e}")))?;
        self.write_blob(binding, bytes)
    }

    /// Inserts an entity through a table output. It needs `PartitionKey` and `RowKey` unless the
    /// binding sets them.
    ///
    /// The Functions host *adds* an entity that has no `ETag`: if one with the same keys exists, the
    /// write fails with 409 and so does the invocation (the Tables extension's `TableEntityWriter`).
    /// A function that may run twice for the same input (every queue trigger: delivery is
    /// at-least-once) should use [`upsert_entity`](Self::upsert_entity) instead.
    pub fn insert_entity<T: Serialize + ?Sized>(&self, binding: &str, entity: &T) -> Result<(), OutputError> {
        let value = entity_json(binding, entity)?;
        self.with_outputs(|o, spec| o.push_entity(spec, binding, value))
    }

    /// Inserts or replaces an entity through a table output: it is sent with `"ETag": "*"`, which
    /// the host writes as an upsert (replace, not merge). Safe to repeat.
    ///
    /// ```
    /// # fn f(ctx: &azfn::Context) -> Result<(), azfn::OutputError> {
    /// ctx.upsert_entity("row", &serde_json::json!({"PartitionKey": "orders", "RowKey": "o-1", "status": "done"}))?;
    /// # Ok(()) }
    /// ```
    pub fn upsert_entity<T: Serialize + ?Sized>(&self, binding: &str, entity: &T) -> Result<(), OutputError> {
        let mut value = entity_json(binding, entity)?;
        let Some(object) = value.as_object_mut() else {
            return Err(OutputError::new(format!("the entity for `{binding}` should be a JSON object")));
        };
        object.retain(|k, _| !k.eq_ignore_ascii_case("etag"));
        object.insert("ETag".into(), serde_json::Value::String("*".into()));
        self.with_outputs(|o, spec| o.push_entity(spec, binding, value))
    }

    /// Sets an output to a raw JSON value, sent as it is. Beware: the host tries to base64-decode
    /// top-level strings of outputs without `dataType: binary`.
    pub fn set_output(&self, binding: &str, value: Value) -> Result<(), OutputError> {
        self.with_outputs(|o, spec| o.set_raw(spec, binding, value))
    }

    /// What the handler has written to its outputs so far, decoded (for tests: see
    /// [`crate::testing`]).
    pub fn outputs(&self) -> crate::testing::Written {
        let o = self.lock();
        crate::testing::Written::new(o.values.clone(), &self.inner.spec, o.http.as_ref().map(|(_, r)| r.clone()))
    }

    /// The outputs as they will be sent: the envelope's `Outputs` and `ReturnValue`.
    pub fn wire_outputs(&self) -> Result<(Map<String, Value>, Value), OutputError> {
        let o = self.lock();
        Outputs { values: o.values.clone(), http: o.http.clone() }.into_wire()
    }

    pub(crate) fn with_outputs<R>(&self, f: impl FnOnce(&mut Outputs, &FunctionSpec) -> R) -> R {
        f(&mut self.lock(), &self.inner.spec)
    }

    pub(crate) fn take_outputs(&self) -> Outputs {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Outputs> {
        // A handler that panicked while holding the lock leaves usable data behind.
        self.inner.outputs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A table entity for the output `binding` as JSON.
fn entity_json<T: Serialize + ?Sized>(binding: &str, entity: &T) -> Result<serde_json::Value, OutputError> {
    serde_json::to_value(entity)
        .map_err(|e| OutputError::new(format!("cannot serialize the entity for `{binding}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::test_support::fixture;

    #[test]
    fn sys_and_retry_context_from_fixtures() {
        let spec = FunctionSpec::parse(
            "OrderSummary",
            "f.json".as_ref(),
            r#"{"bindings":[{"type":"timerTrigger","direction":"in","name":"myTimer"}]}"#,
        )
        .unwrap();
        let req = fixture("derived-retry-context.request.json");
        let meta = req["Metadata"].as_object().unwrap().clone();
        let ctx = Context::with_data(spec, "id", meta, Map::new());
        let retry = ctx.retry_context().unwrap();
        assert_eq!((retry.retry_count, retry.max_retry_count), (1, 2));
        assert_eq!(ctx.sys().unwrap().method_name, "OrderSummary");

        let queue = fixture("derived-queue-trigger.request.json");
        let ctx = Context::with_data(
            ctx.function().clone(),
            "id",
            queue["Metadata"].as_object().unwrap().clone(),
            Map::new(),
        );
        assert_eq!(ctx.metadata_text("orderId").as_deref(), Some("42"));
        assert_eq!(ctx.sys().unwrap().rand_guid, "0d6b1f4e-3c1a-4b7e-9d2f-5a8e7c6b4d3a");
        assert!(ctx.retry_context().is_none());
    }

    #[test]
    fn inputs_are_declared_and_typed() {
        let spec = FunctionSpec::parse(
            "GetOrder",
            "f.json".as_ref(),
            r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"table","direction":"in","name":"order","tableName":"orders"},{"type":"http","direction":"out","name":"res"}]}"#,
        )
        .unwrap();
        let inputs = serde_json::json!({"order": {"RowKey": "o-1"}}).as_object().unwrap().clone();
        let ctx = Context::with_data(spec.clone(), "id", Map::new(), inputs);
        let row: Value = ctx.input("order").unwrap().unwrap();
        assert_eq!(row["RowKey"], "o-1");
        assert!(ctx.input::<Value>("req").unwrap_err().to_string().contains("inputs are: `order`"));
        let empty = Context::with_data(spec, "id", Map::new(), Map::new());
        assert_eq!(empty.input::<Value>("order").unwrap(), None);
    }
}
