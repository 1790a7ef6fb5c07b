//! The `azfn` binary started as the Functions host starts it, and invoked with host-shaped payloads.

mod common;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn hello_request(name: &str) -> Value {
    // Shape of HttpRequestExtensions.GetRequestAsJObject (current hosts): see tests/fixtures/README.md.
    json!({"Data": {"req": {
        "Url": format!("http://localhost:7071/api/hello?name={name}"), "Method": "GET",
        "Query": {"name": name}, "Headers": {"Host": ["localhost:7071"]}, "Params": {}, "Identities": []}},
        "Metadata": {"Query": {"name": name}, "name": format!("\"{name}\""),
                     "sys": {"MethodName": "Hello", "UtcNow": "2024-05-01T10:00:00.1Z", "RandGuid": "a0e3b8f4-1b5d-4c6e-8f70-9a1b2c3d4e5f"}}})
}

#[tokio::test]
async fn hello_in_the_default_protocol_and_forwarded() {
    let h = Handler::start(&repo_root()).await;
    let (status, ct, body) = h.invoke("Hello", &hello_request("Ada")).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(body["Outputs"]["res"]["statusCode"], 200);
    assert_eq!(body["Outputs"]["res"]["body"], "Hello, Ada");
    assert_eq!(body["ReturnValue"], Value::Null);

    // enableForwardingHttpRequest: the host sends the original request to /api/hello.
    let res = reqwest::Client::new()
        .get(h.url("/api/hello?name=Grace&code=key"))
        .header("X-Azure-Functions-InvocationId", "1b2c3d4e-0000-4000-8000-000000000001")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "Hello, Grace");
    // The host routes without regard to case and forwards the path as the caller wrote it.
    let res = reqwest::Client::new().get(h.url("/API/Hello?name=Lin")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "Hello, Lin");
    // Methods follow function.json: Hello is GET only.
    let res = reqwest::Client::new().delete(h.url("/api/hello")).send().await.unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn create_order_queues_a_valid_order_and_refuses_a_bad_one() {
    let h = Handler::start(&repo_root()).await;
    let (status, _, body) = h.invoke("CreateOrder", &fixture("derived-http-trigger.request.json")).await;
    assert_eq!(status, 200, "{body}");
    let res = &body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 202);
    let order_id =
        serde_json::from_str::<Value>(res["body"].as_str().unwrap()).unwrap()["orderId"].as_str().unwrap().to_owned();
    let queued = body["Outputs"]["order"].as_array().expect("queue output is an array of messages");
    assert_eq!(queued.len(), 1);
    let message: Value = serde_json::from_str(queued[0].as_str().unwrap()).unwrap();
    assert_eq!(message["orderId"], order_id.as_str());
    assert!(body["Logs"][0].as_str().unwrap().contains("[invocation 6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f]"), "{body}");

    let mut bad = fixture("derived-http-trigger.request.json");
    bad["Data"]["req"]["Body"] =
        json!(r#"{"customerId":"","items":[{"sku":"a","quantity":0,"unitPrice":-1}],"currency":"eur"}"#);
    let (status, _, body) = h.invoke("CreateOrder", &bad).await;
    assert_eq!(status, 200);
    assert_eq!(body["Outputs"]["res"]["statusCode"], 400);
    let reasons: Value = serde_json::from_str(body["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(reasons["error"]["problems"].as_array().unwrap().len(), 4, "{reasons}");
    assert!(body["Outputs"].get("order").is_none(), "nothing is queued for a bad order");
}

#[tokio::test]
async fn get_order_reads_the_table_input() {
    let h = Handler::start(&repo_root()).await;
    let mut req = fixture("derived-http-trigger-route-params.request.json");
    let (_, _, body) = h.invoke("GetOrder", &req).await;
    assert_eq!(body["Outputs"]["res"]["statusCode"], 404);

    // The host fills the table input from partition `orders`, row `{id}`.
    req["Data"]["order"] = json!({"PartitionKey": "orders", "RowKey": "o-1", "Timestamp": "2024-05-01T10:00:01+00:00",
        "customerId": "c-42", "currency": "EUR", "total": 19.0, "status": "processed", "receipt": "receipts/o-1.json",
        "items": "[{\"sku\":\"sku-1\",\"quantity\":2,\"unitPriceCents\":950}]", "createdAt": "2024-05-01T10:00:00+00:00"});
    let (_, _, body) = h.invoke("GetOrder", &req).await;
    let res = &body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200, "{body}");
    let order: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(order["orderId"], "o-1");
    assert_eq!(order["items"][0]["unitPrice"], 9.5);
}

#[tokio::test]
async fn process_order_writes_receipt_and_row_and_refuses_a_malformed_message() {
    let h = Handler::start(&repo_root()).await;
    let order = json!({"orderId": "o-7", "customerId": "c", "currency": "EUR", "items": [{"sku": "s", "quantity": 3, "unitPriceCents": 250}], "createdAt": "2024-05-01T10:00:00Z"});
    // As the host sends a queue message: the text double-encoded, DequeueCount a string, body properties promoted.
    let text = order.to_string();
    let envelope = json!({"Data": {"order": serde_json::to_string(&text).unwrap()},
        "Metadata": {"DequeueCount": "1", "Id": "\"b0f7e0a4-2f4e-4a4e-9c59-6f3f1f1e2a11\"", "PopReceipt": "\"AgAAAAMAAAAAAAAAAgtnj8x+1QE=\"",
                     "InsertionTime": "2024-05-01T10:00:00+00:00", "ExpirationTime": "2024-05-08T10:00:00+00:00", "NextVisibleTime": "2024-05-01T10:10:00+00:00",
                     "orderId": "\"o-7\"", "customerId": "\"c\"", "currency": "\"EUR\"", "createdAt": "2024-05-01T10:00:00Z",
                     "sys": {"MethodName": "ProcessOrder", "UtcNow": "2024-05-01T10:00:01Z", "RandGuid": "0d6b1f4e-3c1a-4b7e-9d2f-5a8e7c6b4d3a"}}});
    let (status, _, body) = h.invoke("ProcessOrder", &envelope).await;
    assert_eq!(status, 200, "{body}");
    let receipt_b64 = body["Outputs"]["receipt"].as_str().expect("blob output is a base64 string");
    let receipt: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(receipt_b64).unwrap()).unwrap();
    assert_eq!(
        receipt,
        json!({"orderId": "o-7", "total": 7.5, "currency": "EUR", "lines": [{"sku": "s", "quantity": 3, "unitPrice": 2.5, "lineTotal": 7.5}]})
    );
    assert_eq!(body["Outputs"]["row"][0]["PartitionKey"], "orders");
    assert_eq!(body["Outputs"]["row"][0]["RowKey"], "o-7");

    let malformed = json!({"Data": {"order": "\"this is not an order\""}, "Metadata": {"DequeueCount": "3"}});
    let (status, ct, body) = h.invoke("ProcessOrder", &malformed).await;
    assert_eq!(
        status, 422,
        "a payload that does not fit fails the invocation, so the host retries and then poisons it"
    );
    assert!(ct.starts_with("application/json"));
    assert!(body["error"]["message"].as_str().unwrap().contains("does not fit"), "{body}");
    // The process keeps serving, and the failure went to stderr for the host.
    let (status, _, _) = h.invoke("Hello", &hello_request("again")).await;
    assert_eq!(status, 200);
    assert!(h.stderr_text().contains("ERROR ProcessOrder failed"), "{}", h.stderr_text());
}

/// `AuditReceipt` also takes the polling blob trigger (Elastic Premium, Consumption): its function.json
/// switched to `blobTrigger` in a copy of the app, and an invocation shaped as the host sends one.
#[tokio::test]
async fn audit_receipt_checks_blob_content() {
    let app = staged_copy();
    std::fs::write(
        app.path().join("AuditReceipt/function.json"),
        r#"{"bindings": [{"type": "blobTrigger", "direction": "in", "name": "receipt", "path": "receipts/{name}", "connection": "AzureWebJobsStorage"}]}"#,
    )
    .unwrap();
    let h = Handler::start(app.path()).await;
    let receipt = json!({"orderId": "o-1", "total": 19.0, "currency": "EUR", "lines": [{"sku": "sku-1", "quantity": 2, "unitPrice": 9.5, "lineTotal": 19.0}]});
    let mut envelope = fixture("derived-blob-trigger.request.json");
    envelope["Data"]["receipt"] = json!(base64::engine::general_purpose::STANDARD.encode(receipt.to_string()));
    let (status, _, body) = h.invoke("AuditReceipt", &envelope).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["Logs"][0].as_str().unwrap().contains("receipt checked blob=o-1.json"), "{body}");

    // The fixture's own content is not a receipt: the invocation fails (and the host retries, then poisons).
    let (status, _, body) = h.invoke("AuditReceipt", &fixture("derived-blob-trigger.request.json")).await;
    assert_eq!(status, 500);
    assert!(body["error"]["message"].as_str().unwrap().contains("receipts/o-1.json is not a receipt"), "{body}");
}

#[tokio::test]
async fn timer_service_bus_and_event_grid_functions() {
    let h = Handler::start(&repo_root()).await;
    let mut timer = with_binding(fixture("derived-timer-trigger.request.json"), "myTimer", "timer");
    timer["Data"]["orders"] = json!([{"PartitionKey": "orders", "RowKey": "a", "customerId": "c", "currency": "EUR", "total": 2.5,
        "items": "[]", "status": "processed", "receipt": "r", "createdAt": "t"}]);
    let (status, _, body) = h.invoke("OrderSummary", &timer).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["Logs"][0].as_str().unwrap().contains("EUR: 1 orders, 2.50"), "{body}");

    let (status, _, body) = h.invoke("OrderEvents", &fixture("derived-servicebus-trigger.request.json")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["Logs"][0].as_str().unwrap().contains("status=shipped"), "{body}");

    for name in ["derived-eventgrid-trigger.request.json", "derived-cloudevents-trigger.request.json"] {
        let (status, _, body) = h.invoke("CatalogEvents", &fixture(name)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert!(body["Logs"][0].as_str().unwrap().contains("catalog event"), "{body}");
    }
}

#[tokio::test]
async fn bad_envelopes_and_unknown_functions_get_clear_errors() {
    let h = Handler::start(&repo_root()).await;
    let client = reqwest::Client::new();
    let res = client.post(h.url("/Hello")).body("{\"Data\": [").send().await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "invalid_envelope");
    assert!(body["error"]["message"].as_str().unwrap().contains("line 1"), "{body}");

    let res = client.post(h.url("/Hello")).body("[1,2]").send().await.unwrap();
    assert_eq!(res.status(), 400);

    let (status, _, body) = h.invoke("NoSuchFunction", &json!({"Data": {}, "Metadata": {}})).await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"].as_str().unwrap().contains("no function named `NoSuchFunction`"));
    assert_eq!(body["functions"].as_array().unwrap().len(), 12);

    // Missing trigger entry.
    let (status, _, body) = h.invoke("OrderEvents", &json!({"Data": {}, "Metadata": {}})).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("Data has no `event` entry"), "{body}");
}

#[tokio::test]
async fn chunked_request_bodies_are_accepted() {
    // The host sends an ObjectContent, which .NET transfers chunked without a Content-Length.
    let h = Handler::start(&repo_root()).await;
    let body = hello_request("Chunky").to_string();
    let (a, b) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", h.port)).await.unwrap();
    let request = format!(
        "POST /Hello HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        h.port,
        a.len(),
        b.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Hello, Chunky"), "{response}");
}

#[tokio::test]
async fn invocations_are_served_concurrently() {
    let h = Handler::start(&repo_root()).await;
    let h = std::sync::Arc::new(h);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move { h.invoke("Hello", &hello_request(&format!("n{i}"))).await }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, _, body) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["Outputs"]["res"]["body"], format!("Hello, n{i}"));
    }
}

#[tokio::test]
async fn sigterm_stops_gracefully_with_a_nonzero_code() {
    let h = Handler::start(&repo_root()).await;
    let (status, _, _) = h.invoke("Hello", &hello_request("bye")).await;
    assert_eq!(status, 200);
    assert_eq!(h.terminate(), Some(143), "exit 0 would stop the host from restarting the handler");
}

#[tokio::test]
async fn serves_a_staged_app_root() {
    let staged = staged_copy();
    let h = Handler::start(staged.path()).await;
    let (status, _, body) = h.invoke("Hello", &hello_request("staged")).await;
    assert_eq!(status, 200);
    assert_eq!(body["Outputs"]["res"]["body"], "Hello, staged");
}

fn refusal(app_root: &std::path::Path) -> String {
    let out = command(app_root, Some(free_port())).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn refuses_to_start_when_handlers_and_function_json_disagree() {
    // A function with no handler.
    let staged = staged_copy();
    std::fs::create_dir_all(staged.path().join("Extra")).unwrap();
    std::fs::write(
        staged.path().join("Extra/function.json"),
        r#"{"bindings":[{"type":"queueTrigger","direction":"in","name":"m","queueName":"x"}]}"#,
    )
    .unwrap();
    let err = refusal(staged.path());
    assert!(err.contains("function `Extra`") && err.contains("has no handler"), "{err}");

    // A handler with no function.json.
    let staged = staged_copy();
    std::fs::remove_dir_all(staged.path().join("OrderEvents")).unwrap();
    let err = refusal(staged.path());
    assert!(err.contains("handler `OrderEvents` has no function.json"), "{err}");

    // A trigger type that does not match the handler.
    let staged = staged_copy();
    std::fs::write(
        staged.path().join("Hello/function.json"),
        r#"{"bindings":[{"type":"queueTrigger","direction":"in","name":"req","queueName":"x"}]}"#,
    )
    .unwrap();
    let err = refusal(staged.path());
    assert!(err.contains("declares a `queueTrigger` trigger") && err.contains("HttpRequest"), "{err}");

    // A function.json that is not JSON.
    let staged = staged_copy();
    std::fs::write(staged.path().join("Hello/function.json"), "{ nope").unwrap();
    let err = refusal(staged.path());
    assert!(err.contains("Hello/function.json is not valid") && err.contains("line 1"), "{err}");
}

#[test]
fn refuses_to_start_without_a_port() {
    let out = command(&repo_root(), None).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FUNCTIONS_CUSTOMHANDLER_PORT is not set"));
    let out = command(&repo_root(), None).env("FUNCTIONS_CUSTOMHANDLER_PORT", "http").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("should be a port number"));
}
