//! Metadata every invocation carries: `sys` and, on retries, `RetryContext`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// `Metadata.sys`: webjobs-sdk's `SystemBindingData`, sent with every trigger type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SysMetadata {
    /// The function name.
    pub method_name: String,
    /// When the host built the invocation.
    #[serde(rename = "UtcNow")]
    pub utc_now: DateTime<Utc>,
    /// A fresh GUID, usable in binding expressions as `{rand-guid}`.
    pub rand_guid: String,
}

/// `Metadata.RetryContext`: present when the function has a host retry policy (`retry` in host.json
/// or function.json), on every attempt; `retry_count` is 0 on the first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryContext {
    /// Which retry this is: 0 for the first attempt, 1 for the first retry.
    pub retry_count: u32,
    /// The policy's `maxRetryCount` (-1 for forever).
    pub max_retry_count: i32,
    /// The exception of the previous attempt, as the host serialized it.
    #[serde(default)]
    pub exception: Value,
}
