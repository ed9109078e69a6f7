//! What the engine hands back: a pass's counts, and the scheduled workflows that are due.

use chrono::{DateTime, Utc};

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

/// What one worker pass ([`Engine::run_due`](crate::Engine::run_due)) did.
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
