//! The messages of a task hub's two queues: `{hub}-control` (events for an instance) and
//! `{hub}-work` (activity calls). Both are JSON, base64-encoded as queue triggers expect.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::history::Event;

/// How many times a worker that cannot run some work (a rolling deploy) leaves it for another
/// before it runs it anyway and records the failure: with the delays of [`deferral_delay`], about
/// 1.4 hours in all. (Work for a version of an orchestrator this worker lacks is left for another
/// however many times it takes: it never fails for that.)
pub const MAX_DEFERRALS: u32 = 24;

/// How long work left for another worker for the `deferred`-th time waits before it comes back:
/// 1 s, doubling up to 5 minutes. The first waits are short: during a rolling deploy a worker
/// that has the code is usually there already.
///
/// ```
/// use std::time::Duration;
/// use azfn::durable::messages::deferral_delay;
/// assert_eq!(deferral_delay(1), Duration::from_secs(1));
/// assert_eq!(deferral_delay(3), Duration::from_secs(4));
/// assert_eq!(deferral_delay(24), Duration::from_secs(300));
/// ```
pub fn deferral_delay(deferred: u32) -> std::time::Duration {
    let doublings = deferred.saturating_sub(1).min(9);
    std::time::Duration::from_secs(1u64 << doublings).min(std::time::Duration::from_secs(300))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a control message asks of an instance besides (or instead of) applying an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// Stop running episodes; events wait in the inbox.
    Suspend,
    /// Run again, applying what waited in the inbox.
    Resume,
    /// Take a Failed instance back to before its failed activities and sub-orchestrations and run
    /// them again ([`rewind`](super::rewind)).
    Rewind {
        /// Why, recorded in the history.
        reason: String,
        /// Sent by a parent that was rewound: the parent's new execution, which this instance's
        /// result goes to from now on (it is rewound if it failed, and its result sent again if it
        /// finished).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_execution: Option<String>,
    },
    /// Start the occurrences of schedules that are due ([`schedules`](super::schedules)). Each
    /// schedule keeps one of these on the control queue, hidden until its next occurrence, so
    /// that a scaled-to-zero app (Flex Consumption) is woken for it like for any queue message.
    /// The instance id of such a message is the schedule's id.
    ScheduleTick,
}

/// A message on `{hub}-control`: an event for one instance. Build one with [`event`](Self::event),
/// [`entity`](Self::entity) or [`command`](Self::command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct ControlMessage {
    /// The instance.
    pub instance_id: String,
    /// The execution the event belongs to; `None` for any (starts, raised events, terminations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// A unique id, also the inbox key when the event has to wait.
    pub id: String,
    /// The event to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// A command for the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// For a timer: not before this time (a timer longer than a queue delay is sent again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire_at: Option<DateTime<Utc>>,
    /// Set when an attempt to apply this event in place failed part-way: it may have been
    /// committed without its outbox sent, so a duplicate re-sends what is outstanding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recover: bool,
    /// Set on the delayed copy of a start that a client sends before it writes the instance: it
    /// starts the instance if the start went no further, and is dropped if the instance does not
    /// exist (the start failed) or has moved on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard: bool,
    /// An operation for an entity (the instance id is the entity's, `@{name}@{key}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<super::entity::EntityRequest>,
    /// How many times a worker that could not run it left it for another (a rolling deploy):
    /// each time it comes back later, up to [`MAX_DEFERRALS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferred: u32,
    /// For a suspend or resume: when the client sent it. Of two commands that arrive out of order
    /// (on different workers), the one sent later wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    /// The W3C trace context of the span that sent it, while traces are exported: the invocation
    /// that handles the message continues that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl ControlMessage {
    /// A message carrying `event` for `instance_id`.
    pub fn event(instance_id: &str, execution_id: Option<&str>, event: Event) -> Self {
        Self {
            instance_id: instance_id.to_owned(),
            execution_id: execution_id.map(str::to_owned),
            id: super::clock::new_id(),
            event: Some(event),
            command: None,
            fire_at: None,
            recover: false,
            guard: false,
            entity: None,
            sent_at: None,
            deferred: 0,
            traceparent: crate::telemetry::current_traceparent(),
        }
    }

    /// A message carrying an operation for the entity `instance_id`, applied no earlier than
    /// `fire_at` when given.
    pub fn entity(instance_id: &str, request: super::entity::EntityRequest, fire_at: Option<DateTime<Utc>>) -> Self {
        Self {
            instance_id: instance_id.to_owned(),
            execution_id: None,
            id: request.id.clone(),
            event: None,
            command: None,
            fire_at,
            recover: false,
            guard: false,
            entity: Some(request),
            sent_at: None,
            deferred: 0,
            traceparent: crate::telemetry::current_traceparent(),
        }
    }

    /// A message carrying `command` for `instance_id`.
    pub fn command(instance_id: &str, command: Command) -> Self {
        Self {
            instance_id: instance_id.to_owned(),
            execution_id: None,
            id: super::clock::new_id(),
            event: None,
            command: Some(command),
            fire_at: None,
            recover: false,
            guard: false,
            entity: None,
            sent_at: None,
            deferred: 0,
            traceparent: crate::telemetry::current_traceparent(),
        }
    }
}

/// A message on `{hub}-work`: one activity call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct WorkMessage {
    /// The calling instance.
    pub instance_id: String,
    /// Its execution.
    pub execution_id: String,
    /// The call's sequence id.
    pub task_id: u64,
    /// The activity.
    pub name: String,
    /// Its input (possibly a reference to an offloaded blob).
    pub input: Value,
    /// The W3C trace context of the episode that scheduled it, while traces are exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// More calls of the same episode, run together with this one: a wide fan-out's calls travel
    /// in packs (fewer queue requests), each pack still a message of its own for any worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<WorkMessage>,
    /// How many times a worker without the activity left the call for another (a rolling
    /// deploy), up to [`MAX_DEFERRALS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferred: u32,
}

impl WorkMessage {
    /// What identifies the call: (instance, execution, task id).
    pub(crate) fn key(&self) -> (String, String, u64) {
        (self.instance_id.clone(), self.execution_id.clone(), self.task_id)
    }
}

/// Reads an engine message from a queue trigger's text. The engine writes its messages base64-encoded
/// (the Functions default, `messageEncoding: base64`), so the trigger usually passes the JSON on
/// decoded; with host.json `extensions.queues.messageEncoding: none` it passes the stored text as it
/// is (`QueueMessageCodec.DecodeMessageBody`: `QueueMessageEncoding.None => new BinaryData(messageText)`),
/// which is that JSON in base64. Both are read here, so the setting does not stop the engine.
pub(crate) fn from_queue_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(m) => Ok(m),
        Err(e) => match crate::encoding::decode_base64(text) {
            Some(bytes) if bytes.first() == Some(&b'{') => serde_json::from_slice(&bytes),
            _ => Err(e),
        },
    }
}

#[cfg(test)]
mod queue_text_tests {
    use super::*;

    #[test]
    fn a_message_is_read_as_json_or_as_the_base64_that_messageencoding_none_passes_on() {
        let json = r#"{"instance":"a","execution":"e","events":[]}"#;
        let plain: Value = from_queue_text(json).unwrap();
        let encoded: Value = from_queue_text(&crate::encoding::encode_base64(json.as_bytes())).unwrap();
        assert_eq!(plain, encoded);
        assert!(from_queue_text::<Value>("not json").is_err());
    }
}
