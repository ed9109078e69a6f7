//! The engine itself: what its clones share, its clock, and the tenants' registered workflows.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::RegisterError;
use super::lease::{claim_window, LEASE_MARGIN};
use super::wake::WorkQueued;
use crate::ports::{Clock, Directory, HttpClient, Mailer, Storage, TenantInfo};
use crate::quota::QuotaPolicy;
use crate::retry::RetrySchedule;
use crate::signal::Signal;
use crate::workflow::WorkflowSet;

/// Delivers webhooks: evaluates events against the tenants' workflows, queues what matches, and runs worker
/// passes that send, retry, count quota, log and notify. Cheap to clone; clones share everything.
///
/// ```
/// use std::sync::Arc;
/// use crm_webhooks::MemoryStorage;
/// use crm_webhooks::testing::{ManualClock, MockHttp, RecordingMailer, StaticDirectory};
/// use crm_webhooks::{Change, DeliveryStatus, Engine, LogQuery, RecordEvent, WorkflowSet};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let http = Arc::new(MockHttp::new_ok());
/// let engine = Engine::builder()
///     .storage(Arc::new(MemoryStorage::new()))
///     .http(http.clone())
///     .mailer(Arc::new(RecordingMailer::new()))
///     .directory(Arc::new(StaticDirectory::new()))
///     .clock(Arc::new(ManualClock::new(chrono::Utc::now())))
///     .build()?;
/// engine.set_workflows("acme", WorkflowSet::from_json(r#"{"workflows": [{"id": "w", "module": "Leads",
///     "trigger": "every_save", "actions": [{"title": "Notify", "url": "https://example.com/hook",
///     "content_type": "JSON", "parameters": [{"name": "email", "field": "email"}]}]}]}"#)?)?;
///
/// let event = RecordEvent::new("acme", "Leads", "10x1", Change::Created, "19x1").field("email", "a@b.c");
/// let ids = engine.on_event(&event).await?;
/// assert_eq!(ids.len(), 1);
/// engine.run_due().await?;
/// assert_eq!(http.requests()[0].body, r#"{"email":"a@b.c"}"#);
/// let log = engine.log(&LogQuery::tenant("acme")).await?;
/// assert_eq!(log[0].status, DeliveryStatus::Success);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

/// What every clone of an engine shares.
pub(super) struct Inner {
    pub(super) storage: Arc<dyn Storage>,
    pub(super) http: Arc<dyn HttpClient>,
    pub(super) mailer: Arc<dyn Mailer>,
    pub(super) directory: Arc<dyn Directory>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) retry: RetrySchedule,
    pub(super) quota: QuotaPolicy,
    pub(super) batch_size: usize,
    pub(super) lease: Duration,
    pub(super) concurrency: usize,
    /// The most deliveries claimed and not yet finished at once: as many as the lease covers (see `run_due`),
    /// for the longest request timeout of the client and the registered actions (set with the workflows).
    pub(super) claim_window: AtomicUsize,
    /// The HTTP client's request timeout, read once when the engine was built.
    pub(super) client_timeout: Option<Duration>,
    pub(super) max_body_bytes: usize,
    pub(super) workflows: RwLock<HashMap<String, Arc<WorkflowSet>>>,
    /// Wakes this engine's workers when it queues work.
    pub(super) wake: Arc<Signal>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("retry", &self.inner.retry)
            .field("quota", &self.inner.quota)
            .field("batch_size", &self.inner.batch_size)
            .field("lease", &self.inner.lease)
            .field("concurrency", &self.inner.concurrency)
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// A `std` duration as a chrono one (the longest chrono holds, for one past it).
pub(super) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Engine {
    /// The engine's clock reading, cut to whole microseconds: every storage keeps at least that precision, so
    /// times read back equal the times written.
    pub fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound as _;
        self.inner.clock.now().trunc_subsecs(6)
    }

    /// Deliveries claimed per pass.
    pub fn batch_size(&self) -> usize {
        self.inner.batch_size
    }

    /// Registers (replaces) a tenant's workflows. Every engine sharing a storage must hold the same workflows:
    /// credentials and signing secrets are read from them when a delivery is sent, never stored.
    ///
    /// Fails, registering nothing, when an action's [`timeout`](crate::WebhookAction::timeout) plus
    /// [`LEASE_MARGIN`](crate::engine::LEASE_MARGIN) does not fit in the engine's
    /// [lease](crate::EngineBuilder::lease): such a request could outlive its claim and be sent twice. A pass
    /// claims only as many deliveries as it can send within their lease at the longest timeout of the client and
    /// every registered action.
    pub fn set_workflows(&self, tenant: impl Into<String>, workflows: WorkflowSet) -> Result<(), RegisterError> {
        let tenant = tenant.into();
        let lease = self.inner.lease;
        for workflow in workflows.workflows() {
            for action in workflow.actions() {
                match action.timeout() {
                    Some(timeout) if lease < timeout.saturating_add(LEASE_MARGIN) => {
                        return Err(RegisterError::LeaseTooShort {
                            tenant,
                            workflow: workflow.id().to_owned(),
                            action: action.title().to_owned(),
                            timeout,
                            lease,
                        });
                    }
                    _ => {}
                }
            }
        }
        let mut all = self.inner.workflows.write().unwrap_or_else(PoisonError::into_inner);
        all.insert(tenant, Arc::new(workflows));
        // Under the write lock, so that the window always matches the workflows registered last.
        let longest = self.inner.client_timeout.map(|client| {
            let actions = all.values().flat_map(|set| set.workflows()).flat_map(|w| w.actions());
            actions.filter_map(|action| action.timeout()).fold(client, Duration::max)
        });
        let window = claim_window(self.inner.concurrency, lease, longest);
        self.inner.claim_window.store(window, Ordering::Relaxed);
        Ok(())
    }

    /// The most deliveries a pass may hold claimed and unfinished (see `Inner::claim_window`).
    pub(super) fn claim_window(&self) -> usize {
        self.inner.claim_window.load(Ordering::Relaxed)
    }

    /// A tenant's registered workflows.
    pub fn workflows(&self, tenant: &str) -> Option<Arc<WorkflowSet>> {
        let all = self.inner.workflows.read().unwrap_or_else(PoisonError::into_inner);
        all.get(tenant).cloned()
    }

    /// Completes once work is queued after the call: a new event's deliveries or a redelivery, by this engine
    /// (or a clone of it), or by another engine sharing the storage when the storage hears of it
    /// ([`Storage::queued_elsewhere`](crate::Storage::queued_elsewhere): PostgreSQL does, with `LISTEN`; the
    /// embedded storages have no other engine to hear). [`Worker`](crate::Worker) waits on it beside its poll
    /// timer, so a save is sent at once; a host's own worker loop can do the same.
    pub fn work_queued(&self) -> WorkQueued {
        WorkQueued { here: self.inner.wake.next(), elsewhere: self.inner.storage.queued_elsewhere() }
    }

    /// Wakes this engine's workers as if it had queued work: for deliveries a host queued in its own transaction
    /// (call it after the commit). PostgreSQL wakes every engine on its own when the transaction commits.
    pub fn notify_workers(&self) {
        self.inner.wake.notify();
    }

    /// Every tenant with registered workflows.
    pub(super) fn tenants(&self) -> Vec<(String, Arc<WorkflowSet>)> {
        let all = self.inner.workflows.read().unwrap_or_else(PoisonError::into_inner);
        all.iter().map(|(t, w)| (t.clone(), w.clone())).collect()
    }

    /// A tenant's daily allowance under the engine's quota policy (`None`: unlimited).
    pub(super) fn allowance(&self, info: &TenantInfo) -> Option<u64> {
        self.inner.quota.edition(info.edition).map(|edition| edition.daily_allowance(info.licensed_users))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MockHttp, RecordingMailer, StaticDirectory};
    use crate::MemoryStorage;

    /// A client stating a 30 s request timeout.
    struct Timed;

    #[async_trait::async_trait]
    impl HttpClient for Timed {
        async fn send(
            &self,
            _: http::Request<bytes::Bytes>,
        ) -> Result<http::Response<bytes::Bytes>, crate::ports::HttpError> {
            Ok(http::Response::new(bytes::Bytes::new()))
        }
        fn request_timeout(&self) -> Option<Duration> {
            Some(Duration::from_secs(30))
        }
    }

    fn engine(http: Arc<dyn HttpClient>) -> Engine {
        Engine::builder()
            .storage(Arc::new(MemoryStorage::new()))
            .http(http)
            .mailer(Arc::new(RecordingMailer::new()))
            .directory(Arc::new(StaticDirectory::new()))
            .lease(Duration::from_secs(330))
            .concurrency(4)
            .build()
            .unwrap()
    }

    fn with_timeout(seconds: Option<u64>) -> WorkflowSet {
        let timeout = seconds.map(|s| format!(r#", "timeout_seconds": {s}"#)).unwrap_or_default();
        WorkflowSet::from_json(&format!(
            r#"[{{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{{"title": "t",
            "url": "https://r.example/h", "content_type": "JSON"{timeout}}}]}}]"#
        ))
        .unwrap()
    }

    #[test]
    fn the_claim_window_follows_the_longest_timeout_registered() {
        let engine = engine(Arc::new(Timed));
        assert_eq!(engine.claim_window(), 40, "300 s of 30 s requests: ten rounds of 4");
        engine.set_workflows("acme", with_timeout(Some(10))).unwrap();
        assert_eq!(engine.claim_window(), 40, "a shorter action timeout does not widen it");
        engine.set_workflows("beta", with_timeout(Some(100))).unwrap();
        assert_eq!(engine.claim_window(), 12, "three rounds of 100 s");
        engine.set_workflows("acme", with_timeout(Some(300))).unwrap();
        assert_eq!(engine.claim_window(), 4, "one round of 300 s");
        engine.set_workflows("acme", with_timeout(None)).unwrap();
        assert_eq!(engine.claim_window(), 12, "replaced: beta's 100 s is the longest again");

        let unstated = self::engine(Arc::new(MockHttp::new_ok()));
        unstated.set_workflows("acme", with_timeout(Some(10))).unwrap();
        assert_eq!(unstated.claim_window(), 4, "a client without a stated timeout: one round, whatever the actions");
    }
}
