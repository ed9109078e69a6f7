//! Event intake: an event (or many) evaluated against the tenant's workflows and queued in one storage call.

use std::collections::HashMap;

use super::core::Engine;
use super::error::EngineError;
use super::plan;
use crate::delivery::DeliveryId;
use crate::record::{Change, RecordEvent};
use crate::workflow::Trigger;

impl Engine {
    /// Evaluates an event against its tenant's workflows of its module and queues one delivery per webhook of
    /// each matching workflow, body rendered now. Returns the new deliveries' ids (empty when nothing matched).
    pub async fn on_event(&self, event: &RecordEvent) -> Result<Vec<DeliveryId>, EngineError> {
        self.on_events(std::slice::from_ref(event)).await
    }

    /// Like [`Engine::on_event`] for many events (a bulk import, the records of a due schedule), stored in one
    /// storage call: all of them are queued, or none. Events are checked first; an invalid one fails the call
    /// before anything is stored.
    pub async fn on_events(&self, events: &[RecordEvent]) -> Result<Vec<DeliveryId>, EngineError> {
        events.iter().try_for_each(plan::check_event)?;
        let now = self.now();
        let mut zones = HashMap::new();
        let mut matched = Vec::new();
        for event in plan::distinct_events(events) {
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
                let (rendered, queued) = plan::deliveries_for(event, workflow, now, self.inner.max_body_bytes)?;
                let once = workflow.trigger() == &Trigger::Once;
                matched.push((event, workflow.id().to_owned(), once, rendered, queued));
            }
        }
        // Every body is rendered before any `once` mark is taken, so a body over the limit uses up no firing.
        let (mut deliveries, mut entries) = (Vec::new(), Vec::new());
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
            self.inner.wake.notify();
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
}
