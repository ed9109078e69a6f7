//! The storage port: the one source of truth for the queue, the log, quota counters, trigger state and the
//! notification outbox.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery};

use super::endpoint::{EndpointHealth, HealthChange, HealthReport, Notice, RateRequest};

crate::id::uuid_id! {
    /// Identifies one claim. Only the holder of a delivery's current claim may complete it: a worker whose lease
    /// ran out and whose delivery was claimed again cannot overwrite the newer claim's result.
    ClaimToken
}

impl fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimToken({})", self.0.simple())
    }
}

/// A request to take due work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The current time: rows due at or before it are taken.
    pub now: DateTime<Utc>,
    /// The most rows to take.
    pub limit: usize,
    /// Until when the rows are held; after it, another worker may take them.
    pub lease_until: DateTime<Utc>,
    /// Identifies this claim.
    pub token: ClaimToken,
}

/// The result of handling one claimed delivery, applied atomically with its log entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The delivery.
    pub id: DeliveryId,
    /// The claim it was taken with.
    pub token: ClaimToken,
    /// `Queued` (to retry, or released unsent), `Success` or `Failed`.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (for `Queued`).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When this happened.
    pub at: DateTime<Utc>,
    /// Log entries to append, in order.
    pub entries: Vec<LogEntry>,
    /// A failure notification to put in the outbox (with `Failed`).
    pub notification: Option<Notification>,
}

/// What one enqueue stores, all or nothing: see [`Storage::enqueue_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enqueue {
    /// The new deliveries (status `Queued`).
    pub deliveries: Vec<Delivery>,
    /// Their log entries.
    pub entries: Vec<LogEntry>,
    /// The `once` marks the deliveries depend on: a mark taken before drops the deliveries of its tenant, workflow
    /// and record from the call, with their entries.
    pub once: Vec<OnceMark>,
}

impl Enqueue {
    /// Deliveries and their entries, with no `once` mark.
    pub fn new(deliveries: Vec<Delivery>, entries: Vec<LogEntry>) -> Self {
        Enqueue { deliveries, entries, once: Vec::new() }
    }
}

/// The mark of a `once` workflow's firing for a record: taken the first time only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OnceMark {
    /// The tenant.
    pub tenant: String,
    /// The workflow's id.
    pub workflow: String,
    /// The record's id.
    pub record_id: String,
}

impl OnceMark {
    /// Whether a delivery is one the mark's firing sends.
    pub fn covers(&self, delivery: &Delivery) -> bool {
        delivery.tenant == self.tenant && delivery.workflow == self.workflow && delivery.record_id == self.record_id
    }
}

/// The message of the log entry an ordered delivery gets when it is queued behind an earlier one.
pub fn waits_behind_message(earlier: DeliveryId) -> String {
    format!("waits for {earlier} to be sent first: the action sends a record's deliveries in order")
}

/// Claimed deliveries of one tenant asking for calls of its daily quota; see [`Storage::grant_quota`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRequest {
    /// The tenant.
    pub tenant: String,
    /// The tenant's calendar day the calls are counted on.
    pub day: NaiveDate,
    /// The most calls the day may count.
    pub allowance: u64,
    /// The claim the deliveries are held by.
    pub token: ClaimToken,
    /// The deliveries, in the order they should get what is left.
    pub deliveries: Vec<DeliveryId>,
}

/// A failure notification in the outbox: one per failed delivery, sent to the record owner and every active
/// admin. `sent_to` remembers who already has it, so a retry after a mailer failure emails nobody twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The failed delivery (also the notification's key).
    pub delivery_id: DeliveryId,
    /// The tenant.
    pub tenant: String,
    /// The record owner's user id.
    pub owner: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it is next due to be sent.
    pub next_attempt_at: DateTime<Utc>,
    /// Sending rounds tried so far.
    pub attempts: u32,
    /// User ids already emailed.
    pub sent_to: Vec<String>,
    /// The last mailer error.
    pub last_error: Option<String>,
    /// What it is about: a failed delivery (the default), or an action's receiver failing or paused.
    pub notice: Notice,
}

/// The outcome of one sending round of a claimed notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationUpdate {
    /// The notification (its delivery's id).
    pub delivery_id: DeliveryId,
    /// The claim it was taken with.
    pub token: ClaimToken,
    /// User ids emailed so far, this round included.
    pub sent_to: Vec<String>,
    /// Whether every recipient has it: the notification leaves the outbox.
    pub done: bool,
    /// Whether the round goes on (more recipients follow): `sent_to` is recorded and the claim still holds the
    /// notification. The engine records each recipient as soon as the mailer accepted their email, so a lost
    /// write can email at most that one person again.
    pub keep_claim: bool,
    /// Sending rounds tried so far.
    pub attempts: u32,
    /// When to try again (when not done).
    pub next_attempt_at: DateTime<Utc>,
    /// The last mailer error.
    pub last_error: Option<String>,
}

/// How much waits in the queue: see [`Storage::queue_depth`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    /// Deliveries `Queued` (new, waiting for a retry, or waiting behind an earlier one of their line).
    pub queued: u64,
    /// Deliveries `Dispatched` (in flight, or held by a claim whose lease has not run out yet).
    pub dispatched: u64,
    /// When the oldest `Queued` delivery was queued.
    pub oldest_queued_at: Option<DateTime<Utc>>,
}

/// What [`Storage::queued_elsewhere`] returns: a future that completes when another engine may have queued work.
pub type QueuedElsewhere = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What kind of failure a [`StorageError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The database cannot be reached or is busy; try again.
    Unavailable,
    /// Stored data does not read back as valid (a corrupt row, an unknown status).
    Corrupt,
    /// The schema is missing or of another version.
    Schema,
    /// Anything else.
    Other,
}

/// Storage failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage failed: {message}")]
pub struct StorageError {
    kind: StorageErrorKind,
    message: String,
}

impl StorageError {
    /// An error of a kind with a message a person can act on.
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        StorageError { kind, message: message.into() }
    }
    /// The kind.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == StorageErrorKind::Unavailable
    }
}

/// Durable state shared by every engine that uses it. One trait, so that a backend keeps one transaction
/// boundary and one conformance suite ([`testing::storage_contract`](crate::testing::storage_contract)) covers
/// all of it; hosts hold it as `Arc<dyn Storage>`.
///
/// Every method that changes a delivery appends its log entries in the same transaction. Times are kept to at
/// least microsecond precision (the engine writes whole microseconds). A worker whose lease ran out may still
/// complete its delivery as long as no other claim took it meanwhile: its result is as good as any.
#[async_trait]
pub trait Storage: Send + Sync {
    // --- queue -------------------------------------------------------------------------------------------
    /// Stores new deliveries (status `Queued`; a settled one, such as an admin's test send, is stored as it is and
    /// never claimed), their log entries and the `once` marks they depend on, all or nothing, and returns the ids
    /// of the batch's deliveries that are stored now, in the batch's order.
    ///
    /// - A mark of [`Enqueue::once`] taken before (an earlier firing) drops every delivery it
    ///   [covers](OnceMark::covers) and their entries; the others are taken in the same transaction.
    /// - A delivery whose id is already stored is skipped, and so are the entries about it (its `delivery_id`), so
    ///   repeating a call that took effect stores nothing new (the engine derives ids from the host's event ids for
    ///   that); its id is still returned. One id twice in the batch fails the whole call.
    /// - An [`ordered`](Delivery::ordered) delivery takes its place in its line after every delivery of that line
    ///   stored before it (and before it in the batch). When one of them is still unsettled, the storage appends
    ///   an entry saying so ([`waits_behind_message`] of the latest such one, status `Queued`, at the delivery's
    ///   `created_at`).
    async fn enqueue_batch(&self, batch: Enqueue) -> Result<Vec<DeliveryId>, StorageError>;

    /// [`enqueue_batch`](Self::enqueue_batch) with no `once` mark.
    async fn enqueue(&self, deliveries: Vec<Delivery>, entries: Vec<LogEntry>) -> Result<(), StorageError> {
        self.enqueue_batch(Enqueue::new(deliveries, entries)).await.map(drop)
    }

    /// Takes up to `claim.limit` due deliveries, earliest due first: `Queued` ones whose `next_attempt_at` is at
    /// or before `claim.now`, and `Dispatched` ones whose lease ran out. They become `Dispatched` with
    /// `lease_expires_at = claim.lease_until`, held by `claim.token`. Two concurrent claims never take the same
    /// delivery.
    ///
    /// An [`ordered`](Delivery::ordered) delivery is not taken while a delivery stored before it in its line is
    /// `Queued` or `Dispatched`: a line sends one delivery at a time, in the order they were stored, and a
    /// delivery that failed for good lets the next one go.
    async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError>;

    /// Applies completions whose claim token still holds the delivery, with their log entries and
    /// notifications; returns the ids whose claim was lost (those are left untouched).
    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError>;

    /// When the earliest `Queued` delivery a claim may take is due or the earliest lease runs out, if any (an
    /// ordered delivery waiting behind an earlier one of its line does not count: a worker would wake for it and
    /// find nothing to take).
    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError>;

    /// How many deliveries are queued and in flight, and how old the oldest queued one is: for operators' metrics.
    /// It counts every tenant's rows, so call it now and then (each `Worker` does about every 15 seconds with the
    /// `metrics` feature), not on every pass. The default reports that the storage does not tell.
    async fn queue_depth(&self) -> Result<QueueDepth, StorageError> {
        Err(StorageError::new(StorageErrorKind::Other, "this storage does not report its queue depth"))
    }

    /// One delivery of a tenant, body included.
    async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError>;

    // --- log ---------------------------------------------------------------------------------------------
    /// Log entries passing the query's filters, newest first (entries at the same instant: last written first).
    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError>;

    /// Removes settled (`Success` or `Failed`) deliveries last changed before `before`, with their log entries,
    /// unless a notification about them is still in the outbox. Never touches a delivery in flight or waiting.
    /// Returns how many deliveries were removed.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StorageError>;

    // --- quota -------------------------------------------------------------------------------------------
    /// Grants calls of the tenant's `request.day` to deliveries claimed with `request.token`, without the day's
    /// count passing `request.allowance`, atomically, and returns the ids granted (in the request's order).
    ///
    /// A grant is stored with its delivery, for the attempt it is about to make (`attempts + 1`) on that day. A
    /// delivery that already holds the grant for this attempt and day (a pass was dropped after its grant) is
    /// granted again without counting, so a cancelled pass wastes no quota; the others are counted in the
    /// request's order while the allowance lasts. A delivery not held by the token gets nothing.
    async fn grant_quota(&self, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError>;

    /// Calls counted for the tenant's `day`.
    async fn quota_used(&self, tenant: &str, day: NaiveDate) -> Result<u64, StorageError>;

    // --- triggers ----------------------------------------------------------------------------------------
    /// The stored next run of a scheduled workflow (`None` when none is stored).
    async fn next_run(&self, tenant: &str, workflow: &str) -> Result<Option<DateTime<Utc>>, StorageError>;

    /// Sets a scheduled workflow's next run if the stored one is still `expected` (`None`: none stored);
    /// `true` when it was set. Of two engines advancing the same run, exactly one succeeds.
    async fn set_next_run(
        &self,
        tenant: &str,
        workflow: &str,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError>;

    // --- notification outbox -----------------------------------------------------------------------------
    /// Takes up to `claim.limit` notifications due at `claim.now` (or whose lease ran out), held until
    /// `claim.lease_until`.
    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>, StorageError>;

    /// Records a sending round of a claimed notification; `false` when the claim was lost.
    async fn update_notification(&self, update: NotificationUpdate) -> Result<bool, StorageError>;

    // --- endpoints ---------------------------------------------------------------------------------------
    /// The stored health of a tenant's actions, in key order. An action with no stored health is healthy with no
    /// failure (the storage need not keep such rows).
    async fn endpoint_health(&self, tenant: &str) -> Result<Vec<EndpointHealth>, StorageError>;

    /// Applies reports in order, each in one transaction with what its change brings, and returns the changes
    /// made. For each report: reads the action's stored health, computes the next with the crate's one rule
    /// (`health::apply`, the same for every backend), stores it, and when the state changed also appends the
    /// change's log entry, queues its notification (with the count of the action's deliveries queued or in
    /// flight), and on a resume makes every held delivery of the action (queued with no next attempt) due at its
    /// `created_at` with an entry saying who resumed it. Engines sharing the storage thus count one series of
    /// failures, and each change (and its email) happens once.
    async fn record_health(&self, reports: Vec<HealthReport>) -> Result<Vec<HealthChange>, StorageError>;

    /// Lets up to `request.wanted` requests of an action through its rate limit in one window, without the
    /// window's count passing `request.limit`, atomically across engines; returns how many were let through.
    /// Windows that ended more than a day before `request.window_start` may be forgotten.
    async fn take_rate(&self, request: &RateRequest) -> Result<u32, StorageError>;

    // --- wake-up -----------------------------------------------------------------------------------------
    /// A future that completes when another engine sharing this storage (on another server) may have queued work
    /// after the call, so an idle worker starts a pass at once rather than at its next poll. It may complete
    /// without new work (a lost connection, say): it is a hint, and the poll stays the fallback. Dropping it
    /// leaves nothing behind.
    ///
    /// The default never completes: a storage that only one engine uses (memory, SQLite) has nobody else to hear.
    /// The PostgreSQL storage (feature `postgres`) completes it when a `NOTIFY` sent by an enqueue's commit
    /// arrives.
    fn queued_elsewhere(&self) -> QueuedElsewhere {
        Box::pin(std::future::pending())
    }
}

/// Drops from a batch the deliveries (and their entries) of the `once` marks `taken` before; returns the ids of
/// the deliveries left, in order.
pub(crate) fn drop_fired(batch: &mut Enqueue, taken: &[&OnceMark]) -> Vec<DeliveryId> {
    if !taken.is_empty() {
        let dropped: std::collections::HashSet<DeliveryId> =
            batch.deliveries.iter().filter(|d| taken.iter().any(|m| m.covers(d))).map(|d| d.id).collect();
        batch.deliveries.retain(|d| !dropped.contains(&d.id));
        batch.entries.retain(|e| !dropped.contains(&e.delivery_id));
    }
    batch.deliveries.iter().map(|d| d.id).collect()
}

/// The ids of a batch to enqueue, or the error every backend gives when one id is in it twice.
pub(crate) fn distinct_ids(deliveries: &[Delivery]) -> Result<std::collections::HashSet<DeliveryId>, StorageError> {
    let mut ids = std::collections::HashSet::with_capacity(deliveries.len());
    match deliveries.iter().find(|d| !ids.insert(d.id)) {
        Some(twice) => {
            Err(StorageError::new(StorageErrorKind::Other, format!("delivery {} is twice in one enqueue", twice.id)))
        }
        None => Ok(ids),
    }
}
