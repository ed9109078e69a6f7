//! Why an engine call failed, and why an engine could not be built.

use crate::delivery::{DeliveryId, DeliveryStatus};
use crate::payload::RenderError;
use crate::ports::{DirectoryError, StorageError};

/// Why an engine call failed. Nothing already accepted is lost. A call that failed with a transient error may
/// still have taken effect (its reply was lost): repeating [`Engine::on_event`](crate::Engine::on_event) is safe for events with an
/// [`event_id`](crate::RecordEvent::event_id) and repeating [`Engine::redeliver`](crate::Engine::redeliver) is always safe (neither queues anything
/// twice); an event without an id repeated after such an error is queued again, under new delivery ids.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The user directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The event lacks what the engine needs.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// No such workflow is registered for the tenant.
    #[error("tenant \"{tenant}\" has no workflow \"{workflow}\"; register it with Engine::set_workflows")]
    UnknownWorkflow {
        /// The tenant.
        tenant: String,
        /// The workflow id asked for.
        workflow: String,
    },
    /// No such webhook action in the workflow.
    #[error("workflow \"{workflow}\" of tenant \"{tenant}\" has no webhook action \"{action}\"")]
    UnknownAction {
        /// The tenant.
        tenant: String,
        /// The workflow id.
        workflow: String,
        /// The action title asked for.
        action: String,
    },
    /// `run_manual` on a workflow whose trigger is not `manual`.
    #[error("workflow \"{0}\" is not a manual workflow; only workflows with the \"manual\" trigger run on demand")]
    NotManual(String),
    /// No such delivery for the tenant.
    #[error("tenant \"{tenant}\" has no delivery {id}")]
    UnknownDelivery {
        /// The tenant.
        tenant: String,
        /// The delivery id.
        id: DeliveryId,
    },
    /// A webhook's body for this record would be larger than [`EngineBuilder::max_body_bytes`](crate::EngineBuilder::max_body_bytes); nothing of the
    /// event was queued.
    #[error("record \"{record_id}\" of tenant \"{tenant}\", workflow \"{workflow}\": {source}")]
    Render {
        /// The tenant.
        tenant: String,
        /// The workflow.
        workflow: String,
        /// The record.
        record_id: String,
        /// What went wrong.
        #[source]
        source: RenderError,
    },
    /// A redelivery was asked for a delivery that is still queued or in flight.
    #[error("delivery {id} is {status}; only a Success or Failed delivery can be redelivered")]
    NotSettled {
        /// The delivery id.
        id: DeliveryId,
        /// Its status.
        status: DeliveryStatus,
    },
}

impl EngineError {
    /// Whether repeating the call later may succeed (storage or directory unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Storage(e) => e.is_transient(),
            EngineError::Directory(DirectoryError::Unavailable(_)) => true,
            _ => false,
        }
    }
}

/// The engine could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build the engine: {0}")]
pub struct BuildError(pub(super) String);

/// Workflows that [`Engine::set_workflows`](crate::Engine::set_workflows) refused; the tenant's workflows
/// registered before stay as they were.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// An action's `timeout_seconds` plus [`LEASE_MARGIN`](crate::engine::LEASE_MARGIN) is longer than the
    /// engine's lease, so a slow request could outlive its claim and be sent twice.
    #[error(
        "tenant \"{tenant}\", workflow \"{workflow}\", action \"{action}\": timeout_seconds is {} s, but the \
         engine's lease of {} s covers requests of at most {} s (the lease less {} s to write the result); lower \
         timeout_seconds or raise EngineBuilder::lease",
        timeout.as_secs(),
        lease.as_secs(),
        lease.saturating_sub(super::lease::LEASE_MARGIN).as_secs(),
        super::lease::LEASE_MARGIN.as_secs()
    )]
    LeaseTooShort {
        /// The tenant.
        tenant: String,
        /// The workflow's id.
        workflow: String,
        /// The action's title.
        action: String,
        /// The action's timeout.
        timeout: std::time::Duration,
        /// The engine's lease.
        lease: std::time::Duration,
    },
}
