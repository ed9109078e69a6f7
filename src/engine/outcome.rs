//! What follows an attempt, and a delivery put back unsent: pure functions that build the [`Completion`] the
//! pass writes back, and the quota split of what a claim took.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, LogEntry, RESPONSE_SNIPPET_MAX};
use crate::failure::FailureReason;
use crate::ports::{ClaimToken, Completion, HttpErrorKind, Notification};
use crate::retry::{self, AttemptOutcome, RetrySchedule, Transition};

use super::redact;

/// One attempt, made: what was sent, when, and what came back.
#[derive(Debug)]
pub(super) struct Attempted {
    /// The delivery as claimed (its `attempts` not yet counting this one).
    pub(super) delivery: Delivery,
    /// The claim it was taken with.
    pub(super) token: ClaimToken,
    /// When the request left.
    pub(super) sent_at: DateTime<Utc>,
    /// When its answer (or error) came.
    pub(super) finished_at: DateTime<Utc>,
    /// The answer.
    pub(super) outcome: AttemptOutcome,
    /// The start of the response body, redacted, for the log.
    pub(super) response_snippet: Option<String>,
    /// The answer's `Location` header, as sent (only a redirect's is read; the log shows it redacted).
    pub(super) location: Option<String>,
    /// The action's retry jitter, in percent of each delay.
    pub(super) jitter_percent: u8,
}

/// The write-back of an attempt: its status, the next attempt's time on the retry schedule, the `Dispatched` and
/// result log entries, and a failure notification when it failed for good.
pub(super) fn complete(retry: &RetrySchedule, attempted: Attempted) -> Completion {
    let Attempted { delivery, token, sent_at, finished_at, outcome, response_snippet, location, jitter_percent } =
        attempted;
    let attempt = delivery.attempts.saturating_add(1);
    let max = retry.max_attempts();
    let transition = match retry::next(retry, attempt, &outcome, finished_at) {
        Transition::RetryAt(at) if jitter_percent > 0 => {
            let delay = retry.delay_after(attempt).unwrap_or_default();
            let seed =
                u64::from_be_bytes(delivery.id.as_bytes()[8..].try_into().unwrap_or_default()) ^ u64::from(attempt);
            Transition::RetryAt(retry::jittered(at, delay, jitter_percent, seed))
        }
        other => other,
    };
    let mut dispatched = LogEntry::about(
        &delivery,
        DeliveryStatus::Dispatched,
        sent_at,
        format!("attempt {attempt} of {max} dispatched"),
    );
    dispatched.attempt = attempt;
    let (status, next_attempt_at, message) = match transition {
        Transition::Succeeded => (DeliveryStatus::Success, None, format!("attempt {attempt} delivered")),
        Transition::RetryAt(at) => (
            DeliveryStatus::Queued,
            Some(at),
            format!("attempt {attempt} failed; retry {attempt} of {} scheduled", max.saturating_sub(1)),
        ),
        Transition::GaveUp if attempt >= max => (
            DeliveryStatus::Failed,
            None,
            format!("attempt {attempt} failed; no retries left, owner and admins notified"),
        ),
        Transition::GaveUp => {
            (DeliveryStatus::Failed, None, format!("attempt {attempt} failed permanently; owner and admins notified"))
        }
    };
    let (http_status, error) = match &outcome {
        AttemptOutcome::Response { status, .. } if (200..300).contains(status) => (Some(*status), None),
        AttemptOutcome::Response { status: status @ 300..=399, .. } => {
            let described = describe_status(*status);
            let error = match location.as_deref() {
                Some(location) => format!("{described} to {}", redact::redirect_target(location, &delivery.url)),
                None => format!("{described}, without a Location"),
            };
            (Some(*status), Some(loggable(error)))
        }
        AttemptOutcome::Response { status, .. } => (Some(*status), Some(describe_status(*status))),
        AttemptOutcome::Error(e) => (None, Some(loggable(e.to_string()))),
    };
    let mut result = LogEntry::about(&delivery, status, finished_at, message);
    result.attempt = attempt;
    result.http_status = http_status;
    result.response_snippet = response_snippet;
    result.error = error;
    result.reason = reason(&outcome);
    result.next_attempt_at = next_attempt_at;
    let notification = (status == DeliveryStatus::Failed).then(|| Notification {
        delivery_id: delivery.id,
        tenant: delivery.tenant.clone(),
        owner: delivery.owner.clone(),
        created_at: finished_at,
        next_attempt_at: finished_at,
        attempts: 0,
        sent_to: Vec::new(),
        last_error: None,
        notice: Default::default(),
    });
    Completion {
        id: delivery.id,
        token,
        status,
        attempts: attempt,
        next_attempt_at,
        at: finished_at,
        entries: vec![dispatched, result],
        notification,
    }
}

/// Why an attempt failed, as a code; `None` when it succeeded (2xx).
pub(super) fn reason(outcome: &AttemptOutcome) -> Option<FailureReason> {
    let kind = match outcome {
        AttemptOutcome::Response { status: 200..=299, .. } => return None,
        AttemptOutcome::Response { status: 300..=399, .. } => return Some(FailureReason::Redirect),
        AttemptOutcome::Response { .. } => return Some(FailureReason::HttpStatus),
        AttemptOutcome::Error(e) => e.kind(),
    };
    Some(match kind {
        HttpErrorKind::Dns => FailureReason::Dns,
        HttpErrorKind::ConnectionRefused => FailureReason::ConnectionRefused,
        HttpErrorKind::Connect => FailureReason::ConnectionFailed,
        HttpErrorKind::Tls => FailureReason::Tls,
        HttpErrorKind::ConnectTimeout => FailureReason::ConnectTimeout,
        HttpErrorKind::Timeout => FailureReason::ResponseTimeout,
        HttpErrorKind::Refused => FailureReason::AddressGuard,
        HttpErrorKind::InvalidRequest => FailureReason::InvalidRequest,
        HttpErrorKind::Other => FailureReason::Other,
    })
}

/// The deliveries of a claim, grouped by tenant (in tenant order, so that a pass is the same every time).
pub(super) fn by_tenant(claimed: Vec<Delivery>) -> BTreeMap<String, Vec<Delivery>> {
    let mut groups: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    for delivery in claimed {
        groups.entry(delivery.tenant.clone()).or_default().push(delivery);
    }
    groups
}

/// Splits a tenant's claimed deliveries into those granted quota (to send) and the rest (to put back).
pub(super) fn split_granted(deliveries: Vec<Delivery>, granted: &[DeliveryId]) -> (Vec<Delivery>, Vec<Delivery>) {
    let granted: HashSet<&DeliveryId> = granted.iter().collect();
    deliveries.into_iter().partition(|d| granted.contains(&d.id))
}

/// Text for the log: NUL cannot be stored by every database (PostgreSQL text refuses it), so it becomes U+FFFD.
fn loggable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// The start of a response body, cut at a character boundary, for the log.
pub(super) fn snippet(body: &[u8], secrets: &[String]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    // A little more than is kept, so a secret that straddles the cut is still found whole and redacted.
    let longest_secret = secrets.iter().map(String::len).max().unwrap_or(0);
    let window = &body[..body.len().min(RESPONSE_SNIPPET_MAX.saturating_add(longest_secret))];
    let text = match std::str::from_utf8(window) {
        Ok(text) => text.to_owned(),
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&window[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(window).into_owned(),
    };
    let mut text = redact::scrub(text, secrets);
    if text.len() > RESPONSE_SNIPPET_MAX {
        let mut end = RESPONSE_SNIPPET_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Some(loggable(text))
}

pub(super) fn unsent(
    delivery: &Delivery,
    token: ClaimToken,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    why: &str,
) -> Completion {
    let mut entry = LogEntry::about(delivery, DeliveryStatus::Queued, now, why);
    entry.next_attempt_at = Some(until);
    Completion {
        id: delivery.id,
        token,
        status: DeliveryStatus::Queued,
        attempts: delivery.attempts,
        next_attempt_at: Some(until),
        at: now,
        entries: vec![entry],
        notification: None,
    }
}

/// A delivery put back because its tenant's daily quota is used up: due again at `until` (the tenant's next day),
/// which its entry's message names too, with the reason [`FailureReason::QuotaReached`].
pub(super) fn quota_deferred(
    delivery: &Delivery,
    token: ClaimToken,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Completion {
    let why = format!("deferred: daily quota reached until {}", until.format("%Y-%m-%d %H:%M:%S UTC"));
    let mut completion = unsent(delivery, token, now, until, &why);
    for entry in &mut completion.entries {
        entry.reason = Some(FailureReason::QuotaReached);
    }
    completion
}

pub(super) fn describe_status(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    match status {
        300..=399 => format!("HTTP {status} {reason} (redirects are not followed)"),
        _ => format!("HTTP {status} {reason}").trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{HttpError, HttpErrorKind};
    use crate::testing::storage_contract::{sample_delivery, t0};
    use chrono::Duration;

    fn attempted(attempts_before: u32, outcome: AttemptOutcome) -> Attempted {
        let mut delivery = sample_delivery("acme", "w1", t0());
        delivery.attempts = attempts_before;
        Attempted {
            delivery,
            token: ClaimToken::new(),
            sent_at: t0(),
            finished_at: t0() + Duration::seconds(2),
            outcome,
            response_snippet: Some("ok".into()),
            location: None,
            jitter_percent: 0,
        }
    }

    #[test]
    fn jitter_moves_retries_later_within_the_bound_and_never_before_retry_after() {
        let schedule = RetrySchedule::default();
        let finished = t0() + Duration::seconds(2);
        let hour = Duration::hours(1);
        let mut spread = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut a = attempted(0, response(500));
            a.jitter_percent = 20;
            let id = a.delivery.id;
            let due = complete(&schedule, a).next_attempt_at.unwrap();
            assert!(due >= finished + hour && due <= finished + hour + Duration::minutes(12), "{due}");
            spread.insert(due);
            let mut again = attempted(0, response(500));
            (again.delivery.id, again.jitter_percent) = (id, 20);
            assert_eq!(complete(&schedule, again).next_attempt_at, Some(due), "the same delivery, the same time");
        }
        assert!(spread.len() > 150, "retries spread out: {} distinct times of 200", spread.len());
        let mut off = attempted(0, response(500));
        off.jitter_percent = 0;
        assert_eq!(complete(&schedule, off).next_attempt_at, Some(finished + hour), "off: the schedule exactly");
        let asked = finished + Duration::hours(3);
        let mut busy = attempted(0, AttemptOutcome::Response { status: 503, retry_after: Some(asked) });
        busy.jitter_percent = 100;
        let due = complete(&schedule, busy).next_attempt_at.unwrap();
        assert!(due >= asked && due <= asked + hour, "after Retry-After, by at most the jitter: {due}");
    }

    fn response(status: u16) -> AttemptOutcome {
        AttemptOutcome::Response { status, retry_after: None }
    }

    /// Every outcome at every attempt of the seed's schedule (1 h, 2 h, 4 h): the status, when the next attempt
    /// is due, whether the owner is notified, and the result entry's message.
    #[test]
    fn every_outcome_at_every_attempt() {
        let retry = RetrySchedule::default();
        let later = |hours: i64| Some(t0() + Duration::seconds(2) + Duration::hours(hours));
        let timeout = || AttemptOutcome::Error(HttpError::new(HttpErrorKind::Timeout, "timed out"));
        let refused = || AttemptOutcome::Error(HttpError::new(HttpErrorKind::Refused, "refused by the address guard"));
        #[rustfmt::skip]
        type Case = (u32, AttemptOutcome, DeliveryStatus, Option<DateTime<Utc>>, &'static str);
        let table: Vec<Case> = vec![
            (0, response(200), DeliveryStatus::Success, None, "attempt 1 delivered"),
            (2, response(204), DeliveryStatus::Success, None, "attempt 3 delivered"),
            (0, response(500), DeliveryStatus::Queued, later(1), "attempt 1 failed; retry 1 of 3 scheduled"),
            (1, timeout(), DeliveryStatus::Queued, later(2), "attempt 2 failed; retry 2 of 3 scheduled"),
            (2, response(404), DeliveryStatus::Queued, later(4), "attempt 3 failed; retry 3 of 3 scheduled"),
            (
                3,
                response(503),
                DeliveryStatus::Failed,
                None,
                "attempt 4 failed; no retries left, owner and admins notified",
            ),
            (0, refused(), DeliveryStatus::Failed, None, "attempt 1 failed permanently; owner and admins notified"),
        ];
        for (before, outcome, status, next, message) in table {
            let c = complete(&retry, attempted(before, outcome));
            let case = message;
            assert_eq!((c.status, c.next_attempt_at, c.attempts), (status, next, before + 1), "{case}");
            assert_eq!(c.at, t0() + Duration::seconds(2), "{case}");
            let [dispatched, result] = &c.entries[..] else { panic!("two entries: {case}") };
            assert_eq!(
                (dispatched.status, dispatched.at, dispatched.attempt),
                (DeliveryStatus::Dispatched, t0(), before + 1)
            );
            assert_eq!(dispatched.message, format!("attempt {} of 4 dispatched", before + 1));
            assert_eq!((result.status, result.message.as_str(), result.next_attempt_at), (status, message, next));
            assert_eq!(c.notification.is_some(), status == DeliveryStatus::Failed, "{case}");
        }
    }

    #[test]
    fn the_log_says_why_an_attempt_failed() {
        let retry = RetrySchedule::default();
        let c = complete(&retry, attempted(0, response(404)));
        assert_eq!((c.entries[1].http_status, c.entries[1].error.as_deref()), (Some(404), Some("HTTP 404 Not Found")));
        let c = complete(&retry, attempted(0, response(201)));
        assert_eq!((c.entries[1].http_status, c.entries[1].error.as_deref()), (Some(201), None));
        assert_eq!(c.entries[1].response_snippet.as_deref(), Some("ok"));
        let error = AttemptOutcome::Error(HttpError::new(HttpErrorKind::Connect, "a\0b"));
        let c = complete(&retry, attempted(0, error));
        assert_eq!(c.entries[1].http_status, None);
        assert!(c.entries[1].error.as_deref().is_some_and(|e| e.contains("a\u{FFFD}b")), "{:?}", c.entries[1].error);
    }

    #[test]
    fn a_later_retry_after_moves_the_retry_and_an_earlier_one_does_not() {
        let retry = RetrySchedule::default();
        let finished = t0() + Duration::seconds(2);
        for (retry_after, expected) in [
            (Some(finished + Duration::hours(3)), finished + Duration::hours(3)),
            (Some(finished + Duration::minutes(5)), finished + Duration::hours(1)),
            (None, finished + Duration::hours(1)),
        ] {
            let c = complete(&retry, attempted(0, AttemptOutcome::Response { status: 429, retry_after }));
            assert_eq!(c.next_attempt_at, Some(expected), "{retry_after:?}");
        }
    }

    /// Every outcome's code: each HTTP error kind, a redirect, an error status, and none for a success.
    #[test]
    fn every_outcome_has_its_failure_code() {
        use FailureReason as R;
        let error = |kind| AttemptOutcome::Error(HttpError::new(kind, "x"));
        #[rustfmt::skip]
        let table = [
            (response(200), None), (response(204), None),
            (response(301), Some(R::Redirect)), (response(302), Some(R::Redirect)), (response(308), Some(R::Redirect)),
            (response(100), Some(R::HttpStatus)), (response(404), Some(R::HttpStatus)),
            (response(429), Some(R::HttpStatus)), (response(503), Some(R::HttpStatus)),
            (error(HttpErrorKind::Dns), Some(R::Dns)),
            (error(HttpErrorKind::ConnectionRefused), Some(R::ConnectionRefused)),
            (error(HttpErrorKind::Connect), Some(R::ConnectionFailed)),
            (error(HttpErrorKind::Tls), Some(R::Tls)),
            (error(HttpErrorKind::ConnectTimeout), Some(R::ConnectTimeout)),
            (error(HttpErrorKind::Timeout), Some(R::ResponseTimeout)),
            (error(HttpErrorKind::Refused), Some(R::AddressGuard)),
            (error(HttpErrorKind::InvalidRequest), Some(R::InvalidRequest)),
            (error(HttpErrorKind::Other), Some(R::Other)),
        ];
        let retry = RetrySchedule::default();
        for (outcome, expected) in table {
            assert_eq!(reason(&outcome), expected, "{outcome:?}");
            let c = complete(&retry, attempted(0, outcome.clone()));
            assert_eq!((c.entries[0].reason, c.entries[1].reason), (None, expected), "{outcome:?}");
        }
    }

    #[test]
    fn a_redirect_names_its_target_without_query_or_userinfo() {
        let retry = RetrySchedule::default();
        let mut a = attempted(0, response(302));
        a.location = Some("https://admin:hunter2@new.example/v2/hook?token=T0KEN#frag".into());
        let c = complete(&retry, a);
        let error = c.entries[1].error.as_deref().unwrap();
        assert_eq!(error, "HTTP 302 Found (redirects are not followed) to https://new.example/v2/hook");
        assert_eq!(c.entries[1].reason, Some(FailureReason::Redirect));
        let c = complete(&retry, attempted(0, response(301)));
        assert!(c.entries[1].error.as_deref().unwrap().ends_with("without a Location"), "{:?}", c.entries[1].error);
    }

    #[test]
    fn a_quota_deferral_says_until_when_and_carries_its_code() {
        let d = sample_delivery("acme", "w1", t0());
        let next_day = t0() + Duration::hours(7);
        let c = quota_deferred(&d, ClaimToken::new(), t0(), next_day);
        assert_eq!((c.status, c.next_attempt_at), (DeliveryStatus::Queued, Some(next_day)));
        let [entry] = &c.entries[..] else { panic!("one entry") };
        assert_eq!(entry.reason, Some(FailureReason::QuotaReached));
        assert_eq!(entry.next_attempt_at, Some(next_day));
        assert_eq!(
            entry.message,
            format!("deferred: daily quota reached until {}", next_day.format("%Y-%m-%d %H:%M:%S UTC"))
        );
        let plain = unsent(&d, ClaimToken::new(), t0(), next_day, "deferred: directory unavailable");
        assert_eq!(plain.entries[0].reason, None, "only the quota sets a code here");
    }

    #[test]
    fn a_delivery_put_back_unsent_keeps_its_attempts() {
        let mut d = sample_delivery("acme", "w1", t0());
        d.attempts = 2;
        let token = ClaimToken::new();
        let c = unsent(&d, token, t0(), t0() + Duration::days(1), "deferred: daily quota reached");
        assert_eq!(
            (c.status, c.attempts, c.next_attempt_at, c.token),
            (DeliveryStatus::Queued, 2, Some(t0() + Duration::days(1)), token)
        );
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.entries[0].message, "deferred: daily quota reached");
        assert!(c.notification.is_none());
    }

    #[test]
    fn the_quota_split_keeps_order_and_groups_by_tenant() {
        let ds: Vec<Delivery> = ["b", "a", "b", "a", "c"].iter().map(|t| sample_delivery(t, "w1", t0())).collect();
        let groups = by_tenant(ds.clone());
        assert_eq!(groups.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(
            groups["b"].iter().map(|d| d.id).collect::<Vec<_>>(),
            [ds[0].id, ds[2].id],
            "claim order within a tenant"
        );
        let b = groups["b"].clone();
        for (granted, sent, held) in
            [(vec![], 0, 2), (vec![b[1].id], 1, 1), (vec![b[0].id, b[1].id], 2, 0), (vec![ds[1].id], 0, 2)]
        {
            let (send, over) = split_granted(b.clone(), &granted);
            assert_eq!((send.len(), over.len()), (sent, held), "{granted:?}");
            assert!(send.iter().all(|d| granted.contains(&d.id)) && over.iter().all(|d| !granted.contains(&d.id)));
        }
    }

    #[test]
    fn snippets_are_capped_at_a_character_boundary() {
        let long = "é".repeat(RESPONSE_SNIPPET_MAX);
        let cut = snippet(long.as_bytes(), &[]).unwrap();
        assert!(cut.len() <= RESPONSE_SNIPPET_MAX && cut.len() >= RESPONSE_SNIPPET_MAX - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(snippet(b"", &[]), None);
        assert_eq!(snippet(b"a\0b", &[]).as_deref(), Some("a\u{FFFD}b"), "NUL is not stored");
    }

    #[test]
    fn a_secret_across_the_cut_is_redacted_whole() {
        let secrets = vec!["TOKEN123".to_owned()];
        let body = format!("{}TOKEN123", "a".repeat(RESPONSE_SNIPPET_MAX - 4));
        let cut = snippet(body.as_bytes(), &secrets).unwrap();
        assert!(!cut.contains("TOKE") && cut.len() <= RESPONSE_SNIPPET_MAX, "{}", &cut[cut.len() - 20..]);
    }

    #[test]
    fn statuses_are_described() {
        assert_eq!(describe_status(404), "HTTP 404 Not Found");
        assert!(describe_status(302).contains("redirects are not followed"));
        assert_eq!(describe_status(599), "HTTP 599");
    }
}
