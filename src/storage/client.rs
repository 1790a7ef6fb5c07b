//! Sending authorized requests to one storage service, and turning failures into [`StorageError`].

use std::fmt;

use reqwest::{Method, RequestBuilder, Response};

use super::auth::{Service, authorize};
use super::connection::{Credential, StorageAccount};

/// A storage request that failed: the HTTP status and the service's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    /// The HTTP status, or `None` when no answer came (connection refused, timeout, ...).
    pub status: Option<u16>,
    /// The service's `x-ms-error-code` (e.g. `QueueNotFound`), when given.
    pub code: Option<String>,
    /// What went wrong, with the operation and the resource.
    pub message: String,
}

impl StorageError {
    pub(crate) fn other(message: impl Into<String>) -> Self {
        Self { status: None, code: None, message: message.into() }
    }

    /// Whether the service answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// Whether the service answered 409 (already exists, or a conflict).
    pub fn is_conflict(&self) -> bool {
        self.status == Some(409)
    }

    /// Whether the service answered 412 (an ETag condition failed).
    pub fn is_precondition_failed(&self) -> bool {
        self.status == Some(412)
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status}")?;
            if let Some(code) = &self.code {
                write!(f, " {code}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for StorageError {}

/// One service endpoint of an account, with the credential and an HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct ServiceClient {
    http: reqwest::Client,
    endpoint: String,
    credential: Credential,
    service: Service,
}

impl ServiceClient {
    pub(crate) fn new(account: &StorageAccount, service: Service) -> Result<Self, StorageError> {
        let endpoint = match service {
            Service::Blob => &account.blob,
            Service::Queue => &account.queue,
            Service::Table => &account.table,
        };
        let endpoint = endpoint.clone().ok_or_else(|| {
            StorageError::other(format!("the storage connection has no {service:?} endpoint").to_lowercase())
        })?;
        Ok(Self { http: reqwest::Client::new(), endpoint, credential: account.credential.clone(), service })
    }

    /// `{endpoint}/{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint, path.trim_start_matches('/'))
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Authorizes and sends; a non-success status becomes a [`StorageError`] saying what was tried.
    pub(crate) async fn send(&self, builder: RequestBuilder, what: &str) -> Result<Response, StorageError> {
        let mut req = builder.build().map_err(|e| StorageError::other(format!("{what}: {e}")))?;
        authorize(&mut req, self.service, &self.credential).map_err(|e| StorageError::other(format!("{what}: {e}")))?;
        let res = self.http.execute(req).await.map_err(|e| StorageError::other(format!("{what}: {e}")))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let code = res.headers().get("x-ms-error-code").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = res.text().await.unwrap_or_default();
        let detail = super::xml::first(&body, "Message")
            .or_else(|| {
                serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["odata.error"]["message"]["value"].as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
        let detail = detail.lines().next().unwrap_or_default().to_owned();
        Err(StorageError { status: Some(status.as_u16()), code, message: format!("{what}: {detail}") })
    }

    /// Sends a create request; "already exists" counts as success.
    pub(crate) async fn create(&self, builder: RequestBuilder, what: &str) -> Result<(), StorageError> {
        match self.send(builder, what).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
