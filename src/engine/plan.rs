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
            None => DeliveryId::at(now),
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
            ordered: action.ordered(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::storage_contract::{sample_delivery, t0};
    use crate::workflow::WorkflowSet;

    const WORKFLOWS: &str = r#"{"workflows": [{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [
        {"title": "A", "url": "https://a.example/hook", "content_type": "JSON",
         "parameters": [{"name": "id", "field": "id"}]},
        {"title": "B", "url": "https://b.example/hook", "method": "PUT", "content_type": "FORM",
         "parameters": [{"name": "big", "field": "big"}]}]}]}"#;

    fn event(record: &str) -> RecordEvent {
        RecordEvent::new("acme", "Leads", record, Change::Created, "19x1").field("id", 7).field("big", "x".repeat(100))
    }

    #[test]
    fn events_must_name_tenant_module_and_record() {
        for (tenant, module, record, ok) in [
            ("acme", "Leads", "10x1", true),
            ("", "Leads", "10x1", false),
            ("acme", " ", "10x1", false),
            ("acme", "Leads", "", false),
        ] {
            let e = RecordEvent::new(tenant, module, record, Change::Created, "19x1");
            assert_eq!(check_event(&e).is_ok(), ok, "{tenant:?} {module:?} {record:?}");
        }
    }

    #[test]
    fn a_repeated_event_id_in_one_call_is_one_event() {
        let events = vec![
            event("10x1").event_id("save-1"),
            event("10x1").event_id("save-1"),
            event("10x2"),
            event("10x2"),
            RecordEvent { tenant: "globex".into(), ..event("10x1").event_id("save-1") },
        ];
        let kept: Vec<(&str, &str)> =
            distinct_events(&events).iter().map(|e| (e.tenant.as_str(), e.record_id.as_str())).collect();
        assert_eq!(
            kept,
            [("acme", "10x1"), ("acme", "10x2"), ("acme", "10x2"), ("globex", "10x1")],
            "no id: each is an event"
        );
    }

    #[test]
    fn each_webhook_is_a_queued_delivery_with_its_entry() {
        let set = WorkflowSet::from_json(WORKFLOWS).unwrap();
        let workflow = set.get("w").unwrap();
        let (deliveries, entries) = deliveries_for(&event("10x1"), workflow, t0(), 1 << 20).unwrap();
        assert_eq!(deliveries.iter().map(|d| d.action.as_str()).collect::<Vec<_>>(), ["A", "B"]);
        let b = &deliveries[1];
        assert_eq!(
            (b.status, b.attempts, b.next_attempt_at, b.created_at),
            (DeliveryStatus::Queued, 0, Some(t0()), t0())
        );
        assert_eq!((b.method.as_str(), b.url.as_str(), b.owner.as_str()), ("PUT", "https://b.example/hook", "19x1"));
        assert_eq!(&deliveries[0].body[..], br#"{"id":7}"#);
        assert_eq!(entries.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["queued by creation"; 2]);
        assert_ne!(deliveries[0].id, deliveries[1].id);
    }

    #[test]
    fn ids_derive_from_the_event_id_alone() {
        let set = WorkflowSet::from_json(WORKFLOWS).unwrap();
        let w = set.get("w").unwrap();
        let ids =
            |e: &RecordEvent| deliveries_for(e, w, t0(), 1 << 20).unwrap().0.iter().map(|d| d.id).collect::<Vec<_>>();
        let with_id = event("10x1").event_id("save-1");
        assert_eq!(ids(&with_id), ids(&with_id.clone().field("id", 8)), "the same event id, the same deliveries");
        assert_ne!(ids(&with_id), ids(&event("10x1").event_id("save-2")));
        assert_ne!(ids(&event("10x1")), ids(&event("10x1")), "without an event id, new ids each time");
    }

    #[test]
    fn a_body_over_the_limit_is_an_error_naming_the_record() {
        let set = WorkflowSet::from_json(WORKFLOWS).unwrap();
        let error = deliveries_for(&event("10x9"), set.get("w").unwrap(), t0(), 50).unwrap_err();
        assert!(matches!(&error, EngineError::Render { record_id, .. } if record_id == "10x9"), "{error}");
    }

    #[test]
    fn a_redelivery_is_a_fresh_chain_pointing_back() {
        let mut failed = sample_delivery("acme", "w1", t0());
        failed.status = DeliveryStatus::Failed;
        failed.attempts = 4;
        let now = t0() + chrono::Duration::days(1);
        let (copy, entries) = redelivery(&failed, now);
        assert_eq!(copy.id, redelivery_id("acme", failed.id), "derived, so asking again finds it");
        assert_eq!((copy.status, copy.attempts, copy.next_attempt_at), (DeliveryStatus::Queued, 0, Some(now)));
        assert_eq!((copy.redelivery_of, &copy.body, &copy.url), (Some(failed.id), &failed.body, &failed.url));
        assert_eq!(entries[0].delivery_id, failed.id);
        assert_eq!(entries[0].message, format!("redelivered as {}", copy.id));
        assert_eq!((entries[1].delivery_id, entries[1].status), (copy.id, DeliveryStatus::Queued));
        assert_ne!(redelivery_id("acme", copy.id), copy.id, "a redelivery of the redelivery is another");
    }
}
