//! The orders app's orchestrations and their activities, served by `App::durable`: started with
//! `POST api/orchestrators/{name}`, watched with `GET api/orchestrators/instances/{id}`.
//!
//! - [`hello_sequence`]: `HelloSequence`, five `SayHello` calls in a row.
//! - [`fan_out_fan_in`]: `FanOutFanIn`, n parallel `Number` calls, summed.
//! - [`place_order_saga`]: `PlaceOrderSaga`, reserve, charge, ship, with compensation.
//! - [`approval_workflow`]: `ApprovalWorkflow`, an event or a timeout.
//! - [`place_orders`]: `PlaceOrders`, a `PlaceOrderSaga` sub-orchestration per order.
//! - [`countdown`]: `Countdown`, timers and `continue_as_new`.
//! - [`counter`]: the `Counter` entity, and `CountTo`, which signals and calls it.

pub mod approval_workflow;
pub mod countdown;
pub mod counter;
pub mod fan_out_fan_in;
pub mod hello_sequence;
pub mod place_order_saga;
pub mod place_orders;

use azfn::durable::Registry;

/// Every orchestrator and activity of the app.
pub fn registry() -> Registry {
    Registry::new()
        .orchestrator("HelloSequence", hello_sequence::hello_sequence)
        .activity("SayHello", hello_sequence::say_hello)
        .orchestrator("FanOutFanIn", fan_out_fan_in::fan_out_fan_in)
        .activity("Number", fan_out_fan_in::number)
        .orchestrator("PlaceOrderSaga", place_order_saga::place_order_saga)
        .activity("ReserveInventory", place_order_saga::reserve_inventory)
        .activity("ChargePayment", place_order_saga::charge_payment)
        .activity("ShipOrder", place_order_saga::ship_order)
        .activity("ReleaseInventory", place_order_saga::release_inventory)
        .orchestrator("ApprovalWorkflow", approval_workflow::approval_workflow)
        .orchestrator("PlaceOrders", place_orders::place_orders)
        .orchestrator("Countdown", countdown::countdown)
        .entity("Counter", counter::counter)
        .orchestrator("CountTo", counter::count_to)
}

/// The orchestrations run in process with `azfn::durable::testing`: no storage, a clock of the
/// test's own, stubs where a test wants a failure.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use azfn::durable::testing::{OrchestrationTest, Status, Timers, replay_check};
    use serde_json::{Value, json};

    use super::registry;

    #[tokio::test]
    async fn the_saga_ships_or_compensates_in_reverse() {
        let order = json!({"orderId": "o-1", "card": "4111", "sku": "s-1", "quantity": 1});
        let run = OrchestrationTest::new(registry()).run("PlaceOrderSaga", &order).await;
        assert_eq!(run.output().unwrap()["status"], "shipped");
        let names: Vec<&str> = run.activity_calls().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ReserveInventory", "ChargePayment", "ShipOrder"]);

        // Shipping fails (a stub): the charge and the reservation are compensated, in reverse.
        let run = OrchestrationTest::new(registry())
            .stub_activity("ShipOrder", |_| Err("the carrier is down".to_owned()))
            .run("PlaceOrderSaga", &order)
            .await;
        assert_eq!(run.status(), Status::Completed);
        assert_eq!(run.output().unwrap()["status"], "cancelled", "{run:?}");
        let names: Vec<&str> = run.activity_calls().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["ReserveInventory", "ChargePayment", "ShipOrder"]);
        assert!(names.contains(&"ReleaseInventory"), "{names:?}");
    }

    #[tokio::test]
    async fn approval_waits_for_the_event_or_the_timeout() {
        let on_demand = || OrchestrationTest::new(registry()).timers(Timers::OnDemand);
        let mut run = on_demand().start("ApprovalWorkflow", json!({"timeoutSeconds": 600})).await;
        assert_eq!((run.status(), run.custom_status()), (Status::Running, &json!("waiting for approval")));
        run.advance(Duration::from_secs(599)).await;
        assert_eq!(run.status(), Status::Running);
        run.raise_event("Approval", true).await;
        assert_eq!(run.output().unwrap()["status"], "approved");

        let mut run = on_demand().start("ApprovalWorkflow", json!({"timeoutSeconds": 600})).await;
        run.advance(Duration::from_secs(600)).await;
        assert_eq!(run.output(), Some(&json!({"status": "timedOut"})));
        assert_eq!(run.custom_status(), &json!("timed out"));
    }

    #[tokio::test]
    async fn sub_orchestrations_fan_out_and_continue_as_new() {
        let orders = json!([{"orderId": "b-1", "card": "4111"}, {"orderId": "b-2", "card": "declined"}]);
        let run = OrchestrationTest::new(registry()).run("PlaceOrders", orders).await;
        assert_eq!(run.output(), Some(&json!({"shipped": ["b-1"], "cancelled": ["b-2"]})));
        assert!(run.child_history("test:0001").is_some());

        let run = OrchestrationTest::new(registry()).run("FanOutFanIn", 100).await;
        assert_eq!((run.output(), run.custom_status()), (Some(&json!(5050)), &json!("summed 100 results")));

        let start = OrchestrationTest::new(registry()).start_time("2026-03-01T00:00:00Z".parse().unwrap());
        let run = start.run("Countdown", json!({"remaining": 3, "intervalMs": 60_000})).await;
        assert_eq!(run.output(), Some(&json!("liftoff")));
        assert_eq!(run.now().to_rfc3339(), "2026-03-01T00:03:00+00:00", "three timers of a minute");
    }

    #[tokio::test]
    async fn the_counter_adds_resets_and_refuses_what_it_does_not_know() {
        use azfn::durable::EntityId;
        let counter = EntityId::new("Counter", "c");
        let mut run = OrchestrationTest::new(registry()).run("HelloSequence", ["Oslo"]).await;
        assert_eq!(run.entity_state(&counter), None);
        for _ in 0..3 {
            run.signal_entity(&counter, "add", 2).await;
        }
        assert_eq!(run.entity_state(&counter), Some(&json!(6)));
        run.signal_entity(&counter, "add", "two").await;
        run.signal_entity(&counter, "fly", json!(null)).await;
        assert_eq!(run.entity_state(&counter), Some(&json!(6)), "failed operations change nothing");
        run.signal_entity(&counter, "reset", json!(null)).await;
        assert_eq!(run.entity_state(&counter), Some(&json!(0)));
        run.signal_entity(&counter, "delete", json!(null)).await;
        assert_eq!(run.entity_state(&counter), None);

        let run = OrchestrationTest::new(registry()).run("CountTo", json!({"key": "c", "adds": 7})).await;
        assert_eq!(run.output(), Some(&json!(7)));
    }

    /// Histories recorded from real runs under `cargo azfn start` (`GET
    /// .../instances/{id}?showHistory=true`, saved in `tests/fixtures/histories/`) replay with the
    /// current code: a change to an orchestrator that would break the instances in flight fails here.
    #[test]
    fn recorded_histories_replay_with_the_current_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/histories");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let recorded: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            replay_check(&registry(), &recorded).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
        assert!(checked >= 5, "{checked} histories in {}", dir.display());
    }
}
