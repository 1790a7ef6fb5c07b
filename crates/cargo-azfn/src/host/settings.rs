//! App settings for a local run: `local.settings.json`'s `Values`, with the process environment
//! winning, as in Core Tools.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// The settings a local run sees.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// The file's `Host` section.
    pub host: HostSection,
}

/// `local.settings.json`'s `Host` section, as Core Tools reads it (`HostStartSettings`:
/// `LocalHttpPort`, `CORS`, `CORSCredentials`, names without regard to case as Newtonsoft reads them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSection {
    /// The port `start` listens on when `--port` is not given.
    pub local_http_port: Option<u16>,
    /// The origins allowed to call the app from a browser, comma-separated (`*`: any).
    pub cors: Option<String>,
    /// Whether those origins may send credentials.
    pub cors_credentials: bool,
}

impl Settings {
    /// Reads `root/local.settings.json` (a missing file means no values). `IsEncrypted: true` is
    /// refused, since only Core Tools holds the key to decrypt it.
    pub fn load(root: &Path) -> Result<Self, String> {
        let path = root.join("local.settings.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the text of a `local.settings.json`.
    ///
    /// ```
    /// let s = cargo_azfn::host::settings::Settings::parse(r#"{"Values": {"AZFN_DOC_ONLY_SETTING": "x", "N": 3}}"#).unwrap();
    /// assert_eq!(s.get("AZFN_DOC_ONLY_SETTING").as_deref(), Some("x"));
    /// assert_eq!(s.get("N").as_deref(), Some("3"));
    /// ```
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        if doc.get("IsEncrypted").and_then(Value::as_bool) == Some(true) {
            return Err("IsEncrypted is true; decrypt it with `func settings decrypt` first".to_owned());
        }
        let mut values = BTreeMap::new();
        if let Some(map) = doc.get("Values").and_then(Value::as_object) {
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                values.insert(k.clone(), text);
            }
        }
        // Core Tools adds the file's `ConnectionStrings` to the configuration as
        // `ConnectionStrings:<name>`, where the connection lookup finds them.
        if let Some(map) = doc.get("ConnectionStrings").and_then(Value::as_object) {
            for (k, v) in map {
                if let Some(text) = v.as_str() {
                    values.insert(format!("ConnectionStrings:{k}"), text.to_owned());
                }
            }
        }
        let section =
            doc.as_object().and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("Host"))).map(|(_, v)| v);
        let field = |name: &str| {
            section
                .and_then(Value::as_object)
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .map(|(_, v)| v)
        };
        let host = HostSection {
            local_http_port: field("LocalHttpPort")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0),
            cors: field("CORS").and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty()),
            cors_credentials: field("CORSCredentials").and_then(Value::as_bool).unwrap_or(false),
        };
        Ok(Self { values, host })
    }

    /// A setting: the environment variable when set, otherwise the `Values` entry; the name
    /// matched without regard to case, as .NET's configuration does (its providers load keys into
    /// case-insensitive dictionaries), an exact match first.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.values.get(name).cloned())
            .or_else(|| {
                // `vars_os`: `vars` panics on a variable that is not Unicode.
                std::env::vars_os()
                    .find(|(k, _)| k.to_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
                    .and_then(|(_, v)| v.into_string().ok())
            })
            .or_else(|| self.values.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()))
    }

    /// The `Values` entries the environment does not already set: what a child process must add to
    /// the environment it inherits.
    pub fn missing_from_env(&self) -> Vec<(String, String)> {
        self.values.iter().filter(|(k, _)| std::env::var_os(k).is_none()).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Whether the function is disabled by a setting, as azure-webjobs-sdk decides it in
    /// src/Microsoft.Azure.WebJobs.Host/Listeners/HostListenerFactory.cs, `IsDisabled`:
    /// `settingName = "AzureWebJobs.{0}.Disabled"`, and "Linux does not support dots in env
    /// variable name": `settingNameLinux = "AzureWebJobs_{0}_Disabled"`;
    /// `configuration.IsSettingEnabled(settingName) || configuration.IsSettingEnabled(settingNameLinux)`,
    /// a setting being enabled when it is `true` or `1` (any case).
    pub fn is_disabled(&self, function: &str) -> bool {
        let enabled =
            |name: String| self.get(&name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1");
        enabled(format!("AzureWebJobs.{function}.Disabled")) || enabled(format!("AzureWebJobs_{function}_Disabled"))
    }
}

/// Resolves every `%NAME%` in `text` to the app setting NAME, as the host's name resolver does
/// for binding properties (queue names, blob paths, table names, keys, filters, connections):
/// azure-webjobs-sdk `NameResolverExtensions.ResolveWholeStringCore` walks the string,
/// `int idxEnd = resolve.IndexOf('%', idxStart + 1)`, fails with "The '%' at position {0} does not
/// have a closing '%'", resolves the name between, fails with "'%{0}%' does not resolve to a
/// value." when no setting has it, and appends the value in its place.
pub fn resolve_whole_string(text: &str, settings: &Settings) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    let mut at = 0;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(len) = after.find('%') else {
            return Err(format!("The '%' at position {} does not have a closing '%'", at + start));
        };
        let name = &after[..len];
        let value = settings.get(name).ok_or_else(|| format!("'%{name}%' does not resolve to a value."))?;
        out.push_str(&rest[..start]);
        out.push_str(&value);
        at += start + len + 2;
        rest = &after[len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// azure-webjobs-sdk `NameResolverExtensions.ResolveWholeStringCore`: "Resolve all %% matches
    /// within a string", "start%name1%...%name2%end" giving "startA...Bend"; a missing closing `%`
    /// and a name without a value are errors.
    #[test]
    fn settings_are_resolved_anywhere_in_a_binding_property() {
        let s = Settings::parse(r#"{"Values": {"ENV": "prod", "ORDERS_QUEUE": "orders"}}"#).unwrap();
        assert_eq!(resolve_whole_string("%ORDERS_QUEUE%", &s).unwrap(), "orders");
        assert_eq!(
            resolve_whole_string("receipts-%ENV%/{name}-%env%.json", &s).unwrap(),
            "receipts-prod/{name}-prod.json"
        );
        assert_eq!(resolve_whole_string("plain", &s).unwrap(), "plain");
        assert_eq!(resolve_whole_string("a%ENV", &s).unwrap_err(), "The '%' at position 1 does not have a closing '%'");
        assert_eq!(resolve_whole_string("%NOPE%", &s).unwrap_err(), "'%NOPE%' does not resolve to a value.");
    }

    #[test]
    fn environment_wins_and_encrypted_files_are_refused() {
        let s = Settings::parse(r#"{"Values": {"PATH": "not-this", "AzureWebJobs.X.Disabled": "true"}}"#).unwrap();
        assert_ne!(s.get("PATH").as_deref(), Some("not-this"));
        assert!(s.missing_from_env().iter().all(|(k, _)| k != "PATH"));
        assert!(s.is_disabled("X"));
        assert!(!s.is_disabled("Y"));
        // The Linux form (HostListenerFactory.IsDisabled's settingNameLinux), any case.
        let linux =
            Settings::parse(r#"{"Values": {"azurewebjobs_Ship_disabled": "TRUE", "AzureWebJobs_Pack_Disabled": "0"}}"#)
                .unwrap();
        assert!(linux.is_disabled("Ship"));
        assert!(!linux.is_disabled("Pack"));
        assert!(Settings::parse(r#"{"IsEncrypted": true, "Values": {}}"#).unwrap_err().contains("decrypt"));
        assert!(Settings::parse("{").unwrap_err().contains("not valid JSON"));
    }
}
