//! The built-in Functions host: what `cargo azfn start` uses to run an app without Core Tools.
//!
//! Building blocks, pure and unit-tested:
//! - [`invocation`]: building invocation payloads exactly as the real host does.
//! - [`response`]: applying the handler's answer (outputs, `res`, logs) exactly as the real host does.
//! - [`routes`]: HTTP route templates with constraints, in the host's order, 404.
//! - [`expressions`]: binding expressions (`{name}`, `{a.b}`, `{rand-guid}`, `{datetime:format}`, `{sys.*}`).
//! - [`schedule`]: NCRONTAB and interval schedules for timer triggers (from `azfn::schedule`, which durable schedules share).
//! - [`settings`]: `local.settings.json` with the environment winning.
//!
//! The running host:
//! - [`start`]: `cargo azfn start`: build, staging, Core Tools or the built-in host, wiring, shutdown.
//! - [`watch`]: `--watch`: the app's source changes, debounced.
//! - [`worker`]: the handler process: port, environment, readiness polling, restart rules.
//! - [`invoker`]: one invocation: inputs, POST to the handler, outputs, console line.
//! - [`bindings`]: storage for inputs and outputs, and the queue wake-up signal.
//! - [`front`]: the HTTP front end: HTTP triggers, the admin endpoint, the status page.
//! - [`keys`]: function keys, enforced under `--keys` as in Azure.
//! - [`cors`]: local.settings.json's `Host.CORS`, as Core Tools applies it.
//! - [`event_grid_webhook`]: `/runtime/webhooks/eventgrid`, where Event Grid delivers events.
//! - [`queue_listener`], [`blob_listener`], [`timer_listener`]: the non-HTTP triggers.
//! - [`blob_events`]: Event Grid's blob events for the local storage account (`AZFN_BLOB_EVENTS`).
//! - [`retry_policy`]: host.json / function.json `retry`, applied by the invoker.
//! - [`azurite`]: starting Azurite for `UseDevelopmentStorage=true`.
//! - [`console`]: the console lines.

pub mod azurite;
pub mod bindings;
pub mod blob_events;
pub mod blob_listener;
pub mod console;
pub mod cors;
pub mod event_grid_webhook;
pub mod expressions;
pub mod front;
pub mod invocation;
pub mod invoker;
pub mod keys;
pub mod queue_listener;
pub mod response;
pub mod retry_policy;
pub mod routes;
pub use azfn::schedule;
pub mod settings;
pub mod start;
#[cfg(test)]
mod test_support;
pub mod timer_listener;
pub mod watch;
pub mod worker;

/// A number in [0, 1) from a fresh UUID: enough randomness for back-off jitter.
pub(crate) fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0
}
