//! CORS for a browser app calling the local API, as Core Tools configures it from
//! local.settings.json's `Host.CORS` and `Host.CORSCredentials` (azure-functions-core-tools 3ee97a6,
//! `Startup.cs`: `_corsOrigins = corsOrigins.Split(',', StringSplitOptions.RemoveEmptyEntries)`, then
//! `app.UseCors(builder => { var origins = builder.WithOrigins(_corsOrigins).AllowAnyHeader()
//! .AllowAnyMethod(); if (_corsCredentials) { origins.AllowCredentials(); } })`), with ASP.NET Core's
//! CORS middleware answering: a preflight (`OPTIONS` with `Access-Control-Request-Method`) is a 204
//! carrying the allowance when the origin is allowed; another request from an allowed origin gets
//! `Access-Control-Allow-Origin`; an origin not allowed gets no CORS header. In Azure the
//! platform's CORS setting of the Function App does this instead.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};

use super::settings::HostSection;

/// The CORS policy of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    origins: Vec<String>,
    credentials: bool,
}

impl Cors {
    /// The policy of local.settings.json's `Host` section; `None` without `CORS`.
    pub fn from_host(host: &HostSection) -> Option<Self> {
        let origins: Vec<String> =
            host.cors.as_deref()?.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect();
        (!origins.is_empty()).then_some(Self { origins, credentials: host.cors_credentials })
    }

    /// Whether any origin is allowed (`*`).
    fn any(&self) -> bool {
        self.origins.iter().any(|o| o == "*")
    }

    /// The origin a request from `origin` is allowed as, if it is.
    fn allowed(&self, origin: &str) -> Option<HeaderValue> {
        let ok = self.any() || self.origins.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin));
        // "*" is answered as "*" unless credentials are allowed (which "*" cannot be used with).
        let value = if self.any() && !self.credentials { "*" } else { origin };
        ok.then(|| HeaderValue::from_str(value).ok()).flatten()
    }

    /// The answer to a preflight request, when `method` and `headers` make one.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let mut res = StatusCode::NO_CONTENT.into_response();
        if let Some(allow) = self.allowed(origin) {
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
            // AllowAnyMethod and AllowAnyHeader answer with what was asked for.
            if let Some(m) = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m.clone());
            }
            if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            self.finish(h);
        }
        Some(res)
    }

    /// Adds the allowance to the answer of a request with these `headers`.
    pub fn apply(&self, headers: &HeaderMap, res: &mut Response) {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return };
        if let Some(allow) = self.allowed(origin) {
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
            self.finish(h);
        }
    }

    fn finish(&self, h: &mut HeaderMap) {
        if self.credentials {
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if !self.any() || self.credentials {
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn allowed_origins_get_the_allowance_and_others_nothing() {
        let host = HostSection {
            cors: Some("http://localhost:3000,,https://app.example".into()),
            cors_credentials: true,
            ..HostSection::default()
        };
        let cors = Cors::from_host(&host).unwrap();
        let pre = headers(&[
            ("origin", "http://localhost:3000"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type,x-functions-key"),
        ]);
        let res = cors.preflight(&Method::OPTIONS, &pre).unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
        assert_eq!(h["access-control-allow-methods"], "PUT");
        assert_eq!(h["access-control-allow-headers"], "content-type,x-functions-key");
        assert_eq!(h["access-control-allow-credentials"], "true");
        // Another origin: a 204 without the allowance, so the browser refuses.
        let other = headers(&[("origin", "http://evil.example"), ("access-control-request-method", "GET")]);
        assert!(
            cors.preflight(&Method::OPTIONS, &other).unwrap().headers().get("access-control-allow-origin").is_none()
        );
        // Not a preflight.
        assert!(cors.preflight(&Method::GET, &pre).is_none());
        let mut res = StatusCode::OK.into_response();
        cors.apply(&headers(&[("origin", "https://app.example")]), &mut res);
        assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example");
        // "*" without credentials is answered "*".
        let any = Cors::from_host(&HostSection { cors: Some("*".into()), ..HostSection::default() }).unwrap();
        let mut res = StatusCode::OK.into_response();
        any.apply(&headers(&[("origin", "http://x")]), &mut res);
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        assert!(Cors::from_host(&HostSection::default()).is_none());
    }
}
