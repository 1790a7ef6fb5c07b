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

/// The prefix of an entity's instance id: `@{name}@{key}`, as in Durable Functions.
pub const ENTITY_PREFIX: char = '@';

/// How long an applied operation's id is remembered to drop a redelivered copy.
pub const REMEMBER_FOR: chrono::Duration = chrono::Duration::minutes(30);

/// At most this many applied operation ids are remembered (the oldest are forgotten first).
pub const REMEMBER_AT_MOST: usize = 1500;

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

/// One operation, as the entity's function sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityOp {
    /// The operation's name, e.g. `add`.
    pub name: String,
    /// Its input (`null` when none was given).
    pub value: Value,
    /// When it is applied: deterministic within its batch, for time-based state (a cool-down).
    pub now: DateTime<Utc>,
    /// The entity.
    pub entity: EntityId,
}

impl EntityOp {
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

/// An operation on its way to an entity (part of a control message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// For operations from an orchestration: the sender (`instance|execution`) and its sequence
    /// number for this entity, so that they are applied in the order they were made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<(String, u64)>,
}

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
    /// Per orchestration sender, the last sequence number applied.
    #[serde(default)]
    pub senders: BTreeMap<String, u64>,
    /// Operations that arrived ahead of an earlier one from the same sender.
    #[serde(default)]
    pub waiting: Vec<EntityRequest>,
    /// When the state last changed.
    #[serde(default)]
    pub last_modified: Option<DateTime<Utc>>,
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

/// A reply owed to a caller after a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Who waits.
    pub caller: Caller,
    /// The result or the error.
    pub result: Result<Value, String>,
}

impl EntityRow {
    /// Applies `request` (and then whatever it unblocks) to the row at `now`; gives the replies owed
    /// to callers. A request already applied gives its reply again (if it was a call) and changes
    /// nothing; `changed` says whether the row must be written.
    pub fn apply(&mut self, f: &EntityFn, entity: &EntityId, request: EntityRequest, now: DateTime<Utc>) -> Outcome {
        let mut out = Outcome::default();
        if let Some(done) = self.applied.iter().find(|a| a.id == request.id) {
            if let (Some(caller), Some(result)) = (request.caller.clone(), done.result.clone()) {
                out.replies.push(Reply { caller, result });
            }
            return out;
        }
        if let Some((sender, seq)) = &request.sender {
            let last = self.senders.get(sender).copied().unwrap_or(0);
            if *seq <= last {
                // Applied before and forgotten since: nothing to do (a call's reply went out then).
                return out;
            }
            if *seq > last + 1 {
                if !self.waiting.iter().any(|w| w.id == request.id) {
                    self.waiting.push(request);
                    out.changed = true;
                }
                return out;
            }
        }
        self.run(f, entity, request, now, &mut out);
        // Whatever waited for this one, in order.
        loop {
            let next = self.waiting.iter().position(|w| {
                w.sender.as_ref().is_some_and(|(s, seq)| self.senders.get(s).copied().unwrap_or(0) + 1 == *seq)
            });
            let Some(i) = next else { break };
            let request = self.waiting.remove(i);
            self.run(f, entity, request, now, &mut out);
        }
        self.forget(now);
        out
    }

    fn run(&mut self, f: &EntityFn, entity: &EntityId, request: EntityRequest, now: DateTime<Utc>, out: &mut Outcome) {
        let op =
            EntityOp { name: request.operation.clone(), value: request.input.clone(), now, entity: entity.clone() };
        let result = match f(self.state.clone(), &op) {
            Ok((state, result)) => {
                self.state = state;
                self.last_modified = Some(now);
                Ok(result)
            }
            Err(e) => Err(e),
        };
        if let Some((sender, seq)) = &request.sender {
            self.senders.insert(sender.clone(), *seq);
        }
        let remembered = request.caller.as_ref().map(|_| result.clone());
        self.applied.push(Applied { id: request.id.clone(), at: now, result: remembered });
        if let Some(caller) = request.caller {
            out.replies.push(Reply { caller, result });
        } else if let Err(e) = &result {
            out.failed_signals.push(format!("signal `{}` on {entity} failed: {e}", request.operation));
        }
        out.changed = true;
    }

    /// Forgets applied ids older than [`REMEMBER_FOR`], and the oldest beyond [`REMEMBER_AT_MOST`].
    fn forget(&mut self, now: DateTime<Utc>) {
        self.applied.retain(|a| now - a.at < REMEMBER_FOR);
        let extra = self.applied.len().saturating_sub(REMEMBER_AT_MOST);
        self.applied.drain(..extra);
    }
}

/// What applying a request did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// The row changed and must be written.
    pub changed: bool,
    /// Replies owed to callers (sent after the write).
    pub replies: Vec<Reply>,
    /// Signals whose operation failed (nobody waits for them: logged).
    pub failed_signals: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn counter() -> EntityFn {
        entity_fn(|n: &mut i64, op: &EntityOp| match op.name.as_str() {
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
        })
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn signal(id: &str, op: &str, input: Value) -> EntityRequest {
        EntityRequest { id: id.into(), operation: op.into(), input, caller: None, sender: None }
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
        assert!(row.apply(&f, &e, signal("1", "add", json!(5)), now()).changed);
        assert!(!row.apply(&f, &e, signal("1", "add", json!(5)), now()).changed, "a redelivery");
        assert_eq!(row.state, Some(json!(5)));
        let out = row.apply(&f, &e, signal("2", "add", json!(-1)), now());
        assert_eq!(row.state, Some(json!(5)));
        assert_eq!(out.failed_signals.len(), 1);

        let caller = Caller { instance_id: "o".into(), execution_id: "x".into(), task_id: 3 };
        let call = EntityRequest { caller: Some(caller.clone()), ..signal("3", "get", Value::Null) };
        let out = row.apply(&f, &e, call.clone(), now());
        assert_eq!(out.replies, [Reply { caller: caller.clone(), result: Ok(json!(5)) }]);
        // A redelivered call is answered again, with the same result.
        let again = row.apply(&f, &e, call, now());
        assert_eq!((again.changed, again.replies.len()), (false, 1));

        row.apply(&f, &e, signal("4", "delete", Value::Null), now());
        assert_eq!(row.state, None);
    }

    #[test]
    fn one_senders_operations_apply_in_order() {
        let f = entity_fn(|log: &mut Vec<String>, op: &EntityOp| {
            log.push(op.input::<String>()?);
            Ok(Value::Null)
        });
        let e = EntityId::new("Log", "k");
        let mut row = EntityRow::default();
        let from = |seq: u64, v: &str| EntityRequest {
            sender: Some(("o|x".into(), seq)),
            ..signal(&format!("s{seq}"), "push", json!(v))
        };
        row.apply(&f, &e, from(2, "b"), now());
        row.apply(&f, &e, from(3, "c"), now());
        assert_eq!(row.state, None, "waiting for 1");
        row.apply(&f, &e, from(1, "a"), now());
        assert_eq!(row.state, Some(json!(["a", "b", "c"])));
        assert!(row.waiting.is_empty());
        assert!(!row.apply(&f, &e, from(2, "b"), now()).changed, "an old one again");
    }

    #[test]
    fn applied_ids_are_forgotten_by_age_and_count() {
        let f = counter();
        let e = EntityId::new("Counter", "k");
        let mut row = EntityRow::default();
        for i in 0..(REMEMBER_AT_MOST + 10) {
            row.apply(&f, &e, signal(&i.to_string(), "add", json!(1)), now());
        }
        assert_eq!(row.applied.len(), REMEMBER_AT_MOST);
        row.apply(&f, &e, signal("late", "add", json!(1)), now() + REMEMBER_FOR + chrono::Duration::seconds(1));
        assert_eq!(row.applied.len(), 1);
    }
}
