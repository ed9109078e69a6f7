//! What the pages and the API show, read from the engine for one tenant: its workflows, a page of the log, one
//! delivery, its usage. The HTML and the JSON are two renderings of these same views.

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;

use crate::delivery::{DeliveryId, DeliveryStatus, LogEntry, LogQuery};
use crate::engine::Engine;
use crate::ports::EndpointHealth;
use crate::quota::Usage;
use crate::workflow::redact_url;

use super::error::AdminError;
use super::explain;
use super::params::{LogFilters, PER_PAGE};

/// Days the usage chart shows, today included.
pub(crate) const CHART_DAYS: u32 = 30;

#[derive(Debug, Serialize)]
pub(crate) struct WorkflowView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) module: String,
    pub(crate) active: bool,
    pub(crate) actions: Vec<ActionView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ActionView {
    pub(crate) title: String,
    pub(crate) method: &'static str,
    /// Without any `user:password@` part.
    pub(crate) url: String,
    pub(crate) content_type: &'static str,
    /// Its receiver's stored health (failing, warned or paused); `None` when healthy with no failure.
    pub(crate) health: Option<EndpointHealth>,
}

/// A log entry with the time its attempt took (a result entry whose `Dispatched` entry is known).
#[derive(Debug, Serialize)]
pub(crate) struct EntryView {
    #[serde(flatten)]
    pub(crate) entry: LogEntry,
    pub(crate) duration_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LogPage {
    pub(crate) entries: Vec<EntryView>,
    pub(crate) page: usize,
    pub(crate) per_page: usize,
    /// The next page (older entries), when there is one.
    pub(crate) older: Option<usize>,
    /// The previous page (newer entries), when there is one.
    pub(crate) newer: Option<usize>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DeliveryView {
    pub(crate) id: DeliveryId,
    pub(crate) status: DeliveryStatus,
    pub(crate) workflow: String,
    pub(crate) action: String,
    pub(crate) module: String,
    pub(crate) record_id: String,
    pub(crate) method: &'static str,
    pub(crate) url: String,
    pub(crate) content_type: &'static str,
    /// The body, byte for byte as every attempt sends it (bodies are UTF-8).
    pub(crate) body: String,
    pub(crate) attempts: u32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) next_attempt_at: Option<DateTime<Utc>>,
    pub(crate) redelivery_of: Option<DeliveryId>,
    /// Whether it can be redelivered now (it has succeeded or failed).
    pub(crate) redeliverable: bool,
    /// The headers of its last attempt (or of its first, not yet sent), secrets redacted.
    pub(crate) headers: Vec<Header>,
    /// Why its last attempt failed, in words; `None` when it did not.
    pub(crate) failure: Option<String>,
    /// Every entry of its log, newest first.
    pub(crate) log: Vec<EntryView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) value: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct UsageView {
    /// The day asked for (today unless another was).
    pub(crate) day: Usage,
    /// The tenant's today.
    pub(crate) today: NaiveDate,
    /// The last [`CHART_DAYS`] days, oldest first, today last.
    pub(crate) days: Vec<Usage>,
}

pub(crate) async fn workflows(engine: &Engine, tenant: &str) -> Result<Vec<WorkflowView>, AdminError> {
    let Some(set) = engine.workflows(tenant) else { return Ok(Vec::new()) };
    let health = engine.endpoint_health(tenant).await?;
    let health_of = |workflow: &str, action: &str| {
        health.iter().find(|h| h.key.workflow == workflow && h.key.action == action).cloned()
    };
    Ok(set
        .workflows()
        .iter()
        .map(|w| WorkflowView {
            id: w.id().to_owned(),
            name: w.name().to_owned(),
            module: w.module().to_owned(),
            active: w.is_active(),
            actions: w
                .actions()
                .iter()
                .map(|a| ActionView {
                    title: a.title().to_owned(),
                    method: a.method().as_str(),
                    url: redact_url(a.url()),
                    content_type: a.content_type().as_str(),
                    health: health_of(w.id(), a.title()),
                })
                .collect(),
        })
        .collect())
}

pub(crate) async fn log_page(engine: &Engine, tenant: &str, filters: &LogFilters) -> Result<LogPage, AdminError> {
    let mut entries = engine.log(&filters.query(tenant)).await?;
    let older = (entries.len() > PER_PAGE).then_some(filters.page + 1);
    entries.truncate(PER_PAGE);
    Ok(LogPage {
        entries: with_durations(entries),
        page: filters.page,
        per_page: PER_PAGE,
        older,
        newer: filters.page.checked_sub(1).filter(|p| *p > 0),
    })
}

pub(crate) async fn delivery(engine: &Engine, tenant: &str, id: DeliveryId) -> Result<DeliveryView, AdminError> {
    let d = engine.delivery(tenant, id).await?.ok_or(AdminError::UnknownDelivery(id))?;
    let log = engine.log(&LogQuery::tenant(tenant).delivery(id).limit(LogQuery::MAX_LIMIT)).await?;
    let last_sent = log.iter().find(|e| e.status == DeliveryStatus::Dispatched).map(|e| e.at);
    let failure = log.iter().find(|e| e.reason.is_some() || e.error.is_some() || e.http_status.is_some());
    Ok(DeliveryView {
        id: d.id,
        status: d.status,
        headers: engine
            .request_headers(&d, last_sent.unwrap_or(d.created_at))
            .into_iter()
            .map(|(name, value)| Header { name, value })
            .collect(),
        failure: failure.and_then(explain::failure),
        workflow: d.workflow,
        action: d.action,
        module: d.module,
        record_id: d.record_id,
        method: d.method.as_str(),
        url: redact_url(&d.url),
        content_type: d.content_type.as_str(),
        body: String::from_utf8_lossy(&d.body).into_owned(),
        attempts: d.attempts,
        created_at: d.created_at,
        updated_at: d.updated_at,
        next_attempt_at: d.next_attempt_at,
        redelivery_of: d.redelivery_of,
        redeliverable: d.status.is_settled(),
        log: with_durations(log),
    })
}

pub(crate) async fn usage(engine: &Engine, tenant: &str, day: Option<NaiveDate>) -> Result<UsageView, AdminError> {
    let today = engine.usage(tenant).await?;
    let mut days = Vec::with_capacity(CHART_DAYS as usize);
    for back in (1..CHART_DAYS).rev() {
        if let Some(on) = today.day.checked_sub_days(Days::new(u64::from(back))) {
            days.push(engine.usage_on(tenant, Some(on)).await?);
        }
    }
    days.push(today);
    let asked = match day {
        Some(day) if day != today.day => engine.usage_on(tenant, Some(day)).await?,
        _ => today,
    };
    Ok(UsageView { day: asked, today: today.day, days })
}

/// Each result entry paired with its attempt's `Dispatched` entry on the same page: how long the attempt took.
fn with_durations(entries: Vec<LogEntry>) -> Vec<EntryView> {
    let sent: HashMap<(DeliveryId, u32), DateTime<Utc>> = entries
        .iter()
        .filter(|e| e.status == DeliveryStatus::Dispatched)
        .map(|e| ((e.delivery_id, e.attempt), e.at))
        .collect();
    entries
        .into_iter()
        .map(|entry| {
            let duration_ms = (entry.status != DeliveryStatus::Dispatched
                && (entry.http_status.is_some() || entry.error.is_some()))
            .then(|| sent.get(&(entry.delivery_id, entry.attempt)))
            .flatten()
            .map(|at| (entry.at - *at).num_milliseconds());
            EntryView { entry, duration_ms }
        })
        .collect()
}
