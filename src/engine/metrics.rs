//! Operators' metrics through the `metrics` facade (feature `metrics`; without it every function here does
//! nothing). The names and what they mean are listed in the `engine` module's documentation.

use chrono::{DateTime, Utc};

use crate::delivery::DeliveryStatus;
use crate::ports::QueueDepth;

/// An attempt ended with `status` after `seconds`.
pub(super) fn attempt(status: DeliveryStatus, seconds: f64) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match status {
            DeliveryStatus::Success => "success",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Queued | DeliveryStatus::Dispatched => "retry",
        };
        metrics::counter!("crm_webhooks_attempts_total", "outcome" => outcome).increment(1);
        metrics::histogram!("crm_webhooks_attempt_duration_seconds").record(seconds);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (status, seconds);
}

/// Claimed deliveries were put back unsent.
pub(super) fn deferred(count: usize) {
    #[cfg(feature = "metrics")]
    metrics::counter!("crm_webhooks_deferred_total").increment(u64::try_from(count).unwrap_or(u64::MAX));
    #[cfg(not(feature = "metrics"))]
    let _ = count;
}

/// The calls counted on a tenant's current day.
pub(super) fn quota_used(tenant: &str, used: u64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("crm_webhooks_quota_used", "tenant" => tenant.to_owned()).set(used as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (tenant, used);
}

/// The queue as storage reported it at `now`.
pub(super) fn queue(depth: &QueueDepth, now: DateTime<Utc>) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("crm_webhooks_queued").set(depth.queued as f64);
        metrics::gauge!("crm_webhooks_dispatched").set(depth.dispatched as f64);
        let age = depth.oldest_queued_at.map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1000.0);
        metrics::gauge!("crm_webhooks_oldest_queued_age_seconds").set(age);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (depth, now);
}

/// Whether the figures go anywhere (the `metrics` feature is on).
pub(super) const ENABLED: bool = cfg!(feature = "metrics");
