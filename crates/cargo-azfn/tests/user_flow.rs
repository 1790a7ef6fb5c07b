//! `cargo azfn` as a new user runs it: `init` an app in an empty folder, build, test and `start`
//! it, `invoke` it, add functions of every kind with long names, and keep the app rustfmt-clean,
//! clippy-clean and passing its own tests; then `start --watch` swaps an edited handler while a
//! queue message is in flight.
//!
//! The app is built in its own target folder (`target/user-app`, kept between runs), offline, with
//! the workspace's Cargo.lock, so that it uses the versions the workspace was tested with.

#[path = "../../../tests/common/azurite.rs"]
#[allow(dead_code)]
mod azurite;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

fn target_dir() -> PathBuf {
    workspace().join("target/user-app")
}

/// `cargo azfn <args>` in `dir`, with this package's build of the tool.
fn azfn(dir: &Path, args: &[&str]) -> Output {
    azfn_with(Path::new(env!("CARGO_BIN_EXE_cargo-azfn")), dir, args)
}

/// `<tool> azfn <args>` in `dir`, building the app in the shared user-app target folder.
fn azfn_command(tool: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(tool);
    cmd.arg("azfn").args(args).current_dir(dir).env("CARGO_TARGET_DIR", target_dir());
    cmd
}

/// [`azfn_command`] offline (the app keeps to the workspace's locked versions), run to its end.
fn azfn_with(tool: &Path, dir: &Path, args: &[&str]) -> Output {
    azfn_command(tool, dir, args).env("CARGO_NET_OFFLINE", "true").output().unwrap()
}

fn cargo(dir: &Path, args: &[&str]) -> Output {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}

/// A `cargo azfn start` process; SIGTERM and wait on drop.
struct Started {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Started {
    fn new(dir: &Path, extra: &[&str], env: &[(&str, String)]) -> Started {
        let port = free_port();
        let log = dir.join(format!("start-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cargo-azfn"))
            .args(["azfn", "start", "--builtin", "--port", &port.to_string()])
            .args(extra)
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("CARGO_NET_OFFLINE", "true")
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let started = Started { child, port, log };
        started.wait_for("host listening", Duration::from_secs(600));
        started
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.console().contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?} within {within:?}; console:\n{}", self.console());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            // 0 while nothing answers (the host restarting).
            match reqwest::get(&url).await {
                Ok(res) => (res.status().as_u16(), res.text().await.unwrap_or_default()),
                Err(e) => (0, e.to_string()),
            }
        })
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn help_works_on_every_command() {
    for args in [
        &["--help"][..],
        &["init", "--help"],
        &["new", "--help"],
        &["start", "--help"],
        &["invoke", "--help"],
        &["package", "--help"],
        &["completions", "--help"],
        &["--version"],
    ] {
        let out = azfn(Path::new("."), args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    let invoke = String::from_utf8_lossy(&azfn(Path::new("."), &["invoke", "--help"]).stdout).into_owned();
    for trigger in ["HTTP", "queue", "Service Bus", "blob", "timer", "Event Grid"] {
        assert!(invoke.contains(trigger), "invoke --help documents {trigger}:\n{invoke}");
    }
    let bash = azfn(Path::new("."), &["completions", "bash"]);
    assert!(String::from_utf8_lossy(&bash.stdout).contains("complete"), "a bash completion script");
    // Run directly, without Cargo's `azfn` word, it takes the same commands.
    let direct = Command::new(env!("CARGO_BIN_EXE_cargo-azfn")).args(["new", "--help"]).output().unwrap();
    assert!(direct.status.success());
    let bad = azfn(Path::new("."), &["deploy"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_new_app_builds_tests_runs_grows_and_reloads() {
    let home = tempfile::tempdir().unwrap();
    let app = home.path().join("shop-app");

    // init: a new app that builds, passes its own tests and answers under `start` at once.
    let out = azfn(home.path(), &["init", "shop-app"]);
    let text = ok(&out, "init");
    assert!(text.contains("wrote") && app.join("Cargo.toml").is_file());
    std::fs::copy(workspace().join("Cargo.lock"), app.join("Cargo.lock")).unwrap();
    for f in [".gitignore", ".funcignore", "host.json", "local.settings.json", "functions/Hello/function.json"] {
        assert!(app.join(f).is_file(), "{f}");
    }
    let refused = azfn(home.path(), &["init", "shop-app"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    ok(&cargo(&app, &["test"]), "the new app's cargo test");
    {
        let host = Started::new(&app, &[], &[]);
        assert_eq!(host.get("/api/hello?name=Ada"), (200, "Hello, Ada".to_owned()));
        let invoked = azfn(&app, &["invoke", "Hello", "--port", &host.port.to_string(), "--path", "/api/hello"]);
        assert!(ok(&invoked, "invoke Hello").contains("Hello, world"));
    }

    // new: every kind, long names, several in a row; bad input writes nothing.
    let long = "ReconcileOutstandingSupplierInvoicesAcrossEveryWarehouseRegion";
    let adds: &[&[&str]] = &[
        &["http", long, "--route", "reconcile/{id}", "--methods", "get,post", "--auth", "anonymous"],
        &["queue", "ShipNotice", "--queue", "shipments"],
        &["queue", "Bar"],
        &["timer", "NightlyInventorySnapshotForAllTheWarehousesInTheRegion", "--schedule", "0 0 2 * * *"],
        &["blob", "InvoiceArrivedInTheIncomingInvoicesContainer", "--path", "invoices/{name}"],
        &["servicebus", "RefundRequestedByTheCustomerServiceDepartment", "--queue", "refunds"],
        &["eventgrid", "StockLevelChangedInTheWarehouseManagementSystem"],
        &["orchestrator", "ApproveLargePurchaseOrdersForTheEuropeanSubsidiaries"],
        &["activity", "NotifyTheProcurementTeamAboutAnApprovedPurchaseOrder"],
        &["orchestrator", "Ship"],
        &["activity", "Pack"],
    ];
    for args in adds {
        ok(&azfn(&app, &[&["new"][..], args].concat()), &format!("new {args:?}"));
    }
    let registry = std::fs::read_to_string(app.join("src/functions/mod.rs")).unwrap();
    let mods: Vec<&str> = registry.lines().filter(|l| l.starts_with("mod ")).collect();
    let mut sorted = mods.clone();
    sorted.sort();
    assert_eq!(mods, sorted, "mod lines stay in rustfmt's order");
    let before = std::fs::read_to_string(app.join("src/functions/mod.rs")).unwrap();
    for (args, expect) in [
        (&["http", "2fast"][..], "not a valid function name"),
        (&["queue", "shipnotice"][..], "already exists"),
        (&["activity", "Pack"][..], "already exists"),
        (&["queue", "Orchestrators"][..], "taken"),
    ] {
        let out = azfn(&app, &[&["new"][..], args].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expect),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(azfn(&app, &["new", "cron", "Tick"]).status.code(), Some(2), "clap refuses an unknown kind");
    assert_eq!(std::fs::read_to_string(app.join("src/functions/mod.rs")).unwrap(), before);
    assert!(!app.join("functions/2fast").exists() && !app.join("functions/Tick").exists());

    ok(&cargo(&app, &["fmt", "--check"]), "cargo fmt --check");
    ok(&cargo(&app, &["clippy", "--all-targets", "--", "-D", "warnings"]), "cargo clippy");
    let tested = ok(&cargo(&app, &["test"]), "cargo test");
    assert!(tested.contains("ship_notice::tests::") && tested.contains("orchestrations::ship::tests::"), "{tested}");
    // A history recorded by an instance of an earlier `Ship` that called `Pack` first: the app's own
    // test refuses the current code, which no longer does, and says to make it a new version.
    std::fs::create_dir_all(app.join("histories/Ship")).unwrap();
    let recorded = r#"{"instanceId": "s-1", "historyEvents": [
        {"eventType": "ExecutionStarted", "name": "Ship", "input": "o-1"},
        {"eventType": "TaskScheduled", "id": 0, "name": "Pack", "input": "o-1"}]}"#;
    std::fs::write(app.join("histories/Ship/s-1.json"), recorded).unwrap();
    let refused = cargo(&app, &["test", "recorded_histories_replay"]);
    let said = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    assert!(!refused.status.success() && said.contains("register the changed code as a new version"), "{said}");
    std::fs::remove_dir_all(app.join("histories")).unwrap();

    // start --watch against a real Azurite: a queue message in flight during an edit is processed
    // once, and the edited handler answers within seconds.
    let storage = azurite::Azurite::start();
    let slow = "use azfn::{Context, QueueMessage};\n\n/// Takes 25 s per message.\npub async fn ship_notice(message: QueueMessage<serde_json::Value>, _ctx: Context) -> Result<(), azfn::Error> {\n    tokio::time::sleep(std::time::Duration::from_secs(25)).await;\n    tracing::info!(body = %message.body, \"shipped\");\n    Ok(())\n}\n";
    std::fs::write(app.join("src/functions/ship_notice.rs"), slow).unwrap();
    // Poll the queues every 2 s at most (the host's default backs off to a minute).
    let host_json = std::fs::read_to_string(app.join("host.json")).unwrap();
    let host_json =
        host_json.replace("\"http\": {", "\"queues\": { \"maxPollingInterval\": \"00:00:02\" },\n    \"http\": {");
    std::fs::write(app.join("host.json"), host_json).unwrap();
    let host = Started::new(
        &app,
        &["--watch"],
        &[("AzureWebJobsStorage", storage.connection_string()), ("AZFN_QUEUE_LEASE", "00:00:30".to_owned())],
    );
    host.wait_for("watching", Duration::from_secs(10));
    let sent = azfn(&app, &["invoke", "Bar", "--port", &host.port.to_string(), "--data", "\"warm-up\""]);
    ok(&sent, "invoke Bar");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let account = storage.account();
        let queues = azfn::storage::QueueClient::new(&account).unwrap();
        queues.create_queue("shipments").await.unwrap();
        queues.send("shipments", br#"{"order":"o-1"}"#, Duration::ZERO).await.unwrap();
    });
    // Received within one polling interval; it then runs for 25 s, through the rebuild and swap.
    std::thread::sleep(Duration::from_secs(4));
    let hello = std::fs::read_to_string(app.join("src/functions/hello.rs")).unwrap();
    std::fs::write(app.join("src/functions/hello.rs"), hello.replace("\"Hello, {name}\"", "\"Howdy, {name}\""))
        .unwrap();
    host.wait_for("the new handler is serving", Duration::from_secs(300));
    assert_eq!(host.get("/api/hello?name=Ada"), (200, "Howdy, Ada".to_owned()));
    let console = host.console();
    let shipped = console.lines().filter(|l| l.contains("Executed 'ShipNotice'")).collect::<Vec<_>>();
    assert_eq!(shipped.len(), 1, "the message in flight was processed once:\n{console}");
    assert!(shipped[0].contains("Succeeded"), "{console}");
    // The swap waited for it: it finished on the old handler, before the new one served.
    let done = console.find("Executed 'ShipNotice'").unwrap();
    assert!(done < console.find("the new handler is serving").unwrap(), "{console}");

    // A new function (a new function.json) restarts the host on the same port, Azurite kept.
    ok(&azfn(&app, &["new", "http", "Ping", "--route", "ping", "--methods", "get", "--auth", "anonymous"]), "new Ping");
    host.wait_for("restarting the host", Duration::from_secs(300));
    let deadline = Instant::now() + Duration::from_secs(300);
    while host.get("/api/ping").0 != 200 {
        assert!(Instant::now() < deadline, "Ping never answered:\n{}", host.console());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(host.console().matches("storage: started Azurite").count(), 0, "the test's own Azurite is used");
}

/// Three free ports on 127.0.0.1, for an Azurite of the test's own.
fn free_ports() -> [u16; 3] {
    let listeners: Vec<_> = (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
    [ports[0], ports[1], ports[2]]
}

fn http(method: &str, url: &str, body: Option<&str>) -> (u16, String, Option<String>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url).timeout(Duration::from_secs(30));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_owned());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        (status, res.text().await.unwrap(), location)
    })
}

/// What a new user does, from outside the repository: installs the tool, `init`s an app, adds a
/// queue function, a timer, an orchestration with two activities and an HTTP function that starts
/// it through the handler's durable client; unit-tests that handler without storage; runs the app
/// under `cargo azfn start` with an Azurite that the tool itself finds or installs (its tool cache);
/// invokes each function and sees the orchestration complete; and packages a zip that
/// scripts/check-package accepts (the generated infra/, azure.yaml and workflow are checked by
/// scripts/check-app-files, which needs checkov and actionlint).
#[test]
fn a_users_own_app_from_init_to_a_deployable_zip() {
    let home = tempfile::tempdir().unwrap();

    // Install the tool as the README says (`--debug` here: the test's own build is a debug one,
    // so nothing is compiled again).
    let tools = home.path().join("tools");
    let installed = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "--locked", "--debug", "--offline", "--path"])
        .arg(workspace().join("crates/cargo-azfn"))
        .arg("--root")
        .arg(&tools)
        .arg("--target-dir")
        .arg(workspace().join("target"))
        .output()
        .unwrap();
    ok(&installed, "cargo install --path crates/cargo-azfn");
    let tool = tools.join("bin/cargo-azfn");
    let run = |dir: &Path, args: &[&str]| azfn_with(&tool, dir, args);

    let app = home.path().join("shop");
    ok(&run(home.path(), &["init", "shop"]), "init");
    for f in
        ["Cargo.lock", "infra/main.bicep", "infra/main.parameters.json", "azure.yaml", ".github/workflows/deploy.yml"]
    {
        assert!(app.join(f).is_file(), "init wrote {f}");
    }
    for args in [
        &["queue", "ShipNotice", "--queue", "shipments", "--output", "queue:shipped"][..],
        &["timer", "Nightly", "--schedule", "0 0 3 * * *"],
        &["orchestrator", "ShipOrder"],
        &["activity", "PackItems"],
        &["activity", "PrintLabel"],
        &["http", "StartShipping", "--route", "shipments", "--starts", "ShipOrder", "--auth", "anonymous"],
    ] {
        ok(&run(&app, &[&["new"][..], args].concat()), &format!("new {args:?}"));
    }
    let refused = run(&app, &["new", "http", "StartNothing", "--starts", "NoSuchOrchestrator"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cargo azfn new orchestrator NoSuchOrchestrator"));
    // The user's orchestration: two activities in a row.
    std::fs::write(
        app.join("src/functions/orchestrations/ship_order.rs"),
        "//! `ShipOrder`: packs, then labels.\n\nuse azfn::durable::{OrchestrationContext, TaskError};\n\n\
         /// Packs the order, then prints its label.\n\
         pub async fn ship_order(ctx: OrchestrationContext, order: Option<String>) -> Result<Vec<String>, TaskError> {\n    \
         let order = order.unwrap_or_default();\n    \
         let packed: String = ctx.call_activity(\"PackItems\", order).await?;\n    \
         let label: String = ctx.call_activity(\"PrintLabel\", packed.clone()).await?;\n    \
         Ok(vec![packed, label])\n}\n",
    )
    .unwrap();
    // The HTTP function's own test runs the orchestration in process, without storage.
    let tested = ok(&cargo(&app, &["test"]), "the app's cargo test");
    assert!(
        tested.contains("start_shipping::tests::starts_start_shipping_and_answers_with_its_urls ... ok"),
        "{tested}"
    );

    // Storage: the emulator on free ports, which nothing serves yet, so `start` starts an Azurite:
    // the one on PATH, else the tool cache's (installed with npm on first use).
    let host_json = std::fs::read_to_string(app.join("host.json")).unwrap();
    let host_json =
        host_json.replace("\"http\": {", "\"queues\": { \"maxPollingInterval\": \"00:00:02\" },\n    \"http\": {");
    std::fs::write(app.join("host.json"), host_json).unwrap();
    let storage = azurite::connection_string(free_ports());
    let host =
        Started::new(&app, &[], &[("AzureWebJobsStorage", storage), ("AZFN_QUEUE_LEASE", "00:00:30".to_owned())]);
    assert!(host.console().contains("storage: started Azurite"), "{}", host.console());
    let base = format!("http://127.0.0.1:{}", host.port);
    assert_eq!(host.get("/api/hello?name=Ada"), (200, "Hello, Ada".to_owned()));
    let port = host.port.to_string();
    ok(&run(&app, &["invoke", "ShipNotice", "--port", &port, "--data", r#"{"id": 1}"#]), "invoke ShipNotice");
    ok(&run(&app, &["invoke", "Nightly", "--port", &port]), "invoke Nightly");
    host.wait_for("Executed 'ShipNotice'", Duration::from_secs(60));
    host.wait_for("Executed 'Nightly'", Duration::from_secs(60));
    // An orchestrator by name starts it through the management API; an activity says why not;
    // outside the app, invoke says where to run it.
    let started = ok(&run(&app, &["invoke", "shiporder", "--port", &port, "--data", r#""o-0""#]), "invoke ShipOrder");
    assert!(started.contains("ShipOrder is an orchestrator: started it") && started.contains("statusQueryGetUri"));
    let activity = run(&app, &["invoke", "PackItems", "--port", &port]);
    assert!(String::from_utf8_lossy(&activity.stderr).contains("is an activity of the app, not a function"));
    let outside = run(home.path(), &["invoke", "Hello", "--port", &port]);
    assert!(String::from_utf8_lossy(&outside.stderr).contains("has no host.json"), "{outside:?}");

    // The orchestration, started by the HTTP function through ctx.durable().
    let (status, body, location) = http("POST", &format!("{base}/api/shipments"), Some("\"o-1\""));
    assert_eq!(status, 202, "{body}\n{}", host.console());
    let urls: serde_json::Value = serde_json::from_str(&body).unwrap();
    let status_url = urls["statusQueryGetUri"].as_str().unwrap().to_owned();
    assert_eq!(location.as_deref(), Some(status_url.as_str()));
    assert!(status_url.starts_with(&format!("{base}/api/orchestrators/instances/")), "{status_url}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (_, body, _) = http("GET", &status_url, None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["runtimeStatus"] == "Completed" {
            break v;
        }
        assert!(Instant::now() < deadline, "not completed: {body}\n{}", host.console());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["output"], serde_json::json!(["PackItems: o-1", "PrintLabel: PackItems: o-1"]));
    drop(host);

    // A deployable zip, named after the app, that the package check accepts. Online, as for a new
    // user: on first use `package` installs Zig (PyPI) and cargo-zigbuild (crates.io, whose
    // dependencies the offline cache need not hold) into the tool cache.
    let package = azfn_command(&tool, &app, &["package"]).env_remove("CARGO_NET_OFFLINE").output().unwrap();
    let packaged = ok(&package, "package");
    assert!(packaged.contains("answers the host's probe"), "{packaged}");
    let zip = app.join("dist/shop.zip");
    assert!(zip.is_file(), "{packaged}");
    let checked = Command::new(workspace().join("scripts/check-package")).arg(&zip).output().unwrap();
    assert!(ok(&checked, "scripts/check-package").contains("Hello, Azure"));
}
