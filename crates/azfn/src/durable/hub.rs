//! A task hub: the storage an app's orchestrations live in (the instance table, the control and work
//! queues, the container for large values) and the clients that reach it.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::error::DurableError;
use super::history::Event;
use super::messages::{ControlMessage, WorkMessage};
use super::store::InstanceStore;
use crate::storage::{BlobClient, QueueClient, StorageAccount, TableClient};

/// Values whose JSON is longer than this go to a blob (queue messages hold 64 KiB, table
/// properties 64 KiB, entities 1 MiB).
pub const LARGE_VALUE_BYTES: usize = 32 * 1024;
/// The most history one commit writes: an episode with more has its values over 1 KiB moved to
/// blobs (a table transaction holds 4 MiB; DurableTask's Azure Storage provider keeps its batches
/// under 3 MB as well).
pub const COMMIT_BYTES: usize = 3 * 1024 * 1024;
/// The longest a message is hidden; a timer further away is sent again when it shows up early
/// (queues allow 7 days).
pub const MAX_DELAY: Duration = Duration::from_secs(6 * 24 * 3600);
/// How an offloaded failure text starts: `\u{1}$azfnLarge:<blob name>` (a control character no
/// error message starts with).
const LARGE_TEXT_PREFIX: &str = "\u{1}$azfnLarge:";
/// The key of a reference to an offloaded value: `{"$azfnLarge": "<blob name>"}`.
const LARGE_KEY: &str = "$azfnLarge";

/// The storage of one task hub, named `hub`: table `{hub}Instances`, queues `{hub}-control` and
/// `{hub}-work` (with the host's `-poison` queues), container `{hub}-large`.
#[derive(Debug)]
pub struct TaskHub {
    name: String,
    store: InstanceStore,
    tables: TableClient,
    queues: QueueClient,
    blobs: BlobClient,
    created: OnceCell<()>,
    /// How far this process's clock is ahead of the true time (a simulation's clock skew).
    skew: chrono::Duration,
}

impl TaskHub {
    /// The hub `name` (lowercase letters and digits, 3 to 50 characters) in `account`.
    pub fn new(name: &str, account: &StorageAccount) -> Result<Self, DurableError> {
        Self::with_clients(name, TableClient::new(account)?, QueueClient::new(account)?, BlobClient::new(account)?)
    }

    /// The hub `name` reached through the given clients (e.g. in-memory ones in a simulation).
    pub fn with_clients(
        name: &str,
        tables: TableClient,
        queues: QueueClient,
        blobs: BlobClient,
    ) -> Result<Self, DurableError> {
        if name.len() < 3 || name.len() > 50 || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return Err(DurableError::Setup(format!(
                "task hub name {name:?}: use 3 to 50 lowercase letters and digits (it names a table and queues)"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            store: InstanceStore::new(tables.clone(), format!("{name}Instances")),
            tables,
            // In-flight work must outlive any backlog or outage: the default TTL is 7 days.
            queues: queues.never_expiring(),
            blobs,
            created: OnceCell::new(),
            skew: chrono::Duration::zero(),
        })
    }

    /// The same hub on a process whose clock runs `skew` ahead of the true time (negative: behind).
    pub fn with_clock_skew(mut self, skew: chrono::Duration) -> Self {
        self.skew = skew;
        self
    }

    /// The time by this process's clock ([`clock::now`](super::clock::now) plus any skew).
    pub fn now(&self) -> DateTime<Utc> {
        super::clock::now() + self.skew
    }

    /// The hub for the `AzureWebJobsStorage` connection found in the process environment (where the
    /// Functions host puts the app settings).
    pub fn from_env(name: &str) -> Result<Self, DurableError> {
        let account = crate::storage::resolve("AzureWebJobsStorage", |k| std::env::var(k).ok())
            .map_err(|e| DurableError::Setup(format!("durable orchestrations need AzureWebJobsStorage: {e}")))?;
        Self::new(name, &account)
    }

    /// The hub's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instance table.
    pub fn store(&self) -> &InstanceStore {
        &self.store
    }

    /// The table client.
    pub fn tables(&self) -> &TableClient {
        &self.tables
    }

    /// The queue client.
    pub fn queues(&self) -> &QueueClient {
        &self.queues
    }

    /// The blob client.
    pub fn blobs(&self) -> &BlobClient {
        &self.blobs
    }

    /// The control queue's name.
    pub fn control_queue(&self) -> String {
        format!("{}-control", self.name)
    }

    /// The work queue's name.
    pub fn work_queue(&self) -> String {
        format!("{}-work", self.name)
    }

    /// The container of offloaded values.
    pub fn large_container(&self) -> String {
        format!("{}-large", self.name)
    }

    /// Creates the table, the queues and the container, once per process.
    pub async fn ensure_created(&self) -> Result<(), DurableError> {
        self.created
            .get_or_try_init(|| async {
                self.store.create().await?;
                self.queues.create_queue(&self.control_queue()).await?;
                self.queues.create_queue(&self.work_queue()).await?;
                self.blobs.create_container(&self.large_container()).await?;
                Ok::<(), DurableError>(())
            })
            .await
            .map(|_| ())
    }

    /// Sends a control message, hidden for `delay` (or until its `fire_at`, at most [`MAX_DELAY`]).
    pub async fn send_control(&self, msg: &ControlMessage, now: DateTime<Utc>) -> Result<(), DurableError> {
        let (body, delay) = self.control_body(msg, now).await?;
        self.queues.send(&self.control_queue(), &body, delay).await?;
        Ok(())
    }

    /// Like [`send_control`](Self::send_control), giving the message's receipt, with which
    /// [`recall_control`](Self::recall_control) takes it back while it is still hidden.
    pub async fn send_control_held(
        &self,
        msg: &ControlMessage,
        now: DateTime<Utc>,
    ) -> Result<crate::storage::ReceivedMessage, DurableError> {
        let (body, delay) = self.control_body(msg, now).await?;
        Ok(self.queues.send_with_receipt(&self.control_queue(), &body, delay).await?)
    }

    /// Keeps a control message sent with [`send_control_held`](Self::send_control_held) hidden for
    /// `delay` more from now (its receipt is updated).
    pub async fn hold_control(
        &self,
        receipt: &mut crate::storage::ReceivedMessage,
        delay: Duration,
    ) -> Result<(), DurableError> {
        receipt.pop_receipt = self.queues.release(&self.control_queue(), receipt, delay).await?;
        Ok(())
    }

    /// Deletes a control message sent with [`send_control_held`](Self::send_control_held).
    pub async fn recall_control(&self, receipt: &crate::storage::ReceivedMessage) -> Result<(), DurableError> {
        Ok(self.queues.delete(&self.control_queue(), receipt).await?)
    }

    /// A control message's text (large values offloaded) and how long it stays hidden.
    async fn control_body(
        &self,
        msg: &ControlMessage,
        now: DateTime<Utc>,
    ) -> Result<(Vec<u8>, Duration), DurableError> {
        let mut msg = msg.clone();
        if let Some(e) = msg.event.as_mut() {
            self.offload_event(&msg.instance_id, e).await?;
        }
        if let Some(r) = msg.entity.as_mut() {
            self.offload(&msg.instance_id, &mut r.input).await?;
        }
        let delay = msg.fire_at.map(|at| delay_until(at, now)).unwrap_or_default();
        let body = serde_json::to_vec(&msg).map_err(|e| DurableError::BadRequest(e.to_string()))?;
        Ok((body, delay))
    }

    /// Sends an activity call.
    pub async fn send_work(&self, msg: &WorkMessage) -> Result<(), DurableError> {
        self.send_work_after(msg, Duration::ZERO).await
    }

    /// Like [`send_work`](Self::send_work), hidden for `delay`.
    pub async fn send_work_after(&self, msg: &WorkMessage, delay: Duration) -> Result<(), DurableError> {
        let mut msg = msg.clone();
        self.offload(&msg.instance_id, &mut msg.input).await?;
        for call in msg.also.iter_mut() {
            self.offload(&call.instance_id, &mut call.input).await?;
        }
        let body = serde_json::to_vec(&msg).map_err(|e| DurableError::BadRequest(e.to_string()))?;
        self.queues.send(&self.work_queue(), &body, delay).await?;
        Ok(())
    }

    /// Replaces `value` by a reference to a blob holding it when its JSON is longer than
    /// [`LARGE_VALUE_BYTES`].
    pub async fn offload(&self, instance_id: &str, value: &mut Value) -> Result<(), DurableError> {
        self.offload_over(instance_id, value, LARGE_VALUE_BYTES).await
    }

    /// Like [`offload`](Self::offload), for a value whose JSON is longer than `limit` bytes.
    async fn offload_over(&self, instance_id: &str, value: &mut Value, limit: usize) -> Result<(), DurableError> {
        if matches!(value, Value::Null | Value::Bool(_) | Value::Number(_)) || is_reference(value) {
            return Ok(());
        }
        let text = serde_json::to_vec(value).map_err(|e| DurableError::BadRequest(e.to_string()))?;
        if text.len() <= limit {
            return Ok(());
        }
        let name = format!("{}/{}.json", instance_id, super::clock::new_id());
        self.ensure_created().await?;
        self.blobs.put(&self.large_container(), &name, Bytes::from(text), "application/json").await?;
        *value = json!({ LARGE_KEY: name });
        Ok(())
    }

    /// Reads back a value [`offload`](Self::offload) replaced by a reference.
    pub async fn resolve(&self, value: &mut Value) -> Result<(), DurableError> {
        let Some(name) = reference(value) else { return Ok(()) };
        let blob = self.blobs.get(&self.large_container(), &name).await?;
        *value = serde_json::from_slice(&blob.content).map_err(|e| {
            DurableError::Setup(format!("offloaded value {}/{name} is not JSON: {e}", self.large_container()))
        })?;
        Ok(())
    }

    /// Offloads the large values and failure texts an event carries.
    pub async fn offload_event(&self, instance_id: &str, event: &mut Event) -> Result<(), DurableError> {
        for v in event.values_mut() {
            self.offload(instance_id, v).await?;
        }
        for t in event.texts_mut() {
            self.offload_text(instance_id, t).await?;
        }
        Ok(())
    }

    /// Resolves the offloaded values and failure texts an event carries.
    pub async fn resolve_event(&self, event: &mut Event) -> Result<(), DurableError> {
        for v in event.values_mut() {
            self.resolve(v).await?;
        }
        for t in event.texts_mut() {
            self.resolve_text(t).await?;
        }
        Ok(())
    }

    /// Like [`offload_event`](Self::offload_event), for values longer than `limit` bytes.
    pub async fn offload_event_over(
        &self,
        instance_id: &str,
        event: &mut Event,
        limit: usize,
    ) -> Result<(), DurableError> {
        for v in event.values_mut() {
            self.offload_over(instance_id, v, limit).await?;
        }
        Ok(())
    }

    /// Replaces a failure text longer than [`LARGE_VALUE_BYTES`] by a reference to a blob holding
    /// it: a 100 KB error fits neither a queue message (64 KiB) nor a table property (64 KiB).
    pub async fn offload_text(&self, instance_id: &str, text: &mut String) -> Result<(), DurableError> {
        if text.len() <= LARGE_VALUE_BYTES || text.starts_with(LARGE_TEXT_PREFIX) {
            return Ok(());
        }
        let mut value = Value::String(std::mem::take(text));
        let offloaded = self.offload(instance_id, &mut value).await;
        *text = match (&offloaded, reference(&value), value) {
            (Ok(()), Some(name), _) => format!("{LARGE_TEXT_PREFIX}{name}"),
            (_, _, Value::String(s)) => s,
            (_, _, other) => other.to_string(),
        };
        offloaded
    }

    /// Reads back a text [`offload_text`](Self::offload_text) replaced by a reference.
    pub async fn resolve_text(&self, text: &mut String) -> Result<(), DurableError> {
        let Some(name) = text.strip_prefix(LARGE_TEXT_PREFIX) else { return Ok(()) };
        let mut value = json!({ LARGE_KEY: name });
        self.resolve(&mut value).await?;
        *text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        Ok(())
    }

    /// The failure text of an offloaded output value (`{"$azfnLarge": name}`), as
    /// [`offload_text`](Self::offload_text) writes it, if `value` is such a reference.
    pub fn text_reference(value: &Value) -> Option<String> {
        reference(value).map(|name| format!("{LARGE_TEXT_PREFIX}{name}"))
    }

    /// Deletes the blob that `value` refers to, if it is a reference made by
    /// [`offload`](Self::offload) (and already gone is fine).
    pub async fn delete_referenced(&self, value: &Value) -> Result<(), DurableError> {
        let Some(name) = reference(value) else { return Ok(()) };
        match self.blobs.delete(&self.large_container(), &name).await {
            Err(e) if !e.is_not_found() => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Deletes the offloaded values of an instance.
    pub async fn delete_large(&self, instance_id: &str) -> Result<(), DurableError> {
        let container = self.large_container();
        let items = match self.blobs.list(&container, &format!("{instance_id}/")).await {
            Ok(items) => items,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for item in items {
            self.blobs.delete(&container, &item.name).await?;
        }
        Ok(())
    }
}

/// How long to hide a timer message due at `fire_at`: the time left rounded up to whole seconds
/// (the queue's delay counts whole seconds: rounded down, a message due in 0.8 s would show up at
/// once, be sent on with a delay of 0, and loop until its time), at most [`MAX_DELAY`] (the
/// message is sent on again when it shows up early), zero when already due.
pub fn delay_until(fire_at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    let left = (fire_at - now).to_std().unwrap_or_default();
    let whole = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    Duration::from_secs(whole).min(MAX_DELAY)
}

fn reference(value: &Value) -> Option<String> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.get(LARGE_KEY)?.as_str().map(str::to_owned)
}

fn is_reference(value: &Value) -> bool {
    reference(value).is_some()
}

#[cfg(test)]
mod tests {

    /// Issue 27, defect 12: a timer under a second early was sent on with a delay of 0 s (the
    /// queue counts whole seconds) and came back at once, again and again until its time.
    #[test]
    fn a_timer_less_than_a_second_away_waits_a_whole_second() {
        let now: chrono::DateTime<chrono::Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let ms = |n| now + chrono::Duration::milliseconds(n);
        assert_eq!(super::delay_until(ms(800), now), Duration::from_secs(1));
        assert_eq!(super::delay_until(ms(1_000), now), Duration::from_secs(1));
        assert_eq!(super::delay_until(ms(1_001), now), Duration::from_secs(2));
        assert_eq!(super::delay_until(ms(-5), now), Duration::ZERO);
        assert_eq!(super::delay_until(now + chrono::Duration::days(30), now), super::MAX_DELAY);
    }
    use super::*;

    #[test]
    fn timers_past_the_queue_limit_are_split_into_six_day_hops() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let in_ten_days = now + chrono::Duration::days(10);
        assert_eq!(delay_until(in_ten_days, now), MAX_DELAY);
        // After the first hop, the rest.
        let later = now + chrono::Duration::from_std(MAX_DELAY).unwrap();
        assert_eq!(delay_until(in_ten_days, later), Duration::from_secs(4 * 24 * 3600));
        assert_eq!(delay_until(now - chrono::Duration::seconds(5), now), Duration::ZERO);
    }

    #[test]
    fn only_a_single_key_object_is_a_reference() {
        assert_eq!(reference(&json!({LARGE_KEY: "i/x.json"})).as_deref(), Some("i/x.json"));
        assert!(reference(&json!({LARGE_KEY: "i/x.json", "other": 1})).is_none());
        assert!(reference(&json!("text")).is_none());
    }
}
