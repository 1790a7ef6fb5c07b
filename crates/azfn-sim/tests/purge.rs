//! Purge (issue 27, defect 10): a purge that meets a restart of the same id keeps the restarted
//! instance, and a finished instance whose messages to entities are not all sent is not purged.

mod common;

use std::sync::Arc;
use std::time::Duration;

use azfn::durable::{Dispatcher, DurableClient, InstanceStatus, OrchestrationContext, Purge, Registry, RuntimeStatus};
use azfn::storage::memory::{Fault, Faults, MemoryStorage, NoFaults};
use azfn_sim::worker;
use common::{epoch, runtime};
use serde_json::json;

/// Deletes take 10 ms to reach the table; everything else is at once.
#[derive(Debug)]
struct SlowDeletes;

impl Faults for SlowDeletes {
    fn decide(&self, what: &str) -> Fault {
        if what.starts_with("delete ") || what.starts_with("transaction") {
            Fault::Delay(Duration::from_millis(10))
        } else {
            Fault::None
        }
    }
}

#[test]
fn a_purge_that_meets_a_restart_of_the_same_id_keeps_the_restarted_instance() {
    runtime().block_on(async {
        let _clock = azfn::durable::clock::simulate(epoch(), 4);
        let storage = MemoryStorage::new(epoch());
        let registry = Arc::new(
            Registry::new()
                .orchestrator("Quick", |_ctx: OrchestrationContext, n: i64| async move { Ok::<_, String>(n) }),
        );
        let process = |faults: Arc<dyn Faults>| {
            let hub = worker::hub(&storage.link(faults, worker::retry_policy()), chrono::Duration::zero());
            DurableClient::with_dispatcher(Arc::new(Dispatcher::new(hub, registry.clone())), registry.clone())
        };
        let (purger, restarter) = (process(Arc::new(SlowDeletes)), process(Arc::new(NoFaults)));
        let id = restarter.start("Quick", Some("p"), json!(1)).await.unwrap();
        let first = restarter.status(&id, false).await.unwrap().status;
        assert_eq!(first.runtime_status, RuntimeStatus::Completed);

        // The purge reads the finished instance, and its deletes are on their way when the
        // restart replaces it (and runs it to its end again).
        let (purged, restarted) = tokio::join!(purger.purge(&id), async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            restarter.restart(&id, false).await
        });
        assert_eq!(restarted.unwrap(), id);
        let error = purged.expect_err("the purge must not delete the restarted instance").to_string();
        assert!(error.contains("started again"), "{error}");
        let now = restarter.status(&id, false).await.expect("the restarted instance is kept").status;
        assert_ne!(now.execution_id, first.execution_id);
        assert_eq!(now.runtime_status, RuntimeStatus::Completed);

        // Purged for good once nothing else happens.
        purger.purge(&id).await.unwrap();
        assert!(restarter.status(&id, false).await.is_err());
    });
}

#[test]
fn a_finished_instance_with_unsent_entity_messages_is_not_purged() {
    runtime().block_on(async {
        let _clock = azfn::durable::clock::simulate(epoch(), 5);
        let storage = MemoryStorage::new(epoch());
        let hub = worker::hub(&storage.link(Arc::new(NoFaults), worker::retry_policy()), chrono::Duration::zero());
        hub.ensure_created().await.unwrap();
        // Ended while its critical section's release (action 3) was still to be sent.
        let mut status = InstanceStatus::new("Locker", "l", json!(null), None, epoch());
        status.runtime_status = RuntimeStatus::Completed;
        status.unsent = vec![3];
        hub.store().commit(&mut status, None, &[], &[], &[]).await.unwrap();
        assert_eq!(hub.store().purge("l").await.unwrap(), Purge::Unsent(1));
        let client = DurableClient::new(hub.clone(), Arc::new(Registry::new()));
        let error = client.purge("l").await.unwrap_err();
        assert_eq!(error.status(), 409, "{error}");

        // Once sent (the next commit takes it off the list), the purge goes through.
        let (mut status, etag) = hub.store().status("l").await.unwrap().unwrap();
        status.unsent.clear();
        hub.store().commit(&mut status, Some(&etag), &[], &[], &[]).await.unwrap();
        assert_eq!(hub.store().purge("l").await.unwrap(), Purge::Deleted(1));
        assert_eq!(hub.store().purge("l").await.unwrap(), Purge::Missing);
    });
}
