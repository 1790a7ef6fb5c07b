//! Every app setting the app reads is set by infra/main.bicep, in a form the runtime accepts.
//!
//! What the app reads: the `connection` of each binding in functions/*/function.json (storage
//! bindings without one use `AzureWebJobsStorage`, which the host itself needs too), `RUST_LOG`,
//! and any variable the code reads with `env::var`/`var_os` other than those the Functions host
//! sets for the handler process.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use azfn::storage::{Credential, resolve};

/// Variables the Functions host sets for the handler process itself (`HttpWorkerProcess.cs` in
/// Azure/azure-functions-host); they are not app settings.
const HOST_PROVIDED: &[&str] = &[
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "FUNCTIONS_HTTPWORKER_PORT",
    "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
    "FUNCTIONS_APP_ROOT_PATH",
];

/// Variables only the local tools read (`cargo azfn start`'s console and program lookup), never the
/// deployed handler.
/// `WEBSITE_SKU` is App Service's own; only the built-in host reads it, for the Consumption
/// default of `functionTimeout`.
const LOCAL_ONLY: &[&str] = &["NO_COLOR", "PATH", "WEBSITE_SKU"];

/// Variables App Service sets in every app with a managed identity ("How to use managed identities
/// for App Service and Azure Functions", REST endpoint reference); the storage client reads them to
/// get Entra ID tokens.
/// `WEBSITE_SITE_NAME` and `WEBSITE_INSTANCE_ID` are App Service's environment variables (its
/// "Environment variables and app settings" reference); telemetry names the resource after them.
const PLATFORM_PROVIDED: &[&str] =
    &["IDENTITY_ENDPOINT", "IDENTITY_HEADER", "WEBSITE_SITE_NAME", "WEBSITE_INSTANCE_ID"];

/// The standard OpenTelemetry variables (`OTEL_*`) are optional tuning with defaults, except the one
/// that chooses the exporter, which the Bicep sets. The Azure SDKs' identity variables
/// (`AZURE_AUTHORITY_HOST`, and `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`
/// for a `workloadidentity` connection) are read only by connections the Bicep does not make: its
/// connections use the user-assigned managed identity.
fn optional(name: &str) -> bool {
    (name.starts_with("OTEL_") && name != "OTEL_TRACES_EXPORTER")
        || ["AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"].contains(&name)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The app setting names in the Bicep: every `name: '…'` in a `{ name: …, value: … }` entry.
fn bicep_settings() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("infra/main.bicep")).unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("{ name: '")
            && let Some(end) = rest.find('\'')
            && rest[end..].contains("value:")
        {
            names.insert(rest[..end].to_owned());
        }
    }
    names
}

/// Connections named by the function.json files.
fn connections() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let path = entry.unwrap().path().join("function.json");
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for b in json["bindings"].as_array().unwrap() {
            let ty = b["type"].as_str().unwrap().to_ascii_lowercase();
            let storage = ["queue", "queuetrigger", "blob", "blobtrigger", "table"].contains(&ty.as_str());
            match b["connection"].as_str() {
                Some(c) => {
                    out.insert((c.to_owned(), ty));
                }
                None if storage => {
                    out.insert(("AzureWebJobsStorage".to_owned(), ty));
                }
                None => {}
            }
        }
    }
    out.insert(("AzureWebJobsStorage".to_owned(), "host".to_owned()));
    out
}

/// String literals passed to `env::var`/`var_os` in src/, and to `telemetry.rs`'s `var` helper.
fn env_reads(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            env_reads(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for pat in ["env::var(\"", "env::var_os(\"", " var(\"", "(var(\""] {
                for (i, _) in text.match_indices(pat) {
                    let rest = &text[i + pat.len()..];
                    out.insert(rest[..rest.find('"').unwrap()].to_owned());
                }
            }
        }
    }
}

#[test]
fn the_bicep_sets_every_connection_in_an_identity_based_form() {
    let settings = bicep_settings();
    assert!(settings.len() >= 6, "found too few settings in main.bicep: {settings:?}");
    for (conn, ty) in connections() {
        if ty.starts_with("servicebus") {
            assert!(
                settings.contains(&format!("{conn}__fullyQualifiedNamespace"))
                    && settings.contains(&format!("{conn}__credential")),
                "the Service Bus connection `{conn}` is not set by main.bicep: {settings:?}"
            );
            continue;
        }
        assert!(!settings.contains(&conn), "`{conn}` is set as a connection string: the Bicep must stay keyless");
        // Resolve it exactly as the runtime would, from the names the Bicep sets.
        let account = resolve(&conn, |k| {
            settings.contains(k).then(|| match k.rsplit("__").next().unwrap() {
                "accountName" => "stazfn".to_owned(),
                "credential" => "managedidentity".to_owned(),
                other => format!("<{other}>"),
            })
        })
        .unwrap_or_else(|e| panic!("`{conn}` (for {ty}) does not resolve from the Bicep's settings: {e}"));
        assert!(account.blob.is_some() && account.queue.is_some() && account.table.is_some(), "{account:?}");
        assert!(
            matches!(account.credential, Credential::ManagedIdentity { client_id: Some(_) }),
            "`{conn}` must use the user-assigned identity: {account:?}"
        );
    }
}

#[test]
fn the_bicep_sets_every_setting_the_code_reads() {
    let settings = bicep_settings();
    let mut reads = BTreeSet::new();
    // What the deployed handler links: the app and the runtime (the developer tool never runs in Azure).
    env_reads(&root().join("src"), &mut reads);
    env_reads(&root().join("crates/azfn/src"), &mut reads);
    assert!(reads.contains("FUNCTIONS_CUSTOMHANDLER_PORT"), "the scan of the handler's sources found {reads:?}");
    assert!(
        reads.contains("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
        "the scan found the telemetry settings: {reads:?}"
    );
    // RUST_LOG is read through tracing_subscriber's EnvFilter, not a literal call.
    reads.insert("RUST_LOG".to_owned());
    for name in reads.iter().filter(|n| {
        let n = n.as_str();
        !HOST_PROVIDED.contains(&n) && !LOCAL_ONLY.contains(&n) && !PLATFORM_PROVIDED.contains(&n) && !optional(n)
    }) {
        assert!(settings.contains(name), "the code reads `{name}` but infra/main.bicep does not set it");
    }
    // The classic plans need the worker runtime; Flex takes it from functionAppConfig.runtime.
    assert!(settings.contains("FUNCTIONS_WORKER_RUNTIME"));
    let bicep = std::fs::read_to_string(root().join("infra/main.bicep")).unwrap();
    assert!(
        bicep.contains("name: 'custom'") && bicep.contains("{ name: 'FUNCTIONS_WORKER_RUNTIME', value: 'custom' }")
    );
}

#[test]
fn local_settings_name_the_same_connections() {
    let local: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("local.settings.json")).unwrap()).unwrap();
    let values = local["Values"].as_object().unwrap();
    for (conn, _) in connections() {
        assert!(
            values.keys().any(|k| k == &conn || k.starts_with(&format!("{conn}__"))),
            "local.settings.json lacks `{conn}`"
        );
    }
}
