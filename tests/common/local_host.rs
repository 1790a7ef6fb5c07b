//! Runs `cargo azfn start --builtin` as a user would (with the app's test build as the handler), on a free port, against a test's own Azurite
//! (passed as `AzureWebJobsStorage` in the environment, which wins over local.settings.json).
//! SIGTERM on drop, so the host stops its handler too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::azurite::Azurite;
use super::free_port;

pub struct LocalHost {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalHost {
    /// Starts the app in `root` with `extra_env` and waits until `GET /admin/host/status` says Running.
    pub async fn start(root: &Path, azurite: &Azurite, extra_env: &[(&str, &str)]) -> LocalHost {
        Self::start_with(root, azurite, extra_env, &[]).await
    }

    /// [`start`](Self::start) with more arguments to `cargo azfn start` (e.g. `--keys`; the status
    /// is then read with `AZFN_MASTER_KEY` from `extra_env`).
    pub async fn start_with(root: &Path, azurite: &Azurite, extra_env: &[(&str, &str)], args: &[&str]) -> LocalHost {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(super::cargo_azfn())
            .args([
                "azfn",
                "start",
                "--builtin",
                "--port",
                &port.to_string(),
                "--handler",
                env!("CARGO_BIN_EXE_orders"),
            ])
            .args(args)
            .current_dir(root)
            .env("AzureWebJobsStorage", azurite.connection_string())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            // `cargo azfn start` stages the app under the temp dir: keep it in ours, which goes with the
            // test even when a test kills the host with SIGKILL.
            .env("TMPDIR", dir.path())
            // The real host's 10-minute message lease, shortened so that the messages of a host a
            // test kills come back within the test.
            .env("AZFN_QUEUE_LEASE", "00:00:30")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start azfn start");
        let host = LocalHost { child, port, log, _dir: dir };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let master = extra_env.iter().find(|(k, _)| *k == "AZFN_MASTER_KEY").map_or("", |(_, v)| *v);
            if let Ok(r) = client.get(host.url("/admin/host/status")).header("x-functions-key", master).send().await
                && r.text().await.unwrap_or_default().contains("Running")
            {
                return host;
            }
            assert!(Instant::now() < deadline, "azfn start was not running within 60 s; console:\n{}", host.console());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many console lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.console().lines().filter(|l| l.contains(needle)).count()
    }

    /// How many times `function` ran: its own lines, plus the counts of the tally lines the
    /// console prints for the durable functions (`Executed 'DurableWork' 37 times ...`).
    pub fn executed(&self, function: &str) -> usize {
        let needle = format!("Executed '{function}' ");
        self.console()
            .lines()
            .filter_map(|l| l.split_once(&needle).map(|(_, rest)| rest))
            .map(|rest| {
                let mut words = rest.split_whitespace();
                match (words.next().and_then(|w| w.parse::<usize>().ok()), words.next()) {
                    (Some(n), Some("time" | "times")) => n,
                    _ => 1,
                }
            })
            .sum()
    }

    /// Waits until `function` ran at least `n` times (see [`LocalHost::executed`]).
    pub async fn wait_for_executed(&self, function: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.executed(function) < n {
            assert!(
                Instant::now() < deadline,
                "expected {function} to run {n} times within {within:?}; console:\n{}",
                self.console()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until at least `n` console lines contain `needle`.
    pub async fn wait_for(&self, needle: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} console lines with {needle:?} within {within:?}; console:\n{}",
                self.console()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pid of `cargo azfn start` itself.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pid in the last "handler ready ... (pid N)" line.
    pub fn handler_pid(&self) -> u32 {
        let console = self.console();
        let line = console.lines().rev().find(|l| l.contains("handler ready")).expect("a handler ready line");
        line.rsplit("(pid ").next().unwrap().trim_end_matches(')').parse().unwrap()
    }
}

impl Drop for LocalHost {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
