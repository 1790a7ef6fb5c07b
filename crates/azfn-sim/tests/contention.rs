//! Contention between workers (issue 27, defect 8), on the engine's own dispatcher over in-memory
//! storage:
//! - a hot entity: the operations that wait for one entity in a process are applied together in
//!   one write, so one entity takes many operations per write, and two processes writing the same
//!   row still apply each operation exactly once;
//! - a wide fan-out: once its calls went out, another worker that handles a retried message for the
//!   instance does not send them again.

mod common;

use std::sync::Arc;

use azfn::durable::entity::EntityRequest;
use azfn::durable::{
    ActivityContext, ControlMessage, Dispatcher, DurableClient, EntityId, EntityOp, Event, OrchestrationContext,
    Registry, TaskError, join_all,
};
use azfn::storage::memory::{Fault, Faults, MemoryStorage};
use azfn_sim::worker;
use common::{epoch, runtime};
use serde_json::{Value, json};

fn counter(n: &mut i64, op: &EntityOp) -> Result<Value, String> {
    match op.name.as_str() {
        "add" => {
            *n += op.input::<i64>()?;
            Ok(Value::Null)
        }
        other => Err(format!("no operation {other}")),
    }
}

/// Every storage call takes 2 ms, as a round trip to the service does: operations that arrive
/// meanwhile wait for the entity.
#[derive(Debug)]
struct RoundTrip;

impl Faults for RoundTrip {
    fn decide(&self, _what: &str) -> Fault {
        Fault::Delay(std::time::Duration::from_millis(2))
    }
}

fn signal(entity: &EntityId, n: usize) -> ControlMessage {
    let request =
        EntityRequest { id: format!("op{n}"), operation: "add".into(), input: json!(1), ..Default::default() };
    ControlMessage::entity(&entity.instance_id(), request, None)
}

/// A worker process: its own hub (over its own link to `storage`) and dispatcher.
fn worker(storage: &MemoryStorage, registry: &Arc<Registry>) -> Arc<Dispatcher> {
    let hub = worker::hub(&storage.link(Arc::new(RoundTrip), worker::retry_policy()), chrono::Duration::zero());
    Arc::new(Dispatcher::new(hub, registry.clone()))
}

#[test]
fn one_hot_entity_applies_waiting_operations_in_one_write_on_every_worker() {
    runtime().block_on(async {
        let _clock = azfn::durable::clock::simulate(epoch(), 1);
        let storage = MemoryStorage::new(epoch());
        let registry = Arc::new(Registry::new().entity("Counter", counter));
        // Two worker processes, each with its own hub and cache over the same account.
        let workers: Vec<Arc<azfn::durable::Dispatcher>> = (0..2)
            .map(|_| {
                let hub =
                    worker::hub(&storage.link(Arc::new(RoundTrip), worker::retry_policy()), chrono::Duration::zero());
                Arc::new(azfn::durable::Dispatcher::new(hub, registry.clone()))
            })
            .collect();
        workers[0].hub().ensure_created().await.unwrap();
        let hot = EntityId::new("Counter", "hot");
        let before = storage.calls();
        // 400 operations delivered at once, half to each worker, 16 at a time per worker as the
        // host's queue trigger hands them over.
        let mut handles = Vec::new();
        for (w, dispatcher) in workers.iter().enumerate() {
            for lane in 0..16 {
                let dispatcher = dispatcher.clone();
                let hot = hot.clone();
                handles.push(tokio::spawn(async move {
                    for n in (lane..200).step_by(16) {
                        dispatcher.control(signal(&hot, w * 200 + n), 1).await.expect("applied");
                    }
                }));
            }
        }
        for h in handles {
            h.await.unwrap();
        }
        // A redelivered operation changes nothing.
        workers[1].control(signal(&hot, 7), 2).await.unwrap();
        let calls = storage.calls() - before;
        let client = DurableClient::new(workers[0].hub().clone(), registry.clone());
        let view = client.entity_state(&hot).await.unwrap().expect("the entity exists");
        assert_eq!(view.state, json!(400), "every operation applied exactly once");
        // One by one, each operation costs a read and a write of the row (800 calls); applied in
        // batches, a few dozen writes take them all.
        assert!(calls < 200, "{calls} storage calls for 400 operations on one entity");
    });
}

#[test]
fn a_retry_on_another_worker_does_not_send_a_wide_fan_out_again() {
    runtime().block_on(async {
        let _clock = azfn::durable::clock::simulate(epoch(), 2);
        let storage = MemoryStorage::new(epoch());
        let registry = Arc::new(
            Registry::new()
                .activity("Echo", |_ctx: ActivityContext, n: i64| async move { Ok::<_, String>(n) })
                .orchestrator("FanOut", |ctx: OrchestrationContext, width: i64| async move {
                    let calls: Vec<_> = (0..width).map(|i| ctx.call_activity::<i64>("Echo", i)).collect();
                    let mut sum = 0;
                    for r in join_all(calls).await {
                        sum += r?;
                    }
                    Ok::<_, TaskError>(sum)
                }),
        );
        let (a, b) = (worker(&storage, &registry), worker(&storage, &registry));
        // Worker A starts a fan-out of 100 in place and sends its calls (not run here).
        let client = DurableClient::with_dispatcher(a.clone(), registry.clone());
        let id = client.start("FanOut", Some("wide"), json!(100)).await.unwrap();
        let work_queue = a.hub().work_queue();
        let sent = storage.queue_contents(&work_queue).len();
        assert!(sent > 0, "the calls went out");
        // Worker B gets a retried message for the instance (as after a crash or a lost answer
        // elsewhere): it re-sends what the status row lists as unsent.
        let (status, _) = a.hub().store().status(&id).await.unwrap().expect("stored");
        let start = Event::ExecutionStarted { name: "FanOut".into(), input: json!(100), parent: None, version: None };
        let mut retried = ControlMessage::event(&id, Some(&status.execution_id), start);
        retried.recover = true;
        b.control(retried, 2).await.unwrap();
        let after = storage.queue_contents(&work_queue).len();
        assert_eq!(after, sent, "worker B sent {} work messages again", after - sent);
    });
}

#[test]
fn a_large_entity_state_lives_in_one_blob_and_the_row_stays_small() {
    // Issue 27, defect 5: the state was kept in the row, which holds 1 MiB.
    runtime().block_on(async {
        let _clock = azfn::durable::clock::simulate(epoch(), 7);
        let storage = MemoryStorage::new(epoch());
        let registry = Arc::new(Registry::new().entity("Text", |text: &mut String, op: &EntityOp| {
            match op.name.as_str() {
                "set" => *text = "x".repeat(op.input::<usize>()?),
                "touch" => {}
                other => return Err(format!("no operation {other}")),
            }
            Ok(Value::Null)
        }));
        let w = worker(&storage, &registry);
        w.hub().ensure_created().await.unwrap();
        let text = EntityId::new("Text", "big");
        let op = |n: usize, operation: &str, input: Value| {
            let request =
                EntityRequest { id: format!("t{n}"), operation: operation.into(), input, ..Default::default() };
            ControlMessage::entity(&text.instance_id(), request, None)
        };
        let container = w.hub().large_container();
        let client = DurableClient::new(w.hub().clone(), registry.clone());
        for (n, size) in [(1, 2_000_000), (2, 1_500_000)] {
            w.control(op(n, "set", json!(size)), 1).await.unwrap();
            let view = client.entity_state(&text).await.unwrap().expect("exists");
            assert_eq!(view.state.as_str().map(str::len), Some(size));
            assert_eq!(storage.blob_names(&container).len(), 1, "the former state's blob is deleted");
        }
        // An operation that leaves the state as it is writes no new blob.
        w.control(op(3, "touch", Value::Null), 1).await.unwrap();
        assert_eq!(storage.blob_names(&container).len(), 1);
        let (row, _) = w.hub().store().load_entity(&text.instance_id()).await.unwrap().unwrap();
        assert!(serde_json::to_vec(&row).unwrap().len() < 4096, "the row holds a reference, not the state");
        // Deleting the entity deletes its state and its blob.
        w.control(op(4, "delete", Value::Null), 1).await.unwrap();
        assert!(client.entity_state(&text).await.unwrap().is_none(), "deleted");
        assert!(storage.blob_names(&container).is_empty(), "{:?}", storage.blob_names(&container));
    });
}
