//! The HTTP output's response.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header::CONTENT_TYPE};
use std::borrow::Cow;

use serde::Serialize;
use serde::ser::{SerializeMap as _, Serializer};
use serde_json::Value;

use super::request::BodyError;
use crate::error::OutputError;

/// The response an HTTP-triggered function sends to its caller.
///
/// Return it from a handler and the runtime puts it into the function's `http` output binding
/// (`res` or `$return`). In the default protocol the host writes `body` as text, so a body that is not
/// UTF-8 can only be sent when the host forwards the request (`enableForwardingHttpRequest`, for
/// functions with only an HTTP trigger and an HTTP output); otherwise the invocation fails with a
/// message that says so, instead of the caller getting mangled bytes.
///
/// ```
/// use azfn::HttpResponse;
///
/// let created = HttpResponse::created().json(&serde_json::json!({"id": 7})).header("Location", "/api/items/7");
/// assert_eq!(created.status.as_u16(), 201);
/// let hello = HttpResponse::ok().text("Hello, Ada");
/// assert_eq!(hello.header_value("content-type"), Some("text/plain; charset=utf-8"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// An empty response with `status`.
    pub fn new(status: StatusCode) -> Self {
        Self { status, headers: HeaderMap::new(), body: Bytes::new() }
    }

    /// `200 OK`.
    pub fn ok() -> Self {
        Self::new(StatusCode::OK)
    }

    /// `201 Created`.
    pub fn created() -> Self {
        Self::new(StatusCode::CREATED)
    }

    /// `202 Accepted`.
    pub fn accepted() -> Self {
        Self::new(StatusCode::ACCEPTED)
    }

    /// `204 No Content`.
    pub fn no_content() -> Self {
        Self::new(StatusCode::NO_CONTENT)
    }

    /// An error answer in azfn's one error shape, `{"error": {"kind", "message"}}`
    /// ([`crate::error::error_json`]).
    ///
    /// ```
    /// use azfn::HttpResponse;
    /// let res = HttpResponse::error(http::StatusCode::NOT_FOUND, "not_found", "no order with id \"o-9\"");
    /// assert_eq!(res.status, http::StatusCode::NOT_FOUND);
    /// ```
    pub fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Self {
        Self::new(status).json(&crate::error::error_json(kind, message))
    }

    /// `400 Bad Request`.
    pub fn bad_request() -> Self {
        Self::new(StatusCode::BAD_REQUEST)
    }

    /// `404 Not Found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND)
    }

    /// Sets a text body, with `Content-Type: text/plain; charset=utf-8` unless one is set.
    pub fn text(self, body: impl Into<String>) -> Self {
        self.body_with_type(Bytes::from(body.into()), HeaderValue::from_static("text/plain; charset=utf-8"))
    }

    /// Sets a JSON body, with `Content-Type: application/json` unless one is set.
    ///
    /// A value that cannot be serialized (a map with non-string keys) gives a `500` with the reason.
    pub fn json<T: Serialize + ?Sized>(self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body_with_type(Bytes::from(bytes), HeaderValue::from_static("application/json")),
            Err(e) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR).text(format!("cannot serialize the response body: {e}"))
            }
        }
    }

    /// Sets a body of bytes with the given content type. An invalid content type is a programming
    /// error and panics with the value.
    pub fn bytes(self, body: impl Into<Bytes>, content_type: &str) -> Self {
        let value = HeaderValue::from_str(content_type)
            .unwrap_or_else(|_| panic!("invalid content type {content_type:?} (not a valid header value)"));
        self.body_with_type(body.into(), value)
    }

    /// Adds a header. An invalid name or value is a programming error and panics with the header's name.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let n = HeaderName::from_bytes(name.as_bytes()).unwrap_or_else(|_| panic!("invalid header name {name:?}"));
        let v = HeaderValue::from_str(value).unwrap_or_else(|_| panic!("invalid value for header {name:?}"));
        self.headers.append(n, v);
        self
    }

    /// A header's value, as text.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn body_with_type(mut self, body: Bytes, content_type: HeaderValue) -> Self {
        if !self.headers.contains_key(CONTENT_TYPE) {
            self.headers.insert(CONTENT_TYPE, content_type);
        }
        self.body = body;
        self
    }

    /// The value the host's `HttpOutputBindingResponse` reads: `{statusCode, headers, body}`.
    ///
    /// `statusCode` is a number (the host ignores `status`), header values are strings (the host
    /// calls `ToString()` on each, so repeated headers are joined with `, `), and the body is a string
    /// (objects would be re-indented by the host; bytes are not possible).
    pub(crate) fn to_wire(&self, binding: &str) -> Result<Value, OutputError> {
        serde_json::to_value(self.wire(binding)?).map_err(|e| OutputError::new(e.to_string()))
    }

    /// A borrowed view that serializes as [`to_wire`](Self::to_wire)'s value, checking the body is text.
    pub(crate) fn wire(&self, binding: &str) -> Result<WireResponse<'_>, OutputError> {
        let body = std::str::from_utf8(&self.body).map_err(|_| {
            OutputError::new(format!(
                "the HTTP response body for `{binding}` is binary ({} bytes, not UTF-8); the host writes `res.body` as text, \
                 so binary bodies need forwarding: set `customHandler.enableForwardingHttpRequest` in host.json and keep \
                 this function to one httpTrigger and one http output",
                self.body.len()
            ))
        })?;
        Ok(WireResponse { status: self.status.as_u16(), headers: &self.headers, body })
    }
}

/// An [`HttpResponse`] in the form the host's `HttpOutputBindingResponse` reads.
#[derive(Debug)]
pub(crate) struct WireResponse<'a> {
    status: u16,
    headers: &'a HeaderMap,
    body: &'a str,
}

impl Serialize for WireResponse<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("statusCode", &self.status)?;
        map.serialize_entry("headers", &WireHeaders(self.headers))?;
        map.serialize_entry("body", self.body)?;
        map.end()
    }
}

struct WireHeaders<'a>(&'a HeaderMap);

impl Serialize for WireHeaders<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.keys_len()))?;
        for name in self.0.keys() {
            let mut values = self.0.get_all(name).iter();
            let first = values.next().map(|v| String::from_utf8_lossy(v.as_bytes())).unwrap_or_default();
            let key = canonical_header_name(name.as_str());
            match values.next() {
                None => map.serialize_entry(key.as_ref(), first.as_ref())?,
                Some(second) => {
                    let mut joined = first.into_owned();
                    for v in std::iter::once(second).chain(values) {
                        joined.push_str(", ");
                        joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    }
                    map.serialize_entry(key.as_ref(), &joined)?;
                }
            }
        }
        map.end()
    }
}

/// `content-type` -> `Content-Type`, for readability in the host's logs.
fn canonical_header_name(name: &str) -> Cow<'static, str> {
    match name {
        "content-type" => Cow::Borrowed("Content-Type"),
        "location" => Cow::Borrowed("Location"),
        "cache-control" => Cow::Borrowed("Cache-Control"),
        _ => Cow::Owned(
            name.split('-')
                .map(|part| {
                    let mut chars = part.chars();
                    match chars.next() {
                        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                        None => String::new(),
                    }
                })
                .collect::<Vec<_>>()
                .join("-"),
        ),
    }
}

impl From<BodyError> for HttpResponse {
    fn from(e: BodyError) -> Self {
        HttpResponse::error(StatusCode::BAD_REQUEST, "bad_request", e.0)
    }
}

impl axum::response::IntoResponse for HttpResponse {
    fn into_response(self) -> axum::response::Response {
        let mut res = axum::response::Response::new(axum::body::Body::from(self.body));
        *res.status_mut() = self.status;
        *res.headers_mut() = self.headers;
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::test_support::fixture;
    use serde_json::json;

    #[test]
    fn wire_form_matches_what_the_host_reads() {
        let res = HttpResponse::created().text("my world").header("header1", "header1Val");
        let wire = res.to_wire("res").unwrap();
        assert_eq!(wire["statusCode"], json!(201));
        assert_eq!(wire["body"], json!("my world"));
        assert_eq!(wire["headers"]["Header1"], json!("header1Val"));
        assert_eq!(wire["headers"]["Content-Type"], json!("text/plain; charset=utf-8"));
    }

    #[test]
    fn host_test_shapes_are_produced_for_each_case() {
        // host-test-http-res-outputs.json lists the `res` shapes the host accepts; ours is the full one.
        let cases = fixture("host-test-http-res-outputs.json");
        let full = &cases[4]["resValue"];
        let ours = HttpResponse::new(StatusCode::MOVED_PERMANENTLY)
            .text("foobar")
            .header("header1", "header1Value")
            .header("header2", "header2Value")
            .to_wire("res")
            .unwrap();
        assert_eq!(ours["body"], full["body"]);
        assert_eq!(ours["statusCode"].to_string(), full["statusCode"].as_str().unwrap());
        assert_eq!(ours["headers"]["Header1"], full["headers"]["header1"]);
    }

    #[test]
    fn binary_bodies_are_refused_with_the_way_out() {
        let res = HttpResponse::ok().bytes(vec![0xff, 0xfe], "image/png");
        let err = res.to_wire("res").unwrap_err().to_string();
        assert!(err.contains("binary") && err.contains("enableForwardingHttpRequest"), "{err}");
    }

    #[test]
    fn repeated_headers_are_joined() {
        let res = HttpResponse::ok().header("x-a", "1").header("x-a", "2");
        assert_eq!(res.to_wire("res").unwrap()["headers"]["X-A"], json!("1, 2"));
    }

    #[test]
    fn body_errors_become_400() {
        let res: HttpResponse = BodyError("bad".into()).into();
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert_eq!(res.body, Bytes::from_static(br#"{"error":{"kind":"bad_request","message":"bad"}}"#));
    }
}
