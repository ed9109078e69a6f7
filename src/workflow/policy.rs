//! An action's delivery policy beyond retries: when its receiver counts as failing (warning, pause), and how many
//! requests per second or minute it may get.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Location, ValidationError};

/// When an action's receiver counts as failing, and what happens then (`"endpoint_health"` in the JSON form;
/// every field may be left out for its default).
///
/// Every engine sharing the storage counts the action's failed attempts in a row (a success starts the count
/// again) and since when they fail:
/// - past **both** `warn_after_failures` and `warn_after_minutes` the record owner and every active admin are
///   emailed once: "failing since ..., N deliveries waiting";
/// - past **both** `pause_after_failures` and `pause_after_hours`, and at once on `410 Gone` when
///   `pause_on_gone`, the action is **paused**: new deliveries are queued and logged but not sent, nothing is
///   dropped or failed, and one email says so and how to resume
///   ([`Engine::resume_action`](crate::Engine::resume_action), or the admin page). Resuming sends what waited,
///   oldest first.
///
/// The defaults (5 failed attempts over at least an hour to warn; 20 over at least 24 hours to pause; 410
/// pauses) leave the seed's behaviour alone for one failing record: its four attempts (at 0, 1 h, 3 h and 7 h)
/// never pass the warning, and its failure email is sent as before. They act when a receiver is down for many
/// records: after an hour someone hears of it, and after a day of uninterrupted failure deliveries stop failing
/// one by one (each with its own email) and wait for the receiver instead. `{"enabled": false}` turns all of it
/// off.
///
/// ```
/// use crm_webhooks::workflow::HealthPolicy;
/// let policy: HealthPolicy = serde_json::from_str(r#"{"pause_after_hours": 72}"#).unwrap();
/// assert_eq!((policy.warn_after_failures, policy.pause_after_hours, policy.pause_on_gone), (5, 72, true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthPolicy {
    /// Whether the action's health is tracked at all (default `true`).
    pub enabled: bool,
    /// Failed attempts in a row before the warning email (default 5).
    pub warn_after_failures: u32,
    /// Minutes the failures must span before the warning email (default 60).
    pub warn_after_minutes: u32,
    /// Failed attempts in a row before the action is paused (default 20).
    pub pause_after_failures: u32,
    /// Hours the failures must span before the action is paused (default 24).
    pub pause_after_hours: u32,
    /// Whether a `410 Gone` answer pauses the action at once (default `true`, as Standard Webhooks asks).
    pub pause_on_gone: bool,
}

/// The most failed attempts a threshold may ask for.
pub const MAX_HEALTH_FAILURES: u32 = 1_000_000;
/// The longest a threshold may ask failures to span: 30 days.
pub const MAX_HEALTH_HOURS: u32 = 720;

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            enabled: true,
            warn_after_failures: 5,
            warn_after_minutes: 60,
            pause_after_failures: 20,
            pause_after_hours: 24,
            pause_on_gone: true,
        }
    }
}

impl HealthPolicy {
    /// Health tracking off: no warning, no pause.
    pub fn off() -> Self {
        HealthPolicy { enabled: false, ..HealthPolicy::default() }
    }

    /// How long failures must span before the warning.
    pub fn warn_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.warn_after_minutes) * 60)
    }

    /// How long failures must span before the pause.
    pub fn pause_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.pause_after_hours) * 3600)
    }

    pub(crate) fn check(&self, at: &Location, errors: &mut Vec<ValidationError>) {
        let mut problem =
            |reason: String| errors.push(ValidationError::InvalidEndpointHealth { at: at.clone(), reason });
        for (name, value) in
            [("warn_after_failures", self.warn_after_failures), ("pause_after_failures", self.pause_after_failures)]
        {
            if value == 0 || value > MAX_HEALTH_FAILURES {
                problem(format!("{name} is {value}; write 1 to {MAX_HEALTH_FAILURES}"));
            }
        }
        if self.warn_after_minutes > MAX_HEALTH_HOURS * 60 {
            problem(format!("warn_after_minutes is {}; write 0 to {}", self.warn_after_minutes, MAX_HEALTH_HOURS * 60));
        }
        if self.pause_after_hours > MAX_HEALTH_HOURS {
            problem(format!("pause_after_hours is {}; write 0 to {MAX_HEALTH_HOURS}", self.pause_after_hours));
        }
        if self.pause_after_failures < self.warn_after_failures || self.pause_after() < self.warn_after() {
            problem(
                "the pause would come before the warning; make pause_after_failures and pause_after_hours at least \
                 the warning's"
                    .to_owned(),
            );
        }
    }
}

/// The most requests an action may send to its receiver per second or per minute, across every engine sharing
/// the storage (`"rate_limit": {"per_second": 10}` or `{"per_minute": 600}` in the JSON form; no limit by
/// default). Deliveries over the limit wait for a later second (or minute): they do not fail, and the tenant's
/// daily quota counts each call once. Seconds and minutes are whole ones of the clock; a request is counted in the
/// window it was claimed in (a moment before it leaves), and a window lets at most the limit through.
///
/// ```
/// use std::time::Duration;
/// use crm_webhooks::workflow::RateLimit;
/// let limit: RateLimit = serde_json::from_str(r#"{"per_minute": 600}"#).unwrap();
/// assert_eq!((limit.limit(), limit.window()), (600, Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRate", into = "RawRate")]
pub enum RateLimit {
    /// At most this many requests in each second.
    PerSecond(u32),
    /// At most this many requests in each minute.
    PerMinute(u32),
}

/// The JSON form of a [`RateLimit`]: exactly one of the two keys.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_minute: Option<u32>,
}

impl TryFrom<RawRate> for RateLimit {
    type Error = String;
    fn try_from(raw: RawRate) -> Result<Self, String> {
        match (raw.per_second, raw.per_minute) {
            (Some(n), None) => Ok(RateLimit::PerSecond(n)),
            (None, Some(n)) => Ok(RateLimit::PerMinute(n)),
            _ => Err("rate_limit takes one of per_second or per_minute, such as {\"per_second\": 10}".to_owned()),
        }
    }
}

impl From<RateLimit> for RawRate {
    fn from(limit: RateLimit) -> Self {
        match limit {
            RateLimit::PerSecond(n) => RawRate { per_second: Some(n), per_minute: None },
            RateLimit::PerMinute(n) => RawRate { per_second: None, per_minute: Some(n) },
        }
    }
}

/// The most requests a rate limit may allow per second.
pub const MAX_RATE_PER_SECOND: u32 = 10_000;

impl RateLimit {
    /// The most requests per window.
    pub fn limit(&self) -> u32 {
        match *self {
            RateLimit::PerSecond(n) | RateLimit::PerMinute(n) => n,
        }
    }

    /// The window: a second or a minute.
    pub fn window(&self) -> Duration {
        match self {
            RateLimit::PerSecond(_) => Duration::from_secs(1),
            RateLimit::PerMinute(_) => Duration::from_secs(60),
        }
    }

    /// `"second"` or `"minute"`.
    pub fn per(&self) -> &'static str {
        match self {
            RateLimit::PerSecond(_) => "second",
            RateLimit::PerMinute(_) => "minute",
        }
    }

    pub(crate) fn check(&self, at: &Location, errors: &mut Vec<ValidationError>) {
        let max = match self {
            RateLimit::PerSecond(_) => MAX_RATE_PER_SECOND,
            RateLimit::PerMinute(_) => MAX_RATE_PER_SECOND * 60,
        };
        if self.limit() == 0 || self.limit() > max {
            errors.push(ValidationError::RateLimitOutOfRange {
                at: at.clone(),
                limit: self.limit(),
                per: self.per(),
                max,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let at = Location::default();
        let mut errors = Vec::new();
        HealthPolicy::default().check(&at, &mut errors);
        HealthPolicy::off().check(&at, &mut errors);
        RateLimit::PerSecond(1).check(&at, &mut errors);
        RateLimit::PerMinute(600_000).check(&at, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let bad = [
            HealthPolicy { warn_after_failures: 0, ..HealthPolicy::default() },
            HealthPolicy { pause_after_failures: 3, ..HealthPolicy::default() },
            HealthPolicy { pause_after_hours: 0, ..HealthPolicy::default() },
            HealthPolicy { pause_after_hours: 10_000, ..HealthPolicy::default() },
        ];
        for policy in bad {
            let mut errors = Vec::new();
            policy.check(&at, &mut errors);
            assert!(!errors.is_empty(), "{policy:?}");
            assert!(errors.iter().all(|e| e.to_string().contains("endpoint_health is invalid")), "{errors:?}");
        }
        for limit in [RateLimit::PerSecond(0), RateLimit::PerSecond(10_001), RateLimit::PerMinute(600_001)] {
            let mut errors = Vec::new();
            limit.check(&at, &mut errors);
            assert_eq!(errors.len(), 1, "{limit:?}");
        }
    }

    #[test]
    fn json_forms() {
        let limit: RateLimit = serde_json::from_str(r#"{"per_second": 5}"#).unwrap();
        assert_eq!(limit, RateLimit::PerSecond(5));
        assert_eq!(serde_json::to_string(&limit).unwrap(), r#"{"per_second":5}"#);
        assert!(serde_json::from_str::<RateLimit>(r#"{"per_hour": 5}"#).is_err());
        for both_or_none in [r#"{"per_second": 5, "per_minute": 5}"#, "{}"] {
            let error = serde_json::from_str::<RateLimit>(both_or_none).unwrap_err().to_string();
            assert!(error.contains("takes one of per_second or per_minute"), "{error}");
        }
        assert!(serde_json::from_str::<HealthPolicy>(r#"{"warn_after": 5}"#).is_err(), "unknown fields refused");
        let off: HealthPolicy = serde_json::from_str(r#"{"enabled": false}"#).unwrap();
        assert_eq!(off, HealthPolicy::off());
    }
}
