//! Storage queue trigger (`queueTrigger`).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::{FromTrigger, TriggerInput};
use crate::encoding::{text_to, value_text};
use crate::error::BindError;

/// A storage queue message with a body of type `T`.
///
/// The host sends the message text double-encoded (`"\"{\\\"a\\\":1}\""`) and the metadata numbers as
/// strings (`"DequeueCount": "1"`); this type undoes both. `T` is parsed from the text as JSON, so use
/// a `#[derive(Deserialize)]` struct for JSON messages and `String` for plain text.
///
/// A message whose body does not fit `T` fails the invocation: the host retries it, and after
/// `maxDequeueCount` attempts moves it to `<queue>-poison`.
///
/// ```
/// # use azfn::QueueMessage;
/// #[derive(serde::Deserialize)]
/// struct Order { id: String }
///
/// async fn process(msg: QueueMessage<Order>, _ctx: azfn::Context) -> Result<(), azfn::Error> {
///     tracing::info!(order = %msg.body.id, attempt = msg.dequeue_count, "processing");
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMessage<T = String> {
    /// The message body.
    pub body: T,
    /// The message text as received.
    pub text: String,
    /// The message id (absent when run through the admin endpoint). In Azure, a JSON message with
    /// its own `id` property replaces it: the host merges body properties into the metadata.
    pub id: Option<String>,
    /// How many times the message has been dequeued, this time included.
    pub dequeue_count: u64,
    /// When the message was inserted.
    pub insertion_time: Option<DateTime<Utc>>,
    /// When the message expires.
    pub expiration_time: Option<DateTime<Utc>>,
    /// When the message becomes visible again if this invocation fails.
    pub next_visible_time: Option<DateTime<Utc>>,
    /// The pop receipt of this dequeue.
    pub pop_receipt: Option<String>,
}

impl<T> QueueMessage<T> {
    /// The W3C `traceparent` the message carries: the `traceparent` property of a JSON object
    /// message (as [`Context::send_json`](crate::Context::send_json) and the durable engine write
    /// it). The runtime already continues that trace in the invocation's span; this is for code
    /// that passes it on by other means.
    pub fn traceparent(&self) -> Option<String> {
        crate::telemetry::Carrier::from_json(&self.text).traceparent
    }
}

impl<T: DeserializeOwned + Send + 'static> FromTrigger for QueueMessage<T> {
    const TRIGGER_TYPE: Option<&'static str> = Some("queueTrigger");

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        let value = input.require_value()?;
        let text = value_text(&value)
            .map(|t| t.into_owned())
            // The message is always a string on the wire; tolerate a JSON object (hand-written payloads).
            .unwrap_or_else(|| value.to_string());
        // With `dataType: binary` the host sends the message bytes as base64.
        let text = match input.binding.is_binary().then(|| crate::encoding::decode_base64(&text)).flatten() {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => text,
        };
        let body = text_to::<T>(&text).map_err(|e| {
            BindError::new(format!("the queue message does not fit {}: {e}", std::any::type_name::<T>()))
        })?;
        Ok(Self {
            body,
            text,
            id: input.meta_text("Id"),
            // Lenient: in Azure a JSON message's own properties replace these (docs/host-fidelity.md §3).
            dequeue_count: input.meta_u64_lenient("DequeueCount").unwrap_or(0),
            insertion_time: input.meta_time_lenient("InsertionTime"),
            expiration_time: input.meta_time_lenient("ExpirationTime"),
            next_visible_time: input.meta_time_lenient("NextVisibleTime"),
            pop_receipt: input.meta_text("PopReceipt"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::test_support::*;
    use serde::Deserialize;
    use serde_json::{Value, json};

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        order_id: u32,
        note: String,
    }

    #[test]
    fn derived_queue_request_with_json_body() {
        let req = fixture("derived-queue-trigger.request.json");
        let m: QueueMessage<Item> = parse(&req, &binding("queueTrigger", "myQueueItem", json!({}))).unwrap();
        assert_eq!(m.body, Item { order_id: 42, note: "hi".into() });
        assert_eq!(m.text, r#"{"orderId":42,"note":"hi"}"#);
        assert_eq!(m.dequeue_count, 1);
        assert_eq!(m.id.as_deref(), Some("b0f7e0a4-2f4e-4a4e-9c59-6f3f1f1e2a11"));
        assert_eq!(m.pop_receipt.as_deref(), Some("AgAAAAMAAAAAAAAAAgtnj8x+1QE="));
        assert_eq!(m.expiration_time.unwrap().to_rfc3339(), "2024-05-08T10:00:00+00:00");
        assert_eq!(m.insertion_time.unwrap().to_rfc3339(), "2024-05-01T10:00:00+00:00");
        assert_eq!(m.next_visible_time.unwrap().to_rfc3339(), "2024-05-01T10:10:00+00:00");
    }

    #[test]
    fn host_test_text_message() {
        // host-test-default-invocation.request.json: a string message, double-encoded.
        let req = fixture("host-test-default-invocation.request.json");
        let m: QueueMessage = parse(&req, &binding("queueTrigger", "myqueueItem", json!({}))).unwrap();
        assert_eq!(m.body, "HelloWorld");
    }

    #[test]
    fn docs_queue_request_plain_forms() {
        // The docs example sends the text unencoded and DequeueCount as a number.
        let req = fixture("docs-queue-trigger.request.json");
        let m: QueueMessage = parse(&req, &binding("queueTrigger", "myQueueItem", json!({}))).unwrap();
        assert_eq!(m.body, "{ message: \"Message sent\" }");
        assert_eq!(m.dequeue_count, 1);
        assert_eq!(m.id.as_deref(), Some("800ae4b3-bdd2-4c08-badd-f08e5a34b865"));
    }

    #[test]
    fn a_body_that_does_not_fit_says_why() {
        let req = json!({"Data": {"msg": "\"{\\\"orderId\\\":\\\"x\\\"}\""}, "Metadata": {"DequeueCount": "2"}});
        let err = parse::<QueueMessage<Item>>(&req, &binding("queueTrigger", "msg", json!({}))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("does not fit") && text.contains("Item") && text.contains("line 1"), "{text}");
    }

    #[test]
    fn a_missing_entry_is_named() {
        let req = json!({"Data": {}, "Metadata": {}});
        let err = parse::<QueueMessage>(&req, &binding("queueTrigger", "msg", json!({}))).unwrap_err();
        assert!(err.to_string().contains("`msg`"), "{err}");
    }

    /// The real host merges a JSON message's properties into the binding data, the body winning
    /// (azure-functions-host `Utility.ApplyBindingData`): a message `{"id": "o-1", "dequeueCount": "x",
    /// "insertionTime": "soon"}` arrives with those values in `Metadata`. It still binds.
    #[test]
    fn metadata_overwritten_by_the_message_body_still_binds() {
        let body = r#"{"id":"o-1","dequeueCount":"x","insertionTime":"soon"}"#;
        let req = json!({"Data": {"msg": serde_json::to_string(body).unwrap()},
                         "Metadata": {"Id": "\"o-1\"", "DequeueCount": "\"x\"", "InsertionTime": "\"soon\"",
                                      "sys": {"MethodName": "P", "UtcNow": "2026-11-27T00:00:00Z", "RandGuid": "g"}}});
        let m: QueueMessage<Value> = parse(&req, &binding("queueTrigger", "msg", json!({}))).unwrap();
        assert_eq!(m.body["id"], "o-1");
        assert_eq!(m.id.as_deref(), Some("o-1"));
        assert_eq!(m.dequeue_count, 0);
        assert_eq!(m.insertion_time, None);
    }
}
