//! Retry policies: `retry` in host.json (every function) or in a function.json (that function), as
//! the real host applies them to a failed invocation (webjobs-sdk `FixedDelayRetryAttribute`,
//! `ExponentialBackoffRetryAttribute`, `FunctionExecutor`; docs/host-fidelity.md):
//!
//! - `{"strategy": "fixedDelay", "maxRetryCount": n, "delayInterval": "hh:mm:ss"}`;
//! - `{"strategy": "exponentialBackoff", "maxRetryCount": n, "minimumInterval": ..., "maximumInterval": ...}`,
//!   with webjobs-sdk's `RandomizedExponentialBackoffStrategy`: the first delay is the minimum,
//!   then the minimum plus `2^(k-1)` times the minimum (each ±20 % at random), up to the maximum;
//! - `maxRetryCount` -1 retries forever;
//! - every attempt carries `Metadata.RetryContext` `{"RetryCount", "MaxRetryCount", "Exception", ...}`,
//!   with `RetryCount` 0 on the first;
//! - the function.json policy wins over host.json's; retries are in memory, and a queue message's
//!   own retries come on top of them.

use std::time::Duration;

use serde_json::{Value, json};

use super::queue_listener::parse_timespan;

/// A retry policy.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryPolicy {
    /// The same delay before each retry.
    FixedDelay {
        /// Retries after the first attempt (-1: forever).
        max_retry_count: i32,
        /// The delay.
        delay: Duration,
    },
    /// Growing delays between a minimum and a maximum.
    ExponentialBackoff {
        /// Retries after the first attempt (-1: forever).
        max_retry_count: i32,
        /// The first delay.
        minimum: Duration,
        /// The longest delay.
        maximum: Duration,
    },
}

impl RetryPolicy {
    /// Reads a `retry` object; `None` when there is none. `where_` names the file in errors.
    pub fn parse(value: Option<&Value>, where_: &str) -> Result<Option<Self>, String> {
        let Some(v) = value.filter(|v| !v.is_null()) else { return Ok(None) };
        let get =
            |key: &str| v.as_object().and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v));
        let max = get("maxRetryCount")
            .and_then(Value::as_i64)
            .filter(|n| *n >= -1)
            .ok_or_else(|| format!("{where_}: retry.maxRetryCount should be a whole number, -1 or more"))?
            as i32;
        let span = |key: &str| {
            get(key)
                .and_then(parse_timespan)
                .ok_or_else(|| format!("{where_}: retry.{key} should be a time span such as \"00:00:10\""))
        };
        match get("strategy").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
            Some("fixeddelay") => Ok(Some(Self::FixedDelay { max_retry_count: max, delay: span("delayInterval")? })),
            Some("exponentialbackoff") => {
                let (minimum, maximum) = (span("minimumInterval")?, span("maximumInterval")?);
                if minimum > maximum {
                    return Err(format!("{where_}: retry.minimumInterval is longer than retry.maximumInterval"));
                }
                Ok(Some(Self::ExponentialBackoff { max_retry_count: max, minimum, maximum }))
            }
            other => Err(format!(
                "{where_}: retry.strategy {:?} should be \"fixedDelay\" or \"exponentialBackoff\"",
                other.unwrap_or("(missing)")
            )),
        }
    }

    /// The console line for retry number `retry` of `function`, due in `delay`.
    pub fn announce(&self, function: &str, retry: u32, delay: std::time::Duration) -> String {
        let of = match self.max_retry_count() {
            n if n < 0 => "unlimited".to_owned(),
            n => n.to_string(),
        };
        format!("{function}: retry {retry} of {of} in {:.1} s (retry policy)", delay.as_secs_f64())
    }

    /// Retries allowed after the first attempt (-1: forever).
    pub fn max_retry_count(&self) -> i32 {
        match self {
            Self::FixedDelay { max_retry_count, .. } | Self::ExponentialBackoff { max_retry_count, .. } => {
                *max_retry_count
            }
        }
    }

    /// Whether retry number `retry` (1 for the first) may run.
    pub fn allows(&self, retry: u32) -> bool {
        let max = self.max_retry_count();
        max == -1 || i64::from(retry) <= i64::from(max)
    }

    /// A fresh delay sequence for one invocation.
    pub fn delays(&self) -> Delays {
        Delays { policy: self.clone(), exponent: 0, current: Duration::ZERO }
    }
}

/// The delays before each retry of one invocation.
#[derive(Debug, Clone)]
pub struct Delays {
    policy: RetryPolicy,
    exponent: u32,
    current: Duration,
}

impl Delays {
    /// The delay before the next retry; `random` in [0, 1) picks the ±20 % of a backoff step.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        match self.policy {
            RetryPolicy::FixedDelay { delay, .. } => delay,
            RetryPolicy::ExponentialBackoff { minimum, maximum, .. } => {
                if self.current != maximum {
                    let mut interval = minimum;
                    if self.exponent > 0 {
                        let factor = 0.8 + 0.4 * random;
                        let step = factor * 2f64.powi(self.exponent as i32 - 1) * minimum.as_secs_f64();
                        interval += Duration::from_secs_f64(step);
                    }
                    if interval < maximum {
                        self.current = interval;
                        self.exponent += 1;
                    } else {
                        self.current = maximum;
                    }
                }
                self.current
            }
        }
    }
}

/// Why an attempt failed, as far as the host can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// It outlasted `functionTimeout`.
    Timeout {
        /// The limit.
        timeout: Duration,
        /// The attempt's invocation id.
        id: String,
    },
    /// The handler answered with this non-success status.
    Status(u16),
    /// Something else failed (the handler did not answer, a binding failed): the built-in host's
    /// own message.
    Other(String),
}

impl Failure {
    /// The failure an invoker's error text describes: the invoker's messages for a status start
    /// with .NET's own "Response status code does not indicate success: {code}".
    pub fn from_error(error: &str) -> Self {
        error
            .strip_prefix("Response status code does not indicate success: ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .map_or_else(|| Failure::Other(error.to_owned()), Failure::Status)
    }
}

/// `RetryContext.Exception` for a failed attempt of `function`, as the real host serializes it:
/// webjobs-sdk wraps the failure in a `FunctionInvocationException` whose message names the
/// function as `Functions.{name}` (the host's generated type is `Functions`), except a timeout,
/// which stays a `FunctionTimeoutException`; a custom handler's error status is the
/// `HttpRequestException` of `EnsureSuccessStatusCode`, so the handler's own error text is not in
/// it. Only `ClassName`, `Message` and `InnerException` of the serialized exceptions are given.
pub fn retry_exception(function: &str, failure: &Failure) -> Value {
    let inner = match failure {
        Failure::Timeout { timeout, id } => {
            let s = timeout.as_secs();
            return json!({
                "ClassName": "Microsoft.Azure.WebJobs.Host.FunctionTimeoutException",
                "Message": format!(
                    "Timeout value of {:02}:{:02}:{:02} exceeded by function 'Functions.{function}' (Id: '{id}'). Initiating cancellation.",
                    s / 3600, s / 60 % 60, s % 60
                ),
            });
        }
        Failure::Status(code) => {
            let reason = reqwest::StatusCode::from_u16(*code).ok().and_then(|c| c.canonical_reason()).unwrap_or("");
            json!({
                "ClassName": "System.Net.Http.HttpRequestException",
                "Message": format!("Response status code does not indicate success: {code} ({reason})."),
            })
        }
        // (The built-in host's own failures have no .NET counterpart: a stand-in class.)
        Failure::Other(message) => json!({ "ClassName": "System.Exception", "Message": message }),
    };
    json!({
        "ClassName": "Microsoft.Azure.WebJobs.Host.FunctionInvocationException",
        "Message": format!("Exception while executing function: Functions.{function}"),
        "InnerException": inner,
    })
}

/// The `Metadata.RetryContext` of attempt `retry` (0 for the first), after the previous attempt's
/// `exception` ([`retry_exception`]): webjobs-sdk's `RetryContext` as the host serializes it
/// (`SetRetryContext`).
pub fn retry_context(policy: &RetryPolicy, retry: u32, exception: Option<Value>) -> Value {
    json!({
        "RetryCount": retry,
        "MaxRetryCount": policy.max_retry_count(),
        "Exception": exception,
        "Instance": null,
        "State": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_strategies_and_explains_mistakes() {
        let fixed = json!({"strategy": "fixedDelay", "maxRetryCount": 2, "delayInterval": "00:00:03"});
        assert_eq!(
            RetryPolicy::parse(Some(&fixed), "host.json").unwrap(),
            Some(RetryPolicy::FixedDelay { max_retry_count: 2, delay: Duration::from_secs(3) })
        );
        let exp = json!({"Strategy": "ExponentialBackoff", "maxRetryCount": -1, "minimumInterval": "00:00:01", "maximumInterval": "00:00:10"});
        let p = RetryPolicy::parse(Some(&exp), "f").unwrap().unwrap();
        assert!(p.allows(1_000));
        assert_eq!(RetryPolicy::parse(None, "f").unwrap(), None);
        let bad = json!({"strategy": "linear", "maxRetryCount": 1});
        assert!(RetryPolicy::parse(Some(&bad), "function.json").unwrap_err().contains("\"linear\""));
        let bad = json!({"strategy": "fixedDelay", "maxRetryCount": 1});
        assert!(RetryPolicy::parse(Some(&bad), "f").unwrap_err().contains("retry.delayInterval"));
    }

    /// webjobs-sdk `src/Microsoft.Azure.WebJobs.Host/Executors/FunctionExecutor.cs`,
    /// `GetExceptionDispatchInfo` (dev @ f79ea0b, lines 377-385):
    ///
    /// ```text
    /// if (invocationException is OperationCanceledException || invocationException is FunctionTimeoutException)
    ///     exceptionInfo = ExceptionDispatchInfo.Capture(invocationException);
    /// ...
    ///     string errorMessage = string.Format("Exception while executing function: {0}", functionInstance.FunctionDescriptor.ShortName);
    ///     FunctionInvocationException fex = new FunctionInvocationException(errorMessage, functionInstance.Id, functionInstance.FunctionDescriptor.FullName, invocationException);
    /// ```
    ///
    /// `FunctionExecutorExtensions.TryExecuteAsync` (line 72): `retryContext.Exception =
    /// functionResult?.Exception;`; azure-functions-host `DefaultHttpWorkerService.
    /// ProcessDefaultInvocationRequest` (89dc438, line 194): `invocationResponse.EnsureSuccessStatusCode();`
    /// for a custom handler's answer; `ShortName` is `Functions.{name}` (`ScriptHost.cs` line 47
    /// names the generated type `Functions`).
    #[test]
    fn the_retry_contexts_exception_is_the_hosts_wrapper() {
        let e = retry_exception(
            "ProcessOrder",
            &Failure::from_error("Response status code does not indicate success: 500: order has no items"),
        );
        assert_eq!(e["ClassName"], "Microsoft.Azure.WebJobs.Host.FunctionInvocationException");
        assert_eq!(e["Message"], "Exception while executing function: Functions.ProcessOrder");
        assert_eq!(e["InnerException"]["ClassName"], "System.Net.Http.HttpRequestException");
        assert_eq!(
            e["InnerException"]["Message"],
            "Response status code does not indicate success: 500 (Internal Server Error)."
        );
        let t = retry_exception("Slow", &Failure::Timeout { timeout: Duration::from_secs(90), id: "i-1".into() });
        assert_eq!(t["ClassName"], "Microsoft.Azure.WebJobs.Host.FunctionTimeoutException", "a timeout is not wrapped");
        assert_eq!(
            t["Message"],
            "Timeout value of 00:01:30 exceeded by function 'Functions.Slow' (Id: 'i-1'). Initiating cancellation."
        );
        assert_eq!(
            Failure::from_error("the handler did not answer: refused"),
            Failure::Other("the handler did not answer: refused".into())
        );
        let policy = RetryPolicy::FixedDelay { max_retry_count: 2, delay: Duration::from_secs(1) };
        let c = retry_context(&policy, 1, Some(e));
        assert_eq!((c["RetryCount"].as_u64(), c["MaxRetryCount"].as_i64()), (Some(1), Some(2)));
    }

    #[test]
    fn exponential_delays_grow_from_the_minimum_to_the_maximum() {
        let p = RetryPolicy::ExponentialBackoff {
            max_retry_count: 10,
            minimum: Duration::from_secs(1),
            maximum: Duration::from_secs(6),
        };
        let mut d = p.delays();
        // random 0.5: the factor is exactly 1.
        let got: Vec<f64> = (0..5).map(|_| d.next_delay(0.5).as_secs_f64()).collect();
        assert_eq!(got, [1.0, 2.0, 3.0, 5.0, 6.0]);
        assert!(p.allows(10) && !p.allows(11));
    }
}
