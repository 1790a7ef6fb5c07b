//! A simulated worker: one app instance's handler process with the Functions host's queue
//! triggers in front of it, polling the hub's control and work queues and calling the engine's
//! [`Dispatcher`] exactly as `DurableControl` and `DurableWork` do.
//!
//! The trigger follows the host's queue listener (azure-webjobs-sdk,
//! `src/Microsoft.Azure.WebJobs.Extensions.Storage/Queues/QueueProcessor.cs` and `QueueListener.cs`):
//! batches of 16, a new batch once fewer than 8 are in flight, a message hidden for 10 minutes
//! while it runs and renewed halfway, made visible again at once after a failure
//! (`visibilityTimeout` 0), moved to `{queue}-poison` when it fails on its fifth delivery, and an
//! idle back-off that doubles up to one minute (`maxPollingInterval`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azfn::durable::{ControlMessage, Dispatcher, Registry, TaskHub, WorkMessage};
use azfn::storage::memory::{Link, MemoryStorage};
use azfn::storage::{BlobClient, QueueClient, ReceivedMessage, RetryPolicy, TableClient};
use tokio::task::AbortHandle;

use crate::faults::Chance;

/// The task hub every process of a run uses.
pub const HUB: &str = "sim";
const BATCH: u32 = 16;
const NEW_BATCH_THRESHOLD: usize = 8;
const VISIBILITY: Duration = Duration::from_secs(600);
const MAX_DEQUEUE: u32 = 5;
const MAX_POLL: Duration = Duration::from_secs(60);

/// The retry policy of every simulated process's storage clients: the production defaults
/// (`storage::RetryPolicy::default`), which the links apply without jitter.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::default()
}

/// A process's task hub over its own link.
pub fn hub(link: &Link, skew: chrono::Duration) -> Arc<TaskHub> {
    let hub = TaskHub::with_clients(
        HUB,
        TableClient::in_memory(link.clone()),
        QueueClient::in_memory(link.clone()),
        BlobClient::in_memory(link.clone()),
    )
    .expect("a valid hub name")
    .with_clock_skew(skew);
    Arc::new(hub)
}

/// One running worker process.
#[derive(Debug)]
pub struct Worker {
    /// Its name in the trace (`w0`, `w1`, ...).
    pub name: String,
    link: Link,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Worker {
    /// Starts the process `name`: its link, its hub (its clock `skew` off), its dispatcher with
    /// `registry`, and the two queue triggers.
    pub fn start(
        name: &str,
        storage: &MemoryStorage,
        chance: &Chance,
        registry: Arc<Registry>,
        skew: chrono::Duration,
    ) -> Self {
        let link = storage.link(chance.for_worker(name), retry_policy());
        let hub = hub(&link, skew);
        let dispatcher = Arc::new(Dispatcher::new(hub.clone(), registry));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        for kind in [Kind::Control, Kind::Work] {
            let trigger = Trigger {
                who: name.to_owned(),
                kind,
                dispatcher: dispatcher.clone(),
                chance: chance.clone(),
                tasks: tasks.clone(),
                in_flight: Arc::new(AtomicUsize::new(0)),
            };
            let handle = tokio::spawn(trigger.run()).abort_handle();
            tasks.lock().expect("tasks").push(handle);
        }
        Self { name: name.to_owned(), link, tasks }
    }

    /// Kills the process at whatever await point each of its tasks is: its memory is gone, its
    /// requests in flight never land, and the messages it held come back after their lease.
    pub fn crash(&self) {
        self.link.cut();
        for t in self.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Control,
    Work,
}

struct Trigger {
    who: String,
    kind: Kind,
    dispatcher: Arc<Dispatcher>,
    chance: Chance,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    in_flight: Arc<AtomicUsize>,
}

impl Trigger {
    fn queue(&self) -> String {
        let hub = self.dispatcher.hub();
        match self.kind {
            Kind::Control => hub.control_queue(),
            Kind::Work => hub.work_queue(),
        }
    }

    async fn run(self) {
        let this = Arc::new(self);
        let queue = this.queue();
        let mut idle = Duration::from_millis(100);
        loop {
            while this.in_flight.load(Ordering::SeqCst) >= NEW_BATCH_THRESHOLD {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let batch = match this.dispatcher.hub().queues().receive(&queue, BATCH, VISIBILITY).await {
                Ok(batch) => batch,
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::time::sleep(idle).await;
                idle = (idle * 2).min(MAX_POLL);
                continue;
            }
            idle = Duration::from_millis(100);
            for msg in batch {
                this.in_flight.fetch_add(1, Ordering::SeqCst);
                let t = this.clone();
                let q = queue.clone();
                let handle = tokio::spawn(async move {
                    t.handle(&q, msg).await;
                    t.in_flight.fetch_sub(1, Ordering::SeqCst);
                })
                .abort_handle();
                let mut tasks = this.tasks.lock().expect("tasks");
                tasks.retain(|t| !t.is_finished());
                tasks.push(handle);
            }
        }
    }

    async fn handle(&self, queue: &str, msg: ReceivedMessage) {
        let queues = self.dispatcher.hub().queues().clone();
        // The host renews the lease halfway through while the function runs.
        let receipt = Arc::new(Mutex::new(msg.clone()));
        let renew = {
            let (queues, queue, receipt) = (queues.clone(), queue.to_owned(), receipt.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(VISIBILITY / 2).await;
                    let current = receipt.lock().expect("receipt").clone();
                    if let Ok(pop) = queues.release(&queue, &current, VISIBILITY).await {
                        receipt.lock().expect("receipt").pop_receipt = pop;
                    }
                }
            })
        };
        self.tasks.lock().expect("tasks").push(renew.abort_handle());
        let dequeue_count = u64::from(msg.dequeue_count);
        let result = match self.kind {
            Kind::Control => match serde_json::from_slice::<ControlMessage>(&msg.body) {
                Ok(m) => self.dispatcher.control(m, dequeue_count).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("unreadable control message: {e}")),
            },
            Kind::Work => match serde_json::from_slice::<WorkMessage>(&msg.body) {
                Ok(m) => self.dispatcher.work(m, dequeue_count).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("unreadable work message: {e}")),
            },
        };
        renew.abort();
        let current = receipt.lock().expect("receipt").clone();
        match result {
            Ok(()) => {
                let _ = queues.delete(queue, &current).await;
            }
            Err(e) => {
                let short: String = e.chars().take(300).collect();
                self.chance.note(format!("{} {queue} delivery {}: {short}", self.who, msg.dequeue_count));
                if msg.dequeue_count >= MAX_DEQUEUE {
                    let poison = format!("{queue}-poison");
                    if queues.send(&poison, &msg.body, Duration::ZERO).await.is_ok() {
                        let _ = queues.delete(queue, &current).await;
                    }
                } else {
                    let _ = queues.release(queue, &current, Duration::ZERO).await;
                }
            }
        }
    }
}
