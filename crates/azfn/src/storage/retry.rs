//! When and how a storage request is tried again: the transient failures Azure Storage is known
//! for (408, 429, 500, 502, 503, 504, time-outs, dropped connections), exponential back-off with
//! jitter, the service's own `Retry-After`, and bounds on attempts and on the time spent waiting.
//!
//! The rules follow `azure_core`'s retry policy (the same six statuses; the service's delay read on 429
//! and 503 only, and the longer of it and the back-off waited); every number can be
//! changed through app settings, which the Functions host passes as environment variables:
//!
//! | setting | default | what |
//! |---|---|---|
//! | `AZFN_STORAGE_MAX_RETRIES` | 5 | retries after the first attempt (0 turns retrying off) |
//! | `AZFN_STORAGE_RETRY_DELAY_MS` | 200 | the first back-off; it doubles each time, with jitter |
//! | `AZFN_STORAGE_MAX_RETRY_DELAY_MS` | 10000 | the longest single back-off |
//! | `AZFN_STORAGE_RETRY_TOTAL_SECS` | 60 | the most time spent backing off for one request |
//! | `AZFN_STORAGE_TRY_TIMEOUT_SECS` | 30 | the time-out of one attempt |

use std::time::Duration;

use backon::ExponentialBuilder;

/// How a storage client retries a request that failed transiently.
///
/// ```
/// use std::time::Duration;
/// use azfn::storage::RetryPolicy;
///
/// let policy = RetryPolicy::default().with_max_retries(3).with_try_timeout(Duration::from_secs(5));
/// assert_eq!(policy.max_retries, 3);
/// assert_eq!(RetryPolicy::none().max_retries, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// The first back-off (doubled for each further retry, with jitter).
    pub initial_delay: Duration,
    /// The longest single back-off (also the most a `Retry-After` is honoured for).
    pub max_delay: Duration,
    /// The most time spent backing off for one request, all retries together.
    pub total_delay: Duration,
    /// How long one attempt may take before it is abandoned (and, if retries are left, tried again).
    pub try_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            total_delay: Duration::from_secs(60),
            try_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries (the time-out of an attempt still applies).
    pub fn none() -> Self {
        Self { max_retries: 0, ..Self::default() }
    }

    /// The default policy with the `AZFN_STORAGE_*` settings of the process environment applied
    /// (see the [module docs](self)); a setting that is not a number is ignored.
    pub fn from_env() -> Self {
        Self::from_settings(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env), reading settings through `get`.
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Self {
        let number = |k: &str| get(k).and_then(|v| v.trim().parse::<u64>().ok());
        let mut p = Self::default();
        if let Some(n) = number("AZFN_STORAGE_MAX_RETRIES") {
            p.max_retries = n as usize;
        }
        if let Some(ms) = number("AZFN_STORAGE_RETRY_DELAY_MS") {
            p.initial_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = number("AZFN_STORAGE_MAX_RETRY_DELAY_MS") {
            p.max_delay = Duration::from_millis(ms);
        }
        if let Some(s) = number("AZFN_STORAGE_RETRY_TOTAL_SECS") {
            p.total_delay = Duration::from_secs(s);
        }
        if let Some(s) = number("AZFN_STORAGE_TRY_TIMEOUT_SECS").filter(|s| *s > 0) {
            p.try_timeout = Duration::from_secs(s);
        }
        p
    }

    /// The same policy with `n` retries.
    pub fn with_max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// The same policy with attempts abandoned after `timeout`.
    pub fn with_try_timeout(mut self, timeout: Duration) -> Self {
        self.try_timeout = timeout;
        self
    }

    /// The back-off schedule for one request.
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay.max(self.initial_delay))
            .with_max_times(self.max_retries)
            .with_total_delay(Some(self.total_delay))
    }

    /// The delays this policy would wait, without jitter's randomness removed (for tests and docs).
    #[cfg(test)]
    fn delays(&self) -> Vec<Duration> {
        use backon::BackoffBuilder as _;
        self.backoff().build().collect()
    }
}

/// Whether a failure is worth another attempt: the statuses the Azure SDKs retry, and failures with
/// no answer at all (`status` `None`: time-outs, refused or dropped connections).
pub(crate) fn is_transient(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => matches!(s, 408 | 429 | 500 | 502 | 503 | 504),
    }
}

/// The delay the service asked for, from `x-ms-retry-after-ms`, `retry-after-ms` or `Retry-After`
/// (in seconds), in the order `azure_core` reads them.
pub(crate) fn server_delay(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).map(str::trim);
    for ms in ["x-ms-retry-after-ms", "retry-after-ms"] {
        if let Some(ms) = text(ms).and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    text("retry-after").and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_bounded_in_count_and_total_time() {
        let p = RetryPolicy::default();
        let delays = p.delays();
        assert_eq!(delays.len(), 5);
        assert!(delays.iter().all(|d| *d <= p.max_delay * 2), "{delays:?}");
        let short = RetryPolicy { total_delay: Duration::from_millis(500), ..p };
        let total: Duration = short.delays().iter().sum();
        assert!(total <= Duration::from_millis(500), "{total:?}");
        assert!(RetryPolicy::none().delays().is_empty());
    }

    #[test]
    fn settings_override_the_defaults_and_bad_numbers_are_ignored() {
        let settings = [
            ("AZFN_STORAGE_MAX_RETRIES", "2"),
            ("AZFN_STORAGE_RETRY_DELAY_MS", "50"),
            ("AZFN_STORAGE_TRY_TIMEOUT_SECS", "x"),
        ];
        let p = RetryPolicy::from_settings(|k| settings.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()));
        assert_eq!(p.max_retries, 2);
        assert_eq!(p.initial_delay, Duration::from_millis(50));
        assert_eq!(p.try_timeout, RetryPolicy::default().try_timeout);
    }

    #[test]
    fn transient_statuses_are_the_azure_sdks() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient(Some(s)), "{s}");
        }
        for s in [400, 403, 404, 409, 412] {
            assert!(!is_transient(Some(s)), "{s}");
        }
        assert!(is_transient(None));
    }

    #[test]
    fn the_service_delay_comes_from_either_header() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(server_delay(&h), None);
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(server_delay(&h), Some(Duration::from_secs(3)));
        h.insert("x-ms-retry-after-ms", "250".parse().unwrap());
        assert_eq!(server_delay(&h), Some(Duration::from_millis(250)));
    }
}
