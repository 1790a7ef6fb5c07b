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
use crate::encoding::encode_base64;
use crate::function_json::{Binding, Direction, FunctionSpec};
use crate::storage::{BlobClient, Entity, QueueClient, StorageAccount, TableClient, odata_string, resolve};

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
        let err = |e: crate::storage::StorageError| format!("connection {name}: {e}");
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
        create: impl std::future::Future<Output = Result<(), crate::storage::StorageError>>,
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
                    if !crate::storage::is_valid_key(pk) || !crate::storage::is_valid_key(&rk) {
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
                if let Some(take) =
                    b.properties.get("take").and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok()))
                {
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
                    Ok(blob) if b.data_type.as_deref().is_some_and(|d| d.eq_ignore_ascii_case("string")) => {
                        Ok(Some(encode(Value::String(String::from_utf8_lossy(&blob.content).into_owned()))))
                    }
                    Ok(blob) => Ok(Some(Value::String(encode_base64(&blob.content)))),
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
                for e in entities {
                    let mut props = e.clone();
                    let key = |props: &mut Map<String, Value>, k: &str| match props.remove(k) {
                        Some(Value::String(s)) => Ok(s),
                        _ => Err(format!("a table entity for {table} has no string {k}")),
                    };
                    let mut entity = Entity::new(key(&mut props, "PartitionKey")?, key(&mut props, "RowKey")?);
                    props.remove("ETag");
                    props.remove("Timestamp");
                    entity.properties = props;
                    c.tables.upsert(table, &entity, None).await.map_err(|e| e.to_string())?;
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

fn entity_json(e: Entity) -> Value {
    let mut m = Map::new();
    m.insert("PartitionKey".into(), Value::String(e.partition_key));
    m.insert("RowKey".into(), Value::String(e.row_key));
    m.extend(e.properties);
    Value::Object(m)
}
