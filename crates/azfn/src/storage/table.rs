//! Tables: entities with optimistic concurrency (ETags) and escaped queries.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Map, Value};

use super::auth::Service;
use super::client::{ServiceClient, StorageError, recreating};
use super::connection::StorageAccount;
use super::retry::RetryPolicy;

const ACCEPT: &str = "application/json;odata=minimalmetadata";

/// A table entity: its keys, its ETag (when read), and its other properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// `PartitionKey`.
    pub partition_key: String,
    /// `RowKey`.
    pub row_key: String,
    /// The ETag the service gave it, for conditional updates.
    pub etag: Option<String>,
    /// The other properties (no `odata.*` annotations, no `Timestamp`); an `Edm.Int64` is a number.
    pub properties: Map<String, Value>,
}

impl Entity {
    /// A new entity with no properties.
    pub fn new(partition_key: impl Into<String>, row_key: impl Into<String>) -> Self {
        Self { partition_key: partition_key.into(), row_key: row_key.into(), etag: None, properties: Map::new() }
    }

    fn to_json(&self) -> Value {
        let mut m = self.properties.clone();
        m.insert("PartitionKey".into(), Value::String(self.partition_key.clone()));
        m.insert("RowKey".into(), Value::String(self.row_key.clone()));
        Value::Object(m)
    }

    fn from_json(mut m: Map<String, Value>) -> Self {
        let text = |m: &mut Map<String, Value>, k: &str| match m.remove(k) {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let partition_key = text(&mut m, "PartitionKey");
        let row_key = text(&mut m, "RowKey");
        let etag = match m.remove("odata.etag") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        // Edm.Int64 travels as a string; Azure.Data.Tables reads it as a `long`
        // (`DictionaryTableExtensions.CastAndRemoveAnnotations`: `TableConstants.Odata.EdmInt64 =>
        // long.Parse(...)`), and the Tables binding hands it on as a JSON number, so it is one here.
        let int64: Vec<String> = m
            .iter()
            .filter(|(k, v)| k.ends_with("@odata.type") && v.as_str() == Some("Edm.Int64"))
            .map(|(k, _)| k.trim_end_matches("@odata.type").to_owned())
            .collect();
        for key in int64 {
            if let Some(n) = m.get(&key).and_then(Value::as_str).and_then(|t| t.parse::<i64>().ok()) {
                m.insert(key, Value::from(n));
            }
        }
        m.retain(|k, _| !k.starts_with("odata.") && !k.ends_with("@odata.type") && k != "Timestamp");
        Self { partition_key, row_key, etag, properties: m }
    }
}

/// A string as an OData literal in a filter: quoted, with quotes doubled, so user text cannot
/// change the query.
///
/// ```
/// assert_eq!(azfn::storage::odata_string("O'Brien"), "'O''Brien'");
/// ```
pub fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A key as it appears in an entity's address `(PartitionKey='…',RowKey='…')`, percent-encoded.
fn key_segment(s: &str) -> String {
    crate::encoding::percent_encode(&s.replace('\'', "''"), b"'")
}

/// A client for the tables of one account.
#[derive(Debug, Clone)]
pub struct TableClient {
    service: ServiceClient,
    #[cfg(feature = "simulation")]
    memory: Option<super::memory::Link>,
}

impl TableClient {
    /// A client for `account`'s table endpoint.
    pub fn new(account: &StorageAccount) -> Result<Self, StorageError> {
        Ok(Self {
            service: ServiceClient::new(account, Service::Table)?,
            #[cfg(feature = "simulation")]
            memory: None,
        })
    }

    /// A client of the in-memory account behind `link` (feature `simulation`).
    #[cfg(feature = "simulation")]
    pub fn in_memory(link: super::memory::Link) -> Self {
        let service = super::memory::placeholder_service(Service::Table);
        Self { service, memory: Some(link) }
    }

    /// The same client, retrying failed requests by `policy` instead of [`RetryPolicy::from_env`].
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.service = self.service.with_retry_policy(policy);
        self
    }

    fn entity_path(table: &str, pk: &str, rk: &str) -> String {
        format!("{table}(PartitionKey='{}',RowKey='{}')", key_segment(pk), key_segment(rk))
    }

    /// Creates the table if it does not exist.
    pub async fn create_table(&self, table: &str) -> Result<(), StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.create_table(table).await;
        }
        let req = self
            .service
            .request(Method::POST, "Tables")
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .header("prefer", "return-no-content")
            .body(serde_json::json!({"TableName": table}).to_string());
        self.service.create(req, &format!("create table {table}")).await
    }

    /// Inserts an entity that must not exist yet (409 if it does; [`StorageError::ambiguous`] then
    /// says whether it may be this call's own earlier attempt); returns its ETag. A missing table is
    /// created.
    pub async fn insert(&self, table: &str, entity: &Entity) -> Result<String, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.insert(table, entity).await;
        }
        let req = self
            .service
            .request(Method::POST, table)
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .header("prefer", "return-no-content")
            .body(entity.to_json().to_string());
        let what = format!("insert {}/{} into table {table}", entity.partition_key, entity.row_key);
        let res = self.service.send_creating(req, &what, "TableNotFound", || self.create_table(table)).await?;
        Ok(res.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
    }

    /// Replaces an entity, or inserts it. With `if_match` (an ETag) the write only happens when the
    /// stored entity still has that ETag (412 otherwise). Returns the new ETag.
    ///
    /// A missing table is created.
    pub async fn upsert(&self, table: &str, entity: &Entity, if_match: Option<&str>) -> Result<String, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.upsert(table, entity, if_match).await;
        }
        let mut req = self
            .service
            .request(Method::PUT, &Self::entity_path(table, &entity.partition_key, &entity.row_key))
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .body(entity.to_json().to_string());
        if let Some(etag) = if_match {
            req = req.header("if-match", etag);
        }
        let what = format!("write {}/{} in table {table}", entity.partition_key, entity.row_key);
        let res = self.service.send_creating(req, &what, "TableNotFound", || self.create_table(table)).await?;
        Ok(res.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
    }

    /// Reads an entity, or `None` when it does not exist.
    pub async fn get(&self, table: &str, partition_key: &str, row_key: &str) -> Result<Option<Entity>, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.get(table, partition_key, row_key).await;
        }
        let req = self
            .service
            .request(Method::GET, &Self::entity_path(table, partition_key, row_key))
            .header("accept", ACCEPT);
        match self.service.send(req, &format!("read {partition_key}/{row_key} from table {table}")).await {
            Ok(res) => {
                let etag = res.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let m: Map<String, Value> = res.json().await.map_err(|e| StorageError::other(e.to_string()))?;
                let mut e = Entity::from_json(m);
                e.etag = etag.or(e.etag);
                Ok(Some(e))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The entities matching an OData `filter` (build it with [`odata_string`]), following continuations.
    pub async fn query(&self, table: &str, filter: &str) -> Result<Vec<Entity>, StorageError> {
        let mut out = Vec::new();
        let mut next: Option<Continuation> = None;
        loop {
            let (page, more) = self.query_page(table, filter, None, next.as_ref()).await?;
            out.extend(page);
            match more {
                Some(c) => next = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// One page of the entities matching `filter`: at most `top` of them, starting at `continuation`
    /// (from the previous page). Returns the entities and the next page's continuation, if any.
    pub async fn query_page(
        &self,
        table: &str,
        filter: &str,
        top: Option<u32>,
        continuation: Option<&Continuation>,
    ) -> Result<(Vec<Entity>, Option<Continuation>), StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.query_page(table, filter, top, continuation).await;
        }
        let mut query = vec![("$filter", filter.to_owned())];
        if let Some(top) = top {
            query.push(("$top", top.clamp(1, 1000).to_string()));
        }
        if let Some(c) = continuation {
            query.push(("NextPartitionKey", c.partition_key.clone()));
            if let Some(rk) = &c.row_key {
                query.push(("NextRowKey", rk.clone()));
            }
        }
        let req = self.service.request(Method::GET, &format!("{table}()")).header("accept", ACCEPT).query(&query);
        let res = self.service.send(req, &format!("query table {table}")).await?;
        let header = |h: &str| res.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let next = header("x-ms-continuation-nextpartitionkey")
            .map(|pk| Continuation { partition_key: pk, row_key: header("x-ms-continuation-nextrowkey") });
        let body: Value = res.json().await.map_err(|e| StorageError::other(e.to_string()))?;
        let items = body["value"].as_array().map(Vec::as_slice).unwrap_or_default();
        Ok((items.iter().filter_map(|v| v.as_object().cloned()).map(Entity::from_json).collect(), next))
    }

    /// Deletes an entity; with `if_match`, only if it still has that ETag.
    pub async fn delete(
        &self,
        table: &str,
        partition_key: &str,
        row_key: &str,
        if_match: Option<&str>,
    ) -> Result<(), StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.delete_entity(table, partition_key, row_key, if_match).await;
        }
        let req = self
            .service
            .request(Method::DELETE, &Self::entity_path(table, partition_key, row_key))
            .header("accept", ACCEPT)
            .header("if-match", if_match.unwrap_or("*"));
        self.service.delete(req, &format!("delete {partition_key}/{row_key} from table {table}")).await
    }
}

/// Where the next page of a table query starts (the service's `NextPartitionKey`/`NextRowKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    /// The next partition key.
    pub partition_key: String,
    /// The next row key.
    pub row_key: Option<String>,
}

impl Continuation {
    /// The continuation as one opaque, URL-safe token.
    pub fn to_token(&self) -> String {
        let text = format!("{}\n{}", self.partition_key, self.row_key.as_deref().unwrap_or(""));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads a token made by [`to_token`](Self::to_token).
    pub fn from_token(token: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (pk, rk) = text.split_once('\n')?;
        Some(Self { partition_key: pk.to_owned(), row_key: (!rk.is_empty()).then(|| rk.to_owned()) })
    }
}

/// Whether `key` can be a table `PartitionKey` or `RowKey`: at most 1 KiB, without `/ \ # ?`, control
/// characters, or the line and paragraph separators (which the service refuses).
pub fn is_valid_key(key: &str) -> bool {
    key.len() <= 1024 && !key.chars().any(is_forbidden_in_key)
}

/// Whether a table key cannot hold `c`: `/ \ # ?`, control characters, line and paragraph separators.
pub(crate) fn is_forbidden_in_key(c: char) -> bool {
    matches!(c, '/' | '\\' | '#' | '?' | '\u{2028}' | '\u{2029}') || c.is_control()
}

/// One operation of an entity-group transaction ([`TableClient::transact`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TableOp {
    /// Insert; the transaction fails with 409 if the entity exists.
    Insert(Entity),
    /// Replace, only if the stored entity has this ETag (412 otherwise).
    Replace(Entity, String),
    /// Insert or replace.
    Upsert(Entity),
    /// Delete, whatever its ETag.
    Delete {
        /// `PartitionKey`.
        partition_key: String,
        /// `RowKey`.
        row_key: String,
    },
}

impl TableOp {
    fn keys(&self) -> (&str, &str) {
        match self {
            TableOp::Insert(e) | TableOp::Replace(e, _) | TableOp::Upsert(e) => (&e.partition_key, &e.row_key),
            TableOp::Delete { partition_key, row_key } => (partition_key, row_key),
        }
    }
}

impl TableClient {
    /// Runs up to 100 operations on one partition as one entity-group transaction: all of them
    /// happen or none does. Returns each operation's new ETag (empty for deletes). A failed
    /// operation fails the whole transaction with its status (412 for a stale ETag, 409 for an
    /// insert of an existing entity; [`StorageError::ambiguous`] says whether it may be this call's
    /// own earlier attempt) and its index in the message. A missing table is created.
    pub async fn transact(&self, table: &str, ops: &[TableOp]) -> Result<Vec<String>, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.transact(table, ops).await;
        }
        recreating("TableNotFound", || self.transact_once(table, ops), || self.create_table(table)).await
    }

    async fn transact_once(&self, table: &str, ops: &[TableOp]) -> Result<Vec<String>, StorageError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        if ops.len() > 100 {
            return Err(StorageError::other(format!(
                "a table transaction holds at most 100 operations, not {}",
                ops.len()
            )));
        }
        let pk = ops[0].keys().0;
        if let Some(other) = ops.iter().find(|o| o.keys().0 != pk) {
            return Err(StorageError::other(format!(
                "a table transaction covers one partition; got {pk:?} and {:?}",
                other.keys().0
            )));
        }
        let batch = format!("batch_{}", uuid::Uuid::new_v4());
        let changeset = format!("changeset_{}", uuid::Uuid::new_v4());
        let base = self.service.url("");
        let base = base.trim_end_matches('/');
        let mut body = format!("--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n");
        for op in ops {
            let (pk, rk) = op.keys();
            let address = format!("{base}/{}", Self::entity_path(table, pk, rk));
            let (line, if_match, json) = match op {
                TableOp::Insert(e) => (format!("POST {base}/{table}"), None, Some(e.to_json())),
                TableOp::Replace(e, etag) => (format!("PUT {address}"), Some(etag.as_str()), Some(e.to_json())),
                TableOp::Upsert(e) => (format!("PUT {address}"), None, Some(e.to_json())),
                TableOp::Delete { .. } => (format!("DELETE {address}"), Some("*"), None),
            };
            body.push_str(&format!(
                "--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{line} HTTP/1.1\r\n"
            ));
            body.push_str(&format!("Accept: {ACCEPT}\r\nDataServiceVersion: 3.0;\r\n"));
            if let Some(m) = if_match {
                body.push_str(&format!("If-Match: {m}\r\n"));
            }
            match json {
                Some(j) => {
                    let text = j.to_string();
                    body.push_str(&format!(
                        "Content-Type: application/json\r\nPrefer: return-no-content\r\nContent-Length: {}\r\n\r\n{text}\r\n",
                        text.len()
                    ));
                }
                None => body.push_str("\r\n"),
            }
        }
        body.push_str(&format!("--{changeset}--\r\n--{batch}--\r\n"));
        let req = self
            .service
            .request(Method::POST, "$batch")
            .header("accept", ACCEPT)
            .header("content-type", format!("multipart/mixed; boundary={batch}"))
            .header("dataserviceversion", "3.0;")
            .header("maxdataserviceversion", "3.0;NetFx")
            .body(body);
        let what = format!("transaction of {} operations on {table} partition {pk:?}", ops.len());
        let (res, ambiguous) = self.service.send_tracked(req, &what).await?;
        let text = res.text().await.map_err(|e| StorageError::other(format!("{what}: {e}")))?;
        let mut etags = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
                if let Some(etag) = current.take() {
                    etags.push(etag);
                }
                let status: u16 = rest.split(' ').next().and_then(|c| c.parse().ok()).unwrap_or(0);
                if status >= 300 {
                    let detail = text
                        .lines()
                        .find_map(|l| {
                            let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
                            v["odata.error"]["message"]["value"].as_str().map(str::to_owned)
                        })
                        .unwrap_or_else(|| rest.to_owned());
                    let code = text.lines().find_map(|l| {
                        let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
                        v["odata.error"]["code"].as_str().map(str::to_owned)
                    });
                    let mut err = StorageError::answered(
                        status,
                        code,
                        format!("{what}: {}", detail.lines().next().unwrap_or_default()),
                    );
                    err.ambiguous |= ambiguous;
                    return Err(err);
                }
                current = Some(String::new());
            } else if let Some(v) = line.strip_prefix("ETag: ").or_else(|| line.strip_prefix("etag: "))
                && let Some(c) = current.as_mut()
            {
                *c = v.trim().to_owned();
            }
        }
        if let Some(etag) = current.take() {
            etags.push(etag);
        }
        Ok(etags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_in_addresses_and_filters() {
        assert_eq!(TableClient::entity_path("t", "a'b", "x y/z"), "t(PartitionKey='a''b',RowKey='x%20y%2Fz')");
        assert_eq!(odata_string("x' or 'a'='a"), "'x'' or ''a''=''a'");
    }
}
