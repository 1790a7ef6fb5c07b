//! History events: what happened to an orchestration, in order. Replaying them through the
//! orchestrator's code rebuilds its state (`docs/adr/0003-durable-engine.md`).
//!
//! Scheduling events (`TaskScheduled`, `TimerCreated`, `SubOrchestrationCreated`) carry the
//! sequence id the code gave the call; the matching completion refers to it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The instance that started a sub-orchestration, and the task id the result goes back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parent {
    /// The parent instance.
    pub instance_id: String,
    /// The parent's task id for this sub-orchestration.
    pub task_id: u64,
    /// The parent's execution that started it: the reply goes to that execution only, so that a
    /// child of a run before a `continue_as_new` or a restart cannot complete a task of the next
    /// one. `None` in instances started before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
}

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType", rename_all_fields = "camelCase")]
pub enum Event {
    /// The execution began with this orchestrator and input.
    ExecutionStarted {
        /// The orchestrator's name.
        name: String,
        /// Its input.
        input: Value,
        /// The parent, for a sub-orchestration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<Parent>,
        /// The version of the orchestrator's code the instance runs on (`None`: registered
        /// without one; see [`Registry::orchestrator_version`](super::Registry::orchestrator_version)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// An episode began at this time (the orchestration's deterministic "now").
    OrchestratorStarted {
        /// The episode's time.
        time: DateTime<Utc>,
    },
    /// The code called an activity.
    TaskScheduled {
        /// The call's sequence id.
        id: u64,
        /// The activity.
        name: String,
        /// Its input.
        input: Value,
    },
    /// An activity returned.
    TaskCompleted {
        /// The call's sequence id.
        id: u64,
        /// The result.
        result: Value,
    },
    /// An activity failed.
    TaskFailed {
        /// The call's sequence id.
        id: u64,
        /// The error.
        error: String,
    },
    /// The code created a durable timer.
    TimerCreated {
        /// The timer's sequence id.
        id: u64,
        /// When it fires.
        fire_at: DateTime<Utc>,
    },
    /// A durable timer fired.
    TimerFired {
        /// The timer's sequence id.
        id: u64,
    },
    /// The code started a sub-orchestration.
    SubOrchestrationCreated {
        /// The call's sequence id.
        id: u64,
        /// The orchestrator.
        name: String,
        /// The child's instance id.
        instance_id: String,
        /// Its input.
        input: Value,
    },
    /// A sub-orchestration completed.
    SubOrchestrationCompleted {
        /// The call's sequence id.
        id: u64,
        /// Its output.
        result: Value,
    },
    /// A sub-orchestration failed.
    SubOrchestrationFailed {
        /// The call's sequence id.
        id: u64,
        /// The error.
        error: String,
    },
    /// An external event arrived.
    EventRaised {
        /// The event name.
        name: String,
        /// Its payload.
        input: Value,
        /// A unique key per raise, so a redelivered message is applied once.
        key: String,
    },
    /// The code called an operation on an entity and waits for its result (a `TaskCompleted` or
    /// `TaskFailed` with this id).
    EntityCalled {
        /// The call's sequence id.
        id: u64,
        /// The entity's instance id, `@{name}@{key}`.
        entity: String,
        /// The operation.
        operation: String,
        /// Its input.
        input: Value,
        /// This orchestration's sequence number for the entity (operations apply in this order).
        seq: u64,
    },
    /// The code signalled an entity (one-way).
    EntitySignaled {
        /// The signal's sequence id.
        id: u64,
        /// The entity's instance id, `@{name}@{key}`.
        entity: String,
        /// The operation.
        operation: String,
        /// Its input.
        input: Value,
        /// This orchestration's sequence number for the entity (0 for a scheduled signal).
        seq: u64,
        /// Not applied before this time, when set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
    },
    /// The code asked to lock entities for a critical section; the result (a `TaskCompleted` with
    /// this id) says that all are held.
    EntityLockRequested {
        /// The request's sequence id.
        id: u64,
        /// The entities, in lock order, with this orchestration's sequence number for each.
        locks: Vec<super::entity::LockTarget>,
    },
    /// The lock on one entity was released: by the code, or by the engine when the execution
    /// ended (`at_end`) with the section still open.
    EntityUnlockSent {
        /// The release's sequence id.
        id: u64,
        /// The entity's instance id, `@{name}@{key}`.
        entity: String,
        /// This orchestration's sequence number for the entity.
        seq: u64,
        /// Sent by the engine as the execution ended, not by the code (replay does not expect it).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        at_end: bool,
    },
    /// The orchestrator returned a value.
    ExecutionCompleted {
        /// The output.
        result: Value,
    },
    /// The orchestrator returned an error (or could not run).
    ExecutionFailed {
        /// The error.
        error: String,
    },
    /// The instance was terminated.
    ExecutionTerminated {
        /// Why.
        reason: String,
    },
    /// The orchestrator restarted itself with a new input.
    ContinuedAsNew {
        /// The new input.
        input: Value,
    },
    /// A failed instance was rewound ([`rewind`](super::rewind)): the failures of these steps,
    /// and the execution's failure, were taken out of the history before this event, to be run
    /// again. Replay passes over it.
    ExecutionRewound {
        /// Why, as the request gave it.
        reason: String,
        /// The steps whose failures were taken out, with their errors.
        failures: Vec<RewoundFailure>,
        /// The execution's error that the rewind took back.
        error: String,
        /// The execution whose ids (`new_guid`, sub-orchestration ids) the code goes on deriving:
        /// the first one rewound, so that the code makes the same ids as before the rewind.
        #[serde(default)]
        execution: String,
        /// The id of the rewind's request (its control message): one that comes again is not
        /// applied again.
        #[serde(default)]
        request: String,
    },
}

/// A failure a rewind took out of the history ([`Event::ExecutionRewound`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewoundFailure {
    /// The step's sequence id.
    pub id: u64,
    /// The error it had.
    pub error: String,
}

impl Event {
    /// The event's type name, as the status API shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ExecutionStarted { .. } => "ExecutionStarted",
            Event::OrchestratorStarted { .. } => "OrchestratorStarted",
            Event::TaskScheduled { .. } => "TaskScheduled",
            Event::TaskCompleted { .. } => "TaskCompleted",
            Event::TaskFailed { .. } => "TaskFailed",
            Event::TimerCreated { .. } => "TimerCreated",
            Event::TimerFired { .. } => "TimerFired",
            Event::SubOrchestrationCreated { .. } => "SubOrchestrationInstanceCreated",
            Event::SubOrchestrationCompleted { .. } => "SubOrchestrationInstanceCompleted",
            Event::SubOrchestrationFailed { .. } => "SubOrchestrationInstanceFailed",
            Event::EventRaised { .. } => "EventRaised",
            Event::ExecutionCompleted { .. } => "ExecutionCompleted",
            Event::ExecutionFailed { .. } => "ExecutionFailed",
            Event::ExecutionTerminated { .. } => "ExecutionTerminated",
            Event::ContinuedAsNew { .. } => "ContinuedAsNew",
            Event::ExecutionRewound { .. } => "ExecutionRewound",
            Event::EntityCalled { .. } => "EntityOperationCalled",
            Event::EntitySignaled { .. } => "EntityOperationSignaled",
            Event::EntityLockRequested { .. } => "EntityLockRequested",
            Event::EntityUnlockSent { .. } => "EntityUnlockSent",
        }
    }

    /// The sequence id of a scheduling event.
    pub fn scheduled_id(&self) -> Option<u64> {
        match self {
            Event::TaskScheduled { id, .. }
            | Event::TimerCreated { id, .. }
            | Event::SubOrchestrationCreated { id, .. }
            | Event::EntityCalled { id, .. }
            | Event::EntitySignaled { id, .. }
            | Event::EntityLockRequested { id, .. }
            | Event::EntityUnlockSent { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The sequence id a completion refers to.
    pub fn completed_id(&self) -> Option<u64> {
        match self {
            Event::TaskCompleted { id, .. }
            | Event::TaskFailed { id, .. }
            | Event::TimerFired { id }
            | Event::SubOrchestrationCompleted { id, .. }
            | Event::SubOrchestrationFailed { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// Whether this event sends a message to an entity (a call, a signal, a lock, a release).
    pub fn is_entity_message(&self) -> bool {
        matches!(
            self,
            Event::EntityCalled { .. }
                | Event::EntitySignaled { .. }
                | Event::EntityLockRequested { .. }
                | Event::EntityUnlockSent { .. }
        )
    }

    /// Whether this event ends the execution.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::ExecutionCompleted { .. }
                | Event::ExecutionFailed { .. }
                | Event::ExecutionTerminated { .. }
                | Event::ContinuedAsNew { .. }
        )
    }

    /// The JSON values the event carries (inputs, results), for offloading large ones.
    pub fn values_mut(&mut self) -> Vec<&mut Value> {
        match self {
            Event::ExecutionStarted { input, .. }
            | Event::TaskScheduled { input, .. }
            | Event::SubOrchestrationCreated { input, .. }
            | Event::EntityCalled { input, .. }
            | Event::EntitySignaled { input, .. }
            | Event::EventRaised { input, .. }
            | Event::ContinuedAsNew { input } => vec![input],
            Event::TaskCompleted { result, .. }
            | Event::SubOrchestrationCompleted { result, .. }
            | Event::ExecutionCompleted { result } => vec![result],
            _ => Vec::new(),
        }
    }

    /// The failure texts the event carries (errors, a termination's reason): offloaded to blobs
    /// when large, as values are.
    pub fn texts_mut(&mut self) -> Vec<&mut String> {
        match self {
            Event::TaskFailed { error, .. }
            | Event::SubOrchestrationFailed { error, .. }
            | Event::ExecutionFailed { error } => vec![error],
            Event::ExecutionTerminated { reason } => vec![reason],
            Event::ExecutionRewound { reason, failures, error, .. } => {
                let mut texts = vec![reason, error];
                texts.extend(failures.iter_mut().map(|f| &mut f.error));
                texts
            }
            _ => Vec::new(),
        }
    }

    /// A short description of a scheduling event, for non-determinism errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Event::TaskScheduled { name, .. } => format!("a call to activity `{name}`"),
            Event::TimerCreated { .. } => "a timer".to_owned(),
            Event::SubOrchestrationCreated { name, .. } => format!("a call to sub-orchestrator `{name}`"),
            Event::EntityCalled { entity, operation, .. } => format!("a call of `{operation}` on entity {entity}"),
            Event::EntitySignaled { entity, operation, .. } => format!("a signal `{operation}` to entity {entity}"),
            Event::EntityLockRequested { locks, .. } => {
                let names: Vec<&str> = locks.iter().map(|l| l.entity.as_str()).collect();
                format!("a lock on entities {}", names.join(", "))
            }
            Event::EntityUnlockSent { entity, .. } => format!("the release of entity {entity}"),
            other => other.kind().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_tagged_json() {
        let e = Event::TaskScheduled { id: 3, name: "SayHello".into(), input: serde_json::json!("Tokyo") };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(text, r#"{"eventType":"TaskScheduled","id":3,"name":"SayHello","input":"Tokyo"}"#);
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
        let fired: Event = serde_json::from_str(r#"{"eventType":"TimerFired","id":1}"#).unwrap();
        assert_eq!(fired.completed_id(), Some(1));
    }
}
