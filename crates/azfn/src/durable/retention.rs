//! Retention: finished instances older than a policy says are purged in the background, as the
//! Durable Task Scheduler's retention policies do, so that history does not grow until someone
//! purges it by hand.
//!
//! The app setting [`SETTING`] says how long each final status is kept after the instance
//! finished: `completed=30d,failed=90d,terminated=30d` (any of the three; a number with `d`, `h`, `m`
//! or `s`). Unset, nothing is purged. Every worker runs a pass every [`EVERY_SETTING`] (10 minutes by
//! default, with up to a tenth more at random so that workers spread out). A pass lists the
//! instances of each named status created before the cutoff, a page of [`BATCH`] at a time, and
//! purges those of the page that finished before it, one after the other, with a pause between
//! pages and at most [`MAX_PER_PASS`] per status, so that it never crowds out the app's own work
//! and a backlog is worked off over several passes. A purge deletes only rows unchanged since it read them and
//! skips an instance whose messages to entities are not all sent (`InstanceStore::purge`), so passes
//! on several workers at once are harmless; blobs of large values go with their instance.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::client::DurableClient;
use super::error::DurableError;
use super::store::{ListFilter, RuntimeStatus};

/// The app setting with the policy.
pub const SETTING: &str = "AZFN_DURABLE_RETENTION";
/// The app setting with the time between passes (default 10 minutes).
pub const EVERY_SETTING: &str = "AZFN_DURABLE_RETENTION_EVERY";
/// Instances listed, and purged, per page of a pass.
pub const BATCH: u32 = 50;
/// The pause between two pages of a pass.
const PAUSE: Duration = Duration::from_millis(200);
/// At most this many instances are tried per status in one pass.
pub const MAX_PER_PASS: usize = 1000;

/// How long each final status is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Per status named, how long after it finished an instance is kept.
    pub keep: Vec<(RuntimeStatus, Duration)>,
}

/// A length of time as the settings write it: a whole number and `d`, `h`, `m` or `s`.
///
/// ```
/// use azfn::durable::retention::parse_span;
/// assert_eq!(parse_span("30d"), Some(std::time::Duration::from_secs(30 * 86_400)));
/// assert_eq!(parse_span("90m"), Some(std::time::Duration::from_secs(5400)));
/// assert_eq!(parse_span("30"), None);
/// ```
pub fn parse_span(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit = match text.chars().last()? {
        'd' => 86_400,
        'h' => 3600,
        'm' => 60,
        's' => 1,
        _ => return None,
    };
    let n: u64 = text[..text.len() - 1].trim().parse().ok()?;
    Some(Duration::from_secs(n.checked_mul(unit)?))
}

/// A span written back in the largest whole unit (`30d`, `90m`).
fn span_text(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [('d', 86_400), ('h', 3600), ('m', 60)] {
        if s > 0 && s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

impl RetentionPolicy {
    /// Reads `completed=30d,failed=90d,terminated=30d`; an error names what is wrong.
    ///
    /// ```
    /// use azfn::durable::retention::RetentionPolicy;
    /// let p = RetentionPolicy::parse("completed=30d, failed=90d").unwrap();
    /// assert_eq!(p.keep.len(), 2);
    /// assert!(RetentionPolicy::parse("running=1d").unwrap_err().contains("completed, failed or terminated"));
    /// ```
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keep = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (status, span) = part
                .split_once('=')
                .ok_or_else(|| format!("{SETTING}: `{part}` should be status=span, such as completed=30d"))?;
            let status = match status.trim().to_ascii_lowercase().as_str() {
                "completed" => RuntimeStatus::Completed,
                "failed" => RuntimeStatus::Failed,
                "terminated" => RuntimeStatus::Terminated,
                other => {
                    return Err(format!(
                        "{SETTING}: `{other}` is not a final status; name completed, failed or terminated"
                    ));
                }
            };
            let span = parse_span(span).filter(|d| !d.is_zero()).ok_or_else(|| {
                format!("{SETTING}: `{}` should be a number and d, h, m or s, such as 30d", span.trim())
            })?;
            if keep.iter().any(|(s, _)| *s == status) {
                return Err(format!("{SETTING}: {status:?} is named twice"));
            }
            keep.push((status, span));
        }
        if keep.is_empty() {
            return Err(format!("{SETTING} is empty; leave it unset to keep every instance"));
        }
        Ok(Self { keep })
    }

    /// The policy of the process's environment: `None` when [`SETTING`] is unset.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(SETTING) {
            Ok(text) if !text.trim().is_empty() => Self::parse(&text).map(Some),
            _ => Ok(None),
        }
    }

    /// The policy as the API shows it: `{"Completed": "30d", ...}`.
    pub fn describe(&self) -> Value {
        Value::Object(self.keep.iter().map(|(s, d)| (format!("{s:?}"), Value::String(span_text(*d)))).collect())
    }
}

/// The time between passes: [`EVERY_SETTING`], or 10 minutes.
pub fn every_from_env() -> Result<Duration, String> {
    match std::env::var(EVERY_SETTING) {
        Ok(text) if !text.trim().is_empty() => parse_span(&text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{EVERY_SETTING}: `{text}` should be a number and d, h, m or s, such as 10m")),
        _ => Ok(Duration::from_secs(600)),
    }
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPass {
    /// When it started.
    pub started: DateTime<Utc>,
    /// Instances purged.
    pub purged: usize,
    /// Instances it left: started again meanwhile, or with messages to entities still unsent.
    pub kept: usize,
    /// Why it stopped early, if it did (it tries again at the next pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last pass this process ran.
static LAST: Mutex<Option<RetentionPass>> = Mutex::new(None);

/// Runs one pass of `policy` at `now`.
pub async fn pass(client: &DurableClient, policy: &RetentionPolicy, now: DateTime<Utc>) -> RetentionPass {
    let mut done = RetentionPass { started: now, purged: 0, kept: 0, error: None };
    if let Err(e) = purge_expired(client, policy, now, &mut done).await {
        done.error = Some(e.to_string());
    }
    *LAST.lock().unwrap_or_else(|e| e.into_inner()) = Some(done.clone());
    done
}

async fn purge_expired(
    client: &DurableClient,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    done: &mut RetentionPass,
) -> Result<(), DurableError> {
    let mut first_error = None;
    for (status, keep) in &policy.keep {
        let cutoff = chrono::Duration::from_std(*keep)
            .ok()
            .and_then(|k| now.checked_sub_signed(k))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        // Created after the cutoff means finished after it too: not listed.
        let filter = ListFilter { statuses: vec![*status], created_to: Some(cutoff), ..ListFilter::default() };
        // A page at a time, purged before the next is read (the table's continuation is a key, so
        // rows deleted before it do not move it), with at most MAX_PER_PASS purges for a status in
        // one pass: a backlog is worked off over several passes, never in one long burst.
        let mut token: Option<String> = None;
        let mut tried = 0;
        loop {
            let (items, next) = client.list(&filter, Some(BATCH), token.as_deref()).await?;
            for item in items.into_iter().filter(|i| i.last_updated_time <= cutoff) {
                tried += 1;
                // Only the run listed: one started again (or rewound) since is not the one that expired.
                match client.purge_execution(&item.instance_id, Some(&item.execution_id)).await {
                    Ok(()) => done.purged += 1,
                    Err(DurableError::Conflict(_)) => done.kept += 1,
                    Err(DurableError::NotFound(_)) => {}
                    // One instance's failure does not stop the others; the pass reports the first.
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            tokio::time::sleep(PAUSE).await;
            match next {
                Some(t) if tried < MAX_PER_PASS => token = Some(t),
                _ => break,
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Runs a pass every `every` (and a little more, at random), for ever; each is logged.
pub async fn run(client: DurableClient, policy: RetentionPolicy, every: Duration) {
    loop {
        let spread = super::clock::jitter(every / 10);
        tokio::time::sleep(every + spread).await;
        let done = pass(&client, &policy, Utc::now()).await;
        match &done.error {
            None if done.purged + done.kept == 0 => tracing::debug!("retention pass: nothing to purge"),
            None => tracing::info!(purged = done.purged, kept = done.kept, "retention pass"),
            Some(e) => tracing::warn!(purged = done.purged, "retention pass stopped early (tried again later): {e}"),
        }
    }
}

/// What `GET orchestrators/retention` answers: the policy (`null` when off), the time between
/// passes, and this process's last pass.
pub fn status() -> Value {
    let policy = RetentionPolicy::from_env();
    let last = LAST.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match policy {
        Ok(policy) => json!({
            "policy": policy.as_ref().map(RetentionPolicy::describe),
            "every": every_from_env().map(span_text).unwrap_or_else(|e| e),
            "lastPass": last,
        }),
        Err(e) => json!({"policy": null, "error": e, "lastPass": last}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_read_and_refused_with_what_is_wrong() {
        let p = RetentionPolicy::parse("completed=30d,Terminated=12h,failed=90m").unwrap();
        assert_eq!(p.describe(), json!({"Completed": "30d", "Terminated": "12h", "Failed": "90m"}));
        for (text, says) in [
            ("completed", "status=span"),
            ("completed=soon", "a number and d, h, m or s"),
            ("completed=0d", "a number and d, h, m or s"),
            ("completed=1d,completed=2d", "named twice"),
            ("pending=1d", "not a final status"),
            (" , ", "is empty"),
        ] {
            let e = RetentionPolicy::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert_eq!(span_text(Duration::from_secs(45)), "45s");
    }
}
