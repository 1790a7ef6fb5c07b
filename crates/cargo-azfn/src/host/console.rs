//! The console of a local run: host messages, one line per invocation, and the handler's logs,
//! coloured when stdout is a terminal.
//!
//! The durable engine's queue functions (`DurableControl`, `DurableWork`) run once per step of
//! every orchestration: their successes are tallied into one line per function and second
//! ([`Console::tally`]), while their failures get a line each. Their log lines are printed as
//! any function's: the orchestrations' own (`ctx.log`), and the engine's `WARN` line for each
//! activity and orchestration that failed, with the reason and the instance id, followed by the
//! link to the instance in the app's dashboard.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How often the tallied successes are printed.
pub const TALLY_PERIOD: Duration = Duration::from_secs(1);

/// Successes not yet printed, by function: (trigger, count).
static TALLIES: Mutex<BTreeMap<String, (String, u64)>> = Mutex::new(BTreeMap::new());
static FLUSHER: std::sync::Once = std::sync::Once::new();
/// The app's dashboard, once the host knows its port.
static DASHBOARD: OnceLock<String> = OnceLock::new();

/// Sets the address of the app's dashboard (`http://127.0.0.1:7071/api/dashboard`), which the
/// lines of failed activities and orchestrations link to. The first address set stays (a reload
/// keeps its port).
pub fn set_dashboard_url(url: String) {
    let _ = DASHBOARD.set(url);
}

/// `line` followed by the dashboard link to its instance, when it is the engine's line for a failed
/// activity or orchestration (`... failed: <reason> instance=<id>`).
fn with_dashboard_link(line: &str) -> String {
    let (Some(base), true) = (DASHBOARD.get(), line.contains(" failed: ")) else { return line.to_owned() };
    let Some((_, rest)) = line.rsplit_once("instance=") else { return line.to_owned() };
    let id: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != ',' && *c != '}').collect();
    if id.is_empty() {
        return line.to_owned();
    }
    let mut encoded = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{line} (dashboard: {base}#/instance/{encoded})")
}

/// Writes the local host's console lines.
#[derive(Debug, Clone, Copy)]
pub struct Console {
    color: bool,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const CYAN: &str = "\x1b[36m";

impl Console {
    /// A console that colours its lines when stdout is a terminal and `NO_COLOR` is not set.
    pub fn new() -> Self {
        Self { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color { format!("{color}{text}{RESET}") } else { text.to_owned() }
    }

    fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn stamp(&self) -> String {
        self.paint(DIM, &format!("[{}]", chrono::Utc::now().format("%H:%M:%S%.3f")))
    }

    /// A message from the host itself.
    pub fn info(&self, message: &str) {
        self.line(&format!("{} {message}", self.stamp()));
    }

    /// A warning from the host.
    pub fn warn(&self, message: &str) {
        self.line(&format!("{} {}", self.stamp(), self.paint(YELLOW, &format!("warning: {message}"))));
    }

    /// An error from the host.
    pub fn error(&self, message: &str) {
        self.line(&format!("{} {}", self.stamp(), self.paint(RED, &format!("error: {message}"))));
    }

    /// One finished invocation: function, trigger, invocation id, duration and outcome.
    pub fn invocation(&self, function: &str, trigger: &str, id: &str, took: Duration, outcome: Result<(), &str>) {
        let ms = format!("{:.1} ms", took.as_secs_f64() * 1000.0);
        let result = match outcome {
            Ok(()) => self.paint(GREEN, "Succeeded"),
            Err(e) => self.paint(RED, &format!("Failed: {e}")),
        };
        self.line(&format!(
            "{} {} ({trigger}, Id={id}, Duration={ms}) {result}",
            self.stamp(),
            self.paint(CYAN, &format!("Executed '{function}'"))
        ));
    }

    /// Counts a successful invocation instead of printing it; every [`TALLY_PERIOD`] one line per
    /// function says how many succeeded: `Executed 'DurableWork' 37 times (queueTrigger, last 1 s)
    /// Succeeded`. Call from within a Tokio runtime.
    pub fn tally(&self, function: &str, trigger: &str) {
        {
            let mut t = TALLIES.lock().unwrap_or_else(|p| p.into_inner());
            t.entry(function.to_owned()).or_insert_with(|| (trigger.to_owned(), 0)).1 += 1;
        }
        let console = *self;
        FLUSHER.call_once(|| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(TALLY_PERIOD);
                loop {
                    tick.tick().await;
                    console.flush_tallies();
                }
            });
        });
    }

    /// Prints the tallied successes now.
    pub fn flush_tallies(&self) {
        let taken = std::mem::take(&mut *TALLIES.lock().unwrap_or_else(|p| p.into_inner()));
        for (function, (trigger, n)) in taken {
            let secs = TALLY_PERIOD.as_secs_f64();
            self.line(&format!(
                "{} {} {n} {} ({trigger}, last {secs} s) {}",
                self.stamp(),
                self.paint(CYAN, &format!("Executed '{function}'")),
                if n == 1 { "time" } else { "times" },
                self.paint(GREEN, "Succeeded")
            ));
        }
    }

    /// The `Logs` lines an invocation returned.
    pub fn logs(&self, function: &str, lines: &[String]) {
        for l in lines {
            let l = with_dashboard_link(l);
            self.line(&format!("{} {} {l}", self.stamp(), self.paint(DIM, &format!("{function}:"))));
        }
    }

    /// A line the handler process wrote to stdout or stderr.
    pub fn worker_output(&self, line: &str, stderr: bool) {
        // The runtime's own line for a failed invocation (`ERROR <function> failed: <error>
        // [invocation <id>]`) says what the host's `Executed '<function>' ... Failed: <error>` line
        // says next: shown once.
        if stderr && is_failure_line(line) {
            return;
        }
        // A line that starts with `LanguageWorkerConsoleLog` goes to the host's own log without
        // that prefix (`WorkerProcessUtilities.IsConsoleLog`, `RemoveLogPrefix`).
        let line = match line.get(..24) {
            Some(p) if p.eq_ignore_ascii_case("LanguageWorkerConsoleLog") => &line[24..],
            _ => line,
        };
        let line = with_dashboard_link(line);
        let text = if stderr && super::worker::stderr_is_error(&line) { self.paint(RED, &line) } else { line.clone() };
        self.line(&format!("{} {} {text}", self.stamp(), self.paint(DIM, "handler:")));
    }
}

/// Whether `line` is the runtime's line for a failed invocation (azfn's `server::failure`).
fn is_failure_line(line: &str) -> bool {
    line.starts_with("ERROR ") && line.contains(" failed: ") && line.ends_with(']') && line.contains(" [invocation ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtimes_failure_line_is_left_to_the_hosts() {
        assert!(is_failure_line("ERROR ShipNotice failed: boom [invocation 6f1c]"));
        assert!(!is_failure_line("ERROR something else"));
    }

    #[test]
    fn failure_lines_link_to_their_instance_in_the_dashboard() {
        set_dashboard_url("http://127.0.0.1:7071/api/dashboard".to_owned());
        let line = "WARN azfn::durable::dispatch: orchestration HelloSequence failed: boom instance=order 1:0001";
        // (An id ends at white space; `instance=order` is what the line carries here.)
        assert_eq!(
            with_dashboard_link(line),
            format!("{line} (dashboard: http://127.0.0.1:7071/api/dashboard#/instance/order)")
        );
        let line = "WARN activity SayHello failed: no city instance=a/b%c";
        assert!(with_dashboard_link(line).ends_with("#/instance/a%2Fb%25c)"));
        let plain = "INFO HelloSequence: started instance=abc";
        assert_eq!(with_dashboard_link(plain), plain, "only failures get a link");
    }
}
