//! Service Bus trigger (`serviceBusTrigger`).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{FromTrigger, TriggerInput};
use crate::encoding::{text_to, value_text};
use crate::error::BindError;

/// A Service Bus message with a body of type `T` (JSON, or `String` for text).
///
/// The fields come from the binding data of the Service Bus extension 5.x
/// (`ServiceBusTriggerBindingStrategy` in azure-sdk-for-net), with the host's double encoding undone.
/// A message that fails is abandoned and redelivered until the entity's max delivery count, then
/// dead-lettered.
///
/// ```
/// # use azfn::ServiceBusMessage;
/// async fn on_event(msg: ServiceBusMessage<serde_json::Value>, _ctx: azfn::Context) -> Result<(), azfn::Error> {
///     tracing::info!(id = ?msg.message_id, deliveries = msg.delivery_count, "event");
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceBusMessage<T = String> {
    /// The message body.
    pub body: T,
    /// The body text as received.
    pub text: String,
    /// `MessageId`.
    pub message_id: Option<String>,
    /// `DeliveryCount`.
    pub delivery_count: u64,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `Subject` (formerly `Label`).
    pub subject: Option<String>,
    /// `ApplicationProperties` (formerly `UserProperties`).
    pub application_properties: Map<String, Value>,
    /// `EnqueuedTime` (or `EnqueuedTimeUtc`).
    pub enqueued_time: Option<DateTime<Utc>>,
    /// `ExpiresAt` (or `ExpiresAtUtc`).
    pub expires_at: Option<DateTime<Utc>>,
    /// `SessionId`, for session-enabled entities.
    pub session_id: Option<String>,
    /// `SequenceNumber` (-1 for a message the admin endpoint made: the SDK's model default).
    pub sequence_number: Option<i64>,
    /// `ReplyTo`.
    pub reply_to: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `PartitionKey`.
    pub partition_key: Option<String>,
}

impl<T: DeserializeOwned + Send + 'static> FromTrigger for ServiceBusMessage<T> {
    const TRIGGER_TYPE: Option<&'static str> = Some("serviceBusTrigger");

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        let value = input.require_value()?;
        let text = value_text(&value).map(|t| t.into_owned()).unwrap_or_else(|| value.to_string());
        let body = text_to::<T>(&text).map_err(|e| {
            BindError::new(format!("the Service Bus message does not fit {}: {e}", std::any::type_name::<T>()))
        })?;
        let either = |a: &str, b: &str| input.meta_text(a).or_else(|| input.meta_text(b));
        let time = |a: &str, b: &str| -> Result<Option<DateTime<Utc>>, BindError> {
            match input.meta_time(a)? {
                Some(t) => Ok(Some(t)),
                None => input.meta_time(b),
            }
        };
        let application_properties =
            match input.meta_json("ApplicationProperties").or_else(|| input.meta_json("UserProperties")) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
        Ok(Self {
            body,
            text,
            message_id: input.meta_text("MessageId"),
            delivery_count: input.meta_u64_lenient("DeliveryCount").unwrap_or(0),
            correlation_id: input.meta_text("CorrelationId"),
            content_type: input.meta_text("ContentType"),
            subject: either("Subject", "Label"),
            application_properties,
            enqueued_time: time("EnqueuedTime", "EnqueuedTimeUtc")?,
            expires_at: time("ExpiresAt", "ExpiresAtUtc")?,
            session_id: input.meta_text("SessionId"),
            sequence_number: input.meta_text("SequenceNumber").and_then(|t| t.trim().parse().ok()),
            reply_to: input.meta_text("ReplyTo"),
            to: input.meta_text("To"),
            partition_key: input.meta_text("PartitionKey"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::test_support::*;
    use serde_json::json;

    #[test]
    fn derived_service_bus_request() {
        let req = fixture("derived-servicebus-trigger.request.json");
        let m: ServiceBusMessage<Value> = parse(&req, &binding("serviceBusTrigger", "event", json!({}))).unwrap();
        assert_eq!(m.body, json!({"orderId": "o-1", "status": "shipped"}));
        assert_eq!(m.message_id.as_deref(), Some("5f3a1c2e9b7d4e0f8a6b1c2d3e4f5a6b"));
        assert_eq!(m.delivery_count, 1);
        assert_eq!(m.correlation_id.as_deref(), Some("o-1"));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.subject.as_deref(), Some("order-shipped"));
        assert_eq!(m.application_properties["tenant"], json!("contoso"));
        assert_eq!(m.enqueued_time.unwrap().to_rfc3339(), "2024-05-01T10:00:00+00:00");
        assert_eq!(m.session_id, None);
        assert_eq!(m.sequence_number, Some(17));
    }

    #[test]
    fn text_body_and_sessions() {
        let req = json!({"Data": {"m": "\"plain text\""}, "Metadata": {"SessionId": "\"s-1\"", "DeliveryCount": "3"}});
        let m: ServiceBusMessage = parse(&req, &binding("serviceBusTrigger", "m", json!({}))).unwrap();
        assert_eq!(m.body, "plain text");
        assert_eq!(m.session_id.as_deref(), Some("s-1"));
        assert_eq!(m.delivery_count, 3);
    }
}
