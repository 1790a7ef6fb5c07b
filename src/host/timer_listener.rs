//! The timer trigger: fires on a six-field NCRONTAB or `hh:mm:ss` schedule, once at start-up with
//! `runOnStartup`, with `ScheduleStatus` (last, next) and `IsPastDue` when an occurrence fires more
//! than a second late. The schedule status is kept in memory for the run (the real host's
//! schedule monitor keeps it in `azure-webjobs-hosts`).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

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
}

/// Fires until `stop` turns true.
pub async fn listen(invoker: Arc<Invoker>, t: TimerTrigger, mut stop: watch::Receiver<bool>) {
    let mut last = None;
    if t.run_on_startup {
        let next = t.schedule.next_after(Utc::now());
        let inv = invocation::timer(&t.function, &t.binding, false, None, next);
        let _ = invoker.invoke(&t.function, "timerTrigger", inv).await;
    }
    let mut cursor = Utc::now();
    loop {
        let Some(due) = t.schedule.next_after(cursor.max(Utc::now())) else {
            return invoker.console.warn(&format!("{}: the schedule has no next occurrence", t.function));
        };
        let wait = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = super::worker::stopped(&mut stop) => return,
        }
        let now = Utc::now();
        let past_due = (now - due).num_milliseconds() > 1000;
        let next = t.schedule.next_after(due.max(now));
        let inv = invocation::timer(&t.function, &t.binding, past_due, last, next);
        last = Some(due);
        cursor = due;
        let invoker = invoker.clone();
        let function = t.function.clone();
        // Occurrences do not wait for each other's invocations.
        tokio::spawn(async move {
            let _ = invoker.invoke(&function, "timerTrigger", inv).await;
        });
    }
}
