//! What an admin screen reads and does: the log, one delivery, a redelivery, pruning, usage.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::core::{chrono_duration, Engine};
use super::error::EngineError;
use super::plan;
use super::wire;
use crate::delivery::{Delivery, DeliveryId, LogEntry, LogQuery};
use crate::quota::{quota_day, Usage};

impl Engine {
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
            match self.delivery(tenant, plan::redelivery_id(tenant, current.id)).await? {
                Some(pending) if !pending.status.is_settled() => return Ok(pending.id),
                Some(settled) => current = settled,
                None => break,
            }
        }
        let (copy, entries) = plan::redelivery(&current, self.now());
        let new_id = copy.id;
        self.inner.storage.enqueue(vec![copy], entries).await?;
        self.inner.wake.notify();
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

    /// The headers an attempt of this delivery sends at `sent_at`, for an admin screen: `Authorization` and
    /// `webhook-signature` redacted. The action's credentials and signing secret are read from the registered
    /// workflows, as a pass reads them; an action no longer registered shows the headers that need neither.
    pub fn request_headers(&self, delivery: &Delivery, sent_at: DateTime<Utc>) -> Vec<(String, String)> {
        let workflows = self.workflows(&delivery.tenant);
        let action = workflows.as_ref().and_then(|w| w.get(&delivery.workflow)?.action(&delivery.action));
        let content_type = delivery.content_type.header_value();
        let Some(action) = action else {
            return vec![
                ("content-type".to_owned(), content_type.to_owned()),
                ("webhook-id".to_owned(), delivery.id.to_string()),
                ("webhook-timestamp".to_owned(), sent_at.timestamp().to_string()),
            ];
        };
        wire::shown_headers(action, content_type, delivery.id, sent_at, &delivery.body, true)
    }

    /// How many deliveries are queued and in flight, and how old the oldest queued one is, as storage reports it;
    /// with the `metrics` feature also recorded as the `crm_webhooks_queued`, `crm_webhooks_dispatched` and
    /// `crm_webhooks_oldest_queued_age_seconds` gauges (each [`Worker`](crate::Worker) calls it about every 15
    /// seconds). It counts the whole queue: call it now and then, not on every request.
    pub async fn queue_depth(&self) -> Result<crate::ports::QueueDepth, EngineError> {
        let depth = self.inner.storage.queue_depth().await?;
        super::metrics::queue(&depth, self.now());
        Ok(depth)
    }

    /// When the next delivery is due (or the next lease runs out), for a worker deciding how long to sleep.
    pub async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, EngineError> {
        Ok(self.inner.storage.next_due_at().await?)
    }
}
