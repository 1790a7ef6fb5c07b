//! The storage queue trigger, as the Storage Queues extension 5.x runs it
//! (`QueueListener`, `QueueProcessor`, `QueuesOptions` in Azure/azure-sdk-for-net; see
//! `custom-handler-protocol.md` §5.1 and docs/host-fidelity.md):
//!
//! - fetch up to `batchSize` messages (default 16) whenever no more than `newBatchThreshold`
//!   (default `batchSize / 2 * processors`; one processor on Consumption) are in flight;
//! - poll an empty (or missing) queue with the extension's randomized exponential back-off, from
//!   100 ms up to `maxPollingInterval` (2 s under Core Tools' Development environment, 1 minute in
//!   Azure); a queue output written by this host wakes the listener at once;
//! - the trigger's queue is not created (the real listener waits for it); its poison queue is;
//! - a message is hidden while its invocation runs (a 10-minute lease renewed at half, as the real
//!   host's, so a long invocation keeps it and a crashed host's messages come back after it;
//!   `AZFN_QUEUE_LEASE` shortens it);
//! - with `messageEncoding: base64` (the default) a message that is not valid base64 goes to
//!   `<queue>-poison` at once, unchanged, not run; with `none` the stored text is the message;
//! - a message is deleted only after its invocation succeeds; after a failure it becomes visible
//!   again after `visibilityTimeout` (default 0);
//! - after `maxDequeueCount` failed attempts (default 5) it moves to `<queue>-poison`, the same body:
//!   copied, then deleted; if the deletion fails, the message shows up again and is only deleted
//!   (this listener remembers what it copied), so it is in the poison queue once;
//! - a queue with no poison queue (its name ends in `-poison`) keeps a failed message hidden for
//!   the rest of its lease instead, so that it does not spin.

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
/// The shortest polling interval (`QueuePollingIntervals.Minimum`).
const MIN_POLL: Duration = Duration::from_millis(100);
/// `QueuePollingIntervals.DefaultMaximum`: the longest wait between polls in Azure.
const AZURE_MAX_POLL: Duration = Duration::from_secs(60);
/// The longest wait under Core Tools, which runs the host in the Development environment.
const DEVELOPMENT_MAX_POLL: Duration = Duration::from_secs(2);
/// `QueuesOptions.MaxBatchSize`.
const MAX_BATCH_SIZE: u64 = 32;

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
    /// Reads `extensions.queues` from the host.json document, for a host with `processors`
    /// processors (see [`processor_count`]).
    ///
    /// A value the extension refuses is an error naming it, as it stops the real host
    /// (`QueuesOptions` property setters in Azure/azure-sdk-for-net,
    /// sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueuesOptions.cs).
    ///
    /// ```
    /// use cargo_azfn::host::queue_listener::QueueOptions;
    /// let host = serde_json::json!({"extensions": {"queues": {"batchSize": 8, "maxPollingInterval": "00:00:05", "maxDequeueCount": 3}}});
    /// let o = QueueOptions::from_host_json(&host, 2).unwrap();
    /// assert_eq!((o.batch_size, o.new_batch_threshold, o.max_dequeue_count), (8, 8, 3));
    /// assert_eq!(o.max_polling_interval, std::time::Duration::from_secs(5));
    /// let bad = serde_json::json!({"extensions": {"queues": {"batchSize": 64}}});
    /// assert!(QueueOptions::from_host_json(&bad, 2).unwrap_err().contains("batchSize"));
    /// ```
    pub fn from_host_json(host: &Value, processors: u32) -> Result<Self, String> {
        let q = &host["extensions"]["queues"];
        let int = |k: &str| -> Result<Option<i64>, String> {
            match q.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_str()?.trim().parse().ok())
                    .map(Some)
                    .ok_or_else(|| format!("host.json extensions.queues.{k} should be a whole number, got {v}")),
            }
        };
        let span = |k: &str| -> Result<Option<Duration>, String> {
            match q.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => parse_timespan(v).map(Some).ok_or_else(|| {
                    format!("host.json extensions.queues.{k} should be a time span such as \"00:00:30\", got {v}")
                }),
            }
        };
        let refuse = |k: &str, v: i64, why: &str| {
            format!("host.json extensions.queues.{k} is {v}: {why}; the Functions host does not start with it")
        };
        // QueuesOptions.BatchSize: `if (value <= 0) throw ...; if (value > MaxBatchSize) throw ...`.
        let batch_size = match int("batchSize")? {
            None => 16,
            Some(n) if n <= 0 || n > MAX_BATCH_SIZE as i64 => {
                return Err(refuse("batchSize", n, "it should be 1 to 32"));
            }
            Some(n) => n as u32,
        };
        // NewBatchThreshold: `if (value < 0) throw`; unset, `(_batchSize / 2) * _processorCount`.
        let new_batch_threshold = match int("newBatchThreshold")? {
            None => batch_size / 2 * processors.max(1),
            Some(n) if n < 0 => return Err(refuse("newBatchThreshold", n, "it should be 0 or more")),
            Some(n) => n as u32,
        };
        // MaxDequeueCount: "MaxDequeueCount must not be less than 1."
        let max_dequeue_count = match int("maxDequeueCount")? {
            None => 5,
            Some(n) if n < 1 => return Err(refuse("maxDequeueCount", n, "it must not be less than 1")),
            Some(n) => n as u32,
        };
        // MaxPollingInterval: "MaxPollingInterval must not be less than {0}." (100 ms). Under Core
        // Tools (AZURE_FUNCTIONS_ENVIRONMENT=Development) the extension lowers the default:
        // StorageQueuesWebJobsBuilderExtensions, `if (env.IsDevelopment() && options.MaxPollingInterval
        // == QueuePollingIntervals.DefaultMaximum) { options.MaxPollingInterval = TimeSpan.FromSeconds(2); }`.
        let max_polling_interval = match span("maxPollingInterval")? {
            Some(d) if d < MIN_POLL => {
                return Err(format!(
                    "host.json extensions.queues.maxPollingInterval is {d:?}: it must not be less than 100 ms; \
                     the Functions host does not start with it"
                ));
            }
            None => DEVELOPMENT_MAX_POLL,
            Some(d) if d == AZURE_MAX_POLL => DEVELOPMENT_MAX_POLL,
            Some(d) => d,
        };
        let base64 = match q.get("messageEncoding").and_then(Value::as_str).map(str::trim) {
            None => true,
            Some(e) if e.eq_ignore_ascii_case("base64") => true,
            Some(e) if e.eq_ignore_ascii_case("none") => false,
            Some(e) => {
                return Err(format!(
                    "host.json extensions.queues.messageEncoding is {e:?}: it should be \"base64\" or \"none\""
                ));
            }
        };
        Ok(Self {
            batch_size,
            new_batch_threshold,
            max_polling_interval,
            visibility_timeout: span("visibilityTimeout")?.unwrap_or(Duration::ZERO),
            max_dequeue_count,
            base64,
            lease: DEFAULT_LEASE,
        })
    }
}

/// The processor count the storage extensions size themselves by: 1 on Consumption
/// (`WEBSITE_SKU=Dynamic`), else the machine's (`SkuUtility.GetProcessorCount`: `int processorCount
/// = 1; if (!isDynamicSku) { processorCount = Environment.ProcessorCount; }`).
pub fn processor_count(sku: Option<&str>) -> u32 {
    if sku.is_some_and(|s| s.trim().eq_ignore_ascii_case("Dynamic")) {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The extension's polling back-off (`RandomizedExponentialBackoffStrategy` with minimum and delta
/// 100 ms): after `n` empty polls in a row the wait is `100 ms + r * 2^(n-1) * 100 ms`, `r` random in
/// 0.8 to 1.2, until it reaches `max`; a poll that finds messages starts again from 100 ms.
#[derive(Debug, Clone)]
struct Backoff {
    exponent: i32,
    current: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self { exponent: 1, current: MIN_POLL, max }
    }

    fn reset(&mut self) {
        self.exponent = 1;
        self.current = MIN_POLL;
    }

    /// The wait after an empty poll, with `random` in 0 to 1.
    fn next(&mut self, random: f64) -> Duration {
        if self.current < self.max {
            let factor = 0.8 + 0.4 * random;
            let increment = factor * 2f64.powi(self.exponent - 1) * MIN_POLL.as_secs_f64();
            let candidate = MIN_POLL + Duration::from_secs_f64(increment);
            if candidate < self.max {
                self.current = candidate;
                self.exponent += 1;
            } else {
                self.current = self.max;
            }
        }
        self.current
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
    /// `dataType: binary`: the function is given the message's bytes (as base64).
    pub binary: bool,
}

/// Listens until `stop` turns true.
pub async fn listen(invoker: Arc<Invoker>, t: QueueTrigger, opts: QueueOptions, mut stop: watch::Receiver<bool>) {
    let console = invoker.console;
    let clients = match invoker.bindings.clients(&t.connection) {
        Ok(c) => c,
        Err(e) => return console.error(&format!("{}: queue trigger on {:?} cannot start: {e}", t.function, t.queue)),
    };
    // The trigger's queue is not created: QueueListener.ExecuteAsync checks `_queue.ExistsAsync` and
    // backs off while it is missing, as from an empty queue (the producer, or the infrastructure,
    // creates it: a queue output creates its queue on first write).
    let waker = invoker.bindings.waker(&t.connection, &t.queue);
    let moved = Arc::new(Moved::default());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(Notify::new());
    let mut backoff = Backoff::new(opts.max_polling_interval);
    let mut reported: Option<String> = None;
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
                reported = None;
                backoff.reset();
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
            Ok(_) => reported = None,
            Err(e) => {
                let missing = e.status == Some(404);
                let why = if missing {
                    format!(
                        "{}: queue {:?} does not exist yet; polling until it does (the Functions host does not \
                         create a trigger's queue: create it, or write to it from a queue output)",
                        t.function, t.queue
                    )
                } else {
                    format!("{}: polling queue {:?} failed (will keep trying): {e}", t.function, t.queue)
                };
                // Said once per kind of problem, not at every poll.
                let kind = if missing { "missing" } else { "error" }.to_owned();
                if reported.as_ref() != Some(&kind) {
                    if missing {
                        console.info(&why)
                    } else {
                        console.warn(&why)
                    }
                    reported = Some(kind);
                }
            }
        }
        let delay = backoff.next(super::jitter());
        tokio::select! {
            _ = waker.notified() => backoff.reset(),
            _ = tokio::time::sleep(delay) => {}
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
    let poison = poison_queue(&t.queue);
    // A message seen more often than allowed (its last attempt crashed the host) goes straight to
    // poison (QueueProcessor.BeginProcessingMessageAsync, `message.DequeueCount >
    // QueuesOptions.MaxDequeueCount`). Not on a queue without a poison queue: the extension's 5.3.8
    // "Fixed a bug where MaxDequeueCount was being applied to messages in the poison queue itself,
    // leading to poison messages being silently skipped and unprocessed indefinitely" (CHANGELOG).
    if poison.is_some() && m.dequeue_count > opts.max_dequeue_count {
        return to_poison(invoker, clients, t, opts, moved, &m).await;
    }
    // The real host cannot decode a message that is not base64 (the default `messageEncoding`): the
    // queue client's MessageDecodingFailed handler moves it to the poison queue at once, unchanged,
    // with no invocation (QueueServiceClientProvider.CreateMessageDecodingFailedHandler).
    if opts.base64 && !m.base64 {
        console.error(&format!(
            "{}: message {} in queue {:?} is not valid base64, which the queue trigger expects \
             (host.json extensions.queues.messageEncoding); not run",
            t.function, m.id, t.queue
        ));
        return to_poison(invoker, clients, t, opts, moved, &m).await;
    }
    // The message's bytes: decoded from base64, or with `messageEncoding: none` the stored text
    // (`QueueMessageEncoding.None => new BinaryData(messageText)`).
    let bytes = if opts.base64 { m.body.clone() } else { m.text.clone().into_bytes() };
    let text = match String::from_utf8(bytes.clone()) {
        Ok(text) => Ok(text),
        // A `dataType: binary` trigger is given the bytes (StorageQueueMessageToByteArrayConverter:
        // `input.Body.ToArray()`); a string one cannot be (`ToValidUTF8String` throws on bytes that
        // are not UTF-8, so the invocation fails and counts towards poison).
        Err(_) if t.binary => Ok(String::new()),
        Err(_) => Err(format!("message {} in queue {:?} is not UTF-8 text", m.id, t.queue)),
    };
    let result = match text {
        Ok(text) => {
            let mut inv = invocation::queue(
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
            if t.binary {
                inv.raw = Some(bytes);
            }
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
        Err(e) => {
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
        // QueueProcessor.CompleteProcessingMessageAsync: "For queues without a corresponding poison
        // queue, leave the message invisible when processing fails to prevent a fast infinite loop.
        // Specifically, don't call ReleaseMessage(message)".
        Err(_) if poison.is_none() => console.warn(&format!(
            "{}: message {} failed; {:?} has no poison queue, so it stays hidden until its lease ends ({} s)",
            t.function,
            m.id,
            t.queue,
            opts.lease.as_secs()
        )),
        Err(_) if m.dequeue_count >= opts.max_dequeue_count => to_poison(invoker, clients, t, opts, moved, &m).await,
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

async fn to_poison(
    invoker: &Invoker,
    clients: &Clients,
    t: &QueueTrigger,
    opts: &QueueOptions,
    moved: &Moved,
    m: &ReceivedMessage,
) {
    let console = invoker.console;
    let Some(poison) = poison_queue(&t.queue) else { return };
    let copied_before = moved.contains(&m.id);
    let move_it = async {
        if !copied_before {
            invoker.bindings.ensure_queue(clients, &t.connection, &poison).await?;
            // The message as it was stored: the same bytes re-encoded, or its text unchanged when it
            // was not base64 or the encoding is `none` (the decoding-failed handler copies it with
            // a client that does not encode).
            let copied = if opts.base64 && m.base64 {
                clients.queues.send(&poison, &m.body, Duration::ZERO).await
            } else {
                clients.queues.send_unencoded(&poison, &m.text, Duration::ZERO).await
            };
            copied.map_err(|e| e.to_string())?;
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
        let o = QueueOptions::from_host_json(&json!({}), 2).unwrap();
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

    /// Azure/azure-sdk-for-net, sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueuesOptions.cs:
    /// `BatchSize` setter `if (value <= 0) throw new ArgumentOutOfRangeException(nameof(value)); if
    /// (value > MaxBatchSize) throw ...` (MaxBatchSize = 32); `NewBatchThreshold` `if (value < 0)
    /// throw`; `MaxPollingInterval` `if (value < QueuePollingIntervals.Minimum) throw new
    /// ArgumentException("MaxPollingInterval must not be less than {0}.")`; `MaxDequeueCount` `if
    /// (value < 1) throw new ArgumentException("MaxDequeueCount must not be less than 1.")`. The
    /// options are bound when the host starts, so the host does not start.
    #[test]
    fn options_the_extension_refuses_stop_the_host() {
        let refused = |q: Value| QueueOptions::from_host_json(&json!({"extensions": {"queues": q}}), 2).unwrap_err();
        for (q, named) in [
            (json!({"batchSize": 0}), "batchSize is 0"),
            (json!({"batchSize": 33}), "batchSize is 33"),
            (json!({"newBatchThreshold": -1}), "newBatchThreshold is -1"),
            (json!({"maxDequeueCount": 0}), "maxDequeueCount is 0"),
            (json!({"maxPollingInterval": "00:00:00.050"}), "maxPollingInterval"),
            (json!({"messageEncoding": "utf8"}), "messageEncoding"),
            (json!({"batchSize": "many"}), "whole number"),
        ] {
            let e = refused(q.clone());
            assert!(e.contains(named), "{q}: {e}");
        }
        let edge = json!({"extensions": {"queues": {"batchSize": 32, "newBatchThreshold": 0, "maxDequeueCount": 1}}});
        let o = QueueOptions::from_host_json(&edge, 2).unwrap();
        assert_eq!((o.batch_size, o.new_batch_threshold, o.max_dequeue_count), (32, 0, 1));
    }

    /// SkuUtility.GetProcessorCount: `int processorCount = 1; if (!isDynamicSku) { processorCount =
    /// Environment.ProcessorCount; }`, and QueuesOptions.NewBatchThreshold's getter `if
    /// (_newBatchThreshold == -1) { return (_batchSize / 2) * _processorCount; }`.
    #[test]
    fn consumption_counts_one_processor() {
        assert_eq!(processor_count(Some("Dynamic")), 1);
        assert_eq!(processor_count(Some("dynamic")), 1);
        assert!(processor_count(Some("ElasticPremium")) >= 1);
        let o = QueueOptions::from_host_json(&json!({}), processor_count(Some("Dynamic"))).unwrap();
        assert_eq!(o.new_batch_threshold, 8);
    }

    /// Storage Queues extension, StorageQueuesWebJobsBuilderExtensions: `if (env.IsDevelopment() &&
    /// options.MaxPollingInterval == QueuePollingIntervals.DefaultMaximum) { options.MaxPollingInterval
    /// = TimeSpan.FromSeconds(2); }`; Core Tools runs the host in Development
    /// (azure-functions-core-tools 3ee97a6, src/Cli/func/Actions/HostActions/StartHostAction.cs line
    /// 328, `settings["AZURE_FUNCTIONS_ENVIRONMENT"] = "Development";`).
    #[test]
    fn polling_backs_off_to_two_seconds_under_development_unless_set() {
        let poll = |q: Value| {
            QueueOptions::from_host_json(&json!({"extensions": {"queues": q}}), 1).unwrap().max_polling_interval
        };
        assert_eq!(poll(json!({})), Duration::from_secs(2));
        assert_eq!(poll(json!({"maxPollingInterval": "00:01:00"})), Duration::from_secs(2), "the default, lowered");
        assert_eq!(poll(json!({"maxPollingInterval": "00:00:30"})), Duration::from_secs(30));
    }

    /// RandomizedExponentialBackoffStrategy (Common/src/Shared/Timers): `incrementMsec =
    /// _random.Next(1.0 - RandomizationFactor, 1.0 + RandomizationFactor) * Math.Pow(2.0,
    /// _backoffExponent - 1) * _deltaBackoff.TotalMilliseconds;` added to the minimum, clamped to the
    /// maximum; QueuePollingIntervals.Minimum is 100 ms and the delta is the minimum.
    #[test]
    fn the_backoff_is_the_extensions_randomized_exponential_one() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let waits: Vec<u128> = (0..8).map(|_| b.next(0.5).as_millis()).collect();
        assert_eq!(waits, [200, 300, 500, 900, 1700, 2000, 2000, 2000]);
        let mut low = Backoff::new(Duration::from_secs(60));
        assert_eq!(low.next(0.0).as_millis(), 180, "0.8 of the increment");
        let mut high = Backoff::new(Duration::from_secs(60));
        assert_eq!(high.next(1.0).as_millis(), 220, "1.2 of the increment");
        b.reset();
        assert_eq!(b.next(0.5).as_millis(), 200, "a poll that found messages starts again");
    }
}
