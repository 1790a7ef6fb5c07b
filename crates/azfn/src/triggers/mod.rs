//! Typed triggers: each one parses the host's wire format for one trigger type.
//!
//! A handler's first argument is a trigger type. The runtime finds the function's trigger binding in
//! function.json, hands its `Data` entry and the invocation's `Metadata` to [`FromTrigger`], and
//! answers the host with a non-2xx status and a clear message when the payload does not fit the type.
//!
//! | function.json `type` | Rust type |
//! |---|---|
//! | `httpTrigger` | [`HttpRequest`](crate::HttpRequest) |
//! | `timerTrigger` | [`TimerInfo`] |
//! | `queueTrigger` | [`QueueMessage<T>`] |
//! | `blobTrigger` | [`BlobInput`] |
//! | `serviceBusTrigger` | [`ServiceBusMessage<T>`] |
//! | `eventGridTrigger` | [`EventGridEvent<T>`] |
//! | any | [`RawTrigger`] |
//!
//! To support another trigger, implement [`FromTrigger`] for a type of your own.

mod blob;
mod event_grid;
mod queue;
mod raw;
mod service_bus;
mod timer;

pub use blob::{BlobInput, BlobProperties};
pub use event_grid::{EventGridEvent, EventSchema};
pub use queue::QueueMessage;
pub use raw::RawTrigger;
pub use service_bus::ServiceBusMessage;
pub use timer::{ScheduleStatus, TimerInfo, TimerSchedule};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::encoding::value_text;
use crate::error::BindError;
use crate::function_json::Binding;

/// What a trigger type is built from: the trigger binding, its `Data` value and the invocation's `Metadata`.
#[derive(Debug, Clone, Copy)]
pub struct TriggerInput<'a> {
    /// The trigger binding from function.json.
    pub binding: &'a Binding,
    /// `Data[binding.name]` as raw JSON, when present.
    raw: Option<&'a RawValue>,
    metadata: MetadataSource<'a>,
}

/// Where the metadata comes from: a map, or the invocation's context, which parses it on first use
/// (an HTTP trigger never needs it, and parsing it is a good part of an invocation's cost).
#[derive(Debug, Clone, Copy)]
enum MetadataSource<'a> {
    Map(&'a Map<String, Value>),
    Context(&'a crate::Context),
}

impl<'a> TriggerInput<'a> {
    /// An input for `binding` with its `Data` value and the invocation's `Metadata`.
    pub fn new(binding: &'a Binding, raw: Option<&'a RawValue>, metadata: &'a Map<String, Value>) -> Self {
        Self { binding, raw, metadata: MetadataSource::Map(metadata) }
    }

    pub(crate) fn from_context(binding: &'a Binding, raw: Option<&'a RawValue>, ctx: &'a crate::Context) -> Self {
        Self { binding, raw, metadata: MetadataSource::Context(ctx) }
    }

    /// The invocation's `Metadata` object.
    pub fn metadata(&self) -> &'a Map<String, Value> {
        match self.metadata {
            MetadataSource::Map(m) => m,
            MetadataSource::Context(c) => c.metadata(),
        }
    }

    /// The `Data` value as raw JSON, or an error naming the missing key. Parse it straight into a
    /// typed struct when speed matters (the HTTP trigger does).
    pub fn require_raw(&self) -> Result<&'a RawValue, BindError> {
        self.raw.ok_or_else(|| {
            BindError::new(format!("Data has no `{}` entry (the trigger binding's name)", self.binding.name))
        })
    }

    /// The `Data` value parsed, if present.
    pub fn value(&self) -> Result<Option<Value>, BindError> {
        self.raw
            .map(|raw| {
                serde_json::from_str(raw.get())
                    .map_err(|e| BindError::new(format!("Data.{} is not JSON: {e}", self.binding.name)))
            })
            .transpose()
    }

    /// The `Data` value parsed, or an error naming the missing key.
    pub fn require_value(&self) -> Result<Value, BindError> {
        self.require_raw()?;
        Ok(self.value()?.unwrap_or(Value::Null))
    }

    /// A metadata value as text, with the host's double encoding undone.
    pub fn meta_text(&self, key: &str) -> Option<String> {
        self.metadata().get(key).and_then(value_text).map(|s| s.into_owned())
    }

    /// A metadata value as a whole number; the host sends numbers as strings (`"DequeueCount": "1"`).
    pub fn meta_u64(&self, key: &str) -> Result<Option<u64>, BindError> {
        match self.meta_text(key) {
            None => Ok(None),
            Some(t) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| BindError::new(format!("Metadata.{key} should be a whole number, got {t:?}"))),
        }
    }

    /// A metadata value as a whole number, or `None` when it is missing or is not one. The real host
    /// merges a JSON message's top-level properties into the binding data, case-insensitively and
    /// with the body winning (`Utility.ApplyBindingData`), so a message `{"dequeueCount": "x"}`
    /// arrives as `Metadata.DequeueCount: "x"`; a trigger must still bind.
    pub fn meta_u64_lenient(&self, key: &str) -> Option<u64> {
        self.meta_u64(key).unwrap_or_else(|e| {
            tracing::debug!("{e}; a message property of the same name replaced it, so it is ignored");
            None
        })
    }

    /// A metadata value as a UTC time, or `None` when it is missing or is not one (see
    /// [`meta_u64_lenient`](Self::meta_u64_lenient)).
    pub fn meta_time_lenient(&self, key: &str) -> Option<DateTime<Utc>> {
        self.meta_time(key).unwrap_or_else(|e| {
            tracing::debug!("{e}; a message property of the same name replaced it, so it is ignored");
            None
        })
    }

    /// A metadata value as a UTC time.
    pub fn meta_time(&self, key: &str) -> Result<Option<DateTime<Utc>>, BindError> {
        match self.meta_text(key) {
            None => Ok(None),
            Some(t) => parse_time(&t)
                .map(Some)
                .ok_or_else(|| BindError::new(format!("Metadata.{key} should be an ISO-8601 time, got {t:?}"))),
        }
    }

    /// A metadata object (e.g. `Properties`), unwrapping a JSON string if the host sent one.
    pub fn meta_json(&self, key: &str) -> Option<Value> {
        self.metadata().get(key).and_then(|v| crate::encoding::value_json(v).ok()).map(|v| v.into_owned())
    }
}

/// Parses the host's time formats: RFC 3339 with an offset, or without one (then taken as UTC), as
/// `DateTime.Parse(...).ToString()` round trips produce.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// Builds a handler's trigger argument from an invocation.
///
/// Implement it to support a trigger that azfn does not know; [`TRIGGER_TYPE`](Self::TRIGGER_TYPE)
/// is checked against function.json at start-up.
pub trait FromTrigger: Sized + Send + 'static {
    /// The function.json trigger type this accepts (compared ignoring case), or `None` for any.
    const TRIGGER_TYPE: Option<&'static str>;

    /// Builds the value, or says what in the payload does not fit.
    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError>;
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers for the trigger tests: the host-shaped fixtures in the workspace's `tests/fixtures/`.
    pub use crate::testing::{binding, trigger_from_invocation as parse};
    use serde_json::Value;

    /// Reads a fixture from the workspace's `tests/fixtures/`.
    pub fn fixture(name: &str) -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/").to_owned() + name;
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_time_forms() {
        let with_offset = parse_time("2019-10-16T17:58:31+00:00").unwrap();
        assert_eq!(with_offset.to_rfc3339(), "2019-10-16T17:58:31+00:00");
        assert_eq!(parse_time("2019-10-01T00:00:00").unwrap().to_rfc3339(), "2019-10-01T00:00:00+00:00");
        assert!(parse_time("2019-10-09T17:58:32.2205399Z").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
