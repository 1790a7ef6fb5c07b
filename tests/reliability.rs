//! The recovery promises of `docs/reliability.md` one at a time, under `cargo azfn start --builtin` on a
//! real Azurite: starts that stopped part-way, retried starts, a storage reset under a running host,
//! and the defects found in the fault runs.

mod common;

use std::time::{Duration, Instant};

use azfn::durable::{ControlMessage, Event, InstanceStatus, InstanceStore, TaskHub};
use azfn::storage::TableClient;
use common::azurite::Azurite;
use common::local_host::LocalHost;
use serde_json::{Value, json};

async fn runtime_status(http: &reqwest::Client, host: &LocalHost, id: &str) -> (u16, Value) {
    let res = http.get(host.url(&format!("/api/orchestrators/instances/{id}"))).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn completes(http: &reqwest::Client, host: &LocalHost, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, body) = runtime_status(http, host, id).await;
        if body["runtimeStatus"] == "Completed" {
            return body;
        }
        assert!(Instant::now() < deadline, "{id} did not complete within {within:?}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A start that wrote the instance and died before its start message (the host was killed, or the
/// answer was lost and the client gave up) runs anyway, from the guard queued before the write; a
/// guard whose instance was never written is dropped. A retried start with the same id, orchestrator
/// and input is answered 202 with the same URLs; with another input it is refused, saying why.
#[tokio::test]
async fn starts_cannot_be_orphaned_and_are_safe_to_retry() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let http = reqwest::Client::new();

    // What a start had done when its host died: the guard sent (here due in 1 s), the row written.
    let hub = TaskHub::new("azfn", &azurite.account()).unwrap();
    hub.ensure_created().await.unwrap();
    let now = chrono::Utc::now();
    let mut status = InstanceStatus::new("HelloSequence", "orphan-1", Value::Null, None, now);
    let start =
        Event::ExecutionStarted { name: "HelloSequence".into(), input: Value::Null, parent: None, version: None };
    let mut guard = ControlMessage::event("orphan-1", Some(&status.execution_id), start.clone());
    (guard.guard, guard.recover, guard.fire_at) = (true, true, Some(now + chrono::Duration::seconds(1)));
    hub.send_control(&guard, now).await.unwrap();
    let store = InstanceStore::new(TableClient::new(&azurite.account()).unwrap(), "azfnInstances");
    store.commit(&mut status, None, &[], &[], &[]).await.unwrap();
    let done = completes(&http, &host, "orphan-1", Duration::from_secs(30)).await;
    assert_eq!(done["output"][0], "Hello Tokyo!");

    // A guard for a start that never wrote its row: nothing appears.
    let mut lost = ControlMessage::event("never-written", Some("x"), start);
    (lost.guard, lost.fire_at) = (true, Some(now));
    hub.send_control(&lost, now).await.unwrap();
    host.wait_for_executed("DurableControl", 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(runtime_status(&http, &host, "never-written").await.0, 404);

    // The same start twice: the same answer; another input for a running id: 409 saying so.
    let url = host.url("/api/orchestrators/ApprovalWorkflow/approve-1");
    let input = json!({"timeoutSeconds": 300});
    let first = http.post(&url).json(&input).send().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = http.post(&url).json(&input).send().await.unwrap();
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["statusQueryGetUri"], again["statusQueryGetUri"]);
    let other = http.post(&url).json(&json!({"timeoutSeconds": 5})).send().await.unwrap();
    assert_eq!(other.status(), 409);
    let text = other.text().await.unwrap();
    assert!(text.contains("another input"), "{text}");

    // A start keyed by Idempotency-Key gets the same instance on a retry.
    let keyed = |body: Value| {
        http.post(host.url("/api/orchestrators/HelloSequence")).header("Idempotency-Key", "k-1").json(&body).send()
    };
    let a: Value = keyed(Value::Null).await.unwrap().json().await.unwrap();
    let b: Value = keyed(Value::Null).await.unwrap().json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    completes(&http, &host, a["id"].as_str().unwrap(), Duration::from_secs(30)).await;
}

/// After the storage is reset under a running host (Azurite restarted, empty), starts and orders
/// succeed again within 10 s, without a restart: missing tables, queues and containers are
/// created again.
#[tokio::test]
async fn a_storage_reset_heals_without_a_restart() {
    let mut azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let http = reqwest::Client::new();
    let order =
        json!({"customerId": "c-reset", "currency": "EUR", "items": [{"sku": "s", "quantity": 1, "unitPrice": 2}]});
    let res = http.post(host.url("/api/orchestrators/HelloSequence")).send().await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(http.post(host.url("/api/orders")).json(&order).send().await.unwrap().status(), 202);

    azurite.restart();
    let reset = Instant::now();
    let (mut started, mut ordered) = (None, false);
    while started.is_none() || !ordered {
        assert!(reset.elapsed() < Duration::from_secs(10), "not healed 10 s after the reset:\n{}", host.console());
        if started.is_none() {
            let res = http.post(host.url("/api/orchestrators/HelloSequence")).send().await.unwrap();
            if res.status() == 202 {
                started = Some(res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
            }
        }
        if !ordered {
            ordered = http.post(host.url("/api/orders")).json(&order).send().await.unwrap().status() == 202;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    completes(&http, &host, &started.unwrap(), Duration::from_secs(30)).await;
}

/// Point 5 of the fault runs: a route value that cannot be a table key is a 404, not an empty 500;
/// an instance id with a line separator is refused up front.
#[tokio::test]
async fn keys_storage_cannot_hold_are_refused_clearly() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let http = reqwest::Client::new();
    let res = http.get(host.url("/api/orders/a%2Fb")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(!res.text().await.unwrap().is_empty());
    let res = http.post(host.url("/api/orchestrators/HelloSequence/a%E2%80%A8b")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let text = res.text().await.unwrap();
    assert!(text.contains("line separators"), "{text}");
}

/// A host killed with SIGKILL leaves no handler running: the handler sees its parent go and stops.
#[tokio::test]
async fn a_handler_dies_with_its_host() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let handler = host.handler_pid();
    std::process::Command::new("kill").args(["-KILL", &host.pid().to_string()]).status().unwrap();
    let running = || {
        std::fs::read_to_string(format!("/proc/{handler}/stat"))
            .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while running() {
        assert!(Instant::now() < deadline, "handler {handler} still runs 10 s after its host was killed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A message moved to poison whose deletion fails shows up again; it is then deleted, not copied a
/// second time: it is in the poison queue once.
#[tokio::test]
async fn a_poison_move_whose_delete_failed_copies_once() {
    let azurite = Azurite::start();
    let proxy = common::fault_proxy::FaultProxy::start(&azurite, 5).await;
    proxy.set_faults(false);
    let storage = proxy.connection_string();
    // One attempt per storage request, so that one refused delete fails the move.
    let env = [("AzureWebJobsStorage", storage.as_str()), ("AZFN_STORAGE_MAX_RETRIES", "0")];
    let host = LocalHost::start(&common::repo_root(), &azurite, &env).await;
    proxy.refuse("DELETE", "/orders/messages/", 1);
    let queues = azfn::storage::QueueClient::new(&azurite.account()).unwrap();
    queues.send("orders", b"not an order", Duration::ZERO).await.unwrap();
    // Five failed attempts, the move (its delete refused), then after the 30 s lease the message
    // is back and only deleted.
    host.wait_for("was already copied to queue \"orders-poison\"", 1, Duration::from_secs(90)).await;
    assert_eq!(host.count("could not move message"), 1, "{}", host.console());
    let parked = queues.peek("orders-poison", 32).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].body, b"not an order");
    assert!(queues.peek("orders", 32).await.unwrap().is_empty());
}

async fn greet_twice(
    ctx: azfn::durable::OrchestrationContext,
    _: Value,
) -> Result<Vec<String>, azfn::durable::TaskError> {
    let a: String = ctx.call_activity("Echo", "one").await?;
    let b: String = ctx.call_activity("Echo", "two").await?;
    Ok(vec![a, b])
}

async fn echo(_ctx: azfn::durable::ActivityContext, s: String) -> Result<String, String> {
    Ok(s)
}

/// An activity's worker records the result (and with it the next call) but cannot send the next
/// call's message, nor the result through the control queue: storage refuses every queue write.
/// The work message is then delivered again. Whether the same process gets it (its cache knows the
/// result) or another one (after a crash, from the table), the next call goes out and the
/// orchestration completes, with each result recorded once.
#[tokio::test]
async fn a_redelivered_activity_whose_next_step_was_never_sent_sends_it() {
    use azfn::durable::{Dispatcher, DurableClient, Registry, WorkMessage};
    use std::sync::Arc;
    let azurite = Azurite::start();
    let proxy = common::fault_proxy::FaultProxy::start(&azurite, 5).await;
    proxy.set_faults(false);
    let through_proxy = proxy.connection_string();
    let account =
        azfn::storage::resolve("AzureWebJobsStorage", |k| (k == "AzureWebJobsStorage").then(|| through_proxy.clone()))
            .unwrap();
    let direct = azfn::storage::QueueClient::new(&azurite.account()).unwrap();
    for (hub_name, same_process) in [("samepid", true), ("otherpid", false)] {
        let registry = Arc::new(Registry::new().orchestrator("GreetTwice", greet_twice).activity("Echo", echo));
        let new_dispatcher = || {
            let hub = Arc::new(TaskHub::new(hub_name, &account).unwrap());
            // The queue path: no local chains (tests/local_chains.rs covers those).
            Arc::new(Dispatcher::new(hub, registry.clone()).with_chain_budget(Duration::ZERO))
        };
        let first = new_dispatcher();
        first.hub().ensure_created().await.unwrap();
        let client = DurableClient::with_dispatcher(first.clone(), registry.clone());
        let id = client.start("GreetTwice", None, Value::Null).await.unwrap();
        let work_queue = format!("{hub_name}-work");
        let received = direct.receive(&work_queue, 1, Duration::from_secs(30)).await.unwrap();
        let call: WorkMessage = serde_json::from_slice(&received[0].body).unwrap();
        assert_eq!(call.task_id, 0);

        // Every queue write refused: the result is committed, nothing after it is sent.
        proxy.refuse("POST", "/messages", usize::MAX);
        let failed = first.work(call.clone(), 1).await;
        proxy.stop_refusing();
        assert!(failed.is_err(), "the attempt fails, so the host delivers the message again");
        assert!(direct.peek(&work_queue, 32).await.unwrap().is_empty(), "the next call was not sent");

        let again = if same_process { first.clone() } else { new_dispatcher() };
        again.work(call, 2).await.unwrap();
        let next = direct.receive(&work_queue, 1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(next.len(), 1, "the next call went out on the redelivery ({hub_name})");
        let next_call: WorkMessage = serde_json::from_slice(&next[0].body).unwrap();
        assert_eq!(next_call.task_id, 1);
        again.work(next_call, 1).await.unwrap();
        let done = client.status(&id, true).await.unwrap();
        assert_eq!(done.status.runtime_status, azfn::durable::RuntimeStatus::Completed, "{hub_name}");
        assert_eq!(done.status.output, json!(["one", "two"]));
        let history = serde_json::to_value(&done.history).unwrap();
        common::assert_no_double_completion(&id, history.as_array().unwrap());
    }
}
