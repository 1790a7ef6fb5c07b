//! `cargo azfn new`: adds a function to an app laid out like `cargo azfn init` makes them (and like
//! the orders app): its function.json under `functions/<Name>/`, a handler module with a test under
//! `src/functions/`, and its registration in `src/functions/mod.rs`, so that the app builds at once.
//!
//! The durable kinds add an orchestrator or an activity to `src/functions/orchestrations/` and its
//! `registry()`; the first one also adds the durable functions (`Orchestrators`, `DurableControl`,
//! `DurableWork`, `Dashboard`) and `.durable(orchestrations::registry())`.
//!
//! Everything is checked before anything is written, and the Rust files written are passed through
//! `rustfmt`, so that `cargo fmt --check` stays clean for any name.

use std::fs;
use std::path::Path;

use serde_json::json;

/// The kinds of function `new` can add.
pub const KINDS: &[&str] = &["http", "timer", "queue", "blob", "servicebus", "eventgrid", "orchestrator", "activity"];

/// Options of `new`, by name (`route`, `methods`, `auth`, `schedule`, `queue`, `path`, `connection`,
/// `starts`).
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
    let module = snake(name);
    if DURABLE_FUNCTIONS.iter().any(|r| r.eq_ignore_ascii_case(name))
        || RESERVED_MODULES.contains(&module.as_str())
        || is_keyword(&module)
    {
        return Err(format!("{name:?} is taken (its module would be `{module}`): choose another name"));
    }
    check_options(kind, opts)?;
    if kind == "orchestrator" || kind == "activity" {
        return new_durable(root, kind, name);
    }
    let mod_rs = root.join("src/functions/mod.rs");
    let registry = fs::read_to_string(&mod_rs)
        .map_err(|e| format!("cannot read {}: {e} (run `new` from the app's root)", mod_rs.display()))?;
    let dir = root.join("functions").join(name);
    let existing = fs::read_dir(root.join("functions"))
        .map(|d| d.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(name)))
        .unwrap_or(false);
    let module_file = root.join("src/functions").join(format!("{module}.rs"));
    if existing || module_file.exists() || registry.lines().any(|l| is_mod_line(l, &module)) {
        return Err(format!("a function named {name:?} (or its module src/functions/{module}.rs) already exists"));
    }
    let get = |k: &str, default: &str| opts.get(k).cloned().unwrap_or_else(|| default.to_owned());
    let connection =
        get("connection", if kind == "servicebus" { "ServiceBusConnection" } else { "AzureWebJobsStorage" });
    let lower = name.to_ascii_lowercase();
    if let Some(orchestrator) = opts.get("starts") {
        check_orchestrator(root, orchestrator)?;
    }
    let (bindings, handler) = match kind {
        "http" => {
            let starts = opts.get("starts");
            let default_methods = if starts.is_some() { "post" } else { "get,post" };
            let methods: Vec<String> =
                get("methods", default_methods).split(',').map(|m| m.trim().to_ascii_lowercase()).collect();
            let route = get("route", &lower);
            let handler = match starts {
                Some(orchestrator) => starter_handler(name, &module, &route, orchestrator),
                None => http_handler(name, &module, &route),
            };
            (
                json!([
                    {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": get("auth", "function"), "methods": methods, "route": route},
                    {"type": "http", "direction": "out", "name": "res"}
                ]),
                handler,
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

    let (bindings, handler) = match opts.get("outputs") {
        // Storage outputs use the trigger's connection only when the trigger is on storage too.
        Some(list) => {
            let storage = if kind == "queue" || kind == "blob" { connection.as_str() } else { "AzureWebJobsStorage" };
            with_outputs(bindings, &handler, list, storage)?
        }
        None => (bindings, handler),
    };

    // Register first: if that fails, nothing is written.
    let registry = rustfmt(root, &register(&registry, name, &module)?);
    let handler = rustfmt(root, &handler);
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

/// Adds `mod <module>;` among the `mod` lines, in the order rustfmt keeps them, and
/// `.function("<Name>", <module>::<module>)` after the last `.function(` line.
fn register(registry: &str, name: &str, module: &str) -> Result<String, String> {
    let call = format!(".function(\"{name}\", {module}::{module})");
    let lines = insert_mod(registry, module, "mod ")
        .ok_or("src/functions/mod.rs has no `mod …;` lines and `.function(…)` chain to extend")?;
    extend_chain(&lines, &[".function("], &call)
        .ok_or_else(|| "src/functions/mod.rs has no `mod …;` lines and `.function(…)` chain to extend".to_owned())
}

/// `text` with `<prefix><module>;` inserted among its `<prefix>…;` lines (which rustfmt sorts),
/// or `None` when it has none.
fn insert_mod(text: &str, module: &str, prefix: &str) -> Option<Vec<String>> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let is_mod = |l: &str| l.starts_with(prefix) && l.ends_with(';');
    let first = lines.iter().position(|l| is_mod(l))?;
    let mut at = first;
    while at < lines.len() && is_mod(&lines[at]) && lines[at][prefix.len()..lines[at].len() - 1] < *module {
        at += 1;
    }
    lines.insert(at, format!("{prefix}{module};"));
    Some(lines)
}

/// The lines joined, with `call` as a new link after the last line of the chain that starts with
/// one of `links` (a call rustfmt may have spread over several lines ends at its `)`).
fn extend_chain(lines: &[String], links: &[&str], call: &str) -> Option<String> {
    let mut lines = lines.to_vec();
    let mut start = lines.iter().rposition(|l| links.iter().any(|p| l.contains(p)))?;
    let indent: String = lines[start].chars().take_while(|c| c.is_whitespace()).collect();
    // rustfmt may have joined a short chain into one line (`App::new().function(…)`): split it
    // before its first link.
    let line = lines[start].clone();
    if let Some(at) = links.iter().filter_map(|p| line.find(&format!(".{}", p.trim_start_matches('.')))).min()
        && !line[..at].trim().is_empty()
    {
        lines[start] = line[..at].to_owned();
        lines.insert(start + 1, format!("{indent}    {}", &line[at..]));
        start += 1;
    }
    let indent: String = lines[start].chars().take_while(|c| c.is_whitespace()).collect();
    let mut end = start;
    let mut depth = 0i32;
    for (i, l) in lines.iter().enumerate().skip(start) {
        depth += l.matches('(').count() as i32 - l.matches(')').count() as i32;
        end = i;
        if depth <= 0 {
            break;
        }
    }
    // A chain ending a statement keeps its `;` at the end.
    let call = match lines[end].trim_end().strip_suffix(';') {
        Some(before) => {
            lines[end] = before.to_owned();
            format!("{call};")
        }
        None => call.to_owned(),
    };
    lines.insert(end + 1, format!("{indent}{call}"));
    Some(lines.join("\n") + "\n")
}

/// Module names that would clash with the crates a function module uses, or with the modules of
/// the app's layout.
const RESERVED_MODULES: &[&str] = &[
    "azfn",
    "std",
    "core",
    "alloc",
    "serde",
    "serde_json",
    "tokio",
    "tracing",
    "orchestrations",
    "model",
    "test_support",
    "tests",
    "functions",
    "main",
];

/// Whether `line` declares the module `module` (`mod x;`, `pub mod x {`, ...).
fn is_mod_line(line: &str, module: &str) -> bool {
    let l = line.trim_start();
    let l = l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
    l.strip_prefix("mod ").is_some_and(|rest| {
        let rest = rest.trim_start();
        rest.strip_prefix(module).is_some_and(|after| after.starts_with([';', ' ', '{']))
    })
}

/// `bindings` with the output bindings of `list` (`queue:NAME`, `blob:CONTAINER/PATH` or
/// `table:NAME`, separated by `;`) added, and `handler` with a line for each in its module
/// documentation, saying how to write to it.
fn with_outputs(
    mut bindings: serde_json::Value,
    handler: &str,
    list: &str,
    connection: &str,
) -> Result<(serde_json::Value, String), String> {
    let mut docs = Vec::new();
    let array = bindings.as_array_mut().expect("bindings are an array");
    for one in list.split(';').filter(|o| !o.is_empty()) {
        let (kind, target) = one.split_once(':').ok_or_else(|| {
            format!("--output {one:?}: write KIND:TARGET, as queue:shipments, blob:receipts/{{rand-guid}}.json or table:orders")
        })?;
        let stem = target.split('/').next().unwrap_or(target);
        let name: String = stem
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .enumerate()
            .map(|(i, w)| if i == 0 { w.to_ascii_lowercase() } else { w[..1].to_ascii_uppercase() + &w[1..] })
            .collect();
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(format!("--output {one:?}: the target should start with a letter"));
        }
        if array.iter().any(|b| b["name"] == name.as_str()) {
            return Err(format!("--output {one:?}: the function already has a binding named {name:?}"));
        }
        let (binding, doc) = match kind {
            "queue" => (
                json!({"type": "queue", "direction": "out", "name": name, "queueName": target, "connection": connection}),
                format!("`{name}`: messages to the queue `{target}`, with `ctx.send_json(\"{name}\", &value)?`"),
            ),
            "blob" if target.contains('/') => (
                json!({"type": "blob", "direction": "out", "name": name, "path": target, "connection": connection}),
                format!("`{name}`: the blob `{target}`, with `ctx.write_blob_json(\"{name}\", &value)?`"),
            ),
            "blob" => {
                return Err(format!(
                    "--output {one:?}: a blob output's path is container/name, e.g. blob:receipts/{{rand-guid}}.json"
                ));
            }
            "table" => (
                json!({"type": "table", "direction": "out", "name": name, "tableName": target, "connection": connection}),
                format!(
                    "`{name}`: rows of the table `{target}` (with PartitionKey and RowKey), with \
                     `ctx.insert_entity(\"{name}\", &row)?`"
                ),
            ),
            other => return Err(format!("--output {one:?}: {other:?} is not queue, blob or table")),
        };
        array.push(binding);
        docs.push(format!("//! - {doc}"));
    }
    let mut lines: Vec<&str> = handler.lines().collect();
    let after = lines.iter().position(|l| !l.starts_with("//!")).unwrap_or(0);
    let block = format!("//!\n//! Outputs (in its function.json):\n{}", docs.join("\n"));
    lines.insert(after, &block);
    Ok((bindings, lines.join("\n") + "\n"))
}

/// Checks that the app registers the orchestrator `name` (for `new http --starts`).
fn check_orchestrator(root: &Path, name: &str) -> Result<(), String> {
    let registry = fs::read_to_string(root.join("src/functions/orchestrations/mod.rs")).unwrap_or_default();
    // Without white space: rustfmt puts a long registration's arguments on lines of their own.
    let registry: String = registry.chars().filter(|c| !c.is_whitespace()).collect();
    if registry.contains(&format!(".orchestrator(\"{name}\",")) {
        Ok(())
    } else {
        Err(format!(
            "--starts {name}: the app has no orchestrator {name:?} in src/functions/orchestrations/mod.rs; add it first \
             with `cargo azfn new orchestrator {name}`"
        ))
    }
}

/// Checks the options of `kind` before anything is written: values that go into Rust code or that
/// the host would refuse are refused here.
fn check_options(kind: &str, opts: &Options) -> Result<(), String> {
    if opts.contains_key("outputs") && (kind == "orchestrator" || kind == "activity") {
        return Err(format!("--output is for functions: an {kind} writes through activities"));
    }
    if opts.contains_key("starts") && kind != "http" {
        return Err(format!(
            "--starts is for `new http`: a {kind} function can start orchestrations through \
                            ctx.durable() too, by hand"
        ));
    }
    for (k, v) in opts {
        if v.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
            return Err(format!("--{k} {v:?}: quotes, backslashes and control characters are not allowed"));
        }
    }
    let setting = |v: &str| v.len() > 2 && v.starts_with('%') && v.ends_with('%');
    if let Some(m) = opts.get("methods") {
        const METHODS: &[&str] = &["get", "post", "put", "delete", "patch", "head", "options", "trace"];
        for one in m.split(',').map(|x| x.trim().to_ascii_lowercase()) {
            if !METHODS.contains(&one.as_str()) {
                return Err(format!("--methods: {one:?} is not one of {}", METHODS.join(", ")));
            }
        }
    }
    if let Some(q) = opts.get("queue").filter(|q| !setting(q)) {
        // Storage queue names; Service Bus allows more, but these are safe for both.
        let ok = (3..=63).contains(&q.len())
            && q.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !q.starts_with('-')
            && !q.ends_with('-')
            && !q.contains("--");
        if !ok {
            return Err(format!(
                "--queue {q:?} is not a queue name: 3 to 63 lowercase letters, digits and single dashes, or %SETTING%"
            ));
        }
    }
    if kind == "timer"
        && let Some(text) = opts.get("schedule").filter(|t| !setting(t))
    {
        crate::host::schedule::Schedule::parse(text).map_err(|e| format!("--schedule {text:?}: {e}"))?;
    }
    if kind == "blob"
        && let Some(p) = opts.get("path")
        && !p.contains('/')
    {
        return Err(format!("--path {p:?} should be container/pattern, such as invoices/{{name}}"));
    }
    Ok(())
}

fn is_keyword(word: &str) -> bool {
    [
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
        "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
        "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become",
        "box", "do", "final", "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
    ]
    .contains(&word)
}

/// `code` as rustfmt formats it in the app in `root` (its rustfmt.toml and its edition), through
/// stdin, so that no other file is touched; `code` as it is when rustfmt is missing or fails.
fn rustfmt(root: &Path, code: &str) -> String {
    use std::io::Write as _;
    let edition = fs::read_to_string(root.join("Cargo.toml"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "edition").then(|| v.trim().trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "2021".to_owned());
    let child = std::process::Command::new("rustfmt")
        .args(["--edition", &edition, "--emit", "stdout"])
        .current_dir(root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("warning: rustfmt was not found; run `cargo fmt` after `new`");
        return code.to_owned();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(code.as_bytes());
    }
    match child.wait_with_output() {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            String::from_utf8(out.stdout).unwrap_or_else(|_| code.to_owned())
        }
        _ => code.to_owned(),
    }
}

/// Adds an orchestrator or an activity (`kind`) to `src/functions/orchestrations/`, setting up the
/// durable functions the first time.
fn new_durable(root: &Path, kind: &str, name: &str) -> Result<Vec<String>, String> {
    let module = snake(name);
    let dir = root.join("src/functions/orchestrations");
    let durable_mod = dir.join("mod.rs");
    let module_file = dir.join(format!("{module}.rs"));
    let functions_mod = root.join("src/functions/mod.rs");
    let app_registry = fs::read_to_string(&functions_mod)
        .map_err(|e| format!("cannot read {}: {e} (run `new` from the app's root)", functions_mod.display()))?;
    if module_file.exists() {
        return Err(format!("src/functions/orchestrations/{module}.rs already exists"));
    }
    if app_registry.lines().any(|l| is_mod_line(l, &module)) {
        return Err(format!("src/functions/mod.rs already has a module `{module}`: choose another name"));
    }
    let first = !durable_mod.exists();
    if first {
        // Set up by hand, or elsewhere: not ours to rewrite.
        let taken = DURABLE_FUNCTIONS.iter().find(|f| root.join("functions").join(f).exists());
        if app_registry.lines().any(|l| is_mod_line(l, "orchestrations")) || app_registry.contains(".durable(") {
            return Err(
                "src/functions/mod.rs already has durable functions, but not in src/functions/orchestrations/mod.rs: \
                        add the orchestrator or activity to its registry by hand"
                    .to_owned(),
            );
        }
        if let Some(f) = taken {
            return Err(format!(
                "functions/{f} already exists: add the orchestrator or activity to the app's registry by hand"
            ));
        }
    }
    let existing =
        if first { DURABLE_MOD.to_owned() } else { fs::read_to_string(&durable_mod).map_err(|e| e.to_string())? };
    if existing.contains(&format!("(\"{name}\",")) {
        return Err(format!("an orchestrator or activity named {name:?} is already registered"));
    }
    let call = if kind == "orchestrator" {
        format!(".orchestrator(\"{name}\", {module}::{module})")
    } else {
        format!(".activity(\"{name}\", {module}::{module})")
    };
    let lines =
        insert_mod(&existing, &module, "pub mod ").unwrap_or_else(|| existing.lines().map(str::to_owned).collect());
    let lines = if lines.iter().any(|l| l.starts_with("pub mod ")) {
        lines
    } else {
        // The first module: before the `use` line.
        let mut lines = lines;
        let at = lines.iter().position(|l| l.starts_with("use ")).unwrap_or(lines.len());
        lines.insert(at, String::new());
        lines.insert(at, format!("pub mod {module};"));
        lines
    };
    let registry = extend_chain(&lines, &["Registry::new()", ".orchestrator(", ".activity("], &call)
        .ok_or("src/functions/orchestrations/mod.rs has no `Registry::new()` chain to extend")?;
    let registry = rustfmt(root, &registry);
    // The app itself, the first time: the module and the durable functions.
    let app = if first {
        let lines = insert_mod(&app_registry, "orchestrations", "mod ")
            .ok_or("src/functions/mod.rs has no `mod …;` lines to extend")?;
        Some(
            extend_chain(&lines, &[".function("], ".durable(orchestrations::registry())")
                .ok_or("src/functions/mod.rs has no `.function(…)` chain to extend")?,
        )
    } else {
        None
    };
    let app = app.map(|a| rustfmt(root, &a));
    let code = if kind == "orchestrator" { orchestrator_module(name, &module) } else { activity_module(name, &module) };
    let code = rustfmt(root, &code);

    let mut written = Vec::new();
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Some(app) = app {
        for (function, json) in durable_functions() {
            let fdir = root.join("functions").join(function);
            fs::create_dir_all(&fdir).map_err(|e| format!("cannot create {}: {e}", fdir.display()))?;
            let text = serde_json::to_string_pretty(&json).expect("a Value serializes") + "\n";
            fs::write(fdir.join("function.json"), text).map_err(|e| e.to_string())?;
            written.push(format!("functions/{function}/function.json"));
        }
        fs::write(&functions_mod, app).map_err(|e| e.to_string())?;
        written.push("src/functions/mod.rs".to_owned());
    }
    fs::write(&module_file, code).map_err(|e| e.to_string())?;
    fs::write(&durable_mod, registry).map_err(|e| e.to_string())?;
    written.push(format!("src/functions/orchestrations/{module}.rs"));
    written.push("src/functions/orchestrations/mod.rs".to_owned());
    Ok(written)
}

/// The durable functions `App::durable` serves.
const DURABLE_FUNCTIONS: [&str; 4] = ["Orchestrators", "DurableControl", "DurableWork", "Dashboard"];

/// The function.json of the durable functions `App::durable` serves.
fn durable_functions() -> [(&'static str, serde_json::Value); 4] {
    let queue = |q: &str| json!({"bindings": [{"type": "queueTrigger", "direction": "in", "name": "message", "queueName": q, "connection": "AzureWebJobsStorage"}]});
    [
        (
            "Orchestrators",
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["get", "post", "delete"], "route": "orchestrators/{*path}"},
                {"type": "http", "direction": "out", "name": "res"}
            ]}),
        ),
        ("DurableControl", queue("azfn-control")),
        ("DurableWork", queue("azfn-work")),
        (
            "Dashboard",
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["get"], "route": "dashboard/{*path}"},
                {"type": "http", "direction": "out", "name": "res"}
            ]}),
        ),
    ]
}

const DURABLE_MOD: &str = "//! The app's orchestrations and activities, served by `App::durable`: started with
//! `POST /api/orchestrators/{name}`, watched with `GET /api/orchestrators/instances/{id}`.

use azfn::durable::Registry;

/// Every orchestrator and activity of the app.
pub fn registry() -> Registry {
    Registry::new()
}
";

fn orchestrator_module(name: &str, module: &str) -> String {
    format!(
        r#"//! `{name}`: an orchestration. Start it with
//! `curl -X POST http://127.0.0.1:7071/api/orchestrators/{name} -d '"world"'`.

use azfn::durable::{{OrchestrationContext, TaskError}};

/// Replayed from its history after every step: only deterministic code here; do the work in
/// activities (`ctx.call_activity`).
pub async fn {module}(ctx: OrchestrationContext, name: Option<String>) -> Result<String, TaskError> {{
    let name = name.unwrap_or_else(|| "world".to_owned());
    ctx.log(format_args!("{name} started for {{name}}"));
    Ok(format!("{name} done for {{name}}"))
}}

#[cfg(test)]
mod tests {{
    #[test]
    fn is_registered() {{
        let names = super::super::registry().orchestrator_names();
        assert!(names.iter().any(|n| n == "{name}"), "{{names:?}}");
    }}

    /// Histories recorded from instances that ran (`curl
    /// 'http://127.0.0.1:7071/api/orchestrators/instances/<id>?showHistory=true' >
    /// histories/{name}/<id>.json`) replay on the current code: a change to steps that instances in
    /// flight have recorded fails here. Register such a change as a new version instead
    /// (`Registry::orchestrator_version`), and keep the old code until no instance runs it.
    #[test]
    fn recorded_histories_replay() {{
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("histories/{name}");
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {{
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {{
                let text = std::fs::read_to_string(&path).unwrap();
                let recorded: serde_json::Value = serde_json::from_str(&text).unwrap();
                azfn::durable::testing::replay_check(&super::super::registry(), &recorded)
                    .unwrap_or_else(|e| panic!("{{}}: {{e}}", path.display()));
            }}
        }}
    }}
}}
"#
    )
}

fn activity_module(name: &str, module: &str) -> String {
    format!(
        r#"//! `{name}`: an activity, the unit of work an orchestration calls with
//! `ctx.call_activity("{name}", &input)`. It may run more than once for one call (delivery is at
//! least once), so make it idempotent.

use azfn::durable::ActivityContext;

/// Does the work; an `Err` fails the call in the orchestration (which may retry it).
pub async fn {module}(_ctx: ActivityContext, input: String) -> Result<String, String> {{
    if input.is_empty() {{
        return Err("{name} needs a non-empty input".to_owned());
    }}
    Ok(format!("{name}: {{input}}"))
}}
"#
    )
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

fn starter_handler(name: &str, module: &str, route: &str, orchestrator: &str) -> String {
    format!(
        r#"//! `{name}`: starts the `{orchestrator}` orchestration. `POST /api/{route}` with its input as JSON
//! answers 202 with the instance's management URLs (`statusQueryGetUri` gives its status and output).

use azfn::durable::api::error_response;
use azfn::{{Context, HttpRequest, HttpResponse}};

/// Starts `{orchestrator}` with the request's JSON body as its input (`null` when there is none).
pub async fn {module}(req: HttpRequest, ctx: Context) -> Result<HttpResponse, azfn::Error> {{
    let input: serde_json::Value = if req.body.is_empty() {{ serde_json::Value::Null }} else {{ req.json()? }};
    match ctx.durable().start_new("{orchestrator}", input).await {{
        Ok(instance_id) => {{
            tracing::info!(%instance_id, "started {orchestrator}");
            Ok(ctx.durable().check_status_response(&req, &instance_id))
        }}
        // 400 for an input the orchestrator does not take, 500 when storage failed.
        Err(e) => Ok(error_response(&e)),
    }}
}}

#[cfg(test)]
mod tests {{
    use super::*;
    use azfn::durable::RuntimeStatus;
    use azfn::testing::DurableRecorder;
    use serde_json::json;

    #[tokio::test]
    async fn starts_{module}_and_answers_with_its_urls() {{
        // The request as the host sends it; the body is the orchestration's input.
        let req: HttpRequest = azfn::testing::trigger(
            "{name}",
            json!({{"Url": "http://localhost:7071/api/{route}", "Method": "POST", "Query": {{}},
                   "Headers": {{"Content-Type": ["application/json"]}}, "Body": "\"Ada\""}}),
            json!({{}}),
        );
        // Runs the orchestration in process, with its real activities, instead of on storage.
        let durable = DurableRecorder::running(crate::functions::orchestrations::registry());
        let res = {module}(req, durable.context("{name}")).await.unwrap();
        assert_eq!(res.status, 202);
        let (orchestrator, id, input) = durable.started().remove(0);
        assert_eq!((orchestrator.as_str(), input), ("{orchestrator}", json!("Ada")));
        assert!(res.header_value("location").unwrap().ends_with(&format!("/api/orchestrators/instances/{{id}}")));
        let status = durable.context("{name}").durable().status(&id).await;
        assert_eq!(status.unwrap().runtime_status, RuntimeStatus::Completed);
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
        let sorted = register(src, "Aa", "aa").unwrap();
        assert!(sorted.starts_with("mod a;\nmod aa;\nmod b;\n"), "{sorted}");
        // A chain rustfmt joined into one line is split before its first link.
        let joined = "mod hello;\n\npub fn app() -> App {\n    App::new().function(\"Hello\", hello::hello)\n}\n";
        let grown = register(joined, "Ping", "ping").unwrap();
        assert!(
            grown.contains(
                "    App::new()\n        .function(\"Hello\", hello::hello)\n        .function(\"Ping\", ping::ping)\n}"
            ),
            "{grown}"
        );
        assert!(register("fn main() {}", "X", "x").is_err());
    }

    #[test]
    fn a_chain_that_ends_a_statement_keeps_its_semicolon() {
        let src = "mod a;\n\nfn app() -> App {\n    let app = App::new().function(\"A\", a::a);\n    app\n}\n";
        let out = register(src, "B", "b").unwrap();
        assert!(out.contains("        .function(\"A\", a::a)\n        .function(\"B\", b::b);\n    app\n"), "{out}");
    }

    #[test]
    fn names_and_options_that_would_not_build_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("src/functions")).unwrap();
        let registry = "mod hello;\n\npub fn app() -> App {\n    App::new().function(\"Hello\", hello::hello)\n}\n";
        fs::write(root.join("src/functions/mod.rs"), registry).unwrap();
        let opts =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Options>();
        for (kind, name, o, expect) in [
            ("http", "Azfn", opts(&[]), "taken"),
            ("queue", "Test_support", opts(&[]), "taken"),
            ("http", "Quote", opts(&[("route", "a\"b")]), "quotes"),
            ("http", "Verbs", opts(&[("methods", "get,fetch")]), "--methods"),
            ("queue", "Bad", opts(&[("queue", "Has_Upper")]), "not a queue name"),
            ("timer", "Tick", opts(&[("schedule", "every minute")]), "--schedule"),
            ("blob", "Files", opts(&[("path", "nocontainer")]), "container/pattern"),
        ] {
            let err = new_function(root, kind, name, &o).unwrap_err();
            assert!(err.contains(expect), "{kind} {name}: {err}");
        }
        assert_eq!(fs::read_to_string(root.join("src/functions/mod.rs")).unwrap(), registry);
        assert!(!root.join("functions").exists());
    }

    #[test]
    fn output_bindings_are_added_with_how_to_write_them() {
        let bindings = json!([{"type": "queueTrigger", "direction": "in", "name": "message", "queueName": "q"}]);
        let handler = "//! `X`: handles a message.\n\nuse azfn::Context;\n";
        let (b, h) = with_outputs(
            bindings.clone(),
            handler,
            "queue:ship-notices;blob:receipts/{rand-guid}.json;table:orders",
            "C",
        )
        .unwrap();
        assert_eq!(
            b[1],
            json!({"type": "queue", "direction": "out", "name": "shipNotices", "queueName": "ship-notices", "connection": "C"})
        );
        assert_eq!(b[2]["path"], "receipts/{rand-guid}.json");
        assert_eq!(b[3]["tableName"], "orders");
        assert!(h.contains("//! - `shipNotices`: messages to the queue `ship-notices`, with `ctx.send_json(\"shipNotices\", &value)?`"), "{h}");
        assert!(h.starts_with("//! `X`: handles a message.\n//!\n//! Outputs"), "{h}");
        for bad in ["queue", "blob:nocontainer", "cosmos:x", "queue:message"] {
            assert!(with_outputs(bindings.clone(), handler, bad, "C").is_err(), "{bad}");
        }
    }

    #[test]
    fn starts_finds_an_orchestrator_whose_registration_rustfmt_split() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("src/functions/orchestrations")).unwrap();
        let registry = "pub fn registry() -> Registry {\n    Registry::new().orchestrator(\n        \"ApproveLargePurchaseOrders\",\n        approve::approve,\n    )\n}\n";
        fs::write(dir.path().join("src/functions/orchestrations/mod.rs"), registry).unwrap();
        assert!(check_orchestrator(dir.path(), "ApproveLargePurchaseOrders").is_ok());
        assert!(check_orchestrator(dir.path(), "Approve").is_err());
    }
}
