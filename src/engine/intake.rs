//! Event intake: an event (or many) evaluated against the tenant's workflows and queued in one storage call.

use std::collections::HashMap;

use super::core::Engine;
use super::error::EngineError;
use super::plan;
use crate::delivery::DeliveryId;
use crate::ports::{Enqueue, OnceMark};
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
        let prepared = self.prepare(events).await?;
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.inner.storage.enqueue_batch(prepared.batch).await?;
        self.inner.wake.notify();
        Ok(ids)
    }

    /// Matches events against their tenants' workflows and renders every delivery they queue, without storing
    /// anything: what [`Engine::on_events`] stores, for a host to write in its own database transaction
    /// ([`SqliteStorage::enqueue_in`](crate::adapters::sqlite::SqliteStorage::enqueue_in),
    /// [`PostgresStorage::enqueue_in`](crate::adapters::postgres::PostgresStorage::enqueue_in)), so that the
    /// webhooks are queued if and only if the host's save commits. Reads the clock and asks the
    /// [`Directory`](crate::Directory) for each tenant's time zone; no other I/O.
    pub async fn prepare(&self, events: &[RecordEvent]) -> Result<Prepared, EngineError> {
        events.iter().try_for_each(plan::check_event)?;
        let now = self.now();
        let mut zones = HashMap::new();
        let mut batch = Enqueue::default();
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
                let mark = (workflow.trigger() == &Trigger::Once).then(|| OnceMark {
                    tenant: event.tenant.clone(),
                    workflow: workflow.id().to_owned(),
                    record_id: event.record_id.clone(),
                });
                // A `once` workflow fires for a record once, also when one call carries two of its events.
                if mark.as_ref().is_some_and(|mark| batch.once.contains(mark)) {
                    continue;
                }
                let (mut rendered, mut queued) = plan::deliveries_for(event, workflow, now, self.inner.max_body_bytes)?;
                batch.deliveries.append(&mut rendered);
                batch.entries.append(&mut queued);
                batch.once.extend(mark);
            }
        }
        Ok(Prepared { batch })
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

/// An event's (or several events') deliveries, matched and rendered by [`Engine::prepare`], to be written into a
/// host's own transaction. `once` marks travel with them and are taken in that transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    pub(crate) batch: Enqueue,
}

impl Prepared {
    /// Whether the events queue nothing (no workflow matched).
    pub fn is_empty(&self) -> bool {
        self.batch.deliveries.is_empty()
    }

    /// The deliveries' ids, in order (a `once` workflow that fired before drops its own when they are written).
    pub fn ids(&self) -> Vec<DeliveryId> {
        self.batch.deliveries.iter().map(|d| d.id).collect()
    }

    /// What a [`Storage`](crate::Storage) stores: the deliveries, their entries and the `once` marks.
    pub fn into_batch(self) -> Enqueue {
        self.batch
    }
}
