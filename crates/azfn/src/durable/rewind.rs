//! Rewind: a Failed instance taken back to before its failed activities and sub-orchestrations,
//! which then run again, keeping every result that succeeded (`POST instances/{id}/rewind`), as
//! Durable Functions' rewind does once the outage that failed the instance is over.
//!
//! # What is rewound
//!
//! The failures rewound are those the code did not handle: failures of activities and
//! sub-orchestrations after which the code scheduled nothing more (it let the error end the
//! execution). They and the execution's failure are taken out of the history, an
//! [`Event::ExecutionRewound`] records them with the reason, and the code, replayed over the
//! rest, is back waiting for those steps. A failure the code handled (a retry that went on to
//! another attempt, a saga that compensated) stays: the code's later steps depend on it.
//!
//! The rewound instance runs as a new execution of the same instance (a new execution id, as
//! after `continue_as_new`), so that no late message of the failed execution (a result delivered
//! again after its first delivery failed) can fail it a second time. What it waits for is sent
//! again under the new execution: each failed activity is called again (with a new
//! [`ActivityContext::idempotency_key`](super::ActivityContext::idempotency_key), as a new
//! attempt), as is any activity still running when it failed; a timer still pending is set again;
//! each sub-orchestration it waits for is told the new execution, and is rewound in its turn if it
//! failed. The code's own ids (`new_guid`, sub-orchestration ids) keep deriving from the first
//! execution rewound, so they are the same as before the rewind; and the request's id is
//! recorded, so that the same request coming again is not applied twice.
//!
//! # What is refused
//!
//! A rewind is refused, with the reason, when it could not end differently or would undo what
//! was done: an instance that is not Failed; one whose own code failed (a panic, an error it
//! returned without a failed step, a non-deterministic replay), as a rewind would fail the same
//! way; one that failed with an entity call waiting or entity locks held (the call cannot be made
//! again without applying it twice, and the locks were released when it failed), or whose last
//! messages to entities are not known to be sent yet (asked again, it goes through); and one whose
//! code, replayed without its failures, does not come back to waiting for them (it had handled
//! them after all).

use std::collections::{HashMap, HashSet};

use super::history::{Event, RewoundFailure};

/// What a rewind does to a history: the history it keeps, and the failures it takes out.
#[derive(Debug, Clone, PartialEq)]
pub struct RewindPlan {
    /// The history without the failures rewound and without the execution's failure.
    pub history: Vec<Event>,
    /// The failures taken out.
    pub failures: Vec<RewoundFailure>,
    /// The execution's error.
    pub error: String,
}

impl RewindPlan {
    /// The history the rewound execution starts with: the kept history and the
    /// [`Event::ExecutionRewound`] that records the rewind, its `reason` and its `request`, of the
    /// failed execution `failed_execution`.
    pub fn rewound_history(&self, reason: &str, request: &str, failed_execution: &str) -> Vec<Event> {
        let mut history = self.history.clone();
        // The code keeps deriving its ids from the first execution rewound.
        let execution = seed_execution(&history).unwrap_or(failed_execution).to_owned();
        history.push(Event::ExecutionRewound {
            reason: reason.to_owned(),
            failures: self.failures.clone(),
            error: self.error.clone(),
            execution,
            request: request.to_owned(),
        });
        history
    }
}

/// The execution a rewound history's code derives its ids from (the first one rewound), if the
/// history was rewound.
pub fn seed_execution(history: &[Event]) -> Option<&str> {
    history.iter().find_map(|e| match e {
        Event::ExecutionRewound { execution, .. } if !execution.is_empty() => Some(execution.as_str()),
        _ => None,
    })
}

/// Whether the rewind `request` was applied to this history already (its message came again).
pub fn applied(history: &[Event], request: &str) -> bool {
    history.iter().any(|e| matches!(e, Event::ExecutionRewound { request: r, .. } if r == request))
}

/// Works out the rewind of a failed execution's `history`, or says why it is refused.
///
/// ```
/// use azfn::durable::Event;
/// use azfn::durable::rewind::plan;
/// use serde_json::json;
///
/// let history = vec![
///     Event::ExecutionStarted { name: "Import".into(), input: json!(null), parent: None, version: None },
///     Event::TaskScheduled { id: 0, name: "Fetch".into(), input: json!(1) },
///     Event::TaskCompleted { id: 0, result: json!("ok") },
///     Event::TaskScheduled { id: 1, name: "Store".into(), input: json!(1) },
///     Event::TaskFailed { id: 1, error: "503".into() },
///     Event::ExecutionFailed { error: "Store failed: 503".into() },
/// ];
/// let rewind = plan(&history).unwrap();
/// assert_eq!(rewind.failures.len(), 1);
/// assert_eq!(rewind.history.len(), 4, "the failure and the execution's end are taken out");
///
/// let own = vec![history[0].clone(), Event::ExecutionFailed { error: "bad input".into() }];
/// assert!(plan(&own).unwrap_err().contains("failed in its own code"));
/// ```
pub fn plan(history: &[Event]) -> Result<RewindPlan, String> {
    let Some(Event::ExecutionFailed { error }) = history.iter().rev().find(|e| e.is_terminal()) else {
        return Err("its history does not end in a failure".to_owned());
    };
    let scheduled: HashMap<u64, &Event> = history.iter().filter_map(|e| e.scheduled_id().map(|id| (id, e))).collect();
    let completed: HashSet<u64> = history.iter().filter_map(Event::completed_id).collect();
    if history.iter().any(|e| matches!(e, Event::EntityUnlockSent { at_end: true, .. })) {
        return Err("it held entity locks when it failed, and they were released then; its critical \
                    section cannot be taken up again"
            .to_owned());
    }
    for (id, e) in &scheduled {
        if matches!(e, Event::EntityCalled { .. } | Event::EntityLockRequested { .. }) && !completed.contains(id) {
            return Err(format!(
                "it failed with {} waiting (step {id}); that cannot be sent again without being applied twice",
                e.describe()
            ));
        }
    }
    // The last step the code scheduled: a failure after it was not handled.
    let last_scheduling = history
        .iter()
        .rposition(|e| e.scheduled_id().is_some() && !matches!(e, Event::EntityUnlockSent { at_end: true, .. }));
    let mut failures = Vec::new();
    let mut taken = HashSet::new();
    for (i, e) in history.iter().enumerate() {
        let (id, error) = match e {
            Event::TaskFailed { id, error } if matches!(scheduled.get(id), Some(Event::TaskScheduled { .. })) => {
                (*id, error)
            }
            Event::SubOrchestrationFailed { id, error } => (*id, error),
            _ => continue,
        };
        if last_scheduling.is_none_or(|last| i > last) {
            failures.push(RewoundFailure { id, error: error.clone() });
            taken.insert(i);
        }
    }
    if failures.is_empty() {
        return Err(format!(
            "it failed in its own code, not in an activity or a sub-orchestration it let fail ({error}); a rewind \
             would fail the same way: fix the code, then start it again"
        ));
    }
    let kept = history
        .iter()
        .enumerate()
        .filter(|(i, e)| !taken.contains(i) && !e.is_terminal())
        .map(|(_, e)| e.clone())
        .collect();
    Ok(RewindPlan { history: kept, failures, error: error.clone() })
}

/// The rewound execution of the Failed instance `status` (whose history is `history`): its
/// history (the kept events and the [`Event::ExecutionRewound`] of `reason` and `request`) and its
/// code replayed over it as the execution `new_execution`; or why it is refused. What the client
/// checks before it asks, and the dispatcher again when it applies the rewind.
pub(crate) fn rewound(
    registry: &std::sync::Arc<super::Registry>,
    status: &super::InstanceStatus,
    history: &[Event],
    reason: &str,
    request: &str,
    new_execution: &str,
) -> Result<(Vec<Event>, super::replay::Execution), String> {
    if !status.unsent.is_empty() || !status.carried.is_empty() {
        // Messages to entities (a release, a signal) not known to be sent: the new execution
        // would no longer list them.
        return Err("its last messages to entities are not all sent yet; ask again in a few seconds".to_owned());
    }
    let plan = plan(history)?;
    if !registry.has_orchestrator_version(&status.name, status.version.as_deref()) {
        return Err(format!(
            "this worker has no code for orchestrator `{}`{}; rewind it from one that has",
            status.name,
            status.version.as_deref().map(|v| format!(" version {v}")).unwrap_or_default()
        ));
    }
    let events = plan.rewound_history(reason, request, &status.execution_id);
    let exec = super::replay::Execution::replay(registry.clone(), &status.instance_id, new_execution, events.clone());
    match refusal(&exec) {
        Some(why) => Err(why),
        None => Ok((events, exec)),
    }
}

/// Why a rewound execution, replayed over its kept history, cannot go on, if it cannot: its code
/// ends again without the failures (it did not fail for them) or does not replay the history.
pub fn refusal(exec: &super::replay::Execution) -> Option<String> {
    if let Some(d) = exec.divergence() {
        return Some(format!("its code does not replay its history without the failures ({d})"));
    }
    match exec.outcome() {
        None => None,
        Some(Event::ExecutionFailed { error }) => {
            Some(format!("replayed without the failures, its code fails again ({error}): it failed in its own code"))
        }
        Some(other) => Some(format!("replayed without the failures, its code ends at once ({})", other.kind())),
    }
}

/// The steps a rewound execution waits for, in `history` (its kept history): scheduled, with no
/// result, and not a message to an entity (those were sent before it failed).
pub fn waiting(history: &[Event]) -> Vec<&Event> {
    let completed: HashSet<u64> = history.iter().filter_map(Event::completed_id).collect();
    history
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TaskScheduled { .. } | Event::TimerCreated { .. } | Event::SubOrchestrationCreated { .. }
            )
        })
        .filter(|e| e.scheduled_id().is_some_and(|id| !completed.contains(&id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn start() -> Event {
        Event::ExecutionStarted { name: "O".into(), input: json!(null), parent: None, version: None }
    }

    fn task(id: u64) -> Event {
        Event::TaskScheduled { id, name: format!("A{id}"), input: json!(id) }
    }

    #[test]
    fn a_failure_the_code_handled_stays_and_one_it_let_through_is_rewound() {
        // A retry: attempt 0 failed, a timer, attempt 2 failed and ended the execution.
        let history = vec![
            start(),
            task(0),
            Event::TaskFailed { id: 0, error: "first".into() },
            Event::TimerCreated { id: 1, fire_at: "2026-12-06T10:00:00Z".parse().unwrap() },
            Event::TimerFired { id: 1 },
            task(2),
            Event::TaskFailed { id: 2, error: "second".into() },
            Event::ExecutionFailed { error: "gave up".into() },
        ];
        let p = plan(&history).unwrap();
        assert_eq!(p.failures, vec![RewoundFailure { id: 2, error: "second".into() }]);
        assert_eq!(p.history.len(), 6);
        assert_eq!(waiting(&p.history).len(), 1);
        assert_eq!(waiting(&p.history)[0].scheduled_id(), Some(2));

        // A fan-out: one of three failed; another was still running when it failed.
        let history = vec![
            start(),
            task(0),
            task(1),
            task(2),
            Event::TaskCompleted { id: 0, result: json!(0) },
            Event::TaskFailed { id: 1, error: "down".into() },
            Event::ExecutionFailed { error: "down".into() },
        ];
        let p = plan(&history).unwrap();
        let ids: Vec<u64> = waiting(&p.history).iter().filter_map(|e| e.scheduled_id()).collect();
        assert_eq!(ids, vec![1, 2], "the failed call and the one still running");
        // Two siblings of one join failed (a case durabletask-js issue 299 left hanging, with one
        // of them never sent again): both are rewound.
        let mut both = history.clone();
        both.insert(6, Event::TaskFailed { id: 2, error: "down too".into() });
        let ids: Vec<u64> = plan(&both).unwrap().failures.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![1, 2]);
        let rewound = p.rewound_history("the service is back", "r1", "e1");
        assert!(matches!(rewound.last(), Some(Event::ExecutionRewound { reason, execution, .. })
            if reason == "the service is back" && execution == "e1"));
        assert!(applied(&rewound, "r1") && !applied(&rewound, "r2"));
        // Rewound again later: the ids still come from the first execution.
        let mut again = rewound.clone();
        again.push(Event::TaskFailed { id: 1, error: "down again".into() });
        again.push(Event::ExecutionFailed { error: "down again".into() });
        let twice = plan(&again).unwrap().rewound_history("again", "r2", "e2");
        assert_eq!(seed_execution(&twice), Some("e1"));
    }

    #[test]
    fn rewinds_that_could_not_end_differently_are_refused_with_why() {
        let not_failed = vec![start(), Event::ExecutionCompleted { result: json!(1) }];
        assert!(plan(&not_failed).unwrap_err().contains("does not end in a failure"));
        // A saga: the charge failed, the code compensated, then failed.
        let saga = vec![
            start(),
            task(0),
            Event::TaskFailed { id: 0, error: "declined".into() },
            task(1),
            Event::TaskCompleted { id: 1, result: json!("refunded") },
            Event::ExecutionFailed { error: "declined".into() },
        ];
        assert!(plan(&saga).unwrap_err().contains("failed in its own code"));
        let locked = vec![
            start(),
            Event::EntityUnlockSent { id: 3, entity: "@a@b".into(), seq: 2, at_end: true },
            Event::ExecutionFailed { error: "x".into() },
        ];
        assert!(plan(&locked).unwrap_err().contains("entity locks"));
        let calling = vec![
            start(),
            Event::EntityCalled { id: 0, entity: "@a@b".into(), operation: "add".into(), input: json!(1), seq: 1 },
            task(1),
            Event::TaskFailed { id: 1, error: "x".into() },
            Event::ExecutionFailed { error: "x".into() },
        ];
        assert!(plan(&calling).unwrap_err().contains("cannot be sent again"));
    }
}
