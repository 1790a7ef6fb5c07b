//! The replay engine driven in memory: activities run inline, timers fire when time is advanced,
//! and every finished history is replayed again to check it gives the same result.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;

fn t0() -> DateTime<Utc> {
    "2024-05-01T10:00:00Z".parse().unwrap()
}

/// Runs an instance to its end; `extra(episode_no)` gives events to add before that episode.
/// Timers fire (and time jumps to them) only when nothing else is pending.
fn drive<'a>(
    registry: &'a Arc<Registry>,
    id: &'a str,
    name: &'a str,
    input: Value,
    extra: &'a mut dyn FnMut(usize) -> Vec<Event>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Execution> + 'a>> {
    Box::pin(async move {
        let mut exec = Execution::replay(registry.clone(), id, "e1", Vec::new());
        let mut pending = vec![Event::ExecutionStarted { name: name.into(), input, parent: None, version: None }];
        let mut timers: Vec<(DateTime<Utc>, u64)> = Vec::new();
        let mut now = t0();
        for n in 0..10_000 {
            pending.extend(extra(n));
            if pending.is_empty() {
                timers.sort();
                let (at, timer) = timers.remove(0);
                now = now.max(at);
                pending.push(Event::TimerFired { id: timer });
            }
            let episode = exec.run_episode(now, std::mem::take(&mut pending));
            if episode.outcome().is_some() {
                break;
            }
            for e in &episode.events {
                match e {
                    Event::TaskScheduled { id: task, name, input } => {
                        let ctx = ActivityContext {
                            instance_id: id.into(),
                            execution_id: "e1".into(),
                            name: name.clone(),
                            task_id: *task,
                        };
                        pending.push(match registry.run_activity(ctx, input.clone()).await {
                            Ok(result) => Event::TaskCompleted { id: *task, result },
                            Err(error) => Event::TaskFailed { id: *task, error },
                        });
                    }
                    Event::TimerCreated { id, fire_at } => timers.push((*fire_at, *id)),
                    Event::SubOrchestrationCreated { id: task, name, instance_id, input } => {
                        let child = drive(registry, instance_id, name, input.clone(), &mut |_| Vec::new()).await;
                        pending.push(match child.outcome() {
                            Some(Event::ExecutionCompleted { result }) => {
                                Event::SubOrchestrationCompleted { id: *task, result: result.clone() }
                            }
                            other => Event::SubOrchestrationFailed { id: *task, error: format!("{other:?}") },
                        });
                    }
                    _ => {}
                }
            }
            now += chrono::Duration::milliseconds(10);
        }
        // Replaying the recorded history gives the same outcome and no new work.
        let again = Execution::replay(registry.clone(), id, "e1", exec.history().to_vec());
        assert_eq!(again.outcome(), exec.outcome(), "replay of {id} differs");
        exec
    })
}

async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, String> {
    Ok(format!("Hello {city}!"))
}

async fn hello_sequence(ctx: OrchestrationContext, cities: Vec<String>) -> Result<Vec<String>, TaskError> {
    let mut out = Vec::new();
    for c in cities {
        out.push(ctx.call_activity("SayHello", c).await?);
    }
    Ok(out)
}

async fn fan_out(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
    let calls = (1..=n).map(|i| ctx.call_activity::<u64>("Square", json!({"i": i, "square": false})));
    let parts = join_all(calls).await;
    parts.into_iter().sum()
}

async fn identity(_ctx: ActivityContext, v: Value) -> Result<u64, String> {
    v["i"].as_u64().ok_or_else(|| "no i".to_owned())
}

fn registry() -> Arc<Registry> {
    Arc::new(
        Registry::new()
            .orchestrator("HelloSequence", hello_sequence)
            .orchestrator("FanOut", fan_out)
            .activity("SayHello", say_hello)
            .activity("Square", identity),
    )
}

fn output(exec: &Execution) -> Value {
    match exec.outcome() {
        Some(Event::ExecutionCompleted { result }) => result.clone(),
        other => panic!("not completed: {other:?}"),
    }
}

#[tokio::test]
async fn a_sequence_and_a_fan_out_complete_and_replay_identically() {
    let r = registry();
    let exec = drive(&r, "i1", "HelloSequence", json!(["Tokyo", "Seattle", "London"]), &mut |_| vec![]).await;
    assert_eq!(output(&exec), json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]));
    let exec = drive(&r, "i2", "FanOut", json!(100), &mut |_| vec![]).await;
    assert_eq!(output(&exec), json!(5050));
    // All 100 calls went out in the first episode.
    let scheduled = exec.history().iter().filter(|e| matches!(e, Event::TaskScheduled { .. })).count();
    assert_eq!(scheduled, 100);
}

#[tokio::test]
async fn duplicate_and_stale_results_are_not_applied() {
    let r = registry();
    let mut exec = Execution::replay(r.clone(), "d", "e1", Vec::new());
    let start =
        Event::ExecutionStarted { name: "HelloSequence".into(), input: json!(["A", "B"]), parent: None, version: None };
    exec.run_episode(t0(), vec![start]);
    let done = Event::TaskCompleted { id: 0, result: json!("Hello A!") };
    let ep = exec.run_episode(t0(), vec![done.clone(), done.clone(), Event::TaskCompleted { id: 7, result: json!(1) }]);
    assert_eq!(ep.events.iter().filter(|e| **e == done).count(), 1);
    assert!(!ep.events.iter().any(|e| e.completed_id() == Some(7)));
    assert!(exec.is_duplicate(&done));
}

async fn approval(ctx: OrchestrationContext, timeout_seconds: u64) -> Result<String, TaskError> {
    match ctx.wait_for_event_with_timeout::<bool>("Approval", Duration::from_secs(timeout_seconds)).await? {
        Some(true) => Ok("approved".into()),
        Some(false) => Ok("rejected".into()),
        None => Ok("timed out".into()),
    }
}

#[tokio::test]
async fn an_event_races_a_timer_and_an_early_event_is_kept() {
    let r = Arc::new(Registry::new().orchestrator("Approval", approval));
    let raise = |v: bool| Event::EventRaised { name: "Approval".into(), input: json!(v), key: "k1".into() };
    // Raised in the same episode as the start: before the code waits. It is kept.
    let exec = drive(&r, "a1", "Approval", json!(3600), &mut |n| if n == 0 { vec![raise(true)] } else { vec![] }).await;
    assert_eq!(output(&exec), json!("approved"));
    // Raised in a later episode, before the timer.
    let exec =
        drive(&r, "a2", "Approval", json!(3600), &mut |n| if n == 1 { vec![raise(false)] } else { vec![] }).await;
    assert_eq!(output(&exec), json!("rejected"));
    // Never raised: the timer wins.
    let exec = drive(&r, "a3", "Approval", json!(1), &mut |_| vec![]).await;
    assert_eq!(output(&exec), json!("timed out"));
    // The same raise delivered twice counts once.
    let mut e = Execution::replay(r.clone(), "a4", "e1", Vec::new());
    let start = Event::ExecutionStarted { name: "Approval".into(), input: json!(60), parent: None, version: None };
    e.run_episode(t0(), vec![start.clone()]);
    assert!(!e.is_duplicate(&raise(true)));
    e.run_episode(t0(), vec![raise(true)]);
    assert!(e.is_duplicate(&raise(true)));
    // Raised even before the start message arrived (its own episode first): kept, and the start
    // that follows is not mistaken for a duplicate.
    let mut e = Execution::replay(r.clone(), "a5", "e1", Vec::new());
    e.run_episode(t0(), vec![raise(true)]);
    assert!(!e.is_duplicate(&start));
    e.run_episode(t0(), vec![start.clone()]);
    assert!(e.is_duplicate(&start));
    assert_eq!(e.outcome(), Some(&Event::ExecutionCompleted { result: json!("approved") }));
    let replayed = Execution::replay(r.clone(), "a5", "e1", e.history().to_vec());
    assert_eq!(replayed.outcome(), e.outcome());
}

async fn changed_sequence(ctx: OrchestrationContext, _: Value) -> Result<String, TaskError> {
    ctx.call_activity::<String>("SayHello", "x").await?;
    ctx.call_activity("SayGoodbye", "x").await
}

async fn original_sequence(ctx: OrchestrationContext, _: Value) -> Result<String, TaskError> {
    ctx.call_activity::<String>("SayHello", "x").await?;
    ctx.call_activity("SayHello", "y").await
}

#[tokio::test]
async fn a_changed_orchestrator_is_reported_as_non_deterministic_naming_the_step() {
    let v1 = Arc::new(Registry::new().orchestrator("Seq", original_sequence).activity("SayHello", say_hello));
    let mut exec = Execution::replay(v1.clone(), "n1", "e1", Vec::new());
    exec.run_episode(
        t0(),
        vec![Event::ExecutionStarted { name: "Seq".into(), input: Value::Null, parent: None, version: None }],
    );
    exec.run_episode(t0(), vec![Event::TaskCompleted { id: 0, result: json!("Hello x!") }]);
    let history = exec.history().to_vec();

    let v2 = Arc::new(Registry::new().orchestrator("Seq", changed_sequence));
    let replayed = Execution::replay(v2, "n1", "e1", history);
    let Some(Event::ExecutionFailed { error }) = replayed.outcome() else { panic!("{:?}", replayed.outcome()) };
    assert!(error.contains("step 1") && error.contains("`SayHello`") && error.contains("`SayGoodbye`"), "{error}");
}

async fn flaky(_ctx: ActivityContext, attempt_marker: Value) -> Result<String, String> {
    let _ = attempt_marker;
    Err("card declined".into())
}

async fn with_retry(ctx: OrchestrationContext, _: Value) -> Result<String, TaskError> {
    let policy = RetryPolicy::new(3, Duration::from_secs(5)).backoff(2.0);
    ctx.call_activity_with_retry("Flaky", "x", &policy).await
}

async fn saga(ctx: OrchestrationContext, card: String) -> Result<Value, TaskError> {
    let mut saga = Saga::new();
    ctx.call_activity::<String>("SayHello", "reserve").await?;
    saga.add_compensation("SayHello", "release");
    match ctx.call_activity::<String>("Flaky", card).await {
        Ok(_) => Ok(json!({"status": "shipped"})),
        Err(_) => Ok(json!({"status": "cancelled", "compensated": saga.compensate(&ctx).await?})),
    }
}

async fn eternal(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
    ctx.set_custom_status(json!({"n": n}));
    if n < 3 {
        ctx.continue_as_new(n + 1);
    }
    Ok(n)
}

async fn guids(ctx: OrchestrationContext, _: Value) -> Result<Value, TaskError> {
    let a = ctx.new_guid();
    ctx.sleep(Duration::from_secs(1)).await;
    let b = ctx.new_guid();
    Ok(json!([a, b, ctx.now()]))
}

#[tokio::test]
async fn retries_sagas_continue_as_new_and_deterministic_guids() {
    let r = Arc::new(
        Registry::new()
            .orchestrator("Retry", with_retry)
            .orchestrator("Saga", saga)
            .orchestrator("Eternal", eternal)
            .orchestrator("Guids", guids)
            .activity("Flaky", flaky)
            .activity("SayHello", say_hello),
    );
    let exec = drive(&r, "r1", "Retry", Value::Null, &mut |_| vec![]).await;
    let Some(Event::ExecutionFailed { error }) = exec.outcome() else { panic!() };
    assert!(error.contains("card declined (after 3 attempts)"), "{error}");
    let timers: Vec<_> = exec.history().iter().filter(|e| matches!(e, Event::TimerCreated { .. })).collect();
    assert_eq!(timers.len(), 2);

    let exec = drive(&r, "s1", "Saga", json!("declined"), &mut |_| vec![]).await;
    assert_eq!(output(&exec), json!({"status": "cancelled", "compensated": ["SayHello"]}));

    let mut e = Execution::replay(r.clone(), "c1", "e1", Vec::new());
    let ep = e.run_episode(
        t0(),
        vec![Event::ExecutionStarted { name: "Eternal".into(), input: json!(1), parent: None, version: None }],
    );
    assert_eq!(ep.outcome(), Some(&Event::ContinuedAsNew { input: json!(2) }));
    assert_eq!(ep.custom_status, Some(json!({"n": 1})));

    let a = drive(&r, "g1", "Guids", Value::Null, &mut |_| vec![]).await;
    let b = drive(&r, "g1", "Guids", Value::Null, &mut |_| vec![]).await;
    assert_eq!(output(&a), output(&b));
    assert_ne!(output(&a)[0], output(&a)[1]);
}

async fn parent(ctx: OrchestrationContext, cities: Vec<String>) -> Result<Vec<String>, TaskError> {
    ctx.call_sub_orchestrator("HelloSequence", cities).await
}

#[tokio::test]
async fn sub_orchestrations_and_unknown_names() {
    let r = Arc::new(
        Registry::new()
            .orchestrator("Parent", parent)
            .orchestrator("HelloSequence", hello_sequence)
            .activity("SayHello", say_hello),
    );
    let exec = drive(&r, "p1", "Parent", json!(["Oslo"]), &mut |_| vec![]).await;
    assert_eq!(output(&exec), json!(["Hello Oslo!"]));
    let child = exec.history().iter().find_map(|e| match e {
        Event::SubOrchestrationCreated { instance_id, .. } => Some(instance_id.clone()),
        _ => None,
    });
    assert_eq!(child.as_deref(), Some("p1:e1:0000"), "tied to the parent's execution (issue 27, defect 2)");

    let mut e = Execution::replay(r.clone(), "u1", "e1", Vec::new());
    let ep = e.run_episode(
        t0(),
        vec![Event::ExecutionStarted { name: "Nope".into(), input: Value::Null, parent: None, version: None }],
    );
    let Some(Event::ExecutionFailed { error }) = ep.outcome() else { panic!() };
    assert!(error.contains("no orchestrator named `Nope`") && error.contains("Parent"), "{error}");
}

#[tokio::test]
async fn a_long_sequence_replays_in_linear_time() {
    async fn count(ctx: OrchestrationContext, n: u64) -> Result<u64, TaskError> {
        let mut total = 0;
        for i in 0..n {
            total += ctx.call_activity::<u64>("Square", json!({"i": i})).await?;
        }
        Ok(total)
    }
    let r = Arc::new(Registry::new().orchestrator("Count", count).activity("Square", identity));
    let exec = drive(&r, "l1", "Count", json!(2000), &mut |_| vec![]).await;
    assert_eq!(output(&exec), json!(1999 * 2000 / 2));
}

/// Issue 27, defect 12: the back-off factor overflowed a `Duration` after some 65 attempts at 2x
/// (`Duration::mul_f64` panicked before the cap applied); every delay is now capped first.
#[test]
fn retry_delays_stay_capped_however_many_attempts() {
    let policy = RetryPolicy::new(u32::MAX, Duration::from_secs(5)).backoff(2.0);
    assert_eq!(policy.delay(1), Duration::from_secs(5));
    assert_eq!(policy.delay(65), policy.max_interval);
    assert_eq!(policy.delay(2_000), policy.max_interval);
    assert_eq!(policy.delay(u32::MAX), policy.max_interval);
    let shrinking = RetryPolicy::new(10, Duration::from_secs(8)).backoff(0.5);
    assert_eq!(shrinking.delay(3), Duration::from_secs(2));
}

async fn keyed_call(ctx: ActivityContext, _: Value) -> Result<String, String> {
    Ok(ctx.idempotency_key())
}

/// Calls `KeyedCall` as task 0, continues as new once with that key as its input, and does the
/// same again: both keys, the first execution's and the second's.
async fn two_executions(ctx: OrchestrationContext, first: Option<String>) -> Result<Vec<String>, TaskError> {
    let key: String = ctx.call_activity("KeyedCall", Value::Null).await?;
    match first {
        None => {
            ctx.continue_as_new(key);
            Ok(Vec::new())
        }
        Some(first) => Ok(vec![first, key]),
    }
}

/// Issue 27, defect 12: `ActivityContext` had no execution id, so a key built from the instance and
/// the task id named the same call in every execution after `continue_as_new`.
#[tokio::test]
async fn an_activitys_idempotency_key_differs_across_continue_as_new() {
    let registry = Registry::new().orchestrator("TwoExecutions", two_executions).activity("KeyedCall", keyed_call);
    let run = testing::OrchestrationTest::new(registry).instance_id("i").run("TwoExecutions", Value::Null).await;
    let keys: Vec<String> = run.output_as();
    assert_eq!(keys.len(), 2);
    assert!(keys[0].starts_with("i:") && keys[0].ends_with(":0") && keys[1].ends_with(":0"), "{keys:?}");
    assert_ne!(keys[0], keys[1], "the same task id in two executions got one key");
}
