//! A load whose partition spans several query pages (issue 27, defect 9): a commit that lands
//! between two pages (here a continue-as-new that rewrites the first history chunk) must not give
//! a history cut short under the new status row's ETag.

mod common;

use std::sync::Arc;
use std::time::Duration;

use azfn::durable::{Event, InstanceStatus};
use azfn::storage::memory::{Fault, Faults, MemoryStorage, NoFaults};
use azfn_sim::worker;
use serde_json::json;

/// Each page of a table query takes 10 ms to come back; everything else is at once.
#[derive(Debug)]
struct SlowPages;

impl Faults for SlowPages {
    fn decide(&self, what: &str) -> Fault {
        if what.starts_with("query table") { Fault::Delay(Duration::from_millis(10)) } else { Fault::None }
    }
}

/// An event too large for the status row's tail: each commit of one moves the history to a chunk.
fn big(n: usize) -> Event {
    Event::EventRaised { name: format!("e{n}"), input: json!("x".repeat(40_000)), key: format!("k{n}") }
}

#[test]
fn a_load_over_several_pages_is_one_snapshot() {
    common::runtime().block_on(async {
        let epoch = common::epoch();
        let _clock = azfn::durable::clock::simulate(epoch, 6);
        // Pages of 5 rows: chunks h0..h4 on the first page, h5 and the status row on the second.
        let storage = MemoryStorage::new(epoch).with_page_size(5);
        let hub = |faults: Arc<dyn Faults>| {
            worker::hub(&storage.link(faults, worker::retry_policy()), chrono::Duration::zero())
        };
        let (writer, reader) = (hub(Arc::new(NoFaults)), hub(Arc::new(SlowPages)));
        writer.ensure_created().await.unwrap();
        let store = writer.store();
        // Execution e1 with six chunks.
        let mut status = InstanceStatus::new("Loop", "s", json!(null), None, epoch);
        status.execution_id = "e1".into();
        let start = Event::ExecutionStarted { name: "Loop".into(), input: json!(null), parent: None, version: None };
        let mut c = store.commit(&mut status, None, &[], &[start], &[]).await.unwrap();
        for n in 0..6 {
            c = store.commit(&mut status, Some(&c.etag), &c.tail, &[big(n)], &[]).await.unwrap();
        }
        assert_eq!(status.chunks, 6);

        // The reader's load reads the first page (e1's h0..h4); before it reads the second, the
        // instance continues as new: e2 writes its own h0, and its status row.
        let (loaded, ()) = tokio::join!(reader.store().load("s"), async {
            tokio::time::sleep(Duration::from_millis(15)).await;
            let mut next = status.clone();
            next.execution_id = "e2".into();
            next.chunks = 0;
            let start = Event::ExecutionStarted { name: "Loop".into(), input: json!(1), parent: None, version: None };
            store.commit(&mut next, Some(&c.etag), &[], &[start, big(9)], &[]).await.unwrap();
        });
        let loaded = loaded.unwrap().expect("the instance exists");
        assert_eq!(loaded.status.execution_id, "e2");
        assert_eq!(loaded.history.len(), 2, "e2's whole history, read again: {:?}", loaded.history.len());
        assert!(matches!(&loaded.history[1], Event::EventRaised { name, .. } if name == "e9"));
    });
}
