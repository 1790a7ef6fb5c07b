//! Resolving a storage connection setting, as the Functions runtime does.
//!
//! A connection named `Conn` (for example `AzureWebJobsStorage`) is either
//! - a **connection string** in the setting `Conn` itself:
//!   `DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=…`, with optional
//!   `BlobEndpoint`/`QueueEndpoint`/`TableEndpoint`, or `SharedAccessSignature=…` instead of a key, or
//!   `UseDevelopmentStorage=true` for the local emulator (Azurite); or
//! - **identity-based**, from settings prefixed `Conn__` (or `Conn:`): `accountName`, or the explicit
//!   `blobServiceUri`, `queueServiceUri`, `tableServiceUri` (`serviceUri` is the blob endpoint), with
//!   `credential` (`managedidentity`) and `clientId` for a user-assigned identity.
//!
//! Which settings hold `Conn` is looked up as the WebJobs extensions do
//! (`WebJobsConfigurationExtensions.GetWebJobsConnectionStringSection` with
//! `GetConnectionStringOrSetting`): the first of `ConnectionStrings:AzureWebJobsConn`,
//! `AzureWebJobsConn`, `ConnectionStrings:Conn` and `Conn` that exists, as a value or as the prefix
//! of `__` (or `:`) settings. `ConnectionStrings:X` is also found as `ConnectionStrings__X` (the
//! environment's spelling).

use std::fmt;

/// Azurite's well-known account name.
const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known account key (public, from the emulator's documentation).
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How requests to the account are authorized.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Shared Key: the account name and its base64 key.
    SharedKey {
        /// The account name.
        account: String,
        /// The base64 account key.
        key: String,
    },
    /// A shared access signature, appended to every request's query.
    Sas(String),
    /// Entra ID tokens from a managed identity (`credential=managedidentity`); `client_id` selects
    /// a user-assigned identity.
    ManagedIdentity {
        /// The user-assigned identity's client id.
        client_id: Option<String>,
    },
    /// Entra ID tokens from the default chain (environment, workload or managed identity, developer
    /// tools), which the runtime uses when no `credential` is given.
    Default {
        /// A client id hint for managed identity.
        client_id: Option<String>,
    },
    /// Entra ID tokens for an app registration (`tenantId`, `clientId` and `clientSecret`, or
    /// `credential=workloadidentity` with a federated token file), by the client credentials grant.
    App {
        /// The directory (tenant) id.
        tenant_id: String,
        /// The app's client id.
        client_id: String,
        /// Its secret or federated token file.
        proof: super::token::AppProof,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        match self {
            Self::SharedKey { account, .. } => {
                f.debug_struct("SharedKey").field("account", account).finish_non_exhaustive()
            }
            Self::Sas(_) => f.write_str("Sas(..)"),
            Self::ManagedIdentity { client_id } => {
                f.debug_struct("ManagedIdentity").field("client_id", client_id).finish()
            }
            Self::Default { client_id } => f.debug_struct("Default").field("client_id", client_id).finish(),
            Self::App { tenant_id, client_id, proof } => f
                .debug_struct("App")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("proof", proof)
                .finish(),
        }
    }
}

/// A storage account as a connection resolves: its service endpoints and credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageAccount {
    /// The account name, when known.
    pub name: Option<String>,
    /// The blob endpoint, without a trailing slash (e.g. `https://acct.blob.core.windows.net`).
    pub blob: Option<String>,
    /// The queue endpoint.
    pub queue: Option<String>,
    /// The table endpoint.
    pub table: Option<String>,
    /// How to authorize.
    pub credential: Credential,
}

impl StorageAccount {
    /// Whether this is the local emulator's well-known account.
    pub fn is_emulator(&self) -> bool {
        self.name.as_deref() == Some(DEV_ACCOUNT)
    }
}

/// A connection that cannot be resolved; the message names the setting and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionError(String);

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectionError {}

/// Resolves the connection `name` from settings looked up with `setting` (e.g. the process
/// environment, then local.settings.json's `Values`).
///
/// ```
/// use azfn::storage::{resolve, Credential};
///
/// let settings = [("AzureWebJobsStorage__accountName", "ordersprod"), ("AzureWebJobsStorage__credential", "managedidentity")];
/// let get = |k: &str| settings.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
/// let account = resolve("AzureWebJobsStorage", get).unwrap();
/// assert_eq!(account.queue.as_deref(), Some("https://ordersprod.queue.core.windows.net"));
/// assert_eq!(account.credential, Credential::ManagedIdentity { client_id: None });
/// ```
pub fn resolve(name: &str, setting: impl Fn(&str) -> Option<String>) -> Result<StorageAccount, ConnectionError> {
    // A setting by its configuration key, also in the environment's spelling (`:` as `__`).
    let lookup = |key: &str| -> Option<String> {
        setting(key)
            .or_else(|| if key.contains(':') { setting(&key.replace(':', "__")) } else { None })
            .filter(|v| !v.trim().is_empty())
    };
    // azure-sdk-for-net, Microsoft.Azure.WebJobs.Extensions.Clients, WebJobsConfigurationExtensions:
    // `GetWebJobsConnectionStringSection`: "first try prefixing" (`"AzureWebJobs" + name`), then
    // "next try a direct unprefixed lookup", each through `GetConnectionStringOrSetting`, which
    // tries `GetSection("ConnectionStrings").GetSection(connectionName)` before the root.
    let sections = [
        format!("ConnectionStrings:AzureWebJobs{name}"),
        format!("AzureWebJobs{name}"),
        format!("ConnectionStrings:{name}"),
        name.to_owned(),
    ];
    let exists = |section: &str| {
        lookup(section).is_some()
            || SECTION_KEYS
                .iter()
                .any(|k| lookup(&format!("{section}__{k}")).or_else(|| lookup(&format!("{section}:{k}"))).is_some())
    };
    let section = sections.iter().find(|s| exists(s)).map(String::as_str).unwrap_or(name);
    resolve_section(name, section, lookup)
}

/// The settings below a connection's section that make it exist.
const SECTION_KEYS: &[&str] = &[
    "accountName",
    "blobServiceUri",
    "queueServiceUri",
    "tableServiceUri",
    "serviceUri",
    "credential",
    "clientId",
    "tenantId",
    "clientSecret",
    "clientCertificate",
    "tokenFilePath",
];

/// [`resolve`] of the connection `name` from the settings of `section`.
fn resolve_section(
    name: &str,
    section: &str,
    setting: impl Fn(&str) -> Option<String>,
) -> Result<StorageAccount, ConnectionError> {
    let get = |key: &str| -> Option<String> {
        let v = if key.is_empty() {
            setting(section)
        } else {
            setting(&format!("{section}__{key}")).or_else(|| setting(&format!("{section}:{key}")))
        };
        v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
    };
    if let Some(text) = get("") {
        return parse_connection_string(name, &text);
    }
    let account = get("accountName");
    // An explicit `{service}ServiceUri` wins over `accountName`: the host's own storage
    // (azure-functions-host `StorageServiceUriOptions.GetBlobServiceUri`) and the extensions'
    // `StorageClientProvider.TryGetServiceUri` since azure-sdk-for-net#58661 ("now prefers an explicit
    // {subdomain}ServiceUri over accountName"). `serviceUri` is the endpoint of the client being
    // made: `ClientFactory.CreateClient` matches it to the constructor parameter `serviceUri` of
    // `BlobServiceClient` and of `QueueServiceClient` (`TableServiceClient`'s is `endpoint`).
    let uri = |service: &str, key: &str| -> Result<Option<String>, ConnectionError> {
        let shared = if service == "table" { None } else { get("serviceUri").map(|u| ("serviceUri", u)) };
        let explicit = get(key).map(|u| (key, u)).or(shared);
        match (explicit, &account) {
            (Some((key, u)), _) => check_uri(name, key, &u).map(Some),
            (None, Some(a)) => Ok(Some(format!("https://{a}.{service}.core.windows.net"))),
            (None, None) => Ok(None),
        }
    };
    let (blob, queue, table) =
        (uri("blob", "blobServiceUri")?, uri("queue", "queueServiceUri")?, uri("table", "tableServiceUri")?);
    if blob.is_none() && queue.is_none() && table.is_none() {
        return Err(ConnectionError(format!(
            "the storage connection `{name}` is not configured: set `{name}` to a connection string \
             (`UseDevelopmentStorage=true` for Azurite), or `{name}__accountName` (or `{name}__blobServiceUri`, \
             `__queueServiceUri`, `__tableServiceUri`) for an identity-based connection"
        )));
    }
    let credential = credential(name, &get)?;
    Ok(StorageAccount { name: account, blob, queue, table, credential })
}

/// The credential of an identity-based connection, as Microsoft.Extensions.Azure's
/// `ClientFactory.CreateCredential` chooses it (azure-sdk-for-net, sdk/extensions/Microsoft.Extensions.Azure/src/Internal/ClientFactory.cs):
/// `managedidentity`; `workloadidentity` ("'tenantId', 'clientId', and 'tokenFilePath' must be
/// specified", each also from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`);
/// else `tenantId` + `clientId` + `clientSecret` is a `ClientSecretCredential`; a
/// `clientCertificate` (a thumbprint in the machine's certificate store) is refused here; anything
/// else, an unknown `credential` value included, is the default chain (`DefaultAzureCredential`).
fn credential(name: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<Credential, ConnectionError> {
    let client_id = get("clientId");
    let kind = get("credential").map(|c| c.to_ascii_lowercase());
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    match kind.as_deref() {
        Some("managedidentity") => return Ok(Credential::ManagedIdentity { client_id }),
        Some("workloadidentity") => {
            let tenant_id = get("tenantId").or_else(|| env("AZURE_TENANT_ID"));
            let client_id = client_id.or_else(|| env("AZURE_CLIENT_ID"));
            let file = get("tokenFilePath").or_else(|| env("AZURE_FEDERATED_TOKEN_FILE"));
            return match (tenant_id, client_id, file) {
                (Some(tenant_id), Some(client_id), Some(file)) => {
                    Ok(Credential::App { tenant_id, client_id, proof: super::token::AppProof::TokenFile(file.into()) })
                }
                _ => Err(ConnectionError(format!(
                    "`{name}__credential` is `workloadidentity`: for workload identity, 'tenantId', 'clientId', and \
                     'tokenFilePath' must be specified (`{name}__tenantId`, `{name}__clientId`, `{name}__tokenFilePath`, \
                     or AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)"
                ))),
            };
        }
        _ => {}
    }
    if let (Some(tenant_id), Some(client_id)) = (get("tenantId"), client_id.clone()) {
        if let Some(secret) = get("clientSecret") {
            return Ok(Credential::App { tenant_id, client_id, proof: super::token::AppProof::Secret(secret) });
        }
        if get("clientCertificate").is_some() {
            return Err(ConnectionError(format!(
                "`{name}__clientCertificate` names a certificate in the machine's certificate store, which azfn \
                 does not read; use `{name}__clientSecret`, `credential=workloadidentity` or a managed identity"
            )));
        }
    }
    Ok(Credential::Default { client_id })
}

fn check_uri(name: &str, key: &str, uri: &str) -> Result<String, ConnectionError> {
    if uri.starts_with("https://") || uri.starts_with("http://") {
        Ok(uri.trim_end_matches('/').to_owned())
    } else {
        Err(ConnectionError(format!("`{name}__{key}` should be an http(s) URL, got {uri:?}")))
    }
}

fn parse_connection_string(name: &str, text: &str) -> Result<StorageAccount, ConnectionError> {
    let mut parts: Vec<(String, String)> = Vec::new();
    for (i, part) in text.split(';').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
        let Some((k, v)) = part.split_once('=') else {
            return Err(ConnectionError(format!(
                "the connection string in `{name}` is malformed: part {} (`{}`) has no `=`",
                i + 1,
                part.chars().take(24).collect::<String>()
            )));
        };
        parts.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |k: &str| parts.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());

    if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let base = get("developmentstorageproxyuri").unwrap_or_else(|| "http://127.0.0.1".to_owned());
        let base = base.trim_end_matches('/');
        return Ok(StorageAccount {
            name: Some(DEV_ACCOUNT.to_owned()),
            blob: Some(format!("{base}:10000/{DEV_ACCOUNT}")),
            queue: Some(format!("{base}:10001/{DEV_ACCOUNT}")),
            table: Some(format!("{base}:10002/{DEV_ACCOUNT}")),
            credential: Credential::SharedKey { account: DEV_ACCOUNT.to_owned(), key: DEV_KEY.to_owned() },
        });
    }

    let account = get("accountname");
    let protocol = get("defaultendpointsprotocol").unwrap_or_else(|| "https".to_owned());
    let suffix = get("endpointsuffix").unwrap_or_else(|| "core.windows.net".to_owned());
    let endpoint = |key: &str, service: &str| -> Result<Option<String>, ConnectionError> {
        match (get(key), &account) {
            (Some(u), _) => check_uri(name, key, &u).map(Some),
            (None, Some(a)) => Ok(Some(format!("{protocol}://{a}.{service}.{suffix}"))),
            (None, None) => Ok(None),
        }
    };
    let blob = endpoint("blobendpoint", "blob")?;
    let queue = endpoint("queueendpoint", "queue")?;
    let table = endpoint("tableendpoint", "table")?;
    if blob.is_none() && queue.is_none() && table.is_none() {
        return Err(ConnectionError(format!(
            "the connection string in `{name}` names no account: it needs `AccountName=` or explicit `BlobEndpoint=`, \
             `QueueEndpoint=`, `TableEndpoint=`"
        )));
    }
    let credential = match (get("accountkey"), get("sharedaccesssignature")) {
        (Some(key), _) => {
            let Some(account) = account.clone() else {
                return Err(ConnectionError(format!(
                    "the connection string in `{name}` has `AccountKey=` but no `AccountName=`"
                )));
            };
            if crate::encoding::decode_base64(&key).is_none() {
                return Err(ConnectionError(format!("the `AccountKey` in `{name}` is not base64")));
            }
            Credential::SharedKey { account, key }
        }
        (None, Some(sas)) => Credential::Sas(sas.trim_start_matches('?').to_owned()),
        (None, None) => {
            return Err(ConnectionError(format!(
                "the connection string in `{name}` has neither `AccountKey=` nor `SharedAccessSignature=`; for a keyless \
                 connection use `{name}__accountName` instead"
            )));
        }
    };
    Ok(StorageAccount { name: account, blob, queue, table, credential })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<'a>(settings: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| settings.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn a_full_connection_string() {
        let cs =
            "DefaultEndpointsProtocol=https;AccountName=orders;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn";
        let a = resolve("AzureWebJobsStorage", with(&[("AzureWebJobsStorage", cs)])).unwrap();
        assert_eq!(a.name.as_deref(), Some("orders"));
        assert_eq!(a.table.as_deref(), Some("https://orders.table.core.chinacloudapi.cn"));
        assert_eq!(a.credential, Credential::SharedKey { account: "orders".into(), key: "a2V5".into() });
        assert!(!format!("{a:?}").contains("a2V5"), "keys are not printed");
    }

    #[test]
    fn an_azurite_connection_string_with_explicit_endpoints() {
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:21000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:21001/devstoreaccount1;TableEndpoint=http://127.0.0.1:21002/devstoreaccount1;"
        );
        let a = resolve("C", with(&[("C", &cs)])).unwrap();
        assert_eq!(a.queue.as_deref(), Some("http://127.0.0.1:21001/devstoreaccount1"));
        assert!(a.is_emulator());
    }

    #[test]
    fn use_development_storage() {
        let a = resolve("AzureWebJobsStorage", with(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true")])).unwrap();
        assert_eq!(a.blob.as_deref(), Some("http://127.0.0.1:10000/devstoreaccount1"));
        assert_eq!(a.table.as_deref(), Some("http://127.0.0.1:10002/devstoreaccount1"));
        assert!(matches!(a.credential, Credential::SharedKey { ref account, .. } if account == "devstoreaccount1"));
    }

    #[test]
    fn a_sas_connection_string() {
        let a = resolve(
            "C",
            with(&[("C", "BlobEndpoint=https://x.blob.core.windows.net/;SharedAccessSignature=?sv=2024&sig=abc")]),
        )
        .unwrap();
        assert_eq!(a.blob.as_deref(), Some("https://x.blob.core.windows.net"));
        assert_eq!(a.queue, None);
        assert_eq!(a.credential, Credential::Sas("sv=2024&sig=abc".into()));
    }

    #[test]
    fn account_name_with_managed_identity_and_client_id() {
        let a = resolve(
            "AzureWebJobsStorage",
            with(&[
                ("AzureWebJobsStorage__accountName", "ordersprod"),
                ("AzureWebJobsStorage__credential", "managedidentity"),
                ("AzureWebJobsStorage__clientId", "00000000-0000-0000-0000-000000000001"),
            ]),
        )
        .unwrap();
        assert_eq!(a.blob.as_deref(), Some("https://ordersprod.blob.core.windows.net"));
        assert_eq!(a.queue.as_deref(), Some("https://ordersprod.queue.core.windows.net"));
        assert_eq!(a.table.as_deref(), Some("https://ordersprod.table.core.windows.net"));
        assert_eq!(
            a.credential,
            Credential::ManagedIdentity { client_id: Some("00000000-0000-0000-0000-000000000001".into()) }
        );
    }

    #[test]
    fn explicit_service_uris_and_the_colon_form() {
        let a = resolve(
            "Conn",
            with(&[
                ("Conn__blobServiceUri", "https://a.blob.core.windows.net/"),
                ("Conn:queueServiceUri", "https://a.queue.core.windows.net"),
                ("Conn__tableServiceUri", "https://a.table.core.windows.net"),
            ]),
        )
        .unwrap();
        assert_eq!(a.blob.as_deref(), Some("https://a.blob.core.windows.net"));
        assert_eq!(a.queue.as_deref(), Some("https://a.queue.core.windows.net"));
        assert_eq!(a.credential, Credential::Default { client_id: None });
    }

    /// `serviceUri` is the endpoint of whichever client is made: Microsoft.Extensions.Azure
    /// `ClientFactory.CreateClient` binds configuration keys to constructor parameters by name
    /// (`TryConvertArgument(configuration, parameter.Name, ...)`), and `BlobServiceClient(Uri
    /// serviceUri, TokenCredential credential, ...)` and `QueueServiceClient(Uri serviceUri, ...)` both
    /// call it `serviceUri` (`TableServiceClient`'s is `endpoint`). An explicit `{service}ServiceUri`
    /// wins over `accountName`: azure-functions-host `StorageServiceUriOptions.GetBlobServiceUri`
    /// (`if (!string.IsNullOrEmpty(BlobServiceUri)) return new Uri(BlobServiceUri); else if
    /// (!string.IsNullOrEmpty(AccountName))`), and the extensions' `StorageClientProvider.TryGetServiceUri`
    /// since azure-sdk-for-net#58661.
    #[test]
    fn service_uri_serves_each_client_and_explicit_uris_beat_the_account_name() {
        let shared = resolve("Conn", with(&[("Conn__serviceUri", "https://b.example.net")])).unwrap();
        assert_eq!(shared.blob.as_deref(), Some("https://b.example.net"));
        assert_eq!(shared.queue.as_deref(), Some("https://b.example.net"));
        assert_eq!(shared.table, None);
        let both =
            resolve("Conn", with(&[("Conn__accountName", "acct"), ("Conn__queueServiceUri", "https://q.example.net")]))
                .unwrap();
        assert_eq!(both.queue.as_deref(), Some("https://q.example.net"));
        assert_eq!(both.blob.as_deref(), Some("https://acct.blob.core.windows.net"));
    }

    /// Microsoft.Extensions.Azure `ClientFactory.CreateCredential`: `tenantId` + `clientId` +
    /// `clientSecret` is a `ClientSecretCredential`; `workloadidentity` needs the three of
    /// "'tenantId', 'clientId', and 'tokenFilePath'"; an unknown `credential` value matches no branch
    /// and ends in the default `DefaultAzureCredential`.
    #[test]
    fn service_principal_and_workload_identity_credentials() {
        let base = [("C__accountName", "x"), ("C__tenantId", "t"), ("C__clientId", "app")];
        let mut secret = base.to_vec();
        secret.push(("C__clientSecret", "s3cret"));
        let a = resolve("C", with(&secret)).unwrap();
        assert_eq!(
            a.credential,
            Credential::App {
                tenant_id: "t".into(),
                client_id: "app".into(),
                proof: crate::storage::AppProof::Secret("s3cret".into())
            }
        );
        assert!(!format!("{:?}", a.credential).contains("s3cret"), "secrets are never printed");
        let mut workload = base.to_vec();
        workload.extend([("C__credential", "workloadidentity"), ("C__tokenFilePath", "/var/run/token")]);
        assert!(matches!(resolve("C", with(&workload)).unwrap().credential, Credential::App { .. }));
        let incomplete = [("C__accountName", "x"), ("C__credential", "WorkloadIdentity"), ("C__tenantId", "t")];
        if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_none() {
            let err = resolve("C", with(&incomplete)).unwrap_err().to_string();
            assert!(err.contains("'tenantId', 'clientId', and 'tokenFilePath' must be specified"), "{err}");
        }
        let unknown = resolve("C", with(&[("C__accountName", "x"), ("C__credential", "password")])).unwrap();
        assert_eq!(unknown.credential, Credential::Default { client_id: None });
        let mut certificate = base.to_vec();
        certificate.push(("C__clientCertificate", "ABCDEF"));
        let err = resolve("C", with(&certificate)).unwrap_err().to_string();
        assert!(err.contains("clientCertificate") && err.contains("clientSecret"), "{err}");
    }

    #[test]
    fn errors_name_the_setting() {
        let err = resolve("AzureWebJobsStorage", with(&[])).unwrap_err().to_string();
        // The WebJobs lookup order (GetWebJobsConnectionStringSection, GetConnectionStringOrSetting):
        // `AzureWebJobs<name>` before `<name>`, and `ConnectionStrings:` before each.
        let both = with(&[("AzureWebJobsOrders", "UseDevelopmentStorage=true"), ("Orders__accountName", "plain")]);
        assert!(resolve("Orders", both).unwrap().is_emulator(), "AzureWebJobsOrders is tried first");
        let cs = with(&[("ConnectionStrings__Orders", "UseDevelopmentStorage=true"), ("Orders__accountName", "plain")]);
        assert!(resolve("Orders", cs).unwrap().is_emulator(), "ConnectionStrings:Orders before Orders");
        let plain = resolve("Orders", with(&[("Orders__accountName", "plain")])).unwrap();
        assert_eq!(plain.name.as_deref(), Some("plain"));
        assert!(err.contains("`AzureWebJobsStorage` is not configured") && err.contains("__accountName"), "{err}");
        let err = resolve("C", with(&[("C", "AccountName=x;garbage")])).unwrap_err().to_string();
        assert!(err.contains("part 2"), "{err}");
        let err = resolve("C", with(&[("C", "AccountName=x")])).unwrap_err().to_string();
        assert!(err.contains("neither `AccountKey=`"), "{err}");
        let err = resolve("C", with(&[("C", "AccountName=x;AccountKey=not base64!")])).unwrap_err().to_string();
        assert!(err.contains("not base64"), "{err}");
        let err = resolve("C", with(&[("C__blobServiceUri", "x.blob.core.windows.net")])).unwrap_err().to_string();
        assert!(err.contains("http(s) URL"), "{err}");
    }
}
