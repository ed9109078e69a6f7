//! An action's receiver as the engine treats it: reading and changing its health (pause, resume), holding a
//! paused action's deliveries, and its rate limit, in the pass between the claim and the quota.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::core::{chrono_duration, Engine};
use super::error::EngineError;
use super::outcome;
use crate::delivery::{Delivery, DeliveryStatus, LogEntry};
use crate::failure::FailureReason;
use crate::health;
use crate::ports::{
    ClaimToken, Completion, EndpointHealth, EndpointKey, EndpointState, HealthChange, HealthEvent, HealthReport,
    RateRequest, ReportedDelivery,
};
use crate::workflow::{HealthPolicy, RateLimit, WebhookAction};

/// What a claim's deliveries go on with after the health and rate checks.
pub(super) struct Checked {
    /// To send, each with whether its action has stored health (so that a success is worth reporting).
    pub(super) to_send: Vec<(Delivery, bool)>,
    /// Put back unsent: held (paused) or waiting for the rate limit.
    pub(super) put_back: Vec<Completion>,
}

impl Engine {
    /// The stored health of a tenant's actions: those failing, warned or paused (an action not listed is healthy
    /// with no failure).
    pub async fn endpoint_health(&self, tenant: &str) -> Result<Vec<EndpointHealth>, EngineError> {
        Ok(self.inner.storage.endpoint_health(tenant).await?)
    }

    /// Pauses a webhook action by hand: its deliveries are kept, queued, and not sent until it is resumed
    /// ([`resume_action`](Self::resume_action)); new ones are queued and logged as usual. `by` names who did it,
    /// for the log. Returns whether the action was not paused already. Fails for an action the tenant's
    /// registered workflows do not have.
    pub async fn pause_action(
        &self,
        tenant: &str,
        workflow: &str,
        action: &str,
        by: &str,
    ) -> Result<bool, EngineError> {
        let policy = *self.registered_action(tenant, workflow, action)?.endpoint_health();
        let event = HealthEvent::Paused { by: by.to_owned() };
        let changes = self.change_health(tenant, workflow, action, event, policy).await?;
        Ok(!changes.is_empty())
    }

    /// Resumes a paused webhook action (paused by hand, by its failures, or by a `410 Gone`): its failure count
    /// starts again, and every delivery it held becomes due at once, oldest first, each logged as resumed by `by`.
    /// Returns how many deliveries were held (0 when it was not paused). Safe to repeat.
    pub async fn resume_action(
        &self,
        tenant: &str,
        workflow: &str,
        action: &str,
        by: &str,
    ) -> Result<u64, EngineError> {
        let policy = *self.registered_action(tenant, workflow, action)?.endpoint_health();
        let event = HealthEvent::Resumed { by: by.to_owned() };
        let changes = self.change_health(tenant, workflow, action, event, policy).await?;
        let resumed = changes.iter().map(|c| c.deliveries).sum();
        if resumed > 0 {
            self.notify_workers();
        }
        Ok(resumed)
    }

    fn registered_action(&self, tenant: &str, workflow: &str, action: &str) -> Result<WebhookAction, EngineError> {
        let unknown = || EngineError::UnknownAction {
            tenant: tenant.to_owned(),
            workflow: workflow.to_owned(),
            action: action.to_owned(),
        };
        let set = self.workflows(tenant).ok_or_else(unknown)?;
        set.get(workflow).and_then(|w| w.action(action)).cloned().ok_or_else(unknown)
    }

    async fn change_health(
        &self,
        tenant: &str,
        workflow: &str,
        action: &str,
        event: HealthEvent,
        policy: HealthPolicy,
    ) -> Result<Vec<HealthChange>, EngineError> {
        let report = HealthReport {
            key: EndpointKey::new(tenant, workflow, action),
            event,
            at: self.now(),
            policy,
            delivery: None,
        };
        let changes = self.inner.storage.record_health(vec![report]).await?;
        log_changes(&changes);
        Ok(changes)
    }

    /// Holds the claimed deliveries of paused actions, lets the rate limits through what they allow now and puts
    /// the rest back for later windows. Storage failures here put deliveries back rather than failing the claim:
    /// a failed health read defers the tenant's for a minute, a failed rate window lets none of its action through.
    pub(super) async fn check_endpoints(
        &self,
        tenant: &str,
        deliveries: Vec<Delivery>,
        token: ClaimToken,
        now: DateTime<Utc>,
    ) -> Checked {
        let mut put_back = Vec::new();
        // A failed read must not leave the claim dispatched until its lease runs out: the deliveries are put back
        // for a minute, as when the directory cannot be read.
        let stored = match self.inner.storage.endpoint_health(tenant).await {
            Ok(stored) => stored,
            Err(e) => {
                let (retry_at, why) = (now + chrono::Duration::minutes(1), format!("deferred: {e}"));
                put_back.extend(deliveries.iter().map(|d| outcome::unsent(d, token, now, retry_at, &why)));
                return Checked { to_send: Vec::new(), put_back };
            }
        };
        // Looked up by reference: the claim's common case (no stored health, no rate limit) allocates nothing
        // per delivery.
        let workflows = self.workflows(tenant);
        let any_limited = workflows
            .as_deref()
            .is_some_and(|set| set.workflows().iter().any(|w| w.actions().iter().any(|a| a.rate_limit().is_some())));
        let limit_of = |d: &Delivery| workflows.as_deref()?.get(&d.workflow)?.action(&d.action)?.rate_limit();
        let mut limited: BTreeMap<EndpointKey, (RateLimit, Vec<(Delivery, bool)>)> = BTreeMap::new();
        let mut to_send = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let found = stored.iter().find(|h| h.key.workflow == delivery.workflow && h.key.action == delivery.action);
            let watched = found.is_some();
            match found {
                Some(paused) if paused.state == EndpointState::Paused => {
                    put_back.push(health::held(&delivery, token, now, paused));
                }
                _ => match any_limited.then(|| limit_of(&delivery)).flatten() {
                    // The rate-limited actions' deliveries, by action, in claim order.
                    Some(limit) => limited
                        .entry(health::key_of(&delivery))
                        .or_insert((limit, Vec::new()))
                        .1
                        .push((delivery, watched)),
                    None => to_send.push((delivery, watched)),
                },
            }
        }
        for (key, (limit, group)) in limited {
            let window_start = window_start(now, limit);
            let wanted = u32::try_from(group.len()).unwrap_or(u32::MAX);
            let request = RateRequest { key, window_start, limit: limit.limit(), wanted };
            // A window that cannot be read lets nothing through: the group waits for the next one.
            let granted = match self.inner.storage.take_rate(&request).await {
                Ok(granted) => granted,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a rate window; the action's deliveries wait for the next");
                    0
                }
            };
            for (i, (delivery, known)) in group.into_iter().enumerate() {
                match u32::try_from(i).ok().and_then(|i| i.checked_sub(granted)) {
                    None => to_send.push((delivery, known)),
                    Some(over) => put_back.push(rate_deferral(&delivery, token, now, window_start, limit, over)),
                }
            }
        }
        Checked { to_send, put_back }
    }
}

/// The report of an attempt for the action's health: a failure always (while health is tracked), a success
/// only when the action has stored health (a success of a healthy action changes nothing, and is not written).
pub(super) fn report(
    action: &WebhookAction,
    completion: &Completion,
    delivery: &Delivery,
    http_status: Option<u16>,
    watched: bool,
) -> Option<HealthReport> {
    let policy = *action.endpoint_health();
    if !policy.enabled && !watched {
        return None;
    }
    let event = match completion.status {
        DeliveryStatus::Success if watched => HealthEvent::Succeeded,
        DeliveryStatus::Success => return None,
        _ if http_status == Some(410) => HealthEvent::Gone,
        _ => {
            let why = completion.entries.last().and_then(|e: &LogEntry| e.error.clone()).unwrap_or_default();
            HealthEvent::Failed(why)
        }
    };
    Some(HealthReport {
        key: health::key_of(delivery),
        event,
        at: completion.at,
        policy,
        delivery: Some(ReportedDelivery {
            id: delivery.id,
            record_id: delivery.record_id.clone(),
            owner: delivery.owner.clone(),
            status: completion.status,
            attempts: completion.attempts,
        }),
    })
}

/// Records reports after their completions were written. Health is a count: a report that cannot be written is
/// logged and dropped rather than failing the pass (the next failure counts on).
pub(super) async fn record(engine: &Engine, reports: Vec<HealthReport>) {
    if reports.is_empty() {
        return;
    }
    match engine.inner.storage.record_health(reports).await {
        Ok(changes) => log_changes(&changes),
        Err(e) => tracing::warn!(error = %e, "could not record endpoint health; the failure counts may be one short"),
    }
}

fn log_changes(changes: &[HealthChange]) {
    for c in changes {
        tracing::info!(
            tenant = %c.key.tenant,
            workflow = %c.key.workflow,
            action = %c.key.action,
            from = %c.from,
            to = %c.to,
            deliveries = c.deliveries,
            "endpoint health changed"
        );
    }
}

/// The start of the rate window `now` is in: a whole second or minute.
fn window_start(now: DateTime<Utc>, limit: RateLimit) -> DateTime<Utc> {
    let window = limit.window().as_micros() as i64;
    let micros = now.timestamp_micros();
    DateTime::from_timestamp_micros(micros - micros.rem_euclid(window)).unwrap_or(now)
}

/// A delivery over its action's rate limit, put back for a later window: the `over`-th one past the limit waits
/// `1 + over / limit` windows, so that what is over the limit now is spread over the windows to come rather than
/// all claimed again in the next one.
fn rate_deferral(
    delivery: &Delivery,
    token: ClaimToken,
    now: DateTime<Utc>,
    window_start: DateTime<Utc>,
    limit: RateLimit,
    over: u32,
) -> Completion {
    let windows = 1 + over / limit.limit().max(1);
    let due = window_start + chrono_duration(limit.window()) * i32::try_from(windows).unwrap_or(i32::MAX);
    let message = format!(
        "waits: the action sends at most {} requests per {}; due at {}",
        limit.limit(),
        limit.per(),
        due.format("%H:%M:%S UTC")
    );
    let mut entry = LogEntry::about(delivery, DeliveryStatus::Queued, now, message);
    entry.next_attempt_at = Some(due);
    entry.reason = Some(FailureReason::RateLimited);
    Completion {
        id: delivery.id,
        token,
        status: DeliveryStatus::Queued,
        attempts: delivery.attempts,
        next_attempt_at: Some(due),
        at: now,
        entries: vec![entry],
        notification: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::storage_contract::{sample_delivery, t0};
    use chrono::Duration;

    #[test]
    fn windows_are_whole_seconds_and_minutes() {
        let at = t0() + Duration::milliseconds(61_500);
        assert_eq!(window_start(at, RateLimit::PerSecond(5)), t0() + Duration::seconds(61));
        assert_eq!(window_start(at, RateLimit::PerMinute(5)), t0() + Duration::seconds(60));
    }

    #[test]
    fn deliveries_over_the_limit_are_spread_over_the_windows_to_come() {
        let d = sample_delivery("acme", "w1", t0());
        let start = t0();
        let due =
            |over| rate_deferral(&d, ClaimToken::new(), t0(), start, RateLimit::PerSecond(10), over).next_attempt_at;
        assert_eq!(due(0), Some(start + Duration::seconds(1)));
        assert_eq!(due(9), Some(start + Duration::seconds(1)));
        assert_eq!(due(10), Some(start + Duration::seconds(2)));
        assert_eq!(due(95), Some(start + Duration::seconds(10)));
        let c = rate_deferral(&d, ClaimToken::new(), t0(), start, RateLimit::PerMinute(600), 0);
        assert_eq!(
            (c.status, c.attempts, c.next_attempt_at),
            (DeliveryStatus::Queued, d.attempts, Some(start + Duration::minutes(1)))
        );
        assert!(
            c.entries[0].message.starts_with("waits: the action sends at most 600 requests per minute"),
            "{:?}",
            c.entries
        );
        assert_eq!(c.entries[0].reason, Some(FailureReason::RateLimited));
    }
}
