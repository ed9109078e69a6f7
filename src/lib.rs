//! Webhook actions for CRM workflows.
//!
//! When a CRM record is saved and a workflow's trigger and entry criteria match, each of the workflow's webhook
//! actions (at most three) sends the record's data to a third-party URL as XML, JSON, JSONARRAY or FORM.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

mod action;
mod encode;
mod error;
mod record;
mod secret;
mod signature;
mod workflow;

pub use action::{
    Auth, ContentType, Method, Parameter, Template, TemplateError, ValueSource, WebhookAction, WebhookActionBuilder,
};
pub use encode::Payload;
pub use error::{ConfigError, Location, ValidationError};
pub use record::{Change, Fields, RecordEvent};
pub use secret::Secret;
pub use workflow::{
    Condition, Criteria, Operator, Schedule, TimeOfDay, Trigger, Workflow, WorkflowSet, MAX_WEBHOOKS_PER_WORKFLOW,
};
