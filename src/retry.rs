//! The retry state machine: pure, with `now` passed in.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::HttpError;

/// The delays between attempts. The default is the product's: retry 1 h, 2 h and 4 h after each failure
/// (three retries, four attempts in all).
///
/// ```
/// use std::time::Duration;
/// use crm_webhooks::retry::RetrySchedule;
/// let schedule = RetrySchedule::default();
/// assert_eq!(schedule.max_attempts(), 4);
/// assert_eq!(schedule.delay_after(1), Some(Duration::from_secs(3600)));
/// assert_eq!(schedule.delay_after(4), None);
/// assert!(RetrySchedule::new(vec![Duration::ZERO]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

/// A retry schedule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry schedule: {0}")]
pub struct InvalidRetrySchedule(String);

/// The longest a `Retry-After` header may push an attempt back.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

impl RetrySchedule {
    /// A schedule with these delays; each must be more than zero and at most a year. An empty list means no
    /// retries (one attempt).
    pub fn new(delays: Vec<Duration>) -> Result<Self, InvalidRetrySchedule> {
        if let Some((i, d)) = delays.iter().enumerate().find(|(_, d)| d.is_zero() || **d > MAX_DELAY) {
            return Err(InvalidRetrySchedule(format!(
                "delay {} is {d:?}; every delay must be more than zero and at most a year",
                i + 1
            )));
        }
        Ok(RetrySchedule { delays })
    }

    /// The delays.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// Attempts in all: the first one plus one per delay.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// How long to wait after failed attempt `attempt` (1-based); `None` after the last attempt.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.delays.get(index).copied()
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule { delays: vec![Duration::from_secs(3600), Duration::from_secs(7200), Duration::from_secs(14400)] }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered.
    Response {
        /// The HTTP status code.
        status: u16,
        /// When a 429 or 503 answer's `Retry-After` asks for the next attempt.
        retry_after: Option<DateTime<Utc>>,
    },
    /// No answer.
    Error(HttpError),
}

impl AttemptOutcome {
    /// Whether the attempt delivered the data (a 2xx answer).
    pub fn is_success(&self) -> bool {
        matches!(self, AttemptOutcome::Response { status, .. } if (200..300).contains(status))
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Delivered: the delivery is `Success`.
    Succeeded,
    /// Failed, to be retried: the delivery goes back to `Queued` until `at`.
    RetryAt(DateTime<Utc>),
    /// Failed for good: the delivery is `Failed` and the owner and admins are notified.
    GaveUp,
}

/// The transition after attempt `attempt` (1-based) ended with `outcome` at `now`.
///
/// A 2xx answer succeeds. Anything else fails the attempt: timeouts, connection errors, 3xx (redirects are not
/// followed), 4xx, 5xx. A failed attempt is retried after the schedule's delay, unless it was the last or the
/// error is permanent (refused by policy, a request that cannot be built). A `Retry-After` on 429 or 503 may
/// push the retry later than the schedule, by at most [`MAX_RETRY_AFTER`] from now, never earlier.
pub fn next(schedule: &RetrySchedule, attempt: u32, outcome: &AttemptOutcome, now: DateTime<Utc>) -> Transition {
    if outcome.is_success() {
        return Transition::Succeeded;
    }
    if let AttemptOutcome::Error(error) = outcome {
        if error.is_permanent() {
            return Transition::GaveUp;
        }
    }
    let Some(delay) = schedule.delay_after(attempt) else {
        return Transition::GaveUp;
    };
    let scheduled = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    let at = match outcome {
        AttemptOutcome::Response { status: 429 | 503, retry_after: Some(asked) } => {
            let cap = now + chrono::Duration::from_std(MAX_RETRY_AFTER).unwrap_or(chrono::Duration::MAX);
            scheduled.max((*asked).min(cap))
        }
        _ => scheduled,
    };
    Transition::RetryAt(at)
}

/// A retry due at `at` (scheduled `delay` after a failure) moved later by up to `percent` % of `delay`, at a point
/// taken from `seed` (the engine derives it from the delivery's id and attempt, so every engine and every test run
/// gives the same time). Never earlier than `at`; `percent` 0 gives `at`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use std::time::Duration;
/// let at = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap();
/// let hour = Duration::from_secs(3600);
/// let later = crm_webhooks::retry::jittered(at, hour, 20, 7_777);
/// assert!(later >= at && later <= at + chrono::Duration::minutes(12));
/// assert_eq!(crm_webhooks::retry::jittered(at, hour, 0, 7_777), at);
/// ```
pub fn jittered(at: DateTime<Utc>, delay: Duration, percent: u8, seed: u64) -> DateTime<Utc> {
    if percent == 0 {
        return at;
    }
    let span = delay.as_millis().saturating_mul(u128::from(percent.min(100))) / 100;
    // The seed's low bits mixed, so that neighbouring seeds spread over the whole span.
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    let fraction = u128::from(mixed % 1_000_001);
    let extra = u64::try_from(span.saturating_mul(fraction) / 1_000_000).unwrap_or(u64::MAX);
    at.checked_add_signed(chrono::Duration::milliseconds(i64::try_from(extra).unwrap_or(i64::MAX))).unwrap_or(at)
}

/// Reads a `Retry-After` value (delay seconds or an HTTP date) as an instant, relative to `now`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
/// assert_eq!(crm_webhooks::retry::parse_retry_after("120", now), Some(now + chrono::Duration::seconds(120)));
/// assert_eq!(
///     crm_webhooks::retry::parse_retry_after("Sun, 29 Nov 2026 18:00:00 GMT", now),
///     Some(Utc.with_ymd_and_hms(2026, 11, 29, 18, 0, 0).unwrap())
/// );
/// assert_eq!(crm_webhooks::retry::parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        let seconds = i64::try_from(seconds.min(10 * 366 * 24 * 3600)).ok()?;
        return Some(now + chrono::Duration::seconds(seconds));
    }
    DateTime::parse_from_rfc2822(value).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::HttpErrorKind;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    fn hours(h: i64) -> chrono::Duration {
        chrono::Duration::hours(h)
    }

    fn outcomes() -> Vec<AttemptOutcome> {
        let mut all: Vec<AttemptOutcome> = [100, 200, 201, 204, 299, 301, 302, 304, 400, 401, 404, 429, 500, 502, 503]
            .into_iter()
            .map(|status| AttemptOutcome::Response { status, retry_after: None })
            .collect();
        for kind in [
            HttpErrorKind::Timeout,
            HttpErrorKind::ConnectTimeout,
            HttpErrorKind::Dns,
            HttpErrorKind::ConnectionRefused,
            HttpErrorKind::Connect,
            HttpErrorKind::Tls,
            HttpErrorKind::Refused,
            HttpErrorKind::InvalidRequest,
            HttpErrorKind::Other,
        ] {
            all.push(AttemptOutcome::Error(HttpError::new(kind, "x")));
        }
        all
    }

    /// Every outcome from every attempt of the default schedule, against an independent statement of the rule.
    #[test]
    fn every_outcome_from_every_state() {
        let schedule = RetrySchedule::default();
        let expected_delay = [hours(1), hours(2), hours(4)];
        for attempt in 1..=5u32 {
            for outcome in outcomes() {
                let got = next(&schedule, attempt, &outcome, now());
                let success =
                    matches!(&outcome, AttemptOutcome::Response { status, .. } if (200..=299).contains(status));
                let permanent = matches!(&outcome, AttemptOutcome::Error(e)
                    if matches!(e.kind(), HttpErrorKind::Refused | HttpErrorKind::InvalidRequest));
                let want = if success {
                    Transition::Succeeded
                } else if permanent || attempt > 3 {
                    Transition::GaveUp
                } else {
                    Transition::RetryAt(now() + expected_delay[attempt as usize - 1])
                };
                assert_eq!(got, want, "attempt {attempt}, outcome {outcome:?}");
            }
        }
    }

    #[test]
    fn retry_after_pushes_later_never_earlier_and_is_capped() {
        let schedule = RetrySchedule::default();
        let with =
            |status, after: chrono::Duration| AttemptOutcome::Response { status, retry_after: Some(now() + after) };
        assert_eq!(next(&schedule, 1, &with(429, hours(3)), now()), Transition::RetryAt(now() + hours(3)));
        assert_eq!(
            next(&schedule, 1, &with(503, chrono::Duration::minutes(5)), now()),
            Transition::RetryAt(now() + hours(1))
        );
        assert_eq!(next(&schedule, 2, &with(503, hours(100)), now()), Transition::RetryAt(now() + hours(24)));
        // Only 429 and 503 may ask.
        assert_eq!(next(&schedule, 1, &with(500, hours(3)), now()), Transition::RetryAt(now() + hours(1)));
        // Asking does not add attempts.
        assert_eq!(next(&schedule, 4, &with(429, hours(3)), now()), Transition::GaveUp);
    }

    #[test]
    fn custom_schedules() {
        let none = RetrySchedule::new(vec![]).unwrap();
        assert_eq!(none.max_attempts(), 1);
        let fail = AttemptOutcome::Response { status: 500, retry_after: None };
        assert_eq!(next(&none, 1, &fail, now()), Transition::GaveUp);
        let quick = RetrySchedule::new(vec![Duration::from_secs(30); 5]).unwrap();
        assert_eq!(next(&quick, 5, &fail, now()), Transition::RetryAt(now() + chrono::Duration::seconds(30)));
        assert_eq!(next(&quick, 6, &fail, now()), Transition::GaveUp);
        assert!(RetrySchedule::new(vec![Duration::from_secs(400 * 86400)]).is_err());
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after(" 0 ", now()), Some(now()));
        assert_eq!(parse_retry_after("-5", now()), None);
        assert_eq!(parse_retry_after("", now()), None);
        assert!(parse_retry_after("99999999999999999999", now()).is_none());
        assert!(parse_retry_after("18446744073709551615", now()).is_some());
    }
}
