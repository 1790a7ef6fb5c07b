//! OpenTelemetry export, checked from outside: the orders app under two `cargo azfn start --builtin`
//! hosts on one Azurite, exporting to an OTLP/HTTP receiver on a free port that decodes what arrives
//! with the official protobuf definitions (`opentelemetry-proto`). Host A serves the HTTP start and
//! the control queue, host B only the work queue, so every activity runs in the other handler
//! process. One trace, whose id is the start request's `traceparent`, must hold the start, the
//! orchestration's episodes and its five activities, every parent link pointing at a span of the
//! trace (or at the caller's). A queue message sent with `send_json` carries its trace to the
//! function it triggers. And with `OTEL_TRACES_EXPORTER=azuremonitor`, the spans reach a stand-in
//! for Application Insights with a managed identity token.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::azurite::Azurite;
use common::local_host::LocalHost;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// A span as exported, with what the test looks at.
#[derive(Debug, Clone)]
struct Got {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    /// The exporting process (`process.pid` of the resource).
    pid: i64,
    attributes: HashMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Got>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (s, r) = (spans.clone(), requests.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
                let (spans, requests) = (s.clone(), r.clone());
                async move {
                    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
                    requests.lock().unwrap().push(content_type.to_owned());
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return (http::StatusCode::BAD_REQUEST, "not an ExportTraceServiceRequest");
                    };
                    let mut got = spans.lock().unwrap();
                    for resource_spans in request.resource_spans {
                        let pid = resource_spans
                            .resource
                            .iter()
                            .flat_map(|r| r.attributes.iter())
                            .find(|kv| kv.key == "process.pid")
                            .map(|kv| text(kv.value.as_ref()).parse().unwrap_or(0))
                            .unwrap_or(0);
                        for scope in resource_spans.scope_spans {
                            for span in scope.spans {
                                got.push(Got {
                                    trace_id: hex(&span.trace_id),
                                    span_id: hex(&span.span_id),
                                    parent: hex(&span.parent_span_id),
                                    name: span.name.clone(),
                                    pid,
                                    attributes: span
                                        .attributes
                                        .iter()
                                        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                                        .collect(),
                                });
                            }
                        }
                    }
                    (http::StatusCode::OK, "")
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { port, spans, requests }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn trace(&self, trace_id: &str) -> Vec<Got> {
        self.spans.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }
}

fn random_hex(bytes: usize) -> String {
    let id = uuid::Uuid::new_v4();
    hex(&id.as_bytes()[..bytes])
}

#[tokio::test]
async fn one_trace_runs_from_the_http_start_through_every_episode_and_activity_across_processes() {
    let azurite = Azurite::start();
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    let common_env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_SERVICE_NAME", "orders-test"),
        // Every activity call through the work queue, so that the trace crosses the processes
        // (a local chain would run the sequence in the starting process).
        ("AZFN_DURABLE_CHAIN_SECONDS", "0"),
    ];
    let root = common::repo_root();
    let mut env_a = common_env.to_vec();
    env_a.push(("AzureWebJobs.DurableWork.Disabled", "true"));
    let mut env_b = common_env.to_vec();
    env_b.extend([("AzureWebJobs.DurableControl.Disabled", "true"), ("AzureWebJobs.Orchestrators.Disabled", "true")]);
    let a = LocalHost::start(&root, &azurite, &env_a).await;
    let b = LocalHost::start(&root, &azurite, &env_b).await;

    let (trace_id, caller_span) = (random_hex(16), random_hex(8));
    let http = reqwest::Client::new();
    let res = http
        .post(a.url("/api/orchestrators/HelloSequence"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + WAIT;
    loop {
        let url = a.url(&format!("/api/orchestrators/instances/{id}"));
        let s: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        if s["runtimeStatus"] == "Completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{id} did not complete: {s}\nhost A:\n{}\nhost B:\n{}",
            a.console(),
            b.console()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The spans arrive in batches; wait for the start, five activities and an episode after the
    // last of them (the one that completes the instance).
    let deadline = Instant::now() + WAIT;
    let spans = loop {
        let spans = receiver.trace(&trace_id);
        let activities: HashSet<String> = spans
            .iter()
            .filter(|s| s.name == "activity:SayHello")
            .map(|s| s.attributes["durabletask.task.task_id"].clone())
            .collect();
        let start = spans.iter().any(|s| s.name == "Orchestrators");
        let episodes = spans.iter().filter(|s| s.name == "orchestration:HelloSequence").count();
        if start && activities.len() == 5 && episodes >= 6 {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "the trace is incomplete: {} spans {:#?}\nall received: {}\nhost A:\n{}\nhost B:\n{}",
            spans.len(),
            spans,
            receiver.spans.lock().unwrap().len(),
            a.console(),
            b.console()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The start continues the caller's span.
    let start = spans.iter().find(|s| s.name == "Orchestrators").unwrap();
    assert_eq!(start.parent, caller_span, "the HTTP start's parent is the caller's span");
    assert_eq!(start.attributes["faas.trigger"], "http");
    // Every parent link points into the trace, or at the caller.
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    for span in &spans {
        assert!(
            span.parent == caller_span || ids.contains(span.parent.as_str()),
            "span {} ({}) has a parent {} that is not in the trace: {spans:#?}",
            span.name,
            span.span_id,
            span.parent
        );
    }
    // The activities ran in the other handler process, under a work-queue invocation.
    let by_id: HashMap<&str, &Got> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    for activity in spans.iter().filter(|s| s.name == "activity:SayHello") {
        assert_ne!(activity.pid, start.pid, "activities ran in host B's handler, not host A's");
        assert_eq!(activity.attributes["durabletask.task.instance_id"], id);
        let invocation = by_id[activity.parent.as_str()];
        assert_eq!(invocation.name, "DurableWork");
        assert_eq!(invocation.pid, activity.pid);
        assert_eq!(invocation.attributes["faas.trigger"], "pubsub");
        // ... whose message came from an episode.
        assert!(by_id[invocation.parent.as_str()].name.starts_with("orchestration:"), "{invocation:?}");
    }
    for episode in spans.iter().filter(|s| s.name == "orchestration:HelloSequence") {
        assert_eq!(episode.attributes["durabletask.task.instance_id"], id);
    }
    let pids: HashSet<i64> = spans.iter().map(|s| s.pid).collect();
    assert_eq!(pids.len(), 2, "spans from both handler processes");
    assert!(
        receiver.requests.lock().unwrap().iter().all(|t| t == "application/x-protobuf"),
        "OTLP/HTTP with protobuf bodies"
    );
    // A user's queue message: CreateOrder's `send_json` to the `orders` queue carries the trace to
    // ProcessOrder (host A runs both).
    let (order_trace, order_caller) = (random_hex(16), random_hex(8));
    let order = serde_json::json!({"customerId": "c-1", "items": [{"sku": "s-1", "quantity": 2, "unitPrice": 1.5}], "currency": "EUR"});
    let res = http
        .post(a.url("/api/orders"))
        .header("traceparent", format!("00-{order_trace}-{order_caller}-01"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap_or_default());
    let deadline = Instant::now() + WAIT;
    loop {
        let spans = receiver.trace(&order_trace);
        let create = spans.iter().find(|s| s.name == "CreateOrder");
        let process = spans.iter().find(|s| s.name == "ProcessOrder");
        if let (Some(create), Some(process)) = (create, process) {
            assert_eq!(create.parent, order_caller);
            assert_eq!(process.parent, create.span_id, "ProcessOrder continues CreateOrder's span");
            assert_eq!(process.attributes["faas.trigger"], "pubsub");
            break;
        }
        assert!(Instant::now() < deadline, "no CreateOrder → ProcessOrder trace: {spans:#?}\nhost A:\n{}", a.console());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Log lines inside the trace carry its id.
    assert!(
        a.console().contains(&format!("trace {trace_id}")) || b.console().contains(&format!("trace {trace_id}")),
        "a log line carries the trace id; host A:\n{}\nhost B:\n{}",
        a.console(),
        b.console()
    );
}

/// What the Application Insights and managed identity stand-in saw.
#[derive(Debug, Default)]
struct Seen {
    /// Token requests: their query and `X-IDENTITY-HEADER`.
    token_requests: Vec<(String, String)>,
    /// Ingestion posts: path, `Authorization`, `Content-Encoding`, and the envelopes (gunzipped).
    posts: Vec<(String, String, String, Vec<Value>)>,
}

/// Stands in for the App Service managed identity endpoint (`GET /msi/token`, "How to use managed
/// identities for App Service and Azure Functions", REST protocol) and for Application Insights
/// ingestion, which refuses `/v2/track` with a token ("v2/track doesn't support Azure AD",
/// "Microsoft Entra authentication for Application Insights") and takes `/v2.1/track`.
async fn azure_stand_in() -> (u16, Arc<Mutex<Seen>>) {
    use axum::routing::{get, post};
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let track = |path: &'static str, seen: Arc<Mutex<Seen>>| {
        move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                use std::io::Read as _;
                let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let mut text = String::new();
                let _ = flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text);
                // A JSON array of envelopes (the exporter's form), or one envelope per line.
                let envelopes = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Array(items)) => items,
                    _ => text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
                };
                let n = envelopes.len();
                seen.lock().unwrap().posts.push((
                    path.to_owned(),
                    header("authorization"),
                    header("content-encoding"),
                    envelopes,
                ));
                if path == "/v2/track" {
                    return (http::StatusCode::BAD_REQUEST, "Authentication not supported".to_owned());
                }
                (http::StatusCode::OK, format!(r#"{{"itemsReceived":{n},"itemsAccepted":{n},"errors":[]}}"#))
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/msi/token",
            get(move |headers: http::HeaderMap, uri: http::Uri| {
                let seen = s1.clone();
                async move {
                    let secret = headers.get("x-identity-header").and_then(|v| v.to_str().ok()).unwrap_or("");
                    seen.lock().unwrap().token_requests.push((uri.query().unwrap_or("").to_owned(), secret.to_owned()));
                    let expires = chrono::Utc::now().timestamp() + 3600;
                    axum::Json(
                        serde_json::json!({"access_token": "token-for-monitor", "expires_on": expires.to_string()}),
                    )
                }
            }),
        )
        .route("/v2/track", post(track("/v2/track", s2)))
        .route("/v2.1/track", post(track("/v2.1/track", s3)));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

#[tokio::test]
async fn with_azuremonitor_the_spans_go_to_application_insights_with_the_managed_identitys_token() {
    let (port, seen) = azure_stand_in().await;
    let app = common::staged_copy();
    let connection_string = format!(
        "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:{port}/;LiveEndpoint=http://127.0.0.1:{port}/"
    );
    let identity_endpoint = format!("http://127.0.0.1:{port}/msi/token");
    // The app settings `infra/` gives the Function App, and what App Service sets for its identity.
    let handler = common::Handler::start_with_env(
        app.path(),
        &[
            ("OTEL_TRACES_EXPORTER", "azuremonitor"),
            ("APPLICATIONINSIGHTS_CONNECTION_STRING", &connection_string),
            ("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "Authorization=AAD;ClientId=client-1"),
            ("IDENTITY_ENDPOINT", &identity_endpoint),
            ("IDENTITY_HEADER", "identity-secret"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let (trace_id, caller_span) = (random_hex(16), random_hex(8));
    // A forwarded request, as the host sends it with `enableForwardingHttpRequest` (the caller's
    // headers, and the invocation id).
    let res = reqwest::Client::new()
        .get(handler.url("/api/hello?name=Ada"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("X-Azure-Functions-InvocationId", "7c0f4c1e-9d1b-4c55-9a43-2b6f1f0a9e11")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "Hello, Ada");

    let deadline = Instant::now() + WAIT;
    let (path, authorization, encoding, envelopes) = loop {
        let found = seen.lock().unwrap().posts.iter().find(|p| p.0 == "/v2.1/track").cloned();
        if let Some(post) = found {
            break post;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached /v2.1/track: {:?}\nstderr:\n{}",
            seen.lock().unwrap(),
            handler.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(path, "/v2.1/track");
    assert_eq!(authorization, "Bearer token-for-monitor");
    assert_eq!(encoding, "gzip");
    assert!(seen.lock().unwrap().posts.iter().all(|p| p.0 == "/v2.1/track"), "never the ikey-only path");
    let (query, secret) = seen.lock().unwrap().token_requests[0].clone();
    assert_eq!(secret, "identity-secret");
    let query: HashMap<String, String> = serde_urlencoded::from_str(&query).unwrap();
    assert_eq!(query["resource"], "https://monitor.azure.com/");
    assert_eq!(query["client_id"], "client-1");
    // The invocation's request telemetry, in the caller's trace, with the key of the resource.
    let request = envelopes
        .iter()
        .find(|e| e["data"]["baseType"] == "RequestData")
        .unwrap_or_else(|| panic!("no RequestData among {envelopes:#?}"));
    assert_eq!(request["iKey"], "00000000-0000-0000-0000-000000000001");
    assert_eq!(request["tags"]["ai.operation.id"], trace_id.as_str());
    assert_eq!(request["tags"]["ai.operation.parentId"], caller_span.as_str());
    assert_eq!(request["data"]["baseData"]["name"], "Hello");
    assert_eq!(request["data"]["baseData"]["responseCode"], "200", "the HTTP status is the result code");
}
