//! Doing a non-idempotent thing once per client request, however often the request is retried: the
//! `Idempotency-Key` pattern (IETF draft-ietf-httpapi-idempotency-key-header), kept in a storage
//! table.
//!
//! A client sends a unique key with a request that creates something (`POST /api/orders`). The first
//! request with a key runs the work and stores its result under the key; a retry with the same key
//! (because the answer was lost, or was a 5xx) gets the stored result and does not run the work
//! again. A retry with the same key but another body is refused ([`IdempotencyError::Mismatch`], 422),
//! and one that arrives while the first is still running is told so ([`IdempotencyError::InProgress`],
//! 409).
//!
//! ```no_run
//! use azfn::idempotency::{IdempotencyStore, fingerprint};
//!
//! # async fn handler(store: &IdempotencyStore, key: &str, body: &[u8]) -> Result<(), azfn::idempotency::IdempotencyError> {
//! // The order id is made once per key; a retried request gets the same one.
//! let order_id: String = store
//!     .once("CreateOrder", key, &fingerprint(body), || async { Ok::<_, std::convert::Infallible>(uuid::Uuid::new_v4().to_string()) })
//!     .await?
//!     .into_value();
//! # Ok(()) }
//! ```
//!
//! **The pattern for output bindings and at-least-once triggers.** Keep the value that identifies
//! the side effect (the order, with its id) under the key, and emit the outputs from it on every
//! call, first or repeated: the host may have failed to write the first call's outputs, so a retry
//! writes them again, and the consumer (here `ProcessOrder`, writing the row keyed by the order id)
//! makes a second copy of the same message harmless. The same store serves a queue-triggered
//! function that must not act twice on a redelivered message: use the message's own id or a
//! business key as the key.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::storage::{Entity, StorageError, TableClient};

/// The default table.
pub const DEFAULT_TABLE: &str = "azfnIdempotency";
/// How long a claim whose call never finished (its process died) blocks retries.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(60);

/// Results stored by idempotency key in a table.
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    tables: TableClient,
    table: String,
}

/// What [`IdempotencyStore::once`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// The work ran now; this is its result.
    First(T),
    /// An earlier request with the key ran it; this is the result it stored.
    Repeat(T),
}

impl<T> Once<T> {
    /// The result, first or repeated.
    pub fn into_value(self) -> T {
        match self {
            Once::First(v) | Once::Repeat(v) => v,
        }
    }

    /// Whether the work ran in this call.
    pub fn is_first(&self) -> bool {
        matches!(self, Once::First(_))
    }
}

/// Why [`IdempotencyStore::once`] did not give a result.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The key was used before with another request body (HTTP 422).
    #[error("the Idempotency-Key {0:?} was used before with another request body; use a new key for a new request")]
    Mismatch(String),
    /// A request with the key is still being processed (HTTP 409).
    #[error("a request with the Idempotency-Key {0:?} is still being processed; retry it shortly")]
    InProgress(String),
    /// The key is empty or longer than 255 characters (HTTP 400).
    #[error("the Idempotency-Key must be 1 to 255 characters, not {0}")]
    BadKey(usize),
    /// The work failed; nothing was stored, so a retry runs it again.
    #[error("{0}")]
    Failed(String),
    /// The store could not be read or written.
    #[error("idempotency store: {0}")]
    Storage(#[from] StorageError),
}

impl IdempotencyError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            IdempotencyError::Mismatch(_) => 422,
            IdempotencyError::InProgress(_) => 409,
            IdempotencyError::BadKey(_) => 400,
            IdempotencyError::Failed(_) => 500,
            IdempotencyError::Storage(e) if e.is_transient() => 503,
            IdempotencyError::Storage(_) => 500,
        }
    }
}

/// A short, stable digest of a request body, to tell a retry from another request with the same key.
pub fn fingerprint(body: &[u8]) -> String {
    let digest = sha2::Sha256::digest(body);
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

impl IdempotencyStore {
    /// A store in `table` (created when first written).
    pub fn new(tables: TableClient, table: impl Into<String>) -> Self {
        Self { tables, table: table.into() }
    }

    /// The store in table [`DEFAULT_TABLE`] of the `AzureWebJobsStorage` account of the process
    /// environment.
    pub fn from_env() -> Result<Self, StorageError> {
        let account = crate::storage::resolve("AzureWebJobsStorage", |k| std::env::var(k).ok())
            .map_err(|e| StorageError::other(format!("the idempotency store needs AzureWebJobsStorage: {e}")))?;
        Ok(Self::new(TableClient::new(&account)?, DEFAULT_TABLE))
    }

    /// Runs `work` unless a request with `key` in `scope` (e.g. the function name) already did,
    /// and returns its result either way. `fingerprint` identifies the request (see
    /// [`fingerprint`]); a key reused with another fingerprint is refused. If `work` fails,
    /// nothing is kept and a retry runs it again.
    pub async fn once<T, E, F, Fut>(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        work: F,
    ) -> Result<Once<T>, IdempotencyError>
    where
        T: Serialize + DeserializeOwned,
        E: std::fmt::Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let chars = key.chars().count();
        if chars == 0 || chars > 255 {
            return Err(IdempotencyError::BadKey(chars));
        }
        let row_key = crate::encoding::percent_encode(key, b"-_.~");
        let claim = uuid::Uuid::new_v4().simple().to_string();
        let mut row = Entity::new(scope, row_key.clone());
        row.properties.insert("State".into(), json!("running"));
        row.properties.insert("Fingerprint".into(), json!(fingerprint));
        row.properties.insert("Claim".into(), json!(claim));
        row.properties.insert("ClaimedAt".into(), json!(chrono::Utc::now().to_rfc3339()));
        let mut etag = match self.tables.insert(&self.table, &row).await {
            Ok(etag) => Some(etag),
            Err(e) if e.is_conflict() => None,
            Err(e) => return Err(e.into()),
        };
        if etag.is_none() {
            let Some(found) = self.tables.get(&self.table, scope, &row_key).await? else {
                // Deleted in between (a failed first attempt): the caller's retry starts over.
                return Err(IdempotencyError::InProgress(key.to_owned()));
            };
            let text = |k: &str| found.properties.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            if text("Fingerprint") != fingerprint {
                return Err(IdempotencyError::Mismatch(key.to_owned()));
            }
            if text("State") == "done" {
                let value = serde_json::from_str(&text("Value")).map_err(|e| {
                    IdempotencyError::Failed(format!(
                        "the result stored for Idempotency-Key {key:?} is unreadable: {e}"
                    ))
                })?;
                return Ok(Once::Repeat(value));
            }
            let stale = chrono::DateTime::parse_from_rfc3339(&text("ClaimedAt"))
                .map(|t| chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .is_ok_and(|age| age.to_std().unwrap_or_default() > CLAIM_TIMEOUT);
            if text("Claim") == claim {
                etag = found.etag.clone(); // this call's own insert, whose answer was lost
            } else if stale {
                // The first request's process died: take its claim over.
                etag = Some(self.tables.upsert(&self.table, &row, found.etag.as_deref()).await.map_err(|e| {
                    if e.is_precondition_failed() { IdempotencyError::InProgress(key.to_owned()) } else { e.into() }
                })?);
            } else {
                return Err(IdempotencyError::InProgress(key.to_owned()));
            }
        }
        let value = match work().await {
            Ok(v) => v,
            Err(e) => {
                let _ = self.tables.delete(&self.table, scope, &row_key, etag.as_deref()).await;
                return Err(IdempotencyError::Failed(e.to_string()));
            }
        };
        let text = serde_json::to_string(&value).map_err(|e| IdempotencyError::Failed(e.to_string()))?;
        row.properties.insert("State".into(), json!("done"));
        row.properties.insert("Value".into(), json!(text));
        self.tables.upsert(&self.table, &row, None).await?;
        Ok(Once::First(value))
    }
}
