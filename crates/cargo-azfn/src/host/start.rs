//! `cargo azfn start`: build the app, stage it and run it, under Core Tools' `func start` when it
//! is on PATH, or under the built-in host.
//!
//! The port is taken and the storage checked (Azurite started) before anything is built or staged.
//! With `--watch` ([`super::watch`]), a change under `src/` rebuilds the handler and swaps it
//! ([`Worker::swap`]: requests in flight are answered first, new ones wait); a change under
//! `functions/` or to host.json restarts the host on the same port once the work in flight is
//! done. Queue messages stay on their queues meanwhile, and durable work is itself queue messages.
//!
//! The built-in host reads host.json, `local.settings.json` (the environment wins) and every
//! function.json; starts the handler as the real host does ([`super::worker`]); serves the HTTP
//! triggers and the admin endpoint ([`super::front`]); and runs the queue, blob and timer
//! triggers ([`super::queue_listener`], [`super::blob_listener`], [`super::timer_listener`]).
//! Service Bus and Event Grid functions run through the admin endpoint.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::bindings::Bindings;
use super::blob_events;
use super::blob_listener::{self, BlobOptions, BlobTrigger};
use super::console::Console;
use super::front::{self, Front};
use super::invoker::Invoker;
use super::queue_listener::{self, QueueOptions, QueueTrigger};
use super::routes::RouteTable;
use super::schedule::Schedule;
use super::settings::Settings;
use super::timer_listener::{self, TimerTrigger};
use super::worker::{Worker, WorkerConfig};
use crate::cargo_build::BuildOptions;
use azfn::function_json::AppMetadata;

/// Where the handler binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerSource {
    /// Built with `cargo build` in the app's root (again on each change under `--watch`).
    Cargo(BuildOptions),
    /// This binary, already built.
    Prebuilt(PathBuf),
}

/// `cargo azfn start` options.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The app root (holds host.json, local.settings.json and functions/).
    pub root: PathBuf,
    /// The HTTP port (default 7071; 0 picks a free one).
    pub port: u16,
    /// Use the built-in host even when `func` is on PATH.
    pub builtin: bool,
    /// Rebuild and swap the handler when the app's sources change.
    pub watch: bool,
    /// Enforce function keys as Azure does (built-in host; see [`super::keys`]).
    pub keys: bool,
    /// The handler binary, or how to build it.
    pub handler: HandlerSource,
}

/// A folder removed when dropped.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the staging folders under `temp` whose `cargo azfn start` is no longer running (it was killed
/// before it could clean up).
fn remove_stale_stages(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with("azfn-start-") {
            continue;
        }
        let owner = std::fs::read_to_string(path.join(OWNER_FILE)).ok().and_then(|t| t.trim().parse::<u32>().ok());
        if owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Runs `cargo azfn start`.
pub fn start(opts: StartOptions) -> ExitCode {
    let console = Console::new();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            console.error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let mut opts = opts;
    if opts.keys && !opts.builtin && find_on_path("func").is_some() {
        console.info("--keys runs the app under azfn's built-in host (Core Tools does not check keys)");
        opts.builtin = true;
    }
    if opts.watch && !opts.builtin && find_on_path("func").is_some() {
        console.info("--watch runs the app under azfn's built-in host (Core Tools cannot swap a handler)");
        opts.builtin = true;
    }
    // Azurite outlives a restart of the host under --watch: its queues hold the work in flight.
    let mut session = Session { azurite: None, port: opts.port };
    let mut reloaded = false;
    loop {
        match runtime.block_on(run(&opts, console, &mut session)) {
            Ok(Ended::Stopped) => return ExitCode::SUCCESS,
            Ok(Ended::Reload) => {
                console.info("function.json or host.json changed: restarting the host");
                reloaded = true;
            }
            // A reload that cannot start (a bad schedule, a route conflict...) waits for the next
            // change instead of ending the session and the Azurite that holds its queues.
            Err(e) if reloaded => {
                console.error(&format!("{e}; fix it and save: the host starts again on the next change"));
                match runtime.block_on(next_change(&opts.root)) {
                    Ok(true) => {}
                    Ok(false) => return ExitCode::SUCCESS,
                    Err(e) => {
                        console.error(&e);
                        return ExitCode::from(1);
                    }
                }
            }
            Err(e) => {
                console.error(&e);
                return ExitCode::from(1);
            }
        }
    }
}

/// What lasts across restarts of the host under `--watch`.
struct Session {
    /// The Azurite this session started, if any.
    azurite: Option<super::azurite::LocalAzurite>,
    /// The port: the one asked for, then the one bound (so that `--port 0` keeps its port).
    port: u16,
}

/// Waits for a change to the app (`true`) or Ctrl-C (`false`).
async fn next_change(root: &Path) -> Result<bool, String> {
    let mut changes = super::watch::watch(root)?;
    tokio::select! {
        c = changes.recv() => Ok(c.is_some()),
        _ = shutdown_signal() => Ok(false),
    }
}

/// Why [`run`] returned.
enum Ended {
    /// Ctrl-C or SIGTERM.
    Stopped,
    /// `--watch` saw a change that needs a new host (function.json, host.json).
    Reload,
}

/// The file in a staging folder that names the `cargo azfn start` process it belongs to.
const OWNER_FILE: &str = "owner.pid";

fn stage(opts: &StartOptions, binary: &Path) -> Result<(Scratch, PathBuf), String> {
    remove_stale_stages(&std::env::temp_dir());
    let dir = std::env::temp_dir().join(format!("azfn-start-{}", uuid::Uuid::new_v4()));
    let scratch = Scratch(dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string());
    let app_dir = dir.join("app");
    crate::package::lay_out(&opts.root, binary, &app_dir, false, None)?;
    Ok((scratch, app_dir))
}

/// The handler binary: built now (Cargo's own output on the console), or the prebuilt one.
async fn handler_binary(opts: &StartOptions, meta: &AppMetadata, console: Console) -> Result<PathBuf, String> {
    match &opts.handler {
        HandlerSource::Prebuilt(p) => Ok(p.clone()),
        HandlerSource::Cargo(build) => {
            let mut build = build.clone();
            build.bin = build.bin.or_else(|| meta.host.executable.clone());
            console.info("building the handler (cargo build)");
            let root = opts.root.clone();
            tokio::task::spawn_blocking(move || crate::cargo_build::build(&root, &build))
                .await
                .map_err(|e| format!("the build task failed: {e}"))?
        }
    }
}

async fn run(opts: &StartOptions, console: Console, session: &mut Session) -> Result<Ended, String> {
    // One signal listener for the whole run: a Ctrl-C during a build or a swap is not lost.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let meta = AppMetadata::load(&opts.root).map_err(|e| e.to_string())?;
    if !opts.root.join("host.json").is_file() {
        return Err(format!("{} has no host.json: run `cargo azfn start` in the app's root", opts.root.display()));
    }
    // The port first: a second `cargo azfn start` on a taken port stops here, before it builds or
    // stages anything.
    let listener = bind(session.port).await?;
    if !opts.builtin
        && let Some(func) = find_on_path("func")
    {
        drop(listener);
        let binary = handler_binary(opts, &meta, console).await?;
        super::super::package::check_handler(&binary, &opts.root).map_err(|e| format!("the app cannot start: {e}"))?;
        return run_func(opts, &binary, &func, console).await.map(|()| Ended::Stopped);
    }
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    session.port = port;
    super::console::set_dashboard_url(format!("http://127.0.0.1:{port}/api/dashboard"));
    let settings = Settings::load(&opts.root)?;
    let meta = resolve_app_settings(meta, &settings)?;
    let (meta, notes) = apply_host_json(meta)?;
    for note in notes {
        console.warn(&note);
    }
    // The host stops at startup on a functionTimeout it does not accept (issue 28 #13).
    super::invoker::function_timeout(meta.host.function_timeout.as_ref(), std::env::var("WEBSITE_SKU").ok().as_deref())
        .map_err(|e| format!("host.json: {e} The Functions host does not start with this value."))?;
    let host_doc: Value = std::fs::read_to_string(opts.root.join("host.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);

    // Storage: start Azurite when the app uses the development storage and none is running.
    let bindings = Arc::new(Bindings::new(settings.clone()));
    let uses_storage = meta.functions.values().any(|f| {
        f.json
            .bindings
            .iter()
            .any(|b| ["queueTrigger", "blobTrigger", "queue", "blob", "table"].iter().any(|t| b.is_type(t)))
    });
    match (uses_storage, bindings.clients("AzureWebJobsStorage")) {
        (false, _) => {}
        (true, Err(e)) => console.warn(&format!("storage triggers and bindings will fail: {e}")),
        (true, Ok(c)) if session.azurite.is_some() => console
            .info(&format!("storage: the Azurite started before ({})", c.account.queue.clone().unwrap_or_default())),
        (true, Ok(c)) => {
            let started = super::azurite::ensure(&opts.root, &c.account).await?;
            let endpoint = c.account.queue.clone().unwrap_or_default();
            let development = settings
                .get("AzureWebJobsStorage")
                .is_some_and(|v| v.replace(' ', "").eq_ignore_ascii_case("UseDevelopmentStorage=true"));
            match (&started, development) {
                (Some(_), _) => console.info(&format!(
                    "storage: started Azurite (in memory) for AzureWebJobsStorage=UseDevelopmentStorage=true ({endpoint})"
                )),
                (None, true) => console.warn(&format!(
                    "storage: an Azurite was already running ({endpoint}); this app shares its queues, tables and \
                     blobs with whatever else uses it"
                )),
                (None, false) => console.info(&format!("storage: {endpoint}")),
            }
            session.azurite = started;
        }
    }

    // Then the handler: built, checked against the function.json files, staged.
    let binary = handler_binary(opts, &meta, console).await?;
    super::super::package::check_handler(&binary, &opts.root).map_err(|e| format!("the app cannot start: {e}"))?;
    let (scratch, app_dir) = stage(opts, &binary)?;
    console.info(&format!("azfn built-in Functions host; app staged in {}", app_dir.display()));

    let exe = meta.host.executable.clone().unwrap_or_else(|| "handler".to_owned());
    let description = &host_doc["customHandler"]["description"];
    let args: Vec<String> = description["arguments"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let work_dir = description["workingDirectory"].as_str().filter(|d| !d.is_empty()).map(|d| app_dir.join(d));
    let worker = Worker::start(
        WorkerConfig {
            program: app_dir.join(&exe),
            args,
            dir: work_dir.unwrap_or_else(|| app_dir.clone()),
            app_root: app_dir.clone(),
            env: settings.missing_from_env(),
        },
        console,
    )
    .await?;
    let mut fatal = worker.fatal.clone();
    let invoker = Arc::new(Invoker::new(meta.clone(), bindings.clone(), worker.clone(), console));

    // A disabled function keeps its route (the request gets a 404 there, not another function's
    // answer), as in Azure, where the route is registered and the invocation refused.
    let routes = RouteTable::new(&meta.host.route_prefix, meta.functions.values())?;
    for (function, why) in &routes.errors {
        console.error(&format!(
            "function {function} is in error, as the Functions host would put it: {why} It is not routed."
        ));
    }
    // Outputs the built-in host has no client for are said at start, not first at an invocation.
    for spec in meta.functions.values() {
        for b in spec.outputs() {
            let known = ["http", "queue", "blob", "table"].iter().any(|t| b.is_type(t));
            if !known {
                console.warn(&format!(
                    "{}: output `{}` is a `{}` binding, which the built-in host cannot write: an invocation that \
                     sets it fails here (Azure writes it); run the app under `func start` to use it",
                    spec.name, b.name, b.binding_type
                ));
            }
        }
    }
    let (stop_tx, stop) = watch::channel(false);

    // The storage extensions size themselves by the processor count: 1 on Consumption.
    let processors = queue_listener::processor_count(settings.get("WEBSITE_SKU").as_deref());
    let mut queue_opts = QueueOptions::from_host_json(&host_doc, processors)?;
    if let Some(lease) = settings.get("AZFN_QUEUE_LEASE") {
        queue_opts.lease = super::queue_listener::parse_timespan(&Value::String(lease.clone()))
            .filter(|l| *l >= Duration::from_secs(2))
            .ok_or_else(|| {
                format!("AZFN_QUEUE_LEASE {lease:?} should be a time span of 2 s or more, such as \"00:00:30\"")
            })?;
    }
    // Timer schedules follow WEBSITE_TIME_ZONE (or TZ) when set: an IANA name on Linux. A TZ that
    // is not a zone name (a shell's `:/etc/localtime`, say) is ignored.
    let time_zone = match settings.get("WEBSITE_TIME_ZONE").filter(|z| !z.trim().is_empty()) {
        Some(name) => Some(name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
            format!(
                "WEBSITE_TIME_ZONE {name:?} is not a time zone name; on Linux use an IANA name such as \"Europe/Paris\""
            )
        })?),
        None => settings.get("TZ").and_then(|z| z.trim().parse::<chrono_tz::Tz>().ok()),
    };
    let blob_opts = BlobOptions::from_host_json(&host_doc, processors)?;
    // One cap for every blob trigger of the app: the extension runs them all through one shared
    // queue listener per host (BlobListenerFactory.CreateAsync, `GetOrCreateInstance<SharedBlobQueueListener>`).
    let blob_permits = Arc::new(tokio::sync::Semaphore::new(blob_opts.max_degree_of_parallelism));
    let mut blob_webhook = std::collections::BTreeMap::new();
    let mut flex_note = false;
    let host_id = settings.get("AzureFunctionsWebHost__hostid").unwrap_or_else(|| host_id_for(&opts.root));

    println!("\nFunctions:\n");
    for spec in meta.functions.values() {
        let t = spec.trigger();
        let ty = t.binding_type.to_ascii_lowercase();
        if settings.is_disabled(&spec.name) {
            println!("    {}: disabled (AzureWebJobs.{}.Disabled)", spec.name, spec.name);
            continue;
        }
        let connection = t.property("connection").unwrap_or("AzureWebJobsStorage").to_owned();
        match ty.as_str() {
            "httptrigger" => {}
            "queuetrigger" => {
                let queue = t.property("queueName").unwrap_or_default().to_owned();
                println!("    {}: queueTrigger on {queue:?}", spec.name);
                let binary = t.data_type.as_deref().is_some_and(|d| d.eq_ignore_ascii_case("binary"));
                let trig =
                    QueueTrigger { function: spec.name.clone(), binding: t.name.clone(), queue, connection, binary };
                tokio::spawn(queue_listener::listen(invoker.clone(), trig, queue_opts.clone(), stop.clone()));
            }
            "blobtrigger" => {
                let path = t.property("path").unwrap_or_default().to_owned();
                let event_grid = t.property("source").is_some_and(|v| v.eq_ignore_ascii_case("EventGrid"));
                let trig = BlobTrigger {
                    function: spec.name.clone(),
                    binding: t.name.clone(),
                    path: path.clone(),
                    connection,
                    host_id: host_id.clone(),
                    max_attempts: blob_opts.poison_blob_threshold,
                    interval: Duration::from_secs(1),
                    permits: blob_permits.clone(),
                };
                if !event_grid && settings.get("WEBSITE_SKU").is_some_and(|s| s.trim() == "FlexConsumption") {
                    // azure-functions-host ScriptHost.ValidateFunction (89dc438, ScriptHost.cs line 903):
                    // on Flex Consumption a blob trigger that scans is put in error.
                    console.error(&format!(
                        "function {} is in error, as the Functions host would put it: The Flex Consumption SKU only \
                         supports EventGrid as the source for BlobTrigger functions. Please update function '{}' to use \
                         EventGrid. For more information see https://aka.ms/blob-trigger-eg.",
                        spec.name, spec.name
                    ));
                    continue;
                }
                if !event_grid {
                    flex_note = true;
                }
                if event_grid {
                    // BlobListenerFactory.CreateAsync: "we do not need to create SharedBlobListener for
                    // EventGrid blob trigger": no scan; the Event Grid subscription posts to the
                    // extension's webhook.
                    println!(
                        "    {}: blobTrigger on {path:?} from Event Grid (not scanned; Event Grid delivers to \
                         http://127.0.0.1:{port}{}?functionName=Host.Functions.{})",
                        spec.name,
                        super::blob_listener::WEBHOOK_PATH,
                        spec.name
                    );
                    blob_webhook.insert(spec.name.to_ascii_lowercase(), trig);
                } else {
                    println!("    {}: blobTrigger on {path:?}", spec.name);
                    tokio::spawn(blob_listener::listen(invoker.clone(), trig, stop.clone()));
                }
            }
            "timertrigger" => {
                let text = t.property("schedule").unwrap_or_default();
                let text = expand_setting(text, &settings);
                let schedule = Schedule::parse(&text).map_err(|e| format!("{}: schedule {text:?}: {e}", spec.name))?;
                let run_on_startup = t.value("runOnStartup").and_then(Value::as_bool).unwrap_or(false);
                let use_monitor = t.value("useMonitor").and_then(Value::as_bool).unwrap_or(true);
                let trig = TimerTrigger {
                    function: spec.name.clone(),
                    binding: t.name.clone(),
                    schedule,
                    run_on_startup,
                    use_monitor,
                    host_id: host_id.clone(),
                    time_zone,
                };
                let next =
                    trig.next_after(chrono::Utc::now()).map(|n| n.to_rfc3339()).unwrap_or_else(|| "never".into());
                let zone = time_zone.map_or_else(|| "UTC".to_owned(), |z| z.name().to_owned());
                println!(
                    "    {}: timerTrigger {text:?} in {zone}, next at {next}{}",
                    spec.name,
                    if run_on_startup { " (runOnStartup)" } else { "" }
                );
                tokio::spawn(timer_listener::listen(invoker.clone(), trig, stop.clone()));
            }
            "eventgridtrigger" => println!(
                "    {}: eventGridTrigger (Event Grid delivers to http://127.0.0.1:{port}{}?functionName={}; try: curl -X POST \
                 'http://127.0.0.1:{port}{}?functionName={}' -H 'aeg-event-type: Notification' -H 'Content-Type: application/json' \
                 -d '[{{\"id\": \"1\", \"eventType\": \"Demo.Event\", \"subject\": \"demo\", \"eventTime\": \"2026-01-01T00:00:00Z\", \"data\": {{}}, \"dataVersion\": \"1.0\"}}]')",
                spec.name,
                super::event_grid_webhook::PATH,
                spec.name,
                super::event_grid_webhook::PATH,
                spec.name
            ),
            _ => println!(
                "    {}: {} (run it with: curl -X POST http://127.0.0.1:{port}/admin/functions/{} -H 'Content-Type: application/json' -d '{{\"input\": \"...\"}}')",
                spec.name, t.binding_type, spec.name
            ),
        }
    }
    if let Some(text) = settings.get(blob_events::SETTING) {
        let routes = blob_events::parse_routes(&text)?;
        if !routes.is_empty() {
            let clients =
                bindings.clients("AzureWebJobsStorage").map_err(|e| format!("{}: {e}", blob_events::SETTING))?;
            for r in &routes {
                println!("    (Event Grid) BlobCreated in {:?} -> queue {:?}", r.container, r.queue);
            }
            let seen = blob_events::snapshot(&clients, &routes).await;
            tokio::spawn(blob_events::run(clients, routes, seen, Duration::from_secs(1), console, stop.clone()));
        }
    }
    for (function, template, methods) in routes.describe() {
        // A catch-all's URL as one opens it (`api/dashboard`, not `api/dashboard/{*path}`).
        match template.rsplit_once("/{*") {
            Some((base, _)) => {
                println!("    {function}: [{methods}] http://127.0.0.1:{port}/{base} (and the paths below it)")
            }
            None => println!("    {function}: [{methods}] http://127.0.0.1:{port}/{template}"),
        }
    }
    println!();
    if flex_note {
        console.info(
            "a blob trigger without \"source\": \"EventGrid\" scans its container; on Flex Consumption (the plan \
             `cargo azfn init` deploys) the Functions host puts such a function in error: use \"source\": \"EventGrid\" \
             there (WEBSITE_SKU=FlexConsumption shows that here)",
        );
    }
    console.info(&format!("host listening on http://127.0.0.1:{port} (Ctrl-C stops it)"));

    let keys = opts.keys.then(|| {
        let (keys, generated) = super::keys::Keys::from_settings(&settings);
        console.info(&format!(
            "keys are checked (--keys), as in Azure: x-functions-key or ?code=; master key {}, function key {}, \
             Event Grid system key {}{}",
            keys.master,
            keys.function,
            keys.eventgrid,
            if generated.is_empty() {
                String::new()
            } else {
                format!(" ({} generated for this run)", generated.join(", "))
            }
        ));
        keys
    });
    let cors = super::cors::Cors::from_host(&settings.host);
    if let Some(origins) = &settings.host.cors {
        console.info(&format!("CORS (local.settings.json Host.CORS): {origins}"));
    }
    let http = front::HttpOptions::from_host_json(&host_doc)?;
    let front = Arc::new(Front { invoker: invoker.clone(), routes, keys, cors, http, blob_webhook });
    let serve = axum::serve(listener, front::router(front)).with_graceful_shutdown({
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    });
    let server = tokio::spawn(async move { serve.await });

    let mut changes = match (&opts.handler, opts.watch) {
        (HandlerSource::Cargo(_), true) => {
            let rx = super::watch::watch(&opts.root)?;
            console.info("watching src/, functions/ and host.json for changes");
            Some(rx)
        }
        _ => None,
    };
    let ended = loop {
        let change = async {
            match changes.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break Ok(Ended::Stopped),
            r = fatal.wait_for(|f| f.is_some()) => {
                break Err(r.ok().and_then(|f| f.clone()).unwrap_or_else(|| "the handler stopped".to_owned()));
            }
            Some(change) = change => {
                console.info(&format!("{} changed: rebuilding", change.what));
                let built = tokio::select! {
                    b = handler_binary(opts, &meta, console) => {
                        b.and_then(|b| super::super::package::check_handler(&b, &opts.root).map(|()| b))
                    }
                    _ = &mut shutdown => break Ok(Ended::Stopped),
                };
                let binary = match built {
                    Ok(b) => b,
                    Err(e) => {
                        console.error(&format!("{e}; the running handler stays"));
                        continue;
                    }
                };
                if change.app {
                    break Ok(Ended::Reload);
                }
                let target = app_dir.join(&exe);
                let swapped = tokio::select! {
                    r = worker.swap(|| replace_binary(&binary, &target)) => r,
                    _ = &mut shutdown => break Ok(Ended::Stopped),
                };
                match swapped {
                    Ok(()) => console.info("the new handler is serving"),
                    Err(e) => console.error(&format!("the new handler did not start: {e}")),
                }
            }
        }
    };
    console.info("stopping");
    let _ = stop_tx.send(true);
    if matches!(ended, Ok(Ended::Reload)) {
        // The triggers have stopped taking work; let what they took finish before the handler goes.
        invoker.idle(Duration::from_millis(500), Duration::from_secs(60)).await;
    }
    worker.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    drop(scratch);
    ended
}

/// Takes the port (SO_REUSEADDR, so that a restarted host gets it back at once).
async fn bind(port: u16) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e} (choose another with --port)"))
}

/// Puts a new handler binary in place of the staged one: copied beside it, then renamed over it,
/// which works while the old one still runs.
fn replace_binary(binary: &Path, target: &Path) -> Result<(), String> {
    let temp = target.with_extension("new");
    std::fs::copy(binary, &temp).map_err(|e| format!("cannot copy {}: {e}", binary.display()))?;
    std::fs::rename(&temp, target).map_err(|e| format!("cannot replace {}: {e}", target.display()))
}

/// The binding properties in which the host's name resolver replaces `%NAME%` by the app setting
/// NAME (the `[AutoResolve]` and `[AppSetting]`/connection properties of the storage, Service
/// Bus and timer attributes).
const RESOLVED_PROPERTIES: &[&str] = &[
    "queueName",
    "path",
    "tableName",
    "partitionKey",
    "rowKey",
    "filter",
    "take",
    "connection",
    "topicName",
    "subscriptionName",
    "schedule",
];

/// `meta` with `%NAME%` resolved in every binding property the host resolves, anywhere in the
/// value (see [`super::settings::resolve_whole_string`]); a setting that does not exist stops the
/// start, naming the function and property, as it puts the function in error in Azure.
fn resolve_app_settings(mut meta: AppMetadata, settings: &Settings) -> Result<AppMetadata, String> {
    let mut problems = Vec::new();
    for spec in meta.functions.values_mut() {
        for binding in spec.json.bindings.iter_mut() {
            for (key, value) in binding.properties.iter_mut() {
                let Value::String(text) = value else { continue };
                if !text.contains('%') || !RESOLVED_PROPERTIES.iter().any(|p| p.eq_ignore_ascii_case(key)) {
                    continue;
                }
                match super::settings::resolve_whole_string(text, settings) {
                    Ok(resolved) => *text = resolved,
                    Err(e) => problems
                        .push(format!("function {}: binding `{}`, {key} {text:?}: {e}", spec.name, binding.name)),
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(meta)
    } else {
        Err(format!(
            "app settings named in function.json are missing (set them in local.settings.json's Values or the \
             environment):\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// `%NAME%` in a schedule is the app setting NAME, as the timer trigger resolves it.
fn expand_setting(text: &str, settings: &Settings) -> String {
    match text.strip_prefix('%').and_then(|t| t.strip_suffix('%')) {
        Some(name) => settings.get(name).unwrap_or_else(|| text.to_owned()),
        None => text.to_owned(),
    }
}

/// The host id of a local run, as azure-functions-host derives it in
/// src/WebJobs.Script/Host/ScriptHostIdProvider.cs, `GetDefaultHostId`: "When running locally,
/// derive a stable host ID from machine name and root path", `hostId =
/// $"{sanitizedMachineName}-{Math.Abs(Utility.GetStableHash(scriptOptions.ScriptPath))}"`,
/// truncated to 32 characters, `ToLowerInvariant().TrimEnd('-')`. Two apps in folders of the same
/// name get different ids (their timers and blob receipts do not mix), and so do two machines.
fn host_id_for(root: &Path) -> String {
    let machine = machine_name();
    host_id(&machine, &std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()).to_string_lossy())
}

/// `host_id_for` with the machine name and script path given.
fn host_id(machine: &str, script_path: &str) -> String {
    // `Environment.MachineName.Where(char.IsLetterOrDigit)`.
    let machine: String = machine.chars().filter(|c| c.is_alphanumeric()).collect();
    // `Math.Abs` of an `int`; `int.MinValue` has no absolute value in .NET (it throws), taken as is.
    let hash = stable_hash(script_path);
    let id = format!("{machine}-{}", i64::from(hash).abs());
    let id: String = id.chars().take(32).collect();
    id.to_lowercase().trim_end_matches('-').to_owned()
}

/// azure-functions-host src/WebJobs.Script/Utility.cs, `GetStableHash`: `int hash = 23;
/// foreach (char c in value) { hash = (hash * 31) + c; }` in `unchecked` 32-bit arithmetic over
/// the UTF-16 code units.
fn stable_hash(value: &str) -> i32 {
    value.encode_utf16().fold(23i32, |hash, c| hash.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// `Environment.MachineName` on Linux: the host name up to its first dot.
fn machine_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    name.trim().split('.').next().unwrap_or_default().to_owned()
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the staged app under Core Tools: `func start --port N` in the staged folder, with
/// `local.settings.json` copied there.
async fn run_func(opts: &StartOptions, binary: &Path, func: &Path, console: Console) -> Result<(), String> {
    let (_scratch, app_dir) = stage(opts, binary)?;
    let settings = opts.root.join("local.settings.json");
    if settings.is_file() {
        std::fs::copy(&settings, app_dir.join("local.settings.json"))
            .map_err(|e| format!("cannot stage local.settings.json: {e}"))?;
    }
    console.info(&format!(
        "running `func start` (Core Tools, {}) in {}; `--builtin` uses azfn's own host",
        func.display(),
        app_dir.display()
    ));
    let status = tokio::process::Command::new(func)
        .args(["start", "--port", &opts.port.to_string()])
        .current_dir(&app_dir)
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("cannot run {}: {e}", func.display()))?;
    if status.success() { Ok(()) } else { Err(format!("func start ended with {status}")) }
}

/// What host.json decides before the host loads anything (issue 28 #13), as azure-functions-host
/// (89dc438) does:
/// - `functions` keeps only the functions it names, without regard to case
///   (`FunctionMetadataManager.ApplyAllowList`: `allowList.Any(functionName =>
///   functionName.Equals(metadata.Name, StringComparison.CurrentCultureIgnoreCase))`);
/// - an invalid `retry` stops the host (`ScriptJobHostOptionsSetup.Configure` calls
///   `Utility.ValidateRetryOptions(options.Retry)`, line 58, which throws);
/// - without `extensionBundle`, the storage bindings are not loaded in Azure (custom handlers get
///   their extensions from the bundle): a warning here, where the bindings are built in.
///
/// Gives the app and the warnings to show.
fn apply_host_json(mut meta: AppMetadata) -> Result<(AppMetadata, Vec<String>), String> {
    let mut notes = Vec::new();
    super::retry_policy::RetryPolicy::parse(meta.host.retry.as_ref(), "host.json")
        .map_err(|e| format!("{e}. The Functions host does not start with an invalid host.json retry."))?;
    if let Some(allow) = meta.host.functions.clone() {
        let left_out: Vec<String> =
            meta.functions.keys().filter(|name| !allow.iter().any(|a| a.eq_ignore_ascii_case(name))).cloned().collect();
        for name in &left_out {
            meta.functions.remove(name);
        }
        if !left_out.is_empty() {
            notes.push(format!("host.json `functions` leaves out {}: they are not loaded", left_out.join(", ")));
        }
    }
    let storage = meta.functions.values().any(|f| {
        f.json.bindings.iter().any(|b| {
            ["queueTrigger", "blobTrigger", "queue", "blob", "table", "serviceBusTrigger", "eventGridTrigger"]
                .iter()
                .any(|t| b.is_type(t))
        })
    });
    if storage && !meta.host.extension_bundle {
        notes.push(
            "host.json has no extensionBundle: in Azure a custom handler gets its storage, Service Bus and Event Grid \
             bindings from the bundle, so those functions fail there; add \
             \"extensionBundle\": {\"id\": \"Microsoft.Azure.Functions.ExtensionBundle\", \"version\": \"[4.*, 5.0.0)\"}"
                .to_owned(),
        );
    }
    Ok((meta, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `apply_host_json`'s rules, with the lines it quotes.
    #[test]
    fn host_json_functions_retry_and_bundle_are_applied_as_the_host_applies_them() {
        let app = tempfile::tempdir().unwrap();
        let write = |host: &str| std::fs::write(app.path().join("host.json"), host).unwrap();
        for name in ["Ship", "Hello"] {
            std::fs::create_dir_all(app.path().join(format!("functions/{name}"))).unwrap();
        }
        std::fs::write(
            app.path().join("functions/Ship/function.json"),
            r#"{"bindings": [{"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": "ship"}]}"#,
        )
        .unwrap();
        std::fs::write(
            app.path().join("functions/Hello/function.json"),
            r#"{"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req"}, {"type": "http", "direction": "out", "name": "res"}]}"#,
        )
        .unwrap();
        write(r#"{"version": "2.0", "functions": ["hello"]}"#);
        let (meta, notes) = apply_host_json(AppMetadata::load(app.path()).unwrap()).unwrap();
        assert_eq!(meta.functions.keys().collect::<Vec<_>>(), ["Hello"]);
        assert!(notes[0].contains("leaves out Ship"), "{notes:?}");
        // Ship is a storage trigger and there is no bundle.
        write(r#"{"version": "2.0"}"#);
        let (meta, notes) = apply_host_json(AppMetadata::load(app.path()).unwrap()).unwrap();
        assert_eq!(meta.functions.len(), 2);
        assert!(notes.iter().any(|n| n.contains("no extensionBundle")), "{notes:?}");
        write(
            r#"{"version": "2.0", "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}}"#,
        );
        assert!(apply_host_json(AppMetadata::load(app.path()).unwrap()).unwrap().1.is_empty());
        write(r#"{"version": "2.0", "retry": {"strategy": "linear", "maxRetryCount": 1}}"#);
        let err = apply_host_json(AppMetadata::load(app.path()).unwrap()).unwrap_err();
        assert!(err.contains("\"linear\"") && err.contains("does not start"), "{err}");
    }

    /// `ScriptHostIdProvider.GetDefaultHostId` and `Utility.GetStableHash` (azure-functions-host):
    /// `{machine}-{Math.Abs(hash of the script path)}`, at most 32 characters, lowercase. The
    /// hashes are computed by hand from `hash = (hash * 31) + c` starting at 23.
    #[test]
    fn the_local_host_id_is_machine_and_path_hash() {
        assert_eq!(stable_hash(""), 23);
        assert_eq!(stable_hash("a"), 23 * 31 + 97);
        assert_eq!(stable_hash("ab"), (23 * 31 + 97) * 31 + 98);
        assert_eq!(host_id("Dev-Box.01", "ab"), format!("devbox01-{}", (23 * 31 + 97) * 31 + 98));
        // Folders of the same name in two places: two ids.
        assert_ne!(host_id("m", "/home/a/shop"), host_id("m", "/home/b/shop"));
        let long = host_id("averyveryverylongmachinenamethatgoesonandon", "/x");
        assert_eq!(long.len(), 32);
        assert!(!long.ends_with('-'));
    }

    /// `%NAME%` anywhere in a binding property is the app setting NAME (the host's name resolver,
    /// `NameResolverExtensions.ResolveWholeStringCore`); a missing setting stops the start with
    /// the function, binding and property named.
    #[test]
    fn app_settings_in_function_json_are_resolved_everywhere() {
        let app = tempfile::tempdir().unwrap();
        std::fs::write(app.path().join("host.json"), r#"{"version": "2.0"}"#).unwrap();
        std::fs::create_dir_all(app.path().join("functions/Ship")).unwrap();
        std::fs::write(
            app.path().join("functions/Ship/function.json"),
            r#"{"bindings": [
                {"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": "%SHIP_QUEUE%", "connection": "%CONN%"},
                {"type": "blob", "direction": "out", "name": "label", "path": "labels-%ENV%/{rand-guid}.json"}]}"#,
        )
        .unwrap();
        let meta = || AppMetadata::load(app.path()).unwrap();
        let settings =
            Settings::parse(r#"{"Values": {"SHIP_QUEUE": "shipments", "CONN": "Storage2", "ENV": "dev"}}"#).unwrap();
        let resolved = resolve_app_settings(meta(), &settings).unwrap();
        let ship = &resolved.functions["Ship"];
        assert_eq!(ship.trigger().property("queueName"), Some("shipments"));
        assert_eq!(ship.trigger().property("connection"), Some("Storage2"));
        assert_eq!(ship.output("label").unwrap().property("path"), Some("labels-dev/{rand-guid}.json"));
        let err = resolve_app_settings(meta(), &Settings::parse(r#"{"Values": {}}"#).unwrap()).unwrap_err();
        assert!(
            err.contains("function Ship: binding `msg`, queueName \"%SHIP_QUEUE%\": '%SHIP_QUEUE%' does not resolve"),
            "{err}"
        );
    }

    #[test]
    fn staging_folders_of_dead_hosts_are_removed_and_live_ones_kept() {
        let temp = tempfile::tempdir().unwrap();
        let stage = |name: &str, owner: Option<u32>| {
            let dir = temp.path().join(name);
            std::fs::create_dir_all(dir.join("app")).unwrap();
            if let Some(pid) = owner {
                std::fs::write(dir.join(OWNER_FILE), pid.to_string()).unwrap();
            }
            dir
        };
        // A pid far above any this machine hands out is not running.
        let dead = stage("azfn-start-dead", Some(u32::MAX - 1));
        let live = stage("azfn-start-live", Some(std::process::id()));
        let unowned = stage("azfn-start-unowned", None);
        let other = stage("something-else", Some(u32::MAX - 1));
        remove_stale_stages(temp.path());
        assert!(!dead.exists());
        assert!(live.exists() && unowned.exists() && other.exists());
    }
}
