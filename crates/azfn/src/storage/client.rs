//! Sending authorized requests to one storage service, and turning failures into [`StorageError`].

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::Retryable as _;
use reqwest::{Method, Request, RequestBuilder, Response};

use super::auth::{Service, authorize};
use super::connection::{Credential, StorageAccount};
use super::retry::{RetryPolicy, is_transient, server_delay};
use super::token::{AppCredential, IdentityEndpoint, ManagedIdentity, TokenSource};

/// How long a connection to the service may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A storage request that failed: the HTTP status and the service's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    /// The HTTP status, or `None` when no answer came (connection refused, timeout, ...).
    pub status: Option<u16>,
    /// The service's `x-ms-error-code` (e.g. `QueueNotFound`), when given.
    pub code: Option<String>,
    /// What went wrong, with the operation and the resource.
    pub message: String,
    /// Whether an earlier attempt of this request may have taken effect although its answer was
    /// lost (it timed out, its connection dropped, or the service answered 500/502/504): a 409 or
    /// 412 then may be this request's own earlier success, a 404 on a delete its own deletion.
    pub ambiguous: bool,
    /// Whether trying again may help (see [`RetryPolicy`]).
    transient: bool,
    /// The delay the service asked for.
    retry_after: Option<Duration>,
}

impl StorageError {
    /// A failure that is not the service's answer and that trying again does not mend (a request
    /// that cannot be built or signed, an answer that cannot be read).
    pub(crate) fn other(message: impl Into<String>) -> Self {
        Self {
            status: None,
            code: None,
            message: message.into(),
            ambiguous: false,
            transient: false,
            retry_after: None,
        }
    }

    /// A failure the service answered with `status`.
    pub(crate) fn answered(status: u16, code: Option<String>, message: String) -> Self {
        Self {
            status: Some(status),
            code,
            message,
            ambiguous: matches!(status, 500 | 502 | 504),
            transient: is_transient(Some(status)),
            retry_after: None,
        }
    }

    /// A request whose answer never came (a time-out or a dropped connection): worth trying again,
    /// and it may have taken effect.
    #[cfg(feature = "simulation")]
    pub(crate) fn lost(message: impl Into<String>) -> Self {
        Self { ambiguous: true, transient: true, ..Self::other(message) }
    }

    /// Whether the service's error code is `code` (e.g. `TableNotFound`).
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// Whether trying the same request again may succeed (a time-out, a dropped connection, or
    /// 408, 429, 500, 502, 503, 504).
    pub fn is_transient(&self) -> bool {
        self.transient
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

/// Runs `op`; if it fails because the resource's parent is missing (the service's error code is
/// `missing`: `QueueNotFound`, `TableNotFound`, `ContainerNotFound`), runs `create` and `op` once
/// more. So a deleted queue, table or container heals itself on the next write.
pub(crate) async fn recreating<T, F, Fut, C>(
    missing: &str,
    mut op: F,
    create: impl FnOnce() -> C,
) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>>,
    C: std::future::Future<Output = Result<(), StorageError>>,
{
    match op().await {
        Err(e) if e.has_code(missing) => {
            tracing::info!(error = %e, "creating it again");
            create().await?;
            op().await
        }
        other => other,
    }
}

/// One service endpoint of an account, with the credential and an HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct ServiceClient {
    http: reqwest::Client,
    policy: RetryPolicy,
    endpoint: String,
    credential: Credential,
    service: Service,
    /// Token source for identity-based connections.
    identity: Option<std::sync::Arc<TokenSource>>,
}

impl ServiceClient {
    pub(crate) fn new(account: &StorageAccount, service: Service) -> Result<Self, StorageError> {
        Self::with_identity_endpoint(
            account,
            service,
            IdentityEndpoint::from_env(),
            &super::token::authority_from_env(),
        )
    }

    /// Like [`new`](Self::new), taking managed identity tokens from `tokens` and an app
    /// registration's from `authority`.
    pub(crate) fn with_identity_endpoint(
        account: &StorageAccount,
        service: Service,
        tokens: IdentityEndpoint,
        authority: &str,
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
                Some(std::sync::Arc::new(TokenSource::Managed(ManagedIdentity::new(tokens, client_id.clone()))))
            }
            Credential::App { tenant_id, client_id, proof } => Some(std::sync::Arc::new(TokenSource::App(
                AppCredential::new(authority, tenant_id, client_id, proof.clone()),
            ))),
            Credential::SharedKey { .. } | Credential::Sas(_) => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| StorageError::other(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            policy: RetryPolicy::from_env(),
            endpoint,
            credential: account.credential.clone(),
            service,
            identity,
        })
    }

    /// The same client retrying by `policy`.
    pub(crate) fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// `{endpoint}/{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint, path.trim_start_matches('/'))
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Authorizes and sends, trying again by the client's [`RetryPolicy`] while the failure is
    /// transient; a non-success status becomes a [`StorageError`] saying what was tried (and whether
    /// an earlier attempt may have taken effect: [`StorageError::ambiguous`]).
    pub(crate) async fn send(&self, builder: RequestBuilder, what: &str) -> Result<Response, StorageError> {
        self.send_tracked(builder, what).await.map(|(res, _)| res)
    }

    /// Like [`send`](Self::send), also saying whether an attempt before the successful one may
    /// have taken effect (for answers that carry their own failures, like a table transaction's).
    pub(crate) async fn send_tracked(
        &self,
        builder: RequestBuilder,
        what: &str,
    ) -> Result<(Response, bool), StorageError> {
        let template = builder.build().map_err(|e| StorageError::other(format!("{what}: {e}")))?;
        let ambiguous = AtomicBool::new(false);
        let max_delay = self.policy.max_delay;
        let attempt = || async {
            let req = template
                .try_clone()
                .ok_or_else(|| StorageError::other(format!("{what}: a streamed body cannot be sent again")))?;
            let result = self.attempt(req, what).await;
            if let Err(e) = &result
                && e.ambiguous
            {
                ambiguous.store(true, Ordering::Relaxed);
            }
            result
        };
        let result = attempt
            .retry(self.policy.backoff())
            .sleep(tokio::time::sleep)
            .when(StorageError::is_transient)
            .adjust(|e: &StorageError, next| next.map(|d| e.retry_after.map_or(d, |asked| asked.min(max_delay).max(d))))
            .notify(|e: &StorageError, after| tracing::debug!(error = %e, retry_in = ?after, "storage request failed; trying again"))
            .await;
        let ambiguous = ambiguous.load(Ordering::Relaxed);
        match result {
            Ok(res) => Ok((res, ambiguous)),
            Err(mut e) => {
                e.ambiguous |= ambiguous;
                Err(e)
            }
        }
    }

    /// One attempt: signs `req` (afresh: the date is part of the signature), sends it within the
    /// policy's time-out, and reads a failure's status, code and message.
    async fn attempt(&self, mut req: Request, what: &str) -> Result<Response, StorageError> {
        authorize(&mut req, self.service, &self.credential).map_err(|e| StorageError::other(format!("{what}: {e}")))?;
        if let Some(identity) = &self.identity {
            let token = identity.token().await.map_err(|e| StorageError::other(format!("{what}: {e}")))?;
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| StorageError::other(format!("{what}: the token is not a valid header value")))?;
            req.headers_mut().insert("authorization", value);
        }
        *req.timeout_mut() = Some(self.policy.try_timeout);
        let res = match self.http.execute(req).await {
            Ok(res) => res,
            Err(e) => {
                // Nothing reached the service when the connection could not be opened; otherwise
                // the request may have been applied and only its answer lost.
                let mut err = StorageError::other(format!("{what}: {e}"));
                err.transient = true;
                err.ambiguous = !e.is_connect();
                return Err(err);
            }
        };
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let code = res.headers().get("x-ms-error-code").and_then(|v| v.to_str().ok()).map(str::to_owned);
        // As azure_core: the service's delay is read on 429 and 503 only.
        let retry_after = matches!(status.as_u16(), 429 | 503).then(|| server_delay(res.headers())).flatten();
        let body = res.text().await.unwrap_or_default();
        // Blob and queue errors are XML, table errors JSON (`odata.error`).
        let odata = serde_json::from_str::<serde_json::Value>(&body).ok().map(|v| v["odata.error"].clone());
        let odata_text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let detail = super::xml::first(&body, "Message")
            .or_else(|| odata.as_ref().and_then(|e| odata_text(&e["message"]["value"])))
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
        let detail = detail.lines().next().unwrap_or_default().to_owned();
        let code = code
            .or_else(|| odata.as_ref().and_then(|e| odata_text(&e["code"])))
            .or_else(|| super::xml::first(&body, "Code"));
        let mut err = StorageError::answered(status.as_u16(), code, format!("{what}: {detail}"));
        err.retry_after = retry_after;
        Err(err)
    }

    /// Sends `builder`'s request; if the service answers that the resource's parent does not exist
    /// (its error code is `missing`, e.g. `QueueNotFound` after the storage was reset), runs `create`
    /// and sends once more (see [`recreating`]).
    pub(crate) async fn send_creating<C>(
        &self,
        builder: RequestBuilder,
        what: &str,
        missing: &str,
        create: impl FnOnce() -> C,
    ) -> Result<Response, StorageError>
    where
        C: std::future::Future<Output = Result<(), StorageError>>,
    {
        let send = || async {
            let req = builder
                .try_clone()
                .ok_or_else(|| StorageError::other(format!("{what}: a streamed body cannot be sent again")))?;
            self.send(req, what).await
        };
        recreating(missing, send, create).await
    }

    /// Sends a delete; "not found" after an attempt whose answer was lost counts as success (that
    /// attempt deleted it).
    pub(crate) async fn delete(&self, builder: RequestBuilder, what: &str) -> Result<(), StorageError> {
        match self.send(builder, what).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() && e.ambiguous => Ok(()),
            Err(e) => Err(e),
        }
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
        let client = ServiceClient::with_identity_endpoint(&account, Service::Queue, tokens, "http://unused").unwrap();
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

    /// The Microsoft identity platform's client credentials grant ("OAuth 2.0 client credentials
    /// flow", first case: access token request with a shared secret): `POST
    /// /{tenant}/oauth2/v2.0/token` with `client_id`, `scope=https://storage.azure.com/.default`,
    /// `client_secret`, `grant_type=client_credentials`; the answer's `access_token` is the bearer
    /// token, cached for its `expires_in`. A stand-in authority answers here.
    #[tokio::test]
    async fn a_service_principal_connection_sends_client_credentials_tokens() {
        let grants: Seen = Arc::default();
        let authority = axum::Router::new()
            .route(
                "/tenant-1/oauth2/v2.0/token",
                axum::routing::post(|State(seen): State<Seen>, body: String| async move {
                    seen.lock().unwrap().push(body);
                    axum::Json(
                        serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "app-tok"}),
                    )
                }),
            )
            .with_state(grants.clone());
        let authority_url = serve(authority).await;
        let storage_calls: Seen = Arc::default();
        let storage = axum::Router::new()
            .route(
                "/acct/{queue}",
                put(|State(seen): State<Seen>, h: HeaderMap| async move {
                    seen.lock()
                        .unwrap()
                        .push(h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned());
                    axum::http::StatusCode::CREATED
                }),
            )
            .with_state(storage_calls.clone());
        let storage_url = serve(storage).await;
        let settings = [
            ("Storage__queueServiceUri".to_owned(), format!("{storage_url}/acct")),
            ("Storage__tenantId".to_owned(), "tenant-1".to_owned()),
            ("Storage__clientId".to_owned(), "app-1".to_owned()),
            ("Storage__clientSecret".to_owned(), "s&cret".to_owned()),
        ];
        let account = resolve("Storage", |k| settings.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
        let client =
            ServiceClient::with_identity_endpoint(&account, Service::Queue, IdentityEndpoint::Imds, &authority_url)
                .unwrap();
        for q in ["q1", "q2"] {
            client.create(client.request(Method::PUT, q), "create queue").await.unwrap();
        }
        assert_eq!(*storage_calls.lock().unwrap(), ["Bearer app-tok", "Bearer app-tok"]);
        let grants = grants.lock().unwrap().clone();
        assert_eq!(grants.len(), 1, "the token is cached: {grants:?}");
        let form: Vec<(String, String)> = serde_urlencoded::from_str(&grants[0]).unwrap();
        for (k, v) in [
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("scope", "https://storage.azure.com/.default"),
            ("client_secret", "s&cret"),
        ] {
            assert!(form.contains(&(k.to_owned(), v.to_owned())), "{k}={v} in {form:?}");
        }
    }

    fn fast_retries() -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            try_timeout: Duration::from_millis(500),
            ..RetryPolicy::default()
        }
    }

    fn queue_client(url: &str) -> ServiceClient {
        let cs = format!("DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;QueueEndpoint={url}/acct;");
        let account = resolve("S", |k| (k == "S").then(|| cs.clone())).unwrap();
        ServiceClient::new(&account, Service::Queue).unwrap().with_retry_policy(fast_retries())
    }

    /// 503 ServerBusy (with the service's own delay) and 500 are tried again until the service
    /// answers; a 404 is not.
    #[tokio::test]
    async fn transient_statuses_are_retried_and_others_are_not() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let storage = axum::Router::new().route(
            "/acct/{queue}",
            put(move |axum::extract::Path(queue): axum::extract::Path<String>| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    use axum::http::StatusCode;
                    match (queue.as_str(), n) {
                        ("missing", _) => (StatusCode::NOT_FOUND, [("x-ms-retry-after-ms", "1")]),
                        (_, 0) => (StatusCode::SERVICE_UNAVAILABLE, [("x-ms-retry-after-ms", "30")]),
                        (_, 1) => (StatusCode::INTERNAL_SERVER_ERROR, [("x-ms-retry-after-ms", "1")]),
                        _ => (StatusCode::CREATED, [("x-ms-retry-after-ms", "1")]),
                    }
                }
            }),
        );
        let client = queue_client(&serve(storage).await);
        client.create(client.request(Method::PUT, "q1"), "create queue").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let err = client.send(client.request(Method::PUT, "missing"), "create queue").await.unwrap_err();
        assert_eq!((err.status, calls.load(Ordering::SeqCst)), (Some(404), 4));
        assert!(!err.ambiguous, "{err:?}");
    }

    /// An attempt that times out may have been applied: the error after the retries says so, and a
    /// delete whose retry meets 404 counts as done.
    #[tokio::test]
    async fn lost_answers_are_retried_and_reported_as_ambiguous() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let storage = axum::Router::new().route(
            "/acct/{queue}",
            put(|| async { tokio::time::sleep(Duration::from_secs(5)).await }).delete(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    axum::http::StatusCode::NOT_FOUND
                }
            }),
        );
        let client = queue_client(&serve(storage).await).with_retry_policy(fast_retries().with_max_retries(1));
        let err = client.send(client.request(Method::PUT, "slow"), "create queue").await.unwrap_err();
        assert!(err.ambiguous && err.is_transient() && err.status.is_none(), "{err:?}");
        client.delete(client.request(Method::DELETE, "gone"), "delete queue").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
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
