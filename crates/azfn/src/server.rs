//! Serving the host: readiness on `GET /`, invocations on `POST /{FunctionName}`, and forwarded
//! HTTP requests at their routes.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use futures_util::FutureExt as _;
use http::{HeaderMap, HeaderValue, StatusCode, header::CONTENT_TYPE};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::app::{App, BoxedHandler, HandlerKind, TriggerArg};
use crate::context::Context;
use crate::context::Services;
use crate::durable::binding::DurableSource;
use crate::envelope::{EnvelopeSeed, TriggerValue, read_envelope};
use crate::error::{InvocationError, StartupError};
use crate::function_json::{AppMetadata, FunctionSpec};
use crate::http::{HttpRequest, forward};
use crate::logs::{Capture, SPAN_NAME};
use crate::outputs::Answer;
use crate::telemetry::Carrier;

/// The header in which the host sends the invocation id.
const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

struct Function {
    spec: Arc<FunctionSpec>,
    kind: Kind,
    /// Read an HTTP trigger together with the envelope (the handler takes an [`HttpRequest`]).
    reads_http: bool,
    /// What the app shares with its invocations' contexts.
    services: Arc<Services>,
}

enum Kind {
    Typed(BoxedHandler),
    /// An axum handler, mounted alone at the function's routes.
    Axum(Router),
}

struct Runtime {
    functions: HashMap<String, Arc<Function>>,
    /// Lower-cased name -> name, for a host that changes the case.
    by_lower_name: HashMap<String, String>,
    known: Vec<String>,
    forward: Router,
    /// The mounted forwarded paths, by segment, for matching a request's path without regard to case.
    templates: Vec<Vec<String>>,
    /// Whether every template is lowercase (then only a path with capitals needs matching).
    lowercase_routes: bool,
}

/// The custom handler: a `tower` service that answers the host's readiness probe (`GET /`),
/// its invocations (`POST /{FunctionName}`) and the HTTP requests it forwards.
///
/// [`run`] serves it; [`handler`] builds it, e.g. for tests without a socket
/// (`tower::ServiceExt::oneshot`). The protocol's two fixed endpoints are matched directly, without
/// a router, since they carry every invocation; forwarded requests go through an axum router.
#[derive(Clone)]
pub struct CustomHandler {
    rt: Arc<Runtime>,
}

impl std::fmt::Debug for CustomHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomHandler").field("functions", &self.rt.known).finish()
    }
}

impl tower::Service<Request> for CustomHandler {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // Each route gets a future of its own size: the invocation's is boxed on every request, and
        // a single future for all routes would be as large as the forwarding router's.
        if req.uri().path() == "/" && matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
            return Box::pin(std::future::ready(Ok(ready())));
        }
        if let Some(function) = self.rt.invoked(&req) {
            return Box::pin(async move { Ok(invoke(&function, req).await) });
        }
        let rt = self.rt.clone();
        Box::pin(async move { Ok(forward_request(rt, req).await) })
    }
}

impl Runtime {
    /// The function a `POST /{FunctionName}` invokes (its name matched regardless of case).
    fn invoked(&self, req: &Request) -> Option<Arc<Function>> {
        if req.method() != http::Method::POST {
            return None;
        }
        let name = req.uri().path().strip_prefix('/').filter(|s| !s.is_empty() && !s.contains('/'))?;
        let found = self
            .functions
            .get(name)
            .or_else(|| self.by_lower_name.get(&name.to_ascii_lowercase()).and_then(|n| self.functions.get(n)));
        found.cloned()
    }
}

/// [`handler`] as an axum [`Router`], to nest in an axum app of your own.
pub fn router(app: App, metadata: &AppMetadata) -> Result<Router, StartupError> {
    Ok(Router::new().fallback_service(handler(app, metadata)?))
}

/// Builds the custom handler that serves `app` for the functions described by `metadata`, after
/// checking that they match.
pub fn handler(app: App, metadata: &AppMetadata) -> Result<CustomHandler, StartupError> {
    app.check(metadata)?;
    let services = Arc::new(Services {
        durable: app.durable.clone().map(DurableSource::Hub).unwrap_or_default(),
        route_prefix: metadata.host.route_prefix.clone(),
    });
    let mut functions = HashMap::new();
    let mut forward = Router::new();
    let mut templates: Vec<Vec<String>> = Vec::new();
    let mut problems = Vec::new();
    for (name, reg) in app.registrations {
        let spec = Arc::new(metadata.functions[&name].clone());
        let reads_http = reg.takes_http_request && spec.trigger().is_type("httpTrigger");
        let paths = if spec.trigger().is_type("httpTrigger") {
            let route = spec.trigger().property("route").unwrap_or(&name).to_owned();
            match forward::route_paths(&metadata.host.route_prefix, &route) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("function `{name}`: cannot serve route `{route}`: {e}"));
                    continue;
                }
            }
        } else {
            Vec::new()
        };
        templates.extend(paths.iter().map(|p| p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()));
        let methods =
            method_filter(&spec).map_err(|e| StartupError::Registration(vec![format!("function `{name}`: {e}")]))?;
        let kind = match reg.kind {
            HandlerKind::Typed(handler) => {
                if spec.is_http_only() {
                    let (h, s, sv) = (handler.clone(), spec.clone(), services.clone());
                    let method_router = on(methods, move |params: RawPathParams, req: Request| {
                        serve_forwarded(h.clone(), s.clone(), sv.clone(), params, req)
                    });
                    forward = mount(forward, &paths, method_router, &name)?;
                }
                Kind::Typed(handler)
            }
            HandlerKind::Axum(method_router) => {
                let own = mount(Router::new(), &paths, (*method_router).clone(), &name)?;
                forward = mount(forward, &paths, *method_router, &name)?;
                Kind::Axum(own)
            }
        };
        functions.insert(name, Arc::new(Function { spec, kind, reads_http, services: services.clone() }));
    }
    if !problems.is_empty() {
        return Err(StartupError::Registration(problems));
    }
    let mut known: Vec<String> = functions.keys().cloned().collect();
    known.sort();
    let runtime = Arc::new(Runtime {
        by_lower_name: known.iter().map(|n| (n.to_ascii_lowercase(), n.clone())).collect(),
        known,
        functions,
        forward: forward.fallback(not_found),
        lowercase_routes: templates
            .iter()
            .flatten()
            .filter(|s| !s.starts_with('{'))
            .all(|s| !s.bytes().any(|b| b.is_ascii_uppercase())),
        templates,
    });
    Ok(CustomHandler { rt: runtime })
}

/// The methods a function.json allows (`methods`; all when absent).
fn method_filter(spec: &FunctionSpec) -> Result<MethodFilter, String> {
    let Some(Value::Array(methods)) = spec.trigger().value("methods") else {
        return Ok(MethodFilter::DELETE
            .or(MethodFilter::GET)
            .or(MethodFilter::HEAD)
            .or(MethodFilter::OPTIONS)
            .or(MethodFilter::PATCH)
            .or(MethodFilter::POST)
            .or(MethodFilter::PUT));
    };
    let mut filter: Option<MethodFilter> = None;
    for m in methods {
        let text = m.as_str().unwrap_or_default().to_ascii_uppercase();
        let f = match text.as_str() {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "DELETE" => MethodFilter::DELETE,
            "PATCH" => MethodFilter::PATCH,
            "HEAD" => MethodFilter::HEAD,
            "OPTIONS" => MethodFilter::OPTIONS,
            "TRACE" => MethodFilter::TRACE,
            _ => return Err(format!("`methods` has an unknown HTTP method {m}")),
        };
        filter = Some(filter.map_or(f, |acc| acc.or(f)));
    }
    filter.ok_or_else(|| "`methods` is empty".to_owned())
}

/// Adds `method_router` at each path; overlapping routes are a start-up error, not a panic.
fn mount(
    router: Router,
    paths: &[String],
    method_router: axum::routing::MethodRouter,
    name: &str,
) -> Result<Router, StartupError> {
    let mut router = router;
    for path in paths {
        let (r, mr) = (router.clone(), method_router.clone());
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| r.route(path, mr)));
        std::panic::set_hook(previous);
        router = result.map_err(|p| {
            StartupError::Registration(vec![format!(
                "function `{name}`: route `{path}` overlaps another function's: {}",
                panic_text(&*p)
            )])
        })?;
    }
    Ok(router)
}

/// The answer to the host's readiness and health probe.
fn ready() -> Response {
    let mut res = Response::new(Body::from("ready"));
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    res
}

/// Serves a request the host forwarded to an HTTP function's route, or answers 404.
async fn forward_request(rt: Arc<Runtime>, req: Request) -> Response {
    // The host matches routes without regard to case (ASP.NET Core routing) and forwards the path
    // as the caller wrote it; axum's router is case-sensitive, so use the route's own spelling.
    let path = req.uri().path();
    let may_differ = !rt.lowercase_routes || path.bytes().any(|b| b.is_ascii_uppercase());
    let req = match may_differ.then(|| canonical_path(&rt.templates, path)).flatten() {
        Some(path) => with_path(req, &path),
        None => req,
    };
    let Ok(res) = rt.forward.clone().oneshot(req).await;
    if res.status() == StatusCode::NOT_FOUND && res.headers().contains_key("x-azfn-not-found") {
        // Our own fallback: say which functions exist.
        return not_found_with(&rt.known, res);
    }
    res
}

/// The path with each literal segment spelled as the best-matching template spells it, when that
/// differs from `path` only in case; `None` when no template matches that way or nothing changes.
/// Of several matches, the one with the most literal segments wins (as in ASP.NET Core).
fn canonical_path(templates: &[Vec<String>], path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // How many literal segments `t` matches, or `None` when it does not match.
    let score = |t: &[String]| -> Option<usize> {
        let catch_all = t.last().is_some_and(|s| s.starts_with("{*"));
        let fixed = if catch_all { t.len() - 1 } else { t.len() };
        let fits = if catch_all { segments.len() > fixed } else { segments.len() == fixed };
        if !fits {
            return None;
        }
        let mut literals = 0;
        for (seg, actual) in t[..fixed].iter().zip(&segments) {
            if seg.starts_with('{') {
                continue;
            }
            if !seg.eq_ignore_ascii_case(actual) {
                return None;
            }
            literals += 1;
        }
        Some(literals)
    };
    let best = templates.iter().filter_map(|t| score(t).map(|n| (n, t))).max_by_key(|(n, _)| *n)?.1;
    let mut out = String::with_capacity(path.len());
    for (i, actual) in segments.iter().enumerate() {
        out.push('/');
        match best.get(i) {
            Some(seg) if !seg.starts_with('{') => out.push_str(seg),
            _ => out.push_str(actual),
        }
    }
    (!out.is_empty() && out != path && out != path.trim_end_matches('/')).then_some(out)
}

/// `req` with its path replaced (the query is kept).
fn with_path(req: Request, path: &str) -> Request {
    let (mut parts, body) = req.into_parts();
    let pq = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    if let Ok(uri) = pq.parse() {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

async fn not_found(req: Request) -> Response {
    let mut res = (StatusCode::NOT_FOUND, format!("no function or route for {} {}", req.method(), req.uri().path()))
        .into_response();
    res.headers_mut().insert("x-azfn-not-found", HeaderValue::from_static("1"));
    res.extensions_mut().insert(NotFoundTarget { method: req.method().clone(), path: req.uri().path().to_owned() });
    res
}

#[derive(Clone)]
struct NotFoundTarget {
    method: http::Method,
    path: String,
}

fn not_found_with(known: &[String], res: Response) -> Response {
    let target = res.extensions().get::<NotFoundTarget>().cloned();
    let (method, path) = target.map(|t| (t.method, t.path)).unwrap_or((http::Method::GET, String::new()));
    let message = if method == http::Method::POST && !path[1..].contains('/') {
        InvocationError::UnknownFunction { name: path[1..].to_owned(), known: known.to_vec() }.to_string()
    } else {
        format!("no function or route for {method} {path}; this handler serves: {}", known.join(", "))
    };
    let body = json!({"error": {"kind": "unknown_function", "message": message}, "functions": known});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

fn invocation_id(headers: &HeaderMap) -> String {
    headers
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

async fn invoke(function: &Function, req: Request) -> Response {
    let id = invocation_id(req.headers());
    let body = match forward::read_body(req.into_body()).await {
        Ok(b) => b,
        Err(e) => {
            return failure(
                &function.spec.name,
                &id,
                &InvocationError::Envelope(format!("cannot read the body: {e}")),
                Vec::new(),
            );
        }
    };
    let seed = EnvelopeSeed { trigger: &function.spec.trigger().name, http: function.reads_http };
    let envelope = match read_envelope(&body, seed) {
        Ok(e) => e,
        Err(e) => {
            return failure(&function.spec.name, &id, &InvocationError::Envelope(e.to_string()), Vec::new());
        }
    };
    if let Some(raw) = envelope.metadata {
        let text = raw.get().trim_start();
        if !(text.starts_with('{') || text == "null") {
            let e = InvocationError::Envelope("`Metadata` should be an object".to_owned());
            return failure(&function.spec.name, &id, &e, Vec::new());
        }
    }
    // The trigger's value is read now or copied out (the handler parses it); the rest stay slices
    // of the body.
    let trigger = match envelope.trigger {
        None => TriggerArg::Wire(None),
        Some(TriggerValue::Raw(raw)) => TriggerArg::Wire(Some(raw.to_owned())),
        Some(TriggerValue::Http(wire)) => match HttpRequest::from_wire(wire, &body) {
            Ok(request) => TriggerArg::Request(Box::new(request)),
            Err(e) => TriggerArg::Invalid(e),
        },
    };
    let data =
        envelope.data.into_iter().map(|(k, raw)| (k.into_owned(), body.slice_ref(raw.get().as_bytes()))).collect();
    let metadata = envelope.metadata.map(|raw| body.slice_ref(raw.get().as_bytes()));
    let ctx = Context::from_raw(function.spec.clone(), id, metadata, data, function.services.clone());
    let carrier = carrier(&trigger);

    let (result, logs, exported) = match &function.kind {
        Kind::Typed(handler) => run_logged(&ctx, &carrier, handler(trigger, ctx.clone())).await,
        Kind::Axum(router) => {
            let router = router.clone();
            let c = ctx.clone();
            let fut = async move {
                let request = crate::app::bind::<HttpRequest>(trigger, &c)?;
                let http_req = forward::to_http(&request).map_err(|e| InvocationError::Handler(e.into()))?;
                let Ok(res) = router.oneshot(http_req).await;
                let res = forward::from_response(res).await.map_err(|e| InvocationError::Handler(e.into()))?;
                c.with_outputs(|o, spec| o.set_http(spec, res)).map_err(InvocationError::Output)
            };
            run_logged(&ctx, &carrier, Box::pin(fut)).await
        }
    };
    let outputs = ctx.take_outputs();
    if let (Some(span), Some((_, res))) = (&exported, &outputs.http) {
        crate::telemetry::http_status(span, res.status.as_u16());
    }
    let answer = result.and_then(|()| {
        let answer = Answer::new(&outputs, &logs).map_err(InvocationError::Output)?;
        // Room for the usual small answer without growing.
        let mut bytes = Vec::with_capacity(256);
        serde_json::to_writer(&mut bytes, &answer)
            .map(|()| bytes)
            .map_err(|e| InvocationError::Output(crate::error::OutputError::new(e.to_string())))
    });
    match answer {
        Ok(bytes) => json_response(StatusCode::OK, bytes),
        Err(e) => failure(&function.spec.name, ctx.invocation_id(), &e, logs),
    }
}

/// The trace context an invocation continues, while exporting: an HTTP request's headers, or a
/// message's `traceparent` property (see [`telemetry`](crate::telemetry)); none otherwise.
fn carrier(trigger: &TriggerArg) -> Carrier {
    if !crate::telemetry::enabled() {
        return Carrier::default();
    }
    match trigger {
        TriggerArg::Request(req) => Carrier {
            traceparent: req.header("traceparent").map(str::to_owned),
            tracestate: req.header("tracestate").map(str::to_owned),
        },
        TriggerArg::Wire(Some(raw)) => Carrier::from_json(raw.get()),
        _ => Carrier::default(),
    }
}

/// OpenTelemetry's `faas.trigger` and span kind for a trigger type.
fn trigger_kind(binding_type: &str) -> (&'static str, &'static str) {
    match binding_type {
        "httpTrigger" => ("http", "server"),
        "queueTrigger" | "serviceBusTrigger" | "eventHubTrigger" | "eventGridTrigger" => ("pubsub", "consumer"),
        "timerTrigger" => ("timer", "internal"),
        "blobTrigger" | "cosmosDBTrigger" => ("datasource", "internal"),
        _ => ("other", "internal"),
    }
}

/// Runs a handler future inside the invocation span, catching panics, and returns its captured logs
/// and, while exporting, the span (to record the HTTP status on).
async fn run_logged(
    ctx: &Context,
    carrier: &Carrier,
    fut: futures_util::future::BoxFuture<'static, Result<(), InvocationError>>,
) -> (Result<(), InvocationError>, Vec<String>, Option<tracing::Span>) {
    let capture = Capture::begin(ctx);
    // ERROR level so that the span exists whatever RUST_LOG allows; the layer needs it to capture.
    let span = if crate::telemetry::enabled() {
        let (trigger, kind) = trigger_kind(&ctx.function().trigger().binding_type);
        tracing::error_span!(
            SPAN_NAME,
            invocation_id = ctx.invocation_id(),
            function = ctx.function_name(),
            otel.name = ctx.function_name(),
            otel.kind = kind,
            faas.trigger = trigger,
            azfn.trace_id = tracing::field::Empty,
        )
    } else {
        tracing::error_span!(SPAN_NAME, invocation_id = ctx.invocation_id(), function = ctx.function_name())
    };
    capture.opened();
    crate::telemetry::continue_trace(&span, carrier);
    // A second handle on the span only while exporting, to mark a failure (cloning a span is a
    // registry call each way).
    let exported = crate::telemetry::enabled().then(|| span.clone());
    let result = match AssertUnwindSafe(fut).catch_unwind().instrument(span).await {
        Ok(r) => r,
        Err(panic) => Err(InvocationError::Panic(panic_text(&*panic))),
    };
    if let (Err(e), Some(span)) = (&result, &exported) {
        crate::telemetry::fail(span, &e.to_string());
    }
    (result, ctx.take_logs(), exported)
}

/// The message of a panic payload (`&str` or `String`).
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".to_owned())
}

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(bytes));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    res
}

/// A failed invocation: logged to stderr (errors) and stdout (its captured lines), answered non-2xx.
fn failure(function: &str, id: &str, error: &InvocationError, logs: Vec<String>) -> Response {
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for line in &logs {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(std::io::stderr().lock(), "ERROR {function} failed: {error} [invocation {id}]");
    }
    let body = json!({
        "error": {"kind": error.kind(), "message": error.to_string()},
        "function": function,
        "invocationId": id,
        "Logs": logs,
    });
    json_response(error.status(), serde_json::to_vec(&body).unwrap_or_default())
}

/// Serves a request the host forwarded to an HTTP-only function with a typed handler.
async fn serve_forwarded(
    handler: BoxedHandler,
    spec: Arc<FunctionSpec>,
    services: Arc<Services>,
    params: RawPathParams,
    req: Request,
) -> Response {
    let id = invocation_id(req.headers());
    let params = params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let request = match forward::from_forwarded(req, params).await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let ctx = Context::from_raw(spec.clone(), id.clone(), None, HashMap::new(), services);
    let trigger = TriggerArg::Request(Box::new(request));
    let carrier = carrier(&trigger);
    let (result, logs, exported) = run_logged(&ctx, &carrier, handler(trigger, ctx.clone())).await;
    // Forwarded responses carry no Logs: print them so the host logs them.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for line in &logs {
            let _ = writeln!(out, "{line}");
        }
    }
    match result {
        Ok(()) => match ctx.take_outputs().http {
            Some((_, res)) => {
                if let Some(span) = &exported {
                    crate::telemetry::http_status(span, res.status.as_u16());
                }
                res.into_response()
            }
            None => StatusCode::NO_CONTENT.into_response(),
        },
        Err(e) => {
            let _ = failure(&spec.name, &id, &e, Vec::new());
            let mut body = crate::error::error_json("handler_error", &e);
            body["invocationId"] = json!(id);
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }
    }
}

/// How the server stopped.
const STOP_NONE: u8 = 0;
const STOP_TERM: u8 = 1;
const STOP_INT: u8 = 2;

/// Serves `app` as the host expects and returns the process exit code.
///
/// It installs the log layer, reads `FUNCTIONS_CUSTOMHANDLER_PORT`, loads host.json and the
/// function.json files (from `$FUNCTIONS_APP_ROOT_PATH`, or `./functions/` in a checkout), checks the
/// handlers against them, and listens on `127.0.0.1:<port>` (the host dials IPv4 loopback).
///
/// It never returns success: the host does not restart a handler that exits with 0. It returns 1
/// when it cannot start, 143 after SIGTERM and 130 after Ctrl-C, in both cases once in-flight
/// invocations have finished.
pub async fn run(app: App) -> ExitCode {
    crate::logs::init();
    quiet_repeated_panics();
    match start(app).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("azfn: {e}");
            ExitCode::from(1)
        }
    }
}

/// A panic hook that prints a repeated panic (the same place, e.g. a queue message delivered five
/// times) in one line: the first at each place as the standard hook prints it (with its backtrace
/// under `RUST_BACKTRACE`), the next ones without, so that a poison message does not fill the log
/// with hundreds of backtrace lines. The invocation fails with the panic's message either way.
fn quiet_repeated_panics() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let standard = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let place = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
        let first =
            SEEN.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(HashSet::new).insert(place.clone());
        if first {
            standard(info);
        } else {
            let message = panic_text(info.payload());
            eprintln!("panicked at {place}: {message} (again; the backtrace was printed the first time)");
        }
    }));
}

async fn start(app: App) -> Result<ExitCode, StartupError> {
    let port = port_from_env()?;
    let metadata = AppMetadata::discover()?;
    // The task hub's queues and tables are made now, not at the first orchestration: the Functions
    // host does not create a queue trigger's queue, and polls a missing one with a back-off that
    // reaches a minute in Azure, so the first orchestration would wait that long.
    if let Some(durable) = app.durable.clone() {
        // A retention policy that cannot be read stops the start, naming the setting.
        let retention = crate::durable::retention::RetentionPolicy::from_env()
            .and_then(|p| Ok(p.zip(Some(crate::durable::retention::every_from_env()?))))
            .map_err(StartupError::Setting)?;
        tokio::spawn(async move {
            if let Err(e) = durable.dispatcher().await {
                tracing::warn!("the task hub could not be created yet (it is tried again at first use): {e}");
            }
            let client = match durable.client().await {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!("schedules and retention are off: no client of the task hub: {e}");
                    return;
                }
            };
            // Scheduled starts (`orchestrators/schedules`), checked by every worker.
            tokio::spawn(crate::durable::schedules::run(client.clone()));
            if let Some((policy, every)) = retention {
                crate::durable::retention::run(client, policy, every).await;
            }
        });
    }
    let handler = handler(app, &metadata)?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(StartupError::Bind)?;
    tracing::info!(
        "serving {} functions on http://127.0.0.1:{port} (app root {})",
        metadata.functions.len(),
        metadata.root.display()
    );
    let stop = Arc::new(AtomicU8::new(STOP_NONE));
    let signal = {
        let stop = stop.clone();
        async move { stop.store(wait_for_signal().await, Ordering::SeqCst) }
    };
    crate::serve::serve(listener, handler, signal).await;
    crate::telemetry::shutdown().await;
    Ok(match stop.load(Ordering::SeqCst) {
        STOP_INT => ExitCode::from(130),
        _ => ExitCode::from(143),
    })
}

fn port_from_env() -> Result<u16, StartupError> {
    match std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT") {
        Ok(v) => v.trim().parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            StartupError::Port(format!("FUNCTIONS_CUSTOMHANDLER_PORT should be a port number from 1 to 65535, got {v:?}"))
        }),
        Err(_) => Err(StartupError::Port(
            "FUNCTIONS_CUSTOMHANDLER_PORT is not set. This program is an Azure Functions custom handler: the Functions host \
             starts it and sets the port. To run it alone: FUNCTIONS_CUSTOMHANDLER_PORT=7071 azfn"
                .to_owned(),
        )),
    }
}

/// Set by `cargo azfn start` on the handler it starts: its own pid. The handler stops (as on SIGTERM) when
/// its parent is no longer that process, so a host killed with SIGKILL leaves no handler behind.
pub const HOST_PID_VAR: &str = "AZFN_HOST_PID";

/// Resolves when the process's parent is no longer the host named by [`HOST_PID_VAR`]; never when
/// the variable is not set (the Functions host, or a handler started by hand).
async fn host_gone() {
    #[cfg(unix)]
    if let Some(host) = std::env::var(HOST_PID_VAR).ok().and_then(|v| v.trim().parse::<u32>().ok()) {
        loop {
            if std::os::unix::process::parent_id() != host {
                tracing::warn!("the host that started this handler (pid {host}) is gone; stopping");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    std::future::pending::<()>().await
}

async fn wait_for_signal() -> u8 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => STOP_TERM,
                _ = tokio::signal::ctrl_c() => STOP_INT,
                _ = host_gone() => STOP_TERM,
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                STOP_INT
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        STOP_INT
    }
}

#[cfg(test)]
mod route_case_tests {
    use super::canonical_path;

    fn t(paths: &[&str]) -> Vec<Vec<String>> {
        paths.iter().map(|p| p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()).collect()
    }

    #[test]
    fn literal_segments_take_the_route_spelling_and_parameters_keep_theirs() {
        let routes = t(&["/api/orders/{id}", "/api/orders/summary", "/api/hello", "/api/orchestrators/{*path}"]);
        assert_eq!(canonical_path(&routes, "/api/hello"), None);
        assert_eq!(canonical_path(&routes, "/API/Hello").as_deref(), Some("/api/hello"));
        assert_eq!(canonical_path(&routes, "/Api/Orders/AbC").as_deref(), Some("/api/orders/AbC"));
        assert_eq!(canonical_path(&routes, "/api/ORDERS/Summary").as_deref(), Some("/api/orders/summary"));
        assert_eq!(
            canonical_path(&routes, "/API/Orchestrators/Instances/X1").as_deref(),
            Some("/api/orchestrators/Instances/X1")
        );
        assert_eq!(canonical_path(&routes, "/api/nope"), None);
        assert_eq!(canonical_path(&routes, "/api/orders/a/b"), None);
    }
}
