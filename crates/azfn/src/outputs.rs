//! Encoding output values so that the host writes exactly what the handler meant.
//!
//! The host attempts `Convert.FromBase64String` on every top-level string output that is not an `http`
//! output and has no `dataType: binary` (`HttpScriptInvocationResultExtensions.GetBindingValue`):
//! the text `"test"` silently becomes three bytes. Array elements are not touched. So:
//!
//! - messages (queue, Service Bus, Event Hubs, ...) are always sent as an array of strings, one
//!   element per message;
//! - blob content is sent as base64 of its bytes, which the host decodes back into the same bytes
//!   (or, for `dataType: binary`, as the text itself, which the host passes through);
//! - table entities are objects, which the host does not touch;
//! - `http` outputs are `{statusCode, headers, body}` objects.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::encoding::encode_base64;
use crate::error::OutputError;
use crate::function_json::{Binding, FunctionSpec};
use crate::http::HttpResponse;
use crate::http::response::WireResponse;

/// How the host consumes an output binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputKind {
    /// An `IAsyncCollector` that takes one message per array element.
    Messages,
    /// A blob (a stream).
    Blob,
    /// A table entity collector.
    Table,
    /// An HTTP response.
    Http,
}

impl OutputKind {
    pub(crate) fn of(binding: &Binding) -> Self {
        let ty = binding.binding_type.to_ascii_lowercase();
        match ty.as_str() {
            "blob" => Self::Blob,
            "table" => Self::Table,
            "http" => Self::Http,
            _ => Self::Messages,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Messages => "a message output (use send_json / send_text)",
            Self::Blob => "a blob output (use write_blob / write_blob_json)",
            Self::Table => "a table output (use insert_entity)",
            Self::Http => "an HTTP output (return an HttpResponse)",
        }
    }
}

/// The outputs an invocation has produced so far.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    /// Encoded values, by binding name (`$return` included).
    pub(crate) values: Map<String, Value>,
    /// The HTTP response and the name of its binding.
    pub(crate) http: Option<(String, HttpResponse)>,
}

impl Outputs {
    fn binding<'a>(spec: &'a FunctionSpec, name: &str, want: OutputKind) -> Result<&'a Binding, OutputError> {
        let Some(b) = spec.output(name) else {
            let names: Vec<_> = spec.outputs().map(|b| format!("`{}` ({})", b.name, b.binding_type)).collect();
            let hint = spec
                .outputs()
                .find(|b| b.name.eq_ignore_ascii_case(name))
                .map(|b| format!(" (output names are case-sensitive: did you mean `{}`?)", b.name))
                .unwrap_or_default();
            return Err(OutputError::new(format!(
                "function `{}` has no output binding named `{name}`{hint}; its outputs are: {}",
                spec.name,
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            )));
        };
        let kind = OutputKind::of(b);
        if kind != want {
            return Err(OutputError::new(format!(
                "output `{name}` of function `{}` is {} of type `{}`, not {}",
                spec.name,
                kind.what(),
                b.binding_type,
                want.what()
            )));
        }
        Ok(b)
    }

    pub(crate) fn push_message(&mut self, spec: &FunctionSpec, name: &str, text: String) -> Result<(), OutputError> {
        Self::binding(spec, name, OutputKind::Messages)?;
        self.push(name, Value::String(text));
        Ok(())
    }

    pub(crate) fn set_blob(&mut self, spec: &FunctionSpec, name: &str, content: Bytes) -> Result<(), OutputError> {
        let b = Self::binding(spec, name, OutputKind::Blob)?;
        let value = if b.is_binary() {
            // With dataType binary the host passes the string through and writes its UTF-8 bytes.
            let text = String::from_utf8(content.to_vec()).map_err(|_| {
                OutputError::new(format!(
                    "blob output `{name}` has `dataType: binary`, which makes the host write strings as text, so it cannot carry \
                     non-UTF-8 bytes; remove `dataType` from the binding and azfn sends the bytes base64-encoded"
                ))
            })?;
            Value::String(text)
        } else {
            Value::String(encode_base64(&content))
        };
        self.values.insert(name.to_owned(), value);
        Ok(())
    }

    pub(crate) fn push_entity(&mut self, spec: &FunctionSpec, name: &str, entity: Value) -> Result<(), OutputError> {
        let b = Self::binding(spec, name, OutputKind::Table)?;
        let Value::Object(obj) = &entity else {
            return Err(OutputError::new(format!("a table entity for `{name}` must serialize to a JSON object")));
        };
        for key in ["PartitionKey", "RowKey"] {
            let in_binding = b.properties.keys().any(|k| k.eq_ignore_ascii_case(key));
            if !in_binding && !obj.get(key).is_some_and(Value::is_string) {
                return Err(OutputError::new(format!(
                    "the table entity for `{name}` has no string `{key}` and the binding does not set `{}`",
                    key[..1].to_ascii_lowercase() + &key[1..]
                )));
            }
        }
        self.push(name, entity);
        Ok(())
    }

    pub(crate) fn set_http(&mut self, spec: &FunctionSpec, res: HttpResponse) -> Result<(), OutputError> {
        let Some(b) = spec.http_output() else {
            return Err(OutputError::new(format!(
                "function `{}` returned an HttpResponse but has no `http` output binding in its function.json",
                spec.name
            )));
        };
        self.http = Some((b.name.clone(), res));
        Ok(())
    }

    pub(crate) fn set_raw(&mut self, spec: &FunctionSpec, name: &str, value: Value) -> Result<(), OutputError> {
        if spec.output(name).is_none() {
            // Reuse the message for unknown names.
            Self::binding(spec, name, OutputKind::Messages)?;
        }
        self.values.insert(name.to_owned(), value);
        Ok(())
    }

    pub(crate) fn set_return(&mut self, spec: &FunctionSpec, value: Value) -> Result<(), OutputError> {
        // With a `$return` binding the host applies the base64 attempt to a top-level string: send the
        // same forms as for a named output of that type.
        let value = match (spec.output("$return"), value) {
            (Some(b), Value::String(s)) => match OutputKind::of(b) {
                OutputKind::Messages => Value::Array(vec![Value::String(s)]),
                OutputKind::Blob if !b.is_binary() => Value::String(encode_base64(s.as_bytes())),
                _ => Value::String(s),
            },
            (_, v) => v,
        };
        self.values.insert("$return".to_owned(), value);
        Ok(())
    }

    fn push(&mut self, name: &str, item: Value) {
        match self.values.get_mut(name) {
            Some(Value::Array(items)) => items.push(item),
            _ => {
                self.values.insert(name.to_owned(), Value::Array(vec![item]));
            }
        }
    }

    /// The response envelope's `Outputs` and `ReturnValue`.
    pub(crate) fn into_wire(mut self) -> Result<(Map<String, Value>, Value), OutputError> {
        if let Some((name, res)) = self.http.take() {
            let wire = res.to_wire(&name)?;
            self.values.insert(name, wire);
        }
        let ret = self.values.remove("$return").unwrap_or(Value::Null);
        Ok((self.values, ret))
    }
}

/// The response envelope `{"Outputs", "Logs", "ReturnValue"}`, serialized straight from the outputs.
pub(crate) struct Answer<'a> {
    outputs: &'a Outputs,
    http: Option<(&'a str, WireResponse<'a>)>,
    logs: &'a [String],
}

impl<'a> Answer<'a> {
    pub(crate) fn new(outputs: &'a Outputs, logs: &'a [String]) -> Result<Self, OutputError> {
        let http = match &outputs.http {
            Some((name, res)) => Some((name.as_str(), res.wire(name)?)),
            None => None,
        };
        Ok(Self { outputs, http, logs })
    }
}

impl Serialize for Answer<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        struct Named<'b>(&'b Answer<'b>);
        impl Serialize for Named<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                for (k, v) in self.0.outputs.values.iter().filter(|(k, _)| *k != "$return") {
                    map.serialize_entry(k, v)?;
                }
                if let Some((name, res)) = &self.0.http
                    && *name != "$return"
                {
                    map.serialize_entry(name, res)?;
                }
                map.end()
            }
        }
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("Outputs", &Named(self))?;
        map.serialize_entry("Logs", self.logs)?;
        match (&self.http, self.outputs.values.get("$return")) {
            (Some(("$return", res)), _) => map.serialize_entry("ReturnValue", res)?,
            (_, Some(v)) => map.serialize_entry("ReturnValue", v)?,
            _ => map.serialize_entry("ReturnValue", &Value::Null)?,
        }
        map.end()
    }
}

/// A value for the function's `$return` binding (or, without one, the invocation's return value).
///
/// ```
/// use azfn::Return;
///
/// async fn enqueue(_t: azfn::TimerInfo, _ctx: azfn::Context) -> Result<Return<serde_json::Value>, azfn::Error> {
///     Ok(Return(serde_json::json!({"ran": true})))
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Return<T>(pub T);

/// What a handler may return: it is applied to the invocation's outputs.
pub trait IntoOutputs {
    /// Records the value on the context's outputs.
    fn into_outputs(self, ctx: &crate::Context) -> Result<(), OutputError>;
}

impl IntoOutputs for () {
    fn into_outputs(self, _ctx: &crate::Context) -> Result<(), OutputError> {
        Ok(())
    }
}

impl IntoOutputs for HttpResponse {
    fn into_outputs(self, ctx: &crate::Context) -> Result<(), OutputError> {
        ctx.with_outputs(|o, spec| o.set_http(spec, self))
    }
}

impl<T: Serialize> IntoOutputs for Return<T> {
    fn into_outputs(self, ctx: &crate::Context) -> Result<(), OutputError> {
        let value = serde_json::to_value(&self.0)
            .map_err(|e| OutputError::new(format!("cannot serialize the return value: {e}")))?;
        ctx.with_outputs(|o, spec| o.set_return(spec, value))
    }
}

impl<A: IntoOutputs, B: IntoOutputs> IntoOutputs for (A, B) {
    fn into_outputs(self, ctx: &crate::Context) -> Result<(), OutputError> {
        self.0.into_outputs(ctx)?;
        self.1.into_outputs(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec() -> FunctionSpec {
        FunctionSpec::parse(
            "F",
            Path::new("F/function.json"),
            r#"{"bindings":[
                {"type":"queueTrigger","direction":"in","name":"msg","queueName":"in"},
                {"type":"queue","direction":"out","name":"orders","queueName":"orders"},
                {"type":"blob","direction":"out","name":"receipt","path":"receipts/{orderId}.json"},
                {"type":"blob","direction":"out","name":"textBlob","path":"t/x.txt","dataType":"binary"},
                {"type":"table","direction":"out","name":"row","tableName":"orders","partitionKey":"orders"},
                {"type":"table","direction":"out","name":"anyRow","tableName":"orders"}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn messages_are_arrays_of_strings_so_base64_looking_text_survives() {
        let s = spec();
        let mut o = Outputs::default();
        o.push_message(&s, "orders", "test".into()).unwrap();
        o.push_message(&s, "orders", "abcd1234".into()).unwrap();
        let (outs, ret) = o.into_wire().unwrap();
        assert_eq!(outs["orders"], serde_json::json!(["test", "abcd1234"]));
        assert_eq!(ret, Value::Null);
    }

    #[test]
    fn blobs_are_base64_of_their_bytes() {
        let s = spec();
        let mut o = Outputs::default();
        o.set_blob(&s, "receipt", Bytes::from_static(b"test")).unwrap();
        o.set_blob(&s, "textBlob", Bytes::from_static(b"test")).unwrap();
        assert_eq!(o.values["receipt"], "dGVzdA==");
        assert_eq!(o.values["textBlob"], "test");
        let err = o.set_blob(&s, "textBlob", Bytes::from_static(&[0xff])).unwrap_err();
        assert!(err.to_string().contains("dataType: binary"), "{err}");
    }

    #[test]
    fn entities_need_keys_unless_the_binding_has_them() {
        let s = spec();
        let mut o = Outputs::default();
        o.push_entity(&s, "row", serde_json::json!({"RowKey": "1"})).unwrap();
        let err = o.push_entity(&s, "anyRow", serde_json::json!({"RowKey": "1"})).unwrap_err();
        assert!(err.to_string().contains("PartitionKey") && err.to_string().contains("partitionKey"), "{err}");
    }

    #[test]
    fn wrong_names_and_kinds_are_explained() {
        let s = spec();
        let mut o = Outputs::default();
        let err = o.push_message(&s, "Orders", "x".into()).unwrap_err().to_string();
        assert!(err.contains("case-sensitive") && err.contains("`orders`"), "{err}");
        let err = o.push_message(&s, "receipt", "x".into()).unwrap_err().to_string();
        assert!(err.contains("blob output"), "{err}");
        let err = o.set_http(&s, HttpResponse::ok()).unwrap_err().to_string();
        assert!(err.contains("no `http` output"), "{err}");
    }
}
