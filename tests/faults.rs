//! The everyday faults of cloud storage, end to end: two `cargo azfn start --builtin` hosts on one Azurite,
//! every storage request of theirs through a proxy that answers 5% 503, 5% 500, drops 5% of the
//! answers after forwarding and delays 5% by 0.5 to 2 s (`common::fault_proxy`). Clients retry as a
//! user's would (same instance id, same `Idempotency-Key`). Then the faults stop, and the test checks
//! the promises of `docs/reliability.md`: every instance completes with the right output, none is
//! left pending or running, no result is recorded twice, activities run at most 1.3x as often as
//! needed, nothing of a completed instance is parked as poison, and every order exists once.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use azfn::storage::QueueClient;
use common::azurite::Azurite;
use common::fault_proxy::FaultProxy;
use common::local_host::LocalHost;
use common::{GREETINGS, assert_no_double_completion};
use serde_json::{Value, json};

/// POSTs until the answer is not a 5xx or a lost connection (a user's retry loop), at most 20 times.
async fn post_retrying(http: &reqwest::Client, url: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut last = String::new();
    for _ in 0..20 {
        let mut req = http.post(url).json(body).timeout(Duration::from_secs(60));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        match req.send().await {
            Ok(res) if res.status().as_u16() < 500 => {
                let status = res.status().as_u16();
                return (status, res.json().await.unwrap_or(Value::Null));
            }
            Ok(res) => {
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                assert!(!text.is_empty(), "a {status} from {url} must say what failed");
                last = format!("{status} {text}");
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{url} kept failing: {last}");
}

/// The state of an entity, when it can be read (`None` while storage fails or it does not exist).
async fn entity_state(http: &reqwest::Client, base: &str, name: &str, key: &str) -> Option<Value> {
    let res = http.get(format!("{base}/api/orchestrators/entities/{name}/{key}")).send().await.ok()?;
    if res.status() != 200 {
        return None;
    }
    res.json().await.ok()
}

async fn status(http: &reqwest::Client, base: &str, id: &str) -> Value {
    match http.get(format!("{base}/api/orchestrators/instances/{id}?showHistory=true")).send().await {
        Ok(res) => res.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Polls the instances in `pending` until all have completed, checking each completed one with `check` and
/// for results recorded twice; a failed or terminated one fails the test. Returns a still-running
/// instance and its status when none of those left has recorded a new history event or completed
/// for `within` seconds.
async fn until_completed(
    http: &reqwest::Client,
    base: &str,
    mut pending: Vec<String>,
    within: usize,
    check: impl Fn(&str, &Value),
) -> Option<(String, Value)> {
    let mut events: HashMap<String, usize> = HashMap::new();
    let mut progress_at = Instant::now();
    while !pending.is_empty() {
        let mut still = Vec::new();
        let mut last = None;
        for id in pending {
            let s = status(http, base, &id).await;
            let recorded = s["historyEvents"].as_array().map_or(0, Vec::len);
            let known = events.entry(id.clone()).or_default();
            if recorded > *known {
                (*known, progress_at) = (recorded, Instant::now());
            }
            if s["runtimeStatus"] == "Completed" {
                check(&id, &s);
                assert_no_double_completion(&id, s["historyEvents"].as_array().map(Vec::as_slice).unwrap_or_default());
                progress_at = Instant::now();
                continue;
            }
            assert!(!matches!(s["runtimeStatus"].as_str(), Some("Failed" | "Terminated")), "{id}: {s}");
            still.push(id.clone());
            last = Some((id, s));
        }
        pending = still;
        if progress_at.elapsed() > Duration::from_secs(within as u64) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// A size of the run: the environment variable `name` (set by `scripts/fault-run` for the longer run
/// on demand), or `default` (what CI runs).
fn size(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test]
async fn orchestrations_and_orders_survive_storage_faults() {
    let (sequences, fan_outs, fan_size) =
        (size("AZFN_FAULT_SEQUENCES", 24), size("AZFN_FAULT_FANOUTS", 3), size("AZFN_FAULT_FANOUT_SIZE", 40));
    let (order_count, within) = (size("AZFN_FAULT_ORDERS", 16), size("AZFN_FAULT_WITHIN_SECS", 150));
    let started_at = Instant::now();
    let azurite = Azurite::start();
    let proxy = FaultProxy::start(&azurite, 5).await;
    let storage = proxy.connection_string();
    let env = [("AzureWebJobsStorage", storage.as_str()), ("RUST_LOG", "info,azfn::durable::dispatch=debug")];
    let root = common::repo_root();
    let a = LocalHost::start(&root, &azurite, &env).await;
    let b = LocalHost::start(&root, &azurite, &env).await;
    let http = reqwest::Client::new();
    let bases = [a.url(""), b.url("")];

    // 24 sequences and 3 fan-outs of 40 (by default), started through either host, each start
    // retried until accepted with the same instance id.
    let mut expected: HashMap<String, Value> = HashMap::new();
    let mut needed = 0;
    for k in 0..sequences + fan_outs {
        let base = &bases[k % 2];
        let (name, id, input, output) = if k < sequences {
            needed += 5;
            ("HelloSequence", format!("seq-{k}"), Value::Null, json!(GREETINGS))
        } else {
            needed += fan_size;
            ("FanOutFanIn", format!("fan-{k}"), json!(fan_size), json!(fan_size * (fan_size + 1) / 2))
        };
        let (code, body) = post_retrying(&http, &format!("{base}/api/orchestrators/{name}/{id}"), &input, None).await;
        assert_eq!(code, 202, "start {id}: {body}");
        assert_eq!(body["id"], id.as_str());
        expected.insert(id, output);
    }

    // Orders (16 by default), each sent twice with the same Idempotency-Key (a client whose first answer was
    // lost), each send retried until it is answered.
    let mut orders = Vec::new();
    for k in 0..order_count {
        let body = json!({"customerId": format!("fault-c-{k}"), "currency": "EUR",
                          "items": [{"sku": "s-1", "quantity": k + 1, "unitPrice": 1.5}]});
        let key = format!("order-key-{k}");
        let url = format!("{}/api/orders", bases[k % 2]);
        let (code, first) = post_retrying(&http, &url, &body, Some(&key)).await;
        assert_eq!(code, 202, "order {k}: {first}");
        let url = format!("{}/api/orders", bases[(k + 1) % 2]);
        let (code, again) = post_retrying(&http, &url, &body, Some(&key)).await;
        assert_eq!((code, &again["orderId"]), (202, &first["orderId"]), "order {k} retried: {again}");
        orders.push((format!("fault-c-{k}"), first["orderId"].as_str().unwrap().to_owned()));
    }
    // The same key with another body is refused.
    let other = json!({"customerId": "someone-else", "currency": "EUR", "items": [{"sku": "s", "quantity": 1, "unitPrice": 1}]});
    let (code, body) = post_retrying(&http, &format!("{}/api/orders", bases[0]), &other, Some("order-key-0")).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"]["kind"], "idempotency", "{body}");

    // Entities: deposits to three accounts and 30 counter signals, each sent through both hosts
    // with one Idempotency-Key (a client whose first answer was lost): each applies once.
    let accounts: Vec<String> = (0..3).map(|i| format!("fault-acct-{i}")).collect();
    for (i, account) in accounts.iter().enumerate() {
        for base in &bases {
            let url = format!("{base}/api/orchestrators/entities/Account/{account}?op=deposit");
            let (code, body) = post_retrying(&http, &url, &json!(100), Some(&format!("deposit-{i}"))).await;
            assert_eq!(code, 202, "deposit to {account}: {body}");
        }
    }
    for k in 0..30 {
        for base in &bases {
            let url = format!("{base}/api/orchestrators/entities/Counter/fault-hits?op=add");
            let (code, body) = post_retrying(&http, &url, &json!(1), Some(&format!("hit-{k}"))).await;
            assert_eq!(code, 202, "hit {k}: {body}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(within as u64);
    for account in &accounts {
        while entity_state(&http, &bases[0], "Account", account).await != Some(json!(100)) {
            assert!(Instant::now() < deadline, "the deposit to {account} was not applied ({})", proxy.summary());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // 6 transfers among them, started with fixed ids (a retried start is the same instance). Each
    // locks two of the three accounts, so they run nearly one at a time: they get their own time.
    let mut transfers = Vec::new();
    for k in 0..6 {
        let id = format!("transfer-{k}");
        let input = json!({"from": accounts[k % 3], "to": accounts[(k + 1) % 3], "amount": 10 + (k * 7) % 50});
        let url = format!("{}/api/orchestrators/TransferFunds/{id}", bases[k % 2]);
        let (code, body) = post_retrying(&http, &url, &input, None).await;
        assert_eq!(code, 202, "start {id}: {body}");
        transfers.push(id);
    }

    // Every instance completes while the faults go on. A lost answer to a queue read hides its
    // messages for the 30 s lease (`AZFN_QUEUE_LEASE` of `LocalHost`), so instances are held to
    // progress rather than to one total time: the test fails when none of those still running has
    // recorded a new history event (or completed) for `within` seconds. The transfers queue behind
    // each other's locks, and the CI run on record took 62 s for one of their hops.
    let stalled = until_completed(&http, &bases[0], expected.keys().cloned().collect(), within, |id, s| {
        assert_eq!(s["output"], expected[id], "{id}: {s}");
    })
    .await;
    if let Some((id, s)) = stalled {
        panic!(
            "no instance moved for {within} s under faults ({}); {id}: {s}\nhost a:\n{}",
            proxy.summary(),
            a.console()
        );
    }
    let stalled = until_completed(&http, &bases[0], transfers.clone(), within, |id, s| {
        let outcome = s["output"]["status"].as_str().unwrap_or("");
        assert!(["transferred", "refused"].contains(&outcome), "{id}: {s}");
    })
    .await;
    if let Some((id, s)) = stalled {
        let tables = azfn::storage::TableClient::new(&azurite.account()).unwrap();
        let mut rows = String::new();
        for account in &accounts {
            let found = tables.query("azfnInstances", &format!("PartitionKey eq '@Account@{account}'")).await;
            rows.push_str(&format!("\n{account}: {found:?}"));
        }
        panic!("no transfer moved for {within} s under faults ({}); {id}: {s}\nrows:{rows}", proxy.summary());
    }
    proxy.set_faults(false);

    // The transfers kept the total and no balance went below zero; every counter signal applied once.
    let mut total = 0;
    for account in &accounts {
        let balance = entity_state(&http, &bases[0], "Account", account).await.and_then(|v| v.as_i64()).unwrap();
        assert!(balance >= 0, "{account}: {balance}");
        total += balance;
    }
    assert_eq!(total, 300);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut hits = None;
    while hits != Some(json!(30)) {
        assert!(Instant::now() < deadline, "the counter reads {hits:?}, not 30");
        tokio::time::sleep(Duration::from_millis(300)).await;
        hits = entity_state(&http, &bases[0], "Counter", "fault-hits").await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        entity_state(&http, &bases[0], "Counter", "fault-hits").await,
        Some(json!(30)),
        "a signal applied twice"
    );

    // Activities ran at most 1.3x as often as needed.
    let ran = a.count("DEBUG running activity") + b.count("DEBUG running activity");
    let invoked = a.executed("DurableWork") + b.executed("DurableWork");
    eprintln!(
        "{} orchestrations and {order_count} orders in {:.0} s; faults injected: {}; {ran} activity executions \
         ({invoked} work messages) for {needed} activities ({:.2}x)",
        sequences + fan_outs,
        started_at.elapsed().as_secs_f64(),
        proxy.summary(),
        ran as f64 / needed as f64
    );
    assert!(ran >= needed, "{ran} activity executions, {needed} needed");
    assert!(ran * 10 <= needed * 13, "{ran} activity executions where {needed} were needed ({})", proxy.summary());

    // Every order was processed and exists once.
    let tables = azfn::storage::TableClient::new(&azurite.account()).unwrap();
    for (customer, order_id) in &orders {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{}/api/orders/{order_id}", bases[0])).send().await.unwrap().status() != 200 {
            assert!(Instant::now() < deadline, "order {order_id} of {customer} was not processed");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let filter = format!("customerId eq {}", azfn::storage::odata_string(customer));
        let rows = tables.query("orders", &filter).await.unwrap();
        assert_eq!(rows.len(), 1, "{customer}: {rows:?}");
    }

    // Nothing of a completed instance is parked as poison.
    let queues = QueueClient::new(&azurite.account()).unwrap();
    for poison in ["azfn-control-poison", "azfn-work-poison", "orders-poison"] {
        let parked = queues.peek(poison, 32).await.unwrap_or_default();
        let bodies: Vec<String> = parked.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()).collect();
        assert!(bodies.is_empty(), "{poison} holds {bodies:?}");
    }
}
