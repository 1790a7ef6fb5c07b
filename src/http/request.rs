//! The HTTP trigger's request.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::encoding::{BASE64, value_json};
use crate::error::BindError;
use crate::triggers::{FromTrigger, TriggerInput};

/// An HTTP request that triggered a function (`httpTrigger`).
///
/// In the default protocol the host sends the request as JSON (`Url`, `Method`, `Query`, `Headers` as
/// arrays, `Params`, `Identities`, and `Body` as text or, for `application/octet-stream` and
/// `multipart/*`, base64). With `enableForwardingHttpRequest` the host forwards the request itself.
/// Either way the handler sees this type.
///
/// ```
/// use azfn::{HttpRequest, HttpResponse};
///
/// async fn hello(req: HttpRequest, _ctx: azfn::Context) -> Result<HttpResponse, azfn::Error> {
///     let name = req.query("name").unwrap_or("world");
///     Ok(HttpResponse::ok().text(format!("Hello, {name}")))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The full URL the caller used, including the route prefix and query string.
    pub url: String,
    /// Query parameters; repeated keys are joined with `,` (as the host does).
    pub query: BTreeMap<String, String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// Route parameters, e.g. `id` for the route `orders/{id}`.
    pub params: BTreeMap<String, String>,
    /// The caller's identities (serialized `ClaimsIdentity` objects), as the host sends them.
    pub identities: Vec<Value>,
    /// The body; empty when the request had none (or no `Content-Length`, which the host drops).
    pub body: Bytes,
}

impl HttpRequest {
    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A route parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A header, as text (the first value).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The URL's path, e.g. `/api/orders/42`.
    pub fn path(&self) -> &str {
        let after_scheme = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
        path.split(['?', '#']).next().unwrap_or("/")
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, BodyError> {
        std::str::from_utf8(&self.body).map_err(|e| BodyError(format!("the request body is not UTF-8 text: {e}")))
    }

    /// The body parsed as JSON into `T`; the error says what did not fit and where.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, BodyError> {
        if self.body.is_empty() {
            return Err(BodyError("the request has no body; send a JSON document".into()));
        }
        serde_json::from_slice(&self.body).map_err(|e| BodyError(format!("the request body is not valid: {e}")))
    }
}

/// A request body that cannot be read as asked. Converts into a `400 Bad Request` [`HttpResponse`](crate::HttpResponse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}

/// Case-insensitive lookup of a field of the host's request object.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key)
        .or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// An object that older hosts sent as a JSON string (`"Query": "{}"`).
fn object_field(obj: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, BindError> {
    match field(obj, key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(v) => match value_json(v) {
            Ok(std::borrow::Cow::Borrowed(Value::Object(m))) => Ok(m.clone()),
            Ok(std::borrow::Cow::Owned(Value::Object(m))) => Ok(m),
            _ => Err(BindError::new(format!("`{key}` should be an object, got {v}"))),
        },
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Whether the host sends a body of this content type as base64 (`IsMediaTypeOctetOrMultipart`).
pub(crate) fn is_base64_media_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let ct = ct.trim().to_ascii_lowercase();
    ct.starts_with("application/octet-stream") || ct.starts_with("multipart/")
}

impl FromTrigger for HttpRequest {
    const TRIGGER_TYPE: Option<&'static str> = Some("httpTrigger");

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        let value = input.require_value()?;
        let Value::Object(obj) = value else {
            return Err(BindError::new(
                "the HTTP request should be an object with Url, Method, Headers, ...",
            ));
        };
        let method_text = field(obj, "Method").and_then(Value::as_str).unwrap_or("GET");
        let method = Method::from_bytes(method_text.as_bytes())
            .map_err(|_| BindError::new(format!("`Method` is not an HTTP method: {method_text:?}")))?;
        let url = field(obj, "Url").and_then(Value::as_str).unwrap_or_default().to_owned();

        let mut headers = HeaderMap::new();
        for (name, values) in object_field(obj, "Headers")? {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BindError::new(format!("`Headers` has an invalid header name: {name:?}")))?;
            let values: Vec<&Value> = match &values {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for v in values {
                let text = scalar_text(v);
                let hv = HeaderValue::from_str(&text)
                    .map_err(|_| BindError::new(format!("header `{name}` has an invalid value: {text:?}")))?;
                headers.append(header.clone(), hv);
            }
        }

        let body = match field(obj, "Body") {
            None | Some(Value::Null) => Bytes::new(),
            Some(Value::String(s)) => {
                let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
                if is_base64_media_type(ct) {
                    Bytes::from(BASE64.decode(s.trim()).map_err(|e| {
                        BindError::new(format!(
                            "`Body` of a {} request should be base64: {e}",
                            ct.unwrap_or_default()
                        ))
                    })?)
                } else {
                    Bytes::from(s.clone())
                }
            }
            // Not what the host sends, but a hand-written payload may carry the JSON body as an object.
            Some(other) => Bytes::from(other.to_string()),
        };

        let identities = match field(obj, "Identities") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => match value_json(v).map(|c| c.into_owned()) {
                Ok(Value::Array(items)) => items,
                _ => return Err(BindError::new("`Identities` should be an array")),
            },
        };

        let to_text_map = |m: Map<String, Value>| m.into_iter().map(|(k, v)| (k, scalar_text(&v))).collect();
        Ok(Self {
            method,
            url,
            query: to_text_map(object_field(obj, "Query")?),
            headers,
            params: to_text_map(object_field(obj, "Params")?),
            identities,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::test_support::*;
    use serde_json::json;

    fn req_binding() -> crate::function_json::Binding {
        binding("httpTrigger", "req", json!({}))
    }

    #[test]
    fn derived_current_host_request() {
        let req = fixture("derived-http-trigger.request.json");
        let r: HttpRequest = parse(&req, &req_binding()).unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path(), "/api/orders");
        assert_eq!(r.query("code"), Some("abc"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.identities.len(), 1);
        let v: Value = r.json().unwrap();
        assert_eq!(v["customerId"], json!("c-42"));
    }

    #[test]
    fn docs_order_request_with_string_query() {
        // Pre-#6621 hosts (and the docs) send Query as a JSON string.
        let req = fixture("docs-http-trigger-order.request.json");
        let r: HttpRequest = parse(&req, &req_binding()).unwrap();
        assert!(r.query.is_empty());
        assert_eq!(r.text().unwrap(), r#"{"id":1005,"quantity":2,"color":"black"}"#);
    }

    #[test]
    fn route_params_and_repeated_headers() {
        let req = fixture("derived-http-trigger-route-params.request.json");
        let r: HttpRequest = parse(&req, &req_binding()).unwrap();
        assert_eq!(r.param("id"), Some("o-1"));
        let traces: Vec<_> = r.headers.get_all("x-trace").iter().collect();
        assert_eq!(traces.len(), 2);
        assert!(r.body.is_empty());
        assert!(r.json::<Value>().unwrap_err().0.contains("no body"));
    }

    #[test]
    fn octet_stream_body_is_base64() {
        let req = fixture("derived-http-trigger-binary.request.json");
        let r: HttpRequest = parse(&req, &req_binding()).unwrap();
        assert_eq!(&r.body[..], &[0, 1, 255, 128]);
        assert_eq!(r.method, Method::PUT);
    }

    #[test]
    fn bad_json_body_says_where() {
        let req = json!({"Data": {"req": {"Url": "http://x/api/a", "Method": "POST", "Headers": {}, "Body": "{\"a\": }"}}, "Metadata": {}});
        let r: HttpRequest = parse(&req, &req_binding()).unwrap();
        let err = r.json::<Value>().unwrap_err();
        assert!(err.0.contains("line 1 column"), "{err}");
    }

    #[test]
    fn invalid_method_is_named() {
        let req = json!({"Data": {"req": {"Url": "http://x/", "Method": "GE T"}}, "Metadata": {}});
        let err = parse::<HttpRequest>(&req, &req_binding()).unwrap_err();
        assert!(err.to_string().contains("`Method`"), "{err}");
    }

    #[test]
    fn path_of_urls() {
        let mut r: HttpRequest = parse(&fixture("derived-http-trigger.request.json"), &req_binding()).unwrap();
        r.url = "http://h".into();
        assert_eq!(r.path(), "/");
        r.url = "/api/x?y=1".into();
        assert_eq!(r.path(), "/api/x");
    }
}
