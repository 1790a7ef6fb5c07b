//! Regression tests for defects of the durable engine found by reading it against DurableTask's
//! Azure Storage provider (issue 27), each on a real Azurite. Each test names the defect it covers
//! and fails on the code before its fix.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use azfn::HttpRequest;
use azfn::durable::{
    ActivityContext, Command, ControlMessage, Dispatcher, DurableClient, Event, OrchestrationContext, Registry,
    RuntimeStatus, TaskError,
};
use azfn::storage::QueueClient;
use common::azurite::Azurite;
use serde_json::{Value, json};

/// How many times `Charge` ran (only the keyed-start test uses it).
static CHARGES: AtomicUsize = AtomicUsize::new(0);

async fn pay(ctx: OrchestrationContext, order: String) -> Result<String, TaskError> {
    ctx.call_activity("Charge", order).await
}

async fn charge(_ctx: ActivityContext, order: String) -> Result<String, String> {
    CHARGES.fetch_add(1, Ordering::SeqCst);
    Ok(format!("charged {order}"))
}

async fn approve(ctx: OrchestrationContext, _: Value) -> Result<bool, TaskError> {
    ctx.wait_for_event("Go").await
}

/// Continues as new `n` times, then completes.
async fn again(ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
    if n > 0 {
        ctx.continue_as_new(n - 1);
    }
    Ok(n)
}

fn registry() -> Arc<Registry> {
    Arc::new(
        Registry::new()
            .orchestrator("Pay", pay)
            .orchestrator("Approve", approve)
            .orchestrator("Again", again)
            .activity("Charge", charge),
    )
}

async fn finished(client: &DurableClient, id: &str) -> azfn::durable::InstanceStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.status(id, false).await.unwrap().status;
        if status.runtime_status.is_terminal() {
            return status;
        }
        assert!(Instant::now() < deadline, "{id} did not finish: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two workers (dispatchers) on one hub, as two instances of the app, and a client that starts
/// through the first.
async fn two_workers(azurite: &Azurite, name: &str) -> (Arc<Dispatcher>, Arc<Dispatcher>, DurableClient) {
    let hub = common::hub(azurite, name).await;
    let a = Arc::new(Dispatcher::new(hub.clone(), registry()));
    let b = Arc::new(Dispatcher::new(hub, registry()));
    let client = DurableClient::with_dispatcher(a.clone(), registry());
    (a, b, client)
}

/// The instance id a 202 from the management API names.
fn started_id(answer: &azfn::HttpResponse) -> String {
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    body["id"].as_str().unwrap().to_owned()
}

fn start_request(key: &str, body: &str) -> HttpRequest {
    keyed_start("Pay", key, body)
}

fn keyed_start(orchestrator: &str, key: &str, body: &str) -> HttpRequest {
    let mut req = HttpRequest::new("POST", &format!("http://127.0.0.1:7071/api/orchestrators/{orchestrator}"));
    req.headers.insert("idempotency-key", key.parse().unwrap());
    req.body = body.as_bytes().to_vec().into();
    req
}

/// Defect 4: a start with an `Idempotency-Key`, retried after the run had finished, replaced the
/// finished instance and ran the orchestration again (a card charged twice). A keyed start is a
/// retry: it answers with the first run, finished or not; with another input it is refused.
#[tokio::test]
async fn a_keyed_start_retried_after_the_run_finished_answers_with_that_run() {
    let azurite = Azurite::start();
    let hub = common::hub(&azurite, "keyedstart").await;
    let dispatcher = Arc::new(Dispatcher::new(hub.clone(), registry()));
    let client = DurableClient::with_dispatcher(dispatcher, registry());

    let first = azfn::durable::api::handle(&client, &hub, &start_request("order-7", r#""o-7""#), "Pay").await;
    assert_eq!(first.status.as_u16(), 202);
    let id = started_id(&first);
    let done = finished(&client, &id).await;
    assert_eq!(done.runtime_status, RuntimeStatus::Completed);
    assert_eq!(CHARGES.load(Ordering::SeqCst), 1);

    // The client's retry, after a lost 202: the same instance, finished, not run again.
    let again = azfn::durable::api::handle(&client, &hub, &start_request("order-7", r#""o-7""#), "Pay").await;
    assert_eq!(again.status.as_u16(), 202);
    let retried = client.status(&id, false).await.unwrap().status;
    assert_eq!(retried.execution_id, done.execution_id, "the finished run was replaced");
    assert_eq!(retried.runtime_status, RuntimeStatus::Completed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(CHARGES.load(Ordering::SeqCst), 1, "the card was charged twice");

    // The same key with another body is another request: refused, as the draft standard says.
    let other = azfn::durable::api::handle(&client, &hub, &start_request("order-7", r#""o-8""#), "Pay").await;
    assert_eq!(other.status.as_u16(), 409);

    // An explicit id is not a retry: a finished instance is started afresh (Durable Functions).
    // (Its call then goes through the work queue, which no worker reads here.)
    let explicit = client.start("Pay", Some(&id), json!("o-7")).await.unwrap();
    assert_eq!(explicit, id);
    let rerun = client.status(&id, false).await.unwrap().status;
    assert_ne!(rerun.execution_id, done.execution_id, "an explicit start replaces a finished instance");
}

/// Defect 4, after a `continue_as_new`: a keyed start retried once the instance had continued as
/// new was compared with the current execution's input, another than the one it was started with,
/// and refused with 409. The start's input is remembered (as a fingerprint) for such retries.
#[tokio::test]
async fn a_keyed_start_retried_after_a_continue_as_new_answers_with_that_run() {
    let azurite = Azurite::start();
    let hub = common::hub(&azurite, "keyedagain").await;
    let dispatcher = Arc::new(Dispatcher::new(hub.clone(), registry()));
    let client = DurableClient::with_dispatcher(dispatcher, registry());

    let first = azfn::durable::api::handle(&client, &hub, &keyed_start("Again", "batch-1", "2"), "Again").await;
    assert_eq!(first.status.as_u16(), 202);
    let id = started_id(&first);
    let done = finished(&client, &id).await;
    assert_eq!((done.runtime_status, &done.output), (RuntimeStatus::Completed, &json!(0)));
    assert_eq!(done.input, json!(0), "the current execution's input is the last continue_as_new's");

    let again = azfn::durable::api::handle(&client, &hub, &keyed_start("Again", "batch-1", "2"), "Again").await;
    assert_eq!(again.status.as_u16(), 202, "{}", String::from_utf8_lossy(&again.body));
    let retried = client.status(&id, false).await.unwrap().status;
    assert_eq!(retried.execution_id, done.execution_id, "the run was replaced");

    let other = azfn::durable::api::handle(&client, &hub, &keyed_start("Again", "batch-1", "3"), "Again").await;
    assert_eq!(other.status.as_u16(), 409, "another input under the same key is another request");
}

/// Defect 6: the engine's messages were sent without `messagettl`, so Azure Storage's default of
/// 7 days applied and a backlog or an outage longer than that deleted work in flight. DurableTask
/// sends its messages with a time-to-live of -1 (never expire); so does the hub now.
#[tokio::test]
async fn the_engines_messages_never_expire() {
    let azurite = Azurite::start();
    let hub = common::hub(&azurite, "ttlhub").await;
    let event = Event::EventRaised { name: "Go".into(), input: json!(1), key: "k".into() };
    hub.send_control(&ControlMessage::event("someone", None, event), chrono::Utc::now()).await.unwrap();
    let queues = QueueClient::new(&azurite.account()).unwrap();
    let peeked = queues.peek(&hub.control_queue(), 1).await.unwrap();
    let expires = peeked[0].expiration_time.expect("Get Messages gives the expiration time");
    assert!(
        expires > chrono::Utc::now() + chrono::Duration::days(365 * 1000),
        "the message expires at {expires}: it should never"
    );
    // What a user's own queue output sends keeps the service's default.
    queues.send("plain", b"x", Duration::ZERO).await.unwrap();
    let plain = queues.peek("plain", 1).await.unwrap()[0].expiration_time.unwrap();
    assert!(plain < chrono::Utc::now() + chrono::Duration::days(8), "{plain}");
}

/// Defect 3: suspend and resume were decided on a worker's cached state. With two workers, a resume
/// that reached the worker whose cache still said Running (the suspend was applied by the other)
/// was dropped, and the instance stayed Suspended for ever, its event parked in the inbox.
#[tokio::test]
async fn a_resume_that_reaches_a_worker_with_a_stale_cache_resumes() {
    let azurite = Azurite::start();
    let (a, b, client) = two_workers(&azurite, "suspendhub").await;
    // Worker A starts it in place: its cache says Running, waiting for `Go`.
    let id = client.start("Approve", None, Value::Null).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.status(&id, false).await.unwrap().status.runtime_status != RuntimeStatus::Running {
        assert!(Instant::now() < deadline, "not running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.control(ControlMessage::command(&id, Command::Suspend), 1).await.unwrap();
    assert_eq!(client.status(&id, false).await.unwrap().status.runtime_status, RuntimeStatus::Suspended);
    // The resume reaches A, whose cache is behind the suspend.
    a.control(ControlMessage::command(&id, Command::Resume), 1).await.unwrap();
    assert_eq!(client.status(&id, false).await.unwrap().status.runtime_status, RuntimeStatus::Running);
    // The event reaches B, whose cache says Suspended.
    let go = Event::EventRaised { name: "Go".into(), input: json!(true), key: "go-1".into() };
    b.control(ControlMessage::event(&id, None, go), 1).await.unwrap();
    let done = finished(&client, &id).await;
    assert_eq!((done.runtime_status, done.output), (RuntimeStatus::Completed, json!(true)));
}

/// Defect 3, the other half: an event that reaches a suspended instance waits in its inbox, and
/// the worker that parks it writes the status row under the ETag it read, so that a resume applied
/// meanwhile by another worker cannot commit without it.
#[tokio::test]
async fn an_event_parked_while_another_worker_resumes_is_not_stranded() {
    let azurite = Azurite::start();
    let (a, b, client) = two_workers(&azurite, "parkhub").await;
    let id = client.start("Approve", None, Value::Null).await.unwrap();
    a.control(ControlMessage::command(&id, Command::Suspend), 1).await.unwrap();
    // B reads the instance suspended (its cache), A resumes it, then the event reaches B.
    let probe = Event::EventRaised { name: "Other".into(), input: json!(0), key: "probe".into() };
    b.control(ControlMessage::event(&id, None, probe), 1).await.unwrap();
    a.control(ControlMessage::command(&id, Command::Resume), 1).await.unwrap();
    let go = Event::EventRaised { name: "Go".into(), input: json!(true), key: "go-2".into() };
    b.control(ControlMessage::event(&id, None, go), 1).await.unwrap();
    let done = finished(&client, &id).await;
    assert_eq!((done.runtime_status, done.output), (RuntimeStatus::Completed, json!(true)));
}

/// Defect 10, first part: redrive sent a poisoned control message back as it was, so it counted as
/// a first delivery; an episode that was committed but whose messages never went out (why it
/// failed until poisoned) then found nothing new and sent nothing. A redriven control message is
/// now marked `recover`, the flag that makes the dispatcher re-send what the instance lists as
/// unsent; work messages go back as they were.
#[tokio::test]
async fn a_redriven_control_message_is_applied_as_a_redelivery() {
    let azurite = Azurite::start();
    let hub = common::hub(&azurite, "redrivehub").await;
    let queues = QueueClient::new(&azurite.account()).unwrap();
    let event = Event::EventRaised { name: "Go".into(), input: json!(1), key: "k-1".into() };
    let poisoned = serde_json::to_vec(&ControlMessage::event("someone", None, event)).unwrap();
    queues.send(&format!("{}-poison", hub.control_queue()), &poisoned, Duration::ZERO).await.unwrap();
    queues.send(&format!("{}-poison", hub.work_queue()), br#"{"not":"touched"}"#, Duration::ZERO).await.unwrap();
    assert_eq!(azfn::durable::api::redrive(&hub).await.unwrap(), 2);
    let back = queues.peek(&hub.control_queue(), 1).await.unwrap();
    let msg: ControlMessage = serde_json::from_slice(&back[0].body).unwrap();
    assert!(msg.recover, "a redriven control message is a redelivery");
    assert_eq!(msg.instance_id, "someone");
    let work = queues.peek(&hub.work_queue(), 1).await.unwrap();
    assert_eq!(work[0].body, br#"{"not":"touched"}"#.to_vec());
}

/// Scheduled starts wake an app scaled to zero (issue 29): on Flex Consumption no worker runs
/// while the queues are empty, so a schedule keeps a wake-up on the control queue, hidden until its
/// next occurrence. Here no worker polls the schedules: the wake-up alone, handled as the
/// `DurableControl` function would, starts the occurrence and queues the next wake-up.
#[tokio::test]
async fn a_schedule_wakes_an_idle_app_through_the_control_queue() {
    let azurite = Azurite::start();
    let hub = common::hub(&azurite, "scheduletick").await;
    let dispatcher = Arc::new(Dispatcher::new(hub.clone(), registry()));
    let client = DurableClient::with_dispatcher(dispatcher.clone(), registry());
    let schedules = azfn::durable::schedules::Schedules::new(client.clone());
    let spec = azfn::durable::schedules::ScheduleSpec {
        orchestrator: "Approve".into(),
        input: Value::Null,
        interval: Some("2s".into()),
        cron: None,
        time_zone: None,
        start_at: None,
        end_at: None,
    };
    let (made, created) = schedules.create("wake", spec).await.unwrap();
    assert!(created);
    let first = made.next_run.unwrap();

    let queues = QueueClient::new(&azurite.account()).unwrap();
    let tick = |body: &[u8]| {
        let msg: ControlMessage = serde_json::from_slice(body).unwrap();
        assert_eq!(msg.command, Some(Command::ScheduleTick), "{msg:?}");
        msg
    };
    // The wake-up is hidden until the occurrence, then handled: the instance is started.
    let deadline = Instant::now() + Duration::from_secs(30);
    let received = loop {
        let got = queues.receive("scheduletick-control", 1, Duration::from_secs(30)).await.unwrap();
        if let Some(m) = got.into_iter().next() {
            break m;
        }
        assert!(Instant::now() < deadline, "no wake-up on the control queue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(chrono::Utc::now() + chrono::Duration::milliseconds(600) >= first, "the wake-up came early");
    dispatcher.control(tick(&received.body), 1).await.unwrap();
    let id = azfn::durable::schedules::ScheduleState::instance_id_of("wake", first);
    assert_eq!(client.status(&id, false).await.unwrap().status.name, "Approve");
    let state = schedules.get("wake").await.unwrap();
    assert_eq!(state.last_instance_id.as_deref(), Some(id.as_str()));
    assert_eq!(state.next_run, Some(first + chrono::Duration::seconds(2)));
    // The next wake-up is queued (the start's own messages are on the queue too).
    let mut next_tick = false;
    for m in queues.peek("scheduletick-control", 32).await.unwrap() {
        let msg: ControlMessage = serde_json::from_slice(&m.body).unwrap();
        next_tick |= msg.command == Some(Command::ScheduleTick);
    }
    // (A peek sees only visible messages: the next wake-up is hidden for 2 s.)
    tokio::time::sleep(Duration::from_secs(3)).await;
    for m in queues.peek("scheduletick-control", 32).await.unwrap() {
        let msg: ControlMessage = serde_json::from_slice(&m.body).unwrap();
        next_tick |= msg.command == Some(Command::ScheduleTick);
    }
    assert!(next_tick, "no wake-up for the next occurrence");
}
