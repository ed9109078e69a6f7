#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

mod action;
#[cfg(any(feature = "reqwest", feature = "sqlite", feature = "postgres", feature = "smtp"))]
pub mod adapters;
mod delivery;
mod encode;
mod engine;
mod error;
mod ports;
mod quota;
mod record;
mod retry;
mod secret;
mod signature;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
mod worker;
mod workflow;

pub use action::{
    Auth, ContentType, Method, Parameter, RenderError, Template, TemplateError, ValueSource, WebhookAction,
    WebhookActionBuilder, DEFAULT_MAX_BODY_BYTES, MAX_PARAMETERS_PER_ACTION, MAX_PARAMETER_NAME_BYTES,
    MAX_PARAMETER_NAME_SEGMENTS, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_PLACEHOLDERS, MAX_URL_BYTES,
};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use adapters::postgres::PostgresStorage;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use adapters::reqwest::{ReqwestClient, ReqwestClientBuilder, ReqwestError};
#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub use adapters::smtp::{SmtpError, SmtpMailer, SmtpMailerBuilder, SmtpTls};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use adapters::sqlite::SqliteStorage;
/// The attribute for implementing the host ports (`#[async_trait]` on your `impl Storage for ...`).
pub use async_trait::async_trait;
pub use delivery::{
    Delivery, DeliveryId, DeliveryStatus, InvalidDeliveryId, InvalidStatus, LogEntry, LogQuery, RESPONSE_SNIPPET_MAX,
};
pub use encode::Payload;
pub use engine::{
    preview, BuildError, DueSchedule, Engine, EngineBuilder, EngineError, PreviewRequest, RunReport, LEASE_MARGIN,
};
pub use error::{ConfigError, Location, ValidationError};
pub use ports::{
    Claim, ClaimToken, Clock, Completion, Directory, DirectoryError, Email, HttpClient, HttpError, HttpErrorKind,
    MailError, Mailer, Notification, NotificationUpdate, QuotaRequest, Storage, StorageError, StorageErrorKind,
    SystemClock, TenantInfo, User,
};
pub use quota::{next_day_start, quota_day, Edition, QuotaPolicy, Usage};
pub use record::{Change, Fields, RecordEvent};
pub use retry::{
    next as next_transition, parse_retry_after, AttemptOutcome, InvalidRetrySchedule, RetrySchedule, Transition,
    MAX_RETRY_AFTER,
};
pub use secret::Secret;
pub use signature::verify_signature;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use worker::{Worker, WorkerHandle};
pub use workflow::{
    Condition, Criteria, Operator, Schedule, TimeOfDay, Trigger, Workflow, WorkflowSet, MAX_WEBHOOKS_PER_WORKFLOW,
};
pub mod testing;
