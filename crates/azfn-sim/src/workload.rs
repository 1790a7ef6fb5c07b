//! What a run asks of the engine: the orchestrators, activities and entity of every shape the API
//! offers, the client steps that drive them, and what each instance must end as.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use azfn::durable::{ActivityContext, DurableClient, EntityId, OrchestrationContext, Registry, TaskError, join_all};
use serde_json::{Value, json};

use crate::faults::Chance;
use crate::rng::Rng;

/// What the activities and entities saw, across every worker.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Executions per activity call (`instance`, `execution`, task id).
    pub executions: BTreeMap<(String, String, u64), u32>,
    /// Per instance, the executions the `Charge` activity ran in.
    pub charges: BTreeMap<String, BTreeSet<String>>,
    /// The keys whose `Outage` calls fail (a service that is down), until the client brings it back.
    pub outages: BTreeSet<String>,
}

/// The shared ledger.
pub type SharedLedger = Arc<Mutex<Ledger>>;

/// The functions a worker of a rolling deploy may lack (`name@version`: one version of an
/// orchestrator).
pub const FUNCTIONS: [&str; 7] = ["Work", "Echo", "Nested", "Countdown", "Collector", TALLY, "Versioned@2"];

/// The entity every counting scenario signals: it counts each tag it is given.
pub const TALLY: &str = "Tally";

fn work_latency(ctx: &ActivityContext, max_ms: u64) -> Duration {
    // A latency that depends only on the call, so that it is the same on every delivery.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ctx.idempotency_key().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    Duration::from_millis(h % (max_ms + 1))
}

/// The registry of the workload. Activities take up to `max_latency_ms` of virtual time.
pub fn registry(ledger: SharedLedger, max_latency_ms: u64) -> Registry {
    let (l1, l2, l3) = (ledger.clone(), ledger.clone(), ledger);
    Registry::new()
        .activity("Outage", move |ctx: ActivityContext, key: String| {
            let ledger = l3.clone();
            async move {
                let mut l = ledger.lock().expect("ledger");
                *l.executions.entry((ctx.instance_id.clone(), ctx.execution_id.clone(), ctx.task_id)).or_default() += 1;
                if l.outages.contains(&key) { Err(format!("{key} is down")) } else { Ok::<_, String>(1) }
            }
        })
        .orchestrator("Flaky", |ctx: OrchestrationContext, key: String| async move {
            // Calls that succeed, then one that fails while its service is down: a rewind must run
            // the last again, not the first. A guid made before the failure is made the same after
            // the rewind (`same`): the code's ids do not change with the rewind's new execution.
            let done: i64 = ctx.call_activity("Work", 3).await?;
            let guid = ctx.new_guid().to_string();
            let echoed: String = ctx.call_activity("Echo", &guid).await?;
            let up: i64 = ctx.call_activity("Outage", key).await?;
            Ok::<_, TaskError>(json!({"sum": done + up, "same": echoed == guid}))
        })
        .orchestrator("FlakyParent", |ctx: OrchestrationContext, key: String| async move {
            let done: i64 = ctx.call_activity("Work", 1).await?;
            let child: Value = ctx.call_sub_orchestrator("Flaky", key).await?;
            Ok::<_, TaskError>(json!({"sum": done + child["sum"].as_i64().unwrap_or(0), "same": child["same"]}))
        })
        .orchestrator("RacingParent", |ctx: OrchestrationContext, key: String| async move {
            // Starts a child, then fails on a service that is down before it waits for the child:
            // the child's first start may still be in the queue when the instance is rewound, and
            // the rewind must reach the child whenever that start arrives.
            let mut child = std::pin::pin!(ctx.call_sub_orchestrator::<i64>("Sequence", 3));
            let mut early = None;
            // One poll sends the child's start.
            std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = child.as_mut().poll(cx) {
                    early = Some(r);
                }
                Poll::Ready(())
            })
            .await;
            let up: i64 = ctx.call_activity("Outage", key).await?;
            let sum = match early {
                Some(r) => r?,
                None => child.await?,
            };
            Ok::<_, TaskError>(json!({"sum": sum + up, "same": true}))
        })
        .orchestrator_version("Versioned", "1", |ctx: OrchestrationContext, n: i64| async move {
            let sum: i64 = ctx.call_activity("Work", n).await?;
            Ok::<_, TaskError>(json!({"v": "1", "sum": sum}))
        })
        .orchestrator_version("Versioned", "2", |ctx: OrchestrationContext, n: i64| async move {
            // Other steps than version 1 (a second call), the same sum: an instance run on the
            // other version's code would say so in `v`, or fail to replay.
            let zero: i64 = ctx.call_activity("Work", 0).await?;
            let sum: i64 = ctx.call_activity("Work", n).await?;
            Ok::<_, TaskError>(json!({"v": "2", "sum": zero + sum}))
        })
        .activity("Work", move |ctx: ActivityContext, n: i64| {
            let ledger = l1.clone();
            async move {
                *ledger
                    .lock()
                    .expect("ledger")
                    .executions
                    .entry((ctx.instance_id.clone(), ctx.execution_id.clone(), ctx.task_id))
                    .or_default() += 1;
                tokio::time::sleep(work_latency(&ctx, max_latency_ms)).await;
                Ok::<_, String>(n * 2)
            }
        })
        .activity("Charge", move |ctx: ActivityContext, amount: i64| {
            let ledger = l2.clone();
            async move {
                let mut l = ledger.lock().expect("ledger");
                *l.executions.entry((ctx.instance_id.clone(), ctx.execution_id.clone(), ctx.task_id)).or_default() += 1;
                l.charges.entry(ctx.instance_id.clone()).or_default().insert(ctx.execution_id.clone());
                Ok::<_, String>(amount)
            }
        })
        .activity("Fail", |_ctx: ActivityContext, size: usize| async move { Err::<(), String>("x".repeat(size)) })
        .orchestrator("Sequence", |ctx: OrchestrationContext, steps: i64| async move {
            let mut sum = 0;
            for i in 0..steps {
                sum += ctx.call_activity::<i64>("Work", i).await?;
            }
            Ok::<_, TaskError>(sum)
        })
        .orchestrator("FanOut", |ctx: OrchestrationContext, width: i64| async move {
            let calls: Vec<_> = (0..width).map(|i| ctx.call_activity::<i64>("Work", i)).collect();
            let mut sum = 0;
            for r in join_all(calls).await {
                sum += r?;
            }
            Ok::<_, TaskError>(sum)
        })
        .orchestrator("Nested", |ctx: OrchestrationContext, depth: i64| async move {
            if depth == 0 {
                return ctx.call_activity::<i64>("Work", 1).await;
            }
            let a: i64 = ctx.call_sub_orchestrator("Nested", depth - 1).await?;
            let b: i64 = ctx.call_sub_orchestrator("Nested", depth - 1).await?;
            Ok::<_, TaskError>(a + b)
        })
        .orchestrator("Countdown", |ctx: OrchestrationContext, input: Value| async move {
            let left = input["left"].as_i64().unwrap_or(0);
            let key = input["key"].as_str().unwrap_or_default().to_owned();
            let every = input["every"].as_u64().unwrap_or(1);
            if left == 0 {
                return Ok::<_, TaskError>(json!("done"));
            }
            ctx.sleep(Duration::from_secs(every)).await;
            ctx.signal_entity(&EntityId::new(TALLY, &key), "add", format!("tick-{left}"));
            ctx.continue_as_new(json!({"left": left - 1, "key": key, "every": every}));
            Ok(Value::Null)
        })
        .orchestrator("Collector", |ctx: OrchestrationContext, input: Value| async move {
            let left = input["left"].as_i64().unwrap_or(0);
            let key = input["key"].as_str().unwrap_or_default().to_owned();
            if left == 0 {
                return Ok::<_, TaskError>(json!("collected"));
            }
            let tag: String = ctx.wait_for_event("tick").await?;
            ctx.signal_entity(&EntityId::new(TALLY, &key), "add", tag);
            ctx.continue_as_new(json!({"left": left - 1, "key": key}));
            Ok(Value::Null)
        })
        .orchestrator("Resetter", |ctx: OrchestrationContext, input: Value| async move {
            // Signals before a delete, the delete, and signals after it, in that order (one
            // sender): only the tags after the delete remain. Padded tags make a state large
            // enough to live in a blob.
            let key = input["key"].as_str().unwrap_or_default().to_owned();
            let tally = EntityId::new(TALLY, &key);
            for tag in
                input["before"].as_array().into_iter().flatten().chain(input["after"].as_array().into_iter().flatten())
            {
                if tag == "delete" {
                    ctx.signal_entity(&tally, "delete", Value::Null);
                } else {
                    ctx.signal_entity(&tally, "add", tag.clone());
                }
            }
            Ok::<_, TaskError>(json!("reset"))
        })
        .orchestrator("QuietSender", |ctx: OrchestrationContext, input: Value| async move {
            // Signals, a sleep longer than an entity remembers a quiet sender (4 hours), then more
            // signals and a call: they must still apply, once each (docs/adr/0006).
            let key = input["key"].as_str().unwrap_or_default().to_owned();
            let tally = EntityId::new(TALLY, &key);
            for tag in input["before"].as_array().into_iter().flatten() {
                ctx.signal_entity(&tally, "add", tag.clone());
            }
            let hours = input["hours"].as_u64().unwrap_or(0);
            if hours > 0 {
                ctx.sleep(Duration::from_secs(hours * 3600)).await;
            }
            for tag in input["after"].as_array().into_iter().flatten() {
                ctx.signal_entity(&tally, "add", tag.clone());
            }
            if let Some(last) = input["last"].as_str() {
                let _: u64 = ctx.call_entity(&tally, "add", last).await?;
            }
            Ok::<_, TaskError>(json!("quiet"))
        })
        .orchestrator("Waiter", |ctx: OrchestrationContext, _: Value| async move {
            let v: Value = ctx.wait_for_event("go").await?;
            Ok::<_, TaskError>(v)
        })
        .orchestrator("Sleeper", |ctx: OrchestrationContext, hours: u64| async move {
            ctx.sleep(Duration::from_secs(hours * 3600)).await;
            ctx.call_activity::<i64>("Work", 21).await
        })
        .orchestrator("Locker", |ctx: OrchestrationContext, key: String| async move {
            let tally = EntityId::new(TALLY, &key);
            let section = ctx.lock_entities(std::slice::from_ref(&tally)).await?;
            let tag = format!("locked-{}", ctx.instance_id());
            let n: u64 = ctx.call_entity(&tally, "add", tag).await?;
            section.release();
            Ok::<_, TaskError>(n > 0)
        })
        .orchestrator("Catcher", |ctx: OrchestrationContext, size: usize| async move {
            match ctx.call_activity::<()>("Fail", size).await {
                Ok(()) => Ok::<_, TaskError>(0),
                Err(e) => Ok(e.to_string().len().min(1) as i64),
            }
        })
        .orchestrator("FailingChild", |ctx: OrchestrationContext, size: usize| async move {
            ctx.call_activity::<()>("Fail", size).await?;
            Ok::<_, TaskError>(())
        })
        .orchestrator("ChildCatcher", |ctx: OrchestrationContext, size: usize| async move {
            match ctx.call_sub_orchestrator::<()>("FailingChild", size).await {
                Ok(()) => Ok::<_, TaskError>(json!("the child succeeded")),
                Err(e) if e.to_string().len() > size => Ok(json!(1)),
                Err(e) => Ok(json!(e.to_string())),
            }
        })
        .orchestrator("Forever", |ctx: OrchestrationContext, _: Value| async move {
            let v: Value = ctx.wait_for_event("never").await?;
            Ok::<_, TaskError>(v)
        })
        .activity("Echo", |_ctx: ActivityContext, text: String| async move { Ok::<_, String>(text) })
        .orchestrator("Large", |ctx: OrchestrationContext, text: String| async move {
            let back: String = ctx.call_activity("Echo", text).await?;
            Ok::<_, TaskError>(back.len())
        })
        .orchestrator("HeavyFanOut", |ctx: OrchestrationContext, width: usize| async move {
            // Each input just under the 32 KiB that would send it to a blob: one episode schedules
            // several MB, more than one table transaction may carry (4 MiB).
            let calls: Vec<_> = (0..width)
                .map(|i| ctx.call_activity::<String>("Echo", format!("{i:05}{}", "h".repeat(30_000))))
                .collect();
            let mut total = 0;
            for r in join_all(calls).await {
                total += r?.len();
            }
            Ok::<_, TaskError>(total)
        })
        .orchestrator("Checkout", |ctx: OrchestrationContext, amount: i64| async move {
            ctx.call_activity::<i64>("Charge", amount).await
        })
        .entity(TALLY, |state: &mut BTreeMap<String, u32>, op| match op.name.as_str() {
            "add" => {
                let tag = op.value.as_str().unwrap_or_default().to_owned();
                *state.entry(tag).or_default() += 1;
                Ok(json!(state.len()))
            }
            other => Err(format!("no operation {other}")),
        })
}

/// How an instance must end.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Completed with this output.
    Completed(Value),
    /// Terminated.
    Terminated,
    /// Purged: no status at all.
    Gone,
}

/// One instance the run checks, and what it must end as.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// The instance.
    pub instance_id: String,
    /// The scenario that made it.
    pub scenario: &'static str,
    /// How it must end.
    pub end: End,
    /// An execution it must have moved past (a restart in place).
    pub not_execution: Option<String>,
}

/// Every instance's expectation, and the tags each tally must hold once.
#[derive(Debug, Default)]
pub struct Expected {
    /// The instances.
    pub instances: Vec<Expectation>,
    /// Per tally key, the tags it must count exactly once.
    pub tallies: BTreeMap<String, BTreeSet<String>>,
    /// Instances whose `Charge` must have run in one execution only (keyed starts).
    pub charged_once: Vec<String>,
    /// Rewound instances (and their sub-orchestrations, ids beginning `{id}:`), whose first call
    /// (`Work`, task 0) succeeded before the rewind and must have run in one execution only.
    pub rewound: Vec<String>,
}

/// The shared expectations.
pub type SharedExpected = Arc<Mutex<Expected>>;

/// The scenarios a run can draw.
pub const SCENARIOS: [&str; 23] = [
    "heavy-fan-out",
    "large-child-failure",
    "large-value",
    "collector",
    "sequence",
    "fan-out",
    "nested",
    "countdown",
    "event",
    "suspend-resume",
    "terminate",
    "keyed-retry",
    "restart-in-place",
    "restart-new-id",
    "purge",
    "critical-section",
    "large-failure",
    "entity-reset",
    "quiet-sender",
    "rewind",
    "rewind-nested",
    "rewind-race",
    "versioned",
];

/// What a run draws: `count` scenarios (all `only`, when given), the long timer too when
/// `long_timers`, and fan-outs up to `max_fan_out`.
#[derive(Debug, Clone, Copy)]
pub struct Draw {
    /// Draw only this scenario; `None`: any.
    pub only: Option<&'static str>,
    /// How many scenarios.
    pub count: usize,
    /// Whether the long timer (8 days) is added.
    pub long_timers: bool,
    /// The widest fan-out.
    pub max_fan_out: i64,
}

/// Draws the scenarios `draw` says and spawns their client steps.
pub fn spawn_all(
    rng: &mut Rng,
    draw: Draw,
    client: DurableClient,
    expected: SharedExpected,
    ledger: SharedLedger,
    chance: &Chance,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Draw { only, count, long_timers, max_fan_out } = draw;
    let mut handles = Vec::new();
    let mut picks: Vec<&'static str> = (0..count)
        .map(|_| {
            let drawn = SCENARIOS[rng.below(SCENARIOS.len() as u64) as usize];
            only.unwrap_or(drawn)
        })
        .collect();
    if long_timers {
        picks.push("long-timer");
    }
    for (i, scenario) in picks.into_iter().enumerate() {
        let id = format!("{scenario}-{i}");
        let step = Step {
            client: client.clone(),
            ledger: ledger.clone(),
            expected: expected.clone(),
            chance: chance.clone(),
            id,
            scenario,
            wait: Duration::from_millis(rng.below(120_000)),
            size: rng.below(max_fan_out as u64 + 1) as i64,
        };
        handles.push(tokio::spawn(step.run()));
    }
    handles
}

struct Step {
    client: DurableClient,
    ledger: SharedLedger,
    expected: SharedExpected,
    chance: Chance,
    id: String,
    scenario: &'static str,
    /// A pause between client steps.
    wait: Duration,
    /// The scenario's size (fan-out width, steps, ticks).
    size: i64,
}

impl Step {
    fn expect(&self, id: &str, end: End, not_execution: Option<String>) {
        self.expected.lock().expect("expected").instances.push(Expectation {
            instance_id: id.to_owned(),
            scenario: self.scenario,
            end,
            not_execution,
        });
    }

    async fn start(&self, name: &str, input: Value) {
        self.chance.note(format!("client starts {name} {}", self.id));
        if let Err(e) = self.client.start(name, Some(&self.id), input).await {
            self.chance.note(format!("client start of {} failed: {e}", self.id));
        }
    }

    /// Waits until the instance has ended (completed, failed or terminated), polling its status.
    async fn finished(&self, id: &str) -> Option<String> {
        for _ in 0..100_000 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if let Ok(view) = self.client.status(id, false).await
                && view.status.runtime_status.is_terminal()
            {
                return Some(view.status.execution_id);
            }
        }
        None
    }

    async fn run(self) {
        tokio::time::sleep(self.wait / 4).await;
        let id = self.id.clone();
        let n = self.size.max(1);
        match self.scenario {
            "sequence" => {
                let steps = n.min(8);
                self.start("Sequence", json!(steps)).await;
                self.expect(&id, End::Completed(json!((0..steps).map(|i| i * 2).sum::<i64>())), None);
            }
            "fan-out" => {
                self.start("FanOut", json!(n)).await;
                self.expect(&id, End::Completed(json!((0..n).map(|i| i * 2).sum::<i64>())), None);
            }
            "nested" => {
                let depth = (n % 3) + 1;
                self.start("Nested", json!(depth)).await;
                self.expect(&id, End::Completed(json!(2 * (1 << depth))), None);
            }
            "countdown" => {
                let ticks = (n % 8) + 1;
                // Ticks seconds apart, so that continue-as-new meets the crashes and faults.
                let every = (self.wait.as_secs() % 20) + 1;
                self.start("Countdown", json!({"left": ticks, "key": id, "every": every})).await;
                self.expect(&id, End::Completed(json!("done")), None);
                let tags = (1..=ticks).map(|t| format!("tick-{t}")).collect();
                self.expected.lock().expect("expected").tallies.insert(id.clone(), tags);
            }
            "collector" => {
                // Events raised while the instance continues as new, one per execution.
                let ticks = (n % 6) + 1;
                self.start("Collector", json!({"left": ticks, "key": id})).await;
                self.expect(&id, End::Completed(json!("collected")), None);
                let tags: BTreeSet<String> = (1..=ticks).map(|t| format!("event-{t}")).collect();
                self.expected.lock().expect("expected").tallies.insert(id.clone(), tags.clone());
                for tag in tags {
                    tokio::time::sleep(self.wait / 8).await;
                    self.chance.note(format!("client raises tick {tag} on {id}"));
                    let _ = self.client.raise_event(&id, "tick", json!(tag)).await;
                }
            }
            "event" => {
                self.start("Waiter", json!(null)).await;
                self.expect(&id, End::Completed(json!({"go": id})), None);
                tokio::time::sleep(self.wait).await;
                self.chance.note(format!("client raises go on {id}"));
                let _ = self.client.raise_event(&id, "go", json!({"go": id})).await;
            }
            "suspend-resume" => {
                self.start("Waiter", json!(null)).await;
                self.expect(&id, End::Completed(json!(1)), None);
                tokio::time::sleep(self.wait).await;
                self.chance.note(format!("client suspends {id}"));
                let _ = self.client.suspend(&id).await;
                tokio::time::sleep(self.wait / 2).await;
                self.chance.note(format!("client raises go on {id}"));
                let _ = self.client.raise_event(&id, "go", json!(1)).await;
                tokio::time::sleep(self.wait / 2).await;
                self.chance.note(format!("client resumes {id}"));
                let _ = self.client.resume(&id).await;
            }
            "terminate" => {
                self.start("Forever", json!(null)).await;
                self.expect(&id, End::Terminated, None);
                tokio::time::sleep(self.wait).await;
                self.chance.note(format!("client terminates {id}"));
                let _ = self.client.terminate(&id, "simulated").await;
            }
            "keyed-retry" => {
                self.chance.note(format!("client starts Checkout {id} with a key"));
                let _ = self.client.start_once("Checkout", &id, json!(n)).await;
                self.expect(&id, End::Completed(json!(n)), None);
                self.expected.lock().expect("expected").charged_once.push(id.clone());
                self.finished(&id).await;
                self.chance.note(format!("client retries the keyed start of {id}"));
                let _ = self.client.start_once("Checkout", &id, json!(n)).await;
            }
            "restart-in-place" => {
                self.start("Nested", json!(1)).await;
                let first = self.finished(&id).await;
                self.chance.note(format!("client restarts {id} in place"));
                let _ = self.client.restart(&id, false).await;
                self.expect(&id, End::Completed(json!(4)), first);
            }
            "restart-new-id" => {
                self.start("Nested", json!(1)).await;
                self.expect(&id, End::Completed(json!(4)), None);
                self.finished(&id).await;
                self.chance.note(format!("client restarts {id} under a new id"));
                if let Ok(new) = self.client.restart(&id, true).await {
                    self.expect(&new, End::Completed(json!(4)), None);
                }
            }
            "purge" => {
                self.start("Sequence", json!(2)).await;
                self.finished(&id).await;
                self.chance.note(format!("client purges {id}"));
                let _ = self.client.purge(&id).await;
                self.expect(&id, End::Gone, None);
            }
            "entity-reset" => {
                let pad = if n % 2 == 0 { "x".repeat(20_000) } else { String::new() };
                let tag = |when: &str, i: i64| format!("{when}-{i}-{pad}");
                let before: Vec<String> = (1..=(n % 4) + 1).map(|i| tag("before", i)).collect();
                let after: Vec<String> = (1..=(n % 3) + 1).map(|i| tag("after", i)).collect();
                let mut sequence: Vec<String> = before;
                sequence.push("delete".to_owned());
                self.start("Resetter", json!({"key": id, "before": sequence, "after": after})).await;
                self.expect(&id, End::Completed(json!("reset")), None);
                self.expected.lock().expect("expected").tallies.insert(id.clone(), after.into_iter().collect());
            }
            "quiet-sender" => {
                // One sender goes quiet for 5 hours; another writes to the entity after 4.5, which
                // makes the entity forget the first; the first's later requests still apply.
                let tags =
                    |who: &str, when: &str, k: i64| (1..=k).map(|i| format!("{who}-{when}-{i}")).collect::<Vec<_>>();
                let (before, after) = (tags("quiet", "before", (n % 3) + 1), tags("quiet", "after", (n % 2) + 1));
                let last = "quiet-last".to_owned();
                self.start(
                    "QuietSender",
                    json!({"key": id, "hours": 5, "before": before, "after": after, "last": last}),
                )
                .await;
                self.expect(&id, End::Completed(json!("quiet")), None);
                tokio::time::sleep(Duration::from_secs(4 * 3600 + 1800)).await;
                let other = format!("{id}-other");
                let others = tags("other", "now", 2);
                self.chance.note(format!("client starts QuietSender {other}"));
                if let Err(e) =
                    self.client.start("QuietSender", Some(&other), json!({"key": id, "before": others})).await
                {
                    self.chance.note(format!("client start of {other} failed: {e}"));
                }
                self.expect(&other, End::Completed(json!("quiet")), None);
                let all = before.into_iter().chain(after).chain(others).chain([last]).collect();
                self.expected.lock().expect("expected").tallies.insert(id.clone(), all);
            }
            "critical-section" => {
                let key = format!("shared-{}", n % 2);
                self.start("Locker", json!(key)).await;
                self.expect(&id, End::Completed(json!(true)), None);
                self.expected.lock().expect("expected").tallies.entry(key).or_default().insert(format!("locked-{id}"));
            }
            "large-value" => {
                // 100 KB in, through an activity and back: more than a message or a property holds.
                self.start("Large", json!("v".repeat(100 * 1024))).await;
                self.expect(&id, End::Completed(json!(100 * 1024)), None);
            }
            "large-child-failure" => {
                // A child fails with 100 KB of error: its reply to the parent is over a message's 64 KiB.
                self.start("ChildCatcher", json!(100 * 1024)).await;
                self.expect(&id, End::Completed(json!(1)), None);
            }
            "heavy-fan-out" => {
                // 150 calls of 30 KB each: about 4.5 MB of history in one episode.
                self.start("HeavyFanOut", json!(150)).await;
                self.expect(&id, End::Completed(json!(150 * 30_005)), None);
            }
            "large-failure" => {
                self.start("Catcher", json!(100 * 1024)).await;
                self.expect(&id, End::Completed(json!(1)), None);
            }
            "long-timer" => {
                // Beyond the 7 days a queue message may stay hidden.
                self.start("Sleeper", json!(8 * 24)).await;
                self.expect(&id, End::Completed(json!(42)), None);
            }
            "rewind" | "rewind-nested" | "rewind-race" => {
                // Fails while its service is down; once it is back, rewound, it completes.
                let (orchestrator, sum) = match self.scenario {
                    "rewind" => ("Flaky", 7),
                    "rewind-nested" => ("FlakyParent", 9),
                    _ => ("RacingParent", 7),
                };
                self.ledger.lock().expect("ledger").outages.insert(id.clone());
                self.start(orchestrator, json!(id)).await;
                self.expect(&id, End::Completed(json!({"sum": sum, "same": true})), None);
                self.expected.lock().expect("expected").rewound.push(id.clone());
                self.finished(&id).await;
                self.ledger.lock().expect("ledger").outages.remove(&id);
                // A rewind that meets a storage fault is asked again, as a client would.
                for attempt in 1..=20 {
                    tokio::time::sleep(self.wait / 8).await;
                    self.chance.note(format!("client rewinds {id} (attempt {attempt})"));
                    match self.client.rewind(&id, "the service is back").await {
                        Ok(()) => break,
                        Err(e) => {
                            self.chance.note(format!("client rewind of {id} failed: {e}"));
                            let status = self.client.status(&id, false).await.map(|v| v.status.runtime_status);
                            if status.is_ok_and(|s| s != azfn::durable::RuntimeStatus::Failed) {
                                break;
                            }
                        }
                    }
                }
            }
            "versioned" => {
                // Half the starts take version 1 (a client pinned to it), half version 2.
                let version = if n % 2 == 0 { "1" } else { "2" };
                let registry = Arc::new(self.client.registry().clone().default_version(version));
                let pinned = DurableClient::new(self.client.hub().clone(), registry);
                self.chance.note(format!("client starts Versioned {id} on version {version}"));
                if let Err(e) = pinned.start("Versioned", Some(&id), json!(n)).await {
                    self.chance.note(format!("client start of {id} failed: {e}"));
                }
                self.expect(&id, End::Completed(json!({"v": version, "sum": 2 * n})), None);
            }
            other => unreachable!("unknown scenario {other}"),
        }
    }
}
