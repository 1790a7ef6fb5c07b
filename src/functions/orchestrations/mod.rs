//! The orders app's orchestrations and their activities, served by `App::durable`: started with
//! `POST api/orchestrators/{name}`, watched with `GET api/orchestrators/instances/{id}`.
//!
//! - [`hello_sequence`]: `HelloSequence`, five `SayHello` calls in a row.
//! - [`fan_out_fan_in`]: `FanOutFanIn`, n parallel `Number` calls, summed.
//! - [`place_order_saga`]: `PlaceOrderSaga`, reserve, charge, ship, with compensation.
//! - [`approval_workflow`]: `ApprovalWorkflow`, an event or a timeout.
//! - [`place_orders`]: `PlaceOrders`, a `PlaceOrderSaga` sub-orchestration per order.
//! - [`countdown`]: `Countdown`, timers and `continue_as_new`.

pub mod approval_workflow;
pub mod countdown;
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
}
