//! In-process cost of one invocation through the router (no socket): `POST /Hello` with the host's
//! envelope, against a canned router. Run with `cargo run --release --example bench_dispatch`.

use std::time::Instant;

use axum::body::Body;
use azfn::function_json::{AppMetadata, FunctionSpec, HostJson};
use azfn::{App, Context, HttpRequest, HttpResponse};
use tower::ServiceExt as _;

const BODY: &str = include_str!("../scripts/hello-invocation.json");

async fn hello(req: HttpRequest, _ctx: Context) -> Result<HttpResponse, azfn::Error> {
    Ok(HttpResponse::ok().text(format!("Hello, {}", req.query("name").unwrap_or("world"))))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::var_os("AZFN_LOGS").is_some() {
        azfn::logs::init();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("functions/Hello/function.json");
    let spec = FunctionSpec::parse("Hello", &path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    let host = HostJson { route_prefix: "api".into(), ..Default::default() };
    let metadata = AppMetadata::from_specs(host, [spec]);
    let handler = azfn::handler(App::new().function("Hello", hello), &metadata).unwrap();
    let floor = axum::Router::new().route("/{f}", axum::routing::post(|| async { "{}" }));
    let services: [(&str, tower::util::BoxCloneService<_, _, _>); 2] = [
        ("floor router", tower::util::BoxCloneService::new(floor)),
        ("azfn handler", tower::util::BoxCloneService::new(handler)),
    ];
    for (name, r) in services {
        let n = 200_000;
        let t = Instant::now();
        for _ in 0..n {
            let req = http::Request::post("/Hello")
                .header("content-type", "application/json")
                .header("x-azure-functions-invocationid", "6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f")
                .body(Body::from(BODY))
                .unwrap();
            let res = r.clone().oneshot(req).await.unwrap();
            let _ = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        }
        println!("{name}: {:.2} us per invocation", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
}
