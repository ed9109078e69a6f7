//! The engine: where the pure parts (workflows, encoders, retry, quota) meet the host's ports.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

mod builder;
mod notify;
mod pass;
mod redact;
mod wire;

pub use builder::{EngineBuilder, LEASE_MARGIN};
use wire::request_headers;
pub use wire::{preview, PreviewRequest};

use crate::action::{redact_url, Auth, WebhookAction};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery, RESPONSE_SNIPPET_MAX};
use crate::ports::{
    Claim, ClaimToken, Clock, Completion, Directory, DirectoryError, Email, HttpClient, HttpError, HttpErrorKind,
    Mailer, Notification, NotificationUpdate, QuotaRequest, Storage, StorageError, SystemClock, TenantInfo, User,
};
use crate::quota::{next_day_start, quota_day, QuotaPolicy, Usage};
use crate::record::{Change, RecordEvent};
use crate::retry::{self, AttemptOutcome, RetrySchedule, Transition};
use crate::workflow::{Trigger, Workflow, WorkflowSet};

/// Why an engine call failed. Nothing already accepted is lost. A call that failed with a transient error may
/// still have taken effect (its reply was lost): repeating [`Engine::on_event`] is safe for events with an
/// [`event_id`](RecordEvent::event_id) and repeating [`Engine::redeliver`] is always safe (neither queues anything
/// twice); an event without an id repeated after such an error is queued again, under new delivery ids.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The user directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The event lacks what the engine needs.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// No such workflow is registered for the tenant.
    #[error("tenant \"{tenant}\" has no workflow \"{workflow}\"; register it with Engine::set_workflows")]
    UnknownWorkflow {
        /// The tenant.
        tenant: String,
        /// The workflow id asked for.
        workflow: String,
    },
    /// `run_manual` on a workflow whose trigger is not `manual`.
    #[error("workflow \"{0}\" is not a manual workflow; only workflows with the \"manual\" trigger run on demand")]
    NotManual(String),
    /// No such delivery for the tenant.
    #[error("tenant \"{tenant}\" has no delivery {id}")]
    UnknownDelivery {
        /// The tenant.
        tenant: String,
        /// The delivery id.
        id: DeliveryId,
    },
    /// A webhook's body for this record would be larger than [`EngineBuilder::max_body_bytes`]; nothing of the
    /// event was queued.
    #[error("record \"{record_id}\" of tenant \"{tenant}\", workflow \"{workflow}\": {source}")]
    Render {
        /// The tenant.
        tenant: String,
        /// The workflow.
        workflow: String,
        /// The record.
        record_id: String,
        /// What went wrong.
        #[source]
        source: crate::action::RenderError,
    },
    /// A redelivery was asked for a delivery that is still queued or in flight.
    #[error("delivery {id} is {status}; only a Success or Failed delivery can be redelivered")]
    NotSettled {
        /// The delivery id.
        id: DeliveryId,
        /// Its status.
        status: DeliveryStatus,
    },
}

impl EngineError {
    /// Whether repeating the call later may succeed (storage or directory unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Storage(e) => e.is_transient(),
            EngineError::Directory(DirectoryError::Unavailable(_)) => true,
            _ => false,
        }
    }
}

/// The engine could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build the engine: {0}")]
pub struct BuildError(String);

/// A scheduled workflow that is due: select its records and feed each as an event with change `scheduled` and
/// `workflow` set to [`DueSchedule::workflow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSchedule {
    /// The tenant.
    pub tenant: String,
    /// The workflow's id.
    pub workflow: String,
    /// The workflow's module.
    pub module: String,
    /// The run that is due.
    pub due_at: DateTime<Utc>,
}

/// What one worker pass ([`Engine::run_due`]) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Deliveries claimed.
    pub claimed: usize,
    /// HTTP requests sent.
    pub sent: usize,
    /// Deliveries that succeeded.
    pub succeeded: usize,
    /// Deliveries queued again for a retry.
    pub retried: usize,
    /// Deliveries that failed for good.
    pub failed: usize,
    /// Deliveries put back unsent (daily quota reached, or the directory unavailable).
    pub deferred: usize,
    /// Deliveries whose claim another worker took over meanwhile (their results were dropped).
    pub lost: usize,
    /// Notification emails sent.
    pub emails_sent: usize,
}

impl RunReport {
    /// Adds another pass's counts to these.
    pub fn add(&mut self, pass: &RunReport) {
        self.claimed += pass.claimed;
        self.sent += pass.sent;
        self.succeeded += pass.succeeded;
        self.retried += pass.retried;
        self.failed += pass.failed;
        self.deferred += pass.deferred;
        self.lost += pass.lost;
        self.emails_sent += pass.emails_sent;
    }

    /// Whether the pass found nothing to do.
    pub fn is_idle(&self) -> bool {
        self.claimed == 0 && self.emails_sent == 0
    }
}

/// Delivers webhooks: evaluates events against the tenants' workflows, queues what matches, and runs worker
/// passes that send, retry, count quota, log and notify. Cheap to clone; clones share everything.
///
/// ```
/// use std::sync::Arc;
/// use crm_webhooks::testing::{ManualClock, MemoryStorage, MockHttp, RecordingMailer, StaticDirectory};
/// use crm_webhooks::{Engine, RecordEvent, Change, WorkflowSet, DeliveryStatus, LogQuery};
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
///     "content_type": "JSON", "parameters": [{"name": "email", "field": "email"}]}]}]}"#)?);
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
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    http: Arc<dyn HttpClient>,
    mailer: Arc<dyn Mailer>,
    directory: Arc<dyn Directory>,
    clock: Arc<dyn Clock>,
    retry: RetrySchedule,
    quota: QuotaPolicy,
    batch_size: usize,
    lease: Duration,
    concurrency: usize,
    /// The most deliveries claimed and not yet finished at once: as many as the lease covers (see `run_due`).
    claim_window: usize,
    max_body_bytes: usize,
    workflows: RwLock<HashMap<String, Arc<WorkflowSet>>>,
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

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

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

    /// Runs passes until one finds nothing due now (retries scheduled for later stay queued), at most
    /// `max_passes` times; returns the totals.
    pub async fn run_until_idle(&self, max_passes: usize) -> Result<RunReport, EngineError> {
        let mut totals = RunReport::default();
        for _ in 0..max_passes {
            let pass = self.run_due().await?;
            totals.add(&pass);
            if pass.is_idle() {
                break;
            }
        }
        Ok(totals)
    }

    /// Registers (replaces) a tenant's workflows. Every engine sharing a storage must hold the same workflows:
    /// credentials and signing secrets are read from them when a delivery is sent, never stored.
    pub fn set_workflows(&self, tenant: impl Into<String>, workflows: WorkflowSet) {
        let mut all = self.inner.workflows.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.insert(tenant.into(), Arc::new(workflows));
    }

    /// A tenant's registered workflows.
    pub fn workflows(&self, tenant: &str) -> Option<Arc<WorkflowSet>> {
        let all = self.inner.workflows.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.get(tenant).cloned()
    }

    fn tenants(&self) -> Vec<(String, Arc<WorkflowSet>)> {
        let all = self.inner.workflows.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.iter().map(|(t, w)| (t.clone(), w.clone())).collect()
    }

    /// Evaluates an event against its tenant's workflows of its module and queues one delivery per webhook of
    /// each matching workflow, body rendered now. Returns the new deliveries' ids (empty when nothing matched).
    pub async fn on_event(&self, event: &RecordEvent) -> Result<Vec<DeliveryId>, EngineError> {
        self.on_events(std::slice::from_ref(event)).await
    }

    /// Like [`Engine::on_event`] for many events (a bulk import, the records of a due schedule), stored in one
    /// storage call: all of them are queued, or none. Events are checked first; an invalid one fails the call
    /// before anything is stored.
    pub async fn on_events(&self, events: &[RecordEvent]) -> Result<Vec<DeliveryId>, EngineError> {
        for event in events {
            for (name, value) in [("tenant", &event.tenant), ("module", &event.module), ("record_id", &event.record_id)]
            {
                if value.trim().is_empty() {
                    return Err(EngineError::InvalidEvent(format!(
                        "\"{name}\" is empty (record \"{}\" of tenant \"{}\")",
                        event.record_id, event.tenant
                    )));
                }
            }
        }
        let now = self.now();
        let mut zones = HashMap::new();
        let mut deliveries = Vec::new();
        let mut entries = Vec::new();
        let mut seen_event_ids = HashSet::new();
        let mut matched = Vec::new();
        for event in events {
            // The same event twice in one call is one event.
            if let Some(id) = &event.event_id {
                if !seen_event_ids.insert((event.tenant.as_str(), id.as_str())) {
                    continue;
                }
            }
            let Some(workflows) = self.workflows(&event.tenant) else { continue };
            let tz = match zones.get(&event.tenant) {
                Some(tz) => *tz,
                None => {
                    let tz = self.inner.directory.tenant(&event.tenant).await?.time_zone;
                    zones.insert(event.tenant.clone(), tz);
                    tz
                }
            };
            for workflow in workflows.matching(event, now.with_timezone(&tz)) {
                if event.workflow.as_deref().is_some_and(|only| only != workflow.id()) {
                    continue;
                }
                let (rendered, queued) = render(event, workflow, now, self.inner.max_body_bytes)?;
                let once = workflow.trigger() == &Trigger::Once;
                matched.push((event, workflow.id().to_owned(), once, rendered, queued));
            }
        }
        // Every body is rendered before any `once` mark is taken, so a body over the limit uses up no firing.
        for (event, workflow, once, mut rendered, mut queued) in matched {
            if once && !self.inner.storage.mark_fired(&event.tenant, &workflow, &event.record_id).await? {
                continue;
            }
            deliveries.append(&mut rendered);
            entries.append(&mut queued);
        }
        let ids = deliveries.iter().map(|d| d.id).collect();
        if !deliveries.is_empty() {
            self.inner.storage.enqueue(deliveries, entries).await?;
        }
        Ok(ids)
    }

    /// Runs a manual workflow on a record (when its entry criteria hold). The event's change is taken as
    /// `manual`.
    pub async fn run_manual(&self, workflow: &str, event: &RecordEvent) -> Result<Vec<DeliveryId>, EngineError> {
        let set = self.workflows(&event.tenant);
        let found = set.as_ref().and_then(|s| s.get(workflow)).ok_or_else(|| EngineError::UnknownWorkflow {
            tenant: event.tenant.clone(),
            workflow: workflow.to_owned(),
        })?;
        if found.trigger() != &Trigger::Manual {
            return Err(EngineError::NotManual(workflow.to_owned()));
        }
        let mut event = event.clone();
        event.change = Change::Manual;
        event.workflow = Some(workflow.to_owned());
        self.on_event(&event).await
    }

    /// The scheduled workflows due at `now`, each handed out once across every engine sharing the storage (the
    /// stored next run is advanced with compare-and-set). A workflow seen for the first time is not due: its
    /// first run is the next one after `now`.
    pub async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<DueSchedule>, EngineError> {
        let mut due = Vec::new();
        for (tenant, workflows) in self.tenants() {
            let scheduled: Vec<&Workflow> = workflows
                .workflows()
                .iter()
                .filter(|w| w.is_active() && matches!(w.trigger(), Trigger::Schedule(_)))
                .collect();
            if scheduled.is_empty() {
                continue;
            }
            let tz = self.inner.directory.tenant(&tenant).await?.time_zone;
            for workflow in scheduled {
                let storage = &self.inner.storage;
                match storage.next_run(&tenant, workflow.id()).await? {
                    None => {
                        if let Some(first) = workflow.next_run_after(now, tz) {
                            storage.set_next_run(&tenant, workflow.id(), None, Some(first)).await?;
                        }
                    }
                    Some(at) if at <= now => {
                        let next = workflow.next_run_after(now, tz);
                        if storage.set_next_run(&tenant, workflow.id(), Some(at), next).await? {
                            due.push(DueSchedule {
                                tenant: tenant.clone(),
                                workflow: workflow.id().to_owned(),
                                module: workflow.module().to_owned(),
                                due_at: at,
                            });
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(due)
    }

    /// The delivery log, filtered and paged (newest first; at most [`LogQuery::MAX_LIMIT`] entries a page).
    pub async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, EngineError> {
        if query.limit > LogQuery::MAX_LIMIT {
            let capped = LogQuery { limit: LogQuery::MAX_LIMIT, ..query.clone() };
            return Ok(self.inner.storage.log(&capped).await?);
        }
        Ok(self.inner.storage.log(query).await?)
    }

    /// One delivery, with the exact body it sends.
    pub async fn delivery(&self, tenant: &str, id: DeliveryId) -> Result<Option<Delivery>, EngineError> {
        Ok(self.inner.storage.delivery(tenant, id).await?)
    }

    /// Queues a settled (`Success` or `Failed`) delivery again as a new delivery with its own attempt chain
    /// (same body, URL and action; a new id, so receivers that deduplicate still take it). Both deliveries' logs
    /// say so. Returns the new id.
    ///
    /// Safe to repeat: the new id is derived from the delivery it copies, so while that redelivery is queued or in
    /// flight, asking again returns its id and queues nothing. Once it has settled, asking again redelivers it in
    /// turn (the log then shows a chain: `redelivered as ...`).
    pub async fn redeliver(&self, tenant: &str, id: DeliveryId) -> Result<DeliveryId, EngineError> {
        let mut current = self
            .delivery(tenant, id)
            .await?
            .ok_or_else(|| EngineError::UnknownDelivery { tenant: tenant.to_owned(), id })?;
        if !current.status.is_settled() {
            return Err(EngineError::NotSettled { id, status: current.status });
        }
        loop {
            let next_id = DeliveryId::derived(&["redelivery", tenant, &current.id.to_string()]);
            match self.delivery(tenant, next_id).await? {
                Some(pending) if !pending.status.is_settled() => return Ok(pending.id),
                Some(settled) => current = settled,
                None => break,
            }
        }
        let now = self.now();
        let copy = Delivery {
            id: DeliveryId::derived(&["redelivery", tenant, &current.id.to_string()]),
            status: DeliveryStatus::Queued,
            attempts: 0,
            next_attempt_at: Some(now),
            lease_expires_at: None,
            created_at: now,
            updated_at: now,
            redelivery_of: Some(current.id),
            ..current.clone()
        };
        let mut queued =
            LogEntry::about(&copy, DeliveryStatus::Queued, now, format!("redelivery of {} requested", current.id));
        queued.next_attempt_at = Some(now);
        let note = LogEntry::about(&current, current.status, now, format!("redelivered as {}", copy.id));
        let new_id = copy.id;
        self.inner.storage.enqueue(vec![copy], vec![note, queued]).await?;
        Ok(new_id)
    }

    /// Removes settled deliveries (and their log entries) last changed more than `older_than` ago. Deliveries
    /// that are queued, in flight, or have an unsent notification are kept. Returns how many were removed.
    pub async fn prune_log(&self, older_than: Duration) -> Result<u64, EngineError> {
        let cutoff = self.now() - chrono_duration(older_than);
        Ok(self.inner.storage.prune(cutoff).await?)
    }

    /// A tenant's usage today (its calendar day): calls counted and the daily allowance.
    pub async fn usage(&self, tenant: &str) -> Result<Usage, EngineError> {
        self.usage_on(tenant, None).await
    }

    /// A tenant's usage on one of its calendar days (`None`: today in the tenant's time zone). The allowance is
    /// today's (the directory knows the current licence, not past ones).
    pub async fn usage_on(&self, tenant: &str, day: Option<chrono::NaiveDate>) -> Result<Usage, EngineError> {
        let info = self.inner.directory.tenant(tenant).await?;
        let day = day.unwrap_or_else(|| quota_day(self.now(), info.time_zone));
        let used = self.inner.storage.quota_used(tenant, day).await?;
        Ok(Usage { day, used, allowed: self.allowance(&info) })
    }

    /// When the next delivery is due (or the next lease runs out), for a worker deciding how long to sleep.
    pub async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, EngineError> {
        Ok(self.inner.storage.next_due_at().await?)
    }
}

/// Renders each webhook of a matching workflow for an event, as queued deliveries with their log entries. An
/// event with an [`event_id`](RecordEvent::event_id) gets delivery ids derived from it, so a repeat of the event
/// is stored as the same deliveries (which storage then skips).
fn render(
    event: &RecordEvent,
    workflow: &Workflow,
    now: DateTime<Utc>,
    max_body_bytes: usize,
) -> Result<(Vec<Delivery>, Vec<LogEntry>), EngineError> {
    let mut deliveries = Vec::with_capacity(workflow.actions().len());
    let mut entries = Vec::with_capacity(workflow.actions().len());
    for action in workflow.actions() {
        let payload = action.try_render(&event.fields, max_body_bytes).map_err(|source| EngineError::Render {
            tenant: event.tenant.clone(),
            workflow: workflow.id().to_owned(),
            record_id: event.record_id.clone(),
            source,
        })?;
        let id = match &event.event_id {
            Some(event_id) => DeliveryId::derived(&["event", &event.tenant, event_id, workflow.id(), action.title()]),
            None => DeliveryId::new(),
        };
        let delivery = Delivery {
            id,
            tenant: event.tenant.clone(),
            workflow: workflow.id().to_owned(),
            action: action.title().to_owned(),
            module: event.module.clone(),
            record_id: event.record_id.clone(),
            owner: event.owner.clone(),
            method: action.method(),
            url: action.url().to_owned(),
            content_type: action.content_type(),
            body: payload.into_body(),
            status: DeliveryStatus::Queued,
            attempts: 0,
            next_attempt_at: Some(now),
            lease_expires_at: None,
            created_at: now,
            updated_at: now,
            redelivery_of: None,
        };
        let change = match event.change {
            Change::Created => "creation",
            Change::Updated => "update",
            Change::Scheduled => "scheduled run",
            Change::Manual => "manual run",
        };
        let mut entry = LogEntry::about(&delivery, DeliveryStatus::Queued, now, format!("queued by {change}"));
        entry.next_attempt_at = Some(now);
        entries.push(entry);
        deliveries.push(delivery);
    }
    Ok((deliveries, entries))
}
