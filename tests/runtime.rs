//! The runtime served in-process on a real socket, with a test app that exercises the edges:
//! panics, handler errors, axum handlers, binary bodies, `$return` and output checks.

use std::path::Path;

use azfn::{App, AppMetadata, Context, HttpRequest, HttpResponse, QueueMessage, Return, TimerInfo};
use serde_json::{Value, json};

fn write(dir: &Path, name: &str, function_json: Value) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(dir.join(name).join("function.json"), function_json.to_string()).unwrap();
}

fn http_fn(route: &str, extra_outputs: Vec<Value>) -> Value {
    let mut bindings = vec![
        json!({"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous", "route": route}),
        json!({"type": "http", "direction": "out", "name": "res"}),
    ];
    bindings.extend(extra_outputs);
    json!({"bindings": bindings})
}

async fn panics(_req: HttpRequest, _ctx: Context) -> Result<HttpResponse, azfn::Error> {
    panic!("boom at step 3")
}

async fn fails(_msg: QueueMessage, _ctx: Context) -> Result<(), azfn::Error> {
    tracing::info!("about to fail");
    Err("the database said no".into())
}

async fn image(_req: HttpRequest, _ctx: Context) -> Result<HttpResponse, azfn::Error> {
    Ok(HttpResponse::ok().bytes(vec![0x89, b'P', b'N', b'G', 0xff, 0x00], "image/png"))
}

async fn typo(_req: HttpRequest, ctx: Context) -> Result<HttpResponse, azfn::Error> {
    ctx.send_text("Outbox", "x")?;
    Ok(HttpResponse::ok())
}

async fn returns(_t: TimerInfo, _ctx: Context) -> Result<Return<&'static str>, azfn::Error> {
    Ok(Return("test"))
}

/// Serves the test app on 127.0.0.1 and returns its base URL (the task ends with the test runtime).
async fn serve() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("host.json"), r#"{"version": "2.0", "customHandler": {"description": {"defaultExecutablePath": "x"}, "enableForwardingHttpRequest": true}}"#).unwrap();
    write(dir.path(), "Panics", http_fn("panics", vec![]));
    write(dir.path(), "Image", http_fn("image", vec![]));
    write(
        dir.path(),
        "Typo",
        http_fn("typo", vec![json!({"type": "queue", "direction": "out", "name": "outbox", "queueName": "o"})]),
    );
    write(dir.path(), "Items", http_fn("items/{id:int?}", vec![]));
    write(
        dir.path(),
        "Fails",
        json!({"bindings": [{"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": "q"}]}),
    );
    write(
        dir.path(),
        "Returns",
        json!({"bindings": [{"type": "timerTrigger", "direction": "in", "name": "t", "schedule": "0 * * * * *"},
                            {"type": "queue", "direction": "out", "name": "$return", "queueName": "r"}]}),
    );
    let app = App::new()
        .function("Panics", panics)
        .function("Fails", fails)
        .function("Image", image)
        .function("Typo", typo)
        .function("Returns", returns)
        .axum(
            "Items",
            axum::routing::get(|path: Option<axum::extract::Path<u32>>| async move {
                match path {
                    Some(axum::extract::Path(id)) => format!("item {id}"),
                    None => "all items".to_owned(),
                }
            }),
        );
    azfn::logs::init();
    let metadata = AppMetadata::load(dir.path()).unwrap();
    let handler = azfn::handler(app, &metadata).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = axum::ServiceExt::<axum::extract::Request>::into_make_service(handler);
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    (base, dir)
}

fn http_invocation(url: &str) -> Value {
    json!({"Data": {"req": {"Url": url, "Method": "GET", "Query": {}, "Headers": {}, "Params": {}, "Identities": []}}, "Metadata": {}})
}

async fn post(base: &str, function: &str, body: &Value) -> (u16, Value) {
    let res = reqwest::Client::new().post(format!("{base}/{function}")).json(body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn a_panic_is_an_error_answer_and_serving_goes_on() {
    let (base, _dir) = serve().await;
    for _ in 0..3 {
        let (status, body) = post(&base, "Panics", &http_invocation("http://localhost/api/panics")).await;
        assert_eq!(status, 500);
        assert_eq!(body["error"]["kind"], "handler_panic");
        assert!(body["error"]["message"].as_str().unwrap().contains("boom at step 3"));
    }
    let res = reqwest::get(format!("{base}/api/panics")).await.unwrap();
    assert_eq!(res.status(), 500, "a forwarded request to a panicking handler gets a 500 too");
    assert_eq!(reqwest::get(format!("{base}/")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_http_trigger_that_does_not_fit_is_a_422_naming_the_field_and_a_bad_envelope_a_400() {
    let (base, _dir) = serve().await;
    // Typed and axum handlers read the HTTP request together with the envelope; a request that
    // does not fit is still reported field by field.
    for function in ["Image", "Items"] {
        let mut bad_headers = http_invocation("http://localhost/api/x");
        bad_headers["Data"]["req"]["Headers"] = json!({"Accept": {"nested": 1}});
        let (status, body) = post(&base, function, &bad_headers).await;
        assert_eq!(status, 422, "{function}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("`Headers` should be an object of strings"), "{function}: {message}");
        assert!(message.contains("Data.req"), "{function}: {message}");

        let mut bad_method = http_invocation("http://localhost/api/x");
        bad_method["Data"]["req"]["Method"] = json!("GE T");
        let (status, body) = post(&base, function, &bad_method).await;
        assert_eq!(status, 422, "{function}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("`Method` is not an HTTP method"), "{body}");

        let (status, body) = post(&base, function, &json!({"Data": [1], "Metadata": {}})).await;
        assert_eq!(status, 400, "{function}: {body}");
        assert_eq!(body["error"]["kind"], "invalid_envelope");
        let (status, body) = post(&base, function, &json!({"Data": {}, "Metadata": {}})).await;
        assert_eq!(status, 422, "{function}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("no `req` entry"), "{body}");
    }
    assert_eq!(reqwest::get(format!("{base}/")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_handler_error_is_a_500_with_the_error_and_its_logs() {
    let (base, _dir) = serve().await;
    let (status, body) =
        post(&base, "Fails", &json!({"Data": {"msg": "\"hi\""}, "Metadata": {"DequeueCount": "1"}})).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["kind"], "handler_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("the database said no"));
    assert!(body["Logs"][0].as_str().unwrap().starts_with("INFO about to fail"), "{body}");
}

#[tokio::test]
async fn binary_http_bodies_are_refused_in_the_default_protocol_and_kept_when_forwarded() {
    let (base, _dir) = serve().await;
    let (status, body) = post(&base, "Image", &http_invocation("http://localhost/api/image")).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["kind"], "invalid_output");
    assert!(body["error"]["message"].as_str().unwrap().contains("enableForwardingHttpRequest"), "{body}");

    let res = reqwest::get(format!("{base}/api/image")).await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(&res.bytes().await.unwrap()[..], &[0x89, b'P', b'N', b'G', 0xff, 0x00]);
}

#[tokio::test]
async fn output_names_are_checked() {
    let (base, _dir) = serve().await;
    let (status, body) = post(&base, "Typo", &http_invocation("http://localhost/api/typo")).await;
    assert_eq!(status, 500);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no output binding named `Outbox`") && message.contains("did you mean `outbox`"),
        "{message}"
    );
}

#[tokio::test]
async fn return_values_use_the_binding_encoding() {
    let (base, _dir) = serve().await;
    let (status, body) =
        post(&base, "Returns", &json!({"Data": {"t": {"Schedule": {}, "IsPastDue": false}}, "Metadata": {}})).await;
    assert_eq!(status, 200);
    // "test" is valid base64; as an array element the host leaves it alone.
    assert_eq!(body["ReturnValue"], json!(["test"]));
}

#[tokio::test]
async fn axum_handlers_serve_both_protocols_with_optional_route_parameters() {
    let (base, _dir) = serve().await;
    let (status, body) = post(&base, "Items", &http_invocation("http://localhost:7071/api/items/42")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Outputs"]["res"]["body"], "item 42");
    let (_, body) = post(&base, "Items", &http_invocation("http://localhost:7071/api/items")).await;
    assert_eq!(body["Outputs"]["res"]["body"], "all items");
    assert_eq!(reqwest::get(format!("{base}/api/items/7")).await.unwrap().text().await.unwrap(), "item 7");
    let res = reqwest::get(format!("{base}/api/nothing")).await.unwrap();
    assert_eq!(res.status(), 404);
}
