//! Event Grid's blob events, played locally: what an Event Grid system topic on a storage account
//! and a subscription with a storage-queue destination do in Azure, done by the built-in host for
//! the local storage account, which has no Event Grid.
//!
//! In Azure (`infra/main.bicep`, docs/adr/0004-blob-events.md), every blob written in a watched
//! container becomes one `Microsoft.Storage.BlobCreated` event in the Event Grid schema, delivered
//! as one Base64-encoded JSON message on a queue, where an ordinary queue trigger picks it up. Here
//! the app setting `AZFN_BLOB_EVENTS` (in `local.settings.json`) names the same routes,
//! `container=queue[,container=queue...]`, and this module scans each container once a second:
//!
//! - blobs present when the host starts raise nothing, as a new subscription sees only later writes;
//! - a new blob, or a new version of one (another ETag), raises one event;
//! - a failed send is tried again at the next scan, so an event is delivered at least once;
//! - deletions raise nothing (the subscription filters on `BlobCreated`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::bindings::Clients;
use super::console::Console;
use azfn::storage::BlobItem;

/// The app setting that lists the routes.
pub const SETTING: &str = "AZFN_BLOB_EVENTS";

/// One container whose new blobs become events on a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEventRoute {
    /// The watched container.
    pub container: String,
    /// The queue the events go to.
    pub queue: String,
}

/// Parses `container=queue[,container=queue...]`.
pub fn parse_routes(text: &str) -> Result<Vec<BlobEventRoute>, String> {
    let mut routes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (container, queue) = part
            .split_once('=')
            .map(|(c, q)| (c.trim(), q.trim()))
            .filter(|(c, q)| !c.is_empty() && !q.is_empty())
            .ok_or_else(|| format!("{SETTING}: {part:?} should be container=queue, e.g. receipts=receipt-events"))?;
        routes.push(BlobEventRoute { container: container.to_owned(), queue: queue.to_owned() });
    }
    Ok(routes)
}

/// The event Event Grid's storage system topic raises for a blob written with Put Blob, in the Event
/// Grid schema (fields as in Azure's "Blob Storage as an Event Grid source" reference).
pub fn blob_created_event(clients: &Clients, container: &str, item: &BlobItem) -> Value {
    let account = clients.account.name.clone().unwrap_or_else(|| "devstoreaccount1".to_owned());
    let endpoint = clients.account.blob.clone().unwrap_or_default();
    let id = uuid::Uuid::new_v4();
    json!({
        "topic": format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/Microsoft.Storage/storageAccounts/{account}"
        ),
        "subject": format!("/blobServices/default/containers/{container}/blobs/{}", item.name),
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": id.to_string(),
        "data": {
            "api": "PutBlob",
            "clientRequestId": id.to_string(),
            "requestId": id.to_string(),
            "eTag": item.etag,
            "contentType": item.content_type.as_deref().unwrap_or("application/octet-stream"),
            "contentLength": item.content_length,
            "blobType": "BlockBlob",
            "url": format!("{endpoint}/{container}/{}", item.name),
            "sequencer": format!("{:032x}", chrono::Utc::now().timestamp_micros()),
            "storageDiagnostics": { "batchId": id.to_string() },
        },
        "dataVersion": "",
        "metadataVersion": "1",
        "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
}

/// What each route's container holds now (blob name -> ETag): the blobs that raise no event, as a
/// new subscription sees only later writes. Taken before the host says it is ready, so that a blob
/// written once it is ready always raises one. A container that cannot be read yet is `None`, and
/// its first successful scan is taken as its start.
pub async fn snapshot(clients: &Clients, routes: &[BlobEventRoute]) -> Vec<Option<HashMap<String, String>>> {
    let mut seen = Vec::with_capacity(routes.len());
    for route in routes {
        seen.push(match clients.blobs.list(&route.container, "").await {
            Ok(items) => Some(items.into_iter().map(|b| (b.name, b.etag)).collect()),
            Err(e) if e.is_not_found() => Some(HashMap::new()),
            Err(_) => None,
        });
    }
    seen
}

/// Watches each route's container until `stop`, sending an event for each blob written after
/// `seen` (from [`snapshot`]).
pub async fn run(
    clients: Arc<Clients>,
    routes: Vec<BlobEventRoute>,
    mut seen: Vec<Option<HashMap<String, String>>>,
    interval: Duration,
    console: Console,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing = vec![false; routes.len()];
    while !*stop.borrow() {
        for (i, route) in routes.iter().enumerate() {
            let items = match clients.blobs.list(&route.container, "").await {
                Ok(items) => items,
                Err(e) if e.is_not_found() => Vec::new(),
                Err(e) => {
                    if !std::mem::replace(&mut failing[i], true) {
                        console.warn(&format!(
                            "blob events: scanning container {:?} failed (will keep trying): {e}",
                            route.container
                        ));
                    }
                    continue;
                }
            };
            failing[i] = false;
            let Some(known) = &mut seen[i] else {
                seen[i] = Some(items.into_iter().map(|b| (b.name, b.etag)).collect());
                continue;
            };
            known.retain(|name, _| items.iter().any(|b| &b.name == name));
            for item in items {
                if known.get(&item.name) == Some(&item.etag) {
                    continue;
                }
                let event = blob_created_event(&clients, &route.container, &item);
                let body = serde_json::to_vec(&event).expect("JSON");
                match clients.queues.send(&route.queue, &body, Duration::ZERO).await {
                    Ok(()) => {
                        tracing::debug!(container = %route.container, blob = %item.name, queue = %route.queue, "blob event sent");
                        known.insert(item.name, item.etag);
                    }
                    Err(e) => console.warn(&format!(
                        "blob events: cannot send the event for {}/{} to queue {:?} (will try again): {e}",
                        route.container, item.name, route.queue
                    )),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_bad_ones_are_explained() {
        let routes = parse_routes("receipts=receipt-events, images = image-events").unwrap();
        assert_eq!(routes[0], BlobEventRoute { container: "receipts".into(), queue: "receipt-events".into() });
        assert_eq!(routes[1].container, "images");
        assert_eq!(routes[1].queue, "image-events");
        assert!(parse_routes("").unwrap().is_empty());
        let err = parse_routes("receipts").unwrap_err();
        assert!(err.contains("AZFN_BLOB_EVENTS") && err.contains("container=queue"), "{err}");
    }
}
