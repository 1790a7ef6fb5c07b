//! The storage queue trigger, as the Storage Queues extension 5.x runs it
//! (`QueueListener`, `QueueProcessor`, `QueuesOptions` in Azure/azure-sdk-for-net; see
//! `custom-handler-protocol.md` §5.1):
//!
//! - fetch up to `batchSize` messages (default 16) whenever no more than `newBatchThreshold`
//!   (default `batchSize / 2 * cores`) are in flight;
//! - poll with random exponential back-off from 100 ms up to `maxPollingInterval` when the queue is
//!   empty (2 s by default here, the development default; 1 min in Azure); a queue output written
//!   by this host wakes the listener at once;
//! - a message is hidden while its invocation runs (a 10-minute lease renewed at half, as the real
//!   host's, so a long invocation keeps it and a crashed host's messages come back after it;
//!   `AZFN_QUEUE_LEASE` shortens it);
//! - a message that is not valid base64 goes to `<queue>-poison` at once, not run;
//! - a message is deleted only after its invocation succeeds; after a failure it becomes visible
//!   again after `visibilityTimeout` (default 0);
//! - after `maxDequeueCount` failed attempts (default 5) it moves to `<queue>-poison`, the same body:
//!   copied, then deleted; if the deletion fails, the message shows up again and is only deleted
//!   (this listener remembers what it copied), so it is in the poison queue once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::bindings::Clients;
use super::invocation::{self, QueueParts};
use super::invoker::Invoker;
use azfn::storage::ReceivedMessage;

/// How long a fetched message stays hidden while it is processed: the real host's 10 minutes,
/// renewed at the halfway point (docs/host-fidelity.md §10). The built-in host's setting
/// `AZFN_QUEUE_LEASE` (`hh:mm:ss`) shortens it, for quicker recovery after a crash in tests.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10 * 60);
/// The shortest polling interval.
const MIN_POLL: Duration = Duration::from_millis(100);

/// host.json `extensions.queues`, with the extension's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueOptions {
    /// Messages fetched at a time (1 to 32).
    pub batch_size: u32,
    /// Fetch again when no more than this many are in flight.
    pub new_batch_threshold: u32,
    /// The longest wait between polls of an empty queue.
    pub max_polling_interval: Duration,
    /// How long a failed message stays hidden before its retry.
    pub visibility_timeout: Duration,
    /// Attempts before a message moves to the poison queue.
    pub max_dequeue_count: u32,
    /// `messageEncoding`: `base64` (default) or `none`.
    pub base64: bool,
    /// How long a fetched message stays hidden ([`DEFAULT_LEASE`]); renewed at half of it.
    pub lease: Duration,
}

/// A host.json `TimeSpan` (`hh:mm:ss[.fff]`, `d.hh:mm:ss`) or a number of milliseconds.
pub fn parse_timespan(v: &Value) -> Option<Duration> {
    if let Some(ms) = v.as_u64() {
        return Some(Duration::from_millis(ms));
    }
    let text = v.as_str()?.trim();
    let (days, rest) = match text.split_once('.') {
        Some((d, r)) if r.contains(':') && !d.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, text),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let [h, m, s] = parts[..] else { return None };
    let secs: f64 = s.parse().ok()?;
    let whole = days * 86_400 + h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
    Some(Duration::from_secs(whole) + Duration::from_secs_f64(secs))
}

impl QueueOptions {
    /// Reads `extensions.queues` from the host.json document.
    ///
    /// ```
    /// use cargo_azfn::host::queue_listener::QueueOptions;
    /// let host = serde_json::json!({"extensions": {"queues": {"batchSize": 8, "maxPollingInterval": "00:00:05", "maxDequeueCount": 3}}});
    /// let o = QueueOptions::from_host_json(&host, 2);
    /// assert_eq!((o.batch_size, o.new_batch_threshold, o.max_dequeue_count), (8, 8, 3));
    /// assert_eq!(o.max_polling_interval, std::time::Duration::from_secs(5));
    /// ```
    pub fn from_host_json(host: &Value, cores: u32) -> Self {
        let q = &host["extensions"]["queues"];
        let num = |k: &str| q.get(k).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
        let batch_size = num("batchSize").unwrap_or(16).clamp(1, 32) as u32;
        Self {
            batch_size,
            new_batch_threshold: num("newBatchThreshold").map(|n| n as u32).unwrap_or(batch_size / 2 * cores.max(1)),
            max_polling_interval: q
                .get("maxPollingInterval")
                .and_then(parse_timespan)
                .unwrap_or(Duration::from_secs(2))
                .max(MIN_POLL),
            visibility_timeout: q.get("visibilityTimeout").and_then(parse_timespan).unwrap_or(Duration::ZERO),
            max_dequeue_count: num("maxDequeueCount").unwrap_or(5).max(1) as u32,
            base64: !q.get("messageEncoding").and_then(Value::as_str).is_some_and(|e| e.eq_ignore_ascii_case("none")),
            lease: DEFAULT_LEASE,
        }
    }
}

/// The poison queue of `queue`, or `None` when it has none (already a poison queue, or the name
/// would be longer than 63 characters).
pub fn poison_queue(queue: &str) -> Option<String> {
    let name = format!("{queue}-poison");
    (!queue.ends_with("-poison") && name.len() <= 63).then_some(name)
}

/// One function's queue trigger.
#[derive(Debug, Clone)]
pub struct QueueTrigger {
    /// The function.
    pub function: String,
    /// The trigger binding's name.
    pub binding: String,
    /// The queue.
    pub queue: String,
    /// The connection setting name.
    pub connection: String,
}

/// Listens until `stop` turns true.
pub async fn listen(invoker: Arc<Invoker>, t: QueueTrigger, opts: QueueOptions, mut stop: watch::Receiver<bool>) {
    let console = invoker.console;
    let clients = match invoker.bindings.clients(&t.connection) {
        Ok(c) => c,
        Err(e) => return console.error(&format!("{}: queue trigger on {:?} cannot start: {e}", t.function, t.queue)),
    };
    if let Err(e) = invoker.bindings.ensure_queue(&clients, &t.connection, &t.queue).await {
        console.warn(&format!("{}: cannot create queue {:?}: {e}", t.function, t.queue));
    }
    let waker = invoker.bindings.waker(&t.connection, &t.queue);
    let moved = Arc::new(Moved::default());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(Notify::new());
    let mut delay = MIN_POLL;
    let mut reported_error = false;
    while !*stop.borrow() {
        if in_flight.load(Ordering::SeqCst) > opts.new_batch_threshold as usize {
            tokio::select! {
                _ = finished.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        match clients.queues.receive(&t.queue, opts.batch_size, opts.lease).await {
            Ok(messages) if !messages.is_empty() => {
                reported_error = false;
                delay = MIN_POLL;
                for m in messages {
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    let (invoker, t, opts, clients) = (invoker.clone(), t.clone(), opts.clone(), clients.clone());
                    let (in_flight, finished, moved) = (in_flight.clone(), finished.clone(), moved.clone());
                    tokio::spawn(async move {
                        process(&invoker, &clients, &t, &opts, &moved, m).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        finished.notify_one();
                    });
                }
                continue;
            }
            Ok(_) => reported_error = false,
            Err(e) => {
                if !reported_error {
                    console
                        .warn(&format!("{}: polling queue {:?} failed (will keep trying): {e}", t.function, t.queue));
                    reported_error = true;
                }
            }
        }
        tokio::select! {
            _ = waker.notified() => delay = MIN_POLL,
            _ = tokio::time::sleep(delay) => {
                // Random exponential back-off, as QueuePollingIntervals does.
                let factor = 1.0 + super::jitter();
                delay = delay.mul_f64(factor).min(opts.max_polling_interval);
            }
            _ = stop.changed() => {}
        }
    }
}

async fn process(
    invoker: &Invoker,
    clients: &Clients,
    t: &QueueTrigger,
    opts: &QueueOptions,
    moved: &Moved,
    mut m: ReceivedMessage,
) {
    let console = invoker.console;
    // A message seen more often than allowed (its last attempt crashed the host) goes straight to poison.
    if m.dequeue_count > opts.max_dequeue_count {
        return to_poison(invoker, clients, t, moved, &m).await;
    }
    // The real host cannot decode a message that is not base64 (the default `messageEncoding`): the
    // queue client's MessageDecodingFailed handler moves it to the poison queue at once, with no
    // invocation (QueueServiceClientProvider, Storage Queues extension; docs/host-fidelity.md).
    if opts.base64 && !m.base64 {
        console.error(&format!(
            "{}: message {} in queue {:?} is not valid base64, which the queue trigger expects \
             (host.json extensions.queues.messageEncoding); not run",
            t.function, m.id, t.queue
        ));
        return to_poison(invoker, clients, t, moved, &m).await;
    }
    let result = match String::from_utf8(m.body.clone()) {
        Ok(text) => {
            let inv = invocation::queue(
                &t.function,
                &t.binding,
                &QueueParts {
                    text,
                    id: Some(m.id.clone()),
                    pop_receipt: Some(m.pop_receipt.clone()),
                    dequeue_count: m.dequeue_count.into(),
                    insertion_time: m.insertion_time,
                    expiration_time: m.expiration_time,
                    next_visible_time: m.next_visible_time,
                },
            );
            let invocation = invoker.invoke(&t.function, "queueTrigger", inv);
            tokio::pin!(invocation);
            let half = opts.lease / 2;
            let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
            loop {
                tokio::select! {
                    r = &mut invocation => break r.map(|_| ()),
                    _ = renew.tick() => match clients.queues.release(&t.queue, &m, opts.lease).await {
                        Ok(receipt) => m.pop_receipt = receipt,
                        Err(e) => console.warn(&format!("{}: could not renew the lease of message {}: {e}", t.function, m.id)),
                    },
                }
            }
        }
        Err(_) => {
            let e = format!("message {} in queue {:?} is not UTF-8 text", m.id, t.queue);
            console.error(&format!("{}: {e}", t.function));
            Err(e)
        }
    };
    match result {
        Ok(()) => {
            if let Err(e) = clients.queues.delete(&t.queue, &m).await {
                console.warn(&format!("{}: could not delete message {}: {e}", t.function, m.id));
            }
        }
        Err(_) if m.dequeue_count >= opts.max_dequeue_count => to_poison(invoker, clients, t, moved, &m).await,
        Err(_) => {
            if let Err(e) = clients.queues.release(&t.queue, &m, opts.visibility_timeout).await {
                console.warn(&format!("{}: could not release message {} for a retry: {e}", t.function, m.id));
            }
        }
    }
}

/// The ids of the messages this listener has copied to the poison queue. A message whose deletion
/// failed after its copy was sent shows up again; it is then deleted without a second copy.
#[derive(Debug, Default)]
struct Moved(std::sync::Mutex<std::collections::HashSet<String>>);

impl Moved {
    /// Ids kept at most (message ids are unique, so forgetting old ones only risks a second copy of
    /// a message that failed to be deleted long ago).
    const CAPACITY: usize = 10_000;

    fn contains(&self, id: &str) -> bool {
        self.0.lock().expect("moved lock").contains(id)
    }

    fn insert(&self, id: &str) {
        let mut ids = self.0.lock().expect("moved lock");
        if ids.len() >= Self::CAPACITY {
            ids.clear();
        }
        ids.insert(id.to_owned());
    }
}

async fn to_poison(invoker: &Invoker, clients: &Clients, t: &QueueTrigger, moved: &Moved, m: &ReceivedMessage) {
    let console = invoker.console;
    let Some(poison) = poison_queue(&t.queue) else {
        console.warn(&format!(
            "{}: message {} failed {} times; {:?} has no poison queue",
            t.function, m.id, m.dequeue_count, t.queue
        ));
        return;
    };
    let copied_before = moved.contains(&m.id);
    let move_it = async {
        if !copied_before {
            invoker.bindings.ensure_queue(clients, &t.connection, &poison).await?;
            clients.queues.send(&poison, &m.body, Duration::ZERO).await.map_err(|e| e.to_string())?;
            moved.insert(&m.id);
        }
        // Only once the copy is in the poison queue is the original deleted: nothing is lost.
        clients.queues.delete(&t.queue, m).await.map_err(|e| e.to_string())
    };
    match move_it.await {
        Ok(()) if copied_before => console.warn(&format!(
            "{}: message {} was already copied to queue {poison:?}; deleted it from {:?}",
            t.function, m.id, t.queue
        )),
        Ok(()) => console.warn(&format!(
            "{}: message {} failed {} times; moved it to queue {poison:?}",
            t.function, m.id, m.dequeue_count
        )),
        Err(e) => console.error(&format!("{}: could not move message {} to {poison:?}: {e}", t.function, m.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_timespans() {
        let o = QueueOptions::from_host_json(&json!({}), 2);
        assert_eq!(o.batch_size, 16);
        assert_eq!(o.new_batch_threshold, 16);
        assert_eq!(o.max_dequeue_count, 5);
        assert_eq!(o.visibility_timeout, Duration::ZERO);
        assert!(o.base64);
        assert_eq!(o.lease, Duration::from_secs(600), "the real host's 10 minutes");
        assert_eq!(parse_timespan(&json!("00:01:30")), Some(Duration::from_secs(90)));
        assert_eq!(parse_timespan(&json!("1.00:00:01")), Some(Duration::from_secs(86_401)));
        assert_eq!(parse_timespan(&json!("00:00:00.250")), Some(Duration::from_millis(250)));
        assert_eq!(parse_timespan(&json!(1500)), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timespan(&json!("soon")), None);
        assert_eq!(poison_queue("orders").as_deref(), Some("orders-poison"));
        assert_eq!(poison_queue("orders-poison"), None);
    }
}
