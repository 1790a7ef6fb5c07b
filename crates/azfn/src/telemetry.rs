//! OpenTelemetry traces: one span per invocation, orchestration episode, activity execution and
//! entity operation, in one trace from the request that started the work to its last step.
//!
//! Exporting is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, or when `OTEL_TRACES_EXPORTER=azuremonitor`; off otherwise, at no cost: no exporter, no
//! thread, no context read or written. Spans go out in batches:
//!
//! - to an OTLP receiver (a Collector, the Aspire dashboard, Jaeger, ...) as OTLP over HTTP with
//!   protobuf bodies (`http/protobuf`);
//! - with `OTEL_TRACES_EXPORTER=azuremonitor`, to Application Insights, from
//!   `APPLICATIONINSIGHTS_CONNECTION_STRING`; keyless when `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`
//!   is `Authorization=AAD` (or `Authorization=AAD;ClientId=<id>` for a user-assigned identity):
//!   the app's managed identity gets the token, as `infra/` sets it up (`docs/telemetry.md`).
//!
//! The standard variables apply:
//!
//! | variable | meaning |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | the receiver's base URL; traces go to `{it}/v1/traces` |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the full URL for traces (wins over the above) |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | `key=value,...` sent with each export (e.g. an API key) |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` | milliseconds per export (default 10,000) |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource (default name: the app's site name in Azure, else the executable's) |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | sampling (default: parent-based, all) |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, ... | the batch processor |
//! | `OTEL_TRACES_EXPORTER` | `otlp` (the default), `azuremonitor` or `none` |
//! | `OTEL_SDK_DISABLED=true` | exporting off |
//!
//! # How a trace crosses hops
//!
//! W3C trace context (`traceparent`) is continued from:
//! - an HTTP request's `traceparent` and `tracestate` headers (the host passes the caller's headers
//!   through, in the invocation's `req` or the forwarded request);
//! - a queue message that is a JSON object with a `traceparent` property: the durable engine's own
//!   messages carry one, and [`Context::send_json`](crate::Context::send_json) adds it to the JSON
//!   objects it sends while a trace is being exported (read it with
//!   [`QueueMessage::traceparent`](crate::QueueMessage::traceparent)).
//!
//! So a start request, the orchestration's episodes, its activities (in whichever process runs them),
//! sub-orchestrations and entity operations share the start request's trace id.
//!
//! # Span names
//!
//! The names are those of the console and the dashboard: an invocation's span is named for the
//! function; an episode's `orchestration:{name}`, an activity's `activity:{name}` and an entity
//! operation's `entity:{name}` (as Durable Functions names them), each with the instance id.
//! Log lines written inside a trace end with its id (`trace 4bf9…`), to find them from the trace.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Status, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Whether spans are being exported (set once, at start-up).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The provider, kept for the flush at shutdown.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether this process exports traces (the environment asked for it and the exporter started).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    /// An OTLP/HTTP receiver (the endpoint as given).
    Otlp(String),
    /// Application Insights, from its connection string; with an Entra ID token of the managed
    /// identity (`Some(client id)`, `None` inside for the system-assigned one) when
    /// `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` says `Authorization=AAD`.
    AzureMonitor { connection_string: String, entra: Option<Option<String>> },
}

/// A trimmed, non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Where the environment asks spans to go, if anywhere (see the module docs).
fn destination_from_env() -> Result<Option<Destination>, String> {
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let exporter = var("OTEL_TRACES_EXPORTER").unwrap_or_default().to_ascii_lowercase();
    match exporter.as_str() {
        "none" => Ok(None),
        "" | "otlp" => Ok(var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .map(Destination::Otlp)),
        "azuremonitor" => {
            let connection_string = var("APPLICATIONINSIGHTS_CONNECTION_STRING").ok_or(
                "OTEL_TRACES_EXPORTER is azuremonitor, but APPLICATIONINSIGHTS_CONNECTION_STRING is not set".to_owned(),
            )?;
            let entra = match var("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") {
                None => None,
                Some(auth) => Some(entra_client_id(&auth)?),
            };
            Ok(Some(Destination::AzureMonitor { connection_string, entra }))
        }
        other => Err(format!("OTEL_TRACES_EXPORTER={other:?} is not supported: use otlp, azuremonitor or none")),
    }
}

/// Reads `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` (`Authorization=AAD[;ClientId=<guid>]`, the
/// Functions app setting): the user-assigned identity's client id, or `None` for the system-assigned one.
fn entra_client_id(auth: &str) -> Result<Option<String>, String> {
    let mut authorization = None;
    let mut client_id = None;
    for part in auth.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| {
            format!(
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING should be `Authorization=AAD[;ClientId=<id>]`, got {auth:?}"
            )
        })?;
        match key.trim().to_ascii_lowercase().as_str() {
            "authorization" => authorization = Some(value.trim().to_owned()),
            "clientid" => client_id = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    match authorization {
        Some(a) if a.eq_ignore_ascii_case("AAD") => Ok(client_id),
        _ => Err(format!("APPLICATIONINSIGHTS_AUTHENTICATION_STRING should say Authorization=AAD, got {auth:?}")),
    }
}

/// The OpenTelemetry layer to add to a subscriber, when the environment asks for exporting (see the
/// module docs); `None` otherwise. Call it once, inside the Tokio runtime (the exporter sends its
/// requests on it). [`logs::init`](crate::logs::init) and [`run`](crate::run) call it for you.
///
/// An exporter that cannot be built (e.g. an endpoint that is not a URL) is reported on stderr, and
/// the app runs without exporting.
pub fn layer<S>() -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let started = destination_from_env().and_then(|d| d.map(|d| start(&d)).transpose());
    match started.transpose()? {
        Ok(tracer) => {
            ENABLED.store(true, Ordering::Relaxed);
            // No per-poll timing (`busy_ns`/`idle_ns`: two clock reads at every enter and exit of an
            // instrumented future), no code locations or thread names: attributes nobody asked for.
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_tracked_inactivity(false)
                    .with_location(false)
                    .with_threads(false)
                    .with_target(false),
            )
        }
        Err(e) => {
            eprintln!("azfn: WARN traces are not exported: {e}");
            None
        }
    }
}

/// Builds the exporter and the provider, and keeps the provider for [`shutdown`].
fn start(destination: &Destination) -> Result<SdkTracer, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "the exporter needs a Tokio runtime: set up telemetry inside it".to_owned())?;
    let timeout = export_timeout();
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let builder = SdkTracerProvider::builder().with_resource(resource());
    let provider = match destination {
        Destination::Otlp(endpoint) => {
            use opentelemetry_otlp::WithHttpConfig as _;
            let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
                .unwrap_or_default();
            if !protocol.is_empty() && protocol != "http/protobuf" {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL is {protocol:?}; azfn exports `http/protobuf` only (point the endpoint at the receiver's OTLP/HTTP port, usually 4318)"
                ));
            }
            let client = ExportClient { http, runtime, entra: None, loopback_http: false };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .build()
                .map_err(|e| format!("cannot export to {endpoint:?}: {e}"))?;
            builder.with_batch_exporter(exporter).build()
        }
        Destination::AzureMonitor { connection_string, entra } => {
            let entra = entra.as_ref().map(|client_id| {
                let endpoint = crate::storage::IdentityEndpoint::from_env();
                std::sync::Arc::new(crate::storage::ManagedIdentity::for_resource(
                    endpoint,
                    client_id.clone(),
                    MONITOR_RESOURCE,
                ))
            });
            let loopback_http = loopback_http_ingestion(connection_string);
            let client = ExportClient { http, runtime, entra, loopback_http };
            let exporter =
                opentelemetry_application_insights::Exporter::new_from_connection_string(connection_string, client)
                    .map_err(|e| format!("APPLICATIONINSIGHTS_CONNECTION_STRING is not usable: {e}"))?;
            builder.with_batch_exporter(exporter).build()
        }
    };
    let tracer = provider.tracer("azfn");
    PROVIDER.set(provider).map_err(|_| "telemetry was already set up in this process".to_owned())?;
    Ok(tracer)
}

/// The process's resource: the `OTEL_*` variables, else the Function App's name and instance (the
/// variables App Service sets), else the executable's name and a fresh id.
fn resource() -> opentelemetry_sdk::Resource {
    use opentelemetry::KeyValue;
    let mut builder = opentelemetry_sdk::Resource::builder();
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    if !named {
        let name = std::env::var("WEBSITE_SITE_NAME").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "azfn".to_owned())
        });
        builder = builder.with_service_name(name);
    }
    let instance = std::env::var("WEBSITE_INSTANCE_ID")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    builder
        .with_attribute(KeyValue::new("service.instance.id", instance))
        .with_attribute(KeyValue::new("process.pid", i64::from(std::process::id())))
        .with_attribute(KeyValue::new("cloud.provider", "azure"))
        .with_attribute(KeyValue::new("cloud.platform", "azure.functions"))
        .build()
}

/// Sends the spans still buffered and stops the exporter; waits at most the export timeout. Call it
/// before the process exits ([`run`](crate::run) does).
pub async fn shutdown() {
    let Some(provider) = PROVIDER.get().cloned() else { return };
    // The batch processor's thread exports with requests run on this runtime: wait for it from a
    // blocking thread, so that this one stays free to drive them.
    let timeout = export_timeout() + Duration::from_secs(1);
    let _ = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout)).await;
}

/// The time one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s).
fn export_timeout() -> Duration {
    var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// The audience of Azure Monitor ingestion tokens ("Microsoft Entra authentication for Application
/// Insights"; the identity needs the Monitoring Metrics Publisher role on the resource).
const MONITOR_RESOURCE: &str = "https://monitor.azure.com/";

/// The exporters' HTTP client: the app's reqwest, its requests run on the app's runtime (the batch
/// processor calls from a thread of its own, with no runtime). For Application Insights with Entra
/// ID, it adds the managed identity's bearer token and posts to `/v2.1/track`, the ingestion path
/// that accepts tokens (`/v2/track`, where the exporter posts, answers "Authentication not supported").
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    entra: Option<std::sync::Arc<crate::storage::ManagedIdentity>>,
    /// The connection string names a loopback `http://` ingestion endpoint (a local stand-in): the
    /// exporter makes every endpoint `https://`, as the Azure SDKs do, so it is turned back.
    loopback_http: bool,
}

/// The token and the identity header stay out of debug output.
impl std::fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportClient")
            .field("entra", &self.entra.is_some())
            .field("loopback_http", &self.loopback_http)
            .finish_non_exhaustive()
    }
}

/// Whether `uri` names a loopback host exactly (`127.0.0.1`, `localhost`, `::1`), with no user info.
fn is_loopback(uri: &http::Uri) -> bool {
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    !authority.contains('@') && matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1"))
}

/// Whether the connection string's `IngestionEndpoint` is `http://` on a loopback host.
fn loopback_http_ingestion(connection_string: &str) -> bool {
    connection_string.split(';').filter_map(|p| p.split_once('=')).any(|(k, v)| {
        k.trim().eq_ignore_ascii_case("IngestionEndpoint")
            && v.trim().parse::<http::Uri>().is_ok_and(|u| u.scheme_str() == Some("http") && is_loopback(&u))
    })
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        mut request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let mut uri = request.uri().to_string();
        if self.entra.is_some()
            && let Some(prefix) = uri.strip_suffix("/v2/track")
        {
            uri = format!("{prefix}/v2.1/track");
        }
        let mut parsed: http::Uri = uri.parse()?;
        if self.loopback_http
            && parsed.scheme_str() == Some("https")
            && is_loopback(&parsed)
            && let Some(rest) = uri.strip_prefix("https://")
        {
            parsed = format!("http://{rest}").parse()?;
        }
        *request.uri_mut() = parsed;
        let mut request = reqwest::Request::try_from(request)?;
        let client = self.http.clone();
        let entra = self.entra.clone();
        let answer = self.runtime.spawn(async move {
            if let Some(identity) = entra {
                let token = match identity.token().await {
                    Ok(token) => token,
                    // Answered as a refusal, not an error: the exporter retries errors for half a
                    // minute, holding the batch thread, and a token that cannot be had now will
                    // not be had in a second either. The batch is dropped and reported.
                    Err(e) => {
                        eprintln!("azfn: WARN no token for Application Insights, spans dropped: {e}");
                        return http::Response::builder()
                            .status(http::StatusCode::UNAUTHORIZED)
                            .body(bytes::Bytes::new())
                            .map_err(|e| e.to_string());
                    }
                };
                let mut value = http::HeaderValue::try_from(format!("Bearer {token}")).map_err(|e| e.to_string())?;
                value.set_sensitive(true);
                request.headers_mut().insert(http::header::AUTHORIZATION, value);
            }
            let res = client.execute(request).await.map_err(|e| e.to_string())?;
            let mut answer = http::Response::builder().status(res.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = res.headers().clone();
            }
            let body = res.bytes().await.map_err(|e| e.to_string())?;
            answer.body(body).map_err(|e| e.to_string())
        });
        Ok(answer.await??)
    }
}

/// A trace context as carried by a request or a message: `traceparent` and, optionally, `tracestate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Carrier {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl Carrier {
    /// From a JSON message: its `traceparent` (and `tracestate`) when it is an object that has one.
    /// `text` may also be a JSON string holding the object, or a string holding that string: the
    /// host sends a queue message's text double-encoded (see [`QueueMessage`](crate::QueueMessage)).
    pub(crate) fn from_json(text: &str) -> Self {
        #[derive(serde::Deserialize)]
        struct Fields {
            traceparent: Option<String>,
            tracestate: Option<String>,
        }
        let mut object = std::borrow::Cow::Borrowed(text.trim_start());
        for _ in 0..2 {
            if !object.starts_with('"') {
                break;
            }
            match serde_json::from_str::<String>(&object) {
                Ok(inner) => object = std::borrow::Cow::Owned(inner.trim_start().to_owned()),
                Err(_) => return Self::default(),
            }
        }
        if !object.starts_with('{') {
            return Self::default();
        }
        match serde_json::from_str::<Fields>(&object) {
            Ok(f) => Self { traceparent: f.traceparent, tracestate: f.tracestate },
            Err(_) => Self::default(),
        }
    }
}

/// Makes `span` continue the trace `carrier` names (a new trace when it names none, or names one
/// that is not valid W3C), and records the trace id on it for log lines. Call it before the span is
/// first entered. Does nothing when not exporting.
pub(crate) fn continue_trace(span: &Span, carrier: &Carrier) {
    if !enabled() {
        return;
    }
    let mut fields = HashMap::with_capacity(2);
    if let Some(tp) = &carrier.traceparent {
        fields.insert("traceparent".to_owned(), tp.clone());
    }
    if let Some(ts) = &carrier.tracestate {
        fields.insert("tracestate".to_owned(), ts.clone());
    }
    let parent = TraceContextPropagator::new().extract(&fields);
    let _ = span.set_parent(parent);
    record_trace_id(span);
}

/// The span field that holds a span's trace id for the log layer.
pub(crate) const TRACE_ID_FIELD: &str = "azfn.trace_id";

/// Records the span's trace id in its `azfn.trace_id` field (read by the log layer).
fn record_trace_id(span: &Span) {
    let cx = span.context();
    let context = cx.span().span_context().clone();
    if context.is_valid() {
        span.record(TRACE_ID_FIELD, tracing::field::display(context.trace_id()));
    }
}

/// The W3C `traceparent` of the current span, to carry in a message; `None` when not exporting.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// Adds `"traceparent"` as the first property of `json` when it is an object that does not mention
/// one (the rest stays byte for byte as it was); any other text is returned as it is.
pub(crate) fn with_traceparent(json: String, traceparent: &str) -> String {
    let Some(rest) = json.strip_prefix('{') else { return json };
    if json.contains("\"traceparent\"") {
        return json;
    }
    let separator = if rest.trim_start().starts_with('}') { "" } else { "," };
    format!("{{\"traceparent\":{}{separator}{rest}", serde_json::Value::String(traceparent.to_owned()))
}

/// Marks `span` as failed with `message` (no-op when not exporting).
pub(crate) fn fail(span: &Span, message: &str) {
    if enabled() {
        span.set_status(Status::error(message.to_owned()));
    }
}

/// Records an HTTP invocation's response status on its span (`http.response.status_code`, which
/// Application Insights shows as the request's result code); a 5xx marks the span failed, as
/// OpenTelemetry's HTTP conventions do for servers.
pub(crate) fn http_status(span: &Span, status: u16) {
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(Status::error(format!("HTTP {status}")));
    }
}

/// The span of one orchestration episode (applying one message to an instance).
pub(crate) fn orchestration_span(name: &str, instance_id: &str, execution_id: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::error_span!(
        "azfn.orchestration",
        otel.name = %format_args!("orchestration:{name}"),
        "durabletask.type" = "orchestration",
        durabletask.task.name = name,
        durabletask.task.instance_id = instance_id,
        durabletask.task.execution_id = execution_id,
    )
}

/// The span of one activity execution; `attempt` counts deliveries of its message.
pub(crate) fn activity_span(name: &str, instance_id: &str, task_id: u64, attempt: u64) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::error_span!(
        "azfn.activity",
        otel.name = %format_args!("activity:{name}"),
        "durabletask.type" = "activity",
        durabletask.task.name = name,
        durabletask.task.instance_id = instance_id,
        // As i64: OpenTelemetry has no unsigned integers, and a u64 would be exported as text.
        durabletask.task.task_id = task_id as i64,
        durabletask.task.attempt = attempt as i64,
    )
}

/// The span of one entity operation (or lock request) on the entity `instance_id` (`@name@key`).
pub(crate) fn entity_span(instance_id: &str, operation: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    let name = crate::durable::EntityId::from_instance_id(instance_id).map(|e| e.name).unwrap_or_default();
    tracing::error_span!(
        "azfn.entity",
        otel.name = %format_args!("entity:{name}"),
        "durabletask.type" = "entity",
        durabletask.task.name = name,
        durabletask.task.instance_id = instance_id,
        durabletask.entity.operation = operation,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carrier_is_read_from_a_message_object_or_the_string_holding_it() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let object = format!(r#"{{"instanceId":"a","traceparent":"{tp}"}}"#);
        assert_eq!(Carrier::from_json(&object).traceparent.as_deref(), Some(tp));
        let string = serde_json::to_string(&object).unwrap();
        assert_eq!(Carrier::from_json(&string).traceparent.as_deref(), Some(tp));
        // As the host sends a queue message (double-encoded).
        let twice = serde_json::to_string(&string).unwrap();
        assert_eq!(Carrier::from_json(&twice).traceparent.as_deref(), Some(tp));
        assert_eq!(Carrier::from_json(r#""plain text""#), Carrier::default());
        assert_eq!(Carrier::from_json("[1,2]"), Carrier::default());
        assert_eq!(Carrier::from_json(r#"{"traceparent": 5}"#), Carrier::default());
    }

    #[test]
    fn only_a_loopback_ingestion_endpoint_stays_plain_http() {
        assert!(loopback_http_ingestion("InstrumentationKey=k;IngestionEndpoint=http://127.0.0.1:8080/"));
        assert!(!loopback_http_ingestion("InstrumentationKey=k;IngestionEndpoint=http://example.com/"));
        assert!(!loopback_http_ingestion("IngestionEndpoint=http://127.0.0.1.evil.example/"));
        assert!(!loopback_http_ingestion("IngestionEndpoint=http://localhost@evil.example/"));
        assert!(loopback_http_ingestion("IngestionEndpoint=http://localhost:9/"));
        assert!(!loopback_http_ingestion(
            "InstrumentationKey=k;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"
        ));
    }

    #[test]
    fn a_traceparent_goes_first_into_an_object_and_nowhere_else() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            with_traceparent(r#"{"z":1,"a":340282366920938463463374607431768211455}"#.into(), tp),
            format!(r#"{{"traceparent":"{tp}","z":1,"a":340282366920938463463374607431768211455}}"#)
        );
        assert_eq!(with_traceparent("{}".into(), tp), format!(r#"{{"traceparent":"{tp}"}}"#));
        assert_eq!(with_traceparent(r#"{"traceparent":"mine"}"#.into(), tp), r#"{"traceparent":"mine"}"#);
        assert_eq!(with_traceparent("[1]".into(), tp), "[1]");
        assert_eq!(with_traceparent(r#""text""#.into(), tp), r#""text""#);
    }

    #[test]
    fn the_entra_setting_names_the_identity() {
        assert_eq!(entra_client_id("Authorization=AAD"), Ok(None));
        assert_eq!(entra_client_id("Authorization=AAD;ClientId=1234"), Ok(Some("1234".to_owned())));
        assert_eq!(entra_client_id(" authorization = aad ; clientid = 1234 ;"), Ok(Some("1234".to_owned())));
        assert!(entra_client_id("Authorization=ikey").unwrap_err().contains("Authorization=AAD"));
        assert!(entra_client_id("AAD").is_err());
    }

    #[test]
    fn nothing_is_carried_when_not_exporting() {
        assert!(!enabled());
        assert_eq!(current_traceparent(), None);
        assert!(orchestration_span("A", "i", "e").is_none());
    }
}
