//! The blob trigger, as the Storage Blobs extension 5.x runs it (`custom-handler-protocol.md` §5.2,
//! docs/host-fidelity.md §9):
//!
//! - the container is scanned for blobs whose names fit the path pattern (`receipts/{name}`); with
//!   `source: EventGrid` it is not scanned, and the extension's webhook
//!   (`/runtime/webhooks/blobs?functionName=Host.Functions.<Function>`, [`webhook`]) runs the blobs
//!   the Event Grid events name instead;
//! - a blob version (name + ETag) triggers once: after a success a receipt is written to
//!   `azure-webjobs-hosts/blobreceipts/<hostId>/Host.Functions.<Function>/<ETag>/<container>/<blob>`,
//!   and a version with a receipt is skipped, across restarts too (delete the receipt to run it again);
//! - a failed version is tried again, up to `extensions.blobs.poisonBlobThreshold` attempts (default
//!   5, whatever the queues' `maxDequeueCount`), then a message
//!   `{FunctionId, BlobType, ContainerName, BlobName, ETag}` goes to `webjobs-blobtrigger-poison`
//!   and the version gets its receipt;
//! - at most `extensions.blobs.maxDegreeOfParallelism` blobs (default 8 per processor, 8 on
//!   Consumption) run at once, for all the app's blob triggers together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::bindings::Clients;
use super::invocation;
use super::invoker::Invoker;
use azfn::storage::Blob;

/// The container for receipts and scan state.
pub const HOSTS_CONTAINER: &str = "azure-webjobs-hosts";
/// The queue for blobs that failed every attempt.
pub const POISON_QUEUE: &str = "webjobs-blobtrigger-poison";
/// The Blobs extension's webhook (`[Extension("AzureStorageBlobs", "Blobs")]`, so
/// `runtime/webhooks/blobs` by DefaultScriptWebHookProvider), for `source: EventGrid` triggers.
pub const WEBHOOK_PATH: &str = "/runtime/webhooks/blobs";

/// host.json `extensions.blobs`, with the extension's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobOptions {
    /// Attempts before a blob is poisoned (`PoisonBlobThreshold`, default 5).
    pub poison_blob_threshold: u32,
    /// Blobs run at once by all the blob triggers (`MaxDegreeOfParallelism`, default
    /// `8 * processors`).
    pub max_degree_of_parallelism: usize,
}

impl BlobOptions {
    /// Reads `extensions.blobs`; a value the extension refuses is an error naming it, as it stops
    /// the real host (`BlobsOptions`: `if (value < 1) throw new ArgumentException("PoisonBlobThreshold
    /// must not be less than 1.")`; `MaxDegreeOfParallelism`: `if (value <= 0) throw`). The default
    /// threshold is the extension's own (`DefaultPoisonBlobThreshold = 5`), not the queues'
    /// `maxDequeueCount`: SharedBlobQueueListenerFactory builds the blob queue's options afresh.
    ///
    /// ```
    /// use cargo_azfn::host::blob_listener::BlobOptions;
    /// let host = serde_json::json!({"extensions": {"queues": {"maxDequeueCount": 2}}});
    /// let o = BlobOptions::from_host_json(&host, 1).unwrap();
    /// assert_eq!((o.poison_blob_threshold, o.max_degree_of_parallelism), (5, 8));
    /// ```
    pub fn from_host_json(host: &Value, processors: u32) -> Result<Self, String> {
        let b = &host["extensions"]["blobs"];
        let int = |k: &str, least: i64| -> Result<Option<i64>, String> {
            let Some(v) = b.get(k).filter(|v| !v.is_null()) else { return Ok(None) };
            match v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()) {
                Some(n) if n >= least => Ok(Some(n)),
                Some(n) => Err(format!(
                    "host.json extensions.blobs.{k} is {n}: it must not be less than {least}; the Functions host does \
                     not start with it"
                )),
                None => Err(format!("host.json extensions.blobs.{k} should be a whole number, got {v}")),
            }
        };
        Ok(Self {
            poison_blob_threshold: int("poisonBlobThreshold", 1)?.map_or(5, |n| n as u32),
            max_degree_of_parallelism: int("maxDegreeOfParallelism", 1)?
                .map_or(8 * processors.max(1) as usize, |n| n as usize),
        })
    }
}

/// One function's blob trigger.
#[derive(Debug, Clone)]
pub struct BlobTrigger {
    /// The function.
    pub function: String,
    /// The trigger binding's name.
    pub binding: String,
    /// The path pattern, `container/name-pattern`.
    pub path: String,
    /// The connection setting name.
    pub connection: String,
    /// This host's id (the receipts' namespace).
    pub host_id: String,
    /// Attempts before a blob is poisoned.
    pub max_attempts: u32,
    /// How often to scan.
    pub interval: Duration,
    /// The app's blob invocations at once ([`BlobOptions::max_degree_of_parallelism`]), shared by
    /// every blob trigger.
    pub permits: Arc<tokio::sync::Semaphore>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Param(String),
}

/// A blob name pattern such as `{name}.json` or `{year}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(Vec<Piece>);

impl NamePattern {
    /// Parses the part of a blob path after the container.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while let Some(start) = rest.find('{') {
            if start > 0 {
                pieces.push(Piece::Literal(rest[..start].to_owned()));
            }
            let end = rest[start..].find('}').ok_or_else(|| format!("unclosed `{{` in blob path {pattern:?}"))?;
            let name = &rest[start + 1..start + end];
            if name.is_empty() {
                return Err(format!("empty `{{}}` in blob path {pattern:?}"));
            }
            if matches!(pieces.last(), Some(Piece::Param(_))) {
                return Err(format!("two parameters with nothing between them in blob path {pattern:?}"));
            }
            pieces.push(Piece::Param(name.to_owned()));
            rest = &rest[start + end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        Ok(Self(pieces))
    }

    /// The literal text every matching name starts with (for listing by prefix).
    pub fn prefix(&self) -> &str {
        match self.0.first() {
            Some(Piece::Literal(l)) => l,
            _ => "",
        }
    }

    /// The parameters when `name` fits the pattern (each parameter takes the shortest text up to
    /// the next literal; the last one takes the rest).
    ///
    /// ```
    /// use cargo_azfn::host::blob_listener::NamePattern;
    /// let p = NamePattern::parse("{orderId}.json").unwrap();
    /// assert_eq!(p.matches("o-1.json").unwrap()["orderId"], "o-1");
    /// assert!(p.matches("o-1.txt").is_none());
    /// ```
    pub fn matches(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let mut params = BTreeMap::new();
        let mut rest = name;
        let mut i = 0;
        while i < self.0.len() {
            match &self.0[i] {
                Piece::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
                Piece::Param(p) => match self.0.get(i + 1) {
                    Some(Piece::Literal(next)) => {
                        let at = rest.find(next.as_str())?;
                        params.insert(p.clone(), rest[..at].to_owned());
                        rest = &rest[at..];
                    }
                    _ => {
                        params.insert(p.clone(), rest.to_owned());
                        rest = "";
                    }
                },
            }
            i += 1;
        }
        (rest.is_empty() && params.values().all(|v| !v.is_empty())).then_some(params)
    }
}

/// The `Properties` binding data of a blob: the blob client's `BlobProperties`, as the host
/// serializes the whole object (docs/host-fidelity.md §9), from the blob's response headers.
pub fn properties(blob: &Blob) -> serde_json::Value {
    let header = |h: &str| blob.headers.get(h).cloned();
    let time = |h: &str| {
        header(h)
            .and_then(|t| chrono::DateTime::parse_from_rfc2822(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc).to_rfc3339())
    };
    let blob_type = match header("x-ms-blob-type").as_deref() {
        Some("PageBlob") => "Page",
        Some("AppendBlob") => "Append",
        _ => "Block",
    };
    json!({
        "LastModified": time("last-modified"),
        "CreatedOn": time("x-ms-creation-time"),
        "Metadata": blob.metadata,
        "BlobType": blob_type,
        "ContentLength": blob.content.len(),
        "ContentType": blob.content_type,
        "ETag": blob.etag,
        "ContentHash": header("content-md5"),
        "ContentEncoding": header("content-encoding"),
        "ContentDisposition": header("content-disposition"),
        "ContentLanguage": header("content-language"),
        "CacheControl": header("cache-control"),
        "LeaseStatus": header("x-ms-lease-status"),
        "LeaseState": header("x-ms-lease-state"),
        "AccessTier": header("x-ms-access-tier"),
        "IsServerEncrypted": header("x-ms-server-encrypted").map(|v| v == "true"),
    })
}

/// The receipt's name (`BlobReceiptManager`): the ETag as the blob's headers give it, quoted.
fn receipt_name(t: &BlobTrigger, container: &str, blob: &str, etag: &str) -> String {
    let etag = format!("\"{}\"", etag.trim_matches('"'));
    format!("blobreceipts/{}/Host.Functions.{}/{etag}/{container}/{blob}", t.host_id, t.function)
}

/// Scans until `stop` turns true.
pub async fn listen(invoker: Arc<Invoker>, t: BlobTrigger, mut stop: watch::Receiver<bool>) {
    let console = invoker.console;
    let Some((container, pattern)) = t.path.split_once('/') else {
        return console.error(&format!("{}: blob path {:?} has no container", t.function, t.path));
    };
    let pattern = match NamePattern::parse(pattern) {
        Ok(p) => p,
        Err(e) => return console.error(&format!("{}: {e}", t.function)),
    };
    let clients = match invoker.bindings.clients(&t.connection) {
        Ok(c) => c,
        Err(e) => return console.error(&format!("{}: blob trigger cannot start: {e}", t.function)),
    };
    let done: Arc<Mutex<HashSet<String>>> = Arc::default();
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut reported_error = false;
    while !*stop.borrow() {
        match clients.blobs.list(container, pattern.prefix()).await {
            Ok(items) => {
                reported_error = false;
                for item in items {
                    let Some(params) = pattern.matches(&item.name) else { continue };
                    let key = receipt_name(&t, container, &item.name, &item.etag);
                    if done.lock().unwrap().contains(&key) || !busy.lock().unwrap().insert(key.clone()) {
                        continue;
                    }
                    let (invoker, t, clients) = (invoker.clone(), t.clone(), clients.clone());
                    let (done, busy, attempts) = (done.clone(), busy.clone(), attempts.clone());
                    let container = container.to_owned();
                    tokio::spawn(async move {
                        let Ok(_permit) = t.permits.clone().acquire_owned().await else { return };
                        let finished = process(
                            &invoker,
                            &clients,
                            &t,
                            &container,
                            &item.name,
                            Some(&item.etag),
                            params,
                            &key,
                            &attempts,
                        )
                        .await;
                        if finished {
                            done.lock().unwrap().insert(key.clone());
                        }
                        busy.lock().unwrap().remove(&key);
                    });
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                if !reported_error {
                    console.warn(&format!(
                        "{}: scanning container {container:?} failed (will keep trying): {e}",
                        t.function
                    ));
                    reported_error = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(t.interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Runs one blob version unless it has a receipt; `true` when it needs no more attempts.
#[allow(clippy::too_many_arguments)]
async fn process(
    invoker: &Invoker,
    clients: &Clients,
    t: &BlobTrigger,
    container: &str,
    name: &str,
    etag: Option<&str>,
    params: BTreeMap<String, String>,
    receipt: &str,
    attempts: &Mutex<HashMap<String, u32>>,
) -> bool {
    let console = invoker.console;
    match clients.blobs.get(HOSTS_CONTAINER, receipt).await {
        Ok(_) => return true,
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            console.warn(&format!("{}: cannot read the receipt of {container}/{name}: {e}", t.function));
            return false;
        }
    }
    let blob = match clients.blobs.get(container, name).await {
        Ok(b) if etag.is_none_or(|etag| b.etag.trim_matches('"') == etag.trim_matches('"')) => b,
        // Changed or deleted since the scan: the next scan sees the new version.
        Ok(_) => return false,
        Err(e) if e.is_not_found() => return true,
        Err(e) => {
            console.warn(&format!("{}: cannot read {container}/{name}: {e}", t.function));
            return false;
        }
    };
    let endpoint = clients.account.blob.clone().unwrap_or_default();
    let properties = properties(&blob);
    // The poison message names the blob type as the SDK does: BlockBlob, PageBlob or AppendBlob.
    let blob_type = blob.headers.get("x-ms-blob-type").cloned().unwrap_or_else(|| "BlockBlob".to_owned());
    let inv = invocation::blob(
        &t.function,
        &t.binding,
        &blob.content,
        &format!("{endpoint}/{container}/{name}"),
        properties,
        &params,
    );
    let result = invoker.invoke(&t.function, "blobTrigger", inv).await;
    if result.is_err() {
        let n = {
            let mut a = attempts.lock().unwrap();
            let n = a.entry(receipt.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        if n < t.max_attempts {
            return false;
        }
        let message = json!({
            "Type": "BlobTrigger",
            "FunctionId": format!("Host.Functions.{}", t.function),
            "BlobType": blob_type,
            "ContainerName": container,
            "BlobName": name,
            "ETag": etag.unwrap_or(&blob.etag),
        });
        let sent = async {
            invoker.bindings.ensure_queue(clients, &t.connection, POISON_QUEUE).await?;
            clients
                .queues
                .send(POISON_QUEUE, message.to_string().as_bytes(), Duration::ZERO)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = sent.await {
            console.error(&format!("{}: cannot poison {container}/{name}: {e}", t.function));
            return false;
        }
        console.warn(&format!(
            "{}: blob {container}/{name} failed {n} times; a message for it is on queue {POISON_QUEUE:?}",
            t.function
        ));
    }
    // A completed receipt is an empty blob without the `Incomplete` metadata key (`BlobReceipt`).
    let written = async {
        invoker.bindings.ensure_container(clients, &t.connection, HOSTS_CONTAINER).await?;
        clients
            .blobs
            .put(HOSTS_CONTAINER, receipt, Bytes::new(), "application/octet-stream")
            .await
            .map_err(|e| e.to_string())
    };
    if let Err(e) = written.await {
        console.warn(&format!("{}: cannot write the receipt of {container}/{name}: {e}", t.function));
    }
    true
}

/// Answers a request to the Blobs extension's webhook (`BlobsExtensionConfigProvider.ConvertAsync`
/// and the Event Grid `HttpRequestProcessor.ProcessAsync` it links in): the Event Grid handshake
/// and validation as [`super::event_grid_webhook::protocol`]; a `Notification` queues each event's
/// blob (`data.url`) for the function and answers 202 at once (`ProcessEventsAsync` enqueues them
/// and returns `HttpStatusCode.Accepted`; it does not look at `eventType`). `functionName` is the
/// function's id, `Host.Functions.<Name>`, or its short name `Functions.<Name>`.
pub async fn webhook(
    invoker: Arc<Invoker>,
    triggers: &BTreeMap<String, BlobTrigger>,
    method: &http::Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let function = super::event_grid_webhook::function_name(query);
    let short = function.strip_prefix("Host.").unwrap_or(&function);
    let found =
        short.strip_prefix("Functions.").and_then(|name| triggers.get(&name.to_ascii_lowercase())).cloned().ok_or_else(
            || {
                super::front::error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no blob trigger with source EventGrid is named {function:?}; functionName is \
                     Host.Functions.<Name> for a function whose blobTrigger has \"source\": \"EventGrid\""
                    ),
                )
            },
        );
    super::event_grid_webhook::protocol(method, headers, body, found, |t, events| async move {
        for event in events {
            let url = event["data"]["url"].as_str().unwrap_or_default().to_owned();
            tokio::spawn(on_event(invoker.clone(), t.clone(), url));
        }
        StatusCode::ACCEPTED.into_response()
    })
    .await
}

/// Runs the blob an Event Grid event names, with its attempts and poisoning, as the scan would.
async fn on_event(invoker: Arc<Invoker>, t: BlobTrigger, url: String) {
    let console = invoker.console;
    let clients = match invoker.bindings.clients(&t.connection) {
        Ok(c) => c,
        Err(e) => return console.error(&format!("{}: blob trigger cannot run: {e}", t.function)),
    };
    let endpoint = clients.account.blob.clone().unwrap_or_default();
    let Some((container, pattern)) = t.path.split_once('/') else { return };
    let path = url.strip_prefix(endpoint.as_str()).map(|p| p.trim_start_matches('/'));
    let (in_container, name) = match path.and_then(|p| p.split_once('/')) {
        Some((c, n)) => (c.to_owned(), azfn::encoding::percent_decode(n)),
        None => {
            return console.warn(&format!(
                "{}: event for {url:?} ignored: not a blob of this connection's account ({endpoint})",
                t.function
            ));
        }
    };
    let params = NamePattern::parse(pattern).ok().and_then(|p| p.matches(&name));
    let (true, Some(params)) = (in_container == container, params) else {
        return console
            .warn(&format!("{}: event for {in_container}/{name} ignored: it does not fit {:?}", t.function, t.path));
    };
    let attempts: Mutex<HashMap<String, u32>> = Mutex::default();
    // The receipt is keyed by the blob's ETag, read when it runs (the Event Grid source skips the
    // scan's ETag check: BlobQueueTriggerExecutor).
    for _ in 0..t.max_attempts.saturating_mul(2).max(2) {
        let Ok(_permit) = t.permits.clone().acquire_owned().await else { return };
        let etag = match clients.blobs.get(&in_container, &name).await {
            Ok(blob) => blob.etag,
            Err(e) if e.is_not_found() => {
                return console.warn(&format!("{}: blob {in_container}/{name} not found", t.function));
            }
            Err(e) => {
                console.warn(&format!("{}: cannot read {in_container}/{name}: {e}", t.function));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let key = receipt_name(&t, &in_container, &name, &etag);
        // The version read is the one run (a blob replaced meanwhile is read again, with its own receipt).
        if process(&invoker, &clients, &t, &in_container, &name, Some(&etag), params.clone(), &key, &attempts).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns() {
        let p = NamePattern::parse("{name}").unwrap();
        assert_eq!(p.matches("a/b.json").unwrap()["name"], "a/b.json");
        let p = NamePattern::parse("in/{year}/{id}.txt").unwrap();
        assert_eq!(p.prefix(), "in/");
        let m = p.matches("in/2024/x.y.txt").unwrap();
        assert_eq!((m["year"].as_str(), m["id"].as_str()), ("2024", "x.y"));
        assert!(p.matches("out/2024/x.txt").is_none());
        assert!(p.matches("in//x.txt").is_none());
        assert!(NamePattern::parse("{a}{b}").is_err());
        assert!(NamePattern::parse("{a").is_err());
    }
}
