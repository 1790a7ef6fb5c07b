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

use crate::encoding::{BASE64, BorrowedText, value_json};
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
    /// The caller's identities (serialized `ClaimsIdentity` objects), read on first use.
    pub identities: Identities,
    /// The body; empty when the request had none (or no `Content-Length`, which the host drops).
    pub body: Bytes,
}

impl HttpRequest {
    /// A request with no headers, parameters or body (for tests): `method` (e.g. `"GET"`; an
    /// unknown one is taken as GET) on `url`, whose query string fills [`query`](Self::query).
    ///
    /// ```
    /// let req = azfn::HttpRequest::new("GET", "http://localhost:7071/api/hello?name=Ada");
    /// assert_eq!((req.path(), req.query("name")), ("/api/hello", Some("Ada")));
    /// ```
    pub fn new(method: &str, url: &str) -> Self {
        let query = url.split('#').next().unwrap_or_default().split_once('?').map(|(_, q)| q);
        Self {
            method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
            url: url.to_owned(),
            query: super::forward::parse_query(query),
            headers: HeaderMap::new(),
            params: BTreeMap::new(),
            identities: Identities::default(),
            body: Bytes::new(),
        }
    }

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

/// The host's request object (`HttpRequestExtensions.GetRequestAsJObject`), read in one pass and
/// borrowed from the payload: the invocation's hot path, so no intermediate `Value` tree is built.
#[derive(Deserialize)]
pub(crate) struct Wire<'a> {
    #[serde(rename = "Url", alias = "url", borrow, default)]
    url: Option<Cow<'a, str>>,
    #[serde(rename = "Method", alias = "method", borrow, default)]
    method: Option<BorrowedText<'a>>,
    #[serde(rename = "Query", alias = "query", borrow, default)]
    query: MapEntries<'a>,
    #[serde(rename = "Headers", alias = "headers", borrow, default)]
    headers: MapEntries<'a>,
    #[serde(rename = "Params", alias = "params", borrow, default)]
    params: MapEntries<'a>,
    #[serde(rename = "Identities", alias = "identities", borrow, default)]
    identities: Option<&'a RawValue>,
    #[serde(rename = "Body", alias = "body", borrow, default)]
    body: Option<&'a RawValue>,
}

/// The same object with every field kept raw: read only to say which field was wrong.
#[derive(Deserialize)]
struct WireFields<'a> {
    #[serde(rename = "Query", alias = "query", borrow, default)]
    query: Option<&'a RawValue>,
    #[serde(rename = "Headers", alias = "headers", borrow, default)]
    headers: Option<&'a RawValue>,
    #[serde(rename = "Params", alias = "params", borrow, default)]
    params: Option<&'a RawValue>,
}

/// The error for a request object that did not parse, naming the field when one is at fault.
fn wire_error(text: &str, error: serde_json::Error) -> BindError {
    if let Ok(fields) = serde_json::from_str::<WireFields<'_>>(text) {
        for (field, raw) in [("Query", fields.query), ("Headers", fields.headers), ("Params", fields.params)] {
            if let Some(e) = raw.and_then(|r| serde_json::from_str::<MapEntries<'_>>(r.get()).err()) {
                return BindError::new(format!("`{field}` should be an object of strings: {e}"));
            }
        }
    }
    BindError::new(format!("the HTTP request should be an object with Url, Method, Headers, ...: {error}"))
}

/// The caller's identities as the host sends them (`ClaimsIdentity` objects serialized by
/// Newtonsoft.Json: `AuthenticationType`, `IsAuthenticated`, `Name`, `Claims`, ...).
///
/// Kept as JSON text and parsed when asked for, since most handlers never look at them.
///
/// ```
/// let ids = azfn::http::Identities::from_json(r#"[{"AuthenticationType":null,"IsAuthenticated":false,"Claims":[],"Name":null}]"#);
/// let values = ids.values().unwrap();
/// assert_eq!(values[0]["IsAuthenticated"], false);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Identities {
    /// UTF-8 JSON text (often a slice of the invocation's body).
    json: Option<Bytes>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities").field("json", &self.json()).finish()
    }
}

impl Identities {
    /// Identities from the host's JSON: an array, or (before host 3.0.14777) a string holding one.
    pub fn from_json(json: impl Into<Box<str>>) -> Self {
        Self { json: Some(Bytes::from(json.into().into_boxed_bytes())) }
    }

    /// The JSON as received, if any.
    pub fn json(&self) -> Option<&str> {
        // Always UTF-8: it is made from a `str`.
        self.json.as_deref().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The identities as JSON values; empty when the host sent none.
    pub fn values(&self) -> Result<Vec<Value>, BodyError> {
        let Some(json) = self.json() else { return Ok(Vec::new()) };
        let bad = |e: serde_json::Error| BodyError(format!("`Identities` is not JSON: {e}"));
        let v: Value = serde_json::from_str(json).map_err(bad)?;
        match value_json(&v).map_err(bad)?.into_owned() {
            Value::Array(items) => Ok(items),
            Value::Null => Ok(Vec::new()),
            other => Err(BodyError(format!("`Identities` should be an array, got {other}"))),
        }
    }
}

impl From<Vec<Value>> for Identities {
    fn from(values: Vec<Value>) -> Self {
        Self::from_json(Value::Array(values).to_string())
    }
}

/// One or more scalar values as text: a string, a number, a boolean, or an array of those. The
/// usual single value is kept inline.
enum Texts<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'a> Texts<'a> {
    fn iter(&self) -> impl Iterator<Item = &Cow<'a, str>> {
        let (one, many) = match self {
            Texts::One(t) => (Some(t), &[][..]),
            Texts::Many(v) => (None, &v[..]),
        };
        one.into_iter().chain(many)
    }

    /// The values joined with `,` (as the host joins repeated query keys).
    fn joined(self) -> String {
        match self {
            Texts::One(t) => t.into_owned(),
            Texts::Many(v) => v.join(","),
        }
    }

    fn into_vec(self) -> Vec<Cow<'a, str>> {
        match self {
            Texts::One(t) => vec![t],
            Texts::Many(v) => v,
        }
    }

    fn into_owned(self) -> Texts<'static> {
        let owned = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            Texts::One(t) => Texts::One(owned(t)),
            Texts::Many(v) => Texts::Many(v.into_iter().map(owned).collect()),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Texts<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Texts<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a number, a boolean or an array of them")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Texts::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Texts::One(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Texts::One(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Texts::One(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Texts::One(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Texts::One(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Texts::One(Cow::Owned(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Texts::Many(Vec::new()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Nested arrays are flattened; a single value stays inline (the usual header).
                let Some(first) = seq.next_element::<Texts<'a>>()? else { return Ok(Texts::Many(Vec::new())) };
                let Some(second) = seq.next_element::<Texts<'a>>()? else { return Ok(first) };
                let mut all = first.into_vec();
                all.extend(second.into_vec());
                while let Some(more) = seq.next_element::<Texts<'a>>()? {
                    all.extend(more.into_vec());
                }
                Ok(Texts::Many(all))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Entries as a map of name -> text, repeated values joined with `,` (as the host does). A `null`
/// value (an optional route parameter the path left out) is no entry.
fn joined(entries: MapEntries<'_>) -> BTreeMap<String, String> {
    entries
        .0
        .into_iter()
        .filter(|(_, v)| !matches!(v, Texts::Many(values) if values.is_empty()))
        .map(|(k, v)| (k.into_owned(), v.joined()))
        .collect()
}

/// A JSON object's entries, in order, each with its text value(s). Older hosts sent the object as a
/// JSON string (`"Query": "{}"`), which is read the same way; `null` has no entries.
#[derive(Default)]
struct MapEntries<'a>(Vec<(Cow<'a, str>, Texts<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for MapEntries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MapEntries<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((BorrowedText(k), v)) = map.next_entry::<BorrowedText<'a>, Texts<'a>>()? {
                    out.push((k, v));
                }
                Ok(MapEntries(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MapEntries(Vec::new()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let entries = serde_json::from_str::<MapEntries<'_>>(v).map_err(E::custom)?;
                let owned = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
                Ok(MapEntries(entries.0.into_iter().map(|(k, v)| (owned(k), v.into_owned())).collect()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `text` as `Bytes`: a slice of `source` when it lies within it, otherwise a copy.
fn shared(source: &Bytes, text: &str) -> Bytes {
    let (start, end) = (source.as_ptr() as usize, source.as_ptr() as usize + source.len());
    let at = text.as_ptr() as usize;
    if at >= start && at + text.len() <= end {
        source.slice_ref(text.as_bytes())
    } else {
        Bytes::copy_from_slice(text.as_bytes())
    }
}

/// Whether the host sends a body of this content type as base64 (`IsMediaTypeOctetOrMultipart`).
pub fn is_base64_media_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let ct = ct.trim_start().as_bytes();
    let starts = |p: &str| ct.len() >= p.len() && ct[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    starts("application/octet-stream") || starts("multipart/")
}

impl FromTrigger for HttpRequest {
    const TRIGGER_TYPE: Option<&'static str> = Some("httpTrigger");

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        let raw = input.require_raw()?;
        let wire: Wire<'_> = serde_json::from_str(raw.get()).map_err(|e| wire_error(raw.get(), e))?;
        Self::from_wire(wire, &Bytes::new())
    }
}

impl HttpRequest {
    /// The request from the host's object, already read (by [`FromTrigger`], or by the runtime
    /// while it reads the envelope). Text borrowed from `source` (the invocation's body, when the
    /// object was read from it) is shared with it rather than copied.
    pub(crate) fn from_wire(wire: Wire<'_>, source: &Bytes) -> Result<Self, BindError> {
        let method_text = wire.method.as_ref().map_or("GET", |m| &*m.0);
        let method = Method::from_bytes(method_text.as_bytes())
            .map_err(|_| BindError::new(format!("`Method` is not an HTTP method: {method_text:?}")))?;

        let mut headers = HeaderMap::with_capacity(wire.headers.0.len());
        for (name, values) in wire.headers.0 {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BindError::new(format!("`Headers` has an invalid header name: {name:?}")))?;
            for text in values.iter() {
                let hv = HeaderValue::from_maybe_shared(shared(source, text))
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
                    match s {
                        Cow::Borrowed(text) => shared(source, text),
                        Cow::Owned(text) => Bytes::from(text),
                    }
                }
            }
            // Not what the host sends, but a hand-written payload may carry the JSON body as an object.
            Some(other) => Bytes::from(other.to_owned()),
        };

        let identities = match wire.identities.map(RawValue::get) {
            None | Some("null") => Identities::default(),
            Some(json) => Identities { json: Some(shared(source, json)) },
        };

        Ok(Self {
            method,
            url: wire.url.map(Cow::into_owned).unwrap_or_default(),
            query: joined(wire.query),
            headers,
            params: joined(wire.params),
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
        let ids = r.identities.values().unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0]["IsAuthenticated"], json!(false));
        assert_eq!(ids[0]["NameClaimType"], json!("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"));
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
    fn legacy_string_fields_and_field_errors() {
        // Pre-#6621 hosts sent Query and Identities as JSON strings.
        let req = json!({"Data": {"req": {"Url": "http://x/api/a?n=1", "Method": "GET",
            "Query": "{\"n\":\"1\"}", "Identities": "[{\"IsAuthenticated\":true}]"}}, "Metadata": {}});
        let r: HttpRequest = parse(&req, &req_binding()).unwrap();
        assert_eq!(r.query("n"), Some("1"));
        assert_eq!(r.identities.values().unwrap()[0]["IsAuthenticated"], json!(true));
        let req =
            json!({"Data": {"req": {"Url": "http://x/", "Method": "GET", "Headers": {"A": {"b": 1}}}}, "Metadata": {}});
        let err = parse::<HttpRequest>(&req, &req_binding()).unwrap_err().to_string();
        assert!(err.contains("`Headers` should be an object of strings"), "{err}");
        let req = json!({"Data": {"req": {"Url": "http://x/", "Identities": {"no": "array"}}}, "Metadata": {}});
        let r: HttpRequest = parse(&req, &req_binding()).unwrap();
        assert!(r.identities.values().unwrap_err().0.contains("should be an array"));
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
    fn text_within_the_source_is_shared_and_other_text_copied() {
        let source = Bytes::from_static(br#"{"Headers":{"A":["x"]}}"#);
        let inner = std::str::from_utf8(&source[18..19]).unwrap();
        let shared_text = shared(&source, inner);
        assert_eq!(&shared_text[..], b"x");
        assert_eq!(shared_text.as_ptr(), source[18..].as_ptr());
        let copied = shared(&source, "x");
        assert_eq!(&copied[..], b"x");
        assert_ne!(copied.as_ptr(), source[18..].as_ptr());
        assert!(shared(&Bytes::new(), "").is_empty());
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
