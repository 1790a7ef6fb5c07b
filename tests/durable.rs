//! Durable orchestrations end to end: the orders app under `cargo azfn start --builtin` on a real Azurite,
//! driven through the management API with plain HTTP (as curl would), with the work moving through
//! the `azfn-control` and `azfn-work` queue triggers.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use azfn::durable::{ControlMessage, Event};
use azfn::storage::{BlobClient, QueueClient};
use common::azurite::Azurite;
use common::local_host::LocalHost;
use common::{GREETINGS, assert_no_double_completion};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(host: &LocalHost) -> Api {
        Api { base: host.url("/api/orchestrators"), http: reqwest::Client::new() }
    }

    async fn start(&self, name: &str, input: Value) -> String {
        let res = self.http.post(format!("{}/{name}", self.base)).json(&input).send().await.unwrap();
        assert_eq!(res.status(), 202, "start {name}");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let body: Value = res.json().await.unwrap();
        let id = body["id"].as_str().unwrap().to_owned();
        assert_eq!(location, body["statusQueryGetUri"]);
        id
    }

    async fn status(&self, id: &str) -> (u16, Value) {
        let res = self.http.get(format!("{}/instances/{id}", self.base)).send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}/{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the instance has finished (200) and returns its status.
    async fn finished(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (code, body) = self.status(id).await;
            if code == 200 {
                return body;
            }
            assert_eq!(code, 202, "{body}");
            assert!(Instant::now() < deadline, "instance {id} did not finish within {within:?}: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the instance's runtime status is `want`.
    async fn reaches(&self, id: &str, want: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (_, body) = self.status(id).await;
            if body["runtimeStatus"] == want {
                return body;
            }
            assert!(Instant::now() < deadline, "instance {id} is not {want} within {within:?}: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the entity's state is `want`.
    async fn entity_reaches(&self, name: &str, key: &str, want: Value) {
        let deadline = Instant::now() + WAIT;
        loop {
            let res = self.http.get(format!("{}/entities/{name}/{key}", self.base)).send().await.unwrap();
            let state = if res.status() == 200 { res.json().await.unwrap() } else { Value::Null };
            if state == want {
                return;
            }
            assert!(Instant::now() < deadline, "entity {name}/{key} is {state}, not {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn history(&self, id: &str) -> Vec<Value> {
        let res = self.http.get(format!("{}/instances/{id}?showHistory=true", self.base)).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        body["historyEvents"].as_array().cloned().unwrap_or_default()
    }
}

#[tokio::test]
async fn the_example_orchestrations_run_through_the_queue_triggers() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let api = Api::new(&host);

    // The start answer is shaped like Durable Functions'.
    let res = api.http.post(format!("{}/HelloSequence?code=k%2By", api.base)).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    for key in [
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "suspendPostUri",
        "resumePostUri",
    ] {
        let uri = body[key].as_str().unwrap_or_else(|| panic!("{key} in {body}"));
        assert!(uri.starts_with(&format!("{}/instances/{id}", host.url("/api/orchestrators"))), "{key}: {uri}");
        assert!(uri.contains("code=k%2By"), "{key} keeps the function key: {uri}");
    }
    let done = api.finished(id, WAIT).await;
    assert_eq!(done["runtimeStatus"], "Completed");
    assert_eq!(done["output"], json!(GREETINGS));
    assert_eq!(done["name"], "HelloSequence");
    for key in ["input", "customStatus", "createdTime", "lastUpdatedTime", "instanceId"] {
        assert!(done.get(key).is_some(), "{key} in {done}");
    }
    let history = api.history(id).await;
    let kinds: Vec<&str> = history.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "TaskCompleted").count(), 5, "{kinds:?}");
    assert_eq!(kinds.first(), Some(&"OrchestratorStarted"));
    assert_eq!(kinds.last(), Some(&"ExecutionCompleted"));

    // Fan-out/fan-in, the saga both ways, sub-orchestrations, and continue-as-new with timers.
    let fan = api.start("FanOutFanIn", json!(200)).await;
    let shipped = api.start("PlaceOrderSaga", json!({"orderId": "o-1", "card": "4111"})).await;
    let declined = api.start("PlaceOrderSaga", json!({"orderId": "o-2", "card": "declined"})).await;
    let batch = api
        .start("PlaceOrders", json!([{"orderId": "b-1", "card": "4111"}, {"orderId": "b-2", "card": "declined"}]))
        .await;
    let countdown = api.start("Countdown", json!({"remaining": 3, "intervalMs": 200, "counter": "ticks"})).await;

    let fan = api.finished(&fan, WAIT).await;
    assert_eq!(fan["output"], 20_100);
    assert_eq!(fan["customStatus"], "summed 200 results");
    let shipped = api.finished(&shipped, WAIT).await;
    assert_eq!(shipped["output"]["status"], "shipped");
    let declined = api.finished(&declined, WAIT).await;
    assert_eq!(
        (&declined["output"]["status"], &declined["output"]["compensated"]),
        (&json!("cancelled"), &json!(["ReleaseInventory"]))
    );
    let batch = api.finished(&batch, WAIT).await;
    assert_eq!(batch["output"], json!({"shipped": ["b-1"], "cancelled": ["b-2"]}));
    // The first child's id is recorded in the parent's history (it names the parent's execution).
    let history = api.history(batch["instanceId"].as_str().unwrap()).await;
    let first_child = history
        .iter()
        .find(|e| e["eventType"] == "SubOrchestrationCreated")
        .and_then(|e| e["instanceId"].as_str())
        .expect("a sub-orchestration was started")
        .to_owned();
    let (code, child) = api.status(&first_child).await;
    assert_eq!((code, &child["name"]), (200, &json!("PlaceOrderSaga")), "{child}");
    let countdown = api.finished(&countdown, WAIT).await;
    assert_eq!((&countdown["output"], &countdown["customStatus"]), (&json!("liftoff"), &json!(0)));
    // continue_as_new keeps only the last execution's history.
    let history = api.history(countdown["instanceId"].as_str().unwrap()).await;
    assert!(history.len() < 6, "{history:?}");
    // What an execution sent as it continued as new went out (carried in the status row until sent).
    api.entity_reaches("Counter", "ticks", json!(3)).await;

    // A failed activity and a failed orchestration each get one console line with the reason;
    // the durable functions' successes are tallied, not one line per message.
    let failing = api.start("HelloSequence", json!([""])).await;
    assert_eq!(api.finished(&failing, WAIT).await["runtimeStatus"], "Failed");
    host.wait_for("activity SayHello failed: SayHello needs a city", 1, WAIT).await;
    host.wait_for("orchestration HelloSequence failed: ", 1, WAIT).await;
    assert!(host.console().contains(&format!("instance={failing}")), "{}", host.console());
    // ... with the link to the instance in the dashboard.
    let link = format!("(dashboard: {}#/instance/{failing})", host.url("/api/dashboard"));
    assert!(host.console().contains(&link), "{}", host.console());
    // (The tally of the last second is printed up to a second later. The fan-out's 200 calls
    // travel in about 32 packs; the sequences run their calls in place.)
    host.wait_for_executed("DurableWork", 30, WAIT).await;
    assert!(host.count(" times (queueTrigger, last 1 s) Succeeded") > 0, "{}", host.console());
}

#[tokio::test]
async fn events_timeouts_and_instance_management() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let api = Api::new(&host);

    // Approval arrives while waiting.
    let approved = api.start("ApprovalWorkflow", json!({"timeoutSeconds": 120})).await;
    let waiting = api.reaches(&approved, "Running", WAIT).await;
    assert_eq!(waiting["customStatus"], "waiting for approval");
    let (code, body) = api.status(&approved).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(api.post(&format!("instances/{approved}/raiseEvent/Approval"), Some(json!(true))).await.0, 202);
    let done = api.finished(&approved, WAIT).await;
    assert_eq!(done["output"], json!({"status": "approved", "decision": true}));

    // An event raised before the orchestrator waits for it (even before it first ran) is kept.
    let early = api.start("ApprovalWorkflow", json!({"timeoutSeconds": 120})).await;
    assert_eq!(api.post(&format!("instances/{early}/raiseEvent/Approval"), Some(json!("approved"))).await.0, 202);
    assert_eq!(api.finished(&early, WAIT).await["output"]["status"], "approved");

    // No event: the durable timer ends the wait.
    let timed_out = api.start("ApprovalWorkflow", json!({"timeoutSeconds": 1})).await;
    assert_eq!(api.finished(&timed_out, WAIT).await["output"], json!({"status": "timedOut"}));

    // Suspended: events wait; resumed: they are applied.
    let paused = api.start("ApprovalWorkflow", json!({"timeoutSeconds": 120})).await;
    api.reaches(&paused, "Running", WAIT).await;
    assert_eq!(api.post(&format!("instances/{paused}/suspend"), None).await.0, 202);
    api.reaches(&paused, "Suspended", WAIT).await;
    assert_eq!(api.post(&format!("instances/{paused}/raiseEvent/Approval"), Some(json!(false))).await.0, 202);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.status(&paused).await.1["runtimeStatus"], "Suspended");
    assert_eq!(api.post(&format!("instances/{paused}/resume"), None).await.0, 202);
    assert_eq!(api.finished(&paused, WAIT).await["output"]["status"], "rejected");

    // Terminate; then operations on the finished instance are 410.
    let stopped = api.start("ApprovalWorkflow", json!({"timeoutSeconds": 120})).await;
    api.reaches(&stopped, "Running", WAIT).await;
    assert_eq!(api.post(&format!("instances/{stopped}/terminate?reason=changed%20my%20mind"), None).await.0, 202);
    let done = api.finished(&stopped, WAIT).await;
    assert_eq!((&done["runtimeStatus"], &done["output"]), (&json!("Terminated"), &json!("changed my mind")));
    let (code, body) = api.post(&format!("instances/{stopped}/raiseEvent/Approval"), Some(json!(true))).await;
    assert_eq!(code, 410, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("already finished"), "{body}");
    assert_eq!(api.post(&format!("instances/{stopped}/terminate"), None).await.0, 410);

    // Unknown ids are 404, bad ids 400, unknown orchestrators 404, bad input 400.
    assert_eq!(api.status("no-such-instance").await.0, 404);
    assert_eq!(api.post("instances/no-such-instance/terminate", None).await.0, 404);
    let (code, body) = api.status("bad%23id").await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("cannot contain"), "{body}");
    assert_eq!(api.status(&"x".repeat(257)).await.0, 400);
    let (code, body) = api.post("NoSuchOrchestrator", None).await;
    assert_eq!(code, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("HelloSequence"), "lists the known ones: {body}");
    let res = api.http.post(format!("{}/HelloSequence", api.base)).body("{not json").send().await.unwrap();
    assert_eq!(res.status(), 400);
    // An input the orchestrator cannot read is refused at the start, not failed later.
    let (code, body) = api.post("FanOutFanIn", None).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["kind"], "bad_request", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("does not fit orchestrator `FanOutFanIn`"), "{body}");
    // Starting an id that is running is a conflict; a finished one starts afresh.
    let mine = api.start("ApprovalWorkflow/order-7", json!({"timeoutSeconds": 120})).await;
    assert_eq!(mine, "order-7");
    assert_eq!(api.post("ApprovalWorkflow/order-7", Some(json!({}))).await.0, 409);
    api.reaches("order-7", "Running", WAIT).await;

    // List: filters and paging.
    let list = |query: &'static str| {
        let http = api.http.clone();
        let url = format!("{}/instances?{query}", api.base);
        async move {
            let res = http.get(url).send().await.unwrap();
            assert_eq!(res.status(), 200);
            let next = res.headers().get("x-ms-continuation-token").map(|v| v.to_str().unwrap().to_owned());
            (res.json::<Vec<Value>>().await.unwrap(), next)
        }
    };
    let (all, _) = list("").await;
    assert_eq!(all.len(), 6, "{all:?}");
    let (completed, _) = list("runtimeStatus=Completed").await;
    assert_eq!(completed.len(), 4);
    let (running_or_terminated, _) = list("runtimeStatus=Running,Terminated").await;
    assert_eq!(running_or_terminated.len(), 2);
    let (by_prefix, _) = list("namePrefix=Approval").await;
    assert_eq!(by_prefix.len(), 6);
    assert!(list("namePrefix=Hello").await.0.is_empty());
    assert!(list("createdTimeFrom=2100-01-01T00:00:00Z").await.0.is_empty());
    assert_eq!(list("createdTimeTo=2100-01-01T00:00:00Z").await.0.len(), 6);
    let mut seen = HashSet::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut req = api.http.get(format!("{}/instances?top=4", api.base));
        if let Some(t) = &token {
            req = req.header("x-ms-continuation-token", t);
        }
        let res = req.send().await.unwrap();
        token = res.headers().get("x-ms-continuation-token").map(|v| v.to_str().unwrap().to_owned());
        for s in res.json::<Vec<Value>>().await.unwrap() {
            assert!(seen.insert(s["instanceId"].as_str().unwrap().to_owned()));
        }
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 6);
    let res = api.http.get(format!("{}/instances?runtimeStatus=Sleeping", api.base)).send().await.unwrap();
    assert_eq!(res.status(), 400);

    // Purge: a running instance cannot be purged; a finished one is gone afterwards.
    let res = api.http.delete(format!("{}/instances/order-7", api.base)).send().await.unwrap();
    assert_eq!(res.status(), 409);
    let res = api.http.delete(format!("{}/instances/{stopped}", api.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(api.status(&stopped).await.0, 404);
}

#[tokio::test]
async fn large_inputs_and_outputs_go_through_blobs() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let api = Api::new(&host);
    // One city name of 40,000 characters: the input, one activity's input and result, and the
    // output are all above the 32 KiB limit of a table property or a queue message.
    let big = "x".repeat(40_000);
    let id = api.start("HelloSequence", json!([big, "Oslo"])).await;
    let done = api.finished(&id, WAIT).await;
    assert_eq!(done["output"], json!([format!("Hello {big}!"), "Hello Oslo!"]));
    assert_eq!(done["input"][0].as_str().unwrap().len(), 40_000);
    let blobs = BlobClient::new(&azurite.account()).unwrap().list("azfn-large", &format!("{id}/")).await.unwrap();
    assert!(blobs.len() >= 3, "{blobs:?}");
    // Purging removes them.
    let res = api.http.delete(format!("{}/instances/{id}", api.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let blobs = BlobClient::new(&azurite.account()).unwrap().list("azfn-large", &format!("{id}/")).await.unwrap();
    assert!(blobs.is_empty());
}

#[tokio::test]
async fn a_host_killed_mid_flight_loses_nothing_and_applies_nothing_twice() {
    let azurite = Azurite::start();
    let root = common::repo_root();
    let host = LocalHost::start(&root, &azurite, &[]).await;
    let api = Api::new(&host);
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(api.start("HelloSequence", Value::Null).await);
    }
    let fan = api.start("FanOutFanIn", json!(300)).await;
    // Kill the host and its handler (kill -9: no clean-up at all) while work is in flight (the
    // fan-out's 300 calls travel in 34 packs; the sequences run in place, from their starts).
    host.wait_for_executed("DurableWork", 10, WAIT).await;
    let handler = host.handler_pid();
    let host_pid = host.pid();
    for pid in [host_pid, handler] {
        std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    }
    drop(host);

    // A new host on the same storage finishes everything once the leases of the messages that were
    // in flight run out.
    let host = LocalHost::start(&root, &azurite, &[]).await;
    let api = Api { base: host.url("/api/orchestrators"), http: api.http };
    for id in &ids {
        let done = api.finished(id, Duration::from_secs(120)).await;
        assert_eq!(done["output"], json!(GREETINGS), "{id}");
        assert_no_double_completion(id, &api.history(id).await);
    }
    let done = api.finished(&fan, Duration::from_secs(120)).await;
    assert_eq!(done["output"], 45_150);
    assert_no_double_completion(&fan, &api.history(&fan).await);
}

#[tokio::test]
async fn two_handler_processes_share_the_instances() {
    let azurite = Azurite::start();
    let root = common::repo_root();
    let a = LocalHost::start(&root, &azurite, &[]).await;
    let b = LocalHost::start(&root, &azurite, &[]).await;
    let api = Api::new(&a);
    let mut ids = Vec::new();
    for k in 0..20 {
        ids.push(if k % 2 == 0 {
            api.start("HelloSequence", json!(null)).await
        } else {
            api.start("FanOutFanIn", json!(20)).await
        });
    }
    let fan = api.start("FanOutFanIn", json!(200)).await;
    for id in &ids {
        let done = api.finished(id, WAIT).await;
        assert_eq!(done["runtimeStatus"], "Completed", "{done}");
        assert_no_double_completion(id, &api.history(id).await);
    }
    assert_eq!(api.finished(&fan, WAIT).await["output"], 20_100);
    assert_no_double_completion(&fan, &api.history(&fan).await);
    // Both processes did work.
    for (name, host) in [("a", &a), ("b", &b)] {
        let n = host.executed("DurableWork") + host.executed("DurableControl");
        assert!(n > 0, "host {name} ran no orchestration work:\n{}", host.console());
    }
}

#[tokio::test]
async fn a_poison_work_item_is_parked_visible_and_can_be_redriven() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let api = Api::new(&host);
    let queues = QueueClient::new(&azurite.account()).unwrap();

    // A work item that can never be processed fails maxDequeueCount (5) times, then is parked.
    queues.send("azfn-work", br#"{"instanceId": "i-1", "truncated"#, Duration::ZERO).await.unwrap();
    host.wait_for("moved it to queue \"azfn-work-poison\"", 1, WAIT).await;
    assert_eq!(host.count("Executed 'DurableWork'"), 5, "{}", host.console());
    let res = api.http.get(format!("{}/poison", api.base)).send().await.unwrap();
    let parked: Value = res.json().await.unwrap();
    assert_eq!(parked["azfn-work-poison"]["approximateCount"], 1, "{parked}");
    assert_eq!(parked["azfn-work-poison"]["messages"][0]["body"], r#"{"instanceId": "i-1", "truncated"#);

    // A good message parked during an outage (here: put there directly) runs once re-driven.
    let waiting = api.start("ApprovalWorkflow", json!({"timeoutSeconds": 120})).await;
    api.reaches(&waiting, "Running", WAIT).await;
    let approval = Event::EventRaised { name: "Approval".into(), input: json!(true), key: "k-1".into() };
    let msg = ControlMessage::event(&waiting, None, approval);
    queues.create_queue("azfn-control-poison").await.unwrap();
    queues.send("azfn-control-poison", &serde_json::to_vec(&msg).unwrap(), Duration::ZERO).await.unwrap();
    let (code, body) = api.post("poison/redrive", None).await;
    assert_eq!((code, &body["redriven"]), (200, &json!(2)), "{body}");
    assert_eq!(api.finished(&waiting, WAIT).await["output"]["status"], "approved");

    // The bad one fails its five attempts again and is parked again: never retried forever.
    host.wait_for("moved it to queue \"azfn-work-poison\"", 2, WAIT).await;
    assert_eq!(host.count("Executed 'DurableWork'"), 10);
    assert_eq!(queues.approximate_count("azfn-work").await.unwrap(), 0);
}

#[tokio::test]
async fn restart_and_purge_by_time_range() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let api = Api::new(&host);
    let since = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    // A finished instance again with its original input (40,000 characters: kept in a blob),
    // under a new id (the default), then under its own.
    let big = "x".repeat(40_000);
    let first = api.start("HelloSequence", json!([big, "Oslo"])).await;
    let expected = json!([format!("Hello {big}!"), "Hello Oslo!"]);
    assert_eq!(api.finished(&first, WAIT).await["output"], expected);
    let (code, body) = api.post(&format!("instances/{first}/restart"), None).await;
    assert_eq!(code, 202, "{body}");
    let copy = body["id"].as_str().unwrap().to_owned();
    assert_ne!(copy, first);
    assert_eq!(api.finished(&copy, WAIT).await["output"], expected);
    let (code, body) = api.post(&format!("instances/{first}/restart?restartWithNewInstanceId=false"), None).await;
    assert_eq!((code, body["id"].as_str()), (202, Some(first.as_str())), "{body}");
    assert_eq!(api.finished(&first, WAIT).await["output"], expected);

    // A running instance restarts only as a copy.
    let waiting = api.start("ApprovalWorkflow", json!({"timeoutSeconds": 300})).await;
    api.reaches(&waiting, "Running", WAIT).await;
    let (code, body) = api.post(&format!("instances/{waiting}/restart?restartWithNewInstanceId=false"), None).await;
    assert_eq!((code, &body["error"]["kind"]), (409, &json!("conflict")), "{body}");
    let (code, _) = api.post("instances/nope/restart", None).await;
    assert_eq!(code, 404);

    // Purge by time range: the finished ones in the range go, with their blobs; the running one stays.
    let purge = |query: String| {
        let url = format!("{}/instances?{query}", api.base);
        let http = api.http.clone();
        async move {
            let res = http.delete(url).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (code, body) = purge(String::new()).await;
    assert_eq!((code, &body["error"]["kind"]), (400, &json!("bad_request")), "{body}");
    let (code, _) = purge(format!("createdTimeFrom={since}&runtimeStatus=Running")).await;
    assert_eq!(code, 400, "running instances are not purged");
    let (code, body) = purge(format!("createdTimeFrom={since}&createdTimeTo=2000-01-01T00:00:00Z")).await;
    assert_eq!((code, &body), (200, &json!({"instancesDeleted": 0})));
    let (code, body) = purge(format!("createdTimeFrom={since}")).await;
    assert_eq!((code, &body), (200, &json!({"instancesDeleted": 2})), "{body}");
    assert_eq!(api.status(&first).await.0, 404);
    assert_eq!(api.status(&copy).await.0, 404);
    assert_eq!(api.status(&waiting).await.0, 202);
    let blobs = BlobClient::new(&azurite.account()).unwrap();
    for id in [&first, &copy] {
        assert!(blobs.list("azfn-large", &format!("{id}/")).await.unwrap().is_empty(), "{id}'s blobs are purged");
    }
}

#[tokio::test]
async fn entities_take_concurrent_and_scheduled_signals_through_the_api() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let api = Api::new(&host);
    let entity_url = |key: &str| format!("{}/entities/Counter/{key}", api.base);

    // 500 concurrent `add 1` signals to one counter end at exactly 500.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let (http, url) = (api.http.clone(), format!("{}?op=add", entity_url("hits")));
        tasks.spawn(async move { http.post(url).json(&json!(1)).send().await.unwrap().status().as_u16() });
    }
    while let Some(code) = tasks.join_next().await {
        assert_eq!(code.unwrap(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    let count = loop {
        let res = api.http.get(entity_url("hits")).send().await.unwrap();
        let count = if res.status() == 200 { res.json::<Value>().await.unwrap() } else { json!(0) };
        if count == 500 || Instant::now() > deadline {
            break count;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(count, 500);
    // Nothing more arrives later (no operation applied twice).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.http.get(entity_url("hits")).send().await.unwrap().json::<Value>().await.unwrap(), 500);

    // A scheduled signal is applied no earlier than asked.
    let at = chrono::Utc::now() + chrono::Duration::seconds(4);
    let url = format!(
        "{}?op=add&scheduledTime={}",
        entity_url("hits"),
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    assert_eq!(api.http.post(url).json(&json!(10)).send().await.unwrap().status(), 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count: Value = api.http.get(entity_url("hits")).send().await.unwrap().json().await.unwrap();
        if count == 510 {
            assert!(chrono::Utc::now() >= at, "applied before its time");
            break;
        }
        assert_eq!(count, 500);
        assert!(Instant::now() < deadline, "the scheduled signal never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An orchestration's signals apply before its later call on the same entity.
    let id = api.start("CountTo", json!({"key": "ordered", "adds": 25})).await;
    assert_eq!(api.finished(&id, WAIT).await["output"], 25);
    let kinds: Vec<Value> = api.history(&id).await.iter().map(|e| e["eventType"].clone()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "EntitySignaled").count(), 25, "{kinds:?}");

    // Listing, not found, bad requests, delete.
    let res = api.http.get(format!("{}/entities?name=Counter&top=10", api.base)).send().await.unwrap();
    let listed: Value = res.json().await.unwrap();
    let hits = listed.as_array().unwrap().iter().find(|e| e["entityId"]["key"] == "hits").unwrap();
    assert_eq!((&hits["entityId"]["name"], &hits["state"]), (&json!("Counter"), &json!(510)), "{listed}");
    assert!(hits["lastOperationTime"].is_string(), "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 2, "hits and ordered: {listed}");
    let res = api.http.get(format!("{}/entities?name=Counter&top=1", api.base)).send().await.unwrap();
    let next = res.headers().get("x-ms-continuation-token").cloned();
    assert_eq!(res.json::<Value>().await.unwrap().as_array().unwrap().len(), 1);
    let res = api
        .http
        .get(format!("{}/entities?name=Counter&top=1", api.base))
        .header("x-ms-continuation-token", next.expect("a next page"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()[0]["entityId"]["key"], "ordered", "the second page");
    let res = api.http.get(entity_url("never")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["kind"], "not_found");
    let res = api.http.post(format!("{}/entities/Nope/k?op=add", api.base)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = api.http.post(format!("{}?op=add&scheduledTime=soon", entity_url("hits"))).send().await.unwrap();
    assert_eq!(res.status(), 400);
    // Orchestration ids cannot look like entity ids.
    let res = api.http.post(format!("{}/HelloSequence/@Counter@hits", api.base)).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let res = api.http.post(format!("{}?op=delete", entity_url("hits"))).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.http.get(entity_url("hits")).send().await.unwrap().status() != 404 {
        assert!(Instant::now() < deadline, "the counter was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_payment_circuit_breaker_opens_fails_fast_and_closes_again() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let api = Api::new(&host);
    let breaker = format!("{}/entities/CircuitBreaker/payments", api.base);
    let order =
        |id: &str, card: &str| json!({"orderId": id, "card": card, "breaker": {"threshold": 3, "coolDownSeconds": 3}});
    let breaker_is = |want: &'static str| {
        let (http, url) = (api.http.clone(), breaker.clone());
        async move {
            let deadline = Instant::now() + WAIT;
            loop {
                // The API shows the entity's state: {failures, openedAt, trial, settings}.
                let state: Value = http.get(&url).send().await.unwrap().json().await.unwrap_or(Value::Null);
                let now = match (&state["openedAt"], &state["trial"]) {
                    (Value::Null, _) => "closed",
                    (_, Value::Bool(true)) => "halfOpen",
                    _ => "open",
                };
                if !state.is_null() && now == want {
                    return state;
                }
                assert!(Instant::now() < deadline, "the breaker is not {want}: {state}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Three failures of the payment service, one after the other, open it.
    for i in 0..3 {
        let id = api.start("PlaceOrderSaga", order(&format!("u-{i}"), "unavailable")).await;
        assert_eq!(api.finished(&id, WAIT).await["output"]["status"], "cancelled");
    }
    let open = breaker_is("open").await;
    assert_eq!(open["failures"], 3);
    // Open: an order is cancelled without charging.
    let id = api.start("PlaceOrderSaga", order("fast", "4111")).await;
    let done = api.finished(&id, WAIT).await;
    assert!(done["output"]["reason"].as_str().unwrap().contains("circuit open"), "{done}");
    let charged = api.history(&id).await.iter().any(|e| e["name"] == "ChargePayment");
    assert!(!charged, "failed fast, without calling ChargePayment");
    // After the cool-down, a trial goes through and closes it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let id = api.start("PlaceOrderSaga", order("trial", "4111")).await;
    assert_eq!(api.finished(&id, WAIT).await["output"]["status"], "shipped");
    breaker_is("closed").await;
    let id = api.start("PlaceOrderSaga", order("after", "4111")).await;
    assert_eq!(api.finished(&id, WAIT).await["output"]["status"], "shipped");
}

/// The balances of the `Account` entities `keys` (0 for one that does not exist yet).
async fn balances(api: &Api, keys: &[String]) -> Vec<i64> {
    let mut out = Vec::new();
    for key in keys {
        let res = api.http.get(format!("{}/entities/Account/{key}", api.base)).send().await.unwrap();
        out.push(if res.status() == 200 { res.json::<i64>().await.unwrap() } else { 0 });
    }
    out
}

/// Signals `op` with `amount` to each account, and waits until every balance is `want`.
async fn signal_accounts(api: &Api, keys: &[String], op: &str, amount: i64, want: i64) {
    for key in keys {
        let url = format!("{}/entities/Account/{key}?op={op}", api.base);
        assert_eq!(api.http.post(url).json(&amount).send().await.unwrap().status(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while balances(api, keys).await.iter().any(|b| *b != want) {
        assert!(Instant::now() < deadline, "balances {:?}, not all {want}", balances(api, keys).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts 100 transfers among `keys` at once (pseudo-random pairs and amounts, the same every run).
async fn start_transfers(api: &Api, keys: &[String]) -> Vec<String> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let from = next(keys.len() as u64) as usize;
        let to = (from + 1 + next(keys.len() as u64 - 1) as usize) % keys.len();
        let input = json!({"from": keys[from], "to": keys[to], "amount": 1 + next(70)});
        let (http, url) = (api.http.clone(), format!("{}/TransferFunds", api.base));
        tasks.spawn(async move {
            let res = http.post(url).json(&input).send().await.unwrap();
            assert_eq!(res.status(), 202);
            res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        });
    }
    tasks.join_all().await
}

/// Waits for the transfers to finish while checking that no balance goes below zero; then checks
/// that each finished with a verdict, that the total is what it was, and that no lock is left (a
/// deposit to every account goes through).
async fn settle_transfers(api: &Api, keys: &[String], ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut transferred = 0;
    for id in ids {
        loop {
            assert!(balances(api, keys).await.iter().all(|b| *b >= 0), "a balance went negative");
            let (code, body) = api.status(id).await;
            if code == 200 {
                assert_eq!(body["runtimeStatus"], "Completed", "{body}");
                let verdict = body["output"]["status"].as_str().unwrap_or_default().to_owned();
                assert!(verdict == "transferred" || verdict == "refused", "{body}");
                transferred += usize::from(verdict == "transferred");
                assert_no_double_completion(id, &api.history(id).await);
                break;
            }
            assert!(Instant::now() < deadline, "transfer {id} did not finish: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("{transferred} of 100 transferred");
    assert!(transferred >= 20, "only {transferred} of 100 transfers went through");
    let after = balances(api, keys).await;
    assert_eq!(after.iter().sum::<i64>(), 100 * keys.len() as i64, "{after:?}");
    assert!(after.iter().all(|b| *b >= 0), "{after:?}");
    // No lock is left behind: every account takes a client's deposit.
    let deadline = Instant::now() + Duration::from_secs(60);
    for key in keys {
        let url = format!("{}/entities/Account/{key}?op=deposit", api.base);
        assert_eq!(api.http.post(url).json(&1).send().await.unwrap().status(), 202);
    }
    while balances(api, keys).await.iter().sum::<i64>() != 100 * keys.len() as i64 + keys.len() as i64 {
        assert!(Instant::now() < deadline, "an account is still locked: {:?}", balances(api, keys).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn concurrent_transfers_keep_the_total_also_across_a_killed_host() {
    let azurite = Azurite::start();
    let root = common::repo_root();
    let host = LocalHost::start(&root, &azurite, &[]).await;
    let api = Api::new(&host);

    // 100 transfers among 5 accounts of 100 each, all at once.
    let keys: Vec<String> = (0..5).map(|i| format!("calm-{i}")).collect();
    signal_accounts(&api, &keys, "deposit", 100, 100).await;
    let ids = start_transfers(&api, &keys).await;
    settle_transfers(&api, &keys, &ids).await;

    // Again, with the host and its handler killed (kill -9) while transfers hold locks.
    let keys: Vec<String> = (0..5).map(|i| format!("killed-{i}")).collect();
    signal_accounts(&api, &keys, "deposit", 100, 100).await;
    let ids = start_transfers(&api, &keys).await;
    let done = |body: &Value| body["runtimeStatus"] == "Completed";
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut finished = 0;
        for id in &ids[..40] {
            finished += usize::from(done(&api.status(id).await.1));
        }
        if finished >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the transfers do not move");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for pid in [host.pid(), host.handler_pid()] {
        std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    }
    drop(host);
    let host = LocalHost::start(&root, &azurite, &[]).await;
    let api = Api { base: host.url("/api/orchestrators"), http: api.http };
    settle_transfers(&api, &keys, &ids).await;
}

/// The dashboard page and its assets come from the app itself, under a strict policy; the history
/// the page draws its timeline from carries each event's time.
#[tokio::test]
async fn the_dashboard_is_served_with_its_assets_and_the_history_has_times() {
    let azurite = Azurite::start();
    let host = LocalHost::start(&common::repo_root(), &azurite, &[]).await;
    let http = reqwest::Client::new();
    let page = http.get(host.url("/api/dashboard")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"src="/api/dashboard/dashboard.js""#), "{html}");
    assert!(html.contains(r#"data-api="/api/orchestrators""#), "{html}");
    for (asset, kind) in [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")] {
        let res = http.get(host.url(&format!("/api/dashboard/{asset}"))).send().await.unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with(kind), "{asset}");
    }
    assert_eq!(http.get(host.url("/api/dashboard/nothing.png")).send().await.unwrap().status(), 404);

    let api = Api::new(&host);
    let id = api.start("HelloSequence", Value::Null).await;
    api.finished(&id, WAIT).await;
    let history = api.history(&id).await;
    assert!(history.iter().all(|e| e["timestamp"].is_string()), "{history:?}");
    // Still a history the replay check reads.
    let recorded = json!({"instanceId": id, "historyEvents": history});
    let registry = azfn::durable::Registry::new();
    let err = azfn::durable::testing::replay_check(&registry, &recorded).unwrap_err();
    assert!(err.to_string().contains("HelloSequence"), "read, and the orchestrator named: {err}");
}

/// Retention (issue 29): with `AZFN_DURABLE_RETENTION=completed=3s` the app purges Completed
/// instances finished more than 3 s ago, in the background, while work goes on; a Failed instance
/// (not named by the policy) and a Running one stay. `GET retention` shows the policy and the
/// last pass.
#[tokio::test]
async fn retention_purges_only_what_its_policy_names_while_work_goes_on() {
    let azurite = Azurite::start();
    let host = LocalHost::start(
        &common::repo_root(),
        &azurite,
        &[("AZFN_DURABLE_RETENTION", "completed=3s"), ("AZFN_DURABLE_RETENTION_EVERY", "1s")],
    )
    .await;
    let api = Api::new(&host);
    let done = api.start("HelloSequence", json!(["Tokyo"])).await;
    assert_eq!(api.finished(&done, WAIT).await["runtimeStatus"], "Completed");
    let failed = api.start("HelloSequence", json!([""])).await;
    assert_eq!(api.finished(&failed, WAIT).await["runtimeStatus"], "Failed");
    let waiting = api.start("ApprovalWorkflow", json!({"timeoutSeconds": 600})).await;
    api.reaches(&waiting, "Running", WAIT).await;

    // Work goes on meanwhile: more sequences complete (and are purged in their turn).
    let deadline = Instant::now() + WAIT;
    loop {
        let more = api.start("HelloSequence", json!(["Lima"])).await;
        assert_eq!(api.finished(&more, WAIT).await["runtimeStatus"], "Completed");
        if api.status(&done).await.0 == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the completed instance was not purged: {}", host.console());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(api.status(&failed).await.1["runtimeStatus"], "Failed", "Failed is not in the policy");
    assert_eq!(api.status(&waiting).await.1["runtimeStatus"], "Running");
    let res = api.http.get(format!("{}/retention", api.base)).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["policy"], json!({"Completed": "3s"}), "{body}");
    assert_eq!(body["every"], "1s");
    assert!(body["lastPass"]["started"].is_string(), "{body}");
}

/// Versioned orchestrators (issue 29): a rolling deploy played by two hosts on one task hub, the
/// app's first release (`ORDERS_RELEASE=1`: `ConfirmOrder` version 1 only) beside the current one
/// (versions 1 and 2). Each host starts instances on its newest version; every instance completes
/// on its own version's code (the two versions take different steps, so a wrong one could not
/// replay it), whichever host takes its messages: the old host leaves version 2's work for the
/// new one. Once no version 1 instance is left, `GET versions` says its code can be removed; a
/// recorded version 1 history then fails the replay check against changed version 1 code.
#[tokio::test]
async fn a_rolling_deploy_runs_each_instance_on_its_own_versions_code() {
    let azurite = Azurite::start();
    let root = common::repo_root();
    let old = LocalHost::start(&root, &azurite, &[("ORDERS_RELEASE", "1")]).await;
    let old_api = Api::new(&old);
    let mut v1 = Vec::new();
    for k in 0..3 {
        let id = old_api.start("ConfirmOrder", json!({"customer": format!("old-{k}")})).await;
        assert_eq!(old_api.reaches(&id, "Running", WAIT).await["version"], "1");
        v1.push(id);
    }
    let new = LocalHost::start(&root, &azurite, &[]).await;
    let new_api = Api::new(&new);
    let mut v2 = Vec::new();
    for k in 0..3 {
        let id = new_api.start("ConfirmOrder", json!({"customer": format!("new-{k}")})).await;
        assert_eq!(new_api.reaches(&id, "Running", WAIT).await["version"], "2");
        v2.push(id);
    }
    let versions = |api: &Api| {
        let url = format!("{}/versions", api.base);
        let http = api.http.clone();
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let of = |body: &Value, version: &str| -> Value {
        body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "ConfirmOrder" && v["version"] == version)
            .cloned()
            .unwrap_or_else(|| panic!("no ConfirmOrder {version} in {body}"))
    };
    let during = versions(&new_api).await;
    assert_eq!(of(&during, "1")["inFlight"], 3, "{during}");
    assert_eq!(of(&during, "1")["removable"], false, "{during}");
    assert_eq!(of(&during, "2")["startsNew"], true, "{during}");
    let seen_by_old = versions(&old_api).await;
    assert_eq!(of(&seen_by_old, "2")["registered"], false, "{seen_by_old}");
    assert_eq!(of(&seen_by_old, "2")["inFlight"], 3, "{seen_by_old}");

    // Each event goes through either host, as the hosts take turns; both read the control queue.
    for (k, id) in v1.iter().chain(&v2).enumerate() {
        let api = if k % 2 == 0 { &old_api } else { &new_api };
        assert_eq!(api.post(&format!("instances/{id}/raiseEvent/Confirm"), Some(json!(5))).await.0, 202);
    }
    for (k, id) in v1.iter().enumerate() {
        let done = new_api.finished(id, 2 * WAIT).await;
        assert_eq!(done["output"], json!({"version": "1", "greeting": format!("Hello old-{k}!")}), "{done}");
        assert_eq!(done["version"], "1");
    }
    for (k, id) in v2.iter().enumerate() {
        let done = old_api.finished(id, 2 * WAIT).await;
        let want = json!({"version": "2", "units": 5, "greeting": format!("Hello new-{k}!")});
        assert_eq!(done["output"], want, "{done}\nold host:\n{}", old.console());
    }
    let after = versions(&new_api).await;
    assert_eq!(of(&after, "1")["inFlight"], 0, "{after}");
    assert_eq!(of(&after, "1")["removable"], true, "{after}");
    assert_eq!(of(&after, "2")["removable"], false, "{after}");

    // A history of version 1, recorded from this run, against version 1 changed in place.
    let res = new_api.http.get(format!("{}/instances/{}?showHistory=true", new_api.base, v1[0])).send().await.unwrap();
    let recorded: Value = res.json().await.unwrap();
    async fn number(_ctx: azfn::durable::ActivityContext, k: u64) -> Result<u64, String> {
        Ok(k)
    }
    async fn say_hello(_ctx: azfn::durable::ActivityContext, name: String) -> Result<String, String> {
        Ok(format!("Hello {name}!"))
    }
    async fn edited(ctx: azfn::durable::OrchestrationContext, _: Value) -> Result<Value, azfn::durable::TaskError> {
        let units: Value = ctx.wait_for_event("Confirm").await?;
        let units: u64 = ctx.call_activity("Number", units).await?;
        Ok(json!(units))
    }
    let changed = azfn::durable::Registry::new()
        .orchestrator_version("ConfirmOrder", "1", edited)
        .activity("Number", number)
        .activity("SayHello", say_hello);
    let err = azfn::durable::testing::replay_check(&changed, &recorded).unwrap_err().to_string();
    assert!(err.contains("register the changed code as a new version"), "{err}");
}

/// The instances a schedule started: ids `{schedule}-{time}`, in time order.
async fn scheduled(api: &Api, schedule: &str) -> Vec<String> {
    let url = format!("{}/instances?namePrefix=HelloSequence&top=1000", api.base);
    let list: Vec<Value> = api.http.get(url).send().await.unwrap().json().await.unwrap();
    let prefix = format!("{schedule}-");
    let mut ids: Vec<String> = list
        .iter()
        .filter_map(|i| i["instanceId"].as_str())
        .filter(|id| id.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

/// The occurrence time in a scheduled instance's id.
fn occurrence(id: &str) -> chrono::DateTime<chrono::Utc> {
    let (_, time) = id.rsplit_once('-').unwrap();
    chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%SZ").unwrap().and_utc()
}

/// Waits until the schedule has started at least `n` instances.
async fn until_scheduled(api: &Api, schedule: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let ids = scheduled(api, schedule).await;
        if ids.len() >= n {
            return ids;
        }
        assert!(Instant::now() < deadline, "{schedule} started {} of {n} instances: {ids:?}", ids.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Scheduled starts (issue 29): a schedule every 2 s, made through one of two hosts, starts each
/// occurrence once between them (the instance `{schedule}-{time}`, started with a keyed start, and
/// its activity run once); it survives both hosts stopping (the latest occurrence missed is started
/// once when a host is back, as a past-due timer is), and pauses, resumes and goes when deleted.
#[tokio::test]
async fn a_schedule_fires_each_occurrence_once_across_two_hosts_and_survives_a_restart() {
    let azurite = Azurite::start();
    let root = common::repo_root();
    let a = LocalHost::start(&root, &azurite, &[]).await;
    let b = LocalHost::start(&root, &azurite, &[]).await;
    let api = Api::new(&a);

    let bad = json!({"orchestrator": "HelloSequence", "input": ["Zanzibar"], "interval": "soon"});
    let (code, body) = api.post("schedules/tick", Some(bad)).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("interval \"soon\""), "{body}");
    let (code, _) = api.post("schedules/tick", Some(json!({"orchestrator": "Nope", "interval": "2s"}))).await;
    assert_eq!(code, 404);

    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let spec = json!({"orchestrator": "HelloSequence", "input": ["Zanzibar"], "interval": "2s", "startAt": start_at});
    let (code, made) = api.post("schedules/tick", Some(spec.clone())).await;
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["status"], "Active");
    assert_eq!(made["nextRun"], start_at, "{made}");
    let (code, again) = api.post("schedules/tick", Some(spec.clone())).await;
    assert_eq!((code, &again["id"]), (200, &json!("tick")), "a retried request answers with the schedule");
    let mut other = spec.clone();
    other["interval"] = json!("3s");
    assert_eq!(api.post("schedules/tick", Some(other)).await.0, 409);

    let first = until_scheduled(&api, "tick", 4).await;
    assert_eq!(occurrence(&first[0]).to_rfc3339_opts(chrono::SecondsFormat::Secs, true), start_at);
    for pair in first.windows(2) {
        assert_eq!((occurrence(&pair[1]) - occurrence(&pair[0])).num_seconds(), 2, "{first:?}");
    }

    // Each occurrence was claimed by one host: the one whose move of the schedule (under its
    // ETag) went through logs it; the other found the instance started and the schedule moved on.
    let consoles = format!("{}\n{}", a.console(), b.console());
    for id in &first {
        let claims = consoles.lines().filter(|l| l.contains("scheduled start") && l.contains(id.as_str())).count();
        assert_eq!(claims, 1, "{id} was claimed {claims} times:\n{consoles}");
    }
    assert!(consoles.contains("scheduled start"));

    // Both hosts stop; the schedule is in the table, and a host started later goes on with it.
    drop(a);
    drop(b);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // (This host runs in Paris time, for the cron schedule below.)
    let c = LocalHost::start(&root, &azurite, &[("WEBSITE_TIME_ZONE", "Europe/Paris")]).await;
    let api = Api::new(&c);
    let stopped_at = scheduled(&api, "tick").await.len();
    let after = until_scheduled(&api, "tick", stopped_at + 3).await;
    for id in &after {
        let done = api.finished(id, WAIT).await;
        assert_eq!(done["output"], json!(["Hello Zanzibar!"]), "{done}");
        let history = api.history(id).await;
        let starts = history.iter().filter(|e| e["eventType"] == "ExecutionStarted").count();
        assert_eq!(starts, 1, "{id}: {history:?}");
        assert_no_double_completion(id, &history);
    }
    // Each occurrence is one instance, 2 s from the one before, except for the gap while no host
    // ran: occurrences missed then were not made up, beyond the latest one.
    let gaps: Vec<i64> = after.windows(2).map(|p| (occurrence(&p[1]) - occurrence(&p[0])).num_seconds()).collect();
    assert_eq!(gaps.iter().filter(|g| **g != 2).count(), 1, "one gap, while stopped: {gaps:?}");
    assert!(gaps.iter().all(|g| *g > 0 && g % 2 == 0), "{gaps:?}");

    // Pause: nothing starts. Resume: it goes on. Delete: it is gone.
    let (code, paused) = api.post("schedules/tick/pause", None).await;
    assert_eq!((code, &paused["status"]), (200, &json!("Paused")), "{paused}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = scheduled(&api, "tick").await.len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(scheduled(&api, "tick").await.len(), before, "a paused schedule started an instance");
    let (code, resumed) = api.post("schedules/tick/resume", None).await;
    assert_eq!((code, &resumed["status"]), (200, &json!("Active")), "{resumed}");
    until_scheduled(&api, "tick", before + 2).await;
    let res = api.http.get(format!("{}/schedules", api.base)).send().await.unwrap();
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed[0]["id"], "tick", "{listed}");
    assert!(listed[0]["lastInstanceId"].as_str().unwrap().starts_with("tick-"), "{listed}");
    let res = api.http.delete(format!("{}/schedules/tick", api.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = scheduled(&api, "tick").await;
    for id in &last {
        api.finished(id, WAIT).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(scheduled(&api, "tick").await.len(), last.len(), "a deleted schedule started an instance");
    let res = api.http.get(format!("{}/schedules/tick", api.base)).send().await.unwrap();
    assert_eq!(res.status(), 404);

    // A cron schedule that names no time zone is read in the app's, as timer triggers are
    // (WEBSITE_TIME_ZONE), and records it: 9:00 in Paris is 8:00 UTC in winter, 7:00 in summer.
    let (code, daily) = api
        .post(
            "schedules/daily",
            Some(json!({"orchestrator": "HelloSequence", "input": ["Paris"], "cron": "0 0 9 * * *"})),
        )
        .await;
    assert_eq!((code, &daily["timeZone"]), (201, &json!("Europe/Paris")), "{daily}");
    let next = daily["nextRun"].as_str().unwrap();
    assert!(next.ends_with("T08:00:00Z") || next.ends_with("T07:00:00Z"), "{daily}");
    assert_eq!(api.http.delete(format!("{}/schedules/daily", api.base)).send().await.unwrap().status(), 200);
}

/// A stand-in for the warehouse service `Restock` orders from: answers 503 while `down`, else 200
/// with an order id; counts the requests and keeps their idempotency keys.
struct Warehouse {
    url: String,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    keys: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Warehouse {
    async fn start() -> Warehouse {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/orders", listener.local_addr().unwrap());
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let keys = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (d, k) = (down.clone(), keys.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let (d, k) = (d.clone(), k.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers, then as much body as Content-Length says.
                    let (head, length) = loop {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (head, end + 4 + length);
                        }
                    };
                    while buf.len() < length {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let key = head.lines().find_map(|l| l.strip_prefix("idempotency-key:")).unwrap_or("").trim();
                    let n = {
                        let mut keys = k.lock().unwrap();
                        keys.push(key.to_owned());
                        keys.len()
                    };
                    let answer = if d.load(Ordering::SeqCst) {
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown"
                            .to_owned()
                    } else {
                        let body = format!("WH-{n}");
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                    };
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        Warehouse { url, down, keys }
    }
}

/// Rewind (issue 29): `Restock` quotes, then orders from a warehouse that is down, and fails.
/// Once the warehouse is back, `POST instances/{id}/rewind` takes the instance back to before the
/// failed order and runs it again: it completes, the quote is not made again, the history records
/// the rewind and its reason, and the new order is a new attempt (another idempotency key).
/// Rewinds that cannot end differently are refused with why: a Completed instance, and one that
/// failed in its own code.
#[tokio::test]
async fn a_rewound_instance_completes_without_running_again_what_had_succeeded() {
    let azurite = Azurite::start();
    let warehouse = Warehouse::start().await;
    let host = LocalHost::start(&common::repo_root(), &azurite, &[("WAREHOUSE_URL", warehouse.url.as_str())]).await;
    let api = Api::new(&host);
    let id = api.start("Restock", json!({"sku": "tea", "quantity": 3})).await;
    let failed = api.finished(&id, WAIT).await;
    assert_eq!(failed["runtimeStatus"], "Failed", "{failed}");
    assert!(failed["output"].as_str().unwrap().contains("503"), "{failed}");

    // Refused: a Completed instance, and a failure of the orchestrator's own code.
    let done = api.start("HelloSequence", json!(["Quito"])).await;
    api.finished(&done, WAIT).await;
    let (code, body) = api.post(&format!("instances/{done}/rewind"), None).await;
    assert_eq!(code, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("only a Failed instance"), "{body}");
    let own = api.start("Restock", json!({"sku": "tea", "quantity": 0})).await;
    assert_eq!(api.finished(&own, WAIT).await["runtimeStatus"], "Failed");
    let (code, body) = api.post(&format!("instances/{own}/rewind"), None).await;
    assert_eq!(code, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("failed in its own code"), "{body}");

    // The outage is over: rewound, it orders again and completes.
    warehouse.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let (code, body) = api.post(&format!("instances/{id}/rewind?reason=warehouse%20back"), None).await;
    assert_eq!(code, 202, "{body}");
    let done = api.reaches(&id, "Completed", WAIT).await;
    assert_eq!(done["output"], json!({"quote": "3 x tea at 4.20", "warehouseOrder": "WH-2"}), "{done}");
    let history = api.history(&id).await;
    let quotes = history.iter().filter(|e| e["eventType"] == "TaskScheduled" && e["name"] == "QuoteRestock").count();
    assert_eq!(quotes, 1, "{history:?}");
    assert_eq!(host.count("quoting a restock"), 1, "the quote ran again");
    let rewound = history.iter().find(|e| e["eventType"] == "ExecutionRewound").expect("the rewind is in the history");
    assert_eq!(rewound["reason"], "warehouse back");
    assert!(rewound["failures"][0]["error"].as_str().unwrap().contains("503"), "{rewound}");
    assert!(!history.iter().any(|e| e["eventType"] == "TaskFailed"), "{history:?}");
    assert_no_double_completion(&id, &history);
    let keys = warehouse.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(keys[0], keys[1], "the order after the rewind is a new attempt");

    // A second rewind of the now Completed instance is refused.
    assert_eq!(api.post(&format!("instances/{id}/rewind"), None).await.0, 409);

    // Sub-orchestrations: two restocks fail while the warehouse is down, and so does their parent.
    // Rewinding the parent rewinds them with it; each orders again, none quotes again.
    warehouse.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let items = json!([{"sku": "rice", "quantity": 1}, {"sku": "oats", "quantity": 2}]);
    let parent = api.start("RestockAll", items).await;
    assert_eq!(api.finished(&parent, WAIT).await["runtimeStatus"], "Failed");
    // (The second child may still be running when the first failure ends the parent.)
    let deadline = Instant::now() + WAIT;
    while warehouse.keys.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "both children did not call the warehouse");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    warehouse.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let (code, body) = api.post(&format!("instances/{parent}/rewind?reason=back%20again"), None).await;
    assert_eq!(code, 202, "{body}");
    let done = api.reaches(&parent, "Completed", WAIT).await;
    let orders: Vec<&str> = done["output"].as_array().unwrap().iter().map(|o| o["quote"].as_str().unwrap()).collect();
    assert_eq!(orders, ["1 x rice at 4.20", "2 x oats at 4.20"], "{done}");
    assert_eq!(host.count("quoting a restock"), 3, "a quote ran again:\n{}", host.console());
    assert_eq!(warehouse.keys.lock().unwrap().len(), 6, "each child ordered once more");
}
