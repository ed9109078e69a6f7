//! Checks of endpoint health (one count across engines, the change's entry and email, resuming what was held)
//! and of rate windows.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use super::sample::{claim, sample_delivery, secs, t0};
use crate::delivery::{Delivery, DeliveryStatus, LogQuery};
use crate::ports::{
    Completion, EndpointKey, EndpointState, HealthEvent, HealthReport, Notice, RateRequest, ReportedDelivery, Storage,
};
use crate::workflow::HealthPolicy;

fn key() -> EndpointKey {
    EndpointKey::new("acme", "w1", "Create invoice")
}

fn failure(d: &Delivery, minutes: i64) -> HealthReport {
    HealthReport {
        key: key(),
        event: HealthEvent::Failed("HTTP 503 Service Unavailable".into()),
        at: t0() + secs(minutes * 60),
        policy: HealthPolicy::default(),
        delivery: Some(ReportedDelivery {
            id: d.id,
            record_id: d.record_id.clone(),
            owner: d.owner.clone(),
            status: DeliveryStatus::Queued,
            attempts: 1,
        }),
    }
}

/// Failures counted by many concurrent callers add up to one count; the warning and the pause each happen once,
/// with their log entry and notification; a resume makes the held deliveries due, oldest first.
pub async fn endpoint_health_is_one_count_and_changes_once(storage: Arc<dyn Storage>) {
    assert!(storage.endpoint_health("acme").await.unwrap().is_empty(), "nothing stored at first");
    let d = sample_delivery("acme", "w1", t0());
    storage.enqueue(vec![d.clone()], vec![]).await.unwrap();

    // One failure at minute 0, then 4 callers × 5 failures at minute 61 or later: the fifth failure passes the
    // warning's count and hour.
    assert!(storage.record_health(vec![failure(&d, 0)]).await.unwrap().is_empty());
    let mut tasks = Vec::new();
    for caller in 0..4 {
        let (storage, d) = (storage.clone(), d.clone());
        tasks.push(async move {
            let mut changes = Vec::new();
            for i in 0..5 {
                let minutes = 61 + i + caller;
                changes.extend(storage.record_health(vec![failure(&d, minutes)]).await.unwrap());
            }
            changes
        });
    }
    let changes: Vec<_> = futures_util::future::join_all(tasks).await.into_iter().flatten().collect();
    let health = storage.endpoint_health("acme").await.unwrap();
    assert_eq!(health.len(), 1, "{health:?}");
    assert_eq!(health[0].failures, 21, "every caller's failures are counted: {health:?}");
    let warnings: Vec<_> = changes.iter().filter(|c| c.to == EndpointState::Warning).collect();
    assert_eq!(warnings.len(), 1, "one warning across callers: {changes:?}");
    assert_eq!(warnings[0].deliveries, 1, "the warning counts the action's queued deliveries");
    assert_eq!(health[0].state, EndpointState::Warning, "21 failures in 70 minutes: warned, not paused");

    // A day later: paused, once.
    let later = storage.record_health(vec![failure(&d, 24 * 60), failure(&d, 24 * 60 + 1)]).await.unwrap();
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!((later[0].from, later[0].to), (EndpointState::Warning, EndpointState::Paused));
    let log = storage.log(&LogQuery::tenant("acme").delivery(d.id)).await.unwrap();
    let changed: Vec<&str> =
        log.iter().map(|e| e.message.as_str()).filter(|m| m.starts_with("warning") || m.contains("paused")).collect();
    assert_eq!(changed.len(), 2, "one entry per change, on the reporting delivery: {changed:?}");

    // Two notices in the outbox, besides no failure notice.
    let far = claim(t0() + secs(3 * 86_400), 100);
    let notices = storage.claim_notifications(&far).await.unwrap();
    let kinds: Vec<&Notice> = notices.iter().map(|n| &n.notice).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(
        matches!(
            kinds.iter().find(|n| matches!(n, Notice::EndpointWarning { .. })),
            Some(Notice::EndpointWarning { failures: 5, waiting: 1, .. })
        ),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|n| matches!(n, Notice::EndpointPaused { failures: 22, reason, .. } if reason.contains("22 attempts in a row"))),
        "{kinds:?}"
    );
    assert!(notices.iter().all(|n| n.owner == d.owner && n.tenant == "acme"));

    // Held deliveries: the queued one claimed and put back with no next attempt, and two more held after it.
    let mut held = vec![d.clone()];
    for minutes in [1, 2] {
        let mut other = sample_delivery("acme", "w1", t0());
        other.created_at = t0() + secs(minutes * 60);
        storage.enqueue(vec![other.clone()], vec![]).await.unwrap();
        held.push(other);
    }
    let now = t0() + secs(2 * 86_400);
    let c = claim(now, 10);
    let taken = storage.claim_due(&c).await.unwrap();
    assert_eq!(taken.len(), 3);
    let paused = storage.endpoint_health("acme").await.unwrap();
    assert_eq!(paused.first().map(|h| h.state), Some(EndpointState::Paused));
    let put_back: Vec<Completion> = taken.iter().map(|t| crate::health::held(t, c.token, now, &paused[0])).collect();
    assert!(storage.complete(put_back).await.unwrap().is_empty());
    assert!(storage.claim_due(&claim(now + secs(86_400 * 365), 10)).await.unwrap().is_empty(), "held: never due");

    // Another action of the same tenant is not touched; then the resume.
    let resume = HealthReport {
        key: key(),
        event: HealthEvent::Resumed { by: "alice".into() },
        at: now + secs(60),
        policy: HealthPolicy::default(),
        delivery: None,
    };
    let resumed = storage.record_health(vec![resume.clone()]).await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!((resumed[0].to, resumed[0].deliveries), (EndpointState::Healthy, 3));
    assert!(storage.endpoint_health("acme").await.unwrap().is_empty(), "healthy again: nothing stored");
    let again = storage.claim_due(&claim(now + secs(61), 10)).await.unwrap();
    let order: Vec<_> = again.iter().map(|d| d.id).collect();
    assert_eq!(order, held.iter().map(|d| d.id).collect::<Vec<_>>(), "resumed oldest first");
    let entries = storage.log(&LogQuery::tenant("acme").delivery(held[2].id)).await.unwrap();
    assert!(entries.iter().any(|e| e.message.contains("resumed by alice")), "{entries:?}");
    assert!(storage.record_health(vec![resume]).await.unwrap().is_empty(), "resuming twice changes nothing");
}

/// Rate windows let through at most their limit, across concurrent callers, and windows count apart.
pub async fn rate_windows_cap_across_callers(storage: Arc<dyn Storage>) {
    let request = |start, wanted| RateRequest { key: key(), window_start: start, limit: 10, wanted };
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let storage = storage.clone();
        tasks.push(async move {
            let mut got = 0;
            for _ in 0..3 {
                got += storage.take_rate(&request(t0(), 1)).await.unwrap();
            }
            got
        });
    }
    let total: u32 = futures_util::future::join_all(tasks).await.into_iter().sum();
    assert_eq!(total, 10, "18 asked for one each, 10 let through");
    assert_eq!(storage.take_rate(&request(t0(), 5)).await.unwrap(), 0, "the window is full");
    assert_eq!(storage.take_rate(&request(t0() + secs(1), 25)).await.unwrap(), 10, "the next window starts empty");
    let other = RateRequest { key: EndpointKey::new("acme", "w1", "Other"), window_start: t0(), limit: 3, wanted: 5 };
    assert_eq!(storage.take_rate(&other).await.unwrap(), 3, "actions count apart");
}
