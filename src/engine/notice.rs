//! Failure notices, decided without I/O: who gets one, when a round is tried again, and the email's text.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::failure::FailureReason;
use crate::ports::{ClaimToken, Notification, NotificationUpdate, User};
use crate::shown::shown_up_to;
use crate::workflow::redact_url;

/// How much of the receiver's answer to the last attempt the email quotes.
const ANSWER_CHARS: usize = 300;

/// How much of an attempt's error its line shows.
const ERROR_CHARS: usize = 500;

/// An attempt line's error, escaped to one line and cut short.
fn shown(text: &str) -> String {
    shown_up_to(text, ERROR_CHARS)
}

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
/// credentials), the record, every attempt with its time, its failure code and why it failed, and the last
/// failure's code in words with a hint (and, for an error status, the start of the receiver's answer). `entries` are the delivery's log
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
    for entry in &attempts {
        let what = match (&entry.error, entry.http_status) {
            (Some(error), _) => error.clone(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => entry.message.clone(),
        };
        let code = entry.reason.map(|r| format!("[{r}] ")).unwrap_or_default();
        body.push_str(&format!("  {}. {}  {code}{}\n", entry.attempt, entry.at.to_rfc3339(), shown(&what)));
    }
    if let Some((last, reason)) = attempts.iter().rev().find_map(|e| e.reason.map(|r| (e, r))) {
        body.push_str(&format!("\nWhy the last attempt failed: {} ({reason})\n{}\n", reason.title(), reason.hint()));
        let answer = last.response_snippet.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let (FailureReason::HttpStatus, Some(answer)) = (reason, answer) {
            body.push_str(&format!("The receiver answered: {}\n", shown_up_to(answer, ANSWER_CHARS)));
        }
    }
    body.push_str("\nYou can redeliver it from the webhook log once the receiver is fixed.\n");
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::storage_contract::{sample_delivery, t0};

    fn user(id: &str, email: &str, active: bool, admin: bool) -> User {
        User { id: id.into(), name: String::new(), email: email.into(), active, admin }
    }

    #[test]
    fn recipients_are_the_active_owner_and_admins_each_once() {
        let owner = user("19x1", "owner@acme.test", true, false);
        #[rustfmt::skip]
        let table: Vec<(Option<User>, Vec<User>, Vec<&str>)> = vec![
            (Some(owner.clone()), vec![user("a", "a@acme.test", true, true)], vec!["19x1", "a"]),
            (None, vec![user("a", "a@acme.test", true, true)], vec!["a"]),
            (Some(user("19x1", "o@acme.test", false, false)), vec![], vec![]),
            (Some(owner.clone()), vec![user("19x1", "owner@acme.test", true, true)], vec!["19x1"]),
            (Some(owner.clone()), vec![user("b", " OWNER@acme.test ", true, true)], vec!["19x1"]),
            (Some(owner.clone()), vec![user("c", "  ", true, true), user("d", "d@x", false, true)], vec!["19x1"]),
            (Some(user("19x1", "", true, false)), vec![user("e", "e@x", true, true), user("e", "e2@x", true, true)], vec!["e"]),
        ];
        for (owner, admins, expected) in table {
            let got: Vec<String> = recipients(owner.clone(), admins.clone()).into_iter().map(|u| u.id).collect();
            assert_eq!(got, expected, "owner {owner:?}, admins {admins:?}");
        }
    }

    #[test]
    fn the_back_off_doubles_up_to_an_hour() {
        let minutes: Vec<i64> = (0..9).map(|n| backoff(n).num_minutes()).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX).num_minutes(), 60);
    }

    #[test]
    fn a_round_ends_released_and_due_after_the_back_off() {
        let n = Notification {
            delivery_id: DeliveryId::new(),
            tenant: "acme".into(),
            owner: "19x1".into(),
            created_at: t0(),
            next_attempt_at: t0(),
            attempts: 1,
            sent_to: vec!["19x1".into()],
            last_error: None,
            notice: Default::default(),
        };
        let token = ClaimToken::new();
        let progress = progress(&n, token, &["19x1".into(), "a".into()]);
        assert!(progress.keep_claim && !progress.done);
        assert_eq!((progress.attempts, progress.next_attempt_at), (1, t0()), "progress changes nothing but sent_to");
        let end = RoundEnd { sent_to: vec!["19x1".into()], done: false, last_error: Some("a: down".into()) };
        let update = round_end(&n, token, end, t0());
        assert!(!update.keep_claim && !update.done);
        assert_eq!((update.attempts, update.next_attempt_at), (2, t0() + chrono::Duration::minutes(4)));
        assert_eq!(update.last_error.as_deref(), Some("a: down"));
    }

    fn last_entry(d: &Delivery, attempt: u32, status: Option<u16>, reason: FailureReason) -> LogEntry {
        let mut e = LogEntry::about(d, DeliveryStatus::Failed, t0(), "failed");
        (e.attempt, e.http_status, e.reason) = (attempt, status, Some(reason));
        e
    }

    #[test]
    fn the_email_names_everything_an_admin_needs() {
        let mut d = sample_delivery("acme", "w1", t0());
        d.url = "https://api:secret@receiver.example/hook".into();
        let mut first = LogEntry::about(&d, DeliveryStatus::Queued, t0(), "attempt 1 failed; retry 1 of 3 scheduled");
        first.attempt = 1;
        first.http_status = Some(500);
        first.reason = Some(FailureReason::HttpStatus);
        first.response_snippet = Some("first answer".into());
        let mut last =
            LogEntry::about(&d, DeliveryStatus::Failed, t0() + chrono::Duration::hours(1), "attempt 2 failed");
        last.attempt = 2;
        last.error = Some("timed out".into());
        last.reason = Some(FailureReason::ResponseTimeout);
        let mut dispatched = LogEntry::about(&d, DeliveryStatus::Dispatched, t0(), "attempt 2 of 4 dispatched");
        dispatched.attempt = 2;
        let (subject, body) = email(d.id, Some(&d), &[last, dispatched, first], Some("Won deals"));
        assert_eq!(subject, "Webhook failed: \"Create invoice\" of workflow \"Won deals\"");
        for part in ["Workflow: Won deals (w1)", "Potentials 13x42", &format!("Delivery: {}", d.id), "redeliver"] {
            assert!(body.contains(part), "{part} missing from {body}");
        }
        assert!(!body.contains("secret"), "the URL's credentials are not mailed: {body}");
        let one = body.find("  1. ").unwrap();
        let two = body.find("  2. ").unwrap();
        assert!(one < two && body[one..two].contains("HTTP 500") && body[two..].contains("timed out"), "{body}");
        assert_eq!(body.matches("  2. ").count(), 1, "the Dispatched entry is not an attempt line");
        assert!(body[one..two].contains("[http_status] HTTP 500"), "{body}");
        assert!(body[two..].contains("[response_timeout] timed out"), "{body}");
        let why = format!(
            "\nWhy the last attempt failed: No answer in time (response_timeout)\n{}\n",
            FailureReason::ResponseTimeout.hint()
        );
        assert!(body.contains(&why), "the last attempt's code and hint: {body}");
        assert!(!body.contains("first answer"), "only the last attempt's answer is quoted: {body}");
        let mut refused = last_entry(&d, 3, Some(422), FailureReason::HttpStatus);
        refused.response_snippet = Some(format!("{{\"error\":\"email is required\"}}\r\n{}", "y".repeat(1000)));
        let (_, body) = email(d.id, Some(&d), &[refused], None);
        assert!(body.contains("  3. "), "{body}");
        assert!(body.contains("Why the last attempt failed: Error status (http_status)\n"), "{body}");
        assert!(body.contains("The receiver answered: {\"error\":\"email is required\"}\\r\\nyyy"), "{body}");
        assert!(body.len() < 2000, "the answer is cut short: {body}");
        let (subject, body) = email(d.id, None, &[], Some(""));
        assert!(subject.contains("\"?\"") && body.contains("Record:   ? ?"), "{subject} {body}");
    }
}
