//! Sending authorized requests to one storage service, and turning failures into [`StorageError`].

use std::fmt;

use reqwest::{Method, RequestBuilder, Response};

use super::auth::{Service, authorize};
use super::connection::{Credential, StorageAccount};
use super::token::{IdentityEndpoint, ManagedIdentity};

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
    /// Token source for identity-based connections.
    identity: Option<std::sync::Arc<ManagedIdentity>>,
}

impl ServiceClient {
    pub(crate) fn new(account: &StorageAccount, service: Service) -> Result<Self, StorageError> {
        Self::with_identity_endpoint(account, service, IdentityEndpoint::from_env())
    }

    /// Like [`new`](Self::new), taking identity-based connections' tokens from `tokens`.
    pub(crate) fn with_identity_endpoint(
        account: &StorageAccount,
        service: Service,
        tokens: IdentityEndpoint,
    ) -> Result<Self, StorageError> {
        let endpoint = match service {
            Service::Blob => &account.blob,
            Service::Queue => &account.queue,
            Service::Table => &account.table,
        };
        let endpoint = endpoint.clone().ok_or_else(|| {
            StorageError::other(format!("the storage connection has no {service:?} endpoint").to_lowercase())
        })?;
        let identity = match &account.credential {
            Credential::ManagedIdentity { client_id } | Credential::Default { client_id } => {
                Some(std::sync::Arc::new(ManagedIdentity::new(tokens, client_id.clone())))
            }
            Credential::SharedKey { .. } | Credential::Sas(_) => None,
        };
        Ok(Self { http: reqwest::Client::new(), endpoint, credential: account.credential.clone(), service, identity })
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
        if let Some(identity) = &self.identity {
            let token = identity.token().await.map_err(|e| StorageError::other(format!("{what}: {e}")))?;
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| StorageError::other(format!("{what}: the token is not a valid header value")))?;
            req.headers_mut().insert("authorization", value);
        }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Query, State};
    use axum::http::HeaderMap;
    use axum::routing::{get, put};

    use super::*;
    use crate::storage::resolve;

    type Seen = Arc<Mutex<Vec<String>>>;

    async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    /// The App Service managed identity protocol ("How to use managed identities for App Service and
    /// Azure Functions", REST endpoint reference): the token request, and the bearer token on
    /// storage requests, fetched once while it is valid.
    #[tokio::test]
    async fn identity_based_connections_send_managed_identity_tokens() {
        let identity_calls: Seen = Arc::default();
        let identity = axum::Router::new()
            .route(
                "/msi/token",
                get(|State(seen): State<Seen>, Query(q): Query<Vec<(String, String)>>, h: HeaderMap| async move {
                    let header = h.get("x-identity-header").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    seen.lock().unwrap().push(format!("{q:?} {header}"));
                    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp().to_string();
                    axum::Json(serde_json::json!({
                        "access_token": "tok-1", "expires_on": expires, "resource": "https://storage.azure.com/",
                        "token_type": "Bearer", "client_id": "cid"
                    }))
                }),
            )
            .with_state(identity_calls.clone());
        let identity_url = serve(identity).await;
        let storage_calls: Seen = Arc::default();
        let storage = axum::Router::new()
            .route(
                "/acct/{queue}",
                put(|State(seen): State<Seen>, h: HeaderMap| async move {
                    let auth = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    seen.lock().unwrap().push(auth);
                    axum::http::StatusCode::CREATED
                }),
            )
            .with_state(storage_calls.clone());
        let storage_url = serve(storage).await;

        let settings = [
            ("Storage__queueServiceUri".to_owned(), format!("{storage_url}/acct")),
            ("Storage__credential".to_owned(), "managedidentity".to_owned()),
            ("Storage__clientId".to_owned(), "cid".to_owned()),
        ];
        let account = resolve("Storage", |k| settings.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
        let tokens =
            IdentityEndpoint::AppService { endpoint: format!("{identity_url}/msi/token"), header: "secret".into() };
        let client = ServiceClient::with_identity_endpoint(&account, Service::Queue, tokens).unwrap();
        for q in ["q1", "q2"] {
            client.create(client.request(Method::PUT, q), "create queue").await.unwrap();
        }
        assert_eq!(*storage_calls.lock().unwrap(), ["Bearer tok-1", "Bearer tok-1"]);
        let calls = identity_calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "the token is cached: {calls:?}");
        for part in [
            "\"resource\", \"https://storage.azure.com/\"",
            "\"api-version\", \"2019-08-01\"",
            "\"client_id\", \"cid\"",
            " secret",
        ] {
            assert!(calls[0].contains(part), "{part} in {}", calls[0]);
        }
    }

    #[tokio::test]
    async fn a_failing_identity_endpoint_is_a_clear_error() {
        let identity = axum::Router::new()
            .route("/msi/token", get(|| async { (axum::http::StatusCode::BAD_REQUEST, "no identity assigned") }));
        let url = serve(identity).await;
        let tokens = ManagedIdentity::new(
            IdentityEndpoint::AppService { endpoint: format!("{url}/msi/token"), header: "h".into() },
            None,
        );
        let err = tokens.token().await.unwrap_err();
        assert!(
            err.contains("managed identity endpoint") && err.contains("400") && err.contains("no identity assigned"),
            "{err}"
        );
    }
}
