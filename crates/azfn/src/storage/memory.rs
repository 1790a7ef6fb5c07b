//! Azure Storage in memory, for the durable engine's deterministic simulation (feature
//! `simulation`): tables with ETags and entity-group transactions, queues with visibility
//! time-outs, dequeue counts and time-to-live, and blobs, with the service limits the engine must
//! respect, on tokio's clock (which a simulation pauses and advances).
//!
//! [`MemoryStorage`] is the account; a [`Link`] is one process's way to it. Each call through a
//! link asks the link's [`Faults`] what happens to it: nothing, a 503 before it is applied, an
//! answer lost after it was applied, or a delay. The link then retries as the HTTP clients do
//! (the same [`RetryPolicy`] numbers, without jitter so that a run can be replayed). A link that
//! is [cut](Link::cut) (its process crashed) never answers again and changes nothing.
//!
//! The clients ([`TableClient::in_memory`](super::TableClient::in_memory) and the like) take a
//! link; everything above them, the durable engine included, runs unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::blob::{Blob, BlobItem};
use super::client::StorageError;
use super::queue::ReceivedMessage;
use super::retry::RetryPolicy;
use super::table::{Continuation, Entity, TableOp};

/// The largest queue message text (base64-encoded, as the clients send it).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The largest string or binary table property (64 KiB; strings count two bytes a character).
pub const MAX_PROPERTY_BYTES: usize = 64 * 1024;
/// The largest table entity, all properties together.
pub const MAX_ENTITY_BYTES: usize = 1024 * 1024;
/// The most operations in one entity-group transaction.
pub const MAX_BATCH_OPERATIONS: usize = 100;
/// The largest entity-group transaction payload.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What happens to one storage call ([`Faults::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It is applied and answered.
    None,
    /// The service answers 503 before applying it.
    Unavailable,
    /// It is applied, and its answer is lost (a time-out).
    LostAnswer,
    /// It waits this long, then is applied and answered.
    Delay(Duration),
}

/// Decides the fate of each storage call made through a [`Link`].
pub trait Faults: Send + Sync + fmt::Debug {
    /// The fault for the call described by `what` (e.g. `"insert i1/h00000001 into table hubInstances"`).
    fn decide(&self, what: &str) -> Fault;
}

/// No faults: every call is applied and answered.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFaults;

impl Faults for NoFaults {
    fn decide(&self, _what: &str) -> Fault {
        Fault::None
    }
}

/// One storage account in memory. Cheap to clone: clones share the data.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
    epoch: DateTime<Utc>,
    start: tokio::time::Instant,
}

#[derive(Debug, Default)]
struct State {
    tables: BTreeMap<String, BTreeMap<(String, String), Entity>>,
    queues: BTreeMap<String, Vec<Message>>,
    blobs: BTreeMap<String, BTreeMap<String, (Bytes, String)>>,
    sequence: u64,
    page_size: usize,
    calls: u64,
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    pop_receipt: String,
    text: String,
    dequeue_count: u32,
    inserted: DateTime<Utc>,
    visible_at: DateTime<Utc>,
    expires: Option<DateTime<Utc>>,
}

impl State {
    fn next(&mut self, prefix: &str) -> String {
        self.sequence += 1;
        format!("{prefix}{:010}", self.sequence)
    }
}

fn answered(status: u16, code: &str, what: &str, detail: &str) -> StorageError {
    StorageError::answered(status, Some(code.to_owned()), format!("{what}: {detail}"))
}

impl MemoryStorage {
    /// An empty account whose clock reads `epoch` now (and runs with tokio's clock).
    pub fn new(epoch: DateTime<Utc>) -> Self {
        let state = State { page_size: 1000, ..State::default() };
        Self { state: Arc::new(Mutex::new(state)), epoch, start: tokio::time::Instant::now() }
    }

    /// The same account, answering table queries in pages of at most `rows` (the service's is
    /// 1,000), so that short histories already span pages.
    pub fn with_page_size(self, rows: usize) -> Self {
        self.state.lock().expect("storage state").page_size = rows.max(1);
        self
    }

    /// The service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.epoch + chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default()
    }

    /// A link to this account for one process, whose calls meet `faults` and retry by `policy`.
    pub fn link(&self, faults: Arc<dyn Faults>, policy: RetryPolicy) -> Link {
        Link { storage: self.clone(), faults, policy, alive: Arc::new(AtomicBool::new(true)) }
    }

    /// How many calls were applied (attempts that reached the data).
    pub fn calls(&self) -> u64 {
        self.state.lock().expect("storage state").calls
    }

    /// The messages in `queue`, visible or not, as (dequeue count, body) pairs.
    pub fn queue_contents(&self, queue: &str) -> Vec<(u32, Vec<u8>)> {
        let state = self.state.lock().expect("storage state");
        let now = self.now();
        state
            .queues
            .get(queue)
            .map(|q| {
                q.iter()
                    .filter(|m| m.expires.is_none_or(|e| e > now))
                    .map(|m| (m.dequeue_count, decode(&m.text)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The entities of `table`, in key order.
    pub fn table_contents(&self, table: &str) -> Vec<Entity> {
        let state = self.state.lock().expect("storage state");
        state.tables.get(table).map(|t| t.values().cloned().collect()).unwrap_or_default()
    }

    /// The names of the blobs in `container`.
    pub fn blob_names(&self, container: &str) -> Vec<String> {
        let state = self.state.lock().expect("storage state");
        state.blobs.get(container).map(|c| c.keys().cloned().collect()).unwrap_or_default()
    }
}

/// The service client an in-memory client is built on: never reached (every call goes to the
/// link), but it gives the client its endpoint.
pub(crate) fn placeholder_service(service: super::auth::Service) -> super::client::ServiceClient {
    let account = super::StorageAccount {
        name: Some("memory".to_owned()),
        blob: Some("http://memory.invalid/blob".to_owned()),
        queue: Some("http://memory.invalid/queue".to_owned()),
        table: Some("http://memory.invalid/table".to_owned()),
        credential: super::Credential::Sas(String::new()),
    };
    super::client::ServiceClient::new(&account, service).expect("the placeholder account has every endpoint")
}

fn decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    crate::encoding::BASE64.decode(text.as_bytes()).unwrap_or_else(|_| text.as_bytes().to_vec())
}

/// One process's connection to a [`MemoryStorage`]: its faults, its retry policy, and whether the
/// process still lives.
#[derive(Debug, Clone)]
pub struct Link {
    storage: MemoryStorage,
    faults: Arc<dyn Faults>,
    policy: RetryPolicy,
    alive: Arc<AtomicBool>,
}

impl Link {
    /// Ends this link's process: its calls in flight and all later ones never answer and change
    /// nothing (a crashed process's requests).
    pub fn cut(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }

    /// The account.
    pub fn storage(&self) -> &MemoryStorage {
        &self.storage
    }

    /// Runs `op` on the data, meeting this link's faults and retrying transient failures by the
    /// policy; tracks whether an earlier attempt may have taken effect, as the HTTP clients do.
    async fn call<T>(
        &self,
        what: &str,
        mut op: impl FnMut(&mut State, DateTime<Utc>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut ambiguous = false;
        let mut delay = self.policy.initial_delay;
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            if !self.alive.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            let fault = self.faults.decide(what);
            if let Fault::Delay(d) = fault {
                tokio::time::sleep(d).await;
                if !self.alive.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
            }
            let result = match fault {
                Fault::Unavailable => Err(answered(503, "ServerBusy", what, "the service is busy")),
                _ => {
                    let mut state = self.storage.state.lock().expect("storage state");
                    state.calls += 1;
                    let r = op(&mut state, self.storage.now());
                    drop(state);
                    match (fault, r) {
                        (Fault::LostAnswer, _) => Err(StorageError::lost(format!("{what}: the answer was lost"))),
                        (_, r) => r,
                    }
                }
            };
            match result {
                Ok(v) => return Ok(v),
                Err(mut e) => {
                    ambiguous |= e.ambiguous;
                    if !e.is_transient() || attempt >= self.policy.max_retries || waited >= self.policy.total_delay {
                        e.ambiguous |= ambiguous;
                        return Err(e);
                    }
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(self.policy.max_delay);
                }
            }
        }
    }

    // ---- tables ----

    pub(crate) async fn create_table(&self, table: &str) -> Result<(), StorageError> {
        self.call(&format!("create table {table}"), |s, _| {
            s.tables.entry(table.to_owned()).or_default();
            Ok(())
        })
        .await
    }

    pub(crate) async fn insert(&self, table: &str, entity: &Entity) -> Result<String, StorageError> {
        let what = format!("insert {}/{} into table {table}", entity.partition_key, entity.row_key);
        self.transact_as(&what, table, std::slice::from_ref(&TableOp::Insert(entity.clone())))
            .await
            .map(|mut e| e.remove(0))
    }

    pub(crate) async fn upsert(
        &self,
        table: &str,
        entity: &Entity,
        if_match: Option<&str>,
    ) -> Result<String, StorageError> {
        let what = format!("write {}/{} in table {table}", entity.partition_key, entity.row_key);
        let op = match if_match {
            Some(etag) => TableOp::Replace(entity.clone(), etag.to_owned()),
            None => TableOp::Upsert(entity.clone()),
        };
        self.transact_as(&what, table, &[op]).await.map(|mut e| e.remove(0))
    }

    pub(crate) async fn get(&self, table: &str, pk: &str, rk: &str) -> Result<Option<Entity>, StorageError> {
        self.call(&format!("read {pk}/{rk} from table {table}"), |s, _| {
            Ok(s.tables.get(table).and_then(|t| t.get(&(pk.to_owned(), rk.to_owned()))).cloned())
        })
        .await
    }

    pub(crate) async fn query_page(
        &self,
        table: &str,
        filter: &str,
        top: Option<u32>,
        continuation: Option<&Continuation>,
    ) -> Result<(Vec<Entity>, Option<Continuation>), StorageError> {
        let what = format!("query table {table}");
        let parsed =
            filter::parse(filter).map_err(|e| StorageError::other(format!("{what}: filter {filter:?}: {e}")))?;
        self.call(&what, |s, _| {
            let limit = top.map_or(s.page_size, |t| (t as usize).min(s.page_size)).max(1);
            let Some(rows) = s.tables.get(table) else {
                return Err(answered(404, "TableNotFound", &what, "the table does not exist"));
            };
            let from = continuation
                .map(|c| (c.partition_key.clone(), c.row_key.clone().unwrap_or_default()))
                .unwrap_or_default();
            let mut out = Vec::new();
            for (key, entity) in rows.range(from..) {
                if out.len() == limit {
                    return Ok((
                        out,
                        Some(Continuation { partition_key: key.0.clone(), row_key: Some(key.1.clone()) }),
                    ));
                }
                if parsed.matches(entity) {
                    out.push(entity.clone());
                }
            }
            Ok((out, None))
        })
        .await
    }

    pub(crate) async fn delete_entity(
        &self,
        table: &str,
        pk: &str,
        rk: &str,
        if_match: Option<&str>,
    ) -> Result<(), StorageError> {
        let what = format!("delete {pk}/{rk} from table {table}");
        let result = self
            .call(&what, |s, _| {
                let rows = s.tables.get_mut(table).ok_or_else(|| answered(404, "TableNotFound", &what, "no table"))?;
                let key = (pk.to_owned(), rk.to_owned());
                let Some(found) = rows.get(&key) else {
                    return Err(answered(404, "ResourceNotFound", &what, "the entity does not exist"));
                };
                if let Some(etag) = if_match.filter(|e| *e != "*")
                    && found.etag.as_deref() != Some(etag)
                {
                    return Err(answered(412, "UpdateConditionNotSatisfied", &what, "the ETag does not match"));
                }
                rows.remove(&key);
                Ok(())
            })
            .await;
        match result {
            Err(e) if e.is_not_found() && e.ambiguous => Ok(()),
            other => other,
        }
    }

    pub(crate) async fn transact(&self, table: &str, ops: &[TableOp]) -> Result<Vec<String>, StorageError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let what = format!("transaction of {} operations on {table}", ops.len());
        self.transact_as(&what, table, ops).await
    }

    async fn transact_as(&self, what: &str, table: &str, ops: &[TableOp]) -> Result<Vec<String>, StorageError> {
        if ops.len() > MAX_BATCH_OPERATIONS {
            return Err(StorageError::other(format!(
                "a table transaction holds at most 100 operations, not {}",
                ops.len()
            )));
        }
        let pk = keys(&ops[0]).0;
        if ops.iter().any(|o| keys(o).0 != pk) {
            return Err(StorageError::other(format!("{what}: a table transaction covers one partition")));
        }
        let payload: usize = ops.iter().map(op_bytes).sum();
        if ops.len() > 1 && payload > MAX_BATCH_BYTES {
            return Err(answered(413, "RequestBodyTooLarge", what, "the transaction is over 4 MiB"));
        }
        for op in ops {
            if let TableOp::Insert(e) | TableOp::Replace(e, _) | TableOp::Upsert(e) = op {
                check_entity(what, e)?;
            }
        }
        self.call(what, |s, now| {
            let sequence = s.sequence;
            let rows = s.tables.entry(table.to_owned()).or_default();
            // The transaction's writes, applied only when every operation holds.
            let mut staged: BTreeMap<(String, String), Option<Entity>> = BTreeMap::new();
            let mut etags = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                let (pk, rk) = keys(op);
                let key = (pk.to_owned(), rk.to_owned());
                let current = match staged.get(&key) {
                    Some(v) => v.clone(),
                    None => rows.get(&key).cloned(),
                };
                let fail = |status, code, detail: &str| answered(status, code, what, &format!("{i}:{detail}"));
                let etag = format!("W/\"datetime'{}'-{}\"", now.to_rfc3339(), sequence + 1 + i as u64);
                match op {
                    TableOp::Insert(e) => {
                        if current.is_some() {
                            return Err(fail(409, "EntityAlreadyExists", "the entity already exists"));
                        }
                        staged.insert(key, Some(Entity { etag: Some(etag.clone()), ..e.clone() }));
                        etags.push(etag);
                    }
                    TableOp::Replace(e, expected) => match current {
                        None => return Err(fail(404, "ResourceNotFound", "the entity does not exist")),
                        Some(found) if expected != "*" && found.etag.as_deref() != Some(expected.as_str()) => {
                            return Err(fail(412, "UpdateConditionNotSatisfied", "the ETag does not match"));
                        }
                        Some(_) => {
                            staged.insert(key, Some(Entity { etag: Some(etag.clone()), ..e.clone() }));
                            etags.push(etag);
                        }
                    },
                    TableOp::Upsert(e) => {
                        staged.insert(key, Some(Entity { etag: Some(etag.clone()), ..e.clone() }));
                        etags.push(etag);
                    }
                    TableOp::Delete { .. } => {
                        if current.is_none() {
                            return Err(fail(404, "ResourceNotFound", "the entity does not exist"));
                        }
                        staged.insert(key, None);
                        etags.push(String::new());
                    }
                }
            }
            for (key, value) in staged {
                match value {
                    Some(e) => rows.insert(key, e),
                    None => rows.remove(&key),
                };
            }
            s.sequence += ops.len() as u64;
            Ok(etags)
        })
        .await
    }

    // ---- queues ----

    pub(crate) async fn create_queue(&self, queue: &str) -> Result<(), StorageError> {
        self.call(&format!("create queue {queue}"), |s, _| {
            s.queues.entry(queue.to_owned()).or_default();
            Ok(())
        })
        .await
    }

    /// Put Message: `text` is the message text as sent (base64 or escaped); `ttl` `None` never expires.
    pub(crate) async fn put_message(
        &self,
        queue: &str,
        text: &str,
        delay: Duration,
        ttl: Option<Duration>,
    ) -> Result<ReceivedMessage, StorageError> {
        let what = format!("send to queue {queue}");
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(answered(413, "RequestBodyTooLarge", &what, "the message is over 64 KiB"));
        }
        self.call(&what, |s, now| {
            let id = s.next("m");
            let pop_receipt = s.next("r");
            let msg = Message {
                id: id.clone(),
                pop_receipt: pop_receipt.clone(),
                text: text.to_owned(),
                dequeue_count: 0,
                inserted: now,
                visible_at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                expires: ttl.map(|t| now + chrono::Duration::from_std(t).unwrap_or_default()),
            };
            let received = to_received(&msg);
            s.queues.entry(queue.to_owned()).or_default().push(msg);
            Ok(ReceivedMessage { body: Vec::new(), ..received })
        })
        .await
    }

    pub(crate) async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Duration,
        peek: bool,
    ) -> Result<Vec<ReceivedMessage>, StorageError> {
        let what = format!("receive from queue {queue}");
        self.call(&what, |s, now| {
            let mut receipts = Vec::new();
            for _ in 0..max.clamp(1, 32) {
                receipts.push(s.next("r"));
            }
            let Some(messages) = s.queues.get_mut(queue) else {
                return Err(answered(404, "QueueNotFound", &what, "the queue does not exist"));
            };
            messages.retain(|m| m.expires.is_none_or(|e| e > now));
            let mut out = Vec::new();
            for m in messages.iter_mut().filter(|m| m.visible_at <= now).take(max.clamp(1, 32) as usize) {
                if !peek {
                    m.dequeue_count += 1;
                    m.pop_receipt = receipts.pop().expect("one a message");
                    m.visible_at =
                        now + chrono::Duration::from_std(visibility.max(Duration::from_secs(1))).unwrap_or_default();
                }
                out.push(to_received(m));
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn delete_message(&self, queue: &str, message: &ReceivedMessage) -> Result<(), StorageError> {
        let what = format!("delete message {} from queue {queue}", message.id);
        let result = self
            .call(&what, |s, _| {
                let messages =
                    s.queues.get_mut(queue).ok_or_else(|| answered(404, "QueueNotFound", &what, "no queue"))?;
                match messages.iter().position(|m| m.id == message.id) {
                    None => Err(answered(404, "MessageNotFound", &what, "the message does not exist")),
                    Some(i) if messages[i].pop_receipt != message.pop_receipt => {
                        Err(answered(404, "PopReceiptMismatch", &what, "the pop receipt does not match"))
                    }
                    Some(i) => {
                        messages.remove(i);
                        Ok(())
                    }
                }
            })
            .await;
        match result {
            Err(e) if e.is_not_found() && e.ambiguous => Ok(()),
            other => other,
        }
    }

    pub(crate) async fn update_visibility(
        &self,
        queue: &str,
        message: &ReceivedMessage,
        delay: Duration,
    ) -> Result<String, StorageError> {
        let what = format!("release message {} in queue {queue}", message.id);
        self.call(&what, |s, now| {
            let receipt = s.next("r");
            let messages = s.queues.get_mut(queue).ok_or_else(|| answered(404, "QueueNotFound", &what, "no queue"))?;
            let Some(m) = messages.iter_mut().find(|m| m.id == message.id) else {
                return Err(answered(404, "MessageNotFound", &what, "the message does not exist"));
            };
            if m.pop_receipt != message.pop_receipt {
                return Err(answered(404, "PopReceiptMismatch", &what, "the pop receipt does not match"));
            }
            m.pop_receipt = receipt.clone();
            m.visible_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            Ok(receipt)
        })
        .await
    }

    pub(crate) async fn approximate_count(&self, queue: &str) -> Result<u64, StorageError> {
        self.call(&format!("read queue {queue}"), |s, _| Ok(s.queues.get(queue).map_or(0, |q| q.len() as u64))).await
    }

    // ---- blobs ----

    pub(crate) async fn create_container(&self, container: &str) -> Result<(), StorageError> {
        self.call(&format!("create container {container}"), |s, _| {
            s.blobs.entry(container.to_owned()).or_default();
            Ok(())
        })
        .await
    }

    pub(crate) async fn put_blob(&self, container: &str, name: &str, content: Bytes) -> Result<String, StorageError> {
        self.call(&format!("write blob {container}/{name}"), |s, _| {
            let etag = s.next("\"0x");
            s.blobs.entry(container.to_owned()).or_default().insert(name.to_owned(), (content.clone(), etag.clone()));
            Ok(etag)
        })
        .await
    }

    pub(crate) async fn get_blob(&self, container: &str, name: &str) -> Result<Blob, StorageError> {
        let what = format!("read blob {container}/{name}");
        self.call(&what, |s, _| match s.blobs.get(container).and_then(|c| c.get(name)) {
            Some((content, etag)) => Ok(Blob {
                content: content.clone(),
                etag: etag.clone(),
                content_type: Some("application/json".to_owned()),
                metadata: BTreeMap::new(),
                headers: BTreeMap::new(),
            }),
            None => Err(answered(404, "BlobNotFound", &what, "the blob does not exist")),
        })
        .await
    }

    pub(crate) async fn list_blobs(&self, container: &str, prefix: &str) -> Result<Vec<BlobItem>, StorageError> {
        let what = format!("list container {container}");
        self.call(&what, |s, _| {
            let Some(c) = s.blobs.get(container) else {
                return Err(answered(404, "ContainerNotFound", &what, "the container does not exist"));
            };
            Ok(c.iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(n, (content, etag))| BlobItem {
                    name: n.clone(),
                    etag: etag.clone(),
                    content_length: content.len() as u64,
                    last_modified: String::new(),
                    content_type: Some("application/json".to_owned()),
                })
                .collect())
        })
        .await
    }

    pub(crate) async fn delete_blob(&self, container: &str, name: &str) -> Result<(), StorageError> {
        let what = format!("delete blob {container}/{name}");
        let result = self
            .call(&what, |s, _| match s.blobs.get_mut(container).and_then(|c| c.remove(name)) {
                Some(_) => Ok(()),
                None => Err(answered(404, "BlobNotFound", &what, "the blob does not exist")),
            })
            .await;
        match result {
            Err(e) if e.is_not_found() && e.ambiguous => Ok(()),
            other => other,
        }
    }
}

fn to_received(m: &Message) -> ReceivedMessage {
    ReceivedMessage {
        id: m.id.clone(),
        pop_receipt: m.pop_receipt.clone(),
        dequeue_count: m.dequeue_count,
        insertion_time: Some(m.inserted),
        expiration_time: m.expires,
        next_visible_time: Some(m.visible_at),
        body: decode(&m.text),
        text: m.text.clone(),
        base64: true,
    }
}

fn keys(op: &TableOp) -> (&str, &str) {
    match op {
        TableOp::Insert(e) | TableOp::Replace(e, _) | TableOp::Upsert(e) => (&e.partition_key, &e.row_key),
        TableOp::Delete { partition_key, row_key } => (partition_key, row_key),
    }
}

fn op_bytes(op: &TableOp) -> usize {
    match op {
        TableOp::Insert(e) | TableOp::Replace(e, _) | TableOp::Upsert(e) => entity_bytes(e) + 200,
        TableOp::Delete { partition_key, row_key } => partition_key.len() + row_key.len() + 200,
    }
}

/// An entity's size as the service counts it: strings two bytes a character.
fn entity_bytes(e: &Entity) -> usize {
    4 + (e.partition_key.len() + e.row_key.len()) * 2
        + e.properties.iter().map(|(k, v)| 8 + k.len() * 2 + value_bytes(v)).sum::<usize>()
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => 4 + s.encode_utf16().count() * 2,
        _ => 8,
    }
}

fn check_entity(what: &str, e: &Entity) -> Result<(), StorageError> {
    if let Some((k, _)) = e.properties.iter().find(|(_, v)| value_bytes(v) > MAX_PROPERTY_BYTES + 4) {
        return Err(answered(400, "PropertyValueTooLarge", what, &format!("property {k} is over 64 KiB")));
    }
    if entity_bytes(e) > MAX_ENTITY_BYTES {
        return Err(answered(400, "EntityTooLarge", what, "the entity is over 1 MiB"));
    }
    Ok(())
}

/// The part of the OData `$filter` language the engine's queries use: comparisons of a property
/// with a string, number or boolean literal (`eq ne gt ge lt le`), `and`, `or`, `not` and
/// parentheses.
mod filter {
    use serde_json::Value;

    use crate::storage::Entity;

    #[derive(Debug)]
    pub(super) enum Expr {
        All,
        Compare(String, String, Value),
        And(Box<Expr>, Box<Expr>),
        Or(Box<Expr>, Box<Expr>),
        Not(Box<Expr>),
    }

    impl Expr {
        pub(super) fn matches(&self, e: &Entity) -> bool {
            match self {
                Expr::All => true,
                Expr::And(a, b) => a.matches(e) && b.matches(e),
                Expr::Or(a, b) => a.matches(e) || b.matches(e),
                Expr::Not(a) => !a.matches(e),
                Expr::Compare(prop, op, lit) => {
                    let value = match prop.as_str() {
                        "PartitionKey" => Value::String(e.partition_key.clone()),
                        "RowKey" => Value::String(e.row_key.clone()),
                        p => match e.properties.get(p) {
                            Some(v) => v.clone(),
                            None => return false,
                        },
                    };
                    let ord = match (&value, lit) {
                        (Value::String(a), Value::String(b)) => a.cmp(b),
                        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
                        (Value::Number(a), Value::Number(b)) => {
                            a.as_f64().partial_cmp(&b.as_f64()).unwrap_or(std::cmp::Ordering::Equal)
                        }
                        _ => return false,
                    };
                    match op.as_str() {
                        "eq" => ord.is_eq(),
                        "ne" => ord.is_ne(),
                        "gt" => ord.is_gt(),
                        "ge" => ord.is_ge(),
                        "lt" => ord.is_lt(),
                        _ => ord.is_le(),
                    }
                }
            }
        }
    }

    fn tokens(text: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(&c) = chars.peek() {
            match c {
                ' ' => {
                    chars.next();
                }
                '(' | ')' => {
                    out.push(c.to_string());
                    chars.next();
                }
                '\'' => {
                    chars.next();
                    let mut s = String::from("'");
                    loop {
                        match chars.next() {
                            Some('\'') if chars.peek() == Some(&'\'') => {
                                chars.next();
                                s.push('\'');
                            }
                            Some('\'') => break,
                            Some(c) => s.push(c),
                            None => return Err("an unterminated string".into()),
                        }
                    }
                    out.push(s);
                }
                _ => {
                    let mut s = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == ' ' || c == '(' || c == ')' {
                            break;
                        }
                        s.push(c);
                        chars.next();
                    }
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    pub(super) fn parse(text: &str) -> Result<Expr, String> {
        let tokens = tokens(text)?;
        if tokens.is_empty() {
            return Ok(Expr::All);
        }
        let mut at = 0;
        let e = or(&tokens, &mut at)?;
        if at != tokens.len() {
            return Err(format!("unexpected {:?}", tokens[at]));
        }
        Ok(e)
    }

    fn or(t: &[String], at: &mut usize) -> Result<Expr, String> {
        let mut left = and(t, at)?;
        while t.get(*at).is_some_and(|w| w == "or") {
            *at += 1;
            left = Expr::Or(Box::new(left), Box::new(and(t, at)?));
        }
        Ok(left)
    }

    fn and(t: &[String], at: &mut usize) -> Result<Expr, String> {
        let mut left = unary(t, at)?;
        while t.get(*at).is_some_and(|w| w == "and") {
            *at += 1;
            left = Expr::And(Box::new(left), Box::new(unary(t, at)?));
        }
        Ok(left)
    }

    fn unary(t: &[String], at: &mut usize) -> Result<Expr, String> {
        match t.get(*at).map(String::as_str) {
            Some("not") => {
                *at += 1;
                Ok(Expr::Not(Box::new(unary(t, at)?)))
            }
            Some("(") => {
                *at += 1;
                let e = or(t, at)?;
                if t.get(*at).map(String::as_str) != Some(")") {
                    return Err("a missing )".into());
                }
                *at += 1;
                Ok(e)
            }
            Some(prop) => {
                let (Some(op), Some(lit)) = (t.get(*at + 1), t.get(*at + 2)) else {
                    return Err(format!("an incomplete comparison after {prop:?}"));
                };
                if !["eq", "ne", "gt", "ge", "lt", "le"].contains(&op.as_str()) {
                    return Err(format!("the operator {op:?}"));
                }
                let value = if let Some(s) = lit.strip_prefix('\'') {
                    Value::String(s.to_owned())
                } else if lit == "true" || lit == "false" {
                    Value::Bool(lit == "true")
                } else {
                    serde_json::from_str(lit).map_err(|_| format!("the literal {lit:?}"))?
                };
                *at += 3;
                Ok(Expr::Compare(prop.to_owned(), op.clone(), value))
            }
            None => Err("an empty expression".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(pk: &str, rk: &str, status: &str) -> Entity {
        let mut e = Entity::new(pk, rk);
        e.properties.insert("RuntimeStatus".into(), Value::String(status.into()));
        e
    }

    #[test]
    fn filters_evaluate_as_the_service_does() {
        let e = entity("a'b", "status", "Completed");
        let f = filter::parse("RowKey eq 'status' and (RuntimeStatus eq 'Failed' or RuntimeStatus eq 'Completed')")
            .unwrap();
        assert!(f.matches(&e));
        assert!(filter::parse("PartitionKey eq 'a''b'").unwrap().matches(&e));
        assert!(!filter::parse("PartitionKey ge 'b'").unwrap().matches(&e));
        assert!(filter::parse("PartitionKey like 'a'").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn transactions_are_all_or_nothing_and_etags_guard_writes() {
        let storage = MemoryStorage::new(Utc::now());
        let link = storage.link(Arc::new(NoFaults), RetryPolicy::none());
        let etag = link.insert("t", &entity("p", "1", "Running")).await.unwrap();
        let err = link
            .transact("t", &[TableOp::Insert(entity("p", "2", "x")), TableOp::Insert(entity("p", "1", "x"))])
            .await
            .unwrap_err();
        assert!(err.is_conflict());
        assert_eq!(storage.table_contents("t").len(), 1, "the failed transaction wrote nothing");
        link.upsert("t", &entity("p", "1", "Completed"), Some(&etag)).await.unwrap();
        assert!(link.upsert("t", &entity("p", "1", "x"), Some(&etag)).await.unwrap_err().is_precondition_failed());
    }

    #[tokio::test(start_paused = true)]
    async fn messages_hide_until_their_time_and_count_their_deliveries() {
        let storage = MemoryStorage::new(Utc::now());
        let link = storage.link(Arc::new(NoFaults), RetryPolicy::none());
        link.put_message("q", "aGk=", Duration::from_secs(5), None).await.unwrap();
        assert!(link.receive("q", 1, Duration::from_secs(30), false).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let got = link.receive("q", 1, Duration::from_secs(30), false).await.unwrap();
        assert_eq!((got[0].dequeue_count, got[0].body.as_slice()), (1, b"hi".as_slice()));
        tokio::time::sleep(Duration::from_secs(30)).await;
        let again = link.receive("q", 1, Duration::from_secs(30), false).await.unwrap();
        assert_eq!(again[0].dequeue_count, 2);
        assert!(link.delete_message("q", &got[0]).await.is_err(), "an old pop receipt no longer deletes");
        link.delete_message("q", &again[0]).await.unwrap();
        assert!(storage.queue_contents("q").is_empty());
    }

    #[derive(Debug)]
    struct LoseFirst(std::sync::atomic::AtomicBool);
    impl Faults for LoseFirst {
        fn decide(&self, _: &str) -> Fault {
            if self.0.swap(false, Ordering::SeqCst) { Fault::LostAnswer } else { Fault::None }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_is_retried_and_the_retry_is_marked_ambiguous() {
        let storage = MemoryStorage::new(Utc::now());
        let link = storage.link(Arc::new(LoseFirst(AtomicBool::new(true))), RetryPolicy::default());
        let err = link.insert("t", &entity("p", "1", "x")).await.unwrap_err();
        assert!(err.is_conflict() && err.ambiguous, "{err:?}");
    }
}
