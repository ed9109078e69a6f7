//! Checks of quota grants and schedules.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, NaiveDate};

use super::sample::{claim, completion, sample_delivery, secs, t0};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus};
use crate::ports::{ClaimToken, Completion, QuotaRequest, Storage};

/// Enqueues `n` deliveries of `tenant` due at `t0()` and claims them (nothing else may be due).
async fn claimed(storage: &dyn Storage, tenant: &str, n: usize) -> (ClaimToken, Vec<DeliveryId>) {
    let deliveries: Vec<Delivery> = (0..n).map(|_| sample_delivery(tenant, "w1", t0())).collect();
    storage.enqueue(deliveries.clone(), vec![]).await.unwrap();
    let c = claim(t0(), n);
    let taken = storage.claim_due(&c).await.unwrap();
    assert_eq!(taken.len(), n, "claims every due delivery");
    (c.token, deliveries.iter().map(|d| d.id).collect())
}

fn quota(tenant: &str, day: NaiveDate, allowance: u64, token: ClaimToken, ids: &[DeliveryId]) -> QuotaRequest {
    QuotaRequest { tenant: tenant.to_owned(), day, allowance, token, deliveries: ids.to_vec() }
}

pub async fn quota_is_capped_per_tenant_and_day(storage: Arc<dyn Storage>) {
    let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let next = day.succ_opt().unwrap();
    let (token, ids) = claimed(&*storage, "acme", 8).await;
    let grant = |day, allowance, token, ids: &[DeliveryId]| {
        let request = quota("acme", day, allowance, token, ids);
        let storage = storage.clone();
        async move { storage.grant_quota(&request).await.unwrap() }
    };
    assert_eq!(grant(day, 5, token, &ids[..3]).await, ids[..3]);
    assert_eq!(grant(day, 5, token, &ids[3..]).await, ids[3..5], "grants only what is left, in order");
    assert_eq!(storage.quota_used("acme", day).await.unwrap(), 5);
    assert_eq!(
        grant(day, 5, token, &ids[..3]).await,
        ids[..3],
        "a delivery holding this attempt's grant (its pass was dropped) is granted again"
    );
    assert_eq!(storage.quota_used("acme", day).await.unwrap(), 5, "and not counted again");
    assert_eq!(grant(day, 5, token, &ids[5..6]).await, [], "nothing past the allowance");
    assert_eq!(grant(next, 5, token, &ids[5..6]).await, ids[5..6], "a new day starts from zero");
    assert_eq!(grant(next, 5, token, &ids[..1]).await, ids[..1], "a grant of another day is counted anew");
    assert_eq!(storage.quota_used("acme", next).await.unwrap(), 2);
    assert_eq!(grant(next, 5, ClaimToken::new(), &ids[6..]).await, [], "only the claim's holder gets quota");
    assert_eq!(grant(next, 0, token, &ids[6..]).await, [], "a zero allowance grants nothing");
    assert_eq!(storage.quota_used("acme", next).await.unwrap(), 2);

    let (globex, others) = claimed(&*storage, "globex", 4).await;
    let request = quota("globex", day, 5, globex, &others);
    assert_eq!(storage.grant_quota(&request).await.unwrap(), others, "tenants count apart");
    assert_eq!(storage.quota_used("nobody", day).await.unwrap(), 0);

    // A lease that runs out keeps the grant with its delivery for the next claim; the next attempt counts anew.
    let d0 = storage.delivery("acme", ids[0]).await.unwrap().unwrap();
    let retry = Completion { next_attempt_at: Some(t0()), ..completion(&d0, token, DeliveryStatus::Queued, t0()) };
    assert_eq!(storage.complete(vec![retry]).await.unwrap(), []);
    let later = claim(t0() + secs(31), 20);
    let taken: HashSet<DeliveryId> = storage.claim_due(&later).await.unwrap().iter().map(|d| d.id).collect();
    assert!(taken.contains(&ids[0]) && taken.contains(&ids[1]), "the retry and the expired lease are claimed");
    assert_eq!(grant(day, 5, later.token, &ids[1..2]).await, ids[1..2], "a reclaimed delivery keeps its grant");
    assert_eq!(storage.quota_used("acme", day).await.unwrap(), 5);
    assert_eq!(grant(next, 5, later.token, &ids[..1]).await, ids[..1], "its next attempt is granted");
    assert_eq!(storage.quota_used("acme", next).await.unwrap(), 3, "and counted");
}

pub async fn quota_is_atomic_under_concurrency(storage: Arc<dyn Storage>) {
    let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let (token, ids) = claimed(&*storage, "acme", 40).await;
    let tasks = ids.iter().map(|id| {
        let storage = storage.clone();
        let request = quota("acme", day, 25, token, &[*id]);
        async move { storage.grant_quota(&request).await.unwrap().len() }
    });
    let granted: usize = futures_util::future::join_all(tasks).await.into_iter().sum();
    assert_eq!(granted, 25, "concurrent grants give exactly the allowance");
    assert_eq!(storage.quota_used("acme", day).await.unwrap(), 25);
}

pub async fn schedules_compare_and_set(storage: Arc<dyn Storage>) {
    let t1 = t0() + Duration::hours(1);
    let t2 = t0() + Duration::hours(2);
    assert_eq!(storage.next_run("acme", "daily").await.unwrap(), None);
    assert!(storage.set_next_run("acme", "daily", None, Some(t1)).await.unwrap());
    assert!(!storage.set_next_run("acme", "daily", None, Some(t2)).await.unwrap(), "expected None but one is stored");
    assert_eq!(storage.next_run("acme", "daily").await.unwrap(), Some(t1));
    assert!(!storage.set_next_run("acme", "daily", Some(t2), Some(t2)).await.unwrap(), "a stale expectation fails");
    assert!(storage.set_next_run("acme", "daily", Some(t1), Some(t2)).await.unwrap());
    assert!(storage.set_next_run("acme", "daily", Some(t2), None).await.unwrap(), "a schedule can run out");
    assert_eq!(storage.next_run("acme", "daily").await.unwrap(), None);
    assert_eq!(storage.next_run("globex", "daily").await.unwrap(), None, "tenants are apart");
}
