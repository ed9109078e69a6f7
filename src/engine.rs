//! The engine: where the pure parts (workflows, encoders, retry, quota) meet the host's ports.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::action::{redact_url, Auth, WebhookAction};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, LogQuery, RESPONSE_SNIPPET_MAX};
use crate::ports::{
    Claim, ClaimToken, Clock, Completion, Directory, DirectoryError, Email, HttpClient, HttpError, HttpErrorKind,
    Mailer, Notification, NotificationUpdate, Storage, StorageError, SystemClock, TenantInfo, User,
};
use crate::quota::{next_day_start, quota_day, QuotaPolicy, Usage};
use crate::record::{Change, RecordEvent};
use crate::retry::{self, AttemptOutcome, RetrySchedule, Transition};
use crate::workflow::{Trigger, Workflow, WorkflowSet};

/// Why an engine call failed. Nothing already accepted is lost: a failed call can be repeated.
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

/// A request the engine would send, as [`preview`] shows it: the `Authorization` value redacted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewRequest {
    /// The workflow's id.
    pub workflow: String,
    /// The action's title.
    pub action: String,
    /// `POST` or `PUT`.
    pub method: String,
    /// The URL.
    pub url: String,
    /// The headers, `Authorization` redacted.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The encoded body.
    pub body: String,
}

/// The requests an event would send under these workflows, without storing or sending anything (a dry run).
/// `once` workflows are shown as if they had not fired yet. `now` is the tenant's local time.
pub fn preview(workflows: &WorkflowSet, event: &RecordEvent, now: DateTime<chrono_tz::Tz>) -> Vec<PreviewRequest> {
    workflows
        .matching(event, now)
        .filter(|w| event.workflow.as_deref().is_none_or(|only| only == w.id()))
        .flat_map(|workflow| {
            workflow.actions().iter().map(move |action| {
                let payload = action.render(&event.fields);
                let id = DeliveryId::new();
                let headers =
                    request_headers(action, payload.content_type_header(), id, now.timestamp(), payload.body())
                        .into_iter()
                        .map(|(name, value)| {
                            let value = if name == AUTHORIZATION {
                                "Basic [redacted]".to_owned()
                            } else {
                                value.to_str().unwrap_or_default().to_owned()
                            };
                            (name.as_str().to_owned(), value)
                        })
                        .collect();
                PreviewRequest {
                    workflow: workflow.id().to_owned(),
                    action: action.title().to_owned(),
                    method: action.method().as_str().to_owned(),
                    url: redact_url(action.url()),
                    headers,
                    body: payload.body_text().to_owned(),
                }
            })
        })
        .collect()
}

/// The headers of one attempt: content type, Standard Webhooks id/timestamp/signature, and Basic authorization.
fn request_headers(
    action: &WebhookAction,
    content_type: &'static str,
    id: DeliveryId,
    timestamp: i64,
    body: &[u8],
) -> Vec<(HeaderName, HeaderValue)> {
    let id_text = id.to_string();
    let mut headers = vec![
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (HeaderName::from_static("webhook-id"), header_value(&id_text)),
        (HeaderName::from_static("webhook-timestamp"), header_value(&timestamp.to_string())),
    ];
    if let Some(secret) = action.signing_secret() {
        if let Ok(key) = crate::signature::decode_secret(secret) {
            let signature = crate::signature::sign(&key, &id_text, timestamp, body);
            headers.push((HeaderName::from_static("webhook-signature"), header_value(&signature)));
        }
    }
    if let Auth::Basic { username, password } = action.auth() {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
        if let Ok(mut value) = HeaderValue::from_str(&format!("Basic {token}")) {
            value.set_sensitive(true);
            headers.push((AUTHORIZATION, value));
        }
    }
    headers
}

fn header_value(text: &str) -> HeaderValue {
    // Ids, timestamps and base64 signatures are ASCII; an empty value is the harmless fallback.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
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
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`]: storage, HTTP client, mailer and directory are required; the clock defaults to the
/// system clock, the retry schedule to 1 h/2 h/4 h, the quota policy to the directory's editions.
#[derive(Default)]
pub struct EngineBuilder {
    storage: Option<Arc<dyn Storage>>,
    http: Option<Arc<dyn HttpClient>>,
    mailer: Option<Arc<dyn Mailer>>,
    directory: Option<Arc<dyn Directory>>,
    clock: Option<Arc<dyn Clock>>,
    retry: RetrySchedule,
    quota: QuotaPolicy,
    batch_size: Option<usize>,
    lease: Option<Duration>,
    concurrency: Option<usize>,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder").field("retry", &self.retry).field("quota", &self.quota).finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The storage (required).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }
    /// The HTTP client (required).
    pub fn http(mut self, http: Arc<dyn HttpClient>) -> Self {
        self.http = Some(http);
        self
    }
    /// The mailer for failure notifications (required).
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }
    /// The host's users and tenants (required).
    pub fn directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = Some(directory);
        self
    }
    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
    /// The retry schedule (default: 1 h, 2 h, 4 h).
    pub fn retry_schedule(mut self, schedule: RetrySchedule) -> Self {
        self.retry = schedule;
        self
    }
    /// The quota policy (default: each tenant's edition from the directory).
    pub fn quota_policy(mut self, policy: QuotaPolicy) -> Self {
        self.quota = policy;
        self
    }
    /// Deliveries claimed per pass (default 100).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = Some(size);
        self
    }
    /// How long a claim holds a delivery before another worker may take it (default 5 minutes). It must be
    /// longer than the HTTP client's total timeout, or a slow request may be sent twice.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }
    /// Requests in flight at once within a pass (default 16).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// Builds the engine; fails when a required part is missing or a number is zero.
    pub fn build(self) -> Result<Engine, BuildError> {
        let missing = |what: &str, call: &str| BuildError(format!("{what} is missing: call EngineBuilder::{call}"));
        let batch_size = self.batch_size.unwrap_or(100);
        let concurrency = self.concurrency.unwrap_or(16);
        let lease = self.lease.unwrap_or(Duration::from_secs(300));
        if batch_size == 0 || concurrency == 0 || lease.is_zero() {
            return Err(BuildError("batch_size, concurrency and lease must be more than zero".to_owned()));
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                storage: self.storage.ok_or_else(|| missing("the storage", "storage"))?,
                http: self.http.ok_or_else(|| missing("the HTTP client", "http"))?,
                mailer: self.mailer.ok_or_else(|| missing("the mailer", "mailer"))?,
                directory: self.directory.ok_or_else(|| missing("the directory", "directory"))?,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                retry: self.retry,
                quota: self.quota,
                batch_size,
                lease,
                concurrency,
                workflows: RwLock::new(HashMap::new()),
            }),
        })
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Text for the log: NUL cannot be stored by every database (PostgreSQL text refuses it), so it becomes U+FFFD.
fn loggable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// The start of a response body, cut at a character boundary, for the log.
fn snippet(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let cut = &body[..body.len().min(RESPONSE_SNIPPET_MAX)];
    let text = match std::str::from_utf8(cut) {
        Ok(text) => text.to_owned(),
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&cut[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(cut).into_owned(),
    };
    Some(loggable(text))
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
        for event in events {
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
                if workflow.trigger() == &Trigger::Once
                    && !self.inner.storage.mark_fired(&event.tenant, workflow.id(), &event.record_id).await?
                {
                    continue;
                }
                render(event, workflow, now, &mut deliveries, &mut entries);
            }
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

    /// One worker pass: claims a batch of due deliveries, checks each tenant's daily quota, sends what the quota
    /// allows (up to `concurrency` at once), records every attempt, schedules retries, fails what is exhausted,
    /// and sends due failure notifications.
    pub async fn run_due(&self) -> Result<RunReport, EngineError> {
        let mut report = RunReport::default();
        let now = self.now();
        let claim = self.claim(now);
        let claimed = self.inner.storage.claim_due(&claim).await?;
        report.claimed = claimed.len();
        if !claimed.is_empty() {
            let (to_send, mut completions) = self.apply_quota(claimed, claim.token, now).await?;
            report.deferred = completions.len();
            report.sent = to_send.len();
            let sent: Vec<Completion> = stream::iter(to_send)
                .map(|delivery| self.traced_attempt(delivery, claim.token))
                .buffer_unordered(self.inner.concurrency)
                .collect()
                .await;
            for completion in &sent {
                match completion.status {
                    DeliveryStatus::Success => report.succeeded += 1,
                    DeliveryStatus::Failed => report.failed += 1,
                    _ => report.retried += 1,
                }
            }
            completions.extend(sent);
            report.lost = self.inner.storage.finish(completions).await?.len();
        }
        report.emails_sent = self.send_notifications().await?;
        Ok(report)
    }

    /// A claim of one batch, leased from `now`.
    fn claim(&self, now: DateTime<Utc>) -> Claim {
        Claim {
            now,
            limit: self.inner.batch_size,
            lease_until: now + chrono_duration(self.inner.lease),
            token: ClaimToken::new(),
        }
    }

    /// Splits claimed deliveries into those the quota lets through and completions that put the rest back.
    async fn apply_quota(
        &self,
        claimed: Vec<Delivery>,
        token: ClaimToken,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Delivery>, Vec<Completion>), EngineError> {
        let mut by_tenant: HashMap<String, Vec<Delivery>> = HashMap::new();
        for delivery in claimed {
            by_tenant.entry(delivery.tenant.clone()).or_default().push(delivery);
        }
        let mut to_send = Vec::new();
        let mut put_back = Vec::new();
        for (tenant, deliveries) in by_tenant {
            let info = match self.inner.directory.tenant(&tenant).await {
                Ok(info) => info,
                // Without limits there is nothing to protect: send, uncounted.
                Err(_) if self.inner.quota == QuotaPolicy::Unlimited => {
                    to_send.extend(deliveries);
                    continue;
                }
                Err(e) => {
                    let retry_at = now + chrono::Duration::minutes(1);
                    let why = format!("deferred: {e}");
                    put_back.extend(deliveries.iter().map(|d| release(d, token, now, retry_at, &why)));
                    continue;
                }
            };
            // Calls are counted even without a limit, so `usage` always tells.
            let allowance = self.allowance(&info).unwrap_or(u64::MAX);
            let day = quota_day(now, info.time_zone);
            let wanted = deliveries.len() as u64;
            let granted = self.inner.storage.acquire_quota(&tenant, day, allowance, wanted).await?;
            let granted = usize::try_from(granted).unwrap_or(usize::MAX).min(deliveries.len());
            let mut deliveries = deliveries;
            let over = deliveries.split_off(granted);
            to_send.extend(deliveries);
            let next_day = next_day_start(now, info.time_zone);
            put_back.extend(over.iter().map(|d| release(d, token, now, next_day, "deferred: daily quota reached")));
        }
        Ok((to_send, put_back))
    }

    fn allowance(&self, info: &TenantInfo) -> Option<u64> {
        self.inner.quota.edition(info.edition).map(|edition| edition.daily_allowance(info.licensed_users))
    }

    #[cfg(feature = "tokio")]
    async fn traced_attempt(&self, delivery: Delivery, token: ClaimToken) -> Completion {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            "delivery",
            id = %delivery.id,
            tenant = %delivery.tenant,
            workflow = %delivery.workflow,
            action = %delivery.action,
            attempt = delivery.attempts + 1,
        );
        self.attempt(delivery, token).instrument(span).await
    }

    #[cfg(not(feature = "tokio"))]
    async fn traced_attempt(&self, delivery: Delivery, token: ClaimToken) -> Completion {
        self.attempt(delivery, token).await
    }

    /// Sends one claimed delivery and works out what follows.
    async fn attempt(&self, delivery: Delivery, token: ClaimToken) -> Completion {
        let attempt = delivery.attempts.saturating_add(1);
        let sent_at = self.now();
        // The action is borrowed from the registered workflows (never cloned): only its credentials and signing
        // secret are read, and the request is built before anything is awaited.
        let request = self
            .workflows(&delivery.tenant)
            .as_deref()
            .and_then(|set| set.get(&delivery.workflow))
            .and_then(|workflow| workflow.action(&delivery.action))
            .ok_or_else(|| {
                HttpError::new(
                    HttpErrorKind::InvalidRequest,
                    format!(
                        "workflow \"{}\" has no action \"{}\" any more; the delivery was not sent",
                        delivery.workflow, delivery.action
                    ),
                )
            })
            .and_then(|action| self.request(&delivery, action, sent_at));
        let (outcome, body) = match request {
            Err(e) => (AttemptOutcome::Error(e), None),
            Ok(request) => match self.inner.http.send(request).await {
                Err(e) => (AttemptOutcome::Error(e), None),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .filter(|_| status == 429 || status == 503)
                        .and_then(|v| retry::parse_retry_after(v, self.now()));
                    (AttemptOutcome::Response { status, retry_after }, snippet(response.body()))
                }
            },
        };
        self.complete(delivery, token, attempt, sent_at, outcome, body)
    }

    fn complete(
        &self,
        delivery: Delivery,
        token: ClaimToken,
        attempt: u32,
        sent_at: DateTime<Utc>,
        outcome: AttemptOutcome,
        response_snippet: Option<String>,
    ) -> Completion {
        let finished_at = self.now();
        let max = self.inner.retry.max_attempts();
        let transition = retry::next(&self.inner.retry, attempt, &outcome, finished_at);
        let mut dispatched = LogEntry::about(
            &delivery,
            DeliveryStatus::Dispatched,
            sent_at,
            format!("attempt {attempt} of {max} dispatched"),
        );
        dispatched.attempt = attempt;
        let (status, next_attempt_at, message) = match transition {
            Transition::Succeeded => (DeliveryStatus::Success, None, format!("attempt {attempt} delivered")),
            Transition::RetryAt(at) => (
                DeliveryStatus::Queued,
                Some(at),
                format!("attempt {attempt} failed; retry {attempt} of {} scheduled", max - 1),
            ),
            Transition::GaveUp if attempt >= max => (
                DeliveryStatus::Failed,
                None,
                format!("attempt {attempt} failed; no retries left, owner and admins notified"),
            ),
            Transition::GaveUp => (
                DeliveryStatus::Failed,
                None,
                format!("attempt {attempt} failed permanently; owner and admins notified"),
            ),
        };
        let (http_status, error) = match &outcome {
            AttemptOutcome::Response { status, .. } if (200..300).contains(status) => (Some(*status), None),
            AttemptOutcome::Response { status, .. } => (Some(*status), Some(describe_status(*status))),
            AttemptOutcome::Error(e) => (None, Some(loggable(e.to_string()))),
        };
        let mut result = LogEntry::about(&delivery, status, finished_at, message);
        result.attempt = attempt;
        result.http_status = http_status;
        result.response_snippet = response_snippet;
        result.error = error;
        result.next_attempt_at = next_attempt_at;
        let notification = (status == DeliveryStatus::Failed).then(|| Notification {
            delivery_id: delivery.id,
            tenant: delivery.tenant.clone(),
            owner: delivery.owner.clone(),
            created_at: finished_at,
            next_attempt_at: finished_at,
            attempts: 0,
            sent_to: Vec::new(),
            last_error: None,
        });
        Completion {
            id: delivery.id,
            token,
            status,
            attempts: attempt,
            next_attempt_at,
            at: finished_at,
            entries: vec![dispatched, result],
            notification,
        }
    }

    fn request(
        &self,
        delivery: &Delivery,
        action: &WebhookAction,
        now: DateTime<Utc>,
    ) -> Result<http::Request<Bytes>, HttpError> {
        let mut builder = http::Request::builder().method(delivery.method.as_http()).uri(delivery.url.as_str());
        for (name, value) in
            request_headers(action, delivery.content_type.header_value(), delivery.id, now.timestamp(), &delivery.body)
        {
            builder = builder.header(name, value);
        }
        builder.body(delivery.body.clone()).map_err(|e| {
            HttpError::new(
                HttpErrorKind::InvalidRequest,
                format!("cannot build the request to {}: {e}", redact_url(&delivery.url)),
            )
        })
    }

    /// Sends due failure notifications: one email per recipient (the record owner when active, and every
    /// active admin, each once), remembering who has it so a mailer failure never emails anyone twice.
    async fn send_notifications(&self) -> Result<usize, EngineError> {
        let now = self.now();
        let claim = self.claim(now);
        let mut emails = 0;
        for notification in self.inner.storage.claim_notifications(&claim).await? {
            let attempts = notification.attempts.saturating_add(1);
            let mut sent_to = notification.sent_to.clone();
            let mut last_error = None;
            let mut done = false;
            match self.recipients(&notification).await {
                Err(e) => last_error = Some(e.to_string()),
                Ok(recipients) => {
                    let email_for = self.notification_email(&notification).await?;
                    let mut pending = false;
                    for user in recipients.iter().filter(|u| !notification.sent_to.contains(&u.id)) {
                        let email = Email {
                            to: user.email.clone(),
                            to_name: (!user.name.is_empty()).then(|| user.name.clone()),
                            subject: email_for.0.clone(),
                            body: email_for.1.clone(),
                        };
                        match self.inner.mailer.send(&email).await {
                            Ok(()) => {
                                emails += 1;
                                sent_to.push(user.id.clone());
                            }
                            Err(e) if e.is_permanent() => {
                                // Retrying cannot reach this address; do not try it forever.
                                last_error = Some(format!("{}: {e}", user.id));
                                sent_to.push(user.id.clone());
                            }
                            Err(e) => {
                                last_error = Some(format!("{}: {e}", user.id));
                                pending = true;
                            }
                        }
                    }
                    done = !pending;
                }
            }
            // Back off 2, 4, 8 ... minutes, at most an hour; the notification stays until everyone has it.
            let backoff = chrono::Duration::minutes(2i64.saturating_pow(attempts.min(6)).min(60));
            let update = NotificationUpdate {
                delivery_id: notification.delivery_id,
                token: claim.token,
                sent_to,
                done,
                attempts,
                next_attempt_at: now + backoff,
                last_error,
            };
            self.inner.storage.update_notification(update).await?;
        }
        Ok(emails)
    }

    /// The owner (when active) and every active admin, each once (by id and by address).
    async fn recipients(&self, notification: &Notification) -> Result<Vec<User>, DirectoryError> {
        let directory = &self.inner.directory;
        let mut users = Vec::new();
        if let Some(owner) = directory.user(&notification.tenant, &notification.owner).await? {
            users.push(owner);
        }
        users.extend(directory.active_admins(&notification.tenant).await?);
        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        users.retain(|u| {
            u.active
                && !u.email.trim().is_empty()
                && ids.insert(u.id.clone())
                && addresses.insert(u.email.trim().to_lowercase())
        });
        Ok(users)
    }

    async fn notification_email(&self, notification: &Notification) -> Result<(String, String), EngineError> {
        let storage = &self.inner.storage;
        let delivery = storage.delivery(&notification.tenant, notification.delivery_id).await?;
        let entries = storage
            .log(
                &LogQuery::tenant(notification.tenant.clone())
                    .delivery(notification.delivery_id)
                    .limit(LogQuery::MAX_LIMIT),
            )
            .await?;
        let (workflow, action, record, module, url) = match &delivery {
            Some(d) => {
                (d.workflow.as_str(), d.action.as_str(), d.record_id.as_str(), d.module.as_str(), redact_url(&d.url))
            }
            None => ("?", "?", "?", "?", String::from("?")),
        };
        let workflow_name = self
            .workflows(&notification.tenant)
            .and_then(|set| set.get(workflow).map(|w| w.name().to_owned()))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| workflow.to_owned());
        let subject = format!("Webhook failed: \"{action}\" of workflow \"{workflow_name}\"");
        let mut body = format!(
            "A webhook could not deliver its data after every retry.\n\n\
             Workflow: {workflow_name} ({workflow})\nAction:   {action}\nURL:      {url}\nRecord:   {module} {record}\n\
             Delivery: {}\n\nAttempts:\n",
            notification.delivery_id
        );
        let mut attempts: Vec<&LogEntry> =
            entries.iter().filter(|e| e.attempt > 0 && e.status != DeliveryStatus::Dispatched).collect();
        attempts.reverse();
        for entry in attempts {
            let what = match (&entry.error, entry.http_status) {
                (Some(error), _) => error.clone(),
                (None, Some(status)) => format!("HTTP {status}"),
                (None, None) => entry.message.clone(),
            };
            body.push_str(&format!("  {}. {}  {}\n", entry.attempt, entry.at.to_rfc3339(), what));
        }
        body.push_str("\nYou can redeliver it from the webhook log once the receiver is fixed.\n");
        Ok((subject, body))
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
    pub async fn redeliver(&self, tenant: &str, id: DeliveryId) -> Result<DeliveryId, EngineError> {
        let original = self
            .delivery(tenant, id)
            .await?
            .ok_or_else(|| EngineError::UnknownDelivery { tenant: tenant.to_owned(), id })?;
        if !original.status.is_settled() {
            return Err(EngineError::NotSettled { id, status: original.status });
        }
        let now = self.now();
        let copy = Delivery {
            id: DeliveryId::new(),
            status: DeliveryStatus::Queued,
            attempts: 0,
            next_attempt_at: Some(now),
            lease_expires_at: None,
            created_at: now,
            updated_at: now,
            redelivery_of: Some(original.id),
            ..original.clone()
        };
        let mut queued =
            LogEntry::about(&copy, DeliveryStatus::Queued, now, format!("redelivery of {} requested", original.id));
        queued.next_attempt_at = Some(now);
        let note = LogEntry::about(&original, original.status, now, format!("redelivered as {}", copy.id));
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

/// Renders each webhook of a matching workflow for an event, as queued deliveries with their log entries.
fn render(
    event: &RecordEvent,
    workflow: &Workflow,
    now: DateTime<Utc>,
    deliveries: &mut Vec<Delivery>,
    entries: &mut Vec<LogEntry>,
) {
    for action in workflow.actions() {
        let payload = action.render(&event.fields);
        let delivery = Delivery {
            id: DeliveryId::new(),
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
}

fn release(delivery: &Delivery, token: ClaimToken, now: DateTime<Utc>, until: DateTime<Utc>, why: &str) -> Completion {
    let mut entry = LogEntry::about(delivery, DeliveryStatus::Queued, now, why);
    entry.next_attempt_at = Some(until);
    Completion {
        id: delivery.id,
        token,
        status: DeliveryStatus::Queued,
        attempts: delivery.attempts,
        next_attempt_at: Some(until),
        at: now,
        entries: vec![entry],
        notification: None,
    }
}

fn describe_status(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    match status {
        300..=399 => format!("HTTP {status} {reason} (redirects are not followed)"),
        _ => format!("HTTP {status} {reason}").trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_capped_at_a_character_boundary() {
        let long = "é".repeat(RESPONSE_SNIPPET_MAX);
        let cut = snippet(long.as_bytes()).unwrap();
        assert!(cut.len() <= RESPONSE_SNIPPET_MAX && cut.len() >= RESPONSE_SNIPPET_MAX - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(snippet(b""), None);
        assert_eq!(snippet(b"a\0b").as_deref(), Some("a\u{FFFD}b"), "NUL is not stored");
    }

    #[test]
    fn statuses_are_described() {
        assert_eq!(describe_status(404), "HTTP 404 Not Found");
        assert!(describe_status(302).contains("redirects are not followed"));
        assert_eq!(describe_status(599), "HTTP 599");
    }
}
