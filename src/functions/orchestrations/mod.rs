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
//! - [`circuit_breaker`]: the `CircuitBreaker` entity that guards `ChargePayment`.
//! - [`transfer_funds`]: `Account` entities, and `TransferFunds`, which locks two of them.
//! - [`confirm_order`]: `ConfirmOrder`, an orchestrator registered in two versions.
//! - [`restock`]: `Restock`, which calls a warehouse service over HTTP, and is rewound after its
//!   outage; `RestockAll`, a `Restock` sub-orchestration per item.

pub mod approval_workflow;
pub mod circuit_breaker;
pub mod confirm_order;
pub mod countdown;
pub mod counter;
pub mod fan_out_fan_in;
pub mod hello_sequence;
pub mod place_order_saga;
pub mod place_orders;
pub mod restock;
pub mod transfer_funds;

use azfn::durable::Registry;

/// The app setting that serves the app as an earlier release: `ORDERS_RELEASE=1` leaves out
/// version 2 of `ConfirmOrder`, so that two `cargo azfn start` hosts, one with it and one
/// without, play a rolling deploy locally (`tests/durable.rs` does).
pub const RELEASE_SETTING: &str = "ORDERS_RELEASE";

/// Every orchestrator and activity of the app.
pub fn registry() -> Registry {
    registry_of_release(std::env::var(RELEASE_SETTING).is_ok_and(|r| r.trim() == "1"))
}

/// The app's registry, as its first release had it (`first_release`) or as it is now.
pub fn registry_of_release(first_release: bool) -> Registry {
    let registry = Registry::new().orchestrator_version("ConfirmOrder", "1", confirm_order::confirm_order_v1);
    let registry = if first_release {
        registry
    } else {
        registry.orchestrator_version("ConfirmOrder", "2", confirm_order::confirm_order_v2)
    };
    registry
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
        .entity("CircuitBreaker", circuit_breaker::circuit_breaker)
        .entity("Account", transfer_funds::account)
        .orchestrator("TransferFunds", transfer_funds::transfer_funds)
        .orchestrator("Restock", restock::restock)
        .orchestrator("RestockAll", restock::restock_all)
        .activity("QuoteRestock", restock::quote_restock)
        .activity("OrderFromWarehouse", restock::order_from_warehouse)
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
        assert!(run.child_history("test:0:0001").is_some());

        let run = OrchestrationTest::new(registry()).run("FanOutFanIn", 100).await;
        assert_eq!((run.output(), run.custom_status()), (Some(&json!(5050)), &json!("summed 100 results")));

        let start = OrchestrationTest::new(registry()).start_time("2026-03-01T00:00:00Z".parse().unwrap());
        let run = start.run("Countdown", json!({"remaining": 3, "intervalMs": 60_000, "counter": "ticks"})).await;
        assert_eq!(run.output(), Some(&json!("liftoff")));
        assert_eq!(run.entity_state(&azfn::durable::EntityId::new("Counter", "ticks")), Some(&json!(3)));
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

    #[tokio::test]
    async fn the_payment_circuit_breaker_opens_fails_fast_and_closes_again() {
        use azfn::durable::EntityId;
        let breaker = EntityId::new("CircuitBreaker", "payments");
        let order = |id: &str, card: &str| json!({"orderId": id, "card": card, "breaker": {"threshold": 3, "coolDownSeconds": 30}});
        let mut run = OrchestrationTest::new(registry()).run("PlaceOrderSaga", order("o-0", "4111")).await;
        assert_eq!(run.output().unwrap()["status"], "shipped");
        // Three failures of the payment service open it (a declined card does not count).
        run.start_another("d-1", "PlaceOrderSaga", order("d-1", "declined")).await;
        for i in 1..=3 {
            let id = format!("o-{i}");
            run.start_another(&id, "PlaceOrderSaga", order(&id, "unavailable")).await;
            assert_eq!(run.output_of(&id).unwrap()["status"], "cancelled");
        }
        assert_eq!(run.entity_state(&breaker).unwrap()["failures"], 3);
        // Open: the next order is cancelled without trying the service.
        let charges = |run: &azfn::durable::testing::TestRun| {
            run.activity_calls().iter().filter(|(n, _)| n == "ChargePayment").count()
        };
        let before = charges(&run);
        run.start_another("o-4", "PlaceOrderSaga", order("o-4", "4111")).await;
        assert_eq!(run.output_of("o-4").unwrap()["status"], "cancelled");
        assert!(run.output_of("o-4").unwrap()["reason"].as_str().unwrap().contains("circuit open"));
        assert_eq!(charges(&run), before, "failed fast");
        // After the cool-down one trial goes through; its success closes the breaker.
        run.advance(Duration::from_secs(30)).await;
        run.start_another("o-5", "PlaceOrderSaga", order("o-5", "4111")).await;
        assert_eq!(run.output_of("o-5").unwrap()["status"], "shipped");
        run.start_another("o-6", "PlaceOrderSaga", order("o-6", "4111")).await;
        assert_eq!(run.output_of("o-6").unwrap()["status"], "shipped");
        assert_eq!(run.entity_state(&breaker).unwrap()["failures"], 0);
        assert_eq!(run.entity_state(&breaker).unwrap()["openedAt"], Value::Null);
    }

    #[tokio::test]
    async fn transfers_move_money_under_locks_and_refuse_overdrafts() {
        use azfn::durable::EntityId;
        let (alice, bob) = (EntityId::new("Account", "alice"), EntityId::new("Account", "bob"));
        let mut run = OrchestrationTest::new(registry()).run("HelloSequence", ["Oslo"]).await;
        run.signal_entity(&alice, "deposit", 100).await;
        run.signal_entity(&alice, "withdraw", 500).await;
        run.signal_entity(&alice, "deposit", -5).await;
        assert_eq!(run.entity_state(&alice), Some(&json!(100)), "an overdraft and a negative deposit are refused");

        let transfer = |amount: i64| json!({"from": "alice", "to": "bob", "amount": amount});
        run.start_another("t-1", "TransferFunds", transfer(30)).await;
        assert_eq!(run.output_of("t-1"), Some(&json!({"status": "transferred", "from": 70, "to": 30})));
        run.start_another("t-2", "TransferFunds", transfer(71)).await;
        assert_eq!(run.output_of("t-2").unwrap()["status"], "refused");
        assert_eq!((run.entity_state(&alice), run.entity_state(&bob)), (Some(&json!(70)), Some(&json!(30))));
        assert_eq!((run.entity_locked_by(&alice), run.entity_locked_by(&bob)), (None, None), "both released");
        run.start_another("t-3", "TransferFunds", json!({"from": "bob", "to": "bob", "amount": 1})).await;
        assert_eq!(run.status_of("t-3"), Some(Status::Failed));
        run.start_another("t-4", "TransferFunds", transfer(0)).await;
        assert_eq!(run.status_of("t-4"), Some(Status::Failed));
    }

    /// The circuit breaker changed `PlaceOrderSaga`: it now asks the breaker before charging. The
    /// replay check catches that against histories recorded before the change (kept in
    /// `tests/fixtures/histories-before-circuit-breaker/`), naming the step: instances in flight
    /// during such a deployment would fail, so a change like this needs a new orchestrator name.
    #[test]
    fn a_breaking_change_is_caught_against_histories_recorded_before_it() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/histories-before-circuit-breaker/place_order_saga_declined.json");
        let recorded: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let err = replay_check(&registry(), &recorded).unwrap_err();
        let azfn::durable::testing::ReplayCheckError::Diverged(d) = &err else { panic!("{err}") };
        assert_eq!(d.step, 1);
        assert_eq!(d.expected, "a call to activity `ChargePayment`");
        assert_eq!(d.found.as_deref(), Some("a call of `allow` on entity @CircuitBreaker@payments"));
    }

    /// `ConfirmOrder` runs each instance on the version it started with; new starts take the
    /// newest. Version 2's new first step is a change version 1's recorded histories do not
    /// replay: registered as an edit of version 1, the replay check refuses it and says to register
    /// it as a new version.
    #[tokio::test]
    async fn confirm_order_versions_keep_their_steps() {
        use azfn::durable::Registry;
        let mut run = OrchestrationTest::new(registry()).start("ConfirmOrder", json!({"customer": "Ada"})).await;
        run.raise_event("Confirm", 3).await;
        assert_eq!(run.output(), Some(&json!({"version": "2", "units": 3, "greeting": "Hello Ada!"})));

        let first = super::registry_of_release(true);
        let mut run = OrchestrationTest::new(first).start("ConfirmOrder", json!({"customer": "Ada"})).await;
        run.raise_event("Confirm", 3).await;
        assert_eq!(run.output(), Some(&json!({"version": "1", "greeting": "Hello Ada!"})));
        let recorded = serde_json::to_value(run.history()).unwrap();
        replay_check(&registry(), &recorded).expect("version 1's history replays on version 1's code");

        let edited = Registry::new()
            .orchestrator_version("ConfirmOrder", "1", super::confirm_order::confirm_order_v2)
            .activity("SayHello", super::hello_sequence::say_hello)
            .activity("Number", super::fan_out_fan_in::number);
        let err = replay_check(&edited, &recorded).unwrap_err().to_string();
        assert!(err.contains("step 0: the history has a call to activity `SayHello`"), "{err}");
        assert!(err.contains("register the changed code as a new version"), "{err}");
        // The same with the history recorded from a real run of version 1 (tests/fixtures/histories).
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/histories/confirm_order_v1.json");
        let real: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(real["version"], "1");
        replay_check(&registry(), &real).expect("replays on version 1's code");
        assert!(replay_check(&edited, &real).unwrap_err().to_string().contains("new version"));
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
