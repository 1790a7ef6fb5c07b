//! Function keys, enforced under `cargo azfn start --keys` as the Functions host enforces them in
//! Azure (Core Tools, and `cargo azfn start` by default, check none): a request to an HTTP function
//! whose `authLevel` is `function` or `admin`, to `/admin/...`, or to an extension's webhook needs a
//! key, else the answer is `401`. Rules from azure-functions-host (89dc438):
//!
//! - `AuthenticationLevelHandler.GetAuthorizationKeyInfoAsync`: the key is read from the
//!   `x-functions-key` header, else from the `code` query parameter ("header takes precedence");
//! - `SecretManager.GetAuthorizationLevelAsync`: the master key gives `Admin`, a system key
//!   `System`, a host or function key `Function`;
//! - `AuthUtility.PrincipalHasAuthLevelClaim`: `Admin` meets every requirement; otherwise the level
//!   must be the one required (a system key does not open a `function` route, nor a function key a
//!   webhook).
//!
//! The keys come from the app settings `AZFN_MASTER_KEY`, `AZFN_FUNCTION_KEY` (the host's `default`
//! function key) and `AZFN_EVENTGRID_KEY` (the `eventgrid_extension` system key), in
//! local.settings.json or the environment; each one not set is generated for the run and printed.

use axum::http::HeaderMap;

use super::settings::Settings;

/// What a request is allowed, or needs, as the host's `AuthorizationLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No key needed (or none presented that matched).
    Anonymous,
    /// A function key (the host's or the function's).
    Function,
    /// An extension's system key (webhooks).
    System,
    /// The master key.
    Admin,
}

impl Level {
    /// Whether a key of this level opens something that needs `required`
    /// (`AuthUtility.PrincipalHasAuthLevelClaim`).
    pub fn meets(self, required: Level) -> bool {
        match (self, required) {
            (_, Level::Anonymous) | (Level::Admin, _) => true,
            (Level::Anonymous, _) => false,
            (level, required) => level == required,
        }
    }

    /// A function.json `authLevel` (`anonymous`, `function`, `admin`; the host's default is
    /// `function`).
    pub fn from_auth_level(value: Option<&str>) -> Self {
        match value.map(str::to_ascii_lowercase).as_deref() {
            Some("anonymous") => Level::Anonymous,
            Some("admin") => Level::Admin,
            Some("system") => Level::System,
            _ => Level::Function,
        }
    }
}

/// The keys of a run.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The master key (`_master`).
    pub master: String,
    /// The host's `default` function key.
    pub function: String,
    /// The `eventgrid_extension` system key.
    pub eventgrid: String,
}

impl Keys {
    /// The keys from the app settings, each one missing generated; also gives the names of those
    /// generated.
    pub fn from_settings(settings: &Settings) -> (Self, Vec<&'static str>) {
        let mut generated = Vec::new();
        let mut get = |name: &'static str| match settings.get(name).filter(|v| !v.is_empty()) {
            Some(v) => v,
            None => {
                generated.push(name);
                new_key()
            }
        };
        let keys = Keys {
            master: get("AZFN_MASTER_KEY"),
            function: get("AZFN_FUNCTION_KEY"),
            eventgrid: get("AZFN_EVENTGRID_KEY"),
        };
        (keys, generated)
    }

    /// The level the presented key gives.
    pub fn level_of(&self, key: Option<&str>) -> Level {
        match key {
            Some(k) if k == self.master => Level::Admin,
            Some(k) if k == self.eventgrid => Level::System,
            Some(k) if k == self.function => Level::Function,
            _ => Level::Anonymous,
        }
    }

    /// Whether a request with these `headers` and `query` may reach something that needs `required`.
    pub fn allows(&self, required: Level, headers: &HeaderMap, query: Option<&str>) -> bool {
        self.level_of(presented(headers, query).as_deref()).meets(required)
    }
}

/// The key a request presents: the `x-functions-key` header, else the `code` query parameter.
pub fn presented(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers.get("x-functions-key") {
        return v.to_str().ok().map(str::to_owned);
    }
    super::front::query_pairs(query).into_iter().find(|(k, _)| k.eq_ignore_ascii_case("code")).map(|(_, v)| v)
}

/// A new random key, URL-safe (as the host's are: 40 characters of base64 without padding).
fn new_key() -> String {
    let bytes: Vec<u8> = (0..2).flat_map(|_| uuid::Uuid::new_v4().into_bytes()).collect();
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    text[..40].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys { master: "m".into(), function: "f".into(), eventgrid: "e".into() }
    }

    /// The rules of the module's doc, with the host's files and methods named there.
    #[test]
    fn keys_open_what_their_level_opens() {
        let k = keys();
        let none = HeaderMap::new();
        let mut header = HeaderMap::new();
        header.insert("x-functions-key", "f".parse().unwrap());
        assert!(k.allows(Level::Anonymous, &none, None));
        assert!(!k.allows(Level::Function, &none, None));
        assert!(k.allows(Level::Function, &none, Some("code=f")));
        assert!(k.allows(Level::Function, &header, None));
        // "header takes precedence" over the query.
        assert!(k.allows(Level::Function, &header, Some("code=wrong")));
        assert!(!k.allows(Level::Function, &none, Some("code=wrong")));
        // Admin meets every requirement; otherwise the level must match.
        assert!(k.allows(Level::Function, &none, Some("code=m")) && k.allows(Level::System, &none, Some("code=m")));
        assert!(!k.allows(Level::Admin, &none, Some("code=f")));
        assert!(!k.allows(Level::Function, &none, Some("code=e")), "a system key does not open a function route");
        assert!(k.allows(Level::System, &none, Some("code=e")) && !k.allows(Level::System, &none, Some("code=f")));
        assert_eq!(Level::from_auth_level(None), Level::Function);
        assert_eq!(Level::from_auth_level(Some("Anonymous")), Level::Anonymous);
        assert_eq!(new_key().len(), 40);
    }
}
