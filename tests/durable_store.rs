//! The durable instance store on a real Azurite: one-query loads, ETag-guarded episode commits,
//! the inbox, large histories split over rows, and continue-as-new generations.

mod common;

use azfn::durable::{Event, InstanceStatus, InstanceStore, RuntimeStatus};
use azfn::storage::TableClient;
use common::azurite::Azurite;
use serde_json::{Value, json};

fn status(id: &str) -> InstanceStatus {
    let now = chrono::Utc::now();
    InstanceStatus {
        name: "HelloSequence".into(),
        version: None,
        instance_id: id.into(),
        execution_id: "e1".into(),
        runtime_status: RuntimeStatus::Running,
        input: json!(["Tokyo"]),
        output: Value::Null,
        custom_status: Value::Null,
        created_time: now,
        last_updated_time: now,
        chunks: 0,
        parent: None,
        unsent: Vec::new(),
        carried: Vec::new(),
        command_time: None,
        carried_keys: Vec::new(),
        start_input: None,
        last_error: None,
    }
}

#[tokio::test]
async fn episodes_commit_atomically_and_load_back() {
    let azurite = Azurite::start();
    let store = InstanceStore::new(TableClient::new(&azurite.account()).unwrap(), "azfnInstances");
    store.create().await.unwrap();
    assert!(store.load("nobody").await.unwrap().is_none());

    let id = "order-42 'quoted'";
    let mut s = status(id);
    let first = vec![
        Event::OrchestratorStarted { time: s.created_time },
        Event::ExecutionStarted { name: "HelloSequence".into(), input: json!(["Tokyo"]), parent: None, version: None },
        Event::TaskScheduled { id: 0, name: "SayHello".into(), input: json!("Tokyo") },
    ];
    let committed = store.commit(&mut s, None, &[], &first, &[]).await.unwrap();
    // A small episode is kept in the status row (one write), not in a chunk row.
    assert_eq!((committed.tail.as_slice(), s.chunks), (first.as_slice(), 0));
    let loaded = store.load(id).await.unwrap().unwrap();
    assert_eq!(loaded.history, first);
    assert_eq!(loaded.tail, first);
    assert_eq!(loaded.status, s);
    assert_eq!(loaded.etag, committed.etag);
    // A second create of the same instance is refused.
    assert_eq!(store.commit(&mut status(id), None, &[], &first, &[]).await.unwrap_err().status, Some(409));

    // An event arriving while another episode holds the instance goes to the inbox, once.
    let done = Event::TaskCompleted { id: 0, result: json!("Hello Tokyo!") };
    assert!(store.add_to_inbox(id, "t0", &done).await.unwrap());
    assert!(!store.add_to_inbox(id, "t0", &done).await.unwrap());
    let loaded = store.load(id).await.unwrap().unwrap();
    assert_eq!(loaded.inbox, vec![("it0".to_owned(), done.clone())]);

    // The next episode consumes it; a commit with the old ETag afterwards fails and changes nothing.
    let mut s2 = loaded.status.clone();
    s2.runtime_status = RuntimeStatus::Completed;
    s2.output = json!(["Hello Tokyo!"]);
    let second = vec![done.clone(), Event::ExecutionCompleted { result: json!(["Hello Tokyo!"]) }];
    // (Consuming the inbox takes a transaction: the tail moves to a chunk row with it.)
    let committed =
        store.commit(&mut s2, Some(&loaded.etag), &loaded.tail, &second, &["it0".to_owned()]).await.unwrap();
    assert_eq!((committed.tail.len(), s2.chunks), (0, 1));
    let mut stale = loaded.status.clone();
    let err = store
        .commit(&mut stale, Some(&loaded.etag), &loaded.tail, &[Event::TimerFired { id: 9 }], &[])
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(412));
    let loaded = store.load(id).await.unwrap().unwrap();
    assert_eq!(loaded.status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(loaded.history.len(), 5);
    assert!(loaded.inbox.is_empty());
}

/// Small episodes are written to the status row alone until their events fill its tail; the next
/// commit then moves them to a chunk row in one transaction. The history loads back whole, in
/// order, at every point.
#[tokio::test]
async fn small_episodes_collect_in_the_status_row_then_move_to_a_chunk() {
    let azurite = Azurite::start();
    let store = InstanceStore::new(TableClient::new(&azurite.account()).unwrap(), "azfnInstances");
    store.create().await.unwrap();
    let mut s = status("steps");
    let mut all = Vec::new();
    let mut etag = None;
    let mut tail = Vec::new();
    let mut single_writes = 0;
    for i in 0..600u64 {
        let episode = vec![
            Event::TaskCompleted { id: i, result: json!(format!("Hello {i}!")) },
            Event::TaskScheduled { id: i + 1, name: "SayHello".into(), input: json!(format!("c{i}")) },
        ];
        let chunks = s.chunks;
        let committed = store.commit(&mut s, etag.as_deref(), &tail, &episode, &[]).await.unwrap();
        all.extend(episode);
        if s.chunks == chunks {
            single_writes += 1;
            assert_eq!(committed.tail.last(), all.last(), "the episode went to the tail");
        } else {
            assert!(committed.tail.is_empty(), "a chunk takes the whole tail");
        }
        (etag, tail) = (Some(committed.etag), committed.tail);
        if i % 97 == 0 || i == 599 {
            let loaded = store.load("steps").await.unwrap().unwrap();
            assert_eq!(loaded.history, all, "after episode {i}");
            assert_eq!(loaded.tail, tail);
        }
    }
    assert!(s.chunks >= 2 && single_writes > 500, "{} chunks, {single_writes} single writes", s.chunks);
}

#[tokio::test]
async fn large_histories_span_rows_and_new_generations_hide_old_ones() {
    let azurite = Azurite::start();
    let store = InstanceStore::new(TableClient::new(&azurite.account()).unwrap(), "azfnInstances");
    store.create().await.unwrap();
    let mut s = status("big");
    // 1,000 scheduled calls with 1 KiB inputs: about 1 MB of history in one episode.
    let events: Vec<Event> = (0..1000)
        .map(|i| Event::TaskScheduled { id: i, name: "Work".into(), input: json!("x".repeat(1000)) })
        .collect();
    let etag = store.commit(&mut s, None, &[], &events, &[]).await.unwrap().etag;
    assert!(s.chunks > 1, "{} chunks", s.chunks);
    let loaded = store.load("big").await.unwrap().unwrap();
    assert_eq!(loaded.history, events);

    // Continue-as-new: a new execution starts from chunk 0; the old chunks are no longer read.
    s.execution_id = "e2".into();
    s.chunks = 0;
    let fresh =
        vec![Event::ExecutionStarted { name: "HelloSequence".into(), input: json!(2), parent: None, version: None }];
    store.commit(&mut s, Some(&etag), &[], &fresh, &[]).await.unwrap();
    assert_eq!(store.load("big").await.unwrap().unwrap().history, fresh);
}

/// Retention purges the run it listed, not one of the same id started (or rewound) since: the
/// purge names the execution it read, and another is kept (issue 29).
#[tokio::test]
async fn a_purge_for_one_execution_keeps_a_later_run_of_the_same_id() {
    let azurite = Azurite::start();
    let store = InstanceStore::new(TableClient::new(&azurite.account()).unwrap(), "azfnInstances");
    store.create().await.unwrap();
    let mut s = status("daily-report");
    s.runtime_status = RuntimeStatus::Completed;
    s.execution_id = "e2".into();
    store.commit(&mut s, None, &[], &[], &[]).await.unwrap();
    // Listed as execution e1 by a retention pass; started again as e2 before the purge.
    assert_eq!(store.purge_execution("daily-report", Some("e1")).await.unwrap(), azfn::durable::Purge::Changed);
    assert!(store.status("daily-report").await.unwrap().is_some(), "the later run was purged");
    assert!(matches!(
        store.purge_execution("daily-report", Some("e2")).await.unwrap(),
        azfn::durable::Purge::Deleted(_)
    ));
    assert!(store.status("daily-report").await.unwrap().is_none());
}
