//! Event Grid trigger (`eventGridTrigger`), in both the Event Grid schema and CloudEvents 1.0.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{FromTrigger, TriggerInput, parse_time};
use crate::encoding::value_json;
use crate::error::BindError;

/// Which schema an event came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSchema {
    /// The Event Grid event schema (`eventType`, `subject`, `dataVersion`, ...).
    EventGrid,
    /// CloudEvents 1.0 (`specversion`, `type`, `source`, ...).
    CloudEvents,
}

/// An Event Grid event with `data` of type `T`, whichever schema the subscription uses.
///
/// The fields are mapped to one shape: `event_type` is `eventType` or `type`, `source` is `topic` or
/// `source`, `time` is `eventTime` or `time`. The whole event stays available in [`raw`](Self::raw).
///
/// ```
/// # use azfn::EventGridEvent;
/// async fn on_catalog(ev: EventGridEvent, _ctx: azfn::Context) -> Result<(), azfn::Error> {
///     tracing::info!(kind = %ev.event_type, subject = ?ev.subject, "catalog event");
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EventGridEvent<T = Value> {
    /// The schema the event came in.
    pub schema: EventSchema,
    /// `id`.
    pub id: String,
    /// `eventType` (Event Grid) or `type` (CloudEvents).
    pub event_type: String,
    /// `topic` (Event Grid) or `source` (CloudEvents).
    pub source: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
    /// `eventTime` (Event Grid) or `time` (CloudEvents).
    pub time: Option<DateTime<Utc>>,
    /// `dataVersion` (Event Grid only).
    pub data_version: Option<String>,
    /// `data`.
    pub data: T,
    /// The whole event.
    pub raw: Value,
}

impl<T: DeserializeOwned + Send + 'static> FromTrigger for EventGridEvent<T> {
    const TRIGGER_TYPE: Option<&'static str> = Some("eventGridTrigger");

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        let value = input.require_value()?;
        let raw = value_json(&value).map_err(|e| BindError::new(format!("the event is not JSON: {e}")))?.into_owned();
        Self::from_json(raw)
    }
}

impl<T: DeserializeOwned> EventGridEvent<T> {
    /// Reads one event, in either schema, from its JSON: for events that arrive by another way
    /// than the Event Grid trigger, such as a storage queue that an Event Grid subscription
    /// delivers to.
    ///
    /// ```
    /// use azfn::EventGridEvent;
    /// let event = serde_json::json!({
    ///     "id": "1", "eventType": "Microsoft.Storage.BlobCreated", "eventTime": "2026-01-01T00:00:00Z",
    ///     "subject": "/blobServices/default/containers/receipts/blobs/o-1.json", "data": {"eTag": "0x1"},
    ///     "dataVersion": "", "metadataVersion": "1", "topic": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a"
    /// });
    /// let event = EventGridEvent::<serde_json::Value>::from_json(event).unwrap();
    /// assert_eq!(event.event_type, "Microsoft.Storage.BlobCreated");
    /// assert_eq!(event.data["eTag"], "0x1");
    /// ```
    pub fn from_json(raw: Value) -> Result<Self, BindError> {
        let Value::Object(obj) = &raw else {
            return Err(BindError::new("the event should be a JSON object"));
        };
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        let schema = if obj.contains_key("specversion") { EventSchema::CloudEvents } else { EventSchema::EventGrid };
        let (type_key, source_key, time_key) = match schema {
            EventSchema::CloudEvents => ("type", "source", "time"),
            EventSchema::EventGrid => ("eventType", "topic", "eventTime"),
        };
        let required = |k: &str| text(k).ok_or_else(|| BindError::new(format!("the event has no `{k}` string")));
        let time = match text(time_key) {
            None => None,
            Some(t) => Some(
                parse_time(&t)
                    .ok_or_else(|| BindError::new(format!("the event's `{time_key}` is not a time: {t:?}")))?,
            ),
        };
        let data_value = obj.get("data").cloned().unwrap_or(Value::Null);
        let data = serde_json::from_value::<T>(data_value).map_err(|e| {
            BindError::new(format!("the event's `data` does not fit {}: {e}", std::any::type_name::<T>()))
        })?;
        Ok(Self {
            schema,
            id: required("id")?,
            event_type: required(type_key)?,
            source: text(source_key),
            subject: text("subject"),
            time,
            data_version: text("dataVersion"),
            data,
            raw: raw.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::test_support::*;
    use serde_json::json;

    #[test]
    fn event_grid_schema() {
        let req = fixture("derived-eventgrid-trigger.request.json");
        let e: EventGridEvent = parse(&req, &binding("eventGridTrigger", "event", json!({}))).unwrap();
        assert_eq!(e.schema, EventSchema::EventGrid);
        assert_eq!(e.event_type, "Contoso.Catalog.PriceChanged");
        assert_eq!(e.subject.as_deref(), Some("catalog/sku-1"));
        assert_eq!(e.data_version.as_deref(), Some("1.0"));
        assert_eq!(e.data["sku"], json!("sku-1"));
        assert_eq!(e.time.unwrap().to_rfc3339(), "2024-05-01T10:00:00+00:00");
    }

    #[test]
    fn cloud_events_schema() {
        let req = fixture("derived-cloudevents-trigger.request.json");
        let e: EventGridEvent = parse(&req, &binding("eventGridTrigger", "event", json!({}))).unwrap();
        assert_eq!(e.schema, EventSchema::CloudEvents);
        assert_eq!(e.event_type, "Contoso.Catalog.ItemAdded");
        assert_eq!(e.source.as_deref(), Some("/contoso/catalog"));
        assert_eq!(e.data["sku"], json!("sku-2"));
    }

    #[test]
    fn missing_type_is_named() {
        let req = json!({"Data": {"e": {"id": "1", "data": {}}}, "Metadata": {}});
        let err = parse::<EventGridEvent>(&req, &binding("eventGridTrigger", "e", json!({}))).unwrap_err();
        assert!(err.to_string().contains("`eventType`"), "{err}");
    }
}
