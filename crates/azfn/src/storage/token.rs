//! Entra ID tokens for identity-based connections (`AzureWebJobsStorage__accountName` with a managed
//! identity), as the Functions platform provides them:
//!
//! - on App Service and Functions, `GET {IDENTITY_ENDPOINT}?resource=https://storage.azure.com/&api-version=2019-08-01[&client_id=..]`
//!   with the header `X-IDENTITY-HEADER: {IDENTITY_HEADER}` ("How to use managed identities for App
//!   Service and Azure Functions", REST protocol);
//! - elsewhere in Azure, the Instance Metadata Service
//!   (`http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01`, header `Metadata: true`).
//!
//! Both answer `{"access_token": "...", "expires_on": "<unix seconds>", ...}`.
//!
//! An app registration (`credential` unset, with `tenantId`, `clientId` and `clientSecret`; or
//! `credential=workloadidentity` with a federated token file) gets its tokens by the OAuth 2.0
//! client credentials grant ([`AppCredential`]): `POST {authority}/{tenant}/oauth2/v2.0/token`,
//! answered `{"access_token": "...", "expires_in": <seconds>, ...}`.
//!
//! Tokens are cached until five minutes before they expire.

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
        let seconds = whole_seconds(&answer.expires_on)
            .ok_or_else(|| format!("the token answer from {what} has no usable expires_on"))?;
        let expires = UNIX_EPOCH + Duration::from_secs(seconds);
        *cached = Some((answer.access_token.clone(), expires));
        Ok(answer.access_token)
    }
}

/// A count of seconds as token answers give it: a number, or a string holding one.
fn whole_seconds(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Entra ID's public cloud authority, unless `AZURE_AUTHORITY_HOST` names another (as the Azure
/// SDKs read it).
pub fn authority_from_env() -> String {
    std::env::var("AZURE_AUTHORITY_HOST")
        .ok()
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "https://login.microsoftonline.com".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// How an app registration proves itself in the client credentials grant.
#[derive(Clone, PartialEq, Eq)]
pub enum AppProof {
    /// A client secret (`ClientSecretCredential`).
    Secret(String),
    /// A file holding a federated token, read at each request as it is rotated
    /// (`WorkloadIdentityCredential`, `tokenFilePath` or `AZURE_FEDERATED_TOKEN_FILE`).
    TokenFile(std::path::PathBuf),
}

impl std::fmt::Debug for AppProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(..)"),
            Self::TokenFile(path) => f.debug_tuple("TokenFile").field(path).finish(),
        }
    }
}

#[derive(Deserialize)]
struct GrantAnswer {
    access_token: String,
    expires_in: serde_json::Value,
}

/// An app registration's tokens for one audience, by the client credentials grant, cached.
#[derive(Debug)]
pub struct AppCredential {
    authority: String,
    tenant_id: String,
    client_id: String,
    proof: AppProof,
    scope: String,
    http: reqwest::Client,
    cached: Mutex<Option<(String, SystemTime)>>,
}

impl AppCredential {
    /// Storage tokens for the app `client_id` of `tenant_id`, from `authority`
    /// (`https://login.microsoftonline.com` in the public cloud).
    pub fn new(authority: &str, tenant_id: &str, client_id: &str, proof: AppProof) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            authority: authority.trim_end_matches('/').to_owned(),
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
            proof,
            scope: format!("{STORAGE_RESOURCE}.default"),
            http,
            cached: Mutex::new(None),
        }
    }

    /// A valid token, from the cache or the authority.
    pub async fn token(&self) -> Result<String, String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && SystemTime::now() + MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant_id);
        let what = format!("getting a token for app {} from {url}", self.client_id);
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
        ];
        match &self.proof {
            AppProof::Secret(secret) => form.push(("client_secret", secret.clone())),
            AppProof::TokenFile(path) => {
                let assertion = std::fs::read_to_string(path)
                    .map_err(|e| format!("{what}: cannot read the federated token file {}: {e}", path.display()))?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion.trim().to_owned()));
            }
        }
        // Asking for a token changes nothing, so a failed request is simply tried again.
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            let res = match self.http.post(&url).form(&form).send().await {
                Ok(res) => res,
                Err(e) => {
                    last = format!("{what}: {e}");
                    continue;
                }
            };
            let status = res.status();
            let text = res.text().await.unwrap_or_default();
            if status.is_server_error() || status.as_u16() == 429 {
                last = format!("{what}: HTTP {status}");
                continue;
            }
            if !status.is_success() {
                // Entra ID's error answer: {"error": "invalid_client", "error_description": "AADSTS..."}.
                let detail = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error_description"].as_str().or(v["error"].as_str()).map(str::to_owned))
                    .unwrap_or_else(|| text.lines().next().unwrap_or("").to_owned());
                return Err(format!("{what}: HTTP {status}: {detail}"));
            }
            let answer: GrantAnswer =
                serde_json::from_str(&text).map_err(|e| format!("{what}: the answer is not understood: {e}"))?;
            let seconds = whole_seconds(&answer.expires_in)
                .ok_or_else(|| format!("{what}: the answer has no usable expires_in"))?;
            let expires = SystemTime::now() + Duration::from_secs(seconds);
            *cached = Some((answer.access_token.clone(), expires));
            return Ok(answer.access_token);
        }
        Err(last)
    }
}

/// Where an identity-based connection's tokens come from.
#[derive(Debug)]
pub enum TokenSource {
    /// A managed identity.
    Managed(ManagedIdentity),
    /// An app registration.
    App(AppCredential),
}

impl TokenSource {
    /// A valid token.
    pub async fn token(&self) -> Result<String, String> {
        match self {
            Self::Managed(m) => m.token().await,
            Self::App(a) => a.token().await,
        }
    }
}
