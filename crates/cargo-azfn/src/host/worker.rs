//! The handler process, supervised as the Functions host does it
//! (`HttpWorkerProcess`, `DefaultHttpWorkerService`, `WorkerProcess.OnProcessExited` in
//! Azure/azure-functions-host; see `custom-handler-protocol.md` §1):
//!
//! - one free IPv4 loopback port, chosen once and kept across restarts;
//! - the child inherits the host's environment plus `FUNCTIONS_CUSTOMHANDLER_PORT`,
//!   `FUNCTIONS_HTTPWORKER_PORT`, a new `FUNCTIONS_CUSTOMHANDLER_WORKER_ID`/`FUNCTIONS_HTTPWORKER_ID`
//!   per start, and `FUNCTIONS_APP_ROOT_PATH`;
//! - ready when `GET /` gets any HTTP answer, polled every 25 ms for at most 30 s;
//! - exit code 0: not restarted; 200: restarted; anything else (or a start-up timeout) is an error
//!   and the handler is restarted, until 3 errors fall within 30 minutes of each other, when the
//!   host shuts down;
//! - stdout lines are information, stderr lines errors (warnings when they mention "warn"): a custom
//!   handler's description sets `UseStdErrorStreamForErrorsOnly` (see [`stderr_is_error`]); the last
//!   three error lines go into the message of an exit with an error code.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::console::Console;

/// The version this host reports in `X-Azure-Functions-HostVersion`.
pub const HOST_VERSION: &str = concat!("4.0.0-azfn.", env!("CARGO_PKG_VERSION"));
/// Readiness polling interval (`WorkerReadyCheckPollingIntervalMilliseconds`).
pub const READY_POLL: Duration = Duration::from_millis(25);
/// One start attempt's limit (`InitializationTimeout`).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Errors that stop the host (`ErrorEventsThreshold`).
pub const ERROR_THRESHOLD: usize = 3;
/// Errors further apart than this start a new count (`WorkerRestartErrorIntervalThresholdInMinutes`).
pub const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);
/// How long an invocation waits for a (re)starting handler: `(ErrorEventsThreshold + 1) * InitializationTimeout`.
pub const INVOKE_WAIT: Duration = Duration::from_secs(120);

/// Why a swap restarts the handler (logged as information, not as a warning).
const SWAP_REASON: &str = "with the rebuilt binary";

/// How to start the handler.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments (host.json `customHandler.description.arguments`).
    pub args: Vec<String>,
    /// Its working directory.
    pub dir: PathBuf,
    /// `FUNCTIONS_APP_ROOT_PATH`.
    pub app_root: PathBuf,
    /// Settings to add to the inherited environment (`local.settings.json` values the environment lacks).
    pub env: Vec<(String, String)>,
}

/// The handler's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    /// Being started (or restarted).
    Starting,
    /// Answering on its port; the process id.
    Ready(u32),
    /// Gone for good, and why.
    Stopped(String),
}

/// A supervised handler process.
#[derive(Debug)]
pub struct Worker {
    port: u16,
    state: watch::Receiver<WorkerState>,
    stop: watch::Sender<bool>,
    client: reqwest::Client,
    /// Restart requests: a generation number, raised by each, and the reason for the console.
    restart: watch::Sender<(u64, String)>,
    /// The generation of the running handler: the last request it was started after.
    served: watch::Receiver<u64>,
    /// Held shared by every request to the handler, and exclusively by [`Worker::swap`], which so
    /// waits for the requests in flight and holds new ones until the new handler is ready.
    gate: tokio::sync::RwLock<()>,
    /// Set when the handler failed too often: the host must shut down, with this reason.
    pub fatal: watch::Receiver<Option<String>>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Worker {
    /// Starts the handler and supervises it in the background; returns once it is first ready,
    /// or with the reason it could not start.
    pub async fn start(config: WorkerConfig, console: Console) -> Result<Arc<Worker>, String> {
        let port = free_port().map_err(|e| format!("cannot find a free port for the handler: {e}"))?;
        let (state_tx, state) = watch::channel(WorkerState::Starting);
        let (stop, stop_rx) = watch::channel(false);
        let (fatal_tx, fatal) = watch::channel(None);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let (restart, restart_rx) = watch::channel((0, String::new()));
        let (served_tx, served) = watch::channel(0);
        let control =
            Control { state: state_tx, stop: stop_rx, fatal: fatal_tx, restart: restart_rx, served: served_tx };
        tokio::spawn(supervise(config, port, console, control, client.clone()));
        let gate = tokio::sync::RwLock::new(());
        let worker = Arc::new(Worker { port, state, stop, client, restart, served, gate, fatal });
        let mut rx = worker.state.clone();
        let state = rx
            .wait_for(|s| !matches!(s, WorkerState::Starting))
            .await
            .map(|s| s.clone())
            .map_err(|_| "the handler supervisor stopped".to_owned())?;
        match state {
            WorkerState::Ready(_) => Ok(worker),
            WorkerState::Stopped(why) => Err(why),
            WorkerState::Starting => unreachable!(),
        }
    }

    /// The port the handler listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The handler's current state.
    pub fn state(&self) -> WorkerState {
        self.state.borrow().clone()
    }

    /// The HTTP client used to reach the handler (no redirects, no proxy).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Waits until the handler is ready (up to [`INVOKE_WAIT`]); the error says why it is not.
    pub async fn ready(&self) -> Result<(), String> {
        let mut rx = self.state.clone();
        let waited = tokio::time::timeout(INVOKE_WAIT, rx.wait_for(|s| !matches!(s, WorkerState::Starting))).await;
        match waited {
            Err(_) => Err("Initialization timed out: the handler did not become ready".to_owned()),
            Ok(Err(_)) => Err("the handler supervisor stopped".to_owned()),
            Ok(Ok(s)) => match &*s {
                WorkerState::Ready(_) => Ok(()),
                WorkerState::Stopped(why) => Err(why.clone()),
                WorkerState::Starting => unreachable!(),
            },
        }
    }

    /// The generation of the running handler: raised each time it is restarted.
    pub fn generation(&self) -> u64 {
        *self.served.borrow()
    }

    /// Waits until a handler started after `generation` is ready (a function timeout restarts it
    /// 2 s after the timeout), then as [`ready`](Self::ready).
    pub async fn ready_after(&self, generation: u64) -> Result<(), String> {
        let mut served = self.served.clone();
        let _ =
            tokio::time::timeout(START_TIMEOUT + Duration::from_secs(5), served.wait_for(|g| *g > generation)).await;
        self.ready().await
    }

    /// POSTs an invocation body to `/{function}` with the host's headers; gives the status, the
    /// content type and the body.
    pub async fn invoke(
        &self,
        function: &str,
        invocation_id: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Option<String>, Bytes), String> {
        let req = self
            .client
            .post(format!("http://127.0.0.1:{}/{function}", self.port))
            .header("content-type", "application/json; charset=utf-8")
            .header("x-azure-functions-hostversion", HOST_VERSION)
            .header("x-azure-functions-invocationid", invocation_id)
            .header("user-agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .body(body);
        let (status, headers, body) = self.send(req).await?;
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok((status.as_u16(), ct, body))
    }

    /// Sends a request to the handler once it is ready. A request that then fails, even one whose
    /// connection was refused because the handler just died, fails the invocation and is not sent
    /// again, as in the real host (`DefaultHttpWorkerService`); the trigger's own retries (a queue
    /// message's next delivery, a retry policy) take it from there.
    ///
    /// Gives the status, the headers and the whole body: the body is read before a
    /// [`swap`](Self::swap) may replace the handler.
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(http::StatusCode, http::HeaderMap, Bytes), String> {
        let _shared = self.gate.read().await;
        self.ready().await?;
        let res = req.send().await.map_err(|e| format!("the handler did not answer: {}", error_chain(&e)))?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.bytes().await.map_err(|e| format!("the handler's answer broke off: {e}"))?;
        Ok((status, headers, body))
    }

    /// Replaces the handler (`cargo azfn start --watch`): waits for the requests in flight to be
    /// answered and holds new ones, calls `replace` (which puts the new binary in place), restarts
    /// the handler and waits until it is ready, then lets the held requests through. Nothing in
    /// flight is cut off, and nothing is refused meanwhile.
    pub async fn swap(&self, replace: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
        let _exclusive = self.gate.write().await;
        replace()?;
        let wanted = self.request_restart(SWAP_REASON);
        // Ready from a handler started after this request (so from the new binary), or stopped.
        let mut served = self.served.clone();
        let mut state = self.state.clone();
        let fresh = async {
            loop {
                let current = *served.borrow_and_update() >= wanted;
                match &*state.borrow_and_update() {
                    WorkerState::Ready(_) if current => return,
                    WorkerState::Stopped(_) => return,
                    _ => {}
                }
                tokio::select! {
                    r = served.changed() => if r.is_err() { return },
                    r = state.changed() => if r.is_err() { return },
                }
            }
        };
        let _ = tokio::time::timeout(START_TIMEOUT + Duration::from_secs(5), fresh).await;
        self.ready().await
    }

    /// Kills and restarts the handler process, as the host does after a function timeout
    /// (`RestartWorkerWithInvocationIdAsync`); not counted as one of its errors.
    pub fn restart(&self) {
        self.request_restart("after a function timeout");
    }

    /// Asks the supervisor for a restart; gives the generation a handler started for it will have.
    /// A request made while a handler is starting restarts the one that then becomes ready.
    fn request_restart(&self, why: &str) -> u64 {
        let mut wanted = 0;
        self.restart.send_modify(|(generation, reason)| {
            *generation += 1;
            *reason = why.to_owned();
            wanted = *generation;
        });
        wanted
    }

    /// Stops the handler (killed, as the host does on shutdown) and waits for it to be gone.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let mut rx = self.state.clone();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| matches!(s, WorkerState::Stopped(_)))).await;
    }
}

/// An error with its causes, e.g. "error sending request: connection refused".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Resolves once `stop` turns true (without holding the watch lock afterwards).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The last error lines a handler wrote to stderr, as the host keeps them
/// (`WorkerProcessUtilities.AddStdErrMessage`, `maxNumberOfErrorMessages = 3`).
type StderrTail = Arc<std::sync::Mutex<std::collections::VecDeque<String>>>;

/// Whether the host logs a handler's stderr `line` as an error (kept for the exit message), not a
/// warning. azure-functions-host (89dc438) `WorkerProcess.ParseErrorMessageAndLog` (lines 120-131):
/// `if (msg.IndexOf("warn", StringComparison.OrdinalIgnoreCase) > -1) { BuildAndLogConsoleLog(msg,
/// LogLevel.Warning); } else { if (_useStdErrorStreamForErrorsOnly) { LogError(msg); } ...`, and
/// `HttpWorkerDescription.cs` line 20, `public override bool UseStdErrorStreamForErrorsOnly { get;
/// set; } = true;` for custom handlers: every other stderr line is an error. (The keyword rule,
/// "error", "fail", "severe", "unhandled exception", is for language workers without that flag.)
pub fn stderr_is_error(line: &str) -> bool {
    !line.to_ascii_lowercase().contains("warn")
}

/// The message of a handler's exit with `code`, as `WorkerProcess.OnProcessExited` builds it
/// (89dc438, line 181): `$"{Process.StartInfo.FileName} exited with code {Process.ExitCode}
/// (0x{Process.ExitCode.ToString("X")})"`, its inner exception the last stderr error lines joined
/// by `,` (line 179).
pub fn exit_message(program: &str, code: i32, tail: &[String]) -> String {
    let inner = tail.iter().filter(|l| !l.is_empty()).cloned().collect::<Vec<_>>().join(",");
    let head = format!("{program} exited with code {code} (0x{code:X})");
    if inner.is_empty() { head } else { format!("{head}: {inner}") }
}

/// Starts the handler; also gives the task that reads its stderr (it ends at the pipe's end, after
/// the process exits).
fn spawn(
    config: &WorkerConfig,
    port: u16,
    console: Console,
    tail: StderrTail,
) -> std::io::Result<(Child, Option<tokio::task::JoinHandle<()>>)> {
    let id = uuid::Uuid::new_v4().to_string();
    let mut cmd = Command::new(&config.program);
    cmd.args(&config.args)
        .current_dir(&config.dir)
        .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", &id)
        .env("FUNCTIONS_HTTPWORKER_ID", &id)
        .env("FUNCTIONS_APP_ROOT_PATH", &config.app_root)
        // The handler stops by itself if this host dies without stopping it (kill -9).
        .env(azfn::HOST_PID_VAR, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group: a Ctrl-C in the terminal reaches only this host, which then stops the
    // handler itself, instead of the handler dying first and looking like a crash to restart.
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                console.worker_output(&l, false);
            }
        });
    }
    let mut stderr_task = None;
    if let Some(err) = child.stderr.take() {
        stderr_task = Some(tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if stderr_is_error(&l) {
                    let mut tail = tail.lock().expect("stderr tail");
                    if tail.len() >= 3 {
                        tail.pop_front();
                    }
                    tail.push_back(l.clone());
                }
                console.worker_output(&l, true);
            }
        }));
    }
    Ok((child, stderr_task))
}

/// Polls `GET /` until any HTTP answer; `false` when the child exits or the time is up.
async fn wait_ready(client: &reqwest::Client, port: u16, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let url = format!("http://127.0.0.1:{port}/");
    loop {
        if client.get(&url).timeout(Duration::from_secs(5)).send().await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the handler exited with {status} before it was ready"));
        }
        if Instant::now() >= deadline {
            return Err("Initializing HttpWorker timed out.".to_owned());
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// What the supervisor reports and listens to.
struct Control {
    state: watch::Sender<WorkerState>,
    stop: watch::Receiver<bool>,
    fatal: watch::Sender<Option<String>>,
    restart: watch::Receiver<(u64, String)>,
    served: watch::Sender<u64>,
}

async fn supervise(config: WorkerConfig, port: u16, console: Console, control: Control, client: reqwest::Client) {
    let Control { state, mut stop, fatal, mut restart, served } = control;
    let mut errors: Vec<Instant> = Vec::new();
    let program = config.program.display().to_string();
    loop {
        let _ = state.send(WorkerState::Starting);
        // The restart requests made so far are answered by this start.
        let generation = restart.borrow_and_update().0;
        let tail = StderrTail::default();
        let (mut child, stderr_task) = match spawn(&config, port, console, tail.clone()) {
            Ok(c) => c,
            Err(e) => {
                let why = format!("cannot start the handler {program}: {e}");
                console.error(&why);
                let _ = fatal.send(Some(why.clone()));
                let _ = state.send(WorkerState::Stopped(why));
                return;
            }
        };
        let pid = child.id().unwrap_or_default();
        let outcome = tokio::select! {
            r = wait_ready(&client, port, &mut child) => r,
            _ = stopped(&mut stop) => {
                let _ = child.kill().await;
                let _ = state.send(WorkerState::Stopped("the host is shutting down".to_owned()));
                return;
            }
        };
        let error = match outcome {
            Ok(()) => {
                console.info(&format!("handler ready on 127.0.0.1:{port} (pid {pid})"));
                let _ = served.send(generation);
                let _ = state.send(WorkerState::Ready(pid));
                tokio::select! {
                    status = child.wait() => {
                        let _ = state.send(WorkerState::Starting);
                        match status.ok().and_then(|s| s.code()) {
                            Some(0) => {
                                let why = format!(
                                    "the handler {program} exited with code 0; the Functions host does not restart a \
                                     handler that exits 0, so invocations fail from now on"
                                );
                                console.error(&why);
                                let _ = state.send(WorkerState::Stopped(why));
                                return;
                            }
                            Some(200) => {
                                console.info("the handler exited with code 200 (intentional restart); restarting it");
                                continue;
                            }
                            Some(code) => {
                                // Its last lines may still be in the pipe.
                                if let Some(task) = stderr_task {
                                    let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
                                }
                                let lines: Vec<String> = tail.lock().expect("stderr tail").iter().cloned().collect();
                                exit_message(&program, code, &lines)
                            }
                            None => format!("{program} was killed by a signal"),
                        }
                    }
                    _ = stopped(&mut stop) => {
                        let _ = child.kill().await;
                        let _ = state.send(WorkerState::Stopped("the host is shutting down".to_owned()));
                        return;
                    }
                    _ = restart.changed() => {
                        let _ = state.send(WorkerState::Starting);
                        let _ = child.kill().await;
                        let why = restart.borrow().1.clone();
                        if why == SWAP_REASON {
                            // A swap under --watch: what the user asked for, not a problem.
                            console.info(&format!("restarting the handler {why}"));
                        } else {
                            console.warn(&format!("restarting the handler {why}"));
                        }
                        continue;
                    }
                }
            }
            Err(e) => {
                let _ = child.kill().await;
                e
            }
        };
        let now = Instant::now();
        if errors.last().is_some_and(|last| now.duration_since(*last) > ERROR_WINDOW) {
            errors.clear();
        }
        errors.push(now);
        if errors.len() >= ERROR_THRESHOLD {
            let why = format!("{error}. Exceeded http worker restart retry count. Shutting down Functions Host");
            console.error(&why);
            let _ = fatal.send(Some(why.clone()));
            let _ = state.send(WorkerState::Stopped(why));
            return;
        }
        console.warn(&format!("{error}; restarting the handler ({} of {ERROR_THRESHOLD} errors)", errors.len()));
    }
}
