//! `cargo azfn invoke <Function>`: runs one function once through the running local host.
//!
//! The function's trigger type comes from its function.json. HTTP functions are called at their
//! route; every other trigger goes through the host's admin endpoint,
//! `POST /admin/functions/{name}?wait=true` with `{"input": "..."}`, which answers when the
//! invocation is done with what it produced (see [`crate::host::front::summary`]).

use std::path::Path;
use std::time::Duration;

use azfn::function_json::{AppMetadata, FunctionSpec};
use serde_json::{Value, json};

/// What to invoke and with what.
#[derive(Debug, Clone)]
pub struct InvokeOptions {
    /// The function's name.
    pub function: String,
    /// The input: JSON text (`--data`, or the content of `--file`).
    pub data: Option<String>,
    /// The host's base URL, e.g. `http://127.0.0.1:7071`.
    pub url: String,
    /// For HTTP functions: the method (default: POST with data when allowed, else the first).
    pub method: Option<String>,
    /// For HTTP functions: the path and query to call instead of the route without parameters.
    pub path: Option<String>,
}

/// What an invocation gave: printed on stdout, and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoked {
    /// The text to print.
    pub text: String,
    /// Whether the function succeeded (2xx, or the admin endpoint's `Succeeded`).
    pub ok: bool,
}

/// Invokes the function of the app in `root` through the host at `opts.url`.
pub async fn invoke(root: &Path, opts: &InvokeOptions) -> Result<Invoked, String> {
    if !root.join("host.json").is_file() {
        return Err(format!(
            "{} has no host.json: run `cargo azfn invoke` from the app's root folder, or pass --root <the app's folder>",
            root.display()
        ));
    }
    let meta = AppMetadata::load(root).map_err(|e| e.to_string())?;
    let Some((name, spec)) = meta.functions.iter().find(|(n, _)| n.eq_ignore_ascii_case(&opts.function)) else {
        return match durable_kind(root, &opts.function) {
            Some(("orchestrator", name)) => start_orchestration(&meta, &name, opts).await,
            Some((kind, name)) => Err(format!(
                "{name:?} is an {kind} of the app, not a function: activities run when an orchestration calls them \
                 (ctx.call_activity); invoke the orchestrator that calls it, or the function that starts that one"
            )),
            None => Err(format!(
                "no function named {:?} in {}; the app has: {}",
                opts.function,
                root.display(),
                meta.functions.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        };
    };
    let data =
        match &opts.data {
            Some(text) => Some(serde_json::from_str::<Value>(text).map_err(|e| {
                format!("the data is not JSON ({e}); a text input is written as a JSON string: '\"hi\"'")
            })?),
            None => None,
        };
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(300)).no_proxy().build().map_err(|e| e.to_string())?;
    let trigger = spec.trigger();
    if trigger.is_type("httpTrigger") {
        return invoke_http(&client, &meta, spec, data, opts).await;
    }
    let input = admin_input(&trigger.binding_type, data)?;
    let url = format!("{}/admin/functions/{name}?wait=true", opts.url.trim_end_matches('/'));
    let res = client.post(&url).json(&json!({"input": input})).send().await.map_err(|e| unreachable(opts, &e))?;
    if res.status() == reqwest::StatusCode::ACCEPTED {
        // Core Tools' host (or another that ignores `wait`): it runs the function in the background.
        return Ok(Invoked {
            text: format!("{name}: accepted; the host runs it in the background (its console shows the outcome)"),
            ok: true,
        });
    }
    let ok = res.status().is_success();
    let body: Value = res.json().await.map_err(|e| format!("the host's answer is not JSON: {e}"))?;
    let text = if ok {
        serde_json::to_string_pretty(&body).unwrap_or_default()
    } else {
        body["error"]["message"].as_str().map(str::to_owned).unwrap_or_else(|| body.to_string())
    };
    Ok(Invoked { text, ok })
}

/// Whether `name` is an orchestrator or an activity registered in the app's sources (a
/// `.orchestrator("Name", ...)` or `.activity("Name", ...)` call under `src/`, any case): the kind
/// and the name as registered.
fn durable_kind(root: &Path, name: &str) -> Option<(&'static str, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let wanted = name.to_ascii_lowercase();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        // Without white space: rustfmt puts a long registration's arguments on lines of their own.
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for kind in ["orchestrator", "activity"] {
            for part in text.split(&format!(".{kind}(\"")).skip(1) {
                let registered = part.split('"').next().unwrap_or_default();
                if registered.to_ascii_lowercase() == wanted {
                    return Some((kind, registered.to_owned()));
                }
            }
        }
    }
    None
}

/// Starts the orchestrator `name` through the app's management API (`POST
/// /{prefix}/orchestrators/{name}` with the data as its input), as `cargo azfn invoke` of an
/// orchestrator does.
async fn start_orchestration(meta: &AppMetadata, name: &str, opts: &InvokeOptions) -> Result<Invoked, String> {
    if !meta.functions.contains_key(azfn::durable::API_FUNCTION) {
        return Err(format!(
            "{name:?} is an orchestrator, and the app has no {} function (functions/{}/function.json) to start it through",
            azfn::durable::API_FUNCTION,
            azfn::durable::API_FUNCTION
        ));
    }
    let data = match &opts.data {
        Some(text) => serde_json::from_str::<Value>(text)
            .map_err(|e| format!("the data is not JSON ({e}); a text input is written as a JSON string: '\"hi\"'"))?,
        None => Value::Null,
    };
    let prefix = if meta.host.route_prefix.is_empty() { String::new() } else { format!("/{}", meta.host.route_prefix) };
    let url = format!("{}{prefix}/orchestrators/{name}", opts.url.trim_end_matches('/'));
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(60)).no_proxy().build().map_err(|e| e.to_string())?;
    let res = client.post(&url).json(&data).send().await.map_err(|e| unreachable(opts, &e))?;
    let status = res.status();
    let body = res.text().await.map_err(|e| format!("the answer broke off: {e}"))?;
    let shown = serde_json::from_str::<Value>(&body)
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or(body);
    Ok(Invoked {
        text: format!("{name} is an orchestrator: started it with POST {url}\nHTTP {}\n{shown}", status.as_u16()),
        ok: status.is_success(),
    })
}

fn unreachable(opts: &InvokeOptions, e: &reqwest::Error) -> String {
    format!("cannot reach the local host at {} ({e}); start it with `cargo azfn start`", opts.url)
}

/// The admin endpoint's `input` string for a trigger type, from the data.
fn admin_input(binding_type: &str, data: Option<Value>) -> Result<String, String> {
    let ty = binding_type.to_ascii_lowercase();
    Ok(match (ty.as_str(), data) {
        ("timertrigger", _) => String::new(),
        ("blobtrigger", Some(Value::String(path))) if path.contains('/') => path,
        ("blobtrigger", _) => {
            return Err("a blob trigger's data is the path of an existing blob, as a JSON string: \
                        --data '\"container/name.txt\"'"
                .to_owned());
        }
        ("eventgridtrigger", Some(event @ Value::Object(_))) => event.to_string(),
        ("eventgridtrigger", _) => {
            return Err("an Event Grid trigger's data is one event object, e.g. --data '{\"id\": \"1\", \
                        \"eventType\": \"Demo.Happened\", \"subject\": \"demo\", \"eventTime\": \
                        \"2026-01-01T00:00:00Z\", \"data\": {}, \"dataVersion\": \"1.0\"}'"
                .to_owned());
        }
        // Queue and Service Bus messages: a JSON string is the message text; anything else is sent
        // as JSON text.
        (_, Some(Value::String(text))) => text,
        (_, Some(other)) => other.to_string(),
        (_, None) => {
            return Err(format!("{binding_type} needs --data (the message) or --file; see `cargo azfn invoke --help`"));
        }
    })
}

async fn invoke_http(
    client: &reqwest::Client,
    meta: &AppMetadata,
    spec: &FunctionSpec,
    data: Option<Value>,
    opts: &InvokeOptions,
) -> Result<Invoked, String> {
    let trigger = spec.trigger();
    let route = trigger.property("route").map(str::to_owned).unwrap_or_else(|| spec.name.clone());
    let path = match &opts.path {
        Some(p) => p.clone(),
        None if route.contains('{') => {
            return Err(format!(
                "{}'s route {route:?} has parameters: give the path to call, e.g. --path /{}/{}",
                spec.name,
                meta.host.route_prefix,
                route.split('{').next().unwrap_or_default().trim_end_matches('/')
            ));
        }
        None if meta.host.route_prefix.is_empty() => format!("/{route}"),
        None => format!("/{}/{route}", meta.host.route_prefix),
    };
    let methods: Vec<String> = trigger
        .value("methods")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(|v| v.as_str().map(str::to_ascii_uppercase)).collect())
        .unwrap_or_default();
    let method = match &opts.method {
        Some(m) => m.to_ascii_uppercase(),
        None if data.is_some() && (methods.is_empty() || methods.iter().any(|m| m == "POST")) => "POST".to_owned(),
        None => methods.first().cloned().unwrap_or_else(|| "GET".to_owned()),
    };
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| format!("{method:?} is not a method"))?;
    let url =
        format!("{}{}", opts.url.trim_end_matches('/'), if path.starts_with('/') { path } else { format!("/{path}") });
    let mut req = client.request(method.clone(), &url);
    if let Some(d) = &data {
        req = req.json(d);
    }
    let res = req.send().await.map_err(|e| unreachable(opts, &e))?;
    let status = res.status();
    let body = res.text().await.map_err(|e| format!("the answer broke off: {e}"))?;
    Ok(Invoked { text: format!("{method} {url}\nHTTP {}\n{body}", status.as_u16()), ok: status.is_success() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_inputs_per_trigger() {
        assert_eq!(admin_input("queueTrigger", Some(json!("hi"))).unwrap(), "hi");
        assert_eq!(admin_input("queueTrigger", Some(json!({"id": 1}))).unwrap(), r#"{"id":1}"#);
        assert_eq!(admin_input("timerTrigger", None).unwrap(), "");
        assert_eq!(admin_input("blobTrigger", Some(json!("c/a.txt"))).unwrap(), "c/a.txt");
        assert!(admin_input("blobTrigger", Some(json!({}))).unwrap_err().contains("container/name"));
        assert!(admin_input("eventGridTrigger", Some(json!("x"))).unwrap_err().contains("event object"));
        assert!(admin_input("serviceBusTrigger", None).unwrap_err().contains("--data"));
    }
}
