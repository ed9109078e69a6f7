//! Deliveries, their four statuses, and the delivery log.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::failure::FailureReason;
use crate::payload::ContentType;
use crate::workflow::Method;

crate::id::uuid_id! {
    /// A delivery's id: stable across its retries and sent as the `webhook-id` header, so a receiver can drop
    /// duplicates. Written `msg_` followed by 32 hex digits.
    DeliveryId
}

impl DeliveryId {
    /// A new id that sorts by the time it was made (a version 7 UUID: `now`'s milliseconds, then random bits), so
    /// that storage indexes on ids take new rows at their end rather than at random pages. `now` is the engine's
    /// clock; a time before 1970 counts as 1970.
    pub(crate) fn at(now: DateTime<Utc>) -> Self {
        let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
        let mut bytes = *uuid::Uuid::new_v4().as_bytes();
        bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        bytes[6] = (bytes[6] & 0x0F) | 0x70; // version 7: time-ordered
        bytes[8] = (bytes[8] & 0x3F) | 0x80; // RFC 9562 variant
        DeliveryId(uuid::Uuid::from_bytes(bytes))
    }

    /// An id derived from `parts` (SHA-256 of the length-prefixed parts, as a version 8 UUID): the same parts
    /// always give the same id, so a repeated call stores nothing new.
    pub(crate) fn derived(parts: &[&str]) -> Self {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        for part in parts {
            hash.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0F) | 0x80; // version 8: custom
        bytes[8] = (bytes[8] & 0x3F) | 0x80; // RFC 9562 variant
        DeliveryId(uuid::Uuid::from_bytes(bytes))
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "msg_{}", self.0.simple())
    }
}

impl fmt::Debug for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A text that is not a delivery id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a delivery id (msg_ followed by 32 hex digits)")]
pub struct InvalidDeliveryId(String);

impl FromStr for DeliveryId {
    type Err = InvalidDeliveryId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("msg_")
            .filter(|hex| hex.len() == 32)
            .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
            .map(DeliveryId)
            .ok_or_else(|| InvalidDeliveryId(s.chars().take(64).collect()))
    }
}

impl Serialize for DeliveryId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeliveryId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The four statuses of a delivery, as the product names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeliveryStatus {
    /// The data is yet to be dispatched (first time, or waiting for a retry or for the quota).
    Queued,
    /// A worker holds the delivery and the request is in flight.
    Dispatched,
    /// The receiver accepted the data (2xx).
    Success,
    /// Every attempt failed; the owner and admins were notified.
    Failed,
}

impl DeliveryStatus {
    /// The product's name of the status, as the log shows it: `Queued`, `Dispatched`, `Success` or `Failed`
    /// (storage keeps its own text; parsing takes either case).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "Queued",
            DeliveryStatus::Dispatched => "Dispatched",
            DeliveryStatus::Success => "Success",
            DeliveryStatus::Failed => "Failed",
        }
    }

    /// Whether nothing more will happen to the delivery by itself.
    pub fn is_settled(self) -> bool {
        matches!(self, DeliveryStatus::Success | DeliveryStatus::Failed)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a delivery status (Queued, Dispatched, Success or Failed)")]
pub struct InvalidStatus(String);

impl FromStr for DeliveryStatus {
    type Err = InvalidStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "queued" => Ok(DeliveryStatus::Queued),
            "dispatched" => Ok(DeliveryStatus::Dispatched),
            "success" => Ok(DeliveryStatus::Success),
            "failed" => Ok(DeliveryStatus::Failed),
            _ => Err(InvalidStatus(s.chars().take(64).collect())),
        }
    }
}

/// One webhook to send: everything needed to send it, rendered once when the event fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable id, sent as `webhook-id`.
    pub id: DeliveryId,
    /// The tenant.
    pub tenant: String,
    /// The workflow's id.
    pub workflow: String,
    /// The action's title.
    pub action: String,
    /// The record's module.
    pub module: String,
    /// The record's id.
    pub record_id: String,
    /// The record's owner (notified on failure).
    pub owner: String,
    /// `POST` or `PUT`.
    pub method: Method,
    /// The URL to notify.
    pub url: String,
    /// The body's content type.
    pub content_type: ContentType,
    /// The body, byte for byte as every attempt sends it.
    pub body: Bytes,
    /// The status.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (for `Queued`).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the current claim's lease runs out (for `Dispatched`).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// When the event was enqueued.
    pub created_at: DateTime<Utc>,
    /// When the delivery last changed.
    pub updated_at: DateTime<Utc>,
    /// The delivery this one redelivers, when a person asked for a redelivery.
    pub redelivery_of: Option<DeliveryId>,
    /// Sent in order with the other deliveries of its tenant, workflow, action and record (the action is
    /// [`ordered`](crate::WebhookAction::ordered)): it is not claimed while one queued before it is still queued,
    /// in flight or waiting for a retry.
    pub ordered: bool,
}

impl Delivery {
    /// The key of the line an [`ordered`](Self::ordered) delivery waits in: its tenant, workflow, action and
    /// record, hashed (16 bytes); `None` when it is not ordered.
    pub(crate) fn order_key(&self) -> Option<[u8; 16]> {
        self.ordered.then(|| {
            *DeliveryId::derived(&["order", &self.tenant, &self.workflow, &self.action, &self.record_id]).as_bytes()
        })
    }
}

/// One line of the delivery log: an attempt or a status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// The tenant.
    pub tenant: String,
    /// The workflow's id.
    pub workflow: String,
    /// The action's title.
    pub action: String,
    /// The record's id.
    pub record_id: String,
    /// The status the delivery has after this entry.
    pub status: DeliveryStatus,
    /// The attempt this entry is about (0 before the first).
    pub attempt: u32,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// The start of the receiver's answer (at most [`RESPONSE_SNIPPET_MAX`] bytes).
    pub response_snippet: Option<String>,
    /// Why the attempt failed, in full (the host, the certificate problem, the redirect's target, the rule).
    pub error: Option<String>,
    /// Why the attempt failed, or why the delivery waits, as a code: set on the result entry of a failed attempt
    /// and on an entry that puts a delivery back unsent (the daily quota); `None` on the others.
    pub reason: Option<FailureReason>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// What happened, in words ("queued", "retry 1 of 3 scheduled", "deferred: daily quota reached").
    pub message: String,
}

/// The most bytes of a response body kept in the log.
pub const RESPONSE_SNIPPET_MAX: usize = 4096;

impl LogEntry {
    /// An entry about a delivery, with no attempt details.
    pub fn about(delivery: &Delivery, status: DeliveryStatus, at: DateTime<Utc>, message: impl Into<String>) -> Self {
        LogEntry {
            delivery_id: delivery.id,
            tenant: delivery.tenant.clone(),
            workflow: delivery.workflow.clone(),
            action: delivery.action.clone(),
            record_id: delivery.record_id.clone(),
            status,
            attempt: delivery.attempts,
            at,
            http_status: None,
            response_snippet: None,
            error: None,
            reason: None,
            next_attempt_at: None,
            message: message.into(),
        }
    }
}

/// Which log entries to return: all given criteria must hold. Newest first, `limit` at a time from `offset`.
///
/// ```
/// use crm_webhooks::{DeliveryStatus, LogQuery};
/// let failed_today = LogQuery::tenant("acme").status(DeliveryStatus::Failed).limit(20);
/// assert_eq!(failed_today.limit, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// The tenant (always required: one tenant never sees another's log).
    pub tenant: String,
    /// One workflow.
    pub workflow: Option<String>,
    /// One action (title).
    pub action: Option<String>,
    /// One status.
    pub status: Option<DeliveryStatus>,
    /// One record.
    pub record_id: Option<String>,
    /// One delivery.
    pub delivery_id: Option<DeliveryId>,
    /// Entries at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this instant.
    pub until: Option<DateTime<Utc>>,
    /// How many entries to skip (paging).
    pub offset: usize,
    /// How many entries to return at most (default 100, at most [`LogQuery::MAX_LIMIT`]).
    pub limit: usize,
}

impl LogQuery {
    /// The most entries one query returns.
    pub const MAX_LIMIT: usize = 1000;

    /// Every entry of a tenant, newest first, 100 at a time.
    pub fn tenant(tenant: impl Into<String>) -> Self {
        LogQuery {
            tenant: tenant.into(),
            workflow: None,
            action: None,
            status: None,
            record_id: None,
            delivery_id: None,
            since: None,
            until: None,
            offset: 0,
            limit: 100,
        }
    }
    /// Only this workflow.
    pub fn workflow(mut self, workflow: impl Into<String>) -> Self {
        self.workflow = Some(workflow.into());
        self
    }
    /// Only this action (title).
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }
    /// Only entries with this status.
    pub fn status(mut self, status: DeliveryStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Only this record.
    pub fn record(mut self, record_id: impl Into<String>) -> Self {
        self.record_id = Some(record_id.into());
        self
    }
    /// Only this delivery.
    pub fn delivery(mut self, id: DeliveryId) -> Self {
        self.delivery_id = Some(id);
        self
    }
    /// Only entries at or after `since` and before `until`.
    pub fn between(mut self, since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self.until = Some(until);
        self
    }
    /// Skip this many entries.
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
    /// Return at most this many entries (capped at [`LogQuery::MAX_LIMIT`]).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.min(Self::MAX_LIMIT);
        self
    }

    /// Whether an entry passes the filters (paging aside). Storage implementations may use it.
    pub fn accepts(&self, entry: &LogEntry) -> bool {
        entry.tenant == self.tenant
            && self.workflow.as_ref().is_none_or(|w| &entry.workflow == w)
            && self.action.as_ref().is_none_or(|a| &entry.action == a)
            && self.status.is_none_or(|s| entry.status == s)
            && self.record_id.as_ref().is_none_or(|r| &entry.record_id == r)
            && self.delivery_id.is_none_or(|d| entry.delivery_id == d)
            && self.since.is_none_or(|t| entry.at >= t)
            && self.until.is_none_or(|t| entry.at < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_at_a_time_sort_by_it_and_are_version_7() {
        use chrono::TimeZone as _;
        let t = |ms: i64| Utc.timestamp_millis_opt(ms).unwrap();
        let ids: Vec<DeliveryId> =
            [0, 1, 999, 1_000, 1_764_000_000_000, 1_764_000_000_001].map(|ms| DeliveryId::at(t(ms))).to_vec();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        for id in &ids {
            assert_eq!((id.0.get_version_num(), id.0.get_variant()), (7, uuid::Variant::RFC4122));
        }
        assert_ne!(DeliveryId::at(t(5)), DeliveryId::at(t(5)), "the rest is random");
        let before_1970 = DeliveryId::at(t(-5_000));
        assert_eq!(&before_1970.as_bytes()[..6], &[0; 6]);
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = DeliveryId::new();
        let text = id.to_string();
        assert!(text.starts_with("msg_") && text.len() == 36);
        assert_eq!(text.parse::<DeliveryId>().unwrap(), id);
        assert!("msg_xyz".parse::<DeliveryId>().is_err());
        assert!(id.0.simple().to_string().parse::<DeliveryId>().is_err());
        assert_eq!(DeliveryId::from_bytes(*id.as_bytes()), id);
    }

    #[test]
    fn statuses_parse_in_any_case() {
        for s in [DeliveryStatus::Queued, DeliveryStatus::Dispatched, DeliveryStatus::Success, DeliveryStatus::Failed] {
            assert_eq!(s.as_str().to_uppercase().parse::<DeliveryStatus>().unwrap(), s);
        }
        assert!("done".parse::<DeliveryStatus>().is_err());
    }
}
