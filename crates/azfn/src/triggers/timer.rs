//! Timer trigger (`timerTrigger`).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{FromTrigger, TriggerInput, parse_time};
use crate::encoding::value_json;
use crate::error::BindError;

/// A timer firing: webjobs-sdk-extensions' `TimerInfo`, which the host sends as an object.
///
/// ```
/// # use azfn::TimerInfo;
/// async fn every_five_minutes(timer: TimerInfo, ctx: azfn::Context) -> Result<(), azfn::Error> {
///     if timer.is_past_due {
///         tracing::warn!("running late");
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TimerInfo {
    /// The schedule (for NCRONTAB schedules only `AdjustForDST`).
    pub schedule: TimerSchedule,
    /// Last and next occurrences, when the schedule monitor is on (`useMonitor`).
    pub schedule_status: Option<ScheduleStatus>,
    /// Whether this run is later than scheduled.
    pub is_past_due: bool,
}

/// The `Schedule` object of a [`TimerInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerSchedule {
    /// `AdjustForDST` (`CronSchedule`'s only public property).
    pub adjust_for_dst: Option<bool>,
}

/// The `ScheduleStatus` object of a [`TimerInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// The last occurrence.
    pub last: Option<DateTime<Utc>>,
    /// The next occurrence.
    pub next: Option<DateTime<Utc>>,
    /// When the status was last written.
    pub last_updated: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    #[serde(default)]
    schedule: Option<WireSchedule>,
    #[serde(default)]
    schedule_status: Option<WireStatus>,
    #[serde(default)]
    is_past_due: bool,
}

#[derive(Deserialize)]
struct WireSchedule {
    #[serde(rename = "AdjustForDST", default)]
    adjust_for_dst: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireStatus {
    last: Option<String>,
    next: Option<String>,
    last_updated: Option<String>,
}

impl FromTrigger for TimerInfo {
    const TRIGGER_TYPE: Option<&'static str> = Some("timerTrigger");

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        let value = input.require_value()?;
        let value = value_json(&value).map_err(|e| BindError::new(format!("the timer value is not JSON: {e}")))?;
        let wire: Wire = serde_json::from_value(value.into_owned())
            .map_err(|e| BindError::new(format!("the timer value is not a TimerInfo object: {e}")))?;
        let time = |field: &str, v: Option<String>| -> Result<Option<DateTime<Utc>>, BindError> {
            v.map(|s| {
                parse_time(&s).ok_or_else(|| BindError::new(format!("ScheduleStatus.{field} is not a time: {s:?}")))
            })
            .transpose()
        };
        let schedule_status = match wire.schedule_status {
            None => None,
            Some(s) => Some(ScheduleStatus {
                last: time("Last", s.last)?,
                next: time("Next", s.next)?,
                last_updated: time("LastUpdated", s.last_updated)?,
            }),
        };
        Ok(Self {
            schedule: TimerSchedule { adjust_for_dst: wire.schedule.and_then(|s| s.adjust_for_dst) },
            schedule_status,
            is_past_due: wire.is_past_due,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::test_support::*;
    use serde_json::json;

    #[test]
    fn derived_timer_request() {
        let req = fixture("derived-timer-trigger.request.json");
        let t: TimerInfo = parse(&req, &binding("timerTrigger", "myTimer", json!({}))).unwrap();
        assert_eq!(t.schedule.adjust_for_dst, Some(true));
        assert!(!t.is_past_due);
        let status = t.schedule_status.unwrap();
        assert_eq!(status.next.unwrap().to_rfc3339(), "2024-05-01T10:00:00+00:00");
    }

    #[test]
    fn docs_timer_object_with_empty_schedule() {
        let value = fixture("docs-timer-object.data-value.json");
        let req = json!({"Data": {"t": value}, "Metadata": {}});
        let t: TimerInfo = parse(&req, &binding("timerTrigger", "t", json!({}))).unwrap();
        assert_eq!(t.schedule.adjust_for_dst, None);
        assert_eq!(t.schedule_status.unwrap().last_updated.unwrap().to_rfc3339(), "2016-10-04T10:16:00+00:00");
    }

    #[test]
    fn without_monitor_and_past_due() {
        let req = json!({"Data": {"t": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": true}}, "Metadata": {}});
        let t: TimerInfo = parse(&req, &binding("timerTrigger", "t", json!({}))).unwrap();
        assert!(t.is_past_due);
        assert!(t.schedule_status.is_none());
    }

    #[test]
    fn a_bad_time_is_named() {
        let req = json!({"Data": {"t": {"ScheduleStatus": {"Last": "soon"}, "IsPastDue": false}}, "Metadata": {}});
        let err = parse::<TimerInfo>(&req, &binding("timerTrigger", "t", json!({}))).unwrap_err();
        assert!(err.to_string().contains("ScheduleStatus.Last"), "{err}");
    }
}
