//! Applying a handler's answer exactly as the Azure Functions host does.
//!
//! From `DefaultHttpWorkerService` and `HttpScriptInvocationResultExtensions` in
//! Azure/azure-functions-host (see the protocol note in the fixtures' README):
//! - the answer must be 2xx with a JSON content type and a JSON object body, or the invocation fails;
//! - `Outputs`, `Logs`, `ReturnValue` are matched ignoring case, output names case-sensitively;
//! - every output except `http` ones not named `$return` (and except `dataType: binary`) gets the
//!   base64 attempt: a top-level string that decodes as base64 becomes those bytes;
//! - collectors (queue, Service Bus, table, …) take one item per array element; blob outputs turn
//!   strings into UTF-8, objects into JSON, and numbers into their little-endian bytes;
//! - binding expressions such as `{orderId}` are filled from the invocation's binding data;
//! - without a `$return` binding, a `ReturnValue` object's keys replace the outputs of those names;
//! - a `$return` http output is lenient (a string is the body, an object without `body` is sent
//!   whole), `"res": null` fails, and an empty or `null` answer never completes (the invoker then
//!   waits for `functionTimeout`, as the host does). See docs/host-fidelity.md §7.

use base64::Engine as _;
use serde_json::{Map, Value};

use azfn::encoding::BASE64;
use azfn::function_json::{Binding, FunctionSpec};

/// The HTTP response an HTTP-triggered invocation gives its caller.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResult {
    /// The status code.
    pub status: u16,
    /// The headers, as the handler set them.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Which of `RawScriptResult`'s output formatters writes the body.
    pub formatter: Formatter,
}

/// The output formatter azure-functions-host's `RawScriptResult` picks for a body
/// (src/WebJobs.Script/Binding/Http/RawScriptResult.cs, lines 20-25: `StreamOutputFormatter`,
/// `StringOutputFormatter`, `ByteArrayOutputFormatter`; anything else is written as its `ToString()`
/// through the string formatter, lines 105-109).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formatter {
    /// ASP.NET Core's `StringOutputFormatter`: the Content-Type defaults to `text/plain` and always
    /// gets a charset (`TextOutputFormatter.WriteAsync`: "Override the content type value even if one
    /// already existed"), UTF-8 unless the type names UTF-16.
    Text,
    /// The host's `ByteArrayOutputFormatter`: bytes as they are (a `$return` string that was base64).
    Bytes,
}

impl HttpResult {
    fn text(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Self { status, headers, body, formatter: Formatter::Text }
    }

    /// The response's headers, Content-Type as the formatter writes it, and its body (UTF-16 when
    /// the Content-Type asks for it). A header that differs from an earlier one only in case is left
    /// out, as ASP.NET Core's case-insensitive header collection keeps the first
    /// (`RawScriptResult`: `if (response.Headers.ContainsKey(header.Key))`).
    pub fn finish(self) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut content_type = None;
        for (k, v) in self.headers {
            if k.eq_ignore_ascii_case("content-type") {
                content_type.get_or_insert(v);
            } else if !headers.iter().any(|(seen, _)| seen.eq_ignore_ascii_case(&k)) {
                headers.push((k, v));
            }
        }
        let mut body = self.body;
        let content_type = match self.formatter {
            Formatter::Bytes => content_type,
            Formatter::Text => {
                let (media, utf16) = with_charset(content_type.as_deref().unwrap_or("text/plain"));
                if utf16 {
                    body = String::from_utf8_lossy(&body).encode_utf16().flat_map(u16::to_le_bytes).collect();
                }
                Some(media)
            }
        };
        if let Some(ct) = content_type {
            headers.push(("Content-Type".to_owned(), ct));
        }
        (self.status, headers, body)
    }
}

/// `media` with the charset `TextOutputFormatter` writes: the one it names when the string
/// formatter supports it (UTF-8 or UTF-16, its `SupportedEncodings`), else UTF-8; `true` for UTF-16.
fn with_charset(media: &str) -> (String, bool) {
    let mut parts: Vec<String> = Vec::new();
    let mut utf16 = false;
    for (i, part) in media.split(';').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
        match part.split_once('=') {
            Some((k, v)) if i > 0 && k.trim().eq_ignore_ascii_case("charset") => {
                utf16 = v.trim().trim_matches('"').eq_ignore_ascii_case("utf-16");
            }
            _ => parts.push(part.to_owned()),
        }
    }
    parts.push(format!("charset={}", if utf16 { "utf-16" } else { "utf-8" }));
    (parts.join("; "), utf16)
}

/// A JSON value as .NET's `ToString()` writes it, the way `RawScriptResult` sends a body no
/// formatter takes: strings as they are, `True`/`False`, numbers in .NET's shortest round-trip
/// form (`1` for `1.0`, `1E+15` from 10^15), `null` empty, objects and arrays as Newtonsoft's
/// `JToken.ToString()`: indented JSON.
fn dotnet_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) if n.is_f64() => dotnet_double(n.as_f64().unwrap_or_default()),
        Value::Number(n) => n.to_string(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// A double as .NET Core 3.0+ `double.ToString()` writes it: the shortest text that reads back the
/// same, in exponent form (`E+15`, `E-05`) outside 0.0001 to 1E+15.
fn dotnet_double(d: f64) -> String {
    if d == 0.0 || (1e-4..1e15).contains(&d.abs()) {
        return format!("{d}");
    }
    let text = format!("{d:e}");
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mantissa}E{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// One write an output binding asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Messages for a storage queue.
    Queue {
        /// The queue name, binding expressions filled in.
        queue: String,
        /// The binding's connection setting name.
        connection: String,
        /// The message bodies.
        messages: Vec<Vec<u8>>,
    },
    /// A blob.
    Blob {
        /// `container/name`, binding expressions filled in.
        path: String,
        /// The binding's connection setting name.
        connection: String,
        /// The content.
        content: Vec<u8>,
    },
    /// Table entities.
    Table {
        /// The table name.
        table: String,
        /// The binding's connection setting name.
        connection: String,
        /// The entities, with keys from the binding where it sets them.
        entities: Vec<Map<String, Value>>,
    },
    /// Any other output (Service Bus, Event Hubs, …): its type and items.
    Other {
        /// The binding.
        binding: String,
        /// Its type.
        binding_type: String,
        /// The items, after the host's conversions.
        items: Vec<Value>,
    },
}

/// What a successful invocation produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// The HTTP response, for HTTP-triggered functions.
    pub http: Option<HttpResult>,
    /// The output writes, in binding order.
    pub writes: Vec<Write>,
    /// The `Logs` lines.
    pub logs: Vec<String>,
    /// `ReturnValue` when there is no `$return` binding (the invocation's return value).
    pub return_value: Value,
}

/// An output value after the base64 attempt.
enum Converted {
    Bytes(Vec<u8>),
    Json(Value),
}

fn convert(binding: &Binding, value: Value) -> Converted {
    let exempt = (binding.is_type("http") && binding.name != "$return") || binding.is_binary();
    match value {
        Value::String(s) if !exempt => match base64_like_dotnet(&s) {
            Some(bytes) => Converted::Bytes(bytes),
            None => Converted::Json(Value::String(s)),
        },
        other => Converted::Json(other),
    }
}

/// .NET's `Convert.FromBase64String`: whitespace is ignored, anything else must be strict base64.
fn base64_like_dotnet(s: &str) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n')).collect();
    BASE64.decode(compact.as_bytes()).ok()
}

/// Whether the host would never complete an invocation with this answer body: an empty body or
/// JSON `null` reads as no result, and the host's result source is never set, so the invocation
/// waits until `functionTimeout` (`DefaultHttpWorkerService.ProcessDefaultInvocationRequest`).
pub fn never_completes(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    text.is_empty() || text == "null"
}

pub use super::expressions::resolve_expression;

/// Reads the handler's answer (`status`, `content_type`, `body`) for the function `spec`, invoked
/// with `binding_data`; the error says why the real host would fail the invocation.
pub fn apply(
    spec: &FunctionSpec,
    binding_data: &Map<String, Value>,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Applied, String> {
    if !(200..300).contains(&status) {
        return Err(format!("Response status code does not indicate success: {status}"));
    }
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if !(ct.starts_with("application/json") || ct.contains("+json") || ct.starts_with("text/json")) {
        return Err(format!("the answer's content type {content_type:?} is not JSON, so the host cannot read it"));
    }
    let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(body) else {
        return Err("the answer's body is not a JSON object".to_owned());
    };
    let mut outputs = field(&envelope, "Outputs");
    let return_value = field(&envelope, "ReturnValue").unwrap_or(Value::Null);
    let logs = match field(&envelope, "Logs") {
        Some(Value::Array(lines)) => {
            lines.into_iter().map(|l| l.as_str().map(str::to_owned).unwrap_or_else(|| l.to_string())).collect()
        }
        _ => Vec::new(),
    };
    let mut applied = Applied { logs, ..Default::default() };
    let has_return_binding = spec.output("$return").is_some();
    if !has_return_binding {
        applied.return_value = return_value.clone();
        // Without a `$return` binding, each key of a ReturnValue object replaces the output of that
        // name (`WorkerFunctionInvoker.HandleOutputDictionary`, case-sensitive, no conversions).
        if let Value::Object(keys) = &return_value {
            let mut merged = match outputs.take() {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            merged.extend(keys.iter().map(|(k, v)| (k.clone(), v.clone())));
            outputs = Some(Value::Object(merged));
        }
    }
    let outputs_map = match &outputs {
        Some(Value::Object(m)) => Some(m.clone()),
        _ => None,
    };
    for b in spec.outputs() {
        let value = if b.name == "$return" {
            Some(return_value.clone())
        } else {
            outputs_map.as_ref().and_then(|m| m.get(&b.name).cloned())
        };
        if b.is_type("http") {
            applied.http = if b.name == "$return" {
                return_http_result(value)
            } else {
                let present = outputs_map.as_ref().is_some_and(|m| m.contains_key(&b.name));
                http_result(value, present, outputs_map.is_some())?
            };
            continue;
        }
        let Some(value) = value.filter(|v| !v.is_null()) else { continue };
        let connection = b.property("connection").unwrap_or("AzureWebJobsStorage").to_owned();
        let resolve = |key: &str| -> Result<String, String> {
            resolve_expression(b.property(key).unwrap_or_default(), binding_data)
        };
        let write = match b.binding_type.to_ascii_lowercase().as_str() {
            "queue" => Write::Queue {
                queue: resolve("queueName")?,
                connection,
                messages: items(b, value).into_iter().map(item_bytes).collect(),
            },
            "blob" => Write::Blob { path: resolve("path")?, connection, content: blob_bytes(convert(b, value)) },
            "table" => {
                let mut entities = Vec::new();
                for item in items(b, value) {
                    let Converted::Json(Value::Object(mut e)) = item else {
                        return Err(format!("table output `{}` needs JSON objects", b.name));
                    };
                    for (prop, key) in [("partitionKey", "PartitionKey"), ("rowKey", "RowKey")] {
                        if b.property(prop).is_some() && !e.contains_key(key) {
                            e.insert(key.to_owned(), Value::String(resolve(prop)?));
                        }
                    }
                    entities.push(e);
                }
                Write::Table { table: resolve("tableName")?, connection, entities }
            }
            _ => Write::Other {
                binding: b.name.clone(),
                binding_type: b.binding_type.clone(),
                items: items(b, value)
                    .into_iter()
                    .map(|i| match i {
                        Converted::Bytes(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                        Converted::Json(v) => v,
                    })
                    .collect(),
            },
        };
        applied.writes.push(write);
    }
    Ok(applied)
}

/// A collector's items: a top-level array (or a string holding one) gives one item per element.
fn items(b: &Binding, value: Value) -> Vec<Converted> {
    match value {
        Value::Array(elements) => elements.into_iter().map(Converted::Json).collect(),
        Value::String(s) if s.trim_start().starts_with('[') => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(elements)) => elements.into_iter().map(Converted::Json).collect(),
            _ => vec![convert(b, Value::String(s))],
        },
        other => vec![convert(b, other)],
    }
}

fn item_bytes(item: Converted) -> Vec<u8> {
    match item {
        Converted::Bytes(b) => b,
        Converted::Json(Value::String(s)) => s.into_bytes(),
        Converted::Json(v) => serde_json::to_string_pretty(&v).unwrap_or_default().into_bytes(),
    }
}

fn blob_bytes(value: Converted) -> Vec<u8> {
    match value {
        Converted::Bytes(b) => b,
        Converted::Json(Value::String(s)) => s.into_bytes(),
        Converted::Json(Value::Bool(b)) => vec![u8::from(b)],
        Converted::Json(Value::Number(n)) => match n.as_i64() {
            Some(i) => (i as i32).to_le_bytes().to_vec(),
            None => n.as_f64().unwrap_or_default().to_le_bytes().to_vec(),
        },
        Converted::Json(v) => v.to_string().into_bytes(),
    }
}

/// The HTTP response of a `$return` http output, as `HttpBinding.CreateResult` reads it: lenient.
/// A string is the body (after the base64 attempt every `$return` value gets: bytes then, written
/// by the byte-array formatter); an object is a response only when it has a `body` key, with the
/// status from `statusCode`, else `status`, and an object body written compact (it is an
/// `ExpandoObject` there: RawScriptResult line 98, `Utility.ToJson(expandoContent,
/// Formatting.None)`); any other object is sent whole as the body, indented, with 200.
fn return_http_result(value: Option<Value>) -> Option<HttpResult> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(match base64_like_dotnet(&s) {
            Some(bytes) => HttpResult { status: 200, headers: Vec::new(), body: bytes, formatter: Formatter::Bytes },
            None => HttpResult::text(200, Vec::new(), s.into_bytes()),
        }),
        Value::Object(o) if field(&o, "body").is_some() => Some(response_object(&o, &["statusCode", "status"], true)),
        other => Some(HttpResult::text(200, Vec::new(), dotnet_text(&other).into_bytes())),
    }
}

/// The HTTP response of a named http output (`res`), as `GetHttpOutputBindingResponse` reads it:
/// `null` fails; a missing one gives 200 `{}` when `Outputs` is there, nothing when it is not.
fn http_result(value: Option<Value>, present: bool, outputs_present: bool) -> Result<Option<HttpResult>, String> {
    let value = match value {
        Some(Value::Null) if present => {
            return Err("Failed while trying to Deserialize to httpOutputBindingResponse: the http output is null \
                            (the host reads it as an object and fails)"
                .to_owned());
        }
        Some(Value::Null) | None if outputs_present => {
            return Ok(Some(HttpResult::text(200, Vec::new(), b"{}".to_vec())));
        }
        Some(Value::Null) | None => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str::<Value>(&s).unwrap_or(Value::Null),
        Some(v) => v,
    };
    match value {
        // For `res` the host reads only `statusCode` (its `Status` key is always there, and null).
        Value::Object(o) => Ok(Some(response_object(&o, &["statusCode"], false))),
        _ => Err("Failed while trying to Deserialize to httpOutputBindingResponse: the http output is not an object"
            .to_owned()),
    }
}

/// A response object's value for `key`, the key's case ignored.
fn field(o: &Map<String, Value>, key: &str) -> Option<Value> {
    o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone())
}

/// An HTTP response from a response object: the status from the first of `status_keys` that holds
/// a number (or a numeric string), else 200; `headers` (values as .NET's `ToString()` writes them);
/// and `body` as [`dotnet_text`], except that an object body is compact JSON when `compact` (a
/// `$return` response).
fn response_object(o: &Map<String, Value>, status_keys: &[&str], compact: bool) -> HttpResult {
    let status_of = |v: Option<Value>| match v {
        Some(Value::Number(n)) => n.as_u64().map(|n| n as u16),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let status = status_keys.iter().find_map(|k| status_of(field(o, k))).unwrap_or(200);
    let headers = match field(o, "headers") {
        Some(Value::Object(h)) => h.into_iter().map(|(k, v)| (k, dotnet_text(&v))).collect(),
        _ => Vec::new(),
    };
    let body = match field(o, "body") {
        None => Vec::new(),
        Some(v @ Value::Object(_)) if compact => v.to_string().into_bytes(),
        Some(v) => dotnet_text(&v).into_bytes(),
    };
    HttpResult::text(status, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::test_support::fixture;
    use serde_json::json;

    fn spec(bindings: Value) -> FunctionSpec {
        FunctionSpec::parse("F", "F/function.json".as_ref(), &json!({"bindings": bindings}).to_string()).unwrap()
    }

    fn ok(spec: &FunctionSpec, data: &Map<String, Value>, body: &Value) -> Applied {
        apply(spec, data, 200, Some("application/json; charset=utf-8"), body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn failures_the_host_reports() {
        let s = spec(json!([{"type": "queueTrigger", "direction": "in", "name": "m"}]));
        let data = Map::new();
        assert!(apply(&s, &data, 500, Some("application/json"), b"{}").unwrap_err().contains("500"));
        assert!(apply(&s, &data, 200, Some("text/plain"), b"{}").unwrap_err().contains("not JSON"));
        assert!(apply(&s, &data, 200, Some("application/json"), b"[1]").unwrap_err().contains("not a JSON object"));
    }

    #[test]
    fn the_base64_attempt_and_case_sensitive_names() {
        let s = spec(json!([
            {"type": "timerTrigger", "direction": "in", "name": "t"},
            {"type": "queue", "direction": "out", "name": "jobs", "queueName": "jobs"},
            {"type": "queue", "direction": "out", "name": "raw", "queueName": "raw", "dataType": "binary"}
        ]));
        let a = ok(
            &s,
            &Map::new(),
            &json!({"outputs": {"jobs": "test", "Raw": "ignored"}, "logs": ["a"], "returnValue": 3}),
        );
        // "test" is base64 for three bytes: the host writes those, not the text.
        assert_eq!(
            a.writes,
            [Write::Queue {
                queue: "jobs".into(),
                connection: "AzureWebJobsStorage".into(),
                messages: vec![vec![0xb5, 0xeb, 0x2d]]
            }]
        );
        assert_eq!(a.logs, ["a"]);
        assert_eq!(a.return_value, 3);
        let a = ok(&s, &Map::new(), &json!({"Outputs": {"jobs": ["test", {"a": 1}]}}));
        let Write::Queue { messages, .. } = &a.writes[0] else { panic!() };
        assert_eq!(messages[0], b"test", "array elements are not decoded");
        assert!(String::from_utf8_lossy(&messages[1]).contains("\"a\": 1"));
    }

    #[test]
    fn http_res_shapes_from_the_host_tests() {
        let s = spec(
            json!([{"type": "httpTrigger", "direction": "in", "name": "req"}, {"type": "http", "direction": "out", "name": "res"}]),
        );
        for case in fixture("host-test-http-res-outputs.json").as_array().unwrap() {
            let body = json!({"Outputs": {"res": case["resValue"]}});
            let r = apply(&s, &Map::new(), 200, Some("application/json"), body.to_string().as_bytes());
            if case.get("hostThrows").is_some() {
                assert!(r.unwrap_err().contains("httpOutputBindingResponse"));
                continue;
            }
            let http = r.unwrap().http.unwrap();
            let expected_status = case["hostObject"]["StatusCode"].as_str().map_or(200, |s| s.parse().unwrap());
            assert_eq!(http.status, expected_status, "{case}");
            assert_eq!(http.body, case["hostObject"]["Body"].as_str().unwrap_or("").as_bytes());
        }
        let none = ok(&s, &Map::new(), &json!({"Outputs": {}}));
        assert_eq!(none.http.unwrap().body, b"{}");
    }

    #[test]
    fn blobs_tables_and_binding_expressions() {
        let s = spec(json!([
            {"type": "queueTrigger", "direction": "in", "name": "order"},
            {"type": "blob", "direction": "out", "name": "receipt", "path": "receipts/{orderId}.json"},
            {"type": "table", "direction": "out", "name": "row", "tableName": "orders", "partitionKey": "orders"}
        ]));
        let data = fixture("derived-queue-trigger.request.json")["Metadata"].as_object().unwrap().clone();
        let a = ok(&s, &data, &json!({"Outputs": {"receipt": BASE64.encode(b"{\"t\":1}"), "row": [{"RowKey": "42"}]}}));
        assert_eq!(
            a.writes[0],
            Write::Blob {
                path: "receipts/42.json".into(),
                connection: "AzureWebJobsStorage".into(),
                content: b"{\"t\":1}".to_vec()
            }
        );
        let Write::Table { entities, table, .. } = &a.writes[1] else { panic!() };
        assert_eq!(table, "orders");
        assert_eq!(entities[0]["PartitionKey"], "orders");
        let missing = apply(
            &s,
            &Map::new(),
            200,
            Some("application/json"),
            json!({"Outputs": {"receipt": "eA=="}}).to_string().as_bytes(),
        );
        assert!(missing.unwrap_err().contains("{orderId}"));
        assert_eq!(blob_bytes(Converted::Json(json!(1))), vec![1, 0, 0, 0]);
    }

    #[test]
    fn what_the_runtime_sends_survives_the_hosts_rules() {
        let s = spec(json!([
            {"type": "httpTrigger", "direction": "in", "name": "req"},
            {"type": "http", "direction": "out", "name": "res"},
            {"type": "queue", "direction": "out", "name": "jobs", "queueName": "jobs"},
            {"type": "blob", "direction": "out", "name": "file", "path": "files/a.bin"},
            {"type": "table", "direction": "out", "name": "row", "tableName": "t"}
        ]));
        let ctx = azfn::Context::new(s.clone(), "id");
        ctx.send_text("jobs", "test").unwrap();
        ctx.send_text("jobs", "abcd1234").unwrap();
        ctx.write_blob("file", vec![0u8, 159, 146, 150]).unwrap();
        ctx.insert_entity("row", &json!({"PartitionKey": "p", "RowKey": "r"})).unwrap();
        azfn::IntoOutputs::into_outputs(azfn::HttpResponse::created().text("dGVzdA=="), &ctx).unwrap();
        let (outputs, ret) = ctx.wire_outputs().unwrap();
        let body = json!({"Outputs": outputs, "Logs": [], "ReturnValue": ret});
        let a = ok(&s, &Map::new(), &body);
        let http = a.http.unwrap();
        assert_eq!((http.status, http.body.as_slice()), (201, &b"dGVzdA=="[..]), "res bodies are not decoded");
        let Write::Queue { messages, .. } = &a.writes[0] else { panic!() };
        assert_eq!(messages, &[b"test".to_vec(), b"abcd1234".to_vec()]);
        assert_eq!(
            a.writes[1],
            Write::Blob {
                path: "files/a.bin".into(),
                connection: "AzureWebJobsStorage".into(),
                content: vec![0, 159, 146, 150]
            }
        );
        let Write::Table { entities, .. } = &a.writes[2] else { panic!() };
        assert_eq!(entities[0]["RowKey"], "r");
    }

    /// docs/host-fidelity.md §7, from `HttpScriptInvocationResultExtensions`, `HttpBinding.CreateResult`
    /// and `WorkerFunctionInvoker.HandleOutputDictionary`: answers shaped as a handler other than
    /// azfn's runtime may send them (the runtime never sends these forms).
    #[test]
    fn the_hosts_lenient_and_strict_readings_of_an_answer() {
        let ret = spec(
            json!([{"type": "httpTrigger", "direction": "in", "name": "req"}, {"type": "http", "direction": "out", "name": "$return"}]),
        );
        // A string is the body; an object without `body` is sent whole; `status` counts when there is no `statusCode`.
        let a = ok(&ret, &Map::new(), &json!({"ReturnValue": "plain text"}));
        assert_eq!((a.http.as_ref().unwrap().status, a.http.unwrap().body), (200, b"plain text".to_vec()));
        let a = ok(&ret, &Map::new(), &json!({"ReturnValue": {"orderId": "o-1"}}));
        assert_eq!(a.http.unwrap().body, b"{\n  \"orderId\": \"o-1\"\n}".to_vec());
        let a = ok(&ret, &Map::new(), &json!({"ReturnValue": {"body": "gone", "status": 410}}));
        assert_eq!(a.http.unwrap().status, 410);
        let a = ok(&ret, &Map::new(), &json!({"ReturnValue": {"body": "x", "statusCode": "201", "status": 410}}));
        assert_eq!(a.http.unwrap().status, 201);

        // `"res": null` fails; no `res` with Outputs gives 200 `{}`; no Outputs gives no response object.
        let res = spec(
            json!([{"type": "httpTrigger", "direction": "in", "name": "req"}, {"type": "http", "direction": "out", "name": "res"}]),
        );
        let err =
            apply(&res, &Map::new(), 200, Some("application/json"), br#"{"Outputs": {"res": null}}"#).unwrap_err();
        assert!(err.contains("httpOutputBindingResponse"), "{err}");
        assert_eq!(ok(&res, &Map::new(), &json!({"Outputs": {}})).http.unwrap().body, b"{}");
        assert_eq!(ok(&res, &Map::new(), &json!({"Logs": []})).http, None);

        // Without a `$return` binding, ReturnValue's keys replace outputs of the same name.
        let q = spec(json!([
            {"type": "queueTrigger", "direction": "in", "name": "m"},
            {"type": "queue", "direction": "out", "name": "jobs", "queueName": "jobs"}
        ]));
        let a = ok(
            &q,
            &Map::new(),
            &json!({"Outputs": {"jobs": "from outputs!"}, "ReturnValue": {"jobs": "from return!"}}),
        );
        let Write::Queue { messages, .. } = &a.writes[0] else { panic!() };
        assert_eq!(messages, &[b"from return!".to_vec()]);

        // The base64 attempt ignores whitespace, as Convert.FromBase64String does.
        let a = ok(&q, &Map::new(), &json!({"Outputs": {"jobs": "SGVs bG8=\n"}}));
        let Write::Queue { messages, .. } = &a.writes[0] else { panic!() };
        assert_eq!(messages, &[b"Hello".to_vec()]);

        // Only JSON content types are read; an empty or null body never completes.
        assert!(apply(&q, &Map::new(), 200, None, b"{}").unwrap_err().contains("not JSON"));
        assert!(never_completes(b"") && never_completes(b" null \n") && !never_completes(b"{}"));
    }

    /// azure-functions-host (89dc438) `RawScriptResult.WriteResponseBodyAsync` and ASP.NET Core's
    /// `StringOutputFormatter`/`TextOutputFormatter`: a string body goes out as it is with
    /// `text/plain; charset=utf-8` (the host's own test `RawScriptResultTests.HandlesStringContent`),
    /// a set Content-Type gets the charset added (`HandlesStringContent_WithHeader` expects
    /// `"application/json; charset=utf-8"`); an object body of `res` is `JToken.ToString()`,
    /// indented, and of a `$return` response `Utility.ToJson(expandoContent, Formatting.None)`,
    /// compact; other values are .NET's `ToString()` (`True`, `1`); a `$return` string that is
    /// base64 is bytes for `ByteArrayOutputFormatter`, with no Content-Type of its own.
    #[test]
    fn bodies_and_content_types_as_raw_script_result_writes_them() {
        let res = spec(
            json!([{"type": "httpTrigger", "direction": "in", "name": "req"}, {"type": "http", "direction": "out", "name": "res"}]),
        );
        let ret = spec(
            json!([{"type": "httpTrigger", "direction": "in", "name": "req"}, {"type": "http", "direction": "out", "name": "$return"}]),
        );
        let sent = |s: &FunctionSpec, body: Value| ok(s, &Map::new(), &body).http.unwrap().finish();
        let ct = |headers: &[(String, String)]| {
            headers.iter().find(|(k, _)| k == "Content-Type").map(|(_, v)| v.clone()).unwrap_or_default()
        };

        let (_, h, b) = sent(&res, json!({"Outputs": {"res": {"statusCode": 200, "body": "hello"}}}));
        assert_eq!((ct(&h).as_str(), b.as_slice()), ("text/plain; charset=utf-8", &b"hello"[..]));
        let (_, h, b) = sent(
            &res,
            json!({"Outputs": {"res": {"body": "hello", "headers": {"Content-Type": "application/json", "content-type": "x/y", "X-N": 5}}}}),
        );
        assert_eq!((ct(&h).as_str(), b.as_slice()), ("application/json; charset=utf-8", &b"hello"[..]));
        assert!(h.contains(&("X-N".to_owned(), "5".to_owned())), "{h:?}");
        let (_, h, _) = sent(
            &res,
            json!({"Outputs": {"res": {"body": "x", "headers": {"content-type": "text/html; charset=iso-8859-1"}}}}),
        );
        assert_eq!(ct(&h), "text/html; charset=utf-8");
        let (_, h, b) = sent(
            &res,
            json!({"Outputs": {"res": {"body": "hé", "headers": {"content-type": "text/plain; charset=utf-16"}}}}),
        );
        assert_eq!((ct(&h).as_str(), b.as_slice()), ("text/plain; charset=utf-16", &[b'h', 0, 0xe9, 0][..]));

        let (_, h, b) = sent(&res, json!({"Outputs": {"res": {"body": {"a": 1}}}}));
        assert_eq!((ct(&h).as_str(), b.as_slice()), ("text/plain; charset=utf-8", &b"{\n  \"a\": 1\n}"[..]));
        let (_, _, b) = sent(&ret, json!({"ReturnValue": {"body": {"a": 1}, "statusCode": 201}}));
        assert_eq!(b, b"{\"a\":1}", "a $return response's object body is compact");
        for (body, text) in [
            (json!(true), "True"),
            (json!(false), "False"),
            (json!(42), "42"),
            (json!(1.0), "1"),
            (json!(1.5), "1.5"),
            (json!(1e15), "1E+15"),
            (json!(0.00001), "1E-05"),
            (json!(null), ""),
        ] {
            let (_, h, b) = sent(&res, json!({"Outputs": {"res": {"body": body}}}));
            assert_eq!(
                (String::from_utf8(b).unwrap().as_str(), ct(&h).as_str()),
                (text, "text/plain; charset=utf-8"),
                "{body}"
            );
        }
        let (_, h, b) = sent(&ret, json!({"ReturnValue": "dGVzdA=="}));
        assert_eq!((ct(&h).as_str(), b.as_slice()), ("", &b"test"[..]), "base64 is bytes, no Content-Type added");
    }
}
