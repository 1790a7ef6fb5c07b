//! Durable orchestrations: long-running workflows written as plain async Rust, replayed from an
//! event-sourced history (design: `docs/adr/0003-durable-engine.md`).
//!
//! - [`Registry`]: orchestrators (`async fn(OrchestrationContext, I) -> Result<O, E>`) and
//!   activities (`async fn(ActivityContext, I) -> Result<O, E>`) by name.
//! - [`OrchestrationContext`]: activities, sub-orchestrators, timers, external events, retries,
//!   `continue_as_new`, custom status, deterministic `now()` and `new_guid()`.
//! - [`race`], [`join_all`]: racing a timer against an event; fan-out/fan-in.
//! - [`Saga`]: compensations run in reverse order on failure.
//! - [`Execution`]: the replay of one execution's history and its live episodes.
//! - [`history`]: the events.

pub mod context;
pub mod history;
pub mod registry;
pub mod replay;
pub mod saga;
pub mod store;

pub use context::{DurableFuture, Either, EventFuture, OrchestrationContext, RetryPolicy, TaskError, join_all, race};
pub use history::{Event, Parent};
pub use registry::{ActivityContext, Registry};
pub use replay::{Episode, Execution};
pub use saga::Saga;
pub use store::{InstanceStatus, InstanceStore, Loaded, RuntimeStatus};

#[cfg(test)]
mod tests;
