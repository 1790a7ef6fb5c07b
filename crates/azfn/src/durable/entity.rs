//! Durable entities: small pieces of named, durable state (`name` + `key`) that handle operations
//! one at a time (design: `docs/adr/0003-durable-engine.md`, "Entities").
//!
//! An entity is a function of its state and one operation, registered with
//! [`Registry::entity`](super::Registry::entity):
//!
//! ```
//! use azfn::durable::{EntityOp, Registry};
//!
//! let registry = Registry::new().entity("Counter", |count: &mut i64, op: &EntityOp| match op.name.as_str() {
//!     "add" => {
//!         *count += op.input::<i64>()?;
//!         Ok(serde_json::Value::Null)
//!     }
//!     "reset" => {
//!         *count = 0;
//!         Ok(serde_json::Value::Null)
//!     }
//!     "get" => Ok(serde_json::json!(*count)),
//!     other => Err(format!("Counter has no operation `{other}`")),
//! });
//! ```
//!
//! The state starts as `S::default()` at the first operation; the built-in operation `delete`
//! removes it. An operation that returns an error leaves the state as it was, and the error goes to
//! a caller. Operations arrive as messages on the control queue (signals from clients and
//! orchestrations, calls from orchestrations, each with a unique id) and are applied under the
//! entity's ETag, so each is applied once in effect however often it is delivered; operations from
//! one orchestration are applied in the order it made them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::DurableError;
use super::history::Event;

/// The prefix of an entity's instance id: `@{name}@{key}`, as in Durable Functions.
pub const ENTITY_PREFIX: char = '@';

/// How long an applied operation's id is remembered to drop a redelivered copy.
pub const REMEMBER_FOR: chrono::Duration = chrono::Duration::minutes(30);

/// At most this many applied operation ids are remembered (the oldest are forgotten first).
pub const REMEMBER_AT_MOST: usize = 1500;

/// How long an entity remembers a sender that has gone quiet (its last sequence number), and how old
/// a request's predecessor must be for the request to run without a record of its sender: longer
/// than any delay a message meets on its way (a lease of 10 minutes, a rolling deploy's deferrals
/// of about 1.4 hours). Like Durable Functions' entity message reorder window (30 minutes there),
/// it bounds the row: it keeps the senders of the last 4 hours, not every sender ever
/// (docs/adr/0006-entity-sender-pruning.md).
pub const SENDER_WINDOW: chrono::Duration = chrono::Duration::hours(4);

/// An entity's address: its registered name and a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityId {
    /// The entity's registered name, e.g. `Counter`.
    pub name: String,
    /// The key, e.g. `orders-today`.
    pub key: String,
}

impl EntityId {
    /// The entity `name` with `key`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self { name: name.into(), key: key.into() }
    }

    /// The instance id it is stored and addressed under: `@{name}@{key}`.
    pub fn instance_id(&self) -> String {
        format!("{ENTITY_PREFIX}{}{ENTITY_PREFIX}{}", self.name, self.key)
    }

    /// The entity an instance id names, when it names one.
    pub fn from_instance_id(id: &str) -> Option<Self> {
        let rest = id.strip_prefix(ENTITY_PREFIX)?;
        let (name, key) = rest.split_once(ENTITY_PREFIX)?;
        Some(Self::new(name, key))
    }

    /// Checks the name and key: both non-empty, neither with `@` in the name, and the whole id a
    /// valid instance id.
    pub fn validate(&self) -> Result<(), DurableError> {
        if self.name.is_empty() || self.key.is_empty() || self.name.contains(ENTITY_PREFIX) {
            return Err(DurableError::BadRequest(format!(
                "entity `{}`/`{}`: the name and the key must not be empty, and the name cannot contain `@`",
                self.name, self.key
            )));
        }
        super::error::validate_instance_id(&self.instance_id())
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.key)
    }
}

/// A signal an operation sends: the entity, the operation, its input, and when it is due.
type SentSignal = (EntityId, String, Value, Option<DateTime<Utc>>);

/// One operation, as the entity's function sees it.
#[derive(Debug)]
pub struct EntityOp {
    /// The operation's name, e.g. `add`.
    pub name: String,
    /// Its input (`null` when none was given).
    pub value: Value,
    /// When it is applied: deterministic within its batch, for time-based state (a cool-down).
    pub now: DateTime<Utc>,
    /// The entity.
    pub entity: EntityId,
    /// Signals the operation sends, sent once its new state is stored (dropped if it fails).
    signals: std::sync::Mutex<Vec<SentSignal>>,
}

impl EntityOp {
    /// The operation `name` with `value` on `entity` at `now` (as the engine and the harness build it).
    pub(crate) fn new(name: &str, value: Value, now: DateTime<Utc>, entity: EntityId) -> Self {
        Self { name: name.to_owned(), value, now, entity, signals: std::sync::Mutex::default() }
    }

    /// Signals another entity (or this one) once this operation has succeeded and its new state is
    /// stored; the signals one entity sends to another are applied in the order it sent them.
    ///
    /// ```
    /// use azfn::durable::{EntityId, EntityOp, Registry};
    ///
    /// // A counter that tells an `Alarm` entity when it passes 100.
    /// let registry = Registry::new().entity("Counter", |n: &mut i64, op: &EntityOp| {
    ///     let before = *n;
    ///     *n += op.input::<i64>()?;
    ///     if before < 100 && *n >= 100 {
    ///         op.signal_entity(&EntityId::new("Alarm", &op.entity.key), "ring", *n);
    ///     }
    ///     Ok(serde_json::Value::Null)
    /// });
    /// ```
    pub fn signal_entity(&self, entity: &EntityId, operation: &str, input: impl Serialize) {
        self.push_signal(entity, operation, input, None);
    }

    /// Like [`signal_entity`](Self::signal_entity), applied no earlier than `at` (and not ordered
    /// with this entity's other signals).
    pub fn signal_entity_at(&self, entity: &EntityId, operation: &str, input: impl Serialize, at: DateTime<Utc>) {
        self.push_signal(entity, operation, input, Some(at));
    }

    fn push_signal(&self, entity: &EntityId, operation: &str, input: impl Serialize, at: Option<DateTime<Utc>>) {
        let input = serde_json::to_value(input).unwrap_or(Value::Null);
        let mut signals = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        signals.push((entity.clone(), operation.to_owned(), input, at));
    }

    /// The input read as `T`, or an error that names the operation.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.value.clone())
            .map_err(|e| format!("the input of `{}` on {} does not fit: {e}", self.name, self.entity))
    }
}

/// An entity's code, type-erased: the state (`None`: it does not exist) and an operation in, the
/// new state and the result out.
pub(crate) type EntityFn =
    Arc<dyn Fn(Option<Value>, &EntityOp) -> Result<(Option<Value>, Value), String> + Send + Sync>;

/// Wraps `f(&mut S, &EntityOp)` as an [`EntityFn`]; `delete` is built in.
pub(crate) fn entity_fn<S, F>(f: F) -> EntityFn
where
    S: Default + Serialize + DeserializeOwned + 'static,
    F: Fn(&mut S, &EntityOp) -> Result<Value, String> + Send + Sync + 'static,
{
    Arc::new(move |state: Option<Value>, op: &EntityOp| {
        if op.name == "delete" {
            return Ok((None, Value::Null));
        }
        let mut s: S = match state {
            Some(v) => {
                serde_json::from_value(v).map_err(|e| format!("the stored state of {} does not fit: {e}", op.entity))?
            }
            None => S::default(),
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut s, op))).map_err(|p| {
            format!("operation `{}` on {} panicked: {}", op.name, op.entity, crate::server::panic_text(&*p))
        })??;
        let state =
            serde_json::to_value(&s).map_err(|e| format!("the state of {} does not serialize: {e}", op.entity))?;
        Ok((Some(state), result))
    })
}

/// Who called an operation and waits for its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Caller {
    /// The orchestration instance.
    pub instance_id: String,
    /// Its execution.
    pub execution_id: String,
    /// The call's sequence id there.
    pub task_id: u64,
}

/// One entity of a critical section, with the locking orchestration's sequence number for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockTarget {
    /// The entity's instance id, `@{name}@{key}`.
    pub entity: String,
    /// The orchestration's sequence number for its operations on the entity.
    pub seq: u64,
    /// When the orchestration sent its previous request to the entity, if it did
    /// ([`EntityRequest::prev_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_at: Option<DateTime<Utc>>,
}

/// What a request asks of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum RequestKind {
    /// Run the named operation.
    #[default]
    Operation,
    /// Lock the entity for the sender's critical section, then pass the request on to the next
    /// entity of `then`; the last one answers the caller (the locks are then all held).
    Lock {
        /// The entities still to lock, in lock order.
        then: Vec<LockTarget>,
    },
    /// End the sender's lock on the entity.
    Release,
}

impl RequestKind {
    fn is_operation(&self) -> bool {
        *self == RequestKind::Operation
    }
}

impl EntityRequest {
    /// Whether the request goes through the entity's row even when no entity of its name is
    /// registered: locks and releases need no code, and an orchestration's operation must use up
    /// its sequence number (the row answers it with the error). Only a client's signal to an
    /// unknown entity is dropped without a row.
    pub(crate) fn runs_without_code(&self) -> bool {
        self.kind != RequestKind::Operation || self.sender.is_some()
    }
}

/// An operation on its way to an entity (part of a control message).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRequest {
    /// Unique per operation; a redelivered copy has the same id.
    pub id: String,
    /// The operation.
    pub operation: String,
    /// Its input.
    #[serde(default)]
    pub input: Value,
    /// The orchestration waiting for the result (a call); `None` for a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<Caller>,
    /// For operations from an orchestration (or an entity): the sender (`instance|execution`, or the
    /// entity's id) and its sequence number for this entity, so that they apply in sent order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<(String, u64)>,
    /// When the sender sent its previous request to this entity (`None` for its first, and from
    /// engines before this field): an entity that no longer remembers the sender runs the request
    /// at once when that is older than [`SENDER_WINDOW`], as the previous one was applied long ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_at: Option<DateTime<Utc>>,
    /// An operation (the default), a lock or a release.
    #[serde(default, skip_serializing_if = "RequestKind::is_operation")]
    pub kind: RequestKind,
}

/// A message an entity sends once its row is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "to")]
pub enum Outgoing {
    /// A result (of a call, or of a lock) for the orchestration waiting for it.
    Orchestration(Reply),
    /// A request for an entity: a signal, or a lock passed on.
    #[serde(rename_all = "camelCase")]
    Entity {
        /// The entity's instance id, `@{name}@{key}`.
        entity: String,
        /// The request.
        request: EntityRequest,
        /// Not applied before this time, when set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fire_at: Option<DateTime<Utc>>,
    },
}

impl Outgoing {
    /// What identifies the message among its copies (for not sending it twice from one process).
    pub fn key(&self) -> String {
        match self {
            Outgoing::Orchestration(r) => {
                format!("reply|{}|{}|{}", r.caller.instance_id, r.caller.execution_id, r.caller.task_id)
            }
            Outgoing::Entity { request, .. } => request.id.clone(),
        }
    }
}

/// When an execution sent each of its ordered messages to entities: the time of the episode that
/// recorded it, by entity instance id and sequence number.
pub(crate) type SendTimes = std::collections::HashMap<(String, u64), DateTime<Utc>>;

/// The [`SendTimes`] of a history (of one execution; for events of a later execution that follow,
/// theirs replace the earlier one's).
pub(crate) fn send_times<'a>(history: impl IntoIterator<Item = &'a Event>) -> SendTimes {
    let mut times = SendTimes::new();
    let mut now = None;
    for e in history {
        let mut note = |entity: &str, seq: u64| {
            if let Some(t) = now {
                times.insert((entity.to_owned(), seq), t);
            }
        };
        match e {
            Event::OrchestratorStarted { time } => now = Some(*time),
            Event::EntityCalled { entity, seq, .. } | Event::EntityUnlockSent { entity, seq, .. } => note(entity, *seq),
            Event::EntitySignaled { entity, seq, .. } if *seq > 0 => note(entity, *seq),
            Event::EntityLockRequested { locks, .. } => {
                for l in locks {
                    note(&l.entity, l.seq);
                }
            }
            _ => {}
        }
    }
    times
}

/// The entity message an orchestration's history event sends, if it sends one: the entity's
/// instance id, the request, and the time it is due (for a scheduled signal). The request's id is
/// the same for every copy, so the entity applies it once. `times` (the execution's
/// [`send_times`]) gives each request its predecessor's time.
pub(crate) fn request_for(
    event: &Event,
    instance_id: &str,
    execution_id: &str,
    times: &SendTimes,
) -> Option<(String, EntityRequest, Option<DateTime<Utc>>)> {
    let prev = |entity: &str, seq: u64| (seq > 1).then(|| times.get(&(entity.to_owned(), seq - 1)).copied()).flatten();
    let owner = format!("{instance_id}|{execution_id}");
    let caller =
        |task_id: u64| Caller { instance_id: instance_id.to_owned(), execution_id: execution_id.to_owned(), task_id };
    let base = |task_id: u64, operation: &str| EntityRequest {
        id: format!("{owner}|{task_id}"),
        operation: operation.to_owned(),
        ..EntityRequest::default()
    };
    Some(match event {
        Event::EntityCalled { id, entity, operation, input, seq } => {
            let request = EntityRequest {
                input: input.clone(),
                caller: Some(caller(*id)),
                sender: Some((owner.clone(), *seq)),
                prev_at: prev(entity, *seq),
                ..base(*id, operation)
            };
            (entity.clone(), request, None)
        }
        Event::EntitySignaled { id, entity, operation, input, seq, at } => {
            // A scheduled signal (seq 0) is outside the sender's order.
            let sender = (*seq > 0).then(|| (owner.clone(), *seq));
            let prev_at = prev(entity, *seq);
            (entity.clone(), EntityRequest { input: input.clone(), sender, prev_at, ..base(*id, operation) }, *at)
        }
        Event::EntityLockRequested { id, locks } => {
            let (first, then) = locks.split_first()?;
            let then = then.iter().map(|t| LockTarget { prev_at: prev(&t.entity, t.seq), ..t.clone() }).collect();
            let request = EntityRequest {
                caller: Some(caller(*id)),
                sender: Some((owner.clone(), first.seq)),
                prev_at: prev(&first.entity, first.seq),
                kind: RequestKind::Lock { then },
                ..base(*id, "lock")
            };
            (first.entity.clone(), request, None)
        }
        Event::EntityUnlockSent { id, entity, seq, .. } => {
            let request = EntityRequest {
                sender: Some((owner.clone(), *seq)),
                prev_at: prev(entity, *seq),
                kind: RequestKind::Release,
                ..base(*id, "unlock")
            };
            (entity.clone(), request, None)
        }
        _ => return None,
    })
}

/// The largest call result (JSON bytes) an entity remembers with the operation's id.
pub const REMEMBERED_RESULT_BYTES: usize = 1024;

/// An entity's stored row: its state and what it remembers to apply each operation once, in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRow {
    /// The state; `None` when the entity does not exist (never used, or deleted).
    #[serde(default)]
    pub state: Option<Value>,
    /// Ids of recently applied operations, with when, and the result of calls (to answer a
    /// redelivered call again).
    #[serde(default)]
    pub applied: Vec<Applied>,
    /// Per sender, the last sequence number applied.
    #[serde(default)]
    pub senders: BTreeMap<String, u64>,
    /// Per sender, when its last request was applied; a sender quiet for [`SENDER_WINDOW`] is
    /// forgotten. (A sender missing here, in a row written before this field, counts from the
    /// row's next write.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sender_at: BTreeMap<String, DateTime<Utc>>,
    /// Operations that wait: behind an earlier one from the same sender, or for a lock to end.
    #[serde(default)]
    pub waiting: Vec<EntityRequest>,
    /// When the state last changed.
    #[serde(default)]
    pub last_modified: Option<DateTime<Utc>>,
    /// The orchestration (`instance|execution`) whose critical section holds the entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// Per entity this one signalled, the last sequence number used.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signalled: BTreeMap<String, u64>,
    /// Per entity this one signalled, when it last did (its next signal's `prev_at`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signalled_at: BTreeMap<String, DateTime<Utc>>,
    /// The messages of the last write, kept until the next one: a process that finds them here
    /// (after a crash, or a lost send) sends them again before it writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Outgoing>,
}

/// An operation remembered as applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The operation's id.
    pub id: String,
    /// When it was applied.
    pub at: DateTime<Utc>,
    /// A call's result (`Ok`) or error (`Err`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Result<Value, String>>,
}

/// A result owed to an orchestration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    /// Who waits.
    pub caller: Caller,
    /// The result or the error.
    pub result: Result<Value, String>,
}

impl EntityRow {
    /// Takes in `request` and applies every waiting request that can now run (in order per
    /// sender, and only the lock holder's while the entity is locked) at `now`, with the entity's
    /// code `f` (`None`: not registered, so operations fail). A request already applied gives its
    /// reply again (if it was a call) and changes nothing; `changed` says whether the row must be
    /// written, `outgoing` what to send once it is.
    pub fn apply(
        &mut self,
        f: Option<&EntityFn>,
        entity: &EntityId,
        request: EntityRequest,
        now: DateTime<Utc>,
    ) -> Outcome {
        let mut out = Outcome::default();
        if let Some(done) = self.applied.iter().find(|a| a.id == request.id) {
            if let (Some(caller), Some(result)) = (request.caller.clone(), done.result.clone()) {
                out.outgoing.push(Outgoing::Orchestration(Reply { caller, result }));
            }
            return out;
        }
        let already = |seq: u64, sender: &str| seq <= self.senders.get(sender).copied().unwrap_or(0);
        if request.sender.as_ref().is_some_and(|(s, seq)| already(*seq, s)) {
            // Applied before and forgotten since: nothing to do (a call's reply went out then). Or
            // it came more than SENDER_WINDOW late, after a later request of its sender ran: a call
            // is then answered with an error, so that its caller does not wait for ever (a caller
            // that had its answer ignores a second one for the same task).
            if let Some(caller) = request.caller.clone() {
                let late = format!(
                    "operation `{}` on {entity} arrived after a later operation of the same sender had run (more \
                     than {} hours late); it was not applied",
                    request.operation,
                    SENDER_WINDOW.num_hours()
                );
                out.outgoing.push(Outgoing::Orchestration(Reply { caller, result: Err(late) }));
            }
            return out;
        }
        if self.waiting.iter().any(|w| w.id == request.id) {
            return out;
        }
        self.waiting.push(request);
        out.changed = true;
        while let Some(i) = self.waiting.iter().position(|w| self.can_run(w, now)) {
            let next = self.waiting.remove(i);
            self.run(f, entity, next, now, &mut out);
        }
        self.forget(now);
        out
    }

    /// Whether `request` can run now: it is its sender's next, and the entity is not locked by
    /// another orchestration. A sender the row does not remember is at its first request, or was
    /// forgotten after [`SENDER_WINDOW`] of quiet: its request runs when its predecessor was sent
    /// longer ago than that (the predecessor was applied then).
    fn can_run(&self, request: &EntityRequest, now: DateTime<Utc>) -> bool {
        let sender = request.sender.as_ref();
        let next = sender.is_none_or(|(s, seq)| match self.senders.get(s) {
            Some(last) => last + 1 == *seq,
            // Never past an earlier request of the same sender that waits here (held by a lock).
            None => {
                (*seq == 1 || request.prev_at.is_some_and(|p| now - p > SENDER_WINDOW))
                    && !self.waiting.iter().any(|w| w.sender.as_ref().is_some_and(|(ws, wseq)| ws == s && wseq < seq))
            }
        });
        let free = self.lock.as_ref().is_none_or(|owner| sender.is_some_and(|(s, _)| s == owner));
        next && free
    }

    fn run(
        &mut self,
        f: Option<&EntityFn>,
        entity: &EntityId,
        request: EntityRequest,
        now: DateTime<Utc>,
        out: &mut Outcome,
    ) {
        if let Some((sender, seq)) = &request.sender {
            self.senders.insert(sender.clone(), *seq);
            self.sender_at.insert(sender.clone(), now);
        }
        let owner = request.sender.as_ref().map(|(s, _)| s.clone());
        // Whether the caller gets its answer here (a lock passed on is answered by the last entity).
        let mut answer = true;
        let result = match &request.kind {
            RequestKind::Operation => self.operate(f, entity, &request, now, out),
            RequestKind::Lock { then } => match owner {
                None => Err(format!("a lock on {entity} came without the orchestration that asks for it")),
                Some(owner) => {
                    self.lock = Some(owner.clone());
                    if let Some((next, rest)) = then.split_first() {
                        answer = false;
                        let request = EntityRequest {
                            id: format!("{}>{}", request.id, next.entity),
                            operation: request.operation.clone(),
                            caller: request.caller.clone(),
                            sender: Some((owner, next.seq)),
                            prev_at: next.prev_at,
                            kind: RequestKind::Lock { then: rest.to_vec() },
                            ..EntityRequest::default()
                        };
                        out.outgoing.push(Outgoing::Entity { entity: next.entity.clone(), request, fire_at: None });
                    }
                    Ok(Value::Null)
                }
            },
            RequestKind::Release => {
                if self.lock.is_some() && self.lock == owner {
                    self.lock = None;
                }
                Ok(Value::Null)
            }
        };
        let caller = request.caller.filter(|_| answer);
        // A call's result is remembered to answer a redelivered call again, when small: a large
        // one would grow the row towards its 1 MiB (issue 27, defect 5), and the reply itself is
        // kept in the row's outbox until it is sent.
        let small = |r: &Result<Value, String>| serde_json::to_vec(r).is_ok_and(|t| t.len() <= REMEMBERED_RESULT_BYTES);
        let remembered = caller.as_ref().map(|_| result.clone()).filter(small);
        self.applied.push(Applied { id: request.id.clone(), at: now, result: remembered });
        if let Some(caller) = caller {
            out.outgoing.push(Outgoing::Orchestration(Reply { caller, result }));
        } else if let Err(e) = &result {
            out.failed_signals.push(format!("signal `{}` on {entity} failed: {e}", request.operation));
        }
    }

    /// Runs an operation with the entity's code; on success keeps the new state and queues the
    /// signals it sent.
    fn operate(
        &mut self,
        f: Option<&EntityFn>,
        entity: &EntityId,
        request: &EntityRequest,
        now: DateTime<Utc>,
        out: &mut Outcome,
    ) -> Result<Value, String> {
        let Some(f) = f else {
            return Err(format!("no entity named `{}` is registered", entity.name));
        };
        let op = EntityOp::new(&request.operation, request.input.clone(), now, entity.clone());
        let (state, result) = f(self.state.clone(), &op)?;
        self.state = state;
        self.last_modified = Some(now);
        let signals = op.signals.into_inner().unwrap_or_else(|e| e.into_inner());
        for (n, (target, operation, input, at)) in signals.into_iter().enumerate() {
            let target = target.instance_id();
            let (sender, prev_at) = match at {
                Some(_) => (None, None),
                None => {
                    let seq = self.signalled.entry(target.clone()).or_insert(0);
                    *seq += 1;
                    // A row from before send times were kept has none for its last signal: it was
                    // sent before this engine ran, so it counts as long ago (else a receiver that
                    // has forgotten this sender would wait for it for ever).
                    let prev_at = self.signalled_at.insert(target.clone(), now);
                    let prev_at = (*seq > 1).then(|| prev_at.unwrap_or(DateTime::<Utc>::MIN_UTC));
                    (Some((entity.instance_id(), *seq)), prev_at)
                }
            };
            let request = EntityRequest {
                id: format!("{}>{n}", request.id),
                operation,
                input,
                sender,
                prev_at,
                ..EntityRequest::default()
            };
            out.outgoing.push(Outgoing::Entity { entity: target, request, fire_at: at });
        }
        Ok(result)
    }

    /// Forgets applied ids older than [`REMEMBER_FOR`], and the oldest beyond [`REMEMBER_AT_MOST`];
    /// and senders quiet for [`SENDER_WINDOW`] with nothing waiting (a sender with no time yet, from
    /// a row written before times were kept, is given `now`).
    fn forget(&mut self, now: DateTime<Utc>) {
        self.applied.retain(|a| now - a.at < REMEMBER_FOR);
        let extra = self.applied.len().saturating_sub(REMEMBER_AT_MOST);
        self.applied.drain(..extra);
        for sender in self.senders.keys() {
            self.sender_at.entry(sender.clone()).or_insert(now);
        }
        let waiting: std::collections::HashSet<&str> =
            self.waiting.iter().filter_map(|w| w.sender.as_ref().map(|(s, _)| s.as_str())).collect();
        let quiet: Vec<String> = self
            .sender_at
            .iter()
            .filter(|(s, at)| {
                now - **at > SENDER_WINDOW && !waiting.contains(s.as_str()) && self.lock.as_ref() != Some(s)
            })
            .map(|(s, _)| s.clone())
            .collect();
        for s in quiet {
            self.senders.remove(&s);
            self.sender_at.remove(&s);
        }
        self.sender_at.retain(|s, _| self.senders.contains_key(s));
    }
}

/// What applying a request did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// The row changed and must be written.
    pub changed: bool,
    /// Messages to send once the row is written: replies to callers, requests to entities.
    pub outgoing: Vec<Outgoing>,
    /// Signals whose operation failed (nobody waits for them: logged).
    pub failed_signals: Vec<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A counter for tests (here and in `testing`): `add` a positive amount, `get`.
    pub(crate) fn add_only_counter(n: &mut i64, op: &EntityOp) -> Result<Value, String> {
        match op.name.as_str() {
            "add" => {
                let by: i64 = op.input()?;
                if by < 0 {
                    return Err("only positive amounts".into());
                }
                *n += by;
                Ok(Value::Null)
            }
            "get" => Ok(json!(*n)),
            other => Err(format!("no operation {other}")),
        }
    }

    fn counter() -> EntityFn {
        entity_fn(add_only_counter)
    }

    /// An entity whose state is the list of the inputs it was given, in the order it applied them.
    fn log_entity() -> EntityFn {
        entity_fn(|log: &mut Vec<String>, op: &EntityOp| {
            log.push(op.input::<String>()?);
            Ok(Value::Null)
        })
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn signal(id: &str, op: &str, input: Value) -> EntityRequest {
        EntityRequest { id: id.into(), operation: op.into(), input, ..EntityRequest::default() }
    }

    #[test]
    fn ids_round_trip_and_are_checked() {
        let id = EntityId::new("Counter", "a b");
        assert_eq!(id.instance_id(), "@Counter@a b");
        assert_eq!(EntityId::from_instance_id("@Counter@a b"), Some(id));
        assert_eq!(EntityId::from_instance_id("plain"), None);
        assert!(EntityId::new("", "k").validate().is_err());
        assert!(EntityId::new("C", "a/b").validate().is_err());
    }

    #[test]
    fn operations_apply_once_and_a_failure_changes_nothing() {
        let f = counter();
        let e = EntityId::new("Counter", "k");
        let mut row = EntityRow::default();
        assert!(row.apply(Some(&f), &e, signal("1", "add", json!(5)), now()).changed);
        assert!(!row.apply(Some(&f), &e, signal("1", "add", json!(5)), now()).changed, "a redelivery");
        assert_eq!(row.state, Some(json!(5)));
        let out = row.apply(Some(&f), &e, signal("2", "add", json!(-1)), now());
        assert_eq!(row.state, Some(json!(5)));
        assert_eq!(out.failed_signals.len(), 1);

        let caller = Caller { instance_id: "o".into(), execution_id: "x".into(), task_id: 3 };
        let call = EntityRequest { caller: Some(caller.clone()), ..signal("3", "get", Value::Null) };
        let out = row.apply(Some(&f), &e, call.clone(), now());
        assert_eq!(out.outgoing, [Outgoing::Orchestration(Reply { caller: caller.clone(), result: Ok(json!(5)) })]);
        // A redelivered call is answered again, with the same result.
        let again = row.apply(Some(&f), &e, call, now());
        assert_eq!((again.changed, again.outgoing.len()), (false, 1));

        row.apply(Some(&f), &e, signal("4", "delete", Value::Null), now());
        assert_eq!(row.state, None);
    }

    #[test]
    fn a_large_call_result_is_answered_once_and_not_kept_in_the_row() {
        // Issue 27, defect 5: results kept inline grew a hot entity's row towards its 1 MiB.
        let f = entity_fn(|text: &mut String, op: &EntityOp| {
            *text = "x".repeat(op.input::<usize>()?);
            Ok(json!(text.clone()))
        });
        let e = EntityId::new("Text", "k");
        let mut row = EntityRow::default();
        let caller = Caller { instance_id: "o".into(), execution_id: "x".into(), task_id: 1 };
        let call =
            |id: &str, size: usize| EntityRequest { caller: Some(caller.clone()), ..signal(id, "set", json!(size)) };
        let out = row.apply(Some(&f), &e, call("small", 10), now());
        assert_eq!(out.outgoing.len(), 1);
        let out = row.apply(Some(&f), &e, call("large", 5000), now());
        assert!(
            matches!(&out.outgoing[..], [Outgoing::Orchestration(Reply { result: Ok(v), .. })] if v.as_str().unwrap().len() == 5000)
        );
        assert!(row.applied[0].result.is_some(), "a small result is remembered");
        assert_eq!(row.applied[1].result, None, "a large one is not (its reply waits in the row's outbox until sent)");
        assert!(serde_json::to_vec(&row.applied).unwrap().len() < 500);
        // A redelivered large call changes nothing and is not run again.
        let again = row.apply(Some(&f), &e, call("large", 7000), now());
        assert!(!again.changed && again.outgoing.is_empty());
    }

    #[test]
    fn one_senders_operations_apply_in_order() {
        let f = log_entity();
        let e = EntityId::new("Log", "k");
        let mut row = EntityRow::default();
        let from = |seq: u64, v: &str| EntityRequest {
            sender: Some(("o|x".into(), seq)),
            ..signal(&format!("s{seq}"), "push", json!(v))
        };
        row.apply(Some(&f), &e, from(2, "b"), now());
        row.apply(Some(&f), &e, from(3, "c"), now());
        assert_eq!(row.state, None, "waiting for 1");
        row.apply(Some(&f), &e, from(1, "a"), now());
        assert_eq!(row.state, Some(json!(["a", "b", "c"])));
        assert!(row.waiting.is_empty());
        assert!(!row.apply(Some(&f), &e, from(2, "b"), now()).changed, "an old one again");
    }

    /// Issue 27, defect 5 (docs/adr/0006-entity-sender-pruning.md): a sender quiet for longer than
    /// [`SENDER_WINDOW`] is forgotten, so the row holds the senders of a window, not every sender
    /// ever; a forgotten sender's next request runs at once (its predecessor is older than the
    /// window), while an unknown sender's request whose predecessor is recent still waits for it.
    #[test]
    fn quiet_senders_are_forgotten_and_their_next_request_still_runs() {
        let f = log_entity();
        let e = EntityId::new("Log", "k");
        let mut row = EntityRow::default();
        let t0 = now();
        let from = |who: &str, seq: u64, v: &str, prev_at: Option<DateTime<Utc>>| EntityRequest {
            sender: Some((who.into(), seq)),
            prev_at,
            ..signal(&format!("{who}{seq}"), "push", json!(v))
        };
        row.apply(Some(&f), &e, from("a|1", 1, "a1", None), t0);
        row.apply(Some(&f), &e, from("a|1", 2, "a2", Some(t0)), t0);
        // Many short-lived senders over two days: the row keeps only the last window's.
        for i in 0..2000 {
            let at = t0 + chrono::Duration::minutes(i);
            row.apply(Some(&f), &e, from(&format!("s{i}|1"), 1, "x", None), at);
        }
        let late = t0 + chrono::Duration::minutes(2000);
        assert!(row.senders.len() <= 4 * 60 + 2, "{} senders kept", row.senders.len());
        assert!(!row.senders.contains_key("a|1"), "quiet for more than the window");
        assert_eq!(row.senders.len(), row.sender_at.len());
        // `a`'s third request, its second sent two days ago: runs at once.
        row.apply(Some(&f), &e, from("a|1", 3, "a3", Some(t0)), late);
        assert!(row.waiting.is_empty());
        // An unknown sender whose first request is still on its way (sent a minute ago): waits.
        row.apply(Some(&f), &e, from("b|1", 2, "b2", Some(late - chrono::Duration::minutes(1))), late);
        assert_eq!(row.waiting.len(), 1);
        row.apply(Some(&f), &e, from("b|1", 1, "b1", None), late);
        assert!(row.waiting.is_empty());
        let log: Vec<String> = serde_json::from_value(row.state.clone().unwrap()).unwrap();
        assert_eq!(log[..2], ["a1", "a2"]);
        assert_eq!(log[log.len() - 3..], ["a3", "b1", "b2"]);
    }

    /// Found in review: a request whose predecessor is old must still not pass that predecessor
    /// when both wait in the row (held by another orchestration's lock): the sender's lowest
    /// waiting request runs first.
    #[test]
    fn a_forgotten_senders_requests_keep_their_order_behind_a_lock() {
        let f = log_entity();
        let e = EntityId::new("Log", "k");
        let mut row = EntityRow::default();
        let t0 = now();
        row.apply(Some(&f), &e, from("o1|1", 1, "lock-1", RequestKind::Lock { then: vec![] }, "lock", Value::Null), t0);
        let o2 = |seq: u64, v: &str| EntityRequest {
            sender: Some(("o2|1".into(), seq)),
            prev_at: (seq > 1).then_some(t0),
            ..signal(&format!("o2-{seq}"), "push", json!(v))
        };
        row.apply(Some(&f), &e, o2(2, "second"), t0);
        row.apply(Some(&f), &e, o2(1, "first"), t0);
        assert_eq!(row.waiting.len(), 2, "held by the lock");
        let later = t0 + chrono::Duration::hours(5);
        row.apply(Some(&f), &e, from("o1|1", 2, "unlock-1", RequestKind::Release, "unlock", Value::Null), later);
        assert!(row.waiting.is_empty(), "{:?}", row.waiting);
        assert_eq!(row.state, Some(json!(["first", "second"])));
    }

    /// Found in review: an entity's signal from a row written before send times were kept (no
    /// `signalled_at`) counts its predecessor as long ago, so a receiver that forgot the sender
    /// runs it; and a call that arrives after a later request of its sender ran is answered with an
    /// error instead of never.
    #[test]
    fn legacy_signals_run_and_a_late_call_is_answered() {
        let mut sender = EntityRow { signalled: [("@log@k".to_owned(), 5)].into(), ..EntityRow::default() };
        let f = entity_fn(|n: &mut u64, op: &EntityOp| {
            op.signal_entity(&EntityId::new("log", "k"), "push", json!(1));
            *n += 1;
            Ok(Value::Null)
        });
        let out = sender.apply(Some(&f), &EntityId::new("Src", "s"), signal("x", "go", Value::Null), now());
        let Some(Outgoing::Entity { request, .. }) = out.outgoing.first() else { panic!("{:?}", out.outgoing) };
        assert_eq!(request.sender.as_ref().map(|(_, seq)| *seq), Some(6));
        assert_eq!(request.prev_at, Some(DateTime::<Utc>::MIN_UTC));

        let counter = counter();
        let e = EntityId::new("Counter", "k");
        let mut row = EntityRow::default();
        let at = now();
        row.apply(
            Some(&counter),
            &e,
            EntityRequest {
                sender: Some(("o|1".into(), 3)),
                prev_at: Some(at - chrono::Duration::hours(5)),
                ..signal("o3", "add", json!(1))
            },
            at,
        );
        let late = EntityRequest {
            caller: Some(Caller { instance_id: "o".into(), execution_id: "1".into(), task_id: 2 }),
            sender: Some(("o|1".into(), 2)),
            ..signal("o2", "add", json!(1))
        };
        let out = row.apply(Some(&counter), &e, late, at);
        let Some(Outgoing::Orchestration(Reply { result: Err(why), .. })) = out.outgoing.first() else {
            panic!("{:?}", out.outgoing)
        };
        assert!(why.contains("more than 4 hours late"), "{why}");
    }

    /// A request from an engine before `prev_at` (none on a sequence number above 1) keeps the old
    /// rule when its sender is unknown: it waits for its predecessor.
    #[test]
    fn a_request_without_prev_at_from_an_unknown_sender_waits() {
        let f = counter();
        let e = EntityId::new("Counter", "k");
        let mut row = EntityRow::default();
        let req = EntityRequest { sender: Some(("o|1".into(), 2)), ..signal("o2", "add", json!(1)) };
        row.apply(Some(&f), &e, req, now() + chrono::Duration::days(1));
        assert_eq!(row.waiting.len(), 1);
    }

    /// An orchestration's requests carry the time of the episode that sent the previous one to the
    /// same entity (`send_times`, from the history's `OrchestratorStarted` times).
    #[test]
    fn an_orchestrations_request_carries_its_predecessors_episode_time() {
        let t1 = now();
        let t2 = t1 + chrono::Duration::hours(5);
        let history = vec![
            Event::OrchestratorStarted { time: t1 },
            Event::EntitySignaled {
                id: 0,
                entity: "@log@k".into(),
                operation: "push".into(),
                input: json!(1),
                seq: 1,
                at: None,
            },
            Event::OrchestratorStarted { time: t2 },
            Event::EntityCalled { id: 1, entity: "@log@k".into(), operation: "push".into(), input: json!(2), seq: 2 },
        ];
        let times = send_times(&history);
        let (_, first, _) = request_for(&history[1], "o", "e1", &times).unwrap();
        let (_, second, _) = request_for(&history[3], "o", "e1", &times).unwrap();
        assert_eq!((first.prev_at, second.prev_at), (None, Some(t1)));
    }

    #[test]
    fn applied_ids_are_forgotten_by_age_and_count() {
        let f = counter();
        let e = EntityId::new("Counter", "k");
        let mut row = EntityRow::default();
        for i in 0..(REMEMBER_AT_MOST + 10) {
            row.apply(Some(&f), &e, signal(&i.to_string(), "add", json!(1)), now());
        }
        assert_eq!(row.applied.len(), REMEMBER_AT_MOST);
        row.apply(Some(&f), &e, signal("late", "add", json!(1)), now() + REMEMBER_FOR + chrono::Duration::seconds(1));
        assert_eq!(row.applied.len(), 1);
    }

    fn from(owner: &str, seq: u64, id: &str, kind: RequestKind, op: &str, input: Value) -> EntityRequest {
        EntityRequest {
            id: id.into(),
            operation: op.into(),
            input,
            sender: Some((owner.into(), seq)),
            kind,
            ..EntityRequest::default()
        }
    }

    #[test]
    fn a_lock_holds_others_back_until_released_and_is_passed_on() {
        let f = counter();
        let a = EntityId::new("Counter", "a");
        let mut row = EntityRow::default();
        let caller = Caller { instance_id: "o".into(), execution_id: "x".into(), task_id: 1 };
        let then = vec![LockTarget { entity: "@Counter@b".into(), seq: 1, prev_at: None }];
        let lock = EntityRequest {
            caller: Some(caller.clone()),
            ..from("o|x", 1, "o|x|1", RequestKind::Lock { then }, "lock", Value::Null)
        };
        let out = row.apply(Some(&f), &a, lock, now());
        assert_eq!(row.lock.as_deref(), Some("o|x"));
        // Passed on to b, which answers the caller; a does not.
        match out.outgoing.as_slice() {
            [Outgoing::Entity { entity, request, .. }] => {
                assert_eq!(entity, "@Counter@b");
                assert_eq!(request.sender, Some(("o|x".into(), 1)));
                assert_eq!(request.caller, Some(caller.clone()));
                assert_eq!(request.kind, RequestKind::Lock { then: vec![] });
            }
            other => panic!("expected the lock passed on, got {other:?}"),
        }
        // Another orchestration's call and a client's signal wait.
        let other = Caller { instance_id: "p".into(), execution_id: "y".into(), task_id: 4 };
        let call = EntityRequest {
            caller: Some(other.clone()),
            ..from("p|y", 1, "p|y|4", RequestKind::Operation, "get", Value::Null)
        };
        assert!(row.apply(Some(&f), &a, call, now()).outgoing.is_empty());
        row.apply(Some(&f), &a, signal("s1", "add", json!(10)), now());
        assert_eq!((row.state.clone(), row.waiting.len()), (None, 2));
        // The holder's own operations run.
        row.apply(Some(&f), &a, from("o|x", 2, "o|x|2", RequestKind::Operation, "add", json!(1)), now());
        assert_eq!(row.state, Some(json!(1)));
        // Its release lets the others run, in the order they came.
        let out = row.apply(Some(&f), &a, from("o|x", 3, "o|x|3", RequestKind::Release, "unlock", Value::Null), now());
        assert_eq!(row.lock, None);
        assert_eq!(out.outgoing, [Outgoing::Orchestration(Reply { caller: other, result: Ok(json!(1)) })]);
        assert_eq!(row.state, Some(json!(11)));
        assert!(row.waiting.is_empty());
    }

    #[test]
    fn a_release_that_overtakes_its_lock_waits_for_it() {
        let f = counter();
        let b = EntityId::new("Counter", "b");
        let mut row = EntityRow::default();
        let caller = Caller { instance_id: "o".into(), execution_id: "x".into(), task_id: 1 };
        row.apply(Some(&f), &b, from("o|x", 2, "o|x|9", RequestKind::Release, "unlock", Value::Null), now());
        assert_eq!(row.lock, None);
        let lock = EntityRequest {
            caller: Some(caller.clone()),
            ..from("o|x", 1, "o|x|1>@Counter@b", RequestKind::Lock { then: vec![] }, "lock", Value::Null)
        };
        let out = row.apply(Some(&f), &b, lock, now());
        // The last entity answers the caller; the release that waited then ends the lock at once.
        assert_eq!(out.outgoing, [Outgoing::Orchestration(Reply { caller, result: Ok(Value::Null) })]);
        assert_eq!(row.lock, None);
    }

    #[test]
    fn signals_from_an_operation_go_out_only_when_it_succeeds() {
        let f = entity_fn(|n: &mut i64, op: &EntityOp| {
            let by: i64 = op.input()?;
            op.signal_entity(&EntityId::new("Log", "k"), "note", by);
            if by < 0 {
                return Err("no".into());
            }
            *n += by;
            Ok(Value::Null)
        });
        let e = EntityId::new("Counter", "k");
        let mut row = EntityRow::default();
        let out = row.apply(Some(&f), &e, signal("1", "add", json!(2)), now());
        let out2 = row.apply(Some(&f), &e, signal("2", "add", json!(3)), now());
        let sent: Vec<_> = out
            .outgoing
            .iter()
            .chain(&out2.outgoing)
            .map(|m| match m {
                Outgoing::Entity { entity, request, .. } => {
                    (entity.clone(), request.sender.clone(), request.input.clone())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sent,
            [
                ("@Log@k".to_owned(), Some(("@Counter@k".to_owned(), 1)), json!(2)),
                ("@Log@k".to_owned(), Some(("@Counter@k".to_owned(), 2)), json!(3)),
            ]
        );
        assert!(row.apply(Some(&f), &e, signal("3", "add", json!(-1)), now()).outgoing.is_empty());
    }

    #[test]
    fn an_unregistered_entity_can_be_locked_but_not_operated() {
        let e = EntityId::new("Nobody", "k");
        let mut row = EntityRow::default();
        let caller = Caller { instance_id: "o".into(), execution_id: "x".into(), task_id: 2 };
        let call = EntityRequest { caller: Some(caller.clone()), ..signal("1", "get", Value::Null) };
        match row.apply(None, &e, call, now()).outgoing.as_slice() {
            [Outgoing::Orchestration(Reply { result: Err(e), .. })] => assert!(e.contains("`Nobody`"), "{e}"),
            other => panic!("{other:?}"),
        }
        row.apply(None, &e, from("o|x", 1, "l", RequestKind::Lock { then: vec![] }, "lock", Value::Null), now());
        assert_eq!(row.lock.as_deref(), Some("o|x"));
    }
}
