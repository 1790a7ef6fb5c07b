//! `azfn new`: adds a function to an app laid out like this repository's: its function.json under
//! `functions/<Name>/`, a handler module with a test under `src/functions/`, and its registration
//! in `src/functions/mod.rs`, so that the app builds at once.

use std::fs;
use std::path::Path;

use serde_json::json;

/// The kinds of function `new` can add.
pub const KINDS: &[&str] = &["http", "timer", "queue", "blob", "servicebus", "eventgrid"];

/// Options of `new`, by name (`route`, `methods`, `auth`, `schedule`, `queue`, `path`, `connection`).
pub type Options = std::collections::BTreeMap<String, String>;

/// Checks a function name as the Functions host does: a letter, then letters, digits, `_` or `-`,
/// at most 127 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 127;
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid function name: start with a letter, then letters, digits, _ or -"))
    }
}

/// `ProcessOrder` -> `process_order`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '-' {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    out
}

/// Adds the function `name` of `kind` to the app in `root`; returns the files written or changed.
pub fn new_function(root: &Path, kind: &str, name: &str, opts: &Options) -> Result<Vec<String>, String> {
    check_name(name)?;
    if !KINDS.contains(&kind) {
        return Err(format!("unknown kind {kind:?}; choose one of: {}", KINDS.join(", ")));
    }
    let mod_rs = root.join("src/functions/mod.rs");
    let registry = fs::read_to_string(&mod_rs)
        .map_err(|e| format!("cannot read {}: {e} (run `new` from the app's root)", mod_rs.display()))?;
    let dir = root.join("functions").join(name);
    let existing = fs::read_dir(root.join("functions"))
        .map(|d| d.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(name)))
        .unwrap_or(false);
    let module = snake(name);
    let module_file = root.join("src/functions").join(format!("{module}.rs"));
    if existing || module_file.exists() {
        return Err(format!("a function named {name:?} (or its module src/functions/{module}.rs) already exists"));
    }
    let get = |k: &str, default: &str| opts.get(k).cloned().unwrap_or_else(|| default.to_owned());
    let connection =
        get("connection", if kind == "servicebus" { "ServiceBusConnection" } else { "AzureWebJobsStorage" });
    let lower = name.to_ascii_lowercase();
    let (bindings, handler) = match kind {
        "http" => {
            let methods: Vec<String> =
                get("methods", "get,post").split(',').map(|m| m.trim().to_ascii_lowercase()).collect();
            let route = get("route", &lower);
            (
                json!([
                    {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": get("auth", "function"), "methods": methods, "route": route},
                    {"type": "http", "direction": "out", "name": "res"}
                ]),
                http_handler(name, &module, &route),
            )
        }
        "timer" => (
            json!([{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": get("schedule", "0 */5 * * * *")}]),
            timer_handler(name, &module),
        ),
        "queue" => (
            json!([{"type": "queueTrigger", "direction": "in", "name": "message", "queueName": get("queue", &lower), "connection": connection}]),
            message_handler(name, &module, "QueueMessage", "a storage queue message"),
        ),
        "blob" => (
            json!([{"type": "blobTrigger", "direction": "in", "name": "blob", "path": get("path", &format!("{lower}/{{name}}")), "connection": connection}]),
            blob_handler(name, &module),
        ),
        "servicebus" => (
            json!([{"type": "serviceBusTrigger", "direction": "in", "name": "message", "queueName": get("queue", &lower), "connection": connection}]),
            message_handler(name, &module, "ServiceBusMessage", "a Service Bus message"),
        ),
        _ => (
            json!([{"type": "eventGridTrigger", "direction": "in", "name": "event"}]),
            event_grid_handler(name, &module),
        ),
    };

    // Register first: if that fails, nothing is written.
    let registry = register(&registry, name, &module)?;
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let text = serde_json::to_string_pretty(&json!({"bindings": bindings})).expect("a Value serializes") + "\n";
    fs::write(dir.join("function.json"), text).map_err(|e| e.to_string())?;
    fs::write(&module_file, handler).map_err(|e| e.to_string())?;
    fs::write(&mod_rs, registry).map_err(|e| e.to_string())?;
    Ok(vec![
        format!("functions/{name}/function.json"),
        format!("src/functions/{module}.rs"),
        "src/functions/mod.rs".to_owned(),
    ])
}

/// Adds `mod <module>;` after the last `mod` line and `.function("<Name>", <module>::<module>)`
/// after the last `.function(` line.
fn register(registry: &str, name: &str, module: &str) -> Result<String, String> {
    let mut lines: Vec<String> = registry.lines().map(str::to_owned).collect();
    let last_mod = lines.iter().rposition(|l| l.starts_with("mod ") && l.ends_with(';'));
    let last_fn = lines.iter().rposition(|l| l.trim_start().starts_with(".function("));
    let (Some(m), Some(f)) = (last_mod, last_fn) else {
        return Err("src/functions/mod.rs has no `mod …;` lines and `.function(…)` chain to extend".to_owned());
    };
    let indent: String = lines[f].chars().take_while(|c| c.is_whitespace()).collect();
    lines.insert(f + 1, format!("{indent}.function(\"{name}\", {module}::{module})"));
    lines.insert(m + 1, format!("mod {module};"));
    Ok(lines.join("\n") + "\n")
}

fn http_handler(name: &str, module: &str, route: &str) -> String {
    format!(
        r#"//! `{name}`: an HTTP function at `/api/{route}`.

use azfn::{{Context, HttpRequest, HttpResponse}};

/// Answers the request.
pub async fn {module}(req: HttpRequest, _ctx: Context) -> Result<HttpResponse, azfn::Error> {{
    Ok(HttpResponse::ok().text(format!("{name}: {{}} {{}}", req.method, req.path())))
}}

#[cfg(test)]
mod tests {{
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn answers() {{
        let req: HttpRequest = azfn::testing::trigger(
            "{name}",
            json!({{"Url": "http://localhost:7071/api/{route}", "Method": "GET", "Query": {{}}, "Headers": {{}}}}),
            json!({{}}),
        );
        let res = {module}(req, azfn::testing::context("{name}")).await.unwrap();
        assert_eq!(res.status, 200);
    }}
}}
"#
    )
}

fn timer_handler(name: &str, module: &str) -> String {
    format!(
        r#"//! `{name}`: a timer function.

use azfn::{{Context, TimerInfo}};

/// Runs on the schedule in functions/{name}/function.json.
pub async fn {module}(timer: TimerInfo, _ctx: Context) -> Result<(), azfn::Error> {{
    tracing::info!(past_due = timer.is_past_due, "{name} ran");
    Ok(())
}}

#[cfg(test)]
mod tests {{
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn runs() {{
        let timer: TimerInfo = azfn::testing::trigger("{name}", json!({{"Schedule": {{"AdjustForDST": true}}, "IsPastDue": false}}), json!({{}}));
        {module}(timer, azfn::testing::context("{name}")).await.unwrap();
    }}
}}
"#
    )
}

fn message_handler(name: &str, module: &str, ty: &str, what: &str) -> String {
    format!(
        r#"//! `{name}`: handles {what}.

use azfn::{{Context, {ty}}};

/// Handles one message; an error makes the host retry it, then give up on it.
pub async fn {module}(message: {ty}<serde_json::Value>, _ctx: Context) -> Result<(), azfn::Error> {{
    tracing::info!(body = %message.body, "{name} received a message");
    Ok(())
}}

#[cfg(test)]
mod tests {{
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn handles_a_json_message() {{
        // The host sends the message text JSON-encoded once more.
        let message: {ty}<serde_json::Value> = azfn::testing::trigger("{name}", json!("{{\"id\":1}}"), json!({{}}));
        assert_eq!(message.body["id"], 1);
        {module}(message, azfn::testing::context("{name}")).await.unwrap();
    }}
}}
"#
    )
}

fn blob_handler(name: &str, module: &str) -> String {
    format!(
        r#"//! `{name}`: handles new or changed blobs.

use azfn::{{BlobInput, Context}};

/// Handles one blob; an error makes the host retry it, then report it on `webjobs-blobtrigger-poison`.
pub async fn {module}(blob: BlobInput, _ctx: Context) -> Result<(), azfn::Error> {{
    tracing::info!(name = blob.param("name").unwrap_or_default(), bytes = blob.content.len(), "{name} received a blob");
    Ok(())
}}

#[cfg(test)]
mod tests {{
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn handles_a_blob() {{
        // Blob content arrives base64-encoded; `aGk=` is "hi".
        let blob: BlobInput = azfn::testing::trigger("{name}", json!("aGk="), json!({{"name": "\"a.txt\""}}));
        assert_eq!(blob.text().unwrap(), "hi");
        {module}(blob, azfn::testing::context("{name}")).await.unwrap();
    }}
}}
"#
    )
}

fn event_grid_handler(name: &str, module: &str) -> String {
    format!(
        r#"//! `{name}`: handles Event Grid events (Event Grid schema or CloudEvents).

use azfn::{{Context, EventGridEvent}};

/// Handles one event.
pub async fn {module}(event: EventGridEvent, _ctx: Context) -> Result<(), azfn::Error> {{
    tracing::info!(kind = %event.event_type, subject = event.subject.as_deref().unwrap_or("-"), "{name} received an event");
    Ok(())
}}

#[cfg(test)]
mod tests {{
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn handles_an_event() {{
        let event: EventGridEvent = azfn::testing::trigger(
            "{name}",
            json!({{"id": "1", "eventType": "Demo.Happened", "subject": "s", "eventTime": "2024-05-01T10:00:00Z", "data": {{}}, "dataVersion": "1"}}),
            json!({{}}),
        );
        {module}(event, azfn::testing::context("{name}")).await.unwrap();
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("ProcessOrder").is_ok());
        assert!(check_name("order-2_b").is_ok());
        assert!(check_name("2fast").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name("").is_err());
        assert_eq!(snake("ProcessOrder"), "process_order");
        assert_eq!(snake("order-events"), "order_events");
    }

    #[test]
    fn registration_extends_mod_lines_and_the_chain() {
        let src = "mod a;\nmod b;\n\npub fn app() -> App {\n    App::new()\n        .function(\"A\", a::a)\n        .function(\"B\", b::b)\n}\n";
        let out = register(src, "New", "new").unwrap();
        assert!(out.contains("mod b;\nmod new;\n"));
        assert!(out.contains("        .function(\"B\", b::b)\n        .function(\"New\", new::new)\n}"));
        assert!(register("fn main() {}", "X", "x").is_err());
    }
}
