//! The local host's HTTP front end: the HTTP triggers under the route prefix (default protocol or
//! forwarding), the admin endpoint that runs non-HTTP functions, and a status page.
//!
//! - `GET /`: a short page listing the functions.
//! - `GET /admin/host/status`: `{"state": "Running", ...}` once the handler is ready.
//! - `/runtime/webhooks/eventgrid?functionName={name}`: Event Grid deliveries
//!   ([`super::event_grid_webhook`]).
//! - `POST /admin/functions/{name}` with `{"input": "..."}`: 202, and the function runs in the
//!   background (`FunctionsController.Invoke`); 400 without a body, 404 for an unknown function.
//!   With `?wait=true` (azfn's own, what `cargo azfn invoke` uses) it answers when the invocation
//!   is done: 200 with [`summary`] of what it produced, or the error.
//! - Everything else is routed by [`RouteTable`]: 404, or the function's response.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::invocation::{self, HttpParts, QueueParts};
use super::invoker::Invoker;
use super::routes::{RouteMatch, RouteTable};
use super::worker::{HOST_VERSION, WorkerState};
use azfn::function_json::FunctionSpec;

/// Requests bigger than this are refused with 413, as the host's Kestrel refuses them:
/// azure-functions-host (89dc438) `Program.cs` line 50, `o.Limits.MaxRequestBodySize =
/// ScriptConstants.DefaultMaxRequestBodySize;`, `ScriptConstants.cs` line 239,
/// `DefaultMaxRequestBodySize = 104857600;` (Kestrel answers a larger body `413 Payload Too Large`).
pub const MAX_BODY: usize = 104_857_600;

/// Reads a request body of at most [`MAX_BODY`]: a larger one is a 413 with no body (Kestrel's), a
/// body that breaks off a 400.
async fn read_body(body: axum::body::Body) -> Result<bytes::Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if err.is::<http_body_util::LengthLimitError>() {
                return StatusCode::PAYLOAD_TOO_LARGE.into_response();
            }
            source = err.source();
        }
        error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))
    })
}

/// What the front end needs.
#[derive(Debug)]
pub struct Front {
    /// Runs invocations.
    pub invoker: Arc<Invoker>,
    /// The HTTP routes.
    pub routes: RouteTable,
    /// The keys requests must present (`--keys`); `None`: none checked, as Core Tools does.
    pub keys: Option<super::keys::Keys>,
    /// local.settings.json's `Host.CORS`.
    pub cors: Option<super::cors::Cors>,
    /// host.json's `extensions.http` options the front end applies.
    pub http: HttpOptions,
    /// The blob triggers with `source: EventGrid`, by lowercase function name: the Blobs
    /// extension's webhook runs them.
    pub blob_webhook: BTreeMap<String, super::blob_listener::BlobTrigger>,
}

/// host.json's `extensions.http` options that act on requests, as azure-functions-host (89dc438)
/// applies them to function requests:
/// - `customHeaders`: `CustomHttpHeadersMiddleware` adds each to the response unless the function
///   set it (`context.Response.Headers.TryAdd(header.Key, header.Value)`);
/// - `maxConcurrentRequests` and `maxOutstandingRequests` (`-1`, the default: unbounded):
///   `HttpRequestQueue` runs at most the first at once and holds at most the second in all
///   (`MaxDegreeOfParallelism`, `BoundedCapacity`); a request beyond is refused by
///   `HttpThrottleMiddleware.RejectRequest`: 429 with `X-FUNCTION-SCALEOUT: 1`.
#[derive(Debug, Default)]
pub struct HttpOptions {
    /// `customHeaders`.
    pub custom_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `maxConcurrentRequests`, when bounded.
    pub concurrent: Option<Arc<tokio::sync::Semaphore>>,
    /// `maxOutstandingRequests`, when bounded.
    pub max_outstanding: Option<usize>,
    /// Function requests being run or waiting to.
    pub outstanding: std::sync::atomic::AtomicUsize,
}

impl HttpOptions {
    /// The options of a host.json document (its `extensions.http`); a wrong one says what is wrong.
    pub fn from_host_json(doc: &Value) -> Result<Self, String> {
        let http = &doc["extensions"]["http"];
        let mut options = Self::default();
        if let Some(headers) = http.get("customHeaders").and_then(Value::as_object) {
            for (k, v) in headers {
                let name = http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| format!("host.json extensions.http.customHeaders: {k:?} is not a header name: {e}"))?;
                let value = http::HeaderValue::from_str(v.as_str().unwrap_or_default())
                    .map_err(|e| format!("host.json extensions.http.customHeaders.{k}: {e}"))?;
                options.custom_headers.push((name, value));
            }
        }
        let bound = |key: &str| -> Result<Option<usize>, String> {
            match http.get(key).and_then(Value::as_i64) {
                None | Some(-1) => Ok(None),
                Some(n) if n > 0 => Ok(Some(n as usize)),
                Some(n) => {
                    Err(format!("host.json extensions.http.{key} is {n}: use -1 (unbounded) or a positive number"))
                }
            }
        };
        options.concurrent = bound("maxConcurrentRequests")?.map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
        options.max_outstanding = bound("maxOutstandingRequests")?;
        Ok(options)
    }
}

/// Counts a function request as outstanding while it lives.
struct Outstanding<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The host's answer without the key something needs: 401 with no body.
fn unauthorized() -> Response {
    StatusCode::UNAUTHORIZED.into_response()
}

/// The front end's router.
pub fn router(front: Arc<Front>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(front)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [("content-type", "text/plain; charset=utf-8")], body.into()).into_response()
}

/// An error answer of the built-in host, in azfn's one error shape (`{"error": {"kind", "message"}}`).
pub(crate) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    let body = azfn::error::error_json(azfn::error::kind_for_status(status.as_u16()), message);
    (status, axum::Json(body)).into_response()
}

async fn handle(State(front): State<Arc<Front>>, req: Request) -> Response {
    let Some(cors) = front.cors.clone() else { return route(front, req).await };
    if let Some(answer) = cors.preflight(req.method(), req.headers()) {
        return answer;
    }
    let headers = req.headers().clone();
    let mut res = route(front, req).await;
    cors.apply(&headers, &mut res);
    res
}

async fn route(front: Arc<Front>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    // Kestrel refuses a declared length over the limit before anything else runs.
    let declared =
        req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    if path == "/" && req.method() == http::Method::GET {
        return home(&front);
    }
    use super::keys::Level;
    // The level the request's key gives (`None`: keys are not checked).
    let presented =
        front.keys.as_ref().map(|k| k.level_of(super::keys::presented(req.headers(), req.uri().query()).as_deref()));
    let allowed = |required: Level| presented.is_none_or(|p| p.meets(required));
    // The host's admin API needs the master key (`AuthorizationLevel.Admin`), an extension's
    // webhook its system key.
    if path.to_ascii_lowercase().starts_with("/admin/") && !allowed(Level::Admin) {
        return unauthorized();
    }
    let webhook = [super::event_grid_webhook::PATH, super::blob_listener::WEBHOOK_PATH]
        .into_iter()
        .find(|p| path.eq_ignore_ascii_case(p));
    if webhook.is_some() && !allowed(Level::System) {
        return unauthorized();
    }
    if path.eq_ignore_ascii_case("/admin/host/status") {
        let state = match front.invoker.worker.state() {
            WorkerState::Ready(_) => "Running",
            WorkerState::Starting => "Initialized",
            WorkerState::Stopped(_) => "Error",
        };
        return axum::Json(json!({"state": state, "version": HOST_VERSION})).into_response();
    }
    if let Some(webhook) = webhook {
        let (parts, body) = req.into_parts();
        let body = match read_body(body).await {
            Ok(b) => b,
            Err(response) => return response,
        };
        let query = parts.uri.query();
        let (method, headers) = (&parts.method, &parts.headers);
        return if webhook == super::blob_listener::WEBHOOK_PATH {
            super::blob_listener::webhook(front.invoker.clone(), &front.blob_webhook, method, query, headers, &body)
                .await
        } else {
            super::event_grid_webhook::handle(front.invoker.clone(), method, query, headers, &body).await
        };
    }
    if let Some(name) = path.strip_prefix("/admin/functions/") {
        if req.method() != http::Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST /admin/functions/{name} with {\"input\": \"...\"}\n",
            );
        }
        let name = name.trim_end_matches('/').to_owned();
        let wait = query_pairs(req.uri().query()).iter().any(|(k, v)| k == "wait" && v.eq_ignore_ascii_case("true"));
        return admin(front, &name, req, wait).await;
    }
    match front.routes.route(req.method().as_str(), &path) {
        RouteMatch::NotFound => error(StatusCode::NOT_FOUND, format!("no function is routed at {path}")),
        RouteMatch::Found { function, params } => {
            let invoker = &front.invoker;
            if invoker.bindings.settings().is_disabled(&function) {
                return error(StatusCode::NOT_FOUND, format!("function {function} is disabled"));
            }
            let Ok(spec) = invoker.spec(&function) else {
                return error(StatusCode::NOT_FOUND, format!("no function {function}"));
            };
            if !allowed(Level::from_auth_level(spec.trigger().value("authLevel").and_then(|v| v.as_str()))) {
                return unauthorized();
            }
            let options = &front.http;
            let held = options.outstanding.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _outstanding = Outstanding(&options.outstanding);
            if options.max_outstanding.is_some_and(|max| held >= max) {
                let mut res = StatusCode::TOO_MANY_REQUESTS.into_response();
                res.headers_mut().insert("x-function-scaleout", http::HeaderValue::from_static("1"));
                return res;
            }
            let _permit = match &options.concurrent {
                Some(s) => s.clone().acquire_owned().await.ok(),
                None => None,
            };
            let mut res = if invoker.meta.host.forwarding && spec.is_http_only() {
                forward(&front, spec, req).await
            } else {
                default_protocol(&front, spec, params, req).await
            };
            for (name, value) in &options.custom_headers {
                if !res.headers().contains_key(name) {
                    res.headers_mut().insert(name.clone(), value.clone());
                }
            }
            res
        }
    }
}

fn home(front: &Front) -> Response {
    let mut page = format!("azfn local Functions host ({HOST_VERSION}): the app is up and running.\n\n");
    for (function, template, methods) in front.routes.describe() {
        page.push_str(&format!("{function}: [{methods}] /{template}\n"));
    }
    for (name, spec) in &front.invoker.meta.functions {
        if !spec.trigger().is_type("httpTrigger") {
            page.push_str(&format!("{name}: {} (POST /admin/functions/{name} runs it)\n", spec.trigger().binding_type));
        }
    }
    text(StatusCode::OK, page)
}

async fn admin(front: Arc<Front>, name: &str, req: Request, wait: bool) -> Response {
    let invoker = front.invoker.clone();
    let Some((name, spec)) = invoker.meta.functions.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
        return error(StatusCode::NOT_FOUND, format!("no function named {name:?}"));
    };
    let (name, spec) = (name.clone(), spec.clone());
    let body = match read_body(req.into_body()).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the body must be JSON: {\"input\": \"...\"}");
    }
    let input = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => match o.iter().find(|(k, _)| k.eq_ignore_ascii_case("input")).map(|(_, v)| v) {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(other) => other.to_string(),
        },
        _ => return error(StatusCode::BAD_REQUEST, "the body must be a JSON object: {\"input\": \"...\"}"),
    };
    let trigger = spec.trigger().clone();
    if trigger.is_type("httpTrigger") {
        return error(StatusCode::BAD_REQUEST, format!("{name} is an HTTP function: call its route instead"));
    }
    let run = async move {
        let inv = match admin_invocation(&invoker, &spec, &input).await {
            Ok(inv) => inv,
            Err(e) => {
                invoker.console.error(&format!("{name}: {e}"));
                return Err((StatusCode::BAD_REQUEST, e));
            }
        };
        invoker.invoke(&name, &trigger.binding_type, inv).await.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))
    };
    if !wait {
        tokio::spawn(run);
        return StatusCode::ACCEPTED.into_response();
    }
    match run.await {
        Ok(applied) => axum::Json(summary(&applied)).into_response(),
        Err((StatusCode::BAD_REQUEST, e)) => error(StatusCode::BAD_REQUEST, e),
        Err((_, e)) => {
            let body = azfn::error::error_json("function_failed", &e);
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }
    }
}

/// What an invocation produced, as `cargo azfn invoke` prints it: `{"logs", "returnValue",
/// "outputs": [{"type", "target", "values"}]}`, with bytes shown as text when they are UTF-8 and as
/// base64 otherwise.
pub fn summary(applied: &super::response::Applied) -> Value {
    use super::response::Write;
    let text = |b: &[u8]| match std::str::from_utf8(b) {
        Ok(t) => serde_json::from_str::<Value>(t).unwrap_or_else(|_| Value::String(t.to_owned())),
        Err(_) => json!({"base64": azfn::encoding::encode_base64(b)}),
    };
    let outputs: Vec<Value> = applied
        .writes
        .iter()
        .map(|w| match w {
            Write::Queue { queue, messages, .. } => {
                json!({"type": "queue", "target": queue, "values": messages.iter().map(|m| text(m)).collect::<Vec<_>>()})
            }
            Write::Blob { path, content, .. } => json!({"type": "blob", "target": path, "values": [text(content)]}),
            Write::Table { table, entities, .. } => json!({"type": "table", "target": table, "values": entities}),
            Write::Other { binding, binding_type, items } => {
                json!({"type": binding_type, "target": binding, "values": items})
            }
        })
        .collect();
    let mut out = json!({"status": "Succeeded", "logs": applied.logs, "outputs": outputs});
    if !applied.return_value.is_null() {
        out["returnValue"] = applied.return_value.clone();
    }
    if let Some(h) = &applied.http {
        out["http"] = json!({"status": h.status});
    }
    out
}

/// The invocation an admin `input` string makes, per trigger type (`FunctionsController.Invoke`
/// hands the string to the trigger's string converter; see `custom-handler-protocol.md` §6).
async fn admin_invocation(
    invoker: &Invoker,
    spec: &FunctionSpec,
    input: &str,
) -> Result<invocation::Invocation, String> {
    let t = spec.trigger();
    let ty = t.binding_type.to_ascii_lowercase();
    Ok(match ty.as_str() {
        "queuetrigger" => invocation::queue(&spec.name, &t.name, &QueueParts::admin(input)),
        "timertrigger" => invocation::timer(&spec.name, &t.name, false, Some((None, None))),
        // The input is the blob's path, `container/name`.
        "blobtrigger" => {
            let (container, name) = input
                .split_once('/')
                .ok_or_else(|| format!("admin input {input:?} is not a blob path `container/name`"))?;
            let c = invoker.bindings.clients(t.property("connection").unwrap_or("AzureWebJobsStorage"))?;
            let blob = c.blobs.get(container, name).await.map_err(|e| e.to_string())?;
            let pattern = t.property("path").and_then(|p| p.split_once('/')).map(|(_, p)| p).unwrap_or("{name}");
            let params = super::blob_listener::NamePattern::parse(pattern)?.matches(name).unwrap_or_default();
            let endpoint = c.account.blob.clone().unwrap_or_default();
            let properties = super::blob_listener::properties(&blob);
            invocation::blob(&spec.name, &t.name, &blob.content, &format!("{endpoint}/{input}"), properties, &params)
        }
        // A bare ServiceBusReceivedMessage built from the string with the model factory's defaults
        // (`ServiceBusModelFactory.ServiceBusReceivedMessage`, then `CreateSingle`): no TTL, so it
        // expires at DateTimeOffset.MaxValue.
        "servicebustrigger" => invocation::text(
            &spec.name,
            &t.name,
            input,
            &[
                ("DeliveryCount", json!(0)),
                ("SequenceNumber", json!(-1)),
                ("LockToken", json!("00000000-0000-0000-0000-000000000000")),
                ("EnqueuedTime", json!("0001-01-01T00:00:00+00:00")),
                ("EnqueuedTimeUtc", json!("0001-01-01T00:00:00")),
                ("ExpiresAt", json!("9999-12-31T23:59:59.9999999+00:00")),
                ("ExpiresAtUtc", json!("9999-12-31T23:59:59.9999999")),
                ("ApplicationProperties", json!({})),
                ("UserProperties", json!({})),
            ],
        ),
        "eventgridtrigger" => {
            let event = serde_json::from_str::<Value>(input)
                .map_err(|e| format!("admin input for an Event Grid trigger must be an event as JSON: {e}"))?;
            invocation::event_grid(&spec.name, &t.name, &event)
        }
        _ => invocation::text(&spec.name, &t.name, input, &[]),
    })
}

/// The pairs of a query string, decoded (none when it does not parse).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query.and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok()).unwrap_or_default()
}

async fn default_protocol(
    front: &Front,
    spec: &FunctionSpec,
    params: BTreeMap<String, Option<String>>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    // The host reads a body only when the request has a Content-Length above 0: a chunked body is
    // not read (HttpTriggerAttributeBindingProvider, docs/host-fidelity.md §5).
    let has_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    let body = match read_body(body).await {
        Ok(b) if has_length => b,
        Ok(_) => Default::default(),
        Err(response) => return response,
    };
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_owned();
    let http_parts = HttpParts {
        method: parts.method.to_string(),
        url: format!("http://{host}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")),
        query: query_pairs(parts.uri.query()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (kestrel_name(k.as_str()), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        params,
        body: body.to_vec(),
    };
    let inv = invocation::http(&spec.name, &spec.trigger().name, &http_parts);
    match front.invoker.invoke(&spec.name, "httpTrigger", inv).await {
        // Azure's host answers an empty 500 here; locally the caller is told what failed, in the
        // one error shape, since the function may have run and had side effects before it failed.
        Err(e) => failed_invocation(&spec.name, &e),
        Ok(applied) => match applied.http {
            // No http output set: the host's middleware answers 200 with no body (OkResult).
            None => StatusCode::OK.into_response(),
            Some(r) => {
                let (status, headers, body) = r.finish();
                let mut res = Response::new(Body::from(body));
                *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
                        res.headers_mut().append(k, v);
                    }
                }
                res
            }
        },
    }
}

/// Forwarding mode (`enableForwardingHttpRequest`): the request goes to the handler at the same
/// path and query (repeated keys merged with commas), with the host's headers added and the body
/// only when it has a Content-Length above 0; the handler's response is passed back as it is.
async fn forward(front: &Front, spec: &FunctionSpec, req: Request) -> Response {
    let invoker = &front.invoker;
    if let Err(e) = invoker.worker.ready().await {
        let id = uuid::Uuid::new_v4().to_string();
        invoker.console.invocation(&spec.name, "httpTrigger", &id, std::time::Duration::ZERO, Err(&e));
        return failed_invocation(&spec.name, &e);
    }
    let (parts, body) = req.into_parts();
    let has_length = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    let body = if has_length {
        match read_body(body).await {
            Ok(b) => b,
            Err(response) => return response,
        }
    } else {
        Default::default()
    };
    let mut merged: Vec<(String, String)> = Vec::new();
    for (k, v) in query_pairs(parts.uri.query()) {
        match merged.iter_mut().find(|(key, _)| *key == k) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            None => merged.push((k, v)),
        }
    }
    let mut url = format!("http://127.0.0.1:{}{}", invoker.worker.port(), parts.uri.path());
    if !merged.is_empty() {
        url.push('?');
        url.push_str(&serde_urlencoded::to_string(&merged).unwrap_or_default());
    }
    // The retry policy applies to a forwarded request as to any invocation (webjobs-sdk
    // `FunctionExecutor` retries whatever the trigger; `FunctionIndexer.CheckRetrySupport` only
    // warns). A forwarded invocation fails when the handler cannot be reached or the request times
    // out; a handler's error status is its answer, passed on (DefaultHttpWorkerService has no
    // `EnsureSuccessStatusCode` on this path). The body is held, so each attempt sends it again.
    let policy = invoker.policy(&spec.name);
    let mut delays = policy.as_ref().map(super::retry_policy::RetryPolicy::delays);
    let mut retry = 0u32;
    loop {
        let id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let mut out = invoker.worker.client().request(parts.method.clone(), url.clone());
        let mut agent = None;
        for (k, v) in &parts.headers {
            match k.as_str() {
                // The host copies the caller's headers, Host included, so the handler sees the URL the
                // caller used (HttpRequestExtensions.ToHttpRequestMessage, TryAddWithoutValidation).
                "content-length" | "transfer-encoding" | "connection" => {}
                "user-agent" => agent = v.to_str().ok().map(str::to_owned),
                _ => out = out.header(k, v),
            }
        }
        let agent = match agent {
            Some(a) => format!("{a} Azure-Functions-Host/{HOST_VERSION}"),
            None => format!("Azure-Functions-Host/{HOST_VERSION}"),
        };
        out = out
            .header("user-agent", agent)
            .header("x-azure-functions-hostversion", HOST_VERSION)
            .header("x-azure-functions-invocationid", &id);
        if has_length {
            out = out.body(body.clone());
        }
        // A forwarded request is an invocation like any other: functionTimeout cuts it
        // (`FunctionExecutor.TryHandleTimeoutAsync`), and the handler is restarted.
        let timeout = invoker.function_timeout();
        let generation = invoker.worker.generation();
        let mut timed_out = false;
        let sent = match tokio::time::timeout(timeout, invoker.worker.send(out)).await {
            Ok(sent) => sent,
            Err(_) => {
                timed_out = true;
                Err(invoker.timed_out(&spec.name, &id, timeout))
            }
        };
        match sent {
            Ok((status, headers, bytes)) => {
                invoker.console.invocation(&spec.name, "httpTrigger", &id, started.elapsed(), Ok(()));
                let mut res = Response::new(Body::from(bytes));
                *res.status_mut() = status;
                for (k, v) in &headers {
                    if !matches!(k.as_str(), "transfer-encoding" | "connection" | "content-length") {
                        res.headers_mut().append(k, v.clone());
                    }
                }
                return res;
            }
            Err(e) => {
                invoker.console.invocation(&spec.name, "httpTrigger", &id, started.elapsed(), Err(&e));
                let (Some(policy), Some(delays)) = (&policy, delays.as_mut()) else {
                    return failed_invocation(&spec.name, &e);
                };
                retry += 1;
                if !policy.allows(retry) {
                    return failed_invocation(&spec.name, &e);
                }
                let waited =
                    invoker.wait_to_retry(&spec.name, policy, delays, retry, timed_out.then_some(generation)).await;
                let ready = if timed_out { waited } else { invoker.worker.ready().await };
                if let Err(e) = ready {
                    return failed_invocation(&spec.name, &e);
                }
            }
        }
    }
}

/// A 500 that says which function failed and why: it may have had side effects (an output written,
/// a message sent) before it failed, so a retry should carry the same `Idempotency-Key`.
fn failed_invocation(function: &str, error: &str) -> Response {
    let message = format!(
        "function {function} failed: {error}; it may have done part of its work, so retry with the same Idempotency-Key"
    );
    let body = azfn::error::error_json("function_failed", message);
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

/// A request header's name as Kestrel presents it to the host: its canonical spelling for the
/// headers Kestrel knows (`HttpHeaders.Generated.cs`), else the name as received (here lowercase:
/// HTTP/1 names are case-insensitive and hyper lowercases them).
pub fn kestrel_name(name: &str) -> String {
    const KNOWN: &[&str] = &[
        "Accept",
        "Accept-Charset",
        "Accept-Encoding",
        "Accept-Language",
        "Access-Control-Request-Headers",
        "Access-Control-Request-Method",
        "Allow",
        "Authorization",
        "Baggage",
        "Cache-Control",
        "Connection",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Location",
        "Content-MD5",
        "Content-Range",
        "Content-Type",
        "Cookie",
        "Correlation-Context",
        "Date",
        "DNT",
        "Expect",
        "Expires",
        "From",
        "Grpc-Accept-Encoding",
        "Grpc-Encoding",
        "Grpc-Timeout",
        "Host",
        "If-Match",
        "If-Modified-Since",
        "If-None-Match",
        "If-Range",
        "If-Unmodified-Since",
        "Keep-Alive",
        "Last-Modified",
        "Max-Forwards",
        "Origin",
        "Pragma",
        "Proxy-Authorization",
        "Range",
        "Referer",
        "Request-Id",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Translate",
        "traceparent",
        "tracestate",
        "Upgrade",
        "Upgrade-Insecure-Requests",
        "User-Agent",
        "Via",
        "Warning",
    ];
    KNOWN.iter().find(|k| k.eq_ignore_ascii_case(name)).map_or_else(|| name.to_owned(), |k| (*k).to_owned())
}
