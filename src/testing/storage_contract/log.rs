//! Checks of the delivery log: filters, pages, failure codes and pruning.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use chrono::Duration;

use super::sample::{claim, completion, enqueue_one, entry, fail_with_notification, sample_delivery, secs, t0};
use crate::delivery::{DeliveryStatus, LogEntry, LogQuery};
use crate::failure::FailureReason;
use crate::ports::Storage;

pub async fn log_filters_and_pages(storage: Arc<dyn Storage>) {
    let a = sample_delivery("acme", "w1", t0());
    let mut b = sample_delivery("acme", "w2", t0());
    b.action = "Update list".into();
    b.record_id = "13x7".into();
    let other = sample_delivery("globex", "w1", t0());
    let mut entries = Vec::new();
    for i in 0..10 {
        let d = if i % 2 == 0 { &a } else { &b };
        let status = if i % 3 == 0 { DeliveryStatus::Failed } else { DeliveryStatus::Queued };
        entries.push(entry(d, status, t0() + secs(i), &format!("e{i}")));
    }
    entries.push(entry(&other, DeliveryStatus::Failed, t0(), "other tenant"));
    storage.enqueue(vec![a.clone(), b.clone(), other.clone()], entries).await.unwrap();
    let messages = |log: Vec<LogEntry>| log.into_iter().map(|e| e.message).collect::<Vec<_>>();
    let all = messages(storage.log(&LogQuery::tenant("acme")).await.unwrap());
    assert_eq!(all, (0..10).rev().map(|i| format!("e{i}")).collect::<Vec<_>>(), "newest first, one tenant only");
    let page = messages(storage.log(&LogQuery::tenant("acme").offset(2).limit(3)).await.unwrap());
    assert_eq!(page, ["e7", "e6", "e5"], "offset and limit page through");
    assert_eq!(
        messages(storage.log(&LogQuery::tenant("acme").workflow("w2")).await.unwrap()),
        ["e9", "e7", "e5", "e3", "e1"]
    );
    assert_eq!(messages(storage.log(&LogQuery::tenant("acme").action("Update list")).await.unwrap()).len(), 5);
    assert_eq!(
        messages(storage.log(&LogQuery::tenant("acme").record("13x42")).await.unwrap()),
        ["e8", "e6", "e4", "e2", "e0"]
    );
    assert_eq!(
        messages(storage.log(&LogQuery::tenant("acme").status(DeliveryStatus::Failed)).await.unwrap()),
        ["e9", "e6", "e3", "e0"]
    );
    assert_eq!(messages(storage.log(&LogQuery::tenant("acme").delivery(a.id)).await.unwrap()).len(), 5);
    let window = LogQuery::tenant("acme").between(t0() + secs(3), t0() + secs(6));
    assert_eq!(messages(storage.log(&window).await.unwrap()), ["e5", "e4", "e3"], "since inclusive, until exclusive");
    let combined = LogQuery::tenant("acme").workflow("w1").status(DeliveryStatus::Failed);
    assert_eq!(messages(storage.log(&combined).await.unwrap()), ["e6", "e0"]);
    assert_eq!(messages(storage.log(&LogQuery::tenant("globex")).await.unwrap()), ["other tenant"]);
    assert!(storage.log(&LogQuery::tenant("nobody")).await.unwrap().is_empty());
}

pub async fn prune_keeps_what_is_not_settled(storage: Arc<dyn Storage>) {
    let old_ok = sample_delivery("acme", "w1", t0());
    let queued = sample_delivery("acme", "w1", t0() + Duration::days(30));
    let in_flight = sample_delivery("acme", "w1", t0());
    let failed_notified = sample_delivery("acme", "w1", t0());
    enqueue_one(&*storage, &old_ok).await;
    let c = claim(t0(), 1);
    storage.claim_due(&c).await.unwrap();
    storage.complete(vec![completion(&old_ok, c.token, DeliveryStatus::Success, t0())]).await.unwrap();
    fail_with_notification(&*storage, &failed_notified).await;
    enqueue_one(&*storage, &queued).await;
    enqueue_one(&*storage, &in_flight).await;
    storage.claim_due(&claim(t0(), 10)).await.unwrap();
    let removed = storage.prune(t0() + Duration::days(1)).await.unwrap();
    assert_eq!(removed, 1, "only the settled delivery without a pending notification goes");
    assert_eq!(storage.delivery("acme", old_ok.id).await.unwrap(), None);
    assert!(
        storage.log(&LogQuery::tenant("acme").delivery(old_ok.id)).await.unwrap().is_empty(),
        "its log goes with it"
    );
    for kept in [&queued, &in_flight, &failed_notified] {
        assert!(storage.delivery("acme", kept.id).await.unwrap().is_some(), "unsettled or notified deliveries stay");
        assert!(!storage.log(&LogQuery::tenant("acme").delivery(kept.id)).await.unwrap().is_empty());
    }
    assert_eq!(storage.prune(t0() - Duration::days(1)).await.unwrap(), 0, "nothing is older than the cut-off");
}

/// Every failure code, and none, is stored and read back as written: with the enqueue's entries and with a
/// completion's.
pub async fn failure_reasons_read_back(storage: Arc<dyn Storage>) {
    let d = sample_delivery("acme", "w1", t0());
    let queued = entry(&d, DeliveryStatus::Queued, t0(), "queued");
    storage.enqueue(vec![d.clone()], vec![queued.clone()]).await.unwrap();
    let c = claim(t0(), 1);
    storage.claim_due(&c).await.unwrap();
    let mut written = vec![queued];
    let mut done = completion(&d, c.token, DeliveryStatus::Failed, t0() + secs(100));
    done.entries = FailureReason::ALL
        .iter()
        .zip(1..)
        .map(|(&reason, i)| LogEntry {
            attempt: 1,
            error: Some(format!("failed: {reason}")),
            reason: Some(reason),
            ..entry(&d, DeliveryStatus::Queued, t0() + secs(i), &format!("attempt {i}"))
        })
        .collect();
    written.extend(done.entries.iter().cloned());
    assert!(storage.complete(vec![done]).await.unwrap().is_empty());
    let mut read = storage.log(&LogQuery::tenant("acme").delivery(d.id)).await.unwrap();
    read.reverse();
    assert_eq!(read, written, "every entry reads back with its failure code (oldest first here)");
    let codes: Vec<_> = read.iter().map(|e| e.reason).collect();
    assert_eq!(codes[0], None, "an entry without a code stays without one");
    assert_eq!(codes[1..].iter().flatten().copied().collect::<Vec<_>>(), FailureReason::ALL);
}
