//! Checks of the queue: enqueue, claim, complete, and concurrent claims.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;

use bytes::Bytes;

use super::sample::{claim, completion, enqueue_one, entry, sample_delivery, secs, t0};
use crate::delivery::{Delivery, DeliveryStatus, LogEntry, LogQuery};
use crate::ports::Storage;

pub async fn enqueue_and_read_back(storage: Arc<dyn Storage>) {
    let d = sample_delivery("acme", "w1", t0());
    enqueue_one(&*storage, &d).await;
    let back = storage.delivery("acme", d.id).await.unwrap().expect("an enqueued delivery reads back");
    assert_eq!(back, d, "a delivery reads back exactly as enqueued");
    assert_eq!(storage.delivery("globex", d.id).await.unwrap(), None, "another tenant must not see the delivery");
    let log = storage.log(&LogQuery::tenant("acme")).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, DeliveryStatus::Queued);
    assert_eq!(log[0].delivery_id, d.id);
    assert_eq!(storage.next_due_at().await.unwrap(), Some(t0()));
}

pub async fn enqueue_is_all_or_nothing(storage: Arc<dyn Storage>) {
    let first = sample_delivery("acme", "w1", t0());
    enqueue_one(&*storage, &first).await;
    let twin = sample_delivery("acme", "w1", t0());
    assert!(storage.enqueue(vec![twin.clone(), twin.clone()], vec![]).await.is_err(), "one id twice in a batch fails");
    assert_eq!(storage.delivery("acme", twin.id).await.unwrap(), None, "and stores nothing");
}

pub async fn enqueue_skips_what_is_already_stored(storage: Arc<dyn Storage>) {
    let first = sample_delivery("acme", "w1", t0());
    enqueue_one(&*storage, &first).await;
    // A repeat of the same call (its reply was lost), with a new delivery beside it and a changed copy of the old.
    let fresh = sample_delivery("acme", "w1", t0());
    let changed = Delivery { url: "https://elsewhere.example/".to_owned(), ..first.clone() };
    let entries = vec![
        entry(&changed, DeliveryStatus::Queued, t0(), "queued again"),
        entry(&fresh, DeliveryStatus::Queued, t0(), "queued"),
    ];
    storage.enqueue(vec![changed, fresh.clone()], entries).await.unwrap();
    assert_eq!(storage.delivery("acme", first.id).await.unwrap(), Some(first.clone()), "the stored one is kept as is");
    assert_eq!(storage.delivery("acme", fresh.id).await.unwrap(), Some(fresh.clone()), "the new one is stored");
    let log = storage.log(&LogQuery::tenant("acme")).await.unwrap();
    let messages: Vec<&str> = log.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["queued", "queued"], "the skipped delivery's entries are not written: {messages:?}");
    assert_eq!(log.iter().filter(|e| e.delivery_id == first.id).count(), 1);
}

pub async fn bodies_keep_every_byte(storage: Arc<dyn Storage>) {
    let mut d = sample_delivery("acme", "w1", t0());
    d.body = Bytes::from_static(b"\x00\xff<a>&amp;\r\n\t \xe2\x98\x83 end ");
    d.url = "https://h.example/a?b=c&d=%20".to_owned();
    enqueue_one(&*storage, &d).await;
    let back = storage.delivery("acme", d.id).await.unwrap().unwrap();
    assert_eq!(back.body, d.body, "the body must come back byte for byte");
    let claimed = storage.claim_due(&claim(t0(), 10)).await.unwrap();
    assert_eq!(claimed[0].body, d.body, "a claimed delivery carries its exact body");
}

pub async fn claim_takes_only_due(storage: Arc<dyn Storage>) {
    let now_due = sample_delivery("acme", "w1", t0());
    let later = sample_delivery("acme", "w1", t0() + secs(60));
    enqueue_one(&*storage, &now_due).await;
    enqueue_one(&*storage, &later).await;
    let c = claim(t0(), 10);
    let claimed = storage.claim_due(&c).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![now_due.id], "only due deliveries are claimed");
    assert_eq!(claimed[0].status, DeliveryStatus::Dispatched);
    assert_eq!(claimed[0].lease_expires_at, Some(c.lease_until));
    let stored = storage.delivery("acme", now_due.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Dispatched, "a claim is stored");
    assert!(
        storage.claim_due(&claim(t0() + secs(1), 10)).await.unwrap().is_empty(),
        "a held lease is not claimed again"
    );
    assert_eq!(storage.next_due_at().await.unwrap(), Some(c.lease_until), "the lease's end is the next due time");
}

pub async fn claim_orders_and_limits(storage: Arc<dyn Storage>) {
    let mut all = Vec::new();
    for offset in [40, 10, 30, 0, 20] {
        let d = sample_delivery("acme", "w1", t0() + secs(offset));
        enqueue_one(&*storage, &d).await;
        all.push((offset, d.id));
    }
    all.sort();
    let claimed = storage.claim_due(&claim(t0() + secs(100), 2)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![all[0].1, all[1].1],
        "earliest due first, at most limit"
    );
}

pub async fn expired_leases_are_reclaimed(storage: Arc<dyn Storage>) {
    let d = sample_delivery("acme", "w1", t0());
    enqueue_one(&*storage, &d).await;
    let first = claim(t0(), 10);
    assert_eq!(storage.claim_due(&first).await.unwrap().len(), 1);
    let second = claim(first.lease_until + secs(1), 10);
    let again = storage.claim_due(&second).await.unwrap();
    assert_eq!(again.len(), 1, "a delivery whose lease ran out is claimed again");
    let lost = storage.complete(vec![completion(&d, first.token, DeliveryStatus::Success, second.now)]).await.unwrap();
    assert_eq!(lost, vec![d.id], "the old claim may not complete the delivery");
    let stored = storage.delivery("acme", d.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Dispatched, "a lost claim's completion changes nothing");
    assert_eq!(storage.log(&LogQuery::tenant("acme")).await.unwrap().len(), 1, "a lost claim writes no log entry");
    let lost = storage.complete(vec![completion(&d, second.token, DeliveryStatus::Success, second.now)]).await.unwrap();
    assert!(lost.is_empty(), "the current claim completes the delivery");
}

pub async fn complete_applies_status_and_log(storage: Arc<dyn Storage>) {
    let d = sample_delivery("acme", "w1", t0());
    enqueue_one(&*storage, &d).await;
    let c = claim(t0(), 10);
    storage.claim_due(&c).await.unwrap();
    let mut done = completion(&d, c.token, DeliveryStatus::Success, t0() + secs(2));
    done.entries = vec![
        entry(&d, DeliveryStatus::Dispatched, t0() + secs(1), "dispatched"),
        LogEntry {
            http_status: Some(200),
            response_snippet: Some("ok".into()),
            ..entry(&d, DeliveryStatus::Success, t0() + secs(2), "delivered")
        },
    ];
    assert!(storage.complete(vec![done]).await.unwrap().is_empty());
    let stored = storage.delivery("acme", d.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts, stored.lease_expires_at), (DeliveryStatus::Success, 1, None));
    assert_eq!(stored.updated_at, t0() + secs(2));
    let log = storage.log(&LogQuery::tenant("acme")).await.unwrap();
    let statuses: Vec<_> = log.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [DeliveryStatus::Success, DeliveryStatus::Dispatched, DeliveryStatus::Queued], "newest first");
    assert_eq!(log[0].http_status, Some(200));
    assert_eq!(log[0].response_snippet.as_deref(), Some("ok"));
    assert_eq!(storage.next_due_at().await.unwrap(), None, "a settled delivery is never due");
    assert!(storage.claim_due(&claim(t0() + secs(3600), 10)).await.unwrap().is_empty());
    let twice = storage.complete(vec![completion(&d, c.token, DeliveryStatus::Failed, t0() + secs(3))]).await.unwrap();
    assert_eq!(twice, vec![d.id], "a completed delivery cannot be completed again");
}

pub async fn retries_wait_until_due(storage: Arc<dyn Storage>) {
    let d = sample_delivery("acme", "w1", t0());
    enqueue_one(&*storage, &d).await;
    let c = claim(t0(), 10);
    storage.claim_due(&c).await.unwrap();
    let retry_at = t0() + Duration::hours(1);
    let mut retry = completion(&d, c.token, DeliveryStatus::Queued, t0());
    retry.next_attempt_at = Some(retry_at);
    storage.complete(vec![retry]).await.unwrap();
    assert_eq!(storage.next_due_at().await.unwrap(), Some(retry_at));
    assert!(storage.claim_due(&claim(retry_at - secs(1), 10)).await.unwrap().is_empty(), "not before it is due");
    let again = storage.claim_due(&claim(retry_at, 10)).await.unwrap();
    assert_eq!(again.len(), 1, "due at exactly next_attempt_at");
    assert_eq!(again[0].attempts, 1, "attempts are kept across retries");
}

pub async fn concurrent_claims_never_overlap(storage: Arc<dyn Storage>) {
    let deliveries: Vec<_> = (0..60).map(|i| sample_delivery("acme", "w1", t0() + secs(i % 7))).collect();
    storage.enqueue(deliveries.clone(), vec![]).await.unwrap();
    let claims = (0..6).map(|_| {
        let storage = storage.clone();
        async move { storage.claim_due(&claim(t0() + secs(10), 15)).await.unwrap() }
    });
    let results = futures_util::future::join_all(claims).await;
    let mut seen = HashSet::new();
    for d in results.into_iter().flatten() {
        assert!(seen.insert(d.id), "delivery {} was claimed twice", d.id);
    }
    assert_eq!(seen.len(), 60, "six claims of fifteen take all sixty, each once");
}

pub async fn queue_depth_counts_queued_and_in_flight(storage: Arc<dyn Storage>) {
    assert_eq!(storage.queue_depth().await.unwrap(), crate::ports::QueueDepth::default(), "empty");
    let deliveries: Vec<Delivery> = (0..3)
        .map(|i| {
            let mut d = sample_delivery("acme", "w1", t0());
            d.created_at = t0() + secs(i);
            d
        })
        .collect();
    storage.enqueue(deliveries.clone(), vec![]).await.unwrap();
    let c = claim(t0(), 1);
    let taken = storage.claim_due(&c).await.unwrap();
    assert_eq!(taken.len(), 1);
    let depth = storage.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.dispatched), (2, 1));
    assert_eq!(depth.oldest_queued_at, Some(t0() + secs(1)), "the oldest still queued (the claimed one was older)");
    assert!(storage
        .complete(vec![completion(&taken[0], c.token, DeliveryStatus::Success, t0())])
        .await
        .unwrap()
        .is_empty());
    let depth = storage.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.dispatched), (2, 0), "settled ones are not counted");
}
