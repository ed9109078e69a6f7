//! Faults on purpose: futures dropped after a number of polls, a seeded random source, and a [`Storage`] that
//! fails some calls before or after doing them. Everything is driven by a seed, so a failing run replays exactly.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::doubles::lock;
use crate::delivery::{Delivery, DeliveryId, LogEntry, LogQuery};
use crate::ports::{
    Claim, Completion, Enqueue, Notification, NotificationUpdate, QuotaRequest, Storage, StorageError, StorageErrorKind,
};

/// Polls `future` at most `polls` times: its output if it finished by then, `None` if it was dropped unfinished
/// (as a host's timeout or an aborted task would drop it). `polls == 0` drops it before it ever ran.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use crm_webhooks::testing::poll_at_most;
/// assert_eq!(poll_at_most(async { 7 }, 1).await, Some(7));
/// assert_eq!(poll_at_most(async { tokio::task::yield_now().await; 7 }, 1).await, None);
/// # }
/// ```
pub async fn poll_at_most<F: Future>(future: F, polls: usize) -> Option<F::Output> {
    PollAtMost { future: Box::pin(future), left: polls }.await
}

struct PollAtMost<F> {
    future: Pin<Box<F>>,
    left: usize,
}

impl<F: Future> Future for PollAtMost<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        match self.future.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            // Out of polls: give up now rather than wait for a wake-up that may never come.
            Poll::Pending if self.left == 0 => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A small seeded random source (SplitMix64): the same seed gives the same numbers on every machine.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A source started from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    /// `true` about `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// Where [`FaultyStorage`] made a call fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Calls failed before they reached the storage (nothing happened).
    pub before: u64,
    /// Calls that took effect but whose reply was lost (the caller saw an error).
    pub after: u64,
}

/// A [`Storage`] decorator that fails about `per_mille` of the calls, half of them before delegating (nothing
/// happens) and half after (the call took effect, the caller sees a transient error, as when a commit's reply is
/// lost). Seeded, so a run replays exactly; [`set_enabled`](Self::set_enabled) turns the faults off to let a test
/// drain what is left.
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    per_mille: u64,
    rng: Mutex<SeededRng>,
    enabled: AtomicBool,
    before: AtomicU64,
    after: AtomicU64,
    by_method: Mutex<std::collections::HashMap<String, FaultCounts>>,
    /// When set, only calls of these methods may fail.
    only: Option<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for FaultyStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStorage").field("per_mille", &self.per_mille).field("faults", &self.faults()).finish()
    }
}

impl FaultyStorage {
    /// Wraps `inner`, failing about `per_mille` calls in a thousand, with faults drawn from `seed`.
    pub fn new(inner: Arc<dyn Storage>, per_mille: u64, seed: u64) -> Self {
        FaultyStorage {
            inner,
            per_mille,
            rng: Mutex::new(SeededRng::new(seed)),
            enabled: AtomicBool::new(true),
            before: AtomicU64::new(0),
            after: AtomicU64::new(0),
            by_method: Mutex::new(std::collections::HashMap::new()),
            only: None,
        }
    }

    /// Injects faults only into calls of these methods (`"endpoint_health"`, `"complete"`, ...); the others
    /// always reach the wrapped storage.
    pub fn only(mut self, methods: &[&str]) -> Self {
        self.only = Some(methods.iter().map(|m| (*m).to_owned()).collect());
        self
    }
    /// Turns the faults on or off.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }
    /// How many faults were injected so far.
    pub fn faults(&self) -> FaultCounts {
        FaultCounts { before: self.before.load(Ordering::SeqCst), after: self.after.load(Ordering::SeqCst) }
    }

    /// How many faults were injected so far into calls of one method (`"update_notification"`, ...).
    pub fn faults_in(&self, method: &str) -> FaultCounts {
        lock(&self.by_method).get(method).copied().unwrap_or_default()
    }

    /// `Some(true)`: fail before; `Some(false)`: fail after; `None`: no fault.
    fn draw(&self, what: &str) -> Option<bool> {
        if !self.enabled.load(Ordering::SeqCst) || self.only.as_ref().is_some_and(|only| !only.contains(what)) {
            return None;
        }
        let mut rng = lock(&self.rng);
        rng.chance(self.per_mille).then(|| rng.chance(500))
    }

    async fn call<T, F>(&self, what: &str, call: F) -> Result<T, StorageError>
    where
        F: Future<Output = Result<T, StorageError>>,
    {
        let fault =
            |when: &str| StorageError::new(StorageErrorKind::Unavailable, format!("injected fault {when} {what}"));
        match self.draw(what) {
            Some(true) => {
                self.before.fetch_add(1, Ordering::SeqCst);
                lock(&self.by_method).entry(what.to_owned()).or_default().before += 1;
                Err(fault("before"))
            }
            Some(false) => {
                let result = call.await;
                self.after.fetch_add(1, Ordering::SeqCst);
                lock(&self.by_method).entry(what.to_owned()).or_default().after += 1;
                result.and(Err(fault("after")))
            }
            None => call.await,
        }
    }
}

#[async_trait]
impl Storage for FaultyStorage {
    async fn enqueue_batch(&self, batch: Enqueue) -> Result<Vec<DeliveryId>, StorageError> {
        self.call("enqueue", self.inner.enqueue_batch(batch)).await
    }
    async fn claim_due(&self, claim: &Claim) -> Result<Vec<Delivery>, StorageError> {
        self.call("claim_due", self.inner.claim_due(claim)).await
    }
    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<DeliveryId>, StorageError> {
        self.call("complete", self.inner.complete(completions)).await
    }
    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.call("next_due_at", self.inner.next_due_at()).await
    }
    async fn queue_depth(&self) -> Result<crate::ports::QueueDepth, StorageError> {
        self.call("queue_depth", self.inner.queue_depth()).await
    }
    async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, StorageError> {
        self.call("delivery", self.inner.delivery(tenant, id)).await
    }
    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StorageError> {
        self.call("log", self.inner.log(query)).await
    }
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        self.call("prune", self.inner.prune(before)).await
    }
    async fn grant_quota(&self, request: &QuotaRequest) -> Result<Vec<DeliveryId>, StorageError> {
        self.call("grant_quota", self.inner.grant_quota(request)).await
    }
    async fn quota_used(&self, tenant: &str, day: NaiveDate) -> Result<u64, StorageError> {
        self.call("quota_used", self.inner.quota_used(tenant, day)).await
    }
    async fn next_run(&self, tenant: &str, workflow: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.call("next_run", self.inner.next_run(tenant, workflow)).await
    }
    async fn set_next_run(
        &self,
        tenant: &str,
        workflow: &str,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError> {
        self.call("set_next_run", self.inner.set_next_run(tenant, workflow, expected, next)).await
    }
    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>, StorageError> {
        self.call("claim_notifications", self.inner.claim_notifications(claim)).await
    }
    async fn update_notification(&self, update: NotificationUpdate) -> Result<bool, StorageError> {
        self.call("update_notification", self.inner.update_notification(update)).await
    }
    async fn endpoint_health(&self, tenant: &str) -> Result<Vec<crate::ports::EndpointHealth>, StorageError> {
        self.call("endpoint_health", self.inner.endpoint_health(tenant)).await
    }
    async fn record_health(
        &self,
        reports: Vec<crate::ports::HealthReport>,
    ) -> Result<Vec<crate::ports::HealthChange>, StorageError> {
        self.call("record_health", self.inner.record_health(reports)).await
    }
    async fn take_rate(&self, request: &crate::ports::RateRequest) -> Result<u32, StorageError> {
        self.call("take_rate", self.inner.take_rate(request)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_numbers() {
        let mut a = SeededRng::new(42);
        let mut b = SeededRng::new(42);
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(first[0], SeededRng::new(43).next_u64());
        assert_eq!(a.below(0), 0);
        assert!((0..1000).all(|_| a.below(7) < 7));
    }
}
