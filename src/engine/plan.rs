//! Planning what an event, or a redelivery, queues: pure functions of the event, the workflow and `now`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::error::EngineError;
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::record::{Change, RecordEvent};
use crate::workflow::Workflow;

/// Checks that an event names its tenant, module and record.
pub(super) fn check_event(event: &RecordEvent) -> Result<(), EngineError> {
    for (name, value) in [("tenant", &event.tenant), ("module", &event.module), ("record_id", &event.record_id)] {
        if value.trim().is_empty() {
            return Err(EngineError::InvalidEvent(format!(
                "\"{name}\" is empty (record \"{}\" of tenant \"{}\")",
                event.record_id, event.tenant
            )));
        }
    }
    Ok(())
}

/// The events of a call, each once: a repeat of an event id (of the same tenant) in the same call is dropped.
pub(super) fn distinct_events(events: &[RecordEvent]) -> Vec<&RecordEvent> {
    let mut seen = HashSet::new();
    events
        .iter()
        .filter(|event| event.event_id.as_ref().is_none_or(|id| seen.insert((event.tenant.as_str(), id.as_str()))))
        .collect()
}

/// Each webhook of a matching workflow, rendered for an event, as queued deliveries with their log entries. An
/// event with an [`event_id`](RecordEvent::event_id) gets delivery ids derived from it, so a repeat of the event
/// is stored as the same deliveries (which storage then skips).
pub(super) fn deliveries_for(
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

/// The id of the redelivery of a delivery: derived from it, so asking twice finds the same one.
pub(super) fn redelivery_id(tenant: &str, of: DeliveryId) -> DeliveryId {
    DeliveryId::derived(&["redelivery", tenant, &of.to_string()])
}

/// A settled delivery queued again as a new one with its own attempt chain, and the two log entries that say so.
pub(super) fn redelivery(current: &Delivery, now: DateTime<Utc>) -> (Delivery, Vec<LogEntry>) {
    let copy = Delivery {
        id: redelivery_id(&current.tenant, current.id),
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
    let note = LogEntry::about(current, current.status, now, format!("redelivered as {}", copy.id));
    (copy, vec![note, queued])
}
