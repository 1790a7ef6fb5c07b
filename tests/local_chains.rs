//! Local chains and batched results (ADR 0003) on a real Azurite, with dispatchers in this process
//! standing for handler processes: a sequence runs without the work queue, a chain cut short by a
//! crash is finished from the message that started it, a start takes its guard back, and a fan-in's
//! results share commits.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use azfn::durable::{
    ActivityContext, ControlMessage, Dispatcher, DurableClient, OrchestrationContext, Registry, RuntimeStatus,
    TaskError, WorkMessage,
};
use azfn::storage::QueueClient;
use common::azurite::Azurite;
use serde_json::{Value, json};

/// While set, `Step(2)` never finishes: the process running it "crashes" there.
static STALL_STEP_TWO: AtomicBool = AtomicBool::new(false);
/// How many times `Step` ran, per hub (each test uses its own hub, so they can run in parallel).
static STEPS_RUN: AtomicUsize = AtomicUsize::new(0);

async fn three_steps(ctx: OrchestrationContext, _: Value) -> Result<Vec<u64>, TaskError> {
    let mut out = Vec::new();
    for n in 1..=3u64 {
        out.push(ctx.call_activity("Step", n).await?);
    }
    Ok(out)
}

async fn fan_out(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
    let calls: Vec<_> = (1..=n).map(|k| ctx.call_activity::<u64>("Add", k)).collect();
    let results = azfn::durable::join_all(calls).await;
    results.into_iter().sum()
}

async fn step(_ctx: ActivityContext, n: u64) -> Result<u64, String> {
    STEPS_RUN.fetch_add(1, Ordering::SeqCst);
    if n == 2 && STALL_STEP_TWO.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    Ok(n * 10)
}

async fn add(_ctx: ActivityContext, n: u64) -> Result<u64, String> {
    Ok(n)
}

fn registry() -> Arc<Registry> {
    Arc::new(
        Registry::new()
            .orchestrator("ThreeSteps", three_steps)
            .orchestrator("FanOut", fan_out)
            .activity("Step", step)
            .activity("Add", add),
    )
}

async fn completed(client: &DurableClient, id: &str) -> azfn::durable::InstanceView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = client.status(id, true).await.unwrap();
        if view.status.runtime_status.is_terminal() {
            assert_eq!(view.status.runtime_status, RuntimeStatus::Completed, "{:?}", view.status.output);
            let history = serde_json::to_value(&view.history).unwrap();
            common::assert_no_double_completion(id, history.as_array().unwrap());
            return view;
        }
        assert!(Instant::now() < deadline, "{id} did not finish: {:?}", view.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Both tests below stall `Step(2)`; they take turns (the flag is global).
static STALL_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A start runs its sequence in the starting process without touching the work queue, and takes
/// its guard off the control queue once the sequence has completed: both queues end empty.
#[tokio::test]
async fn a_started_sequence_runs_in_place_and_takes_its_guard_back() {
    let _turn = STALL_TURN.lock().await;
    STALL_STEP_TWO.store(false, Ordering::SeqCst);
    let azurite = Azurite::start();
    let hub = common::hub(&azurite, "chainstart").await;
    let dispatcher = Arc::new(Dispatcher::new(hub.clone(), registry()));
    let client = DurableClient::with_dispatcher(dispatcher, registry());
    let id = client.start("ThreeSteps", None, Value::Null).await.unwrap();
    let done = completed(&client, &id).await;
    assert_eq!(done.status.output, json!([10, 20, 30]));
    let queues = QueueClient::new(&azurite.account()).unwrap();
    assert!(queues.peek("chainstart-work", 32).await.unwrap().is_empty(), "no call went through the work queue");
    // The guard (hidden for 10 s) is deleted by the start once the chain has ended.
    let deadline = Instant::now() + Duration::from_secs(5);
    while queues.approximate_count("chainstart-control").await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the start's guard is still queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker runs a sequence's calls one after another in place, then dies in the middle of the
/// second (its invocation is dropped: a crash, as far as storage can tell). The control message
/// that started the chain was never deleted, so the host delivers it again; whether the same
/// process or a fresh one gets it, the call left unsent goes on and the orchestration completes,
/// with each result recorded once and nothing sent through the work queue.
#[tokio::test]
async fn a_local_chain_cut_short_is_finished_from_the_message_that_started_it() {
    let _turn = STALL_TURN.lock().await;
    let azurite = Azurite::start();
    let queues = QueueClient::new(&azurite.account()).unwrap();
    for (hub_name, same_process) in [("chainsame", true), ("chainother", false)] {
        STALL_STEP_TWO.store(true, Ordering::SeqCst);
        let hub = common::hub(&azurite, hub_name).await;
        // A client without a dispatcher sends the start through the control queue.
        let client = DurableClient::new(hub.clone(), registry());
        let id = client.start("ThreeSteps", None, Value::Null).await.unwrap();
        let received = queues.receive(&format!("{hub_name}-control"), 1, Duration::from_secs(30)).await.unwrap();
        let start: ControlMessage = serde_json::from_slice(&received[0].body).unwrap();
        assert!(!start.guard, "the visible message is the start, not its guard");

        let first = Arc::new(Dispatcher::new(hub.clone(), registry()));
        let before = STEPS_RUN.load(Ordering::SeqCst);
        let cut = tokio::time::timeout(Duration::from_secs(2), first.control(start.clone(), 1)).await;
        assert!(cut.is_err(), "the chain stalls in Step(2)");
        assert_eq!(STEPS_RUN.load(Ordering::SeqCst) - before, 2, "Step(1) ran and Step(2) started, in place");
        let view = client.status(&id, true).await.unwrap();
        assert_eq!(view.status.runtime_status, RuntimeStatus::Running);
        assert_eq!(view.status.unsent, vec![1], "Step(2) is committed as scheduled and not sent");
        assert!(queues.peek(&format!("{hub_name}-work"), 32).await.unwrap().is_empty());

        STALL_STEP_TWO.store(false, Ordering::SeqCst);
        let again = if same_process { first.clone() } else { Arc::new(Dispatcher::new(hub.clone(), registry())) };
        again.control(start, 2).await.unwrap();
        let done = completed(&client, &id).await;
        assert_eq!(done.status.output, json!([10, 20, 30]), "{hub_name}");
        assert!(queues.peek(&format!("{hub_name}-work"), 32).await.unwrap().is_empty(), "{hub_name}");
    }
}

/// A start's chain is covered by the start's guard. A call of the chain that outlasts the guard's
/// delay is still running when the guard shows up: the guard then puts a new guard in its place
/// (sending the call would not cover it: this process drops a copy of a call it runs). If the
/// process then dies, the new guard, handled elsewhere, sends the call and the instance completes.
#[tokio::test]
async fn a_guard_that_finds_its_chain_still_running_puts_a_new_guard_in_its_place() {
    let _turn = STALL_TURN.lock().await;
    STALL_STEP_TWO.store(true, Ordering::SeqCst);
    let azurite = Azurite::start();
    let hub = common::hub(&azurite, "chainguard").await;
    let queues = QueueClient::new(&azurite.account()).unwrap();
    let first = Arc::new(Dispatcher::new(hub.clone(), registry()));
    let client = DurableClient::with_dispatcher(first.clone(), registry());
    let id = client.start("ThreeSteps", None, Value::Null).await.unwrap();
    // The chain runs Step(1), then stalls in Step(2), in a task of `first`.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.status(&id, false).await.unwrap().status.unsent != vec![1] {
        assert!(Instant::now() < deadline, "the chain did not reach Step(2)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let execution = client.status(&id, false).await.unwrap().status.execution_id;
    // The guard shows up (built here as the client builds it, rather than waiting 10 s for it).
    let start = azfn::durable::Event::ExecutionStarted {
        name: "ThreeSteps".into(),
        input: Value::Null,
        parent: None,
        version: None,
    };
    let mut guard = ControlMessage::event(&id, Some(&execution), start);
    (guard.guard, guard.recover) = (true, true);
    first.control(guard.clone(), 1).await.unwrap();
    assert!(queues.peek("chainguard-work", 32).await.unwrap().is_empty(), "the running call is not sent");
    assert_eq!(queues.approximate_count("chainguard-control").await.unwrap(), 2, "the start's guard and a new one");

    // The process dies with Step(2) running; the new guard is handled by another one.
    STALL_STEP_TWO.store(false, Ordering::SeqCst);
    let second = Arc::new(Dispatcher::new(hub.clone(), registry()));
    second.control(guard, 1).await.unwrap();
    let done = completed(&client, &id).await;
    assert_eq!(done.status.output, json!([10, 20, 30]));
}

/// The results of a fan-out that arrive while one of them is being applied wait, and the next
/// episode applies them together: 40 results take far fewer than 40 commits (history rows).
#[tokio::test]
async fn a_fan_ins_results_share_commits() {
    let azurite = Azurite::start();
    let hub = common::hub(&azurite, "fanin").await;
    let dispatcher = Arc::new(Dispatcher::new(hub.clone(), registry()));
    let client = DurableClient::with_dispatcher(dispatcher.clone(), registry());
    let id = client.start("FanOut", None, json!(40)).await.unwrap();
    let queues = QueueClient::new(&azurite.account()).unwrap();
    let mut calls = Vec::new();
    while calls.len() < 40 {
        for m in queues.receive("fanin-work", 32, Duration::from_secs(60)).await.unwrap() {
            calls.push(serde_json::from_slice::<WorkMessage>(&m.body).unwrap());
        }
    }
    let runs: Vec<_> = calls
        .into_iter()
        .map(|call| {
            let d = dispatcher.clone();
            tokio::spawn(async move { d.work(call, 1).await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    let done = completed(&client, &id).await;
    assert_eq!(done.status.output, json!(820));
    // Every episode starts with `OrchestratorStarted`: the first one, then one per commit.
    let history = serde_json::to_value(&done.history).unwrap();
    let episodes = history.as_array().unwrap().iter().filter(|e| e["eventType"] == "OrchestratorStarted").count();
    assert!(episodes <= 10, "40 results took {} episodes", episodes - 1);
}
