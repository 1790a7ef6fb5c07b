//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by
//! `playwright-core` (from `tools/`, installed by `scripts/test`) runs `tests/browser/dashboard.mjs`
//! against the orders app under `cargo azfn start --builtin` on Azurite: the list, its filters and
//! paging, the timeline of a 5-activity HelloSequence, a Terminate through the page checked with
//! the API, the entity list filtered and paged, and a Redrive of a parked message checked by its effect.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use azfn::durable::{ControlMessage, Event};
use azfn::storage::QueueClient;
use common::azurite::Azurite;
use common::local_host::LocalHost;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

async fn status(http: &reqwest::Client, host: &LocalHost, id: &str) -> Value {
    let url = host.url(&format!("/api/orchestrators/instances/{id}"));
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn start(http: &reqwest::Client, host: &LocalHost, name: &str, input: Value) -> String {
    let res = http.post(host.url(&format!("/api/orchestrators/{name}"))).json(&input).send().await.unwrap();
    assert_eq!(res.status(), 202);
    res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn reaches(http: &reqwest::Client, host: &LocalHost, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = status(http, host, id).await;
        if s["runtimeStatus"] == want {
            return s;
        }
        assert!(Instant::now() < deadline, "{id} is not {want}: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `tests/browser/{script}` with node, driving Debian's Chromium through playwright-core, with
/// `env`; panics with its output and the host's console when it fails.
fn run_in_browser(script: &str, env: &[(&str, String)], host: &LocalHost) {
    let root = common::repo_root();
    let playwright = root.join("tools/node_modules/playwright-core/index.mjs");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        playwright.exists() && Path::new(&chromium).exists(),
        "this test needs Debian's chromium ({chromium}) and playwright-core (tools/node_modules): scripts/test installs both"
    );
    let out = Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CHROMIUM", &chromium)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}\nhost console:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        host.console()
    );
}

#[tokio::test]
async fn the_dashboard_lists_filters_draws_the_timeline_terminates_and_redrives_in_a_browser() {
    let root = common::repo_root();
    let azurite = Azurite::start();
    let host = LocalHost::start(&root, &azurite, &[]).await;
    let http = reqwest::Client::new();

    let sequence = start(&http, &host, "HelloSequence", Value::Null).await;
    let waiting = start(&http, &host, "ApprovalWorkflow", json!({"timeoutSeconds": 3600})).await;
    let approval = start(&http, &host, "ApprovalWorkflow", json!({"timeoutSeconds": 3600})).await;
    // A failed instance to rewind, and a versioned one (issue 29).
    let failed = start(&http, &host, "HelloSequence", json!([""])).await;
    let versioned = start(&http, &host, "ConfirmOrder", json!({"customer": "Ada"})).await;
    reaches(&http, &host, &sequence, "Completed").await;
    reaches(&http, &host, &waiting, "Running").await;
    reaches(&http, &host, &approval, "Running").await;
    reaches(&http, &host, &failed, "Failed").await;
    reaches(&http, &host, &versioned, "Running").await;
    // Two entities for the entity list's paging.
    for key in ["dash-a", "dash-b"] {
        let url = host.url(&format!("/api/orchestrators/entities/Counter/{key}?op=add"));
        assert_eq!(http.post(url).json(&1).send().await.unwrap().status(), 202);
    }
    let deadline = Instant::now() + WAIT;
    for key in ["dash-a", "dash-b"] {
        let url = host.url(&format!("/api/orchestrators/entities/Counter/{key}"));
        while http.get(&url).send().await.unwrap().status() != 200 {
            assert!(Instant::now() < deadline, "entity {key} was not created");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A message parked during an outage (put there directly): the approval of `approval`.
    let queues = QueueClient::new(&azurite.account()).unwrap();
    let event = Event::EventRaised { name: "Approval".into(), input: json!(true), key: "dashboard-1".into() };
    let parked = ControlMessage::event(&approval, None, event);
    queues.create_queue("azfn-control-poison").await.unwrap();
    queues.send("azfn-control-poison", &serde_json::to_vec(&parked).unwrap(), Duration::ZERO).await.unwrap();

    // The screenshot goes to target/ (AZFN_SCREENSHOT names another place, e.g. docs/).
    let shot = std::env::var("AZFN_SCREENSHOT")
        .unwrap_or_else(|_| root.join("target/dashboard-instance.png").display().to_string());
    let env = [
        ("DASHBOARD_URL", host.url("/api/dashboard")),
        ("SEQUENCE_ID", sequence.clone()),
        ("WAITING_ID", waiting.clone()),
        ("FAILED_ID", failed.clone()),
        ("VERSIONED_ID", versioned.clone()),
        ("SCREENSHOT", shot.clone()),
    ];
    run_in_browser("dashboard.mjs", &env, &host);
    // What the page did, seen through the API.
    assert_eq!(reaches(&http, &host, &waiting, "Terminated").await["output"], "terminated from the dashboard");
    let approved = reaches(&http, &host, &approval, "Completed").await;
    assert_eq!(approved["output"]["status"], "approved", "{approved}");
    assert!(Path::new(&shot).exists(), "no screenshot at {shot}");
    // The rewind the page asked for is in the history (its activity fails again: the input is
    // still empty), and the schedule it made is gone.
    let url = host.url(&format!("/api/orchestrators/instances/{failed}?showHistory=true"));
    let deadline = Instant::now() + WAIT;
    loop {
        let body: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        let history = body["historyEvents"].as_array().cloned().unwrap_or_default();
        if let Some(rewound) = history.iter().find(|e| e["eventType"] == "ExecutionRewound") {
            assert_eq!(rewound["reason"], "rewound from the dashboard", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "no rewind in the history: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let schedule = http.get(host.url("/api/orchestrators/schedules/nightly")).send().await.unwrap();
    assert_eq!(schedule.status(), 404, "the schedule deleted in the page is still there");
}

/// A browser app served from another origin calls the local API, with local.settings.json's
/// `Host.CORS` naming that origin (Core Tools' `Startup.Configure`: `UseCors(builder =>
/// builder.WithOrigins(_corsOrigins).AllowAnyHeader().AllowAnyMethod())`; issue 28 #15): Chromium
/// lets the allowed origin's GET and JSON POST (with its preflight) through, and refuses another
/// origin's. Before, the built-in host sent no CORS header, so every such call failed.
#[tokio::test]
async fn a_browser_app_on_an_allowed_origin_calls_the_api() {
    let azurite = Azurite::start();
    let app = common::app_copy();
    let (allowed, other) = (common::free_port(), common::free_port());
    let allowed_origin = format!("http://127.0.0.1:{allowed}");
    let settings = app.path().join("local.settings.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    doc["Host"] = json!({"CORS": allowed_origin});
    std::fs::write(&settings, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let host = LocalHost::start(app.path(), &azurite, &[]).await;
    let env = [
        ("API_BASE", host.url("")),
        ("ALLOWED_ORIGIN", allowed_origin.clone()),
        ("OTHER_ORIGIN", format!("http://127.0.0.1:{other}")),
    ];
    run_in_browser("cors.mjs", &env, &host);
}
