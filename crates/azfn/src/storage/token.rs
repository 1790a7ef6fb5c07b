//! Entra ID tokens for identity-based connections (`AzureWebJobsStorage__accountName` with a managed
//! identity), as the Functions platform provides them:
//!
//! - on App Service and Functions, `GET {IDENTITY_ENDPOINT}?resource=https://storage.azure.com/&api-version=2019-08-01[&client_id=..]`
//!   with the header `X-IDENTITY-HEADER: {IDENTITY_HEADER}` ("How to use managed identities for App
//!   Service and Azure Functions", REST protocol);
//! - elsewhere in Azure, the Instance Metadata Service
//!   (`http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01`, header `Metadata: true`).
//!
//! Both answer `{"access_token": "...", "expires_on": "<unix seconds>", ...}`. Tokens are cached
//! until five minutes before they expire.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::sync::Mutex;

/// The audience of Azure Storage tokens.
pub const STORAGE_RESOURCE: &str = "https://storage.azure.com/";
const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// A token is renewed this long before it expires.
const MARGIN: Duration = Duration::from_secs(300);

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityEndpoint {
    /// App Service / Functions: the endpoint and its secret header value.
    AppService {
        /// `IDENTITY_ENDPOINT`.
        endpoint: String,
        /// `IDENTITY_HEADER`.
        header: String,
    },
    /// The Instance Metadata Service.
    Imds,
}

impl IdentityEndpoint {
    /// The App Service endpoint when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, else IMDS.
    pub fn from_env() -> Self {
        match (std::env::var("IDENTITY_ENDPOINT"), std::env::var("IDENTITY_HEADER")) {
            (Ok(endpoint), Ok(header)) if !endpoint.is_empty() => IdentityEndpoint::AppService { endpoint, header },
            _ => IdentityEndpoint::Imds,
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Unix seconds, as a string (App Service and IMDS) or a number.
    expires_on: serde_json::Value,
}

/// Managed identity tokens for one identity and one audience, cached.
#[derive(Debug)]
pub struct ManagedIdentity {
    endpoint: IdentityEndpoint,
    client_id: Option<String>,
    resource: String,
    http: reqwest::Client,
    cached: Mutex<Option<(String, SystemTime)>>,
}

impl ManagedIdentity {
    /// Storage tokens from `endpoint`, for the user-assigned identity `client_id` (or the
    /// system-assigned one).
    pub fn new(endpoint: IdentityEndpoint, client_id: Option<String>) -> Self {
        Self::for_resource(endpoint, client_id, STORAGE_RESOURCE)
    }

    /// Tokens for the audience `resource` (e.g. `https://monitor.azure.com/`), as [`new`](Self::new).
    pub fn for_resource(endpoint: IdentityEndpoint, client_id: Option<String>, resource: &str) -> Self {
        // A short connect timeout: off Azure, IMDS does not answer at all.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self { endpoint, client_id, resource: resource.to_owned(), http, cached: Mutex::new(None) }
    }

    /// A valid token, from the cache or the endpoint.
    pub async fn token(&self) -> Result<String, String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && SystemTime::now() + MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let mut query = vec![("resource", self.resource.clone())];
        let req = match &self.endpoint {
            IdentityEndpoint::AppService { endpoint, header } => {
                query.push(("api-version", "2019-08-01".into()));
                self.http.get(endpoint).header("X-IDENTITY-HEADER", header)
            }
            IdentityEndpoint::Imds => {
                query.push(("api-version", "2018-02-01".into()));
                self.http.get(IMDS).header("Metadata", "true")
            }
        };
        if let Some(id) = &self.client_id {
            query.push(("client_id", id.clone()));
        }
        let what = match &self.endpoint {
            IdentityEndpoint::AppService { endpoint, .. } => format!("the managed identity endpoint {endpoint}"),
            IdentityEndpoint::Imds => "the instance metadata service (no IDENTITY_ENDPOINT is set)".to_owned(),
        };
        let res = req.query(&query).send().await.map_err(|e| format!("getting a token from {what}: {e}"))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("getting a token from {what}: HTTP {status}: {}", text.lines().next().unwrap_or("")));
        }
        let answer: TokenAnswer =
            serde_json::from_str(&text).map_err(|e| format!("the token answer from {what} is not understood: {e}"))?;
        let seconds = match &answer.expires_on {
            serde_json::Value::String(s) => s.parse::<u64>().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| format!("the token answer from {what} has no usable expires_on"))?;
        let expires = UNIX_EPOCH + Duration::from_secs(seconds);
        *cached = Some((answer.access_token.clone(), expires));
        Ok(answer.access_token)
    }
}
