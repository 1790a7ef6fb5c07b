//! Running an orchestrator's code over its history: replay of recorded events, then live episodes
//! that apply new events and collect the code's new actions.
//!
//! Events are applied one at a time and the code is polled after each, so a race between a timer
//! and an event resolves in history order, and `now()` is the time of the episode being replayed.

use std::sync::{Arc, Mutex};
use std::task::{Context as TaskCx, Poll, Waker};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::context::{OrchestrationContext, State};
use super::history::Event;
use super::registry::{BoxRun, Registry};

/// What a live episode produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Episode {
    /// The events to append to history: the episode start, the new events that were applied, the
    /// code's new scheduling actions, and a terminal event when the execution ended.
    pub events: Vec<Event>,
    /// The custom status the code set, if it set one.
    pub custom_status: Option<Value>,
    /// New events that came after the execution ended in this episode, not applied: a
    /// `continue_as_new` carries the raised events among them over to the next execution.
    pub left_over: Vec<Event>,
}

impl Episode {
    /// The terminal event, when the execution ended in this episode.
    pub fn outcome(&self) -> Option<&Event> {
        self.events.iter().find(|e| e.is_terminal())
    }
}

/// One execution of an orchestration: its code, suspended at its current step, and its history.
pub struct Execution {
    registry: Arc<Registry>,
    ctx: OrchestrationContext,
    run: Option<BoxRun>,
    history: Vec<Event>,
    outcome: Option<Event>,
}

impl std::fmt::Debug for Execution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Execution")
            .field("instance_id", &self.ctx.instance_id())
            .field("events", &self.history.len())
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl Execution {
    /// Rebuilds an execution from its recorded history (empty for a new instance).
    pub fn replay(registry: Arc<Registry>, instance_id: &str, execution_id: &str, history: Vec<Event>) -> Self {
        let mut expected = std::collections::HashMap::new();
        for e in &history {
            if matches!(e, Event::EntityUnlockSent { at_end: true, .. }) {
                // The engine's, not the code's: replay does not make it again.
                continue;
            }
            if let Some(id) = e.scheduled_id() {
                expected.insert(id, e.clone());
            }
        }
        // A rewound execution's code derives its ids from the first execution rewound, as before.
        let seed = super::rewind::seed_execution(&history).unwrap_or(execution_id);
        let state = State {
            instance_id: instance_id.to_owned(),
            execution_id: seed.to_owned(),
            expected,
            replaying: true,
            ..Default::default()
        };
        let mut exec = Execution {
            registry,
            ctx: OrchestrationContext { state: Arc::new(Mutex::new(state)) },
            run: None,
            history: Vec::new(),
            outcome: None,
        };
        for e in history {
            exec.apply(&e);
            exec.history.push(e);
        }
        {
            let mut s = exec.ctx.lock();
            s.replaying = false;
            s.new_actions.clear();
            let unreached = s.expected.keys().copied().filter(|id| *id >= s.next_id).min();
            // Recorded for the replay check even when the code ended before the step.
            if let Some(id) = unreached
                && s.divergence.is_none()
            {
                s.divergence = Some((id, s.expected[&id].clone(), None));
            }
            if exec.outcome.is_none()
                && exec.run.is_some()
                && let Some(id) = unreached
            {
                let what = s.expected[&id].describe();
                s.nondeterminism = Some(format!(
                    "non-deterministic orchestration: the recorded history has step {id} ({what}), but the code no \
                     longer reaches it; was the orchestrator changed while instances were running?"
                ));
            }
        }
        exec.check_nondeterminism();
        exec
    }

    /// The context the code runs with.
    pub fn context(&self) -> &OrchestrationContext {
        &self.ctx
    }

    /// The whole history of this execution.
    pub fn history(&self) -> &[Event] {
        &self.history
    }

    /// The external events raised that the code has not waited for yet (by name, then in the
    /// order they came): what a `continue_as_new` carries over to the next execution.
    pub fn unconsumed_events(&self) -> Vec<(String, Value)> {
        let s = self.ctx.lock();
        let mut names: Vec<&String> = s.events.keys().collect();
        names.sort();
        names.into_iter().flat_map(|n| s.events[n].iter().map(move |v| (n.clone(), v.clone()))).collect()
    }

    /// The first step where the code did not do what the recorded history says, if any.
    pub fn divergence(&self) -> Option<super::testing::Divergence> {
        let s = self.ctx.lock();
        s.divergence.as_ref().map(|(step, expected, found)| super::testing::Divergence {
            step: *step,
            expected: expected.describe(),
            found: found.as_ref().map(Event::describe),
        })
    }

    /// The terminal event, once the execution has ended.
    pub fn outcome(&self) -> Option<&Event> {
        self.outcome.as_ref()
    }

    /// Whether `e` would change nothing: a result already applied, a result for a step the code has
    /// not taken, an event key seen before, or a second start.
    pub fn is_duplicate(&self, e: &Event) -> bool {
        let s = self.ctx.lock();
        match e {
            // An event raised before the start message arrived may already be in history.
            Event::ExecutionStarted { .. } => {
                self.run.is_some() || self.history.iter().any(|h| matches!(h, Event::ExecutionStarted { .. }))
            }
            Event::EventRaised { key, .. } => s.event_keys.contains(key),
            _ => match e.completed_id() {
                Some(id) => s.results.contains_key(&id) || id >= s.next_id,
                None => false,
            },
        }
    }

    /// Applies new events in a live episode at time `now`; duplicates are dropped.
    pub fn run_episode(&mut self, now: DateTime<Utc>, new_events: Vec<Event>) -> Episode {
        if self.history.iter().any(Event::is_terminal) {
            return Episode::default();
        }
        // An outcome not in history yet (the replay found the code changed): this episode records
        // it, with the releases of the locks the code held.
        let start = Event::OrchestratorStarted { time: now };
        self.apply(&start);
        let mut events = vec![start];
        let mut left_over = Vec::new();
        for e in new_events {
            if !left_over.is_empty() || (self.outcome.is_some() && !matches!(e, Event::ExecutionTerminated { .. })) {
                if !self.is_duplicate(&e) {
                    left_over.push(e);
                }
                continue;
            }
            if self.is_duplicate(&e) {
                continue;
            }
            self.apply(&e);
            events.push(e);
        }
        let (actions, custom_status) = {
            let mut s = self.ctx.lock();
            let mut actions = std::mem::take(&mut s.new_actions);
            if self.outcome.is_some() {
                // The execution ended with a critical section open: its locks are released now.
                // What is open, and the sequence numbers, come from what was recorded and sent (the
                // code may have changed: then it is not what the code asked for).
                let sent: Vec<&Event> = self.history.iter().chain(&actions).collect();
                let mut next_id = sent.iter().filter_map(|e| e.scheduled_id()).map(|id| id + 1).max().unwrap_or(0);
                next_id = next_id.max(s.next_id);
                for (entity, seq) in open_locks(sent) {
                    actions.push(Event::EntityUnlockSent { id: next_id, entity, seq, at_end: true });
                    next_id += 1;
                }
                s.next_id = next_id;
                s.locks = None;
            }
            (actions, s.custom_status.clone())
        };
        events.extend(actions);
        if let Some(outcome) = &self.outcome {
            // The terminal event goes last (a termination applied above comes after the releases).
            events.retain(|e| !e.is_terminal());
            events.push(outcome.clone());
        }
        self.history.extend(events.iter().cloned());
        Episode { events, custom_status, left_over }
    }

    fn apply(&mut self, e: &Event) {
        match e {
            Event::OrchestratorStarted { time } => {
                self.ctx.lock().now = *time;
                return;
            }
            Event::ExecutionStarted { name, input, version, .. } => {
                match self.registry.start_orchestrator(name, version.as_deref(), self.ctx.clone(), input.clone()) {
                    Ok(run) => self.run = Some(run),
                    Err(e) => self.outcome = Some(Event::ExecutionFailed { error: e }),
                }
            }
            Event::EventRaised { name, input, key } => {
                let mut s = self.ctx.lock();
                s.event_keys.insert(key.clone());
                s.raise(name, input.clone());
            }
            Event::TaskCompleted { id, result } | Event::SubOrchestrationCompleted { id, result } => {
                self.ctx.lock().complete(*id, Ok(result.clone()));
            }
            Event::TaskFailed { id, error } | Event::SubOrchestrationFailed { id, error } => {
                self.ctx.lock().complete(*id, Err(error.clone()));
            }
            Event::TimerFired { id } => self.ctx.lock().complete(*id, Ok(Value::Null)),
            Event::ExecutionTerminated { .. }
            | Event::ExecutionCompleted { .. }
            | Event::ExecutionFailed { .. }
            | Event::ContinuedAsNew { .. } => {
                self.run = None;
                self.outcome = Some(e.clone());
                return;
            }
            Event::ExecutionRewound { .. } => return,
            Event::TaskScheduled { .. }
            | Event::TimerCreated { .. }
            | Event::SubOrchestrationCreated { .. }
            | Event::EntityCalled { .. }
            | Event::EntitySignaled { .. }
            | Event::EntityLockRequested { .. }
            | Event::EntityUnlockSent { .. } => return,
        }
        self.poll();
    }

    fn poll(&mut self) {
        let Some(run) = self.run.as_mut() else { return };
        let mut cx = TaskCx::from_waker(Waker::noop());
        self.ctx.lock().polling = true;
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.as_mut().poll(&mut cx)));
        self.ctx.lock().polling = false;
        match polled {
            Ok(Poll::Pending) => {}
            Ok(Poll::Ready(result)) => {
                self.run = None;
                let next = self.ctx.lock().continue_as_new.take();
                self.outcome = Some(match (next, result) {
                    (Some(input), Ok(_)) => Event::ContinuedAsNew { input },
                    (_, Ok(result)) => Event::ExecutionCompleted { result },
                    (_, Err(error)) => Event::ExecutionFailed { error },
                });
            }
            Err(panic) => {
                self.run = None;
                let msg = crate::server::panic_text(&*panic);
                self.outcome = Some(Event::ExecutionFailed { error: format!("the orchestrator panicked: {msg}") });
            }
        }
        self.check_nondeterminism();
    }

    fn check_nondeterminism(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        // The state's lock is let go first: dropping the code can run a `CriticalSection`'s drop,
        // which takes it.
        let error = self.ctx.lock().nondeterminism.clone();
        if let Some(error) = error {
            self.run = None;
            self.outcome = Some(Event::ExecutionFailed { error });
        }
    }
}

/// The entities a critical section still holds after `events` (the last lock asked for, less the
/// releases after it), each with the next sequence number for it.
fn open_locks<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<(String, u64)> {
    let mut last_seq: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let mut held: Vec<&str> = Vec::new();
    for e in events {
        let mut used = |entity: &'a str, seq: u64| {
            let n = last_seq.entry(entity).or_insert(0);
            *n = (*n).max(seq);
        };
        match e {
            Event::EntityCalled { entity, seq, .. } | Event::EntitySignaled { entity, seq, .. } => used(entity, *seq),
            Event::EntityUnlockSent { entity, seq, .. } => {
                used(entity, *seq);
                held.retain(|h| h != entity);
            }
            Event::EntityLockRequested { locks, .. } => {
                for l in locks {
                    used(&l.entity, l.seq);
                }
                held = locks.iter().map(|l| l.entity.as_str()).collect();
            }
            _ => {}
        }
    }
    held.into_iter().map(|e| (e.to_owned(), last_seq.get(e).copied().unwrap_or(0) + 1)).collect()
}
