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
        Event::ExecutionStarted { name: "HelloSequence".into(), input: json!(["Tokyo"]), parent: None },
        Event::TaskScheduled { id: 0, name: "SayHello".into(), input: json!("Tokyo") },
    ];
    let etag = store.commit(&mut s, None, &first, &[]).await.unwrap();
    let loaded = store.load(id).await.unwrap().unwrap();
    assert_eq!(loaded.history, first);
    assert_eq!(loaded.status, s);
    assert_eq!(loaded.etag, etag);
    // A second create of the same instance is refused.
    assert_eq!(store.commit(&mut status(id), None, &first, &[]).await.unwrap_err().status, Some(409));

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
    store.commit(&mut s2, Some(&loaded.etag), &second, &["it0".to_owned()]).await.unwrap();
    let mut stale = loaded.status.clone();
    let err = store.commit(&mut stale, Some(&loaded.etag), &[Event::TimerFired { id: 9 }], &[]).await.unwrap_err();
    assert_eq!(err.status, Some(412));
    let loaded = store.load(id).await.unwrap().unwrap();
    assert_eq!(loaded.status.runtime_status, RuntimeStatus::Completed);
    assert_eq!(loaded.history.len(), 5);
    assert!(loaded.inbox.is_empty());
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
    let etag = store.commit(&mut s, None, &events, &[]).await.unwrap();
    assert!(s.chunks > 1, "{} chunks", s.chunks);
    let loaded = store.load("big").await.unwrap().unwrap();
    assert_eq!(loaded.history, events);

    // Continue-as-new: a new execution starts from chunk 0; the old chunks are no longer read.
    s.execution_id = "e2".into();
    s.chunks = 0;
    let fresh = vec![Event::ExecutionStarted { name: "HelloSequence".into(), input: json!(2), parent: None }];
    store.commit(&mut s, Some(&etag), &fresh, &[]).await.unwrap();
    assert_eq!(store.load("big").await.unwrap().unwrap().history, fresh);
}
