//! What storage keeps about an action's receiver: its health (failed attempts in a row, warned, paused), what
//! changes it, and the requests its rate limit has let through in a window.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::delivery::DeliveryId;
use crate::workflow::HealthPolicy;

/// One action's receiver: health and rate limits are kept per tenant, workflow and action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EndpointKey {
    /// The tenant.
    pub tenant: String,
    /// The workflow's id.
    pub workflow: String,
    /// The action's title.
    pub action: String,
}

impl EndpointKey {
    /// The key of a tenant's workflow's action.
    pub fn new(tenant: impl Into<String>, workflow: impl Into<String>, action: impl Into<String>) -> Self {
        EndpointKey { tenant: tenant.into(), workflow: workflow.into(), action: action.into() }
    }
}

impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "action \"{}\" of workflow \"{}\"", self.action, self.workflow)
    }
}

/// Whether an action's deliveries are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Sent as usual (failures may be counting up).
    Healthy,
    /// Failing past the warning threshold: still sent; the owner and admins were emailed.
    Warning,
    /// Not sent: deliveries are queued and wait until the action is resumed.
    Paused,
}

impl EndpointState {
    /// `healthy`, `warning` or `paused`, as storage keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Healthy => "healthy",
            EndpointState::Warning => "warning",
            EndpointState::Paused => "paused",
        }
    }

    /// The state a stored text names.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "healthy" => Some(EndpointState::Healthy),
            "warning" => Some(EndpointState::Warning),
            "paused" => Some(EndpointState::Paused),
            _ => None,
        }
    }
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What storage keeps about one action's receiver. An action with no stored health is healthy with no failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointHealth {
    /// The action.
    pub key: EndpointKey,
    /// Its state.
    pub state: EndpointState,
    /// Failed attempts in a row (a success starts again from 0).
    pub failures: u32,
    /// When the first of those failures was.
    pub failing_since: Option<DateTime<Utc>>,
    /// When the state last changed.
    pub changed_at: DateTime<Utc>,
    /// Why it is in its state, in words ("paused by alice", "HTTP 410 Gone: the receiver says ...").
    pub reason: Option<String>,
}

/// What happened to an action's receiver, for [`Storage::record_health`](super::Storage::record_health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// An attempt was delivered.
    Succeeded,
    /// An attempt failed; the words say how.
    Failed(String),
    /// An attempt was answered `410 Gone`.
    Gone,
    /// A person paused the action.
    Paused {
        /// Who (a user id or name, for the log).
        by: String,
    },
    /// A person resumed the action.
    Resumed {
        /// Who.
        by: String,
    },
}

/// The delivery whose attempt a [`HealthReport`] is about: a change of state is logged on it, and its record's
/// owner is emailed with the admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedDelivery {
    /// The delivery.
    pub id: DeliveryId,
    /// Its record.
    pub record_id: String,
    /// Its record's owner.
    pub owner: String,
    /// Its status after the attempt.
    pub status: crate::delivery::DeliveryStatus,
    /// Attempts made, this one included.
    pub attempts: u32,
}

/// One event about an action's receiver, with the action's thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// The action.
    pub key: EndpointKey,
    /// What happened.
    pub event: HealthEvent,
    /// When.
    pub at: DateTime<Utc>,
    /// The action's thresholds.
    pub policy: HealthPolicy,
    /// The delivery whose attempt it was (none for a person's pause or resume).
    pub delivery: Option<ReportedDelivery>,
}

/// A change of an action's state that [`Storage::record_health`](super::Storage::record_health) made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    /// The action.
    pub key: EndpointKey,
    /// The state before.
    pub from: EndpointState,
    /// The state now.
    pub to: EndpointState,
    /// Deliveries made due again (a resume), or waiting (queued or in flight) when the change was made.
    pub deliveries: u64,
}

/// What a notification in the outbox is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// A delivery failed for good (its id is the notification's key).
    #[default]
    DeliveryFailed,
    /// An action's receiver passed the warning threshold.
    EndpointWarning {
        /// The workflow's id.
        workflow: String,
        /// The action's title.
        action: String,
        /// Since when it fails.
        failing_since: DateTime<Utc>,
        /// Failed attempts in a row.
        failures: u32,
        /// Deliveries queued or in flight then.
        waiting: u64,
    },
    /// An action was paused.
    EndpointPaused {
        /// The workflow's id.
        workflow: String,
        /// The action's title.
        action: String,
        /// Since when it fails.
        failing_since: DateTime<Utc>,
        /// Failed attempts in a row.
        failures: u32,
        /// Deliveries queued or in flight then.
        waiting: u64,
        /// Why (the thresholds passed, or the 410 answer).
        reason: String,
    },
}

/// Requests an action's rate limit should let through in one window, for
/// [`Storage::take_rate`](super::Storage::take_rate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRequest {
    /// The action.
    pub key: EndpointKey,
    /// The start of the window (a whole second or minute).
    pub window_start: DateTime<Utc>,
    /// The most requests the window lets through.
    pub limit: u32,
    /// How many are asked for.
    pub wanted: u32,
}
