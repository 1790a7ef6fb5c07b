//! The benchmark's floor: a minimal axum server that answers every invocation with a canned
//! response, without reading or parsing the request. `scripts/bench-handler` loads it side by side
//! with the real handler; the handler's throughput is reported as a fraction of this one's.
//!
//! Run with `FUNCTIONS_CUSTOMHANDLER_PORT=7072 cargo run --release --example bench_floor`.

use axum::Router;
use axum::routing::{get, post};
use http::header::CONTENT_TYPE;

const CANNED: &str = r#"{"Outputs":{"res":{"statusCode":200,"headers":{"Content-Type":"text/plain; charset=utf-8"},"body":"Hello, Ada"}},"Logs":[],"ReturnValue":null}"#;

#[tokio::main]
async fn main() {
    let port: u16 =
        std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT").expect("FUNCTIONS_CUSTOMHANDLER_PORT").parse().expect("a port");
    let app = Router::new()
        .route("/", get(|| async { "ready" }))
        .route("/{function}", post(|| async { ([(CONTENT_TYPE, "application/json; charset=utf-8")], CANNED) }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
