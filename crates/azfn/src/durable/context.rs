//! [`OrchestrationContext`]: what an orchestrator's code uses to call activities and
//! sub-orchestrators, create timers, wait for events, and read deterministic time and ids.
//!
//! Every durable call returns a future that resolves from history: during replay at once (or when
//! the replay reaches its result), in a live episode when the result arrives in a later episode.
//! The futures register wakers, so `futures::join_all`, `select` and the helpers here all work.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskCx, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::history::Event;

/// An activity, timer, sub-orchestration or event wait that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// What went wrong.
    pub message: String,
}

impl TaskError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

/// The replay state shared by the context and its futures.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub instance_id: String,
    /// The execution the code's ids (`new_guid`, sub-orchestration ids) derive from: this one, or
    /// for a rewound execution the first one rewound.
    pub execution_id: String,
    pub next_id: u64,
    /// Scheduling events of the history being replayed, by sequence id.
    pub expected: HashMap<u64, Event>,
    /// Results applied so far, by sequence id.
    pub results: HashMap<u64, Result<Value, String>>,
    pub wakers: HashMap<u64, Waker>,
    /// External events applied and not yet consumed, by name.
    pub events: HashMap<String, VecDeque<Value>>,
    pub event_wakers: HashMap<String, Vec<Waker>>,
    pub event_keys: HashSet<String>,
    pub now: DateTime<Utc>,
    pub replaying: bool,
    /// Scheduling events the code produced that history does not have yet.
    pub new_actions: Vec<Event>,
    pub nondeterminism: Option<String>,
    /// The first step where the code differs from history: (step, recorded, the code's).
    pub divergence: Option<(u64, Event, Option<Event>)>,
    pub custom_status: Option<Value>,
    pub continue_as_new: Option<Value>,
    pub guid_counter: u64,
    /// Per entity (instance id), the sequence number of this execution's last operation on it.
    pub entity_seq: HashMap<String, u64>,
    /// The entities of the open critical section (asked for or held), in lock order.
    pub locks: Option<Vec<String>>,
    /// Whether the orchestrator's code is being polled (a section dropped outside a poll is the
    /// execution being thrown away, not the code ending the section).
    pub polling: bool,
}

impl State {
    /// The next sequence number of this execution's operations on the entity `target`.
    fn next_entity_seq(&mut self, target: &str) -> u64 {
        let seq = self.entity_seq.entry(target.to_owned()).or_insert(0);
        *seq += 1;
        *seq
    }

    /// Releases the open critical section's locks: one `EntityUnlockSent` per entity, a step of
    /// the code. (When the execution ends with a section open, the engine releases it instead.)
    pub fn release_locks(&mut self) {
        for entity in self.locks.take().unwrap_or_default() {
            let seq = self.next_entity_seq(&entity);
            self.schedule(|id| Event::EntityUnlockSent { id, entity, seq, at_end: false });
        }
    }

    /// Takes the next sequence id for `action`, checking it against history.
    fn schedule(&mut self, make: impl FnOnce(u64) -> Event) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let action = make(id);
        match self.expected.get(&id) {
            Some(previous) => {
                let same = match (previous, &action) {
                    (Event::TaskScheduled { name: a, .. }, Event::TaskScheduled { name: b, .. }) => a == b,
                    (Event::TimerCreated { .. }, Event::TimerCreated { .. }) => true,
                    (
                        Event::SubOrchestrationCreated { name: a, .. },
                        Event::SubOrchestrationCreated { name: b, .. },
                    ) => a == b,
                    (
                        Event::EntityCalled { entity: a, operation: x, .. },
                        Event::EntityCalled { entity: b, operation: y, .. },
                    )
                    | (
                        Event::EntitySignaled { entity: a, operation: x, .. },
                        Event::EntitySignaled { entity: b, operation: y, .. },
                    ) => a == b && x == y,
                    (Event::EntityLockRequested { locks: a, .. }, Event::EntityLockRequested { locks: b, .. }) => {
                        a.iter().map(|l| &l.entity).eq(b.iter().map(|l| &l.entity))
                    }
                    (Event::EntityUnlockSent { entity: a, .. }, Event::EntityUnlockSent { entity: b, .. }) => a == b,
                    _ => false,
                };
                if !same && self.divergence.is_none() {
                    self.divergence = Some((id, previous.clone(), Some(action.clone())));
                }
                if !same && self.nondeterminism.is_none() {
                    self.nondeterminism = Some(format!(
                        "non-deterministic orchestration: step {id} was {} in the recorded history, but the code now \
                         makes {}; was the orchestrator changed while instances were running?",
                        previous.describe(),
                        action.describe()
                    ));
                }
            }
            None => self.new_actions.push(action),
        }
        id
    }

    /// Applies a completion and wakes its future.
    pub fn complete(&mut self, id: u64, result: Result<Value, String>) {
        self.results.insert(id, result);
        if let Some(w) = self.wakers.remove(&id) {
            w.wake();
        }
    }

    /// Buffers an external event and wakes its waiters.
    pub fn raise(&mut self, name: &str, input: Value) {
        self.events.entry(name.to_owned()).or_default().push_back(input);
        for w in self.event_wakers.remove(name).unwrap_or_default() {
            w.wake();
        }
    }
}

/// The orchestrator's handle on its instance. Cheap to clone.
#[derive(Clone)]
pub struct OrchestrationContext {
    pub(crate) state: Arc<Mutex<State>>,
}

impl fmt::Debug for OrchestrationContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrchestrationContext").field("instance_id", &self.instance_id()).finish()
    }
}

/// A future that resolves when the result with its sequence id is in history.
#[derive(Debug)]
pub struct DurableFuture {
    state: Arc<Mutex<State>>,
    id: u64,
}

impl Future for DurableFuture {
    type Output = Result<Value, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.results.get(&self.id) {
            Some(r) => Poll::Ready(r.clone().map_err(TaskError::new)),
            None => {
                s.wakers.insert(self.id, cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A future that resolves with the next external event of a name.
#[derive(Debug)]
pub struct EventFuture {
    state: Arc<Mutex<State>>,
    name: String,
}

impl Future for EventFuture {
    type Output = Value;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Value> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = s.events.get_mut(&self.name).and_then(VecDeque::pop_front) {
            return Poll::Ready(v);
        }
        s.event_wakers.entry(self.name.clone()).or_default().push(cx.waker().clone());
        Poll::Pending
    }
}

fn to_value(input: impl Serialize) -> Value {
    serde_json::to_value(input).unwrap_or(Value::Null)
}

fn from_value<O: DeserializeOwned>(v: Value, what: &str) -> Result<O, TaskError> {
    serde_json::from_value(v)
        .map_err(|e| TaskError::new(format!("{what} returned a value of an unexpected shape: {e}")))
}

/// How to retry a failed activity or sub-orchestration: each wait is a durable timer.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The wait before the second attempt.
    pub first_interval: Duration,
    /// Each wait is the previous one times this (1.0 = fixed).
    pub backoff_coefficient: f64,
    /// The longest wait.
    pub max_interval: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Give up when this much time has passed since the first attempt.
    pub timeout: Option<Duration>,
}

impl RetryPolicy {
    /// `max_attempts` attempts, `first_interval` apart, growing by `backoff_coefficient`.
    pub fn new(max_attempts: u32, first_interval: Duration) -> Self {
        Self {
            first_interval,
            backoff_coefficient: 1.0,
            max_interval: Duration::from_secs(6 * 86_400),
            max_attempts,
            timeout: None,
        }
    }

    /// Sets the back-off coefficient.
    pub fn backoff(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = coefficient;
        self
    }

    /// Sets the longest wait.
    pub fn max_interval(mut self, max: Duration) -> Self {
        self.max_interval = max;
        self
    }

    /// Sets the overall timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The wait after failed attempt `attempt` (1-based).
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = azfn::durable::RetryPolicy::new(5, Duration::from_secs(1)).backoff(2.0).max_interval(Duration::from_secs(5));
    /// assert_eq!(p.delay(1), Duration::from_secs(1));
    /// assert_eq!(p.delay(3), Duration::from_secs(4));
    /// assert_eq!(p.delay(4), Duration::from_secs(5));
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        // In seconds as f64, capped before it becomes a Duration: the factor overflows to infinity
        // after enough attempts (about 1,000 at 2x), which `Duration::mul_f64` would panic on.
        let factor = self.backoff_coefficient.max(0.0).powf(f64::from(attempt.saturating_sub(1)));
        let secs = self.first_interval.as_secs_f64() * factor;
        if secs.is_nan() || secs >= self.max_interval.as_secs_f64() {
            self.max_interval
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }
}

impl OrchestrationContext {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This instance's id.
    pub fn instance_id(&self) -> String {
        self.lock().instance_id.clone()
    }

    /// Whether the code is replaying recorded history (side effects such as logs should be skipped).
    pub fn is_replaying(&self) -> bool {
        self.lock().replaying
    }

    /// The current episode's time: the same on every replay.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    /// A new id, the same on every replay (a name-based UUID of the instance, execution and count).
    pub fn new_guid(&self) -> uuid::Uuid {
        let mut s = self.lock();
        s.guid_counter += 1;
        let name = format!("{}/{}/{}", s.instance_id, s.execution_id, s.guid_counter);
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes())
    }

    /// Sets the custom status the status API shows.
    pub fn set_custom_status(&self, status: impl Serialize) {
        self.lock().custom_status = Some(to_value(status));
    }

    /// Restarts the orchestration with `input` and an empty history once the orchestrator returns
    /// (its return value is then ignored). Use it for eternal orchestrations.
    pub fn continue_as_new(&self, input: impl Serialize) {
        self.lock().continue_as_new = Some(to_value(input));
    }

    /// Logs at info level, except while replaying.
    pub fn log(&self, message: impl fmt::Display) {
        if !self.is_replaying() {
            tracing::info!(instance = %self.instance_id(), "{message}");
        }
    }

    /// Calls the activity `name` with `input`, untyped: resolves with its JSON result.
    pub fn schedule_activity(&self, name: &str, input: impl Serialize) -> DurableFuture {
        let input = to_value(input);
        let id = self.lock().schedule(|id| Event::TaskScheduled { id, name: name.to_owned(), input });
        DurableFuture { state: self.state.clone(), id }
    }

    /// Calls the activity `name` with `input` and reads its result as `O`.
    pub async fn call_activity<O: DeserializeOwned>(&self, name: &str, input: impl Serialize) -> Result<O, TaskError> {
        let v = self.schedule_activity(name, input).await?;
        from_value(v, &format!("activity `{name}`"))
    }

    /// Calls an activity with retries: after a failure, waits (a durable timer) and tries again,
    /// as the policy says; the last error is returned when attempts or time run out.
    pub async fn call_activity_with_retry<O: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
        policy: &RetryPolicy,
    ) -> Result<O, TaskError> {
        let input = to_value(input);
        let started = self.now();
        let mut attempt = 1;
        loop {
            match self.call_activity(name, input.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let out_of_time = policy.timeout.is_some_and(|t| {
                        (self.now() - started).to_std().unwrap_or_default() + policy.delay(attempt) > t
                    });
                    if attempt >= policy.max_attempts || out_of_time {
                        return Err(TaskError::new(format!("{e} (after {attempt} attempts)")));
                    }
                    self.sleep(policy.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Starts the sub-orchestrator `name` with `input` and reads its output as `O`. The child's
    /// instance id is `<this id>:<execution>:<step>` ([`child_instance_id`]): tied to this
    /// execution, so that a `continue_as_new` or a restart in place starts fresh children instead of
    /// meeting the finished ones of the run before.
    pub async fn call_sub_orchestrator<O: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
    ) -> Result<O, TaskError> {
        let input = to_value(input);
        let (id, child) = {
            let mut s = self.lock();
            if s.locks.is_some() {
                // The child could call an entity the section holds, and wait on its parent.
                return Err(TaskError::new(
                    "a critical section cannot start sub-orchestrations (one could wait on an entity the section holds)",
                ));
            }
            let child = child_instance_id(&s.instance_id, &s.execution_id, s.next_id);
            let instance_id = child.clone();
            let id = s.schedule(|id| Event::SubOrchestrationCreated { id, name: name.to_owned(), instance_id, input });
            (id, child)
        };
        let v = DurableFuture { state: self.state.clone(), id }.await;
        let v = v.map_err(|e| TaskError::new(format!("sub-orchestration {child} failed: {e}")))?;
        from_value(v, &format!("sub-orchestrator `{name}`"))
    }

    /// Signals `entity` to apply `operation` with `input`, one-way. The operations this
    /// orchestration signals or calls on one entity are applied in the order it makes them.
    pub fn signal_entity(&self, entity: &super::entity::EntityId, operation: &str, input: impl Serialize) {
        self.signal(entity, operation, to_value(input), None);
    }

    /// Like [`signal_entity`](Self::signal_entity), applied no earlier than `at` (and not ordered
    /// with this orchestration's other operations on the entity).
    pub fn signal_entity_at(
        &self,
        entity: &super::entity::EntityId,
        operation: &str,
        input: impl Serialize,
        at: DateTime<Utc>,
    ) {
        self.signal(entity, operation, to_value(input), Some(at));
    }

    fn signal(&self, entity: &super::entity::EntityId, operation: &str, input: Value, at: Option<DateTime<Utc>>) {
        let mut s = self.lock();
        let target = entity.instance_id();
        // A scheduled signal is applied at its time, outside this orchestration's order (0): the
        // operations after it do not wait for it.
        let seq = if at.is_some() { 0 } else { s.next_entity_seq(&target) };
        s.schedule(|id| Event::EntitySignaled { id, entity: target, operation: operation.to_owned(), input, seq, at });
    }

    /// Calls `operation` on `entity` with `input` and reads its result as `O`; an operation that
    /// fails fails the call with its error.
    pub async fn call_entity<O: DeserializeOwned>(
        &self,
        entity: &super::entity::EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> Result<O, TaskError> {
        let input = to_value(input);
        let id = {
            let mut s = self.lock();
            let target = entity.instance_id();
            if let Some(held) = &s.locks
                && !held.contains(&target)
            {
                return Err(TaskError::new(format!(
                    "inside a critical section only its locked entities can be called, not {entity} (waiting on \
                     another entity while holding locks could deadlock); signal it, or lock it with the others"
                )));
            }
            let seq = s.next_entity_seq(&target);
            s.schedule(|id| Event::EntityCalled { id, entity: target, operation: operation.to_owned(), input, seq })
        };
        let v = DurableFuture { state: self.state.clone(), id }.await?;
        from_value(v, &format!("the result of `{operation}` on {entity}"))
    }

    /// Opens a critical section on `entities`: waits until this orchestration holds all of them,
    /// then answers with the section. While it is held, other callers' operations on those
    /// entities wait; this orchestration calls them as usual (and may call no other entity).
    ///
    /// The locks are taken one entity after another in a fixed order (by name, then key), so two
    /// sections never deadlock. They are released when the section is dropped or
    /// [released](CriticalSection::release), and by the engine when the orchestration ends in
    /// any way (completed, failed, terminated, continued as new). Sections do not nest: asking for
    /// a second one while one is open is an error, and so is starting a sub-orchestration inside
    /// one.
    ///
    /// ```
    /// use azfn::durable::{EntityId, OrchestrationContext, TaskError};
    ///
    /// async fn transfer(ctx: OrchestrationContext, (from, to, amount): (String, String, i64)) -> Result<bool, TaskError> {
    ///     let (from, to) = (EntityId::new("Account", from), EntityId::new("Account", to));
    ///     let _section = ctx.lock_entities(&[from.clone(), to.clone()]).await?;
    ///     let balance: i64 = ctx.call_entity(&from, "balance", ()).await?;
    ///     if balance < amount {
    ///         return Ok(false); // the section ends here: both accounts are released
    ///     }
    ///     ctx.call_entity::<()>(&from, "withdraw", amount).await?;
    ///     ctx.call_entity::<()>(&to, "deposit", amount).await?;
    ///     Ok(true)
    /// }
    /// ```
    pub async fn lock_entities(&self, entities: &[super::entity::EntityId]) -> Result<CriticalSection, TaskError> {
        let (id, held) = {
            let mut s = self.lock();
            if s.locks.is_some() {
                return Err(TaskError::new(
                    "this orchestration already has a critical section open; sections do not nest (release it first)",
                ));
            }
            let mut held: Vec<String> = entities.iter().map(super::entity::EntityId::instance_id).collect();
            held.sort();
            held.dedup();
            if held.is_empty() {
                return Err(TaskError::new("a critical section needs at least one entity to lock"));
            }
            let locks: Vec<super::entity::LockTarget> = held
                .iter()
                .map(|e| super::entity::LockTarget { entity: e.clone(), seq: s.next_entity_seq(e), prev_at: None })
                .collect();
            s.locks = Some(held.clone());
            (s.schedule(|id| Event::EntityLockRequested { id, locks }), held)
        };
        // The section exists from the request on: if the code stops waiting for the locks (a race
        // lost to a timer), dropping it releases them, after they are taken.
        let section = CriticalSection { ctx: self.clone(), entities: held, released: false };
        DurableFuture { state: self.state.clone(), id }.await?;
        Ok(section)
    }

    /// Whether a critical section is open (asked for or held).
    pub fn in_critical_section(&self) -> bool {
        self.lock().locks.is_some()
    }

    /// A durable timer that fires at `fire_at` (any distance in the future).
    pub fn create_timer(&self, fire_at: DateTime<Utc>) -> impl Future<Output = ()> + Send + 'static {
        let id = self.lock().schedule(|id| Event::TimerCreated { id, fire_at });
        let fut = DurableFuture { state: self.state.clone(), id };
        async move {
            let _ = fut.await;
        }
    }

    /// A durable timer that fires `after` from the current episode's time.
    pub fn sleep(&self, after: Duration) -> impl Future<Output = ()> + Send + 'static {
        let at = self.now() + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        self.create_timer(at)
    }

    /// Waits for the next external event `name` (raised with the management API); an event raised
    /// before the wait is kept and returned at once.
    pub fn wait_for_event_raw(&self, name: &str) -> EventFuture {
        EventFuture { state: self.state.clone(), name: name.to_owned() }
    }

    /// Waits for the next external event `name` and reads its payload as `T`.
    pub async fn wait_for_event<T: DeserializeOwned>(&self, name: &str) -> Result<T, TaskError> {
        let v = self.wait_for_event_raw(name).await;
        from_value(v, &format!("event `{name}`"))
    }

    /// Waits for the event `name` or `timeout`, whichever comes first: `Ok(None)` on timeout.
    pub async fn wait_for_event_with_timeout<T: DeserializeOwned>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<T>, TaskError> {
        let event = self.wait_for_event_raw(name);
        let timer = self.sleep(timeout);
        match race(event, timer).await {
            Either::Left(v) => from_value(v, &format!("event `{name}`")).map(Some),
            Either::Right(()) => Ok(None),
        }
    }
}

/// An open critical section: the locks [`lock_entities`](OrchestrationContext::lock_entities)
/// took. Dropping it (or calling [`release`](Self::release)) releases them.
#[must_use = "the locks are released when the section is dropped"]
pub struct CriticalSection {
    ctx: OrchestrationContext,
    entities: Vec<String>,
    released: bool,
}

impl fmt::Debug for CriticalSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CriticalSection").field("entities", &self.entities).finish()
    }
}

impl CriticalSection {
    /// The locked entities, in lock order.
    pub fn entities(&self) -> Vec<super::entity::EntityId> {
        self.entities.iter().filter_map(|e| super::entity::EntityId::from_instance_id(e)).collect()
    }

    /// Releases the locks now (the same as dropping the section).
    pub fn release(mut self) {
        self.release_now();
    }

    fn release_now(&mut self) {
        if !std::mem::replace(&mut self.released, true) {
            self.ctx.lock().release_locks();
        }
    }
}

impl Drop for CriticalSection {
    fn drop(&mut self) {
        // Dropped by the code: its release is a step of the orchestration. Dropped because the
        // execution is thrown away (terminated, evicted): the engine releases at the end instead.
        if !self.released && self.ctx.lock().polling {
            self.release_now();
        }
    }
}

/// Which of two raced futures finished first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first.
    Left(A),
    /// The second.
    Right(B),
}

/// Races two durable futures; the one whose result comes first in history wins (the other is
/// dropped, and an event it waited for stays buffered for a later wait).
pub async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// Waits for all the futures (fan-out/fan-in); results in the order given.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}

/// The instance id of the sub-orchestration that the execution `execution_id` of `instance_id`
/// starts at step `step`: `{instance}:{last 8 characters of the execution id}:{step:04}`.
///
/// ```
/// let id = azfn::durable::context::child_instance_id("order-7", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", 2);
/// assert_eq!(id, "order-7:d3c2b1a0:0002");
/// ```
pub fn child_instance_id(instance_id: &str, execution_id: &str, step: u64) -> String {
    let tail = execution_id.get(execution_id.len().saturating_sub(8)..).unwrap_or(execution_id);
    format!("{instance_id}:{tail}:{step:04}")
}
