//! The instance table (`docs/adr/0003-durable-engine.md`): one partition per instance holding its
//! status row, its history chunks and its inbox, loaded with one query and committed with one
//! ETag-guarded entity-group transaction per episode.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::history::{Event, Parent};
use crate::storage::{Entity, StorageError, TableClient, TableOp, odata_string};

/// The status row's RowKey.
pub const STATUS_ROW: &str = "status";
/// Characters per string property (Table strings are limited to 64 KiB of UTF-16).
const PROPERTY_CHARS: usize = 30_000;
/// String properties per chunk row (rows are limited to 1 MiB).
const PROPERTIES_PER_ROW: usize = 15;

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

/// The status row of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The orchestrator's name.
    pub name: String,
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
}

/// An instance as loaded: its status, the status row's ETag, its history, and its inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The status.
    pub status: InstanceStatus,
    /// The status row's ETag, for the next commit.
    pub etag: String,
    /// The current execution's history, in order.
    pub history: Vec<Event>,
    /// Inbox events, with their RowKeys.
    pub inbox: Vec<(String, Event)>,
}

fn chunk_key(n: u32) -> String {
    format!("h{n:08}")
}

/// Splits text into pieces of at most [`PROPERTY_CHARS`] characters.
fn split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(PROPERTY_CHARS).map(|c| c.iter().collect()).collect()
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
        let rows = self.tables.query(&self.table, &format!("PartitionKey eq {}", odata_string(instance_id))).await?;
        let Some(status_row) = rows.iter().find(|r| r.row_key == STATUS_ROW) else { return Ok(None) };
        let text = status_row.properties.get("Status").and_then(Value::as_str).unwrap_or("{}");
        let status: InstanceStatus = serde_json::from_str(text)
            .map_err(|e| StorageError::other(format!("instance {instance_id}: unreadable status row: {e}")))?;
        let mut history = Vec::new();
        let mut inbox = Vec::new();
        for row in &rows {
            if let Some(n) = row.row_key.strip_prefix('h').and_then(|n| n.parse::<u32>().ok()) {
                let current = row.properties.get("ExecutionId").and_then(Value::as_str) == Some(&status.execution_id);
                if !current || n >= status.chunks {
                    continue;
                }
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
        let etag = status_row.etag.clone().unwrap_or_default();
        Ok(Some(Loaded { status, etag, history, inbox }))
    }

    /// Commits an episode: the new status, the new events as chunk rows after `status.chunks`
    /// (which this updates), and the deletion of consumed inbox rows, all in one transaction that
    /// fails with 412 if the status row's ETag is no longer `etag` (409 if it exists and `etag` is
    /// `None`). Returns the new ETag.
    pub async fn commit(
        &self,
        status: &mut InstanceStatus,
        etag: Option<&str>,
        events: &[Event],
        consumed_inbox: &[String],
    ) -> Result<String, StorageError> {
        let mut ops = Vec::new();
        if !events.is_empty() {
            // Events are packed into rows of at most PROPERTIES_PER_ROW * PROPERTY_CHARS characters.
            let mut rows: Vec<Vec<&Event>> = vec![Vec::new()];
            let mut size = 0;
            for e in events {
                let len = serde_json::to_string(e).map(|t| t.chars().count()).unwrap_or(0) + 1;
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
        let mut row = Entity::new(&status.instance_id, STATUS_ROW);
        let mut props = Map::new();
        props.insert("Status".into(), Value::String(serde_json::to_string(status).unwrap_or_default()));
        props.insert("Name".into(), Value::String(status.name.clone()));
        props.insert("RuntimeStatus".into(), serde_json::to_value(status.runtime_status).unwrap_or(Value::Null));
        props.insert("CreatedTime".into(), Value::String(status.created_time.to_rfc3339()));
        row.properties = props;
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
        Ok(etags.into_iter().next().unwrap_or_default())
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
