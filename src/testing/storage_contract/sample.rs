//! What the checks are made of: the suite's "now", sample deliveries, claims and completions.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::payload::ContentType;
use crate::ports::{Claim, ClaimToken, Completion, Notification, Storage};
use crate::workflow::Method;

/// 2026-11-29 12:00 UTC, the suite's "now".
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
}

pub(super) fn secs(s: i64) -> Duration {
    Duration::seconds(s)
}

/// A queued delivery due at `due`.
pub fn sample_delivery(tenant: &str, workflow: &str, due: DateTime<Utc>) -> Delivery {
    Delivery {
        id: DeliveryId::new(),
        tenant: tenant.to_owned(),
        workflow: workflow.to_owned(),
        action: "Create invoice".to_owned(),
        module: "Potentials".to_owned(),
        record_id: "13x42".to_owned(),
        owner: "19x1".to_owned(),
        method: Method::Post,
        url: "https://receiver.example/hook".to_owned(),
        content_type: ContentType::Json,
        body: Bytes::from_static(br#"{"amount":1200.5}"#),
        status: DeliveryStatus::Queued,
        attempts: 0,
        next_attempt_at: Some(due),
        lease_expires_at: None,
        created_at: t0(),
        updated_at: t0(),
        redelivery_of: None,
        ordered: false,
    }
}

pub(super) fn entry(d: &Delivery, status: DeliveryStatus, at: DateTime<Utc>, message: &str) -> LogEntry {
    LogEntry::about(d, status, at, message)
}

pub(super) fn claim(now: DateTime<Utc>, limit: usize) -> Claim {
    Claim { now, limit, lease_until: now + secs(30), token: ClaimToken::new() }
}

pub(super) fn completion(d: &Delivery, token: ClaimToken, status: DeliveryStatus, at: DateTime<Utc>) -> Completion {
    Completion {
        id: d.id,
        token,
        status,
        attempts: d.attempts + 1,
        next_attempt_at: None,
        at,
        entries: vec![entry(d, status, at, "attempt")],
        notification: None,
    }
}

pub(super) async fn enqueue_one(storage: &dyn Storage, d: &Delivery) {
    storage.enqueue(vec![d.clone()], vec![entry(d, DeliveryStatus::Queued, d.created_at, "queued")]).await.unwrap();
}

pub(super) fn notification(d: &Delivery, due: DateTime<Utc>) -> Notification {
    Notification {
        delivery_id: d.id,
        tenant: d.tenant.clone(),
        owner: d.owner.clone(),
        created_at: due,
        next_attempt_at: due,
        attempts: 0,
        sent_to: vec![],
        last_error: None,
        notice: Default::default(),
    }
}

pub(super) async fn fail_with_notification(storage: &dyn Storage, d: &Delivery) {
    enqueue_one(storage, d).await;
    let c = claim(t0(), 10);
    storage.claim_due(&c).await.unwrap();
    let mut failed = completion(d, c.token, DeliveryStatus::Failed, t0());
    failed.notification = Some(notification(d, t0()));
    assert!(storage.complete(vec![failed]).await.unwrap().is_empty());
}
