//! Endpoint health, decided without I/O: what one event does to an action's stored health, the log entries and
//! the email a change brings, and how a held delivery is put back. Every storage applies [`apply`] inside its
//! own transaction, so engines sharing it count one series of failures and email once per change.

use chrono::{DateTime, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry};
use crate::failure::FailureReason;
use crate::ports::{
    ClaimToken, Completion, EndpointHealth, EndpointKey, EndpointState, HealthEvent, HealthReport, Notice,
    Notification, ReportedDelivery,
};

/// What an event does: the health to store (`None`: healthy with no failure, so nothing is stored) and the
/// change of state, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) health: Option<EndpointHealth>,
    pub(crate) change: Option<Change>,
}

/// A change of state, with what the storage writes along with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) from: EndpointState,
    pub(crate) to: EndpointState,
    /// The entry on the delivery whose attempt made the change.
    pub(crate) entry: Option<LogEntry>,
    /// Whether the owner and admins are emailed (a warning, or a pause that no person asked for).
    pub(crate) emails: bool,
    /// A person resumed the action: its held deliveries become due, each with [`resumed_entry`].
    pub(crate) resumed_by: Option<String>,
}

/// What `report` does to the action's stored health `current`.
pub(crate) fn apply(current: Option<&EndpointHealth>, report: &HealthReport) -> Applied {
    let now = report.at;
    let unchanged = Applied { health: current.cloned(), change: None };
    let state = current.map_or(EndpointState::Healthy, |h| h.state);
    let policy = &report.policy;
    let fresh = |state, reason| EndpointHealth {
        key: report.key.clone(),
        state,
        failures: current.map_or(0, |h| h.failures),
        failing_since: current.and_then(|h| h.failing_since),
        changed_at: now,
        reason,
    };
    match &report.event {
        HealthEvent::Paused { by } => {
            if state == EndpointState::Paused {
                return unchanged;
            }
            let health = fresh(EndpointState::Paused, Some(format!("paused by {by}")));
            let change =
                Change { from: state, to: EndpointState::Paused, entry: None, emails: false, resumed_by: None };
            Applied { health: Some(health), change: Some(change) }
        }
        HealthEvent::Resumed { by } => {
            if state != EndpointState::Paused {
                return unchanged;
            }
            let change = Change {
                from: state,
                to: EndpointState::Healthy,
                entry: None,
                emails: false,
                resumed_by: Some(by.clone()),
            };
            Applied { health: None, change: Some(change) }
        }
        // A paused action is resumed by a person; attempts that were in flight when it paused change nothing.
        _ if state == EndpointState::Paused || !policy.enabled => unchanged,
        HealthEvent::Succeeded => {
            let Some(current) = current else { return unchanged };
            let change = (state == EndpointState::Warning).then(|| {
                let message = format!(
                    "the receiver answered again after {} failed attempts in a row: the action is healthy",
                    current.failures
                );
                Change {
                    from: state,
                    to: EndpointState::Healthy,
                    entry: entry(report, message),
                    emails: false,
                    resumed_by: None,
                }
            });
            Applied { health: None, change }
        }
        HealthEvent::Failed(_) | HealthEvent::Gone => {
            let failures = current.map_or(0, |h| h.failures).saturating_add(1);
            let since = current.and_then(|h| h.failing_since).unwrap_or(now);
            let span = (now - since).to_std().unwrap_or_default();
            let gone = report.event == HealthEvent::Gone && policy.pause_on_gone;
            let why = match &report.event {
                HealthEvent::Failed(why) => why.clone(),
                _ => "HTTP 410 Gone".to_owned(),
            };
            let mut health = EndpointHealth {
                key: report.key.clone(),
                state,
                failures,
                failing_since: Some(since),
                changed_at: current.map_or(now, |h| h.changed_at),
                reason: current.and_then(|h| h.reason.clone()),
            };
            let to = if gone || (failures >= policy.pause_after_failures && span >= policy.pause_after()) {
                EndpointState::Paused
            } else if state == EndpointState::Healthy
                && failures >= policy.warn_after_failures
                && span >= policy.warn_after()
            {
                EndpointState::Warning
            } else {
                return Applied { health: Some(health), change: None };
            };
            let since_text = since.format("%Y-%m-%d %H:%M UTC");
            let (reason, message) = if to == EndpointState::Paused {
                let reason = if gone {
                    "the receiver answered 410 Gone: it says this URL is gone for good".to_owned()
                } else {
                    format!("{failures} attempts in a row failed since {since_text} (the last: {why})")
                };
                let message = format!(
                    "the action is paused: {reason}; its deliveries are kept and wait until it is resumed; the owner \
                     and admins are emailed"
                );
                (Some(reason), message)
            } else {
                let message = format!(
                    "warning: {failures} attempts in a row failed since {since_text} (the last: {why}); the owner \
                     and admins are emailed"
                );
                (health.reason.clone(), message)
            };
            health.state = to;
            health.changed_at = now;
            health.reason = reason;
            let change = Change { from: state, to, entry: entry(report, message), emails: true, resumed_by: None };
            Applied { health: Some(health), change: Some(change) }
        }
    }
}

/// The entry about a change on the delivery whose attempt made it.
fn entry(report: &HealthReport, message: String) -> Option<LogEntry> {
    let d: &ReportedDelivery = report.delivery.as_ref()?;
    Some(LogEntry {
        delivery_id: d.id,
        tenant: report.key.tenant.clone(),
        workflow: report.key.workflow.clone(),
        action: report.key.action.clone(),
        record_id: d.record_id.clone(),
        status: d.status,
        attempt: d.attempts,
        at: report.at,
        http_status: None,
        response_snippet: None,
        error: None,
        reason: None,
        next_attempt_at: None,
        message,
    })
}

/// The email a change brings (when it [`emails`](Change::emails)), to the reported delivery's owner and every
/// active admin; `waiting` is how many deliveries of the action are queued or in flight.
pub(crate) fn notification(
    change: &Change,
    health: &EndpointHealth,
    report: &HealthReport,
    waiting: u64,
) -> Option<Notification> {
    if !change.emails {
        return None;
    }
    let owner = report.delivery.as_ref().map(|d| d.owner.clone()).unwrap_or_default();
    let key = &health.key;
    let failing_since = health.failing_since.unwrap_or(report.at);
    let (workflow, action, failures) = (key.workflow.clone(), key.action.clone(), health.failures);
    let (kind, notice) = match change.to {
        EndpointState::Warning => {
            ("warning", Notice::EndpointWarning { workflow, action, failing_since, failures, waiting })
        }
        EndpointState::Paused => {
            let reason = health.reason.clone().unwrap_or_default();
            ("paused", Notice::EndpointPaused { workflow, action, failing_since, failures, waiting, reason })
        }
        EndpointState::Healthy => return None,
    };
    let micros = report.at.timestamp_micros().to_string();
    let id = DeliveryId::derived(&["endpoint", kind, &key.tenant, &key.workflow, &key.action, &micros]);
    Some(Notification {
        delivery_id: id,
        tenant: key.tenant.clone(),
        owner,
        created_at: report.at,
        next_attempt_at: report.at,
        attempts: 0,
        sent_to: Vec::new(),
        last_error: None,
        notice,
    })
}

/// The entry of a held delivery made due again by a resume.
pub(crate) fn resumed_entry(delivery: &Delivery, by: &str, at: DateTime<Utc>) -> LogEntry {
    let message = format!("the action was resumed by {by}: sent in the order it was queued");
    let mut entry = LogEntry::about(delivery, DeliveryStatus::Queued, at, message);
    entry.next_attempt_at = Some(delivery.created_at.min(at));
    entry
}

/// The due time a resumed delivery gets: when it was queued (never later than the resume), so that a claim takes
/// the action's held deliveries oldest first.
pub(crate) fn resumed_due(created_at: DateTime<Utc>, at: DateTime<Utc>) -> DateTime<Utc> {
    created_at.min(at)
}

/// A claimed delivery of a paused action, put back: queued with no next attempt (no claim takes it) until the
/// action is resumed.
pub(crate) fn held(delivery: &Delivery, token: ClaimToken, now: DateTime<Utc>, health: &EndpointHealth) -> Completion {
    let since = health.changed_at.format("%Y-%m-%d %H:%M UTC");
    let why = health.reason.as_deref().unwrap_or("paused");
    let message = format!("held: the action is paused since {since} ({why}); it is sent when the action is resumed");
    Completion {
        id: delivery.id,
        token,
        status: DeliveryStatus::Queued,
        attempts: delivery.attempts,
        next_attempt_at: None,
        at: now,
        entries: vec![LogEntry {
            reason: Some(FailureReason::Paused),
            ..LogEntry::about(delivery, DeliveryStatus::Queued, now, message)
        }],
        notification: None,
    }
}

/// A completion after a `410 Gone` that pauses its action: the delivery is held (queued, no next attempt) rather
/// than retried, and its entry says so.
pub(crate) fn hold_gone(completion: &mut Completion) {
    if completion.status != DeliveryStatus::Queued {
        return;
    }
    completion.next_attempt_at = None;
    if let Some(last) = completion.entries.last_mut() {
        last.next_attempt_at = None;
        last.message = format!(
            "attempt {} failed with 410 Gone: the action is paused, and this delivery waits until it is resumed",
            completion.attempts
        );
    }
}

/// The key of a delivery's action.
pub(crate) fn key_of(delivery: &Delivery) -> EndpointKey {
    EndpointKey::new(delivery.tenant.clone(), delivery.workflow.clone(), delivery.action.clone())
}

/// The email about an action's receiver: a subject and a body saying since when it fails, how many deliveries
/// wait, what happens next and, for a pause, how to resume. `None` for a notice that is not about a receiver.
pub(crate) fn email(notice: &Notice, workflow_name: Option<&str>, url: Option<&str>) -> Option<(String, String)> {
    let (workflow, action, failing_since, failures, waiting, paused) = match notice {
        Notice::DeliveryFailed => return None,
        Notice::EndpointWarning { workflow, action, failing_since, failures, waiting } => {
            (workflow, action, failing_since, failures, waiting, None)
        }
        Notice::EndpointPaused { workflow, action, failing_since, failures, waiting, reason } => {
            (workflow, action, failing_since, failures, waiting, Some(reason))
        }
    };
    let name = workflow_name.unwrap_or(workflow);
    let since = failing_since.format("%Y-%m-%d %H:%M UTC");
    let mut body = format!("Workflow: {name} ({workflow})\nWebhook action: {action}\n");
    if let Some(url) = url {
        body.push_str(&format!("URL: {url}\n"));
    }
    body.push_str(&format!(
        "Failing since: {since} ({failures} attempts in a row failed)\nDeliveries waiting: {waiting}\n\n"
    ));
    let subject = match paused {
        None => {
            body.push_str(
                "The receiver has not accepted this action's webhooks for a while. They are still sent and retried \
                 as usual; if it keeps failing, the action is paused so that nothing is lost. Check that the \
                 receiver is up and that the action's URL and credentials are right.\n",
            );
            format!("Webhook \"{action}\" keeps failing (since {since})")
        }
        Some(reason) => {
            body.push_str(&format!(
                "The action is paused: {reason}.\n\nIts deliveries are kept and wait: nothing is sent, dropped or \
                 failed while it is paused. Once the receiver is fixed, resume the action (Resume on the webhook \
                 admin page, or Engine::resume_action): every delivery that waited is then sent, oldest first.\n"
            ));
            format!("Webhook \"{action}\" is paused: {waiting} deliveries wait")
        }
    };
    Some((subject, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::HealthPolicy;
    use chrono::Duration;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    fn report(event: HealthEvent, at: DateTime<Utc>) -> HealthReport {
        HealthReport {
            key: EndpointKey::new("acme", "w", "a"),
            event,
            at,
            policy: HealthPolicy::default(),
            delivery: Some(ReportedDelivery {
                id: DeliveryId::new(),
                record_id: "r1".into(),
                owner: "u1".into(),
                status: DeliveryStatus::Queued,
                attempts: 1,
            }),
        }
    }

    fn failed(at: DateTime<Utc>) -> HealthReport {
        report(HealthEvent::Failed("HTTP 500 Internal Server Error".into()), at)
    }

    /// Runs events in order; returns the last health and every change's (from, to, emails).
    fn run(reports: &[HealthReport]) -> (Option<EndpointHealth>, Vec<(EndpointState, EndpointState, bool)>) {
        let mut health = None;
        let mut changes = Vec::new();
        for r in reports {
            let applied = apply(health.as_ref(), r);
            if let Some(c) = &applied.change {
                changes.push((c.from, c.to, c.emails));
            }
            health = applied.health;
        }
        (health, changes)
    }

    #[test]
    fn failures_warn_then_pause_only_past_both_count_and_time() {
        use EndpointState::*;
        // Five failures in ten minutes: past the count, not the hour.
        let quick: Vec<_> = (0..5).map(|i| failed(t(i * 2))).collect();
        let (health, changes) = run(&quick);
        assert_eq!((health.as_ref().map(|h| h.failures), changes.len()), (Some(5), 0));
        // One more after the hour: the warning, once.
        let mut reports = quick.clone();
        reports.extend((0..10).map(|i| failed(t(61 + i))));
        let (health, changes) = run(&reports);
        assert_eq!(changes, [(Healthy, Warning, true)]);
        let health = health.unwrap();
        assert_eq!((health.state, health.failures, health.failing_since), (Warning, 15, Some(t(0))));
        // 20 failures but not yet a day: still warning; past the day: paused, with one email.
        reports.extend((0..10).map(|i| failed(t(120 + i))));
        assert_eq!(run(&reports).1, [(Healthy, Warning, true)]);
        reports.push(failed(t(24 * 60)));
        let (health, changes) = run(&reports);
        assert_eq!(changes, [(Healthy, Warning, true), (Warning, Paused, true)]);
        let health = health.unwrap();
        assert!(health.reason.as_deref().unwrap().starts_with("26 attempts in a row failed since"), "{health:?}");
        // Paused: more failures and a success in flight change nothing.
        reports.push(failed(t(24 * 60 + 1)));
        reports.push(report(HealthEvent::Succeeded, t(24 * 60 + 2)));
        let (after, changes) = run(&reports);
        assert_eq!((after.as_ref().map(|h| h.failures), changes.len()), (Some(26), 2));
        // Resumed: healthy again, nothing stored, no email.
        reports.push(report(HealthEvent::Resumed { by: "alice".into() }, t(24 * 60 + 3)));
        let (after, changes) = run(&reports);
        assert_eq!((after, changes.last()), (None, Some(&(Paused, Healthy, false))));
    }

    #[test]
    fn a_success_resets_and_ends_a_warning() {
        use EndpointState::*;
        let mut reports: Vec<_> = (0..6).map(|i| failed(t(i * 20))).collect();
        reports.push(report(HealthEvent::Succeeded, t(130)));
        let (health, changes) = run(&reports);
        assert_eq!((health, changes), (None, vec![(Healthy, Warning, true), (Warning, Healthy, false)]));
        // Failures that never reach the warning: a success forgets them without a change.
        let (health, changes) = run(&[failed(t(0)), failed(t(1)), report(HealthEvent::Succeeded, t(2))]);
        assert_eq!((health, changes.len()), (None, 0));
    }

    #[test]
    fn gone_pauses_at_once_unless_switched_off() {
        let gone = report(HealthEvent::Gone, t(0));
        let applied = apply(None, &gone);
        let change = applied.change.unwrap();
        assert_eq!((change.from, change.to, change.emails), (EndpointState::Healthy, EndpointState::Paused, true));
        assert!(change.entry.as_ref().unwrap().message.contains("410 Gone"));
        let health = applied.health.unwrap();
        let n = notification(&change, &health, &gone, 7).unwrap();
        assert!(matches!(n.notice, Notice::EndpointPaused { waiting: 7, failures: 1, .. }), "{n:?}");
        assert_eq!(n.owner, "u1");
        let mut off = gone.clone();
        off.policy.pause_on_gone = false;
        assert_eq!(apply(None, &off).change, None, "410 counts as one failure");
        off.policy = HealthPolicy::off();
        assert_eq!(apply(None, &off), Applied { health: None, change: None }, "off: nothing kept");
    }

    #[test]
    fn the_emails_say_since_when_how_many_wait_and_how_to_resume() {
        let since = t(0);
        let warning = Notice::EndpointWarning {
            workflow: "w".into(),
            action: "a".into(),
            failing_since: since,
            failures: 6,
            waiting: 12,
        };
        let (subject, body) = email(&warning, Some("Leads"), Some("https://hooks.example.com/in")).unwrap();
        assert!(subject.contains("keeps failing"), "{subject}");
        assert!(body.contains("Failing since: 2024-10-04 00:00 UTC (6 attempts in a row failed)"), "{body}");
        assert!(body.contains("Deliveries waiting: 12") && body.contains("Workflow: Leads (w)"), "{body}");
        let paused = Notice::EndpointPaused {
            workflow: "w".into(),
            action: "a".into(),
            failing_since: since,
            failures: 1,
            waiting: 3,
            reason: "the receiver answered 410 Gone".into(),
        };
        let (subject, body) = email(&paused, None, None).unwrap();
        assert_eq!(subject, "Webhook \"a\" is paused: 3 deliveries wait");
        assert!(body.contains("resume the action") && body.contains("410 Gone"), "{body}");
        assert_eq!(email(&Notice::DeliveryFailed, None, None), None);
    }

    #[test]
    fn a_person_pauses_and_resumes_without_emails() {
        let paused = apply(None, &report(HealthEvent::Paused { by: "alice".into() }, t(0)));
        let health = paused.health.unwrap();
        assert_eq!((health.state, health.reason.as_deref()), (EndpointState::Paused, Some("paused by alice")));
        assert!(!paused.change.unwrap().emails);
        let again = apply(Some(&health), &report(HealthEvent::Paused { by: "bob".into() }, t(1)));
        assert_eq!(again.change, None, "pausing a paused action changes nothing");
        let resumed = apply(Some(&health), &report(HealthEvent::Resumed { by: "bob".into() }, t(2)));
        assert_eq!(resumed.change.unwrap().resumed_by.as_deref(), Some("bob"));
        assert_eq!(apply(None, &report(HealthEvent::Resumed { by: "bob".into() }, t(3))).change, None);
    }
}
