//! Reading the app's metadata: `host.json` and each function's `function.json`.
//!
//! Custom handlers have no worker indexing, so these files are the host's only source of truth for
//! which functions exist and how they are bound. The runtime reads the same files at start-up so that
//! it can check the registered handlers against them and encode outputs the way each binding needs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

/// The direction of a binding, as function.json spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// An input (triggers are inputs).
    In,
    /// An output.
    Out,
    /// Both (some extensions, e.g. blob streams).
    Inout,
}

/// One entry of a function.json `bindings` array.
#[derive(Debug, Clone, Deserialize)]
pub struct Binding {
    /// The binding name: the key in `Data` (inputs) or `Outputs` (outputs); `$return` for the return value.
    pub name: String,
    /// The binding type, e.g. `httpTrigger`, `queue`, `blob`.
    #[serde(rename = "type")]
    pub binding_type: String,
    /// The direction.
    pub direction: Direction,
    /// `dataType` (`string`, `binary`, `stream`), when set.
    #[serde(rename = "dataType", default)]
    pub data_type: Option<String>,
    /// Every other property (route, methods, queueName, path, connection, ...).
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

impl Binding {
    /// Whether this binding is a trigger (its type ends in `Trigger`).
    pub fn is_trigger(&self) -> bool {
        let t = self.binding_type.as_bytes();
        t.len() >= 7 && t[t.len() - 7..].eq_ignore_ascii_case(b"trigger")
    }

    /// Whether the binding type equals `ty`, ignoring case as the host does.
    pub fn is_type(&self, ty: &str) -> bool {
        self.binding_type.eq_ignore_ascii_case(ty)
    }

    /// Whether `dataType` is `binary`.
    pub fn is_binary(&self) -> bool {
        self.data_type.as_deref().is_some_and(|d| d.eq_ignore_ascii_case("binary"))
    }

    /// A string property, e.g. `route` or `path`; see [`value`](Self::value).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.value(key).and_then(Value::as_str)
    }

    /// A property's value, its name matched without regard to case, as the host does: the WebJobs
    /// SDK builds a binding's attribute from function.json with
    /// `properties.TryGetValue(prop.Name, StringComparison.OrdinalIgnoreCase, out token)`
    /// (azure-webjobs-sdk `src/Microsoft.Azure.WebJobs.Host/Bindings/AttributeCloner.cs`,
    /// `AttributeCloner.CreateDirect`), so `"queuename"` names the queue as `"queueName"` does.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.properties
            .get(key)
            .or_else(|| self.properties.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
    }
}

/// The trigger types of the Functions host and its common extensions.
const TRIGGER_TYPES: &[&str] = &[
    "httpTrigger",
    "timerTrigger",
    "queueTrigger",
    "blobTrigger",
    "serviceBusTrigger",
    "eventGridTrigger",
    "eventHubTrigger",
    "cosmosDBTrigger",
    "kafkaTrigger",
    "rabbitMQTrigger",
    "sqlTrigger",
    "signalRTrigger",
];

/// A known trigger type `ty` is probably a misspelling of: at most two edits away (case aside),
/// and not the type itself.
fn near_trigger(ty: &str) -> Option<&'static str> {
    let ty = ty.to_ascii_lowercase();
    TRIGGER_TYPES.iter().copied().find(|t| {
        let t = t.to_ascii_lowercase();
        t != ty && edit_distance(&t, &ty) <= 2
    })
}

/// The Levenshtein distance between two ASCII strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A function.json file, parsed.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionJson {
    /// The bindings.
    pub bindings: Vec<Binding>,
    /// Whether the function is disabled.
    #[serde(default)]
    pub disabled: bool,
    /// The function's own `retry` policy, as written (it wins over host.json's).
    #[serde(default)]
    pub retry: Option<Value>,
}

/// One function of the app: its name (the folder name) and its bindings.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The function name, case preserved; the host POSTs to `/{name}`.
    pub name: String,
    /// The function.json file it was read from.
    pub source: PathBuf,
    /// The parsed file.
    pub json: FunctionJson,
    trigger_index: usize,
}

impl FunctionSpec {
    /// Parses a function.json text for the function `name`; `source` names the file in errors.
    pub fn parse(name: &str, source: &Path, text: &str) -> Result<Self, MetadataError> {
        let json: FunctionJson = serde_json::from_str(text)
            .map_err(|e| MetadataError::Parse { path: source.to_path_buf(), message: e.to_string() })?;
        let triggers: Vec<usize> = (0..json.bindings.len()).filter(|&i| json.bindings[i].is_trigger()).collect();
        if triggers.len() != 1 {
            let types: Vec<String> = json.bindings.iter().map(|b| format!("{:?}", b.binding_type)).collect();
            let hint = json
                .bindings
                .iter()
                .find_map(|b| {
                    near_trigger(&b.binding_type).map(|t| format!("; did you mean {t:?} for {:?}?", b.binding_type))
                })
                .unwrap_or_default();
            return Err(MetadataError::Invalid {
                path: source.to_path_buf(),
                message: format!(
                    "a function needs exactly one trigger binding (a type ending in \"Trigger\"), found {} among the \
                     types [{}]{hint}",
                    triggers.len(),
                    types.join(", ")
                ),
            });
        }
        Ok(Self { name: name.to_owned(), source: source.to_path_buf(), json, trigger_index: triggers[0] })
    }

    /// The trigger binding.
    pub fn trigger(&self) -> &Binding {
        &self.json.bindings[self.trigger_index]
    }

    /// The output bindings (including `$return`).
    pub fn outputs(&self) -> impl Iterator<Item = &Binding> {
        self.json.bindings.iter().filter(|b| b.direction != Direction::In)
    }

    /// The output binding called `name` (case-sensitive, as the host matches `Outputs` keys).
    pub fn output(&self, name: &str) -> Option<&Binding> {
        self.outputs().find(|b| b.name == name)
    }

    /// The `http` output binding, if any.
    pub fn http_output(&self) -> Option<&Binding> {
        self.outputs().find(|b| b.is_type("http"))
    }

    /// Whether the host may forward this function's requests (`enableForwardingHttpRequest`): exactly one
    /// input, an `httpTrigger`, and exactly one output, of type `http`.
    pub fn is_http_only(&self) -> bool {
        let inputs: Vec<_> = self.json.bindings.iter().filter(|b| b.direction == Direction::In).collect();
        let outputs: Vec<_> = self.outputs().collect();
        inputs.len() == 1 && inputs[0].is_type("httpTrigger") && outputs.len() == 1 && outputs[0].is_type("http")
    }
}

/// The parts of host.json that the runtime reads.
#[derive(Debug, Clone, Default)]
pub struct HostJson {
    /// `extensions.http.routePrefix`; `api` when absent.
    pub route_prefix: String,
    /// `customHandler.enableForwardingHttpRequest`.
    pub forwarding: bool,
    /// `customHandler.enableProxyingHttpRequest` (newer hosts).
    pub proxying: bool,
    /// `customHandler.description.defaultExecutablePath`.
    pub executable: Option<String>,
    /// The host-wide `retry` policy, as written.
    pub retry: Option<Value>,
    /// `functionTimeout` as written (`hh:mm:ss`, or `-1` for none).
    pub function_timeout: Option<Value>,
    /// `functions`: when present, only these functions are loaded (names without regard to case).
    pub functions: Option<Vec<String>>,
    /// Whether `extensionBundle` is set (Azure loads the storage bindings from it).
    pub extension_bundle: bool,
}

impl HostJson {
    /// Reads the settings from host.json text; `source` names the file in errors.
    pub fn parse(source: &Path, text: &str) -> Result<Self, MetadataError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| MetadataError::Parse { path: source.to_path_buf(), message: e.to_string() })?;
        // The host binds configuration case-insensitively.
        let get = |v: &Value, key: &str| -> Option<Value> {
            v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone())
        };
        let path = |keys: &[&str]| keys.iter().try_fold(v.clone(), |cur, k| get(&cur, k));
        let flag = |keys: &[&str]| path(keys).and_then(|v| v.as_bool()).unwrap_or(false);
        Ok(Self {
            route_prefix: path(&["extensions", "http", "routePrefix"])
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "api".to_owned()),
            forwarding: flag(&["customHandler", "enableForwardingHttpRequest"]),
            proxying: flag(&["customHandler", "enableProxyingHttpRequest"]),
            executable: path(&["customHandler", "description", "defaultExecutablePath"])
                .and_then(|v| v.as_str().map(str::to_owned)),
            retry: path(&["retry"]).filter(|v| !v.is_null()),
            function_timeout: path(&["functionTimeout"]).filter(|v| !v.is_null()),
            functions: path(&["functions"])
                .and_then(|v| v.as_array().map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())),
            extension_bundle: path(&["extensionBundle"]).is_some_and(|v| v.is_object()),
        })
    }
}

/// The app as the runtime finds it on disk: host.json settings and every function.
#[derive(Debug, Clone)]
pub struct AppMetadata {
    /// The folder that holds host.json.
    pub root: PathBuf,
    /// host.json settings.
    pub host: HostJson,
    /// The functions, by name.
    pub functions: BTreeMap<String, FunctionSpec>,
}

impl AppMetadata {
    /// Finds the app: `$FUNCTIONS_APP_ROOT_PATH` when the host set it, else the current directory.
    ///
    /// Function folders are looked for in `<root>/functions/` (this repository's layout) and directly
    /// under `<root>` (the layout the host loads).
    pub fn discover() -> Result<Self, MetadataError> {
        let root = match std::env::var_os("FUNCTIONS_APP_ROOT_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => std::env::current_dir()
                .map_err(|e| MetadataError::Io { path: PathBuf::from("."), message: e.to_string() })?,
        };
        Self::load(&root)
    }

    /// Loads the app whose host.json is in `root`.
    pub fn load(root: &Path) -> Result<Self, MetadataError> {
        let host_path = root.join("host.json");
        let host = match std::fs::read_to_string(&host_path) {
            Ok(text) => HostJson::parse(&host_path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                HostJson { route_prefix: "api".into(), ..Default::default() }
            }
            Err(e) => {
                return Err(MetadataError::Io { path: host_path, message: e.to_string() });
            }
        };
        let mut functions = BTreeMap::new();
        for dir in [root.join("functions"), root.to_path_buf()] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let file = entry.path().join("function.json");
                if !file.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| MetadataError::Io { path: file.clone(), message: e.to_string() })?;
                let spec = FunctionSpec::parse(&name, &file, &text)?;
                if let Some(prev) = functions.insert(name.clone(), spec) {
                    return Err(MetadataError::Invalid {
                        path: file,
                        message: format!("function `{name}` is also defined in {}", prev.source.display()),
                    });
                }
            }
        }
        Ok(Self { root: root.to_path_buf(), host, functions })
    }

    /// Builds metadata from specs in memory (for tests and embedding).
    pub fn from_specs(host: HostJson, specs: impl IntoIterator<Item = FunctionSpec>) -> Self {
        Self { root: PathBuf::new(), host, functions: specs.into_iter().map(|s| (s.name.clone(), s)).collect() }
    }
}

/// What went wrong reading the app's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// A file could not be read.
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// A file is not valid JSON of the expected shape.
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A file parses but describes something the host would reject.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, message } => write!(f, "cannot read {}: {message}", path.display()),
            Self::Parse { path, message } => write!(f, "{} is not valid: {message}", path.display()),
            Self::Invalid { path, message } => write!(f, "{}: {message}", path.display()),
        }
    }
}

impl std::error::Error for MetadataError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> FunctionSpec {
        FunctionSpec::parse("F", Path::new("F/function.json"), text).unwrap()
    }

    #[test]
    fn a_misspelt_trigger_type_is_named_with_the_near_one() {
        let text = r#"{"bindings":[{"type":"queueTriger","direction":"in","name":"m","queueName":"q"}]}"#;
        let err = FunctionSpec::parse("F", Path::new("F/function.json"), text).unwrap_err().to_string();
        assert!(err.contains("found 0 among the types [\"queueTriger\"]"), "{err}");
        assert!(err.contains("did you mean \"queueTrigger\" for \"queueTriger\"?"), "{err}");
        assert_eq!(near_trigger("httptrigger"), None, "case alone is no misspelling");
        assert_eq!(near_trigger("blob"), None);
    }

    #[test]
    fn http_only_detection_follows_the_host_rule() {
        let only = spec(
            r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"res"}]}"#,
        );
        assert!(only.is_http_only());
        let with_queue = spec(
            r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"res"},{"type":"queue","direction":"out","name":"q","queueName":"x"}]}"#,
        );
        assert!(!with_queue.is_http_only());
        assert_eq!(with_queue.output("q").unwrap().property("queueName"), Some("x"));
        // azure-webjobs-sdk src/Microsoft.Azure.WebJobs.Host/Bindings/AttributeCloner.cs,
        // `AttributeCloner.CreateDirect`: `if (properties.TryGetValue(prop.Name,
        // StringComparison.OrdinalIgnoreCase, out token))`: property names in any case.
        assert_eq!(with_queue.output("q").unwrap().property("QUEUENAME"), Some("x"));
        assert!(with_queue.output("Q").is_none(), "output names are case-sensitive");
    }

    #[test]
    fn a_function_needs_one_trigger() {
        let err = FunctionSpec::parse("F", Path::new("F/function.json"), r#"{"bindings":[]}"#).unwrap_err();
        assert!(err.to_string().contains("exactly one trigger"), "{err}");
        let err = FunctionSpec::parse("F", Path::new("F/function.json"), r#"{"bindings":[{"type":1}]}"#).unwrap_err();
        assert!(err.to_string().starts_with("F/function.json is not valid"), "{err}");
    }

    #[test]
    fn host_json_keys_are_case_insensitive() {
        let h = HostJson::parse(
            Path::new("host.json"),
            r#"{"version":"2.0","customhandler":{"Description":{"defaultExecutablePath":"azfn"},"enableForwardingHttpRequest":true},"extensions":{"http":{"routePrefix":""}}}"#,
        )
        .unwrap();
        assert_eq!(h.route_prefix, "");
        assert!(h.forwarding);
        assert_eq!(h.executable.as_deref(), Some("azfn"));
        let d = HostJson::parse(Path::new("host.json"), r#"{"version":"2.0"}"#).unwrap();
        assert_eq!(d.route_prefix, "api");
    }
}
