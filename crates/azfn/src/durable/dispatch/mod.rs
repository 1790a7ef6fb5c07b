//! The worker side of a task hub: applying control messages to instances (one episode each) and
//! running activity calls from the work queue (`docs/adr/0003-durable-engine.md`).
//!
//! An episode loads the instance (or takes it from the in-memory cache), applies the message's
//! event, commits the new history chunk and status in one ETag-guarded transaction, and only then
//! sends the messages the episode produced (its outbox). A lost ETag race drops the cached state,
//! reloads and tries again; a redelivered message whose event is already in history re-sends the
//! outbox of work still outstanding, so a crash between commit and send loses nothing.
//!
//! Two things keep a sequence off the queues (ADR 0003, "Local chains and batched results"):
//!
//! - **Local chains.** When an episode's only new activity call is one call, the worker that ran
//!   the episode runs it at once instead of sending it, and applies its result in place, for up to
//!   a time budget ([`CHAIN_BUDGET`]). The call is committed as unsent like any other, and the
//!   message that started the chain (a queue message the host holds until the chain ends, or a
//!   start's guard) stays undeleted: after a crash it comes back and re-sends what is unsent.
//! - **Batched results.** Results that arrive for an instance while another of its episodes runs
//!   wait, and the next episode applies them all with one commit (a fan-in of 1,000 results takes
//!   a few dozen commits, not 1,000).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use serde_json::Value;
use tracing::Instrument as _;

use super::entity::EntityId;
use super::error::DurableError;
use super::history::{Event, Parent};
use super::hub::TaskHub;
use super::messages::{Command, ControlMessage, WorkMessage};
use super::registry::{ActivityContext, Registry};
use super::replay::Execution;
use super::store::{InstanceStatus, RuntimeStatus};
use crate::telemetry;

mod entities;

/// Instances kept in memory per process.
const CACHE_CAPACITY: usize = 5_000;
/// The byte budget of the instance cache when [`CACHE_MB_SETTING`] is not set: 256 MiB (a Flex
/// Consumption instance has 2,048 or 4,096 MB).
const CACHE_MB: usize = 256;
/// The app setting that sets the instance cache's budget in MiB of history per process.
pub const CACHE_MB_SETTING: &str = "AZFN_DURABLE_CACHE_MB";
/// Episodes tried for one message when other workers keep winning the ETag race.
const MAX_ATTEMPTS: usize = 10;
/// Messages sent at once from an outbox.
const SEND_CONCURRENCY: usize = 32;
/// `continue_as_new` in a row within one message before the instance is failed.
const MAX_CONTINUES: usize = 100;
/// Results applied in one episode at most (a batch waiting on an instance's lock).
const MAX_BATCH: usize = 100;
/// An outbox of at least this many messages is recorded as sent right after it went out
/// ([`Dispatcher::record_sent`]).
const WIDE_OUTBOX: usize = 32;
/// Activity calls in one work message at most (see [`packs`]).
const MAX_PACK: usize = 16;
/// Work messages a fan-out is sent as at least, before calls are packed together.
const PACKS_WANTED: usize = 32;
/// The largest input (JSON characters) of a call that travels in a pack.
const PACKED_INPUT_CHARS: usize = 2_048;
/// The most JSON one pack holds: base64 makes it 4/3 larger, and a queue message holds 64 KiB.
const PACK_BYTES: usize = 40_000;
/// How long a worker keeps running a sequence's activities itself before it hands the next one to
/// the work queue (the default of the app setting [`CHAIN_BUDGET_SETTING`]).
pub const CHAIN_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);
/// The app setting that sets the local-chain budget in seconds; `0` sends every activity call
/// through the work queue.
pub const CHAIN_BUDGET_SETTING: &str = "AZFN_DURABLE_CHAIN_SECONDS";

/// An instance as a worker holds it between episodes.
struct Live {
    exec: Execution,
    status: InstanceStatus,
    /// The status row's ETag; `None` when the instance is not stored yet (a new sub-orchestration).
    etag: Option<String>,
    /// The events kept in the status row (the end of the history), for the next commit.
    tail: Vec<Event>,
    /// Inbox rows not yet applied.
    inbox: Vec<(String, Event)>,
    /// Whether this state was just read from the table (not taken from the cache, which another
    /// process may have overtaken).
    fresh: bool,
    /// About how much memory it takes: the JSON size of its history (large values included).
    bytes: usize,
}

/// What a process knows of one instance: its live state, if cached, and the actions of the current
/// execution whose messages this process has sent (so that its next commit can take them off the
/// status row's `unsent` list, even after the live state was reloaded).
#[derive(Default)]
struct Held {
    live: Option<Live>,
    sent: Sent,
    /// For an entity: the messages of its row's outbox that this process has sent.
    entity_sent: HashSet<String>,
}

/// Actions of one execution whose messages were sent.
#[derive(Default)]
struct Sent {
    execution_id: String,
    ids: HashSet<u64>,
    /// Whether the messages carried over from the execution before it (continue-as-new) were sent.
    carried: bool,
}

impl Sent {
    /// The sent ids of `execution_id` (none when they belong to an older execution).
    fn of(&mut self, execution_id: &str) -> &mut HashSet<u64> {
        if self.execution_id != execution_id {
            self.execution_id = execution_id.to_owned();
            self.ids.clear();
            self.carried = false;
        }
        &mut self.ids
    }
}

/// One instance's place in the cache: its lock (which serializes its episodes in this process),
/// and the results waiting for it.
#[derive(Default)]
struct Slot {
    held: tokio::sync::Mutex<Held>,
    waiting: Mutex<Vec<Waiting>>,
    /// For an entity: the operations waiting to be applied together in its next write.
    entity_waiting: Mutex<Vec<entities::EntityWaiting>>,
}

/// A result waiting to be applied with others in one episode, and where its outcome goes.
struct Waiting {
    msg: ControlMessage,
    retry: bool,
    done: tokio::sync::oneshot::Sender<Result<(), Told>>,
}

/// Why a batch of results was not applied, as told to each worker whose result was in it.
#[derive(Debug, Clone)]
enum Told {
    /// This worker cannot run the instance ([`DurableError::Elsewhere`]).
    Elsewhere(String),
    /// Other workers kept writing first ([`DurableError::Contended`]).
    Contended(String),
    /// Another failure.
    Failed(String),
}

impl Told {
    /// How `result` is told to the workers whose messages were in the batch.
    fn of<T>(result: &Result<T, DurableError>) -> Result<(), Told> {
        result.as_ref().map(|_| ()).map_err(|e| match e {
            DurableError::Elsewhere(reason) => Told::Elsewhere(reason.clone()),
            DurableError::Contended(reason) => Told::Contended(reason.clone()),
            other => Told::Failed(other.to_string()),
        })
    }

    /// What a worker whose message was in a batch answers, from the batch's outcome (`Err`: the
    /// batch was dropped part-way, its worker's call cancelled).
    fn answer(outcome: Result<Result<(), Told>, tokio::sync::oneshot::error::RecvError>) -> Result<(), DurableError> {
        outcome
            .map_err(|_| DurableError::Conflict("a batch was dropped part-way; the message will be retried".into()))?
            .map_err(DurableError::from)
    }
}

/// What a call with a message waiting in a slot gets first: the lock (it then applies what
/// waits), or the outcome of a batch another call took its message into.
enum Turn<'a> {
    Lock(tokio::sync::MutexGuard<'a, Held>),
    Told(Result<(), DurableError>),
}

/// Waits for the slot's lock, or for the message's outcome if that comes first. A call whose
/// message was already applied does not take the lock in turn: the next waiting batch is then
/// taken by a call that still waits, and waiting batches stay large (a fan-in, a hot entity).
async fn turn<'a>(slot: &'a Slot, outcome: &mut tokio::sync::oneshot::Receiver<Result<(), Told>>) -> Turn<'a> {
    tokio::select! {
        biased;
        told = &mut *outcome => Turn::Told(Told::answer(told)),
        held = slot.held.lock() => Turn::Lock(held),
    }
}

impl From<Told> for DurableError {
    fn from(t: Told) -> Self {
        match t {
            Told::Elsewhere(reason) => DurableError::Elsewhere(reason),
            Told::Contended(reason) => DurableError::Contended(reason),
            Told::Failed(e) => DurableError::Conflict(format!("applying a batch failed: {e}")),
        }
    }
}

/// Whether `msg` is an activity or entity result that can share an episode with others.
fn batchable(msg: &ControlMessage) -> bool {
    msg.execution_id.is_some()
        && msg.command.is_none()
        && msg.entity.is_none()
        && !msg.guard
        && matches!(msg.event, Some(Event::TaskCompleted { .. } | Event::TaskFailed { .. }))
}

/// Takes up to [`MAX_BATCH`] waiting results of one execution (the first waiting one's).
fn take_batch(waiting: &Mutex<Vec<Waiting>>) -> Vec<Waiting> {
    let mut waiting = waiting.lock().expect("waiting lock");
    let Some(execution) = waiting.first().map(|w| w.msg.execution_id.clone()) else { return Vec::new() };
    let mut batch = Vec::new();
    let mut rest = Vec::new();
    for w in waiting.drain(..) {
        if batch.len() < MAX_BATCH && w.msg.execution_id == execution {
            batch.push(w);
        } else {
            rest.push(w);
        }
    }
    *waiting = rest;
    batch
}

/// An activity call that an episode left to the worker that ran it (a local chain), marked as
/// running here until dropped.
pub(crate) struct LocalCall {
    msg: WorkMessage,
    /// Held for the mark's sake: dropping the call unmarks it.
    _running: Running,
}

impl Live {
    /// Whether this state already holds the result of the activity call `msg` (history only grows
    /// within an execution, so the call is done for good).
    fn has_result(&self, msg: &WorkMessage) -> bool {
        self.status.execution_id == msg.execution_id
            && self.exec.history().iter().any(|e| e.completed_id() == Some(msg.task_id))
    }
}

/// The per-process cache: one slot per instance (its lock serializes the instance's episodes in
/// this process), least recently used evicted first once there are more than [`CACHE_CAPACITY`]
/// slots or their instances take more than the cache's byte budget ([`CACHE_MB_SETTING`]).
struct Cache {
    /// Per instance: its slot, when it was last used, and its state's size as last noted.
    slots: HashMap<String, (Arc<Slot>, u64, usize)>,
    tick: u64,
    /// The sum of the noted sizes.
    bytes: usize,
    /// The most bytes of instance state kept.
    budget: usize,
}

impl Default for Cache {
    fn default() -> Self {
        Self { slots: HashMap::new(), tick: 0, bytes: 0, budget: CACHE_MB * 1024 * 1024 }
    }
}

impl Cache {
    fn slot(&mut self, instance_id: &str) -> Arc<Slot> {
        self.tick += 1;
        let tick = self.tick;
        let slot = {
            let entry = self.slots.entry(instance_id.to_owned()).or_default();
            entry.1 = tick;
            entry.0.clone()
        };
        if self.slots.len() > CACHE_CAPACITY {
            // The least recently used tenth of the slots nobody holds.
            self.evict(|cache| cache.slots.len() + CACHE_CAPACITY / 10 > CACHE_CAPACITY);
        }
        slot
    }

    /// Notes the size of `instance_id`'s state (after an episode), and evicts the least recently
    /// used slots nobody holds while the cache is over its byte budget.
    fn note(&mut self, instance_id: &str, bytes: usize) {
        if let Some(entry) = self.slots.get_mut(instance_id) {
            self.bytes = self.bytes - entry.2 + bytes;
            entry.2 = bytes;
        }
        if self.bytes > self.budget {
            self.evict(|cache| cache.bytes > cache.budget);
        }
    }

    /// Evicts idle slots, least recently used first, while `over` says so.
    fn evict(&mut self, over: impl Fn(&Self) -> bool) {
        let mut idle: Vec<(u64, String)> = self
            .slots
            .iter()
            .filter(|(_, (s, _, _))| Arc::strong_count(s) == 1)
            .map(|(k, (_, t, _))| (*t, k.clone()))
            .collect();
        idle.sort();
        for (_, key) in idle {
            if !over(self) {
                break;
            }
            if let Some((_, _, bytes)) = self.slots.remove(&key) {
                self.bytes -= bytes;
            }
        }
    }
}

/// The JSON size of `events`: about what they take in memory.
fn json_size(events: &[Event]) -> usize {
    events.iter().map(|e| serde_json::to_vec(e).map_or(0, |v| v.len())).sum()
}

/// Messages an episode produced, sent after its commit, each with the action it carries out (none
/// for the reply to a parent).
#[derive(Debug, Default)]
struct Outbox {
    execution_id: String,
    control: Vec<(Option<u64>, ControlMessage)>,
    work: Vec<WorkMessage>,
    /// Whether `control` holds the messages carried over from an earlier execution.
    carried: bool,
}

/// What applying a message came to (a short-lived return value, so its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Applied {
    /// Done: keep this state (or forget the instance) and send the outbox.
    Done(Option<Live>, Outbox),
    /// Another worker committed first: reload and try again. `ambiguous`: it may have been this
    /// worker's own commit, whose answer was lost; the outbox of what is found must then be sent.
    Stale { ambiguous: bool },
}

/// Activity calls running in a process: (instance, execution, task id).
type RunningSet = Arc<Mutex<HashSet<(String, String, u64)>>>;

/// An activity call marked as running in this process until dropped, also when its invocation is
/// cancelled part-way (the host gave up on it): a later delivery must then run it.
struct Running {
    set: RunningSet,
    key: (String, String, u64),
}

impl Running {
    /// Marks `key` as running, or `None` if it already is.
    fn claim(set: &RunningSet, key: (String, String, u64)) -> Option<Self> {
        let fresh = set.lock().expect("running lock").insert(key.clone());
        // Built only when claimed: a `Running` dropped here would unmark the copy that runs.
        fresh.then(|| Self { set: set.clone(), key })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.set.lock().expect("running lock").remove(&self.key);
    }
}

/// Runs the orchestrations and activities of a [`Registry`] from a task hub's queues.
pub struct Dispatcher {
    hub: Arc<TaskHub>,
    registry: Arc<Registry>,
    cache: Mutex<Cache>,
    /// Activity calls running in this process (instance, execution, task id): a duplicate of one
    /// (a queue send retried after its answer was lost) is dropped instead of run twice.
    running: RunningSet,
    /// How long a local chain may run ([`CHAIN_BUDGET`]); zero for none.
    chain_budget: std::time::Duration,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("hub", &self.hub.name()).field("registry", &self.registry).finish()
    }
}

impl Dispatcher {
    /// A dispatcher for `registry`'s code on `hub`, with the local-chain budget of the app setting
    /// [`CHAIN_BUDGET_SETTING`] (seconds; [`CHAIN_BUDGET`] when unset).
    pub fn new(hub: Arc<TaskHub>, registry: Arc<Registry>) -> Self {
        let chain_budget = match std::env::var(CHAIN_BUDGET_SETTING) {
            Err(_) => CHAIN_BUDGET,
            Ok(text) => match text.trim().parse::<f64>() {
                Ok(secs) if secs.is_finite() && secs >= 0.0 => std::time::Duration::from_secs_f64(secs),
                _ => {
                    tracing::warn!(
                        "{CHAIN_BUDGET_SETTING}={text:?} is not a number of seconds; using {} s",
                        CHAIN_BUDGET.as_secs()
                    );
                    CHAIN_BUDGET
                }
            },
        };
        let mut cache = Cache::default();
        if let Ok(text) = std::env::var(CACHE_MB_SETTING) {
            match text.trim().parse::<usize>() {
                Ok(mb) => cache.budget = mb.saturating_mul(1024 * 1024),
                Err(_) => tracing::warn!("{CACHE_MB_SETTING}={text:?} is not a whole number of MiB; using {CACHE_MB}"),
            }
        }
        Self { hub, registry, cache: Mutex::new(cache), running: RunningSet::default(), chain_budget }
    }

    /// The same dispatcher with local chains of at most `budget` (zero: every activity call goes
    /// through the work queue).
    pub fn with_chain_budget(mut self, budget: std::time::Duration) -> Self {
        self.chain_budget = budget;
        self
    }

    /// When a local chain starting now must hand over to the queue; `None` when chains are off.
    fn chain_deadline(&self, budget: std::time::Duration) -> Option<tokio::time::Instant> {
        let budget = budget.min(self.chain_budget);
        (!budget.is_zero()).then(|| tokio::time::Instant::now() + budget)
    }

    /// The task hub.
    pub fn hub(&self) -> &Arc<TaskHub> {
        &self.hub
    }

    /// Handles one control message; `dequeue_count` is how many times it has been delivered.
    ///
    /// An error leaves the message on the queue, so the host delivers it again (and parks it in the
    /// poison queue after `maxDequeueCount` attempts).
    pub async fn control(&self, msg: ControlMessage, dequeue_count: u64) -> Result<(), DurableError> {
        super::error::validate_instance_id(&msg.instance_id)?;
        let now = self.hub.now();
        if let Some(at) = msg.fire_at
            && at > now
        {
            let early = (at - now).to_std().unwrap_or_default();
            if msg.entity.is_some() && early <= std::time::Duration::from_secs(2) {
                // A scheduled signal is never applied before its time: the queue's delay counts
                // whole seconds, so the rest is waited here.
                tokio::time::sleep(early).await;
            } else if early > std::time::Duration::from_millis(500) {
                // A timer further away than a queue delay allows: send it on for the rest of the time.
                return self.hub.send_control(&msg, now).await;
            }
        }
        if msg.command == Some(Command::ScheduleTick) {
            // Due now (a later one was sent on above; one less than 500 ms early waits here):
            // every due schedule starts its occurrence.
            if let Some(early) = msg.fire_at.and_then(|at| (at - self.hub.now()).to_std().ok()) {
                tokio::time::sleep(early).await;
            }
            let client = super::client::DurableClient::new(self.hub.clone(), self.registry.clone());
            super::schedules::Schedules::new(client).fire_due().await?;
            return Ok(());
        }
        if let Some(request) = msg.entity.clone() {
            if let Some(entity) = EntityId::from_instance_id(&msg.instance_id)
                && !self.registry.has_entity(&entity.name)
                && msg.deferred < super::messages::MAX_DEFERRALS
            {
                let reason = format!("this worker has no entity `{}`; left for a worker that has it", entity.name);
                return self.defer_control(msg, &reason).await;
            }
            return match self.entity_message(&msg.instance_id, request).await {
                Err(DurableError::Contended(reason)) => self.requeue_contended(msg, &reason).await,
                other => other,
            };
        }
        // This message is held until the chain ends: after a crash it comes back and re-sends
        // what the chain left unsent.
        let chain = self.chain_deadline(std::time::Duration::MAX);
        match self.apply_message(&msg, dequeue_count > 1 || msg.recover, chain).await {
            Ok(Some(call)) => self.run_chain(call, 1, chain).await,
            Ok(None) => Ok(()),
            Err(DurableError::Elsewhere(reason)) => self.defer_control(msg, &reason).await,
            Err(DurableError::Contended(reason)) => self.requeue_contended(msg, &reason).await,
            Err(e) => {
                self.record_failure(&msg, dequeue_count, &e).await;
                Err(e)
            }
        }
    }

    /// Records on the instance's status that a delivery of `msg` failed with `error` (issue 27,
    /// defect 10): once the host has moved the message to the poison queue, the instance shows why
    /// it waits (`lastError` in its status) instead of looking merely slow. Best effort, and not
    /// for a first failure (most are transient and the retry goes through).
    async fn record_failure(&self, msg: &ControlMessage, dequeue_count: u64, error: &DurableError) {
        if dequeue_count < 2 {
            return;
        }
        let note = format!(
            "the control message {} failed on delivery {dequeue_count} at {}: {error}; after the queue's \
             maxDequeueCount it waits in {}-poison (redrive it once the cause is fixed)",
            msg.id,
            self.hub.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.hub.control_queue(),
        );
        let recorded = async {
            let Some(loaded) = self.hub.store().load(&msg.instance_id).await? else { return Ok(()) };
            let mut status = loaded.status;
            status.last_error = Some(note);
            self.hub.store().commit(&mut status, Some(&loaded.etag), &loaded.tail, &[], &[]).await.map(|_| ())
        };
        if let Err(e) = recorded.await {
            tracing::debug!(instance = %msg.instance_id, "the failed delivery was not recorded: {e}");
        }
        // The cached state's ETag is now stale: the next episode reads the instance again.
        let slot = self.cache.lock().expect("cache lock").slots.get(&msg.instance_id).map(|(s, _, _)| s.clone());
        if let Some(slot) = slot
            && let Ok(mut held) = slot.held.try_lock()
        {
            held.live = None;
        }
    }

    /// Sends `msg` again, to come back after a short random delay, because other workers kept
    /// winning the ETag race for its instance (a hot entity or a wide fan-in on many workers).
    /// Failing it instead would count a delivery, and contention alone must never send a message
    /// to the poison queue. The copy is marked `recover`: an attempt may have committed with its
    /// answer lost.
    async fn requeue_contended(&self, mut msg: ControlMessage, reason: &str) -> Result<(), DurableError> {
        msg.recover |= msg.entity.is_none();
        let now = self.hub.now();
        let delay = std::time::Duration::from_secs(1) + super::clock::jitter(std::time::Duration::from_secs(2));
        tracing::info!(instance = %msg.instance_id, retry_in = ?delay, "{reason}");
        msg.fire_at = Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
        self.hub.send_control(&msg, now).await
    }

    /// Applies a control message to its instance under the instance's lock, retrying lost ETag
    /// races. `retry`: the message may have been applied before without its outbox sent. With a
    /// `chain` deadline not yet passed, an episode's only new activity call is given back to run
    /// here instead of being sent.
    ///
    /// A result waits for the instance's lock with the others that arrive meanwhile: whoever gets
    /// the lock applies all waiting results in one episode and tells the others how it went.
    pub(crate) async fn apply_message(
        &self,
        msg: &ControlMessage,
        retry: bool,
        chain: Option<tokio::time::Instant>,
    ) -> Result<Option<LocalCall>, DurableError> {
        let slot = self.cache.lock().expect("cache lock").slot(&msg.instance_id);
        if !batchable(msg) {
            let mut held = slot.held.lock().await;
            let result = self.apply_locked(&mut held, std::slice::from_ref(msg), retry, chain).await;
            self.note_size(&msg.instance_id, &held);
            return result;
        }
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        slot.waiting.lock().expect("waiting lock").push(Waiting { msg: msg.clone(), retry, done });
        let mut held = match turn(&slot, &mut outcome).await {
            Turn::Told(told) => return told.map(|()| None),
            Turn::Lock(held) => held,
        };
        let mut local = None;
        // Whoever takes the lock applies every result waiting, so no result is left waiting.
        let batch = take_batch(&slot.waiting);
        if !batch.is_empty() {
            let retry = batch.iter().any(|w| w.retry);
            let msgs: Vec<ControlMessage> = batch.iter().map(|w| w.msg.clone()).collect();
            // A chain only for a worker whose own result is in the batch: its message covers the
            // chain only if it is deleted after this episode committed.
            let chain = chain.filter(|_| msgs.iter().any(|m| m.id == msg.id));
            let result = self.apply_locked(&mut held, &msgs, retry, chain).await;
            self.note_size(&msg.instance_id, &held);
            let told = Told::of(&result);
            for w in batch {
                let _ = w.done.send(told.clone());
            }
            local = result?;
        }
        drop(held);
        // Taken by this batch, or by one another call applied (or still applies).
        Told::answer(outcome.await).map(|()| local)
    }

    /// Tells the cache how large the instance's state in `held` now is.
    fn note_size(&self, instance_id: &str, held: &Held) {
        let bytes = held.live.as_ref().map_or(0, |live| live.bytes);
        self.cache.lock().expect("cache lock").note(instance_id, bytes);
    }

    /// [`apply_message`](Self::apply_message) for `msgs` (one message, or results of one
    /// execution), with the instance's lock held.
    async fn apply_locked(
        &self,
        held: &mut Held,
        msgs: &[ControlMessage],
        retry: bool,
        chain: Option<tokio::time::Instant>,
    ) -> Result<Option<LocalCall>, DurableError> {
        let msg = &msgs[0];
        let now = self.hub.now();
        let mut retry = retry;
        for _ in 0..MAX_ATTEMPTS {
            let live = match held.live.take() {
                Some(live) => Live { fresh: false, ..live },
                None => match self.load(&msg.instance_id).await? {
                    Some(live) => live,
                    None => match &msg.event {
                        Some(Event::ExecutionStarted { .. }) if msg.guard => {
                            tracing::debug!(instance = %msg.instance_id, "the start this message guards never happened; dropped");
                            return Ok(None);
                        }
                        Some(Event::ExecutionStarted { name, input, parent, version }) => {
                            let mut live =
                                self.new_instance(&msg.instance_id, name, input.clone(), parent.clone(), now);
                            live.status.version = version.clone();
                            live
                        }
                        None if matches!(msg.command, Some(Command::Rewind { parent_execution: Some(_), .. }))
                            && msg.deferred < super::messages::MAX_DEFERRALS =>
                        {
                            // A rewound parent's word to a child whose first start is still on its
                            // way (the parent failed before the child began): the start will make
                            // the child answer the failed execution, and the start the rewind sent
                            // again is dropped as its duplicate. The child must hear the new
                            // execution once it exists, so the rewind waits for it.
                            return Err(DurableError::Elsewhere(format!(
                                "instance {}: the rewind its parent sent came before the instance's start; it waits for the start",
                                msg.instance_id
                            )));
                        }
                        _ => {
                            tracing::warn!(instance = %msg.instance_id, "a message for an instance that does not exist was dropped");
                            return Ok(None);
                        }
                    },
                },
            };
            let carried_sent = {
                held.sent.of(&live.status.execution_id);
                held.sent.carried
            };
            let span = telemetry::orchestration_span(&live.status.name, &msg.instance_id, &live.status.execution_id);
            let sent = held.sent.of(&live.status.execution_id);
            match self.apply(live, msgs, retry, sent, carried_sent, self.hub.now()).instrument(span.clone()).await? {
                Applied::Done(keep, outbox) => {
                    held.live = keep;
                    return self.hand_over(held, outbox, chain).instrument(span).await;
                }
                Applied::Stale { ambiguous } => retry |= ambiguous,
            }
        }
        Err(DurableError::Contended(format!(
            "instance {}: other workers kept committing first; the message will be retried",
            msg.instance_id
        )))
    }

    /// Sends a committed episode's outbox, under the instance's lock so that the next episode here
    /// knows what went out; with a `chain` deadline not yet passed, keeps back an only activity
    /// call to run here (it stays listed as unsent in the status row until its result is in).
    async fn hand_over(
        &self,
        held: &mut Held,
        mut outbox: Outbox,
        chain: Option<tokio::time::Instant>,
    ) -> Result<Option<LocalCall>, DurableError> {
        let mut local = None;
        // (A call this worker has no activity for goes to the queue, for a worker that has it.)
        if outbox.work.len() == 1
            && self.registry.has_activity(&outbox.work[0].name)
            && chain.is_some_and(|deadline| tokio::time::Instant::now() < deadline)
        {
            let msg = outbox.work.pop().expect("one call");
            // Not claimed: a copy already runs in this process, and applies its result.
            local = Running::claim(&self.running, msg.key()).map(|running| LocalCall { msg, _running: running });
        }
        let carried = outbox.carried;
        let (sent_ids, result) = self.send(outbox.work, outbox.control).await;
        let wide = sent_ids.len() >= WIDE_OUTBOX;
        held.sent.of(&outbox.execution_id).extend(sent_ids);
        if carried && result.is_ok() {
            held.sent.carried = true;
        }
        if wide {
            self.record_sent(held).await;
        }
        result.map(|()| local)
    }

    /// Takes what this process has sent off the status row's `unsent` list at once, in a
    /// status-only write, after a wide outbox went out. Otherwise only this process's next commit
    /// would take them off, and a retried message handled by another worker meanwhile would send
    /// every call of the fan-out without a result again (issue 27, defect 8). Best effort: when
    /// another worker committed first, its state is read again next time, and the trim waits for
    /// this process's next commit.
    async fn record_sent(&self, held: &mut Held) {
        let Some(live) = held.live.take() else { return };
        let sent = held.sent.of(&live.status.execution_id);
        let mut next = live.status.clone();
        next.unsent.retain(|id| !sent.contains(id));
        if next.unsent.len() == live.status.unsent.len() {
            held.live = Some(live);
            return;
        }
        next.last_updated_time = self.hub.now();
        match self.commit_status_only(live, next).await {
            Ok(Applied::Done(keep, _)) => held.live = keep,
            Ok(Applied::Stale { .. }) => {}
            Err(e) => tracing::debug!("the sent messages were not recorded (the next commit will): {e}"),
        }
    }

    /// Runs a new instance's first episode in place, inserting its status and history in one
    /// transaction, and keeps it in the cache. Gives `false` when the instance exists already (the
    /// caller then decides what a start of an existing id does). A first activity call is run here
    /// (a local chain) in a task of its own, within half the start's guard delay; once the chain
    /// has handed its work over, `guard` is taken off the control queue.
    pub(crate) async fn start_new(
        self: &Arc<Self>,
        status: InstanceStatus,
        start: Event,
        guard: Option<crate::storage::ReceivedMessage>,
    ) -> Result<bool, DurableError> {
        let id = status.instance_id.clone();
        let slot = self.cache.lock().expect("cache lock").slot(&id);
        let mut held = slot.held.lock().await;
        if held.live.is_some() {
            return Ok(false);
        }
        let exec = Execution::replay(self.registry.clone(), &id, &status.execution_id, Vec::new());
        let execution_id = status.execution_id.clone();
        let live = Live { exec, status, etag: None, tail: Vec::new(), inbox: Vec::new(), fresh: true, bytes: 0 };
        let msg = ControlMessage::event(&id, Some(&execution_id), start);
        let span = telemetry::orchestration_span(&live.status.name, &id, &execution_id);
        let sent = held.sent.of(&execution_id);
        let (keep, outbox) =
            match self.apply(live, &[msg], false, sent, true, self.hub.now()).instrument(span.clone()).await? {
                Applied::Done(keep, outbox) => (keep, outbox),
                Applied::Stale { .. } => return Ok(false),
            };
        held.live = keep;
        let chain = self.chain_deadline(super::client::START_GUARD_DELAY / 2);
        let local = self.hand_over(&mut held, outbox, chain).instrument(span).await;
        self.note_size(&id, &held);
        drop(held);
        let this = self.clone();
        let finish = async move {
            let mut guard = guard;
            let run = async {
                match local {
                    Ok(Some(call)) => this.run_chain(call, 1, chain).await.is_ok(),
                    Ok(None) => true,
                    // The guard shows up and sends what is unsent.
                    Err(_) => false,
                }
            };
            tokio::pin!(run);
            // While the chain runs, its guard is kept hidden: on another worker it would re-send
            // the call running here, which would then run twice (issue 27, defect 7). If this
            // process dies, the guard shows up within START_GUARD_DELAY and recovers.
            let renew_every = super::client::START_GUARD_DELAY / 2;
            let handed_over = loop {
                tokio::select! {
                    biased;
                    done = &mut run => break done,
                    () = tokio::time::sleep(renew_every), if guard.is_some() => {
                        if let Some(g) = guard.as_mut()
                            && let Err(e) = this.hub.hold_control(g, super::client::START_GUARD_DELAY).await
                        {
                            tracing::debug!(instance = %id, error = %e, "the start's guard could not be held longer");
                        }
                    }
                }
            };
            if let Some(guard) = guard.filter(|_| handed_over)
                && let Err(e) = this.hub.recall_control(&guard).await
            {
                tracing::debug!(instance = %id, error = %e, "the start's guard could not be taken back; it will find the instance started");
            }
        };
        tokio::spawn(finish.in_current_span());
        Ok(true)
    }

    /// Runs the activity calls of a work message (one, or a pack of a fan-out's calls, run at once)
    /// and applies their results (or errors) to the instance.
    pub async fn work(&self, mut msg: WorkMessage, dequeue_count: u64) -> Result<(), DurableError> {
        if msg.also.is_empty() {
            return self.work_one(msg, dequeue_count).await;
        }
        let mut calls = std::mem::take(&mut msg.also);
        calls.insert(0, msg);
        let runs = calls.into_iter().map(|call| self.work_one(call, dequeue_count));
        // Every call runs to its end; the first error fails the message, whose redelivery runs
        // again only the calls whose results are not recorded.
        futures_util::future::join_all(runs).await.into_iter().collect()
    }

    /// Runs one activity call and applies its result (or its error) to the instance.
    async fn work_one(&self, msg: WorkMessage, dequeue_count: u64) -> Result<(), DurableError> {
        super::error::validate_instance_id(&msg.instance_id)?;
        let finished = self.has_result(&msg) || (dequeue_count > 1 && self.has_stored_result(&msg).await?);
        if finished && dequeue_count > 1 {
            // Delivered again after its result was recorded: the attempt that recorded it may have
            // stopped (crashed, or failed to send) before the messages that follow went out, and
            // nothing else would send them. Applied again as a possible redelivery: its result is
            // a duplicate by task id (never recorded twice), and what the status row lists as
            // unsent goes out.
            tracing::debug!(instance = %msg.instance_id, task = msg.task_id, "a finished activity call delivered again; re-sending what is outstanding");
            let again = Event::TaskCompleted { id: msg.task_id, result: Value::Null };
            let again = ControlMessage::event(&msg.instance_id, Some(&msg.execution_id), again);
            return self.apply_message(&again, true, None).await.map(|_| ());
        }
        if finished {
            tracing::debug!(instance = %msg.instance_id, task = msg.task_id, "a duplicate of a finished activity call was dropped");
            return Ok(());
        }
        if !self.registry.has_activity(&msg.name) && msg.deferred < super::messages::MAX_DEFERRALS {
            // A rolling deploy: a worker with the activity takes the call (issue 27, defect 11).
            let mut later = msg;
            later.deferred += 1;
            let delay = super::messages::deferral_delay(later.deferred);
            tracing::warn!(instance = %later.instance_id, task = later.task_id, retry_in = ?delay, "this worker has no activity `{}`; left for a worker that has it", later.name);
            return self.hub.send_work_after(&later, delay).await;
        }
        let Some(running) = Running::claim(&self.running, msg.key()) else {
            // The copy running here applies the result, or fails and is delivered again.
            tracing::debug!(instance = %msg.instance_id, task = msg.task_id, "a duplicate of a running activity call was dropped");
            return Ok(());
        };
        // This message is held until the chain it starts ends: after a crash it comes back, finds
        // its result recorded (or not) and re-sends what the chain left unsent.
        let chain = self.chain_deadline(std::time::Duration::MAX);
        self.run_chain(LocalCall { msg, _running: running }, dequeue_count, chain).await
    }

    /// Runs an activity call, applies its result in place, and goes on with the next call the
    /// episode gives back, until an episode gives none (the orchestration waits for something
    /// else, fans out, or ended) or the `chain` deadline passes (the next call is then sent).
    async fn run_chain(
        &self,
        mut call: LocalCall,
        mut attempt: u64,
        chain: Option<tokio::time::Instant>,
    ) -> Result<(), DurableError> {
        loop {
            let reply = self.run_activity(&call.msg, attempt).await?;
            // The result is applied right here (no queue hop, and three fewer storage requests);
            // the instance's ETag keeps this safe against other workers. If that fails, the
            // result goes through the control queue, marked so that a commit that happened
            // without its outbox is completed.
            match self.apply_or_send(reply, attempt > 1, chain).await? {
                Some(next) => {
                    call = next;
                    attempt = 1;
                }
                None => return Ok(()),
            }
        }
    }

    /// Whether this process's cached state of the instance already holds the call's result.
    fn has_result(&self, msg: &WorkMessage) -> bool {
        let slot = self.cache.lock().expect("cache lock").slots.get(&msg.instance_id).map(|(s, _, _)| s.clone());
        let Some(slot) = slot else { return false };
        let Ok(held) = slot.held.try_lock() else { return false };
        held.live.as_ref().is_some_and(|live| live.has_result(msg))
    }

    /// Like [`has_result`](Self::has_result), loading the instance into the cache if it is not
    /// there: for a call delivered again, which has often run already (its first delivery's answer
    /// or deletion was lost). The load is not wasted: applying the result needs it.
    async fn has_stored_result(&self, msg: &WorkMessage) -> Result<bool, DurableError> {
        let slot = self.cache.lock().expect("cache lock").slot(&msg.instance_id);
        let mut held = slot.held.lock().await;
        if held.live.is_none() {
            held.live = self.load(&msg.instance_id).await?;
        }
        Ok(held.live.as_ref().is_some_and(|live| live.has_result(msg)))
    }

    /// Runs one activity call; gives the message carrying its result (or its error).
    async fn run_activity(&self, msg: &WorkMessage, attempt: u64) -> Result<ControlMessage, DurableError> {
        let mut input = msg.input.clone();
        self.hub.resolve(&mut input).await?;
        tracing::debug!(instance = %msg.instance_id, task = msg.task_id, activity = %msg.name, "running activity");
        let ctx = ActivityContext {
            instance_id: msg.instance_id.clone(),
            execution_id: msg.execution_id.clone(),
            name: msg.name.clone(),
            task_id: msg.task_id,
        };
        let span = telemetry::activity_span(&msg.name, &msg.instance_id, msg.task_id, attempt);
        let event = match self.registry.run_activity(ctx, input).instrument(span.clone()).await {
            Ok(result) => Event::TaskCompleted { id: msg.task_id, result },
            Err(error) => {
                telemetry::fail(&span, &error);
                tracing::warn!(instance = %msg.instance_id, attempt, "activity {} failed: {error}", msg.name);
                Event::TaskFailed { id: msg.task_id, error }
            }
        };
        Ok(ControlMessage::event(&msg.instance_id, Some(&msg.execution_id), event))
    }

    /// Applies a message in place, or, if that fails, sends it through the control queue.
    pub(crate) async fn apply_or_send(
        &self,
        mut msg: ControlMessage,
        retry: bool,
        chain: Option<tokio::time::Instant>,
    ) -> Result<Option<LocalCall>, DurableError> {
        match self.apply_message(&msg, retry, chain).await {
            Ok(local) => Ok(local),
            Err(e) => {
                tracing::debug!(instance = %msg.instance_id, error = %e, "applying in place failed; sent through the control queue");
                msg.recover = true;
                self.hub.send_control(&msg, self.hub.now()).await.map(|()| None)
            }
        }
    }

    fn new_instance(
        &self,
        instance_id: &str,
        name: &str,
        input: Value,
        parent: Option<Parent>,
        now: DateTime<Utc>,
    ) -> Live {
        let status = InstanceStatus::new(name, instance_id, input, parent, now);
        let exec = Execution::replay(self.registry.clone(), instance_id, &status.execution_id, Vec::new());
        Live { exec, status, etag: None, tail: Vec::new(), inbox: Vec::new(), fresh: true, bytes: 0 }
    }

    /// Why this worker cannot run episodes of `live`, if it cannot: its registry lacks the
    /// orchestrator, or its code does not replay the history (during a rolling deploy, a worker
    /// with the other version can; issue 27, defect 11).
    ///
    /// The flag says the work is left for another worker however long it takes: the instance's
    /// version of its orchestrator is missing here (issue 29), and failing it would break the
    /// promise that an instance runs on its version's code for its whole life. The other reasons
    /// give up after [`MAX_DEFERRALS`](super::messages::MAX_DEFERRALS).
    fn cannot_run(&self, live: &Live) -> Option<(String, bool)> {
        let status = &live.status;
        let version = status.version.as_deref();
        if !self.registry.has_orchestrator_version(&status.name, version) {
            // Versioned code (here, or of the instance) means a version is missing, not the
            // orchestrator: the work waits for a worker with it however long it takes.
            let versioned = version.is_some() || self.registry.has_orchestrator(&status.name);
            let what = match version {
                Some(v) => format!("version {v} of orchestrator `{}`", status.name),
                None if versioned => format!("the unversioned code of orchestrator `{}`", status.name),
                None => format!("orchestrator `{}`", status.name),
            };
            return Some((
                format!("instance {}: this worker has no {what}; left for a worker that has it", status.instance_id),
                versioned,
            ));
        }
        live.exec.divergence().map(|d| {
            let reason = format!(
                "instance {}: this worker's code does not replay its history ({d}); left for a worker whose code does",
                status.instance_id
            );
            (reason, false)
        })
    }

    /// Sends `msg` again, to come back after a back-off, because this worker cannot run it
    /// (`reason`); another worker may take it meanwhile.
    async fn defer_control(&self, mut msg: ControlMessage, reason: &str) -> Result<(), DurableError> {
        msg.deferred = msg.deferred.saturating_add(1);
        let now = self.hub.now();
        let delay = super::messages::deferral_delay(msg.deferred);
        tracing::warn!(instance = %msg.instance_id, deferred = msg.deferred, retry_in = ?delay, "{reason}");
        msg.fire_at = Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
        self.hub.send_control(&msg, now).await
    }

    /// Loads an instance from the table and replays its history.
    async fn load(&self, instance_id: &str) -> Result<Option<Live>, DurableError> {
        let Some(mut loaded) = self.hub.store().load(instance_id).await? else { return Ok(None) };
        for e in loaded.history.iter_mut().chain(loaded.inbox.iter_mut().map(|(_, e)| e)) {
            self.hub.resolve_event(e).await?;
        }
        let bytes = json_size(&loaded.history)
            + loaded.inbox.iter().map(|(_, e)| json_size(std::slice::from_ref(e))).sum::<usize>();
        let exec = Execution::replay(self.registry.clone(), instance_id, &loaded.status.execution_id, loaded.history);
        Ok(Some(Live {
            exec,
            status: loaded.status,
            etag: Some(loaded.etag),
            tail: loaded.tail,
            inbox: loaded.inbox,
            fresh: true,
            bytes,
        }))
    }

    /// Applies `msgs` (one message, or results of one execution) to `live` in one episode and
    /// commits it.
    async fn apply(
        &self,
        mut live: Live,
        msgs: &[ControlMessage],
        retry: bool,
        sent: &HashSet<u64>,
        carried_sent: bool,
        now: DateTime<Utc>,
    ) -> Result<Applied, DurableError> {
        let msg = &msgs[0];
        let status = live.status.runtime_status;
        let for_other_execution = msg.execution_id.as_deref().is_some_and(|x| x != live.status.execution_id);
        if for_other_execution && !live.fresh {
            return Ok(Applied::Stale { ambiguous: false });
        }
        if for_other_execution {
            // Its event is not applied. But a message of the execution that continued as new may
            // be the redelivery of the one whose episode did so, after the commit and before its
            // sends (a crash, a lost answer, a failed send), or the message of a chain that ran
            // into the new execution: what the new execution lists as unsent goes out, or nothing
            // else would send it (issue 27, defect 1).
            tracing::debug!(instance = %msg.instance_id, "a message for an earlier execution was dropped");
            let outbox =
                if retry { self.outstanding(&live, sent, msg.guard.then_some(msg)) } else { Outbox::default() };
            return Ok(Applied::Done(Some(live), outbox));
        }
        // A finished instance runs no code (only a rewind does): what comes for it is a
        // redelivery, which any worker handles.
        let runs_code = !status.is_terminal()
            || (status == RuntimeStatus::Failed && matches!(msg.command, Some(Command::Rewind { .. })));
        if runs_code
            && let Some((reason, always)) = self.cannot_run(&live)
            && (always || msgs.iter().all(|m| m.deferred < super::messages::MAX_DEFERRALS))
        {
            return Err(DurableError::Elsewhere(reason));
        }
        if let Some(Command::Rewind { reason, parent_execution }) = &msg.command {
            if !live.fresh {
                return Ok(Applied::Stale { ambiguous: false });
            }
            return self.rewind(live, reason, &msg.id, parent_execution.as_deref(), retry, sent, now).await;
        }
        if status.is_terminal() {
            // Only a redelivery can matter here: the reply to a parent may not have gone out.
            let outbox =
                if retry { self.outstanding(&live, sent, msg.guard.then_some(msg)) } else { Outbox::default() };
            return Ok(Applied::Done(None, outbox));
        }
        let mut events: Vec<Event> = msgs.iter().filter_map(|m| m.event.clone()).collect();
        for e in events.iter_mut() {
            self.hub.resolve_event(e).await?;
        }
        let terminate = matches!(msg.event, Some(Event::ExecutionTerminated { .. }));
        // Whether the instance is suspended decides what a message does, so it is never decided on
        // a cached state, which may be behind a suspend or resume another worker committed
        // (issue 27, defect 3): a cached state is read again first.
        let suspended_or_resume = status == RuntimeStatus::Suspended || msg.command.is_some();
        if suspended_or_resume && !live.fresh {
            return Ok(Applied::Stale { ambiguous: false });
        }
        if msg.command.is_some() {
            // Suspends and resumes sent one after the other can reach different workers and be
            // applied in the other order: the one sent last decides, and an older one is ignored.
            if let (Some(sent), Some(last)) = (msg.sent_at, live.status.command_time)
                && sent <= last
            {
                return Ok(Applied::Done(Some(live), Outbox::default()));
            }
            if msg.sent_at.is_some() {
                live.status.command_time = msg.sent_at;
            }
        }
        match msg.command {
            Some(Command::Suspend) | Some(Command::Resume)
                if (msg.command == Some(Command::Suspend)) == (status == RuntimeStatus::Suspended) =>
            {
                // Already so: only the command's time is recorded.
                let next = live.status.clone();
                return self.commit_status_only(live, next).await;
            }
            Some(Command::Suspend) => {
                let mut next = live.status.clone();
                next.runtime_status = RuntimeStatus::Suspended;
                next.last_updated_time = now;
                return self.commit_status_only(live, next).await;
            }
            _ => {}
        }
        let resuming = msg.command == Some(Command::Resume);
        if status == RuntimeStatus::Suspended && !resuming && !terminate {
            // Suspended: the events wait in the inbox until the instance is resumed.
            for m in msgs {
                if let Some(e) = m.event.as_ref()
                    && self.hub.store().add_to_inbox(&m.instance_id, &m.id, e).await?
                {
                    live.inbox.push((format!("i{}", m.id), e.clone()));
                }
            }
            // The inbox rows are inserted beside the status row, not under its ETag: the status
            // row is written again under the ETag of the state that saw the instance suspended. A
            // resume committed since (by a worker that could not see these rows) makes this write
            // fail, and the message is applied again on a fresh read, which consumes them; a
            // resume that comes later conflicts with this write, and its worker reads them.
            let unchanged = live.status.clone();
            return self.commit_status_only(live, unchanged).await;
        }

        let consumed: Vec<String> = live.inbox.iter().map(|(k, _)| k.clone()).collect();
        let mut incoming: Vec<Event> = std::mem::take(&mut live.inbox).into_iter().map(|(_, e)| e).collect();
        incoming.extend(events);
        let carried_key =
            |e: &Event| matches!(e, Event::EventRaised { key, .. } if live.status.carried_keys.contains(key));
        let fresh: Vec<Event> =
            incoming.into_iter().filter(|e| !live.exec.is_duplicate(e) && !carried_key(e)).collect();
        if fresh.is_empty() && consumed.is_empty() && !resuming {
            if !live.fresh {
                // The cached state may be behind another process's commits (a result for a step it
                // has not seen looks like nothing new): read the instance again before deciding.
                return Ok(Applied::Stale { ambiguous: false });
            }
            // Nothing new: a redelivery. If it follows a failed attempt, the outbox of that attempt
            // may not have been sent: send what the status row lists as unsent (and this process
            // has not sent since).
            let outbox =
                if retry { self.outstanding(&live, sent, msg.guard.then_some(msg)) } else { Outbox::default() };
            if live.status.last_error.is_some() {
                // A redelivery after recorded failures (a redrive): it goes through now.
                let mut next = live.status.clone();
                next.last_error = None;
                return match self.commit_status_only(live, next).await? {
                    Applied::Done(keep, _) => Ok(Applied::Done(keep, outbox)),
                    stale => Ok(stale),
                };
            }
            return Ok(Applied::Done(Some(live), outbox));
        }

        let Live { mut exec, status: mut next, etag, tail, bytes, .. } = live;
        let live_execution = next.execution_id.clone();
        // Messages carried over from the execution before (continue-as-new): sent before this
        // commit drops them, unless this process sent them already.
        let previous_carried = std::mem::take(&mut next.carried);
        if !carried_sent && !previous_carried.is_empty() {
            let control = previous_carried.into_iter().map(|m| (None, m)).collect();
            self.send(Vec::new(), control).await.1?;
        }
        let mut carried = Vec::new();
        let mut episode = exec.run_episode(now, fresh);
        next.last_updated_time = now;
        let mut continues = 0;
        loop {
            if let Some(custom) = episode.custom_status.take() {
                next.custom_status = custom;
            }
            match episode.outcome().cloned() {
                None => next.runtime_status = RuntimeStatus::Running,
                Some(Event::ExecutionCompleted { result }) => {
                    next.runtime_status = RuntimeStatus::Completed;
                    next.output = result;
                }
                Some(Event::ExecutionFailed { error }) => {
                    next.runtime_status = RuntimeStatus::Failed;
                    next.output = Value::String(error);
                }
                Some(Event::ExecutionTerminated { reason }) => {
                    next.runtime_status = RuntimeStatus::Terminated;
                    next.output = Value::String(reason);
                }
                Some(Event::ContinuedAsNew { input }) if continues < MAX_CONTINUES => {
                    // A new execution replaces this one in the same commit; the old history rows
                    // are left behind (they carry the old execution id) and overwritten later. The
                    // ending execution's messages to entities (signals, releases of its locks),
                    // those of this episode and those still unsent from before, are carried in the
                    // status row until sent.
                    let done: HashSet<u64> = episode.events.iter().filter_map(Event::completed_id).collect();
                    let pending: HashSet<u64> =
                        next.unsent.iter().copied().filter(|id| !sent.contains(id) && !done.contains(id)).collect();
                    let history = exec.history();
                    let this_episode = history.len() - episode.events.len();
                    let times = super::entity::send_times(history);
                    for (i, e) in history.iter().enumerate() {
                        if i < this_episode && !e.scheduled_id().is_some_and(|id| pending.contains(&id)) {
                            continue;
                        }
                        if let Some((entity, mut request, at)) =
                            super::entity::request_for(e, &next.instance_id, &next.execution_id, &times)
                        {
                            self.hub.offload(&entity, &mut request.input).await?;
                            carried.push(ControlMessage::entity(&entity, request, at));
                        }
                    }
                    next.unsent.clear();
                    // Events raised that this execution never waited for go to the next one, as
                    // Durable Functions carries them over (issue 27, defect 1).
                    let mut leftover: Vec<Event> = exec
                        .unconsumed_events()
                        .into_iter()
                        .enumerate()
                        .map(|(i, (name, input))| Event::EventRaised {
                            name,
                            input,
                            key: format!("carried:{}:{i}", next.execution_id),
                        })
                        .collect();
                    // Those that came in this episode after it continued as new keep their keys.
                    leftover.extend(
                        std::mem::take(&mut episode.left_over)
                            .into_iter()
                            .filter(|e| matches!(e, Event::EventRaised { .. })),
                    );
                    // A redelivery of an event this execution applied must not count again in the
                    // next ones (issue 27, defect 1).
                    next.carried_keys.extend(exec.history().iter().filter_map(|e| match e {
                        Event::EventRaised { key, .. } => Some(key.clone()),
                        _ => None,
                    }));
                    let over = next.carried_keys.len().saturating_sub(super::store::CARRIED_KEYS);
                    next.carried_keys.drain(..over);
                    continues += 1;
                    next.execution_id = super::clock::new_id();
                    next.chunks = 0;
                    next.input = input.clone();
                    next.output = Value::Null;
                    exec = Execution::replay(self.registry.clone(), &next.instance_id, &next.execution_id, Vec::new());
                    let start = Event::ExecutionStarted {
                        name: next.name.clone(),
                        input,
                        parent: next.parent.clone(),
                        version: next.version.clone(),
                    };
                    episode = exec.run_episode(now, std::iter::once(start).chain(leftover).collect());
                    continue;
                }
                Some(other) => {
                    next.runtime_status = RuntimeStatus::Failed;
                    next.output = Value::String(format!(
                        "continue_as_new was called {MAX_CONTINUES} times without waiting for anything ({})",
                        other.kind()
                    ));
                }
            }
            break;
        }

        let mut events = episode.events;
        for e in events.iter_mut() {
            self.hub.offload_event(&next.instance_id, e).await?;
        }
        // A commit is one table transaction, at most 4 MiB (DTFx keeps its batches under 3 MB):
        // an episode whose events come to more has its smaller values moved to blobs too (issue
        // 27, defect 5), so that it still commits at once.
        let events_bytes = json_size(&events);
        if events_bytes > super::hub::COMMIT_BYTES {
            for e in events.iter_mut() {
                self.hub.offload_event_over(&next.instance_id, e, 1024).await?;
            }
        }
        for v in [&mut next.input, &mut next.output, &mut next.custom_status] {
            self.hub.offload(&next.instance_id, v).await?;
        }
        // The actions still unsent after this commit: those listed before (none for a new
        // execution), less what this process has sent and what got its result in this episode,
        // plus this episode's own. No listed action had a result before: each commit drops the
        // ones its episode completed. An ended execution keeps only its messages to entities (a
        // release must reach its entity even if the instance ended before it was sent).
        // A new execution (continue-as-new) starts without a tail: the old one's events stay behind.
        let tail = if next.execution_id != live_execution {
            next.unsent.clear();
            Vec::new()
        } else {
            tail
        };
        let done: HashSet<u64> = events.iter().filter_map(Event::completed_id).collect();
        next.unsent.retain(|id| !sent.contains(id) && !done.contains(id));
        next.unsent.extend(events.iter().filter_map(Event::scheduled_id));
        if next.runtime_status.is_terminal() {
            let to_entities: HashSet<u64> =
                exec.history().iter().filter(|e| e.is_entity_message()).filter_map(Event::scheduled_id).collect();
            next.unsent.retain(|id| to_entities.contains(id));
        }
        next.carried = carried;
        next.last_error = None;
        match self.hub.store().commit(&mut next, etag.as_deref(), &tail, &events, &consumed).await {
            Ok(committed) => {
                if next.runtime_status == RuntimeStatus::Failed {
                    // Once, after the commit that recorded it: what `cargo azfn start` shows.
                    let reason = next.output.as_str().map_or_else(|| next.output.to_string(), str::to_owned);
                    tracing::warn!(instance = %next.instance_id, "orchestration {} failed: {reason}", next.name);
                }
                let times = if events.iter().any(Event::is_entity_message) {
                    super::entity::send_times(exec.history().iter().chain(&events))
                } else {
                    Default::default()
                };
                let mut outbox = self.outbox(&next, &events, &times);
                if !next.carried.is_empty() {
                    outbox.carried = true;
                    outbox.control.extend(next.carried.iter().cloned().map(|m| (None, m)));
                }
                // (A new execution's history is this commit's events.)
                let bytes = if next.execution_id == live_execution { bytes + events_bytes } else { events_bytes };
                let keep = (!next.runtime_status.is_terminal()).then(|| Live {
                    exec,
                    status: next,
                    etag: Some(committed.etag),
                    tail: committed.tail,
                    inbox: Vec::new(),
                    fresh: false,
                    bytes,
                });
                Ok(Applied::Done(keep, outbox))
            }
            Err(e) if e.is_precondition_failed() || e.is_conflict() => Ok(Applied::Stale { ambiguous: e.ambiguous }),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies a rewind ([`rewind`](super::super::rewind)): a Failed instance goes on as a new
    /// execution whose history lacks the failures it let through, and what it waits for is sent
    /// again. A child told of its rewound parent's new execution records it, and sends its result
    /// again if it has one (also when it cannot be rewound: its failure then goes to the new
    /// execution). The same request again (its message redelivered, or the guard of one applied in
    /// place) is a redelivery.
    #[allow(clippy::too_many_arguments)]
    async fn rewind(
        &self,
        live: Live,
        reason: &str,
        request: &str,
        parent_execution: Option<&str>,
        retry: bool,
        sent: &HashSet<u64>,
        now: DateTime<Utc>,
    ) -> Result<Applied, DurableError> {
        let id = live.status.instance_id.clone();
        let told = parent_execution
            .filter(|new| live.status.parent.as_ref().is_some_and(|p| p.execution_id.as_deref() != Some(*new)));
        let rewound = match live.status.runtime_status {
            RuntimeStatus::Failed if super::rewind::applied(live.exec.history(), request) => {
                Err("this rewind was applied already, and the instance failed again".to_owned())
            }
            RuntimeStatus::Failed => self.rewound(&live, reason, request, now),
            _ => Err(String::new()),
        };
        let (mut next, mut events, exec, waiting) = match rewound {
            Ok(rewound) => rewound,
            Err(why) => {
                if !why.is_empty() {
                    tracing::warn!(instance = %id, "the rewind was refused: {why}");
                }
                if let Some(new) = told {
                    // The parent was rewound: it hears from this instance from now on, with its
                    // result if it has one (a failure that could not be rewound included).
                    let mut next = live.status.clone();
                    if let Some(parent) = next.parent.as_mut() {
                        parent.execution_id = Some(new.to_owned());
                    }
                    return match self.commit_status_only(live, next.clone()).await? {
                        Applied::Done(keep, _) => {
                            let mut out = Outbox { execution_id: next.execution_id.clone(), ..Outbox::default() };
                            self.parent_reply(&next, &mut out);
                            Ok(Applied::Done(keep.filter(|_| !next.runtime_status.is_terminal()), out))
                        }
                        stale => Ok(stale),
                    };
                }
                let outbox = if retry { self.outstanding(&live, sent, None) } else { Outbox::default() };
                let keep = (!live.status.runtime_status.is_terminal()).then_some(live);
                return Ok(Applied::Done(keep, outbox));
            }
        };
        if let (Some(new), Some(parent)) = (parent_execution, next.parent.as_mut()) {
            parent.execution_id = Some(new.to_owned());
        }
        for e in events.iter_mut() {
            self.hub.offload_event(&id, e).await?;
        }
        if json_size(&events) > super::hub::COMMIT_BYTES {
            for e in events.iter_mut() {
                self.hub.offload_event_over(&id, e, 1024).await?;
            }
        }
        match self.hub.store().commit(&mut next, live.etag.as_deref(), &[], &events, &[]).await {
            Ok(committed) => {
                tracing::info!(instance = %id, "orchestration {} rewound: {reason}", next.name);
                let mut outbox = Outbox { execution_id: next.execution_id.clone(), ..Outbox::default() };
                let times = super::entity::SendTimes::default();
                for e in waiting.iter().filter(|e| !matches!(e, Event::SubOrchestrationCreated { .. })) {
                    self.action_message(&next, e, &times, &mut outbox);
                }
                if !next.carried.is_empty() {
                    outbox.carried = true;
                    outbox.control.extend(next.carried.iter().cloned().map(|m| (None, m)));
                }
                let bytes = json_size(exec.history());
                let keep = Live {
                    exec,
                    status: next,
                    etag: Some(committed.etag),
                    tail: committed.tail,
                    inbox: Vec::new(),
                    fresh: false,
                    bytes,
                };
                Ok(Applied::Done(Some(keep), outbox))
            }
            Err(e) if e.is_precondition_failed() || e.is_conflict() => Ok(Applied::Stale { ambiguous: e.ambiguous }),
            Err(e) => Err(e.into()),
        }
    }

    /// The rewound execution of the Failed instance `live`: its status, its history (the kept
    /// events and the `ExecutionRewound`), its code replayed over them, and the steps it waits for;
    /// or why it is refused.
    fn rewound(
        &self,
        live: &Live,
        reason: &str,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<(InstanceStatus, Vec<Event>, Execution, Vec<Event>), String> {
        let status = &live.status;
        let mut next = status.clone();
        next.execution_id = super::clock::new_id();
        let (events, exec) =
            super::rewind::rewound(&self.registry, status, live.exec.history(), reason, request, &next.execution_id)?;
        next.runtime_status = RuntimeStatus::Running;
        next.output = Value::Null;
        next.last_updated_time = now;
        next.chunks = 0;
        next.last_error = None;
        // What it waits for goes out again, under the new execution: calls and timers (listed as
        // unsent until they are), and to each sub-orchestration its start (for one whose first
        // start never made it) and the rewind that tells it the new execution (both carried in the
        // status row until sent, as a continue-as-new carries messages).
        let waiting: Vec<Event> = super::rewind::waiting(&events).into_iter().cloned().collect();
        next.unsent = waiting
            .iter()
            .filter(|e| !matches!(e, Event::SubOrchestrationCreated { .. }))
            .filter_map(Event::scheduled_id)
            .collect();
        next.carried = Vec::new();
        for e in &waiting {
            let Event::SubOrchestrationCreated { id: task_id, name, instance_id, input } = e else { continue };
            let start = self.child_start(&next, *task_id, name, instance_id, input);
            next.carried.push(start);
            let rewind =
                Command::Rewind { reason: reason.to_owned(), parent_execution: Some(next.execution_id.clone()) };
            next.carried.push(ControlMessage::command(instance_id, rewind));
        }
        Ok((next, events, exec, waiting))
    }

    async fn commit_status_only(&self, live: Live, mut next: InstanceStatus) -> Result<Applied, DurableError> {
        match self.hub.store().commit(&mut next, live.etag.as_deref(), &live.tail, &[], &[]).await {
            Ok(c) => Ok(Applied::Done(
                Some(Live { status: next, etag: Some(c.etag), tail: c.tail, ..live }),
                Outbox::default(),
            )),
            Err(e) if e.is_precondition_failed() || e.is_conflict() => Ok(Applied::Stale { ambiguous: e.ambiguous }),
            Err(e) => Err(e.into()),
        }
    }

    /// The messages for the actions in `events`, and the reply to the parent if the instance ended.
    fn outbox(&self, status: &InstanceStatus, events: &[Event], times: &super::entity::SendTimes) -> Outbox {
        let mut out = Outbox { execution_id: status.execution_id.clone(), ..Outbox::default() };
        for e in events {
            self.action_message(status, e, times, &mut out);
        }
        self.parent_reply(status, &mut out);
        out
    }

    /// The actions the status row lists as unsent (less those without a result that this process
    /// has sent since), and the reply to the parent if the instance ended: what a commit whose
    /// outbox may not have gone out still owes.
    ///
    /// Calls this process runs in a local chain are left out: they apply their results themselves,
    /// and the message that covers the chain is held until it ends. A start's `guard` is that
    /// cover for a chain started by the start, but it is deleted once handled: when it finds such
    /// a call still running (one that outlasted the guard's delay), a new guard goes out in its
    /// place.
    fn outstanding(&self, live: &Live, sent: &HashSet<u64>, guard: Option<&ControlMessage>) -> Outbox {
        let done: HashSet<u64> = live.exec.history().iter().filter_map(Event::completed_id).collect();
        let unsent: HashSet<u64> = live.status.unsent.iter().copied().collect();
        let mut out = Outbox { execution_id: live.status.execution_id.clone(), ..Outbox::default() };
        // (An ended execution lists only its messages to entities.)
        // (A call running here, in a local chain, applies its result itself.)
        let running = self.running.lock().expect("running lock");
        let execution = &live.status.execution_id;
        let here = |id: u64| running.contains(&(live.status.instance_id.clone(), execution.clone(), id));
        let mut renew_guard = false;
        let times = super::entity::send_times(live.exec.history());
        for e in live.exec.history() {
            let Some(id) = e.scheduled_id() else { continue };
            if !unsent.contains(&id) || done.contains(&id) || sent.contains(&id) {
                continue;
            }
            if here(id) {
                renew_guard = true;
            } else {
                self.action_message(&live.status, e, &times, &mut out);
            }
        }
        drop(running);
        if let Some(guard) = guard.filter(|_| renew_guard) {
            let mut next = guard.clone();
            next.id = super::clock::new_id();
            next.fire_at =
                Some(self.hub.now() + chrono::Duration::from_std(super::client::START_GUARD_DELAY).expect("small"));
            out.control.push((None, next));
        }
        if !live.status.carried.is_empty() {
            out.carried = true;
            out.control.extend(live.status.carried.iter().cloned().map(|m| (None, m)));
        }
        self.parent_reply(&live.status, &mut out);
        out
    }

    fn action_message(&self, status: &InstanceStatus, e: &Event, times: &super::entity::SendTimes, out: &mut Outbox) {
        let id = &status.instance_id;
        let execution = Some(status.execution_id.as_str());
        match e {
            Event::TaskScheduled { id: task_id, name, input } => out.work.push(WorkMessage {
                instance_id: id.clone(),
                execution_id: status.execution_id.clone(),
                task_id: *task_id,
                name: name.clone(),
                input: input.clone(),
                traceparent: telemetry::current_traceparent(),
                also: Vec::new(),
                deferred: 0,
            }),
            Event::TimerCreated { id: timer, fire_at } => {
                let mut msg = ControlMessage::event(id, execution, Event::TimerFired { id: *timer });
                msg.fire_at = Some(*fire_at);
                out.control.push((Some(*timer), msg));
            }
            Event::SubOrchestrationCreated { id: task_id, name, instance_id, input } => {
                out.control.push((Some(*task_id), self.child_start(status, *task_id, name, instance_id, input)));
            }
            _ => {
                if let Some((entity, request, at)) = super::entity::request_for(e, id, &status.execution_id, times) {
                    out.control.push((e.scheduled_id(), ControlMessage::entity(&entity, request, at)));
                }
            }
        }
    }

    /// The start message of the sub-orchestration `instance_id` (`name` with `input`) that step
    /// `task_id` of the execution `status` starts: its reply goes to that execution. The child runs
    /// on the version a new start of its orchestrator takes here.
    fn child_start(
        &self,
        status: &InstanceStatus,
        task_id: u64,
        name: &str,
        instance_id: &str,
        input: &Value,
    ) -> ControlMessage {
        let parent = Parent {
            instance_id: status.instance_id.clone(),
            task_id,
            execution_id: Some(status.execution_id.clone()),
        };
        let start = Event::ExecutionStarted {
            name: name.to_owned(),
            input: input.clone(),
            parent: Some(parent),
            version: self.registry.version_for_start(name),
        };
        ControlMessage::event(instance_id, None, start)
    }

    fn parent_reply(&self, status: &InstanceStatus, out: &mut Outbox) {
        let Some(parent) = &status.parent else { return };
        let reply = match status.runtime_status {
            RuntimeStatus::Completed => {
                Event::SubOrchestrationCompleted { id: parent.task_id, result: status.output.clone() }
            }
            // The parent's `call_sub_orchestrator` names the child in its error; a large text was
            // offloaded with the output, and the reply points at the same blob.
            RuntimeStatus::Failed | RuntimeStatus::Terminated => Event::SubOrchestrationFailed {
                id: parent.task_id,
                error: match &status.output {
                    Value::String(s) => s.clone(),
                    other => TaskHub::text_reference(other).unwrap_or_else(|| other.to_string()),
                },
            },
            _ => return,
        };
        out.control.push((None, ControlMessage::event(&parent.instance_id, parent.execution_id.as_deref(), reply)));
    }

    /// Sends an outbox's messages; returns the actions whose messages went out, and the first error.
    async fn send(
        &self,
        work: Vec<WorkMessage>,
        control: Vec<(Option<u64>, ControlMessage)>,
    ) -> (Vec<u64>, Result<(), DurableError>) {
        if work.is_empty() && control.is_empty() {
            return (Vec::new(), Ok(()));
        }
        let now = self.hub.now();
        let hub = self.hub.clone();
        type Send = futures_util::future::BoxFuture<'static, (Vec<u64>, Result<(), DurableError>)>;
        let mut sends: Vec<Send> = Vec::new();
        for (id, m) in control {
            let hub = hub.clone();
            sends.push(Box::pin(async move { (id.into_iter().collect(), hub.send_control(&m, now).await) }));
        }
        for m in packs(work) {
            let hub = hub.clone();
            let ids: Vec<u64> = std::iter::once(m.task_id).chain(m.also.iter().map(|c| c.task_id)).collect();
            sends.push(Box::pin(async move { (ids, hub.send_work(&m).await) }));
        }
        let mut results = futures_util::stream::iter(sends).buffer_unordered(SEND_CONCURRENCY);
        let mut sent = Vec::new();
        let mut first_error = None;
        while let Some((ids, r)) = results.next().await {
            match r {
                Ok(()) => sent.extend(ids),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        (sent, first_error.map_or(Ok(()), Err))
    }
}

/// A fan-out's calls as work messages: one call per message while there are at most
/// [`PACKS_WANTED`] of them (each message can go to another worker); beyond that, calls with small
/// inputs travel in packs of up to [`MAX_PACK`], so that about [`PACKS_WANTED`] messages carry
/// them, a queue send, receive and delete per pack instead of per call.
fn packs(work: Vec<WorkMessage>) -> Vec<WorkMessage> {
    let per = (work.len() / PACKS_WANTED).clamp(1, MAX_PACK);
    if per == 1 {
        return work;
    }
    let mut out: Vec<WorkMessage> = Vec::new();
    let mut open: Option<(WorkMessage, usize)> = None;
    for m in work {
        let small = m.input.to_string().len() <= PACKED_INPUT_CHARS;
        if !small {
            out.push(m);
            continue;
        }
        // (Ids and names count too: an instance id alone may take 1 KiB.)
        let size = serde_json::to_string(&m).map_or(usize::MAX, |t| t.len());
        match open.as_mut() {
            Some((pack, bytes)) if pack.also.len() + 1 < per && *bytes + size <= PACK_BYTES => {
                pack.also.push(m);
                *bytes += size;
            }
            _ => out.extend(open.replace((m, size)).map(|(pack, _)| pack)),
        }
    }
    out.extend(open.map(|(pack, _)| pack));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cache_keeps_instances_within_its_byte_budget_least_recently_used_first() {
        let mut cache = Cache { budget: 1000, ..Cache::default() };
        for id in ["a", "b", "c"] {
            drop(cache.slot(id));
            cache.note(id, 300);
        }
        assert_eq!(cache.bytes, 900);
        // "a" is used again, so "b" is now the least recently used.
        drop(cache.slot("a"));
        drop(cache.slot("d"));
        cache.note("d", 300);
        assert!(!cache.slots.contains_key("b"), "the least recently used goes first");
        assert!(["a", "c", "d"].iter().all(|id| cache.slots.contains_key(*id)));
        assert_eq!(cache.bytes, 900);
        // A held slot stays, even over the budget; an instance that grows makes room.
        let held = cache.slot("a");
        cache.note("a", 900);
        assert!(cache.slots.contains_key("a") && !cache.slots.contains_key("c") && !cache.slots.contains_key("d"));
        assert_eq!(cache.bytes, 900);
        drop(held);
        let e = cache.slot("e");
        cache.note("e", 2000);
        assert_eq!(cache.slots.len(), 1, "only the instance being noted (held) stays: it is over the budget alone");
        assert_eq!(cache.bytes, 2000);
        drop(e);
    }

    use super::*;

    fn call(task_id: u64, input: Value) -> WorkMessage {
        let mut m: WorkMessage = serde_json::from_value(serde_json::json!({
            "instanceId": "i", "executionId": "e", "taskId": task_id, "name": "Add", "input": input
        }))
        .unwrap();
        m.also.clear();
        m
    }

    #[test]
    fn wide_fan_outs_travel_in_packs_and_small_ones_do_not() {
        let calls = |n: u64| (0..n).map(|k| call(k, serde_json::json!(k))).collect::<Vec<_>>();
        assert_eq!(packs(calls(32)).len(), 32, "up to 32 calls: one message each");
        let sent = packs(calls(1000));
        assert_eq!(sent.len(), 63, "1,000 calls in packs of 16");
        let ids: Vec<u64> =
            sent.iter().flat_map(|m| std::iter::once(m.task_id).chain(m.also.iter().map(|c| c.task_id))).collect();
        assert_eq!(ids, (0..1000).collect::<Vec<_>>(), "every call once, in order");
        // A large input travels alone (a message holds 64 KiB).
        let mut mixed = calls(100);
        mixed[5] = call(5, Value::String("x".repeat(PACKED_INPUT_CHARS + 1)));
        let sent = packs(mixed);
        assert!(sent.iter().any(|m| m.task_id == 5 && m.also.is_empty()));
        assert!(sent.iter().all(|m| m.also.iter().all(|c| c.task_id != 5)));
        // Long instance ids: packs close before their JSON passes PACK_BYTES.
        let long: Vec<WorkMessage> = (0..1000)
            .map(|k| WorkMessage { instance_id: "i".repeat(256), ..call(k, Value::String("y".repeat(2000))) })
            .collect();
        for pack in packs(long) {
            assert!(serde_json::to_string(&pack).unwrap().len() <= PACK_BYTES + 100, "{} calls", pack.also.len() + 1);
        }
    }

    #[tokio::test]
    async fn a_running_mark_goes_when_its_call_ends_or_is_cancelled() {
        let set = RunningSet::default();
        let key = || ("i".to_owned(), "e".to_owned(), 3);
        let first = Running::claim(&set, key()).unwrap();
        assert!(Running::claim(&set, key()).is_none(), "a second copy is refused while the first runs");
        drop(first);
        // An invocation dropped part-way (its future cancelled) releases its mark too.
        let call = async {
            let _running = Running::claim(&set, key()).unwrap();
            std::future::pending::<()>().await;
        };
        assert!(tokio::time::timeout(std::time::Duration::from_millis(10), call).await.is_err());
        assert!(Running::claim(&set, key()).is_some());
    }
}
