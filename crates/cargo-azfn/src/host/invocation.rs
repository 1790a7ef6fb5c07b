//! Building invocations exactly as the Azure Functions host does for a custom handler.
//!
//! The rules, from the host's source (Azure/azure-functions-host; see the fixtures' README):
//! - `Data` has one entry per input binding; `Metadata` is the trigger's binding data;
//! - scalar values (strings, numbers, booleans, arrays) pass through `JsonConvert.SerializeObject`,
//!   so the string `hi` is sent as `"\"hi\""` and the number `4` as `"4"`; objects stay objects;
//!   `byte[]` becomes base64; dates become ISO-8601 strings without fractional seconds;
//! - `null` values and keys ending in `trigger` (`QueueTrigger`, `BlobTrigger`) are left out;
//! - when the trigger value is a JSON object, its top-level non-array properties are copied into the
//!   binding data (`Utility.ApplyBindingData`): objects as objects, the rest as text;
//! - `sys` (`MethodName`, `UtcNow`, `RandGuid`) is always there.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use azfn::encoding::encode_base64;

/// An invocation payload: `{"Data": …, "Metadata": …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// `Data`: input binding name -> value.
    pub data: Map<String, Value>,
    /// `Metadata`: the trigger's binding data, encoded and filtered.
    pub metadata: Map<String, Value>,
    /// The trigger's bytes, when the `binary` data type is to be given them rather than the text
    /// (a queue message that is not UTF-8). Not sent.
    pub raw: Option<Vec<u8>>,
}

impl Invocation {
    fn new(function: &str) -> Self {
        let mut metadata = Map::new();
        metadata.insert("sys".into(), sys(function));
        Self { data: Map::new(), metadata, raw: None }
    }

    /// The JSON body the host POSTs.
    pub fn to_json(&self) -> Value {
        json!({"Data": self.data, "Metadata": self.metadata})
    }

    /// Adds a binding-data entry with the host's encoding and filters. Binding data is
    /// case-insensitive (an OrdinalIgnoreCase dictionary in the host): a key that differs only in
    /// case replaces the value of the one already there, which keeps its spelling.
    pub fn bind(&mut self, key: &str, value: Value) {
        if value.is_null() || key.to_ascii_lowercase().ends_with("trigger") {
            return;
        }
        let key = self.metadata.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned().unwrap_or_else(|| key.to_owned());
        self.metadata.insert(key, encode(value));
    }

    /// Copies the top-level properties of a JSON-object trigger value into the binding data.
    pub fn promote(&mut self, text: &str) {
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) else { return };
        for (k, v) in obj {
            let v = match v {
                Value::Array(_) | Value::Null => continue,
                Value::Object(o) => Value::Object(o),
                Value::String(s) => Value::String(newtonsoft_date(&s).unwrap_or(s)),
                Value::Bool(b) => Value::String(if b { "True" } else { "False" }.to_owned()),
                Value::Number(n) => Value::String(newtonsoft_number(&n)),
            };
            self.bind(&k, v);
        }
    }
}

/// A promoted number as `(string)JValue` gives it (invariant culture): integers as they are, a
/// double without a fraction without its `.0` (`3.0` -> `3`).
fn newtonsoft_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

/// A promoted string that Newtonsoft's reader takes for a date (ISO 8601 with a time), as
/// `(string)JValue` then prints it: `MM/dd/yyyy HH:mm:ss`, in UTC.
fn newtonsoft_date(s: &str) -> Option<String> {
    let looks_like = s.len() >= 19 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T';
    if !looks_like {
        return None;
    }
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc()))?;
    Some(t.format("%m/%d/%Y %H:%M:%S").to_string())
}

/// `JsonConvert.SerializeObject` for scalars and arrays; objects are kept as they are.
pub fn encode(value: Value) -> Value {
    match value {
        Value::Object(_) | Value::Null => value,
        other => Value::String(other.to_string()),
    }
}

/// A `DateTimeOffset` as the host sends it: ISO-8601, whole seconds, `+00:00`.
pub fn host_time(t: DateTime<Utc>) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

/// `Metadata.sys` for a function.
pub fn sys(function: &str) -> Value {
    json!({
        "MethodName": function,
        "UtcNow": Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
        "RandGuid": uuid::Uuid::new_v4().to_string(),
    })
}

/// What an HTTP request carries into an invocation.
#[derive(Debug, Clone, Default)]
pub struct HttpParts {
    /// `GET`, `POST`, …
    pub method: String,
    /// The full URL, with the route prefix and the query string.
    pub url: String,
    /// Query parameters in order (repeated keys are joined with `,`).
    pub query: Vec<(String, String)>,
    /// Headers in order (repeated names become arrays).
    pub headers: Vec<(String, String)>,
    /// Route parameters; `None` for an optional one the path left out.
    pub params: BTreeMap<String, Option<String>>,
    /// The body; left out when empty (the host reads it only with a Content-Length above 0).
    pub body: Vec<u8>,
}

/// The invocation of an HTTP-triggered function in the default protocol
/// (`HttpRequestExtensions.GetRequestAsJObject` and the HTTP binding data).
pub fn http(function: &str, binding: &str, req: &HttpParts) -> Invocation {
    let mut inv = Invocation::new(function);
    let mut query = Map::new();
    for (k, v) in &req.query {
        match query.get_mut(k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(v);
            }
            _ => {
                query.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    let mut headers: Map<String, Value> = Map::new();
    for (k, v) in &req.headers {
        let name = headers.keys().find(|h| h.eq_ignore_ascii_case(k)).cloned().unwrap_or_else(|| k.clone());
        match headers.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(values) => values.push(Value::String(v.clone())),
            _ => unreachable!("header entries are arrays"),
        }
    }
    let content_type =
        req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.as_str());
    let mut value = json!({
        "Url": req.url,
        "Method": req.method,
        "Query": query,
        "Headers": headers,
        "Identities": [{"AuthenticationType": null, "IsAuthenticated": false, "Actor": null, "BootstrapContext": null,
                        "Claims": [], "Label": null, "Name": null,
                        "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
                        "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}],
    });
    // Always sent, with null for an optional parameter the path left out.
    value["Params"] = json!(req.params);
    let body_text = (!req.body.is_empty()).then(|| {
        if azfn::http::request::is_base64_media_type(content_type) {
            encode_base64(&req.body)
        } else {
            String::from_utf8_lossy(&req.body).into_owned()
        }
    });
    if let Some(text) = &body_text {
        value["Body"] = Value::String(text.clone());
    }
    inv.data.insert(binding.to_owned(), value);

    // Binding data, as azure-webjobs-sdk-extensions builds it in
    // src/WebJobs.Extensions.Http/HttpTriggerAttributeBindingProvider.cs,
    // `HttpTriggerBinding.GetRequestBindingData`: "apply binding data from request body if present"
    // (`Utility.ApplyBindingData(body, bindingData)`, only when `request.ContentLength > 0`), then
    // "apply binding data from the query string" (`bindingData[pair.Key] = pair.Value.ToString()`,
    // skipping `code`), then "apply binding data from route parameters" (`bindingData[pair.Key] =
    // value`): each later one overwrites, so the route beats the query, which beats the body.
    // Query (the last value of a repeated key) and Headers (comma-joined) go in as well.
    let last_values: Map<String, Value> =
        req.query.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    inv.metadata.insert("Query".into(), Value::Object(last_values.clone()));
    let joined: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            let parts: Vec<&str> = v.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            (k.clone(), Value::String(parts.join(",")))
        })
        .collect();
    inv.metadata.insert("Headers".into(), Value::Object(joined));
    if let Some(text) = &body_text {
        // Whatever its content type: a body that parses as a JSON object is promoted.
        inv.promote(text);
    }
    for (k, v) in last_values {
        if !k.eq_ignore_ascii_case("code") {
            inv.bind(&k, v);
        }
    }
    for (k, v) in &req.params {
        if let Some(v) = v {
            inv.bind(k, Value::String(v.clone()));
        }
    }
    inv
}

/// What a storage queue message carries into an invocation.
#[derive(Debug, Clone)]
pub struct QueueParts {
    /// The message text.
    pub text: String,
    /// The message id; `None` when run through the admin endpoint.
    pub id: Option<String>,
    /// The pop receipt.
    pub pop_receipt: Option<String>,
    /// How many times it has been dequeued.
    pub dequeue_count: u64,
    /// When it was inserted.
    pub insertion_time: Option<DateTime<Utc>>,
    /// When it expires.
    pub expiration_time: Option<DateTime<Utc>>,
    /// When it becomes visible again.
    pub next_visible_time: Option<DateTime<Utc>>,
}

impl QueueParts {
    /// A message given as text to the admin endpoint: `QueuesModelFactory.QueueMessage(null, null,
    /// text, 0)` in the host, so no id, no pop receipt, no times, and a dequeue count of 0.
    pub fn admin(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            id: None,
            pop_receipt: None,
            dequeue_count: 0,
            insertion_time: None,
            expiration_time: None,
            next_visible_time: None,
        }
    }
}

/// The invocation of a queue-triggered function (`QueueTriggerBinding` binding data; the trigger
/// value is the message text, as a string).
pub fn queue(function: &str, binding: &str, msg: &QueueParts) -> Invocation {
    let mut inv = Invocation::new(function);
    inv.data.insert(binding.to_owned(), encode(Value::String(msg.text.clone())));
    inv.metadata.insert("DequeueCount".into(), Value::String(msg.dequeue_count.to_string()));
    for (k, t) in [
        ("ExpirationTime", msg.expiration_time),
        ("InsertionTime", msg.insertion_time),
        ("NextVisibleTime", msg.next_visible_time),
    ] {
        if let Some(t) = t {
            inv.metadata.insert(k.into(), host_time(t));
        }
    }
    if let Some(id) = &msg.id {
        inv.bind("Id", Value::String(id.clone()));
    }
    if let Some(p) = &msg.pop_receipt {
        inv.bind("PopReceipt", Value::String(p.clone()));
    }
    inv.promote(&msg.text);
    inv
}

/// The invocation of a blob-triggered function: the content as base64, `Uri`, `Properties`, the
/// blob's user `Metadata`, and each `{parameter}` of the path pattern.
pub fn blob(
    function: &str,
    binding: &str,
    content: &[u8],
    uri: &str,
    properties: Value,
    params: &BTreeMap<String, String>,
) -> Invocation {
    let mut inv = Invocation::new(function);
    inv.data.insert(binding.to_owned(), Value::String(encode_base64(content)));
    inv.bind("Uri", Value::String(uri.to_owned()));
    let user_metadata = properties.get("Metadata").cloned().unwrap_or_else(|| json!({}));
    inv.metadata.insert("Properties".into(), properties);
    inv.metadata.insert("Metadata".into(), user_metadata);
    for (k, v) in params {
        inv.bind(k, Value::String(v.clone()));
    }
    inv
}

/// Applies the trigger binding's `dataType` to the trigger value, as the host converts it before it
/// sends it: a queue trigger with `dataType: binary` gets the message bytes as base64, a blob
/// trigger with `dataType: string` gets the content as text (docs/host-fidelity.md §4).
pub fn apply_data_type(trigger: &azfn::function_json::Binding, inv: &mut Invocation) {
    let Some(value) = inv.data.get_mut(&trigger.name) else { return };
    let data_type = trigger.data_type.as_deref().unwrap_or_default().to_ascii_lowercase();
    if trigger.is_type("queueTrigger") && data_type == "binary" {
        if let Some(bytes) = &inv.raw {
            *value = Value::String(encode_base64(bytes));
        } else if let Value::String(s) = value {
            let text = azfn::encoding::unwrap_text(s).into_owned();
            *value = Value::String(encode_base64(text.as_bytes()));
        }
    } else if trigger.is_type("blobTrigger")
        && data_type == "string"
        && let Value::String(s) = value
        && let Some(bytes) = azfn::encoding::decode_base64(s)
    {
        *value = encode(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    }
}

/// The schedule monitor's `(Last, Next)` occurrences.
pub type MonitorStatus = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The invocation of a timer-triggered function (`TimerInfo`; binding data is only `sys`).
///
/// `status` is the schedule monitor's `(Last, Next)`, or `None` without a monitor: then
/// `ScheduleStatus` is `null`, as azure-webjobs-sdk-extensions' `TimerListener` builds it
/// (src/WebJobs.Extensions/Extensions/Timers/Listener/TimerListener.cs: `ScheduleStatus
/// timerInfoStatus = null; if (ScheduleMonitor != null) { timerInfoStatus = ScheduleStatus; }
/// TimerInfo timerInfo = new TimerInfo(_schedule, timerInfoStatus, isPastDue);`).
pub fn timer(function: &str, binding: &str, past_due: bool, status: Option<MonitorStatus>) -> Invocation {
    let mut inv = Invocation::new(function);
    // `Last` before the first occurrence is .NET's DateTime.MinValue.
    let never = || Value::String("0001-01-01T00:00:00".to_owned());
    let status = match status {
        Some((last, next)) => json!({
            "Last": last.map(host_time).unwrap_or_else(never),
            "Next": next.map(host_time).unwrap_or(Value::Null),
            "LastUpdated": last.map(host_time).unwrap_or_else(never),
        }),
        None => Value::Null,
    };
    inv.data.insert(
        binding.to_owned(),
        json!({"Schedule": {"AdjustForDST": true}, "ScheduleStatus": status, "IsPastDue": past_due}),
    );
    inv
}

/// The invocation of an Event Grid-triggered function for one event (single dispatch): the event
/// as indented JSON text (`JToken.ToString(Formatting.Indented)`), and only `data` as binding data
/// (`EventGridTriggerAttributeBindingProvider.BindAsync`).
pub fn event_grid(function: &str, binding: &str, event: &Value) -> Invocation {
    let mut inv = Invocation::new(function);
    let text = serde_json::to_string_pretty(event).expect("JSON");
    inv.data.insert(binding.to_owned(), encode(Value::String(text)));
    if let Some(data) = event.get("data").filter(|d| !d.is_null()) {
        inv.bind("data", data.clone());
    }
    inv
}

/// The invocation a string trigger value makes: the text as `Data` (double-encoded), the given
/// binding data, and JSON-object promotion. Used for inputs given to `POST /admin/functions/{name}`
/// for Service Bus, Event Grid and other string-valued triggers.
pub fn text(function: &str, binding: &str, text: &str, binding_data: &[(&str, Value)]) -> Invocation {
    let mut inv = Invocation::new(function);
    inv.data.insert(binding.to_owned(), encode(Value::String(text.to_owned())));
    for (k, v) in binding_data {
        inv.bind(k, v.clone());
    }
    inv.promote(text);
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::test_support::{binding, fixture, parse};
    use azfn::{BlobInput, HttpRequest, QueueMessage, TimerInfo};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn queue_invocation_matches_the_derived_fixture() {
        let inv = queue(
            "MyQueueFunction",
            "myQueueItem",
            &QueueParts {
                text: r#"{"orderId":42,"note":"hi"}"#.into(),
                id: Some("b0f7e0a4-2f4e-4a4e-9c59-6f3f1f1e2a11".into()),
                pop_receipt: Some("AgAAAAMAAAAAAAAAAgtnj8x+1QE=".into()),
                dequeue_count: 1,
                insertion_time: Some(t("2024-05-01T10:00:00Z")),
                expiration_time: Some(t("2024-05-08T10:00:00Z")),
                next_visible_time: Some(t("2024-05-01T10:10:00Z")),
            },
        );
        let mut expected = fixture("derived-queue-trigger.request.json");
        let mut got = inv.to_json();
        for v in [&mut expected, &mut got] {
            v["Metadata"].as_object_mut().unwrap().remove("sys");
        }
        assert_eq!(got, expected);
        assert_eq!(inv.metadata["sys"]["MethodName"], "MyQueueFunction");
    }

    #[test]
    fn http_invocation_round_trips_through_the_trigger() {
        let inv = http(
            "GetOrder",
            "req",
            &HttpParts {
                method: "POST".into(),
                url: "http://localhost:7071/api/orders/o-1?code=k&tag=a&tag=b".into(),
                query: vec![("code".into(), "k".into()), ("tag".into(), "a".into()), ("tag".into(), "b".into())],
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("X-Trace".into(), "1".into()),
                    ("x-trace".into(), "2".into()),
                ],
                params: [("id".to_owned(), Some("o-1".to_owned()))].into_iter().collect(),
                body: br#"{"customerId":"c-1","vip":true,"items":[1]}"#.to_vec(),
            },
        );
        // Metadata.Query keeps a repeated key's last value; the request's own Query joins them.
        assert_eq!(inv.metadata["Query"]["tag"], "b");
        assert_eq!(inv.metadata["tag"], "\"b\"");
        assert!(inv.metadata.get("code").is_none(), "`code` is not bound");
        assert_eq!(inv.metadata["Headers"]["X-Trace"], "1,2");
        assert_eq!(inv.metadata["id"], "\"o-1\"");
        assert_eq!(inv.metadata["customerId"], "\"c-1\"");
        assert_eq!(inv.metadata["vip"], "\"True\"");
        assert!(inv.metadata.get("items").is_none(), "arrays are not promoted");
        let req: HttpRequest = parse(&inv.to_json(), &binding("httpTrigger", "req", json!({}))).unwrap();
        assert_eq!(req.param("id"), Some("o-1"));
        assert_eq!(req.query("tag"), Some("a,b"));
        assert_eq!(req.headers.get_all("x-trace").iter().count(), 2);
        assert_eq!(req.json::<Value>().unwrap()["customerId"], "c-1");
    }

    #[test]
    fn binary_http_bodies_are_base64_and_empty_bodies_absent() {
        let mut parts = HttpParts {
            method: "PUT".into(),
            url: "http://localhost/api/up".into(),
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: vec![0, 255],
            ..Default::default()
        };
        let inv = http("Up", "req", &parts);
        assert_eq!(inv.data["req"]["Body"], "AP8=");
        let req: HttpRequest = parse(&inv.to_json(), &binding("httpTrigger", "req", json!({}))).unwrap();
        assert_eq!(&req.body[..], &[0, 255]);
        parts.body.clear();
        assert!(http("Up", "req", &parts).data["req"].get("Body").is_none());
        assert_eq!(http("Up", "req", &parts).data["req"]["Params"], json!({}), "Params is always sent");
    }

    #[test]
    fn queue_text_blob_and_timer_round_trip() {
        let q = queue("F", "m", &QueueParts::admin("plain"));
        assert!(q.metadata.get("Id").is_none(), "admin-endpoint messages have no id");
        let m: QueueMessage = parse(&q.to_json(), &binding("queueTrigger", "m", json!({}))).unwrap();
        assert_eq!(m.body, "plain");

        let params = [("name".to_owned(), "o-1.json".to_owned())].into_iter().collect();
        let b = blob(
            "A",
            "receipt",
            b"{}",
            "http://127.0.0.1:10000/devstoreaccount1/receipts/o-1.json",
            json!({"ContentLength": 2, "Metadata": {"k": "v"}}),
            &params,
        );
        let input: BlobInput =
            parse(&b.to_json(), &binding("blobTrigger", "receipt", json!({"path": "receipts/{name}"}))).unwrap();
        assert_eq!(&input.content[..], b"{}");
        assert_eq!(input.param("name"), Some("o-1.json"));
        assert_eq!(input.metadata["k"], "v");
        assert_eq!(input.uri.as_deref(), Some("http://127.0.0.1:10000/devstoreaccount1/receipts/o-1.json"));

        let tm = timer("T", "timer", true, Some((Some(t("2024-05-01T09:55:00Z")), Some(t("2024-05-01T10:00:00Z")))));
        let info: TimerInfo = parse(&tm.to_json(), &binding("timerTrigger", "timer", json!({}))).unwrap();
        assert!(info.is_past_due);
        assert_eq!(info.schedule_status.unwrap().next.unwrap(), t("2024-05-01T10:00:00Z"));
        assert_eq!(tm.metadata.len(), 1, "a timer's binding data is only sys");
    }

    #[test]
    fn data_type_changes_the_trigger_value_as_the_host_does() {
        let queue: azfn::function_json::Binding = serde_json::from_value(
            json!({"type": "queueTrigger", "direction": "in", "name": "m", "dataType": "binary"}),
        )
        .unwrap();
        let parts = QueueParts::admin("hello");
        let mut inv = super::queue("F", "m", &parts);
        apply_data_type(&queue, &mut inv);
        assert_eq!(inv.data["m"], "aGVsbG8=");
        let blob: azfn::function_json::Binding = serde_json::from_value(
            json!({"type": "blobTrigger", "direction": "in", "name": "b", "path": "c/{n}", "dataType": "string"}),
        )
        .unwrap();
        let mut inv = super::blob("F", "b", b"text", "http://x/c/n", json!({}), &BTreeMap::new());
        apply_data_type(&blob, &mut inv);
        assert_eq!(inv.data["b"], "\"text\"");
        // Without dataType, nothing changes.
        let plain: azfn::function_json::Binding =
            serde_json::from_value(json!({"type": "blobTrigger", "direction": "in", "name": "b", "path": "c/{n}"}))
                .unwrap();
        let mut inv = super::blob("F", "b", b"text", "http://x/c/n", json!({}), &BTreeMap::new());
        apply_data_type(&plain, &mut inv);
        assert_eq!(inv.data["b"], "dGV4dA==");
    }

    #[test]
    fn timer_status_before_the_first_run_and_for_the_occurrence_now_firing() {
        let due = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:05:00Z").unwrap().to_utc();
        let inv = timer("T", "timer", false, Some((None, Some(due))));
        let status = &inv.data["timer"]["ScheduleStatus"];
        assert_eq!(status["Last"], "0001-01-01T00:00:00");
        assert_eq!(status["Next"], "2026-11-27T10:05:00+00:00");
        let info: azfn::TimerInfo = parse(&inv.to_json(), &binding("timerTrigger", "timer", json!({}))).unwrap();
        assert_eq!(info.schedule_status.unwrap().next, Some(due));
    }

    /// azure-webjobs-sdk-extensions src/WebJobs.Extensions.Http/HttpTriggerAttributeBindingProvider.cs,
    /// `HttpTriggerBinding.GetRequestBindingData` (at 978e6d43), in this order:
    /// `// apply binding data from request body if present` ... `Utility.ApplyBindingData(body, bindingData);`
    /// `// apply binding data from the query string` ... `if (string.Compare("code", pair.Key, ...) == 0) { ... continue; }`
    /// ... `bindingData[pair.Key] = pair.Value.ToString();`
    /// `// apply binding data from route parameters` ... `bindingData[pair.Key] = value;`
    /// Each later assignment overwrites: the route beats the query, which beats the body.
    #[test]
    fn http_binding_data_route_beats_query_beats_body() {
        let parts = HttpParts {
            method: "PUT".into(),
            url: "http://localhost/api/orders/o-route?id=o-query&kind=q1&kind=q2&code=secret".into(),
            // Repeated keys arrive joined; the binding data keeps the last value.
            query: vec![
                ("id".into(), "o-query".into()),
                ("kind".into(), "q1,q2".into()),
                ("code".into(), "secret".into()),
            ],
            headers: vec![("Content-Length".into(), "60".into())],
            params: [("id".to_owned(), Some("o-route".to_owned()))].into_iter().collect(),
            body: br#"{"id": "o-body", "kind": "body", "note": "from the body", "code": "b"}"#.to_vec(),
        };
        let inv = http("PutOrder", "req", &parts);
        // (Metadata strings are JSON-encoded once more, as the host sends them.)
        assert_eq!(inv.metadata["id"], json!("\"o-route\""), "the route beats the query and the body");
        assert_eq!(inv.metadata["note"], json!("\"from the body\""), "the body's own keys are bound");
        assert_eq!(inv.metadata["code"], json!("\"b\""), "`code` from the query is skipped; the body's stays");
        assert!(inv.metadata["kind"] != json!("\"body\""), "the query beats the body: {}", inv.metadata["kind"]);
    }

    #[test]
    fn params_are_always_sent_with_null_for_an_unmatched_optional_one() {
        let parts = HttpParts {
            method: "GET".into(),
            url: "http://localhost/api/items".into(),
            query: vec![],
            headers: vec![],
            params: [("id".to_owned(), None)].into_iter().collect(),
            body: vec![],
        };
        let inv = http("Item", "req", &parts);
        assert_eq!(inv.data["req"]["Params"], json!({"id": null}));
        assert!(inv.metadata.get("id").is_none());
        let req: HttpRequest = parse(&inv.to_json(), &binding("httpTrigger", "req", json!({}))).unwrap();
        assert_eq!(req.param("id"), None);
    }

    #[test]
    fn promoted_numbers_and_dates_as_newtonsoft_prints_them() {
        let mut inv = Invocation::new("F");
        inv.promote(
            r#"{"total": 3.0, "price": 1.5, "n": 7, "at": "2026-11-27T10:05:03Z", "day": "2026-11-27", "note": "x"}"#,
        );
        assert_eq!(inv.metadata["total"], "\"3\"");
        assert_eq!(inv.metadata["price"], "\"1.5\"");
        assert_eq!(inv.metadata["n"], "\"7\"");
        assert_eq!(inv.metadata["at"], "\"11/27/2026 10:05:03\"");
        assert_eq!(inv.metadata["day"], "\"2026-11-27\"", "a date without a time stays a string");
        assert_eq!(crate::host::front::kestrel_name("content-type"), "Content-Type");
        assert_eq!(crate::host::front::kestrel_name("x-custom"), "x-custom");
    }
}
