//! Orchestrations tested without storage: the same replay engine the task hub runs, driven in
//! process, with a clock of the test's own.
//!
//! [`OrchestrationTest`] starts an orchestrator and runs it until it has nothing to do:
//! activities run for real (their registered code) or as stubs, each result in its own episode as
//! in the hub; sub-orchestrations run the same way; timers fire at once (the clock jumps to them)
//! or when the test [advances](TestRun::advance) the clock; events are raised by the test; entity
//! operations apply to entities kept in memory, with the same code as in the hub. The [`TestRun`]
//! then gives the outcome, the custom status, the history, the activity calls and entity states.
//!
//! ```
//! use azfn::durable::{ActivityContext, OrchestrationContext, Registry, TaskError};
//! use azfn::durable::testing::{OrchestrationTest, Status};
//!
//! async fn greet(ctx: OrchestrationContext, name: String) -> Result<String, TaskError> {
//!     ctx.call_activity("Hello", &name).await
//! }
//! async fn hello(_ctx: ActivityContext, name: String) -> Result<String, String> {
//!     Ok(format!("Hello {name}"))
//! }
//!
//! # tokio_test_block_on(async {
//! let registry = Registry::new().orchestrator("Greet", greet).activity("Hello", hello);
//! // The real activity...
//! let run = OrchestrationTest::new(registry.clone()).run("Greet", "Ada").await;
//! assert_eq!(run.status(), Status::Completed);
//! assert_eq!(run.output(), Some(&serde_json::json!("Hello Ada")));
//! // ...or a stub.
//! let run = OrchestrationTest::new(registry)
//!     .stub_activity("Hello", |_input| Err("down".to_owned()))
//!     .run("Greet", "Ada")
//!     .await;
//! assert_eq!(run.status(), Status::Failed);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! [`replay_check`] replays a recorded history (as `GET .../instances/{id}?showHistory=true`
//! returns it) against the current code and reports the first step where the code no longer does
//! what the history recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use serde::Serialize;
use serde_json::Value;

use super::entity::{Caller, EntityId, EntityRequest, EntityRow, Outgoing};
use super::history::{Event, Parent};
use super::registry::{ActivityContext, Registry};
use super::replay::Execution;

/// An activity stub: the input in, the result or the error out.
type Stub = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// How many `continue_as_new` in a row a test run follows before it stops with a failure.
pub const MAX_CONTINUES: usize = 1000;

/// When durable timers fire in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timers {
    /// As soon as nothing else can run: the clock jumps to the earliest timer.
    #[default]
    AtOnce,
    /// Only when the test moves the clock past them with [`TestRun::advance`].
    OnDemand,
}

/// Where an orchestration in a test stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting: for an event, or for a timer under [`Timers::OnDemand`].
    Running,
    /// Returned a value.
    Completed,
    /// Returned an error, panicked, or was non-deterministic.
    Failed,
    /// Terminated (by the test).
    Terminated,
}

/// A test of one orchestration, configured, not yet started.
pub struct OrchestrationTest {
    registry: Arc<Registry>,
    stubs: HashMap<String, Stub>,
    start: DateTime<Utc>,
    timers: Timers,
    instance_id: String,
}

impl std::fmt::Debug for OrchestrationTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestrationTest")
            .field("stubs", &self.stubs.keys().collect::<Vec<_>>())
            .field("start", &self.start)
            .field("timers", &self.timers)
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

impl OrchestrationTest {
    /// A test of the orchestrators of `registry`, with real activities, timers firing at once,
    /// the clock starting at 2026-01-01T00:00:00Z and the instance id `test`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
            stubs: HashMap::new(),
            start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("a valid date"),
            timers: Timers::AtOnce,
            instance_id: "test".to_owned(),
        }
    }

    /// Replaces the activity `name` with `stub` (input in, result or error out).
    pub fn stub_activity(
        mut self,
        name: &str,
        stub: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.stubs.insert(name.to_owned(), Arc::new(stub));
        self
    }

    /// Starts the clock at `time`.
    pub fn start_time(mut self, time: DateTime<Utc>) -> Self {
        self.start = time;
        self
    }

    /// When timers fire.
    pub fn timers(mut self, timers: Timers) -> Self {
        self.timers = timers;
        self
    }

    /// The instance id the orchestration sees.
    pub fn instance_id(mut self, id: &str) -> Self {
        self.instance_id = id.to_owned();
        self
    }

    /// Starts the orchestrator `name` with `input` and runs it until it has nothing to do.
    pub async fn start(self, name: &str, input: impl Serialize) -> TestRun {
        let input = serde_json::to_value(input).unwrap_or_else(|e| panic!("the input does not serialize: {e}"));
        let mut run = TestRun {
            registry: self.registry,
            stubs: self.stubs,
            now: self.start,
            timers: self.timers,
            instances: Vec::new(),
            calls: Vec::new(),
            event_count: 0,
            entities: HashMap::new(),
            entity_ops: VecDeque::new(),
            scheduled: Vec::new(),
        };
        run.begin(&self.instance_id, name, input, None);
        run.run_until_idle().await;
        run
    }

    /// [`start`](Self::start), for an orchestration that needs nothing more from the test.
    pub async fn run(self, name: &str, input: impl Serialize) -> TestRun {
        self.start(name, input).await
    }
}

/// One orchestration instance in a test run (the root, or a sub-orchestration).
struct Instance {
    id: String,
    name: String,
    exec: Execution,
    parent: Option<(usize, u64)>,
    /// Activities scheduled and not yet run: (task id, name, input).
    tasks: VecDeque<(u64, String, Value)>,
    /// Timers created and not yet fired: (fire at, task id).
    timers: Vec<(DateTime<Utc>, u64)>,
    custom_status: Value,
    continues: usize,
}

/// A started orchestration in a test: drive it, then read its outcome.
pub struct TestRun {
    registry: Arc<Registry>,
    stubs: HashMap<String, Stub>,
    now: DateTime<Utc>,
    timers: Timers,
    instances: Vec<Instance>,
    calls: Vec<(String, Value)>,
    event_count: u64,
    /// Entities, by instance id, kept in memory.
    entities: HashMap<String, EntityRow>,
    /// Entity operations waiting to be applied: (the entity's instance id, the request).
    entity_ops: VecDeque<(String, EntityRequest)>,
    /// Signals scheduled for later: (when, the entity's instance id, the request).
    scheduled: Vec<(DateTime<Utc>, String, EntityRequest)>,
}

impl std::fmt::Debug for TestRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRun")
            .field("now", &self.now)
            .field("status", &self.status())
            .field("output", &self.output())
            .field("error", &self.error())
            .finish()
    }
}

impl TestRun {
    fn begin(&mut self, id: &str, name: &str, input: Value, parent: Option<(usize, u64)>) -> usize {
        let exec = Execution::replay(self.registry.clone(), id, "0", Vec::new());
        let index = self.instances.len();
        self.instances.push(Instance {
            id: id.to_owned(),
            name: name.to_owned(),
            exec,
            parent,
            tasks: VecDeque::new(),
            timers: Vec::new(),
            custom_status: Value::Null,
            continues: 0,
        });
        let parent = parent.map(|(p, task_id)| Parent {
            instance_id: self.instances[p].id.clone(),
            task_id,
            execution_id: None,
        });
        let version = self.registry.version_for_start(name);
        self.episode(index, vec![Event::ExecutionStarted { name: name.to_owned(), input, parent, version }]);
        index
    }

    /// Applies `events` to instance `index` in one episode at the test's time, and takes in what
    /// the code did: activities, timers and sub-orchestrations to run, the outcome.
    fn episode(&mut self, index: usize, events: Vec<Event>) {
        let episode = self.instances[index].exec.run_episode(self.now, events);
        if let Some(status) = episode.custom_status.clone() {
            self.instances[index].custom_status = status;
        }
        let mut children = Vec::new();
        let times = super::entity::send_times(self.instances[index].exec.history());
        for e in &episode.events {
            match e {
                Event::TaskScheduled { id, name, input } => {
                    self.instances[index].tasks.push_back((*id, name.clone(), input.clone()))
                }
                Event::TimerCreated { id, fire_at } => self.instances[index].timers.push((*fire_at, *id)),
                Event::SubOrchestrationCreated { id, name, instance_id, input } => {
                    children.push((*id, name.clone(), instance_id.clone(), input.clone()))
                }
                _ => {
                    let inst = &self.instances[index];
                    if let Some((entity, request, at)) =
                        super::entity::request_for(e, &inst.id, &inst.continues.to_string(), &times)
                    {
                        self.send_to_entity(entity, request, at);
                    }
                }
            }
        }
        for (task_id, name, child_id, input) in children {
            self.begin(&child_id, &name, input, Some((index, task_id)));
        }
        match episode.outcome().cloned() {
            Some(Event::ContinuedAsNew { input }) => {
                let instance = &mut self.instances[index];
                instance.continues += 1;
                if instance.continues > MAX_CONTINUES {
                    let error = format!("continue_as_new {MAX_CONTINUES} times in a row in a test");
                    instance.exec = Execution::replay(self.registry.clone(), &instance.id, "0", Vec::new());
                    let _ = instance.exec.run_episode(self.now, vec![Event::ExecutionFailed { error }]);
                    return;
                }
                let name = instance.name.clone();
                let version = instance.exec.history().iter().find_map(|e| match e {
                    Event::ExecutionStarted { version, .. } => version.clone(),
                    _ => None,
                });
                let execution = instance.continues.to_string();
                instance.exec = Execution::replay(self.registry.clone(), &instance.id, &execution, Vec::new());
                instance.tasks.clear();
                instance.timers.clear();
                let parent = instance.parent.map(|(p, task_id)| Parent {
                    instance_id: self.instances[p].id.clone(),
                    task_id,
                    execution_id: None,
                });
                self.episode(index, vec![Event::ExecutionStarted { name, input, parent, version }]);
            }
            Some(outcome) => {
                if let Some((parent, task_id)) = self.instances[index].parent {
                    let reply = match outcome {
                        Event::ExecutionCompleted { result } => {
                            Event::SubOrchestrationCompleted { id: task_id, result }
                        }
                        Event::ExecutionFailed { error } | Event::ExecutionTerminated { reason: error } => {
                            Event::SubOrchestrationFailed { id: task_id, error }
                        }
                        _ => return,
                    };
                    self.episode(parent, vec![reply]);
                }
            }
            None => {}
        }
    }

    /// Runs activities and sub-orchestrations (and, under [`Timers::AtOnce`], timers) until the
    /// orchestration finishes or waits for the test.
    pub async fn run_until_idle(&mut self) {
        loop {
            if let Some((entity, request)) = self.entity_ops.pop_front() {
                self.apply_entity(&entity, request);
                continue;
            }
            if let Some((index, (task_id, name, input))) =
                self.instances.iter_mut().enumerate().find_map(|(i, inst)| inst.tasks.pop_front().map(|t| (i, t)))
            {
                if self.instances[index].exec.outcome().is_some() {
                    continue;
                }
                self.calls.push((name.clone(), input.clone()));
                let result = match self.stubs.get(&name) {
                    Some(stub) => stub(input),
                    None => {
                        let ctx = ActivityContext {
                            instance_id: self.instances[index].id.clone(),
                            execution_id: self.instances[index].continues.to_string(),
                            name: name.clone(),
                            task_id,
                        };
                        self.registry.run_activity(ctx, input).await
                    }
                };
                let event = match result {
                    Ok(result) => Event::TaskCompleted { id: task_id, result },
                    Err(error) => Event::TaskFailed { id: task_id, error },
                };
                self.episode(index, vec![event]);
                continue;
            }
            if self.timers == Timers::AtOnce {
                // The clock jumps to the next timer or scheduled signal, whichever is first.
                let signal = self.scheduled.iter().map(|(at, _, _)| *at).min();
                match (self.earliest_timer(), signal) {
                    (None, None) => return,
                    (Some((index, at)), next) if next.is_none_or(|s| at < s) => {
                        self.now = self.now.max(at);
                        self.fire_due(Some(index));
                    }
                    (_, Some(at)) => {
                        self.now = self.now.max(at);
                        self.release_scheduled();
                    }
                    (Some(_), None) => unreachable!("covered by the arm above"),
                }
                continue;
            }
            return;
        }
    }

    /// Moves the scheduled signals now due to the operations to apply; whether there were any.
    fn release_scheduled(&mut self) -> bool {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.scheduled).into_iter().partition(|(at, _, _)| *at <= now);
        self.scheduled = later;
        let any = !due.is_empty();
        for (_, entity, request) in due {
            self.entity_ops.push_back((entity, request));
        }
        any
    }

    /// Queues a request for an entity: now, or at its time when it is scheduled for later.
    fn send_to_entity(&mut self, entity: String, request: EntityRequest, at: Option<DateTime<Utc>>) {
        match at {
            Some(at) if at > self.now => self.scheduled.push((at, entity, request)),
            _ => self.entity_ops.push_back((entity, request)),
        }
    }

    /// Applies a request to an in-memory entity with the entity's registered code, and delivers
    /// what it sends: results to orchestrations, requests to entities.
    fn apply_entity(&mut self, instance_id: &str, request: EntityRequest) {
        let Some(entity) = EntityId::from_instance_id(instance_id) else { return };
        let code = match self.registry.entity_code(&entity.name) {
            Ok(code) => Some(code.clone()),
            Err(_) if request.runs_without_code() => None,
            Err(e) => {
                if let Some(caller) = request.caller {
                    self.answer(&caller, Err(e));
                }
                return;
            }
        };
        let row = self.entities.entry(instance_id.to_owned()).or_default();
        let out = row.apply(code.as_ref(), &entity, request, self.now);
        for m in out.outgoing {
            match m {
                Outgoing::Orchestration(reply) => self.answer(&reply.caller, reply.result),
                Outgoing::Entity { entity, request, fire_at } => self.send_to_entity(entity, request, fire_at),
            }
        }
    }

    fn answer(&mut self, caller: &Caller, result: Result<Value, String>) {
        let Some(index) = self.instances.iter().position(|i| i.id == caller.instance_id) else { return };
        if self.instances[index].continues.to_string() != caller.execution_id {
            // For an execution that has since continued as new: dropped, as the engine does.
            return;
        }
        let event = match result {
            Ok(result) => Event::TaskCompleted { id: caller.task_id, result },
            Err(error) => Event::TaskFailed { id: caller.task_id, error },
        };
        self.episode(index, vec![event]);
    }

    /// Starts another orchestration `name` as instance `id` in the same run (sharing its clock and
    /// entities), and runs until idle; read it with [`status_of`](Self::status_of) and
    /// [`output_of`](Self::output_of).
    pub async fn start_another(&mut self, id: &str, name: &str, input: impl Serialize) {
        assert!(self.instances.iter().all(|i| i.id != id), "instance {id} already exists in this run");
        let input = serde_json::to_value(input).unwrap_or_else(|e| panic!("the input does not serialize: {e}"));
        self.begin(id, name, input, None);
        self.run_until_idle().await;
    }

    /// Where the orchestration `id` of this run stands (`None` if there is none).
    pub fn status_of(&self, id: &str) -> Option<Status> {
        self.instances.iter().find(|i| i.id == id).map(|i| match i.exec.outcome() {
            None | Some(Event::ContinuedAsNew { .. }) => Status::Running,
            Some(Event::ExecutionCompleted { .. }) => Status::Completed,
            Some(Event::ExecutionTerminated { .. }) => Status::Terminated,
            Some(_) => Status::Failed,
        })
    }

    /// The output of the orchestration `id` of this run, once it completed.
    pub fn output_of(&self, id: &str) -> Option<&Value> {
        match self.instances.iter().find(|i| i.id == id)?.exec.outcome() {
            Some(Event::ExecutionCompleted { result }) => Some(result),
            _ => None,
        }
    }

    /// Signals `entity` from the test (as a client would), then runs until idle.
    pub async fn signal_entity(&mut self, entity: &EntityId, operation: &str, input: impl Serialize) {
        let input = serde_json::to_value(input).unwrap_or_else(|e| panic!("the input does not serialize: {e}"));
        self.event_count += 1;
        let request = EntityRequest {
            id: format!("test-signal-{}", self.event_count),
            operation: operation.to_owned(),
            input,
            ..EntityRequest::default()
        };
        self.entity_ops.push_back((entity.instance_id(), request));
        self.run_until_idle().await;
    }

    /// The orchestration (`instance|execution`) whose critical section holds `entity`, if one does.
    pub fn entity_locked_by(&self, entity: &EntityId) -> Option<&str> {
        self.entities.get(&entity.instance_id()).and_then(|row| row.lock.as_deref())
    }

    /// The state of `entity`, or `None` when it does not exist.
    pub fn entity_state(&self, entity: &EntityId) -> Option<&Value> {
        self.entities.get(&entity.instance_id()).and_then(|row| row.state.as_ref())
    }

    fn earliest_timer(&self) -> Option<(usize, DateTime<Utc>)> {
        self.instances
            .iter()
            .enumerate()
            .filter(|(_, inst)| inst.exec.outcome().is_none())
            .flat_map(|(i, inst)| inst.timers.iter().map(move |(at, _)| (i, *at)))
            .min_by_key(|(_, at)| *at)
    }

    /// Fires the timers due at the test's time (of one instance, or of all), earliest first.
    fn fire_due(&mut self, only: Option<usize>) {
        loop {
            let due = self
                .instances
                .iter()
                .enumerate()
                .filter(|(i, inst)| only.is_none_or(|o| o == *i) && inst.exec.outcome().is_none())
                .flat_map(|(i, inst)| inst.timers.iter().map(move |(at, id)| (*at, i, *id)))
                .filter(|(at, _, _)| *at <= self.now)
                .min();
            let Some((_, index, id)) = due else { return };
            self.instances[index].timers.retain(|(_, t)| *t != id);
            self.episode(index, vec![Event::TimerFired { id }]);
        }
    }

    /// Raises the event `name` with `value` on the orchestration, then runs it until idle.
    pub async fn raise_event(&mut self, name: &str, value: impl Serialize) {
        let input = serde_json::to_value(value).unwrap_or_else(|e| panic!("the event does not serialize: {e}"));
        self.event_count += 1;
        let key = format!("test-event-{}", self.event_count);
        self.episode(0, vec![Event::EventRaised { name: name.to_owned(), input, key }]);
        self.run_until_idle().await;
    }

    /// Moves the clock forward by `by`, fires the timers now due, and runs until idle.
    pub async fn advance(&mut self, by: Duration) {
        self.now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        self.fire_due(None);
        self.release_scheduled();
        self.run_until_idle().await;
    }

    /// Terminates the orchestration with `reason` (releasing the locks it holds), then runs until
    /// idle.
    pub async fn terminate(&mut self, reason: &str) {
        self.episode(0, vec![Event::ExecutionTerminated { reason: reason.to_owned() }]);
        self.run_until_idle().await;
    }

    /// The test's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Where the orchestration stands.
    pub fn status(&self) -> Status {
        self.status_of(&self.instances[0].id).expect("the first instance exists")
    }

    /// Its output, once it completed.
    pub fn output(&self) -> Option<&Value> {
        self.output_of(&self.instances[0].id)
    }

    /// Its output as `T`, once it completed; panics with the reason otherwise.
    pub fn output_as<T: serde::de::DeserializeOwned>(&self) -> T {
        let value = self.output().unwrap_or_else(|| panic!("the orchestration did not complete: {self:?}"));
        serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("the output {value} is not the type: {e}"))
    }

    /// Why it failed or was terminated.
    pub fn error(&self) -> Option<&str> {
        match self.instances[0].exec.outcome() {
            Some(Event::ExecutionFailed { error }) => Some(error),
            Some(Event::ExecutionTerminated { reason }) => Some(reason),
            _ => None,
        }
    }

    /// The custom status it last set.
    pub fn custom_status(&self) -> &Value {
        &self.instances[0].custom_status
    }

    /// The history of its current execution, as `showHistory=true` gives it.
    pub fn history(&self) -> &[Event] {
        self.instances[0].exec.history()
    }

    /// The history of the sub-orchestration `instance_id` (`<parent id>:<step>`).
    pub fn child_history(&self, instance_id: &str) -> Option<&[Event]> {
        self.instances.iter().find(|i| i.id == instance_id).map(|i| i.exec.history())
    }

    /// Every activity call, of the orchestration and its sub-orchestrations, in the order they ran.
    pub fn activity_calls(&self) -> &[(String, Value)] {
        &self.calls
    }

    /// The timers waiting to fire, of the orchestration and its sub-orchestrations.
    pub fn pending_timers(&self) -> Vec<DateTime<Utc>> {
        let mut all: Vec<_> = self
            .instances
            .iter()
            .filter(|i| i.exec.outcome().is_none())
            .flat_map(|i| i.timers.iter().map(|(at, _)| *at))
            .collect();
        all.sort();
        all
    }
}

/// Where replaying a recorded history with the current code went differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The step (the sequence id of the call, timer or sub-orchestration).
    pub step: u64,
    /// What the history recorded at that step.
    pub expected: String,
    /// What the code does there now; `None` when it no longer gets that far.
    pub found: Option<String>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.found {
            Some(found) => {
                write!(f, "step {}: the history has {}, the code now makes {found}", self.step, self.expected)
            }
            None => {
                write!(f, "step {}: the history has {}, which the code no longer reaches", self.step, self.expected)
            }
        }
    }
}

/// Replays a recorded history against the orchestrators of `registry` and reports the first step
/// where the code no longer does what the history recorded.
///
/// `recorded` is what `GET /api/orchestrators/instances/{id}?showHistory=true` answers (its
/// `historyEvents`, and `instanceId` when present), or just the array of events. A history
/// recorded by an older version of the code that the current code replays identically passes;
/// a changed call, a changed order, or a step that is gone is reported. The outcome recorded in
/// the history is not compared: a changed return value is not a replay problem.
pub fn replay_check(registry: &Registry, recorded: &Value) -> Result<(), ReplayCheckError> {
    let (instance_id, events) = match recorded {
        Value::Array(events) => ("replay-check".to_owned(), events.clone()),
        Value::Object(o) => {
            let events = o.get("historyEvents").and_then(Value::as_array).cloned().ok_or_else(|| {
                ReplayCheckError::Unreadable("no `historyEvents`: save the status with ?showHistory=true".to_owned())
            })?;
            let id = o.get("instanceId").and_then(Value::as_str).unwrap_or("replay-check").to_owned();
            (id, events)
        }
        _ => return Err(ReplayCheckError::Unreadable("not a status object or an array of events".to_owned())),
    };
    let mut history = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let event: Event =
            serde_json::from_value(e).map_err(|err| ReplayCheckError::Unreadable(format!("event {i}: {err}")))?;
        // The recorded end is not replayed: the code's own end is what is being checked.
        if !event.is_terminal() {
            history.push(event);
        }
    }
    if !history.iter().any(|e| matches!(e, Event::ExecutionStarted { .. })) {
        return Err(ReplayCheckError::Unreadable("the history has no ExecutionStarted event".to_owned()));
    }
    let exec = Execution::replay(Arc::new(registry.clone()), &instance_id, "replay-check", history);
    if let Some(Event::ExecutionFailed { error }) = exec.outcome()
        && error.starts_with("no orchestrator named")
    {
        return Err(ReplayCheckError::Unreadable(error.clone()));
    }
    match exec.divergence() {
        Some(d) => Err(ReplayCheckError::Diverged(d)),
        None => Ok(()),
    }
}

/// Why [`replay_check`] did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayCheckError {
    /// The code no longer replays the history.
    #[error(
        "non-deterministic: {0}; instances in flight would fail on this code: register the changed code as a new \
         version (Registry::orchestrator_version) and keep the recorded version's code until none of its instances is left"
    )]
    Diverged(Divergence),
    /// The input is not a history this code can replay.
    #[error("cannot replay: {0}")]
    Unreadable(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::{ActivityContext, Either, OrchestrationContext, TaskError, race};
    use serde_json::json;

    async fn sequence(ctx: OrchestrationContext, names: Vec<String>) -> Result<Vec<String>, TaskError> {
        let mut out = Vec::new();
        for n in names {
            out.push(ctx.call_activity("Greet", &n).await?);
        }
        ctx.set_custom_status(out.len());
        Ok(out)
    }

    async fn greet(_ctx: ActivityContext, name: String) -> Result<String, String> {
        if name.is_empty() { Err("no name".into()) } else { Ok(format!("hi {name}")) }
    }

    async fn approval(ctx: OrchestrationContext, _: Value) -> Result<String, TaskError> {
        match ctx.wait_for_event_with_timeout::<bool>("Approval", Duration::from_secs(3600)).await? {
            Some(true) => Ok("approved".into()),
            Some(false) => Ok("rejected".into()),
            None => Ok("timed out".into()),
        }
    }

    async fn parent(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
        let a: Vec<String> = ctx.call_sub_orchestrator("Sequence", vec!["a".to_owned(); n as usize]).await?;
        ctx.sleep(Duration::from_secs(60)).await;
        Ok(a.len() as u64)
    }

    async fn countdown(ctx: OrchestrationContext, n: u64) -> Result<String, TaskError> {
        if n == 0 {
            return Ok("liftoff".into());
        }
        ctx.sleep(Duration::from_secs(1)).await;
        ctx.continue_as_new(n - 1);
        Ok(String::new())
    }

    async fn tally(ctx: OrchestrationContext, n: u64) -> Result<i64, TaskError> {
        let counter = EntityId::new("Counter", "t");
        ctx.signal_entity_at(&counter, "add", 100, ctx.now() + chrono::Duration::hours(1));
        for _ in 0..n {
            ctx.signal_entity(&counter, "add", 1);
        }
        let before: i64 = ctx.call_entity(&counter, "get", ()).await?;
        ctx.sleep(Duration::from_secs(7200)).await;
        let after: i64 = ctx.call_entity(&counter, "get", ()).await?;
        if ctx.call_entity::<i64>(&counter, "add", -1).await.is_ok() {
            return Err(TaskError::new("a negative amount was accepted"));
        }
        Ok(before * 1000 + after)
    }

    /// Locks two counters, tries what a section forbids, waits for `go`, then adds and reads.
    async fn holder(ctx: OrchestrationContext, forget: bool) -> Result<i64, TaskError> {
        let (t, u) = (EntityId::new("Counter", "t"), EntityId::new("Counter", "u"));
        let section = ctx.lock_entities(&[u.clone(), t.clone(), t.clone()]).await?;
        let nested = ctx.lock_entities(&[EntityId::new("Counter", "v")]).await.unwrap_err();
        let outside = ctx.call_entity::<i64>(&EntityId::new("Counter", "v"), "get", ()).await.unwrap_err();
        let child = ctx.call_sub_orchestrator::<Value>("Sequence", ["x"]).await.unwrap_err();
        ctx.set_custom_status(json!([nested.message, outside.message, child.message]));
        let go: i64 = ctx.wait_for_event("go").await?;
        ctx.call_entity::<Value>(&t, "add", go).await?;
        let n: i64 = ctx.call_entity(&t, "get", ()).await?;
        if forget {
            // Never released by the code: the engine releases it as the orchestration ends.
            std::mem::forget(section);
        }
        Ok(n)
    }

    /// Races a lock on `t` against a minute; then locks `u` (nothing leaked from the lost race).
    async fn racer(ctx: OrchestrationContext, _: Value) -> Result<String, TaskError> {
        let t = EntityId::new("Counter", "t");
        let verdict = match race(ctx.lock_entities(&[t]), ctx.sleep(Duration::from_secs(60))).await {
            Either::Left(section) => {
                drop(section?);
                "locked"
            }
            Either::Right(()) => "gave up",
        };
        let _u = ctx.lock_entities(&[EntityId::new("Counter", "u")]).await?;
        Ok(verdict.to_owned())
    }

    /// Locks a counter and an entity nobody registered, and calls the latter.
    async fn typo(ctx: OrchestrationContext, _: Value) -> Result<(), TaskError> {
        let nobody = EntityId::new("Nobody", "x");
        let _section = ctx.lock_entities(&[EntityId::new("Counter", "t"), nobody.clone()]).await?;
        ctx.call_entity::<Value>(&nobody, "get", ()).await?;
        Ok(())
    }

    /// `Holder` as it might be changed: after the lock, an activity instead of the entity calls.
    async fn changed_holder(ctx: OrchestrationContext, _: bool) -> Result<i64, TaskError> {
        let _section = ctx.lock_entities(&[EntityId::new("Counter", "t"), EntityId::new("Counter", "u")]).await?;
        ctx.call_activity::<String>("Greet", "x").await?;
        Ok(0)
    }

    fn registry() -> Registry {
        Registry::new()
            .orchestrator("Holder", holder)
            .orchestrator("Racer", racer)
            .orchestrator("Typo", typo)
            .orchestrator("Tally", tally)
            .entity("Counter", crate::durable::entity::tests::add_only_counter)
            .orchestrator("Sequence", sequence)
            .activity("Greet", greet)
            .orchestrator("Approval", approval)
            .orchestrator("Parent", parent)
            .orchestrator("Countdown", countdown)
    }

    #[tokio::test]
    async fn real_and_stubbed_activities() {
        let run = OrchestrationTest::new(registry()).run("Sequence", ["a", "b"]).await;
        assert_eq!(run.status(), Status::Completed);
        assert_eq!(run.output_as::<Vec<String>>(), ["hi a", "hi b"]);
        assert_eq!(run.custom_status(), &json!(2));
        assert_eq!(run.activity_calls().len(), 2);
        assert_eq!(run.history().iter().filter(|e| matches!(e, Event::TaskCompleted { .. })).count(), 2);

        let run = OrchestrationTest::new(registry())
            .stub_activity("Greet", |input| if input == "b" { Err("b is down".into()) } else { Ok(json!("stub")) })
            .run("Sequence", ["a", "b", "c"])
            .await;
        assert_eq!(run.status(), Status::Failed);
        assert!(run.error().unwrap().contains("b is down"), "{run:?}");
        assert_eq!(run.activity_calls().len(), 2, "c is never called");
    }

    #[tokio::test]
    async fn events_and_timers_at_once_or_on_demand() {
        // Timers at once: the timeout fires, the clock jumps an hour.
        let run = OrchestrationTest::new(registry()).run("Approval", json!(null)).await;
        assert_eq!(run.output(), Some(&json!("timed out")));
        assert_eq!((run.now() - OrchestrationTest::new(registry()).start).num_seconds(), 3600);

        // On demand: it waits; an event decides.
        let mut run = OrchestrationTest::new(registry()).timers(Timers::OnDemand).start("Approval", json!(null)).await;
        assert_eq!(run.status(), Status::Running);
        assert_eq!(run.pending_timers().len(), 1);
        run.advance(Duration::from_secs(1800)).await;
        assert_eq!(run.status(), Status::Running, "half the timeout");
        run.raise_event("Approval", true).await;
        assert_eq!(run.output(), Some(&json!("approved")));

        let mut run = OrchestrationTest::new(registry()).timers(Timers::OnDemand).start("Approval", json!(null)).await;
        run.advance(Duration::from_secs(3600)).await;
        assert_eq!(run.output(), Some(&json!("timed out")));
    }

    #[tokio::test]
    async fn sub_orchestrations_and_continue_as_new() {
        let run = OrchestrationTest::new(registry()).run("Parent", 3).await;
        assert_eq!(run.output(), Some(&json!(3)));
        assert!(run.child_history("test:0:0000").is_some_and(|h| h.len() > 3));

        let run = OrchestrationTest::new(registry()).run("Countdown", 5).await;
        assert_eq!(run.output(), Some(&json!("liftoff")));
        assert_eq!((run.now() - OrchestrationTest::new(registry()).start).num_seconds(), 5);

        let mut run = OrchestrationTest::new(registry()).timers(Timers::OnDemand).start("Countdown", 5).await;
        run.terminate("enough").await;
        assert_eq!((run.status(), run.error()), (Status::Terminated, Some("enough")));
    }

    #[tokio::test]
    async fn entities_are_signalled_called_and_scheduled() {
        let run = OrchestrationTest::new(registry()).run("Tally", 5).await;
        // The five signals come before the call (one sender's order); the scheduled one an hour later.
        assert_eq!(run.output(), Some(&json!(5 * 1000 + 105)), "{run:?}");
        assert_eq!(run.entity_state(&EntityId::new("Counter", "t")), Some(&json!(105)));
        let replayed = json!({"historyEvents": run.history()});
        replay_check(&registry(), &replayed).unwrap();
    }

    #[tokio::test]
    async fn the_replay_check_passes_the_same_code_and_names_the_first_changed_step() {
        let run = OrchestrationTest::new(registry()).run("Sequence", ["a", "b", "c"]).await;
        let recorded = json!({"instanceId": "i-1", "historyEvents": run.history()});
        replay_check(&registry(), &recorded).unwrap();
        replay_check(&registry(), &recorded["historyEvents"]).unwrap();

        // The second call now goes to another activity.
        async fn changed(ctx: OrchestrationContext, names: Vec<String>) -> Result<Vec<String>, TaskError> {
            let mut out = Vec::new();
            for (i, n) in names.into_iter().enumerate() {
                let activity = if i == 1 { "Welcome" } else { "Greet" };
                out.push(ctx.call_activity(activity, &n).await?);
            }
            Ok(out)
        }
        let edited = Registry::new().orchestrator("Sequence", changed).activity("Greet", greet);
        let err = replay_check(&edited, &recorded).unwrap_err();
        let ReplayCheckError::Diverged(d) = &err else { panic!("{err}") };
        assert_eq!(d.step, 1);
        assert_eq!(d.expected, "a call to activity `Greet`");
        assert_eq!(d.found.as_deref(), Some("a call to activity `Welcome`"));
        assert!(err.to_string().contains("step 1"), "{err}");

        // The code stops before the recorded calls end.
        async fn shorter(ctx: OrchestrationContext, names: Vec<String>) -> Result<Vec<String>, TaskError> {
            let first: String = ctx.call_activity("Greet", &names[0]).await?;
            Ok(vec![first])
        }
        let edited = Registry::new().orchestrator("Sequence", shorter).activity("Greet", greet);
        let ReplayCheckError::Diverged(d) = replay_check(&edited, &recorded).unwrap_err() else { panic!() };
        assert_eq!((d.step, d.found), (1, None));

        // Not a history.
        assert!(matches!(
            replay_check(&registry(), &json!({"runtimeStatus": "Completed"})),
            Err(ReplayCheckError::Unreadable(_))
        ));
        let unknown = Registry::new();
        assert!(matches!(replay_check(&unknown, &recorded), Err(ReplayCheckError::Unreadable(_))));
    }

    #[tokio::test]
    async fn a_critical_section_holds_others_back_until_it_ends() {
        let (t, u) = (EntityId::new("Counter", "t"), EntityId::new("Counter", "u"));
        for forget in [false, true] {
            let mut run = OrchestrationTest::new(registry()).timers(Timers::OnDemand).start("Holder", forget).await;
            assert_eq!(run.status(), Status::Running);
            assert_eq!((run.entity_locked_by(&t), run.entity_locked_by(&u)), (Some("test|0"), Some("test|0")));
            let refusals = run.custom_status().to_string();
            assert!(refusals.contains("do not nest") && refusals.contains("only its locked entities"), "{refusals}");
            assert!(refusals.contains("cannot start sub-orchestrations"), "{refusals}");
            // A client's signal waits while the section holds the counter.
            run.signal_entity(&t, "add", 100).await;
            assert_eq!(run.entity_state(&t), None);
            run.raise_event("go", 5).await;
            assert_eq!(run.output(), Some(&json!(5)), "the held-back signal came after the section's operations");
            assert_eq!(run.entity_state(&t), Some(&json!(105)), "and was applied once it ended");
            assert_eq!((run.entity_locked_by(&t), run.entity_locked_by(&u)), (None, None));
            let at_end =
                run.history().iter().filter(|e| matches!(e, Event::EntityUnlockSent { at_end: true, .. })).count();
            assert_eq!(at_end, if forget { 2 } else { 0 });
            // The engine's releases are not the code's steps: the history replays cleanly.
            let recorded = serde_json::to_value(run.history()).unwrap();
            replay_check(&registry(), &recorded).unwrap();
        }
    }

    #[tokio::test]
    async fn a_terminated_orchestration_releases_its_locks() {
        let t = EntityId::new("Counter", "t");
        let mut run = OrchestrationTest::new(registry()).timers(Timers::OnDemand).start("Holder", false).await;
        run.signal_entity(&t, "add", 1).await;
        assert_eq!(run.entity_state(&t), None);
        run.terminate("enough").await;
        assert_eq!(run.status(), Status::Terminated);
        assert_eq!(run.entity_locked_by(&t), None);
        assert_eq!(run.entity_state(&t), Some(&json!(1)));
        assert!(
            run.history().last().is_some_and(|e| matches!(e, Event::ExecutionTerminated { .. })),
            "the end is last"
        );
    }

    #[tokio::test]
    async fn a_lock_given_up_on_is_released_once_taken_and_locks_never_leak() {
        let (t, u) = (EntityId::new("Counter", "t"), EntityId::new("Counter", "u"));
        let mut run = OrchestrationTest::new(registry()).timers(Timers::OnDemand).start("Holder", false).await;
        run.start_another("racer", "Racer", Value::Null).await;
        assert_eq!(run.status_of("racer"), Some(Status::Running), "waiting for t");
        run.advance(Duration::from_secs(60)).await;
        // It gave up on t and waits for u, which Holder still holds.
        assert_eq!(run.status_of("racer"), Some(Status::Running));
        run.raise_event("go", 1).await;
        assert_eq!(run.output_of("racer"), Some(&json!("gave up")));
        assert_eq!((run.entity_locked_by(&t), run.entity_locked_by(&u)), (None, None));

        // An operation on an entity nobody registered fails, and its lock is released all the same.
        run.start_another("typo", "Typo", Value::Null).await;
        assert_eq!(run.status_of("typo"), Some(Status::Failed));
        assert_eq!(run.entity_locked_by(&EntityId::new("Nobody", "x")), None);
        assert_eq!(run.entity_locked_by(&t), None);
    }

    /// A code change found while replaying inside a critical section fails the instance (it does not
    /// hang), and the engine releases the locks as it records the failure.
    #[tokio::test]
    async fn a_change_found_inside_a_section_fails_the_instance_and_releases() {
        let mut run = OrchestrationTest::new(registry()).timers(Timers::OnDemand).start("Holder", false).await;
        run.raise_event("go", 1).await;
        let recorded: Vec<Event> = run.history().to_vec();
        let changed = Arc::new(registry().orchestrator("Holder", changed_holder));
        // Everything up to the first entity call after the lock.
        let cut = recorded.iter().position(|e| matches!(e, Event::EntityCalled { .. })).unwrap() + 1;
        let mut exec = Execution::replay(changed.clone(), "test", "0", recorded[..cut].to_vec());
        let episode = exec.run_episode(run.now(), Vec::new());
        let released = episode.events.iter().filter(|e| matches!(e, Event::EntityUnlockSent { at_end: true, .. }));
        assert_eq!(released.count(), 2, "{:?}", episode.events);
        match episode.outcome() {
            Some(Event::ExecutionFailed { error }) => assert!(error.contains("non-deterministic"), "{error}"),
            other => panic!("{other:?}"),
        }
        let divergence = replay_check(&changed, &serde_json::to_value(&recorded).unwrap()).unwrap_err();
        assert!(divergence.to_string().contains("Greet"), "{divergence}");
    }
}
