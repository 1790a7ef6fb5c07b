//! End to end through `cargo azfn start --builtin` on a real Azurite: the orders app as a user runs it,
//! called with plain HTTP (reqwest, as curl would) and fed through real storage queues and blobs.

mod common;

use std::time::Duration;

use azfn::storage::{BlobClient, QueueClient, TableClient};
use bytes::Bytes;
use common::azurite::Azurite;
use common::local_host::LocalHost;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn order() -> Value {
    json!({"customerId": "c-1", "items": [{"sku": "s-1", "quantity": 2, "unitPrice": 1.5}], "currency": "EUR"})
}

/// Creates an order as a client would: a 500 (the queue output's write failed, e.g. Azurite slow
/// on a loaded machine) is retried, at most three times in all.
async fn create_order(host: &LocalHost, client: &reqwest::Client) -> String {
    for attempt in 1..=3 {
        let res = client.post(host.url("/api/orders")).json(&order()).send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if status == 500 && attempt < 3 {
            eprintln!("create order: 500 ({text}); retried");
            continue;
        }
        assert_eq!(status, 202, "{text}\n{}", host.console());
        let body: Value = serde_json::from_str(&text).unwrap();
        return body["orderId"].as_str().unwrap().to_owned();
    }
    unreachable!("the last attempt asserts")
}

#[tokio::test]
async fn http_functions_route_and_answer_like_the_host() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let client = reqwest::Client::new();

    // Hello is HTTP-only, so it is forwarded (enableForwardingHttpRequest).
    let res = client.get(host.url("/api/hello?name=Ada")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "Hello, Ada");
    // Unknown routes are 404, and so are wrong methods: a function's methods are a route constraint
    // in the host (`WebScriptHostHttpRoutesManager`: `new HttpMethodRouteConstraint(httpTrigger.Methods)`).
    assert_eq!(client.get(host.url("/api/nope")).send().await.unwrap().status(), 404);
    assert_eq!(client.delete(host.url("/api/hello")).send().await.unwrap().status(), 404);

    // CreateOrder has a queue output, so it goes through the default protocol.
    let res = client.post(host.url("/api/orders")).json(&json!({"customerId": "", "items": []})).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let text = res.text().await.unwrap();
    assert!(text.contains("customerId"), "{text}");

    // GetOrder reads its table input; an unknown id is 404.
    let res = client.get(host.url("/api/orders/does-not-exist")).send().await.unwrap();
    assert_eq!(res.status(), 404);

    // The status page lists the functions.
    let home = client.get(host.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Hello: [GET] /api/hello") && home.contains("ProcessOrder: queueTrigger"), "{home}");
    host.wait_for("Executed 'GetOrder' (httpTrigger", 1, WAIT).await;
}

#[tokio::test]
async fn an_order_flows_through_queue_blob_and_table() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let client = reqwest::Client::new();
    let id = create_order(&host, &client).await;

    // ProcessOrder (queue trigger) writes the receipt blob and the table row; the host raises
    // Event Grid's BlobCreated event on `receipt-events`, where AuditReceipt checks the receipt.
    host.wait_for(&format!("receipt checked blob={id}.json"), 1, WAIT).await;
    let res = client.get(host.url(&format!("/api/orders/{id}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(stored["status"], "processed");
    assert_eq!(stored["total"], 3.0);

    let account = azurite.account();
    let blob = BlobClient::new(&account).unwrap().get("receipts", &format!("{id}.json")).await.unwrap();
    let receipt: Value = serde_json::from_slice(&blob.content).unwrap();
    assert_eq!(receipt["orderId"], id.as_str());
    let row = TableClient::new(&account).unwrap().get("orders", "orders", &id).await.unwrap().unwrap();
    assert_eq!(row.properties["currency"], "EUR");
    // Nothing is left on the queue.
    assert_eq!(QueueClient::new(&account).unwrap().approximate_count("orders").await.unwrap(), 0);
}

#[tokio::test]
async fn a_malformed_message_goes_to_the_poison_queue_after_five_attempts() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let queues = QueueClient::new(&azurite.account()).unwrap();
    queues.create_queue("orders").await.unwrap();
    queues.send("orders", b"{\"customerId\": 42}", Duration::ZERO).await.unwrap();

    host.wait_for("moved it to queue \"orders-poison\"", 1, WAIT).await;
    assert_eq!(host.count("Executed 'ProcessOrder' (queueTrigger"), 5, "{}", host.console());
    assert!(host.console().contains("failed 5 times"));
    // Nothing lost: the same body is on the poison queue, and the original is gone.
    let poisoned = queues.receive("orders-poison", 32, Duration::from_secs(30)).await.unwrap();
    assert_eq!(poisoned.len(), 1);
    assert_eq!(poisoned[0].body, b"{\"customerId\": 42}");
    assert_eq!(queues.approximate_count("orders").await.unwrap(), 0);
}

/// The Event Grid route of docs/adr/0004: blobs written after the host started raise one
/// `BlobCreated` event each (Base64 JSON, as Event Grid's storage-queue delivery writes it); a
/// new version raises another; the events of a blob that is not a receipt end in the poison queue.
#[tokio::test]
async fn blob_events_reach_the_queue_trigger_as_event_grid_delivers_them() {
    let azurite = Azurite::start();
    let account = azurite.account();
    let blobs = BlobClient::new(&account).unwrap();
    blobs.create_container("receipts").await.unwrap();
    // Present before the subscription exists: no event.
    blobs.put("receipts", "old.json", Bytes::from_static(b"old"), "application/json").await.unwrap();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    assert!(host.console().contains("BlobCreated in \"receipts\" -> queue \"receipt-events\""), "{}", host.console());

    let good = json!({"orderId": "o-8", "total": 3.0, "currency": "EUR",
                      "lines": [{"sku": "s", "quantity": 2, "unitPrice": 1.5, "lineTotal": 3.0}]});
    blobs.put("receipts", "o-8.json", Bytes::from(good.to_string()), "application/json").await.unwrap();
    host.wait_for("receipt checked blob=o-8.json", 1, WAIT).await;
    blobs.put("receipts", "o-8.json", Bytes::from(good.to_string()), "application/json").await.unwrap();
    host.wait_for("receipt checked blob=o-8.json", 2, WAIT).await;

    blobs.put("receipts", "junk.json", Bytes::from_static(b"not a receipt"), "application/json").await.unwrap();
    host.wait_for("moved it to queue \"receipt-events-poison\"", 1, WAIT).await;
    let queues = QueueClient::new(&account).unwrap();
    let poison = queues.receive("receipt-events-poison", 32, Duration::from_secs(30)).await.unwrap();
    assert_eq!(poison.len(), 1);
    let event: Value = serde_json::from_slice(&poison[0].body).unwrap();
    assert_eq!(event["eventType"], "Microsoft.Storage.BlobCreated");
    assert_eq!(event["subject"], "/blobServices/default/containers/receipts/blobs/junk.json");
    assert_eq!(event["data"]["contentType"], "application/json");
    assert!(event["data"]["url"].as_str().unwrap().ends_with("/receipts/junk.json"), "{event}");
    assert!(!host.console().contains("blob=old.json"), "{}", host.console());
}

/// A copy of the app with `AuditReceipt` switched to the polling `blobTrigger` on `receipts/{name}`
/// (and the local Event Grid blob events off), started on `azurite`.
async fn with_polling_blob_trigger(azurite: &Azurite) -> (tempfile::TempDir, LocalHost) {
    let app = common::app_copy();
    std::fs::write(
        app.path().join("functions/AuditReceipt/function.json"),
        r#"{"bindings": [{"type": "blobTrigger", "direction": "in", "name": "receipt", "path": "receipts/{name}", "connection": "AzureWebJobsStorage"}]}"#,
    )
    .unwrap();
    let host = LocalHost::start(app.path(), azurite, &[("AZFN_BLOB_EVENTS", "")]).await;
    (app, host)
}

/// The polling blob trigger (Elastic Premium and Consumption): the same handler, with
/// `AuditReceipt`'s function.json switched to `blobTrigger` on `receipts/{name}`.
#[tokio::test]
async fn a_blob_triggers_once_and_a_bad_one_is_poisoned() {
    let azurite = Azurite::start();
    let (_app, host) = with_polling_blob_trigger(&azurite).await;
    let account = azurite.account();
    let blobs = BlobClient::new(&account).unwrap();
    blobs.create_container("receipts").await.unwrap();
    let good = json!({"orderId": "o-7", "total": 3.0, "currency": "EUR",
                      "lines": [{"sku": "s", "quantity": 2, "unitPrice": 1.5, "lineTotal": 3.0}]});
    blobs.put("receipts", "o-7.json", Bytes::from(good.to_string()), "application/json").await.unwrap();
    blobs.put("receipts", "junk.json", Bytes::from_static(b"not a receipt"), "application/json").await.unwrap();

    host.wait_for("receipt checked blob=o-7.json", 1, WAIT).await;
    host.wait_for("a message for it is on queue \"webjobs-blobtrigger-poison\"", 1, WAIT).await;
    // Several more scans pass: the good blob is not run again, and its receipt is stored.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(host.count("receipt checked blob=o-7.json"), 1, "{}", host.console());
    let receipts = blobs.list("azure-webjobs-hosts", "blobreceipts/").await.unwrap();
    assert!(receipts.iter().any(|r| r.name.ends_with("/receipts/o-7.json")), "{receipts:?}");

    let queues = QueueClient::new(&account).unwrap();
    let poison = queues.receive("webjobs-blobtrigger-poison", 32, Duration::from_secs(30)).await.unwrap();
    assert_eq!(poison.len(), 1);
    let message: Value = serde_json::from_slice(&poison[0].body).unwrap();
    assert_eq!(message["BlobName"], "junk.json");
    assert_eq!(message["ContainerName"], "receipts");
    assert_eq!(message["FunctionId"], "Host.Functions.AuditReceipt");

    // A new version of the blob (new ETag) triggers again.
    let mut changed = good.clone();
    changed["currency"] = json!("USD");
    blobs.put("receipts", "o-7.json", Bytes::from(changed.to_string()), "application/json").await.unwrap();
    host.wait_for("receipt checked blob=o-7.json", 2, WAIT).await;
}

#[tokio::test]
async fn a_run_on_startup_timer_fires_and_the_admin_endpoint_runs_functions() {
    let azurite = Azurite::start();
    let app = common::app_copy();
    let path = app.path().join("functions/OrderSummary/function.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"runOnStartup\": false", "\"runOnStartup\": true");
    std::fs::write(&path, text).unwrap();

    let host = LocalHost::start(app.path(), &azurite, &[]).await;
    host.wait_for("Executed 'OrderSummary' (timerTrigger", 1, WAIT).await;
    assert!(host.console().contains("order summary: no orders yet"), "{}", host.console());

    let client = reqwest::Client::new();
    let admin = |name: &str| host.url(&format!("/admin/functions/{name}"));
    let res = client.post(admin("OrderSummary")).json(&json!({"input": ""})).send().await.unwrap();
    assert_eq!(res.status(), 202);
    host.wait_for("Executed 'OrderSummary' (timerTrigger", 2, WAIT).await;

    // Service Bus and Event Grid functions run through the admin endpoint too.
    let res = client
        .post(admin("OrderEvents"))
        .json(&json!({"input": "{\"orderId\":\"o-1\",\"status\":\"shipped\"}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    host.wait_for("Executed 'OrderEvents' (serviceBusTrigger", 1, WAIT).await;
    let event = json!({"id": "e-1", "eventType": "Catalog.ItemChanged", "subject": "items/s-1", "eventTime": "2024-05-01T10:00:00Z",
                       "data": {"sku": "s-1"}, "dataVersion": "1", "topic": "/catalog"});
    let res = client.post(admin("CatalogEvents")).json(&json!({"input": event.to_string()})).send().await.unwrap();
    assert_eq!(res.status(), 202);
    host.wait_for("Executed 'CatalogEvents' (eventGridTrigger", 1, WAIT).await;

    // A queue function run by hand gets DequeueCount 0 and no message id, as in the real host.
    let message = json!({"orderId": "o-admin", "customerId": "c-1", "currency": "EUR", "createdAt": "2024-05-01T10:00:00Z",
                         "items": [{"sku": "s-1", "quantity": 2, "unitPriceCents": 150}]});
    let res = client.post(admin("ProcessOrder")).json(&json!({"input": message.to_string()})).send().await.unwrap();
    assert_eq!(res.status(), 202);
    host.wait_for("Executed 'ProcessOrder' (queueTrigger", 1, WAIT).await;

    assert_eq!(client.post(admin("Nope")).json(&json!({"input": ""})).send().await.unwrap().status(), 404);
    assert_eq!(client.post(admin("OrderSummary")).send().await.unwrap().status(), 400);
    let failures: Vec<_> = host.console().lines().filter(|l| l.contains("Failed")).map(str::to_owned).collect();
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test]
async fn the_host_restarts_a_killed_handler_and_carries_on() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let client = reqwest::Client::new();
    let first = host.handler_pid();

    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create_order(&host, &client).await);
    }
    std::process::Command::new("kill").args(["-KILL", &first.to_string()]).status().unwrap();
    for _ in 0..5 {
        // A call that was on its way to the dying handler fails with 500, as with the real host (and
        // writes nothing, since outputs are applied only after a successful answer); calls that could
        // not connect wait for the restarted handler. A client retries the 500.
        let mut attempts = 0;
        let id = loop {
            attempts += 1;
            let res = client.post(host.url("/api/orders")).json(&order()).send().await.unwrap();
            if res.status() == 500 && attempts < 5 {
                continue;
            }
            assert_eq!(res.status(), 202, "{}", host.console());
            let body: Value = res.json().await.unwrap();
            break body["orderId"].as_str().unwrap().to_owned();
        };
        ids.push(id);
    }
    host.wait_for("handler ready", 2, WAIT).await;
    assert_ne!(host.handler_pid(), first);
    assert!(host.console().contains("was killed by a signal; restarting the handler"), "{}", host.console());

    for id in &ids {
        host.wait_for(&format!("order processed order_id={id}"), 1, WAIT).await;
        let res = client.get(host.url(&format!("/api/orders/{id}"))).send().await.unwrap();
        assert_eq!(res.status(), 200, "order {id}");
    }
}

/// `cargo azfn invoke` runs one function of each trigger kind through the running host and prints
/// what it produced, or the error (exit 1).
#[tokio::test]
async fn cargo_azfn_invoke_runs_every_trigger_kind() {
    let azurite = Azurite::start();
    let (app, host) = with_polling_blob_trigger(&azurite).await;
    let port = host.port.to_string();
    let invoke = |args: &[&str]| {
        std::process::Command::new(common::cargo_azfn())
            .args(["azfn", "invoke", "--port", &port])
            .args(args)
            .current_dir(app.path())
            .output()
            .unwrap()
    };
    let ok = |out: std::process::Output| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };

    // HTTP: the route, with the method and path asked for.
    let text = ok(invoke(&["Hello", "-X", "get", "--path", "/api/hello?name=Inv"]));
    assert!(text.contains("HTTP 200") && text.contains("Hello, Inv"), "{text}");
    // Queue: the message; the outputs it wrote are printed.
    let order = json!({"orderId": "o-inv", "customerId": "c-1", "currency": "EUR", "createdAt": "2026-01-01T00:00:00Z",
                       "items": [{"sku": "s-1", "quantity": 2, "unitPriceCents": 150}]});
    let printed: Value = serde_json::from_str(&ok(invoke(&["ProcessOrder", "--data", &order.to_string()]))).unwrap();
    assert_eq!(printed["status"], "Succeeded");
    let outputs = printed["outputs"].as_array().unwrap();
    let blob = outputs.iter().find(|o| o["type"] == "blob").unwrap();
    assert_eq!(
        (&blob["target"], &blob["values"][0]["total"]),
        (&json!("receipts/o-inv.json"), &json!(3.0)),
        "{printed}"
    );
    assert!(outputs.iter().any(|o| o["type"] == "table" && o["values"][0]["RowKey"] == "o-inv"), "{printed}");
    // Blob: the path of an existing blob (the receipt just written).
    let text = ok(invoke(&["AuditReceipt", "--data", "\"receipts/o-inv.json\""]));
    assert!(text.contains("receipt checked"), "{text}");
    // Timer, Service Bus, Event Grid (from a file).
    ok(invoke(&["OrderSummary"]));
    ok(invoke(&["OrderEvents", "--data", r#"{"orderId": "o-inv", "status": "shipped"}"#]));
    let event = app.path().join("event.json");
    std::fs::write(
        &event,
        json!({"id": "e-1", "eventType": "Catalog.ItemChanged", "subject": "items/s-1",
        "eventTime": "2026-01-01T00:00:00Z", "data": {"sku": "s-1"}, "dataVersion": "1"})
        .to_string(),
    )
    .unwrap();
    ok(invoke(&["CatalogEvents", "--file", event.to_str().unwrap()]));

    // Errors: the function's own, a missing input, an unknown function.
    let failed = invoke(&["ProcessOrder", "--data", r#"{"orderId": ""}"#]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(!failed.stderr.is_empty(), "the reason is printed: {failed:?}");
    let missing = invoke(&["OrderEvents"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("needs --data"), "{missing:?}");
    let unknown = invoke(&["Nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("the app has: AuditReceipt"), "{unknown:?}");
}
