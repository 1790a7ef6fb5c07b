//! Test harness: starts the `azfn` binary the way the Functions host does, and talks to it.
//!
//! The host picks a free IPv4 loopback port, starts the handler with `FUNCTIONS_CUSTOMHANDLER_PORT`,
//! `FUNCTIONS_CUSTOMHANDLER_WORKER_ID` and `FUNCTIONS_APP_ROOT_PATH`, then polls `GET /` every 25 ms
//! until any HTTP answer (30 s limit) (`DefaultHttpWorkerService.IsWorkerReady` in
//! Azure/azure-functions-host). Every handler started here is killed when its guard drops.

#![allow(dead_code)]

pub mod azurite;
pub mod fault_proxy;
pub mod local_host;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root (holds host.json and functions/).
/// The `cargo-azfn` binary, beside the app's binary. Cargo builds a package's binaries only for its
/// own integration tests, so this one is brought up to date here, once per test process (a no-op
/// when it is; Cargo does not hold its build lock while tests run).
pub fn cargo_azfn() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let out = Command::new(cargo)
                .args(["build", "--quiet", "-p", "cargo-azfn", "--bin", "cargo-azfn"])
                .current_dir(repo_root())
                .output()
                .expect("run cargo build");
            assert!(out.status.success(), "cargo build -p cargo-azfn: {}", String::from_utf8_lossy(&out.stderr));
            let bin = PathBuf::from(env!("CARGO_BIN_EXE_orders")).with_file_name("cargo-azfn");
            assert!(bin.is_file(), "{} is missing after the build", bin.display());
            bin
        })
        .clone()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a fixture from tests/fixtures.
pub fn fixture(name: &str) -> Value {
    let path = repo_root().join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A free port on 127.0.0.1, found as the host finds one (bind port 0, read it, release it).
/// Stops the process `pid` (SIGSTOP) and waits until the kernel shows each of its threads stopped
/// (`T` in `/proc/<pid>/task/*/stat`): `kill` returns once the signal is sent, and a thread already
/// running could answer one more request before the whole process has stopped.
#[allow(dead_code)]
pub fn stop_process(pid: u32) {
    assert!(Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Every thread's state follows its command name in parentheses: "tid (comm) T ...".
    let stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
        tasks.flatten().all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            matches!(state, Some("T") | Some("t"))
        })
    };
    while !stopped() {
        assert!(std::time::Instant::now() < deadline, "process {pid} did not stop");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running handler process.
pub struct Handler {
    child: Child,
    pub port: u16,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    _logs: tempfile::TempDir,
}

impl Handler {
    /// Starts the binary for the app in `app_root` and waits until it answers `GET /`.
    pub async fn start(app_root: &Path) -> Handler {
        Self::start_with_env(app_root, &[]).await
    }

    /// [`start`](Self::start) with more environment variables.
    pub async fn start_with_env(app_root: &Path, env: &[(&str, &str)]) -> Handler {
        let port = free_port();
        let logs = tempfile::tempdir().unwrap();
        let (stdout, stderr) = (logs.path().join("stdout"), logs.path().join("stderr"));
        let child = command(app_root, Some(port))
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start azfn");
        let handler = Handler { child, port, stdout, stderr, _logs: logs };
        handler.wait_ready().await;
        handler
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if client.get(self.url("/")).send().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the handler did not answer GET / within 30 s; stderr:\n{}",
                self.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs an invocation envelope as the host does; returns the status, content type and JSON body.
    pub async fn invoke(&self, function: &str, envelope: &Value) -> (u16, String, Value) {
        let res = reqwest::Client::new()
            .post(self.url(&format!("/{function}")))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-HostVersion", "4.1037.0.0")
            .header("X-Azure-Functions-InvocationId", "6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f")
            .header("User-Agent", "Azure-Functions-Host/4.1037.0.0")
            .body(serde_json::to_vec(envelope).unwrap())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, ct, body)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "no exit 10 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command the host runs, with the host's environment variables; no port when `port` is None.
pub fn command(app_root: &Path, port: Option<u16>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orders"));
    cmd.current_dir(app_root)
        .env("FUNCTIONS_APP_ROOT_PATH", app_root)
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "0d8a7f5e-3c2b-4a19-8e7d-6c5b4a392817")
        .env("FUNCTIONS_HTTPWORKER_ID", "0d8a7f5e-3c2b-4a19-8e7d-6c5b4a392817")
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    if let Some(p) = port {
        cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", p.to_string()).env("FUNCTIONS_HTTPWORKER_PORT", p.to_string());
    }
    cmd
}

/// Copies the repository's host.json and functions/ into a fresh folder, laid out as the host
/// stages them (function folders at the root), so a test can change them.
pub fn staged_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("host.json"), dir.path().join("host.json")).unwrap();
    for entry in std::fs::read_dir(repo_root().join("functions")).unwrap() {
        let entry = entry.unwrap();
        let target = dir.path().join(entry.file_name());
        std::fs::create_dir_all(&target).unwrap();
        std::fs::copy(entry.path().join("function.json"), target.join("function.json")).unwrap();
    }
    dir
}

/// A copy of the orders app's root (host.json, local.settings.json, functions/*/function.json) in a
/// temporary folder, to run with a changed host.json or function.json.
pub fn app_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["host.json", "local.settings.json"] {
        std::fs::copy(repo_root().join(f), dir.path().join(f)).unwrap();
    }
    for entry in std::fs::read_dir(repo_root().join("functions")).unwrap() {
        let entry = entry.unwrap();
        let to = dir.path().join("functions").join(entry.file_name());
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(entry.path().join("function.json"), to.join("function.json")).unwrap();
    }
    dir
}

/// An envelope from a fixture with its trigger entry renamed to `binding`.
pub fn with_binding(mut envelope: Value, from: &str, to: &str) -> Value {
    let data = envelope["Data"].as_object_mut().unwrap();
    let v = data.remove(from).unwrap();
    data.insert(to.to_owned(), v);
    envelope
}

/// What the example `HelloSequence` returns for its default cities.
pub const GREETINGS: [&str; 5] = ["Hello Tokyo!", "Hello Seattle!", "Hello London!", "Hello Cairo!", "Hello Lima!"];

/// Checks no task result appears twice in an instance's history (the management API's
/// `historyEvents`).
pub fn assert_no_double_completion(id: &str, history: &[Value]) {
    let mut seen = std::collections::HashSet::new();
    for e in history {
        if matches!(e["eventType"].as_str(), Some("TaskCompleted" | "TaskFailed" | "SubOrchestrationCompleted")) {
            let task = e["id"].as_u64().unwrap();
            assert!(seen.insert(task), "instance {id}: the result of task {task} was recorded twice");
        }
    }
}

/// The task hub `name` on `azurite`, its table, queues and container created.
pub async fn hub(azurite: &azurite::Azurite, name: &str) -> std::sync::Arc<azfn::durable::TaskHub> {
    let hub = std::sync::Arc::new(azfn::durable::TaskHub::new(name, &azurite.account()).unwrap());
    hub.ensure_created().await.unwrap();
    hub
}
