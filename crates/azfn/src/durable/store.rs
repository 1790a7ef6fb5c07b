//! The instance table (`docs/adr/0003-durable-engine.md`): one partition per instance holding its
//! status row, its history chunks and its inbox, loaded with one query and committed with one
//! ETag-guarded write per episode: the status row alone while the latest events fit in it (its
//! *tail*), else an entity-group transaction that moves them to a chunk row.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::history::{Event, Parent};
use crate::storage::{Continuation, Entity, StorageError, TableClient, TableOp, odata_string};

/// The status row's RowKey.
pub const STATUS_ROW: &str = "status";

/// The row key of an entity's row (in the entity's partition, `@{name}@{key}`).
pub const ENTITY_ROW: &str = "entity";

/// How many UTF-16 units of an entity row's JSON go in one table property.
const ENTITY_CHUNK: usize = 30_000;

/// An entity's row from its table entity (`Row0`, `Row1`, ... joined).
fn entity_row(entity: &Entity) -> Result<super::entity::EntityRow, StorageError> {
    let mut text = String::new();
    for i in 0.. {
        match entity.properties.get(&format!("Row{i}")).and_then(Value::as_str) {
            Some(part) => text.push_str(part),
            None => break,
        }
    }
    serde_json::from_str(&text)
        .map_err(|e| StorageError::other(format!("the row of entity {} is not readable: {e}", entity.partition_key)))
}
/// UTF-16 units per string property (Table strings are limited to 64 KiB of UTF-16).
const PROPERTY_CHARS: usize = 30_000;
/// String properties per chunk row (rows are limited to 1 MiB).
const PROPERTIES_PER_ROW: usize = 15;
/// The status row's property holding its tail: the latest events, not yet in a chunk row.
const TAIL: &str = "Tail";
/// Reads of an instance's partition before a load gives up because commits keep landing between
/// its pages.
const LOAD_ATTEMPTS: usize = 5;

/// An instance's runtime status, as Durable Functions names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeStatus {
    /// Started, not yet run.
    Pending,
    /// Running (or waiting).
    Running,
    /// Returned a value.
    Completed,
    /// Restarted itself with a new input.
    ContinuedAsNew,
    /// Returned an error or could not run.
    Failed,
    /// Terminated through the API.
    Terminated,
    /// Suspended through the API.
    Suspended,
}

impl RuntimeStatus {
    /// Whether the instance has finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated)
    }
}

/// How many keys of raised events [`InstanceStatus::carried_keys`] remembers across
/// `continue_as_new`.
pub const CARRIED_KEYS: usize = 256;

/// The status row of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The orchestrator's name.
    pub name: String,
    /// The version of the orchestrator's code the instance runs on, for its whole life (`None`:
    /// code registered without a version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The instance id.
    pub instance_id: String,
    /// The current execution (changes with continue-as-new).
    pub execution_id: String,
    /// The runtime status.
    pub runtime_status: RuntimeStatus,
    /// The input of the current execution.
    pub input: Value,
    /// The output, once finished.
    pub output: Value,
    /// The custom status the orchestrator set.
    pub custom_status: Value,
    /// When the instance was created.
    pub created_time: DateTime<Utc>,
    /// When it last changed.
    pub last_updated_time: DateTime<Utc>,
    /// History chunks of the current execution.
    pub chunks: u32,
    /// The parent, for a sub-orchestration.
    pub parent: Option<Parent>,
    /// The actions (by sequence id) whose messages were committed but not yet known to be sent:
    /// a redelivered message re-sends these and nothing else (`docs/reliability.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsent: Vec<u64>,
    /// Messages to entities from the execution that continued as new into this one, kept until
    /// sent (a redelivered message re-sends them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<super::messages::ControlMessage>,
    /// When the last suspend or resume applied was sent: an older one arriving later is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_time: Option<DateTime<Utc>>,
    /// The keys of the raised events the executions before this one applied (the last
    /// [`CARRIED_KEYS`] of them): a redelivery of one of them, which can come minutes and several
    /// `continue_as_new`s later (a crashed worker's lease), is not applied again here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried_keys: Vec<String>,
    /// A fingerprint of the input the instance was started with ([`input_fingerprint`]), kept
    /// across `continue_as_new`: a retried start is recognised by it once the current input is
    /// another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_input: Option<String>,
    /// The last failed delivery of a message for the instance since its last episode, with the
    /// error: after `maxDequeueCount` failures the message is in the poison queue, and this says
    /// why (redrive it from the dashboard or `POST poison/{id}/redrive` once fixed). Cleared by the
    /// next episode, or by the next delivery that goes through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What [`InstanceStore::purge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// The instance is gone: this many rows were deleted.
    Deleted(usize),
    /// No such instance.
    Missing,
    /// It has not finished.
    NotFinished(RuntimeStatus),
    /// It has finished, but this many of its messages to entities are not sent yet.
    Unsent(usize),
    /// It was started again while being purged, and is kept.
    Changed,
}

/// A fingerprint of a start's input: FNV-1a (64 bits) of its JSON text.
///
/// ```
/// use azfn::durable::store::input_fingerprint;
/// assert_eq!(input_fingerprint(&serde_json::json!({"a": 1})), input_fingerprint(&serde_json::json!({"a": 1})));
/// assert_ne!(input_fingerprint(&serde_json::json!(1)), input_fingerprint(&serde_json::json!(2)));
/// ```
pub fn input_fingerprint(input: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input.to_string().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

impl InstanceStatus {
    /// A new instance of the orchestrator `name`: Pending, a fresh execution id, created `now`.
    pub fn new(name: &str, instance_id: &str, input: Value, parent: Option<Parent>, now: DateTime<Utc>) -> Self {
        Self {
            name: name.to_owned(),
            version: None,
            instance_id: instance_id.to_owned(),
            execution_id: super::clock::new_id(),
            runtime_status: RuntimeStatus::Pending,
            input,
            output: Value::Null,
            custom_status: Value::Null,
            created_time: now,
            last_updated_time: now,
            chunks: 0,
            parent,
            unsent: Vec::new(),
            carried: Vec::new(),
            command_time: None,
            carried_keys: Vec::new(),
            start_input: None,
            last_error: None,
        }
    }
}

/// An instance as loaded: its status, the status row's ETag, its history, and its inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The status.
    pub status: InstanceStatus,
    /// The status row's ETag, for the next commit.
    pub etag: String,
    /// The current execution's history, in order (the tail included, last).
    pub history: Vec<Event>,
    /// The last events of `history`, those kept in the status row (give them to the next
    /// [`commit`](InstanceStore::commit)).
    pub tail: Vec<Event>,
    /// Inbox events, with their RowKeys.
    pub inbox: Vec<(String, Event)>,
}

/// What a [`commit`](InstanceStore::commit) wrote: the status row's new ETag and its tail.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The status row's ETag, for the next commit.
    pub etag: String,
    /// The events now kept in the status row (give them to the next commit).
    pub tail: Vec<Event>,
}

/// Which instances [`InstanceStore::list`] gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    /// Only these runtime statuses (all when empty).
    pub statuses: Vec<RuntimeStatus>,
    /// Created at or after this time.
    pub created_from: Option<DateTime<Utc>>,
    /// Created at or before this time.
    pub created_to: Option<DateTime<Utc>>,
    /// Orchestrator names starting with this.
    pub name_prefix: Option<String>,
}

impl ListFilter {
    /// The OData filter, with every user string escaped through [`odata_string`].
    ///
    /// ```
    /// use azfn::durable::{ListFilter, RuntimeStatus};
    /// let f = ListFilter { statuses: vec![RuntimeStatus::Running], name_prefix: Some("O'Hara".into()), ..Default::default() };
    /// assert_eq!(
    ///     f.to_odata(),
    ///     "RowKey eq 'status' and (RuntimeStatus eq 'Running') and Name ge 'O''Hara' and Name lt 'O''Harb'"
    /// );
    /// ```
    pub fn to_odata(&self) -> String {
        let mut parts = vec![format!("RowKey eq {}", odata_string(STATUS_ROW))];
        if !self.statuses.is_empty() {
            let any: Vec<String> =
                self.statuses.iter().map(|s| format!("RuntimeStatus eq {}", odata_string(&format!("{s:?}")))).collect();
            parts.push(format!("({})", any.join(" or ")));
        }
        if let Some(t) = self.created_from {
            parts.push(format!("CreatedTime ge {}", odata_string(&time_key(t))));
        }
        if let Some(t) = self.created_to {
            parts.push(format!("CreatedTime le {}", odata_string(&time_key(t))));
        }
        if let Some(prefix) = self.name_prefix.as_deref().filter(|p| !p.is_empty()) {
            parts.push(format!("Name ge {}", odata_string(prefix)));
            // The smallest string above every string with the prefix: the last character plus one.
            let mut chars: Vec<char> = prefix.chars().collect();
            let last = chars.pop().expect("not empty");
            let next = char::from_u32(last as u32 + 1).unwrap_or(char::MAX);
            chars.push(next);
            parts.push(format!("Name lt {}", odata_string(&chars.into_iter().collect::<String>())));
        }
        parts.join(" and ")
    }
}

/// A time as a fixed-width string, so that string order is time order in filters.
fn time_key(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_status(instance_id: &str, row: &Entity) -> Result<InstanceStatus, StorageError> {
    // The status JSON is split over `Status`, `Status1`, `Status2`, ... (a property holds 32K characters).
    let mut text = row.properties.get("Status").and_then(Value::as_str).unwrap_or("{}").to_owned();
    for i in 1..PROPERTIES_PER_ROW {
        match row.properties.get(&format!("Status{i}")).and_then(Value::as_str) {
            Some(piece) => text.push_str(piece),
            None => break,
        }
    }
    serde_json::from_str(&text)
        .map_err(|e| StorageError::other(format!("instance {instance_id}: unreadable status row: {e}")))
}

fn chunk_key(n: u32) -> String {
    format!("h{n:08}")
}

/// Splits text into pieces of at most [`PROPERTY_CHARS`] characters.
fn split(text: &str) -> Vec<String> {
    split_utf16(text, PROPERTY_CHARS)
}

/// Splits text into pieces of at most `units` UTF-16 code units (how Table storage measures a
/// string property, 64 KiB at most), never inside a character.
fn split_utf16(text: &str, units: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut used = 0;
    for c in text.chars() {
        if used + c.len_utf16() > units {
            pieces.push(std::mem::take(&mut piece));
            used = 0;
        }
        piece.push(c);
        used += c.len_utf16();
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
}

/// The instance table of a task hub.
#[derive(Debug, Clone)]
pub struct InstanceStore {
    tables: TableClient,
    table: String,
}

impl InstanceStore {
    /// The store in `table` (e.g. `azfnInstances`).
    pub fn new(tables: TableClient, table: impl Into<String>) -> Self {
        Self { tables, table: table.into() }
    }

    /// Creates the table if needed.
    pub async fn create(&self) -> Result<(), StorageError> {
        self.tables.create_table(&self.table).await
    }

    /// Loads an instance's partition with one query; `None` when it does not exist.
    pub async fn load(&self, instance_id: &str) -> Result<Option<Loaded>, StorageError> {
        // A partition read over several pages is not one snapshot: a commit between two pages can
        // leave an older chunk on one page beside a newer status row on the next. Chunks are never
        // rewritten within an execution, so a read that has every chunk of the status row's
        // execution is consistent; another is read again (issue 27, defect 9).
        for _ in 0..LOAD_ATTEMPTS {
            if let Some(loaded) = self.load_once(instance_id).await? {
                return Ok(loaded);
            }
        }
        Err(StorageError::other(format!(
            "instance {instance_id}: its history kept changing while it was read ({LOAD_ATTEMPTS} reads); \
             the message will be retried"
        )))
    }

    /// One read of an instance's partition: `None` when the pages read do not hold every history
    /// chunk its status row counts (a commit landed between two pages).
    async fn load_once(&self, instance_id: &str) -> Result<Option<Option<Loaded>>, StorageError> {
        let rows = self.tables.query(&self.table, &format!("PartitionKey eq {}", odata_string(instance_id))).await?;
        let Some(status_row) = rows.iter().find(|r| r.row_key == STATUS_ROW) else { return Ok(Some(None)) };
        let status = parse_status(instance_id, status_row)?;
        let mut history = Vec::new();
        let mut inbox = Vec::new();
        let mut chunks_read = 0;
        for row in &rows {
            if let Some(n) = row.row_key.strip_prefix('h').and_then(|n| n.parse::<u32>().ok()) {
                let current = row.properties.get("ExecutionId").and_then(Value::as_str) == Some(&status.execution_id);
                if !current || n >= status.chunks {
                    continue;
                }
                if n != chunks_read {
                    // A chunk before this one is missing (or older): not one snapshot.
                    return Ok(None);
                }
                chunks_read += 1;
                let mut text = String::new();
                for i in 0..PROPERTIES_PER_ROW {
                    match row.properties.get(&format!("Events{i}")).and_then(Value::as_str) {
                        Some(piece) => text.push_str(piece),
                        None => break,
                    }
                }
                let events: Vec<Event> = serde_json::from_str(&text).map_err(|e| {
                    StorageError::other(format!(
                        "instance {instance_id}: unreadable history chunk {}: {e}",
                        row.row_key
                    ))
                })?;
                history.extend(events);
            } else if row.row_key.starts_with('i') {
                let text = row.properties.get("Event").and_then(Value::as_str).unwrap_or("null");
                if let Ok(e) = serde_json::from_str::<Event>(text) {
                    inbox.push((row.row_key.clone(), e));
                }
            }
        }
        let tail: Vec<Event> = match status_row.properties.get(TAIL).and_then(Value::as_str) {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                StorageError::other(format!("instance {instance_id}: unreadable history in the status row: {e}"))
            })?,
            None => Vec::new(),
        };
        if chunks_read != status.chunks {
            return Ok(None);
        }
        history.extend(tail.iter().cloned());
        let etag = status_row.etag.clone().unwrap_or_default();
        Ok(Some(Some(Loaded { status, etag, history, tail, inbox })))
    }

    /// Commits an episode: the new status, the new `events` and the deletion of consumed inbox rows,
    /// failing with 412 if the status row's ETag is no longer `etag` (409 if it exists and `etag`
    /// is `None`). `tail` is what the last commit (or the load) gave as the status row's tail: the
    /// events kept there, which this write carries on.
    ///
    /// While the tail and the new events fit in one property (and the status in one) and no inbox
    /// row is consumed, this is one write of the status row alone. Otherwise it is one transaction
    /// that moves the tail and the new events to chunk rows after `status.chunks` (which this
    /// updates) and writes the status row without a tail.
    pub async fn commit(
        &self,
        status: &mut InstanceStatus,
        etag: Option<&str>,
        tail: &[Event],
        events: &[Event],
        consumed_inbox: &[String],
    ) -> Result<Committed, StorageError> {
        let status_text = serde_json::to_string(status).map_err(|e| StorageError::other(e.to_string()))?;
        let kept: Vec<&Event> = tail.iter().chain(events).collect();
        let kept_text = serde_json::to_string(&kept).map_err(|e| StorageError::other(e.to_string()))?;
        // (A string property holds 64 KiB of UTF-16: counted in UTF-16 units here.)
        if consumed_inbox.is_empty()
            && kept_text.encode_utf16().count() <= PROPERTY_CHARS
            && status_text.encode_utf16().count() <= PROPERTY_CHARS
        {
            let mut row = self.status_row(status, &status_text)?;
            if !kept.is_empty() {
                row.properties.insert(TAIL.into(), Value::String(kept_text));
            }
            let etag = match etag {
                Some(etag) => self.tables.upsert(&self.table, &row, Some(etag)).await?,
                None => self.tables.insert(&self.table, &row).await?,
            };
            return Ok(Committed { etag, tail: kept.into_iter().cloned().collect() });
        }
        let mut ops = Vec::new();
        if !kept.is_empty() {
            // Events are packed into rows of at most PROPERTIES_PER_ROW * PROPERTY_CHARS characters.
            let mut rows: Vec<Vec<&Event>> = vec![Vec::new()];
            let mut size = 0;
            for e in kept {
                let len = serde_json::to_string(e).map(|t| t.encode_utf16().count()).unwrap_or(0) + 1;
                if size + len > PROPERTIES_PER_ROW * PROPERTY_CHARS && !rows.last().is_some_and(Vec::is_empty) {
                    rows.push(Vec::new());
                    size = 0;
                }
                size += len;
                rows.last_mut().expect("one row").push(e);
            }
            for chunk in rows {
                let text = serde_json::to_string(&chunk).map_err(|e| StorageError::other(e.to_string()))?;
                let pieces = split(&text);
                if pieces.len() > PROPERTIES_PER_ROW {
                    return Err(StorageError::other(format!(
                        "instance {}: a history event is larger than a table row; offload it first",
                        status.instance_id
                    )));
                }
                let mut entity = Entity::new(&status.instance_id, chunk_key(status.chunks));
                entity.properties.insert("ExecutionId".into(), Value::String(status.execution_id.clone()));
                for (i, p) in pieces.into_iter().enumerate() {
                    entity.properties.insert(format!("Events{i}"), Value::String(p));
                }
                ops.push(TableOp::Upsert(entity));
                status.chunks += 1;
            }
        }
        for key in consumed_inbox {
            ops.push(TableOp::Delete { partition_key: status.instance_id.clone(), row_key: key.clone() });
        }
        // The chunk count changed: the status's text too.
        let status_text = serde_json::to_string(status).map_err(|e| StorageError::other(e.to_string()))?;
        let row = self.status_row(status, &status_text)?;
        ops.insert(
            0,
            match etag {
                Some(etag) => TableOp::Replace(row, etag.to_owned()),
                None => TableOp::Insert(row),
            },
        );
        if ops.len() > 100 {
            return Err(StorageError::other(format!(
                "instance {}: an episode touching {} rows does not fit one transaction",
                status.instance_id,
                ops.len()
            )));
        }
        let etags = self.tables.transact(&self.table, &ops).await?;
        Ok(Committed { etag: etags.into_iter().next().unwrap_or_default(), tail: Vec::new() })
    }

    /// The status row for `status` (whose JSON is `text`), without a tail.
    fn status_row(&self, status: &InstanceStatus, text: &str) -> Result<Entity, StorageError> {
        let mut row = Entity::new(&status.instance_id, STATUS_ROW);
        let mut props = Map::new();
        let pieces = split(text);
        if pieces.len() > PROPERTIES_PER_ROW {
            return Err(StorageError::other(format!(
                "instance {}: the status is larger than a table row; offload its values first",
                status.instance_id
            )));
        }
        for (i, piece) in pieces.into_iter().enumerate() {
            let key = if i == 0 { "Status".to_owned() } else { format!("Status{i}") };
            props.insert(key, Value::String(piece));
        }
        props.insert("Name".into(), Value::String(status.name.clone()));
        props.insert("RuntimeStatus".into(), serde_json::to_value(status.runtime_status).unwrap_or(Value::Null));
        props.insert("CreatedTime".into(), Value::String(time_key(status.created_time)));
        row.properties = props;
        Ok(row)
    }

    /// Reads only an instance's status row and its ETag.
    pub async fn status(&self, instance_id: &str) -> Result<Option<(InstanceStatus, String)>, StorageError> {
        let Some(row) = self.tables.get(&self.table, instance_id, STATUS_ROW).await? else { return Ok(None) };
        let status = parse_status(instance_id, &row)?;
        Ok(Some((status, row.etag.unwrap_or_default())))
    }

    /// One page of status rows matching `filter`, and the continuation of the next page.
    pub async fn list(
        &self,
        filter: &ListFilter,
        top: Option<u32>,
        continuation: Option<&Continuation>,
    ) -> Result<(Vec<InstanceStatus>, Option<Continuation>), StorageError> {
        let (rows, next) = self.tables.query_page(&self.table, &filter.to_odata(), top, continuation).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(parse_status(&row.partition_key, row)?);
        }
        Ok((out, next))
    }

    /// Deletes every row of an instance (status, history, inbox), in transactions of up to 100 rows.
    pub async fn delete(&self, instance_id: &str) -> Result<usize, StorageError> {
        let filter = format!("PartitionKey eq {}", odata_string(instance_id));
        let rows = self.tables.query(&self.table, &filter).await?;
        for batch in rows.chunks(100) {
            let ops: Vec<TableOp> = batch
                .iter()
                .map(|r| TableOp::Delete { partition_key: r.partition_key.clone(), row_key: r.row_key.clone() })
                .collect();
            self.tables.transact(&self.table, &ops).await?;
        }
        Ok(rows.len())
    }

    /// Purges a finished instance: every row of its partition, each deleted only if unchanged since
    /// read (If-Match its ETag), the status row last. So a start or restart of the same id that
    /// lands meanwhile keeps what it wrote (purge answers [`Purge::Changed`]), and a purge stopped
    /// part-way leaves the instance finished, to be purged again. An instance that has not
    /// finished, or whose messages to entities (a lock's release) are not all sent, is left alone.
    pub async fn purge(&self, instance_id: &str) -> Result<Purge, StorageError> {
        self.purge_execution(instance_id, None).await
    }

    /// [`purge`](Self::purge), only if the instance is still in the execution `execution_id` when
    /// one is given (else [`Purge::Changed`]): what a caller that decided on an earlier read of
    /// the instance (retention) purges, and not a run of the same id started or rewound since.
    pub async fn purge_execution(&self, instance_id: &str, execution_id: Option<&str>) -> Result<Purge, StorageError> {
        let filter = format!("PartitionKey eq {}", odata_string(instance_id));
        let rows = self.tables.query(&self.table, &filter).await?;
        let Some(status_row) = rows.iter().find(|r| r.row_key == STATUS_ROW) else { return Ok(Purge::Missing) };
        let status = parse_status(instance_id, status_row)?;
        if execution_id.is_some_and(|e| e != status.execution_id) {
            return Ok(Purge::Changed);
        }
        if !status.runtime_status.is_terminal() {
            return Ok(Purge::NotFinished(status.runtime_status));
        }
        if !status.unsent.is_empty() {
            return Ok(Purge::Unsent(status.unsent.len()));
        }
        let mut deleted = 0;
        for row in rows.iter().filter(|r| r.row_key != STATUS_ROW) {
            match self.tables.delete(&self.table, instance_id, &row.row_key, row.etag.as_deref()).await {
                Ok(()) => deleted += 1,
                // Rewritten by a new start of the id (kept), or deleted by another purge.
                Err(e) if e.is_precondition_failed() || e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        match self.tables.delete(&self.table, instance_id, STATUS_ROW, status_row.etag.as_deref()).await {
            Ok(()) => Ok(Purge::Deleted(deleted + 1)),
            // A retried delete whose first answer was lost.
            Err(e) if e.is_not_found() => Ok(Purge::Deleted(deleted)),
            Err(e) if e.is_precondition_failed() => Ok(Purge::Changed),
            Err(e) => Err(e),
        }
    }

    /// The stored row of the entity `instance_id` (`@{name}@{key}`) and its ETag, if it was ever used.
    pub async fn load_entity(
        &self,
        instance_id: &str,
    ) -> Result<Option<(super::entity::EntityRow, String)>, StorageError> {
        let found = match self.tables.get(&self.table, instance_id, ENTITY_ROW).await {
            Ok(found) => found,
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let Some(entity) = found else { return Ok(None) };
        let etag = entity.etag.clone().unwrap_or_default();
        Ok(Some((entity_row(&entity)?, etag)))
    }

    /// Writes an entity's row: inserted when `etag` is `None` (409 if someone else did first),
    /// replaced only if it still has `etag` otherwise (412). Gives the new ETag.
    pub async fn save_entity(
        &self,
        instance_id: &str,
        row: &super::entity::EntityRow,
        etag: Option<&str>,
    ) -> Result<String, StorageError> {
        let mut entity = Entity::new(instance_id, ENTITY_ROW);
        let text = serde_json::to_string(row).unwrap_or_default();
        // A string property holds at most 32K UTF-16 units: the JSON is split over `Row0`, `Row1`, ...
        for (i, chunk) in split_utf16(&text, ENTITY_CHUNK).into_iter().enumerate() {
            entity.properties.insert(format!("Row{i}"), Value::String(chunk));
        }
        entity.properties.insert("Exists".into(), Value::Bool(row.state.is_some()));
        match etag {
            None => self.tables.insert(&self.table, &entity).await,
            Some(etag) => self.tables.upsert(&self.table, &entity, Some(etag)).await,
        }
    }

    /// One page of entities (of the entity `name`, or all), at most `top`, and the next page's token.
    pub async fn list_entities(
        &self,
        name: Option<&str>,
        top: Option<u32>,
        continuation: Option<&Continuation>,
    ) -> Result<(Vec<(super::entity::EntityId, super::entity::EntityRow)>, Option<Continuation>), StorageError> {
        let prefix = match name {
            Some(n) => format!("@{n}@"),
            None => "@".to_owned(),
        };
        // Every id with the prefix sorts at or above it and below the prefix with its last character plus one.
        let mut upper: Vec<char> = prefix.chars().collect();
        let last = upper.pop().expect("not empty");
        upper.push(char::from_u32(last as u32 + 1).unwrap_or(char::MAX));
        let upper: String = upper.into_iter().collect();
        let filter = format!(
            "RowKey eq {} and Exists eq true and PartitionKey ge {} and PartitionKey lt {}",
            odata_string(ENTITY_ROW),
            odata_string(&prefix),
            odata_string(&upper)
        );
        let (rows, next) = self.tables.query_page(&self.table, &filter, top, continuation).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(id) = super::entity::EntityId::from_instance_id(&row.partition_key) {
                out.push((id, entity_row(row)?));
            }
        }
        Ok((out, next))
    }

    /// Adds an event to an instance's inbox under `key`; `false` when that key is already there.
    pub async fn add_to_inbox(&self, instance_id: &str, key: &str, event: &Event) -> Result<bool, StorageError> {
        let mut entity = Entity::new(instance_id, format!("i{key}"));
        entity.properties.insert("Event".into(), Value::String(serde_json::to_string(event).unwrap_or_default()));
        match self.tables.insert(&self.table, &entity).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_measured_in_utf16_units_and_never_split_a_character() {
        // Each emoji is two UTF-16 units: 20,000 of them are 40,000 units, over one property.
        let text = "😀".repeat(20_000) + "abc";
        let pieces = split(&text);
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.encode_utf16().count() <= PROPERTY_CHARS));
        assert_eq!(pieces.concat(), text);
        assert_eq!(split("short"), ["short"]);
        assert!(split("").is_empty());
    }
}
