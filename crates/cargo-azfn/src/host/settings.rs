//! App settings for a local run: `local.settings.json`'s `Values`, with the process environment
//! winning, as in Core Tools.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// The settings a local run sees.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
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
        Ok(Self { values })
    }

    /// A setting: the environment variable when set, otherwise the `Values` entry.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().or_else(|| self.values.get(name).cloned())
    }

    /// The `Values` entries the environment does not already set: what a child process must add to
    /// the environment it inherits.
    pub fn missing_from_env(&self) -> Vec<(String, String)> {
        self.values.iter().filter(|(k, _)| std::env::var_os(k).is_none()).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Whether `AzureWebJobs.<function>.Disabled` is set to `true` or `1`.
    pub fn is_disabled(&self, function: &str) -> bool {
        self.get(&format!("AzureWebJobs.{function}.Disabled"))
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v.trim() == "1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_and_encrypted_files_are_refused() {
        let s = Settings::parse(r#"{"Values": {"PATH": "not-this", "AzureWebJobs.X.Disabled": "true"}}"#).unwrap();
        assert_ne!(s.get("PATH").as_deref(), Some("not-this"));
        assert!(s.missing_from_env().iter().all(|(k, _)| k != "PATH"));
        assert!(s.is_disabled("X"));
        assert!(!s.is_disabled("Y"));
        assert!(Settings::parse(r#"{"IsEncrypted": true, "Values": {}}"#).unwrap_err().contains("decrypt"));
        assert!(Settings::parse("{").unwrap_err().contains("not valid JSON"));
    }
}
