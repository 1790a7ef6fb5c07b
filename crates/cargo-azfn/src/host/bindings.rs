//! Storage for a local run: the input bindings read before an invocation (table, blob), the output
//! writes applied after it (queue, blob, table), and the wake-up signal a queue output gives the
//! queue listeners of the same host.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::invocation::{Invocation, encode};
use super::response::{Write, resolve_expression};
use super::settings::Settings;
use azfn::encoding::encode_base64;
use azfn::function_json::{Binding, Direction, FunctionSpec};
use azfn::storage::{
    BlobClient, Entity, QueueClient, StorageAccount, StorageError, TableClient, TableOp, odata_string, resolve,
};

/// The clients of one storage connection.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The account.
    pub account: StorageAccount,
    /// Queues.
    pub queues: QueueClient,
    /// Blobs.
    pub blobs: BlobClient,
    /// Tables.
    pub tables: TableClient,
}

/// Storage access shared by the listeners and the invoker.
#[derive(Debug)]
pub struct Bindings {
    settings: Settings,
    clients: Mutex<HashMap<String, Arc<Clients>>>,
    created: Mutex<HashSet<String>>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Bindings {
    /// Storage access resolving connections from `settings`.
    pub fn new(settings: Settings) -> Self {
        Self { settings, clients: Mutex::default(), created: Mutex::default(), wakers: Mutex::default() }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The clients for the connection named `connection` (`AzureWebJobsStorage` when empty).
    pub fn clients(&self, connection: &str) -> Result<Arc<Clients>, String> {
        let name = if connection.is_empty() { "AzureWebJobsStorage" } else { connection };
        if let Some(c) = self.clients.lock().unwrap().get(name) {
            return Ok(c.clone());
        }
        let account = resolve(name, |k| self.settings.get(k)).map_err(|e| e.to_string())?;
        let err = |e: azfn::storage::StorageError| format!("connection {name}: {e}");
        let clients = Arc::new(Clients {
            queues: QueueClient::new(&account).map_err(err)?,
            blobs: BlobClient::new(&account).map_err(err)?,
            tables: TableClient::new(&account).map_err(err)?,
            account,
        });
        self.clients.lock().unwrap().insert(name.to_owned(), clients.clone());
        Ok(clients)
    }

    /// The signal that wakes the listeners of `queue` (per connection).
    pub fn waker(&self, connection: &str, queue: &str) -> Arc<Notify> {
        let key = format!("{connection}|{}", queue.to_ascii_lowercase());
        self.wakers.lock().unwrap().entry(key).or_default().clone()
    }

    /// Runs `create` unless it already succeeded for `key` in this run; a failed create is tried
    /// again next time.
    async fn ensure(
        &self,
        key: String,
        create: impl std::future::Future<Output = Result<(), azfn::storage::StorageError>>,
    ) -> Result<(), String> {
        if self.created.lock().unwrap().contains(&key) {
            return Ok(());
        }
        create.await.map_err(|e| e.to_string())?;
        self.created.lock().unwrap().insert(key);
        Ok(())
    }

    /// Creates a queue once per run.
    pub async fn ensure_queue(&self, c: &Clients, connection: &str, queue: &str) -> Result<(), String> {
        self.ensure(format!("q|{connection}|{queue}"), c.queues.create_queue(queue)).await
    }

    /// Creates a blob container once per run.
    pub async fn ensure_container(&self, c: &Clients, connection: &str, container: &str) -> Result<(), String> {
        self.ensure(format!("c|{connection}|{container}"), c.blobs.create_container(container)).await
    }

    async fn ensure_table(&self, c: &Clients, connection: &str, table: &str) -> Result<(), String> {
        self.ensure(format!("t|{connection}|{table}"), c.tables.create_table(table)).await
    }

    /// Reads the function's table and blob input bindings into `inv.data`, as the host does before
    /// it calls the handler. A missing entity or blob leaves the binding out.
    pub async fn read_inputs(&self, spec: &FunctionSpec, inv: &mut Invocation) -> Result<(), String> {
        let inputs: Vec<&Binding> =
            spec.json.bindings.iter().filter(|b| b.direction != Direction::Out && !b.is_trigger()).collect();
        for b in inputs {
            let value = self
                .read_input(b, &inv.metadata)
                .await
                .map_err(|e| format!("input binding `{}` ({}): {e}", b.name, b.binding_type))?;
            if let Some(v) = value {
                inv.data.insert(b.name.clone(), v);
            }
        }
        Ok(())
    }

    async fn read_input(&self, b: &Binding, binding_data: &Map<String, Value>) -> Result<Option<Value>, String> {
        let resolve = |key: &str| -> Result<Option<String>, String> {
            b.property(key).map(|t| resolve_expression(t, binding_data)).transpose()
        };
        let connection = b.property("connection").unwrap_or("AzureWebJobsStorage");
        match b.binding_type.to_ascii_lowercase().as_str() {
            "table" => {
                let c = self.clients(connection)?;
                let table = resolve("tableName")?.ok_or("no tableName")?;
                let pk = resolve("partitionKey")?;
                if let (Some(pk), Some(rk)) = (&pk, resolve("rowKey")?) {
                    if !azfn::storage::is_valid_key(pk) || !azfn::storage::is_valid_key(&rk) {
                        // No entity can have such a key (e.g. a route value `a%2Fb` decoded to
                        // `a/b`): nothing is bound, as for a missing entity.
                        return Ok(None);
                    }
                    let found = match c.tables.get(&table, pk, &rk).await {
                        Err(e) if e.status == Some(404) => None,
                        other => other.map_err(|e| e.to_string())?,
                    };
                    // One entity binds as a JSON object (JObject).
                    return Ok(found.map(entity_json));
                }
                let mut filters = Vec::new();
                if let Some(pk) = pk {
                    filters.push(format!("PartitionKey eq {}", odata_string(&pk)));
                }
                if let Some(f) = resolve("filter")? {
                    filters.push(format!("({f})"));
                }
                let mut rows = match c.tables.query(&table, &filters.join(" and ")).await {
                    Err(e) if e.status == Some(404) => Vec::new(),
                    other => other.map_err(|e| e.to_string())?,
                };
                if let Some(take) = b.value("take").and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok())) {
                    rows.truncate(take as usize);
                }
                // A query binds as a JArray, which the host double-encodes.
                Ok(Some(encode(Value::Array(rows.into_iter().map(entity_json).collect()))))
            }
            "blob" => {
                let c = self.clients(connection)?;
                let path = resolve("path")?.ok_or("no path")?;
                let (container, name) =
                    path.split_once('/').ok_or_else(|| format!("blob path {path:?} has no container"))?;
                match c.blobs.get(container, name).await {
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e.to_string()),
                    // `dataType` binary or stream: the bytes, as base64. Otherwise (none, or string)
                    // the host binds the blob as a Stream converted to a String: the text.
                    Ok(blob)
                        if b.data_type
                            .as_deref()
                            .is_some_and(|d| d.eq_ignore_ascii_case("binary") || d.eq_ignore_ascii_case("stream")) =>
                    {
                        Ok(Some(Value::String(encode_base64(&blob.content))))
                    }
                    Ok(blob) => Ok(Some(encode(Value::String(String::from_utf8_lossy(&blob.content).into_owned())))),
                }
            }
            other => Err(format!("the built-in host has no `{other}` input binding; run under `func start` for it")),
        }
    }

    /// Applies one output write. A queue write wakes this host's listeners on that queue.
    pub async fn write(&self, spec: &FunctionSpec, w: &Write) -> Result<(), String> {
        match w {
            Write::Queue { queue, connection, messages } => {
                let c = self.clients(connection)?;
                self.ensure_queue(&c, connection, queue).await?;
                for m in messages {
                    c.queues.send(queue, m, Duration::ZERO).await.map_err(|e| e.to_string())?;
                }
                self.waker(connection, queue).notify_waiters();
                Ok(())
            }
            Write::Blob { path, connection, content } => {
                let c = self.clients(connection)?;
                let (container, name) =
                    path.split_once('/').ok_or_else(|| format!("blob output path {path:?} has no container"))?;
                self.ensure_container(&c, connection, container).await?;
                let ct = if name.ends_with(".json") { "application/json" } else { "application/octet-stream" };
                c.blobs
                    .put(container, name, Bytes::from(content.clone()), ct)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Write::Table { table, connection, entities } => {
                let c = self.clients(connection)?;
                self.ensure_table(&c, connection, table).await?;
                for batch in table_batches(table, entities)? {
                    c.tables.transact(table, &batch).await.map_err(|e| table_write_error(table, &batch, &e))?;
                }
                Ok(())
            }
            Write::Other { binding, binding_type, .. } if binding_type.eq_ignore_ascii_case("serviceBus") => {
                let connection =
                    spec.output(binding).and_then(|b| b.property("connection")).unwrap_or("ServiceBusConnection");
                Err(self.service_bus_problem(binding, connection))
            }
            Write::Other { binding, binding_type, .. } => Err(format!(
                "output `{binding}` is a `{binding_type}` binding, which the built-in host cannot write; run the app \
                 under `func start` (Core Tools) for it"
            )),
        }
    }

    /// Why a Service Bus output cannot be written here, naming the settings to fix.
    fn service_bus_problem(&self, binding: &str, connection: &str) -> String {
        let configured = [connection.to_owned(), format!("{connection}__fullyQualifiedNamespace")]
            .into_iter()
            .find_map(|k| self.settings.get(&k).filter(|v| !v.trim().is_empty() && !v.contains('<')).map(|v| (k, v)));
        match configured {
            None => format!(
                "Service Bus output `{binding}`: no namespace is configured: set `{connection}` (a connection string) or \
                 `{connection}__fullyQualifiedNamespace` in local.settings.json or the environment, and run under \
                 `func start`; the built-in host does not send to Service Bus"
            ),
            Some((key, _)) => format!(
                "Service Bus output `{binding}`: `{key}` is set, but the built-in host does not send to Service Bus \
                 (no AMQP client); run the app under `func start` (Core Tools) to use it"
            ),
        }
    }
}

/// The table output's writes as the real host makes them (`TableEntityWriter.AddAsync` and
/// `TablesExtensionConfigProvider.CreateTableEntityFromJObject` in the Tables extension;
/// docs/host-fidelity.md):
///
/// - `PartitionKey`, `RowKey` and `ETag` are found whatever their case;
/// - no `ETag` adds the entity (409 if it exists), `"ETag": "*"` inserts or replaces it, any other
///   ETag replaces it only if the stored one matches (412 otherwise);
/// - nested objects and arrays are stored as (indented) JSON text; `Timestamp` is the service's;
/// - entities go in entity-group transactions of up to 100 per partition, in order, and a row key
///   that repeats within a batch starts a new one.
pub(crate) fn table_batches(table: &str, entities: &[Map<String, Value>]) -> Result<Vec<Vec<TableOp>>, String> {
    let mut batches: Vec<(String, Vec<TableOp>, HashSet<String>)> = Vec::new();
    for e in entities {
        let mut props = Map::new();
        let (mut pk, mut rk, mut etag) = (None, None, None);
        for (k, v) in e {
            let slot = match k.to_ascii_lowercase().as_str() {
                "partitionkey" => &mut pk,
                "rowkey" => &mut rk,
                "etag" => &mut etag,
                "timestamp" => continue,
                _ => {
                    let v = match v {
                        Value::Object(_) | Value::Array(_) => {
                            Value::String(serde_json::to_string_pretty(v).expect("JSON"))
                        }
                        other => other.clone(),
                    };
                    props.insert(k.clone(), v);
                    continue;
                }
            };
            *slot = Some(v.clone());
        }
        let text = |v: Option<Value>, what: &str| match v {
            Some(Value::String(s)) => Ok(Some(s)),
            None | Some(Value::Null) => Ok(None),
            Some(other) => Err(format!("a table entity for {table} has a {what} that is not a string: {other}")),
        };
        let pk = text(pk, "PartitionKey")?.ok_or_else(|| format!("a table entity for {table} has no PartitionKey"))?;
        let rk = text(rk, "RowKey")?.ok_or_else(|| format!("a table entity for {table} has no RowKey"))?;
        let etag = text(etag, "ETag")?.filter(|t| !t.is_empty());
        let mut entity = Entity::new(pk.clone(), rk.clone());
        entity.properties = props;
        let op = match etag.as_deref() {
            None => TableOp::Insert(entity),
            Some("*") => TableOp::Upsert(entity),
            Some(tag) => TableOp::Replace(entity, tag.to_owned()),
        };
        let open = batches.iter_mut().rev().find(|(p, ops, rows)| p == &pk && ops.len() < 100 && !rows.contains(&rk));
        match open {
            Some((_, ops, rows)) => {
                rows.insert(rk);
                ops.push(op);
            }
            None => batches.push((pk, vec![op], HashSet::from([rk]))),
        }
    }
    Ok(batches.into_iter().map(|(_, ops, _)| ops).collect())
}

/// What a failed table write means, in the host's terms.
fn table_write_error(table: &str, batch: &[TableOp], e: &StorageError) -> String {
    let keys = |op: &TableOp| match op {
        TableOp::Insert(e) | TableOp::Replace(e, _) | TableOp::Upsert(e) => {
            format!("(PartitionKey {:?}, RowKey {:?})", e.partition_key, e.row_key)
        }
        TableOp::Delete { partition_key, row_key } => format!("({partition_key:?}, {row_key:?})"),
    };
    let all = batch.iter().map(keys).collect::<Vec<_>>().join(", ");
    match e.status {
        Some(409) => format!(
            "table output to {table}: an entity {all} already exists. The Functions host adds an entity that has no \
             ETag (TableEntityWriter), so this fails in Azure too; write \"ETag\": \"*\" to insert or replace it \
             (azfn: Context::upsert_entity): {e}"
        ),
        Some(412) => format!("table output to {table}: the ETag of {all} does not match the stored entity: {e}"),
        _ => format!("table output to {table} {all}: {e}"),
    }
}

fn entity_json(e: Entity) -> Value {
    let mut m = Map::new();
    m.insert("PartitionKey".into(), Value::String(e.partition_key));
    m.insert("RowKey".into(), Value::String(e.row_key));
    m.extend(e.properties);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_writes_follow_the_etag_as_table_entity_writer_does() {
        let e = |v: Value| v.as_object().unwrap().clone();
        let entities = vec![
            e(json!({"partitionKey": "p", "ROWKEY": "1", "n": 1})),
            e(json!({"PartitionKey": "p", "RowKey": "2", "ETag": "*", "nested": {"a": [1, 2]}})),
            e(json!({"PartitionKey": "p", "RowKey": "3", "etag": "W/\"datetime'x'\"", "Timestamp": "t"})),
            e(json!({"PartitionKey": "p", "RowKey": "1", "n": 2})),
            e(json!({"PartitionKey": "q", "RowKey": "1"})),
        ];
        let batches = table_batches("orders", &entities).unwrap();
        // p: 1, 2, 3 together; the repeated row 1 starts a new batch; q has its own.
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[0].len(), 3);
        assert!(matches!(&batches[0][0], TableOp::Insert(x) if x.row_key == "1" && x.properties["n"] == 1));
        match &batches[0][1] {
            TableOp::Upsert(x) => assert_eq!(x.properties["nested"], json!("{\n  \"a\": [\n    1,\n    2\n  ]\n}")),
            other => panic!("{other:?}"),
        }
        match &batches[0][2] {
            TableOp::Replace(x, tag) => {
                assert_eq!(tag, "W/\"datetime'x'\"");
                assert!(!x.properties.contains_key("Timestamp") && !x.properties.contains_key("etag"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&batches[1][0], TableOp::Insert(x) if x.properties["n"] == 2));
        assert!(matches!(&batches[2][0], TableOp::Insert(x) if x.partition_key == "q"));

        let err = table_batches("orders", &[e(json!({"RowKey": "1"}))]).unwrap_err();
        assert!(err.contains("no PartitionKey"), "{err}");
        let many: Vec<_> = (0..150).map(|i| e(json!({"PartitionKey": "p", "RowKey": i.to_string()}))).collect();
        assert_eq!(table_batches("t", &many).unwrap().iter().map(Vec::len).collect::<Vec<_>>(), [100, 50]);
    }
}
