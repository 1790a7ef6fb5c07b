//! Blobs: containers, block blobs, listing.

use bytes::Bytes;
use reqwest::Method;

use super::auth::Service;
use super::client::{ServiceClient, StorageError};
use super::connection::StorageAccount;
use super::retry::RetryPolicy;
use super::xml;

/// A blob in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobItem {
    /// The blob's name within its container.
    pub name: String,
    /// Its ETag.
    pub etag: String,
    /// Its size in bytes.
    pub content_length: u64,
    /// Its `Last-Modified` time, as the service wrote it.
    pub last_modified: String,
    /// Its content type, when it has one.
    pub content_type: Option<String>,
}

/// A downloaded blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The content.
    pub content: Bytes,
    /// Its ETag.
    pub etag: String,
    /// Its content type.
    pub content_type: Option<String>,
    /// Its user metadata (`x-ms-meta-*` headers), by name.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Its other system properties, by response header name (`last-modified`, `x-ms-creation-time`,
    /// `content-md5`, `x-ms-lease-state`, ...).
    pub headers: std::collections::BTreeMap<String, String>,
}

/// A client for the blobs of one account.
#[derive(Debug, Clone)]
pub struct BlobClient {
    service: ServiceClient,
    #[cfg(feature = "simulation")]
    memory: Option<super::memory::Link>,
}

impl BlobClient {
    /// A client for `account`'s blob endpoint.
    pub fn new(account: &StorageAccount) -> Result<Self, StorageError> {
        Ok(Self {
            service: ServiceClient::new(account, Service::Blob)?,
            #[cfg(feature = "simulation")]
            memory: None,
        })
    }

    /// A client of the in-memory account behind `link` (feature `simulation`).
    #[cfg(feature = "simulation")]
    pub fn in_memory(link: super::memory::Link) -> Self {
        let service = super::memory::placeholder_service(Service::Blob);
        Self { service, memory: Some(link) }
    }

    /// The same client, retrying failed requests by `policy` instead of [`RetryPolicy::from_env`].
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.service = self.service.with_retry_policy(policy);
        self
    }

    /// Creates the container if it does not exist.
    pub async fn create_container(&self, container: &str) -> Result<(), StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.create_container(container).await;
        }
        let req = self.service.request(Method::PUT, container).query(&[("restype", "container")]);
        self.service.create(req, &format!("create container {container}")).await
    }

    /// Writes a block blob (creating the container if it is missing); returns its new ETag.
    pub async fn put(
        &self,
        container: &str,
        name: &str,
        content: Bytes,
        content_type: &str,
    ) -> Result<String, StorageError> {
        self.put_with_metadata(container, name, content, content_type, &[]).await
    }

    /// Writes a block blob with user metadata (`name`, `value` pairs; names must be valid C#
    /// identifiers, as the service requires); returns its new ETag.
    pub async fn put_with_metadata(
        &self,
        container: &str,
        name: &str,
        content: Bytes,
        content_type: &str,
        metadata: &[(&str, &str)],
    ) -> Result<String, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            let _ = (content_type, metadata);
            return m.put_blob(container, name, content).await;
        }
        let mut req = self
            .service
            .request(Method::PUT, &format!("{container}/{name}"))
            .header("x-ms-blob-type", "BlockBlob")
            .header("content-type", content_type)
            .header("content-length", content.len().to_string());
        for (k, v) in metadata {
            req = req.header(format!("x-ms-meta-{k}"), *v);
        }
        let req = req.body(content);
        let what = format!("write blob {container}/{name}");
        let res =
            self.service.send_creating(req, &what, "ContainerNotFound", || self.create_container(container)).await?;
        Ok(res.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
    }

    /// Reads a blob.
    pub async fn get(&self, container: &str, name: &str) -> Result<Blob, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.get_blob(container, name).await;
        }
        let req = self.service.request(Method::GET, &format!("{container}/{name}"));
        let res = self.service.send(req, &format!("read blob {container}/{name}")).await?;
        let header = |h: &str| res.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (etag, content_type) = (header("etag").unwrap_or_default(), header("content-type"));
        let mut metadata = std::collections::BTreeMap::new();
        let mut headers = std::collections::BTreeMap::new();
        for (k, v) in res.headers() {
            let Ok(v) = v.to_str() else { continue };
            match k.as_str().strip_prefix("x-ms-meta-") {
                Some(meta) => {
                    metadata.insert(meta.to_owned(), v.to_owned());
                }
                None => {
                    headers.insert(k.as_str().to_owned(), v.to_owned());
                }
            }
        }
        let content =
            res.bytes().await.map_err(|e| StorageError::other(format!("read blob {container}/{name}: {e}")))?;
        Ok(Blob { content, etag, content_type, metadata, headers })
    }

    /// Lists the blobs whose names start with `prefix`, following continuation markers.
    pub async fn list(&self, container: &str, prefix: &str) -> Result<Vec<BlobItem>, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.list_blobs(container, prefix).await;
        }
        let mut items = Vec::new();
        let mut marker = String::new();
        loop {
            let mut query = vec![("restype", "container".to_owned()), ("comp", "list".to_owned())];
            if !prefix.is_empty() {
                query.push(("prefix", prefix.to_owned()));
            }
            if !marker.is_empty() {
                query.push(("marker", marker.clone()));
            }
            let req = self.service.request(Method::GET, container).query(&query);
            let text = self
                .service
                .send(req, &format!("list container {container}"))
                .await?
                .text()
                .await
                .map_err(|e| StorageError::other(e.to_string()))?;
            for b in xml::blocks(&text, "Blob") {
                items.push(BlobItem {
                    name: xml::first(b, "Name").unwrap_or_default(),
                    etag: xml::first(b, "Etag").unwrap_or_default(),
                    content_length: xml::first(b, "Content-Length").and_then(|l| l.parse().ok()).unwrap_or(0),
                    last_modified: xml::first(b, "Last-Modified").unwrap_or_default(),
                    content_type: xml::first(b, "Content-Type").filter(|t| !t.is_empty()),
                });
            }
            marker = xml::first(&text, "NextMarker").unwrap_or_default();
            if marker.is_empty() {
                return Ok(items);
            }
        }
    }

    /// Deletes a blob.
    pub async fn delete(&self, container: &str, name: &str) -> Result<(), StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.delete_blob(container, name).await;
        }
        let req = self.service.request(Method::DELETE, &format!("{container}/{name}"));
        self.service.delete(req, &format!("delete blob {container}/{name}")).await
    }
}
