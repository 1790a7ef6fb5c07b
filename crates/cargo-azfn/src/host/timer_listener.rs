//! The timer trigger, as the Timers extension's `TimerListener` runs it (docs/host-fidelity.md §8):
//!
//! - it fires on a six-field NCRONTAB or `hh:mm:ss` schedule, read on the wall clock of
//!   `WEBSITE_TIME_ZONE` (or `TZ`) when set, else in UTC, and once at start-up with `runOnStartup`;
//! - runs never overlap: the next occurrence is the schedule's first after the time the last
//!   invocation started ([`after_run`]), so a run that outlasted one or more occurrences is followed
//!   by one catch-up run at once (not past due), and the occurrences it missed beyond that are
//!   skipped;
//! - `ScheduleStatus.Next` is the occurrence now firing, `Last` the previous one (`0001-01-01` before
//!   the first);
//! - with the schedule monitor (`useMonitor`, on by default, off for schedules that fire more than
//!   once a minute), the status is kept in `azure-webjobs-hosts/timers/{hostId}/Host.Functions.{Name}/status`
//!   like `StorageScheduleMonitor`'s. An occurrence missed while the host was down makes the
//!   function run at start-up with `IsPastDue` true.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::bindings::Clients;
use super::blob_listener::HOSTS_CONTAINER;
use super::invocation;
use super::invoker::Invoker;
use super::schedule::Schedule;

/// One function's timer trigger.
#[derive(Debug, Clone)]
pub struct TimerTrigger {
    /// The function.
    pub function: String,
    /// The trigger binding's name.
    pub binding: String,
    /// The schedule.
    pub schedule: Schedule,
    /// `runOnStartup`.
    pub run_on_startup: bool,
    /// `useMonitor` (default true).
    pub use_monitor: bool,
    /// This host's id (the monitor's namespace).
    pub host_id: String,
    /// The time zone the schedule is read in (`WEBSITE_TIME_ZONE` or `TZ`); UTC when `None`.
    pub time_zone: Option<chrono_tz::Tz>,
}

impl TimerTrigger {
    /// The schedule's first occurrence after `t`, in the trigger's time zone.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.time_zone {
            Some(tz) => self.schedule.next_after_in(t, tz),
            None => self.schedule.next_after(t),
        }
    }
}

/// Whether the schedule monitor applies, as azure-webjobs-sdk-extensions decides it in
/// src/WebJobs.Extensions/Extensions/Timers/Scheduling/TimerSchedule.cs (`TimerSchedule.Create`
/// and `ShouldDisableScheduleMonitor`): `useMonitor`, except that a TimeSpan schedule with
/// `periodTimespan.TotalMinutes < 1` turns it off, and so does a cron schedule of which
/// "the only way for all occurrences to be less than or equal to a minute is if all these fields
/// are wild ("* * * * *")" (`hasNonSecondRestrictions = !expressions.Skip(1).All(p => p == "*")`)
/// when "there is more than one occurrence due in the next minute". A schedule such as
/// `*/10 5 * * * *` (every 10 s within minute 5) keeps its monitor.
pub fn monitored(t: &TimerTrigger, now: DateTime<Utc>) -> bool {
    let frequent = match &t.schedule {
        Schedule::Every(period) => period.as_secs() < 60,
        cron if cron.wild_from_minutes() => {
            let first = t.next_after(now);
            let second = first.and_then(|f| t.next_after(f));
            matches!(second, Some(b) if b < now + chrono::Duration::minutes(1))
        }
        _ => false,
    };
    t.use_monitor && !frequent
}

/// The schedule monitor's status blob for one function.
struct Monitor {
    clients: Arc<Clients>,
    name: String,
}

impl Monitor {
    async fn read(&self) -> Option<(Option<DateTime<Utc>>, DateTime<Utc>)> {
        let blob = self.clients.blobs.get(HOSTS_CONTAINER, &self.name).await.ok()?;
        let status: Value = serde_json::from_slice(&blob.content).ok()?;
        let time = |k: &str| status[k].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc());
        Some((time("Last"), time("Next")?))
    }

    async fn write(&self, last: Option<DateTime<Utc>>, next: Option<DateTime<Utc>>, console: super::console::Console) {
        let status = json!({
            "Last": last.map(|l| l.to_rfc3339()),
            "Next": next.map(|n| n.to_rfc3339()),
            "LastUpdated": Utc::now().to_rfc3339(),
        });
        if let Err(e) = self
            .clients
            .blobs
            .put(HOSTS_CONTAINER, &self.name, Bytes::from(status.to_string()), "application/json")
            .await
        {
            console.warn(&format!("the timer's schedule status could not be saved ({}): {e}", self.name));
        }
    }
}

/// Fires until `stop` turns true.
pub async fn listen(invoker: Arc<Invoker>, t: TimerTrigger, mut stop: watch::Receiver<bool>) {
    let monitor = match monitored(&t, Utc::now()) {
        false => None,
        true => invoker.bindings.clients("AzureWebJobsStorage").ok().map(|clients| Monitor {
            clients,
            name: format!("timers/{}/Host.Functions.{}/status", t.host_id, t.function),
        }),
    };
    let stored = match &monitor {
        Some(m) => m.read().await,
        None => None,
    };
    let mut last = stored.and_then(|(last, _)| last);
    let fire = |past_due: bool, last: Option<DateTime<Utc>>, next: Option<DateTime<Utc>>| {
        let inv = invocation::timer(&t.function, &t.binding, past_due, monitor.is_some().then_some((last, next)));
        let invoker = invoker.clone();
        let function = t.function.clone();
        async move {
            let _ = invoker.invoke(&function, "timerTrigger", inv).await;
        }
    };
    let now = Utc::now();
    let mut cursor = now;
    match stored {
        // An occurrence passed while no host was running: run now, past due.
        Some((_, next)) if next < now => {
            fire(true, last, Some(next)).await;
            (last, cursor) = after_run(now, None);
            if let Some(m) = &monitor {
                m.write(last, t.next_after(cursor), invoker.console).await;
            }
        }
        _ if t.run_on_startup => {
            fire(false, last, t.next_after(now)).await;
            (last, cursor) = after_run(now, None);
        }
        _ => {}
    }
    loop {
        let Some(due) = t.next_after(cursor) else {
            return invoker.console.warn(&format!("{}: the schedule has no next occurrence", t.function));
        };
        if let Some(m) = &monitor {
            m.write(last, Some(due), invoker.console).await;
        }
        let wait = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = super::worker::stopped(&mut stop) => return,
        }
        // A scheduled run is never past due, however late (only a start-up run is).
        let started = Utc::now();
        // Awaited: runs never overlap.
        fire(false, last, Some(due)).await;
        (last, cursor) = after_run(started, Some(due));
    }
}

/// The status after an invocation that started at `started` for the occurrence `due` (`None`: a
/// start-up run): `Last`, and the time the next occurrence is counted from. As
/// `TimerListener.InvokeJobFunction` (azure-webjobs-sdk-extensions 2e7550f, lines 325-339): "If the
/// trigger fired before it was officially scheduled ... adjust the invocation time forward" to
/// `Next`; then `Last = adjustedInvocationTime`, `Next = _schedule.GetNextOccurrence(adjustedInvocationTime)`,
/// and `GetNextTimerInterval` makes a `Next` already passed (the run outlasted it) an immediate
/// invocation ("adjust the interval back up 1 Tick ... for an immediate invocation").
pub fn after_run(started: DateTime<Utc>, due: Option<DateTime<Utc>>) -> (Option<DateTime<Utc>>, DateTime<Utc>) {
    let adjusted = due.map_or(started, |due| started.max(due));
    (Some(adjusted), adjusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(schedule: &str, use_monitor: bool) -> TimerTrigger {
        TimerTrigger {
            function: "T".into(),
            binding: "timer".into(),
            schedule: Schedule::parse(schedule).unwrap(),
            run_on_startup: false,
            use_monitor,
            host_id: "h".into(),
            time_zone: None,
        }
    }

    /// `TimerSchedule.ShouldDisableScheduleMonitor` (azure-webjobs-sdk-extensions
    /// src/WebJobs.Extensions/Extensions/Timers/Scheduling/TimerSchedule.cs): "If any of the minute
    /// or higher fields contain non-wildcard expressions the schedule can be longer than 1 minute",
    /// and only then `if (nextOccurrences.Length > 1)` within the next minute disables it; a
    /// TimeSpan schedule disables it when `periodTimespan.TotalMinutes < 1`. The extension's own
    /// test data agrees: `[InlineData("* */30 * * * *", null, false)]`, `("0 * * * * *", null, false)`.
    #[test]
    fn the_monitor_is_off_only_where_the_extension_turns_it_off() {
        let now: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().unwrap();
        assert!(!monitored(&trigger("*/10 * * * * *", true), now), "every 10 s");
        assert!(!monitored(&trigger("00:00:30", true), now), "a 30 s TimeSpan");
        assert!(monitored(&trigger("0 * * * * *", true), now), "once a minute keeps it");
        assert!(monitored(&trigger("* */30 * * * *", true), now), "a restricted minute keeps it");
        assert!(monitored(&trigger("*/10 5 * * * *", true), now), "every 10 s within minute 5 keeps it");
        assert!(monitored(&trigger("00:05:00", true), now));
        assert!(!monitored(&trigger("0 0 * * * *", false), now), "useMonitor: false");
    }

    /// Without a monitor `ScheduleStatus` is null (`TimerListener`: `ScheduleStatus
    /// timerInfoStatus = null; if (ScheduleMonitor != null) { timerInfoStatus = ScheduleStatus; }`).
    /// A run that outlasts occurrences is followed by one catch-up run at once, counted from the time
    /// it started (see [`after_run`]); the ones beyond are skipped.
    #[test]
    fn a_long_run_is_followed_by_one_catch_up_run() {
        let t = trigger("0 * * * * *", true);
        let at = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        // The 12:00 run starts on time and ends at 12:03:30: the next occurrence is 12:01, already
        // passed, so it runs at once.
        let (last, cursor) = after_run(at("2026-01-01T12:00:00Z"), Some(at("2026-01-01T12:00:00Z")));
        assert_eq!(last, Some(at("2026-01-01T12:00:00Z")));
        assert_eq!(t.next_after(cursor), Some(at("2026-01-01T12:01:00Z")));
        // That catch-up starts at 12:03:30: the next is 12:04 (12:02 and 12:03 are skipped).
        let (_, cursor) = after_run(at("2026-01-01T12:03:30Z"), Some(at("2026-01-01T12:01:00Z")));
        assert_eq!(t.next_after(cursor), Some(at("2026-01-01T12:04:00Z")));
        // A timer that fires early counts from its occurrence, so it does not fire twice.
        let (_, cursor) = after_run(at("2026-01-01T12:04:59.6Z"), Some(at("2026-01-01T12:05:00Z")));
        assert_eq!(t.next_after(cursor), Some(at("2026-01-01T12:06:00Z")));
    }

    #[test]
    fn without_a_monitor_schedule_status_is_null() {
        let inv = invocation::timer("T", "timer", false, None);
        assert_eq!(inv.data["timer"]["ScheduleStatus"], Value::Null);
        let inv = invocation::timer("T", "timer", false, Some((None, None)));
        assert_eq!(inv.data["timer"]["ScheduleStatus"]["Last"], json!("0001-01-01T00:00:00"));
    }
}
