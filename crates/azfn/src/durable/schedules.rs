//! Scheduled starts, as the Durable Task Scheduler's schedules: an orchestrator started with the
//! same input on an interval or a cron schedule (in UTC or a time zone), from a start time to an
//! end time, with pause,
//! resume and delete (`POST orchestrators/schedules/{id}` and the routes beside it).
//!
//! A schedule is one row of the table `{hub}Schedules`, so it survives restarts and is shared by
//! every worker. Every worker runs [`run`], which reads the schedules and starts each one that is
//! due. An occurrence is started as the instance `{schedule}-{time}` (the occurrence's time, as
//! `20261206T090000Z`) with a keyed start ([`DurableClient::start_once`]), so that two workers
//! that both see it due start it once between them, and a start retried after a crash finds the
//! instance it made. Only then is the row moved on to the next occurrence, under its ETag.
//!
//! Every worker also checks the schedules at least every [`POLL`] while it runs; and each schedule
//! keeps a wake-up message on the control queue, hidden until its next occurrence
//! ([`Command::ScheduleTick`](super::messages::Command::ScheduleTick)), which starts a worker of an
//! app scaled to zero (Flex Consumption) as any queue message does, and makes it start what is due.
//!
//! Occurrences missed while no worker ran (or while the schedule was paused) are not made up: the
//! latest one missed is started once, as the timer trigger runs a past-due timer once, and the
//! schedule goes on from the next one.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::DurableClient;
use super::error::DurableError;
use crate::schedule::Schedule;
use crate::storage::{Entity, StorageError, TableClient};

/// The row key of a schedule's row (its partition key is the schedule's id).
const ROW: &str = "schedule";
/// The longest a worker waits before it reads the schedules again (to see those made elsewhere).
pub const POLL: Duration = Duration::from_secs(5);
/// How many tries a change of a schedule (pause, resume, moving on) makes against other writers.
const ATTEMPTS: usize = 5;

/// What `POST orchestrators/schedules/{id}` takes: the orchestrator, its input, exactly one of
/// `interval` and `cron`, and optionally when to begin and end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    /// The orchestrator started at each occurrence.
    pub orchestrator: String,
    /// Its input, the same each time.
    #[serde(default)]
    pub input: Value,
    /// Every this long, from `startAt`: `hh:mm:ss` as the timer trigger writes it, or a span such
    /// as `30s`, `15m`, `1h` or `1d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Or on this six-field NCRONTAB schedule (`{second} {minute} {hour} {day} {month}
    /// {day-of-week}`), in UTC or `timeZone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The time zone whose wall clock `cron` is read on: an IANA name such as `Europe/Paris`.
    /// Default: the app's, as timer triggers read theirs (`WEBSITE_TIME_ZONE`, else `TZ` when it
    /// names a zone), recorded with the schedule when it is made; else UTC. A time a
    /// daylight-saving change skips does not occur; one it repeats occurs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// No occurrence before this time (default: when the schedule is made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
    /// No occurrence after this time (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<DateTime<Utc>>,
}

impl ScheduleSpec {
    /// The spec with the app's time zone filled in for a `cron` that names none, as timer triggers
    /// read theirs: `website_time_zone` (the app setting `WEBSITE_TIME_ZONE`), else `tz` (`TZ`)
    /// when it names a zone (a shell's `:/etc/localtime` does not). A `WEBSITE_TIME_ZONE` that
    /// names no zone is an error.
    ///
    /// ```
    /// use azfn::durable::schedules::ScheduleSpec;
    /// let spec: ScheduleSpec = serde_json::from_str(r#"{"orchestrator": "Report", "cron": "0 0 9 * * MON"}"#).unwrap();
    /// let zoned = spec.clone().in_app_time_zone(Some("Europe/Paris"), None).unwrap();
    /// assert_eq!(zoned.time_zone.as_deref(), Some("Europe/Paris"));
    /// assert_eq!(spec.clone().in_app_time_zone(None, Some(":/etc/localtime")).unwrap().time_zone, None);
    /// assert!(spec.in_app_time_zone(Some("Paris"), None).unwrap_err().contains("WEBSITE_TIME_ZONE"));
    /// ```
    pub fn in_app_time_zone(mut self, website_time_zone: Option<&str>, tz: Option<&str>) -> Result<Self, String> {
        if self.cron.is_none() || self.time_zone.is_some() {
            return Ok(self);
        }
        fn zone(z: Option<&str>) -> Option<(Result<chrono_tz::Tz, chrono_tz::ParseError>, &str)> {
            z.map(str::trim).filter(|z| !z.is_empty()).map(|z| (z.parse(), z))
        }
        self.time_zone = match (zone(website_time_zone), zone(tz)) {
            (Some((Ok(_), z)), _) | (None, Some((Ok(_), z))) => Some(z.to_owned()),
            (Some((Err(_), z)), _) => {
                return Err(format!(
                    "the app setting WEBSITE_TIME_ZONE {z:?}, which a cron schedule without timeZone is read in, is \
                     not a time zone name; use an IANA name such as \"Europe/Paris\""
                ));
            }
            (None, _) => None,
        };
        Ok(self)
    }
}

/// Whether a schedule starts its occurrences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleStatus {
    /// Starting its occurrences.
    Active,
    /// Paused: no occurrence starts until it is resumed.
    Paused,
}

/// A schedule as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleState {
    /// The schedule's id (the prefix of its instances' ids).
    pub id: String,
    /// What it starts, and when.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// Active or Paused.
    pub status: ScheduleStatus,
    /// The next occurrence to start; `None` once past `endAt`.
    pub next_run: Option<DateTime<Utc>>,
    /// The last occurrence started, and its instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<DateTime<Utc>>,
    /// The instance of the last occurrence started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_instance_id: Option<String>,
    /// Why the last occurrence could not start, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the schedule was made.
    pub created_time: DateTime<Utc>,
    /// When it last changed.
    pub last_updated_time: DateTime<Utc>,
}

/// The timing of a [`ScheduleSpec`], read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Timing {
    Every(chrono::Duration),
    Cron(Schedule, chrono_tz::Tz),
}

impl ScheduleSpec {
    /// Checks the spec; an error names the field and what is wrong with it.
    fn timing(&self) -> Result<Timing, String> {
        let timing = match (&self.interval, &self.cron) {
            (Some(_), None) if self.time_zone.is_some() => {
                return Err("timeZone applies to `cron`; an interval counts from startAt".to_owned());
            }
            (Some(i), None) => {
                let every = super::retention::parse_span(i)
                    .or_else(|| match Schedule::parse(i) {
                        Ok(Schedule::Every(d)) => Some(d),
                        _ => None,
                    })
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("interval {i:?} should be hh:mm:ss or a span such as 30s, 15m, 1h or 1d"))?;
                if every < Duration::from_secs(1) {
                    return Err(format!("interval {i:?} is shorter than a second"));
                }
                Timing::Every(chrono::Duration::from_std(every).map_err(|e| format!("interval {i:?}: {e}"))?)
            }
            (None, Some(c)) => match Schedule::parse(c) {
                Ok(s @ Schedule::Cron(_)) => {
                    let zone = match self.time_zone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
                        None => chrono_tz::UTC,
                        Some(z) => z.parse::<chrono_tz::Tz>().map_err(|_| {
                            format!("timeZone {z:?} is not a time zone name; use an IANA name such as \"Europe/Paris\"")
                        })?,
                    };
                    Timing::Cron(s, zone)
                }
                Ok(Schedule::Every(_)) => return Err(format!("cron {c:?} is an interval; give it as `interval`")),
                Err(e) => return Err(format!("cron {c:?}: {e}")),
            },
            (Some(_), Some(_)) => return Err("give `interval` or `cron`, not both".to_owned()),
            (None, None) => return Err("a schedule needs `interval` (such as 15m) or `cron`".to_owned()),
        };
        if let (Some(start), Some(end)) = (self.start_at, self.end_at)
            && end < start
        {
            return Err(format!("endAt {end} is before startAt {start}"));
        }
        Ok(timing)
    }
}

impl Timing {
    /// The first occurrence at or after `t`, counted from `anchor` for an interval.
    fn first_from(&self, anchor: DateTime<Utc>, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Every(every) => {
                if t <= anchor {
                    return Some(anchor);
                }
                let step = every.num_milliseconds().max(1);
                let behind = (t - anchor).num_milliseconds();
                let n = (behind + step - 1) / step;
                anchor.checked_add_signed(chrono::Duration::milliseconds(n.checked_mul(step)?))
            }
            Timing::Cron(s, zone) => s.next_after_in(t - chrono::Duration::milliseconds(1), zone),
        }
    }

    /// The latest occurrence from the occurrence `due` up to `limit`: `due` when the next one is
    /// later. An interval's is computed at once, however many occurrences were missed; a cron
    /// schedule's is found by stepping through the last hour before `limit` (or the last two,
    /// four, ... hours, until one holds an occurrence), not through all that were missed.
    fn latest_until(&self, anchor: DateTime<Utc>, due: DateTime<Utc>, limit: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Timing::Every(every) if limit > due => {
                let step = every.num_milliseconds().max(1);
                let n = (limit - anchor).num_milliseconds() / step;
                n.checked_mul(step)
                    .and_then(|ms| anchor.checked_add_signed(chrono::Duration::milliseconds(ms)))
                    .map_or(due, |at| at.max(due))
            }
            Timing::Every(_) => due,
            Timing::Cron(..) => {
                let mut at = due;
                let mut window = chrono::Duration::hours(1);
                while let Some(from) = limit.checked_sub_signed(window).filter(|from| *from > due) {
                    if let Some(first) = self.first_from(anchor, from).filter(|first| *first <= limit) {
                        at = first;
                        break;
                    }
                    window = window * 2;
                }
                while let Some(later) = self.first_from(anchor, at + chrono::Duration::milliseconds(1))
                    && later <= limit
                {
                    at = later;
                }
                at
            }
        }
    }
}

impl ScheduleState {
    /// The first occurrence at or after `t` within the schedule's end, if any.
    fn occurrence_from(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let timing = self.spec.timing().ok()?;
        let anchor = self.spec.start_at.unwrap_or(self.created_time);
        let at = timing.first_from(anchor, t.max(anchor))?;
        self.spec.end_at.is_none_or(|end| at <= end).then_some(at)
    }

    /// The instance id of the occurrence at `at`: `{schedule}-{yyyymmddThhmmssZ}` (milliseconds
    /// added when the occurrence has some).
    ///
    /// ```
    /// # use azfn::durable::schedules::ScheduleState;
    /// let at = "2026-12-06T09:00:00Z".parse().unwrap();
    /// assert_eq!(ScheduleState::instance_id_of("nightly", at), "nightly-20261206T090000Z");
    /// ```
    pub fn instance_id_of(id: &str, at: DateTime<Utc>) -> String {
        if at.timestamp_subsec_millis() == 0 {
            format!("{id}-{}", at.format("%Y%m%dT%H%M%SZ"))
        } else {
            format!("{id}-{}", at.format("%Y%m%dT%H%M%S%.3fZ"))
        }
    }
}

/// The schedules of a task hub, in its table `{hub}Schedules`.
#[derive(Debug, Clone)]
pub struct ScheduleStore {
    tables: TableClient,
    table: String,
}

fn unreadable(id: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::other(format!("schedule {id}: its row is not readable: {e}"))
}

impl ScheduleStore {
    /// The schedules of the hub named `hub`.
    pub fn new(tables: TableClient, hub: &str) -> Self {
        Self { tables, table: format!("{hub}Schedules") }
    }

    fn row(state: &ScheduleState) -> Result<Entity, StorageError> {
        let mut row = Entity::new(&state.id, ROW);
        let text = serde_json::to_string(state).map_err(|e| unreadable(&state.id, e))?;
        row.properties.insert("Schedule".into(), Value::String(text));
        Ok(row)
    }

    fn parse(row: &Entity) -> Result<(ScheduleState, String), StorageError> {
        let text = row.properties.get("Schedule").and_then(Value::as_str).unwrap_or("null");
        let state = serde_json::from_str(text).map_err(|e| unreadable(&row.partition_key, e))?;
        Ok((state, row.etag.clone().unwrap_or_default()))
    }

    /// One schedule and its ETag, or `None`.
    pub async fn get(&self, id: &str) -> Result<Option<(ScheduleState, String)>, StorageError> {
        match self.tables.get(&self.table, id, ROW).await {
            Ok(Some(row)) => Self::parse(&row).map(Some),
            Ok(None) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every schedule, in id order (an empty list when none was ever made).
    pub async fn list(&self) -> Result<Vec<(ScheduleState, String)>, StorageError> {
        let filter = format!("RowKey eq {}", crate::storage::odata_string(ROW));
        match self.tables.query(&self.table, &filter).await {
            Ok(rows) => rows.iter().map(Self::parse).collect(),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Inserts a new schedule (409 when the id is taken); gives its ETag.
    pub async fn insert(&self, state: &ScheduleState) -> Result<String, StorageError> {
        self.tables.insert(&self.table, &Self::row(state)?).await
    }

    /// Writes `state` if the row still has `etag` (412 otherwise); gives the new ETag.
    pub async fn replace(&self, state: &ScheduleState, etag: &str) -> Result<String, StorageError> {
        self.tables.upsert(&self.table, &Self::row(state)?, Some(etag)).await
    }

    /// Deletes a schedule; `false` when there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, StorageError> {
        match self.tables.delete(&self.table, id, ROW, None).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Queues the schedule's wake-up for its next occurrence: a [`Command::ScheduleTick`] hidden until
/// then (sent on by the control queue's handler when further away than a queue message can stay
/// hidden). Best effort: while a worker runs, [`run`] checks the schedules anyway.
///
/// [`Command::ScheduleTick`]: super::messages::Command::ScheduleTick
async fn send_tick(client: &DurableClient, state: &ScheduleState) {
    let (Some(at), ScheduleStatus::Active) = (state.next_run, state.status) else { return };
    let mut tick = super::messages::ControlMessage::command(&state.id, super::messages::Command::ScheduleTick);
    tick.fire_at = Some(at);
    tick.traceparent = None;
    if let Err(e) = client.hub().send_control(&tick, client.hub().now()).await {
        tracing::debug!(schedule = %state.id, "the wake-up for the next occurrence could not be queued: {e}");
    }
}

/// Makes, reads, changes and runs the schedules of a task hub through a [`DurableClient`].
#[derive(Debug, Clone)]
pub struct Schedules {
    client: DurableClient,
    store: ScheduleStore,
}

fn storage(e: StorageError) -> DurableError {
    e.into()
}

impl Schedules {
    /// The schedules of `client`'s task hub.
    pub fn new(client: DurableClient) -> Self {
        let store = ScheduleStore::new(client.hub().tables().clone(), client.hub().name());
        Self { client, store }
    }

    fn now(&self) -> DateTime<Utc> {
        self.client.hub().now()
    }

    /// Makes the schedule `id`. The same spec again answers with the schedule (`false`: it existed
    /// already), so a retried request is harmless; another spec under a taken id is refused (409).
    /// A spec that cannot work (an unknown orchestrator, an input that does not fit it, a bad
    /// interval or cron) is refused with what is wrong.
    pub async fn create(&self, id: &str, spec: ScheduleSpec) -> Result<(ScheduleState, bool), DurableError> {
        validate_schedule_id(id)?;
        let setting = |name: &str| std::env::var(name).ok();
        let spec = spec
            .in_app_time_zone(setting("WEBSITE_TIME_ZONE").as_deref(), setting("TZ").as_deref())
            .map_err(|e| DurableError::BadRequest(format!("schedule {id}: {e}")))?;
        spec.timing().map_err(|e| DurableError::BadRequest(format!("schedule {id}: {e}")))?;
        let registry = self.client.registry();
        if !registry.has_orchestrator(&spec.orchestrator) {
            return Err(DurableError::NotFound(format!(
                "schedule {id}: there is no orchestrator `{}` (known: {})",
                spec.orchestrator,
                registry.orchestrator_names().join(", ")
            )));
        }
        registry.check_input(&spec.orchestrator, &spec.input).map_err(|e| {
            DurableError::BadRequest(format!("schedule {id}: the input does not fit `{}`: {e}", spec.orchestrator))
        })?;
        let now = self.now();
        let mut state = ScheduleState {
            id: id.to_owned(),
            spec,
            status: ScheduleStatus::Active,
            next_run: None,
            last_run: None,
            last_instance_id: None,
            last_error: None,
            created_time: now,
            last_updated_time: now,
        };
        state.next_run = state.occurrence_from(now);
        match self.store.insert(&state).await {
            Ok(_) => {
                wake().notify_one();
                send_tick(&self.client, &state).await;
                Ok((state, true))
            }
            Err(e) if e.is_conflict() => match self.store.get(id).await.map_err(storage)? {
                Some((existing, _)) if existing.spec == state.spec => Ok((existing, false)),
                Some(_) => Err(DurableError::Conflict(format!(
                    "schedule {id} exists with another definition; delete it first, or use another id"
                ))),
                None => Err(DurableError::Conflict(format!("schedule {id} was deleted while it was made; try again"))),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// One schedule.
    pub async fn get(&self, id: &str) -> Result<ScheduleState, DurableError> {
        validate_schedule_id(id)?;
        match self.store.get(id).await.map_err(storage)? {
            Some((state, _)) => Ok(state),
            None => Err(DurableError::NotFound(format!("there is no schedule {id}"))),
        }
    }

    /// Every schedule.
    pub async fn list(&self) -> Result<Vec<ScheduleState>, DurableError> {
        Ok(self.store.list().await.map_err(storage)?.into_iter().map(|(s, _)| s).collect())
    }

    /// Pauses a schedule: no occurrence starts until it is resumed. Pausing a paused one is harmless.
    pub async fn pause(&self, id: &str) -> Result<ScheduleState, DurableError> {
        self.change(id, |state, _| state.status = ScheduleStatus::Paused).await
    }

    /// Resumes a paused schedule from its next occurrence after now: the ones it missed while
    /// paused are not started.
    pub async fn resume(&self, id: &str) -> Result<ScheduleState, DurableError> {
        let resumed = self
            .change(id, |state, now| {
                if state.status == ScheduleStatus::Paused {
                    state.status = ScheduleStatus::Active;
                    state.next_run = state.occurrence_from(now);
                }
            })
            .await?;
        wake().notify_one();
        send_tick(&self.client, &resumed).await;
        Ok(resumed)
    }

    /// Deletes a schedule (its instances stay). 404 when there is none.
    pub async fn delete(&self, id: &str) -> Result<(), DurableError> {
        validate_schedule_id(id)?;
        if self.store.delete(id).await.map_err(storage)? {
            Ok(())
        } else {
            Err(DurableError::NotFound(format!("there is no schedule {id}")))
        }
    }

    /// Reads, changes with `f` and writes back a schedule under its ETag, again on a conflict.
    async fn change(
        &self,
        id: &str,
        f: impl Fn(&mut ScheduleState, DateTime<Utc>),
    ) -> Result<ScheduleState, DurableError> {
        validate_schedule_id(id)?;
        for _ in 0..ATTEMPTS {
            let Some((mut state, etag)) = self.store.get(id).await.map_err(storage)? else {
                return Err(DurableError::NotFound(format!("there is no schedule {id}")));
            };
            let now = self.now();
            let before = state.clone();
            f(&mut state, now);
            if state == before {
                return Ok(state);
            }
            state.last_updated_time = now;
            match self.store.replace(&state, &etag).await {
                Ok(_) => return Ok(state),
                Err(e) if e.is_precondition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DurableError::Contended(format!("schedule {id} kept changing under this request; try again")))
    }

    /// Starts every due occurrence once: gives how many instances this call started (or found
    /// started by another worker) and the time the next occurrence of any schedule is due.
    pub async fn fire_due(&self) -> Result<(usize, Option<DateTime<Utc>>), DurableError> {
        let now = self.now();
        let mut started = 0;
        let mut next_due: Option<DateTime<Utc>> = None;
        for (state, etag) in self.store.list().await.map_err(storage)? {
            if state.status != ScheduleStatus::Active {
                continue;
            }
            let Some(at) = state.next_run else { continue };
            if at > now {
                next_due = Some(next_due.map_or(at, |n| n.min(at)));
                continue;
            }
            match self.fire(state, etag, now).await {
                Ok((fired, next)) => {
                    started += usize::from(fired);
                    if let Some(n) = next {
                        next_due = Some(next_due.map_or(n, |d| d.min(n)));
                    }
                }
                Err(e) => tracing::warn!("a scheduled start failed (tried again at the next check): {e}"),
            }
        }
        Ok((started, next_due))
    }

    /// Starts the due occurrence of `state` (the latest one missed, if several were), then moves
    /// the schedule on to its next occurrence after `now`.
    async fn fire(
        &self,
        mut state: ScheduleState,
        etag: String,
        now: DateTime<Utc>,
    ) -> Result<(bool, Option<DateTime<Utc>>), DurableError> {
        let due = state.next_run.expect("a due schedule has a next run");
        let timing = state.spec.timing().map_err(DurableError::BadRequest)?;
        let anchor = state.spec.start_at.unwrap_or(state.created_time);
        // The latest occurrence at or before now (and endAt): the one started, however many were
        // missed.
        let at = timing.latest_until(anchor, due, state.spec.end_at.map_or(now, |end| end.min(now)));
        let instance_id = ScheduleState::instance_id_of(&state.id, at);
        let registry = self.client.registry();
        if !registry.has_orchestrator(&state.spec.orchestrator) {
            // A worker of an older release, during a rolling deploy: one that has it will start it.
            return Ok((false, Some(at + chrono::Duration::from_std(POLL).unwrap_or_default())));
        }
        let mut fired = false;
        match self.client.start_once(&state.spec.orchestrator, &instance_id, state.spec.input.clone()).await {
            Ok(_) => {
                fired = true;
                state.last_run = Some(at);
                state.last_instance_id = Some(instance_id);
                state.last_error = None;
            }
            // The input or the orchestrator no longer fits (the app changed): recorded, and the
            // schedule goes on, rather than trying the same start for ever.
            Err(e @ (DurableError::BadRequest(_) | DurableError::NotFound(_) | DurableError::Conflict(_))) => {
                tracing::warn!(schedule = %state.id, "occurrence {at} was not started: {e}");
                state.last_error = Some(format!("occurrence {at}: {e}"));
            }
            Err(e) => return Err(e),
        }
        // (The next occurrence after `at` is after now too: `at` is the latest not after now.)
        state.next_run = state.occurrence_from(at + chrono::Duration::milliseconds(1));
        state.last_updated_time = now;
        match self.store.replace(&state, &etag).await {
            Ok(_) => {
                if fired {
                    tracing::info!(schedule = %state.id, instance = %state.last_instance_id.as_deref().unwrap_or(""), "scheduled start");
                }
                // Only the worker that moved the schedule on queues its next wake-up.
                send_tick(&self.client, &state).await;
            }
            // Another worker moved it on (after starting the same instance, which is one start).
            Err(e) if e.is_precondition_failed() => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok((fired, state.next_run))
    }
}

/// Checks a schedule id: 1 to 200 characters, none that a table key or an instance id forbids.
pub fn validate_schedule_id(id: &str) -> Result<(), DurableError> {
    let len = id.chars().count();
    if len == 0 || len > 200 {
        return Err(DurableError::BadRequest(format!("a schedule id must be 1 to 200 characters; this one has {len}")));
    }
    if id.starts_with(super::entity::ENTITY_PREFIX) {
        return Err(DurableError::BadRequest(format!(
            "schedule id {id:?} starts with `@`, which is kept for entities"
        )));
    }
    super::error::validate_instance_id(id)
        .map_err(|_| DurableError::BadRequest(format!("schedule id {id:?} contains a character ids cannot have")))
}

/// Wakes this process's [`run`] loop: a schedule was made or resumed here.
fn wake() -> &'static Arc<tokio::sync::Notify> {
    static WAKE: std::sync::OnceLock<Arc<tokio::sync::Notify>> = std::sync::OnceLock::new();
    WAKE.get_or_init(Default::default)
}

/// Starts the due occurrences of every schedule, for ever: reads the schedules at least every
/// [`POLL`], and sooner when an occurrence is due sooner or a schedule is made or resumed in this
/// process.
pub async fn run(client: DurableClient) {
    let schedules = Schedules::new(client);
    let wake = wake().clone();
    loop {
        let wait = match schedules.fire_due().await {
            Ok((_, Some(next))) => {
                (next - schedules.now()).to_std().unwrap_or_default().clamp(Duration::from_millis(50), POLL)
            }
            Ok((_, None)) => POLL,
            Err(e) => {
                tracing::debug!("the schedules could not be read (tried again): {e}");
                POLL
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn spec(interval: Option<&str>, cron: Option<&str>) -> ScheduleSpec {
        ScheduleSpec {
            orchestrator: "O".into(),
            input: Value::Null,
            interval: interval.map(str::to_owned),
            cron: cron.map(str::to_owned),
            time_zone: None,
            start_at: None,
            end_at: None,
        }
    }

    #[test]
    fn specs_are_checked_and_say_what_is_wrong() {
        assert_eq!(spec(Some("00:15:00"), None).timing(), Ok(Timing::Every(chrono::Duration::minutes(15))));
        assert_eq!(spec(Some("15m"), None).timing(), Ok(Timing::Every(chrono::Duration::minutes(15))));
        assert!(matches!(spec(None, Some("0 0 9 * * MON-FRI")).timing(), Ok(Timing::Cron(..))));
        let mut zoned = spec(None, Some("0 0 9 * * *"));
        zoned.time_zone = Some("Mars/Olympus".into());
        assert!(zoned.timing().unwrap_err().contains("not a time zone name"));
        let mut zoned_interval = spec(Some("1h"), None);
        zoned_interval.time_zone = Some("Europe/Paris".into());
        assert!(zoned_interval.timing().unwrap_err().contains("applies to `cron`"));
        for (s, says) in [
            (spec(None, None), "needs `interval`"),
            (spec(Some("1m"), Some("0 * * * * *")), "not both"),
            (spec(Some("soon"), None), "hh:mm:ss or a span"),
            (spec(Some("0s"), None), "hh:mm:ss or a span"),
            (spec(None, Some("* * * * *")), "needs six"),
            (spec(None, Some("00:01:00")), "is an interval"),
        ] {
            let e = s.timing().unwrap_err();
            assert!(e.contains(says), "{s:?}: {e}");
        }
        let mut backwards = spec(Some("1m"), None);
        backwards.start_at = Some(at("2026-01-02T00:00:00Z"));
        backwards.end_at = Some(at("2026-01-01T00:00:00Z"));
        assert!(backwards.timing().unwrap_err().contains("before startAt"));
    }

    #[test]
    fn the_latest_missed_occurrence_is_the_last_one_not_after_the_limit() {
        let anchor = at("2025-12-06T09:00:00Z");
        let every = Timing::Every(chrono::Duration::seconds(2));
        // A year of 2 s occurrences missed: found at once.
        let now = at("2026-12-06T09:00:03.500Z");
        assert_eq!(every.latest_until(anchor, anchor, now), at("2026-12-06T09:00:02Z"));
        assert_eq!(every.latest_until(anchor, anchor, at("2026-12-06T09:00:02Z")), at("2026-12-06T09:00:02Z"));
        let due = at("2026-12-06T09:00:02Z");
        assert_eq!(every.latest_until(anchor, due, at("2026-12-06T09:00:03Z")), due, "the next is not due yet");
        assert_eq!(every.latest_until(anchor, due, at("2026-12-06T09:00:01Z")), due, "a limit before the due one");
        // Cron steps through them, to the same answer an interval would give.
        let Ok(Timing::Cron(cron, zone)) = spec(None, Some("*/2 * * * * *")).timing() else { panic!("a cron spec") };
        let cron = Timing::Cron(cron, zone);
        let since = at("2026-12-06T08:00:00Z");
        assert_eq!(cron.latest_until(since, since, now), at("2026-12-06T09:00:02Z"));
        assert_eq!(cron.latest_until(since, due, at("2026-12-06T09:00:03Z")), due);
        // A year missed: only the last hour is stepped through.
        assert_eq!(cron.latest_until(anchor, anchor, now), at("2026-12-06T09:00:02Z"));
        // An occurrence a year back, and none since: the window widens until it holds it.
        let Ok(Timing::Cron(yearly, zone)) = spec(None, Some("0 0 9 6 DEC *")).timing() else { panic!("a cron spec") };
        let yearly = Timing::Cron(yearly, zone);
        assert_eq!(yearly.latest_until(anchor, anchor, at("2026-12-06T08:59:59Z")), anchor);
        assert_eq!(yearly.latest_until(anchor, anchor, now), at("2026-12-06T09:00:00Z"));
        assert_eq!(
            yearly.latest_until(at("2020-12-06T09:00:00Z"), at("2020-12-06T09:00:00Z"), now),
            at("2026-12-06T09:00:00Z"),
            "six years missed"
        );
    }

    #[test]
    fn occurrences_count_from_the_start_and_stop_at_the_end() {
        let mut s = ScheduleState {
            id: "s".into(),
            spec: spec(Some("10m"), None),
            status: ScheduleStatus::Active,
            next_run: None,
            last_run: None,
            last_instance_id: None,
            last_error: None,
            created_time: at("2026-12-06T09:03:00Z"),
            last_updated_time: at("2026-12-06T09:03:00Z"),
        };
        s.spec.start_at = Some(at("2026-12-06T09:00:00Z"));
        s.spec.end_at = Some(at("2026-12-06T10:00:00Z"));
        assert_eq!(s.occurrence_from(at("2026-12-06T08:00:00Z")), Some(at("2026-12-06T09:00:00Z")));
        assert_eq!(s.occurrence_from(at("2026-12-06T09:00:00Z")), Some(at("2026-12-06T09:00:00Z")));
        assert_eq!(s.occurrence_from(at("2026-12-06T09:00:01Z")), Some(at("2026-12-06T09:10:00Z")));
        assert_eq!(s.occurrence_from(at("2026-12-06T10:00:00Z")), Some(at("2026-12-06T10:00:00Z")));
        assert_eq!(s.occurrence_from(at("2026-12-06T10:00:01Z")), None, "past endAt");
        s.spec = spec(None, Some("0 30 9 * * *"));
        assert_eq!(s.occurrence_from(at("2026-12-06T09:30:00Z")), Some(at("2026-12-06T09:30:00Z")));
        assert_eq!(s.occurrence_from(at("2026-12-06T09:30:01Z")), Some(at("2026-12-07T09:30:00Z")));
        // 09:30 on the wall clock of Paris: 08:30 UTC in winter, 07:30 UTC in summer.
        s.spec.time_zone = Some("Europe/Paris".into());
        assert_eq!(s.occurrence_from(at("2026-12-06T09:00:00Z")), Some(at("2026-12-07T08:30:00Z")));
        s.spec.start_at = Some(at("2026-07-01T00:00:00Z"));
        s.spec.end_at = None;
        assert_eq!(s.occurrence_from(at("2026-07-01T00:00:00Z")), Some(at("2026-07-01T07:30:00Z")));
    }
}
