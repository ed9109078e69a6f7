//! Failure notices, decided without I/O: who gets one, when a round is tried again, and the email's text.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::ports::{ClaimToken, Notification, NotificationUpdate, User};
use crate::workflow::redact_url;

/// The owner (when active) and every active admin with an address, each once by id and by address (addresses
/// compared without case and surrounding space), the owner first.
pub(super) fn recipients(owner: Option<User>, admins: Vec<User>) -> Vec<User> {
    let mut ids = HashSet::new();
    let mut addresses = HashSet::new();
    owner
        .into_iter()
        .chain(admins)
        .filter(|u| {
            u.active
                && !u.email.trim().is_empty()
                && ids.insert(u.id.clone())
                && addresses.insert(u.email.trim().to_lowercase())
        })
        .collect()
}

/// How long after its `attempts`-th round a notification is tried again: 2, 4, 8 ... minutes, at most an hour.
pub(super) fn backoff(attempts: u32) -> chrono::Duration {
    chrono::Duration::minutes(2i64.saturating_pow(attempts.min(6)).min(60))
}

/// The record of one more recipient emailed, keeping the claim (more recipients follow in this round).
pub(super) fn progress(notification: &Notification, token: ClaimToken, sent_to: &[String]) -> NotificationUpdate {
    NotificationUpdate {
        delivery_id: notification.delivery_id,
        token,
        sent_to: sent_to.to_vec(),
        done: false,
        keep_claim: true,
        attempts: notification.attempts,
        next_attempt_at: notification.next_attempt_at,
        last_error: notification.last_error.clone(),
    }
}

/// How a sending round ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RoundEnd {
    /// User ids emailed so far, this round included.
    pub(super) sent_to: Vec<String>,
    /// Whether everyone has it.
    pub(super) done: bool,
    /// The last error of the round.
    pub(super) last_error: Option<String>,
}

/// The update that ends a sending round at `now`: released, and due again after the back-off unless done.
pub(super) fn round_end(
    notification: &Notification,
    token: ClaimToken,
    end: RoundEnd,
    now: DateTime<Utc>,
) -> NotificationUpdate {
    let attempts = notification.attempts.saturating_add(1);
    NotificationUpdate {
        delivery_id: notification.delivery_id,
        token,
        sent_to: end.sent_to,
        done: end.done,
        keep_claim: false,
        attempts,
        next_attempt_at: now + backoff(attempts),
        last_error: end.last_error,
    }
}

/// The email about a failed delivery: a subject and a body naming the workflow, the action, the URL (without
/// credentials), the record, and every attempt with its time and why it failed. `entries` are the delivery's log
/// entries, newest first (as storage returns them); `workflow_name` is the registered workflow's name, if any.
pub(super) fn email(
    id: DeliveryId,
    delivery: Option<&Delivery>,
    entries: &[LogEntry],
    workflow_name: Option<&str>,
) -> (String, String) {
    let (workflow, action, record, module, url) = match delivery {
        Some(d) => {
            (d.workflow.as_str(), d.action.as_str(), d.record_id.as_str(), d.module.as_str(), redact_url(&d.url))
        }
        None => ("?", "?", "?", "?", String::from("?")),
    };
    let workflow_name = workflow_name.filter(|name| !name.is_empty()).unwrap_or(workflow);
    let subject = format!("Webhook failed: \"{action}\" of workflow \"{workflow_name}\"");
    let mut body = format!(
        "A webhook could not deliver its data after every retry.\n\n\
         Workflow: {workflow_name} ({workflow})\nAction:   {action}\nURL:      {url}\nRecord:   {module} {record}\n\
         Delivery: {id}\n\nAttempts:\n"
    );
    let mut attempts: Vec<&LogEntry> =
        entries.iter().filter(|e| e.attempt > 0 && e.status != DeliveryStatus::Dispatched).collect();
    attempts.reverse();
    for entry in attempts {
        let what = match (&entry.error, entry.http_status) {
            (Some(error), _) => error.clone(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => entry.message.clone(),
        };
        body.push_str(&format!("  {}. {}  {}\n", entry.attempt, entry.at.to_rfc3339(), what));
    }
    body.push_str("\nYou can redeliver it from the webhook log once the receiver is fixed.\n");
    (subject, body)
}
