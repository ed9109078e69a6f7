//! Checks of what an enqueue carries besides deliveries: `once` marks taken with them, and ordered lines.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::sample::{claim, completion, entry, sample_delivery, secs, t0};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogQuery};
use crate::engine::Prepared;
use crate::ports::{waits_behind_message, Enqueue, OnceMark, Storage};

use super::harness::HostTransactions;

/// Lets the other tasks run once (runtime-agnostic: pending once, waking itself).
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

fn mark(tenant: &str, workflow: &str, record_id: &str) -> OnceMark {
    OnceMark { tenant: tenant.into(), workflow: workflow.into(), record_id: record_id.into() }
}

/// A delivery of `tenant`'s workflow `w1` for `record`, with its `Queued` entry.
fn firing(tenant: &str, workflow: &str, record: &str) -> Enqueue {
    let mut d = sample_delivery(tenant, workflow, t0());
    d.record_id = record.to_owned();
    let queued = entry(&d, DeliveryStatus::Queued, t0(), "queued");
    Enqueue { deliveries: vec![d], entries: vec![queued], once: vec![mark(tenant, workflow, record)] }
}

pub async fn once_marks_go_with_their_deliveries(storage: Arc<dyn Storage>) {
    let first = firing("acme", "w1", "13x42");
    let id = first.deliveries[0].id;
    assert_eq!(storage.enqueue_batch(first).await.unwrap(), [id], "the first firing is stored");
    let again = firing("acme", "w1", "13x42");
    let again_id = again.deliveries[0].id;
    assert_eq!(storage.enqueue_batch(again).await.unwrap(), Vec::<DeliveryId>::new(), "the second is not");
    assert_eq!(storage.delivery("acme", again_id).await.unwrap(), None, "nor its delivery");
    let log = storage.log(&LogQuery::tenant("acme")).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.delivery_id == again_id).count(), 0, "nor its log entry");
    for (tenant, workflow, record) in [("acme", "w1", "13x43"), ("acme", "w2", "13x42"), ("globex", "w1", "13x42")] {
        let other = firing(tenant, workflow, record);
        let other_id = other.deliveries[0].id;
        assert_eq!(storage.enqueue_batch(other).await.unwrap(), [other_id], "{tenant} {workflow} {record} is its own");
    }
    // A mark is taken with its deliveries or not at all: a call that fails takes no mark.
    let mut failing = firing("acme", "w1", "13x44");
    failing.deliveries.push(failing.deliveries[0].clone());
    assert!(storage.enqueue_batch(failing).await.is_err(), "one id twice fails the call");
    let retried = firing("acme", "w1", "13x44");
    let retried_id = retried.deliveries[0].id;
    assert_eq!(storage.enqueue_batch(retried).await.unwrap(), [retried_id], "the failed call took no mark");
    // A mark taken before drops only the deliveries it covers.
    let mut mixed = firing("acme", "w1", "13x42");
    let unmarked = sample_delivery("acme", "w3", t0());
    mixed.deliveries.push(unmarked.clone());
    assert_eq!(storage.enqueue_batch(mixed).await.unwrap(), [unmarked.id]);
    assert!(storage.delivery("acme", unmarked.id).await.unwrap().is_some());
}

/// An ordered delivery of `record`'s line (tenant acme, workflow w1, the sample action), created at `at`.
fn ordered(record: &str, at: DateTime<Utc>) -> Delivery {
    let mut d = sample_delivery("acme", "w1", t0());
    d.record_id = record.to_owned();
    d.ordered = true;
    d.created_at = at;
    d.updated_at = at;
    d
}

pub async fn ordered_lines_send_one_at_a_time(storage: Arc<dyn Storage>) {
    let (a, b, c) = (ordered("13x1", t0()), ordered("13x1", t0() + secs(1)), ordered("13x1", t0() + secs(2)));
    let other_line = ordered("13x2", t0());
    let unordered = sample_delivery("acme", "w1", t0());
    storage.enqueue(vec![a.clone(), b.clone()], vec![]).await.unwrap();
    storage.enqueue(vec![c.clone(), other_line.clone(), unordered.clone()], vec![]).await.unwrap();
    let log = storage.log(&LogQuery::tenant("acme")).await.unwrap();
    let waits: Vec<(DeliveryId, &str)> = log.iter().map(|e| (e.delivery_id, e.message.as_str())).collect();
    let says = |d: &Delivery, behind: &Delivery| waits.contains(&(d.id, waits_behind_message(behind.id).as_str()));
    assert!(says(&b, &a) && says(&c, &b), "the log says what each waits for: {waits:?}");
    assert_eq!(log.len(), 2, "the first of a line, other lines and unordered ones wait for nothing: {waits:?}");
    let wait = log.iter().find(|e| e.delivery_id == b.id).unwrap();
    assert_eq!((wait.status, wait.at), (DeliveryStatus::Queued, b.created_at));

    let now = t0() + secs(10);
    let first = claim(now, 10);
    let mut taken: Vec<DeliveryId> = storage.claim_due(&first).await.unwrap().iter().map(|d| d.id).collect();
    taken.sort();
    let mut expected = vec![a.id, other_line.id, unordered.id];
    expected.sort();
    assert_eq!(taken, expected, "one of a line at a time, the first");
    assert_eq!(storage.next_due_at().await.unwrap(), Some(first.lease_until), "what waits is not due");
    let done = [&other_line, &unordered].map(|d| completion(d, first.token, DeliveryStatus::Success, now));
    assert!(storage.complete(done.to_vec()).await.unwrap().is_empty());

    // The first fails and waits for a retry: the line waits with it.
    let retry_at = now + secs(3600);
    let mut retry = completion(&a, first.token, DeliveryStatus::Queued, now);
    retry.next_attempt_at = Some(retry_at);
    assert!(storage.complete(vec![retry]).await.unwrap().is_empty());
    assert!(storage.claim_due(&claim(now + secs(60), 10)).await.unwrap().is_empty(), "b waits for a's retry");
    let second = claim(retry_at, 10);
    let taken = storage.claim_due(&second).await.unwrap();
    assert_eq!(taken.iter().map(|d| d.id).collect::<Vec<_>>(), [a.id], "a's retry, and still not b");
    // It fails for good: the next one goes ahead.
    let mut a_now = taken[0].clone();
    a_now.attempts = 1;
    assert!(storage
        .complete(vec![completion(&a_now, second.token, DeliveryStatus::Failed, retry_at)])
        .await
        .unwrap()
        .is_empty());
    let third = claim(retry_at, 10);
    let taken = storage.claim_due(&third).await.unwrap();
    assert_eq!(taken.iter().map(|d| d.id).collect::<Vec<_>>(), [b.id], "b after a failed for good");
    assert!(storage.claim_due(&claim(retry_at, 10)).await.unwrap().is_empty(), "c waits for b in flight");
    assert!(storage
        .complete(vec![completion(&b, third.token, DeliveryStatus::Success, retry_at)])
        .await
        .unwrap()
        .is_empty());
    let taken = storage.claim_due(&claim(retry_at, 10)).await.unwrap();
    assert_eq!(taken.iter().map(|d| d.id).collect::<Vec<_>>(), [c.id], "c after b succeeded");

    // A delivery queued behind a settled line waits for nothing.
    let late = ordered("13x2", t0() + secs(5));
    let before = storage.log(&LogQuery::tenant("acme").limit(1000)).await.unwrap().len();
    storage.enqueue(vec![late.clone()], vec![]).await.unwrap();
    assert_eq!(storage.log(&LogQuery::tenant("acme").limit(1000)).await.unwrap().len(), before, "nothing to wait for");
    let taken = storage.claim_due(&claim(retry_at, 10)).await.unwrap();
    assert_eq!(taken.iter().map(|d| d.id).collect::<Vec<_>>(), [late.id]);
}

pub async fn ordered_lines_hold_under_concurrent_claims(storage: Arc<dyn Storage>) {
    const LINES: usize = 12;
    const PER_LINE: usize = 5;
    let mut places = HashMap::new();
    for round in 0..PER_LINE {
        let batch: Vec<Delivery> =
            (0..LINES).map(|line| ordered(&format!("13x{line}"), t0() + secs(i64::try_from(round).unwrap()))).collect();
        for (line, d) in batch.iter().enumerate() {
            places.insert(d.id, (line, round));
        }
        storage.enqueue(batch, vec![]).await.unwrap();
    }
    // Every line: what is in flight now, and the rounds sent so far, in the order they were settled.
    let in_flight = Arc::new(Mutex::new(vec![0usize; LINES]));
    let sent = Arc::new(Mutex::new(vec![Vec::new(); LINES]));
    let places = Arc::new(places);
    let workers = (0..4).map(|_| {
        let (storage, in_flight, sent, places) = (storage.clone(), in_flight.clone(), sent.clone(), places.clone());
        async move {
            for _ in 0..20_000 {
                let c = claim(t0() + secs(60), 3);
                let taken = storage.claim_due(&c).await.unwrap();
                if taken.is_empty() {
                    if sent.lock().unwrap().iter().all(|s| s.len() == PER_LINE) {
                        return;
                    }
                    yield_now().await;
                    continue;
                }
                for d in &taken {
                    let (line, _) = places[&d.id];
                    let mut flying = in_flight.lock().unwrap();
                    flying[line] += 1;
                    assert_eq!(flying[line], 1, "two deliveries of line {line} in flight at once");
                }
                yield_now().await;
                for d in &taken {
                    let (line, round) = places[&d.id];
                    // Recorded before the result is written, so the next of the line is never recorded first.
                    sent.lock().unwrap()[line].push(round);
                    in_flight.lock().unwrap()[line] -= 1;
                    let lost = storage.complete(vec![completion(d, c.token, DeliveryStatus::Success, c.now)]).await;
                    assert!(lost.unwrap().is_empty());
                }
            }
        }
    });
    futures_util::future::join_all(workers).await;
    let sent = sent.lock().unwrap();
    for (line, rounds) in sent.iter().enumerate() {
        assert_eq!(rounds, &(0..PER_LINE).collect::<Vec<_>>(), "line {line} went out of order");
    }
}

/// Takes the `once` mark of `tenant`'s `workflow` for `record` with a delivery due in 2100 (so it changes no due
/// time); `true` when this call took it, `false` when it was taken before.
pub async fn take_once_mark(
    storage: &dyn Storage,
    tenant: &str,
    workflow: &str,
    record: &str,
) -> Result<bool, crate::ports::StorageError> {
    let mut batch = firing(tenant, workflow, record);
    batch.entries.clear();
    let far = chrono::TimeZone::with_ymd_and_hms(&Utc, 2100, 1, 1, 0, 0, 0).unwrap();
    batch.deliveries[0].next_attempt_at = Some(far);
    Ok(!storage.enqueue_batch(batch).await?.is_empty())
}

/// A delivery enqueued already settled (an admin's test send) is stored as it is: read back, never claimed, never
/// due, and pruned like any other settled one.
pub async fn settled_deliveries_are_stored_as_they_are(storage: Arc<dyn Storage>) {
    let mut test = sample_delivery("acme", "w1", t0());
    (test.status, test.attempts, test.next_attempt_at) = (DeliveryStatus::Success, 1, None);
    test.record_id = "test".to_owned();
    let entry = entry(&test, DeliveryStatus::Success, t0(), "test attempt delivered");
    storage.enqueue(vec![test.clone()], vec![entry]).await.unwrap();
    assert_eq!(storage.delivery("acme", test.id).await.unwrap(), Some(test.clone()));
    assert!(storage.claim_due(&claim(t0() + secs(3600), 10)).await.unwrap().is_empty(), "never claimed");
    assert_eq!(storage.next_due_at().await.unwrap(), None, "never due");
    assert_eq!(storage.prune(t0() + secs(1)).await.unwrap(), 1);
    assert_eq!(storage.delivery("acme", test.id).await.unwrap(), None);
    assert!(storage.log(&LogQuery::tenant("acme")).await.unwrap().is_empty(), "its log goes with it");
}

/// The host's save rolled back: nothing of the batch is stored, logged or claimable, and its `once` mark is not
/// taken (the record's first committed save still fires).
pub async fn a_rolled_back_host_transaction_leaves_nothing(storage: Arc<dyn Storage>, host: Arc<dyn HostTransactions>) {
    let batch = firing("acme", "w1", "13x42");
    let id = batch.deliveries[0].id;
    let queued = host.save_and_enqueue(Prepared { batch }, false).await.unwrap();
    assert_eq!(queued, [id], "written in the transaction");
    assert_eq!(storage.delivery("acme", id).await.unwrap(), None, "rolled back with it");
    assert!(storage.log(&LogQuery::tenant("acme")).await.unwrap().is_empty(), "no log entry");
    assert!(storage.claim_due(&claim(t0() + secs(60), 10)).await.unwrap().is_empty(), "nothing to send");
    let again = firing("acme", "w1", "13x42");
    let again_id = again.deliveries[0].id;
    assert_eq!(
        host.save_and_enqueue(Prepared { batch: again }, true).await.unwrap(),
        [again_id],
        "the mark was not taken"
    );
}

/// The host's save committed: each delivery stored once, with its entry, claimable; a repeat stores nothing new
/// and the `once` mark holds.
pub async fn a_committed_host_transaction_queues_each_delivery_once(
    storage: Arc<dyn Storage>,
    host: Arc<dyn HostTransactions>,
) {
    let mut batch = firing("acme", "w1", "13x42");
    let plain = sample_delivery("acme", "w2", t0());
    batch.entries.push(entry(&plain, DeliveryStatus::Queued, t0(), "queued"));
    batch.deliveries.push(plain.clone());
    let ids: Vec<DeliveryId> = batch.deliveries.iter().map(|d| d.id).collect();
    assert_eq!(host.save_and_enqueue(Prepared { batch: batch.clone() }, true).await.unwrap(), ids);
    for id in &ids {
        assert!(storage.delivery("acme", *id).await.unwrap().is_some());
    }
    assert_eq!(storage.log(&LogQuery::tenant("acme")).await.unwrap().len(), 2);
    assert_eq!(host.save_and_enqueue(Prepared { batch }, true).await.unwrap(), [plain.id], "the once mark holds");
    assert_eq!(storage.log(&LogQuery::tenant("acme")).await.unwrap().len(), 2, "a repeat stores nothing new");
    assert_eq!(storage.claim_due(&claim(t0() + secs(60), 10)).await.unwrap().len(), 2);
}
