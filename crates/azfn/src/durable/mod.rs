//! Durable orchestrations: long-running workflows written as plain async Rust, replayed from an
//! event-sourced history (design: `docs/adr/0003-durable-engine.md`).
//!
//! - [`Registry`]: orchestrators (`async fn(OrchestrationContext, I) -> Result<O, E>`) and
//!   activities (`async fn(ActivityContext, I) -> Result<O, E>`) by name.
//! - [`OrchestrationContext`]: activities, sub-orchestrators, timers, external events, retries,
//!   `continue_as_new`, custom status, deterministic `now()` and `new_guid()`.
//! - [`race`], [`join_all`]: racing a timer against an event; fan-out/fan-in.
//! - [`Saga`]: compensations run in reverse order on failure.
//! - [`entity`]: durable entities ([`Registry::entity`], [`EntityId`], [`EntityOp`]): named state
//!   that handles operations one at a time, signalled or called from orchestrations, clients and
//!   other entities; critical sections ([`OrchestrationContext::lock_entities`]) lock several.
//! - [`Execution`]: the replay of one execution's history and its live episodes.
//! - [`history`]: the events.
//! - [`App::durable`](crate::App::durable) ([`functions`]): the app functions that run all this from
//!   the task hub's queues ([`dispatch`]) and serve the management API ([`api`], [`DurableClient`]).
//! - [`Durable`] ([`binding`]): the client a handler gets from [`Context::durable`](crate::Context::durable).
//! - [`TaskHub`]: the hub's table, queues and blob container; [`InstanceStore`]: the instance table.
//! - [`dashboard`]: the app's own page over the management API (`GET /api/dashboard`).
//! - [`testing`]: orchestrations run in process without storage, and the replay check of recorded
//!   histories against the current code.

pub mod api;
pub mod binding;
pub mod client;
pub mod clock;
pub mod context;
pub mod dashboard;
pub mod dispatch;
pub mod entity;
pub mod error;
pub mod functions;
pub mod history;
pub mod hub;
pub mod messages;
pub mod registry;
pub mod replay;
pub mod retention;
pub mod rewind;
pub mod saga;
pub mod schedules;
pub mod store;
pub mod testing;

pub use binding::{Durable, DurableCall};
pub use client::{DurableClient, EntityView, InstanceView, VersionUse};
pub use context::{
    CriticalSection, DurableFuture, Either, EventFuture, OrchestrationContext, RetryPolicy, TaskError, join_all, race,
};
pub use dispatch::Dispatcher;
pub use entity::{EntityId, EntityOp};
pub use error::{DurableError, validate_instance_id};
pub use functions::{API_FUNCTION, CONTROL_FUNCTION, DurableApp, WORK_FUNCTION};
pub use history::{Event, Parent};
pub use hub::TaskHub;
pub use messages::{Command, ControlMessage, WorkMessage};
pub use registry::{ActivityContext, Registry};
pub use replay::{Episode, Execution};
pub use saga::Saga;
pub use store::{Committed, InstanceStatus, InstanceStore, ListFilter, Loaded, Purge, RuntimeStatus};

#[cfg(test)]
mod tests;
