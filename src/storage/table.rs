//! Tables: entities with optimistic concurrency (ETags) and escaped queries.

use reqwest::Method;
use serde_json::{Map, Value};

use super::auth::Service;
use super::client::{ServiceClient, StorageError};
use super::connection::StorageAccount;

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
    /// The other properties (no `odata.*` annotations, no `Timestamp`).
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
    let literal = s.replace('\'', "''");
    let mut out = String::new();
    for b in literal.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'\'' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A client for the tables of one account.
#[derive(Debug, Clone)]
pub struct TableClient {
    service: ServiceClient,
}

impl TableClient {
    /// A client for `account`'s table endpoint.
    pub fn new(account: &StorageAccount) -> Result<Self, StorageError> {
        Ok(Self { service: ServiceClient::new(account, Service::Table)? })
    }

    fn entity_path(table: &str, pk: &str, rk: &str) -> String {
        format!("{table}(PartitionKey='{}',RowKey='{}')", key_segment(pk), key_segment(rk))
    }

    /// Creates the table if it does not exist.
    pub async fn create_table(&self, table: &str) -> Result<(), StorageError> {
        let req = self
            .service
            .request(Method::POST, "Tables")
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .header("prefer", "return-no-content")
            .body(serde_json::json!({"TableName": table}).to_string());
        self.service.create(req, &format!("create table {table}")).await
    }

    /// Inserts an entity that must not exist yet (409 if it does); returns its ETag.
    pub async fn insert(&self, table: &str, entity: &Entity) -> Result<String, StorageError> {
        let req = self
            .service
            .request(Method::POST, table)
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .header("prefer", "return-no-content")
            .body(entity.to_json().to_string());
        let what = format!("insert {}/{} into table {table}", entity.partition_key, entity.row_key);
        let res = self.service.send(req, &what).await?;
        Ok(res.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
    }

    /// Replaces an entity, or inserts it. With `if_match` (an ETag) the write only happens when the
    /// stored entity still has that ETag (412 otherwise). Returns the new ETag.
    pub async fn upsert(&self, table: &str, entity: &Entity, if_match: Option<&str>) -> Result<String, StorageError> {
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
        let res = self.service.send(req, &what).await?;
        Ok(res.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
    }

    /// Reads an entity, or `None` when it does not exist.
    pub async fn get(&self, table: &str, partition_key: &str, row_key: &str) -> Result<Option<Entity>, StorageError> {
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
        let mut next: Option<(String, String)> = None;
        loop {
            let mut query = vec![("$filter", filter.to_owned())];
            if let Some((pk, rk)) = &next {
                query.push(("NextPartitionKey", pk.clone()));
                query.push(("NextRowKey", rk.clone()));
            }
            let req = self.service.request(Method::GET, &format!("{table}()")).header("accept", ACCEPT).query(&query);
            let res = self.service.send(req, &format!("query table {table}")).await?;
            let header = |h: &str| res.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_owned);
            next = header("x-ms-continuation-nextpartitionkey")
                .map(|pk| (pk, header("x-ms-continuation-nextrowkey").unwrap_or_default()));
            let body: Value = res.json().await.map_err(|e| StorageError::other(e.to_string()))?;
            if let Some(items) = body["value"].as_array() {
                out.extend(items.iter().filter_map(|v| v.as_object().cloned()).map(Entity::from_json));
            }
            if next.is_none() {
                return Ok(out);
            }
        }
    }

    /// Deletes an entity; with `if_match`, only if it still has that ETag.
    pub async fn delete(
        &self,
        table: &str,
        partition_key: &str,
        row_key: &str,
        if_match: Option<&str>,
    ) -> Result<(), StorageError> {
        let req = self
            .service
            .request(Method::DELETE, &Self::entity_path(table, partition_key, row_key))
            .header("accept", ACCEPT)
            .header("if-match", if_match.unwrap_or("*"));
        self.service.send(req, &format!("delete {partition_key}/{row_key} from table {table}")).await.map(|_| ())
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
