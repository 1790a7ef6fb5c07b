//! The dashboard: a page of the app itself over the management API, served by the `Dashboard`
//! function (HTTP `dashboard/{*path}`, so `GET /api/dashboard`), registered by
//! [`App::durable`](crate::App::durable).
//!
//! The page, its script and its style are embedded in the binary (no CDN, no external font) and
//! served with a strict Content-Security-Policy (`default-src 'none'`, scripts and styles only from
//! the app). In Azure the function's `authLevel` is `function`: open the page with the function key
//! as `?code=`, and the page passes it on to its assets and to every API call. It sends no
//! `Referer`, so the key stays in the address bar.
//!
//! What it shows: the instance list (filters by status, name prefix and creation time, paging,
//! auto-refresh), one instance (input, output, custom status, error, a timeline with one bar per
//! activity call, sub-orchestration, timer, entity call and lock, the history as a table, and
//! buttons for Terminate, Suspend, Resume, Restart, Purge and Raise event), the entities with their
//! state, and the messages parked in the hub's poison queues with a Redrive button.

use crate::http::{HttpRequest, HttpResponse};

/// The dashboard function's name.
pub const DASHBOARD_FUNCTION: &str = "Dashboard";

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");
const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0969da"/><path d="M4 11h3V5H4zm5 0h3V8H9z" fill="#fff"/></svg>"##;

/// What the page may load and do: only the app's own script, style and API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Serves the page (`path` empty) or one of its assets (`dashboard.js`, `dashboard.css`,
/// `favicon.svg`).
///
/// ```
/// use azfn::HttpRequest;
/// use azfn::durable::dashboard;
///
/// let req = HttpRequest::new("GET", "http://localhost:7071/api/dashboard?code=k%2B1");
/// let page = dashboard::serve(&req, "");
/// assert_eq!(page.status, 200);
/// let html = String::from_utf8(page.body.to_vec()).unwrap();
/// assert!(html.contains(r#"src="/api/dashboard/dashboard.js?code=k%2B1""#));
/// assert!(html.contains(r#"data-api="/api/orchestrators""#));
/// ```
pub fn serve(req: &HttpRequest, path: &str) -> HttpResponse {
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        return HttpResponse::error(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the dashboard answers GET only",
        );
    }
    let (body, content_type) = match path.trim_matches('/') {
        "" | "index.html" => (page(req), "text/html; charset=utf-8"),
        "dashboard.js" => (SCRIPT.to_owned(), "text/javascript; charset=utf-8"),
        "dashboard.css" => (STYLE.to_owned(), "text/css; charset=utf-8"),
        "favicon.svg" => (ICON.to_owned(), "image/svg+xml"),
        other => {
            return HttpResponse::error(
                http::StatusCode::NOT_FOUND,
                "not_found",
                format!("the dashboard has no `{other}` (open /api/dashboard)"),
            );
        }
    };
    HttpResponse::ok()
        .header("content-security-policy", CONTENT_SECURITY_POLICY)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-store")
        .bytes(body, content_type)
}

/// The page, with the addresses of its assets and of the API worked out from the request's URL
/// (so it works under any route prefix) and the key it was opened with.
fn page(req: &HttpRequest) -> String {
    let path = req.path();
    let base = match path.to_ascii_lowercase().rfind("/dashboard") {
        Some(i) => path[..i + "/dashboard".len()].to_owned(),
        None => path.trim_end_matches('/').to_owned(),
    };
    let api = format!("{}/orchestrators", base.rsplit_once('/').map_or("", |(prefix, _)| prefix));
    let code = req.query("code").filter(|c| !c.is_empty());
    let code_query = code.map(|c| format!("?code={}", encode_query(c))).unwrap_or_default();
    PAGE.replace("{{BASE}}", &escape(&base))
        .replace("{{API}}", &escape(&api))
        .replace("{{CODE}}", &escape(&code_query))
        .replace("{{CODE_VALUE}}", &escape(code.unwrap_or_default()))
}

/// Percent-encodes a query value.
fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escapes text for an HTML attribute.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: &str, path: &str) -> HttpResponse {
        serve(&HttpRequest::new("GET", url), path)
    }

    #[test]
    fn the_page_points_at_its_assets_and_the_api_under_any_prefix() {
        let res = get("https://app.azurewebsites.net/v2/dashboard/?code=a%22b", "");
        let html = String::from_utf8(res.body.to_vec()).unwrap();
        assert!(html.contains(r#"href="/v2/dashboard/dashboard.css?code=a%22b""#), "{html}");
        assert!(html.contains(r#"data-api="/v2/orchestrators""#), "{html}");
        assert!(html.contains(r#"data-code="a&quot;b""#), "the key is escaped: {html}");
        assert_eq!(res.headers.get("content-security-policy").unwrap(), CONTENT_SECURITY_POLICY);
        assert_eq!(res.headers.get("referrer-policy").unwrap(), "no-referrer");
        let plain = String::from_utf8(get("http://localhost:7071/api/dashboard", "").body.to_vec()).unwrap();
        assert!(plain.contains(r#"src="/api/dashboard/dashboard.js""#), "no key, no ?code: {plain}");
    }

    #[test]
    fn assets_have_their_types_and_anything_else_is_404() {
        let js = get("http://h/api/dashboard/dashboard.js", "dashboard.js");
        assert_eq!(js.headers.get("content-type").unwrap(), "text/javascript; charset=utf-8");
        assert!(js.body.len() > 1000);
        assert_eq!(get("http://h/api/dashboard/x.png", "x.png").status, 404);
        let post = serve(&HttpRequest::new("POST", "http://h/api/dashboard"), "");
        assert_eq!(post.status, 405);
    }
}
