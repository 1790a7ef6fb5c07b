//! The HTTP trigger's request.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

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

/// The host's request object (`HttpRequestExtensions.GetRequestAsJObject`), borrowed from the
/// payload: the invocation's hot path, so no intermediate `Value` tree is built.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "Url", alias = "url", borrow, default)]
    url: Option<Cow<'a, str>>,
    #[serde(rename = "Method", alias = "method", borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(rename = "Query", alias = "query", borrow, default)]
    query: Option<&'a RawValue>,
    #[serde(rename = "Headers", alias = "headers", borrow, default)]
    headers: Option<&'a RawValue>,
    #[serde(rename = "Params", alias = "params", borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(rename = "Identities", alias = "identities", borrow, default)]
    identities: Option<&'a RawValue>,
    #[serde(rename = "Body", alias = "body", borrow, default)]
    body: Option<&'a RawValue>,
}

/// One or more scalar values as text: a string, a number, a boolean, or an array of those.
struct Texts<'a>(Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Texts<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Texts<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a number, a boolean or an array of them")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Borrowed(v)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Owned(v.to_owned())]))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Owned(v)]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Owned(v.to_string())]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Owned(v.to_string())]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Owned(v.to_string())]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Texts(vec![Cow::Owned(v.to_string())]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Texts(Vec::new()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(Texts(items)) = seq.next_element::<Texts<'a>>()? {
                    out.extend(items);
                }
                Ok(Texts(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An object of name -> text(s), which older hosts sent as a JSON string (`"Query": "{}"`).
fn text_entries(raw: Option<&RawValue>, field: &str) -> Result<Vec<(String, Vec<String>)>, BindError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    let text = raw.get().trim_start();
    let bad = |e: serde_json::Error| BindError::new(format!("`{field}` should be an object of strings: {e}"));
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text).map_err(bad)?;
        let inner_raw: Box<RawValue> = serde_json::from_str(&inner).map_err(bad)?;
        return text_entries(Some(&inner_raw), field);
    }
    if text == "null" {
        return Ok(Vec::new());
    }
    let entries: Vec<(Cow<'_, str>, Texts<'_>)> = serde_json::from_str::<MapEntries<'_>>(text).map_err(bad)?.0;
    Ok(entries
        .into_iter()
        .map(|(k, Texts(v))| (k.into_owned(), v.into_iter().map(Cow::into_owned).collect()))
        .collect())
}

/// A JSON object's entries, in order.
struct MapEntries<'a>(Vec<(Cow<'a, str>, Texts<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for MapEntries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MapEntries<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<Cow<'a, str>, Texts<'a>>()? {
                    out.push(entry);
                }
                Ok(MapEntries(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Whether the host sends a body of this content type as base64 (`IsMediaTypeOctetOrMultipart`).
pub(crate) fn is_base64_media_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let ct = ct.trim_start().as_bytes();
    let starts = |p: &str| ct.len() >= p.len() && ct[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    starts("application/octet-stream") || starts("multipart/")
}

impl FromTrigger for HttpRequest {
    const TRIGGER_TYPE: Option<&'static str> = Some("httpTrigger");

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        let raw = input.require_raw()?;
        let wire: Wire<'_> = serde_json::from_str(raw.get()).map_err(|e| {
            BindError::new(format!("the HTTP request should be an object with Url, Method, Headers, ...: {e}"))
        })?;
        let method_text = wire.method.as_deref().unwrap_or("GET");
        let method = Method::from_bytes(method_text.as_bytes())
            .map_err(|_| BindError::new(format!("`Method` is not an HTTP method: {method_text:?}")))?;

        let mut headers = HeaderMap::new();
        for (name, values) in text_entries(wire.headers, "Headers")? {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BindError::new(format!("`Headers` has an invalid header name: {name:?}")))?;
            for text in values {
                let hv = HeaderValue::from_str(&text)
                    .map_err(|_| BindError::new(format!("header `{name}` has an invalid value: {text:?}")))?;
                headers.append(header.clone(), hv);
            }
        }

        let body = match wire.body.map(|b| b.get().trim_start()) {
            None | Some("null") => Bytes::new(),
            Some(text) if text.starts_with('"') => {
                let s: Cow<'_, str> =
                    serde_json::from_str(text).map_err(|e| BindError::new(format!("`Body` is not a string: {e}")))?;
                let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
                if is_base64_media_type(ct) {
                    Bytes::from(BASE64.decode(s.trim()).map_err(|e| {
                        BindError::new(format!("`Body` of a {} request should be base64: {e}", ct.unwrap_or_default()))
                    })?)
                } else {
                    Bytes::from(s.into_owned())
                }
            }
            // Not what the host sends, but a hand-written payload may carry the JSON body as an object.
            Some(other) => Bytes::from(other.to_owned()),
        };

        let identities = match wire.identities {
            None => Vec::new(),
            Some(raw) => {
                let v: Value = serde_json::from_str(raw.get())
                    .map_err(|e| BindError::new(format!("`Identities` is not JSON: {e}")))?;
                match value_json(&v).map(|c| c.into_owned()) {
                    Ok(Value::Array(items)) => items,
                    Ok(Value::Null) => Vec::new(),
                    _ => return Err(BindError::new("`Identities` should be an array")),
                }
            }
        };

        let joined = |entries: Vec<(String, Vec<String>)>| entries.into_iter().map(|(k, v)| (k, v.join(","))).collect();
        Ok(Self {
            method,
            url: wire.url.map(Cow::into_owned).unwrap_or_default(),
            query: joined(text_entries(wire.query, "Query")?),
            headers,
            params: joined(text_entries(wire.params, "Params")?),
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
