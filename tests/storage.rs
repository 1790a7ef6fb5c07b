//! azfn's storage clients against a real Azurite: queues, blobs and tables, Shared Key signed.

mod common;

use std::time::Duration;

use azfn::storage::{BlobClient, Entity, QueueClient, TableClient, TableOp, odata_string};
use common::azurite::Azurite;
use serde_json::json;

#[tokio::test]
async fn queue_round_trip_with_visibility_and_dequeue_count() {
    let azurite = Azurite::start();
    let q = QueueClient::new(&azurite.account()).unwrap();
    q.create_queue("orders").await.unwrap();
    q.create_queue("orders").await.unwrap(); // exists: fine

    // "test" is valid base64: the body must still arrive as these four bytes.
    q.send("orders", b"test", Duration::ZERO).await.unwrap();
    q.send("orders", "{\"orderId\":\"o-1\"}".as_bytes(), Duration::ZERO).await.unwrap();
    assert_eq!(q.approximate_count("orders").await.unwrap(), 2);

    let got = q.receive("orders", 32, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, b"test");
    assert_eq!(got[0].dequeue_count, 1);
    assert!(got[0].insertion_time.is_some() && got[0].next_visible_time.is_some());
    assert!(q.receive("orders", 32, Duration::from_secs(30)).await.unwrap().is_empty(), "hidden while being processed");

    // Released messages come back with a higher dequeue count; deleted ones are gone.
    q.release("orders", &got[0], Duration::ZERO).await.unwrap();
    q.delete("orders", &got[1]).await.unwrap();
    let again = q.receive("orders", 32, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].dequeue_count, 2);

    // A send to a missing queue creates it (a reset storage heals); reading one says which it was.
    q.send("created-on-send", b"x", Duration::ZERO).await.unwrap();
    assert_eq!(q.receive("created-on-send", 1, Duration::from_secs(30)).await.unwrap()[0].body, b"x");
    let err = q.receive("no-such-queue", 1, Duration::from_secs(30)).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("receive from queue no-such-queue"), "{err}");
}

#[tokio::test]
async fn blob_write_read_list_delete() {
    let azurite = Azurite::start();
    let b = BlobClient::new(&azurite.account()).unwrap();
    b.create_container("receipts").await.unwrap();
    let etag =
        b.put("receipts", "o-1.json", bytes::Bytes::from_static(b"{\"total\":1}"), "application/json").await.unwrap();
    assert!(!etag.is_empty());
    b.put("receipts", "o 2.json", bytes::Bytes::from(vec![0u8, 255, 1]), "application/octet-stream").await.unwrap();

    let blob = b.get("receipts", "o-1.json").await.unwrap();
    assert_eq!(&blob.content[..], b"{\"total\":1}");
    assert_eq!(blob.content_type.as_deref(), Some("application/json"));
    assert_eq!(&b.get("receipts", "o 2.json").await.unwrap().content[..], &[0, 255, 1]);

    let names: Vec<_> = b.list("receipts", "").await.unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["o 2.json", "o-1.json"]);
    assert_eq!(b.list("receipts", "o-").await.unwrap().len(), 1);

    b.delete("receipts", "o-1.json").await.unwrap();
    assert!(b.get("receipts", "o-1.json").await.unwrap_err().is_not_found());
}

/// docs/host-fidelity.md §9: a blob's user metadata and system properties, read as the blob
/// trigger sends them in `Metadata` and `Properties`.
#[tokio::test]
async fn blob_metadata_and_properties_reach_the_blob_trigger_data() {
    let azurite = Azurite::start();
    let b = BlobClient::new(&azurite.account()).unwrap();
    b.put_with_metadata(
        "receipts",
        "o-1.json",
        bytes::Bytes::from_static(b"{}"),
        "application/json",
        &[("source", "till-7")],
    )
    .await
    .unwrap();
    let blob = b.get("receipts", "o-1.json").await.unwrap();
    assert_eq!(blob.metadata.get("source").map(String::as_str), Some("till-7"));
    let props = cargo_azfn::host::blob_listener::properties(&blob);
    assert_eq!(props["Metadata"]["source"], "till-7");
    assert_eq!(props["ContentLength"], 2);
    assert_eq!(props["BlobType"], "Block");
    assert!(props["LastModified"].as_str().unwrap().ends_with("+00:00"), "{props}");
    assert!(props["ETag"].as_str().unwrap().contains("0x"), "{props}");
    let inv = cargo_azfn::host::invocation::blob(
        "F",
        "b",
        &blob.content,
        "http://x/receipts/o-1.json",
        props,
        &Default::default(),
    );
    assert_eq!(inv.metadata["Metadata"]["source"], "till-7");
}

#[tokio::test]
async fn table_entities_with_etags_and_escaped_queries() {
    let azurite = Azurite::start();
    let t = TableClient::new(&azurite.account()).unwrap();
    t.create_table("orders").await.unwrap();
    t.create_table("orders").await.unwrap();

    let mut e = Entity::new("orders", "o-1");
    e.properties.insert("status".into(), json!("new"));
    e.properties.insert("total".into(), json!(19.5));
    let etag = t.insert("orders", &e).await.unwrap();
    assert!(t.insert("orders", &e).await.unwrap_err().is_conflict());

    let read = t.get("orders", "orders", "o-1").await.unwrap().unwrap();
    assert_eq!(read.properties["status"], "new");
    assert_eq!(read.etag.as_deref(), Some(etag.as_str()));

    // Optimistic concurrency: a write with a stale ETag is refused.
    e.properties.insert("status".into(), json!("processed"));
    let new_etag = t.upsert("orders", &e, Some(&etag)).await.unwrap();
    let err = t.upsert("orders", &e, Some(&etag)).await.unwrap_err();
    assert!(err.is_precondition_failed(), "{err}");
    assert_ne!(new_etag, etag);

    // Keys and filter values with quotes are escaped, not spliced.
    let mut odd = Entity::new("orders", "it's");
    odd.properties.insert("status".into(), json!("x' or 'a'='a"));
    t.upsert("orders", &odd, None).await.unwrap();
    assert!(t.get("orders", "orders", "it's").await.unwrap().is_some());
    let hits = t.query("orders", &format!("status eq {}", odata_string("x' or 'a'='a"))).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].row_key, "it's");
    assert_eq!(t.query("orders", &format!("PartitionKey eq {}", odata_string("orders"))).await.unwrap().len(), 2);

    t.delete("orders", "orders", "o-1", None).await.unwrap();
    assert!(t.get("orders", "orders", "o-1").await.unwrap().is_none());
}

/// An `Edm.Int64` property travels as a JSON string with its `@odata.type` annotation (Table
/// service, "Payload format for Table service operations"); Azure.Data.Tables reads it as a `long`
/// (`DictionaryTableExtensions.CastAndRemoveAnnotations`: `TableConstants.Odata.EdmInt64 =>
/// long.Parse(...)`) and the Tables binding's `ConvertEntityToJObject` adds it as `new
/// JValue(entityProperty.Value)`, a JSON number. The table input binding here therefore gets a number
/// too, exact beyond 2^53.
#[tokio::test]
async fn an_int64_property_is_read_as_a_number() {
    let azurite = Azurite::start();
    let t = TableClient::new(&azurite.account()).unwrap();
    t.create_table("counters").await.unwrap();
    let mut e = Entity::new("c", "1");
    e.properties.insert("big@odata.type".into(), json!("Edm.Int64"));
    e.properties.insert("big".into(), json!("9007199254740993"));
    e.properties.insert("small".into(), json!(7));
    t.insert("counters", &e).await.unwrap();
    let read = t.get("counters", "c", "1").await.unwrap().unwrap();
    assert_eq!(read.properties["big"], json!(9007199254740993i64));
    assert_eq!(read.properties["small"], json!(7));
    assert!(!read.properties.contains_key("big@odata.type"));
}

#[tokio::test]
async fn table_transactions_are_all_or_nothing() {
    let azurite = Azurite::start();
    let tables = TableClient::new(&azurite.account()).unwrap();
    tables.create_table("txtable").await.unwrap();
    let entity = |rk: &str, v: i64| {
        let mut e = Entity::new("inst-1 'x'", rk);
        e.properties.insert("v".into(), json!(v));
        e
    };
    let etags = tables
        .transact("txtable", &[TableOp::Insert(entity("status", 1)), TableOp::Insert(entity("h00000000", 1))])
        .await
        .unwrap();
    assert_eq!(etags.len(), 2);
    assert!(etags.iter().all(|e| !e.is_empty()), "{etags:?}");
    let status_etag = etags[0].clone();

    // A stale ETag fails the whole transaction: the insert beside it does not happen.
    tables.upsert("txtable", &entity("status", 2), None).await.unwrap();
    let err = tables
        .transact(
            "txtable",
            &[TableOp::Replace(entity("status", 3), status_etag), TableOp::Insert(entity("h00000001", 3))],
        )
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(412), "{err}");
    assert!(tables.get("txtable", "inst-1 'x'", "h00000001").await.unwrap().is_none());

    // With the current ETag it commits; a duplicate insert is a 409 for the whole transaction.
    let current = tables.get("txtable", "inst-1 'x'", "status").await.unwrap().unwrap().etag.unwrap();
    tables
        .transact(
            "txtable",
            &[
                TableOp::Replace(entity("status", 4), current),
                TableOp::Upsert(entity("h00000001", 4)),
                TableOp::Delete { partition_key: "inst-1 'x'".into(), row_key: "h00000000".into() },
            ],
        )
        .await
        .unwrap();
    assert_eq!(tables.get("txtable", "inst-1 'x'", "status").await.unwrap().unwrap().properties["v"], json!(4));
    assert!(tables.get("txtable", "inst-1 'x'", "h00000000").await.unwrap().is_none());
    let err = tables.transact("txtable", &[TableOp::Insert(entity("h00000001", 5))]).await.unwrap_err();
    assert_eq!(err.status, Some(409), "{err}");
    // Different partitions are refused before anything is sent.
    let mut other = entity("x", 1);
    other.partition_key = "other".into();
    assert!(tables.transact("txtable", &[TableOp::Upsert(entity("a", 1)), TableOp::Upsert(other)]).await.is_err());
}
