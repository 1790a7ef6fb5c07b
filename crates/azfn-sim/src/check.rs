//! The invariants a run must hold once faults have stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use std::sync::Arc;

use azfn::durable::{DurableClient, EntityId, Execution, Registry, RuntimeStatus, TaskHub};
use azfn::storage::memory::MemoryStorage;
use serde_json::Value;

use crate::workload::{End, Expected, Ledger, TALLY};

/// What the checks read: the hub through a client that meets no faults, and the storage itself.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// A client of the hub.
    pub client: &'a DurableClient,
    /// The hub, for its instance table.
    pub hub: &'a TaskHub,
    /// The storage, for its poison queues.
    pub storage: &'a MemoryStorage,
    /// The current code, to replay every history with.
    pub registry: &'a Arc<Registry>,
}

/// Waits (in virtual time, until `deadline`) for every instance to reach its end, then checks
/// every invariant and lists the broken ones. `crashes` and `faulty` (whether storage faults were
/// injected) bound how often an activity call may run: once in a clean run; after a crash, or a
/// failure that makes its message come back, again (at-least-once).
pub async fn settle_and_check(
    view: View<'_>,
    expected: &Mutex<Expected>,
    ledger: &Mutex<Ledger>,
    deadline: tokio::time::Instant,
    crashes: u32,
    faulty: bool,
) -> Vec<String> {
    let View { client, hub, storage, registry } = view;
    // Settled means every instance at its end, every tally exact and every lock released; it
    // must still hold an hour later (nothing late may change it).
    let mut settled_once = false;
    let mut pause = Duration::from_secs(30);
    let mut failures;
    loop {
        failures = ends(client, expected).await;
        failures.extend(tallies(client, expected).await);
        failures.extend(locks(hub, expected).await);
        if failures.is_empty() && !settled_once {
            settled_once = true;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            continue;
        }
        if failures.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        settled_once = false;
        // Looked at again soon, then less often (a timer of days is waited for cheaply).
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(3600));
    }
    if !failures.is_empty() {
        failures.insert(0, "not settled within the bound of virtual time:".to_owned());
    }
    failures.extend(replays(hub, registry, expected).await);
    for queue in ["sim-control-poison", "sim-work-poison"] {
        let parked = storage.queue_contents(queue);
        if !parked.is_empty() {
            let first = String::from_utf8_lossy(&parked[0].1).chars().take(200).collect::<String>();
            failures.push(format!("{} message(s) in {queue}, the first: {first}", parked.len()));
        }
    }
    let l = ledger.lock().expect("ledger");
    let most = 1 + crashes + if faulty { 2 } else { 0 };
    for ((instance, execution, task), n) in &l.executions {
        if *n > most {
            failures.push(format!(
                "activity call {task} of {instance} (execution {execution}) ran {n} times; at most {most} allowed"
            ));
        }
    }
    let e = expected.lock().expect("expected");
    for id in &e.rewound {
        let child = format!("{id}:");
        let first_calls: BTreeSet<(&String, &String)> = l
            .executions
            .keys()
            .filter(|(instance, _, task)| (instance == id || instance.starts_with(&child)) && *task == 0)
            .map(|(instance, execution, _)| (instance, execution))
            .collect();
        let mut per_instance: BTreeMap<&String, usize> = BTreeMap::new();
        for (instance, _) in &first_calls {
            *per_instance.entry(instance).or_default() += 1;
        }
        for (instance, n) in per_instance.into_iter().filter(|(_, n)| *n > 1) {
            failures.push(format!(
                "{instance} (rewound): its first call, which had succeeded, ran again in {n} executions"
            ));
        }
    }
    for id in &e.charged_once {
        let runs = l.charges.get(id).map_or(0, |s| s.len());
        if runs > 1 {
            failures
                .push(format!("the keyed start {id} charged in {runs} executions; a retry must answer with the first"));
        }
    }
    failures
}

/// Every kept history replays with the current code: the orchestrator, run again over the
/// recorded events, takes the recorded steps (no divergence), and a completed one reaches its
/// recorded end.
async fn replays(hub: &TaskHub, registry: &Arc<Registry>, expected: &Mutex<Expected>) -> Vec<String> {
    let instances = expected.lock().expect("expected").instances.clone();
    let mut out = Vec::new();
    for x in instances {
        if matches!(x.end, End::Gone) {
            continue;
        }
        let mut loaded = match hub.store().load(&x.instance_id).await {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                out.push(format!("{} ({}): its history could not be loaded: {e}", x.instance_id, x.scenario));
                continue;
            }
        };
        // Large values live in blobs; the history holds references, resolved as the dispatcher does.
        for e in loaded.history.iter_mut() {
            if let Err(err) = hub.resolve_event(e).await {
                out.push(format!("{} ({}): a large value could not be read: {err}", x.instance_id, x.scenario));
            }
        }
        let status = loaded.status.runtime_status;
        let exec = Execution::replay(registry.clone(), &x.instance_id, &loaded.status.execution_id, loaded.history);
        if let Some(d) = exec.divergence() {
            out.push(format!("{} ({}): its history does not replay: {d}", x.instance_id, x.scenario));
        } else if status == RuntimeStatus::Completed && exec.outcome().is_none() {
            out.push(format!("{} ({}): Completed, but its replayed history does not end", x.instance_id, x.scenario));
        }
    }
    out
}

async fn ends(client: &DurableClient, expected: &Mutex<Expected>) -> Vec<String> {
    let instances = expected.lock().expect("expected").instances.clone();
    let mut out = Vec::new();
    for x in instances {
        let view = client.status(&x.instance_id, false).await;
        let problem = match (&x.end, view) {
            (End::Gone, Err(_)) => None,
            (End::Gone, Ok(v)) => Some(format!("still there as {:?} after its purge", v.status.runtime_status)),
            (_, Err(e)) => Some(format!("no status: {e}")),
            (End::Terminated, Ok(v)) => (v.status.runtime_status != RuntimeStatus::Terminated)
                .then(|| format!("{:?}, not Terminated", v.status.runtime_status)),
            (End::Completed(want), Ok(v)) => {
                let s = &v.status;
                if s.runtime_status != RuntimeStatus::Completed {
                    Some(format!("{:?} ({}), not Completed with {want}", s.runtime_status, short(&s.output)))
                } else if &s.output != want {
                    Some(format!("Completed with {}, not {want}", short(&s.output)))
                } else if x.not_execution.as_deref() == Some(s.execution_id.as_str()) {
                    Some("its restart in place never ran: still the first execution".to_owned())
                } else {
                    None
                }
            }
        };
        if let Some(p) = problem {
            out.push(format!("{} ({}): {p}", x.instance_id, x.scenario));
        }
    }
    out
}

async fn tallies(client: &DurableClient, expected: &Mutex<Expected>) -> Vec<String> {
    let tallies = expected.lock().expect("expected").tallies.clone();
    let mut out = Vec::new();
    for (key, tags) in tallies {
        let state = client.entity_state(&EntityId::new(TALLY, &key)).await.ok().flatten().map(|v| v.state);
        let state = state.unwrap_or(Value::Null);
        for tag in &tags {
            let n = state.get(tag).and_then(Value::as_u64).unwrap_or(0);
            if n != 1 {
                let tag = tag.chars().take(40).collect::<String>();
                out.push(format!("entity {TALLY}@{key}: operation {tag} took effect {n} times, not once"));
            }
        }
        if let Some(m) = state.as_object() {
            for extra in m.keys().filter(|k| !tags.contains(*k)) {
                let extra = extra.chars().take(40).collect::<String>();
                out.push(format!("entity {TALLY}@{key}: an operation {extra} nobody sent"));
            }
        }
    }
    out
}

async fn locks(hub: &TaskHub, expected: &Mutex<Expected>) -> Vec<String> {
    let keys: Vec<String> = expected.lock().expect("expected").tallies.keys().cloned().collect();
    let mut out = Vec::new();
    for key in keys {
        let id = EntityId::new(TALLY, &key).instance_id();
        if let Ok(Some((row, _))) = hub.store().load_entity(&id).await {
            if let Some(holder) = &row.lock {
                out.push(format!("entity {id} is still locked by {holder}"));
            }
            if !row.waiting.is_empty() {
                out.push(format!("entity {id} has {} operation(s) waiting for ever", row.waiting.len()));
            }
        }
    }
    out
}

fn short(v: &Value) -> String {
    let t = v.to_string();
    if t.len() > 400 { format!("{}…", &t[..400]) } else { t }
}
