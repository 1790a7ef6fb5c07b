//! One invocation through the built-in host: read the input bindings, POST the invocation to the
//! handler, apply its answer as the real host does, write the outputs, and log a console line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bindings::Bindings;
use super::console::Console;
use super::invocation::Invocation;
use super::queue_listener::parse_timespan;
use super::response::{Applied, apply, never_completes};
use super::retry_policy::{Failure, RetryPolicy, retry_context, retry_exception};
use super::worker::Worker;
use azfn::function_json::{AppMetadata, FunctionSpec};

/// Runs invocations of the app's functions.
#[derive(Debug)]
pub struct Invoker {
    /// The app's host.json and function.json files.
    pub meta: AppMetadata,
    /// Storage for inputs and outputs.
    pub bindings: Arc<Bindings>,
    /// The handler process.
    pub worker: Arc<Worker>,
    /// Where console lines go.
    pub console: Console,
    /// Each function's `retry` policy (its own, else host.json's), read once at start-up.
    policies: std::collections::BTreeMap<String, RetryPolicy>,
    /// Invocations under way (retries and their waits included).
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Invoker {
    /// An invoker for the app; reads every function's retry policy now, warning once about a bad one.
    pub fn new(meta: AppMetadata, bindings: Arc<Bindings>, worker: Arc<Worker>, console: Console) -> Self {
        let mut policies = std::collections::BTreeMap::new();
        for spec in meta.functions.values() {
            let (value, where_) = match &spec.json.retry {
                Some(v) => (Some(v), spec.source.display().to_string()),
                None => (meta.host.retry.as_ref(), "host.json".to_owned()),
            };
            match RetryPolicy::parse(value, &where_) {
                Ok(Some(p)) => {
                    policies.insert(spec.name.clone(), p);
                }
                Ok(None) => {}
                Err(e) => console.warn(&format!("{e}; no retries")),
            }
        }
        Self { meta, bindings, worker, console, policies, in_flight: Default::default() }
    }

    /// Waits until no invocation has been under way for `quiet` (a trigger that has just received
    /// work gets to start it), or `limit` has passed.
    pub async fn idle(&self, quiet: Duration, limit: Duration) {
        use std::sync::atomic::Ordering;
        let deadline = Instant::now() + limit;
        let mut idle_since = Instant::now();
        while Instant::now() < deadline {
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                idle_since = Instant::now();
            } else if idle_since.elapsed() >= quiet {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The function's metadata, or an error naming the known functions.
    pub fn spec(&self, function: &str) -> Result<&FunctionSpec, String> {
        self.meta.functions.get(function).ok_or_else(|| {
            format!(
                "no function named {function:?}; the app has: {}",
                self.meta.functions.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Runs `inv` for `function` (triggered by `trigger`, for the console line), as the real host
    /// does: each attempt is cut at `functionTimeout`, and a failed one runs again as the
    /// function's (or host.json's) `retry` policy says, with `Metadata.RetryContext`.
    pub async fn invoke(&self, function: &str, trigger: &str, inv: Invocation) -> Result<Applied, String> {
        let _counted = InFlight::enter(&self.in_flight);
        let spec = match self.spec(function) {
            Ok(spec) => spec,
            Err(e) => {
                let id = uuid::Uuid::new_v4().to_string();
                self.console.invocation(function, trigger, &id, Duration::ZERO, Err(&e));
                return Err(e);
            }
        };
        let policy = self.policies.get(&spec.name).cloned();
        let mut delays = policy.as_ref().map(RetryPolicy::delays);
        let mut retry = 0u32;
        let timeout = self.function_timeout();
        let mut attempt_inv = inv.clone();
        if let Some(policy) = &policy {
            // webjobs-sdk creates the RetryContext before the first attempt (RetryCount 0).
            attempt_inv.metadata.insert("RetryContext".into(), retry_context(policy, 0, None));
        }
        loop {
            let id = uuid::Uuid::new_v4().to_string();
            let started = Instant::now();
            let mut failure = None;
            let generation = self.worker.generation();
            let result = match tokio::time::timeout(timeout, self.run(spec, &id, &mut attempt_inv)).await {
                Ok(r) => r,
                Err(_) => {
                    failure = Some(Failure::Timeout { timeout, id: id.clone() });
                    Err(self.timed_out(function, &id, timeout))
                }
            };
            let outcome = result.as_ref().map(|_| ()).map_err(String::as_str);
            if outcome.is_ok() && is_durable(function) {
                self.console.tally(function, trigger);
            } else {
                self.console.invocation(function, trigger, &id, started.elapsed(), outcome);
            }
            let error = match result {
                Ok(applied) => return Ok(applied),
                Err(e) => e,
            };
            let (Some(policy), Some(delays)) = (&policy, delays.as_mut()) else { return Err(error) };
            retry += 1;
            if !policy.allows(retry) {
                return Err(error);
            }
            let timed_out = matches!(failure, Some(Failure::Timeout { .. }));
            // (A handler that is not back is met, and reported, by the next attempt.)
            let _ = self.wait_to_retry(function, policy, delays, retry, timed_out.then_some(generation)).await;
            attempt_inv = inv.clone();
            let failure = failure.unwrap_or_else(|| Failure::from_error(&error));
            let exception = retry_exception(&spec.name, &failure);
            attempt_inv.metadata.insert("RetryContext".into(), retry_context(policy, retry, Some(exception)));
        }
    }

    /// Waits before retry `retry` of `function`: the policy's next delay, announced on the console;
    /// after a timeout (`restarted_after`: the handler's generation when the attempt began) also until
    /// the restarted handler is ready, so that the retry does not go to the one that hung.
    pub(crate) async fn wait_to_retry(
        &self,
        function: &str,
        policy: &RetryPolicy,
        delays: &mut super::retry_policy::Delays,
        retry: u32,
        restarted_after: Option<u64>,
    ) -> Result<(), String> {
        let delay = delays.next_delay(crate::host::jitter());
        self.console.warn(&policy.announce(function, retry, delay));
        tokio::time::sleep(delay).await;
        match restarted_after {
            Some(generation) => self.worker.ready_after(generation).await,
            None => Ok(()),
        }
    }

    /// The function's retry policy (its own, else host.json's), if it has one.
    pub(crate) fn policy(&self, function: &str) -> Option<RetryPolicy> {
        self.spec(function).ok().and_then(|spec| self.policies.get(&spec.name).cloned())
    }

    /// host.json's `functionTimeout`, or the host's default: 30 minutes, 5 on Consumption
    /// (`WEBSITE_SKU=Dynamic`); `-1` means none.
    pub(crate) fn function_timeout(&self) -> Duration {
        // (Checked when the host started: `start` refuses a value the host would stop with.)
        function_timeout(self.meta.host.function_timeout.as_ref(), std::env::var("WEBSITE_SKU").ok().as_deref())
            .unwrap_or(Duration::from_secs(30 * 60))
    }

    /// What happens when an invocation outlasts `timeout`: the host gives it a grace period (2 s),
    /// then restarts the handler process (`WebScriptHostExceptionHandler.OnTimeoutExceptionAsync`).
    /// Gives the failure's message.
    pub(crate) fn timed_out(&self, function: &str, id: &str, timeout: Duration) -> String {
        let worker = self.worker.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            worker.restart();
        });
        format!(
            "Timeout value of {} exceeded by function '{function}' (Id: '{id}'); it was cancelled, and \
             the handler restarts in 2 s (host.json functionTimeout)",
            timespan(timeout)
        )
    }

    async fn run(&self, spec: &FunctionSpec, id: &str, inv: &mut Invocation) -> Result<Applied, String> {
        self.bindings.read_inputs(spec, inv).await?;
        super::invocation::apply_data_type(spec.trigger(), inv);
        let body = serde_json::to_vec(&inv.to_json()).map_err(|e| e.to_string())?;
        let (status, content_type, answer) = self.worker.invoke(&spec.name, id, body).await?;
        if (200..300).contains(&status) && never_completes(&answer) {
            // The real host never completes an invocation whose answer is empty or `null`: it
            // waits until functionTimeout cuts it (docs/host-fidelity.md §7). So does this host.
            self.console.warn(&format!(
                "{}: the handler answered {} with no result (an empty or null body); the Functions host never \
                 completes such an invocation, so it fails at functionTimeout",
                spec.name, status
            ));
            std::future::pending::<()>().await;
        }
        let applied = match apply(spec, &inv.metadata, status, content_type.as_deref(), &answer) {
            Ok(a) => a,
            Err(e) => {
                // The runtime puts the error (and the captured logs) in a failed answer's body: its
                // message is enough here (the logs were printed as the handler's output).
                let parsed: Option<serde_json::Value> = serde_json::from_slice(&answer).ok();
                let text = String::from_utf8_lossy(&answer);
                let detail = match parsed.as_ref().and_then(|v| v["error"]["message"].as_str()) {
                    Some(message) => message,
                    None => text.trim(),
                };
                return Err(if detail.is_empty() {
                    e
                } else {
                    format!("{e}: {}", detail.chars().take(2000).collect::<String>())
                });
            }
        };
        self.console.logs(&spec.name, &applied.logs);
        for w in &applied.writes {
            self.bindings.write(spec, w).await.map_err(|e| format!("writing outputs: {e}"))?;
        }
        Ok(applied)
    }
}

/// The host's limit on one invocation, checked as the host checks host.json's `functionTimeout`
/// (`ScriptJobHostOptionsSetup.ConfigureFunctionTimeout`, `ValidateTimeoutValue`; docs/host-fidelity.md):
/// unset, 5 minutes on the Consumption plan (`WEBSITE_SKU=Dynamic`) and 30 elsewhere (Flex
/// Consumption included); `-1` (minus one day) is no limit where the plan allows it (not on
/// Consumption); any other value must lie from 1 second to 10 minutes on Consumption, from 1
/// second up elsewhere. `Err` is what the host stops with.
pub fn function_timeout(configured: Option<&serde_json::Value>, sku: Option<&str>) -> Result<Duration, String> {
    const NONE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let consumption = sku.is_some_and(|s| s.eq_ignore_ascii_case("Dynamic"));
    let Some(v) = configured else {
        return Ok(Duration::from_secs(if consumption { 5 * 60 } else { 30 * 60 }));
    };
    let max = if consumption { "00:10:00" } else { "10675199.02:48:05.4775807" };
    let out_of_range = || format!("FunctionTimeout must be greater than 00:00:01 and less than {max}.");
    let text = v.as_str().map(str::trim);
    if v.as_i64() == Some(-1) || matches!(text, Some("-1" | "-1.00:00:00")) {
        return if consumption { Err(out_of_range()) } else { Ok(NONE) };
    }
    if text.is_some_and(|t| t.starts_with('-')) {
        return Err(out_of_range());
    }
    let timeout = parse_timespan(v).ok_or_else(|| {
        format!("functionTimeout {v} is not a TimeSpan such as \"00:10:00\" (the host cannot read its configuration)")
    })?;
    let too_long = consumption && timeout > Duration::from_secs(10 * 60);
    if timeout < Duration::from_secs(1) || too_long { Err(out_of_range()) } else { Ok(timeout) }
}

/// `hh:mm:ss` as .NET prints a TimeSpan.
fn timespan(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Counts an invocation in [`Invoker::idle`]'s counter while it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The durable engine's queue functions, whose successes the console tallies.
fn is_durable(function: &str) -> bool {
    function == azfn::durable::CONTROL_FUNCTION || function == azfn::durable::WORK_FUNCTION
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// azure-functions-host `src/WebJobs.Script/Config/ScriptJobHostOptionsSetup.cs` (dev @ 89dc438):
    ///
    /// ```text
    /// 18 internal static readonly TimeSpan MinFunctionTimeout = TimeSpan.FromSeconds(1);
    /// 19 internal static readonly TimeSpan DefaultConsumptionFunctionTimeout = TimeSpan.FromMinutes(5);
    /// 20 internal static readonly TimeSpan MaxFunctionTimeoutDynamic = TimeSpan.FromMinutes(10);
    /// 21 internal static readonly TimeSpan DefaultFunctionTimeout = TimeSpan.FromMinutes(30);
    /// 101     options.FunctionTimeout = (_environment.IsConsumptionSku() && !_environment.IsFlexConsumptionSku()) ? DefaultConsumptionFunctionTimeout : DefaultFunctionTimeout;
    /// 103 else if (SkuSupportsUnboundedTimeout(_environment) && TimeSpan.Compare(options.FunctionTimeout.Value, TimeSpan.FromDays(-1)) == 0)
    /// 126 if (timeoutValue < MinFunctionTimeout || timeoutValue > maxTimeout)
    /// 128     string message = $"{nameof(options.FunctionTimeout)} must be greater than {MinFunctionTimeout} and less than {maxTimeout}.";
    /// 136 return !environment.IsConsumptionSku() || environment.IsFlexConsumptionSku();
    /// ```
    ///
    /// The messages are those of `ScriptJobHostOptionsSetupTests.cs` lines 250 and 272.
    #[test]
    fn function_timeout_is_checked_as_the_host_checks_it() {
        let t = |v: Option<serde_json::Value>, sku: Option<&str>| function_timeout(v.as_ref(), sku);
        assert_eq!(t(None, None), Ok(Duration::from_secs(1800)));
        assert_eq!(t(None, Some("Dynamic")), Ok(Duration::from_secs(300)));
        assert_eq!(t(None, Some("FlexConsumption")), Ok(Duration::from_secs(1800)));
        assert_eq!(t(Some(json!("00:00:02")), Some("Dynamic")), Ok(Duration::from_secs(2)));
        // The bounds are inclusive, whatever the message says.
        assert_eq!(t(Some(json!("00:00:01")), None), Ok(Duration::from_secs(1)));
        assert_eq!(t(Some(json!("00:10:00")), Some("Dynamic")), Ok(Duration::from_secs(600)));
        assert!(t(Some(json!("-1")), None).unwrap() > Duration::from_secs(86_400 * 365));
        assert!(t(Some(json!("-1")), Some("FlexConsumption")).is_ok());
        let dynamic = "FunctionTimeout must be greater than 00:00:01 and less than 00:10:00.";
        assert_eq!(t(Some(json!("-1")), Some("Dynamic")).unwrap_err(), dynamic);
        assert_eq!(t(Some(json!("00:10:01")), Some("Dynamic")).unwrap_err(), dynamic);
        assert_eq!(
            t(Some(json!("00:00:00.5")), None).unwrap_err(),
            "FunctionTimeout must be greater than 00:00:01 and less than 10675199.02:48:05.4775807."
        );
        assert!(t(Some(json!("ten minutes")), None).unwrap_err().contains("not a TimeSpan"));
        assert_eq!(timespan(Duration::from_secs(3725)), "01:02:05");
    }
}
