//! Forwarding mode: serving HTTP functions at their routes, and moving requests and responses
//! between [`HttpRequest`]/[`HttpResponse`] and plain `http` types.
//!
//! With `enableForwardingHttpRequest`, the host sends an HTTP-only function's request to
//! `http://127.0.0.1:{port}/{routePrefix}/{route}?{query}` with the original method, headers and body,
//! and returns the handler's response to the caller as it is (`DefaultHttpWorkerService` in
//! Azure/azure-functions-host). The runtime therefore mounts each HTTP-only function at its route.

use std::collections::BTreeMap;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};

use super::{HttpRequest, HttpResponse};

/// The axum paths that serve a function.json `route` under `prefix`.
///
/// Route templates follow ASP.NET Core: `{id}`, `{id:int}` (constraints are the host's business, so
/// they are dropped here), optional `{id?}` at the end (two paths), catch-all `{*rest}` (two
/// paths: it also matches nothing).
/// A segment that mixes text and parameters (`{name}.{ext}`) cannot be mounted: that is an `Err`.
pub(crate) fn route_paths(prefix: &str, route: &str) -> Result<Vec<String>, String> {
    let mut base = String::new();
    for seg in prefix.split('/').filter(|s| !s.is_empty()) {
        base.push('/');
        base.push_str(seg);
    }
    let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let mut paths = vec![base];
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            if seg.contains('{') || seg.contains('}') {
                return Err(format!("route segment `{seg}` mixes text and parameters"));
            }
            paths.iter_mut().for_each(|p| {
                p.push('/');
                p.push_str(seg);
            });
            continue;
        };
        if inner.contains('{') || inner.contains('}') {
            return Err(format!("route segment `{seg}` mixes text and parameters"));
        }
        let (catch_all, inner) = match inner.strip_prefix('*') {
            Some(rest) => (true, rest.trim_start_matches('*')),
            None => (false, inner),
        };
        let optional = inner.ends_with('?');
        let name = inner.trim_end_matches('?').split([':', '=']).next().unwrap_or_default();
        if name.is_empty() {
            return Err(format!("route segment `{seg}` has no parameter name"));
        }
        let piece = if catch_all { format!("/{{*{name}}}") } else { format!("/{{{name}}}") };
        // An optional parameter, and a catch-all (which ASP.NET matches to nothing too), at the end
        // also serve the path without it.
        if (optional || catch_all) && last {
            let without = paths.clone();
            paths.iter_mut().for_each(|p| p.push_str(&piece));
            paths.extend(without);
        } else {
            paths.iter_mut().for_each(|p| p.push_str(&piece));
        }
    }
    for p in &mut paths {
        if p.is_empty() {
            p.push('/');
        }
    }
    Ok(paths)
}

/// Query parameters as the host presents them: repeated keys joined with `,`.
pub(crate) fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let pairs: Vec<(String, String)> = query.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    for (k, v) in pairs {
        out.entry(k)
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

/// Reads a whole body (an invocation's, a forwarded request's, an axum handler's response). The usual body arrives as one chunk, which is returned as it is.
pub(crate) async fn read_body(mut body: Body) -> Result<Bytes, axum::Error> {
    use axum::body::HttpBody as _;
    use http_body_util::BodyExt as _;
    let mut first: Option<Bytes> = None;
    let mut joined: Option<bytes::BytesMut> = None;
    while !body.is_end_stream() {
        let Some(frame) = body.frame().await else { break };
        let Ok(data) = frame?.into_data() else { continue }; // trailers
        match (&first, &mut joined) {
            (None, _) => first = Some(data),
            (Some(_), Some(all)) => all.extend_from_slice(&data),
            (Some(f), None) => {
                let mut all = bytes::BytesMut::with_capacity(f.len() + data.len());
                all.extend_from_slice(f);
                all.extend_from_slice(&data);
                joined = Some(all);
            }
        }
    }
    Ok(joined.map(bytes::BytesMut::freeze).or(first).unwrap_or_default())
}

/// Builds an [`HttpRequest`] from a forwarded request and its matched route parameters.
pub(crate) async fn from_forwarded(
    req: Request<Body>,
    params: BTreeMap<String, String>,
) -> Result<HttpRequest, String> {
    let (parts, body) = req.into_parts();
    let body = read_body(body).await.map_err(|e| format!("cannot read the request body: {e}"))?;
    let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // The host copies the caller's headers; behind App Service's front ends that includes
    // X-Forwarded-Proto (https), which is the scheme the caller used.
    let scheme = match parts.headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    Ok(HttpRequest {
        url: format!("{scheme}://{host}{path_and_query}"),
        query: parse_query(parts.uri.query()),
        method: parts.method,
        headers: parts.headers,
        params,
        identities: Default::default(),
        body,
    })
}

/// Turns an [`HttpRequest`] into an `http::Request`, so that an axum service can serve it.
pub(crate) fn to_http(req: &HttpRequest) -> Result<Request<Body>, String> {
    let path = req.path();
    let query = req.url.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or_default());
    let uri = match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    };
    let mut builder = Request::builder().method(req.method.clone()).uri(&uri);
    if let Some(h) = builder.headers_mut() {
        h.extend(req.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    builder.body(Body::from(req.body.clone())).map_err(|e| format!("cannot rebuild the request for {uri}: {e}"))
}

/// Collects an axum response into an [`HttpResponse`].
pub(crate) async fn from_response(res: Response<Body>) -> Result<HttpResponse, String> {
    let (parts, body) = res.into_parts();
    let body = read_body(body).await.map_err(|e| format!("cannot read the response body: {e}"))?;
    Ok(HttpResponse { status: parts.status, headers: parts.headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates() {
        assert_eq!(route_paths("api", "hello").unwrap(), ["/api/hello"]);
        assert_eq!(route_paths("api", "orders/{id}").unwrap(), ["/api/orders/{id}"]);
        assert_eq!(route_paths("api", "orders/{id:int}").unwrap(), ["/api/orders/{id}"]);
        assert_eq!(route_paths("api", "items/{id:int?}").unwrap(), ["/api/items/{id}", "/api/items"]);
        assert_eq!(route_paths("", "files/{*path}").unwrap(), ["/files/{*path}", "/files"]);
        assert_eq!(route_paths("", "").unwrap(), ["/"]);
        assert_eq!(route_paths("/v1/", "x").unwrap(), ["/v1/x"]);
        assert!(route_paths("api", "f/{name}.{ext}").is_err());
    }

    #[test]
    fn repeated_query_keys_are_joined() {
        let q = parse_query(Some("a=1&a=2&b=x%20y"));
        assert_eq!(q["a"], "1,2");
        assert_eq!(q["b"], "x y");
        assert!(parse_query(None).is_empty());
    }
}
