//! The engine: where the pure parts (workflows, payloads, retry, quota) meet the host's ports.
//!
//! Each public method of [`Engine`] is a short shell: it reads the clock, calls a port, hands what it read to a
//! pure function with `now`, and writes the result through a port. The pure parts live in files of their own,
//! each tested without a runtime:
//! - `plan`: what an event (or a redelivery) queues;
//! - `outcome`: what follows an attempt (status, next attempt, log entries, notification) and the quota split;
//! - `wire`: the request and headers of an attempt, shared with [`preview`];
//! - `notice`: failure-notice recipients, back-off and email text;
//! - `redact`: the secrets kept out of stored responses.
//! - `lease`: the lease rule's arithmetic (the margin, the claim window).
//!
//! The shells: `intake` (events), `pass` ([`Engine::run_due`]), `notify` (failure emails), `schedules`, `admin`
//! (log, redelivery, usage), `metrics` (operators' figures, feature `metrics`), `test_send` (an admin's test request), with the engine's shared state in `core`, its construction in `builder`, and the
//! wake-up of its workers when it queues work in `wake`.
//!
//! # Metrics (feature `metrics`)
//! Recorded through the [`metrics`](https://docs.rs/metrics) facade, to whatever recorder the host installs:
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `crm_webhooks_attempts_total` | counter | `outcome`: `success`, `retry`, `failed` | attempts by what followed |
//! | `crm_webhooks_deferred_total` | counter | | claimed deliveries put back unsent (quota, directory) |
//! | `crm_webhooks_attempt_duration_seconds` | histogram | | from the request leaving to its answer |
//! | `crm_webhooks_queued`, `crm_webhooks_dispatched` | gauge | | deliveries queued, in flight ([`Engine::queue_depth`]) |
//! | `crm_webhooks_oldest_queued_age_seconds` | gauge | | how long the oldest queued delivery has waited |
//! | `crm_webhooks_quota_used` | gauge | `tenant` | calls counted on the tenant's current day |

mod admin;
mod builder;
mod core;
mod endpoints;
mod error;
mod intake;
mod lease;
mod metrics;
mod notice;
mod notify;
mod outcome;
mod pass;
mod plan;
mod redact;
mod report;
mod schedules;
mod test_send;
mod wake;
mod wire;

pub use self::core::Engine;
pub use builder::EngineBuilder;
pub use error::{BuildError, EngineError, RegisterError};
pub use intake::Prepared;
pub use lease::LEASE_MARGIN;
pub use report::{DueSchedule, RunReport};
pub use test_send::{TestSend, TEST_RECORD_ID};
pub use wake::WorkQueued;
pub use wire::{preview, PreviewRequest};
