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

/// The `Metadata.RetryContext` of attempt `retry` (0 for the first), after the previous attempt's
/// `error`: webjobs-sdk's `RetryContext` as the host serializes it (`SetRetryContext`).
pub fn retry_context(policy: &RetryPolicy, retry: u32, error: Option<&str>) -> Value {
    json!({
        "RetryCount": retry,
        "MaxRetryCount": policy.max_retry_count(),
        "Exception": error.map(|message| json!({
            "ClassName": "Microsoft.Azure.WebJobs.Host.FunctionInvocationException",
            "Message": message,
        })),
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
