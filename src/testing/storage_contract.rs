//! The conformance suite every [`Storage`] must pass. Each check takes a fresh, empty store and panics with a
//! message naming the broken rule.
//!
//! Run it for your own backend with [`storage_contract_tests!`](crate::storage_contract_tests), which writes one
//! `#[tokio::test]` per check. It takes an async expression that gives a fresh store per check: an `Arc` of the
//! store, a [`Fixture`] (a store with what must live as long as it and a clean-up to run after the check), or a
//! [`Setup::Skip`] with the reason the checks cannot run here:
//! ```ignore
//! crm_webhooks::storage_contract_tests!(async { std::sync::Arc::new(MyStorage::connect().await) });
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::any::Any;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery};
use crate::payload::ContentType;
use crate::ports::{Claim, ClaimToken, Completion, Notification, NotificationUpdate, QuotaRequest, Storage};
use crate::workflow::Method;

/// Writes one `#[tokio::test]` per check of [`storage_contract`](crate::testing::storage_contract), each with a
/// fresh store made by the given async expression: anything that converts into a [`Setup`] (an `Arc` of a
/// store, a [`Fixture`], or [`Setup::Skip`]). This is the one list of the checks.
#[macro_export]
macro_rules! storage_contract_tests {
    ($make:expr) => {
        $crate::storage_contract_tests!(@cases $make;
            enqueue_and_read_back, enqueue_is_all_or_nothing, enqueue_skips_what_is_already_stored, bodies_keep_every_byte, claim_takes_only_due,
            claim_orders_and_limits, expired_leases_are_reclaimed, complete_applies_status_and_log,
            retries_wait_until_due, failure_queues_a_notification, notification_claims_and_updates,
            log_filters_and_pages, prune_keeps_what_is_not_settled, quota_is_capped_per_tenant_and_day,
            quota_is_atomic_under_concurrency, once_fires_once, schedules_compare_and_set,
            concurrent_claims_never_overlap);
    };
    (@cases $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testing::storage_contract::run(
                    stringify!($name),
                    $make.await,
                    |storage| ::std::boxed::Box::pin($crate::testing::storage_contract::$name(storage)),
                )
                .await;
            }
        )+
    };
}

/// A future the suite can hold and send between threads.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A store for one check, with what must live as long as it (a temporary directory) and a clean-up to run once
/// the check passed (dropping a database schema). A failed check skips the clean-up, which leaves its data to
/// look at.
pub struct Fixture {
    storage: Arc<dyn Storage>,
    keep: Vec<Box<dyn Any + Send>>,
    teardown: Option<BoxFuture>,
}

impl Fixture {
    /// A fixture of just a store.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Fixture { storage, keep: Vec::new(), teardown: None }
    }

    /// Keeps `guard` alive until the check ends.
    pub fn keep(mut self, guard: impl Any + Send) -> Self {
        self.keep.push(Box::new(guard));
        self
    }

    /// Runs `cleanup` after the check passed.
    pub fn teardown(mut self, cleanup: impl Future<Output = ()> + Send + 'static) -> Self {
        self.teardown = Some(Box::pin(cleanup));
        self
    }
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("keeps", &self.keep.len()).field("teardown", &self.teardown.is_some()).finish()
    }
}

/// What a fixture maker gives the suite: a store to check, or why the checks cannot run here.
#[derive(Debug)]
pub enum Setup {
    /// A store to check.
    Ready(Fixture),
    /// The checks are skipped, for this reason (printed once per check).
    Skip(String),
}

impl From<Fixture> for Setup {
    fn from(fixture: Fixture) -> Self {
        Setup::Ready(fixture)
    }
}

impl<S: Storage + 'static> From<Arc<S>> for Setup {
    fn from(storage: Arc<S>) -> Self {
        Setup::Ready(Fixture::new(storage))
    }
}

impl From<Arc<dyn Storage>> for Setup {
    fn from(storage: Arc<dyn Storage>) -> Self {
        Setup::Ready(Fixture::new(storage))
    }
}

/// Runs one check on a fixture: prints the reason and returns when it skips; otherwise runs the check, then the
/// fixture's clean-up when the check passed. A failed check panics with its message.
pub async fn run<F>(name: &str, setup: impl Into<Setup>, check: F)
where
    F: FnOnce(Arc<dyn Storage>) -> BoxFuture,
{
    let fixture = match setup.into() {
        Setup::Ready(fixture) => fixture,
        Setup::Skip(reason) => {
            eprintln!("storage contract: skipping {name}: {reason}");
            return;
        }
    };
    let Fixture { storage, keep, teardown } = fixture;
    check(storage).await;
    if let Some(teardown) = teardown {
        teardown.await;
    }
    drop(keep);
}

/// 2026-11-29 12:00 UTC, the suite's "now".
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
}

fn secs(s: i64) -> Duration {
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
    }
}

fn entry(d: &Delivery, status: DeliveryStatus, at: DateTime<Utc>, message: &str) -> LogEntry {
    LogEntry::about(d, status, at, message)
}

fn claim(now: DateTime<Utc>, limit: usize) -> Claim {
    Claim { now, limit, lease_until: now + secs(30), token: ClaimToken::new() }
}

fn completion(d: &Delivery, token: ClaimToken, status: DeliveryStatus, at: DateTime<Utc>) -> Completion {
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

async fn enqueue_one(storage: &dyn Storage, d: &Delivery) {
    storage.enqueue(vec![d.clone()], vec![entry(d, DeliveryStatus::Queued, d.created_at, "queued")]).await.unwrap();
}

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

fn notification(d: &Delivery, due: DateTime<Utc>) -> Notification {
    Notification {
        delivery_id: d.id,
        tenant: d.tenant.clone(),
        owner: d.owner.clone(),
        created_at: due,
        next_attempt_at: due,
        attempts: 0,
        sent_to: vec![],
        last_error: None,
    }
}

async fn fail_with_notification(storage: &dyn Storage, d: &Delivery) {
    enqueue_one(storage, d).await;
    let c = claim(t0(), 10);
    storage.claim_due(&c).await.unwrap();
    let mut failed = completion(d, c.token, DeliveryStatus::Failed, t0());
    failed.notification = Some(notification(d, t0()));
    assert!(storage.complete(vec![failed]).await.unwrap().is_empty());
}

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

pub async fn once_fires_once(storage: Arc<dyn Storage>) {
    assert!(storage.mark_fired("acme", "w1", "13x42").await.unwrap());
    assert!(!storage.mark_fired("acme", "w1", "13x42").await.unwrap(), "the second time is not the first");
    assert!(storage.mark_fired("acme", "w1", "13x43").await.unwrap());
    assert!(storage.mark_fired("acme", "w2", "13x42").await.unwrap());
    assert!(storage.mark_fired("globex", "w1", "13x42").await.unwrap());
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
