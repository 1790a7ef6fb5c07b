//! Storage queues: create, send, receive, delete, and change visibility.
//!
//! Message bodies are bytes sent base64-encoded, the Functions default (`messageEncoding: base64`), so
//! a message sent here is what a queue trigger receives, and the other way round.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::Method;

use super::auth::Service;
use super::client::{ServiceClient, StorageError};
use super::connection::StorageAccount;
use super::retry::RetryPolicy;
use super::xml;
use crate::encoding::BASE64;

/// A message received from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The message id.
    pub id: String,
    /// The pop receipt, needed to delete or update this dequeue.
    pub pop_receipt: String,
    /// How many times it has been dequeued, this time included.
    pub dequeue_count: u32,
    /// When it was inserted.
    pub insertion_time: Option<DateTime<Utc>>,
    /// When it expires.
    pub expiration_time: Option<DateTime<Utc>>,
    /// When it becomes visible again.
    pub next_visible_time: Option<DateTime<Utc>>,
    /// The body, base64-decoded (or the raw text when it is not base64).
    pub body: Vec<u8>,
    /// The message text as stored, not decoded: what a queue trigger with `messageEncoding: none`
    /// is given, and what goes to a poison queue unchanged.
    pub text: String,
    /// Whether the message text was valid base64 (ASCII whitespace ignored, as .NET's
    /// `Convert.FromBase64String` ignores it). A Functions queue trigger with the default
    /// `messageEncoding` cannot decode one that is not, and moves it to the poison queue.
    pub base64: bool,
}

/// A client for the queues of one account.
#[derive(Debug, Clone)]
pub struct QueueClient {
    service: ServiceClient,
    /// Send `messagettl=-1` (messages never expire) instead of the service's default of 7 days.
    never_expire: bool,
    #[cfg(feature = "simulation")]
    memory: Option<super::memory::Link>,
}

fn time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc2822(&t).ok()).map(|t| t.with_timezone(&Utc))
}

impl QueueClient {
    /// A client for `account`'s queue endpoint.
    pub fn new(account: &StorageAccount) -> Result<Self, StorageError> {
        Ok(Self {
            service: ServiceClient::new(account, Service::Queue)?,
            never_expire: false,
            #[cfg(feature = "simulation")]
            memory: None,
        })
    }

    /// A client of the in-memory account behind `link` (feature `simulation`).
    #[cfg(feature = "simulation")]
    pub fn in_memory(link: super::memory::Link) -> Self {
        let service = super::memory::placeholder_service(Service::Queue);
        Self { service, never_expire: false, memory: Some(link) }
    }

    /// The same client, sending messages that never expire (`messagettl=-1`), as DurableTask's
    /// Azure Storage provider sends its control and work messages; without it Azure Storage
    /// deletes a message 7 days after it was sent, whether or not anyone read it.
    pub fn never_expiring(mut self) -> Self {
        self.never_expire = true;
        self
    }

    /// The same client, retrying failed requests by `policy` instead of [`RetryPolicy::from_env`].
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.service = self.service.with_retry_policy(policy);
        self
    }

    /// Creates the queue if it does not exist.
    pub async fn create_queue(&self, queue: &str) -> Result<(), StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.create_queue(queue).await;
        }
        self.service.create(self.service.request(Method::PUT, queue), &format!("create queue {queue}")).await
    }

    /// Sends a message (creating the queue if it is missing); it becomes visible after `delay`.
    ///
    /// A send is not idempotent: when an attempt's answer is lost and it is tried again, the queue
    /// may hold the message twice. Consumers must tolerate duplicates (queue triggers are
    /// at-least-once anyway).
    pub async fn send(&self, queue: &str, body: &[u8], delay: Duration) -> Result<(), StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.put_message(queue, &BASE64.encode(body), delay, self.ttl()).await.map(|_| ());
        }
        self.put_message(queue, &BASE64.encode(body), delay).await.map(|_| ())
    }

    /// Like [`send`](Self::send), giving the new message's id and pop receipt (the body left
    /// empty), with which [`delete`](Self::delete) can take it back while it is still hidden.
    pub async fn send_with_receipt(
        &self,
        queue: &str,
        body: &[u8],
        delay: Duration,
    ) -> Result<ReceivedMessage, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.put_message(queue, &BASE64.encode(body), delay, self.ttl()).await;
        }
        let response = self.put_message(queue, &BASE64.encode(body), delay).await?;
        let text = response.text().await.map_err(|e| StorageError::other(e.to_string()))?;
        // The answer lists the new message without its text: parsed like a received one.
        Ok(xml::blocks(&text, "QueueMessage")
            .into_iter()
            .next()
            .map(parse_message)
            .unwrap_or_else(|| parse_message("")))
    }

    /// Sends `text` as the message text as it is, not base64-encoded: what a producer that ignores
    /// the Functions encoding writes. A queue trigger with the default encoding cannot read it.
    pub async fn send_unencoded(&self, queue: &str, text: &str, delay: Duration) -> Result<(), StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.put_message(queue, text, delay, self.ttl()).await.map(|_| ());
        }
        let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        self.put_message(queue, &escaped, delay).await.map(|_| ())
    }

    /// The time-to-live sent with each message: `None` for never (Azure's default is 7 days).
    #[cfg(feature = "simulation")]
    fn ttl(&self) -> Option<Duration> {
        (!self.never_expire).then_some(Duration::from_secs(7 * 24 * 3600))
    }

    /// Put Message with `text` (already encoded or escaped for XML), creating the queue if needed.
    async fn put_message(&self, queue: &str, text: &str, delay: Duration) -> Result<reqwest::Response, StorageError> {
        let xml = format!("<QueueMessage><MessageText>{text}</MessageText></QueueMessage>");
        let req = self
            .service
            .request(Method::POST, &format!("{queue}/messages"))
            .query(&[("visibilitytimeout", delay.as_secs().to_string())])
            .header("content-type", "application/xml")
            .body(xml);
        let req = if self.never_expire { req.query(&[("messagettl", "-1")]) } else { req };
        let what = format!("send to queue {queue}");
        self.service.send_creating(req, &what, "QueueNotFound", || self.create_queue(queue)).await
    }

    /// Receives up to `max` (1 to 32) messages, hiding them for `visibility`.
    pub async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.receive(queue, max, visibility, false).await;
        }
        let req = self.service.request(Method::GET, &format!("{queue}/messages")).query(&[
            ("numofmessages", max.clamp(1, 32).to_string()),
            ("visibilitytimeout", visibility.as_secs().max(1).to_string()),
        ]);
        self.messages(req, &format!("receive from queue {queue}")).await
    }

    /// Looks at up to `max` (1 to 32) messages at the front of the queue without hiding them (no
    /// pop receipts).
    pub async fn peek(&self, queue: &str, max: u32) -> Result<Vec<ReceivedMessage>, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.receive(queue, max, Duration::ZERO, true).await;
        }
        let req = self
            .service
            .request(Method::GET, &format!("{queue}/messages"))
            .query(&[("peekonly", "true".to_owned()), ("numofmessages", max.clamp(1, 32).to_string())]);
        self.messages(req, &format!("peek at queue {queue}")).await
    }

    async fn messages(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Vec<ReceivedMessage>, StorageError> {
        let text = self.service.send(req, what).await?.text().await.map_err(|e| StorageError::other(e.to_string()))?;
        Ok(xml::blocks(&text, "QueueMessage").into_iter().map(parse_message).collect())
    }

    /// Deletes a received message.
    pub async fn delete(&self, queue: &str, message: &ReceivedMessage) -> Result<(), StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.delete_message(queue, message).await;
        }
        let req = self
            .service
            .request(Method::DELETE, &format!("{queue}/messages/{}", message.id))
            .query(&[("popreceipt", &message.pop_receipt)]);
        self.service.delete(req, &format!("delete message {} from queue {queue}", message.id)).await
    }

    /// Makes a received message visible again after `delay`, keeping its body; returns its new pop receipt.
    pub async fn release(
        &self,
        queue: &str,
        message: &ReceivedMessage,
        delay: Duration,
    ) -> Result<String, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.update_visibility(queue, message, delay).await;
        }
        let req = self
            .service
            .request(Method::PUT, &format!("{queue}/messages/{}", message.id))
            .query(&[("popreceipt", message.pop_receipt.clone()), ("visibilitytimeout", delay.as_secs().to_string())]);
        let res = self.service.send(req, &format!("release message {} in queue {queue}", message.id)).await?;
        Ok(res.headers().get("x-ms-popreceipt").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
    }

    /// The approximate number of messages in the queue.
    pub async fn approximate_count(&self, queue: &str) -> Result<u64, StorageError> {
        #[cfg(feature = "simulation")]
        if let Some(m) = &self.memory {
            return m.approximate_count(queue).await;
        }
        let req = self.service.request(Method::GET, queue).query(&[("comp", "metadata")]);
        let res = self.service.send(req, &format!("read queue {queue}")).await?;
        Ok(res
            .headers()
            .get("x-ms-approximate-messages-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

/// A `QueueMessage` element of a Get Messages or Put Message answer.
fn parse_message(m: &str) -> ReceivedMessage {
    let body_text = xml::first(m, "MessageText").unwrap_or_default();
    let compact: String = body_text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let decoded = BASE64.decode(compact.as_bytes()).ok();
    ReceivedMessage {
        id: xml::first(m, "MessageId").unwrap_or_default(),
        pop_receipt: xml::first(m, "PopReceipt").unwrap_or_default(),
        dequeue_count: xml::first(m, "DequeueCount").and_then(|d| d.parse().ok()).unwrap_or(0),
        insertion_time: time(xml::first(m, "InsertionTime")),
        expiration_time: time(xml::first(m, "ExpirationTime")),
        next_visible_time: time(xml::first(m, "TimeNextVisible")),
        base64: decoded.is_some(),
        body: decoded.unwrap_or_else(|| body_text.clone().into_bytes()),
        text: body_text,
    }
}
