//! duroxide-bench: the workload of `scripts/bench-durable` on duroxide (Microsoft's Rust durable-task
//! engine, crate `duroxide` 0.1.32) with its SQLite provider, for a side-by-side comparison.
//! bench-durable copies this folder to a temporary one, builds it with `cargo build --release`, and runs
//!   duroxide-bench hundred | alone | fanout N | sequence N
//! each of which prints one JSON line on stdout (logs go to stderr, at RUST_LOG or else `warn`).
//!
//! - Store: SQLite in memory, as bench-durable runs Azurite in memory (`DUROXIDE_STORE=file`: a
//!   file-backed database, in WAL mode, in a fresh temporary directory).
//! - Runtime: `RuntimeOptions::default()`: 2 orchestration and 2 activity dispatchers. The SQLite provider
//!   has no long polling, so an idle dispatcher sleeps out `dispatcher_min_poll_interval` (100 ms) between
//!   polls; the environment variable DUROXIDE_POLL_MS overrides that interval (for experiments only).
//! - Every mode first runs one HelloSequence as a warm-up (`hundred` also a first round of 100). Completion is seen by reading the instance
//!   row (`Client::get_instance_info`) from one task at a time: every 100 ms as bench-durable polls
//!   (every 10 ms for `alone`; polling that often during the fan-out made its failures below likelier).
//! - The SQLite provider's write transactions can fail with "database is locked" under contention;
//!   after 5 retries of an ack duroxide fails the orchestration. `fanout` then starts another one (at
//!   most 3 in all) and counts them in `failed_attempts`; the other modes stop with an error.

use duroxide::providers::sqlite::SqliteProvider;
use duroxide::runtime::{self, RuntimeOptions, registry::ActivityRegistry};
use duroxide::{ActivityContext, Client, OrchestrationContext, OrchestrationRegistry};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The cities greeted when the input is `null` (as in the azfn example).
const CITIES: [&str; 5] = ["Tokyo", "Seattle", "London", "Cairo", "Lima"];

/// Calls `SayHello` for each city in turn and returns the greetings.
async fn hello_sequence(ctx: OrchestrationContext, input: String) -> Result<String, String> {
    let cities: Option<Vec<String>> = serde_json::from_str(&input).map_err(|e| e.to_string())?;
    let mut greetings = Vec::new();
    for city in cities.unwrap_or_else(|| CITIES.map(String::from).to_vec()) {
        greetings.push(ctx.schedule_activity("SayHello", city).await?);
    }
    serde_json::to_string(&greetings).map_err(|e| e.to_string())
}

/// Calls `Number` for k = 1..=n all at once and returns the sum.
async fn fan_out_fan_in(ctx: OrchestrationContext, input: String) -> Result<String, String> {
    let n: u64 = input.parse().map_err(|e| format!("{e}"))?;
    let calls: Vec<_> = (1..=n).map(|k| ctx.schedule_activity("Number", k.to_string())).collect();
    let mut sum = 0u64;
    for result in ctx.join(calls).await {
        sum += result?.parse::<u64>().map_err(|e| e.to_string())?;
    }
    Ok(sum.to_string())
}

/// Starts an orchestration under a fresh instance id and returns the id.
async fn start(client: &Client, name: &str, input: String) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let id = format!("bench-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    client.start_orchestration(id.as_str(), name, input).await.expect("start_orchestration");
    id
}

/// Waits until the instance ends (reading its row every `poll_ms`): its output, or its error if it failed.
async fn wait(client: &Client, id: &str, poll_ms: u64) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        if let Ok(info) = client.get_instance_info(id).await {
            match info.status.as_str() {
                "Completed" => return Ok(info.output.unwrap_or_default()),
                "Failed" => return Err(format!("{id} failed: {}", info.output.unwrap_or_default())),
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "{id} did not finish within 30 minutes");
        tokio::time::sleep(Duration::from_millis(poll_ms)).await;
    }
}

async fn run(client: &Client, name: &str, input: String, poll_ms: u64) -> Result<String, String> {
    let id = start(client, name, input).await;
    wait(client, &id, poll_ms).await
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[tokio::main]
async fn main() {
    // Installed before the runtime starts, so duroxide's own subscriber (stdout, info) is not.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = || -> usize { args.get(1).and_then(|a| a.parse().ok()).expect("usage: duroxide-bench fanout|sequence N") };

    // In memory, as bench-durable runs Azurite (`--inMemoryPersistence`); DUROXIDE_STORE=file for a
    // file-backed database in a temporary directory.
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = if std::env::var("DUROXIDE_STORE").as_deref() == Ok("file") {
        let db = dir.path().join("duroxide.db");
        std::fs::File::create(&db).expect("database file");
        SqliteProvider::new(&format!("sqlite:{}", db.display()), None).await
    } else {
        SqliteProvider::new_in_memory().await
    };
    let store = std::sync::Arc::new(store.expect("SQLite provider"));
    let activities = ActivityRegistry::builder()
        .register("SayHello", |_: ActivityContext, city: String| async move { Ok(format!("Hello {city}!")) })
        .register("Number", |_: ActivityContext, k: String| async move { Ok(k) })
        .build();
    let orchestrations = OrchestrationRegistry::builder()
        .register("HelloSequence", hello_sequence)
        .register("FanOutFanIn", fan_out_fan_in)
        .build();
    let mut options = RuntimeOptions::default();
    if let Some(ms) = std::env::var("DUROXIDE_POLL_MS").ok().and_then(|v| v.parse().ok()) {
        options.dispatcher_min_poll_interval = Duration::from_millis(ms);
    }
    let rt = runtime::Runtime::start_with_options(store.clone(), activities, orchestrations, options).await;
    let client = Client::new(store);

    let greetings = run(&client, "HelloSequence", "null".into(), 100).await.unwrap();
    let expected: Vec<String> = CITIES.iter().map(|c| format!("Hello {c}!")).collect();
    assert_eq!(greetings, serde_json::to_string(&expected).unwrap());

    let figures = match args.first().map(String::as_str) {
        Some("hundred") => {
            // A first round warms up, as bench-durable's azfn side gets one; the second is measured.
            let mut secs = 0.0;
            for _ in 0..2 {
                let t0 = Instant::now();
                let starts: Vec<_> = (0..100)
                    .map(|_| {
                        let client = client.clone();
                        tokio::spawn(async move { start(&client, "HelloSequence", "null".into()).await })
                    })
                    .collect();
                let mut ids = Vec::new();
                for s in starts {
                    ids.push(s.await.expect("start task"));
                }
                for id in &ids {
                    wait(&client, id, 100).await.unwrap();
                }
                secs = t0.elapsed().as_secs_f64();
            }
            json!({"hundred_seconds": round(secs, 3), "orchestrations_per_second": round(100.0 / secs, 1)})
        }
        Some("alone") => {
            let mut ms = Vec::new();
            for _ in 0..8 {
                let t0 = Instant::now();
                run(&client, "HelloSequence", "null".into(), 10).await.unwrap();
                ms.push(round(t0.elapsed().as_secs_f64() * 1000.0, 1));
            }
            json!({"alone_ms": ms})
        }
        Some("fanout") => {
            let n = n();
            let mut failed = 0;
            loop {
                let t0 = Instant::now();
                match run(&client, "FanOutFanIn", n.to_string(), 100).await {
                    Ok(sum) => {
                        assert_eq!(sum, (n * (n + 1) / 2).to_string());
                        break json!({"fanout_seconds": round(t0.elapsed().as_secs_f64(), 3), "failed_attempts": failed});
                    }
                    Err(e) if failed < 2 => {
                        eprintln!("{e}; starting another");
                        failed += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        Some("sequence") => {
            let n = n();
            let cities: Vec<String> = (0..n).map(|k| format!("c{k}")).collect();
            let t0 = Instant::now();
            let out = run(&client, "HelloSequence", serde_json::to_string(&cities).unwrap(), 100).await.unwrap();
            let secs = t0.elapsed().as_secs_f64();
            assert_eq!(serde_json::from_str::<Vec<String>>(&out).expect("greetings").len(), n);
            json!({"steps": n, "seconds": round(secs, 3), "ms_per_step": round(secs * 1000.0 / n as f64, 2)})
        }
        _ => panic!("usage: duroxide-bench hundred | alone | fanout N | sequence N"),
    };
    println!("{figures}");
    rt.shutdown(None).await;
}
