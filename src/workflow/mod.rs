//! Workflows: which records fire (a [`Trigger`] and entry [`Criteria`]) and which webhooks they send (up to
//! [`MAX_WEBHOOKS_PER_WORKFLOW`](crate::limits::MAX_WEBHOOKS_PER_WORKFLOW) [`WebhookAction`]s). A tenant's workflows are a [`WorkflowSet`], loaded from JSON
//! and validated as a whole.

mod action;
mod auth;
mod builder;
mod criteria;
mod parameters;
mod policy;
mod schedule;
mod set;
mod tls;
mod url;

pub use action::{Method, WebhookAction};
pub use auth::Auth;
pub use builder::WebhookActionBuilder;
pub use criteria::{Condition, Criteria, Operator};
pub use policy::{HealthPolicy, RateLimit, MAX_HEALTH_FAILURES, MAX_HEALTH_HOURS, MAX_RATE_PER_SECOND};
pub use schedule::{Schedule, TimeOfDay};
pub use set::{Trigger, Workflow, WorkflowSet};
pub use tls::{ClientCertificate, KeySource, PemSource, TlsSettings};
pub(crate) use url::redact_url;
