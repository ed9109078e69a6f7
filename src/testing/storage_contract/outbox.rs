//! Checks of the failure-notification outbox.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use chrono::Duration;

use super::sample::{claim, fail_with_notification, notification, sample_delivery, secs, t0};
use crate::delivery::DeliveryStatus;
use crate::ports::{ClaimToken, Notification, NotificationUpdate, Storage};

pub async fn failure_queues_a_notification(storage: Arc<dyn Storage>) {
    let d = sample_delivery("acme", "w1", t0());
    fail_with_notification(&*storage, &d).await;
    let claimed = storage.claim_notifications(&claim(t0(), 10)).await.unwrap();
    assert_eq!(claimed, vec![notification(&d, t0())], "the failure's notification is in the outbox");
    assert_eq!(storage.delivery("acme", d.id).await.unwrap().unwrap().status, DeliveryStatus::Failed);
}

pub async fn notification_claims_and_updates(storage: Arc<dyn Storage>) {
    let d = sample_delivery("acme", "w1", t0());
    fail_with_notification(&*storage, &d).await;
    let c = claim(t0(), 10);
    assert_eq!(storage.claim_notifications(&c).await.unwrap().len(), 1);
    assert!(
        storage.claim_notifications(&claim(t0(), 10)).await.unwrap().is_empty(),
        "a held notification is not claimed twice"
    );
    let stale = NotificationUpdate {
        delivery_id: d.id,
        token: ClaimToken::new(),
        sent_to: vec![],
        done: true,
        keep_claim: false,
        attempts: 1,
        next_attempt_at: t0(),
        last_error: None,
    };
    assert!(!storage.update_notification(stale).await.unwrap(), "only the claim holder may update");
    let progress = NotificationUpdate {
        delivery_id: d.id,
        token: c.token,
        sent_to: vec!["19x1".into()],
        done: false,
        keep_claim: true,
        attempts: 0,
        next_attempt_at: t0(),
        last_error: None,
    };
    assert!(storage.update_notification(progress).await.unwrap());
    assert!(
        storage.claim_notifications(&claim(t0() + secs(10), 10)).await.unwrap().is_empty(),
        "a round that goes on keeps its claim"
    );
    let partial = NotificationUpdate {
        delivery_id: d.id,
        token: c.token,
        sent_to: vec!["19x1".into()],
        done: false,
        keep_claim: false,
        attempts: 1,
        next_attempt_at: t0() + secs(60),
        last_error: Some("mail server down".into()),
    };
    assert!(storage.update_notification(partial).await.unwrap());
    assert!(
        storage.claim_notifications(&claim(t0() + secs(59), 10)).await.unwrap().is_empty(),
        "not before it is due again"
    );
    let c2 = claim(t0() + secs(60), 10);
    let again = storage.claim_notifications(&c2).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].sent_to, vec!["19x1".to_owned()], "who was emailed is remembered");
    assert_eq!((again[0].attempts, again[0].last_error.as_deref()), (1, Some("mail server down")));
    let done = NotificationUpdate {
        token: c2.token,
        done: true,
        sent_to: vec!["19x1".into(), "19x2".into()],
        ..again_update(&again[0])
    };
    assert!(storage.update_notification(done).await.unwrap());
    assert!(
        storage.claim_notifications(&claim(t0() + Duration::days(2), 10)).await.unwrap().is_empty(),
        "a done notification leaves the outbox"
    );
}

fn again_update(n: &Notification) -> NotificationUpdate {
    NotificationUpdate {
        delivery_id: n.delivery_id,
        token: ClaimToken::new(),
        sent_to: n.sent_to.clone(),
        done: false,
        keep_claim: false,
        attempts: n.attempts + 1,
        next_attempt_at: n.next_attempt_at,
        last_error: None,
    }
}
