//! Scheduled workflows: which are due, each handed out once across every engine sharing the storage.

use chrono::{DateTime, Utc};

use super::core::Engine;
use super::error::EngineError;
use super::report::DueSchedule;
use crate::workflow::{Trigger, Workflow};

impl Engine {
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
}
