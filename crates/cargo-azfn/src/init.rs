//! `cargo azfn init <dir>`: a new app from nothing, laid out as `cargo azfn new` and `start` expect.
//!
//! The app depends on the azfn runtime by path (the copy `cargo-azfn` was built from, or the folder
//! given), by git, or from crates.io, with the dependency versions azfn is tested with (its
//! Cargo.lock); holds a `Hello` HTTP function with its test, and builds, tests and runs at once.
//! It is deployable as it is: `infra/` (Bicep for a keyless Flex Consumption Function App),
//! `azure.yaml` for the Azure Developer CLI (`azd up`), and a GitHub Actions workflow that tests,
//! packages and deploys with OpenID Connect.

use std::fs;
use std::path::{Path, PathBuf};

/// Where the new app gets the azfn runtime crate from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzfnSource {
    /// A local checkout's `crates/azfn` folder.
    Path(PathBuf),
    /// A git repository holding the azfn workspace, optionally at a branch, tag or commit.
    Git {
        /// The repository URL.
        url: String,
        /// A branch, tag or commit (`rev`).
        rev: Option<String>,
    },
    /// A version published on crates.io (a requirement such as `0.1` or `0.1.0`).
    Registry(String),
}

impl AzfnSource {
    /// The runtime crate this `cargo-azfn` was built next to, when that folder still exists.
    pub fn beside_this_tool() -> Option<Self> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.join("azfn");
        dir.join("Cargo.toml").is_file().then(|| Self::Path(dir.canonicalize().unwrap_or(dir)))
    }

    fn dependency(&self) -> String {
        match self {
            Self::Path(p) => format!("{{ path = {} }}", toml_string(&p.display().to_string())),
            Self::Git { url, rev: None } => format!("{{ git = {} }}", toml_string(url)),
            Self::Git { url, rev: Some(r) } => format!("{{ git = {}, rev = {} }}", toml_string(url), toml_string(r)),
            Self::Registry(v) => toml_string(v),
        }
    }

    /// The command that installs this `cargo azfn` on a CI machine (the deploy workflow's), and a
    /// comment to go with it when there is no such command.
    fn install_command(&self) -> (String, Option<&'static str>) {
        match self {
            Self::Registry(v) => (format!("cargo install --locked cargo-azfn@{v}"), None),
            Self::Git { url, rev: None } => (format!("cargo install --locked --git {url} cargo-azfn"), None),
            Self::Git { url, rev: Some(r) } => {
                (format!("cargo install --locked --git {url} --rev {r} cargo-azfn"), None)
            }
            Self::Path(_) => (
                format!("cargo install --locked --git {REPOSITORY} cargo-azfn"),
                Some(
                    "# This app depends on azfn by path (a local checkout), which a CI machine does not have:\n\
                     # point Cargo.toml and this line at a git repository or a crates.io version of azfn.",
                ),
            ),
        }
    }
}

/// The azfn repository (the workspace's `repository`).
const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

/// The Cargo.lock azfn was tested with (see build.rs); empty when the tool was built without one.
const TESTED_LOCK: &str = include_str!(concat!(env!("OUT_DIR"), "/tested.lock"));

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A Cargo package name from a folder name: lowercase letters, digits, `-` and `_`, starting with a letter.
pub fn package_name(dir: &Path) -> Result<String, String> {
    let name = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    let name = name.trim_matches('-').to_owned();
    if name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        Ok(name)
    } else {
        Err(format!(
            "cannot make a package name from the folder {}: name it with a letter first, or pass --name",
            dir.display()
        ))
    }
}

/// Checks a package (and handler) name: a letter, then letters, digits, `-` or `_`.
pub fn check_package_name(name: &str) -> Result<(), String> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid { Ok(()) } else { Err(format!("{name:?} is not a package name: a letter, then letters, digits, - or _")) }
}

/// Writes a new app into `dir` (created if needed; it must be empty), named `name` (also the
/// handler binary's name). Returns the files written.
pub fn init(dir: &Path, name: &str, azfn: &AzfnSource) -> Result<Vec<String>, String> {
    check_package_name(name)?;
    if let Ok(mut entries) = fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(format!("{} is not empty: `init` writes a new app into an empty or new folder", dir.display()));
    }
    let resource_name = resource_name(name);
    let (install, install_note) = azfn.install_command();
    let install = match install_note {
        Some(note) => format!("{install}\n        # {}", note.replace('\n', "\n        ").trim_start_matches("# ")),
        None => install,
    };
    let mut files: Vec<(&str, String)> = vec![
        ("Cargo.toml", cargo_toml(name, azfn)),
        ("host.json", HOST_JSON.replace("{name}", name)),
        ("local.settings.json", LOCAL_SETTINGS.to_owned()),
        ("rustfmt.toml", "max_width = 120\nuse_small_heuristics = \"Max\"\n".to_owned()),
        (".gitignore", "/target\n/dist\n/.azure\n".to_owned()),
        (".funcignore", FUNCIGNORE.to_owned()),
        ("functions/Hello/function.json", HELLO_JSON.to_owned()),
        ("src/main.rs", MAIN_RS.replace("{name}", name)),
        ("src/functions/mod.rs", FUNCTIONS_MOD.to_owned()),
        ("src/functions/hello.rs", HELLO_RS.to_owned()),
        ("README.md", APP_README.replace("__APP__", name)),
        ("azure.yaml", AZURE_YAML.replace("name: __APP__", &format!("name: {resource_name}")).replace("__APP__", name)),
        ("infra/main.bicep", MAIN_BICEP.replace("__APP__", &resource_name)),
        ("infra/main.parameters.json", MAIN_PARAMETERS.to_owned()),
        (".github/workflows/deploy.yml", DEPLOY_YML.replace("__INSTALL__", &install).replace("__APP__", name)),
    ];
    if !TESTED_LOCK.is_empty() {
        files.push(("Cargo.lock", TESTED_LOCK.to_owned()));
    }
    let mut written = Vec::new();
    for (path, text) in files {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        fs::write(&full, text).map_err(|e| format!("cannot write {}: {e}", full.display()))?;
        written.push(path.to_owned());
    }
    Ok(written)
}

/// `name` as Azure resource names and azd's project name take it: lowercase letters, digits and
/// single dashes.
pub fn resource_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    // At most 40 characters (the template's environment and app names must fit Azure's limits).
    let out: String = out.trim_end_matches('-').chars().take(40).collect();
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "app".to_owned() } else { out }
}

const AZURE_YAML: &str = include_str!("../assets/azure.yaml");
const MAIN_BICEP: &str = include_str!("../assets/infra/main.bicep");
const MAIN_PARAMETERS: &str = include_str!("../assets/infra/main.parameters.json");
const DEPLOY_YML: &str = include_str!("../assets/github/deploy.yml");
const APP_README: &str = include_str!("../assets/README.md");

fn cargo_toml(name: &str, azfn: &AzfnSource) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
azfn = {azfn}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
tokio = {{ version = "1", features = ["rt-multi-thread", "macros"] }}
tracing = "0.1"

[profile.release]
lto = "thin"
strip = "debuginfo"
"#,
        azfn = azfn.dependency()
    )
}

const HOST_JSON: &str = r#"{
  "version": "2.0",
  "logging": {
    "logLevel": {
      "default": "Information"
    }
  },
  "extensionBundle": {
    "id": "Microsoft.Azure.Functions.ExtensionBundle",
    "version": "[4.*, 5.0.0)"
  },
  "customHandler": {
    "description": {
      "defaultExecutablePath": "{name}",
      "workingDirectory": "",
      "arguments": []
    },
    "enableForwardingHttpRequest": true
  },
  "extensions": {
    "http": {
      "routePrefix": "api"
    }
  }
}
"#;

const LOCAL_SETTINGS: &str = r#"{
  "IsEncrypted": false,
  "Values": {
    "FUNCTIONS_WORKER_RUNTIME": "custom",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true"
  }
}
"#;

const FUNCIGNORE: &str = "\
.git*
.vscode
local.settings.json
target
src
tests
Cargo.toml
Cargo.lock
rustfmt.toml
README.md
azure.yaml
infra
dist
.azure
";

const HELLO_JSON: &str = r#"{
  "bindings": [
    {
      "type": "httpTrigger",
      "direction": "in",
      "name": "req",
      "authLevel": "anonymous",
      "methods": ["get"],
      "route": "hello"
    },
    {
      "type": "http",
      "direction": "out",
      "name": "res"
    }
  ]
}
"#;

const MAIN_RS: &str = r#"//! `{name}`: an Azure Functions custom handler built with azfn.
//!
//! The Functions host starts this binary with `FUNCTIONS_CUSTOMHANDLER_PORT` set; it serves every
//! function under `functions/`. Run it locally with `cargo azfn start`.

mod functions;

fn main() -> std::process::ExitCode {
    azfn::cli::main(functions::app)
}
"#;

const FUNCTIONS_MOD: &str = r#"//! The functions this binary serves, one module per function. Each has its metadata in
//! `functions/<Name>/function.json`; `app()` binds the two by name. `cargo azfn new` adds more.

mod hello;

use azfn::App;

/// Every function of the app.
pub fn app() -> App {
    App::new().function("Hello", hello::hello)
}
"#;

const HELLO_RS: &str = r#"//! `Hello`: `GET /api/hello?name=Ada` answers `Hello, Ada`.

use azfn::{Context, HttpRequest, HttpResponse};

/// Greets the caller by the `name` query parameter (`world` without one).
pub async fn hello(req: HttpRequest, _ctx: Context) -> Result<HttpResponse, azfn::Error> {
    let name = req.query("name").filter(|n| !n.is_empty()).unwrap_or("world");
    Ok(HttpResponse::ok().text(format!("Hello, {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn greets_by_name() {
        // The request as the host sends it to a custom handler.
        let req: HttpRequest = azfn::testing::trigger(
            "Hello",
            json!({"Url": "http://localhost:7071/api/hello?name=Ada", "Method": "GET", "Query": {"name": "Ada"}, "Headers": {}}),
            json!({}),
        );
        let res = hello(req, azfn::testing::context("Hello")).await.unwrap();
        assert_eq!(res.body, "Hello, Ada");
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_come_from_the_folder() {
        assert_eq!(package_name(Path::new("/tmp/My App")).unwrap(), "my-app");
        assert!(package_name(Path::new("/tmp/2go")).is_err());
    }

    #[test]
    fn refuses_a_folder_with_files_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("keep.txt"), "x").unwrap();
        let err = init(dir.path(), "app", &AzfnSource::Path("/x".into())).unwrap_err();
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn git_and_path_sources_are_toml() {
        let git = AzfnSource::Git { url: "https://example.com/azfn.git".into(), rev: Some("v0.1.0".into()) };
        assert_eq!(git.dependency(), r#"{ git = "https://example.com/azfn.git", rev = "v0.1.0" }"#);
        assert_eq!(AzfnSource::Path("/a/b".into()).dependency(), r#"{ path = "/a/b" }"#);
        assert_eq!(AzfnSource::Registry("0.1".into()).dependency(), r#""0.1""#);
    }

    #[test]
    fn resource_names_are_lowercase_with_single_dashes() {
        assert_eq!(resource_name("Shop_App--2"), "shop-app-2");
        assert_eq!(resource_name("orders"), "orders");
        assert_eq!(resource_name("_"), "app");
        assert_eq!(resource_name(&"a".repeat(60)).len(), 40);
    }

    #[test]
    fn a_new_app_is_deployable_with_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("shop");
        let written = init(&app, "shop_app", &AzfnSource::Registry("0.1.0".into())).unwrap();
        for f in ["infra/main.bicep", "infra/main.parameters.json", "azure.yaml", ".github/workflows/deploy.yml"] {
            assert!(written.iter().any(|w| w == f), "{f} in {written:?}");
        }
        let read = |f: &str| fs::read_to_string(app.join(f)).unwrap();
        assert!(read("azure.yaml").contains("name: shop-app\n"));
        assert!(read("azure.yaml").contains("dist: dist/shop_app.zip"));
        assert!(read("infra/main.bicep").contains("param appName string = 'shop-app-${uniqueString("));
        assert!(!read("infra/main.bicep").contains("__APP__"));
        let workflow = read(".github/workflows/deploy.yml");
        assert!(workflow.contains("run: cargo install --locked cargo-azfn@0.1.0"), "{workflow}");
        assert!(workflow.contains("--src-path dist/shop_app.zip"));
        assert!(read("Cargo.toml").contains("azfn = \"0.1.0\""));
    }
}
