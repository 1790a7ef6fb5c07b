//! A control message that keeps failing (issue 27, defect 10): each failed delivery after the
//! first is recorded on the instance (`last_error`, `lastError` in the API), so an instance whose
//! message the host parked in the poison queue shows why it waits; the next episode clears it.

mod common;

use std::sync::Arc;

use azfn::durable::{
    ActivityContext, ControlMessage, Dispatcher, DurableClient, Event, OrchestrationContext, Registry,
};
use azfn::storage::memory::{Fault, Faults, MemoryStorage, NoFaults};
use azfn_sim::worker;
use serde_json::json;

/// The work queue is down: every send to it is refused (503).
#[derive(Debug)]
struct WorkQueueDown;

impl Faults for WorkQueueDown {
    fn decide(&self, what: &str) -> Fault {
        if what.starts_with("send to queue") && what.ends_with("-work") { Fault::Unavailable } else { Fault::None }
    }
}

#[test]
fn a_failing_message_is_recorded_on_its_instance_and_cleared_by_the_next_episode() {
    common::runtime().block_on(async {
        let epoch = common::epoch();
        let _clock = azfn::durable::clock::simulate(epoch, 3);
        let storage = MemoryStorage::new(epoch);
        let registry = Arc::new(
            Registry::new()
                .activity("Echo", |_ctx: ActivityContext, n: i64| async move { Ok::<_, String>(n) })
                .orchestrator("One", |ctx: OrchestrationContext, n: i64| async move {
                    ctx.call_activity::<i64>("Echo", n).await
                }),
        );
        let worker = |faults: Arc<dyn Faults>| {
            let hub = worker::hub(&storage.link(faults, worker::retry_policy()), chrono::Duration::zero());
            // Every activity call through the work queue (no local chain).
            Arc::new(Dispatcher::new(hub, registry.clone()).with_chain_budget(std::time::Duration::ZERO))
        };
        let broken = worker(Arc::new(WorkQueueDown));
        let client = DurableClient::new(broken.hub().clone(), registry.clone());
        let id = client.start("One", Some("stuck"), json!(1)).await.unwrap();
        let (status, _) = broken.hub().store().status(&id).await.unwrap().expect("stored");
        let start = Event::ExecutionStarted { name: "One".into(), input: json!(1), parent: None, version: None };
        let msg = ControlMessage::event(&id, Some(&status.execution_id), start);

        // First delivery: the episode commits, its call cannot be sent; nothing is recorded yet.
        assert!(broken.control(msg.clone(), 1).await.is_err());
        assert_eq!(client.status(&id, false).await.unwrap().status.last_error, None);
        // Second delivery fails the same way: now the instance says so.
        let error = broken.control(msg.clone(), 2).await.unwrap_err().to_string();
        let recorded = client.status(&id, false).await.unwrap().status.last_error.expect("recorded");
        assert!(
            recorded.contains(&msg.id) && recorded.contains("delivery 2") && recorded.contains(&error),
            "{recorded}"
        );

        // Once the cause is gone, a redelivery (a redrive from the poison queue) goes through.
        let fixed = worker(Arc::new(NoFaults));
        fixed.control(msg.clone(), 6).await.unwrap();
        let view = client.status(&id, false).await.unwrap();
        assert_eq!(view.status.last_error, None, "cleared once a delivery goes through");
        assert_eq!(storage.queue_contents(&fixed.hub().work_queue()).len(), 1, "the call went out");
    });
}
